#!/usr/bin/env bash
# The relay benchmark: one load, through Postfix and through maskrelay, alternated in
# one run on this machine, so that the ratio means something.
#
#   smtp-source (N replies of BYTES, over S reused sessions, as Bob)
#     -> relay under test on 127.0.0.1:2526 (Postfix: durable queue; maskrelay:
#        sender authentication against a loopback DNS server, durable commit)
#     -> smtp-sink on 127.0.0.1:2527 (the smarthost); the clock stops when it has N.
#
# Reports per run: messages/s, peak memory of the relay (proportional set size of all
# of Postfix's processes; of maskrelay's one), and latency from acceptance to
# delivery (p50/p99): maskrelay's from its queue (accepted -> marked sent), Postfix's
# from its log (delay=, arrival -> delivered); for maskrelay also the rate at which
# replies were accepted (accepted_per_s). CPU per message: of the whole machine
# (machine_cpu_us, load generator and sink included, the same for every relay) and,
# for maskrelay, of its own processes (relay_cpu_us): throughput on 2 cores varies by
# ~10% from run to run, CPU per message much less. Then medians and the ratio.
#
# Usage, as root, from the repository:   tests/bench/relay.sh
# Environment:
#   ROUNDS   rounds of (Postfix, maskrelay[, maskrelay on PostgreSQL]) (default 3)
#   N S BYTES  load (default 5000, 20, 10240)
#   SETTLE   seconds before each run (default 60): / is ext4 without a journal here,
#            and a queue that deletes thousands of files slows down the next run if
#            it starts within a minute (see ../shared/bench/README.md)
#   PG       a postgres:// URL: also measure maskrelay on PostgreSQL (fresh database)
#   INSTANCES  with PG: how many `maskrelay serve` processes share that database, as
#            a list: "1 2 3" measures each (default 1); the load is split evenly
#            over them (N and S divided), and memory is their sum
#   EXE      a maskrelay binary (default: built here with cargo build --release)
#   BASE     another maskrelay binary (an earlier commit's, say), run on SQLite beside
#            EXE in every round, in alternating order, as "maskrelay-base": a paired
#            comparison of two builds on the same load and the same machine state
#   AUTH     1 = sender authentication on (default), 0 = off
#   PERF     a path: profile maskrelay's runs with `perf record -g` into PATH.sqlite
#            (PATH.postgres); the profiler's own cost lowers those runs' figures
#   SKIP_POSTFIX  1 = measure maskrelay only (when profiling; no ratio then)
#   KEEP     1 = leave the work directory (/tmp/maskrelay-bench: logs, databases)
# Needs smtp-source, smtp-sink and postfix (Debian's postfix), dnsmasq (dnsmasq-base),
# python3, curl.
set -euo pipefail

ROUNDS=${ROUNDS:-3} N=${N:-5000} S=${S:-20} BYTES=${BYTES:-10240} SETTLE=${SETTLE:-60}
AUTH=${AUTH:-1} PG=${PG:-} TIMEOUT=${TIMEOUT:-600} PERF=${PERF:-} SKIP_POSTFIX=${SKIP_POSTFIX:-0}
BASE=${BASE:-}
INSTANCES=${INSTANCES:-1}
repo=$(cd "$(dirname "$0")/../.." && pwd)
W=/tmp/maskrelay-bench
IN=2526 SINK=2527 HTTP=127.0.0.1:2580 DNS=2553
BOB=bob@bob-mail.test

# shellcheck source=lib.sh
source "$repo/tests/bench/lib.sh"

[[ $(id -u) == 0 ]] || die "run as root (Postfix's master starts as root)"
for t in smtp-source smtp-sink postfix postconf dnsmasq python3 curl; do
    command -v $t >/dev/null || die "$t is missing (apt-get install postfix dnsmasq-base curl)"
done
release_exe

