-- coupon_lock_router install script, part 2: the coupon functions, routed
--
-- Each public function has the name, signature and result of coupon_lock's;
-- the route_* function under it is the PL/Proxy call (one autocommit
-- transaction on one shard).  The public function adds nothing but the
-- translation of errors (router_error: a shard's error as a single node words
-- it, PL/Proxy's own failures as class 08)
-- and, where one call needs several shards, the order of those calls:
--   create_batch   the batch's home shard, then the other shards' shares;
--   coupon_claim   the owner's home shard; when it has no stock left, stock
--                  moves there from another shard (router_refill) and the
--                  claim is tried again; NULL only when no shard has any;
--   coupon_issue   the coupon's shard, with the owner's quota counted on the
--                  owner's home shard first when that is another database.
-- No coupon rule is decided here: every state, version, limit and validity
-- check runs in coupon_lock on a shard.

CREATE TYPE coupon_lock.coupon_state AS ENUM
    ('available', 'issued', 'frozen', 'redeemed', 'expired', 'revoked');
COMMENT ON TYPE coupon_lock.coupon_state IS
    'life cycle of a coupon, as on every shard: available -> issued -> frozen -> redeemed; expired and revoked are final';

-- ---- calls by coupon id: one shard, no lookup ----

CREATE FUNCTION coupon_lock.route_coupon_freeze(coupon_id bigint, owner_id text, order_id text,
                                                expected_version bigint, ttl interval)
RETURNS bigint LANGUAGE plproxy AS $$
    CLUSTER 'coupon_lock_shards';
    RUN ON coupon_lock.id_partition(coupon_id);
    TARGET coupon_lock.coupon_freeze;
$$;
CREATE FUNCTION coupon_lock.coupon_freeze(coupon_id bigint, owner_id text, order_id text,
                                          expected_version bigint DEFAULT NULL, ttl interval DEFAULT NULL)
RETURNS bigint LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp SET client_min_messages = warning AS $$
DECLARE
    detail text;
    hint   text;
BEGIN
    RETURN coupon_lock.route_coupon_freeze(coupon_id, owner_id, order_id, expected_version, ttl);
EXCEPTION WHEN OTHERS OR query_canceled THEN
    GET STACKED DIAGNOSTICS detail = PG_EXCEPTION_DETAIL, hint = PG_EXCEPTION_HINT;
    PERFORM coupon_lock.router_error(SQLSTATE, SQLERRM, detail, hint, coupon_lock.id_partition(coupon_id));
END
$$;

CREATE FUNCTION coupon_lock.route_coupon_unfreeze(coupon_id bigint, order_id text, expected_version bigint)
RETURNS bigint LANGUAGE plproxy AS $$
    CLUSTER 'coupon_lock_shards';
    RUN ON coupon_lock.id_partition(coupon_id);
    TARGET coupon_lock.coupon_unfreeze;
$$;
CREATE FUNCTION coupon_lock.coupon_unfreeze(coupon_id bigint, order_id text, expected_version bigint DEFAULT NULL)
RETURNS bigint LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp SET client_min_messages = warning AS $$
DECLARE
    detail text;
    hint   text;
BEGIN
    RETURN coupon_lock.route_coupon_unfreeze(coupon_id, order_id, expected_version);
EXCEPTION WHEN OTHERS OR query_canceled THEN
    GET STACKED DIAGNOSTICS detail = PG_EXCEPTION_DETAIL, hint = PG_EXCEPTION_HINT;
    PERFORM coupon_lock.router_error(SQLSTATE, SQLERRM, detail, hint, coupon_lock.id_partition(coupon_id));
END
$$;

CREATE FUNCTION coupon_lock.route_coupon_redeem(coupon_id bigint, order_id text, expected_version bigint)
RETURNS bigint LANGUAGE plproxy AS $$
    CLUSTER 'coupon_lock_shards';
    RUN ON coupon_lock.id_partition(coupon_id);
    TARGET coupon_lock.coupon_redeem;
$$;
CREATE FUNCTION coupon_lock.coupon_redeem(coupon_id bigint, order_id text, expected_version bigint DEFAULT NULL)
RETURNS bigint LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp SET client_min_messages = warning AS $$
DECLARE
    detail text;
    hint   text;
BEGIN
    RETURN coupon_lock.route_coupon_redeem(coupon_id, order_id, expected_version);
EXCEPTION WHEN OTHERS OR query_canceled THEN
    GET STACKED DIAGNOSTICS detail = PG_EXCEPTION_DETAIL, hint = PG_EXCEPTION_HINT;
    PERFORM coupon_lock.router_error(SQLSTATE, SQLERRM, detail, hint, coupon_lock.id_partition(coupon_id));
END
$$;

CREATE FUNCTION coupon_lock.route_coupon_revoke(coupon_id bigint, expected_version bigint)
RETURNS bigint LANGUAGE plproxy AS $$
    CLUSTER 'coupon_lock_shards';
    RUN ON coupon_lock.id_partition(coupon_id);
    TARGET coupon_lock.coupon_revoke;
$$;
CREATE FUNCTION coupon_lock.coupon_revoke(coupon_id bigint, expected_version bigint DEFAULT NULL)
RETURNS bigint LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp SET client_min_messages = warning AS $$
DECLARE
    detail text;
    hint   text;
BEGIN
    RETURN coupon_lock.route_coupon_revoke(coupon_id, expected_version);
EXCEPTION WHEN OTHERS OR query_canceled THEN
    GET STACKED DIAGNOSTICS detail = PG_EXCEPTION_DETAIL, hint = PG_EXCEPTION_HINT;
    PERFORM coupon_lock.router_error(SQLSTATE, SQLERRM, detail, hint, coupon_lock.id_partition(coupon_id));
END
$$;

COMMENT ON FUNCTION coupon_lock.coupon_freeze(bigint, text, text, bigint, interval) IS
    'issued (owned by owner_id) -> frozen for order_id, on the coupon''s shard (see coupon_lock''s coupon_freeze)';
COMMENT ON FUNCTION coupon_lock.coupon_unfreeze(bigint, text, bigint) IS
    'frozen by order_id -> issued (expired when the batch''s valid_until has passed), on the coupon''s shard';
COMMENT ON FUNCTION coupon_lock.coupon_redeem(bigint, text, bigint) IS
    'frozen by order_id (freeze not lapsed) -> redeemed, on the coupon''s shard';
COMMENT ON FUNCTION coupon_lock.coupon_revoke(bigint, bigint) IS
    'available, issued or frozen -> revoked, on the coupon''s shard';
COMMENT ON FUNCTION coupon_lock.route_coupon_freeze(bigint, text, text, bigint, interval) IS 'PL/Proxy call of coupon_freeze';
COMMENT ON FUNCTION coupon_lock.route_coupon_unfreeze(bigint, text, bigint) IS 'PL/Proxy call of coupon_unfreeze';
COMMENT ON FUNCTION coupon_lock.route_coupon_redeem(bigint, text, bigint) IS 'PL/Proxy call of coupon_redeem';
COMMENT ON FUNCTION coupon_lock.route_coupon_revoke(bigint, bigint) IS 'PL/Proxy call of coupon_revoke';

-- ---- stock moves between shards ----
-- A move is a give on one shard and a receive on another, each its own
-- autocommit transaction, both under one transfer id; then the give is
-- marked delivered.  Every step is idempotent, so whoever finds a give not
-- yet delivered (router_refill near sell-out, router_reconcile) completes it
-- to the same destination, and nothing is minted twice.

CREATE FUNCTION coupon_lock.route_shard_stock(part integer, batch_id bigint, cap integer)
RETURNS integer LANGUAGE plproxy AS $$
    CLUSTER 'coupon_lock_shards';
    RUN ON part;
    SELECT coupon_lock.shard_stock(batch_id, cap);
$$;

CREATE FUNCTION coupon_lock.route_shard_stock_give(part integer, transfer_id text, batch_id bigint,
                                                   to_partition integer, quantity integer,
                                                   OUT given integer, OUT name text, OUT total_quantity integer,
                                                   OUT per_user_limit integer, OUT valid_until timestamptz,
                                                   OUT freeze_ttl interval)
LANGUAGE plproxy AS $$
    CLUSTER 'coupon_lock_shards';
    RUN ON part;
    SELECT * FROM coupon_lock.shard_stock_give(transfer_id, batch_id, to_partition, quantity);
$$;

CREATE FUNCTION coupon_lock.route_shard_stock_receive(part integer, transfer_id text, batch_id bigint,
                                                      from_partition integer, quantity integer, name text,
                                                      total_quantity integer, per_user_limit integer,
                                                      valid_until timestamptz, freeze_ttl interval)
RETURNS integer LANGUAGE plproxy AS $$
    CLUSTER 'coupon_lock_shards';
    RUN ON part;
    SELECT coupon_lock.shard_stock_receive(transfer_id, batch_id, from_partition, quantity, name,
                                           total_quantity, per_user_limit, valid_until, freeze_ttl);
$$;

CREATE FUNCTION coupon_lock.route_shard_transfer_delivered(part integer, transfer_id text)
RETURNS boolean LANGUAGE plproxy AS $$
    CLUSTER 'coupon_lock_shards';
    RUN ON part;
    SELECT coupon_lock.shard_transfer_delivered(transfer_id);
$$;

CREATE FUNCTION coupon_lock.route_shard_in_flight(part integer, of_batch bigint,
                                                  OUT transfer_id text, OUT batch_id bigint, OUT to_partition integer,
                                                  OUT quantity integer, OUT name text, OUT total_quantity integer,
                                                  OUT per_user_limit integer, OUT valid_until timestamptz,
                                                  OUT freeze_ttl interval, OUT at timestamptz)
RETURNS SETOF record LANGUAGE plproxy AS $$
    CLUSTER 'coupon_lock_shards';
    RUN ON part;
    SELECT * FROM coupon_lock.shard_in_flight(of_batch);
$$;

-- Delivers one give: the receive on its destination, then "delivered" at its source.
CREATE FUNCTION coupon_lock.router_deliver(from_lead integer, to_lead integer, transfer_id text, batch_id bigint,
                                           quantity integer, name text, total_quantity integer,
                                           per_user_limit integer, valid_until timestamptz, freeze_ttl interval)
RETURNS integer LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    received integer;
BEGIN
    received := coupon_lock.route_shard_stock_receive(to_lead, transfer_id, batch_id, from_lead, quantity, name,
                                                      total_quantity, per_user_limit, valid_until, freeze_ttl);
    PERFORM coupon_lock.route_shard_transfer_delivered(from_lead, transfer_id);
    RETURN received;
END
$$;

-- Completes the gives in flight (of one batch, or of all when batch_id is
-- NULL).  Returns how many it delivered; a shard it cannot reach is skipped
-- with a WARNING (its gives wait for the next run).
CREATE FUNCTION coupon_lock.router_deliver_in_flight(of_batch bigint, OUT delivered integer, OUT unreachable integer)
LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    src integer;
    t   record;
BEGIN
    delivered := 0;
    unreachable := 0;
    FOR src IN SELECT coupon_lock.router_leads() LOOP
        BEGIN
            FOR t IN SELECT * FROM coupon_lock.route_shard_in_flight(src, of_batch) LOOP
                PERFORM coupon_lock.router_deliver(src, t.to_partition, t.transfer_id, t.batch_id, t.quantity,
                                                   t.name, t.total_quantity, t.per_user_limit, t.valid_until,
                                                   t.freeze_ttl);
                delivered := delivered + 1;
            END LOOP;
        EXCEPTION WHEN internal_error OR connection_failure THEN
            RAISE WARNING 'stock in flight from partition % not delivered: %', src, SQLERRM;
            unreachable := unreachable + 1;
        END;
    END LOOP;
END
$$;

-- Moves stock of a batch to the shard of partition `home`, from the shard
-- that has the most.  True when stock moved or in-flight stock was delivered
-- (the claim is worth trying again); false only when no other shard has any
-- and none is in flight.  A shard it cannot reach while no other has stock
-- makes it raise the class 08 error: it cannot tell that the batch is sold out.
CREATE FUNCTION coupon_lock.router_refill(batch_id bigint, home integer)
RETURNS boolean LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    home_lead   integer := coupon_lock.router_lead_of(home);
    donor       integer;
    most        integer;
    stock       integer;
    src         integer;
    down        integer;
    down_error  text;
    g           record;
    tid         text;
    flight      record;
BEGIN
    LOOP
        donor := NULL;
        most := 0;
        FOR src IN SELECT l FROM coupon_lock.router_leads() l WHERE l <> home_lead LOOP
            BEGIN
                stock := coupon_lock.route_shard_stock(src, batch_id, 1000000);
            EXCEPTION WHEN internal_error OR connection_failure THEN
                down := src;
                down_error := SQLERRM;
                CONTINUE;
            END;
            IF coalesce(stock, 0) > most THEN
                most := stock;
                donor := src;
            END IF;
        END LOOP;

        IF donor IS NULL THEN
            flight := coupon_lock.router_deliver_in_flight(batch_id);
            IF flight.delivered > 0 THEN
                RETURN true;
            END IF;
            IF down IS NOT NULL OR flight.unreachable > 0 THEN
                PERFORM coupon_lock.router_unavailable(coalesce(down, home_lead),
                                                       coalesce(down_error, 'stock in flight cannot be delivered'));
            END IF;
            RETURN false;
        END IF;

        -- half of what the donor has, so that shards drain together
        tid := gen_random_uuid()::text;
        g := coupon_lock.route_shard_stock_give(donor, tid, batch_id, home_lead, greatest(1, most / 2));
        IF g.given > 0 THEN
            PERFORM coupon_lock.router_deliver(donor, home_lead, tid, batch_id, g.given, g.name, g.total_quantity,
                                               g.per_user_limit, g.valid_until, g.freeze_ttl);
            RETURN true;
        END IF;
        -- others took the donor's stock meanwhile: look again
    END LOOP;
END
$$;

-- ---- create_batch: the quantity spread over the partitions ----

CREATE FUNCTION coupon_lock.route_create_batch(name text, quantity integer, per_user_limit integer,
                                               valid_until timestamptz, freeze_ttl interval)
RETURNS bigint LANGUAGE plproxy AS $$
    CLUSTER 'coupon_lock_shards';
    RUN ON 0;
    TARGET coupon_lock.create_batch;
$$;

CREATE FUNCTION coupon_lock.route_shard_batch_open(part integer, name text, quantity integer, per_user_limit integer,
                                                   valid_until timestamptz, freeze_ttl interval, share integer,
                                                   give_to integer[], give_quantities integer[], transfer_ids text[])
RETURNS bigint LANGUAGE plproxy AS $$
    CLUSTER 'coupon_lock_shards';
    RUN ON part;
    SELECT coupon_lock.shard_batch_open(name, quantity, per_user_limit, valid_until, freeze_ttl, share,
                                        give_to, give_quantities, transfer_ids);
$$;

CREATE FUNCTION coupon_lock.create_batch(name text, quantity integer, per_user_limit integer DEFAULT 1,
                                         valid_until timestamptz DEFAULT NULL,
                                         freeze_ttl interval DEFAULT '15 minutes')
RETURNS bigint LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp SET client_min_messages = warning AS $$
DECLARE
    n          integer := (SELECT count(*)::integer FROM coupon_lock.router_partitions());
    home       integer;
    home_share integer;
    batch      bigint;
    share      record;
    detail     text;
    hint       text;
BEGIN
    IF quantity IS NULL OR quantity < 1 OR n = 0 THEN
        -- nothing to spread: the shard of partition 0 reports the argument as coupon_lock does
        RETURN coupon_lock.route_create_batch(name, quantity, per_user_limit, valid_until, freeze_ttl);
    END IF;
    -- the batch's home (its id's partition) is drawn, so that batches spread too
    home := coupon_lock.router_lead_of((random() * n)::integer);

    -- each partition's share of the quantity, summed per database
    CREATE TEMP TABLE IF NOT EXISTS coupon_lock_router_shares
        (lead integer, share integer, transfer_id text) ON COMMIT DROP;
    TRUNCATE coupon_lock_router_shares;
    INSERT INTO coupon_lock_router_shares
    SELECT p.lead, sum(quantity / n + CASE WHEN p.part < quantity % n THEN 1 ELSE 0 END)::integer,
           gen_random_uuid()::text
      FROM coupon_lock.router_partitions() p GROUP BY p.lead;
    -- the home keeps at least one coupon: its share creates the batch there
    IF (SELECT s.share FROM coupon_lock_router_shares s WHERE s.lead = home) = 0 THEN
        UPDATE coupon_lock_router_shares s SET share = s.share - 1
         WHERE s.lead = (SELECT s2.lead FROM coupon_lock_router_shares s2 ORDER BY s2.share DESC LIMIT 1);
        UPDATE coupon_lock_router_shares s SET share = 1 WHERE s.lead = home;
    END IF;
    SELECT s.share INTO home_share FROM coupon_lock_router_shares s WHERE s.lead = home;
    DELETE FROM coupon_lock_router_shares s WHERE s.lead = home OR s.share = 0;

    batch := coupon_lock.route_shard_batch_open(
                 home, name, quantity, per_user_limit, valid_until, freeze_ttl, home_share,
                 (SELECT coalesce(array_agg(s.lead ORDER BY s.lead), '{}') FROM coupon_lock_router_shares s),
                 (SELECT coalesce(array_agg(s.share ORDER BY s.lead), '{}') FROM coupon_lock_router_shares s),
                 (SELECT coalesce(array_agg(s.transfer_id ORDER BY s.lead), '{}') FROM coupon_lock_router_shares s));

    -- the other shares leave the home as transfers; one that cannot be
    -- delivered now stays in flight for router_reconcile()
    FOR share IN SELECT * FROM coupon_lock_router_shares ORDER BY lead LOOP
        BEGIN
            PERFORM coupon_lock.router_deliver(home, share.lead, share.transfer_id, batch, share.share, name,
                                               quantity, per_user_limit, valid_until, freeze_ttl);
        EXCEPTION WHEN OTHERS OR query_canceled THEN
            -- the batch exists: a share not delivered now stays in flight
            RAISE WARNING 'the share of batch % for partition % stays in flight: %', batch, share.lead, SQLERRM
                USING HINT = 'SELECT coupon_lock.router_reconcile() delivers it once that shard answers.';
        END;
    END LOOP;
    RETURN batch;
