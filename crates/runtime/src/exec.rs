//! `exec`: a new process inside a running container.
//!
//! One clone, as for `create`. The runtime first joins the container's pid
//! and time namespaces *for its children* (setns on the init's pidfd), so
//! the clone is born in them; on cgroup v2 `CLONE_INTO_CGROUP` puts it in
//! the container's cgroup before it runs, on v1 the runtime moves it while
//! it sets itself up. The child joins the other namespaces with one
//! `setns(pidfd, flags)`, then takes the security context the container's
//! process has (or the one `--process` and the flags give): rlimits,
//! capabilities, user, no_new_privs and the container's seccomp profile.

use crate::channel::{Channel, Msg};
use crate::config;
use crate::container::{live_status, wait_forwarding_signals};
use crate::error::{Context, Error, Result};
use crate::process_attrs as pa;
use crate::state::{self, ContainerDir, Status};
use berth_cgroups::Version;
use berth_sys::fs as sfs;
use berth_sys::process as sp;
use oci_spec::runtime::Process;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::PathBuf;

/// Options of `exec`, as runc's flags give them.
#[derive(Debug, Clone, Default)]
pub struct ExecOptions {
    pub root: PathBuf,
    pub id: String,
    /// A process.json (`-` for stdin) replacing the container's process.
    pub process: Option<PathBuf>,
    /// The command, when there is no `--process`.
    pub args: Vec<String>,
    pub tty: bool,
    pub console_socket: Option<PathBuf>,
    pub cwd: Option<PathBuf>,
    /// KEY=VALUE, added to (or replacing in) the process's environment.
    pub env: Vec<String>,
    /// `uid[:gid]`.
    pub user: Option<String>,
    pub additional_gids: Vec<u32>,
    /// Capabilities added to the bounding, effective and permitted sets.
    pub caps: Vec<String>,
    pub no_new_privs: bool,
    pub apparmor: Option<String>,
    pub process_label: Option<String>,
    pub detach: bool,
    pub pid_file: Option<PathBuf>,
    pub preserve_fds: u32,
    /// A sub-cgroup of the container's to run the process in.
    pub cgroup: Option<String>,
    /// Exec into a paused container too (runc's --ignore-paused).
    pub ignore_paused: bool,
}

/// Namespace kinds in `/proc/<pid>/ns`, with their clone flags.
const NAMESPACES: &[(&str, u64)] = &[
    ("user", libc::CLONE_NEWUSER as u64),
    ("mnt", libc::CLONE_NEWNS as u64),
    ("pid", libc::CLONE_NEWPID as u64),
    ("net", libc::CLONE_NEWNET as u64),
    ("ipc", libc::CLONE_NEWIPC as u64),
    ("uts", libc::CLONE_NEWUTS as u64),
    ("cgroup", libc::CLONE_NEWCGROUP as u64),
    ("time", sp::CLONE_NEWTIME),
];

/// The namespaces of `pid` that are not ours (joining one we are already
/// in is refused for user namespaces, and pointless for the others).
fn foreign_namespaces(pid: i32) -> Result<u64> {
    use std::os::unix::fs::MetadataExt;
    let mut flags = 0;
    for (name, flag) in NAMESPACES {
        let theirs = match std::fs::metadata(format!("/proc/{pid}/ns/{name}")) {
            Ok(m) => m,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue, // kernel without it
            Err(e) => return Err(e).with_ctx(|| format!("read the container's {name} namespace")),
        };
        let ours = std::fs::metadata(format!("/proc/self/ns/{name}"))
            .with_ctx(|| format!("read our {name} namespace"))?;
        if (theirs.dev(), theirs.ino()) != (ours.dev(), ours.ino()) {
            flags |= flag;
        }
    }
    Ok(flags)
}

