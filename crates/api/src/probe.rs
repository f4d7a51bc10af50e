//! `berth container probe https|grpc`: the probes a container's monitor
//! cannot run itself because they need TLS or HTTP/2, which the monitor
//! does not link (it stays small: one per running container).
//!
//! The monitor connects to the probe's port inside the container's network
//! namespace, exactly as for an HTTP or TCP probe, and starts this helper
//! with the connected socket as its stdin; the helper never chooses an
//! address or enters a namespace. It drops root first (the server in the
//! container is untrusted, and nothing here needs a privilege), speaks one
//! request, prints one line for the health log and exits 0 (pass) or 1
//! (fail). The monitor enforces the probe's timeout: it SIGKILLs the
//! helper and reaps it.
//!
//! - HTTPS: Kubernetes' httpGet with `scheme: HTTPS`: TLS without
//!   verifying the certificate (the kubelet's InsecureSkipVerify: the
//!   handshake's signature is still checked against the certificate's
//!   key), no SNI for an IP address, an HTTP/1.0 GET; 200-399 passes.
//! - gRPC: `grpc.health.v1.Health/Check` over HTTP/2 without TLS (the
//!   kubelet's), through `h2` on a one-thread tokio runtime; the response
//!   SERVING passes, any other status, gRPC error or malformed answer
//!   fails, with the kubelet's messages.

use berth_engine::monitor_proto::health::{http_probe_request, http_probe_verdict as http_verdict};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::fd::OwnedFd;
use std::sync::Arc;

/// The most of a response's status line kept (as the monitor's HTTP
/// probe does).
const STATUS_LINE_MAX: usize = 512;
/// The largest gRPC response read (a HealthCheckResponse is 2 bytes).
const GRPC_RESPONSE_MAX: usize = 64 * 1024;

/// What a probe ended with: `Ok` passes, `Err` fails; the text goes to
/// the health log.
pub type Outcome = Result<String, String>;

/// How [`drop_privileges`] left the process.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dropped {
    /// Not root: nothing to drop but new privileges.
    NotRoot,
    /// Runs as this uid and gid (nobody's, else the highest mapped ones).
    Ids { uid: u32, gid: u32 },
    /// No unprivileged uid is mapped in this user namespace (`unshare
    /// --user --map-root-user` maps only 0): still root by id, with every
    /// capability gone (the sets, the ambient set and the bounding set)
    /// and no new privileges.
    CapsOnly,
}

