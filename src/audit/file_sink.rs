//! The audit file: appends with group commit on a dedicated writer thread.
//!
//! The writer takes every line queued since its last fsync, writes them with one `write` and
//! makes them durable with one `fdatasync`, then acknowledges the callers waiting for them. Under
//! load the batch grows instead of the fsync rate. When the file cannot be written the writer
//! marks the audit trail unavailable, answers waiting callers with an error at once, keeps the
//! lines, and retries until the file is writable again (nothing is dropped).

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::mpsc::{Receiver, TryRecvError};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::oneshot;

use super::chain::Head;
use super::{AuditError, Shared};

/// Where lines go. The file implementation is [`FileSink`]; tests inject faults through it.
pub trait Sink: Send + 'static {
    /// Appends bytes after the last durable byte.
    fn append(&mut self, bytes: &[u8]) -> io::Result<()>;
    /// Makes everything appended so far durable.
    fn sync(&mut self) -> io::Result<()>;
    /// After a failure: forget partial writes, so a retry does not leave a torn line.
    fn reset(&mut self);
    /// Closes the current file and writes on into whatever file is at the path now (log
    /// rotation). Sinks without a path have nothing to reopen.
    fn reopen(&mut self) {}
}

/// The audit log file.
pub struct FileSink {
    path: PathBuf,
    file: Option<File>,
    /// The durable length of the open file.
    durable_len: u64,
    /// A failed write may have left a partial line in the open file: cut it (through the same
    /// descriptor) before writing on. A partial line is only ever cut from the file it was
    /// written to, never from whatever is at the path later (a re-created log, or one an
    /// operator put back after it was removed).
    cut_pending: bool,
}

impl FileSink {
    /// Opens (creating) `path`; the file must already be repaired (see [`recover_tail`]).
    pub fn open(path: &Path) -> io::Result<FileSink> {
        let file = open_append(path)?;
        let durable_len = file.metadata()?.len();
        Ok(FileSink {
            path: path.to_path_buf(),
            file: Some(file),
            durable_len,
            cut_pending: false,
        })
    }

    /// A sink that will create the file on first write (used when the file cannot be opened at
    /// start: the server still starts, fails closed, and recovers when the path is writable).
    pub fn deferred(path: &Path) -> FileSink {
        FileSink {
            path: path.to_path_buf(),
            file: None,
            durable_len: 0,
            cut_pending: false,
        }
    }
}

fn open_append(path: &Path) -> io::Result<File> {
    OpenOptions::new().create(true).append(true).open(path)
}

impl FileSink {
    /// True while the open file still has a name. A removed file would otherwise swallow
    /// writes through the old descriptor; a renamed one (rotation) keeps them, and is written
    /// until the server is told to reopen (`SIGHUP`), so the new file starts with the
    /// `system.audit_log_reopened` line that continues the chain.
    fn still_linked(&self) -> bool {
        use std::os::unix::fs::MetadataExt;
        let Some(f) = &self.file else {
            return false;
        };
        f.metadata().is_ok_and(|m| m.nlink() > 0)
    }

    /// Stops writing the open file; the next append opens whatever is at the path.
    fn forget_file(&mut self) {
        self.file = None;
        self.cut_pending = false;
    }
}

impl Sink for FileSink {
    fn append(&mut self, bytes: &[u8]) -> io::Result<()> {
        if self.file.is_some() && !self.still_linked() {
            self.forget_file();
        }
        if self.file.is_none() {
            let f = open_append(&self.path)?;
            // Nothing of this file was written by this sink yet: all of it counts as durable.
            self.durable_len = f.metadata()?.len();
            self.file = Some(f);
        }
        let f = self.file.as_mut().expect("opened above");
        if self.cut_pending {
            // Drop the partial line a failed write left behind in this same file.
            f.set_len(self.durable_len)?;
            self.cut_pending = false;
        }
        f.write_all(bytes)
    }

    fn sync(&mut self) -> io::Result<()> {
        let f = self
            .file
            .as_mut()
            .ok_or_else(|| io::Error::other("audit file not open"))?;
        f.sync_data()?;
        self.durable_len = f.metadata()?.len();
        Ok(())
    }

    /// Cuts the partial line at once through its own descriptor and lets the next append
    /// reopen the path (so a descriptor that went bad is not kept); if the cut fails, keeps
    /// the descriptor and cuts before the next write.
    fn reset(&mut self) {
        match &self.file {
            Some(f) if f.set_len(self.durable_len).is_ok() => self.forget_file(),
            Some(_) => self.cut_pending = true,
            None => {}
        }
    }

    fn reopen(&mut self) {
        self.forget_file();
    }
}

/// One sealed line on its way to disk.
pub struct Pending {
    /// The event's kind, for the live feed (which then never parses the line).
    pub kind: super::Kind,
    pub line: super::chain::Line,
    pub head: Arc<Head>,
    pub ack: Option<oneshot::Sender<Result<(), AuditError>>>,
    /// Write this line as the first of a reopened file (see [`Sink::reopen`]).
    pub reopen: bool,
}

