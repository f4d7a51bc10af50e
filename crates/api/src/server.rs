//! The listener: a unix socket (made here, or handed over by systemd's
//! socket activation) or, only when asked, TCP with TLS and client
//! certificates; one tokio thread serving its connections, and the idle
//! exit.

use crate::router;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use std::collections::HashMap;
use std::os::fd::FromRawFd;
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::{broadcast, oneshot, watch};

/// The default socket, Docker's path under berth's run root.
pub const DEFAULT_SOCKET: &str = "/run/berth/docker.sock";
/// How long a client may take to send a request's headers.
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(30);
/// The most connections served at once (more wait in the kernel's backlog).
pub const MAX_CONNECTIONS: usize = 512;

/// What `berth system service` serves.
#[derive(Clone, Debug)]
pub struct Config {
    pub root: PathBuf,
    pub run_root: PathBuf,
    /// Where to listen (ignored when systemd hands a socket over, except
    /// that a TCP socket handed over is served only with `Listen::Tcp`'s
    /// TLS files).
    pub listen: Listen,
    /// Exit after this long without a connection (None: never).
    pub idle: Option<Duration>,
}

/// The service's listener.
#[derive(Clone, Debug)]
pub enum Listen {
    /// A unix socket, mode 0600 (0660 with `group`, owned by that group).
    Unix { path: PathBuf, group: Option<u32> },
    /// TCP, always with TLS, and only for clients whose certificate the
    /// CA in `tls` signed (Docker's `--tlsverify`).
    Tcp {
        addr: std::net::SocketAddr,
        tls: TlsFiles,
    },
}

/// The PEM files of a TLS listener (Docker's `--tlscacert`, `--tlscert`,
/// `--tlskey`).
#[derive(Clone, Debug)]
pub struct TlsFiles {
    /// The CA whose certificates clients must present.
    pub ca: PathBuf,
    /// The service's certificate chain.
    pub cert: PathBuf,
    /// The service's private key.
    pub key: PathBuf,
}

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("API service: {op}: {cause}")]
    Io {
        op: String,
        #[source]
        cause: std::io::Error,
    },
    #[error("API service: {0}")]
    Usage(String),
    #[error("API service: TLS: {what} {path}: {cause}")]
    Tls {
        what: &'static str,
        path: String,
        cause: String,
    },
}

fn io(op: impl Into<String>) -> impl FnOnce(std::io::Error) -> ServeError {
    let op = op.into();
    move |cause| ServeError::Io { op, cause }
}

/// An attach waiting for its container's start, or running it.
pub struct Shared {
    pub root: PathBuf,
    pub run_root: PathBuf,
    /// Attaches to created containers, waiting for the start that hands
    /// them the session (by container id).
    pub attach: Mutex<HashMap<String, oneshot::Sender<crate::containers::Handover>>>,
    /// The exit codes of sessions this service runs to their end (an
    /// attached `docker run`), for `wait` (by container id).
    pub outcomes: Mutex<HashMap<String, watch::Receiver<Option<i32>>>>,
    /// The ids of containers started through this service.
    pub started: broadcast::Sender<String>,
    /// The monitors this process started (its children: the engine
    /// lets them go on on their own), reaped when they end.
    pub monitors: Mutex<Vec<i32>>,
    active: AtomicUsize,
    last: Mutex<Instant>,
}

impl Shared {
    pub fn new(root: PathBuf, run_root: PathBuf) -> Arc<Shared> {
        Arc::new(Shared {
            root,
            run_root,
            attach: Mutex::default(),
            outcomes: Mutex::default(),
            started: broadcast::channel(64).0,
            monitors: Mutex::default(),
            active: AtomicUsize::new(0),
            last: Mutex::new(Instant::now()),
        })
    }

    /// Reaps the monitors that ended (no zombie is left for the
    /// service's lifetime).
    pub fn reap(&self) {
        if let Ok(mut m) = self.monitors.lock() {
            m.retain(|&pid| {
                let mut st = 0;
                // SAFETY: waitpid on our own child's pid, with a valid
                // status pointer; WNOHANG never blocks.
                let r = unsafe { libc::waitpid(pid, &mut st, libc::WNOHANG) };
                r == 0
            });
        }
    }

