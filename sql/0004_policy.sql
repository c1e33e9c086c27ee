-- herald schema version 4: features, grants, roles and the decision
-- function (SPEC §4, §5.2-5.3).
--
-- The server decides every subscribe, publish and presence read with
-- herald.feature_enabled() and herald.authorize() only; both are
-- replaceable. Any change to these tables NOTIFYs herald_control, and
-- every node re-checks the live streams of that tenant, ending those that
-- lost a channel (herald.forbidden).

-- A feature is off unless enabled; an org row overrides the tenant row.
CREATE TABLE IF NOT EXISTS herald.features (
	tenant_id text NOT NULL,
	org_id    text,
	feature   text NOT NULL CHECK (feature ~ '^[a-z][a-z0-9_-]{0,31}$'),
	enabled   boolean NOT NULL DEFAULT true,
	CONSTRAINT features_unique UNIQUE NULLS NOT DISTINCT (tenant_id, org_id, feature)
);

CREATE TABLE IF NOT EXISTS herald.grants (
	id              bigserial PRIMARY KEY,
	tenant_id       text NOT NULL,
	org_id          text,               -- NULL: every org of the tenant
	subject         text NOT NULL CHECK (subject = '*' OR subject ~ '^(user|role):.+$'),
	permission      text NOT NULL
	                CHECK (permission IN ('realtime.subscribe', 'realtime.publish', 'realtime.presence')),
	channel_pattern text NOT NULL,
	CONSTRAINT grants_unique UNIQUE NULLS NOT DISTINCT
		(tenant_id, org_id, subject, permission, channel_pattern)
);
CREATE INDEX IF NOT EXISTS grants_tenant_permission ON herald.grants (tenant_id, permission);

CREATE TABLE IF NOT EXISTS herald.role_members (
	tenant_id text NOT NULL,
	org_id    text,                     -- NULL: the role holds in every org
	user_id   text NOT NULL,
	role      text NOT NULL,
	CONSTRAINT role_members_unique UNIQUE NULLS NOT DISTINCT (tenant_id, org_id, user_id, role)
);

-- Fills {user_id} and {org_id} in one pass, so that an id containing
-- '{org_id}' (or '*') is only ever text.
CREATE OR REPLACE FUNCTION herald.pattern_expand(body text, user_id text, org_id text)
RETURNS text LANGUAGE plpgsql IMMUTABLE AS $$
DECLARE
	parts text[] := regexp_split_to_array(body, '\{(user_id|org_id)\}');
	tokens text[] := ARRAY(SELECT m[1] FROM regexp_matches(body, '\{(user_id|org_id)\}', 'g') AS m);
	expanded text := parts[1];
BEGIN
	-- A placeholder without a value matches nothing (NULL), never ''.
	FOR i IN 1 .. coalesce(cardinality(tokens), 0) LOOP
		expanded := expanded
			|| CASE tokens[i] WHEN 'user_id' THEN pattern_expand.user_id
			                  ELSE pattern_expand.org_id END
			|| parts[i + 1];
	END LOOP;
	RETURN expanded;
END $$;

-- Pattern forms: exact name; a trailing '*' matches by prefix;
-- {user_id} and {org_id} are replaced by the caller's. The '*' is read
-- from the pattern before substitution. Plain patterns never leave SQL,
-- so the planner inlines this into authorize().
CREATE OR REPLACE FUNCTION herald.channel_matches(pattern text, channel text,
                                                  user_id text, org_id text)
RETURNS boolean LANGUAGE sql IMMUTABLE AS $$
	SELECT CASE
		WHEN strpos(pattern, '{') = 0 THEN
			CASE WHEN right(pattern, 1) = '*' THEN starts_with(channel, left(pattern, -1))
			     ELSE channel = pattern END
		WHEN right(pattern, 1) = '*' THEN
			starts_with(channel, herald.pattern_expand(left(pattern, -1), user_id, org_id))
		ELSE channel = herald.pattern_expand(pattern, user_id, org_id)
	END
$$;

CREATE OR REPLACE FUNCTION herald.feature_enabled(tenant_id text, org_id text, feature text)
RETURNS boolean LANGUAGE sql STABLE AS $$
	SELECT coalesce(
		(SELECT f.enabled FROM herald.features f
		 WHERE f.tenant_id = feature_enabled.tenant_id AND f.org_id = feature_enabled.org_id
		   AND f.feature = feature_enabled.feature),
		(SELECT f.enabled FROM herald.features f
		 WHERE f.tenant_id = feature_enabled.tenant_id AND f.org_id IS NULL
		   AND f.feature = feature_enabled.feature),
		false)
