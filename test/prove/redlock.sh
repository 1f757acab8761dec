#!/usr/bin/env bash
# Layer redlock: Redlock over five independent redis-server masters, real
# servers only (issue 12, items 3 and 4).  Starts them under tmp/redlock on
# CL_REDLOCK_PORT .. + 4 (default 7070-7074).  Proves: the check of
# coupon_lock.redlock_servers; the same key and token on every server;
# redis_lock_validity; held elsewhere is NULL; mutual exclusion of
# concurrent SQL clients (pgbench); transaction-end release on every server;
# extend with a majority; the guard refused while an outside holder has its
# key on a majority; one and two of five killed (still acquires), three
# killed (class 08, the elapsed time printed, never asserted); a cancel
# ending the wait; one server paused with SIGSTOP; a server restarted empty
# (the majority still holds the lock); NOSCRIPT on one server.
set -u
. "$(dirname "$0")/common.sh"
PV_DB=cl_redlock
PORT=${CL_REDLOCK_PORT:-7070}
RL=$CL_ROOT/tmp/redlock

. "$CL_ROOT/test/redis_ha_lib.sh"
trap 'ha_stop "$RL"' EXIT
rcli() { redis-cli -h 127.0.0.1 -p "$@"; }
srv() { echo $((PORT + $1)); }   # srv I: the port of server I (0-4)
pidfile() { echo "$RL/redis-$(srv "$1").pid"; }
# on_all CMD...: CMD's answer from each of the five servers, space separated.
on_all() { local i; for i in 0 1 2 3 4; do rcli "$(srv $i)" "$@"; done | tr '\n' ' ' | sed 's/ $//'; }
# holding KEY TOKEN: on how many servers KEY holds TOKEN.
holding() { local i n=0; for i in 0 1 2 3 4; do [ "$(rcli "$(srv $i)" GET "$1")" = "$2" ] && n=$((n + 1)); done; echo $n; }
kill_srv() { kill -9 "$(cat "$(pidfile "$1")")"; rm -f "$(pidfile "$1")"; }
start_srv() { ha_redis "$RL" "$(srv "$1")"; }

ha_stop "$RL"; rm -rf "$RL"
rl_start "$RL" "$PORT" 5
pv_check "five independent masters are up" test "$(on_all PING)" = "PONG PONG PONG PONG PONG" ||
    { pv_done redlock; exit 1; }
SERVERS=$(rl_servers "$PORT" 5)
pv_fresh_db || { pv_fail "could not create $PV_DB"; pv_done redlock; exit 1; }

# q SQL...: a session whose Redis locks use Redlock over the five servers.
q() {
    printf '%s\n' "SET coupon_lock.redis_host = '';" "SET coupon_lock.redlock_servers = '$SERVERS';" \
        "SET coupon_lock.redis_connect_timeout = '1s';" "SET coupon_lock.redis_command_timeout = '1s';" \
        "\\set VERBOSITY verbose" "$@" |
        timeout 120 "$CL_PGBIN/psql" -X -q -At -d "$PV_DB" 2>&1
}

# ---- the setting's check ----
for bad in '127.0.0.1:1,127.0.0.1:2' '127.0.0.1:1,127.0.0.1:2,127.0.0.1:3,127.0.0.1:4' \
    '127.0.0.1:1,127.0.0.1,127.0.0.1:3' '127.0.0.1:1,127.0.0.1:2,127.0.0.1:99999'; do
    out=$(q "SET coupon_lock.redlock_servers = '$bad';")
    pv_check "coupon_lock.redlock_servers = '$bad' is refused (22023)" \
        grep -q "ERROR:  22023: invalid value for parameter \"coupon_lock.redlock_servers\"" <<<"$out" || echo "$out"
done
out=$(q "SET coupon_lock.redlock_servers = '127.0.0.1:1,127.0.0.1:2';")
pv_check "the refusal says why (an odd number, at least 3)" grep -q 'DETAIL:  Redlock needs an odd number of servers' <<<"$out" ||
    echo "$out"

