"""Flows: dati's flow records against tshark's TCP/UDP streams
(oracle/NAME.flows.tsv).

The configuration's tcp/udp filters match every TCP/UDP packet, so the first
packet of a 5-tuple creates the flow (client = its sender = tshark's side A),
and PKT_TTL is huge, so every flow lasts to the end of the input. Each stream
must then be one flow record with the same endpoints, exact frames and bytes
(frame.len) per direction, and the same first/last time.

IP fragments (REASSEMBLY 1, the default): tshark counts a reassembled
datagram once, at the frame that completed it; dati counts every fragment's
frame in its flow (a flow record is traffic accounting) and says how many in
"fragments" and "reassembled". The expected numbers are derived from
tshark's ip.reassembled_in / ipv6.reassembled.in, not written by hand.

Legitimate differences are listed by name below, never skipped: streams that
tshark splits on one 5-tuple (corpus README caveat 8) are compared merged,
and single values that differ for a stated reason must have exactly the
stated dati value."""
import subprocess
from decimal import Decimal

import dati_helpers as h

# {capture: {5-tuple (transport, a, a_port, b, b_port) of the first stream: reason}}
# The oracle's streams sharing one 5-tuple must be exactly these.
MERGED_STREAMS = {
    "ndpi_fuzz-2006-09-29-28586.pcap": {
        ("tcp", "172.20.3.13", 80, "172.20.3.5", 2601):
            "caveat 8: tshark starts stream 8 (first frame 27) on the 5-tuple of stream 1; "
            "dati keys flows on the 5-tuple and keeps one flow",
    },
}

# Oracle streams dati has no flow for: {capture: {5-tuple: reason}}.
MISSING_FLOWS = {
    "ndpi_fuzz-2006-09-29-28586.pcap": {
        ("tcp", "170.170.170.170", 43690, "170.170.170.170", 43690):
            "frame 80, the stream's only frame: fuzzed TCP data offset (40 bytes) beyond the "
            "20 bytes of IP payload; dati counts it malformed (tcp_data_offset) and it makes "
            "no flow; tshark reads the ports before its exception and counts a stream",
    },
}

# Single values that differ for a stated reason; dati must have exactly the
# stated value. {capture: {flow 5-tuple as in dati (transport, client, cport,
# server, sport): {field: (dati's value, reason)}}}
FUZZ_TCP_OFFSET = ("fuzzed TCP data offset beyond the IP payload: dati counts the frame "
                   "malformed (decode.c decode_l4: tcp_data_offset), tshark counts it in the "
                   "stream")
FUZZ_IP_LEN = ("fuzzed IPv4 total length (9587) beyond the frame: dati counts the frame "
               "malformed (decode.c ip_end: ip_total_len), tshark dissects what is there")
VALUE_DIFFERENCES = {
    "ndpi_fuzz-2006-09-29-28586.pcap": {
        ("tcp", "172.20.3.13", 80, "172.20.3.5", 2601): {
            "s2c_packets": (7, "frame 27 (60 bytes): " + FUZZ_TCP_OFFSET),
            "s2c_bytes": (6223, "frame 27 (60 bytes): " + FUZZ_TCP_OFFSET),
        },
        ("tcp", "172.20.3.5", 2605, "172.20.3.13", 80): {
            "c2s_packets": (4, "frame 72 (1514 bytes): " + FUZZ_IP_LEN),
            "c2s_bytes": (240, "frame 72 (1514 bytes): " + FUZZ_IP_LEN),
        },
    },
    "ndpi_fuzz-2021-06-07-c6c72a0a56.pcap": {
        ("udp", "102.110.128.32", 2152, "0.6.255.0", 53975): {
            "c2s_bytes": (4093509168,
                          "the record's original length is 4093509168; tshark caps frame.len "
                          "at 2147483647, dati keeps the 32-bit value"),
            "first": (Decimal("1953635450.562680000"),
                      "seconds 1953631157 with a microseconds field of 4293562680 (out of "
                      "range): tshark prints a negative time, dati adds 4293.56268 s"),
            "last": (Decimal("1953635450.562680000"), "as first (the flow's only packet)"),
        },
    },
}


def oracle_rows(capture):
    path = h.oracle_path(capture, "flows.tsv")
    return h.read_tsv(path) if path.exists() else []


def tuple_of(transport, a, ap, b, bp):
    return (transport, h.canon_addr(a), int(ap), h.canon_addr(b), int(bp))


def unordered(t):
    return (t[0],) + tuple(sorted([(t[1], t[2]), (t[3], t[4])]))


def reassembled_frames(capture):
    """{(transport, stream): [(completing frame's sender (addr, port), [earlier
    fragments' frame.len])]} from tshark's two-pass view."""
    out = subprocess.run(
        ["tshark", "-2", "-n", "-r", str(h.PCAP_DIR / capture), "-T", "fields",
         "-e", "frame.number", "-e", "frame.len", "-e", "ip.reassembled_in",
         "-e", "ipv6.reassembled.in", "-e", "tcp.stream", "-e", "udp.stream", "-e", "ip.src",
         "-e", "ipv6.src", "-e", "tcp.srcport", "-e", "udp.srcport"],
        capture_output=True, text=True, check=True).stdout
    frames, held = {}, {}
    for line in out.splitlines():
        num, flen, r4, r6, ts, us, s4, s6, tp, up = (line.split("\t") + [""] * 10)[:10]
        frames[int(num)] = ("tcp" if ts else "udp", ts or us, s4 or s6, tp or up)
        r = (r4 or r6).split(",")[0]
        if r and int(r) != int(num):
            held.setdefault(int(r), []).append(int(flen))
    by_stream = {}
    for r, lens in held.items():
        transport, stream, src, port = frames[r]
        if stream:
            by_stream.setdefault((transport, stream), []).append(
                ((h.canon_addr(src), int(port)), lens))
    return by_stream


