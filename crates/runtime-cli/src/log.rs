//! The runtime's own log: `--log FILE` (or stderr) in runc's text or JSON
//! line format. Callers such as containerd read the last `error` line of
//! the JSON log to report why a command failed.
//!
//! A minimal `tracing` subscriber: berth-runtime is single-threaded and has
//! no spans worth recording, so lines are formatted and written directly.

use std::fmt::Write as _;
use std::io::Write;
use std::sync::Mutex;
use tracing::field::{Field, Visit};
use tracing::{span, Event, Level, Metadata, Subscriber};

pub struct LineLogger {
    out: Mutex<Box<dyn Write + Send>>,
    json: bool,
    max: Level,
}

impl LineLogger {
    pub fn new(out: Box<dyn Write + Send>, json: bool, max: Level) -> LineLogger {
        LineLogger {
            out: Mutex::new(out),
            json,
            max,
        }
    }

    /// Writes one line at `level`, bypassing the level filter: used for the
    /// final error of a command.
    pub fn line(&self, level: Level, msg: &str) {
        let time = berth_runtime::state::now_rfc3339();
        let lvl = level_name(level);
        let line = if self.json {
            serde_json::json!({"level": lvl, "msg": msg, "time": time}).to_string()
        } else {
            format!("time={time:?} level={lvl} msg={msg:?}")
        };
        if let Ok(mut out) = self.out.lock() {
            let _ = writeln!(out, "{line}");
            let _ = out.flush();
        }
    }
}

fn level_name(l: Level) -> &'static str {
    match l {
        Level::ERROR => "error",
        Level::WARN => "warning",
        Level::INFO => "info",
        Level::DEBUG => "debug",
        Level::TRACE => "trace",
    }
}

struct Message(String);

impl Visit for Message {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.record_debug(field, &value)
    }
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            let _ = write!(self.0, "{value:?}");
        } else {
            let _ = write!(self.0, " {}={value:?}", field.name());
        }
    }
}

impl Subscriber for LineLogger {
    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        *metadata.level() <= self.max
    }
    fn new_span(&self, _: &span::Attributes<'_>) -> span::Id {
        span::Id::from_u64(1)
    }
    fn record(&self, _: &span::Id, _: &span::Record<'_>) {}
    fn record_follows_from(&self, _: &span::Id, _: &span::Id) {}
    fn event(&self, event: &Event<'_>) {
        let mut m = Message(String::new());
        event.record(&mut m);
        self.line(*event.metadata().level(), &m.0);
    }
    fn enter(&self, _: &span::Id) {}
    fn exit(&self, _: &span::Id) {}
}
