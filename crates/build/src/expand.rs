//! BuildKit's shell-word expansion (`frontend/dockerfile/shell/lex.go`):
//! `$V`, `${V}`, `${V:-w}`, `${V-w}`, `${V:+w}`, `${V+w}`, `${V:?m}`,
//! `${V?m}`, `${V#p}`, `${V##p}`, `${V%p}`, `${V%%p}`, `${V/p/r}`,
//! `${V//p/r}`, the escape character, single and double quotes, and the
//! split into words after expansion. [`expand_instruction`] applies it to
//! exactly the instructions (and flags) Docker expands.

use crate::limits::{MAX_EXPANSION, MAX_MATCH_WORK, MAX_NESTING};
use crate::parse::{CopyArgs, Instruction, KeyValue, Kind, Mount, SourceItem};
use std::collections::BTreeSet;

/// An expansion failed; the message is BuildKit's (`failed to process
/// "WORD": ...`) or names the bound that was hit.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ExpandError(pub String);

fn err<T>(msg: impl Into<String>) -> Result<T, ExpandError> {
    Err(ExpandError(msg.into()))
}

/// What one word expanded to.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Expanded {
    /// The word with quotes processed and variables replaced (BuildKit's
    /// `ProcessWord`).
    pub word: String,
    /// The same split into words on unquoted whitespace (`ProcessWords`).
    pub words: Vec<String>,
    /// Variables referenced and found.
    pub matched: BTreeSet<String>,
    /// Variables referenced and not set.
    pub unmatched: BTreeSet<String>,
}

/// The variable lookup an expansion uses: a name to its value, `None` when
/// unset (set to empty is `Some("")`).
pub type Env<'a> = &'a dyn Fn(&str) -> Option<String>;

/// BuildKit's `shell.Lex` with its options.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lexer {
    /// The escape character (`\` or `` ` `` from `# escape=`).
    pub escape: char,
    /// Keep quote characters in the result.
    pub raw_quotes: bool,
    /// Keep escape characters in the result.
    pub raw_escapes: bool,
    /// Quotes are ordinary characters (heredoc bodies).
    pub skip_process_quotes: bool,
    /// Leave references to unset variables as written.
    pub skip_unset_env: bool,
}

impl Lexer {
    /// The lexer Docker expands instructions with.
    pub fn new(escape: char) -> Lexer {
        Lexer {
            escape,
            raw_quotes: false,
            raw_escapes: false,
            skip_process_quotes: false,
            skip_unset_env: false,
        }
    }

    /// The lexer for the body of a heredoc that expands (`COPY <<EOF`):
    /// only `$` is special, quotes are kept.
    pub fn heredoc() -> Lexer {
        Lexer {
            skip_process_quotes: true,
            ..Lexer::new('\\')
        }
    }

    /// Expands `word` with `env`.
    pub fn process(&self, word: &str, env: Env<'_>) -> Result<Expanded, ExpandError> {
        let mut sw = ShellWord {
            lex: self,
            chars: word.chars().collect(),
            pos: 0,
            env,
            raw_escapes: self.raw_escapes,
            matched: BTreeSet::new(),
            unmatched: BTreeSet::new(),
            depth: 0,
        };
        match sw.process_stop_on(None, self.raw_escapes) {
            Ok((w, words)) => Ok(Expanded {
                word: w,
                words,
                matched: sw.matched,
                unmatched: sw.unmatched,
            }),
            Err(e) => err(format!("failed to process {word:?}: {}", e.0)),
        }
    }

    /// The expanded word (`ProcessWord`).
    pub fn word(&self, word: &str, env: Env<'_>) -> Result<String, ExpandError> {
        Ok(self.process(word, env)?.word)
    }
}

struct ShellWord<'a> {
    lex: &'a Lexer,
    chars: Vec<char>,
    pos: usize,
    env: Env<'a>,
    raw_escapes: bool,
    matched: BTreeSet<String>,
    unmatched: BTreeSet<String>,
    depth: usize,
}

#[derive(Default)]
struct Words {
    word: String,
    words: Vec<String>,
    in_word: bool,
}

impl Words {
    fn add_char(&mut self, ch: char) {
        if ch.is_whitespace() && self.in_word {
            if !self.word.is_empty() {
                self.words.push(std::mem::take(&mut self.word));
                self.in_word = false;
            }
        } else if !ch.is_whitespace() {
            self.add_raw_char(ch);
        }
    }
    fn add_raw_char(&mut self, ch: char) {
        self.word.push(ch);
        self.in_word = true;
    }
    fn add_string(&mut self, s: &str) {
        for ch in s.chars() {
            self.add_char(ch);
        }
    }
    fn add_raw_string(&mut self, s: &str) {
        self.word.push_str(s);
        self.in_word = true;
    }
    fn get_words(mut self) -> Vec<String> {
        if !self.word.is_empty() {
            self.words.push(std::mem::take(&mut self.word));
        }
        self.words
    }
}

fn check_size(s: &str) -> Result<(), ExpandError> {
    if s.len() > MAX_EXPANSION {
        return err(format!(
            "the expansion is longer than {MAX_EXPANSION} bytes"
        ));
    }
    Ok(())
}

