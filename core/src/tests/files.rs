//! The sending side of files in the core: whole-file sends driven by
//! storage completions, through the harness.

use std::time::Duration;

use bytes::Bytes;
use sha2::{Digest, Sha256};

use super::util::Mesh;
use super::{content, converge, star, SEC};
use crate::{Event, Input, Output, StorageOp, Target, TransferId};

/// `n` nodes bootstrapped to node 0, with a small send window so that a
/// few MB take several round trips.
fn paced_star(n: usize) -> Mesh {
    let mut m = Mesh::new(n, |_, c| c.files.send_window = 256 * 1024);
    for i in 1..n {
        m.bootstrap(i, 0);
    }
    m
}

/// Node 0 of a paced `n`-node mesh starts sending `data` to everyone;
/// 30 ms later node `leaver` shuts down. Runs 20 s more.
fn send_then_leave(n: usize, data: &[u8], leaver: usize) -> (Mesh, TransferId) {
    let mut m = paced_star(n);
    converge(&mut m, 5 * SEC);
    m.latency = Duration::from_millis(20);
    offer(&mut m, 0, "f", data);
    let t = m.nodes[0]
        .node
        .send_file(Target::All, "f", "f.bin")
        .unwrap();
    m.run_for(Duration::from_millis(30));
    let now = m.now;
    m.nodes[leaver].node.shutdown(now);
    m.run_for(20 * SEC);
    (m, t)
}

/// Two converged nodes; node 0 starts sending `data` to node 1 with its
/// storage holding every read until the test answers it.
fn held_send(data: &[u8]) -> (Mesh, TransferId) {
    let mut m = star(2);
    converge(&mut m, 5 * SEC);
    offer(&mut m, 0, "f", data);
    m.nodes[0].storage.hold_reads = true;
    let t = m.nodes[0]
        .node
        .send_file(Target::All, "f", "f.bin")
        .unwrap();
    (m, t)
}

fn offer(m: &mut Mesh, i: usize, path: &str, data: &[u8]) {
    m.nodes[i]
        .storage
        .sources
        .insert(path.to_owned(), Bytes::copy_from_slice(data));
}

/// The send events of node `i` for `t`, as short names in order.
fn send_events(m: &Mesh, i: usize, t: TransferId) -> Vec<&'static str> {
    m.events(i)
        .filter_map(|e| match e {
            Event::FileSendStarted { transfer, .. } if *transfer == t => Some("started"),
            Event::FileSendProgress { transfer, .. } if *transfer == t => Some("progress"),
            Event::FileSent { transfer, .. } if *transfer == t => Some("sent"),
            Event::FileSendFailed { transfer, .. } if *transfer == t => Some("failed"),
            _ => None,
        })
        .collect()
}

fn failure_of(m: &Mesh, i: usize, t: TransferId) -> Option<String> {
    m.events(i).find_map(|e| match e {
        Event::FileSendFailed {
            transfer, error, ..
        } if *transfer == t => Some(error.to_string()),
        _ => None,
    })
}

#[test]
fn send_file_reads_hashes_and_reaches_every_peer() {
    let mut m = star(3);
    converge(&mut m, 5 * SEC);
    let data = content(1_000_003, 9);
    offer(&mut m, 0, "/data/big.bin", &data);
    let t = m.nodes[0]
        .node
        .send_file(Target::All, "/data/big.bin", "big.bin")
        .unwrap();
    m.run_for(5 * SEC);
    for i in 1..3 {
        assert_eq!(
            m.nodes[i].storage.files.get("big.bin"),
            Some(&data),
            "node {i}"
        );
    }
    let events = send_events(&m, 0, t);
    assert_eq!(events.first(), Some(&"started"));
    assert_eq!(events.last(), Some(&"sent"));
    // 1 MB in 256 KiB chunks: progress at most once per percent, at least
    // once per chunk.
    let progress = events.iter().filter(|e| **e == "progress").count();
    assert!((4..=100).contains(&progress), "{events:?}");
    assert!(m.events(0).any(|e| matches!(
        e,
        Event::FileSent { transfer, peers: 2, size: 1_000_003, .. } if *transfer == t
    )));
    // The source was closed.
    assert!(m.nodes[0].storage.open.is_empty());
    // The checksum the receivers verified is the file's.
    let sha = crate::file::to_hex(&Sha256::digest(&data).into());
    assert!(m
        .events(1)
        .any(|e| matches!(e, Event::FileReceived { sha256, .. } if *sha256 == sha)));
}

