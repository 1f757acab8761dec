-- coupon_lock_router install script, part 4: leases, routed by name
--
-- A lease lives on the shard its name hashes to, so its fencing tokens rise
-- there as on a single node.

CREATE FUNCTION coupon_lock.route_lease_acquire(name text, holder text, ttl interval)
RETURNS bigint LANGUAGE plproxy AS $$
    CLUSTER 'coupon_lock_shards';
    RUN ON coupon_lock.owner_partition(name);
    TARGET coupon_lock.lease_acquire;
$$;
CREATE FUNCTION coupon_lock.lease_acquire(name text, holder text, ttl interval)
RETURNS bigint LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp SET client_min_messages = warning AS $$
DECLARE
    detail text;
    hint   text;
BEGIN
    RETURN coupon_lock.route_lease_acquire(name, holder, ttl);
EXCEPTION WHEN OTHERS OR query_canceled THEN
    GET STACKED DIAGNOSTICS detail = PG_EXCEPTION_DETAIL, hint = PG_EXCEPTION_HINT;
    PERFORM coupon_lock.router_error(SQLSTATE, SQLERRM, detail, hint, coupon_lock.owner_partition(name));
END
$$;

CREATE FUNCTION coupon_lock.route_lease_renew(name text, holder text, ttl interval)
RETURNS boolean LANGUAGE plproxy AS $$
    CLUSTER 'coupon_lock_shards';
    RUN ON coupon_lock.owner_partition(name);
    TARGET coupon_lock.lease_renew;
$$;
CREATE FUNCTION coupon_lock.lease_renew(name text, holder text, ttl interval)
RETURNS boolean LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp SET client_min_messages = warning AS $$
DECLARE
    detail text;
    hint   text;
BEGIN
    RETURN coupon_lock.route_lease_renew(name, holder, ttl);
EXCEPTION WHEN OTHERS OR query_canceled THEN
    GET STACKED DIAGNOSTICS detail = PG_EXCEPTION_DETAIL, hint = PG_EXCEPTION_HINT;
    PERFORM coupon_lock.router_error(SQLSTATE, SQLERRM, detail, hint, coupon_lock.owner_partition(name));
END
$$;

CREATE FUNCTION coupon_lock.route_lease_release(name text, holder text)
RETURNS boolean LANGUAGE plproxy AS $$
    CLUSTER 'coupon_lock_shards';
    RUN ON coupon_lock.owner_partition(name);
    TARGET coupon_lock.lease_release;
$$;
CREATE FUNCTION coupon_lock.lease_release(name text, holder text)
RETURNS boolean LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp SET client_min_messages = warning AS $$
DECLARE
    detail text;
    hint   text;
BEGIN
    RETURN coupon_lock.route_lease_release(name, holder);
EXCEPTION WHEN OTHERS OR query_canceled THEN
    GET STACKED DIAGNOSTICS detail = PG_EXCEPTION_DETAIL, hint = PG_EXCEPTION_HINT;
    PERFORM coupon_lock.router_error(SQLSTATE, SQLERRM, detail, hint, coupon_lock.owner_partition(name));
END
$$;

CREATE FUNCTION coupon_lock.route_lease_check(name text, fence bigint)
RETURNS boolean LANGUAGE plproxy AS $$
    CLUSTER 'coupon_lock_shards';
    RUN ON coupon_lock.owner_partition(name);
    TARGET coupon_lock.lease_check;
$$;
CREATE FUNCTION coupon_lock.lease_check(name text, fence bigint)
RETURNS boolean LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp SET client_min_messages = warning AS $$
DECLARE
    detail text;
    hint   text;
BEGIN
    RETURN coupon_lock.route_lease_check(name, fence);
EXCEPTION WHEN OTHERS OR query_canceled THEN
    GET STACKED DIAGNOSTICS detail = PG_EXCEPTION_DETAIL, hint = PG_EXCEPTION_HINT;
    PERFORM coupon_lock.router_error(SQLSTATE, SQLERRM, detail, hint, coupon_lock.owner_partition(name));
END
$$;

COMMENT ON FUNCTION coupon_lock.lease_acquire(text, text, interval) IS
    'lease_acquire on the shard of the lease''s name: a fencing token, NULL while another holder''s lease is unexpired';
COMMENT ON FUNCTION coupon_lock.lease_renew(text, text, interval) IS 'lease_renew on the shard of the lease''s name';
COMMENT ON FUNCTION coupon_lock.lease_release(text, text) IS 'lease_release on the shard of the lease''s name';
COMMENT ON FUNCTION coupon_lock.lease_check(text, bigint) IS 'lease_check on the shard of the lease''s name';
COMMENT ON FUNCTION coupon_lock.route_lease_acquire(text, text, interval) IS 'PL/Proxy call of lease_acquire';
COMMENT ON FUNCTION coupon_lock.route_lease_renew(text, text, interval) IS 'PL/Proxy call of lease_renew';
COMMENT ON FUNCTION coupon_lock.route_lease_release(text, text) IS 'PL/Proxy call of lease_release';
COMMENT ON FUNCTION coupon_lock.route_lease_check(text, bigint) IS 'PL/Proxy call of lease_check';

REVOKE ALL ON FUNCTION coupon_lock.route_lease_acquire(text, text, interval), coupon_lock.lease_acquire(text, text, interval),
                       coupon_lock.route_lease_renew(text, text, interval), coupon_lock.lease_renew(text, text, interval),
                       coupon_lock.route_lease_release(text, text), coupon_lock.lease_release(text, text),
                       coupon_lock.route_lease_check(text, bigint), coupon_lock.lease_check(text, bigint)
    FROM PUBLIC;
