"""CLASSIFY 1: application names from nDPI, checked against ndpiReader of
the same library version (libndpi-bin), run by the test on the same
captures. Every TCP/UDP flow of every corpus capture must carry the
application, category, confidence and host name ndpiReader prints for it,
except the differences named in KNOWN below. APP filters select exactly
the packets of matching flows from the one that classified them on; the
records are the same for any -t N; the pool and every flow are accounted."""
import ipaddress
import re
import shutil
import subprocess
from collections import Counter

import pytest

import dati_helpers as h

if not shutil.which("ndpiReader"):
    pytest.skip("ndpiReader is not installed (make deps: libndpi-bin)", allow_module_level=True)

# Every IP packet is a candidate, one flow per 5-tuple for the whole file:
# ndpiReader never expires a flow when it reads a file.
CONF = """\
CLASSIFY 1
PKT_TTL 1000000000
{extra}
FILTER_NAME ip
BPF ip or ip6
FIELDS frame.number app
"""

# Differences between dati and ndpiReader 4.2 on the corpus, each explained.
KNOWN = {
    # ndpiReader does not look at the ethertype: it reads frames with the
    # bogus ethertypes 0x0900 and 0x08c6 of this fuzzed file as IPv4 (its
    # reader_util.c, "iph_check"). dati decodes them as not IP. So one flow
    # (172.20.3.13:80 -> 76.20.3.5:2602, one frame) exists for ndpiReader
    # only, and the flow whose SYN came in a 0x08c6 frame is "Match by port"
    # for ndpiReader (it saw the SYN) and "DPI" for dati. And two flows come
    # from frames whose TCP header is cut short (frame 80) or has a data
    # offset below 5: dati counts those as malformed (tcp_short,
    # tcp_data_offset) and makes no flow of them; ndpiReader keys a flow on
    # whatever is where the ports would be.
    "ndpi_fuzz-2006-09-29-28586.pcap": {
        "only_ndpireader": {("TCP", ("172.20.3.13", 80), ("76.20.3.5", 2602)),
                            ("TCP", ("170.170.170.170", 43690), ("170.170.170.170", 43690)),
                            ("TCP", ("172.20.3.13", 0), ("172.20.3.5", 0))},
        "confidence": {("TCP", ("172.20.3.13", 80), ("172.20.3.5", 2601))},
    },
    # The file's one frame is a datagram cut by the capture (4 GB on the
    # wire, 60 bytes kept). ndpiReader drops such frames before they reach
    # a flow; dati counts them in their flow (flow records are traffic
    # accounting) but gives nDPI nothing of them, so the flow is Unknown.
    "ndpi_fuzz-2021-06-07-c6c72a0a56.pcap": {
        "only_dati": {("UDP", ("0.6.255.0", 53975), ("102.110.128.32", 2152))},
    },
    # The first record claims 524501 captured bytes, more than any snapshot
    # length: dati refuses the file there (exit status 1, an input error),
    # libpcap inside ndpiReader reads that one frame and finds a TLS flow.
    "ndpi_fuzz-2021-10-13.pcap": {
        "only_ndpireader": {("TCP", ("302e::3d00::8001", 0),
                             ("3400:3a30:3035:2f75:706c:6f32:643f:6c3d", 44288))},
    },
    # Its one frame has a TCP data offset below 5: malformed for dati
    # (tcp_data_offset), a flow on ports 0 and 256 for ndpiReader.
    "sv_bug-6875-01-fuzz.pcap": {
        "only_ndpireader": {("TCP", ("0.0.16.64", 0), ("192.168.0.0", 256))},
    },
}
# ndpiReader 4.2 cannot read LINUX_SLL2 ("Unsupported datalink 276"): nothing to compare.
NO_REFERENCE = {"sv_decode-sll2-01.pcap"}

FLOW_RE = re.compile(
    r'^\t(?P<id>\d+)\t(?P<l4>\S+) '
    r'(?P<a1>\[[^\]]*\]|[^\s\[]+?):(?P<p1>\d+) (?P<dir><->|->) '
    r'(?P<a2>\[[^\]]*\]|[^\s\[]+?):(?P<p2>\d+) '
    r'(?:\[VLAN: (?P<vlan>\d+)\])?.*?\[proto: (?P<ids>[\d.]+)/(?P<app>[^\]]+)\]')
