//! One bounded GET, driven to its end on the calling (blocking) thread: every host name's
//! addresses are checked after resolution by a resolver that hands reqwest only the addresses
//! it checked (so nothing can re-resolve to another one), every redirect hop's URL is checked
//! before it is followed, and the timeout, the redirect cap and the body cap end the fetch.
//!
//! A fresh client and a current-thread runtime per fetch: a job's connections, DNS lookups
//! and timers live and die with it, and the same code runs on a daemon's `spawn_blocking`
//! thread and in a plain test.

use std::fmt;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use pocmesh_protocol::http_check::USER_AGENT;
use reqwest::dns::{Addrs, Resolve, Resolving};
use reqwest::redirect;
use url::Url;

use super::target::{Hop, TargetRefusal, TargetRules};

/// The future of one host lookup.
pub type LookupFuture = Pin<Box<dyn Future<Output = std::io::Result<Vec<IpAddr>>> + Send>>;

/// How host names become addresses: the system resolver on a node; a fixed table in tests
/// (which must not touch the internet). Whatever answers, the answers are checked.
pub trait HostLookup: Send + Sync + fmt::Debug {
    /// The addresses of `host` (an error is "DNS failure": the target is unreachable).
    fn lookup(&self, host: &str) -> LookupFuture;
}

/// The operating system's resolver (`getaddrinfo`: /etc/hosts, then DNS).
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemLookup;

impl HostLookup for SystemLookup {
    fn lookup(&self, host: &str) -> LookupFuture {
        let host = host.to_string();
        Box::pin(async move {
            let addrs = tokio::net::lookup_host((host.as_str(), 0)).await?;
            Ok(addrs.map(|a| a.ip()).collect())
        })
    }
}

/// A fixed table of host names and their addresses; any other name fails like an unknown
/// domain. For tests, which must resolve names without DNS.
#[derive(Debug, Clone, Default)]
pub struct StaticLookup {
    table: Vec<(String, Vec<IpAddr>)>,
}

impl StaticLookup {
    /// Adds `host` with its addresses.
    pub fn with(mut self, host: &str, ips: &[IpAddr]) -> Self {
        self.table.push((host.to_ascii_lowercase(), ips.to_vec()));
        self
    }
}

impl HostLookup for StaticLookup {
    fn lookup(&self, host: &str) -> LookupFuture {
        let found = self
            .table
            .iter()
            .find(|(h, _)| h.eq_ignore_ascii_case(host))
            .map(|(_, ips)| ips.clone());
        let host = host.to_string();
        Box::pin(async move {
            found.ok_or_else(|| {
                std::io::Error::new(
                    std::io::ErrorKind::NotFound,
                    format!("failed to lookup address information for {host}: not known"),
                )
            })
        })
    }
}

/// A node limit a fetch ran into; the job fails naming it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum LimitHit {
    /// The whole fetch (connect, redirects, body) took longer than the timeout.
    #[error("timeout of {ms} ms reached")]
    Timeout {
        /// The timeout, ms.
        ms: u64,
    },
    /// One more redirect than the cap allows.
    #[error("redirect cap of {cap} reached")]
    RedirectCap {
        /// Redirects allowed.
        cap: usize,
    },
    /// The body (or its announced length) is over the cap.
    #[error("response body over the {cap}-byte cap")]
    BodyCap {
        /// The cap, bytes.
        cap: u64,
    },
}

/// The limits of one fetch.
#[derive(Debug, Clone, Copy)]
pub(crate) struct FetchLimits {
    /// The whole fetch, ms.
    pub(crate) timeout_ms: u64,
    /// Redirects followed at most.
    pub(crate) max_redirects: usize,
    /// Body bytes read at most.
    pub(crate) body_cap: u64,
}

/// An answer.
#[derive(Debug, Clone)]
pub(crate) struct Fetched {
    /// The URL that gave it.
    pub(crate) final_url: Url,
    /// Its status.
    pub(crate) status: u16,
    /// Redirects followed to get there.
    pub(crate) redirects: usize,
    /// From the request to the final answer's headers, ms.
    pub(crate) latency_ms: u64,
    /// Body bytes read.
    pub(crate) bytes_read: u64,
    /// The body, when asked to keep it.
    pub(crate) body: Vec<u8>,
}

/// Why a fetch gave no complete answer.
#[derive(Debug)]
pub(crate) enum FetchError {
    /// A node limit: the job fails.
    Limit(LimitHit),
    /// A target rule refused a hop or an address: the job fails.
    Refused(TargetRefusal),
    /// No HTTP answer (DNS, connection, TLS): that is the health answer, not a failure.
    Unreachable {
        /// The URL that could not be reached.
        url: Url,
        /// Redirects followed before it.
        redirects: usize,
        /// Why.
        reason: String,
    },
    /// The answer came but its body broke off.
    BodyBroken {
        /// What was read.
        fetched: Box<Fetched>,
        /// Why it broke off.
        reason: String,
    },
    /// This machine could not set the fetch up.
    Local(String),
}

/// What a redirect hop or a resolution refused, read after reqwest reports the error.
type StopSlot = Arc<Mutex<Option<FetchError>>>;

fn stop_with(slot: &StopSlot, error: FetchError) {
    if let Ok(mut s) = slot.lock()
        && s.is_none()
    {
        *s = Some(error);
    }
}

/// Resolves through a [`HostLookup`] and refuses hosts with a refused address.
struct CheckedResolver {
    rules: TargetRules,
    lookup: Arc<dyn HostLookup>,
    stop: StopSlot,
}

