//! Indexes over the job store, kept in the store's `job_index` part and written in the same
//! atomic batch as the jobs: newest-first listings of all jobs, of jobs in one state, and of the
//! jobs that credited one wallet, read page by page with a cursor. The API answers job lists from
//! here, off the engine task, touching only the rows of the page it returns.
//!
//! Keys (all integers big-endian, so byte order is time order):
//! - `t` ms id: every job, by submission time;
//! - `s` state ms id: jobs in a final state (`recorded`, `failed`, `rejected`; written once);
//!   jobs in any other state are listed in memory ([`OpenListing`]): they move on within
//!   seconds, and each move on disk cost two writes;
//! - `w` wallet ms id: jobs that credited the wallet (entries are added when credits are set; a
//!   reader checks the job's credits, so an entry left by reopened credits is skipped);
//! - `x` id → state: written by earlier versions, read by none; left behind when a store is
//!   moved to the one-tree layout, as are their `s` entries of states that are not final.

use pocmesh_protocol::{Address, JobId};

use crate::lifecycle::{Job, STATE_NAMES};

/// Which jobs a listing returns.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct JobFilter<'a> {
    /// Only jobs in this state (a name from [`STATE_NAMES`]).
    pub state: Option<&'a str>,
    /// Only jobs that credited this wallet.
    pub wallet: Option<Address>,
}

impl<'a> JobFilter<'a> {
    /// Jobs in `state` (a name from [`STATE_NAMES`]).
    pub fn in_state(state: &'a str) -> Self {
        JobFilter {
            state: Some(state),
            wallet: None,
        }
    }

    /// Jobs that credited `wallet`.
    pub fn of_wallet(wallet: Address) -> Self {
        JobFilter {
            state: None,
            wallet: Some(wallet),
        }
    }
}

/// Why a listing cannot be answered as asked.
#[derive(Debug, thiserror::Error)]
pub enum ListError {
    /// The state is not one of [`STATE_NAMES`].
    #[error("unknown state `{0}`; one of: {states}", states = STATE_NAMES.join(", "))]
    UnknownState(String),
    /// The cursor is not one this API handed out.
    #[error(
        "cursor `{0}` is not one returned by this API (pass the `x-next-cursor` header of the previous page)"
    )]
    BadCursor(String),
    /// Both a state and a wallet were given.
    #[error("filter by state or by wallet, not both")]
    TwoFilters,
    /// The store could not be read.
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
}

pub(crate) fn state_code(name: &str) -> Option<u8> {
    STATE_NAMES.iter().position(|s| *s == name).map(|i| i as u8)
}

fn tail(job: &Job) -> [u8; 40] {
    let mut k = [0u8; 40];
    k[..8].copy_from_slice(&job.submitted_ms.to_be_bytes());
    k[8..].copy_from_slice(job.id.as_bytes());
    k
}

fn key(prefix: &[u8], tail: &[u8]) -> Vec<u8> {
    let mut k = Vec::with_capacity(prefix.len() + tail.len());
    k.extend_from_slice(prefix);
    k.extend_from_slice(tail);
    k
}

fn state_prefix(code: u8) -> [u8; 2] {
    [b's', code]
}

fn wallet_prefix(wallet: &Address) -> Vec<u8> {
    key(b"w", wallet.as_bytes())
}

/// What the index lists a job under: its state (`None`: not listed yet), whether that state is
/// final, and a digest of the wallets its credits name (0: none).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Listed {
    state: Option<u8>,
    fin: bool,
    wallets: u64,
}

impl Listed {
    /// What the index lists `job` under once it is written.
    pub fn of(job: &Job) -> Listed {
        let wallets = if job.credits.is_empty() {
            0
        } else {
            let mut h = std::collections::hash_map::DefaultHasher::new();
            for c in &job.credits {
                std::hash::Hash::hash(&c.wallet, &mut h);
            }
            std::hash::Hasher::finish(&h).max(1)
        };
        Listed {
            state: state_code(job.state.name()),
            fin: job.state.is_final(),
            wallets,
        }
    }

    /// The state it is listed under in memory ([`OpenListing`]), if it is not final.
    fn open_state(&self) -> Option<u8> {
        self.state.filter(|_| !self.fin)
    }
}

