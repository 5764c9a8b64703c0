//! The exporter's durable queue: what the SIEM has not yet accepted.
//!
//! A directory of its own per destination:
//!
//! ```text
//! <dir>/queue-00000000000000000003.log   the log: records appended, never rewritten
//! <dir>/acked                            generation and acknowledged byte offset
//! ```
//!
//! A record is `len: u32 BE | crc: u32 BE | payload`, `crc` the CRC-32C of
//! `len` and the payload (the message exactly as it will be sent). `acked`
//! is four text lines — magic, `generation G`, `acked OFFSET`, `crc` of the
//! first three — replaced atomically (write, fsync, rename, fsync the
//! directory).
//!
//! Why not `pumpward_proto::queue::DurableQueue`: it holds the pump's
//! typed protocol events (validated against the device protocol, numbered
//! with sequence numbers the gateway acknowledges, with `events_dropped`
//! markers written into the stream). Here the payload is opaque bytes that
//! are acknowledged by position, and a full queue is reported to the
//! producer instead, so the shape differs; the record framing (length,
//! CRC-32C, cut at the first torn record) is the same.
//!
//! Guarantees:
//!
//! - **Durable on return.** [`DiskQueue::push`] returns only after the
//!   record is written and `fdatasync`ed.
//! - **Nothing acknowledged is sent again, nothing unacknowledged is
//!   lost.** [`DiskQueue::ack`] records the new offset durably before it
//!   forgets the records. A crash between the SIEM accepting a message and
//!   that ack means the message is sent again after restart: delivery is
//!   at least once, never less.
//! - **Torn writes are harmless.** On open the log is read from the acked
//!   offset up to the first incomplete or corrupt record and cut there;
//!   such a record never had its push return.
//! - **Bounded.** A push that would take the unacknowledged bytes past
//!   [`QueueConfig::max_pending_bytes`] fails at once with
//!   [`QueueError::Full`]. The acknowledged head of the log is reclaimed by
//!   *compaction*: the unacknowledged tail is copied to the next
//!   generation's file, synced, then `acked` is switched to it and the old
//!   file deleted; a crash at any point leaves one complete generation
//!   that `acked` names. Compaction runs when at least `compact_bytes` are
//!   acknowledged and the tail is at most `compact_bytes` (a bounded copy),
//!   or when the acknowledged head reaches `max_pending_bytes` (so the
//!   disk holds at most about twice the cap).
//!
//! One process at a time may open a directory.

use std::collections::VecDeque;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

const HEADER: usize = 8;
const CRC: crc::Crc<u32> = crc::Crc::<u32>::new(&crc::CRC_32_ISCSI);
const ACKED: &str = "acked";
const ACKED_TMP: &str = "acked.tmp";
const MAGIC: &str = "pumpward-siem-queue 1";

/// The largest record (one formatted message).
pub const MAX_RECORD_BYTES: usize = 1 << 20;

/// Size limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueueConfig {
    /// Unacknowledged bytes the queue may hold (default 64 MiB, about
    /// 100,000 alerts).
    pub max_pending_bytes: u64,
    /// Compaction threshold (default 1 MiB); see the module documentation.
    pub compact_bytes: u64,
}

impl Default for QueueConfig {
    fn default() -> Self {
        Self {
            max_pending_bytes: 64 << 20,
            compact_bytes: 1 << 20,
        }
    }
}

/// Queue failures.
#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    /// No room: the message was not queued.
    #[error("SIEM queue full: {pending} of {limit} bytes await delivery")]
    Full {
        /// Unacknowledged bytes.
        pending: u64,
        /// The limit.
        limit: u64,
    },
    /// The message is larger than [`MAX_RECORD_BYTES`] (or empty).
    #[error("a queued message must be 1 to {MAX_RECORD_BYTES} bytes; this one is {0}")]
    BadSize(usize),
    /// An ack for more records than are queued.
    #[error("ack of {acked} records but only {queued} are queued")]
    AckBeyondQueued {
        /// Records acknowledged.
        acked: usize,
        /// Records queued.
        queued: usize,
    },
    /// Bad configuration.
    #[error("bad queue configuration: {0}")]
    Config(String),
    /// The `acked` file is unreadable or inconsistent with the log.
    #[error("queue state {path} is corrupt: {why}")]
    CorruptState {
        /// Its path.
        path: PathBuf,
        /// What is wrong.
        why: String,
    },
    /// A record no longer reads back (the disk changed under us).
    #[error("record at byte {offset} of {path} is corrupt")]
    Corrupt {
        /// Where.
        offset: u64,
        /// The log.
        path: PathBuf,
    },
    /// The file system failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The error.
        source: io::Error,
    },
}

