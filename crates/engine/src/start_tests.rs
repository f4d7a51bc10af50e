//! Create and start against the fakes: an image imported into a temporary
//! store (a tar of directories and regular files), the fake runtime, and
//! the fake host (`host::Fake`: the root is a copy of the image's layer,
//! the monitor a stand-in process and a thread that speaks its protocol).
//! No container and no privilege.

use crate::error::Error;
use crate::host::{Fake as FakeHost, FakeStart, HostCall};
use crate::records::{Record, Status};
use crate::runtime::{Fake, State as RtState, Status as RtStatus};
use crate::specgen::ContainerSpec;
use crate::Engine;
use berth_image::Digest;
use berth_monitor_proto::state::{State as MonitorState, Status as MonitorStatus};

struct World {
    _dir: tempfile::TempDir,
    fake: &'static Fake,
    host: &'static FakeHost,
    engine: Engine,
    image_id: Digest,
}

impl Drop for World {
    /// The stand-in monitors (`sleep 600`) end with the test.
    fn drop(&mut self) {
        self.host.end_all();
    }
}

/// A ustar archive of `entries`: a directory (None) or a regular file,
/// owned by whoever runs the test (so that it unpacks without root).
fn tar(entries: &[(&str, Option<&[u8]>)]) -> Vec<u8> {
    // SAFETY: getuid and getgid cannot fail and touch no memory.
    let (uid, gid) = unsafe { (libc::getuid(), libc::getgid()) };
    let mut out = Vec::new();
    for (name, data) in entries {
        let mut h = [0u8; 512];
        h[..name.len()].copy_from_slice(name.as_bytes());
        let size = data.map_or(0, <[u8]>::len);
        h[100..107].copy_from_slice(b"0000755");
        h[108..115].copy_from_slice(format!("{:07o}", uid & 0o7777777).as_bytes());
        h[116..123].copy_from_slice(format!("{:07o}", gid & 0o7777777).as_bytes());
        h[124..135].copy_from_slice(format!("{size:011o}").as_bytes());
        h[136..147].copy_from_slice(b"00000000000");
        h[156] = if data.is_some() { b'0' } else { b'5' };
        h[257..263].copy_from_slice(b"ustar\0");
        h[263..265].copy_from_slice(b"00");
        h[148..156].copy_from_slice(b"        ");
        let sum: u32 = h.iter().map(|&b| u32::from(b)).sum();
        h[148..155].copy_from_slice(format!("{sum:06o}\0").as_bytes());
        out.extend_from_slice(&h);
        if let Some(d) = data {
            out.extend_from_slice(d);
            out.resize(out.len().div_ceil(512) * 512, 0);
        }
    }
    out.resize(out.len() + 1024, 0);
    out
}

impl World {
    fn new() -> World {
        let dir = tempfile::tempdir().expect("make a temporary directory");
        let root = dir.path().join("root");
        // The stand-in monitor: sleep, run through a link named
        // berth-monitor (the kernel names a process after its file).
        let sleep = ["/bin/sleep", "/usr/bin/sleep"]
            .into_iter()
            .find(|p| std::path::Path::new(p).exists())
            .expect("these tests need a sleep program in /bin or /usr/bin");
        let link = dir.path().join("berth-monitor");
        std::os::unix::fs::symlink(sleep, &link).expect("link berth-monitor to sleep");
        let archive = dir.path().join("image.tar");
        std::fs::write(
            &archive,
            tar(&[
                ("bin/", None),
                ("bin/app", Some(b"#!/bin/sh\n")),
                ("etc/", None),
                ("etc/passwd", Some(b"root:x:0:0:root:/root:/bin/sh\n")),
                ("data/", None),
                ("data/seed", Some(b"from the image\n")),
            ]),
        )
        .unwrap();
        let image_id = crate::images::Images::open(&root)
            .expect("open the image store")
            .import(&archive, Some("tiny:1"), &[], None, &|_| {})
            .expect("import a tar of directories and regular files");
        // Leaked: the engine holds them for the life of the process.
        let fake: &'static Fake = Box::leak(Box::new(Fake::new()));
        let host: &'static FakeHost = Box::leak(Box::new(FakeHost::new(link)));
        let engine = Engine::open_with(&root, &dir.path().join("run"), fake)
            .expect("open an engine on a temporary root")
            .with_host(host);
        World {
            _dir: dir,
            fake,
            host,
            engine,
            image_id,
        }
    }

