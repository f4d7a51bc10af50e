//! berth-seccomp: an OCI `linux.seccomp` object compiled to the classic BPF
//! program that `seccomp(2)` loads, through libseccomp (which knows every
//! architecture's syscall numbers and builds a good decision tree).
//!
//! The runtime compiles in its own process, before it clones the container;
//! the container's init only hands the finished program to the kernel
//! (`berth_sys::process::seccomp_set_filter`), so no library code runs in
//! the child and a bad profile fails before anything was created.
//!
//! Semantics follow runc and crun where the spec is silent:
//! - syscall names this libseccomp does not know are skipped (profiles list
//!   syscalls of newer kernels), with a debug log line;
//! - a rule whose action equals the default action is skipped (libseccomp
//!   refuses it, and it changes nothing);
//! - several conditions on *different* arguments of one rule must all hold;
//!   conditions that repeat an argument index are ORed, by adding one rule
//!   per condition (libseccomp cannot AND two tests of the same argument);
//! - `errnoRet` defaults to EPERM for ERRNO and to that same value for
//!   TRACE; the default action uses `defaultErrnoRet`.

pub mod profile;

use libseccomp::{
    ScmpAction, ScmpArch, ScmpArgCompare, ScmpCompareOp, ScmpFilterAttr, ScmpFilterContext,
    ScmpSyscall,
};
use oci_spec::runtime::{
    Arch, LinuxSeccomp, LinuxSeccompAction as Act, LinuxSeccompFilterFlag as Flag,
    LinuxSeccompOperator as Op, LinuxSyscall,
};
use std::io::{Read, Seek};
use std::path::PathBuf;

/// `seccomp(2)` filter flags (linux/seccomp.h).
pub const FLAG_TSYNC: u32 = 1;
pub const FLAG_LOG: u32 = 2;
pub const FLAG_SPEC_ALLOW: u32 = 4;
pub const FLAG_NEW_LISTENER: u32 = 8;
pub const FLAG_WAIT_KILLABLE_RECV: u32 = 32;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The profile itself is wrong; `field` is its path in config.json.
    #[error("{field}: {msg}")]
    Invalid { field: String, msg: String },
    /// libseccomp failed on a valid profile.
    #[error("compile the seccomp profile: {op}: {msg}")]
    Compile { op: String, msg: String },
}

fn invalid(field: impl Into<String>, msg: impl Into<String>) -> Error {
    Error::Invalid {
        field: field.into(),
        msg: msg.into(),
    }
}

/// A compiled profile, ready for `seccomp(SECCOMP_SET_MODE_FILTER)`.
#[derive(Debug, Clone)]
pub struct Filter {
    /// The BPF program.
    pub program: Vec<libc::sock_filter>,
    /// `SECCOMP_FILTER_FLAG_*` to load it with (NEW_LISTENER included when
    /// a rule uses SCMP_ACT_NOTIFY).
    pub flags: u32,
    /// Where the runtime sends the notify fd (`listenerPath`).
    pub listener_path: Option<PathBuf>,
    /// Passed on to the listener (`listenerMetadata`).
    pub listener_metadata: Option<String>,
}

impl Filter {
    /// Whether the profile uses SCMP_ACT_NOTIFY (so loading it returns a
    /// listener fd for the runtime to pass on).
    pub fn notify(&self) -> bool {
        self.flags & FLAG_NEW_LISTENER != 0
    }
}

