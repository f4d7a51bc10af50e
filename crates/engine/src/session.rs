//! Sessions: the client side of the monitor protocol. A session is the
//! pair of pipes (or the attach socket) to a container's monitor; through
//! it a client starts the container and learns it started ([`Engine::
//! start_session`], with the CLEANED handshake when the start failed),
//! streams its output to the caller's writers and the caller's input in
//! ([`Engine::run_session`]), resizes its terminal and closes its stdin
//! ([`Input`]), and learns how it ended ([`Outcome`]: its exit code and
//! whether the OOM killer ended it, or a detach). Detach keys are parsed
//! and matched here ([`parse_detach_keys`], [`DetachKeys`]) for the
//! clients that match them themselves (a terminal exec).
//!
//! What a session reads and writes are the caller's byte streams, so the
//! CLI (its stdio, in raw mode with a terminal) and a REST API (a hijacked
//! socket) drive it alike; terminal setup, SIGWINCH and the signals a
//! client forwards ([`SignalForwarder`]) stay with the caller.

use crate::containers::Engine;
use crate::error::{io, option, Error, Result};
use crate::records::Record;
use berth_monitor_proto::config::DetachMatch;
use berth_monitor_proto::frame::{self, Decoder};
use std::io::{Read, Write};
use std::os::fd::AsFd;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The pipes to a container's monitor, for the client that started it.
pub struct Session {
    pub to_monitor: std::fs::File,
    pub from_monitor: std::fs::File,
    pub monitor_pid: i32,
    pub(crate) decoder: Decoder,
    /// Output frames that came before the container was reported started
    /// (a fast container writes while the runtime is still returning).
    pub(crate) early: std::collections::VecDeque<(u8, Vec<u8>)>,
    /// The monitor's log, where it says why it ended.
    pub(crate) monitor_log: PathBuf,
    /// The pod infra this start started first and has not seen running
    /// yet ([`Engine::start_session`] waits for it).
    pub(crate) infra: Option<Box<crate::pods::InfraStart>>,
}

/// What a started session saw first.
pub enum Started {
    Pid(i32),
    /// The runtime failed: its message.
    Failed(String),
}

impl Session {
    /// The next frame from the monitor (None: it closed the pipe).
    pub fn next_frame(&mut self) -> Result<Option<(u8, Vec<u8>)>> {
        if let Some(f) = self.early.pop_front() {
            return Ok(Some(f));
        }
        self.read_frame()
    }

    /// After EXIT: waits until the monitor says the runtime has deleted the
    /// container, or ends, for `timeout` at most.
    pub fn wait_deleted(&mut self, timeout: Duration) -> Result<()> {
        let deadline = Instant::now() + timeout;
        while let Some((kind, _)) = self.read_frame_by(Some(deadline))? {
            if kind == frame::DELETED {
                break;
            }
        }
        Ok(())
    }

    /// The next frame, or `None` when the stream ends or `deadline` passes.
    pub(crate) fn next_frame_by(&mut self, deadline: Instant) -> Result<Option<(u8, Vec<u8>)>> {
        self.read_frame_by(Some(deadline))
    }

    fn read_frame(&mut self) -> Result<Option<(u8, Vec<u8>)>> {
        self.read_frame_by(None)
    }

