/*-------------------------------------------------------------------------
 *
 * hybrid.c
 *	  hybrid_xact_lock(key, ttl, wait): coupon_lock's advisory lock and the
 *	  Redis lock on the same key, both until the transaction ends.
 *
 * The advisory lock excludes sessions of this database; the Redis key
 * prefix||key, where Redis is configured (coupon_lock.redis_host not
 * empty), excludes processes outside the database.  Without Redis
 * configured it is advisory_xact_lock(key).  The guard of coupon
 * transitions (guard.c) is one user of it: for a guard's key 'coupon:<n>'
 * the Redis key is the guard's, prefix || 'coupon:<database>:<n>', so that
 * databases sharing one Redis never hold up each other's coupons.
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
 * once for the advisory part and asks Redis for the Redis part (see
 * redis_lock.c).  lock_stats counts one advisory and one Redis
 * acquisition per call: the hand-over of step 3 is internal.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "utils/timestamp.h"

#include "advisory.h"
#include "coupon_lock.h"
#include "guard.h"
#include "hybrid.h"
#include "redis_conn.h"
#include "redis_lock.h"
#include "stats.h"

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

/* Gives back the session hold of step 1 (internal: not counted). */
static void
give_back_session_hold(const char *key, int keylen)
{
	cl_stats_internal_begin();
	(void) advisory_release(key, keylen);
	cl_stats_internal_end();
}

/* Step 3's transaction-scope lock (internal: not counted). */
static void
take_xact_hold(const char *key, int keylen)
{
	cl_stats_internal_begin();
	PG_TRY();
	{
		(void) advisory_acquire(key, keylen, false, 0);
	}
	PG_FINALLY();
	{
		cl_stats_internal_end();
	}
	PG_END_TRY();
}

/*
 * Steps 2 and 3 above, with the session hold of step 1 given back after;
 * key is the advisory key, rkey the Redis key (the same but for the guard).
 */
static bool
redis_then_xact(const char *key, int keylen, const char *rkey, int rkeylen,
				int64 ttl_ms, int64 wait_ms)
{
	char	   *token = NULL;

	PG_TRY();
	{
		token = redis_acquire(rkey, rkeylen, ttl_ms, wait_ms, true);
		if (token != NULL)
			take_xact_hold(key, keylen);
	}
	PG_CATCH();
	{
		give_back_session_hold(key, keylen);
		PG_RE_THROW();
	}
	PG_END_TRY();
	give_back_session_hold(key, keylen);
	return token != NULL;
}

/*
 * The advisory lock on key and the Redis lock on rkey (prefixed), all or
 * nothing within wait_ms.  hybrid_xact_lock passes one key for both; the
 * guard (guard.c) a Redis key that also names the database.
 */
bool
cl_hybrid_acquire_keys(const char *key, int keylen, const char *rkey, int rkeylen,
					   int64 ttl_ms, int64 wait_ms)
{
	TimestampTz start = GetCurrentTimestamp();

	if (!redis_configured())
		return advisory_acquire(key, keylen, false, wait_ms);

	redis_require();			/* built without hiredis: 0A000 */
	if (!advisory_acquire(key, keylen, true, wait_ms))
		return false;
	return redis_then_xact(key, keylen, rkey, rkeylen, ttl_ms, wait_left(wait_ms, start));
}

bool
cl_hybrid_acquire(const char *key, int keylen, int64 ttl_ms, int64 wait_ms)
{
	return cl_hybrid_acquire_keys(key, keylen, key, keylen, ttl_ms, wait_ms);
}

/* ---- SQL entry point ---- */

Datum
coupon_lock_hybrid_xact_lock(PG_FUNCTION_ARGS)
{
	char	   *key = cl_arg_id(fcinfo, 0, "key");
	int64		ttl_ms = cl_arg_ttl_ms(fcinfo, 1, "ttl");
	int64		wait_ms = cl_arg_wait_ms(fcinfo, 2, "wait");
	int			rkeylen;
	char	   *rkey = cl_guard_redis_key_for(key, strlen(key), &rkeylen);

	/* a guard's key 'coupon:<n>': its Redis part names the database (guard.c) */
	if (rkey != NULL)
		PG_RETURN_BOOL(cl_hybrid_acquire_keys(key, strlen(key), rkey, rkeylen, ttl_ms, wait_ms));
	PG_RETURN_BOOL(cl_hybrid_acquire(key, strlen(key), ttl_ms, wait_ms));
}
