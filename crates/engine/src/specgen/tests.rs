use super::docker::{to_spec, CreateFlags};
use super::*;

/// No network flag means the host's default network (root: bridge); the
/// tests that are not about networks say none.
fn flags() -> CreateFlags {
    CreateFlags {
        network: vec!["none".into()],
        ..CreateFlags::default()
    }
}

fn spec_of(f: &CreateFlags) -> ContainerSpec {
    to_spec(f, &["echo".into(), "hi".into()]).unwrap().0
}

fn err_of(f: &CreateFlags) -> String {
    to_spec(f, &[]).unwrap_err().to_string()
}

#[test]
fn docker_flags_make_a_grouped_spec() {
    let f = CreateFlags {
        env: vec!["A=1".into()],
        workdir: Some("/app".into()),
        memory: Some("64m".into()),
        cpus: Some(1.5),
        pid: Some("host".into()),
        network: vec!["host".into()],
        restart: Some("on-failure:3".into()),
        log_driver: Some("json-file".into()),
        volume: vec!["/tmp:/t:ro".into(), "cache:/c".into()],
        device_cgroup_rule: vec!["c 1:3 rwm".into()],
        add_host: vec!["db:10.0.0.2".into()],
        label: vec!["a=b".into()],
        annotation: vec!["com.example.k=v".into()],
        cgroupns: Some("private".into()),
        security_opt: vec!["seccomp=unconfined".into()],
        ..flags()
    };
    let s = spec_of(&f);
    assert_eq!(s.process.args, ["echo", "hi"]);
    assert_eq!(s.process.env, ["A=1"]);
    assert_eq!(s.process.workdir.as_deref(), Some("/app"));
    assert_eq!(s.resources.memory, Some(64 << 20));
    assert_eq!(s.resources.cpus, Some(1.5));
    assert_eq!(s.namespaces.pid, NamespaceMode::Host);
    assert_eq!(s.namespaces.ipc, NamespaceMode::Private);
    assert_eq!(s.namespaces.net, NamespaceMode::Host);
    assert_eq!(s.namespaces.cgroup, Some(NamespaceMode::Private));
    assert_eq!(s.lifecycle.restart, RestartPolicy::OnFailure(3));
    assert_eq!(s.logging.driver, LogDriver::JsonFile);
    assert_eq!(s.storage.mounts.len(), 2);
    assert_eq!(s.storage.mounts[1].kind, MountType::Volume);
    assert_eq!(s.resources.device_cgroup_rules[0].to_string(), "c 1:3 rwm");
    assert_eq!(s.network.extra_hosts[0].name, "db");
    assert_eq!(s.metadata.labels["a"], "b");
    assert_eq!(s.metadata.annotations["com.example.k"], "v");
    assert_eq!(s.security.seccomp, SeccompPolicy::Unconfined);
    assert_eq!(s.runtime, DEFAULT_RUNTIME);

    // No flags: Docker's defaults.
    let d = spec_of(&flags());
    assert_eq!(d.namespaces.net, NamespaceMode::Private);
    assert_eq!(d.namespaces.cgroup, None);
    assert_eq!(d.lifecycle.restart, RestartPolicy::No);
    assert_eq!(d.logging, LogSpec::default());
}

#[test]
fn the_serialised_spec_has_stable_snake_case_names() {
    let f = CreateFlags {
        cgroupns: Some("host".into()),
        restart: Some("always".into()),
        device_cgroup_rule: vec!["b 8:* r".into()],
        ..flags()
    };
    let v = serde_json::to_value(spec_of(&f)).unwrap();
    for group in [
        "process",
        "storage",
        "security",
        "resources",
        "namespaces",
        "network",
        "lifecycle",
        "logging",
        "metadata",
        "runtime",
    ] {
        assert!(v.get(group).is_some(), "{group}");
    }
    assert_eq!(v["namespaces"]["cgroup"], "host");
    assert_eq!(v["namespaces"]["pid"], "private");
    assert_eq!(v["lifecycle"]["restart"], "always");
    assert_eq!(v["resources"]["device_cgroup_rules"][0], "b 8:* r");
    assert_eq!(v["logging"]["driver"], "k8s-file");
    assert_eq!(v["security"]["seccomp"]["mode"], "default");
    // What an API client writes: only what it wants, the rest defaults.
    let s: ContainerSpec = serde_json::from_str(
        r#"{"process":{"args":["true"]},"namespaces":{"net":"host","uts":"pod:web"},
            "lifecycle":{"restart":"on-failure:2"},"security":{"seccomp":{"mode":"profile","profile":"{}"}}}"#,
    )
    .unwrap();
    assert_eq!(s.namespaces.net, NamespaceMode::Host);
    assert_eq!(s.namespaces.uts, NamespaceMode::Pod("web".into()));
    assert_eq!(s.lifecycle.restart, RestartPolicy::OnFailure(2));
    // ... and is checked as the CLI's is.
    let e = s.validate().unwrap_err().to_string();
    assert!(e.starts_with("namespaces.uts: pod:web"), "{e}");
    // A client's misspelt field is an error, not a default.
    for bad in [
        r#"{"proces":{}}"#,
        r#"{"process":{"argz":[]}}"#,
        r#"{"namespaces":{"pid":"sideways"}}"#,
        r#"{"lifecycle":{"restart":"sometimes"}}"#,
        r#"{"logging":{"driver":"syslog"}}"#,
        r#"{"resources":{"device_cgroup_rules":["c 1:3 rwm\nc *:* rwm"]}}"#,
    ] {
        assert!(
            ContainerSpec::from_request(bad.as_bytes()).is_err(),
            "{bad}"
        );
    }
}

