//! Go `text/template` for `--format`: `{{.Names}}\t{{.Status}}`,
//! `{{json .}}`, `{{range .Mounts}}{{.Source}} {{end}}`, `table ...`.
//!
//! Written here rather than taken from a crate: the one Rust
//! implementation (gtmpl) has its own value type instead of
//! `serde_json::Value`, has had no release since 2021, lacks Docker's
//! functions (`json`, `upper`, `join`, `truncate`, `pad`, ...) and has no
//! bound on its output or its work, which a format that walks a
//! container's labels needs.
//!
//! Pure: [`Template::parse`] and [`Template::execute`] do no I/O. A
//! template runs against a [`serde_json::Value`]; each view (ps, images,
//! stats, volume ls, inspect) is a JSON object with the Go struct field
//! names Docker's templates use.
//!
//! What is understood: text; actions `{{pipeline}}` with `|` pipelines,
//! parentheses, fields `.A.B`, variables `$`, `$x := ...`, `$x = ...`,
//! strings ("..." and `...`), numbers, `true`/`false`/`nil`; `{{if}}`,
//! `{{else if}}`, `{{else}}`, `{{range}}` (over arrays, objects and a
//! number, with `$i, $e :=`), `{{with}}`, `{{end}}`; comments
//! `{{/* */}}`; trimming `{{- ` and ` -}}`. Functions: Go's `and or not
//! eq ne lt le gt ge len index print printf println` and Docker's `json
//! upper lower title split join truncate pad`; `.Label "k"` looks a label
//! up in `.Labels` (an object, or Docker's `k=v,k2=v2` text).
//!
//! Bounded: output is capped at [`MAX_OUTPUT`], as is any string a
//! function makes; every step counts against [`MAX_STEPS`] (nested
//! `range`s over a large value end with an error, not hours later);
//! nesting is capped at [`MAX_DEPTH`].

use serde_json::{Map, Number, Value};
use std::fmt::Write as _;

/// The most output (and the longest string a function may make).
pub const MAX_OUTPUT: usize = 16 << 20;
/// The most steps (nodes run, range iterations, calls) of one execution.
pub const MAX_STEPS: u64 = 10_000_000;
/// The deepest nesting of blocks and parentheses.
pub const MAX_DEPTH: usize = 100;

/// A template that could not be parsed or run.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum Error {
    /// The template's text is wrong at `line`:`column` (1-based, in
    /// characters).
    #[error("template: line {line}, column {column}: {msg}")]
    Parse {
        line: usize,
        column: usize,
        msg: String,
    },
    /// Running it failed: what was missing or wrong, and where.
    #[error("template: executing at line {line}, column {column}: {msg}")]
    Exec {
        line: usize,
        column: usize,
        msg: String,
    },
}

/// A parsed template.
#[derive(Debug, Clone)]
pub struct Template {
    src: String,
    nodes: Vec<Node>,
}

#[derive(Debug, Clone)]
enum Node {
    Text(String),
    Action(Pipe),
    If(Pipe, Vec<Node>, Vec<Node>),
    With(Pipe, Vec<Node>, Vec<Node>),
    Range(Pipe, Vec<Node>, Vec<Node>),
}

#[derive(Debug, Clone)]
struct Pipe {
    pos: usize,
    vars: Vec<String>,
    /// `:=` declares, `=` assigns; no variables: neither.
    declare: bool,
    cmds: Vec<Vec<Arg>>,
}

#[derive(Debug, Clone)]
enum Arg {
    /// `.A.B` (empty: `.`); `pos` for errors.
    Field(usize, Vec<String>),
    /// `$x.A.B`.
    Var(usize, String, Vec<String>),
    /// A function's name.
    Func(usize, String),
    Lit(Value),
    /// `( pipeline )` and the fields after it.
    Sub(Box<Pipe>, Vec<String>),
}

/// Line and column (1-based, in characters) of byte `pos` of `src`.
fn line_col(src: &str, pos: usize) -> (usize, usize) {
    let pos = pos.min(src.len());
    let before = &src[..pos];
    let line = before.matches('\n').count() + 1;
    let start = before.rfind('\n').map_or(0, |i| i + 1);
    (line, before[start..].chars().count() + 1)
}

// ---------------------------------------------------------------- lexing

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Field(Vec<String>),
    Var(String, Vec<String>),
    Ident(String),
    Lit(Value),
    Pipe,
    LParen,
    RParen,
    Declare,
    Assign,
    Comma,
    /// `.Field` right after `)`.
    Chain(Vec<String>),
}

fn is_ident(c: char) -> bool {
    c == '_' || c.is_alphanumeric()
}

