//! `images --filter`: dangling=, label=, reference=, before=, since=, as
//! Docker filters (values of one key are alternatives; keys all match).

use crate::error::{option, Result};
use crate::spec::ImageConfig;
use berth_image::store::{ImageRow, Store};
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct ImageFilter {
    pub dangling: Option<bool>,
    /// `KEY` or `KEY=VALUE` among the image's labels.
    pub label: Vec<String>,
    /// A name pattern (`*` and `?`), matched against the name as given
    /// and as Docker shortens it (`busybox:latest` for
    /// docker.io/library/busybox:latest).
    pub reference: Vec<String>,
    /// Images made before / after this image (by name or id).
    pub before: Vec<String>,
    pub since: Vec<String>,
}

impl ImageFilter {
    pub fn parse(filters: &[String]) -> Result<ImageFilter> {
        let mut f = ImageFilter::default();
        for s in filters {
            let Some((k, v)) = s.split_once('=') else {
                return Err(option("--filter", format!("{s:?} is not KEY=VALUE")));
            };
            match k {
                "dangling" => {
                    f.dangling = Some(match v {
                        "true" | "1" => true,
                        "false" | "0" => false,
                        _ => return Err(option("--filter", "dangling= takes true or false")),
                    })
                }
                "label" => f.label.push(v.into()),
                "reference" => f.reference.push(v.into()),
                "before" => f.before.push(v.into()),
                "since" => f.since.push(v.into()),
                _ => {
                    return Err(option(
                        "--filter",
                        format!("{k:?} is not a filter of images (dangling, label, reference, before, since)"),
                    ))
                }
            }
        }
        Ok(f)
    }
}

/// When an image was made: its config's `created`, else when it was
/// stored; ns since the epoch.
fn made(i: &ImageRow) -> i64 {
    i.created
        .as_deref()
        .and_then(|c| crate::events::parse_time(c, 0, "created").ok())
        .unwrap_or(i.pulled.saturating_mul(1_000_000_000))
}

/// Docker's short form of a stored name.
pub(crate) fn familiar(name: &str) -> &str {
    name.strip_prefix("docker.io/library/")
        .or_else(|| name.strip_prefix("docker.io/"))
        .unwrap_or(name)
}

/// `*` (any run, `/` included) and `?` (one character) glob.
pub fn glob(pattern: &str, s: &str) -> bool {
    let (p, s): (Vec<char>, Vec<char>) = (pattern.chars().collect(), s.chars().collect());
    let (mut pi, mut si, mut star, mut mark) = (0, 0, None, 0);
    while si < s.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == s[si]) {
            pi += 1;
            si += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some(pi);
            mark = si;
            pi += 1;
        } else if let Some(st) = star {
            pi = st + 1;
            mark += 1;
            si = mark;
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == '*')
}

/// The images of `rows` that `f` keeps (rows from `store.images()`).
pub fn filter_images(store: &Store, rows: Vec<ImageRow>, f: &ImageFilter) -> Result<Vec<ImageRow>> {
    let time_of = |what: &str| -> Result<i64> { Ok(made(&store.resolve(what)?)) };
    let before: Vec<i64> = f.before.iter().map(|b| time_of(b)).collect::<Result<_>>()?;
    let since: Vec<i64> = f.since.iter().map(|b| time_of(b)).collect::<Result<_>>()?;
    let mut out = Vec::new();
    for i in rows.iter() {
        let tags: Vec<&String> = i.names.iter().filter(|n| !n.contains('@')).collect();
        if f.dangling.is_some_and(|d| d != tags.is_empty()) {
            continue;
        }
        // A reference filter also narrows the image's tags to those it
        // matches (as dockerd: `images -q bb:1` lists the id once, not once
        // per tag).
        let mut row = i.clone();
        if !f.reference.is_empty() {
            let matches = |t: &str| {
                let short = familiar(t);
                let repo = |n: &str| {
                    n.rsplit_once(':')
                        .map_or(n.to_string(), |(r, _)| r.to_string())
                };
                f.reference.iter().any(|p| {
                    glob(p, t) || glob(p, short) || glob(p, &repo(short)) || glob(p, &repo(t))
                })
            };
            if !tags.iter().any(|t| matches(t)) {
                continue;
            }
            row.names.retain(|n| n.contains('@') || matches(n));
        }
        let t = made(i);
        if !before.iter().all(|&b| t < b) || !since.iter().all(|&s| t > s) {
            continue;
        }
        if !f.label.is_empty() {
            let labels = store
                .read_blob(&i.id, berth_image::pull::MAX_CONFIG)
                .ok()
                .and_then(|raw| ImageConfig::from_json(&raw).ok())
                .map(|c| c.labels)
                .unwrap_or_default();
            let ok = f.label.iter().all(|l| match l.split_once('=') {
                Some((k, v)) => labels.get(k).is_some_and(|x| x == v),
                None => labels.contains_key(l.as_str()),
            });
            if !ok {
                continue;
            }
        }
        out.push(row);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    #[test]
    fn globs_match_as_dockers_reference_filter() {
        use super::glob;
        assert!(glob("busybox", "busybox"));
        assert!(glob("busy*", "busybox"));
        assert!(glob("*box:latest", "busybox:latest"));
        assert!(glob("b?sybox", "busybox"));
        assert!(!glob("busy", "busybox"));
        assert!(!glob("alpine*", "busybox"));
        assert!(glob("*", ""));
        assert_eq!(super::familiar("docker.io/library/busybox:1"), "busybox:1");
        assert_eq!(super::familiar("quay.io/a/b:1"), "quay.io/a/b:1");
    }

    #[test]
    fn filters_parse() {
        let f =
            super::ImageFilter::parse(&["dangling=true".into(), "reference=bb*".into()]).unwrap();
        assert_eq!(f.dangling, Some(true));
        assert!(super::ImageFilter::parse(&["dangling=maybe".into()]).is_err());
        assert!(super::ImageFilter::parse(&["colour=red".into()]).is_err());
    }
}
