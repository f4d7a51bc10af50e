//! Listing containers as `ps` does, for the CLI and any API alike:
//! Docker's `--filter KEY=VALUE` strings parsed into a typed [`PsFilter`],
//! applied by [`Engine::list_filtered`] and [`Engine::ps`], and the rows
//! `ps` shows ([`PsEntry`] for `--format json`, [`PsRow`] for templates
//! and the table) with Docker's status text ("Up 3 seconds",
//! "Exited (0) 2 minutes ago").

use crate::containers::Engine;
use crate::error::{option, Result};
use crate::logs::{now_nanos, rfc3339_nano};
use crate::records::{Record, Status};
use crate::specgen::NamespaceMode;
use crate::template::views::{labels_text, PsRow};
use berth_network::model::{self, Network};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The filter keys `ps --filter` takes.
const KEYS: &str =
    "status, name, id, label, ancestor, exited, restart-policy, before, since, volume, network, pod, health";

/// Docker's container states, as `status=` takes them.
const STATES: [&str; 7] = [
    "created",
    "restarting",
    "running",
    "removing",
    "paused",
    "exited",
    "dead",
];

/// `ps --filter`: the values of one key are alternatives (any may match);
/// every key given must match. Empty: no condition.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct PsFilter {
    /// Id prefixes.
    pub id: Vec<String>,
    /// Parts of the name.
    pub name: Vec<String>,
    /// `KEY` or `KEY=VALUE`.
    pub label: Vec<String>,
    /// Docker's state names (`paused` for a paused running container).
    pub status: Vec<String>,
    /// The image: as named at create, an id (prefix), or a name that
    /// resolves to the container's image.
    pub ancestor: Vec<String>,
    /// Exit codes of exited containers.
    pub exited: Vec<i32>,
    /// `no`, `always`, `unless-stopped` or `on-failure`.
    #[serde(rename = "restart-policy")]
    pub restart_policy: Vec<String>,
    /// Containers created before this one (name or id).
    pub before: Vec<String>,
    /// Containers created after this one (name or id).
    pub since: Vec<String>,
    /// A volume's name or a mount's destination.
    pub volume: Vec<String>,
    /// A network's name or id (prefix) the container is on (`host` and
    /// `none` too).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub network: Vec<String>,
    /// The pod (name or id) the container is in.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub pod: Vec<String>,
    /// Health statuses: starting, healthy, unhealthy, none.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub health: Vec<String>,
}

impl PsFilter {
    /// From `KEY=VALUE` strings as `--filter` takes them; a wrong key or
    /// value is an error naming it.
    pub fn parse(filters: &[String]) -> Result<PsFilter> {
        let mut f = PsFilter::default();
        for s in filters {
            let Some((k, v)) = s.split_once('=') else {
                return Err(option(
                    "--filter",
                    format!("{s:?} is not KEY=VALUE ({KEYS})"),
                ));
            };
            let bad = |what: &str| option("--filter", format!("{k}={v}: {what}"));
            let v = v.to_string();
            match k {
                "id" => f.id.push(v),
                "name" => f.name.push(v),
                "label" => f.label.push(v),
                "status" if STATES.contains(&v.as_str()) => f.status.push(v),
                "status" => return Err(bad(&format!("expected one of {}", STATES.join(", ")))),
                "ancestor" => f.ancestor.push(v),
                "exited" => f.exited.push(
                    v.parse()
                        .map_err(|_| bad("expected an exit code (a number)"))?,
                ),
                "restart-policy" => match v.as_str() {
                    "no" | "always" | "unless-stopped" | "on-failure" => f.restart_policy.push(v),
                    _ => return Err(bad("expected no, always, unless-stopped or on-failure")),
                },
                "before" => f.before.push(v),
                "since" => f.since.push(v),
                "volume" => f.volume.push(v),
                "network" => f.network.push(v),
                "pod" => f.pod.push(v),
                "health" => match v.as_str() {
                    "starting" | "healthy" | "unhealthy" | "none" => f.health.push(v),
                    _ => return Err(bad("expected starting, healthy, unhealthy or none")),
                },
                _ => {
                    return Err(option(
                        "--filter",
                        format!("{k:?} is not a filter of containers ({KEYS})"),
                    ))
                }
            }
        }
        Ok(f)
    }

