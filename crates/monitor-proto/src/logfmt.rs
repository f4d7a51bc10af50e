//! Container log lines: writing and reading the json-file format (Docker's)
//! and the k8s-file format (CRI's, podman's default).
//!
//! json-file: `{"log":"text\n","stream":"stdout","time":"RFC3339Nano"}`; a
//! line without its newline is a partial one.
//! k8s-file: `RFC3339Nano stdout F text` (F: full line, P: partial).

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stream {
    Stdout,
    Stderr,
}

impl Stream {
    pub fn name(self) -> &'static str {
        match self {
            Stream::Stdout => "stdout",
            Stream::Stderr => "stderr",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    pub time: i64,
    pub stream: Stream,
    /// The text, with its newline unless `partial`.
    pub text: Vec<u8>,
    pub partial: bool,
}

use berth_sys::time::days_from_civil;

/// `2026-11-23T06:18:12.123456789Z`.
pub fn rfc3339_nano(nanos: i64) -> String {
    berth_sys::time::rfc3339(
        nanos.div_euclid(1_000_000_000),
        Some(nanos.rem_euclid(1_000_000_000) as u32),
    )
}

/// Parses RFC 3339 (`Z` or `+hh:mm`, any fraction) to nanoseconds.
pub fn parse_rfc3339(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || !matches!(b[10], b'T' | b't' | b' ') {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<i64> {
        let t = s.get(r)?;
        if !t.bytes().all(|c| c.is_ascii_digit()) {
            return None;
        }
        t.parse().ok()
    };
    let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    if b[13] != b':' || b[16] != b':' {
        return None;
    }
    let (h, mi, se) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || se > 60 {
        return None;
    }
    let mut i = 19;
    let mut frac: i64 = 0;
    if b.get(i) == Some(&b'.') {
        i += 1;
        let start = i;
        while i < b.len() && b[i].is_ascii_digit() {
            if i - start < 9 {
                frac = frac * 10 + i64::from(b[i] - b'0');
            }
            i += 1;
        }
        if i == start {
            return None;
        }
        for _ in (i - start).min(9)..9 {
            frac *= 10;
        }
    }
    let offset = match &s[i..] {
        "Z" | "z" => 0,
        o if o.len() == 6
            && o.is_ascii()
            && (o.starts_with('+') || o.starts_with('-'))
            && &o[3..4] == ":" =>
        {
            let oh: i64 = o[1..3].parse().ok()?;
            let om: i64 = o[4..6].parse().ok()?;
            (oh * 3600 + om * 60) * if o.starts_with('-') { -1 } else { 1 }
        }
        _ => return None,
    };
    let secs = days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + se - offset;
    secs.checked_mul(1_000_000_000)?.checked_add(frac)
}

fn escape_json(out: &mut Vec<u8>, text: &[u8]) {
    let s = String::from_utf8_lossy(text);
    for c in s.chars() {
        match c {
            '"' => out.extend_from_slice(b"\\\""),
            '\\' => out.extend_from_slice(b"\\\\"),
            '\n' => out.extend_from_slice(b"\\n"),
            '\r' => out.extend_from_slice(b"\\r"),
            '\t' => out.extend_from_slice(b"\\t"),
            c if (c as u32) < 0x20 || c == '\u{7f}' => {
                out.extend_from_slice(format!("\\u{:04x}", c as u32).as_bytes())
            }
            c => {
                let mut b = [0; 4];
                out.extend_from_slice(c.encode_utf8(&mut b).as_bytes());
            }
        }
    }
}

/// One json-file line for `text` (which ends with '\n' unless partial).
pub fn json_line(out: &mut Vec<u8>, stream: Stream, text: &[u8], time: i64) {
    out.extend_from_slice(b"{\"log\":\"");
    escape_json(out, text);
    out.extend_from_slice(b"\",\"stream\":\"");
    out.extend_from_slice(stream.name().as_bytes());
    out.extend_from_slice(b"\",\"time\":\"");
    out.extend_from_slice(rfc3339_nano(time).as_bytes());
    out.extend_from_slice(b"\"}\n");
}

/// One k8s-file line for `text` (which ends with '\n' unless partial).
pub fn k8s_line(out: &mut Vec<u8>, stream: Stream, text: &[u8], time: i64) {
    let (body, tag) = match text.strip_suffix(b"\n") {
        Some(b) => (b, "F"),
        None => (text, "P"),
    };
    out.extend_from_slice(rfc3339_nano(time).as_bytes());
    out.push(b' ');
    out.extend_from_slice(stream.name().as_bytes());
    out.push(b' ');
    out.extend_from_slice(tag.as_bytes());
    out.push(b' ');
    out.extend_from_slice(body);
    out.push(b'\n');
}

fn parse_stream(s: &[u8]) -> Option<Stream> {
    match s {
        b"stdout" => Some(Stream::Stdout),
        b"stderr" => Some(Stream::Stderr),
        _ => None,
    }
}

/// Reads a k8s-file line (without its trailing newline).
pub fn parse_k8s(line: &[u8]) -> Option<Entry> {
    let mut parts = line.splitn(4, |&b| b == b' ');
    let time = parse_rfc3339(std::str::from_utf8(parts.next()?).ok()?)?;
    let stream = parse_stream(parts.next()?)?;
    let partial = match parts.next()? {
        b"F" => false,
        b"P" => true,
        _ => return None,
    };
    let mut text = parts.next().unwrap_or_default().to_vec();
    if !partial {
        text.push(b'\n');
    }
    Some(Entry {
        time,
        stream,
        text,
        partial,
    })
}

/// Reads a JSON string body starting after its opening quote; returns the
/// text and the index after the closing quote.
fn json_string(b: &[u8], mut i: usize) -> Option<(String, usize)> {
    let mut out = String::new();
    let mut plain = i;
    while i < b.len() {
        match b[i] {
            b'"' => {
                out.push_str(std::str::from_utf8(&b[plain..i]).ok()?);
                return Some((out, i + 1));
            }
            b'\\' => {
                out.push_str(std::str::from_utf8(&b[plain..i]).ok()?);
                let c = *b.get(i + 1)?;
                i += 2;
                match c {
                    b'"' => out.push('"'),
                    b'\\' => out.push('\\'),
                    b'/' => out.push('/'),
                    b'n' => out.push('\n'),
                    b'r' => out.push('\r'),
                    b't' => out.push('\t'),
                    b'b' => out.push('\u{8}'),
                    b'f' => out.push('\u{c}'),
                    b'u' => {
                        let hex = std::str::from_utf8(b.get(i..i + 4)?).ok()?;
                        let mut cp = u32::from_str_radix(hex, 16).ok()?;
                        i += 4;
                        if (0xd800..0xdc00).contains(&cp) && b.get(i..i + 2) == Some(b"\\u") {
                            let lo = std::str::from_utf8(b.get(i + 2..i + 6)?).ok()?;
                            let lo = u32::from_str_radix(lo, 16).ok()?;
                            if (0xdc00..0xe000).contains(&lo) {
                                cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
                                i += 6;
                            }
                        }
                        out.push(char::from_u32(cp).unwrap_or('\u{fffd}'));
                    }
                    _ => return None,
                }
                plain = i;
            }
            _ => i += 1,
        }
    }
    None
}

/// Reads a flat JSON object of string values (such as a runtime's JSON log
/// line); other value types end the parse.
pub fn parse_fields(line: &[u8]) -> Option<Vec<(String, String)>> {
    let b = line;
    let ws = |mut i: usize| {
        while i < b.len() && b[i].is_ascii_whitespace() {
            i += 1;
        }
        i
    };
    let mut i = ws(0);
    if b.get(i) != Some(&b'{') {
        return None;
    }
    i += 1;
    let mut out = Vec::new();
    loop {
        i = ws(i);
        match b.get(i)? {
            b'}' => return Some(out),
            b',' => {
                i += 1;
                continue;
            }
            b'"' => {}
            _ => return None,
        }
        let (key, j) = json_string(b, i + 1)?;
        i = ws(j);
        if b.get(i) != Some(&b':') {
            return None;
        }
        i = ws(i + 1);
        if b.get(i) != Some(&b'"') {
            return None;
        }
        let (val, j) = json_string(b, i + 1)?;
        i = j;
        out.push((key, val));
    }
}

/// Reads a json-file line: an object with string fields `log`, `stream`
/// and `time` in any order (other string fields are skipped).
pub fn parse_json(line: &[u8]) -> Option<Entry> {
    let (mut log, mut stream, mut time) = (None, None, None);
    for (k, v) in parse_fields(line)? {
        match k.as_str() {
            "log" => log = Some(v),
            "stream" => stream = parse_stream(v.as_bytes()),
            "time" => time = parse_rfc3339(&v),
            _ => {}
        }
    }
    let text = log?.into_bytes();
    Some(Entry {
        time: time?,
        stream: stream?,
        partial: !text.ends_with(b"\n"),
        text,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times() {
        let t = 1_795_400_645_123_456_789;
        let s = rfc3339_nano(t);
        assert_eq!(s, "2026-11-23T02:24:05.123456789Z");
        assert_eq!(parse_rfc3339(&s), Some(t));
        assert_eq!(
            parse_rfc3339("2026-11-23T03:24:05.5+01:00"),
            Some(1_795_400_645_500_000_000)
        );
        assert_eq!(
            parse_rfc3339("2000-02-29T00:00:00Z"),
            Some(951_782_400 * 1_000_000_000)
        );
        assert_eq!(parse_rfc3339("2000-02-29"), None);
        assert_eq!(parse_rfc3339("2000-02-29T00:00:00"), None);
        assert_eq!(parse_rfc3339("2000-13-29T00:00:00Z"), None);
        // Found by fuzzing: a multi-byte character where the offset goes
        // (user input through `berth logs --since`) must not panic.
        assert_eq!(parse_rfc3339("2000-01-01T00:00:00-\u{fffd}t)"), None);
        assert_eq!(parse_rfc3339("2000-01-01T00:00:00+0\u{e9}:0"), None);
    }

    #[test]
    fn json_round_trip() {
        let mut out = Vec::new();
        let text = "a \"quoted\" \\ tab\t bell\u{7} ünï 😀\n".as_bytes();
        json_line(&mut out, Stream::Stderr, text, 5_000_000_001);
        assert!(out.ends_with(b"}\n"));
        let e = parse_json(&out[..out.len() - 1]).unwrap();
        assert_eq!(e.text, text);
        assert_eq!(e.stream, Stream::Stderr);
        assert_eq!(e.time, 5_000_000_001);
        assert!(!e.partial);
        // Docker's own lines (Go escapes < > & too) read the same.
        let docker = br#"{"log":"\u003cb\u003e \ud83d\ude00\n","stream":"stdout","time":"2026-11-23T02:24:05.1Z"}"#;
        let e = parse_json(docker).unwrap();
        assert_eq!(e.text, "<b> 😀\n".as_bytes());
        assert!(parse_json(b"{\"log\":\"x\"}").is_none());
        assert!(parse_json(b"garbage").is_none());
        // Invalid UTF-8 becomes U+FFFD, as in Docker.
        let mut out = Vec::new();
        json_line(&mut out, Stream::Stdout, b"\xff\n", 0);
        assert_eq!(
            parse_json(&out[..out.len() - 1]).unwrap().text,
            "\u{fffd}\n".as_bytes()
        );
    }

    #[test]
    fn k8s_round_trip() {
        let mut out = Vec::new();
        k8s_line(&mut out, Stream::Stdout, b"hello world\n", 7);
        k8s_line(&mut out, Stream::Stderr, b"part", 8);
        let lines: Vec<&[u8]> = out
            .split(|&b| b == b'\n')
            .filter(|l| !l.is_empty())
            .collect();
        let a = parse_k8s(lines[0]).unwrap();
        assert_eq!(
            (a.text.as_slice(), a.partial, a.time),
            (&b"hello world\n"[..], false, 7)
        );
        let b = parse_k8s(lines[1]).unwrap();
        assert_eq!(
            (b.text.as_slice(), b.partial, b.stream),
            (&b"part"[..], true, Stream::Stderr)
        );
        assert!(parse_k8s(b"nonsense").is_none());
    }
}
