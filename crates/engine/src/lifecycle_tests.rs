//! The container lifecycle (kill, stop, remove, pause, update, reconcile)
//! against the fake runtime: records in a temporary root, a stand-in
//! monitor (a `sleep` whose process name is `berth-monitor`), no
//! container and no privilege.

use crate::error::Error;
use crate::records::{Record, RunState, Status};
use crate::runtime::{Call, Fake, State as RtState, Status as RtStatus};
use crate::Engine;
use berth_monitor_proto::state::{State as MonitorState, Status as MonitorStatus};
use std::path::PathBuf;
use std::process::Child;
use std::time::{Duration, Instant};

const ID: &str = "c0ffee00c0ffee00c0ffee00c0ffee00c0ffee00c0ffee00c0ffee00c0ffee00";
/// The container's init as the records say (no such process is needed:
/// the fake runtime and the monitor's state speak for it).
const INIT: i32 = 4_000_000;

struct World {
    dir: tempfile::TempDir,
    fake: &'static Fake,
    engine: Engine,
    monitor: Option<Child>,
    /// A stand-in for the container's init, when a test needs a live one.
    init: Option<Child>,
}

impl World {
    fn new() -> World {
        let dir = tempfile::tempdir().expect("make a temporary directory");
        // Leaked: the engine holds its runtime for the life of the process.
        let fake: &'static Fake = Box::leak(Box::new(Fake::new()));
        let engine = Engine::open_with(&dir.path().join("root"), &dir.path().join("run"), fake)
            .expect("open an engine on a temporary root");
        World {
            dir,
            fake,
            engine,
            monitor: None,
            init: None,
        }
    }

    /// A process that passes for a live monitor: `sleep` run through a
    /// link named `berth-monitor` (the kernel names a process after the
    /// file it was started from).
    fn spawn_monitor(&mut self) -> i32 {
        let link = self.dir.path().join("berth-monitor");
        if !link.exists() {
            let sleep = ["/bin/sleep", "/usr/bin/sleep"]
                .into_iter()
                .find(|p| std::path::Path::new(p).exists())
                .expect("this test needs a sleep program in /bin or /usr/bin");
            std::os::unix::fs::symlink(sleep, &link).expect("link berth-monitor to sleep");
        }
        let child = std::process::Command::new(&link)
            .arg("600")
            .spawn()
            .expect("start the stand-in monitor");
        let pid = child.id() as i32;
        self.monitor = Some(child);
        // Its name is set once exec is done.
        let deadline = Instant::now() + Duration::from_secs(10);
        while !crate::containers::is_monitor(pid) {
            assert!(
                Instant::now() < deadline,
                "the stand-in monitor never showed as berth-monitor"
            );
            std::thread::sleep(Duration::from_millis(2));
        }
        pid
    }

    /// A container record with `status`; a running one has a live
    /// monitor, its state file and the fake runtime's state.
    fn container(&mut self, name: &str, status: Status) -> Record {
        let mut rec = Record {
            id: ID.into(),
            name: name.into(),
            image: "busybox".into(),
            image_id: "sha256:00".into(),
            created: 1,
            spec: Default::default(),
            state: RunState {
                status,
                boot_id: crate::paths::boot_id(),
                ..RunState::default()
            },
        };
        rec.spec.runtime = crate::specgen::DEFAULT_RUNTIME.into();
        std::fs::create_dir_all(self.engine.paths.container(ID)).unwrap();
        if status == Status::Running {
            rec.state.monitor_pid = self.spawn_monitor();
            rec.state.pid = INIT;
            rec.state.started = 10;
            std::fs::create_dir_all(self.engine.paths.run_dir(ID)).unwrap();
            self.monitor_says(MonitorStatus::Running, 0);
            self.fake.set_state(
                ID,
                Some(RtState {
                    status: RtStatus::Running,
                    pid: INIT,
                }),
            );
        }
        self.engine.records.insert(&rec).unwrap();
        rec
    }

    fn monitor_state_path(&self) -> PathBuf {
        self.engine.paths.run_dir(ID).join("state")
    }

    /// A live process for the container's init (a `sleep`): its pid and
    /// start time.
    fn spawn_init(&mut self) -> (i32, u64) {
        let child = std::process::Command::new("sleep")
            .arg("600")
            .spawn()
            .expect("start a stand-in init (sleep)");
        let pid = child.id() as i32;
        self.init = Some(child);
        let st = berth_sys::process::proc_stat(pid).expect("read the stand-in init's stat");
        assert!(st.start_time > 0);
        (pid, st.start_time)
    }

    /// Writes the monitor's state file, as an older monitor did (no start
    /// time) with the init INIT.
    fn monitor_says(&self, status: MonitorStatus, exit_code: i32) {
        self.monitor_says_init(status, exit_code, INIT, 0);
    }