/// The process to start: `--process`, or the container's with the flags
/// applied, as runc builds it.
fn build_process(o: &ExecOptions, container: Option<&Process>) -> Result<Process> {
    let mut p = match &o.process {
        Some(path) => {
            let data = if path.as_os_str() == "-" {
                let mut v = Vec::new();
                std::io::Read::read_to_end(&mut std::io::stdin(), &mut v)
                    .ctx("read --process from stdin")?;
                v
            } else {
                std::fs::read(path).with_ctx(|| format!("read --process {}", path.display()))?
            };
            let bad = |field: String, msg: String| {
                crate::error::config(
                    if field.is_empty() || field == "." {
                        format!("--process {}", path.display())
                    } else {
                        format!("--process {}: {field}", path.display())
                    },
                    msg,
                )
            };
            let mut v: serde_json::Value =
                serde_json::from_slice(&data).map_err(|e| bad(String::new(), e.to_string()))?;
            // runc (Go structs) takes a process without `user` as uid and
            // gid 0; oci-spec requires the field.
            if let Some(obj) = v.as_object_mut() {
                obj.entry("user")
                    .or_insert_with(|| serde_json::json!({"uid": 0, "gid": 0}));
            }
            serde_path_to_error::deserialize::<_, Process>(v)
                .map_err(|e| bad(e.path().to_string(), e.inner().to_string()))?
        }
        None => {
            let mut p = container
                .cloned()
                .ok_or_else(|| Error::Usage("the container has no process to start from".into()))?;
            if o.args.is_empty() {
                return Err(Error::Usage(
                    "exec needs a command (or --process FILE)".into(),
                ));
            }
            p.set_args(Some(o.args.clone()));
            p.set_terminal(Some(o.tty));
            p
        }
    };
    if o.tty {
        p.set_terminal(Some(true));
    }
    if let Some(cwd) = &o.cwd {
        p.set_cwd(cwd.clone());
    }
    if !o.env.is_empty() {
        let mut env = p.env().clone().unwrap_or_default();
        for e in &o.env {
            let key = e.split('=').next().unwrap_or_default();
            env.retain(|old| old.split('=').next() != Some(key));
            env.push(e.clone());
        }
        p.set_env(Some(env));
    }
    if let Some(u) = &o.user {
        let (uid, gid) = match u.split_once(':') {
            Some((u, g)) => (u, Some(g)),
            None => (u.as_str(), None),
        };
        let num = |s: &str| {
            s.parse::<u32>().map_err(|_| {
                Error::Usage(format!(
                    "--user {u:?}: give numeric ids (uid[:gid]); names are resolved by the engine"
                ))
            })
        };
        let mut user = p.user().clone();
        user.set_uid(num(uid)?);
        if let Some(g) = gid {
            user.set_gid(num(g)?);
        }
        p.set_user(user);
    }
    if !o.additional_gids.is_empty() {
        let mut user = p.user().clone();
        user.set_additional_gids(Some(o.additional_gids.clone()));
        p.set_user(user);
    }
    if !o.caps.is_empty() {
        let mut caps = p.capabilities().clone().unwrap_or_default();
        let add = |set: &Option<oci_spec::runtime::Capabilities>,
                   cap: oci_spec::runtime::Capability| {
            let mut s = set.clone().unwrap_or_default();
            s.insert(cap);
            Some(s)
        };
        for c in &o.caps {
            let name = c.to_ascii_uppercase();
            let name = if name.starts_with("CAP_") {
                name
            } else {
                format!("CAP_{name}")
            };
            let cap: oci_spec::runtime::Capability = serde_json::from_value(name.into())
                .map_err(|_| Error::Usage(format!("--cap {c:?}: unknown capability")))?;
            caps.set_bounding(add(caps.bounding(), cap));
            caps.set_effective(add(caps.effective(), cap));
            caps.set_permitted(add(caps.permitted(), cap));
        }
        p.set_capabilities(Some(caps));
    }
    if o.no_new_privs {
        p.set_no_new_privileges(Some(true));
    }
    if let Some(a) = o.apparmor.as_deref().filter(|a| !a.is_empty()) {
        p.set_apparmor_profile(Some(a.to_string()));
    }
    if let Some(l) = o.process_label.as_deref().filter(|l| !l.is_empty()) {
        p.set_selinux_label(Some(l.to_string()));
    }
    config::validate_process(&p)?;
    Ok(p)
}

