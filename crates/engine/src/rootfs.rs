//! The container's root filesystem: an overlay of the image's unpacked
//! layers (read-only, top first) under the container's own `upper/` and
//! `work/` directories (persistent), mounted on a directory of the run root
//! (tmpfs) in the host's mount namespace while the container runs (as
//! podman and containerd do), and removed with the container.

use crate::error::{io, Error, Result};
use std::path::{Path, PathBuf};

/// The kernel reads mount options from one page.
const MAX_OPTIONS: usize = 4000;

/// Overlay options for `layers` (bottom first, as stored) and the
/// container's directory `dir`. `volatile` (for `--rm` containers, whose
/// upper layer never outlives them): no syncs of the upper layer, not even
/// at unmount, as podman does; after a crash such an upper layer is refused
/// by the kernel, and the container is removed anyway.
pub fn overlay_options(
    layers: &[PathBuf],
    dir: &Path,
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
    if lower.is_empty() {
        // An image without layers (scratch): overlay needs one lower dir.
        lower.push(check(empty)?);
    }
    let mut opts = format!(
        "lowerdir={},upperdir={},workdir={}",
        lower.join(":"),
        check(&dir.join("upper"))?,
        check(&dir.join("work"))?
    );
    if volatile {
        opts.push_str(",volatile");
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
    let target = target.to_path_buf();
    for d in [dir.join("upper"), dir.join("work"), target.clone()] {
        std::fs::create_dir_all(&d).map_err(io(format!("create {}", d.display())))?;
    }
    if is_mounted(&target) {
        return Ok(target);
    }
    std::fs::create_dir_all(empty).map_err(io(format!("create {}", empty.display())))?;
    let opts = overlay_options(layers, dir, empty, volatile)?;
    let t = berth_sys::cstr(&target).map_err(io("mount path"))?;
    let data = std::ffi::CString::new(opts).map_err(|_| Error::Runtime("NUL in a path".into()))?;
    berth_sys::mount::mount(
        Some(c"overlay"),
        &t,
        Some(c"overlay"),
        libc::MS_NODEV,
        Some(&data),
    )
    .map_err(io(format!(
        "mount the container's overlay root filesystem at {}",
        target.display()
    )))?;
    Ok(target)
}

/// Unmounts `target` if mounted (detaching if busy), and removes the
/// empty mount point.
pub fn unmount(target: &Path) -> Result<()> {
    let target = target.to_path_buf();
    if !is_mounted(&target) {
        let _ = std::fs::remove_dir(&target);
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
    // rmdir only removes an empty directory: never a mounted tree.
    let _ = std::fs::remove_dir(&target);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_put_the_top_layer_first() {
        let layers = vec![PathBuf::from("/l/base"), PathBuf::from("/l/top")];
        let o = overlay_options(&layers, Path::new("/c/id"), Path::new("/e"), false).unwrap();
        assert_eq!(
            o,
            "lowerdir=/l/top:/l/base,upperdir=/c/id/upper,workdir=/c/id/work"
        );
        let o = overlay_options(&[], Path::new("/c/id"), Path::new("/e"), true).unwrap();
        assert!(o.starts_with("lowerdir=/e,") && o.ends_with(",volatile"));
        assert!(overlay_options(
            &[PathBuf::from("/a:b")],
            Path::new("/c"),
            Path::new("/e"),
            false
        )
        .is_err());
        let many: Vec<PathBuf> = (0..100)
            .map(|i| PathBuf::from(format!("/var/lib/berth/layers/{i:064}")))
            .collect();
        let e = overlay_options(&many, Path::new("/c"), Path::new("/e"), false).unwrap_err();
        assert!(e.to_string().contains("100 layers"), "{e}");
    }
}