    /// Writes the monitor's state file, the init `pid` started at
    /// `start_time`.
    fn monitor_says_init(&self, status: MonitorStatus, exit_code: i32, pid: i32, start_time: u64) {
        let ms = MonitorState {
            monitor_pid: self.monitor.as_ref().map_or(0, |c| c.id() as i32),
            pid,
            start_time,
            status,
            started: 10,
            finished: if status == MonitorStatus::Exited {
                20
            } else {
                0
            },
            exit_code,
            restarts: 0,
            ..MonitorState::default()
        };
        std::fs::write(self.monitor_state_path(), ms.to_text()).unwrap();
    }

    /// The monitor ends without a word (kill -9).
    fn kill_monitor(&mut self) {
        if let Some(mut m) = self.monitor.take() {
            let _ = m.kill();
            let _ = m.wait();
        }
    }

    /// Plays a container that ends on `signal`s in `ends_on`, as its monitor
    /// would record it: exit code 128 + n, then the monitor exits.
    fn container_ends_on(&mut self, ends_on: &'static [i32]) {
        let state = self.monitor_state_path();
        let monitor = self
            .monitor
            .as_ref()
            .map(|c| c.id() as i32)
            .expect("a container with a monitor");
        // kill(0, ...) would be the test's whole process group.
        assert!(monitor > 0, "the stand-in monitor's pid");
        self.fake.on_kill(move |_, sig| {
            if !ends_on.contains(&sig) {
                return;
            }
            let ms = MonitorState {
                monitor_pid: monitor,
                pid: INIT,
                status: MonitorStatus::Exited,
                started: 10,
                finished: 20,
                exit_code: 128 + sig,
                ..MonitorState::default()
            };
            std::fs::write(&state, ms.to_text()).unwrap();
            // The monitor exits (it stays a zombie until World reaps it),
            // leaving the deletion and cleanup to whoever finds it gone.
            // SAFETY: a plain syscall on our own child.
            unsafe { libc::kill(monitor, libc::SIGKILL) };
            let deadline = Instant::now() + Duration::from_secs(10);
            while crate::containers::is_monitor(monitor) {
                assert!(
                    Instant::now() < deadline,
                    "the stand-in monitor did not die"
                );
                std::thread::sleep(Duration::from_millis(1));
            }
        });
    }

    fn get(&self) -> Option<Record> {
        self.engine.records.get(ID).unwrap()
    }

    fn events(&self) -> Vec<String> {
        self.engine
            .records
            .events_after(0, 1000)
            .unwrap()
            .into_iter()
            .map(|(_, e)| e.action)
            .collect()
    }
}

impl Drop for World {
    fn drop(&mut self) {
        self.kill_monitor();
        if let Some(mut init) = self.init.take() {
            let _ = init.kill();
            let _ = init.wait();
        }
    }
}

// kill

#[test]
fn kill_of_a_stopped_container_is_a_conflict_and_calls_no_runtime() {
    let mut w = World::new();
    w.container("web", Status::Exited);
    let e = w.engine.kill("web", libc::SIGTERM, true).unwrap_err();
    assert!(
        matches!(e, Error::Conflict(ref m) if m.contains("web is not running")),
        "{e}"
    );
    assert_eq!(w.fake.calls(), vec![]);
}

#[test]
fn kill_of_a_running_container_signals_it_and_marks_it_stopped_by_the_user() {
    let mut w = World::new();
    w.container("web", Status::Running);
    w.engine.kill("web", libc::SIGUSR1, true).unwrap();
    assert_eq!(w.fake.calls(), vec![Call::Kill(ID.into(), libc::SIGUSR1)]);
    let r = w.get().unwrap();
    assert!(r.state.stopped_by_user);
    assert_eq!(r.state.status, Status::Running);
    // The monitor's sign not to restart.
    assert!(w.engine.paths.run_dir(ID).join("stopping").exists());
    assert_eq!(w.events(), vec!["kill"]);
}

#[test]
fn kill_not_by_the_user_leaves_the_restart_policy_on() {
    let mut w = World::new();
    w.container("web", Status::Running);
    w.engine.kill("web", libc::SIGTERM, false).unwrap();
    assert!(!w.get().unwrap().state.stopped_by_user);
    assert!(!w.engine.paths.run_dir(ID).join("stopping").exists());
}

#[test]
fn kill_of_a_paused_container_thaws_it_so_that_it_takes_the_signal() {
    let mut w = World::new();
    w.container("web", Status::Running);
    w.engine.pause("web").unwrap();
    w.engine.kill("web", libc::SIGTERM, true).unwrap();
    assert_eq!(
        w.fake.calls(),
        vec![
            Call::Pause(ID.into()),
            Call::Kill(ID.into(), libc::SIGTERM),
            Call::Resume(ID.into())
        ]
    );
    assert!(!w.get().unwrap().state.paused);
    assert_eq!(w.events(), vec!["pause", "kill", "unpause"]);
}

