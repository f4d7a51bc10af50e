//! Container commands: create, run, start, stop, restart, kill, rm, ps,
//! logs, wait, inspect, and the monitor's `container cleanup`.

use crate::images::PullArgs;
use anyhow::{bail, Context, Result};
use berth_engine::images;
use berth_engine::records::{Record, Status};
use berth_engine::session::{self, DetachKeys, Input, Outcome, Streams, TerminalEnd};
use berth_engine::specgen::docker::{self, CreateFlags};
use berth_engine::{Engine, Session};
use clap::{Args, ValueEnum};
use std::io::{IsTerminal, Read};
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};

/// Docker's exit codes for `run`: 125 when berth itself fails, 126 when the
/// command cannot be run, 127 when it is not found.
#[derive(Debug)]
pub struct ExitCode(pub i32);

impl std::fmt::Display for ExitCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "exit code {}", self.0)
    }
}
impl std::error::Error for ExitCode {}

/// An error that `run`/`create`/`start` report with exit code `code`.
#[derive(Debug)]
pub struct RunError {
    pub code: i32,
    pub msg: String,
}
impl std::fmt::Display for RunError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.msg)
    }
}
impl std::error::Error for RunError {}

fn run_error(e: anyhow::Error) -> anyhow::Error {
    if e.downcast_ref::<RunError>().is_some() || e.downcast_ref::<ExitCode>().is_some() {
        return e;
    }
    anyhow::Error::new(RunError {
        code: 125,
        msg: crate::output::text(&e),
    })
}

#[derive(Clone, Copy, Debug, ValueEnum, PartialEq, Eq)]
pub enum PullPolicy {
    /// Pull when the image is not in the store.
    Missing,
    /// Pull every time (the store keeps the layers it has).
    Always,
    /// Never pull: fail if the image is not in the store.
    Never,
    /// Pull when the registry has another image under the name than the
    /// store (then only the manifest is fetched if all is stored); the
    /// stored image is used when the registry cannot be reached.
    Newer,
}

#[derive(Args, Debug)]
pub struct CreateArgs {
    /// Print help (-h is --hostname, as in Docker).
    #[arg(long, action = clap::ArgAction::Help)]
    pub help: Option<bool>,
    /// Give the container a name (default: a random one).
    #[arg(long)]
    pub name: Option<String>,
    // The options that make the container's spec: the engine's.
    #[command(flatten)]
    pub flags: CreateFlags,
    /// Write the container's id to FILE (which must not exist).
    #[arg(long = "cidfile", value_name = "FILE")]
    pub cidfile: Option<PathBuf>,
    /// When to pull the image.
    #[arg(long, value_enum, default_value_t = PullPolicy::Missing)]
    pub pull: PullPolicy,
    /// The platform to pull (os/arch[/variant]).
    #[arg(long)]
    pub platform: Option<String>,
    /// The image.
    pub image: String,
    /// The command and its arguments (default: the image's).
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub command: Vec<String>,
}

#[derive(Args, Debug)]
pub struct RunArgs {
    /// Run in the background and print the container id.
    #[arg(short = 'd', long)]
    pub detach: bool,
    /// Pass the signals berth receives on to the container (without -t).
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    pub sig_proxy: bool,
    #[command(flatten)]
    pub create: CreateArgs,
}

pub fn open(root: &Path, run_root: &Path) -> Result<Engine> {
    Ok(Engine::open(root, run_root)?)
}

