//! `berth exec`: a process in a running container, from the container's own
//! process (user, capabilities, environment, rlimits, seccomp) with the
//! user's overrides, run through the runtime's `exec --process`.

use crate::containers::Engine;
use crate::error::{io, Error, ErrorKind, Result};
use crate::paths;
use crate::records::{Record, Status};
use serde_json::{json, Value};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::net::UnixListener;
use std::path::PathBuf;
use std::time::{Duration, Instant};

#[derive(Clone, Debug, Default)]
pub struct ExecOptions {
    pub args: Vec<String>,
    /// KEY=VALUE, added to (or replacing in) the container's environment.
    pub env: Vec<String>,
    pub user: Option<String>,
    pub workdir: Option<String>,
    pub tty: bool,
    /// Every capability (the container's seccomp filter still applies).
    pub privileged: bool,
    /// With `tty`: the terminal's size (rows, columns), given to the
    /// runtime as `process.consoleSize` so that the pty has it before the
    /// program starts (a resize after the start races the program).
    pub console_size: Option<(u16, u16)>,
}

/// A prepared exec: the runtime command (the caller adds --detach or
/// --console-socket before `finish`) and the process file to remove.
pub struct Exec {
    pub record: Record,
    /// The runtime's command line for it.
    pub runtime: crate::runtime::ExecCommand,
    pub process_file: PathBuf,
    /// The runtime's JSON log (`--log`), where it says why it could not
    /// start the process.
    pub log_file: PathBuf,
}

impl Exec {
    /// The runtime command line: `exec [extra...] --process FILE ID`.
    pub fn command(&self, extra: &[&str]) -> std::process::Command {
        self.runtime.command(extra)
    }

    /// Its tag: the name of its files (`exec-TAG.json`) and its `execID`.
    pub fn tag(&self) -> String {
        self.process_file
            .file_stem()
            .and_then(|s| s.to_str())
            .and_then(|s| s.strip_prefix("exec-"))
            .unwrap_or("")
            .to_string()
    }

    /// Where a detached exec's runtime writes the process's pid once it
    /// has started it (`--pid-file`). The client of `exec -d` removes it
    /// (the waiter's end must not, before the client has looked).
    pub fn pid_file(&self) -> PathBuf {
        self.process_file.with_extension("pid")
    }
}

impl Exec {
    /// Why the runtime failed to start the process (its last error in its
    /// log), or `None` when it did not fail: a runtime that ran the process
    /// exits with the process's code, which may be anything.
    pub fn runtime_error(&self) -> Option<String> {
        let log = std::fs::read(&self.log_file).ok()?;
        log.split(|&b| b == b'\n')
            .rev()
            .filter_map(berth_monitor_proto::logfmt::parse_fields)
            .filter(|f| f.iter().any(|(k, v)| k == "level" && v == "error"))
            .find_map(|f| f.into_iter().find(|(k, _)| k == "msg").map(|(_, v)| v))
    }
}

/// What kind of failure the runtime's message `msg` reports for a process
/// it could not start: its command not found, not executable, or another
/// failure (the CLI makes these Docker's 127, 126 and 125).
pub fn start_failure_kind(msg: &str) -> ErrorKind {
    let m = msg.to_ascii_lowercase();
    if m.contains("not found") || m.contains("no such file") {
        ErrorKind::CommandNotFound
    } else if m.contains("permission denied") || m.contains("is a directory") {
        ErrorKind::CommandNotExecutable
    } else {
        ErrorKind::Runtime
    }
}

impl Drop for Exec {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.process_file);
        let _ = std::fs::remove_file(&self.log_file);
    }
}

fn set_env(env: &mut Vec<String>, kv: &str) {
    let key = kv.split('=').next().unwrap_or(kv);
    env.retain(|e| e.split('=').next() != Some(key));
    env.push(kv.to_string());
}