/// The tokens of one action's inside (`s`, starting at byte `base` of the
/// template), each with its byte position.
fn lex_action(s: &str, base: usize) -> Result<Vec<(usize, Tok)>, (usize, String)> {
    let b = s.as_bytes();
    let mut out: Vec<(usize, Tok)> = Vec::new();
    let mut i = 0;
    let fields = |i: &mut usize| -> Vec<String> {
        let mut f = Vec::new();
        while *i < b.len() && b[*i] == b'.' {
            let st = *i + 1;
            let mut j = st;
            while j < s.len() {
                let c = s[j..].chars().next().unwrap_or(' ');
                if !is_ident(c) {
                    break;
                }
                j += c.len_utf8();
            }
            if j == st {
                break;
            }
            f.push(s[st..j].to_string());
            *i = j;
        }
        f
    };
    while i < b.len() {
        let c = s[i..].chars().next().unwrap_or(' ');
        let at = base + i;
        match c {
            ' ' | '\t' | '\n' | '\r' => i += 1,
            '|' => {
                out.push((at, Tok::Pipe));
                i += 1
            }
            '(' => {
                out.push((at, Tok::LParen));
                i += 1
            }
            ')' => {
                out.push((at, Tok::RParen));
                i += 1;
                let f = fields(&mut i);
                if !f.is_empty() {
                    out.push((at, Tok::Chain(f)));
                }
            }
            ',' => {
                out.push((at, Tok::Comma));
                i += 1
            }
            ':' if b.get(i + 1) == Some(&b'=') => {
                out.push((at, Tok::Declare));
                i += 2
            }
            '=' => {
                out.push((at, Tok::Assign));
                i += 1
            }
            '.' => {
                let f = fields(&mut i);
                if f.is_empty() {
                    // `.` alone (or `.` before something not a name).
                    i += 1;
                    if let Some(c) = s[i..]
                        .chars()
                        .next()
                        .filter(|c| !matches!(c, ' ' | '\t' | '\n' | '\r' | ')' | '|'))
                    {
                        return Err((base + i, format!("unexpected {c:?} after \".\"")));
                    }
                }
                out.push((at, Tok::Field(f)));
            }
            '$' => {
                let st = i + 1;
                let mut j = st;
                while j < s.len() {
                    let c = s[j..].chars().next().unwrap_or(' ');
                    if !is_ident(c) {
                        break;
                    }
                    j += c.len_utf8();
                }
                let name = format!("${}", &s[st..j]);
                i = j;
                let f = fields(&mut i);
                out.push((at, Tok::Var(name, f)));
            }
            '"' => {
                let mut j = i + 1;
                let mut v = String::new();
                loop {
                    let Some(c) = s[j..].chars().next() else {
                        return Err((at, "unterminated quoted string".into()));
                    };
                    j += c.len_utf8();
                    match c {
                        '"' => break,
                        '\n' => return Err((at, "newline in quoted string".into())),
                        '\\' => {
                            let Some(e) = s[j..].chars().next() else {
                                return Err((at, "unterminated quoted string".into()));
                            };
                            j += e.len_utf8();
                            v.push(match e {
                                'n' => '\n',
                                't' => '\t',
                                'r' => '\r',
                                '\\' => '\\',
                                '"' => '"',
                                '\'' => '\'',
                                '0' => '\0',
                                _ => {
                                    return Err((
                                        base + j - e.len_utf8(),
                                        format!("unknown escape \\{e} in quoted string"),
                                    ))
                                }
                            });
                        }
                        c => v.push(c),
                    }
                }
                out.push((at, Tok::Lit(Value::String(v))));
                i = j;
            }
            '`' => {
                let Some(end) = s[i + 1..].find('`') else {
                    return Err((at, "unterminated raw string".into()));
                };
                out.push((at, Tok::Lit(Value::String(s[i + 1..i + 1 + end].into()))));
                i += end + 2;
            }
            c if c.is_ascii_digit() || c == '-' || c == '+' => {
                let st = i;
                i += 1;
                while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'.' || b[i] == b'_')
                {
                    i += 1;
                }
                let t = s[st..i].replace('_', "");
                let n = if let Ok(n) = t.parse::<i64>() {
                    Number::from(n)
                } else if let Some(n) = t.parse::<f64>().ok().and_then(Number::from_f64) {
                    n
                } else {
                    return Err((at, format!("bad number {:?}", &s[st..i])));
                };
                out.push((at, Tok::Lit(Value::Number(n))));
            }
            c if is_ident(c) => {
                let st = i;
                while i < s.len() {
                    let c = s[i..].chars().next().unwrap_or(' ');
                    if !is_ident(c) {
                        break;
                    }
                    i += c.len_utf8();
                }
                let w = &s[st..i];
                out.push((
                    at,
                    match w {
                        "true" => Tok::Lit(Value::Bool(true)),
                        "false" => Tok::Lit(Value::Bool(false)),
                        "nil" => Tok::Lit(Value::Null),
                        _ => Tok::Ident(w.into()),
                    },
                ));
            }
            c => return Err((at, format!("unexpected {c:?} in action"))),
        }
    }
    Ok(out)
}

// --------------------------------------------------------------- parsing

/// One `{{...}}` found in the text.
struct Action {
    pos: usize,
    toks: Vec<(usize, Tok)>,
}

enum Piece {
    Text(String),
    Action(Action),
}

/// Splits `src` into text and actions, applying the trim markers.
fn split(src: &str) -> Result<Vec<Piece>, (usize, String)> {
    let mut out = Vec::new();
    let mut i = 0;
    let mut trim_next = false;
    while i < src.len() {
        let Some(o) = src[i..].find("{{") else {
            let mut t = &src[i..];
            if trim_next {
                t = t.trim_start();
            }
            out.push(Piece::Text(t.to_string()));
            break;
        };
        let open = i + o;
        let mut text = &src[i..open];
        if trim_next {
            text = text.trim_start();
        }
        let mut inner = open + 2;
        let rest = &src[inner..];
        if rest.starts_with("- ")
            || rest.starts_with("-\t")
            || rest.starts_with("-\n")
            || rest.starts_with("-\r")
        {
            text = text.trim_end();
            inner += 2;
        }
        if !text.is_empty() {
            out.push(Piece::Text(text.to_string()));
        }
        // The action's end: `}}` outside quotes.
        let b = src.as_bytes();
        let mut j = inner;
        let mut quote: Option<u8> = None;
        let close = loop {
            if j >= b.len() {
                return Err((open, "unclosed action: no \"}}\"".into()));
            }
            match (quote, b[j]) {
                (None, b'"' | b'`') => quote = Some(b[j]),
                (Some(q), c) if c == q => quote = None,
                (Some(b'"'), b'\\') => j += 1,
                (None, b'}') if b.get(j + 1) == Some(&b'}') => break j,
                _ => {}
            }
            j += 1;
        };
        let mut end = close;
        trim_next = false;
        if end >= inner + 2 && matches!(&b[end - 2..end], b" -" | b"\t-" | b"\n-" | b"\r-") {
            end -= 2;
            trim_next = true;
        }
        let body = &src[inner..end.max(inner)];
        let t = body.trim();
        if t.starts_with("/*") {
            if !t.ends_with("*/") || t.len() < 4 {
                return Err((inner, "unclosed comment".into()));
            }
        } else {
            out.push(Piece::Action(Action {
                pos: open,
                toks: lex_action(body, inner)?,
            }));
        }
        i = close + 2;
    }
    Ok(out)
}

struct Parser {
    pieces: std::vec::IntoIter<Piece>,
    depth: usize,
}

/// How a list of nodes ended.
enum End {
    Eof,
    Closed,
    Else(Action),
}

