"""Live gen end to end: dati on one end of a veth pair inside a network
namespace, a gen made by dati-gen replayed with tcpreplay into the other
end. The records and flows must equal those of the same gen read as a
file; nothing may be lost at a moderate rate; signals behave."""
import collections
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

import dati_helpers as h
import netns

pytestmark = pytest.mark.skipif(not netns.available(), reason=netns.NEED)

GEN = ["-n", 20000, "-s", 11, "--http-share", 5, "--dns-share", 3, "--tls-share", 2,
       "--flows", 300, "--http-flows", 200]


@pytest.fixture(scope="module")
def gen(tmp_path_factory, binaries):
    path = tmp_path_factory.mktemp("live") / "live.pcap"
    summary = h.run_gen(GEN, path)
    file_run = h.run_dati(["-r", path, "--no-progress"])
    return {"path": path, "summary": summary, "file": file_run}


def record_key(r):
    return (r["filter"], tuple(sorted((k, str(v)) for k, v in r["fields"].items())))


def flow_key(f):
    return tuple(f.get(k) for k in ("proto", "client", "client_port", "server", "server_port",
                                    "c2s_packets", "c2s_bytes", "s2c_packets", "s2c_bytes")) \
        + (tuple(f["filters"]),)


def split(objs):
    recs = [o for o in objs if o["type"] == "record"]
    flows = [o for o in objs if o["type"] == "flow"]
    stats = [o for o in objs if o["type"] == "stats" and o["final"]]
    assert stats, "no final stats record"
    return recs, flows, stats[-1]


def test_live_equals_file(tmp_path, gen):
    """Two workers, fanout: every record and flow of the file run, no kernel drop."""
    with netns.Netns() as ns:
        d = netns.Dati(ns, tmp_path, ["-i", "c0", "-t", 2])
        ns.replay(gen["path"], pps=20000)
        d.wait_packets(gen["summary"]["packets"])
        recs, flows, st = split(d.stop())
    frecs, fflows = gen["file"].records, gen["file"].flows
    assert st["interfaces"]["c0"]["kernel_drops"] == 0
    assert st["packets"] == gen["summary"]["packets"]
    assert st["interfaces"]["c0"]["received"] == st["packets"]
    assert collections.Counter(map(record_key, recs)) == collections.Counter(map(record_key, frecs))
    assert collections.Counter(map(flow_key, flows)) == collections.Counter(map(flow_key, fflows))
    assert all(r["interface"] == "c0" for r in recs + flows)
    assert {f["reason"] for f in flows} == {"shutdown"}   # PKT_TTL 30 s: all still live
    # frame numbers (and so record and flow ids) stay unique across workers
    assert len({r["id"] for r in recs}) == len(recs)
    assert len({f["flow"] for f in flows}) == len(flows)
    assert st["flows"]["created"] == len(flows) == st["records"]["flow"]


def test_wall_clock_expiry(tmp_path, gen):
    """With no packets arriving, idle flows still expire, on wall time."""
    conf = h.write_config(tmp_path, "ttl.conf", "PKT_TTL 1\nFILTER_NAME any\nBPF ip\n")
    expected = h.run_dati(["-r", gen["path"], "-c", conf, "--no-progress"]).flows
    with netns.Netns() as ns:
        d = netns.Dati(ns, tmp_path, ["-c", conf, "-i", "c0", "-t", 2])
        ns.replay(gen["path"], pps=40000)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if sum(1 for o in d.lines() if o["type"] == "flow") == len(expected):
                break
            time.sleep(0.2)
        before_stop = [o for o in d.lines() if o["type"] == "flow"]
        recs, flows, st = split(d.stop())
    assert collections.Counter(map(flow_key, before_stop)) == \
        collections.Counter(map(flow_key, expected))
    assert {f["reason"] for f in flows} == {"idle"} and len(flows) == len(expected)