    fn spec(json: &str) -> ContainerSpec {
        ContainerSpec::from_request(json.as_bytes()).expect("a valid spec")
    }

    /// A container of the image, `app` with an env and a volume `data` on
    /// /data.
    fn create(&self, name: &str) -> crate::Result<Record> {
        let spec = World::spec(
            r#"{"process": {"args": ["/bin/app", "one"], "env": ["GREETING=hello"]},
                "storage": {"mounts": [{"type": "volume", "source": "data", "destination": "/data"}]}}"#,
        );
        self.engine
            .create("tiny:1", &self.image_id, Some(name), spec)
    }

    fn events(&self) -> Vec<String> {
        self.engine
            .records
            .events_after(0, 1000)
            .unwrap()
            .into_iter()
            .filter(|(_, e)| e.kind != "image")
            .map(|(_, e)| format!("{} {}", e.kind, e.action))
            .collect()
    }

    /// The fake runtime says the container runs, and a kill of it ends it
    /// as its monitor would: the exit recorded, then the monitor gone.
    fn ends_on_kill(&self, rec: &Record, monitor: i32) {
        let id = rec.id.clone();
        self.fake.set_state(
            &id,
            Some(RtState {
                status: RtStatus::Running,
                pid: 4_000_000,
            }),
        );
        let state = self.engine.paths.run_dir(&id).join("state");
        let host = self.host;
        self.fake.on_kill(move |_, sig| {
            let ms = MonitorState {
                monitor_pid: monitor,
                pid: 4_000_000,
                status: MonitorStatus::Exited,
                started: 10,
                finished: 20,
                exit_code: 128 + sig,
                ..MonitorState::default()
            };
            std::fs::write(&state, ms.to_text()).unwrap();
            host.end_monitor(monitor);
        });
    }

    fn mounts(&self) -> usize {
        let c = self.host.calls();
        c.iter().filter(|c| matches!(c, HostCall::Mount(_))).count()
    }
}

// create

#[test]
fn create_records_the_container_with_its_volumes_and_says_so() {
    let w = World::new();
    let rec = w.create("web").unwrap();
    assert_eq!(rec.name, "web");
    assert_eq!(rec.image, "tiny:1");
    assert_eq!(rec.image_id, w.image_id.to_string());
    assert_eq!(rec.state.status, Status::Created);
    let stored = w.engine.records.get(&rec.id).unwrap().expect("the record");
    assert_eq!(stored.spec.process.args, ["/bin/app", "one"]);
    assert!(w.engine.paths.container(&rec.id).is_dir());
    assert_eq!(
        w.engine.records.container_volumes(&rec.id).unwrap(),
        ["data"]
    );
    assert!(w.engine.paths.volume_data("data").is_dir());
    assert_eq!(w.events(), ["volume create", "container create"]);
    // Nothing is mounted or started at create.
    assert!(w.host.calls().is_empty(), "{:?}", w.host.calls());
    assert!(w.fake.calls().is_empty());
}

