"""HTTP_LISTEN: /metrics, /api/stats and the live page, on a dati reading a
capture from a pipe the test feeds (so the run lasts as long as the test
wants). The metrics are checked by parsers (prometheus_client's, and
promtool's linter when Prometheus is installed) and value by value against
the stats record; a real Prometheus scrapes dati; the page is loaded in
headless Chromium. Bad requests and hostile clients must not stall the
probe."""
import json
import os
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections import Counter

import pytest

import dati_helpers as h

PROMETHEUS = shutil.which("prometheus")
PROMTOOL = shutil.which("promtool")

FILTERS = """\
TIME_STATS 0
PKT_TTL 1000000000
FILTER_NAME http
BPF tcp[((tcp[12] & 0xf0) >> 2):4] = 0x47455420
FIELDS ip.src ip.dst tcp.sport tcp.dport http.method http.host
FILTER_NAME dns
BPF udp port 53
FIELDS ip.src ip.dst dns.qry.name
FILTER_NAME tls
BPF tcp[((tcp[12] & 0xf0) >> 2)] = 0x16 and tcp[((tcp[12] & 0xf0) >> 2) + 5] = 1
FIELDS ip.src ip.dst tls.sni
"""


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def npackets(pcap):
    return len(h.packet_offsets(pcap)) - 1   # the offsets end with the file's end


def get(port, path, method="GET", timeout=10):
    """(status, headers, body) of one request to dati."""
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", method=method)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, r.headers, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.headers, e.read()


class Probe:
    """dati with HTTP_LISTEN, reading a pcap from a FIFO that the test
    writes: packets arrive when the test says."""

    def __init__(self, tmp_path, conf_text=FILTERS, threads=1, extra=""):
        self.port = free_port()
        self.tmp = tmp_path
        conf = h.write_config(tmp_path, "http.conf",
                              f"HTTP_LISTEN 127.0.0.1:{self.port}\n{extra}{conf_text}")
        self.fifo = tmp_path / "in.pcap"
        os.mkfifo(self.fifo)
        self.out = tmp_path / "out.json"
        self.err = open(tmp_path / "stderr.txt", "wb")
        self.proc = subprocess.Popen(
            [str(h.DATI), "-c", str(conf), "-r", str(self.fifo), "-w", str(self.out),
             "-t", str(threads)],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=self.err,
            env=h.sanitizer_env())
        self.pipe = open(self.fifo, "wb")   # until dati opens it for reading

    def feed(self, data):
        self.pipe.write(data)
        self.pipe.flush()

    def wait_listening(self, timeout=20):
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            assert self.proc.poll() is None, f"dati exited: {self.stderr()}"
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                    return
            except OSError:
                time.sleep(0.05)
        raise AssertionError("dati's HTTP server did not start listening")

    def api(self):
        status, _, body = get(self.port, "/api/stats")
        assert status == 200, body
        return json.loads(body)

    def wait_for(self, cond, timeout=30, what="condition"):
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            a = self.api()
            if cond(a):
                return a
            time.sleep(0.1)
        raise AssertionError(f"{what} not reached in {timeout} s: {json.dumps(a)[:1500]}")

    def metrics(self):
        status, headers, body = get(self.port, "/metrics")
        assert status == 200
        assert headers["Content-Type"] == "text/plain; version=0.0.4; charset=utf-8"
        return body.decode()

    def stderr(self):
        return (self.tmp / "stderr.txt").read_text(errors="replace")

    def finish(self, timeout=60):
        """Ends the input; returns the final stats record."""
        self.pipe.close()
        rc = self.proc.wait(timeout=timeout)
        self.err.close()
        h.check_no_crash("dati", rc, self.stderr())
        assert rc == 0, self.stderr()
        objs = h.parse_json_lines(self.out.read_bytes(), "dati")
        self.records = [o for o in objs if o.get("type") == "record"]
        assert objs[-1]["type"] == "stats" and objs[-1]["final"]
        return objs[-1]

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        for f in (self.pipe, self.err):
            try:
                f.close()
            except OSError:
                pass


@pytest.fixture
def probe(tmp_path, binaries):
    made = []

    def make(**kw):
        p = Probe(tmp_path, **kw)
        made.append(p)
        return p
    yield make
    for p in made:
        p.kill()


