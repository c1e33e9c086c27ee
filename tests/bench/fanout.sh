#!/usr/bin/env bash
# fanout.sh — herald's memory per idle stream and one-event fan-out time on
# one node, in one command (tests/bench/README.md explains every number):
#
#   N=10000 bash tests/bench/fanout.sh
#
#   1. builds herald (tests/setup.sh; SKIP_BUILD=1 skips it) and sseload;
#   2. starts a private PostgreSQL through tests/integration/harness.py
#      pg-run, which re-runs this script with --inner and, on exit, Ctrl-C or
#      failure, stops it and removes the temp dir;
#   3. --inner: installs the schema, issues a token, starts a copy of herald
#      (a rebuild of src/herald during the run cannot change it) on a free
#      port with log_level = warn and the per-user/IP caps lifted, and polls
#      /readyz (these steps are tests/bench/lib.sh, shared with publish.sh);
#   4. runs sseload: N streams, server RSS before and after (--rss-pid,
#      idle HOLD seconds), then ROUNDS fan-out rounds of one event each;
#   5. prints a results table, SIGTERMs herald and reports how it exited.
#
# Knobs (environment): N [10000] ROUNDS [20] HOLD [5] SETTLE_MS [1000]
# INTERVAL_MS [200] SOURCES [4] BATCH [500] HERALD_BIN [src/herald]
# SKIP_BUILD [0] SSELOAD [tests/bench/sseload, built here; another path is
# used as is, e.g. a sanitizer build] OUT_DIR [unset: when set, sseload's
# output and the herald log are copied there] BENCH_SQL [unset: SQL run
# after the set-up, e.g. a channel rule turning presence on for bench:*]
# STALLED [0: K more streams that read herald.open and then nothing, the
# slow readers; not in any latency or loss figure] PAYLOAD [unset: bytes of
# each round's POST body, padded, e.g. 16384] HERALD_CONF_EXTRA [unset:
# config lines appended to herald's, e.g. "stream_queue_bytes = 262144"].
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/../.."
BENCH_NAME=fanout
. tests/bench/lib.sh

SSELOAD=${SSELOAD:-tests/bench/sseload}

build_sseload() {
	[ "$SSELOAD" = tests/bench/sseload ] || return 0 # a given binary is used as is
	if [ ! -x "$SSELOAD" ] || [ "$SSELOAD" -ot tests/bench/sseload.c ]; then
		say "building $SSELOAD"
		gcc -O2 -std=c11 -D_GNU_SOURCE -Wall -Wextra -Werror \
			-o "$SSELOAD" tests/bench/sseload.c
	fi
}

if [ "${1-}" != "--inner" ]; then
	if [ "${SKIP_BUILD:-0}" != 1 ]; then
		bash tests/setup.sh
	fi
	build_sseload
	bench_pg_run tests/bench/fanout.sh
fi

# ---- --inner: pg-run set HERALD_DB, PG* and HERALD_TMPDIR ---------------------

N=${N:-10000}
ROUNDS=${ROUNDS:-20}
HOLD=${HOLD:-5}
SETTLE_MS=${SETTLE_MS:-1000}
INTERVAL_MS=${INTERVAL_MS:-200}
SOURCES=${SOURCES:-4}
BATCH=${BATCH:-500}
STALLED=${STALLED:-0}
PAYLOAD=${PAYLOAD-}
bench_inner_init
log="$tmp/herald.log"
out="$tmp/sseload.out"
conf="$tmp/bench.conf"

on_exit() {
	local rc=$?
	bench_stop_herald
	if [ -n "${OUT_DIR-}" ]; then
		mkdir -p "$OUT_DIR"
		cp -f "$log" "$out" "$OUT_DIR/" 2>/dev/null || true
	fi
	if [ "$rc" -ne 0 ] && [ -f "$log" ]; then
		say "failed (exit $rc); herald log, last 40 lines:"
		tail -n 40 "$log" >&2
	fi
	exit "$rc"
}
trap on_exit EXIT
trap 'exit 143' TERM
trap 'exit 130' INT

bench_setup_db
bench_base_conf >"$conf"
if [ -n "${HERALD_CONF_EXTRA-}" ]; then
	printf '%s\n' "$HERALD_CONF_EXTRA" >>"$conf"
fi
bench_start_herald "$conf" "$log"
say "herald pid $hpid on 127.0.0.1:$port; sseload: $N streams (+$STALLED stalled), $ROUNDS rounds"

extra=()
[ "$STALLED" = 0 ] || extra+=(--stalled "$STALLED")
[ -z "$PAYLOAD" ] || extra+=(--payload "$PAYLOAD")
set +e
HERALD_TOKEN=$token "$SSELOAD" --port "$port" --n "$N" --rss-pid "$hpid" --hold "$HOLD" \
	--settle "$SETTLE_MS" --interval "$INTERVAL_MS" --fanout "$ROUNDS" \
	--sources "$SOURCES" --batch "$BATCH" "${extra[@]}" | tee "$out"
