//! `berth healthcheck run CONTAINER`: the container's health check, now,
//! through its monitor ([`berth_engine::Engine::run_healthcheck`]).

use anyhow::Result;
use clap::Subcommand;
use std::path::Path;

#[derive(Subcommand, Debug)]
#[command(defer = true)]
pub enum HealthcheckCmd {
    /// Run a container's health check now: exit 0 when it is healthy, 1
    /// (printing the status) when it is not.
    Run {
        /// The container, by name or id.
        container: String,
    },
}

/// `berth container probe`: the monitor's helper for the probes it does
/// not speak itself; the connected socket is stdin.
#[derive(Subcommand, Debug)]
#[command(defer = true)]
pub enum ProbeCmd {
    /// An HTTPS GET (the certificate is not verified, as by the kubelet).
    Https {
        #[arg(long, default_value = "/")]
        path: String,
        /// `NAME:VALUE`, repeated.
        #[arg(long = "header")]
        headers: Vec<String>,
    },
    /// grpc.health.v1.Health/Check over HTTP/2 (no TLS).
    Grpc {
        #[arg(long, default_value = "")]
        service: String,
    },
}

/// Runs the probe, prints its one line for the health log, and exits 0
/// when it passes, 1 when it fails.
pub fn probe(c: ProbeCmd) -> Result<()> {
    use berth_api::probe;
    // SAFETY: fd 0 is this process's stdin, taken once, here; nothing
    // else in this process uses it.
    let fd = unsafe { <std::os::fd::OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(0) };
    let outcome = probe::drop_privileges()
        .and_then(|_| probe::connected(fd))
        .and_then(|(sock, peer)| match &c {
            ProbeCmd::Https { path, headers } => {
                let headers: Vec<(String, String)> = headers
                    .iter()
                    .map(|h| {
                        let (k, v) = h.split_once(':').unwrap_or((h, ""));
                        (k.to_string(), v.to_string())
                    })
                    .collect();
                probe::https(sock, peer, path, &headers)
            }
            ProbeCmd::Grpc { service } => probe::grpc(sock, peer, service),
        });
    match outcome {
        Ok(line) => {
            println!("{line}");
            Ok(())
        }
        Err(line) => {
            println!("{line}");
            Err(crate::containers::ExitCode(1).into())
        }
    }
}

/// `berth container health-event ID STATUS`, run by the monitor when the
/// health status changes.
pub fn health_event(root: &Path, run_root: &Path, id: &str, status: &str) -> Result<()> {
    let engine = crate::containers::open(root, run_root)?;
    engine.record_health_event(id, status)?;
    Ok(())
}

pub fn healthcheck(root: &Path, run_root: &Path, c: HealthcheckCmd) -> Result<()> {
    match c {
        HealthcheckCmd::Run { container } => {
            let engine = crate::containers::open(root, run_root)?;
            let status = engine.run_healthcheck(&container)?;
            // podman's: nothing when healthy; the status and 1 otherwise.
            if status != "healthy" {
                println!("{status}");
                return Err(crate::containers::ExitCode(1).into());
            }
            Ok(())
        }
    }
}