fn io_err(context: impl Into<String>) -> impl FnOnce(io::Error) -> QueueError {
    let context = context.into();
    move |source| QueueError::Io { context, source }
}

/// What opening found and repaired.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Recovery {
    /// Bytes cut from the end of the log (a torn or corrupt tail).
    pub torn_bytes: u64,
    /// Log files of other generations deleted (left by a crash during
    /// compaction).
    pub stale_logs: usize,
}

/// The durable queue. See the module documentation.
#[derive(Debug)]
pub struct DiskQueue {
    dir: PathBuf,
    cfg: QueueConfig,
    generation: u64,
    log_path: PathBuf,
    log: File,
    log_len: u64,
    acked: u64,
    /// Unacknowledged records (offset, payload length), oldest first.
    index: VecDeque<(u64, u32)>,
    recovery: Recovery,
}

fn log_name(generation: u64) -> String {
    format!("queue-{generation:020}.log")
}

fn parse_log_name(name: &str) -> Option<u64> {
    let digits = name.strip_prefix("queue-")?.strip_suffix(".log")?;
    if digits.len() != 20 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

fn sync_dir(dir: &Path) -> Result<(), QueueError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_err(format!("syncing directory {}", dir.display())))
}

fn record_crc(len: u32, payload: &[u8]) -> u32 {
    let mut d = CRC.digest();
    d.update(&len.to_be_bytes());
    d.update(payload);
    d.finalize()
}

fn state_text(generation: u64, acked: u64) -> String {
    let body = format!("{MAGIC}\ngeneration {generation}\nacked {acked}\n");
    let crc = CRC.checksum(body.as_bytes());
    format!("{body}crc {crc:08x}\n")
}

fn read_state(path: &Path) -> Result<Option<(u64, u64)>, QueueError> {
    let bytes = match fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io_err(format!("reading {}", path.display()))(e)),
    };
    let corrupt = |why: &str| QueueError::CorruptState {
        path: path.to_owned(),
        why: why.to_owned(),
    };
    let text = std::str::from_utf8(&bytes).map_err(|_| corrupt("not UTF-8"))?;
    let lines: Vec<&str> = text.lines().collect();
    let [magic, generation, acked, crc] = lines.as_slice() else {
        return Err(corrupt("not four lines"));
    };
    if *magic != MAGIC {
        return Err(corrupt("unknown format"));
    }
    let num = |line: &str, key: &str| -> Result<u64, QueueError> {
        line.strip_prefix(key)
            .and_then(|v| v.strip_prefix(' '))
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| corrupt(&format!("bad {key:?} line")))
    };
    let (g, a) = (num(generation, "generation")?, num(acked, "acked")?);
    let want = crc
        .strip_prefix("crc ")
        .and_then(|c| u32::from_str_radix(c, 16).ok())
        .ok_or_else(|| corrupt("bad crc line"))?;
    let body_len = magic.len() + generation.len() + acked.len() + 3;
    if text.get(..body_len).map(|b| CRC.checksum(b.as_bytes())) != Some(want) {
        return Err(corrupt("checksum mismatch"));
    }
    Ok(Some((g, a)))
}

/// Valid records of `bytes` (which start at file offset `base`) and the
/// offset where validity ends.
fn scan(bytes: &[u8], base: u64) -> (Vec<(u64, u32)>, u64) {
    let mut out = Vec::new();
    let mut at = 0usize;
    while let Some(h) = bytes.get(at..at + HEADER) {
        let len = u32::from_be_bytes([h[0], h[1], h[2], h[3]]);
        let crc = u32::from_be_bytes([h[4], h[5], h[6], h[7]]);
        let end = at + HEADER + len as usize;
        let Some(payload) = bytes.get(at + HEADER..end) else {
            break;
        };
        if len == 0 || len as usize > MAX_RECORD_BYTES || record_crc(len, payload) != crc {
            break;
        }
        out.push((base + at as u64, len));
        at = end;
    }
    (out, base + at as u64)
}