# ---- one lock: the same key and token on every server ----
out=$(q "SELECT coupon_lock.redis_lock('one', '60s') AS tok \\gset" "SELECT :'tok';" \
    "SELECT coupon_lock.redis_lock_validity('one', :'tok') BETWEEN 50000 AND 60000 AS valid;" \
    "SELECT coupon_lock.redis_lock_validity('one', 'not-the-token') IS NULL AS other_token_null;")
tok=$(head -n 1 <<<"$out")
pv_check "redis_lock returns a token, and every server holds the key with it" \
    test "$(on_all GET coupon_lock:one)" = "$tok $tok $tok $tok $tok" || echo "$out"
pv_check "redis_lock_validity: the ms left of a 60 s lock (50-60 s), NULL for another token" \
    test "$(sed -n 2,3p <<<"$out" | tr '\n' ' ')" = "t t " || echo "$out"
out=$(q "SELECT coupon_lock.redis_lock('one', '60s') IS NULL AS held_elsewhere;")
pv_check "another session's redis_lock of a held key is NULL" grep -qx t <<<"$out" || echo "$out"
pv_check "and its attempt left the holder's token on every server" \
    test "$(on_all GET coupon_lock:one)" = "$tok $tok $tok $tok $tok"
out=$(q "SELECT coupon_lock.redis_unlock('one', '$tok');")
pv_check "redis_unlock is true and deletes the key on every server" \
    bash -c 'grep -qx t <<<"$1" && test "$2" = "0 0 0 0 0"' _ "$out" "$(on_all EXISTS coupon_lock:one)" || echo "$out"

# ---- extend with a majority ----
out=$(q "SELECT coupon_lock.redis_lock('ext', '5s') AS tok \\gset" \
    "SELECT coupon_lock.redis_extend('ext', :'tok', '120s') AS extended;" \
    "SELECT coupon_lock.redis_lock_validity('ext', :'tok') > 100000 AS longer;" \
    "SELECT coupon_lock.redis_extend('ext', 'not-the-token', '120s') AS other_token;")
pv_check "redis_extend: true, the validity grows past the old ttl, false for another token" \
    test "$(echo $out)" = "t t f" || echo "$out"
pv_check "and every server has the extended TTL" \
    test "$(for i in 0 1 2 3 4; do [ "$(rcli "$(srv $i)" PTTL coupon_lock:ext)" -gt 100000 ] && echo y; done | wc -l)" = 5

# ---- mutual exclusion of concurrent SQL clients ----
pv_psql -c "CREATE TABLE rl_occ (inside int, maxseen int, rounds int); INSERT INTO rl_occ VALUES (0, 0, 0)" >/dev/null
cat >"$RL/mutex.sql" <<'SQL'
SELECT coupon_lock.redis_lock('mutex', '10s', '30s') AS tok \gset
UPDATE rl_occ SET inside = inside + 1, maxseen = greatest(maxseen, inside + 1), rounds = rounds + 1;
SELECT pg_sleep(0.002);
UPDATE rl_occ SET inside = inside - 1;
SELECT coupon_lock.redis_unlock('mutex', :tok);
SQL
PGOPTIONS="-c coupon_lock.redlock_servers=$SERVERS" \
    "$CL_PGBIN/pgbench" -n -M extended -c 4 -t 40 -f "$RL/mutex.sql" "$PV_DB" >"$RL/mutex.log" 2>&1
pv_check "4 clients x 40 rounds under Redlock: never two inside at once" \
    test "$(pv_psql -c "SELECT maxseen || '/' || rounds FROM rl_occ")" = 1/160 ||
    { pv_table "SELECT * FROM rl_occ"; tail -n 5 "$RL/mutex.log"; }
pv_check "and no key is left on any server" test "$(on_all EXISTS coupon_lock:mutex)" = "0 0 0 0 0"

# ---- transaction-end release on every server ----
for end in COMMIT ROLLBACK; do
    out=$(q "BEGIN;" "SELECT coupon_lock.redis_xact_lock('xend', '60s') IS NOT NULL AS locked;" \
        "SELECT coupon_lock.hybrid_xact_lock('hend', '60s') AS hybrid;" \
        "\\! for p in $(seq -s ' ' "$PORT" $((PORT + 4))); do redis-cli -p \$p EXISTS coupon_lock:xend coupon_lock:hend; done | tr '\\n' ' ' >$RL/inside" \
        "$end;")
    pv_check "$end: inside the transaction both keys were on all five servers" \
        test "$(cat "$RL/inside")" = "2 2 2 2 2 " || { echo "$out"; cat "$RL/inside"; }
    pv_check "$end: after it, neither key is on any server" \
        test "$(on_all EXISTS coupon_lock:xend coupon_lock:hend)" = "0 0 0 0 0" || echo "$out"
