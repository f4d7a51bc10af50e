//! Events: what happened to containers, images and volumes, recorded in the
//! store's database (table `events`, the newest
//! [`crate::records::EVENTS_KEPT`] kept) by the command that made it happen
//! (a container's end by its monitor's exit command, or by the next command
//! that finds it ended), and read back, filtered and followed, by
//! [`Engine::events`] in Docker's shape.

use crate::containers::Engine;
use crate::error::{option, Result};
use crate::records::{Record, RunState};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::time::Duration;

/// What an event is about: its id (a container's or image's id, a
/// volume's name) and attributes (name, image, labels, exitCode, ...).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Actor {
    #[serde(rename = "ID")]
    pub id: String,
    #[serde(rename = "Attributes")]
    pub attributes: BTreeMap<String, String>,
}

/// One event, in the shape of Docker's `docker events --format json`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    /// The action (container and image events only, as Docker's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// A container's image.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    /// container, image or volume.
    #[serde(rename = "Type")]
    pub kind: String,
    #[serde(rename = "Action")]
    pub action: String,
    #[serde(rename = "Actor")]
    pub actor: Actor,
    pub scope: String,
    /// Seconds since the epoch.
    pub time: i64,
    #[serde(rename = "timeNano")]
    pub time_nano: i64,
}

impl Event {
    pub fn new(
        time_nano: i64,
        kind: &str,
        action: &str,
        id: &str,
        attributes: BTreeMap<String, String>,
    ) -> Event {
        let legacy = kind == "container" || kind == "image";
        Event {
            status: legacy.then(|| action.to_string()),
            id: legacy.then(|| id.to_string()),
            from: if kind == "container" {
                attributes.get("image").cloned()
            } else {
                None
            },
            kind: kind.to_string(),
            action: action.to_string(),
            actor: Actor {
                id: id.to_string(),
                attributes,
            },
            scope: "local".into(),
            time: time_nano.div_euclid(1_000_000_000),
            time_nano,
        }
    }
}

/// `--filter` of `events`: values of one key match any of them; all keys
/// given must match.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct EventFilter {
    /// A container's id, id prefix or name.
    pub container: Vec<String>,
    /// The action (`exec_start`, not `exec_start: sh`).
    pub event: Vec<String>,
    /// container, image or volume.
    #[serde(rename = "type")]
    pub kind: Vec<String>,
    /// The image (as named, or its id).
    pub image: Vec<String>,
    /// A volume's name.
    pub volume: Vec<String>,
    /// `KEY` or `KEY=VALUE` among the attributes (labels).
    pub label: Vec<String>,
}

impl EventFilter {
    /// From `KEY=VALUE` strings as `--filter` takes them.
    pub fn parse(filters: &[String]) -> Result<EventFilter> {
        let mut f = EventFilter::default();
        for s in filters {
            let Some((k, v)) = s.split_once('=') else {
                return Err(option(
                    "--filter",
                    format!("{s:?} is not KEY=VALUE (container=, event=, type=, image=, volume=, label=)"),
                ));
            };
            let list = match k {
                "container" => &mut f.container,
                "event" => &mut f.event,
                "type" => &mut f.kind,
                "image" => &mut f.image,
                "volume" => &mut f.volume,
                "label" => &mut f.label,
                _ => {
                    return Err(option(
                        "--filter",
                        format!("{k:?} is not a filter of events (container, event, type, image, volume, label)"),
                    ))
                }
            };
            list.push(v.to_string());
        }
        Ok(f)
    }