def test_sigterm_mid_run_flushes_every_flow(tmp_path, gen):
    with netns.Netns() as ns:
        d = netns.Dati(ns, tmp_path, ["-i", "c0", "-t", 2])
        replay = ns.popen(["tcpreplay", "-q", "-i", "s0", "--pps", 5000, gen["path"]],
                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        d.wait_packets(2000)   # under way; the replay goes on for 3 s more
        recs, flows, st = split(d.stop())
        replay.kill()
    assert 0 < st["packets"] < gen["summary"]["packets"]
    assert st["flows"]["created"] == len(flows) == st["flows"]["shutdown"]
    assert st["flows"]["active"] == 0
    assert sum(st["filters"][f]["records"] for f in st["filters"]) == len(recs)


@pytest.mark.parametrize("kind", ["dtun", "tap"])   # a tap's name starts with "tap"
def test_tun_pool_gets_every_matching_packet(tmp_path, gen, kind):
    """TAP_IF, tun (raw IP) and tap (Ethernet): each HTTP request goes to one device; the
    pool, read back with tcpdump, holds exactly the matching packets, and a
    flow stays on one device."""
    conf = h.write_config(tmp_path, "tap.conf", (
        "FILTER_NAME http\n"
        "BPF tcp dst port 80 and tcp[((tcp[12:1] & 0xf0) >> 2):4] = 0x47455420\n"
        "FIELDS ip.src tcp.sport http.url\n"
        f"TAP_IF {kind}0\nTAP_IF {kind}1\n"))
    with netns.Netns() as ns:
        d = netns.Dati(ns, tmp_path, ["-c", conf, "-i", "c0", "-t", 2])
        dumps = []
        for t in (f"{kind}0", f"{kind}1"):
            out = tmp_path / f"{t}.pcap"
            err = open(tmp_path / f"{t}.err", "wb")
            # no 1 s buffering in libpcap's ring: packets still there at SIGINT are lost.
            # Immediate mode gives a raw-IP device's packets frames of the snapshot length
            # (256 KiB: 8 in the default ring); every frame here fits 9216 bytes
            p = ns.popen(["tcpdump", "--immediate-mode", "-s", 9216, "-B", 16384, "-U", "-n",
                          "-i", t, "-w", out], stderr=err)
            dumps.append((p, out, tmp_path / f"{t}.err"))
        for p, out, errp in dumps:
            deadline = time.monotonic() + 10
            while "listening" not in errp.read_text() and time.monotonic() < deadline:
                time.sleep(0.05)
        ns.replay(gen["path"], pps=20000)
        d.wait_packets(gen["summary"]["packets"])
        expected = gen["summary"]["http_requests"]
        deadline = time.monotonic() + 30
        while sum(netns.pcap_records(out) for p, out, errp in dumps) < expected \
                and time.monotonic() < deadline:
            time.sleep(0.05)
        for p, out, errp in dumps:   # before dati: its devices go with it
            p.send_signal(signal.SIGINT)
            p.wait(timeout=10)
        recs, flows, st = split(d.stop())
    assert len(recs) == expected
    assert st["tap"] == {"forwarded": expected, "queue_full": 0, "errors": 0, "not_ip": 0}
    per_dev = {}
    for p, out, errp in dumps:
        # the device's kind, as tcpdump saw it: Ethernet (1) or raw IP (101)
        assert int.from_bytes(out.read_bytes()[20:24], sys.byteorder) == (1 if kind == "tap" else 101)
        rd = h.run_dati(["-r", out, "-c", conf, "--no-progress"])
        per_dev[out.stem] = rd.records
    got = per_dev[f"{kind}0"] + per_dev[f"{kind}1"]
    assert collections.Counter(map(record_key, got)) == collections.Counter(map(record_key, recs))
    assert per_dev[f"{kind}0"] and per_dev[f"{kind}1"], "the flow hash should use both devices"
    by_flow = collections.defaultdict(set)
    for dev, rs in per_dev.items():
        for r in rs:
            by_flow[(r["fields"]["ip.src"], r["fields"]["tcp.sport"])].add(dev)
    assert all(len(devs) == 1 for devs in by_flow.values())


@pytest.mark.parametrize("flap", [False, True])
def test_two_interfaces_one_per_direction(tmp_path, gen, flap):
    """As behind an optical tap: clients' packets on c0, servers' on c1. The
    two directions meet in one flow (the fanout hash is symmetric and every
    interface's group has the workers in the same order): the records and
    flows equal those of the whole capture read as a file."""
    full = tmp_path / "full.pcap"
    h.run_gen(GEN + ["--responses"], full)
    halves = {}
    for ifname, net in (("c0", "198.18.0.0/16"), ("c1", "198.19.0.0/16")):
        halves[ifname] = tmp_path / f"{ifname}.pcap"
        netns.sh("tcpdump", "-r", full, "-w", halves[ifname], f"src net {net}")
    expected = h.run_dati(["-r", full, "--no-progress"])
    with netns.Netns(pairs=2) as ns:
        d = netns.Dati(ns, tmp_path, ["-i", "c0", "-i", "c1", "-t", 2])
        if flap:   # the kernel re-links the group's members: the order must hold
            ns.run("ip", "link", "set", "c1", "down")
            d.wait_for("c1: Network is down")
            ns.run("ip", "link", "set", "c1", "up")
            ns.wait_up("c1")
        ns.replay(halves["c0"], iface="s0", pps=20000)
        ns.replay(halves["c1"], iface="s1", pps=20000)
        d.wait_packets(sum(map(netns.pcap_records, halves.values())))
        recs, flows, st = split(d.stop())
    assert st["interfaces"]["c0"]["kernel_drops"] == st["interfaces"]["c1"]["kernel_drops"] == 0
    assert st["packets"] == st["interfaces"]["c0"]["received"] \
        + st["interfaces"]["c1"]["received"]
    assert collections.Counter(map(record_key, recs)) == \
        collections.Counter(map(record_key, expected.records))
    assert collections.Counter(map(flow_key, flows)) == \
        collections.Counter(map(flow_key, expected.flows))
    assert {r["interface"] for r in recs} == {"c0"}   # requests come from clients
    assert any(f["s2c_packets"] for f in flows)


def test_missing_interface(tmp_path):
    with netns.Netns() as ns:
        p = ns.run(h.DATI, "-i", "nosuch0", check=False)
    assert p.returncode == 2
    assert "no interface nosuch0" in p.stderr


def test_ring_too_large_is_a_config_error(tmp_path):
    """The kernel caps a ring below 4 GiB: said at the config line, before any
    socket is opened."""
    conf = h.write_config(tmp_path, "ring.conf", "RING_BLOCK_SIZE 1073741824\nRING_BLOCKS 65536\n"
                          "FILTER_NAME any\nBPF ip\n")
    with netns.Netns() as ns:
        p = ns.run(h.DATI, "-c", conf, "-i", "c0", check=False)
    assert p.returncode == 2
    assert "ring.conf:2: a ring (RING_BLOCKS x RING_BLOCK_SIZE) must stay below 4 GiB: " \
           "'65536 x 1073741824'" in p.stderr


def test_tap_if_on_a_captured_interface_is_refused(tmp_path):
    conf = h.write_config(tmp_path, "loop.conf", HTTP_ONLY + "TAP_IF c0\n")
    with netns.Netns() as ns:
        p = ns.run(h.DATI, "-c", conf, "-i", "c0", check=False)
    assert p.returncode == 2
    assert "TAP_IF c0 is also captured on" in p.stderr


def test_interface_down_then_gone(tmp_path, gen):
    """Down: a warning, gen resumes when it is up again. Deleted: a clear
    error, exit 1, every flow flushed."""
    with netns.Netns() as ns:
        d = netns.Dati(ns, tmp_path, ["-i", "c0", "-t", 2])
        ns.replay(gen["path"], pps=40000)
        d.wait_packets(gen["summary"]["packets"])   # none left in the ring when it goes
        ns.run("ip", "link", "set", "c0", "down")
        d.wait_for("c0: Network is down; waiting for it to come back")
        ns.run("ip", "link", "set", "c0", "up")
        ns.replay(gen["path"], pps=40000)
        d.wait_packets(2 * gen["summary"]["packets"])
        ns.run("ip", "link", "del", "c0")
        d.wait_for("c0: the interface is gone")
        recs, flows, st = split(d.stop(expect_rc=(1,)))
    assert st["packets"] == 2 * gen["summary"]["packets"]
    assert st["flows"]["created"] == len(flows) and st["flows"]["active"] == 0


HTTP_ONLY = ("FILTER_NAME http\n"
             "BPF tcp dst port 80 and tcp[((tcp[12:1] & 0xf0) >> 2):4] = 0x47455420\n"
             "FIELDS ip.src tcp.sport http.url\n")
DNS_TOO = HTTP_ONLY + "FILTER_NAME dns\nBPF udp dst port 53\nFIELDS ip.src dns.qry.name\n"


def test_sighup_reload(tmp_path, gen):
    """SIGHUP with a new filter: it takes effect, the old one goes on, no flow
    is lost. A broken file is refused and the running filters stay."""
    conf = h.write_config(tmp_path, "dati.conf", HTTP_ONLY)
    file_http = h.run_dati(["-r", gen["path"], "-c", conf, "--no-progress"]).records
    file_dns = h.run_dati(["-r", gen["path"], "-c", h.write_config(tmp_path, "d.conf", DNS_TOO),
                           "--no-progress"]).records
    file_dns = [r for r in file_dns if r["filter"] == "dns"]
    with netns.Netns() as ns:
        d = netns.Dati(ns, tmp_path, ["-c", conf, "-i", "c0", "-t", 2])
        n = gen["summary"]["packets"]
        ns.replay(gen["path"], pps=20000)
        d.wait_packets(n)   # a backlog would get the new filters
        h.write_config(tmp_path, "dati.conf", DNS_TOO)
        d.signal(signal.SIGHUP)
        d.wait_for("reloaded")
        ns.replay(gen["path"], pps=20000)
        d.wait_packets(2 * n)
        h.write_config(tmp_path, "dati.conf", "FILTER_NAME broken\nBPF tcp port\n")
        d.signal(signal.SIGHUP)
        d.wait_for("reload refused")
        # CLASSIFY takes a restart: APP filters on a running CLASSIFY 0 are refused
        h.write_config(tmp_path, "dati.conf", "CLASSIFY 1\nFILTER_NAME web\nAPP HTTP\n")
        d.signal(signal.SIGHUP)
        d.wait_for("reload refused: filter web needs CLASSIFY 1")
        ns.replay(gen["path"], pps=20000)
        d.wait_packets(3 * n)
        recs, flows, st = split(d.stop())
    http = [r for r in recs if r["filter"] == "http"]
    dns = [r for r in recs if r["filter"] == "dns"]
    # replays 2 and 3 repeat the TCP segments of flows that live on through
    # the reloads: retransmissions, no records; DNS is UDP: records each time
    assert len(http) == len(file_http)
    assert st["filters"]["http"]["skipped_retransmissions"] == 2 * len(file_http)
    assert len(dns) == 2 * len(file_dns)
    assert st["filters"]["http"]["records"] == len(http)
    assert st["filters"]["dns"]["records"] == len(dns)
    assert st["records"]["field"] == len(recs)
    http_flows = {(f["client"], f["client_port"]) for f in flows if "http" in f["filters"]}
    assert {(r["fields"]["ip.src"], r["fields"]["tcp.sport"]) for r in http} <= http_flows


def test_sigusr1_prints_statistics(tmp_path, gen):
    """SIGUSR1: the statistics so far, on stderr and as a record in the output."""
    n = gen["summary"]["packets"]
    with netns.Netns() as ns:
        d = netns.Dati(ns, tmp_path, ["-i", "c0"])
        ns.replay(gen["path"], pps=40000)
        d.wait_packets(n)   # itself by SIGUSR1, until the last packets left the rings
        mine = d.request_stats()
        recs, flows, st = split(d.stop())
        interim = [o for o in d.lines() if o["type"] == "stats" and not o["final"]]
    assert mine["packets"] == interim[-1]["packets"] == st["packets"] == n
    assert mine["interfaces"]["c0"]["received"] == n
    # each report (signals, TIME_STATS) on both; the last one's on stderr too
    reports = [l for l in d.stderr().splitlines() if l.startswith("dati: [stats] ")]
    assert len(reports) == len(interim)
    assert reports[-1].startswith(f"dati: [stats] {n} packets, ")


def test_daemon_pidfile_user_and_reload(tmp_path, gen):
    """-D -p -u nobody with relative paths: the parent returns once the daemon
    runs; the pid file names it; it runs as nobody; SIGHUP still finds the
    configuration (the daemon works from /); SIGTERM ends it."""
    shared = Path(tempfile.mkdtemp(prefix="dati-t"))   # readable by nobody
    try:
        os.chmod(shared, 0o755)
        conf = h.write_config(shared, "dati.conf", HTTP_ONLY)
        os.chmod(conf, 0o644)
        out = shared / "daemon.json"
        with netns.Netns() as ns:
            p = subprocess.run(["ip", "netns", "exec", ns.name, h.DATI, "-D", "-p", "dati.pid",
                                "-u", "nobody", "-c", "dati.conf", "-i", "c0", "-t", "2",
                                "-w", "daemon.json"], cwd=shared, capture_output=True,
                               text=True, timeout=30, env=h.sanitizer_env())
            assert p.returncode == 0, p.stderr
            pid = int((shared / "dati.pid").read_text())   # written before the parent returned
            status = open(f"/proc/{pid}/status").read()
            uid = [l.split()[1:] for l in status.splitlines() if l.startswith("Uid:")][0]
            assert set(uid) == {"65534"}, status
            caps = {l.split()[0]: int(l.split()[1], 16) for l in status.splitlines()
                    if l.startswith(("CapPrm:", "CapEff:", "CapAmb:"))}
            assert caps == {"CapPrm:": 0, "CapEff:": 0, "CapAmb:": 0}, status
            assert "NoNewPrivs:\t1" in status
            # its stderr is syslog: the statistics records in its output tell
            def wait_stats(cond, what):
                netns.wait_stats(lambda: os.kill(pid, signal.SIGUSR1), out, cond, what)
            n = gen["summary"]["packets"]
            ns.replay(gen["path"], pps=20000)
            wait_stats(lambda st: st["packets"] >= n, f"{n} packets")
            h.write_config(shared, "dati.conf", DNS_TOO)
            os.kill(pid, signal.SIGHUP)
            wait_stats(lambda st: "dns" in st["filters"], "the reloaded filters")
            ns.replay(gen["path"], pps=20000)
            wait_stats(lambda st: st["packets"] >= 2 * n, f"{2 * n} packets")
            os.kill(pid, signal.SIGTERM)
            deadline = time.monotonic() + 20
            while os.path.exists(f"/proc/{pid}") and time.monotonic() < deadline:
                time.sleep(0.05)
            assert not os.path.exists(f"/proc/{pid}"), "the daemon did not stop on SIGTERM"
        objs = h.parse_json_lines(out.read_bytes(), "daemon output")
    finally:
        shutil.rmtree(shared)
    recs, flows, st = split(objs)
    http = [r for r in recs if r["filter"] == "http"]
    expected = h.run_dati(["-r", gen["path"], "-c", h.write_config(tmp_path, "h.conf", HTTP_ONLY),
                           "--no-progress"]).records
    assert collections.Counter(map(record_key, http)) == collections.Counter(map(record_key, expected))
    assert [r for r in recs if r["filter"] == "dns"], "the reload did not find its file"
    assert st["flows"]["created"] == len(flows)


def test_daemon_start_failure_is_seen(tmp_path):
    """A daemon that cannot start makes the command that started it fail."""
    with netns.Netns() as ns:
        p = ns.run(h.DATI, "-D", "-u", "no-such-user", "-i", "c0", "-w", tmp_path / "o.json",
                   check=False)
    assert p.returncode == 2
    assert "-u no-such-user: no such user" in p.stderr


def test_daemon_needs_a_place_for_records(tmp_path):
    with netns.Netns() as ns:
        p = ns.run(h.DATI, "-D", "-i", "c0", check=False)
    assert p.returncode == 2 and "give the records a place" in p.stderr


def test_live_into_redis(tmp_path, gen):
    """Live capture with the Redis output (never waiting): at a moderate
    rate, every record reaches Redis, with the seed's layout."""
    from test_redis import start_redis, stop_redis
    sock = tmp_path / "redis.sock"
    rp, client = start_redis(sock=sock)
    try:
        conf = h.write_config(tmp_path, "redis.conf", f"REDIS_SOCK {sock}\n" + DNS_TOO)
        with netns.Netns() as ns:
            d = netns.Dati(ns, tmp_path, ["-c", conf, "-i", "c0", "-t", 2])
            ns.replay(gen["path"], pps=20000)
            d.wait_packets(gen["summary"]["packets"])
            _, _, st = split(d.stop())
        expected = h.run_dati(["-r", gen["path"], "-c", h.write_config(tmp_path, "j.conf", DNS_TOO),
                               "--no-progress"]).records
        got = collections.Counter()
        for key in client.scan_iter("dati:rec:*", count=1000):
            hsh = {k.decode(): v.decode() for k, v in client.hgetall(key).items()}
            assert hsh["interface"] == "c0" and client.ttl(key) > 0
            fields = {k: v for k, v in hsh.items()
                      if k not in ("Timestamp", "filter", "flow", "interface")}
            got[(hsh["filter"], tuple(sorted(fields.items())))] += 1
        want = collections.Counter((r["filter"], tuple(sorted((k, str(v)) for k, v in
                                                              r["fields"].items())))
                                   for r in expected)
        assert got == want
        assert st["redis"]["records"] == len(expected) and st["redis"]["lost"] == 0
    finally:
        stop_redis(rp)


def unprivileged(*args):
    return ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--inh-caps=-all",
            *[str(a) for a in args]]