#[test]
fn a_failed_kill_of_a_running_container_is_reported_with_the_runtimes_words() {
    let mut w = World::new();
    w.container("web", Status::Running);
    w.fake.fail("kill", Some("permission denied"));
    let e = w.engine.kill("web", libc::SIGTERM, true).unwrap_err();
    assert_eq!(e.to_string(), "kill container web: permission denied");
    assert_eq!(e.kind(), crate::ErrorKind::Runtime);
    assert!(!w.events().contains(&"kill".to_string()));
}

#[test]
fn a_failed_kill_of_a_container_that_just_ended_is_no_error() {
    let mut w = World::new();
    w.container("web", Status::Running);
    let fake = w.fake;
    let state = w.monitor_state_path();
    let monitor = w.monitor.as_ref().unwrap().id() as i32;
    // It ends while the signal is on its way: its monitor records the end
    // (and is still finishing), and the runtime refuses the kill.
    fake.on_kill(move |id, _| {
        fake.set_state(
            id,
            Some(RtState {
                status: RtStatus::Stopped,
                pid: 0,
            }),
        );
        let ms = MonitorState {
            monitor_pid: monitor,
            pid: INIT,
            status: MonitorStatus::Exited,
            started: 10,
            finished: 20,
            exit_code: 3,
            ..MonitorState::default()
        };
        std::fs::write(&state, ms.to_text()).unwrap();
    });
    w.engine.kill("web", libc::SIGTERM, true).unwrap();
    assert_eq!(w.fake.calls(), vec![Call::Kill(ID.into(), libc::SIGTERM)]);
    let r = w.get().unwrap();
    assert_eq!(r.state.status, Status::Exited);
    assert_eq!(r.state.exit_code, 3);
    assert_eq!(w.events(), vec!["die"]);
}

// stop

#[test]
fn stop_sends_the_stop_signal_and_returns_the_ended_container() {
    let mut w = World::new();
    w.container("web", Status::Running);
    w.container_ends_on(&[libc::SIGTERM]);
    let r = w.engine.stop("web", Some(10)).unwrap();
    assert_eq!(r.state.status, Status::Exited);
    assert_eq!(r.state.exit_code, 128 + libc::SIGTERM);
    assert_eq!(
        w.fake.calls(),
        vec![
            Call::Kill(ID.into(), libc::SIGTERM),
            Call::Delete(ID.into())
        ]
    );
    let stored = w.get().unwrap();
    assert_eq!(stored.state.status, Status::Exited);
    assert_eq!(stored.state.monitor_pid, 0);
    assert!(stored.state.stopped_by_user);
    assert!(!w.engine.paths.run_dir(ID).exists());
    assert_eq!(w.events(), vec!["kill", "die", "stop"]);
}

#[test]
fn stop_uses_the_containers_stop_signal() {
    let mut w = World::new();
    let mut rec = w.container("web", Status::Running);
    rec.spec.process.stop_signal = Some("SIGINT".into());
    w.engine.records.set_spec(ID, &rec.spec).unwrap();
    w.container_ends_on(&[libc::SIGINT]);
    let r = w.engine.stop("web", Some(10)).unwrap();
    assert_eq!(r.state.exit_code, 128 + libc::SIGINT);
    assert_eq!(w.fake.calls()[0], Call::Kill(ID.into(), libc::SIGINT));
}

#[test]
fn stop_escalates_to_sigkill_after_the_timeout() {
    let mut w = World::new();
    w.container("web", Status::Running);
    // Ignores SIGTERM.
    w.container_ends_on(&[libc::SIGKILL]);
    let t = Instant::now();
    let r = w.engine.stop("web", Some(1)).unwrap();
    let took = t.elapsed();
    assert!(
        took >= Duration::from_secs(1),
        "SIGKILL before the timeout: {took:?}"
    );
    assert!(took < Duration::from_secs(10), "stop took {took:?}");
    assert_eq!(r.state.status, Status::Exited);
    assert_eq!(r.state.exit_code, 137);
    assert_eq!(
        w.fake.calls(),
        vec![
            Call::Kill(ID.into(), libc::SIGTERM),
            Call::Kill(ID.into(), libc::SIGKILL),
            Call::Delete(ID.into())
        ]
    );
}

#[test]
fn stop_with_a_zero_timeout_kills_at_once() {
    let mut w = World::new();
    w.container("web", Status::Running);
    w.container_ends_on(&[libc::SIGKILL]);
    let t = Instant::now();
    let r = w.engine.stop("web", Some(0)).unwrap();
    assert!(t.elapsed() < Duration::from_secs(5));
    assert_eq!(r.state.exit_code, 137);
}

