//! berth-runtime: an OCI runtime with runc's command line.
//!
//! Exit status: 0 on success; for `run` without `--detach`, the container's
//! exit code (128+N when killed by signal N); 1 for any error, described in
//! one line on stderr (and in `--log`, in the chosen format).

mod log;

use anyhow::Context as _;
use berth_runtime::{CreateOptions, RunOptions};
use clap::{Args, Parser, Subcommand, ValueEnum};
use std::io::Write;
use std::path::PathBuf;

const VERSION_TEXT: &str = concat!(
    "berth-runtime version ",
    env!("CARGO_PKG_VERSION"),
    "\ncommit: ",
    env!("BERTH_COMMIT"),
    "\nspec: ",
    "1.2.1"
);

/// berth-runtime runs OCI containers: give it a bundle (a directory with
/// config.json and a root filesystem) and a container id.
///
/// It is a drop-in for runc and crun: containerd, Podman, Docker and CRI-O
/// can use it through the same command line.
///
/// Quick start:
///   mkdir -p b/rootfs && cp /bin/busybox b/rootfs/ && cd b
///   berth-runtime spec            # writes config.json (runs "sh" on a terminal)
///   berth-runtime run demo        # create + start + wait + delete
#[derive(Parser, Debug)]
#[command(
    name = "berth-runtime",
    disable_version_flag = true,
    max_term_width = 100,
    arg_required_else_help = true
)]
struct Cli {
    #[command(flatten)]
    globals: Globals,
    #[command(subcommand)]
    command: Option<Command>,
}

impl std::ops::Deref for Cli {
    type Target = Globals;
    fn deref(&self) -> &Globals {
        &self.globals
    }
}

/// The options before the command.
#[derive(Args, Debug)]
struct Globals {
    /// Print the version (three lines, as runc does).
    #[arg(short = 'v', long = "version")]
    version: bool,
    /// Directory for container state (default /run/berth-runtime, or
    /// $XDG_RUNTIME_DIR/berth-runtime when rootless).
    #[arg(long, value_name = "DIR")]
    root: Option<PathBuf>,
    /// Write the runtime's own log to FILE (default: stderr).
    #[arg(long, value_name = "FILE")]
    log: Option<PathBuf>,
    /// Log line format.
    #[arg(long = "log-format", value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
    /// Log debug messages too.
    #[arg(long)]
    debug: bool,
    /// Treat cgroupsPath as systemd's slice:prefix:name. Without a running
    /// systemd, berth-runtime says so in the log and uses cgroupfs.
    #[arg(long = "systemd-cgroup")]
    systemd_cgroup: bool,
    /// Run without root privileges: true, false or auto (the default:
    /// decided from the effective uid).
    #[arg(long, value_name = "true|false|auto", default_value = "auto", num_args = 0..=1, default_missing_value = "true")]
    rootless: String,
}

#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Args, Debug, Clone)]
struct CreateArgs {
    /// Path to the bundle (the directory with config.json).
    #[arg(short, long, default_value = ".", value_name = "DIR")]
    bundle: PathBuf,
    /// Write the container's host pid to FILE (atomically).
    #[arg(long = "pid-file", value_name = "FILE")]
    pid_file: Option<PathBuf>,
    /// Unix socket to receive the pty master on, when process.terminal is set.
    #[arg(long = "console-socket", value_name = "SOCKET")]
    console_socket: Option<PathBuf>,
    /// Do not pivot_root: for a rootfs on a ramdisk, where it is impossible.
    #[arg(long = "no-pivot")]
    no_pivot: bool,
    /// Accepted for compatibility: berth-runtime does not create session keyrings.
    #[arg(long = "no-new-keyring")]
    no_new_keyring: bool,
    /// Pass N more file descriptors (from fd 3 on) to the container.
    #[arg(long = "preserve-fds", default_value_t = 0, value_name = "N")]
    preserve_fds: u32,
    /// Container id: letters, digits, and _ + - .
    id: String,
}

#[derive(Args, Debug, Clone)]
struct IdArgs {
    id: String,
}

#[derive(Args, Debug, Clone)]
struct KillArgs {
    /// Signal every process of the container, not just its init.
    #[arg(short, long)]
    all: bool,
    id: String,
    #[arg(default_value = "TERM")]
    signal: String,
}

#[derive(Args, Debug, Clone)]
struct DeleteArgs {
    #[arg(short, long)]
    force: bool,
    id: String,
}

