//! The container's root filesystem, set up by init inside its mount
//! namespace: mounts in config order, devices, pivot_root, then masked and
//! read-only paths.
//!
//! Every path inside the rootfs is resolved with openat2(RESOLVE_IN_ROOT)
//! and acted on through its fd (CVE-2021-30465: no symlink swapped in during
//! setup can redirect a mount to the host). Paths the runtime itself creates
//! (devices, /dev links) refuse symlinks outright (CVE-2026-41579).

use crate::channel::Msg;
use crate::config::clean_path;
use crate::error::{Context, Error, Result};
use crate::mounts::{self, MountOptions};
use berth_cgroups::Manager;
use berth_sys::fs::{self as sfs, Links};
use berth_sys::mount::{self as smount, MountAttr};
use berth_sys::userns::IdRange;
use berth_sys::{cstr, fd_path};
use oci_spec::runtime::{LinuxDevice, LinuxDeviceType, Mount, Spec};
use std::ffi::CString;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};

pub(crate) struct Rootfs<'a> {
    pub spec: &'a Spec,
    pub rootfs: &'a Path,
    pub bundle: &'a Path,
    pub userns: bool,
    /// The stage entered the rootfs while it was still the host's root
    /// ([`crate::init::enters_rootfs`]): the rootfs is reached from the
    /// working directory, as its path may cross a directory the
    /// container's root cannot search (an engine's 0700 run root).
    pub from_cwd: bool,
    pub netns_new: bool,
    pub cgroupns_new: bool,
    pub cgroup: Option<&'a Manager>,
    /// Set when the runtime makes the cgroups and moves us in while we
    /// mount (cgroup v1): a cgroup mount first waits for its
    /// [`Msg::Placed`](crate::channel::Msg::Placed).
    pub await_placed: std::cell::Cell<Option<&'a crate::channel::Channel>>,
    /// The runtime's word only says the cgroups exist: we move ourselves
    /// in (see `InitArgs::self_place`).
    pub self_place: bool,
    /// A `/dev` mount asked to be read-only: mounted read-write so that
    /// its submounts (pts, shm, mqueue) and device nodes can be made, and
    /// made read-only in `finalize` (runc does the same).
    pub dev_readonly: std::cell::Cell<bool>,
    /// Without a user namespace: the idmapped mounts' detached trees,
    /// made by the runtime before the clone (`None` for the other mounts),
    /// by index in `mounts`. See [`bind_trees`].
    pub bind_trees: &'a [Option<OwnedFd>],
    /// The channel to the runtime (see [`Self::request_idmap`]).
    pub chan: &'a crate::channel::Channel,
}

/// What the runtime prepares for the bind mounts before the clone, by
/// index in `mounts`:
///
/// - Idmapped mounts' (`idmap`, `ridmap`, `uidMappings`):
///   `MOUNT_ATTR_IDMAP` needs privilege over the source's filesystem,
///   which only the runtime has. The user namespace holding the maps is
///   made here. Without a user namespace the runtime's idmapped clone of
///   the source is attached by the init (the host's root: no submount is
///   locked for it anyway). With one, the init clones the source in its
///   own mount namespace and the runtime makes that clone idmapped
///   ([`BindTrees::set_idmap`]).
/// - With a user namespace, every bind mount's source, for
///   [`BindTrees::open_source`]: the init, root only of its new user
///   namespace, may not traverse the host directories a bind source lies
///   in (a 0700 parent of root's is common: /root, /var/lib/...). It then
///   has the runtime open the source in the init's mount namespace and
///   clones that. Never a tree the runtime cloned in the host's mount
///   namespace: the host's submounts in it would not be locked, and the
///   container's root (`CAP_SYS_ADMIN` in its user namespace) could
///   unmount them to see what they cover.
pub(crate) fn bind_trees(
    spec: &Spec,
    bundle: &Path,
    ns: &crate::config::Namespaces,
) -> Result<BindTrees> {
    let mounts = spec.mounts().as_deref().unwrap_or_default();
    let userns = ns.has(libc::CLONE_NEWUSER);
    let mut out = BindTrees::default();
    for (i, m) in mounts.iter().enumerate() {
        let opts = mounts::parse_options(m.options().as_deref().unwrap_or_default())
            .map_err(|e| Error::Usage(e.replace('\0', " ")))?;
        let typ = mounts::mount_type(m, &opts);
        let idmap = mounts::idmap_of(m, &opts);
        out.idmaps.push(None);
        out.trees.push(None);
        out.sources.push(None);
        if !(typ == "bind" || opts.is_bind()) || (!userns && idmap.is_none()) {
            continue;
        }
        let src = bind_source(m, bundle);
        if userns {
            out.sources[i] = Some(src.clone());
        }
        if let Some(idm) = idmap {
            let at = |e: String| {
                Error::Usage(format!("mounts[{i}] ({}): {e}", m.destination().display()))
            };
            // SAFETY: geteuid cannot fail.
            if unsafe { libc::geteuid() } != 0 {
                return Err(at("idmapped mounts need a runtime running as root, with privilege over the source's filesystem; a rootless container cannot have them (as with runc): drop idmap, ridmap and the mount's uidMappings".into()));
            }
            let n = out
                .userns_for(&idm, spec, ns)
                .map_err(|e| at(e.to_string()))?;
            if !userns {
                let tree = clone_source(
                    &src,
                    &opts,
                    true,
                    Some((out.namespaces[n].as_fd(), idm.recursive)),
                )
                .map_err(|e| at(e.to_string()))?;
                out.trees[i] = Some(tree);
            }
            out.idmaps[i] = Some((n, idm.recursive, src));
        }
    }
    Ok(out)
}

/// A uid map and a gid map.
type IdMaps = (Vec<IdRange>, Vec<IdRange>);

/// What the runtime prepares for the bind mounts (see [`bind_trees`]).
#[derive(Default)]
pub(crate) struct BindTrees {
    /// The detached idmapped trees (without a user namespace), by index
    /// in `mounts`.
    pub trees: Vec<Option<OwnedFd>>,
    /// With a user namespace, the bind mounts' sources, by index in
    /// `mounts` (see [`BindTrees::open_source`]).
    sources: Vec<Option<PathBuf>>,
    /// For an idmapped mount: the user namespace (in `namespaces`) its
    /// maps are taken from, `ridmap`, and its source.
    idmaps: Vec<Option<(usize, bool, PathBuf)>>,
    /// User namespaces holding idmapped mounts' maps: one per distinct
    /// pair of maps (`Some`), made once (see
    /// [`berth_sys::userns::new_userns`]), or the one the container joins
    /// (`None`), by their index in `namespaces`.
    by_maps: std::collections::HashMap<Option<IdMaps>, usize>,
    namespaces: Vec<OwnedFd>,
}

/// The most user namespaces made for idmapped mounts' distinct maps in
/// one container: each costs a short-lived child and a namespace, and a
/// config with thousands of distinct maps would make thousands.
pub(crate) const MAX_IDMAP_NAMESPACES: usize = 64;

