//! Processes: clone3, pidfds, credentials, capabilities and the other
//! per-process attributes a container init sets before it execs.

use crate::cvt;
use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

pub const CLONE_NEWTIME: u64 = 0x80;
pub const CLONE_PIDFD: u64 = 0x1000;
pub const CLONE_PARENT: u64 = 0x8000;
pub const CLONE_INTO_CGROUP: u64 = 0x2_0000_0000;

/// `struct clone_args` from <linux/sched.h> (version 2, 88 bytes).
#[repr(C)]
#[derive(Default)]
struct CloneArgs {
    flags: u64,
    pidfd: u64,
    child_tid: u64,
    parent_tid: u64,
    exit_signal: u64,
    stack: u64,
    stack_size: u64,
    tls: u64,
    set_tid: u64,
    set_tid_size: u64,
    cgroup: u64,
}

/// What `clone3` returned on each side.
#[derive(Debug)]
pub enum Forked {
    /// In the parent: the child's pid and, if asked for, a pidfd.
    Parent { pid: i32, pidfd: Option<OwnedFd> },
    /// In the child.
    Child,
}

/// Creates a child process with `clone3(2)`, fork-style (no shared memory).
///
/// `flags` are `CLONE_*` namespace and control flags; `CLONE_PIDFD` makes the
/// parent receive a pidfd; `cgroup` (with `CLONE_INTO_CGROUP`) places the
/// child in that cgroup v2 directory before it runs.
///
/// # Safety
/// The child gets a copy of only the calling thread: a lock another thread
/// held (the allocator's, stdio's, ...) stays held in the child forever.
/// So either the caller is single-threaded, or the child, until it execs
/// or `_exit`s, makes only async-signal-safe calls (raw system calls on
/// memory prepared before the clone: no allocation, no locks, no
/// destructors), the rule `fork` in a multi-threaded program and
/// `pre_exec` closures follow.
pub unsafe fn clone3(flags: u64, cgroup: Option<BorrowedFd<'_>>) -> io::Result<Forked> {
    let mut pidfd: RawFd = -1;
    let mut args = CloneArgs {
        flags,
        // With CLONE_PARENT the child takes its parent's exit signal; the
        // kernel refuses any other value there.
        exit_signal: if flags & CLONE_PARENT != 0 {
            0
        } else {
            libc::SIGCHLD as u64
        },
        ..Default::default()
    };
    if flags & CLONE_PIDFD != 0 {
        args.pidfd = &mut pidfd as *mut RawFd as u64;
    }
    if let Some(fd) = cgroup {
        args.flags |= CLONE_INTO_CGROUP;
        args.cgroup = fd.as_raw_fd() as u64;
    }
    // SAFETY: args is a valid, fully initialised clone_args of the size we
    // pass; without CLONE_VM the child runs on a copy of our stack, exactly as
    // after fork(). The caller guarantees we are single-threaded or that the
    // child makes only async-signal-safe calls.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_clone3,
            &mut args as *mut CloneArgs,
            std::mem::size_of::<CloneArgs>(),
        )
    };
    match cvt(ret)? {
        0 => Ok(Forked::Child),
        pid => Ok(Forked::Parent {
            pid: pid as i32,
            // SAFETY: the kernel stored a fresh pidfd that nothing else owns.
            pidfd: (pidfd >= 0).then(|| unsafe { OwnedFd::from_raw_fd(pidfd) }),
        }),
    }
}

/// `pidfd_open(2)`: a stable handle on a process that survives pid reuse.
pub fn pidfd_open(pid: i32) -> io::Result<OwnedFd> {
    // SAFETY: plain syscall with integer arguments.
    let fd = cvt(unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) })?;
    // SAFETY: the kernel returned a new fd that we now own.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
}

/// `pidfd_send_signal(2)`.
pub fn pidfd_send_signal(pidfd: BorrowedFd<'_>, sig: i32) -> io::Result<()> {
    // SAFETY: null siginfo is allowed and means "as kill(2) would".
    cvt(unsafe {
        libc::syscall(
            libc::SYS_pidfd_send_signal,
            pidfd.as_raw_fd(),
            sig,
            std::ptr::null::<libc::siginfo_t>(),
            0,
        )
    })?;
    Ok(())
}

