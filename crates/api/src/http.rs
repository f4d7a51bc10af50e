//! HTTP plumbing shared by the handlers: response bodies (whole or
//! streamed), the request body read under a size cap and a deadline, the
//! query string, Docker's filters.

use crate::error::{ApiError, ApiResult};
use bytes::Bytes;
use http_body_util::{BodyExt, Limited};
use hyper::body::{Body, Frame, Incoming};
use hyper::{header, Response, StatusCode};
use std::collections::BTreeMap;
use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::sync::mpsc;

/// The largest request body read (a container's create request is a few
/// KiB; archives and image tarballs are streamed, not read whole).
pub const MAX_BODY: usize = 1 << 20;
/// How long a client may take to send its request body.
pub const BODY_TIMEOUT: Duration = Duration::from_secs(30);

/// Every response's body: whole, or a stream fed by a channel (bounded:
/// a slow reader holds back its producer, never memory).
pub enum ApiBody {
    Full(Option<Bytes>),
    Stream(mpsc::Receiver<Bytes>),
}

impl Body for ApiBody {
    type Data = Bytes;
    type Error = Infallible;
    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        match self.get_mut() {
            ApiBody::Full(b) => Poll::Ready(b.take().map(|b| Ok(Frame::data(b)))),
            ApiBody::Stream(rx) => rx.poll_recv(cx).map(|b| b.map(|b| Ok(Frame::data(b)))),
        }
    }
    fn is_end_stream(&self) -> bool {
        matches!(self, ApiBody::Full(None))
    }
    fn size_hint(&self) -> hyper::body::SizeHint {
        match self {
            ApiBody::Full(b) => {
                hyper::body::SizeHint::with_exact(b.as_ref().map_or(0, |b| b.len() as u64))
            }
            ApiBody::Stream(_) => hyper::body::SizeHint::default(),
        }
    }
}

pub type Resp = Response<ApiBody>;

pub fn json_status(status: StatusCode, v: &impl serde::Serialize) -> Resp {
    let body = serde_json::to_vec(v).unwrap_or_else(|_| b"{}".to_vec());
    Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "application/json")
        .body(ApiBody::Full(Some(Bytes::from(body))))
        .unwrap_or_else(|_| Response::new(ApiBody::Full(None)))
}

pub fn json(v: &impl serde::Serialize) -> Resp {
    json_status(StatusCode::OK, v)
}

pub fn empty(status: StatusCode) -> Resp {
    let mut r = Response::new(ApiBody::Full(None));
    *r.status_mut() = status;
    r
}

pub fn text(status: StatusCode, s: &'static str) -> Resp {
    let mut r = Response::new(ApiBody::Full(Some(Bytes::from_static(s.as_bytes()))));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}

pub fn error(e: &ApiError) -> Resp {
    let mut r = Response::new(ApiBody::Full(Some(Bytes::from(e.body()))));
    *r.status_mut() = e.status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/json"),
    );
    r
}

/// A streamed response, and the sender that feeds it.
pub fn stream(content_type: &'static str) -> (Resp, mpsc::Sender<Bytes>) {
    let (tx, rx) = mpsc::channel(16);
    let mut r = Response::new(ApiBody::Stream(rx));
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static(content_type),
    );
    (r, tx)
}

/// Sends `b` from a blocking thread, waiting at most `limit` for room;
/// false when the receiver is gone or did not take it in time.
pub fn send_within(tx: &mpsc::Sender<Bytes>, mut b: Bytes, limit: Duration) -> bool {
    let deadline = std::time::Instant::now() + limit;
    loop {
        match tx.try_send(b) {
            Ok(()) => return true,
            Err(mpsc::error::TrySendError::Closed(_)) => return false,
            Err(mpsc::error::TrySendError::Full(back)) => {
                if std::time::Instant::now() >= deadline {
                    return false;
                }
                b = back;
                std::thread::sleep(Duration::from_millis(5));
            }
        }
    }
}

/// The request body, at most [`MAX_BODY`] bytes, within [`BODY_TIMEOUT`].
pub async fn read_body(body: Incoming) -> ApiResult<Bytes> {
    let limited = Limited::new(body, MAX_BODY);
    match tokio::time::timeout(BODY_TIMEOUT, limited.collect()).await {
        Err(_) => Err(ApiError::new(
            StatusCode::REQUEST_TIMEOUT,
            "the request body was not sent in time",
        )),
        Ok(Err(e)) if e.is::<http_body_util::LengthLimitError>() => Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("the request body is over {MAX_BODY} bytes"),
        )),
        Ok(Err(e)) => Err(ApiError::bad_request(format!(
            "reading the request body: {e}"
        ))),
        Ok(Ok(c)) => Ok(c.to_bytes()),
    }
}

