//! Server-rendered pages of the Provider Hub beyond the dashboard: `/wallet/{addr}` and the built-in
//! explorer (`/explorer/…`; the network pages are in `network.rs`). Each page is
//! complete HTML without JavaScript (readable on a phone, no external assets); a small script
//! then refreshes its figures from the JSON API every few seconds and lets the reader switch
//! addresses between the 0x and xdc forms. Nothing secret is ever rendered: pages are built only
//! from what the read API already answers.

use std::fmt::Write as _;
use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::ApiState;
use super::wallet::{WalletQuery, WalletView, view};

/// Escapes text for HTML element content and attribute values.
pub(super) fn esc(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A long hex value shortened for narrow screens, whole in its tooltip.
pub(super) fn short(text: &str) -> String {
    if text.len() <= 20 {
        return format!("<code>{}</code>", esc(text));
    }
    format!(
        "<code title=\"{0}\">{1}…{2}</code>",
        esc(text),
        esc(&text[..10]),
        esc(&text[text.len() - 6..])
    )
}

const STYLE: &str = "body{font:15px/1.45 system-ui,sans-serif;margin:0;background:#f6f7f9;color:#1d2330}\
header{background:#1d2330;color:#fff;padding:12px 16px}header a{color:#cde}h1{margin:0;font-size:18px;overflow-wrap:anywhere}\
main{padding:12px 16px;display:grid;gap:12px;max-width:1100px}\
section{background:#fff;border:1px solid #dde;border-radius:8px;padding:10px 14px;overflow-x:auto}\
h2{font-size:15px;margin:0 0 6px}table{border-collapse:collapse;width:100%}\
td,th{text-align:left;padding:3px 6px;border-bottom:1px solid #eef;font-variant-numeric:tabular-nums}\
.big{font-size:26px;font-weight:600}.stats{display:flex;gap:24px;flex-wrap:wrap}\
.warn{color:#a50e0e}.ok{color:#137333}code{font-size:12px;overflow-wrap:anywhere}\
button{font:inherit;padding:4px 10px}nav{font-size:14px}nav a{color:#cde}";

pub(super) fn page(title: &str, body: &str, script: &str) -> Response {
    let html = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
<title>{}</title><style>{STYLE}</style></head><body>{body}<script>{script}</script></body></html>",
        esc(title)
    );
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        html,
    )
        .into_response()
}

pub(super) fn error_page(status: StatusCode, message: &str) -> Response {
    let body = format!(
        "<header><h1>pocmesh Provider Hub</h1></header><main><section><h2>{}</h2>\
<p class=\"warn\">{}</p><p><a href=\"/\">back to the dashboard</a></p></section></main>",
        status,
        esc(message)
    );
    (status, page("pocmesh", &body, "")).into_response()
}

/// `GET /wallet/{addr}`.
pub(super) async fn wallet_page(
    State(s): State<Arc<ApiState>>,
    Path(addr): Path<String>,
    Query(q): Query<WalletQuery>,
) -> Response {
    match view(&s, &addr, q.from_block).await {
        Ok(v) => page(
            &format!("pocmesh — wallet {}", v.wallet),
            &render_wallet(&v, s.info["explorer"].as_str()),
            WALLET_SCRIPT,
        ),
        Err(e) => error_page(e.status, &e.message),
    }
}

/// The wallet page's body. Elements the script refreshes carry ids; addresses carry both
/// forms (`data-0x`, `data-xdc`) so the toggle needs no second request.
/// Where a transaction link points: the public explorer if one is configured, else ours.
/// A short transaction link for a table cell (empty when there is no transaction yet).
pub(super) fn tx_link(explorer: Option<&str>, tx: Option<&pocmesh_protocol::Hash32>) -> String {
    tx.map(|t| {
        format!(
            "<a href=\"{}\">{}</a>",
            tx_href(explorer, t),
            short(&t.to_string())
        )
    })
    .unwrap_or_default()
}

