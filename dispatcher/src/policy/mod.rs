//! The verification policy, as pure functions over plain data: a node's standing and audit rate
//! ([`standing`]), the keyed audit draw ([`audit`]), and what a job's results decide
//! ([`quorum`]). No I/O and no clock — time is an argument — so the engine applies exactly this
//! code and `pocmesh bench verify` simulates exactly this code.
//!
//! What it promises (DESIGN.md, "Job lifecycle"): a credit is given only for a result the
//! dispatcher checked, or one a node with a long record of checked results returned and the
//! unpredictable audit passed over; wrong results are proven wrong by the dispatcher's own run,
//! never by a vote; one operator cannot fill a quorum; the dispatcher's own failure blames no one.

pub mod audit;
pub mod quorum;
pub mod standing;

pub use audit::AuditKey;
pub use quorum::{
    AuditState, Claim, Decision, IndependenceRule, JobFacts, Member, Origin, ResultKey, SetAside,
    decide,
};
pub use standing::{Counters, Delivery, Exclusion, Standing, Trust, VerifySettings};