EXCEPTION WHEN OTHERS OR query_canceled THEN
    GET STACKED DIAGNOSTICS detail = PG_EXCEPTION_DETAIL, hint = PG_EXCEPTION_HINT;
    PERFORM coupon_lock.router_error(SQLSTATE, SQLERRM, detail, hint, coalesce(home, 0));
END
$$;
COMMENT ON FUNCTION coupon_lock.create_batch(text, integer, integer, timestamptz, interval) IS
    'creates a batch whose quantity is spread over the partitions: the batch on a drawn home shard, each other shard''s share moved there; returns batch_id';
COMMENT ON FUNCTION coupon_lock.route_create_batch(text, integer, integer, timestamptz, interval) IS
    'PL/Proxy call of create_batch on partition 0 (only for arguments it refuses)';
COMMENT ON FUNCTION coupon_lock.route_shard_batch_open(integer, text, integer, integer, timestamptz, interval, integer, integer[], integer[], text[]) IS
    'PL/Proxy call of shard_batch_open on the batch''s home shard';

-- ---- coupon_claim: the owner's home shard, stock moving there when it runs out ----

CREATE FUNCTION coupon_lock.route_shard_claim(batch_id bigint, owner_id text, request_id text)
RETURNS bigint LANGUAGE plproxy AS $$
    CLUSTER 'coupon_lock_shards';
    RUN ON coupon_lock.owner_partition(owner_id);
    SELECT coupon_lock.shard_claim(batch_id, owner_id, request_id);
