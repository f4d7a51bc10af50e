//! The OCI runtime as the engine sees it: one trait, [`OciRuntime`], that
//! every runtime call of the engine goes through. [`RuncCli`] drives a
//! runtime program through runc's command line (berth-runtime, runc,
//! crun); [`Fake`] is an in-memory runtime for unit tests (scripted
//! states and failures, recorded calls; only in tests and with the
//! `fake` feature).
//!
//! The monitor runs the runtime's `create`, `start` and the final
//! `delete` itself (it is the container's parent); it is told the program
//! and its `--root` in its config.

use crate::paths::{self, Paths};
#[cfg(any(test, feature = "fake"))]
use std::collections::HashMap;
use std::ffi::OsString;
use std::io::Write;
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
#[cfg(any(test, feature = "fake"))]
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// One container of one runtime.
#[derive(Clone, Copy, Debug)]
pub struct Target<'a> {
    /// The container's runtime as recorded: a program name (looked up next
    /// to berth, then in PATH) or a path.
    pub runtime: &'a str,
    /// berth's paths: each runtime keeps its state in
    /// `RUN_ROOT/runtime/NAME` ([`Paths::runtime_root`]).
    pub paths: &'a Paths,
    pub id: &'a str,
}

/// A container's status as the runtime reports it (the OCI state's).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    Creating,
    Created,
    Running,
    Paused,
    Stopped,
}

impl Status {
    pub fn parse(s: &str) -> Option<Status> {
        Some(match s {
            "creating" => Status::Creating,
            "created" => Status::Created,
            "running" => Status::Running,
            "paused" => Status::Paused,
            "stopped" => Status::Stopped,
            _ => return None,
        })
    }
}

/// The runtime's `state` of a container.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct State {
    pub status: Status,
    /// The init's host pid (0 when it has none).
    pub pid: i32,
}

#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    /// The runtime program is not there (the message names it).
    #[error("{0}")]
    NotFound(String),
    /// The runtime program could not be run.
    #[error("run {} {op}: {cause}", program.display())]
    Spawn {
        op: &'static str,
        program: PathBuf,
        #[source]
        cause: std::io::Error,
    },
    /// The runtime did not answer in time (it was killed).
    #[error("the runtime's {op} did not answer within {} ms (it was killed); is {} hung?", after.as_millis(), program.display())]
    Timeout {
        op: &'static str,
        program: PathBuf,
        after: Duration,
    },
    /// The runtime refused or failed: what it said.
    #[error("the runtime's {op} failed: {msg}")]
    Failed { op: &'static str, msg: String },
    /// The runtime's answer could not be read.
    #[error("the runtime's {op} printed something else than {expected}: {msg}")]
    Output {
        op: &'static str,
        expected: &'static str,
        msg: String,
    },
}

impl RuntimeError {
    /// The engine's error for `what` (e.g. "kill container web") failing.
    pub fn into_error(self, what: &str) -> crate::Error {
        match self {
            RuntimeError::NotFound(m) => crate::Error::Runtime(m),
            RuntimeError::Spawn { op, program, cause } => crate::Error::Io {
                op: format!("run {} {op}", program.display()),
                cause,
            },
            RuntimeError::Failed { msg, .. } => crate::Error::Runtime(format!("{what}: {msg}")),
            e @ (RuntimeError::Output { .. } | RuntimeError::Timeout { .. }) => {
                crate::Error::Runtime(e.to_string())
            }
        }
    }
}

/// The runtime's `exec` as a command line for the caller to run (it gives
/// it stdio, a console socket, `--detach`): the program, the arguments
/// before the caller's, and those after.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExecCommand {
    pub program: PathBuf,
    pub before: Vec<OsString>,
    pub after: Vec<OsString>,
}

impl ExecCommand {
    /// `program before... extra... after...`.
    pub fn command(&self, extra: &[&str]) -> Command {
        let mut c = Command::new(&self.program);
        c.args(&self.before).args(extra).args(&self.after);
        c
    }
}

