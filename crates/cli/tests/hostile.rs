//! The engine's host-side file operations against a hostile container
//! (issue 20, section 1): `cp` both ways and as tar, `diff`, the volume
//! copy-up and the image's /etc/passwd, raced against a container whose
//! files are swapped, in a tight loop, with a symlink to a host path, a
//! fifo and a device node, in its root and in its volumes. Host sentinels
//! (a file that must not be read or written, a directory that must not be
//! listed or written into) are checked afterwards, and every berth command
//! runs under a deadline: none may block forever.
//!
//! The swaps are made through `/proc/PID/root` of the container's init,
//! by a thread of the test doing `renameat2(RENAME_EXCHANGE)` (busybox has
//! no such applet): the very calls a process of the container would make,
//! on the same mounts, at a rate (hundreds of thousands per second) no
//! shell loop reaches, so that each race is hit in a few seconds.

mod common;
use common::*;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How long each race runs.
const RACE: Duration = Duration::from_secs(8);
/// Longer than any berth command here takes: more is a hang.
const HANG: Duration = Duration::from_secs(30);

const APPLETS: [&str; 8] = ["sh", "echo", "cat", "true", "sleep", "mkdir", "ls", "rm"];

fn busybox_tar(passwd_fifo: bool) -> Vec<u8> {
    use berth_image::tar::build::{header, Tar};
    let bb =
        std::fs::read(BUSYBOX).expect("busybox-static is needed: apt-get install busybox-static");
    let mut t = Tar::default();
    t.dir("bin/", 0o755).file("bin/busybox", &bb, 0o755);
    for a in APPLETS {
        t.symlink(&format!("bin/{a}"), "busybox");
    }
    t.dir("etc/", 0o755);
    if passwd_fifo {
        t.raw(header(b"etc/passwd", b'6', 0, b"", 0o644), b"");
    } else {
        t.file("etc/passwd", b"root:x:0:0:root:/root:/bin/sh\n", 0o644);
    }
    t.file("etc/group", b"root:x:0:\n", 0o644)
        .dir("tmp/", 0o1777)
        .dir("data/", 0o755)
        .file("data/seed", b"from the image\n", 0o644)
        .file("data/other", b"more\n", 0o644)
        .dir("data/sub/", 0o755)
        .file("data/sub/inner", b"inner\n", 0o644);
    t.end()
}

fn import(env: &Env, name: &str, passwd_fifo: bool) {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("img.tar");
    std::fs::write(&p, busybox_tar(passwd_fifo)).unwrap();
    env.berth(&["import", p.to_str().unwrap(), name]).ok();
    for helper in ["berth-monitor", "berth-runtime"] {
        let exe = Path::new(env!("CARGO_BIN_EXE_berth")).with_file_name(helper);
        assert!(
            exe.exists(),
            "{} is missing: build the workspace first (cargo build --workspace)",
            exe.display()
        );
    }
}

/// `berth ARGS` with a deadline: (exit code, stdout, stderr), or a panic
/// naming the command if it is still running after `HANG` (it is killed).
fn berth_deadline(env: &Env, args: &[&str], stdout: Option<&Path>) -> (i32, Vec<u8>, String) {
    let out = tempfile::NamedTempFile::new().unwrap();
    let err = tempfile::NamedTempFile::new().unwrap();
    let out_path = stdout.map_or_else(|| out.path().to_path_buf(), Path::to_path_buf);
    let mut child = env
        .cmd()
        .args(args)
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&out_path).unwrap())
        .stderr(err.reopen().unwrap())
        .spawn()
        .unwrap();
    let start = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if start.elapsed() > HANG {
            let _ = child.kill();
            let _ = child.wait();
            panic!("berth {args:?} hung (killed after {HANG:?})");
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    (
        status.code().unwrap_or(-1),
        if stdout.is_some() {
            Vec::new()
        } else {
            std::fs::read(&out_path).unwrap()
        },
        std::fs::read_to_string(err.path()).unwrap(),
    )
}

fn pid_of(env: &Env, c: &str) -> i32 {
    let o = env.berth(&["inspect", c]).ok();
    let v: serde_json::Value = serde_json::from_str(&o.stdout).unwrap();
    let pid = v[0]["State"]["Pid"].as_i64().unwrap() as i32;
    assert!(pid > 0, "{c} has no pid: {}", o.stdout);
    pid
}