#[test]
fn an_empty_file_and_a_missing_file() {
    let mut m = star(2);
    converge(&mut m, 5 * SEC);
    offer(&mut m, 0, "empty", b"");
    let t = m.nodes[0]
        .node
        .send_file(Target::All, "empty", "e.txt")
        .unwrap();
    let missing = m.nodes[0]
        .node
        .send_file(Target::All, "nope", "n.txt")
        .unwrap();
    m.run_for(SEC);
    assert_eq!(m.nodes[1].storage.files.get("e.txt"), Some(&Vec::new()));
    assert_eq!(send_events(&m, 0, t), ["started", "progress", "sent"]);
    assert!(failure_of(&m, 0, missing).unwrap().contains("no such file"));
    assert!(!m.nodes[1].storage.files.contains_key("n.txt"));
}

#[test]
fn bad_names_and_no_peers_are_refused_before_anything_is_read() {
    let mut m = star(2);
    assert!(m.nodes[0]
        .node
        .send_file(Target::All, "x", "a.bin")
        .is_err());
    converge(&mut m, 5 * SEC);
    for bad in ["", "..", "a/b", "x.part"] {
        assert!(
            m.nodes[0].node.send_file(Target::All, "x", bad).is_err(),
            "{bad:?}"
        );
    }
    let stranger = crate::PeerId::parse("stranger").unwrap();
    assert!(m.nodes[0]
        .node
        .send_file(Target::Peer(stranger), "x", "a.bin")
        .is_err());
    m.run_for(SEC);
    assert!(m.nodes[0].storage.open.is_empty());
}

#[test]
fn a_target_that_leaves_midway_does_not_stop_the_others() {
    let data = content(4_000_000, 1);
    let (m, t) = send_then_leave(3, &data, 2);
    assert_eq!(m.nodes[1].storage.files.get("f.bin"), Some(&data));
    assert!(m.events(0).any(|e| matches!(
        e,
        Event::FileSent { transfer, peers: 1, .. } if *transfer == t
    )));
}

#[test]
fn a_send_fails_when_every_target_leaves() {
    let (m, t) = send_then_leave(2, &content(4_000_000, 2), 1);
    let why = failure_of(&m, 0, t).expect("the send failed");
    assert!(why.contains("disconnected"), "{why}");
    assert!(m.nodes[0].storage.open.is_empty(), "source left open");
}

#[test]
fn reads_that_never_come_leave_the_send_pending_until_aborted() {
    let (mut m, t) = held_send(&content(600_000, 3));
    m.run_for(10 * SEC);
    // Opened, one read asked, nothing sent, the mesh still fine.
    assert_eq!(m.nodes[0].storage.held.len(), 1);
    assert!(send_events(&m, 0, t).is_empty());
    assert!(m.nodes[1].storage.parts.is_empty());
    assert_eq!(m.nodes[0].node.peer_count(), 1);
    assert!(m.nodes[0].node.abort_file(t));
    m.run_for(SEC);
    assert_eq!(send_events(&m, 0, t), ["failed"]);
    assert!(m.nodes[0].storage.open.is_empty());
    // A late answer to the held read is ignored.
    let late = m.nodes[0].storage.held.pop().unwrap();
    let StorageOp::Read {
        transfer,
        offset,
        len,
    } = late
    else {
        panic!("{late:?}")
    };
    let now = m.now;
    m.nodes[0].node.handle_input(
        now,
        crate::Input::Read {
            transfer,
            offset,
            data: Bytes::from(vec![0; len]),
        },
    );
    m.run_for(SEC);
    assert_eq!(send_events(&m, 0, t), ["failed"]);
}

