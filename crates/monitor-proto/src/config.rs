//! The monitor's configuration: `key=value` lines the engine writes into the
//! container's run directory and passes as the monitor's only argument.
//! Keys may repeat where the value is a list (`runtime_arg`,
//! `exit_command`). Values cannot hold a newline; `to_text` refuses them.

use std::path::PathBuf;

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum LogDriver {
    /// Docker's: one JSON object per line.
    JsonFile,
    /// The CRI format Kubernetes and podman use: `TIME STREAM F|P text`.
    #[default]
    K8sFile,
    None,
}

impl LogDriver {
    pub fn parse(s: &str) -> Option<LogDriver> {
        match s {
            "json-file" => Some(LogDriver::JsonFile),
            "k8s-file" => Some(LogDriver::K8sFile),
            "none" => Some(LogDriver::None),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            LogDriver::JsonFile => "json-file",
            LogDriver::K8sFile => "k8s-file",
            LogDriver::None => "none",
        }
    }
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Restart {
    #[default]
    No,
    /// Restart on a non-zero exit, at most this many times (0: no limit).
    OnFailure(u32),
    Always,
    UnlessStopped,
}

impl Restart {
    /// Docker's syntax: no, on-failure[:N], always, unless-stopped.
    pub fn parse(s: &str) -> Option<Restart> {
        match s {
            "no" | "" => Some(Restart::No),
            "always" => Some(Restart::Always),
            "unless-stopped" => Some(Restart::UnlessStopped),
            "on-failure" => Some(Restart::OnFailure(0)),
            _ => {
                let n = s.strip_prefix("on-failure:")?;
                n.parse().ok().map(Restart::OnFailure)
            }
        }
    }

    pub fn name(self) -> String {
        match self {
            Restart::No => "no".into(),
            Restart::Always => "always".into(),
            Restart::UnlessStopped => "unless-stopped".into(),
            Restart::OnFailure(0) => "on-failure".into(),
            Restart::OnFailure(n) => format!("on-failure:{n}"),
        }
    }

    /// Whether a container that ended with `code` after `restarts`
    /// restarts, unless a stop was asked for.
    pub fn wants(self, code: i32, restarts: u32) -> bool {
        match self {
            Restart::No => false,
            Restart::Always | Restart::UnlessStopped => true,
            Restart::OnFailure(max) => code != 0 && (max == 0 || restarts < max),
        }
    }
}

/// A host port the monitor binds and holds for the container's life: a
/// port published by DNAT has no process bound to it, so without this any
/// program could take it (podman's conmon and docker-proxy hold theirs too).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HeldPort {
    pub udp: bool,
    /// None: every address (dual-stack `[::]`, else `0.0.0.0`).
    pub addr: Option<std::net::IpAddr>,
    pub port: u16,
}

impl HeldPort {
    /// `tcp/*/8080`, `udp/127.0.0.1/53`, `tcp/::1/8080`.
    pub fn parse(s: &str) -> Option<HeldPort> {
        let (proto, rest) = s.split_once('/')?;
        let (addr, port) = rest.rsplit_once('/')?;
        let udp = match proto {
            "tcp" => false,
            "udp" => true,
            _ => return None,
        };
        let addr = match addr {
            "*" => None,
            a => Some(a.parse().ok()?),
        };
        let port = port.parse().ok().filter(|p| *p != 0)?;
        Some(HeldPort { udp, addr, port })
    }

