-- coupon_lock install script: the privilege split (src/roles.c), last of
-- the pieces because it grants on what the others create.
--
-- Three NOLOGIN roles, created here when missing.  Roles belong to the
-- cluster, not to a database: CREATE EXTENSION in a second database finds
-- them and grants them that database's objects; DROP EXTENSION takes the
-- grants with the objects and leaves the roles (drop them once no database
-- has the extension).  A DBA grants one to each login role:
--
--   coupon_lock_application  the coupon calls of an application (issue,
--                            claim, freeze, unfreeze, redeem), the lock and
--                            lease functions, reading the tables; not
--                            create_batch, coupon_revoke, the sweeps,
--                            lock_stats_reset, nor session advisory locks on
--                            the guard's keys 'coupon:*' (src/roles.c)
--   coupon_lock_admin        all of the above and those (a member of the
--                            other two)
--   coupon_lock_monitor      the lock counters and the advisory_locks view
--
-- Functions are named without argument lists, so that a piece changing a
-- signature needs no change here.
DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = 'coupon_lock_application') THEN
        CREATE ROLE coupon_lock_application NOLOGIN;
        COMMENT ON ROLE coupon_lock_application IS
            'coupon_lock: what an application needs (coupon calls, locks, leases, reading the tables); created by CREATE EXTENSION coupon_lock';
    END IF;
    IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = 'coupon_lock_monitor') THEN
        CREATE ROLE coupon_lock_monitor NOLOGIN;
        COMMENT ON ROLE coupon_lock_monitor IS
            'coupon_lock: reads the lock counters and the advisory_locks view; created by CREATE EXTENSION coupon_lock';
    END IF;
    IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = 'coupon_lock_admin') THEN
        CREATE ROLE coupon_lock_admin NOLOGIN IN ROLE coupon_lock_application, coupon_lock_monitor;
        COMMENT ON ROLE coupon_lock_admin IS
            'coupon_lock: batches, revokes, sweeps, counter resets and session locks on guard keys, besides what coupon_lock_application and coupon_lock_monitor have; created by CREATE EXTENSION coupon_lock';
    END IF;
END $$;

GRANT USAGE ON SCHEMA coupon_lock TO coupon_lock_application, coupon_lock_monitor;

GRANT SELECT ON coupon_lock.batch, coupon_lock.coupon, coupon_lock.coupon_event,
                coupon_lock.owner_quota, coupon_lock.lease, coupon_lock.advisory_locks
    TO coupon_lock_application;
GRANT EXECUTE ON FUNCTION coupon_lock.coupon_issue, coupon_lock.coupon_claim,
                          coupon_lock.coupon_freeze, coupon_lock.coupon_unfreeze,
                          coupon_lock.coupon_redeem,
                          coupon_lock.advisory_lock, coupon_lock.advisory_xact_lock,
                          coupon_lock.advisory_unlock, coupon_lock.advisory_lock_id,
                          coupon_lock.advisory_lock_key,
                          coupon_lock.lease_acquire, coupon_lock.lease_renew,
                          coupon_lock.lease_release, coupon_lock.lease_check,
                          coupon_lock.redis_lock, coupon_lock.redis_unlock,
                          coupon_lock.redis_extend, coupon_lock.redis_xact_lock,
                          coupon_lock.redis_lock_validity,
                          coupon_lock.hybrid_xact_lock, coupon_lock.guard_key,
                          coupon_lock.partition_of, coupon_lock.library_version
    TO coupon_lock_application;

GRANT SELECT ON coupon_lock.lock_stats, coupon_lock.advisory_locks, coupon_lock.sweeper_stats
    TO coupon_lock_monitor;
GRANT EXECUTE ON FUNCTION coupon_lock.lock_stats, coupon_lock.advisory_lock_id,
                          coupon_lock.advisory_lock_key, coupon_lock.guard_key,
                          coupon_lock.sweeper_stats, coupon_lock.partition_of,
                          coupon_lock.library_version
    TO coupon_lock_monitor;

GRANT EXECUTE ON FUNCTION coupon_lock.create_batch, coupon_lock.coupon_revoke,
                          coupon_lock.release_expired_freezes, coupon_lock.expire_coupons,
                          coupon_lock.lock_stats_reset
    TO coupon_lock_admin;