$$;

CREATE FUNCTION coupon_lock.route_shard_claim_sold_out(batch_id bigint, owner_id text, request_id text)
RETURNS bigint LANGUAGE plproxy AS $$
    CLUSTER 'coupon_lock_shards';
    RUN ON coupon_lock.owner_partition(owner_id);
    SELECT coupon_lock.shard_claim_sold_out(batch_id, owner_id, request_id);
$$;

CREATE FUNCTION coupon_lock.route_coupon_claim(batch_id bigint, owner_id text)
RETURNS bigint LANGUAGE plproxy AS $$
    CLUSTER 'coupon_lock_shards';
    RUN ON coupon_lock.owner_partition(owner_id);
    SELECT coupon_lock.coupon_claim(batch_id, owner_id);
$$;

CREATE FUNCTION coupon_lock.coupon_claim(batch_id bigint, owner_id text, request_id text DEFAULT NULL)
RETURNS bigint LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp SET client_min_messages = warning AS $$
DECLARE
    detail text;
    hint   text;
    got bigint;
BEGIN
    LOOP
        got := coupon_lock.route_shard_claim(batch_id, owner_id, request_id);
        IF got IS NOT NULL THEN
            RETURN got;
        END IF;
        IF NOT coupon_lock.router_refill(batch_id, coupon_lock.owner_partition(owner_id)) THEN
            -- no shard has stock: sold out, unless no shard has the batch at all,
            -- which the plain claim on the home shard reports (CL002)
            IF NOT EXISTS (SELECT FROM coupon_lock.router_leads() l
                            WHERE coupon_lock.route_shard_stock(l, batch_id, 1) IS NOT NULL) THEN
                RETURN coupon_lock.route_coupon_claim(batch_id, owner_id);
            END IF;
            RETURN coupon_lock.route_shard_claim_sold_out(batch_id, owner_id, request_id);
        END IF;
    END LOOP;
