//! The command-line programs of the p2p mesh: `p2p-node` (a peer for people
//! and scripts) and `p2p-sim` (scenario runs by seed). This library holds the
//! parts of `p2p-node` that are worth testing without a process: argument
//! parsing, the interactive command language, the output formats, the
//! prompt on a terminal and private mode's key files.

#![warn(missing_docs)]

pub mod args;
pub mod command;
pub mod identity;
pub mod output;
pub mod prompt;
