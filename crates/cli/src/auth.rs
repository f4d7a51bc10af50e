//! `login` and `logout`: credentials in Podman's auth file format
//! (also read from Docker's config.json when pulling).

use anyhow::{bail, Context, Result};
use berth_engine::images;
use clap::Args;
use std::io::Read;

#[derive(Args)]
pub struct LoginArgs {
    /// The registry, such as quay.io or 127.0.0.1:5000.
    pub registry: String,
    /// User name (asked for on a terminal when not given).
    #[arg(short, long)]
    pub username: Option<String>,
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

/// Reads one line from the terminal on stdin after `prompt` (on stderr),
/// without echo when `secret`.
fn ask(prompt: &str, secret: bool) -> Result<String> {
    use std::io::{BufRead, Write};
    eprint!("{prompt}");
    let _ = std::io::stderr().flush();
    /// Puts the terminal's echo back when dropped.
    struct Echo(Option<libc::termios>);
    impl Drop for Echo {
        fn drop(&mut self) {
            if let Some(t) = &self.0 {
                // SAFETY: fd 0 and a termios read from it by tcgetattr.
                unsafe { libc::tcsetattr(0, libc::TCSANOW, t) };
                eprintln!();
            }
        }
    }
    let mut echo = Echo(None);
    if secret {
        // SAFETY: an all-zero termios is valid plain data for tcgetattr to fill.
        let mut t: libc::termios = unsafe { std::mem::zeroed() };
        // SAFETY: fd 0 is a terminal (checked by the caller); t is a valid out pointer.
        if unsafe { libc::tcgetattr(0, &mut t) } != 0 {
            return Err(std::io::Error::last_os_error()).context("read the terminal's settings");
        }
        let mut quiet = t;
        quiet.c_lflag &= !libc::ECHO;
        // SAFETY: fd 0 and a termios derived from its own settings.
        if unsafe { libc::tcsetattr(0, libc::TCSANOW, &quiet) } != 0 {
            return Err(std::io::Error::last_os_error()).context("turn the terminal's echo off");
        }
        echo.0 = Some(t);
    }
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .take(64 * 1024)
        .read_line(&mut line)
        .context("read the answer from the terminal")?;
    drop(echo);
    Ok(line.trim_end_matches(['\n', '\r']).to_string())
}

pub fn login(a: LoginArgs) -> Result<()> {
    use std::io::IsTerminal;
    let reg = images::registry_name(&a.registry)?;
    let terminal = std::io::stdin().is_terminal() && !a.password_stdin;
    let username = match &a.username {
        Some(u) => u.clone(),
        None if terminal => ask("Username: ", false)?,
        None => bail!("berth login: give the user name with -u (there is no terminal to ask on)"),
    };
    if username.is_empty() {
        bail!("berth login {reg}: the user name is empty");
    }
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
        (None, false) if terminal => ask("Password: ", true)?,
        (None, false) => bail!(
            "berth login: give the password with --password-stdin (or -p); there is no terminal to ask on"
        ),
    };
    let f = images::login(&reg, &username, &password, a.tls_verify)?;
    eprintln!("Login succeeded (credentials in {})", f.display());
    Ok(())
}

pub fn logout(r: &str) -> Result<()> {
    let reg = images::registry_name(r)?;
    if !images::logout(&reg)? {
        bail!("berth logout: not logged in to {reg}");
    }
    eprintln!("Removed login credentials for {reg}");
    Ok(())
}