    pub fn text(&self) -> String {
        let addr = self.addr.map_or_else(|| "*".to_string(), |a| a.to_string());
        let proto = if self.udp { "udp" } else { "tcp" };
        format!("{proto}/{addr}/{}", self.port)
    }
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct Config {
    pub id: String,
    /// The OCI bundle (holds config.json).
    pub bundle: PathBuf,
    /// The runtime binary, and the global options before its command
    /// (such as `--root DIR`).
    pub runtime: PathBuf,
    pub runtime_args: Vec<String>,
    /// Set when the runtime is berth-runtime of this same build, to its
    /// `--root`: the monitor then deletes the container through the
    /// runtime's library (`berth_runtime::delete`) instead of starting a
    /// `delete` process, a process start less at every exit.
    pub builtin_root: Option<PathBuf>,
    /// tmpfs: sockets, the pid file, the live state.
    pub run_dir: PathBuf,
    /// Persistent: the final state survives a reboot here.
    pub persist_dir: PathBuf,
    pub log_driver: LogDriver,
    pub log_path: PathBuf,
    /// Rotate when the log passes this many bytes (0: never).
    pub log_max_size: u64,
    /// Files kept, the live one included (at least 1).
    pub log_max_files: u32,
    pub terminal: bool,
    /// `-i`: the container's stdin stays open for clients.
    pub stdin: bool,
    pub restart: Restart,
    /// Bytes that detach an attached client (Docker's default ctrl-p ctrl-q).
    pub detach_keys: Vec<u8>,
    /// Run after the container has ended for good (cleanup), unless the
    /// client that started it says it has cleaned up.
    pub exit_command: Vec<String>,
    /// Where the starting client moves the container's directories (the
    /// persistent one and the run directory) when it removes the container
    /// itself (`run --rm`): removed here, after that client has returned,
    /// so that its user does not wait for the filesystem to free the
    /// container's upper layer and files.
    pub trash: Vec<PathBuf>,
    /// Wait for the starting client's GO frame before starting the
    /// container; if the client goes away first, end without a trace.
    pub wait_go: bool,
    /// Host ports to hold while the monitor lives.
    pub hold_ports: Vec<HeldPort>,
    /// Health checks and probes the monitor runs (`crate::health`).
    pub probes: Vec<crate::health::Probe>,
    /// Run with the new status appended when the health status changes
    /// (records the `health_status` event).
    pub event_command: Vec<String>,
    /// Run when a health check asks for a stop (`berth stop ID`).
    pub stop_command: Vec<String>,
    /// The program, by absolute path, and its first arguments that run an
    /// [`crate::health::Action::Helper`] probe (`berth container probe`):
    /// set only when there is one.
    pub probe_helper: Vec<String>,
    /// Restart with Kubernetes' back-off (10 s to 5 min) instead of
    /// Docker's (100 ms to 1 min): containers with a liveness probe.
    pub kube_backoff: bool,
    /// The container's stop signal (its spec's, else its image's; 0:
    /// SIGTERM): sent when a probe stops the container gracefully (a
    /// failed liveness or startup probe, `--health-on-failure restart`),
    /// SIGKILL following at the probe's [`crate::health::Probe::grace`].
    pub stop_signal: i32,
}

fn bad(line: &str, why: &str) -> String {
    format!("monitor config line {line:?}: {why}")
}

impl Config {
    pub fn parse(text: &str) -> Result<Config, String> {
        let mut c = Config {
            log_max_files: 1,
            detach_keys: vec![0x10, 0x11],
            ..Config::default()
        };
        // Split on '\n' alone: `lines()` would also eat a '\r' that ends a
        // value.
        for line in text.split('\n').filter(|l| !l.is_empty()) {
            let (k, v) = line.split_once('=').ok_or_else(|| bad(line, "no '='"))?;
            let num = |v: &str| v.parse::<u64>().map_err(|_| bad(line, "not a number"));
            let flag = |v: &str| match v {
                "1" => Ok(true),
                "0" => Ok(false),
                _ => Err(bad(line, "not 0 or 1")),
            };
            match k {
                "id" => c.id = v.into(),
                "bundle" => c.bundle = v.into(),
                "runtime" => c.runtime = v.into(),
                "runtime_arg" => c.runtime_args.push(v.into()),
                "builtin_root" => c.builtin_root = Some(v.into()),
                "run_dir" => c.run_dir = v.into(),
                "persist_dir" => c.persist_dir = v.into(),
                "log_driver" => {
                    c.log_driver = LogDriver::parse(v).ok_or_else(|| bad(line, "unknown driver"))?
                }
                "log_path" => c.log_path = v.into(),
                "log_max_size" => c.log_max_size = num(v)?,
                "log_max_files" => c.log_max_files = num(v)?.clamp(1, 1000) as u32,
                "terminal" => c.terminal = flag(v)?,
                "stdin" => c.stdin = flag(v)?,
                "restart" => {
                    c.restart = Restart::parse(v).ok_or_else(|| bad(line, "unknown policy"))?
                }
                "detach_keys" => {
                    c.detach_keys = v
                        .split(',')
                        .filter(|s| !s.is_empty())
                        .map(|b| b.parse::<u8>().map_err(|_| bad(line, "not a byte")))
                        .collect::<Result<_, _>>()?
                }
                "exit_command" => c.exit_command.push(v.into()),
                "trash" => c.trash.push(v.into()),
                "wait_go" => c.wait_go = flag(v)?,
                "hold_port" => c
                    .hold_ports
                    .push(HeldPort::parse(v).ok_or_else(|| bad(line, "not PROTO/ADDR/PORT"))?),
                "probe" => c.probes.push(crate::health::Probe::parse(v)?),
                "event_command" => c.event_command.push(v.into()),
                "stop_command" => c.stop_command.push(v.into()),
                "probe_helper" => c.probe_helper.push(v.into()),
                "kube_backoff" => c.kube_backoff = flag(v)?,
                "stop_signal" => {
                    c.stop_signal = v
                        .parse::<i32>()
                        .ok()
                        .filter(|n| (0..=64).contains(n))
                        .ok_or_else(|| bad(line, "not a signal number"))?
                }
                _ => return Err(bad(line, "unknown key")),
            }
        }
        if c.id.is_empty() || c.runtime.as_os_str().is_empty() || c.run_dir.as_os_str().is_empty() {
            return Err("monitor config: id, runtime and run_dir are required".into());
        }
        Ok(c)
    }

