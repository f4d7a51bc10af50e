//! Docker's prune filters, shared by the CLI's `--filter` and the REST
//! API's `filters`: `until=` (a Go duration back from now, Unix seconds
//! or a date) and `label=`/`label!=` (`KEY` or `KEY=VALUE`). Pure.

use crate::error::{option, Result};
use std::collections::BTreeMap;

/// What a prune keeps out: only objects made before `until` and whose
/// labels pass are pruned. Empty: every candidate is.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PruneFilter {
    /// Nanoseconds since the epoch: only objects made before it.
    pub until: Option<i64>,
    /// `label=`: every one must hold.
    pub label: Vec<String>,
    /// `label!=`: none may hold.
    pub not_label: Vec<String>,
}

impl PruneFilter {
    /// From `KEY=VALUE` strings (`--filter`'s, or the API's filters made
    /// into them); `what` names the prune in errors ("network prune").
    /// `now`: nanoseconds since the epoch, for durations.
    pub fn parse(filters: &[String], what: &str, now: i64) -> Result<PruneFilter> {
        let mut f = PruneFilter::default();
        for s in filters {
            let (k, v) = s.split_once('=').unwrap_or((s.as_str(), ""));
            match k {
                "until" => {
                    f.until = Some(until_nanos(v, now).ok_or_else(|| {
                        option(
                            "--filter",
                            format!("{what}: invalid until {v:?}: expected a duration (24h), Unix seconds or a date (2006-01-02T15:04:05Z)"),
                        )
                    })?)
                }
                "label" if !v.is_empty() => f.label.push(v.to_string()),
                "label!" if !v.is_empty() => f.not_label.push(v.to_string()),
                _ => {
                    return Err(option(
                        "--filter",
                        format!("{what}: invalid filter {s:?}: expected until=, label= or label!="),
                    ))
                }
            }
        }
        Ok(f)
    }

    /// Whether labels (looked up by `get`) pass `label=` and `label!=`.
    pub fn labels_pass<'a>(&self, get: impl Fn(&str) -> Option<&'a str>) -> bool {
        let has = |l: &String| match l.split_once('=') {
            Some((k, v)) => get(k) == Some(v),
            None => get(l).is_some(),
        };
        self.label.iter().all(has) && !self.not_label.iter().any(has)
    }

    /// Whether an object made at `created` (nanoseconds) with `labels`
    /// is pruned.
    pub fn keeps(&self, created: i64, labels: &BTreeMap<String, String>) -> bool {
        self.until.is_none_or(|u| created < u)
            && self.labels_pass(|k| labels.get(k).map(String::as_str))
    }
}

