//! The container's root filesystem: an overlay of the image's unpacked
//! layers (read-only, top first) under the container's own `upper/` and
//! `work/` directories (persistent), mounted on a directory of the run root
//! (tmpfs) in the host's mount namespace while the container runs (as
//! podman and containerd do), and removed with the container.

use crate::error::{io, Error, Result};
use crate::userns::Userns;
use std::path::{Path, PathBuf};

/// The kernel reads mount options from one page.
const MAX_OPTIONS: usize = 4000;

/// Overlay options for `layers` (bottom first, as stored) and the
/// container's directory `dir`, whose `upper/` and `work/` it takes; with
/// no `dir`, a read-only overlay of the layers alone (which overlay takes
/// from two lower layers: `empty` makes up the second when there is one).
/// `volatile` (for `--rm` containers, whose
/// upper layer never outlives them, and a build's RUN steps, whose changes
/// the build syncs as it stores them): no syncs of the upper layer, not
/// even at unmount (which would sync the whole filesystem under it), as
/// podman does for `--rm`; after a crash such an upper layer is refused by
/// the kernel, and the container is removed anyway.
pub fn overlay_options(
    layers: &[PathBuf],
    dir: Option<&Path>,
    empty: &Path,
    volatile: bool,
) -> Result<String> {
    let check = |p: &Path| -> Result<String> {
        let s = p.to_string_lossy();
        if s.contains([',', ':', '\n']) {
            return Err(Error::Runtime(format!(
                "{}: overlay cannot use a path with ',' or ':'; move the berth root elsewhere",
                p.display()
            )));
        }
        Ok(s.into_owned())
    };
    let mut lower: Vec<String> = Vec::new();
    for l in layers.iter().rev() {
        lower.push(check(l)?);
    }
    // An image without layers (scratch): overlay needs one lower dir, two
    // without an upper one.
    let least = if dir.is_some() { 1 } else { 2 };
    if lower.len() < least {
        lower.push(check(empty)?);
    }
    let mut opts = format!("lowerdir={}", lower.join(":"));
    if let Some(dir) = dir {
        opts.push_str(&format!(
            ",upperdir={},workdir={}",
            check(&dir.join("upper"))?,
            check(&dir.join("work"))?
        ));
        if volatile {
            opts.push_str(",volatile");
        }
    }
    if opts.len() > MAX_OPTIONS {
        return Err(Error::Runtime(format!(
            "the image has {} layers: too many for one overlay mount ({} bytes of options, the kernel takes {MAX_OPTIONS}); squash the image",
            layers.len(),
            opts.len()
        )));
    }
    Ok(opts)
}

/// Whether an overlay is mounted at `target`: an overlayfs whose device
/// differs from its parent directory's (no read of /proc/self/mountinfo,
/// which grows with every container).
pub fn is_mounted(target: &Path) -> bool {
    const OVERLAYFS_SUPER_MAGIC: i64 = 0x794c_7630;
    use std::os::unix::fs::MetadataExt;
    let (Ok(t), Some(parent)) = (std::fs::symlink_metadata(target), target.parent()) else {
        return false;
    };
    let Ok(p) = std::fs::symlink_metadata(parent) else {
        return false;
    };
    if t.dev() == p.dev() {
        return false;
    }
    berth_sys::fs::open(
        target,
        libc::O_PATH | libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_CLOEXEC,
        0,
    )
    .and_then(|fd| berth_sys::fs::fs_magic(std::os::fd::AsFd::as_fd(&fd)))
    .is_ok_and(|m| m == OVERLAYFS_SUPER_MAGIC)
}

/// Mounts the overlay of `layers` with `dir`'s upper and work directories
/// at `target` (no-op if mounted).
pub fn mount(
    layers: &[PathBuf],
    dir: &Path,
    target: &Path,
    empty: &Path,
    volatile: bool,
) -> Result<PathBuf> {
    mount_with(layers, dir, target, empty, volatile, None)
}

/// [`mount`] for a container with a user namespace: its idmapped root.
/// Each image layer (and the init layer) is an idmapped mount with the
/// container's maps, so that a file the image gives to uid N shows as the
/// host id the container's N is, and the overlay is made over those: no
/// file is copied or chowned, whatever the image's size. The top of the
/// upper layer is given to the container's root (its contents, made by
/// copy-up and by the container, already have the mapped ids).
///
/// The overlay itself cannot be idmapped (overlayfs refuses
/// `MOUNT_ATTR_IDMAP`; Linux 6.18 still does), its layers can (Linux 5.19
/// and later). Newer kernels take the layers as detached mounts, named by
/// fd; older ones only attached: there the layers are attached under
/// `dir`/idmapped for the length of the overlay mount, as containerd does,
/// and detached right after (the overlay keeps its own private clones).
/// Where the image store's filesystem cannot be idmapped, this fails
/// saying so: it never falls back to a slow chown copy.
pub fn mount_idmapped(
    layers: &[PathBuf],
    dir: &Path,
    target: &Path,
    empty: &Path,
    volatile: bool,
    userns: &Userns,
    how: LayerMounts,
) -> Result<PathBuf> {
    mount_with(layers, dir, target, empty, volatile, Some((userns, how)))
}