#[test]
fn validation_names_the_field_and_the_parser_the_flag() {
    let mut s = ContainerSpec::default();
    s.resources.memory = Some(1 << 20);
    assert_eq!(
        s.validate().unwrap_err().to_string(),
        "resources.memory: the minimum is 6MB"
    );
    let f = CreateFlags {
        memory: Some("1m".into()),
        ..flags()
    };
    assert_eq!(err_of(&f), "--memory: the minimum is 6MB");
    let f = CreateFlags {
        memory: Some("64m".into()),
        memory_swap: Some("32m".into()),
        ..flags()
    };
    assert_eq!(
        err_of(&f),
        "--memory-swap: must be at least --memory (or -1 for unlimited)"
    );
    let f = CreateFlags {
        cpus: Some(1.0),
        cpu_quota: Some(5000),
        ..flags()
    };
    assert_eq!(
        err_of(&f),
        "--cpus: give either --cpus or --cpu-period/--cpu-quota, not both"
    );
    for (f, flag) in [
        (
            CreateFlags {
                cgroupns: Some("bogus".into()),
                ..flags()
            },
            "--cgroupns",
        ),
        (
            CreateFlags {
                annotation: vec!["=v".into()],
                ..flags()
            },
            "--annotation",
        ),
        (
            CreateFlags {
                pid: Some("pod:web".into()),
                ..flags()
            },
            "--pid",
        ),
        (
            CreateFlags {
                uts: Some("host".into()),
                hostname: Some("h".into()),
                ..flags()
            },
            "--hostname",
        ),
        (
            CreateFlags {
                restart: Some("always".into()),
                rm: true,
                ..flags()
            },
            "--restart",
        ),
        (
            CreateFlags {
                workdir: Some("app".into()),
                ..flags()
            },
            "--workdir",
        ),
        (
            CreateFlags {
                network: vec!["host".into(), "app".into()],
                ..flags()
            },
            "--network",
        ),
        (
            CreateFlags {
                sysctl: vec!["net.ipv4.ip_forward=1".into()],
                network: vec!["host".into()],
                ..flags()
            },
            "--sysctl",
        ),
    ] {
        let e = err_of(&f);
        assert!(e.starts_with(flag), "{flag}: {e}");
    }
}

