//! The lifecycle operations: create, start, run, state, kill, delete, list.
//! This is what the CLI calls; see docs/ARCHITECTURE.md for the walk-through.

use crate::channel::{Channel, Msg};
use crate::config;
use crate::error::{Context, Error, Result};
use crate::hooks;
use crate::init::{self, InitArgs};
use crate::state::{self, ContainerDir, Kept, OciState, Record, Status};
use berth_cgroups::{CgroupsPath, Layout, Manager, Version};
use berth_sys::fs as sfs;
use berth_sys::process as sp;
use oci_spec::runtime::Spec;
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};

/// Options of `create` and `run`.
#[derive(Debug, Clone, Default)]
pub struct CreateOptions {
    pub id: String,
    pub bundle: PathBuf,
    pub root: PathBuf,
    pub pid_file: Option<PathBuf>,
    pub console_socket: Option<PathBuf>,
    pub no_pivot: bool,
    pub no_new_keyring: bool,
    pub preserve_fds: u32,
    pub systemd_cgroup: bool,
    /// Running without privilege over the host (`--rootless`): a cgroup
    /// the user may not create is skipped rather than fatal.
    pub rootless: bool,
}

/// Options of `run` beyond those of `create`.
#[derive(Debug, Clone, Copy, Default)]
pub struct RunOptions {
    pub detach: bool,
    pub keep: bool,
}

/// A container this process has just created, still connected to its init.
struct Launched {
    dir: ContainerDir,
    rec: Record,
    chan: Channel,
    pidfd: OwnedFd,
}

/// Undoes a half-done create on any error: kills the child, removes the
/// cgroup and the state directory, and runs poststop hooks if create hooks
/// had started (the spec's "continue the lifecycle at step 12").
struct Cleanup {
    armed: bool,
    pids: Vec<i32>,
    cgroup: Option<Manager>,
    dir: Option<PathBuf>,
    pid_file: Option<PathBuf>,
    poststop: Option<(Vec<oci_spec::runtime::Hook>, OciState)>,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        for &pid in &self.pids {
            let _ = sp::kill(pid, libc::SIGKILL);
            let _ = sp::waitpid(pid);
        }
        if let Some(cg) = &self.cgroup {
            if let Err(e) = remove_cgroup(cg) {
                tracing::warn!("cleaning up after a failed create: {e}");
            }
        }
        if let Some(d) = &self.dir {
            let _ = std::fs::remove_dir_all(d);
        }
        if let Some(p) = &self.pid_file {
            let _ = std::fs::remove_file(p);
        }
        if let Some((h, st)) = &self.poststop {
            hooks::run_all_warn("poststop", h, st);
        }
    }
}

/// Kills whatever is left in the cgroup (processes outside the init's pid
/// namespace, or a container without one), then removes the cgroup.
fn remove_cgroup(cg: &Manager) -> berth_cgroups::Result<()> {
    cg.kill_all();
    cg.destroy()
}

/// `create`: sets the container up and leaves its init waiting for `start`.
pub fn create(opts: &CreateOptions) -> Result<()> {
    launch(opts, false, None, None).map(|_| ())
}

