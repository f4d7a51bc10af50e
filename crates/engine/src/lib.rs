//! berth's engine: containers from images. `containers` walks a
//! container's life (create, start through the monitor, stop, kill, remove,
//! clean up, reconcile); `records` is the crash-safe state store; `spec`
//! makes the OCI spec (a pure function); `rootfs` mounts the overlay;
//! `config` holds the stored options and their parsers; `user` resolves
//! users in the image; `paths` says where things live.

pub mod config;
pub mod containers;
pub mod error;
pub mod exec;
pub mod files;
pub mod paths;
pub mod records;
pub mod rootfs;
pub mod spec;
pub mod system;
pub mod user;

pub use containers::{Engine, Session, Started};
pub use error::{Error, Result};