CAT_RE = re.compile(r'\]\[cat: (?P<cat>[^\]/]+)/(?P<catid>\d+)\]')
CONF_RE = re.compile(r'\[Confidence: (?P<conf>[^\]]+)\]')
HOST_RE = re.compile(r'\[Hostname/SNI: (?P<host>[^\]]*)\]')


def ndpireader_flows(pcap):
    """{(l4, endpoint, endpoint): {app, category, confidence, host}} from
    `ndpiReader -q -i FILE -v 2` (detected and undetected flows)."""
    p = subprocess.run(["ndpiReader", "-q", "-i", str(pcap), "-v", "2"], capture_output=True,
                       text=True, errors="replace", timeout=300)
    assert p.returncode == 0, p.stderr
    assert "ERROR" not in p.stdout and "Unsupported datalink" not in p.stdout, p.stdout[:500]
    flows = {}
    for line in p.stdout.splitlines():
        m = FLOW_RE.match(line)
        if not m or m["l4"] not in ("TCP", "UDP"):
            continue
        c, cf, hs = CAT_RE.search(line), CONF_RE.search(line), HOST_RE.search(line)
        ends = sorted([(m["a1"].strip("[]"), int(m["p1"])), (m["a2"].strip("[]"), int(m["p2"]))])
        key = (m["l4"], ends[0], ends[1])
        assert key not in flows, f"ndpiReader printed {key} twice"
        flows[key] = {"app": m["app"], "category": c["cat"] if c else "Unspecified",
                      "confidence": cf["conf"] if cf else None,
                      "host": hs["host"] if hs else None}
    return flows


def ndpi_addr(text):
    """An address as ndpiReader prints it: IPv6 through its ':0:' -> '::' patch."""
    a = ipaddress.ip_address(text)
    return str(a).replace(":0:", "::") if a.version == 6 else str(a)


def dati_flows(run):
    flows = {}
    for f in run.flows:
        if f["proto"] not in ("tcp", "udp"):
            continue
        ends = sorted([(ndpi_addr(f["client"]), f["client_port"]),
                       (ndpi_addr(f["server"]), f["server_port"])])
        key = (f["proto"].upper(), ends[0], ends[1])
        assert key not in flows, f"two dati flow records for {key}"
        flows[key] = f
    return flows


def classify(tmp_path, pcap, threads=1, extra=""):
    conf = h.write_config(tmp_path, "classify.conf", CONF.format(extra=extra))
    # 1: a capture file that ends in a broken record (fuzzed ones)
    return h.run_dati(["-c", conf, "-r", pcap, "-t", threads], expect_rc=(0, 1))


def check_accounting(run):
    """Every flow is named, unknown or refused by the pool, once; the
    per-application counts add up to the named and unknown ones."""
    s = run.stats
    c = s["classify"]
    assert s["flows"]["active"] == 0
    assert c["classified"] + c["unknown"] + c["pool_full"] == s["flows"]["created"], c
    assert sum(c["apps"].values()) + c["apps_uncounted"] == c["classified"] + c["unknown"]
    got = Counter(f["app"] if f["app"] is not None else None for f in run.flows)
    assert got.pop(None, 0) == c["pool_full"]
    assert dict(got) == c["apps"]


def corpus_ids():
    return [c for c in h.corpus_captures() if c not in NO_REFERENCE]


@pytest.mark.parametrize("pcap_name", corpus_ids() or ["(corpus absent)"])
def test_corpus_against_ndpireader(tmp_path, binaries, pcap_name):
    if not h.corpus_captures():
        pytest.skip(h.CORPUS_MISSING)
    pcap = h.PCAP_DIR / pcap_name
    want = ndpireader_flows(pcap)
    run = classify(tmp_path, pcap)
    check_accounting(run)
    got = dati_flows(run)
    known = KNOWN.get(pcap_name, {})
    assert set(want) - set(got) == known.get("only_ndpireader", set()), set(want) - set(got)
    assert set(got) - set(want) == known.get("only_dati", set()), set(got) - set(want)
    for key, w in want.items():
        if key not in got:
            continue
        g = got[key]
        assert g["app"] == w["app"], (key, g, w)
        assert g["category"] == w["category"], (key, g, w)
        if key not in known.get("confidence", set()):
            assert g["confidence"] == w["confidence"], (key, g, w)
        assert g.get("app_host") == w["host"], (key, g, w)


