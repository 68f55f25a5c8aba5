"""The Redis output against a real redis-server (started on a unix socket in
a temporary directory, stopped by its pid): every record of the JSON output
is a hash in Redis with the same fields and a TTL, its key is published on
the filter's channel, and every flow record is published on the session
channel, for every worker count."""
import json
import os
import shutil
import signal
import subprocess
import threading
import time
from collections import Counter
from decimal import Decimal

import pytest

import dati_helpers as h

redis = pytest.importorskip("redis", reason="python3-redis is not installed (make deps)")
if not shutil.which("redis-server"):
    pytest.skip("redis-server is not installed (make deps)", allow_module_level=True)


def start_redis(*args, sock=None, port=0, password=None):
    """A redis-server of the test's own, on a unix socket (or a loopback port),
    with no persistence; returns (process, client) once it answers PING."""
    cmd = ["redis-server", "--port", str(port), "--save", "", "--appendonly", "no", *args]
    if sock:
        cmd += ["--unixsocket", str(sock)]
    else:
        cmd += ["--bind", "127.0.0.1"]
    if password:
        cmd += ["--requirepass", password]
    p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    client = (redis.Redis(unix_socket_path=str(sock), password=password) if sock
              else redis.Redis(host="127.0.0.1", port=port, password=password))
    for _ in range(250):
        if p.poll() is not None:   # e.g. the port was taken: not someone else's server
            break
        try:
            client.ping()
            return p, client
        except (redis.exceptions.ConnectionError, FileNotFoundError):
            time.sleep(0.02)
    p.kill()
    p.wait()
    raise AssertionError(f"redis-server did not start: {' '.join(cmd)}")


def stop_redis(p):
    os.kill(p.pid, signal.SIGTERM)
    p.wait(timeout=10)


def start_redis_tcp():
    """start_redis() on a free loopback port; returns (process, client, port)."""
    import socket
    for attempt in range(3):   # a free port may be taken before redis-server binds it
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        try:
            return (*start_redis(port=port), port)
        except AssertionError:
            if attempt == 2:
                raise


def npm_app(tmp_path, names):
    """The node analyzer files `names` in a directory of their own, with npm's
    packages installed there; returns the directory."""
    app = tmp_path / "node"
    app.mkdir()
    for name in ["package.json", *names]:
        shutil.copy(ANALYZERS / "node" / name, app / name)
    npm = subprocess.run(["npm", "install", "--no-audit", "--no-fund", "--loglevel=error"],
                         cwd=app, capture_output=True, text=True, timeout=300)
    assert npm.returncode == 0, f"npm install failed: {npm.stderr[-2000:]}"
    return app


@pytest.fixture
def redis_server(tmp_path):
    sock = tmp_path / "redis.sock"
    p, client = start_redis(sock=sock, password="s3cret")
    yield {"sock": sock, "client": client}
    stop_redis(p)


CONF = """\
TIME_STATS 0
PKT_TTL 1000000000
REDIS_SOCK {sock}
REDIS_AUTH s3cret
SESSION_CHANNEL test:sessions
FILTER_NAME http
BPF tcp
FIELDS ip.src ip.dst tcp.sport tcp.dport http.method http.url http.host http.useragent http.referer
REDIS_CHANNEL http_GET
REDIS_EXPIRE 300
FILTER_NAME dns
BPF port 53
FIELDS ip.src ip.dst udp.sport udp.dport dns.id dns.qry.name dns.qry.type
REDIS_PREFIX dati:rec:dns:
"""


def json_value(v):
    if isinstance(v, str):
        return v.encode("utf-8", "surrogateescape")
    return str(v).encode()


def record_tuple(fields_bytes):
    return tuple(sorted(fields_bytes.items()))


def expected_from_json(run):
    out = Counter()
    for r in run.records:
        d = {b"Timestamp": str(r["ts"]).encode(), b"filter": r["filter"].encode()}
        if "flow" in r:
            d[b"flow"] = str(r["flow"]).encode()
        for k, v in r["fields"].items():
            d[k.encode()] = json_value(v)
        if "probe" in r:
            d[b"probe"] = r["probe"].encode()
        out[record_tuple(d)] += 1
    return out


