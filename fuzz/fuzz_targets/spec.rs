//! Spec generation from hostile image configs (and seccomp profiles):
//! a spec or an error naming the field, never a panic; and the bundle's
//! text (`generate_json`) is the same spec.
#![no_main]

use berth_engine::spec::{generate, generate_json, ImageConfig, RunOptions, Seccomp};
use berth_engine::user::{resolve, User};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(img) = ImageConfig::from_json(data) {
        let user = img
            .user
            .as_deref()
            .map(|u| resolve(u, None, None, &[]).unwrap_or_default())
            .unwrap_or_default();
        let mut o = RunOptions {
            hostname: "fuzz".into(),
            rootfs: "/rootfs".into(),
            ..Default::default()
        };
        same_as_text(&img, &user, &o);
        o.args = vec!["sh".into()];
        o.entrypoint = Some(vec![]);
        same_as_text(&img, &User::default(), &o);
    }
    let o = RunOptions {
        args: vec!["true".into()],
        seccomp: Seccomp::Default {
            profile: data.to_vec(),
            kernel: (6, 1),
        },
        ..Default::default()
    };
    same_as_text(&ImageConfig::default(), &User::default(), &o);
    if let Ok(s) = std::str::from_utf8(data) {
        let _ = resolve(s, Some(s), Some(s), &[]);
    }
});

/// `generate` and `generate_json` agree: both fail, or the text is the spec.
fn same_as_text(img: &ImageConfig, user: &User, o: &RunOptions) {
    match (generate(img, user, o), generate_json(img, user, o)) {
        (Ok(spec), Ok(text)) => {
            let back: oci_spec::runtime::Spec = serde_json::from_slice(&text).unwrap();
            assert_eq!(back, spec);
        }
        (Err(_), Err(_)) => {}
        (a, b) => panic!("generate {:?} but generate_json {:?}", a.is_ok(), b.is_ok()),
    }
}