/// Waits up to `timeout_ms` (-1 = forever) for the process behind a pidfd to
/// exit. Returns true when it has exited.
pub fn pidfd_wait_exit(pidfd: BorrowedFd<'_>, timeout_ms: i32) -> io::Result<bool> {
    crate::fs::wait_readable(pidfd, timeout_ms)
}

/// `kill(2)`.
pub fn kill(pid: i32, sig: i32) -> io::Result<()> {
    // SAFETY: plain syscall.
    cvt(unsafe { libc::kill(pid, sig) })?;
    Ok(())
}

/// How a child ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitStatus {
    Exited(i32),
    Signaled(i32),
}

impl ExitStatus {
    /// The shell convention: the exit code, or 128 + the signal number.
    pub fn code(self) -> i32 {
        match self {
            ExitStatus::Exited(c) => c,
            ExitStatus::Signaled(s) => 128 + s,
        }
    }
}

/// Blocks until child `pid` ends and reaps it.
pub fn waitpid(pid: i32) -> io::Result<ExitStatus> {
    let mut status = 0;
    // SAFETY: status is a valid out pointer.
    crate::retry(|| cvt(unsafe { libc::waitpid(pid, &mut status, 0) }))?;
    Ok(decode_status(status))
}

/// Reaps any child that has ended, without blocking.
pub fn waitpid_any_nohang() -> io::Result<Option<(i32, ExitStatus)>> {
    let mut status = 0;
    // SAFETY: status is a valid out pointer.
    let pid = unsafe { libc::waitpid(-1, &mut status, libc::WNOHANG) };
    if pid < 0 {
        let e = io::Error::last_os_error();
        return if e.raw_os_error() == Some(libc::ECHILD) {
            Ok(None)
        } else {
            Err(e)
        };
    }
    Ok((pid > 0).then(|| (pid, decode_status(status))))
}

fn decode_status(status: i32) -> ExitStatus {
    if libc::WIFSIGNALED(status) {
        ExitStatus::Signaled(libc::WTERMSIG(status))
    } else {
        ExitStatus::Exited(libc::WEXITSTATUS(status))
    }
}

/// What `/proc/<pid>/stat` says of a process: its state letter and start
/// time (clock ticks since boot). Together with the pid, the start time names
/// one process for good: a reused pid has another start time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProcStat {
    pub state: char,
    pub start_time: u64,
}

/// Reads `/proc/<pid>/stat`; `None` when there is no such process.
pub fn proc_stat(pid: i32) -> Option<ProcStat> {
    let data = std::fs::read(format!("/proc/{pid}/stat")).ok()?;
    parse_proc_stat(&data)
}

/// Parses the contents of `/proc/<pid>/stat`. The command name (field 2) may
/// hold spaces and parentheses, so fields are counted from the last `)`.
pub fn parse_proc_stat(data: &[u8]) -> Option<ProcStat> {
    let close = data.iter().rposition(|&b| b == b')')?;
    let rest = std::str::from_utf8(data.get(close + 1..)?).ok()?;
    let mut fields = rest.split_ascii_whitespace();
    let state = fields.next()?.chars().next()?;
    // After the state (field 3), starttime is field 22: 18 fields further on.
    let start_time = fields.nth(18)?.parse().ok()?;
    Some(ProcStat { state, start_time })
}

/// `setns(2)`.
pub fn setns(fd: BorrowedFd<'_>, nstype: i32) -> io::Result<()> {
    // SAFETY: plain syscall on a borrowed fd.
    cvt(unsafe { libc::setns(fd.as_raw_fd(), nstype) })?;
    Ok(())
}

/// The type (a `CLONE_NEW*` flag) of the namespace behind an nsfs fd
/// (`ioctl(NS_GET_NSTYPE)`); `ENOTTY` when the fd is not a namespace.
pub fn ns_type(fd: BorrowedFd<'_>) -> io::Result<i32> {
    // _IO(0xb7, 0x3) from linux/nsfs.h.
    const NS_GET_NSTYPE: libc::c_ulong = (0xb7 << 8) | 0x3;
    // SAFETY: this ioctl takes no argument and returns the type.
    cvt(unsafe { libc::ioctl(fd.as_raw_fd(), NS_GET_NSTYPE) })
}