#[test]
fn chunks_wait_for_the_send_window() {
    // One node and a raw peer that never reads: without Flushed reports,
    // what is transmitted stays at about the window.
    let mut config = crate::Config::new(9000);
    config.files.send_window = 1024 * 1024;
    let now = std::time::Instant::now();
    let mut node = crate::Node::new(config, 1, now);
    let conn = node.handle_accept(now, None);
    node.handle_input(
        now,
        crate::Input::Received {
            conn,
            data: Bytes::from_static(b"peer:peer\nLISTEN:127.0.0.1:9001\nPONG\n"),
        },
    );
    while node.poll_output().is_some() {}
    let data = Bytes::from(content(8 * 1024 * 1024, 4));
    let t = node.send_file(Target::All, "f", "f.bin").unwrap();
    let mut transmitted = 0usize;
    let mut reads = 0;
    let mut reads_before_flush = 0;
    let mut flushed = false;
    for _ in 0..10_000 {
        let Some(out) = node.poll_output() else {
            if flushed {
                break;
            }
            // Everything queued so far is written: the rest may go.
            assert!(
                transmitted < 2 * 1024 * 1024,
                "{transmitted} bytes sent past the window"
            );
            flushed = true;
            reads_before_flush = reads;
            node.handle_input(
                now,
                crate::Input::Flushed {
                    conn,
                    bytes: transmitted as u64,
                },
            );
            continue;
        };
        match out {
            Output::Transmit { data, .. } => transmitted += data.len(),
            Output::Storage(StorageOp::Open { transfer, .. }) => node.handle_input(
                now,
                crate::Input::Opened {
                    transfer,
                    size: data.len() as u64,
                },
            ),
            Output::Storage(StorageOp::Read {
                transfer,
                offset,
                len,
            }) => {
                reads += 1;
                let o = offset as usize;
                node.handle_input(
                    now,
                    crate::Input::Read {
                        transfer,
                        offset,
                        data: data.slice(o..o + len),
                    },
                );
            }
            _ => {}
        }
    }
    // 32 reads for the hash pass, then 4 or 5 chunks until the window;
    // after the flush, as many again.
    assert!(
        (36..=38).contains(&reads_before_flush),
        "{reads_before_flush} reads"
    );
    assert!(reads > reads_before_flush + 3, "{reads} reads");
    assert!(transmitted > 2 * 1024 * 1024, "{transmitted}");
    assert_eq!(node.file_targets(t).map(|t| t.len()), Some(1));
}

/// The `sent` of each progress event of node `i` for `t`, in order.
fn progress_of(m: &Mesh, i: usize, t: TransferId) -> Vec<u64> {
    m.events(i)
        .filter_map(|e| match e {
            Event::FileSendProgress { transfer, sent, .. } if *transfer == t => Some(*sent),
            _ => None,
        })
        .collect()
}

#[test]
fn progress_is_reported_once_per_new_percent_up_to_the_size() {
    // 1_000_003 bytes in 256 KiB chunks: every chunk reaches a new percent.
    let mut m = star(2);
    converge(&mut m, 5 * SEC);
    let data = content(1_000_003, 5);
    offer(&mut m, 0, "f", &data);
    let t = m.nodes[0]
        .node
        .send_file(Target::All, "f", "big.bin")
        .unwrap();
    m.run_for(5 * SEC);
    assert_eq!(
        progress_of(&m, 0, t),
        [262_144, 524_288, 786_432, 1_000_003]
    );
    assert!(m.events(0).any(|e| matches!(
        e,
        Event::FileSent { transfer, name, size: 1_000_003, peers: 1 }
            if *transfer == t && name == "big.bin"
    )));

    // 250 chunks of 1000 bytes, 0.4 % each: one event per percent, not
    // one per chunk.
    let mut m = Mesh::new(2, |_, c| c.files.chunk_size = 1000);
    m.bootstrap(1, 0);
    converge(&mut m, 5 * SEC);
    let data = content(250_000, 6);
    offer(&mut m, 0, "f", &data);
    let t = m.nodes[0]
        .node
        .send_file(Target::All, "f", "small.bin")
        .unwrap();
    m.run_for(10 * SEC);
    assert_eq!(m.nodes[1].storage.files.get("small.bin"), Some(&data));
    let sent = progress_of(&m, 0, t);
    assert_eq!(sent.len(), 100, "{sent:?}");
    let percents: Vec<u64> = sent.iter().map(|s| s * 100 / 250_000).collect();
    assert_eq!(percents, (1..=100).collect::<Vec<u64>>());
    // Each event is the first chunk that reaches its percent.
    for s in &sent {
        assert!((s - 1000) * 100 / 250_000 < s * 100 / 250_000, "{s}");
    }
}

