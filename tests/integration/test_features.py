"""FLOW_FEATURES: the statistical features of flow records, checked value by
value against what the test computes from tshark's per-frame output (frame
length, capture time, addresses, ports) of the same capture: a generated
mix (IPv4 and IPv6, TCP and UDP, requests and responses) and corpus
captures. Every TCP/UDP packet matches the filter and PKT_TTL is huge, so
each 5-tuple is one flow from its first packet (client = its sender) to the
end, as test_corpus_flows.py explains."""
import ipaddress
import shutil
import subprocess
from collections import Counter
from decimal import Decimal

import pytest

import dati_helpers as h

if not shutil.which("tshark"):
    pytest.skip("tshark is not installed (make deps)", allow_module_level=True)

CONF = """\
PKT_TTL 1000000000
FLOW_FEATURES {n}
FILTER_NAME tcp
BPF tcp
FILTER_NAME udp
BPF udp
"""

# captures of the corpus with plain TCP/UDP (no fragments, tunnels or fuzzing)
CORPUS = ["ndpi_1kxun.pcap", "zeek_wikipedia.pcap", "zeek_http_post.pcap"]

FIELDS = ["frame.number", "frame.len", "frame.time_epoch", "ip.src", "ip.dst", "ipv6.src",
          "ipv6.dst", "tcp.srcport", "tcp.dstport", "udp.srcport", "udp.dstport",
          "ip.flags.mf", "ip.frag_offset"]


def tshark_packets(pcap):
    """(transport, src, sport, dst, dport, frame.len, time in ns) of every
    TCP/UDP frame, in capture order."""
    cmd = ["tshark", "-n", "-r", str(pcap), "-T", "fields", "-E", "separator=\t"]
    for f in FIELDS:
        cmd += ["-e", f]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=300, check=True).stdout
    packets = []
    for line in out.splitlines():
        v = dict(zip(FIELDS, line.split("\t")))
        assert "," not in line, f"frame {v['frame.number']}: a tunnel or ICMP error: {line}"
        assert v["ip.flags.mf"] in ("", "0", "False") and v["ip.frag_offset"] in ("", "0"), \
            f"frame {v['frame.number']}: an IP fragment"
        src, dst = v["ip.src"] or v["ipv6.src"], v["ip.dst"] or v["ipv6.dst"]
        if v["tcp.srcport"]:
            t, sp, dp = "tcp", v["tcp.srcport"], v["tcp.dstport"]
        elif v["udp.srcport"]:
            t, sp, dp = "udp", v["udp.srcport"], v["udp.dstport"]
        else:
            continue
        ns = int(Decimal(v["frame.time_epoch"]) * 1000000000)
        packets.append((t, str(ipaddress.ip_address(src)), int(sp),
                        str(ipaddress.ip_address(dst)), int(dp), int(v["frame.len"]), ns))
    return packets


def fmt(x):
    return Decimal("%.3f" % x)


def moments(values):
    """mean and population deviation, computed as dati does (sum and sum
    of squares in doubles, in packet order), printed with three decimals"""
    n, s, sq = len(values), 0, 0.0
    for v in values:
        s += v
        sq += float(v) * float(v)
    mean = s / n
    var = sq / n - mean * mean
    return fmt(mean), fmt(var ** 0.5 if var > 0 else 0.0)


def expected_features(packets, n):
    """{(transport, client, cport, server, sport): features} as dati must write them."""
    flows, order = {}, []
    for t, src, sp, dst, dp, length, ns in packets:
        a, b = (src, sp), (dst, dp)
        key = (t,) + (a + b if a <= b else b + a)
        if key not in flows:
            flows[key] = {"client": a, "pkts": []}
            order.append(key)
        flows[key]["pkts"].append((0 if a == flows[key]["client"] else 1, length, ns))
    want = {}
    for key in order:
        f = flows[key]
        server = (key[1], key[2]) if (key[1], key[2]) != f["client"] else (key[3], key[4])
        pkts = f["pkts"]
        splt = {"len": [], "dir": [], "iat_us": []}
        for i, (d, length, ns) in enumerate(pkts[:n]):
            splt["len"].append(length)
            splt["dir"].append(d)
            splt["iat_us"].append(max(0, ns - pkts[i - 1][2]) // 1000 if i else 0)
        feats = {"splt": splt}
        for d, name in ((0, "c2s"), (1, "s2c")):
            mine = [(length, ns) for dd, length, ns in pkts if dd == d]
            fd = {"packets": len(mine)}
            if mine:
                lens = [length for length, _ in mine]
                fd["len_min"], fd["len_max"] = min(lens), max(lens)
                fd["len_mean"], fd["len_std"] = moments(lens)
            if len(mine) > 1:
                gaps = [min(max(0, mine[i][1] - mine[i - 1][1]) // 1000, 2 ** 32 - 1)
                        for i in range(1, len(mine))]
                fd["iat_min_us"], fd["iat_max_us"] = min(gaps), max(gaps)
                fd["iat_mean_us"], fd["iat_std_us"] = moments(gaps)
            feats[name] = fd
        want[(key[0],) + f["client"] + server] = feats
    return want


def check(tmp_path, pcap, n, threads=1):
    conf = h.write_config(tmp_path, f"f{n}.conf", CONF.format(n=n))
    run = h.run_dati(["-c", conf, "-r", pcap, "-t", threads])
    want = expected_features(tshark_packets(pcap), n)
    got = {}
    for f in run.flows:
        key = (f["proto"], str(ipaddress.ip_address(f["client"])), f["client_port"],
               str(ipaddress.ip_address(f["server"])), f["server_port"])
        assert key not in got, f"two flow records for {key}"
        got[key] = f["features"]
        assert f["c2s_packets"] == f["features"]["c2s"]["packets"]
        assert f["s2c_packets"] == f["features"]["s2c"]["packets"]
    assert set(got) == set(want), (set(got) ^ set(want))
    for key in want:
        assert got[key] == want[key], key
    return run


@pytest.fixture(scope="module")
def mix(tmp_path_factory, binaries):
    path = tmp_path_factory.mktemp("features") / "mix.pcap"
    h.run_gen(["-n", "30000", "--http-share", "8", "--dns-share", "4", "--tls-share", "4",
               "--ipv6-share", "25", "--responses", "--flows", "300", "--http-flows", "200"],
              path)
    return path


@pytest.mark.parametrize("n", [1, 8, 64])
def test_generated_mix(tmp_path, mix, n):
    run = check(tmp_path, mix, n)
    longest = max(len(f["features"]["splt"]["len"]) for f in run.flows)
    assert longest == n   # some flows have n packets or more: the arrays stop at n
    assert Counter(f["proto"] for f in run.flows).keys() == {"tcp", "udp"}


def test_same_features_for_any_thread_count(tmp_path, mix):
    one = check(tmp_path, mix, 16, threads=1)
    two = check(tmp_path, mix, 16, threads=2)
    assert sorted(one.record_lines()) == sorted(two.record_lines())


@pytest.mark.parametrize("name", CORPUS)
def test_corpus(tmp_path, binaries, name):
    pcap = h.PCAP_DIR / name
    if not pcap.exists():
        pytest.skip(f"the corpus is not at {h.CORPUS} (../shared/corpus)")
    check(tmp_path, pcap, 10)


def test_off_by_default(tmp_path, mix):
    conf = h.write_config(tmp_path, "off.conf", CONF.replace("FLOW_FEATURES {n}\n", ""))
    run = h.run_dati(["-c", conf, "-r", mix])
    assert run.flows and not any("features" in f for f in run.flows)