@pytest.fixture(scope="module")
def mix(tmp_path_factory, binaries):
    """HTTP, DNS and TLS: few enough names that the top lists count exactly."""
    path = tmp_path_factory.mktemp("http") / "mix.pcap"
    h.run_gen(["-n", "6000", "--http-share", "8", "--dns-share", "6", "--tls-share", "5",
               "--http-flows", "300"], path)
    return path.read_bytes()


# ------------------------------------------------------------ the metrics

def parse_metrics(text):
    """{(name, frozenset(labels)): value}, and the families' types, with
    prometheus_client's parser (it raises on a malformed exposition)."""
    parser = pytest.importorskip("prometheus_client.parser",
                                 reason="python3-prometheus-client is not installed (make deps)")
    samples, types = {}, {}
    for fam in parser.text_string_to_metric_families(text):
        types[fam.name] = fam.type
        assert fam.documentation, f"{fam.name} has no HELP"
        for s in fam.samples:
            key = (s.name, frozenset(s.labels.items()))
            assert key not in samples, f"{key} twice"
            samples[key] = s.value
    # the format's own rules, as Prometheus reads them: HELP and TYPE once,
    # before the family's samples, which come together
    seen, current = set(), None
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            current = line.split()[2]
            assert current not in seen, f"family {current} twice"
            seen.add(current)
        elif line and not line.startswith("#"):
            name = line.split("{")[0].split(" ")[0]
            assert name == current, f"sample {name} outside its family ({current})"
    return samples, types


def promtool_lint(text):
    if not PROMTOOL:
        return
    p = subprocess.run([PROMTOOL, "check", "metrics"], input=text, capture_output=True,
                       text=True, timeout=30)
    assert p.returncode == 0 and not p.stdout.strip() and not p.stderr.strip(), \
        f"promtool check metrics: {p.stdout}{p.stderr}"


