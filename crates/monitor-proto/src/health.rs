//! Health checks and probes the monitor runs: their configuration (one
//! `probe=` line each in the monitor's config) and their results (the
//! `health` file in the run directory, written atomically at each change,
//! read by `inspect` and `ps` without talking to the monitor).
//!
//! One model serves Docker's HEALTHCHECK / `--health-*` (kind
//! `docker-health`) and Kubernetes' liveness, readiness and startup probes.

use std::time::Duration;

/// The id the probe helper drops to (see `berth_sys::userns`): shared by
/// the helper and the monitor (which says once when there is none).
pub use berth_sys::userns::unprivileged_id;

/// The probe helper's uid and gid: nobody's.
pub const HELPER_ID: u32 = 65534;

/// What a probe's result decides.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ProbeKind {
    /// Docker's health check: the status starting/healthy/unhealthy, and
    /// `--health-on-failure` when it turns unhealthy.
    #[default]
    DockerHealth,
    /// Kubernetes' liveness: at `failure_threshold` failures in a row the
    /// container is killed (and restarted per its restart policy).
    Liveness,
    /// Kubernetes' readiness: whether the container is ready (gates a
    /// Service); a failure does nothing else.
    Readiness,
    /// Kubernetes' startup: the other probes wait until it has passed; at
    /// `failure_threshold` failures the container is killed.
    Startup,
    /// Kubernetes' lifecycle postStart hook: run once as soon as the
    /// container has started (the probes wait for it); a failure kills
    /// the container (its restart policy applies), as the kubelet does.
    PostStart,
    /// Kubernetes' lifecycle preStop hook: run only when asked
    /// ([`crate::frame::PRE_STOP_RUN`], by `berth stop`) before the stop
    /// signal; its result changes nothing but the log.
    PreStop,
}

impl ProbeKind {
    /// A lifecycle hook (run once, on an event), not a periodic probe.
    pub fn is_hook(self) -> bool {
        matches!(self, ProbeKind::PostStart | ProbeKind::PreStop)
    }

    pub fn name(self) -> &'static str {
        match self {
            ProbeKind::DockerHealth => "docker-health",
            ProbeKind::Liveness => "liveness",
            ProbeKind::Readiness => "readiness",
            ProbeKind::Startup => "startup",
            ProbeKind::PostStart => "post-start",
            ProbeKind::PreStop => "pre-stop",
        }
    }

    pub fn parse(s: &str) -> Option<ProbeKind> {
        Some(match s {
            "docker-health" => ProbeKind::DockerHealth,
            "liveness" => ProbeKind::Liveness,
            "readiness" => ProbeKind::Readiness,
            "startup" => ProbeKind::Startup,
            "post-start" => ProbeKind::PostStart,
            "pre-stop" => ProbeKind::PreStop,
            _ => return None,
        })
    }
}

/// What the monitor does when a `docker-health` check turns unhealthy
/// (podman's `--health-on-failure`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum OnFailure {
    #[default]
    None,
    /// Kill the container (SIGKILL, podman's); it stays stopped (no
    /// restart policy applies).
    Kill,
    /// Stop the container gracefully (its stop signal, SIGKILL after its
    /// stop timeout) and start it again, whatever its restart policy
    /// (podman's RestartWithTimeout).
    Restart,
    /// Stop the container (its stop signal, then SIGKILL).
    Stop,
}

impl OnFailure {
    pub fn name(self) -> &'static str {
        match self {
            OnFailure::None => "none",
            OnFailure::Kill => "kill",
            OnFailure::Restart => "restart",
            OnFailure::Stop => "stop",
        }
    }

    pub fn parse(s: &str) -> Option<OnFailure> {
        Some(match s {
            "none" => OnFailure::None,
            "kill" => OnFailure::Kill,
            "restart" => OnFailure::Restart,
            "stop" => OnFailure::Stop,
            _ => return None,
        })
    }
}

