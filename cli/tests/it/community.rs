//! Community compute end to end on a devnet: an allow-list imported from CSV (a bad file refused
//! whole), a CSV of URLs turned into link-health jobs, a robots.txt re-check, every request
//! spaced by the domain's crawl delay, results at `/v1/health`, units on chain. The only site
//! touched is a local server on 127.0.0.1, reached as `localhost` with the devnet-only
//! `--allow-loopback-targets`; nothing leaves the machine.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use pocmesh_dispatcher::api::SubmitRequest;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::network::Mesh;
use crate::support::eventually;

/// Requests the local site saw: when, and which path.
type Log = Arc<Mutex<Vec<(Instant, String)>>>;

const ROBOTS: &str =
    "User-agent: *\nDisallow: /\n\nUser-agent: pocmesh\nDisallow: /private\nCrawl-delay: 1\n";

/// A tiny HTTP/1.1 site on 127.0.0.1: `/ok` 200, `/gone` 404, `/moved` 301 to `/ok`,
/// `/robots.txt`. Stops when the test's runtime ends.
async fn site() -> (u16, Log) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let log: Log = Arc::new(Mutex::new(Vec::new()));
    let seen = log.clone();
    tokio::spawn(async move {
        while let Ok((mut conn, _)) = listener.accept().await {
            let seen = seen.clone();
            tokio::spawn(async move {
                let mut buf = vec![0u8; 8192];
                let mut n = 0;
                while n < buf.len() {
                    match conn.read(&mut buf[n..]).await {
                        Ok(0) | Err(_) => return,
                        Ok(k) => n += k,
                    }
                    if buf[..n].windows(4).any(|w| w == b"\r\n\r\n") {
                        break;
                    }
                }
                let head = String::from_utf8_lossy(&buf[..n]).to_string();
                let path = head.split_whitespace().nth(1).unwrap_or("/").to_string();
                if let Ok(mut l) = seen.lock() {
                    l.push((Instant::now(), path.clone()));
                }
                let (status, extra, body) = match path.as_str() {
                    "/ok" => ("200 OK", String::new(), "fine".to_string()),
                    "/moved" => (
                        "301 Moved Permanently",
                        "Location: /ok\r\n".into(),
                        String::new(),
                    ),
                    "/robots.txt" => ("200 OK", String::new(), ROBOTS.to_string()),
                    _ => ("404 Not Found", String::new(), "no".to_string()),
                };
                let answer = format!(
                    "HTTP/1.1 {status}\r\n{extra}Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = conn.write_all(answer.as_bytes()).await;
            });
        }
    });
    (port, log)
}

