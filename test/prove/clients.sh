#!/usr/bin/env bash
# The client examples under load (examples/python, examples/node).
# CL_CLIENTS_CUSTOMERS customers per language (default 100) each run
# CL_CLIENTS_CHECKOUTS checkouts (default 3: claim with a request id -> freeze
# -> redeem or unfreeze) against one batch of 300 coupons, 2 per customer, so
# that customers hit their limit and the batch sells out.  Python runs them on
# 25 threads with a connection each, Node as async tasks over a pg.Pool of 20.
# Meanwhile another session terminates client backends of each language in
# turn (pg_terminate_backend).  Then, in SQL: every acknowledged claim, redeem
# and unfreeze is in the ledger, nothing issued twice, no owner over its limit,
# no double redeem, one claim per recorded request.  Each language also runs
# an error catalogue first: every SQLSTATE its helper types, provoked once.
# Runs on test/test.sh's cluster; Node's dependencies come from the npm
# registry (npm ci into a copy under tmp/test).
set -u
. "$(dirname "$0")/common.sh"
PV_DB=prove_clients
CUSTOMERS=${CL_CLIENTS_CUSTOMERS:-100}
CHECKOUTS=${CL_CLIENTS_CHECKOUTS:-3}
PY=${CL_CLIENTS_PYTHON:-/usr/bin/python3}   # Debian's python3, where python3-psycopg lives
NODE_DIR=$PV_TMP/clients-node
PY_ACKS=$PV_TMP/clients_acks_python.txt
NODE_ACKS=$PV_TMP/clients_acks_node.txt

# Node and npm: Debian's nodejs and npm on a clean machine; a NodeSource
# nodejs (which bundles npm and conflicts with Debian's npm) is used as it is.
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
    cl_install_packages nodejs npm
fi

rm -rf "$NODE_DIR"; mkdir -p "$NODE_DIR"
cp "$CL_ROOT"/examples/node/{package.json,package-lock.json,coupon-lock-client.js} "$PV_DIR/clients_load.js" "$NODE_DIR/"
if ! (cd "$NODE_DIR" && npm ci --no-audit --no-fund >"$PV_TMP/clients_npm.log" 2>&1); then
    pv_fail "npm ci (examples/node/package-lock.json)"; tail -n 20 "$PV_TMP/clients_npm.log"
    pv_done clients; exit
fi
pv_check "python3-psycopg imports" "$PY" -c 'import psycopg' || { pv_done clients; exit; }

pv_fresh_db || { pv_fail "fresh database"; pv_done clients; exit; }
BATCH=$(pv_psql -c "SELECT coupon_lock.create_batch('clients', 300, 2)")
# for the error catalogue: a limit of 1, and a batch that has ended
ERR_BATCH=$(pv_psql -c "SELECT coupon_lock.create_batch('errors', 10, 1)")
ENDED_BATCH=$(pv_psql -c "SELECT coupon_lock.create_batch('ended', 1, 1, clock_timestamp() + interval '200 milliseconds')")
pv_psql -c "SELECT pg_sleep(0.3)" >/dev/null

"$PY" "$PV_DIR/clients_load.py" "host=$PGHOST port=$PGPORT user=$PGUSER dbname=$PV_DB" \
    "$BATCH" "$CUSTOMERS" 25 "$CHECKOUTS" "$PY_ACKS" "$ERR_BATCH" "$ENDED_BATCH" >"$PV_TMP/clients_python.out" 2>&1 &
py_pid=$!
(cd "$NODE_DIR" && node clients_load.js "postgresql://$PGUSER@$PGHOST:$PGPORT/$PV_DB" \
    "$BATCH" "$CUSTOMERS" 20 "$CHECKOUTS" "$NODE_ACKS" "$ERR_BATCH" "$ENDED_BATCH") >"$PV_TMP/clients_node.out" 2>&1 &
node_pid=$!

