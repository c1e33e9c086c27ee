#!/usr/bin/env bash
# demo.sh — try herald in a browser (README command 1).
#
# Builds herald (tests/setup.sh), starts a private PostgreSQL in a temp dir
# (tests/integration/harness.py pg-run), installs the schema, issues a demo
# token and runs `herald --demo` in the foreground on
# 127.0.0.1:${HERALD_PORT:-8080}. Ctrl-C stops herald and PostgreSQL and
# removes the temp dir.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

if [ "${1-}" != "--serve" ]; then
	bash tests/setup.sh
	exec python3 tests/integration/harness.py pg-run -- bash tests/demo.sh --serve
fi

# --serve: inside pg-run, which set HERALD_DB and the PG* variables.
port=${HERALD_PORT:-8080}
herald=${HERALD_BIN:-src/herald}

"$herald" --migrate --db "$HERALD_DB"

psql=(psql -X -q -At -v ON_ERROR_STOP=1 -d "$HERALD_DB")
token=$("${psql[@]}" -c "SELECT herald.issue_token('demo-user','demo-tenant','demo-org','7 days')")
# Let everyone in the tenant use the demo:* channels (sql/README.md).
"${psql[@]}" -c "INSERT INTO herald.features (tenant_id, org_id, feature) VALUES ('demo-tenant', NULL, 'demo') ON CONFLICT DO NOTHING" \
	-c "INSERT INTO herald.grants (tenant_id, org_id, subject, permission, channel_pattern) SELECT 'demo-tenant', NULL, '*', p, 'demo:*' FROM unnest(ARRAY['realtime.subscribe', 'realtime.publish', 'realtime.presence']) AS p ON CONFLICT DO NOTHING" >/dev/null

cat <<EOF

  herald demo — open this URL in a browser:

      http://127.0.0.1:${port}/#token=${token}

  token (Bearer, for curl):  ${token}

  try:  curl -N -H 'Authorization: Bearer ${token}' 'http://127.0.0.1:${port}/v1/stream?channel=demo:lobby'
        curl -H 'Authorization: Bearer ${token}' -H 'Content-Type: application/json' \\
             -d '{"type":"msg","data":{"text":"hi"}}' http://127.0.0.1:${port}/v1/channels/demo:lobby/events

  Ctrl-C stops herald and PostgreSQL and removes the temporary files.

EOF

exec "$herald" --demo --listen "127.0.0.1:${port}" --db "$HERALD_DB" --node-id demo
