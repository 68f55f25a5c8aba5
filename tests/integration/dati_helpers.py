"""Helpers for dati's integration tests: finding the binaries and the corpus,
running dati (with sanitizer and crash checks), parsing its JSON lines and the
tshark oracle TSV files, and pairing rows for comparison.

Nothing here is specific to one test file; the tests import it directly
(pytest puts this directory on sys.path)."""
import decimal
import ipaddress
import json
import os
import re
import signal
import struct
import subprocess
import time
import unicodedata
from collections import defaultdict
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
BUILD = REPO / os.environ.get("DATI_BUILD", "build")
DATI = BUILD / "dati"
DATI_GEN = BUILD / "dati-gen"
CORPUS = (REPO / ".." / "shared" / "corpus").resolve()
PCAP_DIR = CORPUS / "pcap"
ORACLE_DIR = CORPUS / "oracle"

# Generous: the suite may run under ASan/UBSan (build-san), 2-3x slower.
RUN_TIMEOUT = 120

SANITIZER_MARKERS = (
    "AddressSanitizer",
    "LeakSanitizer",
    "UndefinedBehaviorSanitizer",
    "ThreadSanitizer",
    "MemorySanitizer",
    "runtime error:",
)

CORPUS_MISSING = f"corpus not found at {CORPUS}"


def corpus_captures():
    """Names of the corpus captures, sorted; [] when the corpus is absent."""
    if not PCAP_DIR.is_dir():
        return []
    return sorted(p.name for p in PCAP_DIR.iterdir() if p.is_file())


def oracle_path(capture, kind):
    """oracle/<capture>.<kind>, e.g. kind='http-noreasm.tsv'."""
    return ORACLE_DIR / f"{capture}.{kind}"


def sanitizer_env():
    """The environment for dati: a distinct exit code for sanitizer reports
    (ASan's default, 1, would look like "damaged input")."""
    env = dict(os.environ)
    asan = env.get("ASAN_OPTIONS", "")
    if "exitcode" not in asan:
        env["ASAN_OPTIONS"] = (asan + ":" if asan else "") + "exitcode=99"
    tsan = env.get("TSAN_OPTIONS", "")
    if "exitcode" not in tsan:
        env["TSAN_OPTIONS"] = (tsan + ":" if tsan else "") + "exitcode=99"
    ubsan = env.get("UBSAN_OPTIONS", "")
    if "print_stacktrace" not in ubsan:
        env["UBSAN_OPTIONS"] = (ubsan + ":" if ubsan else "") + "print_stacktrace=1"
    return env


# ---------------------------------------------------------------- running


def parse_json_lines(data, what):
    """JSON lines (bytes) into objects; numbers with decimals as Decimal."""
    objs = []
    for n, line in enumerate(data.decode("utf-8", "strict").splitlines(), 1):
        try:
            objs.append(json.loads(line, parse_float=decimal.Decimal))
        except ValueError as e:
            raise AssertionError(f"{what}: output line {n} is not JSON ({e}): {line[:300]!r}")
    return objs


class Run:
    """One finished dati run: exit status, raw output, parsed objects."""

    def __init__(self, args, rc, stdout, stderr, elapsed, parse=True):
        self.args = args
        self.rc = rc
        self.stdout = stdout
        self.stderr = stderr
        self.elapsed = elapsed
        self.what = " ".join(str(a) for a in args)
        self.objs = parse_json_lines(stdout, self.what) if parse else []
        self.lines = stdout.decode("utf-8", "replace").splitlines()
        self.records = [o for o in self.objs if o.get("type") == "record"]
        self.flows = [o for o in self.objs if o.get("type") == "flow"]
        stats = [o for o in self.objs if o.get("type") == "stats" and o.get("final")]
        self.stats = stats[-1] if stats else None

    def record_lines(self):
        """Raw text of every line but the stats ones (for multiset checks)."""
        return [l for l in self.lines if not l.startswith('{"type":"stats"')]


