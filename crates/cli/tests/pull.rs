//! `berth pull` and the image commands against a real registry.

mod common;
use common::*;
use std::os::unix::fs::{FileTypeExt, MetadataExt};

fn chain_dirs(env: &Env) -> Vec<std::path::PathBuf> {
    let mut v: Vec<_> = std::fs::read_dir(env.layers_dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    v.sort();
    v
}

#[test]
fn pull_by_tag_unpacks_every_layer_in_overlay_form() {
    let env = Env::new();
    let p = push_image(
        "t/basic",
        "v1",
        &[base_layer(), top_layer()],
        Comp::Gzip,
        "amd64",
    );
    let reg = &registry().addr;
    let name = format!("{reg}/t/basic:v1");
    let o = env.berth(&["pull", &name]).ok();
    assert_eq!(o.stdout.trim(), p.config.to_string(), "{}", o.stderr);
    let imgs = env.images_json();
    assert_eq!(imgs[0]["Id"], p.config.to_string());
    assert_eq!(imgs[0]["Names"][0], name);
    assert_eq!(
        imgs[0]["Digests"][0],
        format!("{reg}/t/basic@{}", p.manifest)
    );
    // The layers, via inspect's overlay lowerdir (top first).
    let i = env.berth(&["image", "inspect", &name]).ok();
    let v: serde_json::Value = serde_json::from_str(&i.stdout).unwrap();
    let lower = v[0]["GraphDriver"]["Data"]["LowerDir"]
        .as_str()
        .unwrap()
        .to_string();
    let dirs: Vec<&str> = lower.split(':').collect();
    assert_eq!(dirs.len(), 2);
    let (top, base) = (std::path::Path::new(dirs[0]), std::path::Path::new(dirs[1]));
    assert!(base.join("bin/busybox").is_file());
    assert_eq!(
        std::fs::read_link(base.join("bin/sh")).unwrap().to_str(),
        Some("busybox")
    );
    let wh = std::fs::symlink_metadata(top.join("etc/motd")).unwrap();
    assert!(
        wh.file_type().is_char_device() && wh.rdev() == 0,
        "whiteout"
    );
    assert_eq!(
        std::fs::read_to_string(top.join("hello")).unwrap(),
        "hello from the top layer\n"
    );
    assert_eq!(v[0]["RootFS"]["Layers"][1], p.diff_ids[1].to_string());
    assert_eq!(v[0]["Config"]["Cmd"][0], "sh");
    // The blobs are stored and verified.
    for d in p.layers.iter().chain([&p.config, &p.manifest]) {
        let b = std::fs::read(env.root.path().join("blobs/sha256").join(d.hex())).unwrap();
        assert_eq!(berth_image::Digest::of(&b), *d);
    }
    // The table.
    let t = env.berth(&["images"]).ok().stdout;
    assert!(t.starts_with("REPOSITORY"), "{t}");
    assert!(
        t.contains(&format!("{reg}/t/basic")) && t.contains("v1") && t.contains(p.config.short()),
        "{t}"
    );
    // Again: nothing downloaded.
    let o = env.berth(&["pull", &name]).ok();
    assert!(
        o.stderr.matches("already exists").count() == 2,
        "{}",
        o.stderr
    );
}

#[test]
fn pull_by_digest_and_zstd_and_uncompressed() {
    for comp in [Comp::Zstd, Comp::None] {
        let env = Env::new();
        let p = push_image("t/comp", "x", &[base_layer(), top_layer()], comp, "amd64");
        let name = format!("{}/t/comp@{}", registry().addr, p.manifest);
        let o = env.berth(&["pull", "-q", &name]).ok();
        assert_eq!(o.stdout.trim(), p.config.to_string());
        assert_eq!(chain_dirs(&env).len(), 2);
    }
}

#[test]
fn platform_is_chosen_from_an_index() {
    let env = Env::new();
    let reg = registry();
    let amd = push_image("t/multi", "amd64", &[base_layer()], Comp::Gzip, "amd64");
    let arm = push_image("t/multi", "arm64", &[top_layer()], Comp::Gzip, "arm64");
    let index = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [
            {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": arm.manifest.to_string(),
             "size": 1, "platform": {"os": "linux", "architecture": "arm64", "variant": "v8"}},
            {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": amd.manifest.to_string(),
             "size": 1, "platform": {"os": "linux", "architecture": "amd64"}}
        ]
    });
    // Sizes in an index are informational to the registry; fix them.
    let mut index = index;
    for (i, m) in [&arm, &amd].iter().enumerate() {
        let body = ureq::get(&format!(
            "http://{}/v2/t/multi/manifests/{}",
            reg.addr, m.manifest
        ))
        .set("Accept", "application/vnd.oci.image.manifest.v1+json")
        .call()
        .unwrap()
        .into_string()
        .unwrap();
        index["manifests"][i]["size"] = body.len().into();
    }
    reg.push_manifest(
        "t/multi",
        "latest",
        "application/vnd.oci.image.index.v1+json",
        &serde_json::to_vec(&index).unwrap(),
    );
    let name = format!("{}/t/multi", reg.addr);
    let o = env.berth(&["pull", "-q", &name]).ok();
    assert_eq!(o.stdout.trim(), amd.config.to_string());
    let o = env
        .berth(&["pull", "-q", "--platform", "linux/arm64", &name])
        .ok();
    assert_eq!(o.stdout.trim(), arm.config.to_string());
    let o = env.berth(&["pull", "--platform", "linux/s390x", &name]);
    assert_eq!(o.code, 3, "{}", o.stderr);
    assert!(
        o.stderr.contains("linux/s390x") && o.stderr.contains("linux/amd64"),
        "{}",
        o.stderr
    );
    assert_eq!(
        o.stderr.trim().lines().count(),
        2,
        "one line of error after the 'Pulling' line: {}",
        o.stderr
    );
}

