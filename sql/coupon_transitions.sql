-- Every allowed and refused transition, versions, idempotent retries and the ledger.
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
-- the coupon n of batch :b (ids differ between runs of the suite)
CREATE FUNCTION pg_temp.c(b bigint, n int) RETURNS bigint LANGUAGE sql AS
  $$ SELECT first_coupon_id + n - 1 FROM coupon_lock.batch WHERE batch_id = b $$;
CREATE FUNCTION pg_temp.v(b bigint) RETURNS TABLE (n bigint, state coupon_lock.coupon_state,
    owner_id text, order_id text, version bigint, has_until boolean) LANGUAGE sql AS
  $$ SELECT c.coupon_id - bt.first_coupon_id + 1, c.state, c.owner_id, c.order_id, c.version,
            c.frozen_until IS NOT NULL
       FROM coupon_lock.coupon c JOIN coupon_lock.batch bt USING (batch_id)
      WHERE c.batch_id = b $$;

SELECT coupon_lock.create_batch('transitions', 10, 3) AS b \gset
SELECT pg_temp.c(:b, 1) AS c1, pg_temp.c(:b, 2) AS c2, pg_temp.c(:b, 3) AS c3,
       pg_temp.c(:b, 4) AS c4, pg_temp.c(:b, 5) AS c5, pg_temp.c(:b, 6) AS c6 \gset

-- issue: available -> issued, version 1 -> 2
SELECT coupon_lock.coupon_issue(:c1, 'alice');
SELECT coupon_lock.coupon_issue(:c2, 'alice', 1);
SELECT * FROM pg_temp.v(:b) WHERE n <= 2 ORDER BY n;
-- issuing again: an idempotent retry for the same owner (1.1, sql/coupon_issue_retry.sql),
-- refused for anyone else
SELECT pg_temp.st(format('SELECT coupon_lock.coupon_issue(%s, %L)', :c1, 'alice'));
SELECT pg_temp.st(format('SELECT coupon_lock.coupon_issue(%s, %L)', :c1, 'bob'));
-- a stale expected_version: 40001 naming the current version and state
SELECT coupon_lock.coupon_issue(:c3, 'bob', 1);
SELECT pg_temp.st(format('SELECT coupon_lock.coupon_freeze(%s, %L, %L, 1)', :c3, 'bob', 'o-3'));

-- freeze: issued (owned) -> frozen for the order, with frozen_until
SELECT coupon_lock.coupon_freeze(:c1, 'alice', 'order-A');
SELECT * FROM pg_temp.v(:b) WHERE n = 1;
-- (frozen_until is clock_timestamp() + ttl, updated_at now(): a few microseconds apart)
SELECT frozen_until - updated_at - interval '15 minutes' BETWEEN '0' AND '1 minute' AS batch_ttl_used FROM coupon_lock.coupon WHERE coupon_id = :c1;
-- idempotent retry: same order, current version, nothing written (even with the stale expected version)
SELECT count(*) AS events_before FROM coupon_lock.coupon_event WHERE coupon_id = :c1 \gset
SELECT coupon_lock.coupon_freeze(:c1, 'alice', 'order-A');
SELECT coupon_lock.coupon_freeze(:c1, 'alice', 'order-A', 2);
SELECT count(*) = :events_before AS no_new_event FROM coupon_lock.coupon_event WHERE coupon_id = :c1;
-- another order cannot take it, nor can the owner retry under another owner id
SELECT pg_temp.st(format('SELECT coupon_lock.coupon_freeze(%s, %L, %L)', :c1, 'alice', 'order-B'));
SELECT pg_temp.st(format('SELECT coupon_lock.coupon_freeze(%s, %L, %L)', :c1, 'mallory', 'order-A'));
-- owner mismatch on an issued coupon
SELECT pg_temp.st(format('SELECT coupon_lock.coupon_freeze(%s, %L, %L)', :c2, 'bob', 'order-X'));
-- freezing an available coupon is refused
SELECT pg_temp.st(format('SELECT coupon_lock.coupon_freeze(%s, %L, %L)', :c6, 'alice', 'order-X'));
-- an explicit ttl
SELECT coupon_lock.coupon_freeze(:c2, 'alice', 'order-C', NULL, '90 seconds');
SELECT frozen_until - updated_at - interval '90 seconds' BETWEEN '0' AND '1 second' AS ttl_used FROM coupon_lock.coupon WHERE coupon_id = :c2;

