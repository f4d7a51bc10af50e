//! Where berth keeps things, and how it finds its helper programs.
//!
//! Persistent (`--root`, /var/lib/berth): the records in the image store's
//! `store.db`, and per container `containers/ID/` with the overlay's
//! `upper/` and `work/`, the log (`ctr.log`) and the final state (`exit`).
//! Volumes: `volumes/NAME/_data`.
//!
//! Runtime (`--run-root`, /run/berth, a tmpfs gone at reboot), all of it
//! rewritten at each start: per container `containers/ID/` (the OCI bundle:
//! `config.json`, `hosts`, `hostname`, `resolv.conf`; the monitor's config,
//! state file, pid file, sockets and log), the overlay's mount point
//! `rootfs/ID`, the lock `locks/ID`; the runtime's state under
//! `runtime/NAME/`. Keeping these off the persistent disk saves a dozen
//! inode creations per `run` (each up to a millisecond on ext4).

use crate::error::{Error, Result};
use std::path::{Path, PathBuf};

#[derive(Clone, Debug)]
pub struct Paths {
    pub root: PathBuf,
    pub run_root: PathBuf,
}

impl Paths {
    pub fn container(&self, id: &str) -> PathBuf {
        self.root.join("containers").join(id)
    }

    /// The overlay's mount point: on the run root, apart from the run
    /// directory (which is removed recursively, so must never hold a mount).
    pub fn rootfs(&self, id: &str) -> PathBuf {
        self.run_root.join("rootfs").join(id)
    }

    /// Where `run --rm` moves a removed container's directory for its
    /// monitor to delete after `run` has returned (same filesystem as
    /// [`Paths::container`], so the move is a rename).
    pub fn trash(&self, id: &str) -> PathBuf {
        self.root.join("trash").join(id)
    }

    /// The same for the container's run directory (on the run root's
    /// filesystem), and in it its emptied mount point ([`ROOTFS_IN_TRASH`]).
    pub fn run_trash(&self, id: &str) -> PathBuf {
        self.run_root.join("trash").join(id)
    }

    /// The container's lock file.
    pub fn lock(&self, id: &str) -> PathBuf {
        self.run_root.join("locks").join(id)
    }

    pub fn run_dir(&self, id: &str) -> PathBuf {
        self.run_root.join("containers").join(id)
    }

    pub fn volume(&self, name: &str) -> PathBuf {
        self.root.join("volumes").join(name)
    }

    pub fn volume_data(&self, name: &str) -> PathBuf {
        self.volume(name).join("_data")
    }

    /// The runtime's `--root`, one per runtime (their state formats differ).
    pub fn runtime_root(&self, runtime: &Path) -> PathBuf {
        let name = runtime
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "runtime".into());
        self.run_root.join("runtime").join(name)
    }
}

/// Creates the run root, or closes one an older berth left open: it holds
/// every container's config.json (their -e secrets), logs and sockets, so
/// it is its owner's alone (0700). The containers do not need to reach
/// through it: their root and the files bound into them are mounted, and
/// the runtime opens its fifo through /proc/self/fd.
pub fn private_run_root(run_root: &Path) -> Result<()> {
    std::fs::create_dir_all(run_root)
        .and_then(|()| berth_image::store::private(run_root, 0o700))
        .map_err(crate::error::io(format!(
            "make the run root {} (mkdir, chmod 0700)",
            run_root.display()
        )))
}

/// A helper program: a path as given, else next to the running binary
/// (an installed or built tree), else on $PATH.
pub fn find_program(name: &str) -> Result<PathBuf> {
    if name.contains('/') {
        let p = PathBuf::from(name);
        return if p.is_file() {
            Ok(p)
        } else {
            Err(Error::Runtime(format!("{name}: no such program")))
        };
    }
    if let Ok(exe) = std::env::current_exe() {
        if let Some(dir) = exe.parent() {
            let p = dir.join(name);
            if p.is_file() {
                return Ok(p);
            }
        }
    }
    for dir in std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .unwrap_or_default()
    {
        let p = dir.join(name);
        if p.is_file() {
            return Ok(p);
        }
    }
    for dir in ["/usr/libexec/berth", "/usr/lib/berth"] {
        let p = Path::new(dir).join(name);
        if p.is_file() {
            return Ok(p);
        }
    }
    Err(Error::Runtime(format!(
        "{name}: not found next to berth, on $PATH or in /usr/libexec/berth; install it or give its path"
    )))
}

/// This boot's id: a record written in another boot is stale.
pub fn boot_id() -> String {
    std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

/// 32 random bytes in hex: a container id.
pub fn new_id() -> Result<String> {
    use std::io::Read;
    let mut b = [0u8; 32];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut b))
        .map_err(crate::error::io("read /dev/urandom for a container id"))?;
    Ok(b.iter().map(|x| format!("{x:02x}")).collect())
}

/// Docker-style names: adjective_surname.
pub fn random_name(id: &str) -> String {
    const ADJ: [&str; 16] = [
        "brave", "calm", "eager", "fond", "gentle", "happy", "jolly", "keen", "lucid", "merry",
        "nifty", "proud", "quirky", "sharp", "tender", "witty",
    ];
    const NAMES: [&str; 16] = [
        "turing", "hopper", "lovelace", "ritchie", "thompson", "torvalds", "knuth", "dijkstra",
        "hamilton", "liskov", "lamport", "shannon", "noether", "curie", "babbage", "kay",
    ];
    let b = |i: usize| usize::from_str_radix(&id[i..i + 2], 16).unwrap_or(0);
    if id.len() < 8 {
        return format!("berth_{id}");
    }
    format!("{}_{}_{}", ADJ[b(0) % 16], NAMES[b(2) % 16], &id[4..8])
}

/// The name the container's emptied mount point takes in its run trash.
pub const ROOTFS_IN_TRASH: &str = ".rootfs";
