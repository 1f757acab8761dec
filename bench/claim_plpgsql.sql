-- A flash-sale claim through the weak PL/pgSQL claim: ORDER BY coupon_id LIMIT 1 FOR UPDATE SKIP LOCKED (bench/baselines.sql).
\set r random(1, 1000000000000000)
SELECT bench_plpgsql.coupon_claim(:batch, 'c' || :client_id || '-' || :r);