def expected_metrics(stats):
    """Every number of the stats record as the metric that carries it.
    Returns ({(name, labels): value}, leaves not mapped): a counter added to
    the record without a metric shows up in the second."""
    want, unmapped = {}, []

    def put(name, value, **labels):
        want[(name, frozenset(labels.items()))] = value

    simple = {("packets",): "dati_packets_total", ("bytes",): "dati_bytes_total",
              ("processed",): "dati_packets_processed_total",
              ("flows", "active"): "dati_flows_active",
              ("flows", "created"): "dati_flows_created_total",
              ("flows", "matched_without_flow"): "dati_flows_matched_without_flow_total",
              ("records", "output_lost"): "dati_records_output_lost_total",
              ("records", "netpdl_regex_errors"): "dati_netpdl_regex_errors_total",
              ("memory", "flow_entry_bytes"): "dati_flow_entry_bytes",
              ("tap", "forwarded"): "dati_tap_forwarded_total",
              ("redis", "commands"): "dati_redis_commands_total",
              ("redis", "reconnects"): "dati_redis_reconnects_total",
              ("redis", "flow_states"): "dati_redis_flow_states_total",
              ("redis", "flow_events"): "dati_redis_flow_events_total",
              ("redis", "flow_updates_dropped"): "dati_redis_flow_updates_dropped_total",
              ("redis", "queued"): "dati_redis_queued",
              ("redis", "queued_peak"): "dati_redis_queued_peak",
              ("ipfix", "records"): "dati_ipfix_records_total",
              ("ipfix", "messages"): "dati_ipfix_messages_total",
              ("ipfix", "templates"): "dati_ipfix_template_messages_total",
              ("ipfix", "bytes"): "dati_ipfix_bytes_total",
              ("ipfix", "pending"): "dati_ipfix_pending_records",
              ("ipfix", "send_errors"): "dati_ipfix_send_errors_total",
              ("ipfix", "reconnects"): "dati_ipfix_reconnects_total",
              ("feedback", "received"): "dati_feedback_messages_total",
              ("feedback", "rule_tagged"): "dati_feedback_rule_tagged_total",
              ("feedback", "rules_expired"): "dati_feedback_rules_expired_total",
              ("feedback", "reconnects"): "dati_feedback_reconnects_total",
              ("classify", "hosts_dropped"): "dati_classify_hosts_dropped_total",
              ("classify", "apps_uncounted"): "dati_app_uncounted_flows_total",
              ("classify", "unmatched_flows"): "dati_classify_unmatched_flows_total",
              ("defrag", "fragments"): "dati_defrag_fragments_total",
              ("defrag", "datagrams"): "dati_defrag_datagrams_total",
              ("defrag", "reassembled"): "dati_defrag_reassembled_fragments_total",
              ("defrag", "duplicates"): "dati_defrag_duplicate_fragments_total",
              ("defrag", "conflicting"): "dati_defrag_conflicting_fragments_total",
              ("defrag", "undecodable"): "dati_defrag_undecodable_datagrams_total",
              ("defrag", "held"): "dati_defrag_held_fragments",
              ("reassembly", "started"): "dati_reassembly_started_total",
              ("reassembly", "completed"): "dati_reassembly_completed_total",
              ("reassembly", "segments"): "dati_reassembly_segments_total",
              ("reassembly", "out_of_order"): "dati_reassembly_out_of_order_segments_total",
              ("reassembly", "retransmitted"): "dati_reassembly_retransmitted_segments_total",
              ("reassembly", "conflicting"): "dati_reassembly_conflicting_segments_total",
              ("reassembly", "held"): "dati_reassembly_buffers"}
    labelled = {
        ("records", "field"): ("dati_records_total", {"kind": "field"}),
        ("records", "flow"): ("dati_records_total", {"kind": "flow"}),
        ("records", "field_dropped"): ("dati_records_dropped_total", {"kind": "field"}),
        ("records", "flow_dropped"): ("dati_records_dropped_total", {"kind": "flow"}),
        ("tap", "queue_full"): ("dati_tap_dropped_total", {"cause": "queue_full"}),
        ("tap", "errors"): ("dati_tap_dropped_total", {"cause": "error"}),
        ("tap", "not_ip"): ("dati_tap_dropped_total", {"cause": "not_ip"}),
        ("redis", "records"): ("dati_redis_records_total", {"kind": "field"}),
        ("redis", "flows"): ("dati_redis_records_total", {"kind": "flow"}),
        ("redis", "lost"): ("dati_redis_lost_total", {"kind": "field"}),
        ("redis", "flows_lost"): ("dati_redis_lost_total", {"kind": "flow"}),
        ("redis", "dropped_queue_full"): ("dati_redis_dropped_total", {"cause": "queue_full"}),
        ("redis", "dropped_disconnected"): ("dati_redis_dropped_total",
                                            {"cause": "disconnected"}),
        ("ipfix", "lost"): ("dati_ipfix_records_unsent_total", {"cause": "send_failed"}),
        ("ipfix", "dropped"): ("dati_ipfix_records_unsent_total", {"cause": "collector_down"}),
        ("feedback", "tags_full"): ("dati_feedback_refused_total", {"limit": "tags"}),
        ("feedback", "names_full"): ("dati_feedback_refused_total", {"limit": "names"}),
        ("feedback", "rules_full"): ("dati_feedback_refused_total", {"limit": "rules"}),
        ("feedback", "watched_records"): ("dati_feedback_records_total", {"effect": "watched"}),
        ("feedback", "ignored_records"): ("dati_feedback_records_total", {"effect": "ignored"}),
        ("feedback", "acks"): ("dati_feedback_acks_total", {"result": "published"}),
        ("feedback", "acks_lost"): ("dati_feedback_acks_total", {"result": "lost"}),
        ("classify", "classified"): ("dati_classify_flows_total", {"result": "classified"}),
        ("classify", "unknown"): ("dati_classify_flows_total", {"result": "unknown"}),
        ("classify", "pool_full"): ("dati_classify_flows_total", {"result": "pool_full"}),
    }
    for k in ("applied", "malformed", "unknown", "invalid", "oversized", "queue_full",
              "unknown_flow", "stopped", "refused"):
        labelled[("feedback", k)] = ("dati_feedback_commands_total", {"result": k})
    for k in ("oom", "auth", "wrongtype", "other"):
        labelled[("redis", f"errors_{k}")] = ("dati_redis_errors_total", {"type": k})
    cluster = {"masters": "dati_redis_cluster_masters",
               "retries": "dati_redis_cluster_retries_total",
               "refreshes": "dati_redis_cluster_slots_moved_total",
               "failovers": "dati_redis_cluster_failovers_total",
               "rerouted": "dati_redis_cluster_rerouted_total",
               "wait_short": "dati_redis_cluster_wait_short_total"}

    def walk(path, v):
        if isinstance(v, dict):
            for k, x in v.items():
                walk(path + (k,), x)
            return
        if path in simple:
            put(simple[path], v)
        elif path in labelled:
            put(labelled[path][0], v, **labelled[path][1])
        elif path[0] == "decoded":
            put("dati_packets_decoded_total", v, result=path[1])
        elif path[0] == "malformed":
            put("dati_packets_malformed_total", v, reason=path[1])
        elif path[0] == "interfaces":
            name = {"received": "dati_interface_received_total",
                    "kernel_drops": "dati_interface_kernel_drops_total"}[path[2]]
            put(name, v, interface=path[1])
        elif path[0] == "filters":
            name = {"matches": "dati_filter_matches_total",
                    "records": "dati_filter_records_total",
                    "skipped_retransmissions": "dati_filter_skipped_retransmissions_total",
                    "reassembled_segments": "dati_filter_reassembled_segments_total",
                    "reassembled_records": "dati_filter_reassembled_records_total"}
            put(name[path[2]], v, filter=path[1])
        elif path[0] == "flows" and path[1] in ("idle", "end_of_input", "evicted", "shutdown"):
            put("dati_flows_ended_total", v, reason=path[1])
        elif path[:2] == ("reassembly", "gave_up"):
            put("dati_reassembly_gave_up_total", v, reason=path[2])
        elif path[:2] == ("defrag", "dropped"):
            put("dati_defrag_dropped_fragments_total", v, reason=path[2])
        elif path[:2] == ("classify", "apps"):
            put("dati_app_flows_total", v, app=path[2])
        elif path[:2] == ("redis", "cluster") and path[2] in cluster:
            put(cluster[path[2]], v)
        elif path[:2] == ("redis", "cluster") and path[2] in ("moved", "ask"):
            put("dati_redis_cluster_redirects_total", v, type=path[2])
        elif path[:3] == ("redis", "cluster", "nodes"):
            put(f"dati_redis_node_{path[4]}" + ("" if path[4] == "queued" else "_total"), v,
                node=path[3])
        elif path in (("type",), ("final",), ("elapsed",), ("probe",), ("memory", "rss_anon_kb"),
                      ("redis", "errors"), ("classify", "memory_kb"), ("defrag", "held_kb")):
            pass   # not counters, or a moment's reading (memory), or a sum of labelled ones
        else:
            unmapped.append(path)
    walk((), stats)
    return want, unmapped


