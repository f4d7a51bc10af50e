use super::*;
use crate::specgen::NamespaceMode;

fn img() -> ImageConfig {
    ImageConfig {
        entrypoint: Some(vec!["/entry".into()]),
        cmd: Some(vec!["serve".into(), "--port=80".into()]),
        env: vec!["PATH=/opt/bin:/bin".into(), "LANG=C.UTF-8".into()],
        working_dir: Some("/srv".into()),
        ..Default::default()
    }
}

/// A spec and what the engine resolved for it, as `build` takes them.
#[derive(Clone, Debug, Default)]
struct O {
    cs: ContainerSpec,
    h: Resolved,
}

fn opts() -> O {
    O {
        cs: ContainerSpec::default(),
        h: Resolved {
            hostname: "c1".into(),
            rootfs: "/var/lib/berth/containers/c1/rootfs".into(),
            cgroups_path: "/berth/c1".into(),
            cgroup_v2: true,
            ..Default::default()
        },
    }
}

fn v(spec: &Spec) -> Value {
    serde_json::to_value(spec).unwrap()
}

#[test]
fn image_config_from_json() {
    let c = ImageConfig::from_json(
        br#"{"architecture":"amd64","config":{"Entrypoint":["/bin/sh","-c"],"Cmd":null,"Env":["A=1"],
            "WorkingDir":"","User":"app:app","StopSignal":"SIGQUIT","Volumes":{"/data":{}},"Labels":{"k":"v"}}}"#,
    )
    .unwrap();
    assert_eq!(c.entrypoint.unwrap(), ["/bin/sh", "-c"]);
    assert_eq!(c.cmd, None);
    assert_eq!(c.working_dir, None);
    assert_eq!(c.user.as_deref(), Some("app:app"));
    assert_eq!(c.stop_signal.as_deref(), Some("SIGQUIT"));
    assert_eq!(c.volumes, ["/data"]);
    assert_eq!(c.labels["k"], "v");
    assert!(ImageConfig::from_json(br#"{"config":{"Cmd":"not a list"}}"#).is_err());
    assert!(ImageConfig::from_json(b"[").is_err());
    assert_eq!(
        ImageConfig::from_json(b"{}").unwrap(),
        ImageConfig::default()
    );
}

#[test]
fn command_like_docker() {
    let mut o = opts();
    assert_eq!(
        command(&img(), &o.cs, &o.h).unwrap(),
        ["/entry", "serve", "--port=80"]
    );
    o.cs.process.args = vec!["debug".into()];
    assert_eq!(command(&img(), &o.cs, &o.h).unwrap(), ["/entry", "debug"]);
    o.cs.process.entrypoint = Some(vec!["/bin/sh".into()]);
    assert_eq!(command(&img(), &o.cs, &o.h).unwrap(), ["/bin/sh", "debug"]);
    o.cs.process.args.clear();
    // --entrypoint drops the image's Cmd.
    assert_eq!(command(&img(), &o.cs, &o.h).unwrap(), ["/bin/sh"]);
    o.cs.process.entrypoint = Some(vec![]);
    assert!(command(&img(), &o.cs, &o.h)
        .unwrap_err()
        .to_string()
        .contains("no Entrypoint or Cmd"));
    let mut o = opts();
    o.h.init = Some("/usr/libexec/berth/init".into());
    assert_eq!(
        command(&img(), &o.cs, &o.h).unwrap()[..3],
        [INIT_PATH, "--", "/entry"]
    );
}

#[test]
fn environment_like_docker() {
    let user = User {
        home: "/home/app".into(),
        ..Default::default()
    };
    let mut o = opts();
    o.cs.process.env = vec!["LANG=de_DE.UTF-8".into(), "EXTRA=a=b".into()];
    o.cs.process.tty = true;
    let env = environment(&img().env, &o.cs, &o.h, &user).unwrap();
    assert_eq!(
        env,
        [
            "PATH=/opt/bin:/bin",
            "LANG=de_DE.UTF-8",
            "EXTRA=a=b",
            "HOSTNAME=c1",
            "HOME=/home/app",
            "TERM=xterm"
        ]
    );
    let env = environment(&[], &opts().cs, &opts().h, &user).unwrap();
    assert_eq!(env[0], DEFAULT_PATH);
    for bad in ["=x", "NOVALUE", "A\0=b"] {
        let mut o = opts();
        o.cs.process.env = vec![bad.into()];
        assert!(environment(&[], &o.cs, &o.h, &user).is_err(), "{bad:?}");
    }
}

#[test]
fn environment_is_linear_in_its_entries() {
    // 60,000 variables (each given twice) took minutes when each one
    // searched the list before it.
    let n = 60_000;
    let mut o = opts();
    o.cs.process.env = (0..n)
        .map(|i| format!("V{i}=a"))
        .chain((0..n).map(|i| format!("V{i}=b")))
        .collect();
    o.cs.process.env.push("V7=last".into());
    let t = std::time::Instant::now();
    let env = environment(&[], &o.cs, &o.h, &User::default()).unwrap();
    let took = t.elapsed();
    assert!(took < std::time::Duration::from_secs(2), "{took:?}");
    assert_eq!(env.len(), n + 3, "PATH and HOME added, every key once");
    assert_eq!(env[1], "V0=b");
    assert_eq!(
        env[n], "V7=last",
        "a key given again moves to its last place"
    );
}

#[test]
fn capabilities_like_docker() {
    let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
    assert_eq!(capabilities(false, &[], &[]).unwrap(), DEFAULT_CAPS);
    let c = capabilities(false, &s(&["sys_admin"]), &s(&["NET_RAW", "CAP_MKNOD"])).unwrap();
    assert!(c.contains(&"CAP_SYS_ADMIN".to_string()));
    assert!(!c.contains(&"CAP_NET_RAW".to_string()) && !c.contains(&"CAP_MKNOD".to_string()));
    assert_eq!(
        capabilities(false, &s(&["CHOWN"]), &s(&["ALL"])).unwrap(),
        ["CAP_CHOWN"]
    );
    let all = capabilities(false, &s(&["ALL"]), &s(&["SYS_ADMIN"])).unwrap();
    assert_eq!(all.len(), ALL_CAPS.len() - 1);
    assert_eq!(
        capabilities(true, &[], &s(&["ALL"])).unwrap().len(),
        ALL_CAPS.len()
    );
    assert!(capabilities(false, &s(&["CAP_FLY"]), &[])
        .unwrap_err()
        .to_string()
        .contains("CAP_FLY"));
}

#[test]
fn the_default_spec() {
    let user = User {
        uid: 1000,
        gid: 1000,
        additional_gids: vec![10],
        home: "/home/app".into(),
    };
    let spec = generate(&img(), &user, &opts().cs, &opts().h).unwrap();
    let j = v(&spec);
    assert_eq!(j["process"]["args"][0], "/entry");
    assert_eq!(j["process"]["cwd"], "/srv");
    assert_eq!(j["process"]["user"]["uid"], 1000);
    assert_eq!(j["process"]["user"]["additionalGids"][0], 10);
    assert_eq!(
        j["process"]["capabilities"]["bounding"]
            .as_array()
            .unwrap()
            .len(),
        14
    );
    assert!(j["process"]["capabilities"]
        .get("inheritable")
        .is_none_or(|x| x.is_null()));
    assert_eq!(j["process"]["rlimits"][0]["type"], "RLIMIT_NOFILE");
    assert_eq!(j["hostname"], "c1");
    assert_eq!(j["root"]["readonly"], false);
    let ns: Vec<&str> = j["linux"]["namespaces"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["type"].as_str().unwrap())
        .collect();
    assert_eq!(ns, ["pid", "ipc", "uts", "mount", "cgroup", "network"]);
    assert_eq!(
        j["linux"]["maskedPaths"].as_array().unwrap().len(),
        MASKED_PATHS.len()
    );
    assert_eq!(j["linux"]["readonlyPaths"][3], "/proc/sys");
    assert_eq!(j["linux"]["resources"]["devices"][0]["allow"], false);
    assert_eq!(j["linux"]["cgroupsPath"], "/berth/c1");
    assert!(
        j["linux"].get("seccomp").is_none_or(|x| x.is_null()),
        "unconfined by default in RunOptions"
    );
    let dests: Vec<&str> = j["mounts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["destination"].as_str().unwrap())
        .collect();
    assert_eq!(
        dests,
        [
            "/proc",
            "/dev",
            "/dev/pts",
            "/sys",
            "/sys/fs/cgroup",
            "/dev/mqueue",
            "/dev/shm"
        ]
    );
    // Pure: the same inputs, the same spec (capability sets compare as sets).
    assert_eq!(
        generate(&img(), &user, &opts().cs, &opts().h).unwrap(),
        spec
    );
}

#[test]
fn host_network_privileged_and_read_only() {
    let mut o = opts();
    o.cs.namespaces.net = NamespaceMode::Host;
    o.cs.security.privileged = true;
    o.cs.storage.read_only = true;
    o.h.seccomp = Seccomp::Default {
        profile: br#"{"defaultAction":"SCMP_ACT_ERRNO","syscalls":[]}"#.to_vec(),
        kernel: (6, 1),
    };
    let j = v(&generate(&img(), &User::default(), &o.cs, &o.h).unwrap());
    assert!(!j["linux"]["namespaces"]
        .as_array()
        .unwrap()
        .iter()
        .any(|n| n["type"] == "network"));
    assert!(j["linux"].get("maskedPaths").is_none_or(|x| x.is_null()));
    assert!(
        j["linux"].get("seccomp").is_none_or(|x| x.is_null()),
        "privileged: no seccomp"
    );
    assert_eq!(j["linux"]["resources"]["devices"][0]["allow"], true);
    assert_eq!(
        j["process"]["capabilities"]["bounding"]
            .as_array()
            .unwrap()
            .len(),
        ALL_CAPS.len()
    );
    assert_eq!(j["root"]["readonly"], true);
}

#[test]
fn seccomp_follows_the_capabilities() {
    let profile = br#"{"defaultAction":"SCMP_ACT_ERRNO","defaultErrnoRet":1,"syscalls":[
        {"names":["read"],"action":"SCMP_ACT_ALLOW"},
        {"names":["bpf"],"action":"SCMP_ACT_ALLOW","includes":{"caps":["CAP_SYS_ADMIN"]}}]}"#;
    let mut o = opts();
    o.h.seccomp = Seccomp::Default {
        profile: profile.to_vec(),
        kernel: (6, 1),
    };
    let j = v(&generate(&img(), &User::default(), &o.cs, &o.h).unwrap());
    assert_eq!(
        j["linux"]["seccomp"]["syscalls"].as_array().unwrap().len(),
        1
    );
    o.cs.security.cap_add = vec!["SYS_ADMIN".into()];
    let j = v(&generate(&img(), &User::default(), &o.cs, &o.h).unwrap());
    assert_eq!(
        j["linux"]["seccomp"]["syscalls"].as_array().unwrap().len(),
        2
    );
}

