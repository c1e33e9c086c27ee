-- herald schema version 5: event integrity. Channel rules (payload cap,
-- required schemas, replay retention, presence), event schemas, the
-- checks in-database publishing applies, idempotency keys, and the
-- grouped publish the nodes use.
--
-- Idempotent, like every migration.

-- Bumped by every change to channel_rules or event_schemas (in the same
-- transaction), and sent with the NOTIFY: a node compares it with the
-- version of its compiled copy on every publish, so a change applies to
-- the next publish on every node even before the notification arrives.
ALTER TABLE herald.meta ADD COLUMN IF NOT EXISTS rules_version bigint NOT NULL DEFAULT 0;

-- A rule or schema pattern: an exact channel name, or a prefix ending in
-- '*' ("chat:*", "chat:room-*", "*").
CREATE OR REPLACE FUNCTION herald.rule_pattern_valid(pattern text)
RETURNS boolean LANGUAGE sql IMMUTABLE STRICT AS $$
	SELECT pattern ~ '^[a-z][a-z0-9_-]{0,31}:[A-Za-z0-9_.:-]{1,200}$'
	    OR pattern ~ '^([a-z][a-z0-9_-]{0,31}(:[A-Za-z0-9_.:-]{0,199})?)?\*$'
$$;

CREATE TABLE IF NOT EXISTS herald.channel_rules (
	id              bigserial PRIMARY KEY,
	tenant_id       text,                 -- NULL: every tenant
	channel_pattern text NOT NULL CHECK (herald.rule_pattern_valid(channel_pattern)),
	presence        bool,                 -- NULL: off
	history         interval CHECK (history > interval '0'), -- NULL: history_retention
	max_bytes       int CHECK (max_bytes > 0),               -- NULL: max_event_bytes
	require_schema  bool,                 -- NULL: false
	UNIQUE NULLS NOT DISTINCT (tenant_id, channel_pattern)
);

CREATE TABLE IF NOT EXISTS herald.event_schemas (
	id              bigserial PRIMARY KEY,
	tenant_id       text,                 -- NULL: every tenant
	channel_pattern text NOT NULL CHECK (herald.rule_pattern_valid(channel_pattern)),
	event_type      text NOT NULL CHECK (event_type ~ '^[A-Za-z0-9_.:-]{1,100}$'
	                                     AND event_type NOT LIKE 'herald.%'),
	schema          jsonb NOT NULL,
	UNIQUE NULLS NOT DISTINCT (tenant_id, channel_pattern, event_type)
);

-- How well pattern fits channel: NULL when it does not match; otherwise
-- higher is more specific (an exact name beats every prefix, a longer
-- prefix a shorter one). src/channel.c ranks the same way.
CREATE OR REPLACE FUNCTION herald.rule_rank(pattern text, channel text)
RETURNS int LANGUAGE sql IMMUTABLE STRICT AS $$
	SELECT CASE
		WHEN pattern = channel THEN 1000
		WHEN right(pattern, 1) = '*' AND starts_with(channel, left(pattern, -1))
			THEN length(pattern) - 1
	END
$$;

-- The one rule that applies to a channel (SPEC §4): the tenant's own rows
-- before the all-tenants rows, then the most specific pattern.
CREATE OR REPLACE FUNCTION herald.channel_rule(tenant_id text, channel text)
RETURNS SETOF herald.channel_rules LANGUAGE sql STABLE AS $$
	SELECT r.* FROM herald.channel_rules r
	WHERE (r.tenant_id IS NULL OR r.tenant_id = channel_rule.tenant_id)
	  AND herald.rule_rank(r.channel_pattern, channel_rule.channel) IS NOT NULL
	ORDER BY r.tenant_id IS NULL, herald.rule_rank(r.channel_pattern, channel_rule.channel) DESC
	LIMIT 1
$$;

