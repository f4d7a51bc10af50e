//! The compiled programs are run through a classic-BPF interpreter on
//! made-up syscalls, so the semantics are checked without loading anything.

use super::*;
use serde_json::json;

const AUDIT_ARCH_X86_64: u32 = 0xc000_003e;
const AUDIT_ARCH_I386: u32 = 0x4000_0003;
const RET_KILL_PROCESS: u32 = 0x8000_0000;
const RET_KILL_THREAD: u32 = 0;
const RET_TRAP: u32 = 0x0003_0000;
const RET_ERRNO: u32 = 0x0005_0000;
const RET_NOTIFY: u32 = 0x7fc0_0000;
const RET_TRACE: u32 = 0x7ff0_0000;
const RET_LOG: u32 = 0x7ffc_0000;
const RET_ALLOW: u32 = 0x7fff_0000;

/// `struct seccomp_data` as the filter reads it.
fn data(arch: u32, nr: i64, args: [u64; 6]) -> Vec<u8> {
    let mut d = Vec::with_capacity(64);
    d.extend_from_slice(&(nr as i32).to_ne_bytes());
    d.extend_from_slice(&arch.to_ne_bytes());
    d.extend_from_slice(&0u64.to_ne_bytes());
    for a in args {
        d.extend_from_slice(&a.to_ne_bytes());
    }
    d
}

/// A classic BPF interpreter for what libseccomp emits.
fn run(p: &[libc::sock_filter], d: &[u8]) -> u32 {
    let (mut a, mut x) = (0u32, 0u32);
    let mut mem = [0u32; 16];
    let mut pc = 0usize;
    loop {
        let i = p[pc];
        pc += 1;
        let k = i.k;
        let word =
            |off: u32| u32::from_ne_bytes(d[off as usize..off as usize + 4].try_into().unwrap());
        match i.code {
            0x20 => a = word(k),         // ld [k]
            0x00 => a = k,               // ld #k
            0x01 => x = k,               // ldx #k
            0x60 => a = mem[k as usize], // ld M[k]
            0x61 => x = mem[k as usize], // ldx M[k]
            0x02 => mem[k as usize] = a, // st M[k]
            0x03 => mem[k as usize] = x, // stx M[k]
            0x54 => a &= k,              // and #k
            0x5c => a &= x,              // and x
            0x44 => a |= k,              // or #k
            0x87 => a = x,               // txa
            0x07 => x = a,               // tax
            0x05 => pc += k as usize,    // ja
            0x15 | 0x25 | 0x35 | 0x45 | 0x1d | 0x2d | 0x3d | 0x4d => {
                let v = if i.code & 0x08 != 0 { x } else { k };
                let t = match i.code & 0xf0 {
                    0x10 => a == v,
                    0x20 => a > v,
                    0x30 => a >= v,
                    _ => a & v != 0,
                };
                pc += if t { i.jt } else { i.jf } as usize;
            }
            0x06 => return k, // ret #k
            0x16 => return a, // ret a
            c => panic!("instruction {c:#x} not interpreted"),
        }
    }
}

fn profile(v: serde_json::Value) -> LinuxSeccomp {
    serde_json::from_value(v).unwrap()
}

fn nr(name: &str) -> i64 {
    i32::from(ScmpSyscall::from_name(name).unwrap()) as i64
}

fn x86(f: &Filter, name: &str, args: [u64; 6]) -> u32 {
    run(&f.program, &data(AUDIT_ARCH_X86_64, nr(name), args))
}