/// `seccomp(SECCOMP_SET_MODE_FILTER, flags, prog)`: loads a classic BPF
/// program. With `SECCOMP_FILTER_FLAG_NEW_LISTENER` (8) in `flags` the
/// kernel returns the notification fd, handed back here.
pub fn seccomp_set_filter(
    flags: u32,
    program: &[libc::sock_filter],
) -> io::Result<Option<OwnedFd>> {
    const SECCOMP_SET_MODE_FILTER: libc::c_uint = 1;
    const NEW_LISTENER: u32 = 8;
    let prog = libc::sock_fprog {
        len: u16::try_from(program.len())
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "seccomp program too long"))?,
        filter: program.as_ptr() as *mut libc::sock_filter,
    };
    // SAFETY: `prog` points at `program`, alive for the call; the kernel
    // copies it.
    let ret = cvt(unsafe {
        libc::syscall(
            libc::SYS_seccomp,
            SECCOMP_SET_MODE_FILTER,
            flags,
            &prog as *const libc::sock_fprog,
        )
    })?;
    if flags & NEW_LISTENER != 0 {
        // SAFETY: with NEW_LISTENER the return value is a new fd we own.
        Ok(Some(unsafe { OwnedFd::from_raw_fd(ret as i32) }))
    } else {
        Ok(None)
    }
}

/// `unshare(2)`.
pub fn unshare(flags: i32) -> io::Result<()> {
    // SAFETY: plain syscall.
    cvt(unsafe { libc::unshare(flags) })?;
    Ok(())
}

/// `prctl(2)` with integer arguments.
pub fn prctl(option: i32, arg2: u64, arg3: u64, arg4: u64, arg5: u64) -> io::Result<i32> {
    // SAFETY: every option we use takes integer arguments only.
    cvt(unsafe { libc::prctl(option, arg2, arg3, arg4, arg5) })
}

/// `setresuid(2)`, as the raw syscall: glibc's wrapper would broadcast the
/// change to all threads, which is right but needless in our single thread.
pub fn setresuid(uid: u32) -> io::Result<()> {
    // SAFETY: plain syscall.
    cvt(unsafe { libc::syscall(libc::SYS_setresuid, uid, uid, uid) })?;
    Ok(())
}

/// `setresgid(2)` (raw, see [`setresuid`]).
pub fn setresgid(gid: u32) -> io::Result<()> {
    // SAFETY: plain syscall.
    cvt(unsafe { libc::syscall(libc::SYS_setresgid, gid, gid, gid) })?;
    Ok(())
}

/// `setgroups(2)` (raw, see [`setresuid`]).
pub fn setgroups(groups: &[u32]) -> io::Result<()> {
    // SAFETY: the pointer and length describe a valid slice of gid_t.
    cvt(unsafe { libc::syscall(libc::SYS_setgroups, groups.len(), groups.as_ptr()) })?;
    Ok(())
}

/// The five capability sets as bit masks (bit N = capability N).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct CapSets {
    pub effective: u64,
    pub permitted: u64,
    pub inheritable: u64,
}

#[repr(C)]
struct CapHeader {
    version: u32,
    pid: i32,
}
#[repr(C)]
#[derive(Default, Clone, Copy)]
struct CapData {
    effective: u32,
    permitted: u32,
    inheritable: u32,
}
const LINUX_CAPABILITY_VERSION_3: u32 = 0x2008_0522;

/// `capset(2)` for the calling thread.
pub fn capset(sets: CapSets) -> io::Result<()> {
    let mut header = CapHeader {
        version: LINUX_CAPABILITY_VERSION_3,
        pid: 0,
    };
    let split = |v: u64| (v as u32, (v >> 32) as u32);
    let (e0, e1) = split(sets.effective);
    let (p0, p1) = split(sets.permitted);
    let (i0, i1) = split(sets.inheritable);
    let data = [
        CapData {
            effective: e0,
            permitted: p0,
            inheritable: i0,
        },
        CapData {
            effective: e1,
            permitted: p1,
            inheritable: i1,
        },
    ];
    // SAFETY: header and a two-element data array, as version 3 requires.
    cvt(unsafe { libc::syscall(libc::SYS_capset, &mut header, data.as_ptr()) })?;
    Ok(())
}