def subscribe(client, channels):
    """Collects every message published on channels until finish() is
    called, once dati has exited."""
    ps = client.pubsub()
    ps.subscribe(*channels)
    for _ in range(len(channels)):
        ps.get_message(timeout=5)   # the subscribe confirmations
    got, end_mark = [], b"__test_end__"

    def loop():
        while True:
            m = ps.get_message(timeout=0.1)
            if m and m["type"] == "message":
                if m["data"] == end_mark:
                    return
                got.append((m["channel"], m["data"]))
    t = threading.Thread(target=loop, daemon=True)
    t.start()

    def finish():
        # a subscriber gets messages in order: after this mark, nothing of dati's waits
        client.publish(channels[0], end_mark)
        t.join(60)
        assert not t.is_alive(), "the end mark never came back"
        ps.close()
        return got
    return finish


def parse_decimal(line):
    return json.loads(line, parse_float=Decimal)


@pytest.mark.parametrize("threads", (1, 3))
def test_records_in_redis_equal_json(tmp_path, binaries, redis_server, threads, generated):
    # every corpus capture with one worker, a sample with three
    names = h.corpus_captures() if threads == 1 else \
        [n for n in ("ndpi_1kxun.pcap", "zeek_wikipedia.pcap") if (h.PCAP_DIR / n).exists()]
    captures = [generated["path"]] + [h.PCAP_DIR / n for n in names]
    conf = h.write_config(tmp_path, "redis.conf", CONF.format(sock=redis_server["sock"]))
    jconf = h.write_config(tmp_path, "json.conf",
                           "\n".join(l for l in CONF.format(sock="x").splitlines()
                                     if not l.startswith(("REDIS_SOCK", "REDIS_AUTH", "SESSION"))))
    client = redis_server["client"]
    for cap in captures:
        client.flushall()
        finish = subscribe(client, ["http_GET", "dns", "test:sessions", "dati:stats"])
        run = h.run_dati(["-r", cap, "-c", conf, "-t", threads, "-q"], expect_rc=(0, 1))
        messages = finish()
        want = h.run_dati(["-r", cap, "-c", jconf, "-t", threads, "-q"], expect_rc=(0, 1))
        rd = run.stats["redis"]
        assert rd["lost"] == 0 and rd["errors"] == 0, rd
        assert rd["records"] == len(want.records) and rd["flows"] == len(want.flows), (cap, rd)
        keys = [k for k in client.scan_iter("dati:rec:*")]
        assert len(keys) == len(want.records), cap
        dns_keys = [k for k in keys if k.startswith(b"dati:rec:dns:")]   # REDIS_PREFIX
        assert len(dns_keys) == sum(1 for r in want.records if r["filter"] == "dns"), cap
        got = Counter(record_tuple(client.hgetall(k)) for k in keys)
        assert got == expected_from_json(want), f"{cap}: Redis hashes differ from the JSON records"
        assert all(0 < client.ttl(k) <= 300 for k in keys[:50])
        # statistics on the bus: the final record, as a hash and on the channel
        final = [l for l in run.lines if l.startswith('{"type":"stats"')][-1]
        assert client.hget("dati:stats", "json").decode() == final
        assert client.hget("dati:stats", "final") == b"1"
        assert final.encode() in [d for c, d in messages if c == b"dati:stats"]
        published = [d for c, d in messages if c not in (b"test:sessions", b"dati:stats")]
        assert sorted(published) == sorted(keys), f"{cap}: published keys differ from the hashes"
        sessions = Counter(d.decode() for c, d in messages if c == b"test:sessions")
        flows = Counter(l for l in want.lines if l.startswith('{"type":"flow"'))
        assert sessions == flows, f"{cap}: session messages differ from the flow records"


def test_probe_name_single_redis(tmp_path, binaries, redis_server, generated):
    """PROBE_NAME with one Redis: every field and flow record carries it (JSON
    and Redis alike), flow hashes and the statistics hash are named by it,
    the statistics are still published on dati:stats."""
    extra = "PROBE_NAME edge-1\nREDIS_FLOW_EXPIRE 60\n"
    conf = h.write_config(tmp_path, "redis.conf", extra + CONF.format(sock=redis_server["sock"]))
    jconf = h.write_config(tmp_path, "json.conf", "PROBE_NAME edge-1\n" +
                           "\n".join(l for l in CONF.format(sock="x").splitlines()
                                     if not l.startswith(("REDIS_SOCK", "REDIS_AUTH", "SESSION"))))
    client = redis_server["client"]
    client.flushall()
    finish = subscribe(client, ["test:sessions", "dati:stats"])
    run = h.run_dati(["-r", generated["path"], "-c", conf, "-q"])
    messages = finish()
    want = h.run_dati(["-r", generated["path"], "-c", jconf, "-q"])
    assert want.records and want.flows
    assert all(r["probe"] == "edge-1" for r in want.records + want.flows)
    assert want.stats["probe"] == "edge-1"
    keys = list(client.scan_iter("dati:rec:*"))
    got = Counter(record_tuple(client.hgetall(k)) for k in keys)
    assert got == expected_from_json(want)
    assert len(list(client.scan_iter("dati:flow:edge-1:*"))) == len(want.flows)
    assert client.exists("dati:stats") == 0
    final = [l for l in run.lines if l.startswith('{"type":"stats"')][-1]
    assert client.hget("dati:stats:edge-1", "json").decode() == final
    assert final.encode() in [d for c, d in messages if c == b"dati:stats"]
    sessions = [json.loads(d) for c, d in messages if c == b"test:sessions"]
    assert len(sessions) == len(want.flows) and all(f["probe"] == "edge-1" for f in sessions)


