//! What berth prints when things go wrong.
//!
//! An error is printed as its chain of causes, each once: an error whose
//! message already ends with its cause's (the `{op}: {cause}` errors of the
//! engine and the image store, which also return that cause as their
//! source) does not repeat it.
//!
//! Output into a closed pipe (`berth inspect X | grep -q`, `berth
//! completion bash | head`): berth ends quietly, killed by SIGPIPE as `cat`,
//! `ls` or the docker CLI are, instead of panicking (Rust's start-up ignores
//! SIGPIPE, so `println!` panics on EPIPE) or printing an error about it.
//! SIGPIPE itself stays ignored while berth runs: a monitor or runtime that
//! went away must show as an error, not kill berth half-way.

use berth_engine::ErrorKind;
use std::io;

/// True when fd `fd` is a pipe or socket whose reading end is closed.
fn reader_gone(fd: i32) -> bool {
    let mut p = libc::pollfd {
        fd,
        events: 0,
        revents: 0,
    };
    // SAFETY: one valid pollfd; a zero timeout never blocks.
    let n = unsafe { libc::poll(&mut p, 1, 0) };
    n > 0 && p.revents & libc::POLLERR != 0
}

/// Ends the process as SIGPIPE's default action does (status 128+13 to a
/// shell, no message).
fn die_of_sigpipe() -> ! {
    // SAFETY: restores the default action of SIGPIPE and raises it for
    // this thread, which ends the process.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
        libc::raise(libc::SIGPIPE);
    }
    std::process::exit(128 + libc::SIGPIPE)
}

/// Makes a panic while stdout or stderr has no reader (`println!` on
/// EPIPE) end the process as SIGPIPE would; other panics print as before.
pub fn install() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        if reader_gone(1) || reader_gone(2) {
            die_of_sigpipe();
        }
        default(info)
    }));
}

/// For an error at the top: when it is a write into stdout or stderr that
/// lost its reader, ends the process quietly as SIGPIPE would.
pub fn exit_if_output_closed(e: &anyhow::Error) {
    let broken = e.chain().any(|c| {
        c.downcast_ref::<io::Error>()
            .is_some_and(|e| e.kind() == io::ErrorKind::BrokenPipe)
    });
    if broken && (reader_gone(1) || reader_gone(2)) {
        die_of_sigpipe();
    }
}

/// `e` and its causes, joined by ": ", leaving out a cause that the text so
/// far already ends with; an engine error gets berth's advice ([`hint`]).
pub fn text(e: &anyhow::Error) -> String {
    let mut out = String::new();
    for (i, cause) in e.chain().enumerate() {
        let c = cause.to_string();
        if i == 0 {
            out.push_str(&c);
        } else if !out.ends_with(&c) {
            out.push_str(": ");
            out.push_str(&c);
        }
        if let Some(h) = cause.downcast_ref::<berth_engine::Error>().and_then(hint) {
            out.push_str(&h);
        }
    }
    out
}

/// What to type next, after an engine error's own message (the engine
/// names the object and what went wrong; the commands are the CLI's).
pub fn hint(e: &berth_engine::Error) -> Option<String> {
    use berth_engine::Error as E;
    Some(match e {
        E::NoSuchContainer(_) => " (see `berth ps -a`)".into(),
        E::NoSuchVolume(_) => " (see `berth volume ls`)".into(),
        E::NoSuchPod(_) => " (see `berth pod ps`)".into(),
        E::PodRunning { pod, .. } => {
            format!(" (`berth pod stop {pod}`, or `berth pod rm -f {pod}`)")
        }
        E::PodNameInUse(n) => format!("; remove it (`berth pod rm {n}`) or choose another --name"),
        E::NotRunning { container, op } => {
            let attach = match op {
                berth_engine::error::Operation::Attach => " -a",
                berth_engine::error::Operation::Exec => "",
            };
            format!(": start it first (`berth start{attach} {container}`)")
        }
        E::Running(c) => format!(": stop it first (`berth stop {c}`) or remove it with --force"),
        E::NameInUse(n) => format!("; remove it (`berth rm {n}`) or choose another --name"),
        _ => return None,
    })
}

