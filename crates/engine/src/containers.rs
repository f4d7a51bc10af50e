//! Container lifecycle: create, start (through the monitor), stop, kill,
//! remove, clean up after exit, and reconcile records with what is really
//! running.
//!
//! Each container operation takes the container's lock (flock on
//! `containers/ID/lock`), so parallel `berth` commands on one container
//! serialise; different containers never wait for each other beyond one
//! SQLite transaction.

use crate::error::{io, option, Error, Result};
use crate::host::{Host, Launched, MonitorLaunch};
use crate::paths::{self, Paths};
use crate::records::{Record, Records, RunState, Status, VolumeRecord};
use crate::runtime::OciRuntime;
use crate::session::Session;
use crate::spec::{self, ImageConfig, MountKind, MountSpec, Resolved, Seccomp};
use crate::specgen::{ContainerSpec, MountType, SeccompPolicy, DEFAULT_RUNTIME};
use berth_image::store::Store;
use berth_image::Digest;
use berth_monitor_proto::config::Config as MonitorConfig;
use berth_monitor_proto::frame::{self, Decoder};
use berth_monitor_proto::state::{State as MonitorState, Status as MonitorStatus};
use std::io::Write;
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Where berth looks for the default seccomp profile (containers-common's),
/// in order; without any, berth's built-in one
/// (`berth_seccomp::profile::DEFAULT_PROFILE`).
pub const SECCOMP_PROFILES: [&str; 3] = [
    "/etc/berth/seccomp.json",
    "/etc/containers/seccomp.json",
    "/usr/share/containers/seccomp.json",
];

pub struct Engine {
    pub paths: Paths,
    pub records: Records,
    pub images: Store,
    /// Every runtime call goes through it ([`crate::runtime`]).
    pub oci: &'static dyn OciRuntime,
    /// Mounts, unmounts and monitors go through it ([`crate::host`]).
    pub host: &'static dyn Host,
    /// Image configs read so far, by digest (content-addressed: never
    /// another content, but the image may be removed since, which
    /// [`Engine::image_config`] checks): `ps` and inspect of many
    /// containers of one image read and verify its config once.
    configs: std::sync::Mutex<std::collections::HashMap<Digest, ImageConfig>>,
}

/// A held container lock.
pub struct Lock(#[allow(dead_code)] OwnedFd);

impl Lock {
    pub(crate) fn from_fd(fd: OwnedFd) -> Lock {
        Lock(fd)
    }
}

/// A monitor started before its container is known (`berth-monitor
/// --pre`), for `berth run`: it executes, makes berth-runtime's protected
/// binary and starts the runtime, which then waits for its command line
/// (`berth_runtime::handoff`), while this process opens the stores,
/// resolves the image and writes the bundle, on another CPU. It gets its
/// configuration in a CONFIG frame when the container is started; dropped
/// unused, it ends with the pipe, having done nothing anyone can see.
pub struct PreMonitor {
    child: Option<std::process::Child>,
    runtime: PathBuf,
    /// One for the container's pod's infra, when it must start first.
    infra: Option<Box<PreMonitor>>,
}

impl PreMonitor {
    /// Starts one for a container of `runtime` (a name or path, as
    /// `--runtime` takes it) under `run_root`. `None` unless it is berth's
    /// own runtime installed beside berth-monitor (the hand-over is theirs
    /// alone), or if the monitor cannot be started (the start then starts
    /// one as usual, and reports what fails).
    pub fn spawn(run_root: &Path, runtime: &str) -> Option<PreMonitor> {
        if runtime != DEFAULT_RUNTIME {
            return None;
        }
        let (name, runtime) = (runtime, paths::find_program(runtime).ok()?);
        let monitor = paths::find_program("berth-monitor").ok()?;
        if !same_build(name, &runtime, &monitor) {
            return None;
        }
        Self::spawn_with(&monitor, runtime, run_root)
    }

    /// [`PreMonitor::spawn`] of `monitor` for `runtime`, found already
    /// (and of the same build).
    fn spawn_with(monitor: &Path, runtime: PathBuf, run_root: &Path) -> Option<PreMonitor> {
        // The directory the runtime's protected overlay is made with.
        paths::private_run_root(run_root).ok()?;
        let mut cmd = std::process::Command::new(monitor);
        cmd.arg("--pre").arg(&runtime).arg(run_root);
        // Kept off our CPU while it starts up, so that it does so beside
        // us, not after us, on a host whose scheduler keeps a new process
        // on its parent's CPU. Our CPUs (the argument) are given back to
        // it, and to the runtime it started, when it gets its config: after
        // this has restricted it, before the runtime makes anything.
        let away = away_from_here();
        if let Some((ours, _)) = &away {
            cmd.arg(ours);
        }
        let child = cmd
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .ok()?;
        if let Some((_, set)) = &away {
            // SAFETY: a valid set of the size given, for our own child.
            unsafe { libc::sched_setaffinity(child.id() as i32, std::mem::size_of_val(set), set) };
        }
        Some(PreMonitor {
            child: Some(child),
            runtime,
            infra: None,
        })
    }

    /// This monitor, carrying `infra`, one started for the pod infra that
    /// the container's start starts first ([`Engine::pod_infra_down`]).
    pub fn with_infra(mut self, infra: Option<PreMonitor>) -> PreMonitor {
        self.infra = infra.map(Box::new);
        self
    }

    /// The monitor, if it was started for `runtime`.
    fn take_for(mut self, runtime: &Path) -> Option<std::process::Child> {
        if self.runtime != runtime {
            return None;
        }
        self.child.take()
    }
}

/// Whether the runtime `name` (as `--runtime` takes it), found at
/// `runtime`, is berth's own of the same build as the monitor at `monitor`
/// (installed beside it): the monitor links its library (to delete its
/// containers) and hands it its command line (`berth_runtime::handoff`).
fn same_build(name: &str, runtime: &Path, monitor: &Path) -> bool {
    name == DEFAULT_RUNTIME && runtime.parent() == monitor.parent()
}

/// Starts the monitor (berth's [`Host::spawn_monitor`]): hands its config
/// to the monitor started ahead for this runtime, or starts a new one.
pub(crate) fn launch_monitor(m: &MonitorLaunch<'_>, pre: Option<PreMonitor>) -> Result<Launched> {
    let runtime = m.runtime;
    // With berth's own runtime (of this build) a monitor is started as one
    // started ahead is, when none was: it reads its configuration from the
    // pipe, and no monitor.conf is made.
    let pre = pre.or_else(|| {
        m.config
            .builtin_root
            .as_ref()
            .and_then(|_| PreMonitor::spawn_with(m.monitor, runtime.to_path_buf(), m.run_root))
    });
    // The monitor started ahead reads its configuration from the pipe
    // (and opens monitor.log in the run directory itself); one that
    // cannot (it died) is replaced by a new one, started as usual.
    let ahead = pre.and_then(|p| p.take_for(runtime)).and_then(|mut child| {
        let sent = match child.stdin.as_mut() {
            Some(w) => {
                std::io::Write::write_all(w, &frame::encode(frame::CONFIG, m.text.as_bytes()))
            }
            None => Err(std::io::ErrorKind::BrokenPipe.into()),
        };
        if sent.is_err() {
            drop(child.stdin.take());
            let _ = child.wait();
            return None;
        }
        Some(child)
    });
    let mut child = match ahead {
        Some(child) => child,
        None => {
            let conf = m.run_dir.join("monitor.conf");
            write_private(&conf, m.text.as_bytes())?;
            let log = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(m.run_dir.join("monitor.log"))
                .map_err(io("open monitor.log"))?;
            std::process::Command::new(m.monitor)
                .arg(&conf)
                .stdin(std::process::Stdio::piped())
                .stdout(std::process::Stdio::piped())
                .stderr(log)
                .spawn()
                .map_err(io(format!("start the monitor {}", m.monitor.display())))?
        }
    };
    let monitor_pid = child.id() as i32;
    let (Some(to), Some(from)) = (child.stdin.take(), child.stdout.take()) else {
        let _ = child.kill();
        let _ = child.wait();
        return Err(Error::Runtime("the monitor's pipes are missing".into()));
    };
    Ok(Launched {
        to_monitor: std::fs::File::from(OwnedFd::from(to)),
        from_monitor: std::fs::File::from(OwnedFd::from(from)),
        pid: monitor_pid,
        child: Some(child),
    })
}

/// Reaps a child (a monitor, `network gc`) when it ends, on a small thread
/// of its own: a long-lived caller (a build's many RUN steps, the API
/// service) collects no zombies. If no thread can be made, the child is
/// left to be reaped when this process ends.
///
/// The thread takes no signal: it is made with every signal blocked (it
/// inherits its maker's mask, set so around its making), so a signal meant
/// for the caller (`run`'s sig-proxy blocks SIGTERM and the like and
/// takes them with sigwait, but only after the monitor has started) is
/// never delivered to it with its default action, ending the process.
pub(crate) fn reap_when_done(mut child: std::process::Child) {
    // SAFETY: sigset_t is plain data filled by sigfillset; both pointers
    // are valid; the mask is this thread's, restored below.
    let mut all: libc::sigset_t = unsafe { std::mem::zeroed() };
    // SAFETY: as above.
    let mut old: libc::sigset_t = unsafe { std::mem::zeroed() };
    // SAFETY: as above.
    unsafe {
        libc::sigfillset(&mut all);
        libc::pthread_sigmask(libc::SIG_SETMASK, &all, &mut old);
    }
    let _ = std::thread::Builder::new()
        .name("reap-monitor".into())
        .stack_size(64 * 1024)
        .spawn(move || {
            // An error is ECHILD: reaped by the caller's own reaper.
            let _ = child.wait();
        });
    // SAFETY: restores this thread's mask saved above.
    unsafe { libc::pthread_sigmask(libc::SIG_SETMASK, &old, std::ptr::null_mut()) };
}

/// The CPUs this process may use (as a list: "0,1,3") and that set less
/// the CPU it runs on; `None` when that leaves none.
fn away_from_here() -> Option<(String, libc::cpu_set_t)> {
    // SAFETY: cpu_set_t is plain data filled by sched_getaffinity.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: a valid out pointer of the size given.
    if unsafe { libc::sched_getaffinity(0, std::mem::size_of_val(&set), &mut set) } != 0 {
        return None;
    }
    // SAFETY: plain call.
    let here = usize::try_from(unsafe { libc::sched_getcpu() }).ok()?;
    let ours: Vec<usize> = (0..libc::CPU_SETSIZE as usize)
        // SAFETY: CPU_ISSET reads the set, below CPU_SETSIZE.
        .filter(|&c| unsafe { libc::CPU_ISSET(c, &set) })
        .collect();
    if ours.len() < 2 || !ours.contains(&here) {
        return None;
    }
    // SAFETY: clears one bit of the set, below CPU_SETSIZE (it is set).
    unsafe { libc::CPU_CLR(here, &mut set) };
    let list: Vec<String> = ours.iter().map(usize::to_string).collect();
    Some((list.join(","), set))
}

impl Drop for PreMonitor {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            // Told by the closed pipe, it ends at once.
            drop(c.stdin.take());
            let _ = c.wait();
        }
    }
}

pub(crate) fn now_nanos() -> i64 {
    berth_monitor_proto::now_nanos()
}

fn kernel_version() -> (u32, u32) {
    // SAFETY: utsname is plain data filled by uname.
    let mut u: libc::utsname = unsafe { std::mem::zeroed() };
    // SAFETY: u is a valid out pointer.
    if unsafe { libc::uname(&mut u) } != 0 {
        return (0, 0);
    }
    // SAFETY: uname NUL-terminates release.
    let rel = unsafe { std::ffi::CStr::from_ptr(u.release.as_ptr()) }.to_string_lossy();
    let mut it = rel
        .split(|c: char| !c.is_ascii_digit())
        .filter_map(|p| p.parse().ok());
    (it.next().unwrap_or(0), it.next().unwrap_or(0))
}

