//! The processes the runtime clones: the optional *stage* (joins existing
//! namespaces, creates the user and time namespaces, then clones the init)
//! and the container's *init*, which sets the container up in named steps
//! and finally execs the user's program.
//!
//! Both are forks of the single-threaded runtime (no re-exec of a binary):
//! they may allocate, but they report every error over the channel rather
//! than unwinding.

use crate::channel::{Channel, Msg};
use crate::config::Namespaces;
use crate::error::{Context, Error, Result};
use crate::hooks;
use crate::process_attrs::{self as pa, CapMasks};
use crate::rootfs::Rootfs;
use crate::state::{OciState, Status};
use berth_cgroups::Manager;
use berth_sys::fs as sfs;
use berth_sys::process as sp;
use oci_spec::runtime::Spec;
use std::convert::Infallible;
use std::io::Write;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};

/// Everything the child processes need, borrowed from the runtime's memory
/// (they are forks: no serialization needed).
pub(crate) struct InitArgs<'a> {
    pub id: &'a str,
    pub spec: &'a Spec,
    pub ns: &'a Namespaces,
    pub chan: &'a Channel,
    pub rootfs: &'a Path,
    pub bundle: &'a Path,
    /// `O_PATH` fd on exec.fifo (`create`); `None` for `run`.
    pub fifo: Option<&'a OwnedFd>,
    /// `create`: the state directory's `init.err`, open for writing. An
    /// init that fails after `create` has returned (nobody listens on the
    /// channel then) and before `start` opened the fifo leaves its error
    /// there for `start` to report.
    pub err_file: Option<&'a OwnedFd>,
    /// Connected --console-socket, when process.terminal is set.
    pub console: Option<&'a OwnedFd>,
    /// Namespaces to join, opened by the runtime: (CLONE_NEW* flag, fd).
    pub ns_fds: &'a [(i32, OwnedFd)],
    /// Without a user namespace: idmapped bind sources cloned by the
    /// runtime, by mount index (see `rootfs::bind_trees`).
    pub bind_trees: &'a [Option<OwnedFd>],
    pub no_pivot: bool,
    pub preserve_fds: u32,
    pub cgroup: Option<&'a Manager>,
    /// Whether the cgroup namespace is unshared by init after placement.
    pub cgroupns_unshare: bool,
    /// Whether the runtime places the init in its cgroups after the clone
    /// (cgroup v1) and says [`Msg::Placed`] when done.
    pub wait_placed: bool,
    /// With `wait_placed`: [`Msg::Placed`] says the cgroups exist, and the
    /// init moves itself into them (`Manager::join_v1_self`).
    pub self_place: bool,
    /// A staged init's stage process moves itself into the v1 cgroups
    /// (`Manager::join_v1_self`, before it joins or makes any namespace)
    /// instead of being moved by the runtime: no RCU grace period. The
    /// cgroup2 directory of a hybrid layout it was cloned into.
    pub stage_self_place: bool,
    /// The compiled `linux.seccomp` profile, loaded just before the exec.
    pub seccomp: Option<&'a berth_seccomp::Filter>,
    /// Signal mask to restore (the runtime may have blocked signals).
    pub sigmask: Option<libc::sigset_t>,
    pub extra_env: &'a [String],
    /// Whether init stops before pivot_root for the runtime's hooks.
    pub hooks_handshake: bool,
    /// The runtime's own fds (state-directory lock, cgroup directory) that
    /// the child must not keep: a held lock would block every later command.
    pub close_fds: &'a [std::os::fd::RawFd],
}

fn close_runtime_fds(a: &InitArgs<'_>) {
    for fd in a.close_fds {
        // SAFETY: these fds belong to the runtime's copy of the objects; in
        // this forked child nothing else refers to them.
        unsafe { libc::close(*fd) };
    }
}

/// Entry of the stage process. Never returns.
pub(crate) fn stage_main(a: &InitArgs<'_>, init_flags: u64) -> ! {
    match stage(a, init_flags) {
        Ok(()) => sp::exit_now(0),
        Err(e) => {
            let _ = a.chan.send(&Msg::Error(e.to_string()));
            sp::exit_now(1)
        }
    }
}