impl ShellWord<'_> {
    fn peek(&self) -> Option<char> {
        self.chars.get(self.pos).copied()
    }
    fn next(&mut self) -> Option<char> {
        let c = self.chars.get(self.pos).copied();
        if c.is_some() {
            self.pos += 1;
        }
        c
    }

    fn process_stop_on(
        &mut self,
        stop: Option<char>,
        raw_escapes: bool,
    ) -> Result<(String, Vec<String>), ExpandError> {
        let saved = self.raw_escapes;
        self.raw_escapes = raw_escapes;
        let r = self.stop_on_inner(stop);
        self.raw_escapes = saved;
        r
    }

    fn stop_on_inner(&mut self, stop: Option<char>) -> Result<(String, Vec<String>), ExpandError> {
        let mut result = String::new();
        let mut words = Words::default();
        while let Some(ch) = self.peek() {
            if stop == Some(ch) {
                self.next();
                return Ok((result, words.get_words()));
            }
            let quote = !self.lex.skip_process_quotes && (ch == '\'' || ch == '"');
            if ch == '$' || quote {
                let tmp = match ch {
                    '$' => self.process_dollar()?,
                    '\'' => self.process_single_quote()?,
                    _ => self.process_double_quote()?,
                };
                result.push_str(&tmp);
                if ch == '$' {
                    words.add_string(&tmp);
                } else {
                    words.add_raw_string(&tmp);
                }
            } else {
                let mut ch = match self.next() {
                    Some(c) => c,
                    None => break,
                };
                if ch == self.lex.escape {
                    if self.raw_escapes {
                        words.add_raw_char(ch);
                        result.push(ch);
                    }
                    ch = match self.next() {
                        Some(c) => c,
                        None => break,
                    };
                    words.add_raw_char(ch);
                } else {
                    words.add_char(ch);
                }
                result.push(ch);
            }
            check_size(&result)?;
        }
        if let Some(s) = stop {
            return err(format!(
                "unexpected end of statement while looking for matching {s}"
            ));
        }
        Ok((result, words.get_words()))
    }

    fn process_single_quote(&mut self) -> Result<String, ExpandError> {
        let mut result = String::new();
        let open = self.next();
        if self.lex.raw_quotes {
            result.extend(open);
        }
        loop {
            match self.next() {
                None => {
                    return err(
                        "unexpected end of statement while looking for matching single-quote",
                    )
                }
                Some('\'') => {
                    if self.lex.raw_quotes {
                        result.push('\'');
                    }
                    return Ok(result);
                }
                Some(c) => result.push(c),
            }
        }
    }

    fn process_double_quote(&mut self) -> Result<String, ExpandError> {
        let mut result = String::new();
        let open = self.next();
        if self.lex.raw_quotes {
            result.extend(open);
        }
        loop {
            match self.peek() {
                None => {
                    return err(
                        "unexpected end of statement while looking for matching double-quote",
                    )
                }
                Some('"') => {
                    self.next();
                    if self.lex.raw_quotes {
                        result.push('"');
                    }
                    return Ok(result);
                }
                Some('$') => {
                    let v = self.process_dollar()?;
                    result.push_str(&v);
                }
                Some(_) => {
                    let mut ch = self.next().unwrap_or_default();
                    if ch == self.lex.escape {
                        if self.raw_escapes {
                            result.push(ch);
                        }
                        match self.peek() {
                            None => continue,
                            Some(c) if c == '"' || c == '$' || c == self.lex.escape => {
                                ch = c;
                                self.next();
                            }
                            Some(_) => {}
                        }
                    }
                    result.push(ch);
                }
            }
            check_size(&result)?;
        }
    }

    fn get_env(&mut self, name: &str) -> Option<String> {
        match (self.env)(name) {
            Some(v) => {
                self.matched.insert(name.to_string());
                Some(v)
            }
            None => {
                self.unmatched.insert(name.to_string());
                None
            }
        }
    }

    fn process_dollar(&mut self) -> Result<String, ExpandError> {
        self.depth += 1;
        if self.depth > MAX_NESTING {
            return err(format!("more than {MAX_NESTING} nested substitutions"));
        }
        let r = self.dollar_inner();
        self.depth -= 1;
        r
    }

    fn dollar_inner(&mut self) -> Result<String, ExpandError> {
        self.next();
        if self.peek() != Some('{') {
            let name = self.process_name();
            if name.is_empty() {
                return Ok("$".into());
            }
            let value = self.get_env(&name);
            return Ok(match value {
                None if self.lex.skip_unset_env => format!("${name}"),
                v => v.unwrap_or_default(),
            });
        }
        self.next();
        match self.peek() {
            None => return err("syntax error: missing '}'"),
            Some('{' | '}' | ':') => return err("syntax error: bad substitution"),
            _ => {}
        }
        let name = self.process_name();
        let first = self.next();
        let mut chs: String = first.map(String::from).unwrap_or_default();
        let mut null_is_unset = false;
        let mut ch = first;
        match first {
            Some('}') => {
                let value = self.get_env(&name);
                Ok(match value {
                    None if self.lex.skip_unset_env => format!("${{{name}}}"),
                    v => v.unwrap_or_default(),
                })
            }
            Some(':' | '+' | '-' | '?' | '#' | '%') => {
                if first == Some(':') {
                    null_is_unset = true;
                    ch = self.next();
                    chs.extend(ch);
                }
                let raw = matches!(ch, Some('#' | '%'));
                let word = match self.process_stop_on(Some('}'), raw) {
                    Ok((w, _)) => w,
                    Err(e) => {
                        if self.peek().is_none() {
                            return err("syntax error: missing '}'");
                        }
                        return Err(e);
                    }
                };
                let value = self.get_env(&name);
                let set = value.is_some();
                if self.lex.skip_unset_env && !set {
                    return Ok(format!("${{{name}{chs}{word}}}"));
                }
                let value = value.unwrap_or_default();
                let empty_unset = !set || (null_is_unset && value.is_empty());
                match ch {
                    Some('-') => Ok(if empty_unset { word } else { value }),
                    Some('+') => Ok(if empty_unset { String::new() } else { word }),
                    Some('?') => {
                        if !set {
                            let m = if word.is_empty() {
                                "is not allowed to be unset".to_string()
                            } else {
                                word
                            };
                            return err(format!("{name}: {m}"));
                        }
                        if null_is_unset && value.is_empty() {
                            let m = if word.is_empty() {
                                "is not allowed to be empty".to_string()
                            } else {
                                word
                            };
                            return err(format!("{name}: {m}"));
                        }
                        Ok(value)
                    }
                    Some(c @ ('%' | '#')) => {
                        let mut word = word;
                        let greedy = word.starts_with(c);
                        if greedy {
                            word.remove(0);
                        }
                        if c == '%' {
                            trim_suffix(&word, &value, greedy)
                        } else {
                            trim_prefix(&word, &value, greedy)
                        }
                    }
                    _ => err(format!("unsupported modifier ({chs}) in substitution")),
                }
            }
            Some('/') => {
                let all = self.peek() == Some('/');
                if all {
                    self.next();
                }
                let pattern = match self.process_stop_on(Some('/'), true) {
                    Ok((w, _)) => w,
                    Err(e) => {
                        if self.peek().is_none() {
                            return err("syntax error: missing '/' in ${}");
                        }
                        return Err(e);
                    }
                };
                let replacement = match self.process_stop_on(Some('}'), true) {
                    Ok((w, _)) => w,
                    Err(e) => {
                        if self.peek().is_none() {
                            return err("syntax error: missing '}'");
                        }
                        return Err(e);
                    }
                };
                let value = self.get_env(&name);
                let Some(value) = value.or_else(|| (!self.lex.skip_unset_env).then(String::new))
                else {
                    return Ok(format!("${{{name}/{pattern}/{replacement}}}"));
                };
                replace(&pattern, &replacement, &value, all)
            }
            _ => err(format!("unsupported modifier ({chs}) in substitution")),
        }
    }

    fn process_name(&mut self) -> String {
        let mut name = String::new();
        while let Some(ch) = self.peek() {
            if name.is_empty() && is_go_digit(ch) {
                while let Some(c) = self.peek() {
                    if !is_go_digit(c) {
                        break;
                    }
                    self.next();
                    name.push(c);
                }
                return name;
            }
            if name.is_empty() && matches!(ch, '@' | '*' | '#' | '?' | '-' | '$' | '!' | '0') {
                self.next();
                return ch.to_string();
            }
            if !ch.is_alphabetic() && !is_go_digit(ch) && ch != '_' {
                break;
            }
            self.next();
            name.push(ch);
        }
        name
    }
}

