"""Generated traffic (no corpus needed): dati-gen writes a capture and prints
exact counts of what it wrote; dati's built-in configuration must find
exactly those requests, queries and ClientHellos, with the generator's
values, and its flow expiry must account for every matched packet."""
import re
from decimal import Decimal

import pytest

import dati_helpers as h

HTTP_VARIANTS = {
    ("/index.html", "www.example.test", "Mozilla/5.0 (X11; Linux x86_64) dati-gen/1",
     "http://www.example.test/", "session=0a1b2c"),
    ("/search?q=dati&lang=en", "search.example.test", "curl/7.88.1",
     "http://search.example.test/home", "uid=42; theme=dark"),
    ("/images/logo.png", "cdn.example.test", "Wget/1.21.3",
     "http://www.example.test/index.html", "a=1"),
}
DNS_NAME = re.compile(r"host\d{1,3}\.example\.test\Z")
SNI = re.compile(r"tls\d{1,3}\.example\.test\Z")
CLIENT_NETS = ("198.18.", "2001:2:0:1:")
SERVER_NETS = ("198.19.", "2001:2:0:2:")

VARIANTS = {
    "plain": [],
    "ipv6": ["--ipv6-share", 30],
    "ns": ["--ns"],
    "responses": ["--responses"],
    "vlan": ["--vlan", 100],
}


def check_record(rec, summary, mm):
    f, filt, where = rec["fields"], rec["filter"], f"frame {rec['frame']} ({rec['filter']})"
    first, last = Decimal(str(summary["first_ts"])), Decimal(str(summary["last_ts"]))
    if not first <= rec["ts"] <= last:
        mm.add(f"{where}: ts {rec['ts']} outside the file's [{first}, {last}]")
    src, dst = f.get("ip.src", ""), f.get("ip.dst", "")
    if not src.startswith(CLIENT_NETS) or not dst.startswith(SERVER_NETS):
        mm.add(f"{where}: addresses {src} -> {dst} not client -> server")
    if filt == "http":
        got = (f.get("http.url"), f.get("http.host"), f.get("http.useragent"),
               f.get("http.referer"), f.get("http.cookie"))
        if f.get("http.method") != "GET" or f.get("http.version") != "HTTP/1.1" \
                or got not in HTTP_VARIANTS or f.get("tcp.dport") != 80:
            mm.add(f"{where}: not one of the generator's requests: {f}")
    elif filt == "dns":
        if not DNS_NAME.match(f.get("dns.qry.name", "")) or f.get("dns.qry.type") not in (1, 28) \
                or f.get("udp.dport") != 53 or not 0 <= f.get("dns.id", -1) <= 0xFFFF \
                or not (dst.endswith(".0.53") or dst.endswith("::35")):
            mm.add(f"{where}: not one of the generator's queries: {f}")
    elif filt == "tls":
        if not SNI.match(f.get("tls.sni", "")) or f.get("tcp.dport") != 443 \
                or not (dst.endswith(".0.43") or dst.endswith("::2b")):
            mm.add(f"{where}: not one of the generator's ClientHellos: {f}")
    else:
        mm.add(f"{where}: unexpected filter")


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_builtin_config_finds_generated_traffic(variant, tmp_path, binaries):
    path = tmp_path / f"{variant}.pcap"
    summary = h.run_gen(["-n", 20000, "-s", 7, "--http-share", 5, "--dns-share", 2,
                         "--tls-share", 2] + VARIANTS[variant], path)
    run = h.run_dati(["-r", path, "-q"])
    label = f"dati-gen {variant}"
    s = run.stats
    assert (s["packets"], s["bytes"]) == (summary["packets"], summary["bytes"]), \
        f"{label}: dati read {s['packets']} packets / {s['bytes']} bytes, generator wrote " \
        f"{summary['packets']} / {summary['bytes']}"
    expected = {"http": summary["http_requests"], "dns": summary["dns_queries"],
                "tls": summary["tls_hellos"]}
    got = {name: sum(1 for r in run.records if r["filter"] == name) for name in expected}
    assert got == expected, f"{label}: records per filter {got}, generator wrote {expected}"
    assert {n: c["records"] for n, c in s["filters"].items()} == expected, \
        f"{label}: stats {s['filters']}, generator wrote {expected}"
    mm = h.Mismatches(label, "record")
    for rec in run.records:
        check_record(rec, summary, mm)
    seen = {(r["fields"].get("http.url"), r["fields"].get("http.host"),
             r["fields"].get("http.useragent"), r["fields"].get("http.referer"),
             r["fields"].get("http.cookie")) for r in run.records if r["filter"] == "http"}
    if expected["http"] >= 100 and seen != HTTP_VARIANTS:
        mm.add(f"HTTP variants seen {len(seen)} of {len(HTTP_VARIANTS)}")
    mm.check()


