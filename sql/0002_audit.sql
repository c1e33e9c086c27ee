-- herald schema version 2: the audit log (SPEC §4, §8).
--
-- Nodes append rows in batches; nothing in herald reads them back. Every
-- row is also written to the node's JSON-lines log. See sql/README.md for
-- kinds, queries and retention.

CREATE TABLE IF NOT EXISTS herald.audit_log (
	id          bigserial PRIMARY KEY,
	at          timestamptz NOT NULL,
	node_id     text NOT NULL,
	kind        text NOT NULL,
	outcome     text NOT NULL,
	session_id  bigint,
	user_id     text,
	tenant_id   text,
	org_id      text,
	channel     text,
	remote_addr inet,
	detail      jsonb NOT NULL DEFAULT '{}'
);
CREATE INDEX IF NOT EXISTS audit_log_at ON herald.audit_log (at);
CREATE INDEX IF NOT EXISTS audit_log_tenant_kind_at ON herald.audit_log (tenant_id, kind, at);
CREATE INDEX IF NOT EXISTS audit_log_tenant_user_at ON herald.audit_log (tenant_id, user_id, at);
CREATE INDEX IF NOT EXISTS audit_log_session ON herald.audit_log (session_id) WHERE session_id IS NOT NULL;

INSERT INTO herald.schema_migrations (version, name) VALUES (2, 'audit')
ON CONFLICT DO NOTHING;
