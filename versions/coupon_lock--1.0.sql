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
    first_coupon_id bigint      NOT NULL
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

-- The row invariants of a coupon, checked by one C function (src/coupon.c):
-- the executor rebuilds a table's CHECK expressions from their stored text at
-- every statement that writes it, and the same rules as five SQL CHECKs cost
-- more per transition than finding and updating the row.
CREATE FUNCTION coupon_lock.coupon_row_is_valid(state coupon_lock.coupon_state, owner_id text,
                                                order_id text, frozen_until timestamptz,
                                                version bigint)
RETURNS boolean AS 'MODULE_PATHNAME', 'coupon_lock_coupon_row_is_valid'
LANGUAGE C IMMUTABLE PARALLEL SAFE;
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
);
-- No foreign key to batch: only create_batch inserts coupons, and a key check per
-- row would slow a million-coupon batch and put a share lock on the batch row.
COMMENT ON TABLE coupon_lock.coupon IS
    'one row per coupon; changed only by the coupon_lock functions, each change adds 1 to version';
COMMENT ON COLUMN coupon_lock.coupon.owner_id IS 'the owner once issued';
COMMENT ON COLUMN coupon_lock.coupon.order_id IS
    'the order that holds the freeze or redeemed the coupon; NULL in every other state';
COMMENT ON COLUMN coupon_lock.coupon.version IS 'compare-and-swap version: 1 at creation, +1 per transition';
COMMENT ON COLUMN coupon_lock.coupon.frozen_until IS 'end of the freeze; set only while frozen';

-- Partial indexes: a claim leaves "available" and so never inserts into the first;
-- the sweeps find their work without scanning redeemed or revoked coupons.
CREATE INDEX coupon_available_idx ON coupon_lock.coupon (batch_id, coupon_id) WHERE state = 'available';
CREATE INDEX coupon_issued_idx ON coupon_lock.coupon (batch_id) WHERE state = 'issued';
CREATE INDEX coupon_frozen_idx ON coupon_lock.coupon (frozen_until) WHERE state = 'frozen';
CREATE INDEX coupon_owner_idx ON coupon_lock.coupon (owner_id, batch_id) WHERE owner_id IS NOT NULL;
COMMENT ON INDEX coupon_lock.coupon_available_idx IS 'the claim fallback and expire_coupons';
COMMENT ON INDEX coupon_lock.coupon_issued_idx IS 'expire_coupons';
COMMENT ON INDEX coupon_lock.coupon_frozen_idx IS 'release_expired_freezes';
COMMENT ON INDEX coupon_lock.coupon_owner_idx IS 'an owner''s coupons';

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

