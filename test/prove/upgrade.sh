#!/usr/bin/env bash
# The upgrade from 1.0 to the current version (versions/README.md), on the
# cluster of test/test.sh, which runs the library just built:
#
#  (a) a database created at 1.0 from the frozen script and filled through
#      the 1.0 API (test/prove/upgrade_fill.sql: coupons in every state,
#      ledger rows of every op, quota rows, leases, a guarded transition
#      with redis_guard on and an outside holder of the guard's Redis key,
#      an advisory lock held by another session across the upgrade) is
#      updated with ALTER EXTENSION coupon_lock UPDATE; every row of every
#      table and every sequence position is the same before and after, the
#      1.0 data works under 1.1 (upgrade_after.sql), the held advisory lock
#      is still held, and the coupon invariants hold;
#  (b) every regression test (sql/*.sql) passes on a database created at
#      1.0 and updated, one clone of it per test;
#  (c) the schema of an upgraded database equals a fresh install's: the
#      extension's members, configuration tables and initial privileges,
#      and a pg_dump --schema-only of a copy with every member detached
#      from the extension (so that pg_dump writes them out), normalised
#      (upgrade_dump.py) and diffed — empty and filled alike;
#  (d) ALTER EXTENSION coupon_lock UPDATE TO '1.0' is refused, DROP
#      EXTENSION removes everything, and CREATE EXTENSION works again;
#  (e) the library in a database still at 1.0 (upgrade_lib10.py): every
#      function of the 1.0 script, listed from pg_proc, called with coherent
#      arguments in a 1.0 database and in a fresh one, answers the same in
#      both or refuses with cl_require_sql_version's 55000; no XX000, no crash.
set -u
. "$(dirname "$0")/common.sh"
UP=$PV_TMP/upgrade
rm -rf "$UP"; mkdir -p "$UP"
REDIS_PORT=${CL_REDIS_PORT:-6489}
UPGRADE_VERSION=$(sed -n "s/^default_version = '\(.*\)'/\1/p" "$CL_ROOT/coupon_lock.control")

up_since() { awk "BEGIN { printf \"%.2f\", ($(date +%s%N) - $1) / 1e9 }"; }
up_psql() { local db=$1; shift; "$CL_PGBIN/psql" -X -q -At -v ON_ERROR_STOP=1 -d "$db" "$@"; }

# up_db NAME [VERSION]: a new database NAME with coupon_lock at VERSION
# (default: the control file's default_version).
up_db() {
    up_psql postgres -c "SET client_min_messages = warning" \
        -c "DROP DATABASE IF EXISTS $1 WITH (FORCE)" -c "CREATE DATABASE $1" &&
        up_psql "$1" -c "CREATE EXTENSION coupon_lock${2:+ VERSION '$2'}"
}

# up_clone SOURCE COPY: COPY is a new database made from SOURCE as template.
up_clone() {
    up_psql postgres -c "SET client_min_messages = warning" \
        -c "DROP DATABASE IF EXISTS $2 WITH (FORCE)" -c "CREATE DATABASE $2 TEMPLATE $1"
}

up_drop() { up_psql postgres -c "SET client_min_messages = warning" -c "DROP DATABASE IF EXISTS $1 WITH (FORCE)"; }

# up_state DB SQL: the SQLSTATE the statement raised, 00000 when it succeeded.
up_state() {
    local err
    err=$("$CL_PGBIN/psql" -X -q -At -d "$1" -v ON_ERROR_STOP=1 -v VERBOSITY=sqlstate -c "$2" 2>&1 >/dev/null)
    if [ -z "$err" ]; then echo 00000; else sed -n 's/^ERROR:  \([0-9A-Z]\{5\}\).*/\1/p' <<<"$err" | head -n 1; fi
}

