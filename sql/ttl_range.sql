-- Ttls out of range (over 1000 years) are refused as arguments (22023)
-- before anything is read or written: an enormous ttl would otherwise fail
-- inside the write with "timestamp out of range" (22008), and a batch
-- created with one could never be frozen.  Found by the fuzz layer
-- (test/prove/fuzz.sh).
\set VERBOSITY sqlstate
SELECT coupon_lock.create_batch('ttl-range', 5, 5) AS b \gset
SELECT coupon_lock.coupon_claim(:b, 'owner') AS c \gset
SELECT coupon_lock.coupon_freeze(:c, 'owner', 'order', NULL, '178000000 years');
SELECT coupon_lock.coupon_freeze(:c, 'owner', 'order', NULL, '2147483647 days');
SELECT coupon_lock.coupon_freeze(:c, 'owner', 'order', NULL, '2562047788:00:54.775807');
SELECT coupon_lock.coupon_freeze(:c, 'owner', 'order', NULL, '1000 years 1 day');
SELECT coupon_lock.create_batch('ttl-range', 5, 5, NULL, '178000000 years');
SELECT coupon_lock.create_batch('ttl-range', 5, 5, NULL, '2147483647 months');
-- nothing changed; the longest ttl accepted still freezes
SELECT state, version FROM coupon_lock.coupon WHERE coupon_id = :c;
SELECT coupon_lock.coupon_freeze(:c, 'owner', 'order', NULL, '1000 years') - 2 AS versions_added;
SELECT frozen_until > now() + interval '999 years' AS far_away FROM coupon_lock.coupon WHERE coupon_id = :c;
SELECT coupon_lock.create_batch('ttl-range', 5, 5, NULL, '1000 years') > :b AS created;
-- Leases take their ttl through the same check: before it, an enormous ttl
-- failed inside the write with 22008 (found by the fuzz layer once the lease
-- functions existed).
SELECT coupon_lock.lease_acquire('ttl-range', 'holder', '178000000 years');
SELECT coupon_lock.lease_acquire('ttl-range', 'holder', '2147483647 days');
SELECT coupon_lock.lease_acquire('ttl-range', 'holder', '1 minute') > 0 AS acquired;
SELECT coupon_lock.lease_renew('ttl-range', 'holder', '2147483647 months');
SELECT coupon_lock.lease_renew('ttl-range', 'holder', '1000 years') AS renewed;
SELECT coupon_lock.lease_release('ttl-range', 'holder') AS released;
