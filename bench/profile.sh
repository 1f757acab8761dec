#!/usr/bin/env bash
# Instructions per operation, counted by valgrind's callgrind: the noise-free
# companion of bench/run.sh for before/after comparisons on a busy machine.
#
#   bench/profile.sh [N]     N operations per measurement (default 1000)
#   CL_PROFILE_WORKLOADS=cycle CL_PROFILE_CONTENDERS="sql" bench/profile.sh 500
#                            only those (coupon_lock itself always)
#
# Builds and installs the extension, prepares a throwaway cluster under
# tmp/profile (the extension, bench/baselines.sql, issued batches of 100k),
# stops it, then runs each workload (freeze + unfreeze cycle, claim, and
# advisory lock + unlock when the build has advisory_lock) in a single-user
# backend under callgrind twice, with 100 and with 100 + N operations,
# through PREPARE / EXECUTE (as pgbench -M prepared does); the difference
# divided by N is the cost of one operation without the backend's start-up
# and first-use costs.  Each statement commits (synchronous_commit off: no
# wait, same work).  Writes bench/results/instructions.md; the callgrind
# files stay in tmp/profile for callgrind_annotate.
set -u
. "$(dirname "$0")/../test/lib.sh"
cd "$CL_ROOT"

N=${1:-1000}
WARM=100
PGPORT=${CL_BENCH_PGPORT:-54891}
DIR=$CL_ROOT/tmp/profile
OUT=$CL_ROOT/bench/results
RESULT=$OUT/instructions.md
# a narrowed run (below) writes its table under tmp/profile, not over the full one
[ -n "${CL_PROFILE_WORKLOADS:-}${CL_PROFILE_CONTENDERS:-}" ] && RESULT=$DIR/instructions.md
export PGHOST=127.0.0.1 PGPORT PGUSER=postgres PGDATABASE=postgres

# shellcheck disable=SC2086
cl_install_packages $CL_BENCH_PACKAGES
cl_build_install yes
cl_pg_stop profile
rm -rf "$DIR"
mkdir -p "$DIR" "$OUT"
cl_pg_start profile "$PGPORT"
trap 'cl_pg_stop profile' EXIT
"$CL_PGBIN/psql" -X -q -v ON_ERROR_STOP=1 -c "CREATE EXTENSION coupon_lock" \
    -f bench/baselines.sql >/dev/null 2>&1 || cl_die "loading the extension and baselines failed"
declare -A FIRST CLAIM_BATCH CLAIM_FIRST
for s in coupon_lock:ext bench_plpgsql:plpgsql bench_sql:sql; do
    schema=${s%%:*}
    if [ "$schema" = coupon_lock ]; then
        b=$("$CL_PGBIN/psql" -X -At -c "SELECT coupon_lock.create_batch('profile', 100000, 1)")
        c=$("$CL_PGBIN/psql" -X -At -c "SELECT coupon_lock.create_batch('claims', 100000, 1)")
    else
        b=$("$CL_PGBIN/psql" -X -At -c "SELECT bench_plpgsql.create_batch('$schema', 'profile', 100000, 1)")
        c=$("$CL_PGBIN/psql" -X -At -c "SELECT bench_plpgsql.create_batch('$schema', 'claims', 100000, 1)")
    fi
    "$CL_PGBIN/psql" -X -q -c "SELECT bench_plpgsql.issue_all('$schema', $b)" >/dev/null
    FIRST[${s#*:}]=$("$CL_PGBIN/psql" -X -At -c "SELECT first_coupon_id FROM $schema.batch WHERE batch_id = $b")
    CLAIM_BATCH[${s#*:}]=$c
    CLAIM_FIRST[${s#*:}]=$("$CL_PGBIN/psql" -X -At -c "SELECT first_coupon_id FROM $schema.batch WHERE batch_id = $c")
done
"$CL_PGBIN/psql" -X -q -c "CREATE SEQUENCE bench_sql.claim_seq"
CLAIM_BATCH[floor]=${CLAIM_BATCH[sql]}
"$CL_PGBIN/psql" -X -q -c "VACUUM ANALYZE" -c CHECKPOINT
cl_pg_stop profile

# script WORKLOAD CONTENDER COUNT: the statements one measurement runs.
script() {
    local w=$1 c=$2 n=$3 i id first=${FIRST[$2]:-0}
    case $w:$c in
        cycle:ext | cycle:plpgsql)
            local s=coupon_lock
            [ "$c" = plpgsql ] && s=bench_plpgsql
            echo "PREPARE f(bigint, text, text) AS SELECT $s.coupon_freeze(\$1, \$2, \$3);"
            echo "PREPARE u(bigint, text) AS SELECT $s.coupon_unfreeze(\$1, \$2);" ;;
        cycle:sql)
            # the statements of bench/cycle_sql.sql
            echo "PREPARE f(bigint, text, text) AS UPDATE bench_sql.coupon SET state = 'frozen', order_id = \$3,"\
                 "frozen_until = now() + interval '15 minutes', version = version + 1, updated_at = now()"\
                 "WHERE coupon_id = \$1 AND state = 'issued' AND owner_id = \$2 RETURNING version;"
            echo "PREPARE u(bigint, text) AS UPDATE bench_sql.coupon SET state = 'issued', order_id = NULL,"\
                 "frozen_until = NULL, version = version + 1, updated_at = now()"\
                 "WHERE coupon_id = \$1 AND state = 'frozen' AND order_id = \$2 RETURNING version;" ;;
        advisory:ext)
            echo "PREPARE l(text) AS SELECT coupon_lock.advisory_lock(\$1);"
            echo "PREPARE u(text) AS SELECT coupon_lock.advisory_unlock(\$1);" ;;
        advisory:core)
            echo "PREPARE l(text) AS SELECT pg_advisory_lock(hashtextextended(\$1, 0));"
            echo "PREPARE u(text) AS SELECT pg_advisory_unlock(hashtextextended(\$1, 0));" ;;
        claim:ext) echo "PREPARE c(bigint, text) AS SELECT coupon_lock.coupon_claim(\$1, \$2);" ;;
        claim:plpgsql) echo "PREPARE c(bigint, text) AS SELECT bench_plpgsql.coupon_claim(\$1, \$2);" ;;
        claim:skip) echo "PREPARE c(bigint, text) AS SELECT bench_plpgsql.coupon_claim_skip(\$1, \$2);" ;;
        claim:floor)
            # the statement of bench/claim_floor.sql ($1, the batch, is not needed)
            echo "PREPARE c(bigint, text) AS UPDATE bench_sql.coupon SET state = 'issued', owner_id = \$2,"\
                 "version = version + 1, updated_at = now()"\
                 "WHERE coupon_id = (SELECT ${CLAIM_FIRST[sql]} + nextval('bench_sql.claim_seq') - 1)"\
                 "AND state = 'available' AND \$1 IS NOT NULL RETURNING coupon_id;" ;;
    esac
    for i in $(seq "$n"); do
        id=$((first + i))
        if [ "$w" = cycle ]; then
            echo "EXECUTE f($id, 'u$id', 'o$id');"
            echo "EXECUTE u($id, 'o$id');"
        elif [ "$w" = advisory ]; then
            echo "EXECUTE l('k$i');"
            echo "EXECUTE u('k$i');"
        else
            echo "EXECUTE c(${CLAIM_BATCH[$c]:-${CLAIM_BATCH[plpgsql]}}, 'p$RANDOM-$n-$i');"
        fi
    done
}