EXCEPTION WHEN OTHERS OR query_canceled THEN
    GET STACKED DIAGNOSTICS detail = PG_EXCEPTION_DETAIL, hint = PG_EXCEPTION_HINT;
    PERFORM coupon_lock.router_error(SQLSTATE, SQLERRM, detail, hint, coupon_lock.owner_partition(owner_id));
END
$$;
COMMENT ON FUNCTION coupon_lock.coupon_claim(bigint, text, text) IS
    'issues one available coupon of the batch to owner_id on the owner''s home shard (stock moves there when it runs out); NULL only when every shard is sold out; a repeated request_id gets the first answer';

-- ---- coupon_issue: the coupon's shard; the owner's quota on the owner's home ----

CREATE FUNCTION coupon_lock.route_coupon_issue(coupon_id bigint, owner_id text, expected_version bigint)
RETURNS bigint LANGUAGE plproxy AS $$
    CLUSTER 'coupon_lock_shards';
    RUN ON coupon_lock.id_partition(coupon_id);
    TARGET coupon_lock.coupon_issue;
$$;

CREATE FUNCTION coupon_lock.route_shard_coupon_batch(coupon_id bigint)
RETURNS bigint LANGUAGE plproxy AS $$
    CLUSTER 'coupon_lock_shards';
    RUN ON coupon_lock.id_partition(coupon_id);
    SELECT coupon_lock.shard_coupon_batch(coupon_id);