/// Go's `unicode.IsDigit`: decimal digits (Nd) of any script.
fn is_go_digit(c: char) -> bool {
    c.is_ascii_digit() || is_nd(c)
}

/// Unicode Nd outside ASCII: the digit blocks are runs of ten code points
/// starting at a zero; `char::is_numeric` also takes No and Nl, which Go's
/// IsDigit does not. Approximated by the common decimal-digit ranges.
fn is_nd(c: char) -> bool {
    const ZEROS: &[u32] = &[
        0x660, 0x6F0, 0x7C0, 0x966, 0x9E6, 0xA66, 0xAE6, 0xB66, 0xBE6, 0xC66, 0xCE6, 0xD66, 0xDE6,
        0xE50, 0xED0, 0xF20, 0x1040, 0x1090, 0x17E0, 0x1810, 0x1946, 0x19D0, 0x1A80, 0x1A90,
        0x1B50, 0x1BB0, 0x1C40, 0x1C50, 0xA620, 0xA8D0, 0xA900, 0xA9D0, 0xA9F0, 0xAA50, 0xABF0,
        0xFF10,
    ];
    let u = c as u32;
    ZEROS.iter().any(|&z| u >= z && u < z + 10)
}

// ---- patterns of ${V#p}, ${V%p}, ${V/p/r} ---------------------------------