    /// The next frame from the monitor; `None` when the stream ends or the
    /// deadline (if any) passes first.
    fn read_frame_by(&mut self, deadline: Option<Instant>) -> Result<Option<(u8, Vec<u8>)>> {
        let mut buf = [0u8; 65536];
        loop {
            if let Some(f) = self
                .decoder
                .next_frame()
                .map_err(|e| Error::Runtime(format!("the monitor: {e}")))?
            {
                return Ok(Some(f));
            }
            if let Some(deadline) = deadline {
                let left = deadline.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    return Ok(None);
                }
                let ms = left.as_millis().min(i32::MAX as u128) as i32;
                if !matches!(
                    berth_sys::fs::wait_readable(self.from_monitor.as_fd(), ms),
                    Ok(true)
                ) {
                    continue;
                }
            }
            let n = match self.from_monitor.read(&mut buf) {
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(io("read from the container's monitor")(e)),
            };
            if n == 0 {
                return Ok(None);
            }
            self.decoder.feed(&buf[..n]);
        }
    }

    /// Waits for the container to start (or fail to).
    pub fn wait_started(&mut self) -> Result<Started> {
        loop {
            match self.read_frame()? {
                Some((frame::STARTED, p)) => {
                    let pid = String::from_utf8_lossy(&p).parse().unwrap_or(0);
                    return Ok(Started::Pid(pid));
                }
                Some((frame::ERROR, m)) => {
                    return Ok(Started::Failed(String::from_utf8_lossy(&m).into_owned()))
                }
                Some(f) => self.early.push_back(f),
                None => return Err(self.monitor_ended()),
            }
        }
    }

    pub fn send(&mut self, kind: u8, payload: &[u8]) -> Result<()> {
        match self.to_monitor.write_all(&frame::encode(kind, payload)) {
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Err(self.monitor_ended()),
            r => r.map_err(io("write to the container's monitor")),
        }
    }

    /// The error for a monitor that ended before the container started:
    /// its own last words from monitor.log, where it wrote them.
    fn monitor_ended(&self) -> Error {
        let log = std::fs::read_to_string(&self.monitor_log).unwrap_or_default();
        match log
            .lines()
            .rev()
            .find_map(|l| l.strip_prefix("berth-monitor: "))
        {
            Some(why) => Error::Runtime(format!("the container's monitor failed: {why}")),
            None => Error::Runtime(format!(
                "the container's monitor ended before the container started; see {}",
                self.monitor_log.display()
            )),
        }
    }
}

/// The detach keys when none are given: ctrl-p, ctrl-q (as Docker's).
pub const DEFAULT_DETACH_KEYS: [u8; 2] = [0x10, 0x11];

/// Docker's `--detach-keys` syntax: `ctrl-p,ctrl-q`, `a`, `ctrl-@`... An
/// empty string disables detaching.
pub fn parse_detach_keys(s: &str) -> Result<Vec<u8>> {
    berth_monitor_proto::config::parse_detach_keys(s).map_err(|m| {
        let m = m.strip_prefix("--detach-keys: ").unwrap_or(&m);
        option("--detach-keys", m)
    })
}

/// Finds the detach keys in typed input, across reads: bytes that may
/// begin the sequence are held back until it is complete (a detach) or
/// broken (then they are passed on).
#[derive(Clone, Debug)]
pub struct DetachKeys {
    keys: Vec<u8>,
    matched: DetachMatch,
}

impl DetachKeys {
    /// No keys: never a detach.
    pub fn new(keys: Vec<u8>) -> DetachKeys {
        DetachKeys {
            keys,
            matched: DetachMatch::default(),
        }
    }

    /// Appends to `out` what passes through; true when the keys were
    /// typed (what follows them in `data` is dropped).
    pub fn feed(&mut self, data: &[u8], out: &mut Vec<u8>) -> bool {
        self.matched.feed(&self.keys, data, out)
    }
}

/// How a terminal session ([`pump_terminal`]) ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TerminalEnd {
    /// The terminal ended: its process exited (the runtime says how).
    Ended,
    /// The detach keys were typed: the process runs on, and someone must
    /// keep reading its terminal ([`keep_draining`]).
    Detached,
}

