//! `login` and `logout`: credentials in Podman's auth file format
//! (also read from Docker's config.json when pulling).

use anyhow::{bail, Context, Result};
use berth_image::registry::{self, Client, Options};
use clap::Args;
use std::io::Read;

#[derive(Args)]
pub struct LoginArgs {
    /// The registry, such as quay.io or 127.0.0.1:5000.
    pub registry: String,
    /// User name.
    #[arg(short, long)]
    pub username: String,
    /// Password (visible in the process list: prefer --password-stdin).
    #[arg(short, long, conflicts_with = "password_stdin")]
    pub password: Option<String>,
    /// Read the password from standard input.
    #[arg(long)]
    pub password_stdin: bool,
    /// Verify the registry's TLS certificate; false also allows plain HTTP.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    pub tls_verify: bool,
}

fn registry_name(r: &str) -> Result<String> {
    // Accept a full reference or URL; keep the host[:port].
    let r = r
        .trim_start_matches("https://")
        .trim_start_matches("http://");
    let host = r.split('/').next().unwrap_or(r);
    let host = match host {
        "index.docker.io" | "registry-1.docker.io" => "docker.io",
        h => h,
    };
    if host.is_empty() {
        bail!("no registry given");
    }
    Ok(host.to_string())
}

pub fn login(a: LoginArgs) -> Result<()> {
    let reg = registry_name(&a.registry)?;
    let password = match (&a.password, a.password_stdin) {
        (Some(p), _) => p.clone(),
        (None, true) => {
            let mut s = String::new();
            std::io::stdin()
                .take(64 * 1024)
                .read_to_string(&mut s)
                .context("read the password from stdin")?;
            s.trim_end_matches(['\n', '\r']).to_string()
        }
        (None, false) => bail!("berth login: give the password with --password-stdin (or -p)"),
    };
    let opts = Options {
        insecure: !a.tls_verify,
        credentials: Some((a.username.clone(), password.clone())),
    };
    // The registry must accept them before they are stored.
    Client::for_registry(&reg, &opts).ping()?;
    let f = registry::save_credentials(&reg, &a.username, &password)?;
    eprintln!("Login succeeded (credentials in {})", f.display());
    Ok(())
}

pub fn logout(r: &str) -> Result<()> {
    let reg = registry_name(r)?;
    if !registry::remove_credentials(&reg)? {
        bail!("berth logout: not logged in to {reg}");
    }
    eprintln!("Removed login credentials for {reg}");
    Ok(())
}
