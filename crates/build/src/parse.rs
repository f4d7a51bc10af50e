//! A Dockerfile (or Containerfile) to a typed AST, with BuildKit's syntax:
//! `frontend/dockerfile/parser` (lines, directives, continuations,
//! heredocs, flags, exec and shell forms) and the checks of
//! `frontend/dockerfile/instructions`. Nothing is expanded here (see
//! [`crate::expand`]); values keep their quotes as written where Docker
//! expands them later (ENV, LABEL, ARG, COPY, ...).

use crate::expand::{ExpandError, Lexer};
use crate::limits::{MAX_DOCKERFILE, MAX_HEREDOC, MAX_INSTRUCTIONS, MAX_LINE, MAX_LOGICAL_LINE};
use std::collections::HashMap;
use std::time::Duration;

/// A syntax error: `FILE:LINE:COL: INSTRUCTION: what is wrong`, one line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{file}:{line}:{col}: {message}")]
pub struct ParseError {
    pub file: String,
    pub line: u32,
    pub col: u32,
    pub message: String,
}

/// A position in the source, 1-based; the column counts characters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct Pos {
    pub line: u32,
    pub col: u32,
}

/// A parsed Dockerfile.
#[derive(Debug, Clone, PartialEq)]
pub struct Dockerfile {
    /// `# syntax=` (recorded; berth always uses its own frontend).
    pub syntax: Option<String>,
    /// `# check=` (recorded).
    pub check: Option<String>,
    /// The escape character: `\` or `` ` `` from `# escape=`.
    pub escape: char,
    pub instructions: Vec<Instruction>,
    /// BuildKit's warnings (empty continuation lines).
    pub warnings: Vec<String>,
}

