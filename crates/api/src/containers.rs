//! `/containers`: create, list, inspect, start, stop, restart, kill,
//! wait, remove, logs, attach (hijacked), resize.
//!
//! `docker run` without `-d` attaches to the created container, then
//! starts it: the attach waits (in [`Shared::attach`]) for the start,
//! which hands it the session with the container's monitor, and runs that
//! session to the container's end as `berth run` does (the owner records
//! the end); its exit code goes to `wait` through [`Shared::outcomes`].

use crate::createbody;
use crate::error::{ApiError, ApiResult};
use crate::http::{self, Query, Resp};
use crate::server::Shared;
use berth_engine::images::{ImageChoice, ImageForError, PullPolicy};
use berth_engine::query::{PsFilter, PsQuery};
use berth_engine::records::{Record, Status};
use berth_engine::session::{Input, Outcome, Streams};
use berth_engine::specgen::docker;
use bytes::Bytes;
use hyper::body::Incoming;
use hyper::header::{self, HeaderValue};
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use std::io::{Read, Write};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::{mpsc, oneshot, watch};

/// How long a followed log waits for a client that does not read.
const LOG_STALL: Duration = Duration::from_secs(60);

/// How long an attach waits for its container's start.
const ATTACH_WAIT: Duration = Duration::from_secs(300);

/// A session handed from `start` to the attach waiting for it, with the
/// sender of its exit code.
pub type Handover = (berth_engine::Session, watch::Sender<Option<i32>>);

fn running(r: &Record) -> bool {
    matches!(r.state.status, Status::Running | Status::Restarting)
}

pub async fn create(s: &Arc<Shared>, q: &Query, req: Request<Incoming>) -> ApiResult<Resp> {
    let name = q.get("name").filter(|n| !n.is_empty()).map(String::from);
    let body = http::read_body(req.into_body()).await?;
    let b = createbody::parse(&body).map_err(ApiError::bad_request)?;
    let (id, warnings) = s
        .engine(move |e| {
            if let Some(n) = &name {
                docker::check_name(n.trim_start_matches('/'))?;
            }
            let (spec, warnings) = docker::to_spec(&b.flags, &b.command)?;
            // Docker's create never pulls: the client pulls on 404 and asks again.
            let id = match e.image_for(&b.image, PullPolicy::Missing, None) {
                Ok(ImageChoice::Stored(id)) => id,
                Ok(ImageChoice::Pull { .. }) | Err(ImageForError::NotPresent { .. }) => {
                    return Err(ApiError::not_found(format!("No such image: {}", b.image)))
                }
                Err(ImageForError::Store(e)) => return Err(e.into()),
                Err(ImageForError::WrongPlatform { have, want, .. }) => {
                    return Err(ApiError::not_found(format!(
                        "No such image: {} for {want} (the stored one is for {have})",
                        b.image
                    )))
                }
            };
            let name = name.as_deref().map(|n| n.trim_start_matches('/'));
            let rec = e.create(&b.image, &id, name, spec).map_err(|err| match err {
                berth_engine::Error::NameInUse(n) => ApiError::conflict(format!(
                    "Conflict. The container name \"/{n}\" is already in use. You have to remove (or rename) that container to be able to reuse that name."
                )),
                err => err.into(),
            })?;
            Ok((rec.id, warnings))
        })
        .await?;
    Ok(http::json_status(
        StatusCode::CREATED,
        &serde_json::json!({ "Id": id, "Warnings": warnings }),
    ))
}