impl BindTrees {
    /// The index in `namespaces` of the user namespace with `idm`'s maps.
    fn userns_for(
        &mut self,
        idm: &mounts::Idmap<'_>,
        spec: &Spec,
        ns: &crate::config::Namespaces,
    ) -> Result<usize> {
        let linux = spec.linux().as_ref();
        let key = match idm.maps {
            Some((uids, gids)) => Some((mounts::ranges(uids), mounts::ranges(gids))),
            None => match ns.join.iter().find(|(f, _)| *f == libc::CLONE_NEWUSER) {
                Some(_) => None,
                None => Some((
                    mounts::ranges(
                        linux
                            .and_then(|l| l.uid_mappings().as_deref())
                            .unwrap_or_default(),
                    ),
                    mounts::ranges(
                        linux
                            .and_then(|l| l.gid_mappings().as_deref())
                            .unwrap_or_default(),
                    ),
                )),
            },
        };
        if let Some(at) = self.by_maps.get(&key) {
            return Ok(*at);
        }
        let made = self.by_maps.keys().filter(|k| k.is_some()).count();
        if key.is_some() && made >= MAX_IDMAP_NAMESPACES {
            return Err(Error::Usage(format!(
                "more than {MAX_IDMAP_NAMESPACES} distinct uidMappings/gidMappings pairs among the idmapped mounts; each needs a user namespace of its own: give mounts the same mappings, or the container's (idmap without mappings)"
            )));
        }
        let fd = match &key {
            Some((uids, gids)) => berth_sys::userns::new_userns(uids, gids)
                .ctx("make a user namespace holding the mount's id maps")?,
            None => {
                let path = ns
                    .join
                    .iter()
                    .find(|(f, _)| *f == libc::CLONE_NEWUSER)
                    .map(|(_, p)| p.clone())
                    .unwrap_or_default();
                sfs::open(&path, libc::O_RDONLY | libc::O_CLOEXEC, 0).with_ctx(|| {
                    format!("open the container's user namespace {}", path.display())
                })?
            }
        };
        self.namespaces.push(fd);
        self.by_maps.insert(key, self.namespaces.len() - 1);
        Ok(self.namespaces.len() - 1)
    }

    /// Opens bind mount `index`'s source (`O_PATH`) for the init, which
    /// may not reach it, as the init's mount namespace has it: through
    /// /proc/`pid`/root (`pidfd`: the init's, alive when that was opened,
    /// so the pid was its), with the source's symlinks resolved in that
    /// root, as the init's own open would. The init clones it there; a
    /// tree cloned from the host's mount namespace would not have the
    /// host's submounts locked.
    pub fn open_source(&self, index: usize, pid: i32, pidfd: BorrowedFd<'_>) -> Result<OwnedFd> {
        let Some(src) = self.sources.get(index).and_then(|x| x.as_ref()) else {
            return Err(Error::Usage(format!(
                "the container process asked for the source of mounts[{index}], which is not a bind mount in a user namespace"
            )));
        };
        let at = |e: std::io::Error| {
            Error::Usage(format!(
                "mounts[{index}].source {}: open it in the container's mount namespace: {e}",
                src.display()
            ))
        };
        let proc = sfs::open(
            Path::new(&format!("/proc/{pid}")),
            libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC,
            0,
        )
        .map_err(at)?;
        berth_sys::process::pidfd_send_signal(pidfd, 0).map_err(at)?;
        let root = sfs::openat(
            proc.as_fd(),
            Path::new("root"),
            libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC,
            0,
        )
        .map_err(at)?;
        sfs::open_in_root(
            root.as_fd(),
            src,
            libc::O_PATH | libc::O_CLOEXEC,
            sfs::Links::InRoot,
        )
        .map_err(at)
    }

    /// Makes `tree`, the init's clone of idmapped mount `index`'s source
    /// in the container's mount namespace, idmapped: the init may not (it
    /// has no privilege over the source's filesystem), and its clone,
    /// unlike ours, keeps the submounts locked as the kernel locked them
    /// in that namespace, so that the container cannot unmount them to
    /// see what they cover.
    pub fn set_idmap(&self, index: usize, tree: BorrowedFd<'_>) -> Result<()> {
        let Some((n, recursive, src)) = self.idmaps.get(index).and_then(|x| x.as_ref()) else {
            return Err(Error::Usage(format!(
                "the container process asked to idmap mounts[{index}], which is not an idmapped mount"
            )));
        };
        smount::set_idmap(tree, self.namespaces[*n].as_fd(), *recursive)
            .map_err(|e| idmap_error(src, *recursive, e))
            .map_err(|e| Error::Usage(format!("mounts[{index}]: {e}")))
    }
}

fn bind_source(m: &Mount, bundle: &Path) -> PathBuf {
    let src = m.source().clone().unwrap_or_default();
    if src.is_absolute() {
        src
    } else {
        bundle.join(src)
    }
}

