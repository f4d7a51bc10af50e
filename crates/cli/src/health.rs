//! `berth healthcheck run CONTAINER`: the container's health check, now,
//! through its monitor ([`berth_engine::Engine::run_healthcheck`]).

use anyhow::Result;
use clap::Subcommand;
use std::path::Path;

#[derive(Subcommand, Debug)]
pub enum HealthcheckCmd {
    /// Run a container's health check now: exit 0 when it is healthy, 1
    /// (printing the status) when it is not.
    Run {
        /// The container, by name or id.
        container: String,
    },
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