#[test]
fn stop_of_a_stopped_container_does_nothing() {
    let mut w = World::new();
    w.container("web", Status::Exited);
    let r = w.engine.stop("web", None).unwrap();
    assert_eq!(r.state.status, Status::Exited);
    assert_eq!(w.fake.calls(), vec![]);
    assert_eq!(w.events(), Vec::<String>::new());
}

#[test]
fn stop_sends_sigkill_at_once_when_the_stop_signal_cannot_be_sent() {
    let mut w = World::new();
    w.container("web", Status::Running);
    w.container_ends_on(&[libc::SIGKILL]);
    // A runtime that fails the first kill (SIGTERM) only.
    w.fake.fail_once("kill", "transient");
    let started = Instant::now();
    let r = w.engine.stop("web", Some(30)).unwrap();
    // The SIGKILL came at once (not after 30 s) and ended it.
    assert!(started.elapsed() < Duration::from_secs(20));
    assert_eq!(r.state.status, Status::Exited);
    assert_eq!(r.state.exit_code, 137);
    let calls = w.fake.calls();
    assert_eq!(
        calls[..2],
        [
            Call::Kill(ID.into(), libc::SIGTERM),
            Call::Kill(ID.into(), libc::SIGKILL)
        ],
        "{calls:?}"
    );
}

#[test]
fn stop_of_a_container_whose_monitor_died_waits_on_its_init() {
    let mut w = World::new();
    w.container("web", Status::Running);
    let (pid, start_time) = w.spawn_init();
    w.monitor_says_init(MonitorStatus::Running, 0, pid, start_time);
    w.kill_monitor();
    // The runtime delivers the signal to the init (our child: a zombie
    // once killed, which is not taken for running).
    w.fake.on_kill(move |_, sig| {
        assert!(pid > 0, "kill(0, ...) would be the test's process group");
        // SAFETY: a plain syscall on our own child (pid > 0).
        unsafe { libc::kill(pid, sig) };
    });
    let started = Instant::now();
    let r = w.engine.stop("web", Some(30)).unwrap();
    assert!(started.elapsed() < Duration::from_secs(20));
    assert_eq!(r.state.status, Status::Exited);
    assert_eq!(r.state.exit_code, 255, "no monitor saw the code");
    assert_eq!(
        w.fake.calls(),
        vec![
            Call::Kill(ID.into(), libc::SIGTERM),
            Call::Delete(ID.into())
        ]
    );
}

// signal proxy

#[test]
fn the_signaller_sends_through_the_runtime_without_a_refresh() {
    let mut w = World::new();
    let rec = w.container("web", Status::Running);
    let s = w.engine.signaller(&rec);
    let t = std::thread::spawn(move || s.send(libc::SIGUSR1));
    t.join().unwrap().unwrap();
    assert_eq!(w.fake.calls(), vec![Call::Kill(ID.into(), libc::SIGUSR1)]);
    assert_eq!(w.events(), Vec::<String>::new());
    w.fake.fail("kill", Some("container not running"));
    let e = w.engine.signaller(&rec).send(libc::SIGINT).unwrap_err();
    assert_eq!(
        e.to_string(),
        format!(
            "send signal {} to container web: container not running",
            libc::SIGINT
        )
    );
}

// remove

#[test]
fn remove_of_a_running_container_needs_force() {
    let mut w = World::new();
    w.container("web", Status::Running);
    let e = w.engine.remove("web", false, false).unwrap_err();
    assert!(matches!(e, Error::Running(ref n) if n == "web"), "{e}");
    assert!(w.get().is_some());
    assert_eq!(w.fake.calls(), vec![]);
}

#[test]
fn forced_remove_kills_the_container_and_removes_it() {
    let mut w = World::new();
    w.container("web", Status::Running);
    w.container_ends_on(&[libc::SIGKILL]);
    w.engine.remove("web", true, false).unwrap();
    assert!(w.get().is_none());
    assert_eq!(w.fake.calls()[0], Call::Kill(ID.into(), libc::SIGKILL));
    assert!(w.fake.calls().contains(&Call::Delete(ID.into())));
    assert!(w.fake.state_of(ID).is_none(), "the runtime still has it");
    assert!(!w.engine.paths.container(ID).exists());
    assert!(!w.engine.paths.run_dir(ID).exists());
    assert_eq!(w.events().last().map(String::as_str), Some("destroy"));
}

