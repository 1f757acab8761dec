-- coupon_issue repeated by the same owner with no transition in between (1.1):
-- an idempotent retry, like freeze, unfreeze and redeem.
\set VERBOSITY default
CREATE FUNCTION pg_temp.st(q text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE r text; d text;
BEGIN
  EXECUTE q INTO r;
  RETURN 'ok: ' || coalesce(r, 'NULL');
EXCEPTION WHEN OTHERS THEN
  GET STACKED DIAGNOSTICS d = PG_EXCEPTION_DETAIL;
  RETURN SQLSTATE || ': ' || regexp_replace(SQLERRM, '\d+', 'N', 'g')
         || coalesce(' / ' || nullif(d, ''), '');
END $$;
SELECT coupon_lock.create_batch('issue retry', 4, 2) AS b \gset
SELECT first_coupon_id AS c FROM coupon_lock.batch WHERE batch_id = :b \gset
-- what calls on batch b changed: ledger rows, quota
CREATE FUNCTION pg_temp.footprint(b bigint, OUT events bigint, OUT held bigint) LANGUAGE sql AS $$
  SELECT (SELECT count(*) FROM coupon_lock.coupon_event e JOIN coupon_lock.coupon c USING (coupon_id)
           WHERE c.batch_id = b),
         (SELECT coalesce(sum(held), 0) FROM coupon_lock.owner_quota WHERE batch_id = b) $$;

SELECT coupon_lock.coupon_issue(:c, 'ann');
SELECT * FROM pg_temp.footprint(:b);
-- the repeat returns the current version and changes nothing, whatever
-- expected_version it repeats
SELECT coupon_lock.coupon_issue(:c, 'ann');
SELECT coupon_lock.coupon_issue(:c, 'ann', 1);
SELECT coupon_lock.coupon_issue(:c, 'ann', 2);
SELECT * FROM pg_temp.footprint(:b);
SELECT state, owner_id, version FROM coupon_lock.coupon WHERE coupon_id = :c;
-- another owner is refused as before
SELECT pg_temp.st(format('SELECT coupon_lock.coupon_issue(%s, %L)', :c, 'ben'));
-- after a transition in between it is no retry: 55000 as before
SELECT coupon_lock.coupon_freeze(:c, 'ann', 'o1');
SELECT pg_temp.st(format('SELECT coupon_lock.coupon_issue(%s, %L)', :c, 'ann'));
SELECT coupon_lock.coupon_unfreeze(:c, 'o1');
SELECT pg_temp.st(format('SELECT coupon_lock.coupon_issue(%s, %L)', :c, 'ann'));
-- a claimed coupon was not issued by coupon_issue: repeating the owner is no retry
SELECT coupon_lock.coupon_claim(:b, 'cat') AS cc \gset
SELECT pg_temp.st(format('SELECT coupon_lock.coupon_issue(%s, %L)', :cc, 'cat'));
-- a retry takes no quota: at the limit (ann holds two) the repeat still answers
SELECT coupon_lock.coupon_issue(:c + 2, 'ann');
SELECT coupon_lock.coupon_issue(:c + 2, 'ann');
SELECT owner_id, held FROM coupon_lock.owner_quota WHERE batch_id = :b ORDER BY 1;
-- a revoked coupon is no retry either
SELECT coupon_lock.coupon_revoke(:c + 2);
SELECT pg_temp.st(format('SELECT coupon_lock.coupon_issue(%s, %L)', :c + 2, 'ann'));
SELECT * FROM pg_temp.footprint(:b);
