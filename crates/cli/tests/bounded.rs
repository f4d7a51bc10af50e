//! What one user's containers keep private from other local users, and
//! the bounds berth keeps for any input: log sizes, log reading, table
//! text (issue 20, sections 2 and 3).

mod common;
use common::*;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

fn busybox_tar() -> Vec<u8> {
    let bb =
        std::fs::read(BUSYBOX).expect("busybox-static is needed: apt-get install busybox-static");
    let mut t = berth_image::tar::build::Tar::default();
    t.dir("bin/", 0o755).file("bin/busybox", &bb, 0o755);
    for a in [
        "sh", "echo", "cat", "true", "sleep", "id", "yes", "head", "printf", "dd", "tr",
    ] {
        t.symlink(&format!("bin/{a}"), "busybox");
    }
    t.dir("etc/", 0o755)
        .file(
            "etc/passwd",
            b"root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000:app:/home/app:/bin/sh\n",
            0o644,
        )
        .file("etc/group", b"root:x:0:\napp:x:1000:\n", 0o644)
        .dir("tmp/", 0o1777);
    t.end()
}

/// Imports the busybox image as `bb:latest` into `env`'s store.
fn image(env: &Env) -> &'static str {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("bb.tar");
    std::fs::write(&p, busybox_tar()).unwrap();
    env.berth(&["import", p.to_str().unwrap(), "bb:latest"])
        .ok();
    "bb:latest"
}

fn inspect(env: &Env, c: &str) -> serde_json::Value {
    let o = env.berth(&["inspect", c]).ok();
    serde_json::from_str::<serde_json::Value>(&o.stdout).unwrap()[0].clone()
}

/// Runs `argv` as nobody (uid and gid 65534, no groups); whether it worked.
fn as_nobody(argv: &[&str]) -> bool {
    let o = Command::new("setpriv")
        .args(["--reuid", "65534", "--regid", "65534", "--clear-groups"])
        .args(argv)
        .output()
        .expect("setpriv (util-linux) is needed");
    o.status.success()
}

fn chmod(p: &Path, mode: u32) {
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).unwrap();
}

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p).unwrap().permissions().mode() & 0o7777
}

