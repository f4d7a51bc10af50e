//! Writing OCI LinuxResources to cgroup files, v1 and v2.

use crate::{io_err, Dir, Error, Manager, Result, Version};
use oci_spec::runtime::{
    LinuxBlockIo, LinuxCpu, LinuxDeviceCgroup, LinuxDeviceType, LinuxMemory, LinuxResources,
};
use std::path::Path;

/// Writes a cgroup file as runc does (O_WRONLY|O_TRUNC), never creating
/// one: a missing file is the kernel lacking the feature.
fn write_file(path: &Path, value: &str) -> std::io::Result<()> {
    use std::io::Write;
    std::fs::OpenOptions::new()
        .write(true)
        .truncate(true)
        .open(path)?
        .write_all(value.as_bytes())
}

fn write(dir: &Path, file: &str, value: &str) -> Result<()> {
    let p = dir.join(file);
    write_file(&p, value).map_err(io_err("write", &p))
}

/// Writes a file that only some kernels (or schedulers, or configs) have:
/// its absence is the host lacking the feature, said as such.
fn write_feature(
    dir: &Path,
    file: &str,
    value: &str,
    field: &'static str,
    lacks: &str,
) -> Result<()> {
    let p = dir.join(file);
    match write_file(&p, value) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(Error::Unsupported {
            field,
            msg: format!("{} does not exist: {lacks}", p.display()),
        }),
        other => other.map_err(io_err("write", &p)),
    }
}

fn read(dir: &Path, file: &str) -> Result<String> {
    let p = dir.join(file);
    std::fs::read_to_string(&p)
        .map(|s| s.trim().to_string())
        .map_err(io_err("read", &p))
}

fn unsupported(field: &'static str, msg: impl Into<String>) -> Error {
    Error::Unsupported {
        field,
        msg: msg.into(),
    }
}

/// A part of the request and the controller it needs: by its v1 name, and
/// on v2 (`None`: v2 has no such controller).
struct Need {
    field: &'static str,
    v1: &'static str,
    v2: Option<&'static str>,
}

fn needs(res: &LinuxResources) -> Vec<Need> {
    let need = |field, v1, v2| Need { field, v1, v2 };
    let mut out = Vec::new();
    if let Some(m) = res.memory() {
        let set = m.limit().is_some()
            || m.reservation().is_some()
            || m.swap().is_some()
            || m.swappiness().is_some()
            || m.disable_oom_killer() == Some(true);
        if set {
            out.push(need("memory", "memory", Some("memory")));
        }
    }
    if let Some(c) = res.cpu() {
        let set = c.shares().is_some()
            || c.quota().is_some()
            || c.period().is_some()
            || c.burst().is_some()
            || c.idle().is_some()
            || c.realtime_period().is_some()
            || c.realtime_runtime().is_some();
        if set {
            out.push(need("cpu", "cpu", Some("cpu")));
        }
        let non_empty = |s: &Option<String>| s.as_deref().is_some_and(|s| !s.is_empty());
        if non_empty(c.cpus()) || non_empty(c.mems()) {
            out.push(need("cpu.cpus", "cpuset", Some("cpuset")));
        }
    }
    if res.pids().as_ref().is_some_and(|p| p.limit() != 0) {
        out.push(need("pids", "pids", Some("pids")));
    }
    if res
        .block_io()
        .as_ref()
        .is_some_and(|b| b != &Default::default())
    {
        out.push(need("blockIO", "blkio", Some("io")));
    }
    if res
        .hugepage_limits()
        .as_ref()
        .is_some_and(|h| !h.is_empty())
    {
        out.push(need("hugepageLimits", "hugetlb", Some("hugetlb")));
    }
    if let Some(n) = res.network() {
        if n.class_id().is_some() {
            out.push(need("network.classID", "net_cls", None));
        }
        if n.priorities().as_ref().is_some_and(|p| !p.is_empty()) {
            out.push(need("network.priorities", "net_prio", None));
        }
    }
    if res.rdma().as_ref().is_some_and(|r| !r.is_empty()) {
        out.push(need("rdma", "rdma", Some("rdma")));
    }
    out
}

/// A kernel or cgroup file name: one path component, printable, no spaces.
fn plain_name(s: &str) -> bool {
    !s.is_empty() && s != "." && s != ".." && s.bytes().all(|b| b.is_ascii_graphic() && b != b'/')
}

/// `64KB`, `2MB`, `1GB`: the hugepage size as the hugetlb files name it.
fn hugepage_size_ok(s: &str) -> bool {
    let digits = s.trim_end_matches(|c: char| c.is_ascii_alphabetic());
    let unit = &s[digits.len()..];
    !digits.is_empty()
        && digits.bytes().all(|b| b.is_ascii_digit())
        && matches!(unit, "KB" | "MB" | "GB" | "TB")
}