/// Answers node `i`'s oldest held read as the disk would, at `offset`
/// instead of the asked one if given, then lets the mesh run briefly.
fn answer_read(m: &mut Mesh, i: usize, offset: Option<u64>) {
    let op = m.nodes[i].storage.held.remove(0);
    let StorageOp::Read {
        transfer,
        offset: asked,
        len,
    } = op
    else {
        panic!("{op:?}")
    };
    let offset = offset.unwrap_or(asked);
    let src = m.nodes[i].storage.open[&transfer].clone();
    let o = offset as usize;
    let data = src.slice(o..(o + len).min(src.len()));
    let now = m.now;
    m.nodes[i].node.handle_input(
        now,
        Input::Read {
            transfer,
            offset,
            data,
        },
    );
    m.run_for(Duration::from_millis(100));
}

#[test]
fn a_read_answer_at_an_offset_not_asked_fails_the_send() {
    // While hashing: the first read asked is at 0; an answer at the second
    // chunk's offset is refused.
    let data = content(600_000, 7);
    let (mut m, t) = held_send(&data);
    m.run_for(SEC);
    let peer1 = m.nodes[1].node.id().clone();
    assert_eq!(m.nodes[0].node.file_targets(t), Some(vec![peer1]));
    answer_read(&mut m, 0, Some(262_144));
    let why = failure_of(&m, 0, t).expect("the send failed");
    assert!(why.contains("not asked"), "{why}");
    assert!(m.nodes[0].storage.open.is_empty(), "source left open");

    // While sending: the hash pass (3 reads) and the first chunk are
    // answered; a second answer at 0 while the read at 262144 is in flight
    // is refused, and nothing more reaches the receiver.
    let (mut m, t) = held_send(&data);
    m.run_for(SEC);
    // Each read asks for one chunk, the last one only for what is left.
    let asked = [
        (0, 262_144),
        (262_144, 262_144),
        (524_288, 75_712),
        (0, 262_144),
    ];
    for (offset, len) in asked {
        assert_eq!(
            m.nodes[0].storage.held,
            [StorageOp::Read {
                transfer: t,
                offset,
                len
            }]
        );
        answer_read(&mut m, 0, None);
    }
    assert_eq!(send_events(&m, 0, t), ["started", "progress"]);
    assert_eq!(progress_of(&m, 0, t), [262_144]);
    answer_read(&mut m, 0, Some(0));
    let why = failure_of(&m, 0, t).expect("the send failed");
    assert!(why.contains("not asked"), "{why}");
    assert_eq!(send_events(&m, 0, t), ["started", "progress", "failed"]);
    m.run_for(SEC);
    assert!(!m.nodes[1].storage.files.contains_key("f.bin"));
}

#[test]
fn the_step_by_step_api_returns_how_many_peers_it_reached() {
    let mut m = star(3);
    converge(&mut m, 5 * SEC);
    let data = content(300_000, 9);
    let sha: [u8; 32] = Sha256::digest(&data).into();
    let node = &mut m.nodes[0].node;
    let id = node
        .start_file(Target::All, "steps.bin", data.len() as u64, sha)
        .unwrap();
    let data = Bytes::from(data);
    assert_eq!(node.send_file_chunk(id, data.slice(..200_000)), Ok(2));
    assert_eq!(node.send_file_chunk(id, data.slice(200_000..)), Ok(2));
    assert_eq!(node.finish_file(id), Ok(2));
    m.run_for(SEC);
    for i in 1..3 {
        assert_eq!(
            m.nodes[i].storage.files.get("steps.bin").map(Vec::as_slice),
            Some(&data[..])
        );
    }
}

