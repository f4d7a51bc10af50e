//! The host actions of a container's create and start that need root and
//! real binaries, behind one trait, [`Host`]: finding a program (the
//! runtime, the monitor), mounting the container's root and unmounting
//! it, and starting the monitor. [`REAL`] does what berth does; [`Fake`]
//! (only in tests and with the `fake` feature) records the calls, "mounts"
//! by copying the image's layers, and plays the monitor on a thread.

use crate::containers::{Engine, PreMonitor};
use crate::error::Result;
use crate::records::Record;
use berth_monitor_proto::config::Config as MonitorConfig;
use std::path::{Path, PathBuf};

/// What the engine's start asks of the host.
pub trait Host: Send + Sync {
    /// The program `name` (a runtime as `--runtime` takes it, or
    /// `berth-monitor`): [`crate::paths::find_program`].
    fn find_program(&self, name: &str) -> Result<PathBuf>;
    /// Mounts `rec`'s root (no-op if mounted); returns where.
    fn mount_rootfs(&self, engine: &Engine, rec: &Record) -> Result<PathBuf>;
    /// Unmounts a container's root and removes the mount point (or renames
    /// it to `trash`): [`crate::rootfs::unmount_into`].
    fn unmount(&self, target: &Path, trash: Option<&Path>) -> Result<()>;
    /// Starts the monitor `monitor` with its config (`text` is
    /// `config.to_text()`), or hands the config to `pre` when that was
    /// started for `runtime`.
    fn spawn_monitor(&self, m: &MonitorLaunch<'_>, pre: Option<PreMonitor>) -> Result<Launched>;
}

/// A monitor to start.
pub struct MonitorLaunch<'a> {
    pub monitor: &'a Path,
    pub runtime: &'a Path,
    pub config: &'a MonitorConfig,
    pub text: &'a str,
    pub run_dir: &'a Path,
    /// berth's run root (a monitor started as one started ahead makes the
    /// runtime's protected binary under it).
    pub run_root: &'a Path,
}

/// A started monitor: its pipes and pid, and the child to reap if the
/// start is given up before GO (None when the host reaps it itself).
pub struct Launched {
    pub to_monitor: std::fs::File,
    pub from_monitor: std::fs::File,
    pub pid: i32,
    pub child: Option<std::process::Child>,
}

/// The host berth runs on.
pub struct Real;

pub static REAL: Real = Real;

impl Host for Real {
    fn find_program(&self, name: &str) -> Result<PathBuf> {
        crate::paths::find_program(name)
    }

    fn mount_rootfs(&self, engine: &Engine, rec: &Record) -> Result<PathBuf> {
        engine.mount_overlay(rec)
    }

    fn unmount(&self, target: &Path, trash: Option<&Path>) -> Result<()> {
        crate::rootfs::unmount_into(target, trash)
    }

    fn spawn_monitor(&self, m: &MonitorLaunch<'_>, pre: Option<PreMonitor>) -> Result<Launched> {
        crate::containers::launch_monitor(m, pre)
    }
}

#[cfg(any(test, feature = "fake"))]
pub use fake::{Fake, FakeStart, HostCall};

#[cfg(any(test, feature = "fake"))]
mod fake {
    use super::{Host, Launched, MonitorLaunch};
    use crate::containers::{Engine, PreMonitor};
    use crate::error::{io, Result};
    use crate::records::Record;
    use berth_monitor_proto::config::Config as MonitorConfig;
    use berth_monitor_proto::frame::{self, Decoder};
    use berth_monitor_proto::state::{State as MonitorState, Status as MonitorStatus};
    use std::io::{Read, Write};
    use std::os::fd::OwnedFd;
    use std::path::{Path, PathBuf};
    use std::process::Child;
    use std::sync::Mutex;

    /// What the next fake monitor does after GO.
    #[derive(Clone, Debug, PartialEq, Eq)]
    pub enum FakeStart {
        /// Reports the container started, its init `pid`.
        Runs { pid: i32 },
        /// Reports the runtime's failure `msg` (as the monitor's ERROR
        /// frame and its state file), waits for CLEANED and ends.
        Fails(String),
    }

