//! Resource usage of a container's cgroup, in the schema runc's `events`
//! prints (so tools that parse runc's output parse ours), read from v1 or v2
//! files; and OOM-kill notification (v1 `memory.oom_control` through an
//! eventfd, v2 the `oom_kill` counter of `memory.events`).

use crate::{Dir, Manager, Version};
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::Path;

#[derive(Debug, Default, Serialize)]
pub struct Stats {
    pub cpu: Cpu,
    pub memory: Memory,
    pub pids: Pids,
    pub blkio: Blkio,
    pub hugetlb: BTreeMap<String, Hugetlb>,
}

#[derive(Debug, Default, Serialize)]
pub struct Cpu {
    pub usage: CpuUsage,
    pub throttling: Throttling,
}

#[derive(Debug, Default, Serialize)]
pub struct CpuUsage {
    /// Nanoseconds.
    pub total: u64,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub percpu: Vec<u64>,
    pub kernel: u64,
    pub user: u64,
}

#[derive(Debug, Default, Serialize)]
pub struct Throttling {
    pub periods: u64,
    #[serde(rename = "throttledPeriods")]
    pub throttled_periods: u64,
    /// Nanoseconds.
    #[serde(rename = "throttledTime")]
    pub throttled_time: u64,
}

#[derive(Debug, Default, Serialize)]
pub struct MemoryEntry {
    pub limit: u64,
    pub usage: u64,
    pub max: u64,
    pub failcnt: u64,
}

#[derive(Debug, Default, Serialize)]
pub struct Memory {
    pub cache: u64,
    pub usage: MemoryEntry,
    pub swap: MemoryEntry,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub raw: BTreeMap<String, u64>,
}

#[derive(Debug, Default, Serialize)]
pub struct Pids {
    pub current: u64,
    /// 0 when unlimited.
    pub limit: u64,
}

#[derive(Debug, Default, Serialize)]
pub struct BlkioEntry {
    pub major: u64,
    pub minor: u64,
    pub op: String,
    pub value: u64,
}

#[derive(Debug, Default, Serialize)]
pub struct Blkio {
    #[serde(
        rename = "ioServiceBytesRecursive",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub io_service_bytes_recursive: Vec<BlkioEntry>,
    #[serde(rename = "ioServicedRecursive", skip_serializing_if = "Vec::is_empty")]
    pub io_serviced_recursive: Vec<BlkioEntry>,
}

#[derive(Debug, Default, Serialize)]
pub struct Hugetlb {
    pub usage: u64,
    pub max: u64,
    pub failcnt: u64,
}

fn read(dir: &Path, file: &str) -> Option<String> {
    std::fs::read_to_string(dir.join(file)).ok()
}

fn num(dir: &Path, file: &str) -> u64 {
    read(dir, file)
        .and_then(|s| s.trim().parse::<u64>().ok())
        .unwrap_or(0)
}

/// "max" (no limit) reads as 0, as runc reports it.
fn limit(dir: &Path, file: &str) -> u64 {
    read(dir, file)
        .and_then(|s| s.trim().parse::<u64>().ok())
        .unwrap_or(0)
}

/// `key value` lines (memory.stat, cpu.stat, memory.events).
fn keyed(text: &str) -> BTreeMap<String, u64> {
    text.lines()
        .filter_map(|l| {
            let mut it = l.split_whitespace();
            Some((it.next()?.to_string(), it.next()?.parse().ok()?))
        })
        .collect()
}

/// v1 blkio files: `MAJ:MIN Op value` lines (and a `Total` line).
fn blkio_v1(text: &str) -> Vec<BlkioEntry> {
    text.lines()
        .filter_map(|l| {
            let mut it = l.split_whitespace();
            let dev = it.next()?;
            let (maj, min) = dev.split_once(':')?;
            Some(BlkioEntry {
                major: maj.parse().ok()?,
                minor: min.parse().ok()?,
                op: it.next()?.to_string(),
                value: it.next()?.parse().ok()?,
            })
        })
        .collect()
}

/// Hugepage sizes as the files name them ("2MB", "1GB").
pub(crate) fn hugepage_sizes(dir: &Path, prefix: &str, suffix: &str) -> Vec<String> {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut out: Vec<String> = rd
        .flatten()
        .filter_map(|e| {
            let n = e.file_name().to_string_lossy().into_owned();
            n.strip_prefix(prefix)?
                .strip_suffix(suffix)
                .filter(|s| !s.contains('.'))
                .map(str::to_string)
        })
        .collect();
    out.sort();
    out
}

impl Manager {
    /// Starts watching for OOM kills; `None` without a memory controller.
    pub fn oom_watch(&self) -> crate::Result<Option<OomWatch>> {
        OomWatch::new(self)
    }