pub(super) fn tx_href(explorer: Option<&str>, tx: &pocmesh_protocol::Hash32) -> String {
    match explorer {
        Some(base) => format!("{}/tx/{tx}", esc(base)),
        None => format!("/explorer/tx/{tx}"),
    }
}

fn render_wallet(v: &WalletView, explorer: Option<&str>) -> String {
    let addr = |a: &pocmesh_protocol::Address| {
        format!(
            "<code class=\"addr\" data-0x=\"{0}\" data-xdc=\"{1}\">{0}</code>",
            a,
            a.to_xdc()
        )
    };
    let mut b = String::new();
    let _ = write!(
        b,
        "<header><h1>Wallet {}</h1><a href=\"/\">dashboard</a> · \
<button id=\"form\" type=\"button\">show xdc… form</button></header><main>",
        addr(&v.wallet)
    );
    let on_chain = match (v.units_on_chain, &v.chain_error) {
        (Some(u), _) => u.to_string(),
        (None, Some(e)) => format!("unknown ({})", esc(e)),
        (None, None) => "unknown".into(),
    };
    let d = &v.dispatcher;
    let _ = write!(
        b,
        "<section><h2>Compute units</h2><div class=\"stats\">\
<div><div class=\"big\" id=\"onChain\">{on_chain}</div>on chain (<code>computeUnits</code> of the contract)</div>\
<div><div class=\"big\" id=\"recorded\">{}</div>recorded by this dispatcher</div>\
<div><div class=\"big\" id=\"pending\">{}</div>verified, waiting for a batch</div>\
<div><div class=\"big\" id=\"jobs\">{}</div>jobs{}</div></div>\
<p id=\"differs\" class=\"warn\"{}>The chain's figure differs from this dispatcher's: other dispatchers \
may credit this wallet on the same contract.</p></section>",
        d.units_recorded,
        d.units_pending,
        d.jobs,
        if d.truncated { " (at least)" } else { "" },
        if v.differs { "" } else { " hidden" },
    );
    let _ = write!(
        b,
        "<section><h2>Credits on chain</h2><p id=\"searched\">Transfers to this wallet from block {}{}.</p><table>",
        v.credits_from_block,
        if v.credits_from_block > 0 {
            format!(
                " (<a href=\"/wallet/{}?from_block=0\">search from block 0</a>: slow on a long chain)",
                v.wallet
            )
        } else {
            String::new()
        }
    );
    b.push_str("<table><thead><tr><th>block</th><th>units</th><th>transaction</th><th>batch</th></tr></thead><tbody id=\"credits\">");
    for c in &v.credits {
        let _ = write!(
            b,
            "<tr><td>{}</td><td>{}</td><td><a href=\"{}\">{}</a></td><td>{}</td></tr>",
            c.block,
            c.units,
            tx_href(explorer, &c.tx),
            short(&c.tx.to_string()),
            c.batch
                .map(|x| short(&x.to_string()))
                .unwrap_or_else(|| "recordCompute".into())
        );
    }
    if v.credits.is_empty() {
        b.push_str("<tr><td colspan=\"4\">no credits yet</td></tr>");
    }
    b.push_str("</tbody></table></section>");
    b.push_str("<section><h2>Newest jobs and their proofs</h2><table><thead><tr><th>job</th><th>state</th><th>units</th><th>transaction</th><th>receipt on chain</th></tr></thead><tbody id=\"recent\">");
    for r in &d.recent {
        let tx = tx_link(explorer, r.tx.as_ref());
        let proof = if r.tx.is_some() {
            format!(
                "<a class=\"verify\" data-job=\"{0}\" href=\"/v1/jobs/{0}/receipts\">receipt and Merkle proof</a>",
                r.job
            )
        } else {
            "not recorded yet".to_string()
        };
        let _ = write!(
            b,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{tx}</td><td>{proof}</td></tr>",
            short(&r.job.to_string()),
            esc(&r.state),
            r.units
        );
    }
    if d.recent.is_empty() {
        b.push_str("<tr><td colspan=\"5\">no jobs yet</td></tr>");
    }
    b.push_str("</tbody></table></section>");
    b.push_str("<section><h2>Nodes earning for this wallet</h2><table><thead><tr><th>node</th><th></th><th>slots</th><th>reliability</th><th>standing</th></tr></thead><tbody id=\"nodes\">");
    for n in &v.nodes {
        let standing = if n.excluded {
            "<span class=\"warn\">excluded</span>".to_string()
        } else if n.opted_out {
            "opted out".to_string()
        } else {
            format!("audited {:.0} %", n.audit_rate * 100.0)
        };
        let _ = write!(
            b,
            "<tr><td>{}</td><td class=\"{}\">{}</td><td>{}/{}</td><td>{:.2}</td><td>{standing}</td></tr>",
            addr(&n.address),
            if n.online { "ok" } else { "warn" },
            if n.online { "online" } else { "offline" },
            n.caps.slots_free,
            n.caps.slots_total,
            n.reliability,
        );
    }
    if v.nodes.is_empty() {
        b.push_str("<tr><td colspan=\"5\">no node announces this wallet</td></tr>");
    }
    b.push_str("</tbody></table></section>");
    if !d.quarantined.is_empty() {
        b.push_str("<section><h2>Credits set aside</h2><table><thead><tr><th>node</th><th>units</th><th>why</th></tr></thead><tbody>");
        for q in &d.quarantined {
            let _ = write!(
                b,
                "<tr><td>{}</td><td>{}</td><td>{}</td></tr>",
                addr(&q.node),
                q.units,
                esc(&q.reason)
            );
        }
        b.push_str("</tbody></table></section>");
    }
    let _ = write!(
        b,
        "<section><h2>Run a node for this wallet</h2><p><code>{}</code></p></section></main>",
        esc(&v.run_a_node)
    );
    b
}