#[test]
fn hostile_values_are_clear_errors_not_panics() {
    type Change = fn(&mut ContainerSpec);
    let checks: [(&str, Change); 28] = [
        ("process.env", |s| s.process.env = vec!["=x".into()]),
        ("process.env", |s| s.process.env = vec!["A=\0".into()]),
        ("process", |s| s.process.args = vec!["a\0b".into()]),
        ("process.workdir", |s| {
            s.process.workdir = Some("../x".into())
        }),
        ("process.stop_signal", |s| {
            s.process.stop_signal = Some("SIGNOPE".into())
        }),
        ("process.detach_keys", |s| {
            s.process.detach_keys = Some("ctrl-".into())
        }),
        ("storage.mounts", |s| {
            s.storage.mounts = vec![Mount {
                destination: "/a/../../etc".into(),
                kind: MountType::Tmpfs,
                ..Mount::default()
            }]
        }),
        ("storage.mounts", |s| {
            s.storage.mounts = vec![Mount {
                destination: "/d".into(),
                source: "rel".into(),
                ..Mount::default()
            }]
        }),
        ("storage.mounts", |s| {
            s.storage.mounts = vec![Mount {
                destination: "/d".into(),
                kind: MountType::Tmpfs,
                flags: vec!["exec,suid".into()],
                ..Mount::default()
            }]
        }),
        ("storage.shm_size", |s| s.storage.shm_size = Some(0)),
        ("resources.cpus", |s| s.resources.cpus = Some(f64::NAN)),
        ("resources.cpus", |s| s.resources.cpus = Some(f64::INFINITY)),
        ("resources.pids_limit", |s| {
            s.resources.pids_limit = Some(i64::MIN)
        }),
        ("resources.cpu_quota", |s| {
            s.resources.cpu_quota = Some(i64::MIN)
        }),
        ("resources.oom_score_adj", |s| {
            s.resources.oom_score_adj = Some(i32::MAX)
        }),
        ("resources.cpuset_cpus", |s| {
            s.resources.cpuset_cpus = Some("0\n1".into())
        }),
        ("resources.cgroup_parent", |s| {
            s.resources.cgroup_parent = Some("/a/../../b".into())
        }),
        ("resources.devices", |s| {
            s.resources.devices = vec![DeviceMapping {
                host: "/dev/null".into(),
                container: "/dev/../etc/x".into(),
                access: "rwm".into(),
            }]
        }),
        ("network.hostname", |s| {
            s.network.hostname = Some("a\nb".into())
        }),
        ("network.dns", |s| {
            s.network.dns = vec!["1.1.1.1\nnameserver 6.6.6.6".into()]
        }),
        ("security.sysctls", |s| {
            s.security.sysctls = [("kernel.panic".into(), "1".into())].into()
        }),
        ("logging.max_files", |s| s.logging.max_files = 0),
        ("logging.max_files", |s| s.logging.max_files = u32::MAX),
        ("process.workdir", |s| {
            s.process.workdir = Some("/a\0b".into())
        }),
        ("network.hostname", |s| {
            s.network.hostname = Some("a\tb".into())
        }),
        ("network.hostname", |s| {
            s.network.hostname = Some("a\rb".into())
        }),
        ("network.domainname", |s| {
            s.network.domainname = Some("a\x1bb".into())
        }),
        ("network.extra_hosts", |s| {
            s.network.extra_hosts = vec![HostEntry {
                name: "db".into(),
                address: "[::1]".into(),
            }]
        }),
    ];
    for (field, f) in checks {
        let mut s = ContainerSpec::default();
        f(&mut s);
        let e = s.validate().unwrap_err().to_string();
        assert!(e.starts_with(field), "{field}: {e}");
    }
    // A cap name that is not one, a path with a NUL: errors all the same.
    let mut s = ContainerSpec::default();
    s.security.cap_add = vec!["CAP_EVERYTHING".into()];
    assert!(s.validate().is_err());
    s = ContainerSpec::default();
    s.metadata.annotations.insert("k\n".into(), "v".into());
    assert!(s.validate().is_err());
    ContainerSpec::default().validate().unwrap();
}

#[test]
fn namespace_modes_parse_and_print_as_docker_writes_them() {
    for (text, mode) in [
        ("host", NamespaceMode::Host),
        ("private", NamespaceMode::Private),
        ("container:db", NamespaceMode::Container("db".into())),
        ("pod:web", NamespaceMode::Pod("web".into())),
        (
            "ns:/proc/1/ns/net",
            NamespaceMode::Path("/proc/1/ns/net".into()),
        ),
    ] {
        assert_eq!(NamespaceMode::parse(text), Some(mode.clone()), "{text}");
        assert_eq!(mode.to_string(), text);
    }
    for bad in ["sideways", "container:", "ns:relative", "pod:"] {
        assert_eq!(NamespaceMode::parse(bad), None, "{bad}");
    }
}

