"""DNS queries: dati against tshark (oracle/NAME.dns.tsv).

tshark's "dns" is port 53 only (mDNS 5353 and LLMNR 5355 are other
protocols, corpus README caveat 4) and lists only queries (QR=0), one row per
question. dati reports the first question of a message, with the message's
question count, so for a message with several questions the oracle's first
row is compared and the others are the named limitation below (asserted, not
skipped). Rows are paired on (transport, src, dst, sport, dport, id) in frame
order; then name, type, class, question count and frame must agree. The
oracle's id and class are hex (0x4fe8), dati's are integers."""
from decimal import Decimal

import pytest

import dati_helpers as h

MULTI_QUESTION = "dati reports only the first question of a DNS message"


def oracle_rows(capture):
    path = h.oracle_path(capture, "dns.tsv")
    return h.read_tsv(path) if path.exists() else []


def split_multi_question(rows):
    """(first-question rows, later-question rows) of the oracle."""
    first, later, seen = [], [], set()
    for r in rows:
        k = (r["frame.number"], r["transport"], r["srcport"], r["dstport"], r["dns.id"])
        if k in seen:
            later.append(r)
        else:
            seen.add(k)
            first.append(r)
    return first, later


def oracle_key(r):
    return (r["transport"], h.canon_addr(r["ip.src|ipv6.src"]), h.canon_addr(r["ip.dst|ipv6.dst"]),
            int(r["srcport"]), int(r["dstport"]), int(r["dns.id"], 16))


def dati_transport(f):
    return "udp" if "udp.sport" in f else "tcp" if "tcp.sport" in f else ""


def dati_ports(f):
    t = dati_transport(f)
    return (f.get(f"{t}.sport"), f.get(f"{t}.dport")) if t else (None, None)


def dati_key(rec):
    f = rec["fields"]
    sport, dport = dati_ports(f)
    return (dati_transport(f), h.canon_addr(f.get("ip.src", "")), h.canon_addr(f.get("ip.dst", "")),
            sport, dport, f["dns.id"])


def dati_queries(run):
    """Records of DNS queries (QR=0) to or from port 53."""
    out = []
    for r in h.records_of(run, "dns"):
        f = r["fields"]
        if "dns.id" not in f or f.get("dns.flags.response") != 0:
            continue
        if 53 not in dati_ports(f):
            continue
        out.append(r)
    return out


@pytest.mark.parametrize("reassembly", [True, False], ids=["reassembled", "per-packet"])
def test_dns_queries_match_tshark(capture, corpus_run, reassembly):
    """tshark's one view (it reassembles DNS over TCP and IP fragments):
    the corpus has no query split over segments or fragments, so dati's
    per-packet view gives it too."""
    run = corpus_run(capture, reassembly=reassembly)
    first, later = split_multi_question(oracle_rows(capture))
    got = dati_queries(run)
    mm = h.Mismatches(capture, "DNS")
    pairs, missing, extra = h.pair_rows(
        first, got, key=lambda r: oracle_key(r) if "_line" in r else dati_key(r),
        order=lambda r: int(r["frame.number"]) if "_line" in r else r["frame"])
    for e, g in pairs:
        f = g["fields"]
        where = f"oracle row {e['_line']} (frame {e['frame.number']}, id {e['dns.id']})"
        checks = (
            ("frame.number", int(e["frame.number"]), g["frame"]),
            ("frame.time_epoch", Decimal(e["frame.time_epoch"]), g["ts"]),
            ("dns.qry.name", e["dns.qry.name"], h.tshark_dns_view(f.get("dns.qry.name"))),
            ("dns.qry.type", e["dns.qry.type"], str(f.get("dns.qry.type", ""))),
            ("dns.qry.class", int(e["dns.qry.class"], 16) if e["dns.qry.class"] else None,
             f.get("dns.qry.class")),
            ("dns.count.queries", int(e["dns.count.queries"]), f.get("dns.count.queries")),
        )
        for name, want, have in checks:
            if want != have:
                mm.add(f"{where}: {name} expected {want!r}, got {have!r}")
    for e in missing:
        mm.add(f"oracle row {e['_line']} (frame {e['frame.number']}): query {oracle_key(e)} "
               f"{e['dns.qry.name']!r} expected, dati has no such record")
    for g in extra:
        mm.add(f"dati frame {g['frame']}: query {dati_key(g)} not in the oracle "
               f"(record: {g['fields']})")
    # The multi-question limitation, explicitly: the message is reported once,
    # with its full question count, and the later questions are missing.
    by_frame = {r["frame"]: r for r in got}
    for e in later:
        g = by_frame.get(int(e["frame.number"]))
        if g is None or g["fields"].get("dns.count.queries") != int(e["dns.count.queries"]):
            mm.add(f"oracle row {e['_line']} (frame {e['frame.number']}): later question of a "
                   f"{e['dns.count.queries']}-question message; expected one dati record "
                   f"with dns.count.queries {e['dns.count.queries']} ({MULTI_QUESTION})")
    mm.check()