    pub fn is_empty(&self) -> bool {
        *self == PsFilter::default()
    }

    /// Whether `r` passes the conditions that need nothing but the record
    /// (all but ancestor-by-name, before, since and volume).
    fn matches_record(&self, r: &Record) -> bool {
        let any = |list: &[String], f: &dyn Fn(&str) -> bool| {
            list.is_empty() || list.iter().any(|v| f(v))
        };
        let labels = &r.spec.metadata.labels;
        any(&self.id, &|v| r.id.starts_with(v))
            && any(&self.name, &|v| r.name.contains(v))
            // Every label asked for (Docker's; docker-compose finds a
            // service's containers by project and service labels).
            && self.label.iter().all(|v| match v.split_once('=') {
                Some((k, val)) => labels.get(k).is_some_and(|x| x == val),
                None => labels.contains_key(v.as_str()),
            })
            && any(&self.status, &|v| state_name(r) == v)
            && (self.exited.is_empty()
                || (r.state.status == Status::Exited && self.exited.contains(&r.state.exit_code)))
            && any(&self.restart_policy, &|v| {
                r.spec.lifecycle.restart.name() == v
            })
    }
}

/// What `ps` lists: running containers unless `all` (or `last`,
/// `latest`, a filter), newest first.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct PsQuery {
    pub all: bool,
    /// Only the N newest (all states).
    pub last: Option<usize>,
    /// Only the newest (all states).
    pub latest: bool,
    pub filter: PsFilter,
}

/// The networks `r` is on as `(name, id)`, the keys of Docker's
/// `.NetworkSettings.Networks` that `ps` shows and filters by: each bridge
/// network the spec names (one given by id at create is named from `known`,
/// the store's networks; id empty when `known` does not have it), `host`,
/// or `none`; nothing for another container's, a pod's or a path's
/// namespace, nor after `network disconnect` took the last one. From the
/// record alone: no netlink, no per-container file.
pub fn networks_of(r: &Record, known: &[Network]) -> Vec<(String, String)> {
    let n = &r.spec.network;
    match &r.spec.namespaces.net {
        NamespaceMode::Host => return vec![("host".into(), model::HOST_NETWORK_ID.into())],
        NamespaceMode::Private if n.networks.is_empty() && !n.disconnected => {
            return vec![("none".into(), model::NONE_NETWORK_ID.into())]
        }
        NamespaceMode::Private => {}
        _ => return Vec::new(),
    }
    n.networks
        .iter()
        .map(|a| {
            let given = a.network.as_str();
            let by_prefix = || {
                let mut m = known.iter().filter(|k| k.id.starts_with(given));
                match (m.next(), m.next()) {
                    (Some(k), None) if !given.is_empty() => Some(k),
                    _ => None,
                }
            };
            known
                .iter()
                .find(|k| k.id == given)
                .or_else(|| known.iter().find(|k| k.name == given))
                .or_else(by_prefix)
                .map_or_else(
                    || (given.to_string(), String::new()),
                    |k| (k.name.clone(), k.id.clone()),
                )
        })
        .collect()
}

/// `.Networks` of `ps`: the names of [`networks_of`], sorted, joined by
/// commas.
pub fn networks_text(networks: &[(String, String)]) -> String {
    let mut names: Vec<&str> = networks.iter().map(|(n, _)| n.as_str()).collect();
    names.sort_unstable();
    names.dedup();
    names.join(",")
}

/// Whether a `network=` filter value `v` names one of `networks`: a name,
/// or a prefix of an id (Docker's daemon/list.go).
fn on_network(networks: &[(String, String)], v: &str) -> bool {
    networks
        .iter()
        .any(|(name, id)| name == v || (!id.is_empty() && id.starts_with(v)))
}

/// Docker's state name: "paused" for a paused running container.
pub fn state_name(r: &Record) -> &'static str {
    if r.state.status == Status::Running && r.state.paused {
        "paused"
    } else {
        r.state.status.name()
    }
}