/// How idmapped layers are handed to overlayfs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum LayerMounts {
    /// Detached, named by fd, where the kernel takes that; else attached.
    #[default]
    Detached,
    /// Attached under the container's directory, as older kernels need
    /// (for tests of that way on newer kernels).
    Attached,
}

/// Mounts a read-only overlay of `layers` (bottom first, at least one)
/// at `target` (no-op if mounted): no upper or work directory, so nothing
/// is made for it but the mount point (for a pod's infra, whose root
/// nothing writes: its image and init layer hold every mount point).
pub fn mount_read_only(layers: &[PathBuf], target: &Path, empty: &Path) -> Result<PathBuf> {
    std::fs::create_dir_all(target).map_err(io(format!("create {}", target.display())))?;
    if is_mounted(target) {
        return Ok(target.to_path_buf());
    }
    std::fs::create_dir_all(empty).map_err(io(format!("create {}", empty.display())))?;
    let opts = overlay_options(layers, None, empty, false)?;
    let t = berth_sys::cstr(target).map_err(io("mount path"))?;
    let data = std::ffi::CString::new(opts).map_err(|_| Error::Runtime("NUL in a path".into()))?;
    berth_sys::mount::mount(
        Some(c"overlay"),
        &t,
        Some(c"overlay"),
        libc::MS_NODEV | libc::MS_RDONLY,
        Some(&data),
    )
    .map_err(io(format!(
        "mount the container's read-only overlay root filesystem at {}",
        target.display()
    )))?;
    make_private(&t, target)?;
    Ok(target.to_path_buf())
}

/// Makes the overlay just mounted at `target` (`t`) a private mount:
/// under a shared parent (systemd makes / shared) the new mount is shared
/// too, and a container whose root propagation is shared (a bind with
/// `rshared`) would send its /proc, /dev and the rest back here.
fn make_private(t: &std::ffi::CStr, target: &Path) -> Result<()> {
    berth_sys::mount::mount(None, t, None, libc::MS_PRIVATE, None).map_err(io(format!(
        "make the overlay at {} a private mount",
        target.display()
    )))
}

fn mount_with(
    layers: &[PathBuf],
    dir: &Path,
    target: &Path,
    empty: &Path,
    volatile: bool,
    idmap: Option<(&Userns, LayerMounts)>,
) -> Result<PathBuf> {
    let target = target.to_path_buf();
    for d in [dir.join("upper"), dir.join("work"), target.clone()] {
        std::fs::create_dir_all(&d).map_err(io(format!("create {}", d.display())))?;
    }
    // What a mount killed before it detached its attached layers left
    // (see `attached_layers`): detached whether or not the overlay is up.
    detach_idmapped(dir);
    if is_mounted(&target) {
        return Ok(target);
    }
    std::fs::create_dir_all(empty).map_err(io(format!("create {}", empty.display())))?;
    let t = berth_sys::cstr(&target).map_err(io("mount path"))?;
    let mount_overlay = |layers: &[PathBuf]| -> Result<std::result::Result<(), std::io::Error>> {
        let opts = overlay_options(layers, Some(dir), empty, volatile)?;
        let data =
            std::ffi::CString::new(opts).map_err(|_| Error::Runtime("NUL in a path".into()))?;
        Ok(berth_sys::mount::mount(
            Some(c"overlay"),
            &t,
            Some(c"overlay"),
            libc::MS_NODEV,
            Some(&data),
        ))
    };
    let failed = |e| {
        io(format!(
            "mount the container's overlay root filesystem at {}",
            target.display()
        ))(e)
    };
    match idmap {
        None => mount_overlay(layers)?.map_err(failed)?,
        Some((userns, how)) => {
            let (uid, gid) = userns.root().ok_or_else(|| {
                Error::Runtime(
                    "the user namespace maps no container root (uid and gid 0): its root filesystem could not be owned by it; map 0 with --uidmap/--gidmap".into(),
                )
            })?;
            let upper = dir.join("upper");
            std::os::unix::fs::chown(&upper, Some(uid), Some(gid)).map_err(io(format!(
                "give {} to the container's root",
                upper.display()
            )))?;
            let idmapped = idmapped_layers(layers, empty, userns)?;
            let by_fd: Vec<PathBuf> = idmapped.iter().map(|(_, p)| p.clone()).collect();
            let r = if how == LayerMounts::Detached {
                mount_overlay(&by_fd)?
            } else {
                Err(std::io::Error::from_raw_os_error(libc::EINVAL))
            };
            match r {
                Ok(()) => {}
                // Detached layers are refused before Linux 6.15.
                Err(e) if e.raw_os_error() == Some(libc::EINVAL) => {
                    let staging = dir.join("idmapped");
                    let r = attached_layers(&staging, idmapped, mount_overlay);
                    r?.map_err(|e| {
                        let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
                            .unwrap_or_default();
                        if e.raw_os_error() == Some(libc::EINVAL) {
                            Error::Runtime(format!(
                                "mount the container's idmapped root at {}: this kernel ({}) refuses an overlay of idmapped layers (Linux 5.19 or later takes them); use --userns host",
                                target.display(),
                                kernel.trim()
                            ))
                        } else {
                            failed(e)
                        }
                    })?;
                }
                Err(e) => return Err(failed(e)),
            }
        }
    }
    make_private(&t, &target)?;
    Ok(target)
}

