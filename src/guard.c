/*-------------------------------------------------------------------------
 *
 * guard.c
 *	  hybrid_xact_lock, and the guard that coupon transitions take when
 *	  coupon_lock.redis_guard is on.
 *
 * hybrid_xact_lock(key) holds two locks on the same key until the
 * transaction ends: coupon_lock's advisory lock (against sessions of this
 * database) and, where Redis is configured (coupon_lock.redis_host not
 * empty), the Redis lock prefix||key (against processes outside the
 * database).  Without Redis configured it is advisory_xact_lock(key).
 *
 * Concurrency rules.  All or nothing, both within `wait`:
 *
 *	1. The advisory lock is taken in session scope first, so that waiters
 *	   of this database queue in the lock manager (FIFO, deadlock
 *	   detection) and only the head of the queue polls Redis.
 *	2. The Redis key is taken with redis_xact_lock's machinery in the time
 *	   left (its release at transaction end is registered there).
 *	3. The advisory lock is taken again in transaction scope, which is
 *	   immediate because this backend holds it, and the session hold is
 *	   given back.
 *
 * When step 2 runs out or raises, the session hold is given back: nothing
 * is left behind.  Taking a key the transaction already holds succeeds at
 * once (both locks are reentrant within a transaction).
 *
 * The guard.  With redis_guard on, every coupon transition first takes
 * hybrid_xact_lock('coupon:' || coupon_id), so a holder outside the
 * database that took the Redis key prefix||'coupon:<id>' keeps the coupon
 * to itself.  A single transition waits at most
 * coupon_lock.redis_guard_wait and fails with 55P03 when that runs out.
 * Claims and the sweeps never wait; they pass over a coupon whose guard is
 * held elsewhere and pick another (claims) or leave it for a later run
 * (sweeps).  A sweep's transitions take no lock-table entry: they only
 * test the advisory lock (taken and given back at once; the coupon's row
 * lock, held to the end of the sweep's transaction, already orders
 * database sessions) and hold the Redis key until the transaction ends.
 * So one sweep over many coupons cannot exhaust the shared lock table.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "utils/timestamp.h"

#include "advisory.h"
#include "coupon_lock.h"
#include "guard.h"
#include "guc.h"
#include "redis_conn.h"
#include "redis_lock.h"

PG_FUNCTION_INFO_V1(coupon_lock_hybrid_xact_lock);

/* Milliseconds of wait_ms left since start (-1 stays -1: no limit). */
static int64
wait_left(int64 wait_ms, TimestampTz start)
{
	long		secs;
	int			usecs;

	if (wait_ms < 0)
		return -1;
	TimestampDifference(start, GetCurrentTimestamp(), &secs, &usecs);
	return Max(0, wait_ms - ((int64) secs * 1000 + usecs / 1000));
}

/* Steps 2 and 3 above, with the session hold of step 1 given back after. */
static bool
redis_then_xact(const char *key, int keylen, int64 ttl_ms, int64 wait_ms)
{
	char	   *token = NULL;

	PG_TRY();
	{
		token = redis_acquire(key, keylen, ttl_ms, wait_ms, true);
		if (token != NULL)
			(void) advisory_acquire(key, keylen, false, 0);
	}
	PG_CATCH();
	{
		(void) advisory_release(key, keylen);
		PG_RE_THROW();
	}
	PG_END_TRY();
	(void) advisory_release(key, keylen);
	return token != NULL;
}

/* hybrid_xact_lock(key, ttl, wait): true when both are held. */
static bool
hybrid_acquire(const char *key, int keylen, int64 ttl_ms, int64 wait_ms)
{
	TimestampTz start = GetCurrentTimestamp();

	if (!redis_configured())
		return advisory_acquire(key, keylen, false, wait_ms);

	redis_require();			/* built without hiredis: 0A000 */
	if (!advisory_acquire(key, keylen, true, wait_ms))
		return false;
	return redis_then_xact(key, keylen, ttl_ms, wait_left(wait_ms, start));
}

/*
 * A sweep's guard: no wait, no lock-table entry.  The advisory lock is
 * only tested; the Redis key is held to the end of the transaction.
 */
static bool
sweep_guard(const char *key, int keylen)
{
	if (!advisory_acquire(key, keylen, true, 0))
		return false;
	(void) advisory_release(key, keylen);
	if (!redis_configured())
		return true;
	redis_require();
	return redis_acquire(key, keylen, cl_redis_guard_ttl, 0, true) != NULL;
}

bool
guard_coupon(int64 coupon_id, CouponOp op)
{
	char		key[32];
	int			keylen;

	if (!cl_redis_guard)
		return true;
	keylen = snprintf(key, sizeof(key), "coupon:" INT64_FORMAT, coupon_id);

	switch (op)
	{
		case OP_RELEASE:
		case OP_EXPIRE:
			return sweep_guard(key, keylen);
		case OP_CLAIM:
			return hybrid_acquire(key, keylen, cl_redis_guard_ttl, 0);
		default:
			break;
	}
	if (!hybrid_acquire(key, keylen, cl_redis_guard_ttl, cl_redis_guard_wait))
		ereport(ERROR,
				(errcode(ERRCODE_LOCK_NOT_AVAILABLE),
				 errmsg("could not obtain the guard of coupon %lld", (long long) coupon_id),
				 errdetail("Another session or a process outside the database held lock key \"%s\" for longer than coupon_lock.redis_guard_wait (%d ms).",
						   key, cl_redis_guard_wait)));
	return true;
}

/* ---- SQL entry point ---- */

Datum
coupon_lock_hybrid_xact_lock(PG_FUNCTION_ARGS)
{
	char	   *key = cl_arg_id(fcinfo, 0, "key");
	int64		ttl_ms = cl_arg_ttl_ms(fcinfo, 1, "ttl");
	int64		wait_ms = cl_arg_wait_ms(fcinfo, 2, "wait");

	PG_RETURN_BOOL(hybrid_acquire(key, strlen(key), ttl_ms, wait_ms));
}
