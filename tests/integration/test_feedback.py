"""The feedback channel (FEEDBACK_CHANNEL) against a real redis-server:
commands published while dati reads a capture fed into a pipe piece by
piece, so that they land mid-flow at a known packet: records before that
packet are as without feedback, records after it carry the tag (or come for
every packet when watched, or not at all when ignored), and every command
is acknowledged on the reply channel or counted when rejected."""
import json
import os
import re
import signal
import struct
import subprocess
import threading
import time
from collections import defaultdict
from decimal import Decimal

import pytest

import dati_helpers as h
from test_redis import npm_app, start_redis, stop_redis

redis = pytest.importorskip("redis")

SEED_BPF = "tcp[(tcp[12] >> 4) * 4 : 4] = 0x47455420"
FIELDS = "frame.number ip.src ip.dst tcp.sport tcp.dport http.method http.host"
CONF = """\
TIME_STATS 0
PKT_TTL 1000000000
REDIS_SOCK {sock}
REDIS_MODE stream
FEEDBACK_CHANNEL test:fb
FILTER_NAME web
BPF {bpf}
FIELDS {fields}
"""


class Session:
    """dati reading a capture from a pipe, a redis-server, a subscriber to the
    reply channel; the test feeds packets and publishes commands."""

    def __init__(self, tmp_path, pcap, bpf="tcp", threads=1, extra="", env=None):
        self.sock = tmp_path / "r.sock"
        self.server, self.client = start_redis(sock=self.sock)
        conf = h.write_config(tmp_path, "fb.conf", CONF.format(
            sock=self.sock, bpf=bpf, fields=FIELDS) + extra)
        self.data = pcap.read_bytes()
        self.offs = h.packet_offsets(self.data)
        self.sent = 0   # packets fed so far
        self.acks, self.next_id = {}, 1
        self.ps = self.client.pubsub()
        self.ps.subscribe("test:fb:reply")
        self.ps.get_message(timeout=5)
        self.stop = threading.Event()
        self.listener = threading.Thread(target=self._listen, daemon=True)
        self.listener.start()
        self.dati = subprocess.Popen([str(h.DATI), "-r", "-", "-c", str(conf), "-q",
                                      "-t", str(threads)],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE,
                                     env=dict(h.sanitizer_env(), **(env or {})))
        self.dati.stdin.write(self.data[:24])
        self.dati.stdin.flush()
        end = time.monotonic() + 20   # commands published before dati subscribes are lost
        while self.client.pubsub_numsub("test:fb")[0][1] < 1:
            assert time.monotonic() < end and self.dati.poll() is None, "dati did not subscribe"
            time.sleep(0.02)

    def _listen(self):
        while not self.stop.is_set():
            m = self.ps.get_message(timeout=0.1)
            if m and m["type"] == "message":
                a = json.loads(m["data"])
                self.acks.setdefault(a.get("id"), []).append(a)

    def feed(self, upto):
        """Feeds packets [sent, upto) (0-based) and waits until the records of
        frames up to `upto` are in the stream (expected: how many)."""
        self.dati.stdin.write(self.data[self.offs[self.sent]:self.offs[upto]])
        self.dati.stdin.flush()
        self.sent = upto

    def wait_processed(self, n, timeout=30):
        """Waits until the workers have processed n packets: a command sent
        after that applies after packet n (the input may be read ahead)."""
        end = time.monotonic() + timeout
        while (got := self.command({"stats": True})["packets"]) < n:
            assert time.monotonic() < end, f"only {got} of {n} packets processed"
            time.sleep(0.02)

    def wait_entries(self, n, timeout=20):
        end = time.monotonic() + timeout
        while self.client.xlen("web") < n:
            assert time.monotonic() < end, f"only {self.client.xlen('web')} of {n} records"
            time.sleep(0.02)

    def command(self, cmd, timeout=20):
        """Publishes cmd with a fresh id; returns its acknowledgement."""
        cid = self.next_id
        self.next_id += 1
        # the id first: known even when the rest of the message is wrong
        self.client.publish("test:fb", json.dumps(dict(id=cid, **cmd)))
        end = time.monotonic() + timeout
        while cid not in self.acks:
            assert time.monotonic() < end, f"no acknowledgement for {cmd}"
            time.sleep(0.01)
        return self.acks[cid][0]

    def commands(self, cmds, timeout=60):
        """Publishes cmds in one pipeline; returns their acknowledgements."""
        ids = list(range(self.next_id, self.next_id + len(cmds)))
        self.next_id += len(cmds)
        p = self.client.pipeline(transaction=False)
        for cid, cmd in zip(ids, cmds):
            p.publish("test:fb", json.dumps(dict(id=cid, **cmd)))
        p.execute()
        end = time.monotonic() + timeout
        while not all(cid in self.acks for cid in ids):
            assert time.monotonic() < end, "acknowledgements missing"
            time.sleep(0.02)
        return [self.acks[cid][0] for cid in ids]

    def finish(self):
        self.dati.stdin.write(self.data[self.offs[self.sent]:])
        self.dati.stdin.close()
        self.dati.stdin = None
        out, err = self.dati.communicate(timeout=120)
        err = err.decode("utf-8", "replace")
        h.check_no_crash("dati", self.dati.returncode, err)
        assert self.dati.returncode == 0, err[-3000:]
        self.stats = json.loads(out.decode().splitlines()[-1])
        self.records = [{k.decode(): v.decode() for k, v in f.items()}
                        for _, f in self.client.xrange("web")]
        self.flows = {f["flow"]: f for f in
                      (json.loads(e[b"flow"]) for _, e in self.client.xrange("dati:sessions"))}
        return self.stats

    def close(self):
        self.stop.set()
        self.listener.join()
        self.ps.close()
        if self.dati.poll() is None:
            self.dati.kill()
        stop_redis(self.server)