/// Refreshes the figures from `/v1/wallets/{addr}` and switches the address form.
const WALLET_SCRIPT: &str = r#"
(function () {
  let xdc = false;
  const btn = document.getElementById("form");
  function showForms() {
    document.querySelectorAll("code.addr").forEach(function (el) {
      el.textContent = xdc ? el.dataset.xdc : el.dataset["0x"];
    });
    btn.textContent = xdc ? "show 0x… form" : "show xdc… form";
  }
  btn.addEventListener("click", function () { xdc = !xdc; showForms(); });
  const path = "/v1/wallets/" + location.pathname.split("/").pop() + location.search;
  async function refresh() {
    try {
      const r = await fetch(path);
      if (!r.ok) return;
      const v = await r.json();
      document.getElementById("onChain").textContent =
        v.units_on_chain === null ? "unknown (" + (v.chain_error || "") + ")" : String(v.units_on_chain);
      document.getElementById("recorded").textContent = v.dispatcher.units_recorded;
      document.getElementById("pending").textContent = v.dispatcher.units_pending;
      document.getElementById("jobs").textContent = v.dispatcher.jobs;
      document.getElementById("differs").hidden = !v.differs;
      const rows = v.credits.map(function (c) {
        const tr = document.createElement("tr");
        [c.block, c.units, c.tx, c.batch || "recordCompute"].forEach(function (x, i) {
          const td = document.createElement("td");
          if (i >= 2) { const code = document.createElement("code"); code.textContent = x; td.appendChild(code); }
          else td.textContent = x;
          tr.appendChild(td);
        });
        return tr;
      });
      if (rows.length) document.getElementById("credits").replaceChildren.apply(document.getElementById("credits"), rows);
    } catch (e) { /* keep the last figures; the next refresh tries again */ }
  }
  setInterval(refresh, 5000);
  // Each recorded job: ask the contract, through the API, whether its receipt verifies.
  document.querySelectorAll("a.verify").forEach(async function (a) {
    try {
      const r = await fetch("/v1/jobs/" + a.dataset.job + "/receipts");
      const v = await r.json();
      if (!r.ok) return;
      const ok = v.receipts.filter(function (x) { return x.verified_on_chain === true; }).length;
      const span = document.createElement("span");
      span.className = ok === v.receipts.length && ok > 0 ? "ok verified" : "warn";
      span.textContent = ok === v.receipts.length && ok > 0
        ? " verified by verifyReceipt (proof of " + v.receipts[0].proof.length + " hashes)"
        : " not verified: " + (v.receipts.map(function (x) { return x.chain_error || "verifyReceipt false"; }).join("; "));
      a.after(span);
    } catch (e) { /* the link still leads to the receipt */ }
  });
})();
"#;

