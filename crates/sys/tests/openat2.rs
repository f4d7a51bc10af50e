//! openat2 under concurrent renames (a test of its own: no thread may be
//! started in the sources of berth-sys, see the project rules).

use berth_sys::fs::{open, open_in_root, Links};
use std::os::fd::AsFd;
use std::path::Path;

/// A `..` resolved inside a root while another thread renames things (a
/// busy host): openat2 answers EAGAIN for such races, and the walk tries
/// again instead of failing (it failed CI once).
#[test]
fn dotdot_in_root_survives_concurrent_renames() {
    let t = tempfile::tempdir().unwrap();
    let root = t.path().join("root");
    std::fs::create_dir_all(root.join("a/b")).unwrap();
    std::fs::write(root.join("x"), b"x").unwrap();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let dir = t.path().join("spin");
    std::fs::create_dir(&dir).unwrap();
    std::fs::write(dir.join("p"), b"").unwrap();
    let renamer = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                std::fs::rename(dir.join("p"), dir.join("q")).unwrap();
                std::fs::rename(dir.join("q"), dir.join("p")).unwrap();
            }
        })
    };
    let rfd = open(&root, libc::O_PATH | libc::O_DIRECTORY, 0).unwrap();
    let mut failed = None;
    for _ in 0..5000 {
        if let Err(e) = open_in_root(
            rfd.as_fd(),
            Path::new("a/b/../../x"),
            libc::O_PATH,
            Links::InRoot,
        ) {
            failed = Some(e);
            break;
        }
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    renamer.join().unwrap();
    assert!(failed.is_none(), "{failed:?}");
}