def test_redis_unreachable_is_a_clear_error(tmp_path, binaries, generated):
    conf = h.write_config(tmp_path, "r.conf", CONF.format(sock=tmp_path / "no.sock"))
    run = h.run_dati(["-r", generated["path"], "-c", conf], expect_rc=(2,), parse=False)
    assert "cannot connect to Redis at" in run.stderr and "no.sock" in run.stderr


def test_redis_wrong_password(tmp_path, binaries, redis_server, generated):
    text = CONF.format(sock=redis_server["sock"]).replace("REDIS_AUTH s3cret", "REDIS_AUTH wrong")
    conf = h.write_config(tmp_path, "r.conf", text)
    run = h.run_dati(["-r", generated["path"], "-c", conf], expect_rc=(2,), parse=False)
    assert "refused AUTH" in run.stderr


ANALYZERS = h.REPO / "examples" / "analyzers"


def run_with_analyzer(cmd, redis_server, generated, tmp_path):
    """Starts an analyzer, waits until it has subscribed, runs dati on the
    generated capture, and returns (what the analyzer printed, dati's run);
    the analyzer ends by itself when idle."""
    conf = h.write_config(tmp_path, "redis.conf", CONF.format(sock=redis_server["sock"]))
    analyzer = subprocess.Popen([str(c) for c in cmd], stdout=subprocess.PIPE, text=True)
    assert "subscribed" in analyzer.stdout.readline()
    run = h.run_dati(["-r", generated["path"], "-c", conf, "-q"])
    out, _ = analyzer.communicate(timeout=60)
    want = (f"total requests {run.stats['filters']['http']['records']} "
            f"sessions {run.stats['redis']['flows']}")
    assert want in out, out
    return out, run


def test_python_analyzer(tmp_path, binaries, redis_server, generated):
    """examples/analyzers/python/top_hosts.py, started before dati, counts
    every request and session and names the hosts the records carry."""
    out, _ = run_with_analyzer(
        ["/usr/bin/python3", ANALYZERS / "python" / "top_hosts.py", "--socket",
         redis_server["sock"], "--password", "s3cret", "--channel", "http_GET",
         "--sessions", "test:sessions", "--period", "0.5", "--idle-exit", "2", "--top", "10"],
        redis_server, generated, tmp_path)
    tops = {l.split()[3]: int(l.split()[2]) for l in out.splitlines() if l.startswith("top host")}
    assert set(tops) == {"www.example.test", "search.example.test", "cdn.example.test"}, out
    assert sum(tops.values()) == generated["summary"]["http_requests"], out


def test_node_analyzer(tmp_path, binaries, redis_server, generated):
    """examples/analyzers/node/requests.js (the seed's analyzer, npm's redis
    client), started before dati: counts every request and session."""
    if not shutil.which("node") or not shutil.which("npm"):
        pytest.skip("node and npm are not installed")
    app = npm_app(tmp_path, ["requests.js"])
    out, _ = run_with_analyzer(
        ["node", app / "requests.js", "--socket", redis_server["sock"], "--password", "s3cret",
         "--channel", "http_GET", "--sessions", "test:sessions", "--period", "0.5",
         "--idle-exit", "2"], redis_server, generated, tmp_path)
    periods = [l for l in out.splitlines() if l.startswith("Requests:")]
    assert periods, out
    tops = {l.split()[3]: int(l.split()[2]) for l in out.splitlines() if l.startswith("top host")}
    assert sum(tops.values()) == generated["summary"]["http_requests"], out


