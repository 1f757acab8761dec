#!/usr/bin/env bash
# Layer redis_ha: Redis beyond one server, with real servers only (issue 12).
# Starts under tmp/redis_ha a master (CL_HA_REDIS_PORT, default 7060), its
# replica (the port + 1) and three redis-sentinel processes
# (CL_HA_SENTINEL_PORT, default 27050, and the next two), with
# down-after-milliseconds 1000.  Proves: locks through Sentinel; mutual
# exclusion of concurrent SQL clients through Sentinel; WAIT with the
# replica stopped (not acquired, no key left); a Sentinel failover under
# load, the same backend recovering on the new master; a fourth Sentinel
# with a password of its own (the port + 3, default 27053) asked with
# coupon_lock.redis_sentinel_password.  No duration is asserted; the
# failover's recovery time is printed for docs/redis.md.
set -u
. "$(dirname "$0")/common.sh"
PV_DB=cl_redis_ha
M_PORT=${CL_HA_REDIS_PORT:-7060}
R_PORT=$((M_PORT + 1))
S_PORT=${CL_HA_SENTINEL_PORT:-27050}
HA=$CL_ROOT/tmp/redis_ha

. "$CL_ROOT/test/redis_ha_lib.sh"
trap 'ha_stop "$HA"' EXIT
rcli() { redis-cli -h 127.0.0.1 -p "$@"; }
role_of() { rcli "$1" ROLE 2>/dev/null | head -n 1; }

ha_stop "$HA"; rm -rf "$HA"
ha_start "$HA" "$M_PORT" "$S_PORT"
pv_check "a master, its replica and three Sentinels are up" test "$(role_of "$M_PORT")" = master ||
    { pv_done redis_ha; exit 1; }

SENTINELS=$(ha_sentinels "$S_PORT")
pv_fresh_db || { pv_fail "could not create $PV_DB"; pv_done redis_ha; exit 1; }
# q SQL...: a session whose Redis is found through the Sentinels only.
q() {
    printf '%s\n' "SET coupon_lock.redis_host = '';" "SET coupon_lock.redis_sentinels = '$SENTINELS';" \
        "SET coupon_lock.redis_connect_timeout = '1s';" "SET coupon_lock.redis_command_timeout = '1s';" "$@" |
        timeout 120 "$CL_PGBIN/psql" -X -q -At -d "$PV_DB" 2>&1
}

# ---- Sentinel: the master comes from the Sentinels ----
out=$(q "SELECT coupon_lock.redis_lock('through-sentinel', '60s') IS NOT NULL;")
pv_check "redis_lock works with only coupon_lock.redis_sentinels set" grep -qx t <<<"$out" || echo "$out"
pv_check "the key is on the master Sentinel names" test "$(rcli "$M_PORT" EXISTS coupon_lock:through-sentinel)" = 1
out=$(printf '%s\n' "SET coupon_lock.redis_host = '';" \
    "SET coupon_lock.redis_sentinels = '127.0.0.1:1,$SENTINELS';" \
    "SELECT coupon_lock.redis_lock('first-sentinel-away', '60s') IS NOT NULL;" |
    "$CL_PGBIN/psql" -X -q -At -d "$PV_DB" 2>&1)
pv_check "a Sentinel that is away is passed over for the next" grep -qx t <<<"$out" || echo "$out"
out=$(printf '%s\n' "SET coupon_lock.redis_host = '';" "SET coupon_lock.redis_sentinels = '127.0.0.1:1';" \
    "\\set VERBOSITY verbose" "SELECT coupon_lock.redis_lock('no-sentinel', '60s');" |
    "$CL_PGBIN/psql" -X -q -At -d "$PV_DB" 2>&1)
pv_check "no Sentinel answering is 08001, naming the master" \
    grep -q 'ERROR:  08001: could not find the Redis master "mymaster" through Sentinel' <<<"$out" || echo "$out"