#[test]
fn state_configs_logs_and_the_store_are_private_to_their_owner() {
    let env = Env::new();
    // Roots as an older berth (or a umask of 022) left them: open to all.
    chmod(env.root.path(), 0o755);
    chmod(env.run_root.path(), 0o755);
    // The test's own condition: nobody can reach a file left open there.
    let probe = env.run_root.path().join("probe");
    std::fs::write(&probe, "x").unwrap();
    chmod(&probe, 0o644);
    assert!(
        as_nobody(&["cat", probe.to_str().unwrap()]),
        "nobody must be able to read an open file under the run root for this test to mean anything"
    );
    std::fs::remove_file(&probe).unwrap();

    let img = image(&env);
    let id = env
        .berth(&[
            "run",
            "-d",
            "-e",
            "DB_PASSWORD=hunter2",
            img,
            "sh",
            "-c",
            "echo the-secret-is-hunter2; sleep 30",
        ])
        .ok()
        .stdout
        .trim()
        .to_string();
    let run_dir = env.run_root.path().join("containers").join(&id);
    let config = run_dir.join("config.json");
    let log = env.root.path().join("containers").join(&id).join("ctr.log");
    let deadline = Instant::now() + Duration::from_secs(10);
    while !log.exists() {
        assert!(Instant::now() < deadline, "no log at {}", log.display());
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(std::fs::read_to_string(&config)
        .unwrap()
        .contains("hunter2"));
    let db = env.root.path().join("store.db");
    for f in [&config, &log, &db] {
        assert!(
            !as_nobody(&["cat", f.to_str().unwrap()]),
            "another user reads {}",
            f.display()
        );
        assert_eq!(mode(f) & 0o077, 0, "{} is open to others", f.display());
    }
    for d in [env.root.path(), env.run_root.path()] {
        assert!(
            !as_nobody(&["ls", d.to_str().unwrap()]),
            "another user lists {}",
            d.display()
        );
        assert_eq!(mode(d), 0o700, "{}", d.display());
    }
    // The container's own non-root user still reads what is bound into it
    // and runs from the image's layers.
    let o = env
        .berth(&[
            "run",
            "--rm",
            "-u",
            "1000",
            img,
            "sh",
            "-c",
            "id -u; cat /etc/hosts /etc/resolv.conf >/dev/null && echo read",
        ])
        .ok();
    assert_eq!(o.stdout, "1000\nread\n");
    env.berth(&["rm", "-f", &id]).ok();
}

#[test]
fn logs_are_capped_and_rotated_by_default() {
    let env = Env::new();
    let img = image(&env);
    // 40 MB of output, with no --log-opt. (No `yes | head`: yes would go
    // on after head ends while containers start with SIGPIPE ignored.)
    env.berth(&[
        "run",
        "--name",
        "chatty",
        img,
        "sh",
        "-c",
        "dd if=/dev/zero bs=1000000 count=40 2>/dev/null | tr '\\0' x",
    ])
    .ok();
    let c = inspect(&env, "chatty");
    assert_eq!(
        c["HostConfig"]["LogConfig"]["Config"]["max-size"],
        "10485760"
    );
    assert_eq!(c["HostConfig"]["LogConfig"]["Config"]["max-file"], "3");
    let dir = env
        .root
        .path()
        .join("containers")
        .join(c["Id"].as_str().unwrap());
    let mut total = 0;
    for e in std::fs::read_dir(&dir).unwrap() {
        let e = e.unwrap();
        if e.file_name().to_string_lossy().starts_with("ctr.log") {
            total += e.metadata().unwrap().len();
        }
    }
    assert!(total <= 3 * (10 << 20), "the logs take {total} bytes");
    assert!(total > 2 * (10 << 20), "the logs take {total} bytes");
    assert!(dir.join("ctr.log.2").exists() && !dir.join("ctr.log.3").exists());
    // max-size=0 lifts the cap.
    env.berth(&[
        "run",
        "--name",
        "uncapped",
        "--log-opt",
        "max-size=0",
        img,
        "sh",
        "-c",
        "dd if=/dev/zero bs=1000000 count=12 2>/dev/null | tr '\\0' x",
    ])
    .ok();
    let id = inspect(&env, "uncapped")["Id"]
        .as_str()
        .unwrap()
        .to_string();
    let dir = env.root.path().join("containers").join(id);
    assert!(!dir.join("ctr.log.1").exists());
}

/// True when `s` holds a control character other than the line ends.
fn has_controls(s: &str) -> bool {
    s.chars().any(|c| c.is_control() && c != '\n')
}

#[test]
fn tables_never_print_control_characters_from_container_data() {
    let env = Env::new();
    let img = image(&env);
    env.berth(&[
        "create",
        "--name",
        "esc",
        img,
        "sh",
        "-c",
        "\x1b]0;owned\x07\x1b[2J\rline\nnext\u{9b}",
    ])
    .ok();
    let o = env.berth(&["ps", "-a", "--no-trunc"]).ok();
    assert!(!has_controls(&o.stdout), "{:?}", o.stdout);
    assert_eq!(o.stdout.lines().count(), 2, "{:?}", o.stdout);
    assert!(o.stdout.contains("\\x1b]0;owned\\x07"), "{:?}", o.stdout);
    // The JSON keeps the command as it is.
    let c = inspect(&env, "esc");
    assert!(c["Config"]["Cmd"][2].as_str().unwrap().contains('\x1b'));
    // An image's history is the image author's text.
    load_image(
        &env,
        "hist:latest",
        serde_json::json!({
            "config": {"Cmd": ["sh"]},
            "created": "2026-01-01T00:00:00Z\x1b[31m",
            "history": [{"created_by": "RUN \x1b]0;owned\x07 x", "comment": "c\rd\u{9b}"}],
        }),
    );
    for args in [&["image", "history", "hist"][..], &["images"]] {
        let o = env.berth(args).ok();
        assert!(!has_controls(&o.stdout), "{args:?}: {:?}", o.stdout);
    }
}

/// Runs `berth ARGS` under GNU time: (exit code, stdout, max RSS in KiB,
/// seconds).
fn timed(env: &Env, args: &[&str]) -> (i32, String, u64, f64) {
    let mut c = Command::new("/usr/bin/time");
    c.args(["-f", "@@ %M %e", env!("CARGO_BIN_EXE_berth")]);
    c.arg("--root").arg(env.root.path());
    c.arg("--run-root").arg(env.run_root.path());
    c.env("BERTH_DEFAULT_NETWORK", "none");
    c.env(
        "CONTAINERS_REGISTRIES_CONF",
        env.root.path().join("no-registries.conf"),
    );
    let o = c
        .args(args)
        .output()
        .expect("GNU time (apt-get install time)");
    let err = String::from_utf8_lossy(&o.stderr);
    let last = err
        .lines()
        .rfind(|l| l.starts_with("@@ "))
        .unwrap_or_else(|| panic!("no time line in {err:?}"));
    let mut f = last[3..].split(' ');
    let rss = f.next().unwrap().parse().unwrap();
    let secs = f.next().unwrap().parse().unwrap();
    (
        o.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&o.stdout).into_owned(),
        rss,
        secs,
    )
}