@pytest.fixture(scope="module")
def lab(tmp_path_factory, binaries):
    """A capture with long HTTP flows (requests and responses) among background
    TCP, and its all-TCP records from a JSON run: frames per flow."""
    d = tmp_path_factory.mktemp("fb")
    pcap = d / "lab.pcap"
    h.run_gen(["-n", 12000, "-s", 5, "--http-share", 20, "--http-flows", 12, "--flows", 200,
               "--responses"], pcap)
    conf = h.write_config(d, "json.conf", f"TIME_STATS 0\nPKT_TTL 1000000000\n"
                          f"FILTER_NAME web\nBPF tcp\nFIELDS {FIELDS}\n")
    run = h.run_dati(["-r", pcap, "-c", conf, "-q"])
    frames = defaultdict(list)
    for r in run.records:
        frames[r["flow"]].append(r["fields"]["frame.number"])
    return {"pcap": pcap, "frames": frames, "flows": {f["flow"]: f for f in run.flows},
            "npackets": run.stats["packets"]}


def pick_flow(lab, cut, http=True):
    """A flow with packets both well before and well after frame `cut`."""
    for fid, fr in sorted(lab["frames"].items(), key=lambda kv: -len(kv[1])):
        port = lab["flows"][fid].get("server_port")
        if (port == 80) == http and sum(f < cut for f in fr) >= 3 and \
                sum(f > cut for f in fr) >= 10:
            return fid
    raise AssertionError("no suitable flow in the capture")


def by_flow(records, fid):
    return sorted((int(r["frame.number"]), r) for r in records if int(r["flow"]) == fid)


@pytest.mark.parametrize("threads", (1, 3))
def test_tag_by_id_mid_flow(tmp_path, lab, threads):
    cut = lab["npackets"] // 3
    fid = pick_flow(lab, cut, http=False)
    s = Session(tmp_path, lab["pcap"], threads=threads)
    try:
        s.feed(cut)
        s.wait_entries(sum(1 for fr in lab["frames"].values() for f in fr if f <= cut))
        ack = s.command({"flow": fid, "tag": "suspicious"})
        assert ack == {"ok": True, "id": ack["id"], "op": "tag", "flow": fid, "tag": "suspicious"}
        assert s.command({"flow": fid, "tag": "second"})["ok"]
        stats = s.finish()
    finally:
        s.close()
    mine = by_flow(s.records, fid)
    before = [r for f, r in mine if f <= cut]
    after = [r for f, r in mine if f > cut]
    assert len(before) >= 3 and len(after) >= 10
    assert all("tags" not in r for r in before), before[:2]
    assert all(r["tags"] == "suspicious,second" for r in after), after[:2]
    assert all("tags" not in r for r in s.records if int(r["flow"]) != fid)
    assert s.flows[fid]["tags"] == ["suspicious", "second"]
    assert sum("tags" in f for f in s.flows.values()) == 1
    fb = stats["feedback"]
    assert fb["received"] == fb["applied"] == 2 and fb["acks"] == 2, fb
    assert len(s.records) == sum(len(v) for v in lab["frames"].values())


def test_tag_by_match(tmp_path, lab):
    """A rule sent before any packet tags the flows to one server from their
    first record; a rule sent mid-capture tags the flows to port 80 that
    exist already from that moment, and those created later at birth."""
    cut = lab["npackets"] // 3
    fid = pick_flow(lab, cut, http=True)
    server = lab["flows"][fid]["server"]
    s = Session(tmp_path, lab["pcap"])
    try:
        ack = s.command({"match": {"ip.dst": server, "tcp.dport": 80}, "tag": "born"})
        assert ack["ok"] and ack["match"] is True and ack["tag"] == "born", ack
        s.feed(cut)
        s.wait_entries(sum(1 for fr in lab["frames"].values() for f in fr if f <= cut))
        ack = s.command({"match": {"tcp.dport": 80}, "tag": "cdn-a", "ttl": 600})
        assert ack["ok"], ack
        stats = s.finish()
    finally:
        s.close()
    http = {f for f, fl in s.flows.items() if fl.get("server_port") == 80}
    born = {f for f in http if s.flows[f]["server"] == server}
    assert fid in born and len(http) > len(born)
    for r in s.records:
        f, frame = int(r["flow"]), int(r["frame.number"])
        want = (["born"] if f in born else []) + (["cdn-a"] if f in http and frame > cut else [])
        assert r.get("tags", "") == ",".join(want), r
    for f, fl in s.flows.items():
        want = (["born"] if f in born else []) + (["cdn-a"] if f in http else [])
        assert fl.get("tags", []) == want, fl
    assert stats["feedback"]["rule_tagged"] == len(born) + len(http), stats["feedback"]


