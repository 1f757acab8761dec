/*-------------------------------------------------------------------------
 *
 * redis_sentinel.h
 *	  Where the Redis master comes from when Sentinels watch it
 *	  (redis_sentinel.c).
 *
 *-------------------------------------------------------------------------
 */
#ifndef COUPON_LOCK_REDIS_SENTINEL_H
#define COUPON_LOCK_REDIS_SENTINEL_H

#include "postgres.h"

/* True when coupon_lock.redis_sentinels is set. */
extern bool cl_sentinel_configured(void);

/*
 * Asks the Sentinels in turn, each within timeout_ms, for the address of
 * coupon_lock.redis_sentinel_master; true with host and port filled in
 * from the first that knows it.  False when none does (the last failure
 * is kept by redis_conn.c for the error).
 */
extern bool cl_sentinel_find_master(char *host, size_t hostlen, int *port, int timeout_ms,
								  bool interruptible);

#endif							/* COUPON_LOCK_REDIS_SENTINEL_H */
