"""NetPDL descriptions end to end (PROTOCOL_DEF, protocols/*.xml).

- protocols/http.xml against the built-in HTTP fields on every corpus
  capture: for every packet, the first request's fields are the same (the
  built-in parser also reports pipelined requests after the first; a
  description gives one record per packet, doc/netpdl.md). The built-in
  fields are checked against tshark's oracle by test_corpus_http.py.
- protocols/dns.xml (binary) against the built-in DNS fields on the corpus.
- protocols/sip.xml (text) on a capture this test writes (SIP is not in the
  corpus): exact values, compact header names, a cut message, a response.
- Records with description fields are the same in Redis as in JSON.
- A broken description stops dati at start with file:line and the reason."""
import shutil
import signal
import struct
import subprocess
from collections import Counter

import pytest

import dati_helpers as h

PROTOCOLS = h.REPO / "protocols"
HTTP_FIELDS = "http.method http.url http.version http.host http.useragent http.referer http.cookie"
BASE = "ip.src ip.dst tcp.sport tcp.dport"
# every HTTP field of http.xml, and dns.xml on UDP (more descriptions and FIELDS follow)
HTTP_AND_UDP = f"""\
FILTER_NAME http
BPF tcp
PROTOCOL_DEF {PROTOCOLS / 'http.xml'}
FIELDS {BASE} {HTTP_FIELDS} http.get
FILTER_NAME udp
BPF udp
PROTOCOL_DEF {PROTOCOLS / 'dns.xml'}
"""


def by_frame(run, filt=None):
    """{frame: fields} of the first record (sub 0) of each packet."""
    out = {}
    for r in run.records:
        if (filt is None or r["filter"] == filt) and r["id"] % 64 == 0:
            out[r["frame"]] = r["fields"]
    return out


def test_http_xml_equals_builtin(capture, tmp_path, binaries):
    # per packet: a reassembled request may repeat a header, which the
    # built-in fields join and http.xml's pattern field takes once
    # (test_stream.py runs http.xml on reassembled requests)
    conf = "TIME_STATS 0\nREASSEMBLY 0\nPKT_TTL 1000000000\nFILTER_NAME h\nBPF tcp\n{pd}FIELDS {f}\n"
    builtin = h.write_config(tmp_path, "b.conf", conf.format(pd="", f=BASE + " " + HTTP_FIELDS))
    xml = h.write_config(tmp_path, "x.conf", conf.format(
        pd=f"PROTOCOL_DEF {PROTOCOLS / 'http.xml'}\n", f=BASE + " " + HTTP_FIELDS))
    cap = h.PCAP_DIR / capture
    want = by_frame(h.run_dati(["-r", cap, "-c", builtin, "-q"], expect_rc=(0, 1)))
    got = by_frame(h.run_dati(["-r", cap, "-c", xml, "-q"], expect_rc=(0, 1)))
    assert set(want) == set(got), f"{capture}: packets with records differ"
    mm = h.Mismatches(capture, "http.xml vs built-in")
    requests = 0
    for frame in sorted(want):
        w, g = want[frame], got[frame]
        requests += "http.method" in w
        if w != g:
            diff = {k: (w.get(k), g.get(k)) for k in set(w) | set(g) if w.get(k) != g.get(k)}
            mm.add(f"frame {frame}: built-in vs description: {diff}")
    mm.check()
    oracle = h.oracle_path(capture, "http-noreasm.tsv")
    if oracle.exists():
        assert requests > 0, f"{capture}: tshark has HTTP requests, no record compared"