#[derive(Args, Debug, Clone)]
struct RunArgs {
    #[command(flatten)]
    create: CreateArgs,
    /// Return once the container has started.
    #[arg(short, long)]
    detach: bool,
    /// Do not delete the container after it exits.
    #[arg(long)]
    keep: bool,
}

#[derive(Args, Debug, Clone)]
#[command(trailing_var_arg = true)]
struct ExecArgs {
    /// A process.json (runtime-spec `process` object) to run instead of
    /// the container's process with COMMAND; `-` reads it from stdin.
    #[arg(short, long, value_name = "FILE")]
    process: Option<PathBuf>,
    /// Allocate a pseudo-terminal (inside the container).
    #[arg(short, long)]
    tty: bool,
    /// Unix socket to receive the pty master on (with --tty).
    #[arg(long = "console-socket", value_name = "SOCKET")]
    console_socket: Option<PathBuf>,
    /// Working directory inside the container.
    #[arg(long, value_name = "DIR")]
    cwd: Option<PathBuf>,
    /// Set an environment variable (KEY=VALUE; repeatable).
    #[arg(short, long, value_name = "KEY=VALUE")]
    env: Vec<String>,
    /// Run as uid[:gid] (numbers).
    #[arg(short, long, value_name = "UID[:GID]")]
    user: Option<String>,
    /// Additional group ids (repeatable).
    #[arg(short = 'g', long = "additional-gids", value_name = "GID")]
    additional_gids: Vec<u32>,
    /// Add a capability to the bounding, effective and permitted sets
    /// (repeatable; e.g. CAP_NET_ADMIN).
    #[arg(short, long = "cap", value_name = "CAP")]
    cap: Vec<String>,
    /// Set no_new_privs for the process.
    #[arg(long = "no-new-privs")]
    no_new_privs: bool,
    /// AppArmor profile (refused: not supported by this version).
    #[arg(long, value_name = "PROFILE")]
    apparmor: Option<String>,
    /// SELinux label (refused: not supported by this version).
    #[arg(long = "process-label", value_name = "LABEL")]
    process_label: Option<String>,
    /// Return once the process has started (it is left to the caller's
    /// subreaper).
    #[arg(short, long)]
    detach: bool,
    /// Write the process's host pid to FILE (atomically).
    #[arg(long = "pid-file", value_name = "FILE")]
    pid_file: Option<PathBuf>,
    /// Pass N more file descriptors (from fd 3 on) to the process.
    #[arg(long = "preserve-fds", default_value_t = 0, value_name = "N")]
    preserve_fds: u32,
    /// Run in this sub-cgroup of the container's cgroup.
    #[arg(long, value_name = "PATH")]
    cgroup: Option<String>,
    /// Allow exec in a paused container: the process starts frozen, and
    /// the command waits until the container is resumed (as runc).
    #[arg(long = "ignore-paused")]
    ignore_paused: bool,
    /// Container id.
    id: String,
    /// The command and its arguments (without --process).
    #[arg(allow_hyphen_values = true)]
    command: Vec<String>,
}