fn open_dir(p: &Path) -> OwnedFd {
    use std::os::fd::FromRawFd;
    let cp = std::ffi::CString::new(p.as_os_str().as_bytes()).unwrap();
    // SAFETY: a valid C string.
    let fd = unsafe {
        libc::open(
            cp.as_ptr(),
            libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC,
        )
    };
    assert!(
        fd >= 0,
        "open {}: {}",
        p.display(),
        std::io::Error::last_os_error()
    );
    // SAFETY: a new fd that we own.
    unsafe { OwnedFd::from_raw_fd(fd) }
}

fn c(s: &str) -> std::ffi::CString {
    std::ffi::CString::new(s).unwrap()
}

/// Makes, in the directory `dir` (a container's, through /proc/PID/root),
/// the regular file `name` holding `text` and its alternates:
/// `name.link` (a symlink to the host path `host`), `name.fifo` and
/// `name.dev` (the character device 1:3).
fn plant(dir: &Path, name: &str, text: &str, host: &Path) {
    std::fs::write(dir.join(name), text).unwrap();
    std::os::unix::fs::symlink(host, dir.join(format!("{name}.link"))).unwrap();
    let d = open_dir(dir);
    for (kind, mode, dev) in [
        ("fifo", libc::S_IFIFO, 0),
        ("dev", libc::S_IFCHR, libc::makedev(1, 3)),
    ] {
        let n = c(&format!("{name}.{kind}"));
        // SAFETY: a C string relative to a directory fd we own.
        let r = unsafe { libc::mknodat(d.as_raw_fd(), n.as_ptr(), mode | 0o666, dev) };
        assert_eq!(
            r,
            0,
            "mknod {name}.{kind}: {}",
            std::io::Error::last_os_error()
        );
    }
}

/// A thread that swaps names in a container's directory in a tight loop
/// until dropped.
struct Racer {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<u64>>,
}

impl Racer {
    /// Swaps (RENAME_EXCHANGE) `name` in `dir` with each of its
    /// alternates of [`plant`] in turn, twice each (there and back).
    fn swap(dir: &Path, names: &[&str]) -> Racer {
        let d = open_dir(dir);
        let pairs: Vec<(std::ffi::CString, std::ffi::CString)> = names
            .iter()
            .flat_map(|n| {
                ["link", "fifo", "dev"]
                    .into_iter()
                    .map(move |k| (c(n), c(&format!("{n}.{k}"))))
            })
            .collect();
        Racer::start(move |count| {
            for (a, b) in &pairs {
                for _ in 0..2 {
                    // SAFETY: two C strings relative to a directory fd we own.
                    let r = unsafe {
                        libc::renameat2(
                            d.as_raw_fd(),
                            a.as_ptr(),
                            d.as_raw_fd(),
                            b.as_ptr(),
                            libc::RENAME_EXCHANGE,
                        )
                    };
                    if r == 0 {
                        *count += 1;
                    }
                }
            }
        })
    }

    /// Swaps the directory `name` in `dir` with `alt` (a symlink).
    fn swap_pair(dir: &Path, name: &str, alt: &str) -> Racer {
        let d = open_dir(dir);
        let (a, b) = (c(name), c(alt));
        Racer::start(move |count| {
            // SAFETY: as above.
            let r = unsafe {
                libc::renameat2(
                    d.as_raw_fd(),
                    a.as_ptr(),
                    d.as_raw_fd(),
                    b.as_ptr(),
                    libc::RENAME_EXCHANGE,
                )
            };
            if r == 0 {
                *count += 1;
            }
        })
    }

