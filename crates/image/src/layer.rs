//! The layer writer: a directory (an overlay upper directory, or any root
//! filesystem) as an OCI layer tar, compressed, with both digests computed
//! while it streams, and stored as a layer of the image store.
//!
//! The directory belongs to a container and can change while it is read:
//! it is walked by fd only. Each entry is opened with
//! [`sfs::open_entry`] (`O_PATH | O_NOFOLLOW` under
//! `RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS`, then reopened through the fd
//! for a regular file or a directory), its type is taken from that fd's
//! `fstat`, and everything written (data, link target, xattrs) is read
//! through that fd: never a path resolved again, never a symlink followed,
//! never a fifo or a device opened. A directory on another mount than the
//! walk's root (a bind mount, /proc) is not entered.
//!
//! What is written is deterministic: entries in byte order of their names
//! (a directory's `.wh..wh..opq` first), hard links (same device and inode)
//! as links to the first name written, times in whole seconds (clamped to
//! `SOURCE_DATE_EPOCH` when asked), no atime, ctime, user or group names.
//! So the same tree gives the same bytes and the same digests.
//!
//! Overlay upper directories: a 0:0 character device is a whiteout
//! (`.wh.NAME`), a directory with `trusted.overlay.opaque=y` (or
//! `user.overlay.opaque=y`) is opaque (`.wh..wh..opq`); overlay's own
//! xattrs are never written. A directory overlay redirected or a
//! metacopy-only file (`redirect_dir`/`metacopy`, which berth does not
//! enable) cannot be turned into a layer from the upper directory alone:
//! refused, naming it.

use crate::digest::Digest;
use crate::error::{Error, Result};
use crate::manifest::Descriptor;
use crate::store::Store;
use crate::tar::{Entry, Kind, Writer};
use berth_sys::fs as sfs;
use sha2::{Digest as _, Sha256};
use std::collections::HashMap;
use std::io::{self, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

/// How a tree is written.
#[derive(Clone, Debug, Default)]
pub struct TarOptions {
    /// Read overlay whiteouts and opaque directories (an upper directory);
    /// else a 0:0 character device is written as the device it is.
    pub overlay: bool,
    /// Times later than this (`SOURCE_DATE_EPOCH`) are written as this.
    pub clamp_mtime: Option<i64>,
    /// The user namespace the tree was written from: owners are written
    /// as the container saw them (host ids mapped back; an id outside the
    /// maps as 65534, the kernel's overflow id). None: as they are.
    pub id_maps: Option<IdMaps>,
}

/// A user namespace's maps: (container id, host id, size) ranges.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct IdMaps {
    pub uids: Vec<(u32, u32, u32)>,
    pub gids: Vec<(u32, u32, u32)>,
}

/// The container's view of host id `id` under `map`.
fn to_container(map: &[(u32, u32, u32)], id: u32) -> u32 {
    map.iter()
        .find(|&&(_, host, size)| id >= host && u64::from(id) < u64::from(host) + u64::from(size))
        .map_or(65534, |&(inner, host, _)| inner + (id - host))
}

/// What [`write_tar`] wrote.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TarStats {
    pub entries: u64,
    /// Bytes of file data.
    pub bytes: u64,
}

const WH: &[u8] = b".wh.";
const OPAQUE: &[u8] = b".wh..wh..opq";

/// Writes the tree under the directory `root` as a tar stream on `out`
/// (names relative, without a leading `./`; the root itself not written).
pub fn write_tar(root: BorrowedFd<'_>, opts: &TarOptions, out: &mut dyn Write) -> Result<TarStats> {
    walk_tar(root, opts, false, out)
}

/// [`write_tar`]; with `settle`, each entry is also made on disk what
/// unpacking its tar entry makes of it ([`adopt_layer`]).
fn walk_tar(
    root: BorrowedFd<'_>,
    opts: &TarOptions,
    settle: bool,
    out: &mut dyn Write,
) -> Result<TarStats> {
    let root_mnt = mount_id(root).map_err(|e| Error::Io {
        op: "find the mount of the directory to archive".into(),
        cause: e,
    })?;
    let mut w = Walk {
        w: Writer::new(out),
        opts,
        root_mnt,
        settle,
        links: HashMap::new(),
        stats: TarStats::default(),
    };
    let dup = root.try_clone_to_owned().map_err(|e| Error::Io {
        op: "dup the directory to archive".into(),
        cause: e,
    })?;
    w.dir_contents(dup, &[])?;
    w.w.finish().map_err(|e| Error::Io {
        op: "write the end of the layer tar".into(),
        cause: e,
    })?;
    Ok(w.stats)
}

struct Walk<'a, W: Write> {
    w: Writer<W>,
    opts: &'a TarOptions,
    root_mnt: u64,
    /// Settle each entry as it is written ([`adopt_layer`]).
    settle: bool,
    /// (dev, ino) of files with more than one link -> the first name.
    links: HashMap<(u64, u64), Vec<u8>>,
    stats: TarStats,
}

