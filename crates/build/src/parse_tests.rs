use super::*;
use crate::expand::expand_instruction;
use std::collections::HashMap;

fn p(src: &str) -> Dockerfile {
    match parse("Dockerfile", src.as_bytes()) {
        Ok(d) => d,
        Err(e) => panic!("{src:?}: {e}"),
    }
}

fn perr(src: &str) -> String {
    match parse("Dockerfile", src.as_bytes()) {
        Ok(d) => {
            let s: String = src.chars().take(200).collect();
            let d: String = format!("{d:?}").chars().take(400).collect();
            panic!("{s:?} should fail, parsed {d}")
        }
        Err(e) => e.to_string(),
    }
}

fn kinds(src: &str) -> Vec<Kind> {
    p(src).instructions.into_iter().map(|i| i.kind).collect()
}

fn one(src: &str) -> Kind {
    let mut k = kinds(src);
    assert_eq!(k.len(), 1, "{src:?}: {k:?}");
    k.remove(0)
}

fn run(src: &str) -> Run {
    match one(src) {
        Kind::Run(r) => r,
        k => panic!("not RUN: {k:?}"),
    }
}

fn copy(src: &str) -> CopyArgs {
    match one(src) {
        Kind::Copy(c) | Kind::Add(c) => c,
        k => panic!("not COPY/ADD: {k:?}"),
    }
}

fn shell(s: &str) -> CommandForm {
    CommandForm::Shell(s.into())
}

fn exec(v: &[&str]) -> CommandForm {
    CommandForm::Exec(v.iter().map(|s| s.to_string()).collect())
}

// ---- directives -----------------------------------------------------------

#[test]
fn directives_at_the_top_only() {
    let d = p("# syntax=docker/dockerfile:1\n# ESCAPE = `\n#check=skip=all\nFROM x\n");
    assert_eq!(d.syntax.as_deref(), Some("docker/dockerfile:1"));
    assert_eq!(d.check.as_deref(), Some("skip=all"));
    assert_eq!(d.escape, '`');
    // After a comment, a blank line or an instruction they are comments.
    assert_eq!(p("# hello\n# escape=`\nFROM x\n").escape, '\\');
    assert_eq!(p("\n# escape=`\nFROM x\n").escape, '\\');
    assert_eq!(p("FROM x\n# escape=`\n").escape, '\\');
    // An unknown directive ends them too.
    assert_eq!(p("# foo=bar\n# escape=`\nFROM x\n").escape, '\\');
    // Leading whitespace is allowed.
    assert_eq!(p("  # escape=`\nFROM x\n").escape, '`');
    assert_eq!(
        perr("# escape=`\n# escape=\\\nFROM x\n"),
        "Dockerfile:2:1: only one escape parser directive can be used"
    );
    assert_eq!(
        perr("# escape=x\nFROM x\n"),
        "Dockerfile:1:1: invalid escape token 'x' does not match ` or \\"
    );
    // A BOM is skipped.
    assert_eq!(p("\u{feff}# escape=`\nFROM x\n").escape, '`');
}

#[test]
fn backtick_escape_continues_lines_and_keeps_backslashes() {
    let d = p("# escape=`\nFROM x\nRUN dir c:\\ `\n  && echo hi\nCOPY a\\b c:\\dst\\\n");
    assert_eq!(
        d.instructions[1].kind,
        Kind::Run(Run {
            command: shell("dir c:\\   && echo hi"),
            heredocs: vec![],
            mount_specs: vec![],
            mounts: vec![],
            network: None,
            security: None,
        })
    );
    let Kind::Copy(c) = &d.instructions[2].kind else {
        panic!()
    };
    assert_eq!(c.dest, "c:\\dst\\");
}

// ---- lines ----------------------------------------------------------------

#[test]
fn continuations_comments_and_empty_lines() {
    let d = p("FROM x\nRUN a \\\n# a comment inside\n\n    b \\  \t\n  c\n");
    assert_eq!(d.instructions.len(), 2);
    assert_eq!(run_cmd(&d.instructions[1]), "a     b   c");
    assert_eq!(d.instructions[1].pos, Pos { line: 2, col: 1 });
    assert_eq!(d.instructions[1].end_line, 6);
    assert_eq!(d.warnings.len(), 1, "{:?}", d.warnings);
    // An escaped escape at the end is not a continuation.
    let d = p("FROM x\nRUN echo \\\\\nRUN b\n");
    assert_eq!(run_cmd(&d.instructions[1]), "echo \\\\");
    // A continuation on its own line.
    let d = p("FROM x\nRUN a\\\n\\\nb\n");
    assert_eq!(run_cmd(&d.instructions[1]), "ab");
    // A continuation at the end of the file.
    let d = p("FROM x\nRUN a \\");
    assert_eq!(run_cmd(&d.instructions[1]), "a");
    // CRLF line ends.
    let d = p("FROM x\r\nRUN a \\\r\n b\r\n");
    assert_eq!(run_cmd(&d.instructions[1]), "a  b");
    // Indented instructions and comments.
    let d = p("   FROM x\n\t# c\n  run  b\n");
    assert_eq!(d.instructions[0].pos, Pos { line: 1, col: 4 });
    assert_eq!(d.instructions[1].pos, Pos { line: 3, col: 3 });
    assert_eq!(run_cmd(&d.instructions[1]), "b");
}

fn run_cmd(i: &Instruction) -> String {
    match &i.kind {
        Kind::Run(Run {
            command: CommandForm::Shell(s),
            ..
        }) => s.clone(),
        k => panic!("{k:?}"),
    }
}

#[test]
fn empty_and_comment_only_files_fail() {
    assert_eq!(perr(""), "Dockerfile:1:1: file with no instructions");
    assert_eq!(
        perr("# just\n\n# comments\n"),
        "Dockerfile:3:1: file with no instructions"
    );
}

// ---- heredocs -------------------------------------------------------------

