"""The hot path allocates nothing per packet: dati's calls to malloc,
calloc and realloc (counted by build/tests/alloc-count.so, preloaded) are
the same for a capture of 200 000 packets as for one of 20 000 with the same
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
        pytest.skip(f"{COUNTER} not built: a sanitizer build counts its own allocations")
    d = tmp_path_factory.mktemp("alloc")
    out = {}
    for n in (20000, 200000):
        out[n] = d / f"{n}.pcap"
        h.run_gen(["-n", n, *MIX], out[n])
    return out


def allocations(tmp_path, args, capture):
    count = tmp_path / "count"
    env = dict(os.environ, LD_PRELOAD=str(COUNTER), ALLOC_COUNT_FILE=str(count))
    p = subprocess.run([str(h.DATI), "-q", "-r", str(capture), *map(str, args)], env=env,
                       stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=h.RUN_TIMEOUT)
    assert p.returncode == 0, p.stderr.decode()[-2000:]
    return int(count.read_text())


def check(tmp_path, captures, args):
    small = allocations(tmp_path, args, captures[20000])
    large = allocations(tmp_path, args, captures[200000])
    assert small > 0, "the counter counted nothing: not preloaded?"
    assert large <= small + SLACK, f"{small} allocations for 20 000 packets, {large} for 200 000"


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
        check(tmp_path, captures, ["-c", conf, "-t", 2])
        # the records really went there
        assert (client.dbsize() if mode == "hash" else client.xlen("web")) > 1000
    finally:
        stop_redis(server)
