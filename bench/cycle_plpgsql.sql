-- freeze + unfreeze through the PL/pgSQL contract (bench/baselines.sql), same ids as cycle_ext.sql.
\set k random(0, :n / :nclients - 1)
\set id :first + :client_id + :k * :nclients
SELECT bench_plpgsql.coupon_freeze(:id, 'u' || :id, 'o' || :id);
SELECT bench_plpgsql.coupon_unfreeze(:id, 'o' || :id);