/// Drops root for good before anything the container sends is parsed:
/// no supplementary groups, uid and gid nobody (65534) or, when this user
/// namespace does not map it, the highest mapped non-zero ids; when none
/// is mapped, every capability dropped ([`Dropped::CapsOnly`]). Always no
/// new privileges, an empty bounding set for root. Call it while the
/// process has one thread (the capability sets are per thread).
pub fn drop_privileges() -> Result<Dropped, String> {
    use berth_engine::monitor_proto::health::{unprivileged_id, HELPER_ID};
    let fail = |what: &str| format!("probe helper: {what}: {}", std::io::Error::last_os_error());
    let check = |r: libc::c_int, what: &str| if r == 0 { Ok(()) } else { Err(fail(what)) };
    // SAFETY: geteuid has no memory effects.
    let root = unsafe { libc::geteuid() } == 0;
    let mut done = Dropped::NotRoot;
    if root {
        let map = |f: &str| std::fs::read_to_string(f).unwrap_or_default();
        let uid = unprivileged_id(&map("/proc/self/uid_map"), HELPER_ID);
        let gid = unprivileged_id(&map("/proc/self/gid_map"), HELPER_ID);
        // SAFETY: a null list of length 0 is valid for setgroups.
        let r = unsafe { libc::setgroups(0, std::ptr::null()) };
        // A user namespace whose gid_map an unprivileged process wrote
        // denies setgroups: the groups stay what they are (unmapped ones).
        if r != 0 {
            let e = fail("setgroups");
            let denied =
                std::fs::read_to_string("/proc/self/setgroups").is_ok_and(|t| t.trim() == "deny");
            if !denied {
                return Err(e);
            }
        }
        // The bounding set first (it takes CAP_SETPCAP): a root that
        // keeps its uid gains nothing at an exec.
        for cap in 0..64 {
            // SAFETY: prctl with integer arguments; EINVAL past the last
            // capability is expected.
            unsafe { libc::prctl(libc::PR_CAPBSET_DROP, cap, 0, 0, 0) };
        }
        if let Some(g) = gid {
            // SAFETY: plain syscalls on integers (glibc applies them to
            // every thread of the process).
            let r = unsafe { libc::setresgid(g, g, g) };
            check(r, "setresgid")?;
        }
        match uid {
            Some(u) => {
                // SAFETY: as above.
                let r = unsafe { libc::setresuid(u, u, u) };
                check(r, "setresuid")?;
                done = Dropped::Ids {
                    uid: u,
                    // SAFETY: getegid has no memory effects.
                    gid: unsafe { libc::getegid() },
                };
            }
            None => done = Dropped::CapsOnly,
        }
        // SAFETY: prctl with integer arguments.
        let r = unsafe {
            libc::prctl(
                libc::PR_CAP_AMBIENT,
                libc::PR_CAP_AMBIENT_CLEAR_ALL,
                0,
                0,
                0,
            )
        };
        check(r, "clear the ambient capabilities")?;
        clear_capabilities().map_err(|()| fail("capset"))?;
    }
    // SAFETY: prctl with integer arguments.
    let r = unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) };
    check(r, "no_new_privs")?;
    Ok(done)
}

/// Empties this thread's effective, permitted and inheritable sets.
fn clear_capabilities() -> Result<(), ()> {
    #[repr(C)]
    struct Header {
        version: u32,
        pid: i32,
    }
    #[repr(C)]
    #[derive(Clone, Copy)]
    struct Data {
        effective: u32,
        permitted: u32,
        inheritable: u32,
    }
    let mut header = Header {
        // _LINUX_CAPABILITY_VERSION_3: two Data.
        version: 0x2008_0522,
        pid: 0,
    };
    let data = [Data {
        effective: 0,
        permitted: 0,
        inheritable: 0,
    }; 2];
    // SAFETY: a header and the two-element array version 3 takes.
    let r = unsafe { libc::syscall(libc::SYS_capset, &mut header, data.as_ptr()) };
    if r == 0 {
        Ok(())
    } else {
        Err(())
    }
}

/// The connected socket the monitor handed over (`fd`, stdin): refused
/// when it is not a connected TCP socket.
pub fn connected(fd: OwnedFd) -> Result<(TcpStream, SocketAddr), String> {
    let s = TcpStream::from(fd);
    let peer = s.peer_addr().map_err(|e| {
        format!("probe helper: stdin is not a connected TCP socket ({e}); the monitor runs this")
    })?;
    s.set_nonblocking(false)
        .map_err(|e| format!("probe helper: make the socket blocking: {e}"))?;
    Ok((s, peer))
}

