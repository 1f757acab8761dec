-- coupon_claim with a request_id (1.1): a repeated call gets the first call's answer.
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
SELECT coupon_lock.create_batch('retry', 4, 3) AS b \gset
SELECT first_coupon_id - 1 AS f0 FROM coupon_lock.batch WHERE batch_id = :b \gset
-- the slot (1 = first coupon of the batch) of a claim with a request id, NULL when none
CREATE FUNCTION pg_temp.claim(b bigint, owner text, req text) RETURNS bigint LANGUAGE sql AS
  $$ SELECT coupon_lock.coupon_claim(b, owner, req) - (SELECT first_coupon_id - 1 FROM coupon_lock.batch WHERE batch_id = b) $$;
-- what calls on batch b changed: coupons taken, ledger rows, quota, recorded requests
CREATE FUNCTION pg_temp.footprint(b bigint, OUT taken bigint, OUT events bigint, OUT held bigint,
                                  OUT requests bigint) LANGUAGE sql AS $$
  SELECT (SELECT count(*) FROM coupon_lock.coupon WHERE batch_id = b AND state <> 'available'),
         (SELECT count(*) FROM coupon_lock.coupon_event e JOIN coupon_lock.coupon c USING (coupon_id)
           WHERE c.batch_id = b),
         (SELECT coalesce(sum(held), 0) FROM coupon_lock.owner_quota WHERE batch_id = b),
         (SELECT count(*) FROM coupon_lock.claim_request WHERE batch_id = b) $$;

-- the first call claims; the repeat returns the same coupon and changes nothing
SELECT pg_temp.claim(:b, 'ann', 'req-1');
SELECT * FROM pg_temp.footprint(:b);
SELECT pg_temp.claim(:b, 'ann', 'req-1');
SELECT * FROM pg_temp.footprint(:b);
SELECT batch_id = :b AS batch, owner_id, request_id, coupon_id - :f0 AS slot
  FROM coupon_lock.claim_request;
-- another request id of the same owner is another claim; so is the same id of another owner
SELECT pg_temp.claim(:b, 'ann', 'req-2');
SELECT pg_temp.claim(:b, 'ben', 'req-1');
-- without a request id (NULL or left out) every call claims
SELECT pg_temp.claim(:b, 'cat', NULL);
SELECT * FROM pg_temp.footprint(:b);

-- whatever happened to the coupon since, the repeat returns it and changes nothing
SELECT coupon_lock.coupon_freeze(:f0 + 1, 'ann', 'order-1');
SELECT pg_temp.claim(:b, 'ann', 'req-1');
SELECT coupon_lock.coupon_redeem(:f0 + 1, 'order-1');
SELECT pg_temp.claim(:b, 'ann', 'req-1');
SELECT coupon_lock.coupon_revoke(:f0 + 2);
SELECT pg_temp.claim(:b, 'ann', 'req-2');
SELECT * FROM pg_temp.footprint(:b);
SELECT coupon_id - :f0 AS slot, state, owner_id, version FROM coupon_lock.coupon
 WHERE batch_id = :b ORDER BY coupon_id;

-- a sold-out batch answers NULL, and the repeat NULL again; both are recorded
SELECT pg_temp.claim(:b, 'dan', 'req-d');
SELECT pg_temp.claim(:b, 'dan', 'req-d');
SELECT owner_id, request_id, coupon_id IS NULL AS sold_out FROM coupon_lock.claim_request
 WHERE batch_id = :b AND owner_id = 'dan';
SELECT * FROM pg_temp.footprint(:b);

-- a claim rolled back records nothing: its key is free, and the next call claims
SELECT coupon_lock.create_batch('back', 2, 1) AS bb \gset
BEGIN;
SELECT pg_temp.claim(:bb, 'eve', 'req-e');
ROLLBACK;
SELECT * FROM pg_temp.footprint(:bb);
SELECT pg_temp.claim(:bb, 'fay', 'req-f');
SELECT pg_temp.claim(:bb, 'eve', 'req-e');
SELECT pg_temp.claim(:bb, 'eve', 'req-e');
SELECT * FROM pg_temp.footprint(:bb);

