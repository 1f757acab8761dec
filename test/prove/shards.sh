#!/usr/bin/env bash
# The shards layer: the coupon API through coupon_lock_router over four shard
# databases in two PostgreSQL clusters of the layer's own (test/shards/lib.sh:
# CL_SHARDS_PGPORT_A, default 55075, holds the router and two shards;
# CL_SHARDS_PGPORT_B, default 55076, the other two), eight partitions.
#
#   contract   every function, result and SQLSTATE (test/shards/contract.sql)
#   races      64 claimers on a one-coupon batch; a per-user limit of one
#              under racing claims and issues from every shard
#   storm      pgbench drains a batch whose claimers all live on two of the
#              four databases, so that most of the stock must move; the
#              invariants on every shard and in sum (test/shards/invariants.sql)
#   outage     cluster B stopped under claims, then started: errors of class
#              08 in bounded time, never a NULL while stock is out of reach,
#              the shard used again without a restart
#   hung       a shard that stops answering: packets dropped (nftables), its
#              backend stopped, its whole cluster stopped: each call ends
#              with 08006 in a bounded time, others go on, it is used again
#   kill       a router backend terminated in the middle of a stock move:
#              the stock is in flight, and the sweeper of cluster A
#              (sweep_databases = cl_router) brings it back by itself
#   sweeps     a batch whose stock moved ends: expire_coupons and
#              release_expired_freezes through the router leave no
#              available, issued or frozen coupon of it on any shard
#   apps       examples/python and examples/node, unchanged, through the
#              router (test/prove/shards_apps.sh)
set -u
. "$(dirname "$0")/common.sh"
. "$CL_ROOT/test/shards/lib.sh"
SH_SQL=$CL_ROOT/test/shards
rm -f "$PV_TMP/shards_hung.pid"
# a backend the hung check stopped must run again, or its cluster cannot stop
# and the hung check's nftables table must go
trap 'kill -CONT $(cat "$PV_TMP/shards_hung.pid" 2>/dev/null) 2>/dev/null;
      nft delete table inet "cl_shards_$$" 2>/dev/null; sh_stop' EXIT

sh_start || { pv_fail "clusters did not start"; pv_done shards; exit 1; }
sh_fresh || { pv_fail "router and shards could not be set up as shared/API.md shows"; pv_done shards; exit 1; }
pv_ok "setup as shared/API.md shows: CREATE EXTENSION, SERVER, USER MAPPING, router_init()"

# The checks of common.sh (pv_sql_checks: lines "name|t" / "name|f|detail")
# run in the router database; sh_checks reads SQL from its standard input.
export PGHOST=127.0.0.1 PGPORT=$SH_PORT_A PGUSER=postgres PV_DB=cl_router
sh_checks() { pv_sql_checks /dev/stdin "$@"; }
# sh_invariants BATCH EXPECTED_ISSUED|- : the invariants on every shard and in sum
sh_invariants() {
    pv_sql_checks "$SH_SQL/invariants.sql" -v batch="$1" -v issued="$2"
}
# the error lines psql printed, as "SQLSTATE" words
sqlstates() { grep -oE 'ERROR:  [0-9A-Z]{5}' "$1" | awk '{print $2}' | sort | uniq -c | tr '\n' ' '; }

echo "== contract"
pv_sql_checks "$SH_SQL/contract.sql"

echo "== a database with coupon_lock cannot be the router"
out=$(sh_psql A cl_shard1 -c "CREATE EXTENSION coupon_lock_router CASCADE" 2>&1)
pv_check "coupon_lock_router refuses a database that has coupon_lock (55000)" grep -q "cannot be installed in a database that has coupon_lock" <<<"$out"
sh_psql A postgres -c "CREATE EXTENSION IF NOT EXISTS coupon_lock" -c "SELECT coupon_lock.create_batch('plain', 1)" >/dev/null
pv_check "a database that is not a shard keeps single-node ids (batch 1, coupon 1)" \
    test "$(sh_psql A postgres -c "SELECT (SELECT min(batch_id) FROM coupon_lock.batch) = 1
                                       AND (SELECT min(coupon_id) FROM coupon_lock.coupon) = 1" \
            -c "DROP EXTENSION coupon_lock")" = t

echo "== races"
b=$(sh_router -c "SELECT coupon_lock.create_batch('one', 1)")
for i in $(seq 64); do
    sh_router -c "SELECT coalesce(coupon_lock.coupon_claim($b, 'racer-$i')::text, 'null')" >"$PV_TMP/shards_race_$i.out" 2>&1 &