def test_match_rule_expires(tmp_path, binaries):
    """"ttl" is seconds of packet time: a rule for DNS flows sent at packet
    time t0 with ttl 1 tags the DNS flows created up to t0 + 1 s, none later."""
    pcap = tmp_path / "dns.pcap"
    h.run_gen(["-n", 6000, "-s", 9, "--rate", 1000, "--dns-share", 10], pcap)
    s = Session(tmp_path, pcap, bpf="udp port 53")
    cut = 1000
    ts = struct.unpack_from("<II", s.data, s.offs[cut - 1])
    t0 = ts[0] + ts[1] / 1e6
    try:
        s.feed(cut)
        s.wait_processed(cut)
        assert s.command({"match": {"udp.dport": 53}, "tag": "early", "ttl": 1})["ok"]
        stats = s.finish()
    finally:
        s.close()
    later = [fl for fl in s.flows.values() if fl["first"] > t0 + 0.001]
    tagged = [fl for fl in later if fl.get("tags") == ["early"]]
    assert tagged and len(later) > len(tagged) + 10
    for fl in later:
        if abs(fl["first"] - (t0 + 1)) > 0.002:
            assert ("tags" in fl) == (fl["first"] <= t0 + 1), (fl, t0)
    assert stats["feedback"]["rules_expired"] == 1


def test_watch_and_ignore(tmp_path, lab):
    """Seed GET filter: only requests give records. A watched flow gives one
    for every later packet; an ignored one none, but is still counted."""
    cut = lab["npackets"] // 3
    http_flows = [f for f, fl in lab["flows"].items() if fl.get("server_port") == 80
                  and sum(x < cut for x in lab["frames"][f]) >= 3
                  and sum(x > cut for x in lab["frames"][f]) >= 10]
    watched, ignored = http_flows[:2]
    s = Session(tmp_path, lab["pcap"], bpf=SEED_BPF)
    try:
        s.feed(cut)
        s.wait_processed(cut)
        assert s.command({"flow": watched, "watch": True})["ok"]
        assert s.command({"flow": ignored, "ignore": True})["ok"]
        stats = s.finish()
    finally:
        s.close()
    w_after = [f for f, _ in by_flow(s.records, watched) if f > cut]
    assert w_after == [f for f in lab["frames"][watched] if f > cut]   # every packet
    assert any(f <= cut for f, _ in by_flow(s.records, watched))
    i_recs = by_flow(s.records, ignored)
    assert i_recs and all(f <= cut for f, _ in i_recs)
    fl, want = s.flows[ignored], lab["flows"][ignored]
    assert (fl["c2s_packets"], fl["s2c_packets"]) == (want["c2s_packets"], want["s2c_packets"])
    fb = stats["feedback"]
    gets_after = sum(1 for f, r in by_flow(s.records, watched) if f > cut and "http.method" in r)
    assert fb["watched_records"] == len(w_after) - gets_after > 0, fb
    assert fb["ignored_records"] > 0
    assert stats["filters"]["web"]["records"] + fb["ignored_records"] - fb["watched_records"] == \
        stats["filters"]["web"]["matches"] - stats["filters"]["web"]["skipped_retransmissions"]


def test_watch_with_two_filters(tmp_path, lab):
    """Filter web: GET requests; filter other: the flow's other TCP packets.
    A watched flow gives a record of both filters for every later packet,
    also for the GET packets, which match web only."""
    cut = lab["npackets"] // 3
    fid = pick_flow(lab, cut, http=True)
    other = f"FILTER_NAME other\nBPF tcp and not ({SEED_BPF})\nFIELDS {FIELDS}\n"
    s = Session(tmp_path, lab["pcap"], bpf=SEED_BPF, extra=other)
    try:
        s.feed(cut)
        s.wait_processed(cut)
        assert s.command({"flow": fid, "watch": True})["ok"]
        stats = s.finish()
        others = [{k.decode(): v.decode() for k, v in f.items()}
                  for _, f in s.client.xrange("other")]
    finally:
        s.close()
    after = [f for f in lab["frames"][fid] if f > cut]
    web = by_flow(s.records, fid)
    gets = [f for f, r in web if f > cut and "http.method" in r]
    assert gets, "no GET of the flow after the command"
    assert [f for f, _ in web if f > cut] == after
    assert [f for f, _ in by_flow(others, fid) if f > cut] == after
    fb = stats["feedback"]
    # extras: web for the non-GET packets, other for the GET ones
    assert fb["watched_records"] == len(after), fb