/// A detached clone of the bind source `src` with the options' mount
/// attributes set on it. `from_host`: cloned by the runtime in the host's
/// mount namespace (see [`bind_trees`]). `idmap`: made idmapped with the
/// maps of that user namespace (on its submounts too if `true`).
fn clone_source(
    src: &Path,
    opts: &MountOptions,
    from_host: bool,
    idmap: Option<(BorrowedFd<'_>, bool)>,
) -> Result<OwnedFd> {
    let src_fd = sfs::open(src, libc::O_PATH, 0)
        .with_ctx(|| format!("open bind source {}", src.display()))?;
    clone_fd(src_fd.as_fd(), src, opts, from_host, idmap)
}

/// [`clone_source`] of the source opened at `src_fd`.
fn clone_fd(
    src_fd: BorrowedFd<'_>,
    src: &Path,
    opts: &MountOptions,
    from_host: bool,
    idmap: Option<(BorrowedFd<'_>, bool)>,
) -> Result<OwnedFd> {
    let mut flags = smount::OPEN_TREE_CLONE;
    if opts.rbind {
        flags |= libc::AT_RECURSIVE as u32;
    }
    let tree = smount::open_tree(src_fd, flags)
        .with_ctx(|| format!("clone mount of {}", src.display()))?;
    // A clone of a shared host mount joins the host's peer group. In the
    // container's namespace the host mounts are already what `/` was made
    // (rslave unless asked), and so is their clone; the runtime's clone is
    // made a slave here, so that nothing mounted in the container reaches
    // the host, unless the bind asks to share (`rshared`, Kubernetes'
    // Bidirectional): then it stays in the host's peer group.
    let shares = opts.propagation.iter().any(|p| p & libc::MS_SHARED != 0);
    if from_host && !shares {
        set_propagation(tree.as_fd(), libc::MS_SLAVE | libc::MS_REC)
            .ctx("make the bind mount a slave")?;
    }
    if let Some((userns, recursive)) = idmap {
        smount::set_idmap(tree.as_fd(), userns, recursive)
            .map_err(|e| idmap_error(src, recursive, e))?;
    }
    if !attr_empty(&opts.attr) {
        smount::mount_setattr(tree.as_fd(), false, &opts.attr).ctx("set mount options")?;
    }
    if !attr_empty(&opts.rec_attr) {
        smount::mount_setattr(tree.as_fd(), true, &opts.rec_attr)
            .ctx("set recursive mount options")?;
    }
    Ok(tree)
}

/// What a failed `MOUNT_ATTR_IDMAP` means, for the user.
fn idmap_error(src: &Path, recursive: bool, e: std::io::Error) -> Error {
    let what = if recursive {
        "or one mounted under it (ridmap)"
    } else {
        ""
    };
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let msg = match e.raw_os_error() {
        Some(libc::EINVAL) => format!(
            "cannot make an idmapped mount of {}: its filesystem {what} does not support idmapped mounts on this kernel ({}); use a filesystem that does (ext4, xfs, btrfs, tmpfs since 6.3, overlay layers) or drop idmap",
            src.display(),
            kernel.trim()
        ),
        Some(libc::ENOSYS) => format!(
            "cannot make an idmapped mount of {}: this kernel ({}) has no mount_setattr (Linux 5.12 or later needed)",
            src.display(),
            kernel.trim()
        ),
        Some(libc::EPERM) => format!(
            "cannot make an idmapped mount of {}: not permitted (idmapped mounts need root over the source's filesystem, which a rootless runtime lacks; the maps cannot come from the host's own user namespace)",
            src.display()
        ),
        _ => format!("cannot make an idmapped mount of {}: {e}", src.display()),
    };
    Error::Usage(msg.replace("  ", " "))
}

impl Rootfs<'_> {
    /// Waits for the runtime's word that we are in our cgroups (or that
    /// they exist, for us to move in), if that is still to come.
    pub fn wait_placed(&self) -> Result<()> {
        let Some(chan) = self.await_placed.take() else {
            return Ok(());
        };
        match chan.expect("the runtime placed it in its cgroups")? {
            Msg::Placed => self.placed(),
            other => Err(Error::Usage(format!(
                "unexpected message {other:?} while waiting for cgroup placement"
            ))),
        }
    }

    /// The runtime's word that we are placed (or may place ourselves) came.
    fn placed(&self) -> Result<()> {
        match self.cgroup.filter(|_| self.self_place) {
            Some(cg) => Ok(cg.join_v1_self()?),
            None => Ok(()),
        }
    }

    /// Has the runtime make `tree` (our clone of idmapped mount `index`'s
    /// source) idmapped.
    fn request_idmap(&self, index: usize, tree: &OwnedFd) -> Result<()> {
        self.chan.send_fd(&Msg::Idmap { index }, tree.as_fd())?;
        self.await_answer("the runtime made the mount idmapped", |m| {
            matches!(m, Msg::IdmapDone)
        })
        .map(drop)
    }

    /// Has the runtime open bind mount `index`'s source, which we may not
    /// reach, in our mount namespace (see [`BindTrees::open_source`]).
    fn request_source(&self, index: usize) -> Result<OwnedFd> {
        self.chan.send(&Msg::Source { index })?;
        self.await_answer("the runtime opened the bind source", |m| {
            matches!(m, Msg::SourceFd)
        })?
        .ok_or_else(|| Error::Usage("the runtime sent no bind source".into()))
    }

    /// The runtime's answer (`is_it`), with its fd. Its word that we are
    /// placed in our cgroups may come first: taken as
    /// [`Self::wait_placed`] would.
    fn await_answer(&self, what: &str, is_it: impl Fn(&Msg) -> bool) -> Result<Option<OwnedFd>> {
        loop {
            match self.chan.expect_fd(what)? {
                (m, fd) if is_it(&m) => return Ok(fd),
                (Msg::Placed, _) if self.await_placed.take().is_some() => self.placed()?,
                (other, _) => {
                    return Err(Error::Usage(format!(
                        "unexpected message {other:?} while waiting until {what}"
                    )))
                }
            }
        }
    }

    /// Our clone of bind mount `index`'s source, made in our mount
    /// namespace (where the kernel locks the submounts of what came from
    /// the host): by path, or where we may not reach it (EACCES, EPERM)
    /// and we have a user namespace, from the runtime's fd on it.
    fn own_clone(&self, index: usize, src: &Path, opts: &MountOptions) -> Result<OwnedFd> {
        match clone_source(src, opts, false, None) {
            Err(Error::Io { cause, .. })
                if self.userns
                    && matches!(cause.raw_os_error(), Some(libc::EACCES) | Some(libc::EPERM)) =>
            {
                let fd = self.request_source(index)?;
                clone_fd(fd.as_fd(), src, opts, false, None)
            }
            r => r,
        }
    }
}

fn mnt_err(what: String) -> impl FnOnce(std::io::Error) -> Error {
    move |cause| Error::Io { op: what, cause }
}

fn propagation_flag(p: &str) -> u64 {
    match p {
        "shared" => libc::MS_SHARED,
        "rshared" => libc::MS_SHARED | libc::MS_REC,
        "slave" => libc::MS_SLAVE,
        "rslave" => libc::MS_SLAVE | libc::MS_REC,
        "private" => libc::MS_PRIVATE,
        "rprivate" => libc::MS_PRIVATE | libc::MS_REC,
        "unbindable" => libc::MS_UNBINDABLE,
        "runbindable" => libc::MS_UNBINDABLE | libc::MS_REC,
        _ => 0,
    }
}

/// Sets propagation (MS_SHARED, ... with MS_REC) on the mount an fd is on.
fn set_propagation(fd: BorrowedFd<'_>, prop: u64) -> std::io::Result<()> {
    let attr = MountAttr {
        propagation: prop & !libc::MS_REC,
        ..Default::default()
    };
    smount::mount_setattr(fd, prop & libc::MS_REC != 0, &attr)
}

fn attr_empty(a: &MountAttr) -> bool {
    a.attr_set == 0 && a.attr_clr == 0
}

impl Rootfs<'_> {
    fn linux(&self) -> Option<&oci_spec::runtime::Linux> {
        self.spec.linux().as_ref()
    }

    /// Everything before pivot_root. Returns an `O_PATH` fd on the new root.
    pub fn prepare(&self) -> Result<OwnedFd> {
        // An unbindable / could not be bound onto itself below: that one
        // is set in `finalize` only, and / is a slave until then.
        let prop = self
            .linux()
            .and_then(|l| l.rootfs_propagation().as_deref())
            .map(propagation_flag)
            .filter(|f| *f != 0 && *f & libc::MS_UNBINDABLE == 0)
            .unwrap_or(libc::MS_SLAVE | libc::MS_REC);
        // Nothing we mount may propagate back to the host (unless asked).
        smount::mount(None, c"/", None, prop, None).map_err(mnt_err(
            "set propagation of / (linux.rootfsPropagation)".into(),
        ))?;
        if prop & libc::MS_SHARED != 0 {
            if self.from_cwd {
                // The path may cross a directory the container's root
                // cannot search: act on the working directory's fd.
                make_cwd_mount_private(self.rootfs)?;
            } else {
                make_parent_mount_private(self.rootfs)?;
            }
        }
        let root = if self.from_cwd {
            // From the working directory (the rootfs, in our mount
            // namespace): a recursive clone of it attached onto it, the
            // clone's fd then the new root; no path is looked up.
            let here = sfs::open(
                Path::new("."),
                libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC,
                0,
            )
            .with_ctx(|| {
                format!(
                    "open rootfs {} (the working directory)",
                    self.rootfs.display()
                )
            })?;
            let tree = smount::open_tree(
                here.as_fd(),
                smount::OPEN_TREE_CLONE | libc::AT_RECURSIVE as u32,
            )
            .and_then(|t| smount::move_mount(t.as_fd(), here.as_fd()).map(|()| t))
            .map_err(mnt_err(format!(
                "bind-mount the rootfs {} onto itself",
                self.rootfs.display()
            )))?;
            tree
        } else {
            let rootfs_c = cstr(self.rootfs).ctx("rootfs path")?;
            smount::mount(
                Some(&rootfs_c),
                &rootfs_c,
                None,
                libc::MS_BIND | libc::MS_REC,
                None,
            )
            .map_err(mnt_err(format!(
                "bind-mount the rootfs {} onto itself",
                self.rootfs.display()
            )))?;
            sfs::open(self.rootfs, libc::O_PATH | libc::O_DIRECTORY, 0)
                .with_ctx(|| format!("open rootfs {}", self.rootfs.display()))?
        };

        let mounts = self.spec.mounts().as_deref().unwrap_or_default();
        let mount_at = |i: usize, m: &Mount| {
            let tree = self.bind_trees.get(i).and_then(|t| t.as_ref());
            self.mount_one(root.as_fd(), (i, m), tree).map_err(|e| {
                Error::Usage(format!("mounts[{i}] ({}): {e}", m.destination().display()))
            })
        };
        // A cgroup mount binds the cgroup directories the runtime is still
        // making (cgroup v1: see `wait_placed`). It goes last when that
        // changes nothing (no later mount at, above or below it), so that
        // the mounts after it need not wait.
        let dests: Vec<PathBuf> = mounts.iter().map(|m| clean_path(m.destination())).collect();
        let mut deferred = Vec::new();
        for (i, m) in mounts.iter().enumerate() {
            if self.await_placed.get().is_some() && is_cgroup(m) && last_at(&dests, i) {
                deferred.push(i);
                continue;
            }
            mount_at(i, m)?;
        }
        for i in deferred {
            mount_at(i, &mounts[i])?;
        }
        let has_mount = |p: &str| {
            mounts
                .iter()
                .any(|m| clean_path(m.destination()) == Path::new(p))
        };
        if has_mount("/dev") {
            // The runtime-spec's default filesystems, when the config gives
            // a /dev of its own but not these.
            if !has_mount("/dev/pts") {
                self.mount_fs(
                    root.as_fd(),
                    Path::new("/dev/pts"),
                    "devpts",
                    "devpts",
                    libc::MS_NOSUID | libc::MS_NOEXEC,
                    Some("newinstance,ptmxmode=0666,mode=0620"),
                )?;
            }
            if !has_mount("/dev/shm") {
                self.mount_fs(
                    root.as_fd(),
                    Path::new("/dev/shm"),
                    "shm",
                    "tmpfs",
                    libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC,
                    Some("mode=1777,size=65536k"),
                )?;
            }
        }
        self.create_devices(root.as_fd())?;
        // A missing working directory is created, as runc and crun do
        // (images often name a WORKDIR they never made).
        if let Some(cwd) = self.spec.process().as_ref().map(|p| p.cwd()) {
            sfs::mkdir_all_in_root(root.as_fd(), cwd, Links::InRoot)
                .with_ctx(|| format!("create process.cwd {}", cwd.display()))?;
        }
        Ok(root)
    }

    fn mount_one(
        &self,
        root: BorrowedFd<'_>,
        (index, m): (usize, &Mount),
        tree: Option<&OwnedFd>,
    ) -> Result<()> {
        let opts = mounts::parse_options(m.options().as_deref().unwrap_or_default())
            .map_err(|e| Error::Usage(e.replace('\0', " ")))?;
        let typ = mounts::mount_type(m, &opts);
        let dest = clean_path(m.destination());
        if typ == "bind" || opts.is_bind() {
            return self.bind_mount(root, (index, m), &dest, &opts, tree);
        }
        if typ == "cgroup" || typ == "cgroup2" {
            return self.cgroup_mount(root, &dest, &opts);
        }
        let source = m
            .source()
            .as_ref()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| typ.clone());
        let mut flags = opts.flags;
        if dest == Path::new("/dev") && flags & libc::MS_RDONLY != 0 {
            flags &= !libc::MS_RDONLY;
            self.dev_readonly.set(true);
        }
        if typ == "sysfs" && !self.netns_new {
            // Without a network namespace of its own, /sys/class/net would
            // show (and let root change) the host's interfaces.
            flags |= libc::MS_RDONLY;
        }
        // procfs and sysfs only on an ordinary directory (as runc): an
        // image whose /proc is a symlink could point the runtime's procfs
        // into a volume another container shares and races mounts on, and
        // redirect later /proc writes (CVE-2025-52881, CVE-2019-19921).
        let links = if matches!(typ.as_str(), "proc" | "sysfs") {
            Links::Refuse
        } else {
            Links::InRoot
        };
        let dest_fd = sfs::mkdir_all_in_root(root, &dest, links).map_err(|e| {
            if e.raw_os_error() == Some(libc::ELOOP) {
                Error::Usage(format!(
                    "{typ} must be mounted on an ordinary directory, but {} is or passes through a symlink in the rootfs; refusing",
                    dest.display()
                ))
            } else {
                Error::Io {
                    op: format!("create mount point {}", dest.display()),
                    cause: e,
                }
            }
        })?;
        let copy_from = if opts.tmpcopyup {
            Some(
                sfs::openat(
                    dest_fd.as_fd(),
                    Path::new("."),
                    libc::O_RDONLY | libc::O_DIRECTORY,
                    0,
                )
                .ctx("open directory for tmpcopyup")?,
            )
        } else {
            None
        };
        let label = self
            .spec
            .linux()
            .as_ref()
            .and_then(|l| l.mount_label().as_deref());
        let data = crate::lsm::with_mount_label(opts.data_string(), &typ, label);
        match self.mount_at(dest_fd.as_fd(), &source, &typ, flags, data.as_deref()) {
            Err(e)
                if typ == "sysfs"
                    && self.userns
                    && matches!(e.raw_os_error(), Some(libc::EPERM) | Some(libc::EBUSY)) =>
            {
                // A user namespace without its own network namespace may not
                // mount sysfs; give it the host's, read-only, as runc does.
                bind_host_readonly(Path::new("/sys"), dest_fd.as_fd())?;
            }
            Err(e) => return Err(mnt_err(format!("mount {typ} on {}", dest.display()))(e)),
            Ok(()) => {}
        }
        if !opts.propagation.is_empty() || !attr_empty(&opts.rec_attr) || copy_from.is_some() {
            let mnt =
                sfs::open_in_root(root, &dest, libc::O_PATH | libc::O_DIRECTORY, Links::InRoot)
                    .ctx("reopen mount")?;
            if !attr_empty(&opts.rec_attr) {
                smount::mount_setattr(mnt.as_fd(), true, &opts.rec_attr)
                    .ctx("set recursive mount options")?;
            }
            for p in &opts.propagation {
                set_propagation(mnt.as_fd(), *p).ctx("set mount propagation")?;
            }
            if let Some(src) = copy_from {
                let dst = sfs::open_in_root(
                    root,
                    &dest,
                    libc::O_RDONLY | libc::O_DIRECTORY,
                    Links::InRoot,
                )
                .ctx("reopen tmpfs")?;
                copy_tree(src.as_fd(), dst.as_fd())
                    .ctx("copy the directory's contents up into the tmpfs (tmpcopyup)")?;
            }
        }
        Ok(())
    }

    /// Classic mount(2) onto the object behind `dest`.
    fn mount_at(
        &self,
        dest: BorrowedFd<'_>,
        source: &str,
        typ: &str,
        flags: u64,
        data: Option<&str>,
    ) -> std::io::Result<()> {
        let target = fd_path(dest.as_raw_fd());
        let src =
            CString::new(source).map_err(|_| std::io::Error::from_raw_os_error(libc::EINVAL))?;
        let t = CString::new(typ).map_err(|_| std::io::Error::from_raw_os_error(libc::EINVAL))?;
        let d = data
            .map(CString::new)
            .transpose()
            .map_err(|_| std::io::Error::from_raw_os_error(libc::EINVAL))?;
        smount::mount(Some(&src), &target, Some(&t), flags, d.as_deref())
    }

    fn mount_fs(
        &self,
        root: BorrowedFd<'_>,
        dest: &Path,
        source: &str,
        typ: &str,
        flags: u64,
        data: Option<&str>,
    ) -> Result<()> {
        let fd = sfs::mkdir_all_in_root(root, dest, Links::Refuse)
            .with_ctx(|| format!("create {}", dest.display()))?;
        self.mount_at(fd.as_fd(), source, typ, flags, data)
            .map_err(mnt_err(format!("mount {typ} on {}", dest.display())))
    }

    fn bind_mount(
        &self,
        root: BorrowedFd<'_>,
        (index, m): (usize, &Mount),
        dest: &Path,
        opts: &MountOptions,
        tree: Option<&OwnedFd>,
    ) -> Result<()> {
        let src = bind_source(m, self.bundle);
        // Cloned here, in the container's mount namespace, where the
        // kernel locks the submounts of what came from the host (a
        // container's root cannot unmount them to see what they cover);
        // see `own_clone`. An idmapped mount: with a user namespace, our
        // clone made idmapped by the runtime (we may not: see
        // `BindTrees::set_idmap`); without, the runtime's (we are the
        // host's root: no submount is locked for us anyway).
        if mounts::idmap_of(m, opts).is_some() && !self.userns {
            let made = tree.ok_or_else(|| {
                Error::Usage("the runtime prepared no idmapped tree for this mount".into())
            })?;
            return self.attach_bind(root, dest, &src, opts, made);
        }
        let own = self.own_clone(index, &src, opts)?;
        if mounts::idmap_of(m, opts).is_some() {
            self.request_idmap(index, &own)?;
        }
        self.attach_bind(root, dest, &src, opts, &own)
    }

    /// Attaches a bind mount's detached `tree` at `dest`.
    fn attach_bind(
        &self,
        root: BorrowedFd<'_>,
        dest: &Path,
        src: &Path,
        opts: &MountOptions,
        tree: &OwnedFd,
    ) -> Result<()> {
        let st = sfs::fstat(tree.as_fd()).ctx("stat bind source")?;
        let is_dir = st.st_mode & libc::S_IFMT == libc::S_IFDIR;
        let dest_fd = if is_dir {
            sfs::mkdir_all_in_root(root, dest, Links::InRoot)
        } else {
            sfs::mkfile_in_root(root, dest, Links::InRoot)
        }
        .with_ctx(|| format!("create mount point {}", dest.display()))?;
        smount::move_mount(tree.as_fd(), dest_fd.as_fd())
            .with_ctx(|| format!("bind {} on {}", src.display(), dest.display()))?;
        for p in &opts.propagation {
            set_propagation(tree.as_fd(), *p).ctx("set mount propagation")?;
        }
        Ok(())
    }

    /// A cgroup filesystem for the container: its own cgroup, read-only
    /// unless the options say otherwise.
    fn cgroup_mount(&self, root: BorrowedFd<'_>, dest: &Path, opts: &MountOptions) -> Result<()> {
        // The cgroup directories exist once we are placed in them.
        self.wait_placed()?;
        let dest_fd = sfs::mkdir_all_in_root(root, dest, Links::InRoot)
            .with_ctx(|| format!("create mount point {}", dest.display()))?;
        let Some(cg) = self.cgroup else {
            // Rootless without a delegated cgroup: the host's hierarchies,
            // read-only, as runc gives them.
            return bind_host_readonly(Path::new("/sys/fs/cgroup"), dest_fd.as_fd());
        };
        let bind_dir = |dir: &Path, at: BorrowedFd<'_>| -> Result<()> {
            let src = sfs::open(dir, libc::O_PATH | libc::O_DIRECTORY, 0)
                .with_ctx(|| format!("open cgroup {}", dir.display()))?;
            let tree = smount::open_tree(src.as_fd(), smount::OPEN_TREE_CLONE)
                .ctx("clone cgroup mount")?;
            let mut attr = opts.attr;
            attr.attr_set |= berth_sys::mount::MOUNT_ATTR_NOSUID
                | berth_sys::mount::MOUNT_ATTR_NODEV
                | berth_sys::mount::MOUNT_ATTR_NOEXEC;
            smount::mount_setattr(tree.as_fd(), false, &attr).ctx("set cgroup mount options")?;
            smount::move_mount(tree.as_fd(), at)
                .with_ctx(|| format!("bind cgroup {}", dir.display()))
        };
        if cg.version == berth_cgroups::Version::V2 {
            if self.cgroupns_new {
                // Read-only and the like go on the mount, not the shared
                // superblock: mount(2) with MS_RDONLY fails with EBUSY when
                // the host's cgroup2 superblock is read-write.
                let per_mount =
                    libc::MS_RDONLY | libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC;
                match self.mount_at(
                    dest_fd.as_fd(),
                    "cgroup2",
                    "cgroup2",
                    opts.flags & !per_mount,
                    None,
                ) {
                    Ok(()) => {
                        let mnt = sfs::open_in_root(
                            root,
                            dest,
                            libc::O_PATH | libc::O_DIRECTORY,
                            Links::InRoot,
                        )
                        .ctx("reopen the cgroup2 mount")?;
                        let mut attr = opts.attr;
                        attr.attr_set |= berth_sys::mount::MOUNT_ATTR_NOSUID
                            | berth_sys::mount::MOUNT_ATTR_NODEV
                            | berth_sys::mount::MOUNT_ATTR_NOEXEC;
                        return smount::mount_setattr(mnt.as_fd(), false, &attr)
                            .ctx("set cgroup2 mount options");
                    }
                    // Not allowed here (a user namespace that does not own
                    // the cgroup namespace): bind the container's cgroup.
                    Err(e) if matches!(e.raw_os_error(), Some(libc::EPERM) | Some(libc::EBUSY)) => {
                    }
                    Err(e) => return Err(mnt_err("mount cgroup2".into())(e)),
                }
            }
            return bind_dir(&cg.dirs[0].path, dest_fd.as_fd());
        }
        // v1 and hybrid: a tmpfs holding one directory per hierarchy.
        self.mount_at(
            dest_fd.as_fd(),
            "tmpfs",
            "tmpfs",
            libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC,
            Some("mode=755"),
        )
        .map_err(mnt_err(format!("mount tmpfs on {}", dest.display())))?;
        let top = sfs::open_in_root(root, dest, libc::O_PATH | libc::O_DIRECTORY, Links::InRoot)
            .ctx("reopen cgroup tmpfs")?;
        for d in &cg.dirs {
            let name = if d.v2 {
                "unified".to_string()
            } else {
                d.controllers
                    .iter()
                    .map(|c| c.trim_start_matches("name="))
                    .collect::<Vec<_>>()
                    .join(",")
            };
            let sub = sfs::mkdir_all_in_root(top.as_fd(), Path::new(&name), Links::Refuse)
                .with_ctx(|| format!("create {}/{name}", dest.display()))?;
            bind_dir(&d.path, sub.as_fd())?;
            if d.controllers.len() > 1 {
                for c in &d.controllers {
                    let _ = sfs::symlinkat(
                        Path::new(&name),
                        top.as_fd(),
                        Path::new(c.trim_start_matches("name=")),
                    );
                }
            }
        }
        if !attr_empty(&opts.attr) {
            smount::mount_setattr(top.as_fd(), false, &opts.attr)
                .ctx("set cgroup tmpfs options")?;
        }
        Ok(())
    }

    fn create_devices(&self, root: BorrowedFd<'_>) -> Result<()> {
        let dev = match sfs::open_in_root(root, Path::new("/dev"), libc::O_PATH | libc::O_DIRECTORY, Links::Refuse) {
            Ok(fd) => fd,
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {
                sfs::mkdir_all_in_root(root, Path::new("/dev"), Links::Refuse).ctx("create /dev")?
            }
            Err(e) if matches!(e.raw_os_error(), Some(libc::ELOOP) | Some(libc::ENOTDIR) | Some(libc::EXDEV)) => {
                return Err(Error::Usage(
                    "the rootfs's /dev is a symlink or not a directory; refusing to create devices through it (mount a tmpfs on /dev)".into(),
                ))
            }
            Err(e) => return Err(e).ctx("open /dev in the rootfs"),
        };
        let mut devices: Vec<LinuxDevice> = default_devices();
        for d in self
            .linux()
            .and_then(|l| l.devices().as_ref())
            .into_iter()
            .flatten()
        {
            devices.retain(|x| x.path() != d.path());
            devices.push(d.clone());
        }
        for d in &devices {
            self.create_device(root, d)
                .with_ctx(|| format!("create device {}", d.path().display()))?;
        }
        let links: [(&str, &str); 5] = [
            ("fd", "/proc/self/fd"),
            ("stdin", "/proc/self/fd/0"),
            ("stdout", "/proc/self/fd/1"),
            ("stderr", "/proc/self/fd/2"),
            ("core", "/proc/kcore"),
        ];
        for (name, target) in links {
            // /dev/core only where the kernel has a /proc/kcore (runc's
            // rule): a dangling link is noise at best.
            if name == "core" && !Path::new("/proc/kcore").exists() {
                continue;
            }
            match sfs::symlinkat(Path::new(target), dev.as_fd(), Path::new(name)) {
                Err(e) if e.raw_os_error() != Some(libc::EEXIST) => {
                    return Err(e).with_ctx(|| format!("create /dev/{name}"))
                }
                _ => {}
            }
        }
        // /dev/ptmx must be the devpts instance's multiplexer.
        if sfs::open_in_root(
            root,
            Path::new("/dev/pts/ptmx"),
            libc::O_PATH,
            Links::Refuse,
        )
        .is_ok()
        {
            let _ = sfs::unlinkat(dev.as_fd(), Path::new("ptmx"), 0);
            sfs::symlinkat(Path::new("pts/ptmx"), dev.as_fd(), Path::new("ptmx"))
                .ctx("create /dev/ptmx")?;
        }
        Ok(())
    }

    fn create_device(&self, root: BorrowedFd<'_>, d: &LinuxDevice) -> std::io::Result<()> {
        let path = clean_path(d.path());
        let parent = path.parent().unwrap_or(Path::new("/"));
        let name = PathBuf::from(path.file_name().unwrap_or_default());
        let dir = sfs::mkdir_all_in_root(root, parent, Links::Refuse)?;
        let kind = match d.typ() {
            LinuxDeviceType::C | LinuxDeviceType::U => libc::S_IFCHR,
            LinuxDeviceType::B => libc::S_IFBLK,
            LinuxDeviceType::P => libc::S_IFIFO,
            LinuxDeviceType::A => {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::InvalidInput,
                    "type 'a' is for cgroup rules, not device nodes",
                ))
            }
        };
        let perm = d.file_mode().unwrap_or(0o666) & 0o7777;
        match sfs::unlinkat(dir.as_fd(), &name, 0) {
            Err(e) if e.raw_os_error() != Some(libc::ENOENT) => return Err(e),
            _ => {}
        }
        let beneath = sfs::RESOLVE_BENEATH | sfs::RESOLVE_NO_SYMLINKS;
        let open_node = || {
            sfs::openat2(
                dir.as_fd(),
                &name,
                libc::O_PATH | libc::O_NOFOLLOW,
                0,
                beneath,
            )
        };
        if self.userns && kind != libc::S_IFIFO {
            // mknod is not allowed in a user namespace: bind the host's node.
            drop(sfs::openat2(
                dir.as_fd(),
                &name,
                libc::O_CREAT | libc::O_EXCL | libc::O_WRONLY,
                0o600,
                beneath,
            )?);
            let target = open_node()?;
            let host = sfs::open(
                d.path(),
                libc::O_PATH | libc::O_NOFOLLOW | libc::O_CLOEXEC,
                0,
            )?;
            // The host's node at the container's path may be another
            // device (or none): bind only the one the spec describes.
            let st = sfs::fstat(host.as_fd())?;
            let want = sfs::makedev(d.major() as u64, d.minor() as u64);
            if st.st_mode & libc::S_IFMT != kind || st.st_rdev != want {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::InvalidInput,
                    format!(
                        "in a user namespace the device is bound from the host's {}, which is {} {}:{}, \
                         not the {} {}:{} the spec describes (bind the device from its host path \
                         with a mount instead)",
                        d.path().display(),
                        node_kind(st.st_mode & libc::S_IFMT),
                        libc::major(st.st_rdev),
                        libc::minor(st.st_rdev),
                        node_kind(kind),
                        d.major(),
                        d.minor()
                    ),
                ));
            }
            let tree = smount::open_tree(host.as_fd(), smount::OPEN_TREE_CLONE)?;
            return smount::move_mount(tree.as_fd(), target.as_fd());
        }
        let dev = sfs::makedev(d.major() as u64, d.minor() as u64);
        sfs::mknodat(
            dir.as_fd(),
            &name,
            kind | perm,
            if kind == libc::S_IFIFO { 0 } else { dev },
        )?;
        let node = open_node()?;
        sfs::fchmod_fd(node.as_fd(), perm)?; // mknod applied the umask
        sfs::fchown_fd(node.as_fd(), d.uid().unwrap_or(0), d.gid().unwrap_or(0))
    }

    /// pivot_root into the new root and detach the old one. With
    /// `no_pivot` (initramfs roots, where pivot_root is impossible) the
    /// rootfs is moved onto / and chrooted into instead.
    pub fn pivot(&self, root: OwnedFd, no_pivot: bool) -> Result<()> {
        if no_pivot {
            hide_full_proc_and_sys(self.rootfs)?;
            sfs::fchdir(root.as_fd()).ctx("enter the rootfs")?;
            drop(root);
            smount::mount(Some(c"."), c"/", None, libc::MS_MOVE, None)
                .ctx("move the rootfs onto / (--no-pivot)")?;
            sfs::chroot(c".").ctx("chroot into the rootfs (--no-pivot)")?;
        } else {
            let old_root = sfs::open(Path::new("/"), libc::O_PATH | libc::O_DIRECTORY, 0)
                .ctx("open the old root")?;
            sfs::fchdir(root.as_fd()).ctx("enter the rootfs")?;
            drop(root);
            sfs::pivot_root(c".", c".").ctx("pivot_root into the rootfs")?;
            // The old root is now stacked over the new one. Make it (and
            // only it: "." must be the old root's own mount, not the new
            // root under it, whose shared binds must stay shared) a slave so
            // that detaching it cannot propagate to the host, then detach.
            sfs::fchdir(old_root.as_fd()).ctx("enter the old root")?;
            drop(old_root);
            smount::mount(None, c".", None, libc::MS_SLAVE | libc::MS_REC, None)
                .ctx("make the old root a slave mount")?;
            smount::umount2(c".", libc::MNT_DETACH).ctx("detach the old root")?;
        }
        sfs::chdir(Path::new("/")).ctx("chdir to /")
    }

    /// After pivot_root: read-only root, read-only and masked paths,
    /// rootfsPropagation.
    pub fn finalize(&self) -> Result<()> {
        let slash = sfs::open(Path::new("/"), libc::O_PATH | libc::O_DIRECTORY, 0).ctx("open /")?;
        if self.spec.root().as_ref().and_then(|r| r.readonly()) == Some(true) {
            let ro = MountAttr {
                attr_set: berth_sys::mount::MOUNT_ATTR_RDONLY,
                ..Default::default()
            };
            smount::mount_setattr(slash.as_fd(), false, &ro)
                .ctx("make the rootfs read-only (root.readonly)")?;
        }
        if self.dev_readonly.get() {
            let dev = sfs::open(
                Path::new("/dev"),
                libc::O_PATH | libc::O_DIRECTORY | libc::O_NOFOLLOW,
                0,
            )
            .ctx("open /dev")?;
            let ro = MountAttr {
                attr_set: berth_sys::mount::MOUNT_ATTR_RDONLY,
                ..Default::default()
            };
            smount::mount_setattr(dev.as_fd(), false, &ro).ctx("make /dev read-only")?;
        }
        for p in self
            .linux()
            .and_then(|l| l.readonly_paths().as_ref())
            .into_iter()
            .flatten()
        {
            readonly_path(slash.as_fd(), Path::new(p))
                .with_ctx(|| format!("make {p} read-only (linux.readonlyPaths)"))?;
        }
        let masked = self.linux().and_then(|l| l.masked_paths().as_ref());
        if masked.is_some_and(|m| !m.is_empty()) {
            let null = verified_dev_null(slash.as_fd())?;
            for p in masked.into_iter().flatten() {
                mask_path(slash.as_fd(), null.as_fd(), Path::new(p))
                    .with_ctx(|| format!("mask {p} (linux.maskedPaths)"))?;
            }
        }
        if let Some(p) = self.linux().and_then(|l| l.rootfs_propagation().as_deref()) {
            let flag = propagation_flag(p);
            if flag != 0 {
                smount::mount(None, c"/", None, flag, None).ctx("set linux.rootfsPropagation")?;
            }
        }
        Ok(())
    }
}

