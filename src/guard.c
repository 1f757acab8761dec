/*-------------------------------------------------------------------------
 *
 * guard.c
 *	  The guard that coupon transitions take when coupon_lock.redis_guard
 *	  is on, and guard_key(), which names it.
 *
 * The guard of coupon n is hybrid_xact_lock's pair of locks (hybrid.c):
 * the advisory lock 'coupon:' || n, as shared/API.md promises (advisory
 * locks belong to one database, so a session of this database that holds
 * hybrid_xact_lock('coupon:' || n) keeps the coupon to itself), and the
 * Redis key prefix || guard_key(n), where guard_key(n) is 'coupon:' ||
 * current_database() || ':' || n: so a holder outside the database that
 * took that Redis key keeps the coupon to itself, and two databases
 * sharing one Redis (and one prefix) never hold up each other's coupon n.
 * The database name, not its oid, so that an outside process can build
 * the key from what it knows; the id is what follows the last colon.
 *
 * Concurrency rules.  A single transition waits at most
 * coupon_lock.redis_guard_wait and fails with 55P03 when that runs out.
 * Claims and the sweeps never wait; they pass over a coupon whose guard is
 * held elsewhere and pick another (claims) or leave it for a later run
 * (sweeps).  A sweep's transitions take no lock-table entry: they only
 * test the advisory lock (taken and given back at once; the coupon's row
 * lock, held to the end of the sweep's transaction, already orders
 * database sessions) and hold the Redis key until the transaction ends.
 * So one sweep over many coupons cannot exhaust the shared lock table.
 * The test is an internal step: lock_stats counts only the Redis key.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "commands/dbcommands.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/memutils.h"

#include "advisory.h"
#include "coupon_lock.h"
#include "guard.h"
#include "guc.h"
#include "hybrid.h"
#include "redis_conn.h"
#include "redis_lock.h"
#include "stats.h"

PG_FUNCTION_INFO_V1(coupon_lock_guard_key);

/* 'coupon:<database>:' -- a backend never changes database. */
static char *key_head = NULL;

/* guard_key(coupon_id), the Redis key (less the prefix), palloc'd; *keylen its length. */
static char *
guard_key(int64 coupon_id, int *keylen)
{
	char	   *key;

	/* a database still at 1.0 keeps 1.0's layout, 'coupon:<n>' (version.c) */
	if (cl_sql_version() < CL_SQL_1_1)
	{
		key = psprintf("coupon:" INT64_FORMAT, coupon_id);
		*keylen = strlen(key);
		return key;
	}
	if (key_head == NULL)
	{
		char	   *db = get_database_name(MyDatabaseId);

		key_head = MemoryContextStrdup(TopMemoryContext,
									   psprintf("coupon:%s:", db ? db : ""));
	}
	key = psprintf("%s" INT64_FORMAT, key_head, coupon_id);
	*keylen = strlen(key);
	return key;
}

/* The guard's advisory key, 'coupon:<n>' (shared/API.md), palloc'd. */
static char *
guard_advisory_key(int64 coupon_id, int *keylen)
{
	char	   *key = psprintf("coupon:" INT64_FORMAT, coupon_id);

	*keylen = strlen(key);
	return key;
}

char *
cl_guard_redis_key_for(const char *key, int keylen, int *rkeylen)
{
	int			head = strlen(CL_GUARD_KEY_PREFIX);
	int64		coupon_id = 0;

	if (keylen <= head || keylen > head + 18 ||
		strncmp(key, CL_GUARD_KEY_PREFIX, head) != 0)
		return NULL;
	for (int i = head; i < keylen; i++)
	{
		if (key[i] < '0' || key[i] > '9')
			return NULL;
		coupon_id = coupon_id * 10 + (key[i] - '0');
	}
	if (key[head] == '0')			/* 'coupon:007' is not coupon 7's key */
		return NULL;
	return guard_key(coupon_id, rkeylen);
}

/* The advisory lock only tested (an internal step), the Redis key held. */
static bool
sweep_guard(const char *key, int keylen, const char *rkey, int rkeylen)
{
	volatile bool free_here = false;

	cl_stats_internal_begin();
	PG_TRY();
	{
		free_here = advisory_acquire(key, keylen, true, 0);
		if (free_here)
			(void) advisory_release(key, keylen);
	}
	PG_FINALLY();
	{
		cl_stats_internal_end();
	}
	PG_END_TRY();
	if (!free_here)
		return false;
	if (!redis_configured())
		return true;
	redis_require();
	return redis_acquire(rkey, rkeylen, cl_redis_guard_ttl, 0, true) != NULL;
}

bool
guard_coupon(int64 coupon_id, CouponOp op)
{
	char	   *key;
	int			keylen;
	char	   *rkey;
	int			rkeylen;

	if (!cl_redis_guard)
		return true;
	key = guard_advisory_key(coupon_id, &keylen);
	rkey = guard_key(coupon_id, &rkeylen);

	switch (op)
	{
		case OP_RELEASE:
		case OP_EXPIRE:
			return sweep_guard(key, keylen, rkey, rkeylen);
		case OP_CLAIM:
			return cl_hybrid_acquire_keys(key, keylen, rkey, rkeylen, cl_redis_guard_ttl, 0);
		default:
			break;
	}
	if (!cl_hybrid_acquire_keys(key, keylen, rkey, rkeylen, cl_redis_guard_ttl, cl_redis_guard_wait))
		ereport(ERROR,
				(errcode(ERRCODE_LOCK_NOT_AVAILABLE),
				 errmsg("could not obtain the guard of coupon %lld", (long long) coupon_id),
				 errdetail("Another session held lock key \"%s\", or a process outside the database held Redis key \"%s\", for longer than coupon_lock.redis_guard_wait (%d ms).",
						   key, rkey, cl_redis_guard_wait)));
	return true;
}

/* ---- SQL entry point ---- */

/* guard_key(coupon_id): the lock key of the coupon's guard. */
Datum
coupon_lock_guard_key(PG_FUNCTION_ARGS)
{
	int			keylen;

	PG_RETURN_TEXT_P(cstring_to_text(guard_key(PG_GETARG_INT64(0), &keylen)));
}
