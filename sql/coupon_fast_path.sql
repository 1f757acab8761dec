-- Freeze, unfreeze and redeem write at once when every rule already holds
-- (the fast path in coupon.c) and fall back to the state machine otherwise.
-- Every rule is exercised here on both sides: the results, errors and ledger
-- rows must be those of the state machine alone.
-- fixed ids, whatever ran before in this database
SELECT setval('coupon_lock.batch_id_seq', 900) \gset
INSERT INTO coupon_lock.id_allocator VALUES (true, 9000001)
    ON CONFLICT (singleton) DO UPDATE SET next_coupon_id = 9000001
    WHERE coupon_lock.id_allocator.next_coupon_id <= 9000001;
SELECT coupon_lock.create_batch('fast', 6, 10) AS b \gset
SELECT first_coupon_id AS c1 FROM coupon_lock.batch WHERE batch_id = :b \gset
SELECT :c1 + 1 AS c2, :c1 + 2 AS c3, :c1 + 3 AS c4, :c1 + 4 AS c5, :c1 + 5 AS c6 \gset
SELECT coupon_lock.coupon_issue(:c1, 'ann'), coupon_lock.coupon_issue(:c2, 'ann'),
       coupon_lock.coupon_issue(:c3, 'ann'), coupon_lock.coupon_issue(:c4, 'ann'),
       coupon_lock.coupon_issue(:c5, 'ann');
-- freeze: success, retry, wrong owner, wrong state, wrong version, another order
SELECT coupon_lock.coupon_freeze(:c1, 'ann', 'o1');
SELECT coupon_lock.coupon_freeze(:c1, 'ann', 'o1');
SELECT coupon_lock.coupon_freeze(:c1, 'bob', 'o1');
SELECT coupon_lock.coupon_freeze(:c1, 'ann', 'o2');
SELECT coupon_lock.coupon_freeze(:c2, 'bob', 'o3');
SELECT coupon_lock.coupon_freeze(:c2, 'ann', 'o3', 1);
SELECT coupon_lock.coupon_freeze(:c2, 'ann', 'o3', 2, interval '1 hour');
SELECT coupon_lock.coupon_freeze(:c6, 'ann', 'o4');
SELECT coupon_id - :c1 AS n, state, order_id, version,
       date_trunc('minute', frozen_until - updated_at) AS ttl FROM coupon_lock.coupon
 WHERE batch_id = :b ORDER BY coupon_id;
-- unfreeze: wrong order, wrong version, success, retry, wrong state
SELECT coupon_lock.coupon_unfreeze(:c1, 'o9');
SELECT coupon_lock.coupon_unfreeze(:c1, 'o1', 7);
SELECT coupon_lock.coupon_unfreeze(:c1, 'o1', 3);
SELECT coupon_lock.coupon_unfreeze(:c1, 'o1');
SELECT coupon_lock.coupon_unfreeze(:c1, 'o2');
SELECT coupon_lock.coupon_unfreeze(:c3, 'o1');
-- redeem: wrong order, wrong version, lapsed freeze, success, retry
SELECT coupon_lock.coupon_redeem(:c2, 'o9');
SELECT coupon_lock.coupon_redeem(:c2, 'o3', 2);
UPDATE coupon_lock.coupon SET frozen_until = now() - interval '1 second' WHERE coupon_id = :c2;
SELECT coupon_lock.coupon_redeem(:c2, 'o3');
UPDATE coupon_lock.coupon SET frozen_until = now() + interval '1 hour' WHERE coupon_id = :c2;
SELECT coupon_lock.coupon_redeem(:c2, 'o3', 3);
SELECT coupon_lock.coupon_redeem(:c2, 'o3');
SELECT coupon_lock.coupon_unfreeze(:c2, 'o3');
-- the batch expires: freeze and redeem refuse, unfreeze sends the coupon to expired
SELECT coupon_lock.coupon_freeze(:c4, 'ann', 'o5');
SELECT coupon_lock.coupon_freeze(:c5, 'ann', 'o6');
UPDATE coupon_lock.batch SET valid_until = now() - interval '1 second' WHERE batch_id = :b;
SELECT coupon_lock.coupon_freeze(:c3, 'ann', 'o7');
SELECT coupon_lock.coupon_redeem(:c4, 'o5');
SELECT coupon_lock.coupon_unfreeze(:c4, 'o5');
SELECT coupon_lock.coupon_unfreeze(:c4, 'o5');
SELECT coupon_id - :c1 AS n, state, owner_id, order_id, version, frozen_until IS NULL AS unfrozen
  FROM coupon_lock.coupon WHERE batch_id = :b ORDER BY coupon_id;
SELECT coupon_id - :c1 AS n, op, from_state, to_state, version, owner_id, order_id
  FROM coupon_lock.coupon_event e WHERE coupon_id BETWEEN :c1 AND :c6 ORDER BY event_id;
