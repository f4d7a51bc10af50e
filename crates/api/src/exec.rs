//! `/containers/{id}/exec` and `/exec/{id}`: create, start (hijacked, or
//! detached), inspect, resize. The process is the runtime's exec, run as
//! `berth exec` runs it: its stdio as pipes to the connection (framed), or
//! with a terminal the pty master the runtime sends (unframed).

use crate::error::{ApiError, ApiResult};
use crate::http::{self, Query, Resp};
use crate::server::Shared;
use berth_engine::exec::ExecOptions;
use bytes::Bytes;
use hyper::body::Incoming;
use hyper::header::{self, HeaderValue};
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use std::collections::HashMap;
use std::io::{Read, Write};
use std::process::Stdio;
use std::sync::{Arc, Mutex, OnceLock};
use tokio::io::AsyncReadExt;
use tokio::sync::mpsc;

/// The most execs remembered (finished ones are forgotten first).
const MAX_EXECS: usize = 1024;

#[derive(Clone, Debug, Default)]
struct ExecState {
    container: String,
    opts: ExecOptions,
    stdin: bool,
    stdout: bool,
    stderr: bool,
    started: bool,
    running: bool,
    exit_code: Option<i32>,
    pid: i32,
    /// The detach keys of a terminal exec.
    keys: Vec<u8>,
}

fn execs() -> &'static Mutex<HashMap<String, ExecState>> {
    static M: OnceLock<Mutex<HashMap<String, ExecState>>> = OnceLock::new();
    M.get_or_init(Default::default)
}

fn update(id: &str, f: impl FnOnce(&mut ExecState)) {
    if let Ok(mut m) = execs().lock() {
        if let Some(x) = m.get_mut(id) {
            f(x);
        }
    }
}

#[derive(serde::Deserialize, Default)]
#[serde(rename_all = "PascalCase", default)]
struct CreateRequest {
    attach_stdin: bool,
    attach_stdout: bool,
    attach_stderr: bool,
    tty: bool,
    cmd: Vec<String>,
    env: Option<Vec<String>>,
    user: Option<String>,
    working_dir: Option<String>,
    privileged: bool,
    detach_keys: Option<String>,
    console_size: Option<Vec<u16>>,
}

pub async fn create(s: &Arc<Shared>, id: &str, req: Request<Incoming>) -> ApiResult<Resp> {
    let r: CreateRequest = http::read_json(req.into_body()).await?;
    if r.cmd.is_empty() {
        return Err(ApiError::bad_request("exec: Cmd is required"));
    }
    let keys = match r.detach_keys.as_deref().filter(|k| !k.is_empty()) {
        Some(k) => berth_engine::session::parse_detach_keys(k)?,
        None => berth_engine::session::DEFAULT_DETACH_KEYS.to_vec(),
    };
    let console_size = match r.console_size.as_deref() {
        Some([h, w]) if *h > 0 && *w > 0 => Some((*h, *w)),
        _ => None,
    };
    let id = id.to_string();
    let container = s
        .engine(move |e| {
            let rec = e.get(&id)?;
            if !matches!(
                rec.state.status,
                berth_engine::records::Status::Running | berth_engine::records::Status::Restarting
            ) {
                return Err(ApiError::conflict(format!(
                    "Container {} is not running",
                    rec.id
                )));
            }
            Ok(rec.id)
        })
        .await?;
    let mut b = [0u8; 32];
    crate::volumes::random(&mut b);
    let exec_id: String = b.iter().map(|c| format!("{c:02x}")).collect();
    let st = ExecState {
        container,
        opts: ExecOptions {
            args: r.cmd,
            env: r
                .env
                .unwrap_or_default()
                .into_iter()
                .filter(|e| e.contains('='))
                .collect(),
            user: r.user.filter(|u| !u.is_empty()),
            workdir: r.working_dir.filter(|w| !w.is_empty()),
            tty: r.tty,
            privileged: r.privileged,
            console_size,
        },
        keys,
        stdin: r.attach_stdin,
        stdout: r.attach_stdout,
        stderr: r.attach_stderr,
        ..Default::default()
    };
    if let Ok(mut m) = execs().lock() {
        if m.len() >= MAX_EXECS {
            m.retain(|_, x| x.running || !x.started);
        }
        if m.len() >= MAX_EXECS {
            return Err(ApiError::conflict("too many execs waiting to start"));
        }
        m.insert(exec_id.clone(), st);
    }
    Ok(http::json_status(
        StatusCode::CREATED,
        &serde_json::json!({ "Id": exec_id }),
    ))
}