#[derive(Args, Debug, Clone)]
struct UpdateArgs {
    /// LinuxResources JSON from FILE (`-` for stdin); flags override it.
    #[arg(short, long, value_name = "FILE")]
    resources: Option<PathBuf>,
    /// Memory limit (bytes, or with k/m/g; -1 for none).
    #[arg(long, value_name = "SIZE", allow_hyphen_values = true)]
    memory: Option<String>,
    /// Memory soft limit.
    #[arg(
        long = "memory-reservation",
        value_name = "SIZE",
        allow_hyphen_values = true
    )]
    memory_reservation: Option<String>,
    /// Memory plus swap limit (-1 for none).
    #[arg(long = "memory-swap", value_name = "SIZE", allow_hyphen_values = true)]
    memory_swap: Option<String>,
    /// CPU shares (relative weight).
    #[arg(long = "cpu-share", value_name = "N")]
    cpu_share: Option<u64>,
    /// CPU CFS period in microseconds.
    #[arg(long = "cpu-period", value_name = "US")]
    cpu_period: Option<u64>,
    /// CPU CFS quota in microseconds (-1 for none).
    #[arg(long = "cpu-quota", value_name = "US", allow_hyphen_values = true)]
    cpu_quota: Option<i64>,
    /// Real-time period in microseconds.
    #[arg(long = "cpu-rt-period", value_name = "US")]
    cpu_rt_period: Option<u64>,
    /// Real-time runtime in microseconds.
    #[arg(long = "cpu-rt-runtime", value_name = "US", allow_hyphen_values = true)]
    cpu_rt_runtime: Option<i64>,
    /// CPUs to run on (e.g. 0-1,3).
    #[arg(long = "cpuset-cpus", value_name = "LIST")]
    cpuset_cpus: Option<String>,
    /// Memory nodes to use.
    #[arg(long = "cpuset-mems", value_name = "LIST")]
    cpuset_mems: Option<String>,
    /// Maximum number of processes (-1 for none; 0 leaves it as it is).
    #[arg(long = "pids-limit", value_name = "N", allow_hyphen_values = true)]
    pids_limit: Option<i64>,
    /// Block I/O weight (10-1000).
    #[arg(long = "blkio-weight", value_name = "N")]
    blkio_weight: Option<u16>,
    /// Kernel memory limit: accepted for compatibility and ignored with a
    /// warning, as kernel memory limits are deprecated.
    #[arg(
        long = "kernel-memory",
        value_name = "SIZE",
        allow_hyphen_values = true
    )]
    kernel_memory: Option<String>,
    /// Kernel TCP buffer limit: accepted and ignored, like --kernel-memory.
    #[arg(
        long = "kernel-memory-tcp",
        value_name = "SIZE",
        allow_hyphen_values = true
    )]
    kernel_memory_tcp: Option<String>,
    /// Container id.
    id: String,
}

/// Parses a duration like Go's: 5s, 500ms, 1m, 1.5s.
fn parse_duration(s: &str) -> anyhow::Result<std::time::Duration> {
    let t = s.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: f64 = num
        .parse()
        .map_err(|_| anyhow::anyhow!("--interval {s:?}: not a duration (like 5s or 500ms)"))?;
    let secs = match unit {
        "ms" => n / 1000.0,
        "s" | "" => n,
        "m" => n * 60.0,
        "h" => n * 3600.0,
        _ => anyhow::bail!("--interval {s:?}: unknown unit {unit:?} (ms, s, m, h)"),
    };
    if !(secs > 0.0 && secs < 1e9) {
        anyhow::bail!("--interval {s:?}: must be positive");
    }
    Ok(std::time::Duration::from_secs_f64(secs))
}

/// Parses a size: bytes, or a number with k, m, g or t (binary units), or
/// -1 for "no limit".
fn parse_size(flag: &str, s: &str) -> anyhow::Result<i64> {
    let t = s.trim();
    if t == "-1" {
        return Ok(-1);
    }
    if t.starts_with('-') {
        anyhow::bail!("--{flag} {s:?}: a size cannot be negative (use -1 for no limit)");
    }
    let n = berth_runtime::parse_size(t).map_err(|e| anyhow::anyhow!("--{flag} {s:?} {e}"))?;
    Ok(n as i64)
}

