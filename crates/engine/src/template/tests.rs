use super::*;
use serde_json::json;

fn run(t: &str, v: &Value) -> String {
    Template::parse(t)
        .unwrap_or_else(|e| panic!("{t}: {e}"))
        .execute(v)
        .unwrap_or_else(|e| panic!("{t}: {e}"))
}

fn exec_err(t: &str, v: &Value) -> String {
    match Template::parse(t).unwrap().execute(v) {
        Err(e @ Error::Exec { .. }) => e.to_string(),
        other => panic!("{t}: expected an execution error, got {other:?}"),
    }
}

fn parse_err(t: &str) -> Error {
    match Template::parse(t) {
        Err(e) => e,
        Ok(_) => panic!("{t}: parsed"),
    }
}

fn ctr() -> Value {
    json!({
        "Name": "/web",
        "Names": "web",
        "Status": "Up 2 minutes",
        "Args": ["-c", "sleep 1"],
        "State": {"Running": true, "Pid": 4242, "ExitCode": 0},
        "Config": {"Labels": {"k": "v", "com.x.y": "z"}},
        "NetworkSettings": {"IPAddress": "10.88.0.2"},
        "Mounts": [{"Source": "/a", "Destination": "/x"}, {"Source": "/b", "Destination": "/y"}],
        "Labels": "a=1,b=2",
        "CPU": 1.5,
        "Empty": [],
    })
}

#[test]
fn text_and_fields() {
    let c = ctr();
    assert_eq!(run("plain", &c), "plain");
    assert_eq!(run("", &c), "");
    assert_eq!(run("{{.Names}}\t{{.Status}}", &c), "web\tUp 2 minutes");
    assert_eq!(run("{{.State.Pid}}", &c), "4242");
    assert_eq!(run("{{ .NetworkSettings.IPAddress }}", &c), "10.88.0.2");
    assert_eq!(run("{{.CPU}}", &c), "1.5");
    assert_eq!(run("{{.Args}}", &c), "[-c sleep 1]");
    assert_eq!(run("{{.Config.Labels}}", &c), "map[com.x.y:z k:v]");
    assert_eq!(run("{{.}}", &json!("x")), "x");
    assert_eq!(run("{{.}}", &Value::Null), "<no value>");
    assert_eq!(run("{{/* a comment */}}x", &c), "x");
    assert_eq!(run("{{\"q\\\"s\\n\"}}{{`raw\\n`}}", &c), "q\"s\nraw\\n");
}

