//! `berth-monitor CONFIG`: one per running container, the job conmon does
//! for podman. It
//! - starts the container through the runtime (`run --detach`), as its
//!   parent and child subreaper, so the container's init is re-parented to
//!   it and its exit status is ours to read;
//! - holds the container's stdio (pipes, or the pty master the runtime
//!   sends over `--console-socket`), writes the log (json-file or k8s-file,
//!   rotated by size) and copies output to attached clients, each with a
//!   bounded buffer: a client that does not read loses output (counted),
//!   the container never waits;
//! - records the exit code, time and OOM kill in its state file, applies the
//!   restart policy with Docker's back-off, and runs the exit command
//!   (`berth container cleanup`) at the end;
//! - serves `attach.sock` (frames of `berth_monitor_proto::frame`), with detach
//!   keys and terminal resizes;
//! - runs the container's health checks and probes on timers of its poll
//!   loop ([`health`]), and kills or restarts the container when they say.
//!
//! Single-threaded, one poll loop, no allocation per byte; it starts in its
//! own session so it outlives the CLI that spawned it.

use berth_monitor_proto::config::Config;
use berth_monitor_proto::frame::{self, Decoder};
use berth_monitor_proto::logfmt::{self, Stream};
use berth_monitor_proto::state::{State, Status};
use berth_sys::process::ExitStatus;
use log::LogWriter;
use std::io;
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

mod exit;
mod health;
mod hold;
mod log;
mod reaped;

/// Output held for one slow client before its output is dropped.
const CLIENT_BUFFER: usize = 1 << 20;
/// Input held for the container's stdin before clients stop being read.
const STDIN_BUFFER: usize = 1 << 20;
/// The least time between a probe's stop signal and its SIGKILL, when the
/// preStop hook took the grace period (the kubelet's
/// minimumGracePeriodInSeconds).
const MIN_GRACE: Duration = Duration::from_secs(2);

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let usage = || -> ! {
        eprintln!("usage: berth-monitor CONFIG | berth-monitor --pre RUNTIME DIR [CPUS] | berth-monitor --drain FD\nStarted by berth for each container; not meant to be run by hand.");
        std::process::exit(2);
    };
    if args.get(1).map(String::as_str) == Some("--drain") {
        match args.get(2).and_then(|f| f.parse::<RawFd>().ok()) {
            Some(fd) if args.len() == 3 && fd > 2 => drain(fd),
            _ => usage(),
        }
    }
    let pre = match args.get(1).map(String::as_str) {
        Some("--pre") if (4..=5).contains(&args.len()) => true,
        Some(a) if args.len() == 2 && !a.starts_with('-') => false,
        _ => usage(),
    };
    let sigfd = match become_monitor() {
        Ok(fd) => fd,
        Err(e) => {
            eprintln!("berth-monitor: {e}");
            std::process::exit(1);
        }
    };
    let (cfg, early) = if pre {
        let early = Early::start(Path::new(&args[2]), Path::new(&args[3]));
        let text = match read_config_frame() {
            // The client went away before the container was known: the
            // runtime started for it ends with the socket, unused.
            None => std::process::exit(0),
            Some(text) => text,
        };
        // The client kept us off its CPU while we started up; it has done
        // so by now (before it sent the config), so this puts us, and the
        // runtime we started, back on every CPU berth may use before the
        // runtime starts anything.
        if let Some(cpus) = args.get(4).and_then(|c| parse_cpus(c)) {
            set_cpus(0, &cpus);
            if let Some((_, pid)) = &early.waiting {
                set_cpus(*pid, &cpus);
            }
        }
        (Config::parse(&text), Some(early))
    } else {
        (
            std::fs::read_to_string(&args[1])
                .map_err(|e| format!("read {}: {e}", args[1]))
                .and_then(|t| Config::parse(&t)),
            None,
        )
    };
    let cfg = match cfg {
        Ok(c) => c,
        Err(e) => {
            eprintln!("berth-monitor: {e}");
            std::process::exit(2);
        }
    };
    if early.is_some() {
        // Started with stderr on /dev/null (the run directory did not exist
        // yet): from here on, messages go where every monitor's go.
        if let Ok(log) = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(cfg.run_dir.join("monitor.log"))
        {
            let _ = berth_sys::fs::dup2(log.as_raw_fd(), 2);
        }
    }
    let code = match Monitor::new(cfg, sigfd, early).and_then(|mut m| m.run()) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("berth-monitor: {e}");
            1
        }
    };
    std::process::exit(code);
}

/// What every monitor does first, before it starts any process: its own
/// session (it outlives the client and its terminal), child subreaper (the
/// container's init is re-parented to it when the runtime exits), no
/// inherited fds for containers, and SIGCHLD blocked and read through the
/// returned signalfd (blocked before the first child starts, so that no
/// exit is missed).
fn become_monitor() -> Result<OwnedFd, String> {
    // SAFETY: setsid has no memory effects; failing (already a leader)
    // is harmless.
    unsafe { libc::setsid() };
    berth_sys::process::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
        .map_err(|e| err("become a child subreaper", e))?;
    // Fds inherited from whoever started berth must not reach containers.
    let _ = berth_sys::fs::cloexec_from(3);
    let _ = std::env::set_current_dir("/");
    leave_callers_cgroup();
    // SIGHUP and SIGINT are blocked, not ignored: an ignored signal stays
    // ignored across exec, and everything the monitor starts (the runtime,
    // and through it the container: runc and crun pass it on) must start
    // with default dispositions, or Ctrl-C and `--stop-signal SIGINT` do
    // nothing in the container. `command` resets both in every child.
    // SAFETY: sigset_t is plain data, filled by sigemptyset.
    let mut set: libc::sigset_t = unsafe { std::mem::zeroed() };
    // SAFETY: as above.
    let mut quiet: libc::sigset_t = unsafe { std::mem::zeroed() };
    // SAFETY: set and quiet are valid sigset_t values; blocking SIGCHLD
    // makes it readable from the signalfd only.
    let sfd = unsafe {
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGCHLD);
        libc::sigemptyset(&mut quiet);
        libc::sigaddset(&mut quiet, libc::SIGCHLD);
        libc::sigaddset(&mut quiet, libc::SIGHUP);
        libc::sigaddset(&mut quiet, libc::SIGINT);
        libc::signal(libc::SIGHUP, libc::SIG_DFL);
        libc::signal(libc::SIGINT, libc::SIG_DFL);
        libc::sigprocmask(libc::SIG_BLOCK, &quiet, std::ptr::null_mut());
        libc::signalfd(-1, &set, libc::SFD_CLOEXEC | libc::SFD_NONBLOCK)
    };
    if sfd < 0 {
        return Err(err("create a signalfd", io::Error::last_os_error()));
    }
    // SAFETY: a new fd owned by us.
    Ok(unsafe { OwnedFd::from_raw_fd(sfd) })
}

/// Where monitors live in each cgroup hierarchy: a cgroup of berth's own,
/// beside the containers' (`/berth/<id>` by default).
const MONITORS_CGROUP: &str = "berth/monitors";

/// Moves the monitor (single-threaded here, before it starts anything) out
/// of the cgroups of whoever ran berth, into [`MONITORS_CGROUP`] of every
/// hierarchy: the end of a login session, or the stop of the unit or job
/// that ran `berth run -d`, kills what is in its cgroup, and must not take
/// the monitor (and, with it, the container's supervision) along, as
/// podman keeps conmon in a scope of its own. Only root can; a failure is
/// reported and the monitor carries on where it is.
fn leave_callers_cgroup() {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return;
    }
    // The hierarchies without reading mountinfo where they are at their
    // usual places (mountinfo grows with every container's mount).
    let Ok(layout) = berth_cgroups::Layout::from_host() else {
        return;
    };
    for h in &layout.hierarchies {
        // Only a whole hierarchy (not a bind of a subtree).
        if h.mount_root != "/" {
            continue;
        }
        let v2 = h.kind == berth_cgroups::HierarchyKind::V2;
        // In the root of the cgroup2 hierarchy (no unit, no session scope
        // to be stopped with), the move is left out: a cgroup.procs write
        // costs an RCU grace period (10-15 ms here) after a quiet moment,
        // on every container start.
        if v2 && h.own == "/" {
            continue;
        }
        let dir = h.mountpoint.join(MONITORS_CGROUP);
        if let Err(e) = enter_cgroup(&dir, v2) {
            eprintln!(
                "berth-monitor: move into the cgroup {}: {e} (the monitor stays in its caller's cgroup)",
                dir.display()
            );
        }
    }
}