/// Each of `layers` (or `empty` when there are none) as a detached
/// idmapped mount with the maps of `userns`, with the path that names it
/// (`/proc/self/fd/N`, valid while the fd is open).
fn idmapped_layers(
    layers: &[PathBuf],
    empty: &Path,
    userns: &Userns,
) -> Result<Vec<(std::os::fd::OwnedFd, PathBuf)>> {
    use std::os::fd::{AsFd, AsRawFd};
    let ns = berth_sys::userns::new_userns(
        &crate::userns::ranges(&userns.uids),
        &crate::userns::ranges(&userns.gids),
    )
    .map_err(io(
        "make a user namespace holding the container's id maps (for its idmapped root)",
    ))?;
    let one = [empty.to_path_buf()];
    let layers = if layers.is_empty() { &one[..] } else { layers };
    let mut out = Vec::with_capacity(layers.len());
    for l in layers {
        let dir = berth_sys::fs::open(l, libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC, 0)
            .map_err(io(format!("open image layer {}", l.display())))?;
        let tree = berth_sys::mount::open_tree(dir.as_fd(), berth_sys::mount::OPEN_TREE_CLONE)
            .map_err(io(format!("clone a mount of image layer {}", l.display())))?;
        berth_sys::mount::set_idmap(tree.as_fd(), ns.as_fd(), false).map_err(|e| {
            let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
            match e.raw_os_error() {
                Some(libc::EINVAL) | Some(libc::ENOSYS) => Error::Runtime(format!(
                    "make image layer {} an idmapped mount: its filesystem does not support idmapped mounts on this kernel ({}); put the berth root on ext4, xfs or btrfs, or use --userns host",
                    l.display(),
                    kernel.trim()
                )),
                _ => io(format!("make image layer {} an idmapped mount", l.display()))(e),
            }
        })?;
        // Read-only: a layer is the image's, shared by its containers, and
        // nothing writes to a lower layer through the overlay; an
        // attached clone left behind (see `attached_layers`) cannot then
        // be written through either. Private: not in the store mount's
        // peer group.
        berth_sys::mount::mount_setattr(
            tree.as_fd(),
            false,
            &berth_sys::mount::MountAttr {
                attr_set: berth_sys::mount::MOUNT_ATTR_RDONLY,
                propagation: libc::MS_PRIVATE,
                ..Default::default()
            },
        )
        .map_err(io(format!(
            "make the idmapped mount of image layer {} read-only",
            l.display()
        )))?;
        let path = PathBuf::from(format!("/proc/self/fd/{}", tree.as_raw_fd()));
        out.push((tree, path));
    }
    Ok(out)
}

/// Runs `f` with the paths of `layers` attached under `staging` (each at
/// `staging`/N), then detaches them all, whatever `f` returned. `staging`
/// is first made a private mount of its own (bound onto itself), so that
/// under a shared parent (systemd makes / shared) no attached layer
/// propagates to the parent's peers. What an earlier run killed in
/// between left there is detached first.
fn attached_layers<T>(
    staging: &Path,
    layers: Vec<(std::os::fd::OwnedFd, PathBuf)>,
    f: impl FnOnce(&[PathBuf]) -> Result<T>,
) -> Result<T> {
    use std::os::fd::AsFd;
    detach_staged(staging);
    std::fs::create_dir_all(staging).map_err(io(format!("create {}", staging.display())))?;
    let s = berth_sys::cstr(staging).map_err(io("mount path"))?;
    berth_sys::mount::mount(Some(&s), &s, None, libc::MS_BIND, None)
        .and_then(|()| berth_sys::mount::mount(None, &s, None, libc::MS_PRIVATE, None))
        .map_err(|e| {
            detach_staged(staging);
            io(format!("make {} a private mount", staging.display()))(e)
        })?;
    let mut paths = Vec::with_capacity(layers.len());
    let mut result = Ok(());
    for (i, (tree, _)) in layers.iter().enumerate() {
        let at = staging.join(i.to_string());
        let r = std::fs::create_dir_all(&at)
            .and_then(|()| {
                berth_sys::fs::open(&at, libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC, 0)
            })
            .and_then(|fd| berth_sys::mount::move_mount(tree.as_fd(), fd.as_fd()));
        if let Err(e) = r {
            result = Err(io(format!(
                "attach an idmapped image layer at {}",
                at.display()
            ))(e));
            break;
        }
        paths.push(at);
    }
    let r = result.and_then(|()| f(&paths));
    detach_staged(staging);
    r
}

