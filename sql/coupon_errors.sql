-- What the README's error table and rules promise, call by call (issue 10
-- item 22): each answer here is the one the README gives.
CREATE FUNCTION pg_temp.st(q text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE r text; h text;
BEGIN
  EXECUTE q INTO r;
  RETURN 'ok: ' || coalesce(r, 'NULL');
EXCEPTION WHEN OTHERS THEN
  GET STACKED DIAGNOSTICS h = PG_EXCEPTION_HINT;
  RETURN SQLSTATE || ': ' || regexp_replace(SQLERRM, '\d+', 'N', 'g')
         || coalesce(' / hint: ' || nullif(h, ''), '');
END $$;
SELECT coupon_lock.create_batch('answers', 3, 3) AS b \gset
SELECT first_coupon_id AS c1, first_coupon_id + 1 AS c2, first_coupon_id + 2 AS c3
  FROM coupon_lock.batch WHERE batch_id = :b \gset
SELECT coupon_lock.coupon_issue(:c1, 'ann') AS v1, coupon_lock.coupon_issue(:c2, 'ann') AS v2;
SELECT coupon_lock.coupon_freeze(:c1, 'ann', 'order-A') AS v3;
-- freezing a coupon frozen for another order: CL004 (the same owner), CL003
-- (another owner); before, both were 55000 "cannot freeze ... in state frozen"
SELECT pg_temp.st(format('SELECT coupon_lock.coupon_freeze(%s, %L, %L)', :c1, 'ann', 'order-B'));
SELECT pg_temp.st(format('SELECT coupon_lock.coupon_freeze(%s, %L, %L)', :c1, 'bob', 'order-B'));
-- an issued coupon of another owner: CL003; a state no freeze leaves from: 55000
SELECT pg_temp.st(format('SELECT coupon_lock.coupon_freeze(%s, %L, %L)', :c2, 'bob', 'order-B'));
SELECT pg_temp.st(format('SELECT coupon_lock.coupon_freeze(%s, %L, %L)', :c3, 'ann', 'order-B'));
-- a lapsed freeze is not redeemed; its hint is a way that works: unfreeze it
-- for the order, freeze it again, redeem (the old hint, "freeze it again",
-- failed: a lapsed freeze cannot be renewed)
UPDATE coupon_lock.coupon SET frozen_until = now() - interval '1 second' WHERE coupon_id = :c1;
SELECT pg_temp.st(format('SELECT coupon_lock.coupon_redeem(%s, %L)', :c1, 'order-A'));
SELECT pg_temp.st(format('SELECT coupon_lock.coupon_freeze(%s, %L, %L)', :c1, 'ann', 'order-A'));
SELECT pg_temp.st(format('SELECT coupon_lock.coupon_freeze(%s, %L, %L)', :c1, 'ann', 'order-B'));
SELECT coupon_lock.coupon_unfreeze(:c1, 'order-A') AS unfrozen,
       coupon_lock.coupon_freeze(:c1, 'ann', 'order-A') AS frozen_again,
       coupon_lock.coupon_redeem(:c1, 'order-A') AS redeemed;
-- an owner at the limit of a sold-out batch: CL005, not NULL (the limit is
-- taken before a coupon is looked for)
SELECT coupon_lock.coupon_claim(:b, 'ann') = :c3 AS last_coupon;
SELECT pg_temp.st(format('SELECT coupon_lock.coupon_claim(%s, %L)', :b, 'ann'));
SELECT pg_temp.st(format('SELECT coupon_lock.coupon_claim(%s, %L)', :b, 'bob'));
-- a read-only transaction (and a hot standby) refuses every function that
-- writes with 25006
BEGIN READ ONLY;
SELECT pg_temp.st(format('SELECT coupon_lock.coupon_claim(%s, %L)', :b, 'cat'));
ROLLBACK;
BEGIN READ ONLY;
SELECT pg_temp.st(format('SELECT coupon_lock.coupon_revoke(%s)', :c2));
ROLLBACK;
BEGIN READ ONLY;
SELECT pg_temp.st($$SELECT coupon_lock.create_batch('read only', 1)$$);
ROLLBACK;