/// The disk index writes that list `job` as it is now, given what it was listed under (`was`;
/// the default for a job not listed yet): `put(key, true)` to insert an entry, `(key, false)`
/// to remove one. Only what changed is written, and a state only once it is final: the other
/// states are listed in memory ([`OpenListing`]).
pub(crate) fn write(job: &Job, was: Listed, mut put: impl FnMut(Vec<u8>, bool)) {
    let now = Listed::of(job);
    let Some(code) = now.state else {
        return;
    };
    let t = tail(job);
    if was.state.is_none() {
        put(key(b"t", &t), true);
    }
    if was.state != Some(code) {
        if let Some(old) = was.state.filter(|_| was.fin) {
            put(key(&state_prefix(old), &t), false);
        }
        if now.fin {
            put(key(&state_prefix(code), &t), true);
        }
    }
    if now.wallets != was.wallets {
        for c in &job.credits {
            put(key(&wallet_prefix(&c.wallet), &t), true);
        }
    }
}

/// Whether a disk index entry is one this version never reads: a state index entry of a state
/// that is not final (listed in memory now), or the old `x` index.
pub(crate) fn unread(key: &[u8]) -> bool {
    match key {
        [b's', code, ..] => !STATE_NAMES
            .get(usize::from(*code))
            .is_some_and(|s| FINAL_STATE_NAMES.contains(s)),
        [b'x', ..] => true,
        _ => false,
    }
}

/// The states a job never leaves.
const FINAL_STATE_NAMES: [&str; 3] = ["recorded", "failed", "rejected"];

/// The jobs in a state that is not final (queued to recording), by state, as the store's rows
/// list them: kept in memory, not on disk — they change state within seconds, and each move
/// on disk cost an entry removed and one written. The store keeps it with every commit; the
/// engine fills it when it loads the jobs ([`crate::store::DispatcherStore::list_loaded`]).
#[derive(Debug, Default)]
pub(crate) struct OpenListing {
    by_state: std::collections::HashMap<u8, std::collections::BTreeSet<[u8; 40]>>,
}

impl OpenListing {
    /// Moves `job` from what it was listed under to what it is listed under now.
    pub(crate) fn apply(&mut self, job: &Job, was: Listed, now: Listed) {
        if was.open_state() == now.open_state() {
            return;
        }
        let t = tail(job);
        if let Some(old) = was.open_state()
            && let Some(set) = self.by_state.get_mut(&old)
        {
            set.remove(&t);
        }
        if let Some(code) = now.open_state() {
            self.by_state.entry(code).or_default().insert(t);
        }
    }

    /// Up to `n` entries of state `code` before `end`, newest first.
    pub(crate) fn before(&self, code: u8, end: &[u8; 40], n: usize) -> Vec<[u8; 40]> {
        self.by_state
            .get(&code)
            .map(|set| set.range(..*end).rev().take(n).copied().collect())
            .unwrap_or_default()
    }

    /// Jobs listed in memory.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.by_state.values().map(|s| s.len()).sum()
    }
}

/// Whether `name` is a state listed in memory rather than on disk.
pub(crate) fn open_state_code(name: &str) -> Option<u8> {
    state_code(name).filter(|_| !FINAL_STATE_NAMES.contains(&name))
}

/// The prefix a filter lists under.
pub(crate) fn prefix(filter: &JobFilter<'_>) -> Result<Vec<u8>, ListError> {
    match (filter.state, filter.wallet) {
        (Some(_), Some(_)) => Err(ListError::TwoFilters),
        (Some(s), None) => state_code(s)
            .map(|c| state_prefix(c).to_vec())
            .ok_or_else(|| ListError::UnknownState(s.to_string())),
        (None, Some(w)) => Ok(wallet_prefix(&w)),
        (None, None) => Ok(b"t".to_vec()),
    }
}

/// Parses a cursor (hex of the last listed entry's time and id).
pub(crate) fn parse_cursor(cursor: &str) -> Result<[u8; 40], ListError> {
    let bad = || ListError::BadCursor(cursor.to_string());
    let bytes = hex::decode(cursor).map_err(|_| bad())?;
    <[u8; 40]>::try_from(bytes.as_slice()).map_err(|_| bad())
}

