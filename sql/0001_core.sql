-- herald schema version 1: sessions, the event log with gap-free
-- per-channel sequences, and in-database publishing.
--
-- Idempotent: `herald --migrate` applies it once and records it in
-- herald.schema_migrations; running it again with psql changes nothing.
-- The database must use the UTF8 encoding (channel digests hash bytes).

CREATE SCHEMA IF NOT EXISTS herald;

CREATE TABLE IF NOT EXISTS herald.schema_migrations (
	version    int PRIMARY KEY,
	name       text NOT NULL,
	applied_at timestamptz NOT NULL DEFAULT now()
);

-- The epoch names this event log: cursors carry it, so a cursor from a
-- restored or recreated database resets instead of skipping events.
CREATE TABLE IF NOT EXISTS herald.meta (
	singleton bool PRIMARY KEY DEFAULT true CHECK (singleton),
	epoch     text NOT NULL CHECK (epoch ~ '^[0-9a-f]{8}$')
);
INSERT INTO herald.meta (epoch)
VALUES (substr(md5(gen_random_uuid()::text), 1, 8))
ON CONFLICT DO NOTHING;

-- Sessions: only the SHA-256 of a token is ever stored.
CREATE TABLE IF NOT EXISTS herald.sessions (
	id         bigserial PRIMARY KEY,
	token_hash bytea NOT NULL UNIQUE CHECK (octet_length(token_hash) = 32),
	kind       text NOT NULL DEFAULT 'user' CHECK (kind IN ('user', 'service')),
	user_id    text NOT NULL,
	tenant_id  text NOT NULL,
	org_id     text,
	features   text[],
	expires_at timestamptz NOT NULL,
	revoked_at timestamptz,
	created_at timestamptz NOT NULL DEFAULT now(),
	CONSTRAINT sessions_user_has_org CHECK (org_id IS NOT NULL OR kind = 'service')
);
CREATE INDEX IF NOT EXISTS sessions_tenant_user ON herald.sessions (tenant_id, user_id);

-- Returns the plaintext token once. 2 x 122 random bits from
-- gen_random_uuid() (pg_strong_random) need no extension.
CREATE OR REPLACE FUNCTION herald.issue_token(
	user_id text, tenant_id text, org_id text, ttl interval,
	kind text DEFAULT 'user', features text[] DEFAULT NULL)
RETURNS text LANGUAGE plpgsql VOLATILE AS $$
DECLARE
	token text := 'hrd_' || encode(uuid_send(gen_random_uuid()) || uuid_send(gen_random_uuid()), 'hex');
BEGIN
	INSERT INTO herald.sessions (token_hash, kind, user_id, tenant_id, org_id, features, expires_at)
	VALUES (sha256(convert_to(token, 'UTF8')), issue_token.kind, issue_token.user_id,
	        issue_token.tenant_id, issue_token.org_id, issue_token.features,
	        now() + issue_token.ttl);
	RETURN token;
END $$;

-- The one lookup the server makes. No row = unknown token; the server
-- judges expiry and revocation itself so that it can audit which it was.
-- Replace it (CREATE OR REPLACE) to map an application's own sessions.
CREATE OR REPLACE FUNCTION herald.resolve_session(token_hash bytea)
RETURNS TABLE (session_id bigint, kind text, user_id text, tenant_id text,
               org_id text, features text[], expires_at timestamptz,
               revoked_at timestamptz)
LANGUAGE sql STABLE AS $$
	SELECT s.id, s.kind, s.user_id, s.tenant_id, s.org_id, s.features,
	       s.expires_at, s.revoked_at
	FROM herald.sessions s
	WHERE s.token_hash = resolve_session.token_hash
$$;

-- One row per channel: seq is bumped in the same transaction that inserts
-- the event, and its row lock is held to commit, so per-channel sequences
-- are gap-free and in commit order (a plain bigserial is neither).
-- Never delete or lower these rows: nodes would take new events for old.
CREATE TABLE IF NOT EXISTS herald.channel_heads (
	tenant_id text NOT NULL,
	org_id    text NOT NULL,
	channel   text NOT NULL,
	seq       bigint NOT NULL,
	PRIMARY KEY (tenant_id, org_id, channel)
);

-- The highest seq retention deleted per channel: a cursor below it cannot
-- be resumed exactly. Kept apart from channel_heads so that trimming never
-- waits on, or deadlocks with, the head row locks publishers hold.
CREATE TABLE IF NOT EXISTS herald.channel_trims (
	tenant_id   text NOT NULL,
	org_id      text NOT NULL,
	channel     text NOT NULL,
	trimmed_seq bigint NOT NULL,
	PRIMARY KEY (tenant_id, org_id, channel)
);