/// Everything the engine asks of an OCI runtime.
pub trait OciRuntime: Send + Sync {
    /// The runtime's first line of `--version`.
    fn version(&self, runtime: &str) -> Result<String, RuntimeError>;
    /// The container's state; [`RuntimeError::Timeout`] when the runtime
    /// does not answer within [`STATE_DEADLINE`] (callers hold the
    /// container's lock: a hung runtime must not hold them for ever).
    fn state(&self, t: Target) -> Result<State, RuntimeError>;
    /// Sends `signal` to the container's init.
    fn kill(&self, t: Target, signal: i32) -> Result<(), RuntimeError>;
    /// Forgets the container, killing what is left of it (`delete --force`).
    fn delete(&self, t: Target) -> Result<(), RuntimeError>;
    /// Freezes every process of the container.
    fn pause(&self, t: Target) -> Result<(), RuntimeError>;
    /// Thaws a paused container.
    fn resume(&self, t: Target) -> Result<(), RuntimeError>;
    /// New resource limits (an OCI `linux.resources` object).
    fn update(&self, t: Target, resources: &serde_json::Value) -> Result<(), RuntimeError>;
    /// The host pids of the container's processes.
    fn ps(&self, t: Target) -> Result<Vec<i32>, RuntimeError>;
    /// The command line that runs the process in `process_file` (an OCI
    /// process, JSON) in the container, logging as JSON to `log_file`.
    fn exec(
        &self,
        t: Target,
        process_file: &Path,
        log_file: &Path,
    ) -> Result<ExecCommand, RuntimeError>;
}

/// How long [`OciRuntime::state`] waits for the runtime (runc answers in
/// milliseconds).
pub const STATE_DEADLINE: Duration = Duration::from_secs(3);

/// A runtime program driven through runc's command line, on berth's own
/// state directory for it (`--root`).
pub struct RuncCli;

/// The engine's runtime outside of tests.
pub static RUNC: RuncCli = RuncCli;

impl RuncCli {
    fn program(runtime: &str) -> Result<PathBuf, RuntimeError> {
        paths::find_program(runtime).map_err(|e| RuntimeError::NotFound(e.to_string()))
    }

    /// `PROGRAM --root DIR`, and the program.
    fn command(t: &Target) -> Result<(Command, PathBuf), RuntimeError> {
        let rt = Self::program(t.runtime)?;
        let mut c = Command::new(&rt);
        c.arg("--root").arg(t.paths.runtime_root(&rt));
        Ok((c, rt))
    }

    /// Runs `PROGRAM --root DIR args...`; its stdout.
    fn run(t: &Target, op: &'static str, args: &[&str]) -> Result<Vec<u8>, RuntimeError> {
        let (mut c, program) = Self::command(t)?;
        let out = c
            .args(args)
            .stdin(Stdio::null())
            .output()
            .map_err(|cause| RuntimeError::Spawn { op, program, cause })?;
        Self::answer(op, out)
    }

    /// The stdout of a runtime that succeeded, else what it said.
    fn answer(op: &'static str, out: std::process::Output) -> Result<Vec<u8>, RuntimeError> {
        if !out.status.success() {
            return Err(RuntimeError::Failed {
                op,
                msg: String::from_utf8_lossy(&out.stderr).trim().to_string(),
            });
        }
        Ok(out.stdout)
    }

    /// The runtime's `state`, the runtime killed if it has not answered
    /// within `deadline`. (Its answer is small: it fits in the pipe, so
    /// the runtime can end before it is read.)
    fn state_within(&self, t: Target, deadline: Duration) -> Result<State, RuntimeError> {
        let op = "state";
        let (mut c, program) = Self::command(&t)?;
        let mut child = c
            .args(["state", t.id])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|cause| RuntimeError::Spawn {
                op,
                program: program.clone(),
                cause,
            })?;
        let end = Instant::now() + deadline;
        // The child is not reaped before `wait`: its pid is its own.
        let pidfd = berth_sys::process::pidfd_open(child.id() as i32);
        let mut exited = false;
        loop {
            let left = end.saturating_duration_since(Instant::now());
            if let Ok(Some(_)) = child.try_wait() {
                exited = true;
                break;
            }
            if left.is_zero() {
                break;
            }
            match &pidfd {
                Ok(fd) => {
                    let ms = left.as_millis().clamp(1, i32::MAX as u128) as i32;
                    let _ = berth_sys::process::pidfd_wait_exit(fd.as_fd(), ms);
                }
                Err(_) => std::thread::sleep(left.min(Duration::from_millis(5))),
            }
        }
        if !exited {
            let _ = child.kill();
            let _ = child.wait();
            return Err(RuntimeError::Timeout {
                op,
                program,
                after: deadline,
            });
        }
        let out = child
            .wait_with_output()
            .map_err(|cause| RuntimeError::Spawn { op, program, cause })?;
        let out = Self::answer(op, out)?;
        let bad = |msg: String| RuntimeError::Output {
            op,
            expected: "an OCI state",
            msg,
        };
        let v: serde_json::Value = serde_json::from_slice(&out).map_err(|e| bad(e.to_string()))?;
        let status = v["status"].as_str().unwrap_or_default();
        Ok(State {
            status: Status::parse(status).ok_or_else(|| bad(format!("status {status:?}")))?,
            pid: v["pid"]
                .as_i64()
                .and_then(|p| i32::try_from(p).ok())
                .unwrap_or(0),
        })
    }
}

