//! Pull progress: on a terminal, one live bar per layer (bytes, speed,
//! ETA) redrawn in place at most ten times a second; otherwise plain lines
//! when a layer starts being skipped or finishes; nothing with `-q`.

use berth_engine::images::{Digest, PullEvent as Event};
use std::io::{IsTerminal, Write};
use std::sync::Mutex;
use std::time::Instant;

pub struct Progress {
    quiet: bool,
    tty: bool,
    state: Mutex<State>,
}

#[derive(Clone, Copy, PartialEq)]
enum Phase {
    Waiting,
    Downloading,
    Done,
    Exists,
}

struct Layer {
    digest: Digest,
    size: u64,
    done: u64,
    phase: Phase,
    started: Option<Instant>,
    finished: Option<Instant>,
}

struct State {
    layers: Vec<Layer>,
    drawn: usize,
    last_draw: Option<Instant>,
}

pub fn human(b: f64) -> String {
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

fn bar(done: u64, total: u64, width: usize) -> String {
    let filled = if total == 0 {
        width
    } else {
        ((done.min(total) as f64 / total as f64) * width as f64) as usize
    };
    let mut s = String::with_capacity(width + 2);
    s.push('[');
    for i in 0..width {
        s.push(match i.cmp(&filled) {
            std::cmp::Ordering::Less => '=',
            std::cmp::Ordering::Equal => '>',
            std::cmp::Ordering::Greater => ' ',
        });
    }
    s.push(']');
    s
}

/// The width of the terminal on stderr (80 when it says nothing).
fn columns() -> usize {
    // SAFETY: winsize is plain data filled by the ioctl.
    let mut ws: libc::winsize = unsafe { std::mem::zeroed() };
    // SAFETY: TIOCGWINSZ writes one winsize.
    if unsafe { libc::ioctl(2, libc::TIOCGWINSZ, &mut ws) } == 0 && ws.ws_col > 0 {
        ws.ws_col as usize
    } else {
        80
    }
}

impl Layer {
    /// The layer's line, shorter than `width` columns: a line as wide as
    /// the terminal or wider wraps, and the redraw in place (cursor up one
    /// line per layer) then overwrites the wrong lines.
    fn line(&self, width: usize) -> String {
        let mut l = self.text(width);
        l.truncate(width.saturating_sub(1));
        l
    }

    fn text(&self, width: usize) -> String {
        let id = self.digest.short();
        match self.phase {
            Phase::Waiting => format!("{id}  waiting"),
            Phase::Exists => format!("{id}  already exists"),
            Phase::Done => {
                let secs = match (self.started, self.finished) {
                    (Some(s), Some(f)) => f.duration_since(s).as_secs_f64(),
                    _ => 0.0,
                };
                format!("{id}  pulled  {}  in {secs:.1}s", human(self.size as f64))
            }
            Phase::Downloading => {
                let secs = self
                    .started
                    .map_or(0.0, |s| s.elapsed().as_secs_f64())
                    .max(0.001);
                let speed = self.done as f64 / secs;
                let eta = if speed > 0.0 && self.size > self.done {
                    format!("{:.0}s", (self.size - self.done) as f64 / speed)
                } else {
                    "-".into()
                };
                let rest = format!(
                    "{} / {}  {}/s  ETA {eta}",
                    human(self.done as f64),
                    human(self.size as f64),
                    human(speed)
                );
                // The bar takes what is left, up to 30 columns ("[]" and
                // the gaps around it take 6).
                let room = width.saturating_sub(1 + id.len() + rest.len() + 6);
                if room < 5 {
                    format!("{id}  {rest}")
                } else {
                    format!("{id}  {}  {rest}", bar(self.done, self.size, room.min(30)))
                }
            }
        }
    }
}

impl Progress {
    pub fn new(quiet: bool) -> Progress {
        Progress {
            quiet,
            tty: std::io::stderr().is_terminal(),
            state: Mutex::new(State {
                layers: Vec::new(),
                drawn: 0,
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
        let find = |s: &mut State, d: &Digest| s.layers.iter().position(|l| &l.digest == d);
        let mut force = false;
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
                s.layers = layers
                    .into_iter()
                    .map(|(digest, size)| Layer {
                        digest,
                        size,
                        done: 0,
                        phase: Phase::Waiting,
                        started: None,
                        finished: None,
                    })
                    .collect();
                force = true;
            }
            Event::Exists { layer } => {
                if let Some(i) = find(&mut s, &layer) {
                    s.layers[i].phase = Phase::Exists;
                    if !self.tty {
                        let _ = writeln!(err, "{}", s.layers[i].line(usize::MAX));
                    }
                }
                force = true;
            }
            Event::Progress { layer, done, .. } => {
                if let Some(i) = find(&mut s, &layer) {
                    let l = &mut s.layers[i];
                    if l.phase == Phase::Waiting {
                        l.phase = Phase::Downloading;
                        l.started = Some(Instant::now());
                    }
                    l.done = done;
                }
            }
            Event::Done { layer } => {
                if let Some(i) = find(&mut s, &layer) {
                    let l = &mut s.layers[i];
                    l.started.get_or_insert_with(Instant::now);
                    l.finished = Some(Instant::now());
                    l.phase = Phase::Done;
                    l.done = l.size;
                    if !self.tty {
                        let _ = writeln!(err, "{}", s.layers[i].line(usize::MAX));
                    }
                }
                force = true;
            }
        }
        if self.tty {
            let now = Instant::now();
            if force
                || s.last_draw
                    .is_none_or(|t| now.duration_since(t).as_millis() >= 100)
            {
                s.last_draw = Some(now);
                let mut out = String::new();
                let width = columns();
                if s.drawn > 0 {
                    out.push_str(&format!("\x1b[{}A", s.drawn));
                }
                for l in &s.layers {
                    out.push_str("\r\x1b[2K");
                    out.push_str(&l.line(width));
                    out.push('\n');
                }
                s.drawn = s.layers.len();
                let _ = err.write_all(out.as_bytes());
            }
        }
    }

    pub fn finish(&self) {}
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_line_fits_the_terminal_it_is_drawn_on() {
        let l = Layer {
            digest: Digest::parse(&format!("sha256:{}", "ab".repeat(32))).unwrap(),
            size: 987_654_321_000,
            done: 123_456_789_000,
            phase: Phase::Downloading,
            started: Some(Instant::now() - std::time::Duration::from_secs(3)),
            finished: None,
        };
        for width in [80, 60, 40, 20, 200] {
            let line = l.line(width);
            assert!(line.len() < width, "{width} columns: {line:?}");
        }
        assert!(l.line(80).contains('['), "a bar where there is room");
        assert!(l.line(200).contains(&format!("[{}", "=".repeat(3))));
    }
}
