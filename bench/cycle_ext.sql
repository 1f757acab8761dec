-- freeze + unfreeze of a random issued coupon through coupon_lock (two transactions).
-- Each client works on its own residue class of ids (k * nclients + client_id),
-- so two clients never race for one coupon and no call fails.
\set k random(0, :n / :nclients - 1)
\set id :first + :client_id + :k * :nclients
SELECT coupon_lock.coupon_freeze(:id, 'u' || :id, 'o' || :id);
SELECT coupon_lock.coupon_unfreeze(:id, 'o' || :id);