impl OciRuntime for RuncCli {
    fn version(&self, runtime: &str) -> Result<String, RuntimeError> {
        let program = Self::program(runtime)?;
        let out = Command::new(&program)
            .arg("--version")
            .stdin(Stdio::null())
            .output()
            .map_err(|cause| RuntimeError::Spawn {
                op: "--version",
                program,
                cause,
            })?;
        Ok(String::from_utf8_lossy(&out.stdout)
            .lines()
            .next()
            .unwrap_or("")
            .to_string())
    }

    fn state(&self, t: Target) -> Result<State, RuntimeError> {
        self.state_within(t, STATE_DEADLINE)
    }

    fn kill(&self, t: Target, signal: i32) -> Result<(), RuntimeError> {
        Self::run(&t, "kill", &["kill", t.id, &signal.to_string()]).map(drop)
    }

    fn delete(&self, t: Target) -> Result<(), RuntimeError> {
        // Nothing read back: best effort for the callers.
        let (mut c, program) = Self::command(&t)?;
        let st = c
            .args(["delete", "--force", t.id])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .map_err(|cause| RuntimeError::Spawn {
                op: "delete",
                program,
                cause,
            })?;
        if !st.success() {
            return Err(RuntimeError::Failed {
                op: "delete",
                msg: st.to_string(),
            });
        }
        Ok(())
    }
    fn pause(&self, t: Target) -> Result<(), RuntimeError> {
        Self::run(&t, "pause", &["pause", t.id]).map(drop)
    }

    fn resume(&self, t: Target) -> Result<(), RuntimeError> {
        Self::run(&t, "resume", &["resume", t.id]).map(drop)
    }

    fn update(&self, t: Target, resources: &serde_json::Value) -> Result<(), RuntimeError> {
        let op = "update";
        let (mut c, program) = Self::command(&t)?;
        let mut child = c
            .args(["update", "--resources", "-", t.id])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|cause| RuntimeError::Spawn {
                op,
                program: program.clone(),
                cause,
            })?;
        if let Some(mut stdin) = child.stdin.take() {
            let _ = stdin.write_all(resources.to_string().as_bytes());
        }
        let out = child
            .wait_with_output()
            .map_err(|cause| RuntimeError::Spawn { op, program, cause })?;
        Self::answer(op, out).map(drop)
    }

    fn ps(&self, t: Target) -> Result<Vec<i32>, RuntimeError> {
        let out = Self::run(&t, "ps", &["ps", "--format", "json", t.id])?;
        serde_json::from_slice(&out).map_err(|e| RuntimeError::Output {
            op: "ps",
            expected: "JSON",
            msg: e.to_string(),
        })
    }

    fn exec(
        &self,
        t: Target,
        process_file: &Path,
        log_file: &Path,
    ) -> Result<ExecCommand, RuntimeError> {
        let program = Self::program(t.runtime)?;
        let root = t.paths.runtime_root(&program);
        Ok(ExecCommand {
            before: vec![
                "--root".into(),
                root.into(),
                "--log".into(),
                log_file.into(),
                "--log-format".into(),
                "json".into(),
                "exec".into(),
            ],
            after: vec!["--process".into(), process_file.into(), t.id.into()],
            program,
        })
    }
}

#[cfg(any(test, feature = "fake"))]
/// One call the [`Fake`] runtime was given.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Call {
    Version,
    State(String),
    Kill(String, i32),
    Delete(String),
    Pause(String),
    Resume(String),
    Update(String, String),
    Ps(String),
    Exec(String),
}

#[cfg(any(test, feature = "fake"))]
type KillHook = Box<dyn FnMut(&str, i32) + Send>;

