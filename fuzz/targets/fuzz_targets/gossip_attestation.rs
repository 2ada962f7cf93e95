#![no_main]
//! See `bizra_fuzz::fuzz_gossip_attestation`.

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = bizra_fuzz::fuzz_gossip_attestation(data);
});