-- unfreeze: only the holding order; frozen -> issued, order and frozen_until cleared
SELECT pg_temp.st(format('SELECT coupon_lock.coupon_unfreeze(%s, %L)', :c2, 'order-A'));
SELECT coupon_lock.coupon_unfreeze(:c2, 'order-C');
SELECT * FROM pg_temp.v(:b) WHERE n = 2;
-- repeated by the same order with no transition in between: current version, no event
SELECT coupon_lock.coupon_unfreeze(:c2, 'order-C');
SELECT coupon_lock.coupon_unfreeze(:c2, 'order-C', 3);
-- ...but not for another order, and not after another transition
SELECT pg_temp.st(format('SELECT coupon_lock.coupon_unfreeze(%s, %L)', :c2, 'order-Z'));
SELECT coupon_lock.coupon_freeze(:c2, 'alice', 'order-D');
SELECT pg_temp.st(format('SELECT coupon_lock.coupon_unfreeze(%s, %L)', :c2, 'order-C'));
-- a late redeem for order C never touches the coupon order D holds now
SELECT pg_temp.st(format('SELECT coupon_lock.coupon_redeem(%s, %L)', :c2, 'order-C'));
SELECT * FROM pg_temp.v(:b) WHERE n = 2;

-- redeem: frozen by the order -> redeemed, order kept
SELECT coupon_lock.coupon_redeem(:c1, 'order-A', 3);
SELECT * FROM pg_temp.v(:b) WHERE n = 1;
-- idempotent retry of the same order; any other order or call is refused
SELECT coupon_lock.coupon_redeem(:c1, 'order-A');
SELECT coupon_lock.coupon_redeem(:c1, 'order-A', 3);
SELECT pg_temp.st(format('SELECT coupon_lock.coupon_redeem(%s, %L)', :c1, 'order-B'));
SELECT pg_temp.st(format('SELECT coupon_lock.coupon_unfreeze(%s, %L)', :c1, 'order-A'));
SELECT pg_temp.st(format('SELECT coupon_lock.coupon_freeze(%s, %L, %L)', :c1, 'alice', 'order-A2'));
SELECT pg_temp.st(format('SELECT coupon_lock.coupon_revoke(%s)', :c1));
-- redeeming an issued coupon is refused
SELECT pg_temp.st(format('SELECT coupon_lock.coupon_redeem(%s, %L)', :c3, 'o-3'));

-- revoke: available, issued and frozen -> revoked; nothing leaves revoked
SELECT coupon_lock.coupon_revoke(:c6);
SELECT coupon_lock.coupon_revoke(:c3, 2);
SELECT coupon_lock.coupon_revoke(:c2);
SELECT * FROM pg_temp.v(:b) WHERE n IN (2, 3, 6) ORDER BY n;
SELECT pg_temp.st(format('SELECT coupon_lock.coupon_revoke(%s)', :c2));
SELECT pg_temp.st(format('SELECT coupon_lock.coupon_issue(%s, %L)', :c6, 'alice'));
SELECT pg_temp.st(format('SELECT coupon_lock.coupon_freeze(%s, %L, %L)', :c3, 'bob', 'o'));
SELECT pg_temp.st(format('SELECT coupon_lock.coupon_unfreeze(%s, %L)', :c2, 'order-D'));
SELECT pg_temp.st(format('SELECT coupon_lock.coupon_revoke(%s, 99)', :c3));

