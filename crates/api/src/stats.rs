//! `GET /containers/{id}/stats`: the engine's cgroup samples
//! (`Engine::sample`, the model of `berth stats`) in Docker's schema, one
//! document a second (`stream`, the default) or one (`stream=false`: two
//! samples a second apart, so the CPU % can be derived; `one-shot`: one
//! sample, no previous one). Clients derive CPU % from the deltas of
//! `cpu_usage.total_usage` and `system_cpu_usage`, as from dockerd.

use crate::error::ApiResult;
use crate::http::{self, Query, Resp};
use crate::server::Shared;
use berth_engine::records::Status;
use berth_engine::system::Sample;
use bytes::Bytes;
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::Duration;

/// How long the stream waits for a client that does not read.
const STALL: Duration = Duration::from_secs(60);
const INTERVAL: Duration = Duration::from_secs(1);

/// The host's CPU time (all CPUs, ns), as Docker's `system_cpu_usage`:
/// the first line of /proc/stat, user to steal, in clock ticks.
fn system_cpu_ns() -> u64 {
    let text = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    system_cpu_ns_of(&text, clock_ticks())
}

fn system_cpu_ns_of(stat: &str, ticks: u64) -> u64 {
    let Some(line) = stat.lines().find(|l| l.starts_with("cpu ")) else {
        return 0;
    };
    let total: u64 = line
        .split_whitespace()
        .skip(1)
        .take(8)
        .filter_map(|v| v.parse::<u64>().ok())
        .sum();
    total.saturating_mul(1_000_000_000 / ticks.max(1))
}

fn clock_ticks() -> u64 {
    // SAFETY: sysconf only reads a system value.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    u64::try_from(t).ok().filter(|&t| t > 0).unwrap_or(100)
}

fn online_cpus() -> u64 {
    std::thread::available_parallelism().map_or(1, |n| n.get() as u64)
}

/// One reading: when, the container's sample (None: not running), the
/// host's CPU time.
#[derive(Clone, Default)]
struct Reading {
    time: i64,
    sample: Option<Sample>,
    system: u64,
}

fn cpu_doc(r: Option<&Reading>) -> Value {
    let (total, system, cpus) = match r {
        Some(r) => (
            r.sample.as_ref().map_or(0, |s| s.cpu_ns),
            r.system,
            online_cpus(),
        ),
        None => (0, 0, 0),
    };
    json!({
        "cpu_usage": {"total_usage": total, "usage_in_kernelmode": 0, "usage_in_usermode": 0},
        "system_cpu_usage": system,
        "online_cpus": cpus,
        "throttling_data": {"periods": 0, "throttled_periods": 0, "throttled_time": 0},
    })
}

/// Docker's stats document for `cur`, with `prev` as its `precpu`.
fn doc(id: &str, name: &str, cur: &Reading, prev: Option<&Reading>) -> Value {
    let s = cur.sample.clone().unwrap_or_default();
    let io = |op: &str, v: u64| json!({"major": 0, "minor": 0, "op": op, "value": v});
    json!({
        "read": berth_engine::logs::rfc3339_nano(cur.time),
        "preread": prev.map_or_else(|| "0001-01-01T00:00:00Z".to_string(), |p| berth_engine::logs::rfc3339_nano(p.time)),
        "pids_stats": {"current": s.pids},
        "blkio_stats": {
            "io_service_bytes_recursive": [io("Read", s.io_read), io("Write", s.io_write)],
            "io_serviced_recursive": null, "io_queue_recursive": null,
            "io_service_time_recursive": null, "io_wait_time_recursive": null,
            "io_merged_recursive": null, "io_time_recursive": null, "sectors_recursive": null,
        },
        "num_procs": 0,
        "storage_stats": {},
        "cpu_stats": cpu_doc(Some(cur)),
        "precpu_stats": cpu_doc(prev),
        "memory_stats": if cur.sample.is_some() {
            json!({"usage": s.mem_used, "limit": s.mem_limit, "stats": {}})
        } else {
            json!({})
        },
        "name": format!("/{name}"),
        "id": id,
    })
}

