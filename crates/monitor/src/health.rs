//! Health checks and probes (`berth_monitor_proto::health`), run by the
//! monitor in its own poll loop: no thread that outlives a call, no timer
//! process, no systemd.
//!
//! - An exec check is the runtime's `exec --detach --pid-file` of a
//!   process file the engine wrote; the process it starts is re-parented
//!   to the monitor (the child subreaper), which reaps it for its exit
//!   code, reads its output through a pipe (the first [`OUTPUT_MAX`]
//!   bytes kept, the rest read and dropped) and SIGKILLs it at the
//!   timeout (it is our unreaped child: the pid cannot be reused).
//! - A tcp or http probe is a socket made inside the container's network
//!   namespace by a short-lived thread: it `setns`es itself (only itself)
//!   into `/proc/INIT/ns/net`, makes the socket and ends; the thread is
//!   joined before the call returns, so the monitor is single-threaded
//!   again before it next forks, and its own namespace never changes. The
//!   socket keeps its namespace; the monitor drives it, non-blocking, in
//!   its poll loop.
//!
//! - An HTTPS or gRPC probe (a [`Action::Helper`]) starts as a tcp one;
//!   once connected, the socket is handed as stdin to the probe helper
//!   (`berth container probe`, by the absolute path the engine recorded
//!   in the config), a short-lived process that links TLS and HTTP/2 so
//!   that the monitor does not. The monitor reads its output as an exec
//!   check's, reaps it, and SIGKILLs it at the timeout.
//!
//! The results go to the `health` file of the run directory, replaced
//! atomically at each change.

use berth_monitor_proto::health::{
    Action, Entry, Health, OnFailure, Probe, ProbeKind, Status, OUTPUT_MAX,
};
use berth_sys::process::ExitStatus;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// What the monitor should do to its container after a check.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// SIGKILL the container at once; its restart policy applies (a
    /// failed postStart hook; podman's `--health-on-failure kill`).
    Kill,
    /// Stop it the kubelet's way (a failed liveness or startup probe):
    /// its preStop hook, its stop signal, SIGKILL once `grace` (from the
    /// hook's start) is over; its restart policy applies.
    Terminate { grace: Duration },
    /// Stop it as [`Verdict::Terminate`] does, then start it again
    /// whatever its restart policy (podman's `--health-on-failure
    /// restart`: RestartWithTimeout with the stop timeout).
    Restart { grace: Duration },
    /// Stop it: `berth stop` (its stop signal and timeout), no restart.
    Stop,
}

enum Phase {
    Connecting,
    Writing,
    Reading,
}

/// What a connected socket is for.
enum Then {
    /// Nothing: the tcp probe passed.
    Done,
    /// An HTTP/1.0 request and its status line.
    Http,
    /// The probe helper's command line: it gets the socket as stdin.
    Helper(Vec<String>),
}

enum Running {
    Exec {
        runtime: i32,
        pid: Option<i32>,
        out: Option<OwnedFd>,
        pid_file: PathBuf,
        log_file: PathBuf,
    },
    Net {
        sock: OwnedFd,
        phase: Phase,
        request: Vec<u8>,
        sent: usize,
        then: Then,
    },
    /// The probe helper, given the connected socket.
    Helper { pid: i32, out: Option<OwnedFd> },
    /// A sleep hook: done at `until` (a deadline of the poll loop, no
    /// process, no blocking sleep).
    Sleep { until: Instant },
}

struct Check {
    what: Running,
    start: i64,
    deadline: Instant,
    buf: Vec<u8>,
}

struct ProbeState {
    p: Probe,
    next: Instant,
    successes: u32,
    failures: u32,
    passing: bool,
    running: Option<Check>,
    /// Asked by `berth healthcheck run`: checked at once.
    now: bool,
}

pub struct Checker {
    probes: Vec<ProbeState>,
    pub health: Health,
    file: PathBuf,
    run_dir: PathBuf,
    runtime: PathBuf,
    runtime_args: Vec<String>,
    id: String,
    /// The container's init while it runs (0: checks are off).
    pid: i32,
    started: Instant,
    /// Checks killed at their timeout, reaped later and dropped then.
    forget: Vec<i32>,
    /// A check asked for by clients has finished: they get the status.
    pub answered: bool,
    /// Run with the new status when it changes (see `Config::event_command`).
    event_command: Vec<String>,
    /// This run's postStart hook has passed (or there is none): the
    /// probes run.
    post_started: bool,
    /// How the preStop hook asked for (`PRE_STOP_RUN`) ended: `ok` or why
    /// it failed; the clients that asked get it.
    pub pre_stop_result: Option<String>,
    /// `Config::probe_helper`.
    probe_helper: Vec<String>,
    /// Whether the helper's drop to an unprivileged id was checked (and
    /// its fallback reported) yet: once per monitor.
    helper_checked: bool,
    /// The persistent directory's copy of the health file: written when
    /// the container ends for good, so `inspect` keeps the last results of
    /// a stopped container; the log goes on from it at the next start.
    persist_file: Option<PathBuf>,
}

fn now_ns() -> i64 {
    berth_monitor_proto::now_nanos()
}

