//! Extension frames and the capability exchange (docs/PROTOCOL.md §7).

use bytes::Bytes;

use super::{converge, raw_peer, star, SEC};
use crate::codec::{Decoder, Frame, Limits};
use crate::{CommandError, Event, PeerId};

fn bytes_frames(received: &[u8]) -> Vec<Bytes> {
    let mut d = Decoder::new(Limits::default());
    d.feed(Bytes::copy_from_slice(received));
    let mut out = Vec::new();
    while let Ok(Some(f)) = d.next_frame() {
        if let Frame::Bytes(b) = f {
            out.push(b);
        }
    }
    out
}

#[test]
fn our_nodes_learn_each_others_extensions() {
    let mut m = star(3);
    converge(&mut m, 5 * SEC);
    m.run_for(SEC);
    for i in 0..3 {
        let peers: Vec<_> = m.nodes[i].node.peers().collect();
        assert_eq!(peers.len(), 2);
        for p in peers {
            assert_eq!(
                p.extensions,
                ["caps/1", "leave/1", "swarm/1"],
                "node {i} about {}",
                p.id
            );
        }
        let announced = m
            .events(i)
            .filter(|e| matches!(e, Event::PeerExtensions { .. }))
            .count();
        assert_eq!(announced, 2, "node {i}");
    }
}

#[test]
fn a_reference_peer_sees_one_opaque_frame_and_sends_none() {
    let mut m = star(2);
    converge(&mut m, 5 * SEC);
    let r = raw_peer(&mut m, 0, "reference", 9300);
    m.raw_send(r, b"PING\nhello from the reference\n");
    m.nodes[0].node.broadcast_chat("hi").unwrap();
    m.run_for(2 * SEC);
    let frames = bytes_frames(&m.raws[r].received);
    assert_eq!(frames.len(), 1, "{frames:?}");
    assert_eq!(&frames[0][..], b"P2PX/caps\ncaps/1 leave/1 swarm/1");
    let reference = PeerId::parse("reference").unwrap();
    let info = m.nodes[0].node.peers().find(|p| p.id == reference).unwrap();
    assert!(info.extensions.is_empty());
    assert!(m.raw_lines(r).contains(&"hi".to_owned()));
}

#[test]
fn bad_extension_frames_are_ignored_and_the_connection_goes_on() {
    let mut m = star(2);
    converge(&mut m, 5 * SEC);
    let r = raw_peer(&mut m, 0, "odd", 9301);
    let frames: [&[u8]; 6] = [
        b"P2PX/",
        b"P2PX/NoCaps\nx",
        b"P2PX/swarm\nhave",
        b"P2PX/caps\n\xff\xfe",
        b"P2PX/caps\nswarm/1",
        b"P2PX/caps\ncaps/1",
    ];
    for f in frames {
        let mut wire = format!("BYTES:{}\n", f.len()).into_bytes();
        wire.extend_from_slice(f);
        m.raw_send(r, &wire);
    }
    m.raw_send(r, b"still here\n");
    m.run_for(SEC);
    let ignored: Vec<&String> = m
        .events(0)
        .filter_map(|e| match e {
            Event::ExtensionIgnored { why, .. } => Some(why),
            _ => None,
        })
        .collect();
    // The empty and bad tags, the unannounced swarm frame, the non-UTF-8
    // caps and the second caps frame on the same connection.
    assert_eq!(ignored.len(), 5, "{ignored:?}");
    assert!(ignored[2].contains("not announced"), "{ignored:?}");
    assert!(ignored[4].contains("second caps"), "{ignored:?}");
    let odd = PeerId::parse("odd").unwrap();
    let info = m.nodes[0].node.peers().find(|p| p.id == odd).unwrap();
    assert_eq!(
        info.extensions,
        ["swarm/1"],
        "the first valid caps frame counts"
    );
    assert!(m
        .events(0)
        .any(|e| matches!(e, Event::Chat { text, .. } if text == "still here")));
    assert!(!m
        .events(0)
        .any(|e| matches!(e, Event::Bytes { .. } | Event::ProtocolError { .. })));
}

#[test]
fn reserved_prefixes_are_refused_as_binary_messages() {
    let mut m = star(2);
    converge(&mut m, 5 * SEC);
    let peer = m.nodes[1].node.id().clone();
    for p in [
        "P2PX/caps\n",
        "FILESTART:x|1|00",
        "FILECHUNK:x\n",
        "FILEEND:x|00",
    ] {
        let data = Bytes::from(p.to_owned());
        assert!(matches!(
            m.nodes[0].node.broadcast_bytes(data.clone()),
            Err(CommandError::ReservedPrefix { .. })
        ));
        assert!(matches!(
            m.nodes[0].node.send_bytes(&peer, data),
            Err(CommandError::ReservedPrefix { .. })
        ));
    }
    assert_eq!(
        m.nodes[0]
            .node
            .broadcast_bytes(Bytes::from_static(b"P2PY/fine"))
            .unwrap(),
        1
    );
}

