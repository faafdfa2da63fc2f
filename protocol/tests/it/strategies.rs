//! proptest strategies for every message kind.

use pocmesh_protocol::*;
use proptest::collection::vec;
use proptest::prelude::*;

pub(crate) fn address() -> impl Strategy<Value = Address> {
    any::<[u8; 20]>().prop_map(Address)
}

pub(crate) fn hash32() -> impl Strategy<Value = Hash32> {
    any::<[u8; 32]>().prop_map(Hash32)
}

fn job_type() -> impl Strategy<Value = JobType> {
    prop::sample::select(JobType::KNOWN.to_vec())
}

fn text() -> impl Strategy<Value = String> {
    "[a-zA-Z0-9 ./:-]{0,40}"
}

fn caps() -> impl Strategy<Value = Capabilities> {
    (
        any::<u32>(),
        any::<u64>(),
        proptest::option::of(text()),
        vec(job_type(), 0..4),
        any::<u32>(),
        any::<u32>(),
        any::<u32>(),
        any::<u32>(),
    )
        .prop_map(
            |(
                cores,
                mem_mb,
                gpu,
                job_types,
                slots_total,
                slots_free,
                receipts_batch,
                jobs_batch,
            )| {
                Capabilities {
                    cores,
                    mem_mb,
                    gpu,
                    job_types,
                    slots_total,
                    slots_free,
                    receipts_batch,
                    jobs_batch,
                }
            },
        )
}

fn limits() -> impl Strategy<Value = Limits> {
    (
        any::<u64>(),
        any::<u64>(),
        any::<u64>(),
        proptest::option::of(any::<u64>()),
    )
        .prop_map(|(max_ms, max_mem_mb, max_output_bytes, max_fuel)| Limits {
            max_ms,
            max_mem_mb,
            max_output_bytes,
            max_fuel,
        })
}

fn params() -> impl Strategy<Value = JobParams> {
    prop_oneof![
        (hash32(), any::<u64>())
            .prop_map(|(seed, iterations)| JobParams::Hash { seed, iterations }),
        (vec(any::<u8>(), 0..64), vec(any::<u8>(), 0..64)).prop_map(|(m, i)| JobParams::Wasm {
            module: Bytes(m),
            input: Bytes(i)
        }),
        (text(), proptest::option::of(100u16..600)).prop_map(|(url, expected_status)| {
            JobParams::LinkHealth {
                url,
                expected_status,
            }
        }),
        (text(), proptest::collection::vec(text(), 0..3))
            .prop_map(|(domain, paths)| JobParams::RobotsRecheck { domain, paths }),
    ]
}

fn decline() -> impl Strategy<Value = DeclineReason> {
    prop::sample::select(vec![
        DeclineReason::Busy,
        DeclineReason::UntrustedDispatcher,
        DeclineReason::JobTypeDisabled,
        DeclineReason::LimitsTooHigh,
        DeclineReason::OptedOut,
        DeclineReason::ShuttingDown,
        DeclineReason::InvalidOffer,
    ])
}

