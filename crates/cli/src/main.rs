//! `berth`: the user CLI. Image commands so far: pull, images, rmi,
//! image inspect, image prune.

mod auth;
mod images;
mod progress;

use clap::{CommandFactory, Parser, Subcommand};
use std::path::PathBuf;

#[derive(Parser)]
#[command(
    name = "berth",
    version,
    about = "A daemonless container engine",
    long_about = "berth pulls images from any OCI registry into a content-addressed store, without a daemon; running containers from them comes next.\n\nImages are named as in Docker: `busybox` is docker.io/library/busybox:latest; `quay.io/org/app:1.2` and `127.0.0.1:5000/test/app@sha256:...` name other registries."
)]
struct Cli {
    /// Where images and their layers are stored.
    #[arg(
        long,
        global = true,
        env = "BERTH_ROOT",
        default_value = "/var/lib/berth"
    )]
    root: PathBuf,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Download an image (and its layers) from a registry.
    Pull(images::PullArgs),
    /// List the images in the store.
    Images(images::ListArgs),
    /// Remove images (by name or id).
    Rmi(images::RmiArgs),
    /// Write images to a tar archive (docker-archive or oci-archive).
    Save(images::SaveArgs),
    /// Load images from a docker-archive or oci-archive tar.
    Load(images::LoadArgs),
    /// Make a one-layer image from a root filesystem tarball (or - for stdin).
    Import {
        /// The tarball: plain, gzip or zstd.
        file: String,
        /// The image's name, NAME[:TAG].
        name: Option<String>,
    },
    /// Upload an image to a registry (same digests as in the store).
    Push(images::PushArgs),
    /// Give an image another name: berth tag SOURCE TARGET.
    Tag {
        /// The image, by name or id.
        source: String,
        /// The new name, NAME[:TAG].
        target: String,
    },
    /// Print a shell completion script: berth completion bash > /etc/bash_completion.d/berth
    Completion {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Store credentials for a registry (checked against it first).
    Login(auth::LoginArgs),
    /// Remove stored credentials for a registry.
    Logout {
        /// The registry, such as quay.io or 127.0.0.1:5000.
        registry: String,
    },
    /// Manage images.
    #[command(subcommand)]
    Image(images::ImageCmd),
}

fn main() {
    let cli = Cli::parse();
    let r = match cli.cmd {
        Cmd::Pull(a) => images::pull(&cli.root, a),
        Cmd::Images(a) => images::list(&cli.root, a),
        Cmd::Rmi(a) => images::rmi(&cli.root, a),
        Cmd::Push(a) => images::push(&cli.root, a),
        Cmd::Save(a) => images::save(&cli.root, a),
        Cmd::Load(a) => images::load(&cli.root, a),
        Cmd::Import { file, name } => images::import(&cli.root, &file, name.as_deref()),
        Cmd::Tag { source, target } => images::tag(&cli.root, &source, &target),
        Cmd::Login(a) => auth::login(a),
        Cmd::Completion { shell } => {
            clap_complete::generate(shell, &mut Cli::command(), "berth", &mut std::io::stdout());
            Ok(())
        }
        Cmd::Logout { registry } => auth::logout(&registry),
        Cmd::Image(c) => images::image(&cli.root, c),
    };
    if let Err(e) = r {
        let code = e
            .downcast_ref::<berth_image::Error>()
            .map_or(1, |e| e.exit_code());
        eprintln!("berth: {e:#}");
        std::process::exit(code);
    }
}
