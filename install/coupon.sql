-- coupon_lock install script, part 1: coupons (src/coupon.c, src/claim.c, src/sweep.c, src/batch.c)
\echo Use "CREATE EXTENSION coupon_lock" to load this file. \quit

-- The extension's tables are written only by its SECURITY DEFINER functions.
-- PUBLIC gets nothing here; the README shows the grants for an application role.

CREATE TYPE coupon_lock.coupon_state AS ENUM
    ('available', 'issued', 'frozen', 'redeemed', 'expired', 'revoked');
COMMENT ON TYPE coupon_lock.coupon_state IS
    'life cycle of a coupon: available -> issued -> frozen -> redeemed; expired and revoked are final';

-- Sequences are plain (not identity columns) so that pg_dump can carry their
-- positions through pg_extension_config_dump.
CREATE SEQUENCE coupon_lock.batch_id_seq;
COMMENT ON SEQUENCE coupon_lock.batch_id_seq IS 'batch ids';
CREATE SEQUENCE coupon_lock.coupon_event_id_seq;
COMMENT ON SEQUENCE coupon_lock.coupon_event_id_seq IS 'ledger event ids';

CREATE TABLE coupon_lock.batch (
    batch_id        bigint      NOT NULL DEFAULT nextval('coupon_lock.batch_id_seq') PRIMARY KEY,
    name            text        NOT NULL,
    quantity        integer     NOT NULL CHECK (quantity > 0),
    per_user_limit  integer     NOT NULL CHECK (per_user_limit > 0),
    valid_until     timestamptz,
    freeze_ttl      interval    NOT NULL CHECK (freeze_ttl > interval '0'),
    created_at      timestamptz NOT NULL DEFAULT now(),
    first_coupon_id bigint      NOT NULL,
    expire_from     bigint
);
ALTER SEQUENCE coupon_lock.batch_id_seq OWNED BY coupon_lock.batch.batch_id;
COMMENT ON TABLE coupon_lock.batch IS
    'one row per coupon template; its coupons have the ids first_coupon_id .. first_coupon_id + quantity - 1';
COMMENT ON COLUMN coupon_lock.batch.per_user_limit IS
    'most coupons of this batch one owner may hold, counting every state but revoked';
COMMENT ON COLUMN coupon_lock.batch.valid_until IS 'end of validity; NULL: no end';
COMMENT ON COLUMN coupon_lock.batch.freeze_ttl IS 'how long a freeze holds when coupon_freeze gets no ttl';
COMMENT ON COLUMN coupon_lock.batch.first_coupon_id IS
    'coupon ids of a batch are contiguous: coupon_claim maps claim slot n to first_coupon_id + n - 1';
COMMENT ON COLUMN coupon_lock.batch.expire_from IS
    'expire_coupons has passed every coupon of the batch below this id (NULL: first_coupon_id); only coupons in a final state lie below it';
-- The batches expire_coupons still has to walk: ended or not, with a valid_until
-- and coupons not yet passed.  A batch leaves the index once its walk is done.
CREATE INDEX batch_expiring_idx ON coupon_lock.batch (batch_id)
    WHERE valid_until IS NOT NULL AND COALESCE(expire_from, first_coupon_id) < first_coupon_id + quantity;
COMMENT ON INDEX coupon_lock.batch_expiring_idx IS 'expire_coupons: batches with a valid_until it has not walked to the end';

-- The row invariants of a coupon, checked by one C function (src/coupon.c):
-- the executor rebuilds a table's CHECK expressions from their stored text at
-- every statement that writes it, and the same rules as five SQL CHECKs cost
-- more per transition than finding and updating the row.
CREATE FUNCTION coupon_lock.coupon_row_is_valid(state coupon_lock.coupon_state, owner_id text,
                                                order_id text, frozen_until timestamptz,
                                                version bigint)
RETURNS boolean AS 'MODULE_PATHNAME', 'coupon_lock_coupon_row_is_valid'
LANGUAGE C STABLE PARALLEL SAFE;  -- STABLE: it reads pg_enum to name a state
COMMENT ON FUNCTION coupon_lock.coupon_row_is_valid(coupon_lock.coupon_state, text, text, timestamptz, bigint) IS
    'check constraint of coupon: owner_id set exactly when issued, frozen or redeemed (free when expired or revoked), '
    'order_id exactly when frozen or redeemed, frozen_until exactly when frozen, version at least 1';