/// `console_pair`: for a foreground `run` without --console-socket, our
/// end of a socket pair on which the init sends the pty master.
fn launch(
    opts: &CreateOptions,
    run: bool,
    sigmask: Option<libc::sigset_t>,
    console_pair: Option<OwnedFd>,
) -> Result<Launched> {
    state::validate_id(&opts.id)?;
    let bundle = std::fs::canonicalize(&opts.bundle)
        .with_ctx(|| format!("bundle {}", opts.bundle.display()))?;
    let spec = config::load(&bundle)?;
    config::validate(&spec)?;
    let root_path = spec
        .root()
        .as_ref()
        .map(|r| r.path().clone())
        .unwrap_or_default();
    let rootfs = std::fs::canonicalize(bundle.join(&root_path))
        .with_ctx(|| format!("root.path {} (the rootfs must exist)", root_path.display()))?;
    if !rootfs.is_dir() {
        return Err(crate::error::config(
            "root.path",
            format!("{} is not a directory", rootfs.display()),
        ));
    }
    let ns = config::namespaces(&spec);
    let process = spec
        .process()
        .as_ref()
        .ok_or_else(|| crate::error::config("process", "is required"))?;
    let terminal = process.terminal() == Some(true);
    if terminal && opts.console_socket.is_none() && console_pair.is_none() {
        return Err(Error::Usage(
            "process.terminal is true: pass --console-socket (or set process.terminal to false to keep the caller's stdio)".into(),
        ));
    }

    let dir = ContainerDir::create(&opts.root, &opts.id)?;
    let mut cleanup = Cleanup {
        armed: true,
        pids: Vec::new(),
        cgroup: None,
        dir: Some(dir.path.clone()),
        pid_file: None,
        poststop: None,
    };
    let mut rec = Record {
        oci_version: spec.version().clone(),
        id: opts.id.clone(),
        status: Status::Creating,
        pid: 0,
        pid_start: 0,
        bundle: bundle.clone(),
        rootfs: rootfs.clone(),
        created: state::now_rfc3339(),
        owner: owner_name(),
        annotations: spec.annotations().clone().unwrap_or_default(),
        cgroup: None,
        hooks: spec.hooks().clone(),
        own_pid_ns: ns.has_new(libc::CLONE_NEWPID),
        process: spec.process().as_ref().map(Kept::new).transpose()?,
        seccomp: spec
            .linux()
            .as_ref()
            .and_then(|l| l.seccomp().as_ref())
            .map(Kept::new)
            .transpose()?,
        personality: spec.linux().as_ref().and_then(|l| l.personality().clone()),
    };
    dir.save(&rec)?;

    let fifo = if run {
        None
    } else {
        // The init opens it for writing after it has become the process's
        // user, which need not be root nor hold CAP_DAC_OVERRIDE: writable
        // by all (runc's 0622), while the state directory (0700) keeps
        // everyone else from reaching it by path; the init reopens it from
        // an fd it inherited.
        sfs::mkfifo(&dir.fifo(), 0o622).ctx("create exec.fifo")?;
        // mkfifo(3) bends the mode by the umask.
        std::fs::set_permissions(
            dir.fifo(),
            std::os::unix::fs::PermissionsExt::from_mode(0o622),
        )
        .ctx("set the mode of exec.fifo")?;
        let fd = sfs::open(&dir.fifo(), libc::O_PATH, 0).ctx("open exec.fifo")?;
        if ns.has_new(libc::CLONE_NEWUSER) {
            let (uid, gid) = mapped_root(&spec);
            sfs::fchown_fd(fd.as_fd(), uid, gid).ctx("chown exec.fifo to the container's root")?;
        }
        Some(fd)
    };

    if opts.systemd_cgroup {
        tracing::info!("--systemd-cgroup: no systemd is managing this host's cgroups here; using cgroupfs with systemd's path layout");
    }
    let cg_path_cfg = spec
        .linux()
        .as_ref()
        .and_then(|l| l.cgroups_path().as_ref())
        .map(|p| p.to_string_lossy().into_owned());
    let cg_path = CgroupsPath::parse(cg_path_cfg.as_deref(), &opts.id, opts.systemd_cgroup)
        .map_err(|e| crate::error::config("linux.cgroupsPath", e.to_string()))?;
    let layout = Layout::from_host()?;
    let mut cg = Manager::new(&layout, &cg_path)?;
    // A process moved into a frozen cgroup freezes at once: the create
    // would wait for an init that can never answer.
    if cg.freezing() {
        return Err(crate::error::config(
            "linux.cgroupsPath",
            format!(
                "the cgroup {} exists and is frozen; thaw it (or choose another path) first",
                cg_path_cfg.as_deref().unwrap_or(&opts.id)
            ),
        ));
    }
    let staged = !ns.join.is_empty() || ns.has_new(sp::CLONE_NEWTIME as i32);
    // On cgroup v1 the init is moved into its cgroups after the clone; the
    // cgroups are then made after the clone too, while the init mounts its
    // root. Making them waits for the kernel's cgroup lock, which the first
    // move after a quiet moment holds for an RCU grace period (8-25 ms
    // here): a helper starts that wait right now (see cgwarm), and all the
    // work up to the move overlaps with it. Not for rootless (whether there
    // is a cgroup at all decides how the init is set up) nor for a staged
    // init (it forks the container's init after placement).
    let late_cgroup = cg.version != Version::V2 && !staged && !opts.rootless;
    // Better still, the init then moves itself (`Manager::join_v1_self`),
    // which does not wait for that grace period at all, and on a hybrid
    // layout clone3 starts it in its cgroup2 directory. Not from a new
    // user namespace: the host's cgroup files are not its to write.
    let self_place = late_cgroup && !ns.has_new(libc::CLONE_NEWUSER);
    // A staged init's stage process moves itself the same way (before it
    // joins or makes any namespace), and is cloned into the cgroup2
    // directory of a hybrid layout: the runtime moves nothing.
    let stage_self_place = staged && cg.version != Version::V2 && !opts.rootless;
    let (mut cg, _warm_up) = if late_cgroup {
        let warm_up = (!self_place).then(|| crate::cgwarm::WarmUp::start(Some(&layout)));
        (Some(cg), warm_up)
    } else if make_cgroup(&mut cg, &spec, opts, &mut cleanup)? {
        rec.cgroup = Some(cg.clone());
        // (A warm-up would hold the kernel's cgroup lock the stage's own
        // move needs, for a grace period.)
        let w = (cg.version != Version::V2 && !stage_self_place)
            .then(|| crate::cgwarm::WarmUp::start(Some(&layout)));
        (Some(cg), w)
    } else {
        (None, None)
    };
    let mut ns_fds = Vec::new();
    for (flag, path) in &ns.join {
        let fd = sfs::open(path, libc::O_RDONLY, 0).with_ctx(|| {
            format!(
                "open the {} namespace {} (linux.namespaces)",
                config::ns_name(*flag),
                path.display()
            )
        })?;
        let field = || format!("linux.namespaces ({} path)", config::ns_name(*flag));
        match sp::ns_type(fd.as_fd()) {
            Ok(t) if t == *flag => {}
            Ok(t) => {
                return Err(crate::error::config(
                    field(),
                    format!(
                        "{} is a {} namespace, not a {} namespace",
                        path.display(),
                        config::ns_name(t),
                        config::ns_name(*flag)
                    ),
                ))
            }
            Err(_) => {
                return Err(crate::error::config(
                    field(),
                    format!("{} is not a namespace file", path.display()),
                ))
            }
        }
        ns_fds.push((*flag, fd));
    }
    let console = match (&opts.console_socket, terminal) {
        (Some(p), true) => Some(
            berth_sys::socket::connect_unix(p)
                .with_ctx(|| format!("connect to --console-socket {}", p.display()))?,
        ),
        (None, true) => console_pair,
        _ => None,
    };
    let mut extra_env = Vec::new();
    let mut preserve = opts.preserve_fds;
    if let Some(n) = std::env::var("LISTEN_FDS")
        .ok()
        .and_then(|v| v.parse::<u32>().ok())
    {
        // systemd socket activation: hand the sockets on, renumbered for pid 1.
        extra_env.push(format!("LISTEN_FDS={n}"));
        extra_env.push("LISTEN_PID=1".to_string());
        preserve += n;
    }

    // Compiled here, before anything runs in the container; programs are
    // cached under the state root ('@' cannot start a container id).
    let seccomp = match spec.linux().as_ref().and_then(|l| l.seccomp().as_ref()) {
        Some(sc) => Some(config::compile_seccomp(&opts.root, sc)?),
        None => None,
    };
    let hooks_handshake = spec.hooks().as_ref().is_some_and(|h| {
        [
            h.prestart(),
            h.create_runtime(),
            h.create_container(),
            h.start_container(),
        ]
        .iter()
        .any(|l| l.as_ref().is_some_and(|l| !l.is_empty()))
    });
    let v2 = cg.as_ref().is_some_and(|c| c.version == Version::V2);
    // On v2, CLONE_INTO_CGROUP places the child before it runs, so its
    // cgroup namespace can be made at clone time. On v1 the child is moved
    // after the clone, so it makes its cgroup namespace itself, afterwards.
    let mut init_flags =
        ns.new as u64 & !(sp::CLONE_NEWTIME | (libc::CLONE_NEWUSER as u64 * staged as u64));
    let cgroupns_unshare = !v2 && !staged && ns.has_new(libc::CLONE_NEWCGROUP);
    if cgroupns_unshare {
        init_flags &= !(libc::CLONE_NEWCGROUP as u64);
    }
    let cg_fd = match cg.as_mut() {
        Some(c) if self_place => {
            let fd = c.hybrid_unified_fd();
            // What it made is removed if anything fails from here on.
            cleanup.cgroup = Some(c.clone());
            fd?
        }
        Some(c) if stage_self_place => c.cgroup2_dir_fd("")?,
        Some(c) => c.v2_dir_fd("")?,
        None => None,
    };
    // A user namespace's root may not reach the bind sources on the host,
    // and only we may make idmapped mounts: cloned now, with the runtime's
    // privileges.
    let bind_trees = crate::rootfs::bind_trees(&spec, &bundle, &ns)?;
    let err_file = if run {
        None
    } else {
        Some(
            sfs::open(
                &dir.path.join(state::INIT_ERR),
                libc::O_WRONLY | libc::O_CREAT | libc::O_TRUNC,
                0o600,
            )
            .ctx("create init.err")?,
        )
    };
    let (chan, child_chan) = Channel::pair()?;
    let mut close_fds = vec![dir.lock_fd()];
    if let Some(fd) = &cg_fd {
        close_fds.push(std::os::fd::AsRawFd::as_raw_fd(fd));
    }
    let args = InitArgs {
        id: &opts.id,
        spec: &spec,
        ns: &ns,
        chan: &child_chan,
        rootfs: &rootfs,
        bundle: &bundle,
        fifo: fifo.as_ref(),
        err_file: err_file.as_ref(),
        console: console.as_ref(),
        ns_fds: &ns_fds,
        bind_trees: &bind_trees.trees,
        no_pivot: opts.no_pivot,
        preserve_fds: preserve,
        cgroup: cg.as_ref(),
        cgroupns_unshare,
        wait_placed: !v2 && !staged,
        self_place,
        stage_self_place: stage_self_place && cg.is_some(),
        seccomp: seccomp.as_ref(),
        sigmask,
        extra_env: &extra_env,
        hooks_handshake,
        close_fds: &close_fds,
    };
    let clone_flags = if staged { 0 } else { init_flags };
    // The child starts in the rootfs (see `init::enters_rootfs`); the
    // runtime goes back where it was right after the clone.
    let back = if init::enters_rootfs(&args) {
        let here = sfs::open(
            Path::new("."),
            libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC,
            0,
        )
        .ctx("open the working directory")?;
        sfs::chdir(args.rootfs)
            .with_ctx(|| format!("enter the rootfs {} (root.path)", args.rootfs.display()))?;
        Some(here)
    } else {
        None
    };
    // SAFETY: berth-runtime is single-threaded: it starts no threads, and
    // nothing it links starts any.
    let forked = unsafe {
        sp::clone3(
            clone_flags | sp::CLONE_PIDFD,
            cg_fd.as_ref().map(|f| f.as_fd()),
        )
    };
    if let Some(here) = &back {
        if !matches!(forked, Ok(sp::Forked::Child)) {
            sfs::fchdir(here.as_fd()).ctx("go back to the working directory")?;
        }
    }
    let forked = forked.ctx("create the container process (clone3)")?;
    let (first_pid, first_pidfd) = match forked {
        sp::Forked::Child => {
            // The runtime's working directory (the bundle) is no business
            // of the container: not kept open until exec.
            drop(back);
            drop(chan);
            if staged {
                init::stage_main(&args, init_flags)
            } else {
                init::init_main(&args, true)
            }
        }
        sp::Forked::Parent { pid, pidfd } => (pid, pidfd),
    };
    drop(child_chan);
    cleanup.pids.push(first_pid);
    if let Some(c) = cg.as_ref().filter(|_| !v2 && staged && !stage_self_place) {
        c.add(first_pid, "")?;
    }
    if let Some(adj) = process.oom_score_adj() {
        std::fs::write(format!("/proc/{first_pid}/oom_score_adj"), adj.to_string())
            .ctx("set process.oomScoreAdj")?;
    }
    let init_err = |e: Error| Error::Init {
        id: opts.id.clone(),
        msg: e.to_string(),
    };
    let (pid, pidfd) = if staged {
        chan.send(&Msg::Go)?;
        if ns.has_new(libc::CLONE_NEWUSER) {
            match chan
                .expect("it made its user namespace")
                .map_err(init_err)?
            {
                Msg::NeedMaps => {}
                other => {
                    return Err(Error::Usage(format!(
                        "unexpected message {other:?} from the stage process"
                    )))
                }
            }
            write_id_maps(first_pid, &spec)?;
            chan.send(&Msg::Go)?;
        }
        let pid = match chan
            .expect("it created the container process")
            .map_err(init_err)?
        {
            Msg::InitPid(p) => p,
            other => {
                return Err(Error::Usage(format!(
                    "unexpected message {other:?} from the stage process"
                )))
            }
        };
        cleanup.pids.insert(0, pid);
        let _ = sp::waitpid(first_pid);
        cleanup.pids.retain(|p| *p != first_pid);
        (
            pid,
            sp::pidfd_open(pid).ctx("open a pidfd on the container process")?,
        )
    } else {
        if ns.has_new(libc::CLONE_NEWUSER) {
            write_id_maps(first_pid, &spec)?;
        }
        chan.send(&Msg::Go)?;
        if !v2 {
            // The init mounts its root filesystem meanwhile.
            if let Some(c) = cg.as_mut().filter(|_| late_cgroup) {
                make_cgroup(c, &spec, opts, &mut cleanup)?;
                rec.cgroup = Some(c.clone());
            }
            if let Some(c) = cg.as_ref().filter(|_| !self_place) {
                c.add(first_pid, "")?;
            }
            // If the init failed already, its error is waiting below.
            let _ = chan.send(&Msg::Placed);
        }
        let pidfd = match first_pidfd {
            Some(fd) => fd,
            None => sp::pidfd_open(first_pid).ctx("open a pidfd on the container process")?,
        };
        (first_pid, pidfd)
    };
    rec.pid = pid;
    rec.pid_start = sp::proc_stat(pid)
        .map(|s| s.start_time)
        .ok_or_else(|| Error::Init {
            id: opts.id.clone(),
            msg: "the container process exited while it was being created".into(),
        })?;
    // Saved while the init still sets itself up (pivot_root, credentials)
    // rather than after: the fsyncs overlap with its work. We hold the lock
    // until it is ready, and a failure from here on destroys it all. `run`
    // starts the container right away, under the same lock: one write fewer.
    rec.status = if run {
        Status::Running
    } else {
        Status::Created
    };
    dir.save(&rec)?;
    if let Some(pf) = &opts.pid_file {
        let pf = absolute(pf);
        sfs::replace_file(&pf, pid.to_string().as_bytes(), 0o644)
            .with_ctx(|| format!("write --pid-file {}", pf.display()))?;
        cleanup.pid_file = Some(pf);
    }

    loop {
        let (msg, fd) = chan.expect_fd("it was ready").map_err(init_err)?;
        match msg {
            Msg::Ready => break,
            Msg::SeccompFd => {
                let (Some(fd), Some(f)) = (fd, seccomp.as_ref()) else {
                    return Err(Error::Usage(
                        "the container process sent no seccomp fd, or had no profile".into(),
                    ));
                };
                send_seccomp_fd(f, fd, &rec.oci(Status::Creating))?;
            }
            Msg::Idmap { index } => {
                let Some(fd) = fd else {
                    return Err(Error::Usage(
                        "the container process sent no mount to idmap".into(),
                    ));
                };
                bind_trees.set_idmap(index, fd.as_fd())?;
                chan.send(&Msg::IdmapDone)?;
            }
            Msg::Source { index } => {
                let src = bind_trees.open_source(index, pid, pidfd.as_fd())?;
                chan.send_fd(&Msg::SourceFd, src.as_fd())?;
            }
            Msg::MountsDone => {
                let st = rec.oci(Status::Creating);
                if let Some(h) = spec.hooks() {
                    let poststop = h.poststop().clone().unwrap_or_default();
                    cleanup.poststop = Some((poststop, rec.oci(Status::Stopped)));
                    hooks::run_all("prestart", h.prestart().as_deref().unwrap_or_default(), &st)?;
                    hooks::run_all(
                        "createRuntime",
                        h.create_runtime().as_deref().unwrap_or_default(),
                        &st,
                    )?;
                }
                chan.send(&Msg::HooksDone { pid })?;
            }
            other => {
                return Err(Error::Usage(format!(
                    "unexpected message {other:?} from the container process"
                )))
            }
        }
    }
    cleanup.armed = false;
    Ok(Launched {
        dir,
        rec,
        chan,
        pidfd,
    })
}

