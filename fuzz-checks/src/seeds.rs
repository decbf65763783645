//! The hand-made seed corpus: small valid sequences per target, written to
//! `fuzz/corpus/<target>/seed-<name>` (see the corpus test, which checks
//! that the committed files match and rewrites them with
//! `P2P_WRITE_SEEDS=1`).

use crate::decode::DecodeInput;
use crate::file::{FileOp, Name};
use crate::handshake::HandshakeInput;
use crate::manifest::ManifestInput;
use crate::node::{Answer, Cmd, NodeOp, SourceOp, Wire};
use crate::session::{Edit, SessionInput};
use crate::swarm::{EntrySel, IdSel, Kind, PeerFrame, StorageAnswer, SwarmCmd, SwarmOp};

/// One seed file.
#[derive(Debug, Clone)]
pub struct Seed {
    /// Target (corpus directory).
    pub target: &'static str,
    /// File name without the `seed-` prefix.
    pub name: &'static str,
    /// Contents.
    pub data: Vec<u8>,
}

/// Every seed of every target.
pub fn all() -> Vec<Seed> {
    let mut v = Vec::new();
    v.extend(decode());
    v.extend(node());
    v.extend(file());
    v.extend(handshake());
    v.extend(session());
    v.extend(swarm());
    v.extend(manifest());
    v
}

fn seed(target: &'static str, name: &'static str, data: Vec<u8>) -> Seed {
    Seed { target, name, data }
}

fn decode() -> Vec<Seed> {
    let d = |name, max_line_len, max_bytes, reads: &[u8], data: &[u8]| {
        let input = DecodeInput {
            max_line_len,
            max_bytes,
            reads: reads.to_vec(),
            data: data.to_vec(),
        };
        seed("decode", name, input.encode())
    };
    let mixed: &[u8] = b"PING\r\n  hello there \n\nBYTES:5\nab\ncdPEERS:a:1, b:2\nBYTES:0\nlast";
    vec![
        d("frames", 255, 255, &[], mixed),
        d("split", 64, 32, &[1, 3, 0x85, 0, 7], mixed),
        d(
            "handshake_lines",
            255,
            255,
            &[2],
            b"abc123:my:name\nLISTEN:127.0.0.1:9000\nDUPLICATE\nMAX_PEERS\nREQUEST_PEERS\n",
        ),
        d("line_too_long", 8, 8, &[4], b"1234567\n123456789\n"),
        // A line and a payload of exactly the limits (8 bytes each): both
        // are frames, one byte more would not be.
        d(
            "at_the_limits",
            8,
            1,
            &[5],
            b"12345678\nBYTES:8\n12345678PING\n",
        ),
        d("bad_length", 64, 8, &[], b"PING\nBYTES:-1\n"),
        d("too_large", 64, 1, &[], b"BYTES:9\n123456789"),
        d(
            "huge_length",
            64,
            8,
            &[3],
            b"BYTES:99999999999999999999999999999999\n",
        ),
        d("invalid_utf8", 16, 8, &[1], b"\xff\xfe abc\n\xc3\n"),
        d(
            "file_frame",
            255,
            255,
            &[9],
            b"BYTES:18\nFILECHUNK:a.txt\nabcdBYTES:7\nFILEEND",
        ),
    ]
}