#[test]
fn remove_of_an_exited_container_removes_its_record_and_directory() {
    let mut w = World::new();
    w.container("web", Status::Exited);
    w.engine.remove("web", false, false).unwrap();
    assert!(w.get().is_none());
    assert!(!w.engine.paths.container(ID).exists());
    assert!(!w.engine.paths.lock(ID).exists());
    assert_eq!(w.events(), vec!["destroy"]);
    assert!(matches!(
        w.engine.remove("web", false, false),
        Err(Error::NoSuchContainer(_))
    ));
}

// pause, unpause, update

#[test]
fn pause_and_unpause_follow_the_runtime_and_the_record() {
    let mut w = World::new();
    w.container("web", Status::Running);
    let r = w.engine.pause("web").unwrap();
    assert!(r.state.paused);
    assert!(w.get().unwrap().state.paused);
    assert_eq!(w.fake.state_of(ID).unwrap().status, RtStatus::Paused);
    let e = w.engine.pause("web").unwrap_err();
    assert!(
        matches!(e, Error::Conflict(ref m) if m.contains("already paused")),
        "{e}"
    );
    let r = w.engine.unpause("web").unwrap();
    assert!(!r.state.paused);
    assert_eq!(w.fake.state_of(ID).unwrap().status, RtStatus::Running);
    let e = w.engine.unpause("web").unwrap_err();
    assert!(
        matches!(e, Error::Conflict(ref m) if m.contains("not paused")),
        "{e}"
    );
    assert_eq!(
        w.fake.calls(),
        vec![Call::Pause(ID.into()), Call::Resume(ID.into())]
    );
    assert_eq!(w.events(), vec!["pause", "unpause"]);
}

#[test]
fn pause_of_a_stopped_container_is_a_conflict() {
    let mut w = World::new();
    w.container("web", Status::Exited);
    let e = w.engine.pause("web").unwrap_err();
    assert!(
        matches!(e, Error::Conflict(ref m) if m.contains("not running")),
        "{e}"
    );
    assert_eq!(w.fake.calls(), vec![]);
}

#[test]
fn a_failed_pause_leaves_the_record_unpaused() {
    let mut w = World::new();
    w.container("web", Status::Running);
    w.fake.fail("pause", Some("no freezer"));
    let e = w.engine.pause("web").unwrap_err();
    assert_eq!(e.to_string(), "pause container web: no freezer");
    assert!(!w.get().unwrap().state.paused);
    assert!(w.events().is_empty());
}

#[test]
fn update_of_a_running_container_goes_to_the_runtime_and_the_record() {
    let mut w = World::new();
    w.container("web", Status::Running);
    let req = crate::control::UpdateRequest {
        memory: Some(64 << 20),
        ..Default::default()
    };
    let out = w.engine.update("web", &req).unwrap();
    assert!(out.applied);
    let calls = w.fake.calls();
    let [Call::Update(id, res)] = calls.as_slice() else {
        panic!("calls: {calls:?}");
    };
    assert_eq!(id, ID);
    let res: serde_json::Value = serde_json::from_str(res).unwrap();
    assert_eq!(res["memory"]["limit"], 64 << 20);
    assert_eq!(w.get().unwrap().spec.resources.memory, Some(64 << 20));
}

#[test]
fn update_of_a_stopped_container_is_only_recorded() {
    let mut w = World::new();
    w.container("web", Status::Exited);
    let req = crate::control::UpdateRequest {
        memory: Some(64 << 20),
        ..Default::default()
    };
    assert!(!w.engine.update("web", &req).unwrap().applied);
    assert_eq!(w.fake.calls(), vec![]);
    assert_eq!(w.get().unwrap().spec.resources.memory, Some(64 << 20));
}

#[test]
fn a_failed_update_changes_nothing() {
    let mut w = World::new();
    w.container("web", Status::Running);
    w.fake.fail("update", Some("invalid memory"));
    let req = crate::control::UpdateRequest {
        memory: Some(64 << 20),
        ..Default::default()
    };
    let e = w.engine.update("web", &req).unwrap_err();
    assert_eq!(e.to_string(), "update container web: invalid memory");
    assert_eq!(w.get().unwrap().spec.resources.memory, None);
}

// refresh (reconcile)

#[test]
fn refresh_takes_a_live_monitors_state() {
    let mut w = World::new();
    let rec = w.container("web", Status::Running);
    w.monitor_says(MonitorStatus::Restarting, 1);
    let r = w.engine.refresh(rec).unwrap();
    assert_eq!(r.state.status, Status::Restarting);
    assert_eq!(r.state.exit_code, 1);
    assert_eq!(w.get().unwrap().state.status, Status::Restarting);
    assert_eq!(
        w.fake.calls(),
        vec![],
        "a live monitor needs no runtime call"
    );
}

