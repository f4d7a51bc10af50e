//! `berth-init`: the small init `berth run --init` puts at pid 1 of a
//! container (as tini or docker-init do). It starts the command, forwards
//! every catchable signal to it, reaps every zombie (orphans are
//! re-parented to pid 1), and exits with the command's status: its exit
//! code, or 128+N when signal N killed it.
//!
//! Usage: berth-init [--] COMMAND [ARG...]
//!        berth-init [--] --pause
//!
//! `--pause` is the infra container of a pod (podman's catatonit -P):
//! no command; it holds the pod's namespaces, reaps whatever is
//! re-parented to it (pid 1 of a shared pid namespace), and exits 0 on
//! SIGTERM, SIGINT or SIGHUP.
//!
//! Single-threaded by design: it forks exactly once, before anything else
//! could start a thread.

use std::ffi::{CString, OsString};
use std::os::unix::ffi::OsStringExt;

/// Signals not forwarded: they cannot be caught, or they are the init's
/// own business (a child stopping or ending).
fn forwarded(sig: libc::c_int) -> bool {
    !matches!(
        sig,
        libc::SIGKILL
            | libc::SIGSTOP
            | libc::SIGCHLD
            | libc::SIGTSTP
            | libc::SIGTTIN
            | libc::SIGTTOU
    )
}

fn die(msg: &str) -> ! {
    eprintln!("berth-init: {msg}");
    std::process::exit(127)
}

fn main() {
    let mut args: Vec<OsString> = std::env::args_os().skip(1).collect();
    if args.first().is_some_and(|a| a == "--") {
        args.remove(0);
    }
    if args.is_empty() || args[0] == "--help" || args[0] == "-h" {
        eprintln!("usage: berth-init [--] COMMAND [ARG...]\nRuns COMMAND as its child, forwards signals to it, reaps zombies, and exits with its status.");
        std::process::exit(if args.is_empty() { 2 } else { 0 });
    }
    if args[0] == "--pause" {
        pause();
    }
    let argv: Vec<CString> = args
        .into_iter()
        .map(|a| {
            CString::new(a.into_vec()).unwrap_or_else(|_| die("an argument contains a NUL byte"))
        })
        .collect();
    let mut ptrs: Vec<*const libc::c_char> = argv.iter().map(|a| a.as_ptr()).collect();
    ptrs.push(std::ptr::null());

    // Orphans of the command come to us also when we are not pid 1 (as
    // tini -s): they must be reaped, not left as zombies.
    // SAFETY: prctl with integer arguments.
    unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) };
    // Block every signal; the child starts with none blocked.
    // SAFETY: sigset_t is plain data, initialised by sigfillset.
    let mut all: libc::sigset_t = unsafe { std::mem::zeroed() };
    // SAFETY: valid pointers to sigset_t values.
    unsafe {
        libc::sigfillset(&mut all);
        libc::sigprocmask(libc::SIG_SETMASK, &all, std::ptr::null_mut());
    }
    // SAFETY: single-threaded here; the child only calls async-signal-safe
    // functions (reset_signals, execvp, write, _exit) before exec.
    let child = unsafe { libc::fork() };
    if child < 0 {
        die(&format!("fork: {}", std::io::Error::last_os_error()));
    }
    if child == 0 {
        // SAFETY: resets every disposition (an ignored signal would stay
        // ignored across exec: Rust's start-up ignores SIGPIPE, and we may
        // have inherited others) and the mask, as a process started by a
        // shell expects (`reset_signals` is async-signal-safe), then
        // replaces the process image; on failure reports through write(2)
        // and _exit.
        unsafe {
            let _ = berth_sys::process::reset_signals();
            libc::execvp(ptrs[0], ptrs.as_ptr());
            let msg = b"berth-init: cannot execute the command\n";
            libc::write(2, msg.as_ptr().cast(), msg.len());
            libc::_exit(127);
        }
    }
    let mut status_of_child: Option<i32> = None;
    loop {
        // SAFETY: siginfo_t is plain data filled by the kernel.
        let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
        // SAFETY: valid set and out pointer.
        let sig = unsafe { libc::sigwaitinfo(&all, &mut info) };
        if sig < 0 {
            continue; // EINTR
        }
        if sig == libc::SIGCHLD {
            // Reap everything that has ended: our child and orphans.
            loop {
                let mut st = 0;
                // SAFETY: valid out pointer; WNOHANG never blocks.
                let pid = unsafe { libc::waitpid(-1, &mut st, libc::WNOHANG) };
                if pid <= 0 {
                    break;
                }
                if pid == child {
                    status_of_child = Some(if libc::WIFEXITED(st) {
                        libc::WEXITSTATUS(st)
                    } else if libc::WIFSIGNALED(st) {
                        128 + libc::WTERMSIG(st)
                    } else {
                        1
                    });
                }
            }
            if let Some(code) = status_of_child {
                std::process::exit(code);
            }
        } else if forwarded(sig) {
            // SAFETY: sends a signal to our own child.
            unsafe { libc::kill(child, sig) };
        }
    }
}

/// The pause mode: sleeps in `sigwaitinfo`, reaping on SIGCHLD, until a
/// signal that ends it.
fn pause() -> ! {
    // SAFETY: prctl with integer arguments.
    unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) };
    // SAFETY: sigset_t is plain data, initialised by sigfillset.
    let mut all: libc::sigset_t = unsafe { std::mem::zeroed() };
    // SAFETY: valid pointers to sigset_t values.
    unsafe {
        libc::sigfillset(&mut all);
        libc::sigprocmask(libc::SIG_SETMASK, &all, std::ptr::null_mut());
    }
    loop {
        // SAFETY: siginfo_t is plain data filled by the kernel.
        let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
        // SAFETY: valid set and out pointer.
        let sig = unsafe { libc::sigwaitinfo(&all, &mut info) };
        match sig {
            libc::SIGTERM | libc::SIGINT | libc::SIGHUP => std::process::exit(0),
            libc::SIGCHLD => loop {
                let mut st = 0;
                // SAFETY: valid out pointer; WNOHANG never blocks.
                if unsafe { libc::waitpid(-1, &mut st, libc::WNOHANG) } <= 0 {
                    break;
                }
            },
            _ => {}
        }
    }
}
