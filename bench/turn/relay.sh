#!/usr/bin/env bash
# Benchmarks TURN relaying: Switchboard's embedded TURN server against coturn, same load, same run.
#
#   bench/turn/relay.sh [--flows N] [--rate MBIT] [--duration S] [--size BYTES] [--quick]
#                       [--servers coturn,switchboard] [--switchboard-bin PATH] [--json PATH]
#                       [--rounds K] [--profile SECONDS]
#
# The load comes from coturn's own independent client, `turnutils_uclient`: N sessions, each one
# TURN allocation on UDP that binds a channel to a `turnutils_peer` echo and sends SIZE-byte
# ChannelData payloads every SIZE*8/RATE ms for DURATION seconds. The peer echoes every packet
# back through the same allocation, so each packet crosses the relay twice (client → peer, peer →
# client), like the two directions of a relayed call: N flows of R Mbit/s each way.
#
# The servers run one after the other (never at once: 2 cores), each started fresh on its own
# loopback port with the same TURN REST secret, and stopped by PID whatever happens. Per server:
# CPU (utime+stime from /proc/<pid>/stat around the load), packets and bytes relayed (from the
# client's report; for Switchboard also from /metrics), loss, peak RSS (VmHWM). The generator's
# CPU (uclient + peer) is reported separately. The PASS/FAIL line compares each server's CPU per
# relayed packet with the first coturn's; it is a report, never the exit status.
#
# Servers (--servers, run in the order given; the same kind may repeat, e.g. coturn,coturn to
# see the run-to-run spread): `coturn` (Debian's turnserver), `switchboard` (the embedded TURN
# server of `switchboard serve`), `webrtc-turn` (bench/turn/reference: the webrtc-rs `turn`
# crate with nothing around it), `webrtc-turn-rcvbuf` (the same, its listener's receive buffer
# raised to 4 MiB), `webrtc-turn-1thread` (the same on a current-thread tokio runtime).
#
# --rounds K: the list of servers K times over (coturn, switchboard, coturn, switchboard, …), so
# each kind is measured at several moments of a shared machine; the target line compares means.
#
# --profile S: also `perf record` each server for S seconds of the steady window (cpu-clock,
# DWARF call graphs) and write the top of `perf report` to bench/results/turn-relay-<name>.perf.txt.
# perf costs CPU on the same cores, so the figures of a profiled run are not comparable.
#
# Exit status: 0 when every server ran and relayed the load; 2 when one could not start or its
# client failed.
#
# Environment:
#   SWITCHBOARD_BIN=PATH     run this Switchboard binary instead of building one (release)
#   BENCH_JSON=PATH          where the JSON report goes (default bench/results/turn-relay.json)
#   BENCH_KEEP=1             keep the work directory (logs) instead of deleting it
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
target_dir="${CARGO_TARGET_DIR:-$root/target}"
results="$root/bench/results"
json="${BENCH_JSON:-$results/turn-relay.json}"

flows=50
rate_mbit=1
duration=60
size=1200
servers="coturn,switchboard"
profile_s=0
rounds=1
switchboard_bin="${SWITCHBOARD_BIN:-}"

usage() { sed -n '2,5p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; }
while [[ $# -gt 0 ]]; do
    case "$1" in
        --flows) flows="$2"; shift 2 ;;
        --rate) rate_mbit="$2"; shift 2 ;;
        --duration) duration="$2"; shift 2 ;;
        --size) size="$2"; shift 2 ;;
        --quick) flows=10; duration=10; shift ;;
        --servers) servers="$2"; shift 2 ;;
        --switchboard-bin) switchboard_bin="$2"; shift 2 ;;
        --json) json="$2"; shift 2 ;;
        --profile) profile_s="$2"; shift 2 ;;
        --rounds) rounds="$2"; shift 2 ;;
        -h|--help) usage; exit 0 ;;
        *) echo "unknown argument: $1" >&2; usage >&2; exit 64 ;;
    esac