#[derive(Debug, Clone, Copy, PartialEq)]
enum Tok {
    Lit(char),
    /// `?`: one character other than a newline (Go's `.`).
    One,
    /// `*`: any run of characters other than newlines (Go's `.*`).
    Star,
}

/// BuildKit's `convertShellPatternToRegex`, as tokens.
fn compile_pattern(pattern: &str) -> Result<Vec<Tok>, ExpandError> {
    let chars: Vec<char> = pattern.chars().collect();
    let mut toks = Vec::with_capacity(chars.len());
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        i += 1;
        match c {
            '*' => toks.push(Tok::Star),
            '?' => toks.push(Tok::One),
            '\\' => match chars.get(i) {
                // `\}` and `\/` inside ${}: the escape is not part of the pattern.
                Some('}' | '/') => {}
                Some(&n @ ('*' | '?' | '\\')) => {
                    i += 1;
                    toks.push(Tok::Lit(n));
                }
                other => {
                    return err(format!(
                        "invalid pattern ({pattern}) in substitution: invalid escape '\\{}'",
                        other.map(|c| c.to_string()).unwrap_or_default()
                    ))
                }
            },
            c => toks.push(Tok::Lit(c)),
        }
    }
    Ok(toks)
}

/// A match of a compiled pattern in `value` (character indexes).
struct Matcher<'a> {
    toks: &'a [Tok],
    work: usize,
}

impl Matcher<'_> {
    fn closure(&self, starts: &mut [Option<usize>]) {
        for j in 0..self.toks.len() {
            if self.toks[j] == Tok::Star {
                if let Some(s) = starts[j] {
                    starts[j + 1] = Some(starts[j + 1].map_or(s, |t| t.min(s)));
                }
            }
        }
    }

    /// The leftmost match starting at or after `from` (only at `from` when
    /// `anchored`), the longest (`greedy`) or the shortest there.
    fn find(
        &mut self,
        value: &[char],
        from: usize,
        anchored: bool,
        greedy: bool,
    ) -> Result<Option<(usize, usize)>, ExpandError> {
        let m = self.toks.len();
        let mut cur: Vec<Option<usize>> = vec![None; m + 1];
        let mut best: Option<(usize, usize)> = None;
        let mut i = from;
        loop {
            if best.is_none() && (!anchored || i == from) {
                cur[0] = Some(cur[0].map_or(i, |t| t.min(i)));
            }
            self.closure(&mut cur);
            if let Some(s) = cur[m] {
                best = match best {
                    None => Some((s, i)),
                    Some((bs, be)) if s < bs || (s == bs && greedy && i > be) => Some((s, i)),
                    b => b,
                };
                if !greedy && best.map(|b| b.0) == Some(s) && anchored {
                    return Ok(best);
                }
            }
            let Some(&c) = value.get(i) else { break };
            self.work += m + 1;
            if self.work > MAX_MATCH_WORK {
                return err("the pattern in the substitution needs too much work");
            }
            let mut next: Vec<Option<usize>> = vec![None; m + 1];
            let mut alive = false;
            for (j, st) in cur.iter().enumerate().take(m) {
                let Some(s) = *st else { continue };
                if let Some((bs, _)) = best {
                    if s > bs {
                        continue;
                    }
                }
                let to = match self.toks[j] {
                    Tok::Lit(x) if x == c => Some(j + 1),
                    Tok::One if c != '\n' => Some(j + 1),
                    Tok::Star if c != '\n' => Some(j),
                    _ => None,
                };
                if let Some(t) = to {
                    next[t] = Some(next[t].map_or(s, |u| u.min(s)));
                    alive = true;
                }
            }
            cur = next;
            i += 1;
            if !alive && (best.is_some() || anchored) {
                // Nothing running and no new thread will start.
                break;
            }
        }
        Ok(best)
    }
}

fn trim_prefix(pattern: &str, value: &str, greedy: bool) -> Result<String, ExpandError> {
    let toks = compile_pattern(pattern)?;
    let v: Vec<char> = value.chars().collect();
    let mut m = Matcher {
        toks: &toks,
        work: 0,
    };
    Ok(match m.find(&v, 0, true, greedy)? {
        Some((_, end)) => v[end..].iter().collect(),
        None => value.to_string(),
    })
}

/// Reverses a pattern keeping `\x` escapes in order (BuildKit's
/// `reversePattern`).
fn reverse_pattern(pattern: &str) -> String {
    let p: Vec<char> = pattern.chars().collect();
    let mut out = vec!['\0'; p.len()];
    let last = p.len().saturating_sub(1);
    let mut i = 0;
    while i < p.len() {
        let at = last - i;
        if p[i] == '\\' && i != last {
            out[at - 1] = '\\';
            out[at] = p[i + 1];
            i += 2;
        } else {
            out[at] = p[i];
            i += 1;
        }
    }
    out.into_iter().collect()
}

fn trim_suffix(pattern: &str, value: &str, greedy: bool) -> Result<String, ExpandError> {
    let rp = reverse_pattern(pattern);
    let rv: String = value.chars().rev().collect();
    Ok(trim_prefix(&rp, &rv, greedy)?.chars().rev().collect())
}

