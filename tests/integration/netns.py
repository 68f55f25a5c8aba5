"""Network namespaces for the live-capture tests: each test gets its own
namespace with veth pairs, created here and removed on exit, also when the
test fails. Traffic comes only from captures dati-gen made (198.18.0.0/15).
Needs root; tests skip with the reason otherwise."""
import os
import shutil
import signal
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