fn show(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn join(dir: &[u8], name: &[u8]) -> Vec<u8> {
    if dir.is_empty() {
        return name.to_vec();
    }
    let mut p = dir.to_vec();
    p.push(b'/');
    p.extend_from_slice(name);
    p
}

impl<W: Write> Walk<'_, W> {
    fn io(&self, path: &[u8], op: &str) -> impl Fn(io::Error) -> Error {
        let op = format!(
            "{op} {}",
            if path.is_empty() { b"/" } else { path }.escape_ascii()
        );
        move |e| Error::Io {
            op: op.clone(),
            cause: e,
        }
    }

    fn entry(&self, path: Vec<u8>, kind: Kind, st: &libc::stat) -> Entry {
        let mut mtime = st.st_mtime;
        if let Some(c) = self.opts.clamp_mtime {
            mtime = mtime.min(c);
        }
        let (uid, gid) = match &self.opts.id_maps {
            Some(m) => (
                to_container(&m.uids, st.st_uid),
                to_container(&m.gids, st.st_gid),
            ),
            None => (st.st_uid, st.st_gid),
        };
        Entry {
            path,
            kind,
            mode: st.st_mode & 0o7777,
            uid: u64::from(uid),
            gid: u64::from(gid),
            size: 0,
            mtime: (mtime, 0),
            link: Vec::new(),
            dev_major: 0,
            dev_minor: 0,
            xattrs: Vec::new(),
        }
    }

    fn append(&mut self, e: &Entry, data: &mut dyn io::Read) -> Result<()> {
        self.stats.entries += 1;
        self.stats.bytes += e.size;
        self.w.append(e, data).map_err(|err| Error::Io {
            op: format!("write {} to the layer tar", show(&e.path)),
            cause: err,
        })
    }

    /// The entries of the directory `dir` (archive name `path`), sorted by
    /// the names they are written under, opaque marker first.
    fn dir_contents(&mut self, dir: OwnedFd, path: &[u8]) -> Result<()> {
        let names = sfs::read_dir_fd(dir.as_fd()).map_err(self.io(path, "list"))?;
        // (archive name, entry name in the directory)
        let mut children: Vec<(Vec<u8>, std::ffi::OsString, libc::stat)> = Vec::new();
        for n in names {
            let st = match sfs::stat_entry(dir.as_fd(), Path::new(&n)) {
                Ok(st) => st,
                // Removed meanwhile (a container not paused).
                Err(e) if e.raw_os_error() == Some(libc::ENOENT) => continue,
                Err(e) => return Err(self.io(&join(path, n.as_bytes()), "stat")(e)),
            };
            let nb = n.as_bytes();
            if self.opts.overlay && nb.starts_with(WH) {
                // A name an overlay upper cannot hold as itself: it would be
                // read back as a whiteout (Docker and containerd refuse too).
                return Err(Error::Usage(format!(
                    "{}: a file named like a whiteout (.wh.*) cannot go in a layer; rename or remove it",
                    join(path, nb).escape_ascii()
                )));
            }
            let arc = if self.opts.overlay && is_whiteout(&st) {
                let mut w = WH.to_vec();
                w.extend_from_slice(nb);
                w
            } else {
                nb.to_vec()
            };
            children.push((arc, n, st));
        }
        children.sort_by(|a, b| a.0.cmp(&b.0));
        for (arc, name, before) in children {
            let full = join(path, &arc);
            let (fd, st) = match sfs::open_entry(dir.as_fd(), Path::new(&name)) {
                Ok(x) => x,
                Err(e) if e.raw_os_error() == Some(libc::ENOENT) => continue,
                Err(e) => return Err(self.io(&full, "open")(e)),
            };
            if self.opts.overlay && is_whiteout(&st) != is_whiteout(&before) {
                // Became or stopped being a whiteout since it was named (a
                // container not paused): as if it had gone meanwhile.
                continue;
            }
            self.one(fd, &st, full, dir.as_fd(), &name)?;
        }
        Ok(())
    }

    /// Makes the entry `fd` (written as `e`) what the unpacker makes of
    /// `e`: its owner, its mode (again after a chown, which clears
    /// setuid bits and capabilities), overlay's xattrs dropped but for
    /// the opaque mark, set as `trusted.overlay.opaque`.
    #[allow(clippy::too_many_arguments)]
    fn settle(
        &self,
        e: &Entry,
        fd: BorrowedFd<'_>,
        st: &libc::stat,
        o_path: bool,
        xattrs: &[(Vec<u8>, Vec<u8>)],
        opaque: bool,
    ) -> Result<()> {
        let id = |v: u64| u32::try_from(v).unwrap_or(65534);
        let fix = Settle {
            fd,
            st,
            o_path,
            uid: id(e.uid),
            gid: id(e.gid),
            mode: (sfs::file_type(st) != libc::S_IFLNK).then_some(e.mode),
            xattrs,
            kept: &e.xattrs,
            opaque,
        };
        fix.apply().map_err(self.io(&e.path, "settle"))
    }

    fn one(
        &mut self,
        fd: OwnedFd,
        st: &libc::stat,
        path: Vec<u8>,
        parent: BorrowedFd<'_>,
        name: &std::ffi::OsStr,
    ) -> Result<()> {
        let ft = sfs::file_type(st);
        if self.opts.overlay && is_whiteout(st) {
            // The name was made `.wh.NAME` by the caller.
            let mut e = self.entry(path, Kind::File, st);
            e.mode = 0o644;
            (e.uid, e.gid) = (0, 0);
            self.append(&e, &mut io::empty())?;
            if self.settle {
                // As the unpacker makes it: mknod(S_IFCHR, 0) by root.
                let xattrs = read_xattrs(fd.as_fd(), true)
                    .map_err(self.io(&e.path, "read the xattrs of"))?;
                let fix = Settle {
                    fd: fd.as_fd(),
                    st,
                    o_path: true,
                    uid: 0,
                    gid: 0,
                    mode: Some(0),
                    xattrs: &xattrs,
                    kept: &[],
                    opaque: false,
                };
                fix.apply().map_err(self.io(&e.path, "settle"))?;
                settle_times(parent, name, None, e.mtime.0)
                    .map_err(self.io(&e.path, "set times of"))?;
            }
            return Ok(());
        }
        let o_path = !matches!(ft, libc::S_IFREG | libc::S_IFDIR);
        let xattrs =
            read_xattrs(fd.as_fd(), o_path).map_err(self.io(&path, "read the xattrs of"))?;
        let mut opaque = false;
        let mut kept = Vec::new();
        for (k, v) in xattrs.iter().cloned() {
            let overlay = k.starts_with(b"trusted.overlay.") || k.starts_with(b"user.overlay.");
            if !overlay {
                kept.push((k, v));
                continue;
            }
            if !self.opts.overlay {
                continue;
            }
            let key = k.rsplit(|&b| b == b'.').next().unwrap_or(b"");
            match key {
                b"opaque" => opaque = v == b"y",
                b"redirect" | b"metacopy" => {
                    return Err(Error::Usage(format!(
                        "{}: overlay {} (a renamed directory or a metadata-only copy) cannot be written as a layer from the upper directory alone",
                        path.escape_ascii(),
                        show(key)
                    )))
                }
                _ => {}
            }
        }
        match ft {
            libc::S_IFREG => {
                let mut e = self.entry(path, Kind::File, st);
                e.xattrs = kept;
                if st.st_nlink > 1 {
                    let key = (st.st_dev, st.st_ino);
                    if let Some(first) = self.links.get(&key) {
                        e.kind = Kind::Hardlink;
                        e.link = first.clone();
                        return self.append(&e, &mut io::empty());
                    }
                    self.links.insert(key, e.path.clone());
                }
                e.size = st.st_size as u64;
                if self.settle {
                    let data = fd.try_clone().map_err(self.io(&e.path, "dup the fd of"))?;
                    self.append(&e, &mut std::fs::File::from(data))?;
                    // After the data is read (a read may move the atime).
                    self.settle(&e, fd.as_fd(), st, false, &xattrs, opaque)?;
                    settle_times(parent, name, Some(fd.as_fd()), e.mtime.0)
                        .map_err(self.io(&e.path, "set times of"))?;
                } else {
                    self.append(&e, &mut std::fs::File::from(fd))?;
                }
            }
            libc::S_IFDIR => {
                let mut e = self.entry(path.clone(), Kind::Dir, st);
                e.xattrs = kept;
                self.append(&e, &mut io::empty())?;
                let e = e;
                if opaque {
                    let mut m = self.entry(join(&path, OPAQUE), Kind::File, st);
                    m.mode = 0o644;
                    (m.uid, m.gid) = (0, 0);
                    self.append(&m, &mut io::empty())?;
                }
                let mnt = mount_id(fd.as_fd()).map_err(self.io(&path, "find the mount of"))?;
                if mnt != self.root_mnt {
                    if self.settle {
                        return Err(Error::Usage(format!(
                            "{}: a mount point inside a directory to be taken as a layer",
                            path.escape_ascii()
                        )));
                    }
                    // A mount point: its own contents are not the tree's.
                    return Ok(());
                }
                if !self.settle {
                    return self.dir_contents(fd, &path);
                }
                self.settle(&e, fd.as_fd(), st, false, &xattrs, opaque)?;
                let keep = fd.try_clone().map_err(self.io(&path, "dup the fd of"))?;
                self.dir_contents(fd, &path)?;
                // After its entries (removing a socket changes it), as the
                // unpacker sets a directory's times last.
                settle_times(parent, name, Some(keep.as_fd()), e.mtime.0)
                    .map_err(self.io(&path, "set times of"))?;
            }
            libc::S_IFLNK => {
                let mut e = self.entry(path, Kind::Symlink, st);
                e.xattrs = kept;
                e.link = sfs::readlink_fd(fd.as_fd())
                    .map_err(self.io(&e.path, "readlink"))?
                    .into_os_string()
                    .into_vec();
                self.append(&e, &mut io::empty())?;
                if self.settle {
                    self.settle(&e, fd.as_fd(), st, true, &xattrs, false)?;
                    settle_times(parent, name, None, e.mtime.0)
                        .map_err(self.io(&e.path, "set times of"))?;
                }
            }
            libc::S_IFCHR | libc::S_IFBLK => {
                let kind = if ft == libc::S_IFCHR {
                    Kind::Char
                } else {
                    Kind::Block
                };
                let mut e = self.entry(path, kind, st);
                e.xattrs = kept;
                e.dev_major = libc::major(st.st_rdev);
                e.dev_minor = libc::minor(st.st_rdev);
                self.append(&e, &mut io::empty())?;
                if self.settle {
                    self.settle(&e, fd.as_fd(), st, true, &xattrs, false)?;
                    settle_times(parent, name, None, e.mtime.0)
                        .map_err(self.io(&e.path, "set times of"))?;
                }
            }
            libc::S_IFIFO => {
                let mut e = self.entry(path, Kind::Fifo, st);
                e.xattrs = kept;
                self.append(&e, &mut io::empty())?;
                if self.settle {
                    self.settle(&e, fd.as_fd(), st, true, &xattrs, false)?;
                    settle_times(parent, name, None, e.mtime.0)
                        .map_err(self.io(&e.path, "set times of"))?;
                }
            }
            // Sockets have no place in an archive (tar skips them too);
            // a tree taken as a layer loses them as an unpacked one would.
            _ => {
                if self.settle {
                    sfs::unlinkat(parent, Path::new(name), 0)
                        .map_err(self.io(&path, "remove the socket"))?;
                }
            }
        }
        Ok(())
    }
}

use std::os::unix::ffi::OsStringExt;

fn is_whiteout(st: &libc::stat) -> bool {
    sfs::file_type(st) == libc::S_IFCHR && st.st_rdev == 0
}

/// What one entry of a tree taken as a layer must be ([`Walk::settle`]).
struct Settle<'a> {
    fd: BorrowedFd<'a>,
    st: &'a libc::stat,
    o_path: bool,
    uid: u32,
    gid: u32,
    /// None for a symlink (its mode is not its own).
    mode: Option<u32>,
    /// All its xattrs as read, and those its tar entry carries.
    xattrs: &'a [(Vec<u8>, Vec<u8>)],
    kept: &'a [(Vec<u8>, Vec<u8>)],
    opaque: bool,
}

impl Settle<'_> {
    fn apply(&self) -> io::Result<()> {
        let chowned = self.st.st_uid != self.uid || self.st.st_gid != self.gid;
        if chowned {
            sfs::fchown_fd(self.fd, self.uid, self.gid)?;
        }
        if let Some(mode) = self.mode {
            if chowned || self.st.st_mode & 0o7777 != mode {
                sfs::fchmod_fd(self.fd, mode)?;
            }
        }
        let mut marked = false;
        for (k, v) in self.xattrs {
            let keep = if k.starts_with(b"trusted.overlay.") || k.starts_with(b"user.overlay.") {
                let is_mark = self.opaque && k.as_slice() == b"trusted.overlay.opaque" && v == b"y";
                marked |= is_mark;
                is_mark
            } else {
                self.kept.iter().any(|(kk, _)| kk == k)
            };
            if !keep {
                sfs::remove_xattr_fd(self.fd, k, self.o_path)?;
            }
        }
        if self.opaque && !marked {
            sfs::set_xattr_fd(self.fd, b"trusted.overlay.opaque", b"y", self.o_path)?;
        }
        if chowned {
            // A chown drops security.capability: set again, as the
            // unpacker sets them after the owner.
            for (k, v) in self.kept {
                sfs::set_xattr_fd(self.fd, k, v, self.o_path)?;
            }
        }
        Ok(())
    }
}

