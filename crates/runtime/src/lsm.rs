//! AppArmor and SELinux: the label a container's process execs into
//! (`process.apparmorProfile`, `process.selinuxLabel`) and the SELinux
//! context of the filesystems mounted for it (`linux.mountLabel`).
//!
//! A label is applied by writing it to the calling thread's
//! `attr/exec` file in procfs; the LSM switches at the next execve. The
//! file is opened early, through the host's procfs verified by its
//! filesystem magic, before the container's rootfs (or mount namespace,
//! for exec) is in play, so that nothing the container mounted can
//! redirect the write (CVE-2025-52881). A label the host cannot apply (its
//! LSM is not enabled) is refused: a container never runs unconfined when
//! its config asked for confinement.

use crate::error::{config, Context, Error, Result};
use berth_sys::fs as sfs;
use oci_spec::runtime::Process;
use std::io::Write;
use std::os::fd::{AsFd, OwnedFd};
use std::path::Path;

/// Which LSMs the host has enabled.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Host {
    pub apparmor: bool,
    pub selinux: bool,
}

impl Host {
    /// Reads this machine's state, as runc does: AppArmor is enabled when
    /// securityfs shows it and the module says `Y`; SELinux when selinuxfs
    /// is mounted.
    pub fn detect() -> Host {
        let apparmor = Path::new("/sys/kernel/security/apparmor").exists()
            && std::fs::read("/sys/module/apparmor/parameters/enabled")
                .is_ok_and(|b| b.starts_with(b"Y"));
        let selinux = Path::new("/sys/fs/selinux/enforce").exists()
            || std::fs::read_to_string("/proc/self/mountinfo")
                .is_ok_and(|m| m.lines().any(|l| l.contains(" - selinuxfs ")));
        Host { apparmor, selinux }
    }
}

fn non_empty(s: &Option<String>) -> Option<&str> {
    s.as_deref().filter(|s| !s.is_empty())
}

/// A label must fit in one procfs write and one mount option: no NUL,
/// newline or double quote.
fn check_label(field: &str, label: &str) -> Result<()> {
    if label.len() > 4096 || label.contains(['\0', '\n', '"']) {
        return Err(config(
            field,
            format!(
                "{label:?} is not a valid label (no NUL, newline or quote; at most 4096 bytes)"
            ),
        ));
    }
    Ok(())
}

/// Refuses labels this host cannot apply, and malformed ones. `host` is
/// asked only when there is a label.
pub fn validate(
    host: &dyn Fn() -> Host,
    process: Option<&Process>,
    mount_label: Option<&str>,
) -> Result<()> {
    let (aa, se) = match process {
        Some(p) => (
            non_empty(p.apparmor_profile()),
            non_empty(p.selinux_label()),
        ),
        None => (None, None),
    };
    let mount_label = mount_label.filter(|l| !l.is_empty());
    if aa.is_none() && se.is_none() && mount_label.is_none() {
        return Ok(());
    }
    let host = host();
    if let Some(p) = aa {
        check_label("process.apparmorProfile", p)?;
        if !host.apparmor {
            return Err(config(
                "process.apparmorProfile",
                format!("AppArmor is not enabled on this host; refusing to run the container without profile {p:?} (remove the field to run it unconfined)"),
            ));
        }
    }
    if let Some(l) = se {
        check_label("process.selinuxLabel", l)?;
        if !host.selinux {
            return Err(config(
                "process.selinuxLabel",
                format!("SELinux is not enabled on this host; refusing to run the container without label {l:?} (remove the field to run it unconfined)"),
            ));
        }
    }
    if let Some(l) = mount_label {
        check_label("linux.mountLabel", l)?;
        if !host.selinux {
            return Err(config(
                "linux.mountLabel",
                "SELinux is not enabled on this host; remove the field",
            ));
        }
    }
    Ok(())
}

/// The label write for the next execve, opened and ready.
pub struct ExecLabel {
    file: std::fs::File,
    value: Vec<u8>,
    what: &'static str,
}

