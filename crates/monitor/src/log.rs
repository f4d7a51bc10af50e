//! The container's log: json-file or k8s-file lines, rotated by size
//! (a line that would pass the limit starts a new file; `max_files` files
//! at most: `PATH`, `PATH.1`, ... oldest last), long lines in parts.

use berth_monitor_proto::config::{Config, LogDriver};
use berth_monitor_proto::logfmt::{self, Stream};
use std::io::{self, Write};
use std::path::PathBuf;

/// A line longer than this is logged in parts (as Docker does at 16 KiB).
pub const MAX_LINE: usize = 16 * 1024;

pub struct LogWriter {
    driver: LogDriver,
    path: PathBuf,
    file: Option<std::fs::File>,
    size: u64,
    max_size: u64,
    max_files: u32,
    /// Bytes that could not be written.
    pub dropped: u64,
    partial: [Vec<u8>; 2],
    buf: Vec<u8>,
}

impl LogWriter {
    pub fn new(cfg: &Config) -> Result<LogWriter, String> {
        let w = LogWriter {
            driver: cfg.log_driver,
            path: cfg.log_path.clone(),
            file: None,
            size: 0,
            max_size: cfg.log_max_size,
            max_files: cfg.log_max_files.max(1),
            dropped: 0,
            partial: [Vec::new(), Vec::new()],
            buf: Vec::new(),
        };
        // Opened at the first output: a container that prints nothing
        // costs no file (an inode on the persistent disk).
        Ok(w)
    }

    fn ensure_open(&mut self) {
        if self.file.is_none() && self.driver != LogDriver::None {
            if let Err(e) = self.open() {
                if self.dropped == 0 {
                    eprintln!("berth-monitor: open the log {}: {e}", self.path.display());
                }
            }
        }
    }

    fn open(&mut self) -> io::Result<()> {
        let f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .mode_0600()
            .open(&self.path)?;
        self.size = f.metadata()?.len();
        self.file = Some(f);
        Ok(())
    }

    fn rotate(&mut self) {
        self.file = None;
        let name = |i: u32| {
            let mut p = self.path.clone().into_os_string();
            p.push(format!(".{i}"));
            PathBuf::from(p)
        };
        if self.max_files > 1 {
            for i in (1..self.max_files - 1).rev() {
                let _ = std::fs::rename(name(i), name(i + 1));
            }
            let _ = std::fs::rename(&self.path, name(1));
        } else {
            let _ = std::fs::remove_file(&self.path);
        }
        if let Err(e) = self.open() {
            eprintln!("berth-monitor: reopen the log {}: {e}", self.path.display());
        }
    }

    fn entry(&mut self, stream: Stream, text: &[u8], now: i64) {
        let before = self.buf.len();
        match self.driver {
            LogDriver::JsonFile => logfmt::json_line(&mut self.buf, stream, text, now),
            LogDriver::K8sFile => logfmt::k8s_line(&mut self.buf, stream, text, now),
            LogDriver::None => {}
        }
        // With a size limit, a line that would pass it starts a new file
        // (so files stay under the limit, as Docker's json-file does).
        if self.max_size > 0
            && self.size + self.buf.len() as u64 > self.max_size
            && self.size + before as u64 > 0
        {
            let line = self.buf.split_off(before);
            self.commit();
            self.rotate();
            self.buf = line;
        }
    }

    /// Logs `data` of `stream`: whole lines now, a line's tail when it ends
    /// or grows past MAX_LINE.
    pub fn write(&mut self, stream: Stream, data: &[u8]) {
        if self.driver == LogDriver::None {
            return;
        }
        self.ensure_open();
        let now = berth_monitor_proto::now_nanos();
        let i = stream as usize;
        let mut rest = data;
        while let Some(pos) = rest.iter().position(|&b| b == b'\n') {
            let (line, tail) = rest.split_at(pos + 1);
            if self.partial[i].is_empty() {
                self.entry(stream, line, now);
            } else {
                let mut whole = std::mem::take(&mut self.partial[i]);
                whole.extend_from_slice(line);
                self.entry(stream, &whole, now);
            }
            rest = tail;
        }
        self.partial[i].extend_from_slice(rest);
        while self.partial[i].len() >= MAX_LINE {
            let part: Vec<u8> = self.partial[i].drain(..MAX_LINE).collect();
            self.entry(stream, &part, now);
        }
        self.commit();
    }

