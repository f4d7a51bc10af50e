//! Volumes, pruning, disk use, and the live views of running containers
//! (`top`, `stats`).

use crate::containers::Engine;
use crate::error::{io, Error, Result};
use crate::records::{Record, Status, VolumeRecord};
use std::path::{Path, PathBuf};

/// Bytes used by a tree (files' blocks, not following links), as `du`.
pub fn disk_usage(p: &Path) -> u64 {
    use std::os::fd::AsFd;
    // By fd, never following a symlink: a running container changes its
    // upper directory meanwhile (see files.rs).
    let Ok(fd) = berth_sys::fs::open(p, libc::O_PATH | libc::O_NOFOLLOW, 0) else {
        return 0;
    };
    match berth_sys::fs::fstat(fd.as_fd()) {
        Ok(st) => usage_of(fd.as_fd(), &st),
        Err(_) => 0,
    }
}

fn usage_of(fd: std::os::fd::BorrowedFd<'_>, st: &libc::stat) -> u64 {
    use std::os::fd::AsFd;
    let mut n = (st.st_blocks as u64).saturating_mul(512);
    if berth_sys::fs::file_type(st) == libc::S_IFDIR {
        for name in berth_sys::fs::read_dir_fd(fd).unwrap_or_default() {
            let name = Path::new(&name);
            let Ok(cst) = berth_sys::fs::stat_entry(fd, name) else {
                continue;
            };
            if berth_sys::fs::file_type(&cst) != libc::S_IFDIR {
                n = n.saturating_add((cst.st_blocks as u64).saturating_mul(512));
            } else if let Ok(d) = berth_sys::fs::open_dir_entry(fd, name) {
                n = n.saturating_add(usage_of(d.as_fd(), &cst));
            }
        }
    }
    n
}

#[derive(Debug, Default, serde::Serialize)]
pub struct PruneReport {
    pub containers: Vec<String>,
    pub images: Vec<String>,
    pub volumes: Vec<String>,
    pub layers: usize,
    pub blobs: usize,
    /// Build cache entries removed.
    pub build_cache: usize,
    /// The bytes freed: the containers' writable layers, the layers and
    /// blobs, the build cache and the volumes.
    pub reclaimed: u64,
}

#[derive(Debug, Default, serde::Serialize)]
pub struct DfRow {
    pub kind: &'static str,
    pub total: usize,
    pub active: usize,
    pub size: u64,
    pub reclaimable: u64,
}

#[derive(Debug, Default, Clone, serde::Serialize)]
pub struct Sample {
    /// CPU time used, ns.
    pub cpu_ns: u64,
    pub mem_used: u64,
    pub mem_limit: u64,
    pub pids: u64,
    pub io_read: u64,
    pub io_write: u64,
}

fn read_u64(p: &Path) -> Option<u64> {
    std::fs::read_to_string(p).ok()?.trim().parse().ok()
}

