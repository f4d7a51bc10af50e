//! `berth build`, end to end: Dockerfiles built into the store from
//! contexts the tests make, the images run, the cache checked (a rebuild
//! that starts no container), and hostile contexts.

mod common;
use common::*;
use std::path::Path;

const APPLETS: [&str; 22] = [
    "sh", "echo", "cat", "true", "false", "sleep", "ls", "rm", "mkdir", "ln", "test", "touch",
    "chmod", "printf", "stat", "id", "pwd", "env", "seq", "find", "wc", "[",
];

/// A busybox image `bb` with a user `app` (1000:1000) (each path once in
/// its layer: buildah refuses duplicates).
fn image(env: &Env) -> &'static str {
    import_image(env, bb_tar(), "bb:latest")
}

/// The layer of `bb`.
fn bb_tar() -> Vec<u8> {
    let bb =
        std::fs::read(BUSYBOX).expect("busybox-static is needed: apt-get install busybox-static");
    let mut t = berth_image::tar::build::Tar::default();
    t.dir("bin/", 0o755).file("bin/busybox", &bb, 0o755);
    for a in APPLETS {
        t.symlink(&format!("bin/{a}"), "busybox");
    }
    t.dir("etc/", 0o755)
        .file(
            "etc/passwd",
            b"root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000::/home/app:/bin/sh\n",
            0o644,
        )
        .file("etc/group", b"root:x:0:\napp:x:1000:\n", 0o644)
        .dir("tmp/", 0o1777);
    t.end()
}

/// A context directory with `files` (path, contents).
fn context(files: &[(&str, &str)]) -> tempfile::TempDir {
    let d = tempfile::tempdir().unwrap();
    for (p, c) in files {
        let p = d.path().join(p);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, c).unwrap();
    }
    d
}

fn build(env: &Env, ctx: &Path, args: &[&str]) -> Out {
    let mut a = vec!["build"];
    a.extend_from_slice(args);
    a.push(ctx.to_str().unwrap());
    env.berth(&a)
}

fn run(env: &Env, image: &str, script: &str) -> String {
    env.berth(&["run", "--rm", image, "sh", "-c", script])
        .ok()
        .stdout
}

fn config(env: &Env, image: &str) -> serde_json::Value {
    let v: serde_json::Value =
        serde_json::from_str(&env.berth(&["image", "inspect", image]).ok().stdout).unwrap();
    v[0]["Config"].clone()
}

/// "N steps run, M from the cache, K containers" from a build's stderr.
fn counts(o: &Out) -> (usize, usize, usize) {
    let line = o
        .stderr
        .lines()
        .find(|l| l.contains("from the cache"))
        .unwrap_or_else(|| panic!("no summary in: {}", o.stderr));
    let n: Vec<usize> = line
        .split(|c: char| !c.is_ascii_digit())
        .filter(|s| !s.is_empty())
        .map(|s| s.parse().unwrap())
        .collect();
    (n[0], n[1], n[2])
}

