//! Addresses heard on the LAN (`Input::LanPeer`): the same dial policy as
//! `PEERS`, our own announcement recognised, established peers not dialed.

use super::util::{addr_of, Mesh};
use super::SEC;
use crate::Input;

fn hear(m: &mut Mesh, i: usize, j: usize, with_id: bool) {
    let now = m.now;
    let peer = with_id.then(|| m.nodes[j].node.id().to_string());
    m.nodes[i].node.handle_input(
        now,
        Input::LanPeer {
            addr: addr_of(j),
            peer,
        },
    );
    m.flush();
}

#[test]
fn nodes_with_no_bootstrap_mesh_from_what_they_hear_on_the_lan() {
    let mut m = Mesh::new(3, |_, _| {});
    for i in 0..3 {
        for j in 0..3 {
            if i != j {
                hear(&mut m, i, j, true);
            }
        }
    }
    assert!(m.run_until(5 * SEC, |m| m.full_mesh()).is_some());
    // Both ends of each pair heard the other: the merge rule leaves one
    // connection per pair.
    for i in 0..3 {
        assert_eq!(m.nodes[i].node.peer_count(), 2);
    }
}

#[test]
fn our_own_announcement_and_established_peers_are_not_dialed() {
    let mut m = Mesh::new(2, |_, _| {});
    hear(&mut m, 0, 0, true);
    m.run_for(SEC);
    assert_eq!(m.dials_to(0, 0), 0, "our own announcement");
    m.bootstrap(1, 0);
    assert!(m.run_until(5 * SEC, |m| m.full_mesh()).is_some());
    let dials = m.dials_to(0, 1);
    hear(&mut m, 0, 1, true);
    m.run_for(SEC);
    assert_eq!(m.dials_to(0, 1), dials, "an established peer");
}

#[test]
fn an_announcement_without_an_id_or_with_junk_is_handled_like_a_peers_entry() {
    let mut m = Mesh::new(2, |_, _| {});
    hear(&mut m, 0, 1, false);
    assert!(m.run_until(5 * SEC, |m| m.full_mesh()).is_some());
    let now = m.now;
    for (addr, peer) in [("not an address", None), ("127.0.0.1:7001", Some("BYTES"))] {
        m.nodes[0].node.handle_input(
            now,
            Input::LanPeer {
                addr: addr.into(),
                peer: peer.map(Into::into),
            },
        );
    }
    m.run_for(SEC);
    assert_eq!(m.nodes[0].node.peer_count(), 1);
}
