# test/prove/ha_autofailover.sh: part 2 of the ha layer (sourced by ha.sh).
# A pg_auto_failover formation under tmp/ha/af: a monitor and two nodes,
# synchronous replication while both are healthy, health checks lowered so
# that a failover takes seconds.  pg_autoctl runs as postgres with its XDG
# directories under tmp/ha/af and is stopped with `pg_autoctl stop` (or by
# the pids of its pidfile).

AF=$HA/af
AF_URI="postgresql://postgres@127.0.0.1:$N1_PORT,127.0.0.1:$N2_PORT/$DB?target_session_attrs=read-write&connect_timeout=2"

AC_ENV=(env XDG_CONFIG_HOME="$AF/xdg/config" XDG_DATA_HOME="$AF/xdg/data"
        XDG_RUNTIME_DIR="$AF/xdg/run" PG_CONFIG="${PG_CONFIG:-pg_config}")
ac() { cl_as_owner "${AC_ENV[@]}" pg_autoctl "$@"; }
# the monitor's view: "name|reported state|goal state" per node
af_states() {
    "$CL_PGBIN/psql" -X -q -At -h 127.0.0.1 -p "$MON_PORT" -U postgres -d pg_auto_failover \
        -c "SELECT nodename || '|' || reportedstate || '|' || goalstate FROM pgautofailover.node ORDER BY nodename"
}
af_state_is() { af_states 2>/dev/null | grep -qx "$1|$2|$2"; }
af_pidfile() { find "$AF/xdg/run" -name pg_autoctl.pid -path "*/$1/*" 2>/dev/null | head -n 1; }
# pg_autoctl's own processes of a node: the main pid and its services
af_pids() {
    local f
    f=$(af_pidfile "$1")
    [ -n "$f" ] || return 0
    head -n 1 "$f"
    sed -nE 's/^([0-9]+) [a-z-]+$/\1/p' "$f"
}
# pg_autoctl run in a session of its own (setsid): signals meant for the
# test's process group do not reach it; it waits until the create command's
# processes are gone.
af_gone() {
    local p
    for p in $(af_pids "$1"); do kill -0 "$p" 2>/dev/null && return 1; done
    return 0
}
# `pg_autoctl create` returns while its services still stop postgres, and a
# `pg_autoctl run` started meanwhile gets their SIGTERM: wait for postgres.
af_created() { [ ! -f "$AF/$1/postmaster.pid" ] && af_gone "$1"; }
af_run() {
    local owner=()
    [ "$(id -u)" = 0 ] && owner=(runuser -u postgres --)
    wait_for 30 af_gone "$1"
    setsid "${owner[@]}" "${AC_ENV[@]}" pg_autoctl run --pgdata "$AF/$1" >>"$AF/$1.log" 2>&1 </dev/null &
}
af_stop() {
    local pids
    pids=$(af_pids "$1")
    [ -n "$pids" ] || return 0
    ac stop --pgdata "$AF/$1" >/dev/null 2>&1
    # shellcheck disable=SC2086
    wait_for 30 af_gone "$1" || kill -KILL $pids 2>/dev/null
    [ -f "$AF/$1/postmaster.pid" ] && pg_ctl_as -D "$AF/$1" -m immediate -w stop >/dev/null 2>&1
    return 0
}
af_stop_all() { af_stop node1; af_stop node2; af_stop monitor; }

af_create_node() {
    ac create postgres --pgdata "$AF/$1" --pgport "$2" --pghost 127.0.0.1 --listen 127.0.0.1 \
        --hostname 127.0.0.1 --name "$1" --dbname "$DB" --auth trust --no-ssl --pgctl "$CL_PGBIN/pg_ctl" \
        --monitor "postgres://autoctl_node@127.0.0.1:$MON_PORT/pg_auto_failover?sslmode=disable" \
        >"$AF/$1.create.log" 2>&1 || { tail -n 20 "$AF/$1.create.log"; return 1; }
    wait_for 60 af_created "$1" && sleep 1
}

