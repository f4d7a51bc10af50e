//! Host devices for `--device` and `--privileged`, looked up on the host
//! when the container starts (a device's numbers may change across
//! reboots; `/dev/disk/by-id/...` links are followed, as Docker does).

use crate::error::{option, Result};
use crate::spec::Device;
use crate::specgen::DeviceMapping as DeviceConfig;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

/// The directories of the host's /dev that `--privileged` does not copy:
/// the container has its own of each (as runc's and Docker's lists).
const SKIPPED_DIRS: [&str; 7] = ["pts", "shm", "fd", "mqueue", ".lxc", ".lxd-mounts", ".udev"];

/// The devices `d` names: one node, or every node under a directory (each
/// at the same place under the container path).
pub fn lookup(d: &DeviceConfig) -> Result<Vec<Device>> {
    let bad = |m: String| option("--device", m);
    let host = std::fs::canonicalize(&d.host).map_err(|e| bad(format!("{}: {e}", d.host)))?;
    let meta = std::fs::metadata(&host).map_err(|e| bad(format!("{}: {e}", d.host)))?;
    if meta.is_dir() {
        let mut out = Vec::new();
        walk(&host, &mut |p, m| {
            let rel = p.strip_prefix(&host).unwrap_or(p);
            let path = Path::new(&d.container).join(rel);
            out.extend(device(&path, p, m, &d.access));
        });
        if out.is_empty() {
            return Err(bad(format!(
                "{}: no device nodes in this directory",
                d.host
            )));
        }
        return Ok(out);
    }
    device(Path::new(&d.container), &host, &meta, &d.access)
        .map(|x| vec![x])
        .ok_or_else(|| {
            bad(format!(
                "{} is not a device node (a character or block device)",
                d.host
            ))
        })
}

/// The numbers of the block device at `path` (links followed), for the
/// block I/O flags.
pub fn block_numbers(path: &str, flag: &str) -> Result<(i64, i64)> {
    let m = std::fs::metadata(path).map_err(|e| option(flag, format!("{path}: {e}")))?;
    if !m.file_type().is_block_device() {
        return Err(option(flag, format!("{path} is not a block device")));
    }
    let rdev = m.rdev();
    Ok((libc::major(rdev) as i64, libc::minor(rdev) as i64))
}

/// Whether cgroup v2 can weigh the I/O of block device `maj`:`min`
/// (`--blkio-weight-device`): its scheduler is bfq (io.bfq.weight), or
/// io.cost is enabled for it (io.weight). Otherwise the kernel refuses a
/// per-device weight (EOPNOTSUPP) and the container could not start;
/// Docker drops the flag with a warning then, and so does berth.
/// `scheduler`: the device's queue/scheduler; `qos`: /sys/fs/cgroup/io.cost.qos.
pub fn v2_weighs(maj: i64, min: i64, scheduler: &str, qos: &str) -> bool {
    let bfq = scheduler.split_whitespace().any(|s| s == "[bfq]");
    let dev = format!("{maj}:{min}");
    let cost = qos.lines().any(|l| {
        let mut f = l.split_whitespace();
        f.next() == Some(dev.as_str()) && f.any(|kv| kv == "enable=1")
    });
    bfq || cost
}

/// [`v2_weighs`] for the device at `path` on this host (a partition has
/// its disk's queue).
pub fn v2_weighs_device(path: &str, flag: &str) -> Result<bool> {
    let (maj, min) = block_numbers(path, flag)?;
    let dev = format!("/sys/dev/block/{maj}:{min}");
    let scheduler = std::fs::read_to_string(format!("{dev}/queue/scheduler"))
        .or_else(|_| std::fs::read_to_string(format!("{dev}/../queue/scheduler")))
        .unwrap_or_default();
    let qos = std::fs::read_to_string("/sys/fs/cgroup/io.cost.qos").unwrap_or_default();
    Ok(v2_weighs(maj, min, &scheduler, &qos))
}

/// Every device node of the host's /dev, for `--privileged`.
pub fn host_devices() -> Vec<Device> {
    let mut out = Vec::new();
    walk(Path::new("/dev"), &mut |p, m| {
        if p != Path::new("/dev/console") {
            out.extend(device(p, p, m, "rwm"));
        }
    });
    out
}

fn device(path: &Path, host: &Path, m: &std::fs::Metadata, access: &str) -> Option<Device> {
    let ft = m.file_type();
    let kind = if ft.is_char_device() {
        'c'
    } else if ft.is_block_device() {
        'b'
    } else {
        return None;
    };
    let rdev = m.rdev();
    Some(Device {
        path: path.to_string_lossy().into_owned(),
        host: host.to_string_lossy().into_owned(),
        kind,
        major: libc::major(rdev) as u64,
        minor: libc::minor(rdev) as u64,
        mode: m.mode() & 0o7777,
        uid: m.uid(),
        gid: m.gid(),
        access: access.to_string(),
    })
}