# ---- a Sentinel with a password of its own ----
PW_PORT=$((S_PORT + 3))
mkdir -p "$HA/s$PW_PORT"
cat >"$HA/s$PW_PORT/sentinel.conf" <<CONF
port $PW_PORT
bind 127.0.0.1
daemonize yes
pidfile $HA/sentinel-$PW_PORT.pid
logfile $HA/sentinel-$PW_PORT.log
dir $HA/s$PW_PORT
requirepass sentinel-secret
sentinel monitor pwmaster 127.0.0.1 $M_PORT 1
CONF
redis-sentinel "$HA/s$PW_PORT/sentinel.conf" >/dev/null
for _ in $(seq 50); do rcli "$PW_PORT" -a sentinel-secret --no-auth-warning PING >/dev/null 2>&1 && break; sleep 0.1; done
# pw SQL...: a session asking only the Sentinel with a password (its own
# name for the master, so that the three others never count it in a vote)
pw() {
    printf '%s\n' "SET coupon_lock.redis_host = '';" "SET coupon_lock.redis_sentinels = '127.0.0.1:$PW_PORT';" \
        "SET coupon_lock.redis_sentinel_master = 'pwmaster';" \
        "\\set VERBOSITY verbose" "$@" | timeout 60 "$CL_PGBIN/psql" -X -q -At -d "$PV_DB" 2>&1
}
out=$(pw "SET coupon_lock.redis_sentinel_password = 'sentinel-secret';" \
    "SELECT coupon_lock.redis_lock('sentinel-password', '60s') IS NOT NULL;")
pv_check "a Sentinel with requirepass: coupon_lock.redis_sentinel_password authenticates to it" \
    bash -c 'grep -qx t <<<"$1" && test "$(redis-cli -p "$2" EXISTS coupon_lock:sentinel-password)" = 1' _ "$out" "$M_PORT" ||
    echo "$out"
out=$(pw "SET coupon_lock.redis_sentinel_password = 'wrong';" "SELECT coupon_lock.redis_lock('sentinel-wrong', '60s');")
pv_check "a wrong Sentinel password: 08001, the detail naming the Sentinel and its AUTH answer, not the password" \
    bash -c 'grep -q "ERROR:  08001: could not find the Redis master \"pwmaster\"" <<<"$1" &&
             grep -q "DETAIL:  The last Sentinel asked (127.0.0.1:$2) answered: Redis answered AUTH with WRONGPASS" <<<"$1" &&
             ! grep -q wrong <<<"$(grep -v "^SET\|redis_lock" <<<"$1")"' _ "$out" "$PW_PORT" || echo "$out"
out=$(pw "SELECT coupon_lock.redis_lock('sentinel-none', '60s');")
pv_check "no Sentinel password for a Sentinel that needs one: 08001" \
    grep -q "ERROR:  08001: could not find the Redis master" <<<"$out" || echo "$out"
out=$(printf '%s\n' "ALTER SYSTEM SET coupon_lock.redis_sentinel_password = 'sentinel-secret';" "SELECT pg_reload_conf();" \
    "CREATE ROLE ha_nobody;" "SET ROLE ha_nobody;" "SHOW coupon_lock.redis_sentinel_password;" "RESET ROLE;" \
    "DROP ROLE ha_nobody;" "ALTER SYSTEM RESET coupon_lock.redis_sentinel_password;" "SELECT pg_reload_conf();" |
    "$CL_PGBIN/psql" -X -q -At -d "$PV_DB" 2>&1)
pv_check "the Sentinel password is hidden from a non-superuser (SHOW refused)" \
    bash -c 'grep -q "permission denied\|must be superuser\|ERROR:  42501" <<<"$1" && ! grep -q sentinel-secret <<<"$1"' _ "$out" ||
    echo "$out"
# stopped before the failovers below: a Sentinel of its own would fail over "its" master too
pw_pid=$(cat "$HA/sentinel-$PW_PORT.pid")
kill "$pw_pid"
for _ in $(seq 50); do kill -0 "$pw_pid" 2>/dev/null || break; sleep 0.1; done
rm -f "$HA/sentinel-$PW_PORT.pid"

