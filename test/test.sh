#!/usr/bin/env bash
# The whole test suite, from a fresh machine: installs what is missing, builds,
# installs, starts a throwaway PostgreSQL 15 and Redis under tmp/test, runs every
# test layer and stops what it started.  Ends with "N passed, M failed".
#
#   test/test.sh            every layer
#   test/test.sh regress    only the named layers (regress isolation shell ...)
#   test/test.sh valgrind   the opt-in layer (docs/testing.md)
set -u
. "$(dirname "$0")/lib.sh"
cd "$CL_ROOT"

PGPORT=${CL_TEST_PGPORT:-54881}
REDIS_PORT=${CL_TEST_REDIS_PORT:-6489}
export PGHOST=127.0.0.1 PGPORT PGUSER=postgres CL_REDIS_PORT=$REDIS_PORT
# nohiredis rebuilds and reinstalls the extension: keep it last.
LAYERS=${*:-regress isolation shell stress crash fuzz security memory clients ha redis_faults redis_ha redlock shards upgrade dist deb nohiredis}

total_pass=0
total_fail=0

# count_pg_regress LAYER LOGFILE: reads pg_regress output, adds to the totals.
count_pg_regress() {
    local layer=$1 log=$2 pass fail
    pass=$(grep -cE '\.\.\. ok' "$log")
    fail=$(grep -cE '\.\.\. FAILED|failed \(ignored\)' "$log")
    if ! grep -qE 'tests? passed|tests? failed' "$log"; then
        fail=$((fail + 1))   # the runner itself broke
        tail -n 20 "$log"
    fi
    report "$layer" "$pass" "$fail"
}

report() {
    echo "$1: $2 passed, $3 failed"
    total_pass=$((total_pass + $2))
    total_fail=$((total_fail + $3))
}