#[test]
fn heredocs() {
    let r = run("RUN <<EOF\necho $HOME\n  two\nEOF\n");
    assert_eq!(r.command, shell("<<EOF"));
    assert_eq!(
        r.heredocs,
        vec![Heredoc {
            name: "EOF".into(),
            fd: 0,
            expand: true,
            chomp: false,
            content: "echo $HOME\n  two\n".into(),
        }]
    );
    // <<- strips leading tabs, of the body and of the terminator.
    let r = run("RUN <<-EOT bash\n\t\techo a\n\tb\n\tEOT\n");
    assert_eq!(r.heredocs[0].content, "echo a\nb\n");
    assert!(r.heredocs[0].chomp);
    // Quoted delimiters: no expansion.
    for q in ["<<'EOF'", "<<\"EOF\"", "<<E\"O\"F"] {
        let r = run(&format!("RUN cat {q}\n$X\nEOF\n"));
        assert_eq!(r.heredocs[0].name, "EOF", "{q}");
        assert!(!r.heredocs[0].expand, "{q}");
        assert_eq!(r.heredocs[0].content, "$X\n");
    }
    // Several on one line, in order; a file descriptor.
    let r = run("RUN cat /dev/fd/3 3<<A - <<B\na\nA\nb\nB\n");
    assert_eq!(r.heredocs.len(), 2);
    assert_eq!(
        (r.heredocs[0].fd, r.heredocs[0].content.as_str()),
        (3, "a\n")
    );
    assert_eq!(
        (r.heredocs[1].name.as_str(), r.heredocs[1].content.as_str()),
        ("B", "b\n")
    );
    // COPY <<EOF /dst.
    let c = copy("COPY <<EOF <<-\"TWO\" /dst/\nhello $NAME\nEOF\n\tworld\n\tTWO\n");
    assert_eq!(c.dest, "/dst/");
    let SourceItem::Heredoc(a) = &c.sources[0] else {
        panic!()
    };
    let SourceItem::Heredoc(b) = &c.sources[1] else {
        panic!()
    };
    assert_eq!(
        (a.name.as_str(), a.content.as_str(), a.expand),
        ("EOF", "hello $NAME\n", true)
    );
    assert_eq!(
        (b.name.as_str(), b.content.as_str(), b.expand),
        ("TWO", "world\n", false)
    );
    // The instruction after the heredoc is parsed on.
    let d = p("FROM x\nRUN <<EOF\nFROM y\nEOF\nRUN b\n");
    assert_eq!(d.instructions.len(), 3);
    assert_eq!(d.instructions[1].end_line, 4);
    assert_eq!(d.instructions[2].pos.line, 5);
    // Not in the JSON form, not in other instructions.
    let d = p("FROM x\nRUN [\"cat\", \"<<EOF\"]\nENV a=<<EOF\n");
    assert_eq!(d.instructions.len(), 3);
    // `<<` not as its own word is no heredoc.
    let r = run("RUN echo a<<b\n");
    assert!(r.heredocs.is_empty());
    let r = run("RUN echo '<<EOF'\n");
    assert!(r.heredocs.is_empty());
}

#[test]
fn heredoc_errors() {
    assert_eq!(
        perr("FROM x\nRUN <<EOF\nnever ends\n"),
        "Dockerfile:2:1: RUN: unterminated heredoc \"EOF\" (no line \"EOF\" before the end of the file)"
    );
    assert_eq!(
        perr("COPY a <<EOF\nx\nEOF\n"),
        "Dockerfile:1:6: COPY: COPY cannot accept a heredoc as a destination"
    );
}

// ---- forms ----------------------------------------------------------------

#[test]
fn exec_and_shell_forms() {
    assert_eq!(one("CMD [\"a\", \"b c\"]"), Kind::Cmd(exec(&["a", "b c"])));
    assert_eq!(one("CMD [ ]"), Kind::Cmd(exec(&[])));
    assert_eq!(
        one("ENTRYPOINT [\"/bin/sh\",\"-c\"]"),
        Kind::Entrypoint(exec(&["/bin/sh", "-c"]))
    );
    // Invalid JSON is the shell form, as written.
    assert_eq!(one("CMD [\"a\", 'b']"), Kind::Cmd(shell("[\"a\", 'b']")));
    assert_eq!(one("CMD [a]"), Kind::Cmd(shell("[a]")));
    assert_eq!(one("CMD echo [\"a\"]"), Kind::Cmd(shell("echo [\"a\"]")));
    // JSON that is not an array of strings is an error.
    assert_eq!(
        perr("FROM x\nCMD [\"a\", 1]\n"),
        "Dockerfile:2:5: CMD: when using JSON array syntax, arrays must be comprised of strings only"
    );
    assert_eq!(
        one("SHELL [\"powershell\", \"-c\"]"),
        Kind::Shell(vec!["powershell".into(), "-c".into()])
    );
    assert!(perr("SHELL /bin/sh -c").ends_with("SHELL requires the arguments to be in JSON form"));
    assert!(perr("SHELL []").ends_with("SHELL requires at least one argument"));
    let c = copy("COPY [\"a b\", \"/c d/\"]");
    assert!(c.json);
    assert_eq!(c.sources, vec![SourceItem::Path("a b".into())]);
    assert_eq!(c.dest, "/c d/");
    assert_eq!(
        one("VOLUME [\"/a\", \"/b\"]"),
        Kind::Volume(vec!["/a".into(), "/b".into()])
    );
    assert_eq!(
        one("VOLUME /a /b"),
        Kind::Volume(vec!["/a".into(), "/b".into()])
    );
}

// ---- flags ----------------------------------------------------------------

