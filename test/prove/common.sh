# test/prove/common.sh: sourced by the "prove" layers (stress, crash, fuzz,
# security, memory, valgrind).  Each layer script counts its checks with
# pv_ok / pv_fail / pv_skip and ends with pv_done, which prints
# "LAYER: N passed, M failed" (test/test.sh reads that line) and exits 0 only
# when nothing failed.  A skipped check (a function that does not exist yet)
# is neither: it prints "skipped: ..." with the reason.
#
# Expects PGHOST, PGPORT, PGUSER from test/test.sh; PV_DB names the layer's
# own database, created fresh by pv_fresh_db.

. "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"
PV_DIR=$CL_ROOT/test/prove
PV_TMP=$CL_ROOT/tmp/test
mkdir -p "$PV_TMP"
pv_pass=0
pv_failed=0

pv_ok()   { echo "ok: $*"; pv_pass=$((pv_pass + 1)); }
pv_fail() { echo "FAILED: $*"; pv_failed=$((pv_failed + 1)); }
pv_skip() { echo "skipped: $*"; }

# pv_check NAME COMMAND...: ok when the command succeeds.
pv_check() {
    local name=$1; shift
    if "$@"; then pv_ok "$name"; else pv_fail "$name"; fi
}

pv_done() {
    echo "$1: $pv_pass passed, $pv_failed failed"
    [ "$pv_failed" -eq 0 ]
}

# psql on the layer's database, quiet, unaligned, stopping at the first error.
pv_psql() { "$CL_PGBIN/psql" -X -q -At -v ON_ERROR_STOP=1 -d "${PV_DB:?}" "$@"; }

# A query's result as an aligned table, for the log.
pv_table() { "$CL_PGBIN/psql" -X -q -P footer=off -d "${PV_DB:?}" -c "$1"; }

# pv_fresh_db: (re)creates $PV_DB with the extension.
pv_fresh_db() {
    "$CL_PGBIN/psql" -X -q -d postgres -v ON_ERROR_STOP=1 \
        -c "SET client_min_messages = warning" -c "DROP DATABASE IF EXISTS $PV_DB WITH (FORCE)" -c "CREATE DATABASE $PV_DB" >/dev/null &&
        pv_psql -c "CREATE EXTENSION coupon_lock" >/dev/null
}

# pv_has_function NAME: true when coupon_lock.NAME exists in $PV_DB (lets the
# lock-function checks run as soon as those functions are merged).
pv_has_function() {
    local n
    n=$(pv_psql -c "SELECT count(*) FROM pg_proc WHERE proname = '$1'
                     AND pronamespace = 'coupon_lock'::regnamespace")
    [ "${n:-0}" -gt 0 ]
}

# pv_has_setting NAME: true when the setting coupon_lock.NAME exists.
pv_has_setting() {
    local n
    n=$(pv_psql -c "SELECT count(*) FROM pg_settings WHERE name = 'coupon_lock.$1'")
    [ "${n:-0}" -gt 0 ]
}

# pv_sql_checks FILE [psql args]: FILE's queries print "name|t" or "name|f"
# (optionally "name|f|detail"); each line is one check.
pv_sql_checks() {
    local file=$1 out line name ok detail; shift
    out=$(pv_psql -f "$file" "$@" 2>&1) || { pv_fail "$(basename "$file") did not run: $out"; return; }
    while IFS='|' read -r name ok detail; do
        [ -n "$name" ] || continue
        case $ok in
            t) pv_ok "$name${detail:+ ($detail)}" ;;
            f) pv_fail "$name${detail:+ ($detail)}" ;;
            *) echo "$name${ok:+|$ok}${detail:+|$detail}" ;;
        esac
    done <<<"$out"
}

# The server log of test/test.sh's cluster, and where it stands now (a later
# pv_log_since prints only what was written after the mark).
pv_log_file() { echo "$CL_ROOT/tmp/${1:-test}/postgresql.log"; }
pv_log_mark() { stat -c %s "$(pv_log_file "$@")" 2>/dev/null || echo 0; }
pv_log_since() { tail -c +"$(($1 + 1))" "$(pv_log_file "${2:-test}")"; }