impl Resolve for CheckedResolver {
    fn resolve(&self, name: hyper014::client::connect::dns::Name) -> Resolving {
        let host = name.as_str().to_string();
        let rules = self.rules.clone();
        let lookup = self.lookup.clone();
        let stop = self.stop.clone();
        Box::pin(async move {
            let ips = lookup.lookup(&host).await?;
            if ips.is_empty() {
                return Err(format!("no address found for {host}").into());
            }
            if let Err(refusal) = rules.check_resolved(&host, &ips) {
                stop_with(&stop, FetchError::Refused(refusal.clone()));
                return Err(refusal.into());
            }
            // Port 0: the connector puts the URL's port on each address.
            let addrs: Addrs = Box::new(ips.into_iter().map(|ip| SocketAddr::new(ip, 0)));
            Ok(addrs)
        })
    }
}

/// GETs `url` within `limits`, checking every hop and address against `rules`. Blocking.
pub(crate) fn fetch(
    url: &Url,
    rules: &TargetRules,
    lookup: Arc<dyn HostLookup>,
    limits: FetchLimits,
    keep_body: bool,
) -> Result<Fetched, FetchError> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| FetchError::Local(format!("cannot start the HTTP runtime: {e}")))?;
    let result = runtime.block_on(fetch_async(url, rules, lookup, limits, keep_body));
    // A lookup still running on the runtime's blocking pool is not waited for.
    runtime.shutdown_background();
    result
}

async fn fetch_async(
    url: &Url,
    rules: &TargetRules,
    lookup: Arc<dyn HostLookup>,
    limits: FetchLimits,
    keep_body: bool,
) -> Result<Fetched, FetchError> {
    let stop: StopSlot = Arc::default();
    let hops = Arc::new(AtomicUsize::new(0));
    let client = client(rules, lookup, limits.max_redirects, &stop, &hops)?;
    let start = Instant::now();
    let work = async {
        let mut response = match client.get(url.clone()).send().await {
            Ok(r) => r,
            Err(e) => {
                return Err(match stop.lock().ok().and_then(|mut s| s.take()) {
                    Some(stopped) => stopped,
                    None => FetchError::Unreachable {
                        url: e.url().cloned().unwrap_or_else(|| url.clone()),
                        redirects: hops.load(Ordering::SeqCst),
                        reason: describe(&e),
                    },
                });
            }
        };
        let mut fetched = Fetched {
            final_url: response.url().clone(),
            status: response.status().as_u16(),
            redirects: hops.load(Ordering::SeqCst),
            latency_ms: super::super::elapsed_ms(start),
            bytes_read: 0,
            body: Vec::new(),
        };
        let over = FetchError::Limit(LimitHit::BodyCap {
            cap: limits.body_cap,
        });
        if response
            .content_length()
            .is_some_and(|len| len > limits.body_cap)
        {
            return Err(over);
        }
        loop {
            match response.chunk().await {
                Ok(Some(chunk)) => {
                    fetched.bytes_read += chunk.len() as u64;
                    if fetched.bytes_read > limits.body_cap {
                        return Err(over);
                    }
                    if keep_body {
                        fetched.body.extend_from_slice(&chunk);
                    }
                }
                Ok(None) => return Ok(fetched),
                Err(e) => {
                    return Err(FetchError::BodyBroken {
                        reason: format!("reading the body: {}", describe(&e)),
                        fetched: Box::new(fetched),
                    });
                }
            }
        }
    };
    match tokio::time::timeout(Duration::from_millis(limits.timeout_ms), work).await {
        Ok(result) => result,
        Err(_) => Err(FetchError::Limit(LimitHit::Timeout {
            ms: limits.timeout_ms,
        })),
    }
}

fn client(
    rules: &TargetRules,
    lookup: Arc<dyn HostLookup>,
    max_redirects: usize,
    stop: &StopSlot,
    hops: &Arc<AtomicUsize>,
) -> Result<reqwest::Client, FetchError> {
    let policy = {
        let rules = rules.clone();
        let stop = stop.clone();
        let hops = hops.clone();
        redirect::Policy::custom(move |attempt| {
            // `previous` holds the first URL and every hop followed so far.
            let n = attempt.previous().len();
            if n > max_redirects {
                let hit = LimitHit::RedirectCap { cap: max_redirects };
                stop_with(&stop, FetchError::Limit(hit));
                return attempt.error(hit);
            }
            if let Err(refusal) = rules.check_url(attempt.url(), Hop::Redirect) {
                stop_with(&stop, FetchError::Refused(refusal.clone()));
                return attempt.error(refusal);
            }
            hops.store(n, Ordering::SeqCst);
            attempt.follow()
        })
    };
    reqwest::Client::builder()
        .user_agent(USER_AGENT)
        // A proxy would resolve and connect on our behalf, past every check here.
        .no_proxy()
        .referer(false)
        .redirect(policy)
        .dns_resolver(Arc::new(CheckedResolver {
            rules: rules.clone(),
            lookup,
            stop: stop.clone(),
        }))
        .build()
        .map_err(|e| FetchError::Local(format!("cannot build the HTTP client: {e}")))
}

/// The causes of a reqwest error without its URL, each said once ("error trying to connect:
/// tcp connect error: Connection refused (os error 111)").
fn describe(e: &reqwest::Error) -> String {
    let mut text = String::new();
    let mut source = std::error::Error::source(e);
    while let Some(cause) = source {
        let message = cause.to_string();
        if !text.contains(&message) {
            if !text.is_empty() {
                text.push_str(": ");
            }
            text.push_str(&message);
        }
        source = cause.source();
    }
    if text.is_empty() {
        text = e.to_string();
    }
    text
}
