#![no_main]
//! See `bizra_node::fuzzing::fuzz_gossip_evidence`.

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = bizra_node::fuzzing::fuzz_gossip_evidence(data);
});
