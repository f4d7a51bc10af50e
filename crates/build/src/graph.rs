//! The stages of a build: global ARGs before the first FROM, stage names,
//! bases (`scratch`, an earlier stage, an image), the stages each one
//! needs (FROM, `COPY --from`, `RUN --mount from=`), the stages a target
//! needs, and the order a parallel executor may run them in.

use crate::expand::{expand_instruction, Lexer};
use crate::limits::MAX_STAGES;
use crate::parse::{Dockerfile, From, Instruction, Kind, Pos};
use std::collections::{BTreeMap, BTreeSet, HashSet};

/// A stage's index in the Dockerfile (0 for the first FROM).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct StageId(pub usize);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{file}:{line}:{col}: {message}")]
pub struct GraphError {
    pub file: String,
    pub line: u32,
    pub col: u32,
    pub message: String,
}

/// An OCI platform.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Platform {
    pub os: String,
    pub arch: String,
    pub variant: String,
}

impl Platform {
    /// The platform berth runs on (containerd's normalised names).
    pub fn native() -> Platform {
        let (arch, variant) = match std::env::consts::ARCH {
            "x86_64" => ("amd64", ""),
            "aarch64" => ("arm64", ""),
            "arm" => ("arm", "v7"),
            "x86" => ("386", ""),
            "powerpc64" => ("ppc64le", ""),
            "s390x" => ("s390x", ""),
            "riscv64" => ("riscv64", ""),
            "loongarch64" => ("loong64", ""),
            other => (other, ""),
        };
        Platform {
            os: std::env::consts::OS.to_string(),
            arch: arch.to_string(),
            variant: variant.to_string(),
        }
    }
}

impl Platform {
    /// A platform as `--platform` and `FROM --platform` take it, in
    /// containerd's spellings normalised (case-insensitive; `x86_64` and
    /// `x86-64` are `amd64`, `aarch64` is `arm64`, amd64's `v1` and
    /// arm64's `v8` are no variant; one word is an OS with this machine's
    /// architecture, or an architecture with this machine's OS).
    pub fn parse(s: &str) -> Result<Platform, String> {
        let lower = s.trim().to_ascii_lowercase();
        let parts: Vec<&str> = lower.split('/').collect();
        if parts.iter().any(|p| p.is_empty()) || parts.len() > 3 {
            return Err(format!(
                "platform {s:?}: expected OS/ARCH[/VARIANT], such as linux/amd64"
            ));
        }
        let native = Platform::native();
        const OSES: &[&str] = &[
            "linux", "windows", "darwin", "macos", "freebsd", "netbsd", "openbsd", "illumos",
            "solaris", "aix", "android", "ios", "plan9", "js", "wasip1",
        ];
        let (os, arch, variant) = match parts[..] {
            [one] if OSES.contains(&one) => (one, native.arch.as_str(), native.variant.as_str()),
            [one] => (native.os.as_str(), one, ""),
            [os, arch] => (os, arch, ""),
            [os, arch, v] => (os, arch, v),
            _ => return Err(format!("platform {s:?}: expected OS/ARCH[/VARIANT]")),
        };
        let os = if os == "macos" { "darwin" } else { os };
        let (arch, variant) = match (arch, variant) {
            ("x86_64" | "x86-64" | "amd64", "v1") => ("amd64", ""),
            ("x86_64" | "x86-64", v) => ("amd64", v),
            ("i386" | "i486" | "i586" | "i686", v) => ("386", v),
            ("aarch64" | "arm64", "v8" | "8") => ("arm64", ""),
            ("aarch64", v) => ("arm64", v),
            ("armhf", _) => ("arm", "v7"),
            ("armel", _) => ("arm", "v6"),
            ("arm", "5") => ("arm", "v5"),
            ("arm", "6") => ("arm", "v6"),
            ("arm", "7") => ("arm", "v7"),
            ("arm", "") => ("arm", "v7"),
            (a, v) => (a, v),
        };
        Ok(Platform {
            os: os.to_string(),
            arch: arch.to_string(),
            variant: variant.to_string(),
        })
    }

    /// `s` (see [`Platform::parse`]) if it is `native`, the only platform
    /// berth builds for (it runs RUN steps, it does not emulate).
    pub fn require(s: &str, native: &Platform) -> Result<Platform, String> {
        let p = Platform::parse(s)?;
        if &p != native {
            return Err(format!(
                "platform {s} ({p}): berth builds only for the platform it runs on, {native} (no emulation); build on a {p} machine or leave --platform out"
            ));
        }
        Ok(p)
    }
}

