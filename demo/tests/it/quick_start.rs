//! `machi-demo` as a newcomer runs it: the town it starts, what it prints, paying with the
//! wallet it passes through to, a stop by SIGTERM, and a second run that goes on with the
//! same shops, tokens and cards.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};

use serde_json::Value;

/// What the demo prints, read back from its guide.
#[derive(Debug)]
struct Guide {
    node_url: String,
    merchant_url: String,
    /// Name, id, counter token, back-office token.
    shops: Vec<[String; 4]>,
    admin: String,
    cards: Vec<String>,
    pay_code: String,
    invoice_id: String,
    /// The counter's, the back office's and the town office's URL and pairing code.
    screens: Vec<(String, String)>,
    text: String,
}

fn after<'a>(text: &'a str, marker: &str) -> &'a str {
    let start =
        text.find(marker).unwrap_or_else(|| panic!("{marker:?} in the guide:\n{text}")) + marker.len();
    text[start..].split_whitespace().next().expect("a value after the marker")
}

impl Guide {
    fn parse(text: String) -> Guide {
        let lines: Vec<&str> = text.lines().collect();
        let mut shops = Vec::new();
        for (i, line) in lines.iter().enumerate() {
            if let Some(rest) = line.trim().strip_prefix("shop ") {
                let (name, id) = rest.split_once("  id ").expect("shop NAME  id ID");
                let token = |line: &str| line.rsplit(' ').next().unwrap().to_string();
                shops.push([name.to_string(), id.to_string(), token(lines[i + 1]), token(lines[i + 2])]);
            }
        }
        let cards = text
            .lines()
            .find_map(|l| l.trim().strip_prefix("residents' cards (PIN 1234): "))
            .expect("the cards")
            .split(", ")
            .map(str::to_string)
            .collect();
        let screens = text
            .lines()
            .filter_map(|l| l.split_once("  pairing code "))
            .map(|(url, code)| {
                let url = url.split_whitespace().last().unwrap().to_string();
                (url, code.split_whitespace().next().unwrap().to_string())
            })
            .collect();
        let invoice_line = text.lines().find(|l| l.contains("/v1/invoices/")).expect("the invoice's curl");
        Guide {
            node_url: after(&text, "  node          ").to_string(),
            merchant_url: after(&text, "  merchant API  ").to_string(),
            admin: after(&text, "town admin token: ").to_string(),
            pay_code: after(&text, "pay code ").trim_end_matches(',').to_string(),
            invoice_id: invoice_line.rsplit("/v1/invoices/").next().unwrap().trim().to_string(),
            shops,
            cards,
            screens,
            text,
        }
    }
}

/// Starts the demo on loopback ports of the system's choosing and reads its guide.
fn start(dir: &Path) -> (Child, Guide) {
    let stderr = std::fs::File::create(dir.join("demo.log")).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_machi-demo"))
        .arg("--data-dir")
        .arg(dir.join("town"))
        .args(["--node-listen", "127.0.0.1:0", "--listen", "127.0.0.1:0"])
        .stdout(Stdio::piped())
        .stderr(stderr)
        .spawn()
        .expect("machi-demo runs");
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut text = String::new();
    while !text.ends_with("Stop with Ctrl-C.\n") {
        if out.read_line(&mut text).unwrap() == 0 {
            let log = std::fs::read_to_string(dir.join("demo.log")).unwrap_or_default();
            panic!("machi-demo ended before its guide:\n{text}\n{log}");
        }
    }
    (child, Guide::parse(text))
}

fn stop(mut child: Child) {
    let terminated = Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
    assert!(terminated.success());
    let status = child.wait().unwrap();
    assert!(status.success(), "machi-demo exited with {status} after SIGTERM");
}

/// `machi-demo wallet ARGS` with the card's PIN in MACHI_PIN; its exit code and JSON.
fn wallet(guide: &Guide, dir: &Path, args: &[&str]) -> (i32, Value) {
    let output = crate::run::wallet_command()
        .args(["--node", &guide.node_url, "--merchant", &guide.merchant_url, "--keystore"])
        .arg(dir.join("town/keystore"))
        .args(["--json", "--lang", "en"])
        .args(args)
        .env("MACHI_PIN", "1234")
        .stdin(Stdio::null())
        .output()
        .expect("machi-demo wallet runs");
    let json = serde_json::from_slice(&output.stdout).unwrap_or(Value::Null);
    (output.status.code().unwrap_or(-1), json)
}

/// Types `code` on the pairing page at `url` (as its form posts it); returns where the
/// browser is sent, signed in.
fn pair(url: &str, code: &str) -> String {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    runtime.block_on(async {
        let http = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
        let origin = url.trim_end_matches("/pair");
        let response = http
            .post(url)
            .header("origin", origin)
            .form(&[("code", code), ("label", "")])
            .send()
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), 303, "pairing with {code} at {url}");
        assert!(response.headers().get("set-cookie").is_some(), "a session cookie");
        response.headers()["location"].to_str().unwrap().to_string()
    })
}

