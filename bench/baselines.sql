-- bench/baselines.sql: what users write today instead of coupon_lock, loaded by
-- bench/run.sh next to the extension.  The baselines work on tables of their
-- own with coupon_lock's columns, defaults and checks and the indexes a user
-- would write for this workload (the ones coupon_lock 1.0 had): partial
-- indexes on state for the available, issued and frozen coupons.  Every
-- transition changes state, so none of their updates is HOT; coupon_lock's own
-- schema (install/coupon.sql) avoids that, and that work counts in its favour.
--
--   bench_plpgsql  the same coupon contract in PL/pgSQL: SELECT ... FOR UPDATE,
--                  the checks, an UPDATE guarded by the version (compare-and-
--                  swap), a ledger INSERT.  Two claims, both with the per-user
--                  limit check and the ledger row: coupon_claim_skip, the strong
--                  way (FOR UPDATE SKIP LOCKED LIMIT 1 on the partial index of
--                  available coupons, no ORDER BY), and coupon_claim, the weak
--                  way (... ORDER BY coupon_id LIMIT 1 FOR UPDATE SKIP LOCKED),
--                  which walks past claimed rows and collapses as a batch drains.
--   bench_sql      the floors: one UPDATE ... WHERE state = ... RETURNING per
--                  transition, no ledger, no version check, no error detail, no
--                  per-user limit; the claim floor addresses its coupon with a
--                  sequence: WHERE coupon_id = (SELECT first + nextval(seq) - 1).
--                  The pgbench scripts hold its statements (bench/cycle_sql.sql,
--                  bench/claim_floor.sql).
--
-- Needs CREATE EXTENSION coupon_lock first (for the enum type and the tables
-- to copy).  Safe to load again: it drops and recreates both schemas.

DROP SCHEMA IF EXISTS bench_plpgsql CASCADE;
DROP SCHEMA IF EXISTS bench_sql CASCADE;
CREATE SCHEMA bench_plpgsql;
CREATE SCHEMA bench_sql;

DO $$
DECLARE
    s text;
BEGIN
    FOREACH s IN ARRAY ARRAY['bench_plpgsql', 'bench_sql'] LOOP
        EXECUTE format('CREATE SEQUENCE %I.batch_id_seq', s);
        EXECUTE format('CREATE SEQUENCE %I.coupon_event_id_seq', s);
        EXECUTE format('CREATE SEQUENCE %I.coupon_id_seq', s);
        EXECUTE format('CREATE TABLE %I.batch (LIKE coupon_lock.batch INCLUDING DEFAULTS INCLUDING CONSTRAINTS,'
                       ' PRIMARY KEY (batch_id))', s);
        EXECUTE format('CREATE TABLE %I.coupon (LIKE coupon_lock.coupon INCLUDING DEFAULTS INCLUDING CONSTRAINTS,'
                       ' PRIMARY KEY (coupon_id), UNIQUE (code))', s);
        EXECUTE format('CREATE INDEX ON %I.coupon (batch_id, coupon_id) WHERE state = ''available''', s);
        EXECUTE format('CREATE INDEX ON %I.coupon (batch_id) WHERE state = ''issued''', s);
        EXECUTE format('CREATE INDEX ON %I.coupon (frozen_until) WHERE state = ''frozen''', s);
        EXECUTE format('CREATE INDEX ON %I.coupon (owner_id, batch_id) WHERE owner_id IS NOT NULL', s);
        EXECUTE format('CREATE TABLE %I.coupon_event (LIKE coupon_lock.coupon_event INCLUDING ALL)', s);
        -- the copied defaults still name coupon_lock's sequences: point them home
        EXECUTE format('ALTER TABLE %1$I.batch ALTER batch_id SET DEFAULT nextval(%2$L)',
                       s, s || '.batch_id_seq');
        EXECUTE format('ALTER TABLE %1$I.coupon_event ALTER event_id SET DEFAULT nextval(%2$L)',
                       s, s || '.coupon_event_id_seq');
    END LOOP;
END
$$;

-- A batch and its coupons, as create_batch makes them (contiguous ids, unique codes).
CREATE FUNCTION bench_plpgsql.create_batch(schema_name text, name text, quantity integer,
                                           per_user_limit integer DEFAULT 1)
RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE
    b bigint;
    first bigint;
BEGIN
    EXECUTE format('SELECT nextval(%L)', schema_name || '.coupon_id_seq') INTO first;
    EXECUTE format('SELECT setval(%L, $1 + $2 - 1)', schema_name || '.coupon_id_seq')
        USING first, quantity;
    EXECUTE format('INSERT INTO %I.batch (name, quantity, per_user_limit, freeze_ttl, first_coupon_id)'
                   ' VALUES ($1, $2, $3, interval ''15 minutes'', $4) RETURNING batch_id', schema_name)
        INTO b USING name, quantity, per_user_limit, first;
    EXECUTE format('INSERT INTO %I.coupon (coupon_id, batch_id, code)'
                   ' SELECT $1 + g - 1, $2, upper(to_hex($1 + g - 1)) || ''-'' ||'
                   '        upper(left(md5(gen_random_uuid()::text), 8))'
                   '   FROM generate_series(1, $3) g', schema_name)
        USING first, b, quantity;
    RETURN b;
