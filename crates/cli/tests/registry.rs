//! The registry client's protocol paths through a front that behaves as
//! public registries do: bearer tokens (with and without credentials),
//! connections that break mid-blob, and blobs redirected to a CDN host.

mod common;
use common::proxy::{Behaviour, Proxy};
use common::*;

fn auth_file(dir: &std::path::Path, registry: &str, b64: &str) -> std::path::PathBuf {
    let f = dir.join("auth.json");
    std::fs::write(
        &f,
        serde_json::to_vec(&serde_json::json!({"auths": {registry: {"auth": b64}}})).unwrap(),
    )
    .unwrap();
    f
}

#[test]
fn bearer_token_with_credentials_from_an_auth_file() {
    let env = Env::new();
    let p = push_image("t/tok", "v", &[base_layer()], Comp::Gzip, "amd64");
    // base64("testuser:testpass")
    let creds = "dGVzdHVzZXI6dGVzdHBhc3M=";
    let proxy = Proxy::start(
        &registry().addr,
        Behaviour {
            bearer: true,
            token_basic: Some(creds),
            ..Default::default()
        },
    );
    let name = format!("{}/t/tok:v", proxy.addr);
    // No credentials: the token service refuses; one clear line, exit 4.
    let o = env.berth(&["pull", &name]);
    assert_eq!(o.code, 4, "{}", o.stderr);
    assert!(
        o.stderr.contains("denied") && o.stderr.contains("berth login"),
        "{}",
        o.stderr
    );
    // With an auth file (as Podman writes it).
    let f = auth_file(env.root.path(), &proxy.addr, creds);
    let o = env
        .cmd()
        .env("REGISTRY_AUTH_FILE", &f)
        .args(["pull", "-q", &name])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(
        String::from_utf8_lossy(&o.stdout).trim(),
        p.config.to_string()
    );
    let seen = proxy.seen.lock().unwrap();
    assert!(
        seen.token_requests
            .iter()
            .any(|t| t.contains("scope=repository%3At%2Ftok%3Apull")
                || t.contains("scope=repository:t/tok:pull")),
        "{:?}",
        seen.token_requests
    );
    assert!(seen
        .token_requests
        .iter()
        .all(|t| t.contains("service=berth-test")));
}

#[test]
fn anonymous_bearer_token() {
    let env = Env::new();
    let p = push_image(
        "t/anon",
        "v",
        &[base_layer(), top_layer()],
        Comp::Gzip,
        "amd64",
    );
    let proxy = Proxy::start(
        &registry().addr,
        Behaviour {
            bearer: true,
            ..Default::default()
        },
    );
    let o = env
        .berth(&["pull", "-q", &format!("{}/t/anon:v", proxy.addr)])
        .ok();
    assert_eq!(o.stdout.trim(), p.config.to_string());
}

#[test]
fn a_broken_download_resumes_with_range() {
    let env = Env::new();
    let p = push_image(
        "t/cut",
        "v",
        &[base_layer(), top_layer()],
        Comp::Gzip,
        "amd64",
    );
    let proxy = Proxy::start(
        &registry().addr,
        Behaviour {
            cut_blobs: true,
            ..Default::default()
        },
    );
    let o = env
        .berth(&["pull", "-q", &format!("{}/t/cut:v", proxy.addr)])
        .ok();
    assert_eq!(o.stdout.trim(), p.config.to_string());
    let seen = proxy.seen.lock().unwrap();
    assert!(!seen.cut.is_empty(), "no connection was broken");
    assert!(seen.range_requests >= seen.cut.len(), "{seen:?}");
}