fn node() -> Vec<Seed> {
    use NodeOp::*;
    let recv = |conn: u8, wire: Wire| Receive { conn, wire };
    // Selectors into the lists of `node.rs`.
    let (id_a, id_z, id_m) = (0, 3, 4);
    let (ping, max_peers, duplicate) = (0, 4, 3);
    let inbound = |id: u8, conn: u8| {
        vec![
            Accept { remote: 1 },
            recv(conn, Wire::Hello { id, name: 1 }),
            recv(conn, Wire::Listen { addr: 0 }),
        ]
    };
    let file_ok = |conn: u8| {
        vec![
            recv(
                conn,
                Wire::FileStart {
                    name: 0,
                    content: 2,
                    corrupt: false,
                },
            ),
            recv(
                conn,
                Wire::FileChunk {
                    name: 0,
                    content: 2,
                    offset: 0,
                    len: 300,
                },
            ),
            recv(
                conn,
                Wire::FileChunk {
                    name: 0,
                    content: 2,
                    offset: 300,
                    len: 400,
                },
            ),
            recv(
                conn,
                Wire::FileEnd {
                    name: 0,
                    content: 2,
                    corrupt: false,
                },
            ),
            Storage { pick: 0, ok: true },
        ]
    };
    let n = |name, ops: Vec<NodeOp>| seed("node", name, NodeOp::encode_all(&ops));
    let mut chatty = inbound(id_a, 0);
    chatty.extend([
        recv(0, Wire::Control(ping)),
        recv(0, Wire::Chat(b"hello mesh".to_vec())),
        recv(0, Wire::Peers(vec![1, 2, 3, 10])),
        recv(0, Wire::Bytes(b"opaque".to_vec())),
        Advance { centis: 2000 },
        Tick,
        Tick,
    ]);
    let outbound = vec![
        Connect { addr: 0 },
        Connected { dial: 0, local: 1 },
        recv(0, Wire::Hello { id: id_z, name: 0 }),
        recv(0, Wire::Peers(vec![1, 3])),
        recv(0, Wire::Control(ping)),
        Tick,
        Connected { dial: 0, local: 2 },
        Tick,
        DialFailed { dial: 0 },
        Advance { centis: 6500 },
    ];
    let mut transfer = inbound(id_a, 0);
    transfer.extend(file_ok(0));
    let mut bad_files = inbound(id_z, 0);
    bad_files.extend([
        recv(
            0,
            Wire::FileStart {
                name: 2,
                content: 1,
                corrupt: false,
            },
        ),
        recv(
            0,
            Wire::FileStart {
                name: 1,
                content: 1,
                corrupt: true,
            },
        ),
        recv(
            0,
            Wire::FileChunk {
                name: 1,
                content: 1,
                offset: 0,
                len: 100,
            },
        ),
        recv(
            0,
            Wire::FileEnd {
                name: 1,
                content: 1,
                corrupt: true,
            },
        ),
        recv(
            0,
            Wire::FileStart {
                name: 0,
                content: 3,
                corrupt: false,
            },
        ),
        recv(
            0,
            Wire::FileChunk {
                name: 0,
                content: 3,
                offset: 0,
                len: 100,
            },
        ),
        Storage { pick: 0, ok: false },
        Close { conn: 0, reason: 0 },
    ]);
    let mut simultaneous = inbound(id_a, 0);
    simultaneous.extend(inbound(id_z, 1));
    simultaneous.extend([
        Connect { addr: 1 },
        Connected { dial: 0, local: 1 },
        recv(2, Wire::Hello { id: id_a, name: 0 }),
        Connect { addr: 3 },
        Connected { dial: 1, local: 2 },
        recv(3, Wire::Hello { id: id_z, name: 0 }),
        recv(2, Wire::Control(ping)),
        Close { conn: 0, reason: 3 },
        Advance { centis: 1100 },
    ]);
    let mut full = Vec::new();
    for (conn, id) in [(0, id_a), (1, 1), (2, 2), (3, id_z)] {
        full.extend(inbound(id, conn));
    }
    full.extend([
        recv(4, Wire::Hello { id: id_m, name: 0 }),
        Connect { addr: 10 },
        Bootstrap { addr: 11 },
        Connected { dial: 0, local: 0 },
        recv(4, Wire::Control(max_peers)),
        recv(4, Wire::Peers(vec![7, 8, 9, 10])),
        Connected { dial: 0, local: 0 },
        recv(5, Wire::Control(duplicate)),
        Advance { centis: 3000 },
        Tick,
    ]);
    let mut commands = inbound(id_a, 0);
    commands.extend([
        recv(0, Wire::Control(ping)),
        Command(Cmd::BroadcastChat(b"hello all".to_vec())),
        Command(Cmd::SendChat {
            peer: 0,
            text: b"hi a".to_vec(),
        }),
        Command(Cmd::SendChat {
            peer: 1,
            text: b"PING".to_vec(),
        }),
        Command(Cmd::BroadcastBytes(vec![1, 2, 3])),
        Command(Cmd::SendBytes {
            peer: 0,
            data: vec![0; 3000],
        }),
        Command(Cmd::StartFile {
            peer: 0,
            name: 0,
            content: 1,
        }),
        Command(Cmd::SendChunk {
            transfer: 0,
            len: 12,
        }),
        Command(Cmd::FinishFile { transfer: 0 }),
        Command(Cmd::StartFile {
            peer: 1,
            name: 5,
            content: 2,
        }),
        Command(Cmd::AbortFile { transfer: 1 }),
        Command(Cmd::Discover),
        Command(Cmd::Shutdown),
        Accept { remote: 0 },
        recv(1, Wire::Hello { id: id_z, name: 0 }),
        Tick,
    ]);
    let mut garbage = inbound(id_a, 0);
    garbage.extend([
        Accept { remote: 2 },
        recv(1, Wire::Raw(b"BYTES:3\nabc".to_vec())),
        recv(0, Wire::Raw(b"BYTES:-1\n".to_vec())),
        Accept { remote: 3 },
        recv(2, Wire::Raw(vec![b'x'; 300])),
        Advance { centis: 1500 },
    ]);
    let sends = send_seeds(inbound(id_a, 0), inbound(id_z, 1));
    let mut v = vec![
        n("inbound_chat", chatty),
        n("outbound", outbound),
        n("file_transfer", transfer),
        n("bad_files", bad_files),
        n("simultaneous", simultaneous),
        n("max_peers", full),
        n("commands", commands),
        n("garbage", garbage),
    ];
    v.extend(sends.into_iter().map(|(name, ops)| n(name, ops)));
    v
}