CREATE TABLE coupon_lock.coupon (
    coupon_id    bigint                   NOT NULL PRIMARY KEY,
    batch_id     bigint                   NOT NULL,
    code         text                     NOT NULL UNIQUE,
    state        coupon_lock.coupon_state NOT NULL DEFAULT 'available',
    owner_id     text,
    order_id     text,
    version      bigint                   NOT NULL DEFAULT 1,
    frozen_until timestamptz,
    updated_at   timestamptz              NOT NULL DEFAULT now(),
    CONSTRAINT coupon_row_valid
        CHECK (coupon_lock.coupon_row_is_valid(state, owner_id, order_id, frozen_until, version))
) WITH (fillfactor = 80);
-- No foreign key to batch: only create_batch inserts coupons, and a key check per
-- row would slow a million-coupon batch and put a share lock on the batch row.
COMMENT ON TABLE coupon_lock.coupon IS
    'one row per coupon; changed only by the coupon_lock functions, each change adds 1 to version';
COMMENT ON COLUMN coupon_lock.coupon.owner_id IS 'the owner once issued';
COMMENT ON COLUMN coupon_lock.coupon.order_id IS
    'the order that holds the freeze or redeemed the coupon; NULL in every other state';
COMMENT ON COLUMN coupon_lock.coupon.version IS 'compare-and-swap version: 1 at creation, +1 per transition';
COMMENT ON COLUMN coupon_lock.coupon.frozen_until IS 'end of the freeze; set only while frozen';

-- Freeze, unfreeze, redeem and the sweep's release change no indexed column
-- (state, order_id, frozen_until and version are in no index and no index
-- predicate), and fillfactor leaves room on each page, so PostgreSQL makes
-- them HOT updates: no index insert at all.  What partial indexes on state did
-- is done another way (docs/performance.md): leftover claims use the index of
-- unclaimed coupons below (a claim sets owner_id, which it changes anyway),
-- lapsed freezes come from coupon_lock.freeze_deadline, and expire_coupons
-- walks each ended batch's id range once (coupon_lock.batch.expire_from).
CREATE INDEX coupon_unclaimed_idx ON coupon_lock.coupon (batch_id, coupon_id) WHERE owner_id IS NULL;
CREATE INDEX coupon_owner_idx ON coupon_lock.coupon (owner_id, batch_id) WHERE owner_id IS NOT NULL;
COMMENT ON INDEX coupon_lock.coupon_unclaimed_idx IS
    'coupons never issued (available, or expired or revoked before anyone held them): the claim fallback';
COMMENT ON INDEX coupon_lock.coupon_owner_idx IS 'an owner''s coupons';

-- Every freeze adds its deadline here (in the statement that freezes);
-- unfreeze and redeem leave the entry, which the sweep drops once it is due
-- and the coupon has moved on (its version differs).  So a freeze costs one
-- narrow insert, the cycle's other steps nothing, and release_expired_freezes
-- reads only what is due.
CREATE TABLE coupon_lock.freeze_deadline (
    frozen_until timestamptz NOT NULL,
    coupon_id    bigint      NOT NULL,
    version      bigint      NOT NULL
);
CREATE INDEX freeze_deadline_idx ON coupon_lock.freeze_deadline (frozen_until);
COMMENT ON TABLE coupon_lock.freeze_deadline IS
    'one row per freeze: its deadline and the coupon''s version after it; release_expired_freezes reads and deletes what is due';
COMMENT ON INDEX coupon_lock.freeze_deadline_idx IS 'release_expired_freezes: due freezes, oldest first';

