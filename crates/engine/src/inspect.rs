//! `inspect` documents in Docker's shape, typed: a container's
//! ([`ContainerInspect`], [`Engine::inspect_container`]) and a volume's
//! ([`VolumeInspect`], [`Engine::inspect_volume`]). Serialised with
//! serde under Docker's field names, for the CLI's JSON and templates
//! (`{{.State.Status}}`) and for an API alike. (An image's document is
//! [`crate::images::Images::inspect`].)

use crate::containers::Engine;
use crate::error::Result;
use crate::images::Digest;
use crate::logs::rfc3339_nano;
use crate::query::state_name;
use crate::records::{Record, Status, VolumeRecord};
use crate::specgen::{DeviceRate, DeviceRule, NamespaceMode, RestartPolicy, SeccompPolicy};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::PathBuf;

/// Docker's `docker container inspect` document.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ContainerInspect {
    pub id: String,
    /// RFC 3339 with ns.
    pub created: String,
    /// The command's program, and its arguments.
    pub path: String,
    pub args: Vec<String>,
    pub state: StateInspect,
    /// The image's id.
    pub image: String,
    pub resolv_conf_path: PathBuf,
    pub hostname_path: PathBuf,
    pub hosts_path: PathBuf,
    pub log_path: PathBuf,
    /// `/NAME`.
    pub name: String,
    pub restart_count: u32,
    pub driver: String,
    pub platform: String,
    pub mounts: Vec<MountInspect>,
    pub config: ConfigInspect,
    pub host_config: HostConfigInspect,
    pub graph_driver: GraphDriver,
    pub network_settings: crate::networks::NetworkSettings,
    /// The id of the pod the container is in (podman's field; absent
    /// outside a pod).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub pod: String,
}

/// `.State`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct StateInspect {
    /// Docker's state name (`paused` for a paused running container).
    pub status: String,
    pub running: bool,
    pub paused: bool,
    pub restarting: bool,
    #[serde(rename = "OOMKilled")]
    pub oom_killed: bool,
    pub dead: bool,
    pub pid: i32,
    pub exit_code: i32,
    pub error: String,
    /// RFC 3339; `0001-01-01T00:00:00Z` for never.
    pub started_at: String,
    pub finished_at: String,
    /// berth's own: output lost rather than making the container wait.
    pub log_bytes_dropped: u64,
    pub attach_bytes_dropped: u64,
    /// Docker's health status and last results (with a health check).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health: Option<crate::health::HealthInspect>,
    /// berth's own, with probes: the readiness probe passes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ready: Option<bool>,
}

/// One of `.Mounts`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct MountInspect {
    /// `bind`, `volume` or `tmpfs`.
    #[serde(rename = "Type")]
    pub kind: String,
    pub name: String,
    pub source: String,
    pub destination: String,
    #[serde(rename = "RW")]
    pub rw: bool,
    pub mode: String,
    pub propagation: String,
}

/// `.Config`: what the container runs, with the image's defaults.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ConfigInspect {
    pub hostname: String,
    pub domainname: String,
    pub user: String,
    pub tty: bool,
    pub open_stdin: bool,
    pub stdin_once: bool,
    pub env: Vec<String>,
    pub cmd: Option<Vec<String>>,
    /// As named at create.
    pub image: String,
    pub working_dir: String,
    pub entrypoint: Option<Vec<String>>,
    pub labels: BTreeMap<String, String>,
    pub stop_signal: String,
    pub stop_timeout: u32,
    /// The image's EXPOSE and `--expose`: `{"80/tcp": {}}`.
    pub exposed_ports: Option<BTreeMap<String, serde_json::Map<String, serde_json::Value>>>,
    /// The health check (the container's, completed from the image's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub healthcheck: Option<crate::health::HealthConfig>,
}

/// `.HostConfig.RestartPolicy`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct RestartPolicyInspect {
    pub name: String,
    pub maximum_retry_count: u32,
}

