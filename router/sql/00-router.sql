-- coupon_lock_router install script, part 1: the shards and how a call finds one
\echo Use "CREATE EXTENSION coupon_lock_router CASCADE" to load this file. \quit

-- The router database holds schema coupon_lock with the same API as a
-- coupon_lock database, and no coupon data: every coupon and lease call is
-- sent by PL/Proxy to the shard database that owns its data, where the
-- coupon_lock extension does the work (docs/scaling.md).  So coupon_lock
-- itself must not be installed here: the two would claim the same names.
DO $$
BEGIN
    IF EXISTS (SELECT FROM pg_catalog.pg_extension WHERE extname = 'coupon_lock') THEN
        RAISE EXCEPTION 'coupon_lock_router cannot be installed in a database that has coupon_lock'
            USING ERRCODE = '55000',
                  DETAIL = 'The router offers the coupon_lock API itself and sends each call to a shard database.',
                  HINT = 'Create the router in a database of its own; the shards are the databases with coupon_lock.';
    END IF;
END
$$;

-- Ids carry the partition they were created in, in bits 48..62 (the shard
-- side sets its sequences so: install/shard.sql).  A NULL id goes to
-- partition 0, whose shard reports the NULL as any coupon_lock does.
CREATE FUNCTION coupon_lock.id_partition(id bigint)
RETURNS integer LANGUAGE sql IMMUTABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$ SELECT coalesce((id >> 48)::integer, 0) $$;
COMMENT ON FUNCTION coupon_lock.id_partition(bigint) IS
    'the partition a batch, coupon or event id belongs to (its bits 48..62): how calls by id are routed';

-- An owner's home partition: its claims and its per-user counters live there.
CREATE FUNCTION coupon_lock.owner_partition(owner_id text)
RETURNS integer LANGUAGE sql IMMUTABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$ SELECT coalesce(hashtext(owner_id), 0) $$;
COMMENT ON FUNCTION coupon_lock.owner_partition(text) IS
    'hash of an owner id (or a lease name), 0 for NULL; masked by the partition count it names the owner''s home partition';

-- The partitions, as the SQL/MED server coupon_lock_shards lists them.  A
-- shard database is named by its connection string; its lead partition is
-- the lowest partition with that string.  Read at every call, so ALTER SERVER
-- (a partition moved to another database) takes effect at once.
CREATE FUNCTION coupon_lock.router_partitions(OUT part integer, OUT connection text, OUT lead integer)
RETURNS SETOF record LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    WITH p AS (
        SELECT substr(o, 2, strpos(o, '=') - 2)::integer AS part, substr(o, strpos(o, '=') + 1) AS connection
          FROM pg_foreign_server s, unnest(s.srvoptions) o
         WHERE s.srvname = 'coupon_lock_shards' AND o ~ '^p[0-9]+=')
    SELECT part, connection, min(part) OVER (PARTITION BY connection) FROM p ORDER BY part
$$;
COMMENT ON FUNCTION coupon_lock.router_partitions() IS
    'partition, connection string and lead partition (the lowest partition of that database) of server coupon_lock_shards';

-- The lead partition of each shard database: the calls that must reach every
-- database once (sweeps, views, stock look-ups) run on these.
CREATE FUNCTION coupon_lock.router_leads()
RETURNS SETOF integer LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$ SELECT DISTINCT lead FROM coupon_lock.router_partitions() ORDER BY 1 $$;
COMMENT ON FUNCTION coupon_lock.router_leads() IS 'one partition per shard database: its lead partition';

-- The lead partition of the database that a hash or partition number routes to.
CREATE FUNCTION coupon_lock.router_lead_of(hash integer)
RETURNS integer LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT p.lead FROM coupon_lock.router_partitions() p
     WHERE p.part = hash & ((SELECT count(*)::integer FROM coupon_lock.router_partitions()) - 1)
$$;
COMMENT ON FUNCTION coupon_lock.router_lead_of(integer) IS
    'the lead partition of the database a hash value (masked by the partition count) is routed to';

-- PL/Proxy reports its own failures (no connection, query_timeout) as
-- XX000, and coupon_lock.router_call_timeout (src/router_timeout.c) as 08006
-- with a message of its own; the router's functions turn them into this
-- class-08 error, so that a client can tell a shard it cannot reach from a
-- bug.  A shard's own errors pass through with their SQLSTATE.
CREATE FUNCTION coupon_lock.router_unavailable(hash integer, message text)
RETURNS void LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    RAISE EXCEPTION 'could not reach the shard of partition %',
                    hash & ((SELECT count(*)::integer FROM coupon_lock.router_partitions()) - 1)
        USING ERRCODE = '08006',
              DETAIL = format('PL/Proxy: %s', message),
              HINT = 'The call may or may not have taken effect there. Calls for other shards go on; '
                     'docs/scaling.md lists which calls are safe to retry.';
END
$$;
COMMENT ON FUNCTION coupon_lock.router_unavailable(integer, text) IS
    'raises the class 08 error a caller sees when the shard a hash or partition routes to is down or hung';