    /// Logs any unfinished line (the container ended).
    pub fn finish(&mut self) {
        let now = berth_monitor_proto::now_nanos();
        for (i, stream) in [(0, Stream::Stdout), (1, Stream::Stderr)] {
            if !self.partial[i].is_empty() {
                let part = std::mem::take(&mut self.partial[i]);
                self.entry(stream, &part, now);
            }
        }
        self.commit();
    }

    fn commit(&mut self) {
        if self.buf.is_empty() {
            return;
        }
        let n = self.buf.len() as u64;
        self.ensure_open();
        let ok = match self.file.as_mut() {
            Some(f) => f.write_all(&self.buf).is_ok(),
            None => false,
        };
        if ok {
            self.size += n;
        } else {
            self.dropped += n;
        }
        self.buf.clear();
    }
}

/// The log holds what the container prints (secrets too): its owner's.
trait Mode0600 {
    fn mode_0600(&mut self) -> &mut Self;
}
impl Mode0600 for std::fs::OpenOptions {
    fn mode_0600(&mut self) -> &mut Self {
        std::os::unix::fs::OpenOptionsExt::mode(self, 0o600)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;
    use std::path::Path;

    fn writer(dir: &Path, driver: LogDriver, max_size: u64, max_files: u32) -> LogWriter {
        let cfg = Config {
            log_driver: driver,
            log_path: dir.join("ctr.log"),
            log_max_size: max_size,
            log_max_files: max_files,
            ..Config::default()
        };
        LogWriter::new(&cfg).unwrap()
    }

    fn read(p: &Path) -> String {
        std::fs::read_to_string(p).unwrap_or_default()
    }

    /// The messages of a json-file log, in order.
    fn messages(p: &Path) -> Vec<String> {
        read(p)
            .lines()
            .map(|l| {
                let f = logfmt::parse_fields(l.as_bytes()).expect("a json-file line");
                f.into_iter()
                    .find(|(k, _)| k == "log")
                    .map(|(_, v)| v)
                    .unwrap()
            })
            .collect()
    }

    fn file(dir: &Path, i: u32) -> PathBuf {
        match i {
            0 => dir.join("ctr.log"),
            _ => dir.join(format!("ctr.log.{i}")),
        }
    }

    #[test]
    fn nothing_printed_makes_no_file_and_the_log_is_its_owners() {
        let dir = tempfile::tempdir().unwrap();
        let mut w = writer(dir.path(), LogDriver::JsonFile, 0, 1);
        w.finish();
        assert!(!file(dir.path(), 0).exists());
        w.write(Stream::Stdout, b"hello\n");
        let mode = std::fs::metadata(file(dir.path(), 0))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        assert_eq!(messages(&file(dir.path(), 0)), vec!["hello\n"]);
    }

    #[test]
    fn the_none_driver_writes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let mut w = writer(dir.path(), LogDriver::None, 0, 1);
        w.write(Stream::Stdout, b"hello\n");
        w.finish();
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
        assert_eq!(w.dropped, 0);
    }

    #[test]
    fn lines_are_joined_across_writes_and_a_last_unfinished_line_is_kept() {
        let dir = tempfile::tempdir().unwrap();
        let mut w = writer(dir.path(), LogDriver::JsonFile, 0, 1);
        w.write(Stream::Stdout, b"hel");
        w.write(Stream::Stderr, b"err\n");
        w.write(Stream::Stdout, b"lo\nwor");
        w.write(Stream::Stdout, b"ld");
        w.finish();
        assert_eq!(
            messages(&file(dir.path(), 0)),
            vec!["err\n", "hello\n", "world"]
        );
        assert!(read(&file(dir.path(), 0)).contains("\"stream\":\"stderr\""));
    }