def check_no_crash(what, rc, stderr):
    """No signal, no sanitizer report. Returns nothing; raises AssertionError."""
    if rc < 0:
        raise AssertionError(
            f"{what}: killed by signal {signal.Signals(-rc).name}\nstderr:\n{stderr[-3000:]}")
    for m in SANITIZER_MARKERS:
        if m in stderr:
            raise AssertionError(f"{what}: sanitizer report ({m!r}), exit {rc}\n"
                                 f"stderr:\n{stderr[-6000:]}")


def run_dati(args, timeout=RUN_TIMEOUT, expect_rc=(0,), check_stats=True, stdin_path=None,
             parse=True):
    """Runs build/dati with args (standard input from stdin_path, if given);
    checks no crash, no sanitizer output, the exit status in expect_rc, and
    (unless check_stats is false) a final stats line at the end of the output
    when the exit status is 0 or 1. parse=False: the output is not JSON lines.
    Returns a Run."""
    cmd = [str(DATI)] + [str(a) for a in args]
    t0 = time.monotonic()
    try:
        if stdin_path is None:
            p = subprocess.run(cmd, capture_output=True, timeout=timeout, env=sanitizer_env(),
                               stdin=subprocess.DEVNULL)
        else:
            with open(stdin_path, "rb") as f:
                p = subprocess.run(cmd, capture_output=True, timeout=timeout,
                                   env=sanitizer_env(), stdin=f)
    except subprocess.TimeoutExpired as e:
        raise AssertionError(f"{' '.join(cmd)}: still running after {timeout} s "
                             f"(stderr so far: {(e.stderr or b'')[-2000:]!r})")
    elapsed = time.monotonic() - t0
    stderr = p.stderr.decode("utf-8", "replace")
    what = " ".join(cmd)
    check_no_crash(what, p.returncode, stderr)
    if expect_rc is not None and p.returncode not in expect_rc:
        raise AssertionError(f"{what}: exit status {p.returncode}, expected {expect_rc}\n"
                             f"stderr:\n{stderr[-3000:]}")
    r = Run(cmd, p.returncode, p.stdout, stderr, elapsed, parse)
    if parse and check_stats and p.returncode in (0, 1):
        assert r.objs and r.objs[-1].get("type") == "stats" and r.objs[-1].get("final"), \
            f"{what}: the last output line is not the final stats record: " \
            f"{r.lines[-1][:300] if r.lines else '(no output)'!r}"
    return r


def run_gen(args, out_path, timeout=RUN_TIMEOUT):
    """Runs build/dati-gen -o out_path args...; returns its JSON summary."""
    cmd = [str(DATI_GEN), "-o", str(out_path)] + [str(a) for a in args]
    p = subprocess.run(cmd, capture_output=True, timeout=timeout, env=sanitizer_env())
    stderr = p.stderr.decode("utf-8", "replace")
    check_no_crash(" ".join(cmd), p.returncode, stderr)
    assert p.returncode == 0, f"{' '.join(cmd)}: exit {p.returncode}\n{stderr}"
    summary = [l for l in stderr.splitlines() if l.startswith("{")]
    assert summary, f"{' '.join(cmd)}: no JSON summary line on stderr:\n{stderr}"
    merged = {}
    for line in summary:   # --fragment adds a line: frames, fragmented, fragments
        merged.update(json.loads(line))
    return merged


def write_config(directory, name, text):
    path = Path(directory) / name
    path.write_text(text)
    return path


# ---------------------------------------------------------------- oracles

_TSV_ESC = re.compile(r"\\(.)")
_TSV_MAP = {"\\": "\\", "t": "\t", "r": "\r", "n": "\n"}


def tsv_unescape(cell):
    """Undoes make_oracles.py's clean(): \\\\ \\t \\r \\n."""
    return _TSV_ESC.sub(lambda m: _TSV_MAP.get(m.group(1), "\\" + m.group(1)), cell)


