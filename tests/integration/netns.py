"""Network namespaces for the live-capture tests: each test gets its own
namespace with veth pairs, created here and removed on exit, also when the
test fails. Traffic comes only from captures dati-gen made (198.18.0.0/15).
Needs root; tests skip with the reason otherwise."""
import os
import shutil
import signal
import struct
import subprocess
import time
from pathlib import Path

import pytest

import dati_helpers as h

NEED = ("live capture tests need root, ip, tcpreplay and tcpdump, and a kernel that allows "
        "network namespaces with veth pairs (make deps installs the tools)")


_probe = None


def available():
    """Root, the tools, and a kernel that lets us make a namespace with a veth
    pair (a container may not): tried once."""
    global _probe
    if _probe is None:
        _probe = os.geteuid() == 0 and all(shutil.which(t) for t in ("ip", "tcpreplay", "tcpdump"))
        if _probe:
            name = f"dati-probe{os.getpid()}"
            ok = subprocess.run(["ip", "netns", "add", name], capture_output=True).returncode == 0
            ok = ok and subprocess.run(["ip", "netns", "exec", name, "ip", "link", "add", "p0",
                                        "type", "veth", "peer", "name", "p1"],
                                       capture_output=True).returncode == 0
            subprocess.run(["ip", "netns", "del", name], capture_output=True)
            _probe = ok
    return _probe


def skip_unless_available():
    if not available():
        pytest.skip(NEED)


def sh(*args, check=True, ns=None):
    cmd = (["ip", "netns", "exec", ns] if ns else []) + [str(a) for a in args]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    if check and p.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)}: exit {p.returncode}: {p.stderr.strip()}")
    return p