#[test]
fn a_queue_exactly_at_the_window_still_takes_the_next_chunk() {
    // One node and a raw peer whose writer is reported to drain the queue
    // down to exactly the window each time the node goes idle: every chunk
    // must still go out ("at or below the window").
    let mut config = crate::Config::new(9000);
    config.files.send_window = 1000;
    config.files.chunk_size = 1000;
    let now = std::time::Instant::now();
    let mut node = crate::Node::new(config, 1, now);
    let conn = node.handle_accept(now, None);
    node.handle_input(
        now,
        Input::Received {
            conn,
            data: Bytes::from_static(b"peer:peer\nLISTEN:127.0.0.1:9001\nPONG\n"),
        },
    );
    let data = Bytes::from(content(5000, 8));
    let t = node.send_file(Target::All, "f", "f.bin").unwrap();
    let (mut transmitted, mut flushed) = (0u64, 0u64);
    let mut chunks = 0;
    let mut sent = false;
    for _ in 0..1000 {
        let Some(out) = node.poll_output() else {
            let queue = transmitted - flushed;
            if sent || queue <= 1000 {
                break;
            }
            flushed += queue - 1000;
            node.handle_input(
                now,
                Input::Flushed {
                    conn,
                    bytes: queue - 1000,
                },
            );
            continue;
        };
        match out {
            Output::Transmit { data, .. } => {
                transmitted += data.len() as u64;
                if data.windows(10).any(|w| w == b"FILECHUNK:") {
                    chunks += 1;
                }
            }
            Output::Storage(StorageOp::Open { transfer, .. }) => node.handle_input(
                now,
                Input::Opened {
                    transfer,
                    size: data.len() as u64,
                },
            ),
            Output::Storage(StorageOp::Read {
                transfer,
                offset,
                len,
            }) => {
                let o = offset as usize;
                node.handle_input(
                    now,
                    Input::Read {
                        transfer,
                        offset,
                        data: data.slice(o..o + len),
                    },
                );
            }
            Output::Event(Event::FileSent { transfer, .. }) if transfer == t => sent = true,
            _ => {}
        }
    }
    assert_eq!(chunks, 5);
    assert!(sent, "the send stalled with the queue at the window");
}

#[test]
fn a_source_that_changes_after_the_hash_pass_fails_before_its_last_chunk() {
    let data = content(600_000, 9);
    let (mut m, t) = held_send(&data);
    m.run_for(SEC);
    // The hash pass: three reads of 262144, 262144 and 75712 bytes.
    for _ in 0..3 {
        answer_read(&mut m, 0, None);
    }
    assert_eq!(send_events(&m, 0, t), ["started"]);
    // The source changes in its last chunk before the sending pass reads it.
    let mut changed = data.clone();
    changed[599_999] ^= 1;
    m.nodes[0].storage.open.insert(t, Bytes::from(changed));
    let mut reads = 0;
    while !m.nodes[0].storage.held.is_empty() {
        answer_read(&mut m, 0, None);
        reads += 1;
    }
    assert_eq!(reads, 3, "the sending pass read the whole file");
    let why = failure_of(&m, 0, t).expect("the send failed");
    assert!(why.contains("changed after hashing"), "{why}");
    assert_eq!(
        send_events(&m, 0, t),
        ["started", "progress", "progress", "failed"]
    );
    assert!(m.nodes[0].storage.open.is_empty(), "source left open");
    // The receiver got two chunks and no FILEEND: nothing is committed.
    m.run_for(SEC);
    assert!(m.nodes[1].storage.files.is_empty());
    assert_eq!(m.nodes[1].storage.parts.len(), 1);
    let (_, part) = m.nodes[1].storage.parts.values().next().unwrap();
    assert_eq!(part.len(), 524_288);
}