pub async fn list(s: &Arc<Shared>, q: &Query) -> ApiResult<Resp> {
    let filters = q.filters()?;
    let all = q.flag("all");
    let limit: Option<i64> = q.int("limit")?;
    let size = q.flag("size");
    let out = s
        .engine(move |e| {
            let filter = PsFilter::parse(&filters)?;
            let query = PsQuery {
                all,
                last: limit.filter(|l| *l > 0).map(|l| l as usize),
                latest: false,
                filter,
            };
            let recs = e.ps(&query)?;
            Ok(recs
                .iter()
                .map(|r| {
                    let p = e.ps_entry(r, size);
                    let mut v = serde_json::json!({
                        "Id": p.id,
                        "Names": p.names.iter().map(|n| format!("/{n}")).collect::<Vec<_>>(),
                        "Image": p.image,
                        "ImageID": p.image_id,
                        "Command": berth_engine::query::quoted_command(&p.command, true).trim_matches('"'),
                        "Created": p.created,
                        "Ports": p.ports.iter().map(|pp| {
                            let mut o = serde_json::json!({"PrivatePort": pp.container_port, "Type": pp.protocol});
                            if pp.host_port != 0 {
                                o["PublicPort"] = pp.host_port.into();
                                o["IP"] = if pp.host_ip.is_empty() { "0.0.0.0".into() } else { pp.host_ip.clone().into() };
                            }
                            o
                        }).collect::<Vec<_>>(),
                        "Labels": p.labels,
                        "State": p.state,
                        "Status": p.status,
                        "HostConfig": { "NetworkMode": r.spec.network.networks.first().map_or("default".to_string(), |n| n.network.clone()) },
                        "NetworkSettings": { "Networks": p.networks.iter().map(|n| (n.clone(), serde_json::json!({}))).collect::<serde_json::Map<_, _>>() },
                        "Mounts": [],
                    });
                    if let (Some(rw), Some(rootfs)) = (p.size_rw, p.size_root_fs) {
                        v["SizeRw"] = rw.into();
                        v["SizeRootFs"] = rootfs.into();
                    }
                    v
                })
                .collect::<Vec<_>>())
        })
        .await?;
    Ok(http::json(&out))
}

pub async fn inspect(s: &Arc<Shared>, id: &str) -> ApiResult<Resp> {
    let id = id.to_string();
    let v = s.engine(move |e| Ok(e.inspect_container(&id)?)).await?;
    Ok(http::json(&v))
}

/// Starts `id` (detached, or handing its session to a waiting attach).
async fn start_id(s: &Arc<Shared>, id: String) -> ApiResult<Option<String>> {
    let s2 = s.clone();
    let started = s
        .engine(move |e| {
            let rec = e.get(&id)?;
            if running(&rec) {
                return Ok(None);
            }
            let (sess, _) = e.start_session(&rec.id, None)?;
            if let Ok(mut m) = s2.monitors.lock() {
                m.push(sess.monitor_pid);
            }
            let waiting = s2.attach.lock().ok().and_then(|mut m| m.remove(&rec.id));
            match waiting {
                Some(tx) => {
                    let (wtx, wrx) = watch::channel(None);
                    if let Ok(mut o) = s2.outcomes.lock() {
                        if o.len() > 1024 {
                            o.retain(|_, r| r.borrow().is_none());
                        }
                        o.insert(rec.id.clone(), wrx);
                    }
                    // An attach gone meanwhile: the session is dropped,
                    // the container runs on detached.
                    let _ = tx.send((sess, wtx));
                }
                None => drop(sess),
            }
            Ok(Some(rec.id))
        })
        .await?;
    if let Some(id) = &started {
        let _ = s.started.send(id.clone());
    }
    Ok(started)
}

pub async fn start(s: &Arc<Shared>, id: &str) -> ApiResult<Resp> {
    match start_id(s, id.to_string()).await? {
        Some(_) => Ok(http::empty(StatusCode::NO_CONTENT)),
        None => Ok(http::empty(StatusCode::NOT_MODIFIED)),
    }
}

pub async fn stop(s: &Arc<Shared>, id: &str, q: &Query) -> ApiResult<Resp> {
    let t: Option<i64> = q.int("t")?;
    let t = t.map(|t| t.clamp(0, u32::MAX as i64) as u32);
    let id = id.to_string();
    let was = s
        .engine(move |e| {
            let rec = e.get(&id)?;
            if !running(&rec) {
                return Ok(false);
            }
            e.stop(&id, t)?;
            Ok(true)
        })
        .await?;
    Ok(http::empty(if was {
        StatusCode::NO_CONTENT
    } else {
        StatusCode::NOT_MODIFIED
    }))
}

