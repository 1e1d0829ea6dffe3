//! The pages in a real browser: Debian's Chromium, headless, driven over the DevTools
//! protocol by chromiumoxide. One Chromium per test, in a fresh profile; each device
//! (a counter tablet, the back office's PC, the town office's PC) is a browser context of
//! its own, so each keeps its own cookies, as separate devices do.
//!
//! Waiting is done on the page: a condition is checked in the page at every change of
//! its document (a MutationObserver) until it holds or a deadline passes; a navigation
//! in between only starts the check again on the new document. Nothing sleeps.
//!
//! Screenshots go to `target/screens/` (`SCREENS_DIR`), one PNG per screen and size.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use chromiumoxide::cdp::browser_protocol::browser::{
    BrowserContextId, DownloadProgressState, EventDownloadProgress, SetDownloadBehaviorBehavior,
    SetDownloadBehaviorParams,
};
use chromiumoxide::cdp::browser_protocol::emulation::{
    SetDeviceMetricsOverrideParams, SetTouchEmulationEnabledParams,
};
use chromiumoxide::cdp::browser_protocol::input::InsertTextParams;
use chromiumoxide::cdp::browser_protocol::page::CaptureScreenshotFormat;
use chromiumoxide::cdp::browser_protocol::target::{CreateBrowserContextParams, CreateTargetParams};
use chromiumoxide::cdp::js_protocol::runtime::EvaluateParams;
use chromiumoxide::page::ScreenshotParams;
use chromiumoxide::{Browser, BrowserConfig, Page};
use futures_util::StreamExt as _;
use serde::de::DeserializeOwned;
use serde_json::Value;

/// Debian's Chromium (`apt-get install -y chromium`; `.ci/run` installs it).
pub(crate) const CHROMIUM: &str = "/usr/bin/chromium";

/// How long a page may take to reach what a test waits for before the test fails.
pub(crate) const WAIT_MS: u64 = 15_000;

/// How long `reload_until` watches one load of a page before it loads it again.
const RELOAD_WATCH_MS: u64 = 250;

/// The smallest height of anything a finger presses (issue 14's standard).
pub(crate) const TOUCH_TARGET_PX_MIN: f64 = 48.0;

/// Chromium's flags: nothing that reaches beyond this machine, and every device's page
/// kept running at full speed while another device's page is in front.
const CHROMIUM_FLAGS: [&str; 10] = [
    "disable-gpu",
    "disable-quic",
    "no-first-run",
    "disable-background-networking",
    "disable-component-update",
    "disable-sync",
    "disable-dev-shm-usage",
    "disable-background-timer-throttling",
    "disable-renderer-backgrounding",
    "disable-backgrounding-occluded-windows",
];

/// A screen size a page must work at.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Size {
    pub(crate) name: &'static str,
    pub(crate) width: u32,
    pub(crate) height: u32,
    /// A phone: touch, and the page's own viewport meta decides its layout width.
    pub(crate) mobile: bool,
}

/// A 10-inch tablet in landscape (the counter).
pub(crate) const TABLET: Size = Size { name: "tablet", width: 1280, height: 800, mobile: false };
/// A phone (the counter on a phone).
pub(crate) const PHONE: Size = Size { name: "phone", width: 390, height: 844, mobile: true };
/// A town office PC.
pub(crate) const DESKTOP: Size = Size { name: "desktop", width: 1920, height: 1080, mobile: false };

/// Where the screenshots are written: `target/screens/` of the workspace (or of
/// `CARGO_TARGET_DIR`).
pub(crate) fn screens_dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR").map(PathBuf::from).unwrap_or_else(|| {
        Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("the workspace").join("target")
    });
    target.join("screens")
}

/// A headless Chromium, with its profile and downloads in temp folders.
pub(crate) struct Chrome {
    browser: Browser,
    handler: tokio::task::JoinHandle<()>,
    _profile: tempfile::TempDir,
    downloads: tempfile::TempDir,
}

