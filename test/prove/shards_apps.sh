# Sourced by test/prove/shards.sh: the release issue's example applications
# (examples/python, examples/node) run unchanged against the router — only
# the connection string differs from a single node.  Each checkout claims
# with a request id, freezes, and redeems or unfreezes; the router's views
# must then show exactly those transitions.
echo "== the example applications, unchanged, through the router"
apps_py=${CL_CLIENTS_PYTHON:-/usr/bin/python3}   # Debian's python3, where python3-psycopg lives
apps_b=$(sh_router -c "SELECT coupon_lock.create_batch('apps', 16, 2)")
apps_conn="host=127.0.0.1 port=$SH_PORT_A dbname=cl_router user=postgres"
apps_out=$(cd "$CL_ROOT/examples/python" && "$apps_py" checkout.py "$apps_conn" "$apps_b" app-py 2>&1)
pv_check "examples/python/checkout.py through the router: claimed, frozen, redeemed ($apps_out)" \
    grep -q "'outcome': 'redeemed'" <<<"$apps_out"
apps_out=$(cd "$CL_ROOT/examples/python" && "$apps_py" checkout.py "$apps_conn" "$apps_b" app-py --cancel 2>&1)
pv_check "examples/python/checkout.py --cancel through the router: unfrozen ($apps_out)" \
    grep -q "'outcome': 'unfrozen'" <<<"$apps_out"

apps_node=$PV_TMP/shards-node
apps_redeems=1
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
    cl_install_packages nodejs npm
fi
rm -rf "$apps_node"; mkdir -p "$apps_node"
cp "$CL_ROOT"/examples/node/{package.json,package-lock.json,coupon-lock-client.js,checkout.js} "$apps_node/"
if (cd "$apps_node" && npm ci --no-audit --no-fund >"$PV_TMP/shards_npm.log" 2>&1); then
    apps_out=$(cd "$apps_node" && node checkout.js "postgresql://postgres@127.0.0.1:$SH_PORT_A/cl_router" "$apps_b" app-node 2>&1)
    pv_check "examples/node/checkout.js through the router: claimed, frozen, redeemed ($(tr '\n' ' ' <<<"$apps_out"))" \
        grep -q "outcome: 'redeemed'" <<<"$apps_out" && apps_redeems=2
else
    pv_fail "npm ci (examples/node/package-lock.json)"; tail -n 20 "$PV_TMP/shards_npm.log"
fi
apps_seen=$(sh_router -c "SELECT string_agg(e.op || '=' || e.n, ' ' ORDER BY e.op) FROM
    (SELECT op, count(*) AS n FROM coupon_lock.coupon_event ev JOIN coupon_lock.coupon c USING (coupon_id)
      WHERE c.batch_id = $apps_b GROUP BY op) e")
apps_want="claim=$((apps_redeems + 1)) freeze=$((apps_redeems + 1)) redeem=$apps_redeems unfreeze=1"
pv_check "the router's ledger view holds exactly the examples' transitions ($apps_seen)" \
    test "$apps_seen" = "$apps_want"