/// Sets `name`'s atime and mtime to `mtime` whole seconds, as the
/// unpacker does: through `fd` when it is open (a file or directory),
/// else by name without following it.
fn settle_times(
    parent: BorrowedFd<'_>,
    name: &std::ffi::OsStr,
    fd: Option<BorrowedFd<'_>>,
    mtime: i64,
) -> io::Result<()> {
    let t = (mtime, 0);
    match fd {
        Some(fd) => sfs::set_times_fd(fd, t, t),
        None => sfs::set_times_nofollow(parent, Path::new(name), t, t),
    }
}

/// The id of the mount `fd` is on.
fn mount_id(fd: BorrowedFd<'_>) -> io::Result<u64> {
    crate::unpack::mount_id(fd)
}

/// The extended attributes of what `fd` refers to, sorted by name. An
/// `O_PATH` fd (symlink, device, fifo) is read through its
/// `/proc/self/fd` link, which lands on the inode itself.
pub fn read_xattrs(fd: BorrowedFd<'_>, o_path: bool) -> io::Result<Vec<(Vec<u8>, Vec<u8>)>> {
    let p = berth_sys::fd_path(fd.as_raw_fd());
    let list = |buf: &mut [u8]| -> isize {
        if o_path {
            // SAFETY: a valid C string and a buffer of the given length.
            unsafe { libc::listxattr(p.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) }
        } else {
            // SAFETY: a valid fd and a buffer of the given length.
            unsafe { libc::flistxattr(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) }
        }
    };
    let names = match grow(list)? {
        Some(n) => n,
        None => return Ok(Vec::new()),
    };
    let mut out = Vec::new();
    for name in names.split(|&b| b == 0).filter(|n| !n.is_empty()) {
        let c = std::ffi::CString::new(name.to_vec()).map_err(|_| io::Error::other("NUL"))?;
        let get = |buf: &mut [u8]| -> isize {
            if o_path {
                // SAFETY: valid C strings and a buffer of the given length.
                unsafe {
                    libc::getxattr(p.as_ptr(), c.as_ptr(), buf.as_mut_ptr().cast(), buf.len())
                }
            } else {
                // SAFETY: a valid fd, a C string and a buffer of the given length.
                unsafe {
                    libc::fgetxattr(
                        fd.as_raw_fd(),
                        c.as_ptr(),
                        buf.as_mut_ptr().cast(),
                        buf.len(),
                    )
                }
            }
        };
        match grow(get) {
            Ok(Some(v)) => out.push((name.to_vec(), v)),
            Ok(None) => out.push((name.to_vec(), Vec::new())),
            // Removed between the list and the read.
            Err(e) if e.raw_os_error() == Some(libc::ENODATA) => {}
            Err(e) => return Err(e),
        }
    }
    out.sort();
    Ok(out)
}

/// Calls an xattr syscall with a growing buffer until the value fits.
/// None for "nothing" (no xattrs, or a filesystem without them).
fn grow(mut call: impl FnMut(&mut [u8]) -> isize) -> io::Result<Option<Vec<u8>>> {
    let mut buf = vec![0u8; 256];
    loop {
        let n = call(&mut buf);
        if n >= 0 {
            buf.truncate(n as usize);
            return Ok((n > 0).then_some(buf));
        }
        let e = io::Error::last_os_error();
        match e.raw_os_error() {
            Some(libc::ERANGE) if buf.len() < 1 << 20 => buf.resize(buf.len() * 4, 0),
            Some(libc::ENOTSUP) => return Ok(None),
            _ => return Err(e),
        }
    }
}

/// A writer that hashes and counts what passes through it.
pub struct HashingWriter<W> {
    inner: W,
    hasher: Sha256,
    count: u64,
}

impl<W: Write> HashingWriter<W> {
    pub fn new(inner: W) -> Self {
        HashingWriter {
            inner,
            hasher: Sha256::new(),
            count: 0,
        }
    }

    /// The digest and size of what was written, and the writer.
    pub fn finish(self) -> (Digest, u64, W) {
        let hex = crate::digest::hex(&self.hasher.finalize());
        let d = Digest::parse(&format!("sha256:{hex}")).expect("a sha256 digest is valid");
        (d, self.count, self.inner)
    }
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.count += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// How a new layer is compressed (`--compression`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum LayerCompression {
    #[default]
    Gzip,
    Zstd,
}

impl LayerCompression {
    pub fn parse(s: &str) -> Result<LayerCompression> {
        match s {
            "gzip" => Ok(LayerCompression::Gzip),
            "zstd" => Ok(LayerCompression::Zstd),
            _ => Err(Error::Usage(format!(
                "compression {s:?}: expected gzip or zstd"
            ))),
        }
    }

    pub fn media_type(self) -> &'static str {
        match self {
            LayerCompression::Gzip => "application/vnd.oci.image.layer.v1.tar+gzip",
            LayerCompression::Zstd => "application/vnd.oci.image.layer.v1.tar+zstd",
        }
    }
}

/// A layer written and stored: its blob's descriptor and its diff id.
#[derive(Clone, Debug)]
pub struct NewLayer {
    pub desc: Descriptor,
    pub diff_id: Digest,
    pub stats: TarStats,
}

/// Writes the tree under `dir` as a compressed layer blob to `out`,
/// computing the diff id (the uncompressed tar's digest) and the blob's
/// digest in the same pass.
pub fn write_layer<W: Write>(
    dir: BorrowedFd<'_>,
    opts: &TarOptions,
    compression: LayerCompression,
    out: W,
) -> Result<(NewLayer, W)> {
    let io_err = |op: &str| {
        let op = op.to_string();
        move |e: io::Error| Error::Io {
            op: op.clone(),
            cause: e,
        }
    };
    let blob = HashingWriter::new(out);
    let (stats, diff, blob) = match compression {
        LayerCompression::Gzip => {
            // Level 1: layers are written on the critical path of commit and
            // build; level 6 costs several times the CPU for a few percent.
            let gz = flate2::write::GzEncoder::new(blob, flate2::Compression::fast());
            let mut tar = HashingWriter::new(gz);
            let stats = write_tar(dir, opts, &mut tar)?;
            let (diff, diff_size, gz) = tar.finish();
            let blob = gz.finish().map_err(io_err("compress the layer (gzip)"))?;
            (stats, (diff, diff_size), blob)
        }
        LayerCompression::Zstd => {
            let z = zstd::stream::write::Encoder::new(blob, 3)
                .map_err(io_err("start the zstd encoder"))?;
            let mut tar = HashingWriter::new(z);
            let stats = write_tar(dir, opts, &mut tar)?;
            let (diff, diff_size, z) = tar.finish();
            let blob = z.finish().map_err(io_err("compress the layer (zstd)"))?;
            (stats, (diff, diff_size), blob)
        }
    };
    let _ = diff.1;
    let (digest, size, out) = blob.finish();
    Ok((
        NewLayer {
            desc: Descriptor {
                media_type: compression.media_type().to_string(),
                digest,
                size: size as i64,
                urls: vec![],
                platform: None,
                annotations: None,
            },
            diff_id: diff.0,
            stats,
        },
        out,
    ))
}

