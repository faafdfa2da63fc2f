//! The dispatcher's durable state (sled): jobs with their attempts, the outbox of verified
//! credits, batches on their way to the chain, quarantined credits, each node's standing (trust,
//! reliability, exclusion), flagged wallets, counters, and the audit secret. All of it lives in
//! one sled tree, each part under its own key prefix, so every change is one atomic sled batch
//! (no reads, unlike a sled transaction), flushed before anyone hears about it. Stores of the
//! earlier layout (a tree per part) are moved into the one tree when they are opened.

use std::collections::HashMap;
use std::path::Path;

use pocmesh_protocol::{Address, BatchId, Hash32, JobId};
use serde::{Deserialize, Serialize};

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
/// The meta row saying the store is in the one-tree layout (value: [`LAYOUT`]).
const LAYOUT_KEY: &[u8] = b"layout";
/// The layout version: 2 is every row in one tree under a one-byte prefix; 3 the same with
/// only final states in the disk index.
const LAYOUT: u8 = 3;
/// The tree holding every row.
const DATA_TREE: &str = "data";

/// The parts of the store: each a one-byte key prefix in the one tree, and the tree the rows
/// lived in before (layout 1, one sled tree each; moved at open).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Part {
    Jobs,
    Outbox,
    Batches,
    Meta,
    Nodes,
    Wallets,
    Quarantine,
    Allowlist,
    HealthUrls,
    HealthDomains,
    JobIndex,
    BatchOrder,
}

impl Part {
    const ALL: [Part; 12] = [
        Part::Jobs,
        Part::Outbox,
        Part::Batches,
        Part::Meta,
        Part::Nodes,
        Part::Wallets,
        Part::Quarantine,
        Part::Allowlist,
        Part::HealthUrls,
        Part::HealthDomains,
        Part::JobIndex,
        Part::BatchOrder,
    ];

    /// The key prefix.
    fn tag(self) -> u8 {
        match self {
            Part::Jobs => b'j',
            Part::Outbox => b'o',
            Part::Batches => b'b',
            Part::Meta => b'm',
            Part::Nodes => b'n',
            Part::Wallets => b'w',
            Part::Quarantine => b'q',
            Part::Allowlist => b'a',
            Part::HealthUrls => b'u',
            Part::HealthDomains => b'd',
            Part::JobIndex => b'i',
            Part::BatchOrder => b't',
        }
    }

    /// Its name in errors, and the name of its tree in layout 1.
    fn name(self) -> &'static str {
        match self {
            Part::Jobs => "jobs",
            Part::Outbox => "outbox",
            Part::Batches => "batches",
            Part::Meta => "meta",
            Part::Nodes => "nodes",
            Part::Wallets => "wallets",
            Part::Quarantine => "quarantine",
            Part::Allowlist => "allowlist",
            Part::HealthUrls => "health_urls",
            Part::HealthDomains => "health_domains",
            Part::JobIndex => "job_index",
            Part::BatchOrder => "batch_order",
        }
    }

    /// The full key of `key` in this part.
    fn key(self, key: &[u8]) -> Vec<u8> {
        let mut k = Vec::with_capacity(1 + key.len());
        k.push(self.tag());
        k.extend_from_slice(key);
        k
    }
}

/// The writes of one commit, applied as one sled batch: atomic, and (unlike a sled
/// transaction) without reading any old value first.
#[derive(Default)]
struct Writes {
    batch: sled::Batch,
    written: Written,
}

impl Writes {
    fn put(&mut self, part: Part, key: &[u8], value: impl Into<sled::IVec>) {
        self.batch.insert(part.key(key), value);
        self.written.0[part as usize] += 1;
    }

    fn remove(&mut self, part: Part, key: &[u8]) {
        self.batch.remove(part.key(key));
        self.written.0[part as usize] += 1;
    }

    /// The batch to apply, leaving this one empty.
    fn take(&mut self) -> sled::Batch {
        self.written = Written::default();
        std::mem::take(&mut self.batch)
    }
}

/// Rows a commit wrote or removed, by part.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Written([usize; Part::ALL.len()]);

impl Written {
    /// Whether the commit wrote nothing.
    pub(crate) fn is_empty(&self) -> bool {
        self.0.iter().all(|n| *n == 0)
    }