def test_idle_expiry_accounts_for_every_matched_packet(tmp_path, binaries):
    """--stop-early 50 --rate 1000: 20 s of traffic where half the flows go
    silent after 6.7 s; PKT_TTL 2 makes flows expire inside the file."""
    pcap = tmp_path / "idle.pcap"
    summary = h.run_gen(["-n", 20000, "-s", 7, "--http-share", 5, "--dns-share", 2,
                         "--tls-share", 2, "--stop-early", 50, "--rate", 1000], pcap)
    builtin = h.run_dati(["--dump-config"], parse=False).stdout.decode()
    assert re.search(r"^PKT_TTL \d+$", builtin, re.M), builtin
    conf = h.write_config(tmp_path, "ttl2.conf",
                          re.sub(r"^PKT_TTL \d+$", "PKT_TTL 2", builtin, flags=re.M))
    run = h.run_dati(["-r", pcap, "-c", conf, "-q"])
    flows = run.flows
    reasons = {}
    for f in flows:
        reasons[f["reason"]] = reasons.get(f["reason"], 0) + 1
    assert reasons.get("idle", 0) > 0, f"no flow ended idle: {reasons}"
    assert set(reasons) <= {"idle", "end_of_input"}, reasons
    s = run.stats["flows"]
    assert s["created"] == len(flows) and s["active"] == 0, f"stats {s}, {len(flows)} records"
    assert (s["idle"], s["end_of_input"]) == (reasons.get("idle", 0),
                                              reasons.get("end_of_input", 0)), \
        f"stats {s} vs records {reasons}"
    # Only matching packets create flows, and no other packet shares their
    # 5-tuples, so the flows hold exactly the matched packets.
    matched = summary["http_requests"] + summary["dns_queries"] + summary["tls_hellos"]
    total = sum(f["c2s_packets"] + f["s2c_packets"] for f in flows)
    assert total == matched, f"flow records hold {total} packets, {matched} matched " \
                             f"(reasons {reasons})"
    assert sum(c["matches"] for c in run.stats["filters"].values()) == matched
    end = Decimal(str(summary["last_ts"]))
    ttl = Decimal(2)
    mm = h.Mismatches("dati-gen --stop-early", "flow")
    by_tuple = {}
    for f in flows:
        t = (f["proto"], f["client"], f["client_port"], f["server"], f["server_port"])
        by_tuple.setdefault(t, []).append(f)
        if f["first"] > f["last"]:
            mm.add(f"flow {f['flow']}: first {f['first']} after last {f['last']}")
        if f["reason"] == "idle" and not f["last"] + ttl < end:
            mm.add(f"flow {f['flow']}: idle, but its last packet {f['last']} is within "
                   f"PKT_TTL of the end {end}")
        if f["reason"] == "end_of_input" and f["last"] + ttl < end:
            mm.add(f"flow {f['flow']}: end_of_input, but idle since {f['last']} (end {end})")
    for t, fs in by_tuple.items():
        fs.sort(key=lambda f: f["first"])
        for a, b in zip(fs, fs[1:]):
            if a["reason"] != "idle" or not a["last"] + ttl < b["first"]:
                mm.add(f"{t}: flow {a['flow']} ({a['reason']}, last {a['last']}) and the next "
                       f"flow {b['flow']} (first {b['first']}) on the same 5-tuple")
    mm.check()