/// Whether the container's first process starts in the rootfs (the
/// runtime enters it around the clone, as the host's root): with a user
/// namespace, the container's root may not reach the rootfs by its path
/// (a directory on it it cannot search), and the new mount namespace's
/// copy of the working directory is the rootfs (`Rootfs::from_cwd`).
pub(crate) fn enters_rootfs(a: &InitArgs<'_>) -> bool {
    a.ns.has(libc::CLONE_NEWUSER) && a.ns.has_new(libc::CLONE_NEWNS)
}

fn stage(a: &InitArgs<'_>, init_flags: u64) -> Result<()> {
    close_runtime_fds(a);
    sp::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as u64, 0, 0, 0)
        .ctx("set parent-death signal")?;
    // Still root in the host's namespaces, and single-threaded: our own
    // move into the v1 cgroups takes no global lock (the init we fork
    // inherits them).
    if let Some(cg) = a.cgroup.filter(|_| a.stage_self_place) {
        cg.join_v1_self()?;
    }
    sp::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0).ctx("make the process non-dumpable")?;
    expect_go(a.chan)?;
    // Join the user namespace first: the other namespaces of another
    // container are owned by it, and only there do we hold the rights to
    // enter them.
    let mut fds: Vec<&(i32, OwnedFd)> = a.ns_fds.iter().collect();
    fds.sort_by_key(|(f, _)| *f != libc::CLONE_NEWUSER);
    for (flag, fd) in fds {
        sp::setns(fd.as_fd(), *flag).with_ctx(|| {
            format!(
                "join the {} namespace (linux.namespaces)",
                crate::config::ns_name(*flag)
            )
        })?;
    }
    if a.ns.has_new(libc::CLONE_NEWUSER) {
        sp::unshare(libc::CLONE_NEWUSER).ctx("create the user namespace")?;
        // Dumpable while the runtime writes our maps: a non-root runtime
        // cannot write the /proc files of a non-dumpable process.
        sp::prctl(libc::PR_SET_DUMPABLE, 1, 0, 0, 0).ctx("make the process dumpable")?;
        a.chan.send(&Msg::NeedMaps)?;
        expect_go(a.chan)?;
        sp::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0).ctx("make the process non-dumpable")?;
    }
    let time = sp::CLONE_NEWTIME as i32;
    if a.ns.has_new(time) {
        sp::unshare(time).ctx("create the time namespace")?;
        write_time_offsets(a.spec)?;
    }
    // The init shares our end of the channel. It must not speak before we
    // have said its pid, or the runtime would read its first message
    // (Ready, an error) where it expects InitPid: it waits on this pipe,
    // which we close once InitPid is sent.
    let (hold_r, hold_w) = sp::pipe().ctx("create the stage's hold pipe")?;
    // CLONE_PARENT: the init becomes the runtime's child, not ours, so the
    // runtime (or its caller's subreaper) reaps it and sees its exit status.
    // SAFETY: this process is a fork of the single-threaded runtime.
    match unsafe { sp::clone3(init_flags | sp::CLONE_PARENT, None) }
        .ctx("create the container process")?
    {
        sp::Forked::Child => {
            drop(hold_w);
            let mut b = [0u8; 1];
            // A byte: go on. End of file: the stage died before it could
            // tell the runtime our pid, which then fails the create.
            let mut r = std::fs::File::from(hold_r);
            loop {
                match std::io::Read::read(&mut r, &mut b) {
                    Ok(1) => break,
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                    _ => sp::exit_now(1),
                }
            }
            drop(r);
            init_main(a, false)
        }
        sp::Forked::Parent { pid, .. } => {
            drop(hold_r);
            a.chan.send(&Msg::InitPid(pid))?;
            std::fs::File::from(hold_w)
                .write_all(b"g")
                .ctx("release the container process")
        }
    }
}

fn expect_go(chan: &Channel) -> Result<()> {
    match chan.expect("it was told to go on")? {
        Msg::Go => Ok(()),
        other => Err(Error::Usage(format!(
            "unexpected message {other:?} while waiting to go on"
        ))),
    }
}