/// `capget(2)` for the calling thread.
pub fn capget() -> io::Result<CapSets> {
    let mut header = CapHeader {
        version: LINUX_CAPABILITY_VERSION_3,
        pid: 0,
    };
    let mut data = [CapData::default(); 2];
    // SAFETY: header and a two-element data array, as version 3 requires.
    cvt(unsafe { libc::syscall(libc::SYS_capget, &mut header, data.as_mut_ptr()) })?;
    let join = |lo: u32, hi: u32| u64::from(lo) | (u64::from(hi) << 32);
    Ok(CapSets {
        effective: join(data[0].effective, data[1].effective),
        permitted: join(data[0].permitted, data[1].permitted),
        inheritable: join(data[0].inheritable, data[1].inheritable),
    })
}

/// `setrlimit(2)`.
pub fn setrlimit(resource: u32, soft: u64, hard: u64) -> io::Result<()> {
    let lim = libc::rlimit {
        rlim_cur: soft,
        rlim_max: hard,
    };
    // SAFETY: valid pointer to an rlimit. The resource type differs between
    // libc flavours, hence the cast through the inferred type.
    cvt(unsafe { libc::setrlimit(resource as _, &lim) })?;
    Ok(())
}

/// `personality(2)`.
pub fn personality(persona: u64) -> io::Result<()> {
    // SAFETY: plain syscall.
    cvt(unsafe { libc::personality(persona as libc::c_ulong) })?;
    Ok(())
}

/// `ioprio_set(IOPRIO_WHO_PROCESS, 0, class << 13 | level)`.
pub fn ioprio_set_self(class: u32, level: u32) -> io::Result<()> {
    const IOPRIO_WHO_PROCESS: i32 = 1;
    let prio = (class << 13) | (level & 0x1fff);
    // SAFETY: plain syscall.
    cvt(unsafe { libc::syscall(libc::SYS_ioprio_set, IOPRIO_WHO_PROCESS, 0, prio) })?;
    Ok(())
}

/// `struct sched_attr` from <linux/sched/types.h>.
#[repr(C)]
#[derive(Debug, Default, Clone, Copy)]
pub struct SchedAttr {
    pub size: u32,
    pub sched_policy: u32,
    pub sched_flags: u64,
    pub sched_nice: i32,
    pub sched_priority: u32,
    pub sched_runtime: u64,
    pub sched_deadline: u64,
    pub sched_period: u64,
}

/// `sched_setattr(2)` for the calling thread.
pub fn sched_setattr_self(mut attr: SchedAttr) -> io::Result<()> {
    attr.size = std::mem::size_of::<SchedAttr>() as u32;
    // SAFETY: attr is a valid sched_attr whose size field is set.
    cvt(unsafe { libc::syscall(libc::SYS_sched_setattr, 0, &attr, 0) })?;
    Ok(())
}

/// `sethostname(2)`.
pub fn sethostname(name: &str) -> io::Result<()> {
    // SAFETY: pointer and length of a valid byte slice.
    cvt(unsafe { libc::sethostname(name.as_ptr().cast(), name.len()) })?;
    Ok(())
}

/// `setdomainname(2)`.
pub fn setdomainname(name: &str) -> io::Result<()> {
    // SAFETY: pointer and length of a valid byte slice.
    cvt(unsafe { libc::setdomainname(name.as_ptr().cast(), name.len()) })?;
    Ok(())
}

/// `setsid(2)`.
pub fn setsid() -> io::Result<()> {
    // SAFETY: plain syscall.
    cvt(unsafe { libc::setsid() })?;
    Ok(())
}

/// `umask(2)`; returns the previous mask.
pub fn umask(mask: u32) -> u32 {
    // SAFETY: plain syscall, cannot fail.
    unsafe { libc::umask(mask as libc::mode_t) }
}