#[test]
fn the_bundle_text_is_the_spec_and_check_agrees() {
    let mut privileged = opts();
    privileged.cs.security.privileged = true;
    let mut limited = opts();
    limited.cs.resources.memory = Some(64 << 20);
    limited.cs.storage.read_only = true;
    limited.cs.process.tty = true;
    let mut bad = opts();
    bad.h.hostname = "a/b".into();
    for o in [opts(), privileged, limited] {
        let spec = generate(&img(), &User::default(), &o.cs, &o.h).unwrap();
        let text = generate_json(&img(), &User::default(), &o.cs, &o.h).unwrap();
        assert_eq!(serde_json::from_slice::<Spec>(&text).unwrap(), spec);
        check(&img(), &User::default(), &o.cs, &o.h).unwrap();
    }
    let e = check(&img(), &User::default(), &bad.cs, &bad.h).unwrap_err();
    assert!(e.to_string().contains("--hostname"), "{e}");
    assert!(generate_json(&img(), &User::default(), &bad.cs, &bad.h).is_err());
}

#[test]
fn a_converted_profile_makes_the_same_spec() {
    // The engine keeps conversions (Seccomp::Converted): the spec must be
    // the one the profile itself gives, privileged or not.
    let profile = br#"{"defaultAction":"SCMP_ACT_ERRNO","defaultErrnoRet":1,"syscalls":[
        {"names":["read"],"action":"SCMP_ACT_ALLOW"},
        {"names":["bpf"],"action":"SCMP_ACT_ALLOW","includes":{"caps":["CAP_SYS_ADMIN"]}}]}"#;
    for (cap_add, privileged) in [
        (vec![], false),
        (vec!["SYS_ADMIN".to_string()], false),
        (vec![], true),
    ] {
        let mut o = opts();
        o.cs.security.cap_add = cap_add;
        o.cs.security.privileged = privileged;
        o.h.seccomp = Seccomp::Default {
            profile: profile.to_vec(),
            kernel: (6, 1),
        };
        let from_profile = generate(&img(), &User::default(), &o.cs, &o.h).unwrap();
        let converted = berth_seccomp::profile::for_container(
            profile,
            berth_seccomp::profile::native_arch(),
            &container_capabilities(&o.cs, &o.h).unwrap(),
            (6, 1),
        )
        .unwrap();
        o.h.seccomp = Seccomp::Converted(serde_json::value::to_raw_value(&converted).unwrap());
        assert_eq!(
            generate(&img(), &User::default(), &o.cs, &o.h).unwrap(),
            from_profile
        );
        // The bundle's text, written with the profile copied in as it is,
        // is the same spec.
        let text = generate_json(&img(), &User::default(), &o.cs, &o.h).unwrap();
        assert_eq!(serde_json::from_slice::<Spec>(&text).unwrap(), from_profile);
    }
}