/// How a probe checks.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// A process in the container (`args` as in the OCI process), run
    /// through the runtime's `exec` with the process file `process` the
    /// engine wrote (the container's process with these args).
    Exec { args: Vec<String>, process: String },
    /// A TCP connection to `host:port` from inside the container's network
    /// namespace (`host` an IP address; empty: 127.0.0.1).
    Tcp { host: String, port: u16 },
    /// An HTTP/1.0 GET of `path` on `host:port` from inside the container's
    /// network namespace; 200-399 is a success (Kubernetes' rule).
    Http {
        host: String,
        port: u16,
        path: String,
        /// `Name: value` lines.
        headers: Vec<(String, String)>,
    },
    /// A TCP connection to `host:port` made, as for [`Action::Tcp`], inside
    /// the container's network namespace, then handed as stdin to the
    /// probe helper ([`crate::config::Config::probe_helper`]) with these
    /// `args` appended: a short-lived process that speaks what the monitor
    /// does not link (TLS for HTTPS, HTTP/2 for gRPC). Its exit code is
    /// the result, its output the log; it is killed at the timeout.
    Helper {
        host: String,
        port: u16,
        args: Vec<String>,
    },
    /// Kubernetes' sleep action (lifecycle hooks only): the monitor waits
    /// this long, a timer in its event loop; nothing is spawned.
    Sleep(Duration),
}

/// One probe.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Probe {
    pub kind: ProbeKind,
    pub action: Action,
    /// Kubernetes' initialDelaySeconds: no check before this.
    pub initial_delay: Duration,
    pub period: Duration,
    pub timeout: Duration,
    /// Successes in a row that make it pass again (readiness).
    pub success_threshold: u32,
    /// Failures in a row that make it fail (Docker's retries).
    pub failure_threshold: u32,
    /// Docker's start period: failures then do not count; a success ends it.
    pub start_period: Duration,
    /// Docker's start interval: the period during the start period.
    pub start_interval: Duration,
    pub on_failure: OnFailure,
    /// When this probe stops the container (a failed liveness or startup
    /// probe; Docker's check with on_failure `restart`): the grace period
    /// from the preStop hook's start (or the stop signal's, without one)
    /// to the SIGKILL. The engine chooses it (the probe's own
    /// terminationGracePeriodSeconds, the pod's, 30 s; Docker's: the stop
    /// timeout).
    pub grace: Duration,
}

impl Default for Probe {
    fn default() -> Self {
        Probe {
            kind: ProbeKind::DockerHealth,
            action: Action::Tcp {
                host: String::new(),
                port: 0,
            },
            initial_delay: Duration::ZERO,
            period: Duration::from_secs(30),
            timeout: Duration::from_secs(30),
            success_threshold: 1,
            failure_threshold: 3,
            start_period: Duration::ZERO,
            start_interval: Duration::from_secs(5),
            on_failure: OnFailure::None,
            grace: Duration::from_secs(30),
        }
    }
}

/// `%`, space, CR, LF and NUL as `%XX`: a value fits in one token.
pub fn escape(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '%' | ' ' | '\n' | '\r' | '\0' | '\t' => o.push_str(&format!("%{:02X}", c as u32)),
            _ => o.push(c),
        }
    }
    o
}

/// The inverse of [`escape`]; `None` for a malformed escape.
pub fn unescape(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut o = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = s.get(i + 1..i + 3)?;
            o.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            o.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(o).ok()
}

fn ms(d: Duration) -> String {
    d.as_millis().to_string()
}