impl Checker {
    pub fn new(cfg: &berth_monitor_proto::config::Config) -> Checker {
        let now = Instant::now();
        let persist_file = (!cfg.probes.is_empty() && !cfg.persist_dir.as_os_str().is_empty())
            .then(|| cfg.persist_dir.join("health"));
        // The log of the container's earlier runs goes on (Docker's).
        let log = persist_file
            .as_ref()
            .and_then(|f| std::fs::read_to_string(f).ok())
            .and_then(|t| Health::parse(&t).ok())
            .map(|h| h.log)
            .unwrap_or_default();
        Checker {
            probes: cfg
                .probes
                .iter()
                .map(|p| ProbeState {
                    p: p.clone(),
                    next: now,
                    successes: 0,
                    failures: 0,
                    passing: false,
                    running: None,
                    now: false,
                })
                .collect(),
            health: Health {
                log,
                ..Health::default()
            },
            file: cfg.run_dir.join("health"),
            run_dir: cfg.run_dir.clone(),
            runtime: cfg.runtime.clone(),
            runtime_args: cfg.runtime_args.clone(),
            id: cfg.id.clone(),
            pid: 0,
            started: now,
            forget: Vec::new(),
            answered: false,
            event_command: cfg.event_command.clone(),
            post_started: true,
            pre_stop_result: None,
            probe_helper: cfg.probe_helper.clone(),
            helper_checked: false,
            persist_file,
        }
    }

    /// A child of the monitor's that nobody waits for: dropped once reaped.
    pub fn forget_pid(&mut self, pid: i32) {
        self.forget.push(pid);
    }

    pub fn any(&self) -> bool {
        !self.probes.is_empty()
    }

    /// The probe whose results make the status: Docker's check, else the
    /// liveness, startup or readiness probe.
    fn primary(&self) -> Option<usize> {
        [
            ProbeKind::DockerHealth,
            ProbeKind::Liveness,
            ProbeKind::Startup,
            ProbeKind::Readiness,
        ]
        .iter()
        .find_map(|k| self.probes.iter().position(|s| s.p.kind == *k))
    }

    fn has(&self, k: ProbeKind) -> bool {
        self.probes.iter().any(|s| s.p.kind == k)
    }

    /// The container (re)started with init `pid`: checks from scratch.
    pub fn container_started(&mut self, pid: i32) {
        if !self.any() {
            return;
        }
        self.container_ended();
        self.pid = pid;
        self.started = Instant::now();
        self.post_started = !self.has(ProbeKind::PostStart);
        let now = self.started;
        for s in &mut self.probes {
            s.successes = 0;
            s.failures = 0;
            s.passing = false;
            let first = if s.p.kind == ProbeKind::DockerHealth {
                period(&s.p, true)
            } else {
                Duration::ZERO
            };
            s.next = now + s.p.initial_delay + first;
        }
        self.health = Health {
            status: Status::Starting,
            failing_streak: 0,
            ready: !self.has(ProbeKind::Readiness) && !self.has(ProbeKind::Startup),
            started: !self.has(ProbeKind::Startup),
            log: std::mem::take(&mut self.health.log),
        };
        self.save();
        if self.health.ready {
            self.event(READY);
        }
    }

    /// The container ended: running checks are killed.
    pub fn container_ended(&mut self) {
        self.pid = 0;
        for i in 0..self.probes.len() {
            let asked = std::mem::take(&mut self.probes[i].now);
            if self.probes[i].p.kind == ProbeKind::PreStop && asked {
                self.pre_stop_result = Some("the container ended before its preStop hook".into());
            }
            if let Some(c) = self.probes[i].running.take() {
                self.abandon(c);
            }
        }
        if self.any() && self.health.ready {
            self.health.ready = false;
            self.save();
            self.event(NOT_READY);
        }
    }

    fn abandon(&mut self, c: Check) {
        if let Running::Helper { pid, .. } = c.what {
            // SAFETY: kill has no memory effects; `pid` is our child, not
            // reaped yet (the pid is not reused).
            unsafe { libc::kill(pid, libc::SIGKILL) };
            self.forget.push(pid);
            return;
        }
        if let Running::Exec {
            runtime,
            pid,
            pid_file,
            log_file,
            ..
        } = c.what
        {
            let victim = pid.unwrap_or(runtime);
            // SAFETY: kill has no memory effects; `victim` is our child,
            // not reaped yet (the pid is not reused).
            unsafe { libc::kill(victim, libc::SIGKILL) };
            self.forget.push(victim);
            if pid.is_some() {
                self.forget.push(runtime);
            }
            let _ = std::fs::remove_file(pid_file);
            let _ = std::fs::remove_file(log_file);
        }
    }

    /// `berth healthcheck run`: every docker-health or liveness probe at
    /// once. False when there is none, or the container does not run.
    pub fn run_now(&mut self) -> bool {
        let Some(i) = self.primary() else {
            return false;
        };
        if self.pid == 0 {
            return false;
        }
        self.probes[i].now = true;
        self.probes[i].next = Instant::now();
        true
    }

    /// The preStop hook's index among the checks, if it has one.
    fn pre_stop(&self) -> Option<usize> {
        self.probes
            .iter()
            .position(|s| s.p.kind == ProbeKind::PreStop)
    }

    /// `berth stop`: the preStop hook at once. False when there is none,
    /// or the container does not run.
    pub fn run_pre_stop(&mut self) -> bool {
        let Some(i) = self.pre_stop() else {
            return false;
        };
        if self.pid == 0 {
            return false;
        }
        // The probes stop: the container is going.
        for j in 0..self.probes.len() {
            if j != i {
                if let Some(c) = self.probes[j].running.take() {
                    self.abandon(c);
                }
            }
        }
        self.probes[i].now = true;
        self.probes[i].next = Instant::now();
        true
    }

