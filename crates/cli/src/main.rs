//! `berth`: the user CLI. Image commands (`images.rs`), container commands
//! (`containers.rs`, `views.rs`, `manage.rs`) over `berth-engine`.

mod auth;
mod containers;
mod images;
mod manage;
mod progress;
mod views;

use clap::{CommandFactory, Parser, Subcommand};
use std::path::PathBuf;

#[derive(Parser)]
#[command(
    name = "berth",
    version,
    about = "A daemonless container engine",
    long_about = "berth pulls images from any OCI registry into a content-addressed store and runs containers from them, without a daemon: each running container has a small monitor process of its own (berth-monitor), and an OCI runtime (berth-runtime by default; runc or crun with --runtime) makes it.\n\nImages are named as in Docker: `busybox` is docker.io/library/busybox:latest; `quay.io/org/app:1.2` and `127.0.0.1:5000/test/app@sha256:...` name other registries. Containers are named by name, full id or a unique id prefix."
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
    /// Where running containers keep their sockets and live state (a tmpfs).
    #[arg(
        long,
        global = true,
        env = "BERTH_RUN_ROOT",
        default_value = "/run/berth"
    )]
    run_root: PathBuf,
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
    /// Create a container and start it (pulling the image if needed).
    #[command(
        disable_help_flag = true,
        after_help = "Examples:\n  berth run --rm -it alpine sh                     a shell, removed on exit\n  berth run -d --name web -m 256m -v data:/srv IMAGE   in the background, with a limit and a volume\n  echo hi | berth run --rm -i busybox cat          stdin into the container\n  berth run --rm --init --stop-timeout 30 IMAGE    an init that reaps zombies and forwards signals\n\nExit status: the container's (128+N for signal N); 125 when berth fails, 126 when the command cannot run, 127 when it is not found."
    )]
    Run(containers::RunArgs),
    /// Create a container without starting it; prints its id.
    #[command(disable_help_flag = true)]
    Create(containers::CreateArgs),
    /// Start created or stopped containers.
    Start(containers::StartArgs),
    /// Stop containers: the stop signal, then SIGKILL after the timeout.
    Stop(containers::StopArgs),
    /// Stop and start containers again.
    Restart(containers::StopArgs),
    /// Send a signal to containers (default SIGKILL).
    Kill(containers::KillArgs),
    /// Remove containers (with --force, running ones too).
    Rm(containers::RmArgs),
    /// List containers (running ones; -a for all).
    Ps(views::PsArgs),
    /// Print a container's logs.
    Logs(views::LogsArgs),
    /// Wait for containers to stop; prints their exit codes.
    Wait(containers::WaitArgs),
    /// Show containers' details as Docker-compatible JSON.
    Inspect(views::InspectArgs),
    /// Run a command in a running container.
    Exec(containers::ExecArgs),
    /// Attach to a running container's output (and stdin, if it was started with -i).
    Attach(containers::AttachArgs),
    /// Rename a container.
    Rename { container: String, name: String },
    /// Show a container's processes.
    Top { container: String },
    /// Show containers' CPU, memory, I/O and process counts.
    Stats(manage::StatsArgs),
    /// Copy files between a container and the host: berth cp CTR:/path /host/path (or the reverse).
    Cp(manage::CpArgs),
    /// Show what a container changed in its image (A added, C changed, D deleted).
    Diff { container: String },
    /// Manage volumes.
    #[command(subcommand)]
    Volume(manage::VolumeCmd),
    /// Prune and report disk use.
    #[command(subcommand)]
    System(manage::SystemCmd),
    /// Manage containers.
    #[command(subcommand)]
    Container(ContainerCmd),
}

#[derive(Subcommand)]
enum ContainerCmd {
    /// Record a container's end and release what it held (run by its monitor).
    #[command(hide = true)]
    Cleanup { id: String },
    /// List containers.
    #[command(alias = "ls", alias = "list")]
    Ps(views::PsArgs),
    /// Show containers' details.
    Inspect(views::InspectArgs),
    /// Remove containers.
    Rm(containers::RmArgs),
}

