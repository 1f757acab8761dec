# test/lib.sh: shared by test/demo.sh, test/test.sh and the benchmark.
# Installs what is missing, builds and installs the extension, and starts or
# stops a throwaway PostgreSQL 15 and Redis under the checkout's tmp/ folder.
# Source it; it defines functions only.

CL_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
CL_PGBIN=$(${PG_CONFIG:-pg_config} --bindir 2>/dev/null || echo /usr/lib/postgresql/15/bin)
CL_PACKAGES="make gcc libc6-dev postgresql-15 postgresql-server-dev-15 postgresql-client-15
 libhiredis-dev redis-server redis-tools redis-sentinel libipc-run-perl python3 python3-psycopg
 postgresql-15-auto-failover"
# What the release layers need on top (upgrade, dist, deb): META.json
# checks, the archive, and Debian's packaging tools.
CL_PACKAGES="$CL_PACKAGES jq unzip git build-essential debhelper dpkg-dev fakeroot lintian postgresql-server-dev-all"
CL_PACKAGES="$CL_PACKAGES postgresql-15-plproxy nftables"   # coupon_lock_router and the shards layer (its hung-shard checks drop packets)
# What bench/run.sh and bench/profile.sh need on top (redis-py, the chart, callgrind).
CL_BENCH_PACKAGES="python3-redis gnuplot-nox valgrind"

cl_log() { printf '==> %s\n' "$*" >&2; }
cl_die() { printf 'error: %s\n' "$*" >&2; exit 1; }

# Runs a command as root (directly, or through sudo when not root).
cl_as_root() {
    if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi
}

# Runs a server command as the user that owns the throwaway servers:
# "postgres" when we are root (initdb refuses root), else ourselves.
cl_as_owner() {
    if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

# Installs the Debian packages that are missing (extra ones as arguments).
cl_install_packages() {
    local missing="" p
    for p in $CL_PACKAGES "$@"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' || missing="$missing $p"
    done
    [ -z "$missing" ] && return 0
    cl_log "installing:$missing"
    export DEBIAN_FRONTEND=noninteractive
    cl_as_root apt-get update -qq || cl_die "apt-get update failed"
    # shellcheck disable=SC2086
    cl_as_root apt-get install -y -qq --no-install-recommends $missing >/dev/null ||
        cl_die "apt-get install failed for:$missing"
    # Debian's package starts a cluster on 5432 and a Redis on 6379 where an
    # init system runs; we never use them, and stop nothing we did not start.
}

# Builds and installs the extension (WITH_HIREDIS=yes|no, default yes).
cl_build_install() {
    local hiredis=${1:-yes}
    cl_log "building and installing coupon_lock (WITH_HIREDIS=$hiredis)"
    make -C "$CL_ROOT" -s clean >/dev/null
    make -C "$CL_ROOT" -s WITH_HIREDIS="$hiredis" >/dev/null || cl_die "build failed"
    cl_as_root make -C "$CL_ROOT" -s WITH_HIREDIS="$hiredis" install >/dev/null || cl_die "install failed"
}

# cl_pg_start NAME PORT: a cluster in tmp/NAME/pg on 127.0.0.1:PORT, trust auth,
# coupon_lock preloaded.  Idempotent: an already running cluster is kept (on the
# port it was started with).
cl_pg_start() {
    local name=$1 port=$2 dir="$CL_ROOT/tmp/$1"
    mkdir -p "$dir"
    if [ "$(id -u)" = 0 ]; then
        chown postgres: "$dir"
        runuser -u postgres -- test -w "$dir" ||
            cl_die "user postgres cannot write $dir: make the folders above the checkout searchable (chmod o+x)"
    fi
    if [ ! -f "$dir/pg/PG_VERSION" ]; then
        cl_log "initdb $dir/pg"
        cl_as_owner "$CL_PGBIN/initdb" -D "$dir/pg" -U postgres --auth=trust -E UTF8 --locale=C.UTF-8 >"$dir/initdb.log" 2>&1 ||
            { cat "$dir/initdb.log" >&2; cl_die "initdb failed"; }
        cat >>"$dir/pg/postgresql.conf" <<CONF
# throwaway cluster of coupon_lock's scripts
listen_addresses = '127.0.0.1'
unix_socket_directories = ''
shared_preload_libraries = 'coupon_lock'
max_connections = 100
log_min_messages = warning
CONF
    fi
    if cl_as_owner "$CL_PGBIN/pg_ctl" -D "$dir/pg" status >/dev/null 2>&1; then
        return 0
    fi
    cl_log "starting PostgreSQL on 127.0.0.1:$port"
    cl_as_owner "$CL_PGBIN/pg_ctl" -D "$dir/pg" -l "$dir/postgresql.log" -o "-p $port" -w -t 60 start >/dev/null ||
        { tail -n 20 "$dir/postgresql.log" >&2; cl_die "PostgreSQL did not start"; }
}

cl_pg_stop() {
    local dir="$CL_ROOT/tmp/$1"
    [ -f "$dir/pg/postmaster.pid" ] || return 0
    cl_as_owner "$CL_PGBIN/pg_ctl" -D "$dir/pg" -m fast -w stop >/dev/null 2>&1 || true
}

# cl_redis_start NAME PORT [OPTION...]: redis-server on 127.0.0.1:PORT, pid in
# tmp/NAME/redis.pid; further redis-server options (e.g. --requirepass) follow.
cl_redis_start() {
    local name=$1 port=$2 dir="$CL_ROOT/tmp/$1"
    shift 2
    mkdir -p "$dir/redis"
    if [ -f "$dir/redis.pid" ] && kill -0 "$(cat "$dir/redis.pid")" 2>/dev/null; then
        return 0
    fi
    cl_log "starting Redis on 127.0.0.1:$port"
    redis-server --bind 127.0.0.1 --port "$port" --daemonize yes \
        --pidfile "$dir/redis.pid" --logfile "$dir/redis.log" --dir "$dir/redis" \
        --save '' --appendonly no "$@" >/dev/null || cl_die "redis-server did not start"
    local i
    for i in $(seq 50); do
        redis-cli -h 127.0.0.1 -p "$port" ping >/dev/null 2>&1 && return 0
        sleep 0.1
    done
    cl_die "Redis did not answer on port $port"
}

cl_redis_stop() {
    local pidfile="$CL_ROOT/tmp/$1/redis.pid" pid
    [ -f "$pidfile" ] || return 0
    pid=$(cat "$pidfile")
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    rm -f "$pidfile"
}

# cl_configure_redis PGPORT REDIS_PORT: points the cluster's coupon_lock.redis_*
# settings at our Redis (ALTER SYSTEM, so no test output names the port).
cl_configure_redis() {
    local pg=(psql -X -q -h 127.0.0.1 -p "$1" -U postgres -d postgres)
    "${pg[@]}" -c "ALTER SYSTEM SET coupon_lock.redis_host = '127.0.0.1'" \
        -c "ALTER SYSTEM SET coupon_lock.redis_port = $2" -c "SELECT pg_reload_conf()" >/dev/null ||
        cl_die "could not set coupon_lock.redis_port"
    for _ in $(seq 50); do
        [ "$("${pg[@]}" -Atc 'SHOW coupon_lock.redis_port')" = "$2" ] && return 0
        sleep 0.1
    done
    cl_die "coupon_lock.redis_port did not take effect"
}