    /// (part name, rows) for each part the commit touched.
    pub(crate) fn by_part(&self) -> impl Iterator<Item = (&'static str, usize)> + '_ {
        Part::ALL
            .into_iter()
            .zip(self.0)
            .filter(|(_, n)| *n > 0)
            .map(|(p, n)| (p.name(), n))
    }
}

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

/// The dispatcher's sled database: one tree, its rows in parts by key prefix ([`Part`]), so a
/// commit is one atomic sled batch.
#[derive(Clone)]
pub struct DispatcherStore {
    path: String,
    db: sled::Db,
    data: sled::Tree,
    /// The jobs in a state that is not final, listed in memory ([`crate::job_index`]).
    open: std::sync::Arc<std::sync::RwLock<crate::job_index::OpenListing>>,
    /// Which outbox row holds which credit ([`OutboxHomes`]).
    outbox: std::sync::Arc<std::sync::Mutex<OutboxHomes>>,
}

/// An outbox entry: its sequence number and the credit.
type OutboxEntry = (u64, Credit);

/// The outbox on disk: one row per commit that added credits (its key: the first sequence
/// number), holding them all, rewritten or removed as batches take them. A job's credit costs
/// a share of one row write instead of a row written and a row removed of its own. (Rows of
/// one credit, as earlier versions wrote them, are read as chunks of one.) Which row holds
/// which credit is kept here (sequence number → chunk key), so a commit reads only the rows
/// it rewrites; the credits themselves are the engine's to hold.
#[derive(Debug, Default)]
struct OutboxHomes(HashMap<u64, u64>);

impl OutboxHomes {
    /// Takes a commit's chunks in, once they are on disk: `removes` left their chunks, and
    /// every credit of a written chunk lives there.
    fn apply(
        &mut self,
        removes: &[u64],
        touched: &std::collections::BTreeMap<u64, Vec<OutboxEntry>>,
    ) {
        for seq in removes {
            self.0.remove(seq);
        }
        for (key, chunk) in touched {
            for (seq, _) in chunk {
                self.0.insert(*seq, *key);
            }
        }
    }
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

/// An outbox row: a chunk of credits, or one credit as earlier versions wrote them.
fn decode_chunk(key: u64, bytes: &[u8]) -> Result<Vec<OutboxEntry>, StoreError> {
    match serde_cbor::from_slice::<Vec<OutboxEntry>>(bytes) {
        Ok(chunk) => Ok(chunk),
        Err(_) => Ok(vec![(key, decode::<Credit>("outbox", bytes)?)]),
    }
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
            data: db.open_tree(DATA_TREE).map_err(err)?,
            db,
            path,
            open: Default::default(),
            outbox: Default::default(),
        };
        store.move_to_one_tree()?;
        store.load_outbox()?;
        store.build_index_if_missing()?;
        store.build_batch_order_if_missing()?;
        Ok(store)
    }

    /// A store of layout 1 (a sled tree per part) has its rows moved into the one tree, once,
    /// at open. The layout mark is written last: a crash before it repeats the move from the
    /// start; the old trees are dropped after it (on every open, should a crash have left any).
    fn move_to_one_tree(&self) -> Result<(), StoreError> {
        let err = |e| self.err(e);
        let names = self.db.tree_names();
        let old: Vec<Part> = Part::ALL
            .into_iter()
            .filter(|p| names.iter().any(|n| n.as_ref() == p.name().as_bytes()))
            .collect();
        match self.get(Part::Meta, LAYOUT_KEY)?.as_deref() {
            Some([LAYOUT]) => {}
            Some([2]) => self.drop_unread_index_entries()?,
            Some(other) => {
                return Err(StoreError::Corrupt {
                    tree: "meta",
                    reason: format!(
                        "layout mark {other:?}: written by a newer pocmesh (this one reads \
                         layouts up to {LAYOUT}); run that version or newer on this data dir"
                    ),
                });
            }
            // Rows with no mark and no old trees to move them from: not ours to clear.
            None if old.is_empty() && !self.data.is_empty() => {
                return Err(StoreError::Corrupt {
                    tree: "meta",
                    reason: "rows without a layout mark; restore the data dir from a backup or \
                             move it aside to start afresh"
                        .into(),
                });
            }
            None => self.move_rows(&old)?,
        }
        for part in &old {
            self.db.drop_tree(part.name()).map_err(err)?;
        }
        if !old.is_empty() {
            self.db.flush().map_err(err)?;
        }
        Ok(())
    }

    /// Copies the rows of the old trees into the one tree, then writes the layout mark.
    fn move_rows(&self, old: &[Part]) -> Result<(), StoreError> {
        let err = |e| self.err(e);
        self.data.clear().map_err(err)?;
        let mut rows = 0u64;
        for part in old {
            let tree = self.db.open_tree(part.name()).map_err(err)?;
            let mut writes = Writes::default();
            let mut pending = 0usize;
            for row in tree.iter() {
                let (k, v) = row.map_err(err)?;
                if *part == Part::JobIndex && crate::job_index::unread(&k) {
                    // Entries this version never reads stay behind.
                    continue;
                }
                writes.put(*part, &k, v);
                pending += 1;
                rows += 1;
                if pending == 10_000 {
                    self.data.apply_batch(writes.take()).map_err(err)?;
                    pending = 0;
                }
            }
            self.data.apply_batch(writes.take()).map_err(err)?;
        }
        self.data
            .insert(Part::Meta.key(LAYOUT_KEY), &[LAYOUT][..])
            .map_err(err)?;
        self.db.flush().map_err(err)?;
        if rows > 0 {
            tracing::info!(rows, "dispatcher store moved to one tree");
        }
        Ok(())
    }

    /// Layout 2 (one tree, every state in the disk index) to 3 (final states only): the
    /// index entries no reader looks at any more are removed, with the mark, in one batch.
    fn drop_unread_index_entries(&self) -> Result<(), StoreError> {
        let mut writes = Writes::default();
        for row in self.rows(Part::JobIndex) {
            let (k, _) = row?;
            if crate::job_index::unread(&k) {
                writes.remove(Part::JobIndex, &k);
            }
        }
        writes.put(Part::Meta, LAYOUT_KEY, &[LAYOUT][..]);
        self.data
            .apply_batch(writes.take())
            .map_err(|e| self.err(e))?;
        self.db.flush().map_err(|e| self.err(e))?;
        Ok(())
    }

