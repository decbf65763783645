//! `cargo fuzz run file`: see `p2p_fuzz_checks::check_file` for what is checked.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    p2p_fuzz_checks::check_file(data);
});