af_setup() {
    local s
    rm -rf "$AF"
    mkdir -p "$AF/xdg/config" "$AF/xdg/data" "$AF/xdg/run"
    chmod 700 "$AF/xdg/run"
    [ "$(id -u)" = 0 ] && chown -R postgres: "$AF"
    ac create monitor --pgdata "$AF/monitor" --pgport "$MON_PORT" --hostname 127.0.0.1 --listen 127.0.0.1 \
        --auth trust --no-ssl --pgctl "$CL_PGBIN/pg_ctl" >"$AF/monitor.create.log" 2>&1 ||
        { tail -n 20 "$AF/monitor.create.log"; return 1; }
    wait_for 60 af_created monitor && sleep 1
    af_run monitor
    wait_for 60 "$CL_PGBIN/psql" -X -h 127.0.0.1 -p "$MON_PORT" -U postgres -d pg_auto_failover -c "SELECT 1" || return 1
    # seconds, not the default 20-30: check every second, one retry, a node
    # unhealthy after 2 s, a primary that does not answer demoted after 3 s
    for s in "health_check_period = 1000" "health_check_timeout = 1000" "health_check_max_retries = 1" \
             "health_check_retry_delay = 500" "node_considered_unhealthy_timeout = 2000" \
             "primary_demote_timeout = 3000" "startup_grace_period = 2000"; do
        "$CL_PGBIN/psql" -X -q -h 127.0.0.1 -p "$MON_PORT" -U postgres -d pg_auto_failover \
            -c "ALTER SYSTEM SET pgautofailover.$s" || return 1
    done
    "$CL_PGBIN/psql" -X -q -h 127.0.0.1 -p "$MON_PORT" -U postgres -d pg_auto_failover -c "SELECT pg_reload_conf()" >/dev/null
    af_create_node node1 "$N1_PORT" || return 1
    # pg_auto_failover sizes memory for a dedicated machine: keep it small,
    # and preload coupon_lock with the sweeper (node2 copies this file)
    cat >>"$AF/node1/postgresql.conf" <<CONF
# coupon_lock's ha test layer
shared_buffers = '64MB'
maintenance_work_mem = '64MB'
wal_keep_size = '256MB'
shared_preload_libraries = 'pg_stat_statements,coupon_lock'
coupon_lock.sweep_databases = '$DB'
coupon_lock.sweep_interval = '200ms'
coupon_lock.redis_host = '127.0.0.1'
coupon_lock.redis_port = ${CL_REDIS_PORT:-6489}
CONF
    af_run node1
    wait_for 60 af_state_is node1 single || { af_states; return 1; }
    wait_for 60 q_is "$N1_PORT" t "SELECT NOT pg_is_in_recovery()" || { echo "node1 does not answer"; return 1; }
    PGHOST=127.0.0.1 PGPORT=$N1_PORT PV_DB=$DB pv_psql -c "CREATE EXTENSION coupon_lock" >/dev/null &&
        PGHOST=127.0.0.1 PGPORT=$N1_PORT PV_DB=$DB pv_psql -v users=200 -v run_seconds="$RUN" \
            -f "$PV_DIR/workload.sql" >/dev/null || return 1
    af_create_node node2 "$N2_PORT" || return 1
    af_run node2
    wait_for 120 af_state_is node2 secondary || { af_states; return 1; }
    wait_for 30 af_state_is node1 primary || { af_states; return 1; }
}

# lease_client NAME FILE: until the deadline, one grant and its release per
# autocommit statement through the URI; every token acknowledged goes to FILE
# (so each line is a new grant, none a renewal).
lease_client() {
    local name=$1 file=$2 deadline=$(( $(date +%s) + RUN )) i=0 t
    while [ "$(date +%s)" -lt "$deadline" ]; do
        i=$((i + 1))
        t=$("$CL_PGBIN/psql" -X -q -At "$AF_URI" \
              -c "SELECT coupon_lock.lease_acquire('$name', 'h$i', '1 minute') || ' ' || coupon_lock.lease_release('$name', 'h$i')" 2>/dev/null) &&
            [ -n "$t" ] && echo "${t% *}" >>"$file"
        [ -n "$t" ] || sleep 0.1
    done
}

