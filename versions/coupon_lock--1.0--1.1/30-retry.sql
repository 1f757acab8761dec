
-- retry-safe claims and issues (src/claim_request.c, src/coupon.c; install/claim_request.sql)
CREATE TABLE coupon_lock.claim_request (
    batch_id   bigint      NOT NULL,
    owner_id   text        NOT NULL,
    request_id text        NOT NULL,
    coupon_id  bigint,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (batch_id, owner_id, request_id)
);
COMMENT ON TABLE coupon_lock.claim_request IS
    'answers of coupon_claim calls made with a request_id, one row per (batch_id, owner_id, request_id)';
COMMENT ON COLUMN coupon_lock.claim_request.coupon_id IS
    'the coupon the first call got; NULL: the batch was sold out';
SELECT pg_catalog.pg_extension_config_dump('coupon_lock.claim_request', '');
REVOKE ALL ON TABLE coupon_lock.claim_request FROM PUBLIC;

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