    /// Runs `f` with an engine on a blocking thread: the thread's own,
    /// opened on its first call and kept while the store's database file
    /// is the same one (opening costs about as much as a whole `ps` of
    /// 100 containers; a store removed and made again is opened anew).
    pub async fn engine<T: Send + 'static>(
        self: &Arc<Self>,
        f: impl FnOnce(&berth_engine::Engine) -> crate::ApiResult<T> + Send + 'static,
    ) -> crate::ApiResult<T> {
        let s = self.clone();
        tokio::task::spawn_blocking(move || {
            let e = s.thread_engine()?;
            let r = f(&e.engine);
            // Put back (a call that failed may leave it: the engine holds
            // no state of a call).
            THREAD_ENGINE.with(|t| *t.borrow_mut() = Some(e));
            r
        })
        .await
        .map_err(|e| crate::ApiError::internal(format!("engine call failed: {e}")))?
    }

    /// This thread's engine (taken out of its slot while in use).
    fn thread_engine(&self) -> crate::ApiResult<ThreadEngine> {
        use std::os::unix::fs::MetadataExt;
        let db = std::fs::metadata(self.root.join(berth_engine::DB_FILE))
            .ok()
            .map(|m| (m.dev(), m.ino()));
        let kept = THREAD_ENGINE.with(|t| t.borrow_mut().take());
        if let Some(e) = kept {
            if db.is_some() && e.db == db && e.root == self.root && e.run_root == self.run_root {
                return Ok(e);
            }
        }
        let engine = berth_engine::Engine::open(&self.root, &self.run_root)?;
        let db = std::fs::metadata(self.root.join(berth_engine::DB_FILE))
            .ok()
            .map(|m| (m.dev(), m.ino()));
        Ok(ThreadEngine {
            engine,
            db,
            root: self.root.clone(),
            run_root: self.run_root.clone(),
        })
    }

    /// Runs `f` on a blocking thread.
    pub async fn blocking<T: Send + 'static>(
        f: impl FnOnce() -> crate::ApiResult<T> + Send + 'static,
    ) -> crate::ApiResult<T> {
        tokio::task::spawn_blocking(f)
            .await
            .map_err(|e| crate::ApiError::internal(format!("engine call failed: {e}")))?
    }
}

/// A blocking thread's engine and the identity (device, inode) of the
/// database file it opened.
struct ThreadEngine {
    engine: berth_engine::Engine,
    db: Option<(u64, u64)>,
    root: PathBuf,
    run_root: PathBuf,
}

thread_local! {
    static THREAD_ENGINE: std::cell::RefCell<Option<ThreadEngine>> = const { std::cell::RefCell::new(None) };
}

/// Counts a connection as active while it lives.
struct Active(Arc<Shared>);
impl Active {
    fn new(s: &Arc<Shared>) -> Active {
        s.active.fetch_add(1, Ordering::SeqCst);
        Active(s.clone())
    }
}
impl Drop for Active {
    fn drop(&mut self) {
        if let Ok(mut l) = self.0.last.lock() {
            *l = Instant::now();
        }
        self.0.active.fetch_sub(1, Ordering::SeqCst);
    }
}

/// A listening socket, before tokio takes it.
enum StdListener {
    Unix(std::os::unix::net::UnixListener),
    Tcp(std::net::TcpListener),
}