/// Accepts any certificate (Kubernetes does not verify a probe's), but
/// checks the handshake's signature with the certificate's key, as Go's
/// InsecureSkipVerify does.
#[derive(Debug)]
struct AnyCertificate(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &rustls_pki_types::CertificateDer<'_>,
        _intermediates: &[rustls_pki_types::CertificateDer<'_>],
        _server_name: &rustls_pki_types::ServerName<'_>,
        _ocsp_response: &[u8],
        _now: rustls_pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls_pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls_pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// An HTTPS GET of `path` over the connected `sock`.
pub fn https(
    sock: TcpStream,
    peer: SocketAddr,
    path: &str,
    headers: &[(String, String)],
) -> Outcome {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS configuration: {e}"))?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AnyCertificate(provider)))
        .with_no_client_auth();
    // An IP address: rustls sends no SNI for it (nor does the kubelet).
    let name = rustls_pki_types::ServerName::IpAddress(peer.ip().into());
    let conn =
        rustls::ClientConnection::new(Arc::new(config), name).map_err(|e| format!("TLS: {e}"))?;
    let mut tls = rustls::StreamOwned::new(conn, sock);
    tls.write_all(&http_probe_request(&peer.to_string(), path, headers))
        .and_then(|()| tls.flush())
        .map_err(|e| format!("Get \"https://{peer}{path}\": {e}"))?;
    let mut head = Vec::new();
    let mut b = [0u8; 1024];
    loop {
        match tls.read(&mut b) {
            Ok(0) => break,
            Ok(n) => {
                let room = STATUS_LINE_MAX.saturating_sub(head.len());
                head.extend_from_slice(&b[..n.min(room)]);
                if head.windows(2).any(|w| w == b"\r\n") || room <= n {
                    break;
                }
            }
            // A server that closes without close_notify after its answer.
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof && !head.is_empty() => break,
            Err(e) => return Err(format!("Get \"https://{peer}{path}\": {e}")),
        }
    }
    http_verdict(&head)
}

/// grpc.health.v1.HealthCheckResponse.ServingStatus's names.
fn serving_status_name(n: u64) -> String {
    match n {
        0 => "UNKNOWN".into(),
        1 => "SERVING".into(),
        2 => "NOT_SERVING".into(),
        3 => "SERVICE_UNKNOWN".into(),
        n => n.to_string(),
    }
}

/// `HealthCheckRequest { string service = 1; }` in a gRPC message frame
/// (not compressed, 4-byte big-endian length).
fn grpc_request(service: &str) -> Vec<u8> {
    let mut msg = Vec::new();
    if !service.is_empty() {
        msg.push(0x0a); // field 1, length-delimited
        let mut n = service.len();
        while n >= 0x80 {
            msg.push((n as u8 & 0x7f) | 0x80);
            n >>= 7;
        }
        msg.push(n as u8);
        msg.extend_from_slice(service.as_bytes());
    }
    let mut f = vec![0u8];
    f.extend_from_slice(&(msg.len() as u32).to_be_bytes());
    f.extend_from_slice(&msg);
    f
}

fn varint(b: &[u8], i: &mut usize) -> Option<u64> {
    let mut v = 0u64;
    for shift in (0..64).step_by(7) {
        let x = *b.get(*i)?;
        *i += 1;
        v |= u64::from(x & 0x7f) << shift;
        if x & 0x80 == 0 {
            return Some(v);
        }
    }
    None
}

/// The `status` (field 1) of a framed HealthCheckResponse; unknown fields
/// are skipped, as protobuf readers do. 0 (UNKNOWN) when absent.
fn grpc_response_status(frame: &[u8]) -> Result<u64, String> {
    let bad = |why: &str| format!("error: health rpc probe failed: a malformed response: {why}");
    if frame.len() < 5 {
        return Err(bad("no message"));
    }
    if frame[0] != 0 {
        return Err(bad("a compressed message (none was offered)"));
    }
    let len = u32::from_be_bytes([frame[1], frame[2], frame[3], frame[4]]) as usize;
    let msg = frame
        .get(5..5 + len)
        .ok_or_else(|| bad("a truncated message"))?;
    if frame.len() != 5 + len {
        return Err(bad("more than one message"));
    }
    let mut status = 0;
    let mut i = 0;
    while i < msg.len() {
        let key = varint(msg, &mut i).ok_or_else(|| bad("a bad field"))?;
        match key & 7 {
            0 => {
                let v = varint(msg, &mut i).ok_or_else(|| bad("a bad varint"))?;
                if key >> 3 == 1 {
                    status = v;
                }
            }
            1 => i += 8,
            2 => {
                let n = varint(msg, &mut i).ok_or_else(|| bad("a bad length"))?;
                i = i.saturating_add(usize::try_from(n).map_err(|_| bad("a bad length"))?);
            }
            5 => i += 4,
            _ => return Err(bad("an unknown wire type")),
        }
        if i > msg.len() {
            return Err(bad("a truncated field"));
        }
    }
    Ok(status)
}

/// gRPC's percent-encoded `grpc-message`, decoded.
fn grpc_message(h: &http::HeaderMap) -> String {
    let raw = h
        .get("grpc-message")
        .map(|v| v.as_bytes().to_vec())
        .unwrap_or_default();
    let mut out = Vec::with_capacity(raw.len());
    let mut i = 0;
    while i < raw.len() {
        if raw[i] == b'%' {
            if let Some(b) = raw
                .get(i + 1..i + 3)
                .and_then(|x| std::str::from_utf8(x).ok())
                .and_then(|x| u8::from_str_radix(x, 16).ok())
            {
                out.push(b);
                i += 3;
                continue;
            }
        }
        out.push(raw[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// `grpc.health.v1.Health/Check` for `service` over the connected `sock`.
pub fn grpc(sock: TcpStream, peer: SocketAddr, service: &str) -> Outcome {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()
        .map_err(|e| format!("probe helper: start the I/O loop: {e}"))?;
    rt.block_on(grpc_check(sock, peer, service))
}

async fn grpc_check(sock: TcpStream, peer: SocketAddr, service: &str) -> Outcome {
    let failed = |e: &dyn std::fmt::Display| format!("error: health rpc probe failed: {e}");
    sock.set_nonblocking(true).map_err(|e| failed(&e))?;
    let io = tokio::net::TcpStream::from_std(sock).map_err(|e| failed(&e))?;
    let (client, conn) = h2::client::handshake(io).await.map_err(|e| failed(&e))?;
    // The connection's frames are driven beside the request.
    tokio::spawn(async move {
        let _ = conn.await;
    });
    let mut client = client.ready().await.map_err(|e| failed(&e))?;
    let req = http::Request::builder()
        .method(http::Method::POST)
        .uri(format!("http://{peer}/grpc.health.v1.Health/Check"))
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .header("user-agent", "berth-probe")
        .body(())
        .map_err(|e| failed(&e))?;
    let (resp, mut send) = client.send_request(req, false).map_err(|e| failed(&e))?;
    send.send_data(grpc_request(service).into(), true)
        .map_err(|e| failed(&e))?;
    let resp = resp.await.map_err(|e| failed(&e))?;
    let (parts, mut body) = resp.into_parts();
    if parts.status != http::StatusCode::OK {
        return Err(failed(&format!("HTTP status {}", parts.status)));
    }
    let mut data = Vec::new();
    while let Some(chunk) = body.data().await {
        let chunk = chunk.map_err(|e| failed(&e))?;
        let _ = body.flow_control().release_capacity(chunk.len());
        if data.len() + chunk.len() > GRPC_RESPONSE_MAX {
            return Err(failed(&"a response over 64 KiB"));
        }
        data.extend_from_slice(&chunk);
    }
    // A Trailers-Only answer (an error) carries grpc-status in its headers.
    let trailers = body.trailers().await.map_err(|e| failed(&e))?;
    let status_headers = match &trailers {
        Some(t) if t.contains_key("grpc-status") => t,
        _ => &parts.headers,
    };
    let code = status_headers
        .get("grpc-status")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u32>().ok())
        .ok_or_else(|| failed(&"no grpc-status in the answer"))?;
    match code {
        0 => {}
        // UNIMPLEMENTED
        12 => {
            return Err(format!(
            "this server does not implement the grpc health protocol (grpc.health.v1.Health): {}",
            grpc_message(status_headers)
        ))
        }
        c => {
            return Err(failed(&format!(
                "rpc error: code = {c} desc = {}",
                grpc_message(status_headers)
            )))
        }
    }
    let status = grpc_response_status(&data)?;
    if status != 1 {
        return Err(format!(
            "service unhealthy (responded with {:?})",
            serving_status_name(status)
        ));
    }
    Ok("service healthy".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Set in the child a drop test starts: it drops and reports.
    const CHILD: &str = "BERTH_PROBE_DROP_CHILD";

    /// In the child: drops, prints how it went and what this thread
    /// ended with (`drop: ` lines), and exits.
    fn child_reports() {
        if std::env::var_os(CHILD).is_none() {
            return;
        }
        println!("drop: result={:?}", drop_privileges());
        let status = std::fs::read_to_string("/proc/thread-self/status").unwrap_or_default();
        for l in status.lines() {
            let keys = ["Uid:", "Gid:", "Cap", "NoNewPrivs:", "Groups:"];
            if keys.iter().any(|k| l.starts_with(k)) {
                println!("drop: {l}");
            }
        }
        // Ends here without exit's handlers: run on the harness's test
        // thread while its main thread still runs, a full exit() after the
        // drop died of SIGSEGV once in CI (status 11, its lines printed).
        let _ = std::io::Write::flush(&mut std::io::stdout());
        // SAFETY: _exit ends the process at once; nothing is owed after
        // the flush above.
        unsafe { libc::_exit(0) }
    }

    /// Runs test `name` of this binary again as a child (alone, on one
    /// thread), in a new user namespace mapping only 0 to our uid when
    /// `userns`; its `drop: ` lines.
    fn drop_in_child(name: &str, userns: bool) -> Vec<String> {
        use std::os::unix::process::CommandExt;
        // SAFETY: geteuid and getegid have no memory effects.
        let (uid, gid) = unsafe { (libc::geteuid(), libc::getegid()) };
        assert_eq!(
            uid, 0,
            "the drop tests need root (they run the helper's drop as root)"
        );
        let mut cmd = std::process::Command::new(std::env::current_exe().unwrap());
        cmd.args([name, "--exact", "--test-threads=1", "--nocapture"])
            .env(CHILD, "1");
        if userns {
            // Made before the fork: the child only makes syscalls.
            let files: Vec<(std::ffi::CString, Vec<u8>)> = [
                ("/proc/self/setgroups", "deny".to_string()),
                ("/proc/self/uid_map", format!("0 {uid} 1")),
                ("/proc/self/gid_map", format!("0 {gid} 1")),
            ]
            .into_iter()
            .map(|(p, t)| (std::ffi::CString::new(p).unwrap(), t.into_bytes()))
            .collect();
            // SAFETY: the closure runs in the forked child before exec and
            // only makes syscalls on memory made before the fork.
            unsafe {
                cmd.pre_exec(move || {
                    if libc::unshare(libc::CLONE_NEWUSER) != 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                    for (path, text) in &files {
                        let fd = libc::open(path.as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC);
                        if fd < 0 {
                            return Err(std::io::Error::last_os_error());
                        }
                        let n = libc::write(fd, text.as_ptr().cast(), text.len());
                        libc::close(fd);
                        if n != text.len() as isize {
                            return Err(std::io::Error::last_os_error());
                        }
                    }
                    Ok(())
                });
            }
        }
        let out = cmd.output().expect("run the drop test's child");
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success(),
            "the child failed ({:?}): {text} {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        let lines: Vec<String> = text
            .lines()
            // The harness's "test NAME ... " may start the first line.
            .filter_map(|l| l.split_once("drop: ").map(|(_, r)| r.to_string()))
            .collect();
        assert!(!lines.is_empty(), "the child reported nothing: {text}");
        lines
    }

    /// The value of status field `key` in a child's report.
    fn field<'a>(lines: &'a [String], key: &str) -> &'a str {
        lines
            .iter()
            .find_map(|l| l.strip_prefix(key))
            .map(str::trim)
            .unwrap_or_else(|| panic!("no {key} in {lines:?}"))
    }

    #[test]
    fn the_helper_drops_to_nobody_with_no_capabilities() {
        child_reports();
        let r = drop_in_child(
            "probe::tests::the_helper_drops_to_nobody_with_no_capabilities",
            false,
        );
        assert_eq!(r[0], "result=Ok(Ids { uid: 65534, gid: 65534 })", "{r:?}");
        assert_eq!(field(&r, "Uid:"), "65534\t65534\t65534\t65534");
        assert_eq!(field(&r, "Gid:"), "65534\t65534\t65534\t65534");
        for cap in ["CapInh:", "CapPrm:", "CapEff:", "CapBnd:", "CapAmb:"] {
            assert_eq!(field(&r, cap), "0000000000000000", "{cap} {r:?}");
        }
        assert_eq!(field(&r, "NoNewPrivs:"), "1");
        assert_eq!(field(&r, "Groups:"), "");
    }

    /// `unshare --user --map-root-user`: only 0 is mapped, nobody cannot
    /// be used; the helper still runs, as root by id with no capability
    /// (none of the five sets) and no new privileges.
    #[test]
    fn without_a_mapped_nobody_the_helper_keeps_no_capabilities() {
        child_reports();
        let r = drop_in_child(
            "probe::tests::without_a_mapped_nobody_the_helper_keeps_no_capabilities",
            true,
        );
        assert_eq!(r[0], "result=Ok(CapsOnly)", "{r:?}");
        assert_eq!(field(&r, "Uid:"), "0\t0\t0\t0");
        for cap in ["CapInh:", "CapPrm:", "CapEff:", "CapBnd:", "CapAmb:"] {
            assert_eq!(field(&r, cap), "0000000000000000", "{cap} {r:?}");
        }
        assert_eq!(field(&r, "NoNewPrivs:"), "1");
    }

    #[test]
    fn grpc_request_encoding() {
        assert_eq!(grpc_request(""), [0, 0, 0, 0, 0]);
        assert_eq!(grpc_request("db"), [0, 0, 0, 0, 4, 0x0a, 2, b'd', b'b']);
        let long = "x".repeat(200);
        let f = grpc_request(&long);
        assert_eq!(&f[..8], &[0, 0, 0, 0, 203, 0x0a, 0xc8, 0x01]);
    }

    #[test]
    fn grpc_response_decoding() {
        assert_eq!(grpc_response_status(&[0, 0, 0, 0, 2, 0x08, 1]), Ok(1));
        assert_eq!(grpc_response_status(&[0, 0, 0, 0, 2, 0x08, 2]), Ok(2));
        // Proto3 leaves out a zero (UNKNOWN).
        assert_eq!(grpc_response_status(&[0, 0, 0, 0, 0]), Ok(0));
        // An unknown field first is skipped.
        assert_eq!(
            grpc_response_status(&[0, 0, 0, 0, 5, 0x12, 1, b'x', 0x08, 1]),
            Ok(1)
        );
        for bad in [
            &[][..],
            &[1, 0, 0, 0, 2, 0x08, 1],
            &[0, 0, 0, 0, 3, 0x08, 1],
            &[0, 0, 0, 0, 2, 0x08, 0x80],
            &[0, 0, 0, 0, 2, 0x12, 5],
            &[0, 0, 0, 0, 1, 0x0b],
            &[0, 0, 0, 0, 2, 0x08, 1, 0],
        ] {
            assert!(grpc_response_status(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn grpc_messages_are_percent_decoded() {
        let mut h = http::HeaderMap::new();
        h.insert("grpc-message", "unknown%20service%zz".parse().unwrap());
        assert_eq!(grpc_message(&h), "unknown service%zz");
    }

    #[test]
    fn status_lines() {
        assert!(http_verdict(b"HTTP/1.0 200 ok\r\n").is_ok());
        assert!(http_verdict(b"HTTP/1.1 301 Moved\r\n").is_ok());
        assert_eq!(
            http_verdict(b"HTTP/1.0 404 'x' not found\r\n"),
            Err("HTTP/1.0 404 'x' not found".into())
        );
        assert!(http_verdict(b"\x15\x03\x01").is_err());
    }
}
