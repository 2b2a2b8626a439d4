//! Every webhook normalizer, on arbitrary bodies: never panics.
#![no_main]

use libfuzzer_sys::fuzz_target;

mod common;

fuzz_target!(|data: &[u8]| {
    if let Some((origin, headers, body)) = common::delivery(data) {
        let _ = changehub::ingest::delivery_id(origin, &headers, body);
        let _ = changehub::ingest::normalize(origin, &headers, body);
    }
});