    pub fn matches(&self, e: &Event) -> bool {
        let attr = |k: &str| e.actor.attributes.get(k).map(String::as_str);
        let any = |list: &[String], f: &dyn Fn(&str) -> bool| {
            list.is_empty() || list.iter().any(|v| f(v))
        };
        let base_action = e.action.split(':').next().unwrap_or("");
        any(&self.container, &|v| {
            e.kind == "container"
                && (e.actor.id == v
                    || (v.len() >= 3 && e.actor.id.starts_with(v))
                    || attr("name") == Some(v))
        }) && any(&self.event, &|v| base_action == v)
            && any(&self.kind, &|v| e.kind == v)
            && any(&self.image, &|v| {
                let named = |n: &str| {
                    let short = crate::imagelist::familiar(n);
                    [n, short]
                        .iter()
                        .any(|n| *n == v || n.strip_suffix(":latest") == Some(v))
                };
                match e.kind.as_str() {
                    "container" => attr("image").is_some_and(named),
                    "image" => e.actor.id == v || attr("name").is_some_and(named),
                    _ => false,
                }
            })
            && any(&self.volume, &|v| e.kind == "volume" && e.actor.id == v)
            && any(&self.label, &|v| match v.split_once('=') {
                Some((k, val)) => attr(k) == Some(val),
                None => attr(v).is_some(),
            })
    }
}

/// What `events` is asked: times are ns since the epoch
/// ([`parse_time`] reads Docker's formats).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct EventsRequest {
    /// Past events from this time on; None: none (only new ones), unless
    /// `until` is given (then from the oldest kept).
    pub since: Option<i64>,
    /// Stop after this time (waiting for it if it is to come); None:
    /// follow for ever.
    pub until: Option<i64>,
    pub filter: EventFilter,
}

/// How often a follower looks for new events (a query on an index).
const POLL: Duration = Duration::from_millis(100);

/// Records an image event (pull, tag, untag, delete) in `store`'s
/// database, which must have been opened with
/// [`crate::records::TABLES`]. Best effort, as [`Engine::record_event`].
pub fn record_image_event(store: &berth_image::store::Store, action: &str, id: &str, name: &str) {
    let mut a = BTreeMap::new();
    if !name.is_empty() {
        a.insert("name".to_string(), name.to_string());
    }
    let e = Event::new(crate::containers::now_nanos(), "image", action, id, a);
    let _ = crate::records::Records::new(store).add_event(&e);
}

impl Engine {
    /// Records an event. Best effort: the operation it tells of has
    /// happened, and failing it because its record could not be written
    /// would be worse than a gap in the events.
    pub fn record_event(
        &self,
        kind: &str,
        action: &str,
        id: &str,
        attributes: BTreeMap<String, String>,
    ) {
        let e = Event::new(crate::containers::now_nanos(), kind, action, id, attributes);
        let _ = self.records.add_event(&e);
    }

    /// Records a container's event: its name, image and labels as
    /// attributes, and `extra` (exitCode, signal, ...).
    pub(crate) fn container_event(&self, rec: &Record, action: &str, extra: &[(&str, String)]) {
        let mut a = rec.spec.metadata.labels.clone();
        a.insert("name".into(), rec.name.clone());
        a.insert("image".into(), rec.image.clone());
        for (k, v) in extra {
            a.insert((*k).to_string(), v.clone());
        }
        self.record_event("container", action, &rec.id, a);
    }

    /// Calls `each` for every event `req` selects, oldest first, following
    /// new ones until `req.until` (for ever without it). Ends when `each`
    /// fails (the reader went away).
    pub fn events(
        &self,
        req: &EventsRequest,
        each: impl FnMut(&Event) -> std::io::Result<()>,
    ) -> Result<()> {
        self.events_until(req, || false, each)
    }