    /// The attack of a second container sharing a volume on the copy-up
    /// into it, in a tight loop: once the copy-up has begun (`other` is
    /// there), it plants a symlink to `host/pwned`, a fifo or a device node
    /// at `seed` whenever the name is free, and it swaps the directory
    /// `sub` the copy-up makes for a symlink to `host`.
    fn copy_up_attack(dir: &Path, host: &Path) -> Racer {
        let d = open_dir(dir);
        let (seed, sub, moved, other) = (c("seed"), c("sub"), c(".moved"), c("other"));
        let pwned = std::ffi::CString::new(host.join("pwned").as_os_str().as_bytes()).unwrap();
        let host = std::ffi::CString::new(host.as_os_str().as_bytes()).unwrap();
        let mut turn = 0u32;
        Racer::start(move |count| {
            let fd = d.as_raw_fd();
            // SAFETY: C strings relative to a directory fd we own.
            unsafe {
                if libc::renameat(fd, sub.as_ptr(), fd, moved.as_ptr()) == 0
                    && libc::symlinkat(host.as_ptr(), fd, sub.as_ptr()) == 0
                {
                    *count += 1;
                }
                if libc::faccessat(fd, other.as_ptr(), libc::F_OK, libc::AT_SYMLINK_NOFOLLOW) != 0 {
                    return;
                }
                turn = turn.wrapping_add(1);
                let r = match turn % 3 {
                    0 => libc::symlinkat(pwned.as_ptr(), fd, seed.as_ptr()),
                    1 => libc::mknodat(fd, seed.as_ptr(), libc::S_IFIFO | 0o666, 0),
                    _ => libc::mknodat(
                        fd,
                        seed.as_ptr(),
                        libc::S_IFCHR | 0o666,
                        libc::makedev(1, 3),
                    ),
                };
                if r == 0 {
                    *count += 1;
                }
            }
        })
    }

    fn start(mut step: impl FnMut(&mut u64) + Send + 'static) -> Racer {
        let stop = Arc::new(AtomicBool::new(false));
        let s = stop.clone();
        let thread = std::thread::spawn(move || {
            let mut count = 0u64;
            while !s.load(Ordering::Relaxed) {
                step(&mut count);
            }
            count
        });
        Racer {
            stop,
            thread: Some(thread),
        }
    }

    /// Stops the loop; how many changes it made (the race really ran).
    fn finish(mut self) -> u64 {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.take().unwrap().join().unwrap()
    }
}

impl Drop for Racer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// What a cp out may leave at `p` while the source is swapped: nothing,
/// a symlink, or the file with its own content; never another content
/// (a device read) nor the host's secret.
fn check_copied(p: &Path, want: &str) {
    match std::fs::symlink_metadata(p) {
        Err(_) => {}
        Ok(m) if m.file_type().is_symlink() => {}
        Ok(m) if m.is_file() => {
            let got = std::fs::read_to_string(p).unwrap_or_default();
            assert_eq!(
                got, want,
                "cp read something else than the file (a device?)"
            );
        }
        Ok(m) => panic!("cp made {:?} at {}", m.file_type(), p.display()),
    }
}

#[test]
fn cp_raced_against_swaps_to_a_symlink_fifo_and_device_stays_in_the_container_and_never_hangs() {
    let env = Env::new();
    import(&env, "hb:latest", false);
    let secret_dir = tempfile::tempdir().unwrap();
    let secret = secret_dir.path().join("secret");
    std::fs::write(&secret, "HOST-SECRET\n").unwrap();
    env.berth(&[
        "run",
        "-d",
        "--name",
        "sw",
        "-v",
        "swv:/vol",
        "hb:latest",
        "sleep",
        "1000",
    ])
    .ok();
    let root = PathBuf::from(format!("/proc/{}/root", pid_of(&env, "sw")));
    let mut racers = Vec::new();
    for dir in ["dir", "vol/dir"] {
        let d = root.join(dir);
        std::fs::create_dir(&d).unwrap();
        plant(&d, "out", "REGULAR\n", &secret);
        plant(&d, "in", "REGULAR\n", &secret);
        racers.push(Racer::swap(&d, &["out", "in"]));
    }
    let host = tempfile::tempdir().unwrap();
    let from = host.path().join("from");
    std::fs::write(&from, "FROM-HOST\n").unwrap();
    let deadline = Instant::now() + RACE;
    let mut rounds = 0;
    while Instant::now() < deadline {
        for dir in ["/dir", "/vol/dir"] {
            // A file, and the directory holding it (a walk).
            let to = host.path().join("file");
            let _ = std::fs::remove_file(&to);
            berth_deadline(
                &env,
                &["cp", &format!("sw:{dir}/out"), to.to_str().unwrap()],
                None,
            );
            check_copied(&to, "REGULAR\n");
            let tree = host.path().join("tree");
            let _ = std::fs::remove_dir_all(&tree);
            berth_deadline(
                &env,
                &["cp", &format!("sw:{dir}"), tree.to_str().unwrap()],
                None,
            );
            check_copied(&tree.join("out"), "REGULAR\n");
            // As a tar stream.
            let tar = host.path().join("out.tar");
            berth_deadline(&env, &["cp", &format!("sw:{dir}/out"), "-"], Some(&tar));
            let data = std::fs::read(&tar).unwrap();
            let mut r = berth_image::tar::Reader::new(&data[..]);
            while let Ok(Some(e)) = r.next_entry() {
                if e.kind == berth_image::tar::Kind::File {
                    let mut got = Vec::new();
                    let mut buf = [0u8; 64];
                    while let Ok(n) = r.read_data(&mut buf) {
                        if n == 0 {
                            break;
                        }
                        got.extend_from_slice(&buf[..n]);
                    }
                    assert_eq!(got, b"REGULAR\n", "cp - read something else than the file");
                }
            }
            // Into the container, onto the swapped name.
            berth_deadline(
                &env,
                &["cp", from.to_str().unwrap(), &format!("sw:{dir}/in")],
                None,
            );
        }
        rounds += 1;
    }
    let swaps: u64 = racers.into_iter().map(Racer::finish).sum();
    eprintln!("{rounds} rounds of cp against {swaps} swaps");
    assert!(swaps > 10_000, "the race did not run: {swaps} swaps");
    assert!(rounds >= 2, "only {rounds} rounds");
    assert_eq!(
        std::fs::read_to_string(&secret).unwrap(),
        "HOST-SECRET\n",
        "cp wrote through a symlink to the host"
    );
    assert_eq!(std::fs::read_dir(secret_dir.path()).unwrap().count(), 1);
    // Reads through the symlink resolved on the host would show the secret.
    for e in walk(host.path()) {
        if let Ok(t) = std::fs::read_to_string(&e) {
            assert!(
                !t.contains("HOST-SECRET"),
                "{} holds the host's secret",
                e.display()
            );
        }
    }
}

