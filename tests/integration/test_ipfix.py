"""IPFIX export (RFC 7011, biflows per RFC 5103) against real decoders.

Every flow record dati makes (JSON type "flow": final ones, and the interim
ones of ACTIVE_TIMEOUT) must reach the collector as one IPFIX data record:
source = the flow's client, destination = its server, forward counters
client to server, reverse counters server to client (as deltas since the
flow's previous record), flowStart/EndMilliseconds = JSON first/last
truncated to ms, protocolIdentifier, flowId = JSON "flow", flowEndReason
(idle 1, interim 2, end_of_input/shutdown 4, evicted 5).

The decoders:
- nfcapd/nfdump 1.7 (UDP only): nfcapd started on a free loopback port into
  a temporary directory, stopped with SIGTERM by its pid (it then closes its
  file), read back with `nfdump -R DIR -q -o raw` (the only output format
  of nfdump 1.7.1 with the end reason; -o json lacks it, and fmt's %ter
  prints wrong milliseconds). nfdump does not show flowId, so its rows are
  matched to the JSON records on everything else (5-tuple, ms times,
  counters, end reason) as multisets.
- tshark's CFLOW dissector, on the export captured with tcpdump on lo: it
  shows every element, flowId included.
- a small decoder of our own (IpfixDecoder) for IPFIX over TCP, which
  nfcapd does not accept.

The test test_helpers_against_handmade_ipfix checks these helpers against
hand-built messages, without dati: when it fails, the tools changed, not
dati. Only loopback addresses are used (127.0.0.1, ::1)."""
import ipaddress
import os
import re
import shutil
import signal
import socket
import struct
import subprocess
import threading
import time
import xml.etree.ElementTree as ET
from collections import Counter, defaultdict
from pathlib import Path

import pytest

import dati_helpers as h

NFCAPD = shutil.which("nfcapd")
NFDUMP = shutil.which("nfdump")
TSHARK = shutil.which("tshark")
TCPDUMP = shutil.which("tcpdump")

needs_nfdump = pytest.mark.skipif(
    not (NFCAPD and NFDUMP), reason="nfcapd/nfdump not installed (apt-get install nfdump)")
needs_tshark = pytest.mark.skipif(
    not (TSHARK and TCPDUMP),
    reason="tshark/tcpdump not installed (apt-get install tshark tcpdump)")
needs_root = pytest.mark.skipif(
    os.geteuid() != 0, reason="capturing on lo with tcpdump (-Z root) needs root")

PROTO = {"tcp": 6, "udp": 17, "icmp": 1, "icmpv6": 58, "icmp6": 58}
ICMP_PROTOS = (1, 58)
# JSON reason -> IPFIX flowEndReason; interim records have the reason
# "active_timeout" (doc/records.md).
END_REASON = {"idle": 1, "active_timeout": 2, "end_of_input": 4, "shutdown": 4, "evicted": 5}
INTERIM = ("active_timeout",)

PEN_REVERSE = 29305
PEN_DATI = 32473
TEMPLATE_V4, TEMPLATE_V6 = 256, 257

# Global keys first: the IPFIX lines are put before FILTER_NAME.
BASE_CONF = """\
# test_ipfix
TIME_STATS 0
{extra}
FILTER_NAME all
BPF ip or ip6
"""

# The fields a row of any decoder is compared on.
ROW_FIELDS = ("proto", "src", "sport", "dst", "dport", "first_ms", "last_ms",
              "in_pkts", "in_bytes", "out_pkts", "out_bytes", "reason")
FLOW_KEY = ("proto", "src", "sport", "dst", "dport", "first_ms")

NFCAPD_TOTALS = re.compile(r"Flows: (\d+), Packets: (\d+), Bytes: (\d+), "
                           r"Sequence Errors: (\d+), Bad Packets: (\d+)")


# ---------------------------------------------------------------- sockets


def free_port(family=socket.AF_INET, kind=socket.SOCK_DGRAM):
    host = "::1" if family == socket.AF_INET6 else "127.0.0.1"
    with socket.socket(family, kind) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def have_ipv6_loopback():
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as s:
            s.bind(("::1", 0))
        return True
    except OSError:
        return False


