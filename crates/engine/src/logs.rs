//! Reading a container's log: a typed request ([`LogRequest`]: since,
//! until, tail, follow, streams) whose entries ([`Entry`]) are handed to
//! the caller one at a time ([`Engine::logs`]), who prints or streams them.
//!
//! The files are read in bounded memory and, for a tail, bounded time: the
//! tail is found by reading backwards from the end, and lines are read one
//! at a time, each capped. The monitor writes lines of at most 16 KiB of
//! text (longer output is split into partial entries), so a longer line is
//! not one of its own: it is skipped, and a tail stops at it.

use std::fs::File;
use std::io::{self, BufRead, BufReader, Read, Seek, SeekFrom};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use crate::containers::Engine;
use crate::error::{io as io_err, option, Error, Result};
use crate::records::Status;
use berth_monitor_proto::logfmt;

/// Times as the logs write them (RFC 3339 with nanoseconds), and now.
pub use berth_monitor_proto::logfmt::{parse_rfc3339, rfc3339_nano};
/// One log entry: its stream, time (ns since the epoch) and text (with its
/// newline unless `partial`).
pub use berth_monitor_proto::logfmt::{Entry, Stream};
pub use berth_monitor_proto::now_nanos;

/// The longest line read as a log entry: the monitor's 16 KiB of text,
/// escaped as JSON (up to 6 bytes a byte), with room to spare.
pub const MAX_ENTRY: usize = 1 << 20;

/// How much is read backwards at a time.
const CHUNK: usize = 64 << 10;

/// A place in the list of log files: the file's index and a byte offset.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Pos {
    pub file: usize,
    pub offset: u64,
}

/// Where the last `n` whole lines of `files` (oldest first) start.
/// `partial(line)` parses an entry: `None` if it is not one, else whether
/// it is a partial piece (which belongs to the line it is followed by; a
/// final partial piece counts as a line). Reads at most `n` entries and
/// [`MAX_ENTRY`] bytes beyond them, backwards.
pub fn tail_start(files: &[PathBuf], n: usize, partial: impl Fn(&[u8]) -> Option<bool>) -> Pos {
    let end = Pos {
        file: files.len(),
        offset: 0,
    };
    if n == 0 {
        return end;
    }
    let mut start = end;
    let mut lines = 0;
    let mut first = true;
    for (i, path) in files.iter().enumerate().rev() {
        let Ok(f) = File::open(path) else { continue };
        let mut back = Backwards::new(&f);
        // Text after the last newline is not a whole entry yet.
        if back.next_newline().is_none() {
            if back.exhausted() {
                continue; // no newline at all (or empty): nothing here
            }
            return start; // an end beyond any entry: garbage, stop
        }
        loop {
            let line_end = back.pos;
            let nl = back.next_newline();
            let line_start = nl.map_or(0, |p| p + 1);
            if nl.is_none() && !back.exhausted() {
                return start; // a line longer than any entry
            }
            let len = (line_end - line_start) as usize;
            let mut buf = vec![0; len];
            if f.read_exact_at(&mut buf, line_start).is_ok() {
                if let Some(p) = partial(&buf) {
                    if lines < n {
                        if !p || first {
                            lines += 1;
                        }
                        start = Pos {
                            file: i,
                            offset: line_start,
                        };
                    } else if p {
                        start = Pos {
                            file: i,
                            offset: line_start,
                        };
                    } else {
                        return start;
                    }
                    first = false;
                }
            }
            if nl.is_none() {
                break;
            }
        }
    }
    start
}

/// Reads a file backwards, a chunk at a time, looking for newlines.
struct Backwards<'a> {
    f: &'a File,
    /// Everything at or after `pos` has been looked at.
    pos: u64,
    buf: Vec<u8>,
    /// The file offset of `buf[0]`.
    buf_at: u64,
}