END
$$;

-- ---- the PL/pgSQL contract ----

CREATE FUNCTION bench_plpgsql.coupon_freeze(p_coupon_id bigint, p_owner_id text, p_order_id text,
                                            p_expected_version bigint DEFAULT NULL,
                                            p_ttl interval DEFAULT NULL)
RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE
    c bench_plpgsql.coupon;
    b bench_plpgsql.batch;
    v bigint;
BEGIN
    IF p_coupon_id IS NULL OR p_owner_id IS NULL OR p_order_id IS NULL THEN
        RAISE EXCEPTION 'arguments must not be null' USING ERRCODE = '22004';
    END IF;
    SELECT * INTO c FROM bench_plpgsql.coupon WHERE coupon_id = p_coupon_id FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'coupon % does not exist', p_coupon_id USING ERRCODE = 'P0002';
    END IF;
    SELECT * INTO b FROM bench_plpgsql.batch WHERE batch_id = c.batch_id;
    IF c.state = 'frozen' AND c.frozen_until >= now() AND c.order_id = p_order_id THEN
        IF c.owner_id IS DISTINCT FROM p_owner_id THEN
            RAISE EXCEPTION 'coupon % belongs to another owner', p_coupon_id USING ERRCODE = '42501';
        END IF;
        RETURN c.version;                       -- idempotent retry
    END IF;
    IF p_expected_version IS NOT NULL AND p_expected_version <> c.version THEN
        RAISE EXCEPTION 'coupon % is not at the expected version', p_coupon_id
            USING ERRCODE = '40001', DETAIL = format('The current version is %s.', c.version);
    END IF;
    IF c.state <> 'issued' THEN
        RAISE EXCEPTION 'cannot freeze coupon % in state "%"', p_coupon_id, c.state USING ERRCODE = '55000';
    END IF;
    IF c.owner_id IS DISTINCT FROM p_owner_id THEN
        RAISE EXCEPTION 'coupon % belongs to another owner', p_coupon_id USING ERRCODE = '42501';
    END IF;
    IF b.valid_until < now() THEN
        RAISE EXCEPTION 'batch % has expired', b.batch_id USING ERRCODE = '22008';
    END IF;
    UPDATE bench_plpgsql.coupon
       SET state = 'frozen', order_id = p_order_id,
           frozen_until = now() + coalesce(p_ttl, b.freeze_ttl),
           version = version + 1, updated_at = now()
     WHERE coupon_id = p_coupon_id AND version = c.version
    RETURNING version INTO v;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'coupon % changed concurrently', p_coupon_id USING ERRCODE = '40001';
    END IF;
    INSERT INTO bench_plpgsql.coupon_event (coupon_id, op, from_state, to_state, version, owner_id, order_id)
    VALUES (p_coupon_id, 'freeze', c.state, 'frozen', v, c.owner_id, p_order_id);
    RETURN v;
END
$$;

CREATE FUNCTION bench_plpgsql.coupon_unfreeze(p_coupon_id bigint, p_order_id text,
                                              p_expected_version bigint DEFAULT NULL)
RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE
    c bench_plpgsql.coupon;
    e bench_plpgsql.coupon_event;
    expired boolean;
    to_state coupon_lock.coupon_state;
    v bigint;
