//! Progress bars on stderr, hidden when stderr is not a terminal (scripts, CI, tests).

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::io::IsTerminal;

/// A byte-counting bar for `total` bytes (a spinner with a byte count when unknown).
pub fn bytes_bar(total: Option<u64>, label: &str) -> ProgressBar {
    if !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = match total {
        Some(n) => ProgressBar::with_draw_target(Some(n), ProgressDrawTarget::stderr()).with_style(
            ProgressStyle::with_template("{msg:20!} [{bar:30.cyan/blue}] {bytes}/{total_bytes} {bytes_per_sec} ETA {eta}")
                .expect("a valid template")
                .progress_chars("=> "),
        ),
        None => ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr())
            .with_style(ProgressStyle::with_template("{spinner} {msg:20!} {bytes} {bytes_per_sec}").expect("a valid template")),
    };
    bar.set_message(label.to_string());
    bar
}

/// A message on stderr, through the bar when one is drawn (so it does not tear it).
pub fn note(bar: &ProgressBar, msg: &str) {
    if bar.is_hidden() {
        eprintln!("{msg}");
    } else {
        bar.println(msg);
    }
}