/// Makes cgroup `dir` (and its parents, with the CPUs and memory nodes of
/// theirs where a v1 cpuset needs them) and moves this thread into it: v1
/// through `tasks` (the thread alone, without the wait a move of a whole
/// process takes; the monitor has one thread), v2 through `cgroup.procs`.
fn enter_cgroup(dir: &Path, v2: bool) -> io::Result<()> {
    let mut parents: Vec<&Path> = dir.ancestors().take(3).collect();
    parents.reverse();
    for pair in parents.windows(2) {
        let (parent, d) = (pair[0], pair[1]);
        match std::fs::create_dir(d) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(e),
        }
        for knob in ["cpuset.cpus", "cpuset.mems"] {
            if v2 {
                break;
            }
            if let Ok(v) = std::fs::read_to_string(d.join(knob)) {
                if v.trim().is_empty() {
                    std::fs::write(d.join(knob), std::fs::read(parent.join(knob))?)?;
                }
            }
        }
    }
    std::fs::write(dir.join(if v2 { "cgroup.procs" } else { "tasks" }), "0")
}

/// The configuration a `--pre` monitor reads from its stdin: one CONFIG
/// frame, read exactly (what follows is the client's next frame). `None`
/// when the client closed the pipe or sent anything else.
fn read_config_frame() -> Option<String> {
    // SAFETY: fd 0 is open for the life of the process; the File is never
    // dropped (ManuallyDrop), so it is not closed here.
    let mut stdin = std::mem::ManuallyDrop::new(unsafe { std::fs::File::from_raw_fd(0) });
    let mut head = [0u8; 5];
    io::Read::read_exact(&mut *stdin, &mut head).ok()?;
    let len = u32::from_be_bytes([head[1], head[2], head[3], head[4]]) as usize;
    if head[0] != frame::CONFIG || len > frame::MAX_PAYLOAD {
        return None;
    }
    let mut text = vec![0u8; len];
    io::Read::read_exact(&mut *stdin, &mut text).ok()?;
    String::from_utf8(text).ok()
}

/// A CPU list as `berth_engine::PreMonitor` passes it ("0,1,3").
fn parse_cpus(list: &str) -> Option<libc::cpu_set_t> {
    // SAFETY: cpu_set_t is plain data; all zero is the empty set.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    for c in list.split(',') {
        let cpu: usize = c.parse().ok()?;
        if cpu >= libc::CPU_SETSIZE as usize {
            return None;
        }
        // SAFETY: sets one bit below CPU_SETSIZE of a valid set.
        unsafe { libc::CPU_SET(cpu, &mut set) };
    }
    Some(set)
}

/// Lets process `pid` (0: this one) run on the CPUs of `set`.
fn set_cpus(pid: i32, set: &libc::cpu_set_t) {
    // SAFETY: a valid set of the size given.
    if unsafe { libc::sched_setaffinity(pid, std::mem::size_of_val(set), set) } != 0 {
        eprintln!(
            "berth-monitor: restore the CPUs of process {pid}: {}",
            io::Error::last_os_error()
        );
    }
}

/// A `--pre` monitor's head start: berth-runtime's protected binary, and
/// the runtime already executed from it, waiting for its command line
/// (`berth_runtime::handoff`).
struct Early {
    runtime: PathBuf,
    protected: Option<OwnedFd>,
    waiting: Option<(OwnedFd, i32)>,
}

impl Early {
    /// `runtime`: berth-runtime's path; `dummy`: a directory for the
    /// protected binary's overlay (see `protected_binary`).
    fn start(runtime: &Path, dummy: &Path) -> Early {
        let protected = protect(runtime, dummy);
        let waiting = protected
            .as_ref()
            .and_then(|p| Self::spawn_waiting(runtime, p).ok());
        Early {
            runtime: runtime.to_path_buf(),
            protected,
            waiting,
        }
    }

    /// Starts the runtime from its protected binary, handed one end of a
    /// socket pair; returns our end and its pid.
    fn spawn_waiting(runtime: &Path, protected: &OwnedFd) -> io::Result<(OwnedFd, i32)> {
        let (ours, theirs) = berth_sys::socket::seqpacket_pair()?;
        // Inherited by the runtime (the monitor is single-threaded: no
        // other spawn can see it meanwhile); closed here once it has.
        // SAFETY: F_SETFD on an fd we own.
        if unsafe { libc::fcntl(theirs.as_raw_fd(), libc::F_SETFD, 0) } < 0 {
            return Err(io::Error::last_os_error());
        }
        let mut cmd = runtime_command(runtime, Some(protected));
        cmd.env(berth_runtime::handoff::ENV, theirs.as_raw_fd().to_string())
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null());
        let child = cmd.spawn()?;
        Ok((ours, child.id() as i32))
    }
}

fn err(what: &str, e: io::Error) -> String {
    format!("{what}: {e}")
}

fn set_nonblock(fd: RawFd) {
    // SAFETY: fcntl on an fd number; a bad fd only makes it fail.
    unsafe {
        let fl = libc::fcntl(fd, libc::F_GETFL);
        if fl >= 0 {
            libc::fcntl(fd, libc::F_SETFL, fl | libc::O_NONBLOCK);
        }
    }
}

fn pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0; 2];
    // SAFETY: fds is a valid two-element out array.
    berth_sys::cvt(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) })?;
    // SAFETY: two new fds owned by us.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

/// `--drain FD`: keeps the pty master of an exec session that `berth exec`
/// detached from, reading and dropping its output, so that the process
/// neither gets a hangup nor blocks on a full terminal; ends when every
/// process holding the terminal has closed it. In a session of its own, so
/// the user's terminal closing does not end it.
fn drain(fd: RawFd) -> ! {
    // SAFETY: setsid has no memory effects.
    unsafe { libc::setsid() };
    let mut buf = [0u8; 16 * 1024];
    loop {
        match read_fd(fd, &mut buf) {
            Ok(0) => break,
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            // EIO: the last slave fd was closed.
            Err(_) => break,
        }
    }
    std::process::exit(0);
}

fn read_fd(fd: RawFd, buf: &mut [u8]) -> io::Result<usize> {
    // SAFETY: buf is valid for buf.len() bytes.
    let n = unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) };
    if n < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(n as usize)
    }
}

fn write_fd(fd: RawFd, buf: &[u8]) -> io::Result<usize> {
    // SAFETY: buf is valid for buf.len() bytes.
    let n = unsafe { libc::write(fd, buf.as_ptr().cast(), buf.len()) };
    if n < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(n as usize)
    }
}

fn would_block(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::EAGAIN) | Some(libc::EINTR))
}

/// `path` as a unix socket address can hold it (108 bytes): itself, or
/// when it is longer (a long --run-root), the same file named through an
/// fd of its directory, `/proc/<pid>/fd/<n>/<name>`, which the runtime can
/// use too. The directory's fd is opened once and kept (the monitor's
/// sockets are all in its run directory).
fn socket_path(path: &Path) -> io::Result<PathBuf> {
    static DIRS: std::sync::Mutex<Vec<(PathBuf, OwnedFd)>> = std::sync::Mutex::new(Vec::new());
    if path.as_os_str().len() < 100 {
        return Ok(path.to_path_buf());
    }
    let (dir, name) = match (path.parent(), path.file_name()) {
        (Some(d), Some(n)) => (d, n),
        _ => return Ok(path.to_path_buf()),
    };
    let mut dirs = DIRS.lock().unwrap_or_else(|e| e.into_inner());
    let fd = match dirs.iter().find(|(d, _)| d == dir) {
        Some((_, fd)) => fd.as_raw_fd(),
        None => {
            let fd =
                berth_sys::fs::open(dir, libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC, 0)?;
            let raw = fd.as_raw_fd();
            dirs.push((dir.to_path_buf(), fd));
            raw
        }
    };
    let mut short = PathBuf::from(format!("/proc/{}/fd/{fd}", std::process::id()));
    short.push(name);
    Ok(short)
}

