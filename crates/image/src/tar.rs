//! A streaming tar reader for image layers.
//!
//! Written here rather than taken from the `tar` crate because layers are
//! hostile input and this reader has to guarantee what that crate does
//! not: bounded memory for PAX and GNU long-name records (the crate reads
//! them whole, whatever size the header claims), the PAX `size` always
//! overriding the header's (CVE-2026-33055, CVE-2025-62518: a size
//! differential makes two parsers see two different archives), PAX
//! records applying to exactly the next entry, global PAX headers ignored
//! as Go's archive/tar (what containerd and moby use) ignores them, and an
//! error, never a hang, on a truncated or garbage stream.
//! It reads only: what to create, and where, is `unpack`'s business.

use crate::error::{Error, Result};
use std::io::{self, Read};

const BLOCK: usize = 512;
/// Upper bound for one PAX extended header or GNU long name/link record.
pub const MAX_META: u64 = 1 << 20;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    File,
    Hardlink,
    Symlink,
    Char,
    Block,
    Dir,
    Fifo,
}

/// One archive member, with PAX and GNU extensions applied.
#[derive(Clone, Debug)]
pub struct Entry {
    /// The name as stored (bytes; not yet cleaned).
    pub path: Vec<u8>,
    pub kind: Kind,
    /// Permission bits with setuid, setgid and sticky (07777).
    pub mode: u32,
    pub uid: u64,
    pub gid: u64,
    /// Data bytes that follow (files only; other kinds' data is skipped).
    pub size: u64,
    /// Seconds and nanoseconds.
    pub mtime: (i64, u32),
    /// Symlink target or hardlink source.
    pub link: Vec<u8>,
    pub dev_major: u32,
    pub dev_minor: u32,
    /// From `SCHILY.xattr.*` PAX records.
    pub xattrs: Vec<(Vec<u8>, Vec<u8>)>,
}

pub struct Reader<R> {
    inner: R,
    /// Unread data bytes of the current entry, then its padding.
    remaining: u64,
    padding: u64,
    done: bool,
}

#[derive(Default)]
struct Pending {
    pax: Option<Vec<(Vec<u8>, Vec<u8>)>>,
    long_name: Option<Vec<u8>>,
    long_link: Option<Vec<u8>>,
}

fn err(msg: impl Into<String>) -> Error {
    Error::Tar(msg.into())
}

impl<R: Read> Reader<R> {
    pub fn new(inner: R) -> Self {
        Reader {
            inner,
            remaining: 0,
            padding: 0,
            done: false,
        }
    }

    /// The underlying stream. Nothing is read ahead: right after
    /// `next_entry`, its position is where the entry's data starts.
    pub fn get_ref(&self) -> &R {
        &self.inner
    }

    /// The underlying stream (to drain what follows the archive's end,
    /// so the whole blob is hashed).
    pub fn into_inner(self) -> R {
        self.inner
    }

    /// Reads the current entry's data (at most what is left of it).
    pub fn read_data(&mut self, buf: &mut [u8]) -> Result<usize> {
        if self.remaining == 0 {
            return Ok(0);
        }
        let want = buf
            .len()
            .min(usize::try_from(self.remaining).unwrap_or(usize::MAX));
        let n = read_some(&mut self.inner, &mut buf[..want])?;
        if n == 0 {
            return Err(err("the archive ends in the middle of a file"));
        }
        self.remaining -= n as u64;
        Ok(n)
    }

    /// Skips what is left of the current entry and its padding.
    fn skip_rest(&mut self) -> Result<()> {
        let n = self.remaining + self.padding;
        let copied = io::copy(&mut (&mut self.inner).take(n), &mut io::sink())
            .map_err(|e| err(format!("read: {e}")))?;
        if copied != n {
            return Err(err("the archive ends in the middle of an entry"));
        }
        self.remaining = 0;
        self.padding = 0;
        Ok(())
    }

    fn read_block(&mut self, block: &mut [u8; BLOCK]) -> Result<bool> {
        let mut got = 0;
        while got < BLOCK {
            let n = read_some(&mut self.inner, &mut block[got..])?;
            if n == 0 {
                if got == 0 {
                    return Ok(false);
                }
                return Err(err("the archive ends inside a header block"));
            }
            got += n;
        }
        Ok(true)
    }