fn write_time_offsets(spec: &Spec) -> Result<()> {
    let Some(offsets) = spec
        .linux()
        .as_ref()
        .and_then(|l| l.time_offsets().as_ref())
    else {
        return Ok(());
    };
    let mut text = String::new();
    for (clock, off) in offsets {
        text.push_str(&format!(
            "{clock} {} {}\n",
            off.secs().unwrap_or(0),
            off.nanosecs().unwrap_or(0)
        ));
    }
    std::fs::write("/proc/self/timens_offsets", text)
        .ctx("write linux.timeOffsets to /proc/self/timens_offsets")
}

/// Entry of the container's init. Never returns: it execs or exits.
pub(crate) fn init_main(a: &InitArgs<'_>, wait_go: bool) -> ! {
    let mut fifo_writer: Option<std::fs::File> = None;
    let err = match setup_and_exec(a, wait_go, &mut fifo_writer) {
        Ok(never) => match never {},
        Err(e) => e,
    };
    // Before `start` released us, the runtime is listening on the channel;
    // after, `start` is reading the fifo.
    match fifo_writer {
        Some(mut f) => {
            let _ = f.write_all(err.to_string().as_bytes());
        }
        None => {
            let _ = a.chan.send(&Msg::Error(err.to_string()));
            if let Some(fd) = a.err_file {
                if let Ok(f) = fd.try_clone() {
                    let _ = std::fs::File::from(f).write_all(err.to_string().as_bytes());
                }
            }
        }
    }
    sp::exit_now(1)
}