#[test]
fn json_and_functions() {
    let c = ctr();
    assert_eq!(
        run("{{json .State}}", &c),
        r#"{"ExitCode":0,"Pid":4242,"Running":true}"#
    );
    assert_eq!(run("{{json .Names}}", &c), r#""web""#);
    assert_eq!(run("{{index .Config.Labels \"com.x.y\"}}", &c), "z");
    assert_eq!(run("[{{index .Config.Labels \"nope\"}}]", &c), "[]");
    assert_eq!(run("{{index .Args 1}}", &c), "sleep 1");
    assert_eq!(run("{{upper .Names}} {{lower \"AbC\"}}", &c), "WEB abc");
    assert_eq!(run("{{title \"hello big-world\"}}", &c), "Hello Big-World");
    assert_eq!(run("{{join .Args \" \"}}", &c), "-c sleep 1");
    assert_eq!(run("{{split \"a:b:c\" \":\"}}", &c), "[a b c]");
    assert_eq!(run("{{index (split \"a:b:c\" \":\") 2}}", &c), "c");
    assert_eq!(run("{{truncate .Status 2}}", &c), "Up");
    assert_eq!(run("[{{pad .Names 1 2}}]", &c), "[ web  ]");
    assert_eq!(
        run("{{len .Args}} {{len .Names}} {{len .Config.Labels}}", &c),
        "2 3 2"
    );
    assert_eq!(run("{{println .Names 3}}", &c), "web 3\n");
    assert_eq!(run("{{print 1 2 \"a\" \"b\" 3}}", &c), "1 2ab3");
    assert_eq!(run("{{printf \"%s=%d|%5s|%-4s|%05d|%.2f|%q|%v%%\" .Names .State.Pid \"ab\" \"c\" 42 .CPU \"x\" .Args}}", &c),
        "web=4242|   ab|c   |00042|1.50|\"x\"|[-c sleep 1]%");
    assert_eq!(run("{{printf \"%d\"}}", &c), "%!d(MISSING)");
    assert_eq!(run("{{.Label \"b\"}}", &c), "2");
    assert_eq!(run("[{{.Label \"zz\"}}]", &c), "[]");
    assert_eq!(
        run("{{.Label \"k\"}}", &json!({"Labels": {"k": "obj"}})),
        "obj"
    );
}

#[test]
fn pipelines_and_variables() {
    let c = ctr();
    assert_eq!(run("{{.Names | upper}}", &c), "WEB");
    assert_eq!(run("{{.Names | printf \"<%s>\" | upper}}", &c), "<WEB>");
    assert_eq!(run("{{$x := .Names}}{{$x}}-{{$x | upper}}", &c), "web-WEB");
    assert_eq!(run("{{$x := 1}}{{$x = 2}}{{$x}}", &c), "2");
    assert_eq!(
        run("{{range .Mounts}}{{$.Names}}:{{.Source}} {{end}}", &c),
        "web:/a web:/b "
    );
    assert_eq!(run("{{with $m := .State}}{{$m.Pid}}{{end}}", &c), "4242");
    assert_eq!(run("{{(index .Mounts 1).Destination}}", &c), "/y");
}

#[test]
fn conditions() {
    let c = ctr();
    let t = "{{if .State.Running}}up{{else}}down{{end}}";
    assert_eq!(run(t, &c), "up");
    assert_eq!(run(t, &json!({"State": {"Running": false}})), "down");
    let t = "{{if eq .Names \"a\"}}A{{else if eq .Names \"web\" \"b\"}}W{{else}}?{{end}}";
    assert_eq!(run(t, &c), "W");
    assert_eq!(run(t, &json!({"Names": "a"})), "A");
    assert_eq!(run(t, &json!({"Names": "q"})), "?");
    assert_eq!(
        run("{{if and .State.Running (gt .State.Pid 1)}}y{{end}}", &c),
        "y"
    );
    assert_eq!(run("{{or .Empty \"dflt\"}}", &c), "dflt");
    assert_eq!(run("{{and 1 0 .Missing}}", &c), "0", "and stops at 0");
    assert_eq!(
        run(
            "{{not .Empty}} {{ne 1 2}} {{lt 1 2}} {{le 2 2}} {{ge \"b\" \"a\"}}",
            &c
        ),
        "true true true true true"
    );
    assert_eq!(run("{{eq 1 1.0}}", &c), "true");
    assert_eq!(run("{{with .Empty}}x{{else}}none{{end}}", &c), "none");
    assert_eq!(run("{{with .State}}{{.Pid}}{{end}}", &c), "4242");
}

#[test]
fn range() {
    let c = ctr();
    assert_eq!(run("{{range .Mounts}}{{.Source}} {{end}}", &c), "/a /b ");
    assert_eq!(
        run(
            "{{range $i, $m := .Mounts}}{{$i}}={{$m.Destination}};{{end}}",
            &c
        ),
        "0=/x;1=/y;"
    );
    assert_eq!(
        run(
            "{{range $k, $v := .Config.Labels}}{{$k}}:{{$v}},{{end}}",
            &c
        ),
        "com.x.y:z,k:v,"
    );
    assert_eq!(run("{{range .Empty}}x{{else}}empty{{end}}", &c), "empty");
    assert_eq!(run("{{range 3}}{{.}}{{end}}", &c), "012");
    assert_eq!(run("{{range -3}}{{.}}{{else}}none{{end}}", &c), "none");
    // A variable declared in the body does not outlive it.
    assert!(Template::parse("{{range .Args}}{{$v := .}}{{end}}{{$v}}")
        .unwrap()
        .execute(&c)
        .is_err());
}

#[test]
fn trim_markers() {
    let c = ctr();
    assert_eq!(run("a  {{- .Names -}}  \n b", &c), "awebb");
    assert_eq!(
        run("{{range .Args -}}\n  {{.}}\n{{- end}}", &c),
        "-csleep 1"
    );
    assert_eq!(run("{{-3}}", &c), "-3");
}

#[test]
fn parse_errors_name_the_column() {
    let e = parse_err("ab{{.Names");
    assert!(
        matches!(
            e,
            Error::Parse {
                line: 1,
                column: 3,
                ..
            }
        ),
        "{e}"
    );
    let e = parse_err("x\n  {{nosuch .X}}");
    assert_eq!(
        e,
        Error::Parse {
            line: 2,
            column: 5,
            msg: "function \"nosuch\" not defined".into()
        }
    );
    let e = parse_err("{{if .A}}x");
    assert!(e.to_string().contains("unclosed \"if\""), "{e}");
    let e = parse_err("{{end}}");
    assert!(e.to_string().contains("unexpected {{end}}"), "{e}");
    let e = parse_err("{{\"abc}}");
    assert!(
        e.to_string().contains("unclosed action") || e.to_string().contains("unterminated"),
        "{e}"
    );
    let e = parse_err("{{.A | }}");
    assert!(e.to_string().contains("missing command"), "{e}");
    let e = parse_err("{{(.A}}");
    assert!(e.to_string().contains("unclosed \"(\""), "{e}");
    let e = parse_err("{{template \"x\"}}");
    assert!(e.to_string().contains("not supported"), "{e}");
    let e = parse_err("{{}}");
    assert!(e.to_string().contains("empty action"), "{e}");
    assert!(parse_err("{{else}}")
        .to_string()
        .contains("unexpected {{else}}"));
    assert!(parse_err("{{.€}}")
        .to_string()
        .contains("unexpected '€' after \".\""));
}

#[test]
fn execution_errors_say_what_was_missing() {
    let c = ctr();
    let e = exec_err("x{{.State.Nope}}", &c);
    assert!(e.contains("column 4"), "the field's column: {e}");
    assert!(e.contains(".State: there is no field \"Nope\""), "{e}");
    assert!(e.contains("\"Pid\""), "lists the fields there are: {e}");
    let e = exec_err("{{.Names.X}}", &c);
    assert!(e.contains("cannot take field \"X\" of a string"), "{e}");
    let e = exec_err("{{$nope}}", &c);
    assert!(e.contains("undefined variable: $nope"), "{e}");
    let e = exec_err("{{index .Args 5}}", &c);
    assert!(e.contains("out of range"), "{e}");
    let e = exec_err("{{lt .Names 3}}", &c);
    assert!(e.contains("cannot compare a string with a number"), "{e}");
    let e = exec_err("{{upper}}", &c);
    assert!(e.contains("upper: takes 1 argument(s), got 0"), "{e}");
    let e = exec_err("{{.Names \"x\"}}", &c);
    assert!(e.contains("not a method"), "{e}");
}

#[test]
fn output_is_capped() {
    // A hostile label of 1 MiB, printed 17 times.
    let big = json!({"L": "x".repeat(1 << 20)});
    let e = exec_err("{{range 17}}{{$.L}}{{end}}", &big);
    assert!(e.contains("output passes 16 MiB"), "{e}");
    let e = exec_err("{{pad .L 9223372036854775807 9223372036854775807}}", &big);
    assert!(e.contains("pad: the result passes"), "{e}");
    let e = exec_err("{{pad .L 0 20000000}}", &big);
    assert!(e.contains("pad: the result passes"), "{e}");
    let e = exec_err("{{printf \"%0999999d\" 1}}", &big);
    assert!(e.contains("width or precision"), "{e}");
    let many = json!({"A": vec![0; 300]});
    let e = exec_err("{{join .A (printf \"%60000s\" \"\")}}", &many);
    assert!(e.contains("join: the result passes 16 MiB"), "{e}");
}

#[test]
fn work_is_bounded() {
    // 1000^3 iterations, no output: stopped by the step budget.
    let v = json!({"A": vec![0; 1000]});
    let e = exec_err(
        "{{range .A}}{{range $.A}}{{range $.A}}{{end}}{{end}}{{end}}",
        &v,
    );
    assert!(e.contains("steps"), "{e}");
    // Copying a large value in a loop costs its size.
    let big = json!({"A": vec![0; 5000]});
    let e = exec_err("{{range .A}}{{$x := $.A}}{{end}}", &big);
    assert!(e.contains("steps"), "{e}");
    let e = exec_err("{{range .A}}{{len $.A}}{{end}}", &big);
    assert!(e.contains("steps"), "{e}");
    let e = exec_err("{{range 999999999999}}{{end}}", &v);
    assert!(e.contains("too many"), "{e}");
    let deep = "{{if 1}}".repeat(MAX_DEPTH + 1);
    assert!(parse_err(&deep).to_string().contains("nested deeper"));
    let deep = format!("{{{{{}1{}}}}}", "(".repeat(500), ")".repeat(500));
    assert!(Template::parse(&deep).is_err());
}

#[test]
fn no_input_panics() {
    // Every prefix of some templates, and odd bytes: errors, never panics.
    let samples = [
        "{{range $i, $e := .Mounts}}{{$e.Source | printf \"%-9s\"}}{{else}}-{{end}}",
        "{{- if and (eq .A \"x\") (not .B) -}} {{`r`}} {{else if .C}}{{.Label \"k\"}}{{end}}",
        "{{with $x := index .M \"k\"}}{{$x = 2}}{{json $x}}{{end}}{{/* c */}}",
        "{{printf \"%+05.1f %x %X %q %t %e\" 1.25 255 \"ab\" \"q\" true 3.0}}",
        "é{{\"\\é\"}}{{ .é }}{{$é}}",
    ];
    let v = json!({"A": "x", "B": false, "C": 1, "M": {"k": 1}, "Mounts": [{"Source": "s"}], "Labels": {}});
    for s in samples {
        for (i, _) in s.char_indices() {
            if let Ok(t) = Template::parse(&s[..i]) {
                let _ = t.execute(&v);
            }
        }
    }
    assert_eq!(run(samples[3], &v), "+01.2 ff 6162 \"q\" true 3.000000e0");
}

#[test]
fn formats_and_tables() {
    assert!(matches!(Format::parse("json").unwrap(), Format::Json));
    assert!(matches!(Format::parse("table").unwrap(), Format::Table));
    assert!(matches!(Format::parse("").unwrap(), Format::Table));
    let e = Format::parse("yaml").unwrap_err().to_string();
    assert!(
        e.contains("\"yaml\" is not table, json or a Go template"),
        "{e}"
    );
    let Format::Template { table, template } = Format::parse("table {{.ID}}\\t{{.Image}}").unwrap()
    else {
        panic!("not a template");
    };
    assert!(table);
    let rows = [
        json!({"ID": "abc", "Image": "busybox"}),
        json!({"ID": "0123456789ab", "Image": "x"}),
    ];
    let names = [("ID", "CONTAINER ID"), ("Image", "IMAGE")];
    assert_eq!(
        render(&template, table, &rows, &names).unwrap(),
        "CONTAINER ID   IMAGE\nabc            busybox\n0123456789ab   x\n"
    );
    let Format::Template { table, template } = Format::parse("{{.ID}}:{{.Image}}").unwrap() else {
        panic!("not a template");
    };
    assert_eq!(
        render(&template, table, &rows, &names).unwrap(),
        "abc:busybox\n0123456789ab:x\n"
    );
    assert_eq!(render(&template, table, &[], &names).unwrap(), "");
    assert_eq!(header("CreatedSince", &[]), "CREATED SINCE");
    assert_eq!(header("CPUPerc", &[]), "CPU PERC");
    assert_eq!(
        align("a\tb\nlonger-than-ten\tc"),
        "a                 b\nlonger-than-ten   c"
    );
}

#[test]
fn random_templates_never_panic() {
    // A small fuzz run: templates made of the pieces of the syntax.
    const PIECES: &[&str] = &[
        "{{", "}}", "{{- ", " -}}", ".", ".A", ".B.C", "$", "$x", ":=", "=", ",", "(", ")", "|",
        "\"", "`", "\\", "€", " ", "\n", "range", "if", "else", "with", "end", "1", "-2", "3.5",
        "\"s\"", "/*", "*/", "index", "printf", "\"%5d\"", "json", "len", "and", "or", "eq",
        ".Label", "split", "join", "pad", "truncate", "nil", "true",
    ];
    let v = json!({"A": [1, "x", {"C": 2}], "B": {"C": "y"}, "Labels": "a=1"});
    let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
    for _ in 0..30_000 {
        let mut t = String::new();
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let n = (seed % 14) as usize;
        for _ in 0..n {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            t.push_str(PIECES[(seed % PIECES.len() as u64) as usize]);
        }
        if let Ok(tm) = Template::parse(&t) {
            let _ = tm.execute(&v);
        }
    }
}