    /// Reads a metadata record's body (PAX, GNU long name), bounded.
    fn read_meta(&mut self, size: u64, what: &str) -> Result<Vec<u8>> {
        if size > MAX_META {
            return Err(err(format!(
                "a {what} record of {size} bytes (at most {MAX_META} are accepted)"
            )));
        }
        let mut v = vec![0u8; size as usize];
        let mut got = 0;
        while got < v.len() {
            let n = read_some(&mut self.inner, &mut v[got..])?;
            if n == 0 {
                return Err(err(format!("the archive ends inside a {what} record")));
            }
            got += n;
        }
        self.remaining = 0;
        self.padding = padding(size);
        self.skip_rest()?;
        Ok(v)
    }

    /// The next entry, or None at the end of the archive.
    pub fn next_entry(&mut self) -> Result<Option<Entry>> {
        if self.done {
            return Ok(None);
        }
        self.skip_rest()?;
        let mut pending = Pending::default();
        loop {
            let mut h = [0u8; BLOCK];
            if !self.read_block(&mut h)? {
                // EOF without the zero blocks: accepted (as GNU tar and Go
                // do), but only between entries.
                if pending.pax.is_some()
                    || pending.long_name.is_some()
                    || pending.long_link.is_some()
                {
                    return Err(err("the archive ends after an extended header"));
                }
                self.done = true;
                return Ok(None);
            }
            if h.iter().all(|&b| b == 0) {
                if pending.pax.is_some()
                    || pending.long_name.is_some()
                    || pending.long_link.is_some()
                {
                    return Err(err(
                        "an extended header is followed by the end of the archive",
                    ));
                }
                self.done = true;
                return Ok(None);
            }
            check_sum(&h)?;
            let typ = h[156];
            let hdr_size = number(&h[124..136], "size")?;
            let size = match pending.pax.as_ref().and_then(|p| pax_get(p, b"size")) {
                // The PAX size always wins (CVE-2026-33055).
                Some(v) => parse_dec(v, "PAX size")?,
                None => hdr_size,
            };
            match typ {
                b'x' => {
                    if pending.pax.is_some() {
                        return Err(err("two PAX headers in a row"));
                    }
                    let body = self.read_meta(hdr_size, "PAX header")?;
                    pending.pax = Some(parse_pax(&body)?);
                    continue;
                }
                b'g' => {
                    // Global headers: ignored, as Go's archive/tar does.
                    self.read_meta(hdr_size, "global PAX header")?;
                    continue;
                }
                b'L' | b'K' => {
                    let slot = if typ == b'L' {
                        &mut pending.long_name
                    } else {
                        &mut pending.long_link
                    };
                    if slot.is_some() {
                        return Err(err("two GNU long-name records in a row"));
                    }
                    let mut body = self.read_meta(hdr_size, "GNU long name")?;
                    while body.last() == Some(&0) {
                        body.pop();
                    }
                    *slot = Some(body);
                    continue;
                }
                _ => {}
            }
            let kind = match typ {
                b'0' | 0 | b'7' => Kind::File,
                b'1' => Kind::Hardlink,
                b'2' => Kind::Symlink,
                b'3' => Kind::Char,
                b'4' => Kind::Block,
                b'5' => Kind::Dir,
                b'6' => Kind::Fifo,
                b'S' => {
                    return Err(err(
                        "sparse files (GNU type 'S') are not supported in image layers",
                    ))
                }
                other => {
                    return Err(err(format!(
                        "unsupported entry type {:?}",
                        char::from(other)
                    )))
                }
            };
            let gnu = &h[257..265] == b"ustar  \0";
            let ustar = &h[257..263] == b"ustar\0";
            let mut path = cstr(&h[0..100]).to_vec();
            if ustar && !gnu {
                let prefix = cstr(&h[345..500]);
                if !prefix.is_empty() {
                    let mut p = prefix.to_vec();
                    p.push(b'/');
                    p.extend_from_slice(&path);
                    path = p;
                }
            }
            let mut link = cstr(&h[157..257]).to_vec();
            if let Some(n) = pending.long_name.take() {
                path = n;
            }
            if let Some(l) = pending.long_link.take() {
                link = l;
            }
            let mut e = Entry {
                path,
                kind,
                mode: (number(&h[100..108], "mode")? & 0o7777) as u32,
                uid: number(&h[108..116], "uid")?,
                gid: number(&h[116..124], "gid")?,
                size,
                mtime: (
                    number(&h[136..148], "mtime")?.min(i64::MAX as u64) as i64,
                    0,
                ),
                link,
                dev_major: 0,
                dev_minor: 0,
                xattrs: Vec::new(),
            };
            if matches!(kind, Kind::Char | Kind::Block) {
                e.dev_major = u32::try_from(number(&h[329..337], "devmajor")?)
                    .map_err(|_| err("device major number out of range"))?;
                e.dev_minor = u32::try_from(number(&h[337..345], "devminor")?)
                    .map_err(|_| err("device minor number out of range"))?;
            }
            if let Some(pax) = pending.pax.take() {
                apply_pax(&mut e, pax)?;
            }
            if e.path.is_empty() {
                return Err(err("an entry with an empty name"));
            }
            if e.path.contains(&0) || e.link.contains(&0) {
                return Err(err("a name with a NUL byte"));
            }
            // Data follows every kind that declares a size; only files keep it.
            self.remaining = size;
            self.padding = padding(size);
            if kind != Kind::File {
                self.skip_rest()?;
                e.size = 0;
            }
            return Ok(Some(e));
        }
    }
}

