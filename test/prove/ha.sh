#!/usr/bin/env bash
# High availability (issue 11; issue 10 item 14).  Clusters of this layer's
# own under tmp/ha, all on 127.0.0.1:
#  1. Streaming replication, by hand (primary CL_HA_PRIMARY_PGPORT, standby
#     CL_HA_STANDBY_PGPORT):
#     a. lease grants under synchronous_commit = off survive an immediate
#        shutdown (a plain async insert after them is lost: the control);
#     b. on the hot standby every function of pg_proc either works or fails
#        with 25006 and the hint naming target_session_attrs=read-write;
#        lease_check, advisory locks, lock_stats answer; the sweeper waits;
#     c. a lagging asynchronous standby (its WAL receiver stopped before the
#        last grants) is promoted: its tokens are above every token of the
#        old primary, lease_check is false there for the grants it missed,
#        and the sweeper starts within a few intervals of the promotion.
#  2. pg_auto_failover (monitor CL_HA_MONITOR_PGPORT, nodes CL_HA_NODE1_PGPORT
#     and CL_HA_NODE2_PGPORT, synchronous replication): coupon and lease
#     traffic from several clients through a multi-host URI with
#     target_session_attrs=read-write; SIGKILL of the primary's postmaster
#     (and of its pg_autoctl, so that nothing restarts it: the machine is
#     gone); then every acknowledged transition is on the new primary, the
#     ledger replays to the tables, lease tokens only rose, the sweeper
#     resumed there, and the old node rejoins as a standby.  Reports the
#     time from the kill to the first acknowledged write.
# CL_HA_SECONDS (default 20) is the length of the traffic in part 2;
# CL_HA_PARTS=stream|autofailover runs one part only.
set -u
. "$(dirname "$0")/common.sh"
export CL_PGBIN
HA=$CL_ROOT/tmp/ha
SP_PORT=${CL_HA_PRIMARY_PGPORT:-55068}
SS_PORT=${CL_HA_STANDBY_PGPORT:-55069}
MON_PORT=${CL_HA_MONITOR_PGPORT:-55065}
N1_PORT=${CL_HA_NODE1_PGPORT:-55066}
N2_PORT=${CL_HA_NODE2_PGPORT:-55067}
RUN=${CL_HA_SECONDS:-20}
DB=ha_db
mkdir -p "$HA"
[ "$(id -u)" = 0 ] && chown postgres: "$HA"

# hq PORT SQL...: psql on $DB of the server on PORT, one value per line.
hq() {
    local port=$1; shift
    local args=() q
    for q in "$@"; do args+=(-c "$q"); done
    "$CL_PGBIN/psql" -X -q -At -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$port" -U postgres -d "$DB" "${args[@]}"
}
# wait_for SECONDS COMMAND...: true once COMMAND succeeds, polled every 0.1 s.
wait_for() {
    local n=$(($1 * 10)); shift
    while [ "$n" -gt 0 ]; do
        "$@" >/dev/null 2>&1 && return 0
        sleep 0.1; n=$((n - 1))
    done
    return 1
}
# q_is PORT EXPECTED SQL: the query's answer is EXPECTED (for wait_for).
q_is() { [ "$(hq "$1" "$3" 2>/dev/null)" = "$2" ]; }
now_ms() { date +%s%3N; }
pg_ctl_as() { cl_as_owner "$CL_PGBIN/pg_ctl" "$@"; }

# ---- 1. streaming replication by hand ----

stream_setup() {
    rm -rf "$HA/sp" "$HA/ss"
    ( cl_pg_start ha/sp "$SP_PORT" ) || return 1
    "$CL_PGBIN/psql" -X -q -h 127.0.0.1 -p "$SP_PORT" -U postgres -d postgres -v ON_ERROR_STOP=1 \
        -c "ALTER SYSTEM SET coupon_lock.sweep_databases = '$DB, ha_other'" \
        -c "ALTER SYSTEM SET coupon_lock.sweep_interval = '200ms'" \
        -c "ALTER SYSTEM SET coupon_lock.redis_host = '127.0.0.1'" \
        -c "ALTER SYSTEM SET coupon_lock.redis_port = ${CL_REDIS_PORT:-6489}" \
        -c "ALTER SYSTEM SET wal_writer_delay = '10s'" \
        -c "CREATE DATABASE $DB" >/dev/null || return 1
    pg_ctl_as -D "$HA/sp/pg" -l "$HA/sp/postgresql.log" -w -t 60 restart >/dev/null || return 1
    hq "$SP_PORT" "CREATE EXTENSION coupon_lock" >/dev/null
}