/// The image id for `a.image`, pulled as `--pull` says.
fn image_for(root: &Path, engine: &Engine, a: &CreateArgs) -> Result<images::Digest> {
    use berth_engine::images::{ImageChoice, ImageForError, PullPolicy as P, PullReason};
    let policy = match a.pull {
        PullPolicy::Missing => P::Missing,
        PullPolicy::Always => P::Always,
        PullPolicy::Never => P::Never,
        PullPolicy::Newer => P::Newer,
    };
    let choice = engine
        .image_for(&a.image, policy, a.platform.as_deref())
        .map_err(|e| match e {
            ImageForError::Store(e) => e.into(),
            ImageForError::NotPresent { .. } => anyhow::anyhow!(
                "image {:?} is not in the store and --pull=never was given; pull it first (`berth pull {}`)",
                a.image,
                a.image
            ),
            ImageForError::WrongPlatform { have, want, .. } => anyhow::anyhow!(
                "image {:?} in the store is for {have}, not for --platform {want}, and --pull=never was given; pull it for {want} first (`berth pull --platform {want} {}`)",
                a.image,
                a.image
            ),
        })?;
    let (reason, fallback) = match choice {
        ImageChoice::Stored(id) => return Ok(id),
        ImageChoice::Pull { reason, fallback } => (reason, fallback),
    };
    match &reason {
        PullReason::NotFoundLocally => eprintln!("Unable to find image {:?} locally", a.image),
        PullReason::OtherPlatform { have, want } => eprintln!(
            "Image {:?} in the store is for {have}, not {want}: pulling it",
            a.image
        ),
        PullReason::Always | PullReason::Newer => {}
    }
    let pulled = crate::images::pull_image(
        root,
        &PullArgs {
            image: a.image.clone(),
            quiet: false,
            platform: a.platform.clone(),
            tls_verify: true,
            creds: None,
            parallel: 3,
        },
    );
    match (pulled, fallback) {
        (Err(e), Some(id))
            if e.downcast_ref::<images::StoreError>()
                .is_some_and(images::registry_unreachable) =>
        {
            eprintln!(
                "WARNING: cannot ask the registry for a newer {:?} ({}): using the stored image",
                a.image,
                crate::output::text(&e)
            );
            Ok(id)
        }
        (pulled, _) => pulled,
    }
}

fn create_record(root: &Path, engine: &Engine, a: &CreateArgs) -> Result<Record> {
    let (spec, warnings) = docker::to_spec(&a.flags, &a.command)?;
    for w in warnings {
        eprintln!("WARNING: {w}");
    }
    // --cidfile: made (exclusively) first, so a second container given the
    // same file fails before anything is created, as in Docker.
    let mut cidfile = match &a.cidfile {
        Some(p) => Some((
            p,
            std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(p)
                .map_err(|e| match e.kind() {
                    std::io::ErrorKind::AlreadyExists => anyhow::anyhow!(
                        "--cidfile {}: the file exists; make sure the container it names is gone, then remove it",
                        p.display()
                    ),
                    _ => anyhow::anyhow!("--cidfile {}: create: {e}", p.display()),
                })?,
        )),
        None => None,
    };
    let asked = spec.process.stop_signal.clone();
    let made = image_for(root, engine, a)
        .and_then(|id| Ok(engine.create(&a.image, &id, a.name.as_deref(), spec)?));
    if let Ok(rec) = &made {
        if rec.spec.process.stop_signal != asked {
            eprintln!(
                "WARNING: image {}: its StopSignal is not a signal berth knows; `berth stop` sends SIGTERM",
                a.image
            );
        }
    }
    match (made, cidfile.as_mut()) {
        (Err(e), Some((p, _))) => {
            let _ = std::fs::remove_file(p);
            Err(e)
        }
        (Ok(rec), Some((p, f))) => {
            use std::io::Write;
            f.write_all(rec.id.as_bytes()).with_context(|| {
                format!("--cidfile {}: write the id of {}", p.display(), rec.name)
            })?;
            Ok(rec)
        }
        (made, None) => made,
    }
}

pub fn create(root: &Path, run_root: &Path, a: CreateArgs) -> Result<()> {
    (|| {
        let engine = open(root, run_root)?;
        let rec = create_record(root, &engine, &a)?;
        println!("{}", rec.id);
        Ok(())
    })()
    .map_err(run_error)
}

/// The error of a failed start, with Docker's exit code.
fn start_failure(msg: &str) -> anyhow::Error {
    anyhow::Error::new(RunError {
        code: crate::output::run_exit_code(berth_engine::exec::start_failure_kind(msg)),
        msg: msg.to_string(),
    })
}