/// The `send_file` seeds of the `node` target, each on two peers `a`
/// (selector 0) and `z` (1).
fn send_seeds(a: Vec<NodeOp>, z: Vec<NodeOp>) -> Vec<(&'static str, Vec<NodeOp>)> {
    use NodeOp::*;
    let src = |pick: u8, op: SourceOp| Source { pick, op };
    let send = |peer: u8, name: u8, content: u8| {
        Command(Cmd::SendFile {
            peer,
            name,
            content,
        })
    };
    let honest = || SourceOp::Read(Answer::Honest);
    let lie = |a: Answer| SourceOp::Read(a);
    let open = SourceOp::Opened { mode: 0, arg: 0 };
    let mut two = a;
    two.extend(z);
    // Whole files through honest completions: 3000 bytes to both peers,
    // an empty file to `a`, 700 bytes to `z`.
    let mut ok = two.clone();
    ok.extend([
        send(0, 0, 3),
        src(0, SourceOp::Drive { rounds: 1 }),
        send(1, 1, 0),
        src(1, open.clone()),
        send(2, 5, 2),
        src(2, SourceOp::Drive { rounds: 0 }),
    ]);
    // Step by step, 6000 bytes (past the content, the source's pattern) to
    // both peers: the window (2500 bytes) fills after three chunks, the
    // fourth waits until both queues drain below it.
    let mut paced = two.clone();
    paced.extend([
        send(0, 0, 3),
        src(0, SourceOp::Opened { mode: 1, arg: 6000 }),
    ]);
    paced.extend(std::iter::repeat_n(src(0, honest()), 10));
    paced.extend([
        Flushed {
            conn: 0,
            mode: 2,
            arg: 1000,
        },
        Flushed {
            conn: 1,
            mode: 1,
            arg: 0,
        },
        src(0, honest()),
        Flushed {
            conn: 0,
            mode: 3,
            arg: 0,
        },
        Flushed {
            conn: 1,
            mode: 0,
            arg: 0,
        },
        src(0, SourceOp::Drive { rounds: 0 }),
    ]);
    // Wrong, duplicated, unknown and missing completions, aborts, a
    // consistent lie (the same flipped byte in both passes: sent as read),
    // refused commands, and a send left open at shutdown.
    let mut lies = two;
    lies.extend([
        send(1, 0, 2),
        src(0, open.clone()),
        src(0, lie(Answer::Short(1))),
        send(1, 1, 3),
        src(1, open.clone()),
        src(1, SourceOp::Opened { mode: 1, arg: 5 }),
        send(1, 0, 3),
        src(2, open.clone()),
        src(2, lie(Answer::Offset(5))),
        send(1, 0, 3),
        src(3, open.clone()),
        src(3, honest()),
        src(3, lie(Answer::Replay)),
        send(0, 5, 1),
        src(4, SourceOp::Opened { mode: 3, arg: 4 }),
        src(4, honest()),
        src(4, honest()),
        src(4, SourceOp::Abort),
        send(1, 1, 1),
        src(5, SourceOp::Opened { mode: 1, arg: 10 }),
        src(5, lie(Answer::Long(b"xyz".to_vec()))),
        send(1, 0, 0),
        src(6, SourceOp::Failed),
        src(6, open.clone()),
        src(6, honest()),
        src(7, honest()),
        src(7, open.clone()),
        src(7, SourceOp::Failed),
        src(7, SourceOp::Abort),
        send(1, 0, 2),
        src(7, open.clone()),
        src(7, lie(Answer::Flip(3))),
        src(7, lie(Answer::Flip(3))),
        send(1, 2, 1),
        send(5, 0, 1),
        send(0, 1, 3),
        src(8, open.clone()),
        src(8, lie(Answer::At { offset: 0, len: 10 })),
        send(0, 1, 3),
        src(9, open),
        src(9, honest()),
        Flushed {
            conn: 1,
            mode: 3,
            arg: 0,
        },
        Command(Cmd::Shutdown),
        src(9, honest()),
        src(
            9,
            SourceOp::Opened {
                mode: 2,
                arg: 0xffff,
            },
        ),
    ]);
    vec![
        ("send_file", ok),
        ("send_paced", paced),
        ("send_lies", lies),
    ]
}

