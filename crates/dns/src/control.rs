//! How the engine drives the responder: it writes one file per network into
//! the responder's directory, then calls [`sync`], which reloads the
//! running responder (SIGHUP) or starts one, or stops it when no network
//! has records left.
//!
//! Liveness is the pid file `DIR/berth-dns.pid`: the responder holds an
//! exclusive flock on it for its whole life and writes its pid into it once
//! its sockets are bound (the file is empty while it starts). A responder
//! killed -9 leaves a file no one holds: it is not alive. Two responders
//! started at once (two engines calling `sync`) race for the lock; the
//! loser exits, so exactly one is left.

use crate::config::NetworkFile;
use crate::server;
use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// The responder's pid file (flocked by it while alive).
pub const PID_FILE: &str = "berth-dns.pid";
/// The responder's log (its stderr).
pub const LOG_FILE: &str = "berth-dns.log";
/// The log is rotated (to `berth-dns.log.1`) beyond this size when a
/// responder is started.
pub const LOG_MAX_BYTES: u64 = 1 << 20;
/// How long `sync` waits for a new responder and `stop` for an old one.
pub const WAIT: Duration = Duration::from_secs(2);
/// A responder that has not taken the lock this long after its start is
/// taken for dead (it lost the race to one that has exited since).
const RESPAWN_AFTER: Duration = Duration::from_millis(300);

fn ctx(e: io::Error, what: impl std::fmt::Display) -> io::Error {
    io::Error::new(e.kind(), format!("{what}: {e}"))
}

fn check_stem(stem: &str) -> io::Result<()> {
    if stem.is_empty() || stem.starts_with('.') || stem.contains(['/', '\0']) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("DNS network file name {stem:?}: must be non-empty, without '/' and not start with '.'"),
        ));
    }
    Ok(())
}

fn make_dir(dir: &Path) -> io::Result<()> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|e| {
            ctx(
                e,
                format_args!("create the DNS directory {}", dir.display()),
            )
        })
}

/// Writes (atomically: temp file + rename) DIR/<file_stem>.json; creates DIR (0700) if missing.
pub fn write_network(dir: &Path, file_stem: &str, f: &NetworkFile) -> io::Result<()> {
    check_stem(file_stem)?;
    make_dir(dir)?;
    static SEQ: AtomicU64 = AtomicU64::new(0);
    let path = dir.join(format!("{file_stem}.json"));
    // Not ending in .json: the responder never reads a half-written file.
    let tmp = dir.join(format!(
        ".{file_stem}.{}.{}.tmp",
        std::process::id(),
        SEQ.fetch_add(1, Ordering::Relaxed)
    ));
    let body = serde_json::to_vec_pretty(f).map_err(io::Error::other)?;
    let write = || -> io::Result<()> {
        let mut out = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)?;
        out.write_all(&body)?;
        out.sync_all()?;
        std::fs::rename(&tmp, &path)
    };
    write().map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        ctx(
            e,
            format_args!("write the DNS network file {}", path.display()),
        )
    })
}

/// Removes DIR/<file_stem>.json; a missing file is Ok.
pub fn remove_network(dir: &Path, file_stem: &str) -> io::Result<()> {
    check_stem(file_stem)?;
    let path = dir.join(format!("{file_stem}.json"));
    match std::fs::remove_file(&path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(ctx(
            e,
            format_args!("remove the DNS network file {}", path.display()),
        )),
        _ => Ok(()),
    }
}

fn open_pid_file(dir: &Path) -> Option<File> {
    OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_CLOEXEC)
        .open(dir.join(PID_FILE))
        .ok()
}

/// Whether someone holds the lock on the open pid file.
fn locked(f: &File) -> bool {
    // SAFETY: flock on a descriptor we own.
    if unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_SH | libc::LOCK_NB) } == 0 {
        // SAFETY: as above; drops the probe's shared lock at once.
        unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_UN) };
        return false;
    }
    true
}

/// The pid written in the pid file, if it is complete and names a live
/// berth-dns process (a pid left by a responder killed -9 may belong to
/// another process by now: never signal that one).
fn written_pid(f: &mut File) -> Option<i32> {
    let mut s = String::new();
    f.seek(SeekFrom::Start(0)).ok()?;
    f.take(32).read_to_string(&mut s).ok()?;
    let pid: i32 = s.strip_suffix('\n')?.parse().ok()?;
    if pid <= 0 {
        return None;
    }
    let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).ok()?;
    (comm.trim_end() == "berth-dns").then_some(pid)
}

/// The responder's pid, if alive (holding the pid file's lock) and ready
/// (its sockets bound).
pub fn running(dir: &Path) -> Option<i32> {
    let mut f = open_pid_file(dir)?;
    if !locked(&f) {
        return None;
    }
    let pid = written_pid(&mut f)?;
    // Still the holder (not a responder that exited between the reads).
    locked(&f).then_some(pid)
}

/// Whether a responder holds the lock (ready or still starting).
fn alive(dir: &Path) -> bool {
    open_pid_file(dir).is_some_and(|f| locked(&f))
}