    /// A call the engine made of the host.
    #[derive(Clone, Debug)]
    pub enum HostCall {
        Mount(String),
        Unmount(PathBuf),
        Monitor(Box<MonitorConfig>),
    }

    /// A host without root: programs are `/fake/NAME` (the monitor is the
    /// stand-in given to [`Fake::new`]), the root is a directory the
    /// image's layers are copied into, and each monitor is a process of
    /// the stand-in (so that it passes for a live monitor) plus a thread
    /// that speaks the monitor's protocol and writes its state file.
    pub struct Fake {
        monitor: PathBuf,
        next: Mutex<Vec<FakeStart>>,
        calls: Mutex<Vec<HostCall>>,
        children: Mutex<Vec<Child>>,
    }

    impl Fake {
        /// `monitor`: a program that runs `monitor 600` as a process named
        /// berth-monitor (a link of that name to sleep).
        pub fn new(monitor: PathBuf) -> Fake {
            Fake {
                monitor,
                next: Mutex::new(Vec::new()),
                calls: Mutex::new(Vec::new()),
                children: Mutex::new(Vec::new()),
            }
        }

        /// What the next monitor does (by default it runs, init pid
        /// 4000000).
        pub fn next_start(&self, s: FakeStart) {
            self.next.lock().unwrap().push(s);
        }

        pub fn calls(&self) -> Vec<HostCall> {
            self.calls.lock().unwrap().clone()
        }

        /// The monitors' processes started so far, oldest first.
        pub fn monitor_pids(&self) -> Vec<i32> {
            let c = self.children.lock().unwrap();
            c.iter().map(|c| c.id() as i32).collect()
        }

        /// Ends the monitor `pid` (kill -9) and reaps it.
        pub fn end_monitor(&self, pid: i32) {
            let mut c = self.children.lock().unwrap();
            if let Some(i) = c.iter().position(|c| c.id() as i32 == pid) {
                let mut child = c.remove(i);
                let _ = child.kill();
                let _ = child.wait();
            }
        }

        /// Ends every monitor started so far (kill -9) and reaps them: the
        /// engine holds a `&'static` host, whose Drop never runs.
        pub fn end_all(&self) {
            let mut c = self.children.lock().unwrap();
            for mut child in c.drain(..) {
                let _ = child.kill();
                let _ = child.wait();
            }
        }

        fn record(&self, call: HostCall) {
            self.calls.lock().unwrap().push(call);
        }
    }

    impl Drop for Fake {
        fn drop(&mut self) {
            for c in self.children.get_mut().unwrap().iter_mut() {
                let _ = c.kill();
                let _ = c.wait();
            }
        }
    }

    impl Host for Fake {
        fn find_program(&self, name: &str) -> Result<PathBuf> {
            Ok(match name {
                "berth-monitor" => self.monitor.clone(),
                n if n.contains('/') => PathBuf::from(n),
                n => Path::new("/fake").join(n),
            })
        }

        fn mount_rootfs(&self, engine: &Engine, rec: &Record) -> Result<PathBuf> {
            self.record(HostCall::Mount(rec.id.clone()));
            let target = engine.paths.rootfs(&rec.id);
            std::fs::create_dir_all(&target).map_err(io(format!("create {}", target.display())))?;
            for layer in engine.layer_dirs(rec)? {
                copy_tree(&layer, &target)
                    .map_err(io(format!("copy {} to the root", layer.display())))?;
            }
            Ok(target)
        }