/// Detaches what a mount of `dir`'s idmapped root attached under
/// `dir`/idmapped and did not detach (a process killed in between), and
/// removes those mount points: before `dir` is removed (whose removal
/// would otherwise cross into the image's layers) or mounted again.
pub fn detach_idmapped(dir: &Path) {
    detach_staged(&dir.join("idmapped"));
}

/// Detaches and removes what is mounted under `staging`/N, and `staging`'s
/// own mount.
pub(crate) fn detach_staged(staging: &Path) {
    let Ok(entries) = std::fs::read_dir(staging) else {
        return;
    };
    for e in entries.flatten() {
        let _ = detach_point(&e.path());
    }
    let _ = detach_point(staging);
}

/// Detaches each mount stacked on `point`, however many, then removes
/// `point` (a directory, or a pinned file's point); nothing there: Ok.
/// The first failure to detach is returned, after the removal is tried.
pub(crate) fn detach_point(point: &Path) -> std::io::Result<()> {
    let c = berth_sys::cstr(point)?;
    let mut failed = None;
    for _ in 0..64 {
        match berth_sys::mount::umount2(&c, libc::MNT_DETACH | libc::UMOUNT_NOFOLLOW) {
            Ok(()) => {}
            // EINVAL: nothing is left mounted there.
            Err(e) if matches!(e.raw_os_error(), Some(libc::EINVAL | libc::ENOENT)) => break,
            Err(e) => {
                failed = Some(e);
                break;
            }
        }
    }
    let removed = match std::fs::remove_dir(point) {
        Err(e) if e.raw_os_error() == Some(libc::ENOTDIR) => std::fs::remove_file(point),
        r => r,
    };
    match (failed, removed) {
        (Some(e), _) => Err(e),
        (None, Err(e)) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

/// The mount points every container's runtime needs in its root, as
/// (path, directory?): made in an image's init layer when the image lacks
/// them ([`ensure_init_layer`]).
const INIT_ENTRIES: [(&str, bool); 6] = [
    ("proc", true),
    ("dev", true),
    ("sys", true),
    ("etc/hosts", false),
    ("etc/hostname", false),
    ("etc/resolv.conf", false),
];

/// Makes `init` (if missing): the init layer of the image whose layer
/// directories are `layers` (bottom first), a read-only layer mounted
/// above them in each of its containers' overlays. It holds the mount
/// points of [`INIT_ENTRIES`] that the image lacks, so that the runtime
/// does not create them in every container's upper layer (an overlay
/// copy-up each, milliseconds in all), as Docker's init layer does, made
/// once per image rather than per container. Only what the image lacks is
/// made, under directories the image has as directories (or lacks): a
/// symlinked /etc or an /etc/hosts of any kind is left to the runtime, as
/// before. A made directory that shadows the image's (the root, /etc)
/// keeps its mode, owner and times.
///
/// `tmp` is a directory on `init`'s filesystem; the layer is made there
/// and renamed into place, so a layer that exists is whole, and of two
/// processes making it at once one wins.
pub fn ensure_init_layer(layers: &[PathBuf], init: &Path, tmp: &Path) -> Result<()> {
    use std::os::fd::AsFd;
    if init.is_dir() {
        return Ok(());
    }
    let open_dir = |p: &Path| {
        berth_sys::fs::open(p, libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC, 0)
            .map_err(io(format!("open {}", p.display())))
    };
    // The image's root as its containers see it: its layers merged, in a
    // detached read-only overlay (one layer is its own view).
    let dirs = layers
        .iter()
        .rev()
        .map(|l| open_dir(l))
        .collect::<Result<Vec<_>>>()?;
    let view = match dirs.as_slice() {
        [] => {
            return Err(Error::Runtime(
                "an image without layers has no init layer".into(),
            ))
        }
        [one] => one.try_clone().map_err(io("duplicate a layer's fd"))?,
        _ => {
            let fds: Vec<_> = dirs.iter().map(|d| d.as_fd()).collect();
            berth_sys::mount::detached_overlay(&fds)
                .map_err(io("mount the image's layers (read-only, detached)"))?
        }
    };
    let work = tmp.join(format!("init-{}", crate::paths::new_id()?));
    std::fs::create_dir(&work).map_err(io(format!("create {}", work.display())))?;
    let made = fill_init_layer(view.as_fd(), &work).and_then(|()| {
        std::fs::rename(&work, init).map_err(io(format!(
            "rename {} to {}",
            work.display(),
            init.display()
        )))
    });
    if made.is_err() {
        let _ = berth_image::remove_all(&work);
    }
    match made {
        // Made meanwhile by another process: theirs is the same.
        Err(_) if init.is_dir() => Ok(()),
        r => r,
    }
}

/// Makes in `work` the entries of [`INIT_ENTRIES`] that `view` (the
/// image's merged root) lacks.
fn fill_init_layer(view: std::os::fd::BorrowedFd<'_>, work: &Path) -> Result<()> {
    use std::os::fd::AsFd;
    use std::os::unix::fs::PermissionsExt;
    // No component may be a symlink: an image's links are not followed.
    let lstat = |rel: &Path| -> std::io::Result<libc::stat> {
        let fd = berth_sys::fs::open_in_root(
            view,
            rel,
            libc::O_PATH | libc::O_NOFOLLOW,
            berth_sys::fs::Links::Refuse,
        )?;
        berth_sys::fs::fstat(fd.as_fd())
    };
    let is_dir = |st: &libc::stat| st.st_mode & libc::S_IFMT == libc::S_IFDIR;
    let wfd = berth_sys::fs::open(work, libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC, 0)
        .map_err(io(format!("open {}", work.display())))?;
    // A made directory takes the attributes of the image's directory it
    // shadows.
    let like = |made: &Path, st: &libc::stat| -> Result<()> {
        let fd = berth_sys::fs::open(
            made,
            libc::O_RDONLY | libc::O_DIRECTORY | libc::O_CLOEXEC,
            0,
        )
        .map_err(io(format!("open {}", made.display())))?;
        berth_sys::fs::fchown_fd(fd.as_fd(), st.st_uid, st.st_gid)
            .and_then(|()| berth_sys::fs::fchmod_fd(fd.as_fd(), st.st_mode & 0o7777))
            .and_then(|()| {
                berth_sys::fs::set_times_fd(
                    fd.as_fd(),
                    (st.st_atime, st.st_atime_nsec),
                    (st.st_mtime, st.st_mtime_nsec),
                )
            })
            .map_err(io(format!("set the attributes of {}", made.display())))
    };
    // What is made has its mode whatever the umask.
    let make = |rel: &Path, dir: bool| -> Result<()> {
        let p = work.join(rel);
        let (r, mode) = if dir {
            (berth_sys::fs::mkdirat(wfd.as_fd(), rel, 0o755), 0o755)
        } else {
            let flags =
                libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL | libc::O_NOFOLLOW | libc::O_CLOEXEC;
            (
                berth_sys::fs::openat(wfd.as_fd(), rel, flags, 0o644).map(drop),
                0o644,
            )
        };
        r.and_then(|()| std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)))
            .map_err(io(format!("create {}", p.display())))
    };
    for (rel, dir) in INIT_ENTRIES {
        let rel = Path::new(rel);
        match lstat(rel) {
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {}
            // There (of any kind), or beyond a link: the runtime's business.
            _ => continue,
        }
        if let Some(parent) = rel.parent().filter(|p| !p.as_os_str().is_empty()) {
            if !work.join(parent).is_dir() {
                match lstat(parent) {
                    Ok(st) if is_dir(&st) => {
                        make(parent, true)?;
                        like(&work.join(parent), &st)?;
                    }
                    Err(e) if e.raw_os_error() == Some(libc::ENOENT) => make(parent, true)?,
                    _ => continue,
                }
            }
        }
        make(rel, dir)?;
    }
    // The layer's root shadows the image's, made or empty.
    let st = berth_sys::fs::fstat(view).map_err(io("stat the image's root"))?;
    like(work, &st)
}