/// A listening unix socket at `path` (replacing a stale one).
fn listen_unix(path: &Path) -> io::Result<OwnedFd> {
    let _ = std::fs::remove_file(path);
    let name = socket_path(path)?;
    // SAFETY: plain syscall.
    let fd = berth_sys::cvt(unsafe {
        libc::socket(
            libc::AF_UNIX,
            libc::SOCK_STREAM | libc::SOCK_CLOEXEC | libc::SOCK_NONBLOCK,
            0,
        )
    })?;
    // SAFETY: a new fd owned by us.
    let sock = unsafe { OwnedFd::from_raw_fd(fd) };
    // SAFETY: sockaddr_un is plain data.
    let mut addr: libc::sockaddr_un = unsafe { std::mem::zeroed() };
    addr.sun_family = libc::AF_UNIX as libc::sa_family_t;
    let bytes = name.as_os_str().as_bytes();
    if bytes.len() >= addr.sun_path.len() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("socket path {} is too long", path.display()),
        ));
    }
    for (d, s) in addr.sun_path.iter_mut().zip(bytes) {
        *d = *s as libc::c_char;
    }
    // SAFETY: addr is a valid sockaddr_un of the given size.
    berth_sys::cvt(unsafe {
        libc::bind(
            sock.as_raw_fd(),
            (&addr as *const libc::sockaddr_un).cast(),
            std::mem::size_of::<libc::sockaddr_un>() as u32,
        )
    })?;
    std::fs::set_permissions(path, std::os::unix::fs::PermissionsExt::from_mode(0o600))?;
    // SAFETY: plain syscall.
    berth_sys::cvt(unsafe { libc::listen(sock.as_raw_fd(), 16) })?;
    Ok(sock)
}

fn accept(listener: RawFd) -> Option<OwnedFd> {
    // SAFETY: null address pointers are allowed.
    let fd = unsafe {
        libc::accept4(
            listener,
            std::ptr::null_mut(),
            std::ptr::null_mut(),
            libc::SOCK_CLOEXEC | libc::SOCK_NONBLOCK,
        )
    };
    // SAFETY: a new fd owned by us.
    (fd >= 0).then(|| unsafe { OwnedFd::from_raw_fd(fd) })
}

struct Client {
    rd: OwnedFd,
    wr: OwnedFd,
    out: Vec<u8>,
    dec: Decoder,
    /// The client that started the container (the monitor's stdin/stdout).
    owner: bool,
    detach: berth_monitor_proto::config::DetachMatch,
    /// Flush what is queued, then drop.
    closing: bool,
    dead: bool,
    /// Asked for a health check (`HEALTH_RUN`): answered with its status.
    wants_health: bool,
    /// Asked for the preStop hook (`PRE_STOP_RUN`): answered when it ends.
    wants_pre_stop: bool,
}

impl Client {
    fn queue(&mut self, kind: u8, payload: &[u8], dropped: &mut u64) {
        if self.dead || self.closing {
            return;
        }
        if self.out.len() + 5 + payload.len() > CLIENT_BUFFER
            && (kind == frame::STDOUT || kind == frame::STDERR)
        {
            *dropped += payload.len() as u64;
            return;
        }
        let was_empty = self.out.is_empty();
        frame::push(&mut self.out, kind, payload);
        if was_empty {
            self.flush();
        }
    }

    fn flush(&mut self) {
        while !self.out.is_empty() && !self.dead {
            match write_fd(self.wr.as_raw_fd(), &self.out) {
                Ok(n) => {
                    self.out.drain(..n);
                }
                Err(e) if would_block(&e) => return,
                Err(_) => self.dead = true,
            }
        }
        if self.out.is_empty() && self.closing {
            self.dead = true;
        }
    }
}

/// The container's stdio as the monitor holds it.
struct Stdio {
    /// Non-terminal: read ends of stdout and stderr; write ends handed to
    /// the runtime at each start.
    out: Option<(OwnedFd, OwnedFd)>,
    err: Option<(OwnedFd, OwnedFd)>,
    /// `-i` without a terminal: the read end goes to the runtime, the monitor
    /// writes to the other.
    input: Option<(OwnedFd, OwnedFd)>,
    /// Terminal: the pty master of the current run.
    pty: Option<OwnedFd>,
    stdin_buf: Vec<u8>,
    stdin_closed: bool,
}

struct Monitor {
    cfg: Config,
    state: State,
    sigfd: OwnedFd,
    listener: OwnedFd,
    console: Option<OwnedFd>,
    clients: Vec<Client>,
    io: Stdio,
    log: LogWriter,
    /// Children reaped before we knew who they were.
    reaped: reaped::Reaped,
    cleaned: bool,
    /// The client that cleaned up left work to the exit command
    /// (`frame::CLEANED_RUN_EXIT_COMMAND`).
    exit_command_anyway: bool,
    /// The starting client closed stdin while input was still queued.
    close_after_drain: bool,
    /// This start's terminal arrived (it may be closed again already).
    got_terminal: bool,
    /// The runtime has forgotten the last run (`delete`).
    deleted: bool,
    last_drop_report: Instant,
    oom_file: Option<PathBuf>,
    /// The starting client said GO (see `Config::wait_go`).
    go: bool,
    /// berth-runtime's protected binary, made once (see
    /// `protected_runtime`).
    protected: Option<OwnedFd>,
    /// A `--pre` monitor's runtime, started ahead and waiting for the
    /// command line of the first start (our end of its socket, its pid).
    waiting: Option<(OwnedFd, i32)>,
    /// The host ports held for the container's life ([`hold`]); let go
    /// when it ends for good, before anyone hears of it.
    held: Vec<OwnedFd>,
    /// Health checks and probes.
    checker: health::Checker,
    /// A health check asked for a restart whatever the restart policy.
    force_restart: bool,
    /// A liveness or startup probe stopped this run: it counts as failed
    /// for the restart policy ([`exit::policy_code`]).
    probe_stopped: bool,
    /// A health check asked for a stop: SIGKILL then, if it still runs.
    kill_at: Option<Instant>,
    /// A probe's graceful stop waits for the preStop hook until then (the
    /// grace period's end), then sends the stop signal.
    pre_stop_until: Option<Instant>,
    /// The least time from that stop signal to the SIGKILL.
    min_grace: Duration,
}

