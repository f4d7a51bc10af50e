//! Changing a running container: `pause`/`unpause` (the runtime's
//! pause/resume, the cgroup freezer), `update` of its resources (the
//! runtime's `update`, and its record so that `inspect` and the next
//! start have them), and `port`.

use crate::containers::Engine;
use crate::error::{io, option, Error, Result};
use crate::records::{Record, Status};
use crate::specgen::{ContainerSpec, RestartPolicy};
use serde::{Deserialize, Serialize};

/// `update`: the values to change (None: keep).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct UpdateRequest {
    /// Bytes.
    pub memory: Option<i64>,
    /// Bytes of memory plus swap; -1 for unlimited swap.
    pub memory_swap: Option<i64>,
    pub memory_reservation: Option<i64>,
    /// Replaces --cpu-period/--cpu-quota.
    pub cpus: Option<f64>,
    pub cpu_shares: Option<u64>,
    /// Microseconds; replace --cpus.
    pub cpu_period: Option<u64>,
    pub cpu_quota: Option<i64>,
    pub cpuset_cpus: Option<String>,
    pub cpuset_mems: Option<String>,
    /// -1 (or 0, as Docker's) for no limit.
    pub pids_limit: Option<i64>,
    pub blkio_weight: Option<u16>,
    /// no, on-failure[:N], always, unless-stopped.
    pub restart: Option<String>,
}

impl UpdateRequest {
    pub fn is_empty(&self) -> bool {
        *self == UpdateRequest::default()
    }

    /// The container's spec with this request applied (and checked as
    /// create checks it, worded with `update`'s flags).
    pub fn apply(&self, spec: &ContainerSpec) -> Result<ContainerSpec> {
        let mut spec = spec.clone();
        let c = &mut spec.resources;
        macro_rules! set {
            ($($f:ident),*) => {$(
                if let Some(v) = &self.$f {
                    c.$f = Some(v.clone());
                }
            )*};
        }
        set!(
            memory,
            memory_swap,
            memory_reservation,
            cpu_shares,
            cpuset_cpus,
            cpuset_mems,
            blkio_weight
        );
        if let Some(v) = self.cpus {
            c.cpus = Some(v);
            c.cpu_period = None;
            c.cpu_quota = None;
        }
        if self.cpu_period.is_some() || self.cpu_quota.is_some() {
            if self.cpus.is_some() {
                return Err(option(
                    "--cpus",
                    "give either --cpus or --cpu-period/--cpu-quota, not both",
                ));
            }
            c.cpus = None;
            c.cpu_period = self.cpu_period.or(c.cpu_period);
            c.cpu_quota = self.cpu_quota.or(c.cpu_quota);
        }
        if let Some(p) = self.pids_limit {
            c.pids_limit = Some(if p == 0 { -1 } else { p });
        }
        if let Some(r) = &self.restart {
            let policy = RestartPolicy::parse(r).ok_or_else(|| {
                option(
                    "--restart",
                    format!("{r:?} is not no, on-failure[:N], always or unless-stopped"),
                )
            })?;
            if policy != RestartPolicy::No && spec.lifecycle.auto_remove {
                return Err(option(
                    "--restart",
                    "a restart policy cannot be used with a container made with --rm",
                ));
            }
            spec.lifecycle.restart = policy;
        }
        spec.validate().map_err(crate::specgen::docker::reword)?;
        Ok(spec)
    }
}

/// The OCI `linux.resources` that `update` gives the runtime for `spec`:
/// memory, CPU, pids and the block I/O weight.
pub fn resources(spec: &ContainerSpec) -> serde_json::Value {
    crate::spec::resources(spec, &crate::spec::Resolved::default())
}

/// What `update` did.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct UpdateResponse {
    /// The container's full id.
    pub id: String,
    /// Whether the running container's cgroup was changed (false: it was
    /// not running; the record alone was).
    pub applied: bool,
}

