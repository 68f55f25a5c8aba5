#!/usr/bin/env python3
"""gen-corpus.py - writes the fuzzers' seed corpora under tests/fuzz/corpus/:
crafted packets (packet/), configuration files (config/) and small capture
files (capture/). Everything is built here from scratch, or by dati's own
tools when a build directory is given (dati --dump-config, dati-gen).

    tests/fuzz/gen-corpus.py [BUILD]     # BUILD defaults to build

Regression inputs found by fuzzing live beside the seeds as crash-*/regress-*
files; this script never removes them."""
import os
import struct
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
CORPUS = os.path.join(HERE, "corpus")
BUILD = sys.argv[1] if len(sys.argv) > 1 else "build"

# fuzz-packet.c's first byte: an index into this list
LINK_INDEX = {"eth": 0, "sll": 1, "sll2": 2, "raw": 3, "ipv4": 4, "ipv6": 5, "null": 6, "loop": 7}
LINKTYPE = {"eth": 1, "sll": 113, "sll2": 276, "raw": 101, "ipv4": 228, "ipv6": 229,
            "null": 0, "loop": 108}

A4, B4 = bytes([192, 0, 2, 1]), bytes([198, 51, 100, 7])
A6 = bytes.fromhex("20010db8000000000000000000000001")
B6 = bytes.fromhex("20010db8000000000000000000000002")


def eth(ethertype, inner, vlans=()):
    hdr = bytes.fromhex("020000000002" "020000000001")
    out = hdr + struct.pack("!H", 0x8100 if vlans else ethertype)
    for i, vid in enumerate(vlans):
        out += struct.pack("!HH", vid, 0x8100 if i + 1 < len(vlans) else ethertype)
    return out + inner


def ipv4(proto, l4, src=A4, dst=B4, frag=0, options=b""):
    ihl = 5 + len(options) // 4
    return struct.pack("!BBHHHBBH4s4s", 0x40 | ihl, 0, 20 + len(options) + len(l4), 0x1234,
                       frag, 64, proto, 0, src, dst) + options + l4


def ipv6(nh, l4, src=A6, dst=B6, ext=b""):
    return struct.pack("!IHBB16s16s", 0x60000000, len(ext) + len(l4), nh, 64, src, dst) + ext + l4


def ext_hdr(nh, units=0):
    return bytes([nh, units]) + bytes(6 + 8 * units)


def tcp(sport, dport, payload=b"", options=b""):
    off = 5 + len(options) // 4
    return struct.pack("!HHIIBBHHH", sport, dport, 1000, 0, off << 4, 0x18, 65535, 0, 0) + \
        options + payload


def udp(sport, dport, payload=b""):
    return struct.pack("!HHHH", sport, dport, 8 + len(payload), 0) + payload


def dns_name(name):
    out = b""
    for label in name.split(".") if name else []:
        out += bytes([len(label)]) + label.encode()
    return out + b"\0"


def dns_query(name, qtype=1, ident=0x1234, flags=0x0100):
    return struct.pack("!HHHHHH", ident, flags, 1, 0, 0, 0) + dns_name(name) + \
        struct.pack("!HH", qtype, 1)


def client_hello(host):
    sni = struct.pack("!HBH", len(host) + 3, 0, len(host)) + host
    exts = struct.pack("!HH", 43, 3) + b"\x02\x03\x04" + struct.pack("!HH", 0, len(sni)) + sni
    body = b"\x03\x03" + bytes(range(32)) + b"\x20" + bytes(32) + \
        b"\x00\x04\x13\x01\x13\x02" + b"\x01\x00" + struct.pack("!H", len(exts)) + exts
    hs = b"\x01" + struct.pack("!I", len(body))[1:] + body
    return b"\x16\x03\x01" + struct.pack("!H", len(hs)) + hs


HTTP_GET = (b"GET /index.html?q=1 HTTP/1.1\r\nHost: example.com\r\nUser-Agent: curl/8.0\r\n"
            b"Referer: http://a.example/\r\nCookie: a=1\r\nCookie: b=2\r\n\r\n")
HTTP_PIPE = (b"GET /a HTTP/1.1\r\nHost: a\r\n\r\nPOST /b HTTP/1.1\r\nContent-Length: 5\r\n\r\n"
             b"helloHEAD /c HTTP/1.0\nhost: c\n\n")


