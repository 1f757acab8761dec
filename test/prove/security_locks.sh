# Sourced by security.sh: the application role cannot exhaust the shared lock
# table (issue 10, item 12).  One session of prove_app (a member of
# coupon_lock_application) takes session advisory locks on new keys until it
# is refused, and keeps what it got while other sessions (a superuser, and a
# second session of the same role) take locks of their own.  Without the
# ceiling the flood ends only when the shared lock table is full ("out of
# shared memory", and every other session fails with it).
pv_psql -c "CREATE TABLE prove_sec.flood (pid int, taken int, sqlstate text, message text)" \
        -c "GRANT INSERT ON prove_sec.flood TO PUBLIC" >/dev/null
ceiling=$(pv_psql -c "SHOW coupon_lock.max_held_keys")
"$CL_PGBIN/psql" -X -q -At -d "$PV_DB" >"$PV_TMP/security_flood.log" 2>&1 <<'SQL' &
SET ROLE prove_app;
DO $$
DECLARE
    i int := 0;
BEGIN
    LOOP
        i := i + 1;
        PERFORM coupon_lock.advisory_lock('flood:' || i);
        EXIT WHEN i >= 50000;
    END LOOP;
    INSERT INTO prove_sec.flood VALUES (pg_backend_pid(), i, '00000', 'no error');
EXCEPTION WHEN OTHERS THEN
    -- session locks outlive this block's rollback: the session keeps them
    INSERT INTO prove_sec.flood VALUES (pg_backend_pid(), i - 1, SQLSTATE, SQLERRM);
END $$;
SELECT pg_sleep(120);
SQL
flood_job=$!
flood=""
for _ in $(seq 600); do
    flood=$(pv_psql -c "SELECT pid || '|' || taken || '|' || sqlstate || '|' || message FROM prove_sec.flood")
    [ -n "$flood" ] && break
    sleep 0.1
done
IFS='|' read -r flood_pid taken state message <<<"$flood"
echo "flood: ${flood:-no answer}"
pv_check "one session of the application role is refused at coupon_lock.max_held_keys ($ceiling) with 53200" \
    test "${taken:-}|${state:-}|${message:-}" = "$ceiling|53200|too many coupon_lock advisory keys held by this session"
held=$(pv_psql -c "SELECT count(*) FROM coupon_lock.advisory_locks WHERE pid = ${flood_pid:-0} AND granted")
pv_check "the refused session still holds its $ceiling keys (held: $held)" test "$held" = "$ceiling"
others=$(pv_psql 2>&1 <<'SQL'
BEGIN;
SELECT count(*) FILTER (WHERE coupon_lock.advisory_xact_lock('other:' || i)) FROM generate_series(1, 500) i;
SELECT count(*) FILTER (WHERE pg_try_advisory_xact_lock(i)) FROM generate_series(1, 500) i;
COMMIT;
SET ROLE prove_app;
SELECT count(*) FILTER (WHERE coupon_lock.advisory_lock('second:' || i)) FROM generate_series(1, 500) i;
SQL
)
pv_check "meanwhile other sessions lock as usual (500 of ours and 500 core locks; 500 for a second session of the role)" \
    test "$(tr '\n' ' ' <<<"$others")" = "500 500 500 "
[ -n "${flood_pid:-}" ] && pv_psql -c "SELECT pg_terminate_backend($flood_pid)" >/dev/null
kill "$flood_job" 2>/dev/null
wait "$flood_job" 2>/dev/null
