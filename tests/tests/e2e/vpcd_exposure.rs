//! vpcd listens on every interface; `scripts/setup.sh` closes its ports to everything but
//! loopback with an nftables table. This test looks from another host: a network namespace
//! joined to this one by a veth pair (addresses the test makes itself), from which vpcd's
//! ports must be refused while a port of the test's own on the same address is reachable.

use std::net::TcpListener;
use std::process::{Command, Output};

use e2e_tests::{require_pcscd, Slot};

fn run(args: &[&str]) -> Output {
    Command::new(args[0]).args(&args[1..]).output().unwrap_or_else(|e| panic!("cannot run {args:?}: {e}"))
}

fn ok(args: &[&str]) {
    let out = run(args);
    assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
}

/// A namespace with one veth into this one; removed (with its veth pair) when dropped.
struct Peer {
    ns: String,
}

impl Drop for Peer {
    fn drop(&mut self) {
        let _ = run(&["ip", "netns", "del", &self.ns]);
    }
}

/// Whether a TCP connection from inside `ns` to `addr:port` is accepted (bash's /dev/tcp:
/// connect, then close at once).
fn connects_from(ns: &str, addr: &str, port: u16) -> bool {
    let script = format!("exec 3<>/dev/tcp/{addr}/{port}");
    run(&["ip", "netns", "exec", ns, "bash", "-c", &script]).status.success()
}

#[test]
fn vpcd_ports_are_refused_to_other_hosts() {
    require_pcscd();
    let table = run(&["nft", "list", "table", "inet", "paysim_vpcd"]);
    assert!(
        table.status.success(),
        "scripts/setup.sh did not close vpcd's ports (no nft table inet paysim_vpcd): {}",
        String::from_utf8_lossy(&table.stderr)
    );
    // Should the filter be missing after all, the probe would be taken for a card: hold both
    // slots so no other test has its card there meanwhile.
    let _slots = (Slot(0).lock(), Slot(1).lock());
    let tag = std::process::id() % 10_000;
    let (ns, host_if, peer_if) = (format!("paysim-probe-{tag}"), format!("pvh{tag}"), format!("pvn{tag}"));
    let net = 16 + (std::process::id() % 200);
    let (host_addr, peer_addr) = (format!("10.213.{net}.1"), format!("10.213.{net}.2"));
    let _ = run(&["ip", "netns", "del", &ns]);
    ok(&["ip", "netns", "add", &ns]);
    let peer = Peer { ns };
    ok(&["ip", "link", "add", &host_if, "type", "veth", "peer", "name", &peer_if]);
    ok(&["ip", "link", "set", &peer_if, "netns", &peer.ns]);
    ok(&["ip", "addr", "add", &format!("{host_addr}/30"), "dev", &host_if]);
    ok(&["ip", "link", "set", &host_if, "up"]);
    ok(&["ip", "netns", "exec", &peer.ns, "ip", "addr", "add", &format!("{peer_addr}/30"), "dev", &peer_if]);
    ok(&["ip", "netns", "exec", &peer.ns, "ip", "link", "set", &peer_if, "up"]);

    // Control: the other host reaches this one (a listener of the test's own).
    let own = TcpListener::bind((host_addr.as_str(), 0)).unwrap();
    let own_port = own.local_addr().unwrap().port();
    assert!(connects_from(&peer.ns, &host_addr, own_port), "the probe path works");
    // vpcd's ports: refused (the filter answers with a reset).
    for slot in [Slot(0), Slot(1)] {
        let port: u16 = slot.vpcd_addr().rsplit(':').next().unwrap().parse().unwrap();
        assert!(!connects_from(&peer.ns, &host_addr, port), "vpcd port {port} is reachable from another host");
    }
    drop(own);
}