#[test]
fn copy_and_add_flags() {
    let c = copy("COPY --from=build --chown=1:2 --chmod=0755 --link --parents --exclude=*.md --exclude=x a b /dst");
    assert_eq!(c.from.as_deref(), Some("build"));
    assert_eq!(c.chown.as_deref(), Some("1:2"));
    assert_eq!(c.chmod.as_deref(), Some("0755"));
    assert!(c.link && c.parents);
    assert_eq!(c.exclude, ["*.md", "x"]);
    assert_eq!(c.sources.len(), 2);
    let c = copy("ADD --checksum=sha256:abc --keep-git-dir=true --link=false https://x/y.tgz /dst");
    assert_eq!(c.checksum.as_deref(), Some("sha256:abc"));
    assert!(c.keep_git_dir && !c.link);
    // Quoted flag values.
    let c = copy("COPY --chown=\"a b\" x y");
    assert_eq!(c.chown.as_deref(), Some("a b"));
    // `--` ends the flags.
    let c = copy("COPY -- --weird /dst");
    assert_eq!(c.sources, vec![SourceItem::Path("--weird".into())]);
}

#[test]
fn flag_errors_name_the_flag_and_its_column() {
    assert_eq!(
        perr("FROM x\nCOPY --form=a b c\n"),
        "Dockerfile:2:6: COPY: unknown flag: --form (COPY takes --from, --chown, --chmod, --link, --parents, --exclude)"
    );
    assert_eq!(
        perr("FROM x\nADD --from=a b c\n"),
        "Dockerfile:2:5: ADD: unknown flag: --from (ADD takes --chown, --chmod, --link, --keep-git-dir, --checksum, --exclude)"
    );
    assert_eq!(
        perr("FROM x\nENV --x=1 a=b\n"),
        "Dockerfile:2:5: ENV: unknown flag: --x (ENV takes no flags)"
    );
    assert!(
        perr("COPY --chown=a --chown=b x y").ends_with("COPY: duplicate flag specified: --chown")
    );
    assert!(perr("COPY --chown x y").ends_with("COPY: missing a value on flag: --chown"));
    assert!(perr("COPY --link= x y").ends_with("COPY: missing a value on flag: --link"));
    assert!(perr("COPY --link=maybe x y")
        .ends_with("COPY: expecting boolean value for flag --link, not: maybe"));
    // The column of a flag on a continuation line.
    assert_eq!(
        perr("FROM x\nRUN --network=host \\\n    --bogus true\n"),
        "Dockerfile:3:5: RUN: unknown flag: --bogus (RUN takes --mount, --network, --security)"
    );
}

#[test]
fn run_flags() {
    let r = run("RUN --network=none --security=insecure --mount=type=cache,target=/root/.cache --mount=type=tmpfs,dst=/tmp,size=64m true");
    assert_eq!(r.network, Some(NetworkMode::None));
    assert_eq!(r.security, Some(Security::Insecure));
    assert_eq!(r.mounts.len(), 2);
    assert_eq!(r.mount_specs.len(), 2);
    assert_eq!(r.mounts[1].size, Some(64 << 20));
    assert_eq!(r.command, shell("true"));
    assert!(perr("RUN --network=bridge true")
        .ends_with("RUN: unsupported network mode \"bridge\" (default, none or host)"));
    assert!(perr("RUN --security=x true").contains("unsupported security mode"));
}

// ---- mounts ---------------------------------------------------------------

fn mount(spec: &str) -> Result<Mount, String> {
    Mount::parse(spec, None)
}

#[test]
fn mounts_of_every_type() {
    let m = mount("type=cache,target=/root/.cache/go-build,id=gobuild,sharing=locked,mode=0700,uid=1000,gid=1000").unwrap();
    assert_eq!(m.kind, MountType::Cache);
    assert_eq!(m.target.as_deref(), Some("/root/.cache/go-build"));
    assert_eq!(m.id.as_deref(), Some("gobuild"));
    assert_eq!(m.sharing, Some(Sharing::Locked));
    assert_eq!(
        (m.mode, m.uid, m.gid),
        (Some(0o700), Some(1000), Some(1000))
    );
    assert!(!m.read_only);
    let m = mount("type=cache,dst=/c").unwrap();
    assert_eq!(m.sharing, Some(Sharing::Shared));
    // bind is the default type and read only unless rw.
    let m = mount("target=/src,source=app,from=build").unwrap();
    assert_eq!(m.kind, MountType::Bind);
    assert!(m.read_only);
    assert_eq!(
        (m.source.as_deref(), m.from.as_deref()),
        (Some("app"), Some("build"))
    );
    assert!(!mount("type=bind,target=/s,rw").unwrap().read_only);
    assert!(
        !mount("type=bind,target=/s,readwrite=true")
            .unwrap()
            .read_only
    );
    assert!(mount("type=cache,target=/s,ro").unwrap().read_only);
    assert!(mount("type=cache,target=/s,readonly=1").unwrap().read_only);
    let m = mount("type=tmpfs,destination=/t,size=1.5g").unwrap();
    assert_eq!(m.size, Some(1_610_612_736));
    let m = mount("type=secret,id=npmrc,target=/root/.npmrc,required,mode=0400").unwrap();
    assert!(m.required && m.read_only);
    assert_eq!(m.secret_id().as_deref(), Some("npmrc"));
    let m = mount("type=secret,target=/run/secrets/token").unwrap();
    assert_eq!(m.secret_id().as_deref(), Some("token"));
    let m = mount("type=secret,id=tok,env=TOKEN").unwrap();
    assert_eq!(m.env.as_deref(), Some("TOKEN"));
    let m = mount("type=ssh,required=true").unwrap();
    assert_eq!(m.kind, MountType::Ssh);
    assert!(m.required);
    // Quoted CSV fields.
    let m = mount("type=bind,\"target=/a,b\"").unwrap();
    assert_eq!(m.target.as_deref(), Some("/a,b"));
    // Case-insensitive keys and type values.
    assert_eq!(
        mount("TYPE=Cache,Target=/x").unwrap().kind,
        MountType::Cache
    );
}

