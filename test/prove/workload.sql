-- test/prove/workload.sql: the random coupon workload of the stress and crash
-- layers.  prove.step(op, pick, mode, r) runs one coupon operation on a coupon
-- chosen from `pick`, the way a client would (read the coupon, then call
-- with or without expected_version, sometimes stale, sometimes for the wrong
-- owner or order, sometimes repeating the call as an idempotent retry).
--
-- It returns what the client was told:
--   'op|coupon_id|version'  a transition (or idempotent retry) acknowledged
--   'claim|coupon_id'       a claim (coupon_id empty when sold out)
--   'op|n'                  a sweep or create_batch
--   'E|sqlstate'            an error the API documents for that situation
--   'X|sqlstate'            anything else, also kept in prove.unexpected
-- 40001 (a race with another client) and 40P01 are raised again so that
-- pgbench --max-tries retries the transaction; a stale expected_version on
-- purpose (mode 2) gets 'E|40001'.  "changed concurrently" is unexpected: the
-- row lock makes it impossible under READ COMMITTED.
--
-- psql variables: users (size of the owner pool), run_seconds (the length of
-- the run; one batch expires half way through it).

CREATE SCHEMA prove;
CREATE UNLOGGED TABLE prove.outcome (op text, result text);
CREATE TABLE prove.unexpected (
    at timestamptz DEFAULT clock_timestamp(), op text, coupon_id bigint,
    sqlstate text, message text, detail text);
CREATE TABLE prove.setting (name text PRIMARY KEY, value bigint);
INSERT INTO prove.setting VALUES ('users', :users);

-- A few batches: small per-user limits, short freeze TTLs, one that expires
-- in the middle of the run, one larger and one tiny (sold out at once).
SELECT coupon_lock.create_batch('stress-a', 600, 2, NULL, '300 ms'),
       coupon_lock.create_batch('stress-b', 600, 1, NULL, '200 ms'),
       coupon_lock.create_batch('stress-c', 1500, 3, NULL, '500 ms'),
       coupon_lock.create_batch('stress-expiring', 800, 2,
                                now() + make_interval(secs => :run_seconds / 2.0), '300 ms'),
       coupon_lock.create_batch('stress-tiny', 5, 1, NULL, '1 s') \g /dev/null

CREATE FUNCTION prove.pick(want coupon_lock.coupon_state, pick bigint, r int) RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
    maxid bigint := (SELECT next_coupon_id - 1 FROM coupon_lock.id_allocator);
    nbatch bigint := (SELECT last_value FROM coupon_lock.batch_id_seq);
    id bigint := 1 + pick % maxid;
    found_id bigint;