const GIANT: u64 = 2 << 30;

fn log_of(env: &Env, name: &str) -> std::path::PathBuf {
    env.root
        .path()
        .join("containers")
        .join(inspect(env, name)["Id"].as_str().unwrap())
        .join("ctr.log")
}

#[test]
fn logs_tail_and_follow_read_from_the_end_in_bounded_memory_and_time() {
    let env = Env::new();
    let img = image(&env);
    for driver in ["k8s-file", "json-file"] {
        let name = format!("big-{driver}");
        env.berth(&[
            "run",
            "--name",
            &name,
            "--log-driver",
            driver,
            img,
            "sh",
            "-c",
            "echo first; echo second",
        ])
        .ok();
        // A single 2 GiB line (sparse, made at once), then one entry more.
        let log = log_of(&env, &name);
        let text = std::fs::read_to_string(&log).unwrap();
        let last = text.lines().last().unwrap().replace("second", "last");
        let f = std::fs::OpenOptions::new().append(true).open(&log).unwrap();
        f.set_len(text.len() as u64 + GIANT).unwrap();
        use std::io::Write;
        (&f).write_all(format!("\n{last}\n").as_bytes()).unwrap();
        drop(f);
        let (code, out, rss, secs) = timed(&env, &["logs", "--tail", "1", &name]);
        eprintln!("{driver}: logs --tail 1 of a 2 GiB log: {rss} KiB, {secs} s");
        assert_eq!((code, out.as_str()), (0, "last\n"), "{driver}");
        assert!(rss < 64 << 10, "{driver}: logs --tail 1 took {rss} KiB");
        assert!(secs < 5.0, "{driver}: logs --tail 1 took {secs} s");
        // The giant line is not an entry: the tail ends at it.
        let (code, out, rss, _) = timed(&env, &["logs", "--tail", "5", &name]);
        assert_eq!((code, out.as_str()), (0, "last\n"), "{driver}");
        assert!(rss < 64 << 10, "{driver}: logs --tail 5 took {rss} KiB");
    }

    // -f on a live log that ends in a 2 GiB line: nothing read into
    // memory, and the next line follows.
    env.berth(&[
        "run",
        "-d",
        "--name",
        "live",
        "--log-opt",
        "max-size=0",
        img,
        "sh",
        "-c",
        "echo a; sleep 3; echo b",
    ])
    .ok();
    let log = log_of(&env, "live");
    let t = Instant::now();
    while !std::fs::read_to_string(&log).is_ok_and(|s| s.contains(" a\n")) {
        assert!(t.elapsed() < Duration::from_secs(10), "no first line");
        std::thread::sleep(Duration::from_millis(20));
    }
    let f = std::fs::OpenOptions::new().append(true).open(&log).unwrap();
    f.set_len(f.metadata().unwrap().len() + GIANT).unwrap();
    drop(f);
    let (code, out, rss, _) = timed(&env, &["logs", "-f", "--tail", "1", "live"]);
    assert_eq!(code, 0);
    assert!(out.ends_with("b\n"), "{out:?}");
    assert!(rss < 64 << 10, "logs -f took {rss} KiB");
}

