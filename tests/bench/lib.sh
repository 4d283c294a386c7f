# What the benchmarks in this folder share: messages, waiting for ports, memory and
# latency figures, and the loopback DNS server that publishes SPF for the replying
# member's domain (so that maskrelay's sender check runs for real). Sourced.

say() { printf 'bench: %s\n' "$*" >&2; }
die() { say "error: $*"; exit 1; }
busy() { ss -Hltn "sport = :$1" | grep -q .; }
until_busy() { local i; for ((i = 0; i < 200; i++)); do busy "$1" && return 0; sleep 0.05; done; return 1; }

# percentiles FILE: "p50=.. p99=.." of the numbers (seconds) in FILE, in ms.
percentiles() {
    python3 - "$1" <<'PY'
import sys
rows = [line.split() for line in open(sys.argv[1]) if line.strip()]
v = sorted(float(r[0]) for r in rows)
q = lambda p: v[min(len(v) - 1, int(p * len(v)))] * 1000 if v else float("nan")
out = f"p50_ms={q(0.50):.0f} p99_ms={q(0.99):.0f}"
# maskrelay's rows carry their acceptance time: how fast replies were taken in,
# apart from how fast they went out.
accepted = [float(r[1]) for r in rows if len(r) > 1]
if len(accepted) > 1 and max(accepted) > min(accepted):
    out += f" accepted_per_s={(len(accepted) - 1) * 1000 / (max(accepted) - min(accepted)):.1f}"
print(out)
PY
}

# rss_kb PID: memory of PID and every process of its session (Postfix's master and
# the daemons it forked; maskrelay is one process), as proportional set size, so
# that libraries shared by Postfix's processes count once.
rss_kb() {
    local total=0 p kb
    for p in $(ps -e -o pid=,sid= | awk -v s="$1" '$1 == s || $2 == s { print $1 }'); do
        kb=$(awk '/^Pss:/ {print $2}' "/proc/$p/smaps_rollup" 2>/dev/null || echo 0)
        total=$((total + ${kb:-0}))
    done
    echo "$total"
}

# start_dns PORT DOMAIN: dnsmasq on 127.0.0.1:PORT answering SPF for DOMAIN (loopback
# allowed); its pid is added to `pids`.
start_dns() {
    dnsmasq -k --conf-file=/dev/null --no-resolv --no-hosts --port="$1" --listen-address=127.0.0.1 \
        --bind-interfaces --user=nobody --local=/test/ \
        "--txt-record=$2,v=spf1 ip4:127.0.0.1 -all" >/dev/null 2>&1 &
    pids+=($!)
}

# api METHOD PATH JSON: one call to the API at $HTTP with $KEY.
api() {
    curl -sf -X "$1" "http://$HTTP$2" -H "Authorization: Bearer $KEY" \
        -H 'Content-Type: application/json' -d "$3"
}

# maskrelay_prepare EXE DIR: in DIR, on the database of MASKRELAY_DATABASE_URL (and
# the rest of the environment), creates the organisation (KEY), two DKIM keys as
# shipped (every message signed twice), Alice and Bob, and learns Alice's relay
# address (TO) from one API message written into a capture folder. The capture-mode
# server is left running (setup_gw) for more set-up through `api`.
maskrelay_prepare() {
    local exe=$1 dir=$2 i
    KEY=$(cd "$dir" && "$exe" org create --name Bench --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["api_key"])')
    "$exe" dkim generate --selector ed1 --algorithm ed25519 >/dev/null
    "$exe" dkim generate --selector rsa1 --algorithm rsa >/dev/null
    MASKRELAY_OUTBOUND_CAPTURE_DIR=$dir/capture "$exe" serve >"$dir/setup.log" 2>&1 &
    setup_gw=$!
    until_busy ${HTTP##*:} || die "maskrelay did not start: $(tail -3 "$dir/setup.log")"
    api PUT /v1/members/alice '{"email":"alice@alice-mail.test","name":"Alice"}' >/dev/null
    api PUT /v1/members/bob "{\"email\":\"$BOB\",\"name\":\"Bob\"}" >/dev/null
    api POST /v1/messages '{"from":"alice","to":"bob","subject":"s","text":"t"}' >/dev/null
    for ((i = 0; i < 100; i++)); do ls "$dir"/capture/*.eml >/dev/null 2>&1 && break; sleep 0.05; done
    TO=$(grep -h -m1 '^From:' "$dir"/capture/*.eml | grep -o '[a-z0-9]*@relay.test')
    [[ -n $TO ]] || die "no relay address was captured"
}

# maskrelay_env DB DIR: exports maskrelay's settings for a run on DB (sqlite: a file
# in DIR; or a postgres:// URL: a fresh database maskrelay_bench_<pid> beside it),
# listening on IN and HTTP, asking the DNS server on DNS, with a new secret key;
# AUTH=1 checks senders.
maskrelay_env() {
    local db=$1 dir=$2 url
    if [[ $db == sqlite ]]; then
        url="sqlite://$dir/db.sqlite"
    else
        local name=maskrelay_bench_$$
        psql "$db" -qc "DROP DATABASE IF EXISTS $name" -c "CREATE DATABASE $name" >/dev/null 2>&1
        url="${db%/*}/$name"
    fi
    export MASKRELAY_DATABASE_URL=$url MASKRELAY_HTTP_LISTEN=$HTTP \
        MASKRELAY_SMTP_LISTEN=127.0.0.1:$IN MASKRELAY_RELAY_DOMAIN=relay.test \
        MASKRELAY_DNS_NAMESERVERS=127.0.0.1:$DNS MASKRELAY_SMTP_MAX_CONNECTIONS_PER_IP=1000 \
        MASKRELAY_LOG=${LOG:-warn} MASKRELAY_SECRET_KEY=$(od -An -tx1 -N32 /dev/urandom | tr -d ' \n')
    if [[ ${AUTH:-1} == 1 ]]; then
        export MASKRELAY_SMTP_AUTHENTICATE_SENDERS=true
    else
        export MASKRELAY_SMTP_AUTHENTICATE_SENDERS=false
    fi
}

# release_exe: EXE as given, or the release binary built here from $repo.
release_exe() {
    if [[ -z ${EXE:-} ]]; then
        say "building maskrelay (release)"
        (cd "$repo" && cargo build --release -q -p maskrelay) || die "build failed"
        EXE=$repo/target/release/maskrelay
    fi
}