/// Every regular file under `p` (not following symlinks).
fn walk(p: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(p).unwrap().flatten() {
        let ft = e.file_type().unwrap();
        if ft.is_dir() {
            out.extend(walk(&e.path()));
        } else if ft.is_file() {
            out.push(e.path());
        }
    }
    out
}

#[test]
fn diff_raced_against_a_directory_swapped_with_a_symlink_never_lists_the_host() {
    let env = Env::new();
    import(&env, "hb:latest", false);
    let secret_dir = tempfile::tempdir().unwrap();
    std::fs::write(secret_dir.path().join("HOST-ONLY-NAME"), "").unwrap();
    env.berth(&["run", "-d", "--name", "df", "hb:latest", "sleep", "1000"])
        .ok();
    let root = PathBuf::from(format!("/proc/{}/root", pid_of(&env, "df")));
    let work = root.join("work");
    std::fs::create_dir_all(work.join("sub")).unwrap();
    std::fs::write(work.join("sub/inner"), "x").unwrap();
    std::os::unix::fs::symlink(secret_dir.path(), work.join("alt")).unwrap();
    let racer = Racer::swap_pair(&work, "sub", "alt");
    let deadline = Instant::now() + RACE;
    let mut rounds = 0;
    while Instant::now() < deadline {
        let (code, out, err) = berth_deadline(&env, &["diff", "df"], None);
        let out = String::from_utf8_lossy(&out);
        assert!(
            !out.contains("HOST-ONLY-NAME"),
            "diff listed a host directory:\n{out}"
        );
        assert!(code == 0 || !err.is_empty(), "diff failed silently");
        rounds += 1;
    }
    let swaps = racer.finish();
    eprintln!("{rounds} diffs against {swaps} swaps");
    assert!(swaps > 10_000, "the race did not run: {swaps} swaps");
    assert!(rounds >= 5, "only {rounds} rounds");
}