impl Monitor {
    fn new(cfg: Config, sigfd: OwnedFd, early: Option<Early>) -> Result<Monitor, String> {
        let listener = listen_unix(&cfg.run_dir.join("attach.sock"))
            .map_err(|e| err("listen on attach.sock", e))?;
        let mk = || pipe().map_err(|e| err("create a pipe", e));
        let io = Stdio {
            out: if cfg.terminal { None } else { Some(mk()?) },
            err: if cfg.terminal { None } else { Some(mk()?) },
            input: if cfg.stdin && !cfg.terminal {
                Some(mk()?)
            } else {
                None
            },
            pty: None,
            stdin_buf: Vec::new(),
            stdin_closed: !cfg.stdin,
        };
        for p in [&io.out, &io.err].into_iter().flatten() {
            set_nonblock(p.0.as_raw_fd());
        }
        if let Some(p) = &io.input {
            set_nonblock(p.1.as_raw_fd());
        }
        let log = LogWriter::new(&cfg)?;
        let mut clients = Vec::new();
        // The starting client: our stdin and stdout, when they are pipes or
        // sockets (not /dev/null).
        let is_stream = |fd: RawFd| {
            berth_sys::fs::fstat(
                // SAFETY: 0 and 1 are open for the life of the process.
                unsafe { std::os::fd::BorrowedFd::borrow_raw(fd) },
            )
            .is_ok_and(|st| matches!(st.st_mode & libc::S_IFMT, libc::S_IFIFO | libc::S_IFSOCK))
        };
        if is_stream(0) && is_stream(1) {
            // SAFETY: dup of open fds; the copies are ours.
            let (rd, wr) = unsafe {
                (
                    OwnedFd::from_raw_fd(libc::fcntl(0, libc::F_DUPFD_CLOEXEC, 3)),
                    OwnedFd::from_raw_fd(libc::fcntl(1, libc::F_DUPFD_CLOEXEC, 3)),
                )
            };
            set_nonblock(rd.as_raw_fd());
            set_nonblock(wr.as_raw_fd());
            clients.push(Client {
                rd,
                wr,
                out: Vec::new(),
                dec: Decoder::default(),
                owner: true,
                detach: Default::default(),
                closing: false,
                dead: false,
                wants_health: false,
                wants_pre_stop: false,
            });
            // The originals now point nowhere the runtime could inherit.
            if let Ok(null) = std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .open("/dev/null")
            {
                let _ = berth_sys::fs::dup2(null.as_raw_fd(), 0);
                let _ = berth_sys::fs::dup2(null.as_raw_fd(), 1);
            }
        }
        // A head start for another runtime than the configured one is
        // no use: dropping it ends that runtime.
        let (protected, waiting) = match early {
            Some(e) if e.runtime == cfg.runtime => (e.protected, e.waiting),
            _ => (None, None),
        };
        prepare_runtime_log(&cfg.run_dir);
        let held = hold::hold(&cfg.hold_ports);
        Ok(Monitor {
            held,
            checker: health::Checker::new(&cfg),
            force_restart: false,
            probe_stopped: false,
            kill_at: None,
            pre_stop_until: None,
            min_grace: Duration::ZERO,
            state: State {
                // SAFETY: getpid cannot fail.
                monitor_pid: unsafe { libc::getpid() },
                ..State::default()
            },
            cfg,
            sigfd,
            listener,
            console: None,
            clients,
            io,
            log,
            reaped: reaped::Reaped::default(),
            cleaned: false,
            exit_command_anyway: false,
            close_after_drain: false,
            got_terminal: false,
            deleted: true,
            last_drop_report: Instant::now(),
            oom_file: None,
            go: false,
            protected,
            waiting,
        })
    }

    fn save_state(&mut self) {
        self.state.log_dropped = self.log.dropped;
        let text = self.state.to_text();
        if let Err(e) =
            berth_sys::fs::replace_file(&self.cfg.run_dir.join("state"), text.as_bytes(), 0o600)
        {
            eprintln!("berth-monitor: write the state file: {e}");
        }
    }

    fn broadcast(&mut self, kind: u8, payload: &[u8]) {
        let mut dropped = 0;
        for c in &mut self.clients {
            c.queue(kind, payload, &mut dropped);
        }
        self.state.attach_dropped += dropped;
        // Losses are reported in the state file, at most once a second.
        if dropped > 0 && self.last_drop_report.elapsed() >= Duration::from_secs(1) {
            self.last_drop_report = Instant::now();
            self.save_state();
        }
    }

    /// [`Monitor::broadcast`], and written to every client right away.
    fn broadcast_now(&mut self, kind: u8, payload: &[u8]) {
        self.broadcast(kind, payload);
        for c in &mut self.clients {
            c.flush();
        }
    }

    fn stop_requested(&self) -> bool {
        self.cfg.run_dir.join("stopping").exists()
    }

    /// berth-runtime's binary opened through a read-only overlay (see
    /// `berth_sys::selfexe::protected_binary`), the run directory as the
    /// overlay's second layer; `None` for other runtimes or on failure.
    fn protected_runtime(&self) -> Option<OwnedFd> {
        if self.cfg.runtime.file_name() != Some(std::ffi::OsStr::new("berth-runtime")) {
            return None;
        }
        protect(&self.cfg.runtime, &self.cfg.run_dir)
    }

    fn run(&mut self) -> Result<(), String> {
        // Made while the client may still be writing the bundle (by a
        // `--pre` monitor, already before it knew the container).
        if self.protected.is_none() {
            self.protected = self.protected_runtime();
        }
        if self.cfg.wait_go {
            while !self.go {
                if !self.clients.iter().any(|c| c.owner) {
                    // The client failed before the bundle was ready:
                    // nothing was started and nothing is recorded.
                    return Ok(());
                }
                self.poll_once(-1)?;
            }
        }
        let mut backoff = if self.cfg.kube_backoff {
            exit::Backoff::kubernetes()
        } else {
            exit::Backoff::default()
        };
        loop {
            self.state.status = Status::Starting;
            self.save_state();
            let pid = match self.start() {
                Ok(pid) => pid,
                Err(msg) => {
                    self.state.error = msg.clone();
                    self.state.exit_code = 127;
                    self.deleted = false;
                    break;
                }
            };
            let started = Instant::now();
            self.state.pid = pid;
            // Read before the init can be reaped (until then, a zombie
            // still has its stat).
            self.state.start_time = berth_sys::process::proc_stat(pid).map_or(0, |s| s.start_time);
            self.state.started = berth_monitor_proto::now_nanos();
            self.state.status = Status::Running;
            self.state.error.clear();
            // A container that has already ended (`true`) is recorded once,
            // as exited: a state file written and replaced at once is a
            // file made and freed for nothing.
            self.reap();
            if !self.reaped.contains_key(&pid) {
                self.save_state();
            }
            self.broadcast(frame::STARTED, pid.to_string().as_bytes());
            self.checker.container_started(pid);
            let status = loop {
                if let Some(s) = self.reaped.remove(&pid) {
                    break s;
                }
                self.poll_once(-1)?;
            };
            self.checker.container_ended();
            self.kill_at = None;
            self.pre_stop_until = None;
            self.drain_output();
            let now = berth_monitor_proto::now_nanos();
            let oom_file = self.oom_file.as_deref();
            exit::record(&mut self.state, status, now, || {
                oom_file.is_some_and(|f| {
                    std::fs::read_to_string(f).is_ok_and(|t| exit::oom_killed_in(&t))
                })
            });
            let forced = std::mem::take(&mut self.force_restart) && !self.stop_requested();
            let probe_stopped = std::mem::take(&mut self.probe_stopped);
            if !forced
                && !exit::restarts(
                    self.cfg.restart,
                    exit::policy_code(status.code(), probe_stopped),
                    self.state.restarts,
                    self.stop_requested(),
                )
            {
                // Deleted in finish(), while the clients hear of the exit
                // and the starting client cleans up.
                self.deleted = false;
                break;
            }
            self.delete_container();
            let wait = backoff.after_run(started.elapsed());
            exit::restarting(&mut self.state);
            self.save_state();
            let until = Instant::now() + wait;
            while Instant::now() < until && !self.stop_requested() {
                let left = until.saturating_duration_since(Instant::now());
                self.poll_once(left.as_millis().min(100) as i32)?;
            }
            if self.stop_requested() {
                break;
            }
            self.state.restarts += 1;
        }
        self.finish()
    }