    /// As [`Engine::events`], and also ends, within one poll (0.1 s), once
    /// `cancelled` says so: a reader that went away while no event came
    /// (an API client that left) frees the follower at once, not at the
    /// next event.
    pub fn events_until(
        &self,
        req: &EventsRequest,
        cancelled: impl Fn() -> bool,
        mut each: impl FnMut(&Event) -> std::io::Result<()>,
    ) -> Result<()> {
        let mut seq = if req.since.is_some() || req.until.is_some() {
            0
        } else {
            self.records.last_event()?
        };
        let since = req.since.unwrap_or(i64::MIN);
        loop {
            let batch = self.records.events_after(seq, 500)?;
            let empty = batch.is_empty();
            for (s, e) in batch {
                seq = s;
                if req.until.is_some_and(|u| e.time_nano > u) {
                    return Ok(());
                }
                if e.time_nano >= since && req.filter.matches(&e) && each(&e).is_err() {
                    return Ok(());
                }
            }
            if !empty {
                continue;
            }
            if cancelled() {
                return Ok(());
            }
            let now = crate::containers::now_nanos();
            let wait = match req.until {
                Some(u) if u <= now => return Ok(()),
                Some(u) => POLL.min(Duration::from_nanos((u - now) as u64)),
                None => POLL,
            };
            std::thread::sleep(wait);
        }
    }
}

/// One event of a container's runs ([`run_events`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum RunEvent {
    /// A run ended; `last`: the newest run that ended, whose exit code the
    /// state holds (an earlier one's is gone).
    Die { last: bool },
    /// The restart policy started the next run.
    Start,
}

/// What happened between two states of a running container's record, as
/// Docker records a restart by policy: the run's `die`, then `start`.
/// The monitor counts `restarts` as it starts the next run, and shows
/// `Restarting` between a run's end and that start; `old` was recorded
/// with its events already (a `Restarting` `old` with the die of its
/// newest run). Nothing for an `old` that was not running.
pub(crate) fn run_events(old: &RunState, new: &RunState) -> Vec<RunEvent> {
    use crate::records::Status;
    if !matches!(old.status, Status::Running | Status::Restarting) {
        return Vec::new();
    }
    // Runs ended so far: one per restart, and one more for a run that
    // ended and was not (yet) followed by another.
    let ended_by = |s: &RunState, up: bool| s.restarts + u32::from(!up);
    let old_ended = ended_by(old, old.status == Status::Running);
    let new_ended = ended_by(new, new.status == Status::Running);
    let mut out = Vec::new();
    for run in old.restarts..new.restarts {
        if run >= old_ended {
            out.push(RunEvent::Die {
                last: run + 1 == new_ended,
            });
        }
        out.push(RunEvent::Start);
    }
    if new.status != Status::Running && new.restarts >= old_ended {
        out.push(RunEvent::Die { last: true });
    }
    out
}

/// A time as `--since`/`--until` take it (Docker's formats), as ns since
/// the epoch: Unix seconds (`1700000000`, `1700000000.5`), a date and
/// time (`2026-12-06`, `2026-12-06T08:00`, `2026-12-06T08:00:00.5Z`,
/// `...+01:00`; local time without a zone), or a duration before `now`
/// (`10m`, `1h30m`, `90s`).
pub fn parse_time(s: &str, now: i64, flag: &str) -> Result<i64> {
    let bad = || {
        option(
            flag,
            format!("{s:?} is not a time: give Unix seconds, 2006-01-02[T15:04[:05][Z|+07:00]] or a duration such as 10m"),
        )
    };
    let s = s.trim();
    if s.is_empty() {
        return Err(bad());
    }
    if s.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
        let (secs, frac) = s.split_once('.').unwrap_or((s, ""));
        let secs: i64 = secs.parse().map_err(|_| bad())?;
        let frac = frac_nanos(frac).ok_or_else(bad)?;
        return secs
            .checked_mul(1_000_000_000)
            .and_then(|n| n.checked_add(frac))
            .ok_or_else(bad);
    }
    if let Some(d) = parse_duration(s) {
        return Ok(now.saturating_sub(d));
    }
    parse_date_time(s).ok_or_else(bad)
}

/// Up to 9 digits after the point, as ns.
fn frac_nanos(frac: &str) -> Option<i64> {
    if frac.len() > 9 || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    if frac.is_empty() {
        return Some(0);
    }
    let n: i64 = frac.parse().ok()?;
    Some(n * 10i64.pow(9 - frac.len() as u32))
}