fn get(url: &str, token: Option<&str>) -> Value {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    runtime.block_on(async {
        let mut request = reqwest::Client::new().get(url);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        let response = request.send().await.unwrap();
        assert!(response.status().is_success(), "GET {url}: {}", response.status());
        response.json().await.unwrap()
    })
}

#[test]
fn the_quick_start_runs_a_town_to_pay_in_and_keeps_it_between_runs() {
    let dir = tempfile::tempdir().unwrap();
    let (demo, first) = start(dir.path());
    let names: Vec<&str> = first.shops.iter().map(|s| s[0].as_str()).collect();
    assert_eq!(names, ["山田商店", "スーパーまち"], "{}", first.text);
    assert!(first.shops.iter().all(|s| s[2].starts_with("mst_") && s[3].starts_with("mst_")), "{first:?}");
    assert!(first.admin.starts_with("mta_"), "{first:?}");
    assert_eq!(first.cards.len(), 3, "{}", first.text);
    assert!(first.pay_code.len() == 8 && first.pay_code.bytes().all(|b| b.is_ascii_digit()), "{first:?}");
    assert!(first.text.contains("cargo run -q --release -p machi-demo -- wallet --node"), "{}", first.text);

    // The screens: each URL's pairing code signs a browser in, as the counter, the back
    // office and the town office.
    let homes: Vec<String> = first
        .screens
        .iter()
        .map(|(url, code)| {
            assert_eq!(url, &format!("{}/pair", first.merchant_url), "{}", first.text);
            pair(url, code)
        })
        .collect();
    assert_eq!(homes, ["/counter", "/office", "/town"], "{}", first.text);

    // The pay code, the invoice behind it, the issue on sale: all served over HTTP.
    let pay = get(&format!("{}/v1/pay/{}", first.merchant_url, first.pay_code), None);
    assert_eq!((pay["amount"].as_u64(), pay["shop_name"].as_str()), (Some(1_200), Some("山田商店")));
    let yamada = &first.shops[0];
    let invoice = get(&format!("{}/v1/invoices/{}", first.merchant_url, first.invoice_id), Some(&yamada[2]));
    assert_eq!(
        (invoice["pay_code"].as_str(), invoice["status"].as_str()),
        (Some(&first.pay_code[..]), Some("open"))
    );
    let issue = get(&format!("{}/v1/issues/1", first.node_url), None);
    assert_eq!(issue["sets_sold"].as_u64(), Some(6), "three residents bought two sets each: {issue}");

    // The guide's "try next": a resident pays the pay code with the wallet.
    let (code, paid) =
        wallet(&first, dir.path(), &["pay", "--card", &first.cards[0], "--code", &first.pay_code]);
    assert_eq!(code, 0, "{paid}");
    assert_eq!((paid["status"].as_str(), paid["amount"].as_u64()), (Some("applied"), Some(1_200)), "{paid}");
    stop(demo);

    // A second run: the same town, the same tokens and cards, a fresh pay code.
    let (demo, second) = start(dir.path());
    assert_eq!(second.shops, first.shops);
    assert_eq!((&second.admin, &second.cards), (&first.admin, &first.cards));
    assert_ne!(second.pay_code, first.pay_code, "a fresh invoice each run");
    assert_ne!(second.screens, first.screens, "fresh pairing codes each run");
    assert_eq!(pair(&second.screens[0].0, &second.screens[0].1), "/counter");
    // The guide's history line reads as the card: its own account, the payment in it.
    assert!(second.text.contains(&format!("history --card {}", first.cards[0])), "{}", second.text);
    let (code, history) = wallet(&second, dir.path(), &["history", "--card", &first.cards[0]]);
    assert_eq!((code, history["history"][0]["kind"].as_str()), (0, Some("pay")), "{history}");
    let (code, balance) = wallet(&second, dir.path(), &["balance", "--card", &first.cards[0]]);
    assert_eq!(code, 0, "{balance}");
    assert_eq!(
        balance["total"].as_u64(),
        Some(25_000 - 1_200),
        "two sets of ¥12,500, less the payment: {balance}"
    );
    let first_invoice =
        get(&format!("{}/v1/invoices/{}", second.merchant_url, first.invoice_id), Some(&yamada[2]));
    assert_eq!(
        (first_invoice["amount"].as_u64(), first_invoice["memo"].as_str()),
        (Some(1_200), Some("りんご 3個"))
    );
    stop(demo);
}

#[test]
fn machi_demo_wallet_is_the_wallet() {
    let help = crate::run::wallet_command().arg("--help").output().unwrap();
    assert!(help.status.success());
    let text = String::from_utf8(help.stdout).unwrap();
    assert!(text.contains("Usage: machi-demo wallet"), "{text}");
    assert!(text.contains("kiosk") && text.contains("--keystore"), "{text}");
    let wrong = crate::run::wallet_command().arg("no-such-command").output().unwrap();
    assert_eq!(wrong.status.code(), Some(2), "a wrong command line exits 2, as machi-wallet's does");
    assert!(String::from_utf8_lossy(&wrong.stderr).contains("no-such-command"));
}