/// Creates the container's cgroup and applies `linux.resources` to it.
/// `Ok(false)`: a rootless runtime may not create one and the config asks
/// for no limits, so the container runs without.
fn make_cgroup(
    cg: &mut Manager,
    spec: &Spec,
    opts: &CreateOptions,
    cleanup: &mut Cleanup,
) -> Result<bool> {
    let created = cg.create();
    // With what was created, for removal on failure.
    cleanup.cgroup = Some(cg.clone());
    match created {
        Err(e) if opts.rootless && e.is_permission() => {
            // No delegated cgroup: run without one, unless the config asks
            // for limits, which would then silently not exist.
            let _ = cg.destroy();
            cleanup.cgroup = None;
            if let Some(field) = requested_limits(spec) {
                return Err(crate::error::config(
                    format!("linux.resources.{field}"),
                    format!("a rootless container can only be limited in a cgroup delegated to its user ({e}); delegate one (systemd: Delegate=yes, then use a cgroupsPath inside it) or remove the limit"),
                ));
            }
            tracing::info!(
                "rootless: no cgroup delegated to this user ({e}); the container runs without a cgroup of its own"
            );
            Ok(false)
        }
        Err(e) => Err(e.into()),
        Ok(()) => {
            if let Some(res) = effective_resources(spec) {
                cg.apply(&res).map_err(|e| match e {
                    berth_cgroups::Error::Unsupported { field, msg } => {
                        crate::error::config(format!("linux.resources.{field}"), msg)
                    }
                    other => other.into(),
                })?;
            }
            Ok(true)
        }
    }
}

