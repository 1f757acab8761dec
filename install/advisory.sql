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