-- Every public function of the router ends in this (also for 57014, which
-- WHEN OTHERS does not catch: a shard's statement_timeout): a shard's error is
-- raised again with its SQLSTATE, message, detail and hint as the shard
-- worded them (PL/Proxy prefixes the message with the function and database
-- and the detail and hint with "Remote"), so that a client sees what a single
-- node would say; PL/Proxy's own failures (XX000) and a shard's shutdown
-- (57P01-57P03) become router_unavailable's.
CREATE FUNCTION coupon_lock.router_error(sqlstate text, message text, detail text, hint text, hash integer)
RETURNS void LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    -- XX000: PL/Proxy's own failure; 57P01-57P03: the shard is shutting
    -- down or starting (its FATAL ends the connection, not the caller's);
    -- router_call_timeout's 08006 (a shard's own errors say REMOTE)
    IF sqlstate IN ('XX000', '57P01', '57P02', '57P03')
       OR (sqlstate = '08006' AND message LIKE 'no answer from the shard within %') THEN
        PERFORM coupon_lock.router_unavailable(hash, message);
    END IF;
    message := regexp_replace(message, '^.*? REMOTE (ERROR|FATAL): ', '');
    detail := nullif(regexp_replace(detail, '^Remote detail: ', ''), '');
    hint := nullif(regexp_replace(hint, '^Remote hint: ', ''), '');
    IF detail IS NULL AND hint IS NULL THEN
        RAISE EXCEPTION USING ERRCODE = sqlstate, MESSAGE = message;
    ELSIF hint IS NULL THEN
        RAISE EXCEPTION USING ERRCODE = sqlstate, MESSAGE = message, DETAIL = detail;
    ELSIF detail IS NULL THEN
        RAISE EXCEPTION USING ERRCODE = sqlstate, MESSAGE = message, HINT = hint;
    END IF;
    RAISE EXCEPTION USING ERRCODE = sqlstate, MESSAGE = message, DETAIL = detail, HINT = hint;
END
$$;
COMMENT ON FUNCTION coupon_lock.router_error(text, text, text, text, integer) IS
    'raises a shard''s error again as the shard worded it (PL/Proxy''s own failures as class 08)';

CREATE FUNCTION coupon_lock.route_shard_setup(part integer, partitions integer[], partition_count integer)
RETURNS integer LANGUAGE plproxy AS $$
    CLUSTER 'coupon_lock_shards';
    RUN ON part;
    SELECT coupon_lock.shard_setup(partitions, partition_count);
$$;
COMMENT ON FUNCTION coupon_lock.route_shard_setup(integer, integer[], integer) IS 'router_init on one shard';

CREATE FUNCTION coupon_lock.router_init()
RETURNS integer LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    n    integer;
    shard record;
BEGIN
    SELECT count(*) INTO n FROM coupon_lock.router_partitions();
    IF n = 0 THEN
        RAISE EXCEPTION 'server coupon_lock_shards lists no partitions'
            USING ERRCODE = '55000',
                  HINT = 'CREATE SERVER coupon_lock_shards FOREIGN DATA WRAPPER plproxy OPTIONS (p0 ''...'', ...) as the README shows.';
    END IF;
    IF n & (n - 1) <> 0 OR (SELECT max(part) FROM coupon_lock.router_partitions()) <> n - 1 THEN
        RAISE EXCEPTION 'partitions of server coupon_lock_shards must be p0 .. pN-1 with N a power of two'
            USING ERRCODE = '22023', DETAIL = format('It lists %s partitions.', n);
    END IF;
    FOR shard IN SELECT lead, array_agg(part ORDER BY part) AS parts
                   FROM coupon_lock.router_partitions() GROUP BY lead ORDER BY lead LOOP
        BEGIN
            PERFORM coupon_lock.route_shard_setup(shard.lead, shard.parts, n);
        EXCEPTION WHEN internal_error OR connection_failure THEN
            PERFORM coupon_lock.router_unavailable(shard.lead, SQLERRM);
        END;
    END LOOP;
    RETURN n;
END
$$;
COMMENT ON FUNCTION coupon_lock.router_init() IS
    'checks every partition of server coupon_lock_shards and tells each shard database which partitions it holds; idempotent; returns the partition count';

CREATE FUNCTION coupon_lock.route_ping(part integer)
RETURNS integer LANGUAGE plproxy AS $$
    CLUSTER 'coupon_lock_shards';
    RUN ON part;
    SELECT (SELECT s.lead_partition FROM coupon_lock.shard s);
$$;
COMMENT ON FUNCTION coupon_lock.route_ping(integer) IS 'the lead partition a shard knows itself by (NULL before router_init)';

CREATE FUNCTION coupon_lock.router_answers(part integer)
RETURNS boolean LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp SET client_min_messages = warning
AS $$
BEGIN
    RETURN coupon_lock.route_ping(part) IS NOT NULL;
EXCEPTION WHEN OTHERS THEN
    RETURN false;
END
$$;
COMMENT ON FUNCTION coupon_lock.router_answers(integer) IS
    'true when the shard of the partition answers and has been set up by router_init()';

CREATE VIEW coupon_lock.router_shards AS
SELECT p.part AS partition, p.connection, p.lead AS lead_partition,
       coupon_lock.router_answers(p.part) AS answers
  FROM coupon_lock.router_partitions() p;
COMMENT ON VIEW coupon_lock.router_shards IS
    'partitions of server coupon_lock_shards: connection string, the database''s lead partition, whether it answers now (a down shard takes its connect_timeout)';

REVOKE ALL ON FUNCTION coupon_lock.id_partition(bigint), coupon_lock.owner_partition(text),
                       coupon_lock.router_partitions(), coupon_lock.router_leads(),
                       coupon_lock.router_lead_of(integer), coupon_lock.router_unavailable(integer, text),
                       coupon_lock.router_error(text, text, text, text, integer),
                       coupon_lock.route_shard_setup(integer, integer[], integer), coupon_lock.router_init(),
                       coupon_lock.route_ping(integer), coupon_lock.router_answers(integer)
    FROM PUBLIC;
REVOKE ALL ON coupon_lock.router_shards FROM PUBLIC;
