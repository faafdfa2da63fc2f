//! The allow-list: the domains HTTP check jobs may touch, each with its crawl policy, and the
//! two CSV files it is kept in (docs/ethical-crawling.md describes the columns).
//!
//! - The **policy** CSV says which domains may be checked at all and how gently:
//!   `domain,allowed,crawl_delay_s,notes` (`crawl_delay_s` and `notes` optional).
//! - The **robots audit** CSV records what each site's robots.txt said when last audited:
//!   `domain,robots_status,crawl_delay_s,last_audited,notes` (`robots_status` is one of
//!   `allows`, `partial`, `disallows`, `missing`, `error`; the last three columns optional).
//!   An audit never grants permission: a domain only in the audit is stored as not allowed.
//!
//! A file is parsed whole before anything is stored: one bad line refuses the file, and every
//! bad line is reported with its number. Pure: no I/O; the engine stores the result.

use std::collections::BTreeMap;
use std::collections::HashSet;

use serde::{Deserialize, Serialize};

/// Crawl delay when the policy does not give one, seconds.
pub const DEFAULT_CRAWL_DELAY_S: u32 = 10;
/// Longest crawl delay accepted, seconds (a day).
pub const MAX_CRAWL_DELAY_S: u32 = 86_400;
/// Most rows in one imported file.
pub const MAX_ROWS: usize = 100_000;

/// Which of the two CSV files.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CsvKind {
    /// `domain,allowed,crawl_delay_s,notes`
    Policy,
    /// `domain,robots_status,crawl_delay_s,last_audited,notes`
    RobotsAudit,
}

impl CsvKind {
    /// The columns a file of this kind may have, required first.
    pub fn columns(self) -> (&'static [&'static str], &'static [&'static str]) {
        match self {
            CsvKind::Policy => (&["domain", "allowed"], &["crawl_delay_s", "notes"]),
            CsvKind::RobotsAudit => (
                &["domain", "robots_status"],
                &["crawl_delay_s", "last_audited", "notes"],
            ),
        }
    }
}

impl std::str::FromStr for CsvKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "policy" => Ok(CsvKind::Policy),
            "robots" | "robots_audit" | "robots-audit" => Ok(CsvKind::RobotsAudit),
            other => Err(format!(
                "unknown allow-list file kind `{other}`; use `policy` or `robots-audit`"
            )),
        }
    }
}

/// What a site's robots.txt said at the last audit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RobotsStatus {
    /// Everything we check is allowed.
    Allows,
    /// Some paths are disallowed.
    Partial,
    /// pocmesh may not fetch anything: the domain is not checked.
    Disallows,
    /// No robots.txt (everything allowed).
    Missing,
    /// robots.txt could not be read.
    Error,
}

impl RobotsStatus {
    fn parse(s: &str) -> Result<Self, String> {
        match s.trim().to_ascii_lowercase().as_str() {
            "allows" | "allowed" => Ok(RobotsStatus::Allows),
            "partial" => Ok(RobotsStatus::Partial),
            "disallows" | "disallowed" => Ok(RobotsStatus::Disallows),
            "missing" => Ok(RobotsStatus::Missing),
            "error" => Ok(RobotsStatus::Error),
            other => Err(format!(
                "robots_status `{other}` is not one of allows, partial, disallows, missing, error"
            )),
        }
    }

    /// The CSV spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            RobotsStatus::Allows => "allows",
            RobotsStatus::Partial => "partial",
            RobotsStatus::Disallows => "disallows",
            RobotsStatus::Missing => "missing",
            RobotsStatus::Error => "error",
        }
    }
}

/// One domain's policy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AllowEntry {
    /// The domain (lower case); it covers its subdomains unless they have their own entry.
    pub domain: String,
    /// Whether HTTP checks may touch it.
    pub allowed: bool,
    /// Least time between two requests to it, seconds.
    pub crawl_delay_s: u32,
    /// What its robots.txt said at the last audit.
    #[serde(default)]
    pub robots_status: Option<RobotsStatus>,
    /// When it was last audited (`YYYY-MM-DD`).
    #[serde(default)]
    pub last_audited: Option<String>,
    /// Free text.
    #[serde(default)]
    pub notes: String,
    /// When this entry last changed, unix ms.
    pub updated_ms: u64,
}

