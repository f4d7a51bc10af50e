//! What the monitor records when the container ends, and whether it
//! starts it again.

use berth_monitor_proto::config::Restart;
use berth_monitor_proto::state::{State, Status};
use berth_sys::process::ExitStatus;
use std::time::Duration;

/// Records the end of a run in `state`: the exit code (128 + the signal
/// for a killed init, the shell's convention), the time, and whether the
/// kernel's OOM killer did it: a SIGKILL with the cgroup's OOM kill
/// count above zero (`oom_kills`, read only then).
pub fn record(state: &mut State, status: ExitStatus, now: i64, oom_kills: impl FnOnce() -> bool) {
    state.exit_code = status.code();
    state.finished = now;
    state.oom_killed = matches!(status, ExitStatus::Signaled(libc::SIGKILL)) && oom_kills();
}

/// The state between an ended run and the next start: Restarting, with no
/// init. The pid (and its start time) stop being the container's when its
/// run ends: kept, a reused pid would pass for the container's init if the
/// monitor were killed before the next start.
pub fn restarting(state: &mut State) {
    state.status = Status::Restarting;
    state.pid = 0;
    state.start_time = 0;
}

/// Whether a cgroup's memory events (v2 `memory.events`, v1
/// `memory.oom_control`) count an OOM kill.
pub fn oom_killed_in(events: &str) -> bool {
    events.lines().any(|l| {
        l.strip_prefix("oom_kill ")
            .and_then(|n| n.trim().parse::<u64>().ok())
            .is_some_and(|n| n > 0)
    })
}

/// Whether the container that ended with `code` after `restarts`
/// restarts: never once a stop was asked for (`berth stop`, `kill`: the
/// restart policies of Docker, unless-stopped included, end there), else
/// as its policy says.
pub fn restarts(policy: Restart, code: i32, restarts: u32, stop_requested: bool) -> bool {
    !stop_requested && policy.wants(code, restarts)
}

/// The exit code the restart policy judges: a container its liveness or
/// startup probe stopped counts as failed even when it exited 0 on its
/// stop signal (the kubelet restarts it under OnFailure whatever its
/// code).
pub fn policy_code(code: i32, probe_stopped: bool) -> i32 {
    if probe_stopped && code == 0 {
        1
    } else {
        code
    }
}

/// Docker's back-off between restarts: 100 ms, doubling to a minute,
/// back to 100 ms after a run of ten seconds or more.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Backoff {
    next: Duration,
    first: Duration,
    max: Duration,
    reset_after: Duration,
}

impl Default for Backoff {
    fn default() -> Backoff {
        Backoff {
            next: Duration::from_millis(100),
            first: Duration::from_millis(100),
            max: Duration::from_secs(60),
            reset_after: Duration::from_secs(10),
        }
    }
}

impl Backoff {
    /// Kubernetes' (the kubelet's CrashLoopBackOff), for containers with a
    /// liveness probe: 10 s, doubling to five minutes, back to 10 s after
    /// a run of ten minutes.
    pub fn kubernetes() -> Backoff {
        Backoff {
            next: Duration::from_secs(10),
            first: Duration::from_secs(10),
            max: Duration::from_secs(300),
            reset_after: Duration::from_secs(600),
        }
    }

