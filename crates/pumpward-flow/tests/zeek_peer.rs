//! The real peer: Zeek itself turns the bacnet capture into a conn.log (TSV
//! and JSON), and Pumpward reads both and agrees with its own reading of the
//! capture, this time with real timestamps.
//!
//! Zeek is not packaged in Debian (bookworm, trixie or sid: only `zkg`), and
//! the Zeek project's packages are not reachable from the machines this
//! project is built on, so it cannot be on the apt-get line in `.ci/run`.
//! The test is therefore marked ignored with that reason, which every test
//! run prints (a skip inside a passing test would not show: the harness
//! hides a passing test's output). `scripts/test` runs it whenever a `zeek`
//! binary is installed; run by hand, it fails if none is found.

use std::path::Path;
use std::process::Command;

use pumpward_flow::pcap::{read_capture, AggregatorConfig};
use pumpward_flow::zeek::ConnLogReader;
use pumpward_flow::Flow;

fn zeek() -> Option<String> {
    ["zeek", "/opt/zeek/bin/zeek", "/usr/local/zeek/bin/zeek"]
        .into_iter()
        .find(|z| {
            Command::new(z)
                .arg("--version")
                .output()
                .is_ok_and(|o| o.status.success())
        })
        .map(str::to_owned)
}

fn key(f: &Flow) -> impl Ord + std::fmt::Debug {
    (
        f.start_us,
        f.orig_addr,
        f.orig_port,
        f.resp_addr,
        f.resp_port,
        f.transport,
        f.orig_packets,
        f.orig_bytes,
        f.resp_packets,
        f.resp_bytes,
    )
}

#[test]
#[ignore = "needs Zeek, which Debian does not package (scripts/test runs it where zeek is installed)"]
fn zeek_conn_logs_of_the_bacnet_capture_read_as_pumpward_reads_the_capture() {
    let zeek = zeek().expect(
        "no zeek binary (zeek, /opt/zeek/bin/zeek, /usr/local/zeek/bin/zeek): install Zeek from the Zeek project",
    );
    let pcap = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/bacnet/bacnet_example.pcap");
    let ours = read_capture(
        std::io::BufReader::new(std::fs::File::open(&pcap).unwrap()),
        AggregatorConfig::default(),
    );
    assert_eq!(ours.error, None);
    let mut expected: Vec<_> = ours.flows.iter().map(key).collect();
    expected.sort();

    for json in [false, true] {
        let dir = tempfile::tempdir().unwrap();
        let status = Command::new(&zeek)
            .current_dir(dir.path())
            .arg("-C")
            .arg("-r")
            .arg(&pcap)
            .arg(format!(
                "LogAscii::use_json={}",
                if json { "T" } else { "F" }
            ))
            .status()
            .unwrap();
        assert!(status.success(), "zeek exited with {status}");
        let log = std::fs::read(dir.path().join("conn.log")).unwrap();
        let mut reader = ConnLogReader::new(log.as_slice());
        let flows: Vec<Flow> = reader.by_ref().map(|r| r.unwrap()).collect();
        assert_eq!(reader.counts().total_skipped(), 0);
        let mut got: Vec<_> = flows.iter().map(key).collect();
        got.sort();
        assert_eq!(got, expected, "json={json}");
    }
}
