-- create_batch: the batch row, its coupons, and every refused argument.
\set VERBOSITY default
CREATE FUNCTION pg_temp.st(q text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE r text; d text;
BEGIN
  EXECUTE q INTO r;
  RETURN 'ok: ' || coalesce(r, 'NULL');
EXCEPTION WHEN OTHERS THEN
  GET STACKED DIAGNOSTICS d = PG_EXCEPTION_DETAIL;
  RETURN SQLSTATE || ': ' || SQLERRM || coalesce(' / ' || nullif(d, ''), '');
END $$;

SELECT coupon_lock.create_batch('spring sale', 5, 2, NULL, '10 minutes') AS b \gset
SELECT name, quantity, per_user_limit, valid_until, freeze_ttl FROM coupon_lock.batch WHERE batch_id = :b;
-- five coupons, available at version 1, no owner or order, contiguous ids
SELECT count(*), count(DISTINCT code), min(version), max(version),
       bool_and(state = 'available'), bool_and(owner_id IS NULL AND order_id IS NULL AND frozen_until IS NULL),
       max(coupon_id) - min(coupon_id) + 1 AS id_span,
       min(coupon_id) = (SELECT first_coupon_id FROM coupon_lock.batch WHERE batch_id = :b) AS starts_at_first
  FROM coupon_lock.coupon WHERE batch_id = :b;
-- codes are unique across batches and not guessable from the id alone
SELECT coupon_lock.create_batch('second', 3) AS b2 \gset
SELECT count(DISTINCT code) = count(*) FROM coupon_lock.coupon;
SELECT bool_and(code ~ '^[0-9A-F]+-[0-9A-F]{8}$') FROM coupon_lock.coupon;
-- the defaults: per_user_limit 1, no end, 15 minutes
SELECT per_user_limit, valid_until, freeze_ttl FROM coupon_lock.batch WHERE batch_id = :b2;
-- ranges never overlap
SELECT (SELECT first_coupon_id FROM coupon_lock.batch WHERE batch_id = :b2) =
       (SELECT first_coupon_id + quantity FROM coupon_lock.batch WHERE batch_id = :b);
-- creation writes no ledger rows
SELECT count(*) FROM coupon_lock.coupon_event;

-- refused arguments: NULL -> 22004, out of range -> 22023, nothing created
SELECT count(*) AS batches_before FROM coupon_lock.batch \gset
SELECT pg_temp.st($$SELECT coupon_lock.create_batch(NULL, 5)$$);
SELECT pg_temp.st($$SELECT coupon_lock.create_batch('', 5)$$);
SELECT pg_temp.st($$SELECT coupon_lock.create_batch('x', NULL)$$);
SELECT pg_temp.st($$SELECT coupon_lock.create_batch('x', 0)$$);
SELECT pg_temp.st($$SELECT coupon_lock.create_batch('x', -5)$$);
SELECT pg_temp.st($$SELECT coupon_lock.create_batch('x', 2147483647)$$);
SELECT pg_temp.st($$SELECT coupon_lock.create_batch('x', 5, NULL)$$);
SELECT pg_temp.st($$SELECT coupon_lock.create_batch('x', 5, 0)$$);
SELECT pg_temp.st($$SELECT coupon_lock.create_batch('x', 5, -1)$$);
SELECT pg_temp.st($$SELECT coupon_lock.create_batch('x', 5, 1, now() - interval '1 second')$$);
SELECT pg_temp.st($$SELECT coupon_lock.create_batch('x', 5, 1, NULL, NULL)$$);
SELECT pg_temp.st($$SELECT coupon_lock.create_batch('x', 5, 1, NULL, '0')$$);
SELECT pg_temp.st($$SELECT coupon_lock.create_batch('x', 5, 1, NULL, '-1 minute')$$);
SELECT pg_temp.st($$SELECT coupon_lock.create_batch('x', 5, 1, NULL, '1 month -31 days')$$);
SELECT count(*) = :batches_before AS nothing_created FROM coupon_lock.batch;

-- the upper bound is a setting
SET coupon_lock.max_batch_quantity = 4;
SELECT pg_temp.st($$SELECT coupon_lock.create_batch('x', 5)$$);
SELECT pg_temp.st($$SELECT coupon_lock.create_batch('x', 4) > 0$$);
RESET coupon_lock.max_batch_quantity;
SET coupon_lock.no_such_setting = 1;

-- a rolled-back creation leaves no gap in coupon ids
SELECT next_coupon_id AS next_before FROM coupon_lock.id_allocator \gset
BEGIN;
SELECT coupon_lock.create_batch('rolled back', 10) > 0;
ROLLBACK;
SELECT next_coupon_id = :next_before FROM coupon_lock.id_allocator;

-- PUBLIC can neither write the tables nor call the functions
CREATE ROLE cl_nobody;
SET ROLE cl_nobody;
SELECT pg_temp.st($$SELECT count(*)::text FROM coupon_lock.coupon$$);
SELECT pg_temp.st($$SELECT coupon_lock.create_batch('x', 1)$$);
RESET ROLE;
SELECT has_table_privilege('cl_nobody', 'coupon_lock.coupon', 'INSERT, UPDATE, DELETE, TRUNCATE') AS can_write,
       has_function_privilege('cl_nobody', 'coupon_lock.coupon_claim(bigint, text, text)', 'EXECUTE') AS can_claim;
-- with the README's grants it can read and call, still not write
GRANT USAGE ON SCHEMA coupon_lock TO cl_nobody;
GRANT SELECT ON ALL TABLES IN SCHEMA coupon_lock TO cl_nobody;
GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA coupon_lock TO cl_nobody;
SET ROLE cl_nobody;
SELECT pg_temp.st($$SELECT coupon_lock.coupon_claim($$ || :b || $$, 'grantee')::text$$) LIKE 'ok: %' AS claimed;
SELECT pg_temp.st($$UPDATE coupon_lock.coupon SET state = 'redeemed'$$);
SELECT pg_temp.st($$DELETE FROM coupon_lock.coupon_event$$);
SELECT pg_temp.st($$TRUNCATE coupon_lock.batch$$);
RESET ROLE;
REVOKE ALL ON ALL FUNCTIONS IN SCHEMA coupon_lock FROM cl_nobody;
REVOKE ALL ON ALL TABLES IN SCHEMA coupon_lock FROM cl_nobody;
REVOKE ALL ON SCHEMA coupon_lock FROM cl_nobody;
DROP ROLE cl_nobody;

-- every object of the extension has a comment
SELECT d.classid::regclass, pg_describe_object(d.classid, d.objid, d.objsubid)
  FROM pg_depend d JOIN pg_extension e ON d.refobjid = e.oid AND d.refclassid = 'pg_extension'::regclass
 WHERE e.extname = 'coupon_lock' AND d.deptype = 'e'
   AND obj_description(d.objid, d.classid::regclass::name) IS NULL
 ORDER BY 2;