def test_dns_xml_matches_builtin(capture, tmp_path, binaries):
    conf = h.write_config(tmp_path, "d.conf", f"""\
TIME_STATS 0
PKT_TTL 1000000000
FILTER_NAME b
BPF udp port 53
FIELDS dns.id dns.flags.response dns.count.queries dns.qry.name dns.qry.type dns.qry.class
FILTER_NAME x
BPF udp port 53
PROTOCOL_DEF {PROTOCOLS / 'dns.xml'}
FIELDS dns.id dns.qr dns.qdcount dns.qname dns.qtype dns.qclass
""")
    run = h.run_dati(["-r", h.PCAP_DIR / capture, "-c", conf, "-q"], expect_rc=(0, 1))
    want, got = by_frame(run, "b"), by_frame(run, "x")
    mm = h.Mismatches(capture, "dns.xml vs built-in")
    names = 0
    for frame, w in sorted(want.items()):
        g = got.get(frame, {})
        if "dns.id" not in w:
            continue   # not DNS for the built-in parser
        pairs = [("dns.id", "dns.id"), ("dns.flags.response", "dns.qr"),
                 ("dns.count.queries", "dns.qdcount")]
        if "dns.qry.name" in w:   # showtemplate="DNSName": the same dotted text
            pairs += [("dns.qry.name", "dns.qname"), ("dns.qry.type", "dns.qtype"),
                      ("dns.qry.class", "dns.qclass")]
            names += 1
        for b, x in pairs:
            if w.get(b) != g.get(x):
                mm.add(f"frame {frame}: {b} {w.get(b)!r}, description {x} {g.get(x)!r}")
    mm.check()
    oracle = h.oracle_path(capture, "dns.tsv")
    if oracle.exists() and any("udp" in l for l in open(oracle)):
        assert names > 0, f"{capture}: DNS queries in the oracle, no name compared"


# ------------------------------------------------------------------ SIP

def ip_checksum(hdr):
    s = sum(struct.unpack("!10H", hdr))
    s = (s >> 16) + (s & 0xffff)
    s += s >> 16
    return ~s & 0xffff


def udp_frame(src, dst, sport, dport, payload):
    udp = struct.pack("!HHHH", sport, dport, 8 + len(payload), 0) + payload
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), 1, 0, 64, 17, 0,
                     bytes(map(int, src.split("."))), bytes(map(int, dst.split("."))))
    ip = ip[:10] + struct.pack("!H", ip_checksum(ip)) + ip[12:]
    eth = b"\x02\x00\x00\x00\x00\x02" + b"\x02\x00\x00\x00\x00\x01" + b"\x08\x00"
    return eth + ip + udp


def write_pcap(path, frames):
    with open(path, "wb") as f:
        f.write(struct.pack("<IHHiIII", 0xa1b2c3d4, 2, 4, 0, 0, 65535, 1))
        for i, fr in enumerate(frames):
            f.write(struct.pack("<IIII", 1700000000 + i, 0, len(fr), len(fr)) + fr)


SIP = [
    b"INVITE sip:bob@b.example SIP/2.0\r\n"
    b"Via: SIP/2.0/UDP 198.18.0.1:5060;branch=z9hG4bK776\r\n"
    b"From: Alice <sip:alice@a.example>;tag=1928\r\n"
    b"To: Bob <sip:bob@b.example>\r\n"
    b"Call-ID: a84b4c76e66710@198.18.0.1\r\n"
    b"CSeq: 314159 INVITE\r\n"
    b"User-Agent: dati-test/1\r\n"
    b"Content-Length: 10\r\n\r\n"
    b"v=0\r\no=x\r\n",
    b"SIP/2.0 200 OK\r\n"
    b"v: SIP/2.0/UDP 198.18.0.1:5060\r\n"
    b"f: <sip:alice@a.example>;tag=1928\r\n"
    b"t: <sip:bob@b.example>;tag=99\r\n"
    b"i: a84b4c76e66710@198.18.0.1\r\n"
    b"CSeq: 314159 INVITE\r\n\r\n",
    b"REGISTER sip:registrar.b.example SIP/2.0\r\nCall-ID: cut",   # cut by the capture
    b"NOT SIP AT ALL\r\n",
]

SIP_FIELDS = ("sip.method sip.uri sip.version sip.status sip.reason sip.from sip.to "
              "sip.callid sip.cseq sip.useragent sip.body")

