use super::*;
use crate::parse::parse;

fn amd64() -> Platform {
    Platform {
        os: "linux".into(),
        arch: "amd64".into(),
        variant: String::new(),
    }
}

fn graph_args(src: &str, args: &[(&str, &str)]) -> Result<Graph, GraphError> {
    let df = parse("Dockerfile", src.as_bytes()).unwrap();
    let args: BTreeMap<String, String> = args
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    Graph::new("Dockerfile", &df, &args, &amd64())
}

fn graph(src: &str) -> Graph {
    graph_args(src, &[]).unwrap()
}

fn gerr(src: &str) -> String {
    graph_args(src, &[]).unwrap_err().to_string()
}

fn ids(v: &[usize]) -> Vec<StageId> {
    v.iter().map(|&i| StageId(i)).collect()
}

const MULTI: &str = "\
ARG GO=1.22
ARG BASE=alpine
FROM golang:${GO} AS deps
RUN go mod download
FROM deps AS build
RUN go build
FROM deps AS lint
RUN golangci-lint run
FROM node:20 AS web
RUN npm ci
FROM ${BASE}:3.20 AS final
COPY --from=build /app /app
COPY --from=web /dist /srv
RUN --mount=type=bind,from=lint,target=/l true
COPY --from=busybox:1.36 /bin/busybox /bin/
FROM scratch AS unrelated
COPY --from=0 /x /x
";

#[test]
fn stages_bases_and_deps() {
    let g = graph(MULTI);
    assert_eq!(g.stages.len(), 6);
    let names: Vec<_> = g.stages.iter().map(|s| s.name.clone().unwrap()).collect();
    assert_eq!(
        names,
        ["deps", "build", "lint", "web", "final", "unrelated"]
    );
    assert_eq!(g.stages[0].base, Base::Image("golang:1.22".into()));
    assert_eq!(g.stages[0].from_args.iter().collect::<Vec<_>>(), ["GO"]);
    assert_eq!(g.stages[1].base, Base::Stage(StageId(0)));
    assert_eq!(g.stages[4].base, Base::Image("alpine:3.20".into()));
    assert_eq!(g.stages[4].deps, ids(&[1, 2, 3]));
    assert_eq!(g.stages[4].image_refs, ["busybox:1.36"]);
    assert_eq!(g.stages[4].instructions.len(), 4);
    assert_eq!(g.stages[5].base, Base::Scratch);
    assert_eq!(g.stages[5].deps, ids(&[0]));
}

#[test]
fn plan_takes_only_what_the_target_needs_and_schedules_in_parallel() {
    let g = graph(MULTI);
    let plan = g.plan(None).unwrap();
    assert_eq!(plan.target, StageId(5));
    assert_eq!(plan.stages, ids(&[0, 5]));
    let plan = g.plan(Some("FINAL")).unwrap();
    assert_eq!(plan.target, StageId(4));
    assert_eq!(plan.stages, ids(&[0, 1, 2, 3, 4]));
    let mut done = HashSet::new();
    // deps and web have no stage dependencies: both start at once.
    assert_eq!(plan.ready(&done), ids(&[0, 3]));
    done.insert(StageId(3));
    assert_eq!(plan.ready(&done), ids(&[0]));
    done.insert(StageId(0));
    // build and lint as soon as deps is done.
    assert_eq!(plan.ready(&done), ids(&[1, 2]));
    done.insert(StageId(1));
    assert_eq!(plan.ready(&done), ids(&[2]));
    done.insert(StageId(2));
    assert_eq!(plan.ready(&done), ids(&[4]));
    assert!(!plan.finished(&done));
    done.insert(StageId(4));
    assert!(plan.ready(&done).is_empty());
    assert!(plan.finished(&done));
    let plan = g.plan(Some("lint")).unwrap();
    assert_eq!(plan.stages, ids(&[0, 2]));
}

