//! The generated nftables ruleset, loaded with `nft -f` into a router made
//! of network namespaces, lets allowed flows through and drops the others.
//!
//! Topology (unique names per run; removed by a Drop guard even when an
//! assertion fails):
//!
//! ```text
//!   pump 10.20.0.10, fd00:20::10 ── router ── pump server 10.21.0.10, fd00:21::10
//!                                   │    │       (listening on 443 and 22)
//!   guest 172.16.0.10, fd00:99::10 ─┘    └─ second pump 10.20.1.10, fd00:20:1::10
//!   (unzoned v6)                              (quarantined by MAC, then by address)
//!
//! The quarantine steps use IPv4, as the cases before them do.
//! ```
//!
//! Both address families are exercised: the ruleset's `ip` and `ip6` rules.
//!
//! Every connection is first shown to work with no ruleset loaded, so a
//! "dropped" afterwards is the ruleset's doing, not a broken topology.

mod common;

use std::path::Path;
use std::process::{Child, Command, Stdio};

use pumpward_net::export::nft;

struct Lab {
    prefix: String,
    namespaces: Vec<String>,
    listeners: Vec<Child>,
}

impl Lab {
    fn ns(&self, role: &str) -> String {
        format!("{}{role}", self.prefix)
    }

    fn exec(&self, role: &str, args: &[&str]) -> (bool, String) {
        let ns = self.ns(role);
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &ns]).args(args);
        common::run(&mut cmd)
    }

    fn must(&self, role: &str, args: &[&str]) {
        let (ok, out) = self.exec(role, args);
        assert!(ok, "{role}: {args:?}: {out}");
    }

    fn add_ns(&mut self, role: &str) -> Result<(), String> {
        let ns = self.ns(role);
        let (ok, out) = common::run(Command::new("ip").args(["netns", "add", &ns]));
        if !ok {
            return Err(out);
        }
        self.namespaces.push(ns);
        self.must(role, &["ip", "link", "set", "lo", "up"]);
        Ok(())
    }

    /// A host in its own subnet, cabled to the router.
    fn host(&mut self, role: &str, host_ip: &str, router_ip: &str, v6: (&str, &str)) {
        self.add_ns(role).expect("namespace");
        let (a, b) = (
            format!("{}r{role}", self.prefix),
            format!("{}h{role}", self.prefix),
        );
        let (ok, out) = common::run(
            Command::new("ip").args(["link", "add", &a, "type", "veth", "peer", "name", &b]),
        );
        assert!(ok, "veth: {out}");
        for (end, role2) in [(&a, "r"), (&b, role)] {
            let ns = self.ns(role2);
            let (ok, out) =
                common::run(Command::new("ip").args(["link", "set", end, "netns", &ns]));
            assert!(ok, "move {end}: {out}");
        }
        self.must(
            "r",
            &["ip", "addr", "add", &format!("{router_ip}/24"), "dev", &a],
        );
        self.must("r", &["ip", "link", "set", &a, "up"]);
        self.must(
            role,
            &["ip", "addr", "add", &format!("{host_ip}/24"), "dev", &b],
        );
        self.must(role, &["ip", "link", "set", &b, "up"]);
        self.must(role, &["ip", "route", "add", "default", "via", router_ip]);
        // IPv6 too, without duplicate address detection (it would delay
        // the addresses by seconds and the subnets are private to the lab).
        let (host6, router6) = v6;
        self.must(
            "r",
            &[
                "ip",
                "-6",
                "addr",
                "add",
                &format!("{router6}/64"),
                "dev",
                &a,
                "nodad",
            ],
        );
        self.must(
            role,
            &[
                "ip",
                "-6",
                "addr",
                "add",
                &format!("{host6}/64"),
                "dev",
                &b,
                "nodad",
            ],
        );
        self.must(
            role,
            &["ip", "-6", "route", "add", "default", "via", router6],
        );
    }

    /// The MAC of a host's interface towards the router.
    fn mac(&self, role: &str) -> String {
        let path = format!("/sys/class/net/{}h{role}/address", self.prefix);
        let (ok, out) = self.exec(role, &["cat", &path]);
        assert!(ok, "{path}: {out}");
        out.trim().to_owned()
    }

    /// A TCP listener on one address (so IPv4 and IPv6 listeners on the
    /// same port do not collide).
    fn listen(&mut self, role: &str, addr: &str, port: u16) {
        let ns = self.ns(role);
        let child = Command::new("ip")
            .args([
                "netns",
                "exec",
                &ns,
                "nc",
                "-l",
                "-k",
                addr,
                &port.to_string(),
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("nc");
        self.listeners.push(child);
    }

    /// Whether a TCP connection from `role` to `addr:port` is established
    /// within two seconds (a dropped SYN times out).
    fn connects(&self, role: &str, addr: &str, port: u16) -> bool {
        let script = format!("exec 3<>/dev/tcp/{addr}/{port}");
        self.exec(role, &["timeout", "2", "bash", "-c", &script]).0
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        for l in &mut self.listeners {
            let _ = l.kill();
            let _ = l.wait();
        }
        // Deleting a namespace removes its end of each veth pair, and with
        // it the peer.
        for ns in self.namespaces.iter().rev() {
            let _ = Command::new("ip").args(["netns", "del", ns]).status();
        }
    }
}

fn wait_for_listener(lab: &Lab, role: &str, addr: &str, port: u16) {
    for _ in 0..50 {
        let script = format!("exec 3<>/dev/tcp/{addr}/{port}");
        if lab.exec(role, &["timeout", "1", "bash", "-c", &script]).0 {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    panic!("listener {addr}:{port} never came up");
}

#[test]
fn generated_ruleset_passes_allowed_flows_and_drops_the_rest() {
    for tool in ["ip", "nft", "nc", "timeout", "bash", "sh"] {
        if common::find(tool).is_none() {
            return common::skip(
                "nftables in network namespaces",
                &format!("{tool} is not installed (Debian: iproute2, nftables, netcat-openbsd)"),
            );
        }
    }
    let mut lab = Lab {
        prefix: common::unique("pw"),
        namespaces: Vec::new(),
        listeners: Vec::new(),
    };
    if let Err(e) = lab.add_ns("r") {
        return common::skip(
            "nftables in network namespaces",
            &format!("cannot create a network namespace: {}", e.trim()),
        );
    }
    lab.must("r", &["sh", "-c", "echo 1 > /proc/sys/net/ipv4/ip_forward"]);
    lab.must(
        "r",
        &[
            "sh",
            "-c",
            "echo 1 > /proc/sys/net/ipv6/conf/all/forwarding",
        ],
    );
    lab.host(
        "p",
        "10.20.0.10",
        "10.20.0.1",
        ("fd00:20::10", "fd00:20::1"),
    );
    lab.host(
        "s",
        "10.21.0.10",
        "10.21.0.1",
        ("fd00:21::10", "fd00:21::1"),
    );
    // A second pump in the same zone, on its own segment.
    lab.host(
        "q",
        "10.20.1.10",
        "10.20.1.1",
        ("fd00:20:1::10", "fd00:20:1::1"),
    );
    // The starter's guest zone is IPv4 only; this v6 subnet is unzoned.
    lab.host(
        "g",
        "172.16.0.10",
        "172.16.0.1",
        ("fd00:99::10", "fd00:99::1"),
    );
    for (role, addr, port) in [
        ("s", "10.21.0.10", 443),
        ("s", "10.21.0.10", 22),
        ("p", "10.20.0.10", 443),
        ("s", "fd00:21::10", 443),
        ("s", "fd00:21::10", 22),
    ] {
        lab.listen(role, addr, port);
        wait_for_listener(&lab, role, addr, port);
    }

    let cases = [
        (
            "pump → pump server 443 (conduit pump-to-pump-server)",
            "p",
            "10.21.0.10",
            443,
            true,
        ),
        (
            "pump → pump server 22 (port not allowed)",
            "p",
            "10.21.0.10",
            22,
            false,
        ),
        (
            "pump server → pump 443 (wrong direction)",
            "s",
            "10.20.0.10",
            443,
            false,
        ),
        (
            "guest → pump server 443 (guest reaches nothing)",
            "g",
            "10.21.0.10",
            443,
            false,
        ),
        (
            "guest → pump 443 (guest reaches nothing)",
            "g",
            "10.20.0.10",
            443,
            false,
        ),
    ];
    for (what, from, addr, port, _) in &cases {
        assert!(
            lab.connects(from, addr, *port),
            "without a ruleset the topology must carry: {what}"
        );
    }

    let ruleset = nft::ruleset(&pumpward_net::starter_policy(), &[]);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("pumpward.nft");
    std::fs::write(&file, &ruleset).unwrap();
    let load = |lab: &Lab, file: &Path| lab.must("r", &["nft", "-f", file.to_str().unwrap()]);
    load(&lab, &file);
    // Loading twice replaces the table (the file deletes its old version).
    load(&lab, &file);
    let (ok, listing) = lab.exec("r", &["nft", "list", "table", "inet", nft::TABLE]);
    assert!(
        ok && listing.contains("chain infusion_pump__pump_server"),
        "{listing}"
    );

    for (what, from, addr, port, allowed) in &cases {
        assert_eq!(lab.connects(from, addr, *port), *allowed, "{what}");
    }
    assert!(
        lab.connects("q", "10.21.0.10", 443),
        "the second pump reaches its pump server before any quarantine"
    );

    // The second pump quarantined by its MAC alone: its traffic drops,
    // while the first pump's still passes. (IPv4: like the cases above.)
    let policy = pumpward_net::starter_policy();
    let by_mac = pumpward_net::QuarantinedDevice {
        mac: lab.mac("q").parse().unwrap(),
        addresses: Vec::new(),
        zone: Some("infusion-pump".into()),
        reason: "rogue".into(),
    };
    std::fs::write(&file, nft::ruleset(&policy, &[by_mac])).unwrap();
    load(&lab, &file);
    assert!(
        !lab.connects("q", "10.21.0.10", 443),
        "quarantined by MAC, yet reaches its pump server"
    );
    assert!(
        lab.connects("p", "10.21.0.10", 443),
        "the other pump is cut off"
    );

    // By its address alone (another MAC listed): its traffic drops again.
    let by_address = pumpward_net::QuarantinedDevice {
        mac: "02:00:5e:00:53:99".parse().unwrap(),
        addresses: vec!["10.20.1.10".parse().unwrap()],
        zone: Some("infusion-pump".into()),
        reason: "rogue".into(),
    };
    std::fs::write(&file, nft::ruleset(&policy, &[by_address])).unwrap();
    load(&lab, &file);
    assert!(!lab.connects("q", "10.21.0.10", 443), "quarantined address");
    assert!(lab.connects("p", "10.21.0.10", 443), "the other pump");
    // Released (an empty list): it passes again.
    std::fs::write(&file, nft::ruleset(&policy, &[])).unwrap();
    load(&lab, &file);
    assert!(lab.connects("q", "10.21.0.10", 443), "released");
}