/// `exec`: returns the process's exit code (128+N for signal N), or 0 at
/// once with `detach`.
pub fn exec(o: &ExecOptions) -> Result<i32> {
    state::validate_id(&o.id)?;
    let rec = {
        let dir = ContainerDir::open(&o.root, &o.id, false)?;
        dir.load()?
    };
    // On v1 the process moves itself into the container's cgroups before it
    // joins anything (`Manager::join_v1_self`: no RCU grace period), while
    // it is still root in the host's namespaces. A runtime that is not root
    // moves it (the host's `tasks` files may not be its to write), and
    // starts that wait now.
    // SAFETY: geteuid has no preconditions.
    let self_place = unsafe { libc::geteuid() } == 0
        && rec
            .cgroup
            .as_ref()
            .is_some_and(|c| c.version != berth_cgroups::Version::V2);
    let _warm_up = crate::cgwarm::WarmUp::start(
        rec.cgroup
            .as_ref()
            .filter(|c| c.version != berth_cgroups::Version::V2 && !self_place)
            .and_then(|_| berth_cgroups::Layout::from_host().ok())
            .as_ref(),
    );
    let status = live_status(&o.root, &rec, false);
    let allowed = matches!(status, Status::Running | Status::Created)
        || (o.ignore_paused && status == Status::Paused);
    if !allowed {
        return Err(Error::BadState {
            id: o.id.clone(),
            op: "exec into",
            status: status.as_str(),
        });
    }
    let kept = match &rec.process {
        Some(k) => Some(k.get(&o.id, "process")?),
        None => None,
    };
    let process = build_process(o, kept.as_ref())?;
    let terminal = process.terminal() == Some(true);
    if terminal && o.detach && o.console_socket.is_none() {
        return Err(Error::Usage(
            "--tty with --detach needs --console-socket to hand the terminal to".into(),
        ));
    }
    let seccomp = match &rec.seccomp {
        Some(k) => Some(config::compile_seccomp(&o.root, &k.get(&o.id, "seccomp")?)?),
        None => None,
    };
    // The init, held by a pidfd checked against its start time.
    let pidfd = sp::pidfd_open(rec.pid).ctx("open a pidfd on the container's init")?;
    if !state::alive(rec.pid, rec.pid_start) {
        return Err(Error::BadState {
            id: o.id.clone(),
            op: "exec into",
            status: "stopped",
        });
    }
    let ns = foreign_namespaces(rec.pid)?;
    let for_children = ns & (libc::CLONE_NEWPID as u64 | sp::CLONE_NEWTIME);
    if for_children != 0 {
        sp::setns(pidfd.as_fd(), for_children as i32)
            .ctx("join the container's pid and time namespaces")?;
    }
    let own = ns & !for_children;

    let cg = rec.cgroup.clone();
    let sub = o
        .cgroup
        .as_deref()
        .unwrap_or("")
        .trim_matches('/')
        .to_string();
    if sub.split('/').any(|c| c == "..") {
        return Err(Error::Usage(format!("--cgroup {sub:?}: no '..' allowed")));
    }
    let v2 = cg.as_ref().is_some_and(|c| c.version == Version::V2);
    // Started in its cgroup2 directory (v2, and a hybrid layout's
    // unified hierarchy when it moves itself into the v1 ones).
    let cg_fd = match &cg {
        Some(c) if self_place => c.cgroup2_dir_fd(&sub)?,
        Some(c) => c.v2_dir_fd(&sub)?,
        None => None,
    };

    let console = match (&o.console_socket, terminal) {
        (Some(p), true) => Some(
            berth_sys::socket::connect_unix(p)
                .with_ctx(|| format!("connect to --console-socket {}", p.display()))?,
        ),
        _ => None,
    };
    // Without a console socket, the pty master comes back to us to relay.
    let relay = if terminal && console.is_none() {
        Some(berth_sys::socket::seqpacket_pair().ctx("create the console socket pair")?)
    } else {
        None
    };
    let (relay_ours, relay_theirs) = match relay {
        Some((a, b)) => (Some(a), Some(b)),
        None => (None, None),
    };
    let old_mask = if o.detach {
        None
    } else {
        Some(sp::block_all_signals().ctx("block signals")?)
    };
    let (chan, child_chan) = Channel::pair()?;
    let child = Child {
        process: &process,
        chan: &child_chan,
        pidfd: &pidfd,
        ns: own,
        console: console.as_ref().or(relay_theirs.as_ref()),
        seccomp: seccomp.as_ref(),
        preserve_fds: o.preserve_fds,
        sigmask: old_mask,
        join_v1: cg
            .as_ref()
            .filter(|_| self_place)
            .map(|c| (c, sub.as_str())),
        close: [
            cg_fd.as_ref().map(|f| f.as_raw_fd()),
            relay_ours.as_ref().map(|f| f.as_raw_fd()),
        ],
        personality: rec.personality.as_ref(),
    };
    // SAFETY: berth-runtime is single-threaded.
    let forked = unsafe { sp::clone3(sp::CLONE_PIDFD, cg_fd.as_ref().map(|f| f.as_fd())) }
        .ctx("create the exec process (clone3)");
    let forked = match forked {
        Ok(f) => f,
        Err(e) => {
            if let Some(m) = &old_mask {
                let _ = sp::set_sigmask(m);
            }
            return Err(e);
        }
    };
    let (pid, child_pidfd) = match forked {
        sp::Forked::Child => {
            drop(chan);
            child_main(&child)
        }
        sp::Forked::Parent { pid, pidfd } => (pid, pidfd),
    };
    drop(child_chan);
    drop(relay_theirs);
    let result = parent_side(
        o,
        &rec,
        &process,
        &chan,
        pid,
        cg.as_ref().filter(|_| !self_place),
        &sub,
        v2,
        seccomp.as_ref(),
    );
    if let Err(e) = result {
        let _ = sp::kill(pid, libc::SIGKILL);
        let _ = sp::waitpid(pid);
        if let Some(m) = &old_mask {
            let _ = sp::set_sigmask(m);
        }
        return Err(e);
    }
    if o.detach {
        return Ok(0);
    }
    let child_pidfd = match child_pidfd {
        Some(fd) => fd,
        None => sp::pidfd_open(pid).ctx("open a pidfd on the exec process")?,
    };
    let master = match &relay_ours {
        Some(sock) => {
            let mut buf = [0u8; 64];
            berth_sys::socket::recv(sock.as_fd(), &mut buf)
                .ok()
                .and_then(|(_, fd)| fd)
        }
        None => None,
    };
    let status = wait_forwarding_signals(&child_pidfd, pid, master.as_ref());
    if let Some(m) = &old_mask {
        let _ = sp::set_sigmask(m);
    }
    Ok(status?.code())
}

