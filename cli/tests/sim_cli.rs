//! The `p2p-sim` binary as users run it: exit codes, the replay line and
//! replaying it, identical stdout for identical arguments, seed sweeps,
//! `--check-determinism`, `--plot`, `--list`, parallel and sharded
//! sweeps, `--merge`, `--compare`, a 50-peer mesh and the `lan` scenario.
//!
//! The `lan` scenario's LAN is simulated (`p2p_sim::lan::SimLan`, in
//! memory, inside turmoil): it sends no multicast and opens no socket. Real
//! mDNS is only used by `cli/tests/lan.rs`, inside its own namespace.

use std::io::Write as _;
use std::path::Path;
use std::process::{Command, Output, Stdio};

fn p2p_sim(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_p2p-sim"))
        .args(args)
        .output()
        .expect("p2p-sim runs")
}

/// `p2p-sim` with `input` on its stdin.
fn p2p_sim_stdin(args: &[&str], input: &str) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_p2p-sim"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("p2p-sim runs");
    let mut stdin = child.stdin.take().expect("piped stdin");
    stdin.write_all(input.as_bytes()).expect("stdin written");
    drop(stdin);
    child.wait_with_output().expect("p2p-sim ends")
}

fn stdout(o: &Output) -> String {
    String::from_utf8(o.stdout.clone()).expect("utf-8 stdout")
}

fn show(o: &Output) -> String {
    format!(
        "status {:?}\n--- stdout\n{}\n--- stderr\n{}",
        o.status.code(),
        stdout(o),
        String::from_utf8_lossy(&o.stderr)
    )
}

#[test]
fn a_passing_run_exits_0() {
    let o = p2p_sim(&["--scenario", "mesh", "--peers", "6", "--seed", "2"]);
    assert_eq!(o.status.code(), Some(0), "{}", show(&o));
    let out = stdout(&o);
    assert!(out.contains("result    PASS"), "{out}");
    // No replay line (the word is in a counter's name: intruder_replay_refused).
    assert!(
        !out.lines().any(|l| l.trim_start().starts_with("replay")),
        "{out}"
    );
}

#[test]
fn bad_arguments_exit_2() {
    let o = p2p_sim(&["--peers", "1"]);
    assert_eq!(o.status.code(), Some(2), "{}", show(&o));
    let o = p2p_sim(&["--sabotage", "no-such-bug"]);
    assert_eq!(o.status.code(), Some(2), "{}", show(&o));
}

#[test]
fn a_planted_bug_exits_1_and_its_replay_line_reproduces_it() {
    let args = [
        "--scenario",
        "file",
        "--peers",
        "6",
        "--seed",
        "3",
        "--sabotage",
        "corrupt-commit",
    ];
    let o = p2p_sim(&args);
    assert_eq!(o.status.code(), Some(1), "{}", show(&o));
    let out = stdout(&o);
    assert!(out.contains("result    FAIL"), "{out}");
    assert!(out.contains("file_hash at "), "{out}");
    let replay = out
        .lines()
        .find_map(|l| l.trim_start().strip_prefix("replay    "))
        .unwrap_or_else(|| panic!("no replay line in\n{out}"));
    let args_again = replay
        .strip_prefix("cargo run --release --bin p2p-sim -- ")
        .unwrap_or_else(|| panic!("unexpected replay line {replay:?}"));
    let again: Vec<&str> = args_again.split_whitespace().collect();
    assert!(again
        .windows(2)
        .any(|w| w == ["--sabotage", "corrupt-commit"]));
    let o2 = p2p_sim(&again);
    assert_eq!(o2.status.code(), Some(1), "{}", show(&o2));
    assert_eq!(stdout(&o2), out, "the replay printed something else");
    // The replay command is also on stderr, for scripts that keep stdout.
    assert!(String::from_utf8_lossy(&o.stderr).contains(&format!("p2p-sim: replay: {replay}")));
}

