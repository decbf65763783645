//! Deterministic simulator of whole p2p meshes (work in progress).