/// The request body as JSON of type T (an empty body is T's default).
pub async fn read_json<T: serde::de::DeserializeOwned + Default>(body: Incoming) -> ApiResult<T> {
    let b = read_body(body).await?;
    parse_json(&b)
}

pub fn parse_json<T: serde::de::DeserializeOwned + Default>(b: &[u8]) -> ApiResult<T> {
    if b.iter().all(|c| c.is_ascii_whitespace()) {
        return Ok(T::default());
    }
    serde_json::from_slice(b).map_err(|e| ApiError::bad_request(format!("invalid JSON body: {e}")))
}

/// A query string's parameters (the last of each name wins).
#[derive(Debug, Default)]
pub struct Query(BTreeMap<String, String>);

impl Query {
    pub fn parse(q: Option<&str>) -> Query {
        let mut m = BTreeMap::new();
        for pair in q.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            m.insert(unescape(k), unescape(v));
        }
        Query(m)
    }
    pub fn get(&self, k: &str) -> Option<&str> {
        self.0.get(k).map(String::as_str)
    }
    /// Docker's booleans: 1/true/True (anything else but empty, 0, false is true).
    pub fn flag(&self, k: &str) -> bool {
        matches!(self.get(k), Some(v) if !matches!(v, "" | "0" | "false" | "False" | "FALSE"))
    }
    pub fn int<T: std::str::FromStr>(&self, k: &str) -> ApiResult<Option<T>> {
        match self.get(k) {
            None | Some("") => Ok(None),
            Some(v) => v
                .parse()
                .map(Some)
                .map_err(|_| ApiError::bad_request(format!("invalid value for {k}: {v:?}"))),
        }
    }
    /// Docker's `filters` parameter, `{"key": ["v", ...]}` or
    /// `{"key": {"v": true}}`, as KEY=VALUE strings.
    pub fn filters(&self) -> ApiResult<Vec<String>> {
        let Some(raw) = self.get("filters").filter(|s| !s.is_empty()) else {
            return Ok(Vec::new());
        };
        parse_filters(raw)
    }
}

pub fn parse_filters(raw: &str) -> ApiResult<Vec<String>> {
    let v: serde_json::Value = serde_json::from_str(raw)
        .map_err(|e| ApiError::bad_request(format!("invalid filters: {e}")))?;
    let obj = v
        .as_object()
        .ok_or_else(|| ApiError::bad_request("invalid filters: not a JSON object"))?;
    let mut out = Vec::new();
    for (k, vals) in obj {
        match vals {
            serde_json::Value::Array(a) => {
                for x in a {
                    let s = x.as_str().ok_or_else(|| {
                        ApiError::bad_request(format!("invalid filter {k}: not a string"))
                    })?;
                    out.push(format!("{k}={s}"));
                }
            }
            serde_json::Value::Object(m) => {
                for (x, on) in m {
                    if on.as_bool() == Some(true) {
                        out.push(format!("{k}={x}"));
                    }
                }
            }
            _ => return Err(ApiError::bad_request(format!("invalid filter {k}"))),
        }
    }
    Ok(out)
}

/// %XX and + decoded (invalid escapes kept as they are).
pub fn unescape(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < b.len() => {
                let h = std::str::from_utf8(&b[i + 1..i + 3])
                    .ok()
                    .and_then(|h| u8::from_str_radix(h, 16).ok());
                match h {
                    Some(c) => {
                        out.push(c);
                        i += 2;
                    }
                    None => out.push(b'%'),
                }
            }
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A unix connection's socket (in each request's extensions), for a
/// hijack to see when its client has read the 101 head.
#[derive(Clone, Copy, Debug)]
pub struct UnixPeer(pub std::os::fd::RawFd);

/// How long a hijack waits for its client to read the 101 head before it
/// sends anyway.
pub const HEAD_READ_WAIT: Duration = Duration::from_secs(2);