#[cfg(any(test, feature = "fake"))]
#[derive(Default)]
struct FakeInner {
    states: HashMap<String, State>,
    /// op -> the message its next calls fail with.
    failing: HashMap<&'static str, String>,
    /// op -> the message its next call only fails with.
    failing_once: HashMap<&'static str, String>,
    calls: Vec<Call>,
    on_kill: Option<KillHook>,
}

/// (In tests, and with the `fake` feature, off by default.)
#[cfg(any(test, feature = "fake"))]
/// An in-memory runtime that behaves as runc does on the states it is
/// given: `kill` needs a created, running or paused container; `pause`
/// a running one, `resume` a paused one; `delete` forgets any. Failures
/// are scripted per operation; every call is recorded.
#[derive(Default)]
pub struct Fake {
    inner: Mutex<FakeInner>,
}

#[cfg(any(test, feature = "fake"))]
impl Fake {
    pub fn new() -> Fake {
        Fake::default()
    }

    fn with<R>(&self, f: impl FnOnce(&mut FakeInner) -> R) -> R {
        let mut g = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        f(&mut g)
    }

    /// Sets (or with None, forgets) the state of container `id`.
    pub fn set_state(&self, id: &str, state: Option<State>) {
        self.with(|i| match state {
            Some(s) => i.states.insert(id.to_string(), s),
            None => i.states.remove(id),
        });
    }

    pub fn state_of(&self, id: &str) -> Option<State> {
        self.with(|i| i.states.get(id).copied())
    }

    /// Makes every later `op` ("kill", "pause", ...) fail with `msg`
    /// (None: succeed again).
    pub fn fail(&self, op: &'static str, msg: Option<&str>) {
        self.with(|i| match msg {
            Some(m) => i.failing.insert(op, m.to_string()),
            None => i.failing.remove(op),
        });
    }

    /// Makes the next `op` only fail with `msg` (before any failure set
    /// with [`Fake::fail`]).
    pub fn fail_once(&self, op: &'static str, msg: &str) {
        self.with(|i| i.failing_once.insert(op, msg.to_string()));
    }

    /// Runs `hook(id, signal)` at each `kill` of a container the fake
    /// knows, before it is delivered: e.g. to play the container's end. A
    /// hook that leaves the container stopped makes the kill fail as
    /// runc's does (the container ended before the signal came).
    pub fn on_kill(&self, hook: impl FnMut(&str, i32) + Send + 'static) {
        self.with(|i| i.on_kill = Some(Box::new(hook)));
    }

    /// The calls so far.
    pub fn calls(&self) -> Vec<Call> {
        self.with(|i| i.calls.clone())
    }

    /// Records `call`; the scripted failure of `op`, if any.
    fn enter(&self, op: &'static str, call: Call) -> Result<(), RuntimeError> {
        self.with(|i| {
            i.calls.push(call);
            let once = i.failing_once.remove(op);
            match once.or_else(|| i.failing.get(op).cloned()) {
                Some(msg) => Err(RuntimeError::Failed { op, msg }),
                None => Ok(()),
            }
        })
    }

    fn status(&self, op: &'static str, id: &str) -> Result<State, RuntimeError> {
        self.state_of(id).ok_or_else(|| RuntimeError::Failed {
            op,
            msg: format!("container \"{id}\" does not exist"),
        })
    }

    fn transition(
        &self,
        op: &'static str,
        id: &str,
        from: Status,
        to: Status,
    ) -> Result<(), RuntimeError> {
        let mut s = self.status(op, id)?;
        if s.status != from {
            return Err(RuntimeError::Failed {
                op,
                msg: format!("container \"{id}\" is not {from:?}"),
            });
        }
        s.status = to;
        self.set_state(id, Some(s));
        Ok(())
    }
}

#[cfg(any(test, feature = "fake"))]
impl OciRuntime for Fake {
    fn version(&self, _: &str) -> Result<String, RuntimeError> {
        self.enter("version", Call::Version)?;
        Ok("fake version 1".into())
    }

    fn state(&self, t: Target) -> Result<State, RuntimeError> {
        self.enter("state", Call::State(t.id.into()))?;
        self.status("state", t.id)
    }