impl DiskQueue {
    /// Opens (creating if needed) the queue in `dir`, recovering from a
    /// crash at any point (see [`DiskQueue::recovery`]).
    pub fn open(dir: impl AsRef<Path>, cfg: QueueConfig) -> Result<Self, QueueError> {
        if cfg.max_pending_bytes < (HEADER + MAX_RECORD_BYTES) as u64 {
            return Err(QueueError::Config(format!(
                "max_pending_bytes must be at least {}",
                HEADER + MAX_RECORD_BYTES
            )));
        }
        if cfg.compact_bytes == 0 {
            return Err(QueueError::Config("compact_bytes must be positive".into()));
        }
        let dir = dir.as_ref().to_owned();
        fs::create_dir_all(&dir).map_err(io_err(format!("creating {}", dir.display())))?;
        let _ = fs::remove_file(dir.join(ACKED_TMP));
        let state = read_state(&dir.join(ACKED))?;
        let (generation, acked) = state.unwrap_or((0, 0));

        let mut recovery = Recovery::default();
        for entry in fs::read_dir(&dir).map_err(io_err(format!("listing {}", dir.display())))? {
            let entry = entry.map_err(io_err(format!("listing {}", dir.display())))?;
            let name = entry.file_name();
            if let Some(g) = name.to_str().and_then(parse_log_name) {
                if g != generation {
                    fs::remove_file(entry.path())
                        .map_err(io_err(format!("deleting {}", entry.path().display())))?;
                    recovery.stale_logs += 1;
                }
            }
        }

        let log_path = dir.join(log_name(generation));
        let log = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .open(&log_path)
            .map_err(io_err(format!("opening {}", log_path.display())))?;
        let len = log
            .metadata()
            .map_err(io_err(format!("reading {}", log_path.display())))?
            .len();
        if acked > len {
            return Err(QueueError::CorruptState {
                path: dir.join(ACKED),
                why: format!(
                    "acknowledged offset {acked} is beyond the end of {} ({len} bytes)",
                    log_path.display()
                ),
            });
        }
        let mut tail = vec![0u8; (len - acked) as usize];
        log.read_exact_at(&mut tail, acked)
            .map_err(io_err(format!("reading {}", log_path.display())))?;
        let (records, valid_end) = scan(&tail, acked);
        if valid_end < len {
            log.set_len(valid_end)
                .and_then(|()| log.sync_all())
                .map_err(io_err(format!("truncating {}", log_path.display())))?;
            recovery.torn_bytes = len - valid_end;
        }
        let q = Self {
            dir,
            cfg,
            generation,
            log_path,
            log,
            log_len: valid_end,
            acked,
            index: records.into(),
            recovery,
        };
        if state.is_none() {
            // The first open: the state file names generation 0 from now on.
            q.write_state(generation, acked)?;
        }
        if q.recovery.stale_logs > 0 {
            sync_dir(&q.dir)?;
        }
        Ok(q)
    }

    /// What the last open found and repaired.
    pub fn recovery(&self) -> &Recovery {
        &self.recovery
    }

    /// Messages waiting for delivery.
    pub fn len(&self) -> usize {
        self.index.len()
    }

    /// Nothing waits.
    pub fn is_empty(&self) -> bool {
        self.index.is_empty()
    }

    /// Bytes waiting for delivery (record headers included).
    pub fn pending_bytes(&self) -> u64 {
        self.log_len - self.acked
    }

    /// Bytes the log file occupies (acknowledged head included).
    pub fn disk_bytes(&self) -> u64 {
        self.log_len
    }

