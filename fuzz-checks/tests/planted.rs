//! Each fuzz target's check can fire: `fuzz/planted.sh` builds the core
//! with one planted bug at a time (`--cfg p2p_planted="<name>"`) and
//! asserts that the target's corpus replay fails with the expected panic
//! message, and that the unplanted build passes. Minutes of builds (one
//! target directory per planted bug), so not part of the default suite:
//! `cargo test -p p2p-fuzz-checks --test planted -- --ignored`.

use std::path::Path;
use std::process::Command;

#[test]
#[ignore = "builds the core six times with planted bugs (minutes); run with --ignored"]
fn every_planted_bug_is_caught_by_its_target() {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/planted.sh");
    let out = Command::new("sh")
        .arg(&script)
        // The nested cargo must not inherit this test build's flags.
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .output()
        .unwrap_or_else(|e| panic!("{}: {e}", script.display()));
    let stdout = String::from_utf8_lossy(&out.stdout);
    println!("{stdout}");
    assert!(
        out.status.success(),
        "fuzz/planted.sh failed:\n{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
