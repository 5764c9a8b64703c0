//! The pump agent's durable event queue.
//!
//! An append-only log in a directory of its own:
//!
//! ```text
//! <dir>/seg-00000000000000000001.log   segment: records, named by the first seq it was created for
//! <dir>/seg-00000000000000004711.log   the newest segment takes the appends
//! <dir>/meta                           ack watermark and sequence floor (replaced atomically)
//! ```
//!
//! A record is `len: u32 BE | crc: u32 BE | seq: u64 BE | payload` where the
//! payload is the event's JSON (`len` bytes, at most
//! [`MAX_EVENT_BYTES`]) and `crc` is the
//! CRC-32C of `len`, `seq` and the payload.
//!
//! Guarantees:
//!
//! - **Durable on return.** [`DurableQueue::push`] returns the event's
//!   sequence number only after the record is written and `fdatasync`ed (and,
//!   for a new segment, its directory entry synced). An event whose push
//!   did not return may be lost; one whose push returned is not.
//! - **Torn writes are harmless.** On open, the newest segment is read up to
//!   the first record that is incomplete or fails its checksum and is cut
//!   there; such a record never had its push return.
//! - **The counter never goes backwards.** The next sequence number is the
//!   greatest of: the last record's seq + 1, the newest segment's name, and
//!   the `next` floor in `meta` (written with every ack, before segments are
//!   deleted). So even when every event was acknowledged and every segment
//!   reclaimed, a reopened queue continues where it stopped.
//! - **An acknowledged event is reclaimed, an unacknowledged one never.**
//!   [`DurableQueue::ack`] first replaces `meta` (write, fsync, rename, fsync
//!   the directory), then deletes the segments all of whose records are
//!   acknowledged, never the newest.
//! - **Bounded, never blocking.** When a push would take the directory past
//!   `max_bytes`, it fails at once with [`QueueError::Full`]; the queue counts
//!   the refused events and, as soon as there is room, writes an
//!   `events_dropped {count}` event ahead of the next event, so the gateway
//!   learns how many were lost. (The agent runs the queue on its own thread;
//!   therapy code hands events to it without waiting.)
//! - **What it holds, the gateway accepts.** Each event is validated with the
//!   protocol's rules before it is given a number.
//!
//! One process at a time may open a directory (the agent is that process).

use std::collections::VecDeque;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::ops::RangeInclusive;
use std::path::{Path, PathBuf};

use time::OffsetDateTime;

use crate::message::{EventKind, PumpEvent, ValidationError, MAX_EVENT_BYTES, MAX_SEQ};

const HEADER: usize = 16;
const CRC: crc::Crc<u32> = crc::Crc::<u32>::new(&crc::CRC_32_ISCSI);
const META: &str = "meta";
const META_TMP: &str = "meta.tmp";
const META_MAGIC: &str = "pumpward-queue 1";

/// An event before the queue numbers it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewEvent {
    /// When it happened.
    pub at: OffsetDateTime,
    /// What happened.
    pub kind: EventKind,
    /// Free detail.
    pub detail: std::collections::BTreeMap<String, String>,
}

impl NewEvent {
    /// An event without detail.
    pub fn new(at: OffsetDateTime, kind: EventKind) -> Self {
        Self {
            at,
            kind,
            detail: Default::default(),
        }
    }

    fn with_seq(self, seq: u64) -> PumpEvent {
        PumpEvent {
            seq,
            at: self.at,
            kind: self.kind,
            detail: self.detail,
        }
    }
}

/// Size limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueueConfig {
    /// Bytes the segment files may occupy together (default 16 MiB).
    pub max_bytes: u64,
    /// A segment is closed once it reaches this size (default 1 MiB).
    pub segment_bytes: u64,
}

impl Default for QueueConfig {
    fn default() -> Self {
        Self {
            max_bytes: 16 << 20,
            segment_bytes: 1 << 20,
        }
    }
}