/// One of `.HostConfig.Ulimits`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct UlimitInspect {
    pub name: String,
    pub soft: u64,
    pub hard: u64,
}

/// `.HostConfig.LogConfig`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct LogConfigInspect {
    #[serde(rename = "Type")]
    pub kind: String,
    /// `max-size`, `max-file`.
    pub config: BTreeMap<String, String>,
}

/// One of `.HostConfig.Devices`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct DeviceInspect {
    pub path_on_host: String,
    pub path_in_container: String,
    pub cgroup_permissions: String,
}

/// A device's blkio rate (`Rate`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct DeviceRateInspect {
    pub path: String,
    pub rate: u64,
}

/// A device's blkio weight (`Weight`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct DeviceWeightInspect {
    pub path: String,
    pub weight: u64,
}

/// `.HostConfig`: how the container is run.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct HostConfigInspect {
    /// `bridge` (the default network), a network's name, `none`, `host`
    /// or `container:ID`.
    pub network_mode: String,
    /// `-p`: `{"80/tcp": [{"HostIp": "", "HostPort": "8080"}]}`.
    pub port_bindings: BTreeMap<String, Vec<crate::networks::PortBinding>>,
    pub publish_all_ports: bool,
    pub restart_policy: RestartPolicyInspect,
    pub auto_remove: bool,
    pub privileged: bool,
    pub readonly_rootfs: bool,
    pub cap_add: Vec<String>,
    pub cap_drop: Vec<String>,
    pub group_add: Vec<String>,
    pub security_opt: Vec<String>,
    pub memory: i64,
    pub memory_swap: i64,
    pub nano_cpus: i64,
    pub cpu_shares: u64,
    pub cpuset_cpus: String,
    pub pids_limit: Option<i64>,
    pub ulimits: Vec<UlimitInspect>,
    pub init: bool,
    pub runtime: String,
    pub log_config: LogConfigInspect,
    pub devices: Vec<DeviceInspect>,
    /// Empty for the container's own namespace.
    pub pid_mode: String,
    pub ipc_mode: String,
    #[serde(rename = "UTSMode")]
    pub uts_mode: String,
    pub cgroupns_mode: String,
    pub annotations: BTreeMap<String, String>,
    pub shm_size: u64,
    pub sysctls: BTreeMap<String, String>,
    /// `NAME:ADDRESS`.
    pub extra_hosts: Vec<String>,
    pub memory_reservation: i64,
    pub cpu_period: u64,
    pub cpu_quota: i64,
    pub cpuset_mems: String,
    pub oom_score_adj: i32,
    pub device_cgroup_rules: Vec<DeviceRule>,
    pub cgroup_parent: String,
    pub memory_swappiness: Option<u64>,
    pub dns: Vec<String>,
    pub dns_search: Vec<String>,
    pub dns_options: Vec<String>,
    pub oom_kill_disable: bool,
    pub blkio_weight: u16,
    pub blkio_weight_device: Vec<DeviceWeightInspect>,
    pub blkio_device_read_bps: Vec<DeviceRateInspect>,
    pub blkio_device_write_bps: Vec<DeviceRateInspect>,
    #[serde(rename = "BlkioDeviceReadIOps")]
    pub blkio_device_read_iops: Vec<DeviceRateInspect>,
    #[serde(rename = "BlkioDeviceWriteIOps")]
    pub blkio_device_write_iops: Vec<DeviceRateInspect>,
    /// `--volumes-from` as given (null when none, as Docker's).
    pub volumes_from: Option<Vec<String>>,
    /// CDI devices (`--device vendor/class=name`, `--gpus`), as Docker 25+
    /// shows them: one request of the "cdi" driver.
    pub device_requests: Option<Vec<DeviceRequestInspect>>,
    /// `--userns` as given ("" for none, as Docker's).
    pub userns_mode: String,
    /// The user namespace's maps (podman's `HostConfig.IDMappings`).
    #[serde(rename = "IDMappings", skip_serializing_if = "Option::is_none")]
    pub id_mappings: Option<IdMappingsInspect>,
}

