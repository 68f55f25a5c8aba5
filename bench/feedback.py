#!/usr/bin/env python3
"""feedback.py BUILD DIR LAB_PCAP - make bench, section 5: the feedback
channel under the lab mix, with a redis-server of its own on a unix socket.

1. Latency from PUBLISH of a tag to the first record carrying it: dati reads
   the lab mix from a pipe at a paced rate (records for every TCP packet, in
   stream mode); every 20 ms a flow seen in the stream a moment ago is
   tagged; a reader of the stream notes when the first record of that flow
   with the tag arrives. Median and p99 over the samples.
2. Commands/s absorbed: dati reads the lab mix at full speed (seed GET
   filter, records into Redis) while a publisher sends tag commands at a
   fixed rate; the wall time against the same run without commands.
Prints figures; never fails on them."""
import json
import os
import statistics
import subprocess
import sys
import threading
import time

import redis

build, work, lab = sys.argv[1], sys.argv[2], sys.argv[3]
dati = os.path.join(build, "dati")
sock = os.path.join(work, "fb.sock")
SEED_BPF = "tcp[(tcp[12] >> 4) * 4 : 4] = 0x47455420"
PACE, SECONDS = 20000, 8
ROUNDS = int(os.environ.get("RUNS", "3")) + 2

server = subprocess.Popen(["redis-server", "--port", "0", "--unixsocket", sock, "--save", "",
                           "--appendonly", "no"], stdout=subprocess.DEVNULL)
r = redis.Redis(unix_socket_path=sock)
for _ in range(200):
    try:
        r.ping()
        break
    except (redis.exceptions.ConnectionError, FileNotFoundError):
        time.sleep(0.02)


def conf(name, bpf, fields, extra=""):
    path = os.path.join(work, name)
    with open(path, "w") as f:
        f.write(f"TIME_STATS 0\nPKT_TTL 1000000000\nREDIS_SOCK {sock}\nREDIS_MODE stream\n"
                f"REDIS_MAXLEN 200000\nFEEDBACK_CHANNEL dati:feedback\n{extra}"
                f"FILTER_NAME web\nBPF {bpf}\nFIELDS {fields}\n")
    return path


def wait_subscribed():
    while r.pubsub_numsub("dati:feedback")[0][1] < 1:
        time.sleep(0.01)


def packets(data):
    pos = 24
    while pos + 16 <= len(data):
        n = int.from_bytes(data[pos + 8:pos + 12], "little")
        yield pos, pos + 16 + n
        pos += 16 + n


def latency():
    data = open(lab, "rb").read()
    ends = [e for _, e in packets(data)]
    c = conf("lat.conf", "tcp", "ip.src ip.dst")
    r.flushall()
    p = subprocess.Popen([dati, "-q", "-r", "-", "-c", c], stdin=subprocess.PIPE,
                         stdout=subprocess.DEVNULL)
    wait_subscribed()
    done = threading.Event()
    seen = {}                 # flow -> monotonic time of the first tagged record
    recent = []               # flows of the latest records
    lock = threading.Lock()

    def reader():
        rr = redis.Redis(unix_socket_path=sock)
        last = "$"
        while not done.is_set():
            got = rr.xread({"web": last}, block=100, count=5000)
            now = time.monotonic()
            for _, entries in got:
                for eid, f in entries:
                    last = eid
                    flow = int(f[b"flow"])
                    if f.get(b"tags") == b"lat" and flow not in seen:
                        seen[flow] = now
                    with lock:
                        recent.append(flow)
                        del recent[:-200]

    acked = {}

    def acks():
        ps = redis.Redis(unix_socket_path=sock).pubsub()
        ps.subscribe("dati:feedback:reply")
        while not done.is_set():
            m = ps.get_message(timeout=0.1)
            if m and m["type"] == "message":
                a = json.loads(m["data"])
                acked.setdefault(a.get("flow"), time.monotonic())

    t = threading.Thread(target=reader)
    t.start()
    at = threading.Thread(target=acks)
    at.start()
    time.sleep(0.2)
    sent = {}

    def publisher():
        pub = redis.Redis(unix_socket_path=sock)
        while not done.is_set():
            time.sleep(0.02)
            with lock:
                cand = [f for f in recent if f not in sent]
            if cand:
                f = cand[-1]
                sent[f] = time.monotonic()
                pub.publish("dati:feedback", json.dumps({"flow": f, "tag": "lat"}))

    pt = threading.Thread(target=publisher)
    pt.start()
    # paced: PACE packets/s in 10 ms steps for SECONDS (a record per TCP
    # packet: Redis and this Python reader must keep up, or the figure would
    # be their backlog)
    step, prev = PACE // 100, 24
    p.stdin.write(data[:24])
    t0 = time.monotonic()
    for i in range(step, min(len(ends), PACE * SECONDS), step):
        p.stdin.write(data[prev:ends[i - 1]])
        prev = ends[i - 1]
        delay = t0 + i / PACE - time.monotonic()
        if delay > 0:
            time.sleep(delay)
    time.sleep(1)
    done.set()
    pt.join()
    t.join()
    at.join()
    p.stdin.close()
    p.wait()
    def show(what, got):
        lat = sorted((got[f] - sent[f]) * 1000 for f in sent if f in got)
        if not lat:
            print(f"   {what}: no samples")
            return
        p99 = lat[min(len(lat) - 1, int(len(lat) * 0.99))]
        print(f"   {what}: median {statistics.median(lat):.1f} ms, p99 {p99:.1f} ms "
              f"({len(lat)} of {len(sent)} commands)")

    print(f"   lab mix paced at {PACE // 1000} k packets/s, a record per TCP packet (stream), "
          f"one command every 20 ms")
    show("PUBLISH -> acknowledgement (applied)", acked)
    show("PUBLISH -> first record with the tag", seen)