/// The job id at the end of an index key.
pub(crate) fn id_of(key: &[u8]) -> Option<JobId> {
    let id: [u8; 32] = key.get(key.len().checked_sub(32)?..)?.try_into().ok()?;
    Some(JobId::from(id))
}

/// The cursor naming the entry at `key`.
pub(crate) fn cursor_of(key: &[u8]) -> Option<String> {
    key.get(key.len().checked_sub(40)?..).map(hex::encode)
}

/// Whether `job` belongs in a listing under `filter` (index entries may be stale).
pub(crate) fn matches(job: &Job, filter: &JobFilter<'_>) -> bool {
    filter.state.is_none_or(|s| job.state.name() == s)
        && filter
            .wallet
            .is_none_or(|w| job.credits.iter().any(|c| c.wallet == w))
}

#[cfg(test)]
pub(crate) mod tests {
    use pocmesh_protocol::{Hash32, JobParams, JobSpec, Limits};

    use super::*;
    use crate::lifecycle::{Credit, JobState};
    use crate::store::{Changes, DispatcherStore};

    /// A queued one-round hash job seeded with `i`, submitted at `ms` (also used by the page tests).
    pub(crate) fn job(i: u8, ms: u64) -> Job {
        let spec = JobSpec {
            params: JobParams::Hash {
                seed: Hash32([i; 32]),
                iterations: 1,
            },
            limits: Limits {
                max_ms: 1_000,
                max_mem_mb: 16,
                max_output_bytes: 64,
                max_fuel: None,
            },
        };
        Job::queued(JobId::from([i; 32]), spec, 1, ms)
    }

    fn credit(j: &Job, wallet: Address) -> Credit {
        Credit {
            job: j.id,
            node: Address::from([0x01; 20]),
            peer: String::new(),
            wallet,
            units: 1,
            result_hash: Hash32([0; 32]),
        }
    }

    fn ids(jobs: &[Job]) -> Vec<u8> {
        jobs.iter().map(|j| j.id.as_bytes()[0]).collect()
    }

    fn write(store: &DispatcherStore, jobs: Vec<Job>) {
        store
            .commit(&Changes {
                jobs,
                ..Changes::default()
            })
            .expect("commit");
    }

    #[test]
    fn listings_page_newest_first_by_state_and_wallet_and_follow_state_changes() {
        let dir = tempfile::tempdir().expect("tmp");
        let store = DispatcherStore::open(dir.path()).expect("open");
        let all: Vec<Job> = (1..=7).map(|i| job(i, 1_000 + u64::from(i))).collect();
        write(&store, all.clone());
        let any = JobFilter::default();

        // Pages of 3, newest first, then the rest, then nothing.
        let (page, next) = store.list_jobs(&any, 3, None).expect("page 1");
        assert_eq!(ids(&page), [7, 6, 5]);
        let (page, next) = store.list_jobs(&any, 3, next.as_deref()).expect("page 2");
        assert_eq!(ids(&page), [4, 3, 2]);
        let (page, next) = store.list_jobs(&any, 3, next.as_deref()).expect("page 3");
        assert_eq!(ids(&page), [1]);
        assert_eq!(next, None);

        // Two jobs move on and credit wallets: the state index follows, the wallet index lists
        // exactly the jobs that credited the wallet.
        let (w1, w2) = (Address::from([0xaa; 20]), Address::from([0xbb; 20]));
        let mut a = all[1].clone();
        a.state = JobState::Verified;
        a.credits = vec![credit(&a, w1)];
        let mut b = all[4].clone();
        b.state = JobState::Verified;
        b.credits = vec![credit(&b, w1), credit(&b, w2)];
        write(&store, vec![a, b]);
        let by_state = |s: &str| {
            let filter = JobFilter::in_state(s);
            ids(&store.list_jobs(&filter, 100, None).expect("list").0)
        };
        assert_eq!(by_state("verified"), [5, 2]);
        assert_eq!(by_state("queued"), [7, 6, 4, 3, 1]);
        let by_wallet = |w: Address| {
            let filter = JobFilter::of_wallet(w);
            ids(&store.list_jobs(&filter, 100, None).expect("list").0)
        };
        assert_eq!(by_wallet(w1), [5, 2]);
        assert_eq!(by_wallet(w2), [5]);
        assert!(by_wallet(Address::from([0xcc; 20])).is_empty());

        // Credits taken back: the stale wallet entry is skipped.
        let mut b = store
            .job(&JobId::from([5; 32]))
            .expect("read")
            .expect("row");
        b.credits.clear();
        b.state = JobState::Submitted;
        write(&store, vec![b]);
        assert_eq!(by_wallet(w2), Vec::<u8>::new());
        assert_eq!(by_state("verified"), [2]);

        // Bad queries say what is wrong.
        let e = store
            .list_jobs(&JobFilter::in_state("done"), 5, None)
            .expect_err("unknown state");
        assert!(e.to_string().contains("unknown state `done`"), "{e}");
        let e = store
            .list_jobs(&any, 5, Some("zz"))
            .expect_err("bad cursor");
        assert!(e.to_string().contains("x-next-cursor"), "{e}");
    }