fn action(a: Act, errno: Option<u32>, field: &str) -> Result<ScmpAction, Error> {
    let ret = |default: u32| -> Result<u16, Error> {
        let v = errno.unwrap_or(default);
        u16::try_from(v).map_err(|_| invalid(field, format!("errnoRet {v} is above 65535")))
    };
    Ok(match a {
        Act::ScmpActKill | Act::ScmpActKillThread => ScmpAction::KillThread,
        Act::ScmpActKillProcess => ScmpAction::KillProcess,
        Act::ScmpActTrap => ScmpAction::Trap,
        Act::ScmpActErrno => ScmpAction::Errno(i32::from(ret(libc::EPERM as u32)?)),
        Act::ScmpActTrace => ScmpAction::Trace(ret(libc::EPERM as u32)?),
        Act::ScmpActAllow => ScmpAction::Allow,
        Act::ScmpActLog => ScmpAction::Log,
        Act::ScmpActNotify => ScmpAction::Notify,
    })
}

fn arch(a: Arch) -> Result<ScmpArch, String> {
    Ok(match a {
        Arch::ScmpArchNative => ScmpArch::Native,
        Arch::ScmpArchX86 => ScmpArch::X86,
        Arch::ScmpArchX86_64 => ScmpArch::X8664,
        Arch::ScmpArchX32 => ScmpArch::X32,
        Arch::ScmpArchArm => ScmpArch::Arm,
        Arch::ScmpArchAarch64 => ScmpArch::Aarch64,
        Arch::ScmpArchMips => ScmpArch::Mips,
        Arch::ScmpArchMips64 => ScmpArch::Mips64,
        Arch::ScmpArchMips64n32 => ScmpArch::Mips64N32,
        Arch::ScmpArchMipsel => ScmpArch::Mipsel,
        Arch::ScmpArchMipsel64 => ScmpArch::Mipsel64,
        Arch::ScmpArchMipsel64n32 => ScmpArch::Mipsel64N32,
        Arch::ScmpArchPpc => ScmpArch::Ppc,
        Arch::ScmpArchPpc64 => ScmpArch::Ppc64,
        Arch::ScmpArchPpc64le => ScmpArch::Ppc64Le,
        Arch::ScmpArchS390 => ScmpArch::S390,
        Arch::ScmpArchS390x => ScmpArch::S390X,
        Arch::ScmpArchParisc => ScmpArch::Parisc,
        Arch::ScmpArchParisc64 => ScmpArch::Parisc64,
        Arch::ScmpArchRiscv64 => ScmpArch::Riscv64,
        Arch::ScmpArchLoongarch64 => ScmpArch::Loongarch64,
        Arch::ScmpArchM68k => ScmpArch::M68k,
        other => return Err(format!("{other:?} is not supported by libseccomp here")),
    })
}

fn flag(f: Flag) -> u32 {
    match f {
        Flag::SeccompFilterFlagLog => FLAG_LOG,
        Flag::SeccompFilterFlagTsync => FLAG_TSYNC,
        Flag::SeccompFilterFlagSpecAllow => FLAG_SPEC_ALLOW,
        Flag::SeccompFilterFlagWaitKillableRecv => FLAG_WAIT_KILLABLE_RECV,
    }
}

/// The argument tests of one rule, as groups that are each ANDed; the
/// groups are ORed (one libseccomp rule each).
fn conditions(rule: &LinuxSyscall, field: &str) -> Result<Vec<Vec<ScmpArgCompare>>, Error> {
    let args = rule.args().as_deref().unwrap_or_default();
    let mut cmps = Vec::with_capacity(args.len());
    for (j, a) in args.iter().enumerate() {
        let f = format!("{field}.args[{j}]");
        if a.index() > 5 {
            return Err(invalid(
                format!("{f}.index"),
                format!("{} is not a syscall argument (0..5)", a.index()),
            ));
        }
        let op = match a.op() {
            Op::ScmpCmpNe => ScmpCompareOp::NotEqual,
            Op::ScmpCmpLt => ScmpCompareOp::Less,
            Op::ScmpCmpLe => ScmpCompareOp::LessOrEqual,
            Op::ScmpCmpEq => ScmpCompareOp::Equal,
            Op::ScmpCmpGe => ScmpCompareOp::GreaterEqual,
            Op::ScmpCmpGt => ScmpCompareOp::Greater,
            Op::ScmpCmpMaskedEq => ScmpCompareOp::MaskedEqual(a.value()),
        };
        let datum = match a.op() {
            Op::ScmpCmpMaskedEq => a.value_two().unwrap_or(0),
            _ => a.value(),
        };
        cmps.push((a.index(), ScmpArgCompare::new(a.index() as u32, op, datum)));
    }
    let mut seen = [false; 6];
    let repeated = cmps
        .iter()
        .any(|(i, _)| std::mem::replace(&mut seen[*i], true));
    Ok(if repeated {
        cmps.into_iter().map(|(_, c)| vec![c]).collect()
    } else {
        vec![cmps.into_iter().map(|(_, c)| c).collect()]
    })
}

