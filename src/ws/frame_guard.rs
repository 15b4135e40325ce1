//! Refuses an oversized WebSocket message from its frame header, before its payload is buffered.
//!
//! actix's frame codec checks a frame's length only once the whole frame has arrived, and the
//! stream that feeds it copies every byte the socket delivers into one buffer first, so a frame
//! declaring 4 GiB would be buffered as it streams. [`FrameGuard`] sits between the request's
//! byte stream and that codec: it reads each frame header (RFC 6455 §5.2) as the bytes pass,
//! skips the payload it announces, and stops the stream as soon as a frame's declared length,
//! or a fragmented message's running total, exceeds the message limit. What it lets through
//! therefore never holds a frame over the limit, so the codec buffers at most one frame of at
//! most the limit plus one read.
//!
//! The guard only counts; every other rule of the protocol (masking, reserved bits, opcodes,
//! control frames of at most 125 bytes, continuation order) is still the codec's to enforce.

use std::cell::Cell;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};

use actix_web::error::PayloadError;
use actix_web::web::Bytes;
use futures_util::Stream;

/// The longest frame header: 2 bytes, a 64-bit extended length, a 4-byte mask key.
const MAX_HEADER: usize = 14;

/// A frame header that breaks the limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Oversize {
    /// Stream offset of the offending header's first byte.
    pub header_at: u64,
    /// The frame's declared payload length, or the fragmented message's running total.
    pub declared: u64,
}

/// Follows frame boundaries through a byte stream split anywhere, in constant memory.
#[derive(Debug, Clone)]
pub struct FrameScanner {
    limit: u64,
    /// Bytes of the stream seen so far.
    pos: u64,
    /// The header being read, and how many of its bytes have arrived.
    head: [u8; MAX_HEADER],
    have: usize,
    /// Stream offset where the header being read began.
    head_at: u64,
    /// Payload bytes of the current frame still to pass.
    skip: u64,
    /// Payload bytes of the fragmented data message in progress (0 between messages).
    message: u64,
    /// The first refusal; once set every later scan repeats it.
    refused: Option<Oversize>,
}

impl FrameScanner {
    pub fn new(limit: usize) -> Self {
        FrameScanner {
            limit: limit as u64,
            pos: 0,
            head: [0; MAX_HEADER],
            have: 0,
            head_at: 0,
            skip: 0,
            message: 0,
            refused: None,
        }
    }

    /// Bytes of the stream seen so far.
    pub fn position(&self) -> u64 {
        self.pos
    }

    /// Reads the next bytes of the stream.
    pub fn scan(&mut self, bytes: &[u8]) -> Result<(), Oversize> {
        if let Some(refused) = self.refused {
            return Err(refused);
        }
        let mut i = 0;
        while i < bytes.len() {
            if self.skip > 0 {
                let n = self.skip.min((bytes.len() - i) as u64);
                self.skip -= n;
                i += n as usize;
                continue;
            }
            if self.have == 0 {
                self.head_at = self.pos + i as u64;
            }
            self.head[self.have] = bytes[i];
            self.have += 1;
            i += 1;
            if let Err(over) = self.on_header_byte() {
                self.pos += i as u64;
                self.refused = Some(over);
                return Err(over);
            }
        }
        self.pos += bytes.len() as u64;
        Ok(())
    }

    /// After each header byte: judges the length as soon as it is known, and starts skipping
    /// the payload once the header is complete.
    fn on_header_byte(&mut self) -> Result<(), Oversize> {
        if self.have < 2 {
            return Ok(());
        }
        let ext = match self.head[1] & 0x7F {
            126 => 2,
            127 => 8,
            _ => 0,
        };
        let mask = if self.head[1] & 0x80 != 0 { 4 } else { 0 };
        if self.have == 2 + ext {
            self.judge(self.declared_len(ext))?;
        }
        if self.have == 2 + ext + mask {
            self.skip = self.declared_len(ext);
            self.have = 0;
        }
        Ok(())
    }

    fn declared_len(&self, ext: usize) -> u64 {
        match ext {
            0 => u64::from(self.head[1] & 0x7F),
            _ => self.head[2..2 + ext]
                .iter()
                .fold(0, |n, b| (n << 8) | u64::from(*b)),
        }
    }

    /// Control frames (opcode 8 and up) stand alone; data frames add to their message, which a
    /// non-continuation frame starts and a FIN bit ends.
    fn judge(&mut self, len: u64) -> Result<(), Oversize> {
        let refuse = |declared| Oversize {
            header_at: self.head_at,
            declared,
        };
        if len > self.limit {
            return Err(refuse(len));
        }
        let (fin, opcode) = (self.head[0] & 0x80 != 0, self.head[0] & 0x0F);
        if opcode & 0x08 == 0 {
            let total = match opcode {
                0 => self.message.saturating_add(len),
                _ => len,
            };
            if total > self.limit {
                return Err(refuse(total));
            }
            self.message = if fin { 0 } else { total };
        }
        Ok(())
    }
}

/// Tells the session that the guard stopped the stream for an oversized message, and how
/// large it said it was. Both ends live on the connection's worker thread.
#[derive(Debug, Clone, Default)]
pub struct OversizeSignal(Rc<Cell<Option<u64>>>);

impl OversizeSignal {
    /// The declared size that stopped the stream, if it was stopped.
    pub fn get(&self) -> Option<u64> {
        self.0.get()
    }
}

/// The request's byte stream with oversized messages cut off at their header: it yields the
/// bytes before the offending header, then an error, then ends (dropping the request body, so
/// the server reads no further for this connection).
pub struct FrameGuard<S> {
    inner: Option<S>,
    scanner: FrameScanner,
    signal: OversizeSignal,
    error_next: bool,
}

impl<S> FrameGuard<S> {
    pub fn new(inner: S, limit: usize) -> (Self, OversizeSignal) {
        let signal = OversizeSignal::default();
        let guard = FrameGuard {
            inner: Some(inner),
            scanner: FrameScanner::new(limit),
            signal: signal.clone(),
            error_next: false,
        };
        (guard, signal)
    }

    fn stop(&mut self) -> Poll<Option<Result<Bytes, PayloadError>>> {
        self.error_next = false;
        self.inner = None;
        Poll::Ready(Some(Err(PayloadError::Overflow)))
    }
}

impl<S> Stream for FrameGuard<S>
where
    S: Stream<Item = Result<Bytes, PayloadError>> + Unpin,
{
    type Item = Result<Bytes, PayloadError>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        if this.error_next {
            return this.stop();
        }
        let Some(inner) = this.inner.as_mut() else {
            return Poll::Ready(None);
        };
        let chunk = match Pin::new(inner).poll_next(cx) {
            Poll::Ready(Some(Ok(chunk))) => chunk,
            other => return other,
        };
        let start = this.scanner.position();
        match this.scanner.scan(&chunk) {
            Ok(()) => Poll::Ready(Some(Ok(chunk))),
            Err(over) => {
                this.signal.0.set(Some(over.declared));
                // A header that began in an earlier chunk has had its first bytes passed on
                // already; the codec holds at most those (fewer than 14) and never completes it.
                let before = over.header_at.saturating_sub(start) as usize;
                if before == 0 {
                    return this.stop();
                }
                this.error_next = true;
                this.inner = None;
                Poll::Ready(Some(Ok(chunk.slice(..before))))
            }
        }
    }
}

#[cfg(test)]
#[path = "frame_guard_tests.rs"]
mod tests;