-- The schema that applies to an event type on a channel, by the same
-- precedence; NULL when none does.
CREATE OR REPLACE FUNCTION herald.event_schema(tenant_id text, channel text, event_type text)
RETURNS jsonb LANGUAGE sql STABLE AS $$
	SELECT s.schema FROM herald.event_schemas s
	WHERE (s.tenant_id IS NULL OR s.tenant_id = event_schema.tenant_id)
	  AND s.event_type = event_schema.event_type
	  AND herald.rule_rank(s.channel_pattern, event_schema.channel) IS NOT NULL
	ORDER BY s.tenant_id IS NULL, herald.rule_rank(s.channel_pattern, event_schema.channel) DESC
	LIMIT 1
$$;

-- Why a JSON Schema cannot be used (NULL: it can, as far as SQL can
-- tell). The keywords herald's validator implements (src/schema.c) are
-- accepted; anything else is named with its location, so a DBA learns at
-- INSERT time rather than from refused publishes. The nodes compile each
-- schema again and refuse what this cannot see (a bad value for a
-- keyword, a regex only PostgreSQL accepts).
CREATE OR REPLACE FUNCTION herald.schema_refusal(schema jsonb, path text DEFAULT '')
RETURNS text LANGUAGE plpgsql IMMUTABLE AS $$
DECLARE
	k text;
	v jsonb;
	why text;