#[test]
fn credentials_never_follow_a_redirect_to_another_host() {
    let env = Env::new();
    let p = push_image("t/cdn", "v", &[base_layer()], Comp::Gzip, "amd64");
    let creds = "dGVzdHVzZXI6dGVzdHBhc3M=";
    let proxy = Proxy::start(
        &registry().addr,
        Behaviour {
            bearer: true,
            token_basic: Some(creds),
            redirect_blobs: true,
            ..Default::default()
        },
    );
    let f = auth_file(env.root.path(), &proxy.addr, creds);
    let o = env
        .cmd()
        .env("REGISTRY_AUTH_FILE", &f)
        .args(["pull", "-q", &format!("{}/t/cdn:v", proxy.addr)])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(
        String::from_utf8_lossy(&o.stdout).trim(),
        p.config.to_string()
    );
    let seen = proxy.seen.lock().unwrap();
    assert!(
        seen.cdn_requests >= 2,
        "the blobs did not come from the CDN: {seen:?}"
    );
    assert_eq!(
        seen.cdn_auth_headers, 0,
        "credentials were sent to another host"
    );
}

#[test]
fn basic_auth_login_pull_logout() {
    let env = Env::new();
    let p = push_image("t/basic-auth", "v", &[base_layer()], Comp::Gzip, "amd64");
    let creds = "dGVzdHVzZXI6dGVzdHBhc3M="; // testuser:testpass
    let proxy = Proxy::start(
        &registry().addr,
        Behaviour {
            basic: Some(creds),
            ..Default::default()
        },
    );
    let file = env.root.path().join("auth.json");
    let berth = |args: &[&str], stdin: &str| {
        let mut c = env.cmd();
        c.env("REGISTRY_AUTH_FILE", &file).args(args);
        c.stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        let mut child = c.spawn().unwrap();
        use std::io::Write;
        child
            .stdin
            .take()
            .unwrap()
            .write_all(stdin.as_bytes())
            .unwrap();
        child.wait_with_output().unwrap()
    };
    let name = format!("{}/t/basic-auth:v", proxy.addr);
    let o = berth(&["pull", &name], "");
    assert_eq!(
        o.status.code(),
        Some(4),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    // A wrong password is refused and not stored.
    let o = berth(
        &["login", &proxy.addr, "-u", "testuser", "--password-stdin"],
        "wrong\n",
    );
    assert_eq!(
        o.status.code(),
        Some(4),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(!file.exists(), "bad credentials were stored");
    let o = berth(
        &["login", &proxy.addr, "-u", "testuser", "--password-stdin"],
        "testpass\n",
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let meta = std::fs::metadata(&file).unwrap();
    assert_eq!(
        std::os::unix::fs::PermissionsExt::mode(&meta.permissions()) & 0o777,
        0o600
    );
    let stored: serde_json::Value = serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();
    assert_eq!(stored["auths"][&proxy.addr]["auth"], creds);
    let o = berth(&["pull", "-q", &name], "");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(
        String::from_utf8_lossy(&o.stdout).trim(),
        p.config.to_string()
    );
    let o = berth(&["logout", &proxy.addr], "");
    assert!(o.status.success());
    let o = berth(&["logout", &proxy.addr], "");
    assert!(!o.status.success(), "logout twice");
    let env2 = Env::new();
    let o = env2
        .cmd()
        .env("REGISTRY_AUTH_FILE", &file)
        .args(["pull", &name])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(4));
}

#[test]
fn push_round_trip_keeps_every_digest() {
    let env = Env::new();
    let p = push_image(
        "t/src",
        "v",
        &[base_layer(), top_layer()],
        Comp::Gzip,
        "amd64",
    );
    let reg = &registry().addr;
    env.berth(&["pull", "-q", &format!("{reg}/t/src:v")]).ok();
    // Tag, then push under the new name (through a bearer-token front).
    let proxy = Proxy::start(
        reg,
        Behaviour {
            bearer: true,
            ..Default::default()
        },
    );
    let dest = format!("{}/t/dst:copy", proxy.addr);
    env.berth(&["tag", &format!("{reg}/t/src:v"), &dest]).ok();
    let o = env.berth(&["push", &dest]).ok();
    assert_eq!(o.stdout.trim(), p.manifest.to_string(), "{}", o.stderr);
    assert!(o.stderr.matches("pushed").count() >= 3, "{}", o.stderr);
    // Again: everything is there already.
    let o = env.berth(&["push", &dest]).ok();
    assert!(
        o.stderr.matches("already exists").count() == 3,
        "{}",
        o.stderr
    );
    // Pull it back into an empty store: the same image, the same digests.
    let env2 = Env::new();
    let o = env2
        .berth(&["pull", "-q", &format!("{reg}/t/dst:copy")])
        .ok();
    assert_eq!(o.stdout.trim(), p.config.to_string());
    let imgs = env2.images_json();
    assert_eq!(imgs[0]["Digest"], p.manifest.to_string());
}

/// CVE-2020-15157: a foreign (non-distributable) layer is fetched from its
/// own URL, and the registry's credentials never go there.
#[test]
fn foreign_layers_come_from_their_urls_without_credentials() {
    let env = Env::new();
    let reg = registry();
    let creds = "dGVzdHVzZXI6dGVzdHBhc3M=";
    let proxy = Proxy::start(
        &reg.addr,
        Behaviour {
            bearer: true,
            token_basic: Some(creds),
            ..Default::default()
        },
    );
    // The layer lives in another repository; the manifest only names a URL
    // (served by the proxy's CDN host).
    let tar = base_layer();
    let gz = compress(&tar, &Comp::Gzip);
    let blob = reg.push_blob("t/foreign-src", &gz);
    let config = serde_json::json!({
        "architecture": "amd64", "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": [berth_image::Digest::of(&tar).to_string()]}
    });
    let cb = serde_json::to_vec(&config).unwrap();
    let cd = reg.push_blob("t/foreign", &cb);
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cd.to_string(), "size": cb.len()},
        "layers": [{
            "mediaType": "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip",
            "digest": blob.to_string(), "size": gz.len(),
            "urls": [format!("http://{}/cdn/v2/t/foreign-src/blobs/{blob}", proxy.cdn)]
        }]
    });
    reg.push_manifest(
        "t/foreign",
        "v",
        "application/vnd.oci.image.manifest.v1+json",
        &serde_json::to_vec(&manifest).unwrap(),
    );
    let f = auth_file(env.root.path(), &proxy.addr, creds);
    // Foreign URLs are fetched only where allowed, and a loopback one only
    // when the allowed prefix names its address (issue 20).
    let o = env
        .cmd()
        .env("REGISTRY_AUTH_FILE", &f)
        .env(
            "BERTH_ALLOW_FOREIGN_URLS",
            format!("http://{}/cdn/", proxy.cdn),
        )
        .args(["pull", "-q", &format!("{}/t/foreign:v", proxy.addr)])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(String::from_utf8_lossy(&o.stdout).trim(), cd.to_string());
    let seen = proxy.seen.lock().unwrap();
    assert_eq!(seen.cdn_requests, 1, "{seen:?}");
    assert_eq!(
        seen.cdn_auth_headers, 0,
        "registry credentials went to the foreign URL"
    );
}