impl Probe {
    /// One line's value: space-separated `key=value` tokens, values
    /// [`escape`]d.
    pub fn to_text(&self) -> String {
        let mut t = vec![
            format!("kind={}", self.kind.name()),
            format!("initial_delay={}", ms(self.initial_delay)),
            format!("period={}", ms(self.period)),
            format!("timeout={}", ms(self.timeout)),
            format!("success={}", self.success_threshold),
            format!("failure={}", self.failure_threshold),
            format!("start_period={}", ms(self.start_period)),
            format!("start_interval={}", ms(self.start_interval)),
            format!("on_failure={}", self.on_failure.name()),
            format!("grace={}", ms(self.grace)),
        ];
        match &self.action {
            Action::Exec { args, process } => {
                t.push("action=exec".into());
                t.push(format!("process={}", escape(process)));
                t.extend(args.iter().map(|a| format!("arg={}", escape(a))));
            }
            Action::Tcp { host, port } => {
                t.push("action=tcp".into());
                t.push(format!("host={}", escape(host)));
                t.push(format!("port={port}"));
            }
            Action::Http {
                host,
                port,
                path,
                headers,
            } => {
                t.push("action=http".into());
                t.push(format!("host={}", escape(host)));
                t.push(format!("port={port}"));
                t.push(format!("path={}", escape(path)));
                for (k, v) in headers {
                    t.push(format!("header={}", escape(&format!("{k}:{v}"))));
                }
            }
            Action::Helper { host, port, args } => {
                t.push("action=helper".into());
                t.push(format!("host={}", escape(host)));
                t.push(format!("port={port}"));
                t.extend(args.iter().map(|a| format!("arg={}", escape(a))));
            }
            Action::Sleep(d) => {
                t.push("action=sleep".into());
                t.push(format!("sleep={}", ms(*d)));
            }
        }
        t.join(" ")
    }

    pub fn parse(text: &str) -> Result<Probe, String> {
        let mut p = Probe::default();
        let (mut action, mut args, mut process) = (String::new(), Vec::new(), String::new());
        let (mut host, mut port, mut path, mut headers) =
            (String::new(), 0u16, String::from("/"), Vec::new());
        let mut sleep = Duration::ZERO;
        for tok in text.split(' ').filter(|t| !t.is_empty()) {
            let bad = |why: &str| format!("probe {text:?}: {tok:?}: {why}");
            let (k, v) = tok.split_once('=').ok_or_else(|| bad("no '='"))?;
            let v = unescape(v).ok_or_else(|| bad("a bad %-escape"))?;
            let dur = |v: &str| {
                v.parse::<u64>()
                    .map(Duration::from_millis)
                    .map_err(|_| bad("not milliseconds"))
            };
            let num = |v: &str| v.parse::<u32>().map_err(|_| bad("not a number"));
            match k {
                "kind" => p.kind = ProbeKind::parse(&v).ok_or_else(|| bad("unknown kind"))?,
                "initial_delay" => p.initial_delay = dur(&v)?,
                "period" => p.period = dur(&v)?,
                "timeout" => p.timeout = dur(&v)?,
                "success" => p.success_threshold = num(&v)?.max(1),
                "failure" => p.failure_threshold = num(&v)?.max(1),
                "start_period" => p.start_period = dur(&v)?,
                "start_interval" => p.start_interval = dur(&v)?,
                "grace" => p.grace = dur(&v)?,
                "sleep" => sleep = dur(&v)?,
                "on_failure" => {
                    p.on_failure = OnFailure::parse(&v).ok_or_else(|| bad("unknown action"))?
                }
                "action" => action = v,
                "process" => process = v,
                "arg" => args.push(v),
                "host" => host = v,
                "port" => port = v.parse().map_err(|_| bad("not a port"))?,
                "path" => path = v,
                "header" => {
                    let (n, x) = v.split_once(':').ok_or_else(|| bad("not NAME:VALUE"))?;
                    headers.push((n.to_string(), x.to_string()));
                }
                _ => return Err(bad("unknown key")),
            }
        }
        p.action = match action.as_str() {
            "exec" if !args.is_empty() && !process.is_empty() => Action::Exec { args, process },
            "tcp" => Action::Tcp { host, port },
            "helper" if !args.is_empty() => Action::Helper { host, port, args },
            "sleep" if p.kind.is_hook() => Action::Sleep(sleep),
            "http" => Action::Http {
                host,
                port,
                path,
                headers,
            },
            _ => return Err(format!("probe {text:?}: no usable action")),
        };
        if p.period.is_zero() || p.timeout.is_zero() {
            return Err(format!("probe {text:?}: a zero period or timeout"));
        }
        Ok(p)
    }
}