/// Checks the values themselves, whatever the host has.
fn check_values(res: &LinuxResources, v2: bool) -> Result<()> {
    if let Some(m) = res.memory() {
        if let Some(s) = m.swappiness() {
            if v2 {
                return Err(unsupported(
                    "memory.swappiness",
                    "cgroup v2 has no per-cgroup swappiness; remove it from the config",
                ));
            }
            if s > 100 {
                return Err(unsupported(
                    "memory.swappiness",
                    format!("{s} is out of range 0-100"),
                ));
            }
        }
        if v2 && m.disable_oom_killer() == Some(true) {
            return Err(unsupported(
                "memory.disableOOMKiller",
                "cgroup v2 has no way to disable the OOM killer",
            ));
        }
        if m.use_hierarchy() == Some(false) {
            tracing::warn!(
                "linux.resources.memory.useHierarchy=false ignored: current kernels are always hierarchical"
            );
        }
    }
    if let Some(c) = res.cpu() {
        if v2 && (c.realtime_period().is_some() || c.realtime_runtime().is_some()) {
            return Err(unsupported(
                "cpu.realtimeRuntime",
                "cgroup v2 has no real-time CPU bandwidth control",
            ));
        }
        if let Some(i) = c.idle() {
            if !(0..=1).contains(&i) {
                return Err(unsupported("cpu.idle", format!("{i} is not 0 or 1")));
            }
        }
    }
    if let Some(b) = res.block_io() {
        let weight_ok = |w: Option<u16>| w.is_none_or(|w| w == 0 || (10..=1000).contains(&w));
        if !weight_ok(b.weight()) || !weight_ok(b.leaf_weight()) {
            return Err(unsupported(
                "blockIO.weight",
                "a weight must be between 10 and 1000",
            ));
        }
        for d in b.weight_device().iter().flatten() {
            if !weight_ok(d.weight()) || !weight_ok(d.leaf_weight()) {
                return Err(unsupported(
                    "blockIO.weightDevice",
                    format!(
                        "{}:{}: a weight must be between 10 and 1000",
                        d.major(),
                        d.minor()
                    ),
                ));
            }
        }
        let devices = b
            .weight_device()
            .iter()
            .flatten()
            .map(|d| (d.major(), d.minor()));
        let throttled = [
            b.throttle_read_bps_device(),
            b.throttle_write_bps_device(),
            b.throttle_read_iops_device(),
            b.throttle_write_iops_device(),
        ];
        let throttled = throttled
            .into_iter()
            .flatten()
            .flatten()
            .map(|d| (d.major(), d.minor()));
        for (major, minor) in devices.chain(throttled) {
            if major < 0 || minor < 0 {
                return Err(unsupported(
                    "blockIO",
                    format!("device {major}:{minor}: major and minor must not be negative"),
                ));
            }
        }
        let leaf = b.leaf_weight().is_some_and(|w| w != 0)
            || b.weight_device()
                .iter()
                .flatten()
                .any(|d| d.leaf_weight().is_some_and(|w| w != 0));
        if v2 && leaf {
            return Err(unsupported(
                "blockIO.leafWeight",
                "cgroup v2 has no leaf weights; remove them from the config",
            ));
        }
    }
    for h in res.hugepage_limits().iter().flatten() {
        if !hugepage_size_ok(h.page_size()) {
            return Err(unsupported(
                "hugepageLimits.pageSize",
                format!("{:?} is not a size like 2MB or 1GB", h.page_size()),
            ));
        }
    }
    if let Some(n) = res.network() {
        for p in n.priorities().iter().flatten() {
            if !plain_name(p.name()) {
                return Err(unsupported(
                    "network.priorities",
                    format!("{:?} is not an interface name", p.name()),
                ));
            }
        }
    }
    for dev in res.rdma().iter().flatten().map(|(d, _)| d) {
        if !plain_name(dev) {
            return Err(unsupported(
                "rdma",
                format!("{dev:?} is not an RDMA device name"),
            ));
        }
    }
    if let Some(u) = res.unified().as_ref().filter(|u| !u.is_empty()) {
        if !v2 {
            return Err(unsupported(
                "unified",
                "cgroup v2 key/values need a cgroup v2 host; this one runs cgroup v1",
            ));
        }
        for (k, v) in u {
            let (ctrl, _) = k.split_once('.').unwrap_or(("", ""));
            if !plain_name(k) || ctrl.is_empty() {
                return Err(unsupported(
                    "unified",
                    format!("{k:?} is not a cgroup file name like memory.high"),
                ));
            }
            if matches!(
                k.as_str(),
                "cgroup.procs" | "cgroup.threads" | "cgroup.kill" | "cgroup.freeze"
            ) {
                return Err(unsupported(
                    "unified",
                    format!("{k} is the runtime's to manage, not a resource"),
                ));
            }
            if v.contains('\n') {
                return Err(unsupported(
                    "unified",
                    format!("{k}: a value must be one line"),
                ));
            }
        }
    }
    if let Some(m) = res.memory() {
        if m.kernel().is_some() || m.kernel_tcp().is_some() {
            tracing::warn!(
                "linux.resources.memory.kernel and kernelTCP are ignored: kernel memory limits are deprecated (and gone from cgroup v2)"
            );
        }
    }
    Ok(())
}

/// Refuses what this manager cannot honour, before anything is written.
pub(crate) fn validate(m: &Manager, res: &LinuxResources) -> Result<()> {
    let v2 = m.version == Version::V2;
    check_values(res, v2)?;
    let available = if v2 { m.v2_controllers() } else { None };
    for n in needs(res) {
        if !v2 {
            if m.v1_dir(n.v1).is_none() {
                let hint = if m.version == Version::Hybrid {
                    " (this hybrid host uses its cgroup2 mount only to track processes)"
                } else {
                    ""
                };
                return Err(unsupported(
                    n.field,
                    format!("the host has no {} cgroup controller mounted{hint}", n.v1),
                ));
            }
            continue;
        }
        let Some(c) = n.v2 else {
            return Err(unsupported(
                n.field,
                format!(
                    "cgroup v2 has no {} controller; remove it from the config",
                    n.v1
                ),
            ));
        };
        if let Some(avail) = &available {
            if !avail.iter().any(|a| a == c) {
                return Err(unsupported(
                    n.field,
                    format!(
                        "the {c} controller is not available to this cgroup (it has: {}); enable it in the parent's cgroup.subtree_control",
                        avail.join(" ")
                    ),
                ));
            }
        }
    }
    if let Some(d) = res.devices().as_ref().filter(|d| !d.is_empty()) {
        crate::devices_bpf::rules(d).map_err(|msg| unsupported("devices", msg))?;
        if !v2 && m.v1_dir("devices").is_none() {
            return Err(unsupported(
                "devices",
                "the host has no devices cgroup controller mounted",
            ));
        }
    }
    check_before_update(m, res)
}

/// memory.checkBeforeUpdate: a new limit below what the cgroup already uses
/// is refused rather than forcing reclaim or an OOM kill.
fn check_before_update(m: &Manager, res: &LinuxResources) -> Result<()> {
    let Some(mem) = res.memory() else {
        return Ok(());
    };
    let Some(limit) = mem.limit().filter(|l| *l > 0) else {
        return Ok(());
    };
    if mem.check_before_update() != Some(true) {
        return Ok(());
    }
    let (dir, file) = if m.version == Version::V2 {
        (m.dirs.first().map(|d| d.path.as_path()), "memory.current")
    } else {
        (m.v1_dir("memory"), "memory.usage_in_bytes")
    };
    let Some(dir) = dir.filter(|d| d.exists()) else {
        return Ok(());
    };
    let usage: i64 = read(dir, file)?.parse().unwrap_or(0);
    if usage > limit {
        return Err(unsupported(
            "memory.limit",
            format!(
                "{limit} is below the current usage of {usage} bytes and checkBeforeUpdate is set"
            ),
        ));
    }
    Ok(())
}