/// Starts and returns the session, or the start's failure (cleaned up).
fn start_session(engine: &Engine, id: &str) -> Result<(Session, i32)> {
    start_session_with(engine, id, None)
}

/// [`start_session`] with a monitor started ahead of time.
fn start_session_with(
    engine: &Engine,
    id: &str,
    pre: Option<berth_engine::PreMonitor>,
) -> Result<(Session, i32)> {
    engine.start_session(id, pre).map_err(|e| match &e {
        berth_engine::Error::StartFailed { .. } => start_failure(&e.to_string()),
        _ => e.into(),
    })
}

pub fn run(root: &Path, run_root: &Path, a: RunArgs) -> Result<()> {
    // Started first: its start-up overlaps with all that follows.
    let pre = berth_engine::PreMonitor::spawn(
        run_root,
        a.create
            .flags
            .runtime
            .as_deref()
            .unwrap_or(berth_engine::specgen::DEFAULT_RUNTIME),
    );
    let engine = open(root, run_root).map_err(run_error)?;
    // A pod whose infra is down: its start comes first, with a monitor of
    // its own started ahead as well.
    let pre = match (pre, &a.create.flags.pod) {
        (Some(p), Some(pod)) if engine.pod_infra_down(pod) => Some(p.with_infra(
            berth_engine::PreMonitor::spawn(run_root, berth_engine::specgen::DEFAULT_RUNTIME),
        )),
        (p, _) => p,
    };
    let rec = create_record(root, &engine, &a.create).map_err(run_error)?;
    let started = start_session_with(&engine, &rec.id, pre);
    if started.is_err() && rec.spec.lifecycle.auto_remove {
        // --rm: a container that could not start is not kept either (a
        // runtime failure was cleaned up already; this is for the others).
        let _ = engine.remove(&rec.id, true, true);
    }
    let (s, _) = started.map_err(run_error)?;
    if a.detach {
        println!("{}", rec.id);
        return Ok(());
    }
    let code = attach_session(
        &engine,
        &rec,
        s,
        a.create.flags.interactive,
        a.create.flags.tty,
        true,
        a.sig_proxy,
    )?;
    if code != 0 {
        return Err(ExitCode(code).into());
    }
    Ok(())
}

/// Puts the terminal in raw mode until dropped.
struct RawTerminal(Option<libc::termios>);

impl RawTerminal {
    fn enable() -> RawTerminal {
        // SAFETY: termios is plain data filled by tcgetattr.
        let mut t: libc::termios = unsafe { std::mem::zeroed() };
        // SAFETY: fd 0 and a valid out pointer.
        if unsafe { libc::tcgetattr(0, &mut t) } != 0 {
            return RawTerminal(None);
        }
        let orig = t;
        // SAFETY: cfmakeraw edits the struct in place.
        unsafe { libc::cfmakeraw(&mut t) };
        // SAFETY: fd 0 and a valid termios.
        unsafe { libc::tcsetattr(0, libc::TCSANOW, &t) };
        RawTerminal(Some(orig))
    }
}

impl Drop for RawTerminal {
    fn drop(&mut self) {
        if let Some(t) = &self.0 {
            // SAFETY: fd 0 and a valid termios.
            unsafe { libc::tcsetattr(0, libc::TCSANOW, t) };
        }
    }
}

/// Our terminal's size: rows, columns.
fn window_size() -> Option<(u16, u16)> {
    // SAFETY: winsize is plain data filled by the ioctl.
    let mut ws: libc::winsize = unsafe { std::mem::zeroed() };
    // SAFETY: TIOCGWINSZ writes one winsize.
    if unsafe { libc::ioctl(1, libc::TIOCGWINSZ, &mut ws) } != 0 {
        // SAFETY: as above, on stdin.
        if unsafe { libc::ioctl(0, libc::TIOCGWINSZ, &mut ws) } != 0 {
            return None;
        }
    }
    Some((ws.ws_row, ws.ws_col))
}

