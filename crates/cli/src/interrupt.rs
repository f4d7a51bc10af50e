//! Ctrl-C (SIGINT), SIGTERM and SIGHUP during a pull or a load: the layer
//! streams are cancelled, so that each unwinds and removes what it put in
//! the store's tmp/, and berth exits 130 (128 + SIGINT) after that.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// While alive, the signals are taken by a thread of its own (they are
/// blocked in the thread that makes it, and so in every thread that one
/// starts after: make it before the pull's threads).
pub struct Guard {
    old: libc::sigset_t,
    done: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

/// The time a cancelled pull's layer streams have to unwind before their
/// files are removed for them.
const UNWIND: std::time::Duration = std::time::Duration::from_secs(1);

/// The time a cancelled pull has to return before berth exits anyway.
const GRACE: std::time::Duration = std::time::Duration::from_secs(3);

fn set() -> libc::sigset_t {
    // SAFETY: sigemptyset initialises the set it is given; sigaddset adds
    // valid signal numbers to it.
    unsafe {
        let mut s: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut s);
        for sig in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP] {
            libc::sigaddset(&mut s, sig);
        }
        s
    }
}

impl Guard {
    pub fn new() -> Guard {
        let s = set();
        // SAFETY: a zeroed sigset_t is a valid out-parameter.
        let mut old: libc::sigset_t = unsafe { std::mem::zeroed() };
        // SAFETY: valid sets; this thread's mask only.
        unsafe { libc::pthread_sigmask(libc::SIG_BLOCK, &s, &mut old) };
        let done = Arc::new(AtomicBool::new(false));
        let d = done.clone();
        let thread = std::thread::Builder::new()
            .name("interrupt".into())
            .spawn(move || {
                let mut sig = 0;
                // SAFETY: the set is valid and blocked in this thread (it
                // inherited the mask).
                if unsafe { libc::sigwait(&s, &mut sig) } != 0 || d.load(Ordering::SeqCst) {
                    return;
                }
                // Streams that are reading unwind at once and remove their
                // files; one stuck in a read of a stalled registry would
                // wait for its timeout: its files are removed for it.
                let t = std::time::Instant::now();
                berth_engine::images::cancel_pulls(UNWIND);
                std::thread::sleep(GRACE.saturating_sub(t.elapsed()));
                std::process::exit(128 + sig);
            })
            .ok();
        Guard { old, done, thread }
    }

    /// Whether the pull was cancelled by a signal.
    pub fn interrupted(&self) -> bool {
        berth_engine::images::pulls_cancelled()
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        if let Some(t) = self.thread.take() {
            if !berth_engine::images::pulls_cancelled() {
                self.done.store(true, Ordering::SeqCst);
                // Wakes its sigwait (SIGHUP is blocked there, so it is
                // taken by sigwait, never delivered).
                // SAFETY: the thread is alive until it sees the signal.
                unsafe {
                    libc::pthread_kill(
                        std::os::unix::thread::JoinHandleExt::as_pthread_t(&t),
                        libc::SIGHUP,
                    )
                };
                let _ = t.join();
            }
        }
        // SAFETY: restores the mask saved in new().
        unsafe { libc::pthread_sigmask(libc::SIG_SETMASK, &self.old, std::ptr::null_mut()) };
    }
}