/// Mount points of whole procfs and sysfs mounts (their root is the
/// filesystem's root) outside `rootfs`, from a mountinfo text.
fn full_proc_and_sys_outside(mountinfo: &str, rootfs: &Path) -> Vec<PathBuf> {
    let unescape = |s: &str| -> PathBuf {
        // mountinfo escapes space, tab, newline and backslash as \ooo.
        let b = s.as_bytes();
        let mut out = Vec::with_capacity(b.len());
        let mut i = 0;
        while i < b.len() {
            if b[i] == b'\\'
                && i + 3 < b.len()
                && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c))
            {
                out.push((b[i + 1] - b'0') * 64 + (b[i + 2] - b'0') * 8 + (b[i + 3] - b'0'));
                i += 4;
            } else {
                out.push(b[i]);
                i += 1;
            }
        }
        PathBuf::from(<std::ffi::OsString as std::os::unix::ffi::OsStringExt>::from_vec(out))
    };
    let mut found = Vec::new();
    for line in mountinfo.lines() {
        let f: Vec<&str> = line.split(' ').collect();
        let Some(sep) = f.iter().position(|x| *x == "-") else {
            continue;
        };
        let (Some(root), Some(point), Some(fstype)) = (f.get(3), f.get(4), f.get(sep + 1)) else {
            continue;
        };
        if *root != "/" || !matches!(*fstype, "proc" | "sysfs") {
            continue;
        }
        let point = unescape(point);
        if !point.starts_with(rootfs) {
            found.push(point);
        }
    }
    // Deepest first, so that a covered mount goes before what covers it.
    found.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
    found
}

