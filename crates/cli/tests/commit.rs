//! `berth commit`, `berth export` and `berth import --change`, end to end:
//! real containers change their files, the changes become an image's
//! layer, and containers of the new image see exactly them.

mod common;
use common::*;
use std::path::Path;
use std::process::Command;

const APPLETS: [&str; 25] = [
    "chown", "sh", "echo", "cat", "true", "sleep", "ls", "rm", "mkdir", "mkfifo", "mknod", "ln",
    "mv", "test", "find", "touch", "chmod", "printf", "dd", "seq", "stat", "sort", "id", "pwd",
    "env",
];

fn image(env: &Env) -> &'static str {
    let mut t = busybox_rootfs(&APPLETS);
    t.file("etc/old", b"old\n", 0o644)
        .file("etc/keep", b"keep\n", 0o644)
        .dir("data/", 0o755)
        .dir("data/sub/", 0o755)
        .file("data/sub/lower", b"lower\n", 0o644);
    import_image(env, t.end(), "bb:latest")
}

fn inspect_image(env: &Env, name: &str) -> serde_json::Value {
    let v: serde_json::Value =
        serde_json::from_str(&env.berth(&["image", "inspect", name]).ok().stdout).unwrap();
    v[0].clone()
}

fn image_count(env: &Env) -> usize {
    env.images_json().as_array().map_or(0, Vec::len)
}

/// The layers of `image` (uncompressed, from a docker-archive `save`), as
/// one byte string, for scanning what a commit wrote.
fn saved_bytes(env: &Env, image: &str) -> Vec<u8> {
    let o = env.cmd().args(["save", image]).output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    o.stdout
}

/// Adds, changes and deletes files and a directory, then commits: a
/// container of the new image sees exactly that (deleted files gone,
/// the replaced directory without the image's contents), with owners,
/// modes, links, a fifo; -q prints the bare id, no name a dangling image.
#[test]
fn commit_makes_an_image_of_exactly_the_containers_changes() {
    let env = Env::new();
    let img = image(&env);
    env.berth(&[
        "run",
        "--name",
        "c1",
        img,
        "sh",
        "-c",
        "echo new > /etc/new && echo changed > /etc/keep && rm /etc/old && \
         rm -rf /data/sub && mkdir /data/sub && echo upper > /data/sub/upper && \
         chmod 4711 /etc/new && \
         ln /etc/new /etc/hard && ln -s ../etc/new /data/sym && mkfifo /data/fifo && \
         dd if=/dev/zero of=/big bs=1M count=3 2>/dev/null",
    ])
    .ok();
    let before = image_count(&env);
    let out = env.berth(&["commit", "-q", "c1"]).ok();
    let id = out.stdout.trim().to_string();
    assert_eq!(id.len(), 64, "-q prints the bare id: {id:?}");
    assert_eq!(image_count(&env), before + 1);
    assert!(
        env.berth(&["images"]).ok().stdout.contains("<none>"),
        "an untagged commit is a dangling image"
    );
    let out = env.berth(&["commit", "c1", "bb:changed"]).ok();
    assert!(out.stdout.trim().starts_with("sha256:"), "{}", out.stdout);
    let seen = env
        .berth(&[
            "run",
            "--rm",
            "bb:changed",
            "sh",
            "-c",
            "cat /etc/new /etc/keep; test -e /etc/old || echo old-gone; ls /data/sub; \
             stat -c '%a %h %s' /etc/new /big; stat -c '%F' /data/fifo; \
             cat /data/sym; test /etc/new -ef /etc/hard && echo same-inode",
        ])
        .ok()
        .stdout;
    assert_eq!(
        seen,
        "new\nchanged\nold-gone\nupper\n4711 2 4\n644 1 3145728\nfifo\nnew\nsame-inode\n"
    );
    // The same container committed again gives the same layer (the walk
    // is deterministic): the two images share their top layer.
    let a = inspect_image(&env, &id);
    let b = inspect_image(&env, "bb:changed");
    assert_eq!(a["RootFS"]["Layers"], b["RootFS"]["Layers"]);
    assert_eq!(b["RootFS"]["Layers"].as_array().unwrap().len(), 2);
}