af_part() {
    local acks=$AF/acks.txt client_pid lease_pids=() t0 t1 probe primary_port kill_pid pids
    trap 'af_stop_all' EXIT
    af_setup || { pv_fail "pg_auto_failover formation setup"; af_states; af_stop_all; trap - EXIT; return; }
    pv_check "synchronous replication: node1 is primary, node2 a $(hq "$N1_PORT" "SELECT sync_state FROM pg_stat_replication") standby (synchronous_standby_names = $(hq "$N1_PORT" "SHOW synchronous_standby_names"))" \
        test -n "$(hq "$N1_PORT" "SELECT 1 FROM pg_stat_replication WHERE sync_state IN ('sync', 'quorum')")"

    rm -f "$acks" "$AF"/lease_*.txt
    PGHOST=127.0.0.1,127.0.0.1 PGPORT=$N1_PORT,$N2_PORT PGTARGETSESSIONATTRS=read-write PGCONNECT_TIMEOUT=2 \
        python3 "$PV_DIR/crash_client.py" "$DB" 6 "$RUN" "$acks" >"$AF/client.out" 2>&1 &
    client_pid=$!
    for i in 1 2; do lease_client "ha-lease-$i" "$AF/lease_$i.txt" & lease_pids+=($!); done
    sleep $((RUN * 2 / 5))

    # The primary's machine is gone: pg_autoctl first (so nothing restarts
    # postgres), then SIGKILL of the postmaster by its pid.
    primary_port=$(hq "$N1_PORT" "SELECT inet_server_port() WHERE NOT pg_is_in_recovery()")
    pv_check "node1 is the primary before the kill" test "$primary_port" = "$N1_PORT"
    pids=$(af_pids node1)
    kill_pid=$(head -n 1 "$AF/node1/postmaster.pid")
    local before
    before=$(wc -l <"$acks")
    kill -KILL $pids 2>/dev/null
    kill -KILL "$kill_pid"
    t0=$(now_ms)
    echo "SIGKILL of node1's postmaster (pid $kill_pid) and its pg_autoctl after $before acknowledged transitions"
    probe=""
    while [ $(( $(now_ms) - t0 )) -lt 120000 ]; do
        probe=$("$CL_PGBIN/psql" -X -q -At "$AF_URI" \
                  -c "SELECT inet_server_port() || ' ' || coupon_lock.lease_acquire('ha-probe', 'probe-' || clock_timestamp(), '1 millisecond')" 2>/dev/null) &&
            [ -n "$probe" ] && break
        probe=""; sleep 0.1
    done
    t1=$(now_ms)
    if [ -n "$probe" ]; then
        HA_FAILOVER_MS=$((t1 - t0))
        pv_ok "failover: the first write after the kill was acknowledged $HA_FAILOVER_MS ms later, by port ${probe% *} (token ${probe#* })"
    else
        pv_fail "no write acknowledged within 120 s of the kill"; af_states
    fi
    pv_check "the new primary is node2" test "${probe% *}" = "$N2_PORT"
    wait "$client_pid"; wait "${lease_pids[@]}"
    echo "clients: $(cat "$AF/client.out")"
    af_states | sed 's/^/  monitor: /'

    # every acknowledged transition is on the new primary
    local n missing lost planted after
    after=$(( $(wc -l <"$acks") - before ))
    pv_check "clients were served before the kill ($before) and after the failover ($after)" \
        test "$before" -gt 0 -a "$after" -gt 0
    IFS='|' read -r n missing lost < <(hq "$N2_PORT" "CREATE TEMP TABLE ack (op text, coupon_id bigint, version bigint)" \
        "\\copy ack FROM '$acks' WITH (DELIMITER ' ')" "\\i $PV_DIR/acks.sql" 2>&1 | tail -n 1)
    pv_check "all $n acknowledged transitions are on the new primary (${missing:-?} lost${lost:+: $lost})" \
        test "${missing:-x}" = 0 -a "${n:-0}" -gt 0
    planted=$(hq "$N2_PORT" "CREATE TEMP TABLE ack (op text, coupon_id bigint, version bigint)" \
        "INSERT INTO ack VALUES ('freeze', 1, 1000000), ('claim', -1, NULL)" "\\i $PV_DIR/acks.sql" | cut -d'|' -f2)
    pv_check "the acknowledgement check catches transitions missing from the ledger" test "$planted" = 2
    PGHOST=127.0.0.1 PGPORT=$N2_PORT PV_DB=$DB pv_sql_checks "$PV_DIR/invariants.sql"
    pv_check "no unexpected SQLSTATE in the workload" \
        test "$(hq "$N2_PORT" "SELECT count(*) FROM prove.unexpected")" = 0

    # lease tokens only rose, across the failover, and none was reused
    local f total epochs
    for f in "$AF"/lease_*.txt; do
        total=$(wc -l <"$f")
        epochs=$(awk '{print int($1 / 4294967296)}' "$f" | sort -u | tr '\n' ' ')
        pv_check "$(basename "$f" .txt): $total tokens acknowledged, each above the one before (epochs: $epochs)" \
            awk 'NR > 1 && $1 <= prev { bad = 1 } { prev = $1 } END { exit bad || NR < 2 }' "$f"
        pv_check "$(basename "$f" .txt): the token after the failover is above every token before it" \
            test "$(awk '{print int($1 / 4294967296)}' "$f" | sort -u | wc -l)" -ge 2
    done
    pv_check "token reuse: 0 (no token acknowledged twice for one lease)" \
        test "$(for f in "$AF"/lease_*.txt; do sort "$f" | uniq -d; done | wc -l)" = 0
    # the sweeper resumed on the new primary
    local r1 r2
    r1=$(hq "$N2_PORT" "SELECT rounds FROM coupon_lock.sweeper_stats"); sleep 1
    r2=$(hq "$N2_PORT" "SELECT rounds FROM coupon_lock.sweeper_stats")
    hq "$N2_PORT" "SELECT * FROM coupon_lock.sweeper_stats" | sed 's/^/  sweeper on the new primary: /'
    pv_check "the sweeper runs on the new primary (rounds $r1 -> $r2 in 1 s)" test "${r2:-0}" -gt "${r1:-0}"
    pv_check "the sweeper had no failed round on the new primary" \
        q_is "$N2_PORT" 0 "SELECT errors FROM coupon_lock.sweeper_stats"

    # the old node comes back and rejoins as a standby
    local t_rejoin
    t_rejoin=$(now_ms)
    af_run node1
    if wait_for 120 af_state_is node1 secondary; then
        pv_ok "node1 rejoined as a standby $(( $(now_ms) - t_rejoin )) ms after its pg_autoctl was started again"
    else
        pv_fail "node1 did not rejoin as a standby"; af_states
    fi
    pv_check "node1 is in recovery" q_is "$N1_PORT" t "SELECT pg_is_in_recovery()"
    local lsn
    lsn=$(hq "$N2_PORT" "SELECT pg_current_wal_lsn()")
    pv_check "node1 replays the new primary's WAL" \
        wait_for 30 q_is "$N1_PORT" t "SELECT pg_last_wal_replay_lsn() >= '$lsn'"
    pv_check "the sweeper waits on node1, now a standby" \
        q_is "$N1_PORT" standby "SELECT state FROM coupon_lock.sweeper_stats"
    af_stop_all
    trap - EXIT
}

if command -v pg_autoctl >/dev/null; then
    af_part
else
    pv_fail "pg_autoctl is missing (package postgresql-15-auto-failover)"
fi