fn file() -> Vec<Seed> {
    use FileOp::*;
    let f = |name, ops: Vec<FileOp>| seed("file", name, FileOp::encode_all(&ops));
    let start = |from: u8, name: u8, content: u8| Start {
        from,
        name: Name::Listed(name),
        content,
        size: 0,
        sha: 0,
    };
    let chunk = |from: u8, name: u8, content: u8, offset: u16, len: u16| Chunk {
        from,
        name: Name::Listed(name),
        content,
        offset,
        len,
    };
    let end = |from: u8, name: u8, content: u8, corrupt: bool| End {
        from,
        name: Name::Listed(name),
        content,
        corrupt,
    };
    let good = vec![
        start(0, 0, 2),
        chunk(0, 0, 2, 0, 350),
        chunk(0, 0, 2, 350, 350),
        end(0, 0, 2, false),
        start(1, 0, 1),
        chunk(1, 0, 1, 0, 100),
        end(1, 0, 1, false),
        start(0, 1, 0),
        end(0, 1, 0, false),
        Committed { pick: 0 },
        Committed { pick: 1 },
        StorageFailed { pick: 0 },
    ];
    let hostile: Vec<FileOp> = (6..24)
        .map(|i| start(2, i, 1))
        .chain([Start {
            from: 2,
            name: Name::Custom(b"..\\..\\x".to_vec()),
            content: 1,
            size: 0,
            sha: 0,
        }])
        .collect();
    let failures = vec![
        Start {
            from: 0,
            name: Name::Listed(0),
            content: 1,
            size: 2,
            sha: 0,
        },
        chunk(0, 0, 1, 0, 100),
        start(0, 1, 1),
        chunk(0, 1, 1, 0, 5),
        end(0, 1, 1, false),
        start(0, 2, 1),
        chunk(0, 2, 1, 0, 100),
        end(0, 2, 1, true),
        Start {
            from: 0,
            name: Name::Listed(3),
            content: 1,
            size: 0,
            sha: 1,
        },
        chunk(0, 3, 1, 0, 100),
        end(0, 3, 1, false),
        Start {
            from: 1,
            name: Name::Listed(0),
            content: 3,
            size: 4,
            sha: 0,
        },
        Start {
            from: 1,
            name: Name::Listed(0),
            content: 3,
            size: 3,
            sha: 0,
        },
        chunk(1, 4, 1, 0, 5),
        end(1, 4, 1, false),
    ];
    let lifecycle = vec![
        start(0, 0, 2),
        start(0, 0, 2),
        start(0, 1, 2),
        start(0, 2, 2),
        start(1, 0, 3),
        chunk(1, 0, 3, 0, 1000),
        Advance { secs: 30 },
        chunk(1, 0, 3, 1000, 1000),
        Advance { secs: 40 },
        PeerGone { from: 1 },
        start(2, 0, 1),
        chunk(2, 0, 1, 0, 100),
        StorageFailed { pick: 0 },
        start(2, 1, 1),
        chunk(2, 1, 1, 0, 100),
        end(2, 1, 1, false),
        Shutdown,
        Committed { pick: 0 },
        Advance { secs: 255 },
    ];
    let raw = vec![
        Raw {
            from: 0,
            tag: 0,
            payload: b"a.txt|12|zz\n".to_vec(),
        },
        Raw {
            from: 0,
            tag: 0,
            payload:
                b"a.txt|-1|0000000000000000000000000000000000000000000000000000000000000000\r\n"
                    .to_vec(),
        },
        Raw {
            from: 0,
            tag: 1,
            payload: b"no newline".to_vec(),
        },
        Raw {
            from: 0,
            tag: 1,
            payload: b"\xff\xfe\nbytes".to_vec(),
        },
        Raw {
            from: 0,
            tag: 2,
            payload: b"a.txt".to_vec(),
        },
        Raw {
            from: 0,
            tag: 3,
            payload: b"FILESTART".to_vec(),
        },
    ];
    vec![
        f("good", good),
        f("hostile_names", hostile),
        f("failures", failures),
        // Declared and confirmed with the checksum of `hello world\n`, but
        // the 12 bytes sent are another content's: refused at FILEEND
        // although both checksums agree.
        f(
            "wrong_content",
            vec![start(0, 4, 1), chunk(0, 4, 2, 0, 12), end(0, 4, 1, false)],
        ),
        f("lifecycle", lifecycle),
        f("raw", raw),
    ]
}

