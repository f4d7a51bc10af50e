//! Unix sockets: the parent/child channel and fd passing (SCM_RIGHTS); the
//! C form of an IP socket address for the raw socket calls of the DNS
//! responder, the port checks and the monitor's held ports.

use crate::{cvt, retry};
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

/// A `SOCK_SEQPACKET` pair: message boundaries are kept, both ends CLOEXEC.
pub fn seqpacket_pair() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0; 2];
    // SAFETY: fds is a valid two-element out array.
    cvt(unsafe {
        libc::socketpair(
            libc::AF_UNIX,
            libc::SOCK_SEQPACKET | libc::SOCK_CLOEXEC,
            0,
            fds.as_mut_ptr(),
        )
    })?;
    // SAFETY: two new fds owned by us.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

/// Most fds one message carries ([`send_fds`], [`recv_fds`]).
pub const MAX_FDS: usize = 4;

/// Sends one message, with an optional fd attached.
pub fn send(sock: BorrowedFd<'_>, data: &[u8], fd: Option<RawFd>) -> io::Result<()> {
    send_fds(sock, data, fd.as_slice())
}

/// Sends one message with up to [`MAX_FDS`] fds attached (SCM_RIGHTS).
pub fn send_fds(sock: BorrowedFd<'_>, data: &[u8], fds: &[RawFd]) -> io::Result<()> {
    if fds.len() > MAX_FDS {
        return Err(io::Error::from_raw_os_error(libc::EINVAL));
    }
    let mut iov = libc::iovec {
        iov_base: data.as_ptr() as *mut libc::c_void,
        iov_len: data.len(),
    };
    // Room for MAX_FDS fds, aligned as cmsghdr needs.
    let mut cbuf = [0u64; 6];
    // SAFETY: msghdr is plain data; we fill the fields we use.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    if !fds.is_empty() {
        let bytes = std::mem::size_of_val(fds) as u32;
        // SAFETY: CMSG_SPACE is a pure size computation.
        let space = unsafe { libc::CMSG_SPACE(bytes) } as usize;
        msg.msg_control = cbuf.as_mut_ptr().cast();
        msg.msg_controllen = space;
        // SAFETY: msg_control points at a buffer of `space` bytes (<= 48 for
        // MAX_FDS fds), so the first header and its data fit.
        unsafe {
            let cmsg = libc::CMSG_FIRSTHDR(&msg);
            (*cmsg).cmsg_level = libc::SOL_SOCKET;
            (*cmsg).cmsg_type = libc::SCM_RIGHTS;
            (*cmsg).cmsg_len = libc::CMSG_LEN(bytes) as usize;
            let data = libc::CMSG_DATA(cmsg).cast::<RawFd>();
            for (i, fd) in fds.iter().enumerate() {
                std::ptr::write_unaligned(data.add(i), *fd);
            }
        }
    }
    // SAFETY: msg describes valid buffers for the duration of the call.
    retry(|| cvt(unsafe { libc::sendmsg(sock.as_raw_fd(), &msg, libc::MSG_NOSIGNAL) }))?;
    Ok(())
}

/// Receives one message (at most `buf.len()` bytes) and any fd attached.
/// Returns `(0, None)` when the peer has closed its end.
pub fn recv(sock: BorrowedFd<'_>, buf: &mut [u8]) -> io::Result<(usize, Option<OwnedFd>)> {
    let (n, mut fds) = recv_fds(sock, buf)?;
    // A sender of one fd sends one; extra fds are closed here.
    Ok((n, (!fds.is_empty()).then(|| fds.swap_remove(0))))
}

/// Receives one message (at most `buf.len()` bytes) and the fds attached
/// (up to [`MAX_FDS`], close-on-exec). Returns `(0, [])` when the peer has
/// closed its end.
pub fn recv_fds(sock: BorrowedFd<'_>, buf: &mut [u8]) -> io::Result<(usize, Vec<OwnedFd>)> {
    let mut iov = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    };
    let mut cbuf = [0u64; 6];
    // SAFETY: msghdr is plain data; we fill the fields we use.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = cbuf.as_mut_ptr().cast();
    msg.msg_controllen = std::mem::size_of_val(&cbuf);
    let n = retry(|| {
        // SAFETY: msg describes valid buffers for the duration of the call.
        cvt(unsafe { libc::recvmsg(sock.as_raw_fd(), &mut msg, libc::MSG_CMSG_CLOEXEC) })
    })?;
    let mut fds = Vec::new();
    // SAFETY: we walk the control messages the kernel wrote into cbuf; the
    // fds in an SCM_RIGHTS message are new and ours.
    unsafe {
        let mut cmsg = libc::CMSG_FIRSTHDR(&msg);
        while !cmsg.is_null() {
            if (*cmsg).cmsg_level == libc::SOL_SOCKET && (*cmsg).cmsg_type == libc::SCM_RIGHTS {
                let data = libc::CMSG_DATA(cmsg).cast::<RawFd>();
                let len = (*cmsg).cmsg_len - libc::CMSG_LEN(0) as usize;
                for i in 0..len / std::mem::size_of::<RawFd>() {
                    fds.push(OwnedFd::from_raw_fd(std::ptr::read_unaligned(data.add(i))));
                }
            }
            cmsg = libc::CMSG_NXTHDR(&msg, cmsg);
        }
    }
    if msg.msg_flags & (libc::MSG_TRUNC | libc::MSG_CTRUNC) != 0 {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "message truncated",
        ));
    }
    Ok((n as usize, fds))
}