/// A container's size (`ps -s`), bytes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContainerSize {
    /// What it wrote (its upper layer).
    pub rw: u64,
    /// That plus its image's layers.
    pub root_fs: u64,
}

/// A published port.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortMapping {
    /// "80/tcp".
    pub container_port: String,
    pub host_ip: String,
    pub host_port: u16,
}

impl Engine {
    /// The running container `what` under its lock (refreshed).
    fn running_locked(&self, what: &str) -> Result<(crate::containers::Lock, Record)> {
        let rec = self.refresh(self.records.find(what)?)?;
        let lock = self.lock(&rec.id)?;
        let rec = self
            .records
            .get(&rec.id)?
            .ok_or_else(|| Error::NoSuchContainer(what.to_string()))?;
        if rec.state.status != Status::Running {
            return Err(Error::Conflict(format!(
                "container {} is not running",
                rec.name
            )));
        }
        Ok((lock, rec))
    }

    /// Runs the runtime's `pause` or `resume` on the container; `what`
    /// names the operation in the error.
    fn runtime_op(&self, rec: &Record, pause: bool, what: &str) -> Result<()> {
        let t = self.target(rec);
        let done = if pause {
            self.oci.pause(t)
        } else {
            self.oci.resume(t)
        };
        done.map_err(|e| e.into_error(&format!("{what} container {}", rec.name)))
    }

    /// `pause`: freezes every process of the running container.
    pub fn pause(&self, what: &str) -> Result<Record> {
        let (_lock, mut rec) = self.running_locked(what)?;
        if rec.state.paused {
            return Err(Error::Conflict(format!(
                "container {} is already paused",
                rec.name
            )));
        }
        self.runtime_op(&rec, true, "pause")?;
        self.records.set_paused(&rec.id, true)?;
        rec.state.paused = true;
        self.container_event(&rec, "pause", &[]);
        Ok(rec)
    }

    /// `unpause`: thaws a paused container.
    pub fn unpause(&self, what: &str) -> Result<Record> {
        let (_lock, mut rec) = self.running_locked(what)?;
        if !rec.state.paused {
            return Err(Error::Conflict(format!(
                "container {} is not paused",
                rec.name
            )));
        }
        self.runtime_op(&rec, false, "unpause")?;
        self.records.set_paused(&rec.id, false)?;
        rec.state.paused = false;
        self.container_event(&rec, "unpause", &[]);
        Ok(rec)
    }

    /// After a signal was sent to a paused container: thaws it so that the
    /// signal is taken (a kill, stop or rm -f of a paused container works
    /// as in Docker). Best effort: a container that ended meanwhile has
    /// nothing to thaw.
    pub(crate) fn thaw_after_kill(&self, rec: &Record) {
        if self.runtime_op(rec, false, "unpause").is_ok() {
            let _ = self.records.set_paused(&rec.id, false);
            self.container_event(rec, "unpause", &[]);
        }
    }

    /// `update`: new resource limits (and restart policy) for the
    /// container; applied at once to a running one (through the runtime's
    /// `update`) and recorded for its next starts. A running container's
    /// monitor keeps the restart policy it was started with until the
    /// container is started again.
    pub fn update(&self, what: &str, req: &UpdateRequest) -> Result<UpdateResponse> {
        if req.is_empty() {
            return Err(option(
                "update",
                "nothing to change: give at least one option (see `berth update --help`)",
            ));
        }
        let rec = self.refresh(self.records.find(what)?)?;
        let _lock = self.lock(&rec.id)?;
        let rec = self
            .records
            .get(&rec.id)?
            .ok_or_else(|| Error::NoSuchContainer(what.to_string()))?;
        if rec.state.status == Status::Removing {
            return Err(Error::Conflict(format!(
                "container {} is being removed",
                rec.name
            )));
        }
        let spec = req.apply(&rec.spec)?;
        let running = rec.state.status == Status::Running;
        if running {
            let res = resources(&spec);
            self.oci
                .update(self.target(&rec), &res)
                .map_err(|e| e.into_error(&format!("update container {}", rec.name)))?;
        }
        self.records.set_spec(&rec.id, &spec)?;
        self.container_event(&rec, "update", &[]);
        Ok(UpdateResponse {
            id: rec.id,
            applied: running,
        })
    }