fn update_resources(a: &UpdateArgs) -> anyhow::Result<oci_spec::runtime::LinuxResources> {
    let mut v: serde_json::Value = match &a.resources {
        Some(p) => {
            let data = if p.as_os_str() == "-" {
                let mut s = String::new();
                std::io::Read::read_to_string(&mut std::io::stdin(), &mut s)?;
                s
            } else {
                std::fs::read_to_string(p)
                    .with_context(|| format!("read --resources {}", p.display()))?
            };
            serde_json::from_str(&data).context("--resources: not JSON")?
        }
        None => serde_json::json!({}),
    };
    let mut set = |section: &str, key: &str, val: serde_json::Value| {
        v[section][key] = val;
    };
    if let Some(m) = &a.memory {
        set("memory", "limit", parse_size("memory", m)?.into());
    }
    if let Some(m) = &a.memory_reservation {
        set(
            "memory",
            "reservation",
            parse_size("memory-reservation", m)?.into(),
        );
    }
    if let Some(m) = &a.memory_swap {
        set("memory", "swap", parse_size("memory-swap", m)?.into());
    }
    if let Some(x) = a.cpu_share {
        set("cpu", "shares", x.into());
    }
    if let Some(x) = a.cpu_period {
        set("cpu", "period", x.into());
    }
    if let Some(x) = a.cpu_quota {
        set("cpu", "quota", x.into());
    }
    if let Some(x) = a.cpu_rt_period {
        set("cpu", "realtimePeriod", x.into());
    }
    if let Some(x) = a.cpu_rt_runtime {
        set("cpu", "realtimeRuntime", x.into());
    }
    if let Some(x) = &a.cpuset_cpus {
        set("cpu", "cpus", x.clone().into());
    }
    if let Some(x) = &a.cpuset_mems {
        set("cpu", "mems", x.clone().into());
    }
    if let Some(x) = a.pids_limit {
        set("pids", "limit", x.into());
    }
    if let Some(x) = a.blkio_weight {
        set("blockIO", "weight", x.into());
    }
    if let Some(m) = &a.kernel_memory {
        set("memory", "kernel", parse_size("kernel-memory", m)?.into());
    }
    if let Some(m) = &a.kernel_memory_tcp {
        set(
            "memory",
            "kernelTCP",
            parse_size("kernel-memory-tcp", m)?.into(),
        );
    }
    let text = v.to_string();
    let de = &mut serde_json::Deserializer::from_str(&text);
    serde_path_to_error::deserialize(de)
        .map_err(|e| anyhow::anyhow!("--resources: linux.resources.{}: {}", e.path(), e.inner()))
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Create a container: set it up, leave its process waiting for `start`.
    Create(CreateArgs),
    /// Start a created container's process.
    Start(IdArgs),
    /// Print a container's state as JSON.
    State(IdArgs),
    /// Send a signal (name or number; default TERM) to a container.
    Kill(KillArgs),
    /// Delete a stopped (or created) container; --force kills a running one.
    Delete(DeleteArgs),
    /// Create and start a container; wait for it unless --detach.
    Run(RunArgs),
    /// List containers.
    #[command(alias = "ps-all")]
    List {
        #[arg(short, long, value_enum, default_value_t = ListFormat::Table)]
        format: ListFormat,
        /// Print only the ids.
        #[arg(short, long)]
        quiet: bool,
    },
    /// Write a default config.json into the bundle.
    Spec {
        #[arg(short, long, default_value = ".", value_name = "DIR")]
        bundle: PathBuf,
        /// A config for running without root: a user namespace mapping
        /// root to your uid and gid.
        #[arg(long)]
        rootless: bool,
    },
    /// Run a new process in a running container; wait for it unless
    /// --detach, and exit with its code.
    ///
    /// The process starts from the container's own (user, capabilities,
    /// environment, cwd, rlimits, no_new_privs, seccomp), with the flags
    /// applied; or from a whole process.json given with --process.
    ///
    ///   berth-runtime exec demo ps
    ///   berth-runtime exec -t -e TERM=xterm demo sh
    #[command(trailing_var_arg = true)]
    Exec(Box<ExecArgs>),
    /// List a container's processes: the host's `ps` output (with PS_ARGS,
    /// default -ef) filtered to them, or their host pids as JSON.
    ///
    ///   berth-runtime ps demo
    ///   berth-runtime ps demo -- -o pid,user,args
    ///   berth-runtime ps --format json demo
    #[command(trailing_var_arg = true)]
    Ps {
        #[arg(short, long, value_enum, default_value_t = ListFormat::Table)]
        format: ListFormat,
        id: String,
        #[arg(allow_hyphen_values = true, value_name = "PS_ARGS")]
        ps_args: Vec<String>,
    },
    /// Change a container's resource limits: a LinuxResources JSON
    /// (--resources FILE, or - for stdin) and/or the flags below, checked
    /// as a whole before anything is applied.
    ///
    ///   berth-runtime update --memory 256m --pids-limit 100 demo
    Update(Box<UpdateArgs>),
    /// Print a container's events as JSON lines (runc's schema): resource
    /// usage every --interval and OOM kills as they happen, until the
    /// container stops; or one usage line with --stats.
    Events {
        /// Print the resource usage once and exit.
        #[arg(long)]
        stats: bool,
        /// How often to print resource usage (e.g. 5s, 500ms).
        #[arg(long, default_value = "5s", value_name = "DURATION")]
        interval: String,
        id: String,
    },
    /// Freeze every process of a running container (cgroup freezer).
    Pause { id: String },
    /// Thaw a paused container.
    Resume { id: String },
    /// Print what this runtime supports (runtime-spec features.md JSON).
    Features,
}

#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
enum ListFormat {
    Table,
    Json,
}

