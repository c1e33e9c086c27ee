-- herald schema version 6: presence across the cluster.
--
-- Every node keeps herald.nodes.heartbeat_at fresh and writes, in
-- batches, how many of its streams each user has on each channel whose
-- rule enables presence (herald.presence, one row per node). A member
-- joins when their first stream anywhere opens and leaves when their last
-- one closes; those transitions are decided here, on the member's row in
-- herald.presence_members, and sent to every node on herald_presence. A
-- node that stops heartbeating is removed by the survivors, its members'
-- leaves sent.
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

-- Every member's total over all nodes. Its row lock serialises the
-- changes of one member, so each join and each leave is seen exactly
-- once; row locks, unlike advisory locks, do not fill PostgreSQL's lock
-- table however many members one transaction changes.
CREATE TABLE IF NOT EXISTS herald.presence_members (
	tenant_id   text NOT NULL,
	org_id      text NOT NULL,
	channel     text NOT NULL,
	user_id     text NOT NULL,
	connections bigint NOT NULL,
	PRIMARY KEY (tenant_id, org_id, channel, user_id)
);

-- Adds delta to a member's total and sends herald_presence
-- {"t","o","c","u","a":"join"|"leave","n"} when it leaves or reaches 0.
CREATE OR REPLACE FUNCTION herald.presence_apply(tenant_id text, org_id text, channel text,
                                                 user_id text, delta bigint)
RETURNS void LANGUAGE plpgsql VOLATILE AS $$
DECLARE
	after bigint;
	action text;
BEGIN
	IF delta = 0 THEN
		RETURN;
	END IF;
	INSERT INTO herald.presence_members AS m (tenant_id, org_id, channel, user_id, connections)
	VALUES (presence_apply.tenant_id, presence_apply.org_id, presence_apply.channel,
	        presence_apply.user_id, delta)
	ON CONFLICT ON CONSTRAINT presence_members_pkey
	DO UPDATE SET connections = m.connections + excluded.connections
	RETURNING m.connections INTO after;
	IF after <= 0 THEN
		DELETE FROM herald.presence_members m
		WHERE m.tenant_id = presence_apply.tenant_id AND m.org_id = presence_apply.org_id
		  AND m.channel = presence_apply.channel AND m.user_id = presence_apply.user_id;
	END IF;
	action := CASE WHEN after - delta <= 0 AND after > 0 THEN 'join'
	               WHEN after - delta > 0 AND after <= 0 THEN 'leave' END;
	IF action IS NOT NULL THEN
		PERFORM pg_notify('herald_presence', json_build_object('t', presence_apply.tenant_id,
			'o', presence_apply.org_id, 'c', presence_apply.channel,
			'u', presence_apply.user_id, 'a', action, 'n', greatest(after, 0))::text);
	END IF;
END $$;

-- Share-locks node's row for a write of its counts, or raises when the
-- node is not registered. A survivor removing the node (FOR UPDATE) waits
-- for the write and then removes its rows too, so a node taken for dead
-- cannot leave rows nobody will remove.
CREATE OR REPLACE FUNCTION herald.node_hold(node text)
RETURNS void LANGUAGE plpgsql VOLATILE AS $$
BEGIN
	PERFORM 1 FROM herald.nodes n WHERE n.node_id = node FOR KEY SHARE;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'herald: node % is not registered', node USING ERRCODE = 'no_data_found';
	END IF;
END $$;

-- Sets node's connection count of each member (0: none left), only
-- while the node is registered (node_hold). The nodes pass members sorted by (tenant, org, channel,
-- user) in byte order, as the removal below takes them, so two
-- transactions never wait on each other's members in a cycle.
CREATE OR REPLACE FUNCTION herald.presence_set(node text, tenants text[], orgs text[],
                                               channels text[], users text[], counts int[])
RETURNS void LANGUAGE plpgsql VOLATILE AS $$
DECLARE
	own int;
BEGIN
	PERFORM herald.node_hold(node);
	FOR i IN 1 .. coalesce(cardinality(users), 0) LOOP
		SELECT p.connections INTO own FROM herald.presence p
		WHERE p.tenant_id = tenants[i] AND p.org_id = orgs[i] AND p.channel = channels[i]
		  AND p.user_id = users[i] AND p.node_id = node
		FOR UPDATE;
		own := coalesce(own, 0);
		CONTINUE WHEN own = greatest(counts[i], 0);
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
		PERFORM herald.presence_apply(tenants[i], orgs[i], channels[i], users[i],
		                              greatest(counts[i], 0) - own);
	END LOOP;
END $$;

