//! berth-init as a container's pid 1 would run it (here as a plain child).

use std::process::Command;
use std::time::{Duration, Instant};

const INIT: &str = env!("CARGO_BIN_EXE_berth-init");

#[test]
fn exits_with_the_commands_code_and_signal() {
    let st = Command::new(INIT)
        .args(["--", "sh", "-c", "exit 7"])
        .status()
        .unwrap();
    assert_eq!(st.code(), Some(7));
    let st = Command::new(INIT)
        .args(["sh", "-c", "kill -TERM $$"])
        .status()
        .unwrap();
    assert_eq!(st.code(), Some(128 + 15));
    let st = Command::new(INIT)
        .args(["/nonexistent/cmd"])
        .status()
        .unwrap();
    assert_eq!(st.code(), Some(127));
    let st = Command::new(INIT).status().unwrap();
    assert_eq!(st.code(), Some(2), "no command: usage");
}

#[test]
fn forwards_signals_to_the_command() {
    let mut child = Command::new(INIT)
        .args([
            "sh",
            "-c",
            "trap 'exit 42' USR1; while :; do sleep 0.05; done",
        ])
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    // SAFETY: signals our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGUSR1) };
    let t0 = Instant::now();
    loop {
        if let Some(st) = child.try_wait().unwrap() {
            assert_eq!(st.code(), Some(42));
            break;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(10),
            "the signal was not forwarded"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// (pid, ppid, state) of every process.
fn processes() -> Vec<(i32, i32, char)> {
    let mut v = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        // pid (comm) state ppid ...: comm may hold spaces, so cut after ')'.
        let Some(rest) = stat.rsplit_once(')').map(|(_, r)| r) else {
            continue;
        };
        let mut f = rest.split_whitespace();
        let state = f.next().and_then(|s| s.chars().next()).unwrap_or('?');
        let ppid = f.next().and_then(|p| p.parse().ok()).unwrap_or(0);
        v.push((pid, ppid, state));
    }
    v
}

#[test]
fn reaps_orphans() {
    // The subshell starts `sleep 0.3` and exits at once: the sleep is
    // orphaned, comes to berth-init (a subreaper, as pid 1 would be), and
    // must be reaped when it ends, not left a zombie.
    let mut child = Command::new(INIT)
        .args(["sh", "-c", "(sleep 0.3 &) ; sleep 1.5"])
        .spawn()
        .unwrap();
    let init = child.id() as i32;
    std::thread::sleep(Duration::from_millis(150));
    let adopted = processes().iter().filter(|p| p.1 == init).count();
    assert!(
        adopted >= 2,
        "the orphan did not come to berth-init ({adopted} children)"
    );
    std::thread::sleep(Duration::from_millis(700));
    let zombies: Vec<_> = processes()
        .into_iter()
        .filter(|p| p.1 == init && p.2 == 'Z')
        .collect();
    assert!(zombies.is_empty(), "zombies left: {zombies:?}");
    assert_eq!(child.wait().unwrap().code(), Some(0));
}