/// `--userns`/`--uidmap`/`--gidmap` into the spec's namespaces group,
/// checked and worded with the flags.
#[test]
fn userns_flags_make_the_namespaces_user_mode() {
    use crate::userns::{IdMap, Userns, UsernsMode};
    let mut f = flags();
    assert_eq!(spec_of(&f).namespaces.user, UsernsMode::Host);
    f.userns = Some("auto:size=1000".into());
    let s = spec_of(&f);
    assert_eq!(s.namespaces.user, UsernsMode::Auto { size: Some(1000) });
    assert_eq!(s.namespaces.user_maps, None, "picked at create, not here");
    assert_eq!(userns_text(&s.namespaces.user), "auto:size=1000");
    f.userns = Some("keep-id:uid=7".into());
    assert_eq!(userns_text(&spec_of(&f).namespaces.user), "keep-id:uid=7");
    f.userns = None;
    f.uidmap = vec!["0:100000:65536".into()];
    let s = spec_of(&f);
    let m = vec![IdMap {
        container_id: 0,
        host_id: 100000,
        size: 65536,
    }];
    assert_eq!(
        s.namespaces.user,
        UsernsMode::Maps {
            uids: m.clone(),
            gids: m.clone()
        }
    );
    // Stored and read back the same; a host spec stores nothing of it.
    let text = serde_json::to_string(&s).unwrap();
    assert_eq!(serde_json::from_str::<ContainerSpec>(&text).unwrap(), s);
    let host = serde_json::to_value(ContainerSpec::default()).unwrap();
    assert!(host["namespaces"].get("user").is_none(), "{host}");
    assert!(host["namespaces"].get("user_maps").is_none(), "{host}");

    // Errors name the flag.
    f.uidmap = vec!["1:100000:10".into()];
    let e = err_of(&f);
    assert!(e.contains("--userns") && e.contains("id 0"), "{e}");
    f.uidmap = vec!["0:100000:10".into()];
    f.network = vec!["host".into()];
    let e = err_of(&f);
    assert!(
        e.contains("--network") && e.contains("user namespace"),
        "{e}"
    );
    f.network = vec!["none".into()];
    f.pid = Some("host".into());
    assert!(err_of(&f).contains("--pid"));

    // Maps in a record without a mode, or without container root, are
    // refused by validation whatever made the spec.
    let mut s = ContainerSpec::default();
    s.namespaces.user_maps = Some(Userns {
        uids: m.clone(),
        gids: m.clone(),
    });
    assert!(s
        .validate()
        .unwrap_err()
        .to_string()
        .contains("namespaces.user"));
    s.namespaces.user = UsernsMode::Auto { size: None };
    s.validate().unwrap();
    let off = vec![IdMap {
        container_id: 5,
        host_id: 100000,
        size: 10,
    }];
    s.namespaces.user_maps = Some(Userns {
        uids: off.clone(),
        gids: off,
    });
    assert!(s.validate().unwrap_err().to_string().contains("id 0"));
}

#[test]
fn the_fuzzers_seed_is_a_valid_request() {
    // fuzz/fuzz_targets/spec.rs starts from it: it must reach spec::build.
    let seed = include_bytes!("../../../../fuzz/corpus/spec/container-spec.json");
    let s = ContainerSpec::from_request(seed).unwrap();
    assert_eq!(s.lifecycle.restart, RestartPolicy::OnFailure(3));
}

#[test]
fn cdi_devices_and_volumes_from_in_the_spec() {
    let f = CreateFlags {
        device: vec![
            "/dev/null:/dev/n:r".into(),
            "example.com/dev=null".into(),
            "nvidia.com/gpu=all".into(),
        ],
        volumes_from: vec!["db".into(), "cache:ro".into(), "logs:rw".into()],
        ..flags()
    };
    let s = spec_of(&f);
    assert_eq!(s.resources.devices.len(), 1);
    assert_eq!(s.resources.devices[0].container, "/dev/n");
    assert_eq!(
        s.resources.cdi_devices,
        ["example.com/dev=null", "nvidia.com/gpu=all"]
    );
    assert_eq!(s.storage.volumes_from, ["db", "cache:ro", "logs:rw"]);
    // Through the record's JSON and back.
    let back: ContainerSpec = serde_json::from_str(&serde_json::to_string(&s).unwrap()).unwrap();
    assert_eq!(back, s);

    for (d, word) in [
        ("-bad.com/dev=x", "-bad.com/dev=x"),
        ("example.com/dev=", "example.com/dev="),
        ("example.com=x", "example.com=x"),
    ] {
        let e = err_of(&CreateFlags {
            device: vec![d.into()],
            ..flags()
        });
        assert!(e.contains(word) && e.contains("CDI"), "{d}: {e}");
    }
    for v in ["", "db:rx", ":ro", "a:b:ro"] {
        let e = err_of(&CreateFlags {
            volumes_from: vec![v.into()],
            ..flags()
        });
        assert!(e.starts_with("--volumes-from"), "{v}: {e}");
    }
    // validate holds the same checks for a spec from another front end,
    // worded with the field.
    let mut s = ContainerSpec::default();
    s.resources.cdi_devices = vec!["not-a-name".into()];
    let e = s.validate().unwrap_err().to_string();
    assert!(e.starts_with("resources.cdi_devices"), "{e}");
    let mut s = ContainerSpec::default();
    s.storage.volumes_from = vec!["db:bogus".into()];
    let e = s.validate().unwrap_err().to_string();
    assert!(e.starts_with("storage.volumes_from"), "{e}");
    assert!(docker::reword(s.validate().unwrap_err())
        .to_string()
        .starts_with("--volumes-from"),);
}

