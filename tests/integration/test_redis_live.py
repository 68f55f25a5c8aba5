"""The Redis output's start and live behaviour against a real redis-server:
REDIS_RETRY waits for a server started after dati; the live (never waiting)
mode, reached here through the DATI_TEST_REDIS_LIVE=1 test hook, drops and
counts records by reason while Redis is stopped (SIGSTOP) or gone (SIGKILL),
and never holds back the capture; the queue depth is in the statistics."""
import json
import os
import signal
import subprocess
import threading
import time

import pytest

import dati_helpers as h
from test_redis import CONF, start_redis, start_redis_tcp, stop_redis

CONF_NOAUTH = CONF.replace("REDIS_AUTH s3cret\n", "")


def start_dati(args, env_extra=None):
    env = h.sanitizer_env()
    env.update(env_extra or {})
    return subprocess.Popen([str(h.DATI)] + [str(a) for a in args], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)


class Feeder:
    """Writes a capture into dati's standard input piece by piece, on a thread,
    so that the test can tell whether dati keeps reading."""

    def __init__(self, proc, data):
        self.proc, self.data, self.pos = proc, data, 0
        self.done = threading.Event()

    def feed(self, n):
        """Writes the next n bytes on a thread; returns the thread."""
        chunk = self.data[self.pos:self.pos + n]
        self.pos += len(chunk)
        self.done.clear()

        def run():
            self.proc.stdin.write(chunk)
            self.proc.stdin.flush()
            self.done.set()
        t = threading.Thread(target=run, daemon=True)
        t.start()
        return t

    def rest(self):
        t = self.feed(len(self.data))
        t.join(60)
        self.proc.stdin.close()
        self.proc.stdin = None   # communicate() must not flush it


def finish(proc, timeout=60):
    out, err = proc.communicate(timeout=timeout)
    err = err.decode("utf-8", "replace")
    h.check_no_crash("dati", proc.returncode, err)
    assert proc.returncode == 0, err[-3000:]
    return json.loads(out.decode().splitlines()[-1]), err


@pytest.fixture(scope="module")
def http_pcap(tmp_path_factory, binaries):
    path = tmp_path_factory.mktemp("live") / "http.pcap"
    h.run_gen(["-n", 40000, "-s", 3, "--http-share", 50], path)
    return path


def json_total(tmp_path, pcap):
    """Field records of the same capture with the JSON output."""
    jconf = h.write_config(tmp_path, "json.conf",
                           "\n".join(l for l in CONF.format(sock="x").splitlines()
                                     if not l.startswith(("REDIS_SOCK", "REDIS_AUTH", "SESSION"))))
    return len(h.run_dati(["-r", pcap, "-c", jconf, "-q"]).records)


def test_retry_waits_for_redis_started_later(tmp_path, binaries, http_pcap):
    """REDIS_RETRY 20: dati starts first, Redis a second later; every record
    arrives, none is lost."""
    sock = tmp_path / "r.sock"
    conf = h.write_config(tmp_path, "r.conf",
                          CONF_NOAUTH.format(sock=sock) + "REDIS_RETRY 20\n")
    dati = start_dati(["-r", http_pcap, "-c", conf, "-t", 2, "--no-progress"])
    time.sleep(1)
    assert dati.poll() is None, "dati gave up before REDIS_RETRY ran out"
    server, client = start_redis(sock=sock)
    try:
        stats, err = finish(dati)
        rd = stats["redis"]
        assert rd["lost"] == 0 and rd["records"] == stats["records"]["field"] > 1000, rd
        assert len(list(client.scan_iter("dati:rec:*"))) == rd["records"]
        assert "retrying (REDIS_RETRY 20)" in err and "r.sock" in err
    finally:
        stop_redis(server)


