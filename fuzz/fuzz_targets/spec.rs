//! Spec generation from hostile image configs (and seccomp profiles):
//! a spec or an error naming the field, never a panic.
#![no_main]

use berth_engine::spec::{generate, ImageConfig, RunOptions, Seccomp};
use berth_engine::user::{resolve, User};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(img) = ImageConfig::from_json(data) {
        let user = img
            .user
            .as_deref()
            .map(|u| resolve(u, None, None).unwrap_or_default())
            .unwrap_or_default();
        let mut o = RunOptions {
            hostname: "fuzz".into(),
            rootfs: "/rootfs".into(),
            ..Default::default()
        };
        let _ = generate(&img, &user, &o);
        o.args = vec!["sh".into()];
        o.entrypoint = Some(vec![]);
        let _ = generate(&img, &User::default(), &o);
    }
    let o = RunOptions {
        args: vec!["true".into()],
        seccomp: Seccomp::Default {
            profile: data.to_vec(),
            kernel: (6, 1),
        },
        ..Default::default()
    };
    let _ = generate(&ImageConfig::default(), &User::default(), &o);
    if let Ok(s) = std::str::from_utf8(data) {
        let _ = resolve(s, Some(s), Some(s));
    }
});