/// Writes the tree under `dir` as a layer on top of the layers `parent`
/// (diff ids, bottom first) and stores it: the compressed blob, and the
/// layer unpacked under its chain id, ready for `run`. One pass, on three
/// threads: the walk writes the tar (hashed: the diff id) to the
/// compressor (hashed again: the blob digest, written to a file) and to
/// the unpacker, the same one that unpacks pulled layers, so what a
/// container wrote is checked as any image's layer is. Published as a
/// pull publishes (synced, then renamed into place under the layer's
/// lock). The caller holds [`Store::pull_lock`] until the image that uses
/// the layer is recorded (GC empties tmp/ and removes unused layers under
/// the exclusive lock).
pub fn store_new_layer(
    store: &Store,
    dir: BorrowedFd<'_>,
    opts: &TarOptions,
    compression: LayerCompression,
    parent: &[Digest],
) -> Result<(NewLayer, Digest)> {
    let tmp_dir = store.tmp_dir();
    std::fs::create_dir_all(&tmp_dir).map_err(|e| Error::Io {
        op: format!("create {}", tmp_dir.display()),
        cause: e,
    })?;
    let blob = tempfile_in(&tmp_dir, "blob")?;
    let tree = tempfile_in(&tmp_dir, "layer")?;
    std::fs::remove_file(&tree.0)
        .and_then(|_| std::fs::create_dir(&tree.0))
        // The root as a taken tree's is made (adopt_layer), whatever the
        // umask.
        .and_then(|_| {
            std::fs::set_permissions(&tree.0, std::os::unix::fs::PermissionsExt::from_mode(0o755))
        })
        .map_err(|e| Error::Io {
            op: format!("create {}", tree.0.display()),
            cause: e,
        })?;
    let (to_unpack, from_walk) = std::sync::mpsc::sync_channel::<Vec<u8>>(32);
    let (to_compress, for_compress) = std::sync::mpsc::sync_channel::<Vec<u8>>(32);
    let (walked, unpacked, compressed) = std::thread::scope(|scope| {
        let unpacker = scope.spawn(|| {
            let r = crate::unpack::unpack(&tree.0, ChannelReader::new(from_walk), "new layer");
            r.map(|(stats, _)| stats)
        });
        let compressor = scope.spawn(|| compress_blob(&blob, compression, for_compress));
        let walked = (|| {
            let tee = Tee {
                a: Some(to_unpack),
                b: to_compress,
            };
            let mut tar = HashingWriter::new(io::BufWriter::with_capacity(256 << 10, tee));
            let stats = write_tar(dir, opts, &mut tar)?;
            let (diff_id, diff_size, buf) = tar.finish();
            // Flushed, then dropped: both readers see the end.
            buf.into_inner().map_err(|e| Error::Io {
                op: "write the layer tar".into(),
                cause: e.into_error(),
            })?;
            Ok::<_, Error>((stats, diff_id, diff_size))
        })();
        (walked, joined(unpacker.join()), joined(compressor.join()))
    });
    // A walk that stopped because a reader did says nothing: the reader's
    // error says why.
    let (stats, diff_id, diff_size) = match walked {
        Err(e) if broken(&e) => {
            unpacked?;
            compressed?;
            return Err(e);
        }
        w => w?,
    };
    let unpacked = unpacked?;
    let (digest, size) = compressed?;
    publish(
        store,
        &blob,
        &tree,
        Written {
            compression,
            digest,
            size,
            diff_id,
            diff_size,
            stats,
            unpacked_bytes: unpacked.bytes,
        },
        parent,
    )
}

/// [`store_new_layer`] for a directory no one needs after (a build step's
/// upper directory, its overlay unmounted): the directory itself becomes
/// the stored layer, rather than a copy unpacked from its tar. It is
/// moved into the store's tmp/ first (a kill leaves it there for the next
/// command's [`Store::clean_tmp`]), then walked once by fd as
/// [`write_tar`] walks any tree, writing the tar to the compressor on
/// another thread while each entry is made, in place, what the unpacker
/// would make of its tar entry (owner, mode, overlay's own xattrs
/// dropped, opaque marks as `trusted.overlay.opaque`, times in whole
/// seconds, sockets removed): the stored tree is the one a pull of the
/// layer gives, and the files are written once, not three times. Where
/// the directory is on another filesystem than the store, the tar path
/// is taken. `upper` is gone (moved or removed) when this returns Ok.
pub fn adopt_layer(
    store: &Store,
    upper: &Path,
    opts: &TarOptions,
    compression: LayerCompression,
    parent: &[Digest],
) -> Result<(NewLayer, Digest)> {
    let tmp_dir = store.tmp_dir();
    std::fs::create_dir_all(&tmp_dir).map_err(|e| Error::Io {
        op: format!("create {}", tmp_dir.display()),
        cause: e,
    })?;
    let blob = tempfile_in(&tmp_dir, "blob")?;
    let tree = tempfile_in(&tmp_dir, "layer")?;
    let io_err = |op: String| move |e: io::Error| Error::Io { op, cause: e };
    std::fs::remove_file(&tree.0).map_err(io_err(format!("remove {}", tree.0.display())))?;
    if let Err(e) = std::fs::rename(upper, &tree.0) {
        if e.raw_os_error() != Some(libc::EXDEV) {
            return Err(io_err(format!(
                "move {} into {}",
                upper.display(),
                tree.0.display()
            ))(e));
        }
        // Another filesystem: the tar path, then the directory goes.
        let fd = sfs::open(
            upper,
            libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_CLOEXEC,
            0,
        )
        .map_err(io_err(format!("open {}", upper.display())))?;
        let r = store_new_layer(store, fd.as_fd(), opts, compression, parent)?;
        crate::store::remove_tree(upper)?;
        return Ok(r);
    }
    let root = sfs::open(
        &tree.0,
        libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_CLOEXEC,
        0,
    )
    .map_err(io_err(format!("open {}", tree.0.display())))?;
    settle_root(root.as_fd()).map_err(io_err(format!("settle {}", tree.0.display())))?;
    let (to_compress, for_compress) = std::sync::mpsc::sync_channel::<Vec<u8>>(32);
    let (walked, compressed) = std::thread::scope(|scope| {
        let compressor = scope.spawn(|| compress_blob(&blob, compression, for_compress));
        let walked = (|| {
            let tee = Tee {
                a: None,
                b: to_compress,
            };
            let mut tar = HashingWriter::new(io::BufWriter::with_capacity(256 << 10, tee));
            let stats = walk_tar(root.as_fd(), opts, true, &mut tar)?;
            let (diff_id, diff_size, buf) = tar.finish();
            buf.into_inner().map_err(|e| Error::Io {
                op: "write the layer tar".into(),
                cause: e.into_error(),
            })?;
            Ok::<_, Error>((stats, diff_id, diff_size))
        })();
        (walked, joined(compressor.join()))
    });
    let (stats, diff_id, diff_size) = match walked {
        Err(e) if broken(&e) => {
            compressed?;
            return Err(e);
        }
        w => w?,
    };
    let (digest, size) = compressed?;
    publish(
        store,
        &blob,
        &tree,
        Written {
            compression,
            digest,
            size,
            diff_id,
            diff_size,
            stats,
            unpacked_bytes: stats.bytes,
        },
        parent,
    )
}

/// The root of a tree taken as a layer, as [`store_new_layer`] makes its
/// unpacked root: root's, 0755, no xattrs (the tar does not carry the
/// root: what a container did to its `/` is not in the layer).
fn settle_root(fd: BorrowedFd<'_>) -> io::Result<()> {
    let st = sfs::fstat(fd)?;
    for (k, _) in read_xattrs(fd, false)? {
        sfs::remove_xattr_fd(fd, &k, false)?;
    }
    if st.st_uid != 0 || st.st_gid != 0 {
        sfs::fchown_fd(fd, 0, 0)?;
    }
    sfs::fchmod(fd, 0o755)
}

/// A walk stopped because a reader did: the reader's error says why.
fn broken(e: &Error) -> bool {
    matches!(e, Error::Io { cause, .. } if cause.kind() == io::ErrorKind::BrokenPipe)
}

/// Compresses the tar chunks from `chunks` into `blob` (synced), and
/// returns the blob's digest and size.
fn compress_blob(
    blob: &TmpFile,
    compression: LayerCompression,
    chunks: std::sync::mpsc::Receiver<Vec<u8>>,
) -> Result<(Digest, u64)> {
    let file = blob.file()?;
    let out = HashingWriter::new(io::BufWriter::with_capacity(1 << 20, file));
    let io_err = |op: &str| {
        let op = op.to_string();
        move |e: io::Error| Error::Io {
            op: op.clone(),
            cause: e,
        }
    };
    let out = match compression {
        LayerCompression::Gzip => {
            let mut gz = AdaptiveGz::new(out).map_err(io_err("compress the layer (gzip)"))?;
            for chunk in chunks {
                gz.write_all(&chunk)
                    .map_err(io_err("compress the layer (gzip)"))?;
            }
            gz.finish().map_err(io_err("compress the layer (gzip)"))?
        }
        LayerCompression::Zstd => {
            let mut z = zstd::stream::write::Encoder::new(out, 3)
                .map_err(io_err("start the zstd encoder"))?;
            for chunk in chunks {
                z.write_all(&chunk)
                    .map_err(io_err("compress the layer (zstd)"))?;
            }
            z.finish().map_err(io_err("compress the layer (zstd)"))?
        }
    };
    let (digest, size, w) = out.finish();
    let file = w.into_inner().map_err(|e| Error::Io {
        op: format!("write {}", blob.0.display()),
        cause: e.into_error(),
    })?;
    file.sync_all().map_err(io_err("sync the layer blob"))?;
    Ok((digest, size))
}

