#!/usr/bin/env bash
# pg_dump and restore keep coupons, the ledger, the id allocator and the claim
# sequences: after a restore, claims continue where they stopped and a new batch
# gets fresh ids.  Uses PGHOST/PGPORT/PGUSER from test/test.sh.
set -eu
BIN=$(${PG_CONFIG:-pg_config} --bindir)
q() { "$BIN/psql" -X -At -v ON_ERROR_STOP=1 -d "$1" -c "$2"; }
tmp=$(mktemp -d); trap 'rm -rf "$tmp"; q postgres "DROP DATABASE IF EXISTS cl_dump_src" >/dev/null; q postgres "DROP DATABASE IF EXISTS cl_dump_dst" >/dev/null' EXIT

q postgres "DROP DATABASE IF EXISTS cl_dump_src" >/dev/null
q postgres "DROP DATABASE IF EXISTS cl_dump_dst" >/dev/null
q postgres "CREATE DATABASE cl_dump_src" >/dev/null
q postgres "CREATE DATABASE cl_dump_dst" >/dev/null
q cl_dump_src "CREATE EXTENSION coupon_lock" >/dev/null
b=$(q cl_dump_src "SELECT coupon_lock.create_batch('dumped', 5, 1)")
q cl_dump_src "SELECT coupon_lock.coupon_claim($b, 'u1'), coupon_lock.coupon_claim($b, 'u2')" >/dev/null
c1=$(q cl_dump_src "SELECT first_coupon_id FROM coupon_lock.batch WHERE batch_id = $b")
q cl_dump_src "SELECT coupon_lock.coupon_freeze($c1, 'u1', 'o1')" >/dev/null

"$BIN/pg_dump" -Fc -d cl_dump_src -f "$tmp/dump"
"$BIN/pg_restore" -d cl_dump_dst --exit-on-error "$tmp/dump"

src=$(q cl_dump_src "SELECT string_agg(format('%s %s %s %s %s', coupon_id, state, owner_id, order_id, version), ';' ORDER BY coupon_id) FROM coupon_lock.coupon")
dst=$(q cl_dump_dst "SELECT string_agg(format('%s %s %s %s %s', coupon_id, state, owner_id, order_id, version), ';' ORDER BY coupon_id) FROM coupon_lock.coupon")
[ "$src" = "$dst" ] || { echo "coupons differ after restore: $src / $dst"; exit 1; }
events=$(q cl_dump_dst "SELECT count(*) FROM coupon_lock.coupon_event")
[ "$events" = 3 ] || { echo "ledger has $events rows after restore, expected 3"; exit 1; }
# the claim sequence continues: the next claim takes slot 3
next=$(q cl_dump_dst "SELECT coupon_lock.coupon_claim($b, 'u3') - $c1 + 1")
[ "$next" = 3 ] || { echo "claim after restore took slot $next, expected 3"; exit 1; }
# a new batch does not reuse ids, and the restored freeze can be redeemed
b2=$(q cl_dump_dst "SELECT coupon_lock.create_batch('after restore', 2)")
first2=$(q cl_dump_dst "SELECT first_coupon_id FROM coupon_lock.batch WHERE batch_id = $b2")
[ "$first2" -gt "$((c1 + 4))" ] || { echo "new batch starts at $first2, inside the restored range"; exit 1; }
v=$(q cl_dump_dst "SELECT coupon_lock.coupon_redeem($c1, 'o1')")
[ "$v" = 4 ] || { echo "redeem after restore returned $v, expected 4"; exit 1; }
echo "dump and restore: ok"