pub async fn stats(s: &Arc<Shared>, id: &str, q: &Query) -> ApiResult<Resp> {
    let stream = !matches!(q.get("stream"), Some("0" | "false" | "False" | "FALSE"));
    let one_shot = !stream && q.flag("one-shot");
    let id = id.to_string();
    // The container must exist: a 404 before the stream starts.
    let rec = s.engine(move |e| Ok(e.get(&id)?)).await?;
    let (resp, tx) = http::stream("application/json");
    let s = s.clone();
    tokio::spawn(async move {
        let r = s
            .engine(move |e| {
                let mut prev: Option<Reading> = None;
                loop {
                    // Read again each time: it may have stopped or gone.
                    let now = e.get(&rec.id).ok();
                    let running = now
                        .as_ref()
                        .is_some_and(|r| r.state.status == Status::Running);
                    let cur = Reading {
                        time: berth_engine::logs::now_nanos(),
                        sample: now
                            .as_ref()
                            .filter(|_| running)
                            .and_then(|r| e.sample(r).ok()),
                        system: system_cpu_ns(),
                    };
                    let last = !stream && (one_shot || prev.is_some() || !running);
                    if stream || last {
                        let mut v =
                            serde_json::to_vec(&doc(&rec.id, &rec.name, &cur, prev.as_ref()))
                                .unwrap_or_default();
                        v.push(b'\n');
                        if !http::send_within(&tx, Bytes::from(v), STALL) {
                            return Ok(());
                        }
                    }
                    if last || (stream && now.is_none()) {
                        return Ok(());
                    }
                    prev = Some(cur);
                    // A client that left ends this within a tenth of a second.
                    let t = std::time::Instant::now();
                    while t.elapsed() < INTERVAL {
                        if tx.is_closed() {
                            return Ok(());
                        }
                        std::thread::sleep(Duration::from_millis(100));
                    }
                }
            })
            .await;
        if let Err(e) = r {
            tracing::warn!("API stats: {}", e.message);
        }
    });
    Ok(resp)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn system_cpu_time_is_the_first_lines_ticks_in_ns() {
        let stat = "cpu  10 1 5 100 2 0 1 1 7 0\ncpu0 1 1 1 1 1 1 1 1 1 1\n";
        assert_eq!(system_cpu_ns_of(stat, 100), 120 * 10_000_000);
        assert_eq!(system_cpu_ns_of("nonsense", 100), 0);
    }

    #[test]
    fn documents_have_dockers_fields() {
        let sample = Sample {
            cpu_ns: 500,
            mem_used: 1 << 20,
            mem_limit: 1 << 30,
            pids: 2,
            io_read: 7,
            io_write: 9,
        };
        let prev = Reading {
            time: 1_000_000_000,
            sample: Some(sample.clone()),
            system: 1000,
        };
        let cur = Reading {
            time: 2_000_000_000,
            sample: Some(sample),
            system: 3000,
        };
        let d = doc("abc", "web", &cur, Some(&prev));
        assert_eq!(d["name"], "/web");
        assert_eq!(d["pids_stats"]["current"], 2);
        assert_eq!(d["memory_stats"]["usage"], 1 << 20);
        assert_eq!(d["cpu_stats"]["system_cpu_usage"], 3000);
        assert_eq!(d["precpu_stats"]["system_cpu_usage"], 1000);
        assert_eq!(
            d["blkio_stats"]["io_service_bytes_recursive"][1]["value"],
            9
        );
        assert_eq!(d["read"], "1970-01-01T00:00:02.000000000Z");
        let first = doc("abc", "web", &cur, None);
        assert_eq!(first["precpu_stats"]["online_cpus"], 0);
        assert_eq!(first["preread"], "0001-01-01T00:00:00Z");
    }
}
