//! `berth system service [--time SECONDS] [URI]`: Docker's Engine API on
//! a unix socket (crates/api). Nothing here starts threads before
//! `berth_api::serve`, which starts the async runtime.

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
    /// Where to listen: unix:///PATH (default unix:///run/berth/docker.sock).
    pub uri: Option<String>,
}

/// The socket path of a `unix://` URI.
fn socket_of(uri: &str) -> Result<PathBuf> {
    match uri.strip_prefix("unix://") {
        Some(p) if p.starts_with('/') => Ok(PathBuf::from(p)),
        Some(_) => bail!("{uri}: a unix socket needs an absolute path, as unix:///run/berth/docker.sock"),
        None if uri.starts_with("tcp://") => bail!(
            "{uri}: TCP is not served yet (it will need TLS with client certificates); use a unix:// socket"
        ),
        None => bail!("{uri}: expected unix:///PATH"),
    }
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
    let socket = match &a.uri {
        Some(u) => socket_of(u)?,
        None => PathBuf::from(berth_api::server::DEFAULT_SOCKET),
    };
    let group = a.group.as_deref().map(gid_of).transpose()?;
    berth_api::serve(berth_api::Config {
        root: root.to_path_buf(),
        run_root: run_root.to_path_buf(),
        socket,
        group,
        idle: (a.time > 0).then(|| Duration::from_secs(a.time)),
    })?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn service_uris() {
        assert_eq!(
            socket_of("unix:///tmp/d.sock").unwrap(),
            PathBuf::from("/tmp/d.sock")
        );
        assert!(socket_of("unix://rel.sock").is_err());
        assert!(socket_of("tcp://0.0.0.0:2375")
            .unwrap_err()
            .to_string()
            .contains("TLS"));
        assert_eq!(gid_of("0").unwrap(), 0);
        assert_eq!(gid_of("root").unwrap(), 0);
        assert!(gid_of("no-such-group-here").is_err());
    }
}
