-- herald schema version 3: continuous session validity and stream tickets.
--
-- Any change that can end a session's validity or narrow it (revoked_at
-- set, expires_at moved, features changed, the row deleted) NOTIFYs
-- herald_control, and every node re-checks
-- the affected sessions through herald.resolve_session() and closes their
-- streams (herald.revoked / herald.expired). Applications that map their
-- own session table call herald.sessions_changed() from their triggers.

CREATE OR REPLACE FUNCTION herald.revoke_session(id bigint)
RETURNS boolean LANGUAGE sql VOLATILE AS $$
	WITH r AS (
		UPDATE herald.sessions s SET revoked_at = now()
		WHERE s.id = revoke_session.id AND s.revoked_at IS NULL
		RETURNING 1
	)
	SELECT count(*) > 0 FROM r
$$;

CREATE OR REPLACE FUNCTION herald.revoke_user(tenant_id text, user_id text)
RETURNS integer LANGUAGE sql VOLATILE AS $$
	WITH r AS (
		UPDATE herald.sessions s SET revoked_at = now()
		WHERE s.tenant_id = revoke_user.tenant_id AND s.user_id = revoke_user.user_id
		  AND s.revoked_at IS NULL
		RETURNING 1
	)
	SELECT count(*)::integer FROM r
$$;

-- Tells every node that these sessions may have changed; NULL or an empty
-- array means "re-check every live session". Long lists are sent in
-- several notifications of 300 ids (NOTIFY payloads stay under 8000 bytes).
CREATE OR REPLACE FUNCTION herald.sessions_changed(ids bigint[])
RETURNS void LANGUAGE plpgsql VOLATILE AS $$
DECLARE
	chunk bigint[];
	i int := 1;
	n int := coalesce(cardinality(ids), 0);
BEGIN
	IF n = 0 THEN
		PERFORM pg_notify('herald_control', '{"k":"recheck"}');
		RETURN;
	END IF;
	WHILE i <= n LOOP
		chunk := ids[i:i + 299]; -- 300 ids of up to 20 digits stay under 8000 bytes
		PERFORM pg_notify('herald_control',
			json_build_object('k', 'sessions', 'ids', chunk)::text);
		i := i + 300;
	END LOOP;
END $$;

CREATE OR REPLACE FUNCTION herald.sessions_notify_change()
RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
	changed bigint[];
BEGIN
	-- EXECUTE plans each run for its own row count: a cached plan made
	-- for a one-row revocation made a 2000-row revoke_user take 300 ms.
	IF TG_OP = 'DELETE' THEN
		EXECUTE 'SELECT array_agg(o.id) FROM old_rows o' INTO changed;
	ELSE
		EXECUTE 'SELECT array_agg(n.id) FROM new_rows n JOIN old_rows o ON o.id = n.id'
		        ' WHERE n.revoked_at IS DISTINCT FROM o.revoked_at'
		        '    OR n.expires_at IS DISTINCT FROM o.expires_at'
		        '    OR n.token_hash IS DISTINCT FROM o.token_hash'
		        '    OR n.features IS DISTINCT FROM o.features' INTO changed;
	END IF;
	IF changed IS NOT NULL THEN
		PERFORM herald.sessions_changed(changed);
	END IF;
	RETURN NULL;
END $$;

DROP TRIGGER IF EXISTS sessions_notify_update ON herald.sessions;
CREATE TRIGGER sessions_notify_update AFTER UPDATE ON herald.sessions
	REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
	FOR EACH STATEMENT EXECUTE FUNCTION herald.sessions_notify_change();
DROP TRIGGER IF EXISTS sessions_notify_delete ON herald.sessions;
CREATE TRIGGER sessions_notify_delete AFTER DELETE ON herald.sessions
	REFERENCING OLD TABLE AS old_rows
	FOR EACH STATEMENT EXECUTE FUNCTION herald.sessions_notify_change();

-- Stream tickets (POST /v1/tickets): single-use, short-lived, bound to the
-- session whose token hash they carry (so revoking the session voids them).
-- Only the SHA-256 of a ticket is stored. A used ticket opens a stream
-- again only with a cursor proof made with cursor_key (see src/cursor.h).
CREATE TABLE IF NOT EXISTS herald.tickets (
	ticket_hash        bytea PRIMARY KEY CHECK (octet_length(ticket_hash) = 32),
	token_hash         bytea NOT NULL,
	session_id         bigint NOT NULL,
	created_at         timestamptz NOT NULL DEFAULT now(),
	expires_at         timestamptz NOT NULL, -- for the first use
	session_expires_at timestamptz NOT NULL, -- reuse ends with the session
	used_at            timestamptz
);
CREATE INDEX IF NOT EXISTS tickets_session_expires ON herald.tickets (session_expires_at);

-- The key every node uses to prove ticket cursors. Rotating it makes
-- ticket streams unable to resume by themselves (they need a new ticket).
ALTER TABLE herald.meta ADD COLUMN IF NOT EXISTS cursor_key bytea NOT NULL
	DEFAULT (uuid_send(gen_random_uuid()) || uuid_send(gen_random_uuid()));

-- Deletes tickets that can no longer be used: unused past their first-use
-- window, or whose session has expired. Nodes call it with trim_events.
CREATE OR REPLACE FUNCTION herald.trim_tickets()
RETURNS bigint LANGUAGE sql VOLATILE AS $$
	WITH d AS (
		DELETE FROM herald.tickets t
		WHERE (t.used_at IS NULL AND t.expires_at < now()) OR t.session_expires_at < now()
		RETURNING 1
	)
	SELECT count(*) FROM d
$$;

-- TRUNCATE removes every session: re-check every live stream.
CREATE OR REPLACE FUNCTION herald.sessions_notify_truncate()
RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	PERFORM herald.sessions_changed(NULL);
	RETURN NULL;
END $$;
DROP TRIGGER IF EXISTS sessions_notify_truncate ON herald.sessions;
CREATE TRIGGER sessions_notify_truncate AFTER TRUNCATE ON herald.sessions
	FOR EACH STATEMENT EXECUTE FUNCTION herald.sessions_notify_truncate();

INSERT INTO herald.schema_migrations (version, name) VALUES (3, 'sessions')
ON CONFLICT DO NOTHING;