#[test]
fn volume_copy_up_raced_against_a_second_container_planting_links_fifos_and_devices() {
    let env = Env::new();
    import(&env, "hb:latest", false);
    let sentinel = tempfile::tempdir().unwrap();
    let pwned = sentinel.path().join("pwned");
    let deadline = Instant::now() + RACE + RACE / 2;
    let (mut rounds, mut copied, mut refused, mut planted) = (0, 0, 0, 0);
    while Instant::now() < deadline {
        let (vol, b) = (format!("cu{rounds}"), format!("b{rounds}"));
        env.berth(&["volume", "create", &vol]).ok();
        // The second container mounts the volume where its image has
        // nothing (no copy-up for it) and plants names in it.
        env.berth(&[
            "run",
            "-d",
            "--name",
            &b,
            "-v",
            &format!("{vol}:/mnt"),
            "hb:latest",
            "sleep",
            "1000",
        ])
        .ok();
        let mnt = PathBuf::from(format!("/proc/{}/root/mnt", pid_of(&env, &b)));
        let racer = Racer::copy_up_attack(&mnt, sentinel.path());
        let (code, _, err) = berth_deadline(
            &env,
            &[
                "run",
                "--rm",
                "-v",
                &format!("{vol}:/data"),
                "hb:latest",
                "true",
            ],
            None,
        );
        planted += racer.finish();
        if code == 0 {
            copied += 1;
        } else {
            assert!(err.contains("volume"), "a failed copy-up says why: {err}");
            refused += 1;
        }
        assert!(
            !pwned.exists() && std::fs::read_dir(sentinel.path()).unwrap().count() == 0,
            "the copy-up wrote through a planted symlink to the host"
        );
        env.berth(&["rm", "-f", &b]).ok();
        rounds += 1;
    }
    eprintln!("{rounds} copy-ups raced: {copied} done, {refused} refused, {planted} names planted");
    assert!(
        planted >= 2,
        "the race did not run: {planted} names planted"
    );
    assert!(rounds >= 2, "only {rounds} rounds");
}

#[test]
fn an_image_whose_passwd_is_a_fifo_fails_to_run_at_once() {
    let env = Env::new();
    import(&env, "pf:latest", true);
    let t = Instant::now();
    let (code, _, err) = berth_deadline(&env, &["run", "--rm", "pf:latest", "true"], None);
    assert_ne!(code, 0);
    assert!(err.contains("/etc/passwd") && err.contains("fifo"), "{err}");
    assert!(
        t.elapsed() < Duration::from_secs(10),
        "took {:?}",
        t.elapsed()
    );
}