/// Streams a started container's output, feeds it stdin, forwards
/// signals (without a terminal, as Docker's sig-proxy) and window sizes,
/// then cleans up after it. Returns its exit code.
/// `owner`: this client started the container and cleans up after it
/// (an `attach` client instead waits for the monitor to do so).
fn attach_session(
    engine: &Engine,
    rec: &Record,
    s: Session,
    interactive: bool,
    tty: bool,
    owner: bool,
    sig_proxy: bool,
) -> Result<i32> {
    // Signals go to a thread that forwards them; the mask is inherited by
    // threads started after this.
    // SAFETY: sigset_t is plain data set up by sigemptyset/sigaddset.
    let mut set: libc::sigset_t = unsafe { std::mem::zeroed() };
    let proxied = [
        libc::SIGINT,
        libc::SIGTERM,
        libc::SIGHUP,
        libc::SIGQUIT,
        libc::SIGUSR1,
        libc::SIGUSR2,
    ];
    let mut sigs = vec![libc::SIGWINCH];
    if sig_proxy {
        sigs.extend(proxied);
    }
    // SAFETY: set is valid; blocking signals in this thread only.
    unsafe {
        libc::sigemptyset(&mut set);
        for sg in sigs {
            libc::sigaddset(&mut set, sg);
        }
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
    }
    let input = s.input()?;
    let raw = if tty && std::io::stdin().is_terminal() {
        Some(RawTerminal::enable())
    } else {
        None
    };
    let resize = |i: &Input| {
        if let Some((rows, cols)) = window_size() {
            i.resize(rows, cols);
        }
    };
    if tty {
        resize(&input);
    }
    {
        let i = input.clone();
        let forward = engine.signal_forwarder(rec)?;
        std::thread::spawn(move || loop {
            let mut sig: libc::c_int = 0;
            // SAFETY: set holds the blocked signals; sig is a valid out pointer.
            if unsafe { libc::sigwait(&set, &mut sig) } != 0 {
                return;
            }
            if sig == libc::SIGWINCH {
                resize(&i);
                continue;
            }
            if tty && sig == libc::SIGINT {
                continue;
            }
            forward.send(sig);
        });
    }
    let io = Streams {
        stdin: interactive.then(|| Box::new(std::io::stdin()) as Box<dyn Read + Send>),
        stdout: &mut std::io::stdout().lock(),
        stderr: &mut std::io::stderr(),
    };
    let outcome = engine.run_session(rec, s, input, io, owner);
    drop(raw);
    match outcome? {
        Outcome::Exited { code, oom } => {
            if oom {
                eprintln!(
                    "berth: container {} was killed by the OOM killer (memory limit reached)",
                    rec.name
                );
            }
            Ok(code)
        }
        Outcome::Detached => {
            eprintln!(
                "\r\nDetached from {} (still running; `berth attach {}` to return)",
                rec.name, rec.name
            );
            Ok(0)
        }
        Outcome::StartFailed(msg) => Err(start_failure(&msg)),
        Outcome::Lost => bail!(
            "lost the container's monitor; see `berth ps -a` and `berth logs {}`",
            rec.name
        ),
    }
}

#[derive(Args, Debug)]
pub struct StartArgs {
    /// Attach to the container's output and wait for it.
    #[arg(short = 'a', long)]
    pub attach: bool,
    /// Attach stdin too.
    #[arg(short = 'i', long)]
    pub interactive: bool,
    /// Start every container that is not running (those --filter keeps).
    #[arg(long, conflicts_with_all = ["attach", "interactive", "containers"])]
    pub all: bool,
    /// With --all: only containers that match (KEY=VALUE, the keys of
    /// `berth ps --filter`, e.g. restart-policy=always).
    #[arg(
        short = 'f',
        long = "filter",
        value_name = "KEY=VALUE",
        requires = "all"
    )]
    pub filter: Vec<String>,
    /// The containers (name or id).
    #[arg(required_unless_present = "all")]
    pub containers: Vec<String>,
}