/// gzip for new layers: deflate level 1 (most of a commit's time is
/// deflate; level 6 costs several times the CPU for a few percent), and
/// stored blocks where the data does not compress (random bytes, files
/// compressed already), where level 1 spends ~3 ns a byte for nothing: a
/// 256 KiB block that shrinks by less than 3% ends the compressor's run
/// (a sync flush: byte-aligned, not final) and the next blocks are
/// written as deflate stored blocks; every 16 blocks a fresh compressor
/// tries again (its back-references reach only its own data, so the runs
/// join into one valid deflate stream). Decided from the data alone, so
/// the same tar gives the same blob: one plain gzip member (RFC 1951,
/// 1952) that any gunzip reads.
struct AdaptiveGz<W: Write> {
    out: W,
    /// The compressor of the current run; None while storing.
    z: Option<flate2::Compress>,
    crc: flate2::Crc,
    /// Input not yet written (less than a block).
    pending: Vec<u8>,
    obuf: Vec<u8>,
    /// Blocks stored since the last try at compressing.
    stored: u32,
}

const GZ_BLOCK: usize = 256 << 10;
const GZ_RETRY: u32 = 16;

fn fast_deflate() -> flate2::Compress {
    flate2::Compress::new(flate2::Compression::fast(), false)
}

impl<W: Write> AdaptiveGz<W> {
    fn new(mut out: W) -> io::Result<Self> {
        // The header flate2's GzEncoder writes: no name, no time, OS unknown.
        out.write_all(&[0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff])?;
        Ok(AdaptiveGz {
            out,
            z: Some(fast_deflate()),
            crc: flate2::Crc::new(),
            pending: Vec::with_capacity(GZ_BLOCK),
            obuf: Vec::new(),
            stored: 0,
        })
    }

    /// Compresses `data` with `flush` through `z`, writing what comes out.
    fn deflate(
        out: &mut W,
        obuf: &mut Vec<u8>,
        z: &mut flate2::Compress,
        data: &[u8],
        flush: flate2::FlushCompress,
    ) -> io::Result<()> {
        let mut pos = 0;
        loop {
            obuf.clear();
            obuf.reserve(data.len() - pos + (data.len() - pos) / 8 + 4096);
            let before = z.total_in();
            let status = z
                .compress_vec(&data[pos..], obuf, flush)
                .map_err(io::Error::other)?;
            pos += (z.total_in() - before) as usize;
            out.write_all(obuf)?;
            let done = match flush {
                flate2::FlushCompress::Finish => status == flate2::Status::StreamEnd,
                // Done when the output had room to spare.
                _ => pos == data.len() && obuf.len() < obuf.capacity(),
            };
            if done {
                return Ok(());
            }
        }
    }

    /// `data` as stored blocks (not final): a byte-aligned header byte
    /// (BFINAL 0, BTYPE 00), LEN and its complement, the bytes.
    fn store(out: &mut W, data: &[u8]) -> io::Result<()> {
        for c in data.chunks(65535) {
            let n = c.len() as u16;
            let [a, b] = n.to_le_bytes();
            let [na, nb] = (!n).to_le_bytes();
            out.write_all(&[0, a, b, na, nb])?;
            out.write_all(c)?;
        }
        Ok(())
    }

    /// One block out, then how the next one is written chosen.
    fn block(&mut self) -> io::Result<()> {
        let data = std::mem::take(&mut self.pending);
        match self.z.as_mut() {
            Some(z) => {
                let (in0, out0) = (z.total_in(), z.total_out());
                Self::deflate(
                    &mut self.out,
                    &mut self.obuf,
                    z,
                    &data,
                    flate2::FlushCompress::None,
                )?;
                let (din, dout) = (z.total_in() - in0, z.total_out() - out0);
                // Compressed output lags its input; with a 256 KiB block
                // the lag is a small part of it.
                if dout * 100 >= din * 97 {
                    Self::deflate(
                        &mut self.out,
                        &mut self.obuf,
                        z,
                        &[],
                        flate2::FlushCompress::Sync,
                    )?;
                    self.z = None;
                    self.stored = 0;
                }
            }
            None => {
                Self::store(&mut self.out, &data)?;
                self.stored += 1;
                if self.stored >= GZ_RETRY {
                    self.z = Some(fast_deflate());
                }
            }
        }
        self.pending = data;
        self.pending.clear();
        Ok(())
    }

    fn finish(mut self) -> io::Result<W> {
        let data = std::mem::take(&mut self.pending);
        match self.z.as_mut() {
            Some(z) => Self::deflate(
                &mut self.out,
                &mut self.obuf,
                z,
                &data,
                flate2::FlushCompress::Finish,
            )?,
            None => {
                Self::store(&mut self.out, &data)?;
                // The final block: empty, stored.
                self.out.write_all(&[1, 0, 0, 0xff, 0xff])?;
            }
        }
        self.out.write_all(&self.crc.sum().to_le_bytes())?;
        self.out.write_all(&self.crc.amount().to_le_bytes())?;
        Ok(self.out)
    }
}

impl<W: Write> Write for AdaptiveGz<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.crc.update(buf);
        let mut rest = buf;
        while !rest.is_empty() {
            let n = (GZ_BLOCK - self.pending.len()).min(rest.len());
            self.pending.extend_from_slice(&rest[..n]);
            rest = &rest[n..];
            if self.pending.len() == GZ_BLOCK {
                self.block()?;
            }
        }
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Up to this many entries a new layer's tree is synced file by file
/// ([`sfs::sync_tree`]); above, with syncfs.
pub(crate) const SYNC_FILES_MAX: usize = 256;

/// What a layer's walk wrote.
struct Written {
    compression: LayerCompression,
    digest: Digest,
    size: u64,
    diff_id: Digest,
    diff_size: u64,
    stats: TarStats,
    unpacked_bytes: u64,
}

/// Publishes a layer written to `blob` and `tree` (both in tmp/) as a
/// pull publishes: under the layer's lock, the blob renamed into place,
/// the tree synced, renamed and recorded (unless the store has it).
fn publish(
    store: &Store,
    blob: &TmpFile,
    tree: &TmpFile,
    w: Written,
    parent: &[Digest],
) -> Result<(NewLayer, Digest)> {
    let layer = NewLayer {
        desc: Descriptor {
            media_type: w.compression.media_type().to_string(),
            digest: w.digest,
            size: w.size as i64,
            urls: vec![],
            platform: None,
            annotations: None,
        },
        diff_id: w.diff_id,
        stats: w.stats,
    };
    let mut diffs = parent.to_vec();
    diffs.push(layer.diff_id.clone());
    let chain = crate::manifest::chain_ids(&diffs)
        .pop()
        .expect("one diff id at least");
    let _lock = store.layer_lock(&chain)?;
    let io_err = |op: String| move |e: io::Error| Error::Io { op, cause: e };
    if !store.has_blob(&layer.desc.digest) {
        std::fs::rename(&blob.0, store.blob_path(&layer.desc.digest))
            .map_err(io_err("store the layer blob".into()))?;
    }
    if !store.has_layer(&chain)? {
        let fd = sfs::open(&tree.0, libc::O_RDONLY | libc::O_DIRECTORY, 0)
            .map_err(io_err("open the unpacked layer".into()))?;
        // A small layer (a RUN step's few files) file by file, a large
        // one with one syncfs.
        if !sfs::sync_tree(fd.as_fd(), SYNC_FILES_MAX)
            .map_err(io_err("sync the unpacked layer".into()))?
        {
            sfs::syncfs(fd.as_fd()).map_err(io_err("sync the unpacked layer".into()))?;
        }
        let dest = store.layer_dir(&chain);
        crate::store::remove_tree(&dest)?;
        std::fs::rename(&tree.0, &dest)
            .map_err(io_err(format!("move the layer into {}", dest.display())))?;
        store.add_layer(&crate::store::LayerRecord {
            chain: &chain,
            diff_id: &layer.diff_id,
            blob: &layer.desc.digest,
            media_type: &layer.desc.media_type,
            compressed_size: w.size,
            size: w.unpacked_bytes,
            diff_size: w.diff_size,
        })?;
    }
    Ok((layer, chain))
}

fn joined<T>(r: std::thread::Result<Result<T>>) -> Result<T> {
    r.unwrap_or_else(|_| Err(Error::Usage("a layer writer thread panicked".into())))
}

/// A writer that sends each write, copied, to two channels (or one).
struct Tee {
    a: Option<std::sync::mpsc::SyncSender<Vec<u8>>>,
    b: std::sync::mpsc::SyncSender<Vec<u8>>,
}