@pytest.mark.parametrize("threads", (1, 3))
def test_redis_restarted_mid_run(tmp_path, binaries, threads):
    """Redis stopped while dati writes to it, and started again: dati waits,
    reconnects, resends what was not acknowledged, and loses nothing."""
    sock = tmp_path / "r.sock"
    pcap = tmp_path / "gen.pcap"
    h.run_gen(["-n", 6000, "--http-share", 30], pcap)
    conf = h.write_config(tmp_path, "r.conf", CONF.format(sock=sock).replace(
        "REDIS_AUTH s3cret\n", ""))
    server, _ = start_redis(sock=sock)
    feeder = subprocess.Popen(["sh", "-c", f"head -c 3000000 {pcap}; sleep 3; tail -c +3000001 {pcap}"],
                              stdout=subprocess.PIPE)
    dati = subprocess.Popen([str(h.DATI), "-r", "-", "-c", str(conf), "-t", str(threads), "-q"],
                            stdin=feeder.stdout, stdout=subprocess.PIPE, env=h.sanitizer_env())
    feeder.stdout.close()
    try:
        time.sleep(1)
        os.kill(server.pid, signal.SIGKILL)   # mid-run, without a goodbye
        server.wait()
        time.sleep(1.5)
        server, client = start_redis(sock=sock)
        out, _ = dati.communicate(timeout=60)
        stored = client.hgetall("dati:stats")   # the statistics connection mended too
    finally:
        dati.kill()
        stop_redis(server)
    assert dati.returncode == 0
    stats = json.loads(out.decode().splitlines()[-1])
    assert stored[b"final"] == b"1" and json.loads(stored[b"json"]) == stats
    rd = stats["redis"]
    assert rd["reconnects"] >= 1, rd
    assert rd["lost"] == 0 and rd["flows_lost"] == 0, rd
    assert rd["records"] == stats["records"]["field"], (rd, stats["records"])


def test_redis_out_of_memory_is_counted(tmp_path, binaries, generated):
    """A Redis with a tiny maxmemory answers OOM: dati counts each refused
    record and the errors by kind, finishes, and does not crash."""
    sock = tmp_path / "r.sock"
    server, _ = start_redis("--maxmemory", "1mb", "--maxmemory-policy", "noeviction", sock=sock)
    try:
        conf = h.write_config(tmp_path, "r.conf", CONF.format(sock=sock).replace(
            "REDIS_AUTH s3cret\n", ""))
        run = h.run_dati(["-r", generated["path"], "-c", conf, "-t", 2])
        rd = run.stats["redis"]
        assert rd["errors_oom"] > 0 and rd["lost"] > 0, rd
        assert rd["errors"] == rd["errors_oom"], rd
        assert rd["records"] == run.stats["records"]["field"]
        assert "OOM" in run.stderr
    finally:
        stop_redis(server)


def test_stream_mode(tmp_path, binaries, redis_server, generated):
    """REDIS_MODE stream: one XADD per record on the filter's channel (and per
    flow on the session channel); entries equal the JSON records, and a
    consumer group reads every one of them."""
    client = redis_server["client"]
    client.flushall()
    text = CONF.format(sock=redis_server["sock"]).replace("TIME_STATS 0", "TIME_STATS 0\nREDIS_MODE stream")
    conf = h.write_config(tmp_path, "s.conf", text)
    jconf = h.write_config(tmp_path, "json.conf",
                           "\n".join(l for l in CONF.format(sock="x").splitlines()
                                     if not l.startswith(("REDIS_SOCK", "REDIS_AUTH", "SESSION"))))
    client.xgroup_create("http_GET", "analyzers", id="0", mkstream=True)
    run = h.run_dati(["-r", generated["path"], "-c", conf, "-t", 2, "-q"])
    want = h.run_dati(["-r", generated["path"], "-c", jconf, "-t", 2, "-q"])
    assert run.stats["redis"]["lost"] == 0
    entries = client.xrange("http_GET") + client.xrange("dns")
    got = Counter(record_tuple(fields) for _, fields in entries)
    assert got == expected_from_json(want)
    assert client.keys("dati:rec:*") == [], "stream mode writes no hashes"
    flows = Counter(f[b"flow"].decode() for _, f in client.xrange("test:sessions"))
    assert flows == Counter(l for l in want.lines if l.startswith('{"type":"flow"'))
    read = client.xreadgroup("analyzers", "a1", {"http_GET": ">"}, count=1000000)
    n_http = sum(1 for r in want.records if r["filter"] == "http")
    assert len(read[0][1]) == n_http


def test_bad_redis_mode_is_a_config_error(tmp_path, binaries):
    conf = h.write_config(tmp_path, "m.conf", "REDIS_MODE list\nFILTER_NAME a\nBPF tcp\n")
    run = h.run_dati(["-c", conf, "--check"], expect_rc=(2,), parse=False)
    assert "m.conf:1: REDIS_MODE is hash (the seed's layout) or stream: 'list'" in run.stderr


