//! The HTTP check executors against local servers on 127.0.0.1, started and stopped by each
//! test: limits that fail the job naming themselves (timeout, redirect cap, body cap), targets
//! that are refused (private redirects, names resolving to private or loopback addresses), and
//! the reports of ordinary answers. Names other than `localhost` resolve through a fixed table:
//! nothing here touches the internet, and nothing connects to a refused address.

use std::io::Write;
use std::net::{IpAddr, SocketAddr, TcpListener as StdListener};
use std::sync::Arc;

use axum::Router;
use axum::extract::Path;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::Redirect;
use axum::routing::get;
use pocmesh_executor::http::target::{DenyList, TargetRules};
use pocmesh_executor::http::{HttpExecutor, HttpPolicy, StaticLookup};
use pocmesh_executor::{Execution, Executor, Executors};
use pocmesh_protocol::http_check::{LinkHealthReport, RobotsReport, USER_AGENT};
use pocmesh_protocol::{Hash32, JobParams, JobSpec, JobType, Limits, ResultStatus};
use tokio_util::sync::CancellationToken;

/// An HTTP server on 127.0.0.1 with its own runtime; stopped when dropped.
struct TestServer {
    addr: SocketAddr,
    stop: CancellationToken,
    runtime: Option<tokio::runtime::Runtime>,
}

impl TestServer {
    fn start(app: Router) -> TestServer {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("server runtime");
        let listener = runtime
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .expect("bind 127.0.0.1");
        let addr = listener.local_addr().expect("local addr");
        let stop = CancellationToken::new();
        let stopped = stop.clone();
        runtime.spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(stopped.cancelled_owned())
                .await;
        });
        TestServer {
            addr,
            stop,
            runtime: Some(runtime),
        }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.stop.cancel();
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

