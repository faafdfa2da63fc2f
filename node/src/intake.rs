//! The pure decision on an offer: accepted only from a trusted dispatcher, for an enabled job
//! type, with limits inside this node's caps, while a slot is free and the node is not stopping.

use pocmesh_protocol::{DeclineReason, JobOffer, JobType};

use crate::executor::ExecutorCaps;

/// What the decision needs to know about the node right now.
#[derive(Debug, Clone)]
pub struct IntakeState<'a> {
    /// Job types enabled.
    pub enabled: &'a [JobType],
    /// The node's limits.
    pub caps: &'a ExecutorCaps,
    /// Slots free.
    pub free_slots: u32,
    /// Ctrl-C was pressed.
    pub shutting_down: bool,
    /// The offer's signer holds the node's trust.
    pub trusted: bool,
    /// This attempt is already known here (a repeated offer).
    pub repeated: bool,
}

/// Accepts `offer` or says why not.
pub fn evaluate(offer: &JobOffer, state: &IntakeState<'_>) -> Result<(), DeclineReason> {
    if state.shutting_down {
        return Err(DeclineReason::ShuttingDown);
    }
    if !state.trusted {
        return Err(DeclineReason::UntrustedDispatcher);
    }
    if offer.attempt == 0 || offer.lease_ms == 0 || state.repeated {
        return Err(DeclineReason::InvalidOffer);
    }
    if !state.enabled.contains(&offer.spec.params.job_type()) {
        return Err(DeclineReason::JobTypeDisabled);
    }
    if !state.caps.admits(&offer.spec.limits) {
        return Err(DeclineReason::LimitsTooHigh);
    }
    if state.free_slots == 0 {
        return Err(DeclineReason::Busy);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use pocmesh_protocol::{Hash32, JobId, JobParams, JobSpec, Limits};

    fn offer(params: JobParams, max_ms: u64) -> JobOffer {
        JobOffer {
            job: JobId::from([1u8; 32]),
            spec: JobSpec {
                params,
                limits: Limits {
                    max_ms,
                    max_mem_mb: 16,
                    max_output_bytes: 64,
                    max_fuel: None,
                },
            },
            lease_ms: 10_000,
            attempt: 1,
        }
    }

    #[test]
    fn each_reason_to_decline_is_reported() {
        let caps = ExecutorCaps::default();
        let enabled = [JobType::Hash];
        let ok = IntakeState {
            enabled: &enabled,
            caps: &caps,
            free_slots: 1,
            shutting_down: false,
            trusted: true,
            repeated: false,
        };
        let hash = JobParams::Hash {
            seed: Hash32([0u8; 32]),
            iterations: 10,
        };
        assert_eq!(evaluate(&offer(hash.clone(), 1_000), &ok), Ok(()));
        let wasm = JobParams::Wasm {
            module: pocmesh_protocol::Bytes(vec![]),
            input: pocmesh_protocol::Bytes(vec![]),
        };
        assert_eq!(
            evaluate(&offer(wasm, 1_000), &ok),
            Err(DeclineReason::JobTypeDisabled)
        );
        assert_eq!(
            evaluate(&offer(hash.clone(), caps.max_ms + 1), &ok),
            Err(DeclineReason::LimitsTooHigh)
        );
        let cases = [
            (
                IntakeState {
                    free_slots: 0,
                    ..ok.clone()
                },
                DeclineReason::Busy,
            ),
            (
                IntakeState {
                    trusted: false,
                    ..ok.clone()
                },
                DeclineReason::UntrustedDispatcher,
            ),
            (
                IntakeState {
                    shutting_down: true,
                    ..ok.clone()
                },
                DeclineReason::ShuttingDown,
            ),
            (
                IntakeState {
                    repeated: true,
                    ..ok.clone()
                },
                DeclineReason::InvalidOffer,
            ),
        ];
        for (state, reason) in cases {
            assert_eq!(evaluate(&offer(hash.clone(), 1_000), &state), Err(reason));
        }
    }
}