/// How long ago `nanos` was at `now`, as Docker says it ("2 minutes").
pub fn ago_at(nanos: i64, now: i64) -> String {
    let s = (now.saturating_sub(nanos) / 1_000_000_000).max(0);
    match s {
        0 => "Less than a second".into(),
        1 => "1 second".into(),
        2..=59 => format!("{s} seconds"),
        60..=119 => "About a minute".into(),
        120..=3599 => format!("{} minutes", s / 60),
        3600..=7199 => "About an hour".into(),
        7200..=172_799 => format!("{} hours", s / 3600),
        _ => format!("{} days", s / 86400),
    }
}

/// [`ago_at`] now.
pub fn ago(nanos: i64) -> String {
    ago_at(nanos, now_nanos())
}

/// A time as Go prints one: `2024-01-02 15:04:05 +0000 UTC`.
pub fn go_time(nanos: i64) -> String {
    let t = rfc3339_nano(nanos);
    let date = t.get(..10).unwrap_or("");
    let clock = t.get(11..19).unwrap_or("");
    format!("{date} {clock} +0000 UTC")
}

/// `ps`'s STATUS at `now`: "Up 3 seconds", "Exited (0) 2 minutes ago".
pub fn status_text_at(r: &Record, now: i64) -> String {
    let st = &r.state;
    match st.status {
        Status::Created => "Created".into(),
        Status::Running if st.paused => format!("Up {} (Paused)", ago_at(st.started, now)),
        Status::Running => format!("Up {}", ago_at(st.started, now)),
        Status::Restarting => format!(
            "Restarting ({}) {} ago",
            st.exit_code,
            ago_at(st.finished, now)
        ),
        Status::Exited => format!("Exited ({}) {} ago", st.exit_code, ago_at(st.finished, now)),
        Status::Removing => "Removal In Progress".into(),
    }
}

/// [`status_text_at`] now.
pub fn status_text(r: &Record) -> String {
    status_text_at(r, now_nanos())
}

/// A container as `ps --format json` shows it (Docker's field names).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct PsEntry {
    pub id: String,
    pub names: Vec<String>,
    pub image: String,
    #[serde(rename = "ImageID")]
    pub image_id: String,
    pub command: Vec<String>,
    /// Seconds since the epoch.
    pub created: i64,
    pub created_at: String,
    pub state: String,
    pub status: String,
    pub exit_code: i32,
    pub pid: i32,
    /// Seconds since the epoch.
    pub started_at: i64,
    pub restarts: u32,
    pub labels: BTreeMap<String, String>,
    /// Published ports, podman's shape.
    pub ports: Vec<PsPort>,
    /// The networks' names.
    pub networks: Vec<String>,
    /// With `ps -s`: what it wrote, and that with its image's layers.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub size_rw: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub size_root_fs: Option<u64>,
}

/// A published port in `ps --format json`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PsPort {
    pub host_ip: String,
    pub container_port: u16,
    pub host_port: u16,
    pub range: u16,
    pub protocol: String,
}

impl Engine {
    /// Every container that `filter` keeps, newest first.
    pub fn list_filtered(&self, filter: &PsFilter) -> Result<Vec<Record>> {
        let list = self.list()?;
        if filter.is_empty() {
            return Ok(list);
        }
        // before/since: by creation time of the containers they name.
        let created = |what: &String| -> Result<i64> {
            list.iter()
                .find(|r| r.name == *what || r.id == *what)
                .map(|r| r.created)
                .map_or_else(|| self.get(what).map(|r| r.created), Ok)
        };
        let before = filter
            .before
            .iter()
            .map(created)
            .collect::<Result<Vec<_>>>()?;
        let since = filter
            .since
            .iter()
            .map(created)
            .collect::<Result<Vec<_>>>()?;
        let pods = filter
            .pod
            .iter()
            .map(|p| self.pod(p).map(|p| p.id))
            .collect::<Result<Vec<_>>>()?;
        // network=: the store's networks read once, for their ids.
        let known = if filter.network.is_empty() {
            Vec::new()
        } else {
            self.network_store().list()?
        };
        let mut keep = Vec::new();
        for r in list {
            let ok = filter.matches_record(&r)
                && (pods.is_empty() || r.spec.pod.as_ref().is_some_and(|p| pods.contains(p)))
                && (filter.network.is_empty() || {
                    let on = networks_of(&r, &known);
                    filter.network.iter().any(|v| on_network(&on, v))
                })
                && (before.is_empty() || before.iter().any(|&t| r.created < t))
                && (since.is_empty() || since.iter().any(|&t| r.created > t))
                && (filter.health.is_empty()
                    || filter
                        .health
                        .contains(&self.health_status_name(&r).to_string()))
                && (filter.ancestor.is_empty()
                    || filter.ancestor.iter().any(|v| self.has_ancestor(&r, v)))
                && (filter.volume.is_empty() || {
                    let mounts = self.mounts(&r);
                    filter
                        .volume
                        .iter()
                        .any(|v| mounts.iter().any(|m| m.name == *v || m.destination == *v))
                });
            if ok {
                keep.push(r);
            }
        }
        Ok(keep)
    }