fn setup_and_exec(
    a: &InitArgs<'_>,
    wait_go: bool,
    fifo_writer: &mut Option<std::fs::File>,
) -> Result<Infallible> {
    close_runtime_fds(a);
    if let Some(mask) = &a.sigmask {
        sp::set_sigmask(mask).ctx("restore the signal mask")?;
    }
    // A session of its own, with or without a terminal, as runc does: a
    // signal to the caller's process group or a hangup of its terminal
    // must not reach the container.
    sp::setsid().ctx("create a session (setsid)")?;
    // If the runtime dies before we are ready, so do we.
    sp::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as u64, 0, 0, 0)
        .ctx("set parent-death signal")?;
    // Non-dumpable: the container cannot open /proc/<us>/exe (the runtime's
    // binary, CVE-2019-5736) nor ptrace us while we hold host fds. execve
    // makes the user's program dumpable again. Not before Go: until then
    // the runtime writes our uid_map and gid_map, which a non-root runtime
    // cannot do to a non-dumpable process (its /proc files become root's),
    // and nothing of the container exists yet to look at us.
    if wait_go {
        expect_go(a.chan)?;
    }
    sp::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0).ctx("make the process non-dumpable")?;
    let spec = a.spec;
    let process = spec
        .process()
        .as_ref()
        .ok_or_else(|| crate::error::config("process", "is required"))?;
    let userns = a.ns.has(libc::CLONE_NEWUSER);
    if userns {
        // Become root of the user namespace so that what we create is owned
        // by a mapped id.
        sp::setresgid(0)
            .ctx("become gid 0 in the user namespace (is 0 mapped in linux.gidMappings?)")?;
        sp::setresuid(0)
            .ctx("become uid 0 in the user namespace (is 0 mapped in linux.uidMappings?)")?;
    }
    set_names(spec)?;
    if a.ns.has_new(libc::CLONE_NEWNET) {
        // runc's "loopback" network: a new namespace has `lo` down.
        berth_sys::socket::loopback_up().ctx("bring up the loopback interface")?;
    }
    apply_sysctls(spec)?;
    // Opened now, through the host's procfs, before the container's rootfs
    // is in play (CVE-2025-52881); written just before the security steps.
    let label = crate::lsm::prepare(process)?;

    let rf = Rootfs {
        spec,
        rootfs: a.rootfs,
        bundle: a.bundle,
        userns,
        from_cwd: enters_rootfs(a),
        netns_new: a.ns.has_new(libc::CLONE_NEWNET),
        cgroupns_new: a.ns.has_new(libc::CLONE_NEWCGROUP),
        cgroup: a.cgroup,
        await_placed: std::cell::Cell::new(a.wait_placed.then_some(a.chan)),
        self_place: a.self_place,
        dev_readonly: std::cell::Cell::new(false),
        bind_trees: a.bind_trees,
        chan: a.chan,
    };
    // The umask must not bend the modes of what we create.
    sp::umask(0);
    // The fifo is reopened through the host's procfs, opened now: the
    // container's own /proc may be missing or anything an image made.
    let host_proc = match a.fifo {
        Some(_) => Some(crate::lsm::host_proc()?),
        None => None,
    };
    let root = rf.prepare()?;
    // The runtime made our cgroups and moved us in while we mounted (on v1
    // the first move waits for an RCU grace period: overlapping saves it).
    rf.wait_placed()?;
    if a.cgroupns_unshare {
        // After placement: the namespace's root is the container's cgroup.
        sp::unshare(libc::CLONE_NEWCGROUP).ctx("create the cgroup namespace")?;
    }
    let mut host_pid = 0;
    if a.hooks_handshake {
        a.chan.send(&Msg::MountsDone)?;
        match a.chan.expect("the runtime ran its hooks")? {
            Msg::HooksDone { pid } => host_pid = pid,
            other => {
                return Err(Error::Usage(format!(
                    "unexpected message {other:?} while waiting for hooks"
                )))
            }
        }
        let hooks = spec
            .hooks()
            .as_ref()
            .and_then(|h| h.create_container().clone())
            .unwrap_or_default();
        // In the container's mount namespace, before pivot_root, with the
        // container's root as the working directory (as runc runs them),
        // entered through its fd: the rootfs's path may cross a directory
        // the container's root cannot search.
        let root_dir = PathBuf::from(format!("/proc/self/fd/{}", root.as_raw_fd()));
        hooks::run_all_in(
            "createContainer",
            &hooks,
            &hook_state(a, Status::Creating, host_pid),
            None,
            Some(&root_dir),
        )?;
    }
    rf.pivot(root, a.no_pivot)?;
    if process.terminal() == Some(true) {
        setup_console(a)?;
    }
    rf.finalize()?;

    if let Some(r) = process.rlimits() {
        pa::set_rlimits(r)?;
    }
    if let Some(p) = spec.linux().as_ref().and_then(|l| l.personality().as_ref()) {
        sp::personality(pa::personality_value(p)?).ctx("set linux.personality")?;
    }
    if let Some(io) = process.io_priority() {
        pa::set_io_priority(io.class(), io.priority())?;
    }
    if let Some(s) = process.scheduler() {
        pa::set_scheduler(s)?;
    }
    if let Some(mp) = spec
        .linux()
        .as_ref()
        .and_then(|l| l.memory_policy().as_ref())
    {
        pa::set_memory_policy(mp)?;
    }
    // Takes effect at our execve, like the rest; written while we still
    // have the privilege to choose any label.
    if let Some(l) = label {
        l.apply()?;
    }
    let mut env: Vec<String> = process.env().clone().unwrap_or_default();
    env.extend(a.extra_env.iter().cloned());
    let user = process.user();
    pa::add_home(&mut env, user.uid());
    pa::reopen_dev_null()?;
    pa::give_stdio(user.uid(), user.gid(), process.terminal() == Some(true))?;
    let cwd_again = pa::cwd_before_user(process.cwd())?;
    // seccomp binds the container's program, not the runtime: every step
    // of ours runs before the filter, which is loaded after Ready and the
    // start handshake, right before startContainer hooks (runc runs those
    // under the filter too) and the execve. Without no_new_privs, loading
    // needs CAP_SYS_ADMIN: we hold it past the user switch (see
    // `switch_user`; the execve drops it). A profile with NOTIFY is loaded
    // before Ready: its listener fd must reach the runtime while the
    // runtime is still listening.
    let args = process.args().clone().unwrap_or_default();
    let argv = to_cstrings(&args, "process.args")?;
    let envp = to_cstrings(&env, "process.env")?;
    let exe = become_process(
        process,
        a.seccomp.is_some(),
        cwd_again,
        &env,
        a.preserve_fds,
    )?;
    let mut seccomp = a.seccomp;
    if let Some(f) = seccomp.filter(|f| f.notify()) {
        load_seccomp(a.chan, f)?;
        seccomp = None;
    }
    a.chan.send(&Msg::Ready)?;

    match (a.fifo, &host_proc) {
        (Some(fifo), Some(proc)) => {
            // Blocks until `start` opens the other end. Reopened from our
            // O_PATH fd through the host's procfs (its `thread-self` is us).
            let rel = PathBuf::from(format!("thread-self/fd/{}", fifo.as_raw_fd()));
            let w = sfs::openat(proc.as_fd(), &rel, libc::O_WRONLY, 0).ctx("open exec.fifo")?;
            let mut f = std::fs::File::from(w);
            f.write_all(b"0").ctx("write exec.fifo")?;
            *fifo_writer = Some(f);
        }
        _ => match a.chan.expect("it was started")? {
            Msg::Start => {}
            other => {
                return Err(Error::Usage(format!(
                    "unexpected message {other:?} while waiting to start"
                )))
            }
        },
    }
    drop(host_proc);
    if let Some(f) = seccomp {
        load_seccomp(a.chan, f)?;
    }
    if let Some(h) = spec
        .hooks()
        .as_ref()
        .and_then(|h| h.start_container().as_ref())
        .filter(|h| !h.is_empty())
    {
        // A hook without an env of its own gets the program's (runc).
        hooks::run_all_in(
            "startContainer",
            h,
            &hook_state(a, Status::Created, host_pid),
            Some(&env),
            None,
        )?;
    }
    Err(sp::execve(&exe, &argv, &envp)).with_ctx(|| format!("exec {:?}", args[0]))
}

