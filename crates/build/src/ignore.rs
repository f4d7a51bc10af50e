//! `.dockerignore` / `.containerignore` with Docker's semantics: moby's
//! `dockerignore.ReadAll` (comments, blank lines, `!` exceptions, leading
//! `/` and `./` cleaned) and `patternmatcher` (Go's `filepath.Match`
//! syntax plus `**`, later patterns overriding earlier ones, a path
//! excluded when it or one of its parents matches).
//!
//! Unlike `.gitignore`, a trailing `/` means nothing (patterns are
//! cleaned), so `excluded` takes `is_dir` only to keep the caller honest
//! about what it walks.

use crate::limits::{MAX_IGNORE_FILE, MAX_IGNORE_PATTERNS};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{file}:{line}: {message}")]
pub struct IgnoreError {
    pub file: String,
    pub line: u32,
    pub message: String,
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Lit(char),
    /// `*`: any run of characters but `/` (`[^/]*`).
    Star,
    /// `?`: one character but `/`.
    One,
    /// `**` followed by more pattern: `(.*/)?`.
    AnyDirs,
    /// `**` at the end: `.*`.
    AnyAll,
    /// `[...]`: ranges, negated with `^` (Go's regexp class, which is what
    /// moby compiles patterns to).
    Class(bool, Vec<(char, char)>),
}

#[derive(Debug, Clone, PartialEq)]
struct Pattern {
    text: String,
    exclusion: bool,
    toks: Vec<Tok>,
}

/// A parsed ignore file.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Ignore {
    patterns: Vec<Pattern>,
}

/// Go's `filepath.Clean` on a slash path.
pub fn clean(p: &str) -> String {
    if p.is_empty() {
        return ".".into();
    }
    let rooted = p.starts_with('/');
    let mut out: Vec<&str> = Vec::new();
    for part in p.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                if out.last().is_some_and(|l| *l != "..") {
                    out.pop();
                } else if !rooted {
                    out.push("..");
                }
            }
            x => out.push(x),
        }
    }
    let body = out.join("/");
    match (rooted, body.is_empty()) {
        (true, _) => format!("/{body}"),
        (false, true) => ".".into(),
        (false, false) => body,
    }
}

impl Ignore {
    /// Parses an ignore file's text (`.dockerignore` in errors).
    pub fn parse(text: &str) -> Result<Ignore, IgnoreError> {
        Self::parse_named(".dockerignore", text)
    }

    /// Parses an ignore file, naming it `file` in errors.
    pub fn parse_named(file: &str, text: &str) -> Result<Ignore, IgnoreError> {
        let e = |line: usize, message: String| IgnoreError {
            file: file.to_string(),
            line: line as u32,
            message,
        };
        if text.len() > MAX_IGNORE_FILE {
            return Err(e(1, format!("larger than {MAX_IGNORE_FILE} bytes")));
        }
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        let mut patterns = Vec::new();
        for (i, raw) in text.lines().enumerate() {
            // Comments only where the line starts with '#'.
            if raw.starts_with('#') {
                continue;
            }
            let mut p = raw.trim();
            if p.is_empty() {
                continue;
            }
            let exclusion = p.starts_with('!');
            if exclusion {
                p = p[1..].trim();
            }
            let mut cleaned = String::new();
            if !p.is_empty() {
                cleaned = clean(p);
                if cleaned.len() > 1 && cleaned.starts_with('/') {
                    cleaned.remove(0);
                }
            }
            if exclusion && cleaned.is_empty() {
                return Err(e(i + 1, "illegal exclusion pattern: \"!\"".into()));
            }
            // patternmatcher.New cleans again (a "/" alone stays "/").
            let cleaned = clean(&cleaned);
            let toks =
                compile(&cleaned).map_err(|m| e(i + 1, format!("{m} in pattern {raw:?}")))?;
            if patterns.len() >= MAX_IGNORE_PATTERNS {
                return Err(e(
                    i + 1,
                    format!("more than {MAX_IGNORE_PATTERNS} patterns"),
                ));
            }
            patterns.push(Pattern {
                text: cleaned,
                exclusion,
                toks,
            });
        }
        Ok(Ignore { patterns })
    }

    /// Whether any pattern was given.
    pub fn is_empty(&self) -> bool {
        self.patterns.is_empty()
    }