#[test]
fn unknown_target_lists_the_stages() {
    let g = graph(MULTI);
    assert_eq!(
        g.plan(Some("prod")).unwrap_err(),
        "target stage \"prod\" could not be found; the stages are: deps, build, lint, web, final, unrelated"
    );
    let g = graph("FROM a\nFROM b\n");
    assert!(g.plan(Some("x")).unwrap_err().contains("names no stages"));
}

#[test]
fn global_args_and_build_args() {
    let src = "ARG REG=docker.io\nARG IMG=${REG}/library/alpine\nARG TAG\nFROM ${IMG}:${TAG:-latest}\nARG IMG\nARG TAG=inner\nARG LOCAL=1\nRUN echo\n";
    let g = graph(src);
    assert_eq!(
        g.stages[0].base,
        Base::Image("docker.io/library/alpine:latest".into())
    );
    assert_eq!(g.global_args.get("TAG"), Some(&None));
    // Inside a stage: build arg, else the default, else the global.
    assert_eq!(
        g.arg_value("IMG", None).as_deref(),
        Some("docker.io/library/alpine")
    );
    assert_eq!(
        g.arg_value("TAG", Some("inner".into())).as_deref(),
        Some("inner")
    );
    assert_eq!(g.arg_value("NOPE", None), None);
    assert_eq!(g.arg_value("TARGETARCH", None).as_deref(), Some("amd64"));
    let g = graph_args(
        src,
        &[
            ("TAG", "3.20"),
            ("REG", "r.example"),
            ("UNUSED", "x"),
            ("HTTP_PROXY", "p"),
        ],
    )
    .unwrap();
    assert_eq!(
        g.stages[0].base,
        Base::Image("r.example/library/alpine:3.20".into())
    );
    assert_eq!(
        g.arg_value("TAG", Some("inner".into())).as_deref(),
        Some("3.20")
    );
    assert_eq!(g.unused_build_args, ["UNUSED"]);
    // A build arg not declared globally is not in FROM's scope.
    let g = graph_args("FROM alpine:${V:-none}\n", &[("V", "1")]).unwrap();
    assert_eq!(g.stages[0].base, Base::Image("alpine:none".into()));
}

#[test]
fn platform_args_in_from() {
    let g = graph("FROM --platform=$BUILDPLATFORM img-$TARGETARCH$TARGETVARIANT AS b\n");
    assert_eq!(g.stages[0].platform.as_deref(), Some("linux/amd64"));
    assert_eq!(g.stages[0].base, Base::Image("img-amd64".into()));
    let arm = Platform {
        os: "linux".into(),
        arch: "arm".into(),
        variant: "v7".into(),
    };
    assert_eq!(arm.to_string(), "linux/arm/v7");
    let names: Vec<_> = platform_args(&arm).into_iter().map(|(k, _)| k).collect();
    assert_eq!(
        names,
        [
            "TARGETPLATFORM",
            "TARGETOS",
            "TARGETARCH",
            "TARGETVARIANT",
            "BUILDPLATFORM",
            "BUILDOS",
            "BUILDARCH",
            "BUILDVARIANT"
        ]
    );
    let n = Platform::native();
    assert_eq!(n.os, "linux");
    assert!(!n.arch.is_empty());
}

#[test]
fn stage_names() {
    // Case-insensitive, expanded, unique, valid.
    let g = graph("FROM a AS Base\nFROM BASE\nCOPY --from=bAsE /x /x\n");
    assert_eq!(g.stages[1].base, Base::Stage(StageId(0)));
    let g = graph("ARG N=builder\nFROM a AS $N\nFROM builder\n");
    assert_eq!(g.stages[0].name.as_deref(), Some("builder"));
    assert_eq!(g.stages[1].base, Base::Stage(StageId(0)));
    assert_eq!(
        gerr("FROM a AS x\nFROM b AS X\n"),
        "Dockerfile:2:1: FROM: duplicate stage name \"x\""
    );
    assert!(gerr("ARG N=9x\nFROM a AS $N\n").contains("invalid name for build stage: \"9x\""));
}