def records_by_flow(run):
    out = {}
    for r in run.records:
        out.setdefault(r["flow"], []).append(r["fields"])
    return out


@pytest.mark.parametrize("threads", [2, 3])
def test_same_records_for_any_thread_count(tmp_path, binaries, threads):
    if not h.corpus_captures():
        pytest.skip(h.CORPUS_MISSING)
    for name in ("ndpi_1kxun.pcap", "ndpi_sites.pcapng", "zeek_wikipedia.pcap"):
        one = classify(tmp_path, h.PCAP_DIR / name)
        many = classify(tmp_path, h.PCAP_DIR / name, threads)
        key = lambda f: f["flow"]
        assert sorted(one.flows, key=key) == sorted(many.flows, key=key), name
        assert records_by_flow(one) == records_by_flow(many), name
        counts = lambda run: {k: v for k, v in run.stats["classify"].items() if k != "memory_kb"}
        assert counts(one) == counts(many), name   # memory: per worker, so not the same


APP_CONF = """\
CLASSIFY 1
PKT_TTL 1000000000
FILTER_NAME all
BPF ip or ip6
FIELDS frame.number app
FILTER_NAME wiki
APP HTTP.Wikipedia, dns
FIELDS frame.number app
FILTER_NAME tls443
BPF tcp port 443
APP TLS
FIELDS frame.number
"""


@pytest.mark.parametrize("pcap_name", ["zeek_wikipedia.pcap", "ndpi_sites.pcapng"])
def test_app_filter_selects_from_the_classifying_packet(tmp_path, binaries, pcap_name):
    """A filter with APP selects every packet of a flow whose final name it
    names, from the packet that made the name final (the first whose field
    app is set in the all-packets filter) to the flow's end; APP with BPF
    needs both. Its flow records list it; flows no filter matched give none."""
    if not h.corpus_captures():
        pytest.skip(h.CORPUS_MISSING)
    conf = h.write_config(tmp_path, "app.conf", APP_CONF)
    run = h.run_dati(["-c", conf, "-r", h.PCAP_DIR / pcap_name])
    by_filter = {}
    for r in run.records:
        by_filter.setdefault(r["filter"], []).append(r)
    flows = {f["flow"]: f for f in run.flows}
    want = {"wiki": set(), "tls443": set()}
    named_from = {}
    for r in by_filter["all"]:
        if "app" in r["fields"]:
            named_from.setdefault(r["flow"], r["frame"])
            name = r["fields"]["app"]
            parts = name.split(".")
            if name == "HTTP.Wikipedia" or "DNS" in parts:
                want["wiki"].add(r["frame"])
            f = flows[r["flow"]]
            port443 = 443 in (f["client_port"], f["server_port"]) and f["proto"] == "tcp"
            if port443 and "TLS" in parts:
                want["tls443"].add(r["frame"])
        else:   # before the name is final, no record carries it
            assert r["flow"] not in named_from, r
    for name in ("wiki", "tls443"):
        got = [r["frame"] for r in by_filter.get(name, [])]
        assert len(got) == len(set(got))
        assert set(got) == want[name], name
        f = run.stats["filters"][name]
        assert f["matches"] == len(got) + f["skipped_retransmissions"]
        for r in by_filter.get(name, []):
            if name == "wiki":
                assert r["fields"]["app"] in ("HTTP.Wikipedia",) or \
                    "DNS" in r["fields"]["app"].split(".")
    assert want["wiki" if pcap_name == "zeek_wikipedia.pcap" else "tls443"]
    # flow records: a flow lists the APP filter when some packet matched it
    for f in run.flows:
        frames = {r["frame"] for r in by_filter["all"] if r["flow"] == f["flow"]}
        for name in ("wiki", "tls443"):
            assert (name in f["filters"]) == bool(frames & want[name]), (f, name)
    # with the all-packets filter, every flow has a record and none is unmatched
    assert run.stats["classify"]["unmatched_flows"] == 0

    # the APP filter alone: flows are made for it, and the unmatched ones
    # end without a record, counted
    alone = h.write_config(tmp_path, "alone.conf", "CLASSIFY 1\nPKT_TTL 1000000000\n"
                           "FILTER_NAME wiki\nAPP HTTP.Wikipedia, DNS\nFIELDS frame.number\n")
    run2 = h.run_dati(["-c", alone, "-r", h.PCAP_DIR / pcap_name])
    assert {r["frame"] for r in run2.records} == want["wiki"]
    assert all(f["filters"] == ["wiki"] for f in run2.flows)
    wiki_flows = {r["flow"] for r in by_filter.get("wiki", [])}
    assert {f["flow"] for f in run2.flows} == wiki_flows
    s = run2.stats
    assert s["classify"]["unmatched_flows"] == s["flows"]["created"] - len(wiki_flows)
    assert s["records"]["flow"] == len(wiki_flows)