#[test]
fn mount_errors() {
    let cases = [
        ("type=nfs,target=/x", "unsupported mount type \"nfs\""),
        (
            "type=bind,target=/x,sharing=shared",
            "invalid cache sharing set for bind mount",
        ),
        (
            "type=cache,target=/x,sharing=weird",
            "unsupported sharing value",
        ),
        (
            "type=bind,target=/x,size=1m",
            "unexpected key 'size' for mount type 'bind'",
        ),
        (
            "type=cache,target=/x,env=A",
            "unexpected key 'env' for mount type 'cache'",
        ),
        (
            "type=bind,target=/x,required",
            "unexpected key 'required' for mount type 'bind'",
        ),
        (
            "type=bind,target=/x,mode=0700",
            "mode not allowed for \"bind\" type mounts",
        ),
        (
            "type=tmpfs,target=/x,uid=1",
            "uid not allowed for \"tmpfs\" type mounts",
        ),
        (
            "type=cache,target=/x,mode=999",
            "invalid value 999 for mode",
        ),
        ("type=cache,target=/x,uid=-1", "invalid value -1 for uid"),
        ("type=cache,target=/x,bogus=1", "unexpected key 'bogus'"),
        (
            "type=cache,target=/x,flag",
            "invalid field \"flag\": must be a key=value pair",
        ),
        (
            "type=secret,id=a,sharing=shared",
            "secret mount should not define sharing",
        ),
        (
            "sharing=locked,type=bind,target=/x",
            "invalid cache sharing set for bind mount",
        ),
        (
            "type=secret,from=x,id=a",
            "secret mount should not have a from",
        ),
        (
            "type=secret",
            "invalid secret mount. one of source, target required",
        ),
        (
            "type=secret,id=a,source=b",
            "both source and id can't be set",
        ),
        ("type=tmpfs,target=/x,size=lots", "invalid size"),
        (
            "type=bind,target=/x,from=$STAGE",
            "'from' doesn't support variable expansion",
        ),
        ("type=bind,\"target=/x", "missing \" in quoted field"),
        ("type=bind,tar\"get=/x", "bare \" in non-quoted field"),
    ];
    for (spec, want) in cases {
        let e = mount(spec).unwrap_err();
        assert!(e.contains(want), "{spec}: {e}");
    }
    // Values with variables are checked when expanded.
    assert!(mount("type=cache,target=/x,uid=$UID").is_ok());
    let mut ex = |w: &str| Ok::<_, ExpandError>(w.replace("$UID", "oops"));
    assert!(Mount::parse("type=cache,target=/x,uid=$UID", Some(&mut ex)).is_err());
    // In a Dockerfile the error names the instruction and the mount.
    assert_eq!(
        perr("FROM x\nRUN --mount=type=cache,target=/c,sharing=no echo\n"),
        "Dockerfile:2:5: RUN: --mount=type=cache,target=/c,sharing=no: unsupported sharing value \"no\" (shared, private or locked)"
    );
    // The type may come after sharing; a missing target is the working
    // directory (BuildKit).
    let m = mount("sharing=locked,type=cache").unwrap();
    assert_eq!((m.sharing, m.target), (Some(Sharing::Locked), None));
}

// ---- instructions ---------------------------------------------------------

#[test]
fn from_forms() {
    assert_eq!(
        one("FROM alpine:3.20"),
        Kind::From(From {
            image: "alpine:3.20".into(),
            name: None,
            platform: None
        })
    );
    assert_eq!(
        one("from --platform=$BUILDPLATFORM golang:1.22 As Build-Env"),
        Kind::From(From {
            image: "golang:1.22".into(),
            name: Some("build-env".into()),
            platform: Some("$BUILDPLATFORM".into())
        })
    );
    assert!(perr("FROM a b").ends_with("FROM: FROM requires either one or three arguments"));
    assert!(perr("FROM a AS").ends_with("FROM requires either one or three arguments"));
    assert!(perr("FROM a TO b").ends_with("FROM requires either one or three arguments"));
    assert!(perr("FROM").ends_with("FROM requires either one or three arguments"));
    assert_eq!(
        perr("FROM a AS 1st"),
        "Dockerfile:1:6: FROM: invalid name for build stage: \"1st\", name can't start with a number or contain symbols"
    );
    assert!(perr("FROM a AS b/c").contains("invalid name for build stage"));
}

#[test]
fn env_and_label_forms() {
    let kv = |k: &str, v: &str| KeyValue {
        key: k.into(),
        value: v.into(),
    };
    assert_eq!(one("ENV A b c  d"), Kind::Env(vec![kv("A", "b c  d")]));
    assert_eq!(
        one("ENV A=1 B=\"two words\" C='x y' D=e\\ f"),
        Kind::Env(vec![
            kv("A", "1"),
            kv("B", "\"two words\""),
            kv("C", "'x y'"),
            kv("D", "e\\ f")
        ])
    );
    assert_eq!(one("ENV A="), Kind::Env(vec![kv("A", "")]));
    assert_eq!(
        one("LABEL \"com.example.vendor\"=\"ACME Inc\" version=1.0"),
        Kind::Label(vec![
            kv("\"com.example.vendor\"", "\"ACME Inc\""),
            kv("version", "1.0")
        ])
    );
    assert!(perr("ENV A").ends_with("ENV: ENV must have two arguments"));
    assert!(perr("ENV").ends_with("ENV must have two arguments"));
    assert!(perr("ENV A=1 B")
        .ends_with("Syntax error - can't find = in \"B\". Must be of the form: name=value"));
    assert!(perr("ENV =1").ends_with("ENV names can not be blank"));
    assert!(perr("LABEL").ends_with("LABEL must have two arguments"));
}

#[test]
fn arg_forms() {
    let a = |n: &str, d: Option<&str>| ArgDecl {
        name: n.into(),
        default: d.map(Into::into),
    };
    assert_eq!(
        one("ARG A B=2 C=\"x y\" D="),
        Kind::Arg(vec![
            a("A", None),
            a("B", Some("2")),
            a("C", Some("\"x y\"")),
            a("D", Some(""))
        ])
    );
    assert!(perr("ARG").ends_with("ARG requires at least one argument"));
    assert!(perr("ARG =x").ends_with("ARG names can not be blank"));
}