/// A server that answers every connection with a chunked body of `size` bytes and no
/// Content-Length (so the cap is met while reading, not from the headers).
struct ChunkedServer {
    addr: SocketAddr,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl ChunkedServer {
    fn start(size: usize) -> ChunkedServer {
        let listener = StdListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("addr");
        let thread = std::thread::spawn(move || {
            // One connection: the test makes one request.
            if let Ok((mut stream, _)) = listener.accept() {
                let mut request = [0u8; 4096];
                let _ = std::io::Read::read(&mut stream, &mut request);
                let _ = stream.write_all(
                    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n",
                );
                let chunk = vec![b'x'; 16 * 1024];
                let mut sent = 0;
                while sent < size {
                    let n = chunk.len().min(size - sent);
                    let head = format!("{n:x}\r\n");
                    if stream.write_all(head.as_bytes()).is_err()
                        || stream.write_all(&chunk[..n]).is_err()
                        || stream.write_all(b"\r\n").is_err()
                    {
                        return;
                    }
                    sent += n;
                }
                let _ = stream.write_all(b"0\r\n\r\n");
            }
        });
        ChunkedServer {
            addr,
            thread: Some(thread),
        }
    }
}

impl Drop for ChunkedServer {
    fn drop(&mut self) {
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The site every link test talks to.
fn site() -> TestServer {
    async fn redirect_chain(Path(n): Path<u32>) -> Redirect {
        if n == 0 {
            Redirect::to("/ok")
        } else {
            Redirect::to(&format!("/r/{}", n - 1))
        }
    }
    async fn only_pocmesh(headers: HeaderMap) -> StatusCode {
        match headers
            .get(header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
        {
            Some(ua) if ua == USER_AGENT => StatusCode::OK,
            _ => StatusCode::FORBIDDEN,
        }
    }
    TestServer::start(
        Router::new()
            .route("/ok", get(|| async { "hello, checker" }))
            .route("/missing", get(|| async { StatusCode::NOT_FOUND }))
            .route("/r/{n}", get(redirect_chain))
            .route("/slow", get(std::future::pending::<&'static str>))
            .route("/big", get(|| async { vec![b'x'; 2 * 1024 * 1024] }))
            .route(
                "/to-private",
                get(|| async { Redirect::to("http://10.0.0.1/") }),
            )
            .route(
                "/to-internal",
                get(|| async { Redirect::to("http://internal.test/") }),
            )
            .route(
                "/to-denied",
                get(|| async { Redirect::to("http://www.denied.test/") }),
            )
            .route(
                "/to-ftp",
                get(|| async { Redirect::to("ftp://files.example/x") }),
            )
            .route("/ua", get(only_pocmesh)),
    )
}

fn limits() -> Limits {
    Limits {
        max_ms: 10_000,
        max_mem_mb: 16,
        max_output_bytes: 64 * 1024,
        max_fuel: None,
    }
}

/// A devnet policy: loopback allowed (the test servers), everything else as in production.
fn devnet() -> HttpPolicy {
    HttpPolicy {
        rules: TargetRules {
            deny: DenyList::new(&["denied.test"]).expect("deny-list"),
            allow_loopback: true,
        },
        ..HttpPolicy::default()
    }
}

fn lookup() -> Arc<StaticLookup> {
    Arc::new(
        StaticLookup::default()
            .with("internal.test", &[ip("10.1.2.3")])
            .with("intranet.test", &[ip("192.168.1.10")])
            .with("metadata.test", &[ip("169.254.169.254")])
            .with("mapped.test", &[ip("::ffff:10.9.9.9")]),
    )
}

fn ip(s: &str) -> IpAddr {
    s.parse().expect("address")
}

fn link(policy: HttpPolicy) -> HttpExecutor {
    HttpExecutor::link_health(Arc::new(policy)).with_lookup(lookup())
}

fn robots(policy: HttpPolicy) -> HttpExecutor {
    HttpExecutor::robots_recheck(Arc::new(policy)).with_lookup(lookup())
}

#[track_caller]
fn assert_failed_with(run: &Execution, expected: &str) {
    assert_eq!(
        run.status,
        ResultStatus::Failed,
        "expected a failure: {run:?}"
    );
    let error = run.error.as_deref().unwrap_or_default();
    assert!(
        error.contains(expected),
        "error {error:?} does not contain {expected:?}"
    );
    assert!(run.output.is_empty());
}

#[track_caller]
fn link_report(run: &Execution) -> LinkHealthReport {
    assert_eq!(run.status, ResultStatus::Ok, "expected a report: {run:?}");
    assert_eq!(run.metering.fuel, 0);
    assert_eq!(run.metering.bytes, run.output.len() as u64);
    serde_json::from_slice(&run.output).expect("a link_health report")
}

#[track_caller]
fn robots_report(run: &Execution) -> RobotsReport {
    assert_eq!(run.status, ResultStatus::Ok, "expected a report: {run:?}");
    serde_json::from_slice(&run.output).expect("a robots report")
}

fn closed_port() -> u16 {
    let listener = StdListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().expect("addr").port()
}

#[test]
fn a_good_link_a_missing_page_and_a_followed_redirect_are_reported() {
    let site = site();
    let exec = link(devnet());

    let ok = link_report(&exec.check_link(&site.url("/ok"), None, &limits()));
    assert!(ok.reachable && ok.as_expected && !ok.redirected);
    assert_eq!(ok.status, Some(200));
    assert_eq!(ok.url, site.url("/ok"));
    assert_eq!(ok.final_url, site.url("/ok"));
    assert_eq!(ok.bytes_read, "hello, checker".len() as u64);
    assert_eq!(ok.error, None);

    let missing = link_report(&exec.check_link(&site.url("/missing"), None, &limits()));
    assert!(missing.reachable && !missing.as_expected);
    assert_eq!(missing.status, Some(404));
    let expected_404 = link_report(&exec.check_link(&site.url("/missing"), Some(404), &limits()));
    assert!(expected_404.as_expected, "404 was the expected status");

    let followed = link_report(&exec.check_link(&site.url("/r/2"), None, &limits()));
    assert!(followed.redirected && followed.as_expected);
    assert_eq!(followed.status, Some(200));
    assert_eq!(followed.final_url, site.url("/ok"));
    assert_eq!(followed.url, site.url("/r/2"));

    // Exactly the cap is still followed.
    let at_cap = link_report(&exec.check_link(&site.url("/r/4"), None, &limits()));
    assert_eq!(
        at_cap.final_url,
        site.url("/ok"),
        "5 redirects with a cap of 5"
    );

    // The identifying user agent, on a GET (the route answers GET only).
    let ua = link_report(&exec.check_link(&site.url("/ua"), None, &limits()));
    assert_eq!(ua.status, Some(200), "the server saw pocmesh's user agent");
}

#[test]
fn limits_fail_the_job_naming_themselves() {
    let site = site();
    let exec = link(devnet());

    let chain = exec.check_link(&site.url("/r/6"), None, &limits());
    assert_failed_with(&chain, "redirect cap of 5 reached");
    let strict = link(HttpPolicy {
        max_redirects: 1,
        ..devnet()
    });
    assert_failed_with(
        &strict.check_link(&site.url("/r/1"), None, &limits()),
        "redirect cap of 1 reached",
    );

    let short = link(HttpPolicy {
        timeout_ms: 300,
        ..devnet()
    });
    assert_failed_with(
        &short.check_link(&site.url("/slow"), None, &limits()),
        "timeout of 300 ms reached",
    );
    // The job's own limit lowers the node's timeout, never the other way round.
    let tight = Limits {
        max_ms: 250,
        ..limits()
    };
    let slow = exec.check_link(&site.url("/slow"), None, &tight);
    assert_failed_with(&slow, "timeout of 250 ms reached");
    assert!(slow.local_cause, "a timeout may pass elsewhere");

    // Announced length over the cap.
    assert_failed_with(
        &exec.check_link(&site.url("/big"), None, &limits()),
        "response body over the 1048576-byte cap",
    );
    // No announced length: the cap is met while reading, and reading stops there.
    let chunked = ChunkedServer::start(64 * 1024);
    let small = link(HttpPolicy {
        max_body_bytes: 10_000,
        ..devnet()
    });
    assert_failed_with(
        &small.check_link(&format!("http://{}/", chunked.addr), None, &limits()),
        "response body over the 10000-byte cap",
    );
}

#[test]
fn redirects_and_names_to_refused_addresses_fail_the_job() {
    let site = site();
    let exec = link(devnet());
    assert_failed_with(
        &exec.check_link(&site.url("/to-private"), None, &limits()),
        "redirect to a private address 10.0.0.1 refused",
    );
    assert_failed_with(
        &exec.check_link(&site.url("/to-internal"), None, &limits()),
        "host internal.test resolves to a private address 10.1.2.3, refused",
    );
    assert_failed_with(
        &exec.check_link(&site.url("/to-denied"), None, &limits()),
        "redirect to denied domain www.denied.test refused (deny-list entry denied.test)",
    );
    assert_failed_with(
        &exec.check_link(&site.url("/to-ftp"), None, &limits()),
        "redirect to a ftp: URL refused",
    );
    for (url, expected) in [
        (
            "http://intranet.test/",
            "host intranet.test resolves to a private address 192.168.1.10",
        ),
        (
            "http://metadata.test/latest",
            "host metadata.test resolves to a link-local address 169.254.169.254",
        ),
        (
            "http://mapped.test/",
            "host mapped.test resolves to a private address ::ffff:10.9.9.9",
        ),
    ] {
        assert_failed_with(&exec.check_link(url, None, &limits()), expected);
    }
}

#[test]
fn loopback_is_refused_without_the_devnet_flag() {
    let site = site();
    // The system resolver: `localhost` comes from /etc/hosts, no DNS query leaves the machine.
    let production = HttpExecutor::link_health(Arc::new(HttpPolicy::default()));
    let port = site.addr.port();
    assert_failed_with(
        &production.check_link(&format!("http://localhost:{port}/ok"), None, &limits()),
        "host localhost resolves to a loopback address",
    );
    assert_failed_with(
        &production.check_link(&format!("http://127.0.0.1:{port}/ok"), None, &limits()),
        "a loopback address 127.0.0.1 refused",
    );
    assert_failed_with(
        &production.check_link(&format!("http://[::1]:{port}/ok"), None, &limits()),
        "a loopback address ::1 refused",
    );
    // The same URLs with the flag reach the server.
    let ok = link_report(&HttpExecutor::link_health(Arc::new(devnet())).check_link(
        &format!("http://localhost:{port}/ok"),
        None,
        &limits(),
    ));
    assert_eq!(ok.status, Some(200));
}

#[test]
fn an_unreachable_target_is_a_report_not_a_failure() {
    let exec = link(devnet());
    let refused = link_report(&exec.check_link(
        &format!("http://127.0.0.1:{}/", closed_port()),
        None,
        &limits(),
    ));
    assert!(!refused.reachable && !refused.as_expected);
    assert_eq!(refused.status, None);
    let error = refused.error.unwrap_or_default();
    assert!(
        error.to_lowercase().contains("connection refused"),
        "{error}"
    );

    let unknown = link_report(&exec.check_link("http://no-such-host.test/", None, &limits()));
    assert!(!unknown.reachable);
    assert!(
        unknown
            .error
            .as_deref()
            .is_some_and(|e| e.contains("no-such-host.test")),
        "{unknown:?}"
    );
}

const ROBOTS: &str = "\
User-agent: *
Disallow: /private
Crawl-delay: 5

User-agent: pocmesh
Disallow: /no-pocmesh
Allow: /no-pocmesh/but-this
Crawl-delay: 2.5
";

#[test]
fn robots_rules_are_read_for_pocmesh() {
    let server = TestServer::start(Router::new().route("/robots.txt", get(|| async { ROBOTS })));
    let exec = robots(devnet());
    let domain = server.addr.to_string();
    let paths: Vec<String> = [
        "/public",
        "/no-pocmesh/page",
        "/no-pocmesh/but-this",
        "/private",
    ]
    .map(String::from)
    .to_vec();
    let report = robots_report(&exec.recheck_robots(&domain, &paths, &limits()));
    assert_eq!(report.domain, domain);
    assert_eq!(report.status, Some(200));
    assert_eq!(report.size, ROBOTS.len() as u64);
    assert_eq!(report.content_hash, Hash32::keccak(ROBOTS.as_bytes()));
    assert_eq!(report.crawl_delay_s, Some(2.5), "pocmesh's own group");
    let verdicts: Vec<(&str, bool)> = report
        .paths
        .iter()
        .map(|p| (p.path.as_str(), p.allowed))
        .collect();
    assert_eq!(
        verdicts,
        vec![
            ("/public", true),
            ("/no-pocmesh/page", false),
            ("/no-pocmesh/but-this", true),
            // The `*` group does not apply: pocmesh has a group of its own.
            ("/private", true),
        ]
    );
    assert_eq!(report.error, None);
}

#[test]
fn robots_404_allows_everything_and_5xx_or_silence_allows_nothing() {
    let paths = vec!["/a".to_string(), "/b/c".to_string()];
    let exec = robots(devnet());

    let empty = TestServer::start(Router::new());
    let r404 = robots_report(&exec.recheck_robots(&empty.addr.to_string(), &paths, &limits()));
    assert_eq!(r404.status, Some(404));
    assert!(r404.paths.iter().all(|p| p.allowed), "{r404:?}");
    assert_eq!(r404.crawl_delay_s, None);

    let broken = TestServer::start(Router::new().route(
        "/robots.txt",
        get(|| async { (StatusCode::SERVICE_UNAVAILABLE, "down") }),
    ));
    let r503 = robots_report(&exec.recheck_robots(&broken.addr.to_string(), &paths, &limits()));
    assert_eq!(r503.status, Some(503));
    assert!(r503.paths.iter().all(|p| !p.allowed), "{r503:?}");

    let silent = format!("127.0.0.1:{}", closed_port());
    let none = robots_report(&exec.recheck_robots(&silent, &paths, &limits()));
    assert_eq!(none.status, None);
    assert_eq!(none.size, 0);
    assert!(none.paths.iter().all(|p| !p.allowed));
    assert!(none.error.is_some());

    // robots.txt has its own, smaller cap.
    let huge = TestServer::start(
        Router::new().route("/robots.txt", get(|| async { "#".repeat(600 * 1024) })),
    );
    assert_failed_with(
        &exec.recheck_robots(&huge.addr.to_string(), &paths, &limits()),
        "response body over the 524288-byte cap",
    );
}

#[test]
fn robots_of_a_loopback_domain_are_refused_without_the_flag() {
    let exec = robots(HttpPolicy::default());
    assert_failed_with(
        &exec.recheck_robots("127.0.0.1", &[], &limits()),
        "a loopback address 127.0.0.1 refused",
    );
    assert_failed_with(
        &exec.recheck_robots("internal.test", &[], &limits()),
        "host internal.test resolves to a private address 10.1.2.3",
    );
}

#[test]
fn checks_run_on_the_daemons_blocking_threads_through_the_registry() {
    let site = site();
    let executors = Arc::new(
        Executors::with_options(
            &[JobType::LinkHealth],
            &pocmesh_executor::ExecutorOptions {
                http: devnet(),
                ..Default::default()
            },
        )
        .expect("executors"),
    );
    let spec = JobSpec {
        params: JobParams::LinkHealth {
            url: site.url("/ok"),
            expected_status: None,
        },
        limits: limits(),
    };
    // As in the daemon: a multi-thread runtime hands the job to its blocking pool.
    let daemon = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("daemon runtime");
    let run = daemon
        .block_on(async move { tokio::task::spawn_blocking(move || executors.run(&spec)).await })
        .expect("blocking worker");
    assert_eq!(link_report(&run).status, Some(200));

    // A link executor given a robots job says so instead of running it.
    let wrong = link(devnet()).execute(
        &JobParams::RobotsRecheck {
            domain: "a.test".into(),
            paths: vec![],
        },
        &limits(),
    );
    assert_failed_with(&wrong, "cannot run a robots_recheck job");
}