    fn get(&self, part: Part, key: &[u8]) -> Result<Option<sled::IVec>, StoreError> {
        self.data.get(part.key(key)).map_err(|e| self.err(e))
    }

    /// The rows of `part` whose keys (within the part) are in `range`, as (key within the
    /// part, value).
    fn range(
        &self,
        part: Part,
        from: &[u8],
        to: Option<&[u8]>,
    ) -> impl DoubleEndedIterator<Item = Result<(sled::IVec, sled::IVec), StoreError>> + '_ {
        let start = part.key(from);
        let end = match to {
            Some(to) => part.key(to),
            None => vec![part.tag() + 1],
        };
        self.data.range(start..end).map(move |row| {
            let (k, v) = row.map_err(|e| self.err(e))?;
            Ok((k.subslice(1, k.len().saturating_sub(1)), v))
        })
    }

    /// Every row of `part`, in key order.
    fn rows(
        &self,
        part: Part,
    ) -> impl DoubleEndedIterator<Item = Result<(sled::IVec, sled::IVec), StoreError>> + '_ {
        self.range(part, &[], None)
    }

    fn is_empty(&self, part: Part) -> bool {
        self.rows(part).next().is_none()
    }

    /// A store written before the job indexes existed gets them built once, at open.
    fn build_index_if_missing(&self) -> Result<(), StoreError> {
        if !self.is_empty(Part::JobIndex) || self.is_empty(Part::Jobs) {
            return Ok(());
        }
        let mut n = 0u64;
        let mut writes = Writes::default();
        for job in self.jobs() {
            crate::job_index::write(&job?, crate::job_index::Listed::default(), |key, put| {
                if put {
                    writes.put(Part::JobIndex, &key, &[][..]);
                } else {
                    writes.remove(Part::JobIndex, &key);
                }
            });
            n += 1;
        }
        self.data
            .apply_batch(writes.take())
            .map_err(|e| self.err(e))?;
        self.db.flush().map_err(|e| self.err(e))?;
        tracing::info!(jobs = n, "job indexes built");
        Ok(())
    }

    /// A store written before batches were listed by time gets that order built once, at open.
    fn build_batch_order_if_missing(&self) -> Result<(), StoreError> {
        if !self.is_empty(Part::BatchOrder) || self.is_empty(Part::Batches) {
            return Ok(());
        }
        let mut writes = Writes::default();
        for row in self.batches()? {
            writes.put(Part::BatchOrder, &batch_order_key(&row), &[][..]);
        }
        self.data
            .apply_batch(writes.take())
            .map_err(|e| self.err(e))?;
        self.db.flush().map_err(|e| self.err(e))?;
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
        for row in self.range(Part::BatchOrder, &[], Some(&end)).rev() {
            let (key, _) = row?;
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
        for row in self.rows(Part::BatchOrder).take(100) {
            let (key, _) = row?;
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

    /// Forgets a part's rows, as a store from before it existed (tests of rebuilds).
    #[cfg(test)]
    fn drop_part_for_test(&self, part: Part) {
        let mut writes = Writes::default();
        for row in self.rows(part) {
            writes.remove(part, &row.expect("row").0);
        }
        self.data.apply_batch(writes.take()).expect("clear");
        self.db.flush().expect("flush");
    }

    /// Forgets the job indexes, as a store from before they existed (tests of the rebuild).
    #[cfg(test)]
    pub(crate) fn drop_index_for_test(&self) {
        self.drop_part_for_test(Part::JobIndex);
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
        use crate::job_index::{cursor_of, id_of, matches, open_state_code, parse_cursor, prefix};
        let prefix = prefix(filter)?;
        let after = match cursor {
            Some(c) => parse_cursor(c)?,
            None => [0xff; 40],
        };
        let limit = limit.max(1);
        let mut out = Vec::new();
        if let Some(code) = filter.state.and_then(open_state_code) {
            // Listed in memory: take the entries a chunk at a time (no lock held while the
            // rows are read), skipping any whose row moved on meanwhile.
            const CHUNK: usize = 128;
            let mut end = after;
            loop {
                let chunk = self.open_listing().before(code, &end, CHUNK);
                for t in &chunk {
                    let Some(id) = id_of(t) else { continue };
                    let Some(job) = self.job(&id)? else { continue };
                    if !matches(&job, filter) {
                        continue;
                    }
                    out.push(job);
                    if out.len() == limit {
                        return Ok((out, cursor_of(t)));
                    }
                }
                match chunk.last() {
                    Some(last) if chunk.len() == CHUNK => end = *last,
                    _ => return Ok((out, None)),
                }
            }
        }
        let mut end = prefix.clone();
        end.extend_from_slice(&after);
        if cursor.is_none() {
            end.push(0xff);
        }
        for row in self.range(Part::JobIndex, &prefix, Some(&end)).rev() {
            let (key, _) = row?;
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

    /// The in-memory listing, to read. (Nothing panics while holding it; should something
    /// ever, the listing is still whole — each change is one set insert or remove.)
    fn open_listing(&self) -> std::sync::RwLockReadGuard<'_, crate::job_index::OpenListing> {
        self.open
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The in-memory listing, to change.
    fn open_listing_mut(&self) -> std::sync::RwLockWriteGuard<'_, crate::job_index::OpenListing> {
        self.open
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Lists the jobs the engine loaded (every job not final) in memory, as their rows say.
    pub(crate) fn list_loaded<'a>(&self, jobs: impl IntoIterator<Item = &'a Job>) {
        use crate::job_index::Listed;
        let mut open = self.open_listing_mut();
        for job in jobs {
            open.apply(job, Listed::default(), Listed::of(job));
        }
    }

    /// Jobs listed in memory.
    #[cfg(test)]
    pub(crate) fn listed_in_memory(&self) -> usize {
        self.open_listing().len()
    }

    fn err(&self, source: sled::Error) -> StoreError {
        StoreError::Sled {
            path: self.path.clone(),
            source,
        }
    }

    /// Writes `changes` atomically (one sled batch) and flushes.
    pub fn commit(&self, changes: &Changes) -> Result<(), StoreError> {
        self.commit_with(changes, &[]).map(|_| ())
    }

    /// [`DispatcherStore::commit`] with more job rows to write, borrowed (the engine writes its
    /// jobs from memory without copying them). Returns how many rows it wrote or removed.
    pub(crate) fn commit_with(
        &self,
        changes: &Changes,
        more: &[&Job],
    ) -> Result<Written, StoreError> {
        if changes.is_empty() && more.is_empty() {
            return Ok(Written::default());
        }
        let mut w = Writes::default();
        // What this commit lists a job under once written, for a job written twice in it.
        let mut written: HashMap<JobId, crate::job_index::Listed> = HashMap::new();
        let mut moves = Vec::new();
        for job in changes.jobs.iter().chain(more.iter().copied()) {
            let key = &job.id.as_bytes()[..];
            // What the index lists the job under: known to the engine, else what its previous
            // row says (the row and the index are written together).
            let was = match written
                .get(&job.id)
                .or_else(|| changes.indexed_as.get(&job.id))
            {
                Some(was) => *was,
                // An unreadable old row is listed as new: a stale index entry is skipped by
                // readers, a stopped dispatcher helps nobody.
                None => self
                    .get(Part::Jobs, key)?
                    .and_then(|b| decode::<Job>("jobs", &b).ok())
                    .map(|old| crate::job_index::Listed::of(&old))
                    .unwrap_or_default(),
            };
            w.put(Part::Jobs, key, encode(job));
            crate::job_index::write(job, was, |k, put| {
                if put {
                    w.put(Part::JobIndex, &k, &[][..]);
                } else {
                    w.remove(Part::JobIndex, &k);
                }
            });
            let now = crate::job_index::Listed::of(job);
            moves.push((job, was, now));
            written.insert(job.id, now);
        }
        // The outbox stays locked until its chunks are on disk and mirrored (one writer, the
        // engine, commits at a time anyway).
        let mut homes = self.outbox_homes();
        let chunks = self.plan_outbox(&homes, &changes.outbox_add, &changes.outbox_remove)?;
        for (key, chunk) in &chunks {
            if chunk.is_empty() {
                w.remove(Part::Outbox, &key.to_be_bytes());
            } else {
                w.put(Part::Outbox, &key.to_be_bytes(), encode(chunk));
            }
        }
        for batch in &changes.batches {
            w.put(Part::Batches, batch.id.as_bytes(), encode(batch));
            w.put(Part::BatchOrder, &batch_order_key(batch), &[][..]);
        }
        if let Some(c) = &changes.counters {
            w.put(Part::Meta, COUNTERS, encode(c));
        }
        for (node, standing) in &changes.standings {
            w.put(Part::Nodes, node.as_bytes(), encode(standing));
        }
        for (wallet, mark) in &changes.wallets {
            w.put(Part::Wallets, wallet.as_bytes(), encode(mark));
        }
        for q in &changes.quarantine {
            w.put(Part::Quarantine, &quarantine_key(&q.credit), encode(q));
        }
        for e in &changes.allowlist {
            w.put(Part::Allowlist, e.domain.as_bytes(), encode(e));
        }
        for h in &changes.health_urls {
            w.put(Part::HealthUrls, &url_key(&h.domain, &h.url), encode(h));
        }
        for d in &changes.health_domains {
            w.put(Part::HealthDomains, d.domain.as_bytes(), encode(d));
        }
        let written = w.written;
        self.data.apply_batch(w.batch).map_err(|e| self.err(e))?;
        homes.apply(&changes.outbox_remove, &chunks);
        drop(homes);
        // Listed in memory as the rows now are on disk (before the flush: a reader that sees
        // the entry reads the row it names).
        let mut open = self.open_listing_mut();
        for (job, was, now) in moves {
            open.apply(job, was, now);
        }
        drop(open);
        self.db.flush().map_err(|e| self.err(e))?;
        Ok(written)
    }

    /// The counters.
    pub fn counters(&self) -> Result<Counters, StoreError> {
        match self.get(Part::Meta, COUNTERS)? {
            Some(b) => decode("meta", &b),
            None => Ok(Counters::default()),
        }
    }

    /// One job.
    pub fn job(&self, id: &JobId) -> Result<Option<Job>, StoreError> {
        match self.get(Part::Jobs, id.as_bytes())? {
            Some(b) => decode("jobs", &b).map(Some),
            None => Ok(None),
        }
    }

    /// Every job, in id order.
    pub fn jobs(&self) -> impl Iterator<Item = Result<Job, StoreError>> + '_ {
        self.rows(Part::Jobs)
            .map(|row| row.and_then(|(_, v)| decode("jobs", &v)))
    }

    /// The outbox, in order.
    pub fn outbox(&self) -> Result<Vec<(u64, Credit)>, StoreError> {
        let mut out: Vec<OutboxEntry> = Vec::new();
        for chunk in self.outbox_rows()? {
            out.extend(chunk.1);
        }
        out.sort_by_key(|(seq, _)| *seq);
        Ok(out)
    }

    fn outbox_homes(&self) -> std::sync::MutexGuard<'_, OutboxHomes> {
        self.outbox
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Every outbox row: its key and its credits.
    fn outbox_rows(&self) -> Result<Vec<(u64, Vec<OutboxEntry>)>, StoreError> {
        let mut rows = Vec::new();
        for row in self.rows(Part::Outbox) {
            let (k, v) = row?;
            let key = <[u8; 8]>::try_from(k.as_ref())
                .map(u64::from_be_bytes)
                .map_err(|_| StoreError::Corrupt {
                    tree: "outbox",
                    reason: "key is not 8 bytes".into(),
                })?;
            rows.push((key, decode_chunk(key, &v)?));
        }
        Ok(rows)
    }

    /// One outbox row's credits (none if there is no such row).
    fn outbox_row(&self, key: u64) -> Result<Vec<OutboxEntry>, StoreError> {
        match self.get(Part::Outbox, &key.to_be_bytes())? {
            Some(v) => decode_chunk(key, &v),
            None => Ok(Vec::new()),
        }
    }

    /// Learns which row holds which credit (at open).
    fn load_outbox(&self) -> Result<(), StoreError> {
        let rows: std::collections::BTreeMap<u64, Vec<OutboxEntry>> =
            self.outbox_rows()?.into_iter().collect();
        let mut homes = OutboxHomes::default();
        homes.apply(&[], &rows);
        *self.outbox_homes() = homes;
        Ok(())
    }

    /// The outbox rows `adds` then `removes` change, as they will be (empty: removed), read
    /// from disk: a credit added and taken by a batch in the same commit is not left behind.
    fn plan_outbox(
        &self,
        homes: &OutboxHomes,
        adds: &[OutboxEntry],
        removes: &[u64],
    ) -> Result<std::collections::BTreeMap<u64, Vec<OutboxEntry>>, StoreError> {
        use std::collections::btree_map::Entry;
        let mut touched: std::collections::BTreeMap<u64, Vec<OutboxEntry>> = Default::default();
        let chunk = |touched: &mut std::collections::BTreeMap<u64, Vec<OutboxEntry>>,
                     key: u64|
         -> Result<(), StoreError> {
            if let Entry::Vacant(e) = touched.entry(key) {
                e.insert(self.outbox_row(key)?);
            }
            Ok(())
        };
        let added_to = adds.iter().map(|(seq, _)| *seq).min();
        if let Some(key) = added_to {
            chunk(&mut touched, key)?;
            if let Some(c) = touched.get_mut(&key) {
                c.extend(adds.iter().cloned());
                c.sort_by_key(|(seq, _)| *seq);
            }
        }
        for seq in removes {
            let key = if adds.iter().any(|(s, _)| s == seq) {
                added_to
            } else {
                homes.0.get(seq).copied()
            };
            let Some(key) = key else {
                continue;
            };
            chunk(&mut touched, key)?;
            if let Some(c) = touched.get_mut(&key) {
                c.retain(|(s, _)| s != seq);
            }
        }
        Ok(touched)
    }

    /// The audit secret, created (and flushed) on first use. Never leaves the store but for
    /// the engine; never logged.
    pub fn audit_key(&self) -> Result<AuditKey, StoreError> {
        if let Some(b) = self.get(Part::Meta, AUDIT_KEY)? {
            let bytes = <[u8; 32]>::try_from(b.as_ref()).map_err(|_| StoreError::Corrupt {
                tree: "meta",
                reason: "the audit key is not 32 bytes".into(),
            })?;
            return Ok(AuditKey::from_bytes(bytes));
        }
        let key = AuditKey::generate();
        self.data
            .insert(Part::Meta.key(AUDIT_KEY), &key.to_bytes()[..])
            .map_err(|e| self.err(e))?;
        self.db.flush().map_err(|e| self.err(e))?;
        Ok(key)
    }

    /// Every stored node standing.
    pub fn standings(&self) -> Result<Vec<(Address, Standing)>, StoreError> {
        self.address_rows(Part::Nodes)
    }

    /// Every flagged wallet.
    pub fn flagged_wallets(&self) -> Result<Vec<(Address, Exclusion)>, StoreError> {
        self.address_rows(Part::Wallets)
    }

    fn address_rows<T: for<'de> Deserialize<'de>>(
        &self,
        part: Part,
    ) -> Result<Vec<(Address, T)>, StoreError> {
        let mut out = Vec::new();
        for row in self.rows(part) {
            let (k, v) = row?;
            let bytes = <[u8; 20]>::try_from(k.as_ref()).map_err(|_| StoreError::Corrupt {
                tree: part.name(),
                reason: "key is not a 20-byte address".into(),
            })?;
            out.push((Address(bytes), decode(part.name(), &v)?));
        }
        Ok(out)
    }

    /// Quarantined credits, most recent `limit` at most, and how many there are in all.
    pub fn quarantined(&self, limit: usize) -> Result<(Vec<QuarantinedCredit>, usize), StoreError> {
        let mut rows = Vec::new();
        for row in self.rows(Part::Quarantine) {
            rows.push(decode::<QuarantinedCredit>("quarantine", &row?.1)?);
        }
        let total = rows.len();
        rows.sort_by_key(|q| std::cmp::Reverse(q.at_ms));
        rows.truncate(limit);
        Ok((rows, total))
    }

    /// The allow-list.
    pub fn allowlist(&self) -> Result<Vec<AllowEntry>, StoreError> {
        self.rows(Part::Allowlist)
            .map(|row| decode("allowlist", &row?.1))
            .collect()
    }

    /// One URL's health record.
    pub fn url_health(&self, domain: &str, url: &str) -> Result<Option<UrlHealth>, StoreError> {
        match self.get(Part::HealthUrls, &url_key(domain, url))? {
            Some(b) => decode("health_urls", &b).map(Some),
            None => Ok(None),
        }
    }

    /// The health records of a domain's URLs, at most `limit`.
    pub fn urls_of(&self, domain: &str, limit: usize) -> Result<Vec<UrlHealth>, StoreError> {
        let mut from = domain.as_bytes().to_vec();
        from.push(0);
        let mut to = domain.as_bytes().to_vec();
        to.push(1);
        self.range(Part::HealthUrls, &from, Some(&to))
            .take(limit)
            .map(|row| decode("health_urls", &row?.1))
            .collect()
    }

    /// A domain's health record.
    pub fn domain_health(&self, domain: &str) -> Result<Option<DomainHealth>, StoreError> {
        match self.get(Part::HealthDomains, domain.as_bytes())? {
            Some(b) => decode("health_domains", &b).map(Some),
            None => Ok(None),
        }
    }

    /// One batch.
    pub fn batch(&self, id: &BatchId) -> Result<Option<BatchRow>, StoreError> {
        match self.get(Part::Batches, id.as_bytes())? {
            Some(v) => decode("batches", &v).map(Some),
            None => Ok(None),
        }
    }

    /// Every batch.
    pub fn batches(&self) -> Result<Vec<BatchRow>, StoreError> {
        self.rows(Part::Batches)
            .map(|row| decode("batches", &row?.1))
            .collect()
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
        store.drop_part_for_test(Part::BatchOrder);
        drop(store);
        let store = DispatcherStore::reopen_for_test(dir.path());
        assert_eq!(walk(&store), vec![4_000, 3_000, 2_000, 1_000]);
    }
}

#[cfg(test)]
mod layout_tests {
    use super::*;

    use crate::job_index::JobFilter;
    use crate::job_index::tests::job;
    use crate::lifecycle::JobState;

    /// The disk index's state entries (`s` keys), by state code.
    fn state_entries(store: &DispatcherStore) -> Vec<u8> {
        store
            .range(Part::JobIndex, b"s", Some(b"t"))
            .map(|row| row.expect("row").0[1])
            .collect()
    }

    fn credit(i: u8) -> Credit {
        Credit {
            job: JobId::from([i; 32]),
            node: Address::from([0x01; 20]),
            peer: "peer".into(),
            wallet: Address::from([0xaa; 20]),
            units: u64::from(i),
            result_hash: Hash32([i; 32]),
        }
    }

    /// Writes a store the way layout 1 did: a sled tree per part, the job index with its `x`
    /// entries.
    fn write_layout_1(dir: &Path) {
        let db = sled::open(dir).expect("open");
        let tree = |name: &str| db.open_tree(name).expect("tree");
        let (jobs, index) = (tree("jobs"), tree("job_index"));
        for i in 1..=3u8 {
            let mut j = job(i, 1_000 + u64::from(i));
            if i == 2 {
                j.state = JobState::Verified;
                j.credits = vec![credit(i)];
            }
            jobs.insert(j.id.as_bytes(), encode(&j)).expect("job");
            crate::job_index::write(&j, crate::job_index::Listed::default(), |k, _| {
                index.insert(k, &[][..]).expect("index");
            });
            let mut x = b"x".to_vec();
            x.extend_from_slice(j.id.as_bytes());
            index.insert(x, &[0u8][..]).expect("x");
        }
        tree("outbox")
            .insert(7u64.to_be_bytes(), encode(&credit(2)))
            .expect("outbox");
        let counters = Counters {
            job_seq: 3,
            outbox_seq: 7,
            ..Counters::default()
        };
        let meta = tree("meta");
        meta.insert(COUNTERS, encode(&counters)).expect("counters");
        meta.insert(AUDIT_KEY, &[9u8; 32][..]).expect("audit key");
        let b = BatchRow {
            id: BatchId::from([5; 32]),
            root: Hash32([5; 32]),
            credits: vec![credit(1)],
            seqs: vec![1],
            status: BatchStatus::Pending,
            created_ms: 5_000,
        };
        tree("batches")
            .insert(b.id.as_bytes(), encode(&b))
            .expect("batch");
        tree("batch_order")
            .insert(batch_order_key(&b), &[][..])
            .expect("order");
        tree("nodes")
            .insert([0x01; 20], encode(&Standing::default()))
            .expect("standing");
        db.flush().expect("flush");
    }

    fn assert_layout_1_rows(store: &DispatcherStore) {
        // Listed in memory once loaded (the engine does this at start).
        let jobs: Vec<Job> = store.jobs().map(|j| j.expect("job")).collect();
        store.list_loaded(&jobs);
        let ids = |jobs: Vec<Job>| -> Vec<u8> { jobs.iter().map(|j| j.id.as_bytes()[0]).collect() };
        let all = store
            .list_jobs(&JobFilter::default(), 10, None)
            .expect("list");
        assert_eq!(ids(all.0), [3, 2, 1]);
        let verified = JobFilter::in_state("verified");
        assert_eq!(
            ids(store.list_jobs(&verified, 10, None).expect("list").0),
            [2]
        );
        let by_wallet = JobFilter::of_wallet(Address::from([0xaa; 20]));
        assert_eq!(
            ids(store.list_jobs(&by_wallet, 10, None).expect("list").0),
            [2]
        );
        assert_eq!(store.jobs().count(), 3);
        assert_eq!(store.outbox().expect("outbox"), vec![(7, credit(2))]);
        assert_eq!(store.counters().expect("counters").outbox_seq, 7);
        assert_eq!(store.audit_key().expect("key").to_bytes(), [9u8; 32]);
        assert_eq!(store.batches().expect("batches").len(), 1);
        assert_eq!(store.list_batches(10, None).expect("page").0.len(), 1);
        assert_eq!(store.standings().expect("standings").len(), 1);
        // Parts do not bleed into each other at their edges.
        assert!(store.flagged_wallets().expect("wallets").is_empty());
        assert_eq!(store.quarantined(10).expect("quarantine").1, 0);
    }

    #[test]
    fn a_store_of_the_tree_per_part_layout_is_moved_into_one_tree_at_open_even_after_a_crash_midway()
     {
        let dir = tempfile::tempdir().expect("tmp");
        write_layout_1(dir.path());
        {
            // A move that crashed midway: part of the rows copied, no layout mark.
            let db = sled::open(dir.path()).expect("open");
            let data = db.open_tree(DATA_TREE).expect("tree");
            data.insert(Part::Jobs.key(&[0xee; 32]), &b"half-moved"[..])
                .expect("row");
            db.flush().expect("flush");
        }
        let store = DispatcherStore::reopen_for_test(dir.path());
        assert_layout_1_rows(&store);
        assert!(
            store.job(&JobId::from([0xee; 32])).expect("read").is_none(),
            "a half-done move is started again from nothing"
        );
        let names = store.db.tree_names();
        for part in Part::ALL {
            assert!(
                !names.iter().any(|n| n.as_ref() == part.name().as_bytes()),
                "the old tree `{}` is dropped",
                part.name()
            );
        }
        assert!(
            store
                .range(Part::JobIndex, b"x", Some(b"y"))
                .next()
                .is_none(),
            "entries of the unread `x` index stay behind"
        );
        assert_eq!(
            state_entries(&store),
            Vec::<u8>::new(),
            "state entries of jobs that are not final stay behind"
        );

        // Writes go on in the new layout and survive a reopen; nothing is moved twice.
        let mut j = store
            .job(&JobId::from([1; 32]))
            .expect("read")
            .expect("job");
        j.state = JobState::Recorded {
            batch: BatchId::from([5; 32]),
            tx: Hash32([6; 32]),
            block: 8,
        };
        store
            .commit(&Changes {
                jobs: vec![j],
                outbox_remove: vec![7],
                ..Changes::default()
            })
            .expect("commit");
        drop(store);
        let store = DispatcherStore::reopen_for_test(dir.path());
        let recorded = JobFilter::in_state("recorded");
        assert_eq!(
            store.list_jobs(&recorded, 10, None).expect("list").0.len(),
            1
        );
        assert!(store.outbox().expect("outbox").is_empty());
        assert_eq!(store.jobs().count(), 3);
    }

    #[test]
    fn a_store_of_layout_2_loses_its_unread_index_entries_and_old_trees_a_crash_left_are_dropped() {
        let dir = tempfile::tempdir().expect("tmp");
        {
            let store = DispatcherStore::open(dir.path()).expect("open");
            store
                .commit(&Changes {
                    jobs: vec![job(3, 3_000)],
                    ..Changes::default()
                })
                .expect("commit");
            // As layout 2 left it: a state entry of a job that is not final, the mark 2, and
            // an old tree the move's drops did not reach before a crash.
            let mut stale = vec![b's', 0];
            stale.extend_from_slice(&[7; 40]);
            store
                .data
                .insert(Part::JobIndex.key(&stale), &[][..])
                .expect("entry");
            store
                .data
                .insert(Part::Meta.key(LAYOUT_KEY), &[2u8][..])
                .expect("mark");
            let old = store.db.open_tree("outbox").expect("tree");
            old.insert(b"left", &b"behind"[..]).expect("row");
            store.db.flush().expect("flush");
        }
        let store = DispatcherStore::reopen_for_test(dir.path());
        assert_eq!(
            store.get(Part::Meta, LAYOUT_KEY).expect("read").as_deref(),
            Some(&[LAYOUT][..])
        );
        assert_eq!(
            state_entries(&store),
            Vec::<u8>::new(),
            "the unread entry is gone"
        );
        assert!(
            !store
                .db
                .tree_names()
                .iter()
                .any(|n| n.as_ref() == b"outbox"),
            "the old tree is dropped"
        );
        let (all, _) = store
            .list_jobs(&JobFilter::default(), 10, None)
            .expect("list");
        assert_eq!(all.len(), 1, "the rows stay");
    }

    #[test]
    fn the_outbox_is_written_a_chunk_per_commit_and_reads_back_in_order_across_reopens() {
        let dir = tempfile::tempdir().expect("tmp");
        let store = DispatcherStore::open(dir.path()).expect("open");
        let commit = |store: &DispatcherStore, add: &[u8], remove: &[u64]| -> usize {
            let changes = Changes {
                outbox_add: add.iter().map(|&i| (u64::from(i), credit(i))).collect(),
                outbox_remove: remove.to_vec(),
                ..Changes::default()
            };
            let written = store.commit_with(&changes, &[]).expect("commit");
            written
                .by_part()
                .find(|(p, _)| *p == "outbox")
                .map_or(0, |(_, n)| n)
        };
        let seqs = |store: &DispatcherStore| -> Vec<u64> {
            store
                .outbox()
                .expect("outbox")
                .iter()
                .map(|(s, c)| {
                    assert_eq!(c, &credit(*s as u8), "the credit stays with its number");
                    *s
                })
                .collect()
        };
        assert_eq!(commit(&store, &[1, 2, 3], &[]), 1, "three credits, one row");
        assert_eq!(commit(&store, &[4, 5], &[]), 1);
        assert_eq!(seqs(&store), [1, 2, 3, 4, 5]);
        // A batch takes 1..4: the first chunk goes, the second is rewritten.
        assert_eq!(commit(&store, &[], &[1, 2, 3, 4]), 2);
        assert_eq!(seqs(&store), [5]);
        // The contract refuses it: 2 and 3 come back (below 5, in a chunk of their own), and
        // in the same commit 5 is taken while 6 arrives.
        assert_eq!(commit(&store, &[2, 3, 6], &[5]), 2);
        assert_eq!(seqs(&store), [2, 3, 6]);
        // A row of one credit as earlier versions wrote it.
        store
            .data
            .insert(Part::Outbox.key(&9u64.to_be_bytes()), encode(&credit(9)))
            .expect("row");
        drop(store);
        let store = DispatcherStore::reopen_for_test(dir.path());
        assert_eq!(seqs(&store), [2, 3, 6, 9]);
        assert_eq!(commit(&store, &[], &[3, 9]), 2);
        drop(store);
        let store = DispatcherStore::reopen_for_test(dir.path());
        assert_eq!(seqs(&store), [2, 6]);
        // Numbers no chunk holds are ignored, as removing a missing row was.
        assert_eq!(commit(&store, &[], &[77]), 0);
        assert_eq!(seqs(&store), [2, 6]);
        // Verified and cut into a batch in one burst: added and taken in the same commit, so
        // nothing of it stays (a restart would batch it again: a second credit on chain).
        commit(&store, &[7, 8], &[7, 8, 2]);
        assert_eq!(seqs(&store), [6]);
        drop(store);
        let store = DispatcherStore::reopen_for_test(dir.path());
        assert_eq!(seqs(&store), [6]);
    }

    #[test]
    fn a_store_from_a_newer_version_is_refused_at_open_and_keeps_its_rows() {
        let dir = tempfile::tempdir().expect("tmp");
        {
            let store = DispatcherStore::open(dir.path()).expect("open");
            store
                .commit(&Changes {
                    jobs: vec![job(5, 5_000)],
                    ..Changes::default()
                })
                .expect("commit");
            store
                .data
                .insert(Part::Meta.key(LAYOUT_KEY), &[LAYOUT + 1][..])
                .expect("mark");
            store.db.flush().expect("flush");
        }
        let refused = (0..250)
            .find_map(|_| match DispatcherStore::open(dir.path()) {
                Err(StoreError::Corrupt { reason, .. }) => Some(reason),
                _ => {
                    std::thread::sleep(std::time::Duration::from_millis(20));
                    None
                }
            })
            .expect("refused");
        assert!(refused.contains("newer pocmesh"), "{refused}");
        let db = sled::open(dir.path()).expect("open");
        let data = db.open_tree(DATA_TREE).expect("tree");
        assert!(
            data.get(Part::Jobs.key(&[5; 32])).expect("read").is_some(),
            "nothing cleared"
        );
    }

    #[test]
    fn a_job_written_twice_in_one_commit_is_listed_once_under_its_last_state() {
        let dir = tempfile::tempdir().expect("tmp");
        let store = DispatcherStore::open(dir.path()).expect("open");
        let queued = job(4, 4_000);
        let mut verified = queued.clone();
        verified.state = JobState::Verified;
        store
            .commit(&Changes {
                jobs: vec![queued, verified],
                ..Changes::default()
            })
            .expect("commit");
        let count = |state: &'static str| {
            let f = JobFilter::in_state(state);
            store.list_jobs(&f, 10, None).expect("list").0.len()
        };
        assert_eq!((count("queued"), count("verified")), (0, 1));
        assert_eq!(
            store
                .list_jobs(&JobFilter::default(), 10, None)
                .expect("list")
                .0
                .len(),
            1
        );
    }
}