done

# ---- the guard under Redlock ----
pv_psql -c "SELECT coupon_lock.create_batch('redlock', 4, 4)" >/dev/null
c=$(pv_psql -c "SELECT max(first_coupon_id) FROM coupon_lock.batch")
gkey="coupon_lock:$(pv_psql -c "SELECT coupon_lock.guard_key($c)")"
for i in 0 1 2; do rcli "$(srv $i)" SET "$gkey" outsider PX 60000 >/dev/null; done
out=$(q "SET coupon_lock.redis_guard = on;" "SET coupon_lock.redis_guard_wait = '300ms';" \
    "SELECT coupon_lock.coupon_issue($c, 'ann');")
pv_check "an outside holder with the guard key on 3 of 5: the transition is refused (55P03)" \
    grep -q "ERROR:  55P03: could not obtain the guard of coupon $c" <<<"$out" || echo "$out"
pv_check "and the outside holder's keys are untouched" \
    test "$(holding "$gkey" outsider)" = 3
rcli "$(srv 2)" DEL "$gkey" >/dev/null
out=$(q "SET coupon_lock.redis_guard = on;" "SET coupon_lock.redis_guard_wait = '300ms';" \
    "SELECT coupon_lock.coupon_issue($c, 'ann') AS version;")
pv_check "with the key on only 2 of 5, the guard is a majority's: the transition goes through" \
    grep -qx 2 <<<"$out" || echo "$out"
pv_check "and its guard key is gone from the 3 servers it took at commit" \
    test "$(for i in 2 3 4; do rcli "$(srv $i)" EXISTS "$gkey"; done | tr -d '\n')" = 000
rcli "$(srv 0)" DEL "$gkey" >/dev/null; rcli "$(srv 1)" DEL "$gkey" >/dev/null

# ---- NOSCRIPT on one server ----
out=$(q "SELECT coupon_lock.redis_lock('ns', '60s') AS tok \\gset" \
    "SELECT coupon_lock.redis_unlock('ns', :'tok') AS unlocked_before;" \
    "\\! redis-cli -p $(srv 3) SCRIPT FLUSH >/dev/null" \
    "SELECT coupon_lock.redis_lock('ns', '60s') AS tok \\gset" \
    "SELECT coupon_lock.redis_extend('ns', :'tok', '60s') AS extended_after_flush;" \
    "SELECT coupon_lock.redis_unlock('ns', :'tok') AS unlocked_after_flush;")
pv_check "SCRIPT FLUSH on one server: extend and unlock still work (EVAL there only)" \
    test "$(echo $out)" = "t t t" || echo "$out"
pv_check "and the flushed server's key is deleted too" test "$(on_all EXISTS coupon_lock:ns)" = "0 0 0 0 0"

# ---- servers killed: 1 and 2 of 5 still acquire, 3 is class 08 ----
kill_srv 4
out=$(q "SELECT coupon_lock.redis_lock('k1', '60s') IS NOT NULL AS locked;")
pv_check "one of five killed: redis_lock still acquires" grep -qx t <<<"$out" || echo "$out"
out=$(q "BEGIN;" "SELECT coupon_lock.redis_xact_lock('k1x', '60s') IS NOT NULL AS locked;" "COMMIT;")
pv_check "one of five killed: COMMIT releases on the four without a WARNING (a majority confirmed)" \
    bash -c 'test "$1" = t && test "$2" = "0000"' _ "$out" \
    "$(for i in 0 1 2 3; do rcli "$(srv $i)" EXISTS coupon_lock:k1x; done | tr -d '\n')" || echo "$out"
kill_srv 3
out=$(q "SELECT coupon_lock.redis_lock('k2', '60s') AS tok \\gset" "SELECT :'tok' <> '' AS locked;" \
    "SELECT coupon_lock.redis_unlock('k2', :'tok') AS unlocked;")
