//! The dispatcher's durable state (sled): jobs with their attempts, the outbox of verified
//! credits, batches on their way to the chain, quarantined credits, each node's standing (trust,
//! reliability, exclusion), flagged wallets, counters, and the audit secret. Every change is one
//! transaction over the trees it touches, flushed before anyone hears about it.

use std::collections::HashMap;
use std::path::Path;

use pocmesh_protocol::{Address, BatchId, Hash32, JobId};
use serde::{Deserialize, Serialize};
use sled::Transactional;
use sled::transaction::{ConflictableTransactionError, TransactionError};

use crate::allowlist::AllowEntry;
use crate::health::{DomainHealth, UrlHealth};
use crate::lifecycle::{Credit, Job, QuarantinedCredit};
use crate::policy::{AuditKey, Exclusion, Standing};

/// Why the store failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// sled reported an error (disk full, corrupt file, permissions).
    #[error(
        "dispatcher store at {path}: {source}; check free disk space and permissions of the data dir"
    )]
    Sled {
        /// The store's directory.
        path: String,
        /// sled's error.
        source: sled::Error,
    },
    /// A stored row could not be decoded.
    #[error("dispatcher store row in `{tree}` is unreadable: {reason}")]
    Corrupt {
        /// The tree.
        tree: &'static str,
        /// Why.
        reason: String,
    },
}

/// Where a batch stands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "state")]
pub enum BatchStatus {
    /// Built and persisted; the recorder is (re)sending it.
    Pending,
    /// On chain.
    Recorded {
        /// The transaction.
        tx: Hash32,
        /// Its block.
        block: u64,
        /// Gas its transaction used (unknown for batches recorded before this was kept, or
        /// found on chain after a restart).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        gas_used: Option<u64>,
    },
    /// The contract would refuse it (one wallet it can never credit); never sent. Its other
    /// credits went back to the outbox.
    Refused {
        /// The contract's reason.
        reason: String,
    },
}

/// A batch of credits for one `recordBatch` call.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BatchRow {
    /// Content-derived id.
    pub id: BatchId,
    /// Receipts root.
    pub root: Hash32,
    /// The credits, in leaf order.
    pub credits: Vec<Credit>,
    /// Their outbox sequence numbers, aligned with `credits` (to put them back in order if the
    /// contract refuses the batch).
    #[serde(default)]
    pub seqs: Vec<u64>,
    /// Where it stands.
    pub status: BatchStatus,
    /// When it was built, unix ms.
    pub created_ms: u64,
}

/// Counters kept with the data.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counters {
    /// Job ids handed out.
    pub job_seq: u64,
    /// Outbox entries handed out.
    pub outbox_seq: u64,
    /// Units recorded on chain.
    pub units_recorded: u64,
    /// Batches recorded on chain.
    pub batches_recorded: u64,
    /// Credits quarantined (they can never be recorded).
    #[serde(default)]
    pub credits_quarantined: u64,
    /// Units of the quarantined credits.
    #[serde(default)]
    pub units_quarantined: u64,
}

/// One atomic set of changes.
#[derive(Debug, Default)]
pub struct Changes {
    /// Jobs to write (whole rows).
    pub jobs: Vec<Job>,
    /// For jobs in `jobs` whose listing the writer knows: what the job index lists them under
    /// now (new jobs: nothing). Others have it read from their previous row.
    pub indexed_as: HashMap<JobId, crate::job_index::Listed>,
    /// Credits entering the outbox, with their sequence numbers.
    pub outbox_add: Vec<(u64, Credit)>,
    /// Outbox entries leaving it (batched).
    pub outbox_remove: Vec<u64>,
    /// Batches to write.
    pub batches: Vec<BatchRow>,
    /// New counters, if they changed.
    pub counters: Option<Counters>,
    /// Node standings to write.
    pub standings: Vec<(Address, Standing)>,
    /// Wallets to flag.
    pub wallets: Vec<(Address, Exclusion)>,
    /// Credits entering quarantine.
    pub quarantine: Vec<QuarantinedCredit>,
    /// Allow-list entries to write.
    pub allowlist: Vec<AllowEntry>,
    /// URL health records to write.
    pub health_urls: Vec<UrlHealth>,
    /// Domain health records to write.
    pub health_domains: Vec<DomainHealth>,
}

