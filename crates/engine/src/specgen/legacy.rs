//! The record format before the typed spec: one flat `ContainerConfig`
//! (berth up to issue 21). A stored row of it is read here and turned
//! into a [`ContainerSpec`]; the engine writes the row back in the new
//! format (`Records::find` and friends). Only a deserialiser: nothing
//! writes this format any more.

use super::*;
use crate::error::{Error, Result};

/// The old flat record, field for field as it was stored.
#[derive(Clone, Debug, PartialEq, Deserialize)]
// Tests write rows as the old code did: serde of this struct.
#[cfg_attr(test, derive(Serialize))]
#[serde(default)]
pub(super) struct ContainerConfig {
    /// The command after the image name.
    args: Vec<String>,
    entrypoint: Option<Vec<String>>,
    env: Vec<String>,
    workdir: Option<String>,
    user: Option<String>,
    /// `--group-add`: more supplementary groups (names or gids).
    group_add: Vec<String>,
    hostname: Option<String>,
    tty: bool,
    /// `-i`: keep stdin open.
    interactive: bool,
    read_only: bool,
    privileged: bool,
    cap_add: Vec<String>,
    cap_drop: Vec<String>,
    /// `--security-opt seccomp=unconfined`.
    seccomp_unconfined: bool,
    /// `--security-opt seccomp=FILE`: the profile, read at create time.
    seccomp_profile: Option<String>,
    no_new_privileges: bool,
    memory: Option<i64>,
    memory_swap: Option<i64>,
    cpus: Option<f64>,
    cpu_shares: Option<u64>,
    cpuset_cpus: Option<String>,
    pids_limit: Option<i64>,
    /// `--memory-reservation`: the soft limit, bytes.
    memory_reservation: Option<i64>,
    /// `--cpu-period` and `--cpu-quota`, microseconds (the CFS scheduler's).
    cpu_period: Option<u64>,
    cpu_quota: Option<i64>,
    /// `--cpuset-mems`: the memory nodes.
    cpuset_mems: Option<String>,
    /// `--oom-score-adj` (-1000..1000).
    oom_score_adj: Option<i32>,
    /// `--device-cgroup-rule`: "TYPE MAJOR:MINOR ACCESS" rules allowed.
    device_cgroup_rules: Vec<String>,
    /// `--cgroup-parent`: the cgroup the container's goes under
    /// (default /berth).
    cgroup_parent: Option<String>,
    /// `--dns`, `--dns-search`, `--dns-option`: what the container's
    /// /etc/resolv.conf says instead of the host's.
    dns: Vec<String>,
    dns_search: Vec<String>,
    dns_options: Vec<String>,
    /// `--domainname`: the NIS domain name.
    domainname: Option<String>,
    /// `--memory-swappiness` (0-100; cgroup v1 only).
    memory_swappiness: Option<u64>,
    /// `--oom-kill-disable` (cgroup v1 only).
    oom_kill_disable: bool,
    /// `--blkio-weight` (10-1000).
    blkio_weight: Option<u16>,
    /// `--blkio-weight-device DEVICE:WEIGHT`.
    blkio_weight_devices: Vec<(String, u64)>,
    /// `--device-read-bps` and the others: (device path, bytes or
    /// operations per second).
    device_read_bps: Vec<(String, u64)>,
    device_write_bps: Vec<(String, u64)>,
    device_read_iops: Vec<(String, u64)>,
    device_write_iops: Vec<(String, u64)>,
    ulimits: Vec<Ulimit>,
    mounts: Vec<Mount>,
    /// `--device`: host devices given to the container.
    devices: Vec<DeviceMapping>,
    /// "none" or "host".
    network: String,
    /// `--pid`, `--ipc`, `--uts`: "" (the container's own) or "host".
    pid: String,
    ipc: String,
    uts: String,
    /// `--shm-size`, bytes.
    shm_size: Option<u64>,
    /// `--sysctl KEY=VALUE`.
    sysctls: BTreeMap<String, String>,
    /// `--add-host NAME:IP`: extra /etc/hosts lines, as (name, address).
    extra_hosts: Vec<(String, String)>,
    init: bool,
    /// Docker's syntax: no, on-failure[:N], always, unless-stopped.
    restart: String,
    stop_signal: Option<String>,
    /// Seconds.
    stop_timeout: Option<u32>,
    labels: BTreeMap<String, String>,
    annotations: BTreeMap<String, String>,
    /// berth-runtime, runc, crun, or a path.
    runtime: String,
    log_driver: String,
    log_max_size: u64,
    log_max_files: u32,
    /// `--rm`.
    auto_remove: bool,
    detach_keys: Option<String>,
}