-- the per-user limit (3) counts every state but revoked: alice holds c1 (redeemed);
-- c2 was revoked, so alice may take two more, then no more
SELECT coupon_lock.coupon_issue(:c4, 'alice');
SELECT coupon_lock.coupon_issue(:c5, 'alice');
SELECT pg_temp.st(format('SELECT coupon_lock.coupon_issue(%s, %L)', pg_temp.c(:b, 7), 'alice'));
SELECT state FROM coupon_lock.coupon WHERE coupon_id = pg_temp.c(:b, 7);
-- revoking one frees a place
SELECT coupon_lock.coupon_revoke(:c5);
SELECT coupon_lock.coupon_issue(pg_temp.c(:b, 7), 'alice');
SELECT held FROM coupon_lock.owner_quota WHERE batch_id = :b AND owner_id = 'alice';

-- unknown coupons and bad arguments
SELECT pg_temp.st('SELECT coupon_lock.coupon_issue(-1, ''alice'')');
SELECT pg_temp.st('SELECT coupon_lock.coupon_freeze(9223372036854775807, ''alice'', ''o'')');
SELECT pg_temp.st('SELECT coupon_lock.coupon_unfreeze(0, ''o'')');
SELECT pg_temp.st('SELECT coupon_lock.coupon_redeem(0, ''o'')');
SELECT pg_temp.st('SELECT coupon_lock.coupon_revoke(0)');
SELECT pg_temp.st('SELECT coupon_lock.coupon_issue(NULL, ''alice'')');
SELECT pg_temp.st(format('SELECT coupon_lock.coupon_issue(%s, NULL)', :c6));
SELECT pg_temp.st(format('SELECT coupon_lock.coupon_issue(%s, %L)', :c6, ''));
SELECT pg_temp.st(format('SELECT coupon_lock.coupon_issue(%s, %L)', :c6, repeat('x', 513)));
SELECT pg_temp.st(format('SELECT coupon_lock.coupon_issue(%s, %L, 0)', :c6, 'alice'));
SELECT pg_temp.st(format('SELECT coupon_lock.coupon_freeze(%s, %L, NULL)', :c4, 'alice'));
SELECT pg_temp.st(format('SELECT coupon_lock.coupon_freeze(%s, NULL, %L)', :c4, 'o'));
SELECT pg_temp.st(format('SELECT coupon_lock.coupon_freeze(%s, %L, %L, NULL, %L)', :c4, 'alice', 'o', '0'));
SELECT pg_temp.st(format('SELECT coupon_lock.coupon_freeze(%s, %L, %L, NULL, %L)', :c4, 'alice', 'o', '-5 minutes'));
SELECT pg_temp.st(format('SELECT coupon_lock.coupon_unfreeze(%s, NULL)', :c4));
SELECT pg_temp.st(format('SELECT coupon_lock.coupon_redeem(%s, %L, -3)', :c4, 'o'));
SELECT pg_temp.st('SELECT coupon_lock.coupon_revoke(NULL)');
-- none of the failed calls changed anything
SELECT * FROM pg_temp.v(:b) WHERE n IN (4, 6) ORDER BY n;

-- the ledger: one row per successful transition, versions in step
SELECT coupon_id - :c1 + 1 AS n, op, from_state, to_state, version, owner_id, order_id
  FROM coupon_lock.coupon_event WHERE coupon_id BETWEEN :c1 AND pg_temp.c(:b, 10)
 ORDER BY event_id;
-- replaying it gives every coupon's state and version
SELECT count(*) AS mismatches
  FROM coupon_lock.coupon c
  LEFT JOIN LATERAL (SELECT to_state, version FROM coupon_lock.coupon_event e
                      WHERE e.coupon_id = c.coupon_id ORDER BY event_id DESC LIMIT 1) e ON true
 WHERE c.batch_id = :b
   AND (c.state, c.version) IS DISTINCT FROM (coalesce(e.to_state, 'available'), coalesce(e.version, 1));