-- Applications read the tables and call the functions; nothing writes the tables
-- directly but the functions (they run as the extension's owner).
REVOKE ALL ON ALL TABLES IN SCHEMA coupon_lock FROM PUBLIC;
REVOKE ALL ON ALL SEQUENCES IN SCHEMA coupon_lock FROM PUBLIC;

-- Functions. All are SECURITY DEFINER with search_path pinned to pg_catalog, pg_temp
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
    'available -> issued to owner_id; returns the new version';

CREATE FUNCTION coupon_lock.coupon_claim(batch_id bigint, owner_id text)
RETURNS bigint AS 'MODULE_PATHNAME', 'coupon_lock_coupon_claim'
LANGUAGE C VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION coupon_lock.coupon_claim(bigint, text) IS
    'issues one available coupon of the batch to owner_id and returns its coupon_id; NULL when sold out';

CREATE FUNCTION coupon_lock.coupon_freeze(coupon_id bigint, owner_id text, order_id text,
                                          expected_version bigint DEFAULT NULL, ttl interval DEFAULT NULL)
RETURNS bigint AS 'MODULE_PATHNAME', 'coupon_lock_coupon_freeze'
LANGUAGE C VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION coupon_lock.coupon_freeze(bigint, text, text, bigint, interval) IS
    'issued (owned by owner_id) -> frozen for order_id until now() + ttl (NULL: the batch''s freeze_ttl)';

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
                       coupon_lock.coupon_claim(bigint, text),
                       coupon_lock.coupon_freeze(bigint, text, text, bigint, interval),
                       coupon_lock.coupon_unfreeze(bigint, text, bigint),
                       coupon_lock.coupon_redeem(bigint, text, bigint),
                       coupon_lock.coupon_revoke(bigint, bigint),
                       coupon_lock.release_expired_freezes(integer),
                       coupon_lock.expire_coupons(integer)
    FROM PUBLIC;

COMMENT ON SCHEMA coupon_lock IS 'coupon_lock: atomic coupon transitions, advisory, Redis and lease locks';
-- coupon_lock install script: advisory locks by text key (src/advisory.c)
--
-- These functions touch no table: no SECURITY DEFINER, no SET clause (the
-- uncontended call must cost no more than core pg_advisory_lock).  Not STRICT,
-- so that a NULL key is an error (22004) and not a silent NULL.

CREATE FUNCTION coupon_lock.advisory_lock(key text, timeout interval DEFAULT NULL)
RETURNS boolean AS 'MODULE_PATHNAME', 'coupon_lock_advisory_lock'
LANGUAGE C VOLATILE;
COMMENT ON FUNCTION coupon_lock.advisory_lock(text, interval) IS
    'takes the session-scope exclusive lock on key (reentrant), waiting at most timeout (NULL: no limit, 0: no wait); true when held, false when the wait ran out';

CREATE FUNCTION coupon_lock.advisory_xact_lock(key text, timeout interval DEFAULT NULL)
RETURNS boolean AS 'MODULE_PATHNAME', 'coupon_lock_advisory_xact_lock'
LANGUAGE C VOLATILE;
COMMENT ON FUNCTION coupon_lock.advisory_xact_lock(text, interval) IS
    'as advisory_lock, in transaction scope: released when the transaction ends';

CREATE FUNCTION coupon_lock.advisory_unlock(key text)
RETURNS boolean AS 'MODULE_PATHNAME', 'coupon_lock_advisory_unlock'
LANGUAGE C VOLATILE;
COMMENT ON FUNCTION coupon_lock.advisory_unlock(text) IS
    'releases one hold of the session-scope lock on key; false (with a WARNING) when not held';

CREATE FUNCTION coupon_lock.advisory_lock_id(key text)
RETURNS bigint AS 'MODULE_PATHNAME', 'coupon_lock_advisory_lock_id'
LANGUAGE C IMMUTABLE PARALLEL SAFE;
COMMENT ON FUNCTION coupon_lock.advisory_lock_id(text) IS
    'the 64-bit lock id of key (equal to hashtextextended(key, 0)), as advisory_locks.lock_id shows it';

CREATE FUNCTION coupon_lock.advisory_lock_key(lock_id bigint)
RETURNS text AS 'MODULE_PATHNAME', 'coupon_lock_advisory_lock_key'
LANGUAGE C VOLATILE;
COMMENT ON FUNCTION coupon_lock.advisory_lock_key(bigint) IS
    'the key this backend locked under lock_id, NULL when this backend does not know it';

-- pg_locks shows our locks as locktype advisory with objsubid 17228 ("CL"),
-- the high half of the lock id in classid and the low half in objid.
CREATE VIEW coupon_lock.advisory_locks AS
SELECT l.pid,
       (l.classid::bigint << 32) | l.objid::bigint AS lock_id,
       l.mode,
       l.granted,
       l.waitstart,
       CASE WHEN l.pid = pg_catalog.pg_backend_pid()
            THEN coupon_lock.advisory_lock_key((l.classid::bigint << 32) | l.objid::bigint)
       END AS key
  FROM pg_catalog.pg_locks l
 WHERE l.locktype = 'advisory'
   AND l.objsubid = 17228
   AND l.database = (SELECT d.oid FROM pg_catalog.pg_database d
                      WHERE d.datname = pg_catalog.current_database());
COMMENT ON VIEW coupon_lock.advisory_locks IS
    'coupon_lock advisory locks held and awaited in this database; key is known only for the locks this backend took (NULL for other backends: compare lock_id with advisory_lock_id(key))';

REVOKE ALL ON FUNCTION coupon_lock.advisory_lock(text, interval),
                       coupon_lock.advisory_xact_lock(text, interval),
                       coupon_lock.advisory_unlock(text),
                       coupon_lock.advisory_lock_id(text),
                       coupon_lock.advisory_lock_key(bigint)
    FROM PUBLIC;
REVOKE ALL ON coupon_lock.advisory_locks FROM PUBLIC;
-- coupon_lock install script: the hybrid lock and the guard (src/guard.c)
--
-- Touches no table: neither SECURITY DEFINER nor pinned to a search_path.
-- PARALLEL UNSAFE like the Redis functions it uses.  PUBLIC may not call
-- it; grant EXECUTE to the roles that need it (see docs/redis.md).

CREATE FUNCTION coupon_lock.hybrid_xact_lock(key text, ttl interval DEFAULT '30 seconds',
                                             wait interval DEFAULT NULL)
RETURNS boolean AS 'MODULE_PATHNAME', 'coupon_lock_hybrid_xact_lock'
LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION coupon_lock.hybrid_xact_lock(text, interval, interval) IS
    'advisory_xact_lock(key) and, where Redis is configured, redis_xact_lock(key, ttl), both within wait (NULL: no limit), all or nothing; true when both are held';

REVOKE ALL ON FUNCTION coupon_lock.hybrid_xact_lock(text, interval, interval) FROM PUBLIC;
-- coupon_lock install script: leases with fencing tokens (src/lease.c)

-- One row per lease name, never deleted: the fence counter lives in the row,
-- so tokens keep rising over every grant, across restarts and dump/restore.
CREATE TABLE coupon_lock.lease (
    name       text        NOT NULL PRIMARY KEY,
    holder     text,
    fence      bigint      NOT NULL CHECK (fence > 0),
    expires_at timestamptz,
    granted_at timestamptz NOT NULL,
    CHECK ((holder IS NULL) = (expires_at IS NULL))
);
COMMENT ON TABLE coupon_lock.lease IS
    'one row per lease name; written only by the lease_* functions, rows are never deleted';
COMMENT ON COLUMN coupon_lock.lease.holder IS 'the current or last holder; NULL once released';
COMMENT ON COLUMN coupon_lock.lease.fence IS
    'fencing token of the latest grant: +1 per grant, never reused';
COMMENT ON COLUMN coupon_lock.lease.expires_at IS
    'end of the lease by the server''s clock; the lease is free from then on; NULL once released';
COMMENT ON COLUMN coupon_lock.lease.granted_at IS 'when the latest grant (the current fence) was made';

SELECT pg_catalog.pg_extension_config_dump('coupon_lock.lease', '');
-- Only the lease_* functions write it (they run as the extension's owner).
REVOKE ALL ON coupon_lock.lease FROM PUBLIC;

CREATE FUNCTION coupon_lock.lease_acquire(name text, holder text, ttl interval)
RETURNS bigint AS 'MODULE_PATHNAME', 'coupon_lock_lease_acquire'
LANGUAGE C VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION coupon_lock.lease_acquire(text, text, interval) IS
    'grants the lease for ttl and returns its fencing token (strictly increasing per name); NULL while another holder''s lease is unexpired; the holder acquiring again renews and keeps its token';

CREATE FUNCTION coupon_lock.lease_renew(name text, holder text, ttl interval)
RETURNS boolean AS 'MODULE_PATHNAME', 'coupon_lock_lease_renew'
LANGUAGE C VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION coupon_lock.lease_renew(text, text, interval) IS
    'extends the holder''s unexpired lease to end ttl from now; false when it is not the holder''s or has expired';

CREATE FUNCTION coupon_lock.lease_release(name text, holder text)
RETURNS boolean AS 'MODULE_PATHNAME', 'coupon_lock_lease_release'
LANGUAGE C VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION coupon_lock.lease_release(text, text) IS
    'ends the holder''s unexpired lease (its fence stays used); false when it is not the holder''s or has expired';

CREATE FUNCTION coupon_lock.lease_check(name text, fence bigint)
RETURNS boolean AS 'MODULE_PATHNAME', 'coupon_lock_lease_check'
LANGUAGE C VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION coupon_lock.lease_check(text, bigint) IS
    'true only while fence is the current unexpired grant; then keeps the lease row share-locked until the transaction ends, so no new grant precedes the commit of the write it guards';

REVOKE ALL ON FUNCTION coupon_lock.lease_acquire(text, text, interval),
                       coupon_lock.lease_renew(text, text, interval),
                       coupon_lock.lease_release(text, text),
                       coupon_lock.lease_check(text, bigint)
    FROM PUBLIC;
-- coupon_lock install script: Redis locks (src/redis_lock.c, src/redis_conn.c)
--
-- These functions touch no table, so they are neither SECURITY DEFINER nor
-- pinned to a search_path.  They are PARALLEL UNSAFE: each backend has its
-- own Redis connection and its own list of keys to release at transaction
-- end.  Built without hiredis they exist and raise SQLSTATE 0A000.
-- PUBLIC may not call them: a role that may take Redis locks is granted
-- EXECUTE (see docs/redis.md).

CREATE FUNCTION coupon_lock.redis_lock(key text, ttl interval, wait interval DEFAULT '0')
RETURNS text AS 'MODULE_PATHNAME', 'coupon_lock_redis_lock'
LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION coupon_lock.redis_lock(text, interval, interval) IS
    'takes Redis key prefix||key with SET NX PX ttl, retrying until wait runs out; returns the token, NULL when not acquired';

CREATE FUNCTION coupon_lock.redis_unlock(key text, token text)
RETURNS boolean AS 'MODULE_PATHNAME', 'coupon_lock_redis_unlock'
LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION coupon_lock.redis_unlock(text, text) IS
    'deletes Redis key prefix||key only while it holds token (atomic compare-and-delete); true when deleted';

CREATE FUNCTION coupon_lock.redis_extend(key text, token text, ttl interval)
RETURNS boolean AS 'MODULE_PATHNAME', 'coupon_lock_redis_extend'
LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION coupon_lock.redis_extend(text, text, interval) IS
    'resets the TTL of Redis key prefix||key to ttl only while it holds token; true when extended';

CREATE FUNCTION coupon_lock.redis_xact_lock(key text, ttl interval, wait interval DEFAULT '0')
RETURNS text AS 'MODULE_PATHNAME', 'coupon_lock_redis_xact_lock'
LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION coupon_lock.redis_xact_lock(text, interval, interval) IS
    'as redis_lock, and the key is deleted when the (sub)transaction that took it commits or aborts';

REVOKE ALL ON FUNCTION coupon_lock.redis_lock(text, interval, interval),
                       coupon_lock.redis_unlock(text, text),
                       coupon_lock.redis_extend(text, text, interval),
                       coupon_lock.redis_xact_lock(text, interval, interval)
    FROM PUBLIC;
-- coupon_lock install script: lock counters (src/stats.c)

CREATE FUNCTION coupon_lock.lock_stats(
    OUT kind text, OUT acquired bigint, OUT waited bigint, OUT timed_out bigint,
    OUT deadlocks bigint, OUT released bigint, OUT errors bigint, OUT scope text)
RETURNS SETOF record AS 'MODULE_PATHNAME', 'coupon_lock_lock_stats'
LANGUAGE C VOLATILE;
COMMENT ON FUNCTION coupon_lock.lock_stats() IS
    'lock counters per kind (advisory, lease, redis); scope shared: all backends (coupon_lock in shared_preload_libraries), backend: this backend only';

CREATE VIEW coupon_lock.lock_stats AS SELECT * FROM coupon_lock.lock_stats();
COMMENT ON VIEW coupon_lock.lock_stats IS
    'lock counters per kind of lock; see the scope column for whose activity they count';

CREATE FUNCTION coupon_lock.lock_stats_reset()
RETURNS void AS 'MODULE_PATHNAME', 'coupon_lock_lock_stats_reset'
LANGUAGE C VOLATILE;
COMMENT ON FUNCTION coupon_lock.lock_stats_reset() IS
    'sets the lock counters of lock_stats to zero (all backends'' when shared)';

REVOKE ALL ON FUNCTION coupon_lock.lock_stats(), coupon_lock.lock_stats_reset() FROM PUBLIC;
REVOKE ALL ON coupon_lock.lock_stats FROM PUBLIC;
