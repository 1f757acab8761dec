-- coupon_lock_router install script, part 3: the tables of all shards as read-only views
--
-- Each view asks every shard database once (its lead partition) and shows
-- the rows as one table.  They are for reading and inspection: a query with
-- a WHERE clause still reads every shard, so an application that looks up
-- one coupon often reads it on its shard or keeps what the calls return.

CREATE FUNCTION coupon_lock.route_batches(part integer,
                                          OUT batch_id bigint, OUT name text, OUT quantity integer,
                                          OUT per_user_limit integer, OUT valid_until timestamptz,
                                          OUT freeze_ttl interval, OUT created_at timestamptz)
RETURNS SETOF record LANGUAGE plproxy AS $$
    CLUSTER 'coupon_lock_shards';
    RUN ON part;
    -- one row per batch, from its home shard, with its whole quantity
    SELECT b.batch_id, b.name, coalesce(s.total_quantity, b.quantity) AS quantity, b.per_user_limit,
           b.valid_until, b.freeze_ttl, b.created_at
      FROM coupon_lock.batch b LEFT JOIN coupon_lock.shard_batch s ON s.batch_id = b.batch_id
     WHERE s.home IS NOT FALSE;
$$;

CREATE FUNCTION coupon_lock.route_coupons(part integer,
                                          OUT coupon_id bigint, OUT batch_id bigint, OUT code text,
                                          OUT state coupon_lock.coupon_state, OUT owner_id text, OUT order_id text,
                                          OUT version bigint, OUT frozen_until timestamptz, OUT updated_at timestamptz)
RETURNS SETOF record LANGUAGE plproxy AS $$
    CLUSTER 'coupon_lock_shards';
    RUN ON part;
    SELECT coupon_id, batch_id, code, state, owner_id, order_id, version, frozen_until, updated_at
      FROM coupon_lock.coupon;
$$;

CREATE FUNCTION coupon_lock.route_coupon_events(part integer,
                                                OUT event_id bigint, OUT coupon_id bigint, OUT op text,
                                                OUT from_state coupon_lock.coupon_state,
                                                OUT to_state coupon_lock.coupon_state, OUT version bigint,
                                                OUT owner_id text, OUT order_id text, OUT at timestamptz)
RETURNS SETOF record LANGUAGE plproxy AS $$
    CLUSTER 'coupon_lock_shards';
    RUN ON part;
    SELECT event_id, coupon_id, op, from_state, to_state, version, owner_id, order_id, at
      FROM coupon_lock.coupon_event;
$$;

CREATE VIEW coupon_lock.batch AS
SELECT b.* FROM coupon_lock.router_leads() l, LATERAL coupon_lock.route_batches(l) b;
COMMENT ON VIEW coupon_lock.batch IS
    'every batch of every shard, once, with its whole quantity (read-only; read on each call)';

CREATE VIEW coupon_lock.coupon AS
SELECT c.* FROM coupon_lock.router_leads() l, LATERAL coupon_lock.route_coupons(l) c;
COMMENT ON VIEW coupon_lock.coupon IS
    'every coupon of every shard (read-only; read on each call)';

CREATE VIEW coupon_lock.coupon_event AS
SELECT e.* FROM coupon_lock.router_leads() l, LATERAL coupon_lock.route_coupon_events(l) e;
COMMENT ON VIEW coupon_lock.coupon_event IS
    'the ledgers of every shard (read-only; read on each call)';

COMMENT ON FUNCTION coupon_lock.route_batches(integer) IS 'PL/Proxy read of one shard''s batches';
COMMENT ON FUNCTION coupon_lock.route_coupons(integer) IS 'PL/Proxy read of one shard''s coupons';
COMMENT ON FUNCTION coupon_lock.route_coupon_events(integer) IS 'PL/Proxy read of one shard''s ledger';

REVOKE ALL ON FUNCTION coupon_lock.route_batches(integer), coupon_lock.route_coupons(integer),
                       coupon_lock.route_coupon_events(integer)
    FROM PUBLIC;
REVOKE ALL ON coupon_lock.batch, coupon_lock.coupon, coupon_lock.coupon_event FROM PUBLIC;
