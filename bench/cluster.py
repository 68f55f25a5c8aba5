#!/usr/bin/env python3
"""bench/cluster.py - make bench, section 9: records into a Redis Cluster.

A 3-master cluster on loopback (tests/integration/cluster.py, no replicas:
these cores also run dati and redis-benchmark), the all-HTTP file written by
dati -t 1 in the hash layout and in the stream layout (3 shards), next to
the ceiling redis-benchmark measures for the same commands in cluster mode
with the same pipeline depth, and the same for one plain redis-server on
loopback TCP. Also dati's own CPU time per record with 1 and with 3
masters: what one machine per master would scale with.

    bench/cluster.py BUILD DIR HTTP_PCAP HTTP_CONF

Prints figures; never fails on speed."""
import json
import os
import re
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "integration"))
import cluster as cl  # noqa: E402

RUNS = int(os.environ.get("RUNS", "3"))
PIPELINE = 50
FIELDS = ["Timestamp", "1700000000.000000000", "filter", "http", "flow", "123456",
          "ip.src", "198.18.1.2", "ip.dst", "198.19.0.1", "tcp.sport", "12345", "tcp.dport", "80",
          "http.method", "GET", "http.url", "/index.html", "http.host", "www.example.test",
          "http.useragent", "Mozilla/5.0 (X11; Linux x86_64) dati-gen/1",
          "http.referer", "http://www.example.test/"]


def run_dati(dati, conf, pcap, flush):
    """(wall s, CPU s of dati, final stats) of one run, after flush()."""
    flush()
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.monotonic()
    p = subprocess.run([dati, "-q", "-c", conf, "-r", pcap, "-t", "1"], capture_output=True,
                       text=True)
    wall = time.monotonic() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if p.returncode != 0:
        raise SystemExit(f"dati failed: {p.stderr[-2000:]}")
    stats = json.loads(p.stdout.splitlines()[-1])
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu, stats