def expected_flows(capture, mm, fragments=False):
    """Oracle streams as expected dati flows {5-tuple: dict}, merging the
    streams listed in MERGED_STREAMS."""
    groups = {}
    for r in oracle_rows(capture):
        t = tuple_of(r["transport"], r["a.addr"], r["a.port"], r["b.addr"], r["b.port"])
        groups.setdefault(unordered(t), []).append((t, r))
    known = MERGED_STREAMS.get(capture, {})
    extra = reassembled_frames(capture) if fragments else {}
    out = {}
    seen_known = set()
    for streams in groups.values():
        streams.sort(key=lambda s: int(s[1]["first_frame"]))
        t0, r0 = streams[0]
        if len(streams) > 1:
            if t0 not in known:
                mm.add(f"oracle rows {[s[1]['_line'] for s in streams]}: {len(streams)} tshark "
                       f"streams on one 5-tuple {t0}, not listed in MERGED_STREAMS")
            seen_known.add(t0)
        e = {"rows": [s[1]["_line"] for s in streams], "c2s_packets": 0, "c2s_bytes": 0,
             "s2c_packets": 0, "s2c_bytes": 0,
             "first": Decimal(r0["first_time_epoch"]),
             # merged: the later stream's end (time order = file order there)
             "last": max(Decimal(s[1]["last_time_epoch"]) for s in streams)}
        for t, r in streams:
            fwd = t == t0
            e["c2s_packets"] += int(r["frames_a_to_b" if fwd else "frames_b_to_a"])
            e["c2s_bytes"] += int(r["bytes_a_to_b" if fwd else "bytes_b_to_a"])
            e["s2c_packets"] += int(r["frames_b_to_a" if fwd else "frames_a_to_b"])
            e["s2c_bytes"] += int(r["bytes_b_to_a" if fwd else "bytes_a_to_b"])
            for sender, lens in extra.get((r["transport"], r["stream"]), []):
                # the datagram's sender is the client: c2s
                c2s = sender == (t0[1], t0[2])
                e["c2s_packets" if c2s else "s2c_packets"] += len(lens)
                e["c2s_bytes" if c2s else "s2c_bytes"] += sum(lens)
                e["fragments"] = e.get("fragments", 0) + len(lens) + 1
                e["reassembled"] = e.get("reassembled", 0) + 1
        out[t0] = e
    for t in set(known) - seen_known:
        mm.add(f"MERGED_STREAMS lists {t} but the oracle has a single stream there: update it")
    return out


def test_flows_match_tshark(capture, corpus_run):
    run = corpus_run(capture)
    mm = h.Mismatches(capture, "flow")
    expected = expected_flows(capture, mm, run.stats["defrag"]["datagrams"] > 0)
    got = {}
    for f in run.flows:
        if f["proto"] not in ("tcp", "udp"):
            continue
        t = tuple_of(f["proto"], f["client"], f["client_port"], f["server"], f["server_port"])
        if t in got:
            mm.add(f"dati has two flow records for {t}: flows {got[t]['flow']} and {f['flow']}")
        got[t] = f
        if f["reason"] != "end_of_input":
            mm.add(f"dati flow {f['flow']} {t}: reason {f['reason']!r}, expected 'end_of_input' "
                   f"(PKT_TTL is huge, MAX_FLOWS is not reached)")
    known = VALUE_DIFFERENCES.get(capture, {})
    for t in sorted(set(known) - set(expected)):
        mm.add(f"VALUE_DIFFERENCES lists {t}, which is not an oracle flow: update it")
    seen_missing = set()
    by_unordered = {unordered(t): t for t in got}
    for t, e in sorted(expected.items(), key=lambda kv: kv[1]["rows"][0]):
        where = f"oracle row {e['rows'][0]} {t}"
        g = got.pop(t, None)
        if g is None:
            rev = by_unordered.get(unordered(t))
            if rev is not None:
                g = got.pop(rev)
                mm.add(f"{where}: dati has the flow with client and server swapped "
                       f"({rev}, flow {g['flow']})")
            elif t in MISSING_FLOWS.get(capture, {}):
                seen_missing.add(t)
            else:
                mm.add(f"{where}: no dati flow ({e['c2s_packets']}+{e['s2c_packets']} frames)")
            continue
        for field in ("c2s_packets", "c2s_bytes", "s2c_packets", "s2c_bytes", "first", "last",
                      "fragments", "reassembled"):
            want, have = e.get(field, 0), g.get(field, 0)
            if field in known.get(t, {}):
                dati_value, reason = known[t][field]
                if have != dati_value:
                    mm.add(f"{where}: {field} is a known difference (tshark {want}; {reason}), "
                           f"expected dati value {dati_value}, got {have}")
            elif want != have:
                mm.add(f"{where}: {field} expected {want}, got {have}")
    for t in sorted(set(MISSING_FLOWS.get(capture, {})) - seen_missing):
        mm.add(f"MISSING_FLOWS lists {t}, but dati has that flow (or the oracle lacks it): "
               f"update it")
    for t, g in sorted(got.items()):
        mm.add(f"dati flow {g['flow']} {t} ({g['c2s_packets']}+{g['s2c_packets']} packets) "
               f"is not an oracle stream")
    mm.check()