#[test]
fn resources_like_docker() {
    let mut o = opts();
    o.cs.resources.memory = Some(64 << 20);
    o.cs.resources.cpus = Some(1.5);
    o.cs.resources.cpu_shares = Some(512);
    o.cs.resources.cpuset_cpus = Some("0-1".into());
    o.cs.resources.pids_limit = Some(100);
    let j = v(&generate(&img(), &User::default(), &o.cs, &o.h).unwrap());
    let r = &j["linux"]["resources"];
    assert_eq!(r["memory"]["limit"], 64 << 20);
    assert_eq!(r["memory"]["swap"], 128 << 20, "as much swap as memory");
    assert_eq!(r["cpu"]["quota"], 150_000);
    assert_eq!(r["cpu"]["period"], 100_000);
    assert_eq!(r["cpu"]["shares"], 512);
    assert_eq!(r["pids"]["limit"], 100);
    o.cs.resources.memory_swap = Some(-1);
    assert_eq!(
        v(&generate(&img(), &User::default(), &o.cs, &o.h).unwrap())["linux"]["resources"]
            ["memory"]["swap"],
        -1
    );
    let bad: [fn(&mut O); 7] = [
        |o| o.cs.resources.memory = Some(1 << 20),
        |o| o.cs.resources.memory_swap = Some(1 << 20),
        |o| {
            o.cs.resources.memory = None;
            o.cs.resources.memory_swap = Some(1 << 30)
        },
        |o| o.cs.resources.cpus = Some(0.0),
        |o| o.cs.resources.cpu_shares = Some(1),
        |o| o.cs.resources.cpuset_cpus = Some("0;1".into()),
        |o| o.cs.resources.pids_limit = Some(0),
    ];
    for (i, f) in bad.iter().enumerate() {
        let mut o = o.clone();
        o.cs.resources.memory_swap = None;
        f(&mut o);
        assert!(
            generate(&img(), &User::default(), &o.cs, &o.h).is_err(),
            "case {i}"
        );
    }
}

#[test]
fn soft_limits_cfs_oom_score_and_device_rules() {
    let mut o = opts();
    o.cs.resources.memory = Some(64 << 20);
    o.cs.resources.memory_reservation = Some(32 << 20);
    o.cs.resources.cpu_period = Some(50_000);
    o.cs.resources.cpu_quota = Some(25_000);
    o.cs.resources.cpuset_mems = Some("0".into());
    o.cs.resources.oom_score_adj = Some(-500);
    o.cs.resources.device_cgroup_rules = vec![
        crate::specgen::docker::parse_device_rule("c 189:* rwm").unwrap(),
        crate::specgen::docker::parse_device_rule("a *:* r").unwrap(),
    ];
    let j = v(&generate(&img(), &User::default(), &o.cs, &o.h).unwrap());
    let r = &j["linux"]["resources"];
    assert_eq!(r["memory"]["reservation"], 32 << 20);
    assert_eq!(
        (&r["cpu"]["period"], &r["cpu"]["quota"]),
        (&json!(50_000), &json!(25_000))
    );
    assert_eq!(r["cpu"]["mems"], "0");
    assert_eq!(j["process"]["oomScoreAdj"], -500);
    let rules = r["devices"].as_array().unwrap();
    let n = rules.len();
    assert_eq!(
        rules[n - 2],
        json!({"allow": true, "type": "c", "major": 189, "access": "rwm"})
    );
    assert_eq!(rules[n - 1], json!({"allow": true, "access": "r"}));
    // A quota of -1 is no limit; a reservation alone is fine.
    let mut o2 = opts();
    o2.cs.resources.cpu_quota = Some(-1);
    o2.cs.resources.memory_reservation = Some(16 << 20);
    let j = v(&generate(&img(), &User::default(), &o2.cs, &o2.h).unwrap());
    assert_eq!(j["linux"]["resources"]["cpu"]["quota"], -1);
    assert!(j["process"].get("oomScoreAdj").is_none_or(|x| x.is_null()));

    let bad: [fn(&mut O); 8] = [
        |o| o.cs.resources.memory_reservation = Some(128 << 20),
        |o| o.cs.resources.memory_reservation = Some(1 << 20),
        |o| o.cs.resources.cpus = Some(1.0),
        |o| o.cs.resources.cpu_period = Some(999),
        |o| o.cs.resources.cpu_period = Some(2_000_000),
        |o| o.cs.resources.cpu_quota = Some(10),
        |o| o.cs.resources.cpuset_mems = Some("".into()),
        |o| o.cs.resources.oom_score_adj = Some(1001),
    ];
    for (i, f) in bad.iter().enumerate() {
        let mut o = o.clone();
        f(&mut o);
        assert!(
            generate(&img(), &User::default(), &o.cs, &o.h).is_err(),
            "case {i}"
        );
    }
}