# up_snapshot DB LIST DIR: every row of every table and the position of every
# sequence of schema coupon_lock, in a stable order, one file per relation in
# DIR.  LIST (written on the first call) keeps the relations and columns of
# the first snapshot, so that the second reads exactly those: columns an
# upgrade adds are not compared; a table or column it drops fails the query
# (the file then says so).  A sequence it drops has no file (up_compare).
up_snapshot() {
    local db=$1 list=$2 dir=$3 rel cols
    [ -f "$list" ] || up_psql "$db" -F ' ' -c "
        SELECT c.oid::regclass, CASE c.relkind WHEN 'S' THEN 'S' ELSE
               (SELECT string_agg(quote_ident(a.attname), ',' ORDER BY a.attnum) FROM pg_attribute a
                 WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped) END
          FROM pg_class c WHERE c.relnamespace = 'coupon_lock'::regnamespace AND c.relkind IN ('r', 'p', 'S')
         ORDER BY 1::text" >"$list" || return 1
    rm -rf "$dir"; mkdir -p "$dir"
    while read -r rel cols; do
        if [ "$cols" = S ]; then
            [ "$(up_psql "$db" -c "SELECT to_regclass('$rel') IS NULL")" = t ] && continue
            up_psql "$db" -c "SELECT last_value, is_called FROM $rel" >"$dir/$rel" 2>&1
        else
            up_psql "$db" -c "COPY (SELECT $cols FROM $rel ORDER BY $(seq -s, "$(tr ',' '\n' <<<"$cols" | wc -l)")) TO STDOUT" \
                >"$dir/$rel" 2>&1 || echo "(could not read $rel)" >>"$dir/$rel"
        fi
    done <"$list"
}

# up_compare NAME LIST A B: one check over the snapshots in folders A and B:
# every table of LIST in both and equal, every sequence in both equal.  A
# sequence only one side has (claim sequences an upgrade replaced, say) is
# reported and not compared: what the data still does is for the checks
# that use it.
up_compare() {
    local name=$1 list=$2 a=$3 b=$4 rel cols rows=0
    : >"$a.all"; : >"$b.all"
    while read -r rel cols; do
        if [ "$cols" = S ] && { [ ! -f "$a/$rel" ] || [ ! -f "$b/$rel" ]; }; then
            echo "  sequence $rel is not in both: not compared"
            continue
        fi
        { echo "== $rel"; cat "$a/$rel"; } >>"$a.all"
        { echo "== $rel"; cat "$b/$rel"; } >>"$b.all"
        rows=$((rows + $(wc -l <"$a/$rel")))
    done <"$list"
    up_same "$name ($(wc -l <"$list") relations, $rows rows)" "$a.all" "$b.all"
}

# up_schema DB OUT: the schema of DB, normalised: the extension's row, its
# members, configuration tables and initial privileges, then pg_dump
# --schema-only of a copy whose members were detached from the extension
# (pg_dump writes an extension's members as one CREATE EXTENSION otherwise).
up_schema() {
    local db=$1 out=$2 copy=${1}_schema
    up_clone "$db" "$copy" || return 1
    up_psql "$copy" >"$out" <<'SQL' || return 1
SELECT 'extension ' || extversion || ' relocatable ' || extrelocatable || ' schema ' || extnamespace::regnamespace
  FROM pg_extension WHERE extname = 'coupon_lock';
SELECT 'member ' || pg_describe_object(classid, objid, objsubid) FROM pg_depend
 WHERE refclassid = 'pg_extension'::regclass AND deptype = 'e'
   AND refobjid = (SELECT oid FROM pg_extension WHERE extname = 'coupon_lock')
 ORDER BY 1;
SELECT 'config ' || c::regclass || ' ' || quote_literal(w) FROM pg_extension, unnest(extconfig, extcondition) u(c, w)
 WHERE extname = 'coupon_lock' ORDER BY 1;
SELECT 'initprivs ' || pg_describe_object(classoid, objoid, objsubid) || ' ' || initprivs::text
  FROM pg_init_privs WHERE privtype = 'e' ORDER BY 1;
DO $$
DECLARE
    m record;
BEGIN
    FOR m IN SELECT (pg_identify_object(classid, objid, objsubid)).* FROM pg_depend
              WHERE refclassid = 'pg_extension'::regclass AND deptype = 'e'
                AND refobjid = (SELECT oid FROM pg_extension WHERE extname = 'coupon_lock')
    LOOP
        EXECUTE format('ALTER EXTENSION coupon_lock DROP %s %s', m.type, m.identity);
    END LOOP;
END $$;
SQL
    "$CL_PGBIN/pg_dump" --schema-only -d "$copy" >"$out.dump" || return 1
    python3 "$PV_DIR/upgrade_dump.py" <"$out.dump" >>"$out" || return 1
    up_drop "$copy"
}

# up_same NAME A B: one check, ok when files A and B are equal; else the diff.
up_same() {
    if diff -u "$2" "$3" >"$3.diff"; then
        pv_ok "$1"
    else
        pv_fail "$1"; head -n 200 "$3.diff"
    fi
}