done
wait
won=$(cat "$PV_TMP"/shards_race_*.out | grep -cE '^[0-9]+$')
nulls=$(cat "$PV_TMP"/shards_race_*.out | grep -c '^null$')
pv_check "64 racing claimers on a one-coupon batch: exactly one wins, 63 get NULL (won $won, null $nulls)" \
    test "$won" = 1 -a "$nulls" = 63 || cat "$PV_TMP"/shards_race_*.out | sort | uniq -c | head
sh_invariants "$b" 1

b=$(sh_router -c "SELECT coupon_lock.create_batch('limit one', 64, 1)")
# the same owner claims 24 times and is issued 8 coupons of every database at once
sh_router -c "SELECT string_agg(coupon_id::text, ' ') FROM (SELECT coupon_id FROM coupon_lock.coupon
               WHERE batch_id = $b ORDER BY random() LIMIT 8) s" >"$PV_TMP/shards_far.txt"
for i in $(seq 24); do
    sh_router -c "SELECT coupon_lock.coupon_claim($b, 'solo')" >"$PV_TMP/shards_limit_c$i.out" 2>&1 &
done
for c in $(cat "$PV_TMP/shards_far.txt"); do
    sh_router -c "SELECT coupon_lock.coupon_issue($c, 'solo')" >"$PV_TMP/shards_limit_i$c.out" 2>&1 &
done
wait
held=$(sh_router -c "SELECT count(*) FROM coupon_lock.coupon WHERE batch_id = $b AND owner_id = 'solo'")
refused=$(cat "$PV_TMP"/shards_limit_*.out | grep -cE 'CL005|reached the limit')
pv_check "per-user limit 1 under 24 racing claims and 8 issues over all shards: the owner holds 1 ($held), $refused refused with CL005" \
    test "$held" = 1 || cat "$PV_TMP"/shards_limit_*.out | sort | uniq -c
sh_checks <<SQL
SELECT 'after router_reconcile the owner''s counters agree: still exactly one held, a new claim is CL005',
                     (SELECT holds_released FROM coupon_lock.router_reconcile('0')) >= 0
                     AND public.sqlstate_of('SELECT coupon_lock.coupon_claim($b, ''solo'')') = 'CL005';
SQL
sh_invariants "$b" 1

echo "== claim storm"
# 3000 coupons spread over the four databases; the 200 claimers all live on
# the two databases of cluster A, so half the stock must move there
Q=3000
b=$(sh_router -c "SELECT coupon_lock.create_batch('storm', $Q, 1000)")
sh_router -c "CREATE TABLE public.storm_owner AS
              SELECT row_number() OVER () AS i, o AS name FROM
                (SELECT 'storm-' || g AS o FROM generate_series(1, 2000) g) s
               WHERE coupon_lock.router_lead_of(coupon_lock.owner_partition(o)) IN (0, 1) LIMIT 200"
cat >"$PV_TMP/shards_storm.pgb" <<'PGB'
\set i random(1, 200)
SELECT coupon_lock.coupon_claim(:b, (SELECT name FROM public.storm_owner WHERE i = :i));
PGB
start=$(date +%s.%N)
"$CL_PGBIN/pgbench" -n -h 127.0.0.1 -p "$SH_PORT_A" -U postgres -c 16 -j 2 -t 220 -D b="$b" \
    -f "$PV_TMP/shards_storm.pgb" cl_router >"$PV_TMP/shards_storm.log" 2>&1
rc=$?
secs=$(echo "$(date +%s.%N) - $start" | bc)
grep -E "number of transactions actually processed|failed|tps" "$PV_TMP/shards_storm.log" | sed 's/^/   /'
pv_check "pgbench: 3520 claims by 16 clients over a 3000-coupon batch ran without an error (${secs}s)" \
    test "$rc" = 0 || tail -n 20 "$PV_TMP/shards_storm.log"
moves=$(sh_each_shard "SELECT count(*) FROM coupon_lock.shard_transfer WHERE batch_id = $b AND direction = 'receive' AND quantity > 0" |
        awk -F'|' '{s += $2} END {print s}')
pv_check "the storm moved stock between shards ($moves deliveries, beyond the 3 shares of create_batch)" test "${moves:-0}" -gt 3
sh_invariants "$b" "$Q"
sh_checks <<SQL
SELECT 'after the storm the batch is sold out everywhere: a claim is NULL',
                     coupon_lock.coupon_claim($b, 'storm-late') IS NULL;