impl Parser {
    fn list(&mut self) -> Result<(Vec<Node>, End), (usize, String)> {
        let mut nodes = Vec::new();
        while let Some(p) = self.pieces.next() {
            let a = match p {
                Piece::Text(t) => {
                    nodes.push(Node::Text(t));
                    continue;
                }
                Piece::Action(a) => a,
            };
            let kw = match a.toks.first() {
                Some((_, Tok::Ident(k))) => k.as_str(),
                _ => "",
            };
            match kw {
                "end" => {
                    if a.toks.len() > 1 {
                        return Err((a.toks[1].0, "unexpected words after \"end\"".into()));
                    }
                    return Ok((nodes, End::Closed));
                }
                "else" => return Ok((nodes, End::Else(a))),
                "if" | "with" | "range" => {
                    let kw = kw.to_string();
                    nodes.push(self.block(&kw, a.pos, a.toks[1..].to_vec())?);
                }
                "define" | "template" | "block" | "break" | "continue" => {
                    return Err((a.pos, format!("\"{kw}\" is not supported in --format")))
                }
                _ => {
                    if a.toks.is_empty() {
                        return Err((a.pos, "empty action".into()));
                    }
                    nodes.push(Node::Action(pipeline(a.pos, &a.toks, true, 0)?));
                }
            }
        }
        Ok((nodes, End::Eof))
    }

    fn block(
        &mut self,
        kw: &str,
        pos: usize,
        toks: Vec<(usize, Tok)>,
    ) -> Result<Node, (usize, String)> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err((pos, format!("blocks nested deeper than {MAX_DEPTH}")));
        }
        if toks.is_empty() {
            return Err((pos, format!("missing value for \"{kw}\"")));
        }
        let pipe = pipeline(pos, &toks, true, 0)?;
        if kw == "range" && pipe.vars.len() > 2 || kw != "range" && pipe.vars.len() > 1 {
            return Err((pos, format!("too many variables declared in \"{kw}\"")));
        }
        let (body, end) = self.list()?;
        let els = match end {
            End::Eof => return Err((pos, format!("unclosed \"{kw}\": no {{{{end}}}}"))),
            End::Closed => Vec::new(),
            End::Else(a) => match a.toks.get(1) {
                None => {
                    let (e, end) = self.list()?;
                    match end {
                        End::Closed => e,
                        End::Eof => {
                            return Err((pos, format!("unclosed \"{kw}\": no {{{{end}}}}")))
                        }
                        End::Else(a) => {
                            return Err((a.pos, "a second {{else}} in one block".into()))
                        }
                    }
                }
                Some((_, Tok::Ident(k))) if (k == "if" || k == "with") && kw != "range" => {
                    // `{{else if x}}`: an `if` inside the else, sharing the `end`.
                    let k = k.clone();
                    vec![self.block(&k, a.pos, a.toks[2..].to_vec())?]
                }
                Some((p, _)) => {
                    return Err((*p, "unexpected words after \"else\"".into()));
                }
            },
        };
        self.depth -= 1;
        Ok(match kw {
            "if" => Node::If(pipe, body, els),
            "with" => Node::With(pipe, body, els),
            _ => Node::Range(pipe, body, els),
        })
    }
}

/// A pipeline from `toks` (a whole action's or a parenthesis' inside);
/// `decl`: variables may be declared at its start.
fn pipeline(
    pos: usize,
    toks: &[(usize, Tok)],
    decl: bool,
    depth: usize,
) -> Result<Pipe, (usize, String)> {
    let mut i = 0;
    let mut vars = Vec::new();
    let mut declare = false;
    if decl {
        // `$x :=`, `$x =`, `$i, $e :=`
        let mut j = 0;
        let mut names = Vec::new();
        loop {
            match toks.get(j) {
                Some((_, Tok::Var(n, f))) if f.is_empty() => names.push(n.clone()),
                _ => break,
            }
            match toks.get(j + 1) {
                Some((_, Tok::Comma)) => j += 2,
                Some((_, Tok::Declare)) => {
                    declare = true;
                    vars = names;
                    i = j + 2;
                    break;
                }
                Some((_, Tok::Assign)) => {
                    vars = names;
                    i = j + 2;
                    break;
                }
                _ => break,
            }
        }
    }
    let mut cmds = Vec::new();
    let mut cmd: Vec<Arg> = Vec::new();
    while i < toks.len() {
        let (at, t) = &toks[i];
        let at = *at;
        match t {
            Tok::Pipe => {
                if cmd.is_empty() {
                    return Err((at, "missing command before \"|\"".into()));
                }
                cmds.push(std::mem::take(&mut cmd));
            }
            Tok::LParen => {
                // Find the matching parenthesis.
                let mut d = 0;
                let mut j = i;
                let close = loop {
                    match toks.get(j) {
                        Some((_, Tok::LParen)) => d += 1,
                        Some((_, Tok::RParen)) => {
                            d -= 1;
                            if d == 0 {
                                break j;
                            }
                        }
                        None => return Err((at, "unclosed \"(\"".into())),
                        _ => {}
                    }
                    j += 1;
                };
                if depth >= MAX_DEPTH {
                    return Err((at, "parentheses nested too deep".into()));
                }
                if close == i + 1 {
                    return Err((at, "empty parentheses".into()));
                }
                let inner = pipeline(at, &toks[i + 1..close], false, depth + 1)?;
                i = close;
                let mut chain = Vec::new();
                if let Some((_, Tok::Chain(f))) = toks.get(i + 1) {
                    chain = f.clone();
                    i += 1;
                }
                cmd.push(Arg::Sub(Box::new(inner), chain));
            }
            Tok::RParen => return Err((at, "unexpected \")\"".into())),
            Tok::Chain(_) => return Err((at, "unexpected field after \")\"".into())),
            Tok::Comma | Tok::Declare | Tok::Assign => {
                return Err((at, "unexpected \",\", \":=\" or \"=\"".into()))
            }
            Tok::Field(f) => cmd.push(Arg::Field(at, f.clone())),
            Tok::Var(n, f) => cmd.push(Arg::Var(at, n.clone(), f.clone())),
            Tok::Lit(v) => cmd.push(Arg::Lit(v.clone())),
            Tok::Ident(n) => {
                if !is_func(n) {
                    return Err((at, format!("function {n:?} not defined")));
                }
                cmd.push(Arg::Func(at, n.clone()))
            }
        }
        i += 1;
    }
    if cmd.is_empty() {
        return Err((
            toks.last().map_or(pos, |t| t.0),
            "missing command in pipeline".into(),
        ));
    }
    cmds.push(cmd);
    for c in &cmds[..] {
        if c.len() > 1 && !matches!(c[0], Arg::Func(..) | Arg::Field(..) | Arg::Var(..)) {
            return Err((pos, "a value in a pipeline cannot take arguments".into()));
        }
    }
    Ok(Pipe {
        pos,
        vars,
        declare,
        cmds,
    })
}