    /// Says once in the monitor's log when the probe helper cannot drop to
    /// an unprivileged uid (this user namespace maps none but 0): it then
    /// runs as root by id with every capability dropped.
    fn check_helper_ids(&self) {
        use berth_monitor_proto::health::{unprivileged_id, HELPER_ID};
        // SAFETY: geteuid has no memory effects.
        if unsafe { libc::geteuid() } != 0 {
            return;
        }
        let map = std::fs::read_to_string("/proc/self/uid_map").unwrap_or_default();
        if unprivileged_id(&map, HELPER_ID).is_none() {
            eprintln!(
                "berth-monitor: container {}: this user namespace maps no uid but 0; the probe helper runs as uid 0 with every capability dropped and no new privileges",
                self.id
            );
        }
    }

    /// Gives up on a preStop hook that has outlasted the grace period (it
    /// is killed if it is a process); false when none was running.
    pub fn abandon_pre_stop(&mut self) -> bool {
        let Some(i) = self.pre_stop() else {
            return false;
        };
        let asked = std::mem::take(&mut self.probes[i].now);
        let running = self.probes[i].running.take();
        let was = asked || running.is_some();
        if let Some(c) = running {
            self.abandon(c);
        }
        if was {
            self.pre_stop_result = Some("it did not end within the grace period".into());
        }
        was
    }

    /// The poll timeout, `timeout` (ms, -1: none) or shorter to wake for
    /// the next check or deadline.
    pub fn clamp_timeout(&self, timeout: i32) -> i32 {
        if self.pid == 0 {
            return timeout;
        }
        let now = Instant::now();
        let mut t = timeout;
        for s in &self.probes {
            let at = match &s.running {
                Some(Check {
                    what: Running::Sleep { until },
                    deadline,
                    ..
                }) => (*until).min(*deadline),
                Some(c) => c.deadline,
                // Waiting for the startup probe, or a startup probe that
                // has passed: nothing to wake for.
                None if self.idle(s) => continue,
                None => s.next,
            };
            // Exec checks are also waited for by SIGCHLD; a few ms
            // rounding up keeps from spinning.
            let ms = at.saturating_duration_since(now).as_millis().min(60_000) as i32 + 1;
            if t < 0 || ms < t {
                t = ms;
            }
        }
        t
    }

    /// Whether probe `s` does not run now: it waits for the startup probe
    /// (unless asked for by hand), or it is a startup probe that passed.
    fn idle(&self, s: &ProbeState) -> bool {
        match s.p.kind {
            // Only when asked, once.
            ProbeKind::PreStop => !s.now,
            ProbeKind::PostStart => self.post_started,
            // A preStop asked for: the container is going.
            _ if self.stopping() => true,
            _ if !self.post_started => true,
            ProbeKind::Startup => self.health.started,
            _ => !self.health.started && !s.now,
        }
    }

    /// A preStop hook was asked for and has not ended.
    fn stopping(&self) -> bool {
        self.probes
            .iter()
            .any(|s| s.p.kind == ProbeKind::PreStop && (s.now || s.running.is_some()))
    }

    /// The fds to poll for running checks, with their events.
    pub fn poll_fds(&self) -> Vec<(RawFd, i16)> {
        let mut v = Vec::new();
        for s in &self.probes {
            match s.running.as_ref().map(|c| &c.what) {
                Some(Running::Exec { out: Some(o), .. })
                | Some(Running::Helper { out: Some(o), .. }) => {
                    v.push((o.as_raw_fd(), libc::POLLIN))
                }
                Some(Running::Net { sock, phase, .. }) => v.push((
                    sock.as_raw_fd(),
                    match phase {
                        Phase::Reading => libc::POLLIN,
                        _ => libc::POLLOUT,
                    },
                )),
                _ => {}
            }
        }
        v
    }

    /// Makes progress on every check, starts the due ones, and finishes
    /// those that are done; what to do to the container, if anything.
    pub fn tick(&mut self, reaped: &mut crate::reaped::Reaped) -> Option<Verdict> {
        self.forget.retain(|p| reaped.remove(p).is_none());
        if self.pid == 0 {
            return None;
        }
        let mut verdict = None;
        for i in 0..self.probes.len() {
            if let Some(mut c) = self.probes[i].running.take() {
                match progress(&mut c, reaped) {
                    Some((code, out)) => {
                        let v = self.result(i, c.start, code, out);
                        verdict = verdict.or(v);
                    }
                    None if Instant::now() >= c.deadline => {
                        let t = self.probes[i].p.timeout;
                        let start = c.start;
                        self.abandon(c);
                        let msg = format!("Health check exceeded timeout ({t:?})");
                        let v = self.result(i, start, -1, msg);
                        verdict = verdict.or(v);
                    }
                    None => self.probes[i].running = Some(c),
                }
                continue;
            }
            let s = &self.probes[i];
            if Instant::now() < s.next || self.idle(s) {
                continue;
            }
            let start = now_ns();
            match self.begin(i) {
                Ok(what) => {
                    let timeout = self.probes[i].p.timeout;
                    self.probes[i].running = Some(Check {
                        what,
                        start,
                        deadline: Instant::now() + timeout,
                        buf: Vec::new(),
                    });
                }
                Err(e) => {
                    let v = self.result(i, start, -1, e);
                    verdict = verdict.or(v);
                }
            }
        }
        verdict
    }

