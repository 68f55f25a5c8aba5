#!/usr/bin/env python3
"""tag_hosts.py - a dati analyzer that talks back: for every HTTP request
record whose Host is in a list, it tags the request's flow and asks dati to
watch it (a record for every later packet of the flow), through the feedback
channel, and counts the acknowledgements.

    python3 tag_hosts.py --socket /tmp/redis.sock --channel http_GET \\
        --hosts www.example.test,cdn.example.test --tag interesting

dati needs FEEDBACK_CHANNEL (here dati:feedback) in its configuration. Each
flow is tagged once. Needs Debian's python3-redis. --idle-exit N ends after N
seconds without a message and prints the totals (for scripts and tests)."""
import argparse
import json
import time

import redis


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--socket", help="Redis unix socket")
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=6379)
    ap.add_argument("--password")
    ap.add_argument("--channel", default="http", help="the filter's REDIS_CHANNEL")
    ap.add_argument("--feedback", default="dati:feedback", help="FEEDBACK_CHANNEL")
    ap.add_argument("--hosts", required=True, help="comma-separated Host values to tag")
    ap.add_argument("--tag", default="interesting")
    ap.add_argument("--no-watch", action="store_true", help="tag only")
    ap.add_argument("--idle-exit", type=float, default=0, help="exit after this long quiet")
    a = ap.parse_args()

    kw = {"password": a.password}
    r = (redis.Redis(unix_socket_path=a.socket, **kw) if a.socket
         else redis.Redis(host=a.host, port=a.port, **kw))
    wanted = set(a.hosts.split(","))
    ps = r.pubsub()
    ps.subscribe(a.channel, a.feedback + ":reply")
    print(f"subscribed to {a.channel}", flush=True)

    tagged, next_id, sent, acked, failed = set(), 1, 0, 0, 0
    last = time.monotonic()
    while True:
        m = ps.get_message(timeout=0.2)
        if m and m["type"] == "message":
            last = time.monotonic()
            if m["channel"].decode() == a.channel:
                rec = r.hgetall(m["data"])          # the record's hash
                host = rec.get(b"http.host", b"").decode("utf-8", "replace")
                flow = int(rec.get(b"flow", 0))
                if host in wanted and flow and flow not in tagged:
                    tagged.add(flow)
                    cmds = [{"tag": a.tag}] + ([] if a.no_watch else [{"watch": True}])
                    for c in cmds:
                        r.publish(a.feedback, json.dumps(dict(id=next_id, flow=flow, **c)))
                        next_id += 1
                        sent += 1
            else:
                ack = json.loads(m["data"])
                if ack["ok"]:
                    acked += 1
                else:
                    failed += 1
                    print(f"refused: {ack}", flush=True)
        if a.idle_exit and time.monotonic() - last >= a.idle_exit:
            break
    print(f"flows tagged {len(tagged)} commands {sent} acknowledged {acked} failed {failed}",
          flush=True)


if __name__ == "__main__":
    main()
