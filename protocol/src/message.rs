//! The messages of the pocmesh protocol (DESIGN.md, "Wire format"), one struct per kind.
//!
//! A [`Message`] is a CBOR map `{ "v": 1, "kind": …, "net": …, "from": …, "ts": …, …kind fields }`.
//! Unknown fields are ignored on decoding so later versions can add fields; unknown kinds and a
//! different `v` are errors.

use serde::{Deserialize, Serialize};

use crate::address::Address;
use crate::bytes::Bytes;
use crate::hash::Hash32;
use crate::ids::{BatchId, JobId};

/// The protocol version this crate speaks (`v`).
pub const PROTOCOL_VERSION: u8 = 1;

/// A decoded protocol message: the common header plus one kind's fields.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Message {
    /// Protocol version; always [`PROTOCOL_VERSION`] for messages this crate accepts.
    pub v: u8,
    /// The network this message belongs to (`xdc-apothem`, `devnet-<chain id>`, …).
    pub net: String,
    /// The author's address; the envelope signature must recover to it.
    pub from: Address,
    /// When it was written, unix milliseconds.
    pub ts: u64,
    /// The kind and its fields.
    #[serde(flatten)]
    pub body: Body,
}

/// The kind of a message with its fields; `kind` on the wire.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Body {
    /// A node's signed liveness and capability announcement (gossip).
    Heartbeat(Heartbeat),
    /// A dispatcher's announcement (gossip).
    Dispatcher(DispatcherAnnounce),
    /// A volunteer's withdrawal from the mesh (heartbeat topic).
    OptOut(OptOut),
    /// A job offered to one node (request-response).
    JobOffer(JobOffer),
    /// A node's answer to an offer.
    JobReply(JobReply),
    /// A node's result for an accepted job.
    JobResult(JobResult),
    /// Proof that a job's credit was recorded on chain, sent back to the node.
    Receipt(Receipt),
    /// Several receipts to one node in one signed message (to nodes that announce
    /// `receipts_batch`).
    Receipts(Receipts),
    /// The answers to a `receipts`, `job_offers` or `job_results` message, one per item in
    /// its order.
    Replies(Replies),
    /// Several offers to one node in one signed message (to nodes that announce `jobs_batch`).
    JobOffers(JobOffers),
    /// Several results to one dispatcher in one signed message (to a dispatcher that sent
    /// `job_offers`).
    JobResults(JobResults),
}

/// The `kind` of a message without its fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    /// `heartbeat`
    Heartbeat,
    /// `dispatcher`
    Dispatcher,
    /// `opt_out`
    OptOut,
    /// `job_offer`
    JobOffer,
    /// `job_reply`
    JobReply,
    /// `job_result`
    JobResult,
    /// `receipt`
    Receipt,
    /// `receipts`
    Receipts,
    /// `replies`
    Replies,
    /// `job_offers`
    JobOffers,
    /// `job_results`
    JobResults,
}

impl Kind {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Heartbeat => "heartbeat",
            Kind::Dispatcher => "dispatcher",
            Kind::OptOut => "opt_out",
            Kind::JobOffer => "job_offer",
            Kind::JobReply => "job_reply",
            Kind::JobResult => "job_result",
            Kind::Receipt => "receipt",
            Kind::Receipts => "receipts",
            Kind::Replies => "replies",
            Kind::JobOffers => "job_offers",
            Kind::JobResults => "job_results",
        }
    }
}

impl std::fmt::Display for Kind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Body {
    /// This body's kind.
    pub fn kind(&self) -> Kind {
        match self {
            Body::Heartbeat(_) => Kind::Heartbeat,
            Body::Dispatcher(_) => Kind::Dispatcher,
            Body::OptOut(_) => Kind::OptOut,
            Body::JobOffer(_) => Kind::JobOffer,
            Body::JobReply(_) => Kind::JobReply,
            Body::JobResult(_) => Kind::JobResult,
            Body::Receipt(_) => Kind::Receipt,
            Body::Receipts(_) => Kind::Receipts,
            Body::Replies(_) => Kind::Replies,
            Body::JobOffers(_) => Kind::JobOffers,
            Body::JobResults(_) => Kind::JobResults,
        }
    }