pids=()
cleanup() {
    local p
    for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
    for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
    [[ -f $W/pf/etc/main.cf ]] && postfix -c "$W/pf/etc" stop >/dev/null 2>&1 || true
    ((${KEEP:-0})) || rm -rf "$W"
}
trap cleanup EXIT
trap 'exit 1' INT TERM
rm -rf "$W"
mkdir -p "$W"

# Bob's domain has SPF for loopback, so maskrelay's sender check runs for real.
start_dns $DNS bob-mail.test

# machine_ticks: CPU time the machine has spent busy, in clock ticks.
machine_ticks() { awk '/^cpu / { print $2 + $3 + $4 + $7 + $8 }' /proc/stat; }

# own_ticks PID...: CPU time of the PIDs (user + system), in clock ticks.
own_ticks() {
    local p total=0
    for p in "$@"; do
        total=$((total + $(sed 's/^.*) //' "/proc/$p/stat" | awk '{ print $12 + $13 }')))
    done
    echo "$total"
}

# measure NAME "PID..." "TARGET..." [OWN]: runs the load, split evenly over the
# TARGETs, while the PIDs relay it to the sink (already listening); prints
# "NAME msgs_per_s=.. peak_pss_kb=.. machine_cpu_us=..", and relay_cpu_us if OWN=1
# (the PIDs are the whole relay: Postfix's daemons are not).
measure() {
    local name=$1 relays=$2 targets=($3) own=${4:-0} t0 t1 peak=0 hwm r target srcs=()
    local k=${#targets[@]} m0 m1 o0 o1 hz
    hz=$(getconf CLK_TCK)
    sleep 600 & local watchdog=$!
    m0=$(machine_ticks)
    ((own)) && o0=$(own_ticks $relays)
    t0=$EPOCHREALTIME
    for target in "${targets[@]}"; do
        smtp-source -m $((N / k)) -s $((S / k)) -d -l "$BYTES" -f "$BOB" -t "$TO" "$target" \
            >>"$W/source.out" 2>&1 &
        srcs+=($!)
    done
    while kill -0 "$sink" 2>/dev/null; do
        hwm=0
        for r in $relays; do hwm=$((hwm + $(rss_kb "$r"))); done
        ((hwm > peak)) && peak=$hwm
        kill -0 "$watchdog" 2>/dev/null || { kill "${srcs[@]}" 2>/dev/null; die "$name: timeout"; }
        sleep 0.2
    done
    t1=$EPOCHREALTIME
    m1=$(machine_ticks)
    ((own)) && o1=$(own_ticks $relays)
    kill "$watchdog" 2>/dev/null || true
    wait "${srcs[@]}" 2>/dev/null || true
    local n=$((N / k * k))
    printf '%s msgs_per_s=%s peak_pss_kb=%s machine_cpu_us=%s' "$name" \
        "$(awk -v n=$n -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", n / (b - a) }')" "$peak" \
        $(((m1 - m0) * 1000000 / hz / n))
    ((own)) && printf ' relay_cpu_us=%s' $(((o1 - o0) * 1000000 / hz / n))
    return 0
}

start_sink() {
    # -M N: it exits when the N-th message has arrived: the finish line.
    smtp-sink -u nobody -c -M $((N / ${1:-1} * ${1:-1})) 127.0.0.1:$SINK 1000 >"$W/sink.out" 2>&1 &
    sink=$!
    pids+=($sink)
    until_busy $SINK || die "smtp-sink did not start"
}