/// Each `--list` line of the sabotages section: name, check, scenario, and
/// the `--peers N` its description asks for, if any.
fn sabotages() -> Vec<(String, String, String, Option<String>)> {
    let o = p2p_sim(&["--list"]);
    assert_eq!(o.status.code(), Some(0), "{}", show(&o));
    let out = stdout(&o);
    let section: Vec<&str> = out
        .lines()
        .skip_while(|l| *l != "sabotages:")
        .skip(1)
        .take_while(|l| l.starts_with("  "))
        .collect();
    let checks: Vec<&str> = out
        .lines()
        .skip_while(|l| *l != "checks:")
        .skip(1)
        .take_while(|l| l.starts_with("  "))
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    assert_eq!(checks.len(), 25, "{out}");
    let list: Vec<(String, String, String, Option<String>)> = section
        .iter()
        .map(|l| {
            let w: Vec<&str> = l.split_whitespace().collect();
            assert!(w.len() > 3, "no description in {l:?}");
            // A bug that needs a bigger mesh says so: "--peers N".
            let peers = w
                .windows(2)
                .find(|p| p[0] == "--peers")
                .map(|p| p[1].to_owned());
            (w[0].to_owned(), w[1].to_owned(), w[2].to_owned(), peers)
        })
        .collect();
    for c in &checks {
        assert!(
            list.iter().any(|(_, check, _, _)| check == c),
            "no planted bug listed for {c}\n{out}"
        );
    }
    list
}

#[test]
fn every_listed_sabotage_fails_its_check_on_seeds_1_to_3() {
    for (name, check, scenario, needs) in sabotages() {
        let small = match scenario.as_str() {
            "file" | "swarm" => "6",
            _ => "5",
        };
        let peers = needs.as_deref().unwrap_or(small);
        let mut args = vec![
            "--scenario",
            &scenario,
            "--sabotage",
            &name,
            "--peers",
            peers,
            "--seeds",
            "1..=3",
            "--json",
        ];
        if scenario == "intruders" {
            args.extend(["--network-key", "k"]);
        }
        let o = p2p_sim(&args);
        assert_eq!(o.status.code(), Some(1), "{name}: {}", show(&o));
        let out = stdout(&o);
        let lines: Vec<serde_json::Value> = out
            .lines()
            .map(|l| serde_json::from_str(l).expect("a JSON line"))
            .collect();
        assert_eq!(lines.len(), 4, "three seeds and a total: {out}");
        for v in &lines[..3] {
            let violated: Vec<&str> = v["violations"]
                .as_array()
                .expect("violations")
                .iter()
                .filter_map(|x| x["check"].as_str())
                .collect();
            assert!(
                violated.contains(&check.as_str()),
                "{name} on seed {}: {check} not among {violated:?}",
                v["seed"]
            );
        }
        assert_eq!(lines[3]["total"]["failed"], 3, "{out}");
    }
}

#[test]
fn the_same_arguments_print_the_same_stdout() {
    let args = ["--scenario", "churn", "--peers", "6", "--seed", "4"];
    let a = p2p_sim(&args);
    let b = p2p_sim(&args);
    assert_eq!(a.status.code(), Some(0), "{}", show(&a));
    assert_eq!(stdout(&a), stdout(&b));
    let json = [
        "--scenario",
        "chat",
        "--peers",
        "5",
        "--seed",
        "4",
        "--json",
    ];
    assert_eq!(stdout(&p2p_sim(&json)), stdout(&p2p_sim(&json)));
}