fn main() {
    let mut args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    // Started by berth's monitor ahead of time: the command line comes now.
    match berth_runtime::handoff::receive() {
        Ok(berth_runtime::handoff::Handed::NotHanded) => {}
        Ok(berth_runtime::handoff::Handed::Cancelled) => std::process::exit(0),
        Ok(berth_runtime::handoff::Handed::Args(handed)) => {
            args.truncate(1);
            args.extend(handed);
        }
        Err(e) => {
            eprintln!(
                "berth-runtime: receive the command line ({}): {e}",
                berth_runtime::handoff::ENV
            );
            std::process::exit(1);
        }
    }
    let cli = parse(args.clone());
    let to_file = cli.log.is_some();
    // runc ends a failed exec with 255, so that a caller tells it from the
    // program's own status; every other failure with 1.
    let fail_code = if matches!(cli.command, Some(Command::Exec(_))) {
        255
    } else {
        1
    };
    if let Err(e) = setup_log(&cli) {
        eprintln!("berth-runtime: {e:#}");
        std::process::exit(1);
    }
    match run(cli, &args) {
        Ok(code) => std::process::exit(code),
        Err(e) => {
            let msg = format!("{e:#}");
            if to_file {
                tracing::error!("{msg}");
            }
            // "error" in the line, as runc's (logrus) output has it:
            // callers such as CRI-O and conmon look for it.
            eprintln!("berth-runtime: error: {msg}");
            std::process::exit(fail_code);
        }
    }
}

/// Parses the command line. The commands that containerd, Podman and
/// berth run for every container (create, start, run, delete, kill, state,
/// exec) are first parsed by a command that knows only the global options
/// and that command's: building clap's whole command tree takes 0.4 ms,
/// twice or more per container. Whatever that parse does not accept as it
/// is (--help, an error) goes to the whole tree, so the behaviour is the
/// same.
fn parse(args: Vec<std::ffi::OsString>) -> Cli {
    parse_fast(&args).unwrap_or_else(|| Cli::parse_from(args))
}

fn parse_fast(args: &[std::ffi::OsString]) -> Option<Cli> {
    use clap::FromArgMatches;
    fn one<T: Args + clap::FromArgMatches>(
        args: &[std::ffi::OsString],
        name: &'static str,
        wrap: fn(T) -> Command,
    ) -> Option<Cli> {
        let sub = T::augment_args(clap::Command::new(name));
        let m =
            Globals::augment_args(clap::Command::new("berth-runtime").disable_version_flag(true))
                .subcommand(sub)
                .try_get_matches_from(args)
                .ok()?;
        let globals = Globals::from_arg_matches(&m).ok()?;
        let a = T::from_arg_matches(m.subcommand_matches(name)?).ok()?;
        Some(Cli {
            globals,
            command: Some(wrap(a)),
        })
    }
    // The first word that names one of them; if it is an option's value
    // instead, the parse below fails or takes it as the whole tree would.
    let word = args.iter().skip(1).find_map(|a| {
        let a = a.to_str()?;
        ["create", "start", "run", "delete", "kill", "state", "exec"]
            .into_iter()
            .find(|w| *w == a)
    })?;
    match word {
        "create" => one(args, "create", Command::Create),
        "start" => one(args, "start", Command::Start),
        "run" => one(args, "run", Command::Run),
        "delete" => one(args, "delete", Command::Delete),
        "kill" => one(args, "kill", Command::Kill),
        "state" => one(args, "state", Command::State),
        _ => one::<ExecArgs>(args, "exec", |a| Command::Exec(Box::new(a))),
    }
}

fn setup_log(cli: &Cli) -> anyhow::Result<()> {
    let out: Box<dyn Write + Send> = match &cli.log {
        Some(p) => Box::new(
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(p)
                .with_context(|| format!("open --log {}", p.display()))?,
        ),
        None => Box::new(std::io::stderr()),
    };
    let max = match (cli.debug, cli.log.is_some()) {
        (true, _) => tracing::Level::DEBUG,
        (false, true) => tracing::Level::INFO,
        (false, false) => tracing::Level::WARN,
    };
    let logger = log::LineLogger::new(out, cli.log_format == LogFormat::Json, max);
    tracing::subscriber::set_global_default(logger).context("install the logger")?;
    Ok(())
}

