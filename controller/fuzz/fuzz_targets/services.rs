//! The parameter services' requests: `dream_mpc_testkit::fuzz::services`
//! (the input's layout and what is asserted are documented there).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| dream_mpc_testkit::fuzz::services(data));
