//! `--format` of the list and inspect commands: the command's own table,
//! `json`, or a Go template (`berth_engine::template`) run on each row,
//! with `table ` in front for a header row and aligned columns.

use anyhow::Result;
pub use berth_engine::template::Format;
use berth_engine::template::{render, Template};
use serde_json::Value;
use std::io::Write;

/// clap's parser of a `--format` value.
pub fn parse(s: &str) -> std::result::Result<Format, String> {
    Format::parse(s).map_err(|e| e.to_string())
}

/// Prints `rows` through `template`, one line each (`table`: after a
/// header made from `headers`, Docker's column names of the view).
pub fn rows<T: serde::Serialize>(
    template: &Template,
    table: bool,
    rows: &[T],
    headers: &[(&str, &str)],
) -> Result<()> {
    let rows = rows
        .iter()
        .map(serde_json::to_value)
        .collect::<std::result::Result<Vec<Value>, _>>()?;
    let s = render(template, table, &rows, headers)?;
    let mut out = std::io::stdout().lock();
    out.write_all(s.as_bytes())?;
    out.flush()?;
    Ok(())
}

/// `inspect -f`: each document through `template`, one line each.
pub fn each(template: &Template, docs: &[Value]) -> Result<()> {
    let mut out = String::new();
    for d in docs {
        out.push_str(&template.execute(d)?);
        out.push('\n');
        if out.len() > berth_engine::template::MAX_OUTPUT {
            anyhow::bail!(
                "inspect --format: the output passes {} MiB; print fewer objects at a time",
                berth_engine::template::MAX_OUTPUT >> 20
            );
        }
    }
    let mut o = std::io::stdout().lock();
    o.write_all(out.as_bytes())?;
    o.flush()?;
    Ok(())
}

/// A time in nanoseconds since the epoch as Go prints a `time.Time`
/// (Docker's `.CreatedAt`): `2024-01-02 15:04:05 +0000 UTC`.
pub fn go_time(nanos: i64) -> String {
    berth_engine::query::go_time(nanos)
}

#[cfg(test)]
mod tests {
    #[test]
    fn times_as_go_prints_them() {
        assert_eq!(
            super::go_time(1_700_000_000_123_456_789),
            "2023-11-14 22:13:20 +0000 UTC"
        );
    }
}
