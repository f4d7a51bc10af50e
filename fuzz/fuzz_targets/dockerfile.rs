//! The Dockerfile language on hostile input: any bytes parse to a
//! Dockerfile or to a one-line error naming the file, line and column;
//! every instruction expands (or fails with a message) within the bounds;
//! the stage graph and its plans hold together; the same bytes as a
//! .dockerignore parse or fail, and matching any path never panics.
#![no_main]

use berth_build::expand::{expand_instruction, Lexer};
use berth_build::graph::{Graph, Platform};
use berth_build::ignore::Ignore;
use berth_build::limits::MAX_EXPANSION;
use berth_build::parse::parse;
use libfuzzer_sys::fuzz_target;
use std::collections::{BTreeMap, HashSet};

fn env(k: &str) -> Option<String> {
    match k {
        "A" => Some("a b".into()),
        "E" => Some(String::new()),
        "P" => Some("/usr/local/bin".into()),
        "L" => Some("x".repeat(4096)),
        _ => None,
    }
}

fuzz_target!(|data: &[u8]| {
    match parse("Dockerfile", data) {
        Ok(df) => {
            assert!(!df.instructions.is_empty());
            for ins in &df.instructions {
                assert!(ins.pos.line >= 1 && ins.pos.col >= 1);
                assert!(ins.end_line >= ins.pos.line);
                if let Ok(x) = expand_instruction(ins, df.escape, &env) {
                    assert_eq!(x.instruction.kind.name(), ins.kind.name());
                }
            }
            let args: BTreeMap<String, String> = [("A".to_string(), "1".to_string())].into();
            if let Ok(g) = Graph::new("Dockerfile", &df, &args, &Platform::native()) {
                let names: Vec<&str> = g.stages.iter().filter_map(|s| s.name.as_deref()).collect();
                for n in names {
                    let plan = g.plan(Some(n)).expect("a named stage is a target");
                    // Running the plan's ready sets finishes it.
                    let mut done = HashSet::new();
                    while !plan.finished(&done) {
                        let r = plan.ready(&done);
                        assert!(!r.is_empty(), "a plan never stalls");
                        done.extend(r);
                    }
                }
                assert!(g.plan(None).is_ok());
            }
        }
        Err(e) => {
            let s = e.to_string();
            assert!(s.starts_with("Dockerfile:"), "{s}");
            assert!(!s.contains('\n'), "errors are one line: {s:?}");
            assert!(e.line >= 1);
        }
    }
    if let Ok(text) = std::str::from_utf8(data) {
        // Each line as a word to expand.
        for line in text.lines().take(64) {
            for esc in ['\\', '`'] {
                if let Ok(x) = Lexer::new(esc).process(line, &env) {
                    assert!(x.word.len() <= MAX_EXPANSION);
                }
            }
            let _ = Lexer::heredoc().process(line, &env);
        }
        if let Ok(ig) = Ignore::parse(text) {
            for p in text
                .lines()
                .take(32)
                .chain(["a", "a/b/c", ".git/x", "src/main.rs"])
            {
                let _ = ig.excluded(p, false);
                let _ = ig.may_include_below(p);
            }
        }
    }
});
