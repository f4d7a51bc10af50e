//! The attach stream: frames of `[kind: u8][length: u32 big-endian][bytes]`
//! in both directions, over the pipes of the client that started the
//! container or over `attach.sock`.

/// Monitor to client.
pub const STDOUT: u8 = 1;
pub const STDERR: u8 = 2;
/// The container started; the payload is its host pid in decimal.
pub const STARTED: u8 = 3;
/// The container ended for good; the payload is its exit code in decimal,
/// followed by " oom" when the kernel's OOM killer ended it.
pub const EXIT: u8 = 4;
/// The runtime failed; the payload says why.
pub const ERROR: u8 = 5;
/// The client typed the detach keys; the monitor closes it next.
pub const DETACHED: u8 = 6;
/// After EXIT or ERROR: the runtime has deleted the container (its cgroup
/// and state are gone). A client that waits for the container to be gone
/// waits for this rather than for the monitor to end.
pub const DELETED: u8 = 7;
/// The answer to [`HEALTH_RUN`]: the health status after the check
/// (`healthy`, `unhealthy`, `starting`), or `none` without a check.
pub const HEALTH: u8 = 8;
/// The answer to [`PRE_STOP_RUN`] once the preStop hook has ended: `ok`,
/// `none` (no hook, or the container does not run), or why it failed.
pub const PRE_STOP: u8 = 9;

/// Client to monitor.
pub const STDIN: u8 = 1;
/// The client's stdin ended (for the client that started the container,
/// this closes the container's stdin, as Docker's `StdinOnce` does).
pub const STDIN_CLOSE: u8 = 2;
/// The terminal's size: rows and columns, each a u16 big-endian.
pub const RESIZE: u8 = 3;
/// The starting client has removed the ended container itself: the monitor
/// skips its exit command, unless the payload is
/// [`CLEANED_RUN_EXIT_COMMAND`].
pub const CLEANED: u8 = 4;
/// CLEANED's payload when the client left work to the exit command (the
/// port elements of a removed container, whose deletion would make the
/// client's exit wait for an RCU grace period).
pub const CLEANED_RUN_EXIT_COMMAND: &[u8] = b"exit-command";

/// The starting client has finished the bundle: a monitor started with
/// `wait_go` may start the container now. (It is started early so that its
/// own start-up overlaps with the client's work; before this frame it has
/// done nothing anyone can see but listen on attach.sock.)
pub const GO: u8 = 5;

/// The monitor's configuration (`Config::to_text`), sent once, first, to a
/// monitor started ahead of its container (`berth-monitor --pre`).
pub const CONFIG: u8 = 6;

/// Run the container's health check now (`berth healthcheck run`); the
/// monitor answers with a [`HEALTH`] frame once it has the result.
pub const HEALTH_RUN: u8 = 7;

/// Run the container's preStop hook now (`berth stop`, before the stop
/// signal); the monitor answers with a [`PRE_STOP`] frame when it ends.
pub const PRE_STOP_RUN: u8 = 8;

/// Frames larger than this are a protocol error.
pub const MAX_PAYLOAD: usize = 1 << 20;

pub fn encode(kind: u8, payload: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(5 + payload.len());
    push(&mut v, kind, payload);
    v
}

pub fn push(out: &mut Vec<u8>, kind: u8, payload: &[u8]) {
    out.push(kind);
    out.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    out.extend_from_slice(payload);
}

/// Collects bytes and yields whole frames.
#[derive(Default)]
pub struct Decoder {
    buf: Vec<u8>,
}

impl Decoder {
    pub fn feed(&mut self, data: &[u8]) {
        self.buf.extend_from_slice(data);
    }

    /// The next whole frame, `Ok(None)` if more bytes are needed, or an
    /// error for a frame over `MAX_PAYLOAD`.
    pub fn next_frame(&mut self) -> Result<Option<(u8, Vec<u8>)>, String> {
        if self.buf.len() < 5 {
            return Ok(None);
        }
        let len = u32::from_be_bytes([self.buf[1], self.buf[2], self.buf[3], self.buf[4]]) as usize;
        if len > MAX_PAYLOAD {
            return Err(format!("attach frame of {len} bytes is over the limit"));
        }
        if self.buf.len() < 5 + len {
            return Ok(None);
        }
        let kind = self.buf[0];
        let payload = self.buf[5..5 + len].to_vec();
        self.buf.drain(..5 + len);
        Ok(Some((kind, payload)))
    }

    /// Bytes held that do not yet make a frame.
    pub fn pending(&self) -> usize {
        self.buf.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_across_reads() {
        let mut bytes = encode(STDOUT, b"hello");
        bytes.extend(encode(EXIT, b"0"));
        let mut d = Decoder::default();
        for b in &bytes {
            d.feed(std::slice::from_ref(b));
        }
        assert_eq!(d.next_frame().unwrap(), Some((STDOUT, b"hello".to_vec())));
        assert_eq!(d.next_frame().unwrap(), Some((EXIT, b"0".to_vec())));
        assert_eq!(d.next_frame().unwrap(), None);
        assert_eq!(d.pending(), 0);
        d.feed(&[1, 0xff, 0xff, 0xff, 0xff]);
        assert!(d.next_frame().is_err());
    }
}