    /// Whether `rel_path` (relative to the context, `/`-separated) is
    /// excluded: moby's `MatchesOrParentMatches`.
    pub fn excluded(&self, rel_path: &str, is_dir: bool) -> bool {
        let _ = is_dir;
        let file = clean(rel_path.trim_start_matches('/'));
        if file == "." {
            return false;
        }
        let chars: Vec<char> = file.chars().collect();
        // The parents are the prefixes before each '/'.
        let parents: Vec<usize> = chars
            .iter()
            .enumerate()
            .filter(|(_, &c)| c == '/')
            .map(|(i, _)| i)
            .collect();
        let mut bufs = (Vec::new(), Vec::new());
        let mut matched = false;
        for p in &self.patterns {
            if p.exclusion != matched {
                continue;
            }
            let m = glob_chars(&p.toks, &chars, &mut bufs)
                || parents
                    .iter()
                    .any(|&end| glob_chars(&p.toks, &chars[..end], &mut bufs));
            if m {
                matched = !p.exclusion;
            }
        }
        matched
    }

    /// Whether an exception could include something below the directory
    /// `dir`: a walker may skip an excluded directory only when this is
    /// false (BuildKit walks into it otherwise and includes what the
    /// exceptions match, with the directories leading to it).
    pub fn may_include_below(&self, dir: &str) -> bool {
        let d = clean(dir.trim_start_matches('/'));
        let comps: Vec<&str> = if d == "." {
            Vec::new()
        } else {
            d.split('/').collect()
        };
        self.patterns
            .iter()
            .filter(|p| p.exclusion)
            .any(|p| prefix_could_match(&p.text, &comps))
    }
}

/// Whether pattern `text` could match a path below the components `dir`.
fn prefix_could_match(text: &str, dir: &[&str]) -> bool {
    let pcomps: Vec<&str> = text.split('/').collect();
    for (i, d) in dir.iter().enumerate() {
        let Some(pc) = pcomps.get(i) else {
            // The pattern names an ancestor of what is below: it matches
            // there through the parent rule.
            return true;
        };
        if pc.contains("**") {
            return true;
        }
        match compile(pc) {
            Ok(t) if glob(&t, d) => {}
            _ => return false,
        }
    }
    true
}

/// moby's pattern compilation, as tokens.
fn compile(p: &str) -> Result<Vec<Tok>, String> {
    let chars: Vec<char> = p.chars().collect();
    let mut toks = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        i += 1;
        match c {
            '*' if chars.get(i) == Some(&'*') => {
                i += 1;
                if chars.get(i) == Some(&'/') {
                    i += 1;
                }
                if i >= chars.len() {
                    toks.push(Tok::AnyAll);
                } else {
                    toks.push(Tok::AnyDirs);
                }
            }
            '*' => toks.push(Tok::Star),
            '?' => toks.push(Tok::One),
            '\\' => match chars.get(i) {
                Some(&n) => {
                    i += 1;
                    toks.push(Tok::Lit(n));
                }
                None => return Err("a trailing \\ (syntax error in pattern)".into()),
            },
            '[' => {
                let mut neg = false;
                if chars.get(i) == Some(&'^') {
                    neg = true;
                    i += 1;
                }
                let mut ranges = Vec::new();
                let mut closed = false;
                let mut first = true;
                while i < chars.len() {
                    let mut lo = chars[i];
                    if lo == ']' && !first {
                        i += 1;
                        closed = true;
                        break;
                    }
                    first = false;
                    i += 1;
                    if lo == '\\' {
                        lo = *chars
                            .get(i)
                            .ok_or("a trailing \\ in a class (syntax error in pattern)")?;
                        i += 1;
                    }
                    let mut hi = lo;
                    if chars.get(i) == Some(&'-') && chars.get(i + 1).is_some_and(|&c| c != ']') {
                        hi = chars[i + 1];
                        i += 2;
                        if hi == '\\' {
                            hi = *chars
                                .get(i)
                                .ok_or("a trailing \\ in a class (syntax error in pattern)")?;
                            i += 1;
                        }
                        if hi < lo {
                            return Err(
                                "a character range out of order (syntax error in pattern)".into()
                            );
                        }
                    }
                    ranges.push((lo, hi));
                }
                if !closed {
                    return Err("an unclosed [ (syntax error in pattern)".into());
                }
                toks.push(Tok::Class(neg, ranges));
            }
            c => toks.push(Tok::Lit(c)),
        }
    }
    Ok(toks)
}

/// Whether `toks` matches all of `s` (backtracking with memo, bounded by
/// pattern length times path length).
fn glob(toks: &[Tok], s: &str) -> bool {
    let chars: Vec<char> = s.chars().collect();
    glob_chars(toks, &chars, &mut (Vec::new(), Vec::new()))
}

