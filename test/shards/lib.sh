# test/shards/lib.sh: a router database and four shard databases over two
# PostgreSQL clusters of their own, for the shards layer (test/shards/run.sh),
# test/demo.sh shards and bench/shards.sh.  Source it after test/lib.sh.
#
#   cluster A (CL_SHARDS_PGPORT_A, default 55075): cl_router, cl_shard1, cl_shard2
#   cluster B (CL_SHARDS_PGPORT_B, default 55076): cl_shard3, cl_shard4
#   8 partitions: p0 p4 -> cl_shard1, p1 p5 -> cl_shard2, p2 p6 -> cl_shard3, p3 p7 -> cl_shard4
#
# NAME (first argument of sh_start) names the folders under tmp/, so the
# demo's clusters never meet the test layer's.

SH_PORT_A=${CL_SHARDS_PGPORT_A:-55075}
SH_PORT_B=${CL_SHARDS_PGPORT_B:-55076}
SH_NAME=${SH_NAME:-shards}
SH_SHARDS="cl_shard1:A cl_shard2:A cl_shard3:B cl_shard4:B"

sh_port() { if [ "$1" = A ]; then echo "$SH_PORT_A"; else echo "$SH_PORT_B"; fi; }

# psql on a database of cluster A or B: sh_psql A|B DB [psql args]
sh_psql() {
    local port; port=$(sh_port "$1")
    "$CL_PGBIN/psql" -X -q -At -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$port" -U postgres -d "$2" "${@:3}"
}
# psql on the router
sh_router() { sh_psql A cl_router "$@"; }

# Connections: a router backend talks to up to every shard at once.  The
# sweeper of cluster A runs router_reconcile() in the router database every
# second (docs/scaling.md), as a deployment would set it up.
sh_configure() {
    local c=$1
    sh_psql "$c" postgres -c "ALTER SYSTEM SET max_connections = 300" >/dev/null
    if [ "$c" = A ]; then
        sh_psql A postgres -c "ALTER SYSTEM SET coupon_lock.sweep_databases = 'cl_router'" \
                           -c "ALTER SYSTEM SET coupon_lock.reconcile_interval = '1s'" >/dev/null
    fi
}

# Starts both clusters (initdb on first use) with room for many connections.
sh_start() {
    local c name
    for c in A B; do
        name=${SH_NAME}_$(echo "$c" | tr AB ab)
        cl_pg_start "$name" "$(sh_port "$c")"
        if [ "$(sh_psql "$c" postgres -c 'SHOW max_connections')" != 300 ] ||
           { [ "$c" = A ] && [ "$(sh_psql A postgres -c 'SHOW coupon_lock.sweep_databases')" != cl_router ]; }; then
            sh_configure "$c"
            cl_as_owner "$CL_PGBIN/pg_ctl" -D "$CL_ROOT/tmp/$name/pg" -w -t 60 restart >/dev/null ||
                cl_die "cluster $c did not restart"
        fi
    done
}

sh_stop() { cl_pg_stop "${SH_NAME}_a"; cl_pg_stop "${SH_NAME}_b"; }
sh_stop_cluster()  { cl_pg_stop "${SH_NAME}_$(echo "$1" | tr AB ab)"; }
sh_start_cluster() { cl_pg_start "${SH_NAME}_$(echo "$1" | tr AB ab)" "$(sh_port "$1")"; }

# The connection string of a shard, with the timeouts docs/scaling.md
# recommends: a down shard fails a call within connect_timeout, an
# unreachable host within tcp_user_timeout (data not acknowledged) or the
# keepalives (an idle wait), a long statement within statement_timeout (on
# the shard).  The server's query_timeout (seconds) ends PL/Proxy's wait
# after a cancel of the router session.
sh_connstr() {
    local db=${1%%:*} c=${1##*:}
    echo "host=127.0.0.1 port=$(sh_port "$c") dbname=$db connect_timeout=2 keepalives_idle=2 keepalives_interval=1 keepalives_count=2 tcp_user_timeout=2000 options=''-c statement_timeout=${SH_STATEMENT_TIMEOUT:-20s}''"
}

# Fresh databases, set up exactly as shared/API.md shows.
sh_fresh() {
    local s db c opts="" i=0 n
    sh_psql A postgres -c "DROP DATABASE IF EXISTS cl_router WITH (FORCE)" -c "CREATE DATABASE cl_router" >/dev/null
    for s in $SH_SHARDS; do
        db=${s%%:*}; c=${s##*:}
        sh_psql "$c" postgres -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" -c "CREATE DATABASE $db" >/dev/null
        sh_psql "$c" "$db" -c "CREATE EXTENSION coupon_lock" >/dev/null
    done
    set -- $SH_SHARDS
    n=$#
    for i in 0 1 2 3 4 5 6 7; do
        eval "s=\${$((i % n + 1))}"
        opts="$opts${opts:+, }p$i '$(sh_connstr "$s")'"
    done
    opts="$opts, query_timeout '${SH_QUERY_TIMEOUT:-10}'"
    sh_router >/dev/null <<SQL
SET client_min_messages = warning;
CREATE EXTENSION coupon_lock_router CASCADE;
CREATE SERVER coupon_lock_shards FOREIGN DATA WRAPPER plproxy OPTIONS ($opts);
CREATE USER MAPPING FOR PUBLIC SERVER coupon_lock_shards OPTIONS (user 'postgres');
SELECT coupon_lock.router_init();
SQL
}

# Runs SQL on every shard database: sh_each_shard SQL -> "db|result" lines
sh_each_shard() {
    local s
    for s in $SH_SHARDS; do
        sh_psql "${s##*:}" "${s%%:*}" -c "$1" | sed "s/^/${s%%:*}|/"
    done
}
