//! config.toml as a user (or a corrupt disk) writes it: parsed and validated, or a clear
//! error naming the field; a config that parses must round-trip.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tpslab_api::config::Config;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(cfg) = Config::parse(text, "fuzz.toml") {
        let again = Config::parse(&cfg.to_toml(), "fuzz.toml").expect("round trip");
        assert_eq!(again, cfg);
    }
});
