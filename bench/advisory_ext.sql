-- Take and release a session advisory lock on a text key through coupon_lock.
-- Keys are per client, so clients never wait on one another.
\set r random(1, 100000)
SELECT coupon_lock.advisory_lock('k' || :client_id || ':' || :r);
SELECT coupon_lock.advisory_unlock('k' || :client_id || ':' || :r);