#[test]
fn actions_and_errno() {
    let f = compile(&profile(json!({
        "defaultAction": "SCMP_ACT_ERRNO",
        "defaultErrnoRet": 38,
        "architectures": ["SCMP_ARCH_X86_64"],
        "syscalls": [
            {"names": ["getpid", "read"], "action": "SCMP_ACT_ALLOW"},
            {"names": ["mkdir"], "action": "SCMP_ACT_ERRNO"},
            {"names": ["rmdir"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1234},
            {"names": ["uname"], "action": "SCMP_ACT_KILL_PROCESS"},
            {"names": ["umask"], "action": "SCMP_ACT_KILL"},
            {"names": ["getcwd"], "action": "SCMP_ACT_TRAP"},
            {"names": ["getuid"], "action": "SCMP_ACT_LOG"},
            {"names": ["getgid"], "action": "SCMP_ACT_TRACE", "errnoRet": 7},
            {"names": ["no_such_syscall_anywhere"], "action": "SCMP_ACT_ALLOW"}
        ]
    })))
    .unwrap();
    let z = [0; 6];
    assert_eq!(x86(&f, "getpid", z), RET_ALLOW);
    assert_eq!(x86(&f, "read", z), RET_ALLOW);
    assert_eq!(
        x86(&f, "mkdir", z),
        RET_ERRNO | libc::EPERM as u32,
        "EPERM by default"
    );
    assert_eq!(x86(&f, "rmdir", z), RET_ERRNO | 1234);
    assert_eq!(x86(&f, "uname", z), RET_KILL_PROCESS);
    assert_eq!(x86(&f, "umask", z), RET_KILL_THREAD);
    assert_eq!(x86(&f, "getcwd", z), RET_TRAP);
    assert_eq!(x86(&f, "getuid", z), RET_LOG);
    assert_eq!(x86(&f, "getgid", z), RET_TRACE | 7);
    assert_eq!(x86(&f, "write", z), RET_ERRNO | 38, "defaultErrnoRet");
    assert_eq!(f.flags, 0);
}

#[test]
fn argument_conditions() {
    let f = compile(&profile(json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [
            // Both must hold: fd == 1 and count > 100.
            {"names": ["write"], "action": "SCMP_ACT_ERRNO",
             "args": [{"index": 0, "value": 1, "op": "SCMP_CMP_EQ"},
                      {"index": 2, "value": 100, "op": "SCMP_CMP_GT"}]},
            // Same index twice: either may hold.
            {"names": ["kill"], "action": "SCMP_ACT_ERRNO",
             "args": [{"index": 1, "value": 9, "op": "SCMP_CMP_EQ"},
                      {"index": 1, "value": 15, "op": "SCMP_CMP_EQ"}]},
            {"names": ["mkdir"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13,
             "args": [{"index": 1, "value": 0o700, "valueTwo": 0o700, "op": "SCMP_CMP_MASKED_EQ"}]},
            {"names": ["dup"], "action": "SCMP_ACT_ERRNO", "args": [{"index": 0, "value": 5, "op": "SCMP_CMP_NE"}]},
            {"names": ["dup2"], "action": "SCMP_ACT_ERRNO", "args": [{"index": 0, "value": 5, "op": "SCMP_CMP_LT"}]},
            {"names": ["close"], "action": "SCMP_ACT_ERRNO", "args": [{"index": 0, "value": 5, "op": "SCMP_CMP_LE"}]},
            {"names": ["fsync"], "action": "SCMP_ACT_ERRNO", "args": [{"index": 0, "value": 5, "op": "SCMP_CMP_GE"}]},
            // A 64-bit value: both halves are compared.
            {"names": ["lseek"], "action": "SCMP_ACT_ERRNO", "args": [{"index": 1, "value": 0x1_0000_0000u64, "op": "SCMP_CMP_EQ"}]}
        ]
    })))
    .unwrap();
    let e = RET_ERRNO | libc::EPERM as u32;
    assert_eq!(x86(&f, "write", [1, 0, 101, 0, 0, 0]), e);
    assert_eq!(x86(&f, "write", [1, 0, 100, 0, 0, 0]), RET_ALLOW);
    assert_eq!(x86(&f, "write", [2, 0, 101, 0, 0, 0]), RET_ALLOW);
    assert_eq!(x86(&f, "kill", [1, 9, 0, 0, 0, 0]), e);
    assert_eq!(x86(&f, "kill", [1, 15, 0, 0, 0, 0]), e);
    assert_eq!(x86(&f, "kill", [1, 1, 0, 0, 0, 0]), RET_ALLOW);
    assert_eq!(x86(&f, "mkdir", [0, 0o700, 0, 0, 0, 0]), RET_ERRNO | 13);
    assert_eq!(
        x86(&f, "mkdir", [0, 0o755, 0, 0, 0, 0]),
        RET_ERRNO | 13,
        "masked: 0755 & 0700"
    );
    assert_eq!(x86(&f, "mkdir", [0, 0o500, 0, 0, 0, 0]), RET_ALLOW);
    assert_eq!(x86(&f, "dup", [4, 0, 0, 0, 0, 0]), e);
    assert_eq!(x86(&f, "dup", [5, 0, 0, 0, 0, 0]), RET_ALLOW);
    assert_eq!(x86(&f, "dup2", [4, 0, 0, 0, 0, 0]), e);
    assert_eq!(x86(&f, "dup2", [5, 0, 0, 0, 0, 0]), RET_ALLOW);
    assert_eq!(x86(&f, "close", [5, 0, 0, 0, 0, 0]), e);
    assert_eq!(x86(&f, "close", [6, 0, 0, 0, 0, 0]), RET_ALLOW);
    assert_eq!(x86(&f, "fsync", [5, 0, 0, 0, 0, 0]), e);
    assert_eq!(x86(&f, "fsync", [4, 0, 0, 0, 0, 0]), RET_ALLOW);
    assert_eq!(x86(&f, "lseek", [0, 0x1_0000_0000, 0, 0, 0, 0]), e);
    assert_eq!(
        x86(&f, "lseek", [0, 0, 0, 0, 0, 0]),
        RET_ALLOW,
        "the high half matters"
    );
}