/// Unmounts `target` if mounted (detaching if busy), and removes the
/// empty mount point.
pub fn unmount(target: &Path) -> Result<()> {
    unmount_into(target, None)
}

/// [`unmount`], then the empty mount point is renamed to `trash` (when
/// given and possible) rather than removed: for a caller whose trash is
/// emptied after it returns (removing a directory on a disk mounted with
/// `discard` waits for the disk). The kernel neither renames nor removes a
/// directory that is still a mount point (EBUSY), so a mounted tree never
/// goes to the trash.
pub fn unmount_into(target: &Path, trash: Option<&Path>) -> Result<()> {
    let target = target.to_path_buf();
    let dispose = |t: &Path| {
        if trash.is_none_or(|to| std::fs::rename(t, to).is_err()) {
            let _ = std::fs::remove_dir(t);
        }
    };
    if !is_mounted(&target) {
        dispose(&target);
        return Ok(());
    }
    let t = berth_sys::cstr(&target).map_err(io("mount path"))?;
    match berth_sys::mount::umount2(&t, 0) {
        Ok(()) => {}
        Err(e) if e.raw_os_error() == Some(libc::EBUSY) => {
            berth_sys::mount::umount2(&t, libc::MNT_DETACH)
                .map_err(io(format!("unmount {}", target.display())))?
        }
        Err(e) if e.raw_os_error() == Some(libc::EINVAL) => {}
        Err(e) => return Err(io(format!("unmount {}", target.display()))(e)),
    }
    // rmdir only removes an empty directory, and neither it nor rename
    // touches one that is still a mount point.
    dispose(&target);
    Ok(())
}