/// `.HostConfig.IDMappings`: "CONTAINER:HOST:SIZE" per range, as podman
/// shows them.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct IdMappingsInspect {
    pub uid_map: Vec<String>,
    pub gid_map: Vec<String>,
}

/// `.HostConfig.DeviceRequests[]`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct DeviceRequestInspect {
    pub driver: String,
    #[serde(rename = "DeviceIDs")]
    pub device_ids: Vec<String>,
}

/// `.GraphDriver`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct GraphDriver {
    pub name: String,
    pub data: GraphDriverData,
}

/// `.GraphDriver.Data`: the overlay's directories.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct GraphDriverData {
    /// Colon-separated, the top layer first.
    pub lower_dir: String,
    pub upper_dir: PathBuf,
    pub work_dir: PathBuf,
    pub merged_dir: PathBuf,
}

/// Docker's `docker volume inspect` document.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct VolumeInspect {
    pub name: String,
    pub driver: String,
    pub mountpoint: PathBuf,
    pub created_at: String,
    pub labels: BTreeMap<String, String>,
    pub scope: String,
    /// berth's own: made for a container, without a name given.
    pub anonymous: bool,
    /// The ids of the containers that use it.
    pub used_by: Vec<String>,
    /// The local driver's options it was made with (null: none).
    pub options: Option<BTreeMap<String, String>>,
}

/// A time for `inspect`: RFC 3339, or Go's zero time for never.
fn time_or_zero(n: i64) -> String {
    if n > 0 {
        rfc3339_nano(n)
    } else {
        "0001-01-01T00:00:00Z".into()
    }
}

fn rates(v: &[DeviceRate]) -> Vec<DeviceRateInspect> {
    v.iter()
        .map(|d| DeviceRateInspect {
            path: d.path.clone(),
            rate: d.value,
        })
        .collect()
}

/// `.State` of `r`.
pub fn state_inspect(r: &Record) -> StateInspect {
    let st = &r.state;
    StateInspect {
        status: state_name(r).into(),
        running: matches!(st.status, Status::Running | Status::Restarting),
        paused: st.status == Status::Running && st.paused,
        restarting: st.status == Status::Restarting,
        oom_killed: st.oom_killed,
        dead: false,
        pid: st.pid,
        exit_code: st.exit_code,
        error: st.error.clone(),
        started_at: time_or_zero(st.started),
        finished_at: time_or_zero(st.finished),
        log_bytes_dropped: st.log_dropped,
        attach_bytes_dropped: st.attach_dropped,
        health: None,
        ready: None,
    }
}

impl Engine {
    /// The inspect document of the container `what` (name, id or id
    /// prefix), reconciled first.
    pub fn inspect_container(&self, what: &str) -> Result<ContainerInspect> {
        Ok(self.inspect_record(&self.get(what)?))
    }