$$;

CREATE FUNCTION coupon_lock.route_shard_quota_hold(batch_id bigint, owner_id text, coupon_id bigint)
RETURNS text LANGUAGE plproxy AS $$
    CLUSTER 'coupon_lock_shards';
    RUN ON coupon_lock.owner_partition(owner_id);
    SELECT coupon_lock.shard_quota_hold(batch_id, owner_id, coupon_id);
$$;

CREATE FUNCTION coupon_lock.route_shard_quota_release(batch_id bigint, owner_id text, coupon_id bigint)
RETURNS boolean LANGUAGE plproxy AS $$
    CLUSTER 'coupon_lock_shards';
    RUN ON coupon_lock.owner_partition(owner_id);
    SELECT coupon_lock.shard_quota_release(batch_id, owner_id, coupon_id);
$$;

CREATE FUNCTION coupon_lock.route_shard_quota_holds(part integer, older_than interval,
                                                    OUT batch_id bigint, OUT owner_id text, OUT coupon_id bigint,
                                                    OUT ticket text)
RETURNS SETOF record LANGUAGE plproxy AS $$
    CLUSTER 'coupon_lock_shards';
    RUN ON part;
    SELECT * FROM coupon_lock.shard_quota_holds(older_than);
$$;

CREATE FUNCTION coupon_lock.route_shard_issue(coupon_id bigint, owner_id text, expected_version bigint, ticket text)
RETURNS bigint LANGUAGE plproxy AS $$
    CLUSTER 'coupon_lock_shards';
    RUN ON coupon_lock.id_partition(coupon_id);
    SELECT coupon_lock.shard_issue(coupon_id, owner_id, expected_version, ticket);