BEGIN
    IF p_coupon_id IS NULL OR p_order_id IS NULL THEN
        RAISE EXCEPTION 'arguments must not be null' USING ERRCODE = '22004';
    END IF;
    SELECT * INTO c FROM bench_plpgsql.coupon WHERE coupon_id = p_coupon_id FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'coupon % does not exist', p_coupon_id USING ERRCODE = 'P0002';
    END IF;
    IF c.state IN ('issued', 'expired') THEN    -- an idempotent retry by the same order?
        SELECT * INTO e FROM bench_plpgsql.coupon_event
         WHERE coupon_id = p_coupon_id ORDER BY event_id DESC LIMIT 1;
        IF FOUND AND e.op IN ('unfreeze', 'release') AND e.order_id = p_order_id
           AND e.version = c.version THEN
            RETURN c.version;
        END IF;
    END IF;
    IF p_expected_version IS NOT NULL AND p_expected_version <> c.version THEN
        RAISE EXCEPTION 'coupon % is not at the expected version', p_coupon_id
            USING ERRCODE = '40001', DETAIL = format('The current version is %s.', c.version);
    END IF;
    IF c.state <> 'frozen' THEN
        RAISE EXCEPTION 'cannot unfreeze coupon % in state "%"', p_coupon_id, c.state USING ERRCODE = '55000';
    END IF;
    IF c.order_id IS DISTINCT FROM p_order_id THEN
        RAISE EXCEPTION 'coupon % is frozen for another order', p_coupon_id USING ERRCODE = '42501';
    END IF;
    SELECT valid_until < now() INTO expired FROM bench_plpgsql.batch WHERE batch_id = c.batch_id;
    to_state := CASE WHEN expired THEN 'expired' ELSE 'issued' END;
    UPDATE bench_plpgsql.coupon
       SET state = to_state, order_id = NULL, frozen_until = NULL,
           version = version + 1, updated_at = now()
     WHERE coupon_id = p_coupon_id AND version = c.version
    RETURNING version INTO v;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'coupon % changed concurrently', p_coupon_id USING ERRCODE = '40001';
    END IF;
    INSERT INTO bench_plpgsql.coupon_event (coupon_id, op, from_state, to_state, version, owner_id, order_id)
    VALUES (p_coupon_id, 'unfreeze', c.state, to_state, v, c.owner_id, p_order_id);
    RETURN v;
END
$$;

-- The flash-sale claim as it is usually written: check the owner's count under
-- a lock on the owner (else two concurrent claims of one owner both pass), then
-- take the first available coupon nobody else has locked.
CREATE FUNCTION bench_plpgsql.coupon_claim(p_batch_id bigint, p_owner_id text)
RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE
    b bench_plpgsql.batch;
    held integer;
    cid bigint;
    cver bigint;
BEGIN
    IF p_batch_id IS NULL OR p_owner_id IS NULL THEN
        RAISE EXCEPTION 'arguments must not be null' USING ERRCODE = '22004';
    END IF;
    SELECT * INTO b FROM bench_plpgsql.batch WHERE batch_id = p_batch_id;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'batch % does not exist', p_batch_id USING ERRCODE = 'P0002';
    END IF;
    IF b.valid_until < now() THEN
        RAISE EXCEPTION 'batch % has expired', p_batch_id USING ERRCODE = '22008';
    END IF;
    PERFORM pg_advisory_xact_lock(hashtextextended(p_batch_id || ':' || p_owner_id, 0));
    SELECT count(*) INTO held FROM bench_plpgsql.coupon
     WHERE owner_id = p_owner_id AND batch_id = p_batch_id AND state <> 'revoked';
    IF held >= b.per_user_limit THEN
        RAISE EXCEPTION 'owner "%" has reached the limit of batch %', p_owner_id, p_batch_id
            USING ERRCODE = '54000';
    END IF;
    SELECT coupon_id, version INTO cid, cver FROM bench_plpgsql.coupon
     WHERE batch_id = p_batch_id AND state = 'available'
     ORDER BY coupon_id LIMIT 1
       FOR UPDATE SKIP LOCKED;
    IF NOT FOUND THEN
        RETURN NULL;                            -- sold out
    END IF;
    UPDATE bench_plpgsql.coupon
       SET state = 'issued', owner_id = p_owner_id, version = version + 1, updated_at = now()
     WHERE coupon_id = cid AND version = cver;
    INSERT INTO bench_plpgsql.coupon_event (coupon_id, op, from_state, to_state, version, owner_id)
    VALUES (cid, 'claim', 'available', 'issued', cver + 1, p_owner_id);
    RETURN cid;
END
$$;

-- The strong way to write the same claim: no ORDER BY, so each claimer takes
-- the first coupon of the partial index nobody has locked, without queueing
-- behind rows the others hold.  Without ORDER BY the planner may pick a
-- sequential scan for LIMIT 1, which walks every claimed row of every batch
-- from the start of the table (2.8 million instructions per claim in
-- bench/profile.sh): the function keeps it on the partial index, as a user who
-- looked at the plan would.
CREATE FUNCTION bench_plpgsql.coupon_claim_skip(p_batch_id bigint, p_owner_id text)
RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE
    b bench_plpgsql.batch;
    held integer;
    cid bigint;
    cver bigint;