/// The attr file and the bytes to write for `process`, if it has a label.
/// Validation has made sure the host can apply it.
fn exec_attr(process: &Process) -> Option<Attr> {
    if let Some(p) = non_empty(process.apparmor_profile()) {
        // The LSM-specific file (Linux 5.8+, with LSM stacking), else the
        // shared one.
        return Some((
            &["thread-self/attr/apparmor/exec", "thread-self/attr/exec"],
            format!("exec {p}").into_bytes(),
            "process.apparmorProfile",
        ));
    }
    if let Some(l) = non_empty(process.selinux_label()) {
        return Some((
            &["thread-self/attr/selinux/exec", "thread-self/attr/exec"],
            l.as_bytes().to_vec(),
            "process.selinuxLabel",
        ));
    }
    None
}

/// Opens the calling thread's `attr/exec` through the host's procfs for
/// `process`'s label; `None` without a label.
pub fn prepare(process: &Process) -> Result<Option<ExecLabel>> {
    match exec_attr(process) {
        Some(attr) => open_attr(&host_proc()?, attr).map(Some),
        None => Ok(None),
    }
}

type Attr = (&'static [&'static str], Vec<u8>, &'static str);

/// Opens the first of the attr files that exists under `proc` (checked to
/// be procfs), ready to write `value`.
fn open_attr(proc: &OwnedFd, (candidates, value, what): Attr) -> Result<ExecLabel> {
    let mut last = None;
    for rel in candidates {
        match sfs::openat2(
            proc.as_fd(),
            Path::new(rel),
            libc::O_WRONLY | libc::O_CLOEXEC,
            0,
            sfs::RESOLVE_BENEATH | sfs::RESOLVE_NO_MAGICLINKS | sfs::RESOLVE_NO_XDEV,
        ) {
            Ok(fd) => {
                if sfs::fs_magic(fd.as_fd()).ctx("statfs the LSM attr file")?
                    != sfs::PROC_SUPER_MAGIC
                {
                    return Err(Error::Usage(format!(
                        "{what}: /proc/{rel} is not on procfs; refusing to write the label"
                    )));
                }
                return Ok(ExecLabel {
                    file: fd.into(),
                    value,
                    what,
                });
            }
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => last = Some(e),
            Err(e) => return Err(e).with_ctx(|| format!("open /proc/{rel} ({what})")),
        }
    }
    Err(last.unwrap_or_else(|| std::io::Error::from_raw_os_error(libc::ENOENT)))
        .with_ctx(|| format!("open /proc/thread-self/attr/exec ({what})"))
}

impl ExecLabel {
    /// Writes the label: the LSM applies it at our next execve.
    pub fn apply(mut self) -> Result<()> {
        self.file
            .write_all(&self.value)
            .with_ctx(|| format!("apply {} (write the exec label)", self.what))
    }
}

/// The host's procfs, checked to be procfs: what label and sysctl writes
/// go through.
pub fn host_proc() -> Result<OwnedFd> {
    let proc =
        sfs::open(Path::new("/proc"), libc::O_PATH | libc::O_DIRECTORY, 0).ctx("open /proc")?;
    if sfs::fs_magic(proc.as_fd()).ctx("statfs /proc")? != sfs::PROC_SUPER_MAGIC {
        return Err(Error::Usage(
            "/proc is not procfs; refusing to write process attributes through it".into(),
        ));
    }
    Ok(proc)
}