impl std::fmt::Display for Platform {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.os, self.arch)?;
        if !self.variant.is_empty() {
            write!(f, "/{}", self.variant)?;
        }
        Ok(())
    }
}

/// Build args every Dockerfile has without an ARG for RUN's environment
/// (the proxies); BuildKit passes them to RUN when given.
pub const PROXY_ARGS: &[&str] = &[
    "HTTP_PROXY",
    "http_proxy",
    "HTTPS_PROXY",
    "https_proxy",
    "FTP_PROXY",
    "ftp_proxy",
    "NO_PROXY",
    "no_proxy",
    "ALL_PROXY",
    "all_proxy",
];

/// The platform args (values for `platform` as target and build
/// platform): in scope in FROM without an ARG, in a stage after `ARG NAME`.
pub fn platform_args(p: &Platform) -> Vec<(&'static str, String)> {
    let mut v = Vec::with_capacity(8);
    for prefix in ["TARGET", "BUILD"] {
        let (a, b, c, d) = if prefix == "TARGET" {
            ("TARGETPLATFORM", "TARGETOS", "TARGETARCH", "TARGETVARIANT")
        } else {
            ("BUILDPLATFORM", "BUILDOS", "BUILDARCH", "BUILDVARIANT")
        };
        v.push((a, p.to_string()));
        v.push((b, p.os.clone()));
        v.push((c, p.arch.clone()));
        v.push((d, p.variant.clone()));
    }
    v
}

/// What a stage starts from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Base {
    Scratch,
    Stage(StageId),
    /// An image reference (expanded).
    Image(String),
}

/// One stage.
#[derive(Debug, Clone, PartialEq)]
pub struct Stage {
    pub id: StageId,
    /// `AS name`, lower-cased and expanded.
    pub name: Option<String>,
    pub pos: Pos,
    /// The FROM as written.
    pub from: From,
    pub base: Base,
    /// `--platform`, expanded.
    pub platform: Option<String>,
    /// The instructions after FROM, unexpanded.
    pub instructions: Vec<Instruction>,
    /// The earlier stages it needs (its base, `COPY --from`, mounts'
    /// `from=`), sorted.
    pub deps: Vec<StageId>,
    /// Images (or named contexts) `COPY --from`/`from=` name.
    pub image_refs: Vec<String>,
    /// The args FROM's expansion looked up.
    pub from_args: BTreeSet<String>,
}

/// The stages of a Dockerfile, with the build's args applied.
#[derive(Debug, Clone, PartialEq)]
pub struct Graph {
    pub stages: Vec<Stage>,
    /// Global args (declared before the first FROM) and their values.
    pub global_args: BTreeMap<String, Option<String>>,
    /// The build args given (`--build-arg`).
    pub build_args: BTreeMap<String, String>,
    pub platform: Platform,
    /// The Dockerfile's escape character.
    pub escape: char,
    /// Build args given that no ARG declares (Docker warns about them).
    pub unused_build_args: Vec<String>,
}