    /// Starts the container; returns its host pid.
    fn start(&mut self) -> Result<i32, String> {
        // berth's own runtime keeps the pid in its state, read below
        // through its library; another runtime writes it to --pid-file.
        let pid_file = self.cfg.run_dir.join("pid");
        let builtin = self.cfg.builtin_root.clone();
        self.got_terminal = false;
        if builtin.is_none() {
            let _ = std::fs::remove_file(&pid_file);
        }
        // Emptied, not removed: the runtime opens it without making a file
        // (made while the monitor waited for GO, `prepare_runtime_log`).
        prepare_runtime_log(&self.cfg.run_dir);
        // The runtime's command line after the program name.
        let mut args: Vec<std::ffi::OsString> =
            self.cfg.runtime_args.iter().map(Into::into).collect();
        args.extend([
            "--log".into(),
            self.cfg.run_dir.join("runtime.log").into(),
            "--log-format".into(),
            "json".into(),
            "run".into(),
            "--detach".into(),
            "--bundle".into(),
            self.cfg.bundle.clone().into(),
        ]);
        if builtin.is_none() {
            args.extend(["--pid-file".into(), pid_file.clone().into()]);
        }
        // The runtime's stdin, stdout and stderr (None: /dev/null).
        let dup = |fd: &OwnedFd| fd.try_clone().map_err(|e| err("dup a pipe", e));
        let stdio: [Option<OwnedFd>; 3] = if self.cfg.terminal {
            let sock = self.cfg.run_dir.join("console.sock");
            self.console = Some(listen_unix(&sock).map_err(|e| err("listen on console.sock", e))?);
            let sock = socket_path(&sock).map_err(|e| err("name console.sock", e))?;
            args.extend(["--console-socket".into(), sock.into()]);
            [None, None, None]
        } else {
            [
                match (&self.io.input, self.io.stdin_closed) {
                    (Some((r, _)), false) => Some(dup(r)?),
                    _ => None,
                },
                self.io.out.as_ref().map(|(_, w)| dup(w)).transpose()?,
                self.io.err.as_ref().map(|(_, w)| dup(w)).transpose()?,
            ]
        };
        args.push(self.cfg.id.clone().into());
        let rt = match self
            .waiting
            .take()
            .and_then(|w| hand_over(w, &args, &stdio))
        {
            Some(pid) => pid,
            None => self.spawn_runtime(&args, stdio)?,
        };
        let status = loop {
            if let Some(s) = self.reaped.remove(&rt) {
                break s;
            }
            self.poll_once(-1)?;
        };
        // The runtime may have sent the terminal and exited within one poll.
        if self.io.pty.is_none() {
            self.receive_console();
        }
        self.console = None;
        let _ = std::fs::remove_file(self.cfg.run_dir.join("console.sock"));
        if status != ExitStatus::Exited(0) {
            return Err(self.runtime_error(status));
        }
        if self.cfg.terminal && !self.got_terminal {
            return Err("the runtime did not send the container's terminal".into());
        }
        let pid = match &builtin {
            Some(root) => {
                berth_runtime::state::load_record(&root.join(&self.cfg.id))
                    .map_err(|e| format!("read the container's state from the runtime: {e}"))?
                    .pid
            }
            None => {
                let text = std::fs::read_to_string(&pid_file)
                    .map_err(|e| err(&format!("read the pid file {}", pid_file.display()), e))?;
                text.trim()
                    .parse()
                    .map_err(|_| format!("the pid file {} holds {text:?}", pid_file.display()))?
            }
        };
        if pid <= 0 {
            return Err(format!("the runtime reported no process (pid {pid})"));
        }
        self.oom_file = oom_file(pid);
        Ok(pid)
    }

    /// Starts the runtime with the command line `args` (after the program
    /// name) and `stdio`; returns its pid.
    fn spawn_runtime(
        &self,
        args: &[std::ffi::OsString],
        stdio: [Option<OwnedFd>; 3],
    ) -> Result<i32, String> {
        let mut cmd = runtime_command(&self.cfg.runtime, self.protected.as_ref());
        cmd.args(args);
        let [i, o, e] = stdio.map(|f| f.map_or_else(std::process::Stdio::null, Into::into));
        cmd.stdin(i).stdout(o).stderr(e);
        let child = cmd.spawn().map_err(|e| {
            err(
                &format!("run the runtime {}", self.cfg.runtime.display()),
                e,
            )
        })?;
        Ok(child.id() as i32)
    }

    /// The runtime's last error line from its JSON log.
    fn runtime_error(&self, status: ExitStatus) -> String {
        match runtime_log_error(&self.cfg.run_dir.join("runtime.log")) {
            Some(m) => m,
            None => format!(
                "the runtime {} failed ({})",
                self.cfg.runtime.display(),
                match status {
                    ExitStatus::Exited(c) => format!("exit status {c}"),
                    ExitStatus::Signaled(s) => format!("signal {s}"),
                }
            ),
        }
    }

    fn delete_container(&mut self) {
        if self.delete_in_process() {
            return;
        }
        if let Some(pid) = self.spawn_delete() {
            self.wait_child(pid);
        }
    }

    /// With berth's own runtime, deletes the container through its library
    /// (what its `delete --force` does, without starting a process);
    /// false otherwise.
    fn delete_in_process(&mut self) -> bool {
        let Some(root) = &self.cfg.builtin_root else {
            return false;
        };
        if let Err(e) = berth_runtime::delete(root, &self.cfg.id, true) {
            eprintln!("berth-monitor: delete container {}: {e}", self.cfg.id);
        }
        true
    }