    /// The inspect document of the record `r` (as it is: no reconcile).
    /// What the image says is left out when the image is gone.
    pub fn inspect_record(&self, r: &Record) -> ContainerInspect {
        let cmd = self.command_or_spec(r);
        let digest = Digest::parse(&r.image_id).ok();
        let image = digest
            .as_ref()
            .and_then(|d| self.image_config(d).ok())
            .unwrap_or_default();
        let dir = self.paths.container(&r.id);
        let layers: Vec<String> = digest
            .as_ref()
            .and_then(|d| self.images.image_layers(d).ok())
            .unwrap_or_default()
            .iter()
            .rev()
            .map(|c| self.images.layer_dir(c).display().to_string())
            .collect();
        let c = &r.spec;
        let p = &c.process;
        let res = &c.resources;
        let ns = &c.namespaces;
        let own = |m: &NamespaceMode| match m {
            NamespaceMode::Private => String::new(),
            m => m.to_string(),
        };
        let mounts = self
            .mounts(r)
            .into_iter()
            .map(|m| MountInspect {
                kind: m.kind.into(),
                name: m.name,
                source: m.source,
                destination: m.destination,
                rw: m.rw,
                mode: if m.rw { "rw" } else { "ro" }.into(),
                propagation: m.propagation,
            })
            .collect();
        let config = ConfigInspect {
            hostname: c
                .network
                .hostname
                .clone()
                .unwrap_or_else(|| r.id.chars().take(12).collect()),
            domainname: c.network.domainname.clone().unwrap_or_default(),
            user: p.user.clone().or(image.user.clone()).unwrap_or_default(),
            tty: p.tty,
            open_stdin: p.stdin,
            stdin_once: p.stdin,
            env: p.env.clone(),
            cmd: if p.args.is_empty() {
                image.cmd.clone()
            } else {
                Some(p.args.clone())
            },
            image: r.image.clone(),
            working_dir: p
                .workdir
                .clone()
                .or(image.working_dir.clone())
                .unwrap_or_default(),
            entrypoint: p.entrypoint.clone().or(image.entrypoint.clone()),
            labels: c.metadata.labels.clone(),
            stop_signal: p
                .stop_signal
                .clone()
                .or(image.stop_signal.clone())
                .unwrap_or_else(|| "SIGTERM".into()),
            stop_timeout: p.stop_timeout.unwrap_or(10),
            exposed_ports: {
                let mut m: BTreeMap<String, serde_json::Map<String, serde_json::Value>> =
                    BTreeMap::new();
                for e in image.exposed_ports.iter().chain(&c.network.expose) {
                    m.insert(e.clone(), Default::default());
                }
                for p in &c.network.ports {
                    m.insert(
                        format!("{}/{}", p.container_port, p.proto),
                        Default::default(),
                    );
                }
                (!m.is_empty()).then_some(m)
            },
            healthcheck: c.health.check.clone(),
        };
        let host_config = HostConfigInspect {
            network_mode: match (&ns.net, c.network.networks.first()) {
                (NamespaceMode::Private, Some(a)) => a.network.clone(),
                (NamespaceMode::Private, None) => "none".into(),
                (m, _) => m.to_string(),
            },
            port_bindings: crate::networks::port_bindings(&c.network.ports),
            publish_all_ports: c.network.publish_all,
            restart_policy: RestartPolicyInspect {
                name: c.lifecycle.restart.name().into(),
                maximum_retry_count: match c.lifecycle.restart {
                    RestartPolicy::OnFailure(n) => n,
                    _ => 0,
                },
            },
            auto_remove: c.lifecycle.auto_remove,
            privileged: c.security.privileged,
            readonly_rootfs: c.storage.read_only,
            cap_add: c.security.cap_add.clone(),
            cap_drop: c.security.cap_drop.clone(),
            group_add: p.groups.clone(),
            security_opt: if c.security.seccomp == SeccompPolicy::Unconfined {
                vec!["seccomp=unconfined".into()]
            } else {
                Vec::new()
            },
            memory: res.memory.unwrap_or(0),
            memory_swap: res.memory_swap.unwrap_or(0),
            nano_cpus: res.cpus.map_or(0, |x| (x * 1e9) as i64),
            cpu_shares: res.cpu_shares.unwrap_or(0),
            cpuset_cpus: res.cpuset_cpus.clone().unwrap_or_default(),
            pids_limit: res.pids_limit,
            ulimits: res
                .ulimits
                .iter()
                .map(|u| UlimitInspect {
                    name: u.name.clone(),
                    soft: u.soft,
                    hard: u.hard,
                })
                .collect(),
            init: p.init,
            runtime: c.runtime.clone(),
            log_config: LogConfigInspect {
                kind: c.logging.driver.name().into(),
                config: [
                    ("max-size".to_string(), c.logging.max_size.to_string()),
                    ("max-file".to_string(), c.logging.max_files.to_string()),
                ]
                .into(),
            },
            devices: res
                .devices
                .iter()
                .map(|d| DeviceInspect {
                    path_on_host: d.host.clone(),
                    path_in_container: d.container.clone(),
                    cgroup_permissions: d.access.clone(),
                })
                .collect(),
            pid_mode: own(&ns.pid),
            ipc_mode: ns.ipc.to_string(),
            uts_mode: own(&ns.uts),
            cgroupns_mode: match &ns.cgroup {
                Some(m) => m.to_string(),
                None if crate::specgen::docker::host_cgroup_v2() => "private".into(),
                None => "host".into(),
            },
            annotations: c.metadata.annotations.clone(),
            shm_size: if ns.ipc.is_host() {
                0
            } else {
                c.storage.shm_size.unwrap_or(64 << 20)
            },
            sysctls: c.security.sysctls.clone(),
            extra_hosts: c
                .network
                .extra_hosts
                .iter()
                .map(|h| format!("{}:{}", h.name, h.address))
                .collect(),
            memory_reservation: res.memory_reservation.unwrap_or(0),
            cpu_period: res.cpu_period.unwrap_or(0),
            cpu_quota: res.cpu_quota.unwrap_or(0),
            cpuset_mems: res.cpuset_mems.clone().unwrap_or_default(),
            oom_score_adj: res.oom_score_adj.unwrap_or(0),
            device_cgroup_rules: res.device_cgroup_rules.clone(),
            cgroup_parent: res.cgroup_parent.clone().unwrap_or_default(),
            memory_swappiness: res.memory_swappiness,
            dns: c.network.dns.clone(),
            dns_search: c.network.dns_search.clone(),
            dns_options: c.network.dns_options.clone(),
            oom_kill_disable: res.oom_kill_disable,
            blkio_weight: res.blkio_weight.unwrap_or(0),
            blkio_weight_device: res
                .blkio_weight_devices
                .iter()
                .map(|d| DeviceWeightInspect {
                    path: d.path.clone(),
                    weight: d.value,
                })
                .collect(),
            blkio_device_read_bps: rates(&res.device_read_bps),
            blkio_device_write_bps: rates(&res.device_write_bps),
            blkio_device_read_iops: rates(&res.device_read_iops),
            blkio_device_write_iops: rates(&res.device_write_iops),
            volumes_from: Some(r.spec.storage.volumes_from.clone()).filter(|v| !v.is_empty()),
            device_requests: Some(vec![DeviceRequestInspect {
                driver: "cdi".into(),
                device_ids: res.cdi_devices.clone(),
            }])
            .filter(|_| !res.cdi_devices.is_empty()),
            userns_mode: match &ns.user {
                crate::userns::UsernsMode::Host => String::new(),
                m => crate::specgen::userns_text(m),
            },
            id_mappings: ns.user_maps.as_ref().map(|u| {
                let text = |m: &[crate::userns::IdMap]| {
                    m.iter()
                        .map(|r| format!("{}:{}:{}", r.container_id, r.host_id, r.size))
                        .collect()
                };
                IdMappingsInspect {
                    uid_map: text(&u.uids),
                    gid_map: text(&u.gids),
                }
            }),
        };
        ContainerInspect {
            id: r.id.clone(),
            created: rfc3339_nano(r.created),
            path: cmd.first().cloned().unwrap_or_default(),
            args: cmd.iter().skip(1).cloned().collect(),
            state: crate::inspect::StateInspect {
                health: self.health_inspect(r),
                ready: (!r.spec.health.probes.is_empty()).then(|| self.readiness(r)),
                ..state_inspect(r)
            },
            image: r.image_id.clone(),
            resolv_conf_path: self.etc_file_path(r, "resolv.conf"),
            hostname_path: self.etc_file_path(r, "hostname"),
            hosts_path: self.etc_file_path(r, "hosts"),
            log_path: dir.join("ctr.log"),
            name: format!("/{}", r.name),
            restart_count: r.state.restarts,
            driver: "overlay".into(),
            platform: "linux".into(),
            mounts,
            config,
            host_config,
            graph_driver: GraphDriver {
                name: "overlay".into(),
                data: GraphDriverData {
                    lower_dir: layers.join(":"),
                    upper_dir: dir.join("upper"),
                    work_dir: dir.join("work"),
                    merged_dir: self.paths.rootfs(&r.id),
                },
            },
            network_settings: self.network_settings(r),
            pod: c.pod.clone().unwrap_or_default(),
        }
    }