impl Changes {
    /// Whether there is nothing to write.
    pub fn is_empty(&self) -> bool {
        self.jobs.is_empty()
            && self.outbox_add.is_empty()
            && self.outbox_remove.is_empty()
            && self.batches.is_empty()
            && self.counters.is_none()
            && self.standings.is_empty()
            && self.wallets.is_empty()
            && self.quarantine.is_empty()
            && self.allowlist.is_empty()
            && self.health_urls.is_empty()
            && self.health_domains.is_empty()
    }
}

const COUNTERS: &[u8] = b"counters";
const AUDIT_KEY: &[u8] = b"audit_key";

/// The URL health row key: domain, a zero byte, the URL (so a domain's URLs are one prefix).
fn url_key(domain: &str, url: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(domain.len() + 1 + url.len());
    k.extend_from_slice(domain.as_bytes());
    k.push(0);
    k.extend_from_slice(url.as_bytes());
    k
}

/// A batch's key in the time order: when it was built, then its id.
fn batch_order_key(b: &BatchRow) -> [u8; 40] {
    let mut k = [0u8; 40];
    k[..8].copy_from_slice(&b.created_ms.to_be_bytes());
    k[8..].copy_from_slice(b.id.as_bytes());
    k
}

/// The quarantine row key: job id then node address.
fn quarantine_key(c: &Credit) -> [u8; 52] {
    let mut k = [0u8; 52];
    k[..32].copy_from_slice(c.job.as_bytes());
    k[32..].copy_from_slice(c.node.as_bytes());
    k
}

/// The dispatcher's sled database with typed trees.
#[derive(Clone)]
pub struct DispatcherStore {
    path: String,
    db: sled::Db,
    jobs: sled::Tree,
    outbox: sled::Tree,
    batches: sled::Tree,
    meta: sled::Tree,
    nodes: sled::Tree,
    wallets: sled::Tree,
    quarantine: sled::Tree,
    allowlist: sled::Tree,
    health_urls: sled::Tree,
    health_domains: sled::Tree,
    /// Listings by time, state and wallet ([`crate::job_index`]).
    job_index: sled::Tree,
    /// Batches by the time they were built: `created_ms` (big-endian) then the id.
    batch_order: sled::Tree,
}

impl std::fmt::Debug for DispatcherStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DispatcherStore")
            .field("path", &self.path)
            .finish()
    }
}

fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    // Serialising plain structs into a Vec cannot fail.
    serde_cbor::to_vec(value).unwrap_or_default()
}

fn decode<T: for<'de> Deserialize<'de>>(tree: &'static str, bytes: &[u8]) -> Result<T, StoreError> {
    serde_cbor::from_slice(bytes).map_err(|e| StoreError::Corrupt {
        tree,
        reason: e.to_string(),
    })
}

impl DispatcherStore {
    /// Opens (or creates) the store in `dir`.
    pub fn open(dir: &Path) -> Result<Self, StoreError> {
        let path = dir.display().to_string();
        let err = |source| StoreError::Sled {
            path: path.clone(),
            source,
        };
        let db = sled::Config::new()
            .path(dir)
            .mode(sled::Mode::HighThroughput)
            .open()
            .map_err(err)?;
        let store = DispatcherStore {
            jobs: db.open_tree("jobs").map_err(err)?,
            outbox: db.open_tree("outbox").map_err(err)?,
            batches: db.open_tree("batches").map_err(err)?,
            meta: db.open_tree("meta").map_err(err)?,
            nodes: db.open_tree("nodes").map_err(err)?,
            wallets: db.open_tree("wallets").map_err(err)?,
            quarantine: db.open_tree("quarantine").map_err(err)?,
            allowlist: db.open_tree("allowlist").map_err(err)?,
            health_urls: db.open_tree("health_urls").map_err(err)?,
            health_domains: db.open_tree("health_domains").map_err(err)?,
            job_index: db.open_tree("job_index").map_err(err)?,
            batch_order: db.open_tree("batch_order").map_err(err)?,
            db,
            path,
        };
        store.build_index_if_missing()?;
        store.build_batch_order_if_missing()?;
        Ok(store)
    }

