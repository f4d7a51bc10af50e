//! `berth`: the user CLI. Image commands (`images.rs`), container commands
//! (`containers.rs`, `views.rs`, `manage.rs`) over `berth-engine`.

mod auth;
mod build;
mod commit;
mod containers;
mod escape;
mod format;
mod health;
mod images;
mod interrupt;
mod kube;
mod manage;
mod network;
mod output;
mod pod;
mod progress;
mod service;
mod verbs;
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
    #[command(flatten)]
    globals: Globals,
    #[command(subcommand)]
    cmd: Cmd,
}

/// The options every command takes.
#[derive(clap::Args, Debug)]
struct Globals {
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
}

#[derive(Subcommand)]
#[command(defer = true)]
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
        /// A Dockerfile instruction for the image's config (as commit's --change; repeatable).
        #[arg(short, long = "change")]
        change: Vec<String>,
        /// A comment for the image's history.
        #[arg(short, long)]
        message: Option<String>,
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
    /// Show a container's processes: berth top CTR [ps OPTIONS] (such as -ef or aux).
    Top(TopArgs),
    /// Show containers' CPU, memory, I/O and process counts.
    Stats(manage::StatsArgs),
    /// Copy files between a container and the host: berth cp CTR:/path /host/path (or the reverse).
    ///
    /// With - instead of the host path, a tar stream: `berth cp CTR:/etc - | tar -t`
    /// writes one, `tar -c . | berth cp - CTR:/dir` extracts one into an existing directory.
    /// Links in the container are never followed out of it.
    Cp(manage::CpArgs),
    /// Show what a container changed in its image (A added, C changed, D deleted).
    Diff { container: String },
    /// Manage volumes.
    #[command(subcommand)]
    Volume(manage::VolumeCmd),
    /// Manage bridge networks (containers on one find each other by name).
    #[command(subcommand)]
    Network(network::NetworkCmd),
    /// Manage pods (containers sharing a network, IPC, host name and cgroup).
    #[command(subcommand)]
    Pod(pod::PodCmd),
    /// Play Kubernetes YAML (Pods, Deployments, Services, ...) as pods.
    #[command(subcommand)]
    Kube(kube::KubeCmd),
    /// Prune and report disk use.
    #[command(subcommand)]
    System(manage::SystemCmd),
    /// Manage containers.
    #[command(subcommand)]
    Container(ContainerCmd),
    /// Freeze every process of running containers.
    Pause(verbs::ContainersArgs),
    /// Thaw paused containers.
    Unpause(verbs::ContainersArgs),
    /// Change running (or stopped) containers' resource limits and restart policy.
    Update(verbs::UpdateArgs),
    /// List a running container's published ports: berth port CTR [PORT[/PROTO]].
    Port(verbs::PortArgs),
    /// Show what happens to containers, images and volumes, as it happens.
    Events(verbs::EventsArgs),
    /// Show the engine's setup: versions, store, cgroups, runtime, counts.
    Info(verbs::FormatArgs),
    /// Show berth's version, the compiler's and the git commit.
    Version(verbs::FormatArgs),
    /// Make a new image of a container's changes: berth commit [-c 'CMD ["app"]'] CTR [IMAGE[:TAG]].
    Commit(commit::CommitArgs),
    /// Write a container's whole filesystem as a tar: berth export CTR > rootfs.tar.
    Export(commit::ExportArgs),
    /// Run containers' health checks by hand.
    #[command(subcommand)]
    Healthcheck(health::HealthcheckCmd),
    /// Build an image from a Dockerfile: berth build -t app .
    Build(build::BuildArgs),
    /// Manage the build cache.
    #[command(subcommand)]
    Builder(build::BuilderCmd),
}

// `top`'s arguments (no doc comment: it would become the command's
// description, see `deferred_arguments_keep_each_commands_description`).
#[derive(clap::Args, Debug)]
struct TopArgs {
    /// The container, by name or id.
    container: String,
    /// Options for the host's ps (its output is kept to the container's processes).
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    ps_options: Vec<String>,
}