#[test]
fn several_architectures_in_one_filter() {
    let f = compile(&profile(json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
        "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_ERRNO"}]
    })))
    .unwrap();
    let i386_mkdir =
        i32::from(ScmpSyscall::from_name_by_arch("mkdir", ScmpArch::X86).unwrap()) as i64;
    assert_eq!(
        run(&f.program, &data(AUDIT_ARCH_I386, i386_mkdir, [0; 6])),
        RET_ERRNO | libc::EPERM as u32
    );
    assert_eq!(x86(&f, "mkdir", [0; 6]), RET_ERRNO | libc::EPERM as u32);
    // An architecture the profile does not list is killed.
    let f = compile(&profile(json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "architectures": ["SCMP_ARCH_X86_64"]
    })))
    .unwrap();
    assert_eq!(
        run(&f.program, &data(AUDIT_ARCH_I386, 1, [0; 6])),
        RET_KILL_THREAD
    );
}

#[test]
fn flags_and_notify() {
    let f = compile(&profile(json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "flags": ["SECCOMP_FILTER_FLAG_LOG", "SECCOMP_FILTER_FLAG_SPEC_ALLOW"],
        "listenerPath": "/run/listener.sock",
        "listenerMetadata": "meta",
        "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_NOTIFY"}]
    })))
    .unwrap();
    assert_eq!(f.flags, FLAG_LOG | FLAG_SPEC_ALLOW | FLAG_NEW_LISTENER);
    assert!(f.notify());
    assert_eq!(x86(&f, "mkdir", [0; 6]), RET_NOTIFY);
    assert_eq!(f.listener_metadata.as_deref(), Some("meta"));
}

#[test]
fn rules_equal_to_the_default_are_skipped() {
    let f = compile(&profile(json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [{"names": ["getpid"], "action": "SCMP_ACT_ALLOW"}]
    })))
    .unwrap();
    assert_eq!(x86(&f, "getpid", [0; 6]), RET_ALLOW);
}