pub fn start(root: &Path, run_root: &Path, a: StartArgs) -> Result<()> {
    let engine = open(root, run_root).map_err(run_error)?;
    if a.all {
        let list = crate::views::filtered(&engine, &a.filter)?;
        let names: Vec<String> = list
            .into_iter()
            .filter(|r| !matches!(r.state.status, Status::Running | Status::Restarting))
            .map(|r| r.name)
            .collect();
        return start_each(&engine, &names);
    }
    if a.attach || a.interactive {
        if a.containers.len() != 1 {
            bail!("start --attach takes one container");
        }
        let rec = engine.get(&a.containers[0])?;
        let (s, _) = start_session(&engine, &rec.id).map_err(run_error)?;
        let code = attach_session(
            &engine,
            &rec,
            s,
            a.interactive,
            rec.spec.process.tty,
            true,
            true,
        )?;
        if code != 0 {
            return Err(ExitCode(code).into());
        }
        return Ok(());
    }
    start_each(&engine, &a.containers)
}

/// Starts each container (name or id), printing its name; the first error
/// after all were tried.
pub fn start_each(engine: &Engine, containers: &[String]) -> Result<()> {
    let mut failed = None;
    for c in containers {
        let r = engine.get(c).map_err(anyhow::Error::from).and_then(|rec| {
            if rec.state.status == Status::Running {
                return Ok(());
            }
            start_session(engine, &rec.id).map(|_| ())
        });
        match r {
            Ok(()) => println!("{c}"),
            Err(e) => {
                let e = run_error(e);
                crate::output::print_error(&e);
                failed = Some(e);
            }
        }
    }
    // Each error was printed already: only the exit code is left.
    match failed {
        Some(e) => Err(ExitCode(e.downcast_ref::<RunError>().map_or(125, |r| r.code)).into()),
        None => Ok(()),
    }
}

#[derive(Args, Debug)]
pub struct StopArgs {
    /// Seconds to wait before SIGKILL (default: the container's --stop-timeout, else 10).
    #[arg(short = 't', long = "time", alias = "timeout")]
    pub time: Option<u32>,
    #[arg(required = true)]
    pub containers: Vec<String>,
}

/// Runs `f` on each container, printing its name as given; errors are
/// printed and the exit status is 1 if any failed (as Docker).
pub(crate) fn each(containers: &[String], mut f: impl FnMut(&str) -> Result<()>) -> Result<()> {
    let mut failed = false;
    for c in containers {
        match f(c) {
            Ok(()) => println!("{c}"),
            Err(e) => {
                crate::output::print_error(&e);
                failed = true;
            }
        }
    }
    if failed {
        Err(ExitCode(1).into())
    } else {
        Ok(())
    }
}

pub fn stop(root: &Path, run_root: &Path, a: StopArgs) -> Result<()> {
    let engine = open(root, run_root)?;
    each(&a.containers, |c| {
        engine.stop(c, a.time)?;
        Ok(())
    })
}

pub fn restart(root: &Path, run_root: &Path, a: StopArgs) -> Result<()> {
    let engine = open(root, run_root)?;
    each(&a.containers, |c| {
        let rec = engine.stop(c, a.time)?;
        start_session(&engine, &rec.id)?;
        Ok(())
    })
}

#[derive(Args, Debug)]
pub struct KillArgs {
    /// The signal (name or number).
    #[arg(short = 's', long, default_value = "KILL")]
    pub signal: String,
    #[arg(required = true)]
    pub containers: Vec<String>,
}

pub fn kill(root: &Path, run_root: &Path, a: KillArgs) -> Result<()> {
    let engine = open(root, run_root)?;
    let sig = berth_engine::specgen::parse_signal(&a.signal)?;
    each(&a.containers, |c| {
        engine.kill(c, sig, true)?;
        Ok(())
    })
}

#[derive(Args, Debug)]
pub struct RmArgs {
    /// Kill and remove running containers too.
    #[arg(short = 'f', long)]
    pub force: bool,
    /// Remove the container's anonymous volumes.
    #[arg(short = 'v', long)]
    pub volumes: bool,
    #[arg(required = true)]
    pub containers: Vec<String>,
}

