use super::*;
use crate::message::{AlarmKind, EventKind};
use proptest::prelude::*;
use time::macros::datetime;

fn ev(i: u64) -> NewEvent {
    let mut e = NewEvent::new(
        datetime!(2025-05-14 09:30:00 UTC) + time::Duration::seconds(i as i64),
        EventKind::Alarm {
            alarm: AlarmKind::Occlusion,
            infusion_id: Some(format!("inf-{i}")),
        },
    );
    e.detail.insert("n".into(), i.to_string());
    e
}

fn small() -> QueueConfig {
    QueueConfig {
        max_bytes: 64 * 1024,
        segment_bytes: 16 * 1024,
    }
}

fn seqs(q: &DurableQueue) -> Vec<u64> {
    q.unacked(usize::MAX)
        .unwrap()
        .iter()
        .map(|e| e.seq)
        .collect()
}

fn segment_files(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.file_name().unwrap().to_str().unwrap().starts_with("seg-"))
        .collect();
    v.sort();
    v
}

#[test]
fn push_unacked_ack_and_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let mut q = DurableQueue::open(dir.path()).unwrap();
    assert_eq!(q.next_seq(), 1);
    for i in 1..=5 {
        assert_eq!(q.push(ev(i)).unwrap(), i);
    }
    let got = q.unacked(3).unwrap();
    assert_eq!(got.iter().map(|e| e.seq).collect::<Vec<_>>(), [1, 2, 3]);
    assert_eq!(got[1].detail["n"], "2");
    drop(q);

    let mut q = DurableQueue::open(dir.path()).unwrap();
    assert_eq!(q.recovery(), &Recovery::default());
    assert_eq!(seqs(&q), [1, 2, 3, 4, 5]);
    q.ack(3).unwrap();
    assert_eq!(seqs(&q), [4, 5]);
    q.ack(2).unwrap(); // below the watermark: nothing happens
    assert_eq!(q.acked(), 3);
    assert!(matches!(
        q.ack(6),
        Err(QueueError::AckBeyondPushed {
            up_to: 6,
            highest: 5
        })
    ));
    drop(q);

    let mut q = DurableQueue::open(dir.path()).unwrap();
    assert_eq!((q.acked(), q.len(), q.next_seq()), (3, 2, 6));
    assert_eq!(q.push(ev(6)).unwrap(), 6);
    assert_eq!(seqs(&q), [4, 5, 6]);
}

#[test]
fn seq_never_goes_backwards_even_when_everything_is_reclaimed() {
    let dir = tempfile::tempdir().unwrap();
    let mut q = DurableQueue::open_with(dir.path(), small()).unwrap();
    for i in 1..=300 {
        q.push(ev(i)).unwrap();
    }
    assert!(segment_files(dir.path()).len() >= 3);
    q.ack(300).unwrap();
    assert!(q.is_empty());
    assert_eq!(
        segment_files(dir.path()).len(),
        1,
        "only the newest segment stays"
    );
    drop(q);

    // Even with the last segment gone too, meta keeps the counter.
    for f in segment_files(dir.path()) {
        fs::remove_file(f).unwrap();
    }
    let mut q = DurableQueue::open_with(dir.path(), small()).unwrap();
    assert_eq!(q.next_seq(), 301);
    assert_eq!(q.push(ev(301)).unwrap(), 301);
    drop(q);
    // And without meta, the segment name and records keep it.
    fs::remove_file(dir.path().join(META)).unwrap();
    let q = DurableQueue::open_with(dir.path(), small()).unwrap();
    assert_eq!(q.next_seq(), 302);
}

