#!/usr/bin/env bash
# Valgrind memcheck (opt-in: test/test.sh valgrind).  A cluster of its own
# (port CL_CRASH_PGPORT, free while the crash layer is not running) runs its
# postmaster under valgrind --trace-children=yes, so every backend is
# checked; the regression suite (sql/*.sql) and a short fuzz pass run
# against it.  Passes when no valgrind error (invalid read/write, use of
# uninitialised memory, bad free, overlap) has a frame in coupon_lock's code.
# Errors in PostgreSQL's own code are counted and reported, not judged.
# A PostgreSQL suppression file is used when CL_VALGRIND_SUPP names one (the
# packages do not ship src/tools/valgrind.supp).
#
# Limits: the Debian build is not compiled with USE_VALGRIND, so memcheck
# sees malloc blocks, not single palloc chunks: a read past the end of a
# palloc'd chunk inside a larger block goes unnoticed, uninitialised memory
# and everything malloc'ed (hiredis) are checked.
set -u
. "$(dirname "$0")/common.sh"
PORT=${CL_CRASH_PGPORT:-54932}
VG=$CL_ROOT/tmp/valgrind
command -v valgrind >/dev/null || ( cl_install_packages valgrind ) ||
    { pv_fail "valgrind is not installed"; pv_done valgrind; exit 1; }

( cl_pg_start valgrind "$PORT" ) || { pv_fail "valgrind cluster initdb"; pv_done valgrind; exit 1; }
cl_pg_stop valgrind
rm -rf "$VG/logs"; mkdir -p "$VG/logs"; chmod 777 "$VG/logs"
supp=()
[ -n "${CL_VALGRIND_SUPP:-}" ] && supp=(--suppressions="$CL_VALGRIND_SUPP")
echo "starting postgres under valgrind on port $PORT (slow)"
cl_as_owner valgrind --quiet --trace-children=yes --track-origins=yes --read-var-info=no \
    --leak-check=no --error-limit=no --num-callers=40 "${supp[@]}" \
    --log-file="$VG/logs/vg.%p.log" \
    "$CL_PGBIN/postgres" -D "$VG/pg" -c max_connections=20 >"$VG/postgres.log" 2>&1 &
for i in $(seq 240); do
    "$CL_PGBIN/pg_isready" -q -h 127.0.0.1 -p "$PORT" && break
    sleep 1
done
"$CL_PGBIN/pg_isready" -q -h 127.0.0.1 -p "$PORT" ||
    { pv_fail "postgres under valgrind did not start"; tail "$VG/postgres.log"; pv_done valgrind; exit 1; }

# Point the Redis settings at the test Redis, as test/test.sh does.
cl_configure_redis "$PORT" "${CL_REDIS_PORT:-6489}"

# The regression suite, then a short fuzz pass (hostile input under memcheck).
tests=$(ls "$CL_ROOT"/sql/*.sql | xargs -n1 basename | sed 's/\.sql$//' | sort)
# shellcheck disable=SC2086
CL_EXPECT_BUILD=hiredis "$(dirname "$(${PG_CONFIG:-pg_config} --pgxs)")/../test/regress/pg_regress" \
    --inputdir="$CL_ROOT" --outputdir="$VG" --bindir="$CL_PGBIN" --port="$PORT" --host=127.0.0.1 \
    --load-extension=coupon_lock --dbname=contrib_regression $tests >"$VG/regress.log" 2>&1
grep -E 'tests? (passed|failed)' "$VG/regress.log"
pv_check "the regression suite passes under valgrind" grep -q 'All [0-9]* tests passed' "$VG/regress.log"
PGPORT=$PORT CL_FUZZ_CALLS=${CL_VALGRIND_FUZZ_CALLS:-40} CL_FUZZ_TIMEOUT_MS=5000 bash "$PV_DIR/fuzz.sh" >"$VG/fuzz.log" 2>&1
pv_check "a short fuzz pass runs under valgrind ($(tail -n 1 "$VG/fuzz.log"))" grep -q '^fuzz: [0-9]* passed, 0 failed' "$VG/fuzz.log"

cl_as_owner "$CL_PGBIN/pg_ctl" -D "$VG/pg" -m fast -w -t 300 stop >/dev/null
wait

# Each valgrind error is a block of lines from its kind to the next blank
# "==pid==" line; it is ours when a frame names coupon_lock.
read -r ours theirs < <(python3 - "$VG"/logs/vg.*.log <<'PY'
import re, sys
KINDS = re.compile(r"Invalid (read|write|free)|uninitialised|Mismatched free|overlap|Jump to the invalid")
OURS = re.compile(r"coupon_lock\.so|\((?:args|batch|claim|coupon|coupon_lock|guc|spi_plans|sweep|advisory|lease|epoch|standby|sweeper|redis_\w+|guard|stats)\.c:\d+\)")
ours, theirs = [], 0
for path in sys.argv[1:]:
    block = []
    for line in open(path, errors="replace").read().splitlines() + ["==0== "]:
        body = re.sub(r"^==\d+== ?", "", line)
        if body.strip():
            block.append(body)
            continue
        if block and KINDS.search(block[0]):
            if any(OURS.search(b) for b in block):
                ours.append("\n".join(block[:25]))
            else:
                theirs += 1
        block = []
with open(sys.argv[1].rsplit("/", 1)[0] + "/../ours.txt", "w") as f:
    f.write("\n\n".join(ours))
print(len(ours), theirs)
PY
)
echo "valgrind errors: ${ours:-?} with a coupon_lock frame, ${theirs:-?} in PostgreSQL's own code (logs: $VG/logs)"
[ "${ours:-1}" = 0 ] || head -n 80 "$VG/ours.txt"
pv_check "no invalid read/write or use of uninitialised memory in coupon_lock's code" test "${ours:-x}" = 0
pv_done valgrind
