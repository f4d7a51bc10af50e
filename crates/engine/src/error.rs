//! Engine errors: each names the object and the operation. They carry no
//! shell's wording: what a user types next (`berth ps -a`) and the exit
//! code (or, later, the HTTP status) are chosen by the caller from
//! [`Error::kind`] and the variant's fields.

use berth_db::rusqlite;

/// What kind of failure an error is: what a caller decides by (the CLI's
/// exit codes, a REST API's status codes).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    /// The named container or volume does not exist.
    NotFound,
    /// The request conflicts with the object's state: a name in use, a
    /// container running or not running, a volume in use, a file in the way.
    Conflict,
    /// A bad option value or argument.
    InvalidArgument,
    /// The image's config cannot be used.
    InvalidImage,
    /// The runtime could not start the container's or exec's command: it
    /// is not found.
    CommandNotFound,
    /// The runtime could not start the command: it cannot be executed
    /// (permission denied, a directory).
    CommandNotExecutable,
    /// The OCI runtime or the container's monitor refused or failed.
    Runtime,
    /// The image store failed (its error, the source, says how).
    Store,
    /// The host failed the engine: I/O, the state database, the seccomp
    /// compiler.
    System,
}

/// What was asked of a container that is not running.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Operation {
    Exec,
    Attach,
}

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
    #[error("no such container: {0}")]
    NoSuchContainer(String),
    #[error("no such volume: {0}")]
    NoSuchVolume(String),
    #[error("no such pod: {0}")]
    NoSuchPod(String),
    /// Another pod has the name.
    #[error("the name {0:?} is already in use by another pod")]
    PodNameInUse(String),
    /// Removing a pod with running containers needs force.
    #[error("pod {pod} has running containers ({})", containers.join(", "))]
    PodRunning {
        pod: String,
        containers: Vec<String>,
    },
    /// A pod verb failed on some of its containers (one line each).
    #[error("pod {pod}: {verb}: {msg}")]
    PodFailed {
        pod: String,
        verb: String,
        msg: String,
    },
    /// `op` needs the container running.
    #[error("container {container} is not running")]
    NotRunning { container: String, op: Operation },
    /// Removing a running container needs force.
    #[error("container {0} is running")]
    Running(String),
    /// Another container has the name.
    #[error("the name {0:?} is already in use by another container")]
    NameInUse(String),
    /// A volume or state conflict the user can resolve.
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
    /// The container did not start: the runtime's message (its kind says
    /// whether the command was not found or not executable).
    #[error("start container {container}: {msg}")]
    StartFailed { container: String, msg: String },
    /// A CDI device that cannot be given (its name, or its spec file).
    #[error(transparent)]
    Cdi(#[from] crate::cdi::Error),
    /// A network, an address, a published port, or the host's network
    /// setup.
    #[error(transparent)]
    Network(berth_network::Error),
}

impl Error {
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::Option { .. } => ErrorKind::InvalidArgument,
            // A profile given with --security-opt that does not validate
            // names its field; the compiler's own failure is the host's.
            Error::Seccomp(berth_seccomp::Error::Invalid { .. }) => ErrorKind::InvalidArgument,
            Error::Seccomp(_) | Error::Io { .. } | Error::Db { .. } => ErrorKind::System,
            Error::Image { .. } => ErrorKind::InvalidImage,
            Error::Store(_) => ErrorKind::Store,
            Error::NoSuchContainer(_) | Error::NoSuchVolume(_) | Error::NoSuchPod(_) => {
                ErrorKind::NotFound
            }
            Error::PodNameInUse(_) | Error::PodRunning { .. } => ErrorKind::Conflict,
            Error::PodFailed { .. } => ErrorKind::Runtime,
            Error::NotRunning { .. }
            | Error::Running(_)
            | Error::NameInUse(_)
            | Error::Conflict(_) => ErrorKind::Conflict,
            Error::Runtime(_) => ErrorKind::Runtime,
            Error::StartFailed { msg, .. } => crate::exec::start_failure_kind(msg),
            Error::Network(e) => {
                use berth_network::Error as N;
                match e {
                    N::Invalid(_) => ErrorKind::InvalidArgument,
                    N::Conflict(_) | N::Exhausted(_) => ErrorKind::Conflict,
                    N::NotFound(_) => ErrorKind::NotFound,
                    N::Io { .. } | N::Netlink { .. } | N::Nft { .. } | N::Db(_) => {
                        ErrorKind::System
                    }
                }
            }
            Error::Cdi(e) => {
                use crate::cdi::Error as C;
                match e {
                    C::Spec { .. } | C::Field { .. } | C::Dir { .. } | C::Device { .. } => {
                        ErrorKind::System
                    }
                    C::Name { .. } | C::Unknown { .. } | C::Conflict { .. } | C::Gpus { .. } => {
                        ErrorKind::InvalidArgument
                    }
                }
            }
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

#[cfg(test)]
mod tests {
    use super::{Error, ErrorKind, Operation};

