//! `/containers/{id}/archive` (`docker cp`): GET (a path as a tar
//! stream), HEAD (its stat) and PUT (a tar stream extracted into a
//! directory), all through the engine's fd-only copy primitives
//! (`Engine::copy_out_tar`, `Engine::copy_in_tar`), never a host path.
//!
//! Docker answers GET and HEAD with the path's stat in the
//! `X-Docker-Container-Path-Stat` header (base64 JSON); here it is read
//! from the first header of the tar stream the engine makes, so the path
//! is opened once, by fd, for both.

use crate::containers::{ChannelReader, FrameWriter};
use crate::error::{ApiError, ApiResult};
use crate::http::{self, Query, Resp};
use crate::server::Shared;
use bytes::{Bytes, BytesMut};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::header::HeaderValue;
use hyper::{Request, StatusCode};
use std::sync::Arc;
use tokio::sync::mpsc;

/// The most read ahead to find the path's own tar header (past PAX and
/// GNU long-name headers).
const HEAD_MAX: usize = 1 << 20;

/// What Docker's stat header says of a path.
#[derive(Debug, PartialEq, Eq)]
pub struct PathStat {
    pub name: String,
    pub size: i64,
    /// Go's `os.FileMode`: permission bits and its type bits.
    pub mode: u32,
    /// RFC 3339.
    pub mtime: String,
    pub link_target: String,
}

fn octal(f: &[u8]) -> Option<i64> {
    let s = std::str::from_utf8(f).ok()?;
    let s = s.trim_matches(|c: char| c == '\0' || c == ' ');
    if s.is_empty() {
        return Some(0);
    }
    i64::from_str_radix(s, 8).ok()
}

fn cstr(f: &[u8]) -> String {
    let n = f.iter().position(|&b| b == 0).unwrap_or(f.len());
    String::from_utf8_lossy(&f[..n]).into_owned()
}

/// The stat of the first entry of a tar stream that begins with `buf`:
/// None while more is needed, an error for a stream that is not tar.
pub fn first_entry_stat(buf: &[u8], name: &str) -> Result<Option<PathStat>, String> {
    let mut off = 0;
    loop {
        let Some(h) = buf.get(off..off + 512) else {
            return Ok(None);
        };
        let size = octal(&h[124..136]).ok_or("a tar header with a bad size")?;
        let kind = h[156];
        if matches!(kind, b'x' | b'g' | b'L' | b'K') {
            // An extension header: skip it and its data.
            let data = usize::try_from(size).map_err(|_| "a bad tar header")?;
            off += 512 + data.div_ceil(512) * 512;
            continue;
        }
        let perm = octal(&h[100..108]).ok_or("a tar header with a bad mode")? as u32 & 0o7777;
        let mtime = octal(&h[136..148]).ok_or("a tar header with a bad mtime")?;
        // Go's os.FileMode type bits.
        let (ty, size) = match kind {
            b'5' => (1u32 << 31, 4096),
            b'2' => (1 << 27, 0),
            _ => (0, size),
        };
        let mode = ty
            | (perm & 0o777)
            | if perm & 0o4000 != 0 { 1 << 23 } else { 0 }
            | if perm & 0o2000 != 0 { 1 << 22 } else { 0 }
            | if perm & 0o1000 != 0 { 1 << 20 } else { 0 };
        return Ok(Some(PathStat {
            name: name.to_string(),
            size,
            mode,
            mtime: rfc3339(mtime),
            link_target: cstr(&h[157..257]),
        }));
    }
}