#[test]
fn a_long_cp_does_not_keep_rm_f_waiting() {
    let env = Env::new();
    import(&env, "hb:latest", false);
    env.berth(&["run", "-d", "--name", "lk", "hb:latest", "sleep", "1000"])
        .ok();
    // `cp - lk:/tmp` reading a tar stream that does not come.
    let mut cp = env
        .cmd()
        .args(["cp", "-", "lk:/tmp"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdin = cp.stdin.take().unwrap();
    std::thread::sleep(Duration::from_millis(500));
    assert!(
        cp.try_wait().unwrap().is_none(),
        "cp - ended without its input"
    );
    let t = Instant::now();
    let (code, _, err) = berth_deadline(&env, &["rm", "-f", "lk"], None);
    let took = t.elapsed();
    assert_eq!(code, 0, "{err}");
    assert!(
        took < Duration::from_secs(10),
        "rm -f waited {took:?} for cp"
    );
    // The stream comes after all: the copy into the removed container is
    // cut short, and nothing of the container is left behind.
    let mut stdin = stdin;
    let tar = {
        let mut t = berth_image::tar::build::Tar::default();
        t.file("late", b"late", 0o644);
        t.end()
    };
    let _ = std::io::Write::write_all(&mut stdin, &tar);
    drop(stdin);
    let status = cp.wait().unwrap();
    assert!(!status.success(), "cp wrote into a removed container");
    let left: Vec<_> = std::fs::read_dir(env.root.path().join("containers"))
        .map(|d| d.flatten().map(|e| e.file_name()).collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "left behind: {left:?}");

    // A stopped container: `cp CTR:SRC -` into a pipe nobody reads.
    env.berth(&["create", "--name", "st", "hb:latest", "true"])
        .ok();
    let mut cp = env
        .cmd()
        .args(["cp", "st:/bin/busybox", "-"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = cp.stdout.take().unwrap();
    std::thread::sleep(Duration::from_millis(500));
    assert!(
        cp.try_wait().unwrap().is_none(),
        "cp - wrote busybox into a pipe"
    );
    let t = Instant::now();
    let (code, _, err) = berth_deadline(&env, &["rm", "-f", "st"], None);
    let took = t.elapsed();
    drop(stdout);
    let _ = cp.wait();
    assert_eq!(code, 0, "{err}");
    assert!(
        took < Duration::from_secs(10),
        "rm -f waited {took:?} for cp"
    );
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    let root = env.root.path().to_string_lossy().into_owned();
    assert!(!mounts.contains(&root), "a mount is left behind:\n{mounts}");
}

#[test]
fn cp_sees_what_the_container_sees_and_refuses_a_directory_over_a_file() {
    let env = Env::new();
    import(&env, "hb:latest", false);
    env.berth(&[
        "run",
        "-d",
        "--name",
        "ed",
        "--hostname",
        "web1",
        "--tmpfs",
        "/scratch",
        "-v",
        "edv:/vol",
        "hb:latest",
        "sleep",
        "1000",
    ])
    .ok();
    let host = tempfile::tempdir().unwrap();
    let h = |n: &str| host.path().join(n);
    std::fs::write(h("f"), "from the host\n").unwrap();
    let cat = |p: &str| env.berth(&["exec", "ed", "cat", p]).stdout;
    // Into its tmpfs and its volume: the container sees the copies.
    for dir in ["/scratch", "/vol"] {
        env.berth(&["cp", h("f").to_str().unwrap(), &format!("ed:{dir}/f")])
            .ok();
        assert_eq!(cat(&format!("{dir}/f")), "from the host\n", "cp into {dir}");
        env.berth(&["exec", "ed", "sh", "-c", &format!("echo inside > {dir}/g")])
            .ok();
        let out = h(&format!("g{}", dir.replace('/', "-")));
        env.berth(&["cp", &format!("ed:{dir}/g"), out.to_str().unwrap()])
            .ok();
        assert_eq!(
            std::fs::read_to_string(&out).unwrap(),
            "inside\n",
            "cp out of {dir}"
        );
    }
    // Its generated files, running and stopped.
    let hn = h("hostname");
    env.berth(&["cp", "ed:/etc/hostname", hn.to_str().unwrap()])
        .ok();
    assert_eq!(std::fs::read_to_string(&hn).unwrap(), "web1\n");
    // A directory over a file is refused (Docker: "cannot overwrite
    // non-directory with directory"); the file stays.
    env.berth(&["exec", "ed", "sh", "-c", "echo keep > /tmp/file"])
        .ok();
    std::fs::create_dir(h("file")).unwrap();
    std::fs::write(h("file/y"), "y").unwrap();
    let o = env.berth(&["cp", h("file").to_str().unwrap(), "ed:/tmp/"]);
    assert_ne!(o.code, 0, "a directory replaced a file");
    assert!(o.stderr.contains("not copied over"), "{}", o.stderr);
    assert_eq!(cat("/tmp/file"), "keep\n");
    let o = env.berth(&["cp", h("file").to_str().unwrap(), "ed:/tmp/file"]);
    assert_ne!(o.code, 0, "a directory replaced a file");
    assert_eq!(cat("/tmp/file"), "keep\n");
    let tar = {
        let mut t = berth_image::tar::build::Tar::default();
        t.dir("file/", 0o755).file("file/y", b"y", 0o644);
        t.end()
    };
    let mut child = env
        .cmd()
        .args(["cp", "-", "ed:/tmp"])
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(&mut child.stdin.take().unwrap(), &tar).unwrap();
    let o = child.wait_with_output().unwrap();
    assert!(!o.status.success(), "a tar directory replaced a file");
    assert_eq!(cat("/tmp/file"), "keep\n");
    env.berth(&["stop", "-t", "0", "ed"]).ok();
    let _ = std::fs::remove_file(&hn);
    env.berth(&["cp", "ed:/etc/hostname", hn.to_str().unwrap()])
        .ok();
    assert_eq!(
        std::fs::read_to_string(&hn).unwrap(),
        "web1\n",
        "a stopped container's /etc/hostname"
    );
    let hosts = h("hosts");
    env.berth(&["cp", "ed:/etc/hosts", hosts.to_str().unwrap()])
        .ok();
    assert!(std::fs::read_to_string(&hosts)
        .unwrap()
        .contains("\tweb1\n"));
    // A container never started has them too.
    env.berth(&["create", "--name", "new", "hb:latest", "true"])
        .ok();
    let _ = std::fs::remove_file(&hn);
    env.berth(&["cp", "new:/etc/hostname", hn.to_str().unwrap()])
        .ok();
    let v: serde_json::Value =
        serde_json::from_str(&env.berth(&["inspect", "new"]).ok().stdout).unwrap();
    let id = v[0]["Id"].as_str().unwrap().to_string();
    let got = std::fs::read_to_string(&hn).unwrap();
    assert_eq!(got.len(), 13, "{got:?}");
    assert!(id.starts_with(got.trim_end()), "{got:?} vs {id:?}");
}