echo "== the scripts"
avail=$(up_psql postgres -c "SELECT string_agg(version, ',' ORDER BY version) FROM pg_available_extension_versions WHERE name = 'coupon_lock'")
path=$(up_psql postgres -c "SELECT path FROM pg_extension_update_paths('coupon_lock') WHERE source = '1.0' AND target = '$UPGRADE_VERSION'")
back=$(up_psql postgres -c "SELECT count(*) FROM pg_extension_update_paths('coupon_lock') WHERE source = '$UPGRADE_VERSION' AND path IS NOT NULL")
pv_check "versions 1.0 and $UPGRADE_VERSION are installed ($avail), 1.0 updates to $UPGRADE_VERSION ($path), nothing goes back" \
    test -n "$path" -a "$back" = 0 -a "${avail#1.0,}" != "$avail"

# 1.0 as it shipped (versions/README.md): the frozen script is pinned here by
# its hash, and the server must have installed exactly that file.
FROZEN_1_0_SHA256=892d568093656daa7d255e6410f273cab538d621176ad533bc0e046a34bf7380
sum=$(sha256sum <"$CL_ROOT/versions/coupon_lock--1.0.sql" | cut -d' ' -f1)
pv_check "versions/coupon_lock--1.0.sql is the frozen 1.0 script (sha256 ${sum:0:12}...), and the one installed" \
    test "$sum" = "$FROZEN_1_0_SHA256" -a \
         "$(sha256sum <"$(${PG_CONFIG:-pg_config} --sharedir)/extension/coupon_lock--1.0.sql" | cut -d' ' -f1)" = "$sum"

echo "== (a) a filled 1.0 database, updated"
up_db upgrade_filled 1.0 || { pv_fail "CREATE EXTENSION coupon_lock VERSION '1.0'"; pv_done upgrade; exit 1; }
pv_check "CREATE EXTENSION VERSION '1.0' installs the frozen script (no library_version())" \
    test "$(up_psql upgrade_filled -c "SELECT extversion || ' ' || (to_regprocedure('coupon_lock.library_version()') IS NULL)
                                         FROM pg_extension WHERE extname = 'coupon_lock'")" = "1.0 true"
start=$(date +%s%N)
up_psql upgrade_filled -f "$PV_DIR/upgrade_fill.sql" >"$UP/fill.log" 2>&1 &&
    pv_ok "filled through the 1.0 API in $(up_since "$start") s: $(tail -n 1 "$UP/fill.log")" ||
    { pv_fail "the fill"; cat "$UP/fill.log"; }

