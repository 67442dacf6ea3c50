//! How connapp's own output looks on a terminal: colour (only where the
//! stream is a terminal, never with `NO_COLOR` or `--color never`; plain,
//! stable text when piped) and lines that fit [`WIDTH`] columns.

use anstyle::{AnsiColor, Style};

/// The widest line connapp's tables print.
pub const WIDTH: usize = 100;

/// Standard output that drops the colour codes when colour is off (a pipe,
/// `NO_COLOR`, `--color never`) and keeps them when it is on.
pub fn stdout() -> anstream::AutoStream<std::io::Stdout> {
    anstream::AutoStream::new(std::io::stdout(), anstream::ColorChoice::global())
}

/// Prints `line` on [`stdout`], so its colour codes go only where colour is on.
pub fn out(line: &str) {
    use std::io::Write;
    let _ = writeln!(stdout(), "{line}");
}

/// `text` in `style`; the codes vanish where colour is off.
pub fn paint(style: Style, text: &str) -> String {
    format!("{}{text}{}", style.render(), style.render_reset())
}

pub const GOOD: Style = AnsiColor::Green.on_default();
pub const BAD: Style = AnsiColor::Red.on_default().bold();
pub const WARN: Style = AnsiColor::Yellow.on_default();
pub const DIM: Style = Style::new().dimmed();
pub const HEAD: Style = Style::new().bold();

/// A diff line (`+ …`, `- …`, `~ …`) cut to `width`, coloured by its sign.
pub fn diff_line(line: &str, width: usize) -> String {
    let style = match line.chars().next() {
        Some('+') => GOOD,
        Some('-') => BAD,
        Some('~') => WARN,
        _ => Style::new(),
    };
    paint(style, &fit(line, width))
}

/// `line` cut to `width` characters, ending in `…` when cut.
pub fn fit(line: &str, width: usize) -> String {
    if line.chars().count() <= width {
        return line.to_string();
    }
    let mut cut: String = line.chars().take(width.saturating_sub(1)).collect();
    cut.push('…');
    cut
}

/// `text` wrapped at word boundaries into lines of at most `width`
/// characters, each starting with `indent` spaces. A word longer than a
/// line (a URL) stands alone on its line, whole, so it can be copied.
pub fn wrap(text: &str, indent: usize, width: usize) -> Vec<String> {
    let pad = " ".repeat(indent);
    let room = width.saturating_sub(indent).max(20);
    let mut lines = Vec::new();
    for para in text.split('\n') {
        let mut line = String::new();
        for word in para.split_whitespace() {
            let len = line.chars().count();
            if len > 0 && len + 1 + word.chars().count() > room {
                lines.push(format!("{pad}{line}"));
                line.clear();
            }
            if !line.is_empty() {
                line.push(' ');
            }
            line.push_str(word);
        }
        if !line.is_empty() {
            lines.push(format!("{pad}{line}"));
        }
    }
    lines
}

/// `text` wrapped at `width`, the lines after the first indented by two
/// (a paragraph that reads as one item); line breaks in `text` are kept.
pub fn wrap_hanging(text: &str, width: usize) -> Vec<String> {
    let mut out = Vec::new();
    for para in text.split('\n') {
        let lines = wrap(para, 0, width);
        let Some((first, rest)) = lines.split_first() else {
            out.push(String::new());
            continue;
        };
        out.push(first.clone());
        let rest = rest.join(" ");
        out.extend(wrap(&rest, 2, width));
    }
    out
}

/// `text` wrapped at `width` line by line, each line keeping its own
/// leading indentation (for notes laid out by hand).
pub fn wrap_lines(text: &str, width: usize) -> Vec<String> {
    text.split('\n')
        .flat_map(|line| {
            let indent = line.len() - line.trim_start().len();
            let wrapped = wrap(line.trim_start(), indent, width);
            if wrapped.is_empty() {
                vec![String::new()]
            } else {
                wrapped
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_fit_and_words_stay_whole() {
        assert_eq!(fit("abcdef", 4), "abc…");
        assert_eq!(fit("abc", 4), "abc");
        let url = format!("https://acme.service-now.com/{}", "x".repeat(120));
        let text =
            format!("an admin opens {url} and allows access in Zoom again, as a Zoom user other than connapp's own");
        let lines = wrap(&text, 7, WIDTH);
        assert!(lines.iter().all(|l| l.starts_with("       ")));
        for l in &lines {
            assert!(l.chars().count() <= WIDTH || l.trim() == url, "{l}");
        }
        assert!(lines.iter().any(|l| l.trim() == url), "{lines:?}");
        assert_eq!(
            lines.join(" ").split_whitespace().collect::<Vec<_>>(),
            text.split_whitespace().collect::<Vec<_>>()
        );
    }
}
