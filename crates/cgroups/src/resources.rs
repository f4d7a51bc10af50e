//! Writing OCI LinuxResources to cgroup files, v1 and v2.

use crate::{io_err, Dir, Error, Manager, Result, Version};
use oci_spec::runtime::{LinuxDeviceCgroup, LinuxDeviceType, LinuxResources};
use std::path::Path;

fn write(dir: &Path, file: &str, value: &str) -> Result<()> {
    let p = dir.join(file);
    std::fs::write(&p, value).map_err(io_err("write", &p))
}

fn read(dir: &Path, file: &str) -> Result<String> {
    let p = dir.join(file);
    std::fs::read_to_string(&p)
        .map(|s| s.trim().to_string())
        .map_err(io_err("read", &p))
}

/// Refuses what this manager cannot honour, before anything is written.
pub(crate) fn validate(m: &Manager, res: &LinuxResources) -> Result<()> {
    let unsupported = |field: &'static str, msg: &str| {
        Err(Error::Unsupported {
            field,
            msg: msg.into(),
        })
    };
    if res
        .block_io()
        .as_ref()
        .is_some_and(|b| b != &Default::default())
    {
        return unsupported("blockIO", "not supported by this version of berth-runtime");
    }
    if res
        .hugepage_limits()
        .as_ref()
        .is_some_and(|h| !h.is_empty())
    {
        return unsupported(
            "hugepageLimits",
            "not supported by this version of berth-runtime",
        );
    }
    if res.network().is_some() {
        return unsupported("network", "not supported by this version of berth-runtime");
    }
    if res.rdma().as_ref().is_some_and(|r| !r.is_empty()) {
        return unsupported("rdma", "not supported by this version of berth-runtime");
    }
    if res.unified().as_ref().is_some_and(|u| !u.is_empty()) {
        return unsupported(
            "unified",
            "cgroup v2 key/values are not supported by this version of berth-runtime",
        );
    }
    if let Some(d) = res.devices() {
        crate::devices_bpf::rules(d).map_err(|msg| Error::Unsupported {
            field: "devices",
            msg,
        })?;
    }
    let need = |ctrl: &str, field: &'static str| -> Result<()> {
        if m.version != Version::V2 && m.v1_dir(ctrl).is_none() {
            return Err(Error::Unsupported {
                field,
                msg: format!("the host has no {ctrl} cgroup controller mounted"),
            });
        }
        Ok(())
    };
    if res.memory().is_some() {
        need("memory", "memory")?;
    }
    if res.cpu().is_some() {
        need("cpu", "cpu")?;
    }
    if res.pids().is_some() {
        need("pids", "pids")?;
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
            if let Some(r) = mem.reservation() {
                write(p, "memory.soft_limit_in_bytes", &r.to_string())?;
            }
            let limit = mem.limit();
            let swap = mem.swap();
            if let Some(swap) = swap {
                if !p.join("memory.memsw.limit_in_bytes").exists() {
                    return Err(Error::Unsupported {
                        field: "memory.swap",
                        msg: "the kernel has no swap accounting (memory.memsw.limit_in_bytes is missing)".into(),
                    });
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
                if s > 100 {
                    return Err(Error::Unsupported {
                        field: "memory.swappiness",
                        msg: format!("{s} is out of range 0-100"),
                    });
                }
                write(p, "memory.swappiness", &s.to_string())?;
            }
            if mem.disable_oom_killer() == Some(true) {
                write(p, "memory.oom_control", "1")?;
            }
        }
    }
    if let Some(cpu) = res.cpu() {
        if dir.has("cpu") {
            if let Some(s) = cpu.shares() {
                if s != 0 {
                    write(p, "cpu.shares", &s.to_string())?;
                }
            }
            if let Some(period) = cpu.period() {
                if period != 0 {
                    write(p, "cpu.cfs_period_us", &period.to_string())?;
                }
            }
            if let Some(q) = cpu.quota() {
                if q != 0 {
                    write(p, "cpu.cfs_quota_us", &q.to_string())?;
                }
            }
            if let Some(rp) = cpu.realtime_period() {
                write(p, "cpu.rt_period_us", &rp.to_string())?;
            }
            if let Some(rr) = cpu.realtime_runtime() {
                write(p, "cpu.rt_runtime_us", &rr.to_string())?;
            }
        }
        if dir.has("cpuset") {
            if let Some(c) = cpu.cpus().as_deref().filter(|c| !c.is_empty()) {
                write(p, "cpuset.cpus", c)?;
            }
            if let Some(m) = cpu.mems().as_deref().filter(|m| !m.is_empty()) {
                write(p, "cpuset.mems", m)?;
            }
        }
    }
    if dir.has("pids") {
        if let Some(pids) = res.pids() {
            let v = if pids.limit() > 0 {
                pids.limit().to_string()
            } else {
                "max".into()
            };
            write(p, "pids.max", &v)?;
        }
    }
    if dir.has("devices") {
        if let Some(rules) = res.devices() {
            for r in rules {
                let file = if r.allow() {
                    "devices.allow"
                } else {
                    "devices.deny"
                };
                write(p, file, &device_rule(r))?;
            }
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

fn apply_v2(p: &Path, res: &LinuxResources) -> Result<()> {
    let max = |v: i64| {
        if v < 0 {
            "max".to_string()
        } else {
            v.to_string()
        }
    };
    if let Some(mem) = res.memory() {
        if let Some(r) = mem.reservation() {
            write(p, "memory.low", &max(r))?;
        }
        if let Some(l) = mem.limit() {
            write(p, "memory.max", &max(l))?;
        }
        if let Some(s) = mem.swap() {
            // OCI swap is memory+swap; v2 counts swap alone.
            let v = match (s, mem.limit()) {
                (s, _) if s < 0 => "max".to_string(),
                (s, Some(l)) if l >= 0 => (s - l).max(0).to_string(),
                (s, _) => s.to_string(),
            };
            write(p, "memory.swap.max", &v)?;
        }
        if mem.disable_oom_killer() == Some(true) {
            return Err(Error::Unsupported {
                field: "memory.disableOOMKiller",
                msg: "cgroup v2 has no way to disable the OOM killer".into(),
            });
        }
    }
    if let Some(cpu) = res.cpu() {
        if let Some(s) = cpu.shares().filter(|s| *s != 0) {
            write(p, "cpu.weight", &shares_to_weight(s).to_string())?;
        }
        if cpu.quota().is_some() || cpu.period().is_some() {
            let quota = cpu
                .quota()
                .filter(|q| *q > 0)
                .map_or("max".to_string(), |q| q.to_string());
            let period = cpu.period().filter(|p| *p > 0).unwrap_or(100_000);
            write(p, "cpu.max", &format!("{quota} {period}"))?;
        }
        if let Some(c) = cpu.cpus().as_deref().filter(|c| !c.is_empty()) {
            write(p, "cpuset.cpus", c)?;
        }
        if let Some(m) = cpu.mems().as_deref().filter(|m| !m.is_empty()) {
            write(p, "cpuset.mems", m)?;
        }
    }
    if let Some(pids) = res.pids() {
        let v = if pids.limit() > 0 {
            pids.limit().to_string()
        } else {
            "max".into()
        };
        write(p, "pids.max", &v)?;
    }
    // No rules means no restriction, as on v1 where a new cgroup starts
    // with its parent's (allow-all) list.
    if let Some(d) = res.devices().as_ref().filter(|d| !d.is_empty()) {
        set_device_program(p, d)?;
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
/// processes until they are set; inherit them from the parent.
pub(crate) fn v1_cpuset_inherit(dir: &Path) -> Result<()> {
    let Some(parent) = dir.parent() else {
        return Ok(());
    };
    for f in ["cpuset.cpus", "cpuset.mems"] {
        if read(dir, f)?.is_empty() {
            write(dir, f, &read(parent, f)?)?;
        }
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
}