/// The command word of the command line, found before clap parses it (a
/// millisecond sooner): the global options each take a value.
fn command_word() -> Option<String> {
    let mut args = std::env::args_os().skip(1);
    while let Some(a) = args.next() {
        match a.to_str()? {
            "--root" | "--run-root" => {
                args.next();
            }
            "--" => return None,
            s if s.starts_with('-') => {}
            s => return Some(s.to_string()),
        }
    }
    None
}

fn main() {
    // The commands that start containers; see warm_up_cgroups. Any other
    // word (or a word clap then rejects) only costs a no-op move.
    if matches!(
        command_word().as_deref(),
        Some("run" | "start" | "restart" | "exec")
    ) {
        berth_engine::warm_up_cgroups();
    }
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
        Cmd::Run(a) => containers::run(&cli.root, &cli.run_root, a),
        Cmd::Create(a) => containers::create(&cli.root, &cli.run_root, a),
        Cmd::Start(a) => containers::start(&cli.root, &cli.run_root, a),
        Cmd::Stop(a) => containers::stop(&cli.root, &cli.run_root, a),
        Cmd::Restart(a) => containers::restart(&cli.root, &cli.run_root, a),
        Cmd::Kill(a) => containers::kill(&cli.root, &cli.run_root, a),
        Cmd::Rm(a) => containers::rm(&cli.root, &cli.run_root, a),
        Cmd::Ps(a) => views::ps(&cli.root, &cli.run_root, a),
        Cmd::Logs(a) => views::logs(&cli.root, &cli.run_root, a),
        Cmd::Wait(a) => containers::wait(&cli.root, &cli.run_root, a),
        Cmd::Inspect(a) => views::inspect(&cli.root, &cli.run_root, a),
        Cmd::Exec(a) => containers::exec(&cli.root, &cli.run_root, a),
        Cmd::Attach(a) => containers::attach(&cli.root, &cli.run_root, a),
        Cmd::Rename { container, name } => {
            manage::rename(&cli.root, &cli.run_root, &container, &name)
        }
        Cmd::Top { container } => manage::top(&cli.root, &cli.run_root, &container),
        Cmd::Stats(a) => manage::stats(&cli.root, &cli.run_root, a),
        Cmd::Cp(a) => manage::cp(&cli.root, &cli.run_root, a),
        Cmd::Diff { container } => manage::diff(&cli.root, &cli.run_root, &container),
        Cmd::Volume(c) => manage::volume(&cli.root, &cli.run_root, c),
        Cmd::System(c) => manage::system(&cli.root, &cli.run_root, c),
        Cmd::Container(c) => match c {
            ContainerCmd::Cleanup { id } => containers::cleanup(&cli.root, &cli.run_root, &id),
            ContainerCmd::Ps(a) => views::ps(&cli.root, &cli.run_root, a),
            ContainerCmd::Inspect(a) => views::inspect(&cli.root, &cli.run_root, a),
            ContainerCmd::Rm(a) => containers::rm(&cli.root, &cli.run_root, a),
        },
    };
    if let Err(e) = r {
        if let Some(c) = e.downcast_ref::<containers::ExitCode>() {
            std::process::exit(c.0);
        }
        let code = if let Some(r) = e.downcast_ref::<containers::RunError>() {
            r.code
        } else if let Some(i) = e.downcast_ref::<berth_image::Error>() {
            i.exit_code()
        } else {
            e.downcast_ref::<berth_engine::Error>()
                .map_or(1, |e| e.exit_code())
        };
        eprintln!("berth: {e:#}");
        std::process::exit(code);
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_command_line_is_well_formed() {
        use clap::CommandFactory;
        super::Cli::command().debug_assert();
    }
}
