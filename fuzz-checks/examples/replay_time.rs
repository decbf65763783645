//! Times the checks of one target over every file of some directories, as
//! a fuzzer would run them (without coverage instrumentation):
//! `cargo run --release -p p2p-fuzz-checks --example replay_time -- node fuzz/corpus/node [more dirs]`.
//! Panicking inputs are counted and skipped.

use std::time::Instant;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let [_, target, dirs @ ..] = &args[..] else {
        eprintln!("usage: replay_time <target> <dir>...");
        std::process::exit(2);
    };
    let mut inputs = Vec::new();
    for dir in dirs {
        for entry in std::fs::read_dir(dir).expect("read dir") {
            let path = entry.expect("entry").path();
            if path.is_file() {
                inputs.push((path.clone(), std::fs::read(&path).expect("read input")));
            }
        }
    }
    inputs.sort();
    // `P2P_SHOW_PANICS=1` prints each panic message.
    if std::env::var_os("P2P_SHOW_PANICS").is_none() {
        std::panic::set_hook(Box::new(|_| {}));
    }
    let start = Instant::now();
    let mut slowest = (0.0, String::new());
    let mut panics = 0;
    for (path, data) in &inputs {
        let t = Instant::now();
        if std::panic::catch_unwind(|| p2p_fuzz_checks::check_target(target, data)).is_err() {
            panics += 1;
        }
        let secs = t.elapsed().as_secs_f64();
        if secs > slowest.0 {
            slowest = (secs, path.display().to_string());
        }
    }
    let secs = start.elapsed().as_secs_f64();
    println!(
        "{} inputs in {secs:.3} s: {:.0} exec/s, {panics} panicked; slowest {:.1} ms ({})",
        inputs.len(),
        inputs.len() as f64 / secs,
        slowest.0 * 1e3,
        slowest.1
    );
}
