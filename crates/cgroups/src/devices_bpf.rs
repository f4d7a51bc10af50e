//! The cgroup v2 device controller: OCI device rules compiled to an eBPF
//! program of type `BPF_PROG_TYPE_CGROUP_DEVICE`, attached to the
//! container's cgroup.
//!
//! Semantics follow the v1 devices cgroup that the OCI rules were written
//! for: rules apply in order and the last one that matches a request
//! decides; nothing matching means deny. The program therefore tests the
//! rules from last to first and returns at the first match. An allow rule
//! matches when it grants every access asked for; a deny rule matches when
//! it refuses any of them.

use berth_sys::bpf::Insn;
use oci_spec::runtime::{LinuxDeviceCgroup, LinuxDeviceType};

/// `bpf_cgroup_dev_ctx.access_type`: the low 16 bits are the type, the high
/// 16 bits the access.
const DEV_BLOCK: i32 = 1;
const DEV_CHAR: i32 = 2;
const ACC_MKNOD: i32 = 1;
const ACC_READ: i32 = 2;
const ACC_WRITE: i32 = 4;
const ACC_ALL: i32 = ACC_MKNOD | ACC_READ | ACC_WRITE;

// Registers: r1 = ctx (then scratch), r2 = type, r3 = access, r4 = major,
// r5 = minor, r0 = verdict.
const LDX_W: u8 = 0x61; // BPF_LDX | BPF_MEM | BPF_W
const AND32_K: u8 = 0x54; // BPF_ALU | BPF_AND | BPF_K
const RSH32_K: u8 = 0x74; // BPF_ALU | BPF_RSH | BPF_K
const MOV64_X: u8 = 0xbf; // BPF_ALU64 | BPF_MOV | BPF_X
const MOV64_K: u8 = 0xb7; // BPF_ALU64 | BPF_MOV | BPF_K
const AND64_K: u8 = 0x57; // BPF_ALU64 | BPF_AND | BPF_K
const JNE_K: u8 = 0x55; // BPF_JMP | BPF_JNE | BPF_K
const JEQ_K: u8 = 0x15; // BPF_JMP | BPF_JEQ | BPF_K
const EXIT: u8 = 0x95; // BPF_JMP | BPF_EXIT

fn insn(code: u8, dst: u8, src: u8, off: i16, imm: i32) -> Insn {
    Insn {
        code,
        regs: (src << 4) | (dst & 0xf),
        off,
        imm,
    }
}

/// A rule reduced to what the program tests; `None` is a wildcard.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Rule {
    pub allow: bool,
    pub typ: Option<i32>,
    pub major: Option<i64>,
    pub minor: Option<i64>,
    pub access: i32,
}

/// Parses an OCI access string ("rwm" or any subset); `None` if malformed.
pub(crate) fn parse_access(s: &str) -> Option<i32> {
    let mut acc = 0;
    for c in s.chars() {
        acc |= match c {
            'r' => ACC_READ,
            'w' => ACC_WRITE,
            'm' => ACC_MKNOD,
            _ => return None,
        };
    }
    Some(acc)
}

/// The OCI rules as the program sees them. An absent access means "rwm",
/// an absent type "a", as the v1 controller reads them.
pub(crate) fn rules(list: &[LinuxDeviceCgroup]) -> Result<Vec<Rule>, String> {
    let mut out = Vec::new();
    for (i, d) in list.iter().enumerate() {
        let access = match d.access().as_deref() {
            None | Some("") => ACC_ALL,
            Some(s) => parse_access(s)
                .ok_or_else(|| format!("devices[{i}].access {s:?} is not a subset of \"rwm\""))?,
        };
        let typ = match d.typ().unwrap_or(LinuxDeviceType::A) {
            LinuxDeviceType::A => None,
            LinuxDeviceType::B => Some(DEV_BLOCK),
            LinuxDeviceType::C | LinuxDeviceType::U => Some(DEV_CHAR),
            LinuxDeviceType::P => {
                return Err(format!(
                    "devices[{i}].type 'p' (fifo) is not a device cgroup type"
                ))
            }
        };
        let num = |v: Option<i64>, what: &str| -> Result<Option<i64>, String> {
            match v {
                None => Ok(None),
                Some(n) if n < 0 => Ok(None),
                Some(n) if n > i32::MAX as i64 => {
                    Err(format!("devices[{i}].{what} {n} is out of range"))
                }
                Some(n) => Ok(Some(n)),
            }
        };
        out.push(Rule {
            allow: d.allow(),
            typ,
            major: num(d.major(), "major")?,
            minor: num(d.minor(), "minor")?,
            access,
        });
    }
    Ok(out)
}

