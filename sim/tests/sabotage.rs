//! Every check can fail: each planted bug ([`Sabotage::ALL`]) runs in its
//! scenario on a small mesh, and exactly the check it targets, and no
//! other, is reported as violated, on every seed tried.

use std::collections::BTreeSet;

use p2p_sim::invariants::CHECKS;
use p2p_sim::{run, Sabotage, Scenario, SimConfig};

/// Runs `bug` in its scenario with `peers` peers on seeds 1..=3 and
/// asserts that its check, and only it, is violated.
fn fires_only_its_check(bug: Sabotage, peers: usize) {
    fires_with_detail(bug, peers, "");
}

/// As [`fires_only_its_check`], and every violation's detail contains
/// `detail` (which branch of the check fired).
fn fires_with_detail(bug: Sabotage, peers: usize, detail: &str) {
    for seed in 1..=3 {
        let mut cfg = SimConfig::new(bug.scenario(), peers, seed);
        cfg.sabotage = Some(bug);
        if bug.scenario() == Scenario::Intruders {
            cfg.network_key = Some("k".into());
        }
        let r = run(&cfg).expect("valid configuration");
        let checks: BTreeSet<&str> = r.violations.iter().map(|v| v.check).collect();
        assert_eq!(
            checks,
            BTreeSet::from([bug.check()]),
            "{} on seed {seed}:\n{}",
            bug.name(),
            r.summary()
        );
        assert!(!r.passed());
        for v in &r.violations {
            assert!(v.detail.contains(detail), "{}: {}", bug.name(), v.detail);
        }
        assert!(r.replay.ends_with(&format!("--sabotage {}", bug.name())));
    }
}

#[test]
fn every_check_has_a_planted_bug() {
    for (check, _) in CHECKS {
        assert!(
            Sabotage::ALL.iter().any(|b| b.check() == *check),
            "no planted bug fires {check}"
        );
    }
    for b in Sabotage::ALL {
        assert!(CHECKS.iter().any(|(c, _)| *c == b.check()), "{}", b.name());
        assert_eq!(b.name().parse::<Sabotage>(), Ok(b));
    }
}

#[test]
fn one_connection_per_pair_fires_on_wrong_local_addr() {
    fires_with_detail(
        Sabotage::WrongLocalAddr,
        4,
        "each keep a different connection",
    );
}

/// The check's other branch: two established connections on one host.
#[test]
fn one_connection_per_pair_fires_on_lost_retire() {
    fires_with_detail(Sabotage::LostRetire, 12, "established connections to peer");
}

#[test]
fn peer_table_handshaked_fires_on_swapped_snapshot() {
    fires_only_its_check(Sabotage::SwappedSnapshot, 4);
}

#[test]
fn frame_integrity_fires_on_corrupt_wire() {
    fires_only_its_check(Sabotage::CorruptWire, 4);
}

#[test]
fn file_hash_fires_on_corrupt_commit() {
    fires_only_its_check(Sabotage::CorruptCommit, 4);
}

#[test]
fn inside_downloads_fires_on_escape_downloads() {
    fires_only_its_check(Sabotage::EscapeDownloads, 4);
}

#[test]
fn chat_exactly_once_fires_on_chat_twice() {
    fires_only_its_check(Sabotage::ChatTwice, 4);
}

#[test]
fn stale_peer_removed_fires_on_hidden_timeout() {
    fires_only_its_check(Sabotage::HiddenTimeout, 5);
}

#[test]
fn no_false_timeout_fires_on_mute_after_mesh() {
    fires_only_its_check(Sabotage::MuteAfterMesh, 4);
}

#[test]
fn no_panic_fires_on_panic_write() {
    fires_only_its_check(Sabotage::PanicWrite, 4);
}

#[test]
fn no_panic_fires_on_mute_snapshot() {
    fires_only_its_check(Sabotage::MuteSnapshot, 4);
}

#[test]
fn mesh_formed_fires_on_deaf_listener() {
    fires_only_its_check(Sabotage::DeafListener, 4);
}

#[test]
fn mesh_reformed_fires_on_sticky_blacklist() {
    fires_only_its_check(Sabotage::StickyBlacklist, 4);
}

#[test]
fn transfers_complete_fires_on_failing_commit() {
    fires_only_its_check(Sabotage::FailingCommit, 6);
}

#[test]
fn chat_delivered_fires_on_lost_chat() {
    fires_only_its_check(Sabotage::LostChat, 4);
}

#[test]
fn peer_table_matches_fires_on_short_snapshot() {
    fires_only_its_check(Sabotage::ShortSnapshot, 4);
}

#[test]
fn intruder_kept_out_fires_on_leaked_key() {
    fires_with_detail(Sabotage::LeakedKey, 4, "wrong-key intruder");
}

#[test]
fn intruder_nothing_delivered_fires_on_relayed_intruder_chat() {
    fires_only_its_check(Sabotage::RelayedIntruderChat, 4);
}

#[test]
fn intruder_refused_fires_on_deaf_to_intruders() {
    fires_with_detail(Sabotage::DeafToIntruders, 4, "never refused");
}

#[test]
fn converged_without_bootstrap_fires_on_deaf_lan() {
    fires_with_detail(Sabotage::DeafLan, 4, "with LAN discovery alone");
}

#[test]
fn converged_within_bound_fires_on_slow_lan() {
    fires_with_detail(Sabotage::SlowLan, 4, "past the bound");
}

#[test]
fn other_network_never_dialed_fires_on_blind_lan() {
    fires_with_detail(Sabotage::BlindLan, 4, "of another network");
}

#[test]
fn swarm_commit_verified_fires_on_swarm_flip_write() {
    fires_with_detail(Sabotage::SwarmFlipWrite, 6, "does not verify");
}

#[test]
fn swarm_liar_detected_fires_on_swarm_hidden_reject() {
    fires_with_detail(Sabotage::SwarmHiddenReject, 6, "did not reject it");
}

#[test]
fn swarm_downloads_complete_fires_on_swarm_failing_commit() {
    fires_with_detail(Sabotage::SwarmFailingCommit, 6, "swarm-failing-commit");
}

#[test]
fn swarm_resume_bounded_fires_on_swarm_lost_record() {
    fires_with_detail(Sabotage::SwarmLostRecord, 6, "checkpointed before");
}

#[test]
fn swarm_multi_peer_fires_on_swarm_single_source() {
    fires_only_its_check(Sabotage::SwarmSingleSource, 6);
}
