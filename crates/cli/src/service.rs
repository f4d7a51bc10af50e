//! `berth system service [--time SECONDS] [URI]`: Docker's Engine API on
//! a unix socket, or on TCP with TLS and client certificates (crates/api).
//! Nothing here starts threads before `berth_api::serve`, which starts the
//! async runtime.

use anyhow::{bail, Context, Result};
use clap::Args;
use std::path::{Path, PathBuf};
use std::time::Duration;

#[derive(Args, Debug)]
pub struct ServiceArgs {
    /// Exit after this many seconds without a client (0: never).
    #[arg(short = 't', long = "time", default_value_t = 5)]
    pub time: u64,
    /// The group allowed to use the socket (root only otherwise).
    #[arg(long)]
    pub group: Option<String>,
    /// TCP: the CA that signed the clients' certificates (PEM).
    #[arg(long, value_name = "FILE")]
    pub tlscacert: Option<PathBuf>,
    /// TCP: the service's certificate chain (PEM).
    #[arg(long, value_name = "FILE")]
    pub tlscert: Option<PathBuf>,
    /// TCP: the service's private key (PEM).
    #[arg(long, value_name = "FILE")]
    pub tlskey: Option<PathBuf>,
    /// Accepted for Docker's command lines: TCP always verifies clients.
    #[arg(long)]
    pub tlsverify: bool,
    /// Where to listen: unix:///PATH (default unix:///run/berth/docker.sock),
    /// or tcp://ADDR:PORT with --tlscacert, --tlscert and --tlskey.
    pub uri: Option<String>,
}

/// Where a URI and the TLS flags say to listen.
fn listen_of(a: &ServiceArgs) -> Result<berth_api::Listen> {
    let uri = a
        .uri
        .clone()
        .unwrap_or_else(|| format!("unix://{}", berth_api::server::DEFAULT_SOCKET));
    let tls = [&a.tlscacert, &a.tlscert, &a.tlskey];
    if let Some(rest) = uri.strip_prefix("tcp://") {
        let (Some(ca), Some(cert), Some(key)) = (&a.tlscacert, &a.tlscert, &a.tlskey) else {
            bail!(
                "{uri}: TCP is served only with TLS and client certificates: \
                 give --tlscacert, --tlscert and --tlskey (or use a unix:// socket)"
            );
        };
        if a.group.is_some() {
            bail!("{uri}: --group applies to a unix socket only; TCP clients are the CA's");
        }
        let addr = addr_of(rest).with_context(|| {
            format!("{uri}: expected tcp://ADDRESS:PORT, as tcp://127.0.0.1:2376")
        })?;
        return Ok(berth_api::Listen::Tcp {
            addr,
            tls: berth_api::TlsFiles {
                ca: ca.clone(),
                cert: cert.clone(),
                key: key.clone(),
            },
        });
    }
    if tls.iter().any(|f| f.is_some()) || a.tlsverify {
        bail!("{uri}: --tlsverify, --tlscacert, --tlscert and --tlskey apply to tcp:// only");
    }
    let path = match uri.strip_prefix("unix://") {
        Some(p) if p.starts_with('/') => PathBuf::from(p),
        Some(_) => {
            bail!("{uri}: a unix socket needs an absolute path, as unix:///run/berth/docker.sock")
        }
        None => bail!("{uri}: expected unix:///PATH or tcp://ADDRESS:PORT"),
    };
    let group = a.group.as_deref().map(gid_of).transpose()?;
    Ok(berth_api::Listen::Unix { path, group })
}

/// The address of `ADDR:PORT` (an IPv6 address in brackets); a name is
/// resolved once, here.
fn addr_of(s: &str) -> Result<std::net::SocketAddr> {
    use std::net::ToSocketAddrs;
    let s = s.trim_end_matches('/');
    if let Ok(a) = s.parse() {
        return Ok(a);
    }
    s.to_socket_addrs()?
        .next()
        .context("the name has no address")
}

/// The gid of group `name` (or a number), from /etc/group.
fn gid_of(name: &str) -> Result<u32> {
    if let Ok(n) = name.parse() {
        return Ok(n);
    }
    let text = std::fs::read_to_string("/etc/group").context("read /etc/group")?;
    text.lines()
        .filter_map(|l| {
            let mut f = l.split(':');
            let n = f.next()?;
            let gid = f.nth(1)?.parse().ok()?;
            (n == name).then_some(gid)
        })
        .next()
        .with_context(|| format!("--group {name}: no such group in /etc/group"))
}

pub fn run(root: &Path, run_root: &Path, a: ServiceArgs) -> Result<()> {
    let listen = listen_of(&a)?;
    berth_api::serve(berth_api::Config {
        root: root.to_path_buf(),
        run_root: run_root.to_path_buf(),
        listen,
        idle: (a.time > 0).then(|| Duration::from_secs(a.time)),
    })?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(uri: &str, tls: bool) -> ServiceArgs {
        let f = |n: &str| tls.then(|| PathBuf::from(n));
        ServiceArgs {
            time: 0,
            group: None,
            tlscacert: f("/ca.pem"),
            tlscert: f("/cert.pem"),
            tlskey: f("/key.pem"),
            tlsverify: false,
            uri: Some(uri.into()),
        }
    }

    #[test]
    fn service_uris() {
        match listen_of(&args("unix:///tmp/d.sock", false)).unwrap() {
            berth_api::Listen::Unix { path, group } => {
                assert_eq!(path, PathBuf::from("/tmp/d.sock"));
                assert_eq!(group, None);
            }
            l => panic!("{l:?}"),
        }
        assert!(listen_of(&args("unix://rel.sock", false)).is_err());
        let e = listen_of(&args("tcp://0.0.0.0:2376", false))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("only with TLS") && e.contains("--tlscacert"),
            "{e}"
        );
        match listen_of(&args("tcp://127.0.0.1:2376", true)).unwrap() {
            berth_api::Listen::Tcp { addr, tls } => {
                assert_eq!(addr.to_string(), "127.0.0.1:2376");
                assert_eq!(tls.key, PathBuf::from("/key.pem"));
            }
            l => panic!("{l:?}"),
        }
        match listen_of(&args("tcp://[::1]:2376", true)).unwrap() {
            berth_api::Listen::Tcp { addr, .. } => assert_eq!(addr.to_string(), "[::1]:2376"),
            l => panic!("{l:?}"),
        }
        assert!(listen_of(&args("tcp://127.0.0.1", true)).is_err());
        let e = listen_of(&args("unix:///tmp/d.sock", true))
            .unwrap_err()
            .to_string();
        assert!(e.contains("tcp:// only"), "{e}");
        assert!(listen_of(&args("http://x", false)).is_err());
        assert_eq!(gid_of("0").unwrap(), 0);
        assert_eq!(gid_of("root").unwrap(), 0);
        assert!(gid_of("no-such-group-here").is_err());
    }
}