#[test]
fn inspect_leaves_out_the_fields_of_an_image_removed_since() {
    let w = World::new();
    let archive = w._dir.path().join("image.tar");
    let root = w._dir.path().join("root");
    let id = crate::images::Images::open(&root)
        .unwrap()
        .import(
            &archive,
            Some("shaped:1"),
            &["WORKDIR /data".into(), "STOPSIGNAL SIGINT".into()],
            None,
            &|_| {},
        )
        .unwrap();
    let spec = World::spec(r#"{"process": {"args": ["/bin/app"]}}"#);
    let rec = w
        .engine
        .create("shaped:1", &id, Some("shaped"), spec)
        .unwrap();
    let shown = w.engine.inspect_container("shaped").unwrap();
    assert_eq!(shown.config.working_dir, "/data");
    assert_eq!(shown.config.stop_signal, "SIGINT");
    // The image goes (as only a damaged store or another process could
    // make it go while a container holds it): its config, kept by this
    // engine, is not shown any more.
    let mut store = berth_image::store::Store::open(&root).unwrap();
    store.release(&format!("container:{}", rec.id)).unwrap();
    store.remove_by_id(&id).unwrap();
    store.gc().unwrap();
    let shown = w.engine.inspect_container("shaped").unwrap();
    assert_eq!(shown.config.working_dir, "");
    assert_eq!(shown.config.stop_signal, "SIGTERM");
    assert!(w.engine.image_config(&id).is_err());
}

#[test]
fn create_refuses_a_name_in_use() {
    let w = World::new();
    let first = w.create("web").unwrap();
    let e = w.create("web").expect_err("two containers named web");
    assert!(matches!(e, Error::NameInUse(ref n) if n == "web"), "{e}");
    let all = w.engine.records.all().unwrap();
    assert_eq!(all.len(), 1);
    assert_eq!(all[0].id, first.id);
}

#[test]
fn create_with_a_bad_spec_writes_nothing() {
    let w = World::new();
    // Refused by the spec's own check...
    let mut spec = World::spec(r#"{"process": {"args": ["/bin/app"]}}"#);
    spec.logging.max_files = 0;
    let e = w
        .engine
        .create("tiny:1", &w.image_id, Some("web"), spec)
        .expect_err("a spec keeping no log file");
    assert!(e.to_string().contains("max_files"), "{e}");
    // ...and by what it resolves to on this host (a device it lacks).
    let mut spec = World::spec(
        r#"{"process": {"args": ["/bin/app"]},
            "storage": {"mounts": [{"type": "volume", "source": "data", "destination": "/data"}]}}"#,
    );
    spec.resources.devices.push(crate::specgen::DeviceMapping {
        host: "/dev/berth-test-no-such-device".into(),
        ..Default::default()
    });
    let e = w
        .engine
        .create("tiny:1", &w.image_id, Some("web"), spec)
        .expect_err("a device the host lacks");
    assert!(e.to_string().contains("berth-test-no-such-device"), "{e}");
    assert!(w.engine.records.all().unwrap().is_empty());
    assert!(w.engine.records.volumes().unwrap().is_empty());
    let dirs = std::fs::read_dir(w.engine.paths.root.join("containers")).unwrap();
    assert_eq!(dirs.count(), 0);
    assert!(w.events().is_empty(), "{:?}", w.events());
    // A name refused is free again.
    w.create("web").unwrap();
}

// start

#[test]
fn start_writes_the_bundle_from_the_spec_and_runs_when_the_monitor_says_so() {
    let w = World::new();
    let rec = w.create("web").unwrap();
    let (_session, pid) = w.engine.start_session("web", None).unwrap();
    assert_eq!(pid, 4_000_000);
    let run_dir = w.engine.paths.run_dir(&rec.id);
    let rootfs = w.engine.paths.rootfs(&rec.id);
    // The bundle: config.json from the spec, on the mounted root.
    let config: serde_json::Value =
        serde_json::from_slice(&std::fs::read(run_dir.join("config.json")).unwrap()).unwrap();
    assert_eq!(
        config["process"]["args"],
        serde_json::json!(["/bin/app", "one"])
    );
    let env = config["process"]["env"].as_array().unwrap();
    assert!(env.iter().any(|e| e == "GREETING=hello"), "{env:?}");
    assert_eq!(config["root"]["path"], rootfs.to_str().unwrap());
    let data = config["mounts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["destination"] == "/data")
        .expect("the volume's mount");
    let volume = w.engine.paths.volume_data("data");
    assert_eq!(data["source"], volume.to_str().unwrap());
    // The volume was filled from the image, through the root.
    assert_eq!(
        std::fs::read_to_string(volume.join("seed")).unwrap(),
        "from the image\n"
    );
    for f in ["hostname", "hosts", "resolv.conf"] {
        assert!(run_dir.join(f).is_file(), "{f}");
    }
    // The monitor's config.
    // (First the start's refresh clears what a start cut short would
    // have left: nothing here.)
    let calls = w.host.calls();
    assert!(
        matches!(&calls[0], HostCall::Unmount(p) if *p == rootfs),
        "{calls:?}"
    );
    assert!(
        matches!(&calls[1], HostCall::Mount(id) if *id == rec.id),
        "{calls:?}"
    );
    let HostCall::Monitor(cfg) = &calls[2] else {
        panic!("no monitor started: {calls:?}");
    };
    assert_eq!(calls.len(), 3, "{calls:?}");
    assert_eq!(cfg.id, rec.id);
    assert_eq!(cfg.bundle, run_dir);
    assert_eq!(cfg.run_dir, run_dir);
    assert!(cfg.wait_go);
    assert_eq!(cfg.runtime, std::path::Path::new("/fake/berth-runtime"));
    assert_eq!(
        cfg.log_path,
        w.engine.paths.container(&rec.id).join("ctr.log")
    );
    assert!(cfg.exit_command.ends_with(&[
        "container".to_string(),
        "cleanup".to_string(),
        rec.id.clone()
    ]));
    // The record: running, with the monitor's pid; a refresh takes the
    // monitor's state.
    let monitor = w.host.monitor_pids()[0];
    let stored = w.engine.get("web").unwrap();
    assert_eq!(stored.state.status, Status::Running);
    assert_eq!(stored.state.monitor_pid, monitor);
    assert_eq!(stored.state.pid, 4_000_000);
    assert_eq!(
        w.events(),
        ["volume create", "container create", "container start"]
    );
}

#[test]
fn a_start_that_fails_in_the_monitor_leaves_it_exited_with_the_error_and_unmounted() {
    let w = World::new();
    let rec = w.create("web").unwrap();
    w.host.next_start(FakeStart::Fails(
        "exec: \"/bin/app\": permission denied".into(),
    ));
    let e = w
        .engine
        .start_session("web", None)
        .err()
        .expect("a start the runtime failed");
    assert!(
        matches!(e, Error::StartFailed { ref container, ref msg }
            if container == "web" && msg.contains("permission denied")),
        "{e}"
    );
    // The monitor ends once told CLEANED, and runs its exit command.
    let monitor = w.host.monitor_pids()[0];
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while crate::containers::is_monitor(monitor) {
        assert!(
            std::time::Instant::now() < deadline,
            "the monitor did not end"
        );
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
    w.engine.cleanup(&rec.id).unwrap();
    let stored = w.engine.get("web").unwrap();
    assert_eq!(stored.state.status, Status::Exited);
    assert!(
        stored.state.error.contains("permission denied"),
        "{:?}",
        stored.state
    );
    let rootfs = w.engine.paths.rootfs(&rec.id);
    assert!(
        w.host
            .calls()
            .iter()
            .any(|c| matches!(c, HostCall::Unmount(p) if *p == rootfs)),
        "{:?}",
        w.host.calls()
    );
    assert!(!rootfs.exists());
    assert!(!w.engine.paths.run_dir(&rec.id).exists());
    // It can be started again.
    let (_s, pid) = w.engine.start_session("web", None).unwrap();
    assert_eq!(pid, 4_000_000);
}

#[test]
fn a_second_start_of_a_running_container_is_refused() {
    let w = World::new();
    w.create("web").unwrap();
    let _session = w.engine.start_session("web", None).unwrap();
    let e = w.engine.start("web").err().expect("started twice");
    assert!(
        matches!(e, Error::Conflict(ref m) if m.contains("already running")),
        "{e}"
    );
    assert_eq!(w.mounts(), 1);
    assert_eq!(w.host.monitor_pids().len(), 1);
    assert_eq!(w.engine.get("web").unwrap().state.status, Status::Running);
}

#[test]
fn restart_is_a_stop_then_a_start() {
    let w = World::new();
    let rec = w.create("web").unwrap();
    let first = w.engine.start_session("web", None).unwrap();
    let monitor = w.host.monitor_pids()[0];
    w.ends_on_kill(&rec, monitor);
    // What `berth restart` does.
    let stopped = w.engine.stop("web", Some(10)).unwrap();
    drop(first);
    assert_eq!(stopped.state.status, Status::Exited);
    assert_eq!(stopped.state.exit_code, 128 + libc::SIGTERM);
    let rootfs = w.engine.paths.rootfs(&rec.id);
    assert!(!rootfs.exists());
    let (_s, pid) = w.engine.start_session("web", None).unwrap();
    assert_eq!(pid, 4_000_000);
    let again = w.engine.get("web").unwrap();
    assert_eq!(again.state.status, Status::Running);
    let second = w.host.monitor_pids();
    assert_eq!(second.len(), 1, "the first monitor was reaped");
    assert_ne!(again.state.monitor_pid, monitor);
    assert_eq!(again.state.monitor_pid, second[0]);
    let kinds: Vec<&str> = w
        .host
        .calls()
        .iter()
        .map(|c| match c {
            HostCall::Mount(_) => "mount",
            HostCall::Unmount(_) => "unmount",
            HostCall::Monitor(_) => "monitor",
        })
        .collect();
    assert_eq!(
        kinds,
        ["unmount", "mount", "monitor", "unmount", "mount", "monitor"]
    );
    assert_eq!(
        w.events(),
        [
            "volume create",
            "container create",
            "container start",
            "container kill",
            "container die",
            "container stop",
            "container start"
        ]
    );
}