/// Sets the size of the terminal whose master is `master`.
pub fn resize_terminal(master: &std::fs::File, rows: u16, cols: u16) {
    use std::os::fd::AsRawFd;
    let w = libc::winsize {
        ws_row: rows,
        ws_col: cols,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCSWINSZ reads one winsize from a valid pointer.
    unsafe { libc::ioctl(master.as_raw_fd(), libc::TIOCSWINSZ, &w) };
}

/// Copies between a process's terminal (`master`, the pty master a
/// runtime's exec sent) and the caller's streams: `stdin` (if given),
/// through the detach keys, into the terminal on a thread, and the
/// terminal's output to `stdout`, until the terminal ends or the keys are
/// typed.
pub fn pump_terminal(
    master: &std::fs::File,
    stdin: Option<Box<dyn Read + Send>>,
    stdout: &mut dyn Write,
    mut keys: DetachKeys,
) -> Result<TerminalEnd> {
    use std::os::fd::AsRawFd;
    // The detach keys, typed on stdin, wake the loop below through this.
    let (mut wake_tx, wake_rx) =
        std::os::unix::net::UnixStream::pair().map_err(io("make a socket pair"))?;
    if let Some(mut from) = stdin {
        let mut to = master.try_clone().map_err(io("dup the terminal"))?;
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            let mut fwd = Vec::with_capacity(buf.len());
            while let Ok(n) = from.read(&mut buf) {
                if n == 0 {
                    return;
                }
                fwd.clear();
                let detach = keys.feed(&buf[..n], &mut fwd);
                if to.write_all(&fwd).is_err() {
                    return;
                }
                if detach {
                    let _ = wake_tx.write_all(b"d");
                    return;
                }
            }
        });
    } else {
        drop(wake_tx);
    }
    let mut from = master;
    let mut buf = [0u8; 32 * 1024];
    let mut wake_open = true;
    loop {
        let mut fds = [
            libc::pollfd {
                fd: master.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            },
            libc::pollfd {
                // Negative: ignored, once stdin has ended.
                fd: if wake_open { wake_rx.as_raw_fd() } else { -1 },
                events: libc::POLLIN,
                revents: 0,
            },
        ];
        // SAFETY: fds is a valid array of two pollfd.
        if unsafe { libc::poll(fds.as_mut_ptr(), 2, -1) } < 0 {
            if std::io::Error::last_os_error().kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            return Ok(TerminalEnd::Ended);
        }
        if fds[1].revents != 0 {
            // A byte: the keys were typed; the end: stdin ended.
            let mut b = [0u8; 1];
            if (&wake_rx).read(&mut b).is_ok_and(|n| n == 1) {
                return Ok(TerminalEnd::Detached);
            }
            wake_open = false;
            continue;
        }
        match from.read(&mut buf) {
            Ok(0) | Err(_) => return Ok(TerminalEnd::Ended),
            Ok(n) => {
                let _ = stdout.write_all(&buf[..n]);
                let _ = stdout.flush();
            }
        }
    }
}

/// After a detach: hands the terminal to `berth-monitor --drain`, which
/// reads and drops its output until the process ends (else the process
/// would get a hangup, and block once its output fills the terminal).
/// `master` must stay open until this process exits.
pub fn keep_draining(master: &std::fs::File) -> Result<()> {
    use std::os::fd::AsRawFd;
    let monitor = crate::paths::find_program("berth-monitor")?;
    let fd = master.as_raw_fd();
    // SAFETY: F_SETFD on an fd this process owns (the master, kept open
    // until we exit): the helper inherits it.
    if unsafe { libc::fcntl(fd, libc::F_SETFD, 0) } < 0 {
        return Err(io("pass the terminal on")(std::io::Error::last_os_error()));
    }
    let null = std::process::Stdio::null;
    let child = std::process::Command::new(monitor)
        .arg("--drain")
        .arg(fd.to_string())
        .stdin(null())
        .stdout(null())
        .stderr(null())
        .spawn()
        .map_err(io("start the process that keeps the detached terminal"))?;
    crate::containers::reap_when_done(child);
    Ok(())
}

/// How a session ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The container's process exited with `code`; `oom`: the OOM killer
    /// ended it.
    Exited { code: i32, oom: bool },
    /// The client detached; the container runs on.
    Detached,
    /// The container failed to start (after it was reported starting, as
    /// a restart's): the runtime's message. Cleaned up already.
    StartFailed(String),
    /// The monitor closed the session without saying how the container
    /// ended.
    Lost,
}

/// The exit code and OOM flag of an EXIT frame (`"CODE"` or `"CODE oom"`);
/// `None` if it holds no code.
pub fn decode_exit(payload: &[u8]) -> Option<(i32, bool)> {
    let t = String::from_utf8_lossy(payload);
    let mut it = t.split(' ');
    let code = it.next()?.parse().ok()?;
    Some((code, it.next() == Some("oom")))
}