pub(crate) fn apply(dir: &Dir, res: &LinuxResources) -> Result<()> {
    if dir.v2 {
        return apply_v2(&dir.path, res);
    }
    let p = dir.path.as_path();
    if dir.has("memory") {
        if let Some(mem) = res.memory() {
            memory_v1(p, mem)?;
        }
    }
    if let Some(cpu) = res.cpu() {
        if dir.has("cpu") {
            cpu_v1(p, cpu)?;
        }
        if dir.has("cpuset") {
            cpuset(p, cpu)?;
        }
    }
    if dir.has("pids") {
        pids(p, res)?;
    }
    if dir.has("blkio") {
        if let Some(b) = res.block_io() {
            blkio_v1(p, b)?;
        }
    }
    if dir.has("hugetlb") {
        hugetlb(p, res, "limit_in_bytes")?;
    }
    if let Some(n) = res.network() {
        if dir.has("net_cls") {
            if let Some(id) = n.class_id() {
                write(p, "net_cls.classid", &id.to_string())?;
            }
        }
        if dir.has("net_prio") {
            for prio in n.priorities().iter().flatten() {
                write(
                    p,
                    "net_prio.ifpriomap",
                    &format!("{} {}", prio.name(), prio.priority()),
                )?;
            }
        }
    }
    if dir.has("rdma") {
        rdma(p, res)?;
    }
    if dir.has("devices") {
        if let Some(rules) = res.devices() {
            // The kernel takes each write() as one rule: the two files are
            // opened once (Docker's defaults are twenty rules), and the
            // rules go in their order.
            use std::io::Write;
            let mut files: [Option<std::fs::File>; 2] = [None, None];
            for r in rules {
                let (slot, file) = if r.allow() {
                    (&mut files[0], "devices.allow")
                } else {
                    (&mut files[1], "devices.deny")
                };
                let path = p.join(file);
                let f = match slot {
                    Some(f) => f,
                    None => slot.insert(
                        std::fs::OpenOptions::new()
                            .write(true)
                            .open(&path)
                            .map_err(io_err("open", &path))?,
                    ),
                };
                f.write_all(device_rule(r).as_bytes())
                    .map_err(io_err("write", &path))?;
            }
        }
    }
    Ok(())
}

fn memory_v1(p: &Path, mem: &LinuxMemory) -> Result<()> {
    if let Some(r) = mem.reservation() {
        write(p, "memory.soft_limit_in_bytes", &r.to_string())?;
    }
    let limit = mem.limit();
    // An unlimited memory without a word on swap lifts the swap limit
    // too, as runc does: memsw may never be below the memory limit, so
    // the old memsw would refuse the new limit (EINVAL).
    let swap = mem.swap().or_else(|| {
        (limit == Some(-1) && p.join("memory.memsw.limit_in_bytes").exists()).then_some(-1)
    });
    if let Some(swap) = swap {
        if !p.join("memory.memsw.limit_in_bytes").exists() {
            return Err(unsupported(
                "memory.swap",
                "the kernel has no swap accounting (memory.memsw.limit_in_bytes is missing)",
            ));
        }
        // memsw must never be below the memory limit: order the writes.
        let cur: i64 = read(p, "memory.memsw.limit_in_bytes")?
            .parse()
            .unwrap_or(-1);
        let grow = limit.is_some_and(|l| l == -1 || (cur != -1 && l > cur));
        if grow {
            write(p, "memory.memsw.limit_in_bytes", &swap.to_string())?;
            if let Some(l) = limit {
                write(p, "memory.limit_in_bytes", &l.to_string())?;
            }
        } else {
            if let Some(l) = limit {
                write(p, "memory.limit_in_bytes", &l.to_string())?;
            }
            write(p, "memory.memsw.limit_in_bytes", &swap.to_string())?;
        }
    } else if let Some(l) = limit {
        write(p, "memory.limit_in_bytes", &l.to_string())?;
    }
    if let Some(s) = mem.swappiness() {
        write(p, "memory.swappiness", &s.to_string())?;
    }
    if let Some(off) = mem.disable_oom_killer() {
        write(p, "memory.oom_control", if off { "1" } else { "0" })?;
    }
    Ok(())
}

fn cpu_v1(p: &Path, cpu: &LinuxCpu) -> Result<()> {
    if let Some(s) = cpu.shares().filter(|s| *s != 0) {
        write(p, "cpu.shares", &s.to_string())?;
    }
    let quota = cpu.quota().filter(|q| *q != 0);
    let mut quota_done = false;
    if let Some(period) = cpu.period().filter(|p| *p != 0) {
        if let Err(e) = write(p, "cpu.cfs_period_us", &period.to_string()) {
            // The kernel checks the period against the quota in place (a
            // shorter period may make the old quota exceed the parent's
            // bandwidth): with a new quota, write it first and try again,
            // as runc does.
            let Some(q) = quota else { return Err(e) };
            write(p, "cpu.cfs_quota_us", &q.to_string())?;
            quota_done = true;
            write(p, "cpu.cfs_period_us", &period.to_string())?;
        }
    }
    if let Some(q) = quota.filter(|_| !quota_done) {
        write(p, "cpu.cfs_quota_us", &q.to_string())?;
    }
    if let Some(b) = cpu.burst() {
        write_feature(
            p,
            "cpu.cfs_burst_us",
            &b.to_string(),
            "cpu.burst",
            "CPU burst needs Linux 5.14 or later",
        )?;
    }
    // The period first: the kernel checks runtime against it.
    if let Some(rp) = cpu.realtime_period().filter(|p| *p != 0) {
        write_feature(
            p,
            "cpu.rt_period_us",
            &rp.to_string(),
            "cpu.realtimePeriod",
            "the kernel was built without CONFIG_RT_GROUP_SCHED",
        )?;
    }
    if let Some(rr) = cpu.realtime_runtime() {
        write_feature(
            p,
            "cpu.rt_runtime_us",
            &rr.to_string(),
            "cpu.realtimeRuntime",
            "the kernel was built without CONFIG_RT_GROUP_SCHED",
        )?;
    }
    if let Some(i) = cpu.idle() {
        write_feature(
            p,
            "cpu.idle",
            &i.to_string(),
            "cpu.idle",
            "SCHED_IDLE cgroups need Linux 5.15 or later",
        )?;
    }
    Ok(())
}

fn cpuset(p: &Path, cpu: &LinuxCpu) -> Result<()> {
    if let Some(c) = cpu.cpus().as_deref().filter(|c| !c.is_empty()) {
        write(p, "cpuset.cpus", c)?;
    }
    if let Some(m) = cpu.mems().as_deref().filter(|m| !m.is_empty()) {
        write(p, "cpuset.mems", m)?;
    }
    Ok(())
}

