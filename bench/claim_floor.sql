-- The claim floor: one UPDATE of the coupon a sequence addresses, no ledger, no per-user limit.
-- Past the batch's end it updates nothing (sold out).
\set r random(1, 1000000000000000)
UPDATE bench_sql.coupon
   SET state = 'issued', owner_id = 'c' || :client_id || '-' || :r, version = version + 1, updated_at = now()
 WHERE coupon_id = (SELECT :first + nextval('bench_sql.claim_seq') - 1) AND state = 'available'
RETURNING coupon_id;