def test_retry_gives_up_with_the_address(tmp_path, binaries, http_pcap):
    conf = h.write_config(tmp_path, "r.conf",
                          CONF_NOAUTH.format(sock=tmp_path / "none.sock") + "REDIS_RETRY 1\n")
    t0 = time.monotonic()
    run = h.run_dati(["-r", http_pcap, "-c", conf], expect_rc=(2,), parse=False)
    assert 0.9 < time.monotonic() - t0 < 10
    assert "cannot connect to Redis at" in run.stderr and "none.sock" in run.stderr


def test_retry_stops_on_sigterm(tmp_path, binaries, http_pcap):
    conf = h.write_config(tmp_path, "r.conf",
                          CONF_NOAUTH.format(sock=tmp_path / "none.sock") + "REDIS_RETRY 600\n")
    dati = start_dati(["-r", http_pcap, "-c", conf])
    # retrying, so its signal handlers are in place
    assert b"retrying (REDIS_RETRY 600)" in dati.stderr.readline()
    time.sleep(0.3)
    t0 = time.monotonic()
    dati.send_signal(signal.SIGTERM)
    _, err = dati.communicate(timeout=10)
    assert time.monotonic() - t0 < 4, "SIGTERM did not stop the retries promptly"
    assert dati.returncode == 2 and b"none.sock" in err


def test_live_drops_while_redis_is_stopped(tmp_path, binaries, http_pcap):
    """Live mode, Redis frozen with SIGSTOP: dati keeps reading (the feeder
    is never blocked), records are dropped and counted as queue_full; after
    SIGCONT records are stored again; every record is accounted for, and
    the flow start events (FLOW_EVENTS) apart from the records."""
    sock = tmp_path / "r.sock"
    server, client = start_redis(sock=sock)
    data = http_pcap.read_bytes()
    conf = h.write_config(tmp_path, "r.conf", CONF_NOAUTH.format(sock=sock) +
                          "REDIS_PIPELINE 20\nFLOW_EVENTS test:start\n")
    dati = start_dati(["-r", "-", "-c", conf, "-q"], {"DATI_TEST_REDIS_LIVE": "1"})
    feeder = Feeder(dati, data)
    stopped = False
    try:
        third = len(data) // 3
        feeder.feed(third).join(30)
        time.sleep(0.5)
        os.kill(server.pid, signal.SIGSTOP)
        stopped = True
        time.sleep(0.2)
        # some 13 000 records while Redis cannot take any: the pipe must not fill up
        t = feeder.feed(third)
        t.join(20)
        assert not t.is_alive(), "dati stopped reading while Redis was stopped"
        time.sleep(1)   # the last of it processed with Redis still stopped
        os.kill(server.pid, signal.SIGCONT)
        stopped = False
        time.sleep(0.3)
        feeder.rest()
        stats, _ = finish(dati)
    finally:
        if stopped:
            os.kill(server.pid, signal.SIGCONT)
        dati.kill()
    try:
        rd, rec = stats["redis"], stats["records"]
        assert rd["dropped_queue_full"] > 1000, rd
        assert rd["dropped_disconnected"] == 0 and rd["lost"] == rd["flows_lost"] == 0, rd
        # the drops are field and flow records (reading at full speed overruns Redis too)
        assert rec["field"] == rd["records"]
        assert rec["field_dropped"] + rec["flow_dropped"] == rd["dropped_queue_full"]
        # one start event per flow: published or counted as dropped
        assert rd["flow_updates_dropped"] > 0, rd
        assert rd["flow_events"] + rd["flow_updates_dropped"] == stats["flows"]["created"], rd
        assert rec["field"] + rec["field_dropped"] == json_total(tmp_path, http_pcap)
        assert len(list(client.scan_iter("dati:rec:*"))) == rd["records"]
        assert rd["queued"] == 0 and 0 < rd["queued_peak"] <= 2 * 3 * 20, rd   # two pipelines
    finally:
        stop_redis(server)