/// pids.limit: positive is the limit, negative is none ("max"), 0 leaves
/// the current value (as runc reads it).
fn pids(p: &Path, res: &LinuxResources) -> Result<()> {
    if let Some(pids) = res.pids().as_ref().filter(|p| p.limit() != 0) {
        let v = if pids.limit() > 0 {
            pids.limit().to_string()
        } else {
            "max".into()
        };
        write(p, "pids.max", &v)?;
    }
    Ok(())
}

fn blkio_v1(p: &Path, b: &LinuxBlockIo) -> Result<()> {
    // CFQ had blkio.weight; BFQ names its files blkio.bfq.*.
    let pick = |plain: &'static str, bfq: &'static str| {
        if p.join(plain).exists() || !p.join(bfq).exists() {
            plain
        } else {
            bfq
        }
    };
    const NO_WEIGHT: &str =
        "no I/O scheduler with weights is in use (choose bfq for the disk: /sys/block/<disk>/queue/scheduler)";
    const NO_LEAF: &str = "leaf weights were a feature of the CFQ scheduler, gone since Linux 5.0";
    if let Some(w) = b.weight().filter(|w| *w != 0) {
        let file = pick("blkio.weight", "blkio.bfq.weight");
        write_feature(p, file, &w.to_string(), "blockIO.weight", NO_WEIGHT)?;
    }
    if let Some(w) = b.leaf_weight().filter(|w| *w != 0) {
        write_feature(
            p,
            "blkio.leaf_weight",
            &w.to_string(),
            "blockIO.leafWeight",
            NO_LEAF,
        )?;
    }
    for d in b.weight_device().iter().flatten() {
        if let Some(w) = d.weight().filter(|w| *w != 0) {
            let file = pick("blkio.weight_device", "blkio.bfq.weight_device");
            let v = format!("{}:{} {w}", d.major(), d.minor());
            write_feature(p, file, &v, "blockIO.weightDevice", NO_WEIGHT)?;
        }
        if let Some(w) = d.leaf_weight().filter(|w| *w != 0) {
            let v = format!("{}:{} {w}", d.major(), d.minor());
            write_feature(
                p,
                "blkio.leaf_weight_device",
                &v,
                "blockIO.weightDevice",
                NO_LEAF,
            )?;
        }
    }
    for (list, file) in [
        (
            b.throttle_read_bps_device(),
            "blkio.throttle.read_bps_device",
        ),
        (
            b.throttle_write_bps_device(),
            "blkio.throttle.write_bps_device",
        ),
        (
            b.throttle_read_iops_device(),
            "blkio.throttle.read_iops_device",
        ),
        (
            b.throttle_write_iops_device(),
            "blkio.throttle.write_iops_device",
        ),
    ] {
        for d in list.iter().flatten() {
            let v = format!("{}:{} {}", d.major(), d.minor(), d.rate());
            write_feature(
                p,
                file,
                &v,
                "blockIO",
                "the kernel was built without block I/O throttling",
            )?;
        }
    }
    Ok(())
}

/// v1 `limit_in_bytes` or v2 `max`, and the reservation limit beside it
/// when the kernel has one (5.7+): OCI's limit covers both.
fn hugetlb(p: &Path, res: &LinuxResources, suffix: &str) -> Result<()> {
    for h in res.hugepage_limits().iter().flatten() {
        let size = h.page_size();
        let value = match (h.limit(), suffix) {
            (l, "max") if l < 0 => "max".to_string(),
            (l, _) => l.to_string(),
        };
        let file = format!("hugetlb.{size}.{suffix}");
        if !p.join(&file).exists() {
            let have = crate::stats::hugepage_sizes(p, "hugetlb.", &format!(".{suffix}"));
            return Err(unsupported(
                "hugepageLimits.pageSize",
                format!(
                    "the host has no {size} huge pages (it has: {})",
                    if have.is_empty() {
                        "none".to_string()
                    } else {
                        have.join(", ")
                    }
                ),
            ));
        }
        let rsvd = format!("hugetlb.{size}.rsvd.{suffix}");
        if p.join(&rsvd).exists() {
            write(p, &rsvd, &value)?;
        }
        write(p, &file, &value)?;
    }
    Ok(())
}

fn rdma(p: &Path, res: &LinuxResources) -> Result<()> {
    let mut devices: Vec<_> = res.rdma().iter().flatten().collect();
    devices.sort_by(|a, b| a.0.cmp(b.0));
    for (dev, r) in devices {
        let mut v = dev.clone();
        if let Some(h) = r.hca_handles() {
            v.push_str(&format!(" hca_handle={h}"));
        }
        if let Some(o) = r.hca_objects() {
            v.push_str(&format!(" hca_object={o}"));
        }
        if v.len() > dev.len() {
            write(p, "rdma.max", &v)?;
        }
    }
    Ok(())
}

/// A v1 devices cgroup rule: `type major:minor access`.
pub(crate) fn device_rule(r: &LinuxDeviceCgroup) -> String {
    let t = match r.typ() {
        Some(LinuxDeviceType::C) | Some(LinuxDeviceType::U) => 'c',
        Some(LinuxDeviceType::B) => 'b',
        _ => 'a',
    };
    let num = |n: Option<i64>| {
        n.filter(|n| *n >= 0)
            .map_or("*".to_string(), |n| n.to_string())
    };
    let access = r
        .access()
        .as_deref()
        .filter(|a| !a.is_empty())
        .unwrap_or("rwm");
    format!("{t} {}:{} {access}", num(r.major()), num(r.minor()))
}

/// The OCI cpu shares (2..262144) to a v2 cpu.weight (1..10000), as runc
/// and crun convert it.
pub(crate) fn shares_to_weight(shares: u64) -> u64 {
    if shares == 0 {
        return 0;
    }
    1 + ((shares.clamp(2, 262_144) - 2) * 9999) / 262_142
}

/// A v2 limit: negative is no limit.
fn v2_max(v: i64) -> String {
    if v < 0 {
        "max".to_string()
    } else {
        v.to_string()
    }
}

/// The OCI blkio weight (10..1000) to a v2 io.weight (1..10000), as runc
/// and crun convert it.
pub(crate) fn blkio_to_io_weight(w: u16) -> u64 {
    if w == 0 {
        return 0;
    }
    1 + (u64::from(w.clamp(10, 1000)) - 10) * 9999 / 990
}