/// The last steps of the init and of an exec'd process before their
/// seccomp filter and the execve: the bounding set, the user and the other
/// capability sets, no_new_privs, umask, the working directory (again, as
/// the user, when `cwd_again`) checked to be inside the container, the
/// program looked up as the user, inherited fds marked close-on-exec, the
/// parent-death signal cleared, and every signal at its default with none
/// blocked. With `seccomp_pending` and no no_new_privs, CAP_SYS_ADMIN is
/// held past the user switch to load the filter (see `switch_user`).
/// Returns the program to exec.
pub(crate) fn become_process(
    process: &oci_spec::runtime::Process,
    seccomp_pending: bool,
    cwd_again: bool,
    env: &[String],
    preserve_fds: u32,
) -> Result<std::ffi::CString> {
    let nnp = process.no_new_privileges() == Some(true);
    let caps = CapMasks::from_spec(process.capabilities().as_ref());
    let keep = if seccomp_pending && !nnp {
        pa::CAP_SYS_ADMIN
    } else {
        0
    };
    pa::drop_bounding(caps.bounding)?;
    pa::switch_user(process, &caps, setgroups_allowed(), keep)?;
    if nnp {
        sp::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0).ctx("set process.noNewPrivileges")?;
    }
    sp::umask(process.user().umask().unwrap_or(0o022));
    if cwd_again {
        sfs::chdir(process.cwd())
            .with_ctx(|| format!("chdir to {} (process.cwd)", process.cwd().display()))?;
    }
    verify_cwd(process.cwd())?;
    let args = process.args().as_deref().unwrap_or_default();
    let exe = pa::find_executable(args.first().map(String::as_str).unwrap_or_default(), env)?;
    // CVE-2024-21626: no fd but stdio and the preserved ones may survive
    // exec; ours are already close-on-exec, this catches inherited ones.
    sfs::cloexec_from(3 + preserve_fds).ctx("mark inherited fds close-on-exec")?;
    sp::prctl(libc::PR_SET_PDEATHSIG, 0, 0, 0, 0).ctx("clear parent-death signal")?;
    // The program starts with default signal dispositions and nothing
    // blocked, whatever the runtime or its caller ignored or blocked.
    sp::reset_signals().ctx("reset the signal dispositions and mask")?;
    Ok(exe)
}

/// Loads the compiled profile; a NOTIFY profile's listener fd goes to the
/// runtime, which passes it to `listenerPath`.
pub(crate) fn load_seccomp(chan: &Channel, f: &berth_seccomp::Filter) -> Result<()> {
    let listener = sp::seccomp_set_filter(f.flags, &f.program)
        .ctx("load the seccomp filter (linux.seccomp)")?;
    if let Some(fd) = listener {
        chan.send_fd(&Msg::SeccompFd, fd.as_fd())?;
    }
    Ok(())
}