const FUNCS: &[&str] = &[
    "and", "or", "not", "eq", "ne", "lt", "le", "gt", "ge", "len", "index", "print", "printf",
    "println", "json", "upper", "lower", "title", "split", "join", "truncate", "pad",
];

fn is_func(n: &str) -> bool {
    FUNCS.contains(&n)
}

impl Template {
    /// Parses `src`. Errors name the line and column.
    pub fn parse(src: &str) -> Result<Template, Error> {
        let err = |(pos, msg): (usize, String)| {
            let (line, column) = line_col(src, pos);
            Error::Parse { line, column, msg }
        };
        let pieces = split(src).map_err(err)?;
        let mut p = Parser {
            pieces: pieces.into_iter(),
            depth: 0,
        };
        let (nodes, end) = p.list().map_err(err)?;
        match end {
            End::Eof => {}
            End::Closed => {
                return Err(err((
                    src.rfind("{{end").unwrap_or(0),
                    "unexpected {{end}}".into(),
                )))
            }
            End::Else(a) => return Err(err((a.pos, "unexpected {{else}}".into()))),
        }
        Ok(Template {
            src: src.to_string(),
            nodes,
        })
    }

    /// Runs the template against `data`.
    pub fn execute(&self, data: &Value) -> Result<String, Error> {
        let mut x = Exec {
            out: String::new(),
            vars: vec![("$".into(), data.clone())],
            steps: 0,
        };
        x.nodes(&self.nodes, data).map_err(|(pos, msg)| {
            let (line, column) = line_col(&self.src, pos);
            Error::Exec { line, column, msg }
        })?;
        Ok(x.out)
    }
}

// ------------------------------------------------------------- execution

type R<T> = Result<T, (usize, String)>;

struct Exec {
    out: String,
    vars: Vec<(String, Value)>,
    steps: u64,
}

/// Go's truth: false, 0, "", nil and empty collections are false.
fn truth(v: &Value) -> bool {
    match v {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64().is_some_and(|f| f != 0.0),
        Value::String(s) => !s.is_empty(),
        Value::Array(a) => !a.is_empty(),
        Value::Object(o) => !o.is_empty(),
    }
}

/// Go's `%v` of a value: `[a b]` for arrays, `map[k:v]` for objects.
fn text(v: &Value, out: &mut String) {
    match v {
        Value::Null => out.push_str("<no value>"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => number(n, out),
        Value::String(s) => out.push_str(s),
        Value::Array(a) => {
            out.push('[');
            for (i, e) in a.iter().enumerate() {
                if i > 0 {
                    out.push(' ');
                }
                text(e, out);
            }
            out.push(']');
        }
        Value::Object(o) => {
            out.push_str("map[");
            for (i, (k, e)) in o.iter().enumerate() {
                if i > 0 {
                    out.push(' ');
                }
                out.push_str(k);
                out.push(':');
                text(e, out);
            }
            out.push(']');
        }
    }
}

fn number(n: &Number, out: &mut String) {
    if let Some(i) = n.as_i64() {
        let _ = write!(out, "{i}");
    } else if let Some(u) = n.as_u64() {
        let _ = write!(out, "{u}");
    } else if let Some(f) = n.as_f64() {
        if f.abs() >= 1e21 || (f != 0.0 && f.abs() < 1e-4) {
            let _ = write!(out, "{f:e}");
        } else {
            let _ = write!(out, "{f}");
        }
    }
}

fn to_text(v: &Value) -> String {
    let mut s = String::new();
    text(v, &mut s);
    s
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "nil",
        Value::Bool(_) => "a bool",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

/// An integer argument of `f`.
fn int(f: &str, v: &Value, at: usize) -> R<i64> {
    match v {
        Value::Number(n) => n
            .as_i64()
            .or_else(|| n.as_f64().filter(|f| f.fract() == 0.0).map(|f| f as i64))
            .ok_or_else(|| (at, format!("{f}: {n} is not an integer"))),
        Value::String(s) => s
            .trim()
            .parse()
            .map_err(|_| (at, format!("{f}: {s:?} is not an integer"))),
        v => Err((at, format!("{f}: expected an integer, got {}", kind(v)))),
    }
}

fn string(f: &str, v: &Value, at: usize) -> R<String> {
    match v {
        Value::String(s) => Ok(s.clone()),
        Value::Number(_) | Value::Bool(_) => Ok(to_text(v)),
        v => Err((at, format!("{f}: expected a string, got {}", kind(v)))),
    }
}

/// `s` if it is within [`MAX_OUTPUT`].
fn capped(f: &str, s: String, at: usize) -> R<Value> {
    if s.len() > MAX_OUTPUT {
        return Err((
            at,
            format!("{f}: the result passes {} MiB", MAX_OUTPUT >> 20),
        ));
    }
    Ok(Value::String(s))
}

/// Orders two values for `lt`/`le`/`gt`/`ge`: numbers with numbers,
/// strings with strings.
fn order(f: &str, a: &Value, b: &Value, at: usize) -> R<std::cmp::Ordering> {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => {
            if let (Some(x), Some(y)) = (x.as_i64(), y.as_i64()) {
                return Ok(x.cmp(&y));
            }
            let (x, y) = (x.as_f64().unwrap_or(0.0), y.as_f64().unwrap_or(0.0));
            x.partial_cmp(&y)
                .ok_or_else(|| (at, format!("{f}: cannot compare {x} and {y}")))
        }
        (Value::String(x), Value::String(y)) => Ok(x.cmp(y)),
        _ => Err((
            at,
            format!("{f}: cannot compare {} with {}", kind(a), kind(b)),
        )),
    }
}

fn equal(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => match (x.as_i64(), y.as_i64()) {
            (Some(x), Some(y)) => x == y,
            _ => x.as_f64() == y.as_f64(),
        },
        _ => a == b,
    }
}