fn apply_v2(p: &Path, res: &LinuxResources) -> Result<()> {
    if let Some(mem) = res.memory() {
        memory_v2(p, mem)?;
    }
    if let Some(cpu) = res.cpu() {
        cpu_v2(p, cpu)?;
        cpuset(p, cpu)?;
    }
    pids(p, res)?;
    if let Some(b) = res.block_io() {
        io_v2(p, b)?;
    }
    hugetlb(p, res, "max")?;
    rdma(p, res)?;
    // No rules means no restriction, as on v1 where a new cgroup starts
    // with its parent's (allow-all) list.
    if let Some(d) = res.devices().as_ref().filter(|d| !d.is_empty()) {
        set_device_program(p, d)?;
    }
    // Last, so that a key/value overrides what the fields above wrote.
    let mut unified: Vec<_> = res.unified().iter().flatten().collect();
    unified.sort();
    for (k, v) in unified {
        write_feature(
            p,
            k,
            v,
            "unified",
            "the kernel has no such cgroup file, or its controller is not enabled for this cgroup",
        )?;
    }
    Ok(())
}

fn memory_v2(p: &Path, mem: &LinuxMemory) -> Result<()> {
    if let Some(r) = mem.reservation() {
        write(p, "memory.low", &v2_max(r))?;
    }
    if let Some(s) = mem.swap() {
        // OCI swap is memory+swap; v2 counts swap alone.
        let limit = match mem.limit() {
            Some(l) => l,
            None => match read(p, "memory.max")?.as_str() {
                "max" => -1,
                cur => cur.parse().unwrap_or(-1),
            },
        };
        let v = if s < 0 {
            "max".to_string()
        } else if limit < 0 {
            return Err(unsupported(
                "memory.swap",
                "on cgroup v2 a memory+swap limit needs a memory limit too",
            ));
        } else {
            (s - limit).max(0).to_string()
        };
        write_feature(
            p,
            "memory.swap.max",
            &v,
            "memory.swap",
            "the kernel has no swap accounting",
        )?;
    }
    if let Some(l) = mem.limit() {
        write(p, "memory.max", &v2_max(l))?;
    }
    Ok(())
}

fn cpu_v2(p: &Path, cpu: &LinuxCpu) -> Result<()> {
    if let Some(s) = cpu.shares().filter(|s| *s != 0) {
        write(p, "cpu.weight", &shares_to_weight(s).to_string())?;
    }
    if cpu.quota().is_some() || cpu.period().is_some() {
        // One file holds both; keep the half the request leaves out.
        let current = read(p, "cpu.max")?;
        let mut cur = current.split_whitespace();
        let cur_quota = cur.next().unwrap_or("max").to_string();
        let cur_period = cur.next().unwrap_or("100000").to_string();
        let quota = match cpu.quota() {
            Some(q) if q > 0 => q.to_string(),
            Some(_) => "max".to_string(),
            None => cur_quota,
        };
        let period = match cpu.period().filter(|p| *p > 0) {
            Some(p) => p.to_string(),
            None => cur_period,
        };
        write(p, "cpu.max", &format!("{quota} {period}"))?;
    }
    if let Some(b) = cpu.burst() {
        write_feature(
            p,
            "cpu.max.burst",
            &b.to_string(),
            "cpu.burst",
            "CPU burst needs Linux 5.14 or later",
        )?;
    }
    if let Some(i) = cpu.idle() {
        write_feature(
            p,
            "cpu.idle",
            &i.to_string(),
            "cpu.idle",
            "SCHED_IDLE cgroups need Linux 5.15 or later",
        )?;
    }
    Ok(())
}

fn io_v2(p: &Path, b: &LinuxBlockIo) -> Result<()> {
    // BFQ takes the OCI weight as is; otherwise io.weight (io.cost), scaled.
    let bfq = p.join("io.bfq.weight").exists();
    let (file, scale): (&str, fn(u16) -> u64) = if bfq {
        ("io.bfq.weight", u64::from)
    } else {
        ("io.weight", blkio_to_io_weight)
    };
    const NO_WEIGHT: &str =
        "neither io.bfq.weight (the bfq scheduler) nor io.weight (io.cost) is available";
    if let Some(w) = b.weight().filter(|w| *w != 0) {
        write_feature(
            p,
            file,
            &format!("default {}", scale(w)),
            "blockIO.weight",
            NO_WEIGHT,
        )?;
    }
    for d in b.weight_device().iter().flatten() {
        if let Some(w) = d.weight().filter(|w| *w != 0) {
            let v = format!("{}:{} {}", d.major(), d.minor(), scale(w));
            write_feature(p, file, &v, "blockIO.weightDevice", NO_WEIGHT)?;
        }
    }
    for (list, key) in [
        (b.throttle_read_bps_device(), "rbps"),
        (b.throttle_write_bps_device(), "wbps"),
        (b.throttle_read_iops_device(), "riops"),
        (b.throttle_write_iops_device(), "wiops"),
    ] {
        for d in list.iter().flatten() {
            // v1 reads a rate of 0 as "no limit"; in io.max 0 would stop
            // all I/O, so it is written as max.
            let rate = match d.rate() {
                0 => "max".to_string(),
                r => r.to_string(),
            };
            let v = format!("{}:{} {key}={rate}", d.major(), d.minor());
            write(p, "io.max", &v)?;
        }
    }
    Ok(())
}

/// v2 devices: attach the compiled rules, then detach whatever program was
/// attached before (an update), so that there is never a moment without a
/// filter.
pub fn set_device_program(dir: &Path, list: &[LinuxDeviceCgroup]) -> Result<()> {
    use berth_sys::bpf;
    use std::os::fd::AsFd;
    let rules = crate::devices_bpf::rules(list).map_err(|msg| Error::Unsupported {
        field: "devices",
        msg,
    })?;
    let insns = crate::devices_bpf::compile(&rules);
    let prog = bpf::prog_load(bpf::PROG_TYPE_CGROUP_DEVICE, &insns, "berth_devices")
        .map_err(io_err("load the device eBPF program for", dir))?;
    let cg = berth_sys::fs::open(dir, libc::O_RDONLY | libc::O_DIRECTORY, 0)
        .map_err(io_err("open", dir))?;
    let before = bpf::prog_query(cg.as_fd(), bpf::CGROUP_DEVICE)
        .map_err(io_err("list the device programs of", dir))?;
    bpf::prog_attach(
        cg.as_fd(),
        prog.as_fd(),
        bpf::CGROUP_DEVICE,
        bpf::F_ALLOW_MULTI,
    )
    .map_err(io_err("attach the device eBPF program to", dir))?;
    for id in before {
        let old = bpf::prog_fd_by_id(id).map_err(io_err("open an old device program of", dir))?;
        bpf::prog_detach(cg.as_fd(), old.as_fd(), bpf::CGROUP_DEVICE)
            .map_err(io_err("detach an old device program from", dir))?;
    }
    Ok(())
}