#[test]
fn block_io_swappiness_and_the_oom_killer() {
    let mut o = opts();
    o.cs.resources.memory_swappiness = Some(10);
    o.cs.resources.oom_kill_disable = true;
    o.cs.resources.blkio_weight = Some(300);
    o.h.block_io = BlockIo {
        weight_devices: vec![(8, 0, 200)],
        read_bps: vec![(8, 0, 1 << 20)],
        write_bps: vec![(7, 3, 2 << 20)],
        read_iops: vec![(8, 16, 100)],
        write_iops: vec![(8, 16, 50)],
    };
    let j = v(&generate(&img(), &User::default(), &o.cs, &o.h).unwrap());
    let r = &j["linux"]["resources"];
    assert_eq!(r["memory"]["swappiness"], 10);
    assert_eq!(r["memory"]["disableOOMKiller"], true);
    let b = &r["blockIO"];
    assert_eq!(b["weight"], 300);
    assert_eq!(
        b["weightDevice"],
        json!([{"major": 8, "minor": 0, "weight": 200}])
    );
    assert_eq!(
        b["throttleReadBpsDevice"],
        json!([{"major": 8, "minor": 0, "rate": 1 << 20}])
    );
    assert_eq!(
        b["throttleWriteBpsDevice"],
        json!([{"major": 7, "minor": 3, "rate": 2 << 20}])
    );
    assert_eq!(
        b["throttleReadIOPSDevice"],
        json!([{"major": 8, "minor": 16, "rate": 100}])
    );
    assert_eq!(
        b["throttleWriteIOPSDevice"],
        json!([{"major": 8, "minor": 16, "rate": 50}])
    );
    // Nothing asked, nothing in the spec.
    let j = v(&generate(&img(), &User::default(), &opts().cs, &opts().h).unwrap());
    assert!(j["linux"]["resources"]
        .get("blockIO")
        .is_none_or(|x| x.is_null()));
    let bad: [fn(&mut O); 4] = [
        |o| o.cs.resources.memory_swappiness = Some(101),
        |o| o.cs.resources.blkio_weight = Some(5),
        |o| o.cs.resources.blkio_weight = Some(1001),
        |o| {
            o.cs.resources.blkio_weight_devices = vec![crate::specgen::DeviceRate {
                path: "/dev/sda".into(),
                value: 2000,
            }]
        },
    ];
    for (i, f) in bad.iter().enumerate() {
        let mut o = o.clone();
        f(&mut o);
        assert!(
            generate(&img(), &User::default(), &o.cs, &o.h).is_err(),
            "case {i}"
        );
    }
}

#[test]
fn mounts_and_limits_are_checked() {
    let mut o = opts();
    o.h.mounts = vec![
        MountSpec {
            destination: "/data/".into(),
            kind: MountKind::Bind {
                source: "/srv/data".into(),
                propagation: None,
                volume: false,
            },
            readonly: true,
        },
        MountSpec {
            destination: "/dev/shm".into(),
            kind: MountKind::Tmpfs {
                size: Some(1 << 30),
                mode: None,
                flags: vec!["exec".into()],
            },
            readonly: false,
        },
    ];
    o.cs.resources.ulimits = vec![crate::specgen::Ulimit {
        name: "nofile".into(),
        soft: 1024,
        hard: 4096,
    }];
    o.h.files = vec![("/etc/hosts".into(), "/run/berth/c1/hosts".into())];
    let j = v(&generate(&img(), &User::default(), &o.cs, &o.h).unwrap());
    let m = j["mounts"].as_array().unwrap();
    let data = m.iter().find(|m| m["destination"] == "/data").unwrap();
    assert!(data["options"]
        .as_array()
        .unwrap()
        .iter()
        .any(|x| x == "ro"));
    let shm: Vec<_> = m
        .iter()
        .filter(|m| m["destination"] == "/dev/shm")
        .collect();
    assert_eq!(shm.len(), 1, "the user's /dev/shm replaces the default");
    assert!(shm[0]["options"]
        .as_array()
        .unwrap()
        .iter()
        .any(|x| x == "size=1073741824"));
    let shm_opts = shm[0]["options"].as_array().unwrap();
    for (flag, present) in [
        ("exec", true),
        ("noexec", false),
        ("nosuid", true),
        ("nodev", true),
    ] {
        assert_eq!(
            shm_opts.iter().any(|x| x == flag),
            present,
            "{flag} in {shm_opts:?}"
        );
    }
    assert!(data["options"]
        .as_array()
        .unwrap()
        .iter()
        .any(|x| x == "rprivate"));
    assert!(j["linux"].get("rootfsPropagation").is_none());
    assert!(m.iter().any(|m| m["destination"] == "/etc/hosts"));
    assert_eq!(j["process"]["rlimits"].as_array().unwrap().len(), 1);
    assert_eq!(j["process"]["rlimits"][0]["soft"], 1024);
    // Propagation: a shared bind makes the root shared, a slave one a
    // slave root unless another bind needs it shared.
    for (props, root) in [
        (&["rslave"][..], Some("rslave")),
        (&["rshared"][..], Some("shared")),
        (&["slave", "shared"][..], Some("shared")),
        (&["rprivate"][..], None),
    ] {
        let mut o = o.clone();
        o.h.mounts.truncate(1);
        for (i, p) in props.iter().enumerate() {
            o.h.mounts.push(MountSpec {
                destination: format!("/p{i}"),
                kind: MountKind::Bind {
                    source: "/srv".into(),
                    propagation: Some(p.to_string()),
                    volume: false,
                },
                readonly: false,
            });
        }
        let j = v(&generate(&img(), &User::default(), &o.cs, &o.h).unwrap());
        assert_eq!(j["linux"]["rootfsPropagation"].as_str(), root, "{props:?}");
        let p0 = j["mounts"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["destination"] == "/p0")
            .unwrap();
        assert!(p0["options"]
            .as_array()
            .unwrap()
            .iter()
            .any(|x| x == props[0]));
    }
    let bad: [fn(&mut O); 8] = [
        |o| o.h.mounts[0].destination = "data".into(),
        |o| o.h.mounts[0].destination = "/a/../etc".into(),
        |o| o.h.mounts[0].destination = "/".into(),
        |o| o.h.mounts[1].destination = "/data".into(),
        |o| o.cs.resources.ulimits[0].name = "bogus".into(),
        |o| o.cs.resources.ulimits[0].soft = 10_000,
        |o| {
            o.h.mounts[0].kind = MountKind::Bind {
                source: "/srv".into(),
                propagation: Some("sideways".into()),
                volume: false,
            }
        },
        |o| {
            o.h.mounts[1].kind = MountKind::Tmpfs {
                size: None,
                mode: None,
                flags: vec!["mode=0".into()],
            }
        },
    ];
    for (i, f) in bad.iter().enumerate() {
        let mut o = o.clone();
        f(&mut o);
        assert!(
            generate(&img(), &User::default(), &o.cs, &o.h).is_err(),
            "case {i}"
        );
    }
    // An image's relative WorkingDir is taken from / (Docker's); a spec's
    // must be absolute.
    let mut o = opts();
    let rel = ImageConfig {
        working_dir: Some("relative/dir".into()),
        ..img()
    };
    assert_eq!(
        v(&generate(&rel, &User::default(), &o.cs, &o.h).unwrap())["process"]["cwd"],
        "/relative/dir"
    );
    o.cs.process.workdir = Some("relative/dir".into());
    assert!(generate(&img(), &User::default(), &o.cs, &o.h).is_err());
    o.cs.process.workdir = None;
    o.h.hostname = "a/b".into();
    assert!(generate(&img(), &User::default(), &o.cs, &o.h).is_err());
}