/// Go's `print`: a space between operands when neither is a string.
fn go_print(args: &[Value]) -> String {
    let mut s = String::new();
    for (i, a) in args.iter().enumerate() {
        if i > 0 && !a.is_string() && !args[i - 1].is_string() {
            s.push(' ');
        }
        text(a, &mut s);
    }
    s
}

/// Go's `printf`, for the verbs scripts use: `%s %v %d %q %f %x %X %t %%`
/// with flags `-+0 ` and a width and precision.
fn printf(fmt: &str, args: &[Value], at: usize) -> R<String> {
    let mut out = String::new();
    let mut args = args.iter();
    let mut it = fmt.chars().peekable();
    while let Some(c) = it.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        let (mut minus, mut plus, mut zero, mut space) = (false, false, false, false);
        while let Some(&f) = it.peek() {
            match f {
                '-' => minus = true,
                '+' => plus = true,
                '0' => zero = true,
                ' ' => space = true,
                '#' => {}
                _ => break,
            }
            it.next();
        }
        let num = |it: &mut std::iter::Peekable<std::str::Chars>| -> R<Option<usize>> {
            let mut n: Option<usize> = None;
            while let Some(d) = it.peek().and_then(|c| c.to_digit(10)) {
                n = Some(n.unwrap_or(0) * 10 + d as usize);
                if n > Some(1 << 16) {
                    return Err((at, "printf: width or precision over 65536".into()));
                }
                it.next();
            }
            Ok(n)
        };
        let width = num(&mut it)?;
        let prec = if it.peek() == Some(&'.') {
            it.next();
            Some(num(&mut it)?.unwrap_or(0))
        } else {
            None
        };
        let Some(verb) = it.next() else {
            out.push_str("%!(NOVERB)");
            break;
        };
        if verb == '%' {
            out.push('%');
            continue;
        }
        let Some(a) = args.next() else {
            let _ = write!(out, "%!{verb}(MISSING)");
            continue;
        };
        let mut s = match verb {
            'v' | 's' => {
                let mut s = to_text(a);
                if let Some(p) = prec {
                    s = s.chars().take(p).collect();
                }
                s
            }
            'q' => serde_json::to_string(&to_text(a)).unwrap_or_default(),
            't' => match a {
                Value::Bool(b) => b.to_string(),
                _ => format!("%!t({})", to_text(a)),
            },
            'd' | 'x' | 'X' | 'o' | 'b' => {
                match a.as_i64().or_else(|| a.as_u64().map(|u| u as i64)) {
                    Some(n) => {
                        let mut s = match verb {
                            'd' => n.unsigned_abs().to_string(),
                            'x' => format!("{:x}", n.unsigned_abs()),
                            'X' => format!("{:X}", n.unsigned_abs()),
                            'o' => format!("{:o}", n.unsigned_abs()),
                            _ => format!("{:b}", n.unsigned_abs()),
                        };
                        if n < 0 {
                            s.insert(0, '-');
                        } else if plus {
                            s.insert(0, '+');
                        } else if space {
                            s.insert(0, ' ');
                        }
                        s
                    }
                    None if verb == 'x' || verb == 'X' => {
                        let s: String = to_text(a).bytes().map(|b| format!("{b:02x}")).collect();
                        if verb == 'X' {
                            s.to_uppercase()
                        } else {
                            s
                        }
                    }
                    None => format!("%!{verb}({})", to_text(a)),
                }
            }
            'f' | 'F' | 'e' | 'g' => match a.as_f64() {
                Some(f) => {
                    let p = prec.unwrap_or(6);
                    let mut s = match verb {
                        'e' => format!("{f:.p$e}"),
                        'g' => to_text(a),
                        _ => format!("{f:.p$}"),
                    };
                    if plus && f >= 0.0 {
                        s.insert(0, '+');
                    }
                    s
                }
                None => format!("%!{verb}({})", to_text(a)),
            },
            c => format!("%!{c}({})", to_text(a)),
        };
        if let Some(w) = width {
            let n = s.chars().count();
            if n < w {
                let pad = w - n;
                if minus {
                    s.push_str(&" ".repeat(pad));
                } else if zero && !matches!(verb, 's' | 'v' | 'q') {
                    let sign = s.starts_with(['-', '+']) as usize;
                    s.insert_str(sign, &"0".repeat(pad));
                } else {
                    s.insert_str(0, &" ".repeat(pad));
                }
            }
        }
        out.push_str(&s);
        if out.len() > MAX_OUTPUT {
            return Err((
                at,
                format!("printf: the result passes {} MiB", MAX_OUTPUT >> 20),
            ));
        }
    }
    let extra: Vec<&Value> = args.collect();
    if !extra.is_empty() {
        out.push_str("%!(EXTRA ");
        for (i, e) in extra.iter().enumerate() {
            if i > 0 {
                out.push_str(", ");
            }
            text(e, &mut out);
        }
        out.push(')');
    }
    Ok(out)
}

/// A label from Docker's `k=v,k2=v2` text or a labels object.
fn label(labels: &Value, key: &str) -> Value {
    match labels {
        Value::Object(o) => o.get(key).cloned().unwrap_or(Value::String(String::new())),
        Value::String(s) => Value::String(
            s.split(',')
                .filter_map(|kv| kv.split_once('='))
                .find(|(k, _)| *k == key)
                .map(|(_, v)| v.to_string())
                .unwrap_or_default(),
        ),
        _ => Value::String(String::new()),
    }
}

/// The number of values in `v` (what copying it costs).
fn size(v: &Value) -> u64 {
    match v {
        Value::Array(a) => 1 + a.iter().map(size).sum::<u64>(),
        Value::Object(o) => 1 + o.values().map(size).sum::<u64>(),
        _ => 1,
    }
}

/// `v.f1.f2...`; `what` names the start in errors.
fn walk<'v>(mut v: &'v Value, fields: &[String], what: &str, at: usize) -> R<&'v Value> {
    let mut path = what.to_string();
    for f in fields {
        v = match v {
            Value::Object(o) => match o.get(f) {
                Some(e) => e,
                None => {
                    let keys: Vec<String> = o.keys().take(40).map(|k| format!("{k:?}")).collect();
                    return Err((
                        at,
                        format!(
                            "{path}: there is no field {f:?} (it has: {})",
                            keys.join(", ")
                        ),
                    ));
                }
            },
            other => {
                return Err((
                    at,
                    format!("{path}: cannot take field {f:?} of {}", kind(other)),
                ))
            }
        };
        if path == "." {
            path.clear();
        }
        path.push('.');
        path.push_str(f);
    }
    Ok(v)
}