class Netns:
    """A namespace with `pairs` veth pairs: (send side, capture side) names
    are ("s0", "c0"), ("s1", "c1")... MTU 9000 so that every generated frame
    fits; IPv6 is off so that the kernel adds no packets of its own."""

    def __init__(self, pairs=1):
        self.name = f"dati-t{os.getpid()}-{time.monotonic_ns() % 100000}"
        self.procs = []
        sh("ip", "netns", "add", self.name)
        try:
            # /proc/sys/net is per namespace; written directly: no procps needed
            for conf in ("all", "default"):
                self.run("sh", "-c", f"echo 1 > /proc/sys/net/ipv6/conf/{conf}/disable_ipv6")
            self.run("ip", "link", "set", "lo", "up")
            for i in range(pairs):
                self.run("ip", "link", "add", f"s{i}", "mtu", "9000", "type", "veth",
                         "peer", "name", f"c{i}", "mtu", "9000")
                self.run("ip", "link", "set", f"s{i}", "up")
                self.run("ip", "link", "set", f"c{i}", "up")
        except BaseException:
            self.close()
            raise

    def run(self, *args, check=True):
        return sh(*args, check=check, ns=self.name)

    def popen(self, args, stdout=None, stderr=None):
        p = subprocess.Popen(["ip", "netns", "exec", self.name] + [str(a) for a in args],
                             stdout=stdout, stderr=stderr, stdin=subprocess.DEVNULL,
                             env=h.sanitizer_env())
        self.procs.append(p)
        return p

    def wait_up(self, ifname, timeout=10):
        """Until the kernel says the link is up (operstate UP, carrier on)."""
        deadline = time.monotonic() + timeout
        while "state UP" not in self.run("ip", "-o", "link", "show", "dev", ifname).stdout:
            assert time.monotonic() < deadline, f"{ifname} not up in {timeout} s"
            time.sleep(0.05)

    def replay(self, pcap, iface="s0", pps=20000):
        p = self.run("tcpreplay", "-q", "-i", iface, "--pps", pps, pcap)
        return p.stdout + p.stderr

    def close(self):
        for p in self.procs:
            if p.poll() is None:
                p.kill()
                p.wait()
        subprocess.run(["ip", "netns", "del", self.name], capture_output=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def pcap_records(path):
    """Complete records in a pcap file so far (a writer may be mid-record):
    a 24-byte file header, then a 16-byte header per record, incl_len at 8."""
    data = Path(path).read_bytes() if Path(path).exists() else b""
    incl_len = "<I" if data[:4] in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1") else ">I"
    n, off = 0, 24
    while off + 16 <= len(data):
        off += 16 + struct.unpack_from(incl_len, data, off + 8)[0]
        if off > len(data):
            break
        n += 1
    return n


def interim_stats(out):
    """The interim statistics records in dati's output so far; complete lines
    only (dati may be writing the next one)."""
    data = Path(out).read_bytes() if Path(out).exists() else b""
    lines = [l for l in data.split(b"\n")[:-1] if l.startswith(b'{"type":"stats","final":false')]
    return h.parse_json_lines(b"\n".join(lines), "dati live output")


def request_stats(send, out, timeout=5, alive=lambda: None):
    """send() asks dati for statistics (SIGUSR1); returns the first interim
    record written after it, or None if none came in `timeout` s. alive()
    raises if dati has ended."""
    seen = len(interim_stats(out))
    send()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        recs = interim_stats(out)
        if len(recs) > seen:
            return recs[seen]
        alive()
        time.sleep(0.02)
    return None


def wait_stats(send, out, cond, what, timeout=30, alive=lambda: None):
    """Asks dati for statistics until a record satisfies cond; returns it.
    Instead of a sleep that assumes how fast dati is (it is 2-5 times slower
    under sanitizers, more on a loaded machine)."""
    deadline = time.monotonic() + timeout
    st = None
    while time.monotonic() < deadline:
        st = request_stats(send, out, min(5, max(deadline - time.monotonic(), 0.1)), alive) or st
        if st is not None and cond(st):
            return st
        time.sleep(0.1)
    last = st and {k: st[k] for k in ("packets", "interfaces", "filters") if k in st}
    raise AssertionError(f"dati: no statistics with {what} in {timeout} s; last: {last}")


class Dati:
    """dati running live inside a namespace; output and stderr in files."""

    def __init__(self, ns, tmp, args, ready=True):
        self.ns = ns
        self.out = Path(tmp) / f"out-{len(ns.procs)}.json"
        self.err_path = Path(tmp) / f"err-{len(ns.procs)}.txt"
        self.errf = open(self.err_path, "wb")
        self.p = ns.popen([h.DATI, "-v", "-w", self.out] + list(args), stderr=self.errf)
        if ready:
            self.wait_for("capturing on")

    def stderr(self):
        return self.err_path.read_text(errors="replace")

    def wait_for(self, text, timeout=20):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if text in self.stderr():
                return
            if self.p.poll() is not None:
                raise AssertionError(f"dati ended (exit {self.p.returncode}) before "
                                     f"'{text}':\n{self.stderr()[-3000:]}")
            time.sleep(0.05)
        raise AssertionError(f"no '{text}' from dati in {timeout} s:\n{self.stderr()[-3000:]}")

    def signal(self, sig):
        self.p.send_signal(sig)

    def alive(self):
        if self.p.poll() is not None:
            raise AssertionError(f"dati ended (exit {self.p.returncode}):\n"
                                 f"{self.stderr()[-3000:]}")

    def request_stats(self, timeout=10):
        """SIGUSR1; the interim statistics record it wrote."""
        st = request_stats(lambda: self.signal(signal.SIGUSR1), self.out, timeout, self.alive)
        assert st is not None, f"no statistics record {timeout} s after SIGUSR1"
        return st

    def wait_packets(self, n, timeout=30):
        """Returns (the statistics) once dati has taken n packets from its
        rings: a SIGTERM or SIGHUP now acts only after them (it is seen
        between packets; a stop abandons what is still in the rings, a
        reload gives the backlog the new filters)."""
        return wait_stats(lambda: self.signal(signal.SIGUSR1), self.out,
                          lambda st: st["packets"] >= n, f"{n} packets", timeout, self.alive)

    def stop(self, timeout=30, expect_rc=(0,)):
        """SIGTERM, wait, check; returns the parsed output lines."""
        if self.p.poll() is None:
            self.p.send_signal(signal.SIGTERM)
        try:
            self.p.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.p.kill()
            raise AssertionError(f"dati still running {timeout} s after SIGTERM")
        self.errf.close()
        err = self.stderr()
        h.check_no_crash("dati live", self.p.returncode, err)
        assert self.p.returncode in expect_rc, f"exit {self.p.returncode}:\n{err[-3000:]}"
        return self.lines()

    def lines(self):
        if not self.out.exists():
            return []
        return h.parse_json_lines(self.out.read_bytes(), "dati live output")
