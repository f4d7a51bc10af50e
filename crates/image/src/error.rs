//! Errors of the image crate. Every message names the object and the
//! operation, and says what to do when the user can act.

use berth_db::rusqlite;
use std::fmt::Display;
use std::io;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("invalid digest {0:?}: {1}")]
    BadDigest(String, String),
    #[error("invalid image reference {0:?}: {1}")]
    BadReference(String, String),
    #[error("{op}: {cause}")]
    Io {
        op: String,
        #[source]
        cause: io::Error,
    },
    /// The registry could not be reached or the connection broke.
    #[error("{registry}: {msg}")]
    Network { registry: String, msg: String },
    /// 401/403 after authenticating (or with no credentials to offer).
    #[error("{registry}: access to {what} denied ({msg}); log in with `berth login {registry}` if the image is private")]
    Unauthorized {
        registry: String,
        what: String,
        msg: String,
    },
    /// The image (tag, digest or repository) does not exist.
    #[error("{0}: no such image in the registry (check the name and tag)")]
    NotFound(String),
    /// The registry answered something that breaks the distribution spec.
    #[error("{what}: {msg}")]
    Protocol { what: String, msg: String },
    #[error("{image}: no image for platform {want} (the image has: {have})")]
    Platform {
        image: String,
        want: String,
        have: String,
    },
    /// Content whose digest or size is not what was promised.
    #[error("{what}: content does not match its digest (expected {want}, got {got}); the download was corrupted or tampered with")]
    DigestMismatch {
        what: String,
        want: String,
        got: String,
    },
    /// A layer archive that is malformed or hostile.
    #[error("layer {layer}: {msg}")]
    Layer { layer: String, msg: String },
    /// The tar stream itself is malformed.
    #[error("malformed tar archive: {0}")]
    Tar(String),
    #[error("image store {op}: {cause}")]
    Db {
        op: String,
        #[source]
        cause: rusqlite::Error,
    },
    #[error("{0}: no such image in the local store (pull it first)")]
    UnknownImage(String),
    #[error("{0}")]
    InUse(String),
    #[error("{0}")]
    Usage(String),
}

impl Error {
    /// The process exit code for this error class (documented in the
    /// `berth` man page): 2 usage, 3 not found, 4 unauthorized, 5 network.
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::BadReference(..) | Error::BadDigest(..) | Error::Usage(_) => 2,
            Error::NotFound(_) | Error::UnknownImage(_) | Error::Platform { .. } => 3,
            Error::Unauthorized { .. } => 4,
            Error::Network { .. } => 5,
            _ => 1,
        }
    }
}

pub type Result<T> = std::result::Result<T, Error>;

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

/// The database's errors, worded as the store's own.
impl From<berth_db::Error> for Error {
    fn from(e: berth_db::Error) -> Error {
        match e {
            berth_db::Error::Sqlite { op, cause } => Error::Db { op, cause },
            berth_db::Error::Io { op, cause } => Error::Io { op, cause },
        }
    }
}

impl<T> Context<T> for rusqlite::Result<T> {
    fn ctx(self, op: impl Display) -> Result<T> {
        self.map_err(|cause| Error::Db {
            op: op.to_string(),
            cause,
        })
    }
    fn with_ctx<F: FnOnce() -> String>(self, f: F) -> Result<T> {
        self.map_err(|cause| Error::Db { op: f(), cause })
    }
}
