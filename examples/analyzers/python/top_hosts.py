#!/usr/bin/env python3
"""top_hosts.py - a dati analyzer: counts HTTP requests and sessions per
period, as the seed's Node.js example did, and prints the top hosts and
referers.

Hash layout (REDIS_MODE hash, the default): it subscribes to the filter's
channel (record keys) and to the session channel (flow records), and reads
each record's hash with HGETALL. Stream layout (--streams, for REDIS_MODE
stream): it reads the channel's streams, every shard that dati:streams
lists (REDIS_STREAM_SHARDS), in a consumer group, and acknowledges what it
has counted; several copies of it with the same --group share the work.

    python3 top_hosts.py --socket /tmp/redis.sock --channel http_GET
    python3 top_hosts.py --host 127.0.0.1 --port 6379 --period 10
    python3 top_hosts.py --cluster 127.0.0.1:7000,127.0.0.1:7001 --channel http_GET
    python3 top_hosts.py --cluster 127.0.0.1:7000 --streams --group top --consumer c1

--cluster takes seed nodes of a Redis Cluster (redis-py's RedisCluster).
Needs Debian's python3-redis. --idle-exit N ends after N seconds without a
message and prints the totals (for scripts and tests)."""
import argparse
import json
import sys
import time
from collections import Counter

import redis


def connect(a):
    kw = {"password": a.password}
    if a.cluster:
        from redis.cluster import ClusterNode, RedisCluster
        nodes = [ClusterNode(*hp.rsplit(":", 1)) for hp in a.cluster.split(",")]
        return RedisCluster(startup_nodes=nodes, **kw)
    if a.socket:
        return redis.Redis(unix_socket_path=a.socket, **kw)
    return redis.Redis(host=a.host, port=a.port, **kw)


def pubsub_messages(r, a):
    """(channel, data) of the hash layout's messages, or None when quiet.
    In a cluster, PUBLISH reaches every node: one node's subscription will
    do (RedisCluster.pubsub picks one)."""
    ps = r.pubsub()
    ps.subscribe(a.channel, a.sessions)
    print(f"subscribed to {a.channel} and {a.sessions}", flush=True)
    while True:
        m = ps.get_message(timeout=0.2)
        yield (m["channel"].decode(), m["data"]) if m and m["type"] == "message" else None


def stream_keys(r, channel):
    """The channel's stream keys: the shards dati lists in dati:streams, or
    the channel itself (one Redis, one shard)."""
    listed = r.hget("dati:streams", channel)
    return listed.decode().split(",") if listed else [channel]


def stream_messages(r, a):
    """(channel, fields) of the stream layout's entries, read in the
    consumer group a.group on every shard, acknowledged once yielded. The
    shards are read one at a time: in a cluster they live on different
    masters, and one XREADGROUP cannot name keys of several slots."""
    keys = [(a.channel, k) for k in stream_keys(r, a.channel)] + \
           [(a.sessions, k) for k in stream_keys(r, a.sessions)]
    for _, key in keys:
        try:
            r.xgroup_create(key, a.group, id="0", mkstream=True)
        except redis.exceptions.ResponseError as e:
            if "BUSYGROUP" not in str(e):
                raise
    print(f"reading {len(keys)} streams in group {a.group}", flush=True)
    while True:
        got = False
        for channel, key in keys:
            for _, entries in r.xreadgroup(a.group, a.consumer, {key: ">"}, count=500) or []:
                for entry_id, fields in entries:
                    got = True
                    yield channel, fields
                    r.xack(key, a.group, entry_id)
        if not got:
            time.sleep(0.1)
            yield None


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--socket", help="Redis unix socket")
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=6379)
    ap.add_argument("--cluster", help="seed nodes of a Redis Cluster: host:port,host:port")
    ap.add_argument("--password")
    ap.add_argument("--channel", default="http", help="the filter's REDIS_CHANNEL")
    ap.add_argument("--sessions", default="dati:sessions", help="SESSION_CHANNEL")
    ap.add_argument("--streams", action="store_true", help="REDIS_MODE stream: read the streams")
    ap.add_argument("--group", default="top_hosts", help="--streams: the consumer group")
    ap.add_argument("--consumer", default="c1", help="--streams: this consumer's name")
    ap.add_argument("--period", type=float, default=10.0, help="seconds between reports")
    ap.add_argument("--top", type=int, default=5)
    ap.add_argument("--idle-exit", type=float, default=0, help="exit after this long quiet")
    a = ap.parse_args()

    r = connect(a)
    messages = stream_messages(r, a) if a.streams else pubsub_messages(r, a)
    hosts, referers = Counter(), Counter()
    total_requests = total_sessions = requests = sessions = 0
    last_report = last_message = time.monotonic()
    for m in messages:
        now = time.monotonic()
        if m:
            channel, data = m
            last_message = now
            if channel == a.sessions:
                json.loads(data[b"flow"] if a.streams else data)   # a flow record
                sessions += 1
            else:
                requests += 1
                # hash layout: the key (may be gone if it expired meanwhile)
                h = data if a.streams else r.hgetall(data)
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
