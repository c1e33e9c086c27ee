-- herald schema version 7: per-tenant limits (SPEC §4 herald.limits).
--
-- NULL = the node's config value, 0 = no limit. A change bumps
-- herald.meta.rules_version and NOTIFYs the nodes like a channel rule
-- change, so it applies to the next request on every node, without a
-- restart.
--
-- Idempotent, like every migration.

CREATE TABLE IF NOT EXISTS herald.limits (
	tenant_id                 text PRIMARY KEY,
	max_connections           int CHECK (max_connections >= 0),
	max_connections_per_user  int CHECK (max_connections_per_user >= 0),
	publish_per_second        int CHECK (publish_per_second >= 0),
	subscribe_per_minute      int CHECK (subscribe_per_minute >= 0),
	tenant_publish_per_second int CHECK (tenant_publish_per_second >= 0)
);

DROP TRIGGER IF EXISTS limits_notify ON herald.limits;
CREATE TRIGGER limits_notify AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON herald.limits
	FOR EACH STATEMENT EXECUTE FUNCTION herald.rules_notify_change();

INSERT INTO herald.schema_migrations (version, name) VALUES (7, 'limits')
ON CONFLICT DO NOTHING;