layer_regress() {
    local tests
    tests=$(ls sql/*.sql | xargs -n1 basename | sed 's/\.sql$//' | sort)
    rm -rf results regression.diffs regression.out
    CL_EXPECT_BUILD=hiredis "$(dirname "$(${PG_CONFIG:-pg_config} --pgxs)")/../test/regress/pg_regress" \
        --inputdir=. --bindir="$CL_PGBIN" --load-extension=coupon_lock \
        --dbname=contrib_regression $tests >tmp/test/regress.log 2>&1
    cat tmp/test/regress.log
    [ -f regression.diffs ] && head -n 300 regression.diffs
    count_pg_regress regress tmp/test/regress.log
}

layer_isolation() {
    local tests
    ls specs/*.spec >/dev/null 2>&1 || { report isolation 0 0; return; }
    tests=$(ls specs/*.spec | xargs -n1 basename | sed 's/\.spec$//' | sort)
    rm -rf output_iso
    "$(dirname "$(${PG_CONFIG:-pg_config} --pgxs)")/../test/isolation/pg_isolation_regress" \
        --inputdir=. --outputdir=output_iso --bindir="$CL_PGBIN" --load-extension=coupon_lock \
        --dbname=isolation_regression $tests >tmp/test/isolation.log 2>&1
    cat tmp/test/isolation.log
    [ -f output_iso/regression.diffs ] && head -n 300 output_iso/regression.diffs
    count_pg_regress isolation tmp/test/isolation.log
}

# Shell-driven tests: test/shell/*.sh, each exits 0 when it passes.
layer_shell() {
    local t pass=0 fail=0
    for t in test/shell/*.sh; do
        [ -f "$t" ] || continue
        if bash "$t" >"tmp/test/$(basename "$t" .sh).log" 2>&1; then
            echo "shell $(basename "$t") ... ok"; pass=$((pass + 1))
        else
            echo "shell $(basename "$t") ... FAILED"; fail=$((fail + 1))
            tail -n 40 "tmp/test/$(basename "$t" .sh).log"
        fi
    done
    report shell "$pass" "$fail"
}

# The prove layers: test/prove/LAYER.sh, each ends with "LAYER: N passed, M
# failed" (docs/testing.md).  The crash layer runs a cluster and a Redis of its
# own, on the next ports up unless told otherwise.
run_prove() {
    local layer=$1 last
    CL_CRASH_PGPORT=${CL_TEST_CRASH_PGPORT:-$((PGPORT + 1))} \
    CL_KILL_REDIS_PORT=${CL_TEST_KILL_REDIS_PORT:-$((REDIS_PORT + 1))} \
        bash "test/prove/$layer.sh" 2>&1 | tee "tmp/test/prove_$layer.log" |
        grep -vE "^$layer: [0-9]+ passed, [0-9]+ failed$"   # report() prints it
    last=$(grep -E "^$layer: [0-9]+ passed, [0-9]+ failed$" "tmp/test/prove_$layer.log" | tail -n 1)
    if [ -n "$last" ]; then
        set -- $last
        report "$layer" "$2" "$4"
    else
        report "$layer" 0 1   # the script itself broke
    fi
}
layer_stress()   { run_prove stress; }
layer_crash()    { run_prove crash; }
layer_fuzz()     { run_prove fuzz; }
layer_security() { run_prove security; }
layer_memory()   { run_prove memory; }
layer_clients()  { run_prove clients; }   # examples/python and examples/node under load
layer_valgrind() { run_prove valgrind; }
layer_upgrade()  { run_prove upgrade; }
layer_dist()     { run_prove dist; }
# deb installs the package into the system's PostgreSQL and purges it; where
# the suite installs there too (CI), its build goes with the purge, so it is
# installed again and the server restarted on it.
layer_deb() {
    run_prove deb
    cl_build_install yes
    cl_pg_stop test; cl_pg_start test "$PGPORT"
}
layer_ha()       { run_prove ha; }   # tmp/ha: ports CL_HA_*_PGPORT, 55065-55069 by default
# A misbehaving and a paused Redis of the layer's own (CL_FAKE_REDIS_PORT,
# default 7056, CL_FAULTS_REDIS_PORT, default 7055).
layer_redis_faults() { run_prove redis_faults; }
# A master, a replica and three Sentinels of the layer's own
# (CL_HA_REDIS_PORT, default 7060 and 7061, CL_HA_SENTINEL_PORT, default 27050-27052).
layer_redis_ha() { run_prove redis_ha; }
# Five independent masters for Redlock (CL_REDLOCK_PORT, default 7070-7074).
layer_redlock()  { run_prove redlock; }
# test/prove/shards.sh: two clusters of its own (CL_SHARDS_PGPORT_A/_B, default 55075/55076)
layer_shards()   { run_prove shards; }

# The build without hiredis (make WITH_HIREDIS=no): the Redis regress test
# runs against its alternative expected output, expected/redis_1.out, where
# every Redis function raises 0A000.  CL_EXPECT_BUILD makes the test print
# which build it expects, so neither build can pass with the other's output.
# The server preloads the library, so it is restarted after each install.
layer_nohiredis() {
    local out=tmp/test/nohiredis
    cl_build_install no
    cl_pg_stop test; cl_pg_start test "$PGPORT"
    rm -rf "$out"; mkdir -p "$out"
    CL_EXPECT_BUILD=nohiredis "$(dirname "$(${PG_CONFIG:-pg_config} --pgxs)")/../test/regress/pg_regress" \
        --inputdir=. --outputdir="$out" --bindir="$CL_PGBIN" --load-extension=coupon_lock \
        --dbname=contrib_regression redis >"$out/regress.log" 2>&1
    sed 's/^/nohiredis /' "$out/regress.log"
    [ -f "$out/regression.diffs" ] && head -n 300 "$out/regression.diffs"
    count_pg_regress nohiredis "$out/regress.log"
    cl_build_install yes
    cl_pg_stop test; cl_pg_start test "$PGPORT"
}

# Points coupon_lock's Redis settings at the suite's Redis for every session
# of every layer (ALTER SYSTEM: the port must not appear in expected output),
# and waits until new sessions see them.

cl_install_packages
cl_build_install yes
mkdir -p tmp/test
cl_pg_start test "$PGPORT"
cl_redis_start test "$REDIS_PORT"
cl_configure_redis "$PGPORT" "$REDIS_PORT"
trap 'cl_pg_stop test; cl_redis_stop test' EXIT

for layer in $LAYERS; do
    if declare -F "layer_$layer" >/dev/null; then
        "layer_$layer"
    else
        echo "unknown layer: $layer"; total_fail=$((total_fail + 1))
    fi
done

echo "$total_pass passed, $total_fail failed"
[ "$total_fail" -eq 0 ]