/// `${V/p/r}` and `${V//p/r}`: Go's regexp replace (greedy pattern); the
/// replace-all form expands `$0`/`${0}` to the match and other `$names` to
/// nothing, as Go's `ReplaceAllString` does.
fn replace(pattern: &str, repl: &str, value: &str, all: bool) -> Result<String, ExpandError> {
    let toks = compile_pattern(pattern)?;
    let v: Vec<char> = value.chars().collect();
    let mut m = Matcher {
        toks: &toks,
        work: 0,
    };
    if !all {
        return Ok(match m.find(&v, 0, false, true)? {
            Some((a, b)) => {
                let mut s: String = v[..a].iter().collect();
                s.push_str(repl);
                s.extend(&v[b..]);
                s
            }
            None => value.to_string(),
        });
    }
    let mut out = String::new();
    let mut last_end = 0;
    let mut search = 0;
    while search <= v.len() {
        let Some((a, b)) = m.find(&v, search, false, true)? else {
            break;
        };
        out.extend(&v[last_end..a]);
        if b > last_end || a == 0 {
            let matched: String = v[a..b].iter().collect();
            go_expand_template(&mut out, repl, &matched);
        }
        last_end = b;
        search = if search + 1 > b { search + 1 } else { b };
        check_size(&out)?;
    }
    out.extend(&v[last_end.min(v.len())..]);
    check_size(&out)?;
    Ok(out)
}

/// Go's `Regexp.expand` for a regexp without groups.
fn go_expand_template(out: &mut String, template: &str, matched: &str) {
    let mut rest = template;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        rest = &rest[i..];
        if rest.len() > 1 && rest.as_bytes()[1] == b'$' {
            out.push('$');
            rest = &rest[2..];
            continue;
        }
        let is_name = |c: char| c.is_alphanumeric() || c == '_';
        let (name, after) = if rest[1..].starts_with('{') {
            match rest[2..].find('}') {
                Some(e) if e > 0 && rest[2..2 + e].chars().all(is_name) => {
                    (&rest[2..2 + e], &rest[3 + e..])
                }
                _ => ("", rest),
            }
        } else {
            let n = rest[1..]
                .char_indices()
                .find(|&(_, c)| !is_name(c))
                .map_or(rest.len() - 1, |(k, _)| k);
            (&rest[1..1 + n], &rest[1 + n..])
        };
        if name.is_empty() {
            out.push('$');
            rest = &rest[1..];
            continue;
        }
        if name == "0" || (name.bytes().all(|b| b == b'0') && !name.is_empty()) {
            out.push_str(matched);
        }
        rest = after;
    }
    out.push_str(rest);
}

// ---- instructions ---------------------------------------------------------

/// An instruction after expansion, with the variables it referenced (the
/// build cache keys on the build args among them).
#[derive(Debug, Clone, PartialEq)]
pub struct ExpandedInstruction {
    pub instruction: Instruction,
    /// Every variable the expansion looked up, set or not.
    pub used: BTreeSet<String>,
}

struct Ctx<'a> {
    lex: Lexer,
    env: Env<'a>,
    used: BTreeSet<String>,
    name: &'static str,
}

impl Ctx<'_> {
    fn take(&mut self, e: Expanded) -> Expanded {
        self.used.extend(e.matched.iter().cloned());
        self.used.extend(e.unmatched.iter().cloned());
        e
    }
    fn word(&mut self, w: &str) -> Result<String, ExpandError> {
        let e = self.lex.process(w, self.env).map_err(|e| self.wrap(e))?;
        Ok(self.take(e).word)
    }
    fn words(&mut self, w: &str) -> Result<Vec<String>, ExpandError> {
        let e = self.lex.process(w, self.env).map_err(|e| self.wrap(e))?;
        Ok(self.take(e).words)
    }
    fn opt(&mut self, w: &Option<String>) -> Result<Option<String>, ExpandError> {
        w.as_deref().map(|w| self.word(w)).transpose()
    }
    fn raw(&mut self, w: &str) -> Result<String, ExpandError> {
        let e = Lexer::heredoc()
            .process(w, self.env)
            .map_err(|e| self.wrap(e))?;
        Ok(self.take(e).word)
    }
    fn wrap(&self, e: ExpandError) -> ExpandError {
        ExpandError(format!("{}: {}", self.name, e.0))
    }
    fn kvs(&mut self, kvs: &[KeyValue]) -> Result<Vec<KeyValue>, ExpandError> {
        kvs.iter()
            .map(|kv| {
                Ok(KeyValue {
                    key: self.word(&kv.key)?,
                    value: self.word(&kv.value)?,
                })
            })
            .collect()
    }
    fn copy(&mut self, c: &CopyArgs) -> Result<CopyArgs, ExpandError> {
        let mut out = c.clone();
        for s in &mut out.sources {
            match s {
                SourceItem::Path(p) => *p = self.word(p)?,
                SourceItem::Heredoc(h) if h.expand => h.content = self.raw(&h.content)?,
                SourceItem::Heredoc(_) => {}
            }
        }
        out.dest = self.word(&c.dest)?;
        out.chown = self.opt(&c.chown)?;
        out.chmod = self.opt(&c.chmod)?;
        out.checksum = self.opt(&c.checksum)?;
        out.exclude = c
            .exclude
            .iter()
            .map(|e| self.word(e))
            .collect::<Result<_, _>>()?;
        Ok(out)
    }
}

