# shellcheck shell=bash disable=SC2034 # sets globals for the caller
# lib.sh — set-up shared by the shell benchmarks (fanout.sh, publish.sh).
# Source it, do not run it. It owns the steps every scenario repeats:
#
#   bench_pg_run SCRIPT     re-runs SCRIPT --inner under
#                           tests/integration/harness.py pg-run (a private
#                           PostgreSQL in a temp dir, removed on any exit)
#   bench_inner_init        --inner only: $tmp, $psql, a copy of herald
#                           ($herald, from $HERALD_BIN or src/herald, so a
#                           rebuild during the run cannot change it)
#   bench_setup_db          herald --migrate; token for bench-user in
#                           bench-tenant/bench-org ($token); feature `bench`
#                           and `*` grants for realtime.subscribe/publish on
#                           bench:*; then $BENCH_SQL, if set (e.g. a
#                           channel rule turning presence on)
#   bench_base_conf         prints the config lines every run shares
#                           (log_level = warn, caps and rates lifted)
#   bench_start_herald CONF LOG
#                           starts $herald on a free port ($hpid, $port) and
#                           polls /readyz (15 s)
#   bench_stop_herald       SIGTERM, SIGKILL after 15 s; $herald_rc
#
# The caller sets BENCH_NAME (prefix of `say`) and cd's to the top of the
# source tree first; it owns its traps (call bench_stop_herald from them).

say() { printf '%s: %s\n' "${BENCH_NAME:-bench}" "$*" >&2; }

bench_pg_run() {
	exec python3 tests/integration/harness.py pg-run -- bash "$1" --inner
}

bench_inner_init() {
	tmp=${HERALD_TMPDIR:?run this script without --inner}
	herald="$tmp/herald"
	cp "${HERALD_BIN:-src/herald}" "$herald"
	psql=(psql -X -q -At -v ON_ERROR_STOP=1 -d "$HERALD_DB")
	hpid=
	port=
	herald_rc=-
}

bench_setup_db() {
	"$herald" --migrate --db "$HERALD_DB" >"$tmp/migrate.log" 2>&1 ||
		{ cat "$tmp/migrate.log" >&2; return 1; }
	token=$("${psql[@]}" -c "SELECT herald.issue_token('bench-user','bench-tenant','bench-org','1 day')")
	# Let everyone in the tenant use the bench:* channels (sql/README.md).
	"${psql[@]}" -c "INSERT INTO herald.features (tenant_id, org_id, feature) VALUES ('bench-tenant', NULL, 'bench') ON CONFLICT DO NOTHING" \
		-c "INSERT INTO herald.grants (tenant_id, org_id, subject, permission, channel_pattern) SELECT 'bench-tenant', NULL, '*', p, 'bench:*' FROM unnest(ARRAY['realtime.subscribe', 'realtime.publish', 'realtime.presence']) AS p ON CONFLICT DO NOTHING" >/dev/null
	if [ -n "${BENCH_SQL-}" ]; then
		"${psql[@]}" -c "$BENCH_SQL" >/dev/null
	fi
}

# SPEC §6 keys only. The per-user/IP caps and rates are set far above any
# load rather than to 0, whose meaning the config table does not fix for them.
bench_base_conf() {
	cat <<'EOF'
log_level = warn
log_format = text
max_connections_per_user = 1000000
max_connections_per_ip = 1000000
subscribe_per_minute = 1000000
publish_per_second = 1000000
EOF
}

bench_start_herald() {
	local conf=$1 log=$2 i
	port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
	herald_rc=-
	"$herald" --config "$conf" --listen "127.0.0.1:$port" --db "$HERALD_DB" --node-id bench \
		>"$log" 2>&1 &
	hpid=$!
	for ((i = 0; i < 300; i++)); do
		kill -0 "$hpid" 2>/dev/null || { say "herald exited during start"; return 1; }
		if curl -fsS -o /dev/null --max-time 1 "http://127.0.0.1:$port/readyz" 2>/dev/null; then
			return 0
		fi
		sleep 0.05
	done
	say "herald not ready after 15 s"
	return 1
}

bench_stop_herald() {
	[ -n "$hpid" ] || return 0
	if kill -0 "$hpid" 2>/dev/null; then
		kill -TERM "$hpid" 2>/dev/null || true
		local i
		for ((i = 0; i < 150; i++)); do
			kill -0 "$hpid" 2>/dev/null || break
			sleep 0.1
		done
		if kill -0 "$hpid" 2>/dev/null; then
			say "herald did not exit 15 s after SIGTERM; SIGKILL"
			kill -KILL "$hpid" 2>/dev/null || true
		fi
	fi
	herald_rc=0
	wait "$hpid" 2>/dev/null || herald_rc=$?
	hpid=
}
