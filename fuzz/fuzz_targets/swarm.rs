//! `cargo fuzz run swarm`: see `p2p_fuzz_checks::check_swarm` for what is checked.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    p2p_fuzz_checks::check_swarm(data);
});
