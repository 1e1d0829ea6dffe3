//! `GET /`: the town hall screen on sale day. Per issue: sets sold and left, the supply
//! breakdown as server-drawn SVG, the invariant's state; the cash of the latest sale days
//! (received, counted at the counters, deposited, every gap highlighted); the newest blocks. No
//! external assets; the page is whole without JavaScript, and a few lines of script
//! refresh it in place every two seconds.

use std::fmt::Write;

use axum::extract::State;
use axum::http::header;
use axum::response::{Html, IntoResponse};
use axum::routing::{get, MethodRouter};
use machi_api::{CashDayView, CashReport, ClusterView, IssueSupplyView};
use machi_ledger::time::format_jst;
use machi_ledger::{group_thousands, Yen};

use super::{Access, AppState};

const RECENT_BLOCKS: u64 = 8;
/// Sale days whose cash the screen shows, newest first.
const CASH_DAYS_SHOWN: usize = 7;

pub(super) fn routes() -> Vec<(&'static str, Access, MethodRouter<AppState>)> {
    vec![("/", Access::Public, get(page)), ("/dashboard/live", Access::Public, get(live))]
}

/// The town hall screen on sale day (HTML; refreshes itself every two seconds).
#[utoipa::path(get, path = "/", tag = "dashboard",
    responses((status = 200, body = String, content_type = "text/html; charset=utf-8", description = "the page")))]
async fn page(State(state): State<AppState>) -> impl IntoResponse {
    let cluster = super::cluster::view(&state).await;
    let body = render_body(&*state.shared.chain.read().await, &cluster);
    let html = format!(
        "<!doctype html><html lang=\"ja\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>machi — 発行状況 / supply</title><style>{CSS}</style></head>\
         <body><main id=\"live\">{body}</main><script>{SCRIPT}</script></body></html>"
    );
    ([(header::CACHE_CONTROL, "no-store")], Html(html))
}

/// The page's inner HTML, for the in-place refresh.
#[utoipa::path(get, path = "/dashboard/live", tag = "dashboard",
    responses((status = 200, body = String, content_type = "text/html; charset=utf-8", description = "the page's body")))]
async fn live(State(state): State<AppState>) -> impl IntoResponse {
    let cluster = super::cluster::view(&state).await;
    ([(header::CACHE_CONTROL, "no-store")], Html(render_body(&*state.shared.chain.read().await, &cluster)))
}

const CSS: &str = "body{font-family:system-ui,'Noto Sans JP',sans-serif;margin:1.5rem;background:#fafaf7;color:#222}\
h1{font-size:2rem;margin:0 0 .2rem}h2{font-size:1.6rem;margin:1.5rem 0 .3rem}small{color:#666;font-size:.8rem}\
.big{font-size:3.2rem;font-weight:700}.row{display:flex;gap:2rem;flex-wrap:wrap;align-items:flex-end}\
.ok{color:#1a7f37}.bad{color:#c00}table{border-collapse:collapse}td,th{padding:.2rem .6rem;text-align:right;border-bottom:1px solid #ddd}\
th{text-align:left}td.state{text-align:left}tr.gap td,tr.gap th{background:#fde8e8}.issue{background:#fff;border:1px solid #ddd;border-radius:8px;padding:1rem;margin:1rem 0}";

const SCRIPT: &str = "setInterval(function(){fetch('/dashboard/live',{cache:'no-store'}).then(function(r){return r.ok?r.text():null})\
.then(function(t){if(t){document.getElementById('live').innerHTML=t}}).catch(function(){})},2000);";