impl Chrome {
    /// Starts Chromium; fails the test when it is not installed.
    pub(crate) async fn launch() -> Chrome {
        assert!(
            Path::new(CHROMIUM).exists(),
            "{CHROMIUM} is missing: the browser tests need Debian's Chromium; install chromium: apt-get install -y chromium"
        );
        let profile = tempfile::tempdir().expect("profile folder");
        let downloads = tempfile::tempdir().expect("downloads folder");
        // chromiumoxide's own flags are left out; its default headless mode adds
        // `--headless --hide-scrollbars --mute-audio`, and `no_sandbox` `--no-sandbox`.
        let config = BrowserConfig::builder()
            .chrome_executable(CHROMIUM)
            .disable_default_args()
            .no_sandbox()
            .args(CHROMIUM_FLAGS)
            .arg(("lang", "ja"))
            .user_data_dir(profile.path())
            .viewport(None)
            .launch_timeout(Duration::from_millis(WAIT_MS * 2))
            .request_timeout(Duration::from_millis(WAIT_MS))
            .build()
            .expect("browser config");
        let (browser, mut events) = Browser::launch(config).await.expect("Chromium starts");
        // The connection's messages are read by this task; messages from a newer Chromium
        // than the protocol's types know are skipped by chromiumoxide.
        let handler = tokio::spawn(async move { while events.next().await.is_some() {} });
        Chrome { browser, handler, _profile: profile, downloads }
    }

    /// A device of its own (cookies not shared with the others) on `base`, at `size`.
    pub(crate) async fn device(&self, base: &str, size: Size) -> Tab {
        let context = self
            .browser
            .create_browser_context(CreateBrowserContextParams::default())
            .await
            .expect("browser context");
        let target = CreateTargetParams::builder()
            .url("about:blank")
            .browser_context_id(context.clone())
            .build()
            .expect("target");
        let page = self.browser.new_page(target).await.expect("new page");
        let tab = Tab { page, base: base.trim_end_matches('/').to_string(), context, size };
        tab.resize(size).await;
        tab
    }

    /// Lets `tab`'s device download into this browser's downloads folder.
    async fn allow_downloads(&self, tab: &Tab) {
        let behavior = SetDownloadBehaviorParams::builder()
            .behavior(SetDownloadBehaviorBehavior::Allow)
            .browser_context_id(tab.context.clone())
            .download_path(self.downloads.path().display().to_string())
            .events_enabled(true)
            .build()
            .expect("download behavior");
        self.browser.execute(behavior).await.expect("downloads allowed");
    }

    /// Clicks `selector` on `tab` and returns the bytes of the file the browser downloads.
    pub(crate) async fn download(&self, tab: &Tab, selector: &str) -> (String, Vec<u8>) {
        self.allow_downloads(tab).await;
        let mut progress =
            self.browser.event_listener::<EventDownloadProgress>().await.expect("download events");
        tab.click(selector).await;
        let done = tokio::time::timeout(Duration::from_millis(WAIT_MS), async {
            while let Some(event) = progress.next().await {
                match event.state {
                    DownloadProgressState::Completed => return event.file_path.clone(),
                    DownloadProgressState::Canceled => panic!("the download of {selector} was cancelled"),
                    DownloadProgressState::InProgress => continue,
                }
            }
            panic!("the browser's events ended during the download of {selector}")
        })
        .await
        .unwrap_or_else(|_| panic!("no download finished within {WAIT_MS} ms of clicking {selector}"));
        let path = done.map(PathBuf::from).unwrap_or_else(|| self.only_download());
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        (name, std::fs::read(&path).expect("the downloaded file"))
    }

    /// The one file in the downloads folder (when the browser did not name its path).
    fn only_download(&self) -> PathBuf {
        let files: Vec<PathBuf> = std::fs::read_dir(self.downloads.path())
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| !p.to_string_lossy().ends_with(".crdownload"))
            .collect();
        assert_eq!(files.len(), 1, "one downloaded file: {files:?}");
        files[0].clone()
    }

    pub(crate) async fn close(mut self) {
        let _ = self.browser.close().await;
        let _ = self.browser.wait().await;
        self.handler.abort();
    }
}

/// What the layout check measured on one screen at one size.
#[derive(Debug, serde::Deserialize)]
struct Layout {
    screen: String,
    #[serde(rename = "scrollWidth")]
    scroll_width: f64,
    #[serde(rename = "innerWidth")]
    inner_width: f64,
    /// Touch targets lower than `TOUCH_TARGET_PX_MIN`, described.
    small: Vec<String>,
}

/// One page of one device.
pub(crate) struct Tab {
    pub(crate) page: Page,
    base: String,
    context: BrowserContextId,
    size: Size,
}