#[test]
fn simple_instructions() {
    assert_eq!(one("WORKDIR /a b"), Kind::Workdir("/a b".into()));
    assert_eq!(one("USER 1000:1000"), Kind::User("1000:1000".into()));
    assert_eq!(
        one("STOPSIGNAL SIGKILL"),
        Kind::StopSignal("SIGKILL".into())
    );
    assert_eq!(
        one("MAINTAINER me <me@x>"),
        Kind::Maintainer("me <me@x>".into())
    );
    assert_eq!(
        one("EXPOSE 80/tcp 53/udp"),
        Kind::Expose(vec!["80/tcp".into(), "53/udp".into()])
    );
    for k in ["WORKDIR", "USER", "STOPSIGNAL", "MAINTAINER"] {
        assert!(
            perr(k).ends_with(&format!("{k}: {k} requires exactly one argument")),
            "{k}"
        );
    }
    assert!(perr("EXPOSE").ends_with("EXPOSE requires at least one argument"));
    assert!(perr("VOLUME").ends_with("VOLUME requires at least one argument"));
    assert_eq!(
        perr("FROM x\n  FORM y\n"),
        "Dockerfile:2:3: unknown instruction: FORM"
    );
}

#[test]
fn healthcheck_forms() {
    let Kind::Healthcheck(h) = one("HEALTHCHECK --interval=30s --timeout=1m30s --start-period=500ms --start-interval=1.5s --retries=3 CMD curl -f http://localhost/ || exit 1") else { panic!() };
    assert_eq!(h.test, ["CMD-SHELL", "curl -f http://localhost/ || exit 1"]);
    assert_eq!(h.interval, Duration::from_secs(30));
    assert_eq!(h.timeout, Duration::from_secs(90));
    assert_eq!(h.start_period, Duration::from_millis(500));
    assert_eq!(h.start_interval, Duration::from_millis(1500));
    assert_eq!(h.retries, 3);
    let Kind::Healthcheck(h) = one("HEALTHCHECK cmd [\"/bin/check\", \"-q\"]") else {
        panic!()
    };
    assert_eq!(h.test, ["CMD", "/bin/check", "-q"]);
    let Kind::Healthcheck(h) = one("HEALTHCHECK NONE") else {
        panic!()
    };
    assert_eq!(h.test, ["NONE"]);
    assert!(perr("HEALTHCHECK NONE x").ends_with("HEALTHCHECK NONE takes no arguments"));
    assert!(perr("HEALTHCHECK CMD").ends_with("Missing command after HEALTHCHECK CMD"));
    assert!(perr("HEALTHCHECK RUN x").ends_with("Unknown type \"RUN\" in HEALTHCHECK (try CMD)"));
    assert!(perr("HEALTHCHECK --interval=1us CMD x")
        .ends_with("Interval \"interval\" cannot be less than 1ms"));
    assert!(perr("HEALTHCHECK --interval=-1s CMD x").contains("cannot be less than 1ms"));
    assert!(perr("HEALTHCHECK --timeout=5 CMD x").contains("invalid duration \"5\""));
    assert!(perr("HEALTHCHECK --retries=-1 CMD x").ends_with("--retries cannot be negative (-1)"));
    assert!(perr("HEALTHCHECK --retries=x CMD x").contains("invalid --retries"));
    assert!(perr("HEALTHCHECK --bogus=1 CMD x").contains("unknown flag: --bogus"));
    let Kind::Healthcheck(h) = one("HEALTHCHECK --interval=0 CMD x") else {
        panic!()
    };
    assert_eq!(h.interval, Duration::ZERO);
}

#[test]
fn go_durations() {
    assert_eq!(
        go_duration("1h2m3.5s"),
        Some((false, Duration::from_millis(3_723_500)))
    );
    assert_eq!(go_duration("1µs"), Some((false, Duration::from_micros(1))));
    assert_eq!(
        go_duration(".5s"),
        Some((false, Duration::from_millis(500)))
    );
    assert_eq!(go_duration("-2ms"), Some((true, Duration::from_millis(2))));
    for bad in ["", "s", "1", "1x", "1.s.", "99999999999h", "."] {
        assert_eq!(go_duration(bad), None, "{bad}");
    }
}

#[test]
fn onbuild() {
    let Kind::Onbuild(o) = one("ONBUILD RUN --mount=type=cache,target=/c make") else {
        panic!()
    };
    assert_eq!(o.expression, "RUN --mount=type=cache,target=/c make");
    let Kind::Run(r) = &o.trigger.kind else {
        panic!()
    };
    assert_eq!(r.mounts.len(), 1);
    assert_eq!(o.trigger.pos, Pos { line: 1, col: 9 });
    let Kind::Onbuild(o) = one("ONBUILD COPY <<EOF /x\nhi\nEOF\n") else {
        panic!()
    };
    let Kind::Copy(c) = &o.trigger.kind else {
        panic!()
    };
    assert_eq!(
        c.sources,
        vec![SourceItem::Heredoc(Heredoc {
            name: "EOF".into(),
            fd: 0,
            expand: true,
            chomp: false,
            content: "hi\n".into()
        })]
    );
    assert!(perr("ONBUILD ONBUILD RUN x").contains("ONBUILD"));
    assert!(perr("ONBUILD FROM x").ends_with("FROM isn't allowed as an ONBUILD trigger"));
    assert!(
        perr("ONBUILD MAINTAINER x").ends_with("MAINTAINER isn't allowed as an ONBUILD trigger")
    );
    assert!(perr("ONBUILD").ends_with("ONBUILD requires at least one argument"));
    assert_eq!(
        perr("ONBUILD BOGUS x"),
        "Dockerfile:1:9: unknown instruction: BOGUS"
    );
}

// ---- expansion of instructions -------------------------------------------

fn expand_all(src: &str, env: &[(&str, &str)]) -> Vec<(Kind, Vec<String>)> {
    let d = p(src);
    let m: HashMap<String, String> = env
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let f = move |k: &str| m.get(k).cloned();
    d.instructions
        .iter()
        .map(|i| {
            let x = expand_instruction(i, d.escape, &f).unwrap();
            (x.instruction.kind, x.used.into_iter().collect())
        })
        .collect()
}