/// `execve(2)`: only returns on failure.
pub fn execve(path: &CString, argv: &[CString], envp: &[CString]) -> io::Error {
    let mut argv_p: Vec<*const libc::c_char> = argv.iter().map(|a| a.as_ptr()).collect();
    argv_p.push(std::ptr::null());
    let mut envp_p: Vec<*const libc::c_char> = envp.iter().map(|a| a.as_ptr()).collect();
    envp_p.push(std::ptr::null());
    // SAFETY: NULL-terminated arrays of pointers to NUL-terminated strings
    // that outlive the call.
    unsafe { libc::execve(path.as_ptr(), argv_p.as_ptr(), envp_p.as_ptr()) };
    io::Error::last_os_error()
}

/// Starts `path` with `argv` (the first is its name) and this process's
/// environment, its standard streams on /dev/null, and returns its pid at
/// once: unlike `std::process::Command::spawn`, which waits until the
/// child has exec'd (to report an exec failure), so a caller that only
/// starts work to be done behind it does not pay for the exec of a large
/// program. A failed exec is the child's exit status 127, for the reaper
/// to see. The caller reaps the child, or exits and leaves it to its
/// parent's reaper.
///
/// # Safety
/// The calling process must have a single thread (it forks: see the house
/// rule on forks); between fork and exec the child makes system calls
/// only (no allocation, no lock).
pub unsafe fn spawn_unwaited(path: &CString, argv: &[CString]) -> io::Result<i32> {
    let mut argv_p: Vec<*const libc::c_char> = argv.iter().map(|a| a.as_ptr()).collect();
    argv_p.push(std::ptr::null());
    // SAFETY: sigset_t is plain data, emptied by sigemptyset.
    let mut none: libc::sigset_t = unsafe { std::mem::zeroed() };
    // SAFETY: a valid pointer to the set above.
    unsafe { libc::sigemptyset(&mut none) };
    // SAFETY: the caller guarantees a single thread, so the child is a
    // consistent copy; it calls only async-signal-safe functions (open,
    // dup2, execv, _exit) on data prepared before the fork.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        return Err(io::Error::last_os_error());
    }
    if pid == 0 {
        // SAFETY: system calls only, on NUL-terminated strings and arrays
        // that live in this (copied) address space; _exit never returns.
        unsafe {
            // The mask survives exec: the program starts with none blocked.
            libc::sigprocmask(libc::SIG_SETMASK, &none, std::ptr::null_mut());
            let null = libc::open(c"/dev/null".as_ptr(), libc::O_RDWR);
            if null >= 0 {
                for fd in 0..3 {
                    libc::dup2(null, fd);
                }
                if null > 2 {
                    libc::close(null);
                }
            }
            libc::execv(path.as_ptr(), argv_p.as_ptr());
            libc::_exit(127);
        }
    }
    Ok(pid)
}

/// `_exit(2)`: ends the process at once, without running destructors or
/// flushing stdio buffers that belong to the process we were forked from.
pub fn exit_now(code: i32) -> ! {
    // SAFETY: _exit never returns and has no preconditions.
    unsafe { libc::_exit(code) }
}

/// Makes this process a child subreaper: orphaned descendants are
/// re-parented to us instead of to the host's init.
pub fn set_child_subreaper() -> io::Result<()> {
    prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0).map(|_| ())
}

/// Signal mask helpers for the foreground `run` loop.
pub fn block_all_signals() -> io::Result<libc::sigset_t> {
    // SAFETY: sigset_t is plain data; sigfillset/sigprocmask fill and read it.
    unsafe {
        let mut all: libc::sigset_t = std::mem::zeroed();
        let mut old: libc::sigset_t = std::mem::zeroed();
        libc::sigfillset(&mut all);
        cvt(libc::sigprocmask(libc::SIG_BLOCK, &all, &mut old))?;
        Ok(old)
    }
}

/// Restores a signal mask saved by [`block_all_signals`].
pub fn set_sigmask(mask: &libc::sigset_t) -> io::Result<()> {
    // SAFETY: mask is a valid sigset_t.
    cvt(unsafe { libc::sigprocmask(libc::SIG_SETMASK, mask, std::ptr::null_mut()) })?;
    Ok(())
}