-- the per-user limit: a refused claim records nothing, and its retry is refused again
SELECT coupon_lock.create_batch('limit', 5, 1) AS bl \gset
SELECT pg_temp.claim(:bl, 'gus', 'a') IS NOT NULL AS claimed;
SELECT pg_temp.st(format('SELECT coupon_lock.coupon_claim(%s, %L, %L)', :bl, 'gus', 'b'));
SELECT pg_temp.st(format('SELECT coupon_lock.coupon_claim(%s, %L, %L)', :bl, 'gus', 'b'));
SELECT pg_temp.claim(:bl, 'gus', 'a') IS NOT NULL AS same_answer;
SELECT count(*) FROM coupon_lock.claim_request WHERE batch_id = :bl;

-- twice in one transaction: the second call sees the first's answer
BEGIN;
SELECT pg_temp.claim(:bl, 'hal', 'x') = pg_temp.claim(:bl, 'hal', 'x') AS same;
COMMIT;

-- a batch that has ended: a new request is refused, a recorded one still answers
SELECT coupon_lock.create_batch('short', 3, 1, clock_timestamp() + interval '300 milliseconds') AS bs \gset
SELECT pg_temp.claim(:bs, 'ivy', 'r') AS ivy;
SELECT pg_sleep(0.4);
SELECT pg_temp.claim(:bs, 'ivy', 'r') AS ivy_again;
SELECT pg_temp.st(format('SELECT coupon_lock.coupon_claim(%s, %L, %L)', :bs, 'jon', 'r'));

-- refused arguments: request_id empty or too long; NULL batch or owner as before
SELECT pg_temp.st(format('SELECT coupon_lock.coupon_claim(%s, %L, %L)', :b, 'ann', ''));
SELECT pg_temp.st(format('SELECT coupon_lock.coupon_claim(%s, %L, %L)', :b, 'ann', repeat('r', 513)));
SELECT pg_temp.st('SELECT coupon_lock.coupon_claim(NULL, ''ann'', ''r'')');
SELECT pg_temp.st(format('SELECT coupon_lock.coupon_claim(%s, NULL, %L)', :b, 'r'));
SELECT pg_temp.st('SELECT coupon_lock.coupon_claim(-7, ''ann'', ''r'')');
SELECT count(*) FROM coupon_lock.claim_request WHERE batch_id = -7;
-- 512 bytes are accepted
SELECT pg_temp.claim(:bl, 'kim', repeat('r', 512)) IS NOT NULL AS claimed;

-- nobody but the owner writes the table
SELECT has_table_privilege('public', 'coupon_lock.claim_request', 'SELECT') AS public_select,
       has_function_privilege('public', 'coupon_lock.coupon_claim(bigint, text, text)', 'EXECUTE') AS public_execute;

-- the 1.1 library in a database still at 1.0: the two-argument declaration
-- claims as before; after ALTER EXTENSION UPDATE the request id works
CREATE DATABASE claim_request_v10;
\c claim_request_v10
SET client_min_messages = warning;
CREATE EXTENSION coupon_lock VERSION '1.0';
SELECT coupon_lock.create_batch('old', 2, 2) AS b \gset
SELECT coupon_lock.coupon_claim(:b, 'ann') IS NOT NULL AS claimed_on_1_0;
SELECT pg_get_function_arguments('coupon_lock.coupon_claim'::regproc);
ALTER EXTENSION coupon_lock UPDATE;
SELECT extversion FROM pg_extension WHERE extname = 'coupon_lock';
SELECT pg_get_function_arguments('coupon_lock.coupon_claim'::regproc);
SELECT coupon_lock.coupon_claim(:b, 'ann', 'r1') = coupon_lock.coupon_claim(:b, 'ann', 'r1') AS same;
SELECT state, count(*) FROM coupon_lock.coupon GROUP BY state ORDER BY state;
\c contrib_regression
DROP DATABASE claim_request_v10;
