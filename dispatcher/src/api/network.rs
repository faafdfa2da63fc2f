//! The network pages of the Provider Hub: `/nodes` (every node this dispatcher knows, online or
//! not, with its capabilities and standing), `/jobs` (jobs page by page with their state and the
//! transaction that credited them) and `/batches` (the `recordBatch` calls with their gas).
//!
//! Each is complete server-rendered HTML built from the same reads as the JSON API (the engine's
//! node registry, the store's job and batch indexes: one page read, never a scan). A small script
//! then fetches the same URL every few seconds and swaps in the fresh `<main>`, so live figures
//! and the no-JavaScript page come from one renderer.

use std::fmt::Write as _;
use std::sync::Arc;

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use pocmesh_protocol::unix_ms_now;

use super::batches::{BatchQuery, BatchView};
use super::pages::{error_page, esc, page, short, tx_link};
use super::{ApiState, JobView, ListQuery};
use crate::policy::Trust;
use crate::registry::NodeView;

/// The links every network page carries.
pub(super) fn nav(current: &str) -> String {
    let mut b = String::from("<nav>");
    for (i, (href, label)) in [
        ("/", "dashboard"),
        ("/nodes", "nodes"),
        ("/jobs", "jobs"),
        ("/batches", "batches"),
    ]
    .iter()
    .enumerate()
    {
        if i > 0 {
            b.push_str(" · ");
        }
        if *href == current {
            let _ = write!(b, "<strong>{label}</strong>");
        } else {
            let _ = write!(b, "<a href=\"{href}\">{label}</a>");
        }
    }
    b.push_str("</nav>");
    b
}

/// How long ago `then_ms` was, in words a reader takes in at a glance.
pub(super) fn ago(now_ms: u64, then_ms: u64) -> String {
    if then_ms == 0 {
        return "never".into();
    }
    let s = now_ms.saturating_sub(then_ms) / 1_000;
    match s {
        0..=59 => format!("{s} s ago"),
        60..=3_599 => format!("{} min ago", s / 60),
        3_600..=86_399 => format!("{} h ago", s / 3_600),
        _ => format!("{} d ago", s / 86_400),
    }
}

/// Fetches the page's own URL every 5 s (while it is visible) and swaps in the new `<main>`.
const LIVE_SCRIPT: &str = r#"
(function () {
  async function refresh() {
    if (document.hidden) return;
    try {
      const r = await fetch(location.href, { headers: { accept: "text/html" } });
      if (!r.ok) return;
      const doc = new DOMParser().parseFromString(await r.text(), "text/html");
      const fresh = doc.querySelector("main");
      if (fresh) document.querySelector("main").replaceWith(fresh);
    } catch (e) { /* keep what is shown; the next refresh tries again */ }
  }
  setInterval(refresh, 5000);
})();
"#;

fn standing(n: &NodeView) -> String {
    if n.excluded {
        let why = n
            .exclusion
            .as_ref()
            .map(|e| esc(&e.reason))
            .unwrap_or_default();
        return format!("<span class=\"warn\" title=\"{why}\">excluded</span>: {why}");
    }
    match n.trust {
        Trust::Probation { remaining } => format!("probation, {remaining} checked results to go"),
        Trust::Trusted => format!("trusted, {:.0} % re-run", n.audit_rate * 100.0),
        Trust::Excluded => "<span class=\"warn\">excluded</span>".into(),
    }
}