done
[[ "$profile_s" =~ ^[0-9]+$ ]] || { echo "--profile takes whole seconds" >&2; exit 64; }
for n in "$flows" "$duration" "$size" "$rounds"; do
    [[ "$n" =~ ^[1-9][0-9]*$ ]] || { echo "--flows, --duration, --size and --rounds take positive integers" >&2; exit 64; }
done
# Bounded: a bench run is a few minutes at most, whatever the flags say.
(( flows <= 500 && duration <= 600 && rounds <= 5 )) || { echo "at most 500 flows, 600 s and 5 rounds" >&2; exit 64; }

say() { printf '[turn-relay] %s\n' "$*" >&2; }

# --- tools ------------------------------------------------------------------------------------
if ! command -v turnserver >/dev/null || ! command -v turnutils_uclient >/dev/null \
    || ! command -v turnutils_peer >/dev/null; then
    say "installing coturn (Debian package: turnserver, turnutils_uclient, turnutils_peer)"
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y coturn >&2 || { apt-get update >&2 && apt-get install -y coturn >&2; }
fi
for tool in openssl curl ss awk stdbuf; do
    command -v "$tool" >/dev/null || { say "missing $tool"; exit 2; }
done
if (( profile_s > 0 )) && ! command -v perf >/dev/null; then
    say "--profile needs perf (Debian: linux-perf); running without a profile"
    profile_s=0
fi

reference_bin="$target_dir/release/turn-reference"
if [[ ",$servers," == *",webrtc-turn"* ]]; then
    say "building turn-reference (the webrtc-rs turn crate alone, release)"
    cargo build --release --manifest-path "$here/reference/Cargo.toml" --target-dir "$target_dir"
fi
if [[ ",$servers," == *",switchboard,"* && -z "$switchboard_bin" ]]; then
    say "building switchboard (release)"
    (cd "$root" && cargo build --release -p switchboard)
    switchboard_bin="$target_dir/release/switchboard"
fi

# --- the load ---------------------------------------------------------------------------------
# uclient paces each session with a whole number of milliseconds between packets (`-z`); the
# nearest interval to the asked rate is used and the rate actually offered is reported.
interval_ms="$(awk -v s="$size" -v r="$rate_mbit" 'BEGIN { i = int(s * 8 / (r * 1000) + 0.5); print (i < 1 ? 1 : i) }')"
per_flow_pps="$(awk -v i="$interval_ms" 'BEGIN { printf "%.2f", 1000 / i }')"
offered_mbit="$(awk -v i="$interval_ms" -v s="$size" 'BEGIN { printf "%.3f", s * 8 / i / 1000 }')"
messages=$(( duration * 1000 / interval_ms ))
say "load: $flows flows × $offered_mbit Mbit/s ($size-byte packets every $interval_ms ms, $messages per flow, ${duration} s) each way"

