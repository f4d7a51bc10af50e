//! The stats model of `berth stats` (and the REST API's stats endpoint):
//! which containers are sampled, two samples of each an interval apart,
//! and what is derived from them (CPU % over the interval, memory %).
//! The cgroup reading itself is [`Engine::sample`]. Callers format.

use crate::containers::Engine;
use crate::error::Result;
use crate::records::{Record, Status};
use crate::system::Sample;
use std::time::{Duration, Instant};

/// One container's usage over a sampling interval.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize)]
pub struct ContainerStats {
    pub id: String,
    pub name: String,
    /// CPU time used over the interval, as a percentage of one CPU (a
    /// container busy on two CPUs shows 200).
    pub cpu_percent: f64,
    pub mem_used: u64,
    /// The memory limit (the host's memory without one).
    pub mem_limit: u64,
    pub mem_percent: f64,
    pub block_read: u64,
    pub block_write: u64,
    pub pids: u64,
}

/// CPU % of one CPU from two CPU-time readings (ns) `elapsed_ns` apart;
/// 0 when time did not pass or the counter went back (a restart).
pub fn cpu_percent(cpu0_ns: u64, cpu1_ns: u64, elapsed_ns: u64) -> f64 {
    if elapsed_ns == 0 {
        return 0.0;
    }
    cpu1_ns.saturating_sub(cpu0_ns) as f64 / elapsed_ns as f64 * 100.0
}

/// Memory used as a percentage of the limit; 0 without a limit.
pub fn mem_percent(used: u64, limit: u64) -> f64 {
    if limit == 0 {
        return 0.0;
    }
    used as f64 / limit as f64 * 100.0
}

/// The stats of container `id` (`name`) from its samples before and
/// after an interval of `elapsed_ns`: all zero unless both were taken.
fn derive(
    (id, name): (&str, &str),
    before: Option<Sample>,
    after: Option<Sample>,
    elapsed_ns: u64,
) -> ContainerStats {
    let (cpu, s) = match (before, after) {
        (Some(a), Some(b)) => (cpu_percent(a.cpu_ns, b.cpu_ns, elapsed_ns), b),
        _ => (0.0, Sample::default()),
    };
    ContainerStats {
        id: id.to_string(),
        name: name.to_string(),
        cpu_percent: cpu,
        mem_used: s.mem_used,
        mem_limit: s.mem_limit,
        mem_percent: mem_percent(s.mem_used, s.mem_limit),
        block_read: s.io_read,
        block_write: s.io_write,
        pids: s.pids,
    }
}

impl Engine {
    /// The containers `stats` shows: those named (each must exist), or
    /// else the running ones (every one with `all`).
    pub fn stats_targets(&self, names: &[String], all: bool) -> Result<Vec<Record>> {
        if names.is_empty() {
            return Ok(self
                .list()?
                .into_iter()
                .filter(|r| all || r.state.status == Status::Running)
                .collect());
        }
        names.iter().map(|c| self.get(c)).collect()
    }

    /// Samples each of `recs` twice, `interval` apart (one sleep for all):
    /// their usage, in the order given. A container that is not running
    /// (or could not be read) shows zeros.
    pub fn stats(&self, recs: &[Record], interval: Duration) -> Vec<ContainerStats> {
        let first: Vec<_> = recs.iter().map(|r| self.sample(r).ok()).collect();
        let t0 = Instant::now();
        std::thread::sleep(interval);
        let dt = t0.elapsed().as_nanos().clamp(1, u64::MAX as u128) as u64;
        recs.iter()
            .zip(first)
            .map(|(r, s0)| {
                let s1 = if r.state.status == Status::Running {
                    self.sample(r).ok()
                } else {
                    None
                };
                derive((&r.id, &r.name), s0, s1, dt)
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_percent_is_of_one_cpu_over_the_interval() {
        assert_eq!(cpu_percent(0, 500_000_000, 1_000_000_000), 50.0);
        assert_eq!(cpu_percent(1_000, 2_000_001_000, 1_000_000_000), 200.0);
        // A counter that went back (restarted) or no time: 0, no panic.
        assert_eq!(cpu_percent(10, 5, 1_000), 0.0);
        assert_eq!(cpu_percent(0, 5, 0), 0.0);
    }

    #[test]
    fn mem_percent_without_a_limit_is_zero() {
        assert_eq!(mem_percent(50, 200), 25.0);
        assert_eq!(mem_percent(50, 0), 0.0);
    }

    #[test]
    fn stats_need_both_samples() {
        let rec = ("0123", "web");
        let s = |cpu, mem| Sample {
            cpu_ns: cpu,
            mem_used: mem,
            mem_limit: 1000,
            pids: 3,
            io_read: 1,
            io_write: 2,
        };
        let d = derive(rec, Some(s(0, 10)), Some(s(250, 100)), 1000);
        assert_eq!(
            (
                d.cpu_percent,
                d.mem_used,
                d.mem_percent,
                d.pids,
                d.block_write
            ),
            (25.0, 100, 10.0, 3, 2)
        );
        let none = derive(rec, None, Some(s(250, 100)), 1000);
        assert_eq!((none.cpu_percent, none.mem_used, none.pids), (0.0, 0, 0));
    }
}