/// Checks the profile without compiling it: what can be wrong in the JSON
/// beyond what its types already refuse.
pub fn validate(s: &LinuxSeccomp) -> Result<(), Error> {
    action(
        s.default_action(),
        s.default_errno_ret(),
        "linux.seccomp.defaultErrnoRet",
    )?;
    for (i, a) in s.architectures().iter().flatten().enumerate() {
        arch(*a).map_err(|m| invalid(format!("linux.seccomp.architectures[{i}]"), m))?;
    }
    let mut notify = s.default_action() == Act::ScmpActNotify;
    for (i, rule) in s.syscalls().iter().flatten().enumerate() {
        let field = format!("linux.seccomp.syscalls[{i}]");
        if rule.names().is_empty() {
            return Err(invalid(format!("{field}.names"), "is empty"));
        }
        if rule
            .names()
            .iter()
            .any(|n| n.is_empty() || n.contains('\0'))
        {
            return Err(invalid(format!("{field}.names"), "holds an empty name"));
        }
        action(
            rule.action(),
            rule.errno_ret(),
            &format!("{field}.errnoRet"),
        )?;
        conditions(rule, &field)?;
        notify |= rule.action() == Act::ScmpActNotify;
    }
    if s.default_action() == Act::ScmpActNotify {
        return Err(invalid(
            "linux.seccomp.defaultAction",
            "SCMP_ACT_NOTIFY as the default would stop the container's own start-up; use it in rules",
        ));
    }
    if notify
        && s.listener_path()
            .as_ref()
            .is_none_or(|p| p.as_os_str().is_empty())
    {
        return Err(invalid(
            "linux.seccomp.listenerPath",
            "is required when a rule uses SCMP_ACT_NOTIFY",
        ));
    }
    if let Some(p) = s.listener_path() {
        if !p.as_os_str().is_empty() && !p.is_absolute() {
            return Err(invalid(
                "linux.seccomp.listenerPath",
                "must be an absolute path",
            ));
        }
    }
    Ok(())
}

fn lib_err(op: impl Into<String>) -> impl FnOnce(libseccomp::error::SeccompError) -> Error {
    let op = op.into();
    move |e| Error::Compile {
        op,
        msg: e.to_string(),
    }
}

/// The load flags a profile needs: its `flags`, plus NEW_LISTENER when a
/// rule (whose action is not the default) uses SCMP_ACT_NOTIFY.
fn load_flags(s: &LinuxSeccomp) -> u32 {
    let mut flags = 0;
    for f in s.flags().iter().flatten() {
        flags |= flag(*f);
    }
    if s.default_action() != Act::ScmpActNotify
        && s.syscalls()
            .iter()
            .flatten()
            .any(|r| r.action() == Act::ScmpActNotify)
    {
        flags |= FLAG_NEW_LISTENER;
    }
    flags
}

