//! A small HTTP front for the test registry, for what Debian's registry
//! cannot be configured to do: a bearer-token challenge with its own token
//! endpoint (which may demand Basic credentials), connections that break
//! in the middle of a blob, and blob redirects to another host (a "CDN")
//! that records which headers reach it.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};

#[derive(Default, Clone, Copy)]
pub struct Behaviour {
    /// Challenge with Bearer and issue tokens at /token.
    pub bearer: bool,
    /// The token endpoint wants this Basic header value (base64 user:pass).
    pub token_basic: Option<&'static str>,
    /// Break the first response of each blob half way.
    pub cut_blobs: bool,
    /// Redirect blob requests to the CDN listener.
    pub redirect_blobs: bool,
    /// Require HTTP Basic auth with this value (base64 user:pass).
    pub basic: Option<&'static str>,
    /// Answer this many requests with 503 first (a registry under load).
    pub fail_first: usize,
}

#[derive(Default, Debug)]
pub struct Seen {
    pub failed: usize,
    pub token_requests: Vec<String>,
    pub range_requests: usize,
    pub cdn_auth_headers: usize,
    pub cdn_requests: usize,
    pub cut: Vec<String>,
}

pub struct Proxy {
    pub addr: String,
    /// The "CDN" host: serves `/cdn/v2/...` from the registry and counts
    /// the Authorization headers it receives.
    pub cdn: String,
    pub seen: Arc<Mutex<Seen>>,
}

struct Req {
    method: String,
    body: Vec<u8>,
    path: String,
    headers: Vec<(String, String)>,
}

impl Req {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

fn read_req(s: &TcpStream) -> Option<Req> {
    let mut r = BufReader::new(s.try_clone().ok()?);
    let mut line = String::new();
    r.read_line(&mut line).ok()?;
    let method = line.split_whitespace().next()?.to_string();
    let path = line.split_whitespace().nth(1)?.to_string();
    let mut headers = Vec::new();
    loop {
        let mut h = String::new();
        r.read_line(&mut h).ok()?;
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            headers.push((k.trim().to_string(), v.trim().to_string()));
        }
    }
    let len: usize = headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0);
    let mut body = vec![0u8; len];
    r.read_exact(&mut body).ok()?;
    Some(Req {
        method,
        body,
        path,
        headers,
    })
}

fn respond(mut s: &TcpStream, status: &str, headers: &[(&str, String)], body: &[u8]) {
    let mut out = format!(
        "HTTP/1.1 {status}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        out.push_str(&format!("{k}: {v}\r\n"));
    }
    out.push_str("\r\n");
    let _ = s.write_all(out.as_bytes());
    let _ = s.write_all(body);
}

/// GET from the real registry: (status, content type, body).
fn upstream(registry: &str, path: &str, accept: Option<&str>) -> (u16, String, Vec<u8>) {
    let mut req = ureq::get(&format!("http://{registry}{path}"));
    if let Some(a) = accept {
        req = req.set("Accept", a);
    }
    let resp = match req.call() {
        Ok(r) => r,
        Err(ureq::Error::Status(_, r)) => r,
        Err(e) => panic!("upstream {path}: {e}"),
    };
    let status = resp.status();
    let ct = resp.header("content-type").unwrap_or("").to_string();
    let mut body = Vec::new();
    resp.into_reader().read_to_end(&mut body).unwrap();
    (status, ct, body)
}

