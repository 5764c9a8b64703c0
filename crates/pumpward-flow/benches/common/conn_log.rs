//! A realistic Zeek `conn.log` (TSV, mac-logging on), generated for benches.
//!
//! Shared by path between `pumpward-flow/benches/ingest.rs` (parsing alone)
//! and `pumpward-net/benches/conn_log.rs` (parsing and evaluating), so that
//! both measure the same kind of line: the caller chooses who talks to whom
//! ([`Line`]), the generator writes everything else as Zeek does
//! (uid, duration, bytes, packets, connection state).

// Each including bench uses a different part of this file.
#![allow(dead_code)]

use std::fmt::Write;
use std::net::IpAddr;

/// A small deterministic generator (no rand dependency for a bench).
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// Who talked to whom, when: the part of a conn.log line the caller picks.
pub struct Line {
    pub ts_us: u64,
    pub orig: IpAddr,
    pub orig_p: u16,
    pub resp: IpAddr,
    pub resp_p: u16,
    /// `tcp`, `udp` or `icmp`.
    pub proto: &'static str,
    /// Zeek's `service` (`-` when not recognised).
    pub service: &'static str,
    pub orig_mac: [u8; 6],
    pub resp_mac: [u8; 6],
}

/// The header Zeek writes with mac-logging on (23 columns).
pub const HEADER: &str = concat!(
    "#separator \\x09\n#set_separator\t,\n#empty_field\t(empty)\n#unset_field\t-\n#path\tconn\n#open\t2026-11-26-10-00-00\n",
    "#fields\tts\tuid\tid.orig_h\tid.orig_p\tid.resp_h\tid.resp_p\tproto\tservice\tduration\torig_bytes\tresp_bytes\tconn_state\tlocal_orig\tlocal_resp\tmissed_bytes\thistory\torig_pkts\torig_ip_bytes\tresp_pkts\tresp_ip_bytes\ttunnel_parents\torig_l2_addr\tresp_l2_addr\n",
    "#types\ttime\tstring\taddr\tport\taddr\tport\tenum\tstring\tinterval\tcount\tcount\tstring\tbool\tbool\tcount\tstring\tcount\tcount\tcount\tcount\tset[string]\tstring\tstring\n",
);

/// `lines` records after [`HEADER`]; `line(rng, i)` picks the endpoints of
/// record `i`. Established, unanswered, rejected and midstream connections;
/// unset durations for unanswered ones.
pub fn conn_log(lines: usize, seed: u64, mut line: impl FnMut(&mut Rng, usize) -> Line) -> Vec<u8> {
    let mut s = String::with_capacity(lines * 200);
    s.push_str(HEADER);
    let mut r = Rng(seed);
    for i in 0..lines {
        let l = line(&mut r, i);
        let state = ["SF", "S0", "REJ", "SF", "SF", "OTH"][r.below(6) as usize];
        let (op, rp) = (1 + r.below(40), r.below(40));
        let (ob, rb) = (op * (40 + r.below(900)), rp * (40 + r.below(1400)));
        let dur = if state == "S0" {
            "-".to_string()
        } else {
            format!("{}.{:06}", r.below(30), r.below(1_000_000))
        };
        let [a, b, c, d, e, f] = l.orig_mac;
        let [g, h, j, k, m, n] = l.resp_mac;
        let _ = writeln!(
            s,
            "{}.{:06}\tC{:017x}\t{}\t{}\t{}\t{}\t{}\t{}\t{dur}\t{}\t{}\t{state}\tT\tT\t0\tShADadFf\t{op}\t{ob}\t{rp}\t{rb}\t(empty)\t{a:02x}:{b:02x}:{c:02x}:{d:02x}:{e:02x}:{f:02x}\t{g:02x}:{h:02x}:{j:02x}:{k:02x}:{m:02x}:{n:02x}",
            l.ts_us / 1_000_000,
            l.ts_us % 1_000_000,
            i as u64 * 0x9e37_79b9 + r.below(1 << 20),
            l.orig,
            l.orig_p,
            l.resp,
            l.resp_p,
            l.proto,
            l.service,
            ob.saturating_sub(op * 40),
            rb.saturating_sub(rp * 40),
        );
    }
    s.into_bytes()
}