/// Whether this process runs in a user namespace other than the host's:
/// the initial one maps every id, `0 0 4294967295`.
fn in_user_namespace() -> bool {
    std::fs::read_to_string("/proc/self/uid_map")
        .is_ok_and(|m| m.split_whitespace().collect::<Vec<_>>() != ["0", "0", "4294967295"])
}

fn rootless(cli: &Cli) -> anyhow::Result<bool> {
    // SAFETY: geteuid cannot fail.
    let euid = unsafe { libc::geteuid() };
    match cli.rootless.as_str() {
        "true" => Ok(true),
        "false" => Ok(false),
        // Not root, or root of a user namespace (rootlesskit and the like).
        "auto" => Ok(euid != 0 || in_user_namespace()),
        other => anyhow::bail!("--rootless {other:?}: use true, false or auto"),
    }
}

fn state_root(cli: &Cli) -> anyhow::Result<PathBuf> {
    if let Some(r) = &cli.root {
        return Ok(r.clone());
    }
    if rootless(cli)? {
        if let Some(x) = std::env::var_os("XDG_RUNTIME_DIR").filter(|x| !x.is_empty()) {
            return Ok(PathBuf::from(x).join("berth-runtime"));
        }
        anyhow::bail!("rootless: set XDG_RUNTIME_DIR or pass --root");
    }
    Ok(PathBuf::from("/run/berth-runtime"))
}

fn create_options(cli: &Cli, a: CreateArgs) -> anyhow::Result<CreateOptions> {
    Ok(CreateOptions {
        id: a.id,
        bundle: a.bundle,
        root: state_root(cli)?,
        pid_file: a.pid_file,
        console_socket: a.console_socket,
        no_pivot: a.no_pivot,
        no_new_keyring: a.no_new_keyring,
        preserve_fds: a.preserve_fds,
        systemd_cgroup: cli.systemd_cgroup,
        rootless: rootless(cli)?,
    })
}

fn print_json(v: &impl serde::Serialize) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    serde_json::to_writer_pretty(&mut out, v)?;
    writeln!(out)?;
    Ok(())
}

