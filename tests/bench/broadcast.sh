#!/usr/bin/env bash
# The broadcast benchmark: a broadcast to MEMBERS members into smtp-sink while
# one-to-one replies go through at a steady rate, beside the one-to-one relay
# throughput of the same gateway measured in the same run.
#
#   1. MEMBERS members are registered through the API (the gateway in capture mode).
#   2. One-to-one: smtp-source sends N replies as Bob (S reused sessions) -> maskrelay
#      -> smtp-sink; the clock stops when maskrelay has recorded all N as sent.
#   3. Broadcast: POST /v1/broadcasts to all members, in a category, at the highest
#      rate an organisation may set (broadcast_per_minute 10,000,000, which no
#      machine reaches); the answer comes once they are counted. Meanwhile a
#      client sends one reply every REPLY_MS ms. The clock stops when the broadcast
#      reports every copy sent.
#
# Reports per database: one_to_one_per_s, broadcast_per_s (from the POST, counting
# included) and their ratio, count_ms (the POST, which counts the audience), the
# peaks of maskrelay's memory from step 2 on (peak_pss_kb, peak_anon_kb), and
# reply_p50_ms / reply_p99_ms: for the replies sent during the broadcast, from
# acceptance to the sink's 250, as maskrelay recorded them.
#
# Usage, as root, from the repository:   tests/bench/broadcast.sh
# Environment: MEMBERS (100000), N S BYTES (5000, 20, 10240), REPLY_MS (50),
#   PG (a postgres:// URL: also on PostgreSQL, a fresh database), EXE (a maskrelay
#   binary; default: built here with cargo build --release), AUTH (1: replies' senders
#   checked, as shipped), SQLITE (0: PostgreSQL only), SEED_THREADS (16), KEEP (1:
#   keep the work directory).
# Needs smtp-source and smtp-sink (Debian's postfix), dnsmasq (dnsmasq-base), python3,
# curl, and psql for PG.
set -euo pipefail

MEMBERS=${MEMBERS:-100000} N=${N:-5000} S=${S:-20} BYTES=${BYTES:-10240} REPLY_MS=${REPLY_MS:-50}
PG=${PG:-} AUTH=${AUTH:-1}
repo=$(cd "$(dirname "$0")/../.." && pwd)
W=/tmp/maskrelay-bench-broadcast
IN=2536 SINK=2537 HTTP=127.0.0.1:2590 DNS=2563
BOB=bob@bob-mail.test
# shellcheck source=lib.sh
source "$repo/tests/bench/lib.sh"

[[ $(id -u) == 0 ]] || die "run as root (smtp-sink drops to nobody)"
for t in smtp-source smtp-sink dnsmasq python3 curl; do
    command -v $t >/dev/null || die "$t is missing (apt-get install postfix dnsmasq-base curl)"
done
release_exe

pids=()
cleanup() {
    local p
    for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
    for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
    ((${KEEP:-0})) || rm -rf "$W"
}
trap cleanup EXIT
trap 'exit 1' INT TERM
rm -rf "$W"
mkdir -p "$W"
start_dns $DNS bob-mail.test

# sql QUERY: one number from maskrelay's database.
sql() {
    if [[ $MASKRELAY_DATABASE_URL == sqlite:* ]]; then
        python3 -c 'import sqlite3, sys; print(sqlite3.connect(sys.argv[1]).execute(sys.argv[2]).fetchone()[0])' \
            "${MASKRELAY_DATABASE_URL#sqlite://}" "$1"
    else
        psql "$MASKRELAY_DATABASE_URL" -Atqc "$1"
    fi
}

# rows QUERY: the rows, space-separated, one per line.
rows() {
    if [[ $MASKRELAY_DATABASE_URL == sqlite:* ]]; then
        python3 -c 'import sqlite3, sys
for r in sqlite3.connect(sys.argv[1]).execute(sys.argv[2]): print(*r)' \
            "${MASKRELAY_DATABASE_URL#sqlite://}" "$1"
    else
        psql "$MASKRELAY_DATABASE_URL" -F ' ' -Atqc "$1"
    fi
}