# A guarded transition (redis_guard on, the guard's keys under a prefix of
# this layer's own): it passes while nobody holds the coupon's Redis key and
# waits out redis_guard_wait with 55P03, coupon untouched, while an outside
# process holds it.
guard_opts="-c coupon_lock.redis_guard=on -c coupon_lock.redis_key_prefix=upgrade: -c coupon_lock.redis_guard_wait=300ms"
read -r g1 g1_owner g2 g2_version < <(up_psql upgrade_filled -F ' ' -c "
    SELECT a.coupon_id, a.owner_id, b.coupon_id, b.version FROM
      (SELECT coupon_id, owner_id FROM coupon_lock.coupon WHERE state = 'issued' ORDER BY coupon_id LIMIT 1 OFFSET 2) a,
      (SELECT coupon_id, version FROM coupon_lock.coupon WHERE state = 'issued' ORDER BY coupon_id LIMIT 1 OFFSET 3) b")
st=$(PGOPTIONS=$guard_opts up_state upgrade_filled "SELECT coupon_lock.coupon_freeze($g1, '$g1_owner', 'order-guarded')")
pv_check "1.0 database: a guarded freeze passes while the guard's key is free ($st)" test "$st" = 00000
redis-cli -h 127.0.0.1 -p "$REDIS_PORT" SET "upgrade:coupon:$g2" outside-holder NX PX 60000 >/dev/null
st=$(PGOPTIONS=$guard_opts up_state upgrade_filled "SELECT coupon_lock.coupon_revoke($g2)")
redis-cli -h 127.0.0.1 -p "$REDIS_PORT" DEL "upgrade:coupon:$g2" >/dev/null
pv_check "1.0 database: a guarded revoke waits out an outside holder with 55P03 ($st), the coupon untouched" \
    test "$st" = 55P03 -a "$(up_psql upgrade_filled -c "SELECT version FROM coupon_lock.coupon WHERE coupon_id = $g2")" = "$g2_version"

# An advisory lock held by another session across the upgrade.
mkfifo "$UP/holder.in"
"$CL_PGBIN/psql" -X -q -At -d upgrade_filled <"$UP/holder.in" >"$UP/holder.out" 2>&1 &
holder_pid=$!
exec 7>"$UP/holder.in"
echo "SELECT pg_backend_pid(), coupon_lock.advisory_lock('upgrade:held');" >&7
held_sql="SELECT count(*) FROM coupon_lock.advisory_locks WHERE key IS NULL AND granted
            AND lock_id = coupon_lock.advisory_lock_id('upgrade:held')"
for _ in $(seq 100); do [ "$(up_psql upgrade_filled -c "$held_sql")" = 1 ] && break; sleep 0.1; done
pv_check "another session holds advisory lock 'upgrade:held'" test "$(up_psql upgrade_filled -c "$held_sql")" = 1

up_snapshot upgrade_filled "$UP/tables.txt" "$UP/before" || pv_fail "snapshot before the update"
start=$(date +%s%N)
if up_psql upgrade_filled -c "ALTER EXTENSION coupon_lock UPDATE" 2>"$UP/update.log"; then
    pv_ok "ALTER EXTENSION coupon_lock UPDATE in $(up_since "$start") s"
else
    pv_fail "ALTER EXTENSION coupon_lock UPDATE"; cat "$UP/update.log"
fi
pv_check "the database is at $UPGRADE_VERSION and sees library_version() = $UPGRADE_VERSION" \
    test "$(up_psql upgrade_filled -c "SELECT extversion || ' ' || coupon_lock.library_version()
                                         FROM pg_extension WHERE extname = 'coupon_lock'")" = "$UPGRADE_VERSION $UPGRADE_VERSION"
up_snapshot upgrade_filled "$UP/tables.txt" "$UP/after"
up_compare "every row of every 1.0 table and every sequence unchanged" "$UP/tables.txt" "$UP/before" "$UP/after"
PV_DB=upgrade_filled pv_sql_checks "$PV_DIR/upgrade_after.sql"
PV_DB=upgrade_filled pv_sql_checks "$PV_DIR/invariants.sql"

pv_check "the advisory lock taken at 1.0 is still held: another session cannot take it" \
    test "$(up_psql upgrade_filled -c "SELECT coupon_lock.advisory_xact_lock('upgrade:held', '0')")" = f
echo "SELECT 'unlocked ' || coupon_lock.advisory_unlock('upgrade:held');" >&7
exec 7>&-
wait "$holder_pid"
pv_check "its holder releases it after the update ($(tail -n 1 "$UP/holder.out"))" grep -qx 'unlocked true' "$UP/holder.out"
pv_check "then it is free" test "$(up_psql upgrade_filled -c "SELECT coupon_lock.advisory_xact_lock('upgrade:held', '0')")" = t

echo "== (c) the schema of an upgraded database equals a fresh install's"
up_db upgrade_tpl 1.0 && up_psql upgrade_tpl -c "ALTER EXTENSION coupon_lock UPDATE" && up_db upgrade_fresh ||
    pv_fail "could not create the empty databases"
up_schema upgrade_tpl "$UP/schema_upgraded.txt" && up_schema upgrade_fresh "$UP/schema_fresh.txt" ||
    pv_fail "schema dump of the empty databases"
up_same "empty: upgraded and fresh schemas are the same ($(grep -c '^member ' "$UP/schema_fresh.txt") members, $(grep -c '^-- Name: ' "$UP/schema_fresh.txt") dumped objects)" \
    "$UP/schema_fresh.txt" "$UP/schema_upgraded.txt"
up_db upgrade_fresh_filled && up_psql upgrade_fresh_filled -f "$PV_DIR/upgrade_fill.sql" >"$UP/fill_fresh.log" 2>&1 ||
    { pv_fail "could not fill a fresh database"; cat "$UP/fill_fresh.log"; }
up_schema upgrade_filled "$UP/schema_filled_upgraded.txt" && up_schema upgrade_fresh_filled "$UP/schema_filled_fresh.txt" ||
    pv_fail "schema dump of the filled databases"
up_same "filled: upgraded and fresh schemas are the same ($(grep -c '^-- Name: ' "$UP/schema_filled_fresh.txt") dumped objects)" \
    "$UP/schema_filled_fresh.txt" "$UP/schema_filled_upgraded.txt"
up_drop upgrade_fresh; up_drop upgrade_fresh_filled

echo "== (b) the regression tests on a database created at 1.0 and updated"
# pg_regress --use-existing neither creates the database nor the extension;
# the database settings its create_database() would make are made here.
pass=0
for t in $(ls "$CL_ROOT"/sql/*.sql | xargs -n1 basename | sed 's/\.sql$//' | sort); do
    up_clone upgrade_tpl upgrade_regress &&
    up_psql postgres -c "ALTER DATABASE upgrade_regress SET lc_messages TO 'C'" \
        -c "ALTER DATABASE upgrade_regress SET lc_monetary TO 'C'" -c "ALTER DATABASE upgrade_regress SET lc_numeric TO 'C'" \
        -c "ALTER DATABASE upgrade_regress SET lc_time TO 'C'" -c "ALTER DATABASE upgrade_regress SET bytea_output TO 'hex'" \
        -c "ALTER DATABASE upgrade_regress SET timezone_abbreviations TO 'Default'" || pv_fail "regress database for $t"
    rm -rf "$UP/regress"; mkdir -p "$UP/regress"
    CL_EXPECT_BUILD=hiredis "$(dirname "$(${PG_CONFIG:-pg_config} --pgxs)")/../test/regress/pg_regress" \
        --inputdir="$CL_ROOT" --outputdir="$UP/regress" --bindir="$CL_PGBIN" --use-existing \
        --dbname=upgrade_regress "$t" >"$UP/regress.log" 2>&1
    if grep -qE "^test $t +\.\.\. ok" "$UP/regress.log"; then
        pass=$((pass + 1))
    else
        pv_fail "regress $t on an upgraded database"
        cat "$UP/regress.log"; [ -f "$UP/regress/regression.diffs" ] && head -n 100 "$UP/regress/regression.diffs"
    fi
done
pv_check "$pass regression tests pass on upgraded databases" test "$pass" -gt 0
up_drop upgrade_regress

echo "== (d) downgrade refused, DROP EXTENSION"
st=$(up_state upgrade_filled "ALTER EXTENSION coupon_lock UPDATE TO '1.0'")
pv_check "ALTER EXTENSION coupon_lock UPDATE TO '1.0' is refused with 22023 ($st), the database stays at $UPGRADE_VERSION" \
    test "$st" = 22023 -a "$(up_psql upgrade_filled -c "SELECT extversion FROM pg_extension WHERE extname = 'coupon_lock'")" = "$UPGRADE_VERSION"
if up_psql upgrade_filled -c "DROP EXTENSION coupon_lock" 2>"$UP/drop.log"; then pv_ok "DROP EXTENSION coupon_lock on the upgraded database"
else pv_fail "DROP EXTENSION coupon_lock on the upgraded database"; cat "$UP/drop.log"; fi
# The schema itself stays, as PostgreSQL leaves a schema CREATE EXTENSION
# made for the control file's "schema" (it is no member of the extension).
left=$(up_psql upgrade_filled -c "SELECT (SELECT count(*) FROM pg_class WHERE relnamespace = 'coupon_lock'::regnamespace)
                                       + (SELECT count(*) FROM pg_proc WHERE pronamespace = 'coupon_lock'::regnamespace)
                                       + (SELECT count(*) FROM pg_type WHERE typnamespace = 'coupon_lock'::regnamespace)")
left=$left/$(up_psql upgrade_filled -c "SELECT count(*) FROM pg_depend WHERE refclassid = 'pg_extension'::regclass AND refobjid NOT IN (SELECT oid FROM pg_extension)")
pv_check "nothing is left: no relation, function or type in schema coupon_lock (claim sequences included), no dangling extension dependency ($left)" \
    test "$left" = 0/0
pv_check "CREATE EXTENSION coupon_lock works again there" \
    test "$(up_psql upgrade_filled -c "CREATE EXTENSION coupon_lock" -c "SELECT coupon_lock.library_version()")" = "$UPGRADE_VERSION"
up_drop upgrade_filled

echo "== (e) the $UPGRADE_VERSION library in a database still at 1.0"
. "$PV_DIR/upgrade_lib10.sh"
up_drop upgrade_tpl
pv_done upgrade