/// Hands the seccomp notify fd to the profile's listener, as runc does: one
/// message on a connection to `listenerPath` holding the JSON of the
/// container process state, with the fd attached.
pub(crate) fn send_seccomp_fd(
    f: &berth_seccomp::Filter,
    fd: OwnedFd,
    state: &OciState,
) -> Result<()> {
    let Some(path) = &f.listener_path else {
        return Err(crate::error::config(
            "linux.seccomp.listenerPath",
            "is required when a rule uses SCMP_ACT_NOTIFY",
        ));
    };
    let msg = serde_json::json!({
        "ociVersion": state.oci_version,
        "fds": ["seccompFd"],
        "pid": state.pid,
        "metadata": f.listener_metadata.clone().unwrap_or_default(),
        "state": state,
    });
    let data = serde_json::to_vec(&msg).map_err(|e| Error::Usage(format!("encode: {e}")))?;
    let sock = berth_sys::socket::connect_unix(path).with_ctx(|| {
        format!(
            "connect to the seccomp listener {} (linux.seccomp.listenerPath)",
            path.display()
        )
    })?;
    berth_sys::socket::send(
        sock.as_fd(),
        &data,
        Some(std::os::fd::AsRawFd::as_raw_fd(&fd)),
    )
    .with_ctx(|| format!("send the seccomp fd to {}", path.display()))
}

fn absolute(p: &Path) -> PathBuf {
    if p.is_absolute() {
        p.to_path_buf()
    } else {
        std::env::current_dir()
            .map(|d| d.join(p))
            .unwrap_or_else(|_| p.to_path_buf())
    }
}

fn owner_name() -> String {
    // SAFETY: geteuid cannot fail.
    let uid = unsafe { libc::geteuid() };
    if uid == 0 {
        "root".into()
    } else {
        uid.to_string()
    }
}

/// The first resource limit the config asks for, device rules aside (a
/// user namespace cannot create device nodes anyway; they are bound from
/// the host).
fn requested_limits(spec: &Spec) -> Option<&'static str> {
    let r = spec.linux().as_ref()?.resources().as_ref()?;
    let set = |b: bool, f: &'static str| b.then_some(f);
    set(r.memory().is_some(), "memory")
        .or_else(|| set(r.cpu().is_some(), "cpu"))
        .or_else(|| set(r.pids().is_some(), "pids"))
        .or_else(|| set(r.block_io().is_some(), "blockIO"))
        .or_else(|| {
            set(
                r.hugepage_limits().as_ref().is_some_and(|h| !h.is_empty()),
                "hugepageLimits",
            )
        })
        .or_else(|| set(r.network().is_some(), "network"))
        .or_else(|| set(r.rdma().as_ref().is_some_and(|x| !x.is_empty()), "rdma"))
        .or_else(|| {
            set(
                r.unified().as_ref().is_some_and(|x| !x.is_empty()),
                "unified",
            )
        })
}