fn host_memory() -> u64 {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|t| {
            t.lines()
                .find_map(|l| l.strip_prefix("MemTotal:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        })
        .map_or(0, |k| k * 1024)
}

impl Engine {
    /// Unused volumes go: anonymous ones, or with `all` named ones too.
    /// Their names, each with the bytes its data held (measured before
    /// the removal, as `system df` measures it).
    pub fn prune_volumes(&self, all: bool) -> Result<Vec<(String, u64)>> {
        let mut gone = Vec::new();
        for v in self.records.volumes()? {
            if (v.anonymous || all) && self.records.volume_users(&v.name)?.is_empty() {
                let size = disk_usage(&self.paths.volume_data(&v.name));
                self.remove_volume(&v.name)?;
                gone.push((v.name, size));
            }
        }
        Ok(gone)
    }

    pub fn volume_list(&self) -> Result<Vec<(VolumeRecord, usize, PathBuf)>> {
        let mut out = Vec::new();
        for v in self.records.volumes()? {
            let users = self.records.volume_users(&v.name)?.len();
            let p = self.paths.volume_data(&v.name);
            out.push((v, users, p));
        }
        Ok(out)
    }

    /// `berth system prune`: stopped containers, dangling images (with
    /// `all_images` every image no container uses), unused layers and
    /// blobs, and with `volumes` unused anonymous volumes. Image holds
    /// whose container is gone (a crash between steps) are released too.
    pub fn prune(&mut self, all_images: bool, volumes: bool) -> Result<PruneReport> {
        let mut r = PruneReport::default();
        for c in self.list()? {
            if matches!(c.state.status, Status::Exited | Status::Created) {
                let size = disk_usage(&self.paths.container(&c.id).join("upper"));
                self.remove(&c.id, false, false)?;
                r.containers.push(c.id);
                r.reclaimed += size;
            }
        }
        self.remove_orphans()?;
        let live: std::collections::HashSet<String> = self
            .records
            .all()?
            .into_iter()
            .map(|c| format!("container:{}", c.id))
            .collect();
        for h in self.images.holders()? {
            if h.starts_with("container:") && !live.contains(&h) {
                self.images.release(&h)?;
            }
        }
        let victims = if all_images {
            let held = self.images.held()?;
            self.images
                .images()?
                .into_iter()
                .filter(|i| !held.contains(&i.id.to_string()))
                .map(|i| i.id)
                .collect()
        } else {
            self.images.dangling()?
        };
        for id in victims {
            self.images.remove_by_id(&id)?;
            self.record_event("image", "delete", &id.to_string(), Default::default());
            r.images.push(id.to_string());
        }
        // The build cache goes too (as Docker's does); the images its
        // entries named are pruned with the others.
        let (entries, cache_bytes) = self.builder_prune()?;
        r.build_cache = entries.len();
        let gc = self.images.gc()?;
        r.layers = gc.layers;
        r.blobs = gc.blobs;
        r.reclaimed += cache_bytes + gc.bytes;
        if volumes {
            for (name, size) in self.prune_volumes(false)? {
                r.volumes.push(name);
                r.reclaimed += size;
            }
        }
        Ok(r)
    }

    /// What a kill -9 in the middle of `rm` can leave: a container's
    /// directories, mount or lock without its record.
    pub fn remove_orphans(&self) -> Result<usize> {
        let mut n = 0;
        let ids = |dir: PathBuf| -> Vec<String> {
            std::fs::read_dir(dir)
                .map(|rd| {
                    rd.flatten()
                        .map(|e| e.file_name().to_string_lossy().into_owned())
                        .filter(|n| n.len() == 64 && n.bytes().all(|b| b.is_ascii_hexdigit()))
                        .collect()
                })
                .unwrap_or_default()
        };
        let mut all = ids(self.paths.root.join("containers"));
        all.extend(ids(self.paths.run_root.join("containers")));
        all.extend(ids(self.paths.run_root.join("rootfs")));
        all.extend(ids(self.paths.run_root.join("shm")));
        all.sort();
        all.dedup();
        for id in all {
            if self.records.get(&id)?.is_some() {
                continue;
            }
            self.host.unmount(&self.paths.rootfs(&id), None)?;
            self.release_joined_shm(&id);
            let run = self.paths.run_dir(&id);
            if run.exists() {
                std::fs::remove_dir_all(&run).map_err(io(format!("remove {}", run.display())))?;
            }
            let dir = self.paths.container(&id);
            crate::rootfs::detach_idmapped(&dir);
            crate::subpath::detach(&dir);
            if dir.exists() {
                berth_image::remove_all(&dir)?;
            }
            let _ = std::fs::remove_file(self.paths.lock(&id));
            n += 1;
        }
        // What `run --rm` left for a monitor that was killed before it
        // emptied the trash (or is emptying it now: then both try).
        for id in ids(self.paths.root.join("trash")) {
            let dir = self.paths.trash(&id);
            crate::rootfs::detach_idmapped(&dir);
            crate::subpath::detach(&dir);
            if berth_image::remove_all(&dir).is_ok() && !dir.exists() {
                n += 1;
            }
        }
        for id in ids(self.paths.run_root.join("trash")) {
            let _ = std::fs::remove_dir_all(self.paths.run_trash(&id));
        }
        Ok(n)
    }

    /// `berth system df`.
    pub fn df(&self) -> Result<Vec<DfRow>> {
        let held = self.images.held()?;
        let images = self.images.images()?;
        let mut img = DfRow {
            kind: "Images",
            total: images.len(),
            ..DfRow::default()
        };
        for i in &images {
            img.size += i.size;
            if held.contains(&i.id.to_string()) {
                img.active += 1;
            } else {
                img.reclaimable += i.size;
            }
        }
        // Pulls and loads in progress, or what killed ones left (removed
        // by the next pull or by prune).
        let tmp = self.images.tmp_size();
        img.size += tmp;
        img.reclaimable += tmp;
        let containers = self.list()?;
        let mut ctr = DfRow {
            kind: "Containers",
            total: containers.len(),
            ..DfRow::default()
        };
        for c in &containers {
            let size = disk_usage(&self.paths.container(&c.id).join("upper"));
            ctr.size += size;
            if matches!(c.state.status, Status::Running | Status::Restarting) {
                ctr.active += 1;
            } else {
                ctr.reclaimable += size;
            }
        }
        let vols = self.volume_list()?;
        let mut vol = DfRow {
            kind: "Local Volumes",
            total: vols.len(),
            ..DfRow::default()
        };
        for (_, users, path) in &vols {
            let size = disk_usage(path);
            vol.size += size;
            if *users > 0 {
                vol.active += 1;
            } else {
                vol.reclaimable += size;
            }
        }
        let (total, size) = self.build_cache_usage();
        let cache = DfRow {
            kind: "Build Cache",
            total,
            active: 0,
            size,
            reclaimable: size,
        };
        Ok(vec![img, ctr, vol, cache])
    }

    pub fn rename(&self, what: &str, name: &str) -> Result<()> {
        crate::specgen::check_name(name)?;
        let rec = self.get(what)?;
        self.records.rename(&rec.id, name)?;
        let mut renamed = rec.clone();
        renamed.name = name.to_string();
        // Its new name resolves at once on its networks.
        self.refresh_dns(&rec.id);
        self.container_event(&renamed, "rename", &[("oldName", rec.name.clone())]);
        Ok(())
    }

    fn running(&self, what: &str) -> Result<Record> {
        let rec = self.settle(self.records.find(what)?)?;
        if rec.state.status != Status::Running || rec.state.pid <= 0 {
            return Err(Error::Conflict(format!(
                "container {} is not running",
                rec.name
            )));
        }
        Ok(rec)
    }

    /// The host pids of the container's processes (the runtime's `ps`).
    pub fn pids(&self, what: &str) -> Result<(Record, Vec<i32>)> {
        let rec = self.running(what)?;
        let pids = self
            .oci
            .ps(self.target(&rec))
            .map_err(|e| e.into_error(&format!("list the processes of container {}", rec.name)))?;
        Ok((rec, pids))
    }

    /// One resource sample of a running container, from its cgroup.
    pub fn sample(&self, rec: &Record) -> Result<Sample> {
        let text = std::fs::read_to_string(format!("/proc/{}/cgroup", rec.state.pid))
            .map_err(io(format!("read the cgroup of container {}", rec.name)))?;
        let mut s = Sample::default();
        let v2 = Path::new("/sys/fs/cgroup/cgroup.controllers").exists();
        let path_of = |ctrl: &str| -> Option<PathBuf> {
            text.lines().find_map(|l| {
                let mut f = l.splitn(3, ':');
                let (_, c, p) = (f.next()?, f.next()?, f.next()?);
                if v2 && c.is_empty() {
                    return Some(PathBuf::from(format!("/sys/fs/cgroup{p}")));
                }
                c.split(',').any(|x| x == ctrl).then(|| {
                    // A hierarchy is mounted under its controllers' names
                    // ("cpu,cpuacct", or "cpuacct" alone), often with
                    // per-controller links.
                    let joined = PathBuf::from(format!("/sys/fs/cgroup/{c}{p}"));
                    if joined.exists() {
                        joined
                    } else {
                        PathBuf::from(format!("/sys/fs/cgroup/{ctrl}{p}"))
                    }
                })
            })
        };
        if v2 {
            let Some(dir) = path_of("") else {
                return Ok(s);
            };
            if let Ok(t) = std::fs::read_to_string(dir.join("cpu.stat")) {
                s.cpu_ns = t
                    .lines()
                    .find_map(|l| l.strip_prefix("usage_usec "))
                    .and_then(|v| v.trim().parse::<u64>().ok())
                    .unwrap_or(0)
                    * 1000;
            }
            s.mem_used = read_u64(&dir.join("memory.current")).unwrap_or(0);
            s.mem_limit = read_u64(&dir.join("memory.max")).unwrap_or(0);
            s.pids = read_u64(&dir.join("pids.current")).unwrap_or(0);
            if let Ok(t) = std::fs::read_to_string(dir.join("io.stat")) {
                for w in t.split_whitespace() {
                    if let Some(v) = w.strip_prefix("rbytes=") {
                        s.io_read += v.parse::<u64>().unwrap_or(0);
                    }
                    if let Some(v) = w.strip_prefix("wbytes=") {
                        s.io_write += v.parse::<u64>().unwrap_or(0);
                    }
                }
            }
        } else {
            if let Some(d) = path_of("cpuacct") {
                s.cpu_ns = read_u64(&d.join("cpuacct.usage")).unwrap_or(0);
            }
            if let Some(d) = path_of("memory") {
                s.mem_used = read_u64(&d.join("memory.usage_in_bytes")).unwrap_or(0);
                s.mem_limit = read_u64(&d.join("memory.limit_in_bytes")).unwrap_or(0);
            }
            if let Some(d) = path_of("pids") {
                s.pids = read_u64(&d.join("pids.current")).unwrap_or(0);
            }
            if let Some(d) = path_of("blkio") {
                if let Ok(t) = std::fs::read_to_string(d.join("blkio.throttle.io_service_bytes")) {
                    for l in t.lines() {
                        let f: Vec<&str> = l.split_whitespace().collect();
                        match f.as_slice() {
                            [_, "Read", v] => s.io_read += v.parse::<u64>().unwrap_or(0),
                            [_, "Write", v] => s.io_write += v.parse::<u64>().unwrap_or(0),
                            _ => {}
                        }
                    }
                }
            }
        }
        let host = host_memory();
        if s.mem_limit == 0 || s.mem_limit > host {
            s.mem_limit = host;
        }
        Ok(s)
    }
}
