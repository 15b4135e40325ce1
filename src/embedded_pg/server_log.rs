//! The server's log file: opened for appending, truncated when too large, and its tail read
//! back for error messages.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom};
use std::path::Path;

use super::{io_err, Result, LOG_MAX_BYTES, LOG_TAIL_LINES};

/// Opens the log for appending; returns it with the offset where this run's output starts.
pub(super) fn open_log(path: &Path) -> Result<(File, u64)> {
    let ctx = || format!("opening {}", path.display());
    let file = OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(io_err(ctx()))?;
    let mut len = file.metadata().map_err(io_err(ctx()))?.len();
    if len > LOG_MAX_BYTES {
        file.set_len(0).map_err(io_err(ctx()))?;
        len = 0;
    }
    Ok((file, len))
}

/// The last lines the server wrote to `path` since `start`, for error messages.
pub(super) fn log_tail(path: &Path, start: u64) -> String {
    let mut text = Vec::new();
    let read = File::open(path).and_then(|mut f| {
        f.seek(SeekFrom::Start(start))?;
        f.read_to_end(&mut text)
    });
    if let Err(e) = read {
        return format!("(could not read the log: {e})");
    }
    let text = String::from_utf8_lossy(&text);
    let lines: Vec<&str> = text.lines().collect();
    let tail = lines[lines.len().saturating_sub(LOG_TAIL_LINES)..].join("\n");
    if tail.is_empty() {
        "(the server logged nothing)".to_owned()
    } else {
        tail
    }
}