# The sweeper and the databases it is told about: one that does not exist
# yet, then exists without the extension, then with it, then is dropped.
sweeper_databases() {
    local mark state="SELECT state FROM coupon_lock.sweeper_stats WHERE database = 'ha_other'" pg
    pg=("$CL_PGBIN/psql" -X -q -h 127.0.0.1 -p "$SP_PORT" -U postgres -v ON_ERROR_STOP=1)
    mark=0   # the whole log since the restart of stream_setup
    pv_check "sweeper: a listed database that does not exist is skipped" wait_for 10 q_is "$SP_PORT" "no database" "$state"
    "${pg[@]}" -d postgres -c "CREATE DATABASE ha_other" >/dev/null
    pv_check "sweeper: a database without the extension is skipped" wait_for 10 q_is "$SP_PORT" "no extension" "$state"
    "${pg[@]}" -d ha_other -c "CREATE EXTENSION coupon_lock" >/dev/null
    pv_check "sweeper: it sweeps once the extension is there" wait_for 10 q_is "$SP_PORT" ok "$state"
    pv_check "sweeper: DROP DATABASE is not blocked by it" \
        "${pg[@]}" -d postgres -c "SET lock_timeout = '10s'" -c "DROP DATABASE ha_other"
    pv_check "sweeper: a dropped database is skipped again" wait_for 10 q_is "$SP_PORT" "no database" "$state"
    sleep 1
    local log
    log=$(pv_log_since "$mark" ha/sp)
    # (a round worker started just before the DROP may fail to connect, once)
    pv_check "sweeper: each change of ha_other was logged once ($(grep -c 'coupon_lock sweeper:.*"ha_other"' <<<"$log") lines), at most the one round at the DROP failed ($(grep -c 'coupon_lock sweeper" .*exited with exit code' <<<"$log"))" \
        test "$(grep -c 'coupon_lock sweeper:.*"ha_other"' <<<"$log")" = 3 -a "$(grep -c 'coupon_lock sweeper" .*exited with exit code' <<<"$log")" -le 1
    pv_check "sweeper: no failed round in $DB" q_is "$SP_PORT" 0 "SELECT errors FROM coupon_lock.sweeper_stats WHERE database = '$DB'"
}

# a. Grants acknowledged under synchronous_commit = off, then a crash.
# async_then_crash FILE SQL...: each statement in autocommit under
# synchronous_commit = off (what psql prints was acknowledged, into FILE),
# then an immediate shutdown (WAL replay at restart).  The walwriter waits
# 10 s (wal_writer_delay): the last async commits are not on disk yet.
async_then_crash() {
    local file=$1; shift
    printf '%s\n' "$@" | PGOPTIONS='-c synchronous_commit=off' "$CL_PGBIN/psql" -X -q -At \
        -h 127.0.0.1 -p "$SP_PORT" -U postgres -d "$DB" >"$file"
    pg_ctl_as -D "$HA/sp/pg" -m immediate -w stop >/dev/null
    pg_ctl_as -D "$HA/sp/pg" -l "$HA/sp/postgresql.log" -o "-p $SP_PORT" -w -t 60 start >/dev/null
}
lease_durability() {
    local acks=$HA/lease_acks.txt n last durable ctl_acked ctl_kept next i stmts=()
    hq "$SP_PORT" "CREATE TABLE ctl (i int)" || return
    # the control: plain inserts are lost (the crash is real)
    for i in $(seq 100); do stmts+=("INSERT INTO ctl VALUES ($i) RETURNING i;"); done
    async_then_crash "$HA/ctl_acks.txt" "${stmts[@]}" || { pv_fail "primary did not restart"; return; }
    ctl_acked=$(grep -c . "$HA/ctl_acks.txt"); ctl_kept=$(hq "$SP_PORT" "SELECT count(*) FROM ctl")
    pv_check "the control loses async commits in a crash ($ctl_kept of $ctl_acked acknowledged inserts kept)" \
        test "${ctl_kept:-x}" -lt "${ctl_acked:-0}"
    # 200 grants, each released in the same statement, the last ones the
    # tail of the WAL at the crash
    stmts=()
    for i in $(seq 200); do
        stmts+=("SELECT coupon_lock.lease_acquire('durable', 'h$i', '1 hour'), coupon_lock.lease_release('durable', 'h$i');")
    done
    async_then_crash "$acks" "${stmts[@]}" || { pv_fail "primary did not restart"; return; }
    n=$(grep -c '|t$' "$acks"); last=$(grep '|t$' "$acks" | tail -n 1 | cut -d'|' -f1)
    durable=$(hq "$SP_PORT" "SELECT fence FROM coupon_lock.lease WHERE name = 'durable'")
    echo "synchronous_commit = off: $n grants acknowledged (last token $last), after the crash the row has ${durable:-none}"
    pv_check "every acknowledged lease grant survived the crash ($n acknowledged, $(( ${last:-0} - ${durable:-0} )) lost)" \
        test "$n" = 200 -a "${durable:-0}" -ge "${last:-1}"
    next=$(hq "$SP_PORT" "SELECT coupon_lock.lease_acquire('durable', 'after', '1 hour')")
    pv_check "the next grant after the crash is a new token ($next > $last)" test "${next:-0}" -gt "${last:-0}"
}