impl Graph {
    /// The stage graph of `df` (its errors name `file`).
    pub fn new(
        file: &str,
        df: &Dockerfile,
        build_args: &BTreeMap<String, String>,
        platform: &Platform,
    ) -> Result<Graph, GraphError> {
        let e = |pos: Pos, message: String| GraphError {
            file: file.to_string(),
            line: pos.line,
            col: pos.col,
            message,
        };
        let predefined: BTreeMap<String, String> = platform_args(platform)
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect();
        let mut globals: BTreeMap<String, Option<String>> = BTreeMap::new();
        let mut declared: HashSet<String> = HashSet::new();
        let mut stages: Vec<Stage> = Vec::new();
        let mut current: Option<Stage> = None;
        // Where each stage name is last defined (to refuse forward
        // references without rescanning the file).
        let mut last_def: std::collections::HashMap<&str, Pos> = std::collections::HashMap::new();
        for i in &df.instructions {
            if let Kind::From(From { name: Some(n), .. }) = &i.kind {
                last_def.insert(n.as_str(), i.pos);
            }
        }
        let defined_after = |n: &str, p: Pos| last_def.get(n).is_some_and(|&d| d > p);
        for ins in &df.instructions {
            match &ins.kind {
                Kind::Arg(_) if current.is_none() => {
                    let env = |k: &str| -> Option<String> {
                        globals
                            .get(k)
                            .cloned()
                            .flatten()
                            .or_else(|| predefined.get(k).cloned())
                    };
                    let x =
                        expand_instruction(ins, df.escape, &env).map_err(|m| e(ins.pos, m.0))?;
                    let Kind::Arg(args) = x.instruction.kind else {
                        continue;
                    };
                    for a in args {
                        let v = build_args.get(&a.name).cloned().or(a.default);
                        declared.insert(a.name.clone());
                        globals.insert(a.name, v);
                    }
                }
                Kind::From(_) => {
                    if stages.len() + usize::from(current.is_some()) >= MAX_STAGES {
                        return Err(e(ins.pos, format!("more than {MAX_STAGES} stages")));
                    }
                    if let Some(s) = current.take() {
                        stages.push(s);
                    }
                    let env = |k: &str| -> Option<String> {
                        match globals.get(k) {
                            Some(v) => v.clone(),
                            None => predefined.get(k).cloned(),
                        }
                    };
                    let x =
                        expand_instruction(ins, df.escape, &env).map_err(|m| e(ins.pos, m.0))?;
                    let Kind::From(f) = &x.instruction.kind else {
                        continue;
                    };
                    let Kind::From(raw) = &ins.kind else { continue };
                    if let Some(p) = &f.platform {
                        Platform::require(p, platform)
                            .map_err(|m| e(ins.pos, format!("FROM --platform: {m}")))?;
                    }
                    let id = StageId(stages.len());
                    if let Some(n) = &f.name {
                        if stages.iter().any(|s| s.name.as_deref() == Some(n)) {
                            return Err(e(ins.pos, format!("FROM: duplicate stage name {n:?}")));
                        }
                    }
                    let lower = f.image.to_ascii_lowercase();
                    let base = if f.image == "scratch" {
                        Base::Scratch
                    } else if let Some(s) = stages
                        .iter()
                        .find(|s| s.name.as_deref() == Some(lower.as_str()))
                    {
                        Base::Stage(s.id)
                    } else if f.name.as_deref() == Some(lower.as_str()) {
                        return Err(e(
                            ins.pos,
                            format!("FROM: circular dependency detected on stage: {lower}"),
                        ));
                    } else if defined_after(&lower, ins.pos) {
                        return Err(e(ins.pos, format!("FROM: stage {lower:?} is defined later in the file; a stage can only start from an earlier one")));
                    } else {
                        Base::Image(f.image.clone())
                    };
                    let mut deps = BTreeSet::new();
                    if let Base::Stage(d) = base {
                        deps.insert(d);
                    }
                    current = Some(Stage {
                        id,
                        name: f.name.clone(),
                        pos: ins.pos,
                        from: raw.clone(),
                        base,
                        platform: f.platform.clone(),
                        instructions: Vec::new(),
                        deps: deps.into_iter().collect(),
                        image_refs: Vec::new(),
                        from_args: x.used.clone(),
                    });
                }
                _ => {
                    let Some(stage) = current.as_mut() else {
                        return Err(e(ins.pos, format!("{}: no build stage in current context (only ARG may come before the first FROM)", ins.kind.name())));
                    };
                    if let Kind::Arg(args) = &ins.kind {
                        for a in args {
                            declared.insert(a.name.clone());
                        }
                    }
                    // Stage references: COPY --from (expanded with the
                    // global args, as BuildKit does) and mounts' from=.
                    let mut refs: Vec<String> = Vec::new();
                    let kinds: Vec<&Kind> = match &ins.kind {
                        Kind::Onbuild(_) => Vec::new(),
                        k => vec![k],
                    };
                    for k in kinds {
                        match k {
                            Kind::Copy(c) => {
                                if let Some(from) = &c.from {
                                    let env = |k: &str| globals.get(k).cloned().flatten();
                                    let v =
                                        Lexer::new(df.escape).word(from, &env).map_err(|m| {
                                            e(ins.pos, format!("COPY: --from: {}", m.0))
                                        })?;
                                    refs.push(v);
                                }
                            }
                            Kind::Run(r) => {
                                refs.extend(r.mounts.iter().filter_map(|m| m.from.clone()));
                            }
                            _ => {}
                        }
                    }
                    for r in refs {
                        let later = |n: &str| defined_after(n, stage.pos);
                        match resolve_ref(&r, stage.id, stage.name.as_deref(), &stages, &later) {
                            Ok(Some(d)) => {
                                if !stage.deps.contains(&d) {
                                    stage.deps.push(d);
                                    stage.deps.sort();
                                }
                            }
                            Ok(None) => {
                                if !stage.image_refs.contains(&r) {
                                    stage.image_refs.push(r);
                                }
                            }
                            Err(m) => return Err(e(ins.pos, format!("{}: {m}", ins.kind.name()))),
                        }
                    }
                    stage.instructions.push(ins.clone());
                }
            }
        }
        match current.take() {
            Some(s) => stages.push(s),
            None => {
                let pos = df
                    .instructions
                    .last()
                    .map_or(Pos { line: 1, col: 1 }, |i| i.pos);
                return Err(e(pos, "the Dockerfile has no FROM (no build stage)".into()));
            }
        }
        let mut unused_build_args: Vec<String> = build_args
            .keys()
            .filter(|k| {
                !declared.contains(*k)
                    && !PROXY_ARGS.contains(&k.as_str())
                    && !predefined.contains_key(*k)
            })
            .cloned()
            .collect();
        unused_build_args.sort();
        Ok(Graph {
            stages,
            global_args: globals,
            build_args: build_args.clone(),
            platform: platform.clone(),
            escape: df.escape,
            unused_build_args,
        })
    }

