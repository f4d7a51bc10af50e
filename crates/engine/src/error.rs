//! Engine errors: each names the object and the operation, and says what the
//! user can do about it.

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A bad option value.
    #[error("{option}: {msg}")]
    Option { option: String, msg: String },
    /// The image's config is unusable.
    #[error("image config: {field}: {msg}")]
    Image { field: String, msg: String },
    #[error("{op}: {cause}")]
    Io {
        op: String,
        #[source]
        cause: std::io::Error,
    },
    #[error(transparent)]
    Seccomp(#[from] berth_seccomp::Error),
    #[error(transparent)]
    Store(#[from] berth_image::Error),
    #[error("no such container: {0} (see `berth ps -a`)")]
    NoSuchContainer(String),
    #[error("no such volume: {0} (see `berth volume ls`)")]
    NoSuchVolume(String),
    /// A name, volume or state conflict the user can resolve.
    #[error("{0}")]
    Conflict(String),
    #[error("container state database: {op}: {cause}")]
    Db {
        op: String,
        #[source]
        cause: rusqlite::Error,
    },
    /// The runtime refused or failed.
    #[error("{0}")]
    Runtime(String),
}

impl Error {
    /// The documented exit codes (README, "Exit codes"): 2 for a bad option
    /// or argument, 1 for everything else; `run`, `create` and `start` map
    /// their own failures to 125 as Docker does.
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::Option { .. } => 2,
            _ => 1,
        }
    }
}

pub(crate) fn option(option: impl Into<String>, msg: impl Into<String>) -> Error {
    Error::Option {
        option: option.into(),
        msg: msg.into(),
    }
}

pub(crate) fn io(op: impl Into<String>) -> impl FnOnce(std::io::Error) -> Error {
    let op = op.into();
    move |cause| Error::Io { op, cause }
}

pub(crate) fn db(op: impl Into<String>) -> impl FnOnce(rusqlite::Error) -> Error {
    let op = op.into();
    move |cause| Error::Db { op, cause }
}

pub type Result<T> = std::result::Result<T, Error>;
