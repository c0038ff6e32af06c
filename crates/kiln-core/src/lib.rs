//! Kiln's domain: what a job, layer, frame and host are, how a submitted spec
//! becomes a validated job, how frames move through their states, and how the
//! scheduler turns a farm snapshot into a plan.
//!
//! Nothing in this crate does IO, reads a clock or allocates ids on its own:
//! time and ids are inputs, so every transition is deterministic and testable.

pub mod auth;
pub mod error;
pub mod event;
pub mod farm;
pub mod frameset;
pub mod link;
pub mod model;
pub mod output;
pub mod sched;
pub mod series;
pub mod size;
pub mod spec;
pub mod structure;
pub mod tokens;
pub mod view;
pub mod webhook;

pub use error::{Error, Result};
