#!/usr/bin/env bash
# test/demo.sh shards: a router and four shard databases over two throwaway
# PostgreSQL clusters (CL_DEMO_SHARDS_PGPORT_A/_B, default 55078/55079, left
# running), set up exactly as the README's "Sharding" section shows, and the
# API at work through the router.
set -eu
. "$(dirname "$0")/../lib.sh"
cd "$CL_ROOT"
CL_SHARDS_PGPORT_A=${CL_DEMO_SHARDS_PGPORT_A:-55078}
CL_SHARDS_PGPORT_B=${CL_DEMO_SHARDS_PGPORT_B:-55079}
SH_NAME=demo_shards
. "$CL_ROOT/test/shards/lib.sh"

cl_install_packages
cl_build_install yes
sh_start
sh_fresh

cat <<'TXT'

================ coupon_lock sharded demo ================
A router database (cl_router) and four shards: cl_shard1 and cl_shard2 on one
cluster, cl_shard3 and cl_shard4 on another, eight partitions.  The application
talks to the router only, with the single-node API.
TXT
"$CL_PGBIN/psql" -X -q -h 127.0.0.1 -p "$SH_PORT_A" -U postgres -d cl_router -v ON_ERROR_STOP=0 <<'SQL'
\set VERBOSITY default
\set SHOW_CONTEXT never
\pset footer off
SELECT partition, lead_partition, answers, substring(connection from 'port=[0-9]+ dbname=[a-z0-9_]+') AS shard
  FROM coupon_lock.router_shards;
\echo '1. a batch of 8 coupons, at most 1 per customer: spread over the four shards'
SELECT coupon_lock.create_batch('demo: 10% off', 8, 1) AS batch \gset
SELECT coupon_lock.id_partition(coupon_id) AS partition, count(*) AS coupons
  FROM coupon_lock.coupon WHERE batch_id = :batch GROUP BY 1 ORDER BY 1;
\echo '2. twelve customers claim: each claim runs on the customer''s home shard, stock moves'
\echo '   there when the home runs out, and only the last four find the whole batch sold out (NULL)'
SELECT g AS customer, coupon_lock.router_lead_of(coupon_lock.owner_partition('customer-' || g)) AS home_partition,
       coupon_lock.coupon_claim(:batch, 'customer-' || g) AS coupon
  FROM generate_series(1, 12) g;
\echo '   a second claim by customer-1 breaks the per-user limit, counted on its home shard:'
SELECT coupon_lock.coupon_claim(:batch, 'customer-1');
\echo '3. the id routes itself: freeze and redeem go straight to the coupon''s shard'
SELECT coupon_id AS c FROM coupon_lock.coupon WHERE batch_id = :batch AND owner_id = 'customer-2' \gset
SELECT coupon_lock.coupon_freeze(:c, 'customer-2', 'order-1') AS version;
SELECT coupon_lock.coupon_redeem(:c, 'order-1') AS version;
SELECT coupon_lock.coupon_redeem(:c, 'order-1') AS "retry: same version";
\echo '4. a shard''s error reaches the application as a single node words it:'
SELECT coupon_lock.coupon_unfreeze(:c, 'order-2');
\echo '5. router_reconcile(), run every few seconds, finds no stock in flight and no stale hold:'
SELECT * FROM coupon_lock.router_reconcile();
SQL
cat <<TXT
==========================================================
Both clusters are still running (tmp/demo_shards_a, tmp/demo_shards_b).
  router:  psql -h 127.0.0.1 -p $SH_PORT_A -U postgres -d cl_router
  stop:    test/stop.sh demo_shards_a && test/stop.sh demo_shards_b
TXT