def collector_spec(host, port):
    """IPFIX_COLLECTOR's value: host:port, [v6]:port."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def write_conf(tmp_path, name, *lines):
    return h.write_config(tmp_path, name, BASE_CONF.format(extra="\n".join(lines)))


# ---------------------------------------------------------------- nfcapd / nfdump


def nfcapd_log_path(flowdir):
    return Path(flowdir).parent / (Path(flowdir).name + ".log")


def start_nfcapd(tmp_path, name="nfcapd", port=None, host="127.0.0.1"):
    """nfcapd in the foreground, a child of the test, on host:port (a free
    port when port is None) writing into tmp_path/name; returns (process,
    port, dir) once it is up. Its output goes to tmp_path/name.log."""
    flowdir = Path(tmp_path) / name
    flowdir.mkdir()
    log = nfcapd_log_path(flowdir)
    v6 = ":" in host
    for attempt in range(3):
        p_port = port or free_port(socket.AF_INET6 if v6 else socket.AF_INET)
        cmd = [NFCAPD, "-b", host, "-p", str(p_port), "-w", str(flowdir), "-t", "3600",
               "-B", "4000000"] + (["-6"] if v6 else [])
        with open(log, "ab") as f:
            proc = subprocess.Popen(cmd, stdout=f, stderr=subprocess.STDOUT,
                                    stdin=subprocess.DEVNULL)
        end = time.monotonic() + 10
        while time.monotonic() < end and proc.poll() is None:
            # nfcapd writes its log unbuffered; "Startup" comes once the
            # socket is bound and its buffer set
            if "Startup nfcapd." in log.read_text(errors="replace"):
                return proc, p_port, flowdir
            time.sleep(0.02)
        if proc.poll() is None:
            stop_nfcapd(proc, flowdir)
        if port:   # a port of the caller's: no other to try
            break
    raise AssertionError(f"nfcapd did not start: {' '.join(cmd)}\n"
                         f"{log.read_text(errors='replace')[-2000:]}")


def udp_socket_queue(port, v6=False):
    """(rx_queue bytes, drops) of the UDP socket bound to port on this host,
    from /proc/net/udp[6]; None when there is none."""
    path = "/proc/net/udp6" if v6 else "/proc/net/udp"
    try:
        lines = Path(path).read_text().splitlines()[1:]
    except OSError:
        return None
    for line in lines:
        cols = line.split()
        if len(cols) > 12 and cols[1].endswith(f":{port:04X}") and cols[3] == "07":
            return int(cols[4].split(":")[1], 16), int(cols[-1])
    return None


def stop_nfcapd(proc, flowdir, port=None, v6=False):
    """SIGTERM to nfcapd by its pid (it then writes and renames its file),
    waits for it; returns its log text. With port: first waits until
    nfcapd has read every datagram queued on its socket (what is still
    queued at SIGTERM is never decoded)."""
    if proc.poll() is None and port:
        end = time.monotonic() + 10
        while time.monotonic() < end and proc.poll() is None:
            q = udp_socket_queue(port, v6)
            if q is None or q[0] == 0:
                break
            time.sleep(0.02)
        time.sleep(0.2)   # the last datagram read is decoded before the signal is seen
    if proc.poll() is None:
        os.kill(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
            raise AssertionError("nfcapd did not stop on SIGTERM within 15 s")
    return nfcapd_log_path(flowdir).read_text(errors="replace")


def nfcapd_totals(log):
    """The counters of nfcapd's last summary line: flows, packets, bytes,
    sequence_errors, bad_packets."""
    found = NFCAPD_TOTALS.findall(log)
    assert found, f"no summary line in nfcapd's log:\n{log[-2000:]}"
    return dict(zip(("flows", "packets", "bytes", "sequence_errors", "bad_packets"),
                    map(int, found[-1])))


def nfdump_env():
    return dict(os.environ, TZ="UTC", LC_ALL="C")


def _raw_value(key, text):
    tok = text.split()[0] if text.split() else ""
    if key in ("src addr", "dst addr"):
        return h.canon_addr(tok)
    if key == "ICMP":                       # "8.0  type.code"
        t, _, c = tok.partition(".")
        return int(t), int(c or 0)
    try:
        return int(tok, 0)                  # decimal, or 0x.. for flags and reasons
    except ValueError:
        return tok


def read_nfdump(flowdir):
    """Every flow of the nfcapd files in flowdir, from `nfdump -R DIR -q -o
    raw`, as dicts with ROW_FIELDS (ICMP: sport 0, dport type*256+code, as
    nfdump reads destinationTransportPort) plus biflow and the raw items."""
    p = subprocess.run([NFDUMP, "-R", str(flowdir), "-q", "-o", "raw"], capture_output=True,
                       text=True, env=nfdump_env(), timeout=120)
    assert p.returncode == 0, f"nfdump -R {flowdir}: exit {p.returncode}\n{p.stderr[-2000:]}"
    records, cur = [], None
    for line in p.stdout.splitlines():
        if line.startswith("Flow Record"):
            cur = {}
            records.append(cur)
        elif cur is not None and " = " in line:
            key, _, value = line.partition(" = ")
            key = key.strip()
            cur[key] = _raw_value(key, value.strip())
    rows = []
    for r in records:
        icmp = r.get("ICMP")
        row = {
            "proto": r["proto"], "src": r["src addr"], "dst": r["dst addr"],
            "sport": r.get("src port", 0),
            "dport": icmp[0] * 256 + icmp[1] if icmp else r.get("dst port", 0),
            "first_ms": r["first"], "last_ms": r["last"],
            "in_pkts": r.get("in packets", 0), "in_bytes": r.get("in bytes", 0),
            "out_pkts": r.get("out packets", 0), "out_bytes": r.get("out bytes", 0),
            "reason": r.get("end reason"), "biflow": r.get("biFlow Dir"), "raw": r,
        }
        rows.append(row)
    return rows


def nfdump_exporters(flowdir):
    """`nfdump -E FILE` for each file: [(domain id, sequence failures), ...]."""
    out = []
    for f in sorted(Path(flowdir).glob("nfcapd.*")):
        if ".current." in f.name:
            continue
        p = subprocess.run([NFDUMP, "-E", str(f)], capture_output=True, text=True,
                           env=nfdump_env(), timeout=60)
        for m in re.finditer(r"version: 10, ID:\s*(\d+), Sequence failures:\s*(\d+)", p.stdout):
            out.append((int(m.group(1)), int(m.group(2))))
    return out


class Nfcapd:
    """Context manager: start_nfcapd() on entry, stop_nfcapd() on exit (also
    when the test fails); .log holds the log once stopped."""

    def __init__(self, tmp_path, name="nfcapd", port=None, host="127.0.0.1"):
        self.proc, self.port, self.dir = start_nfcapd(tmp_path, name, port, host)
        self.host = host
        self.log = None

    def __enter__(self):
        return self

    def stop(self):
        if self.log is None:
            self.log = stop_nfcapd(self.proc, self.dir, self.port, ":" in self.host)
        return self.log

    def __exit__(self, *exc):
        self.stop()

    @property
    def spec(self):
        return collector_spec(self.host, self.port)


# ---------------------------------------------------------------- expected rows


def ms(t):
    """JSON time (Decimal seconds, ns) -> ms, truncated."""
    return int(t * 1000)


def expected_rows(flows):
    """The IPFIX rows dati's JSON flow records stand for, in order: counters
    as deltas since the flow's previous record (the JSON interim records
    carry totals so far)."""
    prev = defaultdict(lambda: (0, 0, 0, 0))
    rows = []
    for f in flows:
        tot = (f["c2s_packets"], f["c2s_bytes"], f["s2c_packets"], f["s2c_bytes"])
        before = prev[f["flow"]]
        delta = tuple(a - b for a, b in zip(tot, before))
        assert min(delta) >= 0, f"JSON counters of flow {f['flow']} go down: {before} -> {tot}"
        prev[f["flow"]] = tot
        assert f["proto"] in PROTO, f"unknown proto {f['proto']!r} in {f}"
        assert f["reason"] in END_REASON, f"unknown reason {f['reason']!r} in {f}"
        rows.append({
            "flow": f["flow"], "proto": PROTO[f["proto"]],
            "src": h.canon_addr(f["client"]), "dst": h.canon_addr(f["server"]),
            "sport": f.get("client_port", 0), "dport": f.get("server_port", 0),
            "first_ms": ms(f["first"]), "last_ms": ms(f["last"]),
            "in_pkts": delta[0], "in_bytes": delta[1], "out_pkts": delta[2], "out_bytes": delta[3],
            "reason": END_REASON[f["reason"]],
            "filters": ",".join(f.get("filters", [])),
            "app": f.get("app") or "",
            "json_reason": f["reason"],
        })
    return rows


def row_tuple(r, fields):
    vals = []
    for k in fields:
        v = r.get(k)
        if k in ("sport", "dport") and r["proto"] in ICMP_PROTOS:
            v = None   # ICMP: no ports in the JSON; what dati sends there is not checked
        vals.append(v)
    return tuple(vals)


def fmt_row(r, fields):
    return " ".join(f"{k}={r.get(k)}" for k in fields)


def compare_rows(what, expected, got, fields=ROW_FIELDS, key=FLOW_KEY, subset=False):
    """Multiset comparison of rows on `fields`; subset=True: every got row
    must be among the expected ones (no extra, no duplicate), not all of
    them. Fails with the differences, field by field where the rows pair up
    on `key`."""
    exp_c = Counter(row_tuple(r, fields) for r in expected)
    got_c = Counter(row_tuple(r, fields) for r in got)
    missing = [] if subset else list((exp_c - got_c).elements())
    extra = list((got_c - exp_c).elements())
    if not missing and not extra:
        return
    mm = h.Mismatches(what, "IPFIX row")
    mm.add(f"{len(expected)} expected rows, {len(got)} decoded; "
           f"{len(missing)} missing, {len(extra)} extra")
    idx = [fields.index(k) for k in key]
    as_row = lambda t: dict(zip(fields, t))
    pairs, miss, ext = h.pair_rows([as_row(t) for t in missing], [as_row(t) for t in extra],
                                   key=lambda r: tuple(r[fields[i]] for i in idx),
                                   order=lambda r: tuple(str(v) for v in r.values()))
    for e, g in pairs:
        diffs = ", ".join(f"{k}: expected {e[k]} got {g[k]}" for k in fields if e[k] != g[k])
        mm.add(f"{fmt_row(e, key)}: {diffs}")
    for e in miss:
        mm.add(f"missing: {fmt_row(e, fields)}")
    for g in ext:
        mm.add(f"not expected: {fmt_row(g, fields)}")
    mm.check()


def ipfix_stats(run, zero_loss=False):
    """The final stats record's ipfix member, with its accounting checked:
    records + lost + dropped (+ pending, 0 at the end) = flow records made."""
    assert run.stats is not None, f"{run.what}: no final stats record"
    ip = run.stats.get("ipfix")
    assert isinstance(ip, dict), f"{run.what}: no ipfix member in the final stats record"
    for k in ("records", "messages", "templates", "bytes", "lost", "dropped", "send_errors",
              "reconnects"):
        assert isinstance(ip.get(k), int), f"{run.what}: ipfix.{k} missing: {ip}"
    assert ip.get("pending", 0) == 0, f"{run.what}: records still pending at the end: {ip}"
    made = run.stats["records"]["flow"]
    assert ip["records"] + ip["lost"] + ip["dropped"] + ip.get("pending", 0) == made, \
        f"{run.what}: records + lost + dropped != records.flow {made}: {ip}"
    if zero_loss:
        assert ip["lost"] == 0 and ip["dropped"] == 0 and ip["send_errors"] == 0, \
            f"{run.what}: loss with a collector listening: {ip}"
    return ip


# ---------------------------------------------------------------- captures


def _csum(b):
    if len(b) % 2:
        b += b"\0"
    s = sum(struct.unpack(f"!{len(b) // 2}H", b))
    s = (s >> 16) + (s & 0xFFFF)
    s += s >> 16
    return ~s & 0xFFFF


def write_icmp_pcap(path, pairs=3, rounds=4):
    """A small Ethernet pcap of ICMP and ICMPv6 echo requests and replies
    (dati-gen makes none): `pairs` flows of each family, `rounds` exchanges
    each, 1.5 ms apart."""
    out = [struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1)]
    t = 1700000000_000000   # us

    def frame(ts, eth_type, l3):
        f = b"\x02\0\0\0\0\x01\x02\0\0\0\0\x02" + struct.pack("!H", eth_type) + l3
        out.append(struct.pack("<IIII", ts // 1000000, ts % 1000000, len(f), len(f)) + f)

    for r in range(rounds):
        for i in range(pairs):
            for reply in (0, 1):
                t += 1500
                a, b = f"192.0.2.{10 + i}", "198.51.100.1"
                if reply:
                    a, b = b, a
                icmp = struct.pack("!BBHHH", 0 if reply else 8, 0, 0, 100 + i, r) + b"x" * (16 + i)
                icmp = icmp[:2] + struct.pack("!H", _csum(icmp)) + icmp[4:]
                ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(icmp), r, 0, 64, 1, 0,
                                 ipaddress.ip_address(a).packed, ipaddress.ip_address(b).packed)
                ip = ip[:10] + struct.pack("!H", _csum(ip)) + ip[12:]
                frame(t, 0x0800, ip + icmp)
                t += 700
                a6, b6 = f"2001:db8::{10 + i:x}", "2001:db8:1::1"
                if reply:
                    a6, b6 = b6, a6
                icmp6 = struct.pack("!BBHHH", 129 if reply else 128, 0, 0, 200 + i, r) \
                    + b"y" * (24 + i)
                ip6 = struct.pack("!IHBB16s16s", 6 << 28, len(icmp6), 58, 64,
                                  ipaddress.ip_address(a6).packed, ipaddress.ip_address(b6).packed)
                frame(t, 0x86DD, ip6 + icmp6)
    Path(path).write_bytes(b"".join(out))
    return path


@pytest.fixture(scope="module")
def gen_v6(tmp_path_factory, binaries):
    """IPv4 and IPv6, both directions (HTTP responses; background flows
    answer too), a few hundred flows."""
    path = tmp_path_factory.mktemp("gen6") / "gen6.pcap"
    h.run_gen(["-n", 6000, "-s", 11, "--http-share", 5, "--dns-share", 2, "--tls-share", 2,
               "--ipv6-share", 30, "--responses", "--flows", 300, "--http-flows", 150], path)
    return path


@pytest.fixture(scope="module")
def gen_slow(tmp_path_factory, binaries):
    """5 s of packet time (600 packets/s), 30 % of the flows silent after the
    first third: with PKT_TTL 1 / ACTIVE_TIMEOUT 1 / a small MAX_FLOWS it
    gives idle, interim, evicted and end-of-input records."""
    path = tmp_path_factory.mktemp("slow") / "slow.pcap"
    h.run_gen(["-n", 3000, "-s", 3, "--rate", 600, "--flows", 50, "--http-flows", 20,
               "--ipv6-share", 30, "--stop-early", 30, "--responses"], path)
    return path


@pytest.fixture(scope="module")
def icmp_pcap(tmp_path_factory):
    return write_icmp_pcap(tmp_path_factory.mktemp("icmp") / "icmp.pcap")


def capture_of(request, which):
    if which == "generated":
        return request.getfixturevalue("generated")["path"]
    return request.getfixturevalue(which)


# ---------------------------------------------------------------- IPFIX decoder (TCP)

ELEMENT_NAMES = {
    (152, 0): "first_ms", (153, 0): "last_ms", (8, 0): "src", (27, 0): "src",
    (12, 0): "dst", (28, 0): "dst", (7, 0): "sport", (11, 0): "dport", (4, 0): "proto",
    (1, 0): "in_bytes", (2, 0): "in_pkts", (1, PEN_REVERSE): "out_bytes",
    (2, PEN_REVERSE): "out_pkts", (23, 0): "out_bytes", (24, 0): "out_pkts",
    (136, 0): "reason", (148, 0): "flow", (239, 0): "biflow",
    (1, PEN_DATI): "filters", (2, PEN_DATI): "tags", (96, 0): "app",
}


class IpfixDecoder:
    """A strict decoder of IPFIX messages (RFC 7011): checks the header and
    set lengths, keeps templates per (domain, template id), decodes data
    records with them (variable-length fields included) into rows keyed as
    ELEMENT_NAMES. .messages: one summary per message; .rows: data records
    in order; .errors: what was wrong (a test asserts it is empty)."""

    def __init__(self):
        self.templates = {}
        self.messages = []
        self.rows = []
        self.errors = []

    def feed_stream(self, data):
        """A TCP stream: messages back to back."""
        pos = 0
        while pos < len(data):
            if len(data) - pos < 16:
                self.errors.append(f"stream offset {pos}: {len(data) - pos} bytes left, "
                                   "less than a message header")
                return
            length = struct.unpack_from("!H", data, pos + 2)[0]
            if length < 16 or pos + length > len(data):
                self.errors.append(f"stream offset {pos}: message length {length} "
                                   f"(stream has {len(data) - pos} bytes left)")
                return
            self.feed_message(data[pos:pos + length], f"stream offset {pos}")
            pos += length

    def feed_message(self, msg, where="message"):
        version, length, export_time, seq, domain = struct.unpack_from("!HHIII", msg, 0)
        summary = {"seq": seq, "domain": domain, "export_time": export_time, "length": length,
                   "data_records": 0, "templates": [], "set_ids": [], "where": where}
        self.messages.append(summary)
        if version != 10:
            self.errors.append(f"{where}: version {version}, not 10")
            return
        if length != len(msg):
            self.errors.append(f"{where}: header length {length}, message has {len(msg)} bytes")
            return
        pos = 16
        while pos < length:
            if length - pos < 4:
                self.errors.append(f"{where}: {length - pos} stray bytes after the sets")
                return
            sid, slen = struct.unpack_from("!HH", msg, pos)
            if slen < 4 or pos + slen > length:
                self.errors.append(f"{where}: set {sid} length {slen} at {pos} overruns "
                                   f"the message ({length})")
                return
            body = msg[pos + 4:pos + slen]
            summary["set_ids"].append(sid)
            if sid == 2:
                summary["templates"] += self._templates(domain, body, where)
            elif sid == 3:
                pass   # options templates: dati sends none; nothing to check
            elif sid >= 256:
                n = self._data(domain, sid, body, where)
                summary["data_records"] += n
            else:
                self.errors.append(f"{where}: reserved set id {sid}")
            pos += slen

    def _templates(self, domain, body, where):
        ids, pos = [], 0
        while len(body) - pos >= 4:
            tid, count = struct.unpack_from("!HH", body, pos)
            if tid == 0 and count == 0:   # padding
                break
            pos += 4
            fields = []
            for _ in range(count):
                if len(body) - pos < 4:
                    self.errors.append(f"{where}: template {tid} truncated")
                    return ids
                eid, flen = struct.unpack_from("!HH", body, pos)
                pos += 4
                pen = 0
                if eid & 0x8000:
                    if len(body) - pos < 4:
                        self.errors.append(f"{where}: template {tid} truncated (PEN)")
                        return ids
                    pen = struct.unpack_from("!I", body, pos)[0]
                    pos += 4
                    eid &= 0x7FFF
                fields.append((eid, pen, flen))
            if tid < 256:
                self.errors.append(f"{where}: template id {tid} < 256")
            self.templates[(domain, tid)] = fields
            ids.append(tid)
        if any(body[pos:]):
            self.errors.append(f"{where}: non-zero padding after the templates")
        return ids

    def _data(self, domain, sid, body, where):
        fields = self.templates.get((domain, sid))
        if fields is None:
            self.errors.append(f"{where}: data set {sid} before its template")
            return 0
        min_len = sum(1 if f[2] == 65535 else f[2] for f in fields)
        pos, n = 0, 0
        while len(body) - pos >= max(min_len, 1):
            row = {"template": sid, "unknown": {}}
            for eid, pen, flen in fields:
                if flen == 65535:
                    flen = body[pos]
                    pos += 1
                    if flen == 255:
                        flen = struct.unpack_from("!H", body, pos)[0]
                        pos += 2
                raw = body[pos:pos + flen]
                if len(raw) < flen:
                    self.errors.append(f"{where}: data record {n + 1} of set {sid} truncated")
                    return n
                pos += flen
                name = ELEMENT_NAMES.get((eid, pen))
                if name in ("src", "dst"):
                    value = str(ipaddress.ip_address(raw))
                elif name in ("filters", "tags", "app"):
                    value = raw.decode("utf-8", "surrogateescape")
                else:
                    value = int.from_bytes(raw, "big")
                if name:
                    row[name] = value
                else:
                    row["unknown"][(eid, pen)] = raw
            self.rows.append(row)
            n += 1
        if any(body[pos:]):
            self.errors.append(f"{where}: set {sid}: {len(body) - pos} bytes after the last "
                               "record that are not zero padding")
        return n


def check_sequence(messages, what):
    """RFC 7011: each message's sequence number is the count of data records
    of the domain sent before it (template messages do not advance it)."""
    expected = defaultdict(int)
    for m in messages:
        assert m["seq"] == expected[m["domain"]] % 2**32, \
            f"{what}: {m['where']}: sequence {m['seq']}, expected {expected[m['domain']]} " \
            f"(data records sent before)"
        expected[m["domain"]] += m["data_records"]


class TcpCollector:
    """A TCP listener on loopback that keeps the bytes of each connection
    (one at a time, read until EOF), on a thread of its own."""

    def __init__(self, host="127.0.0.1"):
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.host = host
        self.sock = socket.socket(family, socket.SOCK_STREAM)
        self.sock.bind((host, 0))
        self.sock.listen(8)
        self.sock.settimeout(0.1)
        self.port = self.sock.getsockname()[1]
        self.conns = []          # bytes of each connection, in order
        self.open = 0
        self.stop_flag = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        while not self.stop_flag.is_set():
            try:
                c, _ = self.sock.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            self.open = 1
            buf = bytearray()
            self.conns.append(buf)
            c.settimeout(0.2)
            with c:
                while True:
                    try:
                        d = c.recv(65536)
                    except socket.timeout:
                        if self.stop_flag.is_set():
                            break
                        continue
                    if not d:
                        break
                    buf += d
            self.open = 0

    def wait_closed(self, timeout=20):
        """Waits until a connection was made and is closed again."""
        end = time.monotonic() + timeout
        while time.monotonic() < end and (not self.conns or self.open):
            time.sleep(0.02)

    def close(self):
        self.stop_flag.set()
        self.thread.join(10)
        self.sock.close()

    @property
    def spec(self):
        return collector_spec(self.host, self.port)


# ---------------------------------------------------------------- tshark


class LoCapture:
    """tcpdump on lo writing the UDP datagrams to `port` (and to a marker
    port) into a file, started and known to be capturing before the test
    goes on; stop() waits until everything before an end marker is in the
    file, then stops tcpdump by its pid."""

    def __init__(self, tmp_path, port):
        self.path = Path(tmp_path) / "export.pcap"
        self.port = port
        self.marker_port = free_port()
        self.err = Path(tmp_path) / "tcpdump.err"
        cmd = [TCPDUMP, "-i", "lo", "-n", "-s", "0", "-B", "16384", "-U", "--immediate-mode",
               "-Z", "root", "-w", str(self.path),
               f"udp and (port {port} or port {self.marker_port})"]
        with open(self.err, "wb") as f:
            self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=f,
                                         stdin=subprocess.DEVNULL)
        try:
            self._marker(b"dati-test-start")
        except BaseException:
            self.stop()
            raise

    def _marker(self, payload, timeout=15):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            end = time.monotonic() + timeout
            while time.monotonic() < end:
                if self.proc.poll() is not None:
                    raise AssertionError(f"tcpdump exited {self.proc.returncode}: "
                                         f"{self.err.read_text(errors='replace')[-1000:]}")
                s.sendto(payload, ("127.0.0.1", self.marker_port))
                time.sleep(0.1)
                if self.path.exists() and payload in self.path.read_bytes():
                    return
        raise AssertionError(f"tcpdump did not capture the marker {payload!r} in {timeout} s: "
                             f"{self.err.read_text(errors='replace')[-1000:]}")

    def finish(self):
        """Everything sent before now is in the file; tcpdump is stopped."""
        try:
            self._marker(b"dati-test-end")
        finally:
            self.stop()
        err = self.err.read_text(errors="replace")
        m = re.search(r"(\d+) packets? dropped by kernel", err)
        assert m is None or int(m.group(1)) == 0, f"tcpdump lost packets: {err}"

    def stop(self):
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait()


def _fields(elem, name):
    return [f for f in elem.iter("field") if f.get("name") == name]


def _first(elem, name):
    found = _fields(elem, name)
    return found[0] if found else None


def tshark_ipfix(cap, port):
    """Decodes cap with tshark's CFLOW dissector (udp.port==port): returns
    (messages, rows, problems): one summary per IPFIX message in capture
    order, one row per data record (ROW_FIELDS + flow, filters, biflow),
    and the malformed/expert-error complaints."""
    decode = ["-d", f"udp.port=={port},cflow"]
    problems = []
    summary = subprocess.run([TSHARK, "-r", str(cap), *decode], capture_output=True, text=True,
                             timeout=300)
    assert summary.returncode == 0, f"tshark: {summary.stderr[-2000:]}"
    for line in summary.stdout.splitlines():
        if "CFLOW" in line and re.search(r"Malformed|partial|\[.*(Error|Exception)", line):
            problems.append(line.strip())
    expert = subprocess.run([TSHARK, "-r", str(cap), *decode, "-q", "-z", "expert"],
                            capture_output=True, text=True, timeout=300)
    section = None
    for line in expert.stdout.splitlines():
        m = re.match(r"(Errors|Warns|Notes|Chats|Comments) \(\d+\)", line)
        if m:
            section = m.group(1)
        elif section == "Errors" and "CFLOW" in line:
            problems.append("expert error: " + line.strip())
    pdml = subprocess.run([TSHARK, "-r", str(cap), *decode, "-T", "pdml"], capture_output=True,
                          timeout=300)
    assert pdml.returncode == 0, f"tshark -T pdml: {pdml.stderr[-2000:]!r}"
    root = ET.fromstring(pdml.stdout)
    messages, rows = [], []
    for pkt in root.iter("packet"):
        frame = pkt.find("proto[@name='frame']")
        num = _first(frame, "frame.number").get("show") if frame is not None else "?"
        for proto in pkt.findall("proto[@name='cflow']"):
            msg = {"frame": num, "seq": int(_first(proto, "cflow.sequence").get("show")),
                   "domain": int(_first(proto, "cflow.od_id").get("show")),
                   "version": int(_first(proto, "cflow.version").get("show")),
                   "templates": [int(f.get("show")) for f in _fields(proto, "cflow.template_id")],
                   "data_records": 0, "where": f"frame {num}"}
            messages.append(msg)
            for s in proto.findall("field"):
                if not (s.get("show") or "").startswith("Set "):
                    continue
                for fl in s.findall("field"):
                    if not re.match(r"Flow \d+$", fl.get("show") or ""):
                        continue
                    msg["data_records"] += 1
                    rows.append(_tshark_row(fl, num))
    return messages, rows, problems


def _tshark_row(fl, frame):
    row = {"frame": frame}

    def show(name):
        f = _first(fl, name)
        return None if f is None else f.get("show")

    def hexint(name):
        f = _first(fl, name)
        return None if f is None else int(f.get("value"), 16)

    row["first_ms"] = hexint("cflow.abstimestart")
    row["last_ms"] = hexint("cflow.abstimeend")
    row["src"] = h.canon_addr(show("cflow.srcaddr") or show("cflow.srcaddrv6") or "")
    row["dst"] = h.canon_addr(show("cflow.dstaddr") or show("cflow.dstaddrv6") or "")
    for k, name in (("sport", "cflow.srcport"), ("dport", "cflow.dstport"),
                    ("proto", "cflow.protocol"), ("reason", "cflow.flow_end_reason"),
                    ("flow", "cflow.flow_id"), ("biflow", "cflow.biflow_direction")):
        v = show(name)
        row[k] = int(v) if v is not None else None
    for k, name in (("bytes", "cflow.octets"), ("pkts", "cflow.packets")):
        for f in _fields(fl, name):
            d = "out" if "Reverse" in (f.get("showname") or "") else "in"
            row[f"{d}_{k}"] = int(f.get("show"))
    row["filters"] = ""   # a zero-length string may have no field at all
    for f in _fields(fl, "cflow.enterprise_private_entry"):
        sn = f.get("showname") or ""
        if "Type 1:" in sn:
            row["filters"] = bytes.fromhex(f.get("value") or "").decode("utf-8", "surrogateescape")
    return row


# ---------------------------------------------------------------- running dati


def run_with_ipfix(tmp_path, capture, collector, *lines, threads=1, expect_rc=(0,), name="x",
                   quiet=True, json_file=None):
    """dati -r capture with IPFIX_COLLECTOR collector and the config lines.
    quiet=False: warnings on stderr (-q silences them with the statistics).
    json_file: the JSON lines go there (-w), and the Run holds them."""
    conf = write_conf(tmp_path, f"{name}.conf", f"IPFIX_COLLECTOR {collector}", *lines)
    args = ["-r", capture, "-c", conf, "-t", threads, "-q" if quiet else "--no-progress"]
    if json_file is None:
        return h.run_dati(args, expect_rc=expect_rc)
    r = h.run_dati(args + ["-w", json_file], expect_rc=expect_rc, check_stats=False)
    assert r.stdout == b"", f"-w {json_file}: output on stdout too: {r.lines[:3]}"
    run = h.Run(r.args, r.rc, Path(json_file).read_bytes(), r.stderr, r.elapsed)
    assert run.objs and run.objs[-1].get("type") == "stats" and run.objs[-1].get("final"), \
        f"-w {json_file}: the last line is not the final stats record"
    return run


def run_plain(tmp_path, capture, *lines, threads=1, expect_rc=(0,), name="plain"):
    conf = write_conf(tmp_path, f"{name}.conf", *lines)
    return h.run_dati(["-r", capture, "-c", conf, "-t", threads, "-q"], expect_rc=expect_rc)


def check_against_nfcapd(what, run, col, exact_sequence=True):
    """nfdump's rows of the collector's files = the rows of run's flow
    records; nfcapd saw no bad packet and, when nothing was lost, no
    sequence error."""
    log = col.stop()
    tot = nfcapd_totals(log)
    rows = read_nfdump(col.dir)
    exp = expected_rows(run.flows)
    compare_rows(what, exp, rows)
    assert tot["bad_packets"] == 0, f"{what}: nfcapd counted bad packets:\n{log[-2000:]}"
    if exact_sequence:
        assert tot["sequence_errors"] == 0, f"{what}: nfcapd saw sequence errors:\n{log[-2000:]}"
    assert all(r["biflow"] in (None, 1) for r in rows), \
        f"{what}: biflowDirection not 1 (initiator): {Counter(r['biflow'] for r in rows)}"
    return rows, log


# ================================================================= tests


@needs_nfdump
def test_helpers_against_handmade_ipfix(tmp_path):
    """No dati: hand-built IPFIX (dati's templates, as doc/ipfix.md gives
    them) through nfcapd and read_nfdump, and through IpfixDecoder. Pins
    what the other tests rely on: RFC 5103 reverse counters are nfdump's
    out counters, enterprise strings are skipped, ms times, end reasons,
    ICMP type/code in the destination port, sequence numbers checked."""
    def fld(eid, length, pen=0):
        return struct.pack("!HHI", eid | 0x8000, length, pen) if pen else \
            struct.pack("!HH", eid, length)

    def template(tid, v6):
        f = [fld(152, 8), fld(153, 8), fld(27 if v6 else 8, 16 if v6 else 4),
             fld(28 if v6 else 12, 16 if v6 else 4), fld(7, 2), fld(11, 2), fld(4, 1),
             fld(1, 8), fld(2, 8), fld(1, 8, PEN_REVERSE), fld(2, 8, PEN_REVERSE),
             fld(136, 1), fld(148, 8), fld(239, 1), fld(1, 65535, PEN_DATI),
             fld(2, 65535, PEN_DATI)]
        return struct.pack("!HH", tid, len(f)) + b"".join(f)

    def varlen(b):
        return (bytes([len(b)]) if len(b) < 255 else b"\xff" + struct.pack("!H", len(b))) + b

    def record(r):
        return (struct.pack("!QQ", r["first_ms"], r["last_ms"])
                + ipaddress.ip_address(r["src"]).packed + ipaddress.ip_address(r["dst"]).packed
                + struct.pack("!HHBQQQQBQB", r["sport"], r["dport"], r["proto"], r["in_bytes"],
                              r["in_pkts"], r["out_bytes"], r["out_pkts"], r["reason"],
                              r["flow"], 1)
                + varlen(r["filters"].encode()) + varlen(b"t" * 300))

    def set_(sid, content):
        pad = (-len(content)) % 4
        return struct.pack("!HH", sid, 4 + len(content) + pad) + content + b"\0" * pad

    def message(sets, seq):
        body = b"".join(sets)
        return struct.pack("!HHIII", 10, 16 + len(body), int(time.time()), seq, 7) + body

    t0 = 1700000000123
    rows = [
        dict(first_ms=t0, last_ms=t0 + 1500, src="198.18.0.1", dst="198.19.0.2", sport=40000,
             dport=80, proto=6, in_pkts=5, in_bytes=500, out_pkts=4, out_bytes=4000, reason=1,
             flow=42, filters="http,all"),
        dict(first_ms=t0 + 7, last_ms=t0 + 9, src="192.0.2.3", dst="192.0.2.4", sport=0,
             dport=0, proto=1, in_pkts=1, in_bytes=84, out_pkts=0, out_bytes=0, reason=5,
             flow=43, filters="all"),
        dict(first_ms=t0 + 1, last_ms=t0 + 2001, src="2001:db8::1", dst="2001:db8::2",
             sport=5353, dport=53, proto=17, in_pkts=3, in_bytes=300, out_pkts=2,
             out_bytes=250, reason=2, flow=44, filters="dns"),
        dict(first_ms=t0 + 3, last_ms=t0 + 5, src="fe80::1", dst="fe80::2", sport=0, dport=0,
             proto=58, in_pkts=0, in_bytes=0, out_pkts=1, out_bytes=104, reason=4, flow=45,
             filters=""),
    ]
    msgs = [message([set_(2, template(TEMPLATE_V4, False) + template(TEMPLATE_V6, True))], 0),
            message([set_(TEMPLATE_V4, record(rows[0]) + record(rows[1])),
                     set_(TEMPLATE_V6, record(rows[2]) + record(rows[3]))], 0),
            message([set_(TEMPLATE_V4, record(rows[0]))], 4)]
    with Nfcapd(tmp_path) as col:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            for m in msgs:
                s.sendto(m, ("127.0.0.1", col.port))
        time.sleep(0.3)
        log = col.stop()
    assert "Observation domain 7" in log, log
    tot = nfcapd_totals(log)
    assert tot["flows"] == 5 and tot["sequence_errors"] == 0 and tot["bad_packets"] == 0, tot
    got = read_nfdump(col.dir)
    compare_rows("handmade/nfdump", rows + [rows[0]], got)
    assert [r["biflow"] for r in got] == [1] * 5
    assert nfdump_exporters(col.dir) == [(7, 0)]

    dec = IpfixDecoder()
    dec.feed_stream(b"".join(msgs))
    assert dec.errors == []
    compare_rows("handmade/decoder", rows + [rows[0]], dec.rows, ROW_FIELDS + ("flow", "filters"))
    check_sequence(dec.messages, "handmade")
    bad = IpfixDecoder()
    bad.feed_stream(msgs[1])
    assert bad.errors, "data before its template must be an error"


@needs_nfdump
@pytest.mark.parametrize("which", ["generated", "gen_v6", "icmp_pcap"])
def test_udp_export_matches_json(which, request, tmp_path, binaries):
    """Over UDP to nfcapd: nfdump lists exactly dati's flow records (same
    count; per record addresses, ports, protocol, packets and bytes each
    way, start and end ms, end reason), and the JSON lines (on stdout, or
    with -w in a file) are the same as without IPFIX."""
    cap = capture_of(request, which)
    json_file = tmp_path / "out.json" if which == "gen_v6" else None
    with Nfcapd(tmp_path) as col:
        run = run_with_ipfix(tmp_path, cap, col.spec, json_file=json_file)
        ip = ipfix_stats(run, zero_loss=True)
        assert run.flows and ip["records"] == len(run.flows) == run.stats["records"]["flow"]
        assert ip["messages"] >= 1 and ip["templates"] >= 1 and ip["reconnects"] == 0, ip
        rows, log = check_against_nfcapd(which, run, col)
    assert len(rows) == len(run.flows)
    assert nfcapd_totals(log)["flows"] == len(run.flows)
    plain = run_plain(tmp_path, cap)
    assert run.record_lines() == plain.record_lines(), \
        f"{which}: the JSON lines differ with IPFIX_COLLECTOR set"
    if which == "gen_v6":
        assert any(":" in r["src"] for r in rows) and any("." in r["src"] for r in rows)
        assert any(r["out_pkts"] for r in rows), "no server-to-client traffic to check"
    if which == "icmp_pcap":
        assert {r["proto"] for r in rows} == {1, 58}


@needs_nfdump
@pytest.mark.parametrize("name", ["zeek_dns-edns-ecs.pcap", "ndpi_sites.pcapng",
                                  "ndpi_1kxun.pcap", "zeek_wikipedia.pcap"])
def test_udp_export_corpus(name, tmp_path, binaries):
    """Real captures with IPv6 flows, UDP and TCP: the same as above."""
    cap = h.PCAP_DIR / name
    if not cap.is_file():
        pytest.skip(h.CORPUS_MISSING if not h.PCAP_DIR.is_dir() else f"{name} not in the corpus")
    with Nfcapd(tmp_path) as col:
        run = run_with_ipfix(tmp_path, cap, col.spec, expect_rc=(0, 1))
        ip = ipfix_stats(run, zero_loss=True)
        assert ip["records"] == len(run.flows)
        check_against_nfcapd(name, run, col)


@needs_nfdump
def test_udp_export_two_workers(tmp_path, binaries, gen_v6):
    """-t 2: both workers share the exporter (one sequence of one domain:
    nfcapd sees no sequence error); IPFIX_DOMAIN 7 is the messages'
    observation domain."""
    with Nfcapd(tmp_path) as col:
        run = run_with_ipfix(tmp_path, gen_v6, col.spec, "IPFIX_DOMAIN 7", threads=2)
        ip = ipfix_stats(run, zero_loss=True)
        assert ip["records"] == len(run.flows)
        rows, log = check_against_nfcapd("gen_v6 -t 2", run, col)
    assert "Observation domain 7 from" in log, log[-2000:]
    assert "Observation domain 0 from" not in log, log[-2000:]
    exporters = nfdump_exporters(col.dir)
    assert exporters and all(e == (7, 0) for e in exporters), exporters
    # the same flows as one worker makes
    one = run_plain(tmp_path, gen_v6)
    compare_rows("-t 2 vs -t 1", expected_rows(one.flows), rows)


@needs_nfdump
def test_active_timeout_deltas(tmp_path, binaries, gen_slow):
    """ACTIVE_TIMEOUT: interim records carry deltas; a flow's IPFIX records
    add up to its final JSON totals; every end reason maps (idle 1, interim
    2, end of input 4, evicted 5)."""
    with Nfcapd(tmp_path) as col:
        run = run_with_ipfix(tmp_path, gen_slow, col.spec, "PKT_TTL 1", "ACTIVE_TIMEOUT 1",
                             "MAX_FLOWS 40")
        ip = ipfix_stats(run, zero_loss=True)
        assert ip["records"] == len(run.flows)
        reasons = Counter(f["reason"] for f in run.flows)
        assert sum(reasons[r] for r in INTERIM) > 0 and reasons["idle"] > 0 \
            and reasons["end_of_input"] > 0 and reasons["evicted"] > 0, \
            f"the capture does not give every kind of record: {reasons}"
        rows, _ = check_against_nfcapd("active timeout", run, col)
    # sums per flow (nfdump has no flow id: a flow is its 5-tuple and start)
    sums = defaultdict(lambda: [0, 0, 0, 0])
    for r in rows:
        s = sums[row_tuple(r, FLOW_KEY)]
        for i, k in enumerate(("in_pkts", "in_bytes", "out_pkts", "out_bytes")):
            s[i] += r[k]
    finals = defaultdict(lambda: [0, 0, 0, 0])   # (a key may hold two flows, one evicted)
    ids = defaultdict(list)
    by_flow = defaultdict(list)
    for f, e in zip(run.flows, expected_rows(run.flows)):
        by_flow[f["flow"]].append(f)
        if f["reason"] not in INTERIM:
            k = row_tuple(e, FLOW_KEY)
            ids[k].append(f["flow"])
            for i, c in enumerate(("c2s_packets", "c2s_bytes", "s2c_packets", "s2c_bytes")):
                finals[k][i] += f[c]
    assert any(len(v) > 2 for v in by_flow.values()), "no flow with several interim records"
    mm = h.Mismatches("active timeout", "per-flow sum")
    for k, want in finals.items():
        if sums.get(k) != want:
            mm.add(f"flow {ids[k]} {k}: IPFIX sums {sums.get(k)}, JSON final {want}")
    mm.check()
    assert set(sums) == set(finals), "flows in IPFIX without a final JSON record, or the reverse"


@needs_tshark
@needs_root
def test_tshark_decodes_export(tmp_path, binaries, gen_slow):
    """The export captured on lo and decoded by tshark's CFLOW dissector: no
    malformed packet or expert error, templates 256 and 257 first, sequence
    numbers per RFC 7011, the observation domain, and one data record per
    flow record, equal to it by flowId (ms times, addresses, ports,
    protocol, counters both ways, end reason, filters)."""
    port = free_port()
    sink = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)   # no port unreachable
    sink.bind(("127.0.0.1", port))
    cap = None
    try:
        cap = LoCapture(tmp_path, port)
        run = run_with_ipfix(tmp_path, gen_slow, f"127.0.0.1:{port}", "IPFIX_DOMAIN 4242",
                             "PKT_TTL 1", "ACTIVE_TIMEOUT 1", "MAX_FLOWS 40")
        cap.finish()
    finally:
        if cap:
            cap.stop()
        sink.close()
    ip = ipfix_stats(run, zero_loss=True)
    messages, rows, problems = tshark_ipfix(cap.path, port)
    assert not problems, "tshark complains:\n" + "\n".join(problems)[:3000]
    assert messages, "no IPFIX message captured"
    assert all(m["version"] == 10 and m["domain"] == 4242 for m in messages), \
        Counter((m["version"], m["domain"]) for m in messages)
    assert messages[0]["templates"] == [TEMPLATE_V4, TEMPLATE_V6] and \
        messages[0]["data_records"] == 0, f"the first message is not the templates: {messages[0]}"
    check_sequence(messages, "tshark")
    assert len(rows) == len(run.flows) == ip["records"], \
        f"tshark decoded {len(rows)} data records, dati made {len(run.flows)} flow records"
    assert sum(1 for m in messages if m["data_records"]) == ip["messages"]
    assert sum(1 for m in messages if m["templates"]) == ip["templates"]
    assert all(r["biflow"] == 1 for r in rows)
    fields = ROW_FIELDS + ("flow", "filters")
    compare_rows("tshark", expected_rows(run.flows), rows, fields, key=("flow", "last_ms"))


@needs_nfdump
def test_udp_collector_absent(tmp_path, binaries, gen_v6):
    """UDP to a port nobody listens on: dati exits 0 soon, and every flow
    record is accounted for (sent, or lost to port unreachable)."""
    port = free_port()
    run = run_with_ipfix(tmp_path, gen_v6, f"127.0.0.1:{port}", "IPFIX_TEMPLATE_REFRESH 1 1")
    ip = ipfix_stats(run)
    assert ip["dropped"] == 0, f"dropped is for TCP: {ip}"
    assert ip["records"] + ip["lost"] == len(run.flows), ip
    assert run.elapsed < 20, f"dati took {run.elapsed:.1f} s with no collector"


def test_tcp_collector_absent(tmp_path, binaries, gen_v6):
    """TCP with nobody listening: dati exits 0 soon, every flow record is
    dropped, no reconnection counted, stderr says the collector is
    unreachable."""
    port = free_port(kind=socket.SOCK_STREAM)
    run = run_with_ipfix(tmp_path, gen_v6, f"127.0.0.1:{port}", "IPFIX_TRANSPORT tcp",
                         quiet=False)
    ip = ipfix_stats(run)
    assert ip["records"] == 0 and ip["dropped"] == len(run.flows) > 0, ip
    assert ip["reconnects"] == 0 and ip["messages"] == 0, ip
    assert re.search(r"unreachable", run.stderr, re.I) and str(port) in run.stderr, \
        f"stderr does not say the collector is unreachable:\n{run.stderr[-2000:]}"
    assert run.elapsed < 20, f"dati took {run.elapsed:.1f} s with no collector"


@pytest.mark.parametrize("host", ["127.0.0.1", "::1"])
def test_tcp_export_to_listener(host, tmp_path, binaries, gen_v6):
    """IPFIX over TCP (nfcapd has no TCP) to a listener of the test's own:
    one connection, messages back to back (version 10, lengths that add up),
    templates before any data, sequence numbers per RFC 7011, the domain,
    every flow record as a data record equal to it by flowId, and the
    counters (records, messages, templates, bytes) equal to what came."""
    if ":" in host and not have_ipv6_loopback():
        pytest.skip("no IPv6 on the loopback interface")
    col = TcpCollector(host)
    try:
        run = run_with_ipfix(tmp_path, gen_v6, col.spec, "IPFIX_TRANSPORT tcp",
                             "IPFIX_DOMAIN 4294967295")
        col.wait_closed()
    finally:
        col.close()
    ip = ipfix_stats(run, zero_loss=True)
    assert len(col.conns) == 1 and ip["reconnects"] == 0, \
        f"{len(col.conns)} connections, stats {ip}"
    stream = bytes(col.conns[0])
    dec = IpfixDecoder()
    dec.feed_stream(stream)
    assert not dec.errors, "\n".join(dec.errors[:20])
    assert all(m["domain"] == 4294967295 for m in dec.messages)
    first = dec.messages[0]
    assert sorted(first["templates"]) == [TEMPLATE_V4, TEMPLATE_V6] and \
        first["data_records"] == 0, f"the first message is not the templates: {first}"
    check_sequence(dec.messages, "tcp")
    assert ip["bytes"] == len(stream), f"stats bytes {ip['bytes']}, stream {len(stream)}"
    assert ip["records"] == len(dec.rows) == len(run.flows)
    assert ip["messages"] == sum(1 for m in dec.messages if m["data_records"])
    assert ip["templates"] == sum(1 for m in dec.messages if m["templates"]) == 1, \
        "over TCP the templates go once per connection"
    assert all(r["biflow"] == 1 for r in dec.rows)
    compare_rows(f"tcp {host}", expected_rows(run.flows), dec.rows,
                 ROW_FIELDS + ("flow", "filters"), key=("flow", "last_ms"))


def test_tcp_export_carries_the_application(tmp_path, binaries, gen_v6):
    """CLASSIFY 1: each data record's applicationName (IANA element 96) is
    the flow record's app; with flows no pool state was free for, empty."""
    col = TcpCollector("127.0.0.1")
    try:
        run = run_with_ipfix(tmp_path, gen_v6, col.spec, "IPFIX_TRANSPORT tcp", "CLASSIFY 1",
                             "CLASSIFY_MAX_FLOWS 50", json_file=tmp_path / "out.json")
        col.wait_closed()
    finally:
        col.close()
    dec = IpfixDecoder()
    dec.feed_stream(bytes(col.conns[0]))
    assert not dec.errors, "\n".join(dec.errors[:20])
    exp = expected_rows(run.flows)
    assert {r["app"] for r in exp} - {""}, "no flow was classified"
    assert "" in {r["app"] for r in exp}, "the pool of 50 was never full"
    compare_rows("tcp app", exp, dec.rows, ROW_FIELDS + ("flow", "filters", "app"),
                 key=("flow", "last_ms"))