    /// The value `ARG name[=default]` inside a stage gives: the build arg,
    /// else the default (already expanded), else the global ARG of that
    /// name, else a platform arg.
    pub fn arg_value(&self, name: &str, default: Option<String>) -> Option<String> {
        if let Some(v) = self.build_args.get(name) {
            return Some(v.clone());
        }
        if default.is_some() {
            return default;
        }
        if let Some(v) = self.global_args.get(name) {
            return v.clone();
        }
        platform_args(&self.platform)
            .into_iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v)
    }

    /// The stages a build of `target` (a stage name; the last stage when
    /// `None`) needs.
    pub fn plan(&self, target: Option<&str>) -> Result<Plan, String> {
        let target = match target {
            None => StageId(self.stages.len() - 1),
            Some(t) => {
                let lower = t.to_ascii_lowercase();
                match self
                    .stages
                    .iter()
                    .find(|s| s.name.as_deref() == Some(lower.as_str()))
                {
                    Some(s) => s.id,
                    None => {
                        let names: Vec<&str> = self
                            .stages
                            .iter()
                            .filter_map(|s| s.name.as_deref())
                            .collect();
                        return Err(if names.is_empty() {
                            format!("target stage {t:?} could not be found: the Dockerfile names no stages (FROM ... AS NAME)")
                        } else {
                            format!(
                                "target stage {t:?} could not be found; the stages are: {}",
                                names.join(", ")
                            )
                        });
                    }
                }
            }
        };
        let mut needed = BTreeSet::new();
        let mut todo = vec![target];
        while let Some(s) = todo.pop() {
            if needed.insert(s) {
                todo.extend(self.stages[s.0].deps.iter().copied());
            }
        }
        Ok(Plan {
            target,
            stages: needed.into_iter().collect(),
            deps: self.stages.iter().map(|s| s.deps.clone()).collect(),
        })
    }
}

/// A stage reference from `COPY --from` or `from=` in stage `id`: a stage
/// by name or index (an earlier one), else an image.
fn resolve_ref(
    r: &str,
    id: StageId,
    own_name: Option<&str>,
    earlier: &[Stage],
    later: &dyn Fn(&str) -> bool,
) -> Result<Option<StageId>, String> {
    let lower = r.to_ascii_lowercase();
    if own_name == Some(lower.as_str()) {
        return Err(format!("circular dependency detected on stage: {lower}"));
    }
    if let Some(s) = earlier
        .iter()
        .take(id.0)
        .find(|s| s.name.as_deref() == Some(lower.as_str()))
    {
        return Ok(Some(s.id));
    }
    if !r.is_empty() && r.bytes().all(|b| b.is_ascii_digit()) {
        let Ok(n) = r.parse::<usize>() else {
            return Err(format!("invalid stage index {r:?}"));
        };
        if n == id.0 {
            return Err(format!("circular dependency detected on stage: {n}"));
        }
        if n > id.0 {
            return Err(format!(
                "stage index {n} is not defined before this stage (stage {})",
                id.0
            ));
        }
        return Ok(Some(StageId(n)));
    }
    if later(&lower) {
        return Err(format!(
            "stage {lower:?} is defined later in the file; only earlier stages can be used"
        ));
    }
    Ok(None)
}

/// What `COPY --from=` or a mount's `from=` names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    Stage(StageId),
    /// An image reference (or a named build context).
    Image(String),
}