/// v1 cpuset: a new cgroup starts with empty cpus and mems and refuses
/// processes until they are set; inherit them from the nearest ancestor
/// that has them, filling the empty ones between (a cgroup someone else
/// created, such as a delegated subtree's top, may still be empty).
pub(crate) fn v1_cpuset_inherit(dir: &Path) -> Result<()> {
    fn ensure(dir: &Path, f: &str, depth: usize) -> Result<String> {
        let v = read(dir, f)?;
        match dir.parent() {
            Some(parent) if v.is_empty() && depth < 64 => {
                let inherited = ensure(parent, f, depth + 1)?;
                write(dir, f, &inherited)?;
                Ok(inherited)
            }
            _ => Ok(v),
        }
    }
    for f in ["cpuset.cpus", "cpuset.mems"] {
        ensure(dir, f, 0)?;
    }
    Ok(())
}

/// v2: lets the children of `dir` use every controller `dir` has.
pub(crate) fn v2_enable_controllers(dir: &Path) -> Result<()> {
    let available = read(dir, "cgroup.controllers")?;
    let enabled = read(dir, "cgroup.subtree_control")?;
    let want: Vec<String> = available
        .split_whitespace()
        .filter(|c| !enabled.split_whitespace().any(|e| e == *c))
        .map(|c| format!("+{c}"))
        .collect();
    if want.is_empty() {
        return Ok(());
    }
    write(dir, "cgroup.subtree_control", &want.join(" "))
}