# --- work directory, cleanup ------------------------------------------------------------------
mkdir -p "$results"
work="$(mktemp -d "${TMPDIR:-/tmp}/turn-relay.XXXXXX")"
server_pid=""
peer_pid=""
cleanup() {
    local status=$?
    for pid in $server_pid $peer_pid; do kill "$pid" 2>/dev/null || true; done
    for pid in $server_pid $peer_pid; do wait "$pid" 2>/dev/null || true; done
    cp "$work"/*.log "$results/" 2>/dev/null || true
    if [[ -n "${BENCH_KEEP:-}" ]]; then say "work directory kept: $work"; else rm -rf "$work"; fi
    exit "$status"
}
trap cleanup EXIT
trap 'say "failed (status $?) at line $LINENO: $BASH_COMMAND"' ERR
trap 'say "stopped by a signal"; exit 130' INT TERM

free_udp_port() {
    local port
    for port in $(seq "$1" $(($1 + 500))); do
        if ! ss -Hlun "sport = :$port" | grep -q . && ! ss -Hltn "sport = :$port" | grep -q .; then
            echo "$port"
            return
        fi
    done
    say "no free port from $1"
    return 1
}

# utime+stime of a process, in clock ticks (fields 14 and 15 of /proc/<pid>/stat; the command
# name, field 2, may contain spaces, so count from the closing parenthesis).
cpu_ticks() {
    local stat
    stat="$(cat "/proc/$1/stat")"
    stat="${stat##*) }"
    awk '{ print $12 + $13 }' <<<"$stat"
}
peak_rss_kib() { awk '/^VmHWM:/ { print $2 }' "/proc/$1/status"; }
hz="$(getconf CLK_TCK)"

# CPU of this shell's waited-for children from a saved `times` output (its second line), in
# seconds. `times` itself must run in this shell — in a `$(…)` subshell the children's counters
# start at zero — so the run writes it to a file.
children_cpu_seconds() { # file
    awk 'NR == 2 {
        t = 0
        for (f = 1; f <= 2; f++) { split($f, p, "m"); sub("s", "", p[2]); t += p[1] * 60 + p[2] }
        print t }' "$1"
}

# Prefixes each line of the client's output with the time and the server's CPU ticks at the moment
# it was printed (uclient prints its running totals once a second), using builtins only: no
# process per line. The servers' command names contain no spaces, so the fields are at fixed
# positions.
stamp_lines() { # pid
    local line f
    while IFS= read -r line; do
        f=()
        read -r -a f <"/proc/$1/stat" 2>/dev/null || true
        printf '%s %s %s\n' "$EPOCHREALTIME" "$(( ${f[13]:-0} + ${f[14]:-0} ))" "$line"
    done
}

wait_listening_udp() { # pid port what
    for _ in $(seq 300); do
        kill -0 "$1" 2>/dev/null || return 1
        ss -Hlun "sport = :$2" | grep -q . && return 0
        sleep 0.1
    done
    return 1
}

# --- TURN REST credentials, coturn's scheme (the same for both servers) -----------------------
secret="$(openssl rand -hex 24)"
realm="bench"
# "<expiry>:<user id>"; Switchboard's user ids are numbers (the user need not exist to relay).
turn_user="$(( $(date +%s) + duration + 3600 )):1"
turn_password="$(printf '%s' "$turn_user" | openssl dgst -sha1 -hmac "$secret" -binary | base64)"

# --- the echo peer (shared by every run) ------------------------------------------------------
peer_port="$(free_udp_port 34900)"
turnutils_peer -L 127.0.0.1 -p "$peer_port" >"$work/peer.log" 2>&1 &
peer_pid=$!
wait_listening_udp "$peer_pid" "$peer_port" || { say "turnutils_peer did not start"; exit 2; }

# --- the servers ------------------------------------------------------------------------------
# Each start_* sets server_pid, turn_port and metrics_url ("" when the server has none).
relay_base=41000
start_coturn() { # name
    turn_port="$(free_udp_port 34780)"
    metrics_url=""
    # -n: no configuration file (nothing from /etc); UDP + TCP on one port, no TLS/DTLS, no CLI.
    # Relay threads: coturn's default (one per CPU).
    turnserver -n \
        --listening-ip 127.0.0.1 --relay-ip 127.0.0.1 --listening-port "$turn_port" \
        --use-auth-secret --static-auth-secret "$secret" --realm "$realm" \
        --allow-loopback-peers --no-tls --no-dtls --no-cli --no-rfc5780 \
        --min-port "$relay_base" --max-port $((relay_base + 999)) \
        --log-file "$work/$1.log" --simple-log --no-stdout-log \
        >"$work/$1.stdout.log" 2>&1 &
    server_pid=$!
    wait_listening_udp "$server_pid" "$turn_port"
}

start_switchboard() { # name
    turn_port="$(free_udp_port 34780)"
    [[ -x "$switchboard_bin" ]] || { say "no switchboard binary at $switchboard_bin"; return 1; }
    # The embedded server refuses loopback peers and caps allocations per user by default (10);
    # the bench's echo peer is on loopback, and all flows use one user with two allocations each
    # (uclient first makes an idle "probe" allocation per session, on every server).
    env RUST_LOG=warn \
        SWITCHBOARD_DATABASE_URL="sqlite://$work/$1.db" \
        SWITCHBOARD_TURN_ENABLED=true \
        SWITCHBOARD_TURN_LISTEN="127.0.0.1:$turn_port" \
        SWITCHBOARD_TURN_SECRET="$secret" \
        SWITCHBOARD_TURN_REALM="$realm" \
        SWITCHBOARD_TURN_ALLOW_LOOPBACK_PEERS=true \
        SWITCHBOARD_TURN_USER_QUOTA=$((2 * flows + 10)) \
        SWITCHBOARD_TURN_RELAY_PORT_MIN="$relay_base" \
        SWITCHBOARD_TURN_RELAY_PORT_MAX=$((relay_base + 999)) \
        SWITCHBOARD_TURN_EXTERNAL_IP=127.0.0.1 \
        SWITCHBOARD_TLS_SELF_SIGNED=false \
        "$switchboard_bin" serve --listen 127.0.0.1:0 >"$work/$1.log" 2>&1 &
    server_pid=$!
    metrics_url=""
    for _ in $(seq 300); do
        kill -0 "$server_pid" 2>/dev/null || return 1
        if [[ -z "$metrics_url" ]]; then
            metrics_url="$(sed -n 's/^Switchboard is running on \(https\{0,1\}:\/\/[0-9.:]*\).*/\1/p' "$work/$1.log" | head -n1)"
        fi
        if [[ -n "$metrics_url" ]] && curl -fsSk -o /dev/null "$metrics_url/healthz" 2>/dev/null; then
            metrics_url="$metrics_url/metrics"
            break
        fi
        sleep 0.1
    done
    [[ "$metrics_url" == */metrics ]] || return 1
    wait_listening_udp "$server_pid" "$turn_port"
}