fn read_some<R: Read>(r: &mut R, buf: &mut [u8]) -> Result<usize> {
    loop {
        match r.read(buf) {
            Ok(n) => return Ok(n),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(err(format!("read: {e}"))),
        }
    }
}

fn padding(size: u64) -> u64 {
    (BLOCK as u64 - size % BLOCK as u64) % BLOCK as u64
}

fn cstr(b: &[u8]) -> &[u8] {
    match b.iter().position(|&c| c == 0) {
        Some(i) => &b[..i],
        None => b,
    }
}

fn check_sum(h: &[u8; BLOCK]) -> Result<()> {
    let want = number(&h[148..156], "checksum")?;
    let mut unsigned: u64 = 0;
    let mut signed: i64 = 0;
    for (i, &b) in h.iter().enumerate() {
        let b = if (148..156).contains(&i) { b' ' } else { b };
        unsigned += u64::from(b);
        signed += i64::from(b as i8);
    }
    if want != unsigned && i64::try_from(want).ok() != Some(signed) {
        return Err(err(
            "header checksum mismatch (not a tar archive, or corrupted)",
        ));
    }
    Ok(())
}

/// A numeric header field: octal ASCII (spaces and NULs around it), or
/// GNU base-256 when the top bit of the first byte is set.
fn number(f: &[u8], what: &str) -> Result<u64> {
    if f.first().is_some_and(|b| b & 0x80 != 0) {
        if f[0] & 0x40 != 0 {
            return Err(err(format!("negative {what}")));
        }
        let mut v: u64 = u64::from(f[0] & 0x3f);
        for &b in &f[1..] {
            v = v
                .checked_mul(256)
                .and_then(|v| v.checked_add(u64::from(b)))
                .ok_or_else(|| err(format!("{what} out of range")))?;
        }
        return Ok(v);
    }
    let s: &[u8] = {
        let start = f
            .iter()
            .position(|&b| b != b' ' && b != 0)
            .unwrap_or(f.len());
        let rest = &f[start..];
        let end = rest
            .iter()
            .position(|&b| b == b' ' || b == 0)
            .unwrap_or(rest.len());
        if rest[end..].iter().any(|&b| b != b' ' && b != 0) {
            return Err(err(format!("garbage in the {what} field")));
        }
        &rest[..end]
    };
    let mut v: u64 = 0;
    for &b in s {
        if !(b'0'..=b'7').contains(&b) {
            return Err(err(format!("invalid octal {what}")));
        }
        v = v
            .checked_mul(8)
            .and_then(|v| v.checked_add(u64::from(b - b'0')))
            .ok_or_else(|| err(format!("{what} out of range")))?;
    }
    Ok(v)
}

fn parse_dec(v: &[u8], what: &str) -> Result<u64> {
    std::str::from_utf8(v)
        .ok()
        .filter(|s| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| err(format!("invalid {what} {:?}", String::from_utf8_lossy(v))))
}

/// PAX records: `<len> <key>=<value>\n`, where len counts the whole record.
fn parse_pax(mut b: &[u8]) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
    let mut out = Vec::new();
    while !b.is_empty() {
        // A trailing run of NULs is padding some writers leave.
        if b.iter().all(|&c| c == 0) {
            break;
        }
        let sp = b
            .iter()
            .position(|&c| c == b' ')
            .ok_or_else(|| err("PAX record without a length"))?;
        let len = parse_dec(&b[..sp], "PAX record length")?;
        let len = usize::try_from(len).map_err(|_| err("PAX record length out of range"))?;
        if len <= sp + 1 || len > b.len() || b[len - 1] != b'\n' {
            return Err(err("PAX record length does not match its contents"));
        }
        let rec = &b[sp + 1..len - 1];
        let eq = rec
            .iter()
            .position(|&c| c == b'=')
            .ok_or_else(|| err("PAX record without '='"))?;
        let (k, v) = (&rec[..eq], &rec[eq + 1..]);
        if k.is_empty() {
            return Err(err("PAX record with an empty key"));
        }
        out.push((k.to_vec(), v.to_vec()));
        b = &b[len..];
    }
    Ok(out)
}