def check_metrics_are_stats(text, stats):
    samples, types = parse_metrics(text)
    promtool_lint(text)
    want, unmapped = expected_metrics(stats)
    assert not unmapped, f"stats record members with no metric: {unmapped}"
    for key, value in want.items():
        assert key in samples, f"metric {key} missing"
        assert samples[key] == value, f"{key}: metric {samples[key]}, stats record {value}"
    for name, t in types.items():
        if t == "counter":
            assert not name.endswith("_total"), name   # the parser strips _total from names
    assert samples[("dati_memory_rss_anon_bytes", frozenset())] > 0
    return samples


def test_metrics_are_the_stats_record(probe, mix):
    """Every counter of the stats record is a metric of equal value; after the
    input ends, the last scrape equals the final stats record."""
    p = probe(threads=2, extra="CLASSIFY 1\n")   # its counters are metrics too
    p.feed(mix)
    p.wait_listening()
    n = npackets(mix)
    a = p.wait_for(lambda a: a["stats"]["processed"] == n and
                   a["history"]["packets"][-1] == n, what="all packets processed")
    # a document made after the last packet: the next one holds the same counters
    a = p.wait_for(lambda b: b["uptime"] > a["uptime"], what="a later update")
    text = p.metrics()
    after = p.api()
    assert {k: v for k, v in after["stats"].items() if k not in ("elapsed", "memory")} == \
           {k: v for k, v in a["stats"].items() if k not in ("elapsed", "memory")}, \
        "counters changed while the input was idle"
    samples = check_metrics_are_stats(text, after["stats"])
    assert samples[("dati_input_ended", frozenset())] == 0
    assert samples[("dati_info", frozenset({("version", after["version"])}))] == 1
    final = p.finish()
    assert final["packets"] == samples[("dati_packets_total", frozenset())] == n
    assert final["filters"] == after["stats"]["filters"]
    for f in final["filters"].values():
        assert f["matches"] > 0
    assert final["records"]["field"] == after["stats"]["records"]["field"]
    # the flows end when the input does: only then are flow records made
    assert final["flows"]["end_of_input"] == after["stats"]["flows"]["active"] > 0