pub async fn restart(s: &Arc<Shared>, id: &str, q: &Query) -> ApiResult<Resp> {
    let t: Option<i64> = q.int("t")?;
    let t = t.map(|t| t.clamp(0, u32::MAX as i64) as u32);
    let id2 = id.to_string();
    s.engine(move |e| {
        e.stop(&id2, t)?;
        Ok(())
    })
    .await?;
    start_id(s, id.to_string()).await?;
    Ok(http::empty(StatusCode::NO_CONTENT))
}

pub async fn kill(s: &Arc<Shared>, id: &str, q: &Query) -> ApiResult<Resp> {
    let sig = match q.get("signal").filter(|x| !x.is_empty()) {
        None => libc::SIGKILL,
        Some(x) => docker::parse_signal(x)?,
    };
    let id = id.to_string();
    s.engine(move |e| {
        let rec = e.get(&id)?;
        if !running(&rec) {
            return Err(ApiError::conflict(format!(
                "Container {} is not running",
                rec.id
            )));
        }
        e.kill(&id, sig, true)?;
        Ok(())
    })
    .await?;
    Ok(http::empty(StatusCode::NO_CONTENT))
}

pub async fn remove(s: &Arc<Shared>, id: &str, q: &Query) -> ApiResult<Resp> {
    let (force, volumes) = (q.flag("force"), q.flag("v"));
    let id = id.to_string();
    let s2 = s.clone();
    s.engine(move |e| {
        let rec = e.get(&id)?;
        if running(&rec) && !force {
            return Err(ApiError::conflict(format!(
                "You cannot remove a running container {}. Stop the container before attempting removal or force remove",
                rec.id
            )));
        }
        e.remove(&rec.id, force, volumes)?;
        if let Ok(mut o) = s2.outcomes.lock() {
            o.remove(&rec.id);
        }
        Ok(())
    })
    .await?;
    Ok(http::empty(StatusCode::NO_CONTENT))
}

/// The exit code of the container `id` in its `die` event after the
/// event log's position `mark` (the latest one), if there is one.
fn died_with(e: &berth_engine::Engine, id: &str, mark: i64) -> ApiResult<Option<i32>> {
    let mut seq = mark;
    let mut code = None;
    // Bounded: the events of the wait's time, 500 at a time.
    for _ in 0..20 {
        let batch = e.records.events_after(seq, 500)?;
        let Some((last, _)) = batch.last() else {
            break;
        };
        seq = *last;
        for (_, ev) in &batch {
            if ev.kind == "container" && ev.action == "die" && ev.actor.id == id {
                code = ev
                    .actor
                    .attributes
                    .get("exitCode")
                    .and_then(|c| c.parse().ok());
            }
        }
    }
    Ok(code)
}