    fn kill(&self, t: Target, signal: i32) -> Result<(), RuntimeError> {
        self.enter("kill", Call::Kill(t.id.into(), signal))?;
        self.status("kill", t.id)?;
        // What happens while the signal is on its way; called without the
        // lock, as the hook may use the fake.
        if let Some(mut hook) = self.with(|i| i.on_kill.take()) {
            hook(t.id, signal);
            self.with(|i| {
                i.on_kill.get_or_insert(hook);
            });
        }
        let s = self.status("kill", t.id)?;
        if !matches!(s.status, Status::Created | Status::Running | Status::Paused) {
            return Err(RuntimeError::Failed {
                op: "kill",
                msg: "container not running".into(),
            });
        }
        Ok(())
    }

    fn delete(&self, t: Target) -> Result<(), RuntimeError> {
        self.enter("delete", Call::Delete(t.id.into()))?;
        self.set_state(t.id, None);
        Ok(())
    }

    fn pause(&self, t: Target) -> Result<(), RuntimeError> {
        self.enter("pause", Call::Pause(t.id.into()))?;
        self.transition("pause", t.id, Status::Running, Status::Paused)
    }

    fn resume(&self, t: Target) -> Result<(), RuntimeError> {
        self.enter("resume", Call::Resume(t.id.into()))?;
        self.transition("resume", t.id, Status::Paused, Status::Running)
    }

    fn update(&self, t: Target, resources: &serde_json::Value) -> Result<(), RuntimeError> {
        self.enter("update", Call::Update(t.id.into(), resources.to_string()))?;
        self.status("update", t.id).map(drop)
    }

    fn ps(&self, t: Target) -> Result<Vec<i32>, RuntimeError> {
        self.enter("ps", Call::Ps(t.id.into()))?;
        let s = self.status("ps", t.id)?;
        Ok(if s.pid > 0 { vec![s.pid] } else { vec![] })
    }

    fn exec(
        &self,
        t: Target,
        process_file: &Path,
        log_file: &Path,
    ) -> Result<ExecCommand, RuntimeError> {
        self.enter("exec", Call::Exec(t.id.into()))?;
        self.status("exec", t.id)?;
        Ok(ExecCommand {
            program: PathBuf::from("fake-runtime"),
            before: vec!["--log".into(), log_file.into(), "exec".into()],
            after: vec![process_file.into(), t.id.into()],
        })
    }
}

/// Sends signals to one container's init through its runtime, without
/// the engine's lock or a refresh: what a client's signal proxy needs (it
/// owns what it uses, so it can move to the proxy's thread).
#[derive(Clone)]
pub struct Signaller {
    oci: &'static dyn OciRuntime,
    paths: Paths,
    runtime: String,
    id: String,
    name: String,
}

impl Signaller {
    /// Sends `signal` to the container's init (as `berth kill`, but no
    /// event is recorded and the record is not read).
    pub fn send(&self, signal: i32) -> crate::Result<()> {
        let t = Target {
            runtime: &self.runtime,
            paths: &self.paths,
            id: &self.id,
        };
        self.oci
            .kill(t, signal)
            .map_err(|e| e.into_error(&format!("send signal {signal} to container {}", self.name)))
    }
}

impl crate::Engine {
    /// A [`Signaller`] for container `rec` (for a signal proxy).
    pub fn signaller(&self, rec: &crate::records::Record) -> Signaller {
        Signaller {
            oci: self.oci,
            paths: self.paths.clone(),
            runtime: rec.spec.runtime.clone(),
            id: rec.id.clone(),
            name: rec.name.clone(),
        }
    }