/// [`compile`], through a cache of compiled programs in `dir`: libseccomp
/// needs tens of milliseconds for a Docker-sized profile, and every
/// container of an engine uses the same few profiles. The key is a SHA-256
/// of the profile and of the versions of everything that shapes the
/// program; each entry carries the SHA-256 of its program, checked on
/// every read. A cache that cannot be read or written is only slower.
pub fn compile_cached(s: &LinuxSeccomp, dir: &std::path::Path) -> Result<Filter, Error> {
    use sha2::{Digest, Sha256};
    validate(s)?;
    let json = serde_json::to_vec(s).map_err(|e| Error::Compile {
        op: "encode the profile".into(),
        msg: e.to_string(),
    })?;
    let version = libseccomp::ScmpVersion::current()
        .map(|v| format!("{}.{}.{}", v.major, v.minor, v.micro))
        .unwrap_or_default();
    let mut h = Sha256::new();
    h.update(format!(
        "berth-seccomp {} libseccomp {version} {} tree enosys\n",
        env!("CARGO_PKG_VERSION"),
        std::env::consts::ARCH
    ));
    h.update(&json);
    let key: String = h.finalize().iter().map(|b| format!("{b:02x}")).collect();
    let path = dir.join(format!("{key}.bpf"));
    let meta = |program| filter(s, program);
    if let Ok(bytes) = std::fs::read(&path) {
        if bytes.len() > 32 && Sha256::digest(&bytes[32..]).as_slice() == &bytes[..32] {
            if let Ok(program) = decode(&bytes[32..]) {
                return Ok(meta(program));
            }
        }
        tracing::warn!(
            "seccomp cache entry {} is damaged; compiling again",
            path.display()
        );
    }
    let f = compile(s)?;
    let mut bytes = Vec::with_capacity(32 + f.program.len() * 8);
    let body = encode(&f.program);
    bytes.extend_from_slice(&Sha256::digest(&body));
    bytes.extend_from_slice(&body);
    if let Err(e) = store(dir, &path, &bytes) {
        tracing::debug!("seccomp cache: cannot store {}: {e}", path.display());
    }
    Ok(f)
}

fn store(dir: &std::path::Path, path: &std::path::Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)?;
    let tmp = dir.join(format!(".{}.tmp", std::process::id()));
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW)
        .open(&tmp)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)
}

fn encode(p: &[libc::sock_filter]) -> Vec<u8> {
    let mut out = Vec::with_capacity(p.len() * 8);
    for i in p {
        out.extend_from_slice(&i.code.to_ne_bytes());
        out.push(i.jt);
        out.push(i.jf);
        out.extend_from_slice(&i.k.to_ne_bytes());
    }
    out
}

fn decode(bytes: &[u8]) -> Result<Vec<libc::sock_filter>, Error> {
    let size = std::mem::size_of::<libc::sock_filter>();
    if bytes.len() / size > BPF_MAXINSNS {
        return Err(invalid(
            "linux.seccomp",
            format!(
                "the profile compiles to {} BPF instructions; the kernel takes at most {BPF_MAXINSNS}",
                bytes.len() / size
            ),
        ));
    }
    if bytes.is_empty() || bytes.len() % size != 0 {
        return Err(Error::Compile {
            op: "read the BPF program".into(),
            msg: format!("{} bytes is not a program", bytes.len()),
        });
    }
    Ok(bytes
        .chunks_exact(size)
        .map(|c| libc::sock_filter {
            code: u16::from_ne_bytes([c[0], c[1]]),
            jt: c[2],
            jf: c[3],
            k: u32::from_ne_bytes([c[4], c[5], c[6], c[7]]),
        })
        .collect())
}