impl AllowEntry {
    /// Whether checks may touch it: allowed, and its robots.txt does not shut pocmesh out.
    pub fn permits(&self) -> bool {
        self.allowed && self.robots_status != Some(RobotsStatus::Disallows)
    }
}

/// One bad line of an imported file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LineError {
    /// 1-based line number in the file (the header is line 1).
    pub line: u64,
    /// What is wrong and how to fix it.
    pub reason: String,
}

/// A parsed row of either file.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    /// Its line.
    pub line: u64,
    /// The domain.
    pub domain: String,
    /// Policy: allowed.
    pub allowed: Option<bool>,
    /// Crawl delay, when given.
    pub crawl_delay_s: Option<u32>,
    /// Audit: robots status.
    pub robots_status: Option<RobotsStatus>,
    /// Audit: date.
    pub last_audited: Option<String>,
    /// Notes, when given.
    pub notes: Option<String>,
}

/// What an import changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ImportSummary {
    /// Rows in the file.
    pub rows: usize,
    /// Domains added.
    pub created: usize,
    /// Domains changed.
    pub updated: usize,
}

/// A host or domain name as stored: lower case, no trailing dot, valid DNS labels (or
/// `localhost`); no scheme, port, path or address literal.
pub fn normalise_domain(raw: &str) -> Result<String, String> {
    let d = raw.trim().trim_end_matches('.').to_ascii_lowercase();
    if d.is_empty() {
        return Err("the domain is empty".into());
    }
    if d.contains("://") || d.contains('/') || d.contains(':') || d.contains('@') {
        return Err(format!(
            "`{raw}` is not a bare domain; write only the host name, e.g. example.org"
        ));
    }
    if d.parse::<std::net::IpAddr>().is_ok() {
        return Err(format!(
            "`{raw}` is an address; the allow-list takes domain names"
        ));
    }
    if d.len() > 253 {
        return Err(format!("`{raw}` is longer than 253 characters"));
    }
    for label in d.split('.') {
        let ok = !label.is_empty()
            && label.len() <= 63
            && !label.starts_with('-')
            && !label.ends_with('-')
            && label
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if !ok {
            return Err(format!(
                "`{raw}` is not a valid domain name (label `{label}`)"
            ));
        }
    }
    if d.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
        return Err(format!("`{raw}` is not a domain name"));
    }
    Ok(d)
}

fn parse_bool(s: &str) -> Result<bool, String> {
    match s.trim().to_ascii_lowercase().as_str() {
        "yes" | "true" | "1" | "y" | "allowed" => Ok(true),
        "no" | "false" | "0" | "n" | "denied" => Ok(false),
        other => Err(format!("allowed `{other}` is not yes/no")),
    }
}

fn parse_delay(s: &str) -> Result<Option<u32>, String> {
    let s = s.trim();
    if s.is_empty() {
        return Ok(None);
    }
    let v: u32 = s
        .parse()
        .map_err(|_| format!("crawl_delay_s `{s}` is not a whole number of seconds"))?;
    if v > MAX_CRAWL_DELAY_S {
        return Err(format!(
            "crawl_delay_s {v} is over {MAX_CRAWL_DELAY_S} (a day)"
        ));
    }
    Ok(Some(v))
}

fn parse_date(s: &str) -> Result<Option<String>, String> {
    let s = s.trim();
    if s.is_empty() {
        return Ok(None);
    }
    let b = s.as_bytes();
    let shape = b.len() == 10
        && b[4] == b'-'
        && b[7] == b'-'
        && b.iter()
            .enumerate()
            .all(|(i, c)| i == 4 || i == 7 || c.is_ascii_digit());
    let month: u32 = s.get(5..7).and_then(|m| m.parse().ok()).unwrap_or(0);
    let day: u32 = s.get(8..10).and_then(|d| d.parse().ok()).unwrap_or(0);
    if !shape || !(1..=12).contains(&month) || !(1..=31).contains(&day) {
        return Err(format!("last_audited `{s}` is not a date YYYY-MM-DD"));
    }
    Ok(Some(s.to_string()))
}