#[test]
fn refresh_of_a_container_whose_monitor_is_finishing_records_the_exit_only() {
    let mut w = World::new();
    let rec = w.container("web", Status::Running);
    w.monitor_says(MonitorStatus::Exited, 7);
    let r = w.engine.refresh(rec).unwrap();
    assert_eq!(r.state.status, Status::Exited);
    assert_eq!(r.state.exit_code, 7);
    // The monitor deletes the runtime's container and unmounts itself.
    assert_eq!(w.fake.calls(), vec![]);
    assert!(w.engine.paths.run_dir(ID).exists());
    assert_eq!(w.events(), vec!["die"]);
}

#[test]
fn refresh_after_the_monitor_ended_records_the_exit_and_cleans_up() {
    let mut w = World::new();
    let rec = w.container("web", Status::Running);
    w.monitor_says(MonitorStatus::Exited, 7);
    w.kill_monitor();
    let r = w.engine.refresh(rec).unwrap();
    assert_eq!(r.state.status, Status::Exited);
    assert_eq!(r.state.exit_code, 7);
    assert_eq!(r.state.monitor_pid, 0);
    assert_eq!(w.fake.calls(), vec![Call::Delete(ID.into())]);
    assert!(!w.engine.paths.run_dir(ID).exists());
    assert_eq!(w.get().unwrap().state.exit_code, 7);
}

#[test]
fn refresh_of_an_auto_remove_container_that_ended_removes_it() {
    let mut w = World::new();
    let mut rec = w.container("web", Status::Running);
    rec.spec.lifecycle.auto_remove = true;
    w.engine.records.set_spec(ID, &rec.spec).unwrap();
    w.monitor_says(MonitorStatus::Exited, 0);
    w.kill_monitor();
    w.engine.refresh(rec).unwrap();
    assert!(w.get().is_none());
    assert_eq!(w.events(), vec!["die", "destroy"]);
}

#[test]
fn refresh_when_the_monitor_died_and_the_runtime_says_stopped() {
    let mut w = World::new();
    let rec = w.container("web", Status::Running);
    w.kill_monitor();
    w.fake.set_state(
        ID,
        Some(RtState {
            status: RtStatus::Stopped,
            pid: 0,
        }),
    );
    let r = w.engine.refresh(rec).unwrap();
    assert_eq!(r.state.status, Status::Exited);
    assert_eq!(r.state.exit_code, 255);
    assert!(
        r.state.error.contains("exit status is unknown"),
        "{}",
        r.state.error
    );
    assert_eq!(
        w.fake.calls(),
        vec![Call::State(ID.into()), Call::Delete(ID.into())]
    );
    assert_eq!(w.get().unwrap().state.status, Status::Exited);
}

#[test]
fn refresh_when_the_monitor_died_and_the_runtime_says_running() {
    let mut w = World::new();
    let rec = w.container("web", Status::Running);
    w.kill_monitor();
    // The runtime's pid, not the old monitor's (it may be stale).
    w.fake.set_state(
        ID,
        Some(RtState {
            status: RtStatus::Running,
            pid: INIT + 1,
        }),
    );
    // INIT is no live process: the runtime's word is what keeps it running.
    let r = w.engine.refresh(rec).unwrap();
    assert_eq!(r.state.status, Status::Running);
    assert_eq!(r.state.pid, INIT + 1);
    assert!(
        r.state.error.contains("monitor is gone"),
        "{}",
        r.state.error
    );
    assert_eq!(w.fake.calls(), vec![Call::State(ID.into())]);
}

#[test]
fn refresh_when_the_monitor_died_finds_the_init_by_its_start_time_without_the_runtime() {
    let mut w = World::new();
    let rec = w.container("web", Status::Running);
    let (pid, start_time) = w.spawn_init();
    w.monitor_says_init(MonitorStatus::Running, 0, pid, start_time);
    w.kill_monitor();
    // A runtime that would say otherwise is not asked.
    w.fake.set_state(ID, None);
    let r = w.engine.refresh(rec).unwrap();
    assert_eq!(r.state.status, Status::Running);
    assert_eq!(r.state.pid, pid);
    assert!(
        r.state.error.contains("monitor is gone"),
        "{}",
        r.state.error
    );
    assert_eq!(w.fake.calls(), vec![]);
}

#[test]
fn refresh_when_the_monitor_died_does_not_take_a_reused_pid_for_the_init() {
    let mut w = World::new();
    let rec = w.container("web", Status::Running);
    // The init's pid now names another live process: this test's, which
    // started at another time than the init the monitor recorded.
    let me = std::process::id() as i32;
    let mine = berth_sys::process::proc_stat(me).unwrap().start_time;
    w.monitor_says_init(MonitorStatus::Running, 0, me, mine + 1);
    w.kill_monitor();
    let r = w.engine.refresh(rec).unwrap();
    assert_eq!(r.state.status, Status::Exited);
    assert_eq!(r.state.exit_code, 255);
    assert_eq!(r.state.pid, 0);
    // No runtime state asked; the runtime's container is deleted.
    assert_eq!(w.fake.calls(), vec![Call::Delete(ID.into())]);
}