    fn begin(&mut self, i: usize) -> Result<Running, String> {
        match self.probes[i].p.action.clone() {
            Action::Exec { process, .. } => self.begin_exec(i, &process),
            Action::Sleep(d) => Ok(Running::Sleep {
                until: Instant::now() + d,
            }),
            Action::Tcp { host, port } => {
                let sock = connect_in_netns(self.pid, &host, port)?;
                Ok(Running::Net {
                    sock,
                    phase: Phase::Connecting,
                    request: Vec::new(),
                    sent: 0,
                    then: Then::Done,
                })
            }
            Action::Helper { host, port, args } => {
                if self.probe_helper.is_empty() {
                    return Err("no probe helper is configured for this probe".into());
                }
                if !std::mem::replace(&mut self.helper_checked, true) {
                    self.check_helper_ids();
                }
                let sock = connect_in_netns(self.pid, &host, port)?;
                let mut cmd = self.probe_helper.clone();
                cmd.extend(args);
                Ok(Running::Net {
                    sock,
                    phase: Phase::Connecting,
                    request: Vec::new(),
                    sent: 0,
                    then: Then::Helper(cmd),
                })
            }
            Action::Http {
                host,
                port,
                path,
                headers,
            } => {
                let sock = connect_in_netns(self.pid, &host, port)?;
                let host_hdr = if host.is_empty() { "127.0.0.1" } else { &host };
                Ok(Running::Net {
                    sock,
                    phase: Phase::Connecting,
                    request: berth_monitor_proto::health::http_probe_request(
                        &format!("{host_hdr}:{port}"),
                        &path,
                        &headers,
                    ),
                    sent: 0,
                    then: Then::Http,
                })
            }
        }
    }

    fn begin_exec(&mut self, i: usize, process: &str) -> Result<Running, String> {
        let pid_file = self.run_dir.join(format!("probe-{i}.pid"));
        let log_file = self.run_dir.join(format!("probe-{i}.log"));
        let _ = std::fs::remove_file(&pid_file);
        let _ = std::fs::remove_file(&log_file);
        let (rd, wr) = crate::pipe().map_err(|e| format!("create a pipe for the check: {e}"))?;
        crate::set_nonblock(rd.as_raw_fd());
        let wr2 = wr
            .try_clone()
            .map_err(|e| format!("dup a pipe for the check: {e}"))?;
        let mut cmd = crate::command(&self.runtime);
        cmd.args(&self.runtime_args)
            .arg("--log")
            .arg(&log_file)
            .args(["--log-format", "json", "exec", "--detach", "--pid-file"])
            .arg(&pid_file)
            .args(["--process", process, &self.id])
            .stdin(std::process::Stdio::null())
            .stdout(wr)
            .stderr(wr2);
        let child = cmd.spawn().map_err(|e| {
            format!(
                "run the runtime {} for the health check: {e}",
                self.runtime.display()
            )
        })?;
        // `cmd` (holding the write ends) is dropped here: the pipe ends
        // when the check's process (and what it started) are done with it.
        drop(cmd);
        Ok(Running::Exec {
            runtime: child.id() as i32,
            pid: None,
            out: Some(rd),
            pid_file,
            log_file,
        })
    }

    /// Records a result of probe `i`; what to do to the container.
    fn result(&mut self, i: usize, start: i64, code: i32, output: String) -> Option<Verdict> {
        let now = Instant::now();
        let was_ready = self.health.ready;
        let primary = self.primary() == Some(i);
        let s = &mut self.probes[i];
        let ok = code == 0;
        let asked = std::mem::take(&mut s.now);
        if ok {
            s.successes += 1;
            s.failures = 0;
        } else {
            s.failures += 1;
            s.successes = 0;
        }
        let in_start_period = now.duration_since(self.started) < s.p.start_period;
        s.next = now
            + period(
                &s.p,
                in_start_period && self.health.status == Status::Starting,
            );
        let mut verdict = None;
        match s.p.kind {
            ProbeKind::DockerHealth => {}
            ProbeKind::PostStart => {
                if ok {
                    self.post_started = true;
                    for p in self.probes.iter_mut() {
                        if !p.p.kind.is_hook() {
                            p.next = now + p.p.initial_delay;
                        }
                    }
                } else {
                    // The kubelet's rule: a failed postStart kills the
                    // container; its restart policy applies.
                    eprintln!(
                        "berth-monitor: container {}: its postStart hook failed (exit code {code}): {}",
                        self.id,
                        output.trim_end()
                    );
                    verdict = Some(Verdict::Kill);
                }
                return verdict;
            }
            ProbeKind::PreStop => {
                self.pre_stop_result = Some(if ok {
                    "ok".into()
                } else {
                    let why = format!("exit code {code}: {}", output.trim_end());
                    eprintln!(
                        "berth-monitor: container {}: its preStop hook failed ({why})",
                        self.id
                    );
                    why
                });
                return verdict;
            }
            ProbeKind::Readiness => {
                if ok && s.successes >= s.p.success_threshold {
                    s.passing = true;
                } else if !ok && s.failures >= s.p.failure_threshold {
                    s.passing = false;
                }
                self.health.ready = s.passing && self.health.started;
            }
            ProbeKind::Startup => {
                if ok && s.successes >= s.p.success_threshold {
                    s.passing = true;
                    self.health.started = true;
                    let rest = self.probes.iter().any(|p| p.p.kind == ProbeKind::Readiness);
                    self.health.ready = !rest;
                    for p in self.probes.iter_mut() {
                        if p.p.kind != ProbeKind::Startup {
                            p.next = now + p.p.initial_delay;
                        }
                    }
                } else if !ok && s.failures >= s.p.failure_threshold {
                    verdict = Some(Verdict::Terminate { grace: s.p.grace });
                }
            }
            ProbeKind::Liveness => {
                if !ok && s.failures >= s.p.failure_threshold {
                    verdict = Some(Verdict::Terminate { grace: s.p.grace });
                }
            }
        }
        let before = self.health.status;
        if primary {
            let s = &self.probes[i];
            let h = &mut self.health;
            if ok {
                if s.successes >= s.p.success_threshold {
                    h.status = Status::Healthy;
                }
                h.failing_streak = 0;
            } else {
                // Docker: a failure in the start period, before any
                // success, does not count.
                let counts = !(h.status == Status::Starting
                    && now.duration_since(self.started) < s.p.start_period);
                if counts {
                    h.failing_streak += 1;
                    if h.failing_streak >= s.p.failure_threshold && h.status != Status::Unhealthy {
                        h.status = Status::Unhealthy;
                        if s.p.kind == ProbeKind::DockerHealth {
                            verdict = match s.p.on_failure {
                                OnFailure::None => None,
                                OnFailure::Kill => Some(Verdict::Kill),
                                OnFailure::Restart => Some(Verdict::Restart { grace: s.p.grace }),
                                OnFailure::Stop => Some(Verdict::Stop),
                            };
                        }
                    }
                }
            }
            let mut out = output;
            if out.len() > OUTPUT_MAX {
                let mut n = OUTPUT_MAX;
                while !out.is_char_boundary(n) {
                    n -= 1;
                }
                out.truncate(n);
            }
            h.push(Entry {
                start,
                end: now_ns(),
                exit_code: code,
                output: out,
            });
        }
        if asked {
            self.answered = true;
        }
        self.save();
        if self.health.status != before {
            self.event(self.health.status.name());
        }
        if self.health.ready != was_ready {
            self.event(if self.health.ready { READY } else { NOT_READY });
        }
        verdict
    }

