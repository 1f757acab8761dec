-- coupon_lock install script: a database as a shard of coupon_lock_router (src/shard.c)
--
-- Nothing here changes a database that is not a shard.  The router
-- (router/, docs/scaling.md) calls these functions through PL/Proxy, each
-- call one autocommit transaction on one shard; applications never call them.
--
-- Ids: a shard's batch, coupon and event ids carry its lead partition (the
-- lowest partition number that names this database) in bits 48..62, so the
-- router sends a call by id to the right database with no lookup; on a
-- database that is not a shard, and on the shard of partition 0, the high
-- bits are zero and ids look exactly like a single node's.
--
-- Stock: a batch is spread over the shards; its coupons on each shard are
-- that shard's stock.  Stock moves by transfers: a give here (available
-- coupons deleted, the transfer recorded) and a receive there (as many new
-- coupons, the transfer recorded), each idempotent by its transfer id; a
-- give not yet known as received is in flight, and router_reconcile()
-- delivers it.  For every batch, coupons on all shards plus the quantities
-- in flight equal its quantity.

CREATE TABLE coupon_lock.shard (
    singleton       boolean     NOT NULL DEFAULT true PRIMARY KEY CHECK (singleton),
    lead_partition  integer     NOT NULL CHECK (lead_partition >= 0),
    partitions      integer[]   NOT NULL,
    partition_count integer     NOT NULL
        CHECK (partition_count BETWEEN 1 AND 32768 AND partition_count & (partition_count - 1) = 0),
    updated_at      timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE coupon_lock.shard IS
    'set by coupon_lock_router''s router_init(): the partitions this database holds; no row: not a shard';
COMMENT ON COLUMN coupon_lock.shard.lead_partition IS
    'the lowest of partitions: the high bits (48..62) of every batch, coupon and event id created here';

CREATE TABLE coupon_lock.shard_batch (
    batch_id       bigint  NOT NULL PRIMARY KEY,
    total_quantity integer NOT NULL CHECK (total_quantity > 0),
    home           boolean NOT NULL
);
COMMENT ON TABLE coupon_lock.shard_batch IS
    'batches spread over the shards: the whole quantity; home is true on the shard that created the batch (its id''s partition)';

CREATE TABLE coupon_lock.shard_transfer (
    transfer_id    text        NOT NULL PRIMARY KEY,
    batch_id       bigint      NOT NULL,
    direction      text        NOT NULL CHECK (direction IN ('give', 'receive')),
    peer_partition integer     NOT NULL,
    quantity       integer     NOT NULL CHECK (quantity >= 0),
    delivered      boolean     NOT NULL,
    at             timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX shard_transfer_in_flight_idx ON coupon_lock.shard_transfer (batch_id) WHERE NOT delivered;
COMMENT ON TABLE coupon_lock.shard_transfer IS
    'stock moves, one row on each side under the same transfer id: give (coupons left) and receive (coupons arrived)';
COMMENT ON COLUMN coupon_lock.shard_transfer.peer_partition IS 'the lead partition of the other side';
COMMENT ON COLUMN coupon_lock.shard_transfer.delivered IS
    'give: the receiving shard has confirmed it; false while the stock is in flight (always true for a receive)';
COMMENT ON INDEX coupon_lock.shard_transfer_in_flight_idx IS 'gives in flight, for router_reconcile()';

-- Coupons a receive added to a batch this database already held get ids of
-- the allocator's next range, past the batch's own first_coupon_id ..
-- first_coupon_id + quantity - 1 (src/shard.c, shard_mint): expire_coupons
-- (src/sweep.c) walks these ranges too, each once, with a cursor of its own.
CREATE TABLE coupon_lock.shard_coupon_range (
    first_coupon_id bigint  NOT NULL PRIMARY KEY,
    batch_id        bigint  NOT NULL,
    quantity        integer NOT NULL CHECK (quantity > 0),
    expire_from     bigint
);
CREATE INDEX shard_coupon_range_expiring_idx ON coupon_lock.shard_coupon_range (first_coupon_id)
    WHERE COALESCE(expire_from, first_coupon_id) < first_coupon_id + quantity;
COMMENT ON TABLE coupon_lock.shard_coupon_range IS
    'ids first_coupon_id .. first_coupon_id + quantity - 1: coupons of batch_id that stock moves minted here outside the batch''s own id range';
COMMENT ON COLUMN coupon_lock.shard_coupon_range.expire_from IS
    'expire_coupons has passed every coupon of the range below this id (NULL: first_coupon_id), as batch.expire_from';
COMMENT ON INDEX coupon_lock.shard_coupon_range_expiring_idx IS 'expire_coupons: ranges it has not walked to the end';

CREATE TABLE coupon_lock.shard_claim_request (
    batch_id   bigint      NOT NULL,
    owner_id   text        NOT NULL,
    request_id text        NOT NULL,
    coupon_id  bigint,
    at         timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (batch_id, owner_id, request_id)
);
COMMENT ON TABLE coupon_lock.shard_claim_request IS
    'claims with a request_id made through the router: the coupon the first call got (NULL: the whole batch was sold out)';

CREATE TABLE coupon_lock.shard_quota_hold (
    batch_id  bigint      NOT NULL,
    owner_id  text        NOT NULL,
    coupon_id bigint      NOT NULL,
    ticket    text        NOT NULL UNIQUE,
    at        timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (batch_id, owner_id, coupon_id)
);
COMMENT ON TABLE coupon_lock.shard_quota_hold IS
    'on an owner''s home shard: coupons issued to the owner on other shards, each counted in owner_quota here';

CREATE TABLE coupon_lock.shard_issue_ticket (
    ticket    text        NOT NULL PRIMARY KEY,
    coupon_id bigint      NOT NULL,
    owner_id  text        NOT NULL,
    fenced    boolean     NOT NULL,
    at        timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE coupon_lock.shard_issue_ticket IS
    'on the coupon''s shard: the hold ticket an issue for a foreign owner used, or fenced (no issue may use it any more)';

SELECT pg_catalog.pg_extension_config_dump('coupon_lock.shard', '');
SELECT pg_catalog.pg_extension_config_dump('coupon_lock.shard_batch', '');
SELECT pg_catalog.pg_extension_config_dump('coupon_lock.shard_transfer', '');
SELECT pg_catalog.pg_extension_config_dump('coupon_lock.shard_coupon_range', '');
SELECT pg_catalog.pg_extension_config_dump('coupon_lock.shard_claim_request', '');
SELECT pg_catalog.pg_extension_config_dump('coupon_lock.shard_quota_hold', '');
SELECT pg_catalog.pg_extension_config_dump('coupon_lock.shard_issue_ticket', '');
REVOKE ALL ON coupon_lock.shard, coupon_lock.shard_batch, coupon_lock.shard_transfer, coupon_lock.shard_coupon_range,
              coupon_lock.shard_claim_request, coupon_lock.shard_quota_hold,
              coupon_lock.shard_issue_ticket
    FROM PUBLIC;

-- ---- argument checks, as coupon_lock's C functions make them ----

CREATE FUNCTION coupon_lock.shard_require()
RETURNS void LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF pg_catalog.pg_is_in_recovery() THEN     -- as src/standby.c words it
        RAISE EXCEPTION 'cannot change coupon_lock data on a hot standby' USING ERRCODE = '25006',
            DETAIL = 'The server is in recovery.',
            HINT = 'Connect to the primary, for example with target_session_attrs=read-write in the connection string.';
    END IF;
    IF NOT EXISTS (SELECT FROM coupon_lock.shard) THEN
        RAISE EXCEPTION 'this database is not a shard' USING ERRCODE = '55000',
            HINT = 'Run SELECT coupon_lock.router_init() in the router database.';
    END IF;
END
$$;
COMMENT ON FUNCTION coupon_lock.shard_require() IS
    'raises 25006 on a hot standby and 55000 unless router_init() has made this database a shard';

-- an identifier (transfer id, ticket, request id): not NULL (22004), not empty, at most 512 bytes (22023)
CREATE FUNCTION coupon_lock.shard_check_id(value text, argname text)
RETURNS void LANGUAGE plpgsql IMMUTABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF value IS NULL THEN
        RAISE EXCEPTION '% must not be null', argname USING ERRCODE = '22004';
    ELSIF value = '' THEN
        RAISE EXCEPTION '% must not be empty', argname USING ERRCODE = '22023';
    ELSIF octet_length(value) > 512 THEN
        RAISE EXCEPTION '% is too long', argname USING ERRCODE = '22023',
            DETAIL = format('It has %s bytes; at most 512 are allowed.', octet_length(value));
    END IF;
END
$$;
COMMENT ON FUNCTION coupon_lock.shard_check_id(text, text) IS
    'the check every identifier argument of the shard functions passes: not NULL, not empty, at most 512 bytes';

-- a count or partition number: not NULL (22004), at least `minimum` (22023)
CREATE FUNCTION coupon_lock.shard_check_count(value bigint, argname text, minimum bigint)
RETURNS void LANGUAGE plpgsql IMMUTABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF value IS NULL THEN
        RAISE EXCEPTION '% must not be null', argname USING ERRCODE = '22004';
    ELSIF value < minimum THEN
        RAISE EXCEPTION '% must be at least %', argname, minimum USING ERRCODE = '22023';
    END IF;
END
$$;
COMMENT ON FUNCTION coupon_lock.shard_check_count(bigint, text, bigint) IS
    'the check every number argument of the shard functions passes: not NULL, at least minimum';

-- ---- ids and partitions ----

CREATE FUNCTION coupon_lock.partition_of(id bigint)
RETURNS integer LANGUAGE sql IMMUTABLE PARALLEL SAFE STRICT
SET search_path = pg_catalog, pg_temp
AS $$ SELECT (id >> 48)::integer $$;
COMMENT ON FUNCTION coupon_lock.partition_of(bigint) IS
    'the partition a batch, coupon or event id was created in (its bits 48..62); 0 on a database that is not a shard';

CREATE FUNCTION coupon_lock.shard_setup(partitions integer[], partition_count integer)
RETURNS integer LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    lead  integer;
    base  bigint;
    known coupon_lock.shard;
BEGIN
    IF pg_catalog.pg_is_in_recovery() THEN     -- as src/standby.c words it
        RAISE EXCEPTION 'cannot change coupon_lock data on a hot standby' USING ERRCODE = '25006',
            DETAIL = 'The server is in recovery.',
            HINT = 'Connect to the primary, for example with target_session_attrs=read-write in the connection string.';
    END IF;
    IF partitions IS NULL OR partition_count IS NULL OR cardinality(partitions) = 0 THEN
        RAISE EXCEPTION 'partitions and partition_count must not be null or empty' USING ERRCODE = '22004';
    END IF;
    IF partition_count NOT BETWEEN 1 AND 32768 OR partition_count & (partition_count - 1) <> 0 THEN
        RAISE EXCEPTION 'partition_count must be a power of two between 1 and 32768' USING ERRCODE = '22023';
    END IF;
    IF EXISTS (SELECT FROM unnest(partitions) p WHERE p IS NULL OR p < 0 OR p >= partition_count) THEN
        RAISE EXCEPTION 'every partition must be between 0 and %', partition_count - 1 USING ERRCODE = '22023';
    END IF;
    lead := (SELECT min(p) FROM unnest(partitions) p);
    base := lead::bigint << 48;

    SELECT * INTO known FROM coupon_lock.shard FOR UPDATE;
    IF FOUND AND known.lead_partition <> lead THEN
        RAISE EXCEPTION 'this database is the shard of partition %, not of partition %', known.lead_partition, lead
            USING ERRCODE = '55000',
                  DETAIL = 'Its ids carry its lead partition; a database cannot change it.',
                  HINT = 'List the database under the same lowest partition, or move its partitions as docs/scaling.md shows.';
    END IF;
    IF NOT FOUND AND lead <> 0 AND
       (EXISTS (SELECT FROM coupon_lock.batch WHERE batch_id >> 48 <> lead) OR
        EXISTS (SELECT FROM coupon_lock.coupon WHERE coupon_id >> 48 <> lead)) THEN
        RAISE EXCEPTION 'this database holds coupons outside the id range of partition %', lead
            USING ERRCODE = '55000',
                  DETAIL = 'Ids created before it became a shard would be routed to partition 0.',
                  HINT = 'Make a database that already has coupons the shard of partition 0, or start the shard empty.';
    END IF;

    INSERT INTO coupon_lock.shard AS s (lead_partition, partitions, partition_count)
    VALUES (lead, (SELECT array_agg(DISTINCT p ORDER BY p) FROM unnest(partitions) p), partition_count)
    ON CONFLICT (singleton) DO UPDATE
        SET partitions = excluded.partitions, partition_count = excluded.partition_count, updated_at = now();

    -- ids of this database from here on carry the lead partition
    IF (SELECT last_value FROM coupon_lock.batch_id_seq) < base THEN
        PERFORM setval('coupon_lock.batch_id_seq', base + 1, false);
    END IF;
    IF (SELECT last_value FROM coupon_lock.coupon_event_id_seq) < base THEN
        PERFORM setval('coupon_lock.coupon_event_id_seq', base + 1, false);
    END IF;
    INSERT INTO coupon_lock.id_allocator AS a (singleton, next_coupon_id) VALUES (true, base + 1)
    ON CONFLICT (singleton) DO UPDATE SET next_coupon_id = greatest(a.next_coupon_id, excluded.next_coupon_id);
    RETURN lead;
END
$$;
COMMENT ON FUNCTION coupon_lock.shard_setup(integer[], integer) IS
    'called by router_init(): records the partitions this database holds and moves its id sequences into its lead partition''s range; idempotent; returns the lead partition';

-- ---- stock of a batch spread over the shards ----

CREATE FUNCTION coupon_lock.shard_mint(batch_id bigint, quantity integer, name text, per_user_limit integer,
                                       valid_until timestamptz, freeze_ttl interval)
RETURNS void AS 'MODULE_PATHNAME', 'coupon_lock_shard_mint'
LANGUAGE C VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION coupon_lock.shard_mint(bigint, integer, text, integer, timestamptz, interval) IS
    'adds quantity available coupons to the batch (creating the batch row under that id when absent); only shard_stock_receive calls it';

CREATE FUNCTION coupon_lock.shard_batch_open(name text, quantity integer, per_user_limit integer,
                                             valid_until timestamptz, freeze_ttl interval, share integer,
                                             give_to integer[], give_quantities integer[], transfer_ids text[])
RETURNS bigint LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    id bigint;
BEGIN
    PERFORM coupon_lock.shard_require(), coupon_lock.shard_check_count(share, 'share', 1);
    IF share > quantity THEN
        RAISE EXCEPTION 'share must be between 1 and quantity' USING ERRCODE = '22023';
    END IF;
    IF give_to IS NULL OR give_quantities IS NULL OR transfer_ids IS NULL THEN
        RAISE EXCEPTION 'give_to, give_quantities and transfer_ids must not be null' USING ERRCODE = '22004';
    END IF;
    IF cardinality(give_to) <> cardinality(give_quantities) OR cardinality(give_to) <> cardinality(transfer_ids) OR
       EXISTS (SELECT FROM unnest(give_to, give_quantities, transfer_ids) g(p, q, t)
                WHERE p IS NULL OR p < 0 OR q IS NULL OR q < 1 OR t IS NULL OR t = '' OR octet_length(t) > 512) THEN
        RAISE EXCEPTION 'give_to, give_quantities and transfer_ids must be arrays of one length without empty elements'
            USING ERRCODE = '22023';
    END IF;
    id := coupon_lock.create_batch(name, share, per_user_limit, valid_until, freeze_ttl);
    INSERT INTO coupon_lock.shard_batch (batch_id, total_quantity, home) VALUES (id, quantity, true);
    -- the other shards' shares leave as transfers from here: in flight until received
    INSERT INTO coupon_lock.shard_transfer (transfer_id, batch_id, direction, peer_partition, quantity, delivered)
    SELECT t, id, 'give', p, q, false
      FROM unnest(transfer_ids, give_to, give_quantities) AS g(t, p, q);
    IF (SELECT share + coalesce(sum(q), 0) FROM unnest(give_quantities) q) <> quantity THEN
        RAISE EXCEPTION 'shares must add up to quantity' USING ERRCODE = '22023';
    END IF;
    RETURN id;
END
$$;
COMMENT ON FUNCTION coupon_lock.shard_batch_open(text, integer, integer, timestamptz, interval, integer, integer[], integer[], text[]) IS
    'the router''s create_batch on the batch''s home shard: the batch with share coupons here, the other shards'' shares as transfers in flight';

CREATE FUNCTION coupon_lock.shard_stock(batch_id bigint, cap integer)
RETURNS integer LANGUAGE sql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT CASE WHEN EXISTS (SELECT FROM coupon_lock.batch b WHERE b.batch_id = $1)
                THEN (SELECT count(*)::integer FROM
                        (SELECT FROM coupon_lock.coupon c
                          WHERE c.batch_id = $1 AND c.owner_id IS NULL AND c.state = 'available'
                          LIMIT greatest($2, 0)) s)
           END
$$;
COMMENT ON FUNCTION coupon_lock.shard_stock(bigint, integer) IS
    'available coupons of the batch here, counted up to cap; NULL when this shard does not hold the batch';

CREATE FUNCTION coupon_lock.shard_stock_give(transfer_id text, batch_id bigint, to_partition integer, quantity integer,
                                             OUT given integer, OUT name text, OUT total_quantity integer,
                                             OUT per_user_limit integer, OUT valid_until timestamptz,
                                             OUT freeze_ttl interval)
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM coupon_lock.shard_require(), coupon_lock.shard_check_id(transfer_id, 'transfer_id'),
            coupon_lock.shard_check_count(batch_id, 'batch_id', 1),
            coupon_lock.shard_check_count(to_partition, 'to_partition', 0),
            coupon_lock.shard_check_count(quantity, 'quantity', 0);
    -- the transfer id first: a second give under it waits here, then finds it
    INSERT INTO coupon_lock.shard_transfer AS t (transfer_id, batch_id, direction, peer_partition, quantity, delivered)
    VALUES (transfer_id, batch_id, 'give', to_partition, 0, false)
    ON CONFLICT ON CONSTRAINT shard_transfer_pkey DO NOTHING;
    IF FOUND THEN
        -- never issued coupons only (available, version 1: they have no ledger rows)
        WITH gone AS (
            DELETE FROM coupon_lock.coupon c
             WHERE c.coupon_id IN (SELECT a.coupon_id FROM coupon_lock.coupon a
                                    WHERE a.batch_id = shard_stock_give.batch_id AND a.owner_id IS NULL AND a.state = 'available'
                                      AND a.version = 1
                                    ORDER BY a.coupon_id DESC LIMIT quantity
                                      FOR UPDATE SKIP LOCKED)
            RETURNING 1)
        SELECT count(*) INTO given FROM gone;
        UPDATE coupon_lock.shard_transfer t SET quantity = given, delivered = (given = 0)
         WHERE t.transfer_id = shard_stock_give.transfer_id;
    ELSE
        SELECT t.quantity INTO given FROM coupon_lock.shard_transfer t
         WHERE t.transfer_id = shard_stock_give.transfer_id AND t.direction = 'give';
        IF NOT FOUND THEN
            RAISE EXCEPTION 'transfer % was received here, not given', transfer_id USING ERRCODE = '55000';
        END IF;
    END IF;
    SELECT b.name, coalesce(s.total_quantity, b.quantity), b.per_user_limit, b.valid_until, b.freeze_ttl
      INTO name, total_quantity, per_user_limit, valid_until, freeze_ttl
      FROM coupon_lock.batch b LEFT JOIN coupon_lock.shard_batch s ON s.batch_id = b.batch_id
     WHERE b.batch_id = shard_stock_give.batch_id;
END
$$;
COMMENT ON FUNCTION coupon_lock.shard_stock_give(text, bigint, integer, integer) IS
    'gives up to quantity available coupons of the batch to another shard (deletes them, records the transfer); idempotent by transfer_id; returns how many and the batch''s attributes';

CREATE FUNCTION coupon_lock.shard_stock_receive(transfer_id text, batch_id bigint, from_partition integer,
                                                quantity integer, name text, total_quantity integer,
                                                per_user_limit integer, valid_until timestamptz,
                                                freeze_ttl interval)
RETURNS integer LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM coupon_lock.shard_require(), coupon_lock.shard_check_id(transfer_id, 'transfer_id'),
            coupon_lock.shard_check_count(batch_id, 'batch_id', 1),
            coupon_lock.shard_check_count(from_partition, 'from_partition', 0),
            coupon_lock.shard_check_count(quantity, 'quantity', 0),
            coupon_lock.shard_check_count(total_quantity, 'total_quantity', greatest(quantity, 1));
    -- first the batch key (orders two first deliveries of a batch), then the transfer id
    INSERT INTO coupon_lock.shard_batch (batch_id, total_quantity, home)
    VALUES (batch_id, total_quantity, false) ON CONFLICT ON CONSTRAINT shard_batch_pkey DO NOTHING;
    INSERT INTO coupon_lock.shard_transfer (transfer_id, batch_id, direction, peer_partition, quantity, delivered)
    VALUES (transfer_id, batch_id, 'receive', from_partition, quantity, true)
    ON CONFLICT ON CONSTRAINT shard_transfer_pkey DO NOTHING;
    IF NOT FOUND THEN
        RETURN (SELECT t.quantity FROM coupon_lock.shard_transfer t
                 WHERE t.transfer_id = shard_stock_receive.transfer_id);
    END IF;
    IF quantity > 0 THEN
        PERFORM coupon_lock.shard_mint(batch_id, quantity, name, per_user_limit, valid_until, freeze_ttl);
    END IF;
    RETURN quantity;
END
$$;
COMMENT ON FUNCTION coupon_lock.shard_stock_receive(text, bigint, integer, integer, text, integer, integer, timestamptz, interval) IS
    'receives the coupons another shard gave under transfer_id (new coupons here; the batch row too when absent); idempotent by transfer_id; returns how many';

CREATE FUNCTION coupon_lock.shard_transfer_delivered(transfer_id text)
RETURNS boolean LANGUAGE sql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT coupon_lock.shard_require();
    UPDATE coupon_lock.shard_transfer t SET delivered = true
     WHERE t.transfer_id = $1 AND t.direction = 'give'
    RETURNING true
$$;
COMMENT ON FUNCTION coupon_lock.shard_transfer_delivered(text) IS
    'marks a give as received by the other shard (called after shard_stock_receive there succeeded)';

CREATE FUNCTION coupon_lock.shard_in_flight(of_batch bigint DEFAULT NULL,
                                            OUT transfer_id text, OUT batch_id bigint, OUT to_partition integer,
                                            OUT quantity integer, OUT name text, OUT total_quantity integer,
                                            OUT per_user_limit integer, OUT valid_until timestamptz,
                                            OUT freeze_ttl interval, OUT at timestamptz)
RETURNS SETOF record LANGUAGE sql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT t.transfer_id, t.batch_id, t.peer_partition, t.quantity, b.name,
           coalesce(s.total_quantity, b.quantity), b.per_user_limit, b.valid_until, b.freeze_ttl, t.at
      FROM coupon_lock.shard_transfer t
      JOIN coupon_lock.batch b ON b.batch_id = t.batch_id
      LEFT JOIN coupon_lock.shard_batch s ON s.batch_id = t.batch_id
     WHERE NOT t.delivered AND t.direction = 'give' AND ($1 IS NULL OR t.batch_id = $1)
$$;
COMMENT ON FUNCTION coupon_lock.shard_in_flight(bigint) IS
    'gives from this shard not yet confirmed as received (of one batch, or all): the stock router_reconcile() delivers';

-- ---- claims through the router ----

CREATE FUNCTION coupon_lock.shard_claim(batch_id bigint, owner_id text, request_id text)
RETURNS bigint LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    got bigint;
BEGIN
    IF request_id IS NOT NULL THEN
        PERFORM coupon_lock.shard_check_id(request_id, 'request_id');
        SELECT r.coupon_id INTO got FROM coupon_lock.shard_claim_request r
         WHERE r.batch_id = shard_claim.batch_id AND r.owner_id = shard_claim.owner_id
           AND r.request_id = shard_claim.request_id;
        IF FOUND THEN
            RETURN got;     -- a retry: the first call's answer, changing nothing
        END IF;
    END IF;
    -- a batch not here yet (its stock never moved here): empty, as far as this shard goes
    IF batch_id IS NOT NULL AND owner_id IS NOT NULL AND
       NOT EXISTS (SELECT FROM coupon_lock.batch b WHERE b.batch_id = shard_claim.batch_id) THEN
        RETURN NULL;
    END IF;
    got := coupon_lock.coupon_claim(batch_id, owner_id);
    IF got IS NOT NULL AND request_id IS NOT NULL THEN
        INSERT INTO coupon_lock.shard_claim_request (batch_id, owner_id, request_id, coupon_id)
        VALUES (batch_id, owner_id, request_id, got);
    END IF;
    RETURN got;
END
$$;
COMMENT ON FUNCTION coupon_lock.shard_claim(bigint, text, text) IS
    'coupon_claim on the owner''s home shard for the router: NULL means none left here (the router then moves stock); with a request_id the first answer is kept';

CREATE FUNCTION coupon_lock.shard_claim_sold_out(batch_id bigint, owner_id text, request_id text)
RETURNS bigint LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM coupon_lock.shard_require();
    IF request_id IS NULL THEN
        RETURN NULL;
    END IF;
    PERFORM coupon_lock.shard_check_id(request_id, 'request_id'), coupon_lock.shard_check_id(owner_id, 'owner_id'),
            coupon_lock.shard_check_count(batch_id, 'batch_id', 1);
    INSERT INTO coupon_lock.shard_claim_request (batch_id, owner_id, request_id, coupon_id)
    VALUES (batch_id, owner_id, request_id, NULL)
    ON CONFLICT ON CONSTRAINT shard_claim_request_pkey DO NOTHING;
    RETURN (SELECT r.coupon_id FROM coupon_lock.shard_claim_request r
             WHERE r.batch_id = shard_claim_sold_out.batch_id AND r.owner_id = shard_claim_sold_out.owner_id
               AND r.request_id = shard_claim_sold_out.request_id);
END
$$;
COMMENT ON FUNCTION coupon_lock.shard_claim_sold_out(bigint, text, text) IS
    'the router found the whole batch sold out: a claim with a request_id keeps NULL as its answer (or the coupon a concurrent retry got)';

-- ---- coupon_issue of a coupon on another shard than the owner's home ----
-- The home shard counts the coupon in the owner's quota under a hold with a
-- ticket; the coupon's shard issues only with a ticket that was not fenced.
-- A hold whose issue never happened is released after fencing its ticket, so
-- a late issue can never use a released hold.

CREATE FUNCTION coupon_lock.shard_quota_hold(batch_id bigint, owner_id text, coupon_id bigint)
RETURNS text LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    t text;
BEGIN
    PERFORM coupon_lock.shard_require(), coupon_lock.shard_check_count(batch_id, 'batch_id', 1),
            coupon_lock.shard_check_id(owner_id, 'owner_id'), coupon_lock.shard_check_count(coupon_id, 'coupon_id', 1);
    INSERT INTO coupon_lock.shard_quota_hold AS h (batch_id, owner_id, coupon_id, ticket)
    VALUES (batch_id, owner_id, coupon_id, gen_random_uuid()::text)
    ON CONFLICT ON CONSTRAINT shard_quota_hold_pkey DO NOTHING
    RETURNING h.ticket INTO t;
    IF FOUND THEN
        PERFORM coupon_lock.shard_quota_take(batch_id, owner_id);   -- the limit's error, or counted
        RETURN t;
    END IF;
    RETURN (SELECT h.ticket FROM coupon_lock.shard_quota_hold h
             WHERE h.batch_id = shard_quota_hold.batch_id AND h.owner_id = shard_quota_hold.owner_id
               AND h.coupon_id = shard_quota_hold.coupon_id);
END
$$;
COMMENT ON FUNCTION coupon_lock.shard_quota_hold(bigint, text, bigint) IS
    'on the owner''s home shard: counts coupon_id (on another shard) in the owner''s quota of the batch, or raises the limit''s error; idempotent; returns the hold''s ticket';

CREATE FUNCTION coupon_lock.shard_quota_release(batch_id bigint, owner_id text, coupon_id bigint)
RETURNS boolean LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    released boolean;
BEGIN
    PERFORM coupon_lock.shard_require();
    DELETE FROM coupon_lock.shard_quota_hold h
     WHERE h.batch_id = shard_quota_release.batch_id AND h.owner_id = shard_quota_release.owner_id
       AND h.coupon_id = shard_quota_release.coupon_id;
    released := FOUND;
    IF released THEN
        PERFORM coupon_lock.shard_quota_give_back(batch_id, owner_id);
    END IF;
    RETURN released;
END
$$;
COMMENT ON FUNCTION coupon_lock.shard_quota_release(bigint, text, bigint) IS
    'ends a hold whose coupon the owner does not hold (its ticket fenced first): the owner''s quota gets the coupon back';

CREATE FUNCTION coupon_lock.shard_quota_holds(older_than interval,
                                              OUT batch_id bigint, OUT owner_id text, OUT coupon_id bigint,
                                              OUT ticket text)
RETURNS SETOF record LANGUAGE sql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT h.batch_id, h.owner_id, h.coupon_id, h.ticket FROM coupon_lock.shard_quota_hold h
     WHERE h.at < now() - $1
$$;
COMMENT ON FUNCTION coupon_lock.shard_quota_holds(interval) IS
    'holds older than older_than, for router_reconcile() to settle';

CREATE FUNCTION coupon_lock.shard_quota_take(batch_id bigint, owner_id text)
RETURNS void AS 'MODULE_PATHNAME', 'coupon_lock_shard_quota_take'
LANGUAGE C VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION coupon_lock.shard_quota_take(bigint, text) IS
    'one more coupon of the batch counted for the owner, or the per-user limit''s error';

CREATE FUNCTION coupon_lock.shard_quota_give_back(batch_id bigint, owner_id text)
RETURNS void AS 'MODULE_PATHNAME', 'coupon_lock_shard_quota_give_back'
LANGUAGE C VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION coupon_lock.shard_quota_give_back(bigint, text) IS
    'one coupon of the batch fewer counted for the owner';

CREATE FUNCTION coupon_lock.shard_issue(coupon_id bigint, owner_id text, expected_version bigint, ticket text)
RETURNS bigint LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM coupon_lock.shard_require(), coupon_lock.shard_check_id(ticket, 'ticket'),
            coupon_lock.shard_check_count(coupon_id, 'coupon_id', 1), coupon_lock.shard_check_id(owner_id, 'owner_id');
    INSERT INTO coupon_lock.shard_issue_ticket (ticket, coupon_id, owner_id, fenced)
    VALUES (ticket, coupon_id, owner_id, false)
    ON CONFLICT ON CONSTRAINT shard_issue_ticket_pkey DO NOTHING;
    IF NOT FOUND AND (SELECT t.fenced FROM coupon_lock.shard_issue_ticket t
                       WHERE t.ticket = shard_issue.ticket) THEN
        RAISE EXCEPTION 'the hold for coupon % was released meanwhile', coupon_id
            USING ERRCODE = '40001', HINT = 'Retry the call.';
    END IF;
    RETURN coupon_lock.coupon_issue(coupon_id, owner_id, expected_version);
END
$$;
COMMENT ON FUNCTION coupon_lock.shard_issue(bigint, text, bigint, text) IS
    'coupon_issue for an owner whose home is another shard, under the hold''s ticket (refused with 40001 once the ticket is fenced)';

CREATE FUNCTION coupon_lock.shard_issue_settle(ticket text, coupon_id bigint, owner_id text)
RETURNS boolean LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM coupon_lock.shard_require(), coupon_lock.shard_check_id(ticket, 'ticket'),
            coupon_lock.shard_check_count(coupon_id, 'coupon_id', 1), coupon_lock.shard_check_id(owner_id, 'owner_id');
    -- fences the ticket when no issue used it; waits for one that is using it
    INSERT INTO coupon_lock.shard_issue_ticket (ticket, coupon_id, owner_id, fenced)
    VALUES (ticket, coupon_id, owner_id, true)
    ON CONFLICT ON CONSTRAINT shard_issue_ticket_pkey DO NOTHING;
    RETURN EXISTS (SELECT FROM coupon_lock.coupon c
                    WHERE c.coupon_id = shard_issue_settle.coupon_id
                      AND c.owner_id = shard_issue_settle.owner_id AND c.state <> 'revoked');
END
$$;
COMMENT ON FUNCTION coupon_lock.shard_issue_settle(text, bigint, text) IS
    'on the coupon''s shard: true while the owner holds the coupon (the hold stays); false (and the ticket fenced) when the hold may be released';

CREATE FUNCTION coupon_lock.shard_issue_probe(coupon_id bigint, owner_id text, expected_version bigint)
RETURNS void LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    -- the issue runs and is undone: its error (version, state, expiry come
    -- before the limit on a single node) is the one the caller must see
    BEGIN
        PERFORM coupon_lock.coupon_issue(coupon_id, owner_id, expected_version);
        RAISE EXCEPTION USING ERRCODE = 'CL999';
    EXCEPTION WHEN SQLSTATE 'CL999' THEN
        RETURN;
    END;
END
$$;
COMMENT ON FUNCTION coupon_lock.shard_issue_probe(bigint, text, bigint) IS
    'raises the error coupon_issue would raise before checking the per-user limit; changes nothing';

CREATE FUNCTION coupon_lock.shard_coupon_batch(coupon_id bigint)
RETURNS bigint LANGUAGE sql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$ SELECT c.batch_id FROM coupon_lock.coupon c WHERE c.coupon_id = $1 $$;
COMMENT ON FUNCTION coupon_lock.shard_coupon_batch(bigint) IS 'the batch of a coupon here; NULL when unknown';

REVOKE ALL ON FUNCTION coupon_lock.shard_require(),
                       coupon_lock.shard_check_id(text, text),
                       coupon_lock.shard_check_count(bigint, text, bigint),
                       coupon_lock.partition_of(bigint),
                       coupon_lock.shard_setup(integer[], integer),
                       coupon_lock.shard_mint(bigint, integer, text, integer, timestamptz, interval),
                       coupon_lock.shard_batch_open(text, integer, integer, timestamptz, interval, integer, integer[], integer[], text[]),
                       coupon_lock.shard_stock(bigint, integer),
                       coupon_lock.shard_stock_give(text, bigint, integer, integer),
                       coupon_lock.shard_stock_receive(text, bigint, integer, integer, text, integer, integer, timestamptz, interval),
                       coupon_lock.shard_transfer_delivered(text),
                       coupon_lock.shard_in_flight(bigint),
                       coupon_lock.shard_claim(bigint, text, text),
                       coupon_lock.shard_claim_sold_out(bigint, text, text),
                       coupon_lock.shard_quota_hold(bigint, text, bigint),
                       coupon_lock.shard_quota_release(bigint, text, bigint),
                       coupon_lock.shard_quota_holds(interval),
                       coupon_lock.shard_quota_take(bigint, text),
                       coupon_lock.shard_quota_give_back(bigint, text),
                       coupon_lock.shard_issue(bigint, text, bigint, text),
                       coupon_lock.shard_issue_settle(text, bigint, text),
                       coupon_lock.shard_issue_probe(bigint, text, bigint),
                       coupon_lock.shard_coupon_batch(bigint)
    FROM PUBLIC;