/// A Go duration (`1h30m`, `10s`, `1.5h`, `250ms`) in ns.
fn parse_duration(s: &str) -> Option<i64> {
    let mut total = 0f64;
    let mut rest = s;
    while !rest.is_empty() {
        let n = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .filter(|&n| n > 0)?;
        let v: f64 = rest[..n].parse().ok()?;
        rest = &rest[n..];
        let u = rest
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(rest.len());
        let unit = match &rest[..u] {
            "ns" => 1.0,
            "us" | "µs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            _ => return None,
        };
        rest = &rest[u..];
        total += v * unit;
    }
    (total < 9e18).then_some(total as i64)
}

/// `YYYY-MM-DD[THH:MM[:SS[.frac]]][Z|±HH:MM]`.
fn parse_date_time(s: &str) -> Option<i64> {
    let num = |t: &str, len: usize| -> Option<i64> {
        (t.len() == len && t.bytes().all(|b| b.is_ascii_digit()))
            .then(|| t.parse().ok())
            .flatten()
    };
    let (date, time) = s.split_once(['T', ' ']).unwrap_or((s, ""));
    let mut d = date.split('-');
    let (y, mo, da) = (num(d.next()?, 4)?, num(d.next()?, 2)?, num(d.next()?, 2)?);
    if d.next().is_some() || !(1..=12).contains(&mo) || !(1..=31).contains(&da) {
        return None;
    }
    // The zone: Z, ±HH:MM or ±HHMM at the end; none means local time.
    let (clock, zone) = if let Some(c) = time.strip_suffix('Z') {
        (c, Some(0))
    } else if let Some(i) = time.rfind(['+', '-']) {
        let z = &time[i + 1..].replace(':', "");
        let off = num(&z[..2.min(z.len())], 2)? * 3600 + num(z.get(2..)?, 2)? * 60;
        (
            &time[..i],
            Some(if &time[i..=i] == "-" { -off } else { off }),
        )
    } else {
        (time, None)
    };
    let (mut h, mut mi, mut sec, mut nanos) = (0, 0, 0, 0);
    if !clock.is_empty() {
        let (hms, frac) = clock.split_once('.').unwrap_or((clock, ""));
        let mut p = hms.split(':');
        h = num(p.next()?, 2)?;
        mi = num(p.next()?, 2)?;
        if let Some(x) = p.next() {
            sec = num(x, 2)?;
        }
        if p.next().is_some() || h > 23 || mi > 59 || sec > 60 {
            return None;
        }
        nanos = frac_nanos(frac)?;
    } else if zone.is_some() && !time.is_empty() {
        return None;
    }
    let secs = match zone {
        Some(off) => {
            berth_sys::time::days_from_civil(y, mo, da) * 86400 + h * 3600 + mi * 60 + sec - off
        }
        None => local_to_utc(y, mo, da, h, mi, sec)?,
    };
    Some(secs * 1_000_000_000 + nanos)
}