    /// A store written before the job indexes existed gets them built once, at open.
    fn build_index_if_missing(&self) -> Result<(), StoreError> {
        if !self.job_index.is_empty() || self.jobs.is_empty() {
            return Ok(());
        }
        let mut n = 0u64;
        for job in self.jobs() {
            crate::job_index::write_direct(&self.job_index, &job?).map_err(|e| self.err(e))?;
            n += 1;
        }
        self.job_index.flush().map_err(|e| self.err(e))?;
        tracing::info!(jobs = n, "job indexes built");
        Ok(())
    }

    /// A store written before batches were listed by time gets that order built once, at open.
    fn build_batch_order_if_missing(&self) -> Result<(), StoreError> {
        if !self.batch_order.is_empty() || self.batches.is_empty() {
            return Ok(());
        }
        for row in self.batches()? {
            self.batch_order
                .insert(batch_order_key(&row), &[][..])
                .map_err(|e| self.err(e))?;
        }
        self.batch_order.flush().map_err(|e| self.err(e))?;
        Ok(())
    }

    /// A page of batches, newest first, after `cursor` (from a previous page); with the cursor
    /// of the next page when there may be more. Reads only the rows it returns.
    pub fn list_batches(
        &self,
        limit: usize,
        cursor: Option<&str>,
    ) -> Result<(Vec<BatchRow>, Option<String>), crate::job_index::ListError> {
        use crate::job_index::{cursor_of, parse_cursor};
        let end = match cursor {
            Some(c) => parse_cursor(c)?,
            None => [0xff; 40],
        };
        let limit = limit.max(1);
        let mut out = Vec::new();
        for row in self.batch_order.range(..end.to_vec()).rev() {
            let (key, _) = row.map_err(|e| self.err(e))?;
            let Some(id) = key.get(8..40).and_then(|b| <[u8; 32]>::try_from(b).ok()) else {
                continue;
            };
            let Some(batch) = self.batch(&BatchId::from(id))? else {
                continue;
            };
            out.push(batch);
            if out.len() == limit {
                return Ok((out, cursor_of(&key)));
            }
        }
        Ok((out, None))
    }

    /// The block of the oldest batch this dispatcher recorded (looking at its 100 oldest
    /// batches), if any: no credit of its own is older.
    pub fn first_recorded_block(&self) -> Result<Option<u64>, StoreError> {
        for row in self.batch_order.iter().take(100) {
            let (key, _) = row.map_err(|e| self.err(e))?;
            let Some(id) = key.get(8..40).and_then(|b| <[u8; 32]>::try_from(b).ok()) else {
                continue;
            };
            if let Some(BatchRow {
                status: BatchStatus::Recorded { block, .. },
                ..
            }) = self.batch(&BatchId::from(id))?
                && block > 0
            {
                return Ok(Some(block));
            }
        }
        Ok(None)
    }

    /// Opens the store in `dir` again after a test dropped it: sled's flusher may hold the
    /// lock for a moment after the drop.
    #[cfg(test)]
    pub(crate) fn reopen_for_test(dir: &Path) -> Self {
        (0..250)
            .find_map(|_| {
                DispatcherStore::open(dir).ok().or_else(|| {
                    std::thread::sleep(std::time::Duration::from_millis(20));
                    None
                })
            })
            .expect("the store reopens")
    }

    /// Forgets the job indexes, as a store from before they existed (tests of the rebuild).
    #[cfg(test)]
    pub(crate) fn drop_index_for_test(&self) {
        self.job_index.clear().expect("clear");
        self.job_index.flush().expect("flush");
    }

    /// A page of jobs under `filter`, newest first, after `cursor` (from a previous page); with
    /// the cursor of the next page when there may be more. Reads only the rows it returns
    /// (and any stale index entries on the way).
    pub fn list_jobs(
        &self,
        filter: &crate::job_index::JobFilter<'_>,
        limit: usize,
        cursor: Option<&str>,
    ) -> Result<(Vec<Job>, Option<String>), crate::job_index::ListError> {
        use crate::job_index::{cursor_of, id_of, matches, parse_cursor, prefix};
        let prefix = prefix(filter)?;
        let mut end = prefix.clone();
        match cursor {
            Some(c) => end.extend_from_slice(&parse_cursor(c)?),
            None => end.extend_from_slice(&[0xff; 41]),
        }
        let limit = limit.max(1);
        let mut out = Vec::new();
        for row in self.job_index.range(prefix..end).rev() {
            let (key, _) = row.map_err(|e| self.err(e))?;
            let Some(id) = id_of(&key) else { continue };
            let Some(job) = self.job(&id)? else { continue };
            if !matches(&job, filter) {
                continue;
            }
            out.push(job);
            if out.len() == limit {
                return Ok((out, cursor_of(&key)));
            }
        }
        Ok((out, None))
    }

