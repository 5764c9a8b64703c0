use super::*;
use proptest::prelude::*;

fn small() -> QueueConfig {
    QueueConfig {
        max_pending_bytes: (HEADER + MAX_RECORD_BYTES) as u64 + 64,
        compact_bytes: 40,
    }
}

fn msg(i: usize) -> Vec<u8> {
    format!("message {i}").into_bytes()
}

#[test]
fn push_peek_ack_reopen() {
    let d = tempfile::tempdir().unwrap();
    let mut q = DiskQueue::open(d.path(), QueueConfig::default()).unwrap();
    for i in 0..5 {
        q.push(&msg(i)).unwrap();
    }
    assert_eq!(q.peek(2).unwrap(), vec![msg(0), msg(1)]);
    q.ack(2).unwrap();
    assert_eq!(q.len(), 3);
    drop(q);
    let mut q = DiskQueue::open(d.path(), QueueConfig::default()).unwrap();
    assert_eq!(q.peek(10).unwrap(), vec![msg(2), msg(3), msg(4)]);
    assert!(matches!(
        q.ack(4),
        Err(QueueError::AckBeyondQueued {
            acked: 4,
            queued: 3
        })
    ));
    q.ack(3).unwrap();
    assert!(q.is_empty());
    drop(q);
    assert!(DiskQueue::open(d.path(), QueueConfig::default())
        .unwrap()
        .is_empty());
}

#[test]
fn torn_tail_is_cut_and_earlier_records_survive() {
    let d = tempfile::tempdir().unwrap();
    let mut q = DiskQueue::open(d.path(), QueueConfig::default()).unwrap();
    q.push(&msg(0)).unwrap();
    q.push(&msg(1)).unwrap();
    let path = q.log_path.clone();
    drop(q);
    let full = fs::read(&path).unwrap();
    // Cut the second record anywhere inside it.
    fs::write(&path, &full[..full.len() - 3]).unwrap();
    let q = DiskQueue::open(d.path(), QueueConfig::default()).unwrap();
    assert_eq!(q.peek(10).unwrap(), vec![msg(0)]);
    assert_eq!(q.recovery().torn_bytes, (HEADER + msg(1).len() - 3) as u64);
    // A flipped payload byte fails the CRC the same way.
    drop(q);
    let mut bytes = fs::read(&path).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    fs::write(&path, &bytes).unwrap();
    let q = DiskQueue::open(d.path(), QueueConfig::default()).unwrap();
    assert!(q.is_empty());
}

#[test]
fn full_queue_refuses_at_once_and_takes_again_after_ack() {
    let d = tempfile::tempdir().unwrap();
    let cfg = small();
    let mut q = DiskQueue::open(d.path(), cfg).unwrap();
    let big = vec![b'x'; MAX_RECORD_BYTES];
    q.push(&big).unwrap();
    q.push(&[b'y'; 50]).unwrap();
    let before = q.pending_bytes();
    assert!(matches!(q.push(&[b'z'; 50]), Err(QueueError::Full { .. })));
    assert_eq!(q.pending_bytes(), before, "a refused push changes nothing");
    q.ack(1).unwrap();
    q.push(&[b'z'; 50]).unwrap();
    assert_eq!(q.peek(5).unwrap(), vec![vec![b'y'; 50], vec![b'z'; 50]]);
    assert!(matches!(q.push(&[]), Err(QueueError::BadSize(0))));
    assert!(matches!(
        q.push(&vec![0; MAX_RECORD_BYTES + 1]),
        Err(QueueError::BadSize(_))
    ));
}

#[test]
fn compaction_moves_the_tail_to_a_new_generation() {
    let d = tempfile::tempdir().unwrap();
    let mut q = DiskQueue::open(d.path(), small()).unwrap();
    for i in 0..10 {
        q.push(&msg(i)).unwrap();
    }
    q.ack(8).unwrap();
    assert_eq!(q.generation, 1);
    assert_eq!(q.disk_bytes(), q.pending_bytes());
    assert!(!d.path().join(log_name(0)).exists());
    q.push(&msg(10)).unwrap();
    drop(q);
    let q = DiskQueue::open(d.path(), small()).unwrap();
    assert_eq!(q.peek(10).unwrap(), vec![msg(8), msg(9), msg(10)]);
}

#[test]
fn crash_during_compaction_keeps_the_named_generation() {
    let d = tempfile::tempdir().unwrap();
    let mut q = DiskQueue::open(d.path(), QueueConfig::default()).unwrap();
    for i in 0..3 {
        q.push(&msg(i)).unwrap();
    }
    q.ack(1).unwrap();
    drop(q);
    // A half-written next generation, as if the process died mid-copy.
    fs::write(d.path().join(log_name(1)), b"garbage").unwrap();
    let q = DiskQueue::open(d.path(), QueueConfig::default()).unwrap();
    assert_eq!(q.recovery().stale_logs, 1);
    assert_eq!(q.peek(10).unwrap(), vec![msg(1), msg(2)]);
    assert!(!d.path().join(log_name(1)).exists());
}

#[test]
fn corrupt_state_is_refused_with_the_reason() {
    let d = tempfile::tempdir().unwrap();
    let mut q = DiskQueue::open(d.path(), QueueConfig::default()).unwrap();
    q.push(&msg(0)).unwrap();
    drop(q);
    let p = d.path().join(ACKED);
    let text = fs::read_to_string(&p)
        .unwrap()
        .replace("acked 0", "acked 9");
    fs::write(&p, text).unwrap();
    let e = DiskQueue::open(d.path(), QueueConfig::default()).unwrap_err();
    assert!(e.to_string().contains("checksum mismatch"), "{e}");
    fs::write(&p, state_text(0, 10_000)).unwrap();
    let e = DiskQueue::open(d.path(), QueueConfig::default()).unwrap_err();
    assert!(e.to_string().contains("beyond the end"), "{e}");
}

#[derive(Debug, Clone)]
enum Op {
    Push(usize),
    Ack(usize),
    Reopen,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (1usize..60).prop_map(Op::Push),
        2 => (0usize..4).prop_map(Op::Ack),
        1 => Just(Op::Reopen),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Any mix of pushes, acks and restarts delivers exactly the pushed,
    /// unacknowledged messages in order (a model: a VecDeque).
    #[test]
    fn matches_a_fifo_model(ops in proptest::collection::vec(op(), 1..60)) {
        let d = tempfile::tempdir().unwrap();
        let cfg = small();
        let mut q = DiskQueue::open(d.path(), cfg).unwrap();
        let mut model: VecDeque<Vec<u8>> = VecDeque::new();
        let mut counter = 0usize;
        for op in ops {
            match op {
                Op::Push(n) => {
                    counter += 1;
                    let m = vec![b'a' + (counter % 26) as u8; n];
                    q.push(&m).unwrap();
                    model.push_back(m);
                }
                Op::Ack(n) => {
                    let n = n.min(model.len());
                    q.ack(n).unwrap();
                    model.drain(..n);
                }
                Op::Reopen => {
                    drop(q);
                    q = DiskQueue::open(d.path(), cfg).unwrap();
                }
            }
            prop_assert_eq!(q.len(), model.len());
        }
        drop(q);
        let q = DiskQueue::open(d.path(), cfg).unwrap();
        prop_assert_eq!(q.peek(usize::MAX).unwrap(), Vec::from(model));
        prop_assert!(q.disk_bytes() <= 2 * cfg.max_pending_bytes + cfg.compact_bytes);
    }
}