/// Queue failures.
#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    /// No room: the event was not queued (and is counted as dropped).
    #[error("event queue full: {used} of {limit} bytes in use")]
    Full {
        /// Bytes in use.
        used: u64,
        /// The limit.
        limit: u64,
    },
    /// The event breaks the protocol's rules; it would be refused.
    #[error("event refused: {0}")]
    Invalid(#[from] ValidationError),
    /// The event serialises to more than `MAX_EVENT_BYTES`.
    #[error("event is {0} bytes; at most {MAX_EVENT_BYTES}")]
    TooLarge(usize),
    /// An ack for a sequence number never assigned.
    #[error("ack up to {up_to} but the highest assigned sequence number is {highest}")]
    AckBeyondPushed {
        /// The ack.
        up_to: u64,
        /// Highest assigned.
        highest: u64,
    },
    /// All 2^53 − 1 sequence numbers are used.
    #[error("sequence numbers exhausted")]
    SeqExhausted,
    /// Bad configuration.
    #[error("bad queue configuration: {0}")]
    Config(String),
    /// The `meta` file fails its checksum or cannot be read.
    #[error("queue metadata {path} is corrupt: {why}")]
    CorruptMeta {
        /// Its path.
        path: PathBuf,
        /// What is wrong.
        why: String,
    },
    /// A stored record no longer reads back.
    #[error("record {seq} in {path} is corrupt: {why}")]
    Corrupt {
        /// The record's sequence number.
        seq: u64,
        /// The segment.
        path: PathBuf,
        /// What is wrong.
        why: String,
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

/// What opening the queue found and repaired.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Recovery {
    /// Bytes cut from the end of the newest segment (a torn last write).
    pub torn_bytes: u64,
    /// Older segments with unreadable records after the named offset
    /// (`path`, offset); their later records are skipped and will show up
    /// at the gateway as a gap.
    pub corrupt: Vec<(PathBuf, u64)>,
    /// Fully acknowledged segments deleted at open (left by a crash between
    /// an ack and its reclaim).
    pub reclaimed: usize,
}

#[derive(Debug)]
struct Segment {
    first_seq: u64,
    path: PathBuf,
    len: u64,
    last_seq: Option<u64>,
}

#[derive(Debug, Clone, Copy)]
struct Loc {
    seq: u64,
    /// Index into `segments` is unstable; the segment's first_seq is not.
    segment: u64,
    offset: u64,
    len: u32,
}

/// The pump agent's durable event queue. See the module documentation.
#[derive(Debug)]
pub struct DurableQueue {
    dir: PathBuf,
    cfg: QueueConfig,
    segments: VecDeque<Segment>,
    /// Unacknowledged records, oldest first.
    index: VecDeque<Loc>,
    /// Append handle of the newest segment.
    active: Option<File>,
    acked: u64,
    next_seq: u64,
    disk_bytes: u64,
    /// Refused by a full queue since open.
    dropped: u64,
    /// Refused and not yet reported by an `events_dropped` event.
    unreported: u64,
    recovery: Recovery,
    /// Set when an append failed and re-reading the directory failed too.
    broken: Option<String>,
}

fn segment_name(first_seq: u64) -> String {
    format!("seg-{first_seq:020}.log")
}

fn parse_segment_name(name: &str) -> Option<u64> {
    let digits = name.strip_prefix("seg-")?.strip_suffix(".log")?;
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

fn record_crc(len: u32, seq: u64, payload: &[u8]) -> u32 {
    let mut d = CRC.digest();
    d.update(&len.to_be_bytes());
    d.update(&seq.to_be_bytes());
    d.update(payload);
    d.finalize()
}

fn encode_record(seq: u64, payload: &[u8], out: &mut Vec<u8>) {
    let len = payload.len() as u32;
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(&record_crc(len, seq, payload).to_be_bytes());
    out.extend_from_slice(&seq.to_be_bytes());
    out.extend_from_slice(payload);
}

/// Scans a segment's bytes: the valid records and where validity ends.
fn scan(bytes: &[u8], min_seq: u64, mut prev: u64, segment: u64) -> (Vec<Loc>, u64) {
    let mut locs = Vec::new();
    let mut at = 0usize;
    while bytes.len() - at >= HEADER {
        let h = &bytes[at..at + HEADER];
        let len = u32::from_be_bytes([h[0], h[1], h[2], h[3]]);
        let crc = u32::from_be_bytes([h[4], h[5], h[6], h[7]]);
        let seq = u64::from_be_bytes([h[8], h[9], h[10], h[11], h[12], h[13], h[14], h[15]]);
        let end = at + HEADER + len as usize;
        if len == 0 || len as usize > MAX_EVENT_BYTES || end > bytes.len() {
            break;
        }
        if record_crc(len, seq, &bytes[at + HEADER..end]) != crc
            || seq < min_seq
            || seq <= prev
            || seq > MAX_SEQ
        {
            break;
        }
        locs.push(Loc {
            seq,
            segment,
            offset: at as u64,
            len,
        });
        prev = seq;
        at = end;
    }
    (locs, at as u64)
}

struct Meta {
    acked: u64,
    next: u64,
}

fn meta_text(m: &Meta) -> String {
    let body = format!("{META_MAGIC}\nacked {}\nnext {}\n", m.acked, m.next);
    let crc = CRC.checksum(body.as_bytes());
    format!("{body}crc {crc:08x}\n")
}

fn read_meta(path: &Path) -> Result<Option<Meta>, QueueError> {
    let text = match fs::read(path) {
        Ok(t) => t,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io_err(format!("reading {}", path.display()))(e)),
    };
    let corrupt = |why: &str| QueueError::CorruptMeta {
        path: path.to_owned(),
        why: why.to_owned(),
    };
    let text = std::str::from_utf8(&text).map_err(|_| corrupt("not UTF-8"))?;
    let lines: Vec<&str> = text.lines().collect();
    if lines.len() != 4 || lines[0] != META_MAGIC {
        return Err(corrupt("unexpected layout"));
    }
    let num = |line: &str, key: &str| -> Result<u64, QueueError> {
        line.strip_prefix(key)
            .and_then(|v| v.strip_prefix(' '))
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| corrupt(&format!("bad {key:?} line")))
    };
    let meta = Meta {
        acked: num(lines[1], "acked")?,
        next: num(lines[2], "next")?,
    };
    let body_len = lines[0].len() + lines[1].len() + lines[2].len() + 3;
    let crc = lines[3]
        .strip_prefix("crc ")
        .and_then(|c| u32::from_str_radix(c, 16).ok())
        .ok_or_else(|| corrupt("bad crc line"))?;
    if CRC.checksum(&text.as_bytes()[..body_len]) != crc {
        return Err(corrupt("checksum mismatch"));
    }
    if meta.next == 0 || meta.acked >= meta.next {
        return Err(corrupt("acked is not below next"));
    }
    Ok(Some(meta))
}

