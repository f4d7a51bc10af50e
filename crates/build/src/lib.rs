//! The Dockerfile language for `berth build`, pure and bounded: nothing here
//! reads a file (callers hand in text), starts a process or needs root.
//!
//! - [`parse`]: a Dockerfile or Containerfile to a typed AST with source
//!   positions, with BuildKit's syntax (parser directives, continuations,
//!   heredocs, exec and shell forms, flags) and errors of the form
//!   `Dockerfile:LINE:COL: INSTRUCTION: what is wrong`.
//! - [`expand`]: BuildKit's shell-word expansion, applied to exactly the
//!   instructions Docker expands, reporting the variables each one used.
//! - [`ignore`]: `.dockerignore` / `.containerignore` patterns with moby's
//!   patternmatcher semantics.
//! - [`graph`]: the stages of a build, their dependencies, the stages a
//!   `--target` needs and the order a parallel executor may run them in.
//!
//! Every input is hostile: sizes, counts, expansion output and nesting are
//! bounded ([`limits`]) and no input panics (fuzzed by
//! `fuzz/fuzz_targets/dockerfile.rs`).

pub mod expand;
pub mod graph;
pub mod ignore;
pub mod parse;

/// The bounds every input is held to.
pub mod limits {
    /// A Dockerfile's size in bytes.
    pub const MAX_DOCKERFILE: usize = 8 << 20;
    /// One physical line (BuildKit's scanner stops at 64 KiB too).
    pub const MAX_LINE: usize = 65535;
    /// One logical line after joining continuations.
    pub const MAX_LOGICAL_LINE: usize = 1 << 20;
    /// Instructions in one Dockerfile.
    pub const MAX_INSTRUCTIONS: usize = 10_000;
    /// One heredoc's body.
    pub const MAX_HEREDOC: usize = 4 << 20;
    /// The text one expansion may produce.
    pub const MAX_EXPANSION: usize = 1 << 20;
    /// Nested `${...}` substitutions.
    pub const MAX_NESTING: usize = 64;
    /// Work (characters times pattern states) one `${V#pat}`-style match may do.
    pub const MAX_MATCH_WORK: usize = 50_000_000;
    /// A `.dockerignore` file's size in bytes.
    pub const MAX_IGNORE_FILE: usize = 1 << 20;
    /// Patterns in one `.dockerignore`.
    pub const MAX_IGNORE_PATTERNS: usize = 10_000;
    /// Stages in one Dockerfile.
    pub const MAX_STAGES: usize = 1_000;
}

pub use expand::{ExpandError, Expanded, Lexer};
pub use graph::{Base, Graph, GraphError, Plan, Platform, Source, Stage, StageId, StageScope};
pub use ignore::{Ignore, IgnoreError};
pub use parse::{parse, Dockerfile, Instruction, Kind, ParseError, Pos};
