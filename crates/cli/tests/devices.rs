//! CDI devices (`--device vendor.com/class=name`, `--gpus`) and
//! `--volumes-from`, end to end: real containers from a busybox image, CDI
//! spec files in a temporary directory (`BERTH_CDI_SPEC_DIRS`).

mod common;
use common::*;
use std::path::Path;

const APPLETS: [&str; 9] = [
    "sh", "cat", "echo", "touch", "stat", "ls", "grep", "true", "sleep",
];

fn image(env: &Env) -> &'static str {
    import_image(env, busybox_rootfs(&APPLETS).end(), "bb:latest")
}

/// `berth args...` with the CDI spec directory `dir`.
fn berth_cdi(env: &Env, dir: &Path, args: &[&str]) -> Out {
    let o = env
        .cmd()
        .env("BERTH_CDI_SPEC_DIRS", dir)
        .args(args)
        .output()
        .expect("run berth");
    Out {
        code: o.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
    }
}

/// A failure reported as an error, not a crash.
fn refused(o: &Out, words: &[&str]) {
    assert_ne!(o.code, 0, "should fail: {}", o.stdout);
    assert_ne!(o.code, 101, "a panic: {}", o.stderr);
    assert!(!o.stderr.contains("panicked"), "a panic: {}", o.stderr);
    for w in words {
        assert!(o.stderr.contains(w), "{w:?} not in: {}", o.stderr);
    }
}

fn example_spec(data: &Path, value: &str) -> String {
    format!(
        r#"{{"cdiVersion": "0.6.0", "kind": "example.com/dev",
  "devices": [{{"name": "null", "containerEdits": {{
    "env": ["CDI_TEST={value}"],
    "deviceNodes": [{{"path": "/dev/cdi-null", "hostPath": "/dev/null"}}],
    "mounts": [{{"hostPath": "{}", "containerPath": "/cdi/data", "options": ["ro", "bind"]}}]
  }}}}]}}"#,
        data.display()
    )
}

#[test]
fn cdi_device_gives_its_node_env_and_mount() {
    let env = Env::new();
    let img = image(&env);
    let cdi = tempfile::tempdir().unwrap();
    let data = tempfile::tempdir().unwrap();
    std::fs::write(data.path().join("f"), "from the host\n").unwrap();
    let spec = cdi.path().join("example.json");
    std::fs::write(&spec, example_spec(data.path(), "one")).unwrap();
    let script = "echo $CDI_TEST; cat /cdi/data/f; echo x > /dev/cdi-null && stat -c %t:%T /dev/cdi-null; touch /cdi/data/g";
    let o = berth_cdi(
        &env,
        cdi.path(),
        &[
            "run",
            "--rm",
            "--device",
            "example.com/dev=null",
            img,
            "sh",
            "-c",
            script,
        ],
    );
    assert_eq!(o.stdout, "one\nfrom the host\n1:3\n", "{}", o.stderr);
    assert_ne!(o.code, 0, "the CDI mount is read-only: touch must fail");
    assert!(!data.path().join("g").exists());

    // The edits are resolved again at start: a changed spec file counts.
    let id = berth_cdi(
        &env,
        cdi.path(),
        &[
            "create",
            "--device",
            "example.com/dev=null",
            img,
            "sh",
            "-c",
            "echo $CDI_TEST",
        ],
    )
    .ok()
    .stdout;
    std::fs::write(&spec, example_spec(data.path(), "two")).unwrap();
    let o = berth_cdi(&env, cdi.path(), &["start", "-a", id.trim()]).ok();
    assert_eq!(o.stdout, "two\n");
}

