#![no_main]
//! See `bizra_fuzz::fuzz_config`.

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = bizra_fuzz::fuzz_config(data);
});