/// With --no-pivot, the host's mounts stay in the container's mount
/// namespace under the chroot. The kernel lets a user namespace mount a
/// new procfs or sysfs only while a *whole* one is visible in its mount
/// namespace: the host's /proc and /sys would let a process in the
/// container mount a procfs without the masked paths. Each is detached,
/// or covered with a tmpfs where it may not be (a mount locked to its
/// parent), as runc does.
fn hide_full_proc_and_sys(rootfs: &Path) -> Result<()> {
    let text = std::fs::read_to_string("/proc/self/mountinfo").ctx("read /proc/self/mountinfo")?;
    for p in full_proc_and_sys_outside(&text, rootfs) {
        let c = cstr(&p).ctx("mount point path")?;
        match smount::mount(None, &c, None, libc::MS_SLAVE | libc::MS_REC, None) {
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => continue,
            r => r.map_err(mnt_err(format!(
                "make {} a slave (--no-pivot)",
                p.display()
            )))?,
        }
        match smount::umount2(&c, libc::MNT_DETACH) {
            Ok(()) => {}
            Err(e) if matches!(e.raw_os_error(), Some(libc::EINVAL) | Some(libc::EPERM)) => {
                smount::mount(Some(c"tmpfs"), &c, Some(c"tmpfs"), 0, None).map_err(mnt_err(
                    format!("cover {} with a tmpfs (--no-pivot)", p.display()),
                ))?;
            }
            Err(e) => return Err(mnt_err(format!("detach {} (--no-pivot)", p.display()))(e)),
        }
    }
    Ok(())
}