/// Compiles the profile to the kernel's BPF program.
pub fn compile(s: &LinuxSeccomp) -> Result<Filter, Error> {
    validate(s)?;
    let default = action(
        s.default_action(),
        s.default_errno_ret(),
        "linux.seccomp.defaultErrnoRet",
    )?;
    let mut ctx = ScmpFilterContext::new(default).map_err(lib_err("create the filter"))?;
    let mut archs = vec![ScmpArch::native()];
    // no_new_privs is the runtime's business (process.noNewPrivileges), and
    // the runtime loads the program itself.
    ctx.set_filter_attr(ScmpFilterAttr::CtlNnp, 0)
        .map_err(lib_err("leave no_new_privs alone"))?;
    ctx.set_filter_attr(ScmpFilterAttr::CtlOptimize, 2)
        .map_err(lib_err("ask for a binary tree"))?;
    for a in s.architectures().iter().flatten() {
        let a = arch(*a).map_err(|m| invalid("linux.seccomp.architectures", m))?;
        let a = if a == ScmpArch::Native {
            ScmpArch::native()
        } else {
            a
        };
        if !archs.contains(&a) {
            archs.push(a);
        }
        match ctx.add_arch(a) {
            Ok(_) => {}
            // The native architecture is always there.
            Err(e) if e.errno() == Some(libseccomp::error::SeccompErrno::EEXIST) => {}
            Err(e) => return Err(lib_err(format!("add architecture {a:?}"))(e)),
        }
    }
    for (i, rule) in s.syscalls().iter().flatten().enumerate() {
        let field = format!("linux.seccomp.syscalls[{i}]");
        let act = action(
            rule.action(),
            rule.errno_ret(),
            &format!("{field}.errnoRet"),
        )?;
        if act == default {
            continue;
        }
        let groups = conditions(rule, &field)?;
        for name in rule.names() {
            let sc = match ScmpSyscall::from_name(name) {
                Ok(sc) => sc,
                Err(_) => {
                    tracing::debug!("seccomp: skipping syscall {name:?}, unknown to libseccomp");
                    continue;
                }
            };
            for g in &groups {
                let r = if g.is_empty() {
                    ctx.add_rule(act, sc)
                } else {
                    ctx.add_rule_conditional(act, sc, g)
                };
                r.map_err(lib_err(format!("{field}: add a rule for {name}")))?;
            }
        }
    }
    let mut program = export(&ctx)?;
    if !matches!(
        default,
        ScmpAction::Allow | ScmpAction::Log | ScmpAction::Trace(_)
    ) {
        let names: Vec<&str> = s
            .syscalls()
            .iter()
            .flatten()
            .flat_map(|r| r.names().iter().map(String::as_str))
            .collect();
        program = enosys_stub(&newest_syscalls(&archs, &names), program);
    }
    // The kernel refuses a longer program (EINVAL), and it is loaded only
    // when the container starts: said here, at create.
    if program.len() > BPF_MAXINSNS {
        return Err(invalid(
            "linux.seccomp",
            format!(
                "the profile compiles to {} BPF instructions; the kernel takes at most {BPF_MAXINSNS}",
                program.len()
            ),
        ));
    }
    Ok(filter(s, program))
}

/// The kernel's `AUDIT_ARCH_*` value of an architecture the stub knows.
fn audit_arch(a: ScmpArch) -> Option<u32> {
    Some(match a {
        ScmpArch::X8664 => 0xC000_003E,
        ScmpArch::X86 => 0x4000_0003,
        ScmpArch::Aarch64 => 0xC000_00B7,
        ScmpArch::Arm => 0x4000_0028,
        ScmpArch::Ppc64Le => 0xC000_0015,
        ScmpArch::S390X => 0x8000_0016,
        ScmpArch::Riscv64 => 0xC000_00F3,
        _ => return None,
    })
}

/// For each architecture of the filter the stub knows: its audit value and
/// the highest syscall number the profile names for it.
fn newest_syscalls(archs: &[ScmpArch], names: &[&str]) -> Vec<(u32, u32, bool)> {
    archs
        .iter()
        .filter_map(|a| {
            let audit = audit_arch(*a)?;
            let max = names
                .iter()
                .filter_map(|n| ScmpSyscall::from_name_by_arch(n, *a).ok())
                .map(|sc| sc.as_raw_syscall())
                .filter(|n| *n >= 0)
                .max()?;
            Some((audit, max as u32, *a == ScmpArch::X8664))
        })
        .collect()
}

