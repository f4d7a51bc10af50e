//! Text from images and containers (names, commands, labels, history) is
//! hostile: printed raw in a table, an escape sequence in it could move
//! the cursor, rewrite earlier lines or set the terminal's title.

use std::borrow::Cow;

/// `s` with every control character (C0, DEL, C1) written as an escape
/// (`\n`, `\t`, `\r`, `\x1b`, `\u{85}`), so a table cell is one line of
/// plain text. A backslash is left as it is, as Docker leaves it.
pub fn cell(s: &str) -> Cow<'_, str> {
    if !s.chars().any(char::is_control) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x80 && c.is_control() => {
                out.push_str(&format!("\\x{:02x}", c as u32))
            }
            c if c.is_control() => out.push_str(&format!("\\u{{{:x}}}", c as u32)),
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

/// [`cell`] for an owned string.
pub fn owned(s: String) -> String {
    match cell(&s) {
        Cow::Borrowed(_) => s,
        Cow::Owned(o) => o,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn controls_are_escaped() {
        assert_eq!(cell("plain name_1 é"), "plain name_1 é");
        assert_eq!(cell("a\nb\tc\rd"), "a\\nb\\tc\\rd");
        assert_eq!(cell("\x1b]0;pwned\x07x"), "\\x1b]0;pwned\\x07x");
        assert_eq!(cell("del\x7f c1\u{9b}2J"), "del\\x7f c1\\u{9b}2J");
        assert!(!cell("\u{85}\0").chars().any(char::is_control));
    }
}