/// `berth container VERB`: each the same as `berth VERB`.
#[derive(Subcommand)]
#[command(defer = true)]
enum ContainerCmd {
    /// Record a container's end and release what it held (run by its monitor).
    #[command(hide = true)]
    Cleanup { id: String },
    /// Run a prepared detached exec and record its end (run by `exec -d`).
    #[command(hide = true)]
    ExecWait { id: String, tag: String },
    /// Record a health status change (run by the container's monitor).
    #[command(hide = true)]
    HealthEvent { id: String, status: String },
    /// Run an HTTPS or gRPC probe on the connected socket on stdin (run by
    /// the container's monitor).
    #[command(hide = true, subcommand)]
    Probe(health::ProbeCmd),
    /// List containers.
    #[command(alias = "ls", alias = "list")]
    Ps(views::PsArgs),
    /// Create a container and start it.
    #[command(disable_help_flag = true)]
    Run(containers::RunArgs),
    /// Create a container without starting it.
    #[command(disable_help_flag = true)]
    Create(containers::CreateArgs),
    /// Start containers.
    Start(containers::StartArgs),
    /// Stop containers.
    Stop(containers::StopArgs),
    /// Stop and start containers again.
    Restart(containers::StopArgs),
    /// Send a signal to containers.
    Kill(containers::KillArgs),
    /// Remove containers.
    Rm(containers::RmArgs),
    /// Remove every stopped container.
    Prune {
        /// Do not ask for confirmation.
        #[arg(short = 'f', long)]
        force: bool,
    },
    /// Show containers' details.
    Inspect(views::InspectArgs),
    /// Print a container's logs.
    Logs(views::LogsArgs),
    /// Run a command in a running container.
    Exec(containers::ExecArgs),
    /// Attach to a running container.
    Attach(containers::AttachArgs),
    /// Copy files between a container and the host.
    Cp(manage::CpArgs),
    /// Show what a container changed in its image.
    Diff { container: String },
    /// Show a container's processes.
    Top(TopArgs),
    /// Show containers' resource use.
    Stats(manage::StatsArgs),
    /// Rename a container.
    Rename { container: String, name: String },
    /// Wait for containers to stop.
    Wait(containers::WaitArgs),
    /// Freeze containers.
    Pause(verbs::ContainersArgs),
    /// Thaw containers.
    Unpause(verbs::ContainersArgs),
    /// Change containers' resource limits.
    Update(verbs::UpdateArgs),
    /// List a container's published ports (none until networks land).
    Port(verbs::PortArgs),
    /// Make a new image of a container's changes.
    Commit(commit::CommitArgs),
    /// Write a container's filesystem as a tar.
    Export(commit::ExportArgs),
}

/// Where a `container` subcommand goes.
enum Routed {
    /// To the top-level command of the same name.
    Same(Box<Cmd>),
    Cleanup(String),
    ExecWait(String, String),
    HealthEvent(String, String),
    Probe(health::ProbeCmd),
    /// `container prune` (-f).
    Prune(bool),
}

impl ContainerCmd {
    fn into_cmd(self) -> Routed {
        Routed::Same(Box::new(match self {
            ContainerCmd::Ps(a) => Cmd::Ps(a),
            ContainerCmd::Run(a) => Cmd::Run(a),
            ContainerCmd::Create(a) => Cmd::Create(a),
            ContainerCmd::Start(a) => Cmd::Start(a),
            ContainerCmd::Stop(a) => Cmd::Stop(a),
            ContainerCmd::Restart(a) => Cmd::Restart(a),
            ContainerCmd::Kill(a) => Cmd::Kill(a),
            ContainerCmd::Rm(a) => Cmd::Rm(a),
            ContainerCmd::Inspect(a) => Cmd::Inspect(a),
            ContainerCmd::Logs(a) => Cmd::Logs(a),
            ContainerCmd::Exec(a) => Cmd::Exec(a),
            ContainerCmd::Attach(a) => Cmd::Attach(a),
            ContainerCmd::Cp(a) => Cmd::Cp(a),
            ContainerCmd::Diff { container } => Cmd::Diff { container },
            ContainerCmd::Top(a) => Cmd::Top(a),
            ContainerCmd::Stats(a) => Cmd::Stats(a),
            ContainerCmd::Rename { container, name } => Cmd::Rename { container, name },
            ContainerCmd::Wait(a) => Cmd::Wait(a),
            ContainerCmd::Pause(a) => Cmd::Pause(a),
            ContainerCmd::Unpause(a) => Cmd::Unpause(a),
            ContainerCmd::Update(a) => Cmd::Update(a),
            ContainerCmd::Port(a) => Cmd::Port(a),
            ContainerCmd::Commit(a) => Cmd::Commit(a),
            ContainerCmd::Export(a) => Cmd::Export(a),
            ContainerCmd::Cleanup { id } => return Routed::Cleanup(id),
            ContainerCmd::ExecWait { id, tag } => return Routed::ExecWait(id, tag),
            ContainerCmd::HealthEvent { id, status } => return Routed::HealthEvent(id, status),
            ContainerCmd::Probe(c) => return Routed::Probe(c),
            ContainerCmd::Prune { force } => return Routed::Prune(force),
        }))
    }
}

