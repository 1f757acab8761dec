-- Freeze TTLs, release_expired_freezes, validity windows and expire_coupons.
\set VERBOSITY default
CREATE FUNCTION pg_temp.st(q text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE r text; d text; h text;
BEGIN
  EXECUTE q INTO r;
  RETURN 'ok: ' || coalesce(r, 'NULL');
EXCEPTION WHEN OTHERS THEN
  GET STACKED DIAGNOSTICS d = PG_EXCEPTION_DETAIL, h = PG_EXCEPTION_HINT;
  RETURN SQLSTATE || ': ' || regexp_replace(SQLERRM, '\d+', 'N', 'g')
         || coalesce(' / ' || nullif(d, ''), '') || coalesce(' / ' || nullif(h, ''), '');
END $$;
CREATE FUNCTION pg_temp.states(b bigint) RETURNS TABLE (n bigint, state coupon_lock.coupon_state,
    order_id text, version bigint) LANGUAGE sql AS
  $$ SELECT c.coupon_id - bt.first_coupon_id + 1, c.state, c.order_id, c.version
       FROM coupon_lock.coupon c JOIN coupon_lock.batch bt USING (batch_id)
      WHERE c.batch_id = b ORDER BY 1 $$;

-- Lapsed freezes.  Other tests may leave frozen coupons, but none lapsed: sweep
-- whatever is lapsed first so the counts below are this test's.
SELECT coupon_lock.release_expired_freezes() >= 0;
SELECT coupon_lock.create_batch('ttl', 5, 5) AS b \gset
SELECT first_coupon_id AS f FROM coupon_lock.batch WHERE batch_id = :b \gset
SELECT coupon_lock.coupon_issue(:f + i, 'ann') FROM generate_series(0, 4) i;
SELECT coupon_lock.coupon_freeze(:f + i, 'ann', 'o' || i, NULL, '200 milliseconds') FROM generate_series(0, 3) i;
SELECT coupon_lock.coupon_freeze(:f + 4, 'ann', 'o4', NULL, '1 hour');
SELECT pg_sleep(0.3);
-- a lapsed freeze cannot be redeemed, nor renewed by its order
SELECT pg_temp.st(format('SELECT coupon_lock.coupon_redeem(%s, %L)', :f, 'o0'));
SELECT pg_temp.st(format('SELECT coupon_lock.coupon_freeze(%s, %L, %L)', :f, 'ann', 'o0'));
-- its order can still unfreeze it
SELECT coupon_lock.coupon_unfreeze(:f, 'o0');
-- the sweep takes at most max_rows, oldest first, and never a live freeze
SELECT coupon_lock.release_expired_freezes(2);
SELECT coupon_lock.release_expired_freezes();
SELECT coupon_lock.release_expired_freezes();
SELECT * FROM pg_temp.states(:b);
SELECT op, from_state, to_state, version, order_id FROM coupon_lock.coupon_event
 WHERE coupon_id = :f + 1 ORDER BY event_id;
-- the order whose freeze was swept may still call unfreeze: nothing to do, current version
SELECT coupon_lock.coupon_unfreeze(:f + 1, 'o1');
-- and may freeze again
SELECT coupon_lock.coupon_freeze(:f + 1, 'ann', 'o1');
SELECT pg_temp.st('SELECT coupon_lock.release_expired_freezes(NULL)');
SELECT pg_temp.st('SELECT coupon_lock.release_expired_freezes(0)');
SELECT pg_temp.st('SELECT coupon_lock.release_expired_freezes(-1)');

-- Validity windows.  Batches of other tests may have expired: expire theirs first.
SELECT coupon_lock.expire_coupons(100000) >= 0;
-- a batch that ends in 400 ms
SELECT coupon_lock.create_batch('window', 6, 6, clock_timestamp() + interval '400 milliseconds') AS w \gset
SELECT first_coupon_id AS g FROM coupon_lock.batch WHERE batch_id = :w \gset
SELECT coupon_lock.coupon_issue(:g + i, 'bea') FROM generate_series(1, 4) i;
SELECT coupon_lock.coupon_freeze(:g + 2, 'bea', 'p2');
SELECT coupon_lock.coupon_freeze(:g + 3, 'bea', 'p3');
SELECT coupon_lock.coupon_freeze(:g + 4, 'bea', 'p4', NULL, '100 milliseconds');
SELECT coupon_lock.coupon_redeem(:g + 3, 'p3');
SELECT pg_sleep(0.5);
-- issue, claim, freeze and redeem fail once valid_until has passed
SELECT pg_temp.st(format('SELECT coupon_lock.coupon_issue(%s, %L)', :g, 'bea'));
SELECT pg_temp.st(format('SELECT coupon_lock.coupon_claim(%s, %L)', :w, 'bea'));
SELECT pg_temp.st(format('SELECT coupon_lock.coupon_freeze(%s, %L, %L)', :g + 1, 'bea', 'p1'));
SELECT pg_temp.st(format('SELECT coupon_lock.coupon_redeem(%s, %L)', :g + 2, 'p2'));
-- unfreeze sends the coupon to expired; so does the sweep of a lapsed freeze
SELECT coupon_lock.coupon_unfreeze(:g + 2, 'p2');
SELECT coupon_lock.release_expired_freezes();
-- revoke still works
SELECT coupon_lock.coupon_revoke(:g + 5);
-- expire_coupons: available and issued -> expired; redeemed, revoked untouched
SELECT coupon_lock.expire_coupons(1);
SELECT coupon_lock.expire_coupons();
SELECT coupon_lock.expire_coupons();
SELECT * FROM pg_temp.states(:w);
SELECT op, count(*) FROM coupon_lock.coupon_event e JOIN coupon_lock.coupon c USING (coupon_id)
 WHERE c.batch_id = :w AND e.to_state = 'expired' GROUP BY op ORDER BY op;
SELECT pg_temp.st('SELECT coupon_lock.expire_coupons(NULL)');
SELECT pg_temp.st('SELECT coupon_lock.expire_coupons(0)');