impl Proxy {
    pub fn start(registry: &str, b: Behaviour) -> Proxy {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let cdn = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap().to_string();
        let cdn_addr = cdn.local_addr().unwrap().to_string();
        let cdn_for_main = cdn_addr.clone();
        let seen = Arc::new(Mutex::new(Seen::default()));
        {
            let (seen, registry) = (seen.clone(), registry.to_string());
            std::thread::spawn(move || {
                for s in cdn.incoming().flatten() {
                    let Some(req) = read_req(&s) else { continue };
                    {
                        let mut g = seen.lock().unwrap();
                        g.cdn_requests += 1;
                        if req.header("authorization").is_some() {
                            g.cdn_auth_headers += 1;
                        }
                    }
                    let path = req
                        .path
                        .strip_prefix("/cdn")
                        .unwrap_or(&req.path)
                        .to_string();
                    let (st, ct, body) = upstream(&registry, &path, None);
                    respond(&s, &format!("{st} X"), &[("Content-Type", ct)], &body);
                }
            });
        }
        {
            let (seen, registry, me) = (seen.clone(), registry.to_string(), addr.clone());
            std::thread::spawn(move || {
                for s in l.incoming().flatten() {
                    let Some(req) = read_req(&s) else { continue };
                    {
                        let mut g = seen.lock().unwrap();
                        if g.failed < b.fail_first {
                            g.failed += 1;
                            drop(g);
                            respond(&s, "503 Service Unavailable", &[], b"busy");
                            continue;
                        }
                    }
                    if req.path.starts_with("/token") {
                        seen.lock().unwrap().token_requests.push(req.path.clone());
                        let ok = match b.token_basic {
                            Some(want) => {
                                req.header("authorization") == Some(&format!("Basic {want}"))
                            }
                            None => true,
                        };
                        if ok {
                            respond(
                                &s,
                                "200 OK",
                                &[("Content-Type", "application/json".into())],
                                br#"{"token":"good-token"}"#,
                            );
                        } else {
                            respond(&s, "401 Unauthorized", &[], b"{}");
                        }
                        continue;
                    }
                    if let Some(want) = b.basic {
                        if req.header("authorization") != Some(&format!("Basic {want}")) {
                            respond(
                                &s,
                                "401 Unauthorized",
                                &[("WWW-Authenticate", "Basic realm=\"berth-test\"".into())],
                                b"{}",
                            );
                            continue;
                        }
                        if req.path == "/v2/" {
                            respond(
                                &s,
                                "200 OK",
                                &[("Content-Type", "application/json".into())],
                                b"{}",
                            );
                            continue;
                        }
                    }
                    if b.bearer && req.header("authorization") != Some("Bearer good-token") {
                        let ch = format!(
                            "Bearer realm=\"http://{me}/token\",service=\"berth-test\",scope=\"repository:{}:pull\"",
                            req.path.trim_start_matches("/v2/").split("/manifests/").next().unwrap_or("").split("/blobs/").next().unwrap_or("")
                        );
                        respond(&s, "401 Unauthorized", &[("WWW-Authenticate", ch)], b"{}");
                        continue;
                    }
                    if req.method != "GET" {
                        // Uploads and HEADs: forwarded; upload URLs are
                        // rewritten to stay on this host.
                        let mut up =
                            ureq::request(&req.method, &format!("http://{registry}{}", req.path));
                        if let Some(ct) = req.header("content-type") {
                            up = up.set("Content-Type", ct);
                        }
                        let resp = match up.send_bytes(&req.body) {
                            Ok(r) => r,
                            Err(ureq::Error::Status(_, r)) => r,
                            Err(e) => panic!("upstream {} {}: {e}", req.method, req.path),
                        };
                        let status = format!("{} X", resp.status());
                        let mut headers = Vec::new();
                        if let Some(l) = resp.header("location") {
                            headers.push(("Location", l.replace(&registry, &me)));
                        }
                        let mut body = Vec::new();
                        if req.method != "HEAD" {
                            let _ = resp.into_reader().read_to_end(&mut body);
                        }
                        respond(&s, &status, &headers, &body);
                        continue;
                    }
                    let is_blob = req.path.contains("/blobs/sha256:");
                    if is_blob && b.redirect_blobs {
                        respond(
                            &s,
                            "307 Temporary Redirect",
                            &[("Location", format!("http://{cdn_for_main}/cdn{}", req.path))],
                            b"",
                        );
                        continue;
                    }
                    let (st, ct, body) = upstream(&registry, &req.path, req.header("accept"));
                    if is_blob && st == 200 {
                        if let Some(r) = req.header("range") {
                            seen.lock().unwrap().range_requests += 1;
                            let from: usize = r
                                .trim_start_matches("bytes=")
                                .trim_end_matches('-')
                                .parse()
                                .unwrap();
                            let part = &body[from.min(body.len())..];
                            respond(
                                &s,
                                "206 Partial Content",
                                &[
                                    ("Content-Type", ct),
                                    (
                                        "Content-Range",
                                        format!("bytes {from}-{}/{}", body.len() - 1, body.len()),
                                    ),
                                ],
                                part,
                            );
                            continue;
                        }
                        let first = {
                            let mut g = seen.lock().unwrap();
                            let first = !g.cut.contains(&req.path);
                            if first && b.cut_blobs && body.len() > 1024 {
                                g.cut.push(req.path.clone());
                            }
                            first
                        };
                        if first && b.cut_blobs && body.len() > 1024 {
                            // Promise everything, send half, hang up.
                            let out = format!("HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: {}\r\nContent-Type: {ct}\r\n\r\n", body.len());
                            let mut w = &s;
                            let _ = w.write_all(out.as_bytes());
                            let _ = w.write_all(&body[..body.len() / 2]);
                            let _ = s.shutdown(std::net::Shutdown::Both);
                            continue;
                        }
                    }
                    let status = match st {
                        200 => "200 OK".to_string(),
                        n => format!("{n} Status"),
                    };
                    let mut headers = vec![("Content-Type", ct)];
                    if req.path.contains("/manifests/") && st == 200 {
                        headers.push((
                            "Docker-Content-Digest",
                            format!("sha256:{}", berth_image::Digest::of(&body).hex()),
                        ));
                    }
                    respond(&s, &status, &headers, &body);
                }
            });
        }
        Proxy {
            addr,
            cdn: cdn_addr,
            seen,
        }
    }
}