/// One instruction.
#[derive(Debug, Clone, PartialEq)]
pub struct Instruction {
    /// Where its keyword is.
    pub pos: Pos,
    /// The last line it (and its heredocs) occupies.
    pub end_line: u32,
    /// The logical line as written (continuations joined, without heredoc
    /// bodies): what `docker history` shows.
    pub original: String,
    pub kind: Kind,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Kind {
    From(From),
    Run(Run),
    Cmd(CommandForm),
    Entrypoint(CommandForm),
    /// Always the exec form.
    Shell(Vec<String>),
    Copy(CopyArgs),
    Add(CopyArgs),
    Env(Vec<KeyValue>),
    Arg(Vec<ArgDecl>),
    Workdir(String),
    User(String),
    /// As written; split into ports by expansion.
    Expose(Vec<String>),
    Volume(Vec<String>),
    Label(Vec<KeyValue>),
    Healthcheck(Healthcheck),
    StopSignal(String),
    Onbuild(Onbuild),
    Maintainer(String),
}

impl Kind {
    /// The keyword, upper case.
    pub fn name(&self) -> &'static str {
        match self {
            Kind::From(_) => "FROM",
            Kind::Run(_) => "RUN",
            Kind::Cmd(_) => "CMD",
            Kind::Entrypoint(_) => "ENTRYPOINT",
            Kind::Shell(_) => "SHELL",
            Kind::Copy(_) => "COPY",
            Kind::Add(_) => "ADD",
            Kind::Env(_) => "ENV",
            Kind::Arg(_) => "ARG",
            Kind::Workdir(_) => "WORKDIR",
            Kind::User(_) => "USER",
            Kind::Expose(_) => "EXPOSE",
            Kind::Volume(_) => "VOLUME",
            Kind::Label(_) => "LABEL",
            Kind::Healthcheck(_) => "HEALTHCHECK",
            Kind::StopSignal(_) => "STOPSIGNAL",
            Kind::Onbuild(_) => "ONBUILD",
            Kind::Maintainer(_) => "MAINTAINER",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct From {
    /// The image, `scratch` or an earlier stage's name, before expansion.
    pub image: String,
    /// `AS name`, lower-cased (as written when it holds a variable).
    pub name: Option<String>,
    pub platform: Option<String>,
}

/// RUN, CMD and ENTRYPOINT: `["exec", "form"]` or a shell command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CommandForm {
    Exec(Vec<String>),
    Shell(String),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Run {
    pub command: CommandForm,
    /// The heredocs of the line, in order (bodies chomped for `<<-`).
    pub heredocs: Vec<Heredoc>,
    /// Each `--mount=` as written (expanded again at run time).
    pub mount_specs: Vec<String>,
    /// The mounts parsed from `mount_specs` (unexpanded values).
    pub mounts: Vec<Mount>,
    pub network: Option<NetworkMode>,
    pub security: Option<Security>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Heredoc {
    /// The delimiter, quotes removed.
    pub name: String,
    /// `3<<EOF`: the file descriptor (0 when not given).
    pub fd: u32,
    /// Whether the body is expanded (the delimiter was not quoted).
    pub expand: bool,
    /// `<<-`: leading tabs stripped from the body's lines.
    pub chomp: bool,
    /// The body, every line with its newline.
    pub content: String,
}

/// A COPY/ADD source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SourceItem {
    Path(String),
    /// `COPY <<EOF /dst`: a file made of the heredoc's body, named after it.
    Heredoc(Heredoc),
}

/// COPY and ADD (fields a command does not take stay empty).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CopyArgs {
    pub sources: Vec<SourceItem>,
    pub dest: String,
    /// Written in the JSON form.
    pub json: bool,
    pub from: Option<String>,
    pub chown: Option<String>,
    pub chmod: Option<String>,
    pub checksum: Option<String>,
    pub link: bool,
    pub parents: bool,
    pub keep_git_dir: bool,
    pub exclude: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyValue {
    pub key: String,
    pub value: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArgDecl {
    pub name: String,
    pub default: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Healthcheck {
    /// `["NONE"]`, `["CMD", args...]` or `["CMD-SHELL", "command line"]`.
    pub test: Vec<String>,
    /// Zero: not given (the default applies).
    pub interval: Duration,
    pub timeout: Duration,
    pub start_period: Duration,
    pub start_interval: Duration,
    pub retries: u32,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Onbuild {
    /// The trigger as written (what the image config's OnBuild stores).
    pub expression: String,
    pub trigger: Box<Instruction>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NetworkMode {
    Default,
    None,
    Host,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Security {
    Sandbox,
    Insecure,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MountType {
    Bind,
    Cache,
    Tmpfs,
    Secret,
    Ssh,
}

impl MountType {
    pub fn as_str(self) -> &'static str {
        match self {
            MountType::Bind => "bind",
            MountType::Cache => "cache",
            MountType::Tmpfs => "tmpfs",
            MountType::Secret => "secret",
            MountType::Ssh => "ssh",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sharing {
    Shared,
    Private,
    Locked,
}

/// `RUN --mount=...` (BuildKit's `instructions.Mount`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mount {
    pub kind: MountType,
    /// target=, dst=, destination=. Relative to the working directory;
    /// missing means the working directory itself (BuildKit), which the
    /// executor refuses when it is `/`.
    pub target: Option<String>,
    /// source=, src=.
    pub source: Option<String>,
    /// from=: a stage, an image or a build context.
    pub from: Option<String>,
    /// id= (the cache's or secret's id).
    pub id: Option<String>,
    /// Cache mounts: shared unless set.
    pub sharing: Option<Sharing>,
    pub mode: Option<u32>,
    pub uid: Option<u32>,
    pub gid: Option<u32>,
    /// Read only: bind, secret and ssh mounts are unless rw is given.
    pub read_only: bool,
    /// Secret and ssh mounts: fail when not provided.
    pub required: bool,
    /// Tmpfs: size= in bytes.
    pub size: Option<u64>,
    /// Secret: env= (expose as an environment variable).
    pub env: Option<String>,
}

/// An expansion hook for [`Mount::parse`].
pub type MountExpander<'a> = &'a mut dyn FnMut(&str) -> Result<String, ExpandError>;

impl Mount {
    /// Parses one `--mount` value (CSV of `key=value` and flags). With an
    /// expander, values are expanded first (at run time); without one,
    /// values holding `$` are checked only for their key.
    pub fn parse(spec: &str, mut expander: Option<MountExpander<'_>>) -> Result<Mount, String> {
        let fields = csv_fields(spec)?;
        let mut m = Mount {
            kind: MountType::Bind,
            target: None,
            source: None,
            from: None,
            id: None,
            sharing: None,
            mode: None,
            uid: None,
            gid: None,
            read_only: false,
            required: false,
            size: None,
            env: None,
        };
        let mut ro_auto = true;
        for field in &fields {
            let Some((key, value)) = field.split_once('=') else {
                let key = field.to_ascii_lowercase();
                match key.as_str() {
                    "ro" | "readonly" => {
                        m.read_only = true;
                        ro_auto = false;
                    }
                    "rw" | "readwrite" => {
                        m.read_only = false;
                        ro_auto = false;
                    }
                    "required" if matches!(m.kind, MountType::Secret | MountType::Ssh) => {
                        m.required = true
                    }
                    "required" => {
                        return Err(format!(
                            "unexpected key 'required' for mount type '{}'",
                            m.kind.as_str()
                        ))
                    }
                    _ => return Err(format!("invalid field {field:?}: must be a key=value pair")),
                }
                continue;
            };
            let key = key.to_ascii_lowercase();
            let deferred;
            let value = match expander.as_mut() {
                Some(ex) => {
                    deferred = false;
                    ex(value).map_err(|e| e.0)?
                }
                None => {
                    if key == "from" {
                        if let Some(i) = value.find('$') {
                            if i != value.len() - 1 {
                                return Err("'from' doesn't support variable expansion, define alias stage instead".into());
                            }
                        }
                    }
                    deferred = value.contains('$');
                    value.to_string()
                }
            };
            let u32_of = |v: &str, radix: u32, what: &str| -> Result<Option<u32>, String> {
                if deferred {
                    return Ok(Some(0));
                }
                u32::from_str_radix(v, radix)
                    .map(Some)
                    .map_err(|_| format!("invalid value {v} for {what}"))
            };
            match key.as_str() {
                "type" => {
                    if deferred {
                        continue;
                    }
                    m.kind = match value.to_ascii_lowercase().as_str() {
                        "bind" => MountType::Bind,
                        "cache" => MountType::Cache,
                        "tmpfs" => MountType::Tmpfs,
                        "secret" => MountType::Secret,
                        "ssh" => MountType::Ssh,
                        _ => {
                            return Err(format!(
                                "unsupported mount type {value:?} (bind, cache, tmpfs, secret or ssh)"
                            ))
                        }
                    }
                }
                "target" | "dst" | "destination" => m.target = Some(value),
                "readonly" | "ro" => {
                    ro_auto = false;
                    if !deferred {
                        m.read_only = go_bool(&value).ok_or_else(|| format!("invalid value for {key}: {value:?}"))?;
                    }
                }
                "rw" | "readwrite" => {
                    ro_auto = false;
                    if !deferred {
                        m.read_only = !go_bool(&value).ok_or_else(|| format!("invalid value for {key}: {value:?}"))?;
                    }
                }
                "required" => {
                    if !matches!(m.kind, MountType::Secret | MountType::Ssh) {
                        return Err(format!(
                            "unexpected key 'required' for mount type '{}'",
                            m.kind.as_str()
                        ));
                    }
                    if !deferred {
                        m.required = go_bool(&value).ok_or_else(|| format!("invalid value for {key}: {value:?}"))?;
                    }
                }
                "id" => m.id = Some(value),
                "sharing" => {
                    // Checked against the type at the end (the type may
                    // come later).
                    if !deferred {
                        m.sharing = Some(match value.to_ascii_lowercase().as_str() {
                            "shared" => Sharing::Shared,
                            "private" => Sharing::Private,
                            "locked" => Sharing::Locked,
                            _ => {
                                return Err(format!(
                                    "unsupported sharing value {value:?} (shared, private or locked)"
                                ))
                            }
                        });
                    }
                }
                "mode" => m.mode = u32_of(&value, 8, "mode")?,
                "uid" => m.uid = u32_of(&value, 10, "uid")?,
                "gid" => m.gid = u32_of(&value, 10, "gid")?,
                "source" | "src" => m.source = Some(value),
                "from" => m.from = Some(value),
                "size" => {
                    if m.kind != MountType::Tmpfs {
                        return Err(format!(
                            "unexpected key 'size' for mount type '{}'",
                            m.kind.as_str()
                        ));
                    }
                    if !deferred {
                        m.size = Some(ram_in_bytes(&value).ok_or_else(|| format!("invalid size {value:?}"))?);
                    }
                }
                "env" => {
                    if m.kind != MountType::Secret {
                        return Err(format!(
                            "unexpected key 'env' for mount type '{}'",
                            m.kind.as_str()
                        ));
                    }
                    m.env = Some(value);
                }
                _ => {
                    return Err(format!(
                        "unexpected key '{key}' in '{field}' (type, target, source, from, id, sharing, mode, uid, gid, ro, rw, required, size, env)"
                    ))
                }
            }
        }
        let file_info = matches!(
            m.kind,
            MountType::Secret | MountType::Ssh | MountType::Cache
        );
        if !file_info {
            for (set, what) in [
                (m.mode.is_some(), "mode"),
                (m.uid.is_some(), "uid"),
                (m.gid.is_some(), "gid"),
            ] {
                if set {
                    return Err(format!(
                        "{what} not allowed for {:?} type mounts",
                        m.kind.as_str()
                    ));
                }
            }
        }
        if ro_auto {
            m.read_only = !matches!(m.kind, MountType::Cache | MountType::Tmpfs);
        }
        if m.kind == MountType::Secret {
            if m.from.is_some() {
                return Err("secret mount should not have a from".into());
            }
            if m.sharing.is_some() {
                return Err("secret mount should not define sharing".into());
            }
            if m.source.is_none() && m.target.is_none() && m.id.is_none() && m.env.is_none() {
                return Err("invalid secret mount. one of source, target required".into());
            }
            if m.source.is_some() && m.id.is_some() {
                return Err("both source and id can't be set".into());
            }
        }
        if m.sharing.is_some() && m.kind != MountType::Cache {
            return Err(format!(
                "invalid cache sharing set for {} mount",
                m.kind.as_str()
            ));
        }
        if m.kind == MountType::Cache
            && m.sharing.is_none()
            && !fields
                .iter()
                .any(|f| f.to_ascii_lowercase().starts_with("sharing="))
        {
            m.sharing = Some(Sharing::Shared);
        }
        Ok(m)
    }

    /// A secret's id: `id=`, else the target's file name (BuildKit).
    pub fn secret_id(&self) -> Option<String> {
        if let Some(id) = &self.id {
            return Some(id.clone());
        }
        self.target
            .as_deref()
            .or(self.source.as_deref())
            .and_then(|t| t.trim_end_matches('/').rsplit('/').next())
            .filter(|s| !s.is_empty())
            .map(str::to_string)
    }
}

/// Go's `strconv.ParseBool`.
fn go_bool(s: &str) -> Option<bool> {
    match s {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Some(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Some(false),
        _ => None,
    }
}

/// docker/go-units `RAMInBytes`: `512`, `64k`, `1.5g`, `10MiB` (powers of 1024).
pub fn ram_in_bytes(s: &str) -> Option<u64> {
    let s = s.trim();
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    if num.is_empty() || num.starts_with('.') || num.ends_with('.') {
        return None;
    }
    let n: f64 = num.parse().ok()?;
    let unit = unit.strip_prefix(' ').unwrap_or(unit).to_ascii_lowercase();
    let (mult_char, rest) = match unit.chars().next() {
        Some(c @ ('k' | 'm' | 'g' | 't' | 'p')) => (Some(c), &unit[1..]),
        _ => (None, unit.as_str()),
    };
    let rest = rest.strip_prefix('i').unwrap_or(rest);
    let rest = rest.strip_prefix('b').unwrap_or(rest);
    if !rest.is_empty() {
        return None;
    }
    let mult: f64 = match mult_char {
        None => 1.0,
        Some('k') => 1024.0,
        Some('m') => 1024f64.powi(2),
        Some('g') => 1024f64.powi(3),
        Some('t') => 1024f64.powi(4),
        _ => 1024f64.powi(5),
    };
    let v = n * mult;
    (v.is_finite() && v < u64::MAX as f64).then_some(v as u64)
}

/// Go's `encoding/csv` reading one record (as BuildKit's mount parser).
fn csv_fields(s: &str) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    let chars: Vec<char> = s.chars().collect();
    let mut i = 0;
    loop {
        let mut f = String::new();
        if chars.get(i) == Some(&'"') {
            i += 1;
            loop {
                match chars.get(i) {
                    None => {
                        return Err(format!("extraneous or missing \" in quoted field of {s:?}"))
                    }
                    Some('"') if chars.get(i + 1) == Some(&'"') => {
                        f.push('"');
                        i += 2;
                    }
                    Some('"') => {
                        i += 1;
                        break;
                    }
                    Some(&c) => {
                        f.push(c);
                        i += 1;
                    }
                }
            }
            match chars.get(i) {
                None => {
                    out.push(f);
                    return Ok(out);
                }
                Some(',') => {
                    i += 1;
                    out.push(f);
                }
                Some(_) => {
                    return Err(format!("extraneous or missing \" in quoted field of {s:?}"))
                }
            }
        } else {
            while let Some(&c) = chars.get(i) {
                if c == ',' {
                    break;
                }
                if c == '"' {
                    return Err(format!("bare \" in non-quoted field of {s:?}"));
                }
                f.push(c);
                i += 1;
            }
            out.push(f);
            if i >= chars.len() {
                return Ok(out);
            }
            i += 1;
        }
    }
}

// ---- lines ----------------------------------------------------------------

/// A logical line and where each of its pieces came from.
struct Logical {
    text: String,
    /// (byte offset in `text`, line, column of that byte).
    segs: Vec<(usize, u32, u32)>,
}

impl Logical {
    fn pos(&self, off: usize) -> Pos {
        let off = off.min(self.text.len());
        let i = self
            .segs
            .iter()
            .rposition(|&(o, _, _)| o <= off)
            .unwrap_or(0);
        let Some(&(o, line, col)) = self.segs.get(i) else {
            return Pos { line: 1, col: 1 };
        };
        let chars = self.text.get(o..off).map_or(0, |s| s.chars().count());
        Pos {
            line,
            col: col + chars as u32,
        }
    }
}

fn trim_newline(s: &str) -> &str {
    s.trim_end_matches(['\r', '\n'])
}

fn is_comment(s: &str) -> bool {
    s.trim_start().starts_with('#')
}

/// BuildKit's continuation rule: the escape character last on the line
/// (spaces and tabs after it allowed), not itself escaped.
fn trim_continuation(line: &str, esc: char) -> (&str, bool) {
    let t = line.trim_end_matches([' ', '\t']);
    if let Some(before) = t.strip_suffix(esc) {
        if before.is_empty() || !before.ends_with(esc) {
            return (before, false);
        }
    }
    (line, true)
}

struct Directives {
    done: bool,
    syntax: Option<String>,
    escape: Option<char>,
    check: Option<String>,
}

impl Directives {
    /// `^#\s*([a-zA-Z][a-zA-Z0-9]*)\s*=\s*(.+?)\s*$`
    fn line(&mut self, line: &str) -> Result<(), String> {
        if self.done {
            return Ok(());
        }
        let re_space = |c: char| matches!(c, ' ' | '\t' | '\n' | '\r' | '\x0c');
        let parsed = (|| {
            let rest = line.strip_prefix('#')?.trim_start_matches(re_space);
            let end = rest
                .find(|c: char| !c.is_ascii_alphanumeric())
                .unwrap_or(rest.len());
            let (name, rest) = rest.split_at(end);
            if !name.starts_with(|c: char| c.is_ascii_alphabetic()) {
                return None;
            }
            let rest = rest.trim_start_matches(re_space).strip_prefix('=')?;
            let value = rest.trim_matches(re_space);
            if value.is_empty() {
                return None;
            }
            Some((name.to_ascii_lowercase(), value.to_string()))
        })();
        let Some((name, value)) = parsed else {
            self.done = true;
            return Ok(());
        };
        let slot_seen = match name.as_str() {
            "syntax" => self.syntax.is_some(),
            "escape" => self.escape.is_some(),
            "check" => self.check.is_some(),
            _ => {
                self.done = true;
                return Ok(());
            }
        };
        if slot_seen {
            return Err(format!("only one {name} parser directive can be used"));
        }
        match name.as_str() {
            "syntax" => self.syntax = Some(value),
            "check" => self.check = Some(value),
            _ => {
                if value != "\\" && value != "`" {
                    return Err(format!(
                        "invalid escape token '{value}' does not match ` or \\"
                    ));
                }
                self.escape = value.chars().next();
            }
        }
        Ok(())
    }
}

/// Parses `src` (the file's bytes); `file` names it in errors.
pub fn parse(file: &str, src: &[u8]) -> Result<Dockerfile, ParseError> {
    let e = |line: u32, col: u32, message: String| ParseError {
        file: file.to_string(),
        line,
        col,
        message: one_line(&message),
    };
    if src.len() > MAX_DOCKERFILE {
        return Err(e(
            1,
            1,
            format!("the file is larger than {MAX_DOCKERFILE} bytes"),
        ));
    }
    let text = match std::str::from_utf8(src) {
        Ok(t) => t,
        Err(err) => {
            let good = &src[..err.valid_up_to()];
            let line = good.iter().filter(|&&b| b == b'\n').count() as u32 + 1;
            let col = std::str::from_utf8(
                &good[good.iter().rposition(|&b| b == b'\n').map_or(0, |p| p + 1)..],
            )
            .map_or(1, |s| s.chars().count() as u32 + 1);
            return Err(e(line, col, "the file is not valid UTF-8".into()));
        }
    };
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let lines: Vec<&str> = text.split_inclusive('\n').collect();
    for (i, l) in lines.iter().enumerate() {
        if l.len() > MAX_LINE + 1 {
            return Err(e(
                i as u32 + 1,
                1,
                format!("dockerfile line greater than max allowed size of {MAX_LINE}"),
            ));
        }
    }
    let mut d = Directives {
        done: false,
        syntax: None,
        escape: None,
        check: None,
    };
    let mut out = Vec::new();
    let mut warnings = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        let esc = d.escape.unwrap_or('\\');
        let raw = trim_newline(lines[i]);
        let first = raw.trim_start();
        let lead_cols = raw[..raw.len() - first.len()].chars().count() as u32;
        d.line(first).map_err(|m| e(i as u32 + 1, 1, m))?;
        let start_line = i as u32 + 1;
        i += 1;
        let first = if is_comment(first) { "" } else { first };
        let (content, mut eol) = trim_continuation(first, d.escape.unwrap_or(esc));
        let esc = d.escape.unwrap_or('\\');
        if eol && content.is_empty() {
            continue;
        }
        let mut lg = Logical {
            text: content.to_string(),
            segs: vec![(0, start_line, 1 + lead_cols)],
        };
        let mut empty_continuation = false;
        while !eol && i < lines.len() {
            let raw = trim_newline(lines[i]);
            d.line(raw).map_err(|m| e(i as u32 + 1, 1, m))?;
            i += 1;
            if is_comment(raw) {
                continue;
            }
            if raw.trim_start().is_empty() {
                empty_continuation = true;
                continue;
            }
            let (c, end) = trim_continuation(raw, esc);
            lg.segs.push((lg.text.len(), i as u32, 1));
            lg.text.push_str(c);
            eol = end;
            if lg.text.len() > MAX_LOGICAL_LINE {
                return Err(e(
                    start_line,
                    1,
                    format!("an instruction is longer than {MAX_LOGICAL_LINE} bytes"),
                ));
            }
        }
        if empty_continuation {
            warnings.push(format!(
                "{file}:{start_line}: empty continuation line found in: {}",
                one_line(&lg.text)
            ));
        }
        if out.len() >= MAX_INSTRUCTIONS {
            return Err(e(
                start_line,
                1,
                format!("more than {MAX_INSTRUCTIONS} instructions"),
            ));
        }
        let mut ins = instruction(&lg, 0, esc, 0).map_err(|(off, m)| {
            let p = lg.pos(off);
            e(p.line, p.col, m)
        })?;
        // Heredoc bodies follow the line.
        if can_contain_heredoc(&ins.kind) && lg.text.contains("<<") {
            let docs = heredocs_from_line(&lg.text).map_err(|m| {
                e(
                    start_line,
                    1 + lead_cols,
                    format!("{}: {m}", ins.kind.name()),
                )
            })?;
            let mut bodies = Vec::with_capacity(docs.len());
            for mut h in docs {
                let mut done = false;
                while i < lines.len() {
                    let raw = lines[i];
                    i += 1;
                    let mut t = trim_newline(raw);
                    if h.chomp {
                        t = t.trim_start_matches('\t');
                    }
                    if t == h.name {
                        done = true;
                        break;
                    }
                    h.content.push_str(raw);
                    if h.content.len() > MAX_HEREDOC {
                        return Err(e(
                            start_line,
                            1 + lead_cols,
                            format!(
                                "{}: heredoc {:?} is longer than {MAX_HEREDOC} bytes",
                                ins.kind.name(),
                                h.name
                            ),
                        ));
                    }
                }
                if !done {
                    return Err(e(
                        start_line,
                        1 + lead_cols,
                        format!("{}: unterminated heredoc {:?} (no line {:?} before the end of the file)", ins.kind.name(), h.name, h.name),
                    ));
                }
                bodies.push(h);
            }
            attach_heredocs(&mut ins.kind, bodies);
        }
        ins.end_line = i as u32;
        ins.pos = lg.pos(0);
        out.push(ins);
    }
    if out.is_empty() {
        return Err(e(
            lines.len().max(1) as u32,
            1,
            "file with no instructions".into(),
        ));
    }
    Ok(Dockerfile {
        syntax: d.syntax,
        check: d.check,
        escape: d.escape.unwrap_or('\\'),
        instructions: out,
        warnings,
    })
}

/// Control characters in messages are escaped so an error is one line.
fn one_line(s: &str) -> String {
    if !s.chars().any(char::is_control) {
        return s.to_string();
    }
    s.chars()
        .flat_map(|c| {
            if c.is_control() {
                c.escape_default().collect::<Vec<_>>()
            } else {
                vec![c]
            }
        })
        .collect()
}

fn chomp(s: &str) -> String {
    s.split_inclusive('\n')
        .map(|l| l.trim_start_matches('\t'))
        .collect()
}

fn can_contain_heredoc(k: &Kind) -> bool {
    match k {
        Kind::Run(r) => matches!(r.command, CommandForm::Shell(_)),
        Kind::Copy(c) | Kind::Add(c) => !c.json,
        Kind::Onbuild(o) => can_contain_heredoc(&o.trigger.kind),
        _ => false,
    }
}

fn attach_heredocs(k: &mut Kind, bodies: Vec<Heredoc>) {
    match k {
        Kind::Run(r) => {
            r.heredocs = bodies
                .into_iter()
                .map(|mut h| {
                    if h.chomp {
                        h.content = chomp(&h.content);
                    }
                    h
                })
                .collect()
        }
        Kind::Copy(c) | Kind::Add(c) => {
            let by_name: HashMap<&str, &Heredoc> =
                bodies.iter().map(|h| (h.name.as_str(), h)).collect();
            for s in &mut c.sources {
                if let SourceItem::Heredoc(h) = s {
                    if let Some(b) = by_name.get(h.name.as_str()) {
                        h.content = if h.chomp {
                            chomp(&b.content)
                        } else {
                            b.content.clone()
                        };
                    }
                }
            }
        }
        Kind::Onbuild(o) => {
            // The image config keeps the trigger with its heredocs, as
            // written.
            for h in &bodies {
                o.expression.push('\n');
                o.expression.push_str(&h.content);
                o.expression.push_str(&h.name);
            }
            attach_heredocs(&mut o.trigger.kind, bodies)
        }
        _ => {}
    }
}

/// The heredocs a line opens, in order (BuildKit's `heredocsFromLine`).
fn heredocs_from_line(line: &str) -> Result<Vec<Heredoc>, String> {
    let lex = Lexer {
        raw_quotes: true,
        raw_escapes: true,
        skip_unset_env: true,
        ..Lexer::new('\\')
    };
    let none = |_: &str| None;
    let words = lex
        .process(line, &none)
        .map(|e| e.words)
        .unwrap_or_default();
    let mut docs = Vec::new();
    for w in words {
        if let Some(h) = parse_heredoc(&w)? {
            docs.push(h);
        }
    }
    Ok(docs)
}

/// `^(\d*)<<(-?)([^<]*)$` and the delimiter's quoting.
fn parse_heredoc(word: &str) -> Result<Option<Heredoc>, String> {
    let digits = word.bytes().take_while(u8::is_ascii_digit).count();
    let Some(rest) = word[digits..].strip_prefix("<<") else {
        return Ok(None);
    };
    let (chomp, rest) = match rest.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, rest),
    };
    if rest.is_empty() || rest.contains('<') {
        return Ok(None);
    }
    let fd = word[..digits].parse::<u32>().unwrap_or(0);
    let none = |_: &str| None;
    let mut lex = Lexer {
        skip_unset_env: true,
        ..Lexer::new('\\')
    };
    let words = lex.process(rest, &none).map_err(|e| e.0)?.words;
    if words.len() != 1 {
        return Ok(None);
    }
    lex.raw_quotes = true;
    let raw = lex.process(rest, &none).map_err(|e| e.0)?.words;
    if raw.len() != words.len() {
        return Err(format!(
            "internal lexing of heredoc produced inconsistent results: {rest}"
        ));
    }
    let quotes = |s: &str| s.chars().filter(|&c| c == '\'' || c == '"').count();
    Ok(Some(Heredoc {
        expand: quotes(&words[0]) == quotes(&raw[0]),
        name: words[0].clone(),
        fd,
        chomp,
        content: String::new(),
    }))
}

// ---- one instruction ------------------------------------------------------

type PErr = (usize, String);

#[derive(Clone, Copy, PartialEq)]
enum FlagType {
    Bool,
    Str,
    Strings,
}

#[derive(Debug)]
enum FlagValue {
    Bool(bool),
    Str(String),
    Strings(Vec<String>),
}

struct Flags(HashMap<&'static str, FlagValue>);

impl Flags {
    fn bool(&self, k: &str) -> bool {
        matches!(self.0.get(k), Some(FlagValue::Bool(true)))
    }
    fn str(&mut self, k: &str) -> Option<String> {
        match self.0.remove(k) {
            Some(FlagValue::Str(s)) => Some(s),
            _ => None,
        }
    }
    fn strings(&mut self, k: &str) -> Vec<String> {
        match self.0.remove(k) {
            Some(FlagValue::Strings(s)) => s,
            _ => Vec::new(),
        }
    }
}

/// BuildKit's `BFlags.Parse` over the flags a command takes.
fn parse_flags(
    name: &str,
    words: &[(String, usize)],
    allowed: &[(&'static str, FlagType)],
) -> Result<Flags, PErr> {
    let mut out: HashMap<&'static str, FlagValue> = HashMap::new();
    for (arg, off) in words {
        let off = *off;
        let Some(body) = arg.strip_prefix("--") else {
            return Err((off, format!("{name}: arg should start with -- : {arg}")));
        };
        if body.is_empty() {
            break;
        }
        let (flag, value) = match body.split_once('=') {
            Some((f, v)) => (f, Some(v)),
            None => (body, None),
        };
        let Some(&(key, ty)) = allowed.iter().find(|(k, _)| *k == flag) else {
            let takes = if allowed.is_empty() {
                format!("{name} takes no flags")
            } else {
                let l: Vec<String> = allowed.iter().map(|(k, _)| format!("--{k}")).collect();
                format!("{name} takes {}", l.join(", "))
            };
            return Err((off, format!("{name}: unknown flag: --{flag} ({takes})")));
        };
        if out.contains_key(key) && ty != FlagType::Strings {
            return Err((off, format!("{name}: duplicate flag specified: --{flag}")));
        }
        match ty {
            FlagType::Bool => {
                let v = match value.map(str::to_ascii_lowercase).as_deref() {
                    None => true,
                    Some("") => {
                        return Err((off, format!("{name}: missing a value on flag: --{flag}")))
                    }
                    Some("true") => true,
                    Some("false") => false,
                    Some(_) => {
                        return Err((
                            off,
                            format!(
                                "{name}: expecting boolean value for flag --{flag}, not: {}",
                                value.unwrap_or_default()
                            ),
                        ))
                    }
                };
                out.insert(key, FlagValue::Bool(v));
            }
            FlagType::Str | FlagType::Strings => {
                let Some(v) = value else {
                    return Err((off, format!("{name}: missing a value on flag: --{flag}")));
                };
                if ty == FlagType::Str {
                    out.insert(key, FlagValue::Str(v.to_string()));
                } else if let FlagValue::Strings(l) = out
                    .entry(key)
                    .or_insert_with(|| FlagValue::Strings(Vec::new()))
                {
                    l.push(v.to_string());
                }
            }
        }
    }
    Ok(Flags(out))
}

/// BuildKit's `extractBuilderFlags`: the leading `--flag` words and where
/// the arguments start.
fn extract_flags(line: &str) -> (usize, Vec<(String, usize)>) {
    #[derive(PartialEq)]
    enum Ph {
        Spaces,
        Word,
        Quote,
    }
    let chars: Vec<(usize, char)> = line.char_indices().collect();
    let n = chars.len();
    let mut words = Vec::new();
    let mut phase = Ph::Spaces;
    let mut word = String::new();
    let mut start = 0;
    let mut quote = '\0';
    let mut blank_ok = false;
    let mut p = 0;
    while p <= n {
        let (off, mut ch) = chars.get(p).copied().unwrap_or((line.len(), '\0'));
        if phase == Ph::Spaces {
            if p == n {
                break;
            }
            if ch.is_whitespace() {
                p += 1;
                continue;
            }
            if ch != '-' || p + 1 == n || chars[p + 1].1 != '-' {
                return (off, words);
            }
            phase = Ph::Word;
            start = off;
        }
        if p == n {
            if word != "--" && (blank_ok || !word.is_empty()) {
                words.push((word, start));
            }
            break;
        }
        if phase == Ph::Word {
            if ch.is_whitespace() {
                phase = Ph::Spaces;
                if word == "--" {
                    return (off, words);
                }
                if blank_ok || !word.is_empty() {
                    words.push((std::mem::take(&mut word), start));
                }
                word.clear();
                blank_ok = false;
                p += 1;
                continue;
            }
            if ch == '\'' || ch == '"' {
                quote = ch;
                blank_ok = true;
                phase = Ph::Quote;
                p += 1;
                continue;
            }
            if ch == '\\' {
                if p + 1 == n {
                    p += 1;
                    continue;
                }
                p += 1;
                ch = chars[p].1;
            }
            word.push(ch);
            p += 1;
            continue;
        }
        // In quotes.
        if ch == quote {
            phase = Ph::Word;
            p += 1;
            continue;
        }
        if ch == '\\' {
            if p + 1 == n {
                phase = Ph::Word;
                p += 1;
                continue;
            }
            p += 1;
            ch = chars[p].1;
        }
        word.push(ch);
        p += 1;
    }
    (line.len(), words)
}

/// BuildKit's `parseWords`: words split on whitespace outside quotes,
/// quotes and escapes kept.
pub(crate) fn parse_words(rest: &str, esc: char) -> Vec<String> {
    #[derive(PartialEq)]
    enum Ph {
        Spaces,
        Word,
        Quote,
    }
    let chars: Vec<char> = rest.chars().collect();
    let n = chars.len();
    let mut words = Vec::new();
    let mut phase = Ph::Spaces;
    let mut word = String::new();
    let mut quote = '\0';
    let mut blank_ok = false;
    let mut p = 0;
    while p <= n {
        let mut ch = chars.get(p).copied().unwrap_or('\0');
        if phase == Ph::Spaces {
            if p == n {
                break;
            }
            if ch.is_whitespace() {
                p += 1;
                continue;
            }
            phase = Ph::Word;
        }
        if p == n {
            if blank_ok || !word.is_empty() {
                words.push(word);
            }
            break;
        }
        if phase == Ph::Word {
            if ch.is_whitespace() {
                phase = Ph::Spaces;
                if blank_ok || !word.is_empty() {
                    words.push(std::mem::take(&mut word));
                }
                blank_ok = false;
                p += 1;
                continue;
            }
            if ch == '\'' || ch == '"' {
                quote = ch;
                blank_ok = true;
                phase = Ph::Quote;
            }
            if ch == esc {
                if p + 1 == n {
                    p += 1;
                    continue;
                }
                word.push(ch);
                p += 1;
                ch = chars[p];
            }
            word.push(ch);
            p += 1;
            continue;
        }
        if ch == quote {
            phase = Ph::Word;
        }
        if ch == esc && quote != '\'' {
            if p + 1 == n {
                phase = Ph::Word;
                p += 1;
                continue;
            }
            p += 1;
            word.push(ch);
            ch = chars[p];
        }
        word.push(ch);
        p += 1;
    }
    words
}

fn is_ws_delim(c: char) -> bool {
    matches!(c, '\t' | '\x0b' | '\x0c' | '\r' | ' ')
}

fn split_ws(rest: &str) -> Vec<String> {
    let t = rest.trim();
    if t.is_empty() {
        return Vec::new();
    }
    t.split(is_ws_delim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect()
}

/// The JSON form: `Ok(Some)` for an array of strings, `Ok(None)` when not
/// JSON (the shell form applies), an error for an array of other things.
fn parse_json(rest: &str) -> Result<Option<Vec<String>>, String> {
    let t = rest.trim_start();
    if !t.starts_with('[') {
        return Ok(None);
    }
    let Ok(v) = serde_json::from_str::<Vec<serde_json::Value>>(t) else {
        return Ok(None);
    };
    v.into_iter()
        .map(|x| match x {
            serde_json::Value::String(s) => Ok(s),
            _ => Err(
                "when using JSON array syntax, arrays must be comprised of strings only"
                    .to_string(),
            ),
        })
        .collect::<Result<Vec<_>, _>>()
        .map(Some)
}

/// Stage names: `^[a-z][a-z0-9-_.]*$` (after lower-casing).
pub fn valid_stage_name(n: &str) -> bool {
    let mut c = n.chars();
    c.next().is_some_and(|f| f.is_ascii_lowercase())
        && c.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '-' | '_' | '.'))
}

/// Go's `time.ParseDuration`.
pub fn go_duration(s: &str) -> Option<(bool, Duration)> {
    let (neg, mut rest) = match s.as_bytes().first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    if rest == "0" {
        return Some((neg, Duration::ZERO));
    }
    if rest.is_empty() {
        return None;
    }
    let mut total: u128 = 0;
    while !rest.is_empty() {
        let int_len = rest.bytes().take_while(u8::is_ascii_digit).count();
        let (int, r) = rest.split_at(int_len);
        let (frac, r) = match r.strip_prefix('.') {
            Some(r) => {
                let fl = r.bytes().take_while(u8::is_ascii_digit).count();
                r.split_at(fl)
            }
            None => ("", r),
        };
        if int.is_empty() && frac.is_empty() {
            return None;
        }
        let ul = r
            .find(|c: char| c == '.' || c.is_ascii_digit())
            .unwrap_or(r.len());
        let (unit, r) = r.split_at(ul);
        let mult: u128 = match unit {
            "ns" => 1,
            "us" | "µs" | "μs" => 1_000,
            "ms" => 1_000_000,
            "s" => 1_000_000_000,
            "m" => 60_000_000_000,
            "h" => 3_600_000_000_000,
            _ => return None,
        };
        let i: u128 = if int.is_empty() { 0 } else { int.parse().ok()? };
        let mut v = i.checked_mul(mult)?;
        let mut scale = mult;
        for d in frac.bytes().take(30) {
            scale /= 10;
            v += u128::from(d - b'0') * scale;
        }
        total = total.checked_add(v)?;
        if total > i64::MAX as u128 {
            return None;
        }
        rest = r;
    }
    Some((neg, Duration::from_nanos(total as u64)))
}

const FROM_FLAGS: &[(&str, FlagType)] = &[("platform", FlagType::Str)];
const RUN_FLAGS: &[(&str, FlagType)] = &[
    ("mount", FlagType::Strings),
    ("network", FlagType::Str),
    ("security", FlagType::Str),
];
const COPY_FLAGS: &[(&str, FlagType)] = &[
    ("from", FlagType::Str),
    ("chown", FlagType::Str),
    ("chmod", FlagType::Str),
    ("link", FlagType::Bool),
    ("parents", FlagType::Bool),
    ("exclude", FlagType::Strings),
];
const ADD_FLAGS: &[(&str, FlagType)] = &[
    ("chown", FlagType::Str),
    ("chmod", FlagType::Str),
    ("link", FlagType::Bool),
    ("keep-git-dir", FlagType::Bool),
    ("checksum", FlagType::Str),
    ("exclude", FlagType::Strings),
];
const HEALTH_FLAGS: &[(&str, FlagType)] = &[
    ("interval", FlagType::Str),
    ("timeout", FlagType::Str),
    ("start-period", FlagType::Str),
    ("start-interval", FlagType::Str),
    ("retries", FlagType::Str),
];

/// Parses the logical line from byte `base` on (ONBUILD parses its
/// trigger from its arguments).
fn instruction(lg: &Logical, base: usize, esc: char, depth: u8) -> Result<Instruction, PErr> {
    let line = &lg.text[base..];
    let lead = line.len() - line.trim_start().len();
    let body = line.trim();
    let kw_end = body.find(is_ws_delim).unwrap_or(body.len());
    let keyword = &body[..kw_end];
    let after_kw = &body[kw_end..];
    let sep = after_kw.len() - after_kw.trim_start_matches(is_ws_delim).len();
    let flags_text = &after_kw[sep..];
    let flags_base = base + lead + kw_end + sep;
    let (args_rel, flag_words) = extract_flags(flags_text);
    let flag_words: Vec<(String, usize)> = flag_words
        .into_iter()
        .map(|(w, o)| (w, flags_base + o))
        .collect();
    let args_raw = &flags_text[args_rel.min(flags_text.len())..];
    let args_off = flags_base + args_rel + (args_raw.len() - args_raw.trim_start().len());
    let rest = args_raw.trim();
    let kw_off = base + lead;
    let upper = keyword.to_ascii_uppercase();
    let name: &'static str = match upper.as_str() {
        "FROM" => "FROM",
        "RUN" => "RUN",
        "CMD" => "CMD",
        "ENTRYPOINT" => "ENTRYPOINT",
        "SHELL" => "SHELL",
        "COPY" => "COPY",
        "ADD" => "ADD",
        "ENV" => "ENV",
        "ARG" => "ARG",
        "WORKDIR" => "WORKDIR",
        "USER" => "USER",
        "EXPOSE" => "EXPOSE",
        "VOLUME" => "VOLUME",
        "LABEL" => "LABEL",
        "HEALTHCHECK" => "HEALTHCHECK",
        "STOPSIGNAL" => "STOPSIGNAL",
        "ONBUILD" => "ONBUILD",
        "MAINTAINER" => "MAINTAINER",
        _ => {
            return Err((
                kw_off,
                format!("unknown instruction: {}", one_line(keyword)),
            ))
        }
    };
    let at = |m: String| (args_off, format!("{name}: {m}"));
    let allowed: &[(&str, FlagType)] = match name {
        "FROM" => FROM_FLAGS,
        "RUN" => RUN_FLAGS,
        "COPY" => COPY_FLAGS,
        "ADD" => ADD_FLAGS,
        "HEALTHCHECK" => HEALTH_FLAGS,
        _ => &[],
    };
    // BuildKit reads HEALTHCHECK's flags only for CMD.
    let none_check = name == "HEALTHCHECK"
        && rest
            .split(char::is_whitespace)
            .next()
            .is_some_and(|w| w.eq_ignore_ascii_case("NONE"));
    let mut flags = if none_check {
        Flags(HashMap::new())
    } else {
        parse_flags(name, &flag_words, allowed)?
    };
    let flag_off = |k: &str| {
        flag_words
            .iter()
            .find(|(w, _)| {
                w.strip_prefix("--")
                    .is_some_and(|b| b.split('=').next() == Some(k))
            })
            .map_or(args_off, |(_, o)| *o)
    };
    let non_empty = |what: &str| -> Result<String, PErr> {
        if rest.is_empty() {
            Err(at(format!("{name} requires exactly one argument{what}")))
        } else {
            Ok(rest.to_string())
        }
    };
    let command_form = |rest: &str| -> Result<CommandForm, PErr> {
        Ok(match parse_json(rest).map_err(at)? {
            Some(v) => CommandForm::Exec(v),
            None => CommandForm::Shell(rest.to_string()),
        })
    };
    let kind = match name {
        "FROM" => {
            let words = split_ws(rest);
            let stage = match words.len() {
                1 => None,
                3 if words[1].eq_ignore_ascii_case("as") => {
                    // With a variable, lower-cased after expansion.
                    let n = if words[2].contains('$') {
                        words[2].clone()
                    } else {
                        words[2].to_ascii_lowercase()
                    };
                    if !n.contains('$') && !valid_stage_name(&n) {
                        return Err(at(format!(
                            "invalid name for build stage: {:?}, name can't start with a number or contain symbols",
                            words[2]
                        )));
                    }
                    Some(n)
                }
                _ => return Err(at("FROM requires either one or three arguments".into())),
            };
            Kind::From(From {
                image: words[0].clone(),
                name: stage,
                platform: flags.str("platform"),
            })
        }
        "RUN" => {
            let command = command_form(rest)?;
            let mount_specs = flags.strings("mount");
            let mut mounts = Vec::with_capacity(mount_specs.len());
            for s in &mount_specs {
                mounts.push(Mount::parse(s, None).map_err(|m| {
                    (
                        flag_off("mount"),
                        format!("RUN: --mount={}: {m}", one_line(s)),
                    )
                })?);
            }
            let network = match flags.str("network").as_deref() {
                None => None,
                Some("default") => Some(NetworkMode::Default),
                Some("none") => Some(NetworkMode::None),
                Some("host") => Some(NetworkMode::Host),
                Some(o) => {
                    return Err((
                        flag_off("network"),
                        format!("RUN: unsupported network mode {o:?} (default, none or host)"),
                    ))
                }
            };
            let security = match flags.str("security").as_deref() {
                None => None,
                Some("sandbox") => Some(Security::Sandbox),
                Some("insecure") => Some(Security::Insecure),
                Some(o) => {
                    return Err((
                        flag_off("security"),
                        format!("RUN: unsupported security mode {o:?} (sandbox or insecure)"),
                    ))
                }
            };
            Kind::Run(Run {
                command,
                heredocs: Vec::new(),
                mount_specs,
                mounts,
                network,
                security,
            })
        }
        "CMD" => Kind::Cmd(command_form(rest)?),
        "ENTRYPOINT" => Kind::Entrypoint(command_form(rest)?),
        "SHELL" => match parse_json(rest).map_err(at)? {
            Some(v) if v.is_empty() => {
                return Err(at("SHELL requires at least one argument".into()))
            }
            Some(v) => Kind::Shell(v),
            None if rest.is_empty() => {
                return Err(at("SHELL requires at least one argument".into()))
            }
            None => return Err(at("SHELL requires the arguments to be in JSON form".into())),
        },
        "COPY" | "ADD" => {
            let (list, json) = match parse_json(rest).map_err(at)? {
                Some(v) => (v, true),
                None => (split_ws(rest), false),
            };
            if list.len() < 2 {
                return Err(at(format!(
                    "{name} requires at least two arguments, but only {} provided. Destination could not be determined",
                    if list.is_empty() { "none was" } else { "one was" }
                )));
            }
            let (srcs, dest) = list.split_at(list.len() - 1);
            let dest = dest[0].clone();
            if !json && parse_heredoc(&dest).ok().flatten().is_some() {
                return Err(at(format!(
                    "{name} cannot accept a heredoc as a destination"
                )));
            }
            let mut sources = Vec::with_capacity(srcs.len());
            for s in srcs {
                match (!json)
                    .then(|| parse_heredoc(s))
                    .transpose()
                    .map_err(at)?
                    .flatten()
                {
                    Some(h) => sources.push(SourceItem::Heredoc(h)),
                    None => sources.push(SourceItem::Path(s.clone())),
                }
            }
            let is_add = name == "ADD";
            let args = CopyArgs {
                sources,
                dest,
                json,
                from: if is_add { None } else { flags.str("from") },
                chown: flags.str("chown"),
                chmod: flags.str("chmod"),
                checksum: flags.str("checksum"),
                link: flags.bool("link"),
                parents: flags.bool("parents"),
                keep_git_dir: flags.bool("keep-git-dir"),
                exclude: flags.strings("exclude"),
            };
            if is_add {
                Kind::Add(args)
            } else {
                Kind::Copy(args)
            }
        }
        "ENV" | "LABEL" => {
            let kvs = parse_name_val(rest, name, esc).map_err(at)?;
            if name == "ENV" {
                Kind::Env(kvs)
            } else {
                Kind::Label(kvs)
            }
        }
        "ARG" => {
            let words = parse_words(rest, esc);
            if words.is_empty() {
                return Err(at("ARG requires at least one argument".into()));
            }
            let mut out = Vec::with_capacity(words.len());
            for w in words {
                let (n, d) = match w.split_once('=') {
                    Some((n, d)) => (n.to_string(), Some(d.to_string())),
                    None => (w, None),
                };
                if n.is_empty() {
                    return Err(at("ARG names can not be blank".into()));
                }
                out.push(ArgDecl {
                    name: n,
                    default: d,
                });
            }
            Kind::Arg(out)
        }
        "WORKDIR" => Kind::Workdir(non_empty("")?),
        "USER" => Kind::User(non_empty("")?),
        "STOPSIGNAL" => Kind::StopSignal(non_empty("")?),
        "MAINTAINER" => Kind::Maintainer(non_empty("")?),
        "EXPOSE" => {
            let w = split_ws(rest);
            if w.is_empty() {
                return Err(at("EXPOSE requires at least one argument".into()));
            }
            Kind::Expose(w)
        }
        "VOLUME" => {
            let list = match parse_json(rest).map_err(at)? {
                Some(v) => v,
                None => split_ws(rest),
            };
            if list.is_empty() {
                return Err(at("VOLUME requires at least one argument".into()));
            }
            let mut vols = Vec::with_capacity(list.len());
            for v in list {
                let v = v.trim();
                if v.is_empty() {
                    return Err(at("VOLUME specified can not be an empty string".into()));
                }
                vols.push(v.to_string());
            }
            Kind::Volume(vols)
        }
        "HEALTHCHECK" => {
            let sep = rest.find(char::is_whitespace).unwrap_or(rest.len());
            let typ = rest[..sep].to_ascii_uppercase();
            let cmd = rest[sep..].trim_start();
            let mut hc = Healthcheck {
                test: Vec::new(),
                interval: Duration::ZERO,
                timeout: Duration::ZERO,
                start_period: Duration::ZERO,
                start_interval: Duration::ZERO,
                retries: 0,
            };
            match typ.as_str() {
                "" => return Err(at("HEALTHCHECK requires at least one argument".into())),
                "NONE" => {
                    if !cmd.is_empty() {
                        return Err(at("HEALTHCHECK NONE takes no arguments".into()));
                    }
                    hc.test = vec!["NONE".into()];
                }
                "CMD" => {
                    hc.test = match parse_json(cmd).map_err(at)? {
                        Some(v) => {
                            if v.is_empty() {
                                return Err(at("Missing command after HEALTHCHECK CMD".into()));
                            }
                            std::iter::once("CMD".to_string()).chain(v).collect()
                        }
                        None if cmd.is_empty() => {
                            return Err(at("Missing command after HEALTHCHECK CMD".into()))
                        }
                        None => vec!["CMD-SHELL".into(), cmd.to_string()],
                    };
                    for (k, slot) in [
                        ("interval", &mut hc.interval),
                        ("timeout", &mut hc.timeout),
                        ("start-period", &mut hc.start_period),
                        ("start-interval", &mut hc.start_interval),
                    ] {
                        let Some(v) = flags.str(k) else { continue };
                        if v.is_empty() {
                            continue;
                        }
                        let (neg, d) = go_duration(&v).ok_or_else(|| {
                            (flag_off(k), format!("HEALTHCHECK: invalid duration {v:?} for --{k} (like 30s, 1m30s, 500ms)"))
                        })?;
                        if d.is_zero() {
                            continue;
                        }
                        if neg || d < Duration::from_millis(1) {
                            return Err((
                                flag_off(k),
                                format!("HEALTHCHECK: Interval \"{k}\" cannot be less than 1ms"),
                            ));
                        }
                        *slot = d;
                    }
                    if let Some(r) = flags.str("retries") {
                        if !r.is_empty() {
                            let n: i64 = r
                                .parse()
                                .ok()
                                .filter(|n: &i64| i32::try_from(*n).is_ok())
                                .ok_or_else(|| {
                                    (
                                        flag_off("retries"),
                                        format!(
                                            "HEALTHCHECK: invalid --retries {r:?}: not a number"
                                        ),
                                    )
                                })?;
                            if n < 0 {
                                return Err((
                                    flag_off("retries"),
                                    format!("HEALTHCHECK: --retries cannot be negative ({n})"),
                                ));
                            }
                            hc.retries = n as u32;
                        }
                    }
                }
                _ => {
                    return Err(at(format!(
                        "Unknown type {:?} in HEALTHCHECK (try CMD)",
                        one_line(&typ)
                    )))
                }
            }
            Kind::Healthcheck(hc)
        }
        "ONBUILD" => {
            if rest.is_empty() {
                return Err(at("ONBUILD requires at least one argument".into()));
            }
            if depth > 0 {
                return Err(at("ONBUILD ONBUILD is not allowed".into()));
            }
            let inner = instruction(lg, args_off, esc, depth + 1)?;
            match inner.kind {
                Kind::Onbuild(_) => {
                    return Err(at(
                        "Chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed".into()
                    ))
                }
                Kind::From(_) | Kind::Maintainer(_) => {
                    return Err(at(format!(
                        "{} isn't allowed as an ONBUILD trigger",
                        inner.kind.name()
                    )))
                }
                _ => {}
            }
            Kind::Onbuild(Onbuild {
                expression: rest.to_string(),
                trigger: Box::new(inner),
            })
        }
        _ => unreachable_kind(kw_off)?,
    };
    Ok(Instruction {
        pos: lg.pos(kw_off),
        end_line: lg.segs.last().map_or(1, |s| s.1),
        original: body.to_string(),
        kind,
    })
}

fn unreachable_kind(off: usize) -> Result<Kind, PErr> {
    Err((
        off,
        "internal error: an instruction without a parser".into(),
    ))
}

/// BuildKit's `parseNameVal` for ENV and LABEL: `KEY value` (the old form)
/// or `k=v k2="v 2"` (values keep their quotes until expansion).
fn parse_name_val(rest: &str, name: &str, esc: char) -> Result<Vec<KeyValue>, String> {
    let words = parse_words(rest, esc);
    if words.is_empty() {
        return Err(format!("{name} must have two arguments"));
    }
    if !words[0].contains('=') {
        let parts: Vec<&str> = rest.splitn(2, is_ws_delim).collect();
        let value = parts.get(1).map(|v| v.trim_start_matches(is_ws_delim));
        let Some(value) = value else {
            return Err(format!("{name} must have two arguments"));
        };
        if parts[0].is_empty() {
            return Err(format!("{name} names can not be blank"));
        }
        return Ok(vec![KeyValue {
            key: parts[0].to_string(),
            value: value.to_string(),
        }]);
    }
    let mut out = Vec::with_capacity(words.len());
    for w in words {
        let Some((k, v)) = w.split_once('=') else {
            return Err(format!(
                "Syntax error - can't find = in {w:?}. Must be of the form: name=value"
            ));
        };
        if k.is_empty() {
            return Err(format!("{name} names can not be blank"));
        }
        out.push(KeyValue {
            key: k.to_string(),
            value: v.to_string(),
        });
    }
    Ok(out)
}

#[cfg(test)]
#[path = "parse_tests.rs"]
mod tests;