SQL

echo "== a shard cluster stopped, then started"
Q=400
b=$(sh_router -c "SELECT coupon_lock.create_batch('outage', $Q, 1000)")
sh_router -c "CREATE TABLE public.out_owner AS
              SELECT o AS name, coupon_lock.router_lead_of(coupon_lock.owner_partition(o)) AS lead
                FROM (SELECT 'out-' || g AS o FROM generate_series(1, 400) g) s"
a_owner=$(sh_router -c "SELECT name FROM public.out_owner WHERE lead IN (0, 1) LIMIT 1")
b_owner=$(sh_router -c "SELECT name FROM public.out_owner WHERE lead IN (2, 3) LIMIT 1")
b_coupon=$(sh_router -c "SELECT coupon_lock.coupon_claim($b, '$b_owner')")
# claims in the background while cluster B goes down and comes back
for w in 1 2 3 4; do
    for i in $(seq 60); do
        echo "SELECT coupon_lock.coupon_claim($b, (SELECT name FROM public.out_owner ORDER BY random() LIMIT 1));"
        echo "SELECT pg_sleep(0.02);"
    done >"$PV_TMP/shards_outage_$w.sql"
    sh_router -v ON_ERROR_STOP=0 -v VERBOSITY=verbose -f "$PV_TMP/shards_outage_$w.sql" \
        >"$PV_TMP/shards_outage_$w.out" 2>&1 &
done
sleep 1
sh_stop_cluster B
t0=$(date +%s.%N)
out=$(sh_router -v VERBOSITY=verbose -c "SELECT coupon_lock.coupon_claim($b, '$b_owner')" 2>&1)
t1=$(date +%s.%N)
pv_check "cluster B down: a claim homed there fails with 08006 in $(echo "$t1 - $t0" | bc | cut -c1-4)s (connect_timeout 2s)" \
    grep -q "08006" <<<"$out" || echo "$out"
out=$(sh_router -v VERBOSITY=verbose -c "SELECT coupon_lock.coupon_freeze($b_coupon, '$b_owner', 'o-1')" 2>&1)
pv_check "cluster B down: freezing a coupon of cluster B fails with 08006 and names its partition" \
    grep -qE "08006: could not reach the shard of partition [0-9]" <<<"$out" || echo "$out"
pv_check "cluster B down: a claim homed on cluster A still gets a coupon" \
    test -n "$(sh_router -c "SELECT coupon_lock.coupon_claim($b, '$a_owner')")"
pv_check "cluster B down: router_shards shows partitions 2 3 6 7 not answering" \
    test "$(sh_router -c "SELECT string_agg(partition::text, ' ' ORDER BY partition) FROM coupon_lock.router_shards WHERE NOT answers")" = "2 3 6 7"
# drain cluster A: then a claim homed there cannot tell the batch is sold out
sh_router -c "SELECT count(coupon_lock.coupon_claim($b, '$a_owner')) FROM generate_series(1, 250)" >/dev/null 2>&1
out=$(sh_router -v VERBOSITY=verbose -c "SELECT coalesce(coupon_lock.coupon_claim($b, '$a_owner')::text, 'NULL')" 2>&1)
pv_check "cluster B down, cluster A drained: a claim is an 08006 error, not NULL (stock is out of reach)" \
    grep -q "08006" <<<"$out" || echo "$out"
sleep 2
sh_start_cluster B
wait
pv_check "cluster B back: the same router sessions use it again (claim homed there)" \
    test -n "$(sh_router -c "SELECT coupon_lock.coupon_claim($b, '$b_owner')")"
pv_check "cluster B back: router_shards shows all partitions answering" \
    test "$(sh_router -c "SELECT bool_and(answers) FROM coupon_lock.router_shards")" = t
echo "   background claim errors while B was down: $(sqlstates <(cat "$PV_TMP"/shards_outage_*.out))"
pv_check "background claims saw only class 08 errors (no XX000, no other error)" \
    test -z "$(cat "$PV_TMP"/shards_outage_*.out | grep -E 'ERROR:  ' | grep -vE 'ERROR:  08006')"
sh_router -c "SELECT * FROM coupon_lock.router_reconcile()" >/dev/null
# drain what is left: then exactly the quantity is issued
sh_router -c "SELECT count(coupon_lock.coupon_claim($b, name)) FROM public.out_owner, generate_series(1, 2)" >/dev/null
sh_invariants "$b" "$Q"