    /// Starts the runtime's `delete`; its pid, to wait for.
    fn spawn_delete(&mut self) -> Option<i32> {
        // No --log: the client may be removing the run directory already.
        let mut cmd = command(&self.cfg.runtime);
        cmd.args(&self.cfg.runtime_args)
            .args(["delete", "--force", &self.cfg.id])
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null());
        match cmd.spawn() {
            Ok(c) => Some(c.id() as i32),
            Err(e) => {
                eprintln!("berth-monitor: run the runtime's delete: {e}");
                None
            }
        }
    }

    /// Waits for a child we started, serving clients meanwhile.
    fn wait_child(&mut self, pid: i32) -> Option<ExitStatus> {
        loop {
            if let Some(s) = self.reaped.remove(&pid) {
                return Some(s);
            }
            if self.poll_once(-1).is_err() {
                return None;
            }
        }
    }

    fn drain_output(&mut self) {
        let mut buf = vec![0u8; 64 * 1024];
        for _ in 0..10_000 {
            if !self.read_output(&mut buf) {
                break;
            }
        }
    }

    /// Reads what the container wrote; true if anything was read.
    fn read_output(&mut self, buf: &mut [u8]) -> bool {
        let mut any = false;
        let fds: Vec<(RawFd, Stream)> = match &self.io.pty {
            Some(p) => vec![(p.as_raw_fd(), Stream::Stdout)],
            None => [
                (&self.io.out, Stream::Stdout),
                (&self.io.err, Stream::Stderr),
            ]
            .into_iter()
            .filter_map(|(p, s)| p.as_ref().map(|p| (p.0.as_raw_fd(), s)))
            .collect(),
        };
        for (fd, stream) in fds {
            match read_fd(fd, buf) {
                Ok(0) => {
                    if self.io.pty.as_ref().is_some_and(|p| p.as_raw_fd() == fd) {
                        self.io.pty = None;
                    }
                }
                Ok(n) => {
                    any = true;
                    let data = &buf[..n];
                    self.log.write(stream, data);
                    let kind = if stream == Stream::Stdout {
                        frame::STDOUT
                    } else {
                        frame::STDERR
                    };
                    self.broadcast(kind, data);
                }
                Err(e) if would_block(&e) => {}
                // EIO: the pty's other side is closed (the container ended).
                Err(_) => {
                    if self.io.pty.as_ref().is_some_and(|p| p.as_raw_fd() == fd) {
                        self.io.pty = None;
                    }
                }
            }
        }
        any
    }

    fn stdin_fd(&self) -> Option<RawFd> {
        if self.io.stdin_closed {
            return None;
        }
        match (&self.io.pty, &self.io.input) {
            (Some(p), _) => Some(p.as_raw_fd()),
            (None, Some((_, w))) => Some(w.as_raw_fd()),
            _ => None,
        }
    }

    fn close_stdin(&mut self) {
        self.io.stdin_closed = true;
        self.io.stdin_buf.clear();
        self.io.input = None;
    }

    fn flush_stdin(&mut self) {
        let Some(fd) = self.stdin_fd() else {
            self.io.stdin_buf.clear();
            return;
        };
        while !self.io.stdin_buf.is_empty() {
            match write_fd(fd, &self.io.stdin_buf) {
                Ok(n) => {
                    self.io.stdin_buf.drain(..n);
                }
                Err(e) if would_block(&e) => return,
                Err(_) => {
                    if self.io.pty.is_none() {
                        self.close_stdin();
                    }
                    self.io.stdin_buf.clear();
                    return;
                }
            }
        }
    }

    fn client_input(&mut self, i: usize, buf: &mut [u8]) {
        let n = match read_fd(self.clients[i].rd.as_raw_fd(), buf) {
            Ok(0) => {
                self.clients[i].dead = true;
                return;
            }
            Ok(n) => n,
            Err(e) if would_block(&e) => return,
            Err(_) => {
                self.clients[i].dead = true;
                return;
            }
        };
        self.clients[i].dec.feed(&buf[..n]);
        loop {
            let f = match self.clients[i].dec.next_frame() {
                Ok(Some(f)) => f,
                Ok(None) => break,
                Err(e) => {
                    eprintln!("berth-monitor: client: {e}");
                    self.clients[i].dead = true;
                    break;
                }
            };
            match f {
                (frame::STDIN, data) => self.stdin_data(i, &data),
                (frame::STDIN_CLOSE, _) if self.clients[i].owner => {
                    self.flush_stdin();
                    if self.io.stdin_buf.is_empty() {
                        self.close_stdin();
                    } else {
                        // Closed once the buffer drains.
                        self.close_after_drain = true;
                    }
                }
                (frame::RESIZE, d) if d.len() == 4 => {
                    if let Some(p) = &self.io.pty {
                        let ws = libc::winsize {
                            ws_row: u16::from_be_bytes([d[0], d[1]]),
                            ws_col: u16::from_be_bytes([d[2], d[3]]),
                            ws_xpixel: 0,
                            ws_ypixel: 0,
                        };
                        // SAFETY: TIOCSWINSZ reads one winsize from a valid pointer.
                        unsafe { libc::ioctl(p.as_raw_fd(), libc::TIOCSWINSZ, &ws) };
                    }
                }
                (frame::CLEANED, d) => {
                    self.cleaned = true;
                    self.exit_command_anyway = d == frame::CLEANED_RUN_EXIT_COMMAND;
                }
                (frame::GO, _) if self.clients[i].owner => self.go = true,
                (frame::PRE_STOP_RUN, _) => {
                    if self.checker.run_pre_stop() {
                        self.clients[i].wants_pre_stop = true;
                    } else {
                        self.clients[i].queue(frame::PRE_STOP, b"none", &mut 0);
                    }
                }
                (frame::HEALTH_RUN, _) => {
                    if self.checker.run_now() {
                        self.clients[i].wants_health = true;
                    } else {
                        self.clients[i].queue(frame::HEALTH, b"none", &mut 0);
                    }
                }
                _ => {}
            }
        }
    }

    fn stdin_data(&mut self, i: usize, data: &[u8]) {
        let keys = self.cfg.detach_keys.clone();
        // Detach keys apply to terminals (typed by a person); piped binary
        // input passes untouched.
        if !self.cfg.terminal || keys.is_empty() {
            self.io.stdin_buf.extend_from_slice(data);
            self.flush_stdin();
            return;
        }
        let mut fwd = Vec::with_capacity(data.len());
        let c = &mut self.clients[i];
        if c.detach.feed(&keys, data, &mut fwd) {
            c.queue(frame::DETACHED, b"", &mut 0);
            c.closing = true;
            c.flush();
        }
        self.io.stdin_buf.extend_from_slice(&fwd);
        self.flush_stdin();
    }

    fn reap(&mut self) {
        let mut info = [0u8; 128];
        while read_fd(self.sigfd.as_raw_fd(), &mut info).is_ok_and(|n| n > 0) {}
        while let Ok(Some((pid, st))) = berth_sys::process::waitpid_any_nohang() {
            self.reaped.insert(pid, st);
        }
    }

    /// One round of the event loop: waits up to `timeout` ms.
    fn poll_once(&mut self, timeout: i32) -> Result<(), String> {
        #[derive(Clone, Copy)]
        enum Src {
            Sig,
            Health,
            Listen,
            Console,
            Output,
            StdinOut,
            ClientIn(usize),
            ClientOut(usize),
        }
        let mut fds: Vec<libc::pollfd> = Vec::with_capacity(8 + self.clients.len() * 2);
        let mut src: Vec<Src> = Vec::with_capacity(fds.capacity());
        let mut add = |fd: RawFd, ev: i16, s: Src| {
            fds.push(libc::pollfd {
                fd,
                events: ev,
                revents: 0,
            });
            src.push(s);
        };
        add(self.sigfd.as_raw_fd(), libc::POLLIN, Src::Sig);
        for (fd, ev) in self.checker.poll_fds() {
            add(fd, ev, Src::Health);
        }
        let timeout = match self.kill_at.into_iter().chain(self.pre_stop_until).min() {
            Some(at) => {
                let ms = at.saturating_duration_since(Instant::now()).as_millis() as i32 + 1;
                if timeout < 0 {
                    ms
                } else {
                    timeout.min(ms)
                }
            }
            None => timeout,
        };
        let timeout = self.checker.clamp_timeout(timeout);
        add(self.listener.as_raw_fd(), libc::POLLIN, Src::Listen);
        if let Some(c) = &self.console {
            add(c.as_raw_fd(), libc::POLLIN, Src::Console);
        }
        match &self.io.pty {
            Some(p) => add(p.as_raw_fd(), libc::POLLIN, Src::Output),
            None => {
                for p in [&self.io.out, &self.io.err].into_iter().flatten() {
                    add(p.0.as_raw_fd(), libc::POLLIN, Src::Output);
                }
            }
        }
        if !self.io.stdin_buf.is_empty() {
            if let Some(fd) = self.stdin_fd() {
                add(fd, libc::POLLOUT, Src::StdinOut);
            }
        }
        let stdin_room = self.io.stdin_buf.len() < STDIN_BUFFER;
        for (i, c) in self.clients.iter().enumerate() {
            if stdin_room && !c.closing {
                add(c.rd.as_raw_fd(), libc::POLLIN, Src::ClientIn(i));
            }
            if !c.out.is_empty() {
                add(c.wr.as_raw_fd(), libc::POLLOUT, Src::ClientOut(i));
            }
        }
        // SAFETY: fds is a valid array of fds.len() pollfds.
        let n = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, timeout) };
        if n < 0 {
            let e = io::Error::last_os_error();
            if e.raw_os_error() == Some(libc::EINTR) {
                return Ok(());
            }
            return Err(err("poll", e));
        }
        let mut buf = vec![0u8; 64 * 1024];
        for (p, s) in fds.iter().zip(src) {
            if p.revents == 0 {
                continue;
            }
            match s {
                Src::Sig => self.reap(),
                // Handled by `health_tick` below.
                Src::Health => {}
                Src::Listen => {
                    while let Some(fd) = accept(self.listener.as_raw_fd()) {
                        if let Ok(wr) = fd.try_clone() {
                            self.clients.push(Client {
                                rd: fd,
                                wr,
                                out: Vec::new(),
                                dec: Decoder::default(),
                                owner: false,
                                detach: Default::default(),
                                closing: false,
                                dead: false,
                                wants_health: false,
                                wants_pre_stop: false,
                            });
                        }
                    }
                }
                Src::Console => self.receive_console(),
                Src::Output => {
                    self.read_output(&mut buf);
                }
                Src::StdinOut => self.flush_stdin(),
                Src::ClientIn(i) => self.client_input(i, &mut buf),
                Src::ClientOut(i) => self.clients[i].flush(),
            }
        }
        if self.close_after_drain && self.io.stdin_buf.is_empty() {
            self.close_after_drain = false;
            self.close_stdin();
        }
        self.clients.retain(|c| !c.dead);
        self.health_tick();
        Ok(())
    }

    /// Drives the health checks; acts on what they decide, answers the
    /// clients that asked for a check.
    fn health_tick(&mut self) {
        if let Some(v) = self.checker.tick(&mut self.reaped) {
            let pid = self.state.pid;
            if pid > 0 {
                let what = match v {
                    health::Verdict::Kill => "killing it",
                    health::Verdict::Terminate { .. } => "stopping it (its restart policy applies)",
                    health::Verdict::Restart { .. } => "restarting it",
                    health::Verdict::Stop => "stopping it",
                };
                eprintln!(
                    "berth-monitor: container {}: its health check failed; {what}",
                    self.cfg.id
                );
                let sig = match v {
                    health::Verdict::Kill => libc::SIGKILL,
                    health::Verdict::Terminate { grace } => {
                        self.probe_stopped = true;
                        self.terminate(grace, MIN_GRACE);
                        0
                    }
                    // Podman's StopWithTimeout: exactly the stop timeout.
                    health::Verdict::Restart { grace } => {
                        self.force_restart = true;
                        self.terminate(grace, Duration::ZERO);
                        0
                    }
                    // `berth stop`: the container's stop signal and
                    // timeout, its event; not waited for here.
                    health::Verdict::Stop if !self.cfg.stop_command.is_empty() => {
                        let mut c = command(&self.cfg.stop_command[0]);
                        c.args(&self.cfg.stop_command[1..])
                            .stdin(std::process::Stdio::null())
                            .stdout(std::process::Stdio::null())
                            .stderr(std::process::Stdio::null());
                        match c.spawn() {
                            Ok(ch) => {
                                self.checker.forget_pid(ch.id() as i32);
                                0
                            }
                            Err(e) => {
                                eprintln!("berth-monitor: run {:?}: {e}", self.cfg.stop_command);
                                libc::SIGKILL
                            }
                        }
                    }
                    health::Verdict::Stop => {
                        let _ = std::fs::write(self.cfg.run_dir.join("stopping"), b"");
                        self.kill_at = Some(Instant::now() + Duration::from_secs(10));
                        libc::SIGTERM
                    }
                };
                if sig != 0 {
                    // SAFETY: kill has no memory effects; `pid` is the
                    // container's init, our child, not reaped yet.
                    unsafe { libc::kill(pid, sig) };
                }
                // The checks stop (a graceful stop's once its preStop hook
                // has run).
                if !matches!(
                    v,
                    health::Verdict::Terminate { .. } | health::Verdict::Restart { .. }
                ) {
                    self.checker.container_ended();
                }
            }
        }
        if let Some(until) = self.pre_stop_until {
            let ended = self.checker.pre_stop_result.is_some();
            if ended || Instant::now() >= until {
                self.pre_stop_until = None;
                if !ended && self.checker.abandon_pre_stop() {
                    eprintln!(
                        "berth-monitor: container {}: its preStop hook did not end within the grace period",
                        self.cfg.id
                    );
                }
                self.stop_signal(until);
            }
        }
        if let Some(at) = self.kill_at {
            if Instant::now() >= at && self.state.pid > 0 {
                self.kill_at = None;
                // SAFETY: as above.
                unsafe { libc::kill(self.state.pid, libc::SIGKILL) };
            }
        }
        if let Some(r) = self.checker.pre_stop_result.take() {
            for c in &mut self.clients {
                if std::mem::take(&mut c.wants_pre_stop) {
                    c.queue(frame::PRE_STOP, r.as_bytes(), &mut 0);
                }
            }
        }
        if std::mem::take(&mut self.checker.answered) {
            let status = self.checker.health.status.name();
            for c in &mut self.clients {
                if std::mem::take(&mut c.wants_health) {
                    c.queue(frame::HEALTH, status.as_bytes(), &mut 0);
                }
            }
        }
    }

    /// A probe stops the container the kubelet's way: the preStop hook
    /// (bounded by `grace`), then the stop signal, then SIGKILL once
    /// `grace` is over, and `min_grace` after the signal at the earliest.
    /// Not a user's stop (no "stopping" marker): the restart policy
    /// applies when it has ended.
    fn terminate(&mut self, grace: Duration, min_grace: Duration) {
        let deadline = Instant::now() + grace;
        self.min_grace = min_grace;
        if self.checker.run_pre_stop() {
            eprintln!(
                "berth-monitor: container {}: running its preStop hook before its stop signal",
                self.cfg.id
            );
            self.pre_stop_until = Some(deadline);
        } else {
            self.stop_signal(deadline);
        }
    }

    /// Sends the container's stop signal, SIGKILL to follow at `deadline`
    /// or `min_grace` from now, whichever is later (the kubelet's minimum
    /// once the preStop hook has taken its time).
    fn stop_signal(&mut self, deadline: Instant) {
        let pid = self.state.pid;
        if pid <= 0 {
            return;
        }
        let sig = match self.cfg.stop_signal {
            0 => libc::SIGTERM,
            s => s,
        };
        // SAFETY: kill has no memory effects; `pid` is the container's
        // init, our child, not reaped yet.
        unsafe { libc::kill(pid, sig) };
        self.kill_at = Some(deadline.max(Instant::now() + self.min_grace));
        self.checker.container_ended();
    }

    /// Takes the pty master the runtime sends over the console socket.
    fn receive_console(&mut self) {
        if let Some(conn) = self.console.as_ref().and_then(|l| accept(l.as_raw_fd())) {
            set_blocking(conn.as_raw_fd());
            let mut b = [0u8; 256];
            match berth_sys::socket::recv(conn.as_fd(), &mut b) {
                Ok((_, Some(pty))) => {
                    self.got_terminal = true;
                    set_nonblock(pty.as_raw_fd());
                    self.io.pty = Some(pty);
                    self.flush_stdin();
                }
                Ok((n, None)) => {
                    eprintln!("berth-monitor: the console socket sent {n} bytes and no terminal")
                }
                Err(e) => eprintln!("berth-monitor: receive the container's terminal: {e}"),
            }
        }
    }

    fn finish(&mut self) -> Result<(), String> {
        // The delete is what a starting client waits for last. A `delete`
        // process is started first: it runs while the state is saved, the
        // clients hear of the exit and the starting client cleans up. With
        // berth's own runtime the delete is done here, once the clients
        // have heard: the starting client cleans up meanwhile. (The OOM kill
        // was read from the cgroup already.)
        // The ports are free for the next container before this one's
        // client returns (its port elements may wait for the exit command).
        self.held.clear();
        let in_process = !self.deleted && self.cfg.builtin_root.is_some();
        let delete = if self.deleted || in_process {
            None
        } else {
            self.spawn_delete()
        };
        self.deleted = true;
        self.log.finish();
        self.state.status = Status::Exited;
        self.state.pid = 0;
        self.state.start_time = 0;
        if self.state.finished == 0 {
            self.state.finished = berth_monitor_proto::now_nanos();
        }
        self.save_state();
        // Before the clients hear of the exit: `inspect` after `wait`
        // shows the last health results.
        self.checker.persist();
        let mut exit = self.state.exit_code.to_string();
        if self.state.oom_killed {
            exit.push_str(" oom");
        }
        // After the state is saved: a client acting on these sees it.
        if self.state.error.is_empty() {
            self.broadcast_now(frame::EXIT, exit.as_bytes());
        } else {
            let msg = self.state.error.clone();
            self.broadcast_now(frame::ERROR, msg.as_bytes());
        }
        if in_process {
            self.delete_in_process();
        }
        if let Some(pid) = delete {
            self.wait_child(pid);
        }
        self.broadcast_now(frame::DELETED, b"");
        // Waits for the starting client to clean up (or go away), and for
        // every client to take its last output: a minute at most.
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline
            && !self.cleaned
            && self.clients.iter().any(|c| c.owner || !c.out.is_empty())
        {
            let left = deadline.saturating_duration_since(Instant::now());
            self.poll_once(left.as_millis().min(1000) as i32)?;
        }
        // Kept across reboots (the run directory is on tmpfs).
        if !self.cleaned && self.cfg.persist_dir.is_dir() {
            let _ = berth_sys::fs::write_atomic(
                &self.cfg.persist_dir.join("exit"),
                self.state.to_text().as_bytes(),
                0o600,
            );
        }
        // Left by the client that removed the container (or by one killed
        // half-way through): garbage whatever happened, and no longer
        // anyone's to wait for.
        for t in &self.cfg.trash {
            // remove_dir_all crosses into mounts: anything still mounted
            // under it (a pinned subpath, an idmapped layer whose detach
            // failed) is left for `berth system prune`, which detaches
            // first and never crosses.
            if mounted_under(t) {
                eprintln!(
                    "berth-monitor: {}: something is still mounted in it; left for `berth system prune`",
                    t.display()
                );
                continue;
            }
            if let Err(e) = std::fs::remove_dir_all(t) {
                if e.kind() != std::io::ErrorKind::NotFound {
                    eprintln!(
                        "berth-monitor: remove {}: {e} (`berth system prune` retries)",
                        t.display()
                    );
                }
            }
        }
        if (!self.cleaned || self.exit_command_anyway) && !self.cfg.exit_command.is_empty() {
            let mut c = command(&self.cfg.exit_command[0]);
            c.args(&self.cfg.exit_command[1..])
                .stdin(std::process::Stdio::null())
                .stdout(std::process::Stdio::null());
            match c.spawn() {
                Ok(ch) => {
                    let pid = ch.id() as i32;
                    self.clients.clear();
                    self.wait_child(pid);
                }
                Err(e) => eprintln!(
                    "berth-monitor: run the exit command {:?}: {e}",
                    self.cfg.exit_command
                ),
            }
        }
        Ok(())
    }
}