/// Loads, as `tag`, a docker-archive of the busybox layer whose image
/// config is `config` (its `rootfs` is filled in).
fn load_image(env: &Env, tag: &str, mut config: serde_json::Value) {
    let layer = busybox_tar();
    config["rootfs"] = serde_json::json!({
        "type": "layers",
        "diff_ids": [berth_image::Digest::of(&layer).to_string()],
    });
    config["os"] = "linux".into();
    config["architecture"] = "amd64".into();
    let manifest = serde_json::json!([{
        "Config": "config.json", "RepoTags": [tag], "Layers": ["layer.tar"],
    }]);
    let mut t = berth_image::tar::build::Tar::default();
    t.file(
        "manifest.json",
        &serde_json::to_vec(&manifest).unwrap(),
        0o644,
    )
    .file("config.json", &serde_json::to_vec(&config).unwrap(), 0o644)
    .file("layer.tar", &layer, 0o644);
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("image.tar");
    std::fs::write(&p, t.end()).unwrap();
    env.berth(&["load", "-i", p.to_str().unwrap()]).ok();
}

#[test]
fn an_unknown_image_stop_signal_is_sigterm_and_stop_ends_with_sigkill() {
    let env = Env::new();
    load_image(
        &env,
        "stopsig:latest",
        serde_json::json!({"config": {"Cmd": ["sleep", "100"], "StopSignal": "SIGNOTONE"}}),
    );
    let o = env
        .berth(&["create", "--name", "stopper", "stopsig:latest"])
        .ok();
    assert!(
        o.stderr.contains("WARNING") && o.stderr.contains("StopSignal"),
        "{}",
        o.stderr
    );
    assert_eq!(inspect(&env, "stopper")["Config"]["StopSignal"], "SIGTERM");
    env.berth(&["start", "stopper"]).ok();
    // sleep as pid 1 ignores SIGTERM: the stop ends with SIGKILL.
    let t = Instant::now();
    env.berth(&["stop", "-t", "1", "stopper"]).ok();
    assert!(t.elapsed() < Duration::from_secs(8), "{:?}", t.elapsed());
    let c = inspect(&env, "stopper");
    assert_eq!(c["State"]["Status"], "exited");
    assert_eq!(c["State"]["ExitCode"], 137);
}

/// How the test registry below sends the layer blob.
#[derive(Clone, Copy, PartialEq)]
enum Send {
    Whole,
    /// Half of it, then nothing (the connection stays open).
    Stall,
    /// One byte every 100 ms.
    Trickle,
}

/// A one-image registry on loopback (`t/img:v1`, one gzip layer), serving
/// the layer as `send` says. Its address.
fn tiny_registry(config: serde_json::Value, layer: Vec<u8>, send: Send) -> String {
    tiny_registry_urls(config, layer, send, &[])
}