BEGIN
    -- one call in eight takes any coupon, whatever its state
    IF want IS NULL OR r % 8 = 0 THEN
        RETURN id;
    END IF;
    -- the others look for a coupon in the state the operation needs
    -- (through the extension's partial indexes: cheap at any size)
    IF want = 'available' THEN
        SELECT coupon_id INTO found_id FROM coupon_lock.coupon
         WHERE state = 'available' AND batch_id = 1 + pick % nbatch AND coupon_id >= id
         ORDER BY batch_id, coupon_id LIMIT 1;
    ELSIF want = 'issued' THEN
        SELECT coupon_id INTO found_id FROM coupon_lock.coupon
         WHERE state = 'issued' AND batch_id = 1 + pick % nbatch OFFSET r % 7 LIMIT 1;
    ELSE
        SELECT coupon_id INTO found_id FROM coupon_lock.coupon
         WHERE state = 'frozen' ORDER BY frozen_until DESC OFFSET r % 11 LIMIT 1;
    END IF;
    RETURN coalesce(found_id, id);
END $$;

CREATE FUNCTION prove.step(op text, pick bigint, mode int, r int) RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
    users int := (SELECT value FROM prove.setting WHERE name = 'users');
    nbatch bigint := (SELECT last_value FROM coupon_lock.batch_id_seq);
    c coupon_lock.coupon;
    id bigint;
    ev bigint;
    v bigint;
    v2 bigint;
    n bigint;
    owner text;
    ord text;
    ttl interval := CASE r % 4 WHEN 0 THEN NULL WHEN 1 THEN interval '50 ms'
                                WHEN 2 THEN interval '1 s' ELSE interval '300 ms' END;
    st text;
    msg text;
    det text;
BEGIN
    IF op = 'claim' THEN
        id := coupon_lock.coupon_claim(1 + pick % nbatch, 'u' || r % users);
        INSERT INTO prove.outcome VALUES (op, 'ok');
        RETURN 'claim|' || coalesce(id::text, '');
    ELSIF op = 'release' THEN
        n := coupon_lock.release_expired_freezes(1 + r % 50);
        INSERT INTO prove.outcome VALUES (op, 'ok');
        RETURN op || '|' || n;
    ELSIF op = 'expire' THEN
        n := coupon_lock.expire_coupons(1 + r % 50);
        INSERT INTO prove.outcome VALUES (op, 'ok');
        RETURN op || '|' || n;
    ELSIF op = 'create' THEN
        n := coupon_lock.create_batch('stress-more', 20 + r % 80, 1 + r % 3,
                                      CASE WHEN r % 2 = 0 THEN now() + interval '5 s' END, '300 ms');
        INSERT INTO prove.outcome VALUES (op, 'ok');
        RETURN op || '|' || n;
    END IF;

    id := prove.pick(CASE op WHEN 'issue' THEN 'available' WHEN 'freeze' THEN 'issued'
                             WHEN 'unfreeze' THEN 'frozen' WHEN 'redeem' THEN 'frozen'
                             END::coupon_lock.coupon_state, pick, r);
    SELECT * INTO c FROM coupon_lock.coupon WHERE coupon_id = id;
    -- mode 0: no expected_version; 1: the version just read; 2: a stale one
    ev := CASE mode WHEN 0 THEN NULL WHEN 1 THEN c.version ELSE greatest(c.version - 1, 1) END;
    -- mostly the coupon's own owner and order; one call in ten another one
    owner := CASE WHEN r % 10 = 9 OR c.owner_id IS NULL THEN 'u' || r % users ELSE c.owner_id END;
    ord := CASE WHEN r % 10 <> 8 AND c.order_id IS NOT NULL THEN c.order_id
                ELSE 'o' || id || '-' || r % 3 END;

    IF op = 'issue' THEN
        v := coupon_lock.coupon_issue(id, 'u' || r % users, ev);
    ELSIF op = 'freeze' THEN
        v := coupon_lock.coupon_freeze(id, owner, ord, ev, ttl);
        IF r % 3 = 0 THEN
            v2 := coupon_lock.coupon_freeze(id, owner, ord);
        END IF;
    ELSIF op = 'unfreeze' THEN
        v := coupon_lock.coupon_unfreeze(id, ord, ev);
        IF r % 3 = 0 THEN
            v2 := coupon_lock.coupon_unfreeze(id, ord);
        END IF;
    ELSIF op = 'redeem' THEN
        v := coupon_lock.coupon_redeem(id, ord, ev);
        IF r % 3 = 0 THEN
            v2 := coupon_lock.coupon_redeem(id, ord);
        END IF;
    ELSIF op = 'revoke' THEN
        v := coupon_lock.coupon_revoke(id, ev);
    ELSE
        RAISE EXCEPTION 'unknown workload op %', op;
    END IF;
    -- an idempotent retry right after the call, with the row still locked by
    -- this transaction, must return the same version and change nothing
    IF v2 IS NOT NULL AND v2 <> v THEN
        INSERT INTO prove.unexpected (op, coupon_id, message)
        VALUES (op, id, format('retry returned version %s after %s', v2, v));
    END IF;
    INSERT INTO prove.outcome VALUES (op, 'ok');
    RETURN op || '|' || id || '|' || v;
EXCEPTION WHEN OTHERS THEN
    GET STACKED DIAGNOSTICS st = RETURNED_SQLSTATE, msg = MESSAGE_TEXT, det = PG_EXCEPTION_DETAIL;
    IF st = '40P01' OR (st = '40001' AND mode < 2 AND msg NOT LIKE '%changed concurrently%') THEN
        RAISE;
    END IF;
    IF st IN ('40001', '55000', 'CL001', 'CL002', 'CL003', 'CL004', 'CL005', 'CL006') THEN
        INSERT INTO prove.outcome VALUES (op, st);
        RETURN 'E|' || st;
    END IF;
    INSERT INTO prove.unexpected (op, coupon_id, sqlstate, message, detail)
    VALUES (op, id, st, msg, det);
    RETURN 'X|' || st;
END $$;