    fn err(&self, source: sled::Error) -> StoreError {
        StoreError::Sled {
            path: self.path.clone(),
            source,
        }
    }

    /// Writes `changes` in one transaction and flushes.
    pub fn commit(&self, changes: &Changes) -> Result<(), StoreError> {
        self.commit_with(changes, &[])
    }

    /// [`DispatcherStore::commit`] with more job rows to write, borrowed (the engine writes its
    /// jobs from memory without copying them).
    pub(crate) fn commit_with(&self, changes: &Changes, more: &[&Job]) -> Result<(), StoreError> {
        if changes.is_empty() && more.is_empty() {
            return Ok(());
        }
        (
            &self.jobs,
            &self.outbox,
            &self.batches,
            &self.meta,
            &self.nodes,
            &self.wallets,
            &self.quarantine,
            &self.allowlist,
            &self.health_urls,
            &self.health_domains,
            &self.job_index,
            &self.batch_order,
        )
            .transaction(
                |(
                    jobs,
                    outbox,
                    batches,
                    meta,
                    nodes,
                    wallets,
                    quarantine,
                    allowlist,
                    health_urls,
                    health_domains,
                    job_index,
                    batch_order,
                )| {
                    for job in changes.jobs.iter().chain(more.iter().copied()) {
                        let key = &job.id.as_bytes()[..];
                        // What the index lists the job under: known to the engine, else what
                        // its previous row says (the row and the index are written together).
                        let was = match changes.indexed_as.get(&job.id) {
                            Some(was) => *was,
                            // An unreadable old row is listed as new: a stale index entry
                            // is skipped by readers, a stopped dispatcher helps nobody.
                            None => jobs
                                .get(key)?
                                .and_then(|b| decode::<Job>("jobs", &b).ok())
                                .map(|old| crate::job_index::Listed::of(&old))
                                .unwrap_or_default(),
                        };
                        jobs.insert(key, encode(job))?;
                        crate::job_index::write(job_index, job, was)?;
                    }
                    for (seq, credit) in &changes.outbox_add {
                        outbox.insert(&seq.to_be_bytes()[..], encode(credit))?;
                    }
                    for seq in &changes.outbox_remove {
                        outbox.remove(&seq.to_be_bytes()[..])?;
                    }
                    for batch in &changes.batches {
                        batches.insert(&batch.id.as_bytes()[..], encode(batch))?;
                        batch_order.insert(&batch_order_key(batch)[..], &[][..])?;
                    }
                    if let Some(c) = &changes.counters {
                        meta.insert(COUNTERS, encode(c))?;
                    }
                    for (node, standing) in &changes.standings {
                        nodes.insert(&node.as_bytes()[..], encode(standing))?;
                    }
                    for (wallet, mark) in &changes.wallets {
                        wallets.insert(&wallet.as_bytes()[..], encode(mark))?;
                    }
                    for q in &changes.quarantine {
                        quarantine.insert(&quarantine_key(&q.credit)[..], encode(q))?;
                    }
                    for e in &changes.allowlist {
                        allowlist.insert(e.domain.as_bytes(), encode(e))?;
                    }
                    for h in &changes.health_urls {
                        health_urls.insert(url_key(&h.domain, &h.url), encode(h))?;
                    }
                    for d in &changes.health_domains {
                        health_domains.insert(d.domain.as_bytes(), encode(d))?;
                    }
                    Ok::<(), ConflictableTransactionError<StoreError>>(())
                },
            )
            .map_err(|e| match e {
                TransactionError::Abort(e) => e,
                TransactionError::Storage(e) => self.err(e),
            })?;
        self.db.flush().map_err(|e| self.err(e))?;
        Ok(())
    }

