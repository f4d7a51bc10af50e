//! Reading a container's log files in bounded memory and, for `--tail`,
//! bounded time: the tail is found by reading backwards from the end, and
//! lines are read one at a time, each capped. The monitor writes lines of
//! at most 16 KiB of text (longer output is split into partial entries),
//! so a longer line is not one of its own: it is skipped, and a tail stops
//! at it.

use std::fs::File;
use std::io::{self, BufRead, BufReader, Read, Seek, SeekFrom};
use std::os::unix::fs::FileExt;
use std::path::PathBuf;

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