    /// Reads what every hierarchy reports; files a host lacks read as 0.
    pub fn stats(&self) -> Stats {
        let mut s = Stats::default();
        if self.version == Version::V2 {
            if let Some(d) = self.dirs.first() {
                stats_v2(&d.path, &mut s);
            }
            return s;
        }
        for d in &self.dirs {
            if d.v2 {
                // Hybrid: the unified hierarchy may hold hugetlb.
                hugetlb_v2(&d.path, &mut s);
            } else {
                stats_v1(d, &mut s);
            }
        }
        s
    }
}

fn stats_v1(d: &Dir, s: &mut Stats) {
    let p = d.path.as_path();
    if d.has("cpuacct") {
        s.cpu.usage.total = num(p, "cpuacct.usage");
        s.cpu.usage.percpu = read(p, "cpuacct.usage_percpu")
            .map(|t| {
                t.split_whitespace()
                    .filter_map(|v| v.parse().ok())
                    .collect()
            })
            .unwrap_or_default();
        // cpuacct.stat is in USER_HZ (100 per second).
        let st = keyed(&read(p, "cpuacct.stat").unwrap_or_default());
        s.cpu.usage.user = st.get("user").copied().unwrap_or(0) * 10_000_000;
        s.cpu.usage.kernel = st.get("system").copied().unwrap_or(0) * 10_000_000;
    }
    if d.has("cpu") {
        let st = keyed(&read(p, "cpu.stat").unwrap_or_default());
        s.cpu.throttling.periods = st.get("nr_periods").copied().unwrap_or(0);
        s.cpu.throttling.throttled_periods = st.get("nr_throttled").copied().unwrap_or(0);
        s.cpu.throttling.throttled_time = st.get("throttled_time").copied().unwrap_or(0);
    }
    if d.has("memory") {
        let raw = keyed(&read(p, "memory.stat").unwrap_or_default());
        s.memory.cache = raw
            .get("total_cache")
            .or(raw.get("cache"))
            .copied()
            .unwrap_or(0);
        s.memory.raw = raw;
        s.memory.usage = MemoryEntry {
            limit: limit(p, "memory.limit_in_bytes"),
            usage: num(p, "memory.usage_in_bytes"),
            max: num(p, "memory.max_usage_in_bytes"),
            failcnt: num(p, "memory.failcnt"),
        };
        s.memory.swap = MemoryEntry {
            limit: limit(p, "memory.memsw.limit_in_bytes"),
            usage: num(p, "memory.memsw.usage_in_bytes"),
            max: num(p, "memory.memsw.max_usage_in_bytes"),
            failcnt: num(p, "memory.memsw.failcnt"),
        };
    }
    if d.has("pids") {
        s.pids.current = num(p, "pids.current");
        s.pids.limit = limit(p, "pids.max");
    }
    if d.has("blkio") {
        s.blkio.io_service_bytes_recursive =
            blkio_v1(&read(p, "blkio.throttle.io_service_bytes_recursive").unwrap_or_default());
        s.blkio.io_serviced_recursive =
            blkio_v1(&read(p, "blkio.throttle.io_serviced_recursive").unwrap_or_default());
    }
    if d.has("hugetlb") {
        for size in hugepage_sizes(p, "hugetlb.", ".usage_in_bytes") {
            s.hugetlb.insert(
                size.clone(),
                Hugetlb {
                    usage: num(p, &format!("hugetlb.{size}.usage_in_bytes")),
                    max: num(p, &format!("hugetlb.{size}.max_usage_in_bytes")),
                    failcnt: num(p, &format!("hugetlb.{size}.failcnt")),
                },
            );
        }
    }
}

fn hugetlb_v2(p: &Path, s: &mut Stats) {
    for size in hugepage_sizes(p, "hugetlb.", ".current") {
        let events = keyed(&read(p, &format!("hugetlb.{size}.events")).unwrap_or_default());
        s.hugetlb.insert(
            size.clone(),
            Hugetlb {
                usage: num(p, &format!("hugetlb.{size}.current")),
                max: limit(p, &format!("hugetlb.{size}.max")),
                failcnt: events.get("max").copied().unwrap_or(0),
            },
        );
    }
}

