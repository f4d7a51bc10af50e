//! The listener: a unix socket (made here, or handed over by systemd's
//! socket activation), one tokio thread serving its connections, and the
//! idle exit.

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
    /// The socket to listen on (ignored when systemd hands one over).
    pub socket: PathBuf,
    /// The group given access to the socket (root's only otherwise).
    pub group: Option<u32>,
    /// Exit after this long without a connection (None: never).
    pub idle: Option<Duration>,
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

    /// Runs `f` with an engine on a blocking thread.
    pub async fn engine<T: Send + 'static>(
        self: &Arc<Self>,
        f: impl FnOnce(&berth_engine::Engine) -> crate::ApiResult<T> + Send + 'static,
    ) -> crate::ApiResult<T> {
        let s = self.clone();
        tokio::task::spawn_blocking(move || {
            let e = berth_engine::Engine::open(&s.root, &s.run_root)?;
            f(&e)
        })
        .await
        .map_err(|e| crate::ApiError::internal(format!("engine call failed: {e}")))?
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

/// The socket systemd handed over (LISTEN_PID is this process, LISTEN_FDS
/// at least 1: fd 3), if any. The variables are removed so that nothing
/// this process starts takes them for its own.
fn activated() -> Result<Option<std::os::unix::net::UnixListener>, ServeError> {
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
            // SAFETY: systemd's protocol hands fd 3 to this process, which
            // owns it from here; it is a socket (checked above).
            let l = unsafe { std::os::unix::net::UnixListener::from_raw_fd(3) };
            Ok(Some(l))
        }
        _ => Ok(None),
    }
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
    let (listener, made) = match activated()? {
        Some(l) => (l, None),
        None => (bind(&cfg.socket, cfg.group)?, Some(cfg.socket.clone())),
    };
    listener
        .set_nonblocking(true)
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
    let r = rt.block_on(run(listener, shared, cfg.idle));
    if let Some(p) = made {
        let _ = std::fs::remove_file(p);
    }
    // Blocking calls still running (a follow whose client left) are not
    // waited for: the process ends.
    rt.shutdown_timeout(Duration::from_millis(100));
    r
}

async fn run(
    listener: std::os::unix::net::UnixListener,
    shared: Arc<Shared>,
    idle: Option<Duration>,
) -> Result<(), ServeError> {
    let listener =
        tokio::net::UnixListener::from_std(listener).map_err(io("register the socket"))?;
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
                let (stream, _) = match accepted {
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
                    let svc = service_fn(move |req| {
                        let s = s.clone();
                        async move { Ok::<_, std::convert::Infallible>(router::route(s, req).await) }
                    });
                    let conn = http1::Builder::new()
                        .timer(TokioTimer::new())
                        .header_read_timeout(HEADER_TIMEOUT)
                        .max_buf_size(64 * 1024)
                        .serve_connection(TokioIo::new(stream), svc)
                        .with_upgrades();
                    let _ = conn.await;
                });
            }
        }
    }
}