#[derive(serde::Deserialize, Default)]
#[serde(rename_all = "PascalCase", default)]
struct StartRequest {
    detach: bool,
    tty: bool,
}

/// Runs the exec to its end, its output to `out` (framed), its input from
/// `input`; records its end. Returns its exit code.
fn run(
    s: &Shared,
    exec_id: &str,
    st: &ExecState,
    input: Option<mpsc::Receiver<Bytes>>,
    out: Option<mpsc::Sender<Bytes>>,
) -> ApiResult<i32> {
    let e = berth_engine::Engine::open(&s.root, &s.run_root)?;
    let x = e.prepare_exec(&st.container, &st.opts)?;
    if st.opts.tty {
        return run_tty(&e, &x, exec_id, st, input, out);
    }
    let mut c = x.command(&[]);
    let pipe = |on: bool| if on { Stdio::piped() } else { Stdio::null() };
    c.stdin(pipe(input.is_some()))
        .stdout(pipe(out.is_some() && st.stdout))
        .stderr(pipe(out.is_some() && st.stderr));
    let mut child = c.spawn().map_err(|err| {
        ApiError::internal(format!(
            "exec in {}: start the runtime: {err}",
            x.record.name
        ))
    })?;
    update(exec_id, |x| {
        x.running = true;
        x.pid = child.id() as i32;
    });
    let mut threads = Vec::new();
    for (pipe, stream) in [
        (
            child
                .stdout
                .take()
                .map(|p| Box::new(p) as Box<dyn Read + Send>),
            1u8,
        ),
        (
            child
                .stderr
                .take()
                .map(|p| Box::new(p) as Box<dyn Read + Send>),
            2u8,
        ),
    ] {
        if let (Some(mut p), Some(tx)) = (pipe, out.clone()) {
            threads.push(std::thread::spawn(move || {
                let mut buf = vec![0u8; 32 * 1024];
                let mut gone = false;
                loop {
                    match p.read(&mut buf) {
                        Ok(0) | Err(_) => return,
                        // A client gone: drained, so the process never
                        // blocks on a full pipe.
                        Ok(_) if gone => {}
                        Ok(n) => gone = tx.blocking_send(http::frame(stream, &buf[..n])).is_err(),
                    }
                }
            }));
        }
    }
    // `out` is kept until the end is recorded: the client reads the exit
    // code (exec inspect) once the stream ends.
    if let (Some(mut w), Some(mut rx)) = (child.stdin.take(), input) {
        // Not joined: it ends with the client's input.
        std::thread::spawn(move || {
            while let Some(b) = rx.blocking_recv() {
                if w.write_all(&b).is_err() {
                    return;
                }
            }
        });
    }
    let status = child
        .wait()
        .map_err(|err| ApiError::internal(format!("exec: wait for the runtime: {err}")))?;
    let code = match x.runtime_error() {
        Some(msg) => match berth_engine::exec::start_failure_kind(&msg) {
            berth_engine::ErrorKind::CommandNotFound => 127,
            berth_engine::ErrorKind::CommandNotExecutable => 126,
            _ => status.code().unwrap_or(1),
        },
        None => status.code().unwrap_or(1),
    };
    e.exec_ended(&x, code);
    update(exec_id, |x| {
        x.running = false;
        x.exit_code = Some(code);
    });
    for t in threads {
        let _ = t.join();
    }
    drop(out);
    Ok(code)
}

/// The pty masters of running terminal execs, for resize (by exec id).
fn masters() -> &'static Mutex<HashMap<String, std::fs::File>> {
    static M: OnceLock<Mutex<HashMap<String, std::fs::File>>> = OnceLock::new();
    M.get_or_init(Default::default)
}