fn stats_v2(p: &Path, s: &mut Stats) {
    let cpu = keyed(&read(p, "cpu.stat").unwrap_or_default());
    let us = |k: &str| cpu.get(k).copied().unwrap_or(0) * 1000;
    s.cpu.usage.total = us("usage_usec");
    s.cpu.usage.user = us("user_usec");
    s.cpu.usage.kernel = us("system_usec");
    s.cpu.throttling.periods = cpu.get("nr_periods").copied().unwrap_or(0);
    s.cpu.throttling.throttled_periods = cpu.get("nr_throttled").copied().unwrap_or(0);
    s.cpu.throttling.throttled_time = us("throttled_usec");
    let raw = keyed(&read(p, "memory.stat").unwrap_or_default());
    s.memory.cache = raw.get("file").copied().unwrap_or(0);
    s.memory.raw = raw;
    let events = keyed(&read(p, "memory.events").unwrap_or_default());
    s.memory.usage = MemoryEntry {
        limit: limit(p, "memory.max"),
        usage: num(p, "memory.current"),
        max: num(p, "memory.peak"),
        failcnt: events.get("max").copied().unwrap_or(0),
    };
    let swap_events = keyed(&read(p, "memory.swap.events").unwrap_or_default());
    s.memory.swap = MemoryEntry {
        limit: limit(p, "memory.swap.max"),
        usage: num(p, "memory.swap.current"),
        max: num(p, "memory.swap.peak"),
        failcnt: swap_events.get("max").copied().unwrap_or(0),
    };
    s.pids.current = num(p, "pids.current");
    s.pids.limit = limit(p, "pids.max");
    for line in read(p, "io.stat").unwrap_or_default().lines() {
        let mut it = line.split_whitespace();
        let Some((maj, min)) = it.next().and_then(|d| d.split_once(':')) else {
            continue;
        };
        let (Ok(major), Ok(minor)) = (maj.parse(), min.parse()) else {
            continue;
        };
        for kv in it {
            let Some((k, v)) = kv.split_once('=') else {
                continue;
            };
            let Ok(value) = v.parse() else { continue };
            let (list, op) = match k {
                "rbytes" => (&mut s.blkio.io_service_bytes_recursive, "Read"),
                "wbytes" => (&mut s.blkio.io_service_bytes_recursive, "Write"),
                "rios" => (&mut s.blkio.io_serviced_recursive, "Read"),
                "wios" => (&mut s.blkio.io_serviced_recursive, "Write"),
                _ => continue,
            };
            list.push(BlkioEntry {
                major,
                minor,
                op: op.into(),
                value,
            });
        }
    }
    hugetlb_v2(p, s);
}

/// Waits for OOM kills in a container's memory cgroup.
pub struct OomWatch {
    fd: std::os::fd::OwnedFd,
    /// The file with the `oom_kill` counter (v1 memory.oom_control, v2
    /// memory.events) and its last value: the eventfd also fires when the
    /// cgroup goes away, so only the counter says what happened.
    counter: (std::path::PathBuf, u64),
    v2: bool,
}

impl OomWatch {
    /// v1: an eventfd registered on memory.oom_control; v2: memory.events,
    /// which the kernel notifies (POLLPRI) when it changes.
    pub fn new(m: &Manager) -> crate::Result<Option<OomWatch>> {
        use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
        if m.version == Version::V2 {
            let Some(d) = m.dirs.first() else {
                return Ok(None);
            };
            let path = d.path.join("memory.events");
            let fd = berth_sys::fs::open(&path, libc::O_RDONLY, 0)
                .map_err(crate::io_err("open", &path))?;
            let count = keyed(&std::fs::read_to_string(&path).unwrap_or_default())
                .get("oom_kill")
                .copied()
                .unwrap_or(0);
            return Ok(Some(OomWatch {
                fd,
                counter: (path, count),
                v2: true,
            }));
        }
        let Some(d) = m.dirs.iter().find(|d| d.has("memory")) else {
            return Ok(None);
        };
        let oom = d.path.join("memory.oom_control");
        let count = keyed(&std::fs::read_to_string(&oom).unwrap_or_default())
            .get("oom_kill")
            .copied()
            .unwrap_or(0);
        let oom_fd =
            berth_sys::fs::open(&oom, libc::O_RDONLY, 0).map_err(crate::io_err("open", &oom))?;
        // SAFETY: plain syscall.
        let efd = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK) };
        if efd < 0 {
            return Err(crate::io_err("create an eventfd for", &oom)(
                std::io::Error::last_os_error(),
            ));
        }
        // SAFETY: a new fd we own.
        let efd = unsafe { OwnedFd::from_raw_fd(efd) };
        let ctl = d.path.join("cgroup.event_control");
        std::fs::write(&ctl, format!("{} {}", efd.as_raw_fd(), oom_fd.as_raw_fd()))
            .map_err(crate::io_err("register an OOM eventfd with", &ctl))?;
        Ok(Some(OomWatch {
            fd: efd,
            counter: (oom, count),
            v2: false,
        }))
    }

    /// The fd to poll (POLLIN for v1's eventfd, POLLPRI for v2).
    pub fn poll_fd(&self) -> (std::os::fd::RawFd, i16) {
        use std::os::fd::AsRawFd;
        let ev = if self.v2 { libc::POLLPRI } else { libc::POLLIN };
        (self.fd.as_raw_fd(), ev)
    }

    /// After the fd fired: how many OOM kills happened since last time.
    pub fn take(&mut self) -> u64 {
        use std::os::fd::AsRawFd;
        if !self.v2 {
            let mut v = 0u64;
            // SAFETY: reading 8 bytes from our eventfd into a u64.
            let _ = unsafe { libc::read(self.fd.as_raw_fd(), (&mut v as *mut u64).cast(), 8) };
        }
        let (path, last) = &mut self.counter;
        let now = keyed(&std::fs::read_to_string(&*path).unwrap_or_default())
            .get("oom_kill")
            .copied()
            .unwrap_or(*last);
        let new = now.saturating_sub(*last);
        *last = now;
        new
    }
}
