-- The floor: freeze + unfreeze as one bare UPDATE each (no version check, no ledger).
\set k random(0, :n / :nclients - 1)
\set id :first + :client_id + :k * :nclients
UPDATE bench_sql.coupon
   SET state = 'frozen', order_id = 'o' || :id, frozen_until = now() + interval '15 minutes',
       version = version + 1, updated_at = now()
 WHERE coupon_id = :id AND state = 'issued' AND owner_id = 'u' || :id
RETURNING version;
UPDATE bench_sql.coupon
   SET state = 'issued', order_id = NULL, frozen_until = NULL,
       version = version + 1, updated_at = now()
 WHERE coupon_id = :id AND state = 'frozen' AND order_id = 'o' || :id
RETURNING version;