/// [`glob`] on characters, with the caller's buffers.
fn glob_chars(toks: &[Tok], chars: &[char], bufs: &mut (Vec<bool>, Vec<bool>)) -> bool {
    let n = chars.len();
    let (cur, next) = bufs;
    cur.clear();
    cur.resize(n + 1, false);
    // cur[i]: the tokens so far can match chars[..i].
    cur[0] = true;
    for t in toks {
        next.clear();
        next.resize(n + 1, false);
        match t {
            Tok::Lit(c) => {
                for i in 0..n {
                    if cur[i] && chars[i] == *c {
                        next[i + 1] = true;
                    }
                }
            }
            Tok::One => {
                for i in 0..n {
                    if cur[i] && chars[i] != '/' {
                        next[i + 1] = true;
                    }
                }
            }
            Tok::Class(neg, ranges) => {
                for i in 0..n {
                    if cur[i] {
                        let inside = ranges
                            .iter()
                            .any(|&(lo, hi)| chars[i] >= lo && chars[i] <= hi);
                        if inside != *neg {
                            next[i + 1] = true;
                        }
                    }
                }
            }
            Tok::Star => {
                let mut on = false;
                for i in 0..=n {
                    if cur[i] {
                        on = true;
                    }
                    if on {
                        next[i] = true;
                    }
                    if i < n && chars[i] == '/' {
                        on = false;
                    }
                }
            }
            Tok::AnyAll => {
                let mut on = false;
                for i in 0..=n {
                    on |= cur[i];
                    next[i] = on;
                }
            }
            Tok::AnyDirs => {
                // Empty, or anything ending in '/'.
                let mut on = false;
                for i in 0..=n {
                    if cur[i] {
                        next[i] = true;
                    }
                    if on && i > 0 && chars[i - 1] == '/' {
                        next[i] = true;
                    }
                    on |= cur[i];
                }
            }
        }
        std::mem::swap(cur, next);
        if !cur.iter().any(|&b| b) {
            return false;
        }
    }
    cur[n]
}

/// The ignore files to try for a Dockerfile at `dockerfile` (relative to
/// the context or absolute), first found wins: BuildKit's
/// `<Dockerfile>.dockerignore` next to it, its `.containerignore` twin,
/// then the context's `.containerignore` (Podman/Buildah) and
/// `.dockerignore`.
pub fn candidates(dockerfile: &str) -> Vec<String> {
    vec![
        format!("{dockerfile}.dockerignore"),
        format!("{dockerfile}.containerignore"),
        ".containerignore".into(),
        ".dockerignore".into(),
    ]
}