/// Parses a whole file of `kind`; every bad line is reported, and nothing is returned unless
/// all lines are good.
pub fn parse(kind: CsvKind, text: &str) -> Result<Vec<Row>, Vec<LineError>> {
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(true)
        .flexible(false)
        .trim(csv::Trim::All)
        .comment(Some(b'#'))
        .from_reader(text.as_bytes());
    let err1 = |line: u64, reason: String| vec![LineError { line, reason }];
    let headers = match reader.headers() {
        Ok(h) => h.clone(),
        Err(e) => return Err(err1(1, format!("cannot read the header: {e}"))),
    };
    let (required, optional) = kind.columns();
    let names: Vec<String> = headers.iter().map(|h| h.to_ascii_lowercase()).collect();
    let mut errors = Vec::new();
    for n in &names {
        if !required.contains(&n.as_str()) && !optional.contains(&n.as_str()) {
            errors.push(LineError {
                line: 1,
                reason: format!(
                    "unknown column `{n}`; a {} file has columns {}",
                    match kind {
                        CsvKind::Policy => "policy",
                        CsvKind::RobotsAudit => "robots-audit",
                    },
                    required
                        .iter()
                        .chain(optional)
                        .copied()
                        .collect::<Vec<_>>()
                        .join(",")
                ),
            });
        }
    }
    for r in required {
        if !names.iter().any(|n| n == r) {
            errors.push(LineError {
                line: 1,
                reason: format!("the required column `{r}` is missing"),
            });
        }
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    let col = |name: &str| names.iter().position(|n| n == name);
    let (c_domain, c_allowed, c_delay, c_status, c_date, c_notes) = (
        col("domain"),
        col("allowed"),
        col("crawl_delay_s"),
        col("robots_status"),
        col("last_audited"),
        col("notes"),
    );
    let mut rows = Vec::new();
    let mut seen: HashSet<String> = HashSet::new();
    for record in reader.records() {
        let record = match record {
            Ok(r) => r,
            Err(e) => {
                let line = e.position().map_or(0, |p| p.line());
                errors.push(LineError {
                    line,
                    reason: format!("not a valid CSV row: {e}"),
                });
                continue;
            }
        };
        let line = record.position().map_or(0, |p| p.line());
        if rows.len() + errors.len() >= MAX_ROWS {
            errors.push(LineError {
                line,
                reason: format!("more than {MAX_ROWS} rows; split the file"),
            });
            break;
        }
        let field = |c: Option<usize>| c.and_then(|i| record.get(i)).unwrap_or("");
        let mut bad = |reason: String| errors.push(LineError { line, reason });
        let domain = match normalise_domain(field(c_domain)) {
            Ok(d) => d,
            Err(e) => {
                bad(e);
                continue;
            }
        };
        if !seen.insert(domain.clone()) {
            bad(format!("`{domain}` appears twice in the file"));
            continue;
        }
        let allowed = match c_allowed.map(|_| parse_bool(field(c_allowed))) {
            Some(Err(e)) => {
                bad(e);
                continue;
            }
            Some(Ok(v)) => Some(v),
            None => None,
        };
        let crawl_delay_s = match parse_delay(field(c_delay)) {
            Ok(v) => v,
            Err(e) => {
                bad(e);
                continue;
            }
        };
        let robots_status = match c_status.map(|_| RobotsStatus::parse(field(c_status))) {
            Some(Err(e)) => {
                bad(e);
                continue;
            }
            Some(Ok(v)) => Some(v),
            None => None,
        };
        let last_audited = match parse_date(field(c_date)) {
            Ok(v) => v,
            Err(e) => {
                bad(e);
                continue;
            }
        };
        let notes = c_notes.map(|_| field(c_notes).to_string());
        rows.push(Row {
            line,
            domain,
            allowed,
            crawl_delay_s,
            robots_status,
            last_audited,
            notes,
        });
    }
    if errors.is_empty() {
        Ok(rows)
    } else {
        Err(errors)
    }
}

/// The allow-list in memory.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AllowList {
    entries: BTreeMap<String, AllowEntry>,
}

impl AllowList {
    /// A list of these entries.
    pub fn from_entries(entries: impl IntoIterator<Item = AllowEntry>) -> Self {
        AllowList {
            entries: entries.into_iter().map(|e| (e.domain.clone(), e)).collect(),
        }
    }

