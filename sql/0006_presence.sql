-- herald schema version 6: presence across the cluster.
--
-- Every node keeps herald.nodes.heartbeat_at fresh and writes, in
-- batches, how many of its streams each user has on each channel whose
-- rule enables presence (herald.presence, one row per node). A member
-- joins when their first stream anywhere opens and leaves when their last
-- one closes; those transitions are decided here, under a lock per
-- member, and sent to every node on herald_presence. A node that stops
-- heartbeating is removed by the survivors, its members' leaves sent.
--
-- Idempotent, like every migration.

CREATE TABLE IF NOT EXISTS herald.nodes (
	node_id      text PRIMARY KEY,
	started_at   timestamptz NOT NULL DEFAULT now(),
	heartbeat_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS herald.presence (
	tenant_id   text NOT NULL,
	org_id      text NOT NULL,
	channel     text NOT NULL,
	user_id     text NOT NULL,
	node_id     text NOT NULL,
	connections int NOT NULL CHECK (connections > 0),
	joined_at   timestamptz NOT NULL DEFAULT now(),
	PRIMARY KEY (tenant_id, org_id, channel, user_id, node_id)
);
CREATE INDEX IF NOT EXISTS presence_node ON herald.presence (node_id);

-- Sets node's connection count of each member (0: none left) and sends
-- herald_presence {"t","o","c","u","a":"join"|"leave","n"} when the
-- member's count over all nodes leaves or reaches 0. The nodes pass
-- members sorted by (tenant, org, channel, user), so the per-member locks
-- are taken in one order everywhere.
CREATE OR REPLACE FUNCTION herald.presence_set(node text, tenants text[], orgs text[],
                                               channels text[], users text[], counts int[])
RETURNS void LANGUAGE plpgsql VOLATILE AS $$
DECLARE
	total_before bigint;
	own_before int;
	total_after bigint;
	action text;
BEGIN
	FOR i IN 1 .. coalesce(cardinality(users), 0) LOOP
		PERFORM pg_advisory_xact_lock(hashtextextended(
			tenants[i] || E'\n' || orgs[i] || E'\n' || channels[i] || E'\n' || users[i], 7283457203));
		SELECT coalesce(sum(p.connections), 0),
		       coalesce(sum(p.connections) FILTER (WHERE p.node_id = node), 0)
		INTO total_before, own_before
		FROM herald.presence p
		WHERE p.tenant_id = tenants[i] AND p.org_id = orgs[i] AND p.channel = channels[i]
		  AND p.user_id = users[i];
		IF counts[i] > 0 THEN
			INSERT INTO herald.presence AS p (tenant_id, org_id, channel, user_id, node_id,
			                                  connections)
			VALUES (tenants[i], orgs[i], channels[i], users[i], node, counts[i])
			ON CONFLICT ON CONSTRAINT presence_pkey DO UPDATE SET connections = excluded.connections;
		ELSE
			DELETE FROM herald.presence p
			WHERE p.tenant_id = tenants[i] AND p.org_id = orgs[i] AND p.channel = channels[i]
			  AND p.user_id = users[i] AND p.node_id = node;
		END IF;
		total_after := total_before - own_before + greatest(counts[i], 0);
		action := CASE WHEN total_before = 0 AND total_after > 0 THEN 'join'
		               WHEN total_before > 0 AND total_after = 0 THEN 'leave' END;
		IF action IS NOT NULL THEN
			PERFORM pg_notify('herald_presence', json_build_object('t', tenants[i],
				'o', orgs[i], 'c', channels[i], 'u', users[i], 'a', action,
				'n', total_after)::text);
		END IF;
	END LOOP;
END $$;

-- Removes every member row of node, sending the leaves that causes.
CREATE OR REPLACE FUNCTION herald.presence_drop_node(node text)
RETURNS void LANGUAGE plpgsql VOLATILE AS $$
DECLARE
	m record;
BEGIN
	SELECT array_agg(p.tenant_id ORDER BY p.tenant_id, p.org_id, p.channel, p.user_id) AS t,
	       array_agg(p.org_id ORDER BY p.tenant_id, p.org_id, p.channel, p.user_id) AS o,
	       array_agg(p.channel ORDER BY p.tenant_id, p.org_id, p.channel, p.user_id) AS c,
	       array_agg(p.user_id ORDER BY p.tenant_id, p.org_id, p.channel, p.user_id) AS u
	INTO m FROM herald.presence p WHERE p.node_id = node;
	IF m.u IS NOT NULL THEN
		PERFORM herald.presence_set(node, m.t, m.o, m.c, m.u,
		                            array_fill(0, ARRAY[cardinality(m.u)]));
	END IF;
END $$;

-- A node's heartbeat: marks node alive and removes the nodes silent for
-- longer than timeout (and presence rows of nodes that have no row).
-- Returns false when node's own row was missing — it had been taken for
-- dead — so that it writes all its members again.
CREATE OR REPLACE FUNCTION herald.node_heartbeat(node text, timeout interval)
RETURNS boolean LANGUAGE plpgsql VOLATILE AS $$
DECLARE
	known boolean;
	dead text;
BEGIN
	UPDATE herald.nodes SET heartbeat_at = now() WHERE node_id = node;
	known := FOUND;
	IF NOT known THEN
		INSERT INTO herald.nodes (node_id) VALUES (node) ON CONFLICT DO NOTHING;
	END IF;
	FOR dead IN
		SELECT n.node_id FROM herald.nodes n
		WHERE n.heartbeat_at < now() - timeout AND n.node_id <> node
		FOR UPDATE SKIP LOCKED
	LOOP
		PERFORM herald.presence_drop_node(dead);
		DELETE FROM herald.nodes WHERE node_id = dead;
	END LOOP;
	FOR dead IN
		SELECT DISTINCT p.node_id FROM herald.presence p
		WHERE NOT EXISTS (SELECT 1 FROM herald.nodes n WHERE n.node_id = p.node_id)
	LOOP
		PERFORM herald.presence_drop_node(dead);
	END LOOP;
	RETURN known;
END $$;

-- A node starting (its rows from an earlier run under the same node id
-- are stale) or stopping: its members leave, its row goes or is renewed.
CREATE OR REPLACE FUNCTION herald.node_start(node text)
RETURNS void LANGUAGE plpgsql VOLATILE AS $$
BEGIN
	PERFORM herald.presence_drop_node(node);
	INSERT INTO herald.nodes AS n (node_id) VALUES (node)
	ON CONFLICT (node_id) DO UPDATE SET started_at = now(), heartbeat_at = now();
END $$;

CREATE OR REPLACE FUNCTION herald.node_stop(node text)
RETURNS void LANGUAGE plpgsql VOLATILE AS $$
BEGIN
	PERFORM herald.presence_drop_node(node);
	DELETE FROM herald.nodes WHERE node_id = node;
END $$;

INSERT INTO herald.schema_migrations (version, name) VALUES (6, 'presence')
ON CONFLICT DO NOTHING;