def test_bad_commands_and_a_flood(tmp_path, lab):
    """Malformed, unknown, invalid and oversized messages, an unknown flow id,
    and 100 000 commands in a burst: acknowledged errors or counted drops,
    no crash, the capture's counters as without them."""
    cut = lab["npackets"] // 3
    # one worker, waiting for input, drains its queue every 100 ms; with the
    # full 1024 entries whether the burst overflows it depends on the
    # machine's speed (a fast one under ASan did not), with 8 it does
    s = Session(tmp_path, lab["pcap"], threads=1, env={"DATI_TEST_FB_QUEUE": "8"})
    try:
        s.feed(cut)
        time.sleep(0.3)
        for msg in ("nope", "{\"flow\": 1, \"tag\": \"x\"", "[1,2]"):
            s.client.publish("test:fb", msg)
        a = s.command({"dance": True})
        assert a["ok"] is False and a["reason"] == "unknown" and "dance" in a["error"], a
        a = s.command({"flow": 1, "tag": "bad tag!"})
        assert a["reason"] == "invalid", a
        a = s.command({"flow": 987654321, "tag": "x"})
        assert a["reason"] == "unknown_flow" and a["flow"] == 987654321, a
        s.client.publish("test:fb", json.dumps({"flow": 5, "tag": "x" * 10, "pad": "y" * 2000}))
        a = s.command({"stats": True})
        assert a["ok"] and a["feedback"]["malformed"] == 3 and a["feedback"]["oversized"] == 1, a
        p = s.client.pipeline(transaction=False)
        for i in range(100000):
            p.publish("test:fb", json.dumps({"flow": 1000000 + i, "tag": "flood"}))
        p.execute()
        # commands are taken in order: when this one is answered, all were read
        a = s.command({"stats": True}, timeout=300)
        assert a["feedback"]["received"] == 100000 + 9, a
        stats = s.finish()
    finally:
        s.close()
    fb = stats["feedback"]
    assert fb["received"] == 100000 + 9, fb
    assert fb["malformed"] == 3 and fb["oversized"] == 1 and fb["unknown"] == 1 and \
        fb["invalid"] == 1, fb
    routed = fb["received"] - 6 - 2   # rejected, and the stats requests
    assert fb["unknown_flow"] + fb["queue_full"] + fb["stopped"] == routed, fb
    assert fb["applied"] == 0 and fb["queue_full"] > 0, fb
    assert fb["acks"] + fb["acks_lost"] == fb["received"], fb
    assert stats["packets"] == lab["npackets"]
    assert stats["records"]["field"] == sum(len(v) for v in lab["frames"].values())
    assert all("tags" not in r for r in s.records)


def test_untag_flood_leaves_tagging_working(tmp_path, lab):
    """300 untag commands for flows no worker holds, each with a new name,
    are answered unknown_flow and take no tag name: a tag on a real flow
    still works (a worker's names are only for tags given)."""
    cut = lab["npackets"] // 3
    fid = pick_flow(lab, cut, http=False)
    s = Session(tmp_path, lab["pcap"], threads=2)
    try:
        s.feed(cut)
        s.wait_entries(sum(1 for fr in lab["frames"].values() for f in fr if f <= cut))
        p = s.client.pipeline(transaction=False)
        for i in range(300):
            p.publish("test:fb", json.dumps({"id": 10000 + i, "flow": 10**9 + i,
                                             "untag": f"x{i}"}))
        p.execute()
        ack = s.command({"flow": fid, "tag": "after"})
        assert ack["ok"], ack
        stats = s.finish()
    finally:
        s.close()
    fb = stats["feedback"]
    assert fb["unknown_flow"] == 300 and fb["refused"] == 0 and fb["names_full"] == 0, fb
    assert s.flows[fid]["tags"] == ["after"]


