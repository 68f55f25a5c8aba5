#!/usr/bin/env python3
"""top_hosts.py - a dati analyzer: counts HTTP requests and sessions per
period, as the seed's Node.js example did, and prints the top hosts and
referers. It subscribes to the filter's channel (record keys) and to the
session channel (flow records), and reads each record's hash with HGETALL.

    python3 top_hosts.py --socket /tmp/redis.sock --channel http_GET
    python3 top_hosts.py --host 127.0.0.1 --port 6379 --period 10

Needs Debian's python3-redis. --idle-exit N ends after N seconds without a
message and prints the totals (for scripts and tests)."""
import argparse
import json
import sys
import time
from collections import Counter

import redis


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--socket", help="Redis unix socket")
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=6379)
    ap.add_argument("--password")
    ap.add_argument("--channel", default="http", help="the filter's REDIS_CHANNEL")
    ap.add_argument("--sessions", default="dati:sessions", help="SESSION_CHANNEL")
    ap.add_argument("--period", type=float, default=10.0, help="seconds between reports")
    ap.add_argument("--top", type=int, default=5)
    ap.add_argument("--idle-exit", type=float, default=0, help="exit after this long quiet")
    a = ap.parse_args()

    kw = {"password": a.password}
    r = (redis.Redis(unix_socket_path=a.socket, **kw) if a.socket
         else redis.Redis(host=a.host, port=a.port, **kw))
    ps = r.pubsub()
    ps.subscribe(a.channel, a.sessions)
    print(f"subscribed to {a.channel} and {a.sessions}", flush=True)

    hosts, referers = Counter(), Counter()
    total_requests = total_sessions = requests = sessions = 0
    last_report = last_message = time.monotonic()
    while True:
        m = ps.get_message(timeout=0.2)
        now = time.monotonic()
        if m and m["type"] == "message":
            last_message = now
            if m["channel"].decode() == a.sessions:
                json.loads(m["data"])          # a flow record; a real analyzer would use it
                sessions += 1
            else:
                requests += 1
                h = r.hgetall(m["data"])       # may be gone if it expired meanwhile
                if h.get(b"http.host"):
                    hosts[h[b"http.host"].decode("utf-8", "replace")] += 1
                if h.get(b"http.referer"):
                    referers[h[b"http.referer"].decode("utf-8", "replace")] += 1
        if now - last_report >= a.period:
            print(f"Requests:{requests} Sessions:{sessions}", flush=True)
            total_requests += requests
            total_sessions += sessions
            requests = sessions = 0
            last_report = now
        if a.idle_exit and now - last_message >= a.idle_exit:
            break
    total_requests += requests
    total_sessions += sessions
    print(f"total requests {total_requests} sessions {total_sessions}")
    for name, c in (("host", hosts), ("referer", referers)):
        for value, n in c.most_common(a.top):
            print(f"top {name} {n} {value}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
