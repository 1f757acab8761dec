# Sourced by security.sh: the Redis password never shows to non-superusers
# (SHOW, current_setting, pg_settings, error messages) and the extension
# never writes it to the server log.
# Skipped until coupon_lock.redis_password exists.
if ! pv_has_setting redis_password; then
    pv_skip "Redis password checks: setting coupon_lock.redis_password does not exist yet"
else
    secret="prove-secret-$$-$RANDOM"
    pv_psql -c "ALTER SYSTEM SET coupon_lock.redis_password = '$secret'" -c "SELECT pg_reload_conf()" >/dev/null
    sleep 1   # the reload is asynchronous
    # PostgreSQL itself logs 'parameter "..." changed to "..."' with the new
    # value of any setting changed by a reload, superuser-only or not
    # (docs/testing.md); what the extension logs is checked from here on.
    mark=$(pv_log_mark)
    seen=$("$CL_PGBIN/psql" -X -q -At -d "$PV_DB" 2>&1 <<SQL
SET coupon_lock.redis_host = '127.0.0.1';
SET coupon_lock.redis_port = ${CL_REDIS_PORT:-6489};
SET ROLE prove_app;
SELECT prove_sec.state_of('SHOW coupon_lock.redis_password');
SELECT prove_sec.state_of('SELECT current_setting(''coupon_lock.redis_password'')');
SELECT string_agg(concat_ws(' ', name, setting, reset_val, boot_val), ';') FROM pg_settings
 WHERE name = 'coupon_lock.redis_password' OR setting LIKE '%$secret%';
SHOW coupon_lock.redis_password;
SELECT current_setting('coupon_lock.redis_password', true);
SELECT coupon_lock.redis_lock('prove-secret-key', '1 second');
SELECT coupon_lock.redis_lock('prove-secret-key', '1 second');
RESET ROLE;
SQL
    )
    pv_psql -c "ALTER SYSTEM RESET coupon_lock.redis_password" -c "SELECT pg_reload_conf()" >/dev/null
    echo "$seen" | head -n 4
    pv_check "a non-superuser cannot SHOW or current_setting() the Redis password (42501)" \
        test "$(echo "$seen" | head -n 2 | tr '\n' ' ')" = "42501 42501 "
    pv_check "the Redis password shows nowhere in what a non-superuser sees (SHOW, pg_settings, errors)" \
        bash -c '! grep -qF -- "$1" <<<"$2"' _ "$secret" "$seen"
    if pv_log_since "$mark" | grep -qF -- "$secret"; then
        pv_fail "the Redis password is in the server log"
    else
        pv_ok "the Redis password is not in the server log"
    fi
fi
