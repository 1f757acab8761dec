-- coupon_claim: slots in order, per-user limit, sold out, missed slots picked up.
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
-- A batch below coupon_lock.claim_sequence_min_quantity has no claim sequence
-- (the last part of this file); this one gets one.
SET coupon_lock.claim_sequence_min_quantity = 1;
SELECT coupon_lock.create_batch('flash', 8, 2) AS b \gset
RESET coupon_lock.claim_sequence_min_quantity;
SELECT first_coupon_id AS f FROM coupon_lock.batch WHERE batch_id = :b \gset
-- the slot of a claimed coupon (1 = first coupon of the batch), NULL when none
CREATE FUNCTION pg_temp.claim(b bigint, owner text) RETURNS bigint LANGUAGE sql AS
  $$ SELECT coupon_lock.coupon_claim(b, owner) - (SELECT first_coupon_id - 1 FROM coupon_lock.batch WHERE batch_id = b) $$;

-- claims take the coupons in order, version 2, issued to the owner
SELECT pg_temp.claim(:b, 'ann'), pg_temp.claim(:b, 'ben');
SELECT coupon_id - :f + 1 AS n, state, owner_id, version FROM coupon_lock.coupon
 WHERE batch_id = :b AND state <> 'available' ORDER BY 1;
SELECT op, from_state, to_state, version, owner_id FROM coupon_lock.coupon_event
 WHERE coupon_id = :f;

-- the per-user limit: ann may hold two
SELECT pg_temp.claim(:b, 'ann');
SELECT pg_temp.st(format('SELECT coupon_lock.coupon_claim(%s, %L)', :b, 'ann'));
-- a refused claim consumes no coupon: the next claim gets slot 4
SELECT pg_temp.claim(:b, 'cat');

-- a claim rolled back leaves its coupon (slot 5) available behind the claims
BEGIN;
SELECT pg_temp.claim(:b, 'eve');
ROLLBACK;
SELECT state, version FROM coupon_lock.coupon WHERE coupon_id = :f + 4;
-- a coupon issued directly (slot 6) or revoked (slot 7) ahead of the claims is skipped
SELECT coupon_lock.coupon_issue(:f + 5, 'dan');
SELECT coupon_lock.coupon_revoke(:f + 6);
SELECT pg_temp.claim(:b, 'fay');
-- past the end of the batch, the next claim picks up slot 5
SELECT pg_temp.claim(:b, 'gus');
-- now the batch is sold out: NULL, and the claim takes no place of the owner's limit
SELECT pg_temp.claim(:b, 'hub');
SELECT pg_temp.claim(:b, 'cat');
SELECT owner_id, held FROM coupon_lock.owner_quota WHERE batch_id = :b ORDER BY owner_id;
SELECT state, count(*) FROM coupon_lock.coupon WHERE batch_id = :b GROUP BY state ORDER BY state;

-- a batch of one, claimed twice by one owner in one transaction
SELECT coupon_lock.create_batch('single', 1) AS b1 \gset
BEGIN;
SELECT pg_temp.claim(:b1, 'hal');
SELECT pg_temp.st(format('SELECT coupon_lock.coupon_claim(%s, %L)', :b1, 'hal'));
ROLLBACK;
SELECT pg_temp.claim(:b1, 'ivy');

-- refused calls
SELECT pg_temp.st('SELECT coupon_lock.coupon_claim(NULL, ''ann'')');
SELECT pg_temp.st(format('SELECT coupon_lock.coupon_claim(%s, NULL)', :b));
SELECT pg_temp.st(format('SELECT coupon_lock.coupon_claim(%s, %L)', :b, ''));
SELECT pg_temp.st('SELECT coupon_lock.coupon_claim(-7, ''ann'')');
SELECT pg_temp.st('SELECT coupon_lock.coupon_claim(9223372036854775807, ''ann'')');

-- a batch past its valid_until: claim and issue refuse with CL006
SELECT coupon_lock.create_batch('short', 3, 1, clock_timestamp() + interval '300 milliseconds') AS bs \gset
SELECT pg_temp.claim(:bs, 'jon');
SELECT pg_sleep(0.4);
SELECT pg_temp.st(format('SELECT coupon_lock.coupon_claim(%s, %L)', :bs, 'kim'));
SELECT pg_temp.st(format('SELECT coupon_lock.coupon_issue(%s, %L)',
       (SELECT first_coupon_id + 1 FROM coupon_lock.batch WHERE batch_id = :bs), 'kim'));

-- A small batch (below claim_sequence_min_quantity, default 1000) gets no
-- sequence: its claims take the unclaimed coupons in id order through the
-- index, skip what is issued or revoked, pick up a rolled-back claim's coupon
-- at once, and return NULL when none is left.
SHOW coupon_lock.claim_sequence_min_quantity;
SELECT coupon_lock.create_batch('small', 5, 5) AS s \gset
SELECT count(*) AS sequences FROM pg_class
 WHERE relnamespace = 'coupon_lock'::regnamespace AND relname = 'claim_seq_' || :s;
SELECT first_coupon_id AS g FROM coupon_lock.batch WHERE batch_id = :s \gset
SELECT pg_temp.claim(:s, 'ann');
BEGIN;
SELECT pg_temp.claim(:s, 'ann');
ROLLBACK;
SELECT coupon_lock.coupon_issue(:g + 2, 'dan');
SELECT coupon_lock.coupon_revoke(:g + 3);
SELECT pg_temp.claim(:s, 'ann'), pg_temp.claim(:s, 'ann'), pg_temp.claim(:s, 'ann');
SELECT count(*) AS claim_events FROM coupon_lock.coupon_event e
 WHERE e.op = 'claim' AND e.coupon_id BETWEEN :g AND :g + 4;
-- only superusers may change the threshold
CREATE ROLE claim_seq_user;
SET ROLE claim_seq_user;
SELECT pg_temp.st('SET coupon_lock.claim_sequence_min_quantity = 1');
RESET ROLE;
DROP ROLE claim_seq_user;
