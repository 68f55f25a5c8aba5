"""IP reassembly (REASSEMBLY 1, the default), on generated captures: the
same mix written whole and cut into IP fragments by dati-gen (--fragment;
the datagrams and their times are the same) must give the same field
records, in order, and the same flows, whose packets and bytes then count
every fragment's frame. Fragments in order, reversed, shuffled, duplicated,
with conflicting duplicates, overlapping, at every fragment size from 8
bytes, and incomplete datagrams against the timeout and the memcaps; each
fragment lands in exactly one defrag counter."""
import json

import pytest

import dati_helpers as h

ALL = """\
PKT_TTL 1000000000
FILTER_NAME http
BPF tcp dst port 80
FIELDS ip.src ip.dst tcp.sport tcp.dport http.method http.url http.host http.useragent
FILTER_NAME dns
BPF udp dst port 53
FIELDS ip.src udp.sport dns.qry.name
FILTER_NAME tls
BPF tcp dst port 443
FIELDS ip.src tcp.sport tls.handshake.extensions_server_name
FILTER_NAME rest
BPF ip or ip6
"""

MIX = ["-n", 3000, "-s", 11, "--http-share", 10, "--dns-share", 10, "--tls-share", 10,
       "--ipv6-share", 50, "--flows", 50]


def gen_pair(tmp_path, *cut, args=MIX):
    whole = tmp_path / "whole.pcap"
    pieces = tmp_path / "cut.pcap"
    sw = h.run_gen(args, whole)
    sc = h.run_gen(list(args) + ["--fragment"] + [str(a) for a in cut], pieces)
    assert sc["packets"] == sw["packets"]
    return whole, pieces, sw, sc


def dati(tmp_path, pcap, extra="", threads=1):
    conf = h.write_config(tmp_path, "d.conf", extra + ALL)
    return h.run_dati(["-r", pcap, "-c", conf, "-t", threads, "--no-progress"])


def fields(run):
    return [(r["filter"], json.dumps(r["fields"], sort_keys=True)) for r in run.records]


def flow_key(f):
    return (f["proto"], f["client"], f.get("client_port"), f["server"], f.get("server_port"))


def check_accounting(st):
    d = st["defrag"]
    assert d["fragments"] == st["decoded"]["ip_fragment"]
    assert d["fragments"] == (d["reassembled"] + d["duplicates"] + sum(d["dropped"].values()) +
                              d["held"]), d
    assert d["held"] == 0 and d["held_kb"] == 0
    decoded = sum(st["decoded"].values())
    assert st["processed"] == decoded - d["fragments"] + d["datagrams"] - d["undecodable"]


@pytest.mark.parametrize("cut", [("256",), ("256", "--frag-order", "reverse"),
                                 ("64", "--frag-order", "shuffle"),
                                 ("512", "--frag-dup", "--frag-order", "shuffle"),
                                 ("128", "--frag-conflict")])
def test_cut_mix_gives_the_same_records_and_flows(tmp_path, cut):
    whole, pieces, sw, sc = gen_pair(tmp_path, *cut)
    a, b = dati(tmp_path, whole), dati(tmp_path, pieces)
    assert len(a.records) > 500
    assert fields(b) == fields(a)   # conflicting copies: the first bytes won
    assert [r["ts"] for r in b.records] == [r["ts"] for r in a.records]
    d = b.stats["defrag"]
    assert d["fragments"] == sc["fragments"]
    assert d["datagrams"] == sc["fragmented"]
    dup = sc["fragments"] - d["reassembled"]   # copies: ignored, or late
    assert d["duplicates"] + d["dropped"]["timeout"] == dup
    if "--frag-dup" in cut:
        # the copy of a datagram's completing piece comes after it: a new
        # datagram, which never completes (as in Linux)
        assert d["dropped"]["timeout"] == sc["fragmented"]
        assert d["duplicates"] == d["reassembled"] - sc["fragmented"]
        assert d["conflicting"] == 0
    elif "--frag-conflict" in cut:   # right after piece 0, which comes first
        assert d["conflicting"] == d["duplicates"] == dup == sc["fragmented"]
    else:
        assert dup == 0
    check_accounting(b.stats)
    fa = {flow_key(f): f for f in a.flows}
    fb = {flow_key(f): f for f in b.flows}
    assert fa.keys() == fb.keys()
    for k, f in fb.items():
        g = fa[k]
        assert (f["first"], f["last"]) == (g["first"], g["last"])
        extra = f.get("fragments", 0) - f.get("reassembled", 0)   # frames beyond one per datagram
        assert f["c2s_packets"] + f["s2c_packets"] == g["c2s_packets"] + g["s2c_packets"] + extra
    # every frame of the file is in a flow (BPF ip or ip6), duplicates aside
    assert sum(f["c2s_packets"] + f["s2c_packets"] for f in b.flows) == sc["frames"] - dup
    assert b.stats["packets"] == sc["frames"]
    assert sum(f["fragments"] for f in b.flows if "fragments" in f) == d["reassembled"]
    if not dup:   # then every byte read is a flow's
        assert sum(f["c2s_bytes"] + f["s2c_bytes"] for f in b.flows) == b.stats["bytes"]