SIP_WANT = [
    {"sip.method": "INVITE", "sip.uri": "sip:bob@b.example", "sip.version": "SIP/2.0",
     "sip.from": "Alice <sip:alice@a.example>;tag=1928", "sip.to": "Bob <sip:bob@b.example>",
     "sip.callid": "a84b4c76e66710@198.18.0.1", "sip.cseq": "314159 INVITE",
     "sip.useragent": "dati-test/1", "sip.body": "v=0\r\no=x\r\n"},
    {"sip.version": "SIP/2.0", "sip.status": "200", "sip.reason": "OK",
     "sip.from": "<sip:alice@a.example>;tag=1928", "sip.to": "<sip:bob@b.example>;tag=99",
     "sip.callid": "a84b4c76e66710@198.18.0.1", "sip.cseq": "314159 INVITE"},
    {"sip.method": "REGISTER", "sip.uri": "sip:registrar.b.example", "sip.version": "SIP/2.0",
     "sip.callid": "cut"},
    {},
]


@pytest.fixture
def sip_capture(tmp_path):
    path = tmp_path / "sip.pcap"
    write_pcap(path, [udp_frame("198.18.0.1", "198.19.0.5", 5060, 5060, p) for p in SIP])
    return path


def sip_conf(tmp_path, extra=""):
    # a relative PROTOCOL_DEF resolves against the config file's directory
    shutil.copy(PROTOCOLS / "sip.xml", tmp_path / "sip.xml")
    return h.write_config(tmp_path, "sip.conf", f"""\
TIME_STATS 0
{extra}FILTER_NAME sip
BPF udp port 5060
PROTOCOL_DEF sip.xml
FIELDS udp.sport {SIP_FIELDS}
""")


def test_sip_fields(tmp_path, binaries, sip_capture):
    run = h.run_dati(["-r", sip_capture, "-c", sip_conf(tmp_path), "-q"])
    got = [{k: v for k, v in r["fields"].items() if k != "udp.sport"} for r in run.records]
    assert got == SIP_WANT
    assert all(r["fields"]["udp.sport"] == 5060 for r in run.records)


def test_long_headers_and_regex_errors(tmp_path, binaries):
    """8000 short header lines before From: found (the shipped patterns keep
    no backtracking state per line, the worker's JIT stack is made once);
    a search that fails (match limit) is counted in the stats record and
    stops that description in that packet, it is not taken for no match."""
    long_sip = (b"OPTIONS sip:x SIP/2.0\r\n" + b"a\n" * 8000 +
                b"From: <sip:far@a.example>\r\nCall-ID: far\r\n\r\n")
    slow = b"a" * 40 + b"cb"   # (a+)+b: 2^40 ways, past the match limit
    path = tmp_path / "long.pcap"
    write_pcap(path, [udp_frame("198.18.0.1", "198.19.0.5", 5060, 5060, p)
                      for p in (long_sip, slow, b"aab")])
    (tmp_path / "bt.xml").write_text(
        '<protocol name="bt"><format><fields>'
        '<field type="pattern" name="p" pattern="(a+)+b"/>'
        '<field type="fixed" name="after" size="1"/>'
        '</fields></format></protocol>\n')
    conf = sip_conf(tmp_path).read_text().replace(
        "PROTOCOL_DEF sip.xml\n", "PROTOCOL_DEF sip.xml\nPROTOCOL_DEF bt.xml\n").replace(
        "FIELDS udp.sport", "FIELDS bt.p bt.after")
    run = h.run_dati(["-r", path, "-c", h.write_config(tmp_path, "l.conf", conf), "-q"])
    got = [r["fields"] for r in run.records]
    assert got[0]["sip.from"] == "<sip:far@a.example>" and got[0]["sip.callid"] == "far"
    assert "bt.p" not in got[1] and "bt.after" not in got[1]
    assert got[2]["bt.p"] == "aab" and got[2]["bt.after"] == "a"
    assert run.stats["records"]["netpdl_regex_errors"] == 1


# ------------------------------------------------------------------ Redis