#[test]
fn segments_are_reclaimed_and_space_returns() {
    let dir = tempfile::tempdir().unwrap();
    let mut q = DurableQueue::open_with(dir.path(), small()).unwrap();
    let mut n = 0;
    let err = loop {
        n += 1;
        match q.push(ev(n)) {
            Ok(_) => {}
            Err(e) => break e,
        }
    };
    assert!(
        matches!(err, QueueError::Full { limit: 65536, .. }),
        "{err}"
    );
    assert!(q.disk_bytes() <= 65536);
    let full_at = n - 1;
    assert!(matches!(q.push(ev(0)), Err(QueueError::Full { .. })));
    assert_eq!(q.dropped(), 2);

    q.ack(full_at / 2).unwrap();
    let seq = q.push(ev(1)).unwrap();
    assert_eq!(seq, full_at + 2, "an events_dropped record went first");
    let tail = q.unacked(usize::MAX).unwrap();
    let marker = &tail[tail.len() - 2];
    assert_eq!(marker.seq, full_at + 1);
    assert_eq!(marker.kind, EventKind::EventsDropped { count: 2 });
    assert_eq!(q.dropped(), 2, "the total since open stays");
    q.push(ev(2)).unwrap();
    assert_eq!(
        q.unacked(usize::MAX)
            .unwrap()
            .iter()
            .filter(|e| matches!(e.kind, EventKind::EventsDropped { .. }))
            .count(),
        1
    );
}

#[test]
fn invalid_or_huge_events_are_refused_before_numbering() {
    let dir = tempfile::tempdir().unwrap();
    let mut q = DurableQueue::open(dir.path()).unwrap();
    let bad = NewEvent::new(
        datetime!(2025-05-14 09:30:00 UTC),
        EventKind::CareAreaChanged {
            from: None,
            to: String::new(),
        },
    );
    assert!(matches!(q.push(bad), Err(QueueError::Invalid(v)) if v.path == "to"));
    assert_eq!(q.next_seq(), 1);
    assert!(matches!(
        q.push_many(Vec::new()),
        Err(QueueError::Config(_))
    ));
    assert_eq!(q.push(ev(1)).unwrap(), 1);
}

#[test]
fn push_many_is_one_sync_and_crosses_segments() {
    let dir = tempfile::tempdir().unwrap();
    let mut q = DurableQueue::open_with(dir.path(), small()).unwrap();
    let r = q.push_many((1..=200).map(ev).collect()).unwrap();
    assert_eq!(r, 1..=200);
    assert!(segment_files(dir.path()).len() > 1);
    // Segments filled inside one push_many are not reclaimed early.
    q.ack(1).unwrap();
    assert_eq!(seqs(&q), (2..=200).collect::<Vec<_>>());
    drop(q);
    let q = DurableQueue::open_with(dir.path(), small()).unwrap();
    assert_eq!(seqs(&q), (2..=200).collect::<Vec<_>>());
}

#[test]
fn torn_tail_at_every_byte_of_the_last_record() {
    let src = tempfile::tempdir().unwrap();
    let mut q = DurableQueue::open(src.path()).unwrap();
    for i in 1..=3 {
        q.push(ev(i)).unwrap();
    }
    drop(q);
    let seg = segment_files(src.path()).pop().unwrap();
    let full = fs::read(&seg).unwrap();
    let last_len = {
        let q = DurableQueue::open(src.path()).unwrap();
        (HEADER as u32 + q.index[2].len) as usize
    };
    let start = full.len() - last_len;
    for cut in start..full.len() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(seg.file_name().unwrap());
        fs::write(&path, &full[..cut]).unwrap();
        let mut q = DurableQueue::open(dir.path()).unwrap();
        assert_eq!(seqs(&q), [1, 2], "cut at {cut}");
        assert_eq!(q.recovery().torn_bytes, (cut - start) as u64);
        assert_eq!(fs::metadata(&path).unwrap().len(), start as u64);
        // The number of the torn record (its push never returned) is reused.
        assert_eq!(q.push(ev(9)).unwrap(), 3);
        drop(q);
        let q = DurableQueue::open(dir.path()).unwrap();
        assert_eq!(seqs(&q), [1, 2, 3]);
        assert_eq!(q.unacked(3).unwrap()[2].detail["n"], "9");
    }
}