/// How the mount a host path is on propagates, from /proc/self/mountinfo's
/// optional fields.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Propagation {
    pub shared: bool,
    pub slave: bool,
}

/// The mount point `path` (absolute, links resolved) is on and how it
/// propagates, in the text of a mountinfo file: the longest mount point
/// that is `path` or one of its parents, the last one when mounts are
/// stacked.
pub fn propagation_in(mountinfo: &str, path: &Path) -> Option<(PathBuf, Propagation)> {
    let mut best: Option<(PathBuf, Propagation)> = None;
    for line in mountinfo.lines() {
        let fields: Vec<&str> = line.split(' ').collect();
        let Some(mp) = fields.get(4) else { continue };
        let mp = PathBuf::from(berth_sys::fs::unescape_mountinfo(mp));
        if !path.starts_with(&mp) {
            continue;
        }
        if best
            .as_ref()
            .is_some_and(|(b, _)| b.as_os_str().len() > mp.as_os_str().len())
        {
            continue;
        }
        let mut p = Propagation::default();
        for f in fields.iter().skip(6).take_while(|f| **f != "-") {
            p.shared |= f.starts_with("shared:");
            p.slave |= f.starts_with("master:");
        }
        best = Some((mp, p));
    }
    best
}

/// A bind's source must be on a shared mount for `shared`/`rshared` (and
/// on a shared or slave one for `slave`/`rslave`) to mean anything, as
/// Docker checks: else the container's mounts would silently stay apart.
pub fn check_propagation(source: &Path, mode: &str) -> Result<()> {
    let need_shared = matches!(mode, "shared" | "rshared");
    if !need_shared && !matches!(mode, "slave" | "rslave") {
        return Ok(());
    }
    let real = std::fs::canonicalize(source)
        .map_err(io(format!("resolve the bind source {}", source.display())))?;
    let info =
        std::fs::read_to_string("/proc/self/mountinfo").map_err(io("read /proc/self/mountinfo"))?;
    let (mp, p) = propagation_in(&info, &real).unwrap_or_default();
    if p.shared || (!need_shared && p.slave) {
        return Ok(());
    }
    Err(crate::error::option(
        "--volume/--mount",
        format!(
            "{}:{mode}: {} is on the mount {}, which is not {}; make it so (mount --make-{}shared {}) or drop {mode:?}",
            source.display(),
            real.display(),
            mp.display(),
            if need_shared { "shared" } else { "shared or a slave" },
            if mode.starts_with('r') { "r" } else { "" },
            mp.display(),
        ),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Layers attached under a shared parent (systemd makes / shared) are
    /// private: the staging directory is a private mount of its own, and
    /// nothing attached there reaches the parent's peers. Needs root.
    #[test]
    fn layers_attached_under_a_shared_parent_are_private() {
        use std::os::fd::AsFd;
        let tmp = tempfile::tempdir().unwrap();
        let parent = tmp.path().join("shared");
        let layer = tmp.path().join("layer");
        std::fs::create_dir_all(&parent).unwrap();
        std::fs::create_dir_all(&layer).unwrap();
        let p = berth_sys::cstr(&parent).unwrap();
        berth_sys::mount::mount(Some(&p), &p, None, libc::MS_BIND, None)
            .expect("bind a directory (the test needs root)");
        berth_sys::mount::mount(None, &p, None, libc::MS_SHARED, None).unwrap();
        let dir = berth_sys::fs::open(
            &layer,
            libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC,
            0,
        )
        .unwrap();
        let tree =
            berth_sys::mount::open_tree(dir.as_fd(), berth_sys::mount::OPEN_TREE_CLONE).unwrap();
        let staging = parent.join("idmapped");
        let seen = attached_layers(&staging, vec![(tree, layer.clone())], |paths| {
            let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
            Ok(paths
                .iter()
                .chain([&staging])
                .map(|at| {
                    let line = info
                        .lines()
                        .rfind(|l| l.split(' ').nth(4) == Some(&*at.to_string_lossy()))
                        .unwrap_or_default()
                        .to_string();
                    (at.clone(), line)
                })
                .collect::<Vec<_>>())
        });
        let _ = berth_sys::mount::umount2(&p, libc::MNT_DETACH);
        for (at, line) in seen.unwrap() {
            assert!(!line.is_empty(), "{} is not a mount", at.display());
            let optional = line.split(" - ").next().unwrap_or_default();
            assert!(
                !optional.contains("shared:"),
                "{} propagates: {line}",
                at.display()
            );
        }
        assert!(!staging.exists());
    }

    #[test]
    fn a_paths_mount_and_its_propagation_are_found() {
        let info = "\
27 1 254:0 / / rw,relatime - ext4 /dev/vda rw
40 27 0:50 / /srv rw shared:5 - tmpfs t rw
41 40 0:51 / /srv/a\\040b rw master:5 - tmpfs t rw
42 40 0:52 / /srv/a rw - tmpfs t rw
43 42 0:53 / /srv/a rw shared:9 master:5 - tmpfs t rw
";
        let f = |p: &str| propagation_in(info, Path::new(p)).unwrap();
        let (mp, p) = f("/home/x");
        assert_eq!((mp.as_path(), p), (Path::new("/"), Propagation::default()));
        assert_eq!(
            f("/srv/data").1,
            Propagation {
                shared: true,
                slave: false
            }
        );
        assert_eq!(f("/srv/a b/c").0, Path::new("/srv/a b"));
        assert!(f("/srv/a b/c").1.slave);
        // Not a prefix by bytes: /srv/ab is on /srv.
        assert_eq!(f("/srv/ab").0, Path::new("/srv"));
        // Stacked: the last one counts.
        assert_eq!(
            f("/srv/a").1,
            Propagation {
                shared: true,
                slave: true
            }
        );
        assert!(propagation_in("garbage\n\n", Path::new("/x")).is_none());
    }

    #[test]
    fn options_put_the_top_layer_first() {
        let layers = vec![PathBuf::from("/l/base"), PathBuf::from("/l/top")];
        let o = overlay_options(&layers, Some(Path::new("/c/id")), Path::new("/e"), false).unwrap();
        assert_eq!(
            o,
            "lowerdir=/l/top:/l/base,upperdir=/c/id/upper,workdir=/c/id/work"
        );
        let o = overlay_options(&[], Some(Path::new("/c/id")), Path::new("/e"), true).unwrap();
        assert!(o.starts_with("lowerdir=/e,") && o.ends_with(",volatile"));
        assert!(overlay_options(
            &[PathBuf::from("/a:b")],
            Some(Path::new("/c")),
            Path::new("/e"),
            false
        )
        .is_err());
        let many: Vec<PathBuf> = (0..100)
            .map(|i| PathBuf::from(format!("/var/lib/berth/layers/{i:064}")))
            .collect();
        let e = overlay_options(&many, Some(Path::new("/c")), Path::new("/e"), false).unwrap_err();
        assert!(e.to_string().contains("100 layers"), "{e}");
        // Read-only: the layers alone, two at least.
        let o = overlay_options(&layers, None, Path::new("/e"), false).unwrap();
        assert_eq!(o, "lowerdir=/l/top:/l/base");
        let o = overlay_options(&layers[..1], None, Path::new("/e"), false).unwrap();
        assert_eq!(o, "lowerdir=/l/base:/e");
    }

    #[test]
    fn an_unmounted_root_goes_to_the_trash_and_a_mounted_one_never_does() {
        let tmp = tempfile::tempdir().unwrap();
        let lower = tmp.path().join("lower");
        std::fs::create_dir(&lower).unwrap();
        let n = std::cell::Cell::new(0);
        let overlay = |at: &Path| {
            n.set(n.get() + 1);
            let (upper, work) = (
                tmp.path().join(format!("upper{}", n.get())),
                tmp.path().join(format!("work{}", n.get())),
            );
            std::fs::create_dir(&upper).unwrap();
            std::fs::create_dir(&work).unwrap();
            let opts = format!(
                "lowerdir={},upperdir={},workdir={}",
                lower.display(),
                upper.display(),
                work.display()
            );
            let (t, o) = (
                berth_sys::cstr(at).unwrap(),
                std::ffi::CString::new(opts).unwrap(),
            );
            berth_sys::mount::mount(Some(c"overlay"), &t, Some(c"overlay"), 0, Some(&o))
                .expect("mount an overlay (the test needs root)");
        };
        // Mounted once: unmounted, then moved to the trash.
        let target = tmp.path().join("rootfs");
        std::fs::create_dir(&target).unwrap();
        overlay(&target);
        std::fs::write(target.join("inside"), b"x").unwrap();
        let trash = tmp.path().join("trash-rootfs");
        unmount_into(&target, Some(&trash)).unwrap();
        assert!(!target.exists());
        assert!(trash.is_dir() && !is_mounted(&trash));
        assert_eq!(std::fs::read_dir(&trash).unwrap().count(), 0);
        // Without a trash: removed.
        std::fs::create_dir(&target).unwrap();
        unmount_into(&target, None).unwrap();
        assert!(!target.exists());
        // Two mounts stacked: one unmount leaves a mount point, which is
        // neither moved nor removed.
        std::fs::create_dir(&target).unwrap();
        overlay(&target);
        overlay(&target);
        let trash2 = tmp.path().join("trash2");
        unmount_into(&target, Some(&trash2)).unwrap();
        assert!(is_mounted(&target), "still a mount point");
        assert!(!trash2.exists());
        unmount_into(&target, Some(&trash2)).unwrap();
        assert!(!target.exists() && trash2.is_dir());
    }

    #[test]
    fn the_init_layer_holds_what_the_image_lacks_and_no_more() {
        use std::os::unix::fs::{MetadataExt, PermissionsExt};
        let tmp = tempfile::tempdir().unwrap();
        let layer = tmp.path().join("layer");
        std::fs::create_dir_all(layer.join("etc")).unwrap();
        std::fs::create_dir_all(layer.join("dev")).unwrap();
        std::fs::write(layer.join("etc/hostname"), "image's\n").unwrap();
        std::fs::set_permissions(&layer, std::fs::Permissions::from_mode(0o751)).unwrap();
        std::fs::set_permissions(layer.join("etc"), std::fs::Permissions::from_mode(0o705))
            .unwrap();
        let work_tmp = tmp.path().join("tmp");
        std::fs::create_dir(&work_tmp).unwrap();
        let init = tmp.path().join("layer.init");
        ensure_init_layer(std::slice::from_ref(&layer), &init, &work_tmp).unwrap();
        let mut got: Vec<String> = walk(&init);
        got.sort();
        assert_eq!(
            got,
            ["etc", "etc/hosts", "etc/resolv.conf", "proc", "sys"],
            "what the image has (dev, etc/hostname) is not made"
        );
        // Directories that shadow the image's keep their attributes.
        let meta = |p: &Path| std::fs::symlink_metadata(p).unwrap();
        assert_eq!(meta(&init).mode() & 0o7777, 0o751);
        assert_eq!(meta(&init.join("etc")).mode() & 0o7777, 0o705);
        assert_eq!(
            meta(&init.join("etc")).mtime(),
            meta(&layer.join("etc")).mtime()
        );
        assert_eq!(meta(&init.join("proc")).mode() & 0o7777, 0o755);
        assert_eq!(meta(&init.join("etc/hosts")).mode() & 0o7777, 0o644);
        assert_eq!(meta(&init.join("etc/hosts")).len(), 0);
        // Made once: a second call keeps it; nothing is left in tmp.
        std::fs::write(init.join("etc/hosts"), "kept").unwrap();
        ensure_init_layer(&[layer], &init, &work_tmp).unwrap();
        assert_eq!(
            std::fs::read_to_string(init.join("etc/hosts")).unwrap(),
            "kept"
        );
        assert_eq!(std::fs::read_dir(&work_tmp).unwrap().count(), 0);
    }

    #[test]
    fn the_init_layer_does_not_follow_or_replace_the_images_links() {
        let tmp = tempfile::tempdir().unwrap();
        let outside = tmp.path().join("outside");
        std::fs::create_dir(&outside).unwrap();
        let layer = tmp.path().join("layer");
        std::fs::create_dir(&layer).unwrap();
        // /etc a link out of the root, /proc a dangling link.
        std::os::unix::fs::symlink(&outside, layer.join("etc")).unwrap();
        std::os::unix::fs::symlink("/nowhere", layer.join("proc")).unwrap();
        let work_tmp = tmp.path().join("tmp");
        std::fs::create_dir(&work_tmp).unwrap();
        let init = tmp.path().join("layer.init");
        ensure_init_layer(&[layer], &init, &work_tmp).unwrap();
        let mut got = walk(&init);
        got.sort();
        assert_eq!(got, ["dev", "sys"]);
        assert_eq!(std::fs::read_dir(&outside).unwrap().count(), 0);
        assert!(ensure_init_layer(&[], &tmp.path().join("none"), &work_tmp).is_err());
    }

    /// Every path under `root`, relative.
    fn walk(root: &Path) -> Vec<String> {
        let mut out = Vec::new();
        let mut stack = vec![root.to_path_buf()];
        while let Some(d) = stack.pop() {
            for e in std::fs::read_dir(&d).unwrap().flatten() {
                let p = e.path();
                out.push(p.strip_prefix(root).unwrap().to_string_lossy().into_owned());
                if e.file_type().unwrap().is_dir() {
                    stack.push(p);
                }
            }
        }
        out
    }
}