/// Compiles rules to the program's instructions.
pub(crate) fn compile(rules: &[Rule]) -> Vec<Insn> {
    let mut p = vec![
        insn(LDX_W, 2, 1, 0, 0),
        insn(AND32_K, 2, 0, 0, 0xffff),
        insn(LDX_W, 3, 1, 0, 0),
        insn(RSH32_K, 3, 0, 0, 16),
        insn(LDX_W, 4, 1, 4, 0),
        insn(LDX_W, 5, 1, 8, 0),
    ];
    for r in rules.iter().rev() {
        // Each test jumps to the end of this rule's block when it fails.
        let mut block: Vec<(u8, u8, u8, i32, bool)> = Vec::new(); // (code, dst, src, imm, is_jump)
        if let Some(t) = r.typ {
            block.push((JNE_K, 2, 0, t, true));
        }
        if let Some(m) = r.major {
            block.push((JNE_K, 4, 0, m as u32 as i32, true));
        }
        if let Some(m) = r.minor {
            block.push((JNE_K, 5, 0, m as u32 as i32, true));
        }
        if r.allow && r.access != ACC_ALL {
            // Every access asked for must be granted: (access & !rule) == 0.
            block.push((MOV64_X, 1, 3, 0, false));
            block.push((AND64_K, 1, 0, !r.access & ACC_ALL, false));
            block.push((JNE_K, 1, 0, 0, true));
        } else if !r.allow && r.access != ACC_ALL {
            // Any access refused: (access & rule) != 0.
            block.push((MOV64_X, 1, 3, 0, false));
            block.push((AND64_K, 1, 0, r.access, false));
            block.push((JEQ_K, 1, 0, 0, true));
        }
        let unconditional = block.is_empty();
        block.push((MOV64_K, 0, 0, r.allow as i32, false));
        block.push((EXIT, 0, 0, 0, false));
        let n = block.len();
        for (i, (code, dst, src, imm, jump)) in block.into_iter().enumerate() {
            // From the instruction after this one to the end of the block.
            let off = if jump { (n - i - 1) as i16 } else { 0 };
            p.push(insn(code, dst, src, off, imm));
        }
        if unconditional {
            // Matches everything: earlier rules never decide, and the
            // verifier refuses unreachable instructions.
            return p;
        }
    }
    p.push(insn(MOV64_K, 0, 0, 0, 0));
    p.push(insn(EXIT, 0, 0, 0, 0));
    p
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs a compiled program on one request: an interpreter for exactly
    /// the instructions `compile` emits.
    fn run(p: &[Insn], typ: i32, access: i32, major: u32, minor: u32) -> u64 {
        let ctx = [((access as u32) << 16) | typ as u32, major, minor];
        let mut r = [0u64; 11];
        let mut pc = 0usize;
        loop {
            let i = p[pc];
            let (dst, src) = ((i.regs & 0xf) as usize, (i.regs >> 4) as usize);
            pc += 1;
            match i.code {
                LDX_W => {
                    assert_eq!(src, 1, "loads only from the context");
                    r[dst] = ctx[(i.off / 4) as usize] as u64;
                }
                AND32_K => r[dst] = (r[dst] as u32 & i.imm as u32) as u64,
                RSH32_K => r[dst] = ((r[dst] as u32) >> i.imm) as u64,
                MOV64_X => r[dst] = r[src],
                MOV64_K => r[dst] = i.imm as i64 as u64,
                AND64_K => r[dst] &= i.imm as i64 as u64,
                JNE_K => {
                    if r[dst] != i.imm as i64 as u64 {
                        pc += i.off as usize
                    }
                }
                JEQ_K => {
                    if r[dst] == i.imm as i64 as u64 {
                        pc += i.off as usize
                    }
                }
                EXIT => return r[0],
                c => panic!("unexpected opcode {c:#x}"),
            }
        }
    }

    /// The v1 semantics, written plainly: the last matching rule decides.
    fn reference(rules: &[Rule], typ: i32, access: i32, major: u32, minor: u32) -> u64 {
        for r in rules.iter().rev() {
            if r.typ.is_some_and(|t| t != typ)
                || r.major.is_some_and(|m| m != major as i64)
                || r.minor.is_some_and(|m| m != minor as i64)
            {
                continue;
            }
            if r.allow && access & !r.access == 0 {
                return 1;
            }
            if !r.allow && access & r.access != 0 {
                return 0;
            }
        }
        0
    }

    fn dev(
        allow: bool,
        typ: &str,
        major: Option<i64>,
        minor: Option<i64>,
        access: &str,
    ) -> LinuxDeviceCgroup {
        serde_json::from_value(serde_json::json!({
            "allow": allow, "type": typ, "major": major, "minor": minor, "access": access
        }))
        .unwrap()
    }

    #[test]
    fn program_matches_the_v1_semantics() {
        let list = vec![
            dev(false, "a", None, None, "rwm"),
            dev(true, "c", Some(1), Some(3), "rwm"),
            dev(true, "c", Some(1), Some(5), "r"),
            dev(true, "c", Some(136), None, "rw"),
            dev(true, "b", Some(8), Some(0), "m"),
            dev(false, "c", Some(136), Some(2), "w"),
            dev(true, "a", Some(10), Some(200), "rwm"),
        ];
        let rules = rules(&list).unwrap();
        let p = compile(&rules);
        let mut checked = 0;
        for typ in [DEV_BLOCK, DEV_CHAR] {
            for access in 1..=ACC_ALL {
                for (major, minor) in [
                    (1, 3),
                    (1, 5),
                    (1, 7),
                    (136, 0),
                    (136, 2),
                    (8, 0),
                    (8, 1),
                    (10, 200),
                    (0, 0),
                ] {
                    assert_eq!(
                        run(&p, typ, access, major, minor),
                        reference(&rules, typ, access, major, minor),
                        "type {typ} access {access} {major}:{minor}"
                    );
                    checked += 1;
                }
            }
        }
        assert_eq!(checked, 2 * 7 * 9);
        // Spot checks against what a reader of the rules expects.
        assert_eq!(run(&p, DEV_CHAR, ACC_READ | ACC_WRITE, 1, 3), 1);
        assert_eq!(run(&p, DEV_CHAR, ACC_WRITE, 1, 5), 0, "only r on 1:5");
        assert_eq!(run(&p, DEV_CHAR, ACC_READ, 136, 2), 1);
        assert_eq!(run(&p, DEV_CHAR, ACC_WRITE, 136, 2), 0, "w denied later");
        assert_eq!(run(&p, DEV_BLOCK, ACC_READ, 8, 0), 0, "only mknod on 8:0");
        assert_eq!(run(&p, DEV_BLOCK, ACC_READ, 10, 200), 1, "type a");
    }

    #[test]
    fn empty_and_allow_all() {
        assert_eq!(run(&compile(&[]), DEV_CHAR, ACC_READ, 1, 3), 0);
        let all = rules(&[dev(true, "a", None, None, "rwm")]).unwrap();
        assert_eq!(run(&compile(&all), DEV_BLOCK, ACC_ALL, 8, 0), 1);
        // A catch-all rule ends the program: nothing after it (the
        // verifier refuses unreachable instructions).
        let p = compile(&all);
        assert_eq!(p.last().unwrap().code, EXIT);
        assert_eq!(p.len(), 6 + 2);
    }

    #[test]
    fn bad_rules_are_refused() {
        assert!(rules(&[dev(true, "c", Some(1), Some(3), "rx")]).is_err());
        assert!(rules(&[dev(true, "p", None, None, "rwm")]).is_err());
        assert!(rules(&[dev(true, "c", Some(1 << 40), Some(3), "r")]).is_err());
    }
}
