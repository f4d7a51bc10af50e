//! Registry documents and references: manifests, indexes, image configs
//! and image names give a value or an error, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    use berth_image::manifest;
    for ct in [
        "",
        "application/vnd.oci.image.manifest.v1+json",
        "application/vnd.oci.image.index.v1+json",
    ] {
        if let Ok(manifest::Document::Index(idx)) = manifest::parse(data, ct, "fuzz") {
            let _ = manifest::select(&idx, &manifest::Platform::host(), "fuzz");
        }
    }
    if let Ok(c) = manifest::parse_config(data, "fuzz") {
        let _ = manifest::chain_ids(&c.rootfs.diff_ids);
    }
    if let Ok(s) = std::str::from_utf8(data) {
        let _ = berth_image::Reference::parse(s);
        let _ = manifest::Platform::parse(s);
        let _ = berth_image::Digest::parse(s);
    }
});