/// The container's /dev/null, checked to be the real null device (1:3) and
/// not a symlink or another file an image put there (CVE-2025-31133).
pub(crate) fn verified_dev_null(root: BorrowedFd<'_>) -> Result<OwnedFd> {
    let fd = sfs::open_in_root(
        root,
        Path::new("/dev/null"),
        libc::O_PATH | libc::O_NOFOLLOW,
        Links::Refuse,
    )
    .ctx("open /dev/null to mask paths with")?;
    let st = sfs::fstat(fd.as_fd()).ctx("stat /dev/null")?;
    if !crate::process_attrs::is_dev_null(&st) {
        return Err(Error::Usage("/dev/null in the container is not the null device (1:3); refusing to mask paths with it".into()));
    }
    Ok(fd)
}

fn mask_path(root: BorrowedFd<'_>, null: BorrowedFd<'_>, p: &Path) -> std::io::Result<()> {
    let target = match sfs::open_in_root(root, p, libc::O_PATH, Links::InRoot) {
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => return Ok(()),
        other => other?,
    };
    let st = sfs::fstat(target.as_fd())?;
    if st.st_mode & libc::S_IFMT == libc::S_IFDIR {
        let t = fd_path(target.as_raw_fd());
        smount::mount(
            Some(c"tmpfs"),
            &t,
            Some(c"tmpfs"),
            libc::MS_RDONLY | libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC,
            None,
        )
    } else {
        let tree = smount::open_tree(null, smount::OPEN_TREE_CLONE)?;
        smount::move_mount(tree.as_fd(), target.as_fd())
    }
}

