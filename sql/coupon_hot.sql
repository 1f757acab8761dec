-- Transitions as HOT updates (issue 14): freeze, unfreeze, redeem and the
-- sweep's release change no indexed column, so PostgreSQL updates the row in
-- place without an index insert.  The backend's pending counters
-- (pg_stat_get_xact_*) are not flushed inside a transaction: their growth
-- from its start is exactly what it did.
-- lapsed freezes other tests may have left: swept first, so the counts are this test's
SELECT coupon_lock.release_expired_freezes(100000) >= 0;
SELECT coupon_lock.create_batch('hot', 2000, 1) AS b \gset
SELECT first_coupon_id AS f FROM coupon_lock.batch WHERE batch_id = :b \gset
-- five coupons on five different pages, issued (a claim or issue sets owner_id:
-- not HOT, and not meant to be)
SELECT count(coupon_lock.coupon_issue(:f + 300 * i, 'u' || i)) FROM generate_series(0, 4) i;
-- every coupon index, and the columns it names in its key or predicate
SELECT c.relname AS index,
       pg_get_indexdef(i.indexrelid) ~ '\m(state|order_id|frozen_until|version|updated_at)\M' AS names_a_transition_column
  FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
 WHERE i.indrelid = 'coupon_lock.coupon'::regclass ORDER BY 1;
SELECT reloptions FROM pg_class WHERE oid = 'coupon_lock.coupon'::regclass;
BEGIN;
SELECT pg_stat_get_xact_tuples_updated('coupon_lock.coupon'::regclass) AS u0,
       pg_stat_get_xact_tuples_hot_updated('coupon_lock.coupon'::regclass) AS h0 \gset
SELECT count(coupon_lock.coupon_freeze(:f + 300 * i, 'u' || i, 'a' || i)) FROM generate_series(0, 4) i;
SELECT count(coupon_lock.coupon_unfreeze(:f + 300 * i, 'a' || i)) FROM generate_series(0, 4) i;
SELECT count(coupon_lock.coupon_freeze(:f + 300 * i, 'u' || i, 'b' || i)) FROM generate_series(0, 3) i;
SELECT count(coupon_lock.coupon_redeem(:f + 300 * i, 'b' || i)) FROM generate_series(0, 3) i;
SELECT coupon_lock.coupon_freeze(:f + 1200, 'u4', 'c4', NULL, '1 microsecond');
SELECT pg_stat_get_xact_tuples_updated('coupon_lock.coupon'::regclass) - :u0 AS updates,
       pg_stat_get_xact_tuples_hot_updated('coupon_lock.coupon'::regclass) - :h0 AS hot_updates;
COMMIT;
-- the sweep's release is HOT too, and so is the freeze after it
BEGIN;
SELECT pg_stat_get_xact_tuples_updated('coupon_lock.coupon'::regclass) AS u0,
       pg_stat_get_xact_tuples_hot_updated('coupon_lock.coupon'::regclass) AS h0 \gset
SELECT pg_sleep(0.01);
SELECT coupon_lock.release_expired_freezes() AS released;
SELECT coupon_lock.coupon_freeze(:f + 1200, 'u4', 'd4');
SELECT pg_stat_get_xact_tuples_updated('coupon_lock.coupon'::regclass) - :u0 AS updates,
       pg_stat_get_xact_tuples_hot_updated('coupon_lock.coupon'::regclass) - :h0 AS hot_updates;
COMMIT;
-- every freeze left a deadline row; the sweep deleted the lapsed one's
SELECT count(*) AS deadlines FROM coupon_lock.freeze_deadline
 WHERE coupon_id IN (SELECT :f + 300 * i FROM generate_series(0, 4) i);