@needs_nfdump
def test_udp_ipv6_collector(tmp_path, binaries, icmp_pcap):
    """IPFIX_COLLECTOR [::1]:port: nfcapd on ::1 gets every record."""
    if not have_ipv6_loopback():
        pytest.skip("no IPv6 on the loopback interface")
    with Nfcapd(tmp_path, host="::1") as col:
        assert col.spec.startswith("[::1]:")
        run = run_with_ipfix(tmp_path, icmp_pcap, col.spec)
        ipfix_stats(run, zero_loss=True)
        _, log = check_against_nfcapd("ipv6 collector", run, col)
    assert "from: ::1" in log


@needs_nfdump
def test_collector_restarted_mid_run(tmp_path, binaries, gen_slow):
    """UDP, the capture on standard input in two halves: the collector is
    stopped after the first and a new one started on the same port (another
    directory) before the second. With IPFIX_TEMPLATE_REFRESH 1 1 the new
    one gets templates again and decodes what comes after its start: every
    end-of-input record, but for those counted lost (a port-unreachable
    error of the gap may hit the first send after the restart); nothing it
    decodes is wrong; nfcapd counts no bad packet."""
    data = gen_slow.read_bytes()
    offs = h.packet_offsets(data)
    half = len(offs) // 2
    out_path, err_path = tmp_path / "dati.out", tmp_path / "dati.err"
    col1 = Nfcapd(tmp_path, "nfcapd1")
    col2 = dati = None
    try:
        conf = write_conf(tmp_path, "restart.conf", f"IPFIX_COLLECTOR {col1.spec}", "PKT_TTL 1",
                          "IPFIX_TEMPLATE_REFRESH 1 1")
        with open(out_path, "wb") as out, open(err_path, "wb") as err:
            dati = subprocess.Popen([str(h.DATI), "-r", "-", "-c", str(conf), "-q"],
                                    stdin=subprocess.PIPE, stdout=out, stderr=err,
                                    env=h.sanitizer_env())
        dati.stdin.write(data[:offs[half]])
        dati.stdin.flush()
        time.sleep(1.0)    # dati sends what the first half gave (100 ms at most)
        col1.stop()
        time.sleep(0.3)
        col2 = Nfcapd(tmp_path, "nfcapd2", port=col1.port)
        dati.stdin.write(data[offs[half]:])
        dati.stdin.close()
        rc = dati.wait(timeout=h.RUN_TIMEOUT)
        time.sleep(0.3)
        log2 = col2.stop()
    finally:
        if dati is not None and dati.poll() is None:
            dati.kill()
            dati.wait()
        col1.stop()
        if col2:
            col2.stop()
    stderr = err_path.read_text(errors="replace")
    h.check_no_crash("dati -r - (collector restarted)", rc, stderr)
    assert rc == 0, f"dati exit {rc}\n{stderr[-2000:]}"
    run = h.Run(["dati", "-r", "-", "-c", conf], rc, out_path.read_bytes(), stderr, 0)
    ip = ipfix_stats(run)
    exp = expected_rows(run.flows)
    rows1, rows2 = read_nfdump(col1.dir), read_nfdump(col2.dir)
    assert rows2, f"the restarted collector decoded nothing; stats {ip}\n{log2[-2000:]}"
    assert nfcapd_totals(log2)["bad_packets"] == 0, log2[-2000:]
    compare_rows("restart: both collectors", exp, rows1 + rows2, subset=True)
    finals = [e for e in exp if e["json_reason"] == "end_of_input"]
    assert finals, "no end-of-input record to look for"
    got2 = Counter(row_tuple(r, ROW_FIELDS) for r in rows2)
    missing = list((Counter(row_tuple(e, ROW_FIELDS) for e in finals) - got2).elements())
    assert len(missing) <= ip["lost"], \
        f"{len(missing)} end-of-input records not at the restarted collector " \
        f"(lost {ip['lost']}): {missing[:5]}"


