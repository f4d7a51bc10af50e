//! config.json parsing and validation: any bytes give a Spec or an error
//! naming the field, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(spec) = berth_runtime::config::parse(data) {
        let _ = berth_runtime::config::validate(&spec);
        if let Some(p) = spec.process() {
            let _ = berth_runtime::config::validate_process(p);
        }
    }
});
