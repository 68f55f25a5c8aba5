#!/bin/sh
# requests.sh - a dati analyzer with nothing but redis-cli and the shell:
# counts requests (record keys on the filter's channel) and sessions (flow
# records on the session channel) as they arrive, printing running totals.
#   REDISCLI_AUTH=password sh requests.sh /tmp/redis.sock http dati:sessions
sock=${1:?usage: requests.sh SOCKET [CHANNEL] [SESSION_CHANNEL]}
channel=${2:-http}
sessions=${3:-dati:sessions}
# Not on a terminal, redis-cli prints each message as three lines: "message",
# the channel, the payload. `read` takes them one by one as they come (awk
# would wait for a full input block).
stdbuf -oL redis-cli -s "$sock" --no-auth-warning subscribe "$channel" "$sessions" | {
    requests=0 sessions_seen=0
    while IFS= read -r kind; do
        [ "$kind" = message ] || continue
        IFS= read -r chan && IFS= read -r _payload || break
        if [ "$chan" = "$channel" ]; then
            requests=$((requests + 1))
        elif [ "$chan" = "$sessions" ]; then
            sessions_seen=$((sessions_seen + 1))
        fi
        echo "Requests:$requests Sessions:$sessions_seen"
    done
}