impl Exec {
    fn step(&mut self, at: usize) -> R<()> {
        self.steps += 1;
        if self.steps > MAX_STEPS {
            return Err((
                at,
                format!("the template took more than {MAX_STEPS} steps; simplify it"),
            ));
        }
        Ok(())
    }

    fn emit(&mut self, s: &str, at: usize) -> R<()> {
        if self.out.len() + s.len() > MAX_OUTPUT {
            return Err((at, format!("the output passes {} MiB", MAX_OUTPUT >> 20)));
        }
        self.out.push_str(s);
        Ok(())
    }

    fn nodes(&mut self, nodes: &[Node], dot: &Value) -> R<()> {
        for n in nodes {
            self.node(n, dot)?;
        }
        Ok(())
    }

    /// Runs `body` with the variables declared in it dropped afterwards.
    fn scoped(&mut self, body: &[Node], dot: &Value) -> R<()> {
        let mark = self.vars.len();
        let r = self.nodes(body, dot);
        self.vars.truncate(mark);
        r
    }

    fn node(&mut self, n: &Node, dot: &Value) -> R<()> {
        match n {
            Node::Text(t) => {
                self.step(0)?;
                self.emit(t, 0)
            }
            Node::Action(p) => {
                self.step(p.pos)?;
                let v = self.pipe(p, dot)?;
                if p.vars.is_empty() {
                    let s = to_text(&v);
                    self.emit(&s, p.pos)?;
                }
                Ok(())
            }
            Node::If(p, then, els) | Node::With(p, then, els) => {
                self.step(p.pos)?;
                let mark = self.vars.len();
                let v = self.pipe(p, dot)?;
                let r = if truth(&v) {
                    if matches!(n, Node::With(..)) {
                        self.scoped(then, &v)
                    } else {
                        self.scoped(then, dot)
                    }
                } else {
                    self.scoped(els, dot)
                };
                self.vars.truncate(mark);
                r
            }
            Node::Range(p, body, els) => {
                self.step(p.pos)?;
                let mark = self.vars.len();
                let decl = Pipe {
                    vars: Vec::new(),
                    declare: false,
                    ..p.clone()
                };
                let v = self.pipe(&decl, dot)?;
                let items: Vec<(Value, Value)> = match v {
                    Value::Array(a) => a
                        .into_iter()
                        .enumerate()
                        .map(|(i, e)| (Value::from(i), e))
                        .collect(),
                    Value::Object(o) => o.into_iter().map(|(k, e)| (Value::String(k), e)).collect(),
                    Value::Null => Vec::new(),
                    Value::Number(n) => {
                        let n = n
                            .as_i64()
                            .ok_or_else(|| (p.pos, format!("range: {n} is not an integer")))?;
                        if n.max(0) as u64 > MAX_STEPS {
                            return Err((p.pos, format!("range: {n} is too many steps")));
                        }
                        (0..n.max(0))
                            .map(|i| (Value::from(i), Value::from(i)))
                            .collect()
                    }
                    v => return Err((p.pos, format!("range cannot walk {}", kind(&v)))),
                };
                let r = if items.is_empty() {
                    self.scoped(els, dot)
                } else {
                    let mut r = Ok(());
                    for (k, e) in items {
                        self.step(p.pos)?;
                        self.vars.truncate(mark);
                        match p.vars.len() {
                            1 => {
                                let e = self.copy(&e, p.pos)?;
                                self.vars.push((p.vars[0].clone(), e))
                            }
                            2 => {
                                let e = self.copy(&e, p.pos)?;
                                self.vars.push((p.vars[0].clone(), k));
                                self.vars.push((p.vars[1].clone(), e));
                            }
                            _ => {}
                        }
                        r = self.scoped(body, &e);
                        if r.is_err() {
                            break;
                        }
                    }
                    r
                };
                self.vars.truncate(mark);
                r
            }
        }
    }

    fn pipe(&mut self, p: &Pipe, dot: &Value) -> R<Value> {
        let mut prev: Option<Value> = None;
        for c in &p.cmds {
            prev = Some(self.command(c, dot, prev, p.pos)?);
        }
        let v = prev.unwrap_or(Value::Null);
        if !p.vars.is_empty() {
            let name = &p.vars[0];
            if p.declare {
                self.vars.push((name.clone(), v.clone()));
            } else {
                match self.vars.iter_mut().rev().find(|(n, _)| n == name) {
                    Some(slot) => slot.1 = v.clone(),
                    None => return Err((p.pos, format!("undefined variable: {name}"))),
                }
            }
        }
        Ok(v)
    }

    /// A copy of `v`, its size counted against the step budget (a
    /// template that copies a large value in a loop ends with an error).
    fn copy(&mut self, v: &Value, at: usize) -> R<Value> {
        self.steps += size(v);
        self.step(at)?;
        Ok(v.clone())
    }