/// The socket systemd handed over (LISTEN_PID is this process, LISTEN_FDS
/// at least 1: fd 3), if any. The variables are removed so that nothing
/// this process starts takes them for its own.
fn activated() -> Result<Option<StdListener>, ServeError> {
    let pid = std::env::var("LISTEN_PID").ok();
    let fds = std::env::var("LISTEN_FDS").ok();
    std::env::remove_var("LISTEN_PID");
    std::env::remove_var("LISTEN_FDS");
    std::env::remove_var("LISTEN_FDNAMES");
    match (pid, fds) {
        (Some(pid), Some(fds)) if pid == std::process::id().to_string() => {
            if fds.parse::<u32>().unwrap_or(0) < 1 {
                return Err(ServeError::Usage(format!(
                    "LISTEN_FDS={fds}: systemd passed no socket; check the socket unit"
                )));
            }
            // SAFETY: fstat on fd 3 with a valid out pointer.
            let mut st: libc::stat = unsafe { std::mem::zeroed() };
            // SAFETY: as above.
            if unsafe { libc::fstat(3, &mut st) } != 0
                || st.st_mode & libc::S_IFMT != libc::S_IFSOCK
            {
                return Err(ServeError::Usage(
                    "LISTEN_FDS is set but fd 3 is not a socket; check the socket unit".into(),
                ));
            }
            // SAFETY: an all-zero sockaddr_storage is a valid value.
            let mut addr: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
            let mut len = std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
            // SAFETY: getsockname on fd 3 (a socket, checked above) with
            // a buffer of `len` bytes.
            let r = unsafe { libc::getsockname(3, (&raw mut addr).cast(), &mut len) };
            if r != 0 {
                return Err(ServeError::Usage(
                    "fd 3 from systemd: getsockname failed; check the socket unit".into(),
                ));
            }
            match i32::from(addr.ss_family) {
                // SAFETY: systemd's protocol hands fd 3 to this process,
                // which owns it from here; it is a unix socket (above).
                libc::AF_UNIX => Ok(Some(StdListener::Unix(unsafe {
                    std::os::unix::net::UnixListener::from_raw_fd(3)
                }))),
                // SAFETY: as above, a TCP/IP socket.
                libc::AF_INET | libc::AF_INET6 => Ok(Some(StdListener::Tcp(unsafe {
                    std::net::TcpListener::from_raw_fd(3)
                }))),
                f => Err(ServeError::Usage(format!(
                    "fd 3 from systemd is a socket of family {f}, neither unix nor TCP; check the socket unit"
                ))),
            }
        }
        _ => Ok(None),
    }
}

/// The TLS acceptor of `files`: the service's chain and key, and a client
/// verifier that accepts only certificates the CA signed (a client
/// without one fails the handshake).
pub fn tls_acceptor(files: &TlsFiles) -> Result<tokio_rustls::TlsAcceptor, ServeError> {
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::{CertificateDer, PrivateKeyDer};
    let shown = |p: &Path| p.display().to_string();
    let certs_of =
        |what: &'static str, p: &Path| -> Result<Vec<CertificateDer<'static>>, ServeError> {
            let certs = CertificateDer::pem_file_iter(p)
                .and_then(|it| it.collect::<Result<Vec<_>, _>>())
                .map_err(|e| ServeError::Tls {
                    what,
                    path: shown(p),
                    cause: format!("{e}; it must be a PEM file of certificates"),
                })?;
            if certs.is_empty() {
                return Err(ServeError::Tls {
                    what,
                    path: shown(p),
                    cause: "holds no PEM certificate".into(),
                });
            }
            Ok(certs)
        };
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    for c in certs_of("--tlscacert", &files.ca)? {
        roots.add(c).map_err(|e| ServeError::Tls {
            what: "--tlscacert",
            path: shown(&files.ca),
            cause: format!("not a usable CA certificate: {e}"),
        })?;
    }
    let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
        Arc::new(roots),
        provider.clone(),
    )
    .build()
    .map_err(|e| ServeError::Tls {
        what: "--tlscacert",
        path: shown(&files.ca),
        cause: format!("cannot verify clients with it: {e}"),
    })?;
    let chain = certs_of("--tlscert", &files.cert)?;
    let key = PrivateKeyDer::from_pem_file(&files.key).map_err(|e| ServeError::Tls {
        what: "--tlskey",
        path: shown(&files.key),
        cause: format!("{e}; it must be a PEM private key (PKCS#8, PKCS#1 or SEC1)"),
    })?;
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| ServeError::Usage(format!("TLS: {e}")))?
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain, key)
        .map_err(|e| ServeError::Tls {
            what: "--tlscert/--tlskey",
            path: format!("{} and {}", shown(&files.cert), shown(&files.key)),
            cause: format!("{e}; the key must be the certificate's"),
        })?;
    Ok(tokio_rustls::TlsAcceptor::from(Arc::new(config)))
}

