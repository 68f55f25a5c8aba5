"""dati's built-in configuration (no -c) on the corpus: its BPF filters must
select every packet, within their stated scope, whose fields dati reports
with the broad test configuration (which the other corpus tests check
against tshark). This finds packets the built-in filters lose (link layers,
encapsulations, IP versions), independently of the parsers."""
import dati_helpers as h

# The methods the built-in http filter looks for (config-default.c).
BUILTIN_METHODS = {"GET", "POST", "HEAD", "PUT", "DELETE", "OPTIONS", "PATCH", "CONNECT", "TRACE"}


def http_rows(records):
    return [(r["frame"], r["fields"].get("ip.src"), r["fields"].get("ip.dst"),
             r["fields"].get("tcp.sport"), r["fields"].get("tcp.dport"), r["fields"]["http.method"],
             r["fields"].get("http.url"), r["fields"].get("http.host"),
             r["fields"].get("http.useragent"), r["fields"].get("http.referer"),
             r["fields"].get("http.cookie"))
            for r in records if "http.method" in r["fields"]]


def compare(capture, what, want, got, mm):
    want, got = sorted(want, key=repr), sorted(got, key=repr)
    for row in [w for w in want if w not in got]:
        mm.add(f"{what}: frame {row[0]}: built-in configuration has no record for {row}")
    for row in [g for g in got if g not in want]:
        mm.add(f"{what}: frame {row[0]}: built-in record {row} not found with the test config")


def test_builtin_filters_select_everything_in_scope(capture, corpus_run, binaries):
    broad = corpus_run(capture)
    builtin = h.run_dati(["-r", h.PCAP_DIR / capture, "-q"], expect_rc=(0, 1))
    mm = h.Mismatches(capture, "built-in configuration")

    # HTTP: packets whose first request uses one of the built-in methods.
    broad_http = h.records_of(broad, "http")
    first_method = {r["frame"]: r["fields"].get("http.method") for r in broad_http
                    if r["id"] % 64 == 0}
    want = [r for r in http_rows(broad_http) if first_method.get(r[0]) in BUILTIN_METHODS]
    got = http_rows([r for r in builtin.records if r["filter"] == "http"])
    compare(capture, "http", want, got, mm)

    # DNS queries (QR=0), port 53.
    def dns_rows(records):
        return [(r["frame"], r["fields"]["dns.id"], r["fields"].get("dns.qry.name"),
                 r["fields"].get("dns.qry.type")) for r in records
                if "dns.id" in r["fields"] and r["fields"].get("dns.flags.response", 0) == 0]
    want = [r for r in dns_rows(h.records_of(broad, "dns"))
            if any(r[0] == q["frame"] for q in h.records_of(broad, "dns")
                   if 53 in (q["fields"].get("udp.sport"), q["fields"].get("udp.dport"),
                             q["fields"].get("tcp.sport"), q["fields"].get("tcp.dport")))]
    got = dns_rows([r for r in builtin.records if r["filter"] == "dns"])
    compare(capture, "dns", want, got, mm)

    # TLS ClientHellos with a server name, over TCP.
    def sni_rows(records):
        return [(r["frame"], r["fields"]["tls.sni"]) for r in records if "tls.sni" in r["fields"]]
    compare(capture, "tls", sni_rows(h.records_of(broad, "tls")),
            sni_rows([r for r in builtin.records if r["filter"] == "tls"]), mm)
    mm.check()