    /// The containers `ps` lists for `q`.
    pub fn ps(&self, q: &PsQuery) -> Result<Vec<Record>> {
        let mut list = self.list_filtered(&q.filter)?;
        // Docker's rule: only a status filter lists stopped containers
        // without -a (`ps -q --filter name=web` is the common "does web
        // run" test); -n and -l list them too.
        let all = q.all || q.last.is_some() || q.latest || !q.filter.status.is_empty();
        if !all {
            list.retain(|r| matches!(r.state.status, Status::Running | Status::Restarting));
        }
        if q.latest {
            list.truncate(1);
        }
        if let Some(n) = q.last {
            list.truncate(n);
        }
        Ok(list)
    }

    fn has_ancestor(&self, r: &Record, v: &str) -> bool {
        let bare = |s: &str| s.strip_prefix("sha256:").unwrap_or(s).to_string();
        r.image == v
            || bare(&r.image_id).starts_with(&bare(v))
            || self
                .images
                .resolve(v)
                .is_ok_and(|i| i.id.to_string() == r.image_id)
    }

    /// The command `r` runs (its spec's when the image is gone).
    pub fn command_or_spec(&self, r: &Record) -> Vec<String> {
        self.command(r)
            .unwrap_or_else(|_| r.spec.process.args.clone())
    }

    /// `r` as `ps --format json` shows it; with `size`, its sizes.
    pub fn ps_entry(&self, r: &Record, size: bool) -> PsEntry {
        let size = size.then(|| self.container_size(r));
        PsEntry {
            id: r.id.clone(),
            names: vec![r.name.clone()],
            image: r.image.clone(),
            image_id: r.image_id.clone(),
            command: self.command_or_spec(r),
            created: r.created / 1_000_000_000,
            created_at: rfc3339_nano(r.created),
            state: state_name(r).into(),
            status: self.status_with_health(r),
            exit_code: r.state.exit_code,
            pid: r.state.pid,
            started_at: r.state.started / 1_000_000_000,
            restarts: r.state.restarts,
            labels: r.spec.metadata.labels.clone(),
            ports: self
                .published(&r.id)
                .iter()
                .map(|p| PsPort {
                    host_ip: p.host_ip.map(|a| a.to_string()).unwrap_or_default(),
                    container_port: p.container_port,
                    host_port: p.host_port,
                    range: 1,
                    protocol: p.proto.to_string(),
                })
                .collect(),
            networks: self.ps_networks(r).into_iter().map(|(n, _)| n).collect(),
            size_rw: size.as_ref().map(|s| s.rw),
            size_root_fs: size.as_ref().map(|s| s.root_fs),
        }
    }

    /// [`networks_of`] `r` for display, with the store read (one query)
    /// only when the spec names a network by what may be an id (hex: a
    /// name that is not is the network's name as it stands).
    fn ps_networks(&self, r: &Record) -> Vec<(String, String)> {
        let plain = r.spec.network.networks.iter().all(|a| {
            a.network == model::DEFAULT_NETWORK || !a.network.bytes().all(|b| b.is_ascii_hexdigit())
        });
        let known = if plain {
            Vec::new()
        } else {
            self.network_store().list().unwrap_or_default()
        };
        networks_of(r, &known)
    }