/// Most bytes written by one `write` (the rest waits for the next round).
const MAX_BATCH_BYTES: usize = 8 * 1024 * 1024;
const RETRY_EVERY: Duration = Duration::from_millis(200);

/// The writer thread's loop; returns when every sender is gone.
pub fn run_writer(mut sink: Box<dyn Sink>, rx: Receiver<Pending>, shared: Arc<Shared>) {
    let mut carry: Option<Pending> = None;
    loop {
        let first = match carry.take() {
            Some(p) => p,
            None => match rx.recv() {
                Ok(p) => p,
                Err(_) => return,
            },
        };
        if first.reopen {
            sink.reopen();
        }
        let mut batch = vec![first];
        let mut bytes = batch[0].line.len();
        while bytes < MAX_BATCH_BYTES {
            match rx.try_recv() {
                // A reopen starts the next batch: the lines before it stay in the old file.
                Ok(p) if p.reopen => {
                    carry = Some(p);
                    break;
                }
                Ok(p) => {
                    bytes += p.line.len();
                    batch.push(p);
                }
                Err(TryRecvError::Empty | TryRecvError::Disconnected) => break,
            }
        }
        let mut buf = Vec::with_capacity(bytes);
        for p in &batch {
            buf.extend_from_slice(&p.line);
        }
        let started = std::time::Instant::now();
        write_durably(
            sink.as_mut(),
            &mut buf,
            &mut batch,
            &rx,
            &mut carry,
            &shared,
        );
        shared.metrics.audit_commit(started.elapsed());
        let head = batch
            .last()
            .map(|p| p.head.clone())
            .expect("non-empty batch");
        shared.durable(&head, batch.len() as u64);
        for p in batch.iter_mut() {
            if let Some(ack) = p.ack.take() {
                let _ = ack.send(Ok(()));
            }
        }
        if shared.has_listeners() {
            let lines = batch
                .iter()
                .map(|p| super::FeedLine {
                    kind: p.kind,
                    line: Arc::from(String::from_utf8_lossy(&p.line).trim_end()),
                })
                .collect();
            shared.publish(lines);
        }
    }
}

/// Writes and syncs `buf`, retrying until it succeeds. Callers waiting on a failed attempt are
/// told at once, and so are those whose events arrived while it failed: those events join the
/// batch (in order) rather than wait behind it unanswered until the file works. Every line is
/// still written once it does.
fn write_durably(
    sink: &mut dyn Sink,
    buf: &mut Vec<u8>,
    batch: &mut Vec<Pending>,
    rx: &Receiver<Pending>,
    carry: &mut Option<Pending>,
    shared: &Shared,
) {
    loop {
        shared.fsyncs.fetch_add(1, Ordering::Relaxed);
        match sink.append(buf).and_then(|()| sink.sync()) {
            Ok(()) => {
                shared.set_available(true, None);
                return;
            }
            Err(e) => {
                shared.set_available(false, Some(&e.to_string()));
                // Up to a reopen, which waits for the next batch (see `run_writer`).
                while carry.is_none() {
                    match rx.try_recv() {
                        Ok(p) if p.reopen => *carry = Some(p),
                        Ok(p) => {
                            buf.extend_from_slice(&p.line);
                            batch.push(p);
                        }
                        Err(_) => break,
                    }
                }
                for p in batch.iter_mut() {
                    if let Some(ack) = p.ack.take() {
                        let _ = ack.send(Err(AuditError::Unavailable));
                    }
                }
                sink.reset();
                std::thread::sleep(RETRY_EVERY);
            }
        }
    }
}

/// What start-up found at the end of the file.
#[derive(Debug, Default)]
pub struct TailReport {
    /// The last complete line (without its `\n`), if any, as bytes: it may be damaged.
    pub last_line: Option<Vec<u8>>,
    /// Bytes after the last newline (a write cut short by a crash), moved aside.
    pub torn: Option<(u64, PathBuf)>,
}

/// Reads the last complete line of `path` and moves a torn tail (bytes after the last `\n`)
/// aside into `<path>.torn-<unix time>`, truncating the file to its last complete line.
pub fn recover_tail(path: &Path) -> io::Result<TailReport> {
    let mut file = match OpenOptions::new().read(true).write(true).open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(TailReport::default()),
        Err(e) => return Err(e),
    };
    let len = file.metadata()?.len();
    let mut report = TailReport::default();
    let mut end = len;
    if len > 0 {
        let last_nl = find_last_newline(&mut file, len)?;
        let complete_end = last_nl.map_or(0, |p| p + 1);
        if complete_end < len {
            let mut torn = vec![0u8; (len - complete_end) as usize];
            file.seek(SeekFrom::Start(complete_end))?;
            file.read_exact(&mut torn)?;
            let stamp = crate::timestamp::unix_secs(crate::timestamp::now());
            let aside = path.with_extension(format!("torn-{stamp}"));
            std::fs::write(&aside, &torn)?;
            file.set_len(complete_end)?;
            file.sync_all()?;
            report.torn = Some((torn.len() as u64, aside));
        }
        end = complete_end;
    }
    if end > 0 {
        let start = match find_last_newline(&mut file, end - 1)? {
            Some(p) => p + 1,
            None => 0,
        };
        let mut line = vec![0u8; (end - 1 - start) as usize];
        file.seek(SeekFrom::Start(start))?;
        file.read_exact(&mut line)?;
        report.last_line = Some(line);
    }
    Ok(report)
}