    fn samples() -> Vec<(Error, ErrorKind)> {
        let io = std::io::Error::from_raw_os_error(libc::ENOENT);
        vec![
            (
                super::option("--cpus", "-1 is negative"),
                ErrorKind::InvalidArgument,
            ),
            (
                Error::Image {
                    field: "Env".into(),
                    msg: "not a list of strings".into(),
                },
                ErrorKind::InvalidImage,
            ),
            (super::io("open /x")(io), ErrorKind::System),
            (
                Error::Seccomp(berth_seccomp::Error::Invalid {
                    field: "linux.seccomp.syscalls[0]".into(),
                    msg: "no names".into(),
                }),
                ErrorKind::InvalidArgument,
            ),
            (
                Error::Seccomp(berth_seccomp::Error::Compile {
                    op: "load".into(),
                    msg: "EINVAL".into(),
                }),
                ErrorKind::System,
            ),
            (
                Error::Store(berth_image::Error::UnknownImage("x".into())),
                ErrorKind::Store,
            ),
            (Error::NoSuchContainer("web".into()), ErrorKind::NotFound),
            (Error::NoSuchVolume("data".into()), ErrorKind::NotFound),
            (
                Error::from(crate::cdi::Error::Unknown {
                    name: "example.com/dev=x".into(),
                    msg: "the CDI specs provide example.com/dev=y".into(),
                }),
                ErrorKind::InvalidArgument,
            ),
            (
                Error::from(crate::cdi::Error::Gpus {
                    value: "all".into(),
                    msg: "no CDI spec provides nvidia.com/gpu devices".into(),
                }),
                ErrorKind::InvalidArgument,
            ),
            (
                Error::from(crate::cdi::Error::Spec {
                    file: "/etc/cdi/x.json".into(),
                    msg: "not JSON".into(),
                }),
                ErrorKind::System,
            ),
            (
                Error::NotRunning {
                    container: "web".into(),
                    op: Operation::Exec,
                },
                ErrorKind::Conflict,
            ),
            (Error::Running("web".into()), ErrorKind::Conflict),
            (Error::NameInUse("web".into()), ErrorKind::Conflict),
            (
                Error::Conflict("volume v is in use".into()),
                ErrorKind::Conflict,
            ),
            (
                super::db("read")(super::rusqlite::Error::InvalidQuery),
                ErrorKind::System,
            ),
            (Error::Runtime("runc: exit 1".into()), ErrorKind::Runtime),
            (
                Error::StartFailed {
                    container: "web".into(),
                    msg: "exec: \"nope\": executable file not found in $PATH".into(),
                },
                ErrorKind::CommandNotFound,
            ),
            (
                Error::StartFailed {
                    container: "web".into(),
                    msg: "exec /etc: permission denied".into(),
                },
                ErrorKind::CommandNotExecutable,
            ),
        ]
    }

    #[test]
    fn every_error_has_its_kind() {
        for (e, kind) in samples() {
            assert_eq!(e.kind(), kind, "{e}");
        }
    }

    /// The words of a shell (its commands, its exit codes) are the shell's:
    /// the CLI adds them, a REST API would not.
    #[test]
    fn messages_name_the_object_and_no_cli_command() {
        for (e, _) in samples() {
            let m = e.to_string();
            assert!(!m.contains("`berth"), "{m}");
        }
        assert_eq!(
            Error::NoSuchContainer("web".into()).to_string(),
            "no such container: web"
        );
        assert_eq!(
            Error::NameInUse("web".into()).to_string(),
            "the name \"web\" is already in use by another container"
        );
        assert_eq!(
            Error::NotRunning {
                container: "web".into(),
                op: Operation::Attach
            }
            .to_string(),
            "container web is not running"
        );
    }

    #[test]
    fn kinds_serialise_as_snake_case_names() {
        let s = serde_json::to_string(&ErrorKind::CommandNotFound).unwrap();
        assert_eq!(s, "\"command_not_found\"");
        let k: ErrorKind = serde_json::from_str("\"not_found\"").unwrap();
        assert_eq!(k, ErrorKind::NotFound);
    }
}
