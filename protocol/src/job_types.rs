//! The registry of job types: one row per type says its wire name, what it does, where its units
//! come from, how its results are verified, whether it reaches outside the node, and whether a
//! node runs it unless told otherwise. The units rule, the verification choice, the node's
//! defaults and refusals, the CLI's `--type`/`--job-types` and the API's validation all read this
//! table instead of listing the types themselves (docs/adding-a-job-type.md).

use crate::message::JobType;
use crate::units::UnitsRule;

/// How a type's results are checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verification {
    /// Deterministic: the dispatcher can run the job itself and compare (audits, tie-breaks).
    ReExecuted,
    /// Not deterministic (it reads the outside world): independent nodes are compared, and a
    /// disagreement is never by itself proof that a node lied.
    Replicated,
}

/// One job type's row of the registry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JobTypeInfo {
    /// The type.
    pub job_type: JobType,
    /// Its wire name (`JobType::as_str`).
    pub name: &'static str,
    /// What it does, in one line, for `--help` and the docs.
    pub summary: &'static str,
    /// Where its units come from.
    pub units: UnitsRule,
    /// How its results are checked.
    pub verification: Verification,
    /// Whether it makes requests outside the node (allow-list, pacing, consent, deny-lists).
    pub reaches_web: bool,
    /// Whether a node runs it when the volunteer has not chosen (`--job-types`).
    pub default_enabled: bool,
}

/// Every job type this version knows, in the order they are listed to people.
pub const REGISTRY: [JobTypeInfo; 4] = [
    JobTypeInfo {
        job_type: JobType::Hash,
        name: "hash",
        summary: "iterated keccak256 of a seed (demos, benchmarks)",
        units: UnitsRule::Iterations,
        verification: Verification::ReExecuted,
        reaches_web: false,
        default_enabled: true,
    },
    JobTypeInfo {
        job_type: JobType::Wasm,
        name: "wasm",
        summary: "a WebAssembly module run in a sandbox with fuel metering",
        units: UnitsRule::AgreedFuel,
        verification: Verification::ReExecuted,
        reaches_web: false,
        default_enabled: true,
    },
    JobTypeInfo {
        job_type: JobType::LinkHealth,
        name: "link_health",
        summary: "one bounded GET of an allow-listed URL, reporting its health",
        units: UnitsRule::PerRequest { units: 1 },
        verification: Verification::Replicated,
        reaches_web: true,
        default_enabled: false,
    },
    JobTypeInfo {
        job_type: JobType::RobotsRecheck,
        name: "robots_recheck",
        summary: "a bounded GET of an allow-listed site's robots.txt, with path verdicts",
        units: UnitsRule::PerRequest { units: 1 },
        verification: Verification::Replicated,
        reaches_web: true,
        default_enabled: false,
    },
];

/// The wire names of every known type, in registry order (for CLI possible values).
pub const NAMES: [&str; 4] = [
    REGISTRY[0].name,
    REGISTRY[1].name,
    REGISTRY[2].name,
    REGISTRY[3].name,
];

/// A name that is not a known job type.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown job type `{0}`; one of {names}", names = names())]
pub struct UnknownJobType(pub String);

/// The known names, comma-separated, for messages.
pub fn names() -> String {
    NAMES.join(", ")
}

/// The types a node runs unless the volunteer chooses.
pub fn default_enabled() -> Vec<JobType> {
    REGISTRY
        .iter()
        .filter(|i| i.default_enabled)
        .map(|i| i.job_type)
        .collect()
}

impl JobType {
    /// This type's row, `None` for [`JobType::Unknown`].
    pub fn info(self) -> Option<&'static JobTypeInfo> {
        REGISTRY.iter().find(|i| i.job_type == self)
    }

    /// The type with this wire name.
    pub fn from_name(name: &str) -> Result<JobType, UnknownJobType> {
        REGISTRY
            .iter()
            .find(|i| i.name == name)
            .map(|i| i.job_type)
            .ok_or_else(|| UnknownJobType(name.to_string()))
    }
}

impl std::str::FromStr for JobType {
    type Err = UnknownJobType;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        JobType::from_name(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_known_type_has_one_row_under_its_wire_name() {
        assert_eq!(REGISTRY.len(), JobType::KNOWN.len());
        for t in JobType::KNOWN {
            let info = t.info().expect("a row");
            assert_eq!(info.name, t.as_str());
            assert_eq!(JobType::from_name(t.as_str()), Ok(t));
            assert_eq!(
                REGISTRY.iter().filter(|i| i.job_type == t).count(),
                1,
                "{t:?} once"
            );
        }
        assert_eq!(JobType::Unknown.info(), None);
    }

    #[test]
    fn unknown_names_are_refused_naming_the_known_ones() {
        let err = JobType::from_name("unknown").expect_err("not a runnable type");
        assert_eq!(
            err.to_string(),
            "unknown job type `unknown`; one of hash, wasm, link_health, robots_recheck"
        );
        assert!("mining".parse::<JobType>().is_err());
    }

    #[test]
    fn types_that_reach_the_web_are_replicated_and_off_by_default() {
        for i in REGISTRY {
            if i.reaches_web {
                assert_eq!(i.verification, Verification::Replicated, "{}", i.name);
                assert!(!i.default_enabled, "{} must be opted into", i.name);
            }
        }
        assert_eq!(default_enabled(), vec![JobType::Hash, JobType::Wasm]);
    }
}
