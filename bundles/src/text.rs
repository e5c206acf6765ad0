//! Text made for a terminal out of what a bundle or an upstream says: names, references and
//! error messages can carry escape codes that would repaint, hide or forge lines on screen.

use std::borrow::Cow;

/// `text` with every control character (C0 but newline and tab, DEL, C1) and every Unicode
/// direction override written as a `\u{…}` escape, so what is printed is what is there.
pub fn printable(text: &str) -> Cow<'_, str> {
    if !text.chars().any(needs_escape) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if needs_escape(c) {
            out.extend(c.escape_unicode());
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

fn needs_escape(c: char) -> bool {
    (c.is_control() && c != '\n' && c != '\t') || matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

/// An error and its causes on one line, each cause left out when the message before it already
/// says it (an I/O error wrapped with its path, a client error that repeats its cause).
pub fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut text = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        let m = c.to_string();
        if !text.contains(&m) {
            text.push_str(": ");
            text.push_str(&m);
        }
        cause = c.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_what_a_terminal_would_act_on() {
        assert!(matches!(printable("docker.io/library/nginx:1.25"), Cow::Borrowed(_)));
        assert_eq!(printable("a\u{1b}[2Jb"), "a\\u{1b}[2Jb");
        assert_eq!(printable("x\r\u{9b}y\u{202e}z"), "x\\u{d}\\u{9b}y\\u{202e}z");
        assert_eq!(printable("two\nlines\tkept"), "two\nlines\tkept");
    }

    #[test]
    fn a_cause_already_quoted_is_said_once() {
        let io = std::io::Error::new(std::io::ErrorKind::NotFound, "No such file or directory");
        let wrapped = crate::Error::io("/media/usb/bundle.json", io);
        assert_eq!(error_chain(&wrapped), "/media/usb/bundle.json: No such file or directory");
        let outer = anyhow::Error::new(wrapped).context("cannot open bundle /media/usb");
        assert_eq!(
            error_chain(outer.as_ref()),
            "cannot open bundle /media/usb: /media/usb/bundle.json: No such file or directory"
        );
    }
}