#[test]
fn capabilities_stay_within_the_bounding_set() {
    let img = ImageConfig::default();
    let mut o = opts();
    o.cs.process.args = vec!["true".into()];
    // Everything but CAP_SYS_RESOURCE (24), as on some VMs.
    o.h.cap_bound = Some(((1u64 << 41) - 1) & !(1 << 24));
    o.cs.security.privileged = true;
    let bounding = |cs: &ContainerSpec, h: &Resolved| {
        let s = generate(&img, &User::default(), cs, h).unwrap();
        s.process()
            .as_ref()
            .and_then(|p| p.capabilities().as_ref())
            .and_then(|c| c.bounding().as_ref())
            .map_or(0, |b| b.len())
    };
    assert_eq!(bounding(&o.cs, &o.h), 40);
    o.cs.security.privileged = false;
    o.cs.security.cap_add = vec!["ALL".into()];
    assert_eq!(bounding(&o.cs, &o.h), 40);
    o.cs.security.cap_add = vec!["sys_resource".into()];
    let e = generate(&img, &User::default(), &o.cs, &o.h)
        .unwrap_err()
        .to_string();
    assert!(e.contains("CAP_SYS_RESOURCE is not available"), "{e}");
    o.cs.security.cap_add = vec![];
    assert!(generate(&img, &User::default(), &o.cs, &o.h).is_ok());
}

#[test]
fn devices_shm_sysctls_and_host_namespaces() {
    let ns = |j: &Value| -> Vec<String> {
        let mut n: Vec<String> = j["linux"]["namespaces"]
            .as_array()
            .unwrap()
            .iter()
            .map(|n| n["type"].as_str().unwrap().to_string())
            .collect();
        n.sort();
        n
    };
    let shm = |j: &Value| -> Value {
        j["mounts"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["destination"] == "/dev/shm")
            .unwrap()
            .clone()
    };
    let fuse = Device {
        path: "/dev/fuse".into(),
        host: "/dev/fuse".into(),
        kind: 'c',
        major: 10,
        minor: 229,
        mode: 0o666,
        uid: 0,
        gid: 0,
        access: "rw".into(),
    };

    // The defaults: every namespace of its own, a 64 MiB /dev/shm.
    let j = v(&generate(&img(), &User::default(), &opts().cs, &opts().h).unwrap());
    assert_eq!(ns(&j), ["cgroup", "ipc", "mount", "network", "pid", "uts"]);
    assert!(shm(&j)["options"]
        .as_array()
        .unwrap()
        .contains(&json!("size=67108864")));
    assert_eq!(j["hostname"], "c1");
    assert!(j["linux"].get("devices").is_none_or(|d| d.is_null()));

    // --device: the node and a device-cgroup rule with just its access;
    // --shm-size; namespaced sysctls.
    let mut o = opts();
    o.h.devices = vec![fuse.clone()];
    o.cs.storage.shm_size = Some(1 << 20);
    o.cs.security.sysctls = [
        ("kernel.shmmax".to_string(), "1000".to_string()),
        ("net.ipv4.ip_forward".to_string(), "1".to_string()),
    ]
    .into();
    let j = v(&generate(&img(), &User::default(), &o.cs, &o.h).unwrap());
    let d = &j["linux"]["devices"][0];
    assert_eq!(
        (&d["path"], &d["type"], &d["major"], &d["minor"]),
        (&json!("/dev/fuse"), &json!("c"), &json!(10), &json!(229))
    );
    let rules = j["linux"]["resources"]["devices"].as_array().unwrap();
    assert_eq!(rules[0], json!({"allow": false, "access": "rwm"}));
    assert!(rules
        .contains(&json!({"allow": true, "type": "c", "major": 10, "minor": 229, "access": "rw"})));
    assert!(shm(&j)["options"]
        .as_array()
        .unwrap()
        .contains(&json!("size=1048576")));
    assert_eq!(j["linux"]["sysctl"]["kernel.shmmax"], "1000");
    assert_eq!(j["linux"]["sysctl"]["net.ipv4.ip_forward"], "1");

    // A device in a bad place, or of a bad kind or access, is refused.
    for bad in [
        Device {
            path: "/dev/../etc/passwd".into(),
            ..fuse.clone()
        },
        Device {
            kind: 'p',
            ..fuse.clone()
        },
        Device {
            access: "rwx".into(),
            ..fuse.clone()
        },
    ] {
        let mut o = opts();
        o.h.devices = vec![bad.clone()];
        assert!(
            generate(&img(), &User::default(), &o.cs, &o.h).is_err(),
            "{bad:?}"
        );
    }
    let mut o = opts();
    o.cs.storage.shm_size = Some(0);
    assert!(generate(&img(), &User::default(), &o.cs, &o.h).is_err());

    // The host's pid, ipc and uts namespaces: none of their own, the host's
    // /dev/shm, and no hostname (the host's stays).
    let mut o = opts();
    o.cs.namespaces.pid = NamespaceMode::Host;
    o.cs.namespaces.ipc = NamespaceMode::Host;
    o.cs.namespaces.uts = NamespaceMode::Host;
    let j = v(&generate(&img(), &User::default(), &o.cs, &o.h).unwrap());
    assert_eq!(ns(&j), ["cgroup", "mount", "network"]);
    assert_eq!(shm(&j)["type"], "bind");
    assert_eq!(shm(&j)["source"], "/dev/shm");
    assert!(j.get("hostname").is_none_or(|h| h.is_null()));

    // A joined IPC namespace's /dev/shm (a pod's, another container's):
    // bound, not a tmpfs of its own.
    let mut o = opts();
    o.cs.namespaces.ipc = NamespaceMode::Container("other".into());
    o.h.shm = Some("/run/berth/podns/i1/shm".into());
    let j = v(&generate(&img(), &User::default(), &o.cs, &o.h).unwrap());
    assert_eq!(shm(&j)["type"], "bind");
    assert_eq!(shm(&j)["source"], "/run/berth/podns/i1/shm");
    for opt in ["nosuid", "noexec", "nodev"] {
        assert!(
            shm(&j)["options"].as_array().unwrap().contains(&json!(opt)),
            "{opt}"
        );
    }

    // Sysctls: only namespaced ones, and only in a namespace of its own.
    let refused = |k: &str, host_ns: [bool; 2], network: NamespaceMode| {
        let mut o = opts();
        let mode = |h: bool| {
            if h {
                NamespaceMode::Host
            } else {
                NamespaceMode::Private
            }
        };
        o.cs.namespaces.uts = mode(host_ns[0]);
        o.cs.namespaces.ipc = mode(host_ns[1]);
        o.cs.namespaces.net = network;
        o.cs.security.sysctls = [(k.to_string(), "1".to_string())].into();
        let e = generate(&img(), &User::default(), &o.cs, &o.h).unwrap_err();
        assert!(e.to_string().contains(k), "{e}");
    };
    let own = [false, false];
    refused("kernel.panic", own, NamespaceMode::Private);
    refused("vm.overcommit_memory", own, NamespaceMode::Private);
    refused("kernel.shm../../x", own, NamespaceMode::Private);
    refused("net.ipv4.ip_forward", own, NamespaceMode::Host);
    refused("kernel.domainname", [true, false], NamespaceMode::Private);
    refused("fs.mqueue.msg_max", [false, true], NamespaceMode::Private);
}