/// The nodes page's `<main>`; `nodes` as the engine lists them.
pub(super) fn render_nodes(nodes: &[NodeView], now_ms: u64) -> String {
    let mut sorted: Vec<&NodeView> = nodes.iter().collect();
    sorted.sort_by(|a, b| {
        b.online
            .cmp(&a.online)
            .then(b.last_seen_ms.cmp(&a.last_seen_ms))
    });
    let online = nodes.iter().filter(|n| n.online).count();
    let opted_out = nodes.iter().filter(|n| n.opted_out).count();
    let excluded = nodes.iter().filter(|n| n.excluded).count();
    let cores: u64 = nodes
        .iter()
        .filter(|n| n.online)
        .map(|n| u64::from(n.caps.cores))
        .sum();
    let free: u64 = nodes
        .iter()
        .filter(|n| n.online)
        .map(|n| u64::from(n.caps.slots_free))
        .sum();
    let mut b = String::from("<main>");
    let _ = write!(
        b,
        "<section><h2>Nodes</h2><div class=\"stats\">\
<div><div class=\"big\" id=\"online\">{online}</div>online</div>\
<div><div class=\"big\">{}</div>known</div>\
<div><div class=\"big\">{cores}</div>cores online</div>\
<div><div class=\"big\">{free}</div>slots free</div>\
<div><div class=\"big\">{opted_out}</div>opted out</div>\
<div><div class=\"big\">{excluded}</div>excluded</div></div></section>",
        nodes.len()
    );
    b.push_str(
        "<section><table><thead><tr><th>node</th><th>wallet</th><th></th><th>last seen</th>\
<th>cores · memory · GPU</th><th>job types</th><th>slots free</th><th>results</th>\
<th>reliability</th><th>standing</th><th>consent</th><th>version</th></tr></thead><tbody id=\"nodes\">",
    );
    for n in &sorted {
        let (class, status) = if n.opted_out {
            ("warn", "opted out")
        } else if n.online {
            ("ok", "online")
        } else {
            ("warn", "offline")
        };
        let types: Vec<&str> = n.caps.job_types.iter().map(|t| t.as_str()).collect();
        let _ = write!(
            b,
            "<tr><td>{}</td><td><a href=\"/wallet/{}\">{}</a></td><td class=\"{class}\">{status}</td>\
<td>{}</td><td>{} · {} MiB · {}</td><td>{}</td><td>{}/{}</td><td>{} ok, {} failed, {} timed out</td>\
<td>{:.2}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            short(&n.address.to_string()),
            n.wallet,
            short(&n.wallet.to_string()),
            ago(now_ms, n.last_seen_ms),
            n.caps.cores,
            n.caps.mem_mb,
            esc(n.caps.gpu.as_deref().unwrap_or("none")),
            esc(&types.join(", ")),
            n.caps.slots_free,
            n.caps.slots_total,
            n.counters.successes,
            n.counters.failures,
            n.counters.timeouts,
            n.reliability,
            standing(n),
            if n.policy_current {
                "current"
            } else {
                "<span class=\"warn\">outdated</span>"
            },
            esc(&n.sw),
        );
    }
    if nodes.is_empty() {
        b.push_str(
            "<tr><td colspan=\"12\">no node has announced itself yet: start one with \
<code>pocmesh node run --wallet 0x…</code></td></tr>",
        );
    }
    b.push_str("</tbody></table></section></main>");
    b
}

/// `GET /nodes`.
pub(super) async fn nodes_page(State(s): State<Arc<ApiState>>) -> Response {
    match s.engine.nodes().await {
        Ok(nodes) => page(
            "pocmesh — nodes",
            &format!(
                "<header><h1>Nodes</h1>{}</header>{}",
                nav("/nodes"),
                render_nodes(&nodes, unix_ms_now())
            ),
            LIVE_SCRIPT,
        ),
        Err(e) => error_page(StatusCode::SERVICE_UNAVAILABLE, &e.to_string()),
    }
}

/// States a reader can filter the jobs page by.
const JOB_STATES: &[&str] = &[
    "queued",
    "assigned",
    "verifying",
    "recording",
    "recorded",
    "failed",
    "rejected",
];

