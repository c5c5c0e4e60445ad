//! Progress on stderr. On a terminal, a bar that redraws in place. Anywhere else (CI, systemd,
//! `| tee`, a file) indicatif would draw nothing at all, so a long import or training looks
//! hung: there we print one plain line every [`LINE_EVERY`] and a last line when the work is
//! done. Rates are whole numbers with their unit ("44 photos/s"), not "43.7319/s".

use std::io::{IsTerminal, Write};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressState, ProgressStyle, TermLike};

/// How often a progress line is printed when stderr is not a terminal.
pub const LINE_EVERY: Duration = Duration::from_secs(10);

/// A bar of `len` steps labelled `what`, counting `unit`s ("photos", "epochs").
pub fn bar(len: u64, what: &str, unit: &'static str) -> ProgressBar {
    let pb = ProgressBar::with_draw_target(Some(len), target());
    let template = if std::io::stderr().is_terminal() {
        "{msg:>12} [{bar:30}] {pos}/{len} ({rate}, eta {eta})"
    } else {
        "{msg} {pos}/{len} ({rate}, eta {eta})"
    };
    pb.set_style(
        ProgressStyle::with_template(template)
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .with_key(
                "rate",
                move |s: &ProgressState, w: &mut dyn std::fmt::Write| {
                    let _ = write!(w, "{}", rate(s.per_sec(), unit));
                },
            )
            .progress_chars("=> "),
    );
    pb.set_message(what.to_owned());
    pb
}

/// A spinner for steps of unknown length.
pub fn spinner(what: &str) -> ProgressBar {
    let pb = ProgressBar::with_draw_target(None, target());
    pb.set_message(what.to_owned());
    pb.enable_steady_tick(Duration::from_millis(200));
    pb
}

/// "44 photos/s", "0.5 epochs/s": whole numbers when they are large enough to read.
pub fn rate(per_sec: f64, unit: &str) -> String {
    if !per_sec.is_finite() {
        format!("- {unit}/s")
    } else if per_sec >= 10.0 {
        format!("{per_sec:.0} {unit}/s")
    } else {
        format!("{per_sec:.1} {unit}/s")
    }
}

/// Losses of successive epochs, as `0.1600 -> 0.1370 -> ...`.
pub fn per_epoch(loss: &[f32]) -> String {
    loss.iter()
        .map(|l| format!("{l:.4}"))
        .collect::<Vec<_>>()
        .join(" -> ")
}

fn target() -> ProgressDrawTarget {
    if std::io::stderr().is_terminal() {
        ProgressDrawTarget::stderr()
    } else {
        ProgressDrawTarget::term_like_with_hz(Box::new(Lines::default()), 1)
    }
}

/// A draw target for logs: passes on at most one line per [`LINE_EVERY`], plus the line that
/// shows the work complete ("N/N").
#[derive(Debug, Default)]
struct Lines {
    last: Mutex<Option<(Instant, String)>>,
}

impl Lines {
    fn complete(line: &str) -> bool {
        line.split_whitespace().any(|t| {
            t.split_once('/')
                .is_some_and(|(a, b)| !a.is_empty() && a == b && a.parse::<u64>().is_ok())
        })
    }
}

impl TermLike for Lines {
    fn width(&self) -> u16 {
        200
    }
    fn move_cursor_up(&self, _: usize) -> std::io::Result<()> {
        Ok(())
    }
    fn move_cursor_down(&self, _: usize) -> std::io::Result<()> {
        Ok(())
    }
    fn move_cursor_right(&self, _: usize) -> std::io::Result<()> {
        Ok(())
    }
    fn move_cursor_left(&self, _: usize) -> std::io::Result<()> {
        Ok(())
    }
    fn write_line(&self, line: &str) -> std::io::Result<()> {
        let line = line.trim();
        // Nothing done yet says nothing (its rate and eta are meaningless): the first line
        // comes with the first step.
        if line.is_empty() || line.split_whitespace().any(|t| t.starts_with("0/")) {
            return Ok(());
        }
        let mut last = self.last.lock().unwrap_or_else(|p| p.into_inner());
        let (due, repeat) = match &*last {
            None => (true, false),
            Some((t, text)) => (t.elapsed() >= LINE_EVERY, text == line),
        };
        if !repeat && (due || Self::complete(line)) {
            *last = Some((Instant::now(), line.to_owned()));
            let _ = writeln!(std::io::stderr().lock(), "{line}");
        }
        Ok(())
    }
    fn write_str(&self, s: &str) -> std::io::Result<()> {
        self.write_line(s)
    }
    fn clear_line(&self) -> std::io::Result<()> {
        Ok(())
    }
    fn flush(&self) -> std::io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_are_read_as_numbers_with_units() {
        assert_eq!(rate(43.7319, "photos"), "44 photos/s");
        assert_eq!(rate(0.46, "epochs"), "0.5 epochs/s");
        assert_eq!(rate(f64::INFINITY, "photos"), "- photos/s");
    }

    #[test]
    fn the_complete_line_is_recognised() {
        assert!(Lines::complete("importing 12/12 (44 photos/s, eta 0s)"));
        assert!(!Lines::complete("importing 11/12 (44 photos/s, eta 0s)"));
        assert!(!Lines::complete("a / b"));
    }
}
