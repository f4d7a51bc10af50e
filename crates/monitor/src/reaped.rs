//! The exit statuses of reaped children that nobody has claimed yet.
//!
//! The monitor reaps every child it has (it is a subreaper), and keeps
//! each status until the code that waits for that pid takes it (the
//! runtime's runs, the container's init, health checks and hooks all take
//! theirs within one round of the poll loop). What it also reaps are
//! orphans reparented to it (a `--pid host` container's daemonized
//! processes): nobody claims those. So that a container making orphans
//! all day cannot grow the monitor without bound, a status left unclaimed
//! for [`UNCLAIMED_FOR`] is dropped once more than [`KEEP`] are held, and
//! the oldest go whatever their age past [`MAX`].

use berth_sys::process::ExitStatus;
use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

/// Held statuses below which nothing is dropped.
pub const KEEP: usize = 1024;
/// The most held: beyond it the oldest go, however young.
pub const MAX: usize = 16 * 1024;
/// A status older than this is nobody's (claims come within a poll round).
pub const UNCLAIMED_FOR: Duration = Duration::from_secs(10);

#[derive(Default)]
pub struct Reaped {
    by_pid: HashMap<i32, (ExitStatus, Instant)>,
    /// Insertion order, for dropping the oldest; may name pids claimed
    /// since (skipped) or reaped again since (their time tells).
    order: VecDeque<(i32, Instant)>,
}

impl Reaped {
    pub fn insert(&mut self, pid: i32, st: ExitStatus) {
        self.insert_at(pid, st, Instant::now());
    }

    fn insert_at(&mut self, pid: i32, st: ExitStatus, now: Instant) {
        self.by_pid.insert(pid, (st, now));
        self.order.push_back((pid, now));
        if self.by_pid.len() > KEEP {
            self.drop_unclaimed(now);
        }
        // Claimed pids leave their place in `order` behind: compact.
        if self.order.len() > 2 * self.by_pid.len() + 64 {
            let by_pid = &self.by_pid;
            self.order
                .retain(|(p, t)| by_pid.get(p).is_some_and(|(_, at)| at == t));
        }
    }

    fn drop_unclaimed(&mut self, now: Instant) {
        while let Some(&(pid, at)) = self.order.front() {
            let held = self.by_pid.get(&pid).is_some_and(|(_, t)| *t == at);
            if held && now.duration_since(at) < UNCLAIMED_FOR && self.by_pid.len() <= MAX {
                break;
            }
            self.order.pop_front();
            if held {
                self.by_pid.remove(&pid);
            }
        }
    }

    /// Takes the status of `pid`, if it was reaped.
    pub fn remove(&mut self, pid: &i32) -> Option<ExitStatus> {
        self.by_pid.remove(pid).map(|(st, _)| st)
    }

    pub fn contains_key(&self, pid: &i32) -> bool {
        self.by_pid.contains_key(pid)
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.by_pid.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn claimed_statuses_are_taken_and_unclaimed_ones_do_not_pile_up() {
        let mut r = Reaped::default();
        let t0 = Instant::now();
        r.insert_at(7, ExitStatus::Exited(3), t0);
        assert!(r.contains_key(&7));
        assert!(matches!(r.remove(&7), Some(ExitStatus::Exited(3))));
        assert!(r.remove(&7).is_none());
        // Orphans nobody claims, a few a millisecond for a minute: what is
        // held stays bounded, and a young status is kept for its waiter.
        let mut pid = 100;
        for ms in 0..60_000u64 {
            let now = t0 + Duration::from_millis(ms);
            for _ in 0..3 {
                pid += 1;
                r.insert_at(pid, ExitStatus::Exited(0), now);
            }
            if ms % 1000 == 0 {
                r.insert_at(1, ExitStatus::Signaled(9), now);
                assert!(r.contains_key(&1), "a fresh status was dropped");
                assert!(matches!(r.remove(&1), Some(ExitStatus::Signaled(9))));
            }
            assert!(r.len() <= MAX, "{} held", r.len());
            assert!(
                r.order.len() <= 2 * r.len() + 65,
                "{} in order",
                r.order.len()
            );
        }
        // Past the flood, old ones are dropped as soon as more come.
        let late = t0 + Duration::from_secs(120);
        for _ in 0..=KEEP {
            pid += 1;
            r.insert_at(pid, ExitStatus::Exited(0), late);
        }
        assert!(r.len() <= KEEP + 1, "{} held", r.len());
    }
}