/// A signalfd that reports every signal (they must be blocked first).
pub fn signalfd_all() -> io::Result<OwnedFd> {
    // SAFETY: sigset_t is plain data initialised by sigfillset.
    let fd = unsafe {
        let mut all: libc::sigset_t = std::mem::zeroed();
        libc::sigfillset(&mut all);
        cvt(libc::signalfd(-1, &all, libc::SFD_CLOEXEC))?
    };
    // SAFETY: new fd owned by us.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Reads one signal number from a signalfd.
pub fn read_signal(fd: BorrowedFd<'_>) -> io::Result<i32> {
    // SAFETY: signalfd_siginfo is plain data; we read exactly its size.
    let mut info: libc::signalfd_siginfo = unsafe { std::mem::zeroed() };
    let size = std::mem::size_of::<libc::signalfd_siginfo>();
    crate::retry(|| {
        // SAFETY: the buffer is `size` bytes long.
        cvt(unsafe {
            libc::read(
                fd.as_raw_fd(),
                (&mut info as *mut libc::signalfd_siginfo).cast(),
                size,
            )
        })
    })?;
    Ok(info.ssi_signo as i32)
}

/// `pipe2(2)` with `O_CLOEXEC`: (read end, write end).
pub fn pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0; 2];
    // SAFETY: fds is a valid two-element out array.
    cvt(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) })?;
    // SAFETY: two new fds owned by us.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

/// `set_mempolicy(2)` for the calling thread: `mode` (with its `MPOL_F_*`
/// flags or'ed in) and the node mask as 64-bit words.
pub fn set_mempolicy(mode: i32, nodes: &[u64]) -> io::Result<()> {
    let (ptr, maxnode) = if nodes.is_empty() {
        (std::ptr::null(), 0)
    } else {
        (nodes.as_ptr(), nodes.len() as u64 * 64 + 1)
    };
    // SAFETY: `ptr` is null or points at `nodes`, which holds `maxnode - 1`
    // bits; the kernel only reads it.
    cvt(unsafe { libc::syscall(libc::SYS_set_mempolicy, mode, ptr, maxnode) } as i32)?;
    Ok(())
}

