-- Bulk work in one transaction takes no lock-table entry per coupon: 20,000
-- claims, freezes and a sweep of all of them fit where one advisory lock per
-- row (max_locks_per_transaction x max_connections slots) would run out.
SHOW max_locks_per_transaction;
SELECT coupon_lock.create_batch('bulk', 20000, 1) AS b \gset
BEGIN;
SELECT count(coupon_lock.coupon_claim(:b, 'owner-' || g)) AS claimed FROM generate_series(1, 20000) g;
SELECT count(coupon_lock.coupon_freeze(coupon_id, owner_id, 'order-' || owner_id, 2, '1 millisecond')) AS frozen
  FROM coupon_lock.coupon WHERE batch_id = :b;
SELECT count(*) AS locks_held FROM pg_locks WHERE pid = pg_backend_pid() AND locktype NOT IN ('relation', 'virtualxid', 'transactionid');
COMMIT;
SELECT pg_sleep(0.01);
SELECT coupon_lock.release_expired_freezes(100000) >= 20000 AS all_released;
SELECT coupon_lock.coupon_claim(:b, 'late') AS sold_out;
SELECT state, count(*) FROM coupon_lock.coupon WHERE batch_id = :b GROUP BY state;
SELECT count(*) FROM coupon_lock.owner_quota WHERE batch_id = :b AND held = 1;