/// berth-runtime's binary opened through a detached read-only overlay
/// (`berth_sys::selfexe::protected_binary`), with `dummy` as the overlay's
/// second layer; `None` on failure (the runtime then protects itself).
fn protect(runtime: &Path, dummy: &Path) -> Option<OwnedFd> {
    let dummy =
        berth_sys::fs::open(dummy, libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC, 0).ok()?;
    berth_sys::selfexe::protected_binary(runtime, dummy.as_fd()).ok()
}

/// A command starting `runtime`, from its `protected` binary when there is
/// one. berth-runtime re-executes itself from a read-only copy before it
/// makes a container (CVE-2019-5736); started from one, it need not (a
/// millisecond). The detached read-only overlay is reached through our fd
/// table (nothing is mounted anywhere), and the runtime keeps its name.
fn runtime_command(runtime: &Path, protected: Option<&OwnedFd>) -> std::process::Command {
    let Some(fd) = protected else {
        return command(runtime);
    };
    let mut cmd = command(format!(
        "/proc/{}/fd/{}",
        std::process::id(),
        fd.as_raw_fd()
    ));
    std::os::unix::process::CommandExt::arg0(&mut cmd, runtime);
    cmd
}

/// A command whose process starts as one started by a shell: every signal
/// at its default disposition and none blocked. The monitor blocks
/// SIGCHLD, SIGHUP and SIGINT and ignores SIGPIPE (Rust's start-up), and
/// neither `Command` nor glibc's posix_spawn undoes all of that (the mask
/// and ignored signals survive exec; glibc's posix_spawn even leaves its
/// own real-time signals ignored); what the runtime inherits, runc, crun
/// and the container's process inherit in turn.
fn command(program: impl AsRef<std::ffi::OsStr>) -> std::process::Command {
    let mut cmd = std::process::Command::new(program);
    // SAFETY: the closure runs in the forked child before exec and makes
    // only system calls (`reset_signals` is async-signal-safe); the monitor
    // is single-threaded.
    unsafe {
        std::os::unix::process::CommandExt::pre_exec(&mut cmd, berth_sys::process::reset_signals);
    }
    cmd
}