    /// Starts the event command with `what` (the new status, or
    /// [`READY`]/[`NOT_READY`] when the readiness changes: a Service's
    /// name follows it); not waited for (it is reaped and dropped later).
    fn event(&mut self, what: &str) {
        let readiness = what == READY || what == NOT_READY;
        // Only Kubernetes-style probes gate a Service.
        if readiness
            && !self
                .probes
                .iter()
                .any(|s| s.p.kind != ProbeKind::DockerHealth && !s.p.kind.is_hook())
        {
            return;
        }
        let Some((prog, args)) = self.event_command.split_first() else {
            return;
        };
        let mut cmd = crate::command(prog);
        cmd.args(args)
            .arg(what)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null());
        match cmd.spawn() {
            Ok(c) => self.forget.push(c.id() as i32),
            Err(e) => eprintln!("berth-monitor: record the health status event: {e}"),
        }
    }

    /// The container has ended for good: its last results are kept in the
    /// persistent directory (the run directory goes with the monitor).
    pub fn persist(&self) {
        let Some(f) = &self.persist_file else {
            return;
        };
        if let Err(e) = berth_sys::fs::write_atomic(f, self.health.to_text().as_bytes(), 0o600) {
            eprintln!("berth-monitor: write the health file {}: {e}", f.display());
        }
    }

    fn save(&self) {
        if let Err(e) =
            berth_sys::fs::replace_file(&self.file, self.health.to_text().as_bytes(), 0o600)
        {
            eprintln!(
                "berth-monitor: write the health file {}: {e}",
                self.file.display()
            );
        }
    }
}

/// The event command's argument when the container becomes ready.
pub const READY: &str = "ready";
/// The event command's argument when the container stops being ready.
pub const NOT_READY: &str = "not-ready";

/// The wait to the next check: Docker's start interval during the start
/// period, else the period.
fn period(p: &Probe, starting: bool) -> Duration {
    if starting && !p.start_period.is_zero() && !p.start_interval.is_zero() {
        p.start_interval.min(p.period)
    } else {
        p.period
    }
}