def test_metrics_of_redis_ipfix_and_feedback(probe, mix, tmp_path):
    """The Redis, IPFIX and feedback counters too, against a real Redis."""
    pytest.importorskip("redis", reason="python3-redis is not installed (make deps)")
    if not shutil.which("redis-server"):
        pytest.skip("redis-server is not installed (make deps)")
    from test_redis import start_redis, stop_redis
    rp, client = start_redis(sock=tmp_path / "redis.sock")
    sink = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)   # the IPFIX collector: a sink
    sink.bind(("127.0.0.1", 0))
    try:
        extra = (f"REDIS_SOCK {tmp_path / 'redis.sock'}\nFEEDBACK_CHANNEL dati:fb\n"
                 f"IPFIX_COLLECTOR 127.0.0.1:{sink.getsockname()[1]}\n")
        p = probe(extra=extra)
        p.feed(mix)
        p.wait_listening()
        a = p.wait_for(lambda a: a["stats"]["redis"]["records"] ==
                       a["stats"]["records"]["field"] > 0 and
                       a["stats"]["processed"] == npackets(mix),
                       what="records in Redis")
        client.publish("dati:fb", "not a command")
        p.wait_for(lambda a: a["stats"]["feedback"]["malformed"] == 1, what="feedback counted")
        a = p.wait_for(lambda b: b["uptime"] > a["uptime"] + 1, what="a later update")
        text = p.metrics()
        after = p.api()
        assert after["stats"]["redis"] == a["stats"]["redis"]
        samples = check_metrics_are_stats(text, after["stats"])
        assert samples[("dati_feedback_commands_total",
                        frozenset({("result", "malformed")}))] == 1
        assert "redis:" in after["config"]["outputs"][1]
        p.finish()
    finally:
        sink.close()
        stop_redis(rp)


# ------------------------------------------------------------ /api/stats

def test_api_history_and_top_names(probe, mix):
    """History rises to the stats record's counts; the top names are the
    names of the field records, counted exactly (few enough to fit)."""
    p = probe()
    half = h.packet_offsets(mix)[npackets(mix) // 2]
    p.feed(mix[:half])
    p.wait_listening()
    first = p.wait_for(lambda a: a["stats"]["packets"] > 0, what="packets")
    time.sleep(1.2)
    p.feed(mix[half:])
    n = npackets(mix)
    a = p.wait_for(lambda a: a["history"]["packets"][-1] == n and a["top"]["sampled"] ==
                   a["stats"]["records"]["field"], what="everything counted")
    hist = a["history"]
    assert hist["interval"] == 1
    assert len(hist["t"]) == len(hist["packets"]) == len(hist["records"]) == len(hist["drops"])
    assert len(hist["t"]) >= 3
    assert hist["t"] == sorted(hist["t"]) and hist["packets"] == sorted(hist["packets"])
    assert hist["packets"][0] <= first["stats"]["packets"] < n
    assert hist["records"][-1] == a["stats"]["records"]["field"] + a["stats"]["records"]["flow"]
    assert hist["drops"][-1] == 0
    assert a["input"] == {"file": str(p.fifo)}
    assert [f["name"] for f in a["config"]["filters"]] == ["http", "dns", "tls"]
    assert a["config"]["outputs"] == [f"json:{p.out}"]
    top = a["top"]
    assert top["window"] == 60 and top["unsampled"] == 0
    p.finish()
    for field, key in (("http.host", "http.host"), ("tls.sni", "tls.sni"),
                       ("dns.qry.name", "dns.qry.name")):
        counts = Counter(r["fields"][key].lower() for r in p.records if key in r["fields"])
        assert counts, field
        want = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:10]
        assert [tuple(x) for x in top["names"][field]] == want, field