BAD_CONFIGS = [
    ("IPFIX_COLLECTOR nohostport", 3, "IPFIX_COLLECTOR"),
    ("IPFIX_COLLECTOR 127.0.0.1:0", 3, "IPFIX_COLLECTOR"),
    ("IPFIX_COLLECTOR 127.0.0.1:99999", 3, "IPFIX_COLLECTOR"),
    ("IPFIX_COLLECTOR 127.0.0.1:4739\nIPFIX_TRANSPORT sctp", 4, "IPFIX_TRANSPORT"),
    ("OUTPUT none", 3, "OUTPUT"),
]


@pytest.mark.parametrize("text,line,word", BAD_CONFIGS,
                         ids=[b[0].splitlines()[-1] for b in BAD_CONFIGS])
def test_bad_config(text, line, word, tmp_path, binaries):
    """`dati -c FILE --check` on a bad IPFIX setting: exit 2, the message
    names file:line and the keyword."""
    conf = write_conf(tmp_path, "bad.conf", text)
    assert conf.read_text().splitlines()[line - 1] == text.splitlines()[-1]
    r = h.run_dati(["-c", conf, "--check"], expect_rc=(2,), parse=False)
    where = f"{conf}:{line}:"
    msgs = [l for l in r.stderr.splitlines() if where in l]
    assert msgs, f"no '{where}' message:\n{r.stderr}"
    assert any(word in l for l in msgs), f"'{where}' message without {word}:\n{r.stderr}"