#[test]
fn flipped_bits_and_appended_garbage_are_cut() {
    let dir = tempfile::tempdir().unwrap();
    let mut q = DurableQueue::open(dir.path()).unwrap();
    for i in 1..=3 {
        q.push(ev(i)).unwrap();
    }
    drop(q);
    let seg = segment_files(dir.path()).pop().unwrap();
    let clean = fs::read(&seg).unwrap();

    let mut garbage = clean.clone();
    garbage.extend_from_slice(b"\x00\x00\x00\x10garbage garbage garbage");
    fs::write(&seg, &garbage).unwrap();
    let q = DurableQueue::open(dir.path()).unwrap();
    assert_eq!(seqs(&q), [1, 2, 3]);
    assert_eq!(
        q.recovery().torn_bytes,
        (garbage.len() - clean.len()) as u64
    );
    drop(q);
    assert_eq!(fs::read(&seg).unwrap(), clean);

    let mut flipped = clean.clone();
    let n = flipped.len();
    flipped[n - 5] ^= 0x20;
    fs::write(&seg, &flipped).unwrap();
    let q = DurableQueue::open(dir.path()).unwrap();
    assert_eq!(seqs(&q), [1, 2]);
}

#[test]
fn corrupt_meta_is_reported_not_guessed() {
    let dir = tempfile::tempdir().unwrap();
    let mut q = DurableQueue::open(dir.path()).unwrap();
    q.push(ev(1)).unwrap();
    q.push(ev(2)).unwrap();
    q.ack(1).unwrap();
    drop(q);
    let meta = dir.path().join(META);
    let text = fs::read_to_string(&meta).unwrap();
    fs::write(&meta, text.replace("acked 1", "acked 2")).unwrap();
    assert!(matches!(
        DurableQueue::open(dir.path()),
        Err(QueueError::CorruptMeta { .. })
    ));
    // A leftover temporary file from a crash mid-ack is ignored.
    fs::write(&meta, &text).unwrap();
    fs::write(dir.path().join(META_TMP), b"half").unwrap();
    let q = DurableQueue::open(dir.path()).unwrap();
    assert_eq!(seqs(&q), [2]);
}

#[test]
fn crash_between_meta_and_reclaim_is_finished_at_open() {
    let dir = tempfile::tempdir().unwrap();
    let mut q = DurableQueue::open_with(dir.path(), small()).unwrap();
    for i in 1..=300 {
        q.push(ev(i)).unwrap();
    }
    drop(q);
    let before = segment_files(dir.path());
    // Simulate the ack's meta write without its reclaim.
    let q = DurableQueue::open_with(dir.path(), small()).unwrap();
    q.write_meta(300).unwrap();
    drop(q);
    assert_eq!(segment_files(dir.path()), before);
    let q = DurableQueue::open_with(dir.path(), small()).unwrap();
    assert_eq!(q.recovery().reclaimed, before.len() - 1);
    assert!(q.is_empty());
    assert_eq!(q.next_seq(), 301);
}

#[test]
fn bad_config_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let too_small = QueueConfig {
        max_bytes: 1 << 20,
        segment_bytes: 100,
    };
    assert!(matches!(
        DurableQueue::open_with(dir.path(), too_small),
        Err(QueueError::Config(_))
    ));
    let inverted = QueueConfig {
        max_bytes: 1 << 20,
        segment_bytes: 1 << 20,
    };
    assert!(matches!(
        DurableQueue::open_with(dir.path(), inverted),
        Err(QueueError::Config(_))
    ));
}

