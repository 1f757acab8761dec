-- A flash-sale claim through the PL/pgSQL FOR UPDATE SKIP LOCKED claim (bench/baselines.sql).
\set r random(1, 1000000000000000)
SELECT bench_plpgsql.coupon_claim(:batch, 'c' || :client_id || '-' || :r);