    /// Appends one message durably.
    pub fn push(&mut self, payload: &[u8]) -> Result<(), QueueError> {
        if payload.is_empty() || payload.len() > MAX_RECORD_BYTES {
            return Err(QueueError::BadSize(payload.len()));
        }
        let rec = (HEADER + payload.len()) as u64;
        if self.pending_bytes() + rec > self.cfg.max_pending_bytes {
            return Err(QueueError::Full {
                pending: self.pending_bytes(),
                limit: self.cfg.max_pending_bytes,
            });
        }
        let len = payload.len() as u32;
        let mut buf = Vec::with_capacity(rec as usize);
        buf.extend_from_slice(&len.to_be_bytes());
        buf.extend_from_slice(&record_crc(len, payload).to_be_bytes());
        buf.extend_from_slice(payload);
        let written = self.log.write_all(&buf).and_then(|()| self.log.sync_data());
        if let Err(e) = written {
            // No half record may stay ahead of later ones.
            let _ = self.log.set_len(self.log_len);
            return Err(io_err(format!("appending to {}", self.log_path.display()))(
                e,
            ));
        }
        self.index.push_back((self.log_len, len));
        self.log_len += rec;
        Ok(())
    }

    /// The oldest `limit` messages, in order, without removing them.
    pub fn peek(&self, limit: usize) -> Result<Vec<Vec<u8>>, QueueError> {
        let mut out = Vec::with_capacity(limit.min(self.index.len()));
        for &(offset, len) in self.index.iter().take(limit) {
            let mut rec = vec![0u8; HEADER + len as usize];
            self.log
                .read_exact_at(&mut rec, offset)
                .map_err(io_err(format!("reading {}", self.log_path.display())))?;
            let crc = u32::from_be_bytes([rec[4], rec[5], rec[6], rec[7]]);
            let payload = rec.split_off(HEADER);
            if record_crc(len, &payload) != crc {
                return Err(QueueError::Corrupt {
                    offset,
                    path: self.log_path.clone(),
                });
            }
            out.push(payload);
        }
        Ok(out)
    }

    /// Records durably that the oldest `n` messages were accepted by the
    /// SIEM, then forgets them (compacting when due).
    pub fn ack(&mut self, n: usize) -> Result<(), QueueError> {
        if n == 0 {
            return Ok(());
        }
        if n > self.index.len() {
            return Err(QueueError::AckBeyondQueued {
                acked: n,
                queued: self.index.len(),
            });
        }
        let new_acked = self.index.get(n).map_or(self.log_len, |&(o, _)| o);
        let tail = self.log_len - new_acked;
        let compact = new_acked >= self.cfg.compact_bytes
            && (tail <= self.cfg.compact_bytes || new_acked >= self.cfg.max_pending_bytes);
        if compact {
            self.compact(new_acked)?;
        } else {
            self.write_state(self.generation, new_acked)?;
            self.acked = new_acked;
        }
        self.index.drain(..n);
        if compact {
            for r in &mut self.index {
                r.0 -= new_acked;
            }
        }
        Ok(())
    }

    /// Moves the tail from `from` to a new generation's file; see the
    /// module documentation for the crash-safety argument.
    fn compact(&mut self, from: u64) -> Result<(), QueueError> {
        let next = self.generation + 1;
        let path = self.dir.join(log_name(next));
        let mut tail = vec![0u8; (self.log_len - from) as usize];
        self.log
            .read_exact_at(&mut tail, from)
            .map_err(io_err(format!("reading {}", self.log_path.display())))?;
        let mut f = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(io_err(format!("creating {}", path.display())))?;
        f.set_len(0)
            .and_then(|()| f.write_all(&tail))
            .and_then(|()| f.sync_all())
            .map_err(io_err(format!("writing {}", path.display())))?;
        sync_dir(&self.dir)?;
        self.write_state(next, 0)?;
        let old = std::mem::replace(&mut self.log_path, path);
        self.log = f;
        self.generation = next;
        self.log_len -= from;
        self.acked = 0;
        // The switch is already durable; a leftover old file is deleted at
        // the next open.
        if fs::remove_file(&old).is_ok() {
            let _ = sync_dir(&self.dir);
        }
        Ok(())
    }

    fn write_state(&self, generation: u64, acked: u64) -> Result<(), QueueError> {
        let tmp = self.dir.join(ACKED_TMP);
        let mut f = File::create(&tmp).map_err(io_err(format!("creating {}", tmp.display())))?;
        f.write_all(state_text(generation, acked).as_bytes())
            .and_then(|()| f.sync_all())
            .map_err(io_err(format!("writing {}", tmp.display())))?;
        fs::rename(&tmp, self.dir.join(ACKED)).map_err(io_err("replacing the acked file"))?;
        sync_dir(&self.dir)
    }
}

#[cfg(test)]
mod tests;