#[test]
fn refresh_when_an_older_monitor_died_between_runs_does_not_take_its_old_pid() {
    let mut w = World::new();
    let rec = w.container("web", Status::Running);
    // An older monitor, killed while restarting: it had deleted the
    // runtime's container and kept the ended init's pid (no start time),
    // which another live process (this test's) now has.
    let me = std::process::id() as i32;
    w.monitor_says_init(MonitorStatus::Restarting, 1, me, 0);
    w.fake.set_state(ID, None);
    w.kill_monitor();
    let r = w.engine.refresh(rec).unwrap();
    assert_eq!(r.state.status, Status::Exited);
    assert_eq!(r.state.pid, 0);
    assert_eq!(
        w.fake.calls(),
        vec![Call::State(ID.into()), Call::Delete(ID.into())]
    );
}

#[test]
fn refresh_when_the_monitor_died_between_runs_asks_no_runtime() {
    let mut w = World::new();
    let rec = w.container("web", Status::Running);
    // What this monitor leaves while restarting: no init.
    w.monitor_says_init(MonitorStatus::Restarting, 1, 0, 0);
    w.kill_monitor();
    let r = w.engine.refresh(rec).unwrap();
    assert_eq!(r.state.status, Status::Exited);
    assert_eq!(w.fake.calls(), vec![Call::Delete(ID.into())]);
}

#[test]
fn a_container_without_a_monitor_that_berth_killed_exits_137() {
    let mut w = World::new();
    let rec = w.container("web", Status::Running);
    w.kill_monitor();
    // The kill finds no monitor: it leaves a note for the exit code.
    w.engine.kill("web", libc::SIGKILL, true).unwrap();
    w.fake.set_state(
        ID,
        Some(RtState {
            status: RtStatus::Stopped,
            pid: 0,
        }),
    );
    let r = w.engine.refresh(w.get().unwrap_or(rec)).unwrap();
    assert_eq!(r.state.status, Status::Exited);
    assert_eq!(r.state.exit_code, 137);
}

#[test]
fn refresh_after_a_reboot_uses_the_persisted_exit() {
    let mut w = World::new();
    let mut rec = w.container("web", Status::Running);
    rec.state.boot_id = "another boot".into();
    w.engine.records.set_state(ID, &rec.state).unwrap();
    let ms = MonitorState {
        status: MonitorStatus::Exited,
        started: 10,
        finished: 20,
        exit_code: 42,
        ..MonitorState::default()
    };
    std::fs::write(w.engine.paths.container(ID).join("exit"), ms.to_text()).unwrap();
    let r = w.engine.refresh(rec).unwrap();
    assert_eq!(r.state.status, Status::Exited);
    assert_eq!(r.state.exit_code, 42);
    assert_eq!(r.state.finished, 20);
}

#[test]
fn refresh_after_a_reboot_without_an_exit_says_the_state_was_lost() {
    let mut w = World::new();
    let mut rec = w.container("web", Status::Running);
    rec.state.boot_id = "another boot".into();
    w.engine.records.set_state(ID, &rec.state).unwrap();
    let r = w.engine.refresh(rec).unwrap();
    assert_eq!(r.state.status, Status::Exited);
    assert_eq!(r.state.exit_code, 255);
    assert!(
        r.state.error.contains("state was lost"),
        "{}",
        r.state.error
    );
    // The monitor's state of another boot is not read.
    assert_eq!(w.fake.calls(), vec![Call::Delete(ID.into())]);
    assert!(!w.engine.paths.run_dir(ID).exists());
}

#[test]
fn refresh_of_a_start_cut_short_before_its_monitor_wrote_a_state() {
    let mut w = World::new();
    let rec = w.container("web", Status::Created);
    std::fs::create_dir_all(w.engine.paths.run_dir(ID)).unwrap();
    let r = w.engine.refresh(rec).unwrap();
    assert_eq!(r.state.status, Status::Created);
    assert!(!w.engine.paths.run_dir(ID).exists());
}

#[test]
fn refresh_adopts_a_start_cut_short_after_its_monitor_wrote_a_state() {
    let mut w = World::new();
    let rec = w.container("web", Status::Created);
    let monitor = w.spawn_monitor();
    std::fs::create_dir_all(w.engine.paths.run_dir(ID)).unwrap();
    w.monitor_says(MonitorStatus::Running, 0);
    let r = w.engine.refresh(rec).unwrap();
    assert_eq!(r.state.status, Status::Running);
    assert_eq!(r.state.monitor_pid, monitor);
    assert_eq!(r.state.pid, INIT);
}