fn pocmesh_ok(args: &[&str]) -> Value {
    let out = crate::pocmesh(args, None);
    assert!(
        out.status.success(),
        "pocmesh {args:?} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    crate::json(&out)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn link_and_robots_checks_from_csv_reach_health_and_the_chain() {
    let dir = tempfile::tempdir().expect("tmp");
    let (port, log) = site().await;
    let mut mesh = Mesh::start(dir.path(), 0).await;
    mesh.node_args = crate::support::args(&[
        "--job-types",
        "hash,wasm,link_health,robots_recheck",
        "--allow-loopback-targets",
    ]);
    mesh.add_nodes(2).await;
    let api = mesh.api.clone();
    let token = crate::network::TOKEN;

    // A bad allow-list file is refused whole, each bad line named; nothing is imported.
    let bad = dir.path().join("bad.csv");
    std::fs::write(
        &bad,
        "domain,allowed,crawl_delay_s\nlocalhost,yes,1\nhttp://x.test,yes,1\nelsewhere.test,maybe,\n",
    )
    .expect("write");
    let out = crate::pocmesh(
        &[
            "allowlist",
            "import",
            &bad.display().to_string(),
            "--api",
            &api,
            "--token",
            token,
        ],
        None,
    );
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("line 3") && err.contains("line 4"), "{err}");
    let list = pocmesh_ok(&["allowlist", "list", "--api", &api, "--json"]);
    assert_eq!(list, serde_json::json!([]), "nothing half-imported");

    let policy = dir.path().join("policy.csv");
    std::fs::write(
        &policy,
        "domain,allowed,crawl_delay_s,notes\nlocalhost,yes,1,the test site\n",
    )
    .expect("write");
    let summary = pocmesh_ok(&[
        "allowlist",
        "import",
        &policy.display().to_string(),
        "--api",
        &api,
        "--token",
        token,
        "--json",
    ]);
    assert_eq!(summary["created"], 1, "{summary}");

    // A domain not on the list is refused at submission, by name.
    let refused = mesh
        .client
        .submit(&SubmitRequest {
            job_type: "link_health".into(),
            url: Some("https://elsewhere.test/x".into()),
            ..SubmitRequest::default()
        })
        .await
        .expect_err("a domain off the list is refused");
    assert_eq!(refused.status(), Some(400), "{refused}");
    assert!(refused.to_string().contains("elsewhere.test"), "{refused}");

    // A CSV of URLs becomes jobs for the allowed ones only.
    let urls = dir.path().join("urls.csv");
    let base = format!("http://localhost:{port}");
    std::fs::write(
        &urls,
        format!(
            "org,url\nA,{base}/ok\nB,{base}/gone\nC,{base}/moved\nD,https://elsewhere.test/x\n"
        ),
    )
    .expect("write");
    let generated = pocmesh_ok(&[
        "job",
        "generate",
        "link-health",
        "--from",
        &urls.display().to_string(),
        "--api",
        &api,
        "--token",
        token,
        "--json",
    ]);
    let submitted = generated["submitted"]
        .as_array()
        .expect("submitted")
        .clone();
    assert_eq!(submitted.len(), 3, "{generated}");
    assert_eq!(
        generated["skipped"].as_array().map(Vec::len),
        Some(1),
        "{generated}"
    );
    // The site's port rides along in the domain on a devnet.
    let origin = format!("localhost:{port}");
    let robots = pocmesh_ok(&[
        "job",
        "generate",
        "robots-recheck",
        "--domain",
        &origin,
        "--path",
        "/private,/public",
        "--api",
        &api,
        "--token",
        token,
        "--json",
    ]);
    let mut ids: Vec<String> = submitted
        .iter()
        .chain(robots["submitted"].as_array().expect("robots"))
        .map(|s| s["id"].as_str().expect("id").to_string())
        .collect();
    ids.dedup();
    assert_eq!(ids.len(), 4);

    let jobs = mesh.all_recorded(&ids, Duration::from_secs(180)).await;
    for j in &jobs {
        assert!(
            j.units >= 1 && j.credits.iter().all(|c| c.units == 1),
            "{j:?}"
        );
    }

    // Health per URL and per domain.
    let health = eventually(
        "health recorded for the three links",
        Duration::from_secs(30),
        || async {
            let h = mesh.get("/v1/health?domain=localhost").await?;
            (h["urls_checked"] == 3).then_some(h)
        },
        || mesh.logs(),
    )
    .await;
    let url = |path: &str| {
        health["urls"]
            .as_array()
            .and_then(|u| u.iter().find(|x| x["url"] == format!("{base}{path}")))
            .cloned()
            .unwrap_or_default()
    };
    assert_eq!(url("/ok")["healthy"], true, "{health}");
    assert_eq!(url("/gone")["healthy"], false, "{health}");
    assert_eq!(url("/gone")["status"], 404, "{health}");
    assert_eq!(
        url("/moved")["healthy"],
        true,
        "a redirect to a 200 is healthy: {health}"
    );
    let verdicts = &health["robots"]["paths"];
    assert_eq!(verdicts[0]["path"], "/private");
    assert_eq!(verdicts[0]["allowed"], false, "{health}");
    assert_eq!(verdicts[1]["allowed"], true, "{health}");
    assert_eq!(health["robots"]["crawl_delay_s"], 1.0, "{health}");
    let cli = pocmesh_ok(&["health", "localhost", "--api", &api, "--json"]);
    assert_eq!(cli["urls_checked"], 3);

    // The site was never asked twice within its crawl delay (redirects followed at once are
    // part of one request's chain).
    let seen = log.lock().map(|l| l.clone()).unwrap_or_default();
    let starts: Vec<Instant> = seen
        .iter()
        .enumerate()
        .filter(|(i, (at, path))| {
            let follow_up = path == "/ok"
                && *i > 0
                && seen[i - 1].1 == "/moved"
                && at.duration_since(seen[i - 1].0) < Duration::from_millis(500);
            !follow_up
        })
        .map(|(_, (at, _))| *at)
        .collect();
    assert!(starts.len() >= 4, "{seen:?}");
    for w in starts.windows(2) {
        assert!(
            w[1].duration_since(w[0]) >= Duration::from_millis(500),
            "two requests {} ms apart under a 1 s crawl delay: {seen:?}",
            w[1].duration_since(w[0]).as_millis()
        );
    }
    mesh.check_chain(&jobs, &[]).await;
}