/// Puts every signal back to its default disposition and empties the
/// signal mask, as a process started by a shell expects: an ignored signal
/// and a blocked one survive exec, so a program that starts others (the
/// monitor, berth-init) calls this in the child between fork and exec.
/// Async-signal-safe (raw `rt_sigaction` and `rt_sigprocmask`), so that
/// glibc's own two real-time signals, which its wrappers refuse, are reset
/// too when they were inherited ignored.
pub fn reset_signals() -> io::Result<()> {
    /// The kernel's `struct sigaction` where it has `sa_restorer`.
    #[repr(C)]
    struct KernelSigaction {
        handler: libc::sighandler_t,
        flags: libc::c_ulong,
        restorer: usize,
        mask: u64,
    }
    let dfl = KernelSigaction {
        handler: libc::SIG_DFL,
        flags: 0,
        restorer: 0,
        mask: 0,
    };
    for sig in 1..=64 {
        if sig == libc::SIGKILL || sig == libc::SIGSTOP {
            continue;
        }
        if cfg!(any(target_arch = "x86_64", target_arch = "aarch64")) {
            // SAFETY: a valid kernel sigaction (SIG_DFL, no flags) and the
            // size of the kernel's 64-signal set.
            unsafe {
                libc::syscall(
                    libc::SYS_rt_sigaction,
                    sig,
                    &dfl as *const KernelSigaction,
                    std::ptr::null_mut::<KernelSigaction>(),
                    8usize,
                )
            };
        } else {
            // SAFETY: SIG_DFL is valid for any signal glibc lets us set.
            unsafe { libc::signal(sig, libc::SIG_DFL) };
        }
    }
    let none: u64 = 0;
    // SAFETY: an empty 64-signal set, its size, and no old set.
    cvt(unsafe {
        libc::syscall(
            libc::SYS_rt_sigprocmask,
            libc::SIG_SETMASK,
            &none as *const u64,
            std::ptr::null_mut::<u64>(),
            8usize,
        )
    } as i32)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_with_odd_command_name() {
        let line = b"42 (a b) c)) S 1 42 42 0 -1 4194560 100 0 0 0 0 0 0 0 20 0 1 0 987654 1000 10 18446744073709551615";
        let st = parse_proc_stat(line).unwrap();
        assert_eq!(st.state, 'S');
        assert_eq!(st.start_time, 987654);
    }

    #[test]
    fn stat_garbage_is_none() {
        assert_eq!(parse_proc_stat(b""), None);
        assert_eq!(parse_proc_stat(b"1 (x) S 1 2"), None);
        assert_eq!(
            parse_proc_stat(b"1 (x) S 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 notanumber"),
            None
        );
    }

    #[test]
    fn own_stat_is_readable() {
        let me = proc_stat(std::process::id() as i32).unwrap();
        assert!(me.start_time > 0);
        assert!("RS".contains(me.state));
    }

    #[test]
    fn exit_codes_follow_the_shell() {
        assert_eq!(ExitStatus::Exited(3).code(), 3);
        assert_eq!(ExitStatus::Signaled(9).code(), 137);
    }

    #[test]
    fn spawn_unwaited_runs_the_program_and_leaves_it_to_be_reaped() {
        let dir = std::env::temp_dir().join(format!("berth-unwaited-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir(&dir).unwrap();
        let out = dir.join("out");
        let script = format!("echo ran > {}; exit 3", out.display());
        let sh = CString::new("/bin/sh").unwrap();
        let argv = [
            sh.clone(),
            CString::new("-c").unwrap(),
            CString::new(script).unwrap(),
        ];
        let missing = CString::new("/nonexistent/program").unwrap();
        // The harness has threads: the spawns run in a forked child, which
        // has one.
        // SAFETY: the child only spawns, waits and _exits.
        let pid = unsafe { libc::fork() };
        assert!(pid >= 0, "fork: {}", io::Error::last_os_error());
        if pid == 0 {
            // SAFETY: this forked child has a single thread.
            let a = unsafe { spawn_unwaited(&sh, &argv) };
            let ran = a.ok().and_then(|p| waitpid(p).ok()) == Some(ExitStatus::Exited(3));
            // SAFETY: as above.
            let b = unsafe { spawn_unwaited(&missing, std::slice::from_ref(&missing)) };
            let failed = b.ok().and_then(|p| waitpid(p).ok()) == Some(ExitStatus::Exited(127));
            exit_now(if ran && failed { 0 } else { 1 });
        }
        assert_eq!(waitpid(pid).unwrap(), ExitStatus::Exited(0));
        assert_eq!(std::fs::read_to_string(&out).unwrap(), "ran\n");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn reset_signals_leaves_none_ignored_or_blocked() {
        // In a forked child: the test harness is multi-threaded, and the
        // child only makes system calls before _exit.
        // SAFETY: the child calls async-signal-safe functions only.
        let pid = unsafe { libc::fork() };
        assert!(pid >= 0, "fork: {}", io::Error::last_os_error());
        if pid == 0 {
            // SAFETY: plain system calls in the child; _exit never returns.
            unsafe {
                libc::signal(libc::SIGINT, libc::SIG_IGN);
                libc::signal(libc::SIGPIPE, libc::SIG_IGN);
                let mut set: libc::sigset_t = std::mem::zeroed();
                libc::sigfillset(&mut set);
                libc::sigprocmask(libc::SIG_SETMASK, &set, std::ptr::null_mut());
                let ok = reset_signals().is_ok();
                let mut cur: libc::sigset_t = std::mem::zeroed();
                libc::sigprocmask(libc::SIG_SETMASK, std::ptr::null(), &mut cur);
                let mut old: libc::sigaction = std::mem::zeroed();
                let mut clean = ok;
                for sig in 1..=libc::SIGRTMAX() {
                    if sig == libc::SIGKILL || sig == libc::SIGSTOP {
                        continue;
                    }
                    if libc::sigismember(&cur, sig) == 1 {
                        clean = false;
                    }
                    if libc::sigaction(sig, std::ptr::null(), &mut old) == 0
                        && old.sa_sigaction == libc::SIG_IGN
                    {
                        clean = false;
                    }
                }
                libc::_exit(if clean { 0 } else { 1 });
            }
        }
        assert_eq!(waitpid(pid).unwrap(), ExitStatus::Exited(0));
    }
}