/// The exit code of a command other than `run`, `create` and `start` that
/// failed with an engine error of kind `kind` (README, "Exit codes"): 2 for
/// a bad option or argument, Docker's 127 and 126 for a command the runtime
/// could not start, 1 for everything else.
pub fn exit_code(kind: ErrorKind) -> i32 {
    match kind {
        ErrorKind::InvalidArgument => 2,
        ErrorKind::CommandNotFound => 127,
        ErrorKind::CommandNotExecutable => 126,
        ErrorKind::NotFound
        | ErrorKind::Conflict
        | ErrorKind::InvalidImage
        | ErrorKind::Runtime
        | ErrorKind::Store
        | ErrorKind::System => 1,
    }
}

/// The exit code of `run`, `create` and `start`, and of an `exec` whose
/// command the runtime could not start (as Docker's): 127 when the command
/// is not found, 126 when it cannot be executed, 125 when berth itself
/// failed (bad option, name in use, runtime error, ...).
pub fn run_exit_code(kind: ErrorKind) -> i32 {
    match kind {
        ErrorKind::CommandNotFound => 127,
        ErrorKind::CommandNotExecutable => 126,
        _ => 125,
    }
}

/// Prints `e` as berth prints every error (`berth: ` and [`text`]).
pub fn print_error(e: &anyhow::Error) {
    exit_if_output_closed(e);
    eprintln!("berth: {}", text(e));
}

#[cfg(test)]
mod tests {
    /// As the engine's and the store's `Io` errors.
    #[derive(Debug)]
    struct Op {
        op: String,
        cause: std::io::Error,
    }
    impl std::fmt::Display for Op {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            write!(f, "{}: {}", self.op, self.cause)
        }
    }
    impl std::error::Error for Op {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            Some(&self.cause)
        }
    }

    #[test]
    fn engine_errors_get_berths_advice_once() {
        use berth_engine::Error as E;
        let e = anyhow::Error::new(E::NoSuchContainer("web".into()));
        assert_eq!(
            super::text(&e),
            "no such container: web (see `berth ps -a`)"
        );
        let e = e.context("start container web");
        assert_eq!(
            super::text(&e),
            "start container web: no such container: web (see `berth ps -a`)"
        );
        for (e, want) in [
            (
                E::NoSuchVolume("data".into()),
                "no such volume: data (see `berth volume ls`)",
            ),
            (
                E::NotRunning {
                    container: "web".into(),
                    op: berth_engine::error::Operation::Exec,
                },
                "container web is not running: start it first (`berth start web`)",
            ),
            (
                E::NotRunning {
                    container: "web".into(),
                    op: berth_engine::error::Operation::Attach,
                },
                "container web is not running: start it first (`berth start -a web`)",
            ),
            (
                E::Running("web".into()),
                "container web is running: stop it first (`berth stop web`) or remove it with --force",
            ),
            (
                E::NameInUse("web".into()),
                "the name \"web\" is already in use by another container; remove it (`berth rm web`) or choose another --name",
            ),
            (E::Runtime("runc failed".into()), "runc failed"),
        ] {
            assert_eq!(super::text(&anyhow::Error::new(e)), want);
        }
    }

    #[test]
    fn exit_codes_come_from_the_kind() {
        use berth_engine::ErrorKind as K;
        assert_eq!(super::exit_code(K::InvalidArgument), 2);
        assert_eq!(super::exit_code(K::NotFound), 1);
        assert_eq!(super::exit_code(K::Conflict), 1);
        assert_eq!(super::run_exit_code(K::InvalidArgument), 125);
        assert_eq!(super::run_exit_code(K::NotFound), 125);
        assert_eq!(super::run_exit_code(K::Runtime), 125);
        assert_eq!(super::run_exit_code(K::CommandNotFound), 127);
        assert_eq!(super::run_exit_code(K::CommandNotExecutable), 126);
    }

    #[test]
    fn a_cause_is_printed_once() {
        let io = || std::io::Error::from_raw_os_error(libc::ENOENT);
        let e = anyhow::Error::new(Op {
            op: "open /x".into(),
            cause: io(),
        });
        assert_eq!(super::text(&e), format!("open /x: {}", io()));
        let e = e.context("load image y");
        assert_eq!(super::text(&e), format!("load image y: open /x: {}", io()));
        let e = anyhow::Error::new(io()).context("read z");
        assert_eq!(super::text(&e), format!("read z: {}", io()));
    }
}
