-- Leases: grants, renewal, release, expiry, fencing tokens and bad input.
CREATE FUNCTION pg_temp.err(q text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE q;
    RETURN 'no error';
EXCEPTION WHEN OTHERS THEN
    RETURN SQLSTATE || ': ' || SQLERRM;
END $$;
-- Tokens carry the fencing epoch (the timeline) in their high 32 bits and a
-- counter in the low 32 (src/epoch.c); the view shows the two apart.
CREATE VIEW lease_row AS
    SELECT name, holder, fence >> 32 AS epoch, fence & 4294967295 AS n,
           expires_at > clock_timestamp() AS unexpired
      FROM coupon_lock.lease ORDER BY name;
-- token(n): the n-th token of this server's current timeline.
CREATE FUNCTION pg_temp.token(n bigint) RETURNS bigint LANGUAGE sql AS $$
    SELECT (timeline_id::bigint << 32) + n FROM pg_control_checkpoint() $$;
SELECT coupon_lock.lock_stats_reset();

-- A first grant gets token 1 of the epoch; the holder acquiring again
-- renews and keeps it.
SELECT coupon_lock.lease_acquire('job', 'w1', '1 minute') = pg_temp.token(1) AS first;
SELECT coupon_lock.lease_acquire('job', 'w1', '2 minutes') = pg_temp.token(1) AS kept;
SELECT * FROM lease_row;
-- Another holder gets NULL while the lease is unexpired.
SELECT coupon_lock.lease_acquire('job', 'w2', '1 minute');
-- Only the current token checks.
SELECT coupon_lock.lease_check('job', pg_temp.token(1)) AS current,
       coupon_lock.lease_check('job', pg_temp.token(2)) AS future,
       coupon_lock.lease_check('job', 1) AS counter_alone,
       coupon_lock.lease_check('job', 0) AS past,
       coupon_lock.lease_check('other', pg_temp.token(1)) AS unknown;
-- Renew and release are the holder's alone.
SELECT coupon_lock.lease_renew('job', 'w2', '1 minute') AS renew_by_other,
       coupon_lock.lease_release('job', 'w2') AS release_by_other,
       coupon_lock.lease_renew('job', 'w1', '1 minute') AS renew_by_holder;
SELECT coupon_lock.lease_release('job', 'w1') AS released,
       coupon_lock.lease_release('job', 'w1') AS released_twice;
SELECT * FROM lease_row;
SELECT coupon_lock.lease_check('job', pg_temp.token(1)) AS after_release,
       coupon_lock.lease_renew('job', 'w1', '1 minute') AS renew_after_release;
-- The next grant gets the next token, whoever takes it.
SELECT coupon_lock.lease_acquire('job', 'w2', '1 minute') = pg_temp.token(2) AS second;
SELECT coupon_lock.lease_check('job', pg_temp.token(1)) AS old_token,
       coupon_lock.lease_check('job', pg_temp.token(2)) AS new_token;

-- Expiry by the server's clock (clock_timestamp(), also inside one transaction).
SELECT coupon_lock.lease_acquire('short', 'w1', '10 milliseconds') = pg_temp.token(1);
SELECT pg_sleep(0.05);
SELECT * FROM lease_row WHERE name = 'short';
SELECT coupon_lock.lease_check('short', pg_temp.token(1)) AS check_expired,
       coupon_lock.lease_renew('short', 'w1', '1 minute') AS renew_expired,
       coupon_lock.lease_release('short', 'w1') AS release_expired;
-- An expired lease goes to the next acquirer with a new token; its old
-- holder coming back later also gets a new token, never its old one.
SELECT coupon_lock.lease_acquire('short', 'w2', '10 milliseconds') - pg_temp.token(0) AS n;
SELECT pg_sleep(0.05);
SELECT coupon_lock.lease_acquire('short', 'w2', '1 minute') - pg_temp.token(0) AS same_holder_after_expiry;
BEGIN;
SELECT coupon_lock.lease_acquire('in-xact', 'w1', '10 milliseconds') = pg_temp.token(1);
SELECT pg_sleep(0.05);
SELECT coupon_lock.lease_check('in-xact', pg_temp.token(1)) AS expired_within_transaction;
COMMIT;

-- lease_check guards a write in the same transaction: it returns the
-- decision and keeps the row share-locked until commit.
BEGIN;
SELECT coupon_lock.lease_check('job', pg_temp.token(2));
SELECT mode, granted FROM pg_locks
 WHERE locktype = 'relation' AND relation = 'coupon_lock.lease'::regclass AND pid = pg_backend_pid();
COMMIT;
-- In a read-only transaction (and on a standby) it is a plain read: no row
-- lock, which would raise 25006 there.
BEGIN READ ONLY;
SELECT coupon_lock.lease_check('job', pg_temp.token(2)) AS read_only_check;
SELECT mode, granted FROM pg_locks
 WHERE locktype = 'relation' AND relation = 'coupon_lock.lease'::regclass AND pid = pg_backend_pid();
-- A write in a read-only transaction is PostgreSQL's own 25006 (not a standby).
SELECT pg_temp.err($$SELECT coupon_lock.lease_acquire('ro', 'w', '1 minute')$$);
COMMIT;

-- Tokens of coupon_lock 1.0 (no epoch bits, as in a database upgraded from
-- 1.0) keep working and are below every token granted from now on.
INSERT INTO coupon_lock.lease VALUES ('from-1.0', 'old', 41, clock_timestamp() + interval '1 minute', now());
SELECT coupon_lock.lease_check('from-1.0', 41) AS old_token_checks,
       coupon_lock.lease_acquire('from-1.0', 'old', '1 minute') AS old_holder_keeps_it;
SELECT coupon_lock.lease_release('from-1.0', 'old');
SELECT coupon_lock.lease_acquire('from-1.0', 'new', '1 minute') = pg_temp.token(1) AS next_is_above_41,
       coupon_lock.lease_check('from-1.0', 41) AS old_token_dead;
-- Within an epoch the counter goes on by one per grant.
UPDATE coupon_lock.lease SET fence = pg_temp.token(7), holder = NULL, expires_at = NULL WHERE name = 'from-1.0';
SELECT coupon_lock.lease_acquire('from-1.0', 'new', '1 minute') = pg_temp.token(8) AS counter_goes_on;

-- A rolled-back grant leaves nothing behind: a token is the holder's only
-- once the transaction that acquired it has committed.
SELECT coupon_lock.lease_release('job', 'w2');
BEGIN;
SELECT coupon_lock.lease_acquire('job', 'w3', '1 minute') = pg_temp.token(3) AS third;
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

-- Counters: grants and releases; a refused acquire is not a wait that ran
-- out, so it does not count as timed_out (issue 10 item 24).
SELECT kind, acquired, waited, timed_out, deadlocks, released, errors, scope
  FROM coupon_lock.lock_stats WHERE kind = 'lease';
