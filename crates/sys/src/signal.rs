//! Signals by name or number, as `kill(1)`, runc and Docker take them.

const NAMES: &[(&str, i32)] = &[
    ("HUP", 1),
    ("INT", 2),
    ("QUIT", 3),
    ("ILL", 4),
    ("TRAP", 5),
    ("ABRT", 6),
    ("IOT", 6),
    ("BUS", 7),
    ("FPE", 8),
    ("KILL", 9),
    ("USR1", 10),
    ("SEGV", 11),
    ("USR2", 12),
    ("PIPE", 13),
    ("ALRM", 14),
    ("TERM", 15),
    ("STKFLT", 16),
    ("CHLD", 17),
    ("CONT", 18),
    ("STOP", 19),
    ("TSTP", 20),
    ("TTIN", 21),
    ("TTOU", 22),
    ("URG", 23),
    ("XCPU", 24),
    ("XFSZ", 25),
    ("VTALRM", 26),
    ("PROF", 27),
    ("WINCH", 28),
    ("IO", 29),
    ("POLL", 29),
    ("PWR", 30),
    ("SYS", 31),
];

/// Parses a signal given by number (1-64) or by name, with or without
/// `SIG`, in any case: `KILL`, `sigterm`, `IOT`, `RTMIN`, `RTMIN+3`,
/// `SIGRTMAX-2`. The error says what is wrong, for the caller to put in
/// context.
pub fn parse(s: &str) -> Result<i32, String> {
    if let Ok(n) = s.parse::<i32>() {
        return if (1..=64).contains(&n) {
            Ok(n)
        } else {
            Err(format!("signal {n} is out of range 1-64"))
        };
    }
    let unknown = || format!("unknown signal {s:?}");
    let up = s.to_ascii_uppercase();
    let name = up.strip_prefix("SIG").unwrap_or(&up);
    if let Some((_, n)) = NAMES.iter().find(|(n, _)| *n == name) {
        return Ok(*n);
    }
    let (min, max) = (libc::SIGRTMIN(), libc::SIGRTMAX());
    let offset = |rest: &str, sign: char| -> Result<i32, String> {
        if rest.is_empty() {
            return Ok(0);
        }
        rest.strip_prefix(sign)
            .and_then(|r| r.parse::<i32>().ok())
            .filter(|n| *n >= 0)
            .ok_or_else(unknown)
    };
    let n = if let Some(rest) = name.strip_prefix("RTMIN") {
        min + offset(rest, '+')?
    } else if let Some(rest) = name.strip_prefix("RTMAX") {
        max - offset(rest, '-')?
    } else {
        return Err(unknown());
    };
    if (min..=max).contains(&n) {
        Ok(n)
    } else {
        Err(unknown())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_numbers_and_realtime_signals() {
        assert_eq!(parse("TERM"), Ok(15));
        assert_eq!(parse("sigkill"), Ok(9));
        assert_eq!(parse("SIGIOT"), Ok(6));
        assert_eq!(parse("poll"), Ok(29));
        assert_eq!(parse("10"), Ok(10));
        assert_eq!(parse("64"), Ok(64));
        assert_eq!(parse("RTMIN"), Ok(libc::SIGRTMIN()));
        assert_eq!(parse("RTMIN+2"), Ok(libc::SIGRTMIN() + 2));
        assert_eq!(parse("SIGRTMAX-1"), Ok(libc::SIGRTMAX() - 1));
        assert_eq!(parse("RTMAX"), Ok(libc::SIGRTMAX()));
        for bad in [
            "NOPE", "", "SIG", "RTMIN+99", "RTMIN-1", "RTMAX+1", "RTMIN+x", "RTMIN2",
        ] {
            assert!(parse(bad).unwrap_err().contains("unknown signal"), "{bad}");
        }
        assert!(parse("0").unwrap_err().contains("out of range"));
        assert!(parse("65").unwrap_err().contains("out of range"));
        assert!(parse("-9").unwrap_err().contains("out of range"));
    }
}