impl Engine {
    pub fn prepare_exec(&self, what: &str, o: &ExecOptions) -> Result<Exec> {
        let rec = self.get(what)?;
        if rec.spec.runtime != crate::specgen::DEFAULT_RUNTIME {
            crate::warm_up_cgroups();
        }
        if rec.state.status != Status::Running {
            return Err(Error::NotRunning {
                container: rec.name,
                op: crate::error::Operation::Exec,
            });
        }
        if rec.state.paused {
            return Err(Error::Conflict(format!(
                "container {} is paused: unpause it first (`berth unpause {}`)",
                rec.name, rec.name
            )));
        }
        if o.args.is_empty() {
            return Err(crate::error::option("exec", "give a command to run"));
        }
        let dir = self.paths.run_dir(&rec.id);
        let raw = std::fs::read(dir.join("config.json"))
            .map_err(io(format!("read the spec of container {}", rec.name)))?;
        let spec: Value = serde_json::from_slice(&raw)
            .map_err(|e| Error::Runtime(format!("container {}: config.json: {e}", rec.name)))?;
        let mut p = spec["process"].clone();
        p["args"] = json!(o.args);
        p["terminal"] = json!(o.tty);
        match o.console_size.filter(|(r, c)| o.tty && *r > 0 && *c > 0) {
            Some((rows, cols)) => p["consoleSize"] = json!({"height": rows, "width": cols}),
            None => {
                if let Some(obj) = p.as_object_mut() {
                    obj.remove("consoleSize");
                }
            }
        }
        let mut env: Vec<String> = p["env"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|v| v.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default();
        if let Some(u) = &o.user {
            let root = berth_sys::fs::open(
                &self.paths.rootfs(&rec.id),
                libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC,
                0,
            )
            .map_err(io(format!("open the root of container {}", rec.name)))?;
            let user = crate::user::resolve_in(root.as_fd(), u, &rec.spec.process.groups)?;
            p["user"] =
                json!({"uid": user.uid, "gid": user.gid, "additionalGids": user.additional_gids});
            set_env(&mut env, &format!("HOME={}", user.home));
        }
        if o.tty && !env.iter().any(|e| e.starts_with("TERM=")) {
            env.push("TERM=xterm".into());
        }
        for e in &o.env {
            set_env(&mut env, e);
        }
        p["env"] = json!(env);
        if let Some(w) = &o.workdir {
            if !w.starts_with('/') {
                return Err(crate::error::option(
                    "--workdir",
                    format!("{w:?} is not an absolute path"),
                ));
            }
            p["cwd"] = json!(w);
        }
        if o.privileged {
            let bound = crate::containers::cap_bound().unwrap_or(u64::MAX);
            let all: Vec<&str> = crate::spec::ALL_CAPS
                .iter()
                .enumerate()
                .filter(|(i, _)| bound & (1u64 << i) != 0)
                .map(|(_, c)| *c)
                .collect();
            p["capabilities"] = json!({"bounding": all, "effective": all, "permitted": all});
        }
        let run_dir = self.paths.run_dir(&rec.id);
        let tag = paths::new_id()?;
        let tag = tag.get(..16).unwrap_or("x");
        let file = run_dir.join(format!("exec-{tag}.json"));
        let log_file = run_dir.join(format!("exec-{tag}.log"));
        std::fs::write(&file, serde_json::to_vec(&p).unwrap_or_default())
            .map_err(io(format!("write {}", file.display())))?;
        let runtime = self
            .oci
            .exec(self.target(&rec), &file, &log_file)
            .map_err(|e| e.into_error(&format!("exec in container {}", rec.name)))?;
        // The process is started at once by the caller: created and
        // started are one step here.
        let what = o.args.join(" ");
        let exec_id = [("execID", tag.to_string())];
        self.container_event(&rec, &format!("exec_create: {what}"), &exec_id);
        self.container_event(&rec, &format!("exec_start: {what}"), &exec_id);
        Ok(Exec {
            record: rec,
            runtime,
            process_file: file,
            log_file,
        })
    }

    /// Records the end of an exec'd process that was waited for (its
    /// `exec_die` event, with the exit code).
    pub fn exec_ended(&self, x: &Exec, code: i32) {
        self.container_event(
            &x.record,
            "exec_die",
            &[("execID", x.tag()), ("exitCode", code.to_string())],
        );
    }

    /// The command that runs a detached exec and waits for it, to record
    /// its end (`berth container exec-wait ID TAG`): started by the client
    /// of `exec -d`, it outlives it. The client keeps `x` (its files)
    /// until the runtime has written [`Exec::pid_file`] or the waiter has
    /// exited.
    pub fn exec_waiter(&self, x: &Exec) -> Result<std::process::Command> {
        let berth = std::env::current_exe().map_err(io("find the berth binary"))?;
        let mut c = std::process::Command::new(berth);
        c.arg("--root")
            .arg(&self.paths.root)
            .arg("--run-root")
            .arg(&self.paths.run_root)
            .args(["container", "exec-wait", &x.record.id, &x.tag()]);
        Ok(c)
    }

    /// The exec `tag` of container `id` that [`Engine::prepare_exec`]
    /// prepared (for the waiter of a detached exec).
    pub fn prepared_exec(&self, id: &str, tag: &str) -> Result<Exec> {
        if tag.is_empty() || tag.len() > 16 || !tag.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(crate::error::option(
                "exec-wait",
                format!("{tag:?} is not an exec's tag"),
            ));
        }
        let rec = self
            .records
            .get(id)?
            .ok_or_else(|| Error::NoSuchContainer(id.to_string()))?;
        let run_dir = self.paths.run_dir(&rec.id);
        let file = run_dir.join(format!("exec-{tag}.json"));
        let log_file = run_dir.join(format!("exec-{tag}.log"));
        if !file.exists() {
            return Err(Error::Runtime(format!(
                "container {}: no exec {tag} is prepared ({} is missing)",
                rec.name,
                file.display()
            )));
        }
        let runtime = self
            .oci
            .exec(self.target(&rec), &file, &log_file)
            .map_err(|e| e.into_error(&format!("exec in container {}", rec.name)))?;
        Ok(Exec {
            record: rec,
            runtime,
            process_file: file,
            log_file,
        })
    }
}