def test_page_without_javascript(probe, mix):
    """/ is the page with the counters as tables in it (what a browser
    without JavaScript shows); HEAD has the headers and no body."""
    p = probe()
    p.feed(mix)
    p.wait_listening()
    a = p.wait_for(lambda a: a["stats"]["processed"] == npackets(mix),
                   what="all packets")
    a = p.wait_for(lambda b: b["uptime"] > a["uptime"], what="a later update")
    status, headers, body = get(p.port, "/")
    page = body.decode()
    assert status == 200 and headers["Content-Type"] == "text/html; charset=utf-8"
    assert "<!--DATI-TABLE-->" not in page
    assert f"<tr><th>packets</th><td>{npackets(mix)}</td></tr>" in page
    assert "<tr><td>dns</td><td>%d</td>" % a["stats"]["filters"]["dns"]["matches"] in page
    assert "script-src 'unsafe-inline'" in headers["Content-Security-Policy"]
    for external in ("http://", "https://", "//cdn"):
        assert external not in page.replace("http://www.w3.org", ""), external
    status, headers, body = get(p.port, "/", method="HEAD")
    assert status == 200 and body == b"" and int(headers["Content-Length"]) == len(page.encode())
    p.finish()


# ------------------------------------------------------------ bad clients

def raw(port, data, timeout=5):
    """Sends data on a connection of its own; the response's bytes."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(data)
        out = b""
        while True:
            try:
                chunk = s.recv(65536)
            except (ConnectionResetError, socket.timeout):
                break
            if not chunk:
                break
            out += chunk
        return out


def test_bad_requests(probe, mix):
    p = probe()
    p.feed(mix[:24])
    p.wait_listening()
    assert get(p.port, "/nope")[0] == 404
    assert get(p.port, "/metrics/")[0] == 404
    status, headers, _ = get(p.port, "/metrics", method="POST")
    assert status == 405 and headers["Allow"] == "GET, HEAD"
    assert get(p.port, "/api/stats", method="DELETE")[0] == 405
    huge = b"GET /metrics HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 40000 + b"\r\n\r\n"
    assert raw(p.port, huge).startswith(b"HTTP/1.1 431 ")
    bad = raw(p.port, b"BLAH\r\n\r\n")   # no method, path or version
    assert bad == b"" or bad.startswith(b"HTTP/1.1 400 "), bad
    raw(p.port, b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + bytes(200))   # TLS to HTTP
    # DNS rebinding: a page whose name now points here must not read the probe
    for host, ok in ((b"evil.example", False), (b"evil.example:%d" % p.port, False),
                     (b"127.0.0.1:%d" % p.port, True), (b"LOCALHOST", True),
                     (b"[::1]:%d" % p.port, True), (b"[evil]", False), (b"", False)):
        answer = raw(p.port, b"GET /api/stats HTTP/1.1\r\nHost: " + host +
                     b"\r\nConnection: close\r\n\r\n")
        status = answer.split(b" ")[1] if answer else b"closed"
        assert status == (b"200" if ok else b"403") or (host == b"" and status == b"400"), \
            (host, answer[:200])
    # the server still answers, and counted what it answered (in a document
    # made after the requests: once a second)
    u = p.api()["uptime"]
    p.wait_for(lambda a: a["uptime"] > u, what="a later update")
    text = p.metrics()
    samples, _ = parse_metrics(text)
    assert samples[("dati_http_responses_total", frozenset({("code", "404")}))] == 2
    assert samples[("dati_http_responses_total", frozenset({("code", "403")}))] >= 3
    assert samples[("dati_http_responses_total", frozenset({("code", "405")}))] == 2
    p.feed(mix[24:])
    assert p.finish()["packets"] == npackets(mix)


def test_many_idle_connections_do_not_stall_the_probe(probe, mix):
    """200 connections that never finish a request (slowloris): the server
    holds at most its limit, drops them after its idle timeout, and the
    probe keeps reading and answering meanwhile."""
    p = probe()
    offsets = h.packet_offsets(mix)
    third = offsets[len(offsets) // 3]
    p.feed(mix[:third])
    p.wait_listening()
    socks = []
    for _ in range(200):
        try:
            s = socket.create_connection(("127.0.0.1", p.port), timeout=2)
            s.sendall(b"GET /metrics HTTP/1.1\r\nHost: a")   # never ends its headers
            socks.append(s)
        except OSError:
            pass
    t0 = time.monotonic()
    p.feed(mix[third:])   # the probe reads on while the slots are taken
    closed = 0
    for s in socks:
        s.settimeout(max(0.1, 15 - (time.monotonic() - t0)))
        try:
            closed += s.recv(100) == b""   # the server closed it
        except ConnectionResetError:
            closed += 1
        except socket.timeout:
            pass
        s.close()
    waited = time.monotonic() - t0
    assert closed == len(socks), f"{len(socks) - closed} idle connections still open"
    assert waited < 14, f"idle connections held for {waited:.1f} s"
    n = npackets(mix)
    a = p.wait_for(lambda a: a["stats"]["processed"] == n, what="all packets")
    assert a["stats"]["packets"] == n
    assert p.finish()["packets"] == n


def test_port_in_use_is_a_start_error(tmp_path, binaries, mix):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        conf = h.write_config(tmp_path, "c.conf", f"HTTP_LISTEN 127.0.0.1:{port}\n{FILTERS}")
        pcap = tmp_path / "mix.pcap"
        pcap.write_bytes(mix)
        r = h.run_dati(["-c", conf, "-r", pcap], expect_rc=(2,), parse=False)
        assert f"HTTP_LISTEN 127.0.0.1:{port}: cannot listen there: Address already in use" \
            in r.stderr


def test_bare_port_listens_on_loopback_only(probe, mix, tmp_path):
    """HTTP_LISTEN PORT binds 127.0.0.1, nothing else: the kernel's table of
    listening sockets says so."""
    port = free_port()
    p = probe(extra=f"HTTP_LISTEN {port}\n")   # the later line wins
    p.port = port
    p.feed(mix[:24])
    p.wait_listening()
    listening = []
    for table in ("tcp", "tcp6"):
        for line in open(f"/proc/{p.proc.pid}/net/{table}").read().splitlines()[1:]:
            f = line.split()
            if f[3] == "0A" and int(f[1].split(":")[1], 16) == port:
                listening.append((table, f[1].split(":")[0]))
    assert listening == [("tcp", "0100007F")], listening
    p.feed(mix[24:])
    p.finish()


# ------------------------------------------------------------ real clients

@pytest.mark.skipif(not PROMETHEUS, reason="prometheus is not installed (make deps)")
def test_prometheus_scrapes_dati(probe, mix, tmp_path):
    """A real Prometheus server scrapes /metrics; its query API returns the
    packet count dati reports."""
    p = probe()
    p.feed(mix)
    p.wait_listening()
    n = npackets(mix)
    p.wait_for(lambda a: a["stats"]["packets"] == n, what="all packets")
    web = free_port()
    (tmp_path / "prometheus.yml").write_text(
        "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
        "scrape_configs:\n  - job_name: dati\n    static_configs:\n"
        f"      - targets: ['127.0.0.1:{p.port}']\n")
    prom = subprocess.Popen(
        [PROMETHEUS, f"--config.file={tmp_path / 'prometheus.yml'}",
         f"--storage.tsdb.path={tmp_path / 'tsdb'}", f"--web.listen-address=127.0.0.1:{web}"],
        stdout=subprocess.DEVNULL, stderr=open(tmp_path / "prometheus.log", "wb"))
    try:
        value, end = None, time.monotonic() + 60
        while time.monotonic() < end and value is None:
            time.sleep(0.5)
            assert prom.poll() is None, (tmp_path / "prometheus.log").read_text()[-2000:]
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{web}/api/v1/query?"
                                            "query=dati_packets_total", timeout=5) as r:
                    res = json.load(r)["data"]["result"]
            except (OSError, ValueError):
                continue
            if res:
                value = res[0]["value"][1]
                assert res[0]["metric"]["job"] == "dati"
        assert value is not None, "Prometheus never had dati_packets_total"
        assert int(value) == n == p.api()["stats"]["packets"]
        with urllib.request.urlopen(f"http://127.0.0.1:{web}/api/v1/targets", timeout=5) as r:
            targets = json.load(r)["data"]["activeTargets"]
        assert [t["health"] for t in targets] == ["up"], targets
    finally:
        prom.terminate()
        prom.wait(timeout=30)
    assert p.finish()["packets"] == n


def chromium_driver():
    webdriver = pytest.importorskip("selenium.webdriver",
                                    reason="python3-selenium is not installed (make deps)")
    binary = shutil.which("chromium")
    driver_bin = shutil.which("chromedriver")
    if not binary or not driver_bin:
        pytest.skip("chromium and chromium-driver are not installed (make deps)")
    opts = webdriver.ChromeOptions()
    opts.binary_location = binary
    for a in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
              "--window-size=1280,1500", "--no-first-run", "--disable-extensions"):
        opts.add_argument(a)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    from selenium.webdriver.chrome.service import Service
    return webdriver.Chrome(service=Service(driver_bin), options=opts)


def test_page_in_chromium(probe, mix):
    """The page in headless Chromium during a run: it updates, draws its
    graphs, shows counters rising, logs no error; its screenshot is kept
    under the build directory."""
    driver = chromium_driver()
    try:
        p = probe()
        offsets = h.packet_offsets(mix)
        step = len(offsets) // 8
        p.feed(mix[:offsets[step]])
        p.wait_listening()
        driver.get(f"http://127.0.0.1:{p.port}/")

        def body(name):
            return driver.execute_script(f"return document.body.dataset.{name} || ''")
        seen = []
        for i in range(1, 8):   # a slice of the capture a second: the counters rise
            p.feed(mix[offsets[i * step]:offsets[min((i + 1) * step, len(offsets) - 1)]])
            time.sleep(1.0)
            seen.append((int(body("updates") or 0), int(body("packets") or 0)))
        updates = [u for u, _ in seen]
        packets = [n for _, n in seen]
        assert updates[-1] >= 4, seen
        assert packets == sorted(packets) and packets[-1] > packets[0] > 0, seen
        for graph in ("graph-packets", "graph-records"):
            classes = driver.find_element("id", graph).get_attribute("class")
            assert "drawn" in classes.split(), (graph, classes)
        assert driver.find_element("id", "packets").text.replace(",", "").replace(" ", "") != ""
        assert body("state") == "running"
        rows = driver.find_elements("css selector", "#filters tbody tr")
        assert [r.find_elements("tag name", "td")[0].text for r in rows] == ["http", "dns", "tls"]
        errors = [e for e in driver.get_log("browser") if e["level"] in ("SEVERE", "WARNING")]
        assert not errors, errors
        shot = h.BUILD / "live-page.png"
        driver.save_screenshot(str(shot))
        assert shot.stat().st_size > 10000
        p.feed(mix[offsets[8 * step]:])
        assert p.finish()["packets"] == npackets(mix)
    finally:
        driver.quit()


def test_live_capture_as_nobody(tmp_path, binaries):
    """Live capture with -u nobody: the server is reached inside the test's
    namespace, its metrics name the interface, and no thread of dati (the
    HTTP server's included: it starts after root is given up) keeps a
    capability."""
    import netns
    netns.skip_unless_available()
    pcap = tmp_path / "live.pcap"
    summary = h.run_gen(["-n", "3000", "--dns-share", "20", "--http-share", "10"], pcap)
    port = free_port()
    conf = h.write_config(tmp_path, "live.conf", f"HTTP_LISTEN 127.0.0.1:{port}\n{FILTERS}")
    fetch = ("import sys, urllib.request; sys.stdout.write(urllib.request.urlopen("
             f"'http://127.0.0.1:{port}' + sys.argv[1], timeout=5).read().decode())")
    with netns.Netns() as ns:
        d = netns.Dati(ns, tmp_path, ["-c", conf, "-i", "c0", "-t", 2, "-u", "nobody"])
        ns.replay(pcap, pps=20000)
        end, a = time.monotonic() + 30, None
        while time.monotonic() < end:
            a = json.loads(ns.run("python3", "-c", fetch, "/api/stats").stdout)
            if a["stats"]["packets"] >= summary["packets"]:
                break
            time.sleep(0.2)
        assert a["stats"]["packets"] == summary["packets"], a["stats"]
        assert a["input"] == {"interfaces": ["c0"]}
        text = ns.run("python3", "-c", fetch, "/metrics").stdout
        samples, _ = parse_metrics(text)
        c0 = frozenset({("interface", "c0")})
        assert samples[("dati_interface_received_total", c0)] >= summary["packets"]
        assert samples[("dati_interface_kernel_drops_total", c0)] == 0
        tasks = os.listdir(f"/proc/{d.p.pid}/task")
        assert len(tasks) >= 4   # main, two workers, the HTTP server
        for task in tasks:
            status = open(f"/proc/{d.p.pid}/task/{task}/status").read()
            fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
            assert fields["Uid"].split()[0] == "65534", (task, fields["Uid"])
            assert int(fields["CapEff"], 16) == 0 and int(fields["CapPrm"], 16) == 0, \
                (task, fields["Name"], fields["CapEff"])
        d.stop()