echo "== a hung shard"
# Three ways a shard stops answering, each bounded by the settings
# docs/scaling.md recommends, each with calls for other shards going on and
# the shard used again by the same session once it is back:
#   net      packets to and from cluster B dropped (nftables): the connection
#            string's tcp_user_timeout / keepalives / connect_timeout
#   backend  the shard backend of the session stopped (SIGSTOP), its
#            postmaster alive: the router session's statement_timeout, then
#            PL/Proxy's cancel and the server's query_timeout
#   cluster  the whole cluster B stopped (postmaster too, on this kernel, so
#            TCP stays up and PL/Proxy's cancel would block):
#            coupon_lock.router_call_timeout
# A check never waits for a fixed time: it waits (at most 90 s) for the
# call to end while the shard is still stopped; the times are printed.
b=$(sh_router -c "SELECT coupon_lock.create_batch('hung', 400, 1000)")
owner=$(sh_router -c "SELECT name FROM public.out_owner WHERE lead = 2 LIMIT 1")
other=$(sh_router -c "SELECT name FROM public.out_owner WHERE lead = 0 LIMIT 1")
NFT_TABLE=cl_shards_$$
# waits until file $1 exists, at most $2 seconds
wait_file() { local n=$(($2 * 10)); while [ ! -e "$1" ] && [ "$n" -gt 0 ]; do sleep 0.1; n=$((n - 1)); done; [ -e "$1" ]; }
hang_stop() {
    case $1 in
        net)
            nft add table inet "$NFT_TABLE" &&
            nft add chain inet "$NFT_TABLE" out '{ type filter hook output priority 0; }' &&
            nft add rule inet "$NFT_TABLE" out tcp dport "$SH_PORT_B" drop &&
            nft add rule inet "$NFT_TABLE" out tcp sport "$SH_PORT_B" drop ;;
        backend)
            sh_psql B postgres -c "SELECT pid FROM pg_stat_activity WHERE datname = 'cl_shard3'
                                     AND backend_type = 'client backend' AND state = 'idle'" >"$PV_TMP/shards_hung.pid" &&
            test -s "$PV_TMP/shards_hung.pid" && kill -STOP $(cat "$PV_TMP/shards_hung.pid") ;;
        cluster)
            local pm; pm=$(head -1 "$CL_ROOT/tmp/${SH_NAME}_b/pg/postmaster.pid")
            { echo "$pm"; pgrep -P "$pm"; } >"$PV_TMP/shards_hung.pid" && kill -STOP $(cat "$PV_TMP/shards_hung.pid") ;;
    esac
}
hang_resume() {
    case $1 in
        net) nft delete table inet "$NFT_TABLE" ;;
        *) kill -CONT $(cat "$PV_TMP/shards_hung.pid"); rm -f "$PV_TMP/shards_hung.pid" ;;
    esac
}
# hang_case MODE "PGOPTIONS of the router session" WHAT-BOUNDS-IT
hang_case() {
    local mode=$1 opts=$2 bound=$3 f="$PV_TMP/shards_hung_$1" t0 t1 ended psql_pid
    rm -f "$f".*
    cat >"$f.sql" <<SQL
SELECT 'first: ' || (coupon_lock.coupon_claim($b, '$owner') IS NOT NULL);
\! touch "$f.ready"; while [ ! -e "$f.stopped" ]; do sleep 0.1; done
SELECT 'hung: ' || (coupon_lock.coupon_claim($b, '$owner') IS NOT NULL);
\! touch "$f.ended"; while [ ! -e "$f.resumed" ]; do sleep 0.1; done
SELECT 'back: ' || (coupon_lock.coupon_claim($b, '$owner') IS NOT NULL);
SQL
    PGOPTIONS="$opts" sh_router -v ON_ERROR_STOP=0 -v VERBOSITY=verbose -f "$f.sql" >"$f.out" 2>&1 &
    psql_pid=$!
    wait_file "$f.ready" 30
    if ! hang_stop "$mode"; then
        pv_fail "$mode: the shard could not be made to hang (see above): the case is not tested"
        touch "$f.stopped" "$f.resumed"; wait "$psql_pid"; return
    fi
    t0=$(date +%s.%N); touch "$f.stopped"
    sleep 0.5
    pv_check "$mode: while the call for the hung shard waits, a call for another shard goes on" \
        test -n "$(PGOPTIONS="$opts" sh_router -c "SELECT coupon_lock.coupon_claim($b, '$other')")"
    wait_file "$f.ended" 90; ended=$?; t1=$(date +%s.%N)
    pv_check "$mode: the call ends while the shard still hangs, with 08006 after $(echo "$t1 - $t0" | bc | cut -c1-4)s ($bound)" \
        test "$ended" = 0 -a -n "$(grep -E 'ERROR:  08006: could not reach the shard of partition' "$f.out")" ||
        cat "$f.out"
    if [ "$mode" != backend ]; then
        # a new session while it hangs: its connect is bounded the same way
        t0=$(date +%s.%N)
        out=$(PGOPTIONS="$opts" sh_router -v VERBOSITY=verbose -c "SELECT coupon_lock.coupon_claim($b, '$owner')" 2>&1)
        t1=$(date +%s.%N)
        pv_check "$mode: a new session's call for the hung shard fails with 08006 too, after $(echo "$t1 - $t0" | bc | cut -c1-4)s" \
            grep -q "08006" <<<"$out" || echo "$out"
    fi
    hang_resume "$mode"
    touch "$f.resumed"
    wait "$psql_pid"
    pv_check "$mode: the shard back, the same session uses it again (no restart)" grep -q "^back: true" "$f.out" ||
        cat "$f.out"
}
hang_case net "" "tcp_user_timeout=2000 in the connection string"
hang_case backend "-c statement_timeout=3s" "the session's statement_timeout 3s, then query_timeout 10s"
hang_case cluster "-c coupon_lock.router_call_timeout=3s" "coupon_lock.router_call_timeout 3s"

