//! The runtime's errors. Each names the object and the operation, and where
//! the user can act, what to do.

use std::fmt::Display;
use std::io;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("container id {id:?} is not valid: {reason}")]
    InvalidId { id: String, reason: &'static str },
    #[error("container {0:?} already exists (delete it first, or choose another id)")]
    Exists(String),
    #[error("container {0:?} does not exist")]
    NotFound(String),
    /// The container is not in a state the operation needs. The wording is
    /// runc's: callers match it (containerd's shim takes "container not
    /// running" from `kill` to mean the process is already gone).
    #[error("{}", bad_state(.id, .op, .status))]
    BadState {
        id: String,
        op: &'static str,
        status: &'static str,
    },
    /// A field of config.json is malformed or not supported.
    #[error("config.json: {field}: {msg}")]
    Config { field: String, msg: String },
    // The cause is part of the message and deliberately not a `source`:
    // printing the chain would repeat it.
    #[error("{op}: {cause}")]
    Io { op: String, cause: io::Error },
    #[error(transparent)]
    Cgroup(#[from] berth_cgroups::Error),
    /// Reported by the container's init process while it set itself up.
    #[error("container {id}: {msg}")]
    Init { id: String, msg: String },
    #[error("{kind} hook #{index} ({path}): {msg}")]
    Hook {
        kind: &'static str,
        index: usize,
        path: String,
        msg: String,
    },
    /// The state file is unreadable: cut by a power loss on a disk-backed
    /// state root (state files are not fsynced), or edited by hand.
    #[error("container {id}: its state file {file} is corrupt ({msg}); `delete --force {id}` removes what is left of it")]
    Corrupt {
        id: String,
        file: String,
        msg: String,
    },
    #[error("{0}")]
    Usage(String),
}

pub type Result<T> = std::result::Result<T, Error>;

fn bad_state(id: &str, op: &str, status: &str) -> String {
    match (op, status) {
        ("start", "stopped") => {
            format!("container {id}: cannot start a container that has stopped")
        }
        ("start", "running") => {
            format!("container {id}: cannot start an already running container")
        }
        ("start", s) => format!("container {id}: cannot start a container in the {s} state"),
        ("resume", _) => format!("container {id}: container not paused (it is {status})"),
        ("delete", s) => format!("cannot delete container {id} that is not stopped: {s}"),
        ("exec into", "paused") => format!(
            "container {id}: cannot exec in a paused container (use --ignore-paused to override)"
        ),
        ("exec into", s) => format!("container {id}: cannot exec in a {s} container"),
        (op, s) => format!("container {id}: cannot {op} it: container not running (it is {s})"),
    }
}

/// Builds a config error for `field`.
pub(crate) fn config(field: impl Into<String>, msg: impl Into<String>) -> Error {
    Error::Config {
        field: field.into(),
        msg: msg.into(),
    }
}

/// Adds the operation to an `io::Error`.
pub(crate) trait Context<T> {
    fn ctx(self, op: impl Display) -> Result<T>;
    fn with_ctx<F: FnOnce() -> String>(self, f: F) -> Result<T>;
}

impl<T> Context<T> for io::Result<T> {
    fn ctx(self, op: impl Display) -> Result<T> {
        self.map_err(|cause| Error::Io {
            op: op.to_string(),
            cause,
        })
    }
    fn with_ctx<F: FnOnce() -> String>(self, f: F) -> Result<T> {
        self.map_err(|cause| Error::Io { op: f(), cause })
    }
}

impl Error {
    /// True when the error means "no such container".
    pub fn is_not_found(&self) -> bool {
        matches!(self, Error::NotFound(_))
    }
}