# ---- mutual exclusion of concurrent SQL clients through Sentinel ----
pv_psql -c "CREATE TABLE ha_occ (inside int, maxseen int, rounds int); INSERT INTO ha_occ VALUES (0, 0, 0)" >/dev/null
cat >"$HA/mutex.sql" <<'SQL'
SET coupon_lock.redis_host = '';
SELECT coupon_lock.redis_lock('mutex', '10s', '20s') AS tok \gset
UPDATE ha_occ SET inside = inside + 1, maxseen = greatest(maxseen, inside + 1), rounds = rounds + 1;
SELECT pg_sleep(0.002);
UPDATE ha_occ SET inside = inside - 1;
SELECT coupon_lock.redis_unlock('mutex', :tok);
SQL
PGOPTIONS="-c coupon_lock.redis_sentinels=$SENTINELS" "$CL_PGBIN/pgbench" -n -M extended -c 4 -t 40 -f "$HA/mutex.sql" "$PV_DB" \
    >"$HA/mutex.log" 2>&1
pv_check "4 clients x 40 rounds through Sentinel: never two inside at once" \
    test "$(pv_psql -c "SELECT maxseen || '/' || rounds FROM ha_occ")" = 1/160 ||
    { pv_table "SELECT * FROM ha_occ"; tail -n 5 "$HA/mutex.log"; }

# ---- WAIT: with the replica stopped, a lock is not acquired ----
# WAIT gets half the command timeout: 2 s, for a loaded machine
out=$(q "SET coupon_lock.redis_command_timeout = '4s';" "SET coupon_lock.redis_min_replicas = 1;" \
    "SELECT coupon_lock.redis_lock('acked', '60s') AS tok \\gset" \
    "SELECT :'tok' <> '' AS acked;" "SELECT coupon_lock.redis_extend('acked', :'tok', '60s') AS extended;")
pv_check "redis_min_replicas = 1 with the replica up: acquired and extended" test "$(echo $out)" = "t t" || echo "$out"
kill -STOP "$(cat "$HA/redis-$R_PORT.pid")"
out=$(q "SET coupon_lock.redis_command_timeout = '4s';" "SET coupon_lock.redis_min_replicas = 1;" \
    "SELECT coupon_lock.redis_lock('unacked', '60s') IS NULL AS not_acquired;" \
    "SET coupon_lock.redis_min_replicas = 0;" "SELECT coupon_lock.redis_lock('acked2', '60s') AS tok \\gset" \
    "SET coupon_lock.redis_min_replicas = 1;" "SELECT coupon_lock.redis_extend('acked2', :'tok', '60s') AS extended;")
kill -CONT "$(cat "$HA/redis-$R_PORT.pid")"
pv_check "with the replica stopped: redis_lock returns NULL and redis_extend false" test "$(echo $out)" = "t f" ||
    echo "$out"
pv_check "and neither leaves its key on the master" \
    test "$(rcli "$M_PORT" EXISTS coupon_lock:unacked coupon_lock:acked2)" = 0

# ---- a Sentinel failover under load, the same backend recovering ----
# the replica stopped above must be back in the Sentinels' eyes first
for _ in $(seq 100); do
    [ "$(rcli "$S_PORT" SENTINEL replicas mymaster | grep -A1 -x flags | tail -n 1)" = slave ] && break
    sleep 0.2
