//! The AWS (EventBridge envelope) normalizer on arbitrary bytes: never panics.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = changehub::ingest::aws::delivery_id(data);
    let _ = changehub::ingest::aws::normalize(data);
});
