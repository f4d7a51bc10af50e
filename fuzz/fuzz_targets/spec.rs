//! Spec generation from hostile inputs: image configs, seccomp profiles,
//! and container specs as the REST API and Kubernetes YAML will send them
//! (JSON): a spec or an error naming the field, never a panic; and the
//! bundle's text (`generate_json`) is the same spec.
#![no_main]

use berth_engine::spec::{generate, generate_json, ImageConfig, Resolved, Seccomp};
use berth_engine::specgen::ContainerSpec;
use berth_engine::user::{resolve, User};
use libfuzzer_sys::fuzz_target;

fn resolved() -> Resolved {
    Resolved {
        hostname: "fuzz".into(),
        rootfs: "/rootfs".into(),
        ..Default::default()
    }
}

fuzz_target!(|data: &[u8]| {
    if let Ok(img) = ImageConfig::from_json(data) {
        let user = img
            .user
            .as_deref()
            .map(|u| resolve(u, None, None, &[]).unwrap_or_default())
            .unwrap_or_default();
        let mut cs = ContainerSpec::default();
        same_as_text(&img, &user, &cs, &resolved());
        cs.process.args = vec!["sh".into()];
        cs.process.entrypoint = Some(vec![]);
        same_as_text(&img, &User::default(), &cs, &resolved());
    }
    // A container spec from an API client: validated, then built (a spec
    // that validates may still be refused by the build, never a panic).
    if let Ok(cs) = serde_json::from_slice::<ContainerSpec>(data) {
        if cs.validate().is_ok() {
            let img = ImageConfig {
                cmd: Some(vec!["true".into()]),
                ..Default::default()
            };
            same_as_text(&img, &User::default(), &cs, &resolved());
        }
        // What a record holds reads back as itself.
        let text = serde_json::to_vec(&cs).unwrap();
        let back: ContainerSpec = serde_json::from_slice(&text).unwrap();
        assert_eq!(back, cs);
    }
    let mut cs = ContainerSpec::default();
    cs.process.args = vec!["true".into()];
    let h = Resolved {
        seccomp: Seccomp::Default {
            profile: data.to_vec(),
            kernel: (6, 1),
        },
        ..resolved()
    };
    same_as_text(&ImageConfig::default(), &User::default(), &cs, &h);
    if let Ok(s) = std::str::from_utf8(data) {
        let _ = resolve(s, Some(s), Some(s), &[]);
    }
});

/// `generate` and `generate_json` agree: both fail, or the text is the spec.
fn same_as_text(img: &ImageConfig, user: &User, cs: &ContainerSpec, h: &Resolved) {
    match (generate(img, user, cs, h), generate_json(img, user, cs, h)) {
        (Ok(spec), Ok(text)) => {
            let back: oci_spec::runtime::Spec = serde_json::from_slice(&text).unwrap();
            assert_eq!(back, spec);
        }
        (Err(_), Err(_)) => {}
        (a, b) => panic!("generate {:?} but generate_json {:?}", a.is_ok(), b.is_ok()),
    }
}