#[test]
fn references_that_are_refused() {
    assert_eq!(
        gerr("FROM a AS one\nCOPY --from=one /x /x\n"),
        "Dockerfile:2:1: COPY: circular dependency detected on stage: one"
    );
    assert_eq!(
        gerr("FROM a AS one\nCOPY --from=two /x /x\nFROM b AS two\n"),
        "Dockerfile:2:1: COPY: stage \"two\" is defined later in the file; only earlier stages can be used"
    );
    assert!(gerr("FROM a\nCOPY --from=1 /x /x\nFROM b\n")
        .contains("stage index 1 is not defined before this stage"));
    assert!(
        gerr("FROM a\nCOPY --from=0 /x /x\n").contains("circular dependency detected on stage: 0")
    );
    assert!(gerr("FROM later AS first\nFROM b AS later\n").contains("defined later in the file"));
    assert!(gerr("FROM x AS x\n").contains("circular dependency detected on stage: x"));
    assert!(
        gerr("FROM a\nRUN --mount=from=two,target=/t true\nFROM b AS two\n")
            .contains("RUN: stage \"two\" is defined later")
    );
    assert!(
        gerr("FROM a\nCOPY --from=99999999999999999999999 /x /x\n").contains("invalid stage index")
    );
    assert_eq!(
        gerr("ARG A\nENV X=1\nFROM a\n"),
        "Dockerfile:2:1: ENV: no build stage in current context (only ARG may come before the first FROM)"
    );
    assert_eq!(
        gerr("ARG A\n"),
        "Dockerfile:1:1: the Dockerfile has no FROM (no build stage)"
    );
}

#[test]
fn copy_from_expands_with_the_global_args() {
    let g = graph("ARG SRC=build\nFROM a AS build\nFROM b\nCOPY --from=${SRC} /x /x\nCOPY --from=${OTHER:-img:1} /y /y\n");
    assert_eq!(g.stages[1].deps, ids(&[0]));
    assert_eq!(g.stages[1].image_refs, ["img:1"]);
}

#[test]
fn sources_resolve_as_the_graph_did() {
    let g = graph("ARG SRC=build\nFROM a AS build\nFROM b AS two\nCOPY --from=${SRC} /x /x\nFROM c AS three\n");
    assert_eq!(
        g.source(StageId(1), "${SRC}", true),
        Ok(Source::Stage(StageId(0)))
    );
    assert_eq!(
        g.source(StageId(1), "0", true),
        Ok(Source::Stage(StageId(0)))
    );
    assert_eq!(
        g.source(StageId(1), "alpine:3", true),
        Ok(Source::Image("alpine:3".into()))
    );
    // A mount's from= is not expanded.
    assert_eq!(
        g.source(StageId(1), "${SRC}", false),
        Ok(Source::Image("${SRC}".into()))
    );
    assert!(g
        .source(StageId(1), "three", true)
        .unwrap_err()
        .contains("defined later"));
    assert!(g
        .source(StageId(1), "two", true)
        .unwrap_err()
        .contains("circular"));
    assert!(g
        .source(StageId(0), "build", true)
        .unwrap_err()
        .contains("circular"));
    assert!(g.source(StageId(9), "x", true).is_err());
}