#[test]
fn bad_profiles_name_the_field() {
    let cases = [
        (
            json!({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": [], "action": "SCMP_ACT_ERRNO"}]}),
            "linux.seccomp.syscalls[0].names",
        ),
        (
            json!({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_ERRNO", "args": [{"index": 6, "value": 1, "op": "SCMP_CMP_EQ"}]}]}),
            "linux.seccomp.syscalls[0].args[0].index",
        ),
        (
            json!({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_NOTIFY"}]}),
            "linux.seccomp.listenerPath",
        ),
        (
            json!({"defaultAction": "SCMP_ACT_NOTIFY", "listenerPath": "/x"}),
            "linux.seccomp.defaultAction",
        ),
        (
            json!({"defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": 70000}),
            "linux.seccomp.defaultErrnoRet",
        ),
        (
            json!({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_NOTIFY"}], "listenerPath": "relative.sock"}),
            "linux.seccomp.listenerPath",
        ),
    ];
    for (v, field) in cases {
        let e = compile(&profile(v)).unwrap_err().to_string();
        assert!(e.starts_with(field), "{e} does not start with {field}");
    }
}

/// A profile the size of Docker's default (about 350 allowed syscalls, a
/// few conditional rules): compiles, and quickly.
#[test]
fn docker_sized_profile_compiles() {
    let names: Vec<String> = (0..450)
        .filter_map(|n| ScmpSyscall::from(n).get_name().ok())
        .take(350)
        .collect();
    assert!(names.len() > 300);
    let p = profile(json!({
        "defaultAction": "SCMP_ACT_ERRNO",
        "defaultErrnoRet": 1,
        "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
        "syscalls": [
            {"names": names, "action": "SCMP_ACT_ALLOW"},
            {"names": ["personality"], "action": "SCMP_ACT_ALLOW", "args": [{"index": 0, "value": 0, "op": "SCMP_CMP_EQ"}]},
            {"names": ["personality"], "action": "SCMP_ACT_ALLOW", "args": [{"index": 0, "value": 8, "op": "SCMP_CMP_EQ"}]},
            {"names": ["clone"], "action": "SCMP_ACT_ALLOW", "args": [{"index": 0, "value": 2114060288, "op": "SCMP_CMP_MASKED_EQ"}]}
        ]
    }));
    let t = std::time::Instant::now();
    let f = compile(&p).unwrap();
    let took = t.elapsed();
    assert!(
        f.program.len() > 100 && f.program.len() < 4096,
        "{} instructions",
        f.program.len()
    );
    assert!(
        took < std::time::Duration::from_secs(1),
        "compiling took {took:?}"
    );
    assert_eq!(x86(&f, "getpid", [0; 6]), RET_ALLOW);
}

#[test]
fn cache_returns_the_same_program_and_survives_damage() {
    let dir = tempfile::tempdir().unwrap();
    let p = profile(json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "listenerPath": "/run/l.sock",
        "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_ERRNO"},
                     {"names": ["rmdir"], "action": "SCMP_ACT_NOTIFY"}]
    }));
    let fresh = compile(&p).unwrap();
    let first = compile_cached(&p, dir.path()).unwrap();
    let entries: Vec<_> = std::fs::read_dir(dir.path()).unwrap().flatten().collect();
    assert_eq!(entries.len(), 1, "one entry, no temp files left");
    let second = compile_cached(&p, dir.path()).unwrap();
    for f in [&first, &second] {
        assert_eq!(encode(&f.program), encode(&fresh.program));
        assert_eq!(f.flags, fresh.flags);
        assert_eq!(f.flags & FLAG_NEW_LISTENER, FLAG_NEW_LISTENER);
    }
    // A damaged entry is noticed, and the profile compiled again.
    let entry = entries[0].path();
    let mut bytes = std::fs::read(&entry).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff;
    std::fs::write(&entry, &bytes).unwrap();
    let third = compile_cached(&p, dir.path()).unwrap();
    assert_eq!(encode(&third.program), encode(&fresh.program));
    // Another profile, another entry.
    let other = profile(json!({"defaultAction": "SCMP_ACT_LOG"}));
    compile_cached(&other, dir.path()).unwrap();
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 2);
    // An unwritable cache is only slower.
    let f = compile_cached(&other, std::path::Path::new("/proc/no-such-dir")).unwrap();
    assert!(!f.program.is_empty());
}

#[test]
fn the_newest_named_syscall_bounds_the_enosys_stub() {
    let archs = [ScmpArch::X8664, ScmpArch::X86, ScmpArch::X32];
    let found = newest_syscalls(&archs, &["read", "rseq", "no_such_call"]);
    // rseq is 334 on x86_64, 386 on i386; x32 has no stub.
    assert_eq!(
        found,
        [(0xC000_003E, 334, true), (0x4000_0003, 386, false)],
        "{found:x?}"
    );
    let prog = vec![libc::sock_filter {
        code: (libc::BPF_RET | libc::BPF_K) as u16,
        jt: 0,
        jf: 0,
        k: 0x7fff_0000,
    }];
    let out = enosys_stub(&found, prog.clone());
    assert_eq!(out.len(), 6 + 5 + 1);
    // Every jump lands inside the program, and the x86_64 block's
    // "not this arch" jump lands on the i386 block.
    assert_eq!(out[1].jf, 4);
    for (i, ins) in out.iter().enumerate() {
        if ins.code & 0x07 == libc::BPF_JMP as u16 {
            assert!(i + 1 + (ins.jt as usize) < out.len());
            assert!(i + 1 + (ins.jf as usize) < out.len());
        }
    }
    assert_eq!(out.last().unwrap().k, 0x7fff_0000);
}

#[test]
fn a_profile_too_long_for_the_kernel_is_refused_when_compiled() {
    // One rule per argument value: thousands of comparisons.
    let rules: Vec<serde_json::Value> = (0..5000)
        .map(|i| {
            json!({"names": ["personality"], "action": "SCMP_ACT_ALLOW",
                   "args": [{"index": 0, "value": i, "op": "SCMP_CMP_EQ"}]})
        })
        .collect();
    let p: LinuxSeccomp = serde_json::from_value(json!({
        "defaultAction": "SCMP_ACT_ERRNO",
        "syscalls": rules
    }))
    .unwrap();
    let e = match compile(&p) {
        Ok(f) => panic!("compiled to {} instructions", f.program.len()),
        Err(e) => e.to_string(),
    };
    assert!(e.contains("at most 4096"), "{e}");
}