#[test]
fn registries_conf_locations_mirrors_blocks_and_aliases() {
    let env = Env::new();
    let p = push_image("t/conf", "v", &[base_layer()], Comp::Gzip, "amd64");
    let reg = &registry().addr;
    // A port nothing listens on: a mirror that is down.
    let dead = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let conf = env.root.path().join("registries.conf");
    std::fs::write(
        &conf,
        format!(
            r#"unqualified-search-registries = ["quay.io"]
[[registry]]
prefix = "example.invalid/team"
location = "{reg}/t"

[[registry]]
prefix = "mirrored.invalid"
location = "127.0.0.1:{dead}"
[[registry.mirror]]
location = "127.0.0.1:{dead}"
[[registry.mirror]]
location = "{reg}"

[[registry]]
location = "blocked.invalid"
blocked = true

[aliases]
"conftest" = "{reg}/t/conf"
"#
        ),
    )
    .unwrap();
    let berth = |args: &[&str]| {
        let o = env
            .cmd()
            .env("CONTAINERS_REGISTRIES_CONF", &conf)
            .args(args)
            .output()
            .unwrap();
        (
            o.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&o.stdout).into_owned(),
            String::from_utf8_lossy(&o.stderr).into_owned(),
        )
    };
    // A prefix mapped to another location; the image keeps its own name.
    let (code, out, err) = berth(&["pull", "-q", "example.invalid/team/conf:v"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(out.trim(), p.config.to_string());
    let imgs = env.images_json();
    assert_eq!(imgs[0]["Names"][0], "example.invalid/team/conf:v");
    // Mirrors in order: the dead one is skipped.
    let (code, out, err) = berth(&["pull", "-q", "mirrored.invalid/t/conf:v"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(out.trim(), p.config.to_string());
    // Blocked.
    let (code, _, err) = berth(&["pull", "blocked.invalid/x/y"]);
    assert_ne!(code, 0);
    assert!(err.contains("blocked"), "{err}");
    // A short-name alias, said on stderr; a short name without one is
    // Docker Hub, not a search of quay.io.
    let (code, _, err) = berth(&["pull", "conftest:v"]);
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("Resolved \"conftest:v\" as an alias"), "{err}");
    let (_, _, err) = berth(&["pull", "nonexistent-short-name-for-berth-tests"]);
    assert!(
        err.contains("docker.io/library/nonexistent-short-name-for-berth-tests"),
        "{err}"
    );
    assert!(!err.contains("quay.io"), "{err}");
}

#[test]
fn a_busy_registry_is_retried_with_backoff() {
    let env = Env::new();
    let p = push_image("t/busy", "v", &[base_layer()], Comp::Gzip, "amd64");
    let proxy = Proxy::start(
        &registry().addr,
        Behaviour {
            fail_first: 2,
            ..Default::default()
        },
    );
    let o = env
        .berth(&["pull", "-q", &format!("{}/t/busy:v", proxy.addr)])
        .ok();
    assert_eq!(o.stdout.trim(), p.config.to_string());
    assert_eq!(proxy.seen.lock().unwrap().failed, 2);
}

#[test]
fn docker_schema2_and_manifest_lists() {
    let env = Env::new();
    let reg = registry();
    let tar = base_layer();
    let gz = compress(&tar, &Comp::Gzip);
    let blob = reg.push_blob("t/v2s2", &gz);
    let config = serde_json::json!({
        "architecture": "amd64", "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": [berth_image::Digest::of(&tar).to_string()]}
    });
    let cb = serde_json::to_vec(&config).unwrap();
    let cd = reg.push_blob("t/v2s2", &cb);
    let m = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
        "config": {"mediaType": "application/vnd.docker.container.image.v1+json", "digest": cd.to_string(), "size": cb.len()},
        "layers": [{"mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip", "digest": blob.to_string(), "size": gz.len()}]
    });
    let mb = serde_json::to_vec(&m).unwrap();
    let md = reg.push_manifest(
        "t/v2s2",
        "single",
        "application/vnd.docker.distribution.manifest.v2+json",
        &mb,
    );
    let list = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.docker.distribution.manifest.list.v2+json",
        "manifests": [{"mediaType": "application/vnd.docker.distribution.manifest.v2+json", "digest": md.to_string(), "size": mb.len(),
                       "platform": {"architecture": "amd64", "os": "linux"}}]
    });
    reg.push_manifest(
        "t/v2s2",
        "list",
        "application/vnd.docker.distribution.manifest.list.v2+json",
        &serde_json::to_vec(&list).unwrap(),
    );
    for tag in ["single", "list"] {
        let o = env
            .berth(&["pull", "-q", &format!("{}/t/v2s2:{tag}", reg.addr)])
            .ok();
        assert_eq!(o.stdout.trim(), cd.to_string(), "{tag}");
    }
    // The digest of the schema 2 manifest is what was pushed (the registry
    // did not convert it to schema 1: the Accept list was complete).
    let imgs = env.images_json();
    assert_eq!(imgs[0]["Digest"], md.to_string());
}
