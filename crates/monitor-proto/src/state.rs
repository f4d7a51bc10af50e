//! The monitor's account of its container: `key=value` lines, written
//! atomically (temp file, fsync, rename) at each change to `state` in the run
//! directory, and at the end to `exit` in the persistent directory too.

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Status {
    /// The runtime is creating and starting the container.
    #[default]
    Starting,
    Running,
    /// Ended; waiting out the back-off before the next start.
    Restarting,
    /// Ended for good: the monitor is done (or about to be).
    Exited,
}

impl Status {
    pub fn name(self) -> &'static str {
        match self {
            Status::Starting => "starting",
            Status::Running => "running",
            Status::Restarting => "restarting",
            Status::Exited => "exited",
        }
    }

    fn parse(s: &str) -> Option<Status> {
        Some(match s {
            "starting" => Status::Starting,
            "running" => Status::Running,
            "restarting" => Status::Restarting,
            "exited" => Status::Exited,
            _ => return None,
        })
    }
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct State {
    pub monitor_pid: i32,
    /// The container's init on the host (0 before it starts, and while it
    /// is being restarted: the pid is no longer the container's).
    pub pid: i32,
    /// The init's start time (`starttime`, field 22 of `/proc/PID/stat`,
    /// clock ticks since boot): with `pid`, it names the init for good (a
    /// reused pid has another). 0 when unknown: no init, or a state file
    /// of a monitor older than this field.
    pub start_time: u64,
    pub status: Status,
    /// Nanoseconds since the epoch.
    pub started: i64,
    pub finished: i64,
    /// The shell convention: the code, or 128+N for signal N.
    pub exit_code: i32,
    pub oom_killed: bool,
    pub restarts: u32,
    /// Log bytes lost (the disk was full or the file could not be written).
    pub log_dropped: u64,
    /// Output bytes an attached client was too slow to take.
    pub attach_dropped: u64,
    /// Why the runtime could not start the container, if it could not.
    pub error: String,
}

impl State {
    pub fn to_text(&self) -> String {
        format!(
            "monitor_pid={}\npid={}\nstarttime={}\nstatus={}\nstarted={}\nfinished={}\nexit_code={}\noom_killed={}\nrestarts={}\nlog_dropped={}\nattach_dropped={}\nerror={}\n",
            self.monitor_pid,
            self.pid,
            self.start_time,
            self.status.name(),
            self.started,
            self.finished,
            self.exit_code,
            u8::from(self.oom_killed),
            self.restarts,
            self.log_dropped,
            self.attach_dropped,
            self.error.replace(['\n', '\r'], " "),
        )
    }

    /// Unknown keys are skipped (a newer monitor may write more).
    pub fn parse(text: &str) -> Result<State, String> {
        let mut s = State::default();
        let mut seen_status = false;
        // Split on '\n' alone: `lines()` would also eat a '\r' that ends a
        // value.
        for line in text.split('\n').filter(|l| !l.is_empty()) {
            let (k, v) = line
                .split_once('=')
                .ok_or_else(|| format!("monitor state line {line:?}: no '='"))?;
            let n = || {
                v.parse::<i64>()
                    .map_err(|_| format!("monitor state line {line:?}: not a number"))
            };
            match k {
                "monitor_pid" => s.monitor_pid = n()? as i32,
                "pid" => s.pid = n()? as i32,
                "starttime" => {
                    s.start_time = v
                        .parse()
                        .map_err(|_| format!("monitor state line {line:?}: not a number"))?
                }
                "status" => {
                    s.status = Status::parse(v)
                        .ok_or_else(|| format!("monitor state: unknown status {v:?}"))?;
                    seen_status = true;
                }
                "started" => s.started = n()?,
                "finished" => s.finished = n()?,
                "exit_code" => s.exit_code = n()? as i32,
                "oom_killed" => s.oom_killed = n()? != 0,
                "restarts" => s.restarts = n()? as u32,
                "log_dropped" => s.log_dropped = n()? as u64,
                "attach_dropped" => s.attach_dropped = n()? as u64,
                "error" => s.error = v.into(),
                _ => {}
            }
        }
        if !seen_status {
            return Err("monitor state: no status (a torn write?)".into());
        }
        Ok(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let s = State {
            monitor_pid: 10,
            pid: 11,
            start_time: 12,
            status: Status::Exited,
            started: 1,
            finished: 2,
            exit_code: 137,
            oom_killed: true,
            restarts: 3,
            log_dropped: 4,
            attach_dropped: 5,
            error: "no\nsuch file".into(),
        };
        let back = State::parse(&s.to_text()).unwrap();
        assert_eq!(back.error, "no such file");
        assert_eq!(
            State {
                error: s.error.clone(),
                ..back
            },
            s
        );
        assert!(State::parse("pid=1\n").is_err());
        // A state file of an older monitor: no start time, 0 (unknown).
        let old = State::parse("monitor_pid=10\npid=11\nstatus=running\n").unwrap();
        assert_eq!((old.pid, old.start_time), (11, 0));
        assert!(State::parse("status=exited\npid=x\n").is_err());
    }
}
