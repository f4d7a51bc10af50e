//! berth-checker: runs inside a test container and reports, as one JSON
//! object on stdout, what the container's process sees of itself. The
//! conformance tests compare it with what config.json asked for.

use std::fmt::Write as _;

fn q(s: &str) -> String {
    let mut o = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => o.push_str("\\\""),
            '\\' => o.push_str("\\\\"),
            c if (c as u32) < 0x20 => {
                let _ = write!(o, "\\u{:04x}", c as u32);
            }
            c => o.push(c),
        }
    }
    o.push('"');
    o
}

fn status_field(status: &str, key: &str) -> String {
    status
        .lines()
        .find_map(|l| l.strip_prefix(key).map(|v| v.trim().to_string()))
        .unwrap_or_default()
}

/// `berth-checker syscall NR`: makes raw syscall NR with zero arguments and
/// prints `errno=E` (0 when it succeeded): how a seccomp filter answers a
/// syscall that no libc wrapper makes.
fn raw_syscall(nr: &str) {
    let nr: libc::c_long = nr.parse().expect("a syscall number");
    // SAFETY: the syscalls the tests name take no pointer arguments that
    // matter with zeros (they fail with EFAULT or EINVAL, or are unknown).
    let r = unsafe { libc::syscall(nr, 0, 0, 0, 0, 0, 0) };
    let e = if r < 0 {
        std::io::Error::last_os_error().raw_os_error().unwrap_or(0)
    } else {
        0
    };
    println!("errno={e}");
}

fn lo_up() -> bool {
    // SAFETY: a plain socket and an ioctl that fills `req`.
    unsafe {
        let s = libc::socket(libc::AF_INET, libc::SOCK_DGRAM, 0);
        if s < 0 {
            return false;
        }
        let mut req: libc::ifreq = std::mem::zeroed();
        req.ifr_name[0] = b'l' as libc::c_char;
        req.ifr_name[1] = b'o' as libc::c_char;
        let ok = libc::ioctl(s, libc::SIOCGIFFLAGS, &mut req) == 0
            && req.ifr_ifru.ifru_flags & libc::IFF_UP as libc::c_short != 0;
        libc::close(s);
        ok
    }
}

fn main() {
    let argv: Vec<String> = std::env::args().collect();
    if argv.get(1).map(String::as_str) == Some("syscall") {
        return raw_syscall(argv.get(2).map(String::as_str).unwrap_or("-1"));
    }
    let mut fields: Vec<(String, String)> = Vec::new();
    let mut put = |k: &str, v: String| fields.push((k.to_string(), v));
    // SAFETY: these libc calls only read process attributes.
    unsafe {
        put("uid", libc::getuid().to_string());
        put("gid", libc::getgid().to_string());
        put("euid", libc::geteuid().to_string());
        put("pid", libc::getpid().to_string());
        let mut groups = [0 as libc::gid_t; 256];
        let n = libc::getgroups(256, groups.as_mut_ptr());
        let g: Vec<String> = groups[..n.max(0) as usize]
            .iter()
            .map(|g| g.to_string())
            .collect();
        put("groups", format!("[{}]", g.join(",")));
        put(
            "personality",
            (libc::personality(0xffff_ffff) as u32).to_string(),
        );
        put("sched_policy", libc::sched_getscheduler(0).to_string());
        put(
            "ioprio",
            libc::syscall(libc::SYS_ioprio_get, 1, 0).to_string(),
        );
        let mut uts: libc::utsname = std::mem::zeroed();
        libc::uname(&mut uts);
        let s = |a: &[libc::c_char]| {
            std::ffi::CStr::from_ptr(a.as_ptr())
                .to_string_lossy()
                .into_owned()
        };
        put("hostname", q(&s(&uts.nodename)));
        put("domainname", q(&s(&uts.domainname)));
        put("sid", libc::getsid(0).to_string());
        put("pgid", libc::getpgrp().to_string());
        put(
            "stdin_access",
            (libc::fcntl(0, libc::F_GETFL) & libc::O_ACCMODE).to_string(),
        );
        let mut owners = Vec::new();
        for fd in 0..3 {
            let mut st: libc::stat = std::mem::zeroed();
            if libc::fstat(fd, &mut st) == 0 {
                owners.push(format!("[{},{}]", st.st_uid, st.st_gid));
            } else {
                owners.push("null".to_string());
            }
        }
        put("stdio_owners", format!("[{}]", owners.join(",")));
        let mut mode: libc::c_int = -1;
        let r = libc::syscall(
            libc::SYS_get_mempolicy,
            &mut mode as *mut libc::c_int,
            std::ptr::null_mut::<libc::c_ulong>(),
            0,
            0,
            0,
        );
        put("mempolicy", if r == 0 { mode } else { -1 }.to_string());
        let mut lim: libc::rlimit = std::mem::zeroed();
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim);
        put("nofile", format!("[{},{}]", lim.rlim_cur, lim.rlim_max));
    }
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    for (k, name) in [
        ("CapInh:", "cap_inh"),
        ("CapPrm:", "cap_prm"),
        ("CapEff:", "cap_eff"),
        ("CapBnd:", "cap_bnd"),
        ("CapAmb:", "cap_amb"),
        ("NoNewPrivs:", "no_new_privs"),
        ("Umask:", "umask"),
        ("Seccomp:", "seccomp"),
        ("SigIgn:", "sig_ign"),
        ("SigBlk:", "sig_blk"),
    ] {
        put(name, q(&status_field(&status, k)));
    }
    put(
        "cwd",
        q(&std::env::current_dir()
            .map(|p| p.display().to_string())
            .unwrap_or_else(|e| format!("error: {e}"))),
    );
    let env: Vec<String> = std::env::vars()
        .map(|(k, v)| q(&format!("{k}={v}")))
        .collect();
    put("env", format!("[{}]", env.join(",")));
    let args: Vec<String> = std::env::args().map(|a| q(&a)).collect();
    put("args", format!("[{}]", args.join(",")));
    put(
        "oom_score_adj",
        q(std::fs::read_to_string("/proc/self/oom_score_adj")
            .unwrap_or_default()
            .trim()),
    );
    let mut ns = Vec::new();
    for n in ["pid", "mnt", "net", "ipc", "uts", "user", "cgroup", "time"] {
        let l = std::fs::read_link(format!("/proc/self/ns/{n}"))
            .map(|p| p.display().to_string())
            .unwrap_or_default();
        ns.push(format!("{}:{}", q(n), q(&l)));
    }
    put("ns", format!("{{{}}}", ns.join(",")));
    // Open fds, without the one read_dir itself holds.
    let mut fds: Vec<String> = Vec::new();
    if let Ok(rd) = std::fs::read_dir("/proc/self/fd") {
        for e in rd.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            let target = std::fs::read_link(e.path())
                .map(|p| p.display().to_string())
                .unwrap_or_default();
            if !target.starts_with("/proc/") || !target.ends_with("/fd") {
                fds.push(format!("{}:{}", q(&name), q(&target)));
            }
        }
    }
    put("fds", format!("{{{}}}", fds.join(",")));
    put("lo_up", lo_up().to_string());
    put(
        "dev_core",
        std::fs::symlink_metadata("/dev/core").is_ok().to_string(),
    );
    let body: Vec<String> = fields
        .iter()
        .map(|(k, v)| format!("{}:{}", q(k), v))
        .collect();
    println!("{{{}}}", body.join(","));
}