def test_no_permission_is_a_clear_error(tmp_path, gen):
    with netns.Netns() as ns:
        p = ns.run(*unprivileged(h.DATI, "-i", "c0"), check=False)
    assert p.returncode == 2
    assert "c0: socket: Operation not permitted (live capture needs root or CAP_NET_RAW)" \
        in p.stderr
    shared = tempfile.mkdtemp(prefix="dati-t")   # readable by nobody, unlike tmp_path
    try:
        os.chmod(shared, 0o755)
        conf = h.write_config(shared, "tap.conf", HTTP_ONLY + "TAP_IF dtun0\n")
        os.chmod(conf, 0o644)
        p = subprocess.run(unprivileged(h.DATI, "-c", conf, "-r", "/dev/null"),
                           capture_output=True, text=True, timeout=30)
    finally:
        shutil.rmtree(shared)
    assert p.returncode == 2
    # /dev/net/tun is 0666 on some systems (then TUNSETIFF fails), 0600 on others
    assert p.stderr.startswith("dati: error: TAP_IF dtun0: ") and \
        "(needs root or CAP_NET_ADMIN)" in p.stderr, p.stderr


def test_live_feedback_tags(tmp_path, gen):
    """The feedback channel in live capture: a standing rule published before
    the traffic tags every record of the flows it matches."""
    import json
    from test_redis import start_redis, stop_redis
    sock = tmp_path / "redis.sock"
    rp, client = start_redis(sock=sock)
    try:
        conf = h.write_config(tmp_path, "fb.conf", f"REDIS_SOCK {sock}\n"
                              "FEEDBACK_CHANNEL dati:feedback\n" + DNS_TOO)
        with netns.Netns() as ns:
            d = netns.Dati(ns, tmp_path, ["-c", conf, "-i", "c0", "-t", 2])
            sub = client.pubsub()
            sub.subscribe("dati:feedback:reply")
            sub.get_message(timeout=2)   # the subscription's confirmation
            client.publish("dati:feedback", json.dumps(
                {"id": 1, "match": {"tcp.dport": 80}, "tag": "web"}))
            ack = None
            deadline = time.monotonic() + 10
            while ack is None and time.monotonic() < deadline:
                m = sub.get_message(timeout=1)
                if m and m["type"] == "message":
                    ack = json.loads(m["data"])
            assert ack and ack["ok"] and ack["id"] == 1, ack
            ns.replay(gen["path"], pps=20000)
            d.wait_packets(gen["summary"]["packets"])
            _, _, st = split(d.stop())
        tags = collections.Counter()
        for key in client.scan_iter("dati:rec:*", count=1000):
            hsh = client.hgetall(key)
            tags[(hsh[b"filter"].decode(), hsh.get(b"tags", b"").decode())] += 1
        n_http = sum(1 for r in gen["file"].records if r["filter"] == "http")
        n_dns = sum(1 for r in gen["file"].records if r["filter"] == "dns")
        assert tags == {("http", "web"): n_http, ("dns", ""): n_dns}
        assert st["redis"]["lost"] == 0
    finally:
        stop_redis(rp)