/// The frame that sets the terminal size (rows, columns).
fn resize_frame(rows: u16, cols: u16) -> Vec<u8> {
    let (r, c) = (rows.to_be_bytes(), cols.to_be_bytes());
    frame::encode(frame::RESIZE, &[r[0], r[1], c[0], c[1]])
}

/// The writing side of a session, shared by the threads that feed it
/// (input, window sizes): each frame is written whole.
#[derive(Clone)]
pub struct Input(Arc<Mutex<std::fs::File>>);

impl Input {
    fn send(&self, bytes: &[u8]) -> bool {
        self.0.lock().is_ok_and(|mut w| w.write_all(bytes).is_ok())
    }

    /// Sets the container's terminal size; false when the session is gone.
    pub fn resize(&self, rows: u16, cols: u16) -> bool {
        self.send(&resize_frame(rows, cols))
    }

    /// Passes input on to the container's stdin; false when the session is gone.
    pub fn stdin(&self, data: &[u8]) -> bool {
        self.send(&frame::encode(frame::STDIN, data))
    }

    /// Closes the container's stdin.
    pub fn close_stdin(&self) -> bool {
        self.send(&frame::encode(frame::STDIN_CLOSE, b""))
    }

    fn cleaned(&self) -> bool {
        self.cleaned_with(false)
    }

    /// CLEANED, asking the monitor to run its exit command all the same
    /// when `exit_command` (see [`frame::CLEANED`]).
    fn cleaned_with(&self, exit_command: bool) -> bool {
        let data: &[u8] = if exit_command {
            frame::CLEANED_RUN_EXIT_COMMAND
        } else {
            b""
        };
        self.send(&frame::encode(frame::CLEANED, data))
    }
}

impl Session {
    /// A handle that writes to the monitor, for other threads (resize).
    pub fn input(&self) -> Result<Input> {
        let w = self
            .to_monitor
            .try_clone()
            .map_err(io("dup the pipe to the container's monitor"))?;
        Ok(Input(Arc::new(Mutex::new(w))))
    }
}

/// Forwards signals to a container's process (Docker's sig-proxy) through
/// its runtime, quietly: a container that is gone is not an error here.
pub struct SignalForwarder(crate::runtime::Signaller);

impl SignalForwarder {
    pub fn send(&self, sig: i32) {
        let _ = self.0.send(sig);
    }
}

/// The caller's ends of a session's streams.
pub struct Streams<'a> {
    /// Where the container's stdin comes from (None: it gets none); its
    /// end closes the container's stdin.
    pub stdin: Option<Box<dyn Read + Send>>,
    /// Where its output goes (a writer that fails is skipped: the
    /// container goes on).
    pub stdout: &'a mut dyn Write,
    pub stderr: &'a mut dyn Write,
}

impl Engine {
    /// Starts the container and waits until it runs, with a monitor
    /// started ahead of time if given. Returns the session and the
    /// process's pid; a start that failed is cleaned up (and the monitor
    /// told so) and is [`Error::StartFailed`].
    pub fn start_session(
        &self,
        what: &str,
        pre: Option<crate::containers::PreMonitor>,
    ) -> Result<(Session, i32)> {
        let mut s = self.start_with(what, pre)?;
        match s.wait_started()? {
            Started::Pid(pid) => {
                // Its pod's infra, started meanwhile: one that failed
                // fails this start too, and this container is killed (as
                // by the user: no restart), its end recorded when this
                // returns.
                if let Some(infra) = s.infra.take() {
                    if let Err(e) = self.infra_started(*infra) {
                        if let Ok(rec) = self.kill(what, libc::SIGKILL, true) {
                            let _ = self.wait_stopped(&rec, Duration::from_secs(10));
                        }
                        return Err(e);
                    }
                }
                Ok((s, pid))
            }
            Started::Failed(msg) => {
                let container = self
                    .get(what)
                    .map(|r| r.name)
                    .unwrap_or_else(|_| what.to_string());
                let e = self.start_failed(&mut s, what, container, msg);
                // Its pod's infra, started meanwhile, settled before this
                // returns: running, or failed and cleaned up.
                if let Some(infra) = s.infra.take() {
                    let _ = self.infra_started(*infra);
                }
                Err(e)
            }
        }
    }