$$;

CREATE FUNCTION coupon_lock.route_shard_issue_settle(ticket text, coupon_id bigint, owner_id text)
RETURNS boolean LANGUAGE plproxy AS $$
    CLUSTER 'coupon_lock_shards';
    RUN ON coupon_lock.id_partition(coupon_id);
    SELECT coupon_lock.shard_issue_settle(ticket, coupon_id, owner_id);
$$;

CREATE FUNCTION coupon_lock.route_shard_issue_probe(coupon_id bigint, owner_id text, expected_version bigint)
RETURNS void LANGUAGE plproxy AS $$
    CLUSTER 'coupon_lock_shards';
    RUN ON coupon_lock.id_partition(coupon_id);
    SELECT coupon_lock.shard_issue_probe(coupon_id, owner_id, expected_version);
$$;

CREATE FUNCTION coupon_lock.coupon_issue(coupon_id bigint, owner_id text, expected_version bigint DEFAULT NULL)
RETURNS bigint LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp SET client_min_messages = warning AS $$
DECLARE
    detail text;
    hint   text;
    batch  bigint;
    ticket text;
BEGIN
    IF coupon_id IS NULL OR owner_id IS NULL OR
       coupon_lock.router_lead_of(coupon_lock.id_partition(coupon_id)) =
       coupon_lock.router_lead_of(coupon_lock.owner_partition(owner_id)) THEN
        -- one database: its own transaction counts the quota (and reports NULLs)
        RETURN coupon_lock.route_coupon_issue(coupon_id, owner_id, expected_version);
    END IF;
    batch := coupon_lock.route_shard_coupon_batch(coupon_id);
    IF batch IS NULL THEN
        RETURN coupon_lock.route_coupon_issue(coupon_id, owner_id, expected_version);   -- CL001
    END IF;
    -- the owner's home counts the coupon first: the limit holds over all shards
    BEGIN
        ticket := coupon_lock.route_shard_quota_hold(batch, owner_id, coupon_id);
    EXCEPTION WHEN SQLSTATE 'CL005' THEN
        -- a single node checks version, state and validity before the limit
        PERFORM coupon_lock.route_shard_issue_probe(coupon_id, owner_id, expected_version);
        RAISE;
    END;
    BEGIN
        RETURN coupon_lock.route_shard_issue(coupon_id, owner_id, expected_version, ticket);
    EXCEPTION WHEN OTHERS THEN
        -- no issue happened (or an earlier one stands): settle the hold, then report
        IF NOT coupon_lock.route_shard_issue_settle(ticket, coupon_id, owner_id) THEN
            PERFORM coupon_lock.route_shard_quota_release(batch, owner_id, coupon_id);
        END IF;
        RAISE;
    END;