/// The config's resources plus device-cgroup rules for the devices every
/// container gets: without them a deny-all rule (as `runc spec` writes)
/// would forbid the container its own /dev/null. runc and crun add the same
/// rules.
fn effective_resources(spec: &Spec) -> Option<oci_spec::runtime::LinuxResources> {
    use oci_spec::runtime::{LinuxDeviceCgroup, LinuxDeviceType};
    let linux = spec.linux().as_ref()?;
    let mut res = linux.resources().clone()?;
    let Some(rules) = res.devices().clone() else {
        return Some(res);
    };
    if rules.is_empty() {
        return Some(res);
    }
    let rule = |typ: LinuxDeviceType, major: Option<i64>, minor: Option<i64>| {
        let mut r = LinuxDeviceCgroup::default();
        r.set_allow(true);
        r.set_typ(Some(typ));
        r.set_major(major);
        r.set_minor(minor);
        r.set_access(Some("rwm".into()));
        r
    };
    let mut all = rules;
    for d in crate::rootfs::default_devices() {
        all.push(rule(d.typ(), Some(d.major()), Some(d.minor())));
    }
    all.push(rule(LinuxDeviceType::C, Some(5), Some(1))); // /dev/console
    all.push(rule(LinuxDeviceType::C, Some(5), Some(2))); // /dev/ptmx
    all.push(rule(LinuxDeviceType::C, Some(136), None)); // /dev/pts/*
                                                         // linux.devices get just "m": the nodes are made after the cgroup is
                                                         // set up (runc makes them before its rules apply). Reading and writing
                                                         // them is what the config's rules say, so `--device /dev/sdb:r` stays
                                                         // read-only; "m" gives nothing more than the node already made.
    for d in linux.devices().iter().flatten() {
        if d.typ() != LinuxDeviceType::P {
            let mut r = rule(d.typ(), Some(d.major()), Some(d.minor()));
            r.set_access(Some("m".into()));
            all.push(r);
        }
    }
    res.set_devices(Some(all));
    Some(res)
}

/// The host uid and gid that the container's root maps to.
fn mapped_root(spec: &Spec) -> (u32, u32) {
    let host = |maps: Option<&Vec<oci_spec::runtime::LinuxIdMapping>>| {
        maps.into_iter()
            .flatten()
            .find(|m| m.container_id() == 0)
            .map_or(0, |m| m.host_id())
    };
    let linux = spec.linux().as_ref();
    (
        host(linux.and_then(|l| l.uid_mappings().as_ref())),
        host(linux.and_then(|l| l.gid_mappings().as_ref())),
    )
}

/// Writes uid_map and gid_map of a child that made a user namespace.
fn write_id_maps(pid: i32, spec: &Spec) -> Result<()> {
    let linux = spec.linux().as_ref();
    let none = Vec::new();
    let uids = linux
        .and_then(|l| l.uid_mappings().as_ref())
        .unwrap_or(&none);
    let gids = linux
        .and_then(|l| l.gid_mappings().as_ref())
        .unwrap_or(&none);
    write_id_map(pid, IdKind::Uid, uids)?;
    write_id_map(pid, IdKind::Gid, gids)
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum IdKind {
    Uid,
    Gid,
}

/// One map. Root writes it directly. Without privilege the kernel takes
/// only the caller's own id (for gids after `setgroups deny`); anything
/// more goes through newuidmap/newgidmap, which check /etc/subuid and
/// /etc/subgid, as runc and Podman do.
fn write_id_map(pid: i32, kind: IdKind, maps: &[oci_spec::runtime::LinuxIdMapping]) -> Result<()> {
    let (name, field, helper) = match kind {
        IdKind::Uid => ("uid_map", "linux.uidMappings", "newuidmap"),
        IdKind::Gid => ("gid_map", "linux.gidMappings", "newgidmap"),
    };
    let text: String = maps
        .iter()
        .map(|m| format!("{} {} {}\n", m.container_id(), m.host_id(), m.size()))
        .collect();
    let file = format!("/proc/{pid}/{name}");
    match std::fs::write(&file, &text) {
        Ok(()) => return Ok(()),
        Err(e) if e.raw_os_error() == Some(libc::EPERM) => {}
        Err(e) => return Err(e).with_ctx(|| format!("write {name} ({field})")),
    }
    // SAFETY: geteuid and getegid cannot fail.
    let own = unsafe {
        match kind {
            IdKind::Uid => libc::geteuid(),
            IdKind::Gid => libc::getegid(),
        }
    };
    if let [m] = maps {
        if m.host_id() == own && m.size() == 1 {
            if kind == IdKind::Gid {
                std::fs::write(format!("/proc/{pid}/setgroups"), "deny")
                    .ctx("write setgroups deny (needed to map our own gid)")?;
            }
            return std::fs::write(&file, &text).with_ctx(|| format!("write {name} ({field})"));
        }
    }
    let mut cmd = std::process::Command::new(helper);
    cmd.arg(pid.to_string());
    for m in maps {
        cmd.args([
            m.container_id().to_string(),
            m.host_id().to_string(),
            m.size().to_string(),
        ]);
    }
    let out = cmd
        .stdin(std::process::Stdio::null())
        .output()
        .map_err(|e| {
            crate::error::config(
                field,
                format!(
                    "mapping more than this user's own id needs {helper} (package uidmap): {e}"
                ),
            )
        })?;
    if !out.status.success() {
        return Err(crate::error::config(
            field,
            format!(
                "{helper} refused the mapping ({}); the ids must be delegated to this user in /etc/sub{}id",
                String::from_utf8_lossy(&out.stderr).trim(),
                if kind == IdKind::Uid { "u" } else { "g" }
            ),
        ));
    }
    Ok(())
}

/// The live status of a container from its record.
pub(crate) fn live_status(root: &Path, rec: &Record, locked_by_us: bool) -> Status {
    match rec.status {
        Status::Creating => {
            if !locked_by_us && ContainerDir::busy(root, &rec.id) {
                Status::Creating
            } else {
                Status::Stopped // a create that died half-way
            }
        }
        Status::Stopped => Status::Stopped,
        s => {
            if !state::alive(rec.pid, rec.pid_start) {
                Status::Stopped
            } else if rec.cgroup.as_ref().is_some_and(|c| c.freezing()) {
                Status::Paused
            } else if s == Status::Created && root.join(&rec.id).join(state::EXEC_FIFO).exists() {
                Status::Created
            } else {
                Status::Running
            }
        }
    }
}

/// `state`: the OCI state of one container.
pub fn state(root: &Path, id: &str) -> Result<OciState> {
    state::validate_id(id)?;
    let rec = state::load_record(&root.join(id))?;
    Ok(rec.oci(live_status(root, &rec, false)))
}

/// `list`: every container under `root`, sorted by id.
pub fn list(root: &Path) -> Result<Vec<OciState>> {
    let entries = match std::fs::read_dir(root) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e).with_ctx(|| format!("read state root {}", root.display())),
    };
    let mut out = Vec::new();
    for e in entries.flatten() {
        let Ok(rec) = state::load_record(&e.path()) else {
            continue;
        };
        out.push(rec.oci(live_status(root, &rec, false)));
    }
    out.sort_by(|a, b| a.id.cmp(&b.id));
    Ok(out)
}