#[test]
fn expansion_where_docker_expands() {
    let env = [("V", "1.2"), ("DIR", "/srv"), ("U", "app"), ("NAME", "w d")];
    let src = "FROM --platform=$P base:$V AS Stage\n\
               ENV A=$V B=\"$NAME\" C='$V'\n\
               LABEL \"k-$V\"=\"$NAME\"\n\
               ARG X=${V:-none}\n\
               WORKDIR $DIR/app\n\
               USER ${U}:${U}\n\
               STOPSIGNAL SIG${SIG:-TERM}\n\
               EXPOSE ${PORT:-80} 443/tcp\n\
               VOLUME $DIR/data [\"x\"]\n\
               COPY --from=$U --chown=$U --chmod=${MODE:-644} --exclude=$V ${DIR}/a \"$NAME\" /dst/$V/\n\
               ADD --checksum=$SUM http://x/$V.tgz /\n\
               RUN echo $V\n\
               CMD echo $V\n\
               ENTRYPOINT [\"$V\"]\n\
               SHELL [\"/bin/$V\"]\n\
               HEALTHCHECK CMD $V\n\
               ONBUILD RUN $V\n\
               MAINTAINER $V\n\
               RUN --mount=type=cache,target=/c/$V,id=$U true\n";
    let x = expand_all(src, &env);
    let kv = |k: &str, v: &str| KeyValue {
        key: k.into(),
        value: v.into(),
    };
    assert_eq!(
        x[0].0,
        Kind::From(From {
            image: "base:1.2".into(),
            name: Some("stage".into()),
            platform: Some(String::new())
        })
    );
    assert_eq!(x[0].1, ["P", "V"]);
    assert_eq!(
        x[1].0,
        Kind::Env(vec![kv("A", "1.2"), kv("B", "w d"), kv("C", "$V")])
    );
    assert_eq!(x[2].0, Kind::Label(vec![kv("k-1.2", "w d")]));
    assert_eq!(
        x[3].0,
        Kind::Arg(vec![ArgDecl {
            name: "X".into(),
            default: Some("1.2".into())
        }])
    );
    assert_eq!(x[4].0, Kind::Workdir("/srv/app".into()));
    assert_eq!(x[5].0, Kind::User("app:app".into()));
    assert_eq!(x[6].0, Kind::StopSignal("SIGTERM".into()));
    assert_eq!(x[6].1, ["SIG"]);
    assert_eq!(x[7].0, Kind::Expose(vec!["80".into(), "443/tcp".into()]));
    // A word of the shell form loses its quotes like any other.
    assert_eq!(x[8].0, Kind::Volume(vec!["/srv/data".into(), "[x]".into()]));
    let Kind::Copy(c) = &x[9].0 else { panic!() };
    // --from is the graph's (global args only).
    assert_eq!(c.from.as_deref(), Some("$U"));
    assert_eq!(c.chown.as_deref(), Some("app"));
    assert_eq!(c.chmod.as_deref(), Some("644"));
    assert_eq!(c.exclude, ["1.2"]);
    assert_eq!(
        c.sources,
        vec![
            SourceItem::Path("/srv/a".into()),
            SourceItem::Path("w d".into())
        ]
    );
    assert_eq!(c.dest, "/dst/1.2/");
    let Kind::Add(a) = &x[10].0 else { panic!() };
    assert_eq!(a.checksum.as_deref(), Some(""));
    assert_eq!(a.sources, vec![SourceItem::Path("http://x/1.2.tgz".into())]);
    // Not expanded.
    assert_eq!(
        x[11].0,
        Kind::Run(Run {
            command: shell("echo $V"),
            heredocs: vec![],
            mount_specs: vec![],
            mounts: vec![],
            network: None,
            security: None
        })
    );
    assert!(x[11].1.is_empty());
    assert_eq!(x[12].0, Kind::Cmd(shell("echo $V")));
    assert_eq!(x[13].0, Kind::Entrypoint(exec(&["$V"])));
    assert_eq!(x[14].0, Kind::Shell(vec!["/bin/$V".into()]));
    let Kind::Healthcheck(h) = &x[15].0 else {
        panic!()
    };
    assert_eq!(h.test, ["CMD-SHELL", "$V"]);
    assert!(matches!(&x[16].0, Kind::Onbuild(o) if o.expression == "RUN $V"));
    assert_eq!(x[17].0, Kind::Maintainer("$V".into()));
    // RUN's mounts are.
    let Kind::Run(r) = &x[18].0 else { panic!() };
    assert_eq!(r.mounts[0].target.as_deref(), Some("/c/1.2"));
    assert_eq!(r.mounts[0].id.as_deref(), Some("app"));
    assert_eq!(x[18].1, ["U", "V"]);
}

#[test]
fn heredoc_bodies_expand_unless_quoted() {
    let x = expand_all("COPY <<A <<'B' /d/\n\"$V\" \\$V\nA\n$V\nB\n", &[("V", "1")]);
    let Kind::Copy(c) = &x[0].0 else { panic!() };
    let SourceItem::Heredoc(a) = &c.sources[0] else {
        panic!()
    };
    let SourceItem::Heredoc(b) = &c.sources[1] else {
        panic!()
    };
    assert_eq!(a.content, "\"1\" $V\n");
    assert_eq!(b.content, "$V\n");
    // RUN heredocs are the shell's business.
    let x = expand_all("RUN <<A\n$V\nA\n", &[("V", "1")]);
    let Kind::Run(r) = &x[0].0 else { panic!() };
    assert_eq!(r.heredocs[0].content, "$V\n");
}