/// `args`: the command line acted on (handed over, or this process's).
fn run(cli: Cli, args: &[std::ffi::OsString]) -> anyhow::Result<i32> {
    rootless(&cli)?;
    let Some(command) = &cli.command else {
        if cli.version {
            println!("{VERSION_TEXT}");
            return Ok(0);
        }
        anyhow::bail!("no command given (see berth-runtime --help)");
    };
    // Commands that put runtime processes into a container run from a copy
    // of this binary that no container can write (CVE-2019-5736).
    if matches!(
        command,
        Command::Create(_) | Command::Run(_) | Command::Exec(_)
    ) {
        berth_runtime::selfprotect::protect_own_binary(&state_root(&cli)?, args)?;
    }
    match command {
        Command::Create(a) => {
            let opts = create_options(&cli, a.clone())?;
            berth_runtime::create(&opts)?;
        }
        Command::Start(IdArgs { id }) => berth_runtime::start(&state_root(&cli)?, id)?,
        Command::State(IdArgs { id }) => {
            print_json(&berth_runtime::state(&state_root(&cli)?, id)?)?
        }
        Command::Kill(KillArgs { all, id, signal }) => {
            // Signal 0 checks that the container's init is alive (runc).
            let sig = if signal == "0" {
                0
            } else {
                berth_runtime::parse_signal(signal)?
            };
            berth_runtime::kill(&state_root(&cli)?, id, sig, *all)?;
        }
        Command::Delete(DeleteArgs { force, id }) => {
            berth_runtime::delete(&state_root(&cli)?, id, *force)?
        }
        Command::Run(RunArgs {
            create,
            detach,
            keep,
        }) => {
            let opts = create_options(&cli, create.clone())?;
            return Ok(berth_runtime::run(
                &opts,
                RunOptions {
                    detach: *detach,
                    keep: *keep,
                },
            )?);
        }
        Command::List { format, quiet } => {
            let all = berth_runtime::list(&state_root(&cli)?)?;
            let mut out = std::io::stdout().lock();
            if *quiet {
                for s in &all {
                    writeln!(out, "{}", s.id)?;
                }
            } else if *format == ListFormat::Json {
                // runc prints `null` when there is none (a nil Go slice);
                // callers such as go-runc decode either.
                if all.is_empty() {
                    writeln!(out, "null")?;
                } else {
                    serde_json::to_writer(&mut out, &all)?;
                    writeln!(out)?;
                }
            } else {
                write_table(&mut out, &all)?;
            }
        }
        Command::Spec { bundle, rootless } => {
            let path = bundle.join("config.json");
            if path.exists() {
                anyhow::bail!("{} exists; remove it first", path.display());
            }
            let spec = berth_runtime::spec::default_spec(*rootless);
            let data = serde_json::to_vec_pretty(&spec)?;
            std::fs::write(&path, data).with_context(|| format!("write {}", path.display()))?;
        }
        Command::Features => print_json(&berth_runtime::features::features())?,
        Command::Ps {
            format,
            id,
            ps_args,
        } => {
            let pids = berth_runtime::pids(&state_root(&cli)?, id)?;
            if *format == ListFormat::Json {
                print_json(&pids)?;
            } else {
                ps_table(&pids, ps_args)?;
            }
        }
        Command::Update(a) => {
            let res = update_resources(a)?;
            berth_runtime::update(&state_root(&cli)?, &a.id, &res)?;
        }
        Command::Events {
            stats,
            interval,
            id,
        } => {
            let every = parse_duration(interval)?;
            berth_runtime::events(
                &state_root(&cli)?,
                id,
                *stats,
                every,
                &mut std::io::stdout().lock(),
            )?;
        }
        Command::Pause { id } => berth_runtime::pause(&state_root(&cli)?, id)?,
        Command::Resume { id } => berth_runtime::resume(&state_root(&cli)?, id)?,
        Command::Exec(a) => {
            let opts = berth_runtime::ExecOptions {
                root: state_root(&cli)?,
                id: a.id.clone(),
                process: a.process.clone(),
                args: a.command.clone(),
                tty: a.tty,
                console_socket: a.console_socket.clone(),
                cwd: a.cwd.clone(),
                env: a.env.clone(),
                user: a.user.clone(),
                additional_gids: a.additional_gids.clone(),
                caps: a.cap.clone(),
                no_new_privs: a.no_new_privs,
                apparmor: a.apparmor.clone(),
                process_label: a.process_label.clone(),
                detach: a.detach,
                pid_file: a.pid_file.clone(),
                preserve_fds: a.preserve_fds,
                cgroup: a.cgroup.clone(),
                ignore_paused: a.ignore_paused,
            };
            return Ok(berth_runtime::exec(&opts)?);
        }
    }
    Ok(0)
}

