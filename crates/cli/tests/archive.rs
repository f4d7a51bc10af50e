//! `save` and `load`, both formats, against skopeo and podman from
//! Debian: what berth writes they read, and what they write berth loads.

mod common;
use common::*;
use std::path::Path;
use std::process::Command;

fn tool(bin: &str) -> String {
    let p = format!("/usr/bin/{bin}");
    assert!(
        Path::new(&p).exists(),
        "{p} is missing: apt-get install {bin}"
    );
    p
}

fn run(cmd: &mut Command) -> String {
    let o = cmd.output().expect("spawn");
    assert!(
        o.status.success(),
        "{:?}: {}",
        cmd,
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn skopeo_inspect(transport: &str) -> serde_json::Value {
    let out = run(Command::new(tool("skopeo")).args(["inspect", "--config", transport]));
    serde_json::from_str(&out).unwrap()
}

fn pulled(env: &Env, repo: &str) -> (Pushed, String) {
    let p = push_image(repo, "v", &[base_layer(), top_layer()], Comp::Gzip, "amd64");
    let name = format!("{}/{repo}:v", registry().addr);
    env.berth(&["pull", "-q", &name]).ok();
    (p, name)
}

#[test]
fn docker_archive_round_trip_and_skopeo_reads_it() {
    let env = Env::new();
    let (p, name) = pulled(&env, "t/save-d");
    let file = env.root.path().join("d.tar");
    env.berth(&["save", "-o", file.to_str().unwrap(), &name])
        .ok();
    let cfg = skopeo_inspect(&format!("docker-archive:{}", file.display()));
    assert_eq!(cfg["rootfs"]["diff_ids"][1], p.diff_ids[1].to_string());
    let env2 = Env::new();
    let o = env2.berth(&["load", "-i", file.to_str().unwrap()]).ok();
    assert!(
        o.stdout.contains(&format!("Loaded image: {name}")),
        "{}",
        o.stdout
    );
    let imgs = env2.images_json();
    assert_eq!(imgs[0]["Id"], p.config.to_string());
    // The layers are complete: the top layer's whiteout and file.
    let i = env2.berth(&["image", "inspect", &name]).ok();
    let v: serde_json::Value = serde_json::from_str(&i.stdout).unwrap();
    let top = v[0]["GraphDriver"]["Data"]["LowerDir"]
        .as_str()
        .unwrap()
        .split(':')
        .next()
        .unwrap()
        .to_string();
    assert!(Path::new(&top).join("hello").is_file());
    // From stdin too.
    let env3 = Env::new();
    let o = env3
        .cmd()
        .args(["load", "-q"])
        .stdin(std::fs::File::open(&file).unwrap())
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(
        String::from_utf8_lossy(&o.stdout).trim(),
        p.config.to_string()
    );
}

#[test]
fn oci_archive_keeps_the_manifest_digest() {
    let env = Env::new();
    let (p, name) = pulled(&env, "t/save-o");
    let file = env.root.path().join("o.tar");
    env.berth(&[
        "save",
        "--format",
        "oci-archive",
        "-o",
        file.to_str().unwrap(),
        &name,
    ])
    .ok();
    let raw = run(Command::new(tool("skopeo")).args([
        "inspect",
        "--raw",
        &format!("oci-archive:{}", file.display()),
    ]));
    assert_eq!(
        berth_image::Digest::of(raw.as_bytes()),
        p.manifest,
        "skopeo sees another manifest"
    );
    let env2 = Env::new();
    env2.berth(&["load", "-i", file.to_str().unwrap()]).ok();
    let imgs = env2.images_json();
    assert_eq!(imgs[0]["Id"], p.config.to_string());
    assert_eq!(imgs[0]["Digest"], p.manifest.to_string());
    assert_eq!(imgs[0]["Names"][0], name);
}

#[test]
fn loads_what_skopeo_writes() {
    let p = push_image(
        "t/from-skopeo",
        "v",
        &[base_layer(), top_layer()],
        Comp::Gzip,
        "amd64",
    );
    let src = format!("docker://{}/t/from-skopeo:v", registry().addr);
    let dir = tempfile::tempdir().unwrap();
    for (transport, file) in [("docker-archive", "s-d.tar"), ("oci-archive", "s-o.tar")] {
        let path = dir.path().join(file);
        run(Command::new(tool("skopeo")).args([
            "copy",
            "--quiet",
            "--src-tls-verify=false",
            &src,
            &format!("{transport}:{}:localhost/from-skopeo:v", path.display()),
        ]));
        let env = Env::new();
        env.berth(&["load", "-i", path.to_str().unwrap()]).ok();
        let imgs = env.images_json();
        assert_eq!(imgs[0]["Id"], p.config.to_string(), "{transport}");
        assert_eq!(
            std::fs::read_dir(env.layers_dir()).unwrap().count(),
            2,
            "{transport}"
        );
    }
}

#[test]
fn podman_loads_what_berth_saves() {
    let env = Env::new();
    let (p, name) = pulled(&env, "t/to-podman");
    let file = env.root.path().join("p.tar");
    env.berth(&["save", "-o", file.to_str().unwrap(), &name])
        .ok();
    let proot = tempfile::tempdir().unwrap();
    let podman = |args: &[&str]| {
        let mut c = Command::new(tool("podman"));
        c.args([
            "--root",
            proot.path().join("root").to_str().unwrap(),
            "--runroot",
            proot.path().join("run").to_str().unwrap(),
            "--storage-driver",
            "vfs",
        ])
        .args(args);
        run(&mut c)
    };
    podman(&["load", "-q", "-i", file.to_str().unwrap()]);
    let out = podman(&[
        "images",
        "--no-trunc",
        "--format",
        "{{.ID}} {{.Repository}}:{{.Tag}}",
    ]);
    assert!(out.contains(p.config.hex()), "{out}");
    assert!(out.contains(&name), "{out}");
}

#[test]
fn import_a_rootfs_tarball_and_show_its_history() {
    let env = Env::new();
    let dir = tempfile::tempdir().unwrap();
    let rootfs = dir.path().join("rootfs");
    std::fs::create_dir_all(rootfs.join("bin")).unwrap();
    std::fs::copy(BUSYBOX, rootfs.join("bin/busybox")).unwrap();
    std::os::unix::fs::symlink("busybox", rootfs.join("bin/sh")).unwrap();
    let tgz = dir.path().join("rootfs.tar.gz");
    run(Command::new("tar")
        .arg("-czf")
        .arg(&tgz)
        .arg("-C")
        .arg(&rootfs)
        .arg("."));
    let o = env
        .berth(&["import", tgz.to_str().unwrap(), "local/imported:v1"])
        .ok();
    let id = o.stdout.trim().to_string();
    let imgs = env.images_json();
    assert_eq!(imgs[0]["Id"], id);
    assert_eq!(imgs[0]["Names"][0], "docker.io/local/imported:v1");
    let i = env.berth(&["image", "inspect", "local/imported:v1"]).ok();
    let v: serde_json::Value = serde_json::from_str(&i.stdout).unwrap();
    let layer = v[0]["GraphDriver"]["Data"]["LowerDir"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(Path::new(&layer).join("bin/busybox").is_file());
    let h = env
        .berth(&["image", "history", "local/imported:v1"])
        .ok()
        .stdout;
    assert!(
        h.starts_with("CREATED") && h.contains("berth import"),
        "{h}"
    );
    // From stdin, plain tar, no name: the same layer, a dangling image.
    let tar = dir.path().join("rootfs.tar");
    run(Command::new("tar")
        .arg("-cf")
        .arg(&tar)
        .arg("-C")
        .arg(&rootfs)
        .arg("."));
    let o = env
        .cmd()
        .args(["import", "-"])
        .stdin(std::fs::File::open(&tar).unwrap())
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(
        std::fs::read_dir(env.layers_dir()).unwrap().count(),
        1,
        "the same layer, stored once"
    );
    // Garbage is refused in one line.
    let junk = dir.path().join("junk");
    std::fs::write(&junk, vec![0x42u8; 5000]).unwrap();
    let o = env.berth(&["import", junk.to_str().unwrap()]);
    assert_ne!(o.code, 0);
    assert_eq!(o.stderr.trim().lines().count(), 1, "{}", o.stderr);
}

#[test]
fn oci_layout_directories_both_ways() {
    let env = Env::new();
    let (p, name) = pulled(&env, "t/ocidir");
    let dir = env.root.path().join("layout");
    env.berth(&[
        "save",
        "--format",
        "oci-dir",
        "-o",
        dir.to_str().unwrap(),
        &name,
    ])
    .ok();
    let raw = run(Command::new(tool("skopeo")).args([
        "inspect",
        "--raw",
        &format!("oci:{}:{name}", dir.display()),
    ]));
    assert_eq!(berth_image::Digest::of(raw.as_bytes()), p.manifest);
    let env2 = Env::new();
    env2.berth(&["load", "-i", dir.to_str().unwrap()]).ok();
    assert_eq!(env2.images_json()[0]["Digest"], p.manifest.to_string());
    // A layout skopeo wrote.
    let sdir = env.root.path().join("skopeo-layout");
    run(Command::new(tool("skopeo")).args([
        "copy",
        "--quiet",
        "--src-tls-verify=false",
        &format!("docker://{name}"),
        &format!("oci:{}:localhost/ocidir:v", sdir.display()),
    ]));
    let env3 = Env::new();
    env3.berth(&["load", "-i", sdir.to_str().unwrap()]).ok();
    let imgs = env3.images_json();
    assert_eq!(imgs[0]["Id"], p.config.to_string());
    assert_eq!(imgs[0]["Names"][0], "localhost/ocidir:v");
}

#[test]
fn berth_loads_what_podman_saves() {
    let p = push_image(
        "t/from-podman",
        "v",
        &[base_layer(), top_layer()],
        Comp::Gzip,
        "amd64",
    );
    let name = format!("{}/t/from-podman:v", registry().addr);
    let proot = tempfile::tempdir().unwrap();
    let podman = |args: &[&str]| {
        let mut c = Command::new(tool("podman"));
        c.args([
            "--root",
            proot.path().join("root").to_str().unwrap(),
            "--runroot",
            proot.path().join("run").to_str().unwrap(),
            "--storage-driver",
            "vfs",
        ])
        .args(args);
        run(&mut c)
    };
    podman(&["pull", "-q", "--tls-verify=false", &name]);
    for format in ["docker-archive", "oci-archive"] {
        let file = proot.path().join(format!("{format}.tar"));
        podman(&[
            "save",
            "-q",
            "--format",
            format,
            "-o",
            file.to_str().unwrap(),
            &name,
        ]);
        let env = Env::new();
        env.berth(&["load", "-i", file.to_str().unwrap()]).ok();
        let imgs = env.images_json();
        assert_eq!(imgs[0]["Id"], p.config.to_string(), "{format}");
        assert_eq!(
            std::fs::read_dir(env.layers_dir()).unwrap().count(),
            2,
            "{format}"
        );
    }
}