#[test]
fn unrelated_files_are_left_alone() {
    let dir = tempfile::tempdir().unwrap();
    fs::write(dir.path().join("README"), b"x").unwrap();
    fs::write(dir.path().join("seg-1.log"), b"not ours").unwrap();
    let mut q = DurableQueue::open(dir.path()).unwrap();
    q.push(ev(1)).unwrap();
    q.ack(1).unwrap();
    assert!(dir.path().join("README").exists() && dir.path().join("seg-1.log").exists());
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    /// Random pushes, acks, reopens and a crash that cuts the newest
    /// segment anywhere: a returned push is never lost unless acked, the
    /// counter never goes backwards, and unacked() is in order.
    #[test]
    fn model(ops in proptest::collection::vec((0u8..10, 0u64..40), 1..60)) {
        let dir = tempfile::tempdir().unwrap();
        let cfg = QueueConfig { max_bytes: 48 * 1024, segment_bytes: 12 * 1024 };
        let mut q = DurableQueue::open_with(dir.path(), cfg).unwrap();
        let mut model: Vec<u64> = Vec::new(); // unacked seqs whose push returned
        let mut highest = 0u64;
        for (op, arg) in ops {
            match op {
                0..=4 => {
                    match q.push_many((0..=arg % 8).map(ev).collect()) {
                        Ok(r) => {
                            prop_assert!(*r.start() > highest);
                            // A drop marker may precede the range.
                            let first = if *r.start() > highest + 1 { highest + 1 } else { *r.start() };
                            model.extend(first..=*r.end());
                            highest = *r.end();
                        }
                        Err(QueueError::Full { .. }) => {}
                        Err(e) => return Err(TestCaseError::fail(e.to_string())),
                    }
                }
                5 | 6 => {
                    if let Some(&s) = model.get(arg as usize % (model.len() + 1)) {
                        q.ack(s).unwrap();
                        model.retain(|&m| m > s);
                    }
                }
                7 => {
                    drop(q);
                    q = DurableQueue::open_with(dir.path(), cfg).unwrap();
                }
                _ => {
                    // Crash mid-append: garbage or a partial record at the end.
                    drop(q);
                    if let Some(seg) = segment_files(dir.path()).pop() {
                        let mut f = OpenOptions::new().append(true).open(&seg).unwrap();
                        let junk: Vec<u8> = (0..arg).map(|i| (i * 37) as u8).collect();
                        f.write_all(&junk).unwrap();
                    }
                    q = DurableQueue::open_with(dir.path(), cfg).unwrap();
                }
            }
            prop_assert_eq!(seqs(&q), model.clone());
            prop_assert!(q.next_seq() > highest);
            prop_assert!(q.disk_bytes() <= cfg.max_bytes);
        }
    }
}

/// The child side of `sigkill_while_pushing`: pushes and acks until killed,
/// printing what returned.
#[test]
#[ignore = "run by sigkill_while_pushing in a child process"]
fn sigkill_child() {
    let Some(dir) = std::env::var_os("PUMPWARD_QUEUE_KILL_DIR") else {
        return;
    };
    let mut q = DurableQueue::open_with(&dir, small()).unwrap();
    let mut out = std::io::stdout();
    for i in 0.. {
        let seq = q.push(ev(i)).unwrap();
        writeln!(out, "pushed {seq}").unwrap();
        if i % 40 == 39 {
            let up_to = seq - 20;
            q.ack(up_to).unwrap();
            writeln!(out, "acked {up_to}").unwrap();
        }
        out.flush().unwrap();
    }
}

/// A real SIGKILL at an arbitrary moment: everything whose push returned is
/// still there (or acknowledged), and the counter continues past it.
#[test]
fn sigkill_while_pushing() {
    use std::io::{BufRead, BufReader};
    use std::process::{Command, Stdio};
    for round in 0..3u64 {
        let dir = tempfile::tempdir().unwrap();
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args([
                "queue::tests::sigkill_child",
                "--exact",
                "--ignored",
                "--nocapture",
                "--test-threads=1",
            ])
            .env("PUMPWARD_QUEUE_KILL_DIR", dir.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let (mut pushed, mut acked) = (Vec::new(), 0);
        let stop_after = 150 + round * 97;
        while let Some(Ok(line)) = lines.next() {
            if let Some(s) = line.strip_prefix("pushed ") {
                pushed.push(s.parse::<u64>().unwrap());
            } else if let Some(s) = line.strip_prefix("acked ") {
                acked = s.parse().unwrap();
            }
            if pushed.len() as u64 >= stop_after {
                break;
            }
        }
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        assert!(pushed.len() as u64 >= stop_after, "child did not run");

        let q = DurableQueue::open_with(dir.path(), small()).unwrap();
        assert!(q.acked() >= acked);
        let present: std::collections::BTreeSet<u64> = seqs(&q).into_iter().collect();
        for s in &pushed {
            assert!(
                *s <= q.acked() || present.contains(s),
                "round {round}: seq {s} lost"
            );
        }
        assert!(q.next_seq() > *pushed.last().unwrap());
    }
}