standby_setup() {
    mkdir -p "$HA/ss"; [ "$(id -u)" = 0 ] && chown postgres: "$HA/ss"
    cl_as_owner "$CL_PGBIN/pg_basebackup" -h 127.0.0.1 -p "$SP_PORT" -U postgres -D "$HA/ss/pg" -R -X stream \
        >"$HA/ss/basebackup.log" 2>&1 || { cat "$HA/ss/basebackup.log"; return 1; }
    ( cl_pg_start ha/ss "$SS_PORT" ) || return 1
    wait_for 30 q_is "$SS_PORT" t "SELECT pg_is_in_recovery()"
}

# the standby has replayed everything the primary wrote so far
caught_up() {
    local lsn
    lsn=$(hq "$SP_PORT" "SELECT pg_current_wal_lsn()")
    wait_for 30 q_is "$SS_PORT" t "SELECT pg_last_wal_replay_lsn() >= '$lsn'"
}

# b. Every function on the hot standby.
standby_functions() {
    "$CL_PGBIN/psql" -X -q -h 127.0.0.1 -p "$SP_PORT" -U postgres -d "$DB" -v ON_ERROR_STOP=1 -f "$PV_DIR/ha_standby.sql" >/dev/null ||
        { pv_fail "ha_standby.sql"; return; }
    hq "$SP_PORT" "SELECT coupon_lock.create_batch('ha', 10)" \
        "SELECT coupon_lock.coupon_claim(1, 'u1')" >/dev/null
    local token
    token=$(hq "$SP_PORT" "SELECT coupon_lock.lease_acquire('on-standby', 'w1', '1 hour')")
    caught_up || { pv_fail "the standby did not catch up"; return; }
    local out
    out=$(hq "$SS_PORT" "SELECT fn, coalesce(code, 'ok'), coalesce(message, ''), coalesce(hint, '') FROM prove_ha.call_all()")
    echo "$out" | sed 's/^/  standby: /'
    local total writers readers bad
    total=$(grep -c . <<<"$out")
    writers=$(grep -c '|25006|.*|.*target_session_attrs=read-write' <<<"$out")
    readers=$(grep -c '|ok|' <<<"$out")
    bad=$(grep -vE '\|ok\|\||\|25006\|cannot change coupon_lock data on a hot standby\|.*target_session_attrs=read-write' <<<"$out" | cut -d'|' -f1-2 | tr '\n' ' ')
    pv_check "on the standby each of the $total functions of pg_proc works ($readers) or fails with 25006 and the target_session_attrs hint ($writers)${bad:+; others: $bad}" \
        test -z "$bad" -a "$total" -gt 20
    # what must work there, and what must not
    local f
    for f in 'lease_check(text,bigint)' 'lock_stats()' 'advisory_lock(text,interval)' 'advisory_xact_lock(text,interval)' \
             'redis_lock(text,interval,interval)' 'sweeper_stats()' 'advisory_lock_id(text)'; do
        pv_check "on the standby $f works" grep -qF "coupon_lock.$f|ok|" <<<"$out"
    done
    for f in 'lease_acquire(' 'lease_renew(' 'lease_release(' 'coupon_claim(' 'coupon_issue(' 'coupon_freeze(' \
             'coupon_unfreeze(' 'coupon_redeem(' 'coupon_revoke(' 'create_batch(' 'release_expired_freezes(' 'expire_coupons('; do
        pv_check "on the standby ${f%(} fails with 25006 and the hint" \
            grep -q "^coupon_lock.$f[^|]*|25006|.*target_session_attrs=read-write" <<<"$out"
    done
    pv_check "on the standby lease_check is true for the current token" \
        test "$(hq "$SS_PORT" "SELECT coupon_lock.lease_check('on-standby', $token)")" = t
    pv_check "on the standby the sweeper waits (no round)" \
        test "$(hq "$SS_PORT" "SELECT state || ' ' || rounds FROM coupon_lock.sweeper_stats WHERE database = '$DB'")" = "standby 0"
}

