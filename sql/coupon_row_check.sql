-- The row invariants of coupon_lock.coupon (its CHECK constraint
-- coupon_row_valid) refuse every inconsistent row; written here directly, as
-- only a bug in the extension or a superuser could.
SELECT coupon_lock.create_batch('rows', 1, 1) AS b \gset
SELECT first_coupon_id AS c FROM coupon_lock.batch WHERE batch_id = :b \gset
\set VERBOSITY terse
-- available: no owner, no order, no freeze
UPDATE coupon_lock.coupon SET owner_id = 'ann' WHERE coupon_id = :c;
UPDATE coupon_lock.coupon SET order_id = 'o1' WHERE coupon_id = :c;
UPDATE coupon_lock.coupon SET frozen_until = now() WHERE coupon_id = :c;
-- issued: an owner, no order
UPDATE coupon_lock.coupon SET state = 'issued' WHERE coupon_id = :c;
UPDATE coupon_lock.coupon SET state = 'issued', owner_id = 'ann', order_id = 'o1' WHERE coupon_id = :c;
UPDATE coupon_lock.coupon SET state = 'issued', owner_id = 'ann' WHERE coupon_id = :c;
-- frozen: an order and frozen_until
UPDATE coupon_lock.coupon SET state = 'frozen' WHERE coupon_id = :c;
UPDATE coupon_lock.coupon SET state = 'frozen', order_id = 'o1' WHERE coupon_id = :c;
UPDATE coupon_lock.coupon SET state = 'frozen', frozen_until = now() WHERE coupon_id = :c;
UPDATE coupon_lock.coupon SET state = 'frozen', order_id = 'o1', frozen_until = now() WHERE coupon_id = :c;
-- redeemed: an order, no frozen_until
UPDATE coupon_lock.coupon SET state = 'redeemed' WHERE coupon_id = :c;
UPDATE coupon_lock.coupon SET state = 'redeemed', frozen_until = NULL, order_id = NULL WHERE coupon_id = :c;
UPDATE coupon_lock.coupon SET state = 'redeemed', frozen_until = NULL WHERE coupon_id = :c;
UPDATE coupon_lock.coupon SET owner_id = NULL WHERE coupon_id = :c;
-- revoked and expired: the owner may stay or not, never an order
UPDATE coupon_lock.coupon SET state = 'revoked' WHERE coupon_id = :c;
UPDATE coupon_lock.coupon SET state = 'revoked', order_id = NULL WHERE coupon_id = :c;
UPDATE coupon_lock.coupon SET state = 'expired', owner_id = NULL WHERE coupon_id = :c;
-- versions start at 1
UPDATE coupon_lock.coupon SET version = 0 WHERE coupon_id = :c;
SELECT state, owner_id, order_id, frozen_until, version FROM coupon_lock.coupon WHERE coupon_id = :c;
-- not callable by PUBLIC, like every function of the extension
SELECT has_function_privilege('public', 'coupon_lock.coupon_row_is_valid(coupon_lock.coupon_state, text, text, timestamptz, bigint)', 'EXECUTE');
-- STABLE, not IMMUTABLE: it reads the enum catalog (pg_enum) to know a state,
-- and an IMMUTABLE function must depend on its arguments alone (issue 10 item 19)
SELECT provolatile FROM pg_proc
 WHERE oid = 'coupon_lock.coupon_row_is_valid(coupon_lock.coupon_state, text, text, timestamptz, bigint)'::regprocedure;
