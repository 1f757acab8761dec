#!/usr/bin/env bash
# The litemall #581 scenario and a flash sale, with real concurrent clients
# (pgbench): a one-coupon batch with a limit of one gets exactly one claim from
# 64 clients; 32 clients claiming a 200-coupon batch for 100 owners with a limit
# of 3 (demand 300) sell exactly 200 and never put an owner over the limit.
set -eu
BIN=$(${PG_CONFIG:-pg_config} --bindir)
q() { "$BIN/psql" -X -At -v ON_ERROR_STOP=1 -d cl_storm -c "$1"; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"; "$BIN/psql" -X -q -d postgres -c "DROP DATABASE IF EXISTS cl_storm" 2>/dev/null' EXIT
"$BIN/psql" -X -q -d postgres -c "DROP DATABASE IF EXISTS cl_storm" -c "CREATE DATABASE cl_storm"
q "CREATE EXTENSION coupon_lock" >/dev/null
fail=0

one=$(q "SELECT coupon_lock.create_batch('just one', 1, 1)")
# owners are random, so the winner may draw again: its CL005 (limit 1) is an
# answer, not an error, as in the flash sale below
cat >"$tmp/one.sql" <<SQL
DO \$\$ BEGIN
  PERFORM coupon_lock.coupon_claim($one, 'user-' || (random() * 1000)::int);
EXCEPTION WHEN SQLSTATE 'CL005' THEN NULL;
END \$\$;
SQL
"$BIN/pgbench" -n -d cl_storm -c 64 -j 2 -t 3 -f "$tmp/one.sql" >"$tmp/one.log" 2>&1 ||
    { cat "$tmp/one.log"; fail=1; }
issued=$(q "SELECT count(*) FROM coupon_lock.coupon WHERE batch_id = $one AND state <> 'available'")
echo "one-coupon batch, 64 clients x 3 claims: $issued issued"
[ "$issued" = 1 ] || fail=1

sale=$(q "SELECT coupon_lock.create_batch('flash sale', 200, 3)")
# a claim beyond an owner's limit fails with CL005 by design; any other error fails the run
cat >"$tmp/sale.sql" <<SQL
DO \$\$ BEGIN
  PERFORM coupon_lock.coupon_claim($sale, 'owner-' || (random() * 99)::int);
EXCEPTION WHEN SQLSTATE 'CL005' THEN NULL;
END \$\$;
SQL
"$BIN/pgbench" -n -d cl_storm -c 32 -j 2 -t 40 -f "$tmp/sale.sql" >"$tmp/sale.log" 2>&1 ||
    { cat "$tmp/sale.log"; fail=1; }
issued=$(q "SELECT count(*) FROM coupon_lock.coupon WHERE batch_id = $sale AND state <> 'available'")
over=$(q "SELECT count(*) FROM (SELECT owner_id FROM coupon_lock.coupon WHERE batch_id = $sale AND state <> 'revoked' AND owner_id IS NOT NULL GROUP BY owner_id HAVING count(*) > 3) o")
quota=$(q "SELECT count(*) FROM coupon_lock.owner_quota q WHERE batch_id = $sale AND held <> (SELECT count(*) FROM coupon_lock.coupon c WHERE c.batch_id = q.batch_id AND c.owner_id = q.owner_id AND c.state <> 'revoked')")
ledger=$(q "SELECT count(*) FROM coupon_lock.coupon_event e JOIN coupon_lock.coupon c USING (coupon_id) WHERE c.batch_id = $sale AND e.op = 'claim'")
echo "flash sale, 32 clients x 40 claims, 100 owners, limit 3: $issued issued, $over owners over the limit, $quota quota rows off, $ledger claim events"
[ "$issued" = 200 ] || fail=1   # sold out exactly, never over
[ "$over" = 0 ] && [ "$quota" = 0 ] && [ "$ledger" = "$issued" ] || fail=1
exit $fail
