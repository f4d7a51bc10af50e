//! Pull progress: one live status line on a terminal (bytes, speed, ETA),
//! plain lines otherwise, nothing with `-q`.

use berth_image::pull::Event;
use berth_image::Digest;
use std::collections::HashMap;
use std::io::{IsTerminal, Write};
use std::sync::Mutex;
use std::time::Instant;

pub struct Progress {
    quiet: bool,
    tty: bool,
    state: Mutex<State>,
}

struct State {
    start: Instant,
    sizes: HashMap<Digest, u64>,
    done: HashMap<Digest, u64>,
    finished: usize,
    last_draw: Option<Instant>,
}

fn human(b: f64) -> String {
    const U: [&str; 5] = ["B", "kB", "MB", "GB", "TB"];
    let mut v = b;
    let mut i = 0;
    while v >= 1000.0 && i < U.len() - 1 {
        v /= 1000.0;
        i += 1;
    }
    if i == 0 {
        format!("{v:.0} {}", U[i])
    } else {
        format!("{v:.1} {}", U[i])
    }
}

impl Progress {
    pub fn new(quiet: bool) -> Progress {
        Progress {
            quiet,
            tty: std::io::stderr().is_terminal(),
            state: Mutex::new(State {
                start: Instant::now(),
                sizes: HashMap::new(),
                done: HashMap::new(),
                finished: 0,
                last_draw: None,
            }),
        }
    }

    pub fn event(&self, e: Event) {
        if self.quiet {
            return;
        }
        let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let mut err = std::io::stderr().lock();
        match e {
            Event::Resolved { image, layers } => {
                let total: u64 = layers.iter().map(|l| l.1).sum();
                let _ = writeln!(
                    err,
                    "Image {} ({} layers, {})",
                    image.short(),
                    layers.len(),
                    human(total as f64)
                );
                s.sizes = layers.into_iter().collect();
                s.start = Instant::now();
            }
            Event::Exists { layer } => {
                s.finished += 1;
                let _ = self.line(&mut err, &format!("{}: already exists", layer.short()));
            }
            Event::Progress { layer, done, .. } => {
                s.done.insert(layer, done);
                let now = Instant::now();
                if self.tty
                    && s.last_draw
                        .is_none_or(|t| now.duration_since(t).as_millis() >= 100)
                {
                    s.last_draw = Some(now);
                    let done: u64 = s.done.values().sum();
                    let total: u64 = s.sizes.values().sum();
                    let secs = s.start.elapsed().as_secs_f64().max(0.001);
                    let speed = done as f64 / secs;
                    let eta = if speed > 0.0 && total > done {
                        format!("{:.0}s", (total - done) as f64 / speed)
                    } else {
                        "-".into()
                    };
                    let _ = write!(
                        err,
                        "\r\x1b[2K{} / {}  {}/s  ETA {}  ({}/{} layers)",
                        human(done as f64),
                        human(total as f64),
                        human(speed),
                        eta,
                        s.finished,
                        s.sizes.len()
                    );
                }
            }
            Event::Done { layer } => {
                s.finished += 1;
                let size = s.sizes.get(&layer).copied().unwrap_or(0);
                let _ = self.line(
                    &mut err,
                    &format!("{}: pulled ({})", layer.short(), human(size as f64)),
                );
            }
        }
    }

    fn line(&self, w: &mut impl Write, msg: &str) -> std::io::Result<()> {
        if self.tty {
            write!(w, "\r\x1b[2K")?;
        }
        writeln!(w, "{msg}")
    }

    pub fn finish(&self) {
        if self.tty && !self.quiet {
            let _ = write!(std::io::stderr(), "\r\x1b[2K");
        }
    }
}