    #[test]
    fn only_final_states_are_listed_on_disk_and_the_final_names_are_the_final_states() {
        let dir = tempfile::tempdir().expect("tmp");
        let store = DispatcherStore::open(dir.path()).expect("open");
        let mut j = job(9, 9_000);
        write(&store, vec![j.clone()]);
        j.state = JobState::Verified;
        j.credits = vec![credit(&j, Address::from([0xaa; 20]))];
        write(&store, vec![j.clone()]);
        let disk = |store: &DispatcherStore| -> Vec<u8> {
            let (all, _) = store
                .list_jobs(&JobFilter::default(), 10, None)
                .expect("list");
            all.iter().map(|j| j.id.as_bytes()[0]).collect()
        };
        assert_eq!(disk(&store), [9]);
        assert_eq!(store.listed_in_memory(), 1);
        j.state = JobState::Recorded {
            batch: pocmesh_protocol::BatchId::from([1; 32]),
            tx: Hash32([2; 32]),
            block: 3,
        };
        write(&store, vec![j.clone()]);
        assert_eq!(store.listed_in_memory(), 0, "a final job leaves memory");
        drop(store);
        // A reopened store lists the final job from disk, with no engine to load anything.
        let store = DispatcherStore::reopen_for_test(dir.path());
        let recorded = JobFilter::in_state("recorded");
        assert_eq!(
            ids(&store.list_jobs(&recorded, 10, None).expect("list").0),
            [9]
        );
        assert_eq!(disk(&store), [9]);

        // Disk entries of states that are not final are the ones this version never reads.
        let states = [
            JobState::Queued,
            JobState::Offered,
            JobState::Running,
            JobState::Submitted,
            JobState::Verified,
            JobState::Recording {
                batch: pocmesh_protocol::BatchId::from([1; 32]),
            },
            j.state.clone(),
            JobState::Failed { reason: "x".into() },
            JobState::Rejected { reason: "x".into() },
        ];
        assert_eq!(states.len(), STATE_NAMES.len());
        for state in &states {
            let code = state_code(state.name()).expect("a known state");
            assert_eq!(
                open_state_code(state.name()).is_none(),
                state.is_final(),
                "{}",
                state.name()
            );
            assert_eq!(
                unread(&[b's', code, 0]),
                !state.is_final(),
                "{}",
                state.name()
            );
        }
    }

    #[test]
    fn a_store_written_before_the_indexes_gets_them_at_open() {
        let dir = tempfile::tempdir().expect("tmp");
        {
            let store = DispatcherStore::open(dir.path()).expect("open");
            write(
                &store,
                (1..=4).map(|i| job(i, 2_000 + u64::from(i))).collect(),
            );
            store.drop_index_for_test();
        }
        let store = DispatcherStore::reopen_for_test(dir.path());
        let (page, _) = store
            .list_jobs(&JobFilter::default(), 10, None)
            .expect("list");
        assert_eq!(ids(&page), [4, 3, 2, 1]);
    }
}
