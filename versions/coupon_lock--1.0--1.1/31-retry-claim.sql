-- coupon_claim gains request_id and coupon_issue its retries (src/claim_request.c, src/coupon.c);
-- the table they record answers in is 30-retry.sql, which is install/claim_request.sql itself.

-- coupon_claim gains request_id: a new signature, so the 1.0 function is dropped
-- and created again.  Privileges granted on the old one do not carry over (a
-- GRANT inside this script would become part of the extension's initial
-- privileges and vanish from pg_dump): name the roles that must be granted again.
DO $$
DECLARE
    grantees text;
BEGIN
    SELECT string_agg(DISTINCT a.grantee::regrole::text, ', ')
      INTO grantees
      FROM pg_catalog.pg_proc p, pg_catalog.aclexplode(p.proacl) a
     WHERE p.oid = 'coupon_lock.coupon_claim(bigint, text)'::pg_catalog.regprocedure
       AND a.privilege_type = 'EXECUTE' AND a.grantee <> p.proowner AND a.grantee <> 0;
    IF grantees IS NOT NULL THEN
        RAISE WARNING 'EXECUTE on coupon_lock.coupon_claim granted to % is not carried over to its new signature', grantees
            USING HINT = format('Run GRANT EXECUTE ON FUNCTION coupon_lock.coupon_claim(bigint, text, text) TO %s;', grantees);
    END IF;
END $$;
DROP FUNCTION coupon_lock.coupon_claim(bigint, text);
CREATE FUNCTION coupon_lock.coupon_claim(batch_id bigint, owner_id text, request_id text DEFAULT NULL)
RETURNS bigint AS 'MODULE_PATHNAME', 'coupon_lock_coupon_claim'
LANGUAGE C VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION coupon_lock.coupon_claim(bigint, text, text) IS
    'issues one available coupon of the batch to owner_id and returns its coupon_id; NULL when sold out; '
    'with a request_id, a repeated call returns the first call''s answer and changes nothing';
REVOKE ALL ON FUNCTION coupon_lock.coupon_claim(bigint, text, text) FROM PUBLIC;

COMMENT ON FUNCTION coupon_lock.coupon_issue(bigint, text, bigint) IS
    'available -> issued to owner_id; returns the new version (the current one for a repeat by the same owner with no transition in between)';