# seed: registers MEMBERS members through the API, SEED_THREADS requests at a time.
seed() {
    python3 - "$HTTP" "$KEY" "$MEMBERS" "${SEED_THREADS:-16}" <<'PY'
import http.client, json, sys, threading
host, key, total, threads = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
def work(first):
    conn = http.client.HTTPConnection(host)
    for i in range(first, total, threads):
        body = json.dumps({"email": f"m{i}@members.test", "name": f"Member {i}"})
        conn.request("PUT", f"/v1/members/m{i}", body,
                     {"Authorization": f"Bearer {key}", "Content-Type": "application/json"})
        r = conn.getresponse(); r.read()
        if r.status not in (200, 201):
            raise SystemExit(f"member m{i}: {r.status}")
workers = [threading.Thread(target=work, args=(k,)) for k in range(threads)]
[t.start() for t in workers]; [t.join() for t in workers]
PY
}

# replier STOPFILE: sends Bob's reply to TO every REPLY_MS ms until STOPFILE exists.
replier() {
    python3 - "$IN" "$BOB" "$TO" "$REPLY_MS" "$1" <<'PY'
import os, smtplib, sys, time
port, bob, to, every, stop = int(sys.argv[1]), sys.argv[2], sys.argv[3], int(sys.argv[4]) / 1000, sys.argv[5]
msg = f"From: {bob}\r\nTo: {to}\r\nSubject: Re: s\r\n\r\nA reply during the broadcast.\r\n"
smtp, sent, due = None, 0, time.monotonic()
while not os.path.exists(stop):
    # A new session every 50 replies, as an MTA would: the listener limits the
    # commands of one session.
    if smtp is None:
        smtp = smtplib.SMTP("127.0.0.1", port, local_hostname="bob-mail.test")
    smtp.sendmail(bob, [to], msg)
    sent += 1
    if sent % 50 == 0:
        smtp.quit()
        smtp = None
    due += every
    time.sleep(max(0.0, due - time.monotonic()))
print(sent)
PY
}

# watch_memory PID STOPFILE OUT: the peaks of PID's memory, in kB, into OUT:
# "peak_pss_kb=.. peak_anon_kb=..". PSS counts the pages of the SQLite file that
# maskrelay reads through its memory map (up to 256 MB, page cache the kernel can
# drop); anonymous memory is what the process itself holds (heap, stacks).
watch_memory() {
    local pss=0 anon=0 now
    while [[ ! -e $2 ]]; do
        now=$(rss_kb "$1")
        ((now > pss)) && pss=$now
        now=$(awk '/^Anonymous:/ {print $2}' "/proc/$1/smaps_rollup" 2>/dev/null || echo 0)
        ((${now:-0} > anon)) && anon=$now
        sleep 0.2
    done
    echo "peak_pss_kb=$pss peak_anon_kb=$anon" >"$3"
}