load_rc=${PIPESTATUS[0]}
set -e

herald_alive=yes
hwm_kb=
presence_writes=-
overflow_closed=-
if kill -0 "$hpid" 2>/dev/null; then
	hwm_kb=$(awk '$1 == "VmHWM:" { print $2 }' "/proc/$hpid/status")
	# sseload has exited, so every stream is over; herald counts a close when
	# it notices it, hence up to 2 s of polling for the overflow count to
	# reach STALLED (it need not: a stalled stream may end otherwise).
	read -r presence_writes overflow_closed < <(python3 -c 'import sys, time, urllib.request
want = int(sys.argv[2])
for _ in range(20):
    m = {}
    for line in urllib.request.urlopen(sys.argv[1], timeout=5).read().decode().splitlines():
        if line.startswith("herald_presence_writes_total "):
            m["p"] = line.split()[1]
        elif line.startswith("herald_streams_closed_total{reason=\"overflow\"} "):
            m["o"] = line.split()[1]
    if want == 0 or int(float(m.get("o", "0"))) >= want:
        break
    time.sleep(0.1)
print(m.get("p", "-"), m.get("o", "-"))' "http://127.0.0.1:$port/metrics" "$STALLED" || echo - -)
else
	herald_alive="NO (it died during the run)"
fi
t0=$(date +%s.%N)
bench_stop_herald
t1=$(date +%s.%N)

# ---- the table ------------------------------------------------------------------

val() { awk -v k="$1" '$1 == k { v = $2 } END { print (v == "" ? "-" : v) }' "$out"; }
mib() { awk -v kb="$1" 'BEGIN { if (kb == "-" || kb == "") print "-"; else printf "%.1f", kb / 1024 }'; }
warn_lines=$(wc -l <"$log")
payload_line="unpadded (about 60 bytes per POST body)"
[ -z "$PAYLOAD" ] || payload_line="$PAYLOAD bytes per POST body (padded)"
if [ "$STALLED" = 0 ]; then
	stalled_line="none (herald closed $overflow_closed streams for overflow)"
else
	stalled_line="open $(val stalled_open) of $STALLED; herald closed $overflow_closed for overflow (herald_streams_closed_total); read after the rounds: herald.overflow on $(val stalled_overflow), $(val stalled_bench_events) bench events read, $(val stalled_bytes_read) bytes; then ended cleanly $(val stalled_ended_ended), reset or other I/O error $(val stalled_ended_io), still open $(val stalled_still_open)"
fi

cat <<EOF

herald fan-out benchmark — one node, $(nproc) CPUs shared by client and server
  streams requested         $N (+ stalled $STALLED: read herald.open, then nothing until the rounds end)
  event payload             $payload_line
  streams open              $(val open_streams) (failed $(val open_failed))
  open time / rate          $(val open_seconds) s, $(val open_rate) streams/s (per stream p50 $(val open_latency_p50_ms) ms, p99 $(val open_latency_p99_ms) ms)
  presence writes           $presence_writes statements (BENCH_SQL can turn presence on for bench:*)
  server RSS before         $(mib "$(val rss_before_kb)") MiB
  server RSS after          $(mib "$(val rss_after_kb)") MiB (after $HOLD s idle; peak during run $(mib "${hwm_kb:--}") MiB)
  RSS per idle stream       $(val rss_per_stream_bytes) bytes
  server CPU while idle     $(val server_cpu_idle_pct) % of one core
  fan-out rounds            $(val fanout_rounds) of $ROUNDS (one event to every stream)
  first stream got it       median $(val first_median_ms) ms
  fan-out time (last one)   median $(val fanout_median_ms) ms, max $(val fanout_max_ms) ms
  per-stream latency        p50 $(val latency_p50_median_ms) ms, p99 $(val latency_p99_median_ms) ms (medians over rounds)
  publish 201 round trip    median $(val publish_median_ms) ms
  CPU per round             server $(val server_cpu_ms_per_round) ms, client $(val client_cpu_ms_per_round) ms
  events missed             $(val fanout_missed_total) (publish failures $(val publish_failures))
  stalled streams           $stalled_line
  stream errors             connect $(val errors_connect), io $(val errors_io), status $(val errors_status), parse $(val errors_parse), ended by server $(val streams_ended)
  herald alive after load   $herald_alive
  herald SIGTERM            exit $herald_rc after $(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.2f", b - a }') s
  herald log lines (warn+)  $warn_lines
EOF
if [ "$warn_lines" -gt 0 ]; then
	echo "  first herald log lines:"
	head -n 10 "$log" | cut -c1-300 | sed 's/^/    /'
fi

[ "$load_rc" -eq 0 ] && [ "$herald_alive" = yes ] && [ "$herald_rc" -eq 0 ]