CREATE TABLE IF NOT EXISTS herald.events (
	id           bigserial PRIMARY KEY,
	tenant_id    text NOT NULL,
	org_id       text NOT NULL,
	channel      text NOT NULL
	             CHECK (channel ~ '^[a-z][a-z0-9_-]{0,31}:[A-Za-z0-9_.:-]{1,200}$'),
	seq          bigint NOT NULL,
	type         text NOT NULL CHECK (type ~ '^[A-Za-z0-9_.:-]{1,100}$'),
	data         jsonb NOT NULL,
	published_at timestamptz NOT NULL DEFAULT clock_timestamp(),
	UNIQUE (tenant_id, org_id, channel, seq)
);
CREATE INDEX IF NOT EXISTS events_published_at ON herald.events (published_at);

-- First 12 hex digits of SHA-256 over "<len>:<bytes>" of tenant, org and
-- channel: the digest part of a single-channel cursor (src/cursor.h).
CREATE OR REPLACE FUNCTION herald.channel_digest(tenant_id text, org_id text, channel text)
RETURNS text LANGUAGE sql IMMUTABLE STRICT AS $$
	SELECT substr(encode(sha256(convert_to(
		octet_length($1) || ':' || $1 || octet_length($2) || ':' || $2 ||
		octet_length($3) || ':' || $3, 'UTF8')), 'hex'), 1, 12)
$$;

-- Trusted publishing (HTTP publishes and database code use the same path).
-- Returns the event id, which is also a single-channel resume cursor.
-- SECURITY DEFINER: a role granted EXECUTE can publish without write
-- access to the tables, so it cannot break the sequences by hand.
-- The NOTIFY payload is a JSON header line, then the data; an event whose
-- payload would not fit NOTIFY's 8000-byte limit is sent by reference and
-- the nodes read its data from herald.events.
CREATE OR REPLACE FUNCTION herald.publish(tenant_id text, org_id text, channel text,
                                          type text, data jsonb)
RETURNS text LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	v_seq bigint;
	v_at timestamptz;
	v_hdr jsonb;
	v_payload text;
BEGIN
	IF publish.tenant_id IS NULL OR publish.org_id IS NULL THEN
		RAISE EXCEPTION 'herald.publish: tenant_id and org_id are required';
	END IF;
	IF publish.type LIKE 'herald.%' THEN
		RAISE EXCEPTION 'herald.publish: event types beginning "herald." are reserved';
	END IF;
	INSERT INTO herald.channel_heads AS h (tenant_id, org_id, channel, seq)
	VALUES (publish.tenant_id, publish.org_id, publish.channel, 1)
	ON CONFLICT ON CONSTRAINT channel_heads_pkey DO UPDATE SET seq = h.seq + 1
	RETURNING h.seq INTO v_seq;

	INSERT INTO herald.events (tenant_id, org_id, channel, seq, type, data)
	VALUES (publish.tenant_id, publish.org_id, publish.channel, v_seq, publish.type,
	        coalesce(publish.data, 'null'::jsonb))
	RETURNING published_at INTO v_at;

	v_hdr := jsonb_build_object('t', publish.tenant_id, 'o', publish.org_id,
		'c', publish.channel, 's', v_seq, 'y', publish.type,
		'p', to_char(v_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'));
	v_payload := v_hdr::text || E'\n' || coalesce(publish.data, 'null'::jsonb)::text;
	IF octet_length(v_payload) > 7900 THEN
		v_payload := (v_hdr || '{"r": true}'::jsonb)::text || E'\n';
	END IF;
	PERFORM pg_notify('herald_events', v_payload);

	RETURN (SELECT m.epoch FROM herald.meta m) || '-' ||
	       herald.channel_digest(publish.tenant_id, publish.org_id, publish.channel) ||
	       '-' || v_seq;
END $$;

-- Deletes events older than retention and records, per channel, the
-- highest seq deleted (so older cursors reset). Every node calls it every
-- minute; one does the work at a time, the others return 0 at once.
CREATE OR REPLACE FUNCTION herald.trim_events(retention interval)
RETURNS bigint LANGUAGE plpgsql VOLATILE AS $$
DECLARE
	n bigint;
BEGIN
	IF NOT pg_try_advisory_xact_lock(7283457202) THEN
		RETURN 0;
	END IF;
	WITH d AS (
		DELETE FROM herald.events e WHERE e.published_at < now() - retention
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
	RETURN n;
END $$;

INSERT INTO herald.schema_migrations (version, name) VALUES (1, 'core')
ON CONFLICT DO NOTHING;