    /// The per-sender sequence number, for kinds that carry one (heartbeat, opt-out).
    pub fn seq(&self) -> Option<u64> {
        match self {
            Body::Heartbeat(h) => Some(h.seq),
            Body::OptOut(o) => Some(o.seq),
            _ => None,
        }
    }
}

impl Message {
    /// A version-1 message.
    pub fn new(net: impl Into<String>, from: Address, ts: u64, body: Body) -> Self {
        Message {
            v: PROTOCOL_VERSION,
            net: net.into(),
            from,
            ts,
            body,
        }
    }

    /// This message's kind.
    pub fn kind(&self) -> Kind {
        self.body.kind()
    }
}

/// A job type a node can run. Unknown names from newer software decode as [`JobType::Unknown`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobType {
    /// Iterated keccak256 (demos, benchmarks).
    Hash,
    /// A WebAssembly module run with fuel metering.
    Wasm,
    /// Bounded HTTP GET of an allow-listed URL, reporting its health.
    LinkHealth,
    /// Bounded HTTP GET of an allow-listed site's robots.txt.
    RobotsRecheck,
    /// A job type this version does not know.
    #[serde(other)]
    Unknown,
}

impl JobType {
    /// Every job type this version knows.
    pub const KNOWN: [JobType; 4] = [
        JobType::Hash,
        JobType::Wasm,
        JobType::LinkHealth,
        JobType::RobotsRecheck,
    ];

    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            JobType::Hash => "hash",
            JobType::Wasm => "wasm",
            JobType::LinkHealth => "link_health",
            JobType::RobotsRecheck => "robots_recheck",
            JobType::Unknown => "unknown",
        }
    }
}

/// What a node offers, announced in every heartbeat.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Capabilities {
    /// CPU cores the node lets pocmesh use.
    pub cores: u32,
    /// Memory the node lets pocmesh use, MiB.
    pub mem_mb: u64,
    /// GPU model, if one is present and enabled.
    pub gpu: Option<String>,
    /// Job types enabled on this node.
    pub job_types: Vec<JobType>,
    /// Concurrent job slots in total.
    pub slots_total: u32,
    /// Slots free right now.
    pub slots_free: u32,
    /// Most receipts this node takes in one `receipts` message (0, or absent from older
    /// nodes: one `receipt` message each). Left out of the encoding when 0, so a heartbeat
    /// without it is byte for byte what it was before the field existed.
    #[serde(skip_serializing_if = "is_zero")]
    pub receipts_batch: u32,
    /// Most offers this node takes in one `job_offers` message (0, or absent: one `job_offer`
    /// each). A node that announces it also sends its results to a dispatcher that batches its
    /// offers as `job_results`. Left out of the encoding when 0, like `receipts_batch`.
    #[serde(skip_serializing_if = "is_zero")]
    pub jobs_batch: u32,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

/// `heartbeat`: a node's liveness and capabilities.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Heartbeat {
    /// Strictly increasing per node, across restarts.
    pub seq: u64,
    /// The volunteer's wallet, credited for this node's work.
    pub wallet: Address,
    /// The node's libp2p PeerId, as text.
    pub peer: String,
    /// What the node offers.
    pub caps: Capabilities,
    /// keccak256 of the consent text the volunteer accepted.
    pub policy: Hash32,
    /// Software version.
    pub sw: String,
}

/// The consent policy a dispatcher requires.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PolicyRef {
    /// keccak256 of the consent text.
    pub hash: Hash32,
    /// Its version number.
    pub version: u32,
    /// Where volunteers can read it.
    pub url: String,
}

/// `dispatcher`: a dispatcher's announcement.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DispatcherAnnounce {
    /// The dispatcher's libp2p PeerId, as text.
    pub peer: String,
    /// The ProofOfCompute contract it records to.
    pub contract: Address,
    /// The consent policy nodes must have accepted.
    pub policy: PolicyRef,
    /// Job types it dispatches.
    pub job_types: Vec<JobType>,
}