BEGIN
    IF p_batch_id IS NULL OR p_owner_id IS NULL THEN
        RAISE EXCEPTION 'arguments must not be null' USING ERRCODE = '22004';
    END IF;
    SELECT * INTO b FROM bench_plpgsql.batch WHERE batch_id = p_batch_id;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'batch % does not exist', p_batch_id USING ERRCODE = 'P0002';
    END IF;
    IF b.valid_until < now() THEN
        RAISE EXCEPTION 'batch % has expired', p_batch_id USING ERRCODE = '22008';
    END IF;
    PERFORM pg_advisory_xact_lock(hashtextextended(p_batch_id || ':' || p_owner_id, 0));
    SELECT count(*) INTO held FROM bench_plpgsql.coupon
     WHERE owner_id = p_owner_id AND batch_id = p_batch_id AND state <> 'revoked';
    IF held >= b.per_user_limit THEN
        RAISE EXCEPTION 'owner "%" has reached the limit of batch %', p_owner_id, p_batch_id
            USING ERRCODE = '54000';
    END IF;
    SELECT coupon_id, version INTO cid, cver FROM bench_plpgsql.coupon
     WHERE batch_id = p_batch_id AND state = 'available'
     LIMIT 1
       FOR UPDATE SKIP LOCKED;
    IF NOT FOUND THEN
        RETURN NULL;                            -- sold out
    END IF;
    UPDATE bench_plpgsql.coupon
       SET state = 'issued', owner_id = p_owner_id, version = version + 1, updated_at = now()
     WHERE coupon_id = cid AND version = cver;
    INSERT INTO bench_plpgsql.coupon_event (coupon_id, op, from_state, to_state, version, owner_id)
    VALUES (cid, 'claim', 'available', 'issued', cver + 1, p_owner_id);
    RETURN cid;
END
$$;
ALTER FUNCTION bench_plpgsql.coupon_claim_skip(bigint, text) SET enable_seqscan = off;


-- ---- setup helpers for bench/run.sh (not part of any contender's hot path) ----

-- Issues every coupon of a batch to owner 'u<coupon_id>' in one statement, so
-- that the freeze/unfreeze cycle has issued coupons to work on.
CREATE FUNCTION bench_plpgsql.issue_all(schema_name text, p_batch_id bigint)
RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE format('UPDATE %I.coupon SET state = ''issued'', owner_id = ''u'' || coupon_id,'
                   ' version = version + 1 WHERE batch_id = $1 AND state = ''available''', schema_name)
        USING p_batch_id;
END
$$;

-- A coupon_lock batch of `quantity` coupons written issued at once (owner
-- u<coupon_id>, version 2, as create_batch plus issue_all leave them), with ids
-- from coupon_lock's allocator: the 10M-coupon setup of the "big" workload in
-- one pass instead of two.
CREATE FUNCTION bench_plpgsql.issued_batch(name text, quantity integer)
RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE
    first bigint;
    b bigint;
BEGIN
    INSERT INTO coupon_lock.id_allocator AS a (singleton, next_coupon_id) VALUES (true, 1 + quantity)
        ON CONFLICT (singleton) DO UPDATE SET next_coupon_id = a.next_coupon_id + quantity
        RETURNING next_coupon_id - quantity INTO first;
    INSERT INTO coupon_lock.batch (name, quantity, per_user_limit, freeze_ttl, first_coupon_id)
        VALUES (name, quantity, 1, interval '15 minutes', first) RETURNING batch_id INTO b;
    INSERT INTO coupon_lock.coupon (coupon_id, batch_id, code, state, owner_id, version)
    SELECT first + g - 1, b, upper(to_hex(first + g - 1)) || '-' || upper(left(md5(gen_random_uuid()::text), 8)),
           'issued', 'u' || (first + g - 1), 2
      FROM generate_series(1, quantity) g;
    RETURN b;
END
$$;

-- Oversell check after a claim run: returns one row of counts.
CREATE FUNCTION bench_plpgsql.claim_check(schema_name text, p_batch_id bigint,
                                          OUT quantity integer, OUT issued bigint,
                                          OUT claim_events bigint, OUT coupons_claimed_twice bigint,
                                          OUT owners_over_limit bigint)
LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE format('SELECT b.quantity,'
                   '  (SELECT count(*) FROM %1$I.coupon c WHERE c.batch_id = b.batch_id AND c.state <> ''available''),'
                   '  (SELECT count(*) FROM %1$I.coupon_event e JOIN %1$I.coupon c USING (coupon_id)'
                   '    WHERE c.batch_id = b.batch_id AND e.op = ''claim''),'
                   '  (SELECT count(*) FROM (SELECT e.coupon_id FROM %1$I.coupon_event e JOIN %1$I.coupon c USING (coupon_id)'
                   '    WHERE c.batch_id = b.batch_id AND e.op = ''claim'' GROUP BY 1 HAVING count(*) > 1) x),'
                   '  (SELECT count(*) FROM (SELECT owner_id FROM %1$I.coupon c WHERE c.batch_id = b.batch_id'
                   '    AND c.owner_id IS NOT NULL AND c.state <> ''revoked'''
                   '    GROUP BY 1 HAVING count(*) > b.per_user_limit) y)'
                   '  FROM %1$I.batch b WHERE b.batch_id = $1', schema_name)
        INTO quantity, issued, claim_events, coupons_claimed_twice, owners_over_limit
        USING p_batch_id;
END
$$;