done
{
    echo "SELECT pg_backend_pid() AS pid0 \\gset"
    echo "CREATE FUNCTION pg_temp.cycle() RETURNS text LANGUAGE plpgsql AS \$\$
DECLARE t text;
BEGIN
    t := coupon_lock.redis_lock('load', '5s');
    IF t IS NULL THEN RETURN 'busy'; END IF;
    PERFORM coupon_lock.redis_unlock('load', t);
    RETURN 'ok';
EXCEPTION WHEN OTHERS THEN RETURN SQLSTATE;
END \$\$;"
    for i in $(seq 300); do
        echo "SELECT extract(epoch FROM clock_timestamp())::numeric(16,3) || ' ' || pg_temp.cycle();"
        echo "SELECT pg_sleep(0.05);"
    done
    echo "SELECT 'same backend ' || (pg_backend_pid() = :pid0);"
    echo "SELECT 'same backend locks ' || (coupon_lock.redis_lock('same-backend', '60s') IS NOT NULL);"
} >"$HA/load.sql"
q "\\i $HA/load.sql" >"$HA/load.out" &
loader=$!
sleep 3
t_failover=$(date +%s.%N)
rcli "$S_PORT" SENTINEL failover mymaster >/dev/null
wait "$loader"
grep -vE '^$' "$HA/load.out" | grep -E ' (ok|busy|[0-9A-Z]{5})$' >"$HA/load.cycles"
new_master=$(role_of "$R_PORT")
pv_check "Sentinel promoted the replica" test "$new_master" = master
pv_check "the loading backend is the same one throughout" grep -qx 'same backend true' "$HA/load.out"
last_err=$(grep -vE ' ok$' "$HA/load.cycles" | tail -n 1 | cut -d' ' -f1)
errors=$(grep -cvE ' ok$' "$HA/load.cycles")
pv_check "after the failover the backend's calls work again (the last 20 cycles ok)" \
    test "$(tail -n 20 "$HA/load.cycles" | grep -c ' ok$')" = 20 || tail -n 25 "$HA/load.cycles"
pv_check "and the same backend's lock is on the new master" \
    bash -c 'grep -qx "same backend locks true" "$1" && test "$(redis-cli -p "$2" EXISTS coupon_lock:same-backend)" = 1' _ "$HA/load.out" "$R_PORT"
if [ -n "$last_err" ]; then
    echo "failover: $errors failed cycles, the last $(awk -v a="$last_err" -v b="$t_failover" 'BEGIN { printf "%.2f", a - b }') s after SENTINEL failover"
else
    echo "failover: no cycle failed (Sentinel's CLIENT KILL made the backend reconnect before its next call)"
fi
# the master killed under load: Sentinel's detection (down-after 1000 ms) and
# election, then the same backend finds the new master
for _ in $(seq 100); do
    [ "$(rcli "$S_PORT" SENTINEL replicas mymaster | grep -A1 -x flags | tail -n 1)" = slave ] && break
    sleep 0.2
done
q "\\i $HA/load.sql" >"$HA/load2.out" &
loader=$!
sleep 3
t_kill=$(date +%s.%N)
kill -9 "$(cat "$HA/redis-$R_PORT.pid")"; rm -f "$HA/redis-$R_PORT.pid"
wait "$loader"
grep -E ' (ok|busy|[0-9A-Z]{5})$' "$HA/load2.out" >"$HA/load2.cycles"
pv_check "master killed: Sentinel promoted the old master back" test "$(role_of "$M_PORT")" = master
pv_check "master killed: the same backend's calls work again (the last 20 cycles ok)" \
    bash -c 'grep -qx "same backend true" "$1" && test "$(tail -n 20 "$2" | grep -c " ok$")" = 20' _ "$HA/load2.out" "$HA/load2.cycles" ||
    tail -n 25 "$HA/load2.cycles"
first_ok=$(awk -v k="$t_kill" '$1 > k && $2 != "ok" { bad = 1 } bad && $2 == "ok" { print $1; exit }' "$HA/load2.cycles")
echo "master killed: $(grep -cvE ' ok$' "$HA/load2.cycles") failed cycles; the first ok after them" \
    "$(awk -v a="${first_ok:-0}" -v b="$t_kill" 'BEGIN { printf "%.2f", a - b }') s after the kill"
out=$(q "SELECT coupon_lock.redis_lock('after-failover', '60s') IS NOT NULL;")
pv_check "a new session finds the new master" \
    bash -c 'grep -qx t <<<"$1" && test "$(redis-cli -p "$2" EXISTS coupon_lock:after-failover)" = 1' _ "$out" "$M_PORT"

pv_done redis_ha