/// Expands `ins` as Docker does before running it, with `env` (the stage's
/// build args and environment at that point; for FROM the global args).
///
/// Expanded: FROM (image, `--platform`, stage name), COPY and ADD (sources,
/// destination, `--chown`, `--chmod`, `--checksum`, `--exclude`,
/// the bodies of heredocs not quoted), ENV and LABEL (keys and values),
/// ARG (names and defaults), WORKDIR, USER, STOPSIGNAL, EXPOSE (split into
/// words), VOLUME, and RUN's `--mount` options. Not expanded (the shell
/// does it, or Docker keeps them literal): RUN's command, CMD, ENTRYPOINT,
/// SHELL, HEALTHCHECK, ONBUILD, MAINTAINER. `COPY --from` is expanded
/// with the global args only, by [`crate::graph::Graph::source`].
pub fn expand_instruction(
    ins: &Instruction,
    escape: char,
    env: Env<'_>,
) -> Result<ExpandedInstruction, ExpandError> {
    let mut cx = Ctx {
        lex: Lexer::new(escape),
        env,
        used: BTreeSet::new(),
        name: ins.kind.name(),
    };
    let kind = match &ins.kind {
        Kind::From(f) => {
            let mut f = f.clone();
            f.image = cx.word(&f.image)?;
            f.platform = cx.opt(&f.platform)?;
            f.name = cx.opt(&f.name)?.map(|n| n.to_ascii_lowercase());
            if let Some(n) = &f.name {
                if !crate::parse::valid_stage_name(n) {
                    return Err(cx.wrap(ExpandError(format!(
                        "invalid name for build stage: {n:?}, name can't start with a number or contain symbols"
                    ))));
                }
            }
            if f.image.is_empty() {
                return Err(cx.wrap(ExpandError(
                    "the base image name is empty after expansion".into(),
                )));
            }
            Kind::From(f)
        }
        Kind::Copy(c) => Kind::Copy(cx.copy(c)?),
        Kind::Add(c) => Kind::Add(cx.copy(c)?),
        Kind::Env(kvs) => Kind::Env(cx.kvs(kvs)?),
        Kind::Label(kvs) => Kind::Label(cx.kvs(kvs)?),
        Kind::Arg(args) => {
            let mut out = Vec::with_capacity(args.len());
            for a in args {
                let mut a = a.clone();
                a.name = cx.word(&a.name)?;
                a.default = cx.opt(&a.default)?;
                out.push(a);
            }
            Kind::Arg(out)
        }
        Kind::Workdir(w) => Kind::Workdir(cx.word(w)?),
        Kind::User(w) => Kind::User(cx.word(w)?),
        Kind::StopSignal(w) => Kind::StopSignal(cx.word(w)?),
        Kind::Expose(ports) => {
            let mut out = Vec::new();
            for p in ports {
                for w in cx.words(p)? {
                    if !valid_port_spec(&w) {
                        return Err(cx.wrap(ExpandError(format!(
                            "invalid port {w:?}: expected PORT, PORT/PROTO or START-END/PROTO with tcp, udp or sctp"
                        ))));
                    }
                    out.push(w);
                }
            }
            Kind::Expose(out)
        }
        Kind::Volume(v) => {
            let mut out = Vec::with_capacity(v.len());
            for w in v {
                let e = cx.word(w)?;
                if e.trim().is_empty() {
                    return Err(cx.wrap(ExpandError(
                        "VOLUME specified can not be an empty string".into(),
                    )));
                }
                out.push(e);
            }
            Kind::Volume(out)
        }
        Kind::Run(r) => {
            let mut r = r.clone();
            let mut mounts = Vec::with_capacity(r.mount_specs.len());
            for spec in &r.mount_specs {
                let mut ex = |w: &str| cx.word(w);
                let m = Mount::parse(spec, Some(&mut ex))
                    .map_err(|e| ExpandError(format!("RUN: --mount={spec}: {e}")))?;
                mounts.push(m);
            }
            r.mounts = mounts;
            Kind::Run(r)
        }
        other => other.clone(),
    };
    let mut instruction = ins.clone();
    instruction.kind = kind;
    Ok(ExpandedInstruction {
        instruction,
        used: cx.used,
    })
}