    /// The inspect document of the volume `name`.
    pub fn inspect_volume(&self, name: &str) -> Result<VolumeInspect> {
        let v: VolumeRecord = self.records.volume(name)?;
        Ok(VolumeInspect {
            mountpoint: self.paths.volume_data(&v.name),
            created_at: rfc3339_nano(v.created),
            used_by: self.records.volume_users(&v.name)?,
            driver: "local".into(),
            scope: "local".into(),
            anonymous: v.anonymous,
            options: crate::volume_opts::load(&self.paths.volume(&v.name))?.map(|o| o.to_map()),
            labels: v.labels,
            name: v.name,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::records::RunState;
    use crate::runtime::Fake;

    #[test]
    fn a_containers_document_has_dockers_field_names() {
        let dir = tempfile::tempdir().unwrap();
        let fake: &'static Fake = Box::leak(Box::new(Fake::new()));
        let engine =
            Engine::open_with(&dir.path().join("root"), &dir.path().join("run"), fake).unwrap();
        let mut r = Record {
            id: "ab".repeat(32),
            name: "web".into(),
            image: "busybox".into(),
            image_id: "sha256:00".into(),
            created: 1_700_000_000_000_000_000,
            spec: Default::default(),
            state: RunState {
                status: Status::Exited,
                exit_code: 3,
                oom_killed: true,
                restarts: 2,
                ..RunState::default()
            },
        };
        r.spec.process.args = vec!["sh".into(), "-c".into(), "exit 3".into()];
        r.spec.lifecycle.restart = RestartPolicy::OnFailure(5);
        engine.records.insert(&r).unwrap();
        let doc = engine.inspect_container("web").unwrap();
        assert_eq!(doc, engine.inspect_record(&r));
        let v = serde_json::to_value(&doc).unwrap();
        assert_eq!(v["Name"], "/web");
        assert_eq!(v["Path"], "sh");
        assert_eq!(v["Args"], serde_json::json!(["-c", "exit 3"]));
        assert_eq!(v["Created"], "2023-11-14T22:13:20.000000000Z");
        assert_eq!(v["RestartCount"], 2);
        let st = &v["State"];
        assert_eq!(st["Status"], "exited");
        assert_eq!(
            (st["OOMKilled"].as_bool(), st["ExitCode"].as_i64()),
            (Some(true), Some(3))
        );
        assert_eq!(st["StartedAt"], "0001-01-01T00:00:00Z");
        assert_eq!(v["Config"]["Hostname"], "abababababab");
        assert_eq!(v["Config"]["StopSignal"], "SIGTERM");
        let hc = &v["HostConfig"];
        assert_eq!(
            hc["RestartPolicy"],
            serde_json::json!({"Name": "on-failure", "MaximumRetryCount": 5})
        );
        assert!(hc["PidsLimit"].is_null() && hc["MemorySwappiness"].is_null());
        for k in [
            "UTSMode",
            "CgroupnsMode",
            "BlkioDeviceReadIOps",
            "NanoCpus",
            "IpcMode",
        ] {
            assert!(hc.get(k).is_some(), "{k}");
        }
        assert_eq!(hc["LogConfig"]["Type"], "k8s-file");
        assert!(v["GraphDriver"]["Data"]["MergedDir"].is_string());
        assert!(matches!(
            engine.inspect_container("nosuch"),
            Err(crate::Error::NoSuchContainer(_))
        ));
    }
}