fn readonly_path(root: BorrowedFd<'_>, p: &Path) -> std::io::Result<()> {
    let target = match sfs::open_in_root(root, p, libc::O_PATH, Links::InRoot) {
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => return Ok(()),
        other => other?,
    };
    bind_readonly(target.as_fd(), target.as_fd())
}

/// A recursive bind of `src` on `at`, read-only, nosuid, nodev and noexec
/// all the way down.
fn bind_readonly(src: BorrowedFd<'_>, at: BorrowedFd<'_>) -> std::io::Result<()> {
    let tree = smount::open_tree(src, smount::OPEN_TREE_CLONE | libc::AT_RECURSIVE as u32)?;
    let ro = MountAttr {
        attr_set: berth_sys::mount::MOUNT_ATTR_RDONLY
            | berth_sys::mount::MOUNT_ATTR_NOSUID
            | berth_sys::mount::MOUNT_ATTR_NODEV
            | berth_sys::mount::MOUNT_ATTR_NOEXEC,
        ..Default::default()
    };
    smount::mount_setattr(tree.as_fd(), true, &ro)?;
    smount::move_mount(tree.as_fd(), at)
}

/// The host's `path` (still visible: we are before pivot_root), bound
/// read-only on `at`.
fn bind_host_readonly(path: &Path, at: BorrowedFd<'_>) -> Result<()> {
    let host = sfs::open(path, libc::O_PATH | libc::O_DIRECTORY, 0)
        .with_ctx(|| format!("open {}", path.display()))?;
    bind_readonly(host.as_fd(), at)
        .with_ctx(|| format!("bind the host's {} read-only", path.display()))
}

/// The devices every container gets (runtime-spec "Default Devices").
pub fn default_devices() -> Vec<LinuxDevice> {
    [
        ("/dev/null", 1, 3),
        ("/dev/zero", 1, 5),
        ("/dev/full", 1, 7),
        ("/dev/random", 1, 8),
        ("/dev/urandom", 1, 9),
        ("/dev/tty", 5, 0),
    ]
    .into_iter()
    .map(|(p, major, minor)| {
        let mut d = LinuxDevice::default();
        d.set_path(PathBuf::from(p));
        d.set_typ(LinuxDeviceType::C);
        d.set_major(major);
        d.set_minor(minor);
        d.set_file_mode(Some(0o666));
        d.set_uid(Some(0));
        d.set_gid(Some(0));
        d
    })
    .collect()
}

/// pivot_root refuses a new root, or a parent of it, on a shared mount:
/// make the mount holding the rootfs private (only when rootfsPropagation
/// is shared). That is the rootfs itself when it is a mount point (a
/// shared one would otherwise also put the container's mounts in the
/// host's peer group), else the mount it lives on.
fn make_parent_mount_private(rootfs: &Path) -> Result<()> {
    let mi = std::fs::read_to_string("/proc/self/mountinfo").ctx("read /proc/self/mountinfo")?;
    let best = mi
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .map(|mp| PathBuf::from(sfs::unescape_mountinfo(mp)))
        .filter(|mp| rootfs.starts_with(mp))
        .max_by_key(|mp| mp.components().count())
        .unwrap_or_else(|| PathBuf::from("/"));
    let c = cstr(&best).ctx("mount point path")?;
    smount::mount(None, &c, None, libc::MS_PRIVATE, None)
        .with_ctx(|| format!("make {} private for pivot_root", best.display()))
}

