//! # pocmesh-protocol
//!
//! What nodes and dispatchers say to each other, and how it is signed — nothing about how it
//! travels (that is `pocmesh-mesh`) and no I/O beyond key files.
//!
//! - [`Address`]: 20-byte identities, EIP-55 `0x…` and XDC `xdc…` forms.
//! - [`SecretKey`]: secp256k1 keys in files with mode 0600; never printed.
//! - [`Envelope`], [`Message`], [`Body`]: the locked wire format of DESIGN.md — a CBOR
//!   `{payload, sig}` where `sig` is an EIP-191 `personal_sign` signature over keccak256(payload).
//! - [`Validator`]: size cap before decoding, signature, `from`, network and clock checks.
//! - [`ReplayGuard`]: per-sender sequence numbers in bounded memory.
//! - [`ReceiptLeaf`], [`MerkleTree`]: receipt leaves and proofs exactly as the `ProofOfCompute`
//!   contract's `verifyReceipt` checks them.
//! - [`BatchPlan`]: a batch's root, per-wallet units and content-derived id.
//! - [`UnitsRule`], [`check_metering`], [`credited_units`]: the units rule — what a result may
//!   claim and what it earns.
//! - [`http_check`]: what HTTP check jobs report and what independent checks compare.
//! - [`Topic`], [`JOB_PROTOCOL`]: names on the wire.
//! - [`inspect()`]: decode-and-explain for operators (`pocmesh inspect`).

pub mod address;
pub mod batch;
pub mod bytes;
pub mod consent;
pub mod envelope;
pub mod hash;
pub mod http_check;
pub mod ids;
pub mod inspect;
pub mod job_types;
pub mod keys;
pub mod message;
pub mod receipt;
pub mod replay;
pub mod signature;
pub mod topics;
pub mod units;

pub use address::{Address, AddressError};
pub use batch::{BatchError, BatchPlan};
pub use bytes::Bytes;
pub use envelope::{
    DEFAULT_MAX_SKEW_MS, Envelope, MAX_ENVELOPE_BYTES, MAX_GOSSIP_BYTES, SealError,
    ValidationError, Validator, Verified, unix_ms_now,
};
pub use hash::{Hash32, keccak256};
pub use ids::{BatchId, JobId};
pub use inspect::{InspectOptions, InspectReport, inspect};
pub use job_types::{JobTypeInfo, REGISTRY as JOB_TYPES, UnknownJobType, Verification};
pub use keys::{KeyError, SecretKey};
pub use message::{
    BATCH_PAYLOAD_BYTES, Body, Capabilities, DeclineReason, DispatcherAnnounce, Heartbeat,
    JobOffer, JobOffers, JobParams, JobReply, JobResult, JobResults, JobSpec, JobType, Kind,
    Limits, MAX_BATCH_ITEMS, Message, Metering, OptOut, PolicyRef, Receipt, Receipts, Replies,
    ResultStatus,
};
pub use receipt::{MerkleError, MerkleTree, ReceiptLeaf, verify_proof};
pub use replay::{ReplayConfig, ReplayError, ReplayGuard};
pub use signature::{Signature, SignatureError};
pub use topics::{JOB_PROTOCOL, Topic};
pub use units::{MeteringError, UnitsRule, check_metering, credited_units, max_units};