    /// `container prune`: removes every stopped (exited or created)
    /// container; their ids, each with the bytes its writable layer held
    /// (its `SizeRw`, measured before the removal: what Docker sums as
    /// the prune's `SpaceReclaimed`).
    pub fn prune_containers(&self) -> Result<Vec<(String, u64)>> {
        let mut out = Vec::new();
        for c in self.list()? {
            if matches!(c.state.status, Status::Exited | Status::Created) {
                let size = crate::system::disk_usage(&self.paths.container(&c.id).join("upper"));
                match self.remove(&c.id, false, false) {
                    Ok(_) => out.push((c.id, size)),
                    // Started or removed meanwhile by another command.
                    Err(Error::Conflict(_) | Error::NoSuchContainer(_)) => {}
                    Err(e) => return Err(e),
                }
            }
        }
        Ok(out)
    }

    /// `top CONTAINER PS_OPTIONS`: the host's `ps` with those options,
    /// kept to the container's processes (Docker's model: the titles and
    /// the rows, split on whitespace, the last column keeping its spaces).
    pub fn top_ps(&self, what: &str, ps_args: &[String]) -> Result<TopResponse> {
        let (rec, pids) = self.pids(what)?;
        let out = std::process::Command::new("ps")
            .args(ps_args)
            .stdin(std::process::Stdio::null())
            .output()
            .map_err(io("run ps (is procps installed?)"))?;
        if !out.status.success() {
            return Err(option(
                "top",
                format!(
                    "ps {}: {}",
                    ps_args.join(" "),
                    String::from_utf8_lossy(&out.stderr).trim()
                ),
            ));
        }
        parse_ps(&String::from_utf8_lossy(&out.stdout), &pids).ok_or_else(|| {
            option(
                "top",
                format!(
                    "ps {} printed no PID column to find container {}'s processes by",
                    ps_args.join(" "),
                    rec.name
                ),
            )
        })
    }

    /// `ps -s`: what the container wrote, and that with its image.
    pub fn container_size(&self, rec: &Record) -> ContainerSize {
        let rw = crate::system::disk_usage(&self.paths.container(&rec.id).join("upper"));
        let image = berth_image::Digest::parse(&rec.image_id)
            .ok()
            .and_then(|d| self.images.images().ok()?.into_iter().find(|i| i.id == d))
            .map_or(0, |i| i.size);
        ContainerSize {
            rw,
            root_fs: rw + image,
        }
    }

    /// `port`: the running container's published ports.
    pub fn ports(&self, what: &str) -> Result<Vec<PortMapping>> {
        let r = self.records.find(what)?;
        Ok(self
            .published(&r.id)
            .into_iter()
            .map(|p| PortMapping {
                container_port: format!("{}/{}", p.container_port, p.proto),
                host_ip: p.host_ip.map_or_else(
                    || {
                        if p.container_ip.is_ipv6() {
                            "::".into()
                        } else {
                            "0.0.0.0".into()
                        }
                    },
                    |a| a.to_string(),
                ),
                host_port: p.host_port,
            })
            .collect())
    }
}

/// `top`: ps's column titles and the container's rows.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TopResponse {
    #[serde(rename = "Titles")]
    pub titles: Vec<String>,
    #[serde(rename = "Processes")]
    pub processes: Vec<Vec<String>>,
}