/// Waits until the client has read all that was written to its unix
/// connection (the 101 head), at most [`HEAD_READ_WAIT`].
///
/// Why: the Python SDK (docker-py, all versions to 7.x) reads the 101
/// with http.client, whose buffered reader takes whatever one `recv`
/// returns, then reads the stream from the raw socket beneath that
/// buffer (`APIClient._get_raw_response_socket`: `response.raw._fp.fp.raw`):
/// bytes that arrived in the same `recv` as the head are lost to it
/// (docker/docker-py#425, #2466). A unix stream socket merges separate
/// writes into one `recv`, so a stream's first bytes (an attach's log
/// replay, written a moment after the head) may be swallowed. dockerd has
/// the same race and loses it less often only by being slower. The
/// kernel says how much of what this side wrote the peer has not read
/// yet (SIOCOUTQ on AF_UNIX: the unread bytes' memory): once it is 0 the
/// head has been read alone, and what follows comes in a later `recv`.
/// There is no event for it, so it is looked at with a backoff of 1 ms
/// to 5 ms; a client waiting in `recv`, as the SDK is, has read it at the
/// first look. TLS needs none of this (each write is its own record, and
/// a read returns one record), nor do Go's clients (the docker CLI reads
/// the stream through the same buffered reader).
pub async fn head_read(peer: Option<UnixPeer>) {
    let Some(UnixPeer(fd)) = peer else {
        return;
    };
    let deadline = tokio::time::Instant::now() + HEAD_READ_WAIT;
    let mut pause = Duration::from_millis(1);
    loop {
        let mut unread: libc::c_int = 0;
        // SAFETY: SIOCOUTQ (TIOCOUTQ's number) on the connection's socket,
        // which the caller's hijacked stream keeps open while it waits;
        // the kernel writes one int to `unread`.
        let r = unsafe { libc::ioctl(fd, libc::TIOCOUTQ, &mut unread) };
        if r != 0 || unread <= 0 || tokio::time::Instant::now() >= deadline {
            return;
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_millis(5));
    }
}

/// Writes what `rx` gives to a hijacked connection (`peer`: its socket,
/// when it is a unix one), the first bytes only once the client has read
/// the 101 head ([`head_read`]), then shuts the writing side down.
pub async fn pump_hijacked<W>(mut wr: W, mut rx: mpsc::Receiver<Bytes>, peer: Option<UnixPeer>)
where
    W: tokio::io::AsyncWrite + Unpin,
{
    use tokio::io::AsyncWriteExt;
    let mut first = true;
    while let Some(b) = rx.recv().await {
        if first {
            head_read(peer).await;
            first = false;
        }
        if wr.write_all(&b).await.is_err() {
            break;
        }
    }
    let _ = wr.shutdown().await;
}

/// Docker's stream framing: a header (stream, 0, 0, 0, big-endian
/// length) before each piece of stdout (1) or stderr (2).
pub fn frame(stream: u8, data: &[u8]) -> Bytes {
    let mut v = Vec::with_capacity(8 + data.len());
    v.extend_from_slice(&[stream, 0, 0, 0]);
    v.extend_from_slice(&(data.len() as u32).to_be_bytes());
    v.extend_from_slice(data);
    Bytes::from(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_strings_are_decoded() {
        let q = Query::parse(Some("all=1&name=a%2Fb+c&limit=3&x&bad=%zz%4"));
        assert!(q.flag("all"));
        assert!(!q.flag("x"));
        assert_eq!(q.get("name"), Some("a/b c"));
        assert_eq!(q.int::<usize>("limit").unwrap(), Some(3));
        assert_eq!(q.get("bad"), Some("%zz%4"));
        assert!(q.int::<usize>("name").is_err());
    }

    #[test]
    fn filters_in_both_of_dockers_shapes() {
        let f = parse_filters(r#"{"name":["web"],"status":{"exited":true,"running":false}}"#);
        assert_eq!(f.unwrap(), vec!["name=web", "status=exited"]);
        assert!(parse_filters("[1]").is_err());
        assert!(parse_filters(r#"{"name":[1]}"#).is_err());
        assert!(parse_filters("{").is_err());
    }

    #[test]
    fn a_stalled_reader_is_given_up() {
        let (tx, mut rx) = mpsc::channel(1);
        assert!(send_within(
            &tx,
            Bytes::from_static(b"a"),
            Duration::from_millis(10)
        ));
        // Full, nobody reads: given up after the limit.
        let t = std::time::Instant::now();
        assert!(!send_within(
            &tx,
            Bytes::from_static(b"b"),
            Duration::from_millis(50)
        ));
        assert!(t.elapsed() >= Duration::from_millis(50));
        assert_eq!(rx.try_recv().unwrap(), Bytes::from_static(b"a"));
        drop(rx);
        assert!(!send_within(
            &tx,
            Bytes::from_static(b"c"),
            Duration::from_secs(60)
        ));
    }

    #[test]
    fn frames_have_dockers_header() {
        assert_eq!(&frame(2, b"hi")[..], b"\x02\0\0\0\0\0\0\x02hi");
    }
}
