#!/usr/bin/env bash
# publish.sh — herald's HTTP publish throughput on one node, grouped commits
# (publish_batch_max = 256) against one transaction per event (= 1), in one
# command (tests/bench/README.md explains every number):
#
#   DURATION=10 bash tests/bench/publish.sh
#
#   1. builds herald and pubload (make src/herald tests/bench/pubload;
#      SKIP_BUILD=1 skips it);
#   2. starts a private PostgreSQL through tests/integration/harness.py
#      pg-run (tests/bench/lib.sh), which re-runs this script with --inner
#      and removes everything on exit, Ctrl-C or failure;
#   3. --inner: installs the schema, issues a token, grants bench:* (lib.sh);
#   4. for each mode in MODES: writes a config with that publish_batch_max,
#      starts a copy of herald, runs pubload (P publishers over C channels,
#      one SSE stream per 32 channels, 1 s warm-up, DURATION s measured,
#      5 s drain), SIGTERMs herald; the database's xact_commit and xid
#      counters are read before and after, with no herald running;
#   5. prints one table row per run.
#
# Knobs (environment): DURATION [10] P [8] C [8] DB_WORKERS [4]
# MODES ["256 1"; a mode is publish_batch_max, optionally ":off" for a run
# with synchronous_commit = off for herald's database, e.g. "256 1 256:off"]
# REPEAT [2: every mode that many times, interleaved] SKIP_BUILD [0]
# HERALD_BIN [src/herald] PUBLOAD [tests/bench/pubload] PERF_DIR [unset: when
# set and perf works, `perf record -g` of herald and the PostgreSQL
# processes for 5 s in the first run of each mode, reports written there;
# those rows are marked *] OUT_DIR [unset: pubload output and herald logs
# are copied there].
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/../.."
BENCH_NAME=publish
. tests/bench/lib.sh

PUBLOAD=${PUBLOAD:-tests/bench/pubload}

if [ "${1-}" != "--inner" ]; then
	if [ "${SKIP_BUILD:-0}" != 1 ]; then
		targets=src/herald
		[ "$PUBLOAD" = tests/bench/pubload ] && targets="$targets tests/bench/pubload"
		# shellcheck disable=SC2086
		make -C . $targets >&2
	fi
	bench_pg_run tests/bench/publish.sh
fi

# ---- --inner: pg-run set HERALD_DB, PG* and HERALD_TMPDIR ---------------------

DURATION=${DURATION:-10}
P=${P:-8}
C=${C:-8}
DB_WORKERS=${DB_WORKERS:-4}
MODES=${MODES:-256 1}
REPEAT=${REPEAT:-2}
bench_inner_init
results="$tmp/results"
: >"$results"
log=
failed=0

# shellcheck disable=SC2317 # called by the trap
on_exit() {
	local rc=$?
	bench_stop_herald
	"${psql[@]}" -c "ALTER DATABASE \"$PGDATABASE\" RESET synchronous_commit" 2>/dev/null || true
	if [ -n "${OUT_DIR-}" ]; then
		mkdir -p "$OUT_DIR"
		cp -f "$tmp"/herald.*.log "$tmp"/pubload.*.out "$tmp"/pubload.*.err "$OUT_DIR/" 2>/dev/null || true
	fi
	if [ "$rc" -ne 0 ] && [ -n "$log" ] && [ -f "$log" ]; then
		say "failed (exit $rc); $log, last 40 lines:"
		tail -n 40 "$log" >&2
	fi
	exit "$rc"
}
trap on_exit EXIT
trap 'exit 143' TERM
trap 'exit 130' INT

bench_setup_db
# The postmaster: its children are the backends and auxiliary processes
# whose CPU is "postgres" in the table.
pg_pid=$(head -n 1 "$tmp/pg/data/postmaster.pid")
pg_pids() { { echo "$pg_pid"; ps -o pid= --ppid "$pg_pid"; } | awk '{ print $1 }' | paste -sd, -; }