// start: what is checked before the root is mounted and the monitor
// started (those, and the start itself, are covered by the end-to-end
// tests in crates/cli/tests/run.rs)

#[test]
fn start_of_a_running_container_is_a_conflict() {
    let mut w = World::new();
    w.container("web", Status::Running);
    let e = w.engine.start("web").err().expect("started twice");
    assert!(
        matches!(e, Error::Conflict(ref m) if m.contains("already running")),
        "{e}"
    );
    assert_eq!(w.fake.calls(), vec![]);
}

#[test]
fn start_of_a_container_being_removed_is_a_conflict() {
    let mut w = World::new();
    w.container("web", Status::Removing);
    let e = w.engine.start("web").err().expect("started while removed");
    assert!(
        matches!(e, Error::Conflict(ref m) if m.contains("being removed")),
        "{e}"
    );
}

#[test]
fn start_of_a_container_whose_image_is_gone_says_to_pull_it_again() {
    let mut w = World::new();
    let mut rec = w.container("web", Status::Exited);
    rec.image_id = format!("sha256:{}", "0".repeat(64));
    w.engine.records.remove(ID).unwrap();
    w.engine.records.insert(&rec).unwrap();
    let e = w
        .engine
        .start("web")
        .err()
        .expect("started without its image");
    assert!(
        e.to_string().contains("its image busybox is unusable")
            && e.to_string().contains("pull it again"),
        "{e}"
    );
    assert!(!w.engine.paths.run_dir(ID).exists());
    assert_eq!(w.get().unwrap().state.status, Status::Exited);
}

// restart after a reboot

#[test]
fn boot_candidates_follow_the_restart_policy() {
    let w = World::new();
    let cases = [
        ("no", false, false),
        ("on-failure:3", false, false),
        ("always", false, true),
        ("always", true, true),
        ("unless-stopped", false, true),
        ("unless-stopped", true, false),
    ];
    for (i, (policy, by_user, _)) in cases.iter().enumerate() {
        let mut rec = Record {
            id: format!("{i:064}"),
            name: format!("c{i}"),
            image: "busybox".into(),
            image_id: "sha256:00".into(),
            created: 1,
            spec: Default::default(),
            state: RunState {
                status: Status::Exited,
                stopped_by_user: *by_user,
                ..RunState::default()
            },
        };
        rec.spec.lifecycle.restart = crate::specgen::RestartPolicy::parse(policy).unwrap();
        w.engine.records.insert(&rec).unwrap();
    }
    let mut got: Vec<String> = w
        .engine
        .boot_candidates()
        .unwrap()
        .into_iter()
        .map(|r| r.name)
        .collect();
    got.sort();
    let want: Vec<String> = cases
        .iter()
        .enumerate()
        .filter(|(_, c)| c.2)
        .map(|(i, _)| format!("c{i}"))
        .collect();
    assert_eq!(got, want);
}

#[test]
fn refresh_records_each_restart_by_policy_once_as_die_and_start() {
    let mut w = World::new();
    let rec = w.container("web", Status::Running);
    let restarted = |restarts: u32, status: MonitorStatus| MonitorState {
        monitor_pid: w.monitor.as_ref().map_or(0, |c| c.id() as i32),
        pid: INIT,
        status,
        started: 10,
        exit_code: 3,
        restarts,
        ..MonitorState::default()
    };
    std::fs::write(
        w.monitor_state_path(),
        restarted(2, MonitorStatus::Running).to_text(),
    )
    .unwrap();
    let r = w.engine.refresh(rec.clone()).unwrap();
    assert_eq!(r.state.restarts, 2);
    assert_eq!(w.events(), ["die", "start", "die", "start"]);
    // Another refresh (of the stale record too) finds nothing new.
    w.engine.refresh(rec.clone()).unwrap();
    w.engine.refresh(r).unwrap();
    assert_eq!(w.events().len(), 4);
    // The last die carries the exit code the state holds.
    let all = w.engine.records.events_after(0, 100).unwrap();
    assert_eq!(all[2].1.actor.attributes.get("exitCode").unwrap(), "3");
    assert!(!all[0].1.actor.attributes.contains_key("exitCode"));
    // Waiting to restart: its die, once; then its start.
    std::fs::write(
        w.monitor_state_path(),
        restarted(2, MonitorStatus::Restarting).to_text(),
    )
    .unwrap();
    w.engine.refresh(rec.clone()).unwrap();
    w.engine.refresh(rec.clone()).unwrap();
    std::fs::write(
        w.monitor_state_path(),
        restarted(3, MonitorStatus::Running).to_text(),
    )
    .unwrap();
    w.engine.refresh(rec).unwrap();
    assert_eq!(w.events(), ["die", "start", "die", "start", "die", "start"]);
}