    /// A copy of `$name.f1.f2...`.
    fn var(&mut self, name: &str, fields: &[String], at: usize) -> R<Value> {
        let v = self
            .vars
            .iter()
            .rev()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v)
            .ok_or_else(|| (at, format!("undefined variable: {name}")))?;
        let v = walk(v, fields, name, at)?;
        let n = size(v);
        let v = v.clone();
        self.steps += n;
        self.step(at)?;
        Ok(v)
    }

    /// One argument's value.
    fn arg(&mut self, a: &Arg, dot: &Value) -> R<Value> {
        match a {
            Arg::Field(at, f) => {
                let v = walk(dot, f, ".", *at)?;
                self.copy(v, *at)
            }
            Arg::Var(at, n, f) => self.var(n, f, *at),
            Arg::Lit(v) => Ok(v.clone()),
            Arg::Sub(p, chain) => {
                let v = self.pipe(p, dot)?;
                Ok(walk(&v, chain, "(...)", p.pos)?.clone())
            }
            Arg::Func(at, n) => self.call(n, &[], *at),
        }
    }

    fn command(&mut self, c: &[Arg], dot: &Value, prev: Option<Value>, pos: usize) -> R<Value> {
        self.step(pos)?;
        match &c[0] {
            Arg::Func(at, n) => {
                let mut args = Vec::with_capacity(c.len());
                // `and`/`or` stop at the first argument that decides.
                if n == "and" || n == "or" {
                    let mut last = Value::Null;
                    let all = c[1..]
                        .iter()
                        .map(Some)
                        .chain(prev.is_some().then_some(None));
                    let mut prev = prev;
                    let mut any = false;
                    for a in all {
                        any = true;
                        last = match a {
                            Some(a) => self.arg(a, dot)?,
                            None => prev.take().unwrap_or(Value::Null),
                        };
                        if truth(&last) != (n == "and") {
                            return Ok(last);
                        }
                    }
                    if !any {
                        return Err((*at, format!("{n}: needs at least one argument")));
                    }
                    return Ok(last);
                }
                for a in &c[1..] {
                    args.push(self.arg(a, dot)?);
                }
                if let Some(p) = prev {
                    args.push(p);
                }
                self.call(n, &args, *at)
            }
            Arg::Field(at, f) if c.len() > 1 || prev.is_some() => {
                // A method call: `.Label "k"`.
                let (last, parent) = match f.split_last() {
                    Some(x) => x,
                    None => return Err((*at, "\".\" cannot take arguments".into())),
                };
                if last != "Label" {
                    return Err((
                        *at,
                        format!(".{} is not a method and cannot take arguments", f.join(".")),
                    ));
                }
                let mut args = Vec::new();
                for a in &c[1..] {
                    args.push(self.arg(a, dot)?);
                }
                args.extend(prev);
                let [k] = &args[..] else {
                    return Err((*at, ".Label takes one argument, the label's key".into()));
                };
                let obj = walk(dot, parent, ".", *at)?;
                let labels = obj.get("Labels").cloned().unwrap_or(Value::Null);
                Ok(label(&labels, &string("Label", k, *at)?))
            }
            a => {
                if c.len() > 1 || prev.is_some() {
                    return Err((pos, "a value cannot take arguments".into()));
                }
                self.arg(a, dot)
            }
        }
    }

    fn call(&mut self, f: &str, a: &[Value], at: usize) -> R<Value> {
        let n = |want: usize| -> R<()> {
            if a.len() != want {
                return Err((
                    at,
                    format!("{f}: takes {want} argument(s), got {}", a.len()),
                ));
            }
            Ok(())
        };
        Ok(match f {
            "not" => {
                n(1)?;
                Value::Bool(!truth(&a[0]))
            }
            "eq" | "ne" => {
                if a.len() < 2 {
                    return Err((at, format!("{f}: needs two arguments")));
                }
                let eq = a[1..].iter().any(|b| equal(&a[0], b));
                Value::Bool(if f == "eq" { eq } else { n(2).map(|_| !eq)? })
            }
            "lt" | "le" | "gt" | "ge" => {
                n(2)?;
                let o = order(f, &a[0], &a[1], at)?;
                use std::cmp::Ordering::*;
                Value::Bool(match f {
                    "lt" => o == Less,
                    "le" => o != Greater,
                    "gt" => o == Greater,
                    _ => o != Less,
                })
            }
            "len" => {
                n(1)?;
                Value::from(match &a[0] {
                    Value::String(s) => s.len(),
                    Value::Array(x) => x.len(),
                    Value::Object(o) => o.len(),
                    Value::Null => 0,
                    v => return Err((at, format!("len: {} has no length", kind(v)))),
                })
            }
            "index" => {
                if a.is_empty() {
                    return Err((at, "index: needs a value".into()));
                }
                let mut v = a[0].clone();
                for k in &a[1..] {
                    v = match (&v, k) {
                        (Value::Object(o), Value::String(k)) => {
                            o.get(k).cloned().unwrap_or(Value::String(String::new()))
                        }
                        (Value::Array(x), k) => {
                            let i = int("index", k, at)?;
                            usize::try_from(i)
                                .ok()
                                .and_then(|i| x.get(i).cloned())
                                .ok_or_else(|| {
                                    (
                                        at,
                                        format!("index: {i} is out of range (length {})", x.len()),
                                    )
                                })?
                        }
                        (Value::Null, _) => Value::Null,
                        (v, k) => {
                            return Err((
                                at,
                                format!("index: cannot index {} with {}", kind(v), to_text(k)),
                            ))
                        }
                    };
                }
                v
            }
            "print" => capped(f, go_print(a), at)?,
            "println" => {
                let mut s = String::new();
                for (i, v) in a.iter().enumerate() {
                    if i > 0 {
                        s.push(' ');
                    }
                    text(v, &mut s);
                }
                s.push('\n');
                capped(f, s, at)?
            }
            "printf" => {
                if a.is_empty() {
                    return Err((at, "printf: needs a format".into()));
                }
                let fmt = string(f, &a[0], at)?;
                Value::String(printf(&fmt, &a[1..], at)?)
            }
            "json" => {
                n(1)?;
                let s = serde_json::to_string(&a[0]).map_err(|e| (at, format!("json: {e}")))?;
                capped(f, s, at)?
            }
            "upper" => {
                n(1)?;
                Value::String(string(f, &a[0], at)?.to_uppercase())
            }
            "lower" => {
                n(1)?;
                Value::String(string(f, &a[0], at)?.to_lowercase())
            }
            "title" => {
                n(1)?;
                let s = string(f, &a[0], at)?;
                let mut out = String::with_capacity(s.len());
                let mut start = true;
                for c in s.chars() {
                    if start && c.is_alphabetic() {
                        out.extend(c.to_uppercase());
                    } else {
                        out.push(c);
                    }
                    start = !c.is_alphanumeric() && c != '_' && c != '\'';
                }
                Value::String(out)
            }
            "split" => {
                n(2)?;
                let (s, sep) = (string(f, &a[0], at)?, string(f, &a[1], at)?);
                if sep.is_empty() {
                    s.chars().map(|c| Value::String(c.to_string())).collect()
                } else {
                    s.split(sep.as_str())
                        .map(|p| Value::String(p.into()))
                        .collect()
                }
            }
            "join" => {
                n(2)?;
                let sep = string(f, &a[1], at)?;
                let parts: Vec<String> = match &a[0] {
                    Value::Array(x) => x.iter().map(to_text).collect(),
                    Value::Null => Vec::new(),
                    v => return Err((at, format!("join: expected a list, got {}", kind(v)))),
                };
                let size = parts.iter().map(String::len).sum::<usize>()
                    + sep.len().saturating_mul(parts.len());
                if size > MAX_OUTPUT {
                    return Err((
                        at,
                        format!("join: the result passes {} MiB", MAX_OUTPUT >> 20),
                    ));
                }
                Value::String(parts.join(&sep))
            }
            "truncate" => {
                n(2)?;
                let s = string(f, &a[0], at)?;
                let l = int(f, &a[1], at)?.max(0) as usize;
                Value::String(s.chars().take(l).collect())
            }
            "pad" => {
                n(3)?;
                let s = string(f, &a[0], at)?;
                let (l, r) = (int(f, &a[1], at)?.max(0), int(f, &a[2], at)?.max(0));
                if l.saturating_add(r).saturating_add(s.len() as i64) > MAX_OUTPUT as i64 {
                    return Err((
                        at,
                        format!("pad: the result passes {} MiB", MAX_OUTPUT >> 20),
                    ));
                }
                Value::String(format!(
                    "{}{s}{}",
                    " ".repeat(l as usize),
                    " ".repeat(r as usize)
                ))
            }
            _ => return Err((at, format!("function {f:?} not defined"))),
        })
    }
}