/// A file type's name, for messages.
fn node_kind(fmt: libc::mode_t) -> &'static str {
    match fmt {
        libc::S_IFCHR => "character device",
        libc::S_IFBLK => "block device",
        libc::S_IFIFO => "fifo",
        libc::S_IFDIR => "directory",
        libc::S_IFREG => "regular file",
        libc::S_IFLNK => "symlink",
        _ => "special file",
    }
}

/// [`make_parent_mount_private`] for a rootfs reached from the working
/// directory: when the rootfs is a mount (berth's overlay), that mount is
/// made private through its fd, no path being walked; otherwise the
/// enclosing mount is found by path as before.
fn make_cwd_mount_private(rootfs: &Path) -> Result<()> {
    let here = sfs::open(
        Path::new("."),
        libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC,
        0,
    )
    .with_ctx(|| format!("open rootfs {} (the working directory)", rootfs.display()))?;
    // SAFETY: a zeroed statx is a valid out-buffer; the empty path with
    // AT_EMPTY_PATH names the fd itself.
    let mut stx: libc::statx = unsafe { std::mem::zeroed() };
    // SAFETY: valid fd, NUL-terminated empty path, writable buffer.
    berth_sys::cvt(unsafe {
        libc::statx(
            here.as_raw_fd(),
            berth_sys::EMPTY.as_ptr(),
            libc::AT_EMPTY_PATH,
            0,
            &mut stx,
        )
    })
    .with_ctx(|| format!("stat rootfs {} (the working directory)", rootfs.display()))?;
    let mount_root = libc::STATX_ATTR_MOUNT_ROOT as u64;
    if stx.stx_attributes_mask & mount_root == 0 || stx.stx_attributes & mount_root == 0 {
        return make_parent_mount_private(rootfs);
    }
    smount::mount(
        None,
        &fd_path(here.as_raw_fd()),
        None,
        libc::MS_PRIVATE,
        None,
    )
    .with_ctx(|| format!("make {} private for pivot_root", rootfs.display()))
}

/// Copies a directory tree (tmpcopyup) as `cp -a` would: directories,
/// files, symlinks, fifos and device nodes, with modes, owners and times.
/// Sockets are skipped (they mean nothing without their listener); hard
/// links become separate copies; extended attributes are not copied.
fn copy_tree(src: BorrowedFd<'_>, dst: BorrowedFd<'_>) -> std::io::Result<()> {
    use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
    let src_path = PathBuf::from(fd_path(src.as_raw_fd()).to_string_lossy().into_owned());
    for entry in std::fs::read_dir(&src_path)? {
        let entry = entry?;
        let name = entry.file_name();
        let meta = entry.path().symlink_metadata()?;
        let ft = meta.file_type();
        if ft.is_dir() {
            sfs::mkdirat(dst, Path::new(&name), meta.mode() & 0o7777)?;
            let s = sfs::openat(
                src,
                Path::new(&name),
                libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW,
                0,
            )?;
            let d = sfs::openat(
                dst,
                Path::new(&name),
                libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW,
                0,
            )?;
            copy_tree(s.as_fd(), d.as_fd())?;
        } else if ft.is_symlink() {
            let target = std::fs::read_link(entry.path())?;
            sfs::symlinkat(&target, dst, Path::new(&name))?;
        } else if ft.is_fifo() || ft.is_char_device() || ft.is_block_device() {
            sfs::mknodat(dst, Path::new(&name), meta.mode(), meta.rdev())?;
        } else if ft.is_file() {
            let mut s = std::fs::File::from(sfs::openat(
                src,
                Path::new(&name),
                libc::O_RDONLY | libc::O_NOFOLLOW,
                0,
            )?);
            let mut d = std::fs::File::from(sfs::openat(
                dst,
                Path::new(&name),
                libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL,
                meta.mode() & 0o7777,
            )?);
            std::io::copy(&mut s, &mut d)?;
            d.set_permissions(std::fs::Permissions::from_mode(meta.mode() & 0o7777))?;
        } else {
            continue;
        }
        let fd = sfs::openat2(
            dst,
            Path::new(&name),
            libc::O_PATH | libc::O_NOFOLLOW,
            0,
            sfs::RESOLVE_BENEATH,
        )?;
        sfs::fchown_fd(fd.as_fd(), meta.uid(), meta.gid())?;
        if !ft.is_symlink() {
            // chown clears set-id bits: put the mode back.
            sfs::fchmod_fd(fd.as_fd(), meta.mode() & 0o7777)?;
        }
        // Last: filling a directory changes its mtime.
        sfs::set_times_nofollow(
            dst,
            Path::new(&name),
            (meta.atime(), meta.atime_nsec()),
            (meta.mtime(), meta.mtime_nsec()),
        )?;
    }
    Ok(())
}

/// Whether a mount is a cgroup filesystem (not a bind of one).
fn is_cgroup(m: &Mount) -> bool {
    mounts::parse_options(m.options().as_deref().unwrap_or_default())
        .map(|o| matches!(mounts::mount_type(m, &o).as_str(), "cgroup" | "cgroup2"))
        .unwrap_or(false)
}

/// Whether mount `i` can be made after all the others without changing the
/// result: no later destination is the same, above it or below it.
fn last_at(dests: &[PathBuf], i: usize) -> bool {
    dests[i + 1..]
        .iter()
        .all(|d| !d.starts_with(&dests[i]) && !dests[i].starts_with(d))
}

#[cfg(test)]
mod order_tests {
    use super::*;

    #[test]
    fn whole_proc_and_sys_mounts_outside_the_rootfs_are_found() {
        let mi = "22 1 0:21 / /proc rw,nosuid - proc proc rw\n\
                  23 1 0:22 / /sys rw - sysfs sysfs rw\n\
                  24 22 0:23 / /proc/sys/fs/binfmt_misc rw - binfmt_misc b rw\n\
                  25 1 0:21 /sys /mnt/partial rw - proc proc rw\n\
                  26 1 0:21 / /b/root/proc rw - proc proc rw\n\
                  27 1 0:21 / /with\\040space rw - proc proc rw\n";
        assert_eq!(
            full_proc_and_sys_outside(mi, Path::new("/b/root")),
            [
                PathBuf::from("/proc"),
                PathBuf::from("/sys"),
                PathBuf::from("/with space")
            ]
        );
    }

    #[test]
    fn a_mount_goes_last_only_when_no_later_one_overlaps_it() {
        let d = |v: &[&str]| v.iter().map(PathBuf::from).collect::<Vec<_>>();
        let docker = d(&[
            "/proc",
            "/dev",
            "/sys",
            "/sys/fs/cgroup",
            "/dev/mqueue",
            "/dev/shm",
            "/etc/hosts",
        ]);
        assert!(last_at(&docker, 3));
        assert!(!last_at(&docker, 1), "/dev has /dev/mqueue after it");
        assert!(!last_at(&d(&["/sys/fs/cgroup", "/sys/fs/cgroup/x"]), 0));
        assert!(!last_at(&d(&["/sys/fs/cgroup", "/sys/fs"]), 0));
        assert!(!last_at(&d(&["/sys/fs/cgroup", "/sys/fs/cgroup"]), 0));
        assert!(last_at(&d(&["/sys/fs/cgroup", "/sys/fs/cgroupx"]), 0));
        assert!(last_at(&d(&["/x"]), 0));
    }
}