def test_redis_equals_json(tmp_path, binaries, sip_capture):
    tr = pytest.importorskip("test_redis", reason="python3-redis or redis-server missing")
    p, client = tr.start_redis(sock=tmp_path / "redis.sock")
    try:
        cases = [(sip_capture, ""), (h.PCAP_DIR / "zeek_dns-edns-ecs.pcap", ""),
                 (h.PCAP_DIR / "ndpi_1kxun.pcap", "")]
        body = f"""\
{HTTP_AND_UDP}PROTOCOL_DEF {PROTOCOLS / 'sip.xml'}
FIELDS ip.src dns.id dns.qr dns.qname dns.qtype {SIP_FIELDS}
"""
        rconf = h.write_config(tmp_path, "r.conf", f"TIME_STATS 0\nPKT_TTL 1000000000\n"
                               f"REDIS_SOCK {tmp_path / 'redis.sock'}\n" + body)
        jconf = h.write_config(tmp_path, "j.conf", "TIME_STATS 0\nPKT_TTL 1000000000\n" + body)
        compared = 0
        for cap, _ in cases:
            if not cap.exists():
                continue
            client.flushall()
            h.run_dati(["-r", cap, "-c", rconf, "-q"], expect_rc=(0, 1))
            want = h.run_dati(["-r", cap, "-c", jconf, "-q"], expect_rc=(0, 1))
            keys = list(client.scan_iter("dati:rec:*"))
            assert len(keys) == len(want.records), cap
            got = Counter(tr.record_tuple(client.hgetall(k)) for k in keys)
            assert got == tr.expected_from_json(want), f"{cap}: Redis differs from JSON"
            compared += sum(1 for r in want.records
                            if {"http.url", "dns.qname", "sip.callid"} & set(r["fields"]))
        assert compared > 0
    finally:
        tr.stop_redis(p)


# ------------------------------------------------------------------ errors

def test_broken_description_stops_dati(tmp_path, binaries, sip_capture):
    (tmp_path / "bad.xml").write_text(
        '<netpdl>\n<protocol name="b">\n<format><fields>\n'
        '<field type="variable" name="v" expr="$packet[0:"/>\n'
        '</fields></format></protocol></netpdl>\n')
    conf = h.write_config(tmp_path, "b.conf", "FILTER_NAME b\nBPF udp\nPROTOCOL_DEF bad.xml\n"
                                              "FIELDS b.v\n")
    run = h.run_dati(["-r", sip_capture, "-c", conf], expect_rc=(2,), parse=False)
    assert f"{tmp_path}/bad.xml:4: field v: expression '$packet[0:': unexpected end" in run.stderr
    assert f"{conf}:3: filter b: protocol description refused (1 error above)" in run.stderr
    assert f"{conf}:4: filter b: unknown field: 'b.v'" in run.stderr
    assert run.stdout == b""


ISSUE_EXAMPLE = """\
FILTER_NAME http
BPF tcp[(tcp[12] >> 4) * 4 : 4] = 0x47455420
PROTOCOL_DEF protocols/http.xml
FIELDS ip.src ip.dst tcp.sport tcp.dport http.url http.referer http.host
"""


def test_issue_example_config(tmp_path, binaries):
    """The issue's configuration as written: protocols/http.xml is not next
    to the config file, so it is found from the working directory; its
    http.* names take the place of the built-in ones."""
    cap = h.PCAP_DIR / "ndpi_1kxun.pcap"
    if not cap.exists():
        pytest.skip(h.CORPUS_MISSING)
    conf = h.write_config(tmp_path, "issue.conf", ISSUE_EXAMPLE)
    builtin = h.write_config(tmp_path, "builtin.conf",
                             ISSUE_EXAMPLE.replace("PROTOCOL_DEF protocols/http.xml\n", ""))
    p = subprocess.run([str(h.DATI), "-r", str(cap), "-c", str(conf), "-q"], cwd=h.REPO,
                       capture_output=True, env=h.sanitizer_env(), timeout=h.RUN_TIMEOUT)
    h.check_no_crash("dati", p.returncode, p.stderr.decode())
    assert p.returncode == 0, p.stderr.decode()
    got = [o for o in h.parse_json_lines(p.stdout, "issue") if o["type"] == "record"]
    want = h.run_dati(["-r", cap, "-c", builtin, "-q"]).records
    assert len(got) > 100
    assert [(r["frame"], r["fields"]) for r in got] == \
        [(r["frame"], r["fields"]) for r in want if r["id"] % 64 == 0]
    # from elsewhere, the relative path is not found: a clear error
    p = subprocess.run([str(h.DATI), "-c", str(conf), "--check"], cwd=tmp_path,
                       capture_output=True, timeout=h.RUN_TIMEOUT)
    assert p.returncode == 2
    assert b"protocols/http.xml: cannot read: No such file or directory" in p.stderr


