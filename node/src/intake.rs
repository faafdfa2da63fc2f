//! The pure decision on an offer: accepted only from a trusted dispatcher, for an enabled job
//! type, for a target this node accepts (HTTP checks: see
//! [`TargetRules`](pocmesh_executor::http::target::TargetRules)), with limits inside this node's
//! caps, while a slot is free, the volunteer has not opted out and the node is not stopping.

use pocmesh_protocol::{DeclineReason, JobOffer, JobType};

use pocmesh_executor::ExecutorCaps;
use pocmesh_executor::http::target::TargetRules;

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
    /// The volunteer has opted out.
    pub opted_out: bool,
    /// Which HTTP check targets this node refuses.
    pub targets: &'a TargetRules,
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
    if state.opted_out {
        return Err(DeclineReason::OptedOut);
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
    state
        .targets
        .check_params(&offer.spec.params)
        .map_err(|refusal| refusal.decline_reason())?;
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
    use pocmesh_executor::http::target::DenyList;
    use pocmesh_protocol::http_check::{MAX_ROBOTS_PATHS, MAX_URL_LEN};
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
        let targets = TargetRules::default();
        let ok = IntakeState {
            enabled: &enabled,
            caps: &caps,
            free_slots: 1,
            shutting_down: false,
            opted_out: false,
            targets: &targets,
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
            (
                IntakeState {
                    opted_out: true,
                    ..ok.clone()
                },
                DeclineReason::OptedOut,
            ),
        ];
        for (state, reason) in cases {
            assert_eq!(evaluate(&offer(hash.clone(), 1_000), &state), Err(reason));
        }
    }

    #[test]
    fn http_targets_the_node_refuses_are_declined_at_intake() {
        let caps = ExecutorCaps::default();
        let enabled = [JobType::LinkHealth, JobType::RobotsRecheck];
        let targets = TargetRules {
            deny: DenyList::new(&["denied.example"]).expect("deny-list"),
            allow_loopback: false,
        };
        let state = IntakeState {
            enabled: &enabled,
            caps: &caps,
            free_slots: 1,
            shutting_down: false,
            opted_out: false,
            targets: &targets,
            trusted: true,
            repeated: false,
        };
        let link = |url: &str| JobParams::LinkHealth {
            url: url.into(),
            expected_status: None,
        };
        let robots = |domain: &str, paths: Vec<String>| JobParams::RobotsRecheck {
            domain: domain.into(),
            paths,
        };
        assert_eq!(
            evaluate(&offer(link("https://fine.example/a"), 1_000), &state),
            Ok(())
        );
        assert_eq!(
            evaluate(
                &offer(robots("fine.example", vec!["/a".into()]), 1_000),
                &state
            ),
            Ok(())
        );
        let long = format!("https://fine.example/{}", "x".repeat(MAX_URL_LEN));
        let too_many: Vec<String> = (0..=MAX_ROBOTS_PATHS).map(|i| format!("/{i}")).collect();
        for params in [
            link("https://denied.example/"),
            link("https://www.denied.example/page"),
            link("http://127.0.0.1:8080/"),
            link("http://93.184.216.34/"),
            link("ftp://fine.example/file"),
            link(&long),
            robots("denied.example", vec![]),
            robots("fine.example", too_many),
            robots("10.0.0.1", vec![]),
        ] {
            assert_eq!(
                evaluate(&offer(params.clone(), 1_000), &state),
                Err(DeclineReason::TargetRefused),
                "{params:?}"
            );
        }
        assert_eq!(
            evaluate(&offer(link("no url at all"), 1_000), &state),
            Err(DeclineReason::InvalidOffer)
        );
        // With the devnet flag, loopback passes; other private ranges still do not.
        let devnet = TargetRules {
            allow_loopback: true,
            ..targets.clone()
        };
        let state = IntakeState {
            targets: &devnet,
            ..state
        };
        assert_eq!(
            evaluate(&offer(link("http://127.0.0.1:8080/"), 1_000), &state),
            Ok(())
        );
        assert_eq!(
            evaluate(&offer(link("http://10.0.0.1/"), 1_000), &state),
            Err(DeclineReason::TargetRefused)
        );
    }
}