-- Streams per user on each node, written in batches by the nodes: what
-- max_connections_per_user and the per-tenant cap count across nodes.
CREATE TABLE IF NOT EXISTS herald.node_streams (
	node_id   text NOT NULL,
	tenant_id text NOT NULL,
	user_id   text NOT NULL,
	streams   int NOT NULL CHECK (streams > 0),
	PRIMARY KEY (node_id, tenant_id, user_id)
);
CREATE INDEX IF NOT EXISTS node_streams_user ON herald.node_streams (tenant_id, user_id);

-- Sets node's stream count of each (tenant, user) (0: none); like
-- presence_set, only while the node is registered.
CREATE OR REPLACE FUNCTION herald.node_streams_set(node text, tenants text[], users text[],
                                                   counts int[])
RETURNS void LANGUAGE plpgsql VOLATILE AS $$
BEGIN
	PERFORM herald.node_hold(node);
	DELETE FROM herald.node_streams s
	USING unnest(tenants, users, counts) AS c(t, u, n)
	WHERE s.node_id = node AND s.tenant_id = c.t AND s.user_id = c.u AND c.n <= 0;
	INSERT INTO herald.node_streams AS s (node_id, tenant_id, user_id, streams)
	SELECT node, c.t, c.u, c.n FROM unnest(tenants, users, counts) AS c(t, u, n) WHERE c.n > 0
	ON CONFLICT ON CONSTRAINT node_streams_pkey DO UPDATE SET streams = excluded.streams;
END $$;

-- Removes every member row of these nodes, sending the leaves that
-- causes, in the members' byte order (see presence_set), and their
-- stream counts.
CREATE OR REPLACE FUNCTION herald.drop_nodes(nodes text[])
RETURNS void LANGUAGE plpgsql VOLATILE AS $$
DECLARE
	r record;
BEGIN
	FOR r IN
		SELECT p.tenant_id, p.org_id, p.channel, p.user_id, p.node_id, p.connections
		FROM herald.presence p WHERE p.node_id = ANY (nodes)
		ORDER BY p.tenant_id COLLATE "C", p.org_id COLLATE "C", p.channel COLLATE "C",
		         p.user_id COLLATE "C"
	LOOP
		DELETE FROM herald.presence p
		WHERE p.tenant_id = r.tenant_id AND p.org_id = r.org_id AND p.channel = r.channel
		  AND p.user_id = r.user_id AND p.node_id = r.node_id;
		PERFORM herald.presence_apply(r.tenant_id, r.org_id, r.channel, r.user_id,
		                              -r.connections);
	END LOOP;
	DELETE FROM herald.node_streams s WHERE s.node_id = ANY (nodes);
END $$;

-- A node's heartbeat: marks node alive and removes the nodes silent for
-- longer than timeout, with their members. Returns false when node's own
-- row was missing — it had been taken for dead — so that it writes all its
-- members again.
CREATE OR REPLACE FUNCTION herald.node_heartbeat(node text, timeout interval)
RETURNS boolean LANGUAGE plpgsql VOLATILE AS $$
DECLARE
	known boolean;
	dead text[];
BEGIN
	UPDATE herald.nodes SET heartbeat_at = now() WHERE node_id = node;
	known := FOUND;
	IF NOT known THEN
		INSERT INTO herald.nodes (node_id) VALUES (node) ON CONFLICT DO NOTHING;
	END IF;
	-- A node in the middle of a write holds its row share-locked: it is
	-- alive, and skipped.
	dead := ARRAY(SELECT n.node_id FROM herald.nodes n
	              WHERE n.heartbeat_at < now() - timeout AND n.node_id <> node
	              FOR UPDATE SKIP LOCKED);
	IF cardinality(dead) > 0 THEN
		PERFORM herald.drop_nodes(dead);
		DELETE FROM herald.nodes WHERE node_id = ANY (dead);
	END IF;
	RETURN known;
END $$;

-- A node starting (its rows from an earlier run under the same node id
-- are stale) or stopping: its members leave, its row is renewed or goes.
CREATE OR REPLACE FUNCTION herald.node_start(node text)
RETURNS void LANGUAGE plpgsql VOLATILE AS $$
BEGIN
	INSERT INTO herald.nodes AS n (node_id) VALUES (node)
	ON CONFLICT (node_id) DO UPDATE SET started_at = now(), heartbeat_at = now();
	PERFORM 1 FROM herald.nodes n WHERE n.node_id = node FOR UPDATE;
	PERFORM herald.drop_nodes(ARRAY[node]);
END $$;

CREATE OR REPLACE FUNCTION herald.node_stop(node text)
RETURNS void LANGUAGE plpgsql VOLATILE AS $$
BEGIN
	PERFORM 1 FROM herald.nodes n WHERE n.node_id = node FOR UPDATE;
	PERFORM herald.drop_nodes(ARRAY[node]);
	DELETE FROM herald.nodes WHERE node_id = node;
END $$;

INSERT INTO herald.schema_migrations (version, name) VALUES (6, 'presence')
ON CONFLICT DO NOTHING;