# Sum of every sample of a counter (all label sets), 0 when absent.
metric_sum() { # url name
    [[ -n "$1" ]] || { echo 0; return; }
    curl -fsSk "$1" 2>/dev/null | awk -v n="$2" '$1 == n || index($1, n "{") == 1 { s += $NF } END { printf "%.0f\n", s }'
}

start_webrtc_turn() { # name [listener receive buffer, bytes]
    turn_port="$(free_udp_port 34780)"
    metrics_url=""
    "$reference_bin" "127.0.0.1:$turn_port" "$secret" "$realm" "$relay_base" $((relay_base + 999)) \
        ${2:+"$2"} >"$work/$1.log" 2>&1 &
    server_pid=$!
    wait_listening_udp "$server_pid" "$turn_port"
}

# Datagrams the kernel dropped because a socket's receive buffer was full: on the server's own
# UDP sockets (`ss` skmem `d`, still open), and on the whole machine (/proc/net/snmp).
server_socket_drops() { # pid port: prints "<on the listener> <on the relay sockets>"
    ss -Huanmp 2>/dev/null | awk -v pid="pid=$1," -v port=":$2" '
        index($0, pid) { mine = 1; listener = (substr($4, length($4) - length(port) + 1) == port); next }
        mine && match($0, /,d[0-9]+\)/) { d = substr($0, RSTART + 2, RLENGTH - 3); if (listener) l += d; else r += d }
        { mine = 0 }
        END { print l + 0, r + 0 }'
}
udp_rcvbuf_errors() {
    awk '/^Udp:/ { if (!h) { for (i = 1; i <= NF; i++) if ($i == "RcvbufErrors") c = i; h = 1 } else print $c }' /proc/net/snmp
}
server_rcvbuf() { # pid port: the receive buffer of the server's listener, and of a relay socket
    ss -Huanmp 2>/dev/null | awk -v pid="pid=$1," -v port=":$2" '
        index($0, pid) { mine = 1; listener = (substr($4, length($4) - length(port) + 1) == port); next }
        mine && match($0, /rb[0-9]+/) {
            b = substr($0, RSTART + 2, RLENGTH - 2); if (listener) l = b; else if (!r) r = b }
        { mine = 0 }
        END { print (l ? l : "?"), (r ? r : "?") }' # to the end: an early exit fails `ss` (SIGPIPE)
}