impl Graph {
    /// Resolves `COPY --from=FROM` (`copy`: expanded with the global args,
    /// as BuildKit does) or a mount's `from=FROM` (never expanded) in
    /// stage `stage`, as [`Graph::new`] did to find the stage's deps.
    pub fn source(&self, stage: StageId, from: &str, copy: bool) -> Result<Source, String> {
        let Some(st) = self.stages.get(stage.0) else {
            return Err(format!("no stage {}", stage.0));
        };
        let from = if copy {
            let env = |k: &str| self.global_args.get(k).cloned().flatten();
            Lexer::new(self.escape)
                .word(from, &env)
                .map_err(|e| format!("--from: {}", e.0))?
        } else {
            from.to_string()
        };
        let later = |n: &str| {
            self.stages[stage.0 + 1..]
                .iter()
                .any(|s| s.name.as_deref() == Some(n))
        };
        Ok(
            match resolve_ref(&from, st.id, st.name.as_deref(), &self.stages, &later)? {
                Some(id) => Source::Stage(id),
                None => Source::Image(from),
            },
        )
    }
}

/// The stages a target needs and the order they may run in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    pub target: StageId,
    /// The stages to build, in file order.
    pub stages: Vec<StageId>,
    deps: Vec<Vec<StageId>>,
}

impl Plan {
    /// The stages not done whose dependencies are all done (the caller
    /// leaves out the ones it already started).
    pub fn ready(&self, done: &HashSet<StageId>) -> Vec<StageId> {
        self.stages
            .iter()
            .copied()
            .filter(|s| !done.contains(s))
            .filter(|s| {
                self.deps
                    .get(s.0)
                    .is_none_or(|d| d.iter().all(|x| done.contains(x)))
            })
            .collect()
    }

    /// Whether every stage is done.
    pub fn finished(&self, done: &HashSet<StageId>) -> bool {
        self.stages.iter().all(|s| done.contains(s))
    }
}

/// The variables in scope while a stage's instructions run, as BuildKit
/// keeps them: the environment (the base image's, then ENV) and the args
/// the stage declared (ARG). Expansion looks up ENV first, then ARGs; a
/// RUN sees both (an ENV wins over an ARG of the same name) and the proxy
/// build args without an ARG. Neither args nor proxies reach the image.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct StageScope {
    /// The environment, in order (what the image config's Env keeps).
    pub env: Vec<(String, String)>,
    /// Declared args: name to value (`None`: declared, no value).
    pub args: BTreeMap<String, Option<String>>,
}

impl StageScope {
    /// The scope at the start of a stage whose base has `base_env`.
    pub fn new(base_env: Vec<(String, String)>) -> StageScope {
        StageScope {
            env: base_env,
            args: BTreeMap::new(),
        }
    }

    /// A variable's value for expansion: ENV, else a declared arg.
    pub fn lookup(&self, name: &str) -> Option<String> {
        if let Some((_, v)) = self.env.iter().rev().find(|(k, _)| k == name) {
            return Some(v.clone());
        }
        self.args.get(name).cloned().flatten()
    }

    /// Applies an instruction already expanded with [`StageScope::lookup`]:
    /// ARG declares (with [`Graph::arg_value`]), ENV sets.
    pub fn apply(&mut self, graph: &Graph, ins: &Instruction) {
        match &ins.kind {
            Kind::Arg(args) => {
                for a in args {
                    let v = graph.arg_value(&a.name, a.default.clone());
                    self.args.insert(a.name.clone(), v);
                }
            }
            Kind::Env(kvs) => {
                for kv in kvs {
                    match self.env.iter_mut().find(|(k, _)| *k == kv.key) {
                        Some(slot) => slot.1 = kv.value.clone(),
                        None => self.env.push((kv.key.clone(), kv.value.clone())),
                    }
                }
            }
            _ => {}
        }
    }

    /// The environment of a RUN: ENV, then the declared args with a value
    /// that no ENV overrides, then the proxy build args given.
    pub fn run_env(&self, graph: &Graph) -> Vec<(String, String)> {
        let mut out = self.env.clone();
        for (k, v) in &self.args {
            if let Some(v) = v {
                if !out.iter().any(|(e, _)| e == k) {
                    out.push((k.clone(), v.clone()));
                }
            }
        }
        for p in PROXY_ARGS {
            if let Some(v) = graph.build_args.get(*p) {
                if !out.iter().any(|(e, _)| e == p) {
                    out.push((p.to_string(), v.clone()));
                }
            }
        }
        out
    }

    /// The build args a step's cache key depends on: the declared args
    /// with their values (BuildKit keys RUN on all of them, other steps on
    /// the ones their expansion used, `used`).
    pub fn args_for_key(&self, used: Option<&BTreeSet<String>>) -> Vec<(String, Option<String>)> {
        self.args
            .iter()
            .filter(|(k, _)| used.is_none_or(|u| u.contains(*k)))
            .filter(|(k, _)| !self.env.iter().any(|(e, _)| e == *k))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }
}

#[cfg(test)]
#[path = "graph_tests.rs"]
mod tests;