/// Docker's `until` of a prune: a Go duration back from `now_ns` (`24h`,
/// `1h30m`, `90s`), Unix seconds (with a fraction), or a date (RFC 3339,
/// `2006-01-02T15:04:05`, `2006-01-02`; UTC when no zone): nanoseconds
/// since the epoch; None when it is none of those.
pub fn until_nanos(v: &str, now_ns: i64) -> Option<i64> {
    // A duration: numbers each with a unit.
    let units: [(&str, f64); 7] = [
        ("ns", 1.0),
        ("us", 1e3),
        ("µs", 1e3),
        ("ms", 1e6),
        ("s", 1e9),
        ("m", 60e9),
        ("h", 3600e9),
    ];
    let mut rest = v;
    let mut total = 0f64;
    let mut any = false;
    while !rest.is_empty() {
        let num_end = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        if num_end == 0 || num_end == rest.len() {
            break;
        }
        let Ok(n) = rest[..num_end].parse::<f64>() else {
            break;
        };
        let tail = &rest[num_end..];
        // Longest unit first (ms before m, us before s).
        let Some((u, mul)) = units
            .iter()
            .filter(|(u, _)| tail.starts_with(u))
            .max_by_key(|(u, _)| u.len())
        else {
            break;
        };
        total += n * mul;
        rest = &tail[u.len()..];
        any = rest.is_empty();
    }
    if any {
        return Some(now_ns.saturating_sub(total as i64));
    }
    if let Some((secs, frac)) = v.split_once('.').or(Some((v, ""))) {
        if !secs.is_empty()
            && secs.bytes().all(|b| b.is_ascii_digit())
            && frac.len() <= 9
            && frac.bytes().all(|b| b.is_ascii_digit())
        {
            let s: i64 = secs.parse().ok()?;
            let n: i64 = format!("{frac:0<9}").parse().unwrap_or(0);
            return s.checked_mul(1_000_000_000).and_then(|s| s.checked_add(n));
        }
    }
    let date = if v.len() == 10 {
        format!("{v}T00:00:00Z")
    } else if v.len() == 19
        || (v.len() > 20
            && !v.ends_with(['Z', 'z'])
            && v.get(19..).is_some_and(|t| !t.contains(['+', '-'])))
    {
        format!("{v}Z")
    } else {
        v.to_string()
    };
    crate::logs::parse_rfc3339(&date)
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_700_000_000_000_000_000;

    fn parse(s: &[&str]) -> Result<PruneFilter> {
        let v: Vec<String> = s.iter().map(|s| s.to_string()).collect();
        PruneFilter::parse(&v, "network prune", NOW)
    }

    #[test]
    fn until_takes_dockers_durations_seconds_and_dates() {
        let now = NOW;
        assert_eq!(until_nanos("24h", now), Some(now - 86_400_000_000_000));
        assert_eq!(until_nanos("1h30m", now), Some(now - 5_400_000_000_000));
        assert_eq!(until_nanos("1500ms", now), Some(now - 1_500_000_000));
        assert_eq!(until_nanos("10", now), Some(10_000_000_000));
        assert_eq!(until_nanos("10.5", now), Some(10_500_000_000));
        assert_eq!(until_nanos("1970-01-02", now), Some(86_400_000_000_000));
        assert_eq!(
            until_nanos("1970-01-01T00:01:00", now),
            Some(60_000_000_000)
        );
        assert_eq!(until_nanos("1970-01-01T01:00:00+01:00", now), Some(0));
        // Huge durations saturate.
        assert!(until_nanos("99999999999999999999h", now).unwrap() < 0);
        for bad in [
            "",
            "h",
            "5x",
            "yesterday",
            "1970-13-01",
            "1970-01-01T00:00:00é",
            "99999999999999999999",
        ] {
            assert_eq!(until_nanos(bad, now), None, "{bad}");
        }
    }

    #[test]
    fn filters_are_until_label_and_not_label() {
        let f = parse(&["until=1h", "label=a", "label=b=2", "label!=c"]).unwrap();
        assert_eq!(f.until, Some(NOW - 3_600_000_000_000));
        assert_eq!(f.label, ["a", "b=2"]);
        assert_eq!(f.not_label, ["c"]);
        assert_eq!(parse(&[]).unwrap(), PruneFilter::default());
        for bad in ["until=soon", "dangling=true", "label", "label=", "name=x"] {
            let e = parse(&[bad]).unwrap_err().to_string();
            assert!(
                e.contains("--filter") && e.contains("network prune"),
                "{bad}: {e}"
            );
        }
    }

    #[test]
    fn labels_all_must_hold_none_may_and_until_is_before() {
        let l: BTreeMap<String, String> = [("a", "1"), ("b", "2")]
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let keeps = |s: &[&str], created: i64| parse(s).unwrap().keeps(created, &l);
        assert!(keeps(&[], NOW));
        assert!(keeps(&["label=a", "label=b=2"], 0));
        assert!(!keeps(&["label=a=2"], 0));
        assert!(!keeps(&["label!=b"], 0));
        assert!(keeps(&["label!=b=3", "label!=c"], 0));
        assert!(keeps(&["until=1h"], NOW - 7_200_000_000_000));
        assert!(!keeps(&["until=1h"], NOW - 60_000_000_000));
        assert!(!keeps(&["until=1h", "label=c"], 0));
    }
}