impl Default for ContainerConfig {
    fn default() -> Self {
        ContainerConfig {
            args: Vec::new(),
            entrypoint: None,
            env: Vec::new(),
            workdir: None,
            user: None,
            group_add: Vec::new(),
            hostname: None,
            tty: false,
            interactive: false,
            read_only: false,
            privileged: false,
            cap_add: Vec::new(),
            cap_drop: Vec::new(),
            seccomp_unconfined: false,
            seccomp_profile: None,
            no_new_privileges: false,
            memory: None,
            memory_swap: None,
            cpus: None,
            cpu_shares: None,
            cpuset_cpus: None,
            pids_limit: None,
            memory_reservation: None,
            cpu_period: None,
            cpu_quota: None,
            cpuset_mems: None,
            oom_score_adj: None,
            device_cgroup_rules: Vec::new(),
            cgroup_parent: None,
            dns: Vec::new(),
            dns_search: Vec::new(),
            dns_options: Vec::new(),
            domainname: None,
            memory_swappiness: None,
            oom_kill_disable: false,
            blkio_weight: None,
            blkio_weight_devices: Vec::new(),
            device_read_bps: Vec::new(),
            device_write_bps: Vec::new(),
            device_read_iops: Vec::new(),
            device_write_iops: Vec::new(),
            ulimits: Vec::new(),
            mounts: Vec::new(),
            devices: Vec::new(),
            network: "none".into(),
            pid: String::new(),
            ipc: String::new(),
            uts: String::new(),
            shm_size: None,
            sysctls: BTreeMap::new(),
            extra_hosts: Vec::new(),
            init: false,
            restart: "no".into(),
            stop_signal: None,
            stop_timeout: None,
            labels: BTreeMap::new(),
            annotations: BTreeMap::new(),
            runtime: DEFAULT_RUNTIME.into(),
            log_driver: "k8s-file".into(),
            log_max_size: DEFAULT_LOG_MAX_SIZE,
            log_max_files: DEFAULT_LOG_MAX_FILES,
            auto_remove: false,
            detach_keys: None,
        }
    }
}

fn rates(v: Vec<(String, u64)>) -> Vec<DeviceRate> {
    v.into_iter()
        .map(|(path, value)| DeviceRate { path, value })
        .collect()
}

/// The old record's namespace strings: "" (its own) or "host".
fn mode(s: &str, field: &str) -> Result<NamespaceMode> {
    NamespaceMode::parse(s).ok_or_else(|| {
        Error::Runtime(format!(
            "a stored container config: {field} {s:?} is not a namespace mode"
        ))
    })
}