/// Parses the command line. The commands whose start-up time counts most
/// (`run`, `exec`, `start`) are first parsed by a command that knows only
/// the global options and that command's: building clap's whole command
/// tree (every command's every option) takes half a millisecond. Anything
/// that parse does not accept as it is (`--help`, an error, another
/// command) goes to the whole tree, so what users see is the same.
fn parse(args: &[std::ffi::OsString], word: Option<&str>) -> (Globals, Cmd) {
    if let Some(parsed) = parse_fast(args, word) {
        return parsed;
    }
    let cli = Cli::parse_from(args);
    (cli.globals, cli.cmd)
}

/// The fast parse for command `word`, if it has one and accepts `args`.
fn parse_fast(args: &[std::ffi::OsString], word: Option<&str>) -> Option<(Globals, Cmd)> {
    match word {
        Some("run") => parse_one(args, "run", true, Cmd::Run),
        Some("exec") => parse_one(args, "exec", false, Cmd::Exec),
        Some("start") => parse_one(args, "start", false, Cmd::Start),
        Some("stop") => parse_one(args, "stop", false, Cmd::Stop),
        Some("rm") => parse_one(args, "rm", false, Cmd::Rm),
        Some("kill") => parse_one(args, "kill", false, Cmd::Kill),
        Some("ps") => parse_one(args, "ps", false, Cmd::Ps),
        Some("inspect") => parse_one(args, "inspect", false, Cmd::Inspect),
        Some("logs") => parse_one(args, "logs", false, Cmd::Logs),
        Some("wait") => parse_one(args, "wait", false, Cmd::Wait),
        Some("network") => parse_group(args, "network", Cmd::Network),
        Some("pod") => parse_group(args, "pod", Cmd::Pod),
        Some("volume") => parse_group(args, "volume", Cmd::Volume),
        _ => None,
    }
}

/// [`parse_one`] for a command that has subcommands (`network create`).
fn parse_group<T: clap::Subcommand + clap::FromArgMatches>(
    args: &[std::ffi::OsString],
    name: &'static str,
    wrap: fn(T) -> Cmd,
) -> Option<(Globals, Cmd)> {
    let sub = T::augment_subcommands(clap::Command::new(name)).subcommand_required(true);
    parse_sub(args, sub, wrap)
}

/// `args` parsed as the global options and command `name` alone (whose
/// variant in [`Cmd`] is `wrap`; `no_help`: the variant disables clap's help
/// flag, as `run`'s does for -h).
fn parse_one<T: clap::Args + clap::FromArgMatches>(
    args: &[std::ffi::OsString],
    name: &'static str,
    no_help: bool,
    wrap: fn(T) -> Cmd,
) -> Option<(Globals, Cmd)> {
    let sub = T::augment_args(clap::Command::new(name).disable_help_flag(no_help));
    parse_sub(args, sub, wrap)
}

/// `args` parsed by a command of the global options and `sub` alone.
fn parse_sub<T: clap::FromArgMatches>(
    args: &[std::ffi::OsString],
    sub: clap::Command,
    wrap: fn(T) -> Cmd,
) -> Option<(Globals, Cmd)> {
    use clap::{Args, FromArgMatches};
    let name = sub.get_name().to_string();
    let m = Globals::augment_args(clap::Command::new("berth"))
        .subcommand(sub)
        .try_get_matches_from(args)
        .ok()?;
    let g = Globals::from_arg_matches(&m).ok()?;
    let a = T::from_arg_matches(m.subcommand_matches(&name)?).ok()?;
    Some((g, wrap(a)))
}

/// The command word of the command line (after the program name), found
/// before clap parses it: the global options each take a value.
fn command_word(args: &[std::ffi::OsString]) -> Option<&str> {
    let mut args = args.iter().skip(1);
    while let Some(a) = args.next() {
        match a.to_str()? {
            "--root" | "--run-root" => {
                args.next();
            }
            "--" => return None,
            s if s.starts_with('-') => {}
            s => return Some(s),
        }
    }
    None
}