/// Binds `path`: a stale socket there is replaced (anything else is not
/// touched), the mode is 0660 and the group `group` (root's otherwise).
fn bind(path: &Path, group: Option<u32>) -> Result<std::os::unix::net::UnixListener, ServeError> {
    let shown = path.display().to_string();
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(io(format!("create {}", dir.display())))?;
    }
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_socket() => {
            // A live service answers on it: do not take it over.
            if std::os::unix::net::UnixStream::connect(path).is_ok() {
                return Err(ServeError::Usage(format!(
                    "{shown}: another service is listening on it; stop it or give another socket"
                )));
            }
            std::fs::remove_file(path).map_err(io(format!("remove the stale socket {shown}")))?;
        }
        Ok(_) => {
            return Err(ServeError::Usage(format!(
                "{shown}: exists and is not a socket; remove it or give another path"
            )))
        }
        Err(_) => {}
    }
    // Made with no access for others from the start (then widened to the
    // group): no moment where anyone may connect.
    // SAFETY: umask only changes this process's file mode mask.
    let old = unsafe { libc::umask(0o177) };
    let l = std::os::unix::net::UnixListener::bind(path);
    // SAFETY: as above, restoring it.
    unsafe { libc::umask(old) };
    let l = l.map_err(io(format!("bind {shown}")))?;
    if let Some(g) = group {
        std::os::unix::fs::chown(path, Some(0), Some(g)).map_err(io(format!("chown {shown}")))?;
    }
    let mode = if group.is_some() { 0o660 } else { 0o600 };
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .map_err(io(format!("chmod {shown}")))?;
    Ok(l)
}

/// Serves the API until SIGTERM/SIGINT or the idle time passes. Starts
/// tokio: call it after any fork or daemonize step.
pub fn serve(cfg: Config) -> Result<(), ServeError> {
    // TLS files are read before anything is bound: a bad file is told at
    // once and leaves nothing behind.
    let tls = match &cfg.listen {
        Listen::Tcp { tls, .. } => Some(tls_acceptor(tls)?),
        Listen::Unix { .. } => None,
    };
    let (listener, made) = match activated()? {
        Some(l) => (l, None),
        None => match &cfg.listen {
            Listen::Unix { path, group } => {
                (StdListener::Unix(bind(path, *group)?), Some(path.clone()))
            }
            Listen::Tcp { addr, .. } => (
                StdListener::Tcp(
                    std::net::TcpListener::bind(addr)
                        .map_err(io(format!("listen on tcp://{addr}")))?,
                ),
                None,
            ),
        },
    };
    if matches!(listener, StdListener::Tcp(_)) && tls.is_none() {
        return Err(ServeError::Usage(
            "systemd passed a TCP socket: TCP is served only with TLS and client certificates; \
             give tcp://ADDR:PORT with --tlscacert, --tlscert and --tlskey"
                .into(),
        ));
    }
    match &listener {
        StdListener::Unix(l) => l.set_nonblocking(true),
        StdListener::Tcp(l) => l.set_nonblocking(true),
    }
    .map_err(io("set the socket non-blocking"))?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .enable_time()
        // A long call (an attached session, a followed log, a wait) holds
        // a blocking thread: one for each connection, and some to spare
        // for the short ones.
        .max_blocking_threads(MAX_CONNECTIONS + 64)
        .thread_keep_alive(Duration::from_secs(10))
        .build()
        .map_err(io("start the async runtime"))?;
    let shared = Shared::new(cfg.root.clone(), cfg.run_root.clone());
    let r = rt.block_on(run(listener, tls, shared, cfg.idle));
    if let Some(p) = made {
        let _ = std::fs::remove_file(p);
    }
    // Blocking calls still running (a follow whose client left) are not
    // waited for: the process ends.
    rt.shutdown_timeout(Duration::from_millis(100));
    r
}

/// A listener tokio serves.
enum Listener {
    Unix(tokio::net::UnixListener),
    Tcp(tokio::net::TcpListener, tokio_rustls::TlsAcceptor),
}