impl ContainerConfig {
    fn into_spec(self) -> Result<ContainerSpec> {
        let c = self;
        let seccomp = if c.seccomp_unconfined {
            SeccompPolicy::Unconfined
        } else if let Some(profile) = c.seccomp_profile {
            SeccompPolicy::Profile { profile }
        } else {
            SeccompPolicy::Default
        };
        Ok(ContainerSpec {
            process: ProcessSpec {
                args: c.args,
                entrypoint: c.entrypoint,
                env: c.env,
                workdir: c.workdir,
                user: c.user,
                groups: c.group_add,
                tty: c.tty,
                stdin: c.interactive,
                init: c.init,
                stop_signal: c.stop_signal,
                stop_timeout: c.stop_timeout,
                detach_keys: c.detach_keys,
            },
            storage: StorageSpec {
                mounts: c.mounts,
                read_only: c.read_only,
                shm_size: c.shm_size,
                // What came after the old format takes its default, so
                // a new option does not touch this file.
                ..StorageSpec::default()
            },
            security: SecuritySpec {
                privileged: c.privileged,
                cap_add: c.cap_add,
                cap_drop: c.cap_drop,
                seccomp,
                no_new_privileges: c.no_new_privileges,
                sysctls: c.sysctls,
                ..SecuritySpec::default()
            },
            resources: ResourceSpec {
                memory: c.memory,
                memory_swap: c.memory_swap,
                memory_reservation: c.memory_reservation,
                memory_swappiness: c.memory_swappiness,
                oom_kill_disable: c.oom_kill_disable,
                oom_score_adj: c.oom_score_adj,
                cpus: c.cpus,
                cpu_shares: c.cpu_shares,
                cpu_period: c.cpu_period,
                cpu_quota: c.cpu_quota,
                cpuset_cpus: c.cpuset_cpus,
                cpuset_mems: c.cpuset_mems,
                pids_limit: c.pids_limit,
                blkio_weight: c.blkio_weight,
                blkio_weight_devices: rates(c.blkio_weight_devices),
                device_read_bps: rates(c.device_read_bps),
                device_write_bps: rates(c.device_write_bps),
                device_read_iops: rates(c.device_read_iops),
                device_write_iops: rates(c.device_write_iops),
                ulimits: c.ulimits,
                devices: c.devices,
                device_cgroup_rules: c
                    .device_cgroup_rules
                    .iter()
                    .map(|r| docker::parse_device_rule(r))
                    .collect::<Result<_>>()?,
                cgroup_parent: c
                    .cgroup_parent
                    .as_deref()
                    .map(docker::parse_cgroup_parent)
                    .transpose()?,
                ..ResourceSpec::default()
            },
            namespaces: NamespaceSpec {
                pid: mode(&c.pid, "pid")?,
                ipc: mode(&c.ipc, "ipc")?,
                uts: mode(&c.uts, "uts")?,
                net: mode(&c.network, "network")?,
                // What containers had before --cgroupns: their own.
                cgroup: Some(NamespaceMode::Private),
                // Old records had no user namespace.
                ..NamespaceSpec::default()
            },
            network: NetworkSpec {
                hostname: c.hostname,
                domainname: c.domainname,
                dns: c.dns,
                dns_search: c.dns_search,
                dns_options: c.dns_options,
                extra_hosts: c
                    .extra_hosts
                    .into_iter()
                    .map(|(name, address)| HostEntry { name, address })
                    .collect(),
                // Old containers had no bridge networks.
                networks: Vec::new(),
                ports: Vec::new(),
                publish_all: false,
                expose: Vec::new(),
                disconnected: false,
            },
            lifecycle: LifecycleSpec {
                restart: RestartPolicy::parse(&c.restart).ok_or_else(|| {
                    Error::Runtime(format!(
                        "a stored container config: restart {:?} is not a policy",
                        c.restart
                    ))
                })?,
                auto_remove: c.auto_remove,
                volatile_rootfs: false,
            },
            logging: LogSpec {
                driver: LogDriver::parse(&c.log_driver).unwrap_or_default(),
                max_size: c.log_max_size,
                max_files: c.log_max_files,
            },
            metadata: Metadata {
                labels: c.labels,
                annotations: c.annotations,
            },
            runtime: c.runtime,
            pod: None,
            health: Default::default(),
        })
    }
}