impl<'a> Backwards<'a> {
    fn new(f: &'a File) -> Backwards<'a> {
        let len = f.metadata().map_or(0, |m| m.len());
        Backwards {
            f,
            pos: len,
            buf: Vec::new(),
            buf_at: len,
        }
    }

    fn exhausted(&self) -> bool {
        self.pos == 0
    }

    /// The offset of the last newline before `pos`, looking back at most
    /// [`MAX_ENTRY`] bytes; `pos` is then that offset. `None` at the start
    /// of the file (`pos` 0) or past the limit.
    fn next_newline(&mut self) -> Option<u64> {
        let limit = self.pos.saturating_sub(MAX_ENTRY as u64 + 1);
        while self.pos > limit {
            if self.pos <= self.buf_at {
                let from = self.pos.saturating_sub(CHUNK as u64).max(limit);
                self.buf.resize((self.pos - from) as usize, 0);
                if self.f.read_exact_at(&mut self.buf, from).is_err() {
                    self.pos = 0;
                    return None;
                }
                self.buf_at = from;
            }
            let upto = (self.pos - self.buf_at) as usize;
            match memrchr(&self.buf[..upto]) {
                Some(i) => {
                    self.pos = self.buf_at + i as u64;
                    return Some(self.pos);
                }
                None => self.pos = self.buf_at,
            }
        }
        None
    }
}

fn memrchr(b: &[u8]) -> Option<usize> {
    b.iter().rposition(|&c| c == b'\n')
}

/// Calls `each` with every whole line of `path` from `offset` on (without
/// its newline), skipping lines longer than [`MAX_ENTRY`], until `each`
/// returns false. Returns the offset after the last whole line read, and
/// whether `each` asked to stop.
pub fn lines_from(
    path: &PathBuf,
    offset: u64,
    mut each: impl FnMut(&[u8]) -> bool,
) -> io::Result<(u64, bool)> {
    let mut f = File::open(path)?;
    f.seek(SeekFrom::Start(offset))?;
    let mut r = BufReader::with_capacity(CHUNK, f);
    let mut at = offset;
    let mut line = Vec::new();
    loop {
        line.clear();
        let (n, whole) = read_line_capped(&mut r, &mut line)?;
        if n == 0 || !whole {
            return Ok((at, false));
        }
        at += n as u64;
        if line.len() <= MAX_ENTRY && !each(&line[..line.len() - 1]) {
            return Ok((at, true));
        }
    }
}

/// Reads one line into `line` (with its newline), keeping at most
/// [`MAX_ENTRY`] + 1 bytes of it. Returns the bytes consumed and whether
/// the line ended with a newline.
fn read_line_capped(r: &mut impl BufRead, line: &mut Vec<u8>) -> io::Result<(usize, bool)> {
    let mut n = 0;
    loop {
        let buf = r.fill_buf()?;
        if buf.is_empty() {
            return Ok((n, false));
        }
        let (take, done) = match buf.iter().position(|&c| c == b'\n') {
            Some(i) => (i + 1, true),
            None => (buf.len(), false),
        };
        let room = (MAX_ENTRY + 1).saturating_sub(line.len());
        line.extend_from_slice(&buf[..take.min(room)]);
        r.consume(take);
        n += take;
        if done {
            if line.last() != Some(&b'\n') {
                line.push(b'\n'); // cut short: too long, skipped by the caller
            }
            return Ok((n, true));
        }
    }
}

/// New whole lines of a growing file, read in bounded pieces: `pending`
/// keeps at most one line's start, and a line past [`MAX_ENTRY`] is dropped.
#[derive(Default)]
pub struct Follow {
    pending: Vec<u8>,
    skipping: bool,
}

impl Follow {
    /// Reads what `f` holds from `*offset` on (at most a few MiB a call,
    /// `more` says if there is more) and calls `each` with every whole
    /// line; false from `each` stops (returns `Ok(false)`).
    pub fn read(
        &mut self,
        f: &mut File,
        offset: &mut u64,
        more: &mut bool,
        mut each: impl FnMut(&[u8]) -> bool,
    ) -> io::Result<bool> {
        f.seek(SeekFrom::Start(*offset))?;
        let mut chunk = vec![0; CHUNK];
        let mut budget = 64;
        *more = false;
        loop {
            let n = f.read(&mut chunk)?;
            if n == 0 {
                return Ok(true);
            }
            *offset += n as u64;
            let mut rest = &chunk[..n];
            while let Some(i) = rest.iter().position(|&c| c == b'\n') {
                let (line, tail) = rest.split_at(i);
                rest = &tail[1..];
                if std::mem::take(&mut self.skipping) {
                    self.pending.clear();
                    continue;
                }
                if self.pending.is_empty() {
                    if !each(line) {
                        return Ok(false);
                    }
                } else {
                    self.pending.extend_from_slice(line);
                    let whole = std::mem::take(&mut self.pending);
                    if !each(&whole) {
                        return Ok(false);
                    }
                }
            }
            if !self.skipping {
                self.pending.extend_from_slice(rest);
                if self.pending.len() > MAX_ENTRY {
                    self.pending = Vec::new();
                    self.skipping = true;
                }
            }
            budget -= 1;
            if budget == 0 {
                *more = true;
                return Ok(true);
            }
        }
    }

