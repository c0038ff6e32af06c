//! Kiln's worker daemon. It connects out to the server (render hosts need no
//! inbound port), registers its host, runs the frames it is given as real
//! processes and reports how they ended.
//!
//! `session` is the protocol as a pure state machine; `daemon` does the IO;
//! `runner` owns the frame processes; `host` and `procfs` read the machine.

pub mod cgroup;
mod daemon;
mod logship;
pub mod session;

pub mod host;
pub mod procfs;
pub mod runner;
pub mod trim;
pub mod users;

pub use daemon::{run, WorkerConfig};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{0}")]
    Io(#[from] std::io::Error),
}