#[test]
fn a_stage_scope_follows_arg_and_env() {
    use crate::expand::expand_instruction;
    let src = "ARG V=global\nFROM a\nARG V\nARG W=${V}-w\nENV V=env E=$W\nARG V\nRUN true\n";
    let df = parse("Dockerfile", src.as_bytes()).unwrap();
    let args: BTreeMap<String, String> = [
        ("HTTP_PROXY".to_string(), "http://p".to_string()),
        ("W".to_string(), "given".to_string()),
    ]
    .into();
    let g = Graph::new("Dockerfile", &df, &args, &amd64()).unwrap();
    let mut scope = StageScope::new(vec![
        ("PATH".into(), "/bin".into()),
        ("V".into(), "base".into()),
    ]);
    // Before ARG V, $V is the base image's ENV.
    assert_eq!(scope.lookup("V").as_deref(), Some("base"));
    let mut used_last = BTreeSet::new();
    for ins in &g.stages[0].instructions {
        let x = expand_instruction(ins, df.escape, &|k: &str| scope.lookup(k)).unwrap();
        used_last = x.used.clone();
        scope.apply(&g, &x.instruction);
    }
    // ENV wins over ARG; W came from --build-arg.
    assert_eq!(scope.lookup("V").as_deref(), Some("env"));
    assert_eq!(scope.lookup("E").as_deref(), Some("given"));
    assert_eq!(scope.args.get("V"), Some(&Some("global".to_string())));
    assert_eq!(
        scope.run_env(&g),
        [
            ("PATH".to_string(), "/bin".to_string()),
            ("V".into(), "env".into()),
            ("E".into(), "given".into()),
            ("W".into(), "given".into()),
            ("HTTP_PROXY".into(), "http://p".into()),
        ]
    );
    assert!(used_last.is_empty());
    assert_eq!(
        scope.args_for_key(None),
        [("W".to_string(), Some("given".to_string()))]
    );
    let only_v: BTreeSet<String> = ["V".to_string()].into();
    assert!(scope.args_for_key(Some(&only_v)).is_empty());
}

#[test]
fn many_stages_and_references() {
    // The most stages there may be, each copying from its predecessor.
    let mut src = String::from("FROM a AS s0\n");
    for i in 1..crate::limits::MAX_STAGES {
        src.push_str(&format!(
            "FROM s{} AS s{i}\nCOPY --from=s{} /x /x\nCOPY --from=img{i} /y /y\n",
            i - 1,
            i - 1
        ));
    }
    let t = std::time::Instant::now();
    let g = graph(&src);
    assert!(
        t.elapsed() < std::time::Duration::from_secs(5),
        "{:?}",
        t.elapsed()
    );
    let plan = g.plan(None).unwrap();
    assert_eq!(plan.stages.len(), crate::limits::MAX_STAGES);
    assert_eq!(g.stages[999].deps, ids(&[998]));
    src.push_str("FROM one-too-many\n");
    assert!(gerr(&src).contains("more than 1000 stages"));
}

#[test]
fn platforms_parse_in_containerd_spellings() {
    let amd = |v: &str| Platform {
        os: "linux".into(),
        arch: "amd64".into(),
        variant: v.into(),
    };
    for s in [
        "linux/amd64",
        "linux/x86_64",
        "Linux/AMD64",
        "linux/x86-64",
        "linux/amd64/v1",
        "x86_64",
    ] {
        assert_eq!(Platform::parse(s).unwrap(), amd(""), "{s}");
    }
    assert_eq!(Platform::parse("linux/amd64/v3").unwrap(), amd("v3"));
    let arm = Platform::parse("linux/aarch64/v8").unwrap();
    assert_eq!(arm.to_string(), "linux/arm64");
    assert_eq!(
        Platform::parse("linux/armhf").unwrap().to_string(),
        "linux/arm/v7"
    );
    assert!(Platform::parse("linux//amd64").is_err());
    assert!(Platform::parse("a/b/c/d").is_err());
    let native = amd("");
    assert!(Platform::require("linux/x86_64", &native).is_ok());
    let e = Platform::require("linux/arm64", &native).unwrap_err();
    assert!(
        e.contains("only for the platform it runs on, linux/amd64"),
        "{e}"
    );
    assert!(!e.contains('\n'));
}

#[test]
fn from_platform_other_than_the_target_is_refused() {
    let e = graph_args(
        "FROM alpine\nFROM --platform=linux/arm64 alpine AS b\n",
        &[],
    )
    .unwrap_err();
    assert_eq!((e.line, e.col), (2, 1), "{e}");
    assert!(
        e.message.contains("FROM --platform: platform linux/arm64"),
        "{e}"
    );
    let g = graph("FROM --platform=linux/x86_64 img\n");
    assert_eq!(g.stages[0].platform.as_deref(), Some("linux/x86_64"));
}
