-- DROP and CREATE EXTENSION in one session: claim sequences go with the
-- extension, and kept plans are re-planned against the new tables.
-- (a batch of 3 gets a claim sequence only with the threshold lowered)
SET coupon_lock.claim_sequence_min_quantity = 1;
SELECT coupon_lock.create_batch('lifecycle', 3) AS b \gset
SELECT coupon_lock.coupon_claim(:b, 'ann') IS NOT NULL AS claimed;
SELECT count(*) > 0 AS has_claim_sequences FROM pg_class
 WHERE relnamespace = 'coupon_lock'::regnamespace AND relname LIKE 'claim\_seq\_%';
DROP EXTENSION coupon_lock;
SELECT count(*) AS relations_left FROM pg_class WHERE relnamespace = 'coupon_lock'::regnamespace;
CREATE EXTENSION coupon_lock;
SELECT coupon_lock.create_batch('again', 2) AS b \gset
SELECT coupon_lock.coupon_claim(:b, 'ann') - first_coupon_id AS slot FROM coupon_lock.batch WHERE batch_id = :b;
SELECT coupon_lock.coupon_freeze(first_coupon_id, 'ann', 'o1') FROM coupon_lock.batch WHERE batch_id = :b;
SELECT count(*) AS events FROM coupon_lock.coupon_event;
-- the extension cannot be moved to another schema
CREATE SCHEMA elsewhere;
ALTER EXTENSION coupon_lock SET SCHEMA elsewhere;
DROP SCHEMA elsewhere;