/// The runtime's part once the child exists: cgroup placement on v1,
/// oom_score_adj, the seccomp listener, and the child's verdict.
#[allow(clippy::too_many_arguments)]
fn parent_side(
    o: &ExecOptions,
    rec: &state::Record,
    process: &Process,
    chan: &Channel,
    pid: i32,
    cg: Option<&berth_cgroups::Manager>,
    sub: &str,
    v2: bool,
    seccomp: Option<&berth_seccomp::Filter>,
) -> Result<()> {
    if let (Some(cg), false) = (cg, v2) {
        cg.add(pid, sub)?;
    }
    if let Some(adj) = process.oom_score_adj() {
        std::fs::write(format!("/proc/{pid}/oom_score_adj"), adj.to_string())
            .ctx("set process.oomScoreAdj")?;
    }
    // If the child failed already, its error is waiting below.
    let _ = chan.send(&Msg::Placed);
    let init_err = |msg: String| Error::Init {
        id: o.id.clone(),
        msg,
    };
    loop {
        match chan.recv_fd()? {
            // End of file: the channel is close-on-exec, so the exec happened.
            None => break,
            Some((Msg::Error(msg), _)) => return Err(init_err(msg)),
            Some((Msg::SeccompFd, Some(fd))) => {
                let f =
                    seccomp.ok_or_else(|| Error::Usage("seccomp fd without a profile".into()))?;
                let st = rec.oci(Status::Running);
                crate::container::send_seccomp_fd(f, fd, &st)?;
            }
            Some((other, _)) => {
                return Err(Error::Usage(format!(
                    "unexpected message {other:?} from the exec process"
                )))
            }
        }
    }
    if let Some(pf) = &o.pid_file {
        sfs::replace_file(pf, pid.to_string().as_bytes(), 0o644)
            .with_ctx(|| format!("write --pid-file {}", pf.display()))?;
    }
    Ok(())
}

/// What the forked child needs, borrowed from the runtime's memory.
struct Child<'a> {
    process: &'a Process,
    chan: &'a Channel,
    pidfd: &'a OwnedFd,
    /// Namespaces to join with setns (pid and time were joined for us).
    ns: u64,
    console: Option<&'a OwnedFd>,
    seccomp: Option<&'a berth_seccomp::Filter>,
    preserve_fds: u32,
    sigmask: Option<libc::sigset_t>,
    /// The runtime's fds the child must not keep.
    close: [Option<std::os::fd::RawFd>; 2],
    /// The container's `linux.personality`.
    personality: Option<&'a oci_spec::runtime::LinuxPersonality>,
    /// The container's cgroup (and sub-cgroup) to move into on v1 first
    /// thing; `None` when the runtime moves it (or on v2).
    join_v1: Option<(&'a berth_cgroups::Manager, &'a str)>,
}