/// The jobs page's `<main>`: one page of jobs and the link to the next.
pub(super) fn render_jobs(
    jobs: &[JobView],
    next: Option<&str>,
    q: &ListQuery,
    explorer: Option<&str>,
    now_ms: u64,
) -> String {
    let mut b = String::from("<main><section><h2>Jobs</h2><p>");
    let filter = |extra: &str| {
        let mut parts = Vec::new();
        if let Some(w) = &q.wallet {
            parts.push(format!("wallet={}", esc(w)));
        }
        if !extra.is_empty() {
            parts.push(extra.to_string());
        }
        if parts.is_empty() {
            "/jobs".to_string()
        } else {
            format!("/jobs?{}", parts.join("&amp;"))
        }
    };
    let all = filter("");
    if q.state.is_none() {
        b.push_str("<strong>all</strong>");
    } else {
        let _ = write!(b, "<a href=\"{all}\">all</a>");
    }
    for st in JOB_STATES {
        if q.state.as_deref() == Some(*st) {
            let _ = write!(b, " · <strong>{st}</strong>");
        } else {
            let _ = write!(
                b,
                " · <a href=\"{}\">{st}</a>",
                filter(&format!("state={st}"))
            );
        }
    }
    if let Some(w) = &q.wallet {
        let _ = write!(
            b,
            " — of wallet <a href=\"/wallet/{0}\"><code>{0}</code></a>",
            esc(w)
        );
    }
    b.push_str(
        "</p><table><thead><tr><th>job</th><th>type</th><th>state</th><th>submitted</th>\
<th>units</th><th>credited</th><th>transaction</th></tr></thead><tbody id=\"jobs\">",
    );
    for j in jobs {
        let tx = tx_link(explorer, j.tx.as_ref());
        let wallets: Vec<String> = j
            .credits
            .iter()
            .map(|c| {
                format!(
                    "<a href=\"/wallet/{}\">{}</a>",
                    c.wallet,
                    short(&c.wallet.to_string())
                )
            })
            .collect();
        let state = match &j.error {
            Some(e) => format!(
                "<span class=\"warn\" title=\"{0}\">{1}</span>: {0}",
                esc(e),
                esc(&j.state)
            ),
            None => esc(&j.state),
        };
        let _ = write!(
            b,
            "<tr><td><a href=\"/v1/jobs/{0}\">{1}</a></td><td>{2}</td><td>{state}</td><td>{3}</td>\
<td>{4}</td><td>{5}</td><td>{tx}</td></tr>",
            j.id,
            short(&j.id.to_string()),
            esc(&j.job_type),
            ago(now_ms, j.submitted_ms),
            j.units,
            wallets.join(" "),
        );
    }
    if jobs.is_empty() {
        b.push_str("<tr><td colspan=\"7\">no jobs here</td></tr>");
    }
    b.push_str("</tbody></table>");
    if let Some(c) = next {
        let mut parts = Vec::new();
        if let Some(st) = &q.state {
            parts.push(format!("state={}", esc(st)));
        }
        if let Some(w) = &q.wallet {
            parts.push(format!("wallet={}", esc(w)));
        }
        parts.push(format!("cursor={}", esc(c)));
        let _ = write!(
            b,
            "<p><a id=\"older\" href=\"/jobs?{}\">older jobs →</a></p>",
            parts.join("&amp;")
        );
    }
    b.push_str("</section></main>");
    b
}

/// `GET /jobs?state=&wallet=&cursor=`: 50 jobs a page.
pub(super) async fn jobs_page(
    State(s): State<Arc<ApiState>>,
    Query(mut q): Query<ListQuery>,
) -> Response {
    q.limit = Some(50);
    let shown = ListQuery {
        state: q.state.clone(),
        wallet: q.wallet.clone(),
        limit: None,
        cursor: None,
    };
    match super::read_jobs(&s, q).await {
        Ok((jobs, next)) => {
            let views: Vec<JobView> = jobs.iter().map(JobView::from).collect();
            page(
                "pocmesh — jobs",
                &format!(
                    "<header><h1>Jobs</h1>{}</header>{}",
                    nav("/jobs"),
                    render_jobs(
                        &views,
                        next.as_deref(),
                        &shown,
                        s.info["explorer"].as_str(),
                        unix_ms_now()
                    )
                ),
                LIVE_SCRIPT,
            )
        }
        Err(e) => error_page(e.status, &e.message),
    }
}