    /// Forgets a line begun in a file that was rotated away.
    pub fn reset(&mut self) {
        self.pending.clear();
        self.skipping = false;
    }
}

/// What to read of a container's log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogRequest {
    /// Only entries at or after this time (ns since the epoch).
    pub since: Option<i64>,
    /// Only entries up to this time; reading stops at the first later one.
    pub until: Option<i64>,
    /// Only the last N whole lines (None: all).
    pub tail: Option<usize>,
    /// Then go on with new entries until the container is no longer running.
    pub follow: bool,
    /// The streams wanted.
    pub stdout: bool,
    pub stderr: bool,
}

impl Default for LogRequest {
    fn default() -> LogRequest {
        LogRequest {
            since: None,
            until: None,
            tail: None,
            follow: false,
            stdout: true,
            stderr: true,
        }
    }
}

impl LogRequest {
    /// Whether `e` is wanted: `Some(true)` yes, `Some(false)` no,
    /// `None`: past `until`, stop.
    fn wants(&self, e: &Entry) -> Option<bool> {
        if self.until.is_some_and(|u| e.time > u) {
            return None;
        }
        let stream = match e.stream {
            Stream::Stdout => self.stdout,
            Stream::Stderr => self.stderr,
        };
        Some(stream && self.since.is_none_or(|s| e.time >= s))
    }
}

/// A time for a since/until option (`what` names it), in ns since the
/// epoch: RFC 3339, Unix seconds, or a duration ago (10m, 1h30m, 1.5h,
/// 500ms, 2d).
pub fn parse_time(s: &str, what: &str) -> Result<i64> {
    parse_time_at(s, what, now_nanos())
}

fn parse_time_at(s: &str, what: &str, now: i64) -> Result<i64> {
    if let Some(t) = parse_rfc3339(s) {
        return Ok(t);
    }
    if let Ok(secs) = s.parse::<f64>() {
        return Ok((secs * 1e9) as i64);
    }
    let bad = || {
        option(
            what,
            format!("{s:?} is not a time (RFC 3339, Unix seconds, or a duration such as 10m)"),
        )
    };
    let mut total = 0f64;
    let mut num = String::new();
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        let ch = b[i] as char;
        if ch.is_ascii_digit() || ch == '.' {
            num.push(ch);
            i += 1;
            continue;
        }
        let (unit, len) = if s[i..].starts_with("ms") {
            (1e-3, 2)
        } else {
            match ch {
                'h' => (3600.0, 1),
                'm' => (60.0, 1),
                's' => (1.0, 1),
                'd' => (86400.0, 1),
                _ => return Err(bad()),
            }
        };
        let n: f64 = num
            .parse()
            .map_err(|_| option(what, format!("{s:?} is not a time")))?;
        total += n * unit;
        num.clear();
        i += len;
    }
    if !num.is_empty() || total == 0.0 && s.is_empty() {
        return Err(bad());
    }
    Ok(now - (total * 1e9) as i64)
}

fn parse_entry(driver: &str, line: &[u8]) -> Option<Entry> {
    if driver == "json-file" {
        logfmt::parse_json(line)
    } else {
        logfmt::parse_k8s(line)
    }
}

/// The log files of a container, oldest first: the rotated ones
/// (`ctr.log.N` .. `ctr.log.1`) that exist, then the live one.
fn log_files(path: &Path, max: u32) -> Vec<PathBuf> {
    let mut v = Vec::new();
    for i in (1..=max.max(1) + 1).rev() {
        let mut p = path.as_os_str().to_owned();
        p.push(format!(".{i}"));
        let p = PathBuf::from(p);
        if p.exists() {
            v.push(p);
        }
    }
    v.push(path.to_path_buf());
    v
}

