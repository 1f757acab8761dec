/*-------------------------------------------------------------------------
 *
 * guard.h
 *	  The coupon_lock.redis_guard hook of coupon transitions (guard.c).
 *
 *-------------------------------------------------------------------------
 */
#ifndef COUPON_LOCK_GUARD_H
#define COUPON_LOCK_GUARD_H

#include "postgres.h"

#include "coupon.h"

/*
 * The guard's key of coupon n is this prefix followed by n (guard.c spells
 * it out in its snprintf format, which the SQL review wants literal).
 */
#define CL_GUARD_KEY_PREFIX "coupon:"

/*
 * For hybrid_xact_lock(key): when key is a guard's advisory key,
 * 'coupon:<n>', the guard's Redis key guard_key(n) (palloc'd, *rkeylen its
 * length), so that hybrid_xact_lock('coupon:' || n) is exactly the guard of
 * coupon n; NULL for any other key.
 */
extern char *cl_guard_redis_key_for(const char *key, int keylen, int *rkeylen);

/*
 * With coupon_lock.redis_guard on, takes the guard of the coupon,
 * hybrid_xact_lock('coupon:' || coupon_id), for transition op.  Call it
 * before the coupon's row is locked.  Returns true to go ahead; false when
 * the caller should pass over the coupon (claims and sweeps, whose guard
 * is held elsewhere).  A transition that waits raises 55P03 when
 * coupon_lock.redis_guard_wait runs out.
 */
extern bool guard_coupon(int64 coupon_id, CouponOp op);

#endif							/* COUPON_LOCK_GUARD_H */