#[test]
fn clear_errors_and_nothing_half_stored() {
    let env = Env::new();
    let reg = &registry().addr;
    let o = env.berth(&["pull", &format!("{reg}/t/nonexistent:nope")]);
    assert_eq!(o.code, 3, "{}", o.stderr);
    assert!(o.stderr.contains("no such image"), "{}", o.stderr);
    let o = env.berth(&["pull", "Bad/Name"]);
    assert_eq!(o.code, 2, "{}", o.stderr);
    assert!(o.stderr.contains("lowercase"), "{}", o.stderr);
    // Nothing listens on this port: a network error, one line.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let o = env.berth(&["pull", &format!("127.0.0.1:{port}/x/y")]);
    assert_eq!(o.code, 5, "{}", o.stderr);
    // A config whose diff ID does not match the layer: refused, and
    // neither the layer nor the image is kept.
    let mut p = push_image("t/liar", "v1", &[base_layer()], Comp::Gzip, "amd64");
    let bad_config = serde_json::json!({
        "architecture": "amd64", "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": [berth_image::Digest::of(b"something else").to_string()]}
    });
    let cb = serde_json::to_vec(&bad_config).unwrap();
    p.config = registry().push_blob("t/liar", &cb);
    let blob = std::fs::read(std::env::temp_dir().join("nonexistent")).unwrap_or_default();
    drop(blob);
    let layer_gz = compress(&base_layer(), &Comp::Gzip);
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": p.config.to_string(), "size": cb.len()},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": p.layers[0].to_string(), "size": layer_gz.len()}]
    });
    registry().push_manifest(
        "t/liar",
        "v2",
        "application/vnd.oci.image.manifest.v1+json",
        &serde_json::to_vec(&manifest).unwrap(),
    );
    let o = env.berth(&["pull", &format!("{reg}/t/liar:v2")]);
    assert_ne!(o.code, 0);
    assert!(
        o.stderr.contains("does not match its digest"),
        "{}",
        o.stderr
    );
    assert!(chain_dirs(&env).is_empty(), "a layer was kept");
    assert_eq!(env.images_json().as_array().unwrap().len(), 0);
}

#[test]
fn rmi_and_prune_remove_layers_no_image_uses() {
    let env = Env::new();
    let p = push_image(
        "t/rm",
        "a",
        &[base_layer(), top_layer()],
        Comp::Gzip,
        "amd64",
    );
    let q = push_image("t/rm", "b", &[base_layer()], Comp::Gzip, "amd64");
    let reg = &registry().addr;
    env.berth(&["pull", "-q", &format!("{reg}/t/rm:a")]).ok();
    env.berth(&["pull", "-q", &format!("{reg}/t/rm:b")]).ok();
    // The base layer is shared: stored once.
    assert_eq!(chain_dirs(&env).len(), 2);
    let o = env.berth(&["rmi", &format!("{reg}/t/rm:a")]).ok();
    assert!(o.stdout.contains(&p.config.to_string()), "{}", o.stdout);
    assert_eq!(chain_dirs(&env).len(), 1, "the top layer should be gone");
    let o = env.berth(&["rmi", q.config.short()]).ok();
    assert!(o.stdout.contains("Deleted"), "{}", o.stdout);
    assert!(chain_dirs(&env).is_empty());
    let blobs = std::fs::read_dir(env.root.path().join("blobs/sha256"))
        .unwrap()
        .count();
    assert_eq!(blobs, 0, "blobs left");
    let o = env.berth(&["rmi", "t/none"]);
    assert_eq!(o.code, 3, "{}", o.stderr);
}

#[test]
fn parallel_pulls_of_one_image_agree() {
    let env = Env::new();
    let p = push_image(
        "t/par",
        "v",
        &[base_layer(), top_layer()],
        Comp::Gzip,
        "amd64",
    );
    let name = format!("{}/t/par:v", registry().addr);
    let kids: Vec<_> = (0..4)
        .map(|_| env.cmd().args(["pull", "-q", &name]).output())
        .collect();
    for k in kids {
        let o = k.unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        assert_eq!(
            String::from_utf8_lossy(&o.stdout).trim(),
            p.config.to_string()
        );
    }
    assert_eq!(chain_dirs(&env).len(), 2);
}

