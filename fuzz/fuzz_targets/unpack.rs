//! Layer unpacking against arbitrary archives: never a panic, and never a
//! file created, changed or removed outside the layer's root (a sibling
//! directory and a file beside the root must stay as they were).
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::os::unix::fs::MetadataExt;

fn snapshot(dir: &std::path::Path) -> Vec<(String, u64, u32, u64)> {
    let mut v: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            let m = std::fs::symlink_metadata(e.path()).unwrap();
            (e.file_name().to_string_lossy().into_owned(), m.len(), m.mode(), m.nlink())
        })
        .collect();
    v.sort();
    v
}

fuzz_target!(|data: &[u8]| {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("layer");
    let outside = tmp.path().join("outside");
    std::fs::create_dir(&root).unwrap();
    std::fs::create_dir(&outside).unwrap();
    std::fs::write(outside.join("victim"), b"host").unwrap();
    std::fs::write(tmp.path().join("beside"), b"host").unwrap();
    let before = (snapshot(tmp.path()), snapshot(&outside));
    let _ = berth_image::unpack::unpack(&root, data, "fuzz");
    let after = (snapshot(tmp.path()), snapshot(&outside));
    assert_eq!(before.1, after.1, "the unpack changed a directory outside the layer");
    // The top level may only differ in the layer directory itself.
    let strip = |v: &Vec<(String, u64, u32, u64)>| -> Vec<(String, u64, u32, u64)> {
        v.iter().filter(|e| e.0 != "layer").cloned().collect()
    };
    assert_eq!(strip(&before.0), strip(&after.0), "the unpack created or changed something beside the layer");
    assert_eq!(std::fs::read(outside.join("victim")).unwrap(), b"host");
});