/// Where the explorer reads: the chain reader, or a 503 page saying why not.
async fn explorer_reader(s: &ApiState) -> Result<&pocmesh_chain::ProofOfCompute, Response> {
    super::wallet::reader(s).await.map_err(|e| {
        error_page(
            StatusCode::SERVICE_UNAVAILABLE,
            &format!("the chain cannot be read: {e}"),
        )
    })
}

fn wallet_link(a: &pocmesh_protocol::Address) -> String {
    format!(
        "<a href=\"/wallet/{a}\"><code class=\"addr\" data-0x=\"{a}\" data-xdc=\"{}\">{a}</code></a>",
        a.to_xdc()
    )
}

/// `GET /explorer/tx/{hash}`: a transaction with its `recordBatch` call and events decoded.
pub(super) async fn explorer_tx(
    State(s): State<Arc<ApiState>>,
    Path(hash): Path<String>,
) -> Response {
    let Ok(hash) = hash.parse::<pocmesh_protocol::Hash32>() else {
        return error_page(
            StatusCode::BAD_REQUEST,
            "a transaction hash is 0x + 64 hex digits",
        );
    };
    let poc = match explorer_reader(&s).await {
        Ok(p) => p,
        Err(r) => return r,
    };
    match poc.transaction(hash).await {
        Ok(Some(tx)) => page(
            &format!("pocmesh — tx {}", tx.hash),
            &render_tx(&tx),
            TOGGLE_SCRIPT,
        ),
        Ok(None) => error_page(
            StatusCode::NOT_FOUND,
            &format!("the chain does not know transaction {hash}"),
        ),
        Err(e) => error_page(StatusCode::SERVICE_UNAVAILABLE, &e.to_string()),
    }
}