pub fn rm(root: &Path, run_root: &Path, a: RmArgs) -> Result<()> {
    let engine = open(root, run_root)?;
    each(&a.containers, |c| {
        engine.remove(c, a.force, a.volumes)?;
        Ok(())
    })
}

#[derive(Args, Debug)]
pub struct WaitArgs {
    #[arg(required = true)]
    pub containers: Vec<String>,
}

pub fn wait(root: &Path, run_root: &Path, a: WaitArgs) -> Result<()> {
    let engine = open(root, run_root)?;
    let mut failed = false;
    for c in &a.containers {
        match engine.wait(c) {
            Ok(code) => println!("{code}"),
            Err(e) => {
                crate::output::print_error(&e.into());
                failed = true;
            }
        }
    }
    if failed {
        return Err(ExitCode(1).into());
    }
    Ok(())
}

pub fn cleanup(root: &Path, run_root: &Path, id: &str) -> Result<()> {
    let engine = open(root, run_root)?;
    engine.cleanup(id)?;
    Ok(())
}

#[derive(Args, Debug)]
pub struct AttachArgs {
    /// Do not send stdin to the container.
    #[arg(long)]
    pub no_stdin: bool,
    /// Pass the signals berth receives on to the container.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    pub sig_proxy: bool,
    /// The container (name or id).
    pub container: String,
}

pub fn attach(root: &Path, run_root: &Path, a: AttachArgs) -> Result<()> {
    let engine = open(root, run_root)?;
    let (rec, s) = engine.attach(&a.container)?;
    let stdin = rec.spec.process.stdin && !a.no_stdin;
    let code = attach_session(
        &engine,
        &rec,
        s,
        stdin,
        rec.spec.process.tty,
        false,
        a.sig_proxy,
    )?;
    if code != 0 {
        return Err(ExitCode(code).into());
    }
    Ok(())
}

#[derive(Args, Debug)]
#[command(trailing_var_arg = true)]
pub struct ExecArgs {
    /// Keep stdin open.
    #[arg(short = 'i', long)]
    pub interactive: bool,
    /// Give the process a terminal.
    #[arg(short = 't', long)]
    pub tty: bool,
    /// Run in the background.
    #[arg(short = 'd', long)]
    pub detach: bool,
    /// Set an environment variable (KEY=VALUE, or KEY to take it from here).
    #[arg(short = 'e', long = "env", value_name = "KEY=VALUE")]
    pub env: Vec<String>,
    /// Read environment variables from a file (KEY=VALUE lines, # comments).
    #[arg(long = "env-file", value_name = "FILE")]
    pub env_file: Vec<PathBuf>,
    /// Run as USER[:GROUP].
    #[arg(short = 'u', long)]
    pub user: Option<String>,
    /// The working directory.
    #[arg(short = 'w', long)]
    pub workdir: Option<String>,
    /// Give the process every capability.
    #[arg(long)]
    pub privileged: bool,
    /// Keys that detach from the process with -it, leaving it running
    /// (default ctrl-p,ctrl-q; an empty string: none).
    #[arg(long, value_name = "KEYS")]
    pub detach_keys: Option<String>,
    /// The container (name or id).
    pub container: String,
    /// The command and its arguments.
    #[arg(required = true, allow_hyphen_values = true)]
    pub command: Vec<String>,
}

/// The exit code of `berth exec` for the runtime's status `st`: the
/// process's own, or Docker's 126/127/125 when the runtime could not start
/// it (it has printed why).
fn exec_code(x: &berth_engine::exec::Exec, st: std::process::ExitStatus) -> i32 {
    match x.runtime_error() {
        Some(msg) => crate::output::run_exit_code(berth_engine::exec::start_failure_kind(&msg)),
        None => st.code().unwrap_or(1),
    }
}