postfix_run() {
    local conf=$W/pf/etc spool=$W/pf/spool
    rm -rf "$W/pf"; mkdir -p "$conf" "$spool"; chmod 755 "$W" "$W/pf" "$conf" "$spool"
    local main=/etc/postfix/main.cf dirs
    [[ -e $main ]] || printf 'compatibility_level = 3.6\n' >"$main"
    dirs=$(postconf -h alternate_config_directories 2>/dev/null || true)
    [[ " ${dirs//,/ } " == *" $conf "* ]] || postconf -e "alternate_config_directories = ${dirs:+$dirs, }$conf"
    cat >"$conf/main.cf" <<EOF
compatibility_level = 3.6
queue_directory = $spool
data_directory = $W/pf/data
mail_owner = postfix
setgid_group = postdrop
myhostname = postfix.bench.test
inet_interfaces = loopback-only
inet_protocols = ipv4
mydestination =
local_recipient_maps =
alias_maps =
alias_database =
mynetworks = 127.0.0.0/8
relay_domains = relay.test
relayhost = [127.0.0.1]:$SINK
smtpd_relay_restrictions = permit_mynetworks, reject
default_transport = error:5.7.1 relay.test only
smtp_tls_security_level = none
maillog_file = $W/pf/maillog
maillog_file_prefixes = $W
default_destination_concurrency_limit = 20
in_flow_delay = 0s
EOF
    cat >"$conf/master.cf" <<EOF
127.0.0.1:$IN inet n - n - - smtpd
pickup    unix  n - n 60 1 pickup
cleanup   unix  n - n -  0 cleanup
qmgr      unix  n - n 300 1 qmgr
rewrite   unix  - - n -  - trivial-rewrite
bounce    unix  - - n -  0 bounce
defer     unix  - - n -  0 bounce
trace     unix  - - n -  0 bounce
verify    unix  - - n -  1 verify
flush     unix  n - n 1000? 0 flush
proxymap  unix  - - n -  - proxymap
proxywrite unix - - n -  1 proxymap
smtp      unix  - - n -  - smtp
relay     unix  - - n -  - smtp
showq     unix  n - n -  - showq
error     unix  - - n -  - error
retry     unix  - - n -  - error
discard   unix  - - n -  - discard
anvil     unix  - - n -  1 anvil
scache    unix  - - n -  1 scache
postlog   unix-dgram n - n - 1 postlogd
EOF
    ((SETTLE > 0)) && sleep "$SETTLE"
    postfix -c "$conf" start >/dev/null 2>&1 || die "postfix did not start: $(tail -3 "$W/pf/maillog" 2>/dev/null)"
    until_busy $IN || die "postfix does not listen"
    start_sink
    local master
    master=$(tr -d ' \n' <"$spool/pid/master.pid")
    TO=rcpt@relay.test
    local line
    line=$(measure postfix "$master" 127.0.0.1:$IN)
    sleep 1 # postlogd writes asynchronously
    grep ' status=sent ' "$W/pf/maillog" | sed -n 's/.* delay=\([0-9.]*\),.*/\1/p' >"$W/latency"
    echo "$line $(percentiles "$W/latency")"
    postfix -c "$conf" stop >/dev/null 2>&1 || true
    sleep 1
}