#[test]
fn cdi_names_that_do_not_resolve_fail_clearly() {
    let env = Env::new();
    let img = image(&env);
    let cdi = tempfile::tempdir().unwrap();
    let data = tempfile::tempdir().unwrap();
    std::fs::write(
        cdi.path().join("example.json"),
        example_spec(data.path(), "v"),
    )
    .unwrap();
    // Unknown device, of a known kind: what the kind has is named.
    let o = berth_cdi(
        &env,
        cdi.path(),
        &["create", "--device", "example.com/dev=nope", img, "true"],
    );
    refused(&o, &["example.com/dev=nope", "example.com/dev=null"]);
    // Not a qualified name.
    let o = berth_cdi(
        &env,
        cdi.path(),
        &["create", "--device", "example.com/d!ev=x", img, "true"],
    );
    refused(&o, &["example.com/d!ev=x"]);
    // --gpus without an NVIDIA spec.
    let o = berth_cdi(
        &env,
        cdi.path(),
        &["run", "--rm", "--gpus", "all", img, "true"],
    );
    refused(&o, &["--gpus", "nvidia.com/gpu", "nvidia-ctk cdi generate"]);
    // Nothing was recorded.
    assert_eq!(env.berth(&["ps", "-aq"]).ok().stdout, "");

    // Hostile spec files: broken JSON, a device node escaping with ..,
    // a huge file. Each is an error naming it; the good spec still works.
    std::fs::write(cdi.path().join("broken.json"), "{\"cdiVersion\": [[[[").unwrap();
    std::fs::write(
        cdi.path().join("evil.json"),
        r#"{"cdiVersion": "0.6.0", "kind": "evil.com/x", "devices": [{"name": "y",
           "containerEdits": {"deviceNodes": [{"path": "/dev/../../etc/shadow", "hostPath": "/etc/shadow"}]}}]}"#,
    )
    .unwrap();
    let huge = vec![b' '; 5 << 20];
    std::fs::write(cdi.path().join("huge.json"), huge).unwrap();
    let o = berth_cdi(
        &env,
        cdi.path(),
        &["create", "--device", "evil.com/x=y", img, "true"],
    );
    refused(&o, &["evil.com/x=y", "evil.json"]);
    let o = berth_cdi(
        &env,
        cdi.path(),
        &["create", "--device", "broken.com/x=y", img, "true"],
    );
    refused(&o, &["broken.json", "huge.json"]);
    let o = berth_cdi(
        &env,
        cdi.path(),
        &[
            "run",
            "--rm",
            "--device",
            "example.com/dev=null",
            img,
            "sh",
            "-c",
            "echo $CDI_TEST",
        ],
    )
    .ok();
    assert_eq!(o.stdout, "v\n");
    // ...and the files left out are told.
    assert!(
        o.stderr.contains("broken.json") && o.stderr.contains("left out"),
        "{}",
        o.stderr
    );
}

#[test]
fn volumes_from_shares_volumes_and_binds() {
    let env = Env::new();
    let img = image(&env);
    let host = tempfile::tempdir().unwrap();
    std::fs::write(host.path().join("hf"), "host\n").unwrap();
    let bind = format!("{}:/h", host.path().display());
    env.berth(&[
        "create",
        "--name",
        "src",
        "-v",
        "shared:/data",
        "-v",
        "/anon",
        "-v",
        &bind,
        "--tmpfs",
        "/t",
        img,
        "true",
    ])
    .ok();
    // Written through one container's copy of the mounts...
    let o = env.berth(&[
        "run",
        "--rm",
        "--volumes-from",
        "src",
        img,
        "sh",
        "-c",
        "echo d > /data/f; echo a > /anon/f; cat /h/hf; grep -c ' /t ' /proc/mounts",
    ]);
    assert_eq!(o.stdout, "host\n0\n", "no tmpfs copied: {}", o.stderr);
    // ...read by another, read-only with :ro.
    let o = env.berth(&[
        "run",
        "--rm",
        "--volumes-from",
        "src:ro",
        img,
        "sh",
        "-c",
        "cat /data/f /anon/f; touch /data/g || touch /h/g",
    ]);
    assert_eq!(o.stdout, "d\na\n", "{}", o.stderr);
    assert_ne!(o.code, 0, ":ro makes every mount read-only");
    assert!(!host.path().join("g").exists());
    // The container's own mount at a destination wins.
    let o = env
        .berth(&[
            "run",
            "--rm",
            "--volumes-from",
            "src",
            "-v",
            "other:/data",
            img,
            "sh",
            "-c",
            "ls /data; cat /anon/f",
        ])
        .ok();
    assert_eq!(o.stdout, "a\n");
    // A missing source is named.
    let o = env.berth(&["create", "--volumes-from", "nosuch", img, "true"]);
    refused(&o, &["--volumes-from", "nosuch"]);
    let o = env.berth(&["create", "--volumes-from", "src:rx", img, "true"]);
    refused(&o, &["--volumes-from", "src:rx"]);

    // The volumes are used by the new container too: with the source
    // gone, `volume rm` refuses while it exists.
    env.berth(&[
        "create",
        "--name",
        "user",
        "--volumes-from",
        "src",
        img,
        "cat",
        "/data/f",
    ])
    .ok();
    env.berth(&["rm", "src"]).ok();
    let o = env.berth(&["volume", "rm", "shared"]);
    refused(&o, &["shared"]);
    let o = env.berth(&["start", "-a", "user"]).ok();
    assert_eq!(o.stdout, "d\n");
    env.berth(&["rm", "user"]).ok();
    env.berth(&["volume", "rm", "shared"]).ok();
}