/// A record's stored spec: the current format, or the old flat one
/// (converted; `true` then, so that the caller writes it back).
pub(crate) fn from_stored(text: &str) -> Result<(ContainerSpec, bool)> {
    let bad = |e: &dyn std::fmt::Display| {
        Error::Runtime(format!(
            "container state database: a container's spec is not valid ({e}); the database was edited or is damaged"
        ))
    };
    // An object, not a list (serde would take a list for a struct).
    if !text.trim_start().starts_with('{') {
        return Err(bad(&"not a JSON object"));
    }
    // The current format, as berth writes it (serde writes the fields in
    // order): parsed at once.
    if text.starts_with("{\"process\":") {
        return serde_json::from_str::<ContainerSpec>(text)
            .map(|s| (s, false))
            .map_err(|e| bad(&e));
    }
    let value: serde_json::Value = serde_json::from_str(text).map_err(|e| bad(&e))?;
    // The old format is flat: no group objects. The current one always
    // has them all (serde writes every field); a field it does not know
    // (a later berth's) is dropped rather than making the record, and so
    // every listing, unreadable.
    if value.get("process").is_some() {
        return serde_json::from_value::<ContainerSpec>(value)
            .map(|s| (s, false))
            .map_err(|e| bad(&e));
    }
    let old: ContainerConfig = serde_json::from_value(value).map_err(|e| bad(&e))?;
    Ok((old.into_spec()?, true))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A row as berth before the typed spec stored it, written from the
    /// old struct (serde_json of `ContainerConfig` for `berth create -m 64m
    /// --pid host --restart on-failure:2 --device-cgroup-rule 'c 1:3 rwm'
    /// --add-host db:10.0.0.2 -l a=b --device-read-bps /dev/sda:1mb
    /// -v /tmp:/t:ro busybox echo hi`).
    const OLD_ROW: &str = r#"{"args":["echo","hi"],"entrypoint":null,"env":[],"workdir":null,"user":null,"group_add":[],"hostname":null,"tty":false,"interactive":false,"read_only":false,"privileged":false,"cap_add":[],"cap_drop":[],"seccomp_unconfined":false,"seccomp_profile":null,"no_new_privileges":false,"memory":67108864,"memory_swap":null,"cpus":null,"cpu_shares":null,"cpuset_cpus":null,"pids_limit":null,"memory_reservation":null,"cpu_period":null,"cpu_quota":null,"cpuset_mems":null,"oom_score_adj":null,"device_cgroup_rules":["c 1:3 rwm"],"cgroup_parent":null,"dns":[],"dns_search":[],"dns_options":[],"domainname":null,"memory_swappiness":null,"oom_kill_disable":false,"blkio_weight":null,"blkio_weight_devices":[],"device_read_bps":[["/dev/sda",1048576]],"device_write_bps":[],"device_read_iops":[],"device_write_iops":[],"ulimits":[],"mounts":[{"type":"bind","source":"/tmp","destination":"/t","readonly":true,"size":null,"mode":null,"propagation":null,"nocopy":false,"flags":[]}],"devices":[],"network":"none","pid":"host","ipc":"","uts":"","shm_size":null,"sysctls":{},"extra_hosts":[["db","10.0.0.2"]],"init":false,"restart":"on-failure:2","stop_signal":null,"stop_timeout":null,"labels":{"a":"b"},"annotations":{},"runtime":"berth-runtime","log_driver":"k8s-file","log_max_size":10485760,"log_max_files":3,"auto_remove":false,"detach_keys":null}"#;

    #[test]
    fn a_later_berths_fields_are_dropped_not_an_error() {
        let mut v = serde_json::to_value(ContainerSpec::default()).unwrap();
        v["process"]["health"] = serde_json::json!({"test": ["CMD", "true"]});
        v["networks"] = serde_json::json!(["a"]);
        v["process"]["args"] = serde_json::json!(["sleep", "1"]);
        // Written first or not, as another writer may order them.
        for text in [v.to_string(), {
            let mut o = serde_json::Map::new();
            o.insert("networks".into(), v["networks"].clone());
            for (k, x) in v.as_object().unwrap() {
                o.insert(k.clone(), x.clone());
            }
            serde_json::Value::Object(o).to_string()
        }] {
            let (s, migrated) = from_stored(&text).unwrap();
            assert!(!migrated);
            assert_eq!(s.process.args, ["sleep", "1"]);
        }
        // A client's request with the same fields is refused, naming one.
        let e = ContainerSpec::from_request(v.to_string().as_bytes()).unwrap_err();
        assert!(
            e.to_string().contains("process.health") || e.to_string().contains("networks"),
            "{e}"
        );
        let e = ContainerSpec::from_request(br#"{"process":{"agrs":["x"]}}"#).unwrap_err();
        assert!(e.to_string().contains("process.agrs"), "{e}");
        let e = ContainerSpec::from_request(br#"{"resources":{"memory":1}}"#).unwrap_err();
        assert!(e.to_string().contains("resources.memory"), "{e}");
        let ok = ContainerSpec::from_request(br#"{"process":{"args":["true"]}}"#).unwrap();
        assert_eq!(ok.process.args, ["true"]);
    }

    #[test]
    fn an_old_row_is_migrated() {
        let (s, migrated) = from_stored(OLD_ROW).unwrap();
        assert!(migrated);
        assert_eq!(s.process.args, ["echo", "hi"]);
        assert_eq!(s.resources.memory, Some(64 << 20));
        assert_eq!(s.namespaces.pid, NamespaceMode::Host);
        assert_eq!(s.namespaces.net, NamespaceMode::Private);
        assert_eq!(s.namespaces.cgroup, Some(NamespaceMode::Private));
        assert_eq!(s.lifecycle.restart, RestartPolicy::OnFailure(2));
        assert_eq!(s.resources.device_cgroup_rules[0].to_string(), "c 1:3 rwm");
        assert_eq!(
            s.resources.device_read_bps,
            [DeviceRate {
                path: "/dev/sda".into(),
                value: 1 << 20
            }]
        );
        assert_eq!(s.network.extra_hosts[0].address, "10.0.0.2");
        assert_eq!(s.storage.mounts[0].destination, "/t");
        assert!(s.storage.mounts[0].readonly);
        assert_eq!(s.metadata.labels["a"], "b");
        assert_eq!(s.logging.driver, LogDriver::K8sFile);
        s.validate().unwrap();
        // Written back, it reads as the current format, unchanged.
        let text = serde_json::to_string(&s).unwrap();
        assert_eq!(from_stored(&text).unwrap(), (s, false));
    }

    /// Every old field, set, written as the old code wrote it (serde of
    /// the old struct), lands in its place in the spec.
    #[test]
    fn every_old_field_lands_in_the_spec() {
        let old = ContainerConfig {
            args: vec!["a".into()],
            entrypoint: Some(vec![]),
            env: vec!["K=V".into()],
            workdir: Some("/w".into()),
            user: Some("1:2".into()),
            group_add: vec!["wheel".into()],
            hostname: Some("h".into()),
            tty: true,
            interactive: true,
            read_only: true,
            cap_add: vec!["NET_ADMIN".into()],
            cap_drop: vec!["CHOWN".into()],
            seccomp_profile: Some("{}".into()),
            no_new_privileges: true,
            memory: Some(64 << 20),
            memory_swap: Some(-1),
            cpus: Some(0.5),
            cpu_shares: Some(512),
            cpuset_cpus: Some("0".into()),
            pids_limit: Some(10),
            memory_reservation: Some(32 << 20),
            cpuset_mems: Some("0".into()),
            oom_score_adj: Some(5),
            device_cgroup_rules: vec!["a *:* m".into()],
            cgroup_parent: Some("/svc".into()),
            dns: vec!["10.0.0.1".into()],
            dns_search: vec!["example".into()],
            dns_options: vec!["ndots:2".into()],
            domainname: Some("d".into()),
            memory_swappiness: Some(10),
            oom_kill_disable: true,
            blkio_weight: Some(100),
            blkio_weight_devices: vec![("/dev/sda".into(), 200)],
            device_write_bps: vec![("/dev/sda".into(), 1)],
            device_read_iops: vec![("/dev/sda".into(), 2)],
            device_write_iops: vec![("/dev/sda".into(), 3)],
            ulimits: vec![Ulimit {
                name: "nproc".into(),
                soft: 1,
                hard: 2,
            }],
            devices: vec![DeviceMapping {
                host: "/dev/fuse".into(),
                container: "/dev/fuse".into(),
                access: "rw".into(),
            }],
            ipc: "host".into(),
            shm_size: Some(1 << 20),
            sysctls: [("kernel.msgmax".to_string(), "1".to_string())].into(),
            init: true,
            stop_signal: Some("SIGQUIT".into()),
            stop_timeout: Some(3),
            annotations: [("a".to_string(), "b".to_string())].into(),
            log_max_files: 5,
            auto_remove: true,
            detach_keys: Some("ctrl-x".into()),
            ..ContainerConfig::default()
        };
        let (s, migrated) = from_stored(&serde_json::to_string(&old).unwrap()).unwrap();
        assert!(migrated);
        let p = &s.process;
        assert_eq!(
            (&p.args, &p.entrypoint, &p.env, p.workdir.as_deref()),
            (&old.args, &old.entrypoint, &old.env, Some("/w"))
        );
        assert_eq!(
            (p.user.as_deref(), &p.groups),
            (Some("1:2"), &old.group_add)
        );
        assert!(p.tty && p.stdin && p.init);
        assert_eq!(
            (p.stop_signal.as_deref(), p.stop_timeout),
            (Some("SIGQUIT"), Some(3))
        );
        assert_eq!(p.detach_keys.as_deref(), Some("ctrl-x"));
        assert!(s.storage.read_only);
        assert_eq!(s.storage.shm_size, Some(1 << 20));
        let sec = &s.security;
        assert_eq!((&sec.cap_add, &sec.cap_drop), (&old.cap_add, &old.cap_drop));
        assert_eq!(
            sec.seccomp,
            SeccompPolicy::Profile {
                profile: "{}".into()
            }
        );
        assert!(sec.no_new_privileges);
        assert_eq!(sec.sysctls, old.sysctls);
        let r = &s.resources;
        assert_eq!(
            (r.memory, r.memory_swap, r.memory_reservation),
            (old.memory, Some(-1), old.memory_reservation)
        );
        assert_eq!(
            (r.cpus, r.cpu_shares, r.pids_limit),
            (Some(0.5), Some(512), Some(10))
        );
        assert_eq!(
            (r.cpuset_cpus.as_deref(), r.cpuset_mems.as_deref()),
            (Some("0"), Some("0"))
        );
        assert_eq!(
            (r.oom_score_adj, r.memory_swappiness, r.oom_kill_disable),
            (Some(5), Some(10), true)
        );
        assert_eq!(r.device_cgroup_rules[0].to_string(), "a *:* m");
        assert_eq!(r.cgroup_parent.as_deref(), Some("/svc"));
        assert_eq!(r.blkio_weight, Some(100));
        let v = |d: &[DeviceRate]| d.iter().map(|d| d.value).collect::<Vec<_>>();
        assert_eq!(
            (
                v(&r.blkio_weight_devices),
                v(&r.device_write_bps),
                v(&r.device_read_iops),
                v(&r.device_write_iops)
            ),
            (vec![200], vec![1], vec![2], vec![3])
        );
        assert_eq!((&r.ulimits, &r.devices), (&old.ulimits, &old.devices));
        assert!(s.namespaces.ipc.is_host());
        let n = &s.network;
        assert_eq!(
            (n.hostname.as_deref(), n.domainname.as_deref()),
            (Some("h"), Some("d"))
        );
        assert_eq!(
            (&n.dns, &n.dns_search, &n.dns_options),
            (&old.dns, &old.dns_search, &old.dns_options)
        );
        assert!(s.lifecycle.auto_remove);
        assert_eq!(s.logging.max_files, 5);
        assert_eq!(s.metadata.annotations, old.annotations);
    }

    #[test]
    fn damaged_rows_are_errors_not_defaults() {
        for bad in [
            "[]",
            "nonsense",
            r#"{"process":{"args":"not a list"}}"#,
            r#"{"process":{},"namespaces":{"pid":"sideways"}}"#,
            r#"{"args":"not a list"}"#,
            r#"{"pid":"sideways"}"#,
            r#"{"restart":"sometimes"}"#,
        ] {
            assert!(from_stored(bad).is_err(), "{bad}");
        }
        // An empty object is an old row of defaults (every row has fields).
        let (s, migrated) = from_stored("{}").unwrap();
        assert!(migrated);
        assert_eq!(s.process, ContainerSpec::default().process);
    }
}