/// The most instructions the kernel takes in one filter.
const BPF_MAXINSNS: usize = 4096;

/// `SECCOMP_RET_ERRNO | ENOSYS`.
const RET_ENOSYS: u32 = 0x0005_0000 | libc::ENOSYS as u32;
/// The x32 ABI bit of x86_64 syscall numbers.
const X32_BIT: u32 = 0x4000_0000;

/// Prepends to `program` a check that answers ENOSYS, instead of the
/// profile's default action, for a syscall newer than every syscall the
/// profile names (runc does the same): glibc and other libraries fall back
/// to an older call only on ENOSYS (clone3 to clone, faccessat2 to
/// faccessat, ...), so a profile written before a syscall existed must not
/// answer EPERM for it. Jumps in BPF are relative and forward, so the
/// program after the stub is unchanged.
fn enosys_stub(
    archs: &[(u32, u32, bool)],
    program: Vec<libc::sock_filter>,
) -> Vec<libc::sock_filter> {
    const LD_W_ABS: u16 = (libc::BPF_LD | libc::BPF_W | libc::BPF_ABS) as u16;
    const JEQ_K: u16 = (libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K) as u16;
    const JGT_K: u16 = (libc::BPF_JMP | libc::BPF_JGT | libc::BPF_K) as u16;
    const JSET_K: u16 = (libc::BPF_JMP | libc::BPF_JSET | libc::BPF_K) as u16;
    const RET_K: u16 = (libc::BPF_RET | libc::BPF_K) as u16;
    let ins = |code: u16, jt: u8, jf: u8, k: u32| libc::sock_filter { code, jt, jf, k };
    let len = |x32: bool| if x32 { 6 } else { 5 };
    let total: usize = archs.iter().map(|(_, _, x)| len(*x)).sum();
    if archs.is_empty() || total > 250 {
        return program;
    }
    let mut out = Vec::with_capacity(total + program.len());
    for (audit, max, x86_64) in archs {
        let start = out.len();
        let l = len(*x86_64);
        // Offsets count from the instruction after the jump.
        let to_prog = |at: usize| (total - at - 1) as u8;
        out.push(ins(LD_W_ABS, 0, 0, 4)); // seccomp_data.arch
        out.push(ins(JEQ_K, 0, (l - 2) as u8, *audit));
        out.push(ins(LD_W_ABS, 0, 0, 0)); // seccomp_data.nr
        if *x86_64 {
            let at = out.len();
            out.push(ins(JSET_K, to_prog(at), 0, X32_BIT));
        }
        let at = out.len();
        out.push(ins(JGT_K, 0, to_prog(at), *max));
        out.push(ins(RET_K, 0, 0, RET_ENOSYS));
        debug_assert_eq!(out.len() - start, l);
    }
    out.extend(program);
    out
}

/// The profile's program with what loading it needs.
fn filter(s: &LinuxSeccomp, program: Vec<libc::sock_filter>) -> Filter {
    Filter {
        program,
        flags: load_flags(s),
        listener_path: s
            .listener_path()
            .clone()
            .filter(|p| !p.as_os_str().is_empty()),
        listener_metadata: s.listener_metadata().clone(),
    }
}

/// The program libseccomp generates, read back from a memfd (libseccomp
/// 2.5 can only write it to an fd).
fn export(ctx: &ScmpFilterContext) -> Result<Vec<libc::sock_filter>, Error> {
    let io = |op: &str| {
        let op = op.to_string();
        move |e: std::io::Error| Error::Compile {
            op,
            msg: e.to_string(),
        }
    };
    // SAFETY: a valid C string; memfd_create has no other preconditions.
    let fd = unsafe { libc::memfd_create(c"berth-seccomp".as_ptr(), libc::MFD_CLOEXEC) };
    if fd < 0 {
        return Err(io("create a memfd")(std::io::Error::last_os_error()));
    }
    // SAFETY: memfd_create returned a new fd that we now own.
    let mut file = unsafe { <std::fs::File as std::os::fd::FromRawFd>::from_raw_fd(fd) };
    ctx.export_bpf(&file)
        .map_err(lib_err("export the BPF program"))?;
    file.rewind().map_err(io("rewind the memfd"))?;
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes)
        .map_err(io("read the BPF program"))?;
    decode(&bytes)
}