/// v2: enables every controller it can in each ancestor of `dir` (within
/// the cgroup2 mount: the directories that have `cgroup.controllers`), from
/// the top down, so that `dir` gets them. Best effort, as runc's
/// `CreateCgroupPath`: an ancestor that is not ours to change (a delegated
/// subtree's parents) or that holds processes refuses, and a controller
/// that does not arrive is reported by [`validate`] when a limit needs it.
pub(crate) fn v2_enable_ancestors(dir: &Path) {
    let mut up: Vec<&Path> = dir
        .ancestors()
        .skip(1)
        .take_while(|a| a.join("cgroup.controllers").exists())
        .collect();
    up.reverse();
    for a in up {
        if v2_enable_controllers(a).is_err() {
            // One at a time: a controller that cannot be enabled (one a
            // process of this cgroup keeps busy, a threaded one) must not
            // keep the others out.
            let Ok(available) = read(a, "cgroup.controllers") else {
                continue;
            };
            for c in available.split_whitespace() {
                let _ = write(a, "cgroup.subtree_control", &format!("+{c}"));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use oci_spec::runtime::LinuxDeviceCgroupBuilder;

    #[test]
    fn weight_conversion_matches_runc() {
        assert_eq!(shares_to_weight(2), 1);
        assert_eq!(shares_to_weight(1024), 39);
        assert_eq!(shares_to_weight(262_144), 10_000);
        assert_eq!(shares_to_weight(0), 0);
    }

    #[test]
    fn device_rules() {
        let all = LinuxDeviceCgroupBuilder::default()
            .allow(false)
            .access("rwm")
            .build()
            .unwrap();
        assert_eq!(device_rule(&all), "a *:* rwm");
        let null = LinuxDeviceCgroupBuilder::default()
            .allow(true)
            .typ(LinuxDeviceType::C)
            .major(1)
            .minor(3)
            .access("rw")
            .build()
            .unwrap();
        assert_eq!(device_rule(&null), "c 1:3 rw");
    }

    // What a fake cgroup tree holds after a request: the tests below make
    // the files a kernel would have (empty, or with its defaults) in a
    // temporary directory and read back what was written.
    struct Fake {
        _tmp: tempfile::TempDir,
        m: Manager,
    }

    impl Fake {
        fn v1(controllers: &[&[&str]], files: &[&str]) -> Fake {
            let tmp = tempfile::tempdir().unwrap();
            let mut dirs = Vec::new();
            for c in controllers {
                let path = tmp.path().join(c.join(",")).join("ctr");
                std::fs::create_dir_all(&path).unwrap();
                dirs.push(Dir {
                    path,
                    controllers: c.iter().map(|s| s.to_string()).collect(),
                    v2: false,
                });
            }
            let f = Fake {
                _tmp: tmp,
                m: Manager {
                    version: Version::V1,
                    dirs,
                    created: Vec::new(),
                },
            };
            for file in files {
                let ctrl = file.split('.').next().unwrap();
                let d = f.m.dirs.iter().find(|d| d.has(ctrl)).unwrap();
                std::fs::write(d.path.join(file), "").unwrap();
            }
            f
        }

        fn v2(controllers: &str, files: &[(&str, &str)]) -> Fake {
            let tmp = tempfile::tempdir().unwrap();
            let path = tmp.path().join("ctr");
            std::fs::create_dir(&path).unwrap();
            std::fs::write(path.join("cgroup.controllers"), controllers).unwrap();
            for (file, v) in files {
                std::fs::write(path.join(file), v).unwrap();
            }
            Fake {
                _tmp: tmp,
                m: Manager {
                    version: Version::V2,
                    dirs: vec![Dir {
                        path,
                        controllers: Vec::new(),
                        v2: true,
                    }],
                    created: Vec::new(),
                },
            }
        }

        fn apply(&self, res: serde_json::Value) -> Result<()> {
            self.m.apply(&serde_json::from_value(res).unwrap())
        }

        fn read(&self, file: &str) -> String {
            let ctrl = file.split('.').next().unwrap();
            let d = self.m.dirs.iter().find(|d| d.v2 || d.has(ctrl)).unwrap();
            std::fs::read_to_string(d.path.join(file)).unwrap()
        }

        fn refused(&self, res: serde_json::Value) -> String {
            match self.apply(res.clone()) {
                Err(e @ Error::Unsupported { .. }) => e.to_string(),
                other => panic!("{res} not refused: {other:?}"),
            }
        }
    }

    const V1_ALL: &[&[&str]] = &[
        &["memory"],
        &["cpu", "cpuacct"],
        &["pids"],
        &["blkio"],
        &["hugetlb"],
        &["net_cls", "net_prio"],
        &["rdma"],
    ];

    #[test]
    fn v1_cpuset_fills_empty_ancestors() {
        // root (has cpus/mems) / delegated (empty, made by someone else) / ctr
        let tmp = tempfile::tempdir().unwrap();
        let ctr = tmp.path().join("delegated/ctr");
        std::fs::create_dir_all(&ctr).unwrap();
        for d in [tmp.path(), &tmp.path().join("delegated"), &ctr] {
            std::fs::write(d.join("cpuset.cpus"), "").unwrap();
            std::fs::write(d.join("cpuset.mems"), "").unwrap();
        }
        std::fs::write(tmp.path().join("cpuset.cpus"), "0-1\n").unwrap();
        std::fs::write(tmp.path().join("cpuset.mems"), "0\n").unwrap();
        v1_cpuset_inherit(&ctr).unwrap();
        for d in [tmp.path().join("delegated"), ctr] {
            assert_eq!(read(&d, "cpuset.cpus").unwrap(), "0-1");
            assert_eq!(read(&d, "cpuset.mems").unwrap(), "0");
        }
    }

    #[test]
    fn v1_writes_every_resource() {
        let f = Fake::v1(
            V1_ALL,
            &[
                "memory.limit_in_bytes",
                "memory.soft_limit_in_bytes",
                "memory.swappiness",
                "memory.oom_control",
                "cpu.shares",
                "cpu.cfs_quota_us",
                "cpu.cfs_period_us",
                "cpu.cfs_burst_us",
                "cpu.idle",
                "cpu.rt_period_us",
                "cpu.rt_runtime_us",
                "pids.max",
                "blkio.bfq.weight",
                "blkio.bfq.weight_device",
                "blkio.throttle.read_bps_device",
                "blkio.throttle.write_iops_device",
                "hugetlb.2MB.limit_in_bytes",
                "hugetlb.2MB.rsvd.limit_in_bytes",
                "net_cls.classid",
                "net_prio.ifpriomap",
                "rdma.max",
            ],
        );
        f.apply(serde_json::json!({
            "memory": {"limit": 1048576, "reservation": 524288, "swappiness": 10,
                       "disableOOMKiller": true, "kernel": 1, "kernelTCP": 1},
            "cpu": {"shares": 100, "quota": 20000, "period": 50000, "burst": 10000,
                    "idle": 1, "realtimePeriod": 1000000, "realtimeRuntime": 950},
            "pids": {"limit": 7},
            "blockIO": {"weight": 300, "weightDevice": [{"major": 8, "minor": 0, "weight": 200}],
                        "throttleReadBpsDevice": [{"major": 8, "minor": 0, "rate": 1048576}],
                        "throttleWriteIOPSDevice": [{"major": 8, "minor": 16, "rate": 100}]},
            "hugepageLimits": [{"pageSize": "2MB", "limit": 4194304}],
            "network": {"classID": 1048577, "priorities": [{"name": "eth0", "priority": 5}]},
            "rdma": {"mlx5_0": {"hcaHandles": 3, "hcaObjects": 10000}}
        }))
        .unwrap();
        for (file, want) in [
            ("memory.limit_in_bytes", "1048576"),
            ("memory.soft_limit_in_bytes", "524288"),
            ("memory.swappiness", "10"),
            ("memory.oom_control", "1"),
            ("cpu.shares", "100"),
            ("cpu.cfs_quota_us", "20000"),
            ("cpu.cfs_period_us", "50000"),
            ("cpu.cfs_burst_us", "10000"),
            ("cpu.idle", "1"),
            ("cpu.rt_period_us", "1000000"),
            ("cpu.rt_runtime_us", "950"),
            ("pids.max", "7"),
            // Without blkio.weight (CFQ), the BFQ files take the weights.
            ("blkio.bfq.weight", "300"),
            ("blkio.bfq.weight_device", "8:0 200"),
            ("blkio.throttle.read_bps_device", "8:0 1048576"),
            ("blkio.throttle.write_iops_device", "8:16 100"),
            ("hugetlb.2MB.limit_in_bytes", "4194304"),
            ("hugetlb.2MB.rsvd.limit_in_bytes", "4194304"),
            ("net_cls.classid", "1048577"),
            ("net_prio.ifpriomap", "eth0 5"),
            ("rdma.max", "mlx5_0 hca_handle=3 hca_object=10000"),
        ] {
            assert_eq!(f.read(file), want, "{file}");
        }
    }

    #[test]
    fn v1_refuses_what_the_host_lacks() {
        // This machine's v1 set: no hugetlb, net_cls, net_prio or rdma.
        let f = Fake::v1(
            &[&["memory"], &["cpu", "cpuacct"], &["pids"], &["blkio"]],
            &["blkio.throttle.read_bps_device", "cpu.shares"],
        );
        for (res, want) in [
            (
                serde_json::json!({"hugepageLimits": [{"pageSize": "2MB", "limit": 1}]}),
                "linux.resources.hugepageLimits: the host has no hugetlb cgroup controller mounted",
            ),
            (
                serde_json::json!({"network": {"classID": 1}}),
                "linux.resources.network.classID: the host has no net_cls cgroup controller mounted",
            ),
            (
                serde_json::json!({"rdma": {"mlx5_0": {"hcaHandles": 1}}}),
                "linux.resources.rdma: the host has no rdma cgroup controller mounted",
            ),
            (
                serde_json::json!({"unified": {"memory.high": "1"}}),
                "need a cgroup v2 host",
            ),
            (
                serde_json::json!({"blockIO": {"weight": 100}}),
                "no I/O scheduler with weights",
            ),
            (
                serde_json::json!({"blockIO": {"leafWeight": 100}}),
                "CFQ",
            ),
            (
                serde_json::json!({"blockIO": {"weight": 5}}),
                "between 10 and 1000",
            ),
            (
                serde_json::json!({"cpu": {"burst": 1}}),
                "cpu.cfs_burst_us does not exist: CPU burst needs Linux 5.14",
            ),
            (
                serde_json::json!({"cpu": {"idle": 2}}),
                "linux.resources.cpu.idle: 2 is not 0 or 1",
            ),
            (
                serde_json::json!({"memory": {"swappiness": 101}}),
                "101 is out of range",
            ),
            (
                serde_json::json!({"memory": {"swap": 1}}),
                "no swap accounting",
            ),
        ] {
            let e = f.refused(res.clone());
            assert!(e.contains(want), "{res}: {e}");
        }
        // Refused before anything was written.
        assert_eq!(f.read("cpu.shares"), "");
    }

    #[test]
    fn v2_writes_every_resource() {
        let f = Fake::v2(
            "cpuset cpu io memory hugetlb pids rdma",
            &[
                ("memory.max", "max"),
                ("memory.low", "0"),
                ("memory.swap.max", "max"),
                ("memory.high", "max"),
                ("cpu.weight", "100"),
                ("cpu.max", "max 100000"),
                ("cpu.max.burst", "0"),
                ("cpu.idle", "0"),
                ("cpuset.cpus", ""),
                ("pids.max", "max"),
                ("io.weight", "default 100"),
                ("io.max", ""),
                ("hugetlb.2MB.max", "max"),
                ("hugetlb.2MB.rsvd.max", "max"),
                ("hugetlb.1GB.max", "max"),
                ("rdma.max", ""),
            ],
        );
        f.apply(serde_json::json!({
            "memory": {"limit": 1048576, "reservation": 524288, "swap": 3145728},
            "cpu": {"shares": 1024, "quota": 20000, "burst": 5000, "idle": 0, "cpus": "0"},
            "pids": {"limit": -1},
            "blockIO": {"weight": 1000,
                        "throttleWriteBpsDevice": [{"major": 1, "minor": 0, "rate": 0}]},
            "hugepageLimits": [{"pageSize": "2MB", "limit": -1}],
            "rdma": {"mlx5_0": {"hcaObjects": 10}},
            "unified": {"memory.high": "2097152", "cpu.weight": "77"}
        }))
        .unwrap();
        for (file, want) in [
            ("memory.max", "1048576"),
            ("memory.low", "524288"),
            // OCI swap is memory+swap: 3 MiB - 1 MiB of swap alone.
            ("memory.swap.max", "2097152"),
            ("memory.high", "2097152"),
            // unified wins over shares 1024 -> 39.
            ("cpu.weight", "77"),
            // The period the request left out stays.
            ("cpu.max", "20000 100000"),
            ("cpu.max.burst", "5000"),
            ("cpu.idle", "0"),
            ("cpuset.cpus", "0"),
            ("pids.max", "max"),
            ("io.weight", "default 10000"),
            // A v1 rate of 0 is no limit; 0 in io.max would stop all I/O.
            ("io.max", "1:0 wbps=max"),
            ("hugetlb.2MB.max", "max"),
            ("hugetlb.2MB.rsvd.max", "max"),
            ("hugetlb.1GB.max", "max"),
            ("rdma.max", "mlx5_0 hca_object=10"),
        ] {
            assert_eq!(f.read(file), want, "{file}");
        }
        // Only the period: the quota stays.
        f.apply(serde_json::json!({"cpu": {"period": 50000}}))
            .unwrap();
        assert_eq!(f.read("cpu.max"), "20000 50000");
    }

    #[test]
    fn v2_refuses_what_it_cannot_honour() {
        let f = Fake::v2(
            "cpu memory pids",
            &[
                ("memory.max", "max"),
                ("memory.current", "4096"),
                ("cpu.max", "max 100000"),
            ],
        );
        for (res, want) in [
            (
                serde_json::json!({"network": {"classID": 1}}),
                "cgroup v2 has no net_cls controller",
            ),
            (
                serde_json::json!({"network": {"priorities": [{"name": "eth0", "priority": 1}]}}),
                "cgroup v2 has no net_prio controller",
            ),
            (
                serde_json::json!({"blockIO": {"weight": 100}}),
                "linux.resources.blockIO: the io controller is not available to this cgroup (it has: cpu memory pids)",
            ),
            (
                serde_json::json!({"memory": {"swappiness": 10}}),
                "no per-cgroup swappiness",
            ),
            (
                serde_json::json!({"memory": {"disableOOMKiller": true}}),
                "no way to disable the OOM killer",
            ),
            (
                serde_json::json!({"cpu": {"realtimeRuntime": 1}}),
                "no real-time",
            ),
            (
                serde_json::json!({"memory": {"swap": 1000}}),
                "needs a memory limit too",
            ),
            (
                serde_json::json!({"hugepageLimits": [{"pageSize": "2M", "limit": 1}]}),
                "\"2M\" is not a size like 2MB",
            ),
            (
                serde_json::json!({"unified": {"../memory.max": "1"}}),
                "is not a cgroup file name",
            ),
            (
                serde_json::json!({"unified": {"cgroup.procs": "1"}}),
                "the runtime's to manage",
            ),
            (
                serde_json::json!({"unified": {"memory.nonexistent": "1"}}),
                "memory.nonexistent does not exist",
            ),
            (
                serde_json::json!({"memory": {"limit": 1024, "checkBeforeUpdate": true}}),
                "1024 is below the current usage of 4096 bytes",
            ),
        ] {
            let e = f.refused(res.clone());
            assert!(e.contains(want), "{res}: {e}");
        }
        let f = Fake::v2("hugetlb io", &[("hugetlb.2MB.max", "max"), ("io.max", "")]);
        let e = f.refused(serde_json::json!({"hugepageLimits": [{"pageSize": "1GB", "limit": 1}]}));
        assert!(e.contains("no 1GB huge pages (it has: 2MB)"), "{e}");
        let e = f.refused(serde_json::json!({"blockIO": {"leafWeight": 100}}));
        assert!(e.contains("no leaf weights"), "{e}");
        let e = f.refused(serde_json::json!({"blockIO": {"weight": 100}}));
        assert!(e.contains("neither io.bfq.weight"), "{e}");
    }

    #[test]
    fn blkio_weight_conversion_matches_runc() {
        assert_eq!(blkio_to_io_weight(10), 1);
        assert_eq!(blkio_to_io_weight(500), 4950);
        assert_eq!(blkio_to_io_weight(1000), 10000);
        assert_eq!(blkio_to_io_weight(0), 0);
    }

    #[test]
    fn hugepage_sizes_are_checked() {
        for ok in ["64KB", "2MB", "1GB"] {
            assert!(hugepage_size_ok(ok), "{ok}");
        }
        for bad in ["", "MB", "2M", "2mb", "2 MB", "../2MB", "2MB/x"] {
            assert!(!hugepage_size_ok(bad), "{bad}");
        }
    }
}