/// Docker's health statuses.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Status {
    #[default]
    Starting,
    Healthy,
    Unhealthy,
}

impl Status {
    pub fn name(self) -> &'static str {
        match self {
            Status::Starting => "starting",
            Status::Healthy => "healthy",
            Status::Unhealthy => "unhealthy",
        }
    }

    pub fn parse(s: &str) -> Option<Status> {
        Some(match s {
            "starting" => Status::Starting,
            "healthy" => Status::Healthy,
            "unhealthy" => Status::Unhealthy,
            _ => return None,
        })
    }
}

/// Docker keeps the last five results.
pub const LOG_ENTRIES: usize = 5;
/// Docker keeps 4 KiB of a check's output.
pub const OUTPUT_MAX: usize = 4096;

/// One check's result (Docker's `State.Health.Log[]`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Entry {
    /// Nanoseconds since the epoch.
    pub start: i64,
    pub end: i64,
    /// The check's exit code; -1 when it timed out or could not run.
    pub exit_code: i32,
    /// At most [`OUTPUT_MAX`] bytes.
    pub output: String,
}

/// The `health` file.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Health {
    /// From the `docker-health` probe, else the liveness one.
    pub status: Status,
    pub failing_streak: u32,
    /// The readiness probe passes (without one: the startup probe, if
    /// any, has passed).
    pub ready: bool,
    /// The startup probe has passed (true without one).
    pub started: bool,
    pub log: Vec<Entry>,
}

impl Health {
    pub fn to_text(&self) -> String {
        let mut t = format!(
            "status={}\nfailing_streak={}\nready={}\nstarted={}\n",
            self.status.name(),
            self.failing_streak,
            u8::from(self.ready),
            u8::from(self.started)
        );
        for e in &self.log {
            t.push_str(&format!(
                "log={} {} {} {}\n",
                e.start,
                e.end,
                e.exit_code,
                escape(&e.output)
            ));
        }
        t
    }

    /// Unknown keys are skipped.
    pub fn parse(text: &str) -> Result<Health, String> {
        let mut h = Health::default();
        let mut seen = false;
        for line in text.split('\n').filter(|l| !l.is_empty()) {
            let bad = || format!("health file line {line:?}: malformed");
            let (k, v) = line.split_once('=').ok_or_else(bad)?;
            match k {
                "status" => {
                    h.status = Status::parse(v).ok_or_else(bad)?;
                    seen = true;
                }
                "failing_streak" => h.failing_streak = v.parse().map_err(|_| bad())?,
                "ready" => h.ready = v == "1",
                "started" => h.started = v == "1",
                "log" => {
                    let f: Vec<&str> = v.splitn(4, ' ').collect();
                    let [s, e, c, o] = f.as_slice() else {
                        return Err(bad());
                    };
                    h.log.push(Entry {
                        start: s.parse().map_err(|_| bad())?,
                        end: e.parse().map_err(|_| bad())?,
                        exit_code: c.parse().map_err(|_| bad())?,
                        output: unescape(o).ok_or_else(bad)?,
                    });
                }
                _ => {}
            }
        }
        if !seen {
            return Err("health file: no status (a torn write?)".into());
        }
        Ok(h)
    }

    /// Appends a result, keeping the last [`LOG_ENTRIES`].
    pub fn push(&mut self, e: Entry) {
        self.log.push(e);
        let extra = self.log.len().saturating_sub(LOG_ENTRIES);
        self.log.drain(..extra);
    }
}