/// What `features` reports under `linux.seccomp`.
pub struct Features {
    pub actions: Vec<&'static str>,
    pub operators: Vec<&'static str>,
    pub archs: Vec<&'static str>,
    pub known_flags: Vec<&'static str>,
    pub supported_flags: Vec<&'static str>,
}

pub fn features() -> Features {
    // WAIT_KILLABLE_RECV needs Linux 5.19; the others are older than
    // anything berth runs on.
    let mut supported = vec![
        "SECCOMP_FILTER_FLAG_TSYNC",
        "SECCOMP_FILTER_FLAG_LOG",
        "SECCOMP_FILTER_FLAG_SPEC_ALLOW",
    ];
    if kernel_at_least(5, 19) {
        supported.push("SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV");
    }
    Features {
        actions: vec![
            "SCMP_ACT_ALLOW",
            "SCMP_ACT_ERRNO",
            "SCMP_ACT_KILL",
            "SCMP_ACT_KILL_PROCESS",
            "SCMP_ACT_KILL_THREAD",
            "SCMP_ACT_LOG",
            "SCMP_ACT_NOTIFY",
            "SCMP_ACT_TRACE",
            "SCMP_ACT_TRAP",
        ],
        operators: vec![
            "SCMP_CMP_EQ",
            "SCMP_CMP_GE",
            "SCMP_CMP_GT",
            "SCMP_CMP_LE",
            "SCMP_CMP_LT",
            "SCMP_CMP_MASKED_EQ",
            "SCMP_CMP_NE",
        ],
        archs: vec![
            "SCMP_ARCH_AARCH64",
            "SCMP_ARCH_ARM",
            "SCMP_ARCH_LOONGARCH64",
            "SCMP_ARCH_M68K",
            "SCMP_ARCH_MIPS",
            "SCMP_ARCH_MIPS64",
            "SCMP_ARCH_MIPS64N32",
            "SCMP_ARCH_MIPSEL",
            "SCMP_ARCH_MIPSEL64",
            "SCMP_ARCH_MIPSEL64N32",
            "SCMP_ARCH_PARISC",
            "SCMP_ARCH_PARISC64",
            "SCMP_ARCH_PPC",
            "SCMP_ARCH_PPC64",
            "SCMP_ARCH_PPC64LE",
            "SCMP_ARCH_RISCV64",
            "SCMP_ARCH_S390",
            "SCMP_ARCH_S390X",
            "SCMP_ARCH_X32",
            "SCMP_ARCH_X86",
            "SCMP_ARCH_X86_64",
        ],
        known_flags: vec![
            "SECCOMP_FILTER_FLAG_TSYNC",
            "SECCOMP_FILTER_FLAG_LOG",
            "SECCOMP_FILTER_FLAG_SPEC_ALLOW",
            "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV",
        ],
        supported_flags: supported,
    }
}

fn kernel_at_least(major: u32, minor: u32) -> bool {
    let Ok(rel) = std::fs::read_to_string("/proc/sys/kernel/osrelease") else {
        return false;
    };
    let mut it = rel
        .trim()
        .split(['.', '-'])
        .map(|p| p.parse::<u32>().unwrap_or(0));
    let (a, b) = (it.next().unwrap_or(0), it.next().unwrap_or(0));
    (a, b) >= (major, minor)
}

#[cfg(test)]
mod tests;