    /// `r` as `ps --format` templates and the table see it: ids cut to 12
    /// characters and the command to 20 unless `no_trunc`.
    pub fn ps_row(&self, r: &Record, no_trunc: bool) -> PsRow {
        let mounts: Vec<String> = self
            .mounts(r)
            .into_iter()
            .map(|m| if m.name.is_empty() { m.source } else { m.name })
            .collect();
        PsRow {
            id: short_id(r, no_trunc),
            image: r.image.clone(),
            command: quoted_command(&self.command_or_spec(r), no_trunc),
            created_at: go_time(r.created),
            running_for: format!("{} ago", ago(r.created)),
            state: r.state.status.name().to_string(),
            status: self.status_with_health(r),
            names: r.name.clone(),
            labels: labels_text(&r.spec.metadata.labels),
            mounts: mounts.join(","),
            networks: networks_text(&self.ps_networks(r)),
            ports: self
                .published(&r.id)
                .iter()
                .map(|p| p.display())
                .collect::<Vec<_>>()
                .join(", "),
            ..PsRow::default()
        }
    }
}

/// The id as `ps` shows it: 12 characters unless `no_trunc`.
pub fn short_id(r: &Record, no_trunc: bool) -> String {
    if no_trunc {
        r.id.clone()
    } else {
        r.id.chars().take(12).collect()
    }
}