/// [`tiny_registry`] with a nondistributable layer at `urls` (when any).
fn tiny_registry_urls(
    config: serde_json::Value,
    layer: Vec<u8>,
    send: Send,
    urls: &[String],
) -> String {
    use std::io::{BufRead, BufReader, Write};
    let gz = compress(&layer, &Comp::Gzip);
    let mut config = config;
    config["os"] = "linux".into();
    config["architecture"] = "amd64".into();
    if config.get("rootfs").is_none() {
        config["rootfs"] = serde_json::json!({"type": "layers", "diff_ids": [berth_image::Digest::of(&layer).to_string()]});
    }
    let config = serde_json::to_vec(&config).unwrap();
    let (cd, ld) = (
        berth_image::Digest::of(&config),
        berth_image::Digest::of(&gz),
    );
    let manifest = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cd.to_string(), "size": config.len()},
        "layers": [if urls.is_empty() {
            serde_json::json!({"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": ld.to_string(), "size": gz.len()})
        } else {
            serde_json::json!({"mediaType": "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip", "digest": ld.to_string(), "size": gz.len(), "urls": urls})
        }],
    }))
    .unwrap();
    let md = berth_image::Digest::of(&manifest);
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap().to_string();
    let files = std::sync::Arc::new((manifest, md, config, cd, gz, ld));
    std::thread::spawn(move || {
        for c in l.incoming().flatten() {
            let files = files.clone();
            std::thread::spawn(move || {
                let (manifest, md, config, cd, gz, ld) = &*files;
                let mut r = BufReader::new(&c);
                let mut line = String::new();
                let _ = r.read_line(&mut line);
                loop {
                    let mut h = String::new();
                    if r.read_line(&mut h).unwrap_or(0) <= 2 {
                        break;
                    }
                }
                let mut w = &c;
                let path = line.split(' ').nth(1).unwrap_or("").to_string();
                let head = line.starts_with("HEAD");
                let (ctype, body, is_layer): (&str, &[u8], bool) = if path == "/v2/" {
                    ("application/json", b"{}", false)
                } else if path.starts_with("/v2/t/img/manifests/") {
                    (
                        "application/vnd.oci.image.manifest.v1+json",
                        manifest,
                        false,
                    )
                } else if path == format!("/v2/t/img/blobs/{cd}") {
                    ("application/octet-stream", config, false)
                } else if path == format!("/v2/t/img/blobs/{ld}") {
                    ("application/octet-stream", gz, true)
                } else {
                    let _ = w.write_all(
                        b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                    );
                    return;
                };
                let digest = if path.contains("manifests") {
                    md.to_string()
                } else {
                    String::new()
                };
                let _ = write!(
                    w,
                    "HTTP/1.1 200 OK\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nDocker-Content-Digest: {digest}\r\nConnection: close\r\n\r\n",
                    body.len()
                );
                if head {
                    return;
                }
                match (is_layer, send) {
                    (true, Send::Stall) => {
                        let _ = w.write_all(&body[..body.len() / 2]);
                        std::thread::sleep(Duration::from_secs(120));
                    }
                    (true, Send::Trickle) => {
                        for b in body.iter() {
                            if w.write_all(&[*b]).is_err() {
                                return;
                            }
                            std::thread::sleep(Duration::from_millis(100));
                        }
                    }
                    _ => {
                        let _ = w.write_all(body);
                    }
                }
            });
        }
    });
    addr
}

/// A layer of `n` bytes of random data (so that gzip leaves it as big).
fn random_layer(n: usize) -> Vec<u8> {
    let mut data = vec![0u8; n];
    let mut x: u64 = 0x9e3779b97f4a7c15;
    for b in data.iter_mut() {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        *b = x as u8;
    }
    let mut t = berth_image::tar::build::Tar::default();
    t.file("data", &data, 0o644);
    t.end()
}

fn tmp_entries(env: &Env) -> Vec<String> {
    std::fs::read_dir(env.root.path().join("tmp"))
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
}

fn df_images_size(env: &Env) -> u64 {
    let v: serde_json::Value =
        serde_json::from_str(&env.berth(&["system", "df", "--format", "json"]).ok().stdout)
            .unwrap();
    v.as_array().unwrap()[0]["size"].as_u64().unwrap()
}