        fn unmount(&self, target: &Path, _trash: Option<&Path>) -> Result<()> {
            self.record(HostCall::Unmount(target.to_path_buf()));
            match std::fs::remove_dir_all(target) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                    Err(io(format!("remove {}", target.display()))(e))
                }
                _ => Ok(()),
            }
        }

        fn spawn_monitor(
            &self,
            m: &MonitorLaunch<'_>,
            _pre: Option<PreMonitor>,
        ) -> Result<Launched> {
            self.record(HostCall::Monitor(Box::new(m.config.clone())));
            let start = {
                let mut n = self.next.lock().unwrap();
                if n.is_empty() {
                    FakeStart::Runs { pid: 4_000_000 }
                } else {
                    n.remove(0)
                }
            };
            let child = std::process::Command::new(m.monitor)
                .arg("600")
                .spawn()
                .map_err(io(format!(
                    "start the stand-in monitor {}",
                    m.monitor.display()
                )))?;
            let pid = child.id() as i32;
            self.children.lock().unwrap().push(child);
            // A socket pair for each direction, as the monitor's pipes.
            let pair = || std::os::unix::net::UnixStream::pair().map_err(io("make a socket pair"));
            let (engine_reads, monitor_writes) = pair()?;
            let (monitor_reads, engine_writes) = pair()?;
            let state = m.config.run_dir.join("state");
            std::thread::spawn(move || {
                play_monitor(pid, start, monitor_reads, monitor_writes, state)
            });
            Ok(Launched {
                to_monitor: std::fs::File::from(OwnedFd::from(engine_writes)),
                from_monitor: std::fs::File::from(OwnedFd::from(engine_reads)),
                pid,
                child: None,
            })
        }
    }

    /// The monitor's side of a start: waits for GO (none: the start was
    /// given up), then does `start`.
    fn play_monitor(
        monitor_pid: i32,
        start: FakeStart,
        mut from: impl Read,
        mut to: impl Write,
        state: PathBuf,
    ) {
        let mut dec = Decoder::default();
        let mut next = |dec: &mut Decoder| -> Option<u8> {
            let mut buf = [0u8; 4096];
            loop {
                if let Ok(Some((kind, _))) = dec.next_frame() {
                    return Some(kind);
                }
                match from.read(&mut buf) {
                    Ok(0) | Err(_) => return None,
                    Ok(n) => dec.feed(&buf[..n]),
                }
            }
        };
        if next(&mut dec) != Some(frame::GO) {
            return;
        }
        let mut ms = MonitorState {
            monitor_pid,
            started: crate::containers::now_nanos(),
            ..MonitorState::default()
        };
        match start {
            FakeStart::Runs { pid } => {
                ms.pid = pid;
                ms.status = MonitorStatus::Running;
                let _ = std::fs::write(&state, ms.to_text());
                let _ = to.write_all(&frame::encode(frame::STARTED, pid.to_string().as_bytes()));
                // Open until the client goes.
                while next(&mut dec).is_some() {}
            }
            FakeStart::Fails(msg) => {
                ms.status = MonitorStatus::Exited;
                ms.finished = ms.started;
                ms.exit_code = 127;
                ms.error = msg.clone();
                let _ = std::fs::write(&state, ms.to_text());
                let _ = to.write_all(&frame::encode(frame::ERROR, msg.as_bytes()));
                while let Some(k) = next(&mut dec) {
                    if k == frame::CLEANED {
                        break;
                    }
                }
                // The monitor ends (its process stays a zombie until the
                // fake reaps it).
                // SAFETY: a plain syscall on a child of this process.
                unsafe { libc::kill(monitor_pid, libc::SIGKILL) };
            }
        }
    }

    /// Copies the directories, regular files and symlinks under `from`
    /// into `to` (an upper layer's entries replace a lower's).
    fn copy_tree(from: &Path, to: &Path) -> std::io::Result<()> {
        for e in std::fs::read_dir(from)? {
            let e = e?;
            let (src, dst) = (e.path(), to.join(e.file_name()));
            let t = e.file_type()?;
            if t.is_dir() {
                std::fs::create_dir_all(&dst)?;
                copy_tree(&src, &dst)?;
            } else if t.is_symlink() {
                let _ = std::fs::remove_file(&dst);
                std::os::unix::fs::symlink(std::fs::read_link(&src)?, &dst)?;
            } else if t.is_file() {
                std::fs::copy(&src, &dst)?;
            }
        }
        Ok(())
    }
}
