-- test/prove/ha_standby.sql: calls every function of schema coupon_lock,
-- as pg_proc lists it, so that a function added later is tried too (issue
-- 11 item 2).  Created on the primary; ha.sh runs prove_ha.call_all() on a
-- hot standby.  Each function gets one value of each argument's type (all
-- arguments, so that overloads cannot be ambiguous) and answers with its
-- SQLSTATE and hint; pv_sql_checks reads "name|t|detail" lines.
CREATE SCHEMA prove_ha;
CREATE FUNCTION prove_ha.sample(t regtype) RETURNS text LANGUAGE sql STABLE AS $$
    SELECT CASE
        WHEN t = 'text'::regtype THEN quote_literal('ha-probe') || '::text'
        WHEN t IN ('bigint'::regtype, 'integer'::regtype) THEN '1::' || t::text
        WHEN t = 'interval'::regtype THEN '''1 minute''::interval'
        WHEN t = 'boolean'::regtype THEN 'true'
        WHEN t = 'timestamptz'::regtype THEN '(now() + interval ''1 day'')'
        WHEN EXISTS (SELECT FROM pg_enum WHERE enumtypid = t)
            THEN quote_literal((SELECT enumlabel FROM pg_enum WHERE enumtypid = t
                                 ORDER BY enumsortorder LIMIT 1)) || '::' || t::text
        ELSE 'NULL::' || t::text
    END $$;

-- One row per function: its call, and what it answered on this server.
CREATE FUNCTION prove_ha.call_all(
    OUT fn text, OUT call text, OUT code text, OUT message text, OUT hint text)
RETURNS SETOF record LANGUAGE plpgsql AS $$
DECLARE
    p record;
BEGIN
    SET LOCAL statement_timeout = '10s';
    FOR p IN SELECT pr.oid::regprocedure::text AS sig, pr.proname,
                    (SELECT string_agg(prove_ha.sample(a.t), ', ' ORDER BY a.n)
                       FROM unnest(pr.proargtypes::oid[]) WITH ORDINALITY AS a(t, n)) AS args
               FROM pg_proc pr
              WHERE pr.pronamespace = 'coupon_lock'::regnamespace AND pr.prokind = 'f'
              ORDER BY 1
    LOOP
        fn := p.sig;
        call := format('SELECT * FROM coupon_lock.%I(%s)', p.proname, coalesce(p.args, ''));
        code := NULL; message := NULL; hint := NULL;
        BEGIN
            EXECUTE call;
        EXCEPTION WHEN OTHERS THEN
            GET STACKED DIAGNOSTICS code = RETURNED_SQLSTATE, message = MESSAGE_TEXT,
                                    hint = PG_EXCEPTION_HINT;
        END;
        RETURN NEXT;
    END LOOP;
END $$;