    /// The container `rec` of its runtime.
    pub fn target<'a>(&'a self, rec: &'a crate::records::Record) -> Target<'a> {
        Target {
            runtime: &rec.spec.runtime,
            paths: &self.paths,
            id: &rec.id,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::OpenOptionsExt;

    /// A directory for scripts to run: next to the test binary (in the
    /// target directory, where programs do run), not in /tmp, which may be
    /// mounted noexec.
    fn script_dir() -> tempfile::TempDir {
        let exe = std::env::current_exe().expect("the test binary's path");
        let dir = exe.parent().expect("the test binary's directory");
        tempfile::tempdir_in(dir).expect("make a directory next to the test binary")
    }

    /// Writes an executable script and closes it before anything runs it.
    /// A process forked by another test's thread while the file was open
    /// for writing holds it open until it execs: running the script
    /// meanwhile fails with ETXTBSY (rust-lang/rust#114554), so it is run
    /// (with `--probe`, which it answers at once) until that has passed.
    fn install_script(path: &Path, text: &str) {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o755)
            .open(path)
            .expect("create the script");
        f.write_all(text.as_bytes()).expect("write the script");
        f.sync_all().expect("sync the script");
        drop(f);
        for _ in 0..200 {
            match Command::new(path).arg("--probe").status() {
                Ok(st) => {
                    assert!(st.success(), "{}: --probe: {st}", path.display());
                    return;
                }
                Err(e) if e.raw_os_error() == Some(libc::ETXTBSY) => {
                    std::thread::sleep(Duration::from_millis(10))
                }
                Err(e) => panic!("run {}: {e}", path.display()),
            }
        }
        panic!("{} stayed busy (ETXTBSY) for 2 s", path.display());
    }

    /// A runtime program that writes its arguments (one line per call) and
    /// its stdin to files, answers `state` and `ps`, fails `pause`, and
    /// hangs on `state` of container `hung`.
    fn scripted(dir: &Path) -> (PathBuf, Paths) {
        let prog = dir.join("fakert");
        let script = format!(
            r#"#!/bin/sh
[ "$1" = --probe ] && exit 0
echo "$*" >> {dir}/argv
case " $* " in
  *" state hung "*) exec sleep 60 ;;
  *" update "*) cat > {dir}/stdin ;;
  *" state "*) echo '{{"ociVersion":"1.0.2","id":"c1","pid":42,"status":"paused"}}' ;;
  *" ps "*) echo '[42,43]' ;;
  *" pause "*) echo 'cannot pause: no freezer' >&2; exit 1 ;;
  *"--version"*) echo 'fakert version 9.9'; echo 'spec: 1.0.2' ;;