#[test]
fn a_failed_or_interrupted_pull_leaves_nothing_in_the_store_tmp_and_df_counts_it() {
    let env = Env::new();
    // A digest mismatch (the config's diff ID is not the layer's).
    let reg = tiny_registry(
        serde_json::json!({"rootfs": {"type": "layers", "diff_ids": [berth_image::Digest::of(b"other").to_string()]}}),
        random_layer(3 << 20),
        Send::Whole,
    );
    let o = env.berth(&["pull", &format!("{reg}/t/img:v1")]);
    assert_ne!(o.code, 0);
    assert!(o.stderr.contains("does not match"), "{}", o.stderr);
    assert_eq!(
        tmp_entries(&env),
        Vec::<String>::new(),
        "after a digest mismatch"
    );

    // A broken stream (a registry that stops sending), with a short
    // stall time: retried, then fails, and nothing is left.
    let reg = tiny_registry(serde_json::json!({}), random_layer(3 << 20), Send::Stall);
    let t = Instant::now();
    let o = env
        .cmd()
        .env("BERTH_PULL_STALL_TIMEOUT", "0.5")
        .args(["pull", &format!("{reg}/t/img:v1")])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_ne!(o.status.code(), Some(0));
    assert!(err.contains("retries"), "{err}");
    assert!(t.elapsed() < Duration::from_secs(30), "{:?}", t.elapsed());
    assert_eq!(
        tmp_entries(&env),
        Vec::<String>::new(),
        "after a broken stream"
    );

    // Ctrl-C in the middle of a layer.
    let mut child = env
        .cmd()
        .args(["pull", &format!("{reg}/t/img:v1")])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let t = Instant::now();
    while tmp_entries(&env).is_empty() {
        assert!(
            t.elapsed() < Duration::from_secs(20),
            "the pull never started a layer"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    // The half-downloaded layer counts in system df (once it is written:
    // the download is buffered).
    let t = Instant::now();
    while df_images_size(&env) < 512 << 10 {
        assert!(
            t.elapsed() < Duration::from_secs(15),
            "df does not count tmp/"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    // SAFETY: signals our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let t = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(
            t.elapsed() < Duration::from_secs(15),
            "the pull ignored ctrl-c"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(status.code() == Some(130) || status.signal() == Some(libc::SIGINT));
    assert_eq!(tmp_entries(&env), Vec::<String>::new(), "after ctrl-c");

    // What a killed pull left is counted, and removed by the next pull.
    let stale = env
        .root
        .path()
        .join("tmp")
        .join(format!("layer-{}", "ab".repeat(32)));
    std::fs::create_dir(&stale).unwrap();
    std::fs::write(stale.join("big"), random_layer(2 << 20)).unwrap();
    assert!(df_images_size(&env) >= 2 << 20, "df does not count tmp/");
    let reg = tiny_registry(serde_json::json!({}), random_layer(1000), Send::Whole);
    env.berth(&["pull", &format!("{reg}/t/img:v1")]).ok();
    assert_eq!(
        tmp_entries(&env),
        Vec::<String>::new(),
        "a killed pull's leftovers"
    );
}

#[test]
fn a_registry_that_trickles_is_detected_retried_and_fails() {
    let env = Env::new();
    let reg = tiny_registry(serde_json::json!({}), random_layer(1 << 20), Send::Trickle);
    let t = Instant::now();
    let o = env
        .cmd()
        .env("BERTH_PULL_STALL_TIMEOUT", "1")
        .args(["pull", &format!("{reg}/t/img:v1")])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_ne!(o.status.code(), Some(0), "{err}");
    assert!(err.contains("no progress"), "{err}");
    assert!(t.elapsed() < Duration::from_secs(40), "{:?}", t.elapsed());
    assert_eq!(tmp_entries(&env), Vec::<String>::new());
}

/// A tmpfs of `size` mounted on `at` for the test; unmounted on drop.
struct Tmpfs(std::path::PathBuf);

impl Tmpfs {
    fn mount(at: &Path, size: &str) -> Tmpfs {
        let st = Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size},mode=0700"),
                "berth-test",
            ])
            .arg(at)
            .status()
            .unwrap();
        assert!(st.success(), "mount a tmpfs on {}", at.display());
        Tmpfs(at.to_path_buf())
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

fn free_bytes(p: &Path) -> u64 {
    // SAFETY: a zeroed statvfs is a valid out-parameter; the path is a
    // valid C string.
    unsafe {
        let mut st: libc::statvfs = std::mem::zeroed();
        let c = std::ffi::CString::new(p.as_os_str().as_encoded_bytes()).unwrap();
        assert_eq!(libc::statvfs(c.as_ptr(), &mut st), 0);
        st.f_bavail as u64 * st.f_frsize as u64
    }
}

#[test]
fn a_layer_that_expands_beyond_the_disk_fails_clearly_and_keeps_a_reserve() {
    let env = Env::new();
    // The store on a 48 MiB filesystem of its own; the layer: 160 MB of
    // zeros, a few hundred KB compressed.
    let _fs = Tmpfs::mount(env.root.path(), "48m");
    let mut t = berth_image::tar::build::Tar::default();
    t.file("bomb", &vec![0u8; 160 << 20], 0o644);
    let reg = tiny_registry(serde_json::json!({}), t.end(), Send::Whole);
    let root = env.root.path().to_path_buf();
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let d = done.clone();
    let watch = std::thread::spawn(move || {
        let mut least = u64::MAX;
        while !d.load(std::sync::atomic::Ordering::SeqCst) {
            least = least.min(free_bytes(&root));
            std::thread::sleep(Duration::from_millis(2));
        }
        least
    });
    let o = env.berth(&["pull", &format!("{reg}/t/img:v1")]);
    done.store(true, std::sync::atomic::Ordering::SeqCst);
    let least = watch.join().unwrap();
    assert_ne!(o.code, 0);
    assert!(o.stderr.contains("decompression bomb"), "{}", o.stderr);
    assert_eq!(
        o.stderr.lines().filter(|l| l.starts_with("berth:")).count(),
        1,
        "{}",
        o.stderr
    );
    assert!(least >= 1 << 20, "the disk went down to {least} bytes free");
    assert_eq!(tmp_entries(&env), Vec::<String>::new());
}

/// A web server on loopback that answers 404 to everything and counts the
/// requests (where a foreign layer's URL points).
fn counting_server() -> (String, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    use std::io::{BufRead, BufReader, Write};
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap().to_string();
    let hits = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let h = hits.clone();
    std::thread::spawn(move || {
        for c in l.incoming().flatten() {
            h.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let mut line = String::new();
            let _ = BufReader::new(&c).read_line(&mut line);
            let _ = (&c).write_all(
                b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            );
        }
    });
    (addr, hits)
}

#[test]
fn foreign_layer_urls_are_not_fetched_unless_allowed() {
    let env = Env::new();
    let (web, hits) = counting_server();
    let url = format!("http://{web}/layer.tar.gz");
    let reg = tiny_registry_urls(
        serde_json::json!({}),
        random_layer(1000),
        Send::Whole,
        std::slice::from_ref(&url),
    );
    // By default the layer comes from the registry; its URL (loopback
    // here, as a metadata address would be) is never asked.
    env.berth(&["pull", &format!("{reg}/t/img:v1")]).ok();
    assert_eq!(
        hits.load(std::sync::atomic::Ordering::SeqCst),
        0,
        "a foreign URL was fetched"
    );
    env.berth(&["rmi", &format!("{reg}/t/img:v1")]).ok();
    // A prefix that allows every http URL still does not reach loopback.
    let o = env
        .cmd()
        .env("BERTH_ALLOW_FOREIGN_URLS", "http://")
        .args(["pull", &format!("{reg}/t/img:v1")])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(
        hits.load(std::sync::atomic::Ordering::SeqCst),
        0,
        "loopback was fetched"
    );
    env.berth(&["rmi", &format!("{reg}/t/img:v1")]).ok();
    // Allowed by name: fetched from there (and it has nothing: an error).
    let o = env
        .cmd()
        .env("BERTH_ALLOW_FOREIGN_URLS", format!("http://{web}/"))
        .args(["pull", &format!("{reg}/t/img:v1")])
        .output()
        .unwrap();
    assert!(!o.status.success());
    assert_eq!(hits.load(std::sync::atomic::Ordering::SeqCst), 1);
}

#[test]
fn a_stalled_pull_never_blocks_rmi_or_prune_of_other_images() {
    let env = Env::new();
    let img = image(&env);
    let reg = tiny_registry(serde_json::json!({}), random_layer(3 << 20), Send::Stall);
    let mut pull = env
        .cmd()
        .args(["pull", &format!("{reg}/t/img:v1")])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let t = Instant::now();
    while tmp_entries(&env).is_empty() {
        assert!(
            t.elapsed() < Duration::from_secs(20),
            "the pull never started a layer"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let quick = |args: &[&str]| {
        let t = Instant::now();
        env.berth(args).ok();
        assert!(
            t.elapsed() < Duration::from_secs(5),
            "berth {args:?} waited {:?} for a stalled pull",
            t.elapsed()
        );
    };
    quick(&["rmi", img]);
    image(&env);
    quick(&["image", "prune"]);
    quick(&["system", "prune", "-a", "-f"]);
    assert!(env.images_json().as_array().unwrap().is_empty());
    // The pull's own files were spared.
    assert!(
        !tmp_entries(&env).is_empty(),
        "prune removed a live pull's files"
    );
    // SAFETY: signals our own child.
    unsafe { libc::kill(pull.id() as i32, libc::SIGINT) };
    pull.wait().unwrap();
}

#[test]
fn a_container_whose_monitor_was_killed_exits_137_on_stop_and_leaves_no_zombie() {
    let env = Env::new();
    let img = image(&env);
    let id = env
        .berth(&["run", "-d", "--name", "orphan", img, "sleep", "100"])
        .ok()
        .stdout
        .trim()
        .to_string();
    let state = std::fs::read_to_string(
        env.run_root
            .path()
            .join("containers")
            .join(&id)
            .join("state"),
    )
    .unwrap();
    let field = |k: &str| -> i32 {
        state
            .lines()
            .find_map(|l| l.strip_prefix(k))
            .unwrap()
            .parse()
            .unwrap()
    };
    let (mpid, pid) = (
        field("monitor_pid="),
        inspect(&env, "orphan")["State"]["Pid"].as_i64().unwrap() as i32,
    );
    assert!(pid > 0 && mpid > 0);
    // SAFETY: kill has no memory effects.
    assert_eq!(unsafe { libc::kill(mpid, libc::SIGKILL) }, 0);
    let gone = |p: i32| {
        std::fs::read_to_string(format!("/proc/{p}/stat")).map_or(true, |s| s.contains(") Z "))
    };
    let t = Instant::now();
    while !gone(mpid) {
        assert!(t.elapsed() < Duration::from_secs(10));
        std::thread::sleep(Duration::from_millis(20));
    }
    env.berth(&["stop", "-t", "1", "orphan"]).ok();
    let c = inspect(&env, "orphan");
    assert_eq!(c["State"]["Status"], "exited");
    assert_eq!(c["State"]["ExitCode"], 137, "{c}");
    // Nothing of it is left, not even a zombie.
    let t = Instant::now();
    while std::path::Path::new(&format!("/proc/{pid}")).exists() {
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "the container's process {pid} is left: {:?}",
            std::fs::read_to_string(format!("/proc/{pid}/stat"))
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}