    /// The counters.
    pub fn counters(&self) -> Result<Counters, StoreError> {
        match self.meta.get(COUNTERS).map_err(|e| self.err(e))? {
            Some(b) => decode("meta", &b),
            None => Ok(Counters::default()),
        }
    }

    /// One job.
    pub fn job(&self, id: &JobId) -> Result<Option<Job>, StoreError> {
        match self.jobs.get(id.as_bytes()).map_err(|e| self.err(e))? {
            Some(b) => decode("jobs", &b).map(Some),
            None => Ok(None),
        }
    }

    /// Every job, in id order.
    pub fn jobs(&self) -> impl Iterator<Item = Result<Job, StoreError>> + '_ {
        self.jobs.iter().map(move |row| {
            let (_, v) = row.map_err(|e| self.err(e))?;
            decode("jobs", &v)
        })
    }

    /// The outbox, in order.
    pub fn outbox(&self) -> Result<Vec<(u64, Credit)>, StoreError> {
        let mut out = Vec::new();
        for row in self.outbox.iter() {
            let (k, v) = row.map_err(|e| self.err(e))?;
            let seq = <[u8; 8]>::try_from(k.as_ref())
                .map(u64::from_be_bytes)
                .map_err(|_| StoreError::Corrupt {
                    tree: "outbox",
                    reason: "key is not 8 bytes".into(),
                })?;
            out.push((seq, decode("outbox", &v)?));
        }
        Ok(out)
    }

    /// The audit secret, created (and flushed) on first use. Never leaves the store but for
    /// the engine; never logged.
    pub fn audit_key(&self) -> Result<AuditKey, StoreError> {
        if let Some(b) = self.meta.get(AUDIT_KEY).map_err(|e| self.err(e))? {
            let bytes = <[u8; 32]>::try_from(b.as_ref()).map_err(|_| StoreError::Corrupt {
                tree: "meta",
                reason: "the audit key is not 32 bytes".into(),
            })?;
            return Ok(AuditKey::from_bytes(bytes));
        }
        let key = AuditKey::generate();
        self.meta
            .insert(AUDIT_KEY, &key.to_bytes()[..])
            .map_err(|e| self.err(e))?;
        self.db.flush().map_err(|e| self.err(e))?;
        Ok(key)
    }

    /// Every stored node standing.
    pub fn standings(&self) -> Result<Vec<(Address, Standing)>, StoreError> {
        self.address_rows(&self.nodes, "nodes")
    }

    /// Every flagged wallet.
    pub fn flagged_wallets(&self) -> Result<Vec<(Address, Exclusion)>, StoreError> {
        self.address_rows(&self.wallets, "wallets")
    }

    fn address_rows<T: for<'de> Deserialize<'de>>(
        &self,
        tree: &sled::Tree,
        name: &'static str,
    ) -> Result<Vec<(Address, T)>, StoreError> {
        let mut out = Vec::new();
        for row in tree.iter() {
            let (k, v) = row.map_err(|e| self.err(e))?;
            let bytes = <[u8; 20]>::try_from(k.as_ref()).map_err(|_| StoreError::Corrupt {
                tree: name,
                reason: "key is not a 20-byte address".into(),
            })?;
            out.push((Address(bytes), decode(name, &v)?));
        }
        Ok(out)
    }

    /// Quarantined credits, most recent `limit` at most, and how many there are in all.
    pub fn quarantined(&self, limit: usize) -> Result<(Vec<QuarantinedCredit>, usize), StoreError> {
        let mut rows = Vec::new();
        for row in self.quarantine.iter() {
            let (_, v) = row.map_err(|e| self.err(e))?;
            rows.push(decode::<QuarantinedCredit>("quarantine", &v)?);
        }
        let total = rows.len();
        rows.sort_by_key(|q| std::cmp::Reverse(q.at_ms));
        rows.truncate(limit);
        Ok((rows, total))
    }

    /// The allow-list.
    pub fn allowlist(&self) -> Result<Vec<AllowEntry>, StoreError> {
        let mut out = Vec::new();
        for row in self.allowlist.iter() {
            let (_, v) = row.map_err(|e| self.err(e))?;
            out.push(decode("allowlist", &v)?);
        }
        Ok(out)
    }

    /// One URL's health record.
    pub fn url_health(&self, domain: &str, url: &str) -> Result<Option<UrlHealth>, StoreError> {
        match self
            .health_urls
            .get(url_key(domain, url))
            .map_err(|e| self.err(e))?
        {
            Some(b) => decode("health_urls", &b).map(Some),
            None => Ok(None),
        }
    }

    /// The health records of a domain's URLs, at most `limit`.
    pub fn urls_of(&self, domain: &str, limit: usize) -> Result<Vec<UrlHealth>, StoreError> {
        let mut prefix = domain.as_bytes().to_vec();
        prefix.push(0);
        let mut out = Vec::new();
        for row in self.health_urls.scan_prefix(prefix).take(limit) {
            let (_, v) = row.map_err(|e| self.err(e))?;
            out.push(decode("health_urls", &v)?);
        }
        Ok(out)
    }

    /// A domain's health record.
    pub fn domain_health(&self, domain: &str) -> Result<Option<DomainHealth>, StoreError> {
        match self
            .health_domains
            .get(domain.as_bytes())
            .map_err(|e| self.err(e))?
        {
            Some(b) => decode("health_domains", &b).map(Some),
            None => Ok(None),
        }
    }

    /// One batch.
    pub fn batch(&self, id: &BatchId) -> Result<Option<BatchRow>, StoreError> {
        match self.batches.get(id.as_bytes()).map_err(|e| self.err(e))? {
            Some(v) => decode("batches", &v).map(Some),
            None => Ok(None),
        }
    }

    /// Every batch.
    pub fn batches(&self) -> Result<Vec<BatchRow>, StoreError> {
        let mut out = Vec::new();
        for row in self.batches.iter() {
            let (_, v) = row.map_err(|e| self.err(e))?;
            out.push(decode("batches", &v)?);
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn batch(n: u8, created_ms: u64) -> BatchRow {
        BatchRow {
            id: BatchId::from([n; 32]),
            root: Hash32([n; 32]),
            credits: Vec::new(),
            seqs: Vec::new(),
            status: BatchStatus::Pending,
            created_ms,
        }
    }

    #[test]
    fn batches_list_newest_first_page_by_page_and_an_old_store_gets_the_order_at_open() {
        let dir = tempfile::tempdir().expect("tmp");
        let store = DispatcherStore::open(dir.path()).expect("open");
        // Ids out of time order, so a listing by id would come out wrong.
        let rows = [
            batch(9, 1_000),
            batch(3, 2_000),
            batch(7, 3_000),
            batch(1, 4_000),
        ];
        store
            .commit(&Changes {
                batches: rows.to_vec(),
                ..Changes::default()
            })
            .expect("commit");
        // The newest lands: rewritten with its gas, still listed once.
        let mut landed = rows[3].clone();
        landed.status = BatchStatus::Recorded {
            tx: Hash32([0xaa; 32]),
            block: 7,
            gas_used: Some(123_456),
        };
        store
            .commit(&Changes {
                batches: vec![landed.clone()],
                ..Changes::default()
            })
            .expect("commit");

        let walk = |store: &DispatcherStore| {
            let mut seen = Vec::new();
            let mut cursor = None;
            for _ in 0..10 {
                let (page, next) = store.list_batches(3, cursor.as_deref()).expect("page");
                seen.extend(page.into_iter().map(|b| b.created_ms));
                match next {
                    Some(c) => cursor = Some(c),
                    None => break,
                }
            }
            seen
        };
        assert_eq!(walk(&store), vec![4_000, 3_000, 2_000, 1_000]);
        let (first, _) = store.list_batches(1, None).expect("page");
        assert_eq!(first, vec![landed]);
        assert_eq!(
            store.first_recorded_block().expect("read"),
            Some(7),
            "the only recorded batch, though the newest"
        );
        assert!(
            store.list_batches(3, Some("zz")).is_err(),
            "a cursor this API never handed out is refused"
        );

        // A store from before the order existed: it is rebuilt when the store opens.
        store.batch_order.clear().expect("clear");
        store.batch_order.flush().expect("flush");
        drop(store);
        let store = DispatcherStore::reopen_for_test(dir.path());
        assert_eq!(walk(&store), vec![4_000, 3_000, 2_000, 1_000]);
    }
}