impl Engine {
    /// Reads the log of `container` as `req` asks, calling `each` with
    /// every entry wanted, oldest first, until `each` returns false (its
    /// reader is gone), the entries pass `req.until`, or (following) the
    /// container is no longer running. Bounded in memory for a log of any
    /// size.
    pub fn logs(
        &self,
        container: &str,
        req: &LogRequest,
        each: &mut dyn FnMut(&Entry) -> bool,
    ) -> Result<()> {
        let rec = self.get(container)?;
        if rec.spec.logging.driver == crate::specgen::LogDriver::None {
            return Err(Error::Conflict(format!(
                "container {} has --log-driver none: nothing was logged",
                rec.name
            )));
        }
        let path = self.paths.container(&rec.id).join("ctr.log");
        let driver = rec.spec.logging.driver.name().to_string();
        // Returns false to stop.
        let mut take = |l: &[u8]| match parse_entry(&driver, l) {
            None => true,
            Some(e) => match req.wants(&e) {
                None => false,
                Some(false) => true,
                Some(true) => each(&e),
            },
        };
        let files = log_files(&path, rec.spec.logging.max_files);
        let from = match req.tail {
            Some(n) => tail_start(&files, n, |l| parse_entry(&driver, l).map(|e| e.partial)),
            None => Pos { file: 0, offset: 0 },
        };
        // Where following goes on: after the last whole line read, or the
        // end of the live file when none of it was (a tail of 0).
        let mut offset = match from.file < files.len() {
            true => 0,
            false => std::fs::metadata(&path).map_or(0, |m| m.len()),
        };
        for (i, f) in files.iter().enumerate().skip(from.file) {
            let start = if i == from.file { from.offset } else { 0 };
            match lines_from(f, start, &mut take) {
                Ok((_, true)) => return Ok(()),
                Ok((end, false)) if i + 1 == files.len() => offset = end,
                _ => {}
            }
        }
        if !req.follow {
            return Ok(());
        }
        // Follow: new lines of the live file, across rotations, until the
        // container is no longer running.
        let mut ino =
            std::fs::metadata(&path).map_or(0, |m| std::os::unix::fs::MetadataExt::ino(&m));
        let mut lines = Follow::default();
        // Sleeps until the log directory changes or the monitor ends; reads
        // the status again only when the monitor ended or a second was quiet.
        let mut wait = crate::follow::LogWait::new(&self.paths.container(&rec.id));
        let mut check = true;
        let mut running = true;
        loop {
            if check {
                let now = match self.records.get(&rec.id)? {
                    Some(r) => Some(self.refresh(r)?),
                    None => None,
                };
                running = now.as_ref().is_some_and(|r| {
                    matches!(r.state.status, Status::Running | Status::Restarting)
                });
                wait.track_monitor(now.map_or(0, |r| r.state.monitor_pid));
            }
            let mut more = true;
            while more {
                more = false;
                let Ok(mut f) = File::open(&path) else {
                    break;
                };
                let Ok(m) = f.metadata() else { break };
                let now_ino = std::os::unix::fs::MetadataExt::ino(&m);
                if now_ino != ino || m.len() < offset {
                    // Rotated: the rest of the old file is gone to .1; start over.
                    ino = now_ino;
                    offset = 0;
                    lines.reset();
                }
                if m.len() > offset {
                    match lines.read(&mut f, &mut offset, &mut more, &mut take) {
                        Ok(true) => {}
                        Ok(false) => return Ok(()),
                        Err(e) => {
                            return Err(io_err(format!("read the log of container {}", rec.name))(
                                e,
                            ))
                        }
                    }
                }
            }
            if !running {
                return Ok(());
            }
            check = wait.wait()?;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    /// `P` lines are partial, `F` whole, anything else not an entry.
    fn kind(l: &[u8]) -> Option<bool> {
        match l.first() {
            Some(b'P') => Some(true),
            Some(b'F') => Some(false),
            _ => None,
        }
    }

    fn files(contents: &[&[u8]]) -> (tempfile::TempDir, Vec<PathBuf>) {
        let d = tempfile::tempdir().unwrap();
        let mut v = Vec::new();
        for (i, c) in contents.iter().enumerate() {
            let p = d.path().join(i.to_string());
            std::fs::write(&p, c).unwrap();
            v.push(p);
        }
        (d, v)
    }

    fn collect(files: &[PathBuf], from: Pos) -> Vec<String> {
        let mut out = Vec::new();
        for (i, f) in files.iter().enumerate().skip(from.file) {
            let off = if i == from.file { from.offset } else { 0 };
            lines_from(f, off, |l| {
                out.push(String::from_utf8_lossy(l).into_owned());
                true
            })
            .unwrap();
        }
        out
    }

    fn entry(stream: Stream, time: i64) -> Entry {
        Entry {
            stream,
            time,
            text: b"x\n".to_vec(),
            partial: false,
        }
    }

    #[test]
    fn requests_pick_streams_and_times_and_stop_after_until() {
        let r = LogRequest {
            since: Some(10),
            until: Some(20),
            stderr: false,
            ..LogRequest::default()
        };
        assert_eq!(r.wants(&entry(Stream::Stdout, 9)), Some(false));
        assert_eq!(r.wants(&entry(Stream::Stdout, 10)), Some(true));
        assert_eq!(r.wants(&entry(Stream::Stderr, 15)), Some(false));
        assert_eq!(r.wants(&entry(Stream::Stdout, 20)), Some(true));
        assert_eq!(r.wants(&entry(Stream::Stdout, 21)), None);
        let all = LogRequest::default();
        assert_eq!(all.wants(&entry(Stream::Stderr, 0)), Some(true));
    }

    #[test]
    fn times_are_rfc3339_unix_seconds_or_durations_ago() {
        let now = 100_000 * 1_000_000_000;
        let t = |s| parse_time_at(s, "--since", now).map_err(|e| e.to_string());
        assert_eq!(t("1970-01-01T00:00:01Z"), Ok(1_000_000_000));
        assert_eq!(t("2.5"), Ok(2_500_000_000));
        assert_eq!(t("1h30m"), Ok(now - 5400 * 1_000_000_000));
        assert_eq!(t("500ms"), Ok(now - 500_000_000));
        assert_eq!(t("1d"), Ok(now - 86400 * 1_000_000_000));
        for bad in ["", "10x", "m", "1h2"] {
            let e = t(bad).unwrap_err();
            assert!(e.starts_with("--since: "), "{e}");
        }
    }

    #[test]
    fn tails_count_whole_lines_across_files() {
        let (_d, f) = files(&[b"F1\nF2\n", b"P3a\nF3b\nx\nF4\nP5"]);
        let tail = |n| collect(&f, tail_start(&f, n, kind));
        assert_eq!(tail(1), ["F4"]);
        assert_eq!(tail(2), ["P3a", "F3b", "x", "F4"]);
        assert_eq!(tail(3), ["F2", "P3a", "F3b", "x", "F4"]);
        assert_eq!(tail(10), ["F1", "F2", "P3a", "F3b", "x", "F4"]);
        assert!(tail(0).is_empty());
        // A final partial piece counts as a line.
        let (_d, f) = files(&[b"F1\nP2\n"]);
        assert_eq!(collect(&f, tail_start(&f, 1, kind)), ["P2"]);
    }

    #[test]
    fn a_line_longer_than_any_entry_ends_the_tail_and_is_skipped() {
        let mut big = b"F1\n".to_vec();
        big.extend(std::iter::repeat_n(b'z', 3 * MAX_ENTRY));
        big.extend_from_slice(b"\nF2\nF3\n");
        let (_d, f) = files(&[b"F0\n", &big]);
        assert_eq!(collect(&f, tail_start(&f, 5, kind)), ["F2", "F3"]);
        assert_eq!(
            collect(&f, Pos { file: 0, offset: 0 }),
            ["F0", "F1", "F2", "F3"]
        );
        // Garbage at the end: nothing whole after it.
        let mut end = b"F1\n".to_vec();
        end.extend(std::iter::repeat_n(b'z', 2 * MAX_ENTRY));
        let (_d, f) = files(&[&end]);
        assert!(collect(&f, tail_start(&f, 5, kind)).is_empty());
    }

    #[test]
    fn follow_reads_whole_lines_and_drops_a_giant_one() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("log");
        let mut w = File::create(&p).unwrap();
        let mut r = File::open(&p).unwrap();
        let (mut fo, mut off, mut more, mut got) = (Follow::default(), 0, false, Vec::new());
        let mut read = |fo: &mut Follow, off: &mut u64, got: &mut Vec<String>| {
            fo.read(&mut r, off, &mut more, |l| {
                got.push(String::from_utf8_lossy(l).into_owned());
                true
            })
            .unwrap();
        };
        w.write_all(b"F1\nF2a").unwrap();
        read(&mut fo, &mut off, &mut got);
        w.write_all(b"b\n").unwrap();
        w.write_all(&vec![b'z'; 2 * MAX_ENTRY]).unwrap();
        read(&mut fo, &mut off, &mut got);
        w.write_all(b"zz\nF3\n").unwrap();
        read(&mut fo, &mut off, &mut got);
        assert_eq!(got, ["F1", "F2ab", "F3"]);
        assert!(fo.pending.capacity() <= 2 * MAX_ENTRY);
    }
}
