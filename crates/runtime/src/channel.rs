//! The one typed channel between the runtime and the processes it starts
//! (a SOCK_SEQPACKET pair): each message is one JSON datagram.

use crate::error::{Context, Error, Result};
use serde::{Deserialize, Serialize};
use std::os::fd::{AsFd, OwnedFd};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Msg {
    /// Runtime -> child: id maps are written (and, where the child cannot
    /// be placed at clone time, cgroup placement follows), go on.
    Go,
    /// Runtime -> init (cgroup v1): the init is in its cgroups now. The init
    /// sets up its mounts meanwhile and waits for this before it makes its
    /// cgroup namespace or lets hooks run.
    Placed,
    /// Stage -> runtime: I made a user namespace; write its id maps.
    NeedMaps,
    /// Stage -> runtime: the container's init has this pid.
    InitPid(i32),
    /// Init -> runtime: mounts are ready; run prestart/createRuntime hooks.
    MountsDone,
    /// Runtime -> init: hooks ran; the init's pid as the host sees it.
    HooksDone { pid: i32 },
    /// Init -> runtime, with the seccomp notify fd attached: pass it to
    /// the profile's listenerPath.
    SeccompFd,
    /// From the init, with a detached mount tree: make it idmapped as
    /// `mounts[index]` asks (`rootfs::BindTrees::set_idmap`).
    Idmap { index: usize },
    /// The runtime's answer to [`Msg::Idmap`].
    IdmapDone,
    /// Init -> runtime: open `mounts[index]`'s source, which the init may
    /// not reach, in its mount namespace (`rootfs::BindTrees::open_source`).
    Source { index: usize },
    /// The runtime's answer to [`Msg::Source`], with the source's fd.
    SourceFd,
    /// Init -> runtime: set up, waiting to be started.
    Ready,
    /// Runtime -> init (`run` only): start the user process now.
    Start,
    /// Either way: what went wrong.
    Error(String),
}

pub struct Channel {
    fd: OwnedFd,
}

const MAX_MSG: usize = 64 * 1024;

impl Channel {
    pub fn pair() -> Result<(Channel, Channel)> {
        let (a, b) = berth_sys::socket::seqpacket_pair().ctx("create the init channel")?;
        Ok((Channel { fd: a }, Channel { fd: b }))
    }

    pub fn send(&self, msg: &Msg) -> Result<()> {
        let data =
            serde_json::to_vec(msg).map_err(|e| Error::Usage(format!("encode message: {e}")))?;
        berth_sys::socket::send(self.fd.as_fd(), &data, None).ctx("send on the init channel")
    }

    /// Sends a message with an fd attached (SCM_RIGHTS).
    pub fn send_fd(&self, msg: &Msg, fd: std::os::fd::BorrowedFd<'_>) -> Result<()> {
        let data =
            serde_json::to_vec(msg).map_err(|e| Error::Usage(format!("encode message: {e}")))?;
        berth_sys::socket::send(
            self.fd.as_fd(),
            &data,
            Some(std::os::fd::AsRawFd::as_raw_fd(&fd)),
        )
        .ctx("send on the init channel")
    }

    /// Receives one message; `None` when the other side has gone.
    pub fn recv(&self) -> Result<Option<Msg>> {
        Ok(self.recv_fd()?.map(|(m, _)| m))
    }

    /// Receives one message and the fd that came with it, if any.
    pub fn recv_fd(&self) -> Result<Option<(Msg, Option<OwnedFd>)>> {
        let mut buf = vec![0u8; MAX_MSG];
        // A peer that exits with a message of ours unread makes the next
        // recv fail with ECONNRESET once; what it sent before is still
        // queued behind that error (its last words are its error report).
        let mut tries = 0;
        let (n, fd) = loop {
            match berth_sys::socket::recv(self.fd.as_fd(), &mut buf) {
                Err(e) if e.raw_os_error() == Some(libc::ECONNRESET) && tries < 3 => tries += 1,
                r => break r.ctx("receive on the init channel")?,
            }
        };
        if n == 0 {
            return Ok(None);
        }
        serde_json::from_slice(&buf[..n])
            .map(|m| Some((m, fd)))
            .map_err(|e| Error::Usage(format!("bad message on the init channel: {e}")))
    }

    /// Receives a message, treating "the other side is gone" as an error.
    pub fn expect(&self, what: &str) -> Result<Msg> {
        self.expect_fd(what).map(|(m, _)| m)
    }

    /// [`Channel::expect`], with the fd that came along, if any.
    pub fn expect_fd(&self, what: &str) -> Result<(Msg, Option<OwnedFd>)> {
        match self.recv_fd()? {
            Some((Msg::Error(e), _)) => Err(Error::Usage(e)),
            Some(m) => Ok(m),
            None => Err(Error::Usage(format!(
                "the container process exited before {what}"
            ))),
        }
    }
}
