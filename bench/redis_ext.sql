-- Take and release a Redis lock through SQL (coupon_lock.redis_lock / redis_unlock).
\set r random(1, 100000)
SELECT coupon_lock.redis_lock('bench:' || :client_id || ':' || :r, interval '30 seconds') AS token \gset
SELECT coupon_lock.redis_unlock('bench:' || :client_id || ':' || :r, :token);