/// In the run directory of a container whose monitor is gone: the signal
/// berth killed it with (SIGKILL only), for its exit code.
const KILLED: &str = "killed";

/// How long [`Engine::settle`] waits for a live monitor to start its
/// container (a runtime's create and start take milliseconds; this covers
/// a loaded machine and a slow hook).
const START_SETTLE: Duration = Duration::from_secs(30);

fn alive(pid: i32) -> bool {
    pid > 0
        && berth_sys::process::kill(pid, 0).is_ok()
        && berth_sys::process::proc_stat(pid).is_some_and(|s| s.state != 'Z')
}

/// True when `pid` is a live berth monitor (not a zombie, not a reused
/// pid).
pub(crate) fn is_monitor(pid: i32) -> bool {
    pid > 0
        && std::fs::read_to_string(format!("/proc/{pid}/comm"))
            .is_ok_and(|c| c.trim() == "berth-monitor")
        && berth_sys::process::proc_stat(pid).is_some_and(|s| s.state != 'Z')
}

/// Waits (10 s at most) for the monitor of a container's last run to be
/// gone. An exit is recorded before that monitor has deleted the runtime's
/// container and run its cleanup: a start in between would have its new
/// container, which has the same id, deleted under it by the old
/// monitor's `delete --force`. Not under the container's lock: the old
/// monitor's cleanup takes it.
fn wait_previous_monitor(rec: &Record) {
    if matches!(rec.state.status, Status::Running | Status::Restarting) {
        return;
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while is_monitor(rec.state.monitor_pid) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// The container's hostname: `--hostname`, the host's with the host's
/// network or UTS namespace, else the short id.
fn container_hostname(id: &str, c: &ContainerSpec) -> String {
    match &c.network.hostname {
        Some(h) => h.clone(),
        None if c.namespaces.net.is_host() || c.namespaces.uts.is_host() => host_name(),
        None => short(id).to_string(),
    }
}

/// The names of the container's own line in /etc/hosts, as Docker writes
/// them: the full name (`--hostname` with `.--domainname`), then the
/// short name when the full one has a dot (`web.example.org web`).
fn hosts_names(hostname: &str, domainname: Option<&str>) -> String {
    let fqdn = match domainname.filter(|d| !d.is_empty()) {
        Some(d) => format!("{hostname}.{d}"),
        None => hostname.to_string(),
    };
    match fqdn.split_once('.') {
        Some((short, _)) if !short.is_empty() => format!("{fqdn} {short}"),
        _ => fqdn,
    }
}

/// The container's /etc/hostname, /etc/hosts and /etc/resolv.conf, as
/// (file name, text).
fn etc_files(
    rec: &Record,
    hostname: &str,
    net: Option<&crate::networks::NetSetup>,
) -> [(&'static str, String); 3] {
    let host_net = rec.spec.namespaces.net.is_host();
    let mut hosts = if host_net {
        std::fs::read_to_string("/etc/hosts").unwrap_or_default()
    } else {
        let own = net
            .and_then(|n| n.addresses.first())
            .map_or_else(|| "127.0.1.1".to_string(), |a| a.to_string());
        let names = hosts_names(hostname, rec.spec.network.domainname.as_deref());
        format!("127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n{own}\t{names}\n")
    };
    if !hosts.is_empty() && !hosts.ends_with('\n') {
        hosts.push('\n');
    }
    for h in &rec.spec.network.extra_hosts {
        let address = match (h.address.as_str(), net.and_then(|n| n.gateway)) {
            (crate::specgen::docker::HOST_GATEWAY, Some(gw)) => gw.to_string(),
            (crate::specgen::docker::HOST_GATEWAY, None) => continue,
            (a, _) => a.to_string(),
        };
        hosts.push_str(&format!("{address}\t{}\n", h.name));
    }
    let c = &rec.spec.network;
    let host_resolv = host_resolv_conf();
    let resolv = match net.and_then(|n| n.dns_server) {
        // berth's responder on the network's gateway forwards other names
        // to the container's --dns servers or the host's.
        Some(server) => {
            let mut search = vec![crate::networks::DNS_DOMAIN.to_string()];
            search.extend(c.dns_search.iter().filter(|s| *s != ".").cloned());
            if c.dns_search.is_empty() {
                search.extend(host_search(&host_resolv));
            }
            crate::specgen::resolv_conf(
                &host_resolv,
                &[server.to_string()],
                &search,
                &c.dns_options,
                true,
            )
        }
        None => crate::specgen::resolv_conf(
            &host_resolv,
            &c.dns,
            &c.dns_search,
            &c.dns_options,
            !host_net,
        ),
    };
    [
        ("hostname", format!("{hostname}\n")),
        ("hosts", hosts),
        ("resolv.conf", resolv),
    ]
}

/// The host's resolv.conf, or systemd-resolved's list of the real servers
/// when the host's names only its stub on a loopback address (which a
/// container with a network of its own cannot reach).
fn host_resolv_conf() -> String {
    let etc = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
    let servers = berth_network::resolv::nameservers(&etc);
    if !servers.is_empty() && servers.iter().all(|a| a.is_loopback()) {
        if let Ok(real) = std::fs::read_to_string("/run/systemd/resolve/resolv.conf") {
            return real;
        }
    }
    etc
}

/// The search domains of a resolv.conf.
fn host_search(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    for line in text.lines() {
        let mut w = line.split_whitespace();
        if matches!(w.next(), Some("search" | "domain")) {
            out = w.map(str::to_string).collect();
        }
    }
    out
}

/// Writes `data` to a new `path` (replacing what was there) readable by
/// its owner only.
fn write_private(path: &Path, data: &[u8]) -> Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let _ = std::fs::remove_file(path);
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .and_then(|mut f| f.write_all(data))
        .map_err(io(format!("write {}", path.display())))
}

pub(crate) fn short(id: &str) -> &str {
    &id[..12.min(id.len())]
}

/// One of a container's mounts, as `inspect` shows it.
#[derive(Clone, Debug, PartialEq)]
pub struct MountView {
    /// `bind`, `volume` or `tmpfs`.
    pub kind: &'static str,
    /// The volume's name (volumes only).
    pub name: String,
    /// The host path (binds and volumes).
    pub source: String,
    pub destination: String,
    pub rw: bool,
    /// A bind's propagation (`rprivate` unless asked); empty for others.
    pub propagation: String,
}

/// The engine's tables in the store's one database: every opener passes
/// the same set, so the file's schema mark ([`berth_db`]) stays put and no
/// command parses the schemas again.
pub(crate) const STORE_TABLES: [berth_db::Tables<'static>; 3] = [
    crate::records::TABLES,
    berth_network::store::TABLES,
    crate::pods::TABLES,
];

/// The image store with the engine's tables ([`STORE_TABLES`]).
pub(crate) fn open_store(root: &Path) -> Result<Store> {
    Ok(Store::open_with(root, &STORE_TABLES)?)
}

/// The container's cgroup path as its runtime gets it (`cgroupsPath`).
pub(crate) fn cgroups_path(c: &ContainerSpec, id: &str) -> String {
    format!(
        "{}/{id}",
        c.resources.cgroup_parent.as_deref().unwrap_or("/berth")
    )
}

/// Removes a container's cgroup that its runtime left: what still runs in
/// it is killed, then the directories go (every hierarchy). Only a path
/// from the hierarchies' root: a relative one is the runtime's to resolve.
pub(crate) fn sweep_cgroup(rec: &Record) {
    let path = cgroups_path(&rec.spec, &rec.id);
    if !path.starts_with('/') {
        return;
    }
    let Ok(layout) = berth_cgroups::Layout::from_host() else {
        return;
    };
    let Ok(m) = berth_cgroups::CgroupsPath::parse(Some(&path), &rec.id, false)
        .and_then(|p| berth_cgroups::Manager::new(&layout, &p))
    else {
        return;
    };
    // Gone already: the common case.
    if m.procs().is_err() {
        return;
    }
    m.kill_all();
    if let Err(e) = destroy_cgroup_retry(&m) {
        eprintln!(
            "berth: warning: container {}: remove its cgroup {path}: {e}",
            &rec.id[..12.min(rec.id.len())]
        );
    }
}

/// Removes a cgroup, waiting up to a second for exiting tasks to leave.
pub(crate) fn destroy_cgroup_retry(
    m: &berth_cgroups::Manager,
) -> std::result::Result<(), berth_cgroups::Error> {
    let mut tries = 0;
    loop {
        match m.destroy() {
            Err(_) if tries < 50 => {
                tries += 1;
                std::thread::sleep(Duration::from_millis(20));
            }
            r => return r,
        }
    }
}

impl Engine {
    pub fn open(root: &Path, run_root: &Path) -> Result<Engine> {
        Engine::open_with(root, run_root, &crate::runtime::RUNC)
    }

    /// [`Engine::open`] with another runtime client (a fake in tests).
    pub fn open_with(root: &Path, run_root: &Path, oci: &'static dyn OciRuntime) -> Result<Engine> {
        let images = open_store(root)?;
        images.relax_durability()?;
        for d in [root.join("containers"), root.join("volumes")] {
            std::fs::create_dir_all(&d).map_err(io(format!("create {}", d.display())))?;
        }
        paths::private_run_root(run_root)?;
        for d in ["containers", "locks", "rootfs"] {
            std::fs::create_dir_all(run_root.join(d))
                .map_err(io(format!("create {}", run_root.join(d).display())))?;
        }
        Ok(Engine {
            records: Records::new(&images),
            images,
            paths: Paths {
                root: root.to_path_buf(),
                run_root: run_root.to_path_buf(),
            },
            oci,
            host: &crate::host::REAL,
            configs: Default::default(),
        })
    }

    /// This engine with another host (a fake in tests).
    pub fn with_host(self, host: &'static dyn Host) -> Engine {
        Engine { host, ..self }
    }

    /// The container's lock if no one holds it.
    pub(crate) fn try_lock(&self, id: &str) -> Option<Lock> {
        let p = self.paths.lock(id);
        let fd =
            berth_sys::fs::open(&p, libc::O_RDWR | libc::O_CREAT | libc::O_CLOEXEC, 0o600).ok()?;
        berth_sys::fs::flock(fd.as_fd(), true, true)
            .ok()
            .filter(|got| *got)
            .map(|_| Lock(fd))
    }

    pub fn lock(&self, id: &str) -> Result<Lock> {
        let p = self.paths.lock(id);
        let fd = berth_sys::fs::open(&p, libc::O_RDWR | libc::O_CREAT | libc::O_CLOEXEC, 0o600)
            .map_err(io(format!("open the container lock {}", p.display())))?;
        berth_sys::fs::flock(fd.as_fd(), true, false)
            .map_err(io(format!("lock {}", p.display())))?;
        Ok(Lock(fd))
    }

    /// The image config of a stored image (read and verified once per
    /// engine). A config kept from an earlier read is given only while
    /// its blob is still in the store: the image may have been removed
    /// since, by this engine or by another process (a service's engines
    /// live long), and then the answer is the one a fresh read gives.
    pub fn image_config(&self, id: &Digest) -> Result<ImageConfig> {
        if let Some(c) = self.configs.lock().ok().and_then(|m| m.get(id).cloned()) {
            if self.images.has_blob(id) {
                return Ok(c);
            }
            if let Ok(mut m) = self.configs.lock() {
                m.remove(id);
            }
        }
        let raw = self.images.read_blob(id, berth_image::pull::MAX_CONFIG)?;
        let c = ImageConfig::from_json(&raw)?;
        if let Ok(mut m) = self.configs.lock() {
            m.insert(id.clone(), c.clone());
        }
        Ok(c)
    }

    /// Records a new container (nothing runs yet). `image` is the name the
    /// user gave; `image_id` the stored image. The spec is validated here
    /// (whatever front end made it), then checked against the host: the
    /// runtime, and an OCI spec made from it.
    pub fn create(
        &self,
        image: &str,
        image_id: &Digest,
        name: Option<&str>,
        spec: ContainerSpec,
    ) -> Result<Record> {
        let mut spec = spec;
        // `--pod`: the pod's namespaces and cgroup.
        self.join_pod(&mut spec)?;
        self.create_in_pod(image, image_id, name, spec)
    }

    /// [`Engine::create`] of a spec whose pod (if any) is resolved: a
    /// pod's member, or its infra container.
    pub(crate) fn create_in_pod(
        &self,
        image: &str,
        image_id: &Digest,
        name: Option<&str>,
        spec: ContainerSpec,
    ) -> Result<Record> {
        if let Some(n) = name {
            crate::specgen::check_name(n)?;
        }
        spec.validate()?;
        self.host.find_program(&spec.runtime)?;
        let image_config = self.image_config(image_id)?;
        let mut spec = spec;
        crate::health::inherit_image(&mut spec.health, self.image_healthcheck(image_id));
        self.copy_volumes_from(&mut spec)?;
        if spec.process.stop_signal.is_none()
            && image_config
                .stop_signal
                .as_deref()
                .is_some_and(|s| crate::specgen::parse_signal(s).is_err())
        {
            // An image's StopSignal berth does not know is SIGTERM, decided
            // here once: the record says so (the caller sees the change and
            // warns), and `stop` never fails on it.
            spec.process.stop_signal = Some("SIGTERM".into());
        }
        // The user namespace's maps, picked under the engine's user
        // namespace lock, held until the record with them is stored: no
        // two containers take one `auto` range.
        let _userns_lock = match spec.namespaces.user {
            crate::userns::UsernsMode::Host => {
                spec.namespaces.user_maps = None;
                None
            }
            ref m => {
                let held = self.userns_lock()?;
                let in_use = self
                    .records
                    .all()?
                    .into_iter()
                    .filter_map(|r| r.spec.namespaces.user_maps)
                    .collect();
                spec.namespaces.user_maps = crate::usermaps::pick(m, in_use, &held)?;
                Some(held)
            }
        };
        let id = paths::new_id()?;
        let name = name.map_or_else(|| paths::random_name(&id), str::to_string);
        // The options must make a spec before anything is recorded (the
        // seccomp profile is converted once, at start; a given one is
        // checked here).
        let mut probe = self.resolve(&id, &spec, &image_config, Path::new("/"), false)?;
        if let Seccomp::File { profile, kernel } = &probe.seccomp {
            let sec = &spec.security;
            berth_seccomp::profile::for_container(
                profile,
                berth_seccomp::profile::native_arch(),
                &spec::capabilities(sec.privileged, &sec.cap_add, &sec.cap_drop)?,
                *kernel,
            )
            .map_err(|e| option("--security-opt seccomp", e.to_string()))?;
        }
        probe.seccomp = Seccomp::Unconfined;
        spec::check(&image_config, &crate::user::User::default(), &spec, &probe)?;

        let dir = self.paths.container(&id);
        // Order matters for a kill -9 at any point: the hold and the record
        // (one transaction), then the directory (one without a record is
        // removed by prune; the record always exists before its directory,
        // so prune never races create).
        let holder = format!("container:{id}");
        let rec = Record {
            id: id.clone(),
            name,
            image: image.to_string(),
            image_id: image_id.to_string(),
            created: now_nanos(),
            spec,
            state: RunState::default(),
        };
        self.images
            .hold_with(image_id, &holder, |db| Records::insert_in(db, &rec))?;
        let done = std::fs::create_dir_all(&dir)
            .map_err(io(format!("create {}", dir.display())))
            .and_then(|()| self.attach_volumes(&rec, &image_config))
            .and_then(|()| self.create_network(&rec));
        if let Err(e) = done {
            let _ = self
                .images
                .release_with(&holder, |db| Records::remove_in(db, &id));
            self.release_endpoints_of(&rec);
            let _ = std::fs::remove_dir_all(&dir);
            return Err(e);
        }
        self.container_event(&rec, "create", &[]);
        Ok(rec)
    }

    /// `--volumes-from`: copies the volume and bind mounts (not tmpfs) of
    /// each container `spec.storage.volumes_from` names into its mounts,
    /// at the same destinations, read-only or read-write as `:ro`/`:rw`
    /// says (else as each was). A destination the spec mounts already
    /// keeps its mount (the container's own, or an earlier source's). An
    /// anonymous volume of the source (its `-v /dest` or image VOLUME) is
    /// copied by name, so the container's record uses it too.
    fn copy_volumes_from(&self, spec: &mut ContainerSpec) -> Result<()> {
        for v in spec.storage.volumes_from.clone() {
            let (name, mode) = crate::specgen::docker::parse_volumes_from(&v)?;
            let src = self.get(name).map_err(|e| match e {
                Error::NoSuchContainer(_) => option(
                    "--volumes-from",
                    format!("no such container: {name} (the container whose volumes to mount)"),
                ),
                e => e,
            })?;
            let src_image = self.image_config(&Digest::parse(&src.image_id)?)?;
            let vols = self.volume_mounts_of(&src.id, &src.spec, &src_image);
            let mut copied: Vec<crate::specgen::Mount> = Vec::new();
            for m in &src.spec.storage.mounts {
                let mut m = match m.kind {
                    MountType::Bind => m.clone(),
                    MountType::Volume => {
                        let Some((vol, _, _)) = vols.iter().find(|(_, _, d)| *d == m.destination)
                        else {
                            continue;
                        };
                        crate::specgen::Mount {
                            source: vol.clone(),
                            nocopy: true,
                            ..m.clone()
                        }
                    }
                    MountType::Tmpfs => continue,
                };
                m.readonly = mode.unwrap_or(m.readonly);
                copied.push(m);
            }
            for (vol, anonymous, dest) in &vols {
                if *anonymous && !copied.iter().any(|m| m.destination == *dest) {
                    copied.push(crate::specgen::Mount {
                        kind: MountType::Volume,
                        source: vol.clone(),
                        destination: dest.clone(),
                        readonly: mode.unwrap_or(false),
                        nocopy: true,
                        ..Default::default()
                    });
                }
            }
            for m in copied {
                let dest = m.destination.trim_end_matches('/');
                if !spec
                    .storage
                    .mounts
                    .iter()
                    .any(|x| x.destination.trim_end_matches('/') == dest)
                {
                    spec.storage.mounts.push(m);
                }
            }
        }
        spec.validate()
    }

    /// Creates the named and anonymous volumes the container uses, and
    /// records the use.
    fn attach_volumes(&self, rec: &Record, image: &ImageConfig) -> Result<()> {
        let mut wanted: Vec<(String, bool)> = Vec::new();
        for m in &rec.spec.storage.mounts {
            if m.kind == MountType::Volume {
                wanted.push((m.source.clone(), m.source.is_empty()));
            }
        }
        for v in self.anonymous_volumes(rec, image) {
            wanted.push((v, true));
        }
        for (name, anonymous) in wanted {
            let name = if name.is_empty() {
                continue;
            } else {
                name
            };
            self.create_volume(&name, Default::default(), anonymous)?;
            self.records.use_volume(&rec.id, &name)?;
        }
        Ok(())
    }

    /// Names of the anonymous volumes: one per `-v /dest` and per image
    /// VOLUME not covered by another mount. Derived from the container id,
    /// so they are stable across starts.
    fn anonymous_volumes(&self, rec: &Record, image: &ImageConfig) -> Vec<String> {
        self.volume_mounts(rec, image)
            .into_iter()
            .filter(|(_, anon, _)| *anon)
            .map(|(n, _, _)| n)
            .collect()
    }

    /// Every volume mount: (volume name, anonymous, destination).
    fn volume_mounts(&self, rec: &Record, image: &ImageConfig) -> Vec<(String, bool, String)> {
        self.volume_mounts_of(&rec.id, &rec.spec, image)
    }

    /// [`Engine::volume_mounts`] of container `id` with `spec`.
    fn volume_mounts_of(
        &self,
        id: &str,
        spec: &ContainerSpec,
        image: &ImageConfig,
    ) -> Vec<(String, bool, String)> {
        let anon_name = |dest: &str| {
            use sha2::{Digest as _, Sha256};
            let h = Sha256::digest(format!("{id}\0{dest}").as_bytes());
            h.iter().map(|b| format!("{b:02x}")).collect::<String>()
        };
        let mut out = Vec::new();
        for m in &spec.storage.mounts {
            if m.kind == MountType::Volume {
                if m.source.is_empty() {
                    out.push((anon_name(&m.destination), true, m.destination.clone()));
                } else {
                    out.push((m.source.clone(), false, m.destination.clone()));
                }
            }
        }
        for v in &image.volumes {
            let dest = if v.starts_with('/') {
                v.clone()
            } else {
                format!("/{v}")
            };
            let dest = dest.trim_end_matches('/').to_string();
            if dest.is_empty()
                || spec
                    .storage
                    .mounts
                    .iter()
                    .any(|m| m.destination.trim_end_matches('/') == dest)
            {
                continue;
            }
            out.push((anon_name(&dest), true, dest));
        }
        out
    }

    pub fn create_volume(
        &self,
        name: &str,
        labels: std::collections::BTreeMap<String, String>,
        anonymous: bool,
    ) -> Result<bool> {
        self.create_volume_with(name, labels, anonymous, &Default::default())
    }

    /// `volume create` with the local driver's options (`--opt type=tmpfs`
    /// and the others [`crate::volume_opts`] takes). An existing volume
    /// is kept (false), unless other options are asked of it: a conflict.
    pub fn create_volume_with(
        &self,
        name: &str,
        labels: std::collections::BTreeMap<String, String>,
        anonymous: bool,
        opts: &std::collections::BTreeMap<String, String>,
    ) -> Result<bool> {
        if !crate::specgen::is_volume_name(name) {
            return Err(option(
                "volume",
                format!("{name:?} is not a valid volume name: use [a-zA-Z0-9][a-zA-Z0-9_.-]*"),
            ));
        }
        let local = crate::volume_opts::LocalOpts::parse(opts)?;
        let dir = self.paths.volume(name);
        if self.records.volume(name).is_ok() {
            if local.is_some() && crate::volume_opts::load(&dir)? != local {
                return Err(Error::Conflict(format!(
                    "volume {name} exists with other options: remove it first"
                )));
            }
            return Ok(false);
        }
        // What a removal cut short left (its record gone first).
        crate::volume_opts::unmount(name, &dir)?;
        let _ = std::fs::remove_file(dir.join(crate::volume_opts::OPTS_FILE));
        let data = self.paths.volume_data(name);
        std::fs::create_dir_all(&data).map_err(io(format!("create {}", data.display())))?;
        if let Some(l) = &local {
            crate::volume_opts::store(&dir, l)?;
        }
        let added = self.records.add_volume(&VolumeRecord {
            name: name.to_string(),
            created: now_nanos(),
            labels,
            anonymous,
        })?;
        if added {
            self.record_event("volume", "create", name, Default::default());
        }
        Ok(added)
    }

    /// Removes a volume no container uses.
    pub fn remove_volume(&self, name: &str) -> Result<()> {
        let dir = self.paths.volume(name);
        // A volume of its own mount is unmounted while its record is still
        // there: a removal cut short then leaves a volume that mounts again
        // at its next use, never a mount without a record. (One in use is
        // left mounted; the record's removal refuses it below.)
        if self.records.volume(name).is_ok() && self.records.volume_users(name)?.is_empty() {
            crate::volume_opts::unmount(name, &dir)?;
        }
        self.records.remove_volume(name)?;
        // Again: a create's check may have mounted it in between (it
        // mounts before it records its use).
        crate::volume_opts::unmount(name, &dir)?;
        if dir.exists() {
            berth_image::remove_all(&dir)?;
        }
        self.record_event("volume", "destroy", name, Default::default());
        Ok(())
    }

    /// What the container's spec resolves to on this host, with its root
    /// at `rootfs`: host paths of its mounts and devices, the seccomp
    /// profile, the init, the cgroup path and the prepared /etc files.
    /// `start`: for a start (subpaths are pinned then; a create's check
    /// leaves them be).
    fn resolve(
        &self,
        id: &str,
        c: &ContainerSpec,
        image: &ImageConfig,
        rootfs: &Path,
        start: bool,
    ) -> Result<Resolved> {
        let kernel = kernel_version();
        let seccomp = match &c.security.seccomp {
            _ if c.security.privileged => Seccomp::Unconfined,
            SeccompPolicy::Unconfined => Seccomp::Unconfined,
            SeccompPolicy::Profile { profile } => Seccomp::File {
                profile: profile.clone().into_bytes(),
                kernel,
            },
            SeccompPolicy::Default => {
                // An installed profile (the administrator's, or containers-
                // common's) first; else berth's own, which has the same
                // rules as containers-common's.
                let found = SECCOMP_PROFILES
                    .iter()
                    .find_map(|p| std::fs::read(p).ok())
                    .unwrap_or_else(|| berth_seccomp::profile::DEFAULT_PROFILE.to_vec());
                Seccomp::Default {
                    profile: found,
                    kernel,
                }
            }
        };
        let run_dir = self.paths.run_dir(id);
        let mut mounts = Vec::new();
        let vols = self.volume_mounts_of(id, c, image);
        let container_dir = self.paths.container(id);
        if start {
            // The last start's pinned subpaths.
            crate::subpath::detach(&container_dir);
        }
        for (i, m) in c.storage.mounts.iter().enumerate() {
            let mut readonly = m.readonly;
            // Only this part of the source, pinned by fd.
            let sub = |base: PathBuf| -> Result<PathBuf> {
                match &m.sub_path {
                    Some(sp) if start => crate::subpath::stage(&container_dir, i, &base, sp),
                    _ => Ok(base),
                }
            };
            let kind = match m.kind {
                MountType::Bind => {
                    let src = PathBuf::from(&m.source);
                    if let Some(p) = &m.propagation {
                        crate::rootfs::check_propagation(&src, p)?;
                    }
                    MountKind::Bind {
                        source: sub(src)?,
                        propagation: m.propagation.clone(),
                        volume: false,
                    }
                }
                MountType::Volume => {
                    let name = vols
                        .iter()
                        .find(|(_, _, d)| *d == m.destination)
                        .map(|(n, _, _)| n.clone())
                        .unwrap_or_default();
                    // A volume of its own mount (--opt type=…) is mounted
                    // at its first use.
                    if crate::volume_opts::ensure_mounted(&name, &self.paths.volume(&name))? {
                        readonly = true;
                    }
                    MountKind::Bind {
                        source: sub(self.paths.volume_data(&name))?,
                        propagation: None,
                        volume: true,
                    }
                }
                MountType::Tmpfs => MountKind::Tmpfs {
                    size: m.size,
                    mode: m.mode,
                    flags: m.flags.clone(),
                },
            };
            mounts.push(MountSpec {
                destination: m.destination.clone(),
                kind,
                readonly,
            });
        }
        for (name, anon, dest) in &vols {
            if *anon && !c.storage.mounts.iter().any(|m| m.destination == *dest) {
                mounts.push(MountSpec {
                    destination: dest.clone(),
                    kind: MountKind::Bind {
                        source: self.paths.volume_data(name),
                        propagation: None,
                        volume: true,
                    },
                    readonly: false,
                });
            }
        }
        let mut devices = if c.security.privileged {
            crate::devices::host_devices()
        } else {
            Vec::new()
        };
        for d in &c.resources.devices {
            for d in crate::devices::lookup(d)? {
                devices.retain(|x| x.path != d.path);
                devices.push(d);
            }
        }
        let init = if c.process.init {
            Some(paths::find_program("berth-init")?)
        } else {
            None
        };
        let r = &c.resources;
        let nums = |v: &[crate::specgen::DeviceRate], flag: &str| -> Result<Vec<(i64, i64, u64)>> {
            v.iter()
                .map(|d| {
                    crate::devices::block_numbers(&d.path, flag).map(|(ma, mi)| (ma, mi, d.value))
                })
                .collect()
        };
        Ok(Resolved {
            hostname: container_hostname(id, c),
            seccomp,
            mounts,
            devices,
            block_io: spec::BlockIo {
                weight_devices: nums(&r.blkio_weight_devices, "--blkio-weight-device")?,
                read_bps: nums(&r.device_read_bps, "--device-read-bps")?,
                write_bps: nums(&r.device_write_bps, "--device-write-bps")?,
                read_iops: nums(&r.device_read_iops, "--device-read-iops")?,
                write_iops: nums(&r.device_write_iops, "--device-write-iops")?,
            },
            init,
            rootfs: rootfs.to_path_buf(),
            cgroups_path: cgroups_path(c, id),
            cgroup_v2: crate::specgen::docker::host_cgroup_v2(),
            files: vec![
                ("/etc/hostname".into(), run_dir.join("hostname")),
                ("/etc/hosts".into(), run_dir.join("hosts")),
                ("/etc/resolv.conf".into(), run_dir.join("resolv.conf")),
            ],
            nofile: default_nofile(),
            cap_bound: cap_bound(),
            cdi: if c.resources.cdi_devices.is_empty() {
                Default::default()
            } else {
                // Again at every start: the spec files may have changed.
                crate::cdi::Registry::load(&crate::cdi::spec_dirs())
                    .resolve(&c.resources.cdi_devices)?
            },
            netns: None,
            joined: Vec::new(),
            shm: None,
        })
    }

    /// The text of the container's generated /etc file `name` (hostname,
    /// hosts or resolv.conf), as its start writes it.
    pub(crate) fn etc_file_text(&self, rec: &Record, name: &str) -> Result<String> {
        let hostname = container_hostname(&rec.id, &rec.spec);
        etc_files(rec, &hostname, None)
            .into_iter()
            .find(|(n, _)| *n == name)
            .map(|(_, t)| t)
            .ok_or_else(|| Error::Runtime(format!("no generated /etc file {name}")))
    }

    /// Writes the container's /etc/hostname, /etc/hosts and
    /// /etc/resolv.conf, except those `host` takes from the container
    /// whose namespaces it joins (`join_namespaces`).
    fn write_etc_files(
        &self,
        rec: &Record,
        host: &crate::spec::Resolved,
        net: Option<&crate::networks::NetSetup>,
    ) -> Result<()> {
        let dir = self.paths.run_dir(&rec.id);
        let dfd = berth_sys::fs::open(&dir, libc::O_PATH | libc::O_DIRECTORY, 0)
            .map_err(io(format!("open {}", dir.display())))?;
        for (name, text) in etc_files(rec, &host.hostname, net) {
            let p = dir.join(name);
            if !host.files.iter().any(|(_, f)| *f == p) {
                continue;
            }
            // Written at each start, as podman does (the host's resolver
            // may have changed), into the run directory made anew for
            // this start: created exclusively, never through a link.
            let mut f = berth_sys::fs::create_file_at(dfd.as_fd(), Path::new(name), 0o644)
                .map_err(io(format!("create {}", p.display())))?;
            std::io::Write::write_all(&mut f, text.as_bytes())
                .map_err(io(format!("write {}", p.display())))?;
        }
        Ok(())
    }

    /// Mounts the root, writes the bundle and starts the monitor, which
    /// starts the container. The caller waits on the session.
    pub fn start(&self, what: &str) -> Result<Session> {
        self.start_with(what, None)
    }

    /// [`Engine::start`] with a monitor started ahead of time
    /// ([`PreMonitor`]), used if it was started for this container's
    /// runtime.
    pub fn start_with(&self, what: &str, mut pre: Option<PreMonitor>) -> Result<Session> {
        let rec = self.records.find(what)?;
        if rec.spec.runtime != DEFAULT_RUNTIME {
            crate::warm_up_cgroups();
        }
        // A pod's member joins its infra's namespaces: the infra first.
        let infra_pre = pre.as_mut().and_then(|p| p.infra.take()).map(|b| *b);
        let infra = self.start_pod_infra(&rec, infra_pre)?;
        wait_previous_monitor(&rec);
        let _lock = self.lock(&rec.id)?;
        let rec = self.refresh_locked(rec)?;
        match rec.state.status {
            Status::Running | Status::Restarting => {
                return Err(Error::Conflict(format!(
                    "container {} is already running",
                    rec.name
                )))
            }
            Status::Removing => {
                return Err(Error::Conflict(format!(
                    "container {} is being removed",
                    rec.name
                )))
            }
            _ => {}
        }
        // Checked before anything is done on the host for it (a record an
        // earlier berth wrote may hold what is refused now).
        rec.spec.validate().map_err(|e| Error::Option {
            option: format!("container {}", rec.name),
            msg: format!("{e}; remove it and create it again"),
        })?;
        let image_id = Digest::parse(&rec.image_id)?;
        let image = self.image_config(&image_id).map_err(|e| {
            Error::Runtime(format!(
                "container {}: its image {} is unusable ({e}); pull it again",
                rec.name, rec.image
            ))
        })?;
        let net = self.setup_network(&rec, &image.exposed_ports)?;
        let result = self.mount_rootfs(&rec).and_then(|rootfs| {
            let r = self.start_mounted(&rec, &image, &rootfs, pre, net.as_ref(), infra);
            if r.is_err() {
                let _ = self.host.unmount(&rootfs, None);
            }
            r
        });
        if result.is_err() && net.is_some() {
            self.teardown_network(&rec.id, false);
        }
        result
    }

    /// The image's layer directories, bottom first.
    pub(crate) fn layer_dirs(&self, rec: &Record) -> Result<Vec<PathBuf>> {
        let image_id = Digest::parse(&rec.image_id)?;
        Ok(self
            .images
            .image_layers(&image_id)?
            .iter()
            .map(|c| self.images.layer_dir(c))
            .collect())
    }

    /// Mounts the container's root through the host ([`Host::mount_rootfs`]).
    pub(crate) fn mount_rootfs(&self, rec: &Record) -> Result<PathBuf> {
        self.host.mount_rootfs(self, rec)
    }

    /// Mounts the container's overlay root (no-op if mounted): the image's
    /// layers under its init layer (`rootfs::ensure_init_layer`; without it
    /// if it cannot be made, the runtime then makes the mount points).
    pub(crate) fn mount_overlay(&self, rec: &Record) -> Result<PathBuf> {
        let image_id = Digest::parse(&rec.image_id)?;
        let chains = self.images.image_layers(&image_id)?;
        let mut layers: Vec<PathBuf> = chains.iter().map(|c| self.images.layer_dir(c)).collect();
        let mut made = false;
        if let Some(top) = chains.last() {
            let init = self.images.layer_init_dir(top);
            made = init.is_dir() || {
                // Made in the store's tmp/, which GC empties only under the
                // store's lock: held shared meanwhile, as pulls hold it.
                let _store = self.images.pull_lock().ok();
                crate::rootfs::ensure_init_layer(&layers, &init, &self.images.tmp_dir()).is_ok()
            };
            if made {
                layers.push(init);
            }
        }
        // A pod's infra: its root is only ever read (berth's pause program
        // and the mount points of its image and init layer), so it needs
        // no upper layer: three directories, an overlay's work files and a
        // copy-up fewer per pod, made and removed.
        if made
            && rec.image == crate::pods::INFRA_IMAGE
            && rec.spec.pod.is_some()
            && rec.spec.namespaces.user_maps.is_none()
        {
            return crate::rootfs::mount_read_only(
                &layers,
                &self.paths.rootfs(&rec.id),
                &self.paths.root.join("empty"),
            );
        }
        if let Some(u) = &rec.spec.namespaces.user_maps {
            return crate::rootfs::mount_idmapped(
                &layers,
                &self.paths.container(&rec.id),
                &self.paths.rootfs(&rec.id),
                &self.paths.root.join("empty"),
                rec.spec.lifecycle.auto_remove || rec.spec.lifecycle.volatile_rootfs,
                u,
                crate::rootfs::LayerMounts::Detached,
            );
        }
        crate::rootfs::mount(
            &layers,
            &self.paths.container(&rec.id),
            &self.paths.rootfs(&rec.id),
            &self.paths.root.join("empty"),
            rec.spec.lifecycle.auto_remove || rec.spec.lifecycle.volatile_rootfs,
        )
    }

    fn start_mounted(
        &self,
        rec: &Record,
        image: &ImageConfig,
        rootfs: &Path,
        pre: Option<PreMonitor>,
        net: Option<&crate::networks::NetSetup>,
        infra: Option<crate::pods::InfraStart>,
    ) -> Result<Session> {
        let dir = self.paths.container(&rec.id);
        let run_dir = self.paths.run_dir(&rec.id);
        if run_dir.exists() {
            // Stale (a start that died half-way): holds no mount, only files.
            let _ = std::fs::remove_dir_all(&run_dir);
        }
        std::fs::create_dir_all(&run_dir).map_err(io(format!("create {}", run_dir.display())))?;
        // The monitor starts first and waits for GO: its own start-up
        // (a millisecond) overlaps with writing the bundle.
        let hold = net.map(|n| n.hold.clone()).unwrap_or_default();
        let (mut session, child) = self.spawn_monitor(rec, &dir, &run_dir, pre, hold)?;
        let ready = self
            .write_bundle(rec, image, rootfs, &run_dir, net)
            .and_then(|()| crate::health::write_process_files(rec, &run_dir));
        if let Err(e) = ready.and_then(|()| session.send(frame::GO, b"")) {
            // Told by the closed pipe, the monitor ends without a trace.
            drop(session);
            if let Some(mut child) = child {
                let _ = child.wait();
            }
            return Err(e);
        }
        let state = RunState {
            status: Status::Running,
            monitor_pid: session.monitor_pid,
            boot_id: paths::boot_id(),
            started: now_nanos(),
            restarts: 0,
            ..RunState::default()
        };
        self.records.set_state(&rec.id, &state)?;
        if rec.state.stopped_by_user {
            self.records.set_stopped_by_user(&rec.id, false)?;
        }
        self.container_event(rec, "start", &[]);
        // Its pod's infra, started meanwhile: waited for with this start.
        session.infra = infra.map(Box::new);
        // The monitor is not waited for here: it outlives this call (and,
        // detached, this process); it is reaped when it ends.
        if let Some(child) = child {
            reap_when_done(child);
        }
        Ok(session)
    }

    /// The bundle in the run directory: config.json and the files it
    /// mounts (/etc/hosts and the like), with volumes filled from the image.
    fn write_bundle(
        &self,
        rec: &Record,
        image: &ImageConfig,
        rootfs: &Path,
        run_dir: &Path,
        net: Option<&crate::networks::NetSetup>,
    ) -> Result<()> {
        let c = &rec.spec;
        let root_fd = berth_sys::fs::open(
            rootfs,
            libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC,
            0,
        )
        .map_err(io(format!("open {}", rootfs.display())))?;
        let user_spec = c
            .process
            .user
            .clone()
            .or_else(|| image.user.clone())
            .unwrap_or_default();
        // Root too is looked up: its home and groups come from the image.
        let user = crate::user::resolve_in(root_fd.as_fd(), &user_spec, &c.process.groups)?;
        let mut host = self.resolve(&rec.id, c, image, rootfs, true)?;
        host.netns = match (&c.namespaces.net, net) {
            (_, Some(n)) => Some(n.netns.clone()),
            (crate::specgen::NamespaceMode::Container(other), _) => {
                Some(self.shared_netns(other, &rec.id)?)
            }
            (crate::specgen::NamespaceMode::Path(p), _) => Some(p.clone()),
            _ => None,
        };
        // A pod's infra: the namespaces its pod shares, bound on files.
        for (kind, path) in self.bind_pod_namespaces(rec, host.netns.as_deref(), &host.hostname)? {
            match kind {
                "net" => host.netns = Some(path),
                "shm" => host.shm = Some(path),
                _ => host.joined.push((kind, path)),
            }
        }
        self.join_namespaces(rec, &mut host)?;
        self.convert_seccomp(c, &mut host)?;
        self.write_etc_files(rec, &host, net)?;
        for (name, _, dest) in self.volume_mounts(rec, image) {
            let nocopy = c
                .storage
                .mounts
                .iter()
                // A subpath of a volume is never filled from the image.
                .any(|m| {
                    m.kind == MountType::Volume
                        && m.destination == dest
                        && (m.nocopy || m.sub_path.is_some())
                });
            if !nocopy {
                let data = self.paths.volume_data(&name);
                match &c.namespaces.user_maps {
                    Some(u) => crate::usermaps::copy_up(rootfs, &dest, &data, u)?,
                    None => crate::files::copy_up(rootfs, &dest, &data)?,
                }
            }
        }
        let json = spec::generate_json(image, &user, c, &host)?;
        // 0600: the environment in it holds the -e secrets.
        write_private(&run_dir.join("config.json"), &json)
    }

    /// Replaces a seccomp profile by its conversion for the container's
    /// capabilities and kernel (`berth_seccomp::profile::for_container`),
    /// kept under the run root: every container started with the same
    /// profile and capabilities has the same one, and converting takes
    /// half a millisecond. The key holds every input and the conversion's
    /// version; a cache file that cannot be read is converted again.
    fn convert_seccomp(&self, c: &ContainerSpec, host: &mut Resolved) -> Result<()> {
        let (profile, kernel) = match &host.seccomp {
            _ if c.security.privileged => return Ok(()),
            Seccomp::Default { profile, kernel } | Seccomp::File { profile, kernel } => {
                (profile, *kernel)
            }
            _ => return Ok(()),
        };
        let caps = spec::container_capabilities(c, host)?;
        let arch = berth_seccomp::profile::native_arch();
        let mut input = format!(
            "{} {} {} {} {}.{} {}\n",
            env!("CARGO_PKG_VERSION"),
            berth_seccomp::profile::CONVERSION,
            arch.0,
            arch.1,
            kernel.0,
            kernel.1,
            caps.join(",")
        )
        .into_bytes();
        input.extend_from_slice(profile);
        let key = Digest::of(&input);
        let dir = self.paths.run_root.join("cache");
        let path = dir.join(format!("seccomp-{}.json", key.hex()));
        // Checked to be JSON (the runtime parses it).
        if let Some(raw) = std::fs::read_to_string(&path)
            .ok()
            .and_then(|t| serde_json::value::RawValue::from_string(t).ok())
        {
            host.seccomp = Seccomp::Converted(raw);
            return Ok(());
        }
        let v = spec::seccomp_object(profile, &caps, kernel)?;
        let raw = serde_json::value::to_raw_value(&v)
            .map_err(|e| Error::Runtime(format!("serialise the seccomp profile: {e}")))?;
        let _ = berth_sys::fs::create_private_dir_all(&dir);
        // Only saves time: a run root that cannot take it does without.
        let _ = berth_sys::fs::replace_file(&path, raw.get().as_bytes(), 0o600);
        host.seccomp = Seccomp::Converted(raw);
        Ok(())
    }

    /// Starts the container's monitor, waiting for GO; the session holds
    /// its pipes.
    fn spawn_monitor(
        &self,
        rec: &Record,
        dir: &Path,
        run_dir: &Path,
        pre: Option<PreMonitor>,
        hold_ports: Vec<berth_monitor_proto::config::HeldPort>,
    ) -> Result<(Session, Option<std::process::Child>)> {
        let c = &rec.spec;
        let runtime = self.host.find_program(&c.runtime)?;
        let runtime_root = self.paths.runtime_root(&runtime);
        std::fs::create_dir_all(&runtime_root)
            .map_err(io(format!("create {}", runtime_root.display())))?;
        let berth = std::env::current_exe().map_err(io("find the berth binary"))?;
        let monitor = self.host.find_program("berth-monitor")?;
        let mcfg = MonitorConfig {
            id: rec.id.clone(),
            bundle: run_dir.to_path_buf(),
            runtime: runtime.clone(),
            runtime_args: vec!["--root".into(), runtime_root.to_string_lossy().into_owned()],
            builtin_root: same_build(&c.runtime, &runtime, &monitor).then(|| runtime_root.clone()),
            run_dir: run_dir.to_path_buf(),
            persist_dir: dir.to_path_buf(),
            log_driver: c.logging.driver.to_monitor(),
            log_path: dir.join("ctr.log"),
            log_max_size: c.logging.max_size,
            log_max_files: c.logging.max_files,
            terminal: c.process.tty,
            stdin: c.process.stdin,
            restart: c.lifecycle.restart.to_monitor(),
            detach_keys: berth_monitor_proto::config::parse_detach_keys(
                c.process.detach_keys.as_deref().unwrap_or("ctrl-p,ctrl-q"),
            )
            .map_err(|e| option("--detach-keys", e))?,
            exit_command: vec![
                berth.to_string_lossy().into_owned(),
                "--root".into(),
                self.paths.root.to_string_lossy().into_owned(),
                "--run-root".into(),
                self.paths.run_root.to_string_lossy().into_owned(),
                "container".into(),
                "cleanup".into(),
                rec.id.clone(),
            ],
            trash: vec![self.paths.trash(&rec.id), self.paths.run_trash(&rec.id)],
            wait_go: true,
            hold_ports,
            probes: crate::health::monitor_probes(&c.health, run_dir, c.process.stop_timeout),
            event_command: crate::health::event_command(&berth, &self.paths, &rec.id),
            stop_command: crate::health::stop_command(c, &berth, &self.paths, &rec.id),
            probe_helper: crate::health::probe_helper(&c.health, &berth),
            // The kubelet's CrashLoopBackOff for a kube pod's containers
            // (a crash loop, a failed startup or liveness probe), and for
            // any container with a liveness probe; Docker's short one
            // otherwise.
            kube_backoff: c.health.probes.iter().any(|p| p.kind == "liveness")
                || c.metadata
                    .labels
                    .contains_key(crate::kube_dns::LABEL_KUBE_CONTAINER),
            // Only a probe's graceful stop needs it (the image's config is
            // not read for other containers).
            stop_signal: if c.health.probes.is_empty() && c.health.on_failure != "restart" {
                0
            } else {
                self.stop_signal_of(rec)
            },
        };
        let text = mcfg
            .to_text()
            .map_err(|e| Error::Runtime(format!("container {}: {e}", rec.name)))?;
        let _ = std::fs::remove_file(dir.join("exit"));
        let Launched {
            to_monitor,
            from_monitor,
            pid: monitor_pid,
            child,
        } = self.host.spawn_monitor(
            &MonitorLaunch {
                monitor: &monitor,
                runtime: &runtime,
                config: &mcfg,
                text: &text,
                run_dir,
                run_root: &self.paths.run_root,
            },
            pre,
        )?;
        Ok((
            Session {
                to_monitor,
                from_monitor,
                monitor_pid,
                decoder: Decoder::default(),
                early: Default::default(),
                monitor_log: run_dir.join("monitor.log"),
                infra: None,
            },
            child,
        ))
    }

    /// Connects to a running container's monitor (`berth attach`).
    pub fn attach(&self, what: &str) -> Result<(Record, Session)> {
        let rec = self.get(what)?;
        if !matches!(rec.state.status, Status::Running | Status::Restarting) {
            return Err(Error::NotRunning {
                container: rec.name,
                op: crate::error::Operation::Attach,
            });
        }
        let sock = self.paths.run_dir(&rec.id).join("attach.sock");
        let fd = berth_sys::socket::connect_unix(&sock).map_err(io(format!(
            "connect to container {}'s monitor ({})",
            rec.name,
            sock.display()
        )))?;
        let w = fd.try_clone().map_err(io("dup the attach socket"))?;
        let monitor_pid = rec.state.monitor_pid;
        let monitor_log = self.paths.run_dir(&rec.id).join("monitor.log");
        Ok((
            rec,
            Session {
                to_monitor: std::fs::File::from(w),
                from_monitor: std::fs::File::from(fd),
                monitor_pid,
                decoder: Decoder::default(),
                early: Default::default(),
                monitor_log,
                infra: None,
            },
        ))
    }

    /// The monitor's live state, if its run directory has one.
    pub fn monitor_state(&self, id: &str) -> Option<MonitorState> {
        let text = std::fs::read_to_string(self.paths.run_dir(id).join("state")).ok()?;
        MonitorState::parse(&text).ok()
    }

    /// Reconciles the record with reality (taking the container's lock).
    pub fn refresh(&self, rec: Record) -> Result<Record> {
        if !self.may_be_stale(&rec) {
            return Ok(rec);
        }
        let _lock = self.lock(&rec.id)?;
        match self.records.get(&rec.id)? {
            Some(r) => self.refresh_locked(r),
            None => Err(Error::NoSuchContainer(rec.id)),
        }
    }

    /// Whether `rec` may differ from the truth (a live container, or a
    /// start killed half-way): what [`Engine::refresh`] reconciles.
    fn may_be_stale(&self, rec: &Record) -> bool {
        matches!(rec.state.status, Status::Running | Status::Restarting)
            || (rec.state.status == Status::Created && self.paths.run_dir(&rec.id).exists())
    }

    /// [`Engine::refresh`], and for a container whose live monitor is
    /// still starting it (recorded running, no process yet: a start whose
    /// client was killed after GO leaves the monitor to finish it), waits
    /// for the monitor to name its process or give up. What needs the
    /// process (joining its namespaces, copying into it) calls this, so a
    /// start cut short is reconciled by the next command instead of being
    /// taken for a container that is not running. Bounded by
    /// [`START_SETTLE`]; the lock is not held while waiting (the monitor's
    /// exit command takes it).
    pub(crate) fn settle(&self, rec: Record) -> Result<Record> {
        let deadline = Instant::now() + START_SETTLE;
        let mut rec = self.refresh(rec)?;
        while self.starting(&rec) {
            if Instant::now() >= deadline {
                return Err(Error::Conflict(format!(
                    "container {}: its monitor (pid {}) has not started it after {} s; see {}",
                    rec.name,
                    rec.state.monitor_pid,
                    START_SETTLE.as_secs(),
                    self.paths.run_dir(&rec.id).join("monitor.log").display()
                )));
            }
            std::thread::sleep(Duration::from_millis(2));
            rec = self.refresh(rec)?;
        }
        Ok(rec)
    }

    /// Recorded running with no process yet while its monitor lives: the
    /// monitor is starting it.
    fn starting(&self, rec: &Record) -> bool {
        rec.state.status == Status::Running
            && rec.state.pid <= 0
            && rec.state.boot_id == paths::boot_id()
            && is_monitor(rec.state.monitor_pid)
    }

    /// Reconciles under the lock: the monitor's state file wins; a monitor
    /// that is gone (kill -9, reboot, wiped /run) leaves a container that
    /// is either still running unmonitored or ended with an unknown status.
    pub(crate) fn refresh_locked(&self, mut rec: Record) -> Result<Record> {
        if rec.state.status == Status::Created {
            // A `start` killed after it had started the monitor but before
            // it recorded it (the lock held here means no start is running):
            // the monitor's state file tells; adopt it.
            match self.monitor_state(&rec.id) {
                Some(ms) if is_monitor(ms.monitor_pid) || ms.status == MonitorStatus::Exited => {
                    rec.state.status = Status::Running;
                    rec.state.monitor_pid = ms.monitor_pid;
                    rec.state.boot_id = paths::boot_id();
                    rec.state.started = ms.started;
                }
                _ => {
                    // What a start left half-made, with no monitor that got
                    // as far as its state file (one that had not yet gives
                    // up without its bundle).
                    self.host.unmount(&self.paths.rootfs(&rec.id), None)?;
                    remove_run_dir(&self.paths.run_dir(&rec.id))?;
                    return Ok(rec);
                }
            }
        }
        if !matches!(rec.state.status, Status::Running | Status::Restarting) {
            return Ok(rec);
        }
        let same_boot = rec.state.boot_id == paths::boot_id();
        let ms = if same_boot {
            self.monitor_state(&rec.id)
        } else {
            None
        };
        let monitor_alive =
            same_boot && alive(rec.state.monitor_pid) && is_monitor(rec.state.monitor_pid);
        let old = rec.state.clone();
        match ms {
            Some(ms) if ms.status != MonitorStatus::Exited && monitor_alive => {
                rec.state.status = match ms.status {
                    MonitorStatus::Restarting => Status::Restarting,
                    _ => Status::Running,
                };
                rec.state.pid = ms.pid;
                if ms.started > 0 {
                    rec.state.started = ms.started;
                }
                rec.state.restarts = ms.restarts;
                rec.state.exit_code = ms.exit_code;
                rec.state.finished = ms.finished;
                rec.state.log_dropped = ms.log_dropped;
                rec.state.attach_dropped = ms.attach_dropped;
            }
            Some(ms) if ms.status == MonitorStatus::Exited => {
                if monitor_alive {
                    // Ended; the monitor is finishing (its exit command
                    // will record this too).
                    self.apply_exit(&mut rec, &ms);
                } else {
                    self.apply_exit(&mut rec, &ms);
                    self.finalize(&mut rec)?;
                }
            }
            Some(ms) => {
                // The monitor died (kill -9) while the container ran, or
                // between two runs.
                if let Some(pid) = self.runs_unmonitored(&rec, &ms) {
                    rec.state.status = Status::Running;
                    rec.state.pid = pid;
                    rec.state.error = "the container's monitor is gone: its output is no longer logged and its exit status will be unknown".into();
                } else {
                    rec.state.status = Status::Exited;
                    rec.state.finished = now_nanos();
                    // Known only when berth itself sent the SIGKILL (see
                    // `kill`): 128 + 9, as the monitor would have recorded.
                    let killed = std::fs::read_to_string(self.paths.run_dir(&rec.id).join(KILLED))
                        .is_ok_and(|s| s.trim() == libc::SIGKILL.to_string());
                    if killed {
                        rec.state.exit_code = 128 + libc::SIGKILL;
                        rec.state.error =
                            "the container's monitor was killed; berth killed the container (SIGKILL)".into();
                    } else {
                        rec.state.exit_code = 255;
                        rec.state.error =
                            "the container's monitor was killed; its exit status is unknown".into();
                    }
                    self.finalize(&mut rec)?;
                }
            }
            None if monitor_alive => {
                // Starting: the monitor has not written its state yet.
            }
            None => {
                // After a reboot (or /run wiped): the final state may have
                // reached the persistent copy.
                let persisted = std::fs::read_to_string(self.paths.container(&rec.id).join("exit"))
                    .ok()
                    .and_then(|t| MonitorState::parse(&t).ok());
                match persisted {
                    Some(ms) if ms.status == MonitorStatus::Exited => {
                        self.apply_exit(&mut rec, &ms)
                    }
                    _ => {
                        rec.state.status = Status::Exited;
                        rec.state.exit_code = 255;
                        rec.state.finished = now_nanos();
                        rec.state.error = "the container's state was lost (the machine restarted or the run directory was removed)".into();
                    }
                }
                self.finalize(&mut rec)?;
            }
        }
        if rec.state != old && self.records.get(&rec.id)?.is_some() {
            self.records.set_state(&rec.id, &rec.state)?;
            self.ended_events(&rec, &old);
        }
        if rec.state.status == Status::Exited && rec.spec.lifecycle.auto_remove && !monitor_alive {
            self.remove_locked(&rec, true, false)?;
        }
        Ok(rec)
    }

    /// The init's pid if the container whose monitor is gone (its last
    /// state `ms`) still runs. The monitor names the init by its pid and
    /// start time: a live process with both is the init, and no runtime
    /// process is needed (this runs for `ps`, under the container's lock).
    /// A monitor between runs leaves no pid: nothing runs.
    ///
    /// A state file of an older monitor has no start time, and may keep
    /// the pid of a run that ended: the runtime decides, which knows its
    /// init by more than a pid (bounded by [`crate::runtime::STATE_DEADLINE`]).
    /// Only when it cannot answer (hung, gone) does the pid alone decide:
    /// taken for ended, the container would be deleted (`delete --force`
    /// kills what runs) and its root unmounted, which cannot be undone;
    /// taken for running, the next command asks again.
    fn runs_unmonitored(&self, rec: &Record, ms: &MonitorState) -> Option<i32> {
        use crate::runtime::{RuntimeError, Status as Rt};
        if ms.pid <= 0 {
            return None;
        }
        if ms.start_time > 0 {
            let same = berth_sys::process::proc_stat(ms.pid)
                .is_some_and(|s| s.state != 'Z' && s.start_time == ms.start_time);
            return same.then_some(ms.pid);
        }
        match self.oci.state(self.target(rec)) {
            Ok(s) if matches!(s.status, Rt::Running | Rt::Paused) => {
                Some(if s.pid > 0 { s.pid } else { ms.pid })
            }
            // Stopped; created and never started (by a monitor now gone);
            // or no longer known to the runtime (deleted between runs).
            Ok(_) | Err(RuntimeError::Failed { .. }) => None,
            Err(_) => alive(ms.pid).then_some(ms.pid),
        }
    }

    /// The events of a container whose record goes from running (`old`)
    /// to `rec`: for each restart by its restart policy the run's `die`
    /// and the next `start` (as Docker's), and when it ended (or waits to
    /// restart) `oom` and `die`. Recorded once, by whoever makes that
    /// change under the container's lock (the monitor's exit command, or
    /// the next command that finds the container changed): what `old`
    /// already showed was recorded by whoever wrote it.
    fn ended_events(&self, rec: &Record, old: &RunState) {
        if !matches!(old.status, Status::Running | Status::Restarting) {
            return;
        }
        use crate::events::RunEvent;
        let ended = !matches!(rec.state.status, Status::Running | Status::Restarting);
        for e in crate::events::run_events(old, &rec.state) {
            match e {
                RunEvent::Start => self.container_event(rec, "start", &[]),
                // Only the last run's exit code is known.
                RunEvent::Die { last: true } => {
                    if ended && rec.state.oom_killed {
                        self.container_event(rec, "oom", &[]);
                    }
                    let code = rec.state.exit_code.to_string();
                    self.container_event(rec, "die", &[("exitCode", code)]);
                }
                RunEvent::Die { last: false } => self.container_event(rec, "die", &[]),
            }
        }
    }

    fn apply_exit(&self, rec: &mut Record, ms: &MonitorState) {
        // A container that never started stays "created", as in Docker.
        rec.state.status = if !ms.error.is_empty() && ms.started == 0 {
            Status::Created
        } else {
            Status::Exited
        };
        rec.state.pid = 0;
        rec.state.exit_code = ms.exit_code;
        rec.state.finished = if ms.finished > 0 {
            ms.finished
        } else {
            now_nanos()
        };
        rec.state.oom_killed = ms.oom_killed;
        rec.state.restarts = ms.restarts;
        rec.state.error = ms.error.clone();
        rec.state.log_dropped = ms.log_dropped;
        rec.state.attach_dropped = ms.attach_dropped;
    }

    /// After the container ended: the runtime forgets it, the root is
    /// unmounted, the run directory goes.
    fn finalize(&self, rec: &mut Record) -> Result<()> {
        self.finalize_with(rec, true, false)
    }

    /// `runtime_delete`: false when the monitor has already deleted it.
    /// `to_trash`: move the run directory to the trash for the monitor to
    /// delete (see [`Engine::cleanup_before_monitor`]).
    fn finalize_with(&self, rec: &mut Record, runtime_delete: bool, to_trash: bool) -> Result<()> {
        if runtime_delete {
            // A runtime that lost its state (killed while it made the
            // container, or its run directory wiped) cannot remove the
            // cgroup it made, nor can one whose delete failed: berth does.
            let known = self
                .paths
                .runtime_root(Path::new(&rec.spec.runtime))
                .join(&rec.id)
                .exists();
            if self.oci.delete(self.target(rec)).is_err() || !known {
                sweep_cgroup(rec);
            }
        }
        // An `--rm` container's client leaves the port elements to the
        // monitor's exit command, which finds the record gone.
        self.teardown_network(&rec.id, to_trash && rec.spec.lifecycle.auto_remove);
        // A pod infra's bound namespaces (members that run keep theirs),
        // and the /dev/shm an `--ipc container:` run joined.
        self.unbind_pod_namespaces(&rec.id);
        self.release_joined_shm(&rec.id);
        let run = self.paths.run_dir(&rec.id);
        let run_trash = self.paths.run_trash(&rec.id);
        // The run directory first, so that the mount point can follow it
        // into the trash once unmounted.
        let trashed = to_trash && move_to(&run, &run_trash);
        let mount_trash = run_trash.join(crate::paths::ROOTFS_IN_TRASH);
        self.host.unmount(
            &self.paths.rootfs(&rec.id),
            trashed.then_some(mount_trash.as_path()),
        )?;
        if !trashed {
            remove_run_dir(&run)?;
        }
        rec.state.pid = 0;
        rec.state.monitor_pid = 0;
        Ok(())
    }

    /// The monitor's exit command, and what a foreground `run` does itself:
    /// records the end, unmounts, and removes an `--rm` container.
    pub fn cleanup(&self, id: &str) -> Result<()> {
        self.cleanup_with(id, false)
    }

    /// [`Engine::cleanup`] for the client that started the container and
    /// whose monitor still runs: an `--rm` container's directory is moved
    /// to the trash, which the monitor empties after this client returns
    /// (freeing an upper layer's inodes on ext4 takes milliseconds).
    /// True if the monitor must still run its exit command: the container
    /// was removed, leaving its published ports' elements to it (see
    /// [`Engine::teardown_network`]).
    pub fn cleanup_before_monitor(&self, id: &str) -> Result<bool> {
        self.cleanup_with(id, true)?;
        Ok(self.left_network(id))
    }

    fn cleanup_with(&self, id: &str, to_trash: bool) -> Result<()> {
        // A monitor's exit command may come after the container was
        // removed: no lock file is made for it (the starting client knows
        // its container exists). What the removing client left to it, it
        // undoes.
        if !to_trash && self.records.get(id)?.is_none() {
            self.undo_leftover_network(id);
            return Ok(());
        }
        let _lock = self.lock(id)?;
        let Some(mut rec) = self.records.get(id)? else {
            return Ok(());
        };
        let ms = self.monitor_state(id);
        let monitor_done = ms
            .as_ref()
            .is_some_and(|m| m.status == MonitorStatus::Exited);
        let old = rec.state.clone();
        match &ms {
            Some(m) if monitor_done => self.apply_exit(&mut rec, m),
            // Still running: a stray call.
            Some(_) => return Ok(()),
            None => {}
        }
        self.ended_events(&rec, &old);
        self.finalize_with(&mut rec, !monitor_done, to_trash)?;
        if rec.spec.lifecycle.auto_remove {
            // Marks the record Removing first, then removes it: the end it
            // would record here would not outlive the next commit.
            self.remove_locked(&rec, true, to_trash)?;
        } else {
            self.records.set_state(&rec.id, &rec.state)?;
        }
        Ok(())
    }

    /// Sends `signal` to the container's init. `by_user`: restart policies
    /// stay off (as Docker does for `docker stop` and `docker kill`).
    pub fn kill(&self, what: &str, signal: i32, by_user: bool) -> Result<Record> {
        let rec = self.refresh(self.records.find(what)?)?;
        if rec.state.status != Status::Running && rec.state.status != Status::Restarting {
            return Err(Error::Conflict(format!(
                "container {} is not running",
                rec.name
            )));
        }
        if by_user {
            let _ = std::fs::write(self.paths.run_dir(&rec.id).join("stopping"), b"");
            // Kept in the record too, for after a reboot: `system boot`
            // leaves an unless-stopped container that was stopped by hand.
            if !rec.state.stopped_by_user {
                self.records.set_stopped_by_user(&rec.id, true)?;
            }
        }
        if rec.state.status == Status::Restarting {
            return Ok(rec);
        }
        if signal == libc::SIGKILL && !is_monitor(rec.state.monitor_pid) {
            // No monitor to see the end: the SIGKILL is the end (a process
            // cannot survive it), recorded as the monitor would (137).
            let _ = std::fs::write(self.paths.run_dir(&rec.id).join(KILLED), signal.to_string());
        }
        match self.oci.kill(self.target(&rec), signal) {
            Ok(()) => {
                self.container_event(&rec, "kill", &[("signal", signal.to_string())]);
                if rec.state.paused {
                    // A frozen process takes no signal until thawed (as
                    // Docker, which resumes a paused container it kills).
                    self.thaw_after_kill(&rec);
                }
            }
            Err(e @ crate::runtime::RuntimeError::Failed { .. }) => {
                // The container may have just ended on its own.
                let again = self.refresh(self.records.get(&rec.id)?.unwrap_or(rec.clone()))?;
                if again.state.status == Status::Running {
                    return Err(e.into_error(&format!("kill container {}", rec.name)));
                }
            }
            Err(e) => return Err(e.into_error(&format!("kill container {}", rec.name))),
        }
        Ok(rec)
    }

    /// Waits until the monitor of a started container is done (the
    /// container ended and was cleaned up), up to `timeout`.
    pub fn wait_monitor(&self, rec: &Record, timeout: Option<Duration>) -> Result<bool> {
        self.wait_monitor_pid(rec.state.monitor_pid, timeout)
    }

    /// A pidfd on the monitor of `rec`'s run while it lives (readable once
    /// it ends), for callers that wait without a thread of their own; None
    /// when no monitor of that run is left.
    pub fn monitor_pidfd(&self, rec: &Record) -> Option<std::os::fd::OwnedFd> {
        let pid = rec.state.monitor_pid;
        if !is_monitor(pid) {
            return None;
        }
        berth_sys::process::pidfd_open(pid).ok()
    }

    /// Waits up to `timeout` (None: for ever) for the monitor `pid` (a
    /// child or not) to end.
    pub fn wait_monitor_pid(&self, pid: i32, timeout: Option<Duration>) -> Result<bool> {
        if !is_monitor(pid) {
            return Ok(true);
        }
        let Ok(fd) = berth_sys::process::pidfd_open(pid) else {
            return Ok(true);
        };
        let ms = timeout.map_or(-1, |t| t.as_millis().min(i32::MAX as u128) as i32);
        berth_sys::process::pidfd_wait_exit(fd.as_fd(), ms)
            .map_err(io("wait for the container's monitor"))
    }

    /// The container's stop signal: its spec's, else its image's, else
    /// SIGTERM. Unknown (a record of an older berth, whose image's
    /// StopSignal was not checked at create): SIGTERM. Nothing here may
    /// keep the SIGKILL after the timeout from being sent.
    fn stop_signal_of(&self, rec: &Record) -> i32 {
        let image_sig = || {
            Digest::parse(&rec.image_id)
                .ok()
                .and_then(|d| self.image_config(&d).ok())
                .and_then(|i| i.stop_signal)
        };
        rec.spec
            .process
            .stop_signal
            .clone()
            .or_else(image_sig)
            .and_then(|s| crate::specgen::parse_signal(&s).ok())
            .unwrap_or(libc::SIGTERM)
    }

    /// `berth stop`: the stop signal, `timeout` seconds, then SIGKILL.
    pub fn stop(&self, what: &str, timeout: Option<u32>) -> Result<Record> {
        let rec = self.refresh(self.records.find(what)?)?;
        if !matches!(rec.state.status, Status::Running | Status::Restarting) {
            return Ok(rec);
        }
        let sig = self.stop_signal_of(&rec);
        let mut secs = timeout.or(rec.spec.process.stop_timeout).unwrap_or(10);
        if rec.state.status == Status::Running && rec.spec.health.pre_stop().is_some() {
            // Kubernetes: the preStop hook runs first, within the grace
            // period; what it leaves is the stop signal's (2 s at least
            // when the hook took it all, as the kubelet gives).
            let start = Instant::now();
            self.pre_stop(&rec, start + Duration::from_secs(u64::from(secs)));
            let used = start.elapsed().as_secs() as u32;
            secs = if used >= secs { 2 } else { secs - used };
        }
        let sent = match self.kill(&rec.id, sig, true) {
            Ok(_) | Err(Error::Conflict(_)) => true,
            Err(_) => false, // SIGKILL at once (an error of its own is reported)
        };
        if sent {
            if let Some(r) = self.wait_stopped(&rec, Duration::from_secs(u64::from(secs)))? {
                self.container_event(&rec, "stop", &[]);
                return Ok(r);
            }
        }
        match self.kill(&rec.id, libc::SIGKILL, true) {
            Ok(_) | Err(Error::Conflict(_)) => {}
            Err(e) => return Err(e),
        }
        match self.wait_stopped(&rec, Duration::from_secs(30))? {
            Some(r) => {
                self.container_event(&rec, "stop", &[]);
                Ok(r)
            }
            None => Err(Error::Runtime(format!(
                "container {} did not stop within 30 s of SIGKILL (a process stuck in the kernel?)",
                rec.name
            ))),
        }
    }

    /// Has the monitor run the container's preStop hook and waits for it
    /// until `deadline`. A hook that fails or outlasts the deadline is
    /// logged; the stop goes on (the kubelet's rule).
    fn pre_stop(&self, rec: &Record, deadline: Instant) {
        use berth_monitor_proto::frame;
        let ran = self.attach(&rec.id).and_then(|(_, mut s)| {
            s.send(frame::PRE_STOP_RUN, b"")?;
            loop {
                match s.next_frame_by(deadline)? {
                    Some((frame::PRE_STOP, p)) => {
                        return Ok(Some(String::from_utf8_lossy(&p).into_owned()))
                    }
                    Some(_) => {}
                    None => return Ok(None),
                }
            }
        });
        match ran {
            Ok(Some(r)) if r == "ok" || r == "none" => {}
            Ok(Some(why)) => eprintln!(
                "berth: warning: container {}: its preStop hook failed: {why}",
                rec.name
            ),
            Ok(None) => eprintln!(
                "berth: warning: container {}: its preStop hook did not end within the grace period; stopping it",
                rec.name
            ),
            Err(e) => eprintln!(
                "berth: warning: container {}: run its preStop hook: {e}",
                rec.name
            ),
        }
    }

    /// Waits up to `timeout` for the container to stop: on its monitor when
    /// it has one, else (its monitor was killed) on its pid. The record as
    /// it then is, or None on timeout.
    pub(crate) fn wait_stopped(&self, rec: &Record, timeout: Duration) -> Result<Option<Record>> {
        let deadline = Instant::now() + timeout;
        let mut nap = Duration::from_millis(10);
        loop {
            let r = match self.records.get(&rec.id)? {
                Some(r) => self.refresh(r)?,
                None => return Ok(Some(rec.clone())),
            };
            if !matches!(r.state.status, Status::Running | Status::Restarting) {
                // Ended; its monitor may still be cleaning up (unmounting):
                // done when the monitor is.
                if is_monitor(r.state.monitor_pid) {
                    self.wait_monitor(&r, Some(Duration::from_secs(30)))?;
                    if let Some(again) = self.records.get(&rec.id)? {
                        return Ok(Some(self.refresh(again)?));
                    }
                }
                return Ok(Some(r));
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Ok(None);
            }
            if is_monitor(r.state.monitor_pid) {
                self.wait_monitor(&r, Some(left))?;
            } else if let Some(fd) = self.init_pidfd(&r) {
                let ms = left.as_millis().min(i32::MAX as u128) as i32;
                let _ = berth_sys::process::pidfd_wait_exit(fd.as_fd(), ms);
            } else {
                // Each round may ask the runtime (an older monitor's
                // state): not every 10 ms for the whole timeout.
                std::thread::sleep(nap.min(left));
                nap = (nap * 2).min(Duration::from_millis(500));
            }
        }
    }

    /// A pidfd on the init of `rec`, a container whose monitor is gone;
    /// None if that process is gone. The pidfd is opened first, then the
    /// process checked against the start time its monitor recorded (when
    /// it did): the pid may have been reused in between.
    fn init_pidfd(&self, rec: &Record) -> Option<OwnedFd> {
        let fd = berth_sys::process::pidfd_open(rec.state.pid).ok()?;
        let recorded = self.monitor_state(&rec.id).map_or(0, |ms| {
            if ms.pid == rec.state.pid {
                ms.start_time
            } else {
                0
            }
        });
        let stat = berth_sys::process::proc_stat(rec.state.pid)?;
        (recorded == 0 || stat.start_time == recorded).then_some(fd)
    }

    /// The containers a reboot stopped that their restart policy brings
    /// back, as Docker's daemon does when it starts: `always`, and
    /// `unless-stopped` unless stopped with `stop` or `kill`. (Records are
    /// reconciled first: after a reboot, none is running.)
    pub fn boot_candidates(&self) -> Result<Vec<Record>> {
        Ok(self
            .list()?
            .into_iter()
            .filter(|r| {
                let policy = r.spec.lifecycle.restart.name();
                !matches!(
                    r.state.status,
                    Status::Running | Status::Restarting | Status::Removing
                ) && (policy == "always"
                    || (policy == "unless-stopped" && !r.state.stopped_by_user))
            })
            .collect())
    }

    /// `berth rm`: a running container needs `force` (it is killed first).
    pub fn remove(&self, what: &str, force: bool, volumes: bool) -> Result<Record> {
        let rec = self.refresh(self.records.find(what)?)?;
        if let Some(pod) = self.infra_of_live_pod(&rec) {
            return Err(Error::Conflict(format!(
                "container {} is the infra container of pod {pod}: it goes with the pod (berth pod rm {pod})",
                rec.name
            )));
        }
        if matches!(rec.state.status, Status::Running | Status::Restarting) {
            if !force {
                return Err(Error::Running(rec.name));
            }
            let _ = self.kill(&rec.id, libc::SIGKILL, true);
            self.wait_monitor(&rec, Some(Duration::from_secs(30)))?;
        }
        let _lock = self.lock(&rec.id)?;
        let Some(rec) = self.records.get(&rec.id)? else {
            return Ok(rec);
        };
        let mut rec = self.refresh_locked(rec)?;
        if self.records.get(&rec.id)?.is_none() {
            return Ok(rec);
        }
        if matches!(rec.state.status, Status::Running | Status::Restarting) {
            self.finalize(&mut rec)?;
        }
        self.remove_locked(&rec, volumes, false)?;
        Ok(rec)
    }

    /// Removes an ended container: its mount, directories, record, image
    /// hold and (with `volumes`) its anonymous volumes.
    /// `to_trash`: move the container's directory to the trash rather than
    /// delete it (see [`Engine::cleanup_before_monitor`]).
    fn remove_locked(&self, rec: &Record, volumes: bool, to_trash: bool) -> Result<()> {
        if !to_trash {
            // A removal cut short is finished by `berth rm`. (The starting
            // client's removal needs no mark: if it is cut short, its
            // monitor runs `container cleanup`, which finishes it.)
            let mut r = rec.clone();
            r.state.status = Status::Removing;
            self.records.set_state(&rec.id, &r.state)?;
        }
        let dir = self.paths.container(&rec.id);
        self.host.unmount(&self.paths.rootfs(&rec.id), None)?;
        let run = self.paths.run_dir(&rec.id);
        if run.exists() {
            let _ = remove_run_dir(&run);
        }
        let vols = self.records.container_volumes(&rec.id)?;
        // The record and the image hold go together.
        self.images
            .release_with(&format!("container:{}", rec.id), |db| {
                crate::records::Records::remove_in(db, &rec.id)
            })?;
        self.teardown_network(&rec.id, to_trash);
        self.release_endpoints_of(rec);
        if volumes {
            for v in vols {
                if self.records.volume(&v).is_ok_and(|v| v.anonymous) {
                    let _ = self.remove_volume(&v);
                }
            }
        }
        // Layers a killed mount left attached in it are detached first
        // (remove_all refuses to cross into them, and so must the trash),
        // and so are its pinned subpaths.
        crate::rootfs::detach_idmapped(&dir);
        crate::subpath::detach(&dir);
        if dir.exists() && !(to_trash && self.move_to_trash(&rec.id)) {
            berth_image::remove_all(&dir)?;
        }
        // Held by us: a waiter finds the record gone once it gets it.
        let _ = std::fs::remove_file(self.paths.lock(&rec.id));
        self.container_event(rec, "destroy", &[]);
        Ok(())
    }

    /// Renames the container's directory into the trash; false if it could
    /// not (it is then deleted in place).
    fn move_to_trash(&self, id: &str) -> bool {
        move_to(&self.paths.container(id), &self.paths.trash(id))
    }

    /// Every container, reconciled.
    pub fn list(&self) -> Result<Vec<Record>> {
        let mut out = Vec::new();
        for r in self.records.all()? {
            // A record nothing reconciles is listed as read: no second
            // query for it.
            if !self.may_be_stale(&r) {
                out.push(r);
                continue;
            }
            match self.refresh(r) {
                Ok(r) => {
                    if self.records.get(&r.id)?.is_some() {
                        out.push(r)
                    }
                }
                Err(Error::NoSuchContainer(_)) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(out)
    }

    /// Finds and reconciles one container.
    pub fn get(&self, what: &str) -> Result<Record> {
        let r = self.refresh(self.records.find(what)?)?;
        match self.records.get(&r.id)? {
            Some(_) => Ok(r),
            None => Err(Error::NoSuchContainer(what.to_string())),
        }
    }

    /// The command the container runs (the image's Entrypoint and Cmd with
    /// the container's overrides).
    pub fn command(&self, r: &Record) -> Result<Vec<String>> {
        let image = self.image_config(&Digest::parse(&r.image_id)?)?;
        spec::command(&image, &r.spec, &Resolved::default())
    }

    /// The container's mounts, as `inspect` shows them.
    pub fn mounts(&self, r: &Record) -> Vec<MountView> {
        let image = Digest::parse(&r.image_id)
            .ok()
            .and_then(|d| self.image_config(&d).ok())
            .unwrap_or_default();
        let vols = self.volume_mounts(r, &image);
        let volume = |name: &str, dest: &str, rw: bool| MountView {
            kind: "volume",
            name: name.to_string(),
            source: self.paths.volume_data(name).display().to_string(),
            destination: dest.to_string(),
            rw,
            propagation: String::new(),
        };
        let mut out = Vec::new();
        for m in &r.spec.storage.mounts {
            match m.kind {
                MountType::Bind => out.push(MountView {
                    kind: "bind",
                    name: String::new(),
                    source: m.source.clone(),
                    destination: m.destination.clone(),
                    rw: !m.readonly,
                    propagation: m.propagation.clone().unwrap_or_else(|| "rprivate".into()),
                }),
                MountType::Tmpfs => out.push(MountView {
                    kind: "tmpfs",
                    name: String::new(),
                    source: String::new(),
                    destination: m.destination.clone(),
                    rw: !m.readonly,
                    propagation: String::new(),
                }),
                MountType::Volume => {
                    if let Some((n, _, _)) = vols.iter().find(|(_, _, d)| *d == m.destination) {
                        out.push(volume(n, &m.destination, !m.readonly));
                    }
                }
            }
        }
        for (n, anon, d) in &vols {
            if *anon && !r.spec.storage.mounts.iter().any(|m| m.destination == *d) {
                out.push(volume(n, d, true));
            }
        }
        out
    }

    /// Waits until the container is not running; returns its exit code.
    pub fn wait(&self, what: &str) -> Result<i32> {
        let rec = self.get(what)?;
        loop {
            if matches!(rec.state.status, Status::Running | Status::Restarting) {
                self.wait_monitor(&rec, None)?;
            }
            match self.records.get(&rec.id)? {
                Some(r) => {
                    let r = self.refresh(r)?;
                    match r.state.status {
                        Status::Running | Status::Restarting => {
                            std::thread::sleep(Duration::from_millis(50))
                        }
                        _ => return Ok(r.state.exit_code),
                    }
                }
                // Removed (--rm): the exit code is in the exit file if the
                // monitor wrote one before.
                None => return Ok(rec.state.exit_code),
            }
        }
    }
}

/// Renames `from` to `to` (making `to`'s parent, owner-only); false if it
/// could not.
fn move_to(from: &Path, to: &Path) -> bool {
    if let Some(parent) = to.parent() {
        let _ = berth_sys::fs::create_private_dir_all(parent);
    }
    std::fs::rename(from, to).is_ok()
}

/// Removes a run directory (files only, never a mount), retrying while a
/// finishing monitor may still add a file to it.
fn remove_run_dir(run: &Path) -> Result<()> {
    let mut tries = 0;
    loop {
        match std::fs::remove_dir_all(run) {
            Ok(()) => return Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) if tries < 20 => {
                tries += 1;
                let _ = e;
                std::thread::sleep(Duration::from_millis(5));
            }
            Err(e) => return Err(io(format!("remove {}", run.display()))(e)),
        }
    }
}

/// This process's capability bounding set (what it can pass on).
pub(crate) fn cap_bound() -> Option<u64> {
    // Read once per process: a start reads it twice (the probe at create,
    // then the spec), and /proc/self/status is long to make.
    static BOUND: std::sync::OnceLock<Option<u64>> = std::sync::OnceLock::new();
    *BOUND.get_or_init(|| {
        std::fs::read_to_string("/proc/self/status")
            .ok()
            .and_then(|t| {
                t.lines()
                    .find_map(|l| l.strip_prefix("CapBnd:"))
                    .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
            })
    })
}

/// Docker's 1048576 open files, or this process's hard limit when it may
/// not raise limits (no CAP_SYS_RESOURCE, as in some VMs and rootless).
fn default_nofile() -> u64 {
    const CAP_SYS_RESOURCE: u64 = 1 << 24;
    let may_raise = berth_sys::process::capget().is_ok_and(|c| c.effective & CAP_SYS_RESOURCE != 0);
    let nr_open = std::fs::read_to_string("/proc/sys/fs/nr_open")
        .ok()
        .and_then(|s| s.trim().parse::<u64>().ok())
        .unwrap_or(1_048_576);
    let want = 1_048_576u64.min(nr_open);
    if may_raise {
        return want;
    }
    let mut rl = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: rl is a valid out pointer.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut rl) } != 0 {
        return want;
    }
    want.min(rl.rlim_max)
}

fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "localhost".into())
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_own_line_of_etc_hosts_has_the_full_name_then_the_short_one() {
        use super::hosts_names;
        assert_eq!(hosts_names("h1", None), "h1");
        assert_eq!(hosts_names("h1", Some("")), "h1");
        assert_eq!(hosts_names("h1", Some("ex.org")), "h1.ex.org h1");
        assert_eq!(hosts_names("h1.ex.org", None), "h1.ex.org h1");
        assert_eq!(hosts_names("h1.ex", Some("org")), "h1.ex.org h1");
    }
}