CREATE TABLE coupon_lock.coupon_event (
    event_id   bigint                   NOT NULL DEFAULT nextval('coupon_lock.coupon_event_id_seq') PRIMARY KEY,
    coupon_id  bigint                   NOT NULL,
    op         text                     NOT NULL,
    from_state coupon_lock.coupon_state NOT NULL,
    to_state   coupon_lock.coupon_state NOT NULL,
    version    bigint                   NOT NULL,
    owner_id   text,
    order_id   text,
    at         timestamptz              NOT NULL DEFAULT now()
);
ALTER SEQUENCE coupon_lock.coupon_event_id_seq OWNED BY coupon_lock.coupon_event.event_id;
CREATE INDEX coupon_event_coupon_idx ON coupon_lock.coupon_event (coupon_id, event_id);
COMMENT ON TABLE coupon_lock.coupon_event IS
    'append-only ledger: one row per successful coupon transition, none for idempotent retries';
COMMENT ON COLUMN coupon_lock.coupon_event.op IS
    'issue, claim, freeze, unfreeze, redeem, revoke, release (lapsed freeze swept) or expire';
COMMENT ON COLUMN coupon_lock.coupon_event.version IS 'the coupon''s version after the transition';
COMMENT ON COLUMN coupon_lock.coupon_event.order_id IS 'the order the transition acted for (for unfreeze and release: the order that held the freeze)';
COMMENT ON INDEX coupon_lock.coupon_event_coupon_idx IS 'a coupon''s history, newest last';

-- The per-user limit is kept as a counter row per (batch, owner): the counter's row
-- lock serialises two claims of one owner without any lock-table entry, so bulk work
-- over many owners cannot exhaust the shared lock table.
CREATE TABLE coupon_lock.owner_quota (
    batch_id bigint  NOT NULL,
    owner_id text    NOT NULL,
    held     integer NOT NULL CHECK (held >= 0),
    PRIMARY KEY (batch_id, owner_id)
);
COMMENT ON TABLE coupon_lock.owner_quota IS
    'coupons of a batch an owner holds in every state but revoked; checked against per_user_limit';

-- Allocates contiguous coupon id ranges for create_batch; its row lock serialises
-- batch creation (a rare operation) until commit, so ranges never overlap.  The
-- first create_batch inserts the row (so that a restored dump brings its own).
CREATE TABLE coupon_lock.id_allocator (
    singleton      boolean NOT NULL DEFAULT true PRIMARY KEY CHECK (singleton),
    next_coupon_id bigint  NOT NULL
);
COMMENT ON TABLE coupon_lock.id_allocator IS 'next free coupon id; at most one row';

