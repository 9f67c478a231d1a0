//! CPU time and resident memory of a process, read from `/proc` (Linux).
//!
//! The servers run as separate processes whose PIDs the bench is given; the bench reads its own
//! figures from `/proc/self` the same way, so the two are comparable tick for tick.

use std::time::Instant;

use serde::Serialize;

#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    #[error("cannot read {path}: {source} (is the PID right and the process still running?)")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("{path} has an unexpected format")]
    Format { path: String },
}

/// A process to sample.
#[derive(Debug, Clone)]
pub struct ProcessProbe {
    dir: String,
}

/// One reading.
#[derive(Debug, Clone, Copy)]
pub struct ProcSample {
    /// User + system CPU time, in seconds.
    pub cpu_seconds: f64,
    pub rss_kib: u64,
}

impl ProcessProbe {
    pub fn of_pid(pid: u32) -> Self {
        Self {
            dir: format!("/proc/{pid}"),
        }
    }

    /// The bench itself.
    pub fn generator() -> Self {
        Self {
            dir: "/proc/self".to_owned(),
        }
    }

    pub fn sample(&self) -> Result<ProcSample, ProbeError> {
        Ok(ProcSample {
            cpu_seconds: self.cpu_seconds()?,
            rss_kib: self.rss_kib()?,
        })
    }

    /// The soft "Max open files" limit of the process, if readable.
    pub fn open_files_limit(&self) -> Option<u64> {
        let limits = self.read("limits").ok()?;
        let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
        line.split_whitespace().nth(3)?.parse().ok()
    }

    fn read(&self, file: &str) -> Result<String, ProbeError> {
        let path = format!("{}/{file}", self.dir);
        std::fs::read_to_string(&path).map_err(|source| ProbeError::Read { path, source })
    }

    fn cpu_seconds(&self) -> Result<f64, ProbeError> {
        let stat = self.read("stat")?;
        let format_error = || ProbeError::Format {
            path: format!("{}/stat", self.dir),
        };
        // The command name (field 2) may hold spaces and parentheses: count from the last ')'.
        let after_name = stat.rsplit_once(')').ok_or_else(format_error)?.1;
        let fields: Vec<&str> = after_name.split_whitespace().collect();
        // After the name come state (field 3) … utime (14) and stime (15).
        let ticks = |index: usize| -> Result<u64, ProbeError> {
            fields
                .get(index)
                .and_then(|v| v.parse().ok())
                .ok_or_else(format_error)
        };
        let total = ticks(11)? + ticks(12)?;
        Ok(total as f64 / clock_ticks_per_second())
    }

    fn rss_kib(&self) -> Result<u64, ProbeError> {
        let status = self.read("status")?;
        status
            .lines()
            .find_map(|line| line.strip_prefix("VmRSS:"))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|kib| kib.parse().ok())
            .ok_or_else(|| ProbeError::Format {
                path: format!("{}/status", self.dir),
            })
    }
}

fn clock_ticks_per_second() -> f64 {
    // SAFETY: sysconf has no preconditions; it only reads a constant of the running system.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if ticks > 0 {
        ticks as f64
    } else {
        100.0
    }
}

/// CPU used by the server and by the bench over a window of wall time.
pub struct CpuMeter {
    server: Option<(ProcessProbe, ProcSample)>,
    generator: (ProcessProbe, ProcSample),
    started: Instant,
}

impl CpuMeter {
    /// Starts a window. Without a server probe only the bench's own CPU is measured.
    pub fn start(server: Option<&ProcessProbe>) -> Result<Self, ProbeError> {
        let generator = ProcessProbe::generator();
        let server = match server {
            Some(probe) => Some((probe.clone(), probe.sample()?)),
            None => None,
        };
        Ok(Self {
            generator: (generator.clone(), generator.sample()?),
            server,
            started: Instant::now(),
        })
    }

    pub fn stop(&self) -> Result<CpuUsage, ProbeError> {
        let wall_seconds = self.started.elapsed().as_secs_f64();
        let server_seconds = match &self.server {
            Some((probe, start)) => Some(probe.sample()?.cpu_seconds - start.cpu_seconds),
            None => None,
        };
        let (probe, start) = &self.generator;
        Ok(CpuUsage {
            wall_seconds,
            server_seconds,
            generator_seconds: probe.sample()?.cpu_seconds - start.cpu_seconds,
        })
    }
}

/// The result of a [`CpuMeter`] window.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct CpuUsage {
    pub wall_seconds: f64,
    /// `None` when the server's PID was not given.
    pub server_seconds: Option<f64>,
    pub generator_seconds: f64,
}

impl CpuUsage {
    /// The server's CPU use in % of one core.
    pub fn server_percent(&self) -> Option<f64> {
        self.server_seconds
            .map(|s| 100.0 * s / self.wall_seconds.max(1e-9))
    }

    /// Server CPU per signal, in µs.
    pub fn server_micros_per(&self, signals: u64) -> Option<f64> {
        self.server_seconds
            .filter(|_| signals > 0)
            .map(|s| s * 1e6 / signals as f64)
    }

    /// The bench's own CPU per signal, in µs.
    pub fn generator_micros_per(&self, signals: u64) -> Option<f64> {
        (signals > 0).then(|| self.generator_seconds * 1e6 / signals as f64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_its_own_cpu_and_memory() {
        let sample = ProcessProbe::generator().sample().unwrap();
        assert!(sample.rss_kib > 0);
        assert!(sample.cpu_seconds >= 0.0);
    }

    #[test]
    fn reads_its_own_open_file_limit() {
        assert!(ProcessProbe::generator().open_files_limit().unwrap() > 0);
    }

    #[test]
    fn a_missing_process_is_a_clear_error() {
        let error = ProcessProbe::of_pid(u32::MAX).sample().unwrap_err();
        assert!(error.to_string().contains("is the PID right"), "{error}");
    }
}