// ---------------------------------------------------- --format for views

/// What `--format` asks of a list or inspect command.
#[derive(Debug, Clone)]
pub enum Format {
    /// The command's own table (no `--format`, or `--format table`).
    Table,
    /// `--format json`: the command's JSON.
    Json,
    /// A template; `table`: `table ...`, with a header row and aligned
    /// columns.
    Template { table: bool, template: Template },
}

impl Format {
    /// Reads a `--format` value. As Docker does, `\t` and `\n` written
    /// as two characters in a list command's template are a tab and a
    /// newline.
    pub fn parse(s: &str) -> Result<Format, Error> {
        let t = s.trim_matches(' ');
        match t {
            "" | "table" => return Ok(Format::Table),
            "json" => return Ok(Format::Json),
            _ => {}
        }
        let (table, body) = match t.strip_prefix("table ") {
            Some(b) => (true, b),
            None => (false, t),
        };
        let body = body.replace("\\t", "\t").replace("\\n", "\n");
        if !body.contains("{{") {
            // `--format yaml`: a mistake far more often than a constant.
            return Err(Error::Parse {
                line: 1,
                column: 1,
                msg: format!(
                    "{t:?} is not table, json or a Go template (such as '{{{{.ID}}}}\\t{{{{.Names}}}}')"
                ),
            });
        }
        Ok(Format::Template {
            table,
            template: Template::parse(&body)?,
        })
    }
}

/// Docker's column header for a field name (`ID` in `ps` is `CONTAINER
/// ID`; `.Names` is `NAMES`).
fn header(key: &str, names: &[(&str, &str)]) -> String {
    if let Some((_, h)) = names.iter().find(|(k, _)| *k == key) {
        return h.to_string();
    }
    // CamelCase -> CAMEL CASE
    let mut h = String::new();
    let chars: Vec<char> = key.chars().collect();
    for (i, c) in chars.iter().enumerate() {
        if i > 0
            && c.is_uppercase()
            && (chars[i - 1].is_lowercase() || chars.get(i + 1).is_some_and(|n| n.is_lowercase()))
        {
            h.push(' ');
        }
        h.extend(c.to_uppercase());
    }
    h
}

/// Runs `template` on each of `rows`, one line each. `table`: first a
/// header (the template run on an object whose fields are the headers:
/// `names` gives Docker's for the view, other fields are spelled in
/// capitals), then the tab-separated cells aligned as Docker's tabwriter
/// does (at least 10 wide, 3 spaces apart).
pub fn render(
    template: &Template,
    table: bool,
    rows: &[Value],
    names: &[(&str, &str)],
) -> Result<String, Error> {
    let mut lines: Vec<String> = Vec::new();
    let mut size = 0usize;
    if table {
        let mut head = Map::new();
        let keys: Vec<String> = match rows.first() {
            Some(Value::Object(o)) => o.keys().cloned().collect(),
            _ => names.iter().map(|(k, _)| k.to_string()).collect(),
        };
        for k in keys
            .iter()
            .map(String::as_str)
            .chain(names.iter().map(|(k, _)| *k))
        {
            head.insert(k.to_string(), Value::String(header(k, names)));
        }
        // A header that cannot be made (a function wanting a number)
        // is left out, as Docker leaves it.
        if let Ok(h) = template.execute(&Value::Object(head)) {
            lines.push(h);
        }
    }
    for r in rows {
        let s = template.execute(r)?;
        size += s.len() + 1;
        if size > MAX_OUTPUT {
            return Err(Error::Exec {
                line: 1,
                column: 1,
                msg: format!("the output passes {} MiB", MAX_OUTPUT >> 20),
            });
        }
        lines.push(s);
    }
    let mut out = if table {
        align(&lines.join("\n"))
    } else {
        lines.join("\n")
    };
    if !lines.is_empty() {
        out.push('\n');
    }
    Ok(out)
}

/// Tab-separated cells in aligned columns: each column as wide as its
/// widest cell plus 3, at least 10; the last cell of a line as it is.
pub fn align(text: &str) -> String {
    let lines: Vec<Vec<&str>> = text.split('\n').map(|l| l.split('\t').collect()).collect();
    let mut w: Vec<usize> = Vec::new();
    for l in &lines {
        for (i, c) in l.iter().enumerate().take(l.len().saturating_sub(1)) {
            if w.len() <= i {
                w.push(0);
            }
            w[i] = w[i].max(c.chars().count());
        }
    }
    let mut out = String::with_capacity(text.len());
    for (n, l) in lines.iter().enumerate() {
        if n > 0 {
            out.push('\n');
        }
        for (i, c) in l.iter().enumerate() {
            out.push_str(c);
            if i + 1 < l.len() {
                let width = (w[i] + 3).max(10);
                out.push_str(&" ".repeat(width - c.chars().count()));
            }
        }
    }
    out
}

pub mod views;

#[cfg(test)]
mod tests;