/// `start`: releases a created container's init to exec the user program.
pub fn start(root: &Path, id: &str) -> Result<()> {
    let dir = ContainerDir::open(root, id, true)?;
    let mut rec = dir.load()?;
    let status = live_status(root, &rec, true);
    if status != Status::Created {
        // An init that died after `create` returned left its reason.
        if status == Status::Stopped && rec.status == Status::Created {
            if let Some(why) = init_error(&dir) {
                return Err(Error::Init {
                    id: id.into(),
                    msg: format!("the container process exited before it could be started: {why}"),
                });
            }
        }
        return Err(Error::BadState {
            id: id.into(),
            op: "start",
            status: status.as_str(),
        });
    }
    let result = read_exec_fifo(&dir.fifo(), &rec).map_err(|msg| match init_error(&dir) {
        Some(why) if !msg.contains(&why) => format!("{msg}: {why}"),
        _ => msg,
    });
    let _ = std::fs::remove_file(dir.fifo());
    match result {
        Ok(()) => {
            rec.status = Status::Running;
            dir.save(&rec)?;
            if let Some(h) = rec.hooks.as_ref().and_then(|h| h.poststart().as_ref()) {
                hooks::run_all_warn("poststart", h, &rec.oci(Status::Running));
            }
            Ok(())
        }
        Err(msg) => {
            // startContainer hooks or exec failed: stop and destroy, as the
            // spec's lifecycle says.
            let _ = sp::kill(rec.pid, libc::SIGKILL);
            destroy(dir, &rec)?;
            Err(Error::Init { id: id.into(), msg })
        }
    }
}

/// What an init wrote to `init.err` when it failed with nobody listening.
fn init_error(dir: &ContainerDir) -> Option<String> {
    use std::io::Read;
    let f = std::fs::File::open(dir.path.join(state::INIT_ERR)).ok()?;
    let mut text = String::new();
    f.take(64 * 1024).read_to_string(&mut text).ok()?;
    let text = text.trim();
    (!text.is_empty()).then(|| text.to_string())
}

/// Opens exec.fifo for reading (which lets the init's blocking open return)
/// and reads until the init closes it: by exec (close-on-exec) on success,
/// or by exiting after writing its error.
fn read_exec_fifo(fifo: &Path, rec: &Record) -> std::result::Result<(), String> {
    use std::io::Read;
    let fd = sfs::open(fifo, libc::O_RDONLY | libc::O_NONBLOCK, 0)
        .map_err(|e| format!("open exec.fifo: {e}"))?;
    let mut f = std::fs::File::from(fd);
    let mut data = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        // A poll error falls through to the read, which reports it.
        if let Ok(false) = sfs::wait_readable(std::os::fd::AsFd::as_fd(&f), 100) {
            if !state::alive(rec.pid, rec.pid_start) {
                return Err("the container process exited before it could be started".into());
            }
            continue;
        }
        match f.read(&mut buf) {
            Ok(0) if !data.is_empty() => break,
            Ok(0) => {
                if !state::alive(rec.pid, rec.pid_start) {
                    return Err("the container process exited before it could be started".into());
                }
                std::thread::sleep(std::time::Duration::from_millis(1));
            }
            Ok(n) => data.extend_from_slice(&buf[..n]),
            Err(e)
                if e.kind() == std::io::ErrorKind::WouldBlock
                    || e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(format!("read exec.fifo: {e}")),
        }
        if data.len() > 64 * 1024 {
            break;
        }
    }
    match data.split_first() {
        Some((b'0', [])) => Ok(()),
        Some((b'0', rest)) => Err(String::from_utf8_lossy(rest).into_owned()),
        _ => Err(String::from_utf8_lossy(&data).into_owned()),
    }
}

/// `run`: create and start; unless detached, wait for the container, relay
/// signals to it, delete it (unless `keep`) and return its exit code.
pub fn run(opts: &CreateOptions, run_opts: RunOptions) -> Result<i32> {
    // Block signals before the clone so none is lost; the init restores the
    // original mask, and we read them from a signalfd to forward them.
    let old_mask = if run_opts.detach {
        None
    } else {
        Some(sp::block_all_signals().ctx("block signals")?)
    };
    // Without a console socket, a terminal container's pty comes back to us
    // and we relay it to our own stdio, as runc does.
    let relay = if run_opts.detach || opts.console_socket.is_some() {
        None
    } else {
        Some(berth_sys::socket::seqpacket_pair().ctx("create the console socket pair")?)
    };
    let (ours, theirs) = match relay {
        Some((a, b)) => (Some(a), Some(b)),
        None => (None, None),
    };
    let launched = launch(opts, true, old_mask, theirs);
    let l = match launched {
        Ok(l) => l,
        Err(e) => {
            if let Some(m) = &old_mask {
                let _ = sp::set_sigmask(m);
            }
            return Err(e);
        }
    };
    l.chan.send(&Msg::Start)?;
    // EOF means the init exec'd (the channel is close-on-exec).
    match l.chan.recv()? {
        None => {}
        Some(Msg::Error(msg)) => {
            let _ = sp::waitpid(l.rec.pid);
            let id = l.rec.id.clone();
            destroy(l.dir, &l.rec)?;
            return Err(Error::Init { id, msg });
        }
        Some(other) => {
            return Err(Error::Usage(format!(
                "unexpected message {other:?} from the container process"
            )))
        }
    }
    if let Some(h) = l.rec.hooks.as_ref().and_then(|h| h.poststart().as_ref()) {
        hooks::run_all_warn("poststart", h, &l.rec.oci(Status::Running));
    }
    if run_opts.detach {
        return Ok(0);
    }
    let master = match &ours {
        Some(sock) => {
            let mut buf = [0u8; 64];
            match berth_sys::socket::recv(sock.as_fd(), &mut buf) {
                Ok((_, fd)) => fd,
                Err(_) => None,
            }
        }
        None => None,
    };
    l.dir.unlock()?;
    let status = wait_forwarding_signals(&l.pidfd, l.rec.pid, master.as_ref())?;
    if let Some(m) = &old_mask {
        let _ = sp::set_sigmask(m);
    }
    // A `delete --force` from elsewhere may have removed it meanwhile.
    if !run_opts.keep && l.dir.relock()? {
        let rec = l.rec.clone();
        destroy(l.dir, &rec)?;
    }
    Ok(status.code())
}