/// The batches page's `<main>`.
pub(super) fn render_batches(
    batches: &[BatchView],
    next: Option<&str>,
    explorer: Option<&str>,
    now_ms: u64,
) -> String {
    let recorded: Vec<&BatchView> = batches
        .iter()
        .filter(|b| b.gas_per_credit.is_some())
        .collect();
    let credits: usize = recorded.iter().map(|b| b.credits).sum();
    let gas: u64 = recorded.iter().filter_map(|b| b.gas_used).sum();
    let mut b = String::from("<main><section><h2>Batches</h2>");
    if credits > 0 {
        let _ = write!(
            b,
            "<div class=\"stats\"><div><div class=\"big\" id=\"gasPerCredit\">{}</div>gas per credit \
(the batches below)</div><div><div class=\"big\">{gas}</div>gas for {credits} credits</div></div>",
            gas / credits as u64
        );
    }
    b.push_str(
        "<p>Each batch is one <code>recordBatch</code> call: its credits' receipts under one \
Merkle root, one ERC-20 <code>Transfer</code> per wallet.</p><table><thead><tr><th>batch</th>\
<th>built</th><th>credits</th><th>wallets</th><th>units</th><th>state</th><th>transaction</th>\
<th>block</th><th>gas used</th><th>gas per credit</th></tr></thead><tbody id=\"batches\">",
    );
    for v in batches {
        let tx = tx_link(explorer, v.tx.as_ref());
        let state = match &v.reason {
            Some(r) => format!("<span class=\"warn\">{}</span>: {}", esc(&v.state), esc(r)),
            None => esc(&v.state),
        };
        let _ = write!(
            b,
            "<tr><td><a href=\"/v1/batches/{0}\">{1}</a></td><td>{2}</td><td>{3}</td><td>{4}</td>\
<td>{5}</td><td>{state}</td><td>{tx}</td><td>{6}</td><td class=\"gas\">{7}</td><td>{8}</td></tr>",
            v.id,
            short(&v.id.to_string()),
            ago(now_ms, v.created_ms),
            v.credits,
            v.wallets,
            v.units,
            v.block
                .map(|n| format!("<a href=\"/explorer/block/{n}\">{n}</a>"))
                .unwrap_or_default(),
            v.gas_used.map(|g| g.to_string()).unwrap_or_default(),
            v.gas_per_credit.map(|g| g.to_string()).unwrap_or_default(),
        );
    }
    if batches.is_empty() {
        b.push_str("<tr><td colspan=\"10\">no batch yet</td></tr>");
    }
    b.push_str("</tbody></table>");
    if let Some(c) = next {
        let _ = write!(
            b,
            "<p><a id=\"older\" href=\"/batches?cursor={}\">older batches →</a></p>",
            esc(c)
        );
    }
    b.push_str("</section></main>");
    b
}