impl DurableQueue {
    /// Opens (creating if needed) the queue in `dir` with default limits.
    pub fn open(dir: impl AsRef<Path>) -> Result<Self, QueueError> {
        Self::open_with(dir, QueueConfig::default())
    }

    /// Opens (creating if needed) the queue in `dir`, recovering from a
    /// crash at any point (see [`DurableQueue::recovery`]).
    pub fn open_with(dir: impl AsRef<Path>, cfg: QueueConfig) -> Result<Self, QueueError> {
        let min_segment = (HEADER + MAX_EVENT_BYTES) as u64;
        if cfg.segment_bytes < min_segment {
            return Err(QueueError::Config(format!(
                "segment_bytes must be at least {min_segment}"
            )));
        }
        if cfg.max_bytes < 2 * cfg.segment_bytes {
            return Err(QueueError::Config(
                "max_bytes must be at least twice segment_bytes".into(),
            ));
        }
        let dir = dir.as_ref().to_owned();
        fs::create_dir_all(&dir).map_err(io_err(format!("creating {}", dir.display())))?;
        let _ = fs::remove_file(dir.join(META_TMP));
        let meta = read_meta(&dir.join(META))?;
        let (acked, floor) = meta.map_or((0, 1), |m| (m.acked, m.next));

        let mut firsts = Vec::new();
        for entry in fs::read_dir(&dir).map_err(io_err(format!("listing {}", dir.display())))? {
            let entry = entry.map_err(io_err(format!("listing {}", dir.display())))?;
            if let Some(first) = entry.file_name().to_str().and_then(parse_segment_name) {
                firsts.push(first);
            }
        }
        firsts.sort_unstable();

        let mut recovery = Recovery::default();
        let mut segments = VecDeque::new();
        let mut index = VecDeque::new();
        let mut prev = 0u64;
        for (i, &first) in firsts.iter().enumerate() {
            let newest = i + 1 == firsts.len();
            let path = dir.join(segment_name(first));
            let bytes = fs::read(&path).map_err(io_err(format!("reading {}", path.display())))?;
            let (locs, valid) = scan(&bytes, first, prev, first);
            let mut len = bytes.len() as u64;
            if valid < len {
                if newest {
                    let f = OpenOptions::new()
                        .write(true)
                        .open(&path)
                        .map_err(io_err(format!("opening {}", path.display())))?;
                    f.set_len(valid)
                        .and_then(|()| f.sync_all())
                        .map_err(io_err(format!("truncating {}", path.display())))?;
                    recovery.torn_bytes = len - valid;
                    len = valid;
                } else {
                    recovery.corrupt.push((path.clone(), valid));
                }
            }
            let last_seq = locs.last().map(|l| l.seq);
            prev = last_seq.unwrap_or(prev);
            index.extend(locs.into_iter().filter(|l| l.seq > acked));
            segments.push_back(Segment {
                first_seq: first,
                path,
                len,
                last_seq,
            });
        }

        let newest_first = firsts.last().copied().unwrap_or(0);
        let next_seq = (acked + 1).max(floor).max(newest_first).max(prev + 1);
        let mut q = Self {
            dir,
            cfg,
            segments,
            index,
            active: None,
            acked,
            next_seq,
            disk_bytes: 0,
            dropped: 0,
            unreported: 0,
            recovery,
            broken: None,
        };
        q.disk_bytes = q.segments.iter().map(|s| s.len).sum();
        q.recovery.reclaimed = q.reclaim()?;
        if let Some(s) = q.segments.back() {
            let f = OpenOptions::new()
                .append(true)
                .open(&s.path)
                .map_err(io_err(format!("opening {}", s.path.display())))?;
            q.active = Some(f);
        }
        Ok(q)
    }