/// Runs one command.
fn dispatch(root: &std::path::Path, run_root: &std::path::Path, cmd: Cmd) -> anyhow::Result<()> {
    match cmd {
        Cmd::Pull(a) => images::pull(root, a),
        Cmd::Images(a) => images::list(root, a),
        Cmd::Rmi(a) => images::rmi(root, a),
        Cmd::Push(a) => images::push(root, a),
        Cmd::Save(a) => images::save(root, a),
        Cmd::Load(a) => images::load(root, a),
        Cmd::Import {
            file,
            name,
            change,
            message,
        } => images::import(root, &file, name.as_deref(), &change, message.as_deref()),
        Cmd::Tag { source, target } => images::tag(root, &source, &target),
        Cmd::Login(a) => auth::login(a),
        Cmd::Completion { shell } => {
            clap_complete::generate(shell, &mut Cli::command(), "berth", &mut std::io::stdout());
            Ok(())
        }
        Cmd::Logout { registry } => auth::logout(&registry),
        Cmd::Image(images::ImageCmd::Build(a)) => build::build(root, run_root, *a),
        Cmd::Image(c) => images::image(root, c),
        Cmd::Run(a) => containers::run(root, run_root, a),
        Cmd::Create(a) => containers::create(root, run_root, a),
        Cmd::Start(a) => containers::start(root, run_root, a),
        Cmd::Stop(a) => containers::stop(root, run_root, a),
        Cmd::Restart(a) => containers::restart(root, run_root, a),
        Cmd::Kill(a) => containers::kill(root, run_root, a),
        Cmd::Rm(a) => containers::rm(root, run_root, a),
        Cmd::Ps(a) => views::ps(root, run_root, a),
        Cmd::Logs(a) => views::logs(root, run_root, a),
        Cmd::Wait(a) => containers::wait(root, run_root, a),
        Cmd::Inspect(a) => views::inspect(root, run_root, a),
        Cmd::Exec(a) => containers::exec(root, run_root, a),
        Cmd::Attach(a) => containers::attach(root, run_root, a),
        Cmd::Rename { container, name } => manage::rename(root, run_root, &container, &name),
        Cmd::Top(a) if a.ps_options.is_empty() => manage::top(root, run_root, &a.container),
        Cmd::Top(a) => manage::top_ps(root, run_root, &a.container, &a.ps_options),
        Cmd::Stats(a) => manage::stats(root, run_root, a),
        Cmd::Cp(a) => manage::cp(root, run_root, a),
        Cmd::Diff { container } => manage::diff(root, run_root, &container),
        Cmd::Volume(c) => manage::volume(root, run_root, c),
        Cmd::Network(c) => network::network(root, run_root, c),
        Cmd::Pod(c) => pod::pod(root, run_root, c),
        Cmd::Kube(c) => kube::kube(root, run_root, c),
        Cmd::System(c) => manage::system(root, run_root, c),
        Cmd::Container(c) => match c.into_cmd() {
            Routed::Same(cmd) => dispatch(root, run_root, *cmd),
            Routed::Cleanup(id) => containers::cleanup(root, run_root, &id),
            Routed::ExecWait(id, tag) => containers::exec_wait(root, run_root, &id, &tag),
            Routed::HealthEvent(id, status) => health::health_event(root, run_root, &id, &status),
            Routed::Probe(c) => health::probe(c),
            Routed::Prune(force) => manage::container_prune(root, run_root, force),
        },
        Cmd::Pause(a) => verbs::pause(root, run_root, a),
        Cmd::Unpause(a) => verbs::unpause(root, run_root, a),
        Cmd::Update(a) => verbs::update(root, run_root, a),
        Cmd::Port(a) => verbs::port(root, run_root, a),
        Cmd::Events(a) => verbs::events(root, run_root, a),
        Cmd::Info(a) => verbs::info(root, run_root, a),
        Cmd::Version(a) => verbs::version(a),
        Cmd::Commit(a) => commit::commit(root, run_root, a),
        Cmd::Export(a) => commit::export(root, run_root, a),
        Cmd::Healthcheck(c) => health::healthcheck(root, run_root, c),
        Cmd::Build(a) => build::build(root, run_root, a),
        Cmd::Builder(c) => build::builder(root, run_root, c),
    }
}

