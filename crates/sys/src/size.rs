//! Sizes as Docker and runc take them on the command line.

/// Parses `512m`, `1g`, `1.5k`, `2T`, `512mb`, `1024` (bytes; the suffixes
/// are binary, any case, with or without a trailing `b`). The error says
/// what is wrong, for the caller to put in context.
pub fn parse(s: &str) -> Result<u64, String> {
    let t = s.trim().to_ascii_lowercase();
    let t = t.strip_suffix('b').unwrap_or(&t);
    let (num, mul) = match t.chars().last() {
        Some('k') => (&t[..t.len() - 1], 1u64 << 10),
        Some('m') => (&t[..t.len() - 1], 1 << 20),
        Some('g') => (&t[..t.len() - 1], 1 << 30),
        Some('t') => (&t[..t.len() - 1], 1 << 40),
        _ => (t, 1),
    };
    let n: f64 = num
        .parse()
        .map_err(|_| "is not a size such as 512m or 1g".to_string())?;
    if !(n >= 0.0 && n.is_finite()) || n * mul as f64 > i64::MAX as f64 {
        return Err("is out of range".into());
    }
    Ok((n * mul as f64) as u64)
}

#[cfg(test)]
mod tests {
    use super::parse;

    #[test]
    fn sizes() {
        assert_eq!(parse("1024"), Ok(1024));
        assert_eq!(parse("64m"), Ok(64 << 20));
        assert_eq!(parse("2G"), Ok(2 << 30));
        assert_eq!(parse("1.5k"), Ok(1536));
        assert_eq!(parse("512mb"), Ok(512 << 20));
        assert_eq!(parse(" 1t "), Ok(1 << 40));
        assert_eq!(parse("0"), Ok(0));
        for bad in ["lots", "", "m", "1..5m", "0x10"] {
            assert!(parse(bad).unwrap_err().contains("not a size"), "{bad}");
        }
        for bad in ["-5m", "inf", "NaN", "9999999t"] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }
}