def test_live_drops_while_redis_is_gone(tmp_path, binaries, http_pcap):
    """Live mode, Redis killed mid-run and started again: records are dropped
    as disconnected meanwhile, dati reconnects, later records are stored."""
    sock = tmp_path / "r.sock"
    server, _ = start_redis(sock=sock)
    data = http_pcap.read_bytes()
    conf = h.write_config(tmp_path, "r.conf", CONF_NOAUTH.format(sock=sock))
    dati = start_dati(["-r", "-", "-c", conf, "-q", "-t", 2], {"DATI_TEST_REDIS_LIVE": "1"})
    feeder = Feeder(dati, data)
    try:
        third = len(data) // 3
        feeder.feed(third).join(30)
        time.sleep(0.5)
        os.kill(server.pid, signal.SIGKILL)
        server.wait()
        t = feeder.feed(third)
        t.join(20)
        assert not t.is_alive(), "dati stopped reading while Redis was gone"
        time.sleep(1)
        server, client = start_redis(sock=sock)
        time.sleep(2.5)   # the back-off reaches 2 s at most
        feeder.rest()
        stats, _ = finish(dati)
    finally:
        dati.kill()
    try:
        rd, rec = stats["redis"], stats["records"]
        assert rd["dropped_disconnected"] > 1000 and rd["reconnects"] >= 1, rd
        assert rec["field"] + rec["field_dropped"] == json_total(tmp_path, http_pcap)
        stored = len(list(client.scan_iter("dati:rec:*")))
        assert 0 < stored <= rd["records"] - rd["lost"], (stored, rd)
    finally:
        stop_redis(server)


def test_queue_depth_in_stats(tmp_path, binaries, http_pcap):
    """File mode: the peak of records waiting for their replies is at most
    two pipelines per worker, and nothing waits at the end."""
    sock = tmp_path / "r.sock"
    server, _ = start_redis(sock=sock)
    try:
        conf = h.write_config(tmp_path, "r.conf",
                              CONF_NOAUTH.format(sock=sock) + "REDIS_PIPELINE 30\n")
        run = h.run_dati(["-r", http_pcap, "-c", conf, "-t", 2, "-q"])
        rd = run.stats["redis"]
        # per worker two pipelines, each at most 30 field records or 3 * 30 commands
        assert rd["queued"] == 0 and 30 <= rd["queued_peak"] <= 2 * 2 * 3 * 30, rd
        assert rd["dropped_queue_full"] == rd["dropped_disconnected"] == 0
    finally:
        stop_redis(server)