/// [`run`] with a terminal: the runtime sends the pty master over a
/// console socket (as for `berth exec -t`), and the connection carries
/// the terminal's bytes unframed.
fn run_tty(
    e: &berth_engine::Engine,
    x: &berth_engine::exec::Exec,
    exec_id: &str,
    st: &ExecState,
    input: Option<mpsc::Receiver<Bytes>>,
    out: Option<mpsc::Sender<Bytes>>,
) -> ApiResult<i32> {
    use berth_engine::session::{self, DetachKeys, TerminalEnd};
    let fail = |what: &str, err: std::io::Error| {
        ApiError::internal(format!("exec in {}: {what}: {err}", x.record.name))
    };
    let mut b = [0u8; 8];
    crate::volumes::random(&mut b);
    let tag: String = b.iter().map(|c| format!("{c:02x}")).collect();
    let dir = e.paths.run_dir(&x.record.id).join(format!("exec-{tag}"));
    std::fs::create_dir(&dir).map_err(|err| fail("make the console socket directory", err))?;
    let result = (|| {
        // Named through our fd of its directory: a socket's path must fit
        // in 108 bytes, which a run directory under a long root may not.
        let dir_fd = std::fs::File::open(&dir)
            .map_err(|err| fail("open the console socket directory", err))?;
        let sock = format!(
            "/proc/{}/fd/{}/c.sock",
            std::process::id(),
            std::os::fd::AsRawFd::as_raw_fd(&dir_fd)
        );
        let listener = std::os::unix::net::UnixListener::bind(&sock)
            .map_err(|err| fail("listen on the console socket", err))?;
        let mut child = x
            .command(&["--console-socket", &sock])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|err| fail("start the runtime", err))?;
        update(exec_id, |s| {
            s.running = true;
            s.pid = child.id() as i32;
        });
        let master = berth_engine::exec::receive_console(&listener, &mut child)?;
        let end = match master {
            None => None,
            Some(m) => {
                let master = std::fs::File::from(m);
                if let Some((h, w)) = st.opts.console_size {
                    session::resize_terminal(&master, h, w);
                }
                if let (Ok(mut m), Ok(c)) = (masters().lock(), master.try_clone()) {
                    m.insert(exec_id.to_string(), c);
                }
                let stdin = input.map(|rx| {
                    Box::new(crate::containers::ChannelReader {
                        rx,
                        cur: Bytes::new(),
                    }) as Box<dyn Read + Send>
                });
                let mut w: Box<dyn Write> = match &out {
                    Some(tx) => Box::new(crate::containers::FrameWriter {
                        tx: tx.clone(),
                        stream: 1,
                        mux: false,
                    }),
                    None => Box::new(std::io::sink()),
                };
                let end = session::pump_terminal(
                    &master,
                    stdin,
                    &mut w,
                    DetachKeys::new(st.keys.clone()),
                )?;
                if let Ok(mut m) = masters().lock() {
                    m.remove(exec_id);
                }
                if end == TerminalEnd::Detached {
                    // The process goes on; its output is read and dropped
                    // by a thread of its own.
                    std::thread::spawn(move || {
                        let _ = session::keep_draining(&master);
                    });
                }
                Some(end)
            }
        };
        let status = child
            .wait()
            .map_err(|err| fail("wait for the runtime", err))?;
        let code = match (end, x.runtime_error()) {
            (_, Some(msg)) => match berth_engine::exec::start_failure_kind(&msg) {
                berth_engine::ErrorKind::CommandNotFound => 127,
                berth_engine::ErrorKind::CommandNotExecutable => 126,
                _ => status.code().unwrap_or(1),
            },
            _ => status.code().unwrap_or(1),
        };
        e.exec_ended(x, code);
        update(exec_id, |s| {
            s.running = false;
            s.exit_code = Some(code);
        });
        drop(out);
        Ok(code)
    })();
    let _ = std::fs::remove_dir_all(&dir);
    result
}

