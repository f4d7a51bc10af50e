//! berth-runtime: the OCI runtime core.
//!
//! `config.json` + a rootfs in, a running container out. Synchronous and
//! single-threaded by design: the container's processes are forks of the
//! caller (clone3), so no thread may ever be started in a process that uses
//! this crate. The CLI (`berth-runtime`) is a thin layer over [`container`].

pub mod config;
pub mod container;
pub mod error;
pub mod exec;
pub mod features;
pub mod handoff;
pub mod lsm;
pub mod mounts;
pub mod selfprotect;
pub mod spec;
pub mod state;

mod cgwarm;
mod channel;
mod hooks;
mod init;
mod process_attrs;
mod rootfs;
mod tty;

pub use container::{
    create, delete, events, kill, list, parse_signal, pause, pids, resume, run, start, state,
    update, CreateOptions, RunOptions,
};
pub use error::{Error, Result};
pub use exec::{exec, ExecOptions};
pub use state::{OciState, Status};

/// Sizes such as `512m` (for the command line's `update` flags), one
/// parser for the runtime and the engine.
pub use berth_sys::size::parse as parse_size;

/// The runtime-spec version this runtime implements.
pub const OCI_VERSION: &str = config::OCI_VERSION;