fn render_body(chain: &crate::chain::Chain, cluster: &ClusterView) -> String {
    let issues: Vec<IssueSupplyView> =
        chain.state.issues.values().map(|i| IssueSupplyView::new(&i.params, &i.supply)).collect();
    let mut out = String::new();
    let _ = write!(
        out,
        "<h1>プレミアム商品券 発行状況 <small>Voucher sale and supply</small></h1>\
         <p>チェーン {} ・ ブロック高 {} ・ 取引 {} 件 <small>chain, height, transactions</small><br>\
         <small>更新 {} (JST)</small></p>",
        escape(chain.chain_id()),
        chain.head.height,
        group_thousands(chain.txs_total),
        format_jst(chain.head.timestamp_ms)
    );
    if issues.is_empty() {
        out.push_str("<p>発行回はまだありません <small>no issues yet</small></p>");
    }
    for issue in &issues {
        render_issue(&mut out, issue);
    }
    render_cash(&mut out, &CashReport::new(&chain.state, chain.head.height).days);
    if !chain.state.replicas.is_empty() {
        render_replicas(&mut out, cluster);
    }
    out.push_str("<h2>最近のブロック <small>recent blocks</small></h2><table><tr><th>高さ <small>height</small></th><th>時刻 <small>time (JST)</small></th><th>取引 <small>txs</small></th><th>ハッシュ <small>hash</small></th></tr>");
    let head = chain.head.height;
    for height in (head.saturating_sub(RECENT_BLOCKS - 1)..=head).rev() {
        if let Ok(block) = chain.block(height) {
            let _ = write!(
                out,
                "<tr><td>{height}</td><td>{}</td><td>{}</td><td><code>{}…</code></td></tr>",
                format_jst(block.header.timestamp_ms),
                block.header.tx_count,
                &chain.hashes[height as usize].to_hex()[..16]
            );
        }
    }
    out.push_str("</table>");
    out
}

/// A signed amount for the screen: `-¥1,000`, `+¥500`, `¥0`.
fn signed_yen(value: i64) -> String {
    let amount = Yen(value.unsigned_abs());
    match value.signum() {
        -1 => format!("-{amount}"),
        1 => format!("+{amount}"),
        _ => amount.to_string(),
    }
}

/// The latest sale days' cash: received by the chain (per issue), counted at the
/// counters' closes, deposited at the bank, and each gap in words, its row highlighted.
fn render_cash(out: &mut String, days: &[CashDayView]) {
    if days.is_empty() {
        return;
    }
    out.push_str(
        "<h2>販売代金の締めと入金 <small>cash: received, counted, deposited</small></h2><table>         <tr><th>日付 <small>day (JST)</small></th><th>販売代金 <small>received</small></th>         <th>窓口の計数 <small>counted</small></th><th>過不足 <small>difference</small></th>         <th>入金 <small>deposited</small></th><th>入金−計数 <small>deposited − counted</small></th>         <th>状態 <small>state</small></th></tr>",
    );
    for d in days.iter().rev().take(CASH_DAYS_SHOWN) {
        let by_issue: Vec<String> =
            d.issues.iter().map(|i| format!("第{}回 {}", i.issue, i.cash_received)).collect();
        let state = if d.gaps.is_empty() {
            "<span class=\"ok\">✔ 一致 <small>balanced</small></span>".to_string()
        } else {
            let gaps: Vec<String> = d.gaps.iter().map(|g| escape(&g.describe())).collect();
            format!("<span class=\"bad\">✘ {}</span>", gaps.join("<br>"))
        };
        let _ = write!(
            out,
            "<tr class=\"{}\" id=\"cash-{}\"><th>{}</th><td>{}<br><small>{}</small></td><td>{}<br><small>未締め {} 窓口</small></td><td>{}</td><td>{}</td><td>{}</td><td class=\"state\">{state}</td></tr>",
            if d.gaps.is_empty() { "balanced" } else { "gap" },
            d.day,
            d.day,
            d.cash_received,
            by_issue.join("、"),
            d.counted,
            d.counters_not_closed,
            signed_yen(d.count_difference),
            d.deposited,
            signed_yen(d.deposit_difference),
        );
    }
    out.push_str("</table>");
}

/// The replicas that keep the chain, who leads, and how far each has applied.
fn render_replicas(out: &mut String, cluster: &ClusterView) {
    out.push_str(
        "<h2>台帳の複製 <small>replicas</small></h2><table><tr><th>名前 <small>name</small></th>\
         <th>役割 <small>role</small></th><th>ブロック高 <small>applied height</small></th>\
         <th>投票 <small>voter</small></th></tr>",
    );
    for m in &cluster.members {
        let role = match m.role.as_str() {
            "leader" => "<span class=\"ok\">代表 <small>leader</small></span>",
            "follower" => "追従 <small>follower</small>",
            "learner" => "監査 <small>learner</small>",
            "candidate" => "選挙中 <small>candidate</small>",
            "halted" => "<span class=\"bad\">停止 <small>halted</small></span>",
            _ => "<span class=\"bad\">応答なし <small>unreachable</small></span>",
        };
        let height = m.applied_height.map_or("—".to_string(), |h| h.to_string());
        let voter = if m.voter { "○" } else { "—" };
        let _ = write!(
            out,
            "<tr><th>{}</th><td>{role}</td><td>{height}</td><td>{voter}</td></tr>",
            escape(&m.name)
        );
    }
    out.push_str("</table>");
}