/// A local wall-clock time as Unix seconds (the C library's zone rules).
fn local_to_utc(y: i64, mo: i64, d: i64, h: i64, mi: i64, s: i64) -> Option<i64> {
    // SAFETY: an all-zero `tm` is a valid value of the plain C struct.
    let mut tm: libc::tm = unsafe { std::mem::zeroed() };
    tm.tm_year = i32::try_from(y - 1900).ok()?;
    tm.tm_mon = (mo - 1) as i32;
    tm.tm_mday = d as i32;
    tm.tm_hour = h as i32;
    tm.tm_min = mi as i32;
    tm.tm_sec = s as i32;
    tm.tm_isdst = -1;
    // SAFETY: `tm` is a valid, exclusively borrowed struct tm; mktime
    // only reads and normalises it.
    let t = unsafe { libc::mktime(&mut tm) };
    (t != -1).then_some(t)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(kind: &str, action: &str, id: &str, attrs: &[(&str, &str)]) -> Event {
        Event::new(
            1_700_000_000_123_456_789,
            kind,
            action,
            id,
            attrs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        )
    }

    #[test]
    fn an_event_has_dockers_shape() {
        let e = ev(
            "container",
            "die",
            "abc123",
            &[("name", "web"), ("image", "busybox"), ("exitCode", "3")],
        );
        let v = serde_json::to_value(&e).unwrap();
        assert_eq!(
            v,
            serde_json::json!({
                "status": "die", "id": "abc123", "from": "busybox",
                "Type": "container", "Action": "die",
                "Actor": {"ID": "abc123", "Attributes": {"name": "web", "image": "busybox", "exitCode": "3"}},
                "scope": "local", "time": 1_700_000_000, "timeNano": 1_700_000_000_123_456_789i64
            })
        );
        let v = serde_json::to_value(ev("volume", "create", "data", &[])).unwrap();
        assert!(v.get("status").is_none() && v.get("from").is_none());
    }

    #[test]
    fn filters_are_anded_across_keys_and_ored_within() {
        let f = |s: &[&str]| {
            EventFilter::parse(&s.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap()
        };
        let die = ev(
            "container",
            "die",
            "abcdef0123",
            &[
                ("name", "web"),
                ("image", "busybox:latest"),
                ("tier", "front"),
            ],
        );
        let exec = ev(
            "container",
            "exec_start: sh -c ls",
            "abcdef0123",
            &[("name", "web")],
        );
        let vol = ev("volume", "create", "data", &[]);
        assert!(f(&[]).matches(&die));
        assert!(f(&["container=web"]).matches(&die));
        assert!(f(&["container=abcdef"]).matches(&die));
        assert!(!f(&["container=db"]).matches(&die));
        assert!(f(&["container=db", "container=web"]).matches(&die));
        assert!(f(&["event=die", "container=web"]).matches(&die));
        assert!(!f(&["event=start", "container=web"]).matches(&die));
        assert!(f(&["event=exec_start"]).matches(&exec));
        assert!(f(&["type=volume"]).matches(&vol) && !f(&["type=volume"]).matches(&die));
        assert!(f(&["image=busybox"]).matches(&die));
        assert!(f(&["label=tier"]).matches(&die) && f(&["label=tier=front"]).matches(&die));
        assert!(!f(&["label=tier=back"]).matches(&die));
        assert!(f(&["volume=data"]).matches(&vol) && !f(&["volume=x"]).matches(&vol));
        assert!(EventFilter::parse(&["nonsense=1".into()]).is_err());
        assert!(EventFilter::parse(&["container".into()]).is_err());
    }

    #[test]
    fn restarts_by_policy_are_a_die_and_a_start_each_recorded_once() {
        use crate::records::Status::{self, *};
        let st = |status: Status, restarts: u32| RunState {
            status,
            restarts,
            ..RunState::default()
        };
        let die = RunEvent::Die { last: true };
        let earlier = RunEvent::Die { last: false };
        let start = RunEvent::Start;
        // An end, as before.
        assert_eq!(run_events(&st(Running, 0), &st(Exited, 0)), [die]);
        // Nothing new.
        assert!(run_events(&st(Running, 2), &st(Running, 2)).is_empty());
        assert!(run_events(&st(Restarting, 2), &st(Restarting, 2)).is_empty());
        // Waiting to restart: the run died; then its restart.
        assert_eq!(run_events(&st(Running, 0), &st(Restarting, 0)), [die]);
        assert_eq!(run_events(&st(Restarting, 0), &st(Running, 1)), [start]);
        // Seen only after it: die and start; the exit code is the last's.
        assert_eq!(run_events(&st(Running, 0), &st(Running, 1)), [die, start]);
        assert_eq!(
            run_events(&st(Running, 1), &st(Running, 3)),
            [earlier, start, die, start]
        );
        assert_eq!(
            run_events(&st(Running, 0), &st(Restarting, 1)),
            [earlier, start, die]
        );
        // Restarted, then ended for good (or stopped while waiting).
        assert_eq!(
            run_events(&st(Running, 0), &st(Exited, 2)),
            [earlier, start, earlier, start, die]
        );
        assert_eq!(run_events(&st(Restarting, 1), &st(Exited, 1)), []);
        assert_eq!(run_events(&st(Restarting, 0), &st(Exited, 1)), [start, die]);
        // Not running before: another command's business.
        assert!(run_events(&st(Exited, 0), &st(Running, 1)).is_empty());
    }

    #[test]
    fn a_follower_ends_when_cancelled_while_no_event_comes() {
        let dir = tempfile::tempdir().unwrap();
        let fake: &'static crate::runtime::Fake = Box::leak(Box::new(crate::runtime::Fake::new()));
        let e = Engine::open_with(&dir.path().join("root"), &dir.path().join("run"), fake).unwrap();
        e.record_event("volume", "create", "old", BTreeMap::new());
        let t = std::time::Instant::now();
        let gone = std::sync::atomic::AtomicBool::new(false);
        let mut seen = Vec::new();
        std::thread::scope(|sc| {
            sc.spawn(|| {
                std::thread::sleep(Duration::from_millis(300));
                e.record_event("volume", "create", "new", BTreeMap::new());
                std::thread::sleep(Duration::from_millis(300));
                gone.store(true, std::sync::atomic::Ordering::SeqCst);
            });
            // Following new events only, for ever: only the cancel ends it.
            e.events_until(
                &EventsRequest::default(),
                || gone.load(std::sync::atomic::Ordering::SeqCst),
                |ev| {
                    seen.push(ev.actor.id.clone());
                    Ok(())
                },
            )
            .unwrap();
        });
        assert_eq!(seen, ["new"]);
        let took = t.elapsed();
        assert!(
            took >= Duration::from_millis(600) && took < Duration::from_secs(2),
            "{took:?}"
        );
    }

    #[test]
    fn times_are_read_in_dockers_formats() {
        let now = 1_800_000_000_000_000_000;
        let t = |s: &str| parse_time(s, now, "--since").unwrap();
        assert_eq!(t("1700000000"), 1_700_000_000_000_000_000);
        assert_eq!(t("1700000000.5"), 1_700_000_000_500_000_000);
        assert_eq!(t("10m"), now - 600_000_000_000);
        assert_eq!(t("1h30m"), now - 5_400_000_000_000);
        assert_eq!(t("250ms"), now - 250_000_000);
        assert_eq!(t("2023-11-14T22:13:20Z"), 1_700_000_000_000_000_000);
        assert_eq!(t("2023-11-14T22:13:20.25Z"), 1_700_000_000_250_000_000);
        assert_eq!(t("2023-11-14T23:13:20+01:00"), 1_700_000_000_000_000_000);
        assert_eq!(t("2023-11-14T21:13:20-01:00"), 1_700_000_000_000_000_000);
        assert_eq!(berth_sys::time::days_from_civil(1970, 1, 1), 0);
        assert_eq!(berth_sys::time::days_from_civil(2000, 3, 1), 11_017);
        // Local time: whatever the zone, within a day of UTC's reading.
        let local = t("2023-11-14T22:13:20");
        assert!((local - 1_700_000_000_000_000_000).abs() <= 86_400_000_000_000);
        assert!(t("2023-11-14") <= local);
        for bad in [
            "",
            "yesterday",
            "10x",
            "2023-13-01",
            "2023-11-14T25:00",
            "1.2.3",
        ] {
            assert!(parse_time(bad, now, "--since").is_err(), "{bad}");
        }
    }
}
