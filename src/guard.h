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
 * With coupon_lock.redis_guard on, takes the guard of the coupon,
 * hybrid_xact_lock(guard_key(coupon_id)), for transition op.  Call it
 * before the coupon's row is locked.  Returns true to go ahead; false when
 * the caller should pass over the coupon (claims and sweeps, whose guard
 * is held elsewhere).  A transition that waits raises 55P03 when
 * coupon_lock.redis_guard_wait runs out.
 */
extern bool guard_coupon(int64 coupon_id, CouponOp op);

#endif							/* COUPON_LOCK_GUARD_H */