/// Waits for `pid` (behind `pidfd`), forwarding the signals we get to it and
/// relaying a pty master to our stdio when there is one.
pub(crate) fn wait_forwarding_signals(
    pidfd: &OwnedFd,
    pid: i32,
    master: Option<&OwnedFd>,
) -> Result<sp::ExitStatus> {
    use std::io::{Read, Write};
    use std::os::fd::AsRawFd;
    let sfd = sp::signalfd_all().ctx("create a signalfd")?;
    let stdin = std::io::stdin();
    let _raw = master.and_then(|_| crate::tty::RawMode::enter(stdin.as_fd()));
    let resize = |m: &OwnedFd| {
        if let Some((rows, cols)) = crate::tty::get_size(stdin.as_fd()) {
            let _ = crate::tty::set_size(m.as_fd(), rows, cols);
        }
    };
    if let Some(m) = master {
        resize(m);
    }
    let mut master_open = master.is_some();
    let mut stdin_open = master.is_some();
    let mut buf = [0u8; 8192];
    loop {
        let mut pfds = vec![
            libc::pollfd {
                fd: pidfd.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            },
            libc::pollfd {
                fd: sfd.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            },
            libc::pollfd {
                fd: if master_open {
                    master.map_or(-1, |m| m.as_raw_fd())
                } else {
                    -1
                },
                events: libc::POLLIN,
                revents: 0,
            },
            libc::pollfd {
                fd: if stdin_open { 0 } else { -1 },
                events: libc::POLLIN,
                revents: 0,
            },
        ];
        // SAFETY: a valid array of pollfds; negative fds are ignored.
        let n = unsafe { libc::poll(pfds.as_mut_ptr(), pfds.len() as libc::nfds_t, -1) };
        if n < 0 {
            continue;
        }
        if pfds[1].revents & libc::POLLIN != 0 {
            let sig = sp::read_signal(sfd.as_fd()).ctx("read a signal")?;
            match sig {
                libc::SIGWINCH => {
                    if let Some(m) = master {
                        resize(m);
                    }
                }
                libc::SIGCHLD | libc::SIGURG => {}
                _ => {
                    let _ = sp::pidfd_send_signal(pidfd.as_fd(), sig);
                }
            }
        }
        if let (Some(m), true) = (master, pfds[2].revents != 0) {
            match std::fs::File::from(m.try_clone().ctx("dup the pty")?).read(&mut buf) {
                Ok(n) if n > 0 => {
                    let mut out = std::io::stdout().lock();
                    let _ = out.write_all(&buf[..n]);
                    let _ = out.flush();
                }
                _ => master_open = false, // EIO once the last slave fd closed
            }
        }
        if let (Some(m), true) = (master, pfds[3].revents != 0) {
            match stdin.lock().read(&mut buf) {
                Ok(n) if n > 0 => {
                    let _ =
                        std::fs::File::from(m.try_clone().ctx("dup the pty")?).write_all(&buf[..n]);
                }
                _ => stdin_open = false,
            }
        }
        if pfds[0].revents & libc::POLLIN != 0 && !(master_open && pfds[2].revents != 0) {
            return sp::waitpid(pid).ctx("wait for the container process");
        }
    }
}

/// Parses a signal given by name (`KILL`, `SIGKILL`, `kill`) or number.
pub fn parse_signal(s: &str) -> Result<i32> {
    berth_sys::signal::parse(s).map_err(Error::Usage)
}

/// `kill`: sends a signal to the init, or with `all` to every process of
/// the container.
pub fn kill(root: &Path, id: &str, sig: i32, all: bool) -> Result<()> {
    let dir = ContainerDir::open(root, id, false)?;
    let rec = dir.load()?;
    let status = live_status(root, &rec, false);
    let signallable = matches!(status, Status::Created | Status::Running | Status::Paused);
    if !(signallable || (all && status == Status::Stopped)) {
        return Err(Error::BadState {
            id: id.into(),
            op: "kill",
            status: status.as_str(),
        });
    }
    // Frozen tasks (cgroup v1) act on SIGKILL only once thawed.
    let thaw_after_kill = || {
        if let (Some(cg), true, true) =
            (&rec.cgroup, status == Status::Paused, sig == libc::SIGKILL)
        {
            let _ = cg.set_frozen(false);
        }
    };
    if all {
        if let Some(cg) = &rec.cgroup {
            for p in cg.procs()? {
                let _ = sp::kill(p, sig);
            }
            thaw_after_kill();
            return Ok(());
        }
    }
    let pidfd = sp::pidfd_open(rec.pid)
        .with_ctx(|| format!("open process {} of container {id}", rec.pid))?;
    // The pidfd pins the process; if it is still the one we started, the
    // signal cannot reach a stranger that reused the pid.
    if !state::alive(rec.pid, rec.pid_start) {
        return Err(Error::BadState {
            id: id.into(),
            op: "kill",
            status: "stopped",
        });
    }
    sp::pidfd_send_signal(pidfd.as_fd(), sig)
        .with_ctx(|| format!("send signal {sig} to container {id}"))?;
    thaw_after_kill();
    Ok(())
}

/// The host pids of every process of a container (its cgroup's).
pub fn pids(root: &Path, id: &str) -> Result<Vec<i32>> {
    let rec = ContainerDir::open(root, id, false)?.load()?;
    let status = live_status(root, &rec, false);
    if status == Status::Stopped {
        return Ok(Vec::new());
    }
    let mut pids = match &rec.cgroup {
        Some(cg) => cg.procs()?,
        None => vec![rec.pid],
    };
    pids.sort_unstable();
    Ok(pids)
}

/// `update`: applies new resource limits to a container's cgroup. The
/// whole object is checked before anything is written.
pub fn update(root: &Path, id: &str, res: &oci_spec::runtime::LinuxResources) -> Result<()> {
    let dir = ContainerDir::open(root, id, true)?;
    let rec = dir.load()?;
    let status = live_status(root, &rec, true);
    if !matches!(status, Status::Created | Status::Running | Status::Paused) {
        return Err(Error::BadState {
            id: id.into(),
            op: "update",
            status: status.as_str(),
        });
    }
    let cg = rec
        .cgroup
        .as_ref()
        .ok_or_else(|| Error::Usage(format!("container {id} has no cgroup to update")))?;
    cg.apply(res).map_err(|e| match e {
        berth_cgroups::Error::Unsupported { field, msg } => Error::Usage(format!(
            "container {id}: update linux.resources.{field}: {msg}"
        )),
        other => other.into(),
    })
}