fn main() {
    output::install();
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    let word = command_word(&args);
    let (globals, cmd) = parse(&args, word);
    let r = dispatch(&globals.root, &globals.run_root, cmd);
    if let Err(e) = r {
        output::exit_if_output_closed(&e);
        if let Some(c) = e.downcast_ref::<containers::ExitCode>() {
            std::process::exit(c.0);
        }
        let code = if let Some(r) = e.downcast_ref::<containers::RunError>() {
            r.code
        } else if let Some(i) = e.downcast_ref::<berth_engine::images::StoreError>() {
            i.exit_code()
        } else {
            e.downcast_ref::<berth_engine::Error>()
                .map_or(1, |e| output::exit_code(e.kind()))
        };
        eprintln!("berth: {}", output::text(&e));
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

    /// Every subcommand enum defers its arguments (`#[command(defer =
    /// true)]`: a command builds only its own, about 1.5 ms of CPU less per
    /// `berth` process). The deferred part runs after the variant's doc
    /// comment is set, so an argument struct with a doc comment of its own
    /// would replace the command's description once built: `--help` and
    /// completions must show the same text as the unbuilt tree.
    #[test]
    fn deferred_arguments_keep_each_commands_description() {
        use clap::CommandFactory;
        type Texts = std::collections::BTreeMap<String, String>;
        fn walk(c: &clap::Command, path: String, out: &mut Texts) {
            let text = format!(
                "{:?} / {:?}",
                c.get_about().map(|s| s.to_string()),
                c.get_long_about().map(|s| s.to_string())
            );
            for s in c.get_subcommands() {
                walk(s, format!("{path} {}", s.get_name()), out);
            }
            out.insert(path, text);
        }
        let (mut lazy, mut built) = (Texts::new(), Texts::new());
        walk(&super::Cli::command(), "berth".into(), &mut lazy);
        let mut b = super::Cli::command();
        b.build();
        walk(&b, "berth".into(), &mut built);
        assert!(lazy.len() > 100, "{}", lazy.len());
        let changed: Vec<_> = lazy
            .iter()
            .filter(|(p, t)| built.get(*p) != Some(t))
            .map(|(p, t)| format!("{p}: {t}\n  became {:?}", built.get(p)))
            .collect();
        assert!(changed.is_empty(), "{}", changed.join("\n"));
        // And the arguments are deferred indeed.
        let run = super::Cli::command();
        let run = run.find_subcommand("run").unwrap();
        assert_eq!(run.get_arguments().count(), 0);
    }

    fn argv(s: &str) -> Vec<std::ffi::OsString> {
        s.split(' ').map(Into::into).collect()
    }

    /// What the whole tree makes of a command line: the globals and the
    /// fast-parsed command's arguments, or the error's kind and text.
    fn full(s: &str) -> String {
        use clap::Parser;
        match super::Cli::try_parse_from(argv(s)) {
            Ok(c) => format!("{:?} {}", c.globals, cmd(c.cmd)),
            Err(e) => format!("error {:?}: {e}", e.kind()),
        }
    }

    fn cmd(c: super::Cmd) -> String {
        match c {
            super::Cmd::Run(a) => format!("run {a:?}"),
            super::Cmd::Exec(a) => format!("exec {a:?}"),
            super::Cmd::Start(a) => format!("start {a:?}"),
            super::Cmd::Stop(a) => format!("stop {a:?}"),
            super::Cmd::Rm(a) => format!("rm {a:?}"),
            super::Cmd::Kill(a) => format!("kill {a:?}"),
            super::Cmd::Ps(a) => format!("ps {a:?}"),
            super::Cmd::Inspect(a) => format!("inspect {a:?}"),
            super::Cmd::Logs(a) => format!("logs {a:?}"),
            super::Cmd::Wait(a) => format!("wait {a:?}"),
            super::Cmd::Network(a) => format!("network {a:?}"),
            super::Cmd::Pod(a) => format!("pod {a:?}"),
            super::Cmd::Volume(a) => format!("volume {a:?}"),
            _ => "another command".into(),
        }
    }

    /// Every `prune` takes -f/--force, as docker's and podman's do; network
    /// prune takes --filter too.
    #[test]
    fn every_prune_takes_force() {
        use clap::{CommandFactory, Parser};
        fn walk(c: &clap::Command, path: String, out: &mut Vec<String>) {
            // Not clap's `help` tree, which names every command again.
            for s in c.get_subcommands().filter(|s| s.get_name() != "help") {
                walk(s, format!("{path} {}", s.get_name()), out);
            }
            if c.get_name() == "prune" {
                out.push(path);
            }
        }
        let mut c = super::Cli::command();
        c.build();
        let mut prunes = Vec::new();
        walk(&c, "berth".into(), &mut prunes);
        for p in [
            "container",
            "image",
            "network",
            "volume",
            "system",
            "pod",
            "builder",
        ] {
            assert!(prunes.contains(&format!("berth {p} prune")), "{prunes:?}");
        }
        for p in &prunes {
            for flag in ["-f", "--force"] {
                let line = format!("{p} {flag}");
                assert!(!full(&line).starts_with("error"), "{line}: {}", full(&line));
            }
        }
        let line = "berth network prune -f --filter until=24h --filter label!=a=b";
        assert!(
            super::Cli::try_parse_from(argv(line)).is_ok(),
            "{}",
            full(line)
        );
    }

    #[test]
    fn the_fast_parse_agrees_with_the_whole_tree() {
        let accepted = [
            "berth run busybox",
            "berth run --rm busybox true",
            "berth --root /r run -d --name x busybox sleep 1",
            "berth run --root /r --run-root /rr -it -e A=1 -v /a:/b:ro -h host busybox sh -c exit",
            "berth run --rm busybox ls -la --color",
            "berth run --sig-proxy false -m 64m --cpus 1.5 --pids-limit 9 busybox -- true",
            "berth run --security-opt no-new-privileges --cap-drop ALL --ulimit nofile=5:6 i",
            "berth exec web ls",
            "berth exec -it -e A=1 -u 1:2 -w /tmp web sh -c ls",
            "berth exec web ls -la --color",
            "berth --root /r exec -d web sleep 1",
            "berth start web",
            "berth start -ai web db",
            "berth stop -t 3 web db",
            "berth rm -fv web",
            "berth kill -s TERM web",
            "berth ps -a --format json --filter name=x",
            "berth inspect -f {{.Id}} web",
            "berth logs -f --tail 3 web",
            "berth wait web",
            "berth network create --subnet 10.9.0.0/24 --label a=b n1",
            "berth --root /r network rm n1 n2",
            "berth network ls -q --filter name=x",
            "berth network connect --alias a n1 web",
            "berth pod create --name p -p 8080:80",
            "berth pod rm -f p",
            "berth volume create v",
            "berth volume ls --format json",
        ];
        for s in accepted {
            let args = argv(s);
            let word = super::command_word(&args);
            let (g, c) = super::parse(&args, word);
            assert_eq!(format!("{g:?} {}", cmd(c)), full(s), "{s}");
            assert!(
                super::parse_fast(&args, word).is_some(),
                "{s}: not parsed by the fast path"
            );
        }
        // Left to the whole tree: help, errors, other commands.
        for (s, name) in [
            ("berth run --help", "run"),
            ("berth run", "run"),
            ("berth run --no-such-flag busybox", "run"),
            ("berth exec --help", "exec"),
            ("berth exec -h", "exec"),
            ("berth exec web", "exec"),
            ("berth start", "start"),
            ("berth ps -a", "run"),
            ("berth runx", "run"),
            ("berth network", "network"),
            ("berth network --help", "network"),
            ("berth network create --help", "network"),
            ("berth network nosuch", "network"),
            ("berth network create --nosuch x", "network"),
            ("berth pod", "pod"),
            ("berth volume rm", "volume"),
        ] {
            let fast = match name {
                "network" => super::parse_group(&argv(s), name, super::Cmd::Network),
                "pod" => super::parse_group(&argv(s), name, super::Cmd::Pod),
                "volume" => super::parse_group(&argv(s), name, super::Cmd::Volume),
                "run" => super::parse_one(&argv(s), name, true, super::Cmd::Run),
                "exec" => super::parse_one(&argv(s), name, false, super::Cmd::Exec),
                _ => super::parse_one(&argv(s), name, false, super::Cmd::Start),
            };
            assert!(fast.is_none(), "{s}");
        }
        // The whole tree then says what it always said.
        assert!(full("berth run --help").starts_with("error DisplayHelp"));
        assert!(full("berth run").starts_with("error MissingRequiredArgument"));
        assert!(full("berth network").starts_with("error DisplayHelpOnMissingArgumentOrSubcommand"));
    }
}
