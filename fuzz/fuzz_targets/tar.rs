//! The layer tar reader: any bytes give entries or an error, never a
//! panic, a hang, or an allocation beyond the metadata cap.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut r = berth_image::tar::Reader::new(data);
    let mut buf = [0u8; 4096];
    while let Ok(Some(_e)) = r.next_entry() {
        while let Ok(n) = r.read_data(&mut buf) {
            if n == 0 {
                break;
            }
        }
    }
});