pub async fn start(s: &Arc<Shared>, exec_id: &str, req: Request<Incoming>) -> ApiResult<Resp> {
    let upgrade = req
        .headers()
        .get(header::UPGRADE)
        .and_then(|u| u.to_str().ok())
        .is_some_and(|u| u.eq_ignore_ascii_case("tcp"));
    let (parts, body) = req.into_parts();
    let r: StartRequest = http::read_json(body).await?;
    let _ = r.tty;
    let st = {
        let mut m = execs()
            .lock()
            .map_err(|_| ApiError::internal("exec table poisoned"))?;
        let x = m
            .get_mut(exec_id)
            .ok_or_else(|| ApiError::not_found(format!("No such exec instance: {exec_id}")))?;
        if x.started {
            return Err(ApiError::conflict(format!(
                "exec {exec_id} has already been started"
            )));
        }
        x.started = true;
        x.clone()
    };
    let id = exec_id.to_string();
    if r.detach {
        let s2 = s.clone();
        tokio::task::spawn_blocking(move || {
            if let Err(e) = run(&s2, &id, &st, None, None) {
                tracing::warn!("API exec {id}: {e}");
            }
        });
        return Ok(http::empty(StatusCode::OK));
    }
    let tty = st.opts.tty;
    let peer = parts.extensions.get::<http::UnixPeer>().copied();
    let req = Request::from_parts(parts, ());
    let s2 = s.clone();
    let hijack = upgrade;
    let (resp, stream_tx) = if hijack {
        (None, None)
    } else {
        let (r, tx) = http::stream(if st.opts.tty {
            "application/vnd.docker.raw-stream"
        } else {
            "application/vnd.docker.multiplexed-stream"
        });
        (Some(r), Some(tx))
    };
    tokio::spawn(async move {
        let (otx, mut orx) = mpsc::channel::<Bytes>(16);
        let (itx, irx) = mpsc::channel::<Bytes>(16);
        let want_in = st.stdin;
        if hijack {
            let up = match hyper::upgrade::on(req).await {
                Ok(u) => u,
                Err(e) => {
                    tracing::warn!("API exec {id}: upgrade: {e}");
                    return;
                }
            };
            let (mut rd, wr) = tokio::io::split(TokioIo::new(up));
            tokio::spawn(http::pump_hijacked(wr, orx, peer));
            if want_in {
                tokio::spawn(async move {
                    let mut buf = vec![0u8; 32 * 1024];
                    loop {
                        match rd.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => {
                                if itx.send(Bytes::copy_from_slice(&buf[..n])).await.is_err() {
                                    return;
                                }
                            }
                        }
                    }
                });
            }
        } else if let Some(tx) = stream_tx {
            tokio::spawn(async move {
                while let Some(b) = orx.recv().await {
                    if tx.send(b).await.is_err() {
                        break;
                    }
                }
            });
        }
        let input = (want_in && hijack).then_some(irx);
        let r = tokio::task::spawn_blocking(move || run(&s2, &id, &st, input, Some(otx))).await;
        if let Ok(Err(e)) = r {
            tracing::warn!("API exec: {e}");
        }
    });
    if let Some(r) = resp {
        return Ok(r);
    }
    let mut r = Response::new(http::ApiBody::Full(None));
    *r.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let h = r.headers_mut();
    h.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
    h.insert(header::UPGRADE, HeaderValue::from_static("tcp"));
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(if tty {
            "application/vnd.docker.raw-stream"
        } else {
            "application/vnd.docker.multiplexed-stream"
        }),
    );
    Ok(r)
}

pub async fn inspect(exec_id: &str) -> ApiResult<Resp> {
    let x = execs()
        .lock()
        .ok()
        .and_then(|m| m.get(exec_id).cloned())
        .ok_or_else(|| ApiError::not_found(format!("No such exec instance: {exec_id}")))?;
    let (entry, args) = x
        .opts
        .args
        .split_first()
        .map_or((String::new(), vec![]), |(a, b)| (a.clone(), b.to_vec()));
    Ok(http::json(&serde_json::json!({
        "ID": exec_id,
        "Running": x.running,
        "ExitCode": x.exit_code,
        "ProcessConfig": {
            "tty": x.opts.tty,
            "entrypoint": entry,
            "arguments": args,
            "privileged": x.opts.privileged,
            "user": x.opts.user.clone().unwrap_or_default(),
        },
        "OpenStdin": x.stdin,
        "OpenStderr": x.stderr,
        "OpenStdout": x.stdout,
        "CanRemove": false,
        "ContainerID": x.container,
        "DetachKeys": "",
        "Pid": x.pid,
    })))
}

pub async fn resize(exec_id: &str, _q: &Query) -> ApiResult<Resp> {
    if !execs().lock().is_ok_and(|m| m.contains_key(exec_id)) {
        return Err(ApiError::not_found(format!(
            "No such exec instance: {exec_id}"
        )));
    }
    Ok(http::empty(StatusCode::OK))
}
