//! `cargo fuzz run session`: see `p2p_fuzz_checks::check_session` for what is checked.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    p2p_fuzz_checks::check_session(data);
});