# count WORKLOAD CONTENDER COUNT: instructions of one single-user backend.
count() {
    local f=$DIR/$1-$2-$3
    script "$1" "$2" "$3" >"$f.sql"
    chmod a+r "$f.sql"
    echo VACUUM | cl_as_owner "$CL_PGBIN/postgres" --single -D "$DIR/pg" postgres >/dev/null 2>&1
    cl_as_owner valgrind --tool=callgrind --callgrind-out-file="$f.callgrind" \
        "$CL_PGBIN/postgres" --single -D "$DIR/pg" -c synchronous_commit=off postgres \
        <"$f.sql" >"$f.out" 2>"$f.valgrind" || cl_die "callgrind run $f failed"
    grep -q ERROR "$f.out" && cl_die "errors in $f.out"
    sed -n 's/.*Collected : \([0-9]*\).*/\1/p' "$f.valgrind"
}

chown -R "$(stat -c %U "$DIR/pg")" "$DIR"
{
    echo "# Instructions per operation (callgrind)"
    echo
    echo "From \`bench/profile.sh $N\` at commit $(git -C "$CL_ROOT" rev-parse --short HEAD):"\
         "one single-user backend, PREPARE/EXECUTE, each statement its own transaction,"\
         "(instructions with $((WARM + N)) operations - with $WARM) / $N. The baselines' tables have the extension's"\
         "columns and checks and the indexes a user would write (partial indexes on state; bench/baselines.sql)."\
         "Claims: plpgsql is the weak SKIP LOCKED claim (ORDER BY), skip the strong one, floor the sequence-addressed UPDATE."
    echo
    echo "| workload | contender | instructions per operation | contender ÷ coupon_lock (coupon_lock's CPU-bound speed-up) |"
    echo "|---|---|---:|---:|"
} >"$RESULT"
# the advisory pair runs only when the build has advisory_lock
workloads="cycle claim"
grep -q 'FUNCTION coupon_lock.advisory_lock(' "$CL_ROOT"/install/*.sql && workloads="$workloads advisory"
# CL_PROFILE_WORKLOADS and CL_PROFILE_CONTENDERS narrow a run to what a change
# touches (e.g. "cycle" and "ext sql"); coupon_lock (ext) is always measured
workloads=${CL_PROFILE_WORKLOADS:-$workloads}
for w in $workloads; do
    ext=""
    for c in ext plpgsql skip sql floor core; do
        case " ext ${CL_PROFILE_CONTENDERS:-$c} " in *" $c "*) ;; *) continue ;; esac
        case $w:$c in
            cycle:ext | cycle:plpgsql | cycle:sql | claim:ext | claim:plpgsql | claim:skip | claim:floor | advisory:ext | advisory:core) ;;
            *) continue ;;
        esac
        a=$(count "$w" "$c" "$WARM")
        b=$(count "$w" "$c" $((WARM + N)))
        per=$(((b - a) / N))
        [ "$c" = ext ] && ext=$per
        adv=$(awk -v e="$ext" -v p="$per" 'BEGIN { printf "%.2fx", p / e }')
        cl_log "$w $c: $per instructions per operation"
        echo "| $w | $c | $per | $adv |" >>"$RESULT"
    done
done
cat "$RESULT"