/// `events`: with `stats_only`, one `{"type":"stats",...}` line; otherwise
/// a stats line every `interval` and an `{"type":"oom"}` line for every OOM
/// kill, until the container stops. runc's schema, one JSON object a line.
pub fn events(
    root: &Path,
    id: &str,
    stats_only: bool,
    interval: std::time::Duration,
    out: &mut dyn std::io::Write,
) -> Result<()> {
    let rec = ContainerDir::open(root, id, false)?.load()?;
    let status = live_status(root, &rec, false);
    if status == Status::Stopped {
        return Err(Error::BadState {
            id: id.into(),
            op: "read events of",
            status: status.as_str(),
        });
    }
    let cg = rec
        .cgroup
        .as_ref()
        .ok_or_else(|| Error::Usage(format!("container {id} has no cgroup to read")))?;
    let emit = |out: &mut dyn std::io::Write, v: serde_json::Value| -> Result<()> {
        writeln!(out, "{v}")
            .and_then(|_| out.flush())
            .ctx("write an event")
    };
    let ooms = |out: &mut dyn std::io::Write, w: &mut berth_cgroups::OomWatch| -> Result<()> {
        for _ in 0..w.take() {
            emit(out, serde_json::json!({"type": "oom", "id": id}))?;
        }
        Ok(())
    };
    let stats = |out: &mut dyn std::io::Write| {
        emit(
            out,
            serde_json::json!({"type": "stats", "id": id, "data": cg.stats()}),
        )
    };
    if stats_only {
        return stats(out);
    }
    let mut oom = cg.oom_watch()?;
    let mut next = std::time::Instant::now();
    loop {
        let now = std::time::Instant::now();
        if now >= next {
            stats(out)?;
            next = now + interval;
        }
        let wait = next.saturating_duration_since(std::time::Instant::now());
        // Wake at least every 100 ms to notice the container's end.
        let timeout = wait.min(std::time::Duration::from_millis(100)).as_millis() as i32;
        if let Some(w) = &mut oom {
            let (fd, events) = w.poll_fd();
            let mut pfd = libc::pollfd {
                fd,
                events,
                revents: 0,
            };
            // SAFETY: one valid pollfd.
            let n = unsafe { libc::poll(&mut pfd, 1, timeout) };
            if n > 0 {
                ooms(out, w)?;
            }
        } else {
            std::thread::sleep(std::time::Duration::from_millis(timeout as u64));
        }
        if !state::alive(rec.pid, rec.pid_start) {
            // An OOM kill of the init is reported before we go.
            if let Some(w) = &mut oom {
                ooms(out, w)?;
            }
            return Ok(());
        }
    }
}

/// `pause`: freezes every process of a running container.
pub fn pause(root: &Path, id: &str) -> Result<()> {
    set_paused(root, id, true)
}

/// `resume`: thaws a paused container.
pub fn resume(root: &Path, id: &str) -> Result<()> {
    set_paused(root, id, false)
}

fn set_paused(root: &Path, id: &str, pause: bool) -> Result<()> {
    let dir = ContainerDir::open(root, id, true)?;
    let rec = dir.load()?;
    let status = live_status(root, &rec, true);
    let (want, op) = if pause {
        (Status::Running, "pause")
    } else {
        (Status::Paused, "resume")
    };
    if status != want {
        return Err(Error::BadState {
            id: id.into(),
            op,
            status: status.as_str(),
        });
    }
    let cg = rec
        .cgroup
        .as_ref()
        .ok_or_else(|| Error::Usage(format!("container {id} has no cgroup to {op}")))?;
    cg.set_frozen(pause)?;
    Ok(())
}

/// `delete`: removes a stopped container (or a created one, whose init is
/// only waiting); with `force`, kills a running one first.
pub fn delete(root: &Path, id: &str, force: bool) -> Result<()> {
    let dir = match ContainerDir::open(root, id, true) {
        Err(e) if e.is_not_found() && force => return Ok(()),
        other => other?,
    };
    let rec = match dir.load() {
        Ok(r) => r,
        Err(e) if e.is_not_found() => return dir.remove(),
        // Nothing to go by: no pid, no cgroup. Such a file comes from a
        // power loss, after which neither is left.
        Err(Error::Corrupt { file, msg, .. }) if force => {
            tracing::warn!("{file} is corrupt ({msg}); removing the state directory");
            return dir.remove();
        }
        Err(e) => return Err(e),
    };
    let status = live_status(root, &rec, true);
    match status {
        Status::Stopped => {}
        Status::Created | Status::Creating => kill_and_wait(&rec)?,
        Status::Running | Status::Paused if force => kill_and_wait(&rec)?,
        s => {
            return Err(Error::BadState {
                id: id.into(),
                op: "delete",
                status: s.as_str(),
            })
        }
    }
    destroy(dir, &rec)
}

fn kill_and_wait(rec: &Record) -> Result<()> {
    let Ok(pidfd) = sp::pidfd_open(rec.pid) else {
        return Ok(());
    };
    if !state::alive(rec.pid, rec.pid_start) {
        return Ok(());
    }
    let _ = sp::pidfd_send_signal(pidfd.as_fd(), libc::SIGKILL);
    if let Some(cg) = rec.cgroup.as_ref().filter(|c| c.freezing()) {
        let _ = cg.set_frozen(false);
    }
    if !sp::pidfd_wait_exit(pidfd.as_fd(), 10_000).ctx("wait for the container to die")? {
        return Err(Error::Usage(format!(
            "container {}: process {} did not die within 10 s of SIGKILL",
            rec.id, rec.pid
        )));
    }
    Ok(())
}

/// Removes what a container holds on the host, then runs poststop hooks.
fn destroy(dir: ContainerDir, rec: &Record) -> Result<()> {
    if let Some(cg) = &rec.cgroup {
        remove_cgroup(cg)?;
    }
    dir.remove()?;
    if let Some(h) = rec.hooks.as_ref().and_then(|h| h.poststop().as_ref()) {
        hooks::run_all_warn("poststop", h, &rec.oci(Status::Stopped));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signals() {
        assert_eq!(parse_signal("KILL").unwrap(), 9);
        assert_eq!(parse_signal("SIGTERM").unwrap(), 15);
        assert_eq!(parse_signal("hup").unwrap(), 1);
        assert_eq!(parse_signal("9").unwrap(), 9);
        assert_eq!(parse_signal("RTMIN+1").unwrap(), libc::SIGRTMIN() + 1);
        assert!(parse_signal("NOPE").is_err());
        assert!(parse_signal("0").is_err());
        assert!(parse_signal("65").is_err());
    }

    #[test]
    fn unknown_container() {
        let t = tempfile::tempdir().unwrap();
        assert!(state(t.path(), "nope").unwrap_err().is_not_found());
        assert!(start(t.path(), "nope").unwrap_err().is_not_found());
        assert!(kill(t.path(), "nope", 9, false).unwrap_err().is_not_found());
        assert!(delete(t.path(), "nope", false).unwrap_err().is_not_found());
        delete(t.path(), "nope", true).unwrap();
        assert!(list(t.path()).unwrap().is_empty());
    }
}
