-- Leases: grants, renewal, release, expiry, fencing tokens and bad input.
CREATE FUNCTION pg_temp.err(q text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE q;
    RETURN 'no error';
EXCEPTION WHEN OTHERS THEN
    RETURN SQLSTATE || ': ' || SQLERRM;
END $$;
CREATE VIEW lease_row AS
    SELECT name, holder, fence, expires_at > clock_timestamp() AS unexpired
      FROM coupon_lock.lease ORDER BY name;
SELECT coupon_lock.lock_stats_reset();

-- A first grant gets token 1; the holder acquiring again renews and keeps it.
SELECT coupon_lock.lease_acquire('job', 'w1', '1 minute');
SELECT coupon_lock.lease_acquire('job', 'w1', '2 minutes');
SELECT * FROM lease_row;
-- Another holder gets NULL while the lease is unexpired.
SELECT coupon_lock.lease_acquire('job', 'w2', '1 minute');
-- Only the current token checks.
SELECT coupon_lock.lease_check('job', 1) AS current, coupon_lock.lease_check('job', 2) AS future,
       coupon_lock.lease_check('job', 0) AS past, coupon_lock.lease_check('other', 1) AS unknown;
-- Renew and release are the holder's alone.
SELECT coupon_lock.lease_renew('job', 'w2', '1 minute') AS renew_by_other,
       coupon_lock.lease_release('job', 'w2') AS release_by_other,
       coupon_lock.lease_renew('job', 'w1', '1 minute') AS renew_by_holder;
SELECT coupon_lock.lease_release('job', 'w1') AS released,
       coupon_lock.lease_release('job', 'w1') AS released_twice;
SELECT * FROM lease_row;
SELECT coupon_lock.lease_check('job', 1) AS after_release,
       coupon_lock.lease_renew('job', 'w1', '1 minute') AS renew_after_release;
-- The next grant gets the next token, whoever takes it.
SELECT coupon_lock.lease_acquire('job', 'w2', '1 minute');
SELECT coupon_lock.lease_check('job', 1) AS old_token, coupon_lock.lease_check('job', 2) AS new_token;

-- Expiry by the server's clock (clock_timestamp(), also inside one transaction).
SELECT coupon_lock.lease_acquire('short', 'w1', '10 milliseconds');
SELECT pg_sleep(0.05);
SELECT * FROM lease_row WHERE name = 'short';
SELECT coupon_lock.lease_check('short', 1) AS check_expired,
       coupon_lock.lease_renew('short', 'w1', '1 minute') AS renew_expired,
       coupon_lock.lease_release('short', 'w1') AS release_expired;
-- An expired lease goes to the next acquirer with a new token; its old
-- holder coming back later also gets a new token, never its old one.
SELECT coupon_lock.lease_acquire('short', 'w2', '10 milliseconds');
SELECT pg_sleep(0.05);
SELECT coupon_lock.lease_acquire('short', 'w2', '1 minute') AS same_holder_after_expiry;
BEGIN;
SELECT coupon_lock.lease_acquire('in-xact', 'w1', '10 milliseconds');
SELECT pg_sleep(0.05);
SELECT coupon_lock.lease_check('in-xact', 1) AS expired_within_transaction;
COMMIT;

-- lease_check guards a write in the same transaction: it returns the
-- decision and keeps the row share-locked until commit.
BEGIN;
SELECT coupon_lock.lease_check('job', 2);
SELECT mode, granted FROM pg_locks
 WHERE locktype = 'relation' AND relation = 'coupon_lock.lease'::regclass AND pid = pg_backend_pid();
COMMIT;

-- A rolled-back grant leaves nothing behind: a token is the holder's only
-- once the transaction that acquired it has committed.
SELECT coupon_lock.lease_release('job', 'w2');
BEGIN;
SELECT coupon_lock.lease_acquire('job', 'w3', '1 minute');
ROLLBACK;
SELECT * FROM lease_row WHERE name = 'job';

-- Bad input.
SELECT pg_temp.err($$SELECT coupon_lock.lease_acquire(NULL, 'w', '1 minute')$$);
SELECT pg_temp.err($$SELECT coupon_lock.lease_acquire('', 'w', '1 minute')$$);
SELECT pg_temp.err($$SELECT coupon_lock.lease_acquire(repeat('n', 513), 'w', '1 minute')$$);
SELECT pg_temp.err($$SELECT coupon_lock.lease_acquire('n', NULL, '1 minute')$$);
SELECT pg_temp.err($$SELECT coupon_lock.lease_acquire('n', '', '1 minute')$$);
SELECT pg_temp.err($$SELECT coupon_lock.lease_acquire('n', 'w', NULL)$$);
SELECT pg_temp.err($$SELECT coupon_lock.lease_acquire('n', 'w', '0')$$);
SELECT pg_temp.err($$SELECT coupon_lock.lease_acquire('n', 'w', '-1 minute')$$);
SELECT pg_temp.err($$SELECT coupon_lock.lease_renew(NULL, 'w', '1 minute')$$);
SELECT pg_temp.err($$SELECT coupon_lock.lease_renew('n', '', '1 minute')$$);
SELECT pg_temp.err($$SELECT coupon_lock.lease_renew('n', 'w', '0')$$);
SELECT pg_temp.err($$SELECT coupon_lock.lease_release('n', NULL)$$);
SELECT pg_temp.err($$SELECT coupon_lock.lease_release('', 'w')$$);
SELECT pg_temp.err($$SELECT coupon_lock.lease_check(NULL, 1)$$);
SELECT pg_temp.err($$SELECT coupon_lock.lease_check('n', NULL)$$);
SELECT pg_temp.err($$SELECT coupon_lock.lease_check(repeat('n', 600), 1)$$);
-- Failed calls wrote nothing.
SELECT count(*) FROM coupon_lock.lease WHERE name = 'n';

-- Counters: grants, refusals (timed_out) and releases.
SELECT kind, acquired, waited, timed_out, deadlocks, released, errors, scope
  FROM coupon_lock.lock_stats WHERE kind = 'lease';