/// The exit code of `id`'s current run, once it ends: from the session
/// this service runs, else from the engine. It holds no thread while it
/// waits (the monitor's pidfd is polled), so dropping it, as a wait whose
/// client left does, leaves nothing behind.
/// `mark`: the event log's position when the wait began: a container
/// removed while it is waited for (an `--rm` one, by its monitor) is
/// answered with the exit code of its `die` event, as dockerd does.
async fn wait_exit(s: &Arc<Shared>, id: &str, mark: i64) -> ApiResult<i32> {
    let w = s.outcomes.lock().ok().and_then(|o| o.get(id).cloned());
    if let Some(mut w) = w {
        loop {
            if let Some(code) = *w.borrow_and_update() {
                return Ok(code);
            }
            if w.changed().await.is_err() {
                break;
            }
        }
        if let Some(code) = *w.borrow() {
            return Ok(code);
        }
    }
    loop {
        let id = id.to_string();
        // Err(code): the record went, its die event says how it ended.
        let seen = s
            .engine(move |e| match e.get(&id) {
                Ok(rec) => {
                    let fd = running(&rec).then(|| e.monitor_pidfd(&rec)).flatten();
                    Ok(Ok((rec, fd)))
                }
                Err(err @ berth_engine::Error::NoSuchContainer(_)) => {
                    match died_with(e, &id, mark)? {
                        Some(code) => Ok(Err(code)),
                        None => Err(err.into()),
                    }
                }
                Err(err) => Err(err.into()),
            })
            .await?;
        let (rec, pidfd) = match seen {
            Ok(seen) => seen,
            Err(code) => return Ok(code),
        };
        if !running(&rec) {
            return Ok(rec.state.exit_code);
        }
        // Once the monitor has ended, the record says how. Running with
        // its monitor not (yet, or no longer) there: the record is
        // settling.
        if !monitor_ended(pidfd, None).await {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// Until `id`'s record is gone, a minute at most. An `--rm` container
/// attached through this service is gone at once (its session removed
/// it); one started detached is removed by its monitor's exit command,
/// after which the monitor ends: its pidfd is waited on, without a
/// thread. Polled (1 ms, doubling to 50 ms) only while no monitor is
/// left and the record is still there (another client removes it).
async fn wait_removed(s: &Arc<Shared>, id: &str) -> ApiResult<()> {
    let until = tokio::time::Instant::now() + Duration::from_secs(60);
    let mut pause = Duration::from_millis(1);
    // The monitor is waited for once: after its end (a child of this
    // service stays a zombie until `Shared::reap`, its pidfd readable)
    // only the record is looked at.
    let mut ended = false;
    loop {
        let id2 = id.to_string();
        let (gone, pidfd) = s
            .engine(move |e| match e.get(&id2) {
                Err(berth_engine::Error::NoSuchContainer(_)) => Ok((true, None)),
                Ok(rec) => Ok((false, e.monitor_pidfd(&rec))),
                Err(err) => Err(err.into()),
            })
            .await?;
        if gone || tokio::time::Instant::now() >= until {
            return Ok(());
        }
        // The monitor's end: its exit command, which removes an --rm
        // container, has run by then.
        if !ended && monitor_ended(pidfd, Some(until)).await {
            ended = true;
        } else {
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(Duration::from_millis(50));
        }
    }
}

/// Waits, without a thread, for the monitor whose pidfd is `pidfd` to end
/// (or for `until`): false at once when there is none or it cannot be
/// polled.
async fn monitor_ended(
    pidfd: Option<std::os::fd::OwnedFd>,
    until: Option<tokio::time::Instant>,
) -> bool {
    // SAFETY: the OwnedFd is moved into the AsyncFd, which owns it from
    // then on: the fd stays open, and is the same one, until it drops.
    match pidfd.map(|fd| unsafe { tokio::io::unix::AsyncFd::register(fd) }) {
        Some(Ok(fd)) => {
            match until {
                Some(t) => {
                    let _ = tokio::time::timeout_at(t, fd.readable()).await;
                }
                None => {
                    let _ = fd.readable().await;
                }
            }
            true
        }
        _ => false,
    }
}

pub async fn wait(s: &Arc<Shared>, id: &str, q: &Query) -> ApiResult<Resp> {
    let cond = q.get("condition").unwrap_or("not-running").to_string();
    if !matches!(cond.as_str(), "" | "not-running" | "next-exit" | "removed") {
        return Err(ApiError::bad_request(format!(
            "invalid condition {cond:?}: not-running, next-exit or removed"
        )));
    }
    // Subscribed before looking, so a start in between is seen.
    let mut started = s.started.subscribe();
    let id2 = id.to_string();
    let (rec, mark) = s
        .engine(move |e| Ok((e.get(&id2)?, e.records.last_event()?)))
        .await?;
    let (resp, tx) = http::stream("application/json");
    let s = s.clone();
    tokio::spawn(async move {
        let id = rec.id.clone();
        let code = async {
            if !running(&rec) && cond != "not-running" && !cond.is_empty() {
                // The next exit: after the next start.
                loop {
                    match started.recv().await {
                        Ok(x) if x == id => break,
                        Ok(_) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                        Err(_) => return Err(ApiError::internal("the service is stopping")),
                    }
                }
            } else if !running(&rec) {
                return Ok(rec.state.exit_code);
            }
            let code = wait_exit(&s, &id, mark).await?;
            if cond == "removed" {
                wait_removed(&s, &id).await?;
            }
            Ok(code)
        };
        // A client that leaves (`docker run -d` does, right after its
        // start) ends the wait: nothing of it is left waiting.
        let code = tokio::select! {
            c = code => c,
            _ = tx.closed() => return,
        };
        let body = match code {
            Ok(c) => serde_json::json!({ "StatusCode": c, "Error": null }),
            Err(e) => serde_json::json!({ "StatusCode": -1, "Error": { "Message": e.message } }),
        };
        let _ = tx.send(Bytes::from(body.to_string() + "\n")).await;
    });
    Ok(resp)
}

/// Docker's since/until: Unix seconds with an optional fraction.
fn unix_nanos(v: &str, what: &str) -> ApiResult<Option<i64>> {
    if v.is_empty() || v == "0" {
        return Ok(None);
    }
    let bad = || ApiError::bad_request(format!("invalid value for {what}: {v:?}"));
    let (secs, frac) = v.split_once('.').unwrap_or((v, ""));
    let secs: i64 = secs.parse().map_err(|_| bad())?;
    if frac.len() > 9 || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    let nanos: i64 = format!("{frac:0<9}").parse().unwrap_or(0);
    secs.checked_mul(1_000_000_000)
        .and_then(|s| s.checked_add(nanos))
        .map(Some)
        .ok_or_else(bad)
}

pub async fn logs(s: &Arc<Shared>, id: &str, q: &Query) -> ApiResult<Resp> {
    let (stdout, stderr) = (q.flag("stdout"), q.flag("stderr"));
    if !stdout && !stderr {
        return Err(ApiError::bad_request(
            "Bad parameters: you must choose at least one stream",
        ));
    }
    let tail = match q.get("tail") {
        None | Some("") | Some("all") => None,
        Some(t) => Some(
            t.parse::<usize>()
                .map_err(|_| ApiError::bad_request(format!("invalid value for tail: {t:?}")))?,
        ),
    };
    let req = berth_engine::logs::LogRequest {
        since: unix_nanos(q.get("since").unwrap_or(""), "since")?,
        until: unix_nanos(q.get("until").unwrap_or(""), "until")?,
        tail,
        follow: q.flag("follow"),
        stdout,
        stderr,
    };
    let timestamps = q.flag("timestamps");
    let id = id.to_string();
    let rec = s
        .engine(move |e| {
            let rec = e.get(&id)?;
            if rec.spec.logging.driver == berth_engine::specgen::LogDriver::None {
                return Err(ApiError::conflict(format!(
                    "configured logging driver does not support reading: container {} has --log-driver none",
                    rec.name
                )));
            }
            Ok(rec)
        })
        .await?;
    let mux = !rec.spec.process.tty;
    let (resp, tx) = http::stream(if mux {
        "application/vnd.docker.multiplexed-stream"
    } else {
        "application/vnd.docker.raw-stream"
    });
    let s = s.clone();
    tokio::spawn(async move {
        let r = s
            .engine(move |e| {
                let mut each = |en: &berth_engine::logs::Entry| {
                    let mut text = Vec::with_capacity(en.text.len() + 32);
                    if timestamps {
                        text.extend_from_slice(
                            berth_engine::logs::rfc3339_nano(en.time).as_bytes(),
                        );
                        text.push(b' ');
                    }
                    text.extend_from_slice(&en.text);
                    let stream = match en.stream {
                        berth_engine::logs::Stream::Stdout => 1,
                        berth_engine::logs::Stream::Stderr => 2,
                    };
                    let b = if mux {
                        http::frame(stream, &text)
                    } else {
                        Bytes::from(text)
                    };
                    // False (stop) when the client is gone, or has not
                    // read for a minute.
                    http::send_within(&tx, b, LOG_STALL)
                };
                Ok(e.logs(&rec.id, &req, &mut each)?)
            })
            .await;
        if let Err(e) = r {
            tracing::warn!("API logs: {e}");
        }
    });
    Ok(resp)
}

/// The container's stdin as a blocking reader, fed from the connection.
pub(crate) struct ChannelReader {
    pub(crate) rx: mpsc::Receiver<Bytes>,
    pub(crate) cur: Bytes,
}

impl Read for ChannelReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.cur.is_empty() {
            match self.rx.blocking_recv() {
                Some(b) => self.cur = b,
                None => return Ok(0),
            }
        }
        let n = buf.len().min(self.cur.len());
        buf[..n].copy_from_slice(&self.cur.split_to(n));
        Ok(n)
    }
}

/// The container's output, framed if `mux`, to the connection.
pub(crate) struct FrameWriter {
    pub(crate) tx: mpsc::Sender<Bytes>,
    pub(crate) stream: u8,
    pub(crate) mux: bool,
}

impl Write for FrameWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let b = if self.mux {
            http::frame(self.stream, buf)
        } else {
            Bytes::copy_from_slice(buf)
        };
        self.tx
            .blocking_send(b)
            .map_err(|_| std::io::Error::from(std::io::ErrorKind::BrokenPipe))?;
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Attaches to running containers' sessions, for `resize` (by id).
fn inputs() -> &'static std::sync::Mutex<std::collections::HashMap<String, Input>> {
    static M: std::sync::OnceLock<std::sync::Mutex<std::collections::HashMap<String, Input>>> =
        std::sync::OnceLock::new();
    M.get_or_init(Default::default)
}