def test_pool_full_is_counted_and_named(tmp_path, binaries):
    """A pool of 2 nDPI states: flows that begin while it is full are never
    classified, say so in their records and are counted."""
    if not h.corpus_captures():
        pytest.skip(h.CORPUS_MISSING)
    run = classify(tmp_path, h.PCAP_DIR / "ndpi_1kxun.pcap", extra="CLASSIFY_MAX_FLOWS 2")
    check_accounting(run)
    c = run.stats["classify"]
    assert c["pool_full"] > 0 and c["classified"] > 0
    refused = [f for f in run.flows if f["app"] is None]
    assert len(refused) == c["pool_full"]
    assert all(f["app_state"] == "pool_full" for f in refused)
    assert all("category" not in f for f in refused)


def test_without_classify_nothing_changes(tmp_path, binaries):
    """Without CLASSIFY nothing changes: no app in flow records."""
    if not h.corpus_captures():
        pytest.skip(h.CORPUS_MISSING)
    conf = h.write_config(tmp_path, "plain.conf", "FILTER_NAME ip\nBPF ip or ip6\n")
    run = h.run_dati(["-c", conf, "-r", h.PCAP_DIR / "zeek_wikipedia.pcap"])
    assert run.flows and all("app" not in f for f in run.flows)
    assert "classify" not in run.stats


SERVICES = {"www.youtube.com": "YouTube", "www.google.com": "Google",
            "en.wikipedia.org": "Wikipedia", "www.netflix.com": "NetFlix",
            "www.facebook.com": "Facebook", "github.com": "Github",
            "www.amazon.com": "Amazon", "www.twitch.tv": "Twitch"}

SERVICES_CONF = """\
CLASSIFY 1
PKT_TTL 1000000000
FILTER_NAME http
BPF tcp port 80
FIELDS http.host app
FILTER_NAME dns
BPF udp port 53
FIELDS dns.qry.name app
FILTER_NAME tls
BPF tcp port 443
FIELDS tls.sni app
FILTER_NAME ip
BPF ip or ip6
"""


def test_generated_services(tmp_path, binaries):
    """dati-gen --services: HTTP requests, DNS queries and TLS ClientHellos
    naming public services (in the payload; addresses in 198.18.0.0/15 and
    2001:2::/48). Each such flow is <protocol>.<service>, the service read
    from the flow's first request, query or hello; every flow equals
    ndpiReader's."""
    pcap = tmp_path / "services.pcap"
    h.run_gen(["-n", "20000", "--http-share", "8", "--dns-share", "4", "--tls-share", "4",
               "--ipv6-share", "25", "--responses", "--services"], pcap)
    conf = h.write_config(tmp_path, "svc.conf", SERVICES_CONF)
    run = h.run_dati(["-c", conf, "-r", pcap])
    check_accounting(run)
    first_name = {}
    for r in run.records:
        f = r["fields"]
        name = f.get("http.host") or f.get("dns.qry.name") or f.get("tls.sni")
        if name:
            first_name.setdefault(r["flow"], (r["filter"], name))
    flows = {f["flow"]: f for f in run.flows}
    seen = Counter()
    for flow, (proto, name) in first_name.items():
        want = {"http": "HTTP", "dns": "DNS", "tls": "TLS"}[proto] + "." + SERVICES[name]
        assert flows[flow]["app"] == want, (flows[flow], name)
        seen[proto] += 1
    assert seen["http"] > 100 and seen["dns"] > 100 and seen["tls"] > 100, seen
    # and every flow, these and the background ones, as ndpiReader names it
    want = ndpireader_flows(pcap)
    got = dati_flows(run)
    assert set(got) == set(want)
    for key in want:
        assert (got[key]["app"], got[key]["category"], got[key]["confidence"],
                got[key].get("app_host")) == \
            (want[key]["app"], want[key]["category"], want[key]["confidence"],
             want[key]["host"]), key