pub(crate) fn body() -> impl Strategy<Value = Body> {
    prop_oneof![
        (any::<u64>(), address(), text(), caps(), hash32(), text()).prop_map(
            |(seq, wallet, peer, caps, policy, sw)| {
                Body::Heartbeat(Heartbeat {
                    seq,
                    wallet,
                    peer,
                    caps,
                    policy,
                    sw,
                })
            }
        ),
        (
            text(),
            address(),
            hash32(),
            any::<u32>(),
            text(),
            vec(job_type(), 0..4)
        )
            .prop_map(
                |(peer, contract, hash, version, url, job_types)| Body::Dispatcher(
                    DispatcherAnnounce {
                        peer,
                        contract,
                        policy: PolicyRef { hash, version, url },
                        job_types,
                    }
                )
            ),
        (address(), any::<u64>()).prop_map(|(wallet, seq)| Body::OptOut(OptOut { wallet, seq })),
        (hash32(), params(), limits(), any::<u64>(), any::<u32>()).prop_map(
            |(job, params, limits, lease_ms, attempt)| {
                Body::JobOffer(JobOffer {
                    job: JobId(job),
                    spec: JobSpec { params, limits },
                    lease_ms,
                    attempt,
                })
            }
        ),
        (hash32(), any::<u32>(), proptest::option::of(decline())).prop_map(
            |(job, attempt, reason)| {
                Body::JobReply(match reason {
                    None => JobReply::accepted(JobId(job), attempt),
                    Some(r) => JobReply::declined(JobId(job), attempt, r),
                })
            }
        ),
        (
            hash32(),
            any::<u32>(),
            any::<bool>(),
            proptest::option::of(vec(any::<u8>(), 0..64)),
            hash32(),
            any::<[u64; 3]>(),
            proptest::option::of(text())
        )
            .prop_map(
                |(job, attempt, ok, output, result_hash, m, error)| Body::JobResult(JobResult {
                    job: JobId(job),
                    attempt,
                    status: if ok {
                        ResultStatus::Ok
                    } else {
                        ResultStatus::Failed
                    },
                    output: output.map(Bytes),
                    result_hash,
                    metering: Metering {
                        fuel: m[0],
                        ms: m[1],
                        bytes: m[2]
                    },
                    error,
                })
            ),
        (
            hash32(),
            hash32(),
            hash32(),
            any::<u64>(),
            any::<u64>(),
            address(),
            hash32(),
            vec(hash32(), 0..10)
        )
            .prop_map(
                |(job, batch, tx, block, units, provider, result_hash, proof)| Body::Receipt(
                    Receipt {
                        job: JobId(job),
                        batch: BatchId(batch),
                        tx,
                        block,
                        units,
                        provider,
                        result_hash,
                        proof,
                    }
                )
            ),
        vec((hash32(), any::<u64>(), vec(hash32(), 0..4)), 0..5).prop_map(|items| {
            Body::Receipts(Receipts {
                receipts: items
                    .into_iter()
                    .map(|(h, units, proof)| Receipt {
                        job: JobId(h),
                        batch: BatchId(h),
                        tx: h,
                        block: units / 2,
                        units,
                        provider: pocmesh_protocol::Address([7; 20]),
                        result_hash: h,
                        proof,
                    })
                    .collect(),
            })
        }),
        vec((hash32(), params(), limits(), any::<u32>()), 0..4).prop_map(|items| {
            Body::JobOffers(JobOffers {
                offers: items
                    .into_iter()
                    .map(|(job, params, limits, attempt)| JobOffer {
                        job: JobId(job),
                        spec: JobSpec { params, limits },
                        lease_ms: 30_000,
                        attempt,
                    })
                    .collect(),
            })
        }),
        vec(
            (
                hash32(),
                any::<u32>(),
                vec(any::<u8>(), 0..32),
                proptest::option::of(text())
            ),
            0..4
        )
        .prop_map(|items| {
            Body::JobResults(JobResults {
                results: items
                    .into_iter()
                    .map(|(job, attempt, output, error)| JobResult {
                        job: JobId(job),
                        attempt,
                        status: if error.is_some() {
                            ResultStatus::Failed
                        } else {
                            ResultStatus::Ok
                        },
                        result_hash: Hash32(keccak256(&output)),
                        output: Some(Bytes(output)),
                        metering: Metering::default(),
                        error,
                    })
                    .collect(),
            })
        }),
        vec((hash32(), any::<u32>(), any::<bool>()), 0..5).prop_map(|items| {
            Body::Replies(Replies {
                replies: items
                    .into_iter()
                    .map(|(h, attempt, ok)| {
                        if ok {
                            JobReply::accepted(JobId(h), attempt)
                        } else {
                            JobReply::declined(JobId(h), attempt, DeclineReason::Busy)
                        }
                    })
                    .collect(),
            })
        }),
    ]
}