/// `ps` output kept to the rows whose PID is in `pids`; None without a
/// PID column.
pub fn parse_ps(text: &str, pids: &[i32]) -> Option<TopResponse> {
    let mut lines = text.lines();
    let titles: Vec<String> = lines.next()?.split_whitespace().map(String::from).collect();
    let col = titles.iter().position(|t| t == "PID")?;
    let n = titles.len();
    let mut processes = Vec::new();
    for l in lines {
        let mut fields: Vec<String> = Vec::with_capacity(n);
        let mut rest = l.trim_start();
        while fields.len() + 1 < n {
            let end = rest.find(char::is_whitespace).unwrap_or(rest.len());
            fields.push(rest[..end].to_string());
            rest = rest[end..].trim_start();
        }
        fields.push(rest.to_string());
        if fields[col].parse::<i32>().is_ok_and(|p| pids.contains(&p)) {
            processes.push(fields);
        }
    }
    Some(TopResponse { titles, processes })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ps_output_is_kept_to_the_containers_pids() {
        let text = "UID        PID  PPID  C STIME TTY          TIME CMD\n\
                    root         1     0  0 07:07 ?        00:00:18 /sbin/init splash\n\
                    root       412     1  0 07:08 ?        00:00:00 sleep 100 --x\n";
        let t = parse_ps(text, &[412]).unwrap();
        assert_eq!(t.titles.len(), 8);
        assert_eq!(t.processes.len(), 1);
        assert_eq!(t.processes[0][1], "412");
        assert_eq!(t.processes[0][7], "sleep 100 --x");
        assert!(parse_ps("USER COMMAND\nroot x\n", &[1]).is_none());
    }

    #[test]
    fn an_update_replaces_only_what_it_names() {
        let base = ContainerSpec {
            resources: crate::specgen::ResourceSpec {
                memory: Some(64 << 20),
                cpu_period: Some(50_000),
                cpu_quota: Some(25_000),
                pids_limit: Some(10),
                ..Default::default()
            },
            ..Default::default()
        };
        let r = UpdateRequest {
            cpus: Some(1.5),
            pids_limit: Some(0),
            ..Default::default()
        };
        let s = r.apply(&base).unwrap();
        let c = &s.resources;
        assert_eq!(c.memory, Some(64 << 20));
        assert_eq!((c.cpus, c.cpu_period, c.cpu_quota), (Some(1.5), None, None));
        assert_eq!(c.pids_limit, Some(-1));
        let c2 = UpdateRequest {
            cpu_quota: Some(20_000),
            ..Default::default()
        }
        .apply(&s)
        .unwrap()
        .resources;
        assert_eq!((c2.cpus, c2.cpu_quota), (None, Some(20_000)));
        let res = resources(&s);
        assert_eq!(res["cpu"]["quota"], 150_000);
        assert_eq!(res["pids"]["limit"], -1);
        assert_eq!(res["memory"]["limit"], 64 << 20);
    }

    #[test]
    fn an_update_is_checked_as_create_checks() {
        let mut base = ContainerSpec::default();
        base.resources.memory = Some(64 << 20);
        base.resources.memory_swap = Some(128 << 20);
        let bad = [
            UpdateRequest {
                memory: Some(1 << 20),
                ..Default::default()
            },
            UpdateRequest {
                memory: Some(256 << 20),
                ..Default::default()
            },
            UpdateRequest {
                cpus: Some(1.0),
                cpu_quota: Some(5000),
                ..Default::default()
            },
            UpdateRequest {
                blkio_weight: Some(5),
                ..Default::default()
            },
            UpdateRequest {
                restart: Some("sometimes".into()),
                ..Default::default()
            },
        ];
        for r in bad {
            let e = r.apply(&base).unwrap_err().to_string();
            // Worded with update's flags, not the spec's fields.
            assert!(e.starts_with("--"), "{r:?}: {e}");
        }
        let mut rm = ContainerSpec::default();
        rm.lifecycle.auto_remove = true;
        let always = UpdateRequest {
            restart: Some("always".into()),
            ..Default::default()
        };
        assert!(always.apply(&rm).is_err());
        assert_eq!(
            always.apply(&base).unwrap().lifecycle.restart,
            RestartPolicy::Always
        );
        assert!(UpdateRequest::default().is_empty());
    }
}
