-- One rule for every duration argument (args.c, issue 10 item 17): a
-- duration is the span from the clock to the clock + the interval as the
-- write computes it; no part may be negative (months and days vary in
-- length with the date), a ttl is longer than zero, and the end is at most
-- 1000 years away.  Before, a month counted 30 days in the check and a
-- calendar month in the write: '1 month -29 days' passed as "1 day" and
-- lapsed at once in February, '-100 years 36200 days' made a freeze that had
-- already lapsed, '-10000 years 3660000 days' failed inside the write with
-- 22008, and a batch accepted such a freeze_ttl.
\set VERBOSITY terse
SET client_min_messages = error;
SELECT coupon_lock.create_batch('durations', 5, 5) AS b \gset
SELECT coupon_lock.coupon_claim(:b, 'owner') AS c \gset
-- freezes
SELECT coupon_lock.coupon_freeze(:c, 'owner', 'o', NULL, '1 month -29 days');
SELECT coupon_lock.coupon_freeze(:c, 'owner', 'o', NULL, '-100 years 36200 days');
SELECT coupon_lock.coupon_freeze(:c, 'owner', 'o', NULL, '-10000 years 3660000 days');
SELECT coupon_lock.coupon_freeze(:c, 'owner', 'o', NULL, '1 day -1 hour');
SELECT coupon_lock.coupon_freeze(:c, 'owner', 'o', NULL, '12001 months');
SELECT coupon_lock.coupon_freeze(:c, 'owner', 'o', NULL, '999 years 12 months 1 second');
SELECT state, version FROM coupon_lock.coupon WHERE coupon_id = :c;
-- a batch's freeze_ttl is applied at later dates: the same rule
SELECT coupon_lock.create_batch('durations', 5, 5, NULL, '1 month -29 days');
SELECT coupon_lock.create_batch('durations', 5, 5, NULL, '-100 years 36200 days');
SELECT coupon_lock.create_batch('durations', 5, 5, NULL, '-10000 years 3660000 days');
SELECT count(*) AS batches FROM coupon_lock.batch WHERE name = 'durations';
-- leases, Redis ttls, waits and timeouts: the same rule
SELECT coupon_lock.lease_acquire('durations', 'h', '1 month -29 days');
SELECT coupon_lock.lease_acquire('durations', 'h', '-10000 years 3660000 days');
SELECT coupon_lock.lease_acquire('durations', 'h', '2 minutes') > 0 AS leased;
SELECT coupon_lock.lease_renew('durations', 'h', '-100 years 36200 days');
SELECT coupon_lock.lease_renew('durations', 'h', '1000 years 1 second');
SELECT coupon_lock.lease_release('durations', 'h') AS released;
SELECT coupon_lock.redis_lock('durations', '1 month -29 days');
SELECT coupon_lock.redis_lock('durations', '1 second', '1 day -1 hour');
SELECT coupon_lock.redis_extend('durations', 'token', '-10000 years 3660000 days');
SELECT coupon_lock.hybrid_xact_lock('durations', '1 month -29 days');
SELECT coupon_lock.hybrid_xact_lock('durations', '1 second', '-100 years 36200 days');
SELECT coupon_lock.advisory_lock('durations', '1 month -29 days');
SELECT coupon_lock.advisory_xact_lock('durations', '-10000 years 3660000 days');
SELECT coupon_lock.advisory_xact_lock('durations', '1000 years 1 second');
-- what is accepted: positive parts, up to 1000 years; a wait of 0 or NULL
SELECT coupon_lock.coupon_freeze(:c, 'owner', 'o', NULL, '1 month 1 day') - 2 AS versions_added;
SELECT frozen_until > now() + interval '1 month' AS after_a_month FROM coupon_lock.coupon WHERE coupon_id = :c;
SELECT coupon_lock.coupon_unfreeze(:c, 'o') > 0 AS unfrozen;
SELECT coupon_lock.coupon_freeze(:c, 'owner', 'o', NULL, '999 years 12 months') > 0 AS longest_freeze;
SELECT coupon_lock.coupon_unfreeze(:c, 'o') > 0 AS unfrozen;
SELECT coupon_lock.create_batch('durations', 1, 1, NULL, '1 month 2 days') > :b AS created;
BEGIN;
SELECT coupon_lock.advisory_xact_lock('durations', '0') AS no_wait,
       coupon_lock.advisory_xact_lock('durations', NULL) AS no_limit,
       coupon_lock.hybrid_xact_lock('durations:h', '1 second', NULL) AS hybrid_no_limit,
       coupon_lock.advisory_xact_lock('durations', '1000 years') AS longest;
COMMIT;

-- Freezes are measured from the moment they are made (clock_timestamp(),
-- the leases' clock), not from the transaction's start (issue 10 item 18):
-- before, a freeze made 1.2 s into a transaction ended 1.2 s early (a
-- freeze made 20 minutes into a transaction with a 15-minute ttl had lapsed
-- before its commit), and a redeem late in a transaction still saw a lapsed
-- freeze as held.
SELECT coupon_lock.coupon_claim(:b, 'owner') AS c2 \gset
BEGIN;
SELECT pg_sleep(1.2);
SELECT coupon_lock.coupon_freeze(:c2, 'owner', 'late', NULL, '1 minute') > 0 AS frozen;
SELECT frozen_until - now() >= interval '1 minute 1 second' AS from_the_freeze
  FROM coupon_lock.coupon WHERE coupon_id = :c2;
SELECT coupon_lock.coupon_redeem(:c2, 'late') > 0 AS redeemed_while_held;
COMMIT;
SELECT coupon_lock.coupon_claim(:b, 'owner') AS c3 \gset
BEGIN;
SELECT coupon_lock.coupon_freeze(:c3, 'owner', 'slow', NULL, '0.3 seconds') > 0 AS frozen;
SELECT pg_sleep(0.5);
\set VERBOSITY sqlstate
SELECT coupon_lock.coupon_redeem(:c3, 'slow');
ROLLBACK;
SELECT state FROM coupon_lock.coupon WHERE coupon_id = :c3;