#[test]
fn domain_name_in_the_containers_own_uts_namespace_only() {
    let mut o = opts();
    o.cs.network.domainname = Some("corp.example".into());
    let j = v(&generate(&img(), &User::default(), &o.cs, &o.h).unwrap());
    assert_eq!(j["domainname"], "corp.example");
    o.cs.network.domainname = Some("a b".into());
    assert!(generate(&img(), &User::default(), &o.cs, &o.h).is_err());
    o.cs.network.domainname = Some("corp.example".into());
    o.cs.namespaces.uts = NamespaceMode::Host;
    // The host's UTS namespace has the host's names: refused, not ignored.
    let e = generate(&img(), &User::default(), &o.cs, &o.h).unwrap_err();
    assert!(e.to_string().contains("network.domainname"), "{e}");
    o.cs.network.domainname = None;
    let j = v(&generate(&img(), &User::default(), &o.cs, &o.h).unwrap());
    assert!(j.get("domainname").is_none_or(|d| d.is_null()));
}

#[test]
fn cgroup_namespace_as_asked_else_dockers_default_for_the_host() {
    let has_cgroup_ns = |o: &O| {
        let j = v(&generate(&img(), &User::default(), &o.cs, &o.h).unwrap());
        j["linux"]["namespaces"]
            .as_array()
            .unwrap()
            .iter()
            .any(|n| n["type"] == "cgroup")
    };
    let mut o = opts();
    // Not asked: its own on cgroup v2, the host's on v1.
    o.h.cgroup_v2 = true;
    assert!(has_cgroup_ns(&o));
    o.h.cgroup_v2 = false;
    assert!(!has_cgroup_ns(&o));
    o.cs.namespaces.cgroup = Some(NamespaceMode::Private);
    assert!(has_cgroup_ns(&o));
    o.h.cgroup_v2 = true;
    o.cs.namespaces.cgroup = Some(NamespaceMode::Host);
    assert!(!has_cgroup_ns(&o));
    o.cs.namespaces.cgroup = Some(NamespaceMode::Container("x".into()));
    assert!(generate(&img(), &User::default(), &o.cs, &o.h).is_err());
}

#[test]
fn annotations_go_into_the_spec() {
    let mut o = opts();
    o.cs.metadata.annotations = [
        ("com.example.team".to_string(), "storage".to_string()),
        // berth's own business, and empty values: left out.
        (
            "org.opencontainers.image.stopSignal".to_string(),
            "SIGQUIT".to_string(),
        ),
        ("com.example.empty".to_string(), String::new()),
    ]
    .into();
    let j = v(&generate(&img(), &User::default(), &o.cs, &o.h).unwrap());
    assert_eq!(
        j["annotations"],
        serde_json::json!({"com.example.team": "storage"})
    );
}