EXCEPTION WHEN OTHERS OR query_canceled THEN
    GET STACKED DIAGNOSTICS detail = PG_EXCEPTION_DETAIL, hint = PG_EXCEPTION_HINT;
    PERFORM coupon_lock.router_error(SQLSTATE, SQLERRM, detail, hint, coupon_lock.id_partition(coupon_id));
END
$$;
COMMENT ON FUNCTION coupon_lock.coupon_issue(bigint, text, bigint) IS
    'available -> issued to owner_id on the coupon''s shard, the owner''s quota counted on the owner''s home shard; returns the new version';

-- ---- sweeps: every shard database ----

CREATE FUNCTION coupon_lock.route_release_expired_freezes(part integer, max_rows integer)
RETURNS integer LANGUAGE plproxy AS $$
    CLUSTER 'coupon_lock_shards';
    RUN ON part;
    SELECT coupon_lock.release_expired_freezes(max_rows);
$$;

CREATE FUNCTION coupon_lock.route_expire_coupons(part integer, max_rows integer)
RETURNS integer LANGUAGE plproxy AS $$
    CLUSTER 'coupon_lock_shards';
    RUN ON part;
    SELECT coupon_lock.expire_coupons(max_rows);
$$;

-- One sweep on every shard database in turn, the counts added up.
CREATE FUNCTION coupon_lock.router_sweep(sweep text, max_rows integer)
RETURNS integer LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp SET client_min_messages = warning AS $$
DECLARE
    lead   integer;
    done   integer := 0;
    detail text;
    hint   text;
BEGIN
    FOR lead IN SELECT coupon_lock.router_leads() LOOP
        done := done + CASE sweep WHEN 'release' THEN coupon_lock.route_release_expired_freezes(lead, max_rows)
                                  ELSE coupon_lock.route_expire_coupons(lead, max_rows) END;
    END LOOP;
    RETURN done;
EXCEPTION WHEN OTHERS OR query_canceled THEN
    GET STACKED DIAGNOSTICS detail = PG_EXCEPTION_DETAIL, hint = PG_EXCEPTION_HINT;
    PERFORM coupon_lock.router_error(SQLSTATE, SQLERRM, detail, hint, coalesce(lead, 0));
END
$$;
COMMENT ON FUNCTION coupon_lock.router_sweep(text, integer) IS
    'runs release_expired_freezes (sweep ''release'') or expire_coupons on every shard database; the total';

CREATE FUNCTION coupon_lock.release_expired_freezes(max_rows integer DEFAULT 1000)
RETURNS integer LANGUAGE sql VOLATILE SET search_path = pg_catalog, pg_temp
AS $$ SELECT coupon_lock.router_sweep('release', max_rows) $$;
COMMENT ON FUNCTION coupon_lock.release_expired_freezes(integer) IS
    'on every shard database: frozen coupons past frozen_until -> issued (up to max_rows each); returns how many in all';

CREATE FUNCTION coupon_lock.expire_coupons(max_rows integer DEFAULT 1000)
RETURNS integer LANGUAGE sql VOLATILE SET search_path = pg_catalog, pg_temp
AS $$ SELECT coupon_lock.router_sweep('expire', max_rows) $$;
COMMENT ON FUNCTION coupon_lock.expire_coupons(integer) IS
    'on every shard database: available and issued coupons of expired batches -> expired (up to max_rows each); returns how many in all';

-- ---- the reconciler ----

CREATE FUNCTION coupon_lock.router_reconcile(hold_age interval DEFAULT '1 minute',
                                             OUT transfers_delivered integer, OUT holds_released integer)
LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    flight record;
    lead   integer;
    h      record;
BEGIN
    flight := coupon_lock.router_deliver_in_flight(NULL);
    transfers_delivered := flight.delivered;
    holds_released := 0;
    -- holds of issues that never happened (a router that died between the
    -- two calls, or a coupon revoked since) give the owner's quota back
    FOR lead IN SELECT coupon_lock.router_leads() LOOP
        BEGIN
            FOR h IN SELECT * FROM coupon_lock.route_shard_quota_holds(lead, hold_age) LOOP
                IF NOT coupon_lock.route_shard_issue_settle(h.ticket, h.coupon_id, h.owner_id) THEN
                    PERFORM coupon_lock.route_shard_quota_release(h.batch_id, h.owner_id, h.coupon_id);
                    holds_released := holds_released + 1;
                END IF;
            END LOOP;
        EXCEPTION WHEN internal_error OR connection_failure THEN
            RAISE WARNING 'holds on partition % not settled: %', lead, SQLERRM;
        END;
    END LOOP;