    /// Every entry, in domain order.
    pub fn entries(&self) -> impl Iterator<Item = &AllowEntry> {
        self.entries.values()
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Applies parsed rows of `kind`; returns the summary and the entries that changed.
    pub fn apply(
        &mut self,
        kind: CsvKind,
        rows: &[Row],
        now_ms: u64,
    ) -> (ImportSummary, Vec<AllowEntry>) {
        let mut summary = ImportSummary {
            rows: rows.len(),
            ..ImportSummary::default()
        };
        let mut changed = Vec::new();
        for row in rows {
            let existing = self.entries.get(&row.domain).cloned();
            let mut e = existing.clone().unwrap_or(AllowEntry {
                domain: row.domain.clone(),
                allowed: false,
                crawl_delay_s: DEFAULT_CRAWL_DELAY_S,
                robots_status: None,
                last_audited: None,
                notes: String::new(),
                updated_ms: now_ms,
            });
            match kind {
                CsvKind::Policy => {
                    e.allowed = row.allowed.unwrap_or(false);
                    if let Some(d) = row.crawl_delay_s {
                        e.crawl_delay_s = d;
                    }
                }
                CsvKind::RobotsAudit => {
                    e.robots_status = row.robots_status;
                    if row.last_audited.is_some() {
                        e.last_audited.clone_from(&row.last_audited);
                    }
                    // A site may ask for more patience than our policy; never for less.
                    if let Some(d) = row.crawl_delay_s {
                        e.crawl_delay_s = e.crawl_delay_s.max(d);
                    }
                }
            }
            if let Some(n) = &row.notes {
                e.notes.clone_from(n);
            }
            let same = existing.as_ref().is_some_and(|x| {
                let mut x = x.clone();
                x.updated_ms = e.updated_ms;
                x == e
            });
            if same {
                continue;
            }
            e.updated_ms = now_ms;
            if existing.is_some() {
                summary.updated += 1;
            } else {
                summary.created += 1;
            }
            self.entries.insert(e.domain.clone(), e.clone());
            changed.push(e);
        }
        (summary, changed)
    }

    /// The entry that decides for `host`: its own, else its closest parent domain's.
    pub fn entry_for(&self, host: &str) -> Option<&AllowEntry> {
        let host = host.trim_end_matches('.').to_ascii_lowercase();
        let mut rest = host.as_str();
        loop {
            if let Some(e) = self.entries.get(rest) {
                return Some(e);
            }
            rest = rest.split_once('.')?.1;
        }
    }

    /// The entry that lets checks touch `host`, or why not (with the domain named).
    pub fn permits(&self, host: &str) -> Result<&AllowEntry, String> {
        match self.entry_for(host) {
            Some(e) if e.permits() => Ok(e),
            Some(e) if !e.allowed => Err(format!(
                "domain {host} is on the allow-list as not allowed (entry {})",
                e.domain
            )),
            Some(e) => Err(format!(
                "domain {host}: its robots.txt disallows pocmesh (entry {}, audited {})",
                e.domain,
                e.last_audited.as_deref().unwrap_or("?")
            )),
            None => Err(format!(
                "domain {host} is not on the allow-list; add it with `pocmesh allowlist import`"
            )),
        }
    }

    /// The whole list as one CSV with every column.
    pub fn to_csv(&self) -> String {
        let mut w = csv::Writer::from_writer(Vec::new());
        let _ = w.write_record([
            "domain",
            "allowed",
            "crawl_delay_s",
            "robots_status",
            "last_audited",
            "notes",
        ]);
        for e in self.entries.values() {
            let _ = w.write_record([
                e.domain.as_str(),
                if e.allowed { "yes" } else { "no" },
                &e.crawl_delay_s.to_string(),
                e.robots_status.map_or("", RobotsStatus::as_str),
                e.last_audited.as_deref().unwrap_or(""),
                e.notes.as_str(),
            ]);
        }
        String::from_utf8(w.into_inner().unwrap_or_default()).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn domains_are_bare_names() {
        assert_eq!(
            normalise_domain(" Example.ORG. ").as_deref(),
            Ok("example.org")
        );
        assert_eq!(normalise_domain("localhost").as_deref(), Ok("localhost"));
        for bad in [
            "",
            "https://x.org",
            "x.org/path",
            "x.org:80",
            "10.0.0.1",
            "-x.org",
            "a..b",
            "1.2.3",
        ] {
            assert!(normalise_domain(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_policy_file_is_parsed_whole_or_refused_with_every_bad_line() {
        let good = "domain,allowed,crawl_delay_s,notes\n\
                    grants.example.org,yes,30,main list\n\
                    # a comment\n\
                    old.example.net,no,,retired\n";
        let rows = parse(CsvKind::Policy, good).expect("valid");
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0].crawl_delay_s, Some(30));
        assert_eq!(rows[1].allowed, Some(false));
        let bad = "domain,allowed,crawl_delay_s\n\
                   ok.org,yes,5\n\
                   http://x.org,yes,5\n\
                   ok.org,no,5\n\
                   y.org,maybe,5\n\
                   z.org,yes,-3\n";
        let errors = parse(CsvKind::Policy, bad).expect_err("refused");
        let lines: Vec<u64> = errors.iter().map(|e| e.line).collect();
        assert_eq!(lines, vec![3, 4, 5, 6], "{errors:?}");
        assert!(errors[1].reason.contains("twice"));
        let missing =
            parse(CsvKind::Policy, "domain,crawl_delay_s\nx.org,3\n").expect_err("no allowed");
        assert!(missing[0].reason.contains("`allowed`"));
        let unknown =
            parse(CsvKind::Policy, "domain,allowed,colour\nx.org,yes,red\n").expect_err("col");
        assert!(unknown[0].reason.contains("colour"));
        let ragged =
            parse(CsvKind::Policy, "domain,allowed\nx.org,yes,extra\n").expect_err("ragged");
        assert_eq!(ragged[0].line, 2);
    }

    #[test]
    fn an_audit_never_grants_and_robots_can_shut_a_domain() {
        let mut list = AllowList::default();
        let policy = parse(
            CsvKind::Policy,
            "domain,allowed,crawl_delay_s\na.org,yes,5\nb.org,yes,5\n",
        )
        .expect("policy");
        let (s, changed) = list.apply(CsvKind::Policy, &policy, 1);
        assert_eq!((s.created, s.updated, changed.len()), (2, 0, 2));
        let audit = parse(
            CsvKind::RobotsAudit,
            "domain,robots_status,crawl_delay_s,last_audited\n\
             a.org,allows,60,2026-11-30\n\
             b.org,disallows,,2026-11-30\n\
             c.org,allows,,2026-11-30\n",
        )
        .expect("audit");
        let (s, _) = list.apply(CsvKind::RobotsAudit, &audit, 2);
        assert_eq!((s.created, s.updated), (1, 2));
        assert_eq!(
            list.permits("a.org").map(|e| e.crawl_delay_s),
            Ok(60),
            "the site's delay wins when longer"
        );
        assert!(
            list.permits("b.org")
                .expect_err("robots")
                .contains("robots")
        );
        assert!(
            list.permits("c.org")
                .expect_err("not allowed")
                .contains("not allowed")
        );
        assert!(
            list.permits("d.org")
                .expect_err("absent")
                .contains("not on the allow-list")
        );
        // Subdomains follow their closest entry.
        assert!(list.permits("www.a.org").is_ok());
        // Importing the same file again changes nothing.
        let (s, changed) = list.apply(CsvKind::RobotsAudit, &audit, 3);
        assert_eq!((s.created, s.updated, changed.len()), (0, 0, 0));
        let csv = list.to_csv();
        assert!(csv.starts_with("domain,allowed,crawl_delay_s,robots_status,last_audited,notes\n"));
        assert!(csv.contains("b.org,yes,5,disallows,2026-11-30,"));
    }

    #[test]
    fn audit_dates_and_statuses_are_checked() {
        let e = parse(
            CsvKind::RobotsAudit,
            "domain,robots_status,last_audited\na.org,sometimes,2026-01-01\nb.org,allows,2026-13-01\n",
        )
        .expect_err("bad");
        assert_eq!(e.len(), 2);
        assert!(e[0].reason.contains("robots_status"));
        assert!(e[1].reason.contains("YYYY-MM-DD"));
    }
}