esac
"#,
            dir = dir.display()
        );
        install_script(&prog, &script);
        let paths = Paths {
            root: dir.join("root"),
            run_root: dir.join("run"),
        };
        (prog, paths)
    }

    fn argv(dir: &Path) -> Vec<String> {
        std::fs::read_to_string(dir.join("argv"))
            .unwrap_or_default()
            .lines()
            .map(str::to_string)
            .collect()
    }

    #[test]
    fn the_runc_client_passes_runcs_arguments() {
        let dir = script_dir();
        let (prog, paths) = scripted(dir.path());
        let prog_s = prog.to_str().unwrap();
        let t = Target {
            runtime: prog_s,
            paths: &paths,
            id: "c1",
        };
        let root = dir.path().join("run/runtime/fakert");
        let root = root.display();
        RUNC.kill(t, 15).unwrap();
        RUNC.delete(t).unwrap();
        RUNC.resume(t).unwrap();
        RUNC.update(t, &serde_json::json!({"pids": {"limit": 5}}))
            .unwrap();
        let state = RUNC.state(t).unwrap();
        let ps = RUNC.ps(t).unwrap();
        assert!(RUNC.pause(t).is_err());
        let version = RUNC.version(prog_s).unwrap();
        assert_eq!(
            argv(dir.path()),
            vec![
                format!("--root {root} kill c1 15"),
                format!("--root {root} delete --force c1"),
                format!("--root {root} resume c1"),
                format!("--root {root} update --resources - c1"),
                format!("--root {root} state c1"),
                format!("--root {root} ps --format json c1"),
                format!("--root {root} pause c1"),
                "--version".to_string(),
            ]
        );
        assert_eq!(
            std::fs::read_to_string(dir.path().join("stdin")).unwrap(),
            r#"{"pids":{"limit":5}}"#
        );
        assert_eq!(
            state,
            State {
                status: Status::Paused,
                pid: 42
            }
        );
        assert_eq!(ps, vec![42, 43]);
        assert_eq!(version, "fakert version 9.9");
        let x = RUNC
            .exec(t, Path::new("/p.json"), Path::new("/x.log"))
            .unwrap();
        let c = x.command(&["--detach"]);
        assert_eq!(c.get_program(), prog.as_os_str());
        let args: Vec<_> = c.get_args().map(|a| a.to_str().unwrap()).collect();
        assert_eq!(
            args.join(" "),
            format!(
                "--root {root} --log /x.log --log-format json exec --detach --process /p.json c1"
            )
        );
    }

    #[test]
    fn the_runc_client_reports_what_the_runtime_said() {
        let dir = script_dir();
        let (prog, paths) = scripted(dir.path());
        let t = Target {
            runtime: prog.to_str().unwrap(),
            paths: &paths,
            id: "c1",
        };
        let e = RUNC.pause(t).unwrap_err();
        assert!(
            matches!(&e, RuntimeError::Failed { op: "pause", msg } if msg == "cannot pause: no freezer"),
            "{e:?}"
        );
        assert_eq!(
            e.into_error("pause container web").to_string(),
            "pause container web: cannot pause: no freezer"
        );
        let missing = dir.path().join("nothing-here");
        let t = Target {
            runtime: missing.to_str().unwrap(),
            ..t
        };
        let e = RUNC.kill(t, 9).unwrap_err();
        assert!(
            matches!(e, RuntimeError::NotFound(ref m) if m.contains("no such program")),
            "{e:?}"
        );
    }

    #[test]
    fn the_runc_client_rejects_a_state_it_cannot_read() {
        let dir = script_dir();
        let prog = dir.path().join("odd");
        install_script(
            &prog,
            "#!/bin/sh\n[ \"$1\" = --probe ] && exit 0\necho '{\"status\":\"sleeping\"}'\n",
        );
        let paths = Paths {
            root: dir.path().into(),
            run_root: dir.path().into(),
        };
        let t = Target {
            runtime: prog.to_str().unwrap(),
            paths: &paths,
            id: "c1",
        };
        let e = RUNC.state(t).unwrap_err();
        assert!(
            matches!(e, RuntimeError::Output { op: "state", .. }),
            "{e:?}"
        );
    }

    #[test]
    fn the_runc_client_kills_a_runtime_whose_state_does_not_come() {
        let dir = script_dir();
        let (prog, paths) = scripted(dir.path());
        let t = Target {
            runtime: prog.to_str().unwrap(),
            paths: &paths,
            id: "hung",
        };
        let started = Instant::now();
        let e = RUNC
            .state_within(t, Duration::from_millis(300))
            .unwrap_err();
        let took = started.elapsed();
        assert!(
            matches!(e, RuntimeError::Timeout { op: "state", .. }),
            "{e:?}"
        );
        assert!(took < Duration::from_secs(20), "took {took:?}");
        assert!(e.to_string().contains(prog.to_str().unwrap()), "{e}");
        // Asked once, and not waited for.
        assert_eq!(
            argv(dir.path()),
            vec![format!(
                "--root {} state hung",
                paths.runtime_root(&prog).display()
            )]
        );
    }

    #[test]
    fn a_runtime_that_cannot_be_run_is_named_in_the_error() {
        let dir = script_dir();
        // A file, but not a program (no execute permission).
        let prog = dir.path().join("notexec");
        std::fs::write(&prog, "#!/bin/sh\n").unwrap();
        let e = RUNC.version(prog.to_str().unwrap()).unwrap_err();
        assert!(matches!(e, RuntimeError::Spawn { .. }), "{e:?}");
        assert!(
            e.to_string()
                .starts_with(&format!("run {} --version: ", prog.display())),
            "{e}"
        );
        let paths = Paths {
            root: dir.path().into(),
            run_root: dir.path().into(),
        };
        let t = Target {
            runtime: prog.to_str().unwrap(),
            paths: &paths,
            id: "c1",
        };
        let e = RUNC
            .kill(t, 9)
            .unwrap_err()
            .into_error("kill container web");
        assert!(
            e.to_string()
                .starts_with(&format!("run {} kill: ", prog.display())),
            "{e}"
        );
    }

    #[test]
    fn the_fake_refuses_what_runc_refuses() {
        let fake = Fake::new();
        let paths = Paths {
            root: "/nonexistent".into(),
            run_root: "/nonexistent".into(),
        };
        let t = Target {
            runtime: "runc",
            paths: &paths,
            id: "c1",
        };
        assert!(fake.kill(t, 9).is_err(), "an unknown container");
        fake.set_state(
            "c1",
            Some(State {
                status: Status::Stopped,
                pid: 0,
            }),
        );
        assert!(fake.kill(t, 9).is_err(), "a stopped container");
        assert!(fake.pause(t).is_err());
        fake.set_state(
            "c1",
            Some(State {
                status: Status::Running,
                pid: 7,
            }),
        );
        assert!(fake.resume(t).is_err(), "a running container");
        fake.pause(t).unwrap();
        fake.kill(t, 9).unwrap();
        assert_eq!(fake.ps(t).unwrap(), vec![7]);
        fake.delete(t).unwrap();
        assert!(fake.state(t).is_err());
        assert_eq!(fake.calls().len(), 9);
    }
}