#[test]
fn kill_9_during_a_pull_leaves_a_store_the_next_pull_completes() {
    let env = Env::new();
    // 48 MiB of incompressible data: long enough to kill mid-way.
    let mut big = vec![0u8; 48 << 20];
    let mut x: u64 = 0x9e3779b97f4a7c15;
    for chunk in big.chunks_mut(8) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        chunk.copy_from_slice(&x.to_le_bytes()[..chunk.len()]);
    }
    let mut t = berth_image::tar::build::Tar::default();
    t.file("big", &big, 0o644);
    let p = push_image("t/kill", "v", &[base_layer(), t.end()], Comp::Gzip, "amd64");
    let name = format!("{}/t/kill:v", registry().addr);
    for delay_ms in [30u64, 120, 300] {
        let mut child = env.cmd().args(["pull", "-q", &name]).spawn().unwrap();
        std::thread::sleep(std::time::Duration::from_millis(delay_ms));
        let _ = child.kill();
        let _ = child.wait();
        // Whatever state it left, listing works and shows no half image.
        let imgs = env.images_json();
        for i in imgs.as_array().unwrap() {
            assert_eq!(i["Id"], p.config.to_string(), "a foreign image appeared");
        }
    }
    // The last pull, with its peak RSS: memory stays bounded by buffers,
    // not by the 48 MiB layer. Measured by GNU time, whose own child is
    // forked from a small process: a child spawned from this test process
    // would be charged this process's pages (ru_maxrss counts the address
    // space it had before exec).
    let rss_file = env.root.path().join("rss");
    let out = std::process::Command::new("/usr/bin/time")
        .args(["-f", "%M", "-o"])
        .arg(&rss_file)
        .arg(env!("CARGO_BIN_EXE_berth"))
        .arg("--root")
        .arg(env.root.path())
        .args(["pull", "-q", &name])
        .env("BERTH_DEFAULT_NETWORK", "none")
        .env("CONTAINERS_REGISTRIES_CONF", env.root.path().join("none"))
        .output()
        .expect("/usr/bin/time (package time)");
    assert!(
        out.status.success(),
        "the last pull failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        p.config.to_string()
    );
    let rss: u64 = std::fs::read_to_string(&rss_file)
        .unwrap()
        .trim()
        .lines()
        .last()
        .unwrap()
        .parse()
        .unwrap();
    assert!(rss < 40 * 1024, "peak RSS {rss} KiB for a 48 MiB layer");
    let i = env.berth(&["image", "inspect", &name]).ok();
    let v: serde_json::Value = serde_json::from_str(&i.stdout).unwrap();
    let top = v[0]["GraphDriver"]["Data"]["LowerDir"]
        .as_str()
        .unwrap()
        .split(':')
        .next()
        .unwrap()
        .to_string();
    assert_eq!(
        std::fs::metadata(std::path::Path::new(&top).join("big"))
            .unwrap()
            .len(),
        48 << 20
    );
    // tmp/ holds nothing after prune.
    env.berth(&["image", "prune"]).ok();
    assert_eq!(
        std::fs::read_dir(env.root.path().join("tmp"))
            .unwrap()
            .count(),
        0
    );
}

#[test]
fn a_blob_larger_than_its_descriptor_is_cut_off() {
    let env = Env::new();
    let reg = registry();
    let tar = base_layer();
    let gz = compress(&tar, &Comp::Gzip);
    let blob = reg.push_blob("t/short", &gz);
    let config = serde_json::json!({
        "architecture": "amd64", "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": [berth_image::Digest::of(&tar).to_string()]}
    });
    let cb = serde_json::to_vec(&config).unwrap();
    let cd = reg.push_blob("t/short", &cb);
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cd.to_string(), "size": cb.len()},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": blob.to_string(), "size": 1000}]
    });
    reg.push_manifest(
        "t/short",
        "v",
        "application/vnd.oci.image.manifest.v1+json",
        &serde_json::to_vec(&manifest).unwrap(),
    );
    let o = env.berth(&["pull", &format!("{}/t/short:v", reg.addr)]);
    assert_ne!(o.code, 0);
    assert!(
        o.stderr.contains("larger than the 1000 bytes"),
        "{}",
        o.stderr
    );
    assert_eq!(std::fs::read_dir(env.layers_dir()).unwrap().count(), 0);
    assert_eq!(
        std::fs::read_dir(env.root.path().join("blobs/sha256"))
            .unwrap()
            .count(),
        0
    );
}

#[test]
fn help_and_completions() {
    let bin = env!("CARGO_BIN_EXE_berth");
    let o = std::process::Command::new(bin)
        .args(["pull", "--help"])
        .env("BERTH_DEFAULT_NETWORK", "none")
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&o.stdout);
    assert!(
        o.status.success() && help.contains("Examples:") && help.contains("--platform"),
        "{help}"
    );
    for sh in ["bash", "zsh", "fish"] {
        let o = std::process::Command::new(bin)
            .args(["completion", sh])
            .output()
            .unwrap();
        assert!(o.status.success(), "{sh}");
        assert!(String::from_utf8_lossy(&o.stdout).contains("pull"), "{sh}");
    }
    // A bad flag value: one line and exit code 2.
    let o = std::process::Command::new(bin)
        .args(["images", "--format", "yaml"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
}