# c. The standby misses the last grants, then is promoted.
lagging_promotion() {
    local t_old t_missed t_new row_fence before_promote coupon
    # a freeze that lapses while the standby is cut off: the sweeper of the
    # promoted node must release it
    coupon=$(hq "$SP_PORT" "SELECT coupon_lock.coupon_claim(1, 'u2')")
    t_old=$(hq "$SP_PORT" "SELECT coupon_lock.lease_acquire('job', 'w1', '1 second')")
    caught_up || { pv_fail "the standby did not catch up"; return; }
    # cut the standby off: no WAL receiver from here on
    "$CL_PGBIN/psql" -X -q -h 127.0.0.1 -p "$SS_PORT" -U postgres -d postgres \
        -c "ALTER SYSTEM SET primary_conninfo = ''" -c "SELECT pg_reload_conf()" >/dev/null
    wait_for 30 q_is "$SP_PORT" 0 "SELECT count(*) FROM pg_stat_replication" ||
        { pv_fail "the standby's WAL receiver did not stop"; return; }
    # the old primary goes on granting; its sweeper keeps releasing
    sleep 1.1   # w1's lease runs out
    t_missed=$(hq "$SP_PORT" "SELECT coupon_lock.lease_acquire('job', 'w2', '1 hour')")
    hq "$SS_PORT" "SELECT coupon_lock.coupon_freeze($coupon, 'u2', 'o1', NULL, '1 second')" >/dev/null 2>&1 &&
        pv_fail "a freeze on the standby should fail"
    row_fence=$(hq "$SS_PORT" "SELECT fence FROM coupon_lock.lease WHERE name = 'job'")
    echo "old primary: job -> $t_old (w1), then $t_missed (w2), which the standby never received (it has $row_fence)"
    pv_check "the scenario is real: the standby's row plus one is the old primary's missed token (1.0's rule would reuse it)" \
        test "$((row_fence + 1))" = "$t_missed"
    before_promote=$(now_ms)
    pg_ctl_as -D "$HA/ss/pg" -w -t 60 promote >/dev/null || { pv_fail "promote"; return; }
    if wait_for 10 q_is "$SS_PORT" t "SELECT rounds > 0 FROM coupon_lock.sweeper_stats WHERE database = '$DB'"; then
        pv_ok "the sweeper's first round on the promoted node ended $(( $(now_ms) - before_promote )) ms after pg_ctl promote began (interval 200 ms)"
    else
        pv_fail "no sweeper round on the promoted node within 10 s"
    fi
    t_new=$(hq "$SS_PORT" "SELECT coupon_lock.lease_acquire('job', 'w3', '1 hour')")
    echo "promoted standby: job -> $t_new (w3), epoch $((${t_new:-0} >> 32)); pg_control_checkpoint() says timeline $(hq "$SS_PORT" "SELECT timeline_id FROM pg_control_checkpoint()")"
    pv_check "a token of the promoted node is above every token of the old primary ($t_new > $t_missed)" \
        test "${t_new:-0}" -gt "$t_missed"
    pv_check "the promoted node's token carries the new epoch ($((t_new >> 32)) > $((t_missed >> 32)))" \
        test "$((t_new >> 32))" -gt "$((t_missed >> 32))"
    pv_check "on the promoted node lease_check is false for the old primary's missed grant" \
        test "$(hq "$SS_PORT" "SELECT coupon_lock.lease_check('job', $t_missed)")" = f
    pv_check "on the old primary lease_check is false for the promoted node's token" \
        test "$(hq "$SP_PORT" "SELECT coupon_lock.lease_check('job', $t_new)")" = f
    # the sweeper: freeze on the new primary with a short ttl, see it released
    hq "$SS_PORT" "SELECT coupon_lock.coupon_freeze($coupon, 'u2', 'o1', NULL, '300 ms')" >/dev/null
    if wait_for 20 q_is "$SS_PORT" issued "SELECT state FROM coupon_lock.coupon WHERE coupon_id = $coupon"; then
        pv_ok "the promoted node's sweeper released a lapsed freeze (ttl 300 ms)"
    else
        pv_fail "the promoted node's sweeper did not release the lapsed freeze"
    fi
    pv_check "the release is a ledger row (op release)" \
        test "$(hq "$SS_PORT" "SELECT op FROM coupon_lock.coupon_event WHERE coupon_id = $coupon ORDER BY event_id DESC LIMIT 1")" = release
    hq "$SS_PORT" "SELECT * FROM coupon_lock.sweeper_stats" | sed 's/^/  sweeper on the promoted node: /'
}

stream_part() {
    trap 'cl_pg_stop ha/ss; cl_pg_stop ha/sp' EXIT
    stream_setup || { pv_fail "streaming primary setup"; return; }
    sweeper_databases
    lease_durability
    standby_setup || { pv_fail "streaming standby setup"; return; }
    standby_functions
    lagging_promotion
    cl_pg_stop ha/ss; cl_pg_stop ha/sp
    trap - EXIT
}

# CL_HA_PARTS=stream or =autofailover runs one part only (while working on it)
case ${CL_HA_PARTS:-all} in all|stream) stream_part ;; esac
case ${CL_HA_PARTS:-all} in all|autofailover) . "$PV_DIR/ha_autofailover.sh" ;; esac
pv_done ha