BEGIN
	IF jsonb_typeof(schema) = 'boolean' THEN
		RETURN NULL;
	ELSIF jsonb_typeof(schema) IS DISTINCT FROM 'object' THEN
		RETURN format('%s: a schema must be an object or a boolean', coalesce(nullif(path, ''), '/'));
	END IF;
	FOR k, v IN SELECT * FROM jsonb_each(schema) LOOP
		IF k IN ('not', 'if', 'then', 'else', 'additionalProperties', 'propertyNames',
		         'items', 'contains') THEN
			why := herald.schema_refusal(v, path || '/' || herald.pointer_escape(k));
		ELSIF k IN ('properties', 'patternProperties', '$defs', 'dependentSchemas') THEN
			IF jsonb_typeof(v) <> 'object' THEN
				RETURN format('%s/%s: must be an object', path, herald.pointer_escape(k));
			END IF;
			SELECT x.why INTO why FROM jsonb_each(v) e,
				LATERAL herald.schema_refusal(e.value, path || '/' || herald.pointer_escape(k) ||
				                              '/' || herald.pointer_escape(e.key)) AS x(why)
			WHERE x.why IS NOT NULL LIMIT 1;
		ELSIF k IN ('allOf', 'anyOf', 'oneOf', 'prefixItems') THEN
			IF jsonb_typeof(v) <> 'array' THEN
				RETURN format('%s/%s: must be an array', path, k);
			END IF;
			SELECT x.why INTO why FROM jsonb_array_elements(v) WITH ORDINALITY AS e(value, i),
				LATERAL herald.schema_refusal(e.value, path || '/' || k || '/' || (e.i - 1)) AS x(why)
			WHERE x.why IS NOT NULL LIMIT 1;
		ELSIF k = '$schema' THEN
			IF v <> '"https://json-schema.org/draft/2020-12/schema"' THEN
				RETURN format('%s/$schema: only draft 2020-12 is supported', path);
			END IF;
		ELSIF k = '$ref' THEN
			IF jsonb_typeof(v) <> 'string' OR left(v #>> '{}', 1) <> '#' THEN
				RETURN format('%s/$ref: only local references ("#...") are supported', path);
			END IF;
		ELSIF k = 'pattern' THEN
			BEGIN
				PERFORM '' ~ (v #>> '{}');
			EXCEPTION WHEN invalid_regular_expression THEN
				RETURN format('%s/pattern: invalid regular expression', path);
			END;
		ELSIF k NOT IN ('type', 'enum', 'const', 'multipleOf', 'maximum', 'exclusiveMaximum',
		                'minimum', 'exclusiveMinimum', 'maxLength', 'minLength',
		                'maxItems', 'minItems', 'uniqueItems', 'maxContains', 'minContains',
		                'maxProperties', 'minProperties', 'required', 'dependentRequired',
		                '$comment', 'title', 'description', 'default', 'examples',
		                'deprecated', 'readOnly', 'writeOnly') THEN
			RETURN format('%s: unsupported keyword "%s"', coalesce(nullif(path, ''), '/'), k);
		END IF;
		IF why IS NOT NULL THEN
			RETURN why;
		END IF;
	END LOOP;
	RETURN NULL;
END $$;

CREATE OR REPLACE FUNCTION herald.pointer_escape(name text)
RETURNS text LANGUAGE sql IMMUTABLE STRICT AS $$
	SELECT replace(replace(name, '~', '~0'), '/', '~1')
$$;

CREATE OR REPLACE FUNCTION herald.event_schemas_check()
RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
	why text := herald.schema_refusal(NEW.schema);
BEGIN
	IF why IS NOT NULL THEN
		RAISE EXCEPTION 'herald.event_schemas: schema for "%" refused: %', NEW.event_type, why
			USING ERRCODE = 'invalid_parameter_value';
	END IF;
	RETURN NEW;
END $$;

DROP TRIGGER IF EXISTS event_schemas_check ON herald.event_schemas;
CREATE TRIGGER event_schemas_check BEFORE INSERT OR UPDATE ON herald.event_schemas
	FOR EACH ROW EXECUTE FUNCTION herald.event_schemas_check();

CREATE OR REPLACE FUNCTION herald.rules_notify_change()
RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
	v bigint;
BEGIN
	UPDATE herald.meta SET rules_version = rules_version + 1 RETURNING rules_version INTO v;
	PERFORM pg_notify('herald_control', json_build_object('k', 'rules', 'v', v)::text);
	RETURN NULL;
END $$;

DO $$
DECLARE
	tbl text;
BEGIN
	FOREACH tbl IN ARRAY ARRAY['channel_rules', 'event_schemas'] LOOP
		EXECUTE format('DROP TRIGGER IF EXISTS %1$s_notify ON herald.%1$s', tbl);
		EXECUTE format('CREATE TRIGGER %1$s_notify'
		               ' AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON herald.%1$s'
		               ' FOR EACH STATEMENT EXECUTE FUNCTION herald.rules_notify_change()', tbl);
	END LOOP;
END $$;

-- Replay retention of a channel: its rule's history, else the default.
CREATE OR REPLACE FUNCTION herald.channel_history(tenant_id text, channel text,
                                                  retention interval)
RETURNS interval LANGUAGE sql STABLE AS $$
	SELECT coalesce((SELECT r.history FROM herald.channel_rule($1, $2) r), $3)
$$;

-- Idempotency keys (SPEC §2): scoped to (tenant, org, channel, key), kept
-- as long as the channel's events. body_hash is SHA-256 of the POST body.
CREATE TABLE IF NOT EXISTS herald.idempotency_keys (
	tenant_id  text NOT NULL,
	org_id     text NOT NULL,
	channel    text NOT NULL,
	key        text NOT NULL,
	body_hash  bytea NOT NULL,
	event_id   text,
	created_at timestamptz NOT NULL DEFAULT now(),
	PRIMARY KEY (tenant_id, org_id, channel, key)
);
CREATE INDEX IF NOT EXISTS idempotency_keys_created_at ON herald.idempotency_keys (created_at);

-- Appends one event and NOTIFYs the nodes: the delivery path shared by
-- herald.publish() and the nodes' grouped publishes. It checks nothing
-- beyond what the tables enforce, so only the server may call it.
CREATE OR REPLACE FUNCTION herald.publish_event(tenant_id text, org_id text, channel text,
                                                type text, data jsonb)
RETURNS text LANGUAGE plpgsql VOLATILE AS $$
DECLARE
	v_seq bigint;
	v_at timestamptz;
	v_hdr jsonb;
	v_payload text;
BEGIN
	INSERT INTO herald.channel_heads AS h (tenant_id, org_id, channel, seq)
	VALUES (publish_event.tenant_id, publish_event.org_id, publish_event.channel, 1)
	ON CONFLICT ON CONSTRAINT channel_heads_pkey DO UPDATE SET seq = h.seq + 1
	RETURNING h.seq INTO v_seq;

	INSERT INTO herald.events (tenant_id, org_id, channel, seq, type, data)
	VALUES (publish_event.tenant_id, publish_event.org_id, publish_event.channel, v_seq,
	        publish_event.type, coalesce(publish_event.data, 'null'::jsonb))
	RETURNING published_at INTO v_at;

	-- The NOTIFY payload is a JSON header line, then the data; an event
	-- whose payload would not fit NOTIFY's 8000-byte limit is sent by
	-- reference and the nodes read its data from herald.events.
	v_hdr := jsonb_build_object('t', publish_event.tenant_id, 'o', publish_event.org_id,
		'c', publish_event.channel, 's', v_seq, 'y', publish_event.type,
		'p', to_char(v_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'));
	v_payload := v_hdr::text || E'\n' || coalesce(publish_event.data, 'null'::jsonb)::text;
	IF octet_length(v_payload) > 7900 THEN
		v_payload := (v_hdr || '{"r": true}'::jsonb)::text || E'\n';
	END IF;
	PERFORM pg_notify('herald_events', v_payload);

	RETURN (SELECT m.epoch FROM herald.meta m) || '-' ||
	       herald.channel_digest(publish_event.tenant_id, publish_event.org_id,
	                             publish_event.channel) || '-' || v_seq;
END $$;
REVOKE ALL ON FUNCTION herald.publish_event(text, text, text, text, jsonb) FROM PUBLIC;

-- The payload cap of in-database publishes without a channel rule:
-- the database setting herald.max_event_bytes (bytes), else 64 KiB — the
-- default of the nodes' max_event_bytes.
CREATE OR REPLACE FUNCTION herald.max_event_bytes()
RETURNS bigint LANGUAGE sql STABLE AS $$
	SELECT coalesce(nullif(current_setting('herald.max_event_bytes', true), '')::bigint, 65536)
$$;

-- Trusted in-database publishing (e.g. from triggers). Applies the rules
-- of an HTTP publish that need no JSON Schema: channel and type syntax,
-- reserved types, the payload cap (length(data::text) against the
-- channel rule's max_bytes and herald.max_event_bytes(), the smaller
-- wins) and scope-safe payloads (every tenant_id / org_id member at any
-- depth equals the event's own). Event schemas apply to HTTP publishes
-- only. Returns the event id, which is also a single-channel cursor.
-- SECURITY DEFINER: a role granted EXECUTE can publish without write
-- access to the tables, so it cannot break the sequences by hand.
CREATE OR REPLACE FUNCTION herald.publish(tenant_id text, org_id text, channel text,
                                          type text, data jsonb)
RETURNS text LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	v_cap bigint;
	v_len bigint;
BEGIN
	IF publish.tenant_id IS NULL OR publish.org_id IS NULL THEN
		RAISE EXCEPTION 'herald.publish: tenant_id and org_id are required'
			USING ERRCODE = 'invalid_parameter_value';
	END IF;
	IF publish.channel IS NULL OR
	   publish.channel !~ '^[a-z][a-z0-9_-]{0,31}:[A-Za-z0-9_.:-]{1,200}$' THEN
		RAISE EXCEPTION 'herald.publish: invalid channel name'
			USING ERRCODE = 'invalid_parameter_value';
	END IF;
	IF publish.type IS NULL OR publish.type !~ '^[A-Za-z0-9_.:-]{1,100}$' THEN
		RAISE EXCEPTION 'herald.publish: invalid event type'
			USING ERRCODE = 'invalid_parameter_value';
	END IF;
	IF publish.type LIKE 'herald.%' THEN
		RAISE EXCEPTION 'herald.publish: event types beginning "herald." are reserved'
			USING ERRCODE = 'invalid_parameter_value';
	END IF;
	v_cap := least(herald.max_event_bytes(),
	               (SELECT r.max_bytes FROM herald.channel_rule(publish.tenant_id,
	                                                            publish.channel) r));
	v_len := length(coalesce(publish.data, 'null'::jsonb)::text);
	IF v_len > v_cap THEN
		RAISE EXCEPTION 'herald.publish: payload_too_large: % bytes, the limit is %', v_len, v_cap
			USING ERRCODE = 'program_limit_exceeded';
	END IF;
	IF EXISTS (SELECT 1 FROM jsonb_path_query(publish.data, 'strict $.**.tenant_id') v
	           WHERE v IS DISTINCT FROM to_jsonb(publish.tenant_id))
	OR EXISTS (SELECT 1 FROM jsonb_path_query(publish.data, 'strict $.**.org_id') v
	           WHERE v IS DISTINCT FROM to_jsonb(publish.org_id)) THEN
		RAISE EXCEPTION 'herald.publish: cross_scope_reference: a tenant_id or org_id member differs from the event''s scope'
			USING ERRCODE = 'check_violation';
	END IF;
	RETURN herald.publish_event(publish.tenant_id, publish.org_id, publish.channel,
	                            publish.type, publish.data);
END $$;

-- The nodes' publish: a group of checked HTTP publishes in one
-- transaction, so that they share one commit and one NOTIFY queue lock.
-- Element i of each array is one publish; bodies are the POST bodies
-- ({"type":…,"data":…}), keys the Idempotency-Key (NULL: none) and
-- hashes the SHA-256 of the body in hex. Per publish, outcome is
-- 'created', 'replayed' (the key was used with the same body: event_id is
-- the first publish's) or 'conflict' (used with another body).
-- Locks are taken in phases — every key row, then every channel head —
-- and the nodes sort a group by (tenant, org, channel, key), so two
-- groups committing at once never wait on each other in a cycle.
CREATE OR REPLACE FUNCTION herald.publish_batch(tenants text[], orgs text[], channels text[],
                                                bodies text[], keys text[], hashes text[])
RETURNS TABLE (event_id text, outcome text) LANGUAGE plpgsql VOLATILE AS $$
DECLARE
	n int := coalesce(cardinality(bodies), 0);
	ids text[];
	outcomes text[];
	b jsonb;
	prior record;
BEGIN
	-- A concurrent first use of a key (any node) holds its row until it
	-- commits: the INSERT waits for it, then finds the key taken.
	FOR i IN 1 .. n LOOP
		outcomes[i] := 'created';
		IF keys[i] IS NOT NULL THEN
			INSERT INTO herald.idempotency_keys (tenant_id, org_id, channel, key, body_hash)
			VALUES (tenants[i], orgs[i], channels[i], keys[i], decode(hashes[i], 'hex'))
			ON CONFLICT ON CONSTRAINT idempotency_keys_pkey DO NOTHING;
			IF NOT FOUND THEN
				outcomes[i] := 'seen';
			END IF;
		END IF;
	END LOOP;
	FOR i IN 1 .. n LOOP
		CONTINUE WHEN outcomes[i] = 'seen';
		b := bodies[i]::jsonb;
		ids[i] := herald.publish_event(tenants[i], orgs[i], channels[i], b->>'type', b->'data');
		IF keys[i] IS NOT NULL THEN
			UPDATE herald.idempotency_keys k SET event_id = ids[i]
			WHERE k.tenant_id = tenants[i] AND k.org_id = orgs[i]
			  AND k.channel = channels[i] AND k.key = keys[i];
		END IF;
	END LOOP;
	FOR i IN 1 .. n LOOP
		IF outcomes[i] = 'seen' THEN
			SELECT k.body_hash, k.event_id INTO prior FROM herald.idempotency_keys k
			WHERE k.tenant_id = tenants[i] AND k.org_id = orgs[i]
			  AND k.channel = channels[i] AND k.key = keys[i];
			ids[i] := prior.event_id;
			outcomes[i] := CASE WHEN prior.body_hash = decode(hashes[i], 'hex')
			                    THEN 'replayed' ELSE 'conflict' END;
		END IF;
		event_id := ids[i];
		outcome := outcomes[i];
		RETURN NEXT;
	END LOOP;
END $$;
REVOKE ALL ON FUNCTION herald.publish_batch(text[], text[], text[], text[], text[], text[]) FROM PUBLIC;

-- Deletes events (and idempotency keys) older than their channel's
-- retention — the channel rule's history, else the given default — and
-- records, per channel, the highest seq deleted (so older cursors reset).
-- Every node calls it every minute; one does the work at a time, the
-- others return 0 at once.
CREATE OR REPLACE FUNCTION herald.trim_events(retention interval)
RETURNS bigint LANGUAGE plpgsql VOLATILE AS $$
DECLARE
	n bigint;
	-- Nothing younger than the shortest retention can go: the index
	-- narrows the rows the per-channel rule is evaluated for.
	floor_age interval := least(retention, (SELECT min(r.history) FROM herald.channel_rules r));
BEGIN
	IF NOT pg_try_advisory_xact_lock(7283457202) THEN
		RETURN 0;
	END IF;
	WITH d AS (
		DELETE FROM herald.events e
		WHERE e.published_at < now() - floor_age
		  AND e.published_at < now() - herald.channel_history(e.tenant_id, e.channel, retention)
		RETURNING e.tenant_id, e.org_id, e.channel, e.seq
	), m AS (
		SELECT d.tenant_id, d.org_id, d.channel, max(d.seq) AS top, count(*) AS cnt
		FROM d GROUP BY 1, 2, 3
	), u AS (
		INSERT INTO herald.channel_trims AS t (tenant_id, org_id, channel, trimmed_seq)
		SELECT m.tenant_id, m.org_id, m.channel, m.top FROM m
		ON CONFLICT ON CONSTRAINT channel_trims_pkey
		DO UPDATE SET trimmed_seq = greatest(t.trimmed_seq, excluded.trimmed_seq)
	)
	SELECT coalesce(sum(m.cnt), 0) INTO n FROM m;
	DELETE FROM herald.idempotency_keys k
	WHERE k.created_at < now() - floor_age
	  AND k.created_at < now() - herald.channel_history(k.tenant_id, k.channel, retention);
	RETURN n;
END $$;

-- The same digest as version 1's, declared STABLE like convert_to() and
-- int || text inside it: a function declared more stable than its body is
-- never inlined, and this one was parsed again for every event published.
CREATE OR REPLACE FUNCTION herald.channel_digest(tenant_id text, org_id text, channel text)
RETURNS text LANGUAGE sql STABLE STRICT AS $$
	SELECT substr(encode(sha256(convert_to(
		octet_length($1) || ':' || $1 || octet_length($2) || ':' || $2 ||
		octet_length($3) || ':' || $3, 'UTF8')), 'hex'), 1, 12)
$$;

-- feature_enabled() and the default authorize() in PL/pgSQL. A SQL
-- function with sub-selects is never inlined, so PostgreSQL parsed and
-- planned its body again in every statement that called it — most of a
-- publish's database time; PL/pgSQL keeps its plans for the connection's
-- life. authorize() is replaced only while it is still the default that
-- version 4 installed: a DBA's own is left alone.
CREATE OR REPLACE FUNCTION herald.feature_enabled(tenant_id text, org_id text, feature text)
RETURNS boolean LANGUAGE plpgsql STABLE AS $$
BEGIN
	RETURN coalesce(
		(SELECT f.enabled FROM herald.features f
		 WHERE f.tenant_id = feature_enabled.tenant_id AND f.org_id = feature_enabled.org_id
		   AND f.feature = feature_enabled.feature),
		(SELECT f.enabled FROM herald.features f
		 WHERE f.tenant_id = feature_enabled.tenant_id AND f.org_id IS NULL
		   AND f.feature = feature_enabled.feature),
		false);
END $$;

DO $do$
BEGIN
	IF (SELECT md5(p.prosrc) FROM pg_proc p
	    WHERE p.oid = 'herald.authorize(bigint,text,text,text)'::regprocedure)
	   = '7ffdfd39d7f3ded1301eb50688e733c5' THEN
		CREATE OR REPLACE FUNCTION herald.authorize(session_id bigint, org_id text,
		                                            permission text, channel text)
		RETURNS boolean LANGUAGE plpgsql STABLE AS $fn$
		BEGIN
			RETURN EXISTS (
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
				                             authorize.org_id));
		END $fn$;
	END IF;
END $do$;

INSERT INTO herald.schema_migrations (version, name) VALUES (5, 'integrity')
ON CONFLICT DO NOTHING;