/// Calls `f` for each entry under `dir`, depth first, links not followed.
fn walk(dir: &Path, f: &mut dyn FnMut(&Path, &std::fs::Metadata)) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let mut entries: Vec<PathBuf> = entries.flatten().map(|e| e.path()).collect();
    entries.sort();
    for p in entries {
        let Ok(m) = std::fs::symlink_metadata(&p) else {
            continue;
        };
        if m.is_dir() {
            let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
            if dir == Path::new("/dev") && SKIPPED_DIRS.contains(&name) {
                continue;
            }
            walk(&p, f);
        } else {
            f(&p, &m);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(host: &str, container: &str, access: &str) -> DeviceConfig {
        DeviceConfig {
            host: host.into(),
            container: container.into(),
            access: access.into(),
        }
    }

    #[test]
    fn nodes_directories_and_links() {
        let d = lookup(&cfg("/dev/null", "/dev/mynull", "rw")).unwrap();
        assert_eq!(d.len(), 1);
        assert_eq!(
            (
                d[0].path.as_str(),
                d[0].kind,
                d[0].major,
                d[0].minor,
                d[0].access.as_str()
            ),
            ("/dev/mynull", 'c', 1, 3, "rw")
        );
        // A link to a device is followed (as /dev/disk/by-id/...).
        let tmp = tempfile::tempdir().unwrap();
        let link = tmp.path().join("zero-link");
        std::os::unix::fs::symlink("/dev/zero", &link).unwrap();
        let d = lookup(&cfg(link.to_str().unwrap(), "/dev/z", "r")).unwrap();
        assert_eq!((d[0].major, d[0].minor), (1, 5));
        // A directory: each node in it, at the same place in the container.
        let dir = tmp.path().join("d");
        std::fs::create_dir_all(dir.join("sub")).unwrap();
        std::os::unix::fs::symlink("/dev/null", dir.join("sub/not-followed")).unwrap();
        std::fs::write(dir.join("file"), "x").unwrap();
        assert!(lookup(&cfg(dir.to_str().unwrap(), "/dev/d", "rwm")).is_err());
        let e = lookup(&cfg("/etc/passwd", "/dev/p", "rwm"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("not a device node"), "{e}");
        assert!(lookup(&cfg("/no/such/dev", "/dev/x", "rwm")).is_err());
        let pts = lookup(&cfg("/dev/pts", "/dev/hostpts", "r")).unwrap();
        assert!(pts.iter().all(|d| d.path.starts_with("/dev/hostpts/")));
    }

    #[test]
    fn block_devices_by_path() {
        let e = block_numbers("/dev/null", "--device-read-bps")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("--device-read-bps") && e.contains("not a block device"),
            "{e}"
        );
        assert!(block_numbers("/no/such", "--x").is_err());
        let block = std::fs::read_dir("/sys/dev/block")
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .find_map(|n| {
                let (ma, mi) = n.split_once(':')?;
                let dev = std::fs::read_to_string(format!("/sys/dev/block/{n}/uevent")).ok()?;
                let name = dev
                    .lines()
                    .find_map(|l| l.strip_prefix("DEVNAME="))?
                    .to_string();
                Some((format!("/dev/{name}"), ma.parse().ok()?, mi.parse().ok()?))
            });
        let (path, ma, mi) = block.expect("this machine has a block device");
        assert_eq!(block_numbers(&path, "--x").unwrap(), (ma, mi));
    }

    #[test]
    fn privileged_gets_the_hosts_devices_but_not_its_pts() {
        let all = host_devices();
        assert!(all.iter().any(|d| d.path == "/dev/null"));
        assert!(all.iter().all(|d| !d.path.starts_with("/dev/pts/")));
        assert!(all.iter().all(|d| d.path != "/dev/console"));
    }

    #[test]
    fn v2_weighs_only_with_bfq_or_io_cost() {
        use super::v2_weighs;
        assert!(v2_weighs(8, 0, "mq-deadline kyber [bfq] none", ""));
        assert!(!v2_weighs(8, 0, "[mq-deadline] kyber bfq none", ""));
        assert!(!v2_weighs(8, 0, "[none] mq-deadline", ""));
        let qos = "8:0 enable=1 ctrl=auto rpct=0.00 rlat=250000\n259:0 enable=0 ctrl=auto\n";
        assert!(v2_weighs(8, 0, "[none]", qos));
        assert!(!v2_weighs(259, 0, "[none]", qos));
        assert!(!v2_weighs(8, 16, "[none]", qos));
    }
}