#[test]
fn tags_of_up_to_32_lowercase_letters_digits_and_dashes_are_read() {
    let mut m = star(2);
    converge(&mut m, 5 * SEC);
    let r = raw_peer(&mut m, 0, "tagger", 9302);
    let longest = "a".repeat(32);
    let too_long = "a".repeat(33);
    let tags = [longest.as_str(), "x-2", too_long.as_str()];
    for tag in tags {
        let f = format!("P2PX/{tag}\nbody");
        m.raw_send(r, format!("BYTES:{}\n{f}", f.len()).as_bytes());
    }
    m.run_for(SEC);
    let ignored: Vec<&String> = m
        .events(0)
        .filter_map(|e| match e {
            Event::ExtensionIgnored { why, .. } => Some(why),
            _ => None,
        })
        .collect();
    assert_eq!(
        ignored,
        [
            &format!("extension {longest:?} was not announced"),
            &"extension \"x-2\" was not announced".to_owned(),
            &"no tag line".to_owned(),
        ]
    );
}

#[test]
fn a_caps_body_of_exactly_1024_bytes_is_read() {
    let mut m = star(2);
    converge(&mut m, 5 * SEC);
    let r = raw_peer(&mut m, 0, "padded", 9303);
    for pad in [1025, 1024] {
        let body = format!("{:<pad$}", "swarm/1");
        assert_eq!(body.len(), pad);
        let f = format!("P2PX/caps\n{body}");
        m.raw_send(r, format!("BYTES:{}\n{f}", f.len()).as_bytes());
    }
    m.run_for(SEC);
    let ignored: Vec<&String> = m
        .events(0)
        .filter_map(|e| match e {
            Event::ExtensionIgnored { why, .. } => Some(why),
            _ => None,
        })
        .collect();
    assert_eq!(ignored, [&"caps body over 1024 bytes".to_owned()]);
    let padded = PeerId::parse("padded").unwrap();
    let info = m.nodes[0].node.peers().find(|p| p.id == padded).unwrap();
    assert_eq!(info.extensions, ["swarm/1"]);
}

#[test]
fn caps_names_may_hold_digits_and_dashes_and_versions_only_up_to_nine_digits() {
    let mut m = star(2);
    converge(&mut m, 5 * SEC);
    let r = raw_peer(&mut m, 0, "caps-peer", 9304);
    let f = "P2PX/caps\nmy-ext2/3 plus/+5 long/0000000001 nine/000000009";
    m.raw_send(r, format!("BYTES:{}\n{f}", f.len()).as_bytes());
    m.run_for(SEC);
    let id = PeerId::parse("caps-peer").unwrap();
    let info = m.nodes[0].node.peers().find(|p| p.id == id).unwrap();
    assert_eq!(info.extensions, ["my-ext2/3", "nine/9"]);
}

#[test]
fn a_peer_that_comes_back_has_announced_nothing_until_its_new_caps_frame() {
    let mut m = star(2);
    converge(&mut m, 5 * SEC);
    let id = PeerId::parse("comeback").unwrap();
    let extensions = |m: &super::util::Mesh| {
        m.nodes[0]
            .node
            .peers()
            .find(|p| p.id == id)
            .map(|p| p.extensions)
    };
    let r = raw_peer(&mut m, 0, "comeback", 9305);
    let f = "P2PX/caps\nswarm/1";
    m.raw_send(r, format!("BYTES:{}\n{f}", f.len()).as_bytes());
    m.run_for(SEC);
    assert_eq!(extensions(&m), Some(vec!["swarm/1".to_owned()]));
    m.raw_close(r);
    m.run_for(SEC);
    assert_eq!(extensions(&m), None);
    raw_peer(&mut m, 0, "comeback", 9305);
    m.run_for(SEC);
    assert_eq!(extensions(&m), Some(vec![]));
}

#[test]
fn a_node_that_shuts_down_is_seen_leaving_within_one_trip() {
    let mut m = star(3);
    converge(&mut m, 5 * SEC);
    m.run_for(SEC);
    let r = raw_peer(&mut m, 2, "reference", 9301);
    m.run_for(SEC);
    let before = m.raws[r].received.len();
    let now = m.now;
    m.nodes[2].node.shutdown(now);
    // One way is 5 ms in this harness: the goodbye is there in one trip,
    // long before any timeout.
    m.run_for(std::time::Duration::from_millis(20));
    let gone = m.nodes[2].node.id().clone();
    for i in 0..2 {
        let left: Vec<_> = m
            .events(i)
            .filter_map(|e| match e {
                Event::PeerDisconnected { peer, reason, .. } if *peer == gone => Some(reason),
                _ => None,
            })
            .collect();
        assert_eq!(left, [&crate::DisconnectReason::Left], "node {i}");
        assert!(m.nodes[i].node.peers().all(|p| p.id != gone), "node {i}");
    }
    // The reference node gets nothing new: no goodbye, only the close.
    let after = bytes_frames(&m.raws[r].received[..]);
    assert_eq!(after.len(), 1, "{after:?}");
    assert!(m.raws[r].received.len() >= before);
}

#[test]
fn a_goodbye_with_a_body_still_ends_that_peer_and_only_that_peer() {
    let mut m = star(2);
    converge(&mut m, 5 * SEC);
    let r = raw_peer(&mut m, 0, "ours", 9302);
    // A peer that says goodbye with a body (reserved) leaves all the same.
    m.raw_send(r, b"BYTES:14\nP2PX/leave\nlater");
    m.run_for(SEC);
    let ours = PeerId::parse("ours").unwrap();
    assert!(m.nodes[0].node.peers().all(|p| p.id != ours));
    let reasons: Vec<_> = m
        .events(0)
        .filter_map(|e| match e {
            Event::PeerDisconnected { peer, reason, .. } if *peer == ours => Some(reason.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(reasons, [crate::DisconnectReason::Left]);
    // The other peer is untouched.
    assert_eq!(m.nodes[0].node.peer_count(), 1);
}