fn has_records(dir: &Path) -> bool {
    match server::read_networks(dir) {
        Ok((files, _)) => files.iter().any(|f| !f.records.is_empty()),
        Err(_) => false,
    }
}

fn log_tail(dir: &Path) -> String {
    let text = std::fs::read_to_string(dir.join(LOG_FILE)).unwrap_or_default();
    let lines: Vec<&str> = text.lines().rev().take(3).collect();
    if lines.is_empty() {
        return String::from("(its log is empty)");
    }
    lines.into_iter().rev().collect::<Vec<_>>().join(" | ")
}

/// Starts the responder detached; true once it reported that it serves
/// (the files as they were at the call), false if it exited without
/// serving (it lost the lock to another responder: the caller goes on with
/// that one) or did not report within the wait.
fn spawn(dir: &Path, program: &Path, deadline: Instant) -> io::Result<bool> {
    let log = dir.join(LOG_FILE);
    if std::fs::metadata(&log).is_ok_and(|m| m.len() > LOG_MAX_BYTES) {
        let mut old = PathBuf::from(&log);
        old.set_extension("log.1");
        let _ = std::fs::rename(&log, old);
    }
    let stderr = OpenOptions::new()
        .append(true)
        .create(true)
        .mode(0o600)
        .custom_flags(libc::O_CLOEXEC)
        .open(&log)
        .map_err(|e| {
            ctx(
                e,
                format_args!("open the DNS responder's log {}", log.display()),
            )
        })?;
    // `--daemon`: the program forks once more and its first process exits
    // at once, so the responder is nobody's child to wait for. Its stdout
    // is a pipe on which it says `ready` once it serves.
    let mut child = Command::new(program)
        .arg("--dir")
        .arg(dir)
        .arg("--daemon")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(stderr)
        .spawn()
        .map_err(|e| {
            ctx(
                e,
                format_args!("start the DNS responder {}", program.display()),
            )
        })?;
    let status = child.wait().map_err(|e| {
        ctx(
            e,
            format_args!("start the DNS responder {}", program.display()),
        )
    })?;
    if !status.success() {
        return Err(io::Error::other(format!(
            "start the DNS responder {}: it exited with {status}: {}",
            program.display(),
            log_tail(dir)
        )));
    }
    let Some(out) = child.stdout.take() else {
        return Ok(false);
    };
    Ok(read_ready(out, deadline))
}

/// Waits (until `deadline`) for `ready` on the responder's stdout pipe.
fn read_ready(mut out: std::process::ChildStdout, deadline: Instant) -> bool {
    let mut got = Vec::new();
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return false;
        }
        let mut pfd = libc::pollfd {
            fd: out.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        let ms = left.as_millis().clamp(1, i32::MAX as u128) as i32;
        // SAFETY: one valid pollfd for the call.
        let n = unsafe { libc::poll(&mut pfd, 1, ms) };
        if n < 0 {
            if io::Error::last_os_error().kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return false;
        }
        if n == 0 {
            continue;
        }
        let mut buf = [0u8; 16];
        match out.read(&mut buf) {
            Ok(0) | Err(_) => return got.starts_with(b"ready"),
            Ok(k) => {
                got.extend_from_slice(&buf[..k]);
                if got.starts_with(b"ready") {
                    return true;
                }
                if got.len() > 64 {
                    return false;
                }
            }
        }
    }
}