/// Runs the host's `ps` and keeps its header and the rows of `pids`, found
/// through the PID column.
fn ps_table(pids: &[i32], args: &[String]) -> anyhow::Result<()> {
    let args: Vec<String> = if args.is_empty() {
        vec!["-ef".into()]
    } else {
        args.to_vec()
    };
    let out = std::process::Command::new("ps")
        .args(&args)
        .output()
        .context("run ps (is procps installed?)")?;
    if !out.status.success() {
        anyhow::bail!(
            "ps {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let mut lines = text.lines();
    let header = lines.next().unwrap_or_default();
    let col = header
        .split_whitespace()
        .position(|h| h == "PID")
        .context("ps printed no PID column: include pid in its output format")?;
    let mut w = std::io::stdout().lock();
    writeln!(w, "{header}")?;
    for line in lines {
        let pid = line
            .split_whitespace()
            .nth(col)
            .and_then(|p| p.parse::<i32>().ok());
        if pid.is_some_and(|p| pids.contains(&p)) {
            writeln!(w, "{line}")?;
        }
    }
    Ok(())
}

fn write_table(out: &mut impl Write, all: &[berth_runtime::OciState]) -> std::io::Result<()> {
    let rows: Vec<[String; 6]> = all
        .iter()
        .map(|s| {
            [
                s.id.clone(),
                s.pid.to_string(),
                s.status.as_str().to_string(),
                s.bundle.display().to_string(),
                s.created.clone(),
                s.owner.clone(),
            ]
        })
        .collect();
    let head = ["ID", "PID", "STATUS", "BUNDLE", "CREATED", "OWNER"];
    let mut w = head.map(str::len);
    for r in &rows {
        for (i, c) in r.iter().enumerate() {
            w[i] = w[i].max(c.len());
        }
    }
    let line = |cells: [&str; 6]| -> String {
        let mut s = String::new();
        for (i, c) in cells.iter().enumerate() {
            if i == 5 {
                s.push_str(c);
            } else {
                s.push_str(&format!("{c:<width$}   ", width = w[i]));
            }
        }
        s
    };
    writeln!(out, "{}", line(head))?;
    for r in &rows {
        writeln!(out, "{}", line([&r[0], &r[1], &r[2], &r[3], &r[4], &r[5]]))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn options_after_the_id() {
        let cli = Cli::try_parse_from([
            "berth-runtime",
            "--root",
            "/r",
            "create",
            "c1",
            "--bundle",
            "/b",
            "--pid-file",
            "p",
        ])
        .unwrap();
        match cli.command.unwrap() {
            Command::Create(a) => {
                assert_eq!(a.id, "c1");
                assert_eq!(a.bundle, PathBuf::from("/b"));
            }
            other => panic!("{other:?}"),
        }
    }

    fn argv(s: &str) -> Vec<std::ffi::OsString> {
        s.split(' ').map(Into::into).collect()
    }

    fn full(s: &str) -> String {
        match Cli::try_parse_from(argv(s)) {
            Ok(c) => format!("{c:?}"),
            Err(e) => format!("error {:?}: {e}", e.kind()),
        }
    }

    #[test]
    fn the_fast_parse_agrees_with_the_whole_tree() {
        for s in [
            "berth-runtime --root /r --log /l --log-format json create --bundle /b --pid-file /p c1",
            "berth-runtime --root /r --log /l --log-format json --systemd-cgroup create --bundle /b --pid-file /p --console-socket /s --preserve-fds 2 c1",
            "berth-runtime create c1 --bundle /b",
            "berth-runtime --root /r start c1",
            "berth-runtime --root /r delete --force c1",
            "berth-runtime delete c1",
            "berth-runtime kill c1",
            "berth-runtime kill c1 9",
            "berth-runtime --root /r kill --all c1 KILL",
            "berth-runtime state c1",
            "berth-runtime --debug run --detach --bundle /b --pid-file /p c1",
            "berth-runtime --rootless false run -d -b /b --keep c1",
            "berth-runtime exec --pid-file /p --process /proc.json --detach c1",
            "berth-runtime exec -t -e A=1 --cwd /tmp c1 sh -c ls",
            "berth-runtime exec c1 ls -la --color",
            "berth-runtime --root /state kill c1 TERM",
        ] {
            let fast = parse_fast(&argv(s)).unwrap_or_else(|| panic!("{s}: not fast-parsed"));
            assert_eq!(format!("{fast:?}"), full(s), "{s}");
        }
        for s in [
            "berth-runtime --help",
            "berth-runtime delete --help",
            "berth-runtime kill",
            "berth-runtime create",
            "berth-runtime -v",
            "berth-runtime list",
            "berth-runtime --root delete list",
            "berth-runtime create c1 --no-such-flag",
        ] {
            assert!(parse_fast(&argv(s)).is_none(), "{s}");
        }
        assert!(full("berth-runtime delete --help").starts_with("error DisplayHelp"));
    }

    #[test]
    fn kill_defaults_to_term() {
        let cli = Cli::try_parse_from(["berth-runtime", "kill", "c1"]).unwrap();
        assert!(matches!(
            cli.command,
            Some(Command::Kill(KillArgs { ref signal, .. })) if signal == "TERM"
        ));
    }
}

#[cfg(test)]
mod update_tests {
    use super::parse_size;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("memory", "1024").unwrap(), 1024);
        assert_eq!(parse_size("memory", "64m").unwrap(), 64 << 20);
        assert_eq!(parse_size("memory", "2G").unwrap(), 2 << 30);
        assert_eq!(parse_size("memory", "1.5k").unwrap(), 1536);
        assert_eq!(parse_size("memory", "512mb").unwrap(), 512 << 20);
        assert_eq!(parse_size("memory", "-1").unwrap(), -1);
        assert!(parse_size("memory", "-5m").is_err());
        assert!(parse_size("memory", "lots").is_err());
    }

    #[test]
    fn durations() {
        use super::parse_duration;
        use std::time::Duration;
        assert_eq!(parse_duration("5s").unwrap(), Duration::from_secs(5));
        assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_duration("1m").unwrap(), Duration::from_secs(60));
        assert_eq!(parse_duration("1.5s").unwrap(), Duration::from_millis(1500));
        assert!(parse_duration("0s").is_err());
        assert!(parse_duration("5 parsecs").is_err());
    }
}
