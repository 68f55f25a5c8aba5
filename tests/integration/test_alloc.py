"""The hot path allocates nothing per packet: dati's calls to malloc,
calloc and realloc (counted by build/tests/alloc-count.so, preloaded) are
the same for a capture of 100 000 packets as for one of 10 000 with the same
mix, in JSON and Redis output, with built-in fields and NetPDL descriptions,
with one and two workers."""
import os
import subprocess

import pytest

import dati_helpers as h
from test_redis import start_redis, stop_redis

COUNTER = h.BUILD / "tests" / "alloc-count.so"
MIX = ["-s", 5, "--http-share", 30, "--dns-share", 10, "--tls-share", 10]
SLACK = 16   # start-up differences (thread timing), far below one per packet


@pytest.fixture(scope="module")
def captures(tmp_path_factory, binaries):
    if not COUNTER.exists():
        pytest.skip(f"{COUNTER} not built (make test-integration builds it; not for sanitizer "
                    f"builds, whose allocator is not glibc's)")
    d = tmp_path_factory.mktemp("alloc")
    out = {}
    for n in (10000, 100000):
        out[n] = d / f"{n}.pcap"
        h.run_gen(["-n", n, *MIX], out[n])
    yield out
    for path in out.values():   # 100 MB: not left for pytest to keep
        path.unlink()


def allocations(tmp_path, args, capture):
    count = tmp_path / "count"
    count.unlink(missing_ok=True)   # a run that never wrote it must not pass on the last one's
    env = dict(os.environ, LD_PRELOAD=str(COUNTER), ALLOC_COUNT_FILE=str(count))
    p = subprocess.run([str(h.DATI), "-q", "-r", str(capture), *map(str, args)], env=env,
                       stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=h.RUN_TIMEOUT)
    assert p.returncode == 0, p.stderr.decode()[-2000:]
    return int(count.read_text())


def check(tmp_path, captures, args, before_each=lambda: None):
    before_each()
    small = allocations(tmp_path, args, captures[10000])
    before_each()
    large = allocations(tmp_path, args, captures[100000])
    assert small > 0, "the counter counted nothing: not preloaded?"
    assert large <= small + SLACK, f"{small} allocations for 10 000 packets, {large} for 100 000"


NETPDL = f"""\
TIME_STATS 0
FILTER_NAME http
BPF tcp
PROTOCOL_DEF {h.REPO / 'protocols' / 'http.xml'}
FIELDS ip.src http.method http.url http.host http.useragent
FILTER_NAME dns
BPF udp port 53
PROTOCOL_DEF {h.REPO / 'protocols' / 'dns.xml'}
FIELDS ip.src dns.id dns.qname dns.qtype
"""


@pytest.mark.parametrize("threads", [1, 2])
def test_json_builtin(tmp_path, captures, threads):
    check(tmp_path, captures, ["-w", "/dev/null", "-t", threads])


def test_json_netpdl(tmp_path, captures):
    conf = h.write_config(tmp_path, "pdl.conf", NETPDL)
    check(tmp_path, captures, ["-w", "/dev/null", "-c", conf])


@pytest.mark.parametrize("mode", ["hash", "stream"])
def test_redis(tmp_path, captures, mode):
    """Every record and flow record into a real redis-server: the replies are
    read in place, the pipelines written from dati's own buffers."""
    sock = tmp_path / "r.sock"
    server, client = start_redis(sock=sock)
    try:
        conf = h.write_config(tmp_path, "r.conf", f"""\
TIME_STATS 0
REDIS_SOCK {sock}
REDIS_MODE {mode}
SESSION_CHANNEL test:sessions
FILTER_NAME web
BPF tcp
FIELDS ip.src ip.dst http.url http.host tls.sni
""")
        check(tmp_path, captures, ["-c", conf, "-t", 2], before_each=client.flushall)
        # the large run's records really went there
        assert (client.dbsize() if mode == "hash" else client.xlen("web")) > 10000
    finally:
        stop_redis(server)


def test_flow_features_and_live_page(tmp_path, captures):
    """FLOW_FEATURES' slots are allocated once; HTTP_LISTEN's name sampling
    copies into rings made at start."""
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    conf = h.write_config(tmp_path, "f.conf", f"""\
TIME_STATS 0
FLOW_FEATURES 16
HTTP_LISTEN 127.0.0.1:{port}
FILTER_NAME http
BPF tcp
FIELDS ip.src http.method http.host
FILTER_NAME dns
BPF udp port 53
FIELDS ip.src dns.qry.name
""")
    check(tmp_path, captures, ["-w", "/dev/null", "-c", conf, "-t", 2])


@pytest.mark.parametrize("threads", [1, 2])
def test_classify(tmp_path, captures, threads):
    """CLASSIFY 1: nDPI's flow states come from the pool made at start, and
    what nDPI allocates while it dissects comes from the worker's free lists
    (app-alloc.c). Those grow, 2 MiB at a time, only while more is held at
    once than ever before (the larger capture has more flows in
    classification at its end): every allocation the larger run makes beyond
    the smaller one's is such a chunk, none is per packet or per flow."""
    conf = h.write_config(tmp_path, "c.conf", """\
TIME_STATS 0
CLASSIFY 1
CLASSIFY_MAX_FLOWS 512
FILTER_NAME ip
BPF ip
FIELDS ip.src app
""")
    args = ["-w", "/dev/null", "-c", conf, "-t", threads]
    small = allocations(tmp_path, args, captures[10000])
    large = allocations(tmp_path, args, captures[100000])

    def held_kb(capture):
        run = h.run_dati(["-q", "-r", capture, "-c", conf, "-t", threads])
        return run.stats["classify"]["memory_kb"]

    chunks = (held_kb(captures[100000]) - held_kb(captures[10000])) // 2048
    assert small > 0 and chunks >= 0
    assert large <= small + chunks + SLACK, \
        f"{small} allocations for 10 000 packets, {large} for 100 000, {chunks} chunks more"