#[test]
fn expansion_errors_name_the_instruction() {
    let d = p("FROM x\nWORKDIR ${NOPE:?set it}\nEXPOSE 80:80\nVOLUME $EMPTY\n");
    let f = |_: &str| None;
    let e = expand_instruction(&d.instructions[1], '\\', &f).unwrap_err();
    assert_eq!(
        e.0,
        "WORKDIR: failed to process \"${NOPE:?set it}\": NOPE: set it"
    );
    let e = expand_instruction(&d.instructions[2], '\\', &f).unwrap_err();
    assert!(e.0.starts_with("EXPOSE: invalid port \"80:80\""), "{e}");
    let e = expand_instruction(&d.instructions[3], '\\', &f).unwrap_err();
    assert_eq!(e.0, "VOLUME: VOLUME specified can not be an empty string");
}

// ---- bounds ---------------------------------------------------------------

#[test]
fn bounds() {
    let big = vec![b'#'; crate::limits::MAX_DOCKERFILE + 1];
    assert!(parse("Dockerfile", &big)
        .unwrap_err()
        .message
        .contains("larger than"));
    let long = format!("FROM x\nRUN {}\n", "a".repeat(70_000));
    assert_eq!(
        parse("Dockerfile", long.as_bytes())
            .unwrap_err()
            .to_string(),
        "Dockerfile:2:1: dockerfile line greater than max allowed size of 65535"
    );
    let many = "RUN x\n".repeat(crate::limits::MAX_INSTRUCTIONS + 1);
    assert!(perr(&many).contains("more than 10000 instructions"));
    let cont = format!("RUN {}", "a\\\n".repeat(1_100_000));
    assert!(perr(&cont).contains("longer than"));
    // A heredoc body of long lines under the bound is fine.
    let doc = format!("RUN <<E\n{}E\n", "x".repeat(60_000) + "\n");
    assert!(parse("Dockerfile", doc.as_bytes()).is_ok());
    let huge = format!(
        "RUN <<E\n{}E\n",
        (0..80)
            .map(|_| "y".repeat(60_000) + "\n")
            .collect::<String>()
    );
    assert!(perr(&huge).contains("heredoc \"E\" is longer than"));
    let bad = b"FROM x\nRUN \xff\n";
    assert_eq!(
        parse("Containerfile", bad).unwrap_err().to_string(),
        "Containerfile:2:5: the file is not valid UTF-8"
    );
}

#[test]
fn errors_are_one_line() {
    let e = perr("FROM x\nRUN --mount=type=bind,target=\"a\x01b\",bogus=1 x\n");
    assert!(!e.contains('\n') && !e.contains('\x01'), "{e}");
    let e = perr("FROM x\nFO\x07O y\n");
    assert_eq!(e, "Dockerfile:2:1: unknown instruction: FO\\u{7}O");
}

// ---- real-world files ----------------------------------------------------

const GO_MULTISTAGE: &str = r#"# syntax=docker/dockerfile:1.7
ARG GO_VERSION=1.22
ARG ALPINE=3.20

FROM --platform=$BUILDPLATFORM golang:${GO_VERSION}-alpine AS build
WORKDIR /src
ENV CGO_ENABLED=0
COPY go.mod go.sum ./
RUN --mount=type=cache,target=/go/pkg/mod \
    go mod download
COPY . .
ARG TARGETOS TARGETARCH
RUN --mount=type=cache,target=/go/pkg/mod \
    --mount=type=cache,target=/root/.cache/go-build \
    GOOS=$TARGETOS GOARCH=$TARGETARCH go build -trimpath -ldflags="-s -w" -o /out/app ./cmd/app

FROM build AS test
RUN --mount=type=cache,target=/root/.cache/go-build go test ./...

FROM alpine:${ALPINE} AS runtime
RUN apk add --no-cache ca-certificates && adduser -D -u 10001 app
COPY --from=build --chown=app:app /out/app /usr/local/bin/app
USER app
EXPOSE 8080/tcp
HEALTHCHECK --interval=10s --timeout=2s CMD ["/usr/local/bin/app", "-health"]
ENTRYPOINT ["/usr/local/bin/app"]
"#;

const RUST_CARGO_CHEF: &str = r#"FROM rust:1.80 AS chef
RUN cargo install cargo-chef
WORKDIR /app

FROM chef AS planner
COPY . .
RUN cargo chef prepare --recipe-path recipe.json

FROM chef AS builder
COPY --from=planner /app/recipe.json recipe.json
RUN --mount=type=cache,target=/usr/local/cargo/registry,sharing=locked \
    cargo chef cook --release --recipe-path recipe.json
COPY . .
RUN cargo build --release --bin app

FROM gcr.io/distroless/cc-debian12
COPY --from=builder /app/target/release/app /
CMD ["./app"]
"#;

