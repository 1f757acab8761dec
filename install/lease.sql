-- coupon_lock install script: leases with fencing tokens (src/lease.c)

-- One row per lease name, never deleted: the fence counter lives in the row,
-- so tokens keep rising over every grant, across restarts and dump/restore.
CREATE TABLE coupon_lock.lease (
    name       text        NOT NULL PRIMARY KEY,
    holder     text,
    fence      bigint      NOT NULL CHECK (fence > 0),
    expires_at timestamptz,
    granted_at timestamptz NOT NULL,
    CHECK ((holder IS NULL) = (expires_at IS NULL))
);
COMMENT ON TABLE coupon_lock.lease IS
    'one row per lease name; written only by the lease_* functions, rows are never deleted';
COMMENT ON COLUMN coupon_lock.lease.holder IS 'the current or last holder; NULL once released';
COMMENT ON COLUMN coupon_lock.lease.fence IS
    'fencing token of the latest grant: the epoch (timeline) in the high 32 bits, a counter in the low 32; rises with every grant, also across a promotion, never reused';
COMMENT ON COLUMN coupon_lock.lease.expires_at IS
    'end of the lease by the server''s clock; the lease is free from then on; NULL once released';
COMMENT ON COLUMN coupon_lock.lease.granted_at IS 'when the latest grant (the current fence) was made';

SELECT pg_catalog.pg_extension_config_dump('coupon_lock.lease', '');
-- Only the lease_* functions write it (they run as the extension's owner).
REVOKE ALL ON coupon_lock.lease FROM PUBLIC;

CREATE FUNCTION coupon_lock.lease_acquire(name text, holder text, ttl interval)
RETURNS bigint AS 'MODULE_PATHNAME', 'coupon_lock_lease_acquire'
LANGUAGE C VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION coupon_lock.lease_acquire(text, text, interval) IS
    'grants the lease for ttl and returns its fencing token (strictly increasing per name, also across a promotion); NULL while another holder''s lease is unexpired; the holder acquiring again renews and keeps its token';

CREATE FUNCTION coupon_lock.lease_renew(name text, holder text, ttl interval)
RETURNS boolean AS 'MODULE_PATHNAME', 'coupon_lock_lease_renew'
LANGUAGE C VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION coupon_lock.lease_renew(text, text, interval) IS
    'extends the holder''s unexpired lease to end ttl from now; false when it is not the holder''s or has expired';

CREATE FUNCTION coupon_lock.lease_release(name text, holder text)
RETURNS boolean AS 'MODULE_PATHNAME', 'coupon_lock_lease_release'
LANGUAGE C VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION coupon_lock.lease_release(text, text) IS
    'ends the holder''s unexpired lease (its fence stays used); false when it is not the holder''s or has expired';

CREATE FUNCTION coupon_lock.lease_check(name text, fence bigint)
RETURNS boolean AS 'MODULE_PATHNAME', 'coupon_lock_lease_check'
LANGUAGE C VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION coupon_lock.lease_check(text, bigint) IS
    'true only while fence is the current unexpired grant; in a read-write transaction it then keeps the lease row share-locked until the transaction ends, so no new grant precedes the commit of the write it guards; a plain read in read-only transactions and on standbys';

REVOKE ALL ON FUNCTION coupon_lock.lease_acquire(text, text, interval),
                       coupon_lock.lease_renew(text, text, interval),
                       coupon_lock.lease_release(text, text),
                       coupon_lock.lease_check(text, bigint)
    FROM PUBLIC;