/// `opt_out`: the volunteer withdraws; no dispatcher may assign to this node afterwards.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OptOut {
    /// The volunteer's wallet.
    pub wallet: Address,
    /// Shares the heartbeat sequence of the node.
    pub seq: u64,
}

/// Hard limits a job runs under; a node declines offers above its own caps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Limits {
    /// Wall-clock limit, milliseconds.
    pub max_ms: u64,
    /// Memory limit, MiB.
    pub max_mem_mb: u64,
    /// Output size limit, bytes.
    pub max_output_bytes: u64,
    /// Fuel limit (wasm), if any.
    #[serde(default)]
    pub max_fuel: Option<u64>,
}

/// A job's type and parameters; `type` on the wire.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum JobParams {
    /// keccak256 iterated `iterations` times over `seed`.
    Hash {
        /// The starting value.
        seed: Hash32,
        /// How many times to hash.
        iterations: u64,
    },
    /// A WebAssembly module called on an input.
    Wasm {
        /// The module's bytes.
        module: Bytes,
        /// The input handed to the module.
        input: Bytes,
    },
    /// Health of one allow-listed URL: one bounded GET.
    LinkHealth {
        /// The URL to fetch (`http` or `https`).
        url: String,
        /// The status the submitter expects (any 2xx when absent).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        expected_status: Option<u16>,
    },
    /// Re-fetch of one allow-listed site's `https://<domain>/robots.txt`.
    RobotsRecheck {
        /// The site's domain (a host name, no scheme or path).
        domain: String,
        /// Paths to ask about: may pocmesh's user agent fetch them?
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        paths: Vec<String>,
    },
}

impl JobParams {
    /// The job type of these parameters.
    pub fn job_type(&self) -> JobType {
        match self {
            JobParams::Hash { .. } => JobType::Hash,
            JobParams::Wasm { .. } => JobType::Wasm,
            JobParams::LinkHealth { .. } => JobType::LinkHealth,
            JobParams::RobotsRecheck { .. } => JobType::RobotsRecheck,
        }
    }
}

/// What to run and within which limits.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobSpec {
    /// Type and parameters.
    #[serde(flatten)]
    pub params: JobParams,
    /// Hard limits.
    pub limits: Limits,
}

/// `job_offer`: the dispatcher asks one node to run one attempt of a job.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobOffer {
    /// The job.
    pub job: JobId,
    /// What to run.
    pub spec: JobSpec,
    /// How long the node holds the job once accepted, milliseconds.
    pub lease_ms: u64,
    /// Attempt number, from 1.
    pub attempt: u32,
}

/// Why a node declines an offer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeclineReason {
    /// No free slot.
    Busy,
    /// The offering dispatcher is not trusted by this node.
    UntrustedDispatcher,
    /// The job type is not enabled on this node.
    JobTypeDisabled,
    /// The job's limits exceed what this node allows.
    LimitsTooHigh,
    /// The volunteer has opted out.
    OptedOut,
    /// The node is shutting down.
    ShuttingDown,
    /// The offer itself was malformed.
    InvalidOffer,
    /// The job's target (a URL or domain) is refused by the node: its own deny-list, an address
    /// literal, or a scheme other than http/https.
    TargetRefused,
    /// A reason this version does not know.
    #[serde(other)]
    Other,
}

/// `job_reply`: accept or decline an offer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobReply {
    /// The job.
    pub job: JobId,
    /// The attempt answered.
    pub attempt: u32,
    /// Whether the node took the job.
    pub accept: bool,
    /// Why not, when declined.
    #[serde(default)]
    pub reason: Option<DeclineReason>,
}

impl JobReply {
    /// An acceptance.
    pub fn accepted(job: JobId, attempt: u32) -> Self {
        JobReply {
            job,
            attempt,
            accept: true,
            reason: None,
        }
    }

    /// A refusal with its reason.
    pub fn declined(job: JobId, attempt: u32, reason: DeclineReason) -> Self {
        JobReply {
            job,
            attempt,
            accept: false,
            reason: Some(reason),
        }
    }
}

