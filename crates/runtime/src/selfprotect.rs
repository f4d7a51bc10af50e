//! Keeps the runtime binary out of the container's reach (CVE-2019-5736):
//! before a command that puts runtime processes into a container (create,
//! run, exec), the runtime re-executes itself once from a copy no
//! container can write. See `berth_sys::selfexe`.

use crate::error::{Context, Error, Result};
use berth_sys::selfexe::{self, Protection};
use std::ffi::CString;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

/// Set in the environment of the re-executed runtime, so that a copy that
/// is somehow still writable fails instead of re-executing forever.
const MARK: &str = "_BERTH_RUNTIME_REEXEC";

/// Returns when this process runs from a protected copy; otherwise
/// re-executes itself from one (and does not return) or fails. `root` is
/// the runtime's state directory: it holds the overlay's scratch layer.
/// `args`: the command line the copy runs, the program's name first (the
/// one this process acts on: a runtime started ahead by berth's monitor
/// was handed it, and its own argv holds only its name).
pub fn protect_own_binary(root: &Path, args: &[std::ffi::OsString]) -> Result<Protection> {
    let how = selfexe::protection().ctx("inspect the runtime binary (/proc/self/exe)")?;
    if let Some(how) = how {
        tracing::debug!("runtime binary protected: {how:?}");
        return Ok(how);
    }
    if std::env::var_os(MARK).is_some() {
        return Err(Error::Usage(
            "the runtime binary is still writable after re-executing from a protected copy; refusing to let a container reach it (CVE-2019-5736)".into(),
        ));
    }
    let argv = args
        .iter()
        .map(|a| CString::new(a.as_bytes()))
        .collect::<std::result::Result<Vec<CString>, _>>()
        .map_err(|_| Error::Usage("an argument holds a NUL byte".into()))?;
    let mut envp: Vec<CString> = std::env::vars_os()
        .filter_map(|(k, v)| {
            let mut kv = k.as_bytes().to_vec();
            kv.push(b'=');
            kv.extend_from_slice(v.as_bytes());
            CString::new(kv).ok()
        })
        .collect();
    envp.push(CString::new(format!("{MARK}=1")).unwrap_or_default());
    let dummy = scratch_layer(root);
    match selfexe::reexec_protected(&argv, &envp, dummy.as_ref().map(|d| d.as_fd())) {
        Err(e) => Err(e).ctx(
            "re-execute the runtime from a copy containers cannot write (CVE-2019-5736; needs overlayfs or memfd_create)",
        ),
        Ok(never) => match never {},
    }
}

/// `<root>/@exe-layer`, an empty directory only this runtime writes (`@`
/// cannot start a container id). `None` when it cannot be made (a
/// read-only or foreign root): the memfd copy is used then.
fn scratch_layer(root: &Path) -> Option<OwnedFd> {
    let dir = root.join("@exe-layer");
    berth_sys::fs::create_private_dir_all(&dir).ok()?;
    berth_sys::fs::open(
        &dir,
        libc::O_PATH | libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_CLOEXEC,
        0,
    )
    .ok()
}
