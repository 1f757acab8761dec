# test/redis_ha_lib.sh: a Redis master, its replica and three Sentinels under
# one folder, for the redis_ha layer and bench/redis_modes.sh.  Source it after
# test/lib.sh; it defines functions only.  Every server writes its pid to
# DIR/*.pid, and ha_stop stops exactly those (by pid).

# ha_start DIR MASTER_PORT SENTINEL_PORT: master on MASTER_PORT, replica on
# MASTER_PORT + 1, Sentinels on SENTINEL_PORT .. + 2 (down-after 1000 ms,
# quorum 2); waits until the replica is attached and the quorum is reachable.
ha_start() {
    local dir=$1 m=$2 s=$3 p
    mkdir -p "$dir"
    ha_redis "$dir" "$m"
    ha_redis "$dir" "$((m + 1))" --replicaof 127.0.0.1 "$m"
    for p in "$s" "$((s + 1))" "$((s + 2))"; do
        mkdir -p "$dir/s$p"
        cat >"$dir/s$p/sentinel.conf" <<CONF
port $p
bind 127.0.0.1
daemonize yes
pidfile $dir/sentinel-$p.pid
logfile $dir/sentinel-$p.log
dir $dir/s$p
sentinel monitor mymaster 127.0.0.1 $m 2
sentinel down-after-milliseconds mymaster 1000
sentinel failover-timeout mymaster 5000
sentinel parallel-syncs mymaster 1
CONF
        redis-sentinel "$dir/s$p/sentinel.conf" >/dev/null
    done
    for _ in $(seq 100); do
        [ "$(redis-cli -p "$m" INFO replication 2>/dev/null | tr -d '\r' | sed -n 's/^connected_slaves://p')" = 1 ] &&
            [ "$(redis-cli -p "$s" SENTINEL ckquorum mymaster 2>/dev/null | cut -c1-2)" = OK ] && return 0
        sleep 0.2
    done
    return 1
}

# ha_redis DIR PORT [OPTION...]: one redis-server, pid in DIR/redis-PORT.pid.
ha_redis() {
    local dir=$1 port=$2; shift 2
    mkdir -p "$dir/r$port"
    redis-server --bind 127.0.0.1 --port "$port" --daemonize yes --pidfile "$dir/redis-$port.pid" \
        --logfile "$dir/redis-$port.log" --dir "$dir/r$port" --save '' --appendonly no "$@" >/dev/null
    for _ in $(seq 50); do redis-cli -p "$port" ping >/dev/null 2>&1 && return 0; sleep 0.1; done
    return 1
}

# ha_sentinels SENTINEL_PORT: the value of coupon_lock.redis_sentinels.
ha_sentinels() { echo "127.0.0.1:$1,127.0.0.1:$(($1 + 1)),127.0.0.1:$(($1 + 2))"; }

# ha_stop DIR: stops (and resumes first, if paused) every server started there.
ha_stop() {
    local f pid
    for f in "$1"/*.pid; do
        [ -f "$f" ] || continue
        kill -CONT "$(cat "$f")" 2>/dev/null; kill "$(cat "$f")" 2>/dev/null
    done
    for f in "$1"/*.pid; do
        [ -f "$f" ] || continue
        pid=$(cat "$f" 2>/dev/null) || continue   # a server removes its pid file as it exits
        for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        rm -f "$f"
    done
}

# rl_start DIR PORT N: N independent masters (no replication, no persistence)
# on PORT .. PORT + N - 1, for Redlock; pids in DIR/redis-PORT.pid.
rl_start() {
    local dir=$1 port=$2 n=$3 i
    for i in $(seq 0 $((n - 1))); do ha_redis "$dir" $((port + i)) || return 1; done
}

# rl_servers PORT N: the value of coupon_lock.redlock_servers for them.
rl_servers() {
    local port=$1 n=$2 i list=
    for i in $(seq 0 $((n - 1))); do list+="${list:+,}127.0.0.1:$((port + i))"; done
    echo "$list"
}
