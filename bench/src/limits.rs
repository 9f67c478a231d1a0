//! Open-file limits: the idle scenario holds tens of thousands of sockets, in this process and
//! in the server.

use crate::measure::process::ProcessProbe;

/// File descriptors a process needs besides its sockets (logs, database, listeners, runtime).
pub const SPARE_FILES: u64 = 256;

#[derive(Debug, thiserror::Error)]
pub enum LimitError {
    #[error("cannot read the open-file limit: {0}")]
    Read(std::io::Error),
    #[error("cannot raise the open-file limit to {wanted}: {source}")]
    Raise { wanted: u64, source: std::io::Error },
    #[error(
        "{what} may open {limit} files, but {connections} connections need about {needed}: \
         raise the hard limit first (as root with CAP_SYS_RESOURCE: `ulimit -n 200000`, \
         which compare.sh tries), or run fewer idle connections"
    )]
    TooLow {
        what: String,
        limit: u64,
        connections: usize,
        needed: u64,
    },
}

/// Raises this process's soft limit on open files to its hard limit; returns the limit now in
/// force.
pub fn raise_open_files() -> Result<u64, LimitError> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes only into the struct we pass, which is valid and initialised.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        return Err(LimitError::Read(std::io::Error::last_os_error()));
    }
    if limit.rlim_cur < limit.rlim_max {
        let wanted = limit.rlim_max;
        limit.rlim_cur = wanted;
        // SAFETY: setrlimit only reads the struct we pass, which is valid and initialised.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &limit) } != 0 {
            return Err(LimitError::Raise {
                wanted,
                source: std::io::Error::last_os_error(),
            });
        }
    }
    Ok(limit.rlim_cur)
}

/// Fails clearly, before connecting anything, if this process or the server (when its PID is
/// known) cannot hold `connections` more sockets.
pub fn ensure_room_for(
    connections: usize,
    server: Option<&ProcessProbe>,
) -> Result<(), LimitError> {
    let needed = connections as u64 + SPARE_FILES;
    let own = raise_open_files()?;
    if own < needed {
        return Err(LimitError::TooLow {
            what: "this generator".to_owned(),
            limit: own,
            connections,
            needed,
        });
    }
    if let Some(limit) = server.and_then(ProcessProbe::open_files_limit) {
        if limit < needed {
            return Err(LimitError::TooLow {
                what: "the server".to_owned(),
                limit,
                connections,
                needed,
            });
        }
    }
    Ok(())
}