def packets():
    """(name, link, bytes) of every seed packet."""
    get4 = ipv4(6, tcp(40000, 80, HTTP_GET))
    dns4 = ipv4(17, udp(5353, 53, dns_query("www.example.com")))
    compressed = struct.pack("!HHHHHH", 1, 0x0100, 1, 0, 0, 0) + b"\x03www\xc0\x16" + \
        struct.pack("!HH", 28, 1) + dns_name("example.com")
    tls6 = ipv6(6, tcp(50000, 443, client_hello(b"www.example.org")))
    yield "eth-ipv4-tcp-http-get", "eth", eth(0x0800, get4)
    yield "eth-ipv4-tcp-http-pipelined", "eth", eth(0x0800, ipv4(6, tcp(40001, 8080, HTTP_PIPE)))
    yield "eth-ipv4opt-tcpopt-http", "eth", eth(0x0800, ipv4(
        6, tcp(40002, 80, b"OPTIONS * HTTP/1.1\r\n\r\n", options=b"\x02\x04\x05\xb4" + b"\x01" * 8),
        options=b"\x01" * 8))
    yield "eth-ipv4-udp-dns-padded", "eth", eth(0x0800, ipv4(17, udp(1053, 53, dns_query(""))) +
                                                bytes(20))
    yield "eth-vlan-ipv4-udp-dns", "eth", eth(0x0800, dns4, vlans=(100,))
    yield "eth-qinq-ipv6-udp-dns-compressed", "eth", eth(0x86dd, ipv6(17, udp(5353, 53, compressed)),
                                                         vlans=(10, 20))
    yield "eth-ipv4-tcp-dns", "eth", eth(0x0800, ipv4(6, tcp(1054, 53, struct.pack(
        "!H", len(dns_query("a.example", 16))) + dns_query("a.example", 16))))
    yield "eth-ipv6-ext-tcp-tls", "eth", eth(0x86dd, ipv6(0, tcp(50001, 443, client_hello(b"x.test")),
                                                          ext=ext_hdr(60, 1) + ext_hdr(6)))
    yield "eth-ipv6-tcp-tls", "eth", eth(0x86dd, tls6)
    yield "eth-ipv4-icmp", "eth", eth(0x0800, ipv4(1, b"\x08\x00\x00\x00\x00\x01\x00\x01ping"))
    yield "eth-ipv6-icmpv6", "eth", eth(0x86dd, ipv6(58, b"\x80\x00\x00\x00\x00\x01\x00\x01"))
    yield "eth-ipv4-frag-first", "eth", eth(0x0800, ipv4(17, udp(1, 2, b"x" * 24), frag=0x2000))
    yield "eth-ipv4-frag-later", "eth", eth(0x0800, ipv4(17, b"y" * 24, frag=0x0003))
    yield "eth-ipv6-frag-later", "eth", eth(0x86dd, ipv6(44, b"z" * 16,
                                                         ext=b"\x06\x00\x00\x19\x00\x00\x00\x01"))
    yield "eth-ipv4-gre", "eth", eth(0x0800, ipv4(47, b"\x00\x00\x08\x00"))
    yield "eth-arp", "eth", eth(0x0806, bytes.fromhex("0001080006040001") + bytes(20))
    yield "sll-ipv4-tcp-http", "sll", struct.pack("!HHH8sH", 0, 1, 6, bytes(8), 0x0800) + get4
    yield "sll2-ipv6-tcp-tls", "sll2", struct.pack("!HHIHBB8s", 0x86dd, 0, 2, 1, 0, 6,
                                                   bytes(8)) + tls6
    yield "raw-ipv4-udp-dns", "raw", dns4
    yield "raw-ipv6-tcp-tls", "raw", tls6
    yield "ipv4-tcp-http", "ipv4", get4
    yield "ipv6-tcp-tls", "ipv6", tls6
    yield "null-le-ipv4-tcp-http", "null", struct.pack("<I", 2) + get4
    yield "null-be-ipv6-tcp-tls", "null", struct.pack(">I", 30) + tls6
    yield "loop-ipv4-udp-dns", "loop", struct.pack(">I", 2) + dns4