/// The command as `ps` shows it: quoted, cut to 20 characters unless
/// `no_trunc`.
pub fn quoted_command(args: &[String], no_trunc: bool) -> String {
    let mut cmd = args.join(" ");
    if !no_trunc && cmd.chars().count() > 20 {
        cmd = cmd.chars().take(19).collect::<String>() + "…";
    }
    format!("\"{cmd}\"")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::records::RunState;
    use crate::specgen::RestartPolicy;

    const S: i64 = 1_000_000_000;

    fn rec(name: &str, status: Status) -> Record {
        let mut r = Record {
            id: format!("{name}0123456789abcdef"),
            name: name.into(),
            image: "busybox".into(),
            image_id: "sha256:abcdef".into(),
            created: 1,
            spec: Default::default(),
            state: RunState {
                status,
                ..RunState::default()
            },
        };
        r.spec
            .metadata
            .labels
            .insert("tier".into(), format!("{name}-tier"));
        r
    }

    fn parse(s: &[&str]) -> Result<PsFilter> {
        PsFilter::parse(&s.iter().map(|s| s.to_string()).collect::<Vec<_>>())
    }

    #[test]
    fn filters_are_typed_from_dockers_strings() {
        let f = parse(&[
            "status=exited",
            "exited=3",
            "label=a=b",
            "restart-policy=no",
        ])
        .unwrap();
        assert_eq!(f.status, ["exited"]);
        assert_eq!(f.exited, [3]);
        assert_eq!(f.label, ["a=b"]);
        assert_eq!(f.restart_policy, ["no"]);
        assert!(parse(&[]).unwrap().is_empty());
        for bad in [
            "colour=red",
            "status",
            "status=sleeping",
            "exited=x",
            "restart-policy=sometimes",
        ] {
            let e = parse(&[bad]).unwrap_err().to_string();
            assert!(e.contains("--filter"), "{bad}: {e}");
        }
        assert!(parse(&["colour=red"])
            .unwrap_err()
            .to_string()
            .contains("ancestor"));
    }

    #[test]
    fn a_record_matches_any_value_of_a_key_and_every_key() {
        let mut web = rec("web", Status::Running);
        web.spec.lifecycle.restart = RestartPolicy::OnFailure(3);
        let mut db = rec("db", Status::Exited);
        db.state.exit_code = 3;
        let m = |s: &[&str], r: &Record| parse(s).unwrap().matches_record(r);
        assert!(m(&[], &web));
        assert!(m(&["name=we"], &web) && !m(&["name=we"], &db));
        assert!(m(&["name=db", "name=web"], &web));
        assert!(!m(&["name=web", "status=exited"], &web));
        assert!(m(&["id=web0123"], &web) && !m(&["id=0123"], &web));
        assert!(m(&["label=tier"], &db) && m(&["label=tier=db-tier"], &db));
        assert!(!m(&["label=tier=web-tier"], &db) && !m(&["label=other"], &db));
        assert!(
            !m(&["label=tier", "label=other"], &db),
            "labels: all of them"
        );
        assert!(m(&["label=tier", "label=tier=db-tier"], &db));
        assert!(m(&["exited=3"], &db) && !m(&["exited=0"], &db));
        assert!(!m(&["exited=0"], &rec("new", Status::Created)));
        assert!(m(&["status=running"], &web) && !m(&["status=paused"], &web));
        web.state.paused = true;
        assert!(m(&["status=paused"], &web) && !m(&["status=running"], &web));
        assert!(m(&["restart-policy=on-failure"], &web));
        assert!(m(&["restart-policy=no"], &db) && !m(&["restart-policy=no"], &web));
        assert!(m(
            &["restart-policy=always", "restart-policy=on-failure"],
            &web
        ));
    }

    #[test]
    fn status_text_is_dockers() {
        let now = 1_000_000 * S;
        let mut r = rec("web", Status::Running);
        r.state.started = now - 3 * S;
        assert_eq!(status_text_at(&r, now), "Up 3 seconds");
        r.state.paused = true;
        assert_eq!(status_text_at(&r, now), "Up 3 seconds (Paused)");
        r.state.status = Status::Exited;
        r.state.finished = now - 150 * S;
        assert_eq!(status_text_at(&r, now), "Exited (0) 2 minutes ago");
        r.state.status = Status::Restarting;
        r.state.exit_code = 1;
        r.state.finished = now;
        assert_eq!(
            status_text_at(&r, now),
            "Restarting (1) Less than a second ago"
        );
        r.state.status = Status::Created;
        assert_eq!(status_text_at(&r, now), "Created");
        assert_eq!(ago_at(now - S, now), "1 second");
        assert_eq!(ago_at(now - 90 * S, now), "About a minute");
        assert_eq!(ago_at(now - 3600 * S, now), "About an hour");
        assert_eq!(ago_at(now - 5 * 3600 * S, now), "5 hours");
        assert_eq!(ago_at(now - 3 * 86400 * S, now), "3 days");
        // A clock that went back: not negative.
        assert_eq!(ago_at(now + 5 * S, now), "Less than a second");
        assert_eq!(
            go_time(1_700_000_000_123_456_789),
            "2023-11-14 22:13:20 +0000 UTC"
        );
        assert_eq!(
            quoted_command(&["sh".into(), "-c".into()], false),
            "\"sh -c\""
        );
        let long = vec!["x".repeat(30)];
        assert_eq!(
            quoted_command(&long, false),
            format!("\"{}…\"", "x".repeat(19))
        );
        assert_eq!(quoted_command(&long, true), format!("\"{}\"", long[0]));
    }

    fn net(name: &str, id: &str) -> Network {
        let mut n = model::predefined("host", 0).unwrap();
        n.name = name.into();
        n.id = id.into();
        n.driver = "bridge".into();
        n
    }

    fn on(names: &[&str]) -> Vec<crate::specgen::NetworkAttachment> {
        names
            .iter()
            .map(|n| crate::specgen::NetworkAttachment {
                network: n.to_string(),
                ..Default::default()
            })
            .collect()
    }

    #[test]
    fn networks_are_dockers_keys_of_network_settings() {
        let known = [
            net("bridge", "b1b1"),
            net("app", "a1a1"),
            net("apq", "a1b2"),
        ];
        let mut r = rec("web", Status::Running);
        // --network none (the spec's default: private, no network).
        assert_eq!(networks_text(&networks_of(&r, &known)), "none");
        assert!(on_network(&networks_of(&r, &known), "none"));
        r.spec.network.networks = on(&["bridge"]);
        assert_eq!(networks_of(&r, &known), [("bridge".into(), "b1b1".into())]);
        // Given by id or unique id prefix at create: shown by name.
        r.spec.network.networks = on(&["app", "a1b2", "bridge"]);
        assert_eq!(networks_text(&networks_of(&r, &known)), "app,apq,bridge");
        r.spec.network.networks = on(&["a1"]);
        assert_eq!(networks_text(&networks_of(&r, &known)), "a1");
        r.spec.network.networks = on(&["gone"]);
        assert_eq!(networks_of(&r, &[]), [("gone".into(), String::new())]);
        // network= takes a name or an id prefix, not a part of a name.
        r.spec.network.networks = on(&["app"]);
        let nets = networks_of(&r, &known);
        assert!(on_network(&nets, "app") && on_network(&nets, "a1a"));
        assert!(!on_network(&nets, "ap") && !on_network(&nets, "bridge"));
        assert!(!on_network(&networks_of(&r, &[]), ""));
        r.spec.namespaces.net = NamespaceMode::Host;
        r.spec.network.networks.clear();
        assert_eq!(networks_text(&networks_of(&r, &known)), "host");
        assert!(on_network(
            &networks_of(&r, &known),
            &model::HOST_NETWORK_ID[..12]
        ));
        r.spec.namespaces.net = NamespaceMode::Container("db".into());
        assert!(networks_of(&r, &known).is_empty());
        // Disconnected from its last network: none, not `none`.
        r.spec.namespaces.net = NamespaceMode::Private;
        r.spec.network.disconnected = true;
        assert_eq!(networks_text(&networks_of(&r, &known)), "");
        assert_eq!(parse(&["network=app"]).unwrap().network, ["app"]);
    }

    #[test]
    fn the_engine_lists_what_the_filters_keep() {
        let dir = tempfile::tempdir().unwrap();
        let fake: &'static crate::runtime::Fake = Box::leak(Box::new(crate::runtime::Fake::new()));
        let engine =
            Engine::open_with(&dir.path().join("root"), &dir.path().join("run"), fake).unwrap();
        let mut names = Vec::new();
        for (i, n) in ["old", "mid", "new"].iter().enumerate() {
            let mut r = rec(n, Status::Exited);
            r.id = format!("{i}{}", "0".repeat(63));
            r.created = (i as i64 + 1) * S;
            if *n == "mid" {
                r.spec.storage.mounts.push(crate::specgen::Mount {
                    kind: crate::specgen::MountType::Bind,
                    source: "/srv".into(),
                    destination: "/data".into(),
                    ..Default::default()
                });
            }
            engine.records.insert(&r).unwrap();
            names.push(r.name);
        }
        let list = |f: &[&str]| -> Vec<String> {
            let mut v: Vec<String> = engine
                .list_filtered(&parse(f).unwrap())
                .unwrap()
                .into_iter()
                .map(|r| r.name)
                .collect();
            v.sort();
            v
        };
        assert_eq!(list(&[]), ["mid", "new", "old"]);
        assert_eq!(list(&["before=new"]), ["mid", "old"]);
        assert_eq!(list(&["since=old", "before=new"]), ["mid"]);
        assert_eq!(list(&["since=mid"]), ["new"]);
        assert_eq!(list(&["volume=/data"]), ["mid"]);
        assert!(list(&["volume=/nope"]).is_empty());
        assert_eq!(list(&["ancestor=busybox", "name=o"]), ["old"]);
        assert!(list(&["ancestor=alpine"]).is_empty());
        // network=: old is on the default bridge, mid on the host's, new
        // on none; ps rows and entries name them.
        let mut old = engine.get("old").unwrap();
        old.spec.network.networks = on(&["bridge"]);
        engine.records.set_spec(&old.id, &old.spec).unwrap();
        let mut mid = engine.get("mid").unwrap();
        mid.spec.namespaces.net = NamespaceMode::Host;
        engine.records.set_spec(&mid.id, &mid.spec).unwrap();
        assert_eq!(list(&["network=bridge"]), ["old"]);
        assert_eq!(list(&["network=host", "network=none"]), ["mid", "new"]);
        assert!(list(&["network=app"]).is_empty());
        let row = |n: &str| engine.ps_row(&engine.get(n).unwrap(), false).networks;
        assert_eq!(
            [row("old"), row("mid"), row("new")],
            ["bridge", "host", "none"]
        );
        assert_eq!(
            engine.ps_entry(&engine.get("mid").unwrap(), false).networks,
            ["host"]
        );
        assert!(matches!(
            engine.list_filtered(&parse(&["before=nosuch"]).unwrap()),
            Err(crate::Error::NoSuchContainer(_))
        ));
        // ps: running ones unless asked; a status filter or --last lists
        // stopped ones too, other filters do not (Docker's rule).
        assert!(engine.ps(&PsQuery::default()).unwrap().is_empty());
        let q = PsQuery {
            last: Some(2),
            ..PsQuery::default()
        };
        assert_eq!(engine.ps(&q).unwrap().len(), 2);
        let q = |f: &[&str]| PsQuery {
            filter: parse(f).unwrap(),
            ..PsQuery::default()
        };
        assert!(engine.ps(&q(&["name=old"])).unwrap().is_empty());
        assert_eq!(
            engine.ps(&q(&["status=exited", "name=old"])).unwrap().len(),
            1
        );
    }
}