def read_tsv(path):
    """Rows of an oracle TSV as dicts keyed by header name; each row also has
    '_line' (its line number in the file, header = 1)."""
    rows = []
    with open(path, encoding="utf-8", newline="\n") as f:
        header = f.readline().rstrip("\n").split("\t")
        for n, line in enumerate(f, 2):
            line = line.rstrip("\n")
            if not line:
                continue
            cells = line.split("\t")
            assert len(cells) == len(header), \
                f"{path}:{n}: {len(cells)} cells, header has {len(header)}"
            row = {h: tsv_unescape(c) for h, c in zip(header, cells)}
            row["_line"] = n
            rows.append(row)
    return rows


def read_tshark_frames(capture):
    """'tshark frames read: N' from oracle/<capture>.count.txt."""
    text = oracle_path(capture, "count.txt").read_text()
    m = re.search(r"^tshark frames read:\s*(\d+)", text, re.M)
    assert m, f"{capture}.count.txt has no 'tshark frames read' line"
    return int(m.group(1))


# ---------------------------------------------------------------- values


def raw_bytes(value):
    """The bytes dati saw: its JSON strings escape bytes that are not UTF-8
    as U+DC80..U+DCFF, which surrogateescape turns back into those bytes."""
    return str(value).encode("utf-8", "surrogateescape")


def tshark_ascii_view(value):
    """What tshark 4.0 shows for an ENC_ASCII string field (HTTP request
    line and headers, TLS SNI): the value is a C string, so it ends at the
    first NUL byte, and every byte >= 0x80 is one U+FFFD (even when it is
    valid UTF-8); control characters are kept as they are."""
    if value is None:
        return ""
    raw = raw_bytes(value).split(b"\0", 1)[0]
    return "".join(chr(b) if b < 0x80 else "\ufffd" for b in raw)


_C_ESCAPES = {0x07: "a", 0x08: "b", 0x0C: "f", 0x0A: "n", 0x0D: "r", 0x09: "t", 0x0B: "v"}


def _c_escape(c):
    return "\\" + (_C_ESCAPES.get(c) or format(c, "03o"))


def _unichar_isprint(uc):
    # GLib's g_unichar_isprint: not Control, Format, Unassigned or Surrogate.
    return unicodedata.category(chr(uc)) not in ("Cc", "Cf", "Cn", "Cs")


def tshark_format_text(raw):
    """Python port of Wireshark 4.0's format_text() (wsutil/str_util.c),
    which makes the text of DNS names: printable ASCII as is, other ASCII as
    C escapes (\\t, \\001; a backslash itself is not escaped), UTF-8 decoded
    permissively (overlong forms accepted, 5/6-byte forms decoded), broken
    sequences as U+FFFD, non-printable non-ASCII as \\uXXXX/\\UXXXXXXXX."""
    out = []
    i, n = 0, len(raw)
    while i < n:
        c = raw[i]
        i += 1
        if 0x20 <= c <= 0x7E:
            out.append(chr(c))
            continue
        if c < 0x80:
            out.append(_c_escape(c))
            continue
        for lead, mask, more in ((0xE0, 0xC0, 1), (0xF0, 0xE0, 2), (0xF8, 0xF0, 3),
                                 (0xFC, 0xF8, 4), (0xFE, 0xFC, 5)):
            if c & lead == mask:
                uc = c & (0xFF >> (more + 2))
                for _ in range(more):
                    if i >= n:
                        uc = 0xFFFD
                        break
                    c = raw[i]
                    if c & 0xC0 != 0x80:
                        uc = 0xFFFD
                        break
                    i += 1
                    uc = (uc << 6) | (c & 0x3F)
                if not (uc < 0x110000 and (uc & 0xFFFFF800) != 0xD800):
                    uc = 0xFFFD
                break
        else:
            uc = 0xFFFD      # 0xfe, 0xff or a stray continuation byte
        if _unichar_isprint(uc):
            out.append(chr(uc))
        elif c < 0x80:       # sic: c is the last byte read (Wireshark's quirk)
            out.append(_c_escape(c))
        elif uc <= 0xFFFF:
            out.append("\\u%04x" % uc)
        else:
            out.append("\\U%08x" % uc)
    return "".join(out)