/// Connects a `SOCK_STREAM` unix socket to `path`. Paths longer than
/// `sun_path` are reached through an `O_PATH` fd on their directory.
pub fn connect_unix(path: &std::path::Path) -> io::Result<OwnedFd> {
    use std::os::unix::ffi::OsStrExt;
    // SAFETY: plain syscall.
    let fd =
        cvt(unsafe { libc::socket(libc::AF_UNIX, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0) })?;
    // SAFETY: new fd owned by us.
    let sock = unsafe { OwnedFd::from_raw_fd(fd) };
    // SAFETY: sockaddr_un is plain data.
    let mut addr: libc::sockaddr_un = unsafe { std::mem::zeroed() };
    addr.sun_family = libc::AF_UNIX as libc::sa_family_t;
    let mut _dir_guard = None;
    let mut bytes = path.as_os_str().as_bytes().to_vec();
    if bytes.len() >= addr.sun_path.len() {
        let (dir, name) = (
            path.parent().unwrap_or(std::path::Path::new(".")),
            path.file_name().unwrap_or_default(),
        );
        let dfd = crate::fs::open(dir, libc::O_PATH | libc::O_DIRECTORY, 0)?;
        bytes = format!("/proc/self/fd/{}/", dfd.as_raw_fd()).into_bytes();
        bytes.extend_from_slice(name.as_bytes());
        _dir_guard = Some(dfd);
        if bytes.len() >= addr.sun_path.len() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "socket path too long",
            ));
        }
    }
    for (d, s) in addr.sun_path.iter_mut().zip(bytes.iter()) {
        *d = *s as libc::c_char;
    }
    let len = std::mem::size_of::<libc::sa_family_t>() + bytes.len() + 1;
    retry(|| {
        // SAFETY: addr is a valid sockaddr_un and len is within it.
        cvt(unsafe {
            libc::connect(
                sock.as_raw_fd(),
                (&addr as *const libc::sockaddr_un).cast(),
                len as libc::socklen_t,
            )
        })
    })?;
    Ok(sock)
}

/// Brings the loopback interface of the caller's network namespace up
/// (`SIOCSIFFLAGS` with `IFF_UP`), as runc does for a container with a new
/// network namespace: a fresh namespace has `lo` down, and programs that
/// talk to 127.0.0.1 expect it up.
pub fn loopback_up() -> io::Result<()> {
    // SAFETY: plain syscall; the new fd is owned below.
    let s = cvt(unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) })?;
    // SAFETY: new fd owned by us.
    let sock = unsafe { OwnedFd::from_raw_fd(s) };
    // SAFETY: ifreq is plain data; all-zero is a valid value.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    for (d, s) in req.ifr_name.iter_mut().zip(b"lo\0") {
        *d = *s as libc::c_char;
    }
    // SAFETY: SIOCGIFFLAGS reads the named interface's flags into `req`.
    cvt(unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCGIFFLAGS, &mut req) })?;
    // SAFETY: SIOCGIFFLAGS filled the flags member of the union.
    let flags = unsafe { req.ifr_ifru.ifru_flags };
    if flags & libc::IFF_UP as libc::c_short != 0 {
        return Ok(());
    }
    req.ifr_ifru.ifru_flags = flags | libc::IFF_UP as libc::c_short;
    // SAFETY: SIOCSIFFLAGS reads the name and flags from `req`.
    cvt(unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCSIFFLAGS, &req) })?;
    Ok(())
}