    /// The wait before the restart that follows a run of `ran`.
    pub fn after_run(&mut self, ran: Duration) -> Duration {
        if ran >= self.reset_after {
            self.next = self.first;
        }
        let wait = self.next;
        self.next = (self.next * 2).min(self.max);
        wait
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_restarting_container_has_no_init_pid() {
        let mut s = State {
            pid: 4242,
            start_time: 99,
            status: Status::Running,
            restarts: 2,
            exit_code: 1,
            ..State::default()
        };
        restarting(&mut s);
        assert_eq!(s.status, Status::Restarting);
        assert_eq!(
            (s.pid, s.start_time),
            (0, 0),
            "the old init's pid is not kept"
        );
        assert_eq!((s.restarts, s.exit_code), (2, 1));
        // What a killed monitor leaves behind says so too.
        let back = State::parse(&s.to_text()).unwrap();
        assert_eq!((back.pid, back.start_time), (0, 0));
    }

    #[test]
    fn the_exit_code_is_the_status_or_128_plus_the_signal() {
        let mut s = State::default();
        record(&mut s, ExitStatus::Exited(3), 77, || {
            panic!("read only for SIGKILL")
        });
        assert_eq!((s.exit_code, s.finished, s.oom_killed), (3, 77, false));
        record(&mut s, ExitStatus::Signaled(libc::SIGTERM), 78, || {
            panic!("read only for SIGKILL")
        });
        assert_eq!(s.exit_code, 143);
        record(&mut s, ExitStatus::Signaled(libc::SIGKILL), 79, || false);
        assert_eq!((s.exit_code, s.oom_killed), (137, false));
        record(&mut s, ExitStatus::Signaled(libc::SIGKILL), 80, || true);
        assert_eq!((s.exit_code, s.finished, s.oom_killed), (137, 80, true));
        // Exit 137 by hand is no OOM kill.
        record(&mut s, ExitStatus::Exited(137), 81, || true);
        assert!(!s.oom_killed);
    }

    #[test]
    fn oom_kills_are_read_from_either_cgroup_version() {
        // v2 memory.events
        assert!(oom_killed_in(
            "low 0\nhigh 0\nmax 12\noom 1\noom_kill 1\noom_group_kill 0\n"
        ));
        assert!(!oom_killed_in("low 0\nhigh 0\nmax 12\noom 1\noom_kill 0\n"));
        // v1 memory.oom_control
        assert!(oom_killed_in(
            "oom_kill_disable 0\nunder_oom 0\noom_kill 2\n"
        ));
        assert!(!oom_killed_in("oom_kill_disable 1\nunder_oom 0\n"));
        assert!(!oom_killed_in(""));
        assert!(!oom_killed_in("oom_kill x\n"));
    }

    #[test]
    fn a_container_its_probe_stopped_counts_as_failed() {
        assert_eq!(policy_code(0, true), 1);
        assert_eq!(policy_code(0, false), 0);
        assert_eq!(policy_code(137, true), 137);
        assert!(restarts(
            Restart::OnFailure(0),
            policy_code(0, true),
            0,
            false
        ));
        assert!(!restarts(
            Restart::OnFailure(0),
            policy_code(0, false),
            0,
            false
        ));
        assert!(!restarts(Restart::No, policy_code(0, true), 0, false));
        // A user's stop still wins.
        assert!(!restarts(Restart::Always, policy_code(0, true), 0, true));
    }

    #[test]
    fn restart_policies_and_a_stop_asked_for() {
        for (policy, code, restarts_so_far, stop, want) in [
            (Restart::No, 1, 0, false, false),
            (Restart::Always, 0, 0, false, true),
            (Restart::Always, 0, 1000, false, true),
            (Restart::Always, 0, 0, true, false),
            (Restart::UnlessStopped, 137, 5, false, true),
            (Restart::UnlessStopped, 0, 0, true, false),
            (Restart::OnFailure(0), 0, 0, false, false),
            (Restart::OnFailure(0), 1, 500, false, true),
            (Restart::OnFailure(2), 1, 0, false, true),
            (Restart::OnFailure(2), 1, 1, false, true),
            (Restart::OnFailure(2), 1, 2, false, false),
            (Restart::OnFailure(2), 1, 0, true, false),
        ] {
            assert_eq!(
                restarts(policy, code, restarts_so_far, stop),
                want,
                "{policy:?} code {code} after {restarts_so_far} stop {stop}"
            );
        }
    }

    #[test]
    fn back_off_doubles_to_a_minute_and_resets_after_ten_seconds() {
        let mut b = Backoff::default();
        let short = Duration::from_millis(5);
        let waits: Vec<u128> = (0..12).map(|_| b.after_run(short).as_millis()).collect();
        assert_eq!(
            waits,
            [100, 200, 400, 800, 1600, 3200, 6400, 12800, 25600, 51200, 60000, 60000]
        );
        assert_eq!(b.after_run(Duration::from_secs(10)).as_millis(), 100);
        assert_eq!(b.after_run(Duration::from_secs(9)).as_millis(), 200);
        assert_eq!(b.after_run(Duration::from_secs(3600)).as_millis(), 100);
    }

    #[test]
    fn kubernetes_back_off_doubles_to_five_minutes_and_resets_after_ten() {
        let mut b = Backoff::kubernetes();
        let short = Duration::from_secs(1);
        let waits: Vec<u64> = (0..7).map(|_| b.after_run(short).as_secs()).collect();
        assert_eq!(waits, [10, 20, 40, 80, 160, 300, 300]);
        assert_eq!(b.after_run(Duration::from_secs(599)).as_secs(), 300);
        assert_eq!(b.after_run(Duration::from_secs(600)).as_secs(), 10);
    }
}