/// `GET /batches?cursor=`: 50 batches a page.
pub(super) async fn batches_page(
    State(s): State<Arc<ApiState>>,
    Query(q): Query<BatchQuery>,
) -> Response {
    let q = BatchQuery {
        limit: Some(50),
        cursor: q.cursor,
    };
    match super::batches::page(&s, q).await {
        Ok((rows, next)) => page(
            "pocmesh — batches",
            &format!(
                "<header><h1>Batches</h1>{}</header>{}",
                nav("/batches"),
                render_batches(
                    &rows,
                    next.as_deref(),
                    s.info["explorer"].as_str(),
                    unix_ms_now()
                )
            ),
            LIVE_SCRIPT,
        ),
        Err(e) => error_page(e.status, &e.message),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lifecycle::JobState;
    use crate::policy::Exclusion;
    use crate::store::{BatchRow, BatchStatus};
    use pocmesh_protocol::{BatchId, Hash32, JobId};

    const NOW: u64 = 1_800_000_000_000;

    #[test]
    fn the_nodes_page_lists_online_first_with_capabilities_and_escapes_what_it_quotes() {
        let mut offline = crate::scheduler::tests::node(1);
        offline.online = false;
        offline.last_seen_ms = NOW - 7 * 60_000;
        let mut online = crate::scheduler::tests::node(2);
        online.last_seen_ms = NOW - 3_000;
        online.caps.gpu = Some("<b>RTX</b>".into());
        let mut bad = crate::scheduler::tests::node(3);
        bad.excluded = true;
        bad.trust = Trust::Excluded;
        bad.exclusion = Some(Exclusion {
            reason: "<script>alert(1)</script> proven wrong".into(),
            at_ms: NOW,
        });
        let html = render_nodes(&[offline, online, bad], NOW);
        assert!(html.contains("id=\"online\">2<"), "{html}");
        let first_online = html.find("3 s ago").expect("online node");
        let offline_at = html.find("7 min ago").expect("offline node");
        assert!(first_online < offline_at, "online nodes first: {html}");
        assert!(
            html.contains("2 · 1024 MiB · &lt;b&gt;RTX&lt;/b&gt;"),
            "{html}"
        );
        assert!(html.contains("hash, link_health"), "{html}");
        assert!(html.contains("trusted, 5 % re-run"), "{html}");
        assert!(!html.contains("<script>"), "quoted text is escaped: {html}");
        assert!(html.contains("excluded</span>: &lt;script&gt;"), "{html}");
        assert!(
            html.contains("href=\"/wallet/0x6565"),
            "wallet pages linked: {html}"
        );
        let empty = render_nodes(&[], NOW);
        assert!(
            empty.contains("pocmesh node run --wallet"),
            "says what to do: {empty}"
        );
    }

    fn job(n: u8, state: JobState) -> JobView {
        let mut job = crate::job_index::tests::job(n, NOW - 90_000);
        job.state = state;
        JobView::from(&job)
    }

    #[test]
    fn the_jobs_page_filters_by_state_links_the_credit_and_pages_on_with_the_cursor() {
        let recorded = job(
            1,
            JobState::Recorded {
                batch: BatchId::from([2; 32]),
                tx: Hash32([0xab; 32]),
                block: 4,
            },
        );
        let failed = job(
            3,
            JobState::Failed {
                reason: "<img src=x> no node".into(),
            },
        );
        let q = ListQuery {
            state: Some("recorded".into()),
            wallet: Some("0x<evil>".into()),
            ..ListQuery::default()
        };
        let html = render_jobs(&[recorded, failed], Some("00ff"), &q, None, NOW);
        assert!(html.contains("<strong>recorded</strong>"), "{html}");
        assert!(
            html.contains("href=\"/explorer/tx/0xabab"),
            "tx linked: {html}"
        );
        assert!(html.contains("1 min ago"), "{html}");
        assert!(
            !html.contains("<img") && !html.contains("<evil>"),
            "escaped: {html}"
        );
        assert!(
            html.contains(
                "href=\"/jobs?state=recorded&amp;wallet=0x&lt;evil&gt;&amp;cursor=00ff\""
            ),
            "the next page keeps the filter: {html}"
        );
        let last = render_jobs(
            &[],
            None,
            &ListQuery::default(),
            Some("https://x.test"),
            NOW,
        );
        assert!(!last.contains("older jobs"), "{last}");
        assert!(last.contains("no jobs here"), "{last}");
    }

    #[test]
    fn the_batches_page_shows_gas_per_credit_and_says_why_a_batch_was_refused() {
        let credit = |n: u8, wallet: u8| crate::lifecycle::Credit {
            job: JobId::from([n; 32]),
            node: pocmesh_protocol::Address([n; 20]),
            peer: "p".into(),
            wallet: pocmesh_protocol::Address([wallet; 20]),
            units: 10,
            result_hash: Hash32([n; 32]),
        };
        let recorded = BatchRow {
            id: BatchId::from([1; 32]),
            root: Hash32([1; 32]),
            credits: vec![credit(1, 7), credit(2, 7), credit(3, 8), credit(4, 9)],
            seqs: vec![1, 2, 3, 4],
            status: BatchStatus::Recorded {
                tx: Hash32([0xcd; 32]),
                block: 12,
                gas_used: Some(100_000),
            },
            created_ms: NOW - 2 * 3_600_000,
        };
        let refused = BatchRow {
            id: BatchId::from([2; 32]),
            root: Hash32([2; 32]),
            credits: vec![credit(5, 9)],
            seqs: vec![5],
            status: BatchStatus::Refused {
                reason: "<b>zero</b> wallet".into(),
            },
            created_ms: NOW,
        };
        let views = [BatchView::of(&refused), BatchView::of(&recorded)];
        assert_eq!(views[1].wallets, 3);
        assert_eq!(views[1].gas_per_credit, Some(25_000));
        let html = render_batches(&views, Some("aa"), None, NOW);
        assert!(html.contains("id=\"gasPerCredit\">25000<"), "{html}");
        assert!(html.contains("<td class=\"gas\">100000</td>"), "{html}");
        assert!(html.contains("href=\"/explorer/block/12\""), "{html}");
        assert!(html.contains("refused</span>: &lt;b&gt;zero"), "{html}");
        assert!(html.contains("/batches?cursor=aa"), "{html}");
        let full = BatchView::full(&recorded);
        assert_eq!(full.entries.len(), 3);
        assert_eq!(
            full.entries[0].units, 20,
            "two credits of one wallet are one entry"
        );
        assert_eq!(full.jobs.len(), 4);
    }

    #[test]
    fn ago_reads_at_a_glance() {
        let now = 10_000_000_000;
        assert_eq!(ago(now, 0), "never");
        assert_eq!(ago(now, now - 12_000), "12 s ago");
        assert_eq!(ago(now, now - 5 * 60_000), "5 min ago");
        assert_eq!(ago(now, now - 3 * 3_600_000), "3 h ago");
        assert_eq!(ago(now, now - 2 * 86_400_000), "2 d ago");
        // A clock a little behind the node's is not a negative age.
        assert_eq!(ago(now, now + 5_000), "0 s ago");
    }
}