SELECT pg_catalog.pg_extension_config_dump('coupon_lock.batch', '');
SELECT pg_catalog.pg_extension_config_dump('coupon_lock.batch_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('coupon_lock.coupon', '');
SELECT pg_catalog.pg_extension_config_dump('coupon_lock.coupon_event', '');
SELECT pg_catalog.pg_extension_config_dump('coupon_lock.coupon_event_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('coupon_lock.owner_quota', '');
SELECT pg_catalog.pg_extension_config_dump('coupon_lock.id_allocator', '');
SELECT pg_catalog.pg_extension_config_dump('coupon_lock.freeze_deadline', '');

-- Applications read the tables and call the functions; nothing writes the tables
-- directly but the functions (they run as the extension's owner).
REVOKE ALL ON ALL TABLES IN SCHEMA coupon_lock FROM PUBLIC;
REVOKE ALL ON ALL SEQUENCES IN SCHEMA coupon_lock FROM PUBLIC;

-- Functions. All but coupon_row_is_valid are SECURITY DEFINER with search_path pinned to pg_catalog, pg_temp
-- (every name in their SQL is schema-qualified), and none is open to PUBLIC.

CREATE FUNCTION coupon_lock.create_batch(name text, quantity integer, per_user_limit integer DEFAULT 1,
                                         valid_until timestamptz DEFAULT NULL,
                                         freeze_ttl interval DEFAULT '15 minutes')
RETURNS bigint AS 'MODULE_PATHNAME', 'coupon_lock_create_batch'
LANGUAGE C VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION coupon_lock.create_batch(text, integer, integer, timestamptz, interval) IS
    'creates a batch and its quantity coupons (available, version 1, unique codes); returns batch_id';

CREATE FUNCTION coupon_lock.coupon_issue(coupon_id bigint, owner_id text, expected_version bigint DEFAULT NULL)
RETURNS bigint AS 'MODULE_PATHNAME', 'coupon_lock_coupon_issue'
LANGUAGE C VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION coupon_lock.coupon_issue(bigint, text, bigint) IS
    'available -> issued to owner_id; returns the new version (the current one for a repeat by the same owner with no transition in between)';

-- request_id (1.1): see install/claim_request.sql and src/claim_request.c
CREATE FUNCTION coupon_lock.coupon_claim(batch_id bigint, owner_id text, request_id text DEFAULT NULL)
RETURNS bigint AS 'MODULE_PATHNAME', 'coupon_lock_coupon_claim'
LANGUAGE C VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION coupon_lock.coupon_claim(bigint, text, text) IS
    'issues one available coupon of the batch to owner_id and returns its coupon_id; NULL when sold out; '
    'with a request_id, a repeated call returns the first call''s answer and changes nothing';

CREATE FUNCTION coupon_lock.coupon_freeze(coupon_id bigint, owner_id text, order_id text,
                                          expected_version bigint DEFAULT NULL, ttl interval DEFAULT NULL)
RETURNS bigint AS 'MODULE_PATHNAME', 'coupon_lock_coupon_freeze'
LANGUAGE C VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION coupon_lock.coupon_freeze(bigint, text, text, bigint, interval) IS
    'issued (owned by owner_id) -> frozen for order_id until clock_timestamp() + ttl (NULL: the batch''s freeze_ttl)';

CREATE FUNCTION coupon_lock.coupon_unfreeze(coupon_id bigint, order_id text, expected_version bigint DEFAULT NULL)
RETURNS bigint AS 'MODULE_PATHNAME', 'coupon_lock_coupon_unfreeze'
LANGUAGE C VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION coupon_lock.coupon_unfreeze(bigint, text, bigint) IS
    'frozen by order_id -> issued (expired when the batch''s valid_until has passed)';

CREATE FUNCTION coupon_lock.coupon_redeem(coupon_id bigint, order_id text, expected_version bigint DEFAULT NULL)
RETURNS bigint AS 'MODULE_PATHNAME', 'coupon_lock_coupon_redeem'
LANGUAGE C VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION coupon_lock.coupon_redeem(bigint, text, bigint) IS
    'frozen by order_id (freeze not lapsed) -> redeemed';

CREATE FUNCTION coupon_lock.coupon_revoke(coupon_id bigint, expected_version bigint DEFAULT NULL)
RETURNS bigint AS 'MODULE_PATHNAME', 'coupon_lock_coupon_revoke'
LANGUAGE C VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION coupon_lock.coupon_revoke(bigint, bigint) IS
    'available, issued or frozen -> revoked';

CREATE FUNCTION coupon_lock.release_expired_freezes(max_rows integer DEFAULT 1000)
RETURNS integer AS 'MODULE_PATHNAME', 'coupon_lock_release_expired_freezes'
LANGUAGE C VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION coupon_lock.release_expired_freezes(integer) IS
    'frozen coupons past frozen_until -> issued (expired when their batch has expired); returns how many';

CREATE FUNCTION coupon_lock.expire_coupons(max_rows integer DEFAULT 1000)
RETURNS integer AS 'MODULE_PATHNAME', 'coupon_lock_expire_coupons'
LANGUAGE C VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION coupon_lock.expire_coupons(integer) IS
    'available and issued coupons of batches past valid_until -> expired; returns how many';

REVOKE ALL ON FUNCTION coupon_lock.coupon_row_is_valid(coupon_lock.coupon_state, text, text, timestamptz, bigint),
                       coupon_lock.create_batch(text, integer, integer, timestamptz, interval),
                       coupon_lock.coupon_issue(bigint, text, bigint),
                       coupon_lock.coupon_claim(bigint, text, text),
                       coupon_lock.coupon_freeze(bigint, text, text, bigint, interval),
                       coupon_lock.coupon_unfreeze(bigint, text, bigint),
                       coupon_lock.coupon_redeem(bigint, text, bigint),
                       coupon_lock.coupon_revoke(bigint, bigint),
                       coupon_lock.release_expired_freezes(integer),
                       coupon_lock.expire_coupons(integer)
    FROM PUBLIC;

COMMENT ON SCHEMA coupon_lock IS 'coupon_lock: atomic coupon transitions, advisory, Redis and lease locks';
