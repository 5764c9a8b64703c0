//! Durable queue throughput: one fsync per event (`push`) against one fsync
//! per batch (`push_many`). The queue is acknowledged as it fills, as the
//! agent does, so reclaiming segments is part of the cost.
//!
//! Run: `cargo bench -p pumpward-proto --bench queue`. Set `TMPDIR` to the
//! file system you want to measure (fsync cost is the whole story).

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use pumpward_proto::message::{AlarmKind, EventKind};
use pumpward_proto::queue::{DurableQueue, NewEvent, QueueConfig};
use time::macros::datetime;

fn event(i: u64) -> NewEvent {
    NewEvent::new(
        datetime!(2025-05-14 09:30:00 UTC),
        EventKind::Alarm {
            alarm: AlarmKind::Occlusion,
            infusion_id: Some(format!("inf-{i}")),
        },
    )
}

const CFG: QueueConfig = QueueConfig {
    max_bytes: 64 << 20,
    segment_bytes: 4 << 20,
};

fn keep_room(q: &mut DurableQueue) {
    if q.len() >= 50_000 {
        let up_to = q.next_seq() - 1;
        q.ack(up_to).expect("ack");
    }
}

fn bench(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut q = DurableQueue::open_with(dir.path(), CFG).expect("open");

    let mut g = c.benchmark_group("durable_queue");
    g.throughput(Throughput::Elements(1));
    g.bench_function("push (fsync per event)", |b| {
        let mut i = 0;
        b.iter(|| {
            i += 1;
            q.push(event(i)).expect("push");
            keep_room(&mut q);
        })
    });
    for n in [10u64, 100] {
        g.throughput(Throughput::Elements(n));
        g.bench_function(format!("push_many ({n} per fsync)"), |b| {
            b.iter_batched(
                || (0..n).map(event).collect::<Vec<_>>(),
                |events| {
                    q.push_many(events).expect("push_many");
                    keep_room(&mut q);
                },
                BatchSize::SmallInput,
            )
        });
    }
    g.throughput(Throughput::Elements(100));
    g.bench_function("unacked(100)", |b| {
        b.iter(|| q.unacked(100).expect("unacked"))
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