#[test]
fn network_flags_make_attachments_as_docker_takes_them() {
    let s = spec_of(&CreateFlags {
        network: vec!["app".into(), "db".into()],
        network_alias: vec!["web".into()],
        mac_address: Some("02:42:AC:11:00:02".into()),
        ..flags()
    });
    assert_eq!(s.namespaces.net, NamespaceMode::Private);
    let names: Vec<&str> = s
        .network
        .networks
        .iter()
        .map(|a| a.network.as_str())
        .collect();
    assert_eq!(names, ["app", "db"]);
    assert_eq!(s.network.networks[0].aliases, ["web"]);
    assert_eq!(s.network.networks[1].aliases, ["web"]);
    assert_eq!(
        s.network.networks[0].mac.as_deref(),
        Some("02:42:ac:11:00:02")
    );
    assert_eq!(s.network.networks[1].mac, None);

    let s = spec_of(&CreateFlags {
        network: vec!["app".into()],
        ip: Some("10.89.0.7".into()),
        ip6: Some("fd00::7".into()),
        ..flags()
    });
    assert_eq!(
        s.network.networks[0].ipv4,
        Some("10.89.0.7".parse().unwrap())
    );
    assert_eq!(s.network.networks[0].ipv6, Some("fd00::7".parse().unwrap()));

    // none, host, container: and ns: are namespace modes, with no networks.
    for (v, mode) in [
        ("none", NamespaceMode::Private),
        ("host", NamespaceMode::Host),
        ("container:db", NamespaceMode::Container("db".into())),
        (
            "ns:/run/netns/x",
            NamespaceMode::Path("/run/netns/x".into()),
        ),
    ] {
        let s = spec_of(&CreateFlags {
            network: vec![v.into()],
            ..flags()
        });
        assert_eq!(s.namespaces.net, mode, "{v}");
        assert!(s.network.networks.is_empty(), "{v}");
    }
}

#[test]
fn network_flag_errors_name_the_flag() {
    for (f, flag, words) in [
        (
            CreateFlags {
                network: vec!["bridge".into()],
                ip: Some("10.88.0.9".into()),
                ..flags()
            },
            "--ip",
            "user-defined",
        ),
        (
            CreateFlags {
                network: vec!["bridge".into()],
                network_alias: vec!["x".into()],
                ..flags()
            },
            "--network-alias",
            "user-defined",
        ),
        (
            CreateFlags {
                network: vec!["app".into()],
                ip: Some("10.88.0.300".into()),
                ..flags()
            },
            "--ip",
            "not an IPv4",
        ),
        (
            CreateFlags {
                network: vec!["app".into()],
                mac_address: Some("01:00:5e:00:00:01".into()),
                ..flags()
            },
            "--mac-address",
            "unicast",
        ),
        (
            CreateFlags {
                network: vec!["none".into()],
                ip: Some("10.0.0.2".into()),
                ..flags()
            },
            "--ip",
            "bridge network",
        ),
        (
            CreateFlags {
                network: vec!["a".into(), "a".into()],
                ..flags()
            },
            "network.networks",
            "twice",
        ),
        (
            CreateFlags {
                network: vec!["a".into(), "b".into()],
                ip: Some("10.0.0.2".into()),
                ..flags()
            },
            "--ip",
            "single",
        ),
        (
            CreateFlags {
                network: vec!["pod:x".into()],
                ..flags()
            },
            "--network",
            "pod",
        ),
        (
            CreateFlags {
                add_host: vec!["gw:host-gateway".into()],
                ..flags()
            },
            "--add-host",
            "bridge network",
        ),
        // The joined container's files are this one's (Docker's refusals).
        (
            CreateFlags {
                network: vec!["container:web".into()],
                hostname: Some("h".into()),
                ..flags()
            },
            "--hostname",
            "conflicting options: hostname and the network mode",
        ),
        (
            CreateFlags {
                network: vec!["container:web".into()],
                dns: vec!["1.1.1.1".into()],
                ..flags()
            },
            "--dns",
            "conflicting options: dns and the network mode",
        ),
        (
            CreateFlags {
                network: vec!["container:web".into()],
                add_host: vec!["a:1.2.3.4".into()],
                ..flags()
            },
            "--add-host",
            "conflicting options: custom host-to-IP mapping",
        ),
        (
            CreateFlags {
                network: vec!["container:web".into()],
                expose: vec!["80".into()],
                ..flags()
            },
            "--expose",
            "conflicting options: port exposing",
        ),
    ] {
        let e = to_spec(&f, &["true".into()])
            .map(|(s, _)| s)
            .and_then(|s| s.validate().map(|_| s));
        let e = e.expect_err(flag).to_string();
        assert!(e.contains(flag) && e.contains(words), "{flag}: {e}");
    }
}