/// mount(2) data with the SELinux context of `linux.mountLabel` added, for
/// the filesystems that take it: not bind mounts (they keep their own
/// labels), and not proc, sysfs or cgroup, whose labels the policy sets.
pub fn with_mount_label(data: Option<String>, typ: &str, label: Option<&str>) -> Option<String> {
    let Some(label) = label.filter(|l| !l.is_empty()) else {
        return data;
    };
    if matches!(typ, "bind" | "proc" | "sysfs" | "cgroup" | "cgroup2") {
        return data;
    }
    let ctx = format!("context=\"{label}\"");
    Some(match data.filter(|d| !d.is_empty()) {
        Some(d) => format!("{d},{ctx}"),
        None => ctx,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn process(v: serde_json::Value) -> Process {
        let mut base = serde_json::json!({"cwd": "/", "user": {"uid": 0, "gid": 0}});
        for (k, val) in v.as_object().unwrap() {
            base[k] = val.clone();
        }
        serde_json::from_value(base).unwrap()
    }

    #[test]
    fn labels_are_refused_without_their_lsm() {
        let none = || Host::default();
        let aa = process(serde_json::json!({"apparmorProfile": "docker-default"}));
        let e = validate(&none, Some(&aa), None).unwrap_err().to_string();
        assert!(
            e.starts_with("config.json: process.apparmorProfile: AppArmor is not enabled"),
            "{e}"
        );
        let se = process(serde_json::json!({"selinuxLabel": "system_u:system_r:container_t:s0"}));
        let e = validate(&none, Some(&se), None).unwrap_err().to_string();
        assert!(
            e.contains("process.selinuxLabel: SELinux is not enabled"),
            "{e}"
        );
        let plain = process(serde_json::json!({}));
        let e = validate(
            &none,
            Some(&plain),
            Some("system_u:object_r:container_file_t:s0"),
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("linux.mountLabel"), "{e}");
        // Empty means none, as in runc.
        let empty = process(serde_json::json!({"apparmorProfile": ""}));
        validate(
            &|| panic!("asked the host without a label"),
            Some(&empty),
            Some(""),
        )
        .unwrap();
    }

    #[test]
    fn labels_are_accepted_with_their_lsm() {
        let both = || Host {
            apparmor: true,
            selinux: true,
        };
        let aa = process(serde_json::json!({"apparmorProfile": "docker-default"}));
        validate(
            &both,
            Some(&aa),
            Some("system_u:object_r:container_file_t:s0:c1,c2"),
        )
        .unwrap();
        let bad = process(serde_json::json!({"apparmorProfile": "x\"y"}));
        assert!(validate(&both, Some(&bad), None).is_err());
        let bad = process(serde_json::json!({"selinuxLabel": "a\nb"}));
        assert!(validate(&both, Some(&bad), None).is_err());
    }

    #[test]
    fn what_is_written_where() {
        let aa = process(serde_json::json!({"apparmorProfile": "docker-default"}));
        let (files, value, _) = exec_attr(&aa).unwrap();
        assert_eq!(files[0], "thread-self/attr/apparmor/exec");
        assert_eq!(files[1], "thread-self/attr/exec");
        assert_eq!(value, b"exec docker-default");
        let se = process(serde_json::json!({"selinuxLabel": "system_u:system_r:container_t:s0"}));
        let (files, value, _) = exec_attr(&se).unwrap();
        assert_eq!(files[0], "thread-self/attr/selinux/exec");
        assert_eq!(value, b"system_u:system_r:container_t:s0");
        assert!(exec_attr(&process(serde_json::json!({}))).is_none());
    }

    #[test]
    fn writes_go_to_the_threads_attr_file() {
        // A fake /proc: the label lands in the LSM-specific file when it
        // exists... and the fs-magic check refuses a non-procfs tree.
        let tmp = tempfile::tempdir().unwrap();
        let attr = tmp.path().join("thread-self/attr/apparmor");
        std::fs::create_dir_all(&attr).unwrap();
        std::fs::write(attr.join("exec"), "").unwrap();
        let fake = sfs::open(tmp.path(), libc::O_PATH | libc::O_DIRECTORY, 0).unwrap();
        let aa = process(serde_json::json!({"apparmorProfile": "p"}));
        let e = open_attr(&fake, exec_attr(&aa).unwrap())
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("is not on procfs"), "{e}");
        // The real procfs: this kernel has no LSM with an exec attr to
        // take "exec p" from us, but the file is found and opened.
        let opened = prepare(&aa);
        assert!(opened.is_ok(), "{:?}", opened.err());
    }

    #[test]
    fn mount_label_goes_into_the_data() {
        let l = Some("system_u:object_r:container_file_t:s0:c1,c2");
        assert_eq!(
            with_mount_label(Some("mode=755".into()), "tmpfs", l).as_deref(),
            Some("mode=755,context=\"system_u:object_r:container_file_t:s0:c1,c2\"")
        );
        assert_eq!(
            with_mount_label(None, "mqueue", l).as_deref(),
            Some("context=\"system_u:object_r:container_file_t:s0:c1,c2\"")
        );
        for t in ["proc", "sysfs", "cgroup2", "bind"] {
            assert_eq!(
                with_mount_label(Some("x".into()), t, l).as_deref(),
                Some("x")
            );
        }
        assert_eq!(with_mount_label(None, "tmpfs", None), None);
    }
}