#[test]
fn a_seed_sweep_prints_a_line_per_seed_and_a_total() {
    let o = p2p_sim(&["--scenario", "mesh", "--peers", "5", "--seeds", "1..4"]);
    assert_eq!(o.status.code(), Some(0), "{}", show(&o));
    let out = stdout(&o);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 4, "{out}");
    for (i, l) in lines[..3].iter().enumerate() {
        assert!(l.starts_with(&format!("seed {} ", i + 1)), "{l}");
        assert!(l.contains(" ok "), "{l}");
    }
    assert!(
        lines[3].starts_with("total: 3 seeds, 3 passed, 0 failed, "),
        "{}",
        lines[3]
    );
    // A..=B includes B: the same three seeds.
    let inclusive = p2p_sim(&["--scenario", "mesh", "--peers", "5", "--seeds", "1..=3"]);
    assert_eq!(stdout(&inclusive), out);
    // A failing seed in a sweep fails the sweep and names its replay.
    let o = p2p_sim(&[
        "--scenario",
        "mesh",
        "--peers",
        "5",
        "--seeds",
        "1..3",
        "--sabotage",
        "short-snapshot",
    ]);
    assert_eq!(o.status.code(), Some(1), "{}", show(&o));
    let out = stdout(&o);
    assert!(out.contains("FAIL"), "{out}");
    assert!(out.contains("replay: cargo run --release --bin p2p-sim -- "));
    assert!(out.contains("total: 2 seeds, 0 passed, 2 failed"), "{out}");
}