fn handshake() -> Vec<Seed> {
    // setup = pre | (max_peers - 1) << 2 | remote << 4 | local << 6
    let h = |name, setup: u8, reads: &[u8], data: &[u8]| {
        let input = HandshakeInput {
            setup,
            reads: reads.to_vec(),
            data: data.to_vec(),
        };
        seed("handshake", name, input.encode())
    };
    let full =
        b"z:Zed\nLISTEN:127.0.0.1:9001\nPING\nhello there\nPEERS:127.0.0.1:9002\nBYTES:3\nabc";
    vec![
        h("hello", 2 << 2 | 1 << 6, &[], full),
        h("hello_split", 2 << 2 | 1 << 4 | 2 << 6, &[1, 2, 5], full),
        h("hello_only", 2 << 2, &[], b"z:\n"),
        h("duplicate", 2 << 2, &[], b"DUPLICATE\n"),
        h(
            "max_peers",
            1 | 1 << 2,
            &[],
            b"MAX_PEERS\nPEERS:127.0.0.1:9001,10.0.0.2:9002\n",
        ),
        h("self", 2 << 2, &[], b"m:node m\nPING\n"),
        h("known_peer_p", 1 | 2 << 2, &[], b"p:\nPING\nhi\n"),
        h("known_peer_a", 2 | 2 << 2, &[], b"a:\nPING\nhi\n"),
        h(
            "remote_listen_localhost",
            1 << 4 | 2 << 2,
            &[],
            b"z:\nLISTEN:localhost:9001\nPONG\n",
        ),
        h("bytes_first", 2 << 2, &[], b"BYTES:3\nabc"),
        h("bad_hello", 2 << 2, &[], b"no colon here\n"),
        h("garbage", 2 << 2, &[3], b"z:\n\xff\xfe\nBYTES:x\n"),
        h("partial", 2 << 2, &[], b"z:half a hello"),
    ]
}