fn rfc3339(secs: i64) -> String {
    let days = secs.div_euclid(86400);
    let rem = secs.rem_euclid(86400);
    // Civil from days (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

pub(crate) fn base64(b: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(b.len().div_ceil(3) * 4);
    for c in b.chunks(3) {
        let n = (u32::from(c[0]) << 16)
            | (u32::from(*c.get(1).unwrap_or(&0)) << 8)
            | u32::from(*c.get(2).unwrap_or(&0));
        for i in 0..4 {
            if i <= c.len() {
                out.push(A[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

fn stat_header(st: &PathStat) -> String {
    base64(
        serde_json::json!({
            "name": st.name, "size": st.size, "mode": st.mode,
            "mtime": st.mtime, "linkTarget": st.link_target,
        })
        .to_string()
        .as_bytes(),
    )
}

/// Docker's words for a path that is not there (the CLI shows them).
fn not_found(e: berth_engine::Error, path: &str) -> ApiError {
    let enoent = matches!(&e, berth_engine::Error::Io { cause, .. }
        if cause.raw_os_error() == Some(libc::ENOENT) || cause.kind() == std::io::ErrorKind::NotFound);
    if enoent {
        ApiError::not_found(format!("Could not find the file {path} in container: {e}"))
    } else {
        e.into()
    }
}

fn path_of(q: &Query) -> ApiResult<String> {
    match q.get("path") {
        Some(p) if !p.is_empty() => Ok(p.to_string()),
        _ => Err(ApiError::bad_request("the path parameter is required")),
    }
}

/// GET (`head` false) or HEAD (`head` true) of `/containers/{id}/archive`.
pub async fn get(s: &Arc<Shared>, id: &str, q: &Query, head: bool) -> ApiResult<Resp> {
    let path = path_of(q)?;
    let name = std::path::Path::new(&path)
        .file_name()
        .map_or_else(|| "/".to_string(), |n| n.to_string_lossy().into_owned());
    let (tx, mut rx) = mpsc::channel::<Bytes>(16);
    let (id2, path2) = (id.to_string(), path.clone());
    let s = s.clone();
    let job = async move {
        s.engine(move |e| {
            let mut w = std::io::BufWriter::with_capacity(
                64 << 10,
                FrameWriter {
                    tx,
                    stream: 0,
                    mux: false,
                },
            );
            e.copy_out_tar(&id2, &path2, &mut w)
                .map_err(|e| not_found(e, &path2))?;
            std::io::Write::flush(&mut w)
                .map_err(|e| ApiError::internal(format!("archive of {path2}: {e}")))
        })
        .await
    };
    let mut job = Box::pin(job);
    // Read until the path's own tar header is in: its stat.
    let mut first = BytesMut::new();
    let mut done = false;
    let stat = loop {
        tokio::select! {
            b = rx.recv() => match b {
                Some(b) => {
                    first.extend_from_slice(&b);
                    match first_entry_stat(&first, &name) {
                        Ok(Some(st)) => break st,
                        Ok(None) if first.len() < HEAD_MAX => {}
                        _ => return Err(ApiError::internal(format!("archive of {path}: the engine's tar stream has no header"))),
                    }
                }
                None => {
                    (&mut job).await?;
                    return Err(ApiError::internal(format!("archive of {path}: the engine wrote no tar stream")));
                }
            },
            r = &mut job, if !done => {
                r?;
                done = true;
                // Done: what it wrote is all in the channel.
                while let Ok(b) = rx.try_recv() {
                    first.extend_from_slice(&b);
                }
                match first_entry_stat(&first, &name) {
                    Ok(Some(st)) => break st,
                    _ => return Err(ApiError::internal(format!("archive of {path}: the engine's tar stream has no header"))),
                }
            }
        }
    };
    let stat = HeaderValue::from_str(&stat_header(&stat))
        .map_err(|e| ApiError::internal(format!("archive of {path}: {e}")))?;
    if head {
        // The copy stops at its next write (the channel is gone).
        drop(rx);
        let mut r = http::empty(StatusCode::OK);
        r.headers_mut().insert("X-Docker-Container-Path-Stat", stat);
        return Ok(r);
    }
    let (mut resp, out) = http::stream("application/x-tar");
    resp.headers_mut()
        .insert("X-Docker-Container-Path-Stat", stat);
    tokio::spawn(async move {
        if out.send(first.freeze()).await.is_err() {
            return;
        }
        while let Some(b) = rx.recv().await {
            if out.send(b).await.is_err() {
                return;
            }
        }
        if done {
            return;
        }
        if let Err(e) = job.await {
            tracing::warn!("API archive of {path}: {}", e.message);
        }
    });
    Ok(resp)
}

/// PUT `/containers/{id}/archive?path=DIR`: the body, a tar stream,
/// extracted into the existing directory DIR (`copyUIDGID`: the archive's
/// owners kept). Streamed: a slow client holds its copy back, not memory.
pub async fn put(s: &Arc<Shared>, id: &str, q: &Query, req: Request<Incoming>) -> ApiResult<Resp> {
    let path = path_of(q)?;
    let archive = q.flag("copyUIDGID");
    let (mut input, feed) = body_reader(req.into_body());
    let id = id.to_string();
    let r = s
        .engine(move |e| {
            let r = e
                .copy_in_tar(&id, &mut input, &path, archive)
                .map_err(|e| not_found(e, &path));
            Ok((r, input))
        })
        .await;
    let r = match r {
        Ok((r, input)) => {
            drain(input).await;
            r
        }
        Err(e) => Err(e),
    };
    feed.abort();
    r?;
    Ok(http::empty(StatusCode::OK))
}

/// Takes what is left of a request body its reader stopped short of (a
/// tar's end-of-archive blocks, padding), at most 1 MiB, before the
/// answer: hyper closes a connection whose request body was not read, and
/// a client still writing its last bytes then fails with EPIPE ("broken
/// pipe" from `docker cp`). A stalled client ends it by the body timeout.
pub(crate) async fn drain(mut input: ChannelReader) {
    let mut left = 1usize << 20;
    while let Some(b) = input.rx.recv().await {
        if b.len() >= left {
            break;
        }
        left -= b.len();
    }
}

/// A request body as a blocking reader (for an engine call), fed by a
/// task that reads it frame by frame: streamed, never held whole; a
/// client that stalls for [`http::BODY_TIMEOUT`] ends the stream (a cut
/// tar is refused by its reader). Abort the task when done.
pub(crate) fn body_reader(mut body: Incoming) -> (ChannelReader, tokio::task::JoinHandle<()>) {
    let (tx, rx) = mpsc::channel::<Bytes>(16);
    let feed = tokio::spawn(async move {
        loop {
            match tokio::time::timeout(http::BODY_TIMEOUT, body.frame()).await {
                Ok(Some(Ok(f))) => {
                    if let Ok(d) = f.into_data() {
                        if tx.send(d).await.is_err() {
                            return;
                        }
                    }
                }
                _ => return,
            }
        }
    });
    (
        ChannelReader {
            rx,
            cur: Bytes::new(),
        },
        feed,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(name: &str, mode: &str, size: &str, kind: u8, link: &str) -> Vec<u8> {
        let mut h = vec![0u8; 512];
        h[..name.len()].copy_from_slice(name.as_bytes());
        h[100..100 + mode.len()].copy_from_slice(mode.as_bytes());
        h[124..124 + size.len()].copy_from_slice(size.as_bytes());
        h[136..147].copy_from_slice(b"14524770400");
        h[156] = kind;
        h[157..157 + link.len()].copy_from_slice(link.as_bytes());
        h
    }

    #[test]
    fn the_stat_header_comes_from_the_first_tar_entry() {
        let d = header("etc", "0000755", "00000000000", b'5', "");
        let st = first_entry_stat(&d, "etc").unwrap().unwrap();
        assert_eq!(st.mode, (1 << 31) | 0o755);
        assert_eq!(st.mtime, "2023-11-14T22:13:20Z");
        let f = header("f", "0004644", "00000000012", b'0', "");
        let st = first_entry_stat(&f, "f").unwrap().unwrap();
        assert_eq!((st.mode, st.size), ((1 << 23) | 0o644, 10));
        let l = header("l", "0000777", "00000000000", b'2', "target");
        let st = first_entry_stat(&l, "l").unwrap().unwrap();
        assert_eq!(
            (st.mode, st.link_target.as_str()),
            ((1 << 27) | 0o777, "target")
        );
        // A PAX header first: skipped; an incomplete stream: more needed.
        let mut pax = header("PaxHeaders/x", "0000644", "00000000024", b'x', "");
        pax.extend_from_slice(&[b'a'; 512]);
        assert_eq!(first_entry_stat(&pax, "f").unwrap(), None);
        pax.extend_from_slice(&f);
        assert_eq!(first_entry_stat(&pax, "f").unwrap().unwrap().size, 10);
        assert!(first_entry_stat(&header("x", "zz", "", b'0', ""), "x").is_err());
        assert_eq!(first_entry_stat(&d[..100], "etc").unwrap(), None);
    }

    #[test]
    fn base64_as_go_encodes_it() {
        assert_eq!(base64(b""), "");
        assert_eq!(base64(b"f"), "Zg==");
        assert_eq!(base64(b"fo"), "Zm8=");
        assert_eq!(base64(b"foo"), "Zm9v");
        assert_eq!(base64(b"foobar"), "Zm9vYmFy");
    }
}