fn render_issue(out: &mut String, i: &IssueSupplyView) {
    let invariant = if i.invariant_holds {
        "<span class=\"ok\">✔ 保たれています</span> <small>invariant holds</small>"
    } else {
        "<span class=\"bad\">✘ 不一致</span> <small>invariant BROKEN</small>"
    };
    let _ = write!(
        out,
        "<section class=\"issue\"><h2>{} <small>発行回 issue {}</small></h2><div class=\"row\">\
         <div><div>販売済み <small>sets sold</small></div><div class=\"big\" id=\"sold-{}\">{}</div></div>\
         <div><div>残り <small>sets left</small></div><div class=\"big\" id=\"left-{}\">{}</div></div>\
         <div><div>総数 <small>total</small></div><div class=\"big\">{}</div></div></div>{}\
         <p>供給の整合性 <small>supply invariant</small>: {invariant}</p>",
        escape(&i.name),
        i.issue,
        i.issue,
        group_thousands(u64::from(i.sets_sold)),
        i.issue,
        group_thousands(u64::from(i.sets_left)),
        group_thousands(u64::from(i.total_sets)),
        sold_bar(i),
    );
    let parts = [
        ("住民の残高", "held by residents", i.residents_common.plus(i.residents_local), "#2b7bb9"),
        ("店舗の残高", "held by shops", i.shops_common.plus(i.shops_local), "#e69f00"),
        ("換金申請中", "pending cash-out", i.pending_cash_out, "#cc79a7"),
        ("換金済み", "paid out", i.paid_out, "#009e73"),
        ("手数料", "fees", i.fees, "#999999"),
        ("失効", "expired", i.expired, "#d55e00"),
    ];
    out.push_str(&supply_chart(i.issued_total, &parts));
    let _ = write!(
        out,
        "<table><tr><th>発行額 <small>face value issued</small></th><td>{}</td></tr>\
         <tr><th>　共通 <small>common</small></th><td>{}</td></tr><tr><th>　地元専用 <small>local</small></th><td>{}</td></tr>\
         <tr><th>販売代金 <small>cash received</small></th><td>{}</td></tr><tr><th>プレミアム負担 <small>premium cost</small></th><td>{}</td></tr></table></section>",
        i.issued_total, i.issued_common, i.issued_local, i.cash_received, i.premium_cost
    );
}

fn sold_bar(i: &IssueSupplyView) -> String {
    let width = 600.0;
    let sold = if i.total_sets == 0 { 0.0 } else { width * f64::from(i.sets_sold) / f64::from(i.total_sets) };
    format!(
        "<svg width=\"{width}\" height=\"28\" role=\"img\" aria-label=\"sets sold {} of {}\">\
         <rect width=\"{width}\" height=\"28\" fill=\"#e5e5e5\"/><rect width=\"{sold:.1}\" height=\"28\" fill=\"#2b7bb9\"/></svg>",
        i.sets_sold, i.total_sets
    )
}

/// A stacked bar of where the issued face value is, with a legend.
fn supply_chart(total: Yen, parts: &[(&str, &str, Yen, &str)]) -> String {
    let width = 600.0;
    let mut svg = format!(
        "<svg width=\"{width}\" height=\"{}\" role=\"img\" aria-label=\"supply breakdown\">",
        40 + 22 * parts.len()
    );
    let mut x = 0.0;
    for (_, _, amount, color) in parts {
        let w = if total.is_zero() { 0.0 } else { width * amount.0 as f64 / total.0 as f64 };
        let _ = write!(svg, "<rect x=\"{x:.1}\" y=\"0\" width=\"{w:.1}\" height=\"30\" fill=\"{color}\"/>");
        x += w;
    }
    for (row, (ja, en, amount, color)) in parts.iter().enumerate() {
        let y = 40 + 22 * row;
        let _ = write!(
            svg,
            "<rect x=\"0\" y=\"{y}\" width=\"14\" height=\"14\" fill=\"{color}\"/>\
             <text x=\"20\" y=\"{}\" font-size=\"14\">{ja} ({en}): {amount}</text>",
            y + 12
        );
    }
    svg.push_str("</svg>");
    svg
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}