echo "== a router backend killed in the middle of a stock move"
Q=8
b=$(sh_router -c "SELECT coupon_lock.create_batch('kill', $Q, 100)")
owner=$(sh_router -c "SELECT name FROM public.out_owner WHERE lead = 0 LIMIT 1")
# empty the owner's home (cl_shard1, 2 coupons), so that the next claim must move stock
sh_router -c "SELECT coupon_lock.coupon_claim($b, '$owner'), coupon_lock.coupon_claim($b, '$owner')" >/dev/null
# hold the receiving side: the move gives on a donor, then waits to receive
(sh_psql A cl_shard1 -c "BEGIN" -c "LOCK TABLE coupon_lock.shard_transfer IN EXCLUSIVE MODE" -c "SELECT pg_sleep(30)") >/dev/null 2>&1 &
locker=$!
sleep 0.5
sh_router -c "SELECT coupon_lock.coupon_claim($b, '$owner')" >"$PV_TMP/shards_kill.out" 2>&1 &
victim=""
for _ in $(seq 100); do
    victim=$(sh_router -c "SELECT pid FROM pg_stat_activity WHERE datname = 'cl_router' AND query LIKE '%coupon_claim($b,%' AND pid <> pg_backend_pid()")
    waiting=$(sh_psql A cl_shard1 -c "SELECT count(*) FROM pg_stat_activity WHERE query LIKE '%shard_stock_receive%' AND wait_event_type = 'Lock'")
    # the sweeper's router_reconcile may wait there too, to deliver the same give
    [ -n "$victim" ] && [ "${waiting:-0}" -ge 1 ] && break
    sleep 0.1
done
pv_check "the move is in the middle: the give committed on a donor, the receive waits" test -n "$victim" -a "${waiting:-0}" -ge 1
sh_router -c "SELECT pg_terminate_backend($victim)" >/dev/null
# gives of the batch not yet marked delivered, read on the shards themselves
in_flight() {
    sh_each_shard "SELECT count(*) FROM coupon_lock.shard_transfer WHERE batch_id = $b AND direction = 'give' AND NOT delivered" |
        awk -F'|' '{s += $2} END {print s + 0}'
}
rounds=$(sh_router -c "SELECT rounds FROM coupon_lock.sweeper_stats WHERE database = 'cl_router'")
# the receive still waits for the lock: no reconciler can deliver it yet
flight=$(in_flight)
pv_check "after the kill the donor's give is in flight, not delivered ($flight)" test "$flight" -ge 1
sh_psql A cl_shard1 -c "SELECT pg_cancel_backend(pid) FROM pg_stat_activity
                        WHERE query LIKE '%pg_sleep(30)%' AND pid <> pg_backend_pid()" >/dev/null