#[test]
fn mac_addresses_parse_as_docker_takes_them() {
    assert_eq!(
        crate::specgen::parse_mac("02:42:ac:11:00:02"),
        Some([2, 0x42, 0xac, 0x11, 0, 2])
    );
    for bad in [
        "",
        "02:42:ac:11:00",
        "02:42:ac:11:00:02:03",
        "0g:42:ac:11:00:02",
        "01:00:00:00:00:00",
        "2:42:ac:11:00:02",
    ] {
        assert_eq!(crate::specgen::parse_mac(bad), None, "{bad}");
    }
}

#[test]
fn pid_ipc_uts_join_another_container_and_a_pod_member_has_no_network_of_its_own() {
    let f = CreateFlags {
        pid: Some("container:web".into()),
        ipc: Some("container:web".into()),
        uts: Some("container:web".into()),
        ..flags()
    };
    let s = spec_of(&f);
    assert_eq!(s.namespaces.pid, NamespaceMode::Container("web".into()));
    assert_eq!(s.namespaces.ipc, NamespaceMode::Container("web".into()));
    assert_eq!(s.namespaces.uts, NamespaceMode::Container("web".into()));
    // Another's name is not set from here.
    let e = err_of(&CreateFlags {
        hostname: Some("h".into()),
        ..f
    });
    assert!(
        e.starts_with("--hostname") || e.contains("cannot be set"),
        "{e}"
    );
    // Docker's `--ipc shareable`: a private IPC namespace (any berth
    // container's can be joined); not a mode of the other kinds.
    let s = spec_of(&CreateFlags {
        ipc: Some("shareable".into()),
        ..flags()
    });
    assert_eq!(s.namespaces.ipc, NamespaceMode::Private);
    let e = err_of(&CreateFlags {
        pid: Some("shareable".into()),
        ..flags()
    });
    assert!(e.starts_with("--pid"), "{e}");
    // A cgroup namespace is not joined.
    let mut s = ContainerSpec::default();
    s.namespaces.cgroup = Some(NamespaceMode::Container("web".into()));
    assert!(s.validate().is_err());
    // --pod: no network of its own, the pod named in the spec.
    let s = spec_of(&CreateFlags {
        pod: Some("p".into()),
        ..CreateFlags::default()
    });
    assert_eq!(s.pod.as_deref(), Some("p"));
    assert!(s.network.networks.is_empty());
    for (f, msg) in [
        (
            CreateFlags {
                pod: Some("p".into()),
                publish: vec!["80".into()],
                ..CreateFlags::default()
            },
            "published or exposed ports must be defined when the pod is created",
        ),
        (
            CreateFlags {
                pod: Some("p".into()),
                network: vec!["bridge".into()],
                ..CreateFlags::default()
            },
            "networks must be defined when the pod is created",
        ),
    ] {
        let e = err_of(&f);
        assert!(e.contains(msg), "{e}");
    }
}

#[test]
fn host_network_discards_published_ports_and_default_is_the_bridge() {
    let (s, warnings) = to_spec(
        &CreateFlags {
            network: vec!["host".into()],
            publish: vec!["8000:80".into()],
            ..flags()
        },
        &["true".into()],
    )
    .unwrap();
    assert!(s.network.ports.is_empty());
    assert!(
        warnings
            .iter()
            .any(|w| w.contains("Published ports are discarded")),
        "{warnings:?}"
    );
    let s = spec_of(&CreateFlags {
        network: vec!["default".into()],
        ..flags()
    });
    assert_eq!(s.network.networks[0].network, "bridge");
}
