//! `node`: frames per second through a node's `handle_input` /
//! `poll_output`, for 64-byte chat lines and 64-byte binary messages, with
//! 1 and with 49 established peers.
//!
//! - `receive/<kind>/<peers>`: one frame per read (interactive traffic
//!   arrives that way), round-robin over the peers, outputs drained after
//!   every read as the driver does. Baseline `decode_only/<kind>/<peers>`:
//!   the same reads through one bare `Decoder` per connection, i.e. the
//!   node's own cost is the difference.
//! - `broadcast/<kind>/<peers>`: `broadcast_chat` / `broadcast_bytes` and
//!   the drain of the resulting transmits. Throughput counts frames handed
//!   to peers (messages x peers). Baseline `fanout_only/<peers>`: pushing
//!   and popping one shared `Bytes` per peer, the least a copy-free
//!   fan-out can cost.
//!
//! The setup asserts, for 1 and 49 peers, that every broadcast (chat,
//! binary, file chunk) hands all peers the same buffer by pointer.
//!
//! Run: `cargo bench -p p2p-benches --bench node`.

use std::collections::VecDeque;
use std::hint::black_box;
use std::time::Duration;

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use p2p_benches::{
    broadcast_messages, chat_line, check_broadcast_shares_buffers, check_frames_become_events,
    feed_frames, filler, FrameKind, Rig,
};
use p2p_core::codec::{Decoder, Frame, Limits};

/// Frames per iteration, whatever the number of peers (100 per peer at 49).
const FRAMES: usize = 4900;
/// Distinct frames cycled through, so that not every input is identical.
const DISTINCT: usize = 100;
const PEER_COUNTS: [usize; 2] = [1, 49];

fn receive(c: &mut Criterion) {
    let mut g = c.benchmark_group("node");
    g.throughput(Throughput::Elements(FRAMES as u64));
    for kind in [FrameKind::Chat, FrameKind::Bytes] {
        let frames = kind.frames(DISTINCT);
        for peers in PEER_COUNTS {
            let mut rig = Rig::new(peers);
            // Checked once before timing, whatever filter is given: every
            // frame becomes exactly one event of its kind.
            check_frames_become_events(&mut rig, kind, &frames, FRAMES);
            let id = BenchmarkId::new(format!("receive/{}", kind.name()), peers);
            g.bench_function(id, |b| b.iter(|| feed_frames(&mut rig, &frames, FRAMES)));

            let mut decoders: Vec<Decoder> = (0..peers)
                .map(|_| Decoder::new(Limits::default()))
                .collect();
            let id = BenchmarkId::new(format!("decode_only/{}", kind.name()), peers);
            g.bench_function(id, |b| {
                b.iter(|| {
                    let mut n = 0;
                    for f in 0..FRAMES {
                        let dec = &mut decoders[f % peers];
                        dec.feed(frames[f % DISTINCT].clone());
                        while let Some(frame) = dec.next_frame().expect("valid") {
                            n += match frame {
                                Frame::Line(l) => black_box(l).len(),
                                Frame::Bytes(b) => black_box(b).len(),
                            };
                        }
                    }
                    n
                })
            });
        }
    }
    g.finish();
}

fn broadcast(c: &mut Criterion) {
    for peers in PEER_COUNTS {
        check_broadcast_shares_buffers(peers);
    }
    let mut g = c.benchmark_group("node");
    // Messages per iteration: FRAMES frames handed to peers in total.
    for peers in PEER_COUNTS {
        let messages = FRAMES / peers;
        g.throughput(Throughput::Elements((messages * peers) as u64));
        let texts: Vec<String> = (0..DISTINCT).map(chat_line).collect();
        let payloads: Vec<Bytes> = (0..DISTINCT)
            .map(|i| Bytes::from(filler(64, i as u64)))
            .collect();

        for kind in [FrameKind::Chat, FrameKind::Bytes] {
            let mut rig = Rig::new(peers);
            let id = BenchmarkId::new(format!("broadcast/{}", kind.name()), peers);
            g.bench_function(id, |b| {
                b.iter(|| broadcast_messages(&mut rig, kind, &texts, &payloads, messages))
            });
        }

        let mut queue: VecDeque<Bytes> = VecDeque::new();
        g.bench_function(BenchmarkId::new("fanout_only", peers), |b| {
            b.iter(|| {
                let mut n = 0;
                for m in 0..messages {
                    for _ in 0..peers {
                        queue.push_back(payloads[m % DISTINCT].clone());
                    }
                    while let Some(p) = queue.pop_front() {
                        n += black_box(p).len();
                    }
                }
                n
            })
        });
    }
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    targets = receive, broadcast
}
criterion_main!(benches);
