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
/// far already ends with.
pub fn text(e: &anyhow::Error) -> String {
    let mut out = e.to_string();
    for cause in e.chain().skip(1) {
        let c = cause.to_string();
        if !out.ends_with(&c) {
            out.push_str(": ");
            out.push_str(&c);
        }
    }
    out
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