# maskrelay_run DB [INSTANCES] [BINARY] [TAG]: DB is sqlite or a postgres:// URL;
# BINARY (default EXE) is named maskrelay-TAG in the results when TAG is given.
maskrelay_run() {
    local db=$1 instances=${2:-1} exe=${3:-$EXE} tag=${4:+-$4} url
    rm -rf "$W/mr"; mkdir -p "$W/mr"
    maskrelay_env "$db" "$W/mr"
    url=$MASKRELAY_DATABASE_URL
    maskrelay_prepare "$exe" "$W/mr"
    kill -TERM $setup_gw; wait $setup_gw || true
    ((SETTLE > 0)) && sleep "$SETTLE"
    start_sink "$instances"
    # Instance i listens on the base ports + 10 i; each has its own instance id.
    local gws=() targets=() port
    for ((i = 0; i < instances; i++)); do
        port=$((IN + 10 * i))
        MASKRELAY_OUTBOUND_SMARTHOST=smtp://127.0.0.1:$SINK MASKRELAY_INSTANCE_ID=bench-$i \
            MASKRELAY_SMTP_LISTEN=127.0.0.1:$port \
            MASKRELAY_HTTP_LISTEN=127.0.0.1:$((${HTTP##*:} + 10 * i)) \
            "$exe" serve >"$W/mr/serve.$i.log" 2>&1 &
        gws+=($!)
        pids+=($!)
        targets+=(127.0.0.1:$port)
        until_busy $port || die "maskrelay did not start: $(tail -3 "$W/mr/serve.$i.log")"
    done
    local line perf= name=maskrelay$tag-${db%%:*}
    ((instances > 1)) && name+=-x$instances
    if [[ -n $PERF ]]; then
        perf record -F 499 -g -p "${gws[0]}" -o "$PERF.${db%%:*}" >/dev/null 2>&1 &
        perf=$!
    fi
    line=$(measure "$name" "${gws[*]}" "${targets[*]}" 1)
    sleep 1 # the last delivery is marked sent just after the sink has it
    [[ -n $perf ]] && { kill -INT $perf; wait $perf || true; }
    kill -TERM "${gws[@]}"; wait "${gws[@]}" || true
    if [[ $db == sqlite ]]; then
        python3 - "$W/mr/db.sqlite" >"$W/latency" <<'PY'
import sqlite3, sys
query = ("SELECT (d.updated_at - d.created_at) / 1000.0, d.created_at FROM deliveries d "
         "JOIN messages m ON m.id = d.message_id WHERE d.status = 'sent' AND m.origin = 'smtp'")
for (seconds, created) in sqlite3.connect(sys.argv[1]).execute(query):
    print(seconds, created)
PY
    else
        psql "$url" -F ' ' -Atqc "SELECT (d.updated_at - d.created_at) / 1000.0, d.created_at FROM deliveries d JOIN messages m ON m.id = d.message_id WHERE d.status = 'sent' AND m.origin = 'smtp'" >"$W/latency"
        ((${KEEP:-0})) || psql "$db" -qc "DROP DATABASE IF EXISTS maskrelay_bench_$$" >/dev/null
    fi
    echo "$line $(percentiles "$W/latency")"
}

out=$W/results
: >"$out.all"
say "N=$N S=$S BYTES=$BYTES ROUNDS=$ROUNDS SETTLE=$SETTLE auth=$AUTH; each run waits SETTLE first"
for ((r = 1; r <= ROUNDS; r++)); do
    ((SKIP_POSTFIX)) || postfix_run | tee -a "$out.all"
    if [[ -n $BASE ]] && ((r % 2 == 1)); then maskrelay_run sqlite 1 "$BASE" base | tee -a "$out.all"; fi
    maskrelay_run sqlite | tee -a "$out.all"
    if [[ -n $BASE ]] && ((r % 2 == 0)); then maskrelay_run sqlite 1 "$BASE" base | tee -a "$out.all"; fi
    if [[ -n $PG ]]; then
        for k in $INSTANCES; do maskrelay_run "$PG" "$k" | tee -a "$out.all"; done
    fi
done
python3 - "$out.all" <<'PY'
import re, statistics, sys
runs = {}
for line in open(sys.argv[1]):
    name = line.split()[0]
    runs.setdefault(name, []).append({k: float(v) for k, v in re.findall(r"(\w+)=([\d.]+)", line)})
med = {n: {k: statistics.median(r[k] for r in rs) for k in rs[0]} for n, rs in runs.items()}
print("median of each:")
for n, m in med.items():
    own = f"  own {m['relay_cpu_us']:5.0f} µs" if "relay_cpu_us" in m else ""
    print(f"  {n:18} {m['msgs_per_s']:8.1f} msgs/s  p50 {m['p50_ms']:6.0f} ms  p99 {m['p99_ms']:6.0f} ms  peak PSS {m['peak_pss_kb']/1024:6.1f} MB  CPU/msg: machine {m['machine_cpu_us']:5.0f} µs{own}")
for n in med:
    if n != "postfix" and "postfix" in med:
        print(f"  {n} / postfix: {med[n]['msgs_per_s'] / med['postfix']['msgs_per_s']:.2f}x")
PY