fn pax_get<'a>(pax: &'a [(Vec<u8>, Vec<u8>)], key: &[u8]) -> Option<&'a [u8]> {
    // The last record for a key wins.
    pax.iter()
        .rev()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_slice())
}

fn apply_pax(e: &mut Entry, pax: Vec<(Vec<u8>, Vec<u8>)>) -> Result<()> {
    for (k, v) in pax {
        match k.as_slice() {
            b"path" => e.path = v,
            b"linkpath" => e.link = v,
            b"uid" => e.uid = parse_dec(&v, "PAX uid")?,
            b"gid" => e.gid = parse_dec(&v, "PAX gid")?,
            b"size" => {} // applied when the header was read
            b"mtime" => e.mtime = parse_time(&v)?,
            _ => {
                if let Some(name) = k.strip_prefix(b"SCHILY.xattr.") {
                    if name.is_empty() {
                        return Err(err("an xattr with an empty name"));
                    }
                    e.xattrs.retain(|(n, _)| n != name);
                    e.xattrs.push((name.to_vec(), v));
                }
                // Other keys (atime, ctime, uname, gname, comments,
                // vendor records) change nothing berth creates.
            }
        }
    }
    Ok(())
}

/// PAX time: `[-]seconds[.fraction]`.
fn parse_time(v: &[u8]) -> Result<(i64, u32)> {
    let bad = || err(format!("invalid PAX time {:?}", String::from_utf8_lossy(v)));
    let s = std::str::from_utf8(v).map_err(|_| bad())?;
    let (neg, s) = match s.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, s),
    };
    let (secs, frac) = s.split_once('.').unwrap_or((s, ""));
    if secs.is_empty()
        || !secs.bytes().all(|b| b.is_ascii_digit())
        || !frac.bytes().all(|b| b.is_ascii_digit())
    {
        return Err(bad());
    }
    let secs: i64 = secs.parse().map_err(|_| bad())?;
    let mut nsec: u32 = 0;
    for (i, b) in frac.bytes().take(9).enumerate() {
        nsec += u32::from(b - b'0') * 10u32.pow(8 - i as u32);
    }
    Ok(if neg {
        if nsec > 0 {
            (-secs - 1, 1_000_000_000 - nsec)
        } else {
            (-secs, 0)
        }
    } else {
        (secs, nsec)
    })
}

/// A tar writer (POSIX pax): ustar headers, with a PAX record for what a
/// header cannot hold (names and link targets over 100 bytes, sizes and
/// ids too large for their octal fields, times before 1970, xattrs).
/// Times are whole seconds. Reads back with [`Reader`], GNU tar, Go's archive/tar.
pub struct Writer<W: io::Write> {
    out: W,
}

fn octal_fits(v: u64, field: usize) -> bool {
    // field - 1 octal digits and a NUL.
    v < 1u64 << (3 * (field - 1))
}

fn put_octal_field(f: &mut [u8], v: u64) {
    let s = format!("{:0w$o}\0", v, w = f.len() - 1);
    f.copy_from_slice(s.as_bytes());
}

fn pax_record(body: &mut Vec<u8>, key: &str, value: &[u8]) {
    // "LEN KEY=VALUE\n", LEN counting itself.
    let base = key.len() + value.len() + 3;
    let mut len = base + base.to_string().len();
    if len.to_string().len() != base.to_string().len() {
        len += 1;
    }
    body.extend_from_slice(format!("{len} {key}=").as_bytes());
    body.extend_from_slice(value);
    body.push(b'\n');
}

impl<W: io::Write> Writer<W> {
    pub fn new(out: W) -> Self {
        Writer { out }
    }

