//! The seccomp compiler: any `linux.seccomp` object is refused with an
//! error or compiled to a program the kernel would take (non-empty, at most
//! BPF_MAXINSNS instructions), never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(sc) = serde_json::from_slice::<oci_spec::runtime::LinuxSeccomp>(data) else {
        return;
    };
    if berth_seccomp::validate(&sc).is_err() {
        return;
    }
    if let Ok(f) = berth_seccomp::compile(&sc) {
        let n = f.program.len();
        assert!(n > 0 && n <= 4096, "compiled a program of {n} instructions");
    }
});