/// `exec -d`: a waiter (`berth container exec-wait`, in a process group
/// of its own so that it outlives us) runs the runtime's exec and records
/// the process's end; we return once the runtime has started the process
/// (its pid file), or with the waiter's code and words if it could not.
fn exec_detached(engine: &berth_engine::Engine, x: &berth_engine::exec::Exec) -> Result<()> {
    let null = std::process::Stdio::null;
    let mut waiter = engine
        .exec_waiter(x)?
        .stdin(null())
        .stdout(null())
        .stderr(std::process::Stdio::piped())
        .process_group(0)
        .spawn()
        .context("start the waiter of the detached exec (berth container exec-wait)")?;
    let pid_file = x.pid_file();
    let started = || std::fs::metadata(&pid_file).is_ok_and(|m| m.len() > 0);
    let ended = loop {
        if started() {
            break None;
        }
        if let Some(st) = waiter.try_wait().context("wait for the exec's waiter")? {
            break Some(st);
        }
        std::thread::sleep(std::time::Duration::from_millis(2));
    };
    // Started (and maybe ended already): done, as Docker's `exec -d`.
    let started = started();
    let _ = std::fs::remove_file(&pid_file);
    match ended {
        Some(st) if !started => {
            // It could not start: the waiter said why (no process holds
            // its stderr).
            if let Some(mut e) = waiter.stderr.take() {
                let _ = std::io::copy(&mut e, &mut std::io::stderr());
            }
            Err(ExitCode(st.code().filter(|&c| c != 0).unwrap_or(125)).into())
        }
        _ => Ok(()),
    }
}

/// `container exec-wait ID TAG` (hidden): runs the prepared exec `TAG`
/// of container `ID` (its output dropped, as Docker's `exec -d`), waits
/// for it and records its `exec_die`; exits with its code.
pub fn exec_wait(root: &Path, run_root: &Path, id: &str, tag: &str) -> Result<()> {
    let engine = open(root, run_root)?;
    let x = engine.prepared_exec(id, tag)?;
    let null = std::process::Stdio::null;
    let st = x
        .command(&["--pid-file", &x.pid_file().to_string_lossy()])
        .stdin(null())
        .stdout(null())
        .stderr(null())
        .status()
        .context("run the runtime's exec")?;
    let code = exec_code(&x, st);
    engine.exec_ended(&x, code);
    if code != 0 {
        if let Some(msg) = x.runtime_error() {
            eprintln!("berth: exec in container {}: {msg}", x.record.name);
        }
        return Err(ExitCode(code).into());
    }
    Ok(())
}

