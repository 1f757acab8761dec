-- test/prove/security.sql: privileges and search_path hijacking (run by
-- test/prove/security.sh as a superuser in a fresh database).  Checks go into
-- prove_sec.result and are printed at the end as "name|t" / "name|f|detail".
-- Generic over the catalog: functions and tables added to schema coupon_lock
-- later are covered without editing this file.

CREATE SCHEMA prove_sec;
CREATE TABLE prove_sec.result (n serial, name text, ok boolean, detail text);
GRANT USAGE ON SCHEMA prove_sec TO PUBLIC;
GRANT INSERT, SELECT ON prove_sec.result TO PUBLIC;
GRANT USAGE ON SEQUENCE prove_sec.result_n_seq TO PUBLIC;

-- Calls `q` and says which SQLSTATE it raised ('00000': none).
CREATE FUNCTION prove_sec.state_of(q text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE q;
    RETURN '00000';
EXCEPTION WHEN OTHERS THEN
    RETURN SQLSTATE;
END $$;
GRANT EXECUTE ON FUNCTION prove_sec.state_of(text) TO PUBLIC;

-- Every function of coupon_lock called with NULLs (the privilege check comes
-- before the function runs, so NULLs are enough) and the SQLSTATE of each.
CREATE FUNCTION prove_sec.call_all() RETURNS TABLE (fn text, sqlstate text) LANGUAGE sql AS $$
    SELECT p.oid::regprocedure::text,
           prove_sec.state_of(format('SELECT %s(%s)', p.oid::regproc,
               (SELECT string_agg('NULL::' || format_type(t, NULL), ', ')
                  FROM unnest(p.proargtypes::oid[]) t)))
      FROM pg_proc p WHERE p.pronamespace = 'coupon_lock'::regnamespace AND p.prokind = 'f'
$$;
GRANT EXECUTE ON FUNCTION prove_sec.call_all() TO PUBLIC;

-- Tries INSERT, UPDATE, DELETE, TRUNCATE on every table of coupon_lock and
-- nextval/setval on every sequence; returns what did not fail with 42501.
CREATE FUNCTION prove_sec.writes_allowed() RETURNS text LANGUAGE sql AS $$
    SELECT string_agg(q || ' -> ' || st, '; ') FROM (
        SELECT q, prove_sec.state_of(q) AS st FROM (
            SELECT unnest(ARRAY[
                       format('INSERT INTO %s DEFAULT VALUES', c.oid::regclass),
                       format('UPDATE %s SET %I = %I', c.oid::regclass, a.attname, a.attname),
                       format('DELETE FROM %s', c.oid::regclass),
                       format('TRUNCATE %s', c.oid::regclass)]) AS q
              FROM pg_class c
              JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum = 1
             WHERE c.relnamespace = 'coupon_lock'::regnamespace AND c.relkind IN ('r', 'p')
            UNION ALL
            SELECT unnest(ARRAY[format('SELECT nextval(%L)', c.oid::regclass),
                                format('SELECT setval(%L, 1)', c.oid::regclass)])
              FROM pg_class c
             WHERE c.relnamespace = 'coupon_lock'::regnamespace AND c.relkind = 'S'
            UNION ALL
            SELECT 'CREATE TABLE coupon_lock.planted (a int)'
            UNION ALL
            SELECT 'CREATE FUNCTION coupon_lock.planted() RETURNS int LANGUAGE sql AS ''SELECT 1'''
        ) qs) r
     WHERE st <> '42501'
$$;
GRANT EXECUTE ON FUNCTION prove_sec.writes_allowed() TO PUBLIC;

-- ---- the catalog ----

INSERT INTO prove_sec.result (name, ok, detail)
SELECT 'PUBLIC holds no privilege on the tables and sequences', count(*) = 0, string_agg(rel, ', ')
  FROM (SELECT c.oid::regclass::text || ' ' || a.privilege_type AS rel
          FROM pg_class c, aclexplode(c.relacl) a
         WHERE c.relnamespace = 'coupon_lock'::regnamespace AND a.grantee = 0) x;

INSERT INTO prove_sec.result (name, ok, detail)
SELECT 'PUBLIC cannot execute any function', count(*) = 0, string_agg(fn, ', ')
  FROM (SELECT p.oid::regprocedure::text AS fn FROM pg_proc p
         WHERE p.pronamespace = 'coupon_lock'::regnamespace
           AND (p.proacl IS NULL   -- the default ACL grants EXECUTE to PUBLIC
                OR EXISTS (SELECT FROM aclexplode(p.proacl) a WHERE a.grantee = 0))) x;

INSERT INTO prove_sec.result (name, ok, detail)
SELECT 'PUBLIC cannot create in schema coupon_lock', NOT EXISTS (
    SELECT FROM pg_namespace n, aclexplode(n.nspacl) a
     WHERE n.oid = 'coupon_lock'::regnamespace AND a.grantee = 0 AND a.privilege_type = 'CREATE'), NULL;

INSERT INTO prove_sec.result (name, ok, detail)
SELECT 'every SECURITY DEFINER function pins search_path = pg_catalog, pg_temp', count(*) = 0,
       string_agg(fn, ', ')
  FROM (SELECT p.oid::regprocedure::text AS fn FROM pg_proc p
         WHERE p.pronamespace = 'coupon_lock'::regnamespace AND p.prosecdef
           AND NOT coalesce('search_path=pg_catalog, pg_temp' = ANY (p.proconfig), false)) x;

-- ---- the roles of the privilege split (install/roles.sql) ----

INSERT INTO prove_sec.result (name, ok, detail)
SELECT 'CREATE EXTENSION made the three roles, NOLOGIN, each with a comment', count(*) = 3,
       string_agg(rolname || ' login=' || rolcanlogin || ' comment=' ||
                  (shobj_description(oid, 'pg_authid') IS NOT NULL), ', ')
  FROM pg_roles
 WHERE rolname IN ('coupon_lock_application', 'coupon_lock_admin', 'coupon_lock_monitor')
   AND NOT rolcanlogin AND shobj_description(oid, 'pg_authid') LIKE 'coupon_lock: %';

-- What each role may do that the others may not, as (function, role) pairs;
-- every function of coupon_lock is listed, so a function added later without
-- a decision on its role fails the check below.
CREATE TABLE prove_sec.split (fn text, app boolean, monitor boolean);
INSERT INTO prove_sec.split VALUES
    ('coupon_issue', true, false), ('coupon_claim', true, false), ('coupon_freeze', true, false),
    ('coupon_unfreeze', true, false), ('coupon_redeem', true, false),
    ('create_batch', false, false), ('coupon_revoke', false, false),
    ('release_expired_freezes', false, false), ('expire_coupons', false, false),
    ('lock_stats_reset', false, false), ('lock_stats', false, true),
    ('advisory_lock', true, false), ('advisory_xact_lock', true, false), ('advisory_unlock', true, false),
    ('advisory_lock_id', true, true), ('advisory_lock_key', true, true),
    ('lease_acquire', true, false), ('lease_renew', true, false), ('lease_release', true, false),
    ('lease_check', true, false),
    ('redis_lock', true, false), ('redis_unlock', true, false), ('redis_extend', true, false),
    ('redis_xact_lock', true, false), ('redis_lock_validity', true, false),
    ('hybrid_xact_lock', true, false),
    ('library_version', true, true), ('coupon_row_is_valid', false, false),
    ('guard_key', true, true), ('sweeper_stats', false, true), ('partition_of', true, true),
    -- the shard side of coupon_lock_router: called by the router's superuser
    -- connections only, granted to no role (not even coupon_lock_admin)
    ('shard_batch_open', false, false), ('shard_check_count', false, false), ('shard_check_id', false, false), ('shard_claim', false, false), ('shard_claim_sold_out', false, false), ('shard_coupon_batch', false, false), ('shard_in_flight', false, false), ('shard_issue', false, false), ('shard_issue_probe', false, false), ('shard_issue_settle', false, false), ('shard_mint', false, false), ('shard_quota_give_back', false, false), ('shard_quota_hold', false, false), ('shard_quota_holds', false, false), ('shard_quota_release', false, false), ('shard_quota_take', false, false), ('shard_require', false, false), ('shard_setup', false, false), ('shard_stock', false, false), ('shard_stock_give', false, false), ('shard_stock_receive', false, false), ('shard_transfer_delivered', false, false);
GRANT SELECT ON prove_sec.split TO PUBLIC;
CREATE TABLE prove_sec.answers (a bigint[]);
GRANT SELECT, INSERT ON prove_sec.answers TO PUBLIC;

CREATE ROLE prove_nobody;
CREATE ROLE prove_app IN ROLE coupon_lock_application;
CREATE ROLE prove_admin IN ROLE coupon_lock_admin;
CREATE ROLE prove_monitor IN ROLE coupon_lock_monitor;
CREATE ROLE prove_evil;
-- The planter gets everything (the old recipe), so that the planted objects
-- below meet every function.
GRANT USAGE ON SCHEMA coupon_lock TO prove_evil;
GRANT SELECT ON ALL TABLES IN SCHEMA coupon_lock TO prove_evil;
GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA coupon_lock TO prove_evil;
GRANT CREATE ON SCHEMA public TO prove_evil;

INSERT INTO prove_sec.result (name, ok, detail)
SELECT 'every function of coupon_lock has its place in the split', count(*) = 0, string_agg(proname, ', ')
  FROM pg_proc p WHERE p.pronamespace = 'coupon_lock'::regnamespace
   AND NOT EXISTS (SELECT FROM prove_sec.split s WHERE s.fn = p.proname);

SET ROLE prove_nobody;
INSERT INTO prove_sec.result (name, ok, detail)
SELECT 'a role without grants can call no function (42501)', count(*) FILTER (WHERE sqlstate <> '42501') = 0,
       string_agg(fn || ' -> ' || sqlstate, ', ') FILTER (WHERE sqlstate <> '42501')
  FROM prove_sec.call_all();
INSERT INTO prove_sec.result (name, ok, detail)
SELECT 'a role without grants cannot write the tables', w IS NULL, w FROM prove_sec.writes_allowed() w;
RESET ROLE;

-- call_all() as each role, against the split.
CREATE FUNCTION prove_sec.split_check(who text) RETURNS TABLE (name text, ok boolean, detail text)
LANGUAGE sql AS $$
    SELECT format('%s can execute exactly the functions of its role (42501 for the others)', who),
           count(*) FILTER (WHERE (c.sqlstate = '42501') = allowed) = 0,
           string_agg(c.fn || CASE WHEN allowed THEN ' refused' ELSE ' allowed' END, ', ')
               FILTER (WHERE (c.sqlstate = '42501') = allowed)
      FROM prove_sec.call_all() c
      JOIN prove_sec.split s ON s.fn = split_part(split_part(c.fn, '(', 1), '.', 2)
     CROSS JOIN LATERAL (SELECT CASE who WHEN 'coupon_lock_application' THEN s.app
                                         WHEN 'coupon_lock_monitor' THEN s.monitor
                                         ELSE NOT (s.fn = 'coupon_row_is_valid' OR s.fn LIKE 'shard\_%') END AS allowed) a
$$;
GRANT EXECUTE ON FUNCTION prove_sec.split_check(text) TO PUBLIC;

SET ROLE prove_app;
INSERT INTO prove_sec.result (name, ok, detail) SELECT * FROM prove_sec.split_check('coupon_lock_application');
INSERT INTO prove_sec.result (name, ok, detail)
SELECT 'the application role cannot write the tables, use the sequences or create objects',
       w IS NULL, w FROM prove_sec.writes_allowed() w;
INSERT INTO prove_sec.result (name, ok, detail)
SELECT 'the application role reads the tables and advisory_locks, not lock_stats',
       bool_and(has_table_privilege(c.oid, 'SELECT')) FILTER (WHERE c.relname <> 'lock_stats')
       AND NOT has_table_privilege('coupon_lock.lock_stats', 'SELECT'),
       string_agg(c.relname, ', ') FILTER (WHERE NOT has_table_privilege(c.oid, 'SELECT'))
  FROM pg_class c WHERE c.relnamespace = 'coupon_lock'::regnamespace
   AND c.relname IN ('batch', 'coupon', 'coupon_event', 'owner_quota', 'lease', 'advisory_locks', 'lock_stats');
-- Session locks on the guard's keys are the admin's; transaction locks on
-- them and session locks on any other key are everyone's.
INSERT INTO prove_sec.result (name, ok, detail)
SELECT 'the application role cannot take a session lock on a guard key (42501), but a transaction lock',
       got = '42501 00000 00000', got
  FROM (SELECT prove_sec.state_of($q$SELECT coupon_lock.advisory_lock('coupon:1')$q$) || ' ' ||
               prove_sec.state_of($q$SELECT coupon_lock.advisory_xact_lock('coupon:1')$q$) || ' ' ||
               prove_sec.state_of($q$SELECT coupon_lock.advisory_lock('order:1') AND coupon_lock.advisory_unlock('order:1')$q$) AS got) x;
RESET ROLE;

SET ROLE prove_monitor;
INSERT INTO prove_sec.result (name, ok, detail) SELECT * FROM prove_sec.split_check('coupon_lock_monitor');
INSERT INTO prove_sec.result (name, ok, detail)
SELECT 'the monitor role reads lock_stats and advisory_locks (USAGE on the schema), not the coupon tables',
       got = '00000 00000 42501', got
  FROM (SELECT prove_sec.state_of('SELECT count(*) FROM coupon_lock.lock_stats') || ' ' ||
               prove_sec.state_of('SELECT count(*) FROM coupon_lock.advisory_locks') || ' ' ||
               prove_sec.state_of('SELECT count(*) FROM coupon_lock.coupon') AS got) x;
RESET ROLE;

SET ROLE prove_admin;
INSERT INTO prove_sec.result (name, ok, detail) SELECT * FROM prove_sec.split_check('coupon_lock_admin');
INSERT INTO prove_sec.result (name, ok, detail)
SELECT 'the admin role takes a session lock on a guard key',
       coupon_lock.advisory_lock('coupon:1') AND coupon_lock.advisory_unlock('coupon:1'), NULL;
-- A batch for the application to work on.
SELECT coupon_lock.create_batch('sec', 3, 2, now() + interval '1 hour', '1 hour') AS b \gset
RESET ROLE;

-- The whole coupon API: the application's part as the application role, the
-- admin's part as the admin role.
SET ROLE prove_app;
SELECT coupon_lock.coupon_claim(:b, 'app-owner') AS c1 \gset
SELECT min(coupon_id) AS c2 FROM coupon_lock.coupon WHERE batch_id = :b AND state = 'available' \gset
INSERT INTO prove_sec.answers
SELECT array[coupon_lock.coupon_issue(:c2, 'app-owner', 1),
             coupon_lock.coupon_freeze(:c1, 'app-owner', 'app-order-1', 2),
             coupon_lock.coupon_unfreeze(:c1, 'app-order-1', 3),
             coupon_lock.coupon_freeze(:c1, 'app-owner', 'app-order-2', NULL, '1 hour'),
             coupon_lock.coupon_redeem(:c1, 'app-order-2')] AS a;
RESET ROLE;
SET ROLE prove_admin;
INSERT INTO prove_sec.result (name, ok, detail)
SELECT 'the application and admin roles run the whole coupon API between them',
       a || array[coupon_lock.coupon_revoke(:c2),
                   coupon_lock.release_expired_freezes(),
                   coupon_lock.expire_coupons(10)]::bigint[] = array[2, 3, 4, 5, 6, 3, 0, 0]::bigint[],
       NULL
  FROM prove_sec.answers;
RESET ROLE;

-- ---- planted functions and operators ----
-- prove_evil puts its own schema first on search_path (and pg_temp objects
-- besides) with a now() a century ahead, text and bigint "=" that are always
-- true, "<" on timestamps that is always false.  The extension's functions
-- must behave exactly as before.
CREATE SCHEMA prove_evil AUTHORIZATION prove_evil;
GRANT INSERT ON ALL TABLES IN SCHEMA prove_sec TO prove_evil;
GRANT CREATE ON SCHEMA prove_sec TO prove_evil;
SET ROLE prove_evil;
SET search_path = prove_evil, pg_catalog, coupon_lock, public;
CREATE FUNCTION prove_evil.now() RETURNS timestamptz LANGUAGE sql
    AS $$ SELECT pg_catalog.now() + interval '100 years' $$;
CREATE FUNCTION prove_evil.always(a text, b text) RETURNS boolean LANGUAGE sql AS 'SELECT true';
CREATE FUNCTION prove_evil.always(a bigint, b bigint) RETURNS boolean LANGUAGE sql AS 'SELECT true';
CREATE FUNCTION prove_evil.never(a timestamptz, b timestamptz) RETURNS boolean LANGUAGE sql AS 'SELECT false';
CREATE OPERATOR prove_evil.= (LEFTARG = text, RIGHTARG = text, FUNCTION = prove_evil.always);
CREATE OPERATOR prove_evil.= (LEFTARG = bigint, RIGHTARG = bigint, FUNCTION = prove_evil.always);
CREATE OPERATOR prove_evil.< (LEFTARG = timestamptz, RIGHTARG = timestamptz, FUNCTION = prove_evil.never);
CREATE FUNCTION pg_temp.now() RETURNS timestamptz LANGUAGE sql
    AS $$ SELECT pg_catalog.now() + interval '100 years' $$;
CREATE TABLE prove_evil.coupon (LIKE coupon_lock.coupon);
CREATE FUNCTION prove_evil.upper(text) RETURNS text LANGUAGE sql AS $$ SELECT 'PLANTED' $$;
CREATE FUNCTION prove_evil.md5(text) RETURNS text LANGUAGE sql AS $$ SELECT 'PLANTED' $$;

SELECT create_batch('evil', 4, 1, NULL, '1 hour') AS eb \gset
SELECT coupon_claim(:eb, 'victim') AS ec1 \gset
SELECT coupon_claim(:eb, 'victim-2') AS ec2 \gset
SELECT coupon_freeze(:ec1, 'victim', 'victim-order') AS ev1 \gset
-- (what each call answered is kept raw and compared after RESET search_path:
-- the planted "=" would answer our own comparisons too)
CREATE TABLE prove_sec.evil (name text, got text, want text);
INSERT INTO prove_sec.evil VALUES
    ('planted "=": a freeze for another owner is still refused',
     prove_sec.state_of(format('SELECT coupon_lock.coupon_freeze(%s, %L, %L)', :ec2, 'attacker', 'evil-order')), 'CL003'),
    ('planted "=": an unfreeze for another order is still refused',
     prove_sec.state_of(format('SELECT coupon_lock.coupon_unfreeze(%s, %L)', :ec1, 'evil-order')), 'CL004'),
    ('planted "=": a redeem for another order is still refused',
     prove_sec.state_of(format('SELECT coupon_lock.coupon_redeem(%s, %L)', :ec1, 'evil-order')), 'CL004'),
    ('planted "=": a stale expected_version is still refused',
     prove_sec.state_of(format('SELECT coupon_lock.coupon_revoke(%s, 1)', :ec1)), '40001'),
    ('planted now() and "<": release_expired_freezes leaves a fresh freeze alone',
     coupon_lock.release_expired_freezes()::text, '0');
RESET search_path;
RESET ROLE;

INSERT INTO prove_sec.result (name, ok, detail)
SELECT name, got = want, 'got ' || got || ', want ' || want FROM prove_sec.evil;

INSERT INTO prove_sec.result (name, ok, detail)
SELECT 'planted now(): frozen_until is set from the real now()',
       frozen_until BETWEEN now() + interval '59 minutes' AND now() + interval '61 minutes',
       frozen_until::text
  FROM coupon_lock.coupon WHERE coupon_id = :ec1;
INSERT INTO prove_sec.result (name, ok, detail)
SELECT 'planted upper() and md5(): coupon codes are made by pg_catalog''s', count(*) = 0,
       string_agg(code, ', ')
  FROM coupon_lock.coupon WHERE batch_id = :eb AND code LIKE '%PLANTED%';
INSERT INTO prove_sec.result (name, ok, detail)
SELECT 'planted table: the coupons went to coupon_lock.coupon',
       (SELECT count(*) FROM coupon_lock.coupon WHERE batch_id = :eb) = 4
       AND (SELECT count(*) FROM prove_evil.coupon) = 0, NULL;