    pub fn to_text(&self) -> Result<String, String> {
        let mut out = String::new();
        let mut put = |k: &str, v: &str| -> Result<(), String> {
            if v.contains('\n') || v.contains('\0') {
                return Err(format!("{k} {v:?} contains a newline or NUL"));
            }
            out.push_str(k);
            out.push('=');
            out.push_str(v);
            out.push('\n');
            Ok(())
        };
        let p = |p: &PathBuf| p.to_string_lossy().into_owned();
        put("id", &self.id)?;
        put("bundle", &p(&self.bundle))?;
        put("runtime", &p(&self.runtime))?;
        for a in &self.runtime_args {
            put("runtime_arg", a)?;
        }
        if let Some(r) = &self.builtin_root {
            put("builtin_root", &p(r))?;
        }
        put("run_dir", &p(&self.run_dir))?;
        put("persist_dir", &p(&self.persist_dir))?;
        put("log_driver", self.log_driver.name())?;
        put("log_path", &p(&self.log_path))?;
        put("log_max_size", &self.log_max_size.to_string())?;
        put("log_max_files", &self.log_max_files.to_string())?;
        put("terminal", if self.terminal { "1" } else { "0" })?;
        put("stdin", if self.stdin { "1" } else { "0" })?;
        put("restart", &self.restart.name())?;
        let keys: Vec<String> = self.detach_keys.iter().map(|b| b.to_string()).collect();
        put("detach_keys", &keys.join(","))?;
        for t in &self.trash {
            put("trash", &p(t))?;
        }
        if self.wait_go {
            put("wait_go", "1")?;
        }
        for h in &self.hold_ports {
            put("hold_port", &h.text())?;
        }
        for p in &self.probes {
            put("probe", &p.to_text())?;
        }
        for a in &self.event_command {
            put("event_command", a)?;
        }
        for a in &self.stop_command {
            put("stop_command", a)?;
        }
        for a in &self.probe_helper {
            put("probe_helper", a)?;
        }
        if self.kube_backoff {
            put("kube_backoff", "1")?;
        }
        if self.stop_signal != 0 {
            put("stop_signal", &self.stop_signal.to_string())?;
        }
        for a in &self.exit_command {
            put("exit_command", a)?;
        }
        Ok(out)
    }
}

/// Docker's `--detach-keys` syntax: `ctrl-p,ctrl-q`, `a`, `ctrl-@`... An
/// empty string disables detaching.
pub fn parse_detach_keys(s: &str) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    for k in s.split(',').filter(|k| !k.is_empty()) {
        if let Some(c) = k.strip_prefix("ctrl-") {
            let b = match c.as_bytes() {
                [b @ b'a'..=b'z'] => b - b'a' + 1,
                [b @ b'A'..=b'Z'] => b - b'A' + 1,
                [b'@'] => 0,
                [b'['] => 27,
                [b'\\'] => 28,
                [b']'] => 29,
                [b'^'] => 30,
                [b'_'] => 31,
                _ => return Err(format!("--detach-keys: unknown key {k:?}")),
            };
            out.push(b);
        } else if k.len() == 1 && k.is_ascii() {
            out.push(k.as_bytes()[0]);
        } else {
            return Err(format!(
                "--detach-keys: unknown key {k:?} (use a letter or ctrl-<letter>, comma-separated)"
            ));
        }
    }
    Ok(out)
}

/// Finds the detach keys in typed input, across reads: bytes that may
/// begin the sequence are held back until it is complete (a detach) or
/// broken (then they are passed on).
#[derive(Clone, Debug, Default)]
pub struct DetachMatch {
    matched: usize,
}

