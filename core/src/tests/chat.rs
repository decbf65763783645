//! The chat and bytes component at its limits: the longest chat line and
//! the largest binary message a node sends are the largest its peers take.

use bytes::Bytes;

use super::util::Mesh;
use super::{converge, SEC};
use crate::{CommandError, Event};

/// Two nodes with `max_line_len` 200 and `max_bytes_per_message` 1000,
/// connected.
fn small_pair() -> Mesh {
    let mut m = Mesh::new(2, |_, c| {
        c.connections.max_line_len = 200;
        c.connections.max_bytes_per_message = 1000;
    });
    m.bootstrap(1, 0);
    converge(&mut m, 5 * SEC);
    m
}

#[test]
fn a_chat_line_of_exactly_the_line_limit_is_sent_and_arrives() {
    let mut m = small_pair();
    let longest = "x".repeat(200);
    assert_eq!(m.nodes[0].node.broadcast_chat(&longest), Ok(1));
    let too_long = "x".repeat(201);
    assert!(matches!(
        m.nodes[0].node.broadcast_chat(&too_long),
        Err(CommandError::InvalidChat { .. })
    ));
    m.run_for(SEC);
    let got: Vec<usize> = m
        .events(1)
        .filter_map(|e| match e {
            Event::Chat { text, .. } => Some(text.len()),
            _ => None,
        })
        .collect();
    assert_eq!(got, [200]);
}

#[test]
fn a_binary_message_of_exactly_the_size_limit_is_sent_and_arrives() {
    let mut m = small_pair();
    let largest = Bytes::from(vec![7u8; 1000]);
    assert_eq!(m.nodes[0].node.broadcast_bytes(largest.clone()), Ok(1));
    assert_eq!(
        m.nodes[0]
            .node
            .broadcast_bytes(Bytes::from(vec![7u8; 1001])),
        Err(CommandError::TooLarge {
            len: 1001,
            limit: 1000
        })
    );
    m.run_for(SEC);
    let got: Vec<&Bytes> = m
        .events(1)
        .filter_map(|e| match e {
            Event::Bytes { data, .. } => Some(data),
            _ => None,
        })
        .collect();
    assert_eq!(got, [&largest]);
}