/// Progress on a running check without blocking: its exit code and output
/// once done.
fn progress(c: &mut Check, reaped: &mut crate::reaped::Reaped) -> Option<(i32, String)> {
    match &mut c.what {
        Running::Exec {
            runtime,
            pid,
            out,
            pid_file,
            log_file,
        } => {
            if let Some(o) = out {
                if read_bounded(o.as_raw_fd(), &mut c.buf) {
                    *out = None;
                }
            }
            if pid.is_none() {
                let st = reaped.remove(runtime)?;
                if st != ExitStatus::Exited(0) {
                    let msg = crate::runtime_log_error(log_file)
                        .unwrap_or_else(|| format!("the runtime could not run the check ({st:?})"));
                    let _ = std::fs::remove_file(&*log_file);
                    return Some((-1, msg));
                }
                let text = std::fs::read_to_string(&*pid_file).unwrap_or_default();
                let _ = std::fs::remove_file(&*pid_file);
                let _ = std::fs::remove_file(&*log_file);
                match text.trim().parse::<i32>() {
                    Ok(p) if p > 0 => *pid = Some(p),
                    _ => return Some((-1, "the runtime wrote no pid for the check".into())),
                }
            }
            let st = reaped.remove(&(*pid)?)?;
            if let Some(o) = out.take() {
                read_bounded(o.as_raw_fd(), &mut c.buf);
            }
            let code = match st {
                ExitStatus::Exited(c) => c,
                ExitStatus::Signaled(_) => -1,
            };
            Some((code, String::from_utf8_lossy(&c.buf).into_owned()))
        }
        Running::Helper { pid, out } => {
            if let Some(o) = out {
                if read_bounded(o.as_raw_fd(), &mut c.buf) {
                    *out = None;
                }
            }
            let st = reaped.remove(pid)?;
            if let Some(o) = out.take() {
                read_bounded(o.as_raw_fd(), &mut c.buf);
            }
            let code = match st {
                ExitStatus::Exited(c) => c,
                ExitStatus::Signaled(_) => -1,
            };
            Some((code, String::from_utf8_lossy(&c.buf).into_owned()))
        }
        Running::Sleep { until } => (Instant::now() >= *until).then(|| (0, String::new())),
        Running::Net {
            sock,
            phase,
            request,
            sent,
            then,
        } => {
            let fd = sock.as_raw_fd();
            loop {
                match phase {
                    Phase::Connecting => {
                        if !ready(fd, libc::POLLOUT) {
                            return None;
                        }
                        let e = so_error(fd);
                        if e != 0 {
                            return Some((
                                1,
                                format!("connect: {}", io::Error::from_raw_os_error(e)),
                            ));
                        }
                        match then {
                            Then::Done => return Some((0, String::new())),
                            Then::Http => *phase = Phase::Writing,
                            Then::Helper(cmd) => {
                                let cmd = std::mem::take(cmd);
                                let sock = sock.try_clone();
                                return match sock
                                    .map_err(|e| e.to_string())
                                    .and_then(|s| spawn_helper(&cmd, s))
                                {
                                    Ok(h) => {
                                        c.what = h;
                                        None
                                    }
                                    Err(e) => Some((-1, e)),
                                };
                            }
                        }
                    }
                    Phase::Writing => {
                        match crate::write_fd(fd, &request[*sent..]) {
                            Ok(n) => *sent += n,
                            Err(e) if crate::would_block(&e) => return None,
                            Err(e) => return Some((1, format!("send the request: {e}"))),
                        }
                        if *sent == request.len() {
                            *phase = Phase::Reading;
                        }
                    }
                    Phase::Reading => {
                        let mut b = [0u8; 1024];
                        match crate::read_fd(fd, &mut b) {
                            Ok(n) => {
                                let room = 512usize.saturating_sub(c.buf.len());
                                c.buf.extend_from_slice(&b[..n.min(room)]);
                                let line_done = c.buf.windows(2).any(|w| w == b"\r\n");
                                if n == 0 || line_done || room == 0 {
                                    return Some(http_verdict(&c.buf));
                                }
                            }
                            Err(e) if crate::would_block(&e) => return None,
                            Err(e) => return Some((1, format!("read the response: {e}"))),
                        }
                    }
                }
            }
        }
    }
}

/// Starts the probe helper `cmd` with the connected socket `sock` as its
/// stdin and a pipe as its stdout and stderr (ours to read).
fn spawn_helper(cmd: &[String], sock: OwnedFd) -> Result<Running, String> {
    let (prog, args) = cmd
        .split_first()
        .ok_or_else(|| "no probe helper is configured".to_string())?;
    // The helper does blocking I/O on it.
    // SAFETY: fcntl on an fd we own.
    unsafe {
        let fl = libc::fcntl(sock.as_raw_fd(), libc::F_GETFL);
        if fl >= 0 {
            libc::fcntl(sock.as_raw_fd(), libc::F_SETFL, fl & !libc::O_NONBLOCK);
        }
    }
    let (rd, wr) = crate::pipe().map_err(|e| format!("create a pipe for the probe helper: {e}"))?;
    crate::set_nonblock(rd.as_raw_fd());
    let wr2 = wr
        .try_clone()
        .map_err(|e| format!("dup a pipe for the probe helper: {e}"))?;
    let mut c = crate::command(prog);
    c.args(args).stdin(sock).stdout(wr).stderr(wr2);
    let child = c
        .spawn()
        .map_err(|e| format!("run the probe helper {prog}: {e}"))?;
    // `c` holds the socket and the write ends: dropped here, so the pipe
    // ends with the helper and the connection is the helper's alone.
    drop(c);
    Ok(Running::Helper {
        pid: child.id() as i32,
        out: Some(rd),
    })
}

/// Kubernetes' rule on the status line, as an exit code and its text.
fn http_verdict(head: &[u8]) -> (i32, String) {
    match berth_monitor_proto::health::http_probe_verdict(head) {
        Ok(line) => (0, line),
        Err(why) => (1, why),
    }
}

/// Reads what is there, keeping the first [`OUTPUT_MAX`] bytes; true at
/// the end of the stream.
fn read_bounded(fd: RawFd, buf: &mut Vec<u8>) -> bool {
    let mut b = [0u8; 16 * 1024];
    // A check writing without pause is read for a bounded time per tick.
    for _ in 0..64 {
        match crate::read_fd(fd, &mut b) {
            Ok(0) => return true,
            Ok(n) => {
                let room = OUTPUT_MAX.saturating_sub(buf.len());
                buf.extend_from_slice(&b[..n.min(room)]);
            }
            Err(e) if crate::would_block(&e) => return false,
            Err(_) => return true,
        }
    }
    false
}

fn ready(fd: RawFd, ev: i16) -> bool {
    let mut p = libc::pollfd {
        fd,
        events: ev,
        revents: 0,
    };
    // SAFETY: one valid pollfd; a zero timeout does not block.
    unsafe { libc::poll(&mut p, 1, 0) > 0 }
}

fn so_error(fd: RawFd) -> i32 {
    let mut e: libc::c_int = 0;
    let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: e and len are valid for getsockopt's int option.
    let r = unsafe {
        libc::getsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_ERROR,
            (&mut e as *mut libc::c_int).cast(),
            &mut len,
        )
    };
    if r < 0 {
        io::Error::last_os_error()
            .raw_os_error()
            .unwrap_or(libc::EIO)
    } else {
        e
    }
}