/// An IP socket of type `ty` (`SOCK_STREAM`, `SOCK_DGRAM`; CLOEXEC is
/// added) and `protocol` (0 for the type's default), bound to `addr`. An
/// IPv6 socket is dual-stack when `dual` (IPV6_V6ONLY off), else IPv6
/// only. `opts` are `(level, name, value)` integer options set before the
/// bind. For the engine's host-port checks and the monitor's held ports.
pub fn bind_ip(
    ty: libc::c_int,
    protocol: libc::c_int,
    addr: std::net::SocketAddr,
    dual: bool,
    opts: &[(libc::c_int, libc::c_int, libc::c_int)],
) -> io::Result<OwnedFd> {
    let family = if addr.is_ipv4() {
        libc::AF_INET
    } else {
        libc::AF_INET6
    };
    // SAFETY: socket has no memory preconditions; the result is checked.
    let raw = cvt(unsafe { libc::socket(family, ty | libc::SOCK_CLOEXEC, protocol) })?;
    // SAFETY: raw is a fresh descriptor that nothing else owns.
    let fd = unsafe { OwnedFd::from_raw_fd(raw) };
    let v6only = (
        libc::IPPROTO_IPV6,
        libc::IPV6_V6ONLY,
        libc::c_int::from(!dual),
    );
    for &(level, name, v) in addr.is_ipv6().then_some(&v6only).into_iter().chain(opts) {
        // SAFETY: v lives across the call and its size is passed.
        cvt(unsafe {
            libc::setsockopt(
                fd.as_raw_fd(),
                level,
                name,
                std::ptr::addr_of!(v).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        })?;
    }
    let (ss, len) = sockaddr(addr);
    // SAFETY: ss holds a valid sockaddr of length len.
    cvt(unsafe { libc::bind(fd.as_raw_fd(), std::ptr::addr_of!(ss).cast(), len) })?;
    Ok(fd)
}

/// `addr` as the C `sockaddr_in`/`sockaddr_in6` in a `sockaddr_storage`,
/// with its length, for bind, connect and sendto.
pub fn sockaddr(addr: std::net::SocketAddr) -> (libc::sockaddr_storage, libc::socklen_t) {
    // SAFETY: sockaddr_storage is plain data; all zeroes is a valid value.
    let mut ss: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
    let len = match addr {
        std::net::SocketAddr::V4(a) => {
            let sin = libc::sockaddr_in {
                sin_family: libc::AF_INET as libc::sa_family_t,
                sin_port: a.port().to_be(),
                sin_addr: libc::in_addr {
                    s_addr: u32::from_ne_bytes(a.ip().octets()),
                },
                sin_zero: [0; 8],
            };
            // SAFETY: sockaddr_storage is larger than and aligned for
            // sockaddr_in.
            unsafe { std::ptr::write(std::ptr::addr_of_mut!(ss).cast::<libc::sockaddr_in>(), sin) };
            std::mem::size_of::<libc::sockaddr_in>()
        }
        std::net::SocketAddr::V6(a) => {
            let sin6 = libc::sockaddr_in6 {
                sin6_family: libc::AF_INET6 as libc::sa_family_t,
                sin6_port: a.port().to_be(),
                sin6_flowinfo: a.flowinfo(),
                sin6_addr: libc::in6_addr {
                    s6_addr: a.ip().octets(),
                },
                sin6_scope_id: a.scope_id(),
            };
            // SAFETY: sockaddr_storage is larger than and aligned for
            // sockaddr_in6.
            unsafe {
                std::ptr::write(
                    std::ptr::addr_of_mut!(ss).cast::<libc::sockaddr_in6>(),
                    sin6,
                )
            };
            std::mem::size_of::<libc::sockaddr_in6>()
        }
    };
    (ss, len as libc::socklen_t)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Seek, Write};
    use std::os::fd::AsFd;

    #[test]
    fn passes_messages_and_fds() {
        let (a, b) = seqpacket_pair().unwrap();
        let mut f = tempfile::tempfile().unwrap();
        f.write_all(b"hello").unwrap();
        send(a.as_fd(), b"msg", Some(f.as_raw_fd())).unwrap();
        let mut buf = [0u8; 16];
        let (n, fd) = recv(b.as_fd(), &mut buf).unwrap();
        assert_eq!(&buf[..n], b"msg");
        let mut g = std::fs::File::from(fd.unwrap());
        g.rewind().unwrap();
        let mut s = String::new();
        g.read_to_string(&mut s).unwrap();
        assert_eq!(s, "hello");
        drop(a);
        let (n, fd) = recv(b.as_fd(), &mut buf).unwrap();
        assert_eq!((n, fd.is_none()), (0, true));
    }

    #[test]
    fn passes_several_fds_in_order() {
        let (a, b) = seqpacket_pair().unwrap();
        let files: Vec<std::fs::File> = (0..3)
            .map(|i| {
                let mut f = tempfile::tempfile().unwrap();
                write!(f, "file {i}").unwrap();
                f
            })
            .collect();
        let raw: Vec<RawFd> = files.iter().map(|f| f.as_raw_fd()).collect();
        send_fds(a.as_fd(), b"three", &raw).unwrap();
        let mut buf = [0u8; 16];
        let (n, fds) = recv_fds(b.as_fd(), &mut buf).unwrap();
        assert_eq!(&buf[..n], b"three");
        assert_eq!(fds.len(), 3);
        for (i, fd) in fds.into_iter().enumerate() {
            let mut g = std::fs::File::from(fd);
            g.rewind().unwrap();
            let mut s = String::new();
            g.read_to_string(&mut s).unwrap();
            assert_eq!(s, format!("file {i}"));
        }
        // More than MAX_FDS is refused before anything is sent.
        let many = vec![raw[0]; MAX_FDS + 1];
        assert!(send_fds(a.as_fd(), b"x", &many).is_err());
    }
}