    /// A start that its runtime failed (`msg`, reported on `s`): cleaned
    /// up, its monitor told so (CLEANED), and the error naming
    /// `container`.
    pub(crate) fn start_failed(
        &self,
        s: &mut Session,
        id: &str,
        container: String,
        msg: String,
    ) -> Error {
        let _ = self.cleanup(id);
        let _ = s.send(frame::CLEANED, b"");
        Error::StartFailed { container, msg }
    }

    /// The forwarder of signals to `rec`'s process.
    pub fn signal_forwarder(&self, rec: &Record) -> Result<SignalForwarder> {
        crate::paths::find_program(&rec.spec.runtime)?;
        Ok(SignalForwarder(self.signaller(rec)))
    }

    /// Runs a session of `rec`'s container to its end: feeds
    /// `streams.stdin` in on a thread, writes the container's output to
    /// `streams.stdout` and `streams.stderr`, and returns how it ended.
    /// `input` is [`Session::input`] of `s` (the caller may keep clones to
    /// resize). `owner`: this client started the container, and on its
    /// exit records the end and waits for the monitor to have the runtime
    /// delete it; otherwise (an attach) the client waits for the monitor,
    /// which does that, to end.
    pub fn run_session(
        &self,
        rec: &Record,
        mut s: Session,
        input: Input,
        streams: Streams<'_>,
        owner: bool,
    ) -> Result<Outcome> {
        let Streams {
            stdin,
            stdout,
            stderr,
        } = streams;
        if let Some(mut from) = stdin {
            let w = input.clone();
            std::thread::spawn(move || {
                let mut buf = [0u8; 32 * 1024];
                loop {
                    match from.read(&mut buf) {
                        Ok(0) | Err(_) => {
                            w.close_stdin();
                            return;
                        }
                        Ok(n) => {
                            if !w.stdin(&buf[..n]) {
                                return;
                            }
                        }
                    }
                }
            });
        }
        let mut exit = None;
        while let Some((kind, data)) = s.next_frame()? {
            match kind {
                frame::STDOUT => {
                    let _ = stdout.write_all(&data);
                    let _ = stdout.flush();
                }
                frame::STDERR => {
                    let _ = stderr.write_all(&data);
                }
                frame::EXIT => {
                    exit = decode_exit(&data);
                    break;
                }
                frame::ERROR => {
                    let _ = self.cleanup(&rec.id);
                    input.cleaned();
                    return Ok(Outcome::StartFailed(
                        String::from_utf8_lossy(&data).into_owned(),
                    ));
                }
                frame::DETACHED => return Ok(Outcome::Detached),
                _ => {}
            }
        }
        let Some((code, oom)) = exit else {
            return Ok(Outcome::Lost);
        };
        if owner {
            // Record the end ourselves (the monitor skips its exit
            // command), while the monitor has the runtime delete the
            // container; then wait for that (DELETED), so nothing of the
            // container is left on return but its directory in the trash,
            // which the monitor empties then (and `system prune` if the
            // monitor could not).
            let exit_command = self.cleanup_before_monitor(&rec.id)?;
            input.cleaned_with(exit_command);
            s.wait_deleted(Duration::from_secs(60))?;
        } else {
            drop(input);
            drop(s);
            let _ = self.wait_monitor(rec, Some(Duration::from_secs(60)));
        }
        Ok(Outcome::Exited { code, oom })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_frames_give_the_code_and_the_oom_flag() {
        assert_eq!(decode_exit(b"0"), Some((0, false)));
        assert_eq!(decode_exit(b"137 oom"), Some((137, true)));
        assert_eq!(decode_exit(b"-1"), Some((-1, false)));
        assert_eq!(decode_exit(b"7 other"), Some((7, false)));
        assert_eq!(decode_exit(b""), None);
        assert_eq!(decode_exit(b"x oom"), None);
        assert_eq!(decode_exit(&[0xff, b' ']), None);
    }

    #[test]
    fn detach_keys_parse_in_dockers_syntax() {
        assert_eq!(
            parse_detach_keys("ctrl-p,ctrl-q").unwrap(),
            DEFAULT_DETACH_KEYS
        );
        assert_eq!(parse_detach_keys("a,ctrl-@,ctrl-[").unwrap(), [b'a', 0, 27]);
        assert!(parse_detach_keys("").unwrap().is_empty());
        let e = parse_detach_keys("ctrl-1").unwrap_err();
        assert_eq!(e.kind(), crate::error::ErrorKind::InvalidArgument);
        assert!(
            e.to_string().starts_with("--detach-keys: unknown key"),
            "{e}"
        );
        assert!(
            !e.to_string().contains("--detach-keys: --detach-keys"),
            "{e}"
        );
    }

    fn feed(k: &mut DetachKeys, data: &[u8]) -> (Vec<u8>, bool) {
        let mut out = Vec::new();
        let d = k.feed(data, &mut out);
        (out, d)
    }

    #[test]
    fn detach_keys_match_across_reads_and_pass_broken_sequences_on() {
        let mut k = DetachKeys::new(DEFAULT_DETACH_KEYS.to_vec());
        assert_eq!(feed(&mut k, b"ab\x10"), (b"ab".to_vec(), false));
        // Broken: the held byte is passed on with what broke it.
        assert_eq!(feed(&mut k, b"c"), (b"\x10c".to_vec(), false));
        // A repeated first key holds the second one back.
        assert_eq!(feed(&mut k, b"\x10\x10"), (b"\x10".to_vec(), false));
        // Complete across reads: a detach; what follows is dropped.
        assert_eq!(feed(&mut k, b"\x11rest"), (Vec::new(), true));
        // No keys: never a detach.
        let mut none = DetachKeys::new(Vec::new());
        assert_eq!(feed(&mut none, b"\x10\x11"), (b"\x10\x11".to_vec(), false));
    }

    /// A socket pair standing in for a terminal: our end as the master,
    /// the other as the process's side.
    fn fake_terminal() -> (std::fs::File, std::os::unix::net::UnixStream) {
        let (a, b) = std::os::unix::net::UnixStream::pair().unwrap();
        (std::fs::File::from(std::os::fd::OwnedFd::from(a)), b)
    }

    #[test]
    fn a_terminal_session_copies_output_until_the_terminal_ends() {
        let (master, mut process) = fake_terminal();
        process.write_all(b"hello\r\n").unwrap();
        drop(process);
        let mut out = Vec::new();
        let keys = DetachKeys::new(DEFAULT_DETACH_KEYS.to_vec());
        let end = pump_terminal(&master, None, &mut out, keys).unwrap();
        assert_eq!(end, TerminalEnd::Ended);
        assert_eq!(out, b"hello\r\n");
    }

    #[test]
    fn a_terminal_session_detaches_on_the_keys_and_keeps_what_follows_back() {
        let (master, mut process) = fake_terminal();
        let stdin = Box::new(std::io::Cursor::new(b"ls\r\x10\x11exit\r".to_vec()));
        let mut out = Vec::new();
        let keys = DetachKeys::new(DEFAULT_DETACH_KEYS.to_vec());
        let end = pump_terminal(&master, Some(stdin), &mut out, keys).unwrap();
        assert_eq!(end, TerminalEnd::Detached);
        drop(master);
        let mut typed = Vec::new();
        process.read_to_end(&mut typed).unwrap();
        assert_eq!(typed, b"ls\r", "the keys and what follows them stay out");
    }

    #[test]
    fn resize_frames_carry_rows_then_columns_big_endian() {
        let f = resize_frame(0x0102, 0x0304);
        let mut d = Decoder::default();
        d.feed(&f);
        assert_eq!(
            d.next_frame().unwrap(),
            Some((frame::RESIZE, vec![1, 2, 3, 4]))
        );
    }
}