def test_same_records_for_any_thread_count(tmp_path):
    _, pieces, _, _ = gen_pair(tmp_path, "64", "--frag-order", "shuffle")
    one = dati(tmp_path, pieces, threads=1)
    for t in (2, 3):
        assert sorted(dati(tmp_path, pieces, threads=t).record_lines()) == \
            sorted(one.record_lines()), f"-t {t}"


def test_every_fragment_size(tmp_path):
    """Sizes 8 to 1480: the records of the whole file each time."""
    args = ["-n", 200, "-s", 5, "--http-share", 30, "--dns-share", 30, "--tls-share", 30,
            "--ipv6-share", 50]
    whole = tmp_path / "whole.pcap"
    h.run_gen(args, whole)
    want = fields(dati(tmp_path, whole))
    for size in list(range(8, 200, 8)) + [256, 512, 1000, 1480]:
        pieces = tmp_path / f"cut{size}.pcap"
        sc = h.run_gen(args + ["--fragment", size, "--frag-order", "shuffle"], pieces)
        run = dati(tmp_path, pieces)
        assert fields(run) == want, f"--fragment {size}"
        assert run.stats["defrag"]["datagrams"] == sc["fragmented"], f"--fragment {size}"
        check_accounting(run.stats)


def test_overlapping_fragments_discard_the_datagram(tmp_path):
    """Linux's policy: a fragment overlapping others (not an exact duplicate)
    drops what its datagram held and itself; the rest of that datagram then
    never completes."""
    whole, pieces, sw, sc = gen_pair(tmp_path, "256", "--frag-overlap")
    run = dati(tmp_path, pieces)
    d = run.stats["defrag"]
    # in order: piece 0, the overlapping one (both dropped), then pieces that wait for a 0
    assert d["datagrams"] == 0
    assert d["dropped"]["overlap"] == 2 * sc["fragmented"]
    assert d["dropped"]["timeout"] == sc["fragments"] - 2 * sc["fragmented"]
    check_accounting(run.stats)
    # what was small enough to stay whole still gives its records
    assert 0 < len(run.records) < len(dati(tmp_path, whole).records)


def test_incomplete_datagrams_time_out_and_hit_the_memcaps(tmp_path):
    args = MIX + ["--rate", 1000]   # 3 s of packet time
    whole, pieces, sw, sc = gen_pair(tmp_path, "256", "--frag-drop-last", "50", args=args)
    want = len(dati(tmp_path, whole).records)
    run = dati(tmp_path, pieces, "DEFRAG_TIMEOUT 1\n")
    d = run.stats["defrag"]
    assert 0 < d["datagrams"] < sc["fragmented"]
    assert d["dropped"]["timeout"] > 0 and d["dropped"]["no_room"] == 0
    assert len(run.records) < want
    check_accounting(run.stats)
    # a few datagrams at once: the rest are refused, counted
    small = dati(tmp_path, pieces, "DEFRAG_TIMEOUT 1\nDEFRAG_MAX_DATAGRAMS 4\n")
    ds = small.stats["defrag"]
    assert ds["dropped"]["no_room"] > 0 and ds["datagrams"] < d["datagrams"]
    check_accounting(small.stats)
    # a few blocks of memory: the same
    tiny = dati(tmp_path, pieces, "DEFRAG_TIMEOUT 1\nDEFRAG_MEMCAP 8192\n")
    dt = tiny.stats["defrag"]
    assert dt["dropped"]["no_room"] > 0 and dt["datagrams"] < d["datagrams"]
    check_accounting(tiny.stats)


def test_datagrams_above_the_size_limit(tmp_path):
    whole, pieces, sw, sc = gen_pair(tmp_path, "256")
    run = dati(tmp_path, pieces, "DEFRAG_MAX_SIZE 700\n")
    d = run.stats["defrag"]
    assert d["dropped"]["too_big"] > 0
    assert 0 < d["datagrams"] < sc["fragmented"]
    check_accounting(run.stats)


def test_reassembly_off_is_the_per_packet_path(tmp_path):
    whole, pieces, sw, sc = gen_pair(tmp_path, "256")
    run = dati(tmp_path, pieces, "REASSEMBLY 0\n")
    assert "defrag" not in run.stats
    # later fragments have no transport header: decoded as ip_fragment, no flow
    later = sc["fragments"] - sc["fragmented"]
    assert run.stats["decoded"]["ip_fragment"] == later
    assert not any("fragments" in f for f in run.flows)
    assert run.stats["processed"] == sum(run.stats["decoded"].values())
