//! Untrusted bytes through envelope decoding, payload decoding and inspection: never a panic,
//! and whatever decodes re-encodes to something that decodes the same.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pocmesh_protocol::{Envelope, InspectOptions, MAX_ENVELOPE_BYTES, inspect};

fuzz_target!(|data: &[u8]| {
    let _ = inspect(data, &InspectOptions::default());
    if let Ok(env) = Envelope::from_bytes(data, MAX_ENVELOPE_BYTES) {
        let again = Envelope::from_bytes(&env.to_bytes(), MAX_ENVELOPE_BYTES).expect("re-encoded envelope decodes");
        assert_eq!(again, env);
        if let Ok(msg) = pocmesh_protocol::envelope::decode_message(&env.payload) {
            let bytes = serde_cbor::to_vec(&msg).expect("encodes");
            let back = pocmesh_protocol::envelope::decode_message(&bytes).expect("re-encoded message decodes");
            assert_eq!(back, msg);
        }
    }
});