def test_sequence_numbers_show_the_gaps(tmp_path, binaries, http_pcap):
    """RECORD_SEQ 1, live mode, stream layout, Redis stopped for a while: each
    record (field or flow) has worker and seq; the missing sequence numbers
    are exactly the records counted as dropped."""
    sock = tmp_path / "r.sock"
    server, client = start_redis(sock=sock)
    data = http_pcap.read_bytes()
    conf = h.write_config(tmp_path, "r.conf", CONF_NOAUTH.format(sock=sock) +
                          "REDIS_MODE stream\nRECORD_SEQ 1\nREDIS_PIPELINE 20\n")
    dati = start_dati(["-r", "-", "-c", conf, "-q", "-t", 2], {"DATI_TEST_REDIS_LIVE": "1"})
    feeder = Feeder(dati, data)
    stopped = False
    try:
        feeder.feed(len(data) // 3).join(30)
        time.sleep(0.5)
        os.kill(server.pid, signal.SIGSTOP)
        stopped = True
        feeder.feed(len(data) // 3).join(20)
        time.sleep(1)
        os.kill(server.pid, signal.SIGCONT)
        stopped = False
        feeder.rest()
        stats, _ = finish(dati)
        seqs = {0: [], 1: []}
        for _, f in client.xrange("http_GET") + client.xrange("dns"):
            seqs[int(f[b"worker"])].append(int(f[b"seq"]))
        for _, f in client.xrange("test:sessions"):
            flow = json.loads(f[b"flow"])
            seqs[flow["worker"]].append(flow["seq"])
    finally:
        if stopped:
            os.kill(server.pid, signal.SIGCONT)
        dati.kill()
        stop_redis(server)
    rec = stats["records"]
    made = rec["field"] + rec["flow"] + rec["field_dropped"] + rec["flow_dropped"]
    stored = sum(len(s) for s in seqs.values())
    assert stored == rec["field"] + rec["flow"] and stats["redis"]["lost"] == 0
    assert all(len(s) == len(set(s)) for s in seqs.values()), "a sequence number twice"
    # every number from 1 up is used once per worker: the gaps are the drops
    # (those after a worker's last stored record show with its next one)
    inner = sum(max(s) - len(s) for s in seqs.values())
    assert 0 < inner <= made - stored == rec["field_dropped"] + rec["flow_dropped"]
    assert sum(max(s) for s in seqs.values()) <= made


def test_live_exit_while_redis_is_stopped(tmp_path, binaries, http_pcap):
    """Live mode, the input ends while Redis is frozen: dati does not hang on
    it; the final flush and statistics give up after the 2 s socket timeout,
    and what they held is counted (lost, dropped)."""
    sock = tmp_path / "r.sock"
    server, _ = start_redis(sock=sock)
    data = http_pcap.read_bytes()
    conf = h.write_config(tmp_path, "r.conf", CONF_NOAUTH.format(sock=sock))
    dati = start_dati(["-r", "-", "-c", conf, "-q"], {"DATI_TEST_REDIS_LIVE": "1"})
    feeder = Feeder(dati, data)
    try:
        feeder.feed(len(data) // 2).join(30)
        time.sleep(0.5)
        os.kill(server.pid, signal.SIGSTOP)
        t0 = time.monotonic()
        feeder.rest()
        stats, _ = finish(dati, timeout=30)
        assert time.monotonic() - t0 < 15
    finally:
        os.kill(server.pid, signal.SIGCONT)
        dati.kill()
        stop_redis(server)
    rd, rec = stats["redis"], stats["records"]
    assert rd["dropped_queue_full"] > 0 and rd["lost"] > 0, rd
    assert rec["field"] + rec["field_dropped"] == json_total(tmp_path, http_pcap)


def test_live_reconnects_off_the_packet_path(tmp_path, binaries, http_pcap):
    """Live mode, Redis gone and its address silent (a listener whose accept
    queue is full: each connection attempt waits out its 2 s timeout): the
    attempts run on a thread of their own, so packets go on being processed
    meanwhile, their records counted as dropped_disconnected."""
    import socket
    server, _, port = start_redis_tcp()
    data = http_pcap.read_bytes()
    offs = h.packet_offsets(data)
    conf = h.write_config(tmp_path, "r.conf", CONF_NOAUTH.replace("REDIS_SOCK {sock}", (
        f"REDIS_HOST 127.0.0.1\nREDIS_PORT {port}")))
    dati = start_dati(["-r", "-", "-c", conf, "-q"], {"DATI_TEST_REDIS_LIVE": "1"})
    lines = []
    reader = threading.Thread(target=lambda: lines.extend(dati.stdout), daemon=True)
    reader.start()
    silent, fillers = socket.socket(), []
    try:
        def feed(upto):
            dati.stdin.write(data[feed.sent:offs[upto]])
            dati.stdin.flush()
            feed.sent = offs[upto]
        feed.sent = 0

        def processed(want):
            """Packets processed, from the statistics SIGUSR1 asks for, once
            they reach want or 1.5 s have passed (an attempt that held the
            worker would take 2 s)."""
            end, got = time.monotonic() + 1.5, None
            while got != want and time.monotonic() < end:
                n = len(lines)
                dati.send_signal(signal.SIGUSR1)
                while len(lines) == n and time.monotonic() < end:
                    time.sleep(0.01)
                if len(lines) > n:
                    got = json.loads(lines[-1])["packets"]
            return got

        feed(1000)
        time.sleep(0.5)
        os.kill(server.pid, signal.SIGKILL)
        server.wait()
        silent.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        silent.bind(("127.0.0.1", port))
        silent.listen(0)
        fillers.append(socket.create_connection(("127.0.0.1", port)))   # the queue is full
        feed(2000)      # finds the connection broken
        time.sleep(1)   # a reconnection attempt is waiting now
        assert processed(2000) == 2000
        feed(6000)
        # an attempt that held the worker would hold these packets up to 2 s
        assert processed(6000) == 6000, "packets held up while Redis was being reconnected"
        feed(len(offs) - 1)
        dati.stdin.close()
        dati.stdin = None
        dati.wait(timeout=60)
        reader.join(10)
    finally:
        dati.kill()
        silent.close()
        for f in fillers:
            f.close()
        if server.poll() is None:
            stop_redis(server)
    assert dati.returncode == 0
    stats = json.loads(lines[-1])
    rd, rec = stats["redis"], stats["records"]
    assert stats["packets"] == len(offs) - 1
    assert rd["reconnects"] == 0 and rd["dropped_disconnected"] > 1000, rd
    assert rec["field"] + rec["field_dropped"] == json_total(tmp_path, http_pcap)


@pytest.mark.parametrize("threads", [1, 3])
def test_file_mode_stop_while_redis_is_stopped(tmp_path, binaries, http_pcap, threads):
    """Reading a file, Redis frozen mid-run: dati waits for it (back-pressure,
    nothing lost) until told to stop; then the waits for Redis give up after
    5 s, and dati exits with its final statistics instead of hanging (with 3
    workers, the signal wakes the main thread, not the workers waiting on
    Redis). Every record is accounted for: stored, lost in flight, or
    dropped once Redis was given up."""
    sock = tmp_path / "r.sock"
    server, client = start_redis(sock=sock)
    data = http_pcap.read_bytes()
    conf = h.write_config(tmp_path, "r.conf", CONF_NOAUTH.format(sock=sock))
    dati = start_dati(["-r", "-", "-c", conf, "-q", "-t", threads])
    out = []
    reader = threading.Thread(target=lambda: out.extend(dati.stdout), daemon=True)
    reader.start()
    third = len(data) // 3

    def feed(chunk, close):
        try:
            dati.stdin.write(chunk)
            dati.stdin.flush()
            if close:
                dati.stdin.close()
        except (BrokenPipeError, ValueError):
            pass   # dati stopped before reading it all
    feed(data[:third], False)
    stopped = False
    try:
        end = time.monotonic() + 30
        while len(client.keys("dati:rec:*")) < 1000:   # records flow into Redis
            assert time.monotonic() < end, "no records stored"
            time.sleep(0.05)
        os.kill(server.pid, signal.SIGSTOP)
        stopped = True
        feeder = threading.Thread(target=feed, args=(data[third:], True), daemon=True)
        feeder.start()
        time.sleep(1.5)   # dati blocks on Redis (back-pressure), and the feeder on dati
        dati.send_signal(signal.SIGTERM)
        t0 = time.monotonic()
        dati.wait(timeout=60)
        waited = time.monotonic() - t0
        reader.join(10)
    finally:
        if stopped:
            os.kill(server.pid, signal.SIGCONT)
        dati.kill()
        stop_redis(server)
    err = dati.stderr.read().decode("utf-8", "replace")
    h.check_no_crash("dati", dati.returncode, err)
    assert waited < 20, f"{waited:.1f} s to stop"
    stats = json.loads(out[-1])
    rd, rec = stats["redis"], stats["records"]
    assert stats["final"] and rd["records"] == rec["field"] and rd["lost"] <= rd["records"]
    assert rd["lost"] + rec["field_dropped"] > 0, (rd, rec)   # the stop cut something off
    assert rec["field"] + rec["field_dropped"] <= json_total(tmp_path, http_pcap)