# Terminate one backend of each language in turn while it runs.
declare -A killed=([python]=0 [node]=0)
sleep 0.5
while kill -0 "$py_pid" 2>/dev/null || kill -0 "$node_pid" 2>/dev/null; do
    for lang in python node; do
        pid=$py_pid; [ "$lang" = node ] && pid=$node_pid
        kill -0 "$pid" 2>/dev/null || continue
        n=$(pv_psql -c "SELECT count(*) FILTER (WHERE pg_terminate_backend(pid))
                          FROM (SELECT pid FROM pg_stat_activity
                                 WHERE application_name = 'clients-$lang' AND datname = '$PV_DB'
                                 ORDER BY random() LIMIT 1) x" 2>/dev/null)
        killed[$lang]=$((killed[$lang] + ${n:-0}))
    done
    sleep 0.3
done
wait "$py_pid"; py_rc=$?
wait "$node_pid"; node_rc=$?
echo "terminated backends: python ${killed[python]}, node ${killed[node]}"

# "LANG: key value key value ..." -> the value of key
field() { sed -n "s/^$1: .*\b$2 \([^ ]*\).*/\1/p" "$PV_TMP/clients_$1.out" | tail -n 1; }
for lang in python node; do
    rc=$py_rc; [ "$lang" = node ] && rc=$node_rc
    cat "$PV_TMP/clients_$lang.out"
    checkouts=$(field $lang checkouts); lost=$(field $lang lost)
    pv_check "$lang: the load ran to its end (exit $rc)" test "$rc" = 0 -a -n "$checkouts"
    pv_check "$lang: ${checkouts:-no} checkouts ($(field $lang redeemed) redeemed, $(field $lang unfrozen) unfrozen, $(field $lang sold_out) sold out), $(field $lang limit) refused at the limit" \
        test "${checkouts:-0}" -gt 0
    pv_check "$lang: no unexpected error" test "$(field $lang unexpected)" = 0
    pv_check "$lang: a stale expected_version makes the runner rerun the unit, which re-reads" \
        test "$(field $lang conflict_rerun)" = ok
    pv_check "$lang: each SQLSTATE (CL001-CL006, 40001 with version and state, 55000, 22023, 22004, 25006, 55P03, 08001, 40P01) gives its typed error" \
        test "$(field $lang errors)" = ok || echo "got: $(field $lang errors)"
    pv_check "$lang: ${killed[$lang]} backends terminated mid-run, ${lost:-no} lost connections seen and retried" \
        test "${killed[$lang]}" -gt 0 -a "${lost:-0}" -gt 0
done

# The invariants, against what the clients were told.
load_acks="CREATE TEMP TABLE ack_claim (owner text, request text, coupon text);
           CREATE TEMP TABLE ack_tr (op text, coupon bigint, order_id text, version bigint);
           CREATE TEMP TABLE ack_raw (op text, a text, b text, c text);"
copy_acks() {
    local f
    for f in "$PY_ACKS" "$NODE_ACKS"; do
        echo "\\copy ack_raw FROM '$f' WITH (DELIMITER ' ')"
    done
    echo "INSERT INTO ack_claim SELECT a, b, c FROM ack_raw WHERE op = 'claim';"
    echo "INSERT INTO ack_tr SELECT op, a::bigint, b, c::bigint FROM ack_raw WHERE op <> 'claim';"
}
# A redeem or unfreeze acknowledged to a client and missing from the ledger.
missing_sql="SELECT count(*) FROM ack_tr a WHERE NOT EXISTS (
               SELECT FROM coupon_lock.coupon_event e
                WHERE e.coupon_id = a.coupon AND e.op = a.op AND e.order_id = a.order_id AND e.version = a.version)"
pv_sql_checks /dev/stdin <<SQL
$load_acks
$(copy_acks)
\\set b $BATCH
SELECT 'acknowledgements read: ' || (SELECT count(*) FROM ack_claim) || ' claims, '
       || (SELECT count(*) FROM ack_tr) || ' redeems and unfreezes', (SELECT count(*) FROM ack_claim) > 0;