pub fn exec(root: &Path, run_root: &Path, a: ExecArgs) -> Result<()> {
    // Window changes are taken by one thread that waits for SIGWINCH: it is
    // blocked before any thread starts (the engine may start one), or a
    // thread that has it unblocked would take it and drop it.
    // SAFETY: sigset_t is plain data set up by sigemptyset/sigaddset; the
    // mask change affects this thread and those it starts.
    let mut winch: libc::sigset_t = unsafe { std::mem::zeroed() };
    // SAFETY: as above.
    unsafe {
        libc::sigemptyset(&mut winch);
        libc::sigaddset(&mut winch, libc::SIGWINCH);
        if a.tty {
            libc::pthread_sigmask(libc::SIG_BLOCK, &winch, std::ptr::null_mut());
        }
    }
    let engine = open(root, run_root)?;
    let mut env = Vec::new();
    for f in &a.env_file {
        env.extend(docker::env_file(f)?);
    }
    for e in &a.env {
        let e = docker::env_entry(e)?;
        if !e.is_empty() {
            env.push(e);
        }
    }
    let x = engine.prepare_exec(
        &a.container,
        &berth_engine::exec::ExecOptions {
            args: a.command.clone(),
            env,
            user: a.user.clone(),
            workdir: a.workdir.clone(),
            tty: a.tty,
            privileged: a.privileged,
            console_size: window_size(),
        },
    )?;
    let keys = match &a.detach_keys {
        Some(k) => session::parse_detach_keys(k)?,
        None => session::DEFAULT_DETACH_KEYS.to_vec(),
    };
    let null = || std::process::Stdio::null();
    if a.detach {
        return exec_detached(&engine, &x);
    }
    if !a.tty {
        let mut c = x.command(&[]);
        if !a.interactive {
            c.stdin(null());
        }
        let st = c.status().context("run the runtime's exec")?;
        let code = exec_code(&x, st);
        engine.exec_ended(&x, code);
        if code != 0 {
            return Err(ExitCode(code).into());
        }
        return Ok(());
    }
    // A terminal: the runtime sends the pty master over a console socket;
    // we copy between it and ours.
    let dir = tempfile::Builder::new()
        .prefix("exec")
        .tempdir_in(engine.paths.run_dir(&x.record.id))
        .context("make the console socket directory")?;
    // Named through our fd of its directory: a socket's path must fit in
    // 108 bytes, which a run directory under a long --run-root does not.
    let dir_fd = std::fs::File::open(dir.path()).context("open the console socket directory")?;
    let sock = format!(
        "/proc/{}/fd/{}/c.sock",
        std::process::id(),
        std::os::fd::AsRawFd::as_raw_fd(&dir_fd)
    );
    let listener =
        std::os::unix::net::UnixListener::bind(&sock).context("listen on the console socket")?;
    // In a process group of its own: after a detach it waits on for the
    // process, and the user's shell hanging up its jobs must not reach it.
    let mut child = x
        .command(&["--console-socket", &sock])
        .stdin(null())
        .stdout(null())
        .stderr(std::process::Stdio::piped())
        .process_group(0)
        .spawn()
        .context("run the runtime's exec")?;
    // Its errors are passed on through a pipe rather than our stderr, which
    // it would otherwise hold open (for whoever reads it) after a detach.
    let rt_err = child.stderr.take().map(|mut e| {
        std::thread::spawn(move || {
            let _ = std::io::copy(&mut e, &mut std::io::stderr());
        })
    });
    let Some(master) = berth_engine::exec::receive_console(&listener, &mut child)? else {
        let st = child.wait().context("wait for the runtime")?;
        if let Some(t) = rt_err {
            let _ = t.join();
        }
        return Err(ExitCode(exec_code(&x, st).max(1)).into());
    };
    let master = std::fs::File::from(master);
    let raw = if std::io::stdin().is_terminal() {
        Some(RawTerminal::enable())
    } else {
        None
    };
    let set_size = |m: &std::fs::File| {
        if let Some((rows, cols)) = window_size() {
            session::resize_terminal(m, rows, cols);
        }
    };
    set_size(&master);
    // Window changes follow the terminal (SIGWINCH was blocked first thing).
    {
        let m = master.try_clone().context("dup the terminal")?;
        std::thread::spawn(move || loop {
            let mut sig: libc::c_int = 0;
            // SAFETY: winch holds the blocked signal; sig is a valid out pointer.
            if unsafe { libc::sigwait(&winch, &mut sig) } != 0 {
                return;
            }
            set_size(&m);
        });
    }
    let stdin = a
        .interactive
        .then(|| Box::new(std::io::stdin()) as Box<dyn Read + Send>);
    let out = &mut std::io::stdout().lock();
    let end = session::pump_terminal(&master, stdin, out, DetachKeys::new(keys));
    drop(raw);
    if end? == TerminalEnd::Detached {
        session::keep_draining(&master)?;
        eprintln!(
            "\r\nDetached from the exec session in {} (the process goes on; its output is dropped)",
            x.record.name
        );
        return Ok(());
    }
    let st = child.wait().context("wait for the runtime")?;
    if let Some(t) = rt_err {
        let _ = t.join();
    }
    // The runtime sends the terminal before it looks the program up: a
    // command that is not found fails after that, and gets Docker's code
    // (127, 126) as without a terminal.
    let code = exec_code(&x, st);
    engine.exec_ended(&x, code);
    if code != 0 {
        return Err(ExitCode(code).into());
    }
    Ok(())
}