def test_match_rule_not_installed_everywhere_is_not_ok(tmp_path, lab):
    """Two workers; worker 0's 255 tag names are used up by tags on its own
    flows: a new match rule is installed by worker 1 only, and acknowledged
    refused (saying so), not ok. The flows of worker 1 still get the tag."""
    cut = lab["npackets"] - 1
    s = Session(tmp_path, lab["pcap"], threads=2, extra="RECORD_SEQ 1\n")
    try:
        s.feed(cut)
        s.wait_entries(sum(1 for fr in lab["frames"].values() for f in fr if f <= cut))
        owner = {int(f[b"flow"]): int(f[b"worker"]) for _, f in s.client.xrange("web")}
        mine = sorted(f for f, w in owner.items() if w == 0)
        assert len(mine) * 4 >= 255, len(mine)
        acks = s.commands([{"flow": mine[i // 4], "tag": f"n{i}"} for i in range(255)])
        assert all(a["ok"] for a in acks), [a for a in acks if not a["ok"]][:3]
        a = s.command({"match": {"tcp.dport": 80}, "tag": "rule"})
        assert a["ok"] is False and a["reason"] == "refused", a
        assert "installed by 1 of 2 workers" in a["error"], a
        stats = s.finish()
    finally:
        s.close()
    fb = stats["feedback"]
    assert fb["refused"] == 1 and fb["names_full"] == 1 and fb["applied"] == 255, fb
    http1 = [f for f, fl in s.flows.items() if fl.get("server_port") == 80 and owner[f] == 1]
    assert http1 and all("rule" in s.flows[f]["tags"] for f in http1)


class FakeRedis:
    """Just enough of a Redis server on a unix socket for dati reading an empty
    capture: SUBSCRIBE is answered with its confirmation and a first message
    in one write; PUBLISHes are kept (with their time); everything else is
    answered :1."""

    def __init__(self, path, first_message):
        import socket
        self.first = first_message.encode()
        self.published, self.subscribed_at = [], None
        self.srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.srv.bind(str(path))
        self.srv.listen(16)
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                conn, _ = self.srv.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    @staticmethod
    def _bulk(b):
        return b"$%d\r\n%s\r\n" % (len(b), b)

    def _serve(self, conn):
        f = conn.makefile("rb")
        try:
            while True:
                line = f.readline()
                if not line:
                    return
                args = []
                for _ in range(int(line[1:])):
                    n = int(f.readline()[1:])
                    args.append(f.read(n + 2)[:-2])
                cmd = args[0].upper()
                if cmd == b"SUBSCRIBE":
                    self.subscribed_at = time.monotonic()
                    conn.sendall(b"*3\r\n" + self._bulk(b"subscribe") + self._bulk(args[1]) +
                                 b":1\r\n" + b"*3\r\n" + self._bulk(b"message") +
                                 self._bulk(args[1]) + self._bulk(self.first))
                elif cmd == b"PUBLISH":
                    self.published.append((time.monotonic(), args[1], args[2]))
                    conn.sendall(b":0\r\n")
                else:
                    conn.sendall(b":1\r\n")
        except (OSError, ValueError):
            return
        finally:
            conn.close()

    def close(self):
        self.srv.close()


def test_message_in_the_subscribe_reply_is_not_held(tmp_path, binaries):
    """A command that comes in the same read as the SUBSCRIBE confirmation
    (left in hiredis's buffer, where poll() does not see it) is answered at
    once, not when more bytes happen to arrive."""
    sock = tmp_path / "fake.sock"
    fake = FakeRedis(sock, json.dumps({"id": "early", "stats": True}))
    conf = h.write_config(tmp_path, "f.conf", CONF.format(sock=sock, bpf="tcp", fields=FIELDS))
    dati = subprocess.Popen([str(h.DATI), "-r", "-", "-c", str(conf), "-q"],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env=h.sanitizer_env())
    try:
        dati.stdin.write(struct.pack("<IHHiIII", 0xa1b2c3d4, 2, 4, 0, 0, 65535, 1))
        dati.stdin.flush()
        end = time.monotonic() + 20
        while not any(ch == b"test:fb:reply" for _, ch, _ in fake.published):
            assert time.monotonic() < end, "the first command was never answered"
            time.sleep(0.02)
        t, _, msg = next(p for p in fake.published if p[1] == b"test:fb:reply")
        assert json.loads(msg)["id"] == "early"
        assert t - fake.subscribed_at < 1, "answered only when more bytes came"
        dati.stdin.close()
        dati.stdin = None
        _, err = dati.communicate(timeout=30)
        h.check_no_crash("dati", dati.returncode, err.decode("utf-8", "replace"))
    finally:
        if dati.poll() is None:
            dati.kill()
        fake.close()


# the records' connections never wait for a stalled Redis either (live mode):
# what is tested is the feedback channel's part of the shutdown
LIVE = {"DATI_TEST_REDIS_LIVE": "1"}


def test_stop_while_resubscribing_to_a_stalled_redis(tmp_path, lab):
    """The subscriber connection is killed and Redis frozen (CLIENT PAUSE,
    then SIGSTOP) before dati's new SUBSCRIBE is answered: SIGTERM still ends
    dati within seconds (each connection step has a timeout)."""
    s = Session(tmp_path, lab["pcap"], env=LIVE)
    stopped = False
    try:
        s.stop.set()   # the test's own subscriber is killed too
        s.listener.join()
        p = s.client.pipeline(transaction=False)
        p.execute_command("CLIENT", "KILL", "TYPE", "pubsub")
        p.execute_command("CLIENT", "PAUSE", "60000")
        p.execute()
        os.kill(s.server.pid, signal.SIGSTOP)
        stopped = True
        time.sleep(1)   # dati reconnects and waits for its SUBSCRIBE
        t0 = time.monotonic()
        s.dati.send_signal(signal.SIGTERM)
        try:
            _, err = s.dati.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            raise AssertionError("SIGTERM did not end dati")
        assert time.monotonic() - t0 < 8
        h.check_no_crash("dati", s.dati.returncode, err.decode("utf-8", "replace"))
    finally:
        if stopped:
            os.kill(s.server.pid, signal.SIGCONT)
        s.close()


def test_silent_subscriber_connection_is_replaced(tmp_path, lab):
    """Redis frozen for 10 s: the subscriber's PING goes unanswered, dati
    gives that connection up and subscribes again (counted in reconnects);
    once Redis is back, commands work."""
    s = Session(tmp_path, lab["pcap"], env=LIVE)
    try:
        assert s.command({"stats": True})["feedback"]["reconnects"] == 0
        os.kill(s.server.pid, signal.SIGSTOP)
        time.sleep(10)   # dati gives up after 6 s: a margin for a loaded machine
        os.kill(s.server.pid, signal.SIGCONT)
        # a new subscriber of the replies: the test's own may not have
        # survived the freeze
        ps = s.client.pubsub()
        ps.subscribe("test:fb:reply")
        ps.get_message(timeout=5)
        a, end = None, time.monotonic() + 20
        while a is None:
            assert time.monotonic() < end, "dati did not subscribe again"
            s.client.publish("test:fb", json.dumps({"stats": True}))
            m = ps.get_message(timeout=1)
            a = json.loads(m["data"]) if m and m["type"] == "message" else None
        ps.close()
        assert a["feedback"]["reconnects"] >= 1, a
        stats = s.finish()
    finally:
        s.close()
    assert stats["feedback"]["reconnects"] >= 1


def test_feedback_needs_redis(tmp_path, binaries):
    conf = h.write_config(tmp_path, "f.conf", "FEEDBACK_CHANNEL x\nFILTER_NAME a\nBPF tcp\n")
    run = h.run_dati(["-c", conf, "--check"], expect_rc=(2,), parse=False)
    assert "f.conf:1: FEEDBACK_CHANNEL needs Redis (REDIS_SOCK or REDIS_HOST): 'x'" in run.stderr


def test_live_flow_state(tmp_path, lab):
    """FLOW_STATE_INTERVAL 1: dati:flow:<id> holds the live counters of a flow
    (refreshed each second, not per packet), its tags once tagged, and at the
    end the same counters as its flow record."""
    cut = lab["npackets"] // 3
    fid = pick_flow(lab, cut, http=False)
    s = Session(tmp_path, lab["pcap"], extra="FLOW_STATE_INTERVAL 1\nREDIS_FLOW_EXPIRE 600\n")
    key = f"dati:flow:{fid}"
    try:
        s.feed(cut)
        s.wait_entries(sum(1 for fr in lab["frames"].values() for f in fr if f <= cut))
        want = sum(1 for f in lab["frames"][fid] if f <= cut)
        end = time.monotonic() + 10
        while int(s.client.hget(key, "packets") or 0) != want:
            assert time.monotonic() < end, s.client.hgetall(key)
            time.sleep(0.05)
        live = {k.decode(): v.decode() for k, v in s.client.hgetall(key).items()}
        assert live["state"] == "active" and "tags" not in live, live
        assert 0 < s.client.ttl(key) <= 1000000000 + 2
        assert s.command({"flow": fid, "tag": "seen"})["ok"]
        end = time.monotonic() + 10
        while s.client.hget(key, "tags") != b"seen":
            assert time.monotonic() < end, s.client.hgetall(key)
            time.sleep(0.05)
        stats = s.finish()
        final = {k.decode(): v.decode() for k, v in s.client.hgetall(key).items()}
    finally:
        s.close()
    rec = s.flows[fid]
    assert final["state"] == rec["reason"] == "end_of_input"
    for k in ("c2s_packets", "c2s_bytes", "s2c_packets", "s2c_bytes", "client", "server",
              "client_port", "server_port"):
        assert final[k] == str(rec[k]), k
    assert final["packets"] == str(rec["c2s_packets"] + rec["s2c_packets"])
    exact = json.loads(final["json"], parse_float=Decimal)   # the flow record, as written
    assert Decimal(final["first"]) == exact["first"] and Decimal(final["last"]) == exact["last"]
    assert final["filters"] == "web" and final["tags"] == "seen"
    assert json.loads(final["json"]) == rec
    assert stats["redis"]["flow_states"] >= len(s.flows)


def test_flow_state_replaces_a_previous_runs_hash(tmp_path, lab):
    """Flow ids restart with each run: a dati:flow:<id> left by an earlier
    run (REDIS_FLOW_EXPIRE) is replaced, not merged into, both for a flow
    refreshed while active and for one first written at its end."""
    cut = lab["npackets"] // 3
    fid = pick_flow(lab, cut, http=False)
    s = Session(tmp_path, lab["pcap"], extra="FLOW_STATE_INTERVAL 1\nREDIS_FLOW_EXPIRE 600\n")
    try:
        for f in lab["flows"]:
            s.client.hset(f"dati:flow:{f}", mapping={"stale": "yes", "tags": "old"})
        s.feed(cut)
        key = f"dati:flow:{fid}"
        end = time.monotonic() + 10
        while s.client.hget(key, "state") != b"active":
            assert time.monotonic() < end, s.client.hgetall(key)
            time.sleep(0.05)
        assert s.client.hget(key, "stale") is None and s.client.hget(key, "tags") is None
        s.finish()
        hashes = {f: s.client.hgetall(f"dati:flow:{f}") for f in lab["flows"]}
    finally:
        s.close()
    assert all(v.get(b"state") == b"end_of_input" for v in hashes.values())
    assert not [f for f, v in hashes.items() if b"stale" in v or b"tags" in v]


def test_flow_state_shows_tags_a_rule_gave(tmp_path, lab):
    """A match rule that tags more than 64 active flows: every one of their
    dati:flow:<id> hashes shows the tag soon, without new packets."""
    cut = lab["npackets"] // 2
    s = Session(tmp_path, lab["pcap"], extra="FLOW_STATE_INTERVAL 1\n")
    try:
        s.feed(cut)
        active = {f for f, fr in lab["frames"].items() if fr[0] <= cut}
        assert len(active) > 100
        end = time.monotonic() + 10
        while len(list(s.client.scan_iter("dati:flow:*", count=1000))) < len(active):
            assert time.monotonic() < end
            time.sleep(0.05)
        time.sleep(1.5)   # no refresh is due for lack of packets: only the tags can write
        assert s.command({"match": {"ip.proto": 6}, "tag": "all"})["ok"]
        end = time.monotonic() + 5
        while True:
            missing = [f for f in active if s.client.hget(f"dati:flow:{f}", "tags") != b"all"]
            if not missing:
                break
            assert time.monotonic() < end, f"{len(missing)} of {len(active)} hashes lack the tag"
            time.sleep(0.1)
        s.finish()
    finally:
        s.close()


def test_flow_state_deleted_at_end(tmp_path, lab):
    """Without REDIS_FLOW_EXPIRE, a flow's state hash goes with the flow."""
    cut = lab["npackets"] // 3
    s = Session(tmp_path, lab["pcap"], extra="FLOW_STATE_INTERVAL 1\n")
    try:
        s.feed(cut)
        end = time.monotonic() + 10
        while not list(s.client.scan_iter("dati:flow:*")):
            assert time.monotonic() < end
            time.sleep(0.05)
        s.finish()
        assert list(s.client.scan_iter("dati:flow:*")) == []
    finally:
        s.close()


def test_active_timeout(tmp_path, binaries):
    """ACTIVE_TIMEOUT 2 on 12 s of traffic: long flows get interim records
    (reason active_timeout, counters so far) every 2 s of packet time; the
    field records and final flow records are as without it."""
    pcap = tmp_path / "long.pcap"
    h.run_gen(["-n", 12000, "-s", 5, "--rate", 1000, "--http-share", 20, "--http-flows", 12,
               "--flows", 200, "--responses"], pcap)
    base = f"TIME_STATS 0\nPKT_TTL 1000000000\nFILTER_NAME web\nBPF tcp\nFIELDS {FIELDS}\n"
    plain = h.run_dati(["-r", pcap, "-c", h.write_config(tmp_path, "a.conf", base), "-q"])
    run = h.run_dati(["-r", pcap, "-c", h.write_config(tmp_path, "b.conf",
                                                        "ACTIVE_TIMEOUT 2\n" + base), "-q"])
    assert run.records == plain.records
    final = {f["flow"]: f for f in run.flows if f["reason"] != "active_timeout"}
    assert final == {f["flow"]: f for f in plain.flows}
    interim = defaultdict(list)
    for f in run.flows:
        if f["reason"] == "active_timeout":
            interim[f["flow"]].append(f)
    assert max(len(v) for v in interim.values()) >= 4
    for fid, recs in interim.items():
        end = final[fid]
        assert len(recs) <= int((end["last"] - end["first"]) / 2)
        pk = [r["c2s_packets"] + r["s2c_packets"] for r in recs] + \
             [end["c2s_packets"] + end["s2c_packets"]]
        assert pk == sorted(pk)
        for k, r in enumerate(recs, 1):
            assert r["last"] - r["first"] >= 2 * k - 1e-9 and r["first"] == end["first"]
    assert run.stats["records"]["flow"] == len(run.flows)


def test_active_timeout_after_a_gap(tmp_path, binaries):
    """ACTIVE_TIMEOUT 2, a UDP flow quiet from 0.5 s to 10 s: one interim
    record when it resumes, not one for each of the next packets."""
    from test_netpdl import udp_frame
    pcap = tmp_path / "gap.pcap"
    times = [0, 0.5, 10.0, 10.1, 10.2, 10.3, 10.4]
    with open(pcap, "wb") as f:
        f.write(struct.pack("<IHHiIII", 0xa1b2c3d4, 2, 4, 0, 0, 65535, 1))
        for i, t in enumerate(times):
            fr = udp_frame("198.18.0.1", "198.19.0.1", 4000, 9000, b"x%d" % i)
            us = round(t * 1e6)
            f.write(struct.pack("<IIII", 1700000000 + us // 1000000, us % 1000000,
                                len(fr), len(fr)) + fr)
    conf = h.write_config(tmp_path, "g.conf", "TIME_STATS 0\nPKT_TTL 1000\nACTIVE_TIMEOUT 2\n"
                          "FILTER_NAME u\nBPF udp\nFIELDS frame.number\n")
    run = h.run_dati(["-r", pcap, "-c", conf, "-q"])
    interim = [f for f in run.flows if f["reason"] == "active_timeout"]
    assert len(interim) == 1 and interim[0]["c2s_packets"] == 3, run.flows
    assert len(run.records) == len(times)


def test_record_seq_json(tmp_path, lab):
    """RECORD_SEQ 1: field and flow records carry worker and seq; per worker
    the numbers are 1, 2, 3 ... in output order, with nothing lost; without
    those two members the records are as without RECORD_SEQ."""
    base = f"TIME_STATS 0\nPKT_TTL 1000000000\nFILTER_NAME web\nBPF tcp\nFIELDS {FIELDS}\n"
    plain = h.run_dati(["-r", lab["pcap"], "-c", h.write_config(tmp_path, "a.conf", base),
                        "-q", "-t", 2])
    run = h.run_dati(["-r", lab["pcap"], "-c", h.write_config(tmp_path, "b.conf",
                                                               "RECORD_SEQ 1\n" + base),
                      "-q", "-t", 2])
    seqs = defaultdict(list)
    stripped = []
    for line in run.record_lines():   # byte-exact: the members come last
        m = re.fullmatch(r'(.*),"worker":(\d+),"seq":(\d+)\}', line)
        assert m, line
        seqs[int(m[2])].append(int(m[3]))
        stripped.append(m[1] + "}")
    assert sorted(seqs) == [0, 1]
    for s in seqs.values():
        assert s == list(range(1, len(s) + 1))
    assert sorted(stripped) == sorted(plain.record_lines())


ANALYZERS = h.REPO / "examples" / "analyzers"


def test_example_analyzers(tmp_path, binaries, generated):
    """examples/analyzers/python/tag_hosts.py tags and watches the flows whose
    Host is www.example.test; examples/analyzers/node/tagged_flows.js prints
    the flow records that carry the tag: one line per tagged flow."""
    import shutil
    sock = tmp_path / "r.sock"
    server, client = start_redis(sock=sock)
    conf = h.write_config(tmp_path, "a.conf", f"""\
TIME_STATS 0
PKT_TTL 1000000000
REDIS_SOCK {sock}
FEEDBACK_CHANNEL dati:feedback
FILTER_NAME http
BPF tcp[(tcp[12] >> 4) * 4 : 4] = 0x47455420
FIELDS ip.src ip.dst tcp.sport tcp.dport http.method http.url http.host
REDIS_CHANNEL http_GET
""")
    # the flows the analyzer must tag: those with that Host, from a JSON run
    plain = h.write_config(tmp_path, "j.conf", "\n".join(
        l for l in conf.read_text().splitlines() if not l.startswith(("REDIS", "FEEDBACK"))))
    n_exp = len({r["flow"] for r in h.run_dati(["-r", generated["path"], "-c", plain]).records
                 if r["fields"].get("http.host") == "www.example.test"})
    assert n_exp > 10
    procs = []
    node = shutil.which("node") and shutil.which("npm")
    if node:   # first: a slow install must not eat into the analyzers' idle time
        app = npm_app(tmp_path, ["tagged_flows.js"])
    replies = client.pubsub()
    replies.subscribe("dati:feedback:reply")
    replies.get_message(timeout=5)
    try:
        py = subprocess.Popen(["/usr/bin/python3", str(ANALYZERS / "python" / "tag_hosts.py"),
                               "--socket", str(sock), "--channel", "http_GET", "--hosts",
                               "www.example.test", "--idle-exit", "5"],
                              stdout=subprocess.PIPE, text=True)
        procs.append(py)
        assert "subscribed" in py.stdout.readline()
        if node:
            # quiet until the flow records come at the end of the input
            js = subprocess.Popen(["node", str(app / "tagged_flows.js"), "--socket", str(sock),
                                   "--idle-exit", "20"], stdout=subprocess.PIPE, text=True)
            procs.append(js)
            assert "subscribed" in js.stdout.readline()
        # the capture in pieces, then a pause before its end: the commands
        # land while the flows are active
        data = generated["path"].read_bytes()
        offs = h.packet_offsets(data)
        dati = subprocess.Popen([str(h.DATI), "-r", "-", "-c", str(conf), "-q"],
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                env=h.sanitizer_env())
        procs.append(dati)
        end = time.monotonic() + 20
        while client.pubsub_numsub("dati:feedback")[0][1] < 1:
            assert time.monotonic() < end
            time.sleep(0.02)
        step = len(offs) // 10
        dati.stdin.write(data[:24])
        for i in range(0, len(offs) - 1, step):
            dati.stdin.write(data[offs[i]:offs[min(i + step, len(offs) - 1)]])
            dati.stdin.flush()
            time.sleep(0.2)
        # the input ends once every flow's tag and watch were acknowledged
        acks, end = 0, time.monotonic() + 60
        while acks < 2 * n_exp:
            assert time.monotonic() < end, f"{acks} of {2 * n_exp} commands acknowledged"
            m = replies.get_message(timeout=0.5)
            if m and m["type"] == "message" and json.loads(m["data"])["ok"]:
                acks += 1
        dati.stdin.close()
        dati.stdin = None
        out, _ = dati.communicate(timeout=60)
        stats = json.loads(out.decode().splitlines()[-1])
        py_out, _ = py.communicate(timeout=60)
        fb = stats["feedback"]
        line = [l for l in py_out.splitlines() if l.startswith("flows tagged")][-1]
        n = int(line.split()[2])
        assert n == n_exp and \
            line == f"flows tagged {n} commands {2 * n} acknowledged {2 * n} failed 0"
        assert fb["applied"] == 2 * n and fb["unknown_flow"] == 0, fb
        if node:
            js_out, _ = js.communicate(timeout=60)
            flows = [l for l in js_out.splitlines() if l.endswith("[interesting]")]
            assert len(flows) == n, js_out[-2000:]
            assert f"tagged {n}" in js_out
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
        stop_redis(server)


def test_flow_start_events(tmp_path, lab):
    """FLOW_EVENTS: one message per new flow, after its first packet, with
    the tags a standing rule gave it at birth."""
    s = Session(tmp_path, lab["pcap"], extra="FLOW_EVENTS test:flows\n")
    events = []
    ps = s.client.pubsub()
    ps.subscribe("test:flows")
    ps.get_message(timeout=5)
    try:
        assert s.command({"match": {"tcp.dport": 80}, "tag": "web"})["ok"]
        s.finish()
        end = time.monotonic() + 10
        while len(events) < len(s.flows) and time.monotonic() < end:
            m = ps.get_message(timeout=0.2)
            if m and m["type"] == "message":
                events.append(json.loads(m["data"]))
    finally:
        ps.close()
        s.close()
    assert sorted(e["flow"] for e in events) == sorted(s.flows)
    for e in events:
        fl = s.flows[e["flow"]]
        assert e["reason"] == "start" and e["c2s_packets"] == 1 and e["s2c_packets"] == 0, e
        assert (e["client"], e["server"], e["first"]) == (fl["client"], fl["server"], fl["first"])
        assert e.get("tags") == (["web"] if fl.get("server_port") == 80 else None), e