pub(crate) fn to_cstrings(v: &[String], field: &str) -> Result<Vec<std::ffi::CString>> {
    v.iter()
        .map(|s| {
            std::ffi::CString::new(s.as_bytes())
                .map_err(|_| crate::error::config(field, "contains a NUL byte"))
        })
        .collect()
}

fn hook_state(a: &InitArgs<'_>, status: Status, pid: i32) -> OciState {
    OciState {
        oci_version: a.spec.version().clone(),
        id: a.id.to_string(),
        status,
        pid,
        bundle: a.bundle.to_path_buf(),
        rootfs: a.rootfs.to_path_buf(),
        created: String::new(),
        owner: String::new(),
        annotations: a.spec.annotations().clone().unwrap_or_default(),
    }
}

fn set_names(spec: &Spec) -> Result<()> {
    if let Some(h) = spec.hostname().as_deref().filter(|h| !h.is_empty()) {
        sp::sethostname(h).ctx("set hostname")?;
    }
    if let Some(d) = spec.domainname().as_deref().filter(|d| !d.is_empty()) {
        sp::setdomainname(d).ctx("set domainname")?;
    }
    Ok(())
}

/// Writes linux.sysctl through the host's procfs, opened and checked here,
/// before the container's rootfs (which could hold a fake /proc) is in
/// play (CVE-2025-52881). /proc/sys/net, ipc and uts entries show the
/// namespaces of the process that opens them: ours.
fn apply_sysctls(spec: &Spec) -> Result<()> {
    let Some(sysctl) = spec.linux().as_ref().and_then(|l| l.sysctl().as_ref()) else {
        return Ok(());
    };
    if sysctl.is_empty() {
        return Ok(());
    }
    let proc = crate::lsm::host_proc()?;
    for (k, v) in sysctl {
        // sysctl(8) notation: dots separate levels, slashes stand for dots
        // inside a name (net.ipv4.conf.eth0/1.forwarding).
        let rel: String = k
            .chars()
            .map(|c| match c {
                '.' => '/',
                '/' => '.',
                c => c,
            })
            .collect();
        let path = PathBuf::from("sys").join(rel);
        let fd = sfs::openat2(
            proc.as_fd(),
            &path,
            libc::O_WRONLY,
            0,
            sfs::RESOLVE_BENEATH
                | sfs::RESOLVE_NO_SYMLINKS
                | sfs::RESOLVE_NO_MAGICLINKS
                | sfs::RESOLVE_NO_XDEV,
        )
        .with_ctx(|| format!("open /proc/{} (linux.sysctl.{k})", path.display()))?;
        if sfs::fs_magic(fd.as_fd()).ctx("statfs sysctl file")? != sfs::PROC_SUPER_MAGIC {
            return Err(Error::Usage(format!(
                "linux.sysctl.{k}: the file is not on procfs"
            )));
        }
        std::fs::File::from(fd)
            .write_all(v.as_bytes())
            .with_ctx(|| format!("write linux.sysctl.{k}"))?;
    }
    Ok(())
}

pub(crate) fn setgroups_allowed() -> bool {
    std::fs::read_to_string("/proc/self/setgroups").map_or(true, |s| s.trim() != "deny")
}

/// Makes sure the working directory we entered is inside the container
/// (CVE-2024-21626: a cwd of /proc/self/fd/N would land on a leaked fd).
pub(crate) fn verify_cwd(cwd: &Path) -> Result<()> {
    match sfs::getcwd() {
        Ok(p) if p.is_absolute() => Ok(()),
        _ => Err(Error::Usage(format!(
            "process.cwd {}: the working directory is outside the container",
            cwd.display()
        ))),
    }
}

/// Creates the pty inside the container, sends the master to the console
/// socket, binds the slave on /dev/console and makes it our stdio and
/// controlling terminal.
fn setup_console(a: &InitArgs<'_>) -> Result<()> {
    let process = a
        .spec
        .process()
        .as_ref()
        .ok_or_else(|| crate::error::config("process", "is required"))?;
    let slave = crate::tty::open_for_process(a.console, process)?;
    crate::tty::bind_console(slave.as_fd())?;
    crate::tty::take_as_stdio(slave.as_fd())
}
