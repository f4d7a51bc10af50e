//! Engine errors: each names the option or image field at fault.

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A bad option value (exit code 2).
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
}

impl Error {
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

pub type Result<T> = std::result::Result<T, Error>;
