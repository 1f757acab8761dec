/*-------------------------------------------------------------------------
 *
 * hybrid.h
 *	  hybrid_xact_lock: the advisory lock and the Redis lock on one key,
 *	  to the end of the transaction (hybrid.c).
 *
 *-------------------------------------------------------------------------
 */
#ifndef COUPON_LOCK_HYBRID_H
#define COUPON_LOCK_HYBRID_H

#include "postgres.h"

/*
 * Takes advisory_xact_lock(key) and, where Redis is configured,
 * redis_xact_lock(key, ttl_ms), both within wait_ms (-1: no limit), all or
 * nothing.  True when both are held; false when the wait ran out (nothing
 * left held).  Raises what the two locks raise.
 */
extern bool cl_hybrid_acquire(const char *key, int keylen, int64 ttl_ms, int64 wait_ms);
extern bool cl_hybrid_acquire_keys(const char *key, int keylen,
								   const char *rkey, int rkeylen,
								   int64 ttl_ms, int64 wait_ms);

#endif							/* COUPON_LOCK_HYBRID_H */