/// `PORT[-END][/PROTO]` as Docker's EXPOSE takes it.
fn valid_port_spec(s: &str) -> bool {
    let (ports, proto) = match s.split_once('/') {
        Some((p, proto)) => (p, Some(proto)),
        None => (s, None),
    };
    if let Some(p) = proto {
        if !matches!(p.to_ascii_lowercase().as_str(), "tcp" | "udp" | "sctp") {
            return false;
        }
    }
    let num = |p: &str| {
        !p.is_empty()
            && p.len() <= 5
            && p.bytes().all(|b| b.is_ascii_digit())
            && p.parse::<u32>().is_ok_and(|n| n <= 65535)
    };
    match ports.split_once('-') {
        Some((a, b)) => num(a) && num(b) && a.parse::<u32>().ok() <= b.parse::<u32>().ok(),
        None => num(ports),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn env_of(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn word(w: &str, pairs: &[(&str, &str)]) -> Result<String, ExpandError> {
        let m = env_of(pairs);
        let f = move |k: &str| m.get(k).cloned();
        Lexer::new('\\').word(w, &f)
    }

    fn words(w: &str, pairs: &[(&str, &str)]) -> Vec<String> {
        let m = env_of(pairs);
        let f = move |k: &str| m.get(k).cloned();
        Lexer::new('\\').process(w, &f).unwrap().words
    }

    // BuildKit's shell/envVarTest cases (a selection), with its environment.
    const ENV: &[(&str, &str)] = &[
        ("PWD", "/home"),
        ("SHELL", "bash"),
        ("KOREAN", "한국어"),
        ("NULL", ""),
        ("aaa", "abab"),
    ];

    #[test]
    fn the_table() {
        let cases: &[(&str, &str)] = &[
            ("hello", "hello"),
            ("he'll'o", "hello"),
            ("he'llo", "error"),
            ("he\\'llo", "he'llo"),
            ("he\\\\'llo", "error"),
            ("abc\\\\def", "abc\\def"),
            ("\"abc\\\\def\"", "abc\\def"),
            ("\"abc\\\\\"def\"", "error"),
            ("'abc\\\\def'", "abc\\\\def"),
            ("\"hello\"", "hello"),
            ("he\"ll\"o", "hello"),
            ("he\"llo", "error"),
            ("\"\"", ""),
            ("a\"\"b", "ab"),
            ("\\$PWD", "$PWD"),
            ("\"\\$PWD\"", "$PWD"),
            ("'\\$PWD'", "\\$PWD"),
            ("'$PWD'", "$PWD"),
            ("$PWD", "/home"),
            ("\"$PWD\"", "/home"),
            ("${PWD}", "/home"),
            ("${PWD:=000}", "error"),
            ("${PWD:-000}", "/home"),
            ("${XXX:-000}", "000"),
            ("${XXX:-\"\"}", ""),
            ("${XXX:-$PWD}", "/home"),
            ("${NULL:-000}", "000"),
            ("${NULL-000}", ""),
            ("${XXX-000}", "000"),
            ("${PWD:+000}", "000"),
            ("${PWD+000}", "000"),
            ("${XXX:+000}", ""),
            ("${NULL:+000}", ""),
            ("${NULL+000}", "000"),
            ("${PWD:?}", "/home"),
            ("${XXX:?}", "error"),
            ("${NULL?}", ""),
            ("${NULL:?}", "error"),
            ("${aaa#a*b}", "ab"),
            ("${aaa##a*b}", ""),
            ("${aaa%a*b}", "ab"),
            ("${aaa%%a*b}", ""),
            ("${aaa#?}", "bab"),
            ("${aaa%?}", "aba"),
            ("${aaa/b/x}", "axab"),
            ("${aaa//b/x}", "axax"),
            ("${aaa//a*/x}", "x"),
            ("${aaa/}", "error"),
            ("${aaa/b}", "error"),
            ("${{}", "error"),
            ("${}", "error"),
            ("${:}", "error"),
            ("${", "error"),
            ("${PWD", "error"),
            ("${PWD:-", "error"),
            ("$1x", "x"),
            ("$", "$"),
            ("a$", "a$"),
            ("$ a", "$ a"),
            ("${KOREAN}", "한국어"),
            ("안녕$KOREAN", "안녕한국어"),
            ("${PWD:x}", "error"),
            ("foo\\", "foo"),
        ];
        for (input, want) in cases {
            let got = word(input, ENV);
            if *want == "error" {
                assert!(got.is_err(), "{input:?} should fail, got {got:?}");
            } else {
                assert_eq!(got.as_deref(), Ok(*want), "{input:?}");
            }
        }
    }

    #[test]
    fn the_unset_message() {
        let e = word("${XXX:?must be given}", &[]).unwrap_err();
        assert_eq!(
            e.0,
            "failed to process \"${XXX:?must be given}\": XXX: must be given"
        );
        let e = word("${XXX?}", &[]).unwrap_err();
        assert!(e.0.ends_with("XXX: is not allowed to be unset"), "{e}");
        let e = word("${N:?}", &[("N", "")]).unwrap_err();
        assert!(e.0.ends_with("N: is not allowed to be empty"), "{e}");
    }

    #[test]
    fn words_split_after_expansion_but_not_inside_quotes() {
        assert_eq!(words("a b  c", &[]), ["a", "b", "c"]);
        assert_eq!(words("\"a b\" c", &[]), ["a b", "c"]);
        assert_eq!(words("$V", &[("V", "x y")]), ["x", "y"]);
        assert_eq!(words("\"$V\"", &[("V", "x y")]), ["x y"]);
        assert_eq!(words("a\\ b", &[]), ["a b"]);
        assert_eq!(words("\"\" x", &[]), ["x"]);
    }

    #[test]
    fn patterns_shortest_and_longest() {
        let e = &[("V", "foo.tar.gz"), ("P", "/usr/local/bin")];
        assert_eq!(word("${V%.*}", e).unwrap(), "foo.tar");
        assert_eq!(word("${V%%.*}", e).unwrap(), "foo");
        assert_eq!(word("${V#*.}", e).unwrap(), "tar.gz");
        assert_eq!(word("${V##*.}", e).unwrap(), "gz");
        assert_eq!(word("${P##*/}", e).unwrap(), "bin");
        assert_eq!(word("${P%/*}", e).unwrap(), "/usr/local");
        assert_eq!(word("${V#nomatch}", e).unwrap(), "foo.tar.gz");
        // Escaped wildcards are literal.
        assert_eq!(word("${S#\\*}", &[("S", "*x")]).unwrap(), "x");
        assert_eq!(word("${S%\\?}", &[("S", "x?")]).unwrap(), "x");
        assert!(word("${S#\\x}", &[("S", "x")]).is_err());
        // `*` does not cross a newline (Go's `.`).
        assert_eq!(word("${S#*b}", &[("S", "a\nb")]).unwrap(), "a\nb");
    }

    #[test]
    fn replace_forms() {
        let e = &[("V", "a-b-c")];
        assert_eq!(word("${V/-/_}", e).unwrap(), "a_b-c");
        assert_eq!(word("${V//-/_}", e).unwrap(), "a_b_c");
        assert!(word("${V//-}", e).is_err());
        assert_eq!(word("${V//-/}", e).unwrap(), "abc");
        assert_eq!(word("${V/x/y}", e).unwrap(), "a-b-c");
        // Go's template in replace-all: $0 is the match; the replacement
        // keeps its escapes (BuildKit reads it with raw escapes).
        assert_eq!(word("${V//b/<\\$0>}", e).unwrap(), "a-<\\b>-c");
        assert_eq!(word("${V/b/<\\$0>}", e).unwrap(), "a-<\\$0>-c");
        assert_eq!(word("${U//x/y}", &[]).unwrap(), "");
    }

    #[test]
    fn escape_backtick() {
        let m = env_of(&[("A", "1")]);
        let f = move |k: &str| m.get(k).cloned();
        let l = Lexer::new('`');
        assert_eq!(l.word("`$A", &f).unwrap(), "$A");
        assert_eq!(l.word("c:\\dir", &f).unwrap(), "c:\\dir");
        assert_eq!(l.word("\"a`\"b\"", &f).unwrap(), "a\"b");
    }

    #[test]
    fn heredoc_lexer_keeps_quotes() {
        let m = env_of(&[("A", "1")]);
        let f = move |k: &str| m.get(k).cloned();
        assert_eq!(
            Lexer::heredoc().word("echo \"$A\" '$A'\n", &f).unwrap(),
            "echo \"1\" '1'\n"
        );
    }

    #[test]
    fn matched_and_unmatched_are_reported() {
        let m = env_of(&[("A", "1")]);
        let f = move |k: &str| m.get(k).cloned();
        let e = Lexer::new('\\').process("$A ${B:-x} '$C'", &f).unwrap();
        assert_eq!(e.word, "1 x $C");
        assert_eq!(e.matched.into_iter().collect::<Vec<_>>(), ["A"]);
        assert_eq!(e.unmatched.into_iter().collect::<Vec<_>>(), ["B"]);
    }

    #[test]
    fn bounds_hold() {
        let big = "x".repeat(1 << 16);
        let m = env_of(&[("B", &big)]);
        let f = move |k: &str| m.get(k).cloned();
        let w = "$B".repeat(40);
        let e = Lexer::new('\\').word(&w, &f).unwrap_err();
        assert!(e.0.contains("longer than"), "{e}");
        let deep = "${A:-".repeat(200) + &"}".repeat(200);
        let e = Lexer::new('\\').word(&deep, &f).unwrap_err();
        assert!(e.0.contains("nested"), "{e}");
        // A pathological pattern is refused, not slow.
        let long = "a".repeat(200_000);
        let m = env_of(&[("L", &long)]);
        let f = move |k: &str| m.get(k).cloned();
        let pat = "${L//".to_string() + &"*a".repeat(300) + "b/x}";
        let e = Lexer::new('\\').word(&pat, &f).unwrap_err();
        assert!(e.0.contains("too much work"), "{e}");
    }

    #[test]
    fn reverse_pattern_keeps_escapes() {
        assert_eq!(reverse_pattern("a\\*c"), "c\\*a");
        assert_eq!(reverse_pattern("ab"), "ba");
        assert_eq!(reverse_pattern(""), "");
    }

    #[test]
    fn port_specs() {
        for ok in ["80", "80/tcp", "53/UDP", "8000-8010/tcp", "1/sctp"] {
            assert!(valid_port_spec(ok), "{ok}");
        }
        for bad in ["", "x", "80/icmp", "70000", "10-5", "80:80", "-1"] {
            assert!(!valid_port_spec(bad), "{bad}");
        }
    }
}