# xact_commit of the database and the next transaction id, with no herald
# connected (a backend's counters reach pg_stat_database when it exits).
# The xid difference minus the one this query takes counts the transactions
# that wrote something.
db_counters() {
	local i
	for ((i = 0; i < 100; i++)); do
		[ "$("${psql[@]}" -c "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend' AND pid <> pg_backend_pid()")" = 0 ] && break
		sleep 0.05
	done
	"${psql[@]}" -F ' ' -c "SELECT xact_commit, pg_current_xact_id() FROM pg_stat_database WHERE datname = current_database()"
}

perf_ok=
if [ -n "${PERF_DIR-}" ]; then
	mkdir -p "$PERF_DIR"
	if perf record -q -o /dev/null -- true 2>/dev/null; then
		perf_ok=1
	else
		say "perf does not work here; PERF_DIR ignored"
	fi
fi

# Three summaries of a perf.data: self time by process and library; the
# PostgreSQL phases, time including callees (where the backends' CPU goes:
# parse, plan, SQL-function bodies, PL/pgSQL, commit); the top symbols.
perf_report() {
	local data=$1.data
	{
		echo "== self time by command, library"
		perf report -i "$data" --no-children --sort comm,dso -g none --stdio 2>/dev/null |
			grep -v '^#' | grep -v '^$' | head -n 15
		echo "== PostgreSQL phases, including callees (% of all samples)"
		perf report -i "$data" --children --comm postgres --sort sym -g none --stdio 2>/dev/null |
			grep -E ' (exec_parse_message|exec_bind_message|exec_execute_message|pg_parse_query|pg_analyze_and_rewrite_[a-z]*|pg_plan_query|fmgr_sql|plpgsql_exec_function|CommitTransactionCommand|XLogFlush|PreCommit_Notify|ExecInsert|ProcessIncomingNotify|ProcessClientReadInterrupt|secure_read|secure_write)$' |
			head -n 20
		echo "== top symbols, self time"
		perf report -i "$data" --no-children --sort comm,dso,sym -g none --stdio 2>/dev/null |
			grep -v '^#' | grep -v '^$' | head -n 30
	} >"$1.txt"
}

kv() { awk -v k="$1" '{ for (i = 1; i <= NF; i++) { split($i, a, "="); if (a[1] == k) v = a[2] } } END { print (v == "" ? "-" : v) }' "$2"; }

run=0
for ((r = 1; r <= REPEAT; r++)); do
	for mode in $MODES; do
		run=$((run + 1))
		batch=${mode%%:*}
		sync=on
		[ "$mode" != "$batch" ] && sync=${mode#*:}
		case "$sync" in on | off) ;; *) say "mode $mode: the suffix must be :on or :off"; exit 2 ;; esac
		conf="$tmp/herald.$run.conf"
		log="$tmp/herald.$run.log"
		out="$tmp/pubload.$run.out"
		{
			bench_base_conf
			echo "publish_batch_max = $batch"
			echo "db_workers = $DB_WORKERS"
		} >"$conf"
		if [ "$sync" = off ]; then
			"${psql[@]}" -c "ALTER DATABASE \"$PGDATABASE\" SET synchronous_commit = off"
		else
			"${psql[@]}" -c "ALTER DATABASE \"$PGDATABASE\" RESET synchronous_commit"
		fi
		sync_now=$("${psql[@]}" -c "SHOW synchronous_commit")
		[ "$sync_now" = "$sync" ] || { say "synchronous_commit is $sync_now, wanted $sync"; exit 1; }
		read -r xact0 xid0 < <(db_counters)
		bench_start_herald "$conf" "$log"
		say "run $run: publish_batch_max = $batch, synchronous_commit = $sync, herald pid $hpid, ${DURATION} s"
		perf_mark=
		perf_pid=
		if [ -n "$perf_ok" ] && [ "$r" = 1 ]; then
			perf_mark='*'
			pids="$hpid,$(pg_pids)"
			(sleep 2; exec perf record -q -g -F 499 -p "$pids" -o "$PERF_DIR/perf.$batch$sync.data" -- sleep 5) \
				>"$PERF_DIR/perf.$batch$sync.log" 2>&1 &
			perf_pid=$!
		fi
		set +e
		HERALD_TOKEN=$token "$PUBLOAD" --port "$port" --publishers "$P" --channels "$C" \
			--duration "$DURATION" --progress --cpu "herald:$hpid" --cpu "postgres:$(pg_pids)" \
			>"$out" 2>"$tmp/pubload.$run.err"
		load_rc=$?
		set -e
		if [ -n "$perf_pid" ]; then wait "$perf_pid" || true; fi
		alive=yes
		kill -0 "$hpid" 2>/dev/null || alive=no
		bench_stop_herald
		read -r xact1 xid1 < <(db_counters)
		if [ "$load_rc" -ne 0 ] || [ "$alive" != yes ] || [ "$herald_rc" -ne 0 ]; then
			failed=1
			say "run $run: pubload exit $load_rc, herald alive at the end: $alive, herald exit $herald_rc"
			sed 's/^/    /' "$tmp/pubload.$run.err" | grep -v ' t=.*accepted' | head -n 20 >&2 || true
			[ -s "$log" ] && { say "herald log (first 20 lines):"; head -n 20 "$log" | cut -c1-300 >&2; }
		fi
		if [ -n "$perf_pid" ] && [ -f "$PERF_DIR/perf.$batch$sync.data" ]; then
			perf_report "$PERF_DIR/perf.$batch$sync"
		fi
		acc_total=$(kv accepted_total "$out")
		per_event() { awk -v a="$1" -v n="$acc_total" 'BEGIN { if (n == "-" || n + 0 == 0) print "-"; else printf "%.3f", a / n }'; }
		commits=$((xact1 - xact0))
		writes=$((xid1 - xid0 - 1))
		printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' \
			"$batch" "$sync$perf_mark" "$(kv accepted_per_s "$out")" "$(kv delivered_per_s "$out")" \
			"$(kv publish_rtt_p50_ms "$out")" "$(kv publish_rtt_p99_ms "$out")" \
			"$(kv deliver_p50_ms "$out")" "$(kv deliver_p99_ms "$out")" \
			"$(kv non201 "$out")" "$(kv missed "$out")" \
			"$(per_event "$commits")" "$(per_event "$writes")" \
			"$(kv cpu_herald_pct "$out")" "$(kv cpu_postgres_pct "$out")" "$(kv cpu_pubload_pct "$out")" \
			"$acc_total" "$run" >>"$results"
	done
done
log=

# ---- the table ------------------------------------------------------------------

cat <<EOF

herald publish throughput — one node, $(nproc) CPUs shared by pubload, herald and PostgreSQL
  P = $P publishers (keep-alive, one request in flight each) over C = $C channels,
  $(( (C + 31) / 32 )) SSE stream(s) receiving every channel; warm-up 1 s, window ${DURATION} s,
  db_workers = $DB_WORKERS; PostgreSQL as tests/integration/harness.py starts it (fsync = off)

EOF
{
	printf 'batch_max\tsync_commit\taccepted/s\tdelivered/s\trtt_p50_ms\trtt_p99_ms\tdeliver_p50_ms\tdeliver_p99_ms\tnon201\tmissed\txact_commit/ev\twrite_xacts/ev\tcpu_herald%%\tcpu_postgres%%\tcpu_pubload%%\taccepted_total\trun\n'
	cat "$results"
} | column -t -s $'\t'
[ -n "$perf_ok" ] && echo && echo "  * = perf record ran for 5 s of this run; reports in $PERF_DIR"
echo "  goal: >= 10000 accepted/s on one node"
exit "$failed"