/// Waits for the runtime to connect to `listener` and send a pty master
/// (`--console-socket`), while watching that it has not failed first.
pub fn receive_console(
    listener: &UnixListener,
    child: &mut std::process::Child,
) -> Result<Option<OwnedFd>> {
    listener
        .set_nonblocking(true)
        .map_err(io("set up the console socket"))?;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        match listener.accept() {
            Ok((conn, _)) => {
                conn.set_nonblocking(false)
                    .map_err(io("set up the console socket"))?;
                let fd: OwnedFd = conn.into();
                let mut buf = [0u8; 256];
                let (_, pty) = berth_sys::socket::recv(fd.as_fd(), &mut buf)
                    .map_err(io("receive the terminal from the runtime"))?;
                return Ok(pty);
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(e) => return Err(io("accept on the console socket")(e)),
        }
        if child
            .try_wait()
            .map_err(io("wait for the runtime"))?
            .is_some()
        {
            return Ok(None);
        }
        if Instant::now() > deadline {
            return Err(Error::Runtime(
                "the runtime did not send a terminal within a minute".into(),
            ));
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}

#[cfg(test)]
mod tests {
    use super::start_failure_kind;
    use crate::ErrorKind;

    #[test]
    fn a_start_failure_is_told_by_the_runtimes_message() {
        for (msg, kind) in [
            (
                "exec: \"/no/such/cmd\": stat /no/such/cmd: no such file or directory",
                ErrorKind::CommandNotFound,
            ),
            (
                "exec: \"nosuch\": executable file not found in $PATH",
                ErrorKind::CommandNotFound,
            ),
            (
                "exec /etc/passwd: Permission denied",
                ErrorKind::CommandNotExecutable,
            ),
            ("exec /etc: Is a directory", ErrorKind::CommandNotExecutable),
            ("cgroup: write memory.max: EBUSY", ErrorKind::Runtime),
        ] {
            assert_eq!(start_failure_kind(msg), kind, "{msg}");
        }
    }
}