const C_HEREDOCS: &str = r#"FROM debian:12 AS cc
RUN <<EOF
set -e
apt-get update
apt-get install -y --no-install-recommends gcc libc6-dev
rm -rf /var/lib/apt/lists/*
EOF
WORKDIR /build
COPY <<-"EOT" hello.c
	#include <stdio.h>
	int main(void) { puts("hello $USER"); return 0; }
	EOT
RUN gcc -O2 -static -o hello hello.c

FROM scratch
COPY --from=cc /build/hello /hello
ENTRYPOINT ["/hello"]
"#;

const PYTHON_ONBUILD: &str = r#"FROM python:3.12-slim
LABEL org.opencontainers.image.source="https://example.com/repo" \
      org.opencontainers.image.licenses=MIT
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
WORKDIR /app
ONBUILD COPY requirements.txt .
ONBUILD RUN pip install --no-cache-dir -r requirements.txt
ONBUILD COPY . .
RUN --mount=type=secret,id=pip,target=/etc/pip.conf,required=true \
    --network=default pip --version
VOLUME /data
STOPSIGNAL SIGINT
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
CMD python -m app
"#;

#[test]
fn real_world_corpus() {
    let d = p(GO_MULTISTAGE);
    assert_eq!(d.syntax.as_deref(), Some("docker/dockerfile:1.7"));
    assert_eq!(d.instructions.len(), 19);
    let names: Vec<&str> = d.instructions.iter().map(|i| i.kind.name()).collect();
    assert_eq!(&names[..5], ["ARG", "ARG", "FROM", "WORKDIR", "ENV"]);
    let Kind::Run(r) = &d.instructions[9].kind else {
        panic!("{:?}", d.instructions[9])
    };
    assert_eq!(r.mounts.len(), 2);
    assert_eq!(r.command, shell("GOOS=$TARGETOS GOARCH=$TARGETARCH go build -trimpath -ldflags=\"-s -w\" -o /out/app ./cmd/app"));
    assert_eq!(d.instructions[9].pos.line, 13);
    assert_eq!(d.instructions[9].end_line, 15);

    let d = p(RUST_CARGO_CHEF);
    assert_eq!(
        d.instructions
            .iter()
            .filter(|i| matches!(i.kind, Kind::From(_)))
            .count(),
        4
    );
    let Kind::Run(r) = &d.instructions[8].kind else {
        panic!()
    };
    assert_eq!(r.mounts[0].sharing, Some(Sharing::Locked));

    let d = p(C_HEREDOCS);
    let Kind::Run(r) = &d.instructions[1].kind else {
        panic!()
    };
    assert!(r.heredocs[0]
        .content
        .starts_with("set -e\napt-get update\n"));
    let Kind::Copy(c) = &d.instructions[3].kind else {
        panic!()
    };
    let SourceItem::Heredoc(h) = &c.sources[0] else {
        panic!()
    };
    assert!(!h.expand);
    assert_eq!(
        h.content,
        "#include <stdio.h>\nint main(void) { puts(\"hello $USER\"); return 0; }\n"
    );
    assert_eq!(d.instructions[4].pos.line, 13);

    let d = p(PYTHON_ONBUILD);
    let Kind::Label(l) = &d.instructions[1].kind else {
        panic!()
    };
    assert_eq!(l.len(), 2);
    let onb = d
        .instructions
        .iter()
        .filter(|i| matches!(i.kind, Kind::Onbuild(_)))
        .count();
    assert_eq!(onb, 3);
    let Kind::Run(r) = &d.instructions[7].kind else {
        panic!()
    };
    assert_eq!(r.mounts[0].kind, MountType::Secret);
    assert!(r.mounts[0].required);
    assert_eq!(r.network, Some(NetworkMode::Default));
}

#[test]
fn buildkit_details() {
    // VOLUME refuses empty entries at parse time; entries are trimmed.
    assert!(perr("VOLUME [\"/a\", \" \"]").ends_with("VOLUME specified can not be an empty string"));
    assert_eq!(one("VOLUME [\" /a \"]"), Kind::Volume(vec!["/a".into()]));
    // HEALTHCHECK NONE does not read flags.
    let Kind::Healthcheck(h) = one("HEALTHCHECK --whatever=1 NONE") else {
        panic!()
    };
    assert_eq!(h.test, ["NONE"]);
    // ONBUILD keeps its heredocs in the expression, as written.
    let Kind::Onbuild(o) = one("ONBUILD RUN <<-EOF\n\techo hi\n\tEOF\n") else {
        panic!()
    };
    assert_eq!(o.expression, "RUN <<-EOF\n\techo hi\nEOF");
    let Kind::Run(r) = &o.trigger.kind else {
        panic!()
    };
    assert_eq!(r.heredocs[0].content, "echo hi\n");
    // RUN and CMD may be empty (the shell runs nothing).
    assert_eq!(run("RUN").command, shell(""));
    assert_eq!(one("CMD"), Kind::Cmd(shell("")));
}

#[test]
fn heredoc_edge_cases() {
    // An empty body.
    let c = copy("COPY <<EOF /bar\nEOF");
    let SourceItem::Heredoc(h) = &c.sources[0] else {
        panic!()
    };
    assert_eq!((h.content.as_str(), h.expand), ("", true));
    // Heredocs and paths mixed keep their order.
    let c = copy("COPY <<EOF foo.txt /bar\ninline\nEOF\n");
    assert!(matches!(&c.sources[0], SourceItem::Heredoc(h) if h.content == "inline\n"));
    assert_eq!(c.sources[1], SourceItem::Path("foo.txt".into()));
    // Quotes in a body are kept.
    let c = copy("COPY <<EOF /q\n\"quotes\"\nEOF");
    assert!(matches!(&c.sources[0], SourceItem::Heredoc(h) if h.content == "\"quotes\"\n"));
    // A pipe after the heredoc stays in the command.
    let r = run("RUN <<'EOF' | python\nprint(\"hello\")\nEOF\n");
    assert_eq!(r.command, shell("<<'EOF' | python"));
    assert!(!r.heredocs[0].expand);
    // The terminator must be alone on its line (trailing spaces count).
    let d = p("FROM x\nRUN <<EOF\nEOF \nEOF\nRUN y\n");
    let Kind::Run(r) = &d.instructions[1].kind else {
        panic!()
    };
    assert_eq!(r.heredocs[0].content, "EOF \n");
    // CRLF bodies keep their CR; the terminator matches without it.
    let r = run("RUN <<EOF\r\na\r\nEOF\r\n");
    assert_eq!(r.heredocs[0].content, "a\r\n");
}

#[test]
fn legacy_env_and_label_with_tabs_and_continuations() {
    let d = p("FROM\tubuntu\nLABEL\tmaintainer\tA B <a@b> (@c)\nENV\tLIST\t\\\n\ta b \\\n\tc d\n");
    let kv = |k: &str, v: &str| KeyValue {
        key: k.into(),
        value: v.into(),
    };
    assert_eq!(
        d.instructions[0].kind,
        Kind::From(From {
            image: "ubuntu".into(),
            name: None,
            platform: None
        })
    );
    assert_eq!(
        d.instructions[1].kind,
        Kind::Label(vec![kv("maintainer", "A B <a@b> (@c)")])
    );
    assert_eq!(
        d.instructions[2].kind,
        Kind::Env(vec![kv("LIST", "a b \tc d")])
    );
}