def median_run(dati, conf, pcap, flush):
    run_dati(dati, conf, pcap, flush)   # warm-up
    runs = [run_dati(dati, conf, pcap, flush) for _ in range(RUNS)]
    runs.sort(key=lambda r: r[0])
    return runs[len(runs) // 2]


def bench_rps(args):
    """redis-benchmark's requests/s for one command (args: connection
    options and the command)."""
    p = subprocess.run(["redis-benchmark", "-P", str(PIPELINE), "-n", "200000", "-r", "1000000",
                        "-q", *args], capture_output=True, text=True)
    found = re.findall(r"([0-9.]+) requests per second", p.stdout.replace("\r", "\n"))
    return float(found[-1]) if found else float("nan")


def ceilings(conn, cluster):
    """The seed layout's commands and XADD, one kind at a time; in cluster
    mode redis-benchmark puts a hash tag of each master's slots for {tag}."""
    key = "dati:rec:{tag}:__rand_int__" if cluster else "dati:rec:__rand_int__"
    hset = bench_rps(conn + ["hset", key, *FIELDS])
    expire = bench_rps(conn + ["expire", key, "300"])
    publish = bench_rps(conn + ["publish", "http", key])
    xadd = bench_rps(conn + ["xadd", "http:{tag}" if cluster else "http", "MAXLEN", "~", "100000",
                             "*", *FIELDS])
    mix = 1 / (1 / hset + 1 / expire + 1 / publish)
    out = {"hset": hset, "expire": expire, "publish": publish, "mix": mix, "xadd": xadd}
    if cluster:   # REDIS_PUBSUB sharded: the channel shard on the key's master
        out["spublish"] = bench_rps(conn + ["spublish", "http:{tag}", key])
        out["smix"] = 1 / (1 / hset + 1 / expire + 1 / out["spublish"])
    return out


def line(what, wall, cpu, stats, records, ceiling):
    rd = stats["redis"]
    rate = records / wall
    print(f"   {what:<40} {wall:7.2f} s {rate:10.0f} records/s  {100 * rate / ceiling:4.0f} % of "
          f"the ceiling  {1e6 * cpu / records:5.2f} us CPU/record  ({rd['lost']} lost)")


def main():
    build, bdir, pcap, http_conf = sys.argv[1:5]
    dati = str(Path(build) / "dati")
    bdir = Path(bdir).resolve()
    base = Path(http_conf).read_text()
    records = None

    # one plain redis-server on loopback TCP: the single-master reference
    port = cl.free_ports(1)[0]
    single = subprocess.Popen(["redis-server", "--port", str(port), "--bind", "127.0.0.1",
                               "--save", "", "--appendonly", "no", "--logfile", ""],
                              stdout=subprocess.DEVNULL)
    shutil.rmtree(bdir / "cluster", ignore_errors=True)   # a node's old nodes.conf
    c = cl.Cluster(bdir / "cluster", masters=3, replicas=0)
    try:
        import redis
        r1 = redis.Redis(port=port)
        for _ in range(100):
            try:
                r1.ping()
                break
            except redis.exceptions.ConnectionError:
                time.sleep(0.05)
        c.start()
        one = bdir / "one-redis.conf"
        one.write_text(base.replace("TIME_STATS 0", f"TIME_STATS 0\nREDIS_HOST 127.0.0.1\n"
                                    f"REDIS_PORT {port}"))
        hashc = bdir / "cluster-hash.conf"
        hashc.write_text(base.replace("TIME_STATS 0", f"TIME_STATS 0\nREDIS_CLUSTER {c.seeds()}"))
        streamc = bdir / "cluster-stream.conf"
        streamc.write_text(base.replace("TIME_STATS 0", f"TIME_STATS 0\nREDIS_CLUSTER {c.seeds()}\n"
                                        "REDIS_MODE stream\nREDIS_STREAM_SHARDS 3\n"
                                        "REDIS_MAXLEN 100000"))
        w1, u1, s1 = median_run(dati, str(one), pcap, r1.flushall)
        records = s1["redis"]["records"]
        wh, uh, sh = median_run(dati, str(hashc), pcap, c.flushall)
        ws, us, ss = median_run(dati, str(streamc), pcap, c.flushall)
        deepc = bdir / "cluster-stream-deep.conf"
        deepc.write_text(streamc.read_text() + "\nREDIS_PIPELINE 1000\n")
        wd, ud, sd = median_run(dati, str(deepc), pcap, c.flushall)
        shardc = bdir / "cluster-spublish.conf"
        shardc.write_text(base.replace("TIME_STATS 0", f"TIME_STATS 0\nREDIS_CLUSTER {c.seeds()}\n"
                                       "REDIS_PUBSUB sharded\nREDIS_STREAM_SHARDS 3"))
        wp, up, sp = median_run(dati, str(shardc), pcap, c.flushall)
        ceil1 = ceilings(["-h", "127.0.0.1", "-p", str(port)], False)
        ceil3 = ceilings(["--cluster", "-h", "127.0.0.1", "-p", str(c.masters()[0][1])], True)
    finally:
        c.stop()
        single.terminate()
        single.wait()
    print(f"9. Redis Cluster: all-HTTP file ({records} records), dati -t 1, pipelines of "
          f"REDIS_PIPELINE (default) against redis-benchmark -P {PIPELINE}")
    print(f"   one redis-server (TCP loopback): HSET {ceil1['hset']:.0f}/s, EXPIRE "
          f"{ceil1['expire']:.0f}/s, PUBLISH {ceil1['publish']:.0f}/s: seed-layout ceiling "
          f"{ceil1['mix']:.0f} records/s; XADD {ceil1['xadd']:.0f}/s")
    line("one Redis, hash layout", w1, u1, s1, records, ceil1["mix"])
    print(f"   3 masters (redis-benchmark --cluster): HSET {ceil3['hset']:.0f}/s, EXPIRE "
          f"{ceil3['expire']:.0f}/s, PUBLISH {ceil3['publish']:.0f}/s: seed-layout ceiling "
          f"{ceil3['mix']:.0f} records/s; XADD {ceil3['xadd']:.0f}/s")
    line("3 masters, hash layout", wh, uh, sh, records, ceil3["mix"])
    print(f"   sharded pub/sub: SPUBLISH {ceil3['spublish']:.0f}/s (PUBLISH goes to every node "
          f"over the cluster bus, SPUBLISH to one shard): ceiling {ceil3['smix']:.0f} records/s")
    line("3 masters, hash layout, SPUBLISH", wp, up, sp, records, ceil3["smix"])
    line("3 masters, stream layout, 3 shards", ws, us, ss, records, ceil3["xadd"])
    line("  the same, REDIS_PIPELINE 1000", wd, ud, sd, records, ceil3["xadd"])
    print("   (target: >= 70 % of the cluster's ceiling, 0 lost; on these 2 cores dati, the three "
          "masters and redis-benchmark share the CPU, so the ceilings do not add up per master)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