# run DB: the three steps on DB (sqlite or a postgres:// URL); prints one result line.
run() {
    local db=$1 t0 t1 id count_ms sent gw name=maskrelay-${1%%:*}
    rm -rf "$W/mr"; mkdir -p "$W/mr"
    maskrelay_env "$db" "$W/mr"
    maskrelay_prepare "$EXE" "$W/mr"
    api PUT /v1/categories/news '{"name":"News"}' >/dev/null
    api PATCH /v1/organisation '{"broadcast_per_minute":10000000}' >/dev/null
    say "$name: registering $MEMBERS members"
    t0=$EPOCHREALTIME
    seed
    say "$name: $(awk -v a="$t0" -v b="$EPOCHREALTIME" -v n="$MEMBERS" 'BEGIN { printf "%.0f members/s", n / (b - a) }')"
    kill -TERM $setup_gw; wait $setup_gw || true

    smtp-sink -u nobody -c 127.0.0.1:$SINK 1000 >"$W/sink.out" 2>&1 &
    local sink=$!
    pids+=($sink)
    until_busy $SINK || die "smtp-sink did not start"
    MASKRELAY_OUTBOUND_SMARTHOST=smtp://127.0.0.1:$SINK "$EXE" serve >"$W/mr/serve.log" 2>&1 &
    gw=$!
    pids+=($gw)
    until_busy $IN || die "maskrelay did not start: $(tail -3 "$W/mr/serve.log")"
    watch_memory $gw "$W/mr/stop" "$W/mr/peak" &
    local watcher=$!

    # One-to-one.
    t0=$EPOCHREALTIME
    smtp-source -m "$N" -s "$S" -d -l "$BYTES" -f "$BOB" -t "$TO" 127.0.0.1:$IN >>"$W/source.out" 2>&1
    until (($(sql "SELECT COUNT(*) FROM deliveries d JOIN messages m ON m.id = d.message_id WHERE m.origin = 'smtp' AND d.status = 'sent'") >= N)); do
        sleep 0.05
    done
    t1=$EPOCHREALTIME
    local one_to_one
    one_to_one=$(awk -v a="$t0" -v b="$t1" -v n="$N" 'BEGIN { printf "%.1f", n / (b - a) }')

    # The broadcast, with replies during it.
    replier "$W/mr/stop-replies" >"$W/mr/replies" &
    local replier_pid=$!
    local since_ms
    since_ms=$(python3 -c 'import time; print(int(time.time() * 1000))')
    t0=$EPOCHREALTIME
    id=$(api POST /v1/broadcasts '{"audience":{"all":true},"category":"news","subject":"Open day","text":"Come and see the new floor on Saturday."}' |
        python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')
    count_ms=$(awk -v a="$t0" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.0f", (b - a) * 1000 }')
    # Progress is read as an admin's page would, every two seconds: it counts the
    # copies by status, which costs in proportion to the audience.
    while :; do
        sent=$(curl -sf "http://$HTTP/v1/broadcasts/$id" -H "Authorization: Bearer $KEY" |
            python3 -c 'import json,sys; print(json.load(sys.stdin)["sent"])')
        ((sent >= MEMBERS)) && break
        sleep 2
    done
    t1=$EPOCHREALTIME
    touch "$W/mr/stop-replies"
    wait $replier_pid || die "the replies failed"
    touch "$W/mr/stop"
    wait $watcher
    rows "SELECT (d.updated_at - d.created_at) / 1000.0 FROM deliveries d JOIN messages m ON m.id = d.message_id WHERE m.origin = 'smtp' AND d.status = 'sent' AND d.created_at >= $since_ms" >"$W/latency"
    local broadcast
    broadcast=$(awk -v a="$t0" -v b="$t1" -v n="$MEMBERS" 'BEGIN { printf "%.1f", n / (b - a) }')
    printf '%s members=%s one_to_one_per_s=%s broadcast_per_s=%s ratio=%s count_ms=%s %s replies=%s %s\n' \
        "$name" "$MEMBERS" "$one_to_one" "$broadcast" \
        "$(awk -v a="$broadcast" -v b="$one_to_one" 'BEGIN { printf "%.2f", a / b }')" \
        "$count_ms" "$(cat "$W/mr/peak")" "$(cat "$W/mr/replies")" "$(percentiles "$W/latency" | sed 's/p50/reply_p50/; s/p99/reply_p99/; s/ accepted_per_s=.*//')"
    kill -TERM $gw; wait $gw 2>/dev/null || true
    kill -TERM $sink; wait $sink 2>/dev/null || true
    if [[ $db != sqlite ]] && ! ((${KEEP:-0})); then
        psql "$db" -qc "DROP DATABASE IF EXISTS maskrelay_bench_$$" >/dev/null
    fi
}

say "MEMBERS=$MEMBERS N=$N S=$S BYTES=$BYTES REPLY_MS=$REPLY_MS auth=$AUTH"
# Dead rows of delivered copies pile up in the queue's indexes without vacuum: a
# server with autovacuum off measures something no production server is.
if [[ -n $PG ]] && [[ $(psql "$PG" -Atc 'SHOW autovacuum') != on ]]; then
    say "warning: autovacuum is off on $PG; PostgreSQL's figures will be far below a production server's"
fi
((${SQLITE:-1})) && run sqlite
[[ -n $PG ]] && run "$PG"
exit 0
