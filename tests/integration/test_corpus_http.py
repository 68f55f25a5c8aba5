"""HTTP requests, in two views: dati with REASSEMBLY 0 (per packet) against
tshark with TCP reassembly off (oracle/NAME.http-noreasm.tsv, corpus README
caveat 1), and dati with REASSEMBLY 1 (the default) against tshark with it
on (oracle/NAME.http.tsv): a request split over segments is one record, at
the frame that completed its headers.

Rows are paired on (src, dst, sport, dport, method, uri) as a multiset, in
frame order within equal keys; then host, user agent, referer, cookie and the
frame number must agree. dati's values are compared as tshark 4.0 shows the
same bytes (h.tshark_ascii_view: HTTP fields are ASCII C strings there, so a
value ends at a NUL byte and each byte >= 0x80 is one U+FFFD; caveat 5). A
repeated header is its values joined with ','. An empty oracle cell means
"absent", so an absent dati field compares as ''.

tshark does not hand TCP segments it flags as retransmissions to HTTP
(tcp.no_subdissector_on_error, TRUE by default), so a retransmitted request
is one oracle row; dati, which follows no TCP sequence numbers, reports it
again. That is not listed as a known difference: the failure message marks
such records ("same request as dati frame N")."""
from decimal import Decimal

import pytest

import dati_helpers as h

VALUE_COLUMNS = (
    ("http.host", "http.host"),
    ("http.useragent", "http.user_agent"),
    ("http.referer", "http.referer"),
    ("http.cookie", "http.cookie"),
)

# Differences that are not dati bugs, each with its reason:
# {capture: {("extra" | "missing", frame): reason}}. "extra": dati reports a
# request at that frame that the oracle lacks; "missing": the reverse. Every
# entry must occur, so the list cannot go stale.
KNOWN_DIFFERENCES = {
    "ndpi_http_ua_splitted_in_two_pkts.pcapng": {
        ("extra", 108): "the segment holds a complete request line, then ends inside a "
                        "header name ('Cac', no colon); tshark 4.0's HTTP dissector raises an "
                        "exception on that line ([BoundError Unreassembled Packet]) and never "
                        "marks the message as a request, so there is no http.request row (the "
                        "request is in http.tsv, reassembled, at frame 109); dati reports the "
                        "request line it has",
    },
    "ndpi_fuzz-2006-09-29-28586.pcap": {
        ("missing", 72): "fuzzed IPv4 total length 9587 in a 1514-byte frame: dati's decoder "
                         "(decode.c ip_end) counts the packet as malformed (ip_total_len) and "
                         "reads nothing above IP; tshark dissects the bytes it has",
    },
}


# The reassembled view's differences, as KNOWN_DIFFERENCES for the other:
# none (frame 72's fuzzed request is in neither).
KNOWN_REASSEMBLED = {}

VIEWS = {"per-packet": (False, "http-noreasm.tsv", KNOWN_DIFFERENCES),
         "reassembled": (True, "http.tsv", KNOWN_REASSEMBLED)}


def oracle_rows(capture, kind="http-noreasm.tsv"):
    path = h.oracle_path(capture, kind)
    return h.read_tsv(path) if path.exists() else []


def oracle_key(r):
    return (h.canon_addr(r["ip.src|ipv6.src"]), h.canon_addr(r["ip.dst|ipv6.dst"]),
            int(r["tcp.srcport"]), int(r["tcp.dstport"]),
            r["http.request.method"], r["http.request.uri"])


def dati_key(rec):
    f = rec["fields"]
    return (h.canon_addr(f.get("ip.src", "")), h.canon_addr(f.get("ip.dst", "")),
            f.get("tcp.sport"), f.get("tcp.dport"),
            h.tshark_ascii_view(f["http.method"]), h.tshark_ascii_view(f.get("http.url")))


def dati_http(run):
    return [r for r in h.records_of(run, "http") if "http.method" in r["fields"]]


def compare_http(capture, expected, got, known):
    """Pairs oracle rows with dati records and returns a Mismatches."""
    mm = h.Mismatches(capture, "HTTP")
    pairs, missing, extra = h.pair_rows(
        expected, got, key=lambda r: oracle_key(r) if "_line" in r else dati_key(r),
        order=lambda r: int(r["frame.number"]) if "_line" in r else r["frame"])
    seen_known = set()
    for e, g in pairs:
        where = f"oracle row {e['_line']} (frame {e['frame.number']}, {e['http.request.method']} " \
                f"{e['http.request.uri'][:80]!r})"
        if int(e["frame.number"]) != g["frame"]:
            mm.add(f"{where}: frame expected {e['frame.number']}, got {g['frame']}")
        if Decimal(e["frame.time_epoch"]) != g["ts"]:
            mm.add(f"{where}: ts expected {e['frame.time_epoch']}, got {g['ts']}")
        for dk, ok in VALUE_COLUMNS:
            want, have = e[ok], h.tshark_ascii_view(g["fields"].get(dk))
            if want != have:
                mm.add(f"{where}: {ok} expected {want[:200]!r}, got {have[:200]!r}")
    missing.sort(key=lambda r: int(r["frame.number"]))
    extra.sort(key=lambda r: r["frame"])
    for e in missing:
        k = ("missing", int(e["frame.number"]))
        if k in known:
            seen_known.add(k)
            continue
        mm.add(f"oracle row {e['_line']} (frame {e['frame.number']}): request "
               f"{oracle_key(e)} expected, dati has no such record")
    for g in extra:
        k = ("extra", g["frame"])
        if k in known:
            seen_known.add(k)
            continue
        same = [p["frame"] for p in got if p is not g and dati_key(p) == dati_key(g)
                and p["frame"] < g["frame"]]
        hint = f" [same request as dati frame {same[-1]}: a TCP retransmission?]" if same else ""
        mm.add(f"dati frame {g['frame']}: request {dati_key(g)} not in the oracle{hint} "
               f"(record: {g['fields']})")
    for k in sorted(set(known) - seen_known):
        mm.add(f"known difference {k} ({known[k][:60]}...) did not occur: "
               f"update KNOWN_DIFFERENCES")
    return mm


@pytest.mark.parametrize("view", VIEWS)
def test_http_requests_match_tshark(capture, corpus_run, view):
    """Every request tshark sees (in one segment, or reassembled), and
    nothing else (a capture without that oracle must give no HTTP record)."""
    reassembly, kind, known = VIEWS[view]
    run = corpus_run(capture, reassembly=reassembly)
    mm = compare_http(capture, oracle_rows(capture, kind), dati_http(run),
                      known.get(capture, {}))
    mm.check()


def test_http_addresses_in_canonical_form(capture, corpus_run):
    """ip.src/ip.dst are printed as tshark prints them (IPv6: RFC 5952)."""
    mm = h.Mismatches(capture, "address text")
    for rec in dati_http(corpus_run(capture)):
        for k in ("ip.src", "ip.dst"):
            v = rec["fields"].get(k)
            if v is None:
                mm.add(f"frame {rec['frame']}: {k} missing")
            elif h.canon_addr(v) != v:
                mm.add(f"frame {rec['frame']}: {k} {v!r}, canonical {h.canon_addr(v)!r}")
    mm.check()