pub async fn attach(
    s: &Arc<Shared>,
    id: &str,
    q: &Query,
    req: Request<Incoming>,
) -> ApiResult<Resp> {
    let upgrade = req
        .headers()
        .get(header::UPGRADE)
        .and_then(|u| u.to_str().ok())
        .is_some_and(|u| u.eq_ignore_ascii_case("tcp"));
    if !upgrade {
        return Err(ApiError::bad_request(
            "attach needs a hijacked connection: send Connection: Upgrade and Upgrade: tcp",
        ));
    }
    let (stream, logs) = (q.flag("stream"), q.flag("logs"));
    if !stream && !logs {
        return Err(ApiError::bad_request(
            "attach: ask for stream=1 (the live output), logs=1 (the output so far) or both",
        ));
    }
    let want_in = q.flag("stdin");
    let (want_out, want_err) = (q.flag("stdout"), q.flag("stderr"));
    let peer = req.extensions().get::<http::UnixPeer>().copied();
    let id2 = id.to_string();
    let rec = s.engine(move |e| Ok(e.get(&id2)?)).await?;
    let mux = !rec.spec.process.tty;
    if !stream {
        // The output so far, then the end (Docker's logs=1&stream=0).
        let s2 = s.clone();
        tokio::spawn(async move {
            let Ok(up) = hyper::upgrade::on(req).await else {
                return;
            };
            let (_rd, wr) = tokio::io::split(TokioIo::new(up));
            let (otx, orx) = mpsc::channel::<Bytes>(16);
            let replay = s2.engine(move |e| {
                replay_logs(e, &rec, want_out, want_err, mux, &otx);
                Ok(())
            });
            let _ = tokio::join!(replay, http::pump_hijacked(wr, orx, peer));
        });
        return Ok(upgraded(mux));
    }
    // Registered before the answer, so the start the client sends after it
    // finds the attach.
    let pending = if running(&rec) {
        None
    } else {
        let (tx, rx) = oneshot::channel::<Handover>();
        if let Ok(mut m) = s.attach.lock() {
            m.insert(rec.id.clone(), tx);
        }
        Some(rx)
    };
    let s2 = s.clone();
    tokio::spawn(async move {
        let id = rec.id.clone();
        let up = match hyper::upgrade::on(req).await {
            Ok(u) => u,
            Err(e) => {
                tracing::warn!("API attach {id}: upgrade: {e}");
                if let Ok(mut m) = s2.attach.lock() {
                    m.remove(&id);
                }
                return;
            }
        };
        let (mut rd, mut wr) = tokio::io::split(TokioIo::new(up));
        // The session: handed over by start, or from the running
        // container's monitor. Input read before it is kept for it.
        let mut early = Vec::new();
        // The client closed its writing side (no stdin, or all of it sent):
        // it still reads the output.
        let mut eof = false;
        let (session, outcome, owner) = match pending {
            Some(mut rx) => {
                let mut buf = vec![0u8; 16 * 1024];
                let got = loop {
                    tokio::select! {
                        h = &mut rx => break h.ok(),
                        n = rd.read(&mut buf), if !eof && early.len() < 1 << 20 => match n {
                            Ok(0) | Err(_) => eof = true,
                            Ok(n) => early.extend_from_slice(&buf[..n]),
                        },
                        // A start that never comes.
                        _ = tokio::time::sleep(ATTACH_WAIT) => break None,
                    }
                };
                match got {
                    Some((sess, w)) => (sess, Some(w), true),
                    None => {
                        if let Ok(mut m) = s2.attach.lock() {
                            m.remove(&id);
                        }
                        return;
                    }
                }
            }
            None => {
                let id2 = id.clone();
                match s2.engine(move |e| Ok(e.attach(&id2)?.1)).await {
                    Ok(sess) => (sess, None, false),
                    Err(e) => {
                        let _ = wr.write_all(e.message.as_bytes()).await;
                        return;
                    }
                }
            }
        };
        let (otx, orx) = mpsc::channel::<Bytes>(16);
        let writer = tokio::spawn(http::pump_hijacked(wr, orx, peer));
        let stdin: Option<Box<dyn Read + Send>> = if want_in && rec.spec.process.stdin {
            let (itx, irx) = mpsc::channel::<Bytes>(16);
            tokio::spawn(async move {
                if !early.is_empty() && itx.send(Bytes::from(early)).await.is_err() || eof {
                    return;
                }
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
            Some(Box::new(ChannelReader {
                rx: irx,
                cur: Bytes::new(),
            }))
        } else {
            None
        };
        let s3 = s2.clone();
        let rec2 = rec.clone();
        // The output so far first, for a container already running (one
        // started after this attach hands it all to the session).
        let replay = logs && !owner;
        let result = s2
            .engine(move |e| {
                if replay {
                    replay_logs(e, &rec2, want_out, want_err, mux, &otx);
                }
                let input = session.input()?;
                if let Ok(mut m) = inputs().lock() {
                    m.insert(rec2.id.clone(), input.clone());
                }
                let mut out = FrameWriter {
                    tx: otx.clone(),
                    stream: 1,
                    mux,
                };
                let mut err = FrameWriter {
                    tx: otx,
                    stream: 2,
                    mux,
                };
                let mut sink = std::io::sink();
                let io = Streams {
                    stdin,
                    stdout: if want_out { &mut out } else { &mut sink },
                    stderr: if want_err {
                        &mut err
                    } else {
                        &mut std::io::sink()
                    },
                };
                let r = e.run_session(&rec2, session, input, io, owner);
                if let Ok(mut m) = inputs().lock() {
                    m.remove(&rec2.id);
                }
                let _ = &s3;
                Ok(r?)
            })
            .await;
        let code = match &result {
            Ok(Outcome::Exited { code, .. }) => Some(*code),
            Ok(Outcome::StartFailed(_)) => Some(125),
            Ok(_) => None,
            Err(e) => {
                tracing::warn!("API attach {id}: {e}");
                None
            }
        };
        // Without a code (lost, detached), the sender is dropped: waiters
        // ask the engine.
        if let (Some(w), Some(c)) = (outcome, code) {
            let _ = w.send(Some(c));
        }
        let _ = writer.await;
    });
    Ok(upgraded(mux))
}

/// The answer to an attach: the connection switched to the raw stream.
fn upgraded(mux: bool) -> Resp {
    let mut r = Response::new(http::ApiBody::Full(None));
    *r.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let h = r.headers_mut();
    h.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
    h.insert(header::UPGRADE, HeaderValue::from_static("tcp"));
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(if mux {
            "application/vnd.docker.multiplexed-stream"
        } else {
            "application/vnd.docker.raw-stream"
        }),
    );
    r
}

/// Sends the container's log so far (the streams asked for, framed if
/// `mux`) to an attach's writer. A container without a readable log
/// (`--log-driver none`) has nothing to replay.
fn replay_logs(
    e: &berth_engine::Engine,
    rec: &Record,
    stdout: bool,
    stderr: bool,
    mux: bool,
    tx: &mpsc::Sender<Bytes>,
) {
    if rec.spec.logging.driver == berth_engine::specgen::LogDriver::None || !(stdout || stderr) {
        return;
    }
    let req = berth_engine::logs::LogRequest {
        stdout,
        stderr,
        ..Default::default()
    };
    let mut each = |en: &berth_engine::logs::Entry| {
        let b = if mux {
            let stream = match en.stream {
                berth_engine::logs::Stream::Stdout => 1,
                berth_engine::logs::Stream::Stderr => 2,
            };
            http::frame(stream, &en.text)
        } else {
            Bytes::copy_from_slice(&en.text)
        };
        http::send_within(tx, b, LOG_STALL)
    };
    if let Err(err) = e.logs(&rec.id, &req, &mut each) {
        tracing::warn!("API attach {}: replaying the log: {err}", rec.id);
    }
}

pub async fn resize(s: &Arc<Shared>, id: &str, q: &Query) -> ApiResult<Resp> {
    let h: Option<u16> = q.int("h")?;
    let w: Option<u16> = q.int("w")?;
    let id = id.to_string();
    let rec = s.engine(move |e| Ok(e.get(&id)?)).await?;
    if !running(&rec) {
        return Err(ApiError::conflict(format!(
            "Container {} is not running",
            rec.id
        )));
    }
    if let (Some(h), Some(w)) = (h, w) {
        if let Some(i) = inputs().lock().ok().and_then(|m| m.get(&rec.id).cloned()) {
            i.resize(h, w);
        }
    }
    Ok(http::empty(StatusCode::OK))
}

pub async fn rename(s: &Arc<Shared>, id: &str, q: &Query) -> ApiResult<Resp> {
    let name = q
        .get("name")
        .filter(|n| !n.is_empty())
        .ok_or_else(|| ApiError::bad_request("rename: the name parameter is required"))?
        .trim_start_matches('/')
        .to_string();
    let id = id.to_string();
    s.engine(move |e| Ok(e.rename(&id, &name)?)).await?;
    Ok(http::empty(StatusCode::NO_CONTENT))
}

pub async fn pause(s: &Arc<Shared>, id: &str, on: bool) -> ApiResult<Resp> {
    let id = id.to_string();
    s.engine(move |e| {
        if on {
            e.pause(&id)?;
        } else {
            e.unpause(&id)?;
        }
        Ok(())
    })
    .await?;
    Ok(http::empty(StatusCode::NO_CONTENT))
}

pub async fn top(s: &Arc<Shared>, id: &str, q: &Query) -> ApiResult<Resp> {
    let args: Vec<String> = q
        .get("ps_args")
        .filter(|a| !a.trim().is_empty())
        .unwrap_or("-ef")
        .split_whitespace()
        .map(String::from)
        .collect();
    let id = id.to_string();
    let t = s.engine(move |e| Ok(e.top_ps(&id, &args)?)).await?;
    Ok(http::json(&t))
}

pub async fn prune(s: &Arc<Shared>, q: &Query) -> ApiResult<Resp> {
    if !q.filters()?.is_empty() {
        return Err(ApiError::bad_request(
            "container prune filters are not supported by berth's API yet",
        ));
    }
    let gone = s.engine(|e| Ok(e.prune_containers()?)).await?;
    // Docker's: the sum of the removed containers' SizeRw.
    let reclaimed: u64 = gone.iter().map(|(_, b)| b).sum();
    let ids: Vec<&String> = gone.iter().map(|(id, _)| id).collect();
    Ok(http::json(
        &serde_json::json!({ "ContainersDeleted": ids, "SpaceReclaimed": reclaimed }),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dockers_since_and_until_are_unix_seconds() {
        assert_eq!(unix_nanos("", "since").unwrap(), None);
        assert_eq!(unix_nanos("0", "since").unwrap(), None);
        assert_eq!(unix_nanos("12", "since").unwrap(), Some(12_000_000_000));
        assert_eq!(unix_nanos("12.5", "since").unwrap(), Some(12_500_000_000));
        assert!(unix_nanos("1x", "since").is_err());
        assert!(unix_nanos("99999999999999999", "since").is_err());
    }
}