fn child_main(c: &Child<'_>) -> ! {
    let err = match child_setup(c) {
        Ok(never) => match never {},
        Err(e) => e,
    };
    let _ = c.chan.send(&Msg::Error(err.to_string()));
    sp::exit_now(1)
}

fn child_setup(c: &Child<'_>) -> Result<std::convert::Infallible> {
    for fd in c.close.iter().flatten() {
        // SAFETY: the runtime's copies, unused in this forked child.
        unsafe { libc::close(*fd) };
    }
    if let Some(mask) = &c.sigmask {
        sp::set_sigmask(mask).ctx("restore the signal mask")?;
    }
    sp::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as u64, 0, 0, 0)
        .ctx("set parent-death signal")?;
    if let Some((cg, sub)) = c.join_v1 {
        cg.join_v1_self_sub(sub)?;
    }
    // CVE-2019-5736: no /proc/<us>/exe for the container while we are the
    // runtime's binary.
    sp::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0).ctx("make the process non-dumpable")?;
    // The LSM label's attr file, opened through the host's procfs while we
    // are still in the host's mount namespace (CVE-2025-52881).
    let label = crate::lsm::prepare(c.process)?;
    if c.ns != 0 {
        sp::setns(c.pidfd.as_fd(), c.ns as i32).ctx("join the container's namespaces")?;
    }
    let p = c.process;
    if c.ns & libc::CLONE_NEWNS as u64 == 0 {
        // Containers always have a mount namespace of their own (config
        // validation requires it); without one we would be on the host's /.
        return Err(Error::Usage(
            "the container shares the runtime's mount namespace; refusing to exec on the host's root".into(),
        ));
    }
    // setns into the mount namespace put our root and cwd at its root: the
    // container's. A session of our own, as runc's exec processes have.
    sp::setsid().ctx("create a session (setsid)")?;
    let user = p.user();
    let cwd_again = pa::cwd_before_user(p.cwd())?;
    if p.terminal() == Some(true) {
        let slave = crate::tty::open_for_process(c.console, p)?;
        crate::tty::take_as_stdio(slave.as_fd())?;
    }
    pa::give_stdio(user.uid(), user.gid(), p.terminal() == Some(true))?;
    if let Some(per) = c.personality {
        sp::personality(pa::personality_value(per)?).ctx("set linux.personality")?;
    }
    if let Some(r) = p.rlimits() {
        pa::set_rlimits(r)?;
    }
    if let Some(io) = p.io_priority() {
        pa::set_io_priority(io.class(), io.priority())?;
    }
    if let Some(s) = p.scheduler() {
        pa::set_scheduler(s)?;
    }
    let mut env: Vec<String> = p.env().clone().unwrap_or_default();
    if !env.iter().any(|e| e.starts_with("PATH=")) {
        env.push(format!("PATH={}", pa::DEFAULT_PATH));
    }
    pa::add_home(&mut env, user.uid());
    let args = p.args().clone().unwrap_or_default();
    let argv = crate::init::to_cstrings(&args, "process.args")?;
    let envp = crate::init::to_cstrings(&env, "process.env")?;
    // Placed in the container's cgroups (v1: we moved ourselves, or the
    // runtime moved us).
    match c.chan.expect("the runtime placed it in its cgroups")? {
        Msg::Placed => {}
        other => {
            return Err(Error::Usage(format!(
                "unexpected message {other:?} while waiting for cgroup placement"
            )))
        }
    }
    if let Some(l) = label {
        l.apply()?;
    }
    // As for the init: the filter comes last, over the program only.
    let exe = crate::init::become_process(p, c.seccomp.is_some(), cwd_again, &env, c.preserve_fds)?;
    if let Some(f) = c.seccomp {
        crate::init::load_seccomp(c.chan, f)?;
    }
    Err(sp::execve(&exe, &argv, &envp)).with_ctx(|| format!("exec {:?}", args[0]))
}
