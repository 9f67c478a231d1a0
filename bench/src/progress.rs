//! Progress display: an indicatif bar per phase on a terminal, one plain line per phase
//! otherwise (so a log of a scripted run still shows where it was).

use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

#[derive(Clone)]
pub struct Progress {
    on_terminal: bool,
}

impl Default for Progress {
    fn default() -> Self {
        Self {
            on_terminal: !ProgressDrawTarget::stderr().is_hidden(),
        }
    }
}

impl Progress {
    /// A bar of `len` steps.
    pub fn bar(&self, label: &str, len: u64) -> ProgressBar {
        if !self.on_terminal {
            eprintln!("… {label} ({len})");
            return ProgressBar::hidden();
        }
        let bar = ProgressBar::new(len);
        bar.set_style(
            ProgressStyle::with_template("{msg:48} [{bar:30}] {pos}/{len} {elapsed}")
                .expect("static template")
                .progress_chars("=> "),
        );
        bar.set_message(label.to_owned());
        bar
    }

    /// Waits `duration`, showing it pass.
    pub async fn wait(&self, label: &str, duration: Duration) {
        let millis = duration.as_millis() as u64;
        let bar = self.bar(label, millis.div_ceil(1_000).max(1));
        let deadline = tokio::time::Instant::now() + duration;
        while tokio::time::Instant::now() < deadline {
            let step = deadline
                .saturating_duration_since(tokio::time::Instant::now())
                .min(Duration::from_millis(250));
            tokio::time::sleep(step).await;
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            bar.set_position((millis - left.as_millis() as u64) / 1_000);
        }
        bar.finish_and_clear();
    }

    /// A line printed above any bar.
    pub fn note(&self, line: &str) {
        eprintln!("{line}");
    }
}