/// How an attempt ended on the node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ResultStatus {
    /// Ran to completion; `output`/`result_hash` hold the result.
    Ok,
    /// Failed (limit hit, trap, fetch error); `error` says why.
    Failed,
}

/// Resources an attempt used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Metering {
    /// Fuel consumed (wasm) or iterations done (hash).
    pub fuel: u64,
    /// Wall-clock time, milliseconds.
    pub ms: u64,
    /// Output size, bytes.
    pub bytes: u64,
}

/// `job_result`: a node's result for an attempt it accepted.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobResult {
    /// The job.
    pub job: JobId,
    /// The attempt.
    pub attempt: u32,
    /// Ok or failed.
    pub status: ResultStatus,
    /// The output, when small enough to send whole.
    #[serde(default)]
    pub output: Option<Bytes>,
    /// keccak256 of the output; what a quorum compares.
    pub result_hash: Hash32,
    /// Resources used.
    pub metering: Metering,
    /// Why it failed, when it did.
    #[serde(default)]
    pub error: Option<String>,
}

/// `receipt`: the job's credit is on chain; the proof lets the node check it itself.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Receipt {
    /// The job.
    pub job: JobId,
    /// The batch that credited it.
    pub batch: BatchId,
    /// The recording transaction.
    pub tx: Hash32,
    /// The block it landed in.
    #[serde(default)]
    pub block: u64,
    /// Units credited for this job.
    pub units: u64,
    /// The wallet credited.
    pub provider: Address,
    /// The result hash in the receipt leaf.
    pub result_hash: Hash32,
    /// Merkle proof of the leaf in the batch's receipts root.
    pub proof: Vec<Hash32>,
}

/// Most items in one `receipts`, `job_offers`, `job_results` or `replies` message.
pub const MAX_BATCH_ITEMS: usize = 64;

/// `receipts`: several jobs' credits are on chain — one signature and one stream for all of
/// them instead of one each.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Receipts {
    /// At most [`MAX_BATCH_ITEMS`], and at most the receiver's `receipts_batch`.
    pub receipts: Vec<Receipt>,
}

/// `replies`: the answers to a `receipts` message, one per receipt, in its order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Replies {
    /// One per item answered.
    pub replies: Vec<JobReply>,
}

/// Most bytes of job parameters (wasm modules and inputs) or of outputs put into one
/// `job_offers` or `job_results` message by their senders, far under the envelope cap: a large
/// job travels alone.
pub const BATCH_PAYLOAD_BYTES: usize = 1024 * 1024;

/// `job_offers`: several attempts offered to one node — one signature and one stream for all
/// of them. Each offer is decided on as a single `job_offer` would be.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobOffers {
    /// At most [`MAX_BATCH_ITEMS`], and at most the receiver's `jobs_batch`.
    pub offers: Vec<JobOffer>,
}

/// `job_results`: several results to the dispatcher that offered the jobs. Each is checked and
/// credited as a single `job_result` would be; the answer is one `replies`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobResults {
    /// At most [`MAX_BATCH_ITEMS`].
    pub results: Vec<JobResult>,
}

impl JobSpec {
    /// Bytes this job's parameters add to a message, roughly: what [`BATCH_PAYLOAD_BYTES`]
    /// counts.
    pub fn payload_bytes(&self) -> usize {
        match &self.params {
            JobParams::Hash { .. } => 64,
            JobParams::Wasm { module, input } => module.0.len() + input.0.len() + 64,
            JobParams::LinkHealth { url, .. } => url.len() + 64,
            JobParams::RobotsRecheck { domain, paths } => {
                domain.len() + paths.iter().map(|p| p.len() + 8).sum::<usize>() + 64
            }
        }
    }
}

impl JobResult {
    /// Bytes this result adds to a message, roughly: what [`BATCH_PAYLOAD_BYTES`] counts.
    pub fn payload_bytes(&self) -> usize {
        self.output.as_ref().map_or(0, |o| o.0.len())
            + self.error.as_ref().map_or(0, String::len)
            + 160
    }
}
