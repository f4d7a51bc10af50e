//! berth-dns: the DNS responder of berth's bridge networks.
//!
//! `berth-dns --dir DIR [--daemon]`: serves the networks described by
//! DIR/*.json (see `berth_dns::config`); SIGHUP reloads them, SIGTERM or
//! SIGINT exits 0. Holds an flock on DIR/berth-dns.pid while alive and
//! writes its pid there once its sockets are bound. `--daemon` (used by the
//! engine): forks, the first process exits at once, the second runs in a
//! new session and, once it serves, writes `ready` to its stdout and
//! closes it (the engine waits on that pipe rather than polling the pid
//! file). Logs one line per event to stderr.

use berth_dns::control::PID_FILE;
use berth_dns::server::{self, log};
use std::fs::OpenOptions;
use std::io::{self, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::PathBuf;
use std::time::{Duration, Instant};

const USAGE: &str = "usage: berth-dns --dir DIR [--daemon]";

fn main() {
    std::process::exit(run());
}

fn run() -> i32 {
    let mut dir: Option<PathBuf> = None;
    let mut daemon = false;
    let mut args = std::env::args_os().skip(1);
    while let Some(a) = args.next() {
        match a.to_str() {
            Some("--dir") => dir = args.next().map(PathBuf::from),
            Some("--daemon") => daemon = true,
            Some("--help" | "-h") => {
                println!("{USAGE}");
                return 0;
            }
            Some("--version") => {
                println!("berth-dns {}", env!("CARGO_PKG_VERSION"));
                return 0;
            }
            _ => {
                eprintln!("berth-dns: unknown argument {a:?}\n{USAGE}");
                return 2;
            }
        }
    }
    let Some(mut dir) = dir else {
        eprintln!("berth-dns: --dir is required\n{USAGE}");
        return 2;
    };
    if daemon {
        // Detached for good: no descriptor of the caller beyond stdio (an
        // engine lock fd leaked without O_CLOEXEC would be held forever),
        // no working directory pinned (the directory is made absolute).
        // SAFETY: close_range on descriptors this process does not use.
        unsafe { libc::syscall(libc::SYS_close_range, 3u32, u32::MAX, 0u32) };
        dir = match std::fs::canonicalize(&dir) {
            Ok(d) => d,
            Err(e) => {
                log(&format!("the DNS directory {}: {e}", dir.display()));
                return 1;
            }
        };
        let _ = std::env::set_current_dir("/");
        // SAFETY: single-threaded here (nothing has started a thread).
        match unsafe { libc::fork() } {
            -1 => {
                log(&format!("fork: {}", io::Error::last_os_error()));
                return 1;
            }
            0 => {}
            // SAFETY: the parent leaves at once, without running destructors.
            _ => unsafe { libc::_exit(0) },
        }
        // SAFETY: plain syscall; the child of a fork is never a group leader.
        unsafe { libc::setsid() };
    }
    match serve(&dir, daemon) {
        Ok(()) => 0,
        Err(e) => {
            log(&format!("{e}"));
            1
        }
    }
}

fn serve(dir: &std::path::Path, daemon: bool) -> io::Result<()> {
    // First: a SIGHUP sent while we start is kept for the loop, not fatal.
    server::block_signals()?;
    // SAFETY: the name is a NUL-terminated string; PR_SET_NAME copies it.
    unsafe { libc::prctl(libc::PR_SET_NAME, c"berth-dns".as_ptr()) };
    let path = dir.join(PID_FILE);
    let pid_file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .custom_flags(libc::O_CLOEXEC)
        .open(&path)
        .map_err(|e| {
            io::Error::new(
                e.kind(),
                format!("open the pid file {}: {e}", path.display()),
            )
        })?;
    // A prober holds a shared lock for an instant: try for a while.
    let until = Instant::now() + Duration::from_millis(100);
    loop {
        // SAFETY: flock on a descriptor we own.
        if unsafe { libc::flock(pid_file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } == 0 {
            break;
        }
        if Instant::now() >= until {
            log(&format!(
                "another responder holds {}: exiting",
                path.display()
            ));
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    // Empty while starting: the pid appears once the sockets are bound.
    pid_file.set_len(0)?;
    let ready = || {
        pid_file.write_all_at(format!("{}\n", std::process::id()).as_bytes(), 0)?;
        log(&format!("ready, pid file {}", path.display()));
        if daemon {
            notify_ready();
        }
        Ok(())
    };
    let r = server::serve(dir, ready);
    // Leaving: no stale pid behind (the lock goes with the process).
    let _ = pid_file.set_len(0);
    let _ = io::stderr().flush();
    r
}

/// Tells the engine that started us (the read end of the pipe that is our
/// stdout) that we serve, then lets go of the pipe: stdout becomes
/// /dev/null, so the engine sees EOF too. Best effort: an engine that gave
/// up waiting has closed its end (EPIPE is ignored: SIGPIPE is ignored by
/// Rust's runtime).
fn notify_ready() {
    let _ = io::stdout().write_all(b"ready\n");
    let _ = io::stdout().flush();
    if let Ok(null) = OpenOptions::new().write(true).open("/dev/null") {
        // SAFETY: dup2 onto stdout, which this process owns; `null` stays
        // valid for the call.
        unsafe { libc::dup2(null.as_raw_fd(), 1) };
    }
}