def tshark_dns_view(value):
    """What tshark 4.0 shows for a DNS name dati reports (None -> '')."""
    return "" if value is None else tshark_format_text(raw_bytes(value))


def canon_addr(text):
    """Canonical text of an IPv4/IPv6 address (RFC 5952 for IPv6); text
    unchanged when it is not an address."""
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        return text


def pair_rows(expected, got, key, order):
    """Multiset pairing: rows with the same key(row) are paired in order(row)
    order. Returns (pairs, missing, extra): pairs of (expected, got), expected
    rows with no partner, got rows with no partner."""
    exp_groups, got_groups = defaultdict(list), defaultdict(list)
    for r in expected:
        exp_groups[key(r)].append(r)
    for r in got:
        got_groups[key(r)].append(r)
    pairs, missing, extra = [], [], []
    for k in set(exp_groups) | set(got_groups):
        e = sorted(exp_groups.get(k, []), key=order)
        g = sorted(got_groups.get(k, []), key=order)
        pairs.extend(zip(e, g))
        missing.extend(e[len(g):])
        extra.extend(g[len(e):])
    pairs.sort(key=lambda p: order(p[0]))
    missing.sort(key=order)
    extra.sort(key=order)
    return pairs, missing, extra


class Mismatches:
    """Collects mismatch messages and fails once with all of them."""

    def __init__(self, capture, what, limit=40):
        self.capture = capture
        self.what = what
        self.msgs = []
        self.limit = limit

    def add(self, msg):
        self.msgs.append(msg)

    def check(self):
        if not self.msgs:
            return
        shown = self.msgs[: self.limit]
        more = len(self.msgs) - len(shown)
        text = f"{self.capture}: {len(self.msgs)} {self.what} difference(s):\n  " \
            + "\n  ".join(shown)
        if more:
            text += f"\n  ... and {more} more"
        raise AssertionError(text)


# ---------------------------------------------------------------- corpus config

# One configuration for every corpus comparison. dati makes every filter
# look inside 802.1Q/QinQ tags on Ethernet by itself, so each purpose has one
# filter. The tls filter matches every TCP/UDP packet, so the first packet of
# any 5-tuple creates its flow; the huge PKT_TTL keeps every flow alive to the
# end of the input.
HTTP_FIELDS = ("ip.src ip.dst tcp.sport tcp.dport http.method http.url http.host "
               "http.useragent http.referer http.cookie frame.number")
DNS_FIELDS = ("ip.src ip.dst udp.sport udp.dport tcp.sport tcp.dport dns.id "
              "dns.flags.response dns.qry.name dns.qry.type dns.qry.class "
              "dns.count.queries frame.number")
TLS_FIELDS = "ip.src ip.dst tcp.sport tcp.dport udp.sport udp.dport tls.sni frame.number"

ORACLE_CONF = f"""\
TIME_STATS 0
PKT_TTL 1000000000
FILTER_NAME http
BPF tcp
FIELDS {HTTP_FIELDS}
FILTER_NAME dns
BPF port 53
FIELDS {DNS_FIELDS}
FILTER_NAME tls
BPF tcp or udp
FIELDS {TLS_FIELDS}
"""

FILTER_GROUPS = {"http": {"http"}, "dns": {"dns"}, "tls": {"tls"}}


def records_of(run, group):
    """Field records of one purpose ('http', 'dns', 'tls')."""
    names = FILTER_GROUPS[group]
    return [r for r in run.records if r["filter"] in names]


def packet_offsets(data):
    """Byte offset of each packet of a pcap (and of the end)."""
    offs, pos = [], 24
    while pos + 16 <= len(data):
        offs.append(pos)
        pos += 16 + struct.unpack_from("<I", data, pos + 8)[0]
    return offs + [pos]
