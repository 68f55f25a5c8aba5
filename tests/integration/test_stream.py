"""TCP reassembly (REASSEMBLY 1, the default), on generated captures: the
same mix written with whole TCP payloads and cut into segments by dati-gen
(--segment, --split-at; the payloads and their times are the same) must
give the same HTTP and TLS field records, in order and at the same times:
cut at every byte position of a request, in small and large pieces,
out of order after the first one, duplicated, with conflicting overlaps,
and for any -t N. A message whose first segment comes late, messages that
never complete and the buffer cap are counted as the docs say."""
import json

import pytest

import dati_helpers as h

CONF = """\
PKT_TTL 1000000000
FILTER_NAME http
BPF tcp dst port 80
FIELDS ip.src ip.dst tcp.sport tcp.dport http.method http.url http.host http.useragent http.referer http.cookie
FILTER_NAME tls
BPF tcp dst port 443
FIELDS ip.src tcp.sport tls.handshake.extensions_server_name
"""

MIX = ["-n", 3000, "-s", 11, "--http-share", 10, "--dns-share", 10, "--tls-share", 10,
       "--ipv6-share", 50, "--flows", 50]


def dati(tmp_path, pcap, extra="", threads=1):
    conf = h.write_config(tmp_path, "s.conf", extra + CONF)
    return h.run_dati(["-r", pcap, "-c", conf, "-t", threads, "--no-progress"])


def app_records(run):
    """Records with an application field (HTTP request, TLS server name),
    as (filter, fields, time): background segments to ports 80/443 carry
    random bytes and give records without them, one per segment."""
    return [(r["filter"], json.dumps(r["fields"], sort_keys=True), r["ts"]) for r in run.records
            if "http.method" in r["fields"] or
            "tls.handshake.extensions_server_name" in r["fields"]]


@pytest.fixture(scope="module")
def whole(tmp_path_factory, binaries):
    d = tmp_path_factory.mktemp("whole")
    h.run_gen(MIX, d / "whole.pcap")
    run = dati(d, d / "whole.pcap")
    recs = app_records(run)
    assert len(recs) > 500
    assert run.stats["reassembly"]["started"] == 0   # nothing is cut
    return recs


def cut(tmp_path, *args):
    pcap = tmp_path / "cut.pcap"
    summary = h.run_gen(MIX + [str(a) for a in args], pcap)
    return pcap, summary


@pytest.mark.parametrize("args", [
    ("--segment", 100), ("--segment", 1000),
    ("--segment", 37, "--seg-order", "shuffle"),
    ("--segment", 7, "--seg-order", "shuffle", "--seg-dup"),
    ("--segment", 64, "--seg-conflict"),
    ("--segment", 64, "--seg-order", "shuffle", "--seg-conflict"),
], ids=lambda a: " ".join(str(x) for x in a))
def test_cut_mix_gives_the_same_records(tmp_path, whole, args):
    pcap, summary = cut(tmp_path, *args)
    run = dati(tmp_path, pcap)
    assert app_records(run) == whole   # the first copy of a byte wins over conflicting ones
    st = run.stats["reassembly"]
    assert st["held"] == 0 and st["gave_up"]["too_long"] == 0 and st["gave_up"]["no_room"] == 0
    # one message per buffer here: each completes, or was random bytes that
    # only looked like the start of one
    assert st["completed"] > 0
    assert st["started"] == st["completed"] + st["gave_up"]["not_message"]
    if "--seg-conflict" in args:
        assert st["conflicting"] > 0
    if "--seg-order" in args:
        assert st["out_of_order"] > 0
    f = run.stats["filters"]
    for name in ("http", "tls"):
        per_packet = f[name]["records"] - f[name]["reassembled_records"]
        assert per_packet == (f[name]["matches"] - f[name]["skipped_retransmissions"] -
                              f[name]["reassembled_segments"])