/// Hands the command line `args` and `stdio` to a runtime started ahead
/// (`berth_runtime::handoff`); its pid, or `None` if it could not take them
/// (it then ends, its socket closed, and the caller starts another).
fn hand_over(
    (sock, pid): (OwnedFd, i32),
    args: &[std::ffi::OsString],
    stdio: &[Option<OwnedFd>; 3],
) -> Option<i32> {
    let null = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/null")
        .ok()?;
    let fds = [0, 1, 2].map(|i| stdio[i].as_ref().map_or(null.as_fd(), |f| f.as_fd()));
    match berth_runtime::handoff::send(sock.as_fd(), args, fds) {
        Ok(()) => Some(pid),
        Err(e) => {
            eprintln!("berth-monitor: hand the command line to the runtime started ahead: {e}");
            None
        }
    }
}

fn set_blocking(fd: RawFd) {
    // SAFETY: fcntl on an fd number.
    unsafe {
        let fl = libc::fcntl(fd, libc::F_GETFL);
        if fl >= 0 {
            libc::fcntl(fd, libc::F_SETFL, fl & !libc::O_NONBLOCK);
        }
    }
}

/// Makes (or empties) the runtime's log file, `runtime.log` in the run
/// directory, before the runtime opens it to append: a file made here,
/// while the monitor waits for the client's GO, is one the runtime does
/// not make on the start's critical path.
fn prepare_runtime_log(run_dir: &Path) {
    let _ = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .mode(0o600)
        .open(run_dir.join("runtime.log"));
}

/// The last error message in a runtime's JSON log.
fn runtime_log_error(path: &Path) -> Option<String> {
    let log = std::fs::read(path).unwrap_or_default();
    log.split(|&b| b == b'\n')
        .rev()
        .filter_map(logfmt::parse_fields)
        .filter(|f| f.iter().any(|(k, v)| k == "level" && v == "error"))
        .find_map(|f| f.into_iter().find(|(k, _)| k == "msg").map(|(_, v)| v))
}

/// Where the kernel counts OOM kills for the container's memory cgroup.
fn oom_file(pid: i32) -> Option<PathBuf> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).ok()?;
    for line in text.lines() {
        let mut f = line.splitn(3, ':');
        let (_, ctrls, path) = (f.next()?, f.next()?, f.next()?);
        if ctrls.split(',').any(|c| c == "memory") {
            return Some(PathBuf::from(format!(
                "/sys/fs/cgroup/memory{path}/memory.oom_control"
            )));
        }
        if ctrls.is_empty() && Path::new("/sys/fs/cgroup/cgroup.controllers").exists() {
            return Some(PathBuf::from(format!("/sys/fs/cgroup{path}/memory.events")));
        }
    }
    None
}

/// Whether a mount of this namespace is at or under `dir` (per
/// /proc/self/mountinfo; an unreadable one counts as yes).
fn mounted_under(dir: &std::path::Path) -> bool {
    let Ok(info) = std::fs::read_to_string("/proc/self/mountinfo") else {
        return true;
    };
    let prefix = dir.to_string_lossy();
    let prefix = prefix.trim_end_matches('/');
    info.lines().any(|l| {
        // The mount point is the fifth field (octal escapes for spaces).
        l.split(' ').nth(4).is_some_and(|m| {
            m == prefix || (m.starts_with(prefix) && m.as_bytes().get(prefix.len()) == Some(&b'/'))
        })
    })
}

#[cfg(test)]
mod trash_tests {
    #[test]
    fn mounts_under_a_directory_are_seen() {
        assert!(super::mounted_under(std::path::Path::new("/proc")));
        assert!(super::mounted_under(std::path::Path::new("/")));
        let d = tempfile::tempdir().unwrap();
        assert!(!super::mounted_under(d.path()));
        // A prefix of a mount point's name is not a parent of it.
        assert!(!super::mounted_under(std::path::Path::new("/pro")));
    }
}