/// An accepted connection, before its TLS handshake.
enum Accepted {
    Unix(tokio::net::UnixStream),
    Tcp(tokio::net::TcpStream, tokio_rustls::TlsAcceptor),
}

impl Listener {
    async fn accept(&self) -> std::io::Result<Accepted> {
        match self {
            Listener::Unix(l) => l.accept().await.map(|(s, _)| Accepted::Unix(s)),
            Listener::Tcp(l, tls) => {
                let (s, _) = l.accept().await?;
                // Requests are small and answered at once: no Nagle delay.
                let _ = s.set_nodelay(true);
                Ok(Accepted::Tcp(s, tls.clone()))
            }
        }
    }
}

async fn run(
    listener: StdListener,
    tls: Option<tokio_rustls::TlsAcceptor>,
    shared: Arc<Shared>,
    idle: Option<Duration>,
) -> Result<(), ServeError> {
    let listener = match (listener, tls) {
        (StdListener::Unix(l), _) => Listener::Unix(
            tokio::net::UnixListener::from_std(l).map_err(io("register the socket"))?,
        ),
        (StdListener::Tcp(l), Some(tls)) => Listener::Tcp(
            tokio::net::TcpListener::from_std(l).map_err(io("register the socket"))?,
            tls,
        ),
        (StdListener::Tcp(_), None) => {
            return Err(ServeError::Usage("TCP is served only with TLS".into()))
        }
    };
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .map_err(io("handle SIGTERM"))?;
    let mut int = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt())
        .map_err(io("handle SIGINT"))?;
    let mut tick = tokio::time::interval(Duration::from_millis(250));
    let slots = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    loop {
        tokio::select! {
            _ = term.recv() => return Ok(()),
            _ = int.recv() => return Ok(()),
            _ = tick.tick() => {
                shared.reap();
                if let Some(idle) = idle {
                    let quiet = shared.active.load(Ordering::SeqCst) == 0
                        && shared.last.lock().map(|l| l.elapsed() >= idle).unwrap_or(false);
                    if quiet {
                        return Ok(());
                    }
                }
            }
            accepted = listener.accept() => {
                let stream = match accepted {
                    Ok(s) => s,
                    Err(e) => {
                        tracing::warn!("API service: accept: {e}");
                        continue;
                    }
                };
                let Ok(permit) = slots.clone().acquire_owned().await else { return Ok(()) };
                let active = Active::new(&shared);
                let s = shared.clone();
                tokio::task::spawn(async move {
                    let _active = active;
                    let _permit = permit;
                    match stream {
                        Accepted::Unix(u) => {
                            let peer = crate::http::UnixPeer(std::os::fd::AsRawFd::as_raw_fd(&u));
                            connection(s, u, Some(peer)).await
                        }
                        Accepted::Tcp(t, tls) => {
                            // The handshake has the headers' deadline: a
                            // client that never finishes it holds a slot
                            // no longer than a slow request would.
                            match tokio::time::timeout(HEADER_TIMEOUT, tls.accept(t)).await {
                                Ok(Ok(t)) => connection(s, t, None).await,
                                Ok(Err(e)) => tracing::info!("API service: TLS handshake refused: {e}"),
                                Err(_) => tracing::info!("API service: TLS handshake timed out"),
                            }
                        }
                    }
                });
            }
        }
    }
}

/// Serves one connection's requests (and its upgrade, for a hijack);
/// `peer`: its socket when it is a unix one, told to each request.
async fn connection<S>(s: Arc<Shared>, stream: S, peer: Option<crate::http::UnixPeer>)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let svc = service_fn(move |mut req: hyper::Request<hyper::body::Incoming>| {
        let s = s.clone();
        if let Some(p) = peer {
            req.extensions_mut().insert(p);
        }
        async move { Ok::<_, std::convert::Infallible>(router::route(s, req).await) }
    });
    let conn = http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_TIMEOUT)
        .max_buf_size(64 * 1024)
        .serve_connection(TokioIo::new(stream), svc)
        .with_upgrades();
    let _ = conn.await;
}
