//! The parameter-file parser and the configuration checks: any text gives
//! an error or a configuration; never a panic or a hang.
#![no_main]

use dream_mpc::ros::config::{Config, Params};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match Params::from_yaml(text) {
        Ok(p) => {
            let _ = Config::from_params(p);
        }
        Err(e) => assert!(e.to_string().len() < 4096, "error message too long"),
    }
});