# The same with a 4 MiB receive buffer on the listener (net.core.rmem_max here; a larger request
# is silently capped by the kernel).
start_webrtc_turn_rcvbuf() { start_webrtc_turn "$1" 4194304; }

# The same on a current-thread tokio runtime (one thread instead of one per core).
start_webrtc_turn_1thread() { TURN_REFERENCE_RUNTIME=current-thread start_webrtc_turn "$1"; }

stop_server() {
    kill "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
    server_pid=""
}

# --- one run per server -----------------------------------------------------------------------
rows=()
notes=()
failed=0
run_index=0
IFS=',' read -r -a one_round <<<"$servers"
server_list=()
for _ in $(seq "$rounds"); do server_list+=("${one_round[@]}"); done
for kind in "${server_list[@]}"; do
    run_index=$((run_index + 1))
    name="$kind-$run_index"
    case "$kind" in
        coturn) starter=start_coturn ;;
        switchboard) starter=start_switchboard ;;
        webrtc-turn) starter=start_webrtc_turn ;;
        webrtc-turn-rcvbuf) starter=start_webrtc_turn_rcvbuf ;;
        webrtc-turn-1thread) starter=start_webrtc_turn_1thread ;;
        *) say "unknown server: $kind (coturn, switchboard, webrtc-turn, webrtc-turn-rcvbuf, webrtc-turn-1thread)"; exit 64 ;;
    esac
    say "[$name] starting"
    if ! "$starter" "$name"; then
        say "[$name] did not start; its log:"
        tail -n 20 "$work/$name.log" >&2 2>/dev/null || true
        stop_server
        failed=1
        continue
    fi
    say "[$name] pid $server_pid, TURN on 127.0.0.1:$turn_port; load for ~$((duration + 6)) s"

    metric_packets_before="$(metric_sum "$metrics_url" switchboard_turn_relayed_packets_total)"
    metric_bytes_before="$(metric_sum "$metrics_url" switchboard_turn_relayed_bytes_total)"
    server_before="$(cpu_ticks "$server_pid")"
    peer_before="$(cpu_ticks "$peer_pid")"
    log="$work/$name.uclient.log"
    load_before="$(cut -d' ' -f1 /proc/loadavg)"
    drops_before="$(udp_rcvbuf_errors)"
    perf_pid=""
    if (( profile_s > 0 )); then
        # From 8 s in: after the allocations and uclient's 1–6 s stagger.
        (sleep 8; exec perf record -q -e cpu-clock -F 999 --call-graph dwarf,16384 \
            -p "$server_pid" -o "$work/$name.perf.data" -- sleep "$profile_s") \
            >"$work/$name.perf.log" 2>&1 &
        perf_pid=$!
    fi
    times >"$work/times.before"

    # -c: no RTCP allocation pair (browsers multiplex RTCP); channels (ChannelData), not Send
    # indications; every session starts 1–6 s after the allocations are made (uclient's own
    # stagger). stdbuf: uclient's log goes through stdio, block-buffered on a pipe.
    # The client's exit status travels as the log's last line: a failing command here would
    # trip the ERR trap and `set -e`, and the failure is reported below with the log's tail.
    {
        stdbuf -oL timeout --kill-after=5 $((duration + 90)) \
            turnutils_uclient -c -m "$flows" -l "$size" -n "$messages" -z "$interval_ms" \
            -e 127.0.0.1 -r "$peer_port" -p "$turn_port" -u "$turn_user" -w "$turn_password" \
            127.0.0.1 2>&1 && echo "uclient exit status 0" || echo "uclient exit status $?"
    } | stamp_lines "$server_pid" >"$log"
    client_status="$(sed -n 's/.* uclient exit status \([0-9]*\)$/\1/p' "$log" | tail -n1)"

    times >"$work/times.after"
    server_after="$(cpu_ticks "$server_pid")"
    peer_after="$(cpu_ticks "$peer_pid")"
    rss_kib="$(peak_rss_kib "$server_pid")"
    load_after="$(cut -d' ' -f1 /proc/loadavg)"
    drops_machine=$(( $(udp_rcvbuf_errors) - drops_before ))
    read -r drops_listener drops_relays <<<"$(server_socket_drops "$server_pid" "$turn_port")"
    read -r rcvbuf_listener rcvbuf_relay <<<"$(server_rcvbuf "$server_pid" "$turn_port")"
    metric_packets_after="$(metric_sum "$metrics_url" switchboard_turn_relayed_packets_total)"
    metric_bytes_after="$(metric_sum "$metrics_url" switchboard_turn_relayed_bytes_total)"
    stop_server
    if [[ -n "$perf_pid" ]]; then
        wait "$perf_pid" 2>/dev/null || true
        perf report -i "$work/$name.perf.data" --no-children --percent-limit 0.5 --stdio \
            --sort dso,symbol -g none 2>/dev/null >"$results/turn-relay-$name.perf.txt" || true
        perf report -i "$work/$name.perf.data" --no-children --stdio --sort dso -g none \
            2>/dev/null >"$results/turn-relay-$name.perf-dso.txt" || true
        perf report -i "$work/$name.perf.data" --children --percent-limit 3 --stdio \
            --sort symbol -g none 2>/dev/null >"$results/turn-relay-$name.perf-children.txt" || true
        rm -f "$work/$name.perf.data"
        say "[$name] profile: $results/turn-relay-$name.perf{,-dso,-children}.txt"
    fi
    client_cpu="$(awk -v a="$(children_cpu_seconds "$work/times.before")" \
        -v b="$(children_cpu_seconds "$work/times.after")" 'BEGIN { print b - a }')"

    cp "$log" "$results/turn-relay-$name.uclient.log"
    sent="$(sed -n 's/.*start_mclient: tot_send_msgs=\([0-9]*\), tot_recv_msgs=\([0-9]*\)$/\1/p' "$log" | tail -n1)"
    received="$(sed -n 's/.*start_mclient: tot_send_msgs=\([0-9]*\), tot_recv_msgs=\([0-9]*\)$/\2/p' "$log" | tail -n1)"
    if [[ "$client_status" != 0 || -z "$sent" || -z "$received" || "${sent:-0}" -eq 0 ]]; then
        say "[$name] the client failed (status $client_status); the end of its log:"
        grep -v 'start_mclient: msz=' "$log" | tail -n 15 >&2 || true
        failed=1
        continue
    fi

    # Two views of the same run. Whole run (allocations, stagger and drain included): every
    # packet that came back crossed the relay twice, a lost one once at most, so 2 × received is
    # a lower bound that does not credit a server for what it dropped. Steady state: the window
    # in which every session is sending (from 6 s after the allocations until the first session
    # can finish), from uclient's once-a-second totals and the server's CPU stamped beside them;
    # there too only echoes are counted (2 per echo received), so a lossy server is not credited
    # with packets that never came back.
    rows+=("$(awk -v name="$name" -v kind="$kind" -v flows="$flows" -v duration="$duration" \
        -v sent="$sent" -v recv="$received" -v size="$size" \
        -v scpu="$(( server_after - server_before ))" -v pcpu="$(( peer_after - peer_before ))" \
        -v ccpu="$client_cpu" -v hz="$hz" -v rss="$rss_kib" \
        -v mp="$(( metric_packets_after - metric_packets_before ))" \
        -v mb="$(( metric_bytes_after - metric_bytes_before ))" '
        /Total connect time/ { t_conn = $1 }
        /Average round trip delay/ {
            match($0, /delay [0-9.]+/); rtt = substr($0, RSTART + 6, RLENGTH - 6) + 0
            match($0, /max = [0-9]+/); rtt_max = substr($0, RSTART + 6, RLENGTH - 6) + 0
        }
        /start_mclient: msz=/ && t_conn {
            if (match($0, /msz=[0-9]+/)) msz = substr($0, RSTART + 4, RLENGTH - 4) + 0
            match($0, /tot_send_msgs=[0-9]+/); s = substr($0, RSTART + 14, RLENGTH - 14) + 0
            match($0, /tot_recv_msgs=[0-9]+/); r = substr($0, RSTART + 14, RLENGTH - 14) + 0
            if ($1 >= t_conn + 6.5 && $1 <= t_conn + 1 + duration - 0.5 && msz == flows) {
                if (!n++) { t0 = $1; c0 = $2; p0 = 2 * r }
                t1 = $1; c1 = $2; p1 = 2 * r
            }
        }
        END {
            relayed = 2 * recv
            server_s = scpu / hz
            us_whole = 1e6 * server_s / relayed
            gen_us = 1e6 * (ccpu + pcpu / hz) / relayed
            loss = 100 * (sent - recv) / sent
            if (n >= 3 && t1 > t0 && p1 > p0) {
                w = t1 - t0; pk = p1 - p0; cs = (c1 - c0) / hz
                mbit = pk * size * 8 / w / 1e6; pps = pk / w; cpu = 100 * cs / w
                us = 1e6 * cs / pk
            } else {
                w = 0; mbit = 0; pps = 0; cpu = 0; us = us_whole
            }
            printf "%s %s %d %d %.1f %.1f %.0f %.1f %.2f %.3f %.3f %.2f %.1f %.2f %.1f %d %d %d %.2f %d\n",
                name, kind, sent, recv, w, mbit, pps, cpu, us, (mbit > 0 ? cpu / mbit : 0), loss,
                us_whole, server_s, gen_us, rss / 1024, relayed, mp, mb, rtt, rtt_max
        }' "$log")")
    say "[$name] done: ${rows[-1]}"
    say "[$name] machine load (1-min average) before/after: $load_before / $load_after"
    notes+=("$name: UDP datagrams dropped on full receive buffers: $drops_listener on the server's listener (buffer $rcvbuf_listener B), $drops_relays on its relay sockets ($rcvbuf_relay B), $drops_machine on the whole machine; load average $load_before → $load_after")
    say "${notes[-1]}"
done

# --- report -----------------------------------------------------------------------------------
# A row: name kind sent received window_s mbit pps cpu% us/packet %/mbit loss% us/packet(whole)
#        server_cpu_s generator_us/packet rss_mib relayed metric_packets metric_bytes rtt_ms rtt_max_ms
fields='name kind sent recv window mbit pps cpu us pct loss us_whole server_s gen_us rss relayed mp mb rtt rtt_max'
printf '\nTURN relay: %d flows × %s Mbit/s each way (%d-byte packets), %d s, loopback, %s cores\n\n' \
    "$flows" "$offered_mbit" "$size" "$duration" "$(nproc)"
printf '| server | relayed Mbit/s | packets/s | CPU %% of a core | CPU µs per relayed packet | CPU %% per relayed Mbit/s | loss %% | round trip avg / max | peak RSS | whole run: CPU µs per packet | generator CPU µs per packet |\n'
printf '| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |\n'
for row in "${rows[@]}"; do
    read -r $fields <<<"$row"
    printf '| %s | %s | %s | %s | **%s** | **%s** | %s | %s / %s ms | %s MiB | %s | %s |\n' \
        "$name" "$mbit" "$pps" "$cpu" "$us" "$pct" "$loss" "$rtt" "$rtt_max" "$rss" "$us_whole" "$gen_us"
done
echo
echo "Rates and the first CPU figures: the steady window (every flow sending; length per row in the JSON)."
echo "Whole run: server CPU from before the allocations to the end of the client, over 2 × echoes received."
for note in "${notes[@]}"; do echo "$note"; done
for row in "${rows[@]}"; do
    read -r $fields <<<"$row"
    if [[ "$kind" == switchboard ]]; then
        echo "$name: /metrics counted $mp relayed packets, $mb bytes (the client: $relayed crossings of $sent sent)"
    fi
done

# The target, per kind: the mean CPU per relayed packet of its runs against the mean of coturn's.
echo
printf '%s\n' "${rows[@]}" | awk -v rounds="$rounds" '
    { n[$2]++; us[$2] += $9; whole[$2] += $12; if (!($2 in seen)) { seen[$2] = 1; order[++k] = $2 } }
    END {
        if (!n["coturn"]) { print "target CPU per relayed packet ≤ coturn'"'"'s: no coturn run to compare with"; exit }
        b = us["coturn"] / n["coturn"]; bw = whole["coturn"] / n["coturn"]
        for (i = 1; i <= k; i++) {
            kind = order[i]; if (kind == "coturn") continue
            m = us[kind] / n[kind]; w = whole[kind] / n[kind]
            printf "%s: target CPU per relayed packet ≤ coturn'"'"'s: %s — %.2f µs vs %.2f µs (%.2f×, mean of %d and %d runs); whole run %.2f vs %.2f µs (%.2f×)\n",
                kind, (m <= b ? "PASS" : "FAIL"), m, b, m / b, n[kind], n["coturn"], w, bw, w / bw
        }
    }'
coturn_spread="$(printf '%s\n' "${rows[@]}" | awk '$2 == "coturn" { if (lo == "" || $9 < lo) lo = $9; if ($9 > hi) hi = $9; n++ }
    END { if (n > 1) printf "%.2f–%.2f µs over %d runs (%.0f %%)", lo, hi, n, 100 * (hi - lo) / lo }')"
[[ -z "$coturn_spread" ]] || echo "coturn against itself, the harness's spread on this machine: $coturn_spread"

# --- JSON -------------------------------------------------------------------------------------
{
    printf '{"flows": %d, "rate_mbit_per_flow": %s, "packet_bytes": %d, "duration_s": %d, "interval_ms": %d, "cores": %d, "runs": [' \
        "$flows" "$offered_mbit" "$size" "$duration" "$interval_ms" "$(nproc)"
    sep=""
    for row in "${rows[@]}"; do
        read -r $fields <<<"$row"
        printf '%s{"name": "%s", "server": "%s", "sent": %s, "received": %s, "relayed_packets": %s, "steady_window_s": %s, "relayed_mbit_per_s": %s, "packets_per_s": %s, "cpu_percent": %s, "cpu_us_per_packet": %s, "cpu_percent_per_mbit": %s, "loss_percent": %s, "whole_run_cpu_us_per_packet": %s, "server_cpu_s": %s, "generator_cpu_us_per_packet": %s, "peak_rss_mib": %s, "metric_relayed_packets": %s, "metric_relayed_bytes": %s, "round_trip_avg_ms": %s, "round_trip_max_ms": %s}' \
            "$sep" "$name" "$kind" "$sent" "$recv" "$relayed" "$window" "$mbit" "$pps" "$cpu" "$us" "$pct" "$loss" "$us_whole" "$server_s" "$gen_us" "$rss" "$mp" "$mb" "$rtt" "$rtt_max"
        sep=", "
    done
    printf ']}\n'
} >"$json"
say "JSON report: $json"
[[ $failed -eq 0 ]] || exit 2