wait "$locker" 2>/dev/null
# nobody calls router_reconcile (or anything of the router) from here on:
# the sweeper of cluster A does, every reconcile_interval (1s here)
t0=$(date +%s.%N)
while [ "$(in_flight)" != 0 ] && [ "$(echo "$(date +%s.%N) - $t0 < 30" | bc)" = 1 ]; do sleep 0.2; done
secs=$(echo "$(date +%s.%N) - $t0" | bc | cut -c1-4)
pv_check "the sweeper delivered the stranded stock by itself within ${secs}s (reconcile_interval 1s)" test "$(in_flight)" = 0
sh_checks <<SQL
SELECT 'sweeper_stats in the router: the cl_router rounds go on and succeed (router_reconcile, no sweeps there)',
       state = 'ok' AND rounds > coalesce(nullif('$rounds', '')::bigint, -1) AND released = 0 AND expired = 0,
       format('state %s, rounds %s (%s before)', state, rounds, '$rounds')
  FROM coupon_lock.sweeper_stats WHERE database = 'cl_router';
SQL
sh_invariants "$b" 2
sh_router -c "SELECT count(coupon_lock.coupon_claim($b, name)) FROM public.out_owner" >/dev/null
sh_invariants "$b" "$Q"

echo "== sweeps on every shard"
# a batch that ends in a few seconds; one owner claims twice its home's
# share, so that stock moves there and coupons of the batch lie past the
# home's own id range of it
Q=40
b=$(sh_router -c "SELECT coupon_lock.create_batch('ends', $Q, 100, now() + interval '8 seconds')")
owner=$(sh_router -c "SELECT name FROM public.out_owner WHERE lead = 0 LIMIT 1")
sh_router -c "SELECT count(coupon_lock.coupon_claim($b, '$owner')) FROM generate_series(1, 20)" >/dev/null
past_range="FROM coupon_lock.coupon c JOIN coupon_lock.batch t USING (batch_id)
             WHERE c.batch_id = $b AND c.coupon_id >= t.first_coupon_id + t.quantity"
moved=$(sh_psql A cl_shard1 -c "SELECT count(*) $past_range AND c.state = 'issued'")
pv_check "stock moved: cl_shard1 holds issued coupons of the batch past its own id range ($moved)" test "$moved" -ge 1
c=$(sh_psql A cl_shard1 -c "SELECT max(c.coupon_id) $past_range AND c.state = 'issued'")
sh_router -c "SELECT coupon_lock.coupon_freeze($c, '$owner', 'o-ends', NULL, interval '1 second')" >/dev/null
sh_invariants "$b" 20
t0=$(date +%s)
until [ "$(sh_router -c "SELECT now() > valid_until FROM coupon_lock.batch WHERE batch_id = $b")" = t ] ||
      [ $(($(date +%s) - t0)) -gt 30 ]; do sleep 0.5; done
released=$(sh_router -c "SELECT coupon_lock.release_expired_freezes()")
expired=$(sh_router -c "SELECT coupon_lock.expire_coupons()")
sh_checks <<SQL
SELECT 'the batch ended: release_expired_freezes through the router expired the lapsed freeze of a moved coupon ($released)',
       '$released' = '1';
SELECT 'expire_coupons through the router expired the other $((Q - 1)) coupons on every shard ($expired)',
       '$expired' = '$((Q - 1))';
SELECT 'no available, issued or frozen coupon of the batch is left on any shard',
       NOT EXISTS (SELECT FROM coupon_lock.coupon WHERE batch_id = $b AND state IN ('available', 'issued', 'frozen'));
SELECT 'sums: the $Q coupons of the batch over all shards are expired, one ledger row each',
       (SELECT count(*) FROM coupon_lock.coupon WHERE batch_id = $b AND state = 'expired') = $Q
       AND (SELECT count(*) FROM coupon_lock.coupon_event e JOIN coupon_lock.coupon c USING (coupon_id)
             WHERE c.batch_id = $b AND e.op IN ('expire', 'release')) = $Q;
SELECT 'a second expire_coupons finds nothing: every range of every shard is walked to its end',
       coupon_lock.expire_coupons() = 0;
SQL
pv_check "cl_shard1: the ranges stock moves brought are walked to their ends" \
    test "$(sh_psql A cl_shard1 -c "SELECT count(*) > 0 AND bool_and(expire_from >= first_coupon_id + quantity)
                                      FROM coupon_lock.shard_coupon_range WHERE batch_id = $b")" = t

. "$PV_DIR/shards_apps.sh"

pv_done shards