    /// What the last open found and repaired.
    pub fn recovery(&self) -> &Recovery {
        &self.recovery
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The sequence number the next event will get.
    pub fn next_seq(&self) -> u64 {
        self.next_seq
    }

    /// The ack watermark.
    pub fn acked(&self) -> u64 {
        self.acked
    }

    /// Unacknowledged events (the heartbeat's `queue_depth`).
    pub fn len(&self) -> usize {
        self.index.len()
    }

    /// Nothing unacknowledged.
    pub fn is_empty(&self) -> bool {
        self.index.is_empty()
    }

    /// Bytes the segment files occupy.
    pub fn disk_bytes(&self) -> u64 {
        self.disk_bytes
    }

    /// Events refused by a full queue since open (the heartbeat's
    /// `dropped_events`).
    pub fn dropped(&self) -> u64 {
        self.dropped
    }

    /// Queues one event durably and returns its sequence number.
    pub fn push(&mut self, event: NewEvent) -> Result<u64, QueueError> {
        self.push_many(vec![event]).map(|r| *r.end())
    }

    /// Queues several events with a single `fsync`; returns their sequence
    /// numbers. All or nothing as far as the return value goes: on error
    /// none is reported queued (a prefix may survive on disk and will be
    /// sent, which is harmless).
    pub fn push_many(&mut self, events: Vec<NewEvent>) -> Result<RangeInclusive<u64>, QueueError> {
        if events.is_empty() {
            return Err(QueueError::Config(
                "push_many needs at least one event".into(),
            ));
        }
        // A pending drop count goes first, so the gateway sees it in order.
        let pending = self.unreported;
        let n_events = events.len() as u64;
        let mut all = Vec::with_capacity(events.len() + 1);
        if pending > 0 {
            all.push(NewEvent::new(
                events[0].at,
                EventKind::EventsDropped { count: pending },
            ));
        }
        all.extend(events);

        let mut records = Vec::with_capacity(all.len());
        let mut total = 0u64;
        for (i, e) in all.into_iter().enumerate() {
            let seq = self.next_seq + i as u64;
            if seq > MAX_SEQ {
                return Err(QueueError::SeqExhausted);
            }
            let event = e.with_seq(seq);
            event.validate()?;
            let payload = serde_json::to_vec(&event)
                .map_err(|e| QueueError::Config(format!("cannot encode event: {e}")))?;
            if payload.len() > MAX_EVENT_BYTES {
                return Err(QueueError::TooLarge(payload.len()));
            }
            total += (HEADER + payload.len()) as u64;
            records.push((seq, payload));
        }
        if self.disk_bytes + total > self.cfg.max_bytes {
            self.dropped += n_events;
            self.unreported += n_events;
            return Err(QueueError::Full {
                used: self.disk_bytes,
                limit: self.cfg.max_bytes,
            });
        }

        let last = match self.append(&records) {
            Ok(last) => last,
            Err(e) => {
                // Memory may no longer match the disk (a prefix may have been
                // written): read the directory again, as after a crash.
                self.reload();
                return Err(e);
            }
        };
        self.next_seq = last + 1;
        self.unreported -= pending;
        Ok(last + 1 - n_events..=last)
    }

    /// Writes the records (rolling segments as needed), syncs, and indexes
    /// them; returns the last seq.
    fn append(&mut self, records: &[(u64, Vec<u8>)]) -> Result<u64, QueueError> {
        if let Some(e) = &self.broken {
            return Err(QueueError::Io {
                context: format!("event queue must be reopened after an earlier failure ({e})"),
                source: io::Error::other("queue state unknown"),
            });
        }
        let mut buf = Vec::new();
        let mut locs = Vec::with_capacity(records.len());
        for (seq, payload) in records {
            let rec_len = (HEADER + payload.len()) as u64;
            let seg_len = self.segments.back().map(|s| s.len + buf.len() as u64);
            if seg_len.is_none_or(|l| l > 0 && l + rec_len > self.cfg.segment_bytes) {
                self.write_active(&mut buf)?;
                self.roll(*seq)?;
            }
            let seg = self.segments.back_mut().expect("roll created a segment");
            locs.push(Loc {
                seq: *seq,
                segment: seg.first_seq,
                offset: seg.len + buf.len() as u64,
                len: payload.len() as u32,
            });
            seg.last_seq = Some(*seq);
            encode_record(*seq, payload, &mut buf);
        }
        self.write_active(&mut buf)?;
        if let Some(f) = &self.active {
            f.sync_data().map_err(io_err("syncing the event queue"))?;
        }
        let last = locs.last().map(|l| l.seq).expect("at least one record");
        self.index.extend(locs);
        Ok(last)
    }

    fn reload(&mut self) {
        match Self::open_with(&self.dir, self.cfg) {
            Ok(mut fresh) => {
                fresh.dropped = self.dropped;
                fresh.unreported = self.unreported;
                *self = fresh;
            }
            Err(e) => self.broken = Some(e.to_string()),
        }
    }

    /// Appends `buf` to the active segment (no sync); on failure cuts the
    /// segment back so no half record stays in the middle of the log.
    fn write_active(&mut self, buf: &mut Vec<u8>) -> Result<(), QueueError> {
        if buf.is_empty() {
            return Ok(());
        }
        let (Some(f), Some(seg)) = (self.active.as_mut(), self.segments.back_mut()) else {
            return Err(QueueError::Config("no active segment".into()));
        };
        if let Err(e) = f.write_all(buf) {
            let _ = f.set_len(seg.len);
            return Err(io_err(format!("appending to {}", seg.path.display()))(e));
        }
        seg.len += buf.len() as u64;
        self.disk_bytes += buf.len() as u64;
        buf.clear();
        Ok(())
    }

    /// Closes the active segment and starts a new one for `first_seq`.
    fn roll(&mut self, first_seq: u64) -> Result<(), QueueError> {
        if let Some(f) = self.active.take() {
            f.sync_data().map_err(io_err("syncing the event queue"))?;
        }
        let path = self.dir.join(segment_name(first_seq));
        let f = OpenOptions::new()
            .create(true)
            .truncate(false)
            .append(true)
            .open(&path)
            .map_err(io_err(format!("creating {}", path.display())))?;
        let len = f
            .metadata()
            .map_err(io_err(format!("reading {}", path.display())))?
            .len();
        sync_dir(&self.dir)?;
        self.disk_bytes += len;
        self.segments.push_back(Segment {
            first_seq,
            path,
            len,
            last_seq: None,
        });
        self.active = Some(f);
        Ok(())
    }

    /// The oldest unacknowledged events, in order, at most `limit`.
    pub fn unacked(&self, limit: usize) -> Result<Vec<PumpEvent>, QueueError> {
        let mut out = Vec::with_capacity(limit.min(self.index.len()));
        let mut open: Option<(u64, File, PathBuf)> = None;
        for loc in self.index.iter().take(limit) {
            if open.as_ref().is_none_or(|(s, _, _)| *s != loc.segment) {
                let path = self.dir.join(segment_name(loc.segment));
                let f = File::open(&path).map_err(io_err(format!("opening {}", path.display())))?;
                open = Some((loc.segment, f, path));
            }
            let (_, f, path) = open.as_mut().expect("opened above");
            let mut rec = vec![0u8; HEADER + loc.len as usize];
            f.seek(SeekFrom::Start(loc.offset))
                .and_then(|_| f.read_exact(&mut rec))
                .map_err(io_err(format!("reading {}", path.display())))?;
            let corrupt = |why: String| QueueError::Corrupt {
                seq: loc.seq,
                path: path.clone(),
                why,
            };
            let crc = u32::from_be_bytes([rec[4], rec[5], rec[6], rec[7]]);
            if record_crc(loc.len, loc.seq, &rec[HEADER..]) != crc {
                return Err(corrupt("checksum mismatch".into()));
            }
            let event: PumpEvent =
                serde_json::from_slice(&rec[HEADER..]).map_err(|e| corrupt(e.to_string()))?;
            if event.seq != loc.seq {
                return Err(corrupt(format!("payload says seq {}", event.seq)));
            }
            out.push(event);
        }
        Ok(out)
    }

    /// Records durably that the gateway stored every event up to `up_to`,
    /// then reclaims fully acknowledged segments. An ack at or below the
    /// watermark changes nothing.
    pub fn ack(&mut self, up_to: u64) -> Result<(), QueueError> {
        if up_to <= self.acked {
            return Ok(());
        }
        if up_to >= self.next_seq {
            return Err(QueueError::AckBeyondPushed {
                up_to,
                highest: self.next_seq - 1,
            });
        }
        self.write_meta(up_to)?;
        self.acked = up_to;
        while self.index.front().is_some_and(|l| l.seq <= up_to) {
            self.index.pop_front();
        }
        self.reclaim()?;
        Ok(())
    }

    fn write_meta(&self, acked: u64) -> Result<(), QueueError> {
        let tmp = self.dir.join(META_TMP);
        let text = meta_text(&Meta {
            acked,
            next: self.next_seq,
        });
        let mut f = File::create(&tmp).map_err(io_err(format!("creating {}", tmp.display())))?;
        f.write_all(text.as_bytes())
            .and_then(|()| f.sync_all())
            .map_err(io_err(format!("writing {}", tmp.display())))?;
        fs::rename(&tmp, self.dir.join(META)).map_err(io_err(format!("replacing {}", META)))?;
        sync_dir(&self.dir)
    }

    /// Deletes fully acknowledged segments except the newest.
    fn reclaim(&mut self) -> Result<usize, QueueError> {
        let mut n = 0;
        while self.segments.len() > 1 {
            let s = &self.segments[0];
            if s.last_seq.is_some_and(|l| l > self.acked) {
                break;
            }
            fs::remove_file(&s.path).map_err(io_err(format!("deleting {}", s.path.display())))?;
            self.disk_bytes -= s.len;
            self.segments.pop_front();
            n += 1;
        }
        if n > 0 {
            sync_dir(&self.dir)?;
        }
        Ok(n)
    }
}

#[cfg(test)]
mod tests;
