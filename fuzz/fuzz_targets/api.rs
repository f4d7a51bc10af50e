//! The Docker API's request decoding on hostile input: a path's version
//! prefix, a query string, Docker's filters, an events query, an
//! X-Registry-Auth header, a build query, a prune's until, a login's
//! server address, an update body, and a container create body
//! (mapped onto the CLI's flags, then into the typed spec) either decode or
//! fail with a message; none panics.
#![no_main]

use berth_api::createbody;
use berth_api::http::{parse_filters, Query};
use berth_api::router::split_version;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = split_version(text);
        let q = Query::parse(Some(text));
        let _ = q.filters();
        let _ = q.int::<i64>("t");
        let _ = parse_filters(text);
        let _ = berth_api::events::request(&q);
        let _ = berth_api::images::registry_auth(Some(text));
        let _ = berth_api::build::parse_query(Some(text));
        let _ = berth_api::images::until_nanos(text, 1_700_000_000_000_000_000);
        let _ = berth_api::auth::target(text);
    }
    if let Ok(serde_json::Value::Object(m)) = serde_json::from_slice(data) {
        if let Err(e) = berth_api::container_fs::update_request(&m) {
            assert!(!e.is_empty());
        }
    }
    match createbody::parse(data) {
        Ok(b) => {
            assert!(!b.image.is_empty());
            // Never an entry taken from the service's own environment.
            assert!(b.flags.env.iter().all(|e| e.contains('=')));
            let _ = berth_engine::specgen::docker::to_spec(&b.flags, &b.command);
        }
        Err(e) => assert!(!e.is_empty()),
    }
});