fn session() -> Vec<Seed> {
    let s = |name, setup: u8, messages: &[u16], reads: &[u8], edits: Vec<Edit>| {
        let input = SessionInput {
            setup,
            messages: messages.to_vec(),
            reads: reads.to_vec(),
            edits,
        };
        seed("session", name, input.encode())
    };
    vec![
        s("honest", 0, &[1, 30, 0], &[], vec![]),
        s("honest_initiator", 1, &[2, 5], &[], vec![]),
        // 1800 * 37 bytes: more than one Noise message.
        s("split_big", 0, &[1800, 3], &[1, 7, 0, 200, 13], vec![]),
        s(
            "bit_flip",
            0,
            &[4, 4],
            &[9],
            vec![Edit::Flip { at: 170, bit: 3 }],
        ),
        s(
            "replayed_message",
            1,
            &[1, 1],
            &[60],
            vec![Edit::Replay {
                from: 98,
                len: 55,
                at: 153,
            }],
        ),
        s(
            "plaintext_peer",
            0,
            &[1],
            &[],
            vec![Edit::Insert {
                at: 0,
                data: b"abc:def\nLISTEN:x:1\n".to_vec(),
            }],
        ),
        s(
            "handshake_cut",
            0,
            &[1],
            &[3],
            vec![Edit::Delete { at: 60, len: 10 }],
        ),
    ]
}