def test_c_analyzer(tmp_path, binaries, redis_server, generated):
    """examples/analyzers/c/requests.c (hiredis), built and started before
    dati: counts every request and session, and finds each record's hash."""
    exe = tmp_path / "requests"
    cc = subprocess.run(["cc", "-O2", "-Wall", "-Wextra", "-Werror",
                         str(ANALYZERS / "c" / "requests.c"), "-lhiredis", "-o", str(exe)],
                        capture_output=True, text=True)
    assert cc.returncode == 0, cc.stderr
    out, _ = run_with_analyzer([exe, "-s", redis_server["sock"], "-a", "s3cret", "-c", "http_GET",
                                "-S", "test:sessions", "-p", "0.5", "-i", "2"],
                               redis_server, generated, tmp_path)
    assert f"with host {generated['summary']['http_requests']}" in out, out


def test_shell_analyzer(tmp_path, binaries, redis_server, generated):
    """examples/analyzers/shell/requests.sh (redis-cli and awk): its last
    running total is every request and session of the run."""
    if not shutil.which("redis-cli"):
        pytest.skip("redis-cli is not installed (make deps)")
    conf = h.write_config(tmp_path, "redis.conf", CONF.format(sock=redis_server["sock"]))
    out = tmp_path / "shell.out"
    with open(out, "w") as f:
        analyzer = subprocess.Popen(["sh", str(ANALYZERS / "shell" / "requests.sh"),
                                     str(redis_server["sock"]), "http_GET", "test:sessions"],
                                    stdout=f, env=dict(os.environ, REDISCLI_AUTH="s3cret"),
                                    start_new_session=True)
    # messages published before redis-cli subscribes would be lost to it
    end = time.monotonic() + 20
    while min(n for _, n in redis_server["client"].pubsub_numsub("http_GET", "test:sessions")) < 1:
        assert time.monotonic() < end and analyzer.poll() is None, "requests.sh did not subscribe"
        time.sleep(0.05)
    run = h.run_dati(["-r", generated["path"], "-c", conf, "-q"])
    want = f"Requests:{run.stats['filters']['http']['records']} Sessions:{run.stats['redis']['flows']}"
    for _ in range(300):   # awk may still be catching up
        lines = out.read_text().splitlines()
        if lines and lines[-1] == want:
            break
        time.sleep(0.1)
    os.killpg(analyzer.pid, signal.SIGTERM)
    analyzer.wait()
    assert lines and lines[-1] == want, (lines[-3:], want)


def test_flow_hashes(tmp_path, binaries, redis_server, generated):
    """REDIS_FLOW_EXPIRE: each flow record is also a hash dati:flow:<id> with
    its own TTL, holding the JSON flow record and its totals."""
    client = redis_server["client"]
    client.flushall()
    text = CONF.format(sock=redis_server["sock"]).replace("TIME_STATS 0",
                                                          "TIME_STATS 0\nREDIS_FLOW_EXPIRE 600")
    conf = h.write_config(tmp_path, "f.conf", text)
    run = h.run_dati(["-r", generated["path"], "-c", conf, "-t", 2, "-q"])
    assert run.stats["redis"]["flows_lost"] == 0
    keys = list(client.scan_iter("dati:flow:*"))
    assert len(keys) == run.stats["redis"]["flows"]
    for k in keys[:100]:
        h_ = client.hgetall(k)
        flow = json.loads(h_[b"json"])
        assert k == f"dati:flow:{flow['flow']}".encode()
        assert int(h_[b"packets"]) == flow["c2s_packets"] + flow["s2c_packets"]
        assert int(h_[b"bytes"]) == flow["c2s_bytes"] + flow["s2c_bytes"]
        assert h_[b"reason"].decode() == flow["reason"]
        assert 500 < client.ttl(k) <= 600


def test_redis_over_tcp_loopback(tmp_path, binaries, generated):
    """REDIS_HOST/REDIS_PORT: the same records over TCP to 127.0.0.1."""
    server, client, port = start_redis_tcp()
    try:
        text = CONF.format(sock="x").replace("REDIS_SOCK x", f"REDIS_HOST 127.0.0.1\nREDIS_PORT {port}")
        text = text.replace("REDIS_AUTH s3cret\n", "")
        conf = h.write_config(tmp_path, "tcp.conf", text)
        run = h.run_dati(["-r", generated["path"], "-c", conf, "-t", 2, "-q"])
        assert run.stats["redis"]["lost"] == 0
        assert len(list(client.scan_iter("dati:rec:*"))) == run.stats["records"]["field"] > 0
    finally:
        stop_redis(server)