/// Loads the ignore file that applies: the first of [`candidates`] that
/// `read` finds (it returns `None` for a file that does not exist).
pub fn load(
    dockerfile: &str,
    mut read: impl FnMut(&str) -> Option<String>,
) -> Result<Ignore, IgnoreError> {
    for c in candidates(dockerfile) {
        if let Some(text) = read(&c) {
            return Ignore::parse_named(&c, &text);
        }
    }
    Ok(Ignore::default())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ig(text: &str) -> Ignore {
        Ignore::parse(text).unwrap()
    }

    /// moby patternmatcher's TestMatches table (a selection) and Docker's
    /// documented .dockerignore examples.
    #[test]
    fn matches_table() {
        let cases: &[(&str, &str, bool)] = &[
            ("**", "file", true),
            ("**", "file/", true),
            ("**/", "file", true),
            ("**/", "file/", true),
            ("**", "dir/file", true),
            ("**/", "dir/file", true),
            ("**", "dir/file/", true),
            ("**/", "dir/file/", true),
            ("**/**", "dir/file", true),
            ("**/**", "dir/file/", true),
            ("dir/**", "dir/file", true),
            ("dir/**", "dir/file/", true),
            ("dir/**", "dir/dir2/file", true),
            ("dir/**", "dir/dir2/file/", true),
            ("**/dir", "dir", true),
            ("**/dir", "dir/file", true),
            ("**/dir2/*", "dir/dir2/file", true),
            ("**/dir2/*", "dir/dir2/file/", true),
            ("**/dir2/**", "dir/dir2/dir3/file", true),
            ("**/dir2/**", "dir/dir2/dir3/file/", true),
            ("**file", "file", true),
            ("**file", "dir/file", true),
            ("**/file", "dir/file", true),
            ("**file", "dir/dir/file", true),
            ("**/file", "dir/dir/file", true),
            ("**/file*", "dir/dir/file", true),
            ("**/file*", "dir/dir/file.txt", true),
            ("**/file*txt", "dir/dir/file.txt", true),
            ("**/file*.txt", "dir/dir/file.txt", true),
            ("**/file*.txt*", "dir/dir/file.txt", true),
            ("**/**/*.txt", "dir/dir/file.txt", true),
            ("**/**/*.txt2", "dir/dir/file.txt", false),
            ("**/*.txt", "file.txt", true),
            ("**/**/*.txt", "file.txt", true),
            ("a**/*.txt", "a/file.txt", true),
            ("a**/*.txt", "a/dir/file.txt", true),
            ("a**/*.txt", "a/dir/dir/file.txt", true),
            ("a/*.txt", "a/dir/file.txt", false),
            ("a/*.txt", "a/file.txt", true),
            ("a/*.txt**", "a/file.txt", true),
            ("a[b-d]e", "ae", false),
            ("a[b-d]e", "ace", true),
            ("a[b-d]e", "aae", false),
            ("a[^b-d]e", "aze", true),
            (".*", ".foo", true),
            (".*", "foo", false),
            ("abc.def", "abcdef", false),
            ("abc.def", "abc.def", true),
            ("abc.def", "abcZdef", false),
            ("abc?def", "abcZdef", true),
            ("abc?def", "abcdef", false),
            ("a\\\\", "a\\", true),
            ("**/foo/bar", "foo/bar", true),
            ("**/foo/bar", "dir/foo/bar", true),
            ("**/foo/bar", "dir/dir2/foo/bar", true),
            ("abc/**", "abc", false),
            ("abc/**", "abc/def", true),
            ("abc/**", "abc/def/ghi", true),
            ("**/.foo", ".foo", true),
            ("**/.foo", "bar.foo", false),
            ("a(b)c/def", "a(b)c/def", true),
            ("a(b)c/def", "a(b)c/xyz", false),
            ("a.|)$(}+{bc", "a.|)$(}+{bc", true),
            (
                "dist/proxy.py-2.4.0rc3.dev36+g08acad9-py3-none-any.whl",
                "dist/proxy.py-2.4.0rc3.dev36+g08acad9-py3-none-any.whl",
                true,
            ),
            // Docker's documentation.
            ("*/temp*", "somedir/temporary.txt", true),
            ("*/temp*", "somedir/temp", true),
            ("*/temp*", "temp", false),
            ("*/*/temp*", "somedir/subdir/temporary.txt", true),
            ("temp?", "tempa", true),
            ("temp?", "temp", false),
            ("**/*.go", "a/b/c.go", true),
        ];
        for (pat, path, want) in cases {
            // moby's table goes through the parent rule (`Matches`).
            assert_eq!(ig(pat).excluded(path, false), *want, "{pat:?} on {path:?}");
        }
    }

    #[test]
    fn exceptions_in_order_and_parents() {
        let i = ig("*.md\n!README.md\nREADME-secret.md\n");
        assert!(i.excluded("CHANGES.md", false));
        assert!(!i.excluded("README.md", false));
        assert!(i.excluded("README-secret.md", false));
        // A later pattern re-excludes what an exception included.
        let i = ig("*.md\n!README*.md\nREADME-secret.md\n");
        assert!(!i.excluded("README-public.md", false));
        assert!(i.excluded("README-secret.md", false));
        // An exception before the exclusion does nothing.
        let i = ig("!README.md\n*.md\n");
        assert!(i.excluded("README.md", false));
        // A directory excludes everything below it.
        let i = ig("build\n");
        assert!(i.excluded("build", true));
        assert!(i.excluded("build/x/y.o", false));
        assert!(!i.excluded("src/build.rs", false));
        // ...but an exception below it includes that file.
        let i = ig("build\n!build/keep.txt\n");
        assert!(i.excluded("build/x.o", false));
        assert!(!i.excluded("build/keep.txt", false));
        assert!(i.may_include_below("build"));
        let i = ig("build\n");
        assert!(!i.may_include_below("build"));
    }

    #[test]
    fn cleaning_comments_and_blank_lines() {
        let i = ig("# comment\n\n   \n/tmp/x\n./docs\n  spaced  \n! secrets/ok \n");
        assert!(i.excluded("tmp/x", false));
        assert!(i.excluded("docs/a.md", false));
        assert!(i.excluded("spaced", false));
        assert!(!i.excluded("tmp", true));
        // A '#' not at column 0 is a pattern.
        let i = ig(" #x\n");
        assert!(i.excluded("#x", false));
        // Paths are cleaned too.
        let i = ig("a/b\n");
        assert!(i.excluded("./a//b/", false));
        assert!(i.excluded("/a/b/c", false));
    }

    #[test]
    fn bad_patterns_are_errors_naming_the_line() {
        let e = Ignore::parse("ok\n!\n").unwrap_err();
        assert_eq!(
            e.to_string(),
            ".dockerignore:2: illegal exclusion pattern: \"!\""
        );
        let e = Ignore::parse("a[b\n").unwrap_err();
        assert!(
            e.to_string().starts_with(".dockerignore:1: an unclosed ["),
            "{e}"
        );
        assert!(Ignore::parse("a\\").is_err());
        assert!(Ignore::parse("[z-a]").is_err());
    }

    #[test]
    fn may_include_below_with_wildcards() {
        let i = ig("*\n!src/**/*.rs\n!*/keep\n");
        assert!(i.may_include_below("src"));
        assert!(i.may_include_below("src/a/b"));
        assert!(i.may_include_below("docs")); // */keep
        assert!(!i.may_include_below("docs/deep"));
        let i = ig("*\n!**/*.rs\n");
        assert!(i.may_include_below("anything/at/all"));
        assert!(!i.excluded("x/y.rs", false));
        assert!(i.excluded("x/y.c", false));
    }

    #[test]
    fn load_prefers_the_dockerfile_specific_file() {
        let files = [
            ("sub/app.Dockerfile.dockerignore", "specific\n"),
            (".dockerignore", "generic\n"),
            (".containerignore", "container\n"),
        ];
        let read = |p: &str| {
            files
                .iter()
                .find(|(n, _)| *n == p)
                .map(|(_, t)| t.to_string())
        };
        let i = load("sub/app.Dockerfile", read).unwrap();
        assert!(i.excluded("specific", false) && !i.excluded("generic", false));
        let i = load("Dockerfile", read).unwrap();
        assert!(i.excluded("container", false) && !i.excluded("generic", false));
        let only_docker = |p: &str| (p == ".dockerignore").then(|| "generic\n".to_string());
        assert!(load("Dockerfile", only_docker)
            .unwrap()
            .excluded("generic", false));
        assert!(load("Dockerfile", |_: &str| None).unwrap().is_empty());
    }

    #[test]
    fn clean_is_go_clean() {
        for (i, o) in [
            ("", "."),
            ("a/../..", ".."),
            ("/../a", "/a"),
            ("./a/./b/", "a/b"),
            ("a//b", "a/b"),
            ("/", "/"),
        ] {
            assert_eq!(clean(i), o, "{i}");
        }
    }

    /// Real-world files: a Node service and a Go monorepo.
    #[test]
    fn real_world_ignore_files() {
        let node = "# deps and builds\nnode_modules\nnpm-debug.log*\ndist/\ncoverage\n\n# env files, but keep the example\n.env*\n!.env.example\n\n# docs except the API reference\ndocs/**\n!docs/api/**\n.git\n**/*.test.js\nDockerfile*\n.dockerignore\n";
        let i = ig(node);
        let cases = [
            ("node_modules", true, true),
            ("node_modules/left-pad/index.js", false, true),
            ("npm-debug.log.1", false, true),
            ("dist", true, true),
            ("dist/app.js", false, true),
            ("coverage/lcov.info", false, true),
            (".env", false, true),
            (".env.production", false, true),
            (".env.example", false, false),
            ("docs/guide/intro.md", false, true),
            ("docs/api/v1.yaml", false, false),
            // The directory itself stays excluded (`docs/api/**` needs
            // something below it); a walker enters it for the exception
            // and keeps it as the parent of what is included.
            ("docs/api", true, true),
            (".git/HEAD", false, true),
            ("src/app.test.js", false, true),
            ("src/deep/x.test.js", false, true),
            ("src/app.js", false, false),
            ("Dockerfile", false, true),
            ("Dockerfile.dev", false, true),
            ("package.json", false, false),
        ];
        for (path, dir, want) in cases {
            assert_eq!(i.excluded(path, dir), want, "{path}");
        }
        assert!(i.may_include_below("docs"));
        assert!(i.may_include_below("docs/api"));
        assert!(!i.may_include_below("node_modules"));
        assert!(!i.may_include_below("docs/guide"));

        let go = "*\n!go.mod\n!go.sum\n!cmd/\n!internal/\n!pkg/**/*.go\ninternal/**/testdata\n";
        let i = ig(go);
        let cases = [
            ("README.md", true),
            ("go.mod", false),
            ("cmd/server/main.go", false),
            ("internal/db/db.go", false),
            ("internal/db/testdata/big.sql", true),
            ("pkg/util/strings.go", false),
            ("pkg/util/strings_test.txt", true),
            ("vendor/x/y.go", true),
        ];
        for (path, want) in cases {
            assert_eq!(i.excluded(path, false), want, "{path}");
        }
        assert!(i.may_include_below("pkg/util"));
        assert!(i.may_include_below("cmd"));
        assert!(!i.may_include_below("vendor"));
    }
}