$$;

-- The one decision function. org_id is the effective org: the session's,
-- or the one a tenant-wide service session named. Replace it to plug in
-- your own policy (same signature); with a mapped session table
-- (a custom resolve_session) it must be replaced too, since this one reads
-- herald.sessions.
CREATE OR REPLACE FUNCTION herald.authorize(session_id bigint, org_id text,
                                            permission text, channel text)
RETURNS boolean LANGUAGE sql STABLE AS $$
	SELECT EXISTS (
		SELECT 1
		FROM herald.sessions s
		JOIN herald.grants g ON g.tenant_id = s.tenant_id
		 AND (g.org_id IS NULL OR g.org_id = authorize.org_id)
		 AND g.permission = authorize.permission
		WHERE s.id = authorize.session_id
		  AND (g.subject = '*' OR g.subject = 'user:' || s.user_id
		       OR EXISTS (SELECT 1 FROM herald.role_members m
		                  WHERE m.tenant_id = s.tenant_id AND m.user_id = s.user_id
		                    AND (m.org_id IS NULL OR m.org_id = authorize.org_id)
		                    AND g.subject = 'role:' || m.role))
		  AND herald.channel_matches(g.channel_pattern, authorize.channel, s.user_id,
		                             authorize.org_id))
$$;

-- Tells every node that the policy of a tenant changed (NULL: of every
-- tenant); call it after changing anything a custom authorize() reads.
CREATE OR REPLACE FUNCTION herald.policy_changed(tenant_id text)
RETURNS void LANGUAGE sql VOLATILE AS $$
	SELECT pg_notify('herald_control', json_build_object('k', 'policy', 'tenant', tenant_id)::text)
$$;

CREATE OR REPLACE FUNCTION herald.policy_notify_change()
RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
	t text;
BEGIN
	IF TG_OP = 'TRUNCATE' THEN
		PERFORM herald.policy_changed(NULL);
		RETURN NULL;
	END IF;
	-- An UPDATE can move a row to another tenant: both are told.
	FOR t IN EXECUTE CASE TG_OP
		WHEN 'INSERT' THEN 'SELECT DISTINCT tenant_id FROM new_rows'
		WHEN 'DELETE' THEN 'SELECT DISTINCT tenant_id FROM old_rows'
		ELSE 'SELECT tenant_id FROM old_rows UNION SELECT tenant_id FROM new_rows' END
	LOOP
		PERFORM herald.policy_changed(t);
	END LOOP;
	RETURN NULL;
END $$;

DO $$
DECLARE
	tbl text;
BEGIN
	FOREACH tbl IN ARRAY ARRAY['features', 'grants', 'role_members'] LOOP
		EXECUTE format('DROP TRIGGER IF EXISTS %1$s_notify_insert ON herald.%1$s', tbl);
		EXECUTE format('DROP TRIGGER IF EXISTS %1$s_notify_update ON herald.%1$s', tbl);
		EXECUTE format('DROP TRIGGER IF EXISTS %1$s_notify_delete ON herald.%1$s', tbl);
		EXECUTE format('DROP TRIGGER IF EXISTS %1$s_notify_truncate ON herald.%1$s', tbl);
		EXECUTE format('CREATE TRIGGER %1$s_notify_insert AFTER INSERT ON herald.%1$s'
		               ' REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT'
		               ' EXECUTE FUNCTION herald.policy_notify_change()', tbl);
		EXECUTE format('CREATE TRIGGER %1$s_notify_update AFTER UPDATE ON herald.%1$s'
		               ' REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows'
		               ' FOR EACH STATEMENT EXECUTE FUNCTION herald.policy_notify_change()', tbl);
		EXECUTE format('CREATE TRIGGER %1$s_notify_delete AFTER DELETE ON herald.%1$s'
		               ' REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT'
		               ' EXECUTE FUNCTION herald.policy_notify_change()', tbl);
		EXECUTE format('CREATE TRIGGER %1$s_notify_truncate AFTER TRUNCATE ON herald.%1$s'
		               ' FOR EACH STATEMENT EXECUTE FUNCTION herald.policy_notify_change()', tbl);
	END LOOP;
END $$;

INSERT INTO herald.schema_migrations (version, name) VALUES (4, 'policy')
ON CONFLICT DO NOTHING;