/// --change instructions reach the image config (`image inspect` and the
/// containers made from it), with the container's own config under them;
/// an instruction outside Docker's set is refused by name and makes no
/// image; -a and -m land in the history.
#[test]
fn commit_applies_changes_and_refuses_bad_ones() {
    let env = Env::new();
    let img = image(&env);
    env.berth(&[
        "create",
        "--name",
        "c2",
        "-e",
        "FROM_RUN=1",
        "-l",
        "team=core",
        "-w",
        "/etc",
        img,
        "true",
    ])
    .ok();
    let before = image_count(&env);
    for bad in ["RUN rm -rf /", "FROM scratch", "EXPOSE notaport"] {
        let o = env.berth(&["commit", "-c", bad, "c2", "bb:bad"]);
        assert_ne!(o.code, 0, "{bad} was accepted");
        let word = bad.split(' ').next().unwrap();
        assert!(o.stderr.contains(word), "{bad}: {}", o.stderr);
        assert!(o.stderr.contains("--change"), "{bad}: {}", o.stderr);
    }
    assert_eq!(image_count(&env), before, "a refused commit made an image");
    env.berth(&[
        "commit",
        "-a",
        "Ann <ann@example.com>",
        "-m",
        "the message",
        "-c",
        "CMD [\"sh\", \"-c\", \"echo $GREETING from $(pwd) as $(id -u)\"]",
        "-c",
        "ENV GREETING=hello",
        "--change",
        "EXPOSE 8080 53/udp",
        "-c",
        "WORKDIR /data",
        "-c",
        "USER 1000",
        "c2",
        "bb:changes",
    ])
    .ok();
    let i = inspect_image(&env, "bb:changes");
    let c = &i["Config"];
    assert_eq!(
        c["Cmd"],
        serde_json::json!(["sh", "-c", "echo $GREETING from $(pwd) as $(id -u)"])
    );
    assert_eq!(
        c["Env"],
        serde_json::json!(["FROM_RUN=1", "GREETING=hello"])
    );
    assert_eq!(
        c["ExposedPorts"],
        serde_json::json!({"8080/tcp": {}, "53/udp": {}})
    );
    assert_eq!(c["WorkingDir"], "/data");
    assert_eq!(c["User"], "1000");
    assert_eq!(c["Labels"], serde_json::json!({"team": "core"}));
    assert_eq!(i["Author"], "Ann <ann@example.com>");
    let h = i["History"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(h["comment"], "the message");
    assert_eq!(h["author"], "Ann <ann@example.com>");
    let out = env.berth(&["run", "--rm", "bb:changes"]).ok().stdout;
    assert_eq!(out, "hello from /data as 1000\n");
    // --format docker: Docker's container and container_config fields.
    env.berth(&["commit", "--format", "docker", "c2", "bb:docker"])
        .ok();
    let saved = saved_bytes(&env, "bb:docker");
    let s = String::from_utf8_lossy(&saved);
    assert!(s.contains("\"container_config\""), "no container_config");
    assert!(s.contains("\"container\":\""), "no container");
    // Its layers (the imported base's uncompressed one among them) are
    // read back: the image runs.
    let out = env
        .berth(&["run", "--rm", "bb:docker", "cat", "/etc/keep"])
        .ok()
        .stdout;
    assert_eq!(out, "keep\n");
}

/// A running container is paused during the commit and running after;
/// --pause=false leaves it alone; a paused one stays paused.
#[test]
fn commit_pauses_a_running_container_and_thaws_it() {
    let env = Env::new();
    let img = image(&env);
    env.berth(&[
        "run",
        "-d",
        "--name",
        "live",
        img,
        "sh",
        "-c",
        "echo hi > /etc/live; while :; do sleep 0.1; done",
    ])
    .ok();
    let status = |c: &str| {
        env.berth(&["inspect", "--format", "{{.State.Status}}", c])
            .ok()
            .stdout
            .trim()
            .to_string()
    };
    // The file is written before the commit looks.
    for _ in 0..100 {
        if env
            .berth(&["diff", "live"])
            .ok()
            .stdout
            .contains("/etc/live")
        {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let events = |since: &str| {
        env.berth(&["events", "--since", since, "--until", "0s"])
            .ok()
            .stdout
    };
    let t0 = "0";
    env.berth(&["commit", "live", "bb:live"]).ok();
    assert_eq!(status("live"), "running");
    let e = events(t0);
    let (p, u, c) = (
        e.find(" pause ").expect("no pause event"),
        e.find(" unpause ").expect("no unpause event"),
        e.find(" commit ").expect("no commit event"),
    );
    assert!(p < c && c < u, "{e}");
    let n_pause = e.matches(" pause ").count();
    env.berth(&["commit", "--pause=false", "live", "bb:live2"])
        .ok();
    assert_eq!(
        events(t0).matches(" pause ").count(),
        n_pause,
        "--pause=false paused"
    );
    env.berth(&["pause", "live"]).ok();
    env.berth(&["commit", "live", "bb:live3"]).ok();
    assert_eq!(status("live"), "paused");
    env.berth(&["unpause", "live"]).ok();
    // A commit that fails during the walk (a name only a whiteout may
    // have) thaws the container all the same.
    env.berth(&["exec", "live", "touch", "/data/.wh.sneaky"])
        .ok();
    let o = env.berth(&["commit", "live", "bb:live4"]);
    assert_ne!(o.code, 0);
    assert!(o.stderr.contains("data/.wh.sneaky"), "{}", o.stderr);
    assert_eq!(status("live"), "running");
    let left: Vec<_> = std::fs::read_dir(env.root.path().join("tmp"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert!(left.is_empty(), "the failed commit left {left:?} in tmp/");
    env.berth(&["exec", "live", "rm", "/data/.wh.sneaky"]).ok();
    let out = env
        .berth(&["run", "--rm", "bb:live", "cat", "/etc/live"])
        .ok()
        .stdout;
    assert_eq!(out, "hi\n");
}

/// What a container makes to mislead the walk: symlinks out (to a host
/// file that exists), a fifo (reading it would hang), a device node, a
/// name with a newline, a directory symlinked to /, and a file the
/// container keeps swapping for a symlink to a host file while commits
/// (--pause=false) and exports read it. The host files are never read:
/// the links are written as links, nothing blocks, and no layer or
/// export holds a host file's contents.
#[test]
fn hostile_container_content_never_leads_outside() {
    let env = Env::new();
    let img = image(&env);
    let host = tempfile::tempdir().unwrap();
    let secret = host.path().join("secret");
    std::fs::write(&secret, "HOST-SECRET-0xdeadbeef\n").unwrap();
    let s = secret.to_str().unwrap();
    let script = format!(
        "ln -s {s} /etc/to-host && ln -s / /rootlink && ln -s ../../../../{s} /data/up && \
         mkfifo /data/fifo && mknod /data/null c 1 3 && printf x > \"/data/new
line\" && \
         while :; do ln -s {s} /data/f.tmp && mv /data/f.tmp /data/f; \
         echo inside > /data/f.tmp && mv /data/f.tmp /data/f; done"
    );
    env.berth(&["run", "-d", "--name", "hh", img, "sh", "-c", &script])
        .ok();
    for _ in 0..100 {
        if env.berth(&["diff", "hh"]).ok().stdout.contains("/data/f") {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let mut links = 0;
    for i in 0..15 {
        let name = format!("bb:h{i}");
        env.berth(&["commit", "--pause=false", "hh", &name]).ok();
        let saved = saved_bytes(&env, &name);
        assert!(
            !saved.windows(11).any(|w| w == b"HOST-SECRET"),
            "commit {i} read the host file"
        );
        links += saved
            .windows(s.len())
            .filter(|w| *w == s.as_bytes())
            .count();
        let o = env.cmd().args(["export", "hh"]).output().unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        assert!(
            !o.stdout.windows(11).any(|w| w == b"HOST-SECRET"),
            "export {i} read the host file"
        );
    }
    assert!(
        links > 0,
        "the symlinks to the host were not written as links"
    );
    env.berth(&["rm", "-f", "hh"]).ok();
    let out = env
        .berth(&[
            "run",
            "--rm",
            "bb:h0",
            "sh",
            "-c",
            "readlink /etc/to-host; stat -c '%F %t:%T' /data/null; stat -c %F /data/fifo; \
             cat '/data/new\nline'; echo; ls -d /rootlink/bin",
        ])
        .ok()
        .stdout;
    assert_eq!(
        out,
        format!("{s}\ncharacter special file 1:3\nfifo\nx\n/rootlink/bin\n")
    );
    assert_eq!(
        std::fs::read_to_string(&secret).unwrap(),
        "HOST-SECRET-0xdeadbeef\n"
    );
}

/// `export` writes the merged tree (the image's files with the
/// container's changes; deleted files absent) to stdout or -o FILE, for a
/// stopped container (mounted for the export, unmounted after) and a
/// running one; never to a terminal.
#[test]
fn export_writes_the_containers_whole_filesystem() {
    let env = Env::new();
    let img = image(&env);
    env.berth(&[
        "run",
        "--name",
        "xx",
        img,
        "sh",
        "-c",
        "echo new > /etc/new && rm /etc/old && rm -rf /data/sub",
    ])
    .ok();
    let list = |tar: &[u8]| {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("t.tar");
        std::fs::write(&p, tar).unwrap();
        let o = Command::new("tar").arg("-tf").arg(&p).output().unwrap();
        assert!(
            o.status.success(),
            "tar -t: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8(o.stdout).unwrap()
    };
    let o = env.cmd().args(["export", "xx"]).output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let names = list(&o.stdout);
    for want in [
        "bin/busybox\n",
        "bin/sh\n",
        "etc/new\n",
        "etc/keep\n",
        "etc/passwd\n",
        "data/\n",
    ] {
        assert!(names.contains(want), "{want} missing from\n{names}");
    }
    for gone in ["etc/old", "data/sub", ".wh."] {
        assert!(!names.contains(gone), "{gone} in\n{names}");
    }
    assert!(
        !mounts_under(env.run_root.path()) && !mounts_under(env.root.path()),
        "the export left the stopped container's root mounted"
    );
    let out = env.root.path().join("x.tar");
    env.berth(&["container", "export", "-o", out.to_str().unwrap(), "xx"])
        .ok();
    assert_eq!(list(&std::fs::read(&out).unwrap()), names);
    // A running container: its live tree.
    env.berth(&[
        "run",
        "-d",
        "--name",
        "rr",
        img,
        "sh",
        "-c",
        "echo live > /live; sleep 100",
    ])
    .ok();
    let mut names = String::new();
    for _ in 0..100 {
        let o = env.cmd().args(["export", "rr"]).output().unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        names = list(&o.stdout);
        if names.contains("live\n") {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert!(
        names.contains("live\n") && names.contains("proc/\n"),
        "{names}"
    );
    // Never a tar to a terminal: script(1) gives the command one.
    let cmdline = format!(
        "{} --root {} --run-root {} export xx",
        env!("CARGO_BIN_EXE_berth"),
        env.root.path().display(),
        env.run_root.path().display()
    );
    let o = Command::new("script")
        .args(["-qec", &cmdline, "/dev/null"])
        .env("BERTH_DEFAULT_NETWORK", "none")
        .output()
        .expect("script (bsdutils) is needed for this test");
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(!o.status.success(), "{text}");
    assert!(
        text.contains("refusing to write a tar to a terminal"),
        "{text}"
    );
}

fn mounts_under(p: &Path) -> bool {
    let prefix = format!("{}/", p.display());
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .any(|l| l.split(' ').nth(4).is_some_and(|m| m.starts_with(&prefix)))
}

/// `import -c/-m`: the same --change set as commit, refused the same way.
#[test]
fn import_takes_changes_and_a_message() {
    let env = Env::new();
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("rootfs.tar");
    std::fs::write(&p, busybox_rootfs(&APPLETS).end()).unwrap();
    let p = p.to_str().unwrap();
    let o = env.berth(&["import", "-c", "COPY a b", p, "bad:1"]);
    assert_ne!(o.code, 0);
    assert!(o.stderr.contains("COPY"), "{}", o.stderr);
    env.berth(&[
        "import",
        "-c",
        "ENTRYPOINT [\"echo\"]",
        "-c",
        "CMD [\"imported\"]",
        "-c",
        "LABEL a=b",
        "-m",
        "from a tarball",
        p,
        "imp:1",
    ])
    .ok();
    let i = inspect_image(&env, "imp:1");
    assert_eq!(i["Config"]["Entrypoint"], serde_json::json!(["echo"]));
    assert_eq!(i["Config"]["Labels"], serde_json::json!({"a": "b"}));
    assert_eq!(i["History"][0]["comment"], "from a tarball");
    assert_eq!(
        env.berth(&["run", "--rm", "imp:1"]).ok().stdout,
        "imported\n"
    );
}

/// The config fields berth commit writes are podman's for the same
/// container (podman is installed here): the container's env, workdir,
/// user and labels under the changes. podman adds its own defaults to Env
/// (PATH, TERM, container=podman), which berth does not: compared without;
/// and it writes STOPSIGNAL as a number where Docker and berth keep the name.
#[test]
fn commit_config_agrees_with_podman_commit() {
    let env = Env::new();
    let img = image(&env);
    let tarfile = tempfile::tempdir().unwrap();
    let tp = tarfile.path().join("rootfs.tar");
    let mut t = busybox_rootfs(&APPLETS);
    t.file("etc/old", b"old\n", 0o644);
    std::fs::write(&tp, t.end()).unwrap();
    let proot = tempfile::tempdir().unwrap();
    let prun = tempfile::Builder::new()
        .prefix("bp")
        .tempdir_in("/run")
        .unwrap();
    let podman = |args: &[&str]| {
        let o = Command::new("podman")
            .arg("--root")
            .arg(proot.path())
            .arg("--runroot")
            .arg(prun.path())
            .args([
                "--storage-driver",
                "vfs",
                "--cgroup-manager",
                "cgroupfs",
                "--events-backend",
                "file",
            ])
            .args(args)
            .output()
            .expect("podman is needed for this test");
        assert!(
            o.status.success(),
            "podman {args:?}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8(o.stdout).unwrap()
    };
    podman(&["import", "-q", tp.to_str().unwrap(), "pbb:1"]);
    let create = [
        "--name",
        "cc",
        "-e",
        "B=2",
        "-w",
        "/etc",
        "-u",
        "1000:1000",
        "--label",
        "l=1",
    ];
    let changes = [
        "-c",
        "CMD [\"cat\", \"/etc/new\"]",
        "-c",
        "ENV A=1",
        "-c",
        "EXPOSE 80",
        "-c",
        "STOPSIGNAL SIGINT",
        "-c",
        "VOLUME /v",
    ];
    let mut a = vec!["create", "--network", "none"];
    a.extend(create);
    a.extend(["pbb:1", "true"]);
    podman(&a);
    let mut a = vec!["create"];
    a.extend(create);
    a.extend([img, "true"]);
    env.berth(&a).ok();
    let mut a = vec!["commit", "-q"];
    a.extend(changes);
    a.extend(["cc", "pbb:2"]);
    podman(&a);
    let mut a = vec!["commit", "-q"];
    a.extend(changes);
    a.extend(["cc", "bb:2"]);
    env.berth(&a).ok();
    let theirs: serde_json::Value = serde_json::from_str(&podman(&[
        "image",
        "inspect",
        "pbb:2",
        "--format",
        "{{json .Config}}",
    ]))
    .unwrap();
    let ours = inspect_image(&env, "bb:2")["Config"].clone();
    for k in [
        "Cmd",
        "WorkingDir",
        "User",
        "Labels",
        "ExposedPorts",
        "Volumes",
        "Entrypoint",
    ] {
        assert_eq!(ours[k], theirs[k], "{k}");
    }
    // Docker keeps STOPSIGNAL as written; podman writes the number.
    assert_eq!(ours["StopSignal"], "SIGINT");
    assert_eq!(theirs["StopSignal"], "2");
    let env_of = |v: &serde_json::Value| -> Vec<String> {
        v["Env"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s.as_str().unwrap().to_string())
            .filter(|s| {
                !["PATH=", "TERM=", "container="]
                    .iter()
                    .any(|p| s.starts_with(p))
            })
            .collect()
    };
    assert_eq!(env_of(&ours), env_of(&theirs));
    podman(&["rm", "-f", "cc"]);
    podman(&["rmi", "-a", "-f"]);
}

/// A container with a user namespace writes its files with host ids
/// (400000 + its own): the committed layer and the export have the ids the
/// container saw, so the image is the same whoever runs it.
#[test]
fn commit_and_export_of_a_userns_container_keep_the_containers_owners() {
    let env = Env::new();
    let img = image(&env);
    env.berth(&[
        "run",
        "--name",
        "uns",
        "--uidmap",
        "0:400000:5000",
        "--gidmap",
        "0:410000:5000",
        img,
        "sh",
        "-c",
        "echo r > /by-root && echo a > /by-app && chown 7:8 /by-app",
    ])
    .ok();
    env.berth(&["commit", "uns", "bb:uns"]).ok();
    let out = env
        .berth(&[
            "run", "--rm", "bb:uns", "stat", "-c", "%n %u:%g", "/by-root", "/by-app",
        ])
        .ok()
        .stdout;
    assert_eq!(out, "/by-root 0:0\n/by-app 7:8\n");
    let o = env.cmd().args(["export", "uns"]).output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let mut r = berth_image::tar::Reader::new(&o.stdout[..]);
    let mut seen = Vec::new();
    while let Some(e) = r.next_entry().unwrap() {
        if matches!(e.path.as_slice(), b"by-app" | b"by-root" | b"etc/passwd") {
            seen.push((String::from_utf8_lossy(&e.path).into_owned(), e.uid, e.gid));
        }
    }
    seen.sort();
    assert_eq!(
        seen,
        vec![
            ("by-app".to_string(), 7, 8),
            ("by-root".to_string(), 0, 0),
            ("etc/passwd".to_string(), 0, 0),
        ]
    );
}