/// The `swarm` seeds. Selectors into `swarm.rs`: peers 0 `a`, 1 `b`, 2 `r`
/// (no `swarm/1`); catalog items 0 a file of 3 chunks, 1 a tree, 2 a
/// 12-byte file, 3 an empty file, 4 a file of 10 chunks, 6 a manifest over
/// the limit, 7 a `..` path, 8 an absolute path, 9 a device name, 11 a `:`,
/// 12 a file that is a directory, 20 no manifest.
fn swarm() -> Vec<Seed> {
    use SwarmOp::*;
    let (a, b, r) = (0, 1, 2);
    let f = |peer: u8, frame: PeerFrame| Frame { peer, frame };
    let holds = |item: u8| PeerFrame::Index(vec![EntrySel { item, flags: 1 }]);
    let id = |item: u8| IdSel { item, form: 0 };
    let get = |item: u8| {
        Command(SwarmCmd::Get {
            id: id(item),
            dir: 0,
        })
    };
    let mani = |item: u8| PeerFrame::Mani { item, variant: 0 };
    let chunk = |item: u8, chunk: u16, variant: u8| PeerFrame::Chunk {
        item,
        chunk,
        variant,
    };
    let st = |kind: Kind, mode: u8| Storage(StorageAnswer::new(kind, 0, mode));
    let scan = |list: &[u8]| Storage(StorageAnswer::new(Kind::Scan, 0, 0).list(list));
    // Every chunk of `item` (`n` chunks) from `peer`, twice over (only
    // those asked of it count; each answer lets it be asked more).
    let all_chunks = |peer: u8, item: u8, n: u16, variant: u8| -> Vec<SwarmOp> {
        (0..2 * n)
            .map(|k| f(peer, chunk(item, k % n, variant)))
            .collect()
    };
    let w = |name, ops: Vec<SwarmOp>| seed("swarm", name, SwarmOp::encode_all(&ops));

    // Both hold the file of 3 chunks: the endgame asks both for every
    // chunk, and the first copy of each wins.
    let two_peers = vec![
        scan(&[]),
        f(a, holds(0)),
        f(b, holds(0)),
        get(0),
        f(a, mani(0)),
        st(Kind::Open, 0),
        f(a, chunk(0, 0, 0)),
        f(b, chunk(0, 1, 0)),
        f(a, chunk(0, 2, 0)),
        f(b, chunk(0, 2, 0)),
        st(Kind::Commit, 0),
    ];
    // `a` sends every chunk of the 10-chunk file corrupted: rejected and
    // banned; `b` sends them right.
    let mut rejected = vec![
        scan(&[]),
        f(a, holds(4)),
        f(b, holds(4)),
        get(4),
        f(a, mani(4)),
        st(Kind::Open, 0),
    ];
    rejected.extend(all_chunks(a, 4, 10, 1));
    rejected.extend(all_chunks(b, 4, 10, 0));
    rejected.push(st(Kind::Commit, 0));
    // A partial left by an earlier run whose record claims all 10 chunks:
    // five read back zeros (never written), five right; the first five
    // are fetched from `a`.
    let mut lying_record = vec![
        scan(&[4]),
        Storage(StorageAnswer::new(Kind::Open, 0, 2)),
        f(a, holds(4)),
    ];
    for mode in [0, 1, 0, 1, 0, 1, 0, 1, 0, 1] {
        lying_record.push(st(Kind::Read, mode));
    }
    lying_record.extend(all_chunks(a, 4, 10, 0));
    lying_record.push(st(Kind::Commit, 0));
    // Every claimed chunk of the 3-chunk file reads back right: committed
    // with no peer at all.
    let resumed = vec![
        scan(&[0x80]),
        Storage(StorageAnswer::new(Kind::Open, 0, 1).list(&[0, 1, 2, 2, 200])),
        st(Kind::Read, 1),
        st(Kind::Read, 1),
        st(Kind::Read, 1),
        st(Kind::Commit, 0),
    ];
    // Hostile manifests from a peer (a `..` path, a `:`, one over the
    // limit, another content's under this id), from the storage's scan
    // and from a share.
    let hostile = vec![
        scan(&[7, 8, 9, 12, 20, 21]),
        f(
            a,
            PeerFrame::Index(vec![
                EntrySel { item: 7, flags: 1 },
                EntrySel { item: 11, flags: 1 },
                EntrySel { item: 6, flags: 1 },
                EntrySel { item: 0, flags: 1 },
            ]),
        ),
        get(7),
        f(a, mani(7)),
        get(11),
        f(a, mani(11)),
        Command(SwarmCmd::Cancel(id(7))),
        Command(SwarmCmd::Cancel(id(11))),
        get(6),
        f(a, mani(6)),
        get(0),
        f(
            a,
            PeerFrame::Mani {
                item: 0,
                variant: 1,
            },
        ),
        f(a, PeerFrame::Index(vec![EntrySel { item: 0, flags: 4 }])),
        Command(SwarmCmd::Share { path: 0 }),
        Storage(StorageAnswer::new(Kind::Share, 0, 1).arg(4)),
    ];
    // `a` offers the 12-byte file and is declined; we offer it to all, and
    // `b` declines ours; `b`'s offer of the tree is accepted on its own.
    let offers = vec![
        scan(&[]),
        f(a, PeerFrame::Offer(EntrySel { item: 2, flags: 1 })),
        Command(SwarmCmd::Decline(IdSel { item: 2, form: 2 })),
        Command(SwarmCmd::Offer { path: 2, target: 0 }),
        st(Kind::Share, 0),
        f(b, PeerFrame::Decline { item: 2 }),
        f(r, PeerFrame::Decline { item: 2 }),
        f(b, PeerFrame::Offer(EntrySel { item: 1, flags: 1 })),
        f(b, mani(1)),
        st(Kind::Open, 0),
        f(b, chunk(1, 0, 0)),
        f(b, chunk(1, 1, 0)),
        st(Kind::Commit, 0),
    ];
    // Serving the shared file: reads answered right and wrong (the frame
    // carries what was read), a request past the end, a manifest and a
    // bitfield, a cancel, a full queue, and `r`'s requests ignored.
    let serving = vec![
        scan(&[]),
        Command(SwarmCmd::Share { path: 0 }),
        st(Kind::Share, 0),
        f(a, PeerFrame::Get { item: 0, chunk: 0 }),
        f(a, PeerFrame::Get { item: 0, chunk: 1 }),
        f(a, PeerFrame::Get { item: 0, chunk: 9 }),
        f(r, PeerFrame::Get { item: 0, chunk: 2 }),
        st(Kind::Read, 0),
        st(Kind::Read, 2),
        f(a, PeerFrame::Mget { item: 0 }),
        f(a, PeerFrame::Hget { item: 0 }),
        f(a, PeerFrame::Hget { item: 4 }),
        f(b, PeerFrame::Get { item: 0, chunk: 2 }),
        f(b, PeerFrame::Cancel { item: 0, chunk: 2 }),
        st(Kind::Read, 0),
        Flushed { peer: b },
        f(a, PeerFrame::Get { item: 0, chunk: 2 }),
        f(a, PeerFrame::Get { item: 0, chunk: 2 }),
        f(a, PeerFrame::Get { item: 0, chunk: 2 }),
        f(a, PeerFrame::Get { item: 0, chunk: 2 }),
        f(a, PeerFrame::Get { item: 0, chunk: 2 }),
        st(Kind::Read, 5),
        st(Kind::Read, 4),
        Raw {
            peer: a,
            body: b"get 00 1\n".to_vec(),
        },
    ];
    // A download from `a`, which goes silent: its requests time out and
    // go to `b`; `a` leaves and comes back; the tree completes.
    let mut timeouts = vec![
        scan(&[]),
        f(a, holds(1)),
        get(1),
        f(a, mani(1)),
        st(Kind::Open, 0),
        Advance { centis: 1100 },
        f(b, holds(1)),
        Tick,
        Disconnect { peer: a },
        Reconnect { peer: a },
        f(a, holds(1)),
    ];
    timeouts.extend(all_chunks(b, 1, 2, 0));
    timeouts.extend([st(Kind::Commit, 0), Advance { centis: 3000 }, Tick]);
    // The empty file: committed as soon as it is open.
    let empty = vec![
        scan(&[]),
        f(b, holds(3)),
        get(3),
        f(b, mani(3)),
        st(Kind::Open, 0),
        st(Kind::Commit, 0),
        f(a, PeerFrame::Get { item: 3, chunk: 0 }),
    ];
    vec![
        w("two_peers", two_peers),
        w("rejected_chunk", rejected),
        w("lying_record", lying_record),
        w("resumed", resumed),
        w("hostile_manifests", hostile),
        w("offers", offers),
        w("serving", serving),
        w("timeouts", timeouts),
        w("empty_file", empty),
    ]
}