/// The HTTP/1.0 GET an HTTP probe sends (the monitor's own for HTTP, the
/// probe helper's inside TLS for HTTPS); `host` is the Host header's
/// value (`ADDRESS:PORT`).
pub fn http_probe_request(host: &str, path: &str, headers: &[(String, String)]) -> Vec<u8> {
    let mut req = format!(
        "GET {path} HTTP/1.0\r\nHost: {host}\r\nUser-Agent: berth-probe\r\nAccept: */*\r\nConnection: close\r\n"
    );
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    req.into_bytes()
}

/// Kubernetes' rule on an HTTP probe's response head: a status of 200 to
/// 399 passes. Ok or Err, the text says why (the status line).
pub fn http_probe_verdict(head: &[u8]) -> Result<String, String> {
    let text = String::from_utf8_lossy(head);
    let line = text.split("\r\n").next().unwrap_or("").to_string();
    let code = line
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse::<u16>().ok())
        .filter(|_| line.starts_with("HTTP/"));
    match code {
        Some(c) if (200..400).contains(&c) => Ok(line),
        Some(_) => Err(line),
        None => Err(format!("not an HTTP response: {line:?}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probes_round_trip() {
        let ps = [
            Probe {
                kind: ProbeKind::DockerHealth,
                action: Action::Exec {
                    args: vec!["/bin/sh".into(), "-c".into(), "test -e /x % 2\n".into()],
                    process: "/run/b/a b/probe-0.json".into(),
                },
                period: Duration::from_millis(200),
                on_failure: OnFailure::Restart,
                start_period: Duration::from_secs(3),
                ..Probe::default()
            },
            Probe {
                kind: ProbeKind::Readiness,
                action: Action::Http {
                    host: String::new(),
                    port: 8080,
                    path: "/healthz?a=b c".into(),
                    headers: vec![("X-A".into(), "v: w".into())],
                },
                success_threshold: 2,
                ..Probe::default()
            },
            Probe {
                kind: ProbeKind::Liveness,
                action: Action::Tcp {
                    host: "::1".into(),
                    port: 22,
                },
                ..Probe::default()
            },
            Probe {
                kind: ProbeKind::Startup,
                action: Action::Helper {
                    host: String::new(),
                    port: 8443,
                    args: vec!["https".into(), "--path".into(), "/a b%".into()],
                },
                grace: Duration::from_secs(2),
                ..Probe::default()
            },
            Probe {
                kind: ProbeKind::PreStop,
                action: Action::Sleep(Duration::from_secs(5)),
                ..Probe::default()
            },
            Probe {
                kind: ProbeKind::PostStart,
                action: Action::Sleep(Duration::ZERO),
                ..Probe::default()
            },
        ];
        for p in ps {
            let t = p.to_text();
            assert!(!t.contains('\n'));
            assert_eq!(Probe::parse(&t).unwrap(), p);
        }
        assert!(Probe::parse("kind=liveness action=exec").is_err());
        assert!(Probe::parse("action=helper port=1").is_err());
        // A sleep is a hook's action only.
        assert!(Probe::parse("kind=liveness action=sleep sleep=1000").is_err());
        assert!(Probe::parse("kind=x action=tcp port=1").is_err());
        assert!(Probe::parse("action=tcp port=1 period=0").is_err());
        assert!(Probe::parse("action=tcp port=1 path=%zz").is_err());
    }

    #[test]
    fn health_file_round_trips_and_keeps_five() {
        let mut h = Health {
            status: Status::Unhealthy,
            failing_streak: 3,
            ready: true,
            started: true,
            log: Vec::new(),
        };
        for i in 0..7 {
            h.push(Entry {
                start: i,
                end: i + 1,
                exit_code: -1,
                output: format!("out {i}\nline 2 100%"),
            });
        }
        assert_eq!(h.log.len(), 5);
        assert_eq!(h.log[0].start, 2);
        assert_eq!(Health::parse(&h.to_text()).unwrap(), h);
        assert!(Health::parse("ready=1\n").is_err());
    }
}