SELECT 'every acknowledged redeem and unfreeze is in the ledger', ($missing_sql) = 0, ($missing_sql) || ' missing';
SELECT 'every acknowledged redeem left its coupon redeemed by that order',
       NOT EXISTS (SELECT FROM ack_tr a JOIN coupon_lock.coupon c ON c.coupon_id = a.coupon
                    WHERE a.op = 'redeem' AND (c.state <> 'redeemed' OR c.order_id <> a.order_id));
SELECT 'redeemed coupons = acknowledged redeems',
       (SELECT count(*) FROM coupon_lock.coupon WHERE batch_id = :b AND state = 'redeemed')
       = (SELECT count(*) FROM ack_tr WHERE op = 'redeem'),
       (SELECT count(*) FROM coupon_lock.coupon WHERE batch_id = :b AND state = 'redeemed') || ' vs '
       || (SELECT count(*) FROM ack_tr WHERE op = 'redeem');
SELECT 'every acknowledged claim is its customer''s coupon, as recorded for its request',
       NOT EXISTS (SELECT FROM ack_claim a
                     LEFT JOIN coupon_lock.claim_request r
                            ON r.batch_id = :b AND r.owner_id = a.owner AND r.request_id = a.request
                     LEFT JOIN coupon_lock.coupon c ON c.coupon_id = r.coupon_id
                    WHERE r.request_id IS NULL
                       OR a.coupon = 'none' AND r.coupon_id IS NOT NULL
                       OR a.coupon <> 'none' AND (r.coupon_id IS DISTINCT FROM a.coupon::bigint
                                                  OR c.owner_id IS DISTINCT FROM a.owner));
SELECT 'no coupon acknowledged to two claims',
       (SELECT count(DISTINCT coupon) FROM ack_claim WHERE coupon <> 'none')
       = (SELECT count(*) FROM ack_claim WHERE coupon <> 'none');
SELECT 'nothing issued twice (one claim or issue event per coupon at most)',
       NOT EXISTS (SELECT FROM coupon_lock.coupon_event WHERE op IN ('claim', 'issue')
                    GROUP BY coupon_id HAVING count(*) > 1);
SELECT 'one claim event per request that got a coupon, and none more',
       (SELECT count(*) FROM coupon_lock.coupon_event e JOIN coupon_lock.coupon c USING (coupon_id)
         WHERE c.batch_id = :b AND e.op = 'claim')
       = (SELECT count(*) FROM coupon_lock.claim_request WHERE batch_id = :b AND coupon_id IS NOT NULL);
SELECT 'no owner over its limit, and the quota counters agree',
       NOT EXISTS (SELECT FROM (SELECT owner_id, count(*) AS n FROM coupon_lock.coupon
                                 WHERE batch_id = :b AND owner_id IS NOT NULL AND state <> 'revoked'
                                 GROUP BY owner_id) c
                     FULL JOIN (SELECT owner_id, held FROM coupon_lock.owner_quota WHERE batch_id = :b AND held > 0) q
                            USING (owner_id)
                    WHERE c.n > 2 OR c.n IS DISTINCT FROM q.held);
SELECT 'no double redeem',
       NOT EXISTS (SELECT FROM coupon_lock.coupon_event WHERE op = 'redeem' GROUP BY coupon_id HAVING count(*) > 1);
SELECT 'no over-issue, and the batch sold out',
       (SELECT count(*) FROM coupon_lock.coupon WHERE batch_id = :b AND state <> 'available') = 300,
       (SELECT count(*) FROM coupon_lock.coupon WHERE batch_id = :b AND state <> 'available') || ' of 300 taken';
SQL

# The acknowledgement check can fail: a redeem the ledger does not have.
planted=$(pv_psql -c "CREATE TEMP TABLE ack_tr (op text, coupon bigint, order_id text, version bigint)" \
    -c "INSERT INTO ack_tr VALUES ('redeem', 1, 'never-seen', 3)" -c "$missing_sql")
pv_check "the acknowledgement check catches a redeem missing from the ledger" test "$planted" = 1
pv_done clients