/// A JavaScript promise that resolves `true` once `condition` holds on this document, or
/// `false` after `ms`; it checks at once and after every change to the document.
fn until_js(condition: &str, ms: u64) -> String {
    format!(
        "new Promise((resolve) => {{
            const holds = () => {{ try {{ return Boolean({condition}); }} catch (e) {{ return false; }} }};
            if (holds()) {{ resolve(true); return; }}
            const observer = new MutationObserver(() => {{
                if (holds()) {{ observer.disconnect(); resolve(true); }}
            }});
            observer.observe(document, {{ subtree: true, childList: true, attributes: true, characterData: true }});
            setTimeout(() => {{ observer.disconnect(); resolve(holds()); }}, {ms});
        }})"
    )
}

/// The layout check: no horizontal scrolling, and every touch target tall enough.
const LAYOUT_JS: &str = r#"(() => {
    const shown = (el) => {
        const r = el.getBoundingClientRect();
        const style = getComputedStyle(el);
        return r.width > 0 && r.height > 0 && style.visibility !== 'hidden' && style.display !== 'none';
    };
    const describe = (el) => el.tagName.toLowerCase() + (el.id ? '#' + el.id : '')
        + (el.name ? '[name=' + el.name + ']' : '') + ' "' + (el.textContent || el.value || '').trim().slice(0, 20) + '"';
    const small = [];
    const targets = document.querySelectorAll(
        'button, input:not([type=hidden]):not([type=checkbox]):not([type=radio]), select, textarea, '
        + 'nav a, header a, a.button, [role=button], label:has(input[type=checkbox]), label:has(input[type=radio])');
    for (const el of targets) {
        if (!shown(el)) continue;
        const h = el.getBoundingClientRect().height;
        if (h < MIN) small.push(describe(el) + ' ' + h.toFixed(1) + 'px');
    }
    const screen = document.querySelector('#screen');
    return {
        screen: screen ? screen.dataset.screen : '',
        scrollWidth: document.documentElement.scrollWidth,
        innerWidth: window.innerWidth,
        small,
    };
})()"#;

impl Tab {
    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Opens `path` and waits until the page has loaded.
    pub(crate) async fn open(&self, path: &str) {
        self.page.goto(self.url(path)).await.unwrap_or_else(|e| panic!("opening {path}: {e}"));
        self.wait_for("document.readyState === 'complete'", &format!("{path} loaded")).await;
    }

    /// Evaluates `js` in the page (promises awaited) and returns its value.
    pub(crate) async fn eval<T: DeserializeOwned>(&self, js: &str) -> T {
        self.try_eval(js).await.unwrap_or_else(|e| panic!("evaluating {js}: {e}"))
    }

    async fn try_eval<T: DeserializeOwned>(&self, js: &str) -> Result<T, String> {
        let params = EvaluateParams::builder()
            .expression(js)
            .await_promise(true)
            .return_by_value(true)
            .build()
            .map_err(|e| e.to_string())?;
        // Sent as it is: without a context id the browser evaluates in the main frame's
        // document of the moment, even right after a navigation.
        let answer = self.page.execute(params).await.map_err(|e| e.to_string())?;
        if let Some(exception) = &answer.result.exception_details {
            let thrown = exception.exception.as_ref().and_then(|e| e.description.clone());
            return Err(format!("{} {}", exception.text, thrown.unwrap_or_default()));
        }
        let value = answer.result.result.value.clone().unwrap_or(Value::Null);
        serde_json::from_value(value).map_err(|e| e.to_string())
    }

    /// Waits until `condition` (a JavaScript expression) holds on the page, across
    /// navigations; returns how long it took. Fails the test after `WAIT_MS`.
    pub(crate) async fn wait_for(&self, condition: &str, what: &str) -> Duration {
        self.wait_within(condition, what, Duration::from_millis(WAIT_MS)).await
    }