fn signal(pid: i32, sig: libc::c_int) -> io::Result<()> {
    // SAFETY: plain syscall; pid was checked to be a berth-dns process.
    if unsafe { libc::kill(pid, sig) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Makes the running responder see the files: SIGHUP it if alive, else
/// start `program --dir DIR` detached and wait (at most 2 s) until it holds
/// the lock and has bound its sockets. Returns once the responder serves
/// the files as they were when `sync` was called (it waits for the reload,
/// see [`server::RELOADS_FILE`]). If DIR holds no network file with
/// records, the responder is told so ([`release`]): it serves no name from
/// then on and exits after [`server::LINGER`] unless records come back.
pub fn sync(dir: &Path, program: &Path) -> io::Result<()> {
    if !has_records(dir) {
        return release(dir);
    }
    sync_records(dir, program)
}

/// [`sync`], but with no records left the responder is stopped at once
/// ([`stop_nowait`]) rather than left to linger: for the removal of the
/// networks themselves.
pub fn sync_or_stop(dir: &Path, program: &Path) -> io::Result<()> {
    if !has_records(dir) {
        return stop_nowait(dir);
    }
    sync_records(dir, program)
}

/// No records left: a SIGHUP (not waited for: the container whose names
/// went is gone already) makes the responder drop every name, close its
/// listeners and linger ([`server::LINGER`]), so that a container started
/// right after reloads it rather than starting another. One still starting
/// may have read the files before they changed: it is waited for (at most
/// 2 s) and told too.
pub fn release(dir: &Path) -> io::Result<()> {
    let Some(pid) = ready_pid(dir, Instant::now() + WAIT, "reload")? else {
        return Ok(());
    };
    match signal(pid, libc::SIGHUP) {
        Err(e) if e.raw_os_error() != Some(libc::ESRCH) => {
            Err(ctx(e, format_args!("reload the DNS responder (pid {pid})")))
        }
        _ => Ok(()),
    }
}

/// The pid of the responder in `dir` once it has written it (None: no
/// responder is alive); one still starting is waited for until `deadline`.
/// `what` names the operation in the timeout's message.
fn ready_pid(dir: &Path, deadline: Instant, what: &str) -> io::Result<Option<i32>> {
    loop {
        if let Some(pid) = running(dir) {
            return Ok(Some(pid));
        }
        if !alive(dir) {
            return Ok(None);
        }
        if Instant::now() >= deadline {
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!(
                    "{what} the DNS responder in {}: it holds its pid file but never wrote its pid",
                    dir.display()
                ),
            ));
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}

fn sync_records(dir: &Path, program: &Path) -> io::Result<()> {
    let deadline = Instant::now() + WAIT;
    let mut spawned: Option<Instant> = None;
    loop {
        if let Some(pid) = running(dir) {
            // Also when we started it: a responder started by someone else
            // at the same time may have read the files before ours.
            // Then wait for a reload that started after this point (so read
            // our files) to complete.
            let Some((started, _)) = server::read_reloads(dir) else {
                return Err(io::Error::other(format!(
                    "reload the DNS responder (pid {pid}): {} is missing or malformed",
                    dir.join(server::RELOADS_FILE).display()
                )));
            };
            match signal(pid, libc::SIGHUP) {
                Err(e) if e.raw_os_error() == Some(libc::ESRCH) && Instant::now() < deadline => {
                    continue
                }
                r => r.map_err(|e| ctx(e, format_args!("reload the DNS responder (pid {pid})")))?,
            }
            loop {
                if server::read_reloads(dir).is_some_and(|(_, done)| done > started) {
                    return Ok(());
                }
                if running(dir) != Some(pid) {
                    break; // it died: start another
                }
                if Instant::now() >= deadline {
                    return Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        format!(
                            "the DNS responder (pid {pid}) did not reload within {} s: {}",
                            WAIT.as_secs(),
                            log_tail(dir)
                        ),
                    ));
                }
                std::thread::sleep(Duration::from_micros(200));
            }
            continue;
        }
        if Instant::now() >= deadline {
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!(
                    "the DNS responder {} did not become ready within {} s: {}",
                    program.display(),
                    WAIT.as_secs(),
                    log_tail(dir)
                ),
            ));
        }
        // None alive (or one starting: wait for it rather than start
        // another). Ours may lose the lock race to one that exits since, or
        // die: start again when none has held the lock for a while.
        let now = Instant::now();
        if !alive(dir) && spawned.is_none_or(|t| now.duration_since(t) > RESPAWN_AFTER) {
            spawned = Some(now);
            // Ours read the files after they were written: nothing more to
            // wait for. Otherwise another one holds the lock (or ours
            // died): the loop reloads that one or starts again.
            if spawn(dir, program, deadline)? {
                return Ok(());
            }
            continue;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// Tells the responder to exit (SIGTERM) if it is alive and serving,
/// without waiting for it: it serves nothing more from the moment it takes
/// the signal, and a [`sync`] meanwhile waits for it to be gone before it
/// starts another (its lock is held until its last descriptor closes). A
/// responder still starting is left to [`stop`]'s wait.
pub fn stop_nowait(dir: &Path) -> io::Result<()> {
    match running(dir) {
        Some(pid) => match signal(pid, libc::SIGTERM) {
            Err(e) if e.raw_os_error() != Some(libc::ESRCH) => {
                Err(ctx(e, format_args!("stop the DNS responder (pid {pid})")))
            }
            _ => Ok(()),
        },
        None if alive(dir) => stop(dir),
        None => Ok(()),
    }
}

/// Stops the responder if alive (SIGTERM, wait for the lock to be released,
/// at most 2 s; then SIGKILL).
pub fn stop(dir: &Path) -> io::Result<()> {
    let deadline = Instant::now() + WAIT;
    // One that is starting becomes ready (or exits) within the wait.
    let Some(pid) = ready_pid(dir, deadline, "stop")? else {
        return Ok(());
    };
    match signal(pid, libc::SIGTERM) {
        Err(e) if e.raw_os_error() != Some(libc::ESRCH) => {
            return Err(ctx(e, format_args!("stop the DNS responder (pid {pid})")));
        }
        _ => {}
    }
    while Instant::now() < deadline {
        if !alive(dir) {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    // Check it is still ours before the harder signal.
    if running(dir) == Some(pid) {
        let _ = signal(pid, libc::SIGKILL);
    }
    let until = Instant::now() + Duration::from_millis(500);
    while Instant::now() < until {
        if !alive(dir) {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    Err(io::Error::new(
        io::ErrorKind::TimedOut,
        format!("stop the DNS responder (pid {pid}): still alive after SIGTERM and SIGKILL"),
    ))
}
