-- coupon_lock install script: retry-safe claims (src/claim_request.c)
-- (coupon_claim itself is declared with the coupons, install/coupon.sql)

-- With a request_id, coupon_claim records its answer here in the same transaction
-- as the claim; a repeated call with the same key returns it and changes nothing.
-- The primary key is what serialises two calls with the same key.
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

