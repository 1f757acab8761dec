-- A flash-sale claim through the strong PL/pgSQL claim: FOR UPDATE SKIP LOCKED LIMIT 1, no ORDER BY (bench/baselines.sql).
\set r random(1, 1000000000000000)
SELECT bench_plpgsql.coupon_claim_skip(:batch, 'c' || :client_id || '-' || :r);