#[test]
fn cdi_edits_go_into_the_spec() {
    use crate::cdi::{DeviceNode, Edits, Hook, HookStage, Mount};
    let mut o = opts();
    o.cs.process.env = vec!["A=mine".into(), "B=kept".into()];
    o.cs.storage.mounts = vec![crate::specgen::Mount {
        source: "/srv".into(),
        destination: "/opt/x/y".into(),
        ..Default::default()
    }];
    o.h.mounts = vec![MountSpec {
        destination: "/opt/x/y".into(),
        kind: MountKind::Bind {
            source: "/srv".into(),
            propagation: None,
            volume: false,
        },
        readonly: false,
    }];
    let node = |path: &str, uid: Option<u32>| DeviceNode {
        path: path.into(),
        host_path: "/dev/null".into(),
        kind: 'c',
        major: 1,
        minor: 3,
        file_mode: Some(0o666),
        uid,
        gid: None,
        access: "rw".into(),
    };
    o.h.cdi = Edits {
        devices: vec!["example.com/dev=a".into()],
        env: vec!["A=cdi".into(), "C=new".into()],
        device_nodes: vec![node("/dev/a", None), node("/dev/b", Some(7))],
        mounts: vec![Mount {
            host_path: "/lib/vendor".into(),
            container_path: "/opt".into(),
            kind: String::new(),
            options: vec!["ro".into()],
        }],
        hooks: vec![
            Hook {
                stage: HookStage::CreateContainer,
                path: "/usr/bin/hook".into(),
                args: vec!["hook".into(), "x".into()],
                env: vec![],
                timeout: Some(5),
            },
            Hook {
                stage: HookStage::Poststop,
                path: "/usr/bin/down".into(),
                args: vec![],
                env: vec!["K=V".into()],
                timeout: None,
            },
        ],
        additional_gids: vec![44, 10],
        notes: vec![],
    };
    let user = User {
        uid: 1000,
        gid: 1001,
        additional_gids: vec![10],
        ..Default::default()
    };
    let s = v(&generate(&img(), &user, &o.cs, &o.h).unwrap());
    let env: Vec<&str> = s["process"]["env"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e.as_str().unwrap())
        .collect();
    assert!(
        env.contains(&"A=cdi") && !env.contains(&"A=mine"),
        "{env:?}"
    );
    assert!(env.contains(&"B=kept") && env.contains(&"C=new"), "{env:?}");
    // Nodes: owned by the container's user unless the spec says.
    let devs = s["linux"]["devices"].as_array().unwrap();
    assert_eq!(devs.len(), 2);
    assert_eq!(
        (&devs[0]["path"], &devs[0]["uid"], &devs[0]["gid"]),
        (&json!("/dev/a"), &json!(1000), &json!(1001))
    );
    assert_eq!(devs[1]["uid"], 7);
    assert_eq!(devs[1]["fileMode"], 0o666);
    // ...and allowed in the device cgroup with their access.
    let rules = s["linux"]["resources"]["devices"].as_array().unwrap();
    assert!(rules
        .contains(&json!({"allow": true, "type": "c", "major": 1, "minor": 3, "access": "rw"})));
    // The mount: a bind, ordered before the deeper user mount under it.
    let dests: Vec<&str> = s["mounts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["destination"].as_str().unwrap())
        .collect();
    let at = |d: &str| dests.iter().position(|x| *x == d).unwrap();
    assert!(at("/opt") < at("/opt/x/y"), "{dests:?}");
    assert!(at("/dev") < at("/dev/pts"), "{dests:?}");
    let m = &s["mounts"][at("/opt")];
    assert_eq!(m["type"], "bind");
    assert_eq!(m["options"], json!(["ro", "rbind"]));
    assert_eq!(
        s["hooks"]["createContainer"],
        json!([{"path": "/usr/bin/hook", "args": ["hook", "x"], "timeout": 5}])
    );
    assert_eq!(
        s["hooks"]["poststop"],
        json!([{"path": "/usr/bin/down", "env": ["K=V"]}])
    );
    assert_eq!(s["process"]["user"]["additionalGids"], json!([10, 44]));

    // Privileged: every device is allowed already, no rule added.
    let mut p = o.clone();
    p.cs.security.privileged = true;
    let s = v(&generate(&img(), &user, &p.cs, &p.h).unwrap());
    assert_eq!(
        s["linux"]["resources"]["devices"].as_array().unwrap().len(),
        1
    );

    // Edits that would escape are refused, not written.
    let mut bad = o.clone();
    bad.h.cdi.mounts[0].container_path = "/opt/../etc".into();
    assert!(generate(&img(), &user, &bad.cs, &bad.h).is_err());
    let mut bad = o.clone();
    bad.h.cdi.device_nodes[0].access = "rwx".into();
    assert!(generate(&img(), &user, &bad.cs, &bad.h).is_err());
    let mut bad = o;
    bad.h.cdi.hooks[0].path = "hook".into();
    assert!(generate(&img(), &user, &bad.cs, &bad.h).is_err());
}

/// `--userns`: the maps picked at create make a user namespace with
/// `linux.uidMappings`/`gidMappings`, and every bind (volumes, host paths)
/// is idmapped with them; the files the engine wrote are not.
#[test]
fn a_user_namespace_has_the_records_maps_and_idmapped_binds() {
    use crate::userns::{IdMap, Userns, UsernsMode};
    let mut o = opts();
    let map = |h| {
        vec![IdMap {
            container_id: 0,
            host_id: h,
            size: 65536,
        }]
    };
    o.cs.namespaces.user = UsernsMode::Auto { size: None };
    o.cs.namespaces.user_maps = Some(Userns {
        uids: map(300000),
        gids: map(400000),
    });
    o.h.mounts = vec![
        MountSpec {
            destination: "/data".into(),
            kind: MountKind::Bind {
                source: "/var/lib/berth/volumes/v/_data".into(),
                propagation: None,
                volume: true,
            },
            readonly: false,
        },
        MountSpec {
            destination: "/host".into(),
            kind: MountKind::Bind {
                source: "/srv/share".into(),
                propagation: None,
                volume: false,
            },
            readonly: false,
        },
    ];
    o.h.files = vec![("/etc/hosts".into(), "/run/berth/c1/hosts".into())];
    let j = v(&generate(&img(), &User::default(), &o.cs, &o.h).unwrap());
    let types: Vec<&Value> = j["linux"]["namespaces"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| &n["type"])
        .collect();
    assert!(types.contains(&&json!("user")), "{types:?}");
    assert_eq!(
        j["linux"]["uidMappings"],
        json!([{"containerID": 0, "hostID": 300000, "size": 65536}])
    );
    assert_eq!(
        j["linux"]["gidMappings"],
        json!([{"containerID": 0, "hostID": 400000, "size": 65536}])
    );
    let opts_of = |d: &str| {
        j["mounts"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["destination"] == d)
            .unwrap()["options"]
            .clone()
    };
    assert!(opts_of("/data")
        .as_array()
        .unwrap()
        .contains(&json!("idmap")));
    assert!(!opts_of("/etc/hosts")
        .as_array()
        .unwrap()
        .contains(&json!("idmap")));
    // A host path is not idmapped: container root must not own the host's
    // root-owned files there, nor make setuid-root files for the host.
    assert!(!opts_of("/host")
        .as_array()
        .unwrap()
        .contains(&json!("idmap")));

    // Without maps (host): no user namespace, no idmap.
    o.cs.namespaces.user = UsernsMode::Host;
    o.cs.namespaces.user_maps = None;
    let j = v(&generate(&img(), &User::default(), &o.cs, &o.h).unwrap());
    assert!(!j["linux"]["namespaces"]
        .as_array()
        .unwrap()
        .iter()
        .any(|n| n["type"] == "user"));
    assert!(j["linux"].get("uidMappings").is_none_or(|x| x.is_null()));
    let data = j["mounts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["destination"] == "/data")
        .unwrap()
        .clone();
    assert!(!data["options"]
        .as_array()
        .unwrap()
        .contains(&json!("idmap")));
}

/// Review M2: with a user namespace (no mknod there) a `--device` or CDI
/// node is bound from its host path, not given as `linux.devices` (which
/// the runtime binds from the host at the container's path, the wrong
/// node when they differ); the device cgroup rules stay.
#[test]
fn a_user_namespace_binds_devices_from_their_host_paths() {
    use crate::cdi::{DeviceNode, Edits};
    use crate::userns::{IdMap, Userns, UsernsMode};
    let mut o = opts();
    let map = vec![IdMap {
        container_id: 0,
        host_id: 300000,
        size: 65536,
    }];
    o.cs.namespaces.user = UsernsMode::Auto { size: None };
    o.cs.namespaces.user_maps = Some(Userns {
        uids: map.clone(),
        gids: map,
    });
    o.h.devices = vec![Device {
        path: "/dev/xvdc".into(),
        host: "/dev/sdb".into(),
        kind: 'b',
        major: 8,
        minor: 16,
        mode: 0o660,
        uid: 0,
        gid: 6,
        access: "rwm".into(),
    }];
    let node = |path: &str, kind: char| DeviceNode {
        path: path.into(),
        host_path: format!("/dev/host-{}", &path[5..]),
        kind,
        major: 195,
        minor: 0,
        file_mode: None,
        uid: None,
        gid: None,
        access: if kind == 'p' {
            String::new()
        } else {
            "rw".into()
        },
    };
    o.h.cdi = Edits {
        devices: vec!["example.com/gpu=0".into()],
        device_nodes: vec![node("/dev/gpu0", 'c'), node("/dev/pipe", 'p')],
        ..Default::default()
    };
    let j = v(&generate(&img(), &User::default(), &o.cs, &o.h).unwrap());
    let mount = |d: &str| {
        j["mounts"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["destination"] == d)
            .unwrap_or_else(|| panic!("no mount at {d}: {}", j["mounts"]))
            .clone()
    };
    assert_eq!(mount("/dev/xvdc")["source"], "/dev/sdb");
    assert_eq!(mount("/dev/xvdc")["type"], "bind");
    assert_eq!(mount("/dev/gpu0")["source"], "/dev/host-gpu0");
    let nodes: Vec<&Value> = j["linux"]["devices"]
        .as_array()
        .map(|a| a.iter().map(|d| &d["path"]).collect())
        .unwrap_or_default();
    // A fifo is made, not bound (mkfifo works in a user namespace).
    assert_eq!(nodes, [&json!("/dev/pipe")]);
    let rules = j["linux"]["resources"]["devices"].as_array().unwrap();
    assert!(rules
        .contains(&json!({"allow": true, "type": "b", "major": 8, "minor": 16, "access": "rwm"})));
    assert!(rules
        .contains(&json!({"allow": true, "type": "c", "major": 195, "minor": 0, "access": "rw"})));
    // Without a user namespace: the nodes as before.
    o.cs.namespaces.user = UsernsMode::Host;
    o.cs.namespaces.user_maps = None;
    let j = v(&generate(&img(), &User::default(), &o.cs, &o.h).unwrap());
    assert_eq!(j["linux"]["devices"][0]["path"], "/dev/xvdc");
    assert!(!j["mounts"]
        .as_array()
        .unwrap()
        .iter()
        .any(|m| m["destination"] == "/dev/xvdc"));
}

#[test]
fn joined_namespaces_are_paths_and_a_joined_uts_sets_no_name() {
    let mut o = opts();
    o.cs.namespaces.pid = NamespaceMode::Container("infra".into());
    o.cs.namespaces.uts = NamespaceMode::Container("infra".into());
    o.h.joined = vec![
        ("pid", "/proc/42/ns/pid".into()),
        ("uts", "/proc/42/ns/uts".into()),
    ];
    o.h.hostname = "podhost".into();
    let j = v(&generate(&img(), &User::default(), &o.cs, &o.h).unwrap());
    let ns = j["linux"]["namespaces"].as_array().unwrap();
    let path = |t: &str| {
        ns.iter()
            .find(|n| n["type"] == t)
            .map(|n| n["path"].clone())
            .unwrap_or_else(|| panic!("no {t} namespace: {ns:?}"))
    };
    assert_eq!(path("pid"), "/proc/42/ns/pid");
    assert_eq!(path("uts"), "/proc/42/ns/uts");
    assert_eq!(path("ipc"), Value::Null);
    assert_eq!(j["hostname"], Value::Null, "{}", j["hostname"]);
    // Its own uts: its name is set.
    o.h.joined.pop();
    o.cs.namespaces.uts = NamespaceMode::Private;
    let j = v(&generate(&img(), &User::default(), &o.cs, &o.h).unwrap());
    assert_eq!(j["hostname"], "podhost");
}