def test_good_config(tmp_path, binaries):
    """Every IPFIX key with valid values passes --check."""
    conf = write_conf(tmp_path, "good.conf", "IPFIX_COLLECTOR [::1]:4739", "IPFIX_TRANSPORT tcp",
                      "IPFIX_DOMAIN 4294967295", "IPFIX_TEMPLATE_REFRESH 1 1", "OUTPUT none")
    h.run_dati(["-c", conf, "--check"], expect_rc=(0,), parse=False)


@needs_nfdump
def test_output_none(tmp_path, binaries, gen_v6):
    """OUTPUT none: no record lines on stdout, only the final stats record
    (with the ipfix member); no field records made; nfdump still lists
    every flow record, the same as the JSON run gives."""
    fields_filter = "FILTER_NAME http\nBPF tcp port 80\nFIELDS http.method http.host"
    with Nfcapd(tmp_path) as col:
        run = run_with_ipfix(tmp_path, gen_v6, col.spec, "OUTPUT none", fields_filter,
                             name="none")
        assert not run.records and not run.flows, \
            f"record lines on stdout with OUTPUT none: {run.lines[:3]}"
        assert len(run.objs) == 1 and run.objs[0]["type"] == "stats", run.lines[:3]
        ip = ipfix_stats(run, zero_loss=True)
        assert run.stats["records"]["field"] == 0, run.stats["records"]
        log = col.stop()
    # the same configuration with JSON lines: what IPFIX must hold
    want = run_plain(tmp_path, gen_v6, fields_filter, name="json")
    assert want.records, "the JSON run made no field records: the check is empty"
    assert ip["records"] == len(want.flows) == run.stats["records"]["flow"]
    compare_rows("OUTPUT none", expected_rows(want.flows), read_nfdump(col.dir))
    tot = nfcapd_totals(log)
    assert tot["bad_packets"] == 0 and tot["sequence_errors"] == 0, tot