def absorb():
    c = conf("abs.conf", SEED_BPF, "ip.src ip.dst tcp.sport tcp.dport http.url http.host")

    def run(rate):
        """Median wall and CPU seconds of dati over 3 runs, with a publisher
        thread sending `rate` tag commands per second (for unknown flows)."""
        walls, cpus = [], []
        for _ in range(1):
            r.flushall()
            stop = threading.Event()
            sent = [0]

            def flood():
                pub = redis.Redis(unix_socket_path=sock).pipeline(transaction=False)
                t0 = time.monotonic()
                while not stop.is_set():
                    due = int((time.monotonic() - t0) * rate)
                    for i in range(sent[0], due):
                        pub.publish("dati:feedback", json.dumps({"flow": 1 + i, "tag": "x"}))
                    if due > sent[0]:
                        pub.execute()
                        sent[0] = due
                    time.sleep(0.002)

            out = open(os.path.join(work, "abs.out"), "wb")
            th = threading.Thread(target=flood)
            if rate:
                th.start()   # commands flow before dati starts reading
                time.sleep(0.05)
            p = subprocess.Popen([dati, "-q", "-r", lab, "-c", c], stdout=out)
            # the packet-processing thread's CPU time: with one worker, the
            # main thread decodes and runs the worker (and takes the commands)
            sched, ns = f"/proc/{p.pid}/task/{p.pid}/schedstat", 0
            while p.poll() is None:
                try:
                    with open(sched) as f:
                        ns = int(f.read().split()[0])
                except (OSError, ValueError, IndexError):
                    pass
                time.sleep(0.001)
            walls.append(ns / 1e9)
            cpus.append(0)
            stop.set()
            if rate:
                th.join()
            out.close()
        last = open(os.path.join(work, "abs.out")).read().splitlines()[-1]
        return statistics.median(walls), statistics.median(cpus), json.loads(last)

    rates = (0, 1000, 10000, 50000)
    runs = {rate: [] for rate in rates}
    run(0)   # warm-up
    for _ in range(ROUNDS):   # interleaved, so that drift hits every rate alike
        for rate in rates:
            runs[rate].append(run(rate))
    med = {rate: (statistics.median(x[0] for x in v), statistics.median(x[1] for x in v), v[-1][2])
           for rate, v in runs.items()}
    base, _, st = med[0]
    print(f"   lab mix ({st['packets']} packets) into Redis at full speed, seed filter, -t 1, "
          f"median of {ROUNDS}: CPU time of the packet-processing thread (decode + worker)")
    print(f"   no commands: {base * 1000:.0f} ms")
    for rate in rates[1:]:
        t, _, st = med[rate]
        fb = st["feedback"]
        print(f"   {rate:>6} commands/s: {t * 1000:.0f} ms ({100 * (t - base) / base:+.1f} %); "
              f"{fb['received']} commands received, {fb['queue_full']} dropped (queue full)")


try:
    print("7. feedback channel (redis-server on a unix socket)")
    latency()
    absorb()
finally:
    server.terminate()
    server.wait()