/// A non-blocking TCP socket made in the network namespace of `pid` (the
/// container's init, our unreaped child) and connecting to `host:port`
/// (empty host: 127.0.0.1, the container's own loopback).
fn connect_in_netns(pid: i32, host: &str, port: u16) -> Result<OwnedFd, String> {
    let ip: std::net::IpAddr = if host.is_empty() {
        std::net::Ipv4Addr::LOCALHOST.into()
    } else {
        host.parse()
            .map_err(|_| format!("probe host {host:?} is not an IP address"))?
    };
    let ns = berth_sys::fs::open(
        Path::new(&format!("/proc/{pid}/ns/net")),
        libc::O_RDONLY | libc::O_CLOEXEC,
        0,
    )
    .map_err(|e| format!("open the network namespace of the container's init {pid}: {e}"))?;
    let domain = if ip.is_ipv4() {
        libc::AF_INET
    } else {
        libc::AF_INET6
    };
    let nsfd = ns.as_raw_fd();
    // A thread of its own enters the namespace: only it changes, and it
    // ends here (joined), never running anything else.
    let made = std::thread::scope(|s| {
        s.spawn(move || -> io::Result<OwnedFd> {
            // SAFETY: setns on a valid namespace fd changes this thread's
            // network namespace only.
            berth_sys::cvt(unsafe { libc::setns(nsfd, libc::CLONE_NEWNET) })?;
            // SAFETY: plain syscall.
            let fd = berth_sys::cvt(unsafe {
                libc::socket(
                    domain,
                    libc::SOCK_STREAM | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
                    0,
                )
            })?;
            // SAFETY: a new fd owned by us.
            Ok(unsafe { OwnedFd::from_raw_fd(fd) })
        })
        .join()
    });
    let sock = match made {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => return Err(format!("make a socket in the container's network: {e}")),
        Err(_) => return Err("the thread entering the container's network failed".into()),
    };
    let sa = std::net::SocketAddr::new(ip, port);
    let (storage, len) = sockaddr(&sa);
    // SAFETY: storage is a valid sockaddr of `len` bytes.
    let r = unsafe {
        libc::connect(
            sock.as_raw_fd(),
            (&storage as *const libc::sockaddr_storage).cast(),
            len,
        )
    };
    if r < 0 {
        let e = io::Error::last_os_error();
        if e.raw_os_error() != Some(libc::EINPROGRESS) {
            return Err(format!("connect to {sa}: {e}"));
        }
    }
    Ok(sock)
}