def test_every_split_position(tmp_path, binaries):
    """Requests and ClientHellos each cut in two, the n-th of each length at
    byte 1 + n mod (length - 1) (dati-gen --split-every): the requests all
    have one length (1446 bytes), so with more of them than that every
    position of a request is cut once; ClientHellos (about 100 bytes, three
    lengths) at every position several times."""
    args = ["-n", 6000, "-s", 3, "--http-share", 50, "--tls-share", 50]
    h.run_gen(args, tmp_path / "w.pcap")
    want = app_records(dati(tmp_path, tmp_path / "w.pcap"))
    assert sum(1 for r in want if r[0] == "http") > 1446
    cut = tmp_path / "c.pcap"
    summary = h.run_gen(args + ["--split-every"], cut)
    assert summary["segmented"] > 3000
    run = dati(tmp_path, cut)
    assert app_records(run) == want
    assert run.stats["reassembly"]["completed"] == summary["segmented"]


def test_same_records_for_any_thread_count(tmp_path, binaries):
    pcap, _ = cut(tmp_path, "--segment", 37, "--seg-order", "shuffle")
    one = dati(tmp_path, pcap)
    for t in (2, 3):
        assert sorted(dati(tmp_path, pcap, threads=t).record_lines()) == \
            sorted(one.record_lines()), f"-t {t}"


def test_first_segment_late_is_not_reassembled(tmp_path, whole):
    """Reassembly starts at a message's first segment: reversed, the first
    segment comes last, after bytes beyond it, and is taken for a
    retransmission; the other segments were records of their own."""
    pcap, _ = cut(tmp_path, "--segment", 200, "--seg-order", "reverse")
    run = dati(tmp_path, pcap)
    st = run.stats["reassembly"]
    assert st["started"] == 0
    got = app_records(run)
    assert len(got) < len(whole)
    assert run.stats["filters"]["http"]["skipped_retransmissions"] > 0


def test_unfinished_messages_and_the_buffer_cap(tmp_path, whole):
    pcap, _ = cut(tmp_path, "--segment", 100, "--seg-drop-last", 50)
    run = dati(tmp_path, pcap)
    st = run.stats["reassembly"]
    g = st["gave_up"]
    # a request whose last segment never comes: unfinished when its flow
    # ends, given up ("gap") when the next request on its connection comes
    assert g["unfinished"] > 0 and g["gap"] > 0 and st["held"] == 0
    assert st["started"] == st["completed"] + g["unfinished"] + g["gap"] + g["not_message"]
    assert len(app_records(run)) == len(whole) - g["unfinished"]
    # one buffer per worker: the others are refused, counted, and their
    # segments give records per packet
    small = dati(tmp_path, pcap, "REASSEMBLY_MEMCAP 20000\n")
    ss = small.stats["reassembly"]
    assert ss["gave_up"]["no_room"] > 0
    assert ss["started"] < st["started"]


def test_reassembly_off_is_per_packet(tmp_path, whole):
    pcap, _ = cut(tmp_path, "--segment", 100)
    run = dati(tmp_path, pcap, "REASSEMBLY 0\n")
    assert "reassembly" not in run.stats
    got = app_records(run)   # each request from its first segment: cut short
    assert len(got) == len(whole) and got != whole


def test_netpdl_description_sees_the_request(tmp_path, binaries):
    """protocols/http.xml runs on the reassembled request, as the built-in
    fields do: the cut file gives the whole file's records."""
    conf = h.write_config(tmp_path, "n.conf", f"""\
FILTER_NAME http
BPF tcp dst port 80
PROTOCOL_DEF {h.REPO / 'protocols' / 'http.xml'}
FIELDS ip.src tcp.sport http.method http.url http.host http.useragent http.referer http.cookie
""")
    args = ["-n", 400, "-s", 4, "--http-share", 40]
    runs = []
    for extra in ([], ["--segment", 90, "--seg-order", "shuffle"]):
        pcap = tmp_path / f"n{len(extra)}.pcap"
        h.run_gen(args + extra, pcap)
        run = h.run_dati(["-r", pcap, "-c", conf, "--no-progress"])
        runs.append([(json.dumps(r["fields"], sort_keys=True), r["ts"]) for r in run.records
                     if "http.method" in r["fields"]])
    assert len(runs[0]) > 100
    assert runs[1] == runs[0]