    /// `wait_for` with its own deadline.
    pub(crate) async fn wait_within(&self, condition: &str, what: &str, limit: Duration) -> Duration {
        let start = Instant::now();
        let deadline = start + limit;
        let mut last_error = String::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            // A check lasts at most a second, so one that began on a document the browser
            // then left (a form's answer loading) is soon asked again of the new one.
            let slice = left.min(Duration::from_secs(1)).as_millis().max(1) as u64;
            match self.try_eval::<bool>(&until_js(condition, slice)).await {
                Ok(true) => return start.elapsed(),
                Ok(false) => {}
                Err(e) => last_error = e,
            }
            if Instant::now() >= deadline {
                let url = self.try_eval::<String>("location.href").await.unwrap_or_default();
                let text = self
                    .try_eval::<String>("document.body ? document.body.innerText.slice(0, 600) : ''")
                    .await
                    .unwrap_or_default();
                panic!(
                    "{what}: `{condition}` did not hold within {} ms (at {url}; last error {last_error:?}); the page says:\n{text}",
                    limit.as_millis()
                );
            }
        }
    }

    /// For a page that changes only when loaded again (e.g. a settlement waiting for its
    /// block): loads it again until `condition` holds, each load watched for a while;
    /// fails the test after `WAIT_MS`.
    pub(crate) async fn reload_until(&self, condition: &str, what: &str) {
        let deadline = Instant::now() + Duration::from_millis(WAIT_MS);
        let path = self.path().await;
        loop {
            self.open(&path).await;
            let watch = Duration::from_millis(RELOAD_WATCH_MS);
            if self.try_eval::<bool>(&until_js(condition, watch.as_millis() as u64)).await == Ok(true) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{what}: `{condition}` did not hold on {path} within {WAIT_MS} ms"
            );
        }
    }

    /// Waits until the page is the screen `name` (`#screen[data-screen]`) and has loaded.
    pub(crate) async fn wait_screen(&self, name: &str) {
        let condition = format!(
            "document.readyState === 'complete' && document.querySelector('#screen')?.dataset.screen === '{name}'"
        );
        self.wait_for(&condition, &format!("the {name} screen")).await;
    }

    /// The screen shown (`#screen`'s `data-screen`).
    pub(crate) async fn screen(&self) -> String {
        self.eval("document.querySelector('#screen')?.dataset.screen ?? ''").await
    }

    /// The path (and query) of the page shown.
    pub(crate) async fn path(&self) -> String {
        self.eval("location.pathname + location.search + location.hash").await
    }

    /// Clicks the element at `selector` as a finger or mouse does (at its centre, after
    /// scrolling it into view).
    pub(crate) async fn click(&self, selector: &str) {
        let element = self.page.find_element(selector).await.unwrap_or_else(|e| panic!("{selector}: {e}"));
        element.click().await.unwrap_or_else(|e| panic!("clicking {selector}: {e}"));
    }

    /// Clicks into the field at `selector`, clears it, and types `text` (key by key where
    /// a keyboard has the keys).
    pub(crate) async fn type_into(&self, selector: &str, text: &str) {
        let element = self.page.find_element(selector).await.unwrap_or_else(|e| panic!("{selector}: {e}"));
        element.click().await.unwrap_or_else(|e| panic!("clicking {selector}: {e}"));
        element
            .call_js_fn("function() { this.value = ''; }", false)
            .await
            .unwrap_or_else(|e| panic!("clearing {selector}: {e}"));
        if text.is_ascii() {
            element.type_str(text).await.unwrap_or_else(|e| panic!("typing into {selector}: {e}"));
        } else {
            // Japanese arrives as an input method commits it: the text at once.
            self.page
                .execute(InsertTextParams::new(text))
                .await
                .unwrap_or_else(|e| panic!("typing into {selector}: {e}"));
        }
    }

    /// Chooses the option with `value` in the select at `selector`.
    pub(crate) async fn select(&self, selector: &str, value: &str) {
        let js = format!(
            "(() => {{ const s = document.querySelector({sel}); s.value = {value}; \
             s.dispatchEvent(new Event('change', {{ bubbles: true }})); return s.value; }})()",
            sel = js_string(selector),
            value = js_string(value)
        );
        assert_eq!(self.eval::<String>(&js).await, value, "{selector} has the option {value}");
    }

    /// The text of the element at `selector` as shown (trimmed), or `None` if there is none.
    pub(crate) async fn text(&self, selector: &str) -> Option<String> {
        let js = format!("document.querySelector({})?.innerText.trim() ?? null", js_string(selector));
        self.eval(&js).await
    }

    /// An attribute of the element at `selector`.
    pub(crate) async fn attribute(&self, selector: &str, name: &str) -> Option<String> {
        let js = format!(
            "document.querySelector({})?.getAttribute({}) ?? null",
            js_string(selector),
            js_string(name)
        );
        self.eval(&js).await
    }

    /// Whether the element at `selector` is there and shown.
    pub(crate) async fn shows(&self, selector: &str) -> bool {
        self.eval(&visible_js(selector)).await
    }

    /// How many elements match `selector`.
    pub(crate) async fn count(&self, selector: &str) -> usize {
        self.eval(&format!("document.querySelectorAll({}).length", js_string(selector))).await
    }

    /// Sets the viewport to `size`.
    pub(crate) async fn resize(&self, size: Size) {
        let metrics = SetDeviceMetricsOverrideParams::builder()
            .width(size.width)
            .height(size.height)
            .device_scale_factor(1.0)
            .mobile(size.mobile)
            .build()
            .expect("metrics");
        self.page.execute(metrics).await.expect("viewport");
        let touch = SetTouchEmulationEnabledParams::builder().enabled(size.mobile).build().expect("touch");
        self.page.execute(touch).await.expect("touch emulation");
    }

    /// Checks the screen shown at each of `sizes` — no horizontal scrolling, touch targets
    /// at least 48 px tall — and writes a screenshot of each to `screens_dir()`, named
    /// `{screen}-{size}.png` (with `suffix` after the screen's name when given). Returns
    /// the files written. The tab is back at its own size afterwards.
    pub(crate) async fn check_screen(&self, sizes: &[Size], suffix: &str) -> Vec<PathBuf> {
        let mut written = Vec::new();
        for &size in sizes {
            self.resize(size).await;
            let layout: Layout = self.eval(&LAYOUT_JS.replace("MIN", &TOUCH_TARGET_PX_MIN.to_string())).await;
            let at = format!("{} at {}×{} ({})", layout.screen, size.width, size.height, self.path().await);
            // A phone lays a page out at the device's width only when the page says so
            // (its viewport meta); otherwise it would be drawn 980 px wide and shrunk.
            assert_eq!(
                layout.inner_width,
                f64::from(size.width),
                "{at}: the page is laid out at the device's width"
            );
            assert!(
                layout.scroll_width <= layout.inner_width,
                "{at} scrolls sideways: scrollWidth {} > innerWidth {}",
                layout.scroll_width,
                layout.inner_width
            );
            assert!(
                layout.small.is_empty(),
                "{at}: touch targets under {TOUCH_TARGET_PX_MIN} px: {:?}",
                layout.small
            );
            let name = format!("{}{suffix}-{}.png", layout.screen, size.name);
            written.push(self.screenshot(&name).await);
        }
        self.resize(self.size).await;
        written
    }

    /// Writes a screenshot of the viewport to `screens_dir()/name`.
    pub(crate) async fn screenshot(&self, name: &str) -> PathBuf {
        let dir = screens_dir();
        std::fs::create_dir_all(&dir).expect("screens folder");
        let path = dir.join(name);
        let params = ScreenshotParams::builder().format(CaptureScreenshotFormat::Png).build();
        let png = self.page.screenshot(params).await.unwrap_or_else(|e| panic!("screenshot {name}: {e}"));
        std::fs::write(&path, png).expect("screenshot written");
        path
    }

    /// Posts a form from the page itself, as a forged or altered form would be sent:
    /// `fields` as they are (a missing `csrf` stays missing). Returns the answer's status.
    pub(crate) async fn post_from_page(&self, path: &str, fields: &[(&str, &str)]) -> (u16, String) {
        let body: Vec<String> = fields
            .iter()
            .map(|(k, v)| {
                format!("encodeURIComponent({}) + '=' + encodeURIComponent({})", js_string(k), js_string(v))
            })
            .collect();
        let body = if body.is_empty() { "''".to_string() } else { body.join(" + '&' + ") };
        let js = format!(
            "fetch({path}, {{ method: 'POST', redirect: 'manual', credentials: 'same-origin', \
               headers: {{ 'Content-Type': 'application/x-www-form-urlencoded' }}, body: {body} }})
             .then(async (r) => [r.status, await r.text()])",
            path = js_string(path)
        );
        let (status, text): (u16, String) = self.eval(&js).await;
        (status, text)
    }
}

/// A JavaScript string literal of `text`.
pub(crate) fn js_string(text: &str) -> String {
    Value::String(text.to_string()).to_string()
}

/// JavaScript: whether the element at `selector` is there and shown.
pub(crate) fn visible_js(selector: &str) -> String {
    format!(
        "(() => {{ const el = document.querySelector({}); if (!el || el.closest('[hidden]')) return false; \
         const r = el.getBoundingClientRect(); return r.width > 0 && r.height > 0 && getComputedStyle(el).visibility !== 'hidden'; }})()",
        js_string(selector)
    )
}