fn sockaddr(sa: &std::net::SocketAddr) -> (libc::sockaddr_storage, libc::socklen_t) {
    // SAFETY: sockaddr_storage is plain data; all zero is valid.
    let mut st: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
    let len = match sa {
        std::net::SocketAddr::V4(a) => {
            let sin = libc::sockaddr_in {
                sin_family: libc::AF_INET as libc::sa_family_t,
                sin_port: a.port().to_be(),
                sin_addr: libc::in_addr {
                    s_addr: u32::from_ne_bytes(a.ip().octets()),
                },
                sin_zero: [0; 8],
            };
            // SAFETY: sockaddr_in fits in sockaddr_storage.
            unsafe { std::ptr::write((&mut st as *mut libc::sockaddr_storage).cast(), sin) };
            std::mem::size_of::<libc::sockaddr_in>()
        }
        std::net::SocketAddr::V6(a) => {
            let sin6 = libc::sockaddr_in6 {
                sin6_family: libc::AF_INET6 as libc::sa_family_t,
                sin6_port: a.port().to_be(),
                sin6_flowinfo: 0,
                sin6_addr: libc::in6_addr {
                    s6_addr: a.ip().octets(),
                },
                sin6_scope_id: a.scope_id(),
            };
            // SAFETY: sockaddr_in6 fits in sockaddr_storage.
            unsafe { std::ptr::write((&mut st as *mut libc::sockaddr_storage).cast(), sin6) };
            std::mem::size_of::<libc::sockaddr_in6>()
        }
    };
    (st, len as libc::socklen_t)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http_status_lines() {
        assert_eq!(http_verdict(b"HTTP/1.0 200 OK\r\n").0, 0);
        assert_eq!(http_verdict(b"HTTP/1.1 302 Found\r\nX").0, 0);
        assert_eq!(http_verdict(b"HTTP/1.1 404 Not Found\r\n").0, 1);
        assert_eq!(http_verdict(b"SSH-2.0\r\n").0, 1);
        assert_eq!(http_verdict(b"").0, 1);
    }

    /// The event command hears `ready`/`not-ready` at each change of
    /// readiness (a Service's name follows it), and only then.
    #[test]
    fn readiness_changes_run_the_event_command() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("events");
        let cfg = berth_monitor_proto::config::Config {
            run_dir: dir.path().to_path_buf(),
            probes: vec![Probe {
                kind: ProbeKind::Readiness,
                failure_threshold: 1,
                ..Probe::default()
            }],
            event_command: vec![
                "/bin/sh".into(),
                "-c".into(),
                format!("echo \"$1\" >> {}", log.display()),
                "sh".into(),
            ],
            ..Default::default()
        };
        let mut c = Checker::new(&cfg);
        c.container_started(1);
        // pass, pass (no change), fail, then the container ends while not
        // ready (no change).
        for code in [0, 0, 1] {
            c.result(0, 0, code, String::new());
        }
        c.container_ended();
        for pid in std::mem::take(&mut c.forget) {
            // SAFETY: waits for our own child.
            unsafe { libc::waitpid(pid, std::ptr::null_mut(), 0) };
        }
        let got = std::fs::read_to_string(&log).unwrap();
        // (Each event is a process of its own: their order may vary.)
        let mut ready: Vec<&str> = got
            .lines()
            .filter(|l| *l == READY || *l == NOT_READY)
            .collect();
        ready.sort();
        assert_eq!(ready, [NOT_READY, READY], "{got}");
    }

    /// A failed liveness or startup probe asks for a graceful stop with
    /// its grace period (the monitor runs the preStop hook, the stop
    /// signal, the SIGKILL); the hook's end kills nothing by itself.
    #[test]
    fn a_liveness_failure_asks_for_a_graceful_stop_with_its_grace() {
        let dir = tempfile::tempdir().unwrap();
        let liveness = Probe {
            kind: ProbeKind::Liveness,
            failure_threshold: 1,
            grace: Duration::from_secs(2),
            ..Probe::default()
        };
        let hook = Probe {
            kind: ProbeKind::PreStop,
            ..Probe::default()
        };
        let cfg = |probes: Vec<Probe>| berth_monitor_proto::config::Config {
            run_dir: dir.path().to_path_buf(),
            probes,
            ..Default::default()
        };
        let mut c = Checker::new(&cfg(vec![liveness.clone(), hook]));
        c.container_started(1);
        assert_eq!(
            c.result(0, 0, 1, "gone".into()),
            Some(Verdict::Terminate {
                grace: Duration::from_secs(2)
            })
        );
        assert!(c.run_pre_stop());
        assert!(c.stopping());
        assert_eq!(c.result(1, 0, 1, "hook failed".into()), None);
        assert!(c.pre_stop_result.take().is_some());
        let startup = Probe {
            kind: ProbeKind::Startup,
            failure_threshold: 3,
            ..liveness
        };
        let mut s = Checker::new(&cfg(vec![startup]));
        s.container_started(1);
        for _ in 0..2 {
            assert_eq!(s.result(0, 0, 1, String::new()), None);
        }
        assert_eq!(
            s.result(0, 0, 1, String::new()),
            Some(Verdict::Terminate {
                grace: Duration::from_secs(2)
            })
        );
    }

    /// A sleep hook is a deadline of the poll loop: the poll wakes for it,
    /// nothing is spawned, and it ends (passing) once the time is up; one
    /// that outlasts the grace period is given up.
    #[test]
    fn a_sleep_hook_is_a_timer() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = berth_monitor_proto::config::Config {
            run_dir: dir.path().to_path_buf(),
            probes: vec![Probe {
                kind: ProbeKind::PreStop,
                action: Action::Sleep(Duration::from_millis(300)),
                timeout: Duration::from_secs(10),
                ..Probe::default()
            }],
            ..Default::default()
        };
        let mut c = Checker::new(&cfg);
        let mut reaped = crate::reaped::Reaped::default();
        c.container_started(1);
        let t0 = Instant::now();
        assert!(c.run_pre_stop());
        assert_eq!(c.tick(&mut reaped), None);
        assert!(c.probes[0].running.is_some());
        assert!(c.poll_fds().is_empty(), "a sleep has no fd");
        let wait = c.clamp_timeout(-1);
        assert!((1..=302).contains(&wait), "the poll waits {wait} ms");
        while c.pre_stop_result.is_none() {
            std::thread::sleep(Duration::from_millis(c.clamp_timeout(-1).max(1) as u64));
            assert_eq!(c.tick(&mut reaped), None);
            assert!(
                t0.elapsed() < Duration::from_secs(5),
                "the sleep never ended"
            );
        }
        assert!(t0.elapsed() >= Duration::from_millis(300));
        assert_eq!(c.pre_stop_result.take().as_deref(), Some("ok"));
        assert!(c.forget.is_empty(), "nothing was spawned");
        // Given up at the grace period's end.
        assert!(c.run_pre_stop());
        c.tick(&mut reaped);
        assert!(c.abandon_pre_stop());
        assert!(c.pre_stop_result.take().is_some());
        assert!(!c.stopping());
    }

    /// The last results are kept in the persistent directory at the end,
    /// and the next monitor's log goes on from them.
    #[test]
    fn the_health_log_outlives_the_monitor() {
        let run = tempfile::tempdir().unwrap();
        let persist = tempfile::tempdir().unwrap();
        let cfg = berth_monitor_proto::config::Config {
            run_dir: run.path().to_path_buf(),
            persist_dir: persist.path().to_path_buf(),
            probes: vec![Probe::default()],
            ..Default::default()
        };
        let mut c = Checker::new(&cfg);
        c.container_started(1);
        c.result(0, 7, 0, "first".into());
        c.container_ended();
        c.persist();
        let kept = Health::parse(&std::fs::read_to_string(persist.path().join("health")).unwrap())
            .unwrap();
        assert_eq!(kept.status, Status::Healthy);
        assert_eq!(kept.log[0].output, "first");
        let next = Checker::new(&cfg);
        assert_eq!(next.health.log, kept.log);
    }

    #[test]
    fn start_interval_applies_in_the_start_period() {
        let p = Probe {
            period: Duration::from_secs(30),
            start_period: Duration::from_secs(60),
            start_interval: Duration::from_secs(5),
            ..Probe::default()
        };
        assert_eq!(period(&p, true), Duration::from_secs(5));
        assert_eq!(period(&p, false), Duration::from_secs(30));
        let no_sp = Probe {
            start_period: Duration::ZERO,
            ..p
        };
        assert_eq!(period(&no_sp, true), Duration::from_secs(30));
    }
}