impl Write for Tee {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        for t in self.a.iter().chain([&self.b]) {
            if t.send(buf.to_vec()).is_err() {
                return Err(io::Error::new(
                    io::ErrorKind::BrokenPipe,
                    "the layer's unpacker or compressor stopped",
                ));
            }
        }
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Reads what a channel of chunks carries, to its end.
struct ChannelReader {
    rx: std::sync::mpsc::Receiver<Vec<u8>>,
    cur: Vec<u8>,
    pos: usize,
}

impl ChannelReader {
    fn new(rx: std::sync::mpsc::Receiver<Vec<u8>>) -> Self {
        ChannelReader {
            rx,
            cur: Vec::new(),
            pos: 0,
        }
    }
}

impl io::Read for ChannelReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.pos == self.cur.len() {
            match self.rx.recv() {
                Ok(v) => {
                    self.cur = v;
                    self.pos = 0;
                }
                Err(_) => return Ok(0),
            }
        }
        let n = buf.len().min(self.cur.len() - self.pos);
        buf[..n].copy_from_slice(&self.cur[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

/// A file or directory in the store's tmp directory, removed when dropped
/// unless it was moved away.
struct TmpFile(std::path::PathBuf);

impl TmpFile {
    fn file(&self) -> Result<std::fs::File> {
        std::fs::OpenOptions::new()
            .write(true)
            .truncate(true)
            .open(&self.0)
            .map_err(|e| Error::Io {
                op: format!("open {}", self.0.display()),
                cause: e,
            })
    }
}

impl Drop for TmpFile {
    fn drop(&mut self) {
        if std::fs::remove_file(&self.0).is_err() {
            let _ = crate::store::remove_tree(&self.0);
        }
    }
}

fn tempfile_in(dir: &Path, what: &str) -> Result<TmpFile> {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    let name = format!(
        "commit-{what}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    );
    let p = dir.join(name);
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&p)
        .map_err(|e| Error::Io {
            op: format!("create {}", p.display()),
            cause: e,
        })?;
    Ok(TmpFile(p))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;
    use std::os::unix::fs::{symlink, MetadataExt, PermissionsExt};
    use std::path::PathBuf;

    fn require_root() {
        // SAFETY: geteuid has no preconditions.
        let uid = unsafe { libc::geteuid() };
        assert_eq!(
            uid, 0,
            "this test makes devices, trusted.* xattrs and overlay mounts: run it as root"
        );
    }

    fn dirfd(p: &Path) -> OwnedFd {
        sfs::open(p, libc::O_RDONLY | libc::O_DIRECTORY, 0).unwrap()
    }

    fn mknod(p: &Path, kind: u32, major: u32, minor: u32) {
        let c = std::ffi::CString::new(p.as_os_str().as_bytes()).unwrap();
        // SAFETY: a valid C string; mknod creates a node, nothing else.
        let r = unsafe { libc::mknod(c.as_ptr(), kind | 0o640, libc::makedev(major, minor)) };
        assert_eq!(
            r,
            0,
            "mknod {}: {}",
            p.display(),
            io::Error::last_os_error()
        );
    }

    fn setx(p: &Path, k: &str, v: &[u8]) {
        let c = std::ffi::CString::new(p.as_os_str().as_bytes()).unwrap();
        let k = std::ffi::CString::new(k).unwrap();
        // SAFETY: valid C strings and a value buffer of its length.
        let r = unsafe { libc::lsetxattr(c.as_ptr(), k.as_ptr(), v.as_ptr().cast(), v.len(), 0) };
        assert_eq!(
            r,
            0,
            "setxattr {k:?} on {}: {}",
            p.display(),
            io::Error::last_os_error()
        );
    }

    fn chown(p: &Path, uid: u32, gid: u32) {
        std::os::unix::fs::lchown(p, Some(uid), Some(gid)).unwrap();
    }

    fn set_mtime(p: &Path, t: i64) {
        let c = std::ffi::CString::new(p.as_os_str().as_bytes()).unwrap();
        let ts = [libc::timespec {
            tv_sec: t,
            tv_nsec: 0,
        }; 2];
        // SAFETY: valid C string and a two-element timespec array.
        let r = unsafe {
            libc::utimensat(
                libc::AT_FDCWD,
                c.as_ptr(),
                ts.as_ptr(),
                libc::AT_SYMLINK_NOFOLLOW,
            )
        };
        assert_eq!(r, 0);
    }

    /// A tree with every kind of entry an upper directory holds.
    fn every_kind(root: &Path) {
        let p = |s: &str| root.join(s);
        std::fs::create_dir_all(p("etc/app")).unwrap();
        std::fs::write(p("etc/app/conf"), "a=1\n").unwrap();
        std::fs::write(p("etc/setuid"), "x").unwrap();
        std::fs::set_permissions(p("etc/setuid"), std::fs::Permissions::from_mode(0o4755)).unwrap();
        std::fs::create_dir(p("tmp")).unwrap();
        std::fs::set_permissions(p("tmp"), std::fs::Permissions::from_mode(0o1777)).unwrap();
        std::fs::write(p("big"), vec![7u8; 3 << 20]).unwrap();
        std::fs::hard_link(p("big"), p("etc/big-link")).unwrap();
        symlink("/etc/shadow", p("out")).unwrap();
        symlink("../../../../..", p("etc/up")).unwrap();
        mknod(&p("null"), libc::S_IFCHR, 1, 3);
        mknod(&p("loop"), libc::S_IFBLK, 7, 0);
        mknod(&p("fifo"), libc::S_IFIFO, 0, 0);
        let long = "d".repeat(120) + "/" + &"n".repeat(140);
        std::fs::create_dir_all(p(&"d".repeat(120))).unwrap();
        std::fs::write(p(&long), "long").unwrap();
        std::fs::write(p("new\nline"), "nl").unwrap();
        std::fs::write(p("owned"), "o").unwrap();
        chown(&p("owned"), 1234, 5678);
        chown(&p("out"), 42, 43);
        setx(
            &p("etc/setuid"),
            "security.capability",
            b"\x01\x00\x00\x02\x00\x20\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00",
        );
        setx(&p("etc/app/conf"), "user.note", b"v\n=");
        // Overlay's view: a whiteout, an opaque directory.
        mknod(&p("etc/gone"), libc::S_IFCHR, 0, 0);
        std::fs::set_permissions(p("etc/gone"), std::fs::Permissions::from_mode(0o0)).unwrap();
        std::fs::create_dir(p("opaque")).unwrap();
        std::fs::write(p("opaque/only"), "only").unwrap();
        setx(&p("opaque"), "trusted.overlay.opaque", b"y");
        set_mtime(&p("etc/app/conf"), 1_000_000_000);
        set_mtime(&p("out"), 1_100_000_000);
        // Regression: an unpacked whiteout took the time of its unpacking
        // (the round trip failed when a second passed in between).
        set_mtime(&p("etc/gone"), 1_200_000_000);
    }

    #[derive(Debug, PartialEq)]
    struct Node {
        kind: u32,
        mode: u32,
        owner: (u32, u32),
        mtime: Option<i64>,
        rdev: u64,
        data: Vec<u8>,
        xattrs: Vec<(Vec<u8>, Vec<u8>)>,
        /// The first path of its inode (hard links).
        inode_of: PathBuf,
    }

    /// Everything under `root` (paths relative), directory times left out
    /// unless `dir_times`.
    fn snapshot(root: &Path, dir_times: bool) -> BTreeMap<PathBuf, Node> {
        fn walk(
            root: &Path,
            rel: &Path,
            inodes: &mut HashMap<u64, PathBuf>,
            out: &mut BTreeMap<PathBuf, Node>,
            dir_times: bool,
        ) {
            let mut names: Vec<_> = std::fs::read_dir(root.join(rel))
                .unwrap()
                .map(|e| e.unwrap().file_name())
                .collect();
            names.sort();
            for n in names {
                let r = rel.join(&n);
                let p = root.join(&r);
                let m = std::fs::symlink_metadata(&p).unwrap();
                let kind = m.mode() & libc::S_IFMT;
                let fd = sfs::open(&p, libc::O_PATH | libc::O_NOFOLLOW, 0).unwrap();
                let xattrs = read_xattrs(fd.as_fd(), true).unwrap();
                let data = match kind {
                    libc::S_IFREG => std::fs::read(&p).unwrap(),
                    libc::S_IFLNK => std::fs::read_link(&p).unwrap().into_os_string().into_vec(),
                    _ => Vec::new(),
                };
                let inode_of = inodes.entry(m.ino()).or_insert(r.clone()).clone();
                let is_dir = kind == libc::S_IFDIR;
                out.insert(
                    r.clone(),
                    Node {
                        kind,
                        mode: m.mode() & 0o7777,
                        owner: (m.uid(), m.gid()),
                        mtime: (!is_dir || dir_times).then_some(m.mtime()),
                        rdev: m.rdev(),
                        data,
                        xattrs,
                        inode_of,
                    },
                );
                if is_dir {
                    walk(root, &r, inodes, out, dir_times);
                }
            }
        }
        let mut out = BTreeMap::new();
        walk(
            root,
            Path::new(""),
            &mut HashMap::new(),
            &mut out,
            dir_times,
        );
        out
    }

    fn tar_of(root: &Path, opts: &TarOptions) -> Vec<u8> {
        let mut v = Vec::new();
        write_tar(dirfd(root).as_fd(), opts, &mut v).unwrap();
        v
    }

    fn unpack_into(data: &[u8], dir: &Path) {
        std::fs::create_dir_all(dir).unwrap();
        crate::unpack::unpack(dir, data, "test").unwrap();
    }

    const OVERLAY: TarOptions = TarOptions {
        overlay: true,
        clamp_mtime: None,
        id_maps: None,
    };

    /// A tree written from a user namespace: owners as the container saw
    /// them, ids outside its maps as the overflow id.
    #[test]
    fn owners_are_mapped_back_through_the_user_namespace() {
        require_root();
        let tmp = tempfile::tempdir().unwrap();
        for (n, uid, gid) in [
            ("root", 100_000, 200_000),
            ("app", 101_000, 201_005),
            ("host", 0, 7),
        ] {
            std::fs::write(tmp.path().join(n), n).unwrap();
            chown(&tmp.path().join(n), uid, gid);
        }
        let opts = TarOptions {
            id_maps: Some(IdMaps {
                uids: vec![(0, 100_000, 65536)],
                gids: vec![(0, 200_000, 1000), (1000, 201_000, 10)],
            }),
            ..Default::default()
        };
        let data = tar_of(tmp.path(), &opts);
        let mut r = crate::tar::Reader::new(&data[..]);
        let mut got = Vec::new();
        while let Some(e) = r.next_entry().unwrap() {
            got.push((show(&e.path), e.uid, e.gid));
        }
        assert_eq!(
            got,
            vec![
                ("app".to_string(), 1000, 1005),
                ("host".to_string(), 65534, 65534),
                ("root".to_string(), 0, 0),
            ]
        );
    }

    /// An upper directory with every kind of entry, written as a layer and
    /// unpacked by berth's unpacker, comes back the same: paths, kinds,
    /// modes, owners, times, contents, link targets, devices, hard links,
    /// xattrs (security.capability too), whiteouts and opaque directories
    /// (which the unpacker turns back into overlay's form).
    #[test]
    fn a_tree_round_trips_through_a_layer() {
        require_root();
        let tmp = tempfile::tempdir().unwrap();
        let src = tmp.path().join("upper");
        std::fs::create_dir(&src).unwrap();
        every_kind(&src);
        let data = tar_of(&src, &OVERLAY);
        let back = tmp.path().join("back");
        unpack_into(&data, &back);
        let (want, got) = (snapshot(&src, false), snapshot(&back, false));
        assert_eq!(
            want.keys().collect::<Vec<_>>(),
            got.keys().collect::<Vec<_>>()
        );
        for (k, w) in &want {
            assert_eq!(Some(w), got.get(k), "{}", k.display());
        }
        // The archive says what OCI says: the whiteout and the opaque marker
        // by their names, the marker first in its directory.
        let mut names = Vec::new();
        let mut r = crate::tar::Reader::new(&data[..]);
        while let Some(e) = r.next_entry().unwrap() {
            assert!(
                !e.xattrs
                    .iter()
                    .any(|(k, _)| k.starts_with(b"trusted.overlay.")),
                "{}: overlay xattrs written",
                show(&e.path)
            );
            names.push(show(&e.path));
        }
        let at = |n: &str| {
            names
                .iter()
                .position(|x| x == n)
                .unwrap_or_else(|| panic!("{n} not in {names:?}"))
        };
        assert!(at("etc/.wh.gone") > at("etc/"));
        assert_eq!(at("opaque/.wh..wh..opq"), at("opaque/") + 1);
        assert!(at("opaque/.wh..wh..opq") < at("opaque/only"));
        // Hard links: one copy of the data, then a link.
        let big = at("big");
        assert!(big < at("etc/big-link"));
        let mut sorted = names.clone();
        sorted.sort_by(|a, b| {
            a.trim_end_matches('/')
                .split('/')
                .cmp(b.trim_end_matches('/').split('/'))
        });
        assert_eq!(names, sorted, "not in sorted order");
        // A plain rootfs (no overlay): the 0:0 device stays a device.
        let plain = tar_of(&src, &TarOptions::default());
        let mut r = crate::tar::Reader::new(&plain[..]);
        let mut saw = false;
        while let Some(e) = r.next_entry().unwrap() {
            assert!(!e.path.ends_with(b".wh..wh..opq") && !show(&e.path).contains(".wh.gone"));
            saw |= e.path == b"etc/gone" && e.kind == Kind::Char;
        }
        assert!(saw);
    }

    /// A step's upper directory taken as the stored layer
    /// ([`adopt_layer`]) is the layer the tar path stores
    /// ([`store_new_layer`]: written as a tar, unpacked by the unpacker):
    /// the same blob, diff id and chain id, and the same tree, entry by
    /// entry (kinds, modes, owners, times in whole seconds, contents,
    /// link targets, devices, hard links, xattrs), for hostile content:
    /// symlinks out of the tree, devices, setuid files with capabilities,
    /// whiteouts and opaque directories (trusted. and user.overlay.),
    /// overlay's own bookkeeping xattrs, a socket, a root a container
    /// chmodded and marked; with and without a user namespace's id maps
    /// and SOURCE_DATE_EPOCH. Each fails when a settle step is left out.
    #[test]
    fn a_taken_upper_is_the_layer_the_tar_path_stores() {
        require_root();
        let with_maps = TarOptions {
            overlay: true,
            clamp_mtime: Some(1_150_000_000),
            id_maps: Some(IdMaps {
                uids: vec![(0, 100_000, 65536)],
                gids: vec![(0, 100_000, 65536)],
            }),
        };
        for opts in [OVERLAY, with_maps] {
            let tmp = tempfile::tempdir().unwrap();
            let upper = tmp.path().join("upper");
            std::fs::create_dir(&upper).unwrap();
            every_kind(&upper);
            let p = |s: &str| upper.join(s);
            std::fs::create_dir(p("uopaque")).unwrap();
            std::fs::write(p("uopaque/f"), "f").unwrap();
            setx(&p("uopaque"), "user.overlay.opaque", b"y");
            setx(&p("etc/app/conf"), "trusted.overlay.origin", b"\x00\xfb");
            setx(&p("etc"), "trusted.overlay.impure", b"y");
            setx(&p("tmp"), "trusted.overlay.opaque", b"x");
            let _sock = std::os::unix::net::UnixListener::bind(p("etc/sock")).unwrap();
            std::fs::write(p("mapped"), "m").unwrap();
            chown(&p("mapped"), 101_000, 100_007);
            setx(
                &p("mapped"),
                "security.capability",
                &[
                    1, 0, 0, 2, 0, 0x20, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
                ],
            );
            std::fs::set_permissions(p("mapped"), std::fs::Permissions::from_mode(0o4750)).unwrap();
            std::fs::set_permissions(&upper, std::fs::Permissions::from_mode(0o700)).unwrap();
            chown(&upper, 5, 5);
            setx(&upper, "trusted.overlay.opaque", b"y");
            setx(&upper, "user.root", b"r");
            let (a, b) = (tmp.path().join("a"), tmp.path().join("b"));
            let (sa, sb) = (Store::open(&a).unwrap(), Store::open(&b).unwrap());
            let (la, ca) = store_new_layer(
                &sa,
                dirfd(&upper).as_fd(),
                &opts,
                LayerCompression::Gzip,
                &[],
            )
            .unwrap();
            let (lb, cb) = adopt_layer(&sb, &upper, &opts, LayerCompression::Gzip, &[]).unwrap();
            assert!(!upper.exists(), "the upper directory was not taken");
            assert_eq!(la.diff_id, lb.diff_id);
            assert_eq!(la.desc.digest, lb.desc.digest);
            assert_eq!(ca, cb);
            let (ta, tb) = (sa.layer_dir(&ca), sb.layer_dir(&cb));
            let (want, got) = (snapshot(&ta, true), snapshot(&tb, true));
            assert_eq!(
                want.keys().collect::<Vec<_>>(),
                got.keys().collect::<Vec<_>>()
            );
            for (k, w) in &want {
                assert_eq!(Some(w), got.get(k), "{}", k.display());
            }
            assert!(!got.contains_key(Path::new("etc/sock")));
            assert_eq!(
                got[Path::new("uopaque")].xattrs,
                vec![(b"trusted.overlay.opaque".to_vec(), b"y".to_vec())]
            );
            // The roots: root's, 0755, no xattrs.
            for t in [&ta, &tb] {
                let m = std::fs::metadata(t).unwrap();
                assert_eq!((m.mode() & 0o7777, m.uid(), m.gid()), (0o755, 0, 0));
                assert!(read_xattrs(dirfd(t).as_fd(), false).unwrap().is_empty());
            }
            // Times in whole seconds, as the unpacker sets them (atimes
            // moved with the snapshot's reads).
            for k in got.keys() {
                let m = std::fs::symlink_metadata(tb.join(k)).unwrap();
                assert_eq!(m.mtime_nsec(), 0, "{}", k.display());
            }
            // Taken again, the store's tree is a layer like any other: it
            // writes the same layer.
            let again = tar_of(&tb, &opts_without_maps(&opts));
            let mut want_tar = Vec::new();
            {
                let gz = flate2::read::GzDecoder::new(
                    std::fs::File::open(sb.blob_path(&lb.desc.digest)).unwrap(),
                );
                io::copy(&mut io::BufReader::new(gz), &mut want_tar).unwrap();
            }
            assert_eq!(Digest::of(&again), Digest::of(&want_tar));
        }
    }

    fn opts_without_maps(o: &TarOptions) -> TarOptions {
        TarOptions {
            id_maps: None,
            ..o.clone()
        }
    }

    /// New layers' gzip: any gunzip reads it back; compressible data is
    /// compressed, random data stored (about its own size, fast), the two
    /// mixed either way round; the same input gives the same bytes.
    #[test]
    fn adaptive_gzip_reads_back_and_stores_what_does_not_compress() {
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        let mut random = vec![0u8; 3 << 20];
        for b in random.iter_mut() {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            *b = seed as u8;
        }
        let text: Vec<u8> = (0..(3 << 20)).map(|i| b"file 1234\n"[i % 10]).collect();
        let gz = |data: &[u8], chunk: usize| {
            let mut z = AdaptiveGz::new(Vec::new()).unwrap();
            for c in data.chunks(chunk) {
                z.write_all(c).unwrap();
            }
            z.finish().unwrap()
        };
        let gunzip = |data: &[u8]| {
            let mut out = Vec::new();
            io::Read::read_to_end(&mut flate2::read::GzDecoder::new(data), &mut out).unwrap();
            out
        };
        let mixed: Vec<u8> = [&text[..], &random[..], &text[..], &[][..]].concat();
        let back: Vec<u8> = [&random[..], &text[..5000], &random[..100]].concat();
        for (what, data) in [
            ("text", &text),
            ("random", &random),
            ("mixed", &mixed),
            ("random first", &back),
        ] {
            let z = gz(data, 100_003);
            assert_eq!(&gunzip(&z), data, "{what}");
            assert_eq!(z, gz(data, 4096), "{what}: not the same bytes");
            // Also as `gzip -d` reads it.
            let mut child = std::process::Command::new("gzip")
                .arg("-dc")
                .stdin(std::process::Stdio::piped())
                .stdout(std::process::Stdio::piped())
                .spawn()
                .expect("gzip");
            let mut stdin = child.stdin.take().unwrap();
            let zz = z.clone();
            let feeder = std::thread::spawn(move || stdin.write_all(&zz).unwrap());
            let out = child.wait_with_output().unwrap();
            feeder.join().unwrap();
            assert!(out.status.success(), "{what}: gzip -d failed");
            assert_eq!(&out.stdout, data, "{what}: gzip -d");
        }
        let (zt, zr) = (gz(&text, 65536), gz(&random, 65536));
        assert!(zt.len() < text.len() / 20, "text: {}", zt.len());
        assert!(
            zr.len() < random.len() + random.len() / 50,
            "random: {}",
            zr.len()
        );
        assert!(gz(&[], 1).len() < 32);
    }

    /// The same tree gives the same bytes, whatever order it was made in
    /// (and so whatever its inode numbers); SOURCE_DATE_EPOCH clamps times.
    #[test]
    fn the_same_tree_gives_the_same_digest() {
        require_root();
        let tmp = tempfile::tempdir().unwrap();
        let (a, b) = (tmp.path().join("a"), tmp.path().join("b"));
        std::fs::create_dir(&a).unwrap();
        every_kind(&a);
        let one = tar_of(&a, &OVERLAY);
        assert_eq!(one, tar_of(&a, &OVERLAY));
        // A copy made in another order: the unpacker writes it in archive
        // order; reversed here by making the files first in reverse.
        std::fs::create_dir(&b).unwrap();
        for n in ["zz", "yy", "xx"] {
            std::fs::write(b.join(n), n).unwrap();
            std::fs::write(a.join(n), n).unwrap();
        }
        for n in ["xx", "yy", "zz"] {
            std::fs::remove_file(b.join(n)).unwrap();
        }
        unpack_into(&tar_of(&a, &OVERLAY), &b);
        // Directory times differ (the unpack touched them): clamp to compare.
        let clamp = TarOptions {
            clamp_mtime: Some(1_050_000_000),
            ..OVERLAY
        };
        let (ta, tb) = (tar_of(&a, &clamp), tar_of(&b, &clamp));
        assert_eq!(Digest::of(&ta), Digest::of(&tb));
        let mut r = crate::tar::Reader::new(&ta[..]);
        while let Some(e) = r.next_entry().unwrap() {
            assert!(e.mtime.0 <= 1_050_000_000, "{}", show(&e.path));
            if e.path == b"etc/app/conf" {
                assert_eq!(e.mtime.0, 1_000_000_000, "older times are kept");
            }
        }
    }

    /// The layer over a lower layer, both mounted by overlayfs as berth
    /// mounts a container's root: the whiteout hides the lower file, the
    /// opaque directory the lower directory's contents.
    #[test]
    fn whiteouts_and_opaque_dirs_apply_over_a_lower_layer() {
        require_root();
        let tmp = tempfile::tempdir().unwrap();
        let lower = tmp.path().join("lower");
        let upper = tmp.path().join("upper");
        for d in ["etc", "opaque/sub", "keep"] {
            std::fs::create_dir_all(lower.join(d)).unwrap();
        }
        std::fs::write(lower.join("etc/gone"), "lower").unwrap();
        std::fs::write(lower.join("opaque/hidden"), "lower").unwrap();
        std::fs::write(lower.join("opaque/sub/deep"), "lower").unwrap();
        std::fs::write(lower.join("keep/kept"), "lower").unwrap();
        std::fs::create_dir(&upper).unwrap();
        every_kind(&upper);
        let (l1, l2) = (tmp.path().join("l1"), tmp.path().join("l2"));
        unpack_into(&tar_of(&lower, &TarOptions::default()), &l1);
        unpack_into(&tar_of(&upper, &OVERLAY), &l2);
        let merged = tmp.path().join("merged");
        std::fs::create_dir(&merged).unwrap();
        let opts = format!("lowerdir={}:{}", l2.display(), l1.display());
        let st = std::process::Command::new("mount")
            .args(["-t", "overlay", "overlay", "-o", &opts])
            .arg(&merged)
            .status()
            .unwrap();
        assert!(st.success(), "mount overlay");
        let seen = (
            merged.join("etc/gone").symlink_metadata().is_err(),
            std::fs::read_dir(merged.join("opaque"))
                .unwrap()
                .map(|e| e.unwrap().file_name())
                .collect::<Vec<_>>(),
            std::fs::read_to_string(merged.join("keep/kept")).ok(),
            std::fs::read_to_string(merged.join("etc/app/conf")).ok(),
        );
        let _ = std::process::Command::new("umount").arg(&merged).status();
        assert!(seen.0, "the whiteout did not hide etc/gone");
        assert_eq!(seen.1, vec![std::ffi::OsString::from("only")]);
        assert_eq!(seen.2.as_deref(), Some("lower"));
        assert_eq!(seen.3.as_deref(), Some("a=1\n"));
    }

    /// A file that a container swaps for a symlink to a host file while
    /// the tree is written never makes the writer read the host file.
    #[test]
    fn a_file_swapped_for_a_symlink_is_never_followed() {
        let tmp = tempfile::tempdir().unwrap();
        let secret = tmp.path().join("secret");
        std::fs::write(&secret, "SECRET-OUTSIDE-THE-TREE").unwrap();
        let root = tmp.path().join("root");
        std::fs::create_dir(&root).unwrap();
        std::fs::write(root.join("f"), "inside").unwrap();
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flipper = {
            let (root, secret, stop) = (root.clone(), secret.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut n = 0u64;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let tmpn = root.join(format!(".t{n}"));
                    if n % 2 == 0 {
                        symlink(&secret, &tmpn).unwrap();
                    } else {
                        std::fs::write(&tmpn, "inside").unwrap();
                    }
                    std::fs::rename(&tmpn, root.join("f")).unwrap();
                    n += 1;
                }
                n
            })
        };
        let mut links = 0;
        let start = std::time::Instant::now();
        while start.elapsed() < std::time::Duration::from_secs(1) {
            let data = tar_of(&root, &TarOptions::default());
            assert!(
                !data.windows(6).any(|w| w == b"SECRET"),
                "the writer read the file outside the tree"
            );
            let mut r = crate::tar::Reader::new(&data[..]);
            while let Some(e) = r.next_entry().unwrap() {
                links += usize::from(e.kind == Kind::Symlink);
            }
        }
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        assert!(flipper.join().unwrap() > 10);
        assert!(links > 0, "the race was never seen (no symlink written)");
    }

    /// gzip and zstd: both digests are those of the bytes written.
    #[test]
    fn digests_are_computed_while_streaming() {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::write(tmp.path().join("f"), vec![1u8; 100_000]).unwrap();
        let plain = tar_of(tmp.path(), &TarOptions::default());
        for c in [LayerCompression::Gzip, LayerCompression::Zstd] {
            let (l, blob) = write_layer(
                dirfd(tmp.path()).as_fd(),
                &TarOptions::default(),
                c,
                Vec::new(),
            )
            .unwrap();
            assert_eq!(l.diff_id, Digest::of(&plain));
            assert_eq!(l.desc.digest, Digest::of(&blob));
            assert_eq!(l.desc.size as usize, blob.len());
            assert!(blob.len() < plain.len() / 10);
        }
    }
}
