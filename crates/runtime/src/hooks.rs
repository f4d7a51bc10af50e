//! OCI hooks: run a program with the container state on stdin, its own
//! args and env, within an optional timeout.

use crate::error::{Error, Result};
use crate::state::OciState;
use oci_spec::runtime::Hook;
use std::io::{Read, Seek, Write};
use std::os::fd::AsFd;
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};

/// Runs each hook in order; the first failure stops the list.
pub fn run_all(kind: &'static str, hooks: &[Hook], state: &OciState) -> Result<()> {
    run_all_in(kind, hooks, state, None, None)
}

/// [`run_all`], where a hook without an `env` of its own gets
/// `default_env` (the container process's, for startContainer hooks) or,
/// without one, the runtime's own environment, as runc passes it; and with
/// `cwd` as the working directory (createContainer hooks: the rootfs).
pub fn run_all_in(
    kind: &'static str,
    hooks: &[Hook],
    state: &OciState,
    default_env: Option<&[String]>,
    cwd: Option<&std::path::Path>,
) -> Result<()> {
    if hooks.is_empty() {
        return Ok(());
    }
    let input = serde_json::to_vec(state)
        .map_err(|e| Error::Usage(format!("encode state for hooks: {e}")))?;
    for (index, h) in hooks.iter().enumerate() {
        run_one(h, &input, default_env, cwd).map_err(|msg| Error::Hook {
            kind,
            index,
            path: h.path().display().to_string(),
            msg,
        })?;
    }
    Ok(())
}

/// Runs every hook, logging failures instead of stopping (poststart and
/// poststop: the spec says to warn and go on).
pub fn run_all_warn(kind: &'static str, hooks: &[Hook], state: &OciState) {
    let Ok(input) = serde_json::to_vec(state) else {
        return;
    };
    for (index, h) in hooks.iter().enumerate() {
        if let Err(msg) = run_one(h, &input, None, None) {
            tracing::warn!("{kind} hook #{index} ({}): {msg}", h.path().display());
        }
    }
}

fn memfile() -> std::io::Result<std::fs::File> {
    // An anonymous file: a hook that does not read its stdin, or writes a lot,
    // can never block us the way a pipe could.
    // SAFETY: valid C string; memfd_create has no other preconditions.
    let fd =
        berth_sys::cvt(unsafe { libc::memfd_create(c"berth-hook".as_ptr(), libc::MFD_CLOEXEC) })?;
    // SAFETY: new fd owned by us.
    Ok(std::fs::File::from(unsafe {
        <std::os::fd::OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd)
    }))
}

fn run_one(
    h: &Hook,
    input: &[u8],
    default_env: Option<&[String]>,
    cwd: Option<&std::path::Path>,
) -> std::result::Result<(), String> {
    let mut stdin = memfile().map_err(|e| e.to_string())?;
    stdin.write_all(input).map_err(|e| e.to_string())?;
    stdin.rewind().map_err(|e| e.to_string())?;
    let mut out = memfile().map_err(|e| e.to_string())?;
    let err_file = out.try_clone().map_err(|e| e.to_string())?;
    let mut cmd = Command::new(h.path());
    if let Some(args) = h.args() {
        if let Some(a0) = args.first() {
            cmd.arg0(a0);
        }
        cmd.args(args.iter().skip(1));
    }
    // runc: a hook's `env` is its whole environment; without one, it
    // inherits (the runtime's, or the container process's for
    // startContainer hooks).
    let env = h.env().as_deref().or(default_env);
    if let Some(env) = env {
        cmd.env_clear();
        for e in env {
            if let Some((k, v)) = e.split_once('=') {
                cmd.env(k, v);
            }
        }
    }
    if let Some(d) = cwd {
        cmd.current_dir(d);
    }
    cmd.stdin(Stdio::from(stdin))
        .stdout(Stdio::from(out.try_clone().map_err(|e| e.to_string())?))
        .stderr(Stdio::from(err_file));
    let mut child = cmd.spawn().map_err(|e| format!("cannot start: {e}"))?;
    let timeout = h
        .timeout()
        .map(|t| t.clamp(1, i32::MAX as i64 / 1000) as i32 * 1000);
    let pidfd = berth_sys::process::pidfd_open(child.id() as i32).map_err(|e| e.to_string())?;
    let done = berth_sys::process::pidfd_wait_exit(pidfd.as_fd(), timeout.unwrap_or(-1))
        .map_err(|e| e.to_string())?;
    if !done {
        let _ = child.kill();
        let _ = child.wait();
        return Err(format!("timed out after {} s", h.timeout().unwrap_or(0)));
    }
    let status = child.wait().map_err(|e| e.to_string())?;
    if status.success() {
        return Ok(());
    }
    let mut text = String::new();
    out.rewind().ok();
    let _ = out.take(4096).read_to_string(&mut text);
    let text = text.trim();
    Err(if text.is_empty() {
        format!("failed: {status}")
    } else {
        format!("failed: {status}; output: {text}")
    })
}