def frag4(ident, payload, start, more, proto=17):
    """An IPv4 fragment of payload[start:...] (the caller slices it)."""
    return ipv4(proto, payload, frag=(0x2000 if more else 0) | start // 8)[:4] + \
        struct.pack("!H", ident) + ipv4(proto, payload, frag=(0x2000 if more else 0) |
                                       start // 8)[6:]


def frag6(ident, payload, start, more, nh=17):
    fh = struct.pack("!BBHI", nh, 0, start | (1 if more else 0), ident)
    return ipv6(44, fh + payload)


def fragments(cut, family, ident, datagram, size, order=None):
    """fuzz-defrag's frames: datagram (an IP payload) cut in pieces of size."""
    pieces = [(s, datagram[s:s + size], s + size < len(datagram))
              for s in range(0, len(datagram), size)]
    if order:
        pieces = [pieces[i] for i in order(len(pieces))]
    out = b""
    for s, data, more in pieces:
        frame = frag4(ident, data, s, more) if family == 4 else frag6(ident, data, s, more)
        out += bytes([cut]) + struct.pack("!H", len(frame)) + frame
    return out


def defrag_seeds():
    dgram = udp(5353, 53, dns_query("fragmented.example.test") + bytes(600))
    rev = lambda n: range(n - 1, -1, -1)
    yield "ipv4-in-order", fragments(0, 4, 7, dgram, 256)
    yield "ipv4-reversed", fragments(0, 4, 7, dgram, 256, rev)
    yield "ipv6-in-order", fragments(0, 6, 7, dgram, 128)
    yield "ipv6-reversed", fragments(1, 6, 9, dgram, 64, rev)
    yield "ipv4-duplicate", fragments(0, 4, 7, dgram[:512], 256) + fragments(0, 4, 7, dgram, 256)
    yield "ipv4-overlap", fragments(0, 4, 7, dgram[:256], 128) + fragments(0, 4, 7, dgram, 256)
    yield "ipv4-interleaved", b"".join(fragments(0, 4, i, dgram, 96) for i in range(6))
    yield "ipv4-timeout", fragments(0, 4, 7, dgram[:256], 128) + fragments(255, 4, 7, dgram, 128)


def stream_seeds():
    """fuzz-stream's segments: [flags][seq offset][length][payload]."""
    def seg(flags, off, payload):
        return bytes([flags]) + struct.pack("!HH", off, len(payload)) + payload
    req = (b"GET /index.html HTTP/1.1\r\nHost: www.example.test\r\nUser-Agent: fuzz\r\n\r\n"
           b"POST /form HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n0123456789")
    hello = client_hello(b"sni.example.test")
    dns = dns_query("tcp.example.test")
    dns = struct.pack("!H", len(dns)) + dns
    M = 0x20   # a filter matched
    yield "http-in-order", b"".join(seg(M, i, req[i:i + 9]) for i in range(0, len(req), 9))
    yield "http-reversed-tail", seg(M, 0, req[:5]) + b"".join(
        seg(M, i, req[i:i + 9]) for i in reversed(range(5, len(req), 9)))
    yield "http-conflict", seg(M, 0, req[:40]) + seg(M, 20, bytes(40)) + seg(M, 40, req[40:])
    yield "tls-hello", b"".join(seg(M | 0x08, i, hello[i:i + 30])
                                for i in range(0, len(hello), 30))
    yield "dns-tcp", seg(M | 0x10, 0, dns[:1]) + seg(M | 0x10, 1, dns[1:])
    yield "two-flows-end", seg(M, 0, req[:10]) + seg(M | 1, 0, req[:10]) + seg(0x80, 10, b"x")


def write(path, data):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(data)


def pcap(pkts, linktype, ns=False, big_endian=False):
    e = ">" if big_endian else "<"
    magic = 0xa1b23c4d if ns else 0xa1b2c3d4
    out = struct.pack(e + "IHHiIII", magic, 2, 4, 0, 0, 262144, linktype)
    for i, p in enumerate(pkts):
        out += struct.pack(e + "IIII", 1700000000 + i, 123456 + i, len(p), len(p) + (i % 2) * 100)
        out += p
    return out


def ng_block(btype, body, e="<"):
    body += bytes(-len(body) % 4)
    n = 12 + len(body)
    return struct.pack(e + "II", btype, n) + body + struct.pack(e + "I", n)


def ng_option(code, value, e="<"):
    return struct.pack(e + "HH", code, len(value)) + value + bytes(-len(value) % 4)


def pcapng(sections):
    """sections: list of (endianness, [(linktype, options)], [(kind, ifidx, packet)])"""
    out = b""
    for e, ifaces, pkts in sections:
        out += ng_block(0x0a0d0d0a, struct.pack(e + "IHHq", 0x1a2b3c4d, 1, 0, -1), e)
        for linktype, opts in ifaces:
            body = struct.pack(e + "HHI", linktype, 0, 65535)
            if opts:
                body += opts + ng_option(0, b"", e)
            out += ng_block(1, body, e)
        for i, (kind, ifidx, p) in enumerate(pkts):
            ts = 1700000000123456 + i
            if kind == "epb":
                out += ng_block(6, struct.pack(e + "IIIII", ifidx, ts >> 32, ts & 0xffffffff,
                                               len(p), len(p)) + p, e)
            elif kind == "opb":
                out += ng_block(2, struct.pack(e + "HHIIII", ifidx, 0, ts >> 32, ts & 0xffffffff,
                                               len(p), len(p)) + p, e)
            else:
                out += ng_block(3, struct.pack(e + "I", len(p)) + p, e)
        out += ng_block(5, struct.pack(e + "III", 0, 0, 0), e)   # an interface statistics block
    return out


def main():
    seeds = list(packets())
    for name, link, data in seeds:
        write(os.path.join(CORPUS, "packet", name), bytes([LINK_INDEX[link]]) + data)

    eth_pkts = [d for _, link, d in seeds if link == "eth"]
    raw_pkts = [d for _, link, d in seeds if link == "raw"]
    cap = os.path.join(CORPUS, "capture")
    write(os.path.join(cap, "pcap-us-eth"), pcap(eth_pkts[:8], 1))
    write(os.path.join(cap, "pcap-ns-be-raw"), pcap(raw_pkts, 101, ns=True, big_endian=True))
    write(os.path.join(cap, "pcap-empty"), pcap([], 1))
    write(os.path.join(cap, "pcap-sll2"), pcap([d for _, l, d in seeds if l == "sll2"], 276))
    tsresol_ns = ng_option(9, b"\x09")
    tsoffset = ng_option(14, struct.pack("<q", 3600))
    write(os.path.join(cap, "pcapng-eth-raw"), pcapng([
        ("<", [(1, tsresol_ns + tsoffset), (101, ng_option(9, b"\x86"))],
         [("epb", 0, eth_pkts[0]), ("epb", 1, raw_pkts[0]), ("opb", 0, eth_pkts[1]),
          ("spb", 0, eth_pkts[2])]),
    ]))
    write(os.path.join(cap, "pcapng-two-sections-be"), pcapng([
        ("<", [(1, b"")], [("epb", 0, eth_pkts[3])]),
        (">", [(228, b""), (1, ng_option(2, b"eth0"))],
         [("epb", 0, [d for _, l, d in seeds if l == "ipv4"][0]), ("epb", 1, eth_pkts[4])]),
    ]))
    dati_gen = os.path.join(BUILD, "dati-gen")
    if os.access(dati_gen, os.X_OK):
        for args, name in (([], "dati-gen-mix"),
                           (["--dns-share", "20", "--tls-share", "20", "--ipv6-share", "50",
                             "--vlan", "7", "--responses", "--ns"], "dati-gen-ipv6-vlan-ns")):
            out = os.path.join(cap, name)
            subprocess.run([dati_gen, "-n", "24", "--http-share", "30", "-o", out] + args,
                           check=True, stderr=subprocess.DEVNULL)

    for name, data in defrag_seeds():
        write(os.path.join(CORPUS, "defrag", name), data)
    for name, data in stream_seeds():
        write(os.path.join(CORPUS, "stream", name), data)

    conf = os.path.join(CORPUS, "config")
    confdir = os.path.join(HERE, "..", "conf")
    for sub in ("good", "bad"):
        d = os.path.join(confdir, sub)
        for f in sorted(os.listdir(d)) if os.path.isdir(d) else []:
            with open(os.path.join(d, f), "rb") as src:
                write(os.path.join(conf, sub + "-" + f), src.read())
    write(os.path.join(conf, "crlf-tabs"),
          b"IFNAME\tix0\r\nFILTER_NAME a\r\n  BPF\t udp port 53 \r\nFIELDS dns.id dns.qry.name\r\n")
    write(os.path.join(conf, "nul-byte"), b"FILTER_NAME a\nBPF tcp\0\n")
    dati = os.path.join(BUILD, "dati")
    if os.access(dati, os.X_OK):
        text = subprocess.run([dati, "--dump-config"], check=True, capture_output=True).stdout
        write(os.path.join(conf, "built-in"), text)


if __name__ == "__main__":
    main()