    #[test]
    fn a_line_longer_than_max_line_is_logged_in_parts() {
        let dir = tempfile::tempdir().unwrap();
        let mut w = writer(dir.path(), LogDriver::JsonFile, 0, 1);
        let long = vec![b'x'; 2 * MAX_LINE + 10];
        w.write(Stream::Stdout, &long);
        w.write(Stream::Stdout, b"\n");
        let m = messages(&file(dir.path(), 0));
        assert_eq!(
            m.iter().map(String::len).collect::<Vec<_>>(),
            vec![MAX_LINE, MAX_LINE, 11]
        );
    }

    #[test]
    fn rotation_keeps_files_under_the_size_and_at_most_max_files() {
        let dir = tempfile::tempdir().unwrap();
        let max = 400;
        let mut w = writer(dir.path(), LogDriver::JsonFile, max, 3);
        for i in 0..40 {
            w.write(Stream::Stdout, format!("line {i:03}\n").as_bytes());
        }
        w.finish();
        let names: Vec<String> = {
            let mut n: Vec<String> = std::fs::read_dir(dir.path())
                .unwrap()
                .map(|e| e.unwrap().file_name().into_string().unwrap())
                .collect();
            n.sort();
            n
        };
        assert_eq!(names, vec!["ctr.log", "ctr.log.1", "ctr.log.2"]);
        for i in 0..3 {
            let len = std::fs::metadata(file(dir.path(), i)).unwrap().len();
            assert!(len > 0 && len <= max, "file {i}: {len} bytes");
        }
        // Newest in ctr.log, older in .1, oldest kept in .2; in order.
        let mut all = Vec::new();
        for i in (0..3).rev() {
            all.extend(messages(&file(dir.path(), i)));
        }
        assert_eq!(all.last().map(String::as_str), Some("line 039\n"));
        let nums: Vec<u32> = all.iter().map(|m| m[5..8].parse().unwrap()).collect();
        assert!(nums.windows(2).all(|p| p[1] == p[0] + 1), "{nums:?}");
        assert!(nums[0] > 0, "the oldest lines were dropped");
        assert_eq!(w.dropped, 0);
    }

    #[test]
    fn one_file_is_truncated_when_it_is_full() {
        let dir = tempfile::tempdir().unwrap();
        let mut w = writer(dir.path(), LogDriver::JsonFile, 300, 1);
        for i in 0..20 {
            w.write(Stream::Stdout, format!("line {i:03}\n").as_bytes());
        }
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
        let len = std::fs::metadata(file(dir.path(), 0)).unwrap().len();
        assert!(len <= 300, "{len}");
        assert_eq!(
            messages(&file(dir.path(), 0)).last().map(String::as_str),
            Some("line 019\n")
        );
    }

    #[test]
    fn a_line_bigger_than_the_limit_still_gets_a_file_of_its_own() {
        let dir = tempfile::tempdir().unwrap();
        let mut w = writer(dir.path(), LogDriver::JsonFile, 100, 2);
        w.write(Stream::Stdout, b"short\n");
        w.write(Stream::Stdout, &[b'y'; 300]);
        w.write(Stream::Stdout, b"\n");
        assert_eq!(messages(&file(dir.path(), 1)), vec!["short\n"]);
        assert_eq!(messages(&file(dir.path(), 0))[0].len(), 301);
    }

    #[test]
    fn what_cannot_be_written_is_counted_as_dropped() {
        let dir = tempfile::tempdir().unwrap();
        // The log's directory is missing.
        let mut w = writer(&dir.path().join("gone"), LogDriver::JsonFile, 0, 1);
        w.write(Stream::Stdout, b"lost\n");
        assert!(w.dropped > 0);
    }
}