/// Two independent stages that can only finish if they run at the same
/// time (each waits for the other's file in a shared cache mount), a
/// final stage that copies from both; then a rebuild with nothing changed
/// (no container, the same image), one source file changed (only the
/// steps from its COPY on run), and --no-cache.
#[test]
fn multi_stage_parallel_pair_and_the_cache() {
    let env = Env::new();
    image(&env);
    let ctx = context(&[
        ("src/main.txt", "v1\n"),
        ("src/other.txt", "other\n"),
        (
            "Dockerfile",
            "FROM bb AS a
RUN --mount=type=cache,id=meet,target=/meet touch /meet/a && i=0 && \\
    while [ ! -e /meet/b ]; do i=$((i+1)); [ $i -lt 400 ] || exit 7; sleep 0.05; done && echo a > /a
FROM bb AS b
RUN --mount=type=cache,id=meet,target=/meet touch /meet/b && i=0 && \\
    while [ ! -e /meet/a ]; do i=$((i+1)); [ $i -lt 400 ] || exit 7; sleep 0.05; done && echo b > /b
FROM bb
COPY --from=a /a /a
COPY --from=b /b /b
COPY src/ /src/
RUN cat /src/main.txt > /copied
CMD [\"cat\", \"/a\", \"/b\", \"/copied\"]
",
        ),
    ]);
    let o = build(&env, ctx.path(), &["-t", "app"]).ok();
    let id = o.stdout.trim().to_string();
    assert!(id.starts_with("sha256:"), "{}", o.stdout);
    assert_eq!(counts(&o).2, 3, "{}", o.stderr);
    assert_eq!(env.berth(&["run", "--rm", "app"]).ok().stdout, "a\nb\nv1\n");
    // Nothing changed: no container, the same image, fast.
    let t = std::time::Instant::now();
    let o = build(&env, ctx.path(), &["-t", "app"]).ok();
    let took = t.elapsed();
    assert_eq!(o.stdout.trim(), id);
    let (ran, cached, containers) = counts(&o);
    assert_eq!((ran, containers), (0, 0), "{}", o.stderr);
    assert_eq!(cached, 6, "{}", o.stderr);
    assert!(took.as_secs_f64() < 2.0, "a cached rebuild took {took:?}");
    // A file changed: the COPY of src/ and the RUN after it run again.
    std::fs::write(ctx.path().join("src/main.txt"), "v2\n").unwrap();
    let o = build(&env, ctx.path(), &["-t", "app"]).ok();
    assert_ne!(o.stdout.trim(), id);
    assert_eq!(counts(&o), (2, 4, 1), "{}", o.stderr);
    assert_eq!(run(&env, "app", "cat /copied"), "v2\n");
    // Only an mtime changed: still cached.
    let f = std::fs::File::options()
        .write(true)
        .open(ctx.path().join("src/other.txt"))
        .unwrap();
    f.set_modified(std::time::SystemTime::UNIX_EPOCH).unwrap();
    let o = build(&env, ctx.path(), &["-t", "app"]).ok();
    assert_eq!(counts(&o).0, 0, "{}", o.stderr);
    // --no-cache runs every step.
    let o = build(&env, ctx.path(), &["--no-cache", "-t", "app"]).ok();
    assert_eq!(counts(&o).2, 3, "{}", o.stderr);
    // No build container is left behind.
    assert_eq!(env.berth(&["ps", "-aq"]).ok().stdout, "");
    // `--target a` builds a alone; `builder prune` empties the cache.
    let o = build(&env, ctx.path(), &["--target", "a", "-t", "only-a"]).ok();
    assert_eq!(counts(&o).2, 0, "{}", o.stderr);
    assert_eq!(
        run(&env, "only-a", "cat /a; test -e /b || echo no-b"),
        "a\nno-b\n"
    );
    env.berth(&["builder", "prune", "-f"]).ok();
    let o = build(&env, ctx.path(), &["-t", "app"]).ok();
    assert_eq!(counts(&o).1, 0, "{}", o.stderr);
}

/// ARG before FROM, --build-arg, ENV and its expansion, WORKDIR relative
/// to the one before, USER, and the config docker build writes.
#[test]
fn args_env_workdir_user_and_the_config() {
    let env = Env::new();
    image(&env);
    let ctx = context(&[(
        "Dockerfile",
        "ARG BASE=bb
FROM $BASE
ARG GREETING=hello
ARG UNUSED
ENV NAME=world MSG=\"${GREETING} ${NAME:-nobody}\"
ENV FULL=$MSG
WORKDIR /srv
WORKDIR app/../data
USER app
RUN echo \"$GREETING $NAME $FULL\" > /tmp/out && pwd >> /tmp/out && id -u >> /tmp/out
LABEL org.example.v=\"$GREETING\" other=1
EXPOSE 80 53/udp
VOLUME /cache
STOPSIGNAL SIGINT
HEALTHCHECK --interval=5s --retries=2 CMD true
SHELL [\"/bin/sh\", \"-ec\"]
ENTRYPOINT echo entry
ONBUILD RUN echo later > /tmp/later
",
    )]);
    let args = [
        "--build-arg",
        "GREETING=hi",
        "--label",
        "built=yes",
        "-t",
        "cfg",
    ];
    let first = build(&env, ctx.path(), &args).ok().stdout;
    // Rebuilt with the same --label: the same image.
    assert_eq!(build(&env, ctx.path(), &args).ok().stdout, first);
    let c = config(&env, "cfg");
    assert_eq!(
        c["Env"],
        serde_json::json!([
            "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            "NAME=world",
            "MSG=hi nobody",
            "FULL=hi nobody"
        ])
    );
    assert_eq!(c["WorkingDir"], "/srv/data");
    assert_eq!(c["User"], "app");
    assert_eq!(c["Labels"]["org.example.v"], "hi");
    assert_eq!(c["Labels"]["built"], "yes");
    assert_eq!(
        c["ExposedPorts"],
        serde_json::json!({"80/tcp": {}, "53/udp": {}})
    );
    assert_eq!(c["Volumes"], serde_json::json!({"/cache": {}}));
    assert_eq!(c["StopSignal"], "SIGINT");
    assert_eq!(
        c["Healthcheck"]["Test"],
        serde_json::json!(["CMD-SHELL", "true"])
    );
    assert_eq!(c["Healthcheck"]["Interval"], 5_000_000_000u64);
    assert_eq!(c["Healthcheck"]["Retries"], 2);
    assert_eq!(c["Shell"], serde_json::json!(["/bin/sh", "-ec"]));
    assert_eq!(
        c["Entrypoint"],
        serde_json::json!(["/bin/sh", "-ec", "echo entry"])
    );
    assert!(c["Cmd"].is_null(), "{c}");
    assert_eq!(
        c["OnBuild"],
        serde_json::json!(["RUN echo later > /tmp/later"])
    );
    // The args reached the RUN; not the image.
    let out = env
        .berth(&["run", "--rm", "--entrypoint", "cat", "cfg", "/tmp/out"])
        .ok()
        .stdout;
    assert_eq!(out, "hi world hi nobody\n/srv/data\n1000\n");
    // An image built FROM it runs its ONBUILD trigger first, and does not
    // pass it on.
    // Its WORKDIR's directory is made at once, owned by the USER (app),
    // as BuildKit makes it.
    let child = context(&[(
        "Dockerfile",
        "FROM cfg\nRUN cat /tmp/later > /tmp/seen\nWORKDIR /owned/x\nCMD [\"sh\"]\n",
    )]);
    build(&env, child.path(), &["-t", "child"]).ok();
    assert!(config(&env, "child")["OnBuild"].is_null());
    let out = env
        .berth(&["run", "--rm", "--entrypoint", "cat", "child", "/tmp/seen"])
        .ok()
        .stdout;
    assert_eq!(out, "later\n");
    let out = env
        .berth(&[
            "run",
            "--rm",
            "--entrypoint",
            "",
            "child",
            "stat",
            "-c",
            "%n %u %a",
            "/owned",
            "/owned/x",
        ])
        .ok()
        .stdout;
    assert_eq!(out, "/owned 1000 755\n/owned/x 1000 755\n");
}

/// COPY --chown/--chmod, globs, directories copied as Docker copies them
/// (their contents), .dockerignore with an exception, heredocs, and
/// whiteouts from `rm` in a RUN.
#[test]
fn copy_flags_globs_ignore_heredocs_and_whiteouts() {
    let env = Env::new();
    image(&env);
    let ctx = context(&[
        ("a.txt", "a\n"),
        ("b.txt", "b\n"),
        ("c.md", "c\n"),
        ("dir/sub/x", "x\n"),
        ("dir/skip.log", "skip\n"),
        ("dir/keep.log", "keep\n"),
        (".dockerignore", "**/*.log\n!dir/keep.log\n"),
        (
            "Dockerfile",
            "FROM bb
COPY --chown=app:app --chmod=640 *.txt /dst/
COPY dir /dir
COPY c.md /renamed
RUN mkdir -p /gone/deep && echo x > /gone/deep/f && echo y > /keep
RUN rm -rf /gone && rm /bin/true
COPY <<EOF /etc/greeting
hello $HOSTNAME
EOF
RUN <<EOT
set -e
echo from heredoc > /heredoc
cat <<IN > /nested
nested
IN
EOT
",
        ),
    ]);
    build(&env, ctx.path(), &["-t", "copies"]).ok();
    let out = run(
        &env,
        "copies",
        "stat -c '%n %a %u:%g' /dst/a.txt /dst/b.txt; ls /dst; find /dir | sort; cat /renamed /etc/greeting /heredoc /nested; \
         test -e /gone && echo gone-is-there; test -e /bin/true && echo true-is-there; cat /keep",
    );
    assert_eq!(
        out,
        "/dst/a.txt 640 1000:1000\n/dst/b.txt 640 1000:1000\na.txt\nb.txt\n\
         /dir\n/dir/keep.log\n/dir/sub\n/dir/sub/x\n\
         c\nhello \nfrom heredoc\nnested\ny\n"
    );
}

/// A hostile context: a symlink to /etc/shadow, `COPY ../x`, and an ADD
/// tarball with `../` and absolute names: an error, or what stays inside.
#[test]
fn hostile_contexts_stay_inside() {
    let env = Env::new();
    image(&env);
    let ctx = context(&[("inside", "in\n")]);
    std::os::unix::fs::symlink("/etc/shadow", ctx.path().join("shadow")).unwrap();
    // The symlink resolves inside the context, where there is no shadow.
    std::fs::write(ctx.path().join("Dockerfile"), "FROM bb\nCOPY shadow /x\n").unwrap();
    let o = build(&env, ctx.path(), &[]);
    assert_ne!(o.code, 0);
    assert!(
        o.stderr.contains("not found in the build context"),
        "{}",
        o.stderr
    );
    std::os::unix::fs::symlink("../../../../../../etc", ctx.path().join("etc")).unwrap();
    std::fs::write(
        ctx.path().join("Dockerfile"),
        "FROM bb\nCOPY etc/shadow /x\n",
    )
    .unwrap();
    let o = build(&env, ctx.path(), &[]);
    assert_ne!(o.code, 0, "{}", o.stderr);
    // `..` is cleaned at the context's root: `../inside` is `inside`.
    std::fs::write(
        ctx.path().join("Dockerfile"),
        "FROM bb\nCOPY ../../inside /y\nCOPY up /etcdir/\n",
    )
    .unwrap();
    std::fs::remove_file(ctx.path().join("etc")).unwrap();
    std::os::unix::fs::symlink("../../../../../..", ctx.path().join("up")).unwrap();
    build(&env, ctx.path(), &["-t", "h1"]).ok();
    // `up` (a link far above) and `..` resolve to the context's root.
    let out = run(
        &env,
        "h1",
        "cat /y; test -e /etcdir/passwd && echo HOST; ls /etcdir",
    );
    assert!(out.starts_with("in\n") && !out.contains("HOST"), "{out}");
    assert!(out.contains("inside"), "{out}");
    // An ADD archive's `../` and absolute names land inside its target.
    let mut t = berth_image::tar::build::Tar::default();
    t.file("ok", b"ok\n", 0o644)
        .file("../../../../escaped", b"bad\n", 0o644)
        .file("/abs", b"abs\n", 0o644);
    std::fs::write(ctx.path().join("evil.tar"), t.end()).unwrap();
    std::fs::write(
        ctx.path().join("Dockerfile"),
        "FROM bb\nADD evil.tar /unpacked/\n",
    )
    .unwrap();
    let o = build(&env, ctx.path(), &["-t", "h2"]);
    if o.code == 0 {
        let out = run(
            &env,
            "h2",
            "find /unpacked | sort; test -e /escaped && echo ESCAPED; test -e /abs && echo ABS",
        );
        assert!(!out.contains("ESCAPED") && !out.contains("ABS"), "{out}");
        assert!(out.contains("/unpacked/ok"), "{out}");
    } else {
        assert!(o.stderr.contains("evil.tar"), "{}", o.stderr);
    }
    assert!(!Path::new("/escaped").exists());
    assert!(!env.root.path().join("escaped").exists());
}

/// A failing RUN names the step, its exit code and its last lines; a
/// stage --target does not need is never run; a syntax error names the
/// line and column.
#[test]
fn failures_name_the_step() {
    let env = Env::new();
    image(&env);
    let ctx = context(&[(
        "Dockerfile",
        "FROM bb AS broken
RUN false
FROM bb AS fine
RUN echo fine > /f
FROM broken
RUN for i in $(seq 1 30); do echo line$i; done; exit 3
",
    )]);
    let o = build(&env, ctx.path(), &["--target", "fine", "-t", "fine"]).ok();
    assert_eq!(counts(&o).2, 1, "{}", o.stderr);
    let o = build(&env, ctx.path(), &[]);
    assert_ne!(o.code, 0);
    assert!(o.stderr.contains("Dockerfile:2"), "{}", o.stderr);
    assert!(o.stderr.contains("exited with code 1"), "{}", o.stderr);
    std::fs::write(
        ctx.path().join("Dockerfile"),
        "FROM bb\nRUN for i in $(seq 1 30); do echo line$i; done; exit 3\n",
    )
    .unwrap();
    let o = build(&env, ctx.path(), &["-q"]);
    assert!(o.stderr.contains("exited with code 3"), "{}", o.stderr);
    assert!(o.stderr.contains("line30"), "{}", o.stderr);
    assert!(!o.stderr.contains("line15\n"), "{}", o.stderr);
    assert_eq!(env.berth(&["ps", "-aq"]).ok().stdout, "");
    std::fs::write(ctx.path().join("Dockerfile"), "FROM bb\nCOPY\n").unwrap();
    let o = build(&env, ctx.path(), &[]);
    assert!(o.stderr.contains("Dockerfile:2:"), "{}", o.stderr);
}

/// A tree's entries: path -> (type and mode, owner, contents or link
/// target), the runtimes' mount points left out.
fn tree(root: &Path) -> std::collections::BTreeMap<String, String> {
    use std::os::unix::fs::MetadataExt;
    let mut out = std::collections::BTreeMap::new();
    let mut todo = vec![root.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let e = e.unwrap();
            let p = e.path();
            let rel = format!("/{}", p.strip_prefix(root).unwrap().display());
            if [
                "/proc",
                "/sys",
                "/dev",
                "/run",
                "/etc/hosts",
                "/etc/hostname",
                "/etc/resolv.conf",
            ]
            .contains(&rel.as_str())
            {
                continue;
            }
            let m = std::fs::symlink_metadata(&p).unwrap();
            let what = if m.file_type().is_symlink() {
                format!("-> {}", std::fs::read_link(&p).unwrap().display())
            } else if m.is_dir() {
                todo.push(p.clone());
                "dir".to_string()
            } else {
                format!("{:?}", String::from_utf8_lossy(&std::fs::read(&p).unwrap()))
            };
            out.insert(
                rel,
                format!(
                    "{:o} {}:{} {what}{}",
                    m.mode(),
                    m.uid(),
                    m.gid(),
                    xattrs_of(&p)
                ),
            );
        }
    }
    out
}

/// A path's extended attributes (not following a link), sorted, as
/// ` xattrs[name=hex ...]`; empty when it has none.
fn xattrs_of(p: &Path) -> String {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(p.as_os_str().as_bytes()).unwrap();
    let mut names = vec![0u8; 64 << 10];
    // SAFETY: a valid C string and a buffer of the given length.
    let n = unsafe { libc::llistxattr(c.as_ptr(), names.as_mut_ptr().cast(), names.len()) };
    assert!(
        n >= 0,
        "{}: llistxattr: {}",
        p.display(),
        std::io::Error::last_os_error()
    );
    let mut out: Vec<String> = Vec::new();
    for name in names[..n as usize]
        .split(|&b| b == 0)
        .filter(|n| !n.is_empty())
    {
        let cn = std::ffi::CString::new(name).unwrap();
        let mut v = vec![0u8; 64 << 10];
        // SAFETY: valid C strings and a buffer of the given length.
        let len =
            unsafe { libc::lgetxattr(c.as_ptr(), cn.as_ptr(), v.as_mut_ptr().cast(), v.len()) };
        assert!(len >= 0, "{}: lgetxattr", p.display());
        let hex: String = v[..len as usize]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        out.push(format!("{}={hex}", String::from_utf8_lossy(name)));
    }
    out.sort();
    if out.is_empty() {
        String::new()
    } else {
        format!(" xattrs[{}]", out.join(" "))
    }
}

/// Sets an extended attribute on a path (the test's context files).
fn set_xattr(p: &Path, name: &str, value: &[u8]) {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(p.as_os_str().as_bytes()).unwrap();
    let n = std::ffi::CString::new(name).unwrap();
    // SAFETY: valid C strings and a value of the given length.
    let r = unsafe {
        libc::lsetxattr(
            c.as_ptr(),
            n.as_ptr(),
            value.as_ptr().cast(),
            value.len(),
            0,
        )
    };
    assert_eq!(
        r,
        0,
        "{}: set {name}: {}",
        p.display(),
        std::io::Error::last_os_error()
    );
}

/// A copied file's extended attributes are part of the COPY step's cache
/// key: one set or changed on a context file runs the step again (and
/// only from there), and the image holds the new value.
#[test]
fn a_changed_xattr_runs_the_copy_again() {
    let env = Env::new();
    image(&env);
    let ctx = context(&[
        ("f", "same contents\n"),
        (
            "Dockerfile",
            "FROM bb\nRUN echo before > /before\nCOPY f /f\nRUN true\nCMD [\"true\"]\n",
        ),
    ]);
    let first = build(&env, ctx.path(), &["-t", "x1"]).ok();
    assert_eq!(counts(&first).1, 0, "{}", first.stderr);
    set_xattr(&ctx.path().join("f"), "user.v", b"1");
    let second = build(&env, ctx.path(), &["-t", "x2"]).ok();
    // The first RUN from the cache; COPY and the last RUN again.
    let (ran, cached, _) = counts(&second);
    assert_eq!((ran, cached), (2, 1), "{}", second.stderr);
    let again = build(&env, ctx.path(), &["-t", "x3"]).ok();
    assert_eq!(counts(&again).0, 0, "{}", again.stderr);
    let work = tempfile::tempdir().unwrap();
    let t = berth_root(&env, "x2", work.path());
    assert!(t["/f"].contains("user.v=31"), "{:?}", t.get("/f"));
}

/// berth's root filesystem of `image`: exported through a container and
/// unpacked under `work`.
fn berth_root(env: &Env, image: &str, work: &Path) -> std::collections::BTreeMap<String, String> {
    let created = env.berth(&["create", image]).ok().stdout;
    let tar = work.join(format!("{image}.tar"));
    env.berth(&["export", "-o", tar.to_str().unwrap(), created.trim()])
        .ok();
    let dir = work.join(image);
    std::fs::create_dir(&dir).unwrap();
    let st = std::process::Command::new("tar")
        .args(["--numeric-owner", "--xattrs", "--xattrs-include=*", "-xpf"])
        .arg(&tar)
        .arg("-C")
        .arg(&dir)
        .status()
        .unwrap();
    assert!(st.success());
    tree(&dir)
}

/// `buildah bud --layers` of `ctx` (private storage under `work`, vfs,
/// runc, no network) with `args` as build args: its root filesystem and
/// its `inspect` document; its storage emptied after.
fn buildah_build(
    work: &Path,
    ctx: &Path,
    args: &[&str],
) -> (
    std::collections::BTreeMap<String, String>,
    serde_json::Value,
) {
    let buildah = "/usr/bin/buildah";
    assert!(
        Path::new(buildah).exists(),
        "buildah is needed for the differential tests: apt-get install buildah"
    );
    let (root, runroot) = (work.join("broot"), work.join("brun"));
    let policy = work.join("policy.json");
    std::fs::write(
        &policy,
        r#"{"default":[{"type":"insecureAcceptAnything"}]}"#,
    )
    .unwrap();
    let bh = |args: &[&str]| {
        let o = std::process::Command::new(buildah)
            .arg("--root")
            .arg(&root)
            .arg("--runroot")
            .arg(&runroot)
            .args(["--storage-driver", "vfs"])
            .args(args)
            .output()
            .unwrap();
        assert!(
            o.status.success(),
            "buildah {args:?}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8_lossy(&o.stdout).into_owned()
    };
    let mut bud = vec![
        "bud",
        "--layers",
        // crun refuses this host's hybrid cgroups; runc takes them.
        "--runtime",
        "runc",
        "--network",
        "none",
        "--signature-policy",
        policy.to_str().unwrap(),
    ];
    for a in args {
        bud.extend(["--build-arg", a]);
    }
    bud.extend(["-t", "theirs", ctx.to_str().unwrap()]);
    bh(&bud);
    bh(&["from", "--name", "c", "theirs"]);
    let theirs = std::path::PathBuf::from(bh(&["mount", "c"]).trim());
    let t = tree(&theirs);
    let config: serde_json::Value =
        serde_json::from_str(&bh(&["inspect", "--type", "image", "theirs"])).unwrap();
    bh(&["umount", "--all"]);
    bh(&["rm", "--all"]);
    bh(&["rmi", "--all", "--force"]);
    (t, config)
}

fn assert_same_trees(
    a: &std::collections::BTreeMap<String, String>,
    b: &std::collections::BTreeMap<String, String>,
) {
    let mut diffs = Vec::new();
    for k in a
        .keys()
        .chain(b.keys())
        .collect::<std::collections::BTreeSet<_>>()
    {
        if a.get(k) != b.get(k) {
            diffs.push(format!("{k}: berth {:?}, buildah {:?}", a.get(k), b.get(k)));
        }
    }
    assert!(
        diffs.is_empty(),
        "root filesystems differ:\n{}",
        diffs.join("\n")
    );
}

/// The same Dockerfiles built by berth and by buildah (`buildah bud
/// --layers`, private storage, vfs) give the same root filesystems
/// (paths, types, modes, owners, contents, links) and configs.
///
/// One difference is known and kept out of the file: buildah 1.28 makes a
/// WORKDIR's directory only when a later step needs it, owned by the USER
/// of that step; berth makes it at the WORKDIR, owned by the USER then, as
/// BuildKit (`docker build`) does. Each WORKDIR here is followed by a RUN
/// under the same USER, where both agree.
#[test]
fn same_as_buildah() {
    let env = Env::new();
    image(&env);
    let work = tempfile::tempdir().unwrap();
    let bb = work.path().join("bb.tar");
    env.berth(&["save", "-o", bb.to_str().unwrap(), "bb"]).ok();
    let base = format!("BASE=docker-archive:{}", bb.display());
    let ctx = context(&[
        ("a.txt", "a\n"),
        ("b.txt", "b\n"),
        ("notes.md", "notes\n"),
        ("dir/sub/x", "x\n"),
        ("dir/skip.log", "skip\n"),
        ("dir/keep.log", "keep\n"),
        (".dockerignore", "**/*.log\n!dir/keep.log\n"),
        ("cap.bin", "a binary with a capability\n"),
        (
            "Dockerfile",
            "ARG BASE=bb
FROM $BASE AS tool
RUN mkdir -p /out && echo built > /out/tool && chmod 755 /out/tool && ln -s tool /out/link
FROM $BASE
ARG V=1
ENV APP=/srv/app PATH=/bin
WORKDIR $APP
RUN true
COPY --chown=1000:1000 --chmod=640 *.txt ./
COPY dir /data/
COPY --from=tool /out/ /usr/local/bin/
COPY --chown=1000:1000 cap.bin /usr/bin/
USER app
WORKDIR /home/app/work
RUN touch mine
USER root
RUN mkdir -p /gone/deep && echo x > /gone/deep/f && echo keep > /kept
RUN rm -rf /gone && rm /bin/true && echo v$V > version
USER app
EXPOSE 8080
LABEL v=$V
CMD [\"cat\", \"version\"]
",
        ),
    ]);
    // Extended attributes COPY keeps: a user one on a file and on a
    // directory, and file capabilities (cap_net_bind_service, effective)
    // set after the --chown that would clear them.
    set_xattr(&ctx.path().join("a.txt"), "user.origin", b"context");
    set_xattr(&ctx.path().join("dir/sub"), "user.kind", b"dir");
    let cap: [u8; 20] = [1, 0, 0, 2, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
    set_xattr(&ctx.path().join("cap.bin"), "security.capability", &cap);
    set_xattr(&ctx.path().join("cap.bin"), "user.note", b"n");
    build(&env, ctx.path(), &["-t", "mine"]).ok();
    let a = berth_root(&env, "mine", work.path());
    let (b, config_theirs) = buildah_build(work.path(), ctx.path(), &[&base]);
    for (path, x) in [
        ("/srv/app/a.txt", "user.origin="),
        ("/data/sub", "user.kind="),
        ("/usr/bin/cap.bin", "security.capability=0100000200040000"),
    ] {
        assert!(
            a.get(path).is_some_and(|t| t.contains(x)),
            "{path}: {x} not kept: {:?}",
            a.get(path)
        );
    }
    assert_same_trees(&a, &b);
    let mine_c = config(&env, "mine");
    let theirs_c = &config_theirs["OCIv1"]["config"];
    for k in [
        "Env",
        "Cmd",
        "Entrypoint",
        "WorkingDir",
        "User",
        "ExposedPorts",
        "StopSignal",
    ] {
        let norm = |v: &serde_json::Value| match v {
            serde_json::Value::Null => serde_json::Value::Null,
            serde_json::Value::String(s) if s.is_empty() => serde_json::Value::Null,
            v => v.clone(),
        };
        assert_eq!(norm(&mine_c[k]), norm(&theirs_c[k]), "config {k}");
    }
    // buildah adds its own version label.
    assert_eq!(mine_c["Labels"]["v"], theirs_c["Labels"]["v"]);
}

/// `--secret` reaches `RUN --mount=type=secret` and nothing else: not a
/// layer, not the history, not the config; the mount points made for the
/// mounts are not in the layer either; a required secret not given fails.
#[test]
fn secrets_never_land_in_the_image() {
    let env = Env::new();
    image(&env);
    let secret = "s3cr3t-value-81d2";
    let ctx = context(&[
        ("tok", secret),
        (
            "Dockerfile",
            "FROM bb
RUN --mount=type=secret,id=tok test \"$(cat /run/secrets/tok | wc -c)\" -eq 17 && echo used > /used
RUN --mount=type=secret,id=tok,target=/cfg/tok,required=true wc -c < /cfg/tok > /len
RUN --mount=type=cache,target=/cache/deep echo x > /cache/deep/f
RUN --mount=type=secret,id=absent true
",
        ),
    ]);
    std::fs::write(ctx.path().join(".dockerignore"), "tok\n").unwrap();
    let src = format!("id=tok,src={}", ctx.path().join("tok").display());
    build(&env, ctx.path(), &["--secret", &src, "-t", "sec"]).ok();
    let out = run(
        &env,
        "sec",
        "cat /used /len; for p in /run /cfg /cache; do test -e $p && echo $p is there; done; true",
    );
    assert_eq!(out, format!("used\n{}\n", secret.len()));
    let o = env.cmd().args(["save", "sec"]).output().unwrap();
    assert!(o.status.success());
    let hay = String::from_utf8_lossy(&o.stdout);
    assert!(!hay.contains(secret), "the secret is in the saved image");
    let inspect = env.berth(&["image", "inspect", "sec"]).ok().stdout;
    assert!(!inspect.contains(secret));
    let hist = env
        .berth(&["image", "history", "--no-trunc", "sec"])
        .ok()
        .stdout;
    assert!(!hist.contains(secret), "{hist}");
    // A required secret not given is an error naming it.
    std::fs::write(
        ctx.path().join("Dockerfile.req"),
        "FROM bb\nRUN --mount=type=secret,id=tok,required=true true\n",
    )
    .unwrap();
    let o = build(&env, ctx.path(), &["-f", "Dockerfile.req"]);
    assert_ne!(o.code, 0);
    assert!(
        o.stderr.contains("secret \"tok\" is required"),
        "{}",
        o.stderr
    );
}

/// The zombie children of `pid` (in every one of its threads).
fn zombie_children(pid: u32) -> usize {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return 0;
    };
    let mut n = 0;
    for t in tasks.flatten() {
        let children = std::fs::read_to_string(t.path().join("children")).unwrap_or_default();
        for c in children.split_whitespace() {
            let stat = std::fs::read_to_string(format!("/proc/{c}/stat")).unwrap_or_default();
            // "pid (comm) S ...": the state follows the last ')'.
            if stat
                .rsplit_once(')')
                .is_some_and(|(_, r)| r.trim_start().starts_with('Z'))
            {
                n += 1;
            }
        }
    }
    n
}

/// A build of many RUN steps reaps each step's monitor: the build process
/// never holds more than a just-ended one as a zombie (it held one per
/// step until it exited).
#[test]
fn many_run_steps_leave_no_zombie_monitors() {
    let env = Env::new();
    image(&env);
    let steps: String = (0..20)
        .map(|i| format!("RUN echo {i} > /step{i}\n"))
        .collect();
    let ctx = context(&[("Dockerfile", &format!("FROM bb\n{steps}RUN sleep 1\n"))]);
    let mut child = env
        .cmd()
        .args(["build", "-q", "-t", "many"])
        .arg(ctx.path())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut most = 0;
    while child.try_wait().unwrap().is_none() {
        most = most.max(zombie_children(child.id()));
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(most <= 1, "the build held {most} zombie children at once");
    assert_eq!(run(&env, "many", "cat /step19"), "19\n");
}

/// `berth build` of `stdin` (the context -).
fn build_stdin(env: &Env, args: &[&str], stdin: &[u8]) -> Out {
    use std::io::Write;
    let mut child = env
        .cmd()
        .arg("build")
        .args(args)
        .arg("-")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut w = child.stdin.take().unwrap();
    let data = stdin.to_vec();
    let feeder = std::thread::spawn(move || {
        let _ = w.write_all(&data);
    });
    let o = child.wait_with_output().unwrap();
    feeder.join().unwrap();
    Out {
        code: o.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
    }
}

/// A context tarball on standard input, plain or gzip-compressed, is the
/// build context (its Dockerfile, -f inside it, .dockerignore); an entry
/// climbing out of it is refused; nothing of it is left in the store.
#[test]
fn context_tarball_on_stdin() {
    let env = Env::new();
    image(&env);
    let mut t = berth_image::tar::build::Tar::default();
    t.file(
        "Dockerfile",
        b"FROM bb\nCOPY . /ctx/\nRUN cat /ctx/src/a.txt > /out\n",
        0o644,
    )
    .file(
        "other.Dockerfile",
        b"FROM bb\nCOPY src/a.txt /other\n",
        0o644,
    )
    .file(".dockerignore", b"secret.txt\n", 0o644)
    .dir("src/", 0o755)
    .file("src/a.txt", b"from the tarball\n", 0o644)
    .file("secret.txt", b"ignored\n", 0o644);
    let tar = t.end();
    build_stdin(&env, &["-q", "-t", "plain"], &tar).ok();
    assert_eq!(
        run(&env, "plain", "cat /out; ls -A /ctx | sort | tr '\\n' ' '"),
        "from the tarball\n.dockerignore Dockerfile other.Dockerfile src "
    );
    let gz = compress(&tar, &Comp::Gzip);
    build_stdin(&env, &["-q", "-t", "gz", "-f", "other.Dockerfile"], &gz).ok();
    assert_eq!(run(&env, "gz", "cat /other"), "from the tarball\n");
    // A Dockerfile alone on standard input still has no context.
    let o = build_stdin(
        &env,
        &["-q", "-t", "alone"],
        b"FROM bb\nRUN echo alone > /a\n",
    )
    .ok();
    assert!(!o.stdout.is_empty());
    assert_eq!(run(&env, "alone", "cat /a"), "alone\n");
    // A hostile tarball: refused, naming the context.
    let mut t = berth_image::tar::build::Tar::default();
    t.file("Dockerfile", b"FROM bb\n", 0o644)
        .file("../escape", b"x", 0o644);
    let o = build_stdin(&env, &["-q"], &t.end());
    assert_ne!(o.code, 0);
    assert!(o.stderr.contains("build context"), "{}", o.stderr);
    let left: Vec<_> = std::fs::read_dir(env.root.path().join("build"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .filter(|n| n.to_string_lossy().starts_with("run-"))
        .collect();
    assert!(left.is_empty(), "left in the store: {left:?}");
}

/// `RUN --mount=type=bind`: from the context (read-only; its ignore
/// patterns apply; its content keys the cache), rw (writes dropped), and
/// from a stage; nothing of the mounts lands in the layer.
#[test]
fn run_mount_bind() {
    let env = Env::new();
    image(&env);
    let ctx = context(&[
        ("src/a.txt", "v1\n"),
        ("src/hidden.txt", "no\n"),
        (".dockerignore", "src/hidden.txt\n"),
        (
            "Dockerfile",
            "FROM bb AS gen
RUN mkdir /made && echo made > /made/m.txt
FROM bb
RUN --mount=type=bind,source=src,target=/s cat /s/a.txt > /a && \\
    { [ ! -e /s/hidden.txt ] && echo no-hidden > /h; } && \\
    { touch /s/x 2>/dev/null && echo writable > /ro || echo readonly > /ro; }
RUN --mount=type=bind,source=src/a.txt,target=/one.txt,rw echo changed > /one.txt && cat /one.txt > /rw
RUN --mount=type=bind,from=gen,source=/made,target=/g cat /g/m.txt > /from-stage
",
        ),
    ]);
    build(&env, ctx.path(), &["-t", "bind"]).ok();
    assert_eq!(
        run(
            &env,
            "bind",
            "cat /a /h /ro /rw /from-stage; ls / | grep -c -e '^s$' -e '^g$' -e one.txt || true"
        ),
        "v1\nno-hidden\nreadonly\nchanged\nmade\n0\n"
    );
    assert_eq!(
        std::fs::read_to_string(ctx.path().join("src/a.txt")).unwrap(),
        "v1\n"
    );
    // A changed bound file runs its step again (and those after it).
    std::fs::write(ctx.path().join("src/a.txt"), "v2\n").unwrap();
    let o = build(&env, ctx.path(), &["-t", "bind"]).ok();
    let (ran, cached, _) = counts(&o);
    assert_eq!((ran, cached), (3, 1), "{}", o.stderr);
    assert_eq!(run(&env, "bind", "cat /a"), "v2\n");
    // A change to an ignored file does not.
    std::fs::write(ctx.path().join("src/hidden.txt"), "still no\n").unwrap();
    let o = build(&env, ctx.path(), &["-t", "bind"]).ok();
    assert_eq!(counts(&o).0, 0, "{}", o.stderr);
}

/// `--build-context`: a directory for `COPY --from` and a bind mount's
/// `from=` (its content keys the cache), an image for `FROM`.
#[test]
fn named_build_contexts() {
    let env = Env::new();
    image(&env);
    env.berth(&["tag", "bb", "other:1"]).ok();
    let extra = context(&[("e.txt", "extra v1\n"), ("sub/s.txt", "sub\n")]);
    let ctx = context(&[(
        "Dockerfile",
        "FROM base
COPY --from=extra e.txt /e
RUN --mount=type=bind,from=extra,source=sub,target=/m cat /m/s.txt > /s
",
    )]);
    let named = |e: &Path| {
        vec![
            "--build-context".to_string(),
            format!("extra={}", e.display()),
            "--build-context".to_string(),
            "base=docker-image://other:1".to_string(),
            "-t".to_string(),
            "named".to_string(),
        ]
    };
    let args = named(extra.path());
    let a: Vec<&str> = args.iter().map(String::as_str).collect();
    build(&env, ctx.path(), &a).ok();
    assert_eq!(run(&env, "named", "cat /e /s"), "extra v1\nsub\n");
    std::fs::write(extra.path().join("e.txt"), "extra v2\n").unwrap();
    let o = build(&env, ctx.path(), &a).ok();
    assert_eq!(counts(&o).0, 2, "{}", o.stderr);
    assert_eq!(run(&env, "named", "cat /e"), "extra v2\n");
    // Without it, `extra` is an image that does not exist.
    let o = build(
        &env,
        ctx.path(),
        &[
            "--build-context",
            "base=docker-image://other:1",
            "--pull=never",
        ],
    );
    assert_ne!(o.code, 0);
    assert!(o.stderr.contains("extra"), "{}", o.stderr);
    let o = build(
        &env,
        ctx.path(),
        &["--build-context", "extra=/nonexistent-dir"],
    );
    assert!(o.stderr.contains("not a directory"), "{}", o.stderr);
}

/// Every file under `dir` whose contents hold `needle`.
fn files_holding(dir: &Path, needle: &[u8]) -> usize {
    let mut n = 0;
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let t = e.file_type().unwrap();
        if t.is_dir() {
            n += files_holding(&e.path(), needle);
        } else if t.is_file() && e.metadata().unwrap().len() < 1 << 20 {
            let b = std::fs::read(e.path()).unwrap_or_default();
            n += b.windows(needle.len()).any(|w| w == needle) as usize;
        }
    }
    n
}

/// `--compression zstd`: the new layers are zstd blobs (the manifest says
/// so) that the store reads back; `--compression` takes only gzip or zstd.
#[test]
fn compression_zstd() {
    let env = Env::new();
    image(&env);
    let ctx = context(&[("Dockerfile", "FROM bb\nRUN echo z > /z\n")]);
    let zstd = b"application/vnd.oci.image.layer.v1.tar+zstd";
    assert_eq!(files_holding(env.root.path(), zstd), 0);
    build(
        &env,
        ctx.path(),
        &["-q", "-t", "z", "--compression", "zstd"],
    )
    .ok();
    assert!(files_holding(env.root.path(), zstd) > 0);
    assert_eq!(run(&env, "z", "cat /z"), "z\n");
    let o = build(&env, ctx.path(), &["--compression", "xz"]);
    assert!(o.stderr.contains("expected gzip or zstd"), "{}", o.stderr);
}

/// A tiny HTTP server on loopback: `GET /f.txt` answers the current
/// `body`, anything else 404. Serves until the test ends.
fn http_server(body: std::sync::Arc<std::sync::Mutex<Vec<u8>>>) -> u16 {
    use std::io::{BufRead, Write};
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for s in l.incoming().flatten() {
            let mut r = std::io::BufReader::new(s);
            let mut first = String::new();
            let _ = r.read_line(&mut first);
            loop {
                let mut line = String::new();
                if r.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
            }
            let mut s = r.into_inner();
            let b = body.lock().unwrap().clone();
            let _ = if first.starts_with("GET /dl/f.txt ") {
                write!(
                    s,
                    "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                    b.len()
                )
                .and_then(|()| s.write_all(&b))
            } else {
                write!(
                    s,
                    "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                )
            };
        }
    });
    port
}

/// `ADD URL`: downloaded into the layer (mode 0600, into a directory or as
/// the file named), `--checksum` checked, the content keying the cache;
/// a 404 and a wrong checksum fail the step, naming the URL.
#[test]
fn add_url_with_checksum() {
    let env = Env::new();
    image(&env);
    let body = std::sync::Arc::new(std::sync::Mutex::new(b"served v1\n".to_vec()));
    let port = http_server(body.clone());
    let url = format!("http://127.0.0.1:{port}/dl/f.txt");
    let sum = |b: &[u8]| berth_image::Digest::of(b).to_string();
    let df = |checksum: &str| {
        format!("FROM bb\nADD {url} /d/\nADD --checksum={checksum} {url} /c.txt\n")
    };
    let ctx = context(&[("Dockerfile", &df(&sum(b"served v1\n")))]);
    build(&env, ctx.path(), &["-q", "-t", "url"]).ok();
    assert_eq!(
        run(
            &env,
            "url",
            "cat /d/f.txt /c.txt; stat -c %a /d/f.txt /c.txt"
        ),
        "served v1\nserved v1\n600\n600\n"
    );
    let o = build(&env, ctx.path(), &["-t", "url"]).ok();
    assert_eq!(counts(&o).0, 0, "{}", o.stderr);
    // New content: a wrong checksum now (the first ADD ran, with the new
    // content); right again, the second runs.
    *body.lock().unwrap() = b"served v2\n".to_vec();
    let o = build(&env, ctx.path(), &["-t", "url"]);
    assert_ne!(o.code, 0);
    assert!(
        o.stderr.contains("does not match") && o.stderr.contains(&url),
        "{}",
        o.stderr
    );
    std::fs::write(ctx.path().join("Dockerfile"), df(&sum(b"served v2\n"))).unwrap();
    let o = build(&env, ctx.path(), &["-t", "url"]).ok();
    assert_eq!(counts(&o), (1, 1, 0), "{}", o.stderr);
    assert_eq!(run(&env, "url", "cat /c.txt"), "served v2\n");
    let missing = context(&[(
        "Dockerfile",
        &format!("FROM bb\nADD http://127.0.0.1:{port}/nope /n\n"),
    )]);
    let o = build(&env, missing.path(), &[]);
    assert!(o.stderr.contains("404"), "{}", o.stderr);
}

/// The build cache (entries and cache mounts) in `system df`, and gone
/// after `system prune` (a rebuild then runs its steps again).
#[test]
fn build_cache_in_system_df_and_prune() {
    let env = Env::new();
    image(&env);
    let ctx = context(&[(
        "Dockerfile",
        "FROM bb\nRUN --mount=type=cache,target=/c head -c 100000 /bin/busybox > /c/blob && echo x > /x\n",
    )]);
    let cache_row = || {
        let v: serde_json::Value =
            serde_json::from_str(&env.berth(&["system", "df", "--format", "json"]).ok().stdout)
                .unwrap();
        let row = v
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["kind"] == "Build Cache")
            .cloned()
            .unwrap_or_else(|| panic!("no Build Cache row in {v}"));
        (
            row["total"].as_u64().unwrap(),
            row["size"].as_u64().unwrap(),
        )
    };
    assert_eq!(cache_row().0, 0);
    build(&env, ctx.path(), &["-q"]).ok();
    let (total, size) = cache_row();
    assert_eq!(total, 2, "one entry and one cache mount");
    assert!(size >= 100_000, "{size}");
    assert!(env
        .berth(&["system", "df"])
        .ok()
        .stdout
        .contains("Build Cache"));
    env.berth(&["system", "prune", "-f"]).ok();
    assert_eq!(cache_row(), (0, 0));
    let o = build(&env, ctx.path(), &[]).ok();
    assert_eq!(counts(&o).0, 1, "{}", o.stderr);
}

/// The mounts under `dir` (from this process's mount table).
fn mounts_under(dir: &Path) -> Vec<String> {
    let d = format!("{}/", dir.display());
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .filter(|m| m.starts_with(&d))
        .map(str::to_string)
        .collect()
}

/// A build killed (-9) in the middle of a RUN step leaves nothing the next
/// build does not clean up: its work directory, its overlay mounts.
#[test]
fn a_killed_build_is_cleaned_up_by_the_next() {
    let env = Env::new();
    image(&env);
    let ctx = context(&[(
        "Dockerfile",
        "FROM bb\nCOPY Dockerfile /d\nRUN touch /started && sleep 1000\n",
    )]);
    let mut child = env
        .cmd()
        .args(["build", "-q"])
        .arg(ctx.path())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let build_dir = env.root.path().join("build");
    let run_dir = format!("run-{}-", child.id());
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    // Wait for the RUN step's container to run.
    loop {
        assert!(
            std::time::Instant::now() < deadline,
            "the RUN step never started"
        );
        let ps = env.berth(&["ps", "-q"]).stdout;
        if !ps.trim().is_empty() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let left = |p: &str| {
        std::fs::read_dir(&build_dir)
            .unwrap()
            .flatten()
            .any(|e| e.file_name().to_string_lossy().starts_with(p))
    };
    assert!(
        left(&run_dir),
        "the killed build left no work directory: the test is wrong"
    );
    // The next build (a cached one: nothing of the killed step was kept).
    let next = context(&[("Dockerfile", "FROM bb\nRUN echo next > /n\n")]);
    build(&env, next.path(), &["-q", "-t", "next"]).ok();
    assert!(!left(&run_dir), "the killed build's work directory is left");
    assert_eq!(mounts_under(&build_dir), Vec::<String>::new());
    assert_eq!(run(&env, "next", "cat /n"), "next\n");
    assert_eq!(
        env.berth(&["ps", "-aq"]).ok().stdout,
        "",
        "the killed step's container is left"
    );
}

/// `image prune` while a build runs keeps the images the build still
/// uses: here the finished stage `a`, which a later COPY --from takes
/// (no container holds it any more).
#[test]
fn image_prune_during_a_build_keeps_its_images() {
    let env = Env::new();
    image(&env);
    let mounts = env.root.path().join("build/mounts");
    let dir = |id: &str| mounts.join(berth_image::Digest::of(id.as_bytes()).hex());
    let ctx = context(&[(
        "Dockerfile",
        "FROM bb AS a
RUN --mount=type=cache,id=adone,target=/d echo a > /a && touch /d/done
FROM bb
RUN --mount=type=cache,id=gate,target=/g touch /g/waiting; i=0; while [ ! -e /g/go ]; do i=$((i+1)); [ $i -lt 1200 ] || exit 7; sleep 0.05; done
COPY --from=a /a /a
",
    )]);
    let child = env
        .cmd()
        .args(["build", "-q", "-t", "pruned"])
        .arg(ctx.path())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    // Stage a done (its container gone), the gate step running.
    loop {
        assert!(std::time::Instant::now() < deadline, "stage a never ended");
        let ps = env.berth(&["ps", "-aq"]).stdout;
        let both = dir("adone").join("done").exists() && dir("gate").join("waiting").exists();
        if both && ps.lines().count() == 1 {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    env.berth(&["image", "prune"]).ok();
    std::fs::write(dir("gate").join("go"), "").unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(run(&env, "pruned", "cat /a"), "a\n");
    // The build's holds end with it: its intermediate images go now.
    let before = env.berth(&["images", "-aq"]).ok().stdout.lines().count();
    env.berth(&["image", "prune"]).ok();
    let after = env.berth(&["images", "-aq"]).ok().stdout.lines().count();
    assert!(after < before, "{before} images, then {after}");
}

/// The image's inspect document.
fn inspect(env: &Env, image: &str) -> serde_json::Value {
    let v: serde_json::Value =
        serde_json::from_str(&env.berth(&["image", "inspect", image]).ok().stdout).unwrap();
    v[0].clone()
}

/// The media types of an image's layers, from its manifest (`save
/// --format oci-dir`).
fn layer_types(env: &Env, image: &str) -> Vec<String> {
    let d = tempfile::tempdir().unwrap();
    let out = d.path().join("oci");
    env.berth(&[
        "save",
        "--format",
        "oci-dir",
        "-o",
        out.to_str().unwrap(),
        image,
    ])
    .ok();
    let blob = |digest: &str| {
        let hex = digest.strip_prefix("sha256:").unwrap();
        std::fs::read(out.join("blobs/sha256").join(hex)).unwrap()
    };
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("index.json")).unwrap()).unwrap();
    let m: serde_json::Value =
        serde_json::from_slice(&blob(index["manifests"][0]["digest"].as_str().unwrap())).unwrap();
    m["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["mediaType"].as_str().unwrap().to_string())
        .collect()
}

/// `--compression` keys the cache: a zstd build after a gzip one makes its
/// own (zstd) layers, and a gzip build after it its gzip ones again. With
/// `--timestamp` the three give one config, so one image id: the image is
/// recorded with the layers of the last build's compression.
#[test]
fn compression_is_part_of_the_cache_key() {
    let env = Env::new();
    image(&env);
    let ctx = context(&[
        ("f", "f\n"),
        ("Dockerfile", "FROM bb\nCOPY f /f\nRUN echo z > /z\n"),
    ]);
    let gz = "application/vnd.oci.image.layer.v1.tar+gzip";
    let zst = "application/vnd.oci.image.layer.v1.tar+zstd";
    let top2 = |image: &str| {
        let t = layer_types(&env, image);
        t[t.len() - 2..].to_vec()
    };
    let ts = ["--timestamp", "10"];
    let g = build(&env, ctx.path(), &[&ts[..], &["-t", "g"]].concat()).ok();
    assert_eq!(top2("g"), [gz, gz]);
    let z = build(
        &env,
        ctx.path(),
        &[&ts[..], &["-t", "z", "--compression", "zstd"]].concat(),
    )
    .ok();
    assert_eq!(counts(&z).0, 2, "{}", z.stderr);
    assert_eq!(top2("z"), [zst, zst]);
    assert_eq!(z.stdout, g.stdout, "the same config, the same id");
    let again = build(&env, ctx.path(), &[&ts[..], &["-t", "g"]].concat()).ok();
    assert_eq!(counts(&again).0, 2, "{}", again.stderr);
    assert_eq!(top2("g"), [gz, gz]);
    let same = build(&env, ctx.path(), &[&ts[..], &["-t", "g"]].concat()).ok();
    assert_eq!(counts(&same).0, 0, "{}", same.stderr);
    assert_eq!(same.stdout, g.stdout);
}

/// `--platform` and `FROM --platform`: this machine's platform in its
/// spellings is built (the TARGET*/BUILD* args say it); another is refused
/// in one line naming it.
#[cfg(target_arch = "x86_64")]
#[test]
fn platform_native_only() {
    let env = Env::new();
    image(&env);
    let ctx = context(&[(
        "Dockerfile",
        "FROM --platform=$BUILDPLATFORM bb AS b
ARG TARGETPLATFORM
ARG BUILDPLATFORM
ARG TARGETOS TARGETARCH TARGETVARIANT
RUN echo \"$TARGETPLATFORM $BUILDPLATFORM $TARGETOS $TARGETARCH [$TARGETVARIANT]\" > /p
FROM --platform=linux/x86_64 b
",
    )]);
    for p in [
        "linux/amd64",
        "linux/x86_64",
        "Linux/AMD64",
        "linux/amd64/v1",
        "amd64",
    ] {
        build(&env, ctx.path(), &["-q", "-t", "plat", "--platform", p]).ok();
    }
    assert_eq!(
        run(&env, "plat", "cat /p"),
        "linux/amd64 linux/amd64 linux amd64 []\n"
    );
    assert_eq!(inspect(&env, "plat")["Architecture"], "amd64");
    let o = build(&env, ctx.path(), &["--platform", "linux/arm64"]);
    assert_ne!(o.code, 0);
    let err: Vec<&str> = o.stderr.lines().filter(|l| l.contains("arm64")).collect();
    assert_eq!(err.len(), 1, "{}", o.stderr);
    assert!(
        err[0].contains("berth builds only for the platform it runs on, linux/amd64"),
        "{}",
        o.stderr
    );
    let o = build(
        &env,
        ctx.path(),
        &["--platform", "linux/amd64,linux/arm64/v8"],
    );
    assert!(o.stderr.contains("linux/arm64"), "{}", o.stderr);
    std::fs::write(
        ctx.path().join("Dockerfile"),
        "FROM bb\nFROM --platform=linux/s390x bb\n",
    )
    .unwrap();
    let o = build(&env, ctx.path(), &[]);
    assert_ne!(o.code, 0);
    assert!(
        o.stderr
            .contains("Dockerfile:2:1: FROM --platform: platform linux/s390x"),
        "{}",
        o.stderr
    );
}

/// `--squash`: the build's layers become one on top of the base image
/// (the history keeps the steps, marked empty, and a merge entry), with
/// the same root filesystem as the unsquashed image (whiteouts of the
/// base's files, a directory removed and made again, a hard link);
/// `--squash-all`: one layer in all; both cached.
#[test]
fn squash_and_squash_all() {
    let env = Env::new();
    image(&env);
    let ctx = context(&[
        ("f", "from the context\n"),
        (
            "Dockerfile",
            "FROM bb
RUN echo a > /a && ln /a /hard && mkdir -p /d/sub && echo x > /d/sub/x && echo gone > /gone
RUN rm /bin/true /gone && rm -rf /d && mkdir /d && echo y > /d/y && chmod 700 /d
COPY f /f
ENV K=v
CMD [\"sh\"]
",
        ),
    ]);
    build(&env, ctx.path(), &["-q", "-t", "layered"]).ok();
    build(&env, ctx.path(), &["-q", "-t", "sq", "--squash"]).ok();
    build(&env, ctx.path(), &["-q", "-t", "all", "--squash-all"]).ok();
    let (base, layered, sq, all) = (
        inspect(&env, "bb"),
        inspect(&env, "layered"),
        inspect(&env, "sq"),
        inspect(&env, "all"),
    );
    let n = |v: &serde_json::Value| v["RootFS"]["Layers"].as_array().unwrap().len();
    assert_eq!(n(&layered), n(&base) + 3);
    assert_eq!(n(&sq), n(&base) + 1);
    assert_eq!(n(&all), 1);
    assert_eq!(
        sq["RootFS"]["Layers"].as_array().unwrap()[..n(&base)],
        base["RootFS"]["Layers"].as_array().unwrap()[..]
    );
    assert_eq!(sq["Config"], layered["Config"]);
    let hist = sq["History"].as_array().unwrap();
    let built = &layered["History"].as_array().unwrap();
    assert_eq!(hist.len(), built.len() + 1);
    let base_hist = base["History"].as_array().map_or(0, Vec::len);
    for (mine, theirs) in hist.iter().zip(built.iter()).skip(base_hist) {
        assert_eq!(mine["created_by"], theirs["created_by"]);
        assert_eq!(mine["empty_layer"], true, "{mine}");
    }
    let last = hist.last().unwrap();
    assert!(
        last["comment"]
            .as_str()
            .unwrap()
            .starts_with("merge sha256:"),
        "{last}"
    );
    assert!(last.get("empty_layer").is_none(), "{last}");
    // The same files as the layered image.
    let work = tempfile::tempdir().unwrap();
    let root_of = |image: &str| {
        let c = env.berth(&["create", image]).ok().stdout;
        let tar = work.path().join(format!("{image}.tar"));
        env.berth(&["export", "-o", tar.to_str().unwrap(), c.trim()])
            .ok();
        let dir = work.path().join(image);
        std::fs::create_dir(&dir).unwrap();
        let st = std::process::Command::new("tar")
            .args(["--numeric-owner", "-xpf"])
            .arg(&tar)
            .arg("-C")
            .arg(&dir)
            .status()
            .unwrap();
        assert!(st.success());
        tree(&dir)
    };
    let want = root_of("layered");
    assert!(!want.contains_key("/bin/true") && !want.contains_key("/gone"));
    assert!(!want.contains_key("/d/sub"));
    assert_eq!(root_of("sq"), want);
    assert_eq!(root_of("all"), want);
    assert_eq!(
        run(
            &env,
            "sq",
            "stat -c '%h %i' /a /hard | uniq | wc -l; stat -c %h /a"
        ),
        "1\n2\n"
    );
    // Cached: no step, no new squash.
    let o = build(&env, ctx.path(), &["-t", "sq", "--squash"]).ok();
    assert_eq!(counts(&o).0, 0, "{}", o.stderr);
    assert_eq!(o.stdout.trim(), sq["Id"]);
    assert!(o.stderr.contains("CACHED"), "{}", o.stderr);
}

/// `system prune` (and `builder prune`) while a build runs: the cache
/// mounts that build uses stay (it locks them); once it ended they go.
#[test]
fn prune_keeps_the_cache_mounts_a_running_build_uses() {
    let env = Env::new();
    image(&env);
    let mounts = env.root.path().join("build/mounts");
    let dir = |id: &str| mounts.join(berth_image::Digest::of(id.as_bytes()).hex());
    // An unused cache mount, from an earlier build.
    let old = context(&[(
        "Dockerfile",
        "FROM bb\nRUN --mount=type=cache,id=old,target=/o touch /o/old\n",
    )]);
    build(&env, old.path(), &["-q"]).ok();
    assert!(dir("old").join("old").exists());
    let ctx = context(&[(
        "Dockerfile",
        "FROM bb
RUN --mount=type=cache,id=gate,target=/g touch /g/waiting; i=0; while [ ! -e /g/go ]; do i=$((i+1)); [ $i -lt 1200 ] || exit 7; sleep 0.05; done; cat /g/go > /seen
",
    )]);
    let child = env
        .cmd()
        .args(["build", "-q", "-t", "gated"])
        .arg(ctx.path())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while !dir("gate").join("waiting").exists() {
        assert!(
            std::time::Instant::now() < deadline,
            "the gate step never started"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    env.berth(&["system", "prune", "-f"]).ok();
    env.berth(&["builder", "prune", "-f"]).ok();
    assert!(!dir("old").exists(), "the unused cache mount stayed");
    assert!(
        dir("gate").join("waiting").exists(),
        "prune removed the cache mount a running build uses"
    );
    std::fs::write(dir("gate").join("go"), "went\n").unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(run(&env, "gated", "cat /seen"), "went\n");
    env.berth(&["builder", "prune", "-f"]).ok();
    assert!(
        !dir("gate").exists(),
        "the build ended: its cache mount goes"
    );
}

/// `RUN --mount=type=bind` (from the context, a file rw, from a stage) and
/// `ADD URL` (alone, into a directory and as a file name, and mixed with
/// a context file) built by berth and by buildah from the same context
/// and a loopback HTTP server the test runs: the same root filesystems.
///
/// One difference is known and kept out of the file: buildah 1.28 removes
/// a bind mount's target after the step even when an earlier step made it
/// (an empty /s made by `RUN mkdir /s` is gone from its image); berth
/// keeps what the earlier step made, as BuildKit does, and removes only
/// the mount points it made itself (checked in `run_mount_bind`). The
/// targets here are made by no earlier step.
#[test]
fn same_as_buildah_bind_mounts_and_add_url() {
    let env = Env::new();
    image(&env);
    let body = std::sync::Arc::new(std::sync::Mutex::new(b"served\n".to_vec()));
    let port = http_server(body);
    let url = format!("http://127.0.0.1:{port}/dl/f.txt");
    let ctx = context(&[
        ("src/a.txt", "a\n"),
        ("src/sub/b.txt", "b\n"),
        ("local.txt", "local\n"),
        (
            "Dockerfile",
            &format!(
                "FROM bb AS gen
RUN mkdir /made && echo made > /made/m.txt && chmod 640 /made/m.txt
FROM bb
RUN --mount=type=bind,source=src,target=/s cat /s/a.txt /s/sub/b.txt > /a && ls -lR /s | grep -v total > /listing
RUN --mount=type=bind,from=gen,source=/made,target=/g cat /g/m.txt > /from-stage && stat -c %a /g/m.txt >> /from-stage
RUN --mount=type=bind,source=src/a.txt,target=/one.txt,rw echo changed > /one.txt && cat /one.txt > /rw
ADD {url} /dl/
ADD {url} /renamed.txt
ADD {url} local.txt /mixed/
CMD [\"sh\"]
"
            ),
        ),
    ]);
    let work = tempfile::tempdir().unwrap();
    build(&env, ctx.path(), &["-t", "mine"]).ok();
    let mine = berth_root(&env, "mine", work.path());
    assert_eq!(mine["/mixed/f.txt"], "100600 0:0 \"served\\n\"");
    assert_eq!(mine["/mixed/local.txt"], "100644 0:0 \"local\\n\"");
    assert_eq!(mine["/rw"], "100644 0:0 \"changed\\n\"");
    assert!(!mine.contains_key("/one.txt") && !mine.contains_key("/s"));
    let bb = work.path().join("bb.tar");
    env.berth(&["save", "-o", bb.to_str().unwrap(), "bb"]).ok();
    let df = std::fs::read_to_string(ctx.path().join("Dockerfile")).unwrap();
    std::fs::write(
        ctx.path().join("Dockerfile"),
        format!("ARG BASE\n{}", df.replace("FROM bb", "FROM $BASE")),
    )
    .unwrap();
    let base = format!("BASE=docker-archive:{}", bb.display());
    let (theirs, _) = buildah_build(work.path(), ctx.path(), &[&base]);
    assert_same_trees(&mine, &theirs);
}

/// `ADD` of a URL with other sources: each lands in the directory; the
/// local file's content keys the cache as COPY's does, the URL's content
/// too; a local archive among them is unpacked; ADD takes no `--from`.
#[test]
fn add_url_mixed_with_other_sources() {
    let env = Env::new();
    image(&env);
    let body = std::sync::Arc::new(std::sync::Mutex::new(b"v1\n".to_vec()));
    let port = http_server(body.clone());
    let url = format!("http://127.0.0.1:{port}/dl/f.txt");
    let mut t = berth_image::tar::build::Tar::default();
    t.file("inside", b"unpacked\n", 0o644);
    let ctx = context(&[
        ("a.txt", "a1\n"),
        (
            "Dockerfile",
            &format!("FROM bb\nADD a.txt {url} arch.tar /m/\n"),
        ),
    ]);
    std::fs::write(ctx.path().join("arch.tar"), t.end()).unwrap();
    build(&env, ctx.path(), &["-q", "-t", "mixed"]).ok();
    assert_eq!(
        run(
            &env,
            "mixed",
            "cat /m/a.txt /m/f.txt /m/inside; stat -c %a /m/f.txt"
        ),
        "a1\nv1\nunpacked\n600\n"
    );
    let o = build(&env, ctx.path(), &["-t", "mixed"]).ok();
    assert_eq!(counts(&o).0, 0, "{}", o.stderr);
    std::fs::write(ctx.path().join("a.txt"), "a2\n").unwrap();
    let o = build(&env, ctx.path(), &["-t", "mixed"]).ok();
    assert_eq!(counts(&o).0, 1, "{}", o.stderr);
    assert_eq!(run(&env, "mixed", "cat /m/a.txt"), "a2\n");
    *body.lock().unwrap() = b"v2\n".to_vec();
    let o = build(&env, ctx.path(), &["-t", "mixed"]).ok();
    assert_eq!(counts(&o).0, 1, "{}", o.stderr);
    assert_eq!(run(&env, "mixed", "cat /m/f.txt"), "v2\n");
    std::fs::write(
        ctx.path().join("Dockerfile"),
        format!("FROM bb AS s\nFROM bb\nADD --from=s {url} /x\n"),
    )
    .unwrap();
    let o = build(&env, ctx.path(), &[]);
    assert_ne!(o.code, 0);
    assert!(
        o.stderr
            .contains("Dockerfile:3:5: ADD: unknown flag: --from"),
        "{}",
        o.stderr
    );
}

/// The command's flags and the directives not exercised elsewhere:
/// `-q`, `--iidfile`, `--timestamp` and SOURCE_DATE_EPOCH (a build again
/// from nothing gives the same image id), `--progress`, `-f -` with a
/// context, `berth image build`, `# escape=`, MAINTAINER, COPY --link and
/// `.containerignore`.
#[test]
fn flags_and_directives() {
    let env = Env::new();
    image(&env);
    let ctx = context(&[
        ("a.txt", "a\n"),
        ("skip.txt", "skip\n"),
        (".containerignore", "skip.txt\n"),
        (
            "Dockerfile",
            "# escape=`
FROM bb
MAINTAINER someone <s@example.org>
COPY --link *.txt /d/
RUN echo one `
    two > /e && touch /t
CMD [\"sh\"]
",
        ),
    ]);
    let out = tempfile::tempdir().unwrap();
    let iid = out.path().join("iid");
    let o = build(
        &env,
        ctx.path(),
        &[
            "-q",
            "--iidfile",
            iid.to_str().unwrap(),
            "--timestamp",
            "1000000000",
            "-t",
            "walk",
        ],
    )
    .ok();
    assert_eq!(o.stderr, "", "-q prints nothing else");
    let id = o.stdout.trim().to_string();
    assert!(id.starts_with("sha256:"), "{}", o.stdout);
    assert_eq!(std::fs::read_to_string(&iid).unwrap(), id);
    let i = inspect(&env, "walk");
    assert_eq!(i["Author"], "someone <s@example.org>");
    assert_eq!(i["Created"], "2001-09-09T01:46:40Z");
    for h in i["History"].as_array().unwrap().iter().skip(1) {
        assert_eq!(h["created"], "2001-09-09T01:46:40Z", "{h}");
    }
    assert_eq!(
        run(&env, "walk", "ls /d; cat /e; stat -c %Y /t /e"),
        "a.txt\none two\n1000000000\n1000000000\n"
    );
    // SOURCE_DATE_EPOCH, every step run again: the same image.
    let o = env
        .cmd()
        .env("SOURCE_DATE_EPOCH", "1000000000")
        .args(["build", "-q", "--no-cache", "-t", "again"])
        .arg(ctx.path())
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(String::from_utf8_lossy(&o.stdout).trim(), id);
    // --progress: plain and tty print the steps; another is refused.
    for p in ["plain", "tty", "auto"] {
        let o = build(&env, ctx.path(), &["--progress", p]).ok();
        assert!(o.stderr.contains("COPY --link *.txt /d/"), "{}", o.stderr);
    }
    let o = build(&env, ctx.path(), &["--progress", "fancy"]);
    assert!(
        o.stderr
            .contains("--progress=fancy: expected auto, plain or tty"),
        "{}",
        o.stderr
    );
    // `berth image build` with the Dockerfile on standard input (-f -)
    // and the directory as the context.
    let mut child = env
        .cmd()
        .args(["image", "build", "-q", "-t", "stdin", "-f", "-"])
        .arg(ctx.path())
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    {
        use std::io::Write;
        let mut w = child.stdin.take().unwrap();
        w.write_all(b"FROM bb\nCOPY . /ctx/\n").unwrap();
    }
    let o = child.wait_with_output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(
        run(&env, "stdin", "ls -A /ctx | tr '\\n' ' '"),
        ".containerignore Dockerfile a.txt "
    );
}

/// `--pull`: missing (the default) pulls an image not stored and then
/// keeps the stored one; always pulls a moved tag; never refuses an image
/// not stored and uses a stored one; another value is refused.
#[test]
fn pull_policies() {
    let env = Env::new();
    let reg = &registry().addr;
    let first = push_image("t/buildbase", "v1", &[bb_tar()], Comp::Gzip, "amd64");
    let name = format!("{reg}/t/buildbase:v1");
    let ctx = context(&[(
        "Dockerfile",
        &format!("FROM {name}\nRUN ls /hello > /seen 2>&1 || true\n"),
    )]);
    let base_of = |env: &Env| {
        let h = inspect(env, "p");
        h["RootFS"]["Layers"].as_array().unwrap().len()
    };
    let o = build(&env, ctx.path(), &["--pull=never", "-t", "p"]);
    assert_ne!(o.code, 0);
    assert!(o.stderr.contains("--pull=never"), "{}", o.stderr);
    build(&env, ctx.path(), &["-q", "-t", "p"]).ok();
    assert_eq!(
        env.berth(&["image", "inspect", "-f", "{{.Id}}", &name])
            .ok()
            .stdout
            .trim(),
        first.config.to_string()
    );
    let one = base_of(&env);
    // The tag moves.
    push_image(
        "t/buildbase",
        "v1",
        &[bb_tar(), top_layer()],
        Comp::Gzip,
        "amd64",
    );
    build(&env, ctx.path(), &["-q", "-t", "p", "--pull=missing"]).ok();
    build(&env, ctx.path(), &["-q", "-t", "p", "--pull=never"]).ok();
    assert_eq!(base_of(&env), one);
    build(&env, ctx.path(), &["-q", "-t", "p", "--pull=always"]).ok();
    assert_eq!(base_of(&env), one + 1);
    assert_eq!(run(&env, "p", "cat /seen"), "/hello\n");
    let o = build(&env, ctx.path(), &["--pull=sometimes"]);
    assert!(
        o.stderr.contains("expected always, missing or never"),
        "{}",
        o.stderr
    );
}

/// `RUN --mount=type=ssh` forwards a real ssh-agent (`--ssh default`,
/// `--ssh ID=SOCKET`): Debian's `ssh-add -l` (copied into the image with
/// its libraries) lists, inside the step, the key the agent holds;
/// `SSH_AUTH_SOCK` names the socket; neither the socket nor its mount
/// point lands in the layer; a required agent not given fails naming
/// `--ssh`; a key file instead of a socket is refused.
#[test]
fn ssh_agent_is_forwarded_to_run_steps() {
    let env = Env::new();
    image(&env);
    for tool in [
        "/usr/bin/ssh-agent",
        "/usr/bin/ssh-add",
        "/usr/bin/ssh-keygen",
    ] {
        assert!(
            Path::new(tool).exists(),
            "{tool} is needed: apt-get install openssh-client"
        );
    }
    let tmp = tempfile::tempdir().unwrap();
    let sock = tmp.path().join("agent.sock");
    let key = tmp.path().join("id");
    let ok = |c: &mut std::process::Command| {
        let o = c.output().unwrap();
        assert!(
            o.status.success(),
            "{c:?}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8(o.stdout).unwrap()
    };
    ok(std::process::Command::new("/usr/bin/ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", "berth-test", "-f"])
        .arg(&key));
    let mut agent = std::process::Command::new("/usr/bin/ssh-agent")
        .arg("-D")
        .arg("-a")
        .arg(&sock)
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while !sock.exists() {
        assert!(
            std::time::Instant::now() < deadline,
            "ssh-agent made no socket"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let result = std::panic::catch_unwind(|| {
        ok(std::process::Command::new("/usr/bin/ssh-add")
            .env("SSH_AUTH_SOCK", &sock)
            .arg(&key));
        let want = ok(std::process::Command::new("/usr/bin/ssh-add")
            .env("SSH_AUTH_SOCK", &sock)
            .arg("-l"));
        assert!(want.contains("berth-test"), "{want}");
        // ssh-add and the libraries it loads, as ldd names them.
        let ctx = tempfile::tempdir().unwrap();
        let mut files = vec!["/usr/bin/ssh-add".to_string()];
        let ldd = ok(std::process::Command::new("ldd").arg("/usr/bin/ssh-add"));
        files.extend(
            ldd.split_whitespace()
                .filter(|w| w.starts_with('/'))
                .map(str::to_string),
        );
        for f in &files {
            let dst = ctx.path().join("root").join(f.trim_start_matches('/'));
            std::fs::create_dir_all(dst.parent().unwrap()).unwrap();
            std::fs::copy(f, &dst).unwrap();
        }
        std::fs::write(
            ctx.path().join("Dockerfile"),
            "FROM bb
COPY root/ /
RUN --mount=type=ssh ssh-add -l > /keys && echo \"$SSH_AUTH_SOCK\" > /sock
RUN --mount=type=ssh,id=other,target=/agent,required=true SSH_AUTH_SOCK=/agent ssh-add -l > /other
",
        )
        .unwrap();
        let other = format!("other={}", sock.display());
        let out = env
            .cmd()
            .env("SSH_AUTH_SOCK", &sock)
            .args([
                "build", "-q", "--ssh", "default", "--ssh", &other, "-t", "ssh",
            ])
            .arg(ctx.path())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(run(&env, "ssh", "cat /keys"), want);
        assert_eq!(run(&env, "ssh", "cat /other"), want);
        assert_eq!(run(&env, "ssh", "cat /sock"), "/run/buildkit/ssh_agent.0\n");
        assert_eq!(
            run(
                &env,
                "ssh",
                "for p in /run/buildkit /agent; do test -e $p && echo $p; done; true"
            ),
            ""
        );
        // Required and not given: the step fails naming --ssh.
        let req = context(&[(
            "Dockerfile",
            "FROM bb\nRUN --mount=type=ssh,id=absent,required=true true\n",
        )]);
        let e = build(&env, req.path(), &["-q"]);
        assert_ne!(e.code, 0);
        assert!(e.stderr.contains("--ssh absent"), "{}", e.stderr);
        // A key file is not an agent.
        let k = format!("k={}", key.display());
        let e = build(&env, req.path(), &["-q", "--ssh", &k]);
        assert_ne!(e.code, 0);
        assert!(e.stderr.contains("not an agent's socket"), "{}", e.stderr);
    });
    agent.kill().unwrap();
    agent.wait().unwrap();
    if let Err(p) = result {
        std::panic::resume_unwind(p);
    }
}

/// A RUN step's overlay is mounted `volatile` (its unmount would otherwise
/// sync the whole filesystem under the store; the layer's commit syncs the
/// step's changes itself), and its changes are the layer all the same. A
/// container of the built image that is not `--rm` keeps a synced overlay.
#[test]
fn run_steps_mount_volatile_and_keep_their_changes() {
    let env = Env::new();
    image(&env);
    let ctx = context(&[(
        "Dockerfile",
        "FROM bb
RUN read -r l < /proc/self/mountinfo && echo \"$l\" > /step-root && echo kept > /kept
",
    )]);
    build(&env, ctx.path(), &["-t", "vol"]).ok();
    let root = run(&env, "vol", "cat /step-root");
    assert!(
        root.contains("volatile"),
        "the RUN step's root was not volatile: {root}"
    );
    assert_eq!(run(&env, "vol", "cat /kept").trim(), "kept");
    let id = env
        .berth(&["run", "-d", "vol", "sleep", "30"])
        .ok()
        .stdout
        .trim()
        .to_string();
    let out = env
        .berth(&[
            "exec",
            &id,
            "sh",
            "-c",
            "read -r l < /proc/self/mountinfo && echo \"$l\"",
        ])
        .ok()
        .stdout;
    assert!(
        !out.contains("volatile"),
        "a container without --rm got a volatile root: {out}"
    );
    env.berth(&["rm", "-f", &id]).ok();
}
