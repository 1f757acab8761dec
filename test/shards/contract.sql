-- The contract through the router (test/prove/shards.sh runs it in the router
-- database): every coupon and lease function, its results and its SQLSTATEs,
-- as shared/API.md states them for a single node.  Each query prints
-- "name|t" or "name|f|detail".
\set QUIET on
\pset footer off
SET client_min_messages = warning;

-- sqlstate_of(sql): the SQLSTATE the statement raises ('ok' when none)
CREATE FUNCTION public.sqlstate_of(stmt text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE stmt;
    RETURN 'ok';
EXCEPTION WHEN OTHERS THEN
    RETURN SQLSTATE;
END $$;
-- the error message (to compare with a single node's wording)
CREATE FUNCTION public.message_of(stmt text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE stmt;
    RETURN NULL;
EXCEPTION WHEN OTHERS THEN
    RETURN SQLERRM;
END $$;

SELECT 'router_init is idempotent and counts 8 partitions', coupon_lock.router_init() = 8;
SELECT 'router_shards: 8 partitions, 4 databases, all answer',
       count(*) = 8 AND count(DISTINCT lead_partition) = 4 AND bool_and(answers)
  FROM coupon_lock.router_shards;

-- ---- create_batch: the quantity spread over the shards ----
SELECT coupon_lock.create_batch('contract', 40, 2, NULL, '10 minutes') AS b \gset
SELECT 'create_batch: one batch row with the whole quantity and its attributes',
       count(*) = 1 AND min(quantity) = 40 AND min(per_user_limit) = 2 AND min(freeze_ttl) = '10 minutes'
       AND bool_and(valid_until IS NULL) AND bool_and(name = 'contract')
  FROM coupon_lock.batch WHERE batch_id = :b;
SELECT 'create_batch: 40 coupons, available, version 1, unique codes',
       count(*) = 40 AND bool_and(state = 'available' AND version = 1 AND owner_id IS NULL)
       AND count(DISTINCT code) = 40 AND count(DISTINCT coupon_id) = 40
  FROM coupon_lock.coupon WHERE batch_id = :b;
SELECT 'create_batch: spread over all four databases (10 each)',
       count(*) = 4 AND min(n) = 10 AND max(n) = 10
  FROM (SELECT coupon_lock.id_partition(coupon_id) p, count(*) n FROM coupon_lock.coupon
         WHERE batch_id = :b GROUP BY 1) s;
SELECT 'create_batch: the batch id routes to its home partition',
       coupon_lock.id_partition(:b) IN (SELECT lead_partition FROM coupon_lock.router_shards);
SELECT 'create_batch: quantity 0 is 22023', sqlstate_of('SELECT coupon_lock.create_batch(''x'', 0)') = '22023';
SELECT 'create_batch: NULL name is 22004', sqlstate_of('SELECT coupon_lock.create_batch(NULL, 5)') = '22004';
SELECT 'create_batch: per_user_limit 0 is 22023', sqlstate_of('SELECT coupon_lock.create_batch(''x'', 5, 0)') = '22023';
SELECT 'create_batch: valid_until in the past is 22023',
       sqlstate_of('SELECT coupon_lock.create_batch(''x'', 5, 1, now() - interval ''1 day'')') = '22023';
SELECT coupon_lock.create_batch('one', 1) AS one \gset
SELECT 'create_batch: quantity 1 on four databases is one coupon', count(*) = 1
  FROM coupon_lock.coupon WHERE batch_id = :one;

-- ---- claims: the owner's home shard ----
SELECT coupon_lock.coupon_claim(:b, 'ann') AS c1 \gset
SELECT 'coupon_claim: issued to the owner at version 2, one claim ledger row',
       (SELECT state = 'issued' AND owner_id = 'ann' AND version = 2 FROM coupon_lock.coupon WHERE coupon_id = :c1)
       AND (SELECT count(*) = 1 FROM coupon_lock.coupon_event WHERE coupon_id = :c1 AND op = 'claim'
                                 AND to_state = 'issued' AND version = 2 AND owner_id = 'ann');
SELECT 'coupon_claim: on the owner''s home database',
       coupon_lock.router_lead_of(coupon_lock.id_partition(:c1)) =
       coupon_lock.router_lead_of(coupon_lock.owner_partition('ann'));
SELECT 'coupon_claim: per_user_limit 2 allows a second', coupon_lock.coupon_claim(:b, 'ann') IS NOT NULL;
SELECT 'coupon_claim: a third is CL005', sqlstate_of(format('SELECT coupon_lock.coupon_claim(%s, ''ann'')', :b)) = 'CL005';
SELECT 'coupon_claim: the limit''s message as a single node words it',
       message_of(format('SELECT coupon_lock.coupon_claim(%s, ''ann'')', :b)) =
       format('owner "ann" has reached the limit of batch %s', :b);
SELECT 'coupon_claim: unknown batch is CL002', sqlstate_of('SELECT coupon_lock.coupon_claim(12345, ''ann'')') = 'CL002';
SELECT 'coupon_claim: NULL owner is 22004', sqlstate_of(format('SELECT coupon_lock.coupon_claim(%s, NULL)', :b)) = '22004';
SELECT 'coupon_claim: NULL batch is 22004', sqlstate_of('SELECT coupon_lock.coupon_claim(NULL, ''ann'')') = '22004';
SELECT 'coupon_claim: empty owner is 22023', sqlstate_of(format('SELECT coupon_lock.coupon_claim(%s, '''')', :b)) = '22023';
SELECT 'coupon_claim: request_id retry returns the first coupon and changes nothing',
       coupon_lock.coupon_claim(:b, 'bob', 'req-1') = coupon_lock.coupon_claim(:b, 'bob', 'req-1')
       AND (SELECT count(*) FROM coupon_lock.coupon WHERE batch_id = :b AND owner_id = 'bob') = 1;

-- ---- issue, freeze, unfreeze, redeem, revoke: by id, on the coupon's shard ----
SELECT coupon_id AS free FROM coupon_lock.coupon WHERE batch_id = :b AND state = 'available' LIMIT 1 \gset
SELECT 'coupon_issue: available -> issued, version 2', coupon_lock.coupon_issue(:free, 'cy') = 2;
SELECT 'coupon_issue: again by another owner is 55000', sqlstate_of(format('SELECT coupon_lock.coupon_issue(%s, ''dee'')', :free)) = '55000';
SELECT 'coupon_issue: stale expected_version is 40001', sqlstate_of(format('SELECT coupon_lock.coupon_issue(%s, ''dee'', 7)', :free)) = '40001';
SELECT 'coupon_issue: unknown coupon is CL001', sqlstate_of('SELECT coupon_lock.coupon_issue(99999, ''dee'')') = 'CL001';
SELECT 'coupon_issue: NULL coupon is 22004', sqlstate_of('SELECT coupon_lock.coupon_issue(NULL, ''dee'')') = '22004';
SELECT 'coupon_freeze: issued -> frozen, version 3', coupon_lock.coupon_freeze(:free, 'cy', 'o-1') = 3;
SELECT 'coupon_freeze: retry by the same order is idempotent', coupon_lock.coupon_freeze(:free, 'cy', 'o-1') = 3;
SELECT 'coupon_freeze: frozen_until set, order_id set',
       (SELECT state = 'frozen' AND order_id = 'o-1' AND frozen_until > now() FROM coupon_lock.coupon WHERE coupon_id = :free);
SELECT 'coupon_freeze: another order is CL004', sqlstate_of(format('SELECT coupon_lock.coupon_freeze(%s, ''cy'', ''o-2'')', :free)) = 'CL004';
SELECT 'coupon_freeze: negative ttl is 22023', sqlstate_of(format('SELECT coupon_lock.coupon_freeze(%s, ''cy'', ''o-1'', NULL, ''-1 s'')', :free)) = '22023';
SELECT 'coupon_unfreeze: another order is CL004', sqlstate_of(format('SELECT coupon_lock.coupon_unfreeze(%s, ''o-2'')', :free)) = 'CL004';
SELECT 'coupon_unfreeze: frozen -> issued, version 4', coupon_lock.coupon_unfreeze(:free, 'o-1') = 4;
SELECT 'coupon_unfreeze: repeated by the same order is idempotent', coupon_lock.coupon_unfreeze(:free, 'o-1') = 4;
SELECT 'coupon_freeze: another owner is CL003', sqlstate_of(format('SELECT coupon_lock.coupon_freeze(%s, ''zed'', ''o-3'')', :free)) = 'CL003';
SELECT 'coupon_freeze: expected_version 4 matches', coupon_lock.coupon_freeze(:free, 'cy', 'o-3', 4) = 5;
SELECT 'coupon_redeem: expected_version 4 is 40001', sqlstate_of(format('SELECT coupon_lock.coupon_redeem(%s, ''o-3'', 4)', :free)) = '40001';
SELECT 'coupon_redeem: frozen -> redeemed, version 6', coupon_lock.coupon_redeem(:free, 'o-3') = 6;
SELECT 'coupon_redeem: retry by the same order is idempotent', coupon_lock.coupon_redeem(:free, 'o-3') = 6;
SELECT 'coupon_revoke: a redeemed coupon is 55000', sqlstate_of(format('SELECT coupon_lock.coupon_revoke(%s)', :free)) = '55000';
SELECT 'coupon_revoke: an issued coupon -> revoked', coupon_lock.coupon_revoke(:c1) = 3
       AND (SELECT state = 'revoked' FROM coupon_lock.coupon WHERE coupon_id = :c1);
SELECT 'ledger: freeze, unfreeze, freeze, redeem rows in order with versions 3..6',
       array_agg(op || version ORDER BY event_id) = '{issue2,freeze3,unfreeze4,freeze5,redeem6}'
  FROM coupon_lock.coupon_event WHERE coupon_id = :free;

-- ---- the per-user limit across shards: coupon_issue of another database's coupon ----
SELECT coupon_lock.create_batch('limit', 16, 1) AS lb \gset
SELECT coupon_id AS far FROM coupon_lock.coupon WHERE batch_id = :lb AND state = 'available'
   AND coupon_lock.router_lead_of(coupon_lock.id_partition(coupon_id)) <>
       coupon_lock.router_lead_of(coupon_lock.owner_partition('eve')) LIMIT 1 \gset
SELECT coupon_id AS far2 FROM coupon_lock.coupon WHERE batch_id = :lb AND state = 'available' AND coupon_id <> :far
   AND coupon_lock.router_lead_of(coupon_lock.id_partition(coupon_id)) <>
       coupon_lock.router_lead_of(coupon_lock.owner_partition('eve')) LIMIT 1 \gset
SELECT 'coupon_issue: a coupon on another shard than the owner''s home', coupon_lock.coupon_issue(:far, 'eve') = 2;
SELECT 'coupon_issue: that coupon counts at home: a claim is CL005',
       sqlstate_of(format('SELECT coupon_lock.coupon_claim(%s, ''eve'')', :lb)) = 'CL005';
SELECT 'coupon_issue: and a second issue elsewhere is CL005',
       sqlstate_of(format('SELECT coupon_lock.coupon_issue(%s, ''eve'')', :far2)) = 'CL005';
SELECT 'coupon_issue: the refused issue left the coupon available', coupon_lock.coupon_issue(:far2, 'fay') = 2;
SELECT 'coupon_issue: an unavailable coupon at the limit is 55000, as on one node',
       sqlstate_of(format('SELECT coupon_lock.coupon_issue(%s, ''eve'')', :far2)) = '55000';
SELECT 'coupon_issue: a failed issue under the limit gives its hold back at once',
       sqlstate_of(format('SELECT coupon_lock.coupon_issue(%s, ''eve'')', :c1)) = '55000';
SELECT 'coupon_revoke then router_reconcile: the owner may claim again',
       coupon_lock.coupon_revoke(:far) = 3
       AND (SELECT holds_released = 1 FROM coupon_lock.router_reconcile('0'))
       AND coupon_lock.coupon_claim(:lb, 'eve') IS NOT NULL;

-- ---- sell-out: NULL only when no shard has stock ----
SELECT coupon_lock.create_batch('sellout', 5, 1) AS sb \gset
SELECT 'coupon_claim: 5 coupons for 8 owners: 5 ids then NULLs, whatever the homes',
       count(c) = 5 AND count(*) = 8
  FROM (SELECT coupon_lock.coupon_claim(:sb, 'so-' || g) c FROM generate_series(1, 8) g) s;
SELECT 'coupon_claim: a request_id that found the batch sold out gets NULL again',
       coupon_lock.coupon_claim(:sb, 'late', 'r-9') IS NULL AND coupon_lock.coupon_claim(:sb, 'late', 'r-9') IS NULL;

-- ---- sweeps on every shard ----
SELECT coupon_lock.create_batch('sweep', 8, 8, now() + interval '2 seconds') AS wb \gset
SELECT coupon_lock.coupon_claim(:wb, 'sw') AS w1 \gset
SELECT coupon_lock.coupon_claim(:wb, 'sw2') AS w2 \gset
SELECT coupon_lock.coupon_freeze(:w1, 'sw', 'so-1', NULL, '1 millisecond') > 0 AS frozen \gset
SELECT pg_sleep(0.1);
SELECT 'release_expired_freezes: the lapsed freeze is released', coupon_lock.release_expired_freezes() >= 1
       AND (SELECT state = 'issued' FROM coupon_lock.coupon WHERE coupon_id = :w1);
SELECT 'release_expired_freezes: max_rows 0 is 22023', sqlstate_of('SELECT coupon_lock.release_expired_freezes(0)') = '22023';
SELECT 'expire_coupons: max_rows 0 is 22023', sqlstate_of('SELECT coupon_lock.expire_coupons(0)') = '22023';
SELECT pg_sleep(2.1);
SELECT 'coupon_claim: an expired batch is CL006', sqlstate_of(format('SELECT coupon_lock.coupon_claim(%s, ''sw3'')', :wb)) = 'CL006';
SELECT 'expire_coupons: every shard''s coupons of the expired batch', coupon_lock.expire_coupons() = 8
       AND (SELECT bool_and(state = 'expired') FROM coupon_lock.coupon WHERE batch_id = :wb);

-- ---- leases, routed by name ----
SELECT coupon_lock.lease_acquire('cron', 'w1', '1 minute') AS tok \gset
SELECT 'lease_acquire: a token; another holder gets NULL',
       :tok > 0 AND coupon_lock.lease_acquire('cron', 'w2', '1 minute') IS NULL;
SELECT 'lease_check: true for the token', coupon_lock.lease_check('cron', :tok);
SELECT 'lease_renew: true for the holder', coupon_lock.lease_renew('cron', 'w1', '1 minute');
SELECT 'lease_release: true, then lease_check false', coupon_lock.lease_release('cron', 'w1')
       AND NOT coupon_lock.lease_check('cron', :tok);
SELECT 'lease_acquire: the next grant has a greater token', coupon_lock.lease_acquire('cron', 'w2', '1 minute') > :tok;

-- ---- the locks of the router's own node ----
SELECT 'advisory_lock: held on the router''s node',
       coupon_lock.advisory_lock('router-key', '0')
       AND (SELECT count(*) = 1 FROM coupon_lock.advisory_locks WHERE pid = pg_backend_pid());
SELECT 'advisory_unlock: released', coupon_lock.advisory_unlock('router-key');
SELECT 'redis_lock: acts on the router''s node (55000 here: no Redis configured)',
       sqlstate_of('SELECT coupon_lock.redis_lock(''k'', ''1 second'')') IN ('55000', '0A000', 'ok');

-- ---- ids carry their partition ----
SELECT 'ids: every coupon and event id carries its database''s lead partition',
       (SELECT bool_and(coupon_lock.id_partition(coupon_id) IN (SELECT lead_partition FROM coupon_lock.router_shards))
          FROM coupon_lock.coupon)
       AND (SELECT bool_and(coupon_lock.id_partition(event_id) = coupon_lock.id_partition(coupon_id))
              FROM coupon_lock.coupon_event);
SELECT 'views are read-only: INSERT, UPDATE and DELETE on batch, coupon and coupon_event are refused (55000, as PostgreSQL refuses a view it cannot update), even for the superuser',
       bool_and(sqlstate_of(format(stmt, v, k)) = '55000'),
       string_agg(format(stmt, v, k) || ': ' || sqlstate_of(format(stmt, v, k)), '; ')
         FILTER (WHERE sqlstate_of(format(stmt, v, k)) <> '55000')
  FROM unnest(ARRAY['batch', 'coupon', 'coupon_event'], ARRAY['batch_id', 'coupon_id', 'event_id']) t(v, k),
       unnest(ARRAY['DELETE FROM coupon_lock.%1$s', 'UPDATE coupon_lock.%1$s SET %2$s = %2$s',
                    'INSERT INTO coupon_lock.%1$s DEFAULT VALUES']) stmt;