#[test]
fn check_determinism_runs_each_seed_twice() {
    let o = p2p_sim(&[
        "--scenario",
        "file",
        "--peers",
        "5",
        "--seed",
        "2",
        "--check-determinism",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", show(&o));
    assert!(stdout(&o).contains("determinism: seed 2 ran twice, same trace"));
    let o = p2p_sim(&[
        "--scenario",
        "churn",
        "--peers",
        "5",
        "--seeds",
        "1..3",
        "--check-determinism",
        "--json",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", show(&o));
    let out = stdout(&o);
    let runs: Vec<serde_json::Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    for v in &runs[..2] {
        assert_eq!(v["deterministic"], true, "{v}");
        assert_eq!(v["rerun_trace_hash"], v["trace_hash"]);
    }
}

#[test]
fn plot_writes_well_formed_svg() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("partition.svg");
    let o = p2p_sim(&[
        "--scenario",
        "partition",
        "--peers",
        "6",
        "--seed",
        "3",
        "--plot",
        path.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", show(&o));
    let svg = std::fs::read_to_string(&path).expect("the plot was written");
    assert_eq!(xml_root(&svg), Ok("svg".to_owned()), "{svg}");
    assert!(svg.contains("xmlns=\"http://www.w3.org/2000/svg\""));
    // The spread band, its median, and the traffic panel's two lines: no
    // longer one line per peer.
    assert_eq!(svg.matches("<path").count(), 4, "{svg}");
    for class in ["spread", "median", "messages", "bytes"] {
        assert!(svg.contains(&format!("<path class=\"{class}\"")), "{class}");
    }
    // The partition's fault windows, shaded in both panels.
    assert!(svg.matches("class=\"fault\"").count() >= 2, "{svg}");
    assert!(!Path::new(&dir.path().join("other.svg")).exists());
}

#[test]
fn the_quick_start_fifty_peer_mesh_passes() {
    let o = p2p_sim(&["--peers", "50", "--seed", "7"]);
    assert_eq!(o.status.code(), Some(0), "{}", show(&o));
    let out = stdout(&o);
    assert!(
        out.starts_with("p2p-sim: scenario mesh, 50 peers, seed 7"),
        "{out}"
    );
    assert!(out.contains("result    PASS: full mesh at "), "{out}");
}

/// A small well-formedness check: every tag closes in order, attributes
/// are quoted, entities are known, one root element. Returns the root's
/// name.
fn xml_root(doc: &str) -> Result<String, String> {
    let mut rest = doc.trim_start();
    if let Some(r) = rest.strip_prefix("<?xml") {
        rest = r.split_once("?>").ok_or("unclosed declaration")?.1;
    }
    let mut stack: Vec<String> = Vec::new();
    let mut root: Option<String> = None;
    while !rest.is_empty() {
        if let Some(r) = rest.strip_prefix("<!--") {
            rest = r.split_once("-->").ok_or("unclosed comment")?.1;
            continue;
        }
        if let Some(r) = rest.strip_prefix("</") {
            let (name, r) = r.split_once('>').ok_or("unclosed end tag")?;
            let open = stack.pop().ok_or("end tag without start")?;
            if open != name.trim() {
                return Err(format!("</{name}> closes <{open}>"));
            }
            rest = r;
            continue;
        }
        if let Some(r) = rest.strip_prefix('<') {
            let end = tag_end(r).ok_or("unclosed tag")?;
            let (tag, r) = (&r[..end], &r[end + 1..]);
            let empty = tag.ends_with('/');
            let tag = tag.trim_end_matches('/');
            let name: String = tag.chars().take_while(|c| !c.is_whitespace()).collect();
            if name.is_empty()
                || !name
                    .chars()
                    .all(|c| c.is_alphanumeric() || "-_:.".contains(c))
            {
                return Err(format!("bad tag name {name:?}"));
            }
            attributes(&tag[name.len()..])?;
            if stack.is_empty() {
                if root.is_some() {
                    return Err("more than one root element".into());
                }
                root = Some(name.clone());
            }
            if !empty {
                stack.push(name);
            }
            rest = r;
            continue;
        }
        let (text, r) = rest.split_at(rest.find('<').unwrap_or(rest.len()));
        if stack.is_empty() && !text.trim().is_empty() {
            return Err("text outside the root".into());
        }
        entities(text)?;
        rest = r;
    }
    if let Some(open) = stack.pop() {
        return Err(format!("<{open}> never closed"));
    }
    root.ok_or_else(|| "no root element".into())
}

/// Where the tag starting after `<` ends (its `>`), skipping quoted values.
fn tag_end(s: &str) -> Option<usize> {
    let mut quote = None;
    for (i, c) in s.char_indices() {
        match (quote, c) {
            (None, '"' | '\'') => quote = Some(c),
            (Some(q), c) if c == q => quote = None,
            (None, '>') => return Some(i),
            (None, '<') => return None,
            _ => {}
        }
    }
    None
}

fn attributes(mut s: &str) -> Result<(), String> {
    loop {
        s = s.trim_start();
        if s.is_empty() {
            return Ok(());
        }
        let (name, r) = s
            .split_once('=')
            .ok_or(format!("attribute without value: {s:?}"))?;
        if name.trim().is_empty() || name.trim().contains(char::is_whitespace) {
            return Err(format!("bad attribute name {name:?}"));
        }
        let r = r.trim_start();
        let q = r.chars().next().filter(|c| *c == '"' || *c == '\'');
        let q = q.ok_or(format!("unquoted value of {name}"))?;
        let (value, r) = r[1..].split_once(q).ok_or("unclosed value")?;
        if value.contains('<') {
            return Err(format!("'<' in the value of {name}"));
        }
        entities(value)?;
        s = r;
    }
}

fn entities(s: &str) -> Result<(), String> {
    let mut rest = s;
    while let Some(i) = rest.find('&') {
        let r = &rest[i + 1..];
        let (ent, r) = r.split_once(';').ok_or("unterminated entity")?;
        let known = matches!(ent, "amp" | "lt" | "gt" | "quot" | "apos")
            || ent.strip_prefix('#').is_some_and(|n| {
                n.strip_prefix('x').map_or_else(
                    || n.parse::<u32>().is_ok(),
                    |h| u32::from_str_radix(h, 16).is_ok(),
                )
            });
        if !known {
            return Err(format!("unknown entity &{ent};"));
        }
        rest = r;
    }
    Ok(())
}

#[test]
fn the_xml_check_rejects_broken_documents() {
    assert_eq!(xml_root("<svg a=\"1\"><g/></svg>"), Ok("svg".into()));
    assert!(xml_root("<svg><g></svg>").is_err());
    assert!(xml_root("<svg a=1></svg>").is_err());
    assert!(xml_root("<svg></svg><svg></svg>").is_err());
    assert!(xml_root("<svg>a & b</svg>").is_err());
}

/// The seed of a `--json` report line.
fn seed_of(line: &str) -> u64 {
    let v: serde_json::Value = serde_json::from_str(line).unwrap();
    v["seed"]
        .as_u64()
        .unwrap_or_else(|| panic!("no seed in {line}"))
}

#[test]
fn a_parallel_sweep_prints_what_a_serial_sweep_prints() {
    // Churn crashes and restarts hosts, the part of a run where tokio's
    // process-wide task ids are closest to leaking into a trace.
    let args = [
        "--scenario",
        "churn",
        "--peers",
        "6",
        "--seeds",
        "1..5",
        "--json",
    ];
    let serial = p2p_sim(&args);
    assert_eq!(serial.status.code(), Some(0), "{}", show(&serial));
    let parallel = p2p_sim(&[&args[..], &["-j", "2"]].concat());
    assert_eq!(parallel.status.code(), Some(0), "{}", show(&parallel));
    assert_eq!(
        stdout(&parallel),
        stdout(&serial),
        "-j 2 changed the output"
    );
    let seeds: Vec<u64> = stdout(&serial)
        .lines()
        .filter(|l| l.contains("\"seed\""))
        .map(seed_of)
        .collect();
    assert_eq!(seeds, vec![1, 2, 3, 4], "in seed order");
    // Text output too, with more threads than seeds.
    let text = ["--scenario", "mesh", "--peers", "5", "--seeds", "1..4"];
    let many = p2p_sim(&[&text[..], &["-j", "8"]].concat());
    assert_eq!(stdout(&many), stdout(&p2p_sim(&text)));
}

#[test]
fn shards_cover_each_seed_once_and_merge_to_the_serial_total() {
    let base = [
        "--scenario",
        "mesh",
        "--peers",
        "5",
        "--seeds",
        "1..9",
        "--json",
    ];
    let serial = p2p_sim(&base);
    assert_eq!(serial.status.code(), Some(0), "{}", show(&serial));
    let serial_out = stdout(&serial);
    let serial_lines: Vec<&str> = serial_out.lines().collect();
    let total = *serial_lines.last().unwrap();
    assert!(total.starts_with("{\"total\""), "{total}");
    let mut all = String::new();
    let mut covered = Vec::new();
    for k in 1..=3u64 {
        let shard = format!("{k}/3");
        let o = p2p_sim(&[&base[..], &["--shard", &shard, "-j", "2"]].concat());
        assert_eq!(o.status.code(), Some(0), "{}", show(&o));
        let out = stdout(&o);
        for line in out.lines().filter(|l| l.contains("\"seed\"")) {
            let seed = seed_of(line);
            assert_eq!((seed - 1) % 3, k - 1, "seed {seed} in shard {shard}");
            // The same run, byte for byte, as in the serial sweep.
            assert!(serial_lines.contains(&line), "shard {shard}: {line}");
            covered.push(seed);
        }
        all += &out;
    }
    covered.sort_unstable();
    assert_eq!(
        covered,
        (1..9).collect::<Vec<_>>(),
        "each seed exactly once"
    );
    let merged = p2p_sim_stdin(&["--merge", "-", "--json"], &all);
    assert_eq!(merged.status.code(), Some(0), "{}", show(&merged));
    assert_eq!(stdout(&merged), format!("{total}\n"));
    let text = p2p_sim_stdin(&["--merge", "-"], &all);
    let v: serde_json::Value = serde_json::from_str(total).unwrap();
    assert_eq!(
        stdout(&text),
        format!(
            "total: 8 seeds, 8 passed, 0 failed, {} ms simulated\n",
            v["total"]["sim_duration_ms"]
        )
    );
    // A shard merged twice is refused.
    let twice = p2p_sim_stdin(&["--merge", "-"], &format!("{all}{all}"));
    assert_eq!(twice.status.code(), Some(2), "{}", show(&twice));
    // Failing seeds are listed with their replay commands, and fail.
    let bad = p2p_sim(&[
        "--scenario",
        "mesh",
        "--peers",
        "5",
        "--seeds",
        "1..3",
        "--sabotage",
        "short-snapshot",
        "--json",
    ]);
    assert_eq!(bad.status.code(), Some(1), "{}", show(&bad));
    let merged = p2p_sim_stdin(&["--merge", "-"], &stdout(&bad));
    assert_eq!(merged.status.code(), Some(1), "{}", show(&merged));
    let out = stdout(&merged);
    assert!(out.contains("seed 2      FAIL  replay: cargo run --release --bin p2p-sim -- --scenario mesh --peers 5 --seed 2 --sabotage short-snapshot"), "{out}");
    let last = out.lines().last().unwrap_or_default();
    assert!(
        last.starts_with("total: 2 seeds, 0 passed, 2 failed, "),
        "{out}"
    );
}

#[test]
fn compare_passes_against_its_own_baseline_and_fails_on_a_slowdown() {
    let dir = tempfile::tempdir().unwrap();
    let baseline = dir.path().join("baseline.jsonl");
    let run = ["--scenario", "chat", "--peers", "5", "--seeds", "1..3"];
    let o = p2p_sim(&[&run[..], &["--json"]].concat());
    assert_eq!(o.status.code(), Some(0), "{}", show(&o));
    std::fs::write(&baseline, stdout(&o)).unwrap();
    let b = baseline.to_str().unwrap();

    let same = p2p_sim(&[&run[..], &["--compare", b]].concat());
    assert_eq!(same.status.code(), Some(0), "{}", show(&same));
    let out = stdout(&same);
    let rows: Vec<&str> = out.lines().filter(|l| l.contains(" -> ")).collect();
    assert_eq!(rows.len(), 2 * 8, "every metric of both seeds:\n{out}");
    assert!(rows.iter().all(|r| r.ends_with("+0.0%")), "{out}");
    assert!(
        out.contains("compare seed 1      chat_latency_p99_us"),
        "{out}"
    );
    assert!(out.contains("compare: 0 metric(s) worse"), "{out}");

    // Every host holds each chat line 100 ms: no check fails, latency does.
    let slow = p2p_sim(&[&run[..], &["--compare", b, "--sabotage", "slow-chat"]].concat());
    assert_eq!(slow.status.code(), Some(3), "{}", show(&slow));
    let out = stdout(&slow);
    assert!(out.contains("total: 2 seeds, 2 passed, 0 failed"), "{out}");
    let p50 = out
        .lines()
        .find(|l| l.starts_with("compare seed 1") && l.contains("chat_latency_p50_us"))
        .unwrap_or_else(|| panic!("no p50 row in\n{out}"));
    assert!(p50.contains("REGRESSION (limit +10%)"), "{p50}");
    assert!(!out
        .lines()
        .any(|l| l.contains("converge_ms") && l.contains("REGRESSION")));
    // A looser latency threshold lets it pass; a general one does not.
    let loose = [
        "--sabotage",
        "slow-chat",
        "--max-latency-regression-pct",
        "100000",
    ];
    let o = p2p_sim(&[&run[..], &["--compare", b], &loose[..]].concat());
    assert_eq!(o.status.code(), Some(0), "{}", show(&o));
    let o = p2p_sim(
        &[
            &run[..],
            &[
                "--compare",
                b,
                "--sabotage",
                "slow-chat",
                "--max-regression-pct",
                "100000",
            ],
        ]
        .concat(),
    );
    assert_eq!(o.status.code(), Some(0), "{}", show(&o));

    // One object as the baseline; --json keeps stdout JSON and moves the
    // comparison to stderr.
    let one = dir.path().join("one.json");
    let o = p2p_sim(&[
        "--scenario",
        "chat",
        "--peers",
        "5",
        "--seed",
        "2",
        "--json",
    ]);
    std::fs::write(&one, stdout(&o)).unwrap();
    let o = p2p_sim(&[
        "--scenario",
        "chat",
        "--peers",
        "5",
        "--seed",
        "2",
        "--json",
        "--sabotage",
        "slow-chat",
        "--compare",
        one.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(3), "{}", show(&o));
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).expect("stdout is JSON");
    assert!(
        v["metrics"]["chat_latency_p50_us"].as_u64().unwrap() >= 100_000,
        "{v}"
    );
    assert!(String::from_utf8_lossy(&o.stderr).contains("REGRESSION"));

    // A metric absent on both sides is skipped with a note; a seed absent
    // from the baseline too.
    let o = p2p_sim(&[
        "--scenario",
        "chat",
        "--peers",
        "5",
        "--seeds",
        "2..4",
        "--compare",
        b,
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", show(&o));
    assert!(stdout(&o).contains("compare seed 3      not in the baseline, skipped"));
    let mesh = dir.path().join("mesh.json");
    let o = p2p_sim(&["--peers", "5", "--seed", "1", "--json"]);
    std::fs::write(&mesh, stdout(&o)).unwrap();
    let o = p2p_sim(&[
        "--peers",
        "5",
        "--seed",
        "1",
        "--compare",
        mesh.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", show(&o));
    assert!(
        stdout(&o).contains("chat_latency_p50_us    skipped: in neither"),
        "{}",
        show(&o)
    );
    // An unreadable baseline is bad input.
    let o = p2p_sim(&["--peers", "5", "--compare", "/nonexistent/baseline.json"]);
    assert_eq!(o.status.code(), Some(2), "{}", show(&o));
}

#[test]
fn a_private_mesh_keeps_the_intruders_out() {
    let o = p2p_sim(&["--list"]);
    let out = stdout(&o);
    let scenarios: Vec<&str> = out
        .lines()
        .skip_while(|l| *l != "scenarios:")
        .skip(1)
        .take_while(|l| l.starts_with("  "))
        .map(str::trim)
        .collect();
    assert!(scenarios.contains(&"intruders"), "{out}");
    let args = [
        "--network-key",
        "k",
        "--scenario",
        "intruders",
        "--peers",
        "8",
        "--seed",
        "1",
        "--json",
    ];
    let o = p2p_sim(&args);
    assert_eq!(o.status.code(), Some(0), "{}", show(&o));
    let v: serde_json::Value = serde_json::from_str(stdout(&o).trim()).expect("JSON");
    for kind in ["no_key", "wrong_key", "replay", "stolen_id"] {
        let n = v["coverage"][format!("intruder_{kind}_refused")].as_u64();
        assert!(n.is_some_and(|n| n > 0), "{kind}: {v}");
    }
    assert!(v["replay"].as_str().unwrap().contains("--network-key k"));
    // Without a key the scenario cannot run.
    let o = p2p_sim(&["--scenario", "intruders", "--peers", "8"]);
    assert_eq!(o.status.code(), Some(2), "{}", show(&o));
}

/// No bootstrap: the mesh forms through the simulated LAN alone, the same
/// way twice, and a lossy `--lan-loss` replays with its flag.
#[test]
fn the_lan_scenario_converges_through_the_simulated_lan() {
    let o = p2p_sim(&[
        "--scenario",
        "lan",
        "--peers",
        "12",
        "--seed",
        "7",
        "--check-determinism",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", show(&o));
    let out = stdout(&o);
    assert!(out.contains("result    PASS: full mesh at "), "{out}");
    assert!(out.contains("  lan       "), "{out}");
    assert!(
        out.contains("determinism: seed 7 ran twice, same trace"),
        "{out}"
    );
    let o = p2p_sim(&[
        "--scenario",
        "lan",
        "--peers",
        "8",
        "--seed",
        "2",
        "--lan-loss",
        "0.5",
        "--json",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", show(&o));
    let v: serde_json::Value = serde_json::from_str(stdout(&o).trim()).expect("JSON");
    assert_eq!(v["lan"]["loss"], 0.5, "{v}");
    assert!(v["lan"]["lost"].as_u64().is_some_and(|n| n > 0), "{v}");
    assert!(
        v["coverage"]["lan_peer_heard"]
            .as_u64()
            .is_some_and(|n| n > 0),
        "{v}"
    );
    assert!(
        v["replay"].as_str().unwrap().ends_with("--lan-loss 0.5"),
        "{v}"
    );
    let o = p2p_sim(&["--scenario", "lan", "--peers", "4", "--lan-loss", "2"]);
    assert_eq!(o.status.code(), Some(2), "{}", show(&o));
}