/// The `manifest` seeds.
fn manifest() -> Vec<Seed> {
    let built = |sort, files: &[(u16, &str)], delta, edits: &[(u16, u8)]| ManifestInput::Built {
        chunk_size: 0,
        sort,
        files: files
            .iter()
            .map(|(s, p)| (*s, p.as_bytes().to_vec()))
            .collect(),
        delta,
        edits: edits.to_vec(),
    };
    let m = |name, input: ManifestInput| seed("manifest", name, input.encode());
    let tree = [
        (5000, "d/a.txt"),
        (0, "d/b/empty"),
        (3000, "d/b/x"),
        (9000, "d/c"),
    ];
    vec![
        m("file", built(true, &[(10_000, "data.bin")], 0, &[])),
        m("tree", built(true, &tree, 0, &[])),
        m("unsorted", built(false, &[(1, "d/b"), (1, "d/a")], 0, &[])),
        m("colon", built(true, &[(10, "x:y")], 0, &[])),
        m("dotdot", built(true, &[(10, "d/../x")], 0, &[])),
        m("device", built(true, &[(10, "d/com1.txt")], 0, &[])),
        m(
            "file_and_dir",
            built(true, &[(1, "d/a"), (1, "d/a/b")], 0, &[]),
        ),
        m("count", built(true, &[(10, "f")], 1, &[])),
        m("edited", built(true, &tree, 0, &[(40, b'0'), (3, b'X')])),
        m(
            "raw",
            ManifestInput::Raw(
                b"p2p-manifest/1\nchunk-size 4096\nfiles 1\n0 e\nchunks 0\n".to_vec(),
            ),
        ),
    ]
}
