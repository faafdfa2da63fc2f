//! How many compute units a verified result earns (DESIGN.md, "Job lifecycle"). Nodes and
//! dispatchers both call this, so a node's expectation and the on-chain credit agree.

use crate::message::{JobType, Metering};

/// Work per unit for metered job types: one unit per million iterations (hash) or fuel (wasm).
pub const WORK_PER_UNIT: u64 = 1_000_000;

/// Units earned by one verified result of `job_type` that used `metering`; at least 1.
pub fn units_for(job_type: JobType, metering: &Metering) -> u64 {
    match job_type {
        JobType::Hash | JobType::Wasm => (metering.fuel / WORK_PER_UNIT).max(1),
        JobType::LinkHealth | JobType::RobotsRecheck | JobType::Unknown => 1,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metered_types_earn_one_unit_per_million_with_a_floor_of_one() {
        let m = |fuel| Metering {
            fuel,
            ms: 0,
            bytes: 0,
        };
        assert_eq!(units_for(JobType::Hash, &m(0)), 1);
        assert_eq!(units_for(JobType::Hash, &m(999_999)), 1);
        assert_eq!(units_for(JobType::Hash, &m(2_500_000)), 2);
        assert_eq!(units_for(JobType::Wasm, &m(7_000_000)), 7);
        assert_eq!(units_for(JobType::LinkHealth, &m(9_000_000)), 1);
    }
}