    /// Appends `e` (its `path` and `link` as they go in the archive) and,
    /// for a file, exactly `e.size` bytes from `data`.
    pub fn append(&mut self, e: &Entry, data: &mut dyn Read) -> io::Result<()> {
        let mut pax = Vec::new();
        let mut name = e.path.clone();
        if e.kind == Kind::Dir && !name.ends_with(b"/") {
            name.push(b'/');
        }
        if name.len() > 100 {
            pax_record(&mut pax, "path", &name);
        }
        if e.link.len() > 100 {
            pax_record(&mut pax, "linkpath", &e.link);
        }
        let size = if e.kind == Kind::File { e.size } else { 0 };
        if !octal_fits(size, 12) {
            pax_record(&mut pax, "size", size.to_string().as_bytes());
        }
        for (key, v) in [("uid", e.uid), ("gid", e.gid)] {
            if !octal_fits(v, 8) {
                pax_record(&mut pax, key, v.to_string().as_bytes());
            }
        }
        // Whole seconds, as Docker's archives carry them.
        let secs = e.mtime.0;
        if secs < 0 || !octal_fits(secs as u64, 12) {
            pax_record(&mut pax, "mtime", secs.to_string().as_bytes());
        }
        for (k, v) in &e.xattrs {
            let key = format!("SCHILY.xattr.{}", String::from_utf8_lossy(k));
            pax_record(&mut pax, &key, v);
        }
        if !pax.is_empty() {
            let mut pname = b"PaxHeaders/".to_vec();
            let base = name
                .rsplit(|&b| b == b'/')
                .find(|c| !c.is_empty())
                .unwrap_or(b"x");
            pname.extend_from_slice(&base[..base.len().min(80)]);
            let h = self.header(
                &pname,
                b'x',
                pax.len() as u64,
                b"",
                0o644,
                (0, 0),
                0,
                (0, 0),
            );
            self.out.write_all(&h)?;
            self.out.write_all(&pax)?;
            self.out
                .write_all(&[0u8; BLOCK][..padding(pax.len() as u64) as usize])?;
        }
        let typ = match e.kind {
            Kind::File => b'0',
            Kind::Hardlink => b'1',
            Kind::Symlink => b'2',
            Kind::Char => b'3',
            Kind::Block => b'4',
            Kind::Dir => b'5',
            Kind::Fifo => b'6',
        };
        let h = self.header(
            &name,
            typ,
            size,
            &e.link,
            e.mode & 0o7777,
            (e.uid, e.gid),
            secs.max(0) as u64,
            (e.dev_major, e.dev_minor),
        );
        self.out.write_all(&h)?;
        if size > 0 {
            let copied = io::copy(&mut data.take(size), &mut self.out)?;
            if copied != size {
                return Err(io::Error::other(format!(
                    "{}: {copied} bytes instead of {size} (the file shrank while it was read)",
                    String::from_utf8_lossy(&e.path)
                )));
            }
            self.out
                .write_all(&[0u8; BLOCK][..padding(size) as usize])?;
        }
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    fn header(
        &self,
        name: &[u8],
        typ: u8,
        size: u64,
        link: &[u8],
        mode: u32,
        (uid, gid): (u64, u64),
        mtime: u64,
        (major, minor): (u32, u32),
    ) -> [u8; BLOCK] {
        let mut h = [0u8; BLOCK];
        let cut = |b: &[u8], n: usize| b.len().min(n);
        h[..cut(name, 100)].copy_from_slice(&name[..cut(name, 100)]);
        put_octal_field(&mut h[100..108], u64::from(mode));
        let clamp = |v: u64, f: usize| if octal_fits(v, f) { v } else { 0 };
        put_octal_field(&mut h[108..116], clamp(uid, 8));
        put_octal_field(&mut h[116..124], clamp(gid, 8));
        put_octal_field(&mut h[124..136], clamp(size, 12));
        put_octal_field(&mut h[136..148], clamp(mtime, 12));
        h[156] = typ;
        h[157..157 + cut(link, 100)].copy_from_slice(&link[..cut(link, 100)]);
        h[257..263].copy_from_slice(b"ustar\0");
        h[263..265].copy_from_slice(b"00");
        if matches!(typ, b'3' | b'4') {
            put_octal_field(&mut h[329..337], clamp(u64::from(major), 8));
            put_octal_field(&mut h[337..345], clamp(u64::from(minor), 8));
        }
        h[148..156].copy_from_slice(b"        ");
        let sum: u64 = h.iter().map(|&b| u64::from(b)).sum();
        h[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
        h
    }

    /// Writes the two zero blocks that end an archive.
    pub fn finish(mut self) -> io::Result<W> {
        self.out.write_all(&[0u8; 2 * BLOCK])?;
        self.out.flush()?;
        Ok(self.out)
    }
}

/// Test helpers: a tiny tar writer for building hostile archives.
#[cfg(any(test, feature = "test-util"))]
pub mod build {
    use super::*;

    /// A raw header for `name`, with `typ`, `size` and `link`.
    pub fn header(name: &[u8], typ: u8, size: u64, link: &[u8], mode: u32) -> [u8; BLOCK] {
        let mut h = [0u8; BLOCK];
        h[..name.len().min(100)].copy_from_slice(&name[..name.len().min(100)]);
        put_octal(&mut h[100..108], u64::from(mode));
        put_octal(&mut h[108..116], 0);
        put_octal(&mut h[116..124], 0);
        put_octal(&mut h[124..136], size);
        put_octal(&mut h[136..148], 1_700_000_000);
        h[156] = typ;
        h[157..157 + link.len().min(100)].copy_from_slice(&link[..link.len().min(100)]);
        h[257..263].copy_from_slice(b"ustar\0");
        h[263..265].copy_from_slice(b"00");
        seal(&mut h);
        h
    }

    pub fn put_octal(f: &mut [u8], v: u64) {
        let s = format!("{:0w$o}\0", v, w = f.len() - 1);
        f.copy_from_slice(s.as_bytes());
    }

    /// Recomputes the checksum after a header was edited.
    pub fn seal(h: &mut [u8; BLOCK]) {
        h[148..156].copy_from_slice(b"        ");
        let sum: u64 = h.iter().map(|&b| u64::from(b)).sum();
        let s = format!("{sum:06o}\0 ");
        h[148..156].copy_from_slice(s.as_bytes());
    }

    /// An archive under construction.
    #[derive(Default)]
    pub struct Tar(pub Vec<u8>);

    impl Tar {
        pub fn raw(&mut self, h: [u8; BLOCK], data: &[u8]) -> &mut Self {
            self.0.extend_from_slice(&h);
            self.0.extend_from_slice(data);
            let pad = padding(data.len() as u64) as usize;
            self.0.extend(std::iter::repeat_n(0u8, pad));
            self
        }
        pub fn file(&mut self, name: &str, data: &[u8], mode: u32) -> &mut Self {
            self.raw(
                header(name.as_bytes(), b'0', data.len() as u64, b"", mode),
                data,
            )
        }
        pub fn dir(&mut self, name: &str, mode: u32) -> &mut Self {
            self.raw(header(name.as_bytes(), b'5', 0, b"", mode), b"")
        }
        pub fn symlink(&mut self, name: &str, target: &str) -> &mut Self {
            self.raw(
                header(name.as_bytes(), b'2', 0, target.as_bytes(), 0o777),
                b"",
            )
        }
        pub fn hardlink(&mut self, name: &str, target: &str) -> &mut Self {
            self.raw(
                header(name.as_bytes(), b'1', 0, target.as_bytes(), 0o644),
                b"",
            )
        }
        pub fn pax(&mut self, records: &[(&str, &[u8])]) -> &mut Self {
            let mut body = Vec::new();
            for (k, v) in records {
                let base = k.len() + v.len() + 3;
                let mut len = base + base.to_string().len();
                if len.to_string().len() != base.to_string().len() {
                    len += 1;
                }
                body.extend_from_slice(format!("{len} {k}=").as_bytes());
                body.extend_from_slice(v);
                body.push(b'\n');
            }
            let h = header(b"PaxHeaders/x", b'x', body.len() as u64, b"", 0o644);
            self.raw(h, &body)
        }
        pub fn end(&mut self) -> Vec<u8> {
            let mut v = std::mem::take(&mut self.0);
            v.extend_from_slice(&[0u8; 1024]);
            v
        }
    }
}

#[cfg(test)]
mod tests {
    use super::build::*;
    use super::*;

    fn entries(data: &[u8]) -> Result<Vec<(Entry, Vec<u8>)>> {
        let mut r = Reader::new(data);
        let mut out = Vec::new();
        while let Some(e) = r.next_entry()? {
            let mut d = Vec::new();
            let mut buf = [0u8; 7];
            loop {
                let n = r.read_data(&mut buf)?;
                if n == 0 {
                    break;
                }
                d.extend_from_slice(&buf[..n]);
            }
            out.push((e, d));
        }
        Ok(out)
    }

    fn entry(path: &[u8], kind: Kind, size: u64, link: &[u8]) -> Entry {
        Entry {
            path: path.to_vec(),
            kind,
            mode: 0o640,
            uid: 1000,
            gid: 2000,
            size,
            mtime: (1_700_000_000, 0),
            link: link.to_vec(),
            dev_major: 0,
            dev_minor: 0,
            xattrs: Vec::new(),
        }
    }

    /// What the writer writes reads back the same: long names and links,
    /// large ids, times before 1970, every kind.
    #[test]
    fn written_archives_read_back_whole() {
        let long = "d/".to_string() + &"n".repeat(150);
        let mut big_ids = entry(b"ids", Kind::File, 3, b"");
        (big_ids.uid, big_ids.gid) = (1 << 32, 3_000_000);
        let mut old = entry(b"old", Kind::Fifo, 0, b"");
        old.mtime = (-86_400, 0);
        let mut dev = entry(b"null", Kind::Char, 0, b"");
        (dev.dev_major, dev.dev_minor) = (1, 3);
        let mut xattr = entry(b"x", Kind::File, 0, b"");
        xattr.xattrs = vec![(b"user.k".to_vec(), b"v\n=".to_vec())];
        let list = vec![
            (entry(b"d", Kind::Dir, 0, b""), Vec::new()),
            (
                entry(long.as_bytes(), Kind::File, 5, b""),
                b"hello".to_vec(),
            ),
            (entry(b"d/l", Kind::Symlink, 0, long.as_bytes()), Vec::new()),
            (
                entry(b"d/h", Kind::Hardlink, 0, long.as_bytes()),
                Vec::new(),
            ),
            (big_ids, b"abc".to_vec()),
            (old, Vec::new()),
            (dev, Vec::new()),
            (xattr, Vec::new()),
        ];
        let mut w = Writer::new(Vec::new());
        for (e, d) in &list {
            w.append(e, &mut d.as_slice()).unwrap();
        }
        let data = w.finish().unwrap();
        let back = entries(&data).unwrap();
        assert_eq!(back.len(), list.len());
        for ((want, wd), (got, gd)) in list.iter().zip(&back) {
            let mut path = want.path.clone();
            if want.kind == Kind::Dir {
                path.push(b'/');
            }
            assert_eq!(got.path, path);
            assert_eq!(
                (got.kind, got.mode, got.uid, got.gid),
                (want.kind, want.mode, want.uid, want.gid)
            );
            assert_eq!((got.mtime, &got.link, gd), (want.mtime, &want.link, wd));
            assert_eq!(
                (got.dev_major, got.dev_minor),
                (want.dev_major, want.dev_minor)
            );
            assert_eq!(got.xattrs, want.xattrs);
        }
        // A file that is shorter than it said is an error, not a bad archive.
        let mut w = Writer::new(Vec::new());
        assert!(w
            .append(&entry(b"f", Kind::File, 10, b""), &mut &b"abc"[..])
            .is_err());
    }

    /// GNU tar reads it too (when it is installed, as on every Debian).
    #[test]
    fn gnu_tar_lists_what_the_writer_wrote() {
        let long = "n".repeat(120);
        let mut w = Writer::new(Vec::new());
        w.append(&entry(long.as_bytes(), Kind::File, 2, b""), &mut &b"ok"[..])
            .unwrap();
        w.append(
            &entry(b"s", Kind::Symlink, 0, long.as_bytes()),
            &mut &b""[..],
        )
        .unwrap();
        let data = w.finish().unwrap();
        let dir = std::env::temp_dir().join(format!("berth-tar-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let f = dir.join("a.tar");
        std::fs::write(&f, data).unwrap();
        let o = std::process::Command::new("tar")
            .arg("-tvf")
            .arg(&f)
            .output();
        let _ = std::fs::remove_dir_all(&dir);
        let o = o.expect("tar (GNU tar) is needed for this test");
        let out = String::from_utf8_lossy(&o.stdout);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        assert!(
            out.contains(&long) && out.contains(&format!("s -> {long}")),
            "{out}"
        );
        assert!(out.contains("1000/2000"), "{out}");
    }

    #[test]
    fn reads_basic_kinds() {
        let mut t = Tar::default();
        t.dir("etc/", 0o755)
            .file("etc/passwd", b"root:x:0:0\n", 0o4755)
            .symlink("bin/sh", "busybox")
            .hardlink("bin/ls", "bin/busybox");
        let es = entries(&t.end()).unwrap();
        assert_eq!(es.len(), 4);
        assert_eq!(es[0].0.kind, Kind::Dir);
        assert_eq!(es[1].0.path, b"etc/passwd");
        assert_eq!(es[1].0.mode, 0o4755);
        assert_eq!(es[1].1, b"root:x:0:0\n");
        assert_eq!(es[2].0.link, b"busybox");
        assert_eq!(es[3].0.kind, Kind::Hardlink);
    }

    #[test]
    fn pax_overrides_and_applies_to_the_next_entry_only() {
        let long = "d/".repeat(200) + "f";
        let mut t = Tar::default();
        t.pax(&[
            ("path", long.as_bytes()),
            ("mtime", b"1700000000.123456789"),
            ("SCHILY.xattr.security.capability", b"\x01\x00\x00\x02"),
        ])
        .file("short", b"x", 0o644)
        .file("next", b"y", 0o644);
        let es = entries(&t.end()).unwrap();
        assert_eq!(es[0].0.path, long.as_bytes());
        assert_eq!(es[0].0.mtime, (1_700_000_000, 123_456_789));
        assert_eq!(es[0].0.xattrs[0].0, b"security.capability");
        assert_eq!(es[1].0.path, b"next");
        assert!(es[1].0.xattrs.is_empty());
        assert_eq!(es[1].0.mtime, (1_700_000_000, 0));
    }

    #[test]
    fn pax_size_wins_over_the_header() {
        // The header says 0 bytes, the PAX record 5: a reader trusting the
        // header would take "hello" for the next header (CVE-2026-33055).
        let mut t = Tar::default();
        t.pax(&[("size", b"5")]);
        t.0.extend_from_slice(&header(b"f", b'0', 0, b"", 0o644));
        let mut data = b"hello".to_vec();
        data.resize(512, 0);
        t.0.extend_from_slice(&data);
        t.file("g", b"z", 0o644);
        let es = entries(&t.end()).unwrap();
        assert_eq!(es.len(), 2);
        assert_eq!(es[0].1, b"hello");
        assert_eq!(es[1].0.path, b"g");
    }

    #[test]
    fn garbage_and_truncation_fail_promptly() {
        assert!(entries(&[0x41u8; 2048]).is_err(), "garbage");
        let mut t = Tar::default();
        t.file("f", &[7u8; 1000], 0o644);
        let full = t.end();
        for cut in [100, 512, 700, 1024] {
            assert!(entries(&full[..cut]).is_err(), "truncated at {cut}");
        }
        // A huge PAX header is refused without allocating it.
        let mut t = Tar::default();
        t.raw(header(b"x", b'x', 1 << 32, b"", 0o644), b"");
        assert!(entries(&t.end()).is_err());
        // A malformed PAX record.
        let mut t = Tar::default();
        t.raw(header(b"x", b'x', 10, b"", 0o644), b"99 path=a\n");
        t.file("f", b"", 0o644);
        assert!(entries(&t.end()).is_err());
        // A checksum mismatch.
        let mut h = header(b"f", b'0', 0, b"", 0o644);
        h[0] = b'g';
        let mut v = h.to_vec();
        v.extend_from_slice(&[0u8; 1024]);
        assert!(entries(&v).is_err());
        // Sparse files and unknown types.
        for typ in [b'S', b'V', b'Z'] {
            let mut t = Tar::default();
            t.raw(header(b"f", typ, 0, b"", 0o644), b"");
            assert!(entries(&t.end()).is_err(), "type {typ}");
        }
    }

    #[test]
    fn base256_and_octal_numbers() {
        assert_eq!(number(b"0000644\0", "m").unwrap(), 0o644);
        assert_eq!(number(b"   644 \0", "m").unwrap(), 0o644);
        assert_eq!(number(&[0x80, 0, 0, 0, 0, 0, 1, 0], "s").unwrap(), 256);
        assert!(number(&[0xff; 8], "s").is_err());
        assert!(number(b"0009\0\0\0\0", "m").is_err());
        assert!(number(
            &[0x80, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff],
            "s"
        )
        .is_err());
    }

    #[test]
    fn gnu_long_names() {
        let long = "x".repeat(300);
        let mut t = Tar::default();
        let mut body = long.as_bytes().to_vec();
        body.push(0);
        t.raw(
            header(b"././@LongLink", b'L', body.len() as u64, b"", 0o644),
            &body,
        );
        t.file("short", b"", 0o644);
        let es = entries(&t.end()).unwrap();
        assert_eq!(es[0].0.path, long.as_bytes());
    }
}
