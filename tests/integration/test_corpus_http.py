"""HTTP requests: dati (per packet, no reassembly) against tshark with TCP
reassembly off (oracle/NAME.http-noreasm.tsv, corpus README caveat 1).

Rows are paired on (src, dst, sport, dport, method, uri) as a multiset, in
frame order within equal keys; then host, user agent, referer, cookie and the
frame number must agree. Values are compared the way tshark shows them: bytes
that are not UTF-8 become U+FFFD (caveat 5), and a repeated header is its
values joined with ','. An empty oracle cell means "absent", so an absent
dati field compares as ''."""
import dati_helpers as h

VALUE_COLUMNS = (
    ("http.host", "http.host"),
    ("http.useragent", "http.user_agent"),
    ("http.referer", "http.referer"),
    ("http.cookie", "http.cookie"),
)

# Requests dati reports that tshark does not, or the reverse, for a reason
# that is not a dati bug: {capture: {(frame, method, uri): reason}}.
# A listed difference must actually occur, so the list cannot go stale.
KNOWN_DIFFERENCES = {}


def oracle_rows(capture):
    path = h.oracle_path(capture, "http-noreasm.tsv")
    return h.read_tsv(path) if path.exists() else []


def oracle_key(r):
    return (h.canon_addr(r["ip.src|ipv6.src"]), h.canon_addr(r["ip.dst|ipv6.dst"]),
            int(r["tcp.srcport"]), int(r["tcp.dstport"]),
            r["http.request.method"], r["http.request.uri"])


def dati_key(rec):
    f = rec["fields"]
    return (h.canon_addr(f.get("ip.src", "")), h.canon_addr(f.get("ip.dst", "")),
            f.get("tcp.sport"), f.get("tcp.dport"),
            h.as_tshark_text(f["http.method"]), h.as_tshark_text(f.get("http.url")))


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
        for dk, ok in VALUE_COLUMNS:
            want, have = e[ok], h.as_tshark_text(g["fields"].get(dk))
            if want != have:
                mm.add(f"{where}: {ok} expected {want[:200]!r}, got {have[:200]!r}")
    for e in missing:
        k = (int(e["frame.number"]), e["http.request.method"], e["http.request.uri"])
        if k in known:
            seen_known.add(k)
            continue
        mm.add(f"oracle row {e['_line']} (frame {e['frame.number']}): request "
               f"{oracle_key(e)} expected, dati has no such record")
    for g in extra:
        f = g["fields"]
        k = (g["frame"], h.as_tshark_text(f["http.method"]), h.as_tshark_text(f.get("http.url")))
        if k in known:
            seen_known.add(k)
            continue
        mm.add(f"dati frame {g['frame']}: request {dati_key(g)} not in the oracle "
               f"(record: {f})")
    for k in set(known) - seen_known:
        mm.add(f"known difference {k} ({known[k]}) did not occur: update KNOWN_DIFFERENCES")
    return mm


def test_http_requests_match_tshark(capture, corpus_run):
    """Every request tshark sees in one segment, and nothing else (a capture
    without an http-noreasm oracle must give no HTTP record at all)."""
    run = corpus_run(capture)
    mm = compare_http(capture, oracle_rows(capture), dati_http(run),
                      KNOWN_DIFFERENCES.get(capture, {}))
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