def test_threads_give_the_same_records(tmp_path, binaries):
    """Each worker runs the shared, read-only programs with its own match
    data: the records do not depend on the number of workers."""
    cap = h.PCAP_DIR / "ndpi_1kxun.pcap"
    if not cap.exists():
        pytest.skip(h.CORPUS_MISSING)
    conf = h.write_config(tmp_path, "t.conf", f"""\
TIME_STATS 0
PKT_TTL 1000000000
{HTTP_AND_UDP}FIELDS dns.id dns.qname dns.qtype
""")
    one = h.run_dati(["-r", cap, "-c", conf, "-t", 1, "-q"])
    urls = sum(1 for r in one.records if "http.url" in r["fields"])
    names = sum(1 for r in one.records if "dns.qname" in r["fields"])
    assert urls > 100 and names > 5, (urls, names)
    for t in (2, 3):
        run = h.run_dati(["-r", cap, "-c", conf, "-t", t, "-q"])
        assert sorted(run.record_lines()) == sorted(one.record_lines()), f"-t {t}"


# ------------------------------------------------------------------ reload

DESC_V1 = """<protocol name="s"><format><fields>
<field type="tokenended" name="method" endtoken=" "/>
</fields></format></protocol>
"""
DESC_V2 = DESC_V1.replace('endtoken=" "/>', 'endtoken=" "/>\n'
                          '<field type="tokenended" name="uri" endtoken=" "/>')
DESC_BROKEN = DESC_V1.replace('<field type', '<loop type="while" expr="1"/>\n<field type')
RELOAD_CONF = "FILTER_NAME sip\nBPF udp port 5060\nPROTOCOL_DEF d.xml\nFIELDS {}\n"


def test_sighup_reloads_descriptions(tmp_path, binaries, sip_capture):
    """Live capture: SIGHUP reads the descriptions again with the
    configuration; a broken description is refused with its file:line and
    the running one stays."""
    netns = pytest.importorskip("netns")
    if not netns.available():
        pytest.skip(netns.NEED)
    (tmp_path / "d.xml").write_text(DESC_V1)
    conf = h.write_config(tmp_path, "dati.conf", RELOAD_CONF.format("s.method"))
    with netns.Netns() as ns:
        d = netns.Dati(ns, tmp_path, ["-c", conf, "-i", "c0"])
        n = netns.pcap_records(sip_capture)
        ns.replay(sip_capture, pps=1000)
        d.wait_packets(n)   # a backlog would get the new descriptions
        (tmp_path / "d.xml").write_text(DESC_V2)
        h.write_config(tmp_path, "dati.conf", RELOAD_CONF.format("s.method s.uri"))
        d.signal(signal.SIGHUP)
        d.wait_for("reloaded")
        ns.replay(sip_capture, pps=1000)
        d.wait_packets(2 * n)
        (tmp_path / "d.xml").write_text(DESC_BROKEN)
        d.signal(signal.SIGHUP)
        d.wait_for("reload refused")
        ns.replay(sip_capture, pps=1000)
        d.wait_packets(3 * n)
        objs = d.stop()
        err = d.stderr()
    assert f"{tmp_path}/d.xml:2: unsupported element <loop>" in err
    recs = [o for o in objs if o["type"] == "record"]
    methods = ["INVITE", "SIP/2.0", "REGISTER", "NOT"]
    assert [r["fields"] for r in recs[:4]] == [{"s.method": m} for m in methods]
    uris = ["sip:bob@b.example", "200", "sip:registrar.b.example", "SIP"]
    after = [{"s.method": m, "s.uri": u} for m, u in zip(methods, uris)]
    assert [r["fields"] for r in recs[4:]] == after * 2   # reloaded, then kept