END
$$;
COMMENT ON FUNCTION coupon_lock.router_reconcile(interval) IS
    'delivers every stock transfer in flight and releases per-user holds (older than hold_age) whose coupon the owner does not hold; run it every few seconds (docs/scaling.md)';

COMMENT ON FUNCTION coupon_lock.route_shard_stock(integer, bigint, integer) IS 'PL/Proxy call of shard_stock';
COMMENT ON FUNCTION coupon_lock.route_shard_stock_give(integer, text, bigint, integer, integer) IS 'PL/Proxy call of shard_stock_give';
COMMENT ON FUNCTION coupon_lock.route_shard_stock_receive(integer, text, bigint, integer, integer, text, integer, integer, timestamptz, interval) IS 'PL/Proxy call of shard_stock_receive';
COMMENT ON FUNCTION coupon_lock.route_shard_transfer_delivered(integer, text) IS 'PL/Proxy call of shard_transfer_delivered';
COMMENT ON FUNCTION coupon_lock.route_shard_in_flight(integer, bigint) IS 'PL/Proxy call of shard_in_flight';
COMMENT ON FUNCTION coupon_lock.router_deliver(integer, integer, text, bigint, integer, text, integer, integer, timestamptz, interval) IS
    'completes one stock transfer: received at its destination, then marked delivered at its source (both idempotent)';
COMMENT ON FUNCTION coupon_lock.router_deliver_in_flight(bigint) IS
    'completes the stock transfers in flight (of one batch or all); counts delivered ones and shards it could not reach';
COMMENT ON FUNCTION coupon_lock.router_refill(bigint, integer) IS
    'moves stock of a batch to the home partition''s shard from the shard with the most; false when no shard has any';
COMMENT ON FUNCTION coupon_lock.route_shard_claim(bigint, text, text) IS 'PL/Proxy call of shard_claim on the owner''s home';
COMMENT ON FUNCTION coupon_lock.route_shard_claim_sold_out(bigint, text, text) IS 'PL/Proxy call of shard_claim_sold_out on the owner''s home';
COMMENT ON FUNCTION coupon_lock.route_coupon_claim(bigint, text) IS 'PL/Proxy call of coupon_claim on the owner''s home (reports an unknown batch)';
COMMENT ON FUNCTION coupon_lock.route_coupon_issue(bigint, text, bigint) IS 'PL/Proxy call of coupon_issue';
COMMENT ON FUNCTION coupon_lock.route_shard_coupon_batch(bigint) IS 'PL/Proxy call of shard_coupon_batch';
COMMENT ON FUNCTION coupon_lock.route_shard_quota_hold(bigint, text, bigint) IS 'PL/Proxy call of shard_quota_hold on the owner''s home';
COMMENT ON FUNCTION coupon_lock.route_shard_quota_release(bigint, text, bigint) IS 'PL/Proxy call of shard_quota_release on the owner''s home';
COMMENT ON FUNCTION coupon_lock.route_shard_quota_holds(integer, interval) IS 'PL/Proxy call of shard_quota_holds';
COMMENT ON FUNCTION coupon_lock.route_shard_issue(bigint, text, bigint, text) IS 'PL/Proxy call of shard_issue';
COMMENT ON FUNCTION coupon_lock.route_shard_issue_settle(text, bigint, text) IS 'PL/Proxy call of shard_issue_settle';
COMMENT ON FUNCTION coupon_lock.route_shard_issue_probe(bigint, text, bigint) IS 'PL/Proxy call of shard_issue_probe';
COMMENT ON FUNCTION coupon_lock.route_release_expired_freezes(integer, integer) IS 'PL/Proxy call of release_expired_freezes';
COMMENT ON FUNCTION coupon_lock.route_expire_coupons(integer, integer) IS 'PL/Proxy call of expire_coupons';

-- None of these is open to PUBLIC, as in coupon_lock; the README shows the grants.
DO $$
DECLARE
    f regprocedure;
BEGIN
    FOR f IN SELECT p.oid FROM pg_catalog.pg_proc p
              WHERE p.pronamespace = 'coupon_lock'::regnamespace LOOP
        EXECUTE format('REVOKE ALL ON FUNCTION %s FROM PUBLIC', f);
    END LOOP;
END
$$;