fn render_tx(tx: &pocmesh_chain::explorer::TxView) -> String {
    use pocmesh_chain::explorer::{DecodedCall, DecodedEvent};
    let mut b = String::new();
    let _ = write!(
        b,
        "<header><h1>Transaction <code>{}</code></h1><a href=\"/\">dashboard</a> · \
<button id=\"form\" type=\"button\">show xdc… form</button></header><main><section><table>",
        tx.hash
    );
    let status = match tx.success {
        Some(true) => "<span class=\"ok\" id=\"status\">success</span>",
        Some(false) => "<span class=\"warn\" id=\"status\">reverted</span>",
        None => "<span id=\"status\">pending</span>",
    };
    let _ = write!(b, "<tr><th>status</th><td>{status}</td></tr>");
    if let Some(n) = tx.block {
        let _ = write!(
            b,
            "<tr><th>block</th><td><a href=\"/explorer/block/{n}\">{n}</a></td></tr>"
        );
    }
    let _ = write!(
        b,
        "<tr><th>from</th><td>{}</td></tr>",
        wallet_link(&tx.from)
    );
    if let Some(to) = &tx.to {
        let _ = write!(
            b,
            "<tr><th>to</th><td><a href=\"/explorer/address/{to}\"><code>{to}</code></a></td></tr>"
        );
    }
    if let Some(g) = tx.gas_used {
        let _ = write!(b, "<tr><th>gas used</th><td id=\"gas\">{g}</td></tr>");
    }
    b.push_str("</table></section>");
    match &tx.call {
        Some(DecodedCall::RecordBatch {
            batch_id,
            receipts_root,
            providers,
            units,
        }) => {
            let _ = write!(
                b,
                "<section><h2 id=\"call\">recordBatch</h2><table><tr><th>batch id</th><td><code>{batch_id}</code></td></tr>\
<tr><th>receipts root</th><td><code id=\"root\">{receipts_root}</code></td></tr></table>\
<table><thead><tr><th>wallet credited</th><th>units</th></tr></thead><tbody id=\"credited\">"
            );
            for (p, u) in providers.iter().zip(units) {
                let _ = write!(b, "<tr><td>{}</td><td>{}</td></tr>", wallet_link(p), esc(u));
            }
            b.push_str("</tbody></table></section>");
        }
        Some(DecodedCall::Other { name }) => {
            let _ = write!(b, "<section><h2 id=\"call\">{}</h2></section>", esc(name));
        }
        None => {}
    }
    b.push_str("<section><h2>Events</h2><table><tbody id=\"events\">");
    for e in &tx.events {
        match e {
            DecodedEvent::BatchRecorded {
                batch_id,
                dispatcher,
                receipts_root,
                entries,
                units,
            } => {
                let _ = write!(
                    b,
                    "<tr><td>BatchRecorded</td><td>batch <code>{batch_id}</code>, root <code>{receipts_root}</code>, \
{} entries, {} units, by {}</td></tr>",
                    esc(entries),
                    esc(units),
                    wallet_link(dispatcher)
                );
            }
            DecodedEvent::Transfer { from, to, value } => {
                let _ = write!(
                    b,
                    "<tr><td>Transfer</td><td>{} units from <code>{from}</code> to {}</td></tr>",
                    esc(value),
                    wallet_link(to)
                );
            }
            DecodedEvent::ComputeRecorded {
                provider,
                units,
                total,
            } => {
                let _ = write!(
                    b,
                    "<tr><td>ComputeRecorded</td><td>{} units to {} (total {})</td></tr>",
                    esc(units),
                    wallet_link(provider),
                    esc(total)
                );
            }
            DecodedEvent::Other { address, topic0 } => {
                let _ = write!(
                    b,
                    "<tr><td>log</td><td>from <code>{address}</code>{}</td></tr>",
                    topic0
                        .map(|t| format!(", topic <code>{t}</code>"))
                        .unwrap_or_default()
                );
            }
        }
    }
    b.push_str("</tbody></table></section></main>");
    b
}

/// `GET /explorer/block/{n}`.
pub(super) async fn explorer_block(State(s): State<Arc<ApiState>>, Path(n): Path<u64>) -> Response {
    let poc = match explorer_reader(&s).await {
        Ok(p) => p,
        Err(r) => return r,
    };
    match poc.block(n).await {
        Ok(Some(block)) => {
            let mut b = format!(
                "<header><h1>Block {}</h1><a href=\"/\">dashboard</a></header><main><section><table>\
<tr><th>hash</th><td><code>{}</code></td></tr><tr><th>time</th><td>{} (unix seconds)</td></tr>\
<tr><th>gas used</th><td>{}</td></tr></table></section><section><h2>Transactions</h2><table><tbody id=\"txs\">",
                block.number, block.hash, block.timestamp, block.gas_used
            );
            for tx in &block.transactions {
                let _ = write!(
                    b,
                    "<tr><td><a href=\"/explorer/tx/{tx}\"><code>{tx}</code></a></td></tr>"
                );
            }
            if block.transactions.is_empty() {
                b.push_str("<tr><td>no transactions</td></tr>");
            }
            if n > 0 {
                let _ = write!(
                    b,
                    "</tbody></table><p><a href=\"/explorer/block/{}\">previous block</a></p>",
                    n - 1
                );
            } else {
                b.push_str("</tbody></table>");
            }
            b.push_str("</section></main>");
            page(&format!("pocmesh — block {n}"), &b, "")
        }
        Ok(None) => error_page(
            StatusCode::NOT_FOUND,
            &format!("block {n} is not on the chain yet"),
        ),
        Err(e) => error_page(StatusCode::SERVICE_UNAVAILABLE, &e.to_string()),
    }
}