impl DetachMatch {
    /// Appends to `out` what passes through; true when the `keys` were
    /// typed (what follows them in `data` is dropped).
    pub fn feed(&mut self, keys: &[u8], data: &[u8], out: &mut Vec<u8>) -> bool {
        if keys.is_empty() {
            out.extend_from_slice(data);
            return false;
        }
        for &b in data {
            if b == keys[self.matched] {
                self.matched += 1;
                if self.matched == keys.len() {
                    self.matched = 0;
                    return true;
                }
                continue;
            }
            out.extend_from_slice(&keys[..self.matched]);
            self.matched = 0;
            if b == keys[0] {
                self.matched = 1;
            } else {
                out.push(b);
            }
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let c = Config {
            id: "abc".into(),
            bundle: "/b".into(),
            runtime: "/usr/bin/berth-runtime".into(),
            runtime_args: vec!["--root".into(), "/run/x".into()],
            builtin_root: Some("/run/x".into()),
            run_dir: "/run/berth/abc".into(),
            persist_dir: "/var/lib/berth/c/abc".into(),
            log_driver: LogDriver::JsonFile,
            log_path: "/l".into(),
            log_max_size: 1024,
            log_max_files: 3,
            terminal: true,
            stdin: true,
            restart: Restart::OnFailure(4),
            detach_keys: vec![16, 17],
            exit_command: vec!["berth".into(), "container".into(), "cleanup".into()],
            trash: vec![
                "/var/lib/berth/trash/abc".into(),
                "/run/berth/trash/abc".into(),
            ],
            wait_go: true,
            hold_ports: vec![
                HeldPort::parse("tcp/*/8080").unwrap(),
                HeldPort::parse("udp/127.0.0.1/53").unwrap(),
                HeldPort::parse("tcp/::1/443").unwrap(),
            ],
            probes: vec![crate::health::Probe {
                action: crate::health::Action::Tcp {
                    host: String::new(),
                    port: 80,
                },
                ..Default::default()
            }],
            event_command: vec!["berth".into(), "container".into(), "health-event".into()],
            stop_command: vec!["berth".into(), "stop".into(), "abc".into()],
            probe_helper: vec!["/usr/bin/berth".into(), "container".into(), "probe".into()],
            kube_backoff: true,
            stop_signal: 3,
        };
        assert_eq!(Config::parse(&c.to_text().unwrap()).unwrap(), c);
        assert_eq!(c.hold_ports[2].addr, Some("::1".parse().unwrap()));
        for bad in [
            "sctp/*/1",
            "tcp/*/0",
            "tcp/*",
            "tcp/x/80",
            "tcp/*/70000",
            "",
        ] {
            assert!(HeldPort::parse(bad).is_none(), "{bad}");
        }
        let no_trash = Config {
            trash: Vec::new(),
            ..c.clone()
        };
        assert!(!no_trash.to_text().unwrap().contains("trash"));
        assert_eq!(
            Config::parse(&no_trash.to_text().unwrap()).unwrap(),
            no_trash
        );
        let mut bad = c.clone();
        bad.bundle = "/x\ny".into();
        assert!(bad.to_text().is_err());
        assert!(Config::parse("id=a\nnope=1\n").is_err());
        // Found by fuzzing: a value ending in '\r' came back without it.
        let mut cr = c.clone();
        cr.id = "a\r".into();
        assert_eq!(Config::parse(&cr.to_text().unwrap()).unwrap(), cr);
        assert!(Config::parse("id=a\n").is_err());
    }

    #[test]
    fn restart_policies() {
        assert_eq!(Restart::parse("on-failure:3"), Some(Restart::OnFailure(3)));
        assert_eq!(Restart::parse("sometimes"), None);
        assert!(!Restart::OnFailure(3).wants(0, 0));
        assert!(Restart::OnFailure(3).wants(1, 2));
        assert!(!Restart::OnFailure(3).wants(1, 3));
        assert!(Restart::OnFailure(0).wants(1, 300));
        assert!(Restart::Always.wants(0, 9));
        assert!(!Restart::No.wants(1, 0));
    }

    #[test]
    fn detach_keys_are_found_across_reads() {
        let keys = [16, 17];
        let mut m = DetachMatch::default();
        let mut out = Vec::new();
        assert!(!m.feed(&keys, b"ab\x10", &mut out));
        assert_eq!(out, b"ab", "a possible start is held back");
        assert!(!m.feed(&keys, b"x\x10", &mut out));
        assert_eq!(out, b"ab\x10x", "a broken sequence is passed on");
        assert!(m.feed(&keys, b"\x11after", &mut out));
        assert_eq!(out, b"ab\x10x", "the keys and what follows are not");
        let mut out = Vec::new();
        assert!(!m.feed(&keys, b"\x10\x10\x10", &mut out));
        assert_eq!(out, b"\x10\x10");
        assert!(m.feed(&keys, b"\x11", &mut out));
        let mut out = Vec::new();
        assert!(!DetachMatch::default().feed(&[], b"\x10\x11", &mut out));
        assert_eq!(out, b"\x10\x11", "no keys: nothing detaches");
    }

    #[test]
    fn detach_keys() {
        assert_eq!(parse_detach_keys("ctrl-p,ctrl-q").unwrap(), vec![16, 17]);
        assert_eq!(parse_detach_keys("a,ctrl-@").unwrap(), vec![b'a', 0]);
        assert!(parse_detach_keys("ctrl-1").is_err());
        assert!(parse_detach_keys("").unwrap().is_empty());
    }
}