/// The first line of `path` (without its `\n`): `None` when the file is missing or holds no
/// complete line; a line longer than `max` bytes is returned cut (it then fails its check).
pub fn first_line(path: &Path, max: u64) -> io::Result<Option<Vec<u8>>> {
    use std::io::BufRead;
    let file = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    let mut line = Vec::new();
    io::BufReader::new(file.take(max)).read_until(b'\n', &mut line)?;
    Ok(match line.pop() {
        Some(b'\n') => Some(line),
        Some(_) if line.len() as u64 + 1 >= max => Some(line),
        _ => None,
    })
}

/// The last complete line of `path` (without its `\n`), read-only: `None` when the file is
/// missing or holds no complete line; a line longer than `max` bytes is returned cut to its
/// first `max` bytes (it then fails its check) rather than read whole.
pub fn last_line(path: &Path, max: u64) -> io::Result<Option<Vec<u8>>> {
    let mut file = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    let len = file.metadata()?.len();
    let Some(end) = find_last_newline(&mut file, len)? else {
        return Ok(None);
    };
    let start = find_last_newline(&mut file, end)?.map_or(0, |p| p + 1);
    let mut line = vec![0u8; (end - start).min(max) as usize];
    file.seek(SeekFrom::Start(start))?;
    file.read_exact(&mut line)?;
    Ok(Some(line))
}

/// Offset of the last `\n` before `end`, reading backwards in chunks.
fn find_last_newline(file: &mut File, end: u64) -> io::Result<Option<u64>> {
    const CHUNK: u64 = 64 * 1024;
    let mut pos = end;
    let mut buf = vec![0u8; CHUNK as usize];
    while pos > 0 {
        let start = pos.saturating_sub(CHUNK);
        let n = (pos - start) as usize;
        file.seek(SeekFrom::Start(start))?;
        file.read_exact(&mut buf[..n])?;
        if let Some(i) = buf[..n].iter().rposition(|b| *b == b'\n') {
            return Ok(Some(start + i as u64));
        }
        pos = start;
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_torn_tail_is_moved_aside_and_the_last_line_kept() {
        let dir = std::env::temp_dir().join(format!("rampart-tail-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("audit.log");
        std::fs::write(&path, b"{\"a\":1}\n{\"b\":2}\n{\"c\":").unwrap();
        let report = recover_tail(&path).unwrap();
        assert_eq!(report.last_line.as_deref(), Some(&b"{\"b\":2}"[..]));
        let (bytes, aside) = report.torn.unwrap();
        assert_eq!(bytes, 5);
        assert_eq!(std::fs::read(&aside).unwrap(), b"{\"c\":");
        assert_eq!(std::fs::read(&path).unwrap(), b"{\"a\":1}\n{\"b\":2}\n");
        let again = recover_tail(&path).unwrap();
        assert!(again.torn.is_none());
        std::fs::remove_dir_all(dir).unwrap();
    }

    fn scratch(name: &str) -> (PathBuf, PathBuf) {
        let dir = std::env::temp_dir().join(format!("rampart-{name}-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("audit.log");
        (dir, path)
    }

    #[test]
    fn a_retry_cuts_the_partial_line_off_the_file_it_was_written_to() {
        let (dir, path) = scratch("retry");
        let mut sink = FileSink::open(&path).unwrap();
        sink.append(b"{\"a\":1}\n").unwrap();
        sink.sync().unwrap();
        sink.append(b"{\"b\":").unwrap();
        sink.reset();
        sink.append(b"{\"b\":2}\n").unwrap();
        sink.sync().unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"{\"a\":1}\n{\"b\":2}\n");
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn a_log_put_back_after_its_removal_is_never_cut() {
        let (dir, path) = scratch("restore");
        let mut sink = FileSink::open(&path).unwrap();
        sink.append(b"{\"a\":1}\n").unwrap();
        sink.sync().unwrap();
        // The log is removed while a write fails half-way, and the writer re-creates it.
        std::fs::remove_file(&path).unwrap();
        sink.append(b"{\"b\":").unwrap();
        sink.reset();
        assert_eq!(
            std::fs::read(&path).unwrap(),
            b"",
            "cut from the file it was written to"
        );
        // An operator puts the old log back, longer than anything this sink made durable.
        std::fs::remove_file(&path).unwrap();
        let restored = b"{\"a\":1}\n{\"x\":9}\n".to_vec();
        std::fs::write(&path, &restored).unwrap();
        sink.append(b"{\"b\":2}\n").unwrap();
        sink.sync().unwrap();
        let mut expected = restored;
        expected.extend_from_slice(b"{\"b\":2}\n");
        assert_eq!(std::fs::read(&path).unwrap(), expected);
        std::fs::remove_dir_all(dir).unwrap();
    }
}
