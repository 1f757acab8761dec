# test/prove/upgrade_lib10.sh, sourced by upgrade.sh (its helpers): the
# library of the current version serving a database still at 1.0, as after
# `make install` or a package upgrade and before ALTER EXTENSION UPDATE.
# Every function of the 1.0 script (from that database's pg_proc) is called
# CL_UPGRADE_LIB_CALLS times (default 30) with the arguments of its 1.0
# declaration, the same script in a fresh database; upgrade_lib10.py
# compares the answers.  Then the tables of both (every column but the
# random codes and the timestamps) must be the same, and no backend crashed.
LIB_CALLS=${CL_UPGRADE_LIB_CALLS:-30}
LIB_SEED=${CL_UPGRADE_LIB_SEED:-$(date +%s)}

up_db upgrade_lib10 1.0 && up_db upgrade_lib11 || pv_fail "could not create the databases of the 1.0 check"
up_psql upgrade_lib10 -c "
    SELECT p.oid::regprocedure, p.proname, p.proretset,
           array_to_string(p.proargnames[1:p.pronargs], ','),
           coalesce((SELECT string_agg(format_type(t, NULL), ',' ORDER BY i)
                       FROM unnest(p.proargtypes::oid[]) WITH ORDINALITY a(t, i)), ''),
           p.pronargs, p.pronargdefaults
      FROM pg_proc p
     WHERE p.pronamespace = 'coupon_lock'::regnamespace AND p.prokind = 'f'
     ORDER BY 1::text" >"$UP/lib_functions.txt"
nfun=$(wc -l <"$UP/lib_functions.txt")
n_c=$(up_psql upgrade_lib10 -c "SELECT count(*) FROM pg_proc WHERE pronamespace = 'coupon_lock'::regnamespace
                                        AND prolang = (SELECT oid FROM pg_language WHERE lanname = 'c')")
echo "calling the $nfun functions of the 1.0 script ($n_c in C), $LIB_CALLS calls each, seed $LIB_SEED"
python3 "$PV_DIR/upgrade_lib10.py" script "$LIB_SEED" "$LIB_CALLS" <"$UP/lib_functions.txt" >"$UP/lib_calls.sql"

started=$(up_psql postgres -c "SELECT pg_postmaster_start_time()")
mark=$(pv_log_mark)
for db in upgrade_lib10 upgrade_lib11; do
    # Each database's Redis keys (its locks and the guard's) under a prefix of
    # its own, so that the two runs meet the same free keys.  No call waits
    # longer than 10 ms by design: statement_timeout only catches a hang.
    PGOPTIONS="-c coupon_lock.redis_key_prefix=$db: -c coupon_lock.redis_guard_wait=50ms -c statement_timeout=10s" \
        up_psql "$db" -f "$UP/lib_calls.sql" >"$UP/$db.log" 2>&1 ||
        { pv_fail "the calls did not run in $db"; tail -n 5 "$UP/$db.log"; }
    up_psql "$db" -c "COPY (SELECT id, fn, sqlstate, coalesce(result, ''), coalesce(message, '')
                             FROM upgrade_lib.result ORDER BY id) TO STDOUT WITH (DELIMITER '|')" >"$UP/$db.results"
done
pv_check "the database of the check is still at 1.0" \
    test "$(up_psql upgrade_lib10 -c "SELECT extversion FROM pg_extension WHERE extname = 'coupon_lock'")" = 1.0
while read -r verdict text; do
    case $verdict in
        OK) pv_ok "$text" ;;
        FAILED) pv_fail "$text" ;;
        *) echo "$verdict $text" ;;
    esac
done < <(python3 "$PV_DIR/upgrade_lib10.py" compare "$UP/upgrade_lib10.results" "$UP/upgrade_lib11.results")

# The tables after the calls: every column of the 1.0 tables but the random
# codes and the clock's timestamps.
up_psql upgrade_lib10 -F ' ' -c "
    SELECT c.oid::regclass, CASE c.relkind WHEN 'S' THEN 'S' ELSE
           (SELECT string_agg(quote_ident(a.attname), ',' ORDER BY a.attnum) FROM pg_attribute a
             WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
               AND a.atttypid <> 'timestamptz'::regtype AND a.attname <> 'code') END
      FROM pg_class c WHERE c.relnamespace = 'coupon_lock'::regnamespace AND c.relkind IN ('r', 'p', 'S')
     ORDER BY 1::text" >"$UP/lib_tables.txt"
up_snapshot upgrade_lib10 "$UP/lib_tables.txt" "$UP/lib_tables_10"
up_snapshot upgrade_lib11 "$UP/lib_tables.txt" "$UP/lib_tables_11"
up_compare "after the calls the 1.0 database's tables hold what the fresh one's do" \
    "$UP/lib_tables.txt" "$UP/lib_tables_11" "$UP/lib_tables_10"
PV_DB=upgrade_lib10 pv_sql_checks "$PV_DIR/invariants.sql"
pv_check "the postmaster did not restart" test "$(up_psql postgres -c "SELECT pg_postmaster_start_time()")" = "$started"
crash=$(pv_log_since "$mark" | grep -E 'terminated by signal|was terminated|PANIC|TRAP:|server process .* exited with exit code [^0]')
pv_check "the server log shows no crashed backend" test -z "$crash" || echo "$crash" | head
up_drop upgrade_lib10; up_drop upgrade_lib11