/// `GET /explorer/address/{addr}`: the contract's totals for the contract, the wallet page for
/// any other address (its units are its token balance; its credits are its transfers in).
pub(super) async fn explorer_address(
    State(s): State<Arc<ApiState>>,
    Path(addr): Path<String>,
) -> Response {
    let Ok(address) = addr.parse::<pocmesh_protocol::Address>() else {
        return error_page(
            StatusCode::BAD_REQUEST,
            "an address is 0x… or xdc… with 40 hex digits",
        );
    };
    let poc = match explorer_reader(&s).await {
        Ok(p) => p,
        Err(r) => return r,
    };
    if address != poc.address() {
        return axum::response::Redirect::to(&format!("/wallet/{address}")).into_response();
    }
    match poc.total_units().await {
        Ok(total) => {
            let body = format!(
                "<header><h1>ProofOfCompute {}</h1><a href=\"/\">dashboard</a></header><main><section><table>\
<tr><th>contract</th><td><code>{address}</code> ({})</td></tr>\
<tr><th>total units (totalUnits, the token's supply)</th><td id=\"total\">{total}</td></tr>\
<tr><th>chain id</th><td>{}</td></tr></table></section></main>",
                address,
                address.to_xdc(),
                poc.chain_id()
            );
            page("pocmesh — contract", &body, "")
        }
        Err(e) => error_page(StatusCode::SERVICE_UNAVAILABLE, &e.to_string()),
    }
}

/// The 0x/xdc toggle alone (pages without live figures).
const TOGGLE_SCRIPT: &str = r#"
(function () {
  let xdc = false;
  const btn = document.getElementById("form");
  if (!btn) return;
  btn.addEventListener("click", function () {
    xdc = !xdc;
    document.querySelectorAll("code.addr").forEach(function (el) {
      el.textContent = xdc ? el.dataset.xdc : el.dataset["0x"];
    });
    btn.textContent = xdc ? "show 0x… form" : "show xdc… form";
  });
})();
"#;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::wallet::WalletFigures;
    use pocmesh_protocol::Address;

    fn view_of(units_on_chain: Option<u128>, reason: &str) -> WalletView {
        let wallet: Address = "0x2020202020202020202020202020202020202020"
            .parse()
            .expect("address");
        WalletView {
            wallet,
            wallet_xdc: wallet.to_xdc(),
            units_on_chain,
            chain_error: units_on_chain.is_none().then(|| "rpc down".to_string()),
            dispatcher: WalletFigures {
                units_recorded: 7,
                quarantined: vec![crate::api::QuarantineView {
                    node: wallet,
                    wallet,
                    units: 2,
                    reason: reason.into(),
                }],
                ..WalletFigures::default()
            },
            differs: units_on_chain != Some(7),
            credits: Vec::new(),
            credits_from_block: 12,
            nodes: Vec::new(),
            run_a_node: format!("pocmesh node run --wallet {wallet}"),
        }
    }

    #[test]
    fn the_page_shows_both_figures_both_address_forms_and_escapes_what_it_quotes() {
        let html = render_wallet(&view_of(Some(7), "<script>alert(1)</script>"), None);
        assert!(html.contains("id=\"onChain\">7<"), "{html}");
        assert!(html.contains("id=\"recorded\">7<"), "{html}");
        assert!(html.contains("data-xdc=\"xdc2020202020202020202020202020202020202020\""));
        assert!(
            html.contains("id=\"differs\" class=\"warn\" hidden"),
            "equal figures"
        );
        assert!(!html.contains("<script>alert"), "quoted text is escaped");
        assert!(
            html.contains("from block 12 (<a href=\"/wallet/0x2020202020202020202020202020202020202020?from_block=0\">"),
            "says where the search began and how to search it all: {html}"
        );
        assert!(html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
    }

    #[test]
    fn an_unreadable_chain_and_a_difference_are_said_plainly() {
        let html = render_wallet(&view_of(None, "zero address"), None);
        assert!(html.contains("unknown (rpc down)"), "{html}");
        let html = render_wallet(&view_of(Some(9), "x"), None);
        assert!(html.contains("id=\"differs\" class=\"warn\">"), "{html}");
    }
}