pv_check "two of five killed: redis_lock still acquires, and unlocks" test "$(echo $out)" = "t t" || echo "$out"
kill_srv 2
t0=$(date +%s%N)
out=$(q "SELECT coupon_lock.redis_lock('k3', '60s');")
ms=$((($(date +%s%N) - t0) / 1000000))
pv_check "three of five killed: class 08 after ${ms} ms (timeouts: 1 s connect + 1 s command)" \
    grep -q "ERROR:  08006: could not reach a majority of the Redlock servers" <<<"$out" || echo "$out"
pv_check "its detail says how many servers answered" \
    grep -q "DETAIL:  2 of 5 servers answered within [0-9]* ms, and 3 are needed" <<<"$out" || echo "$out"
pv_check "and the servers that answered hold no key of it" test "$(rcli "$(srv 0)" EXISTS coupon_lock:k3)$(rcli "$(srv 1)" EXISTS coupon_lock:k3)" = 00
for i in 2 3 4; do start_srv $i; done

# ---- one server paused ----
kill -STOP "$(cat "$(pidfile 1)")"
t0=$(date +%s%N)
out=$(q "SELECT coupon_lock.redis_lock('paused', '60s') AS tok \\gset" "SELECT :'tok' <> '' AS locked;" \
    "SELECT coupon_lock.redis_unlock('paused', :'tok') AS unlocked;")
ms=$((($(date +%s%N) - t0) / 1000000))
pv_check "one server paused (SIGSTOP): lock and unlock decided by the others, ${ms} ms for both" \
    test "$(echo $out)" = "t t" || echo "$out"
# a round ends once the majority decided, so a paused minority leaves a short
# ttl its validity (waiting for the paused server would eat all of it)
out=$(q "SELECT coupon_lock.redis_lock('paused-short', '1s') AS tok \\gset" "SELECT :'tok' <> '' AS locked;" \
    "SELECT coupon_lock.redis_unlock('paused-short', :'tok') AS unlocked;" \
    "SELECT coupon_lock.redis_lock('paused-short', '1s') AS tok \\gset" "SELECT :'tok' <> '' AS locked;" \
    "SELECT coupon_lock.redis_unlock('paused-short', :'tok') AS unlocked;")
pv_check "one server paused: a 1 s lock is still acquired and released, twice in one session" \
    test "$(echo $out)" = "t t t t" || echo "$out"
kill -STOP "$(cat "$(pidfile 2)")"; kill -STOP "$(cat "$(pidfile 3)")"
out=$(q "SET statement_timeout = '300ms';" "SET coupon_lock.redis_command_timeout = '1h';" \
    "SELECT coupon_lock.redis_lock('cancelled', '60s');")
pv_check "three paused and redis_command_timeout 1h: statement_timeout still ends the wait (57014)" \
    grep -q "ERROR:  57014" <<<"$out" || echo "$out"
for i in 1 2 3; do kill -CONT "$(cat "$(pidfile $i)")"; done
sleep 0.5
# the paused server has the SET and the release on two connections: which it
# runs first is its choice (the key then ends by its TTL), so only the others
pv_check "the servers that were not paused hold no key of the lock" \
    test "$(for i in 0 2 3 4; do rcli "$(srv $i)" EXISTS coupon_lock:paused; done | tr -d '\n')" = 0000

# ---- a server restarted empty: the majority still holds the lock ----
out=$(q "SELECT coupon_lock.redis_lock('restart', '60s');")
tok=$(tail -n 1 <<<"$out")
kill_srv 0; start_srv 0
out=$(q "SELECT coupon_lock.redis_lock('restart', '60s') IS NULL AS still_held;")
pv_check "server 0 restarted empty: another session still cannot take the lock" grep -qx t <<<"$out" || echo "$out"
pv_check "the four others keep the holder's token, the restarted one has no key left" \
    test "$(holding coupon_lock:restart "$tok")/$(rcli "$(srv 0)" EXISTS coupon_lock:restart)" = 4/0
out=$(q "SELECT coupon_lock.redis_unlock('restart', '$tok');")
pv_check "the holder's unlock is true (a majority deleted it)" grep -qx t <<<"$out" || echo "$out"

pv_done redlock
