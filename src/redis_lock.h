/*-------------------------------------------------------------------------
 *
 * redis_lock.h
 *	  Locks held in Redis (redis_lock.c): SET NX PX to take, compare-on-
 *	  token scripts to release and extend, release at transaction end.
 *
 *-------------------------------------------------------------------------
 */
#ifndef COUPON_LOCK_REDIS_LOCK_H
#define COUPON_LOCK_REDIS_LOCK_H

#include "postgres.h"

/*
 * Takes the Redis key prefix||key for ttl_ms, retrying with backoff until
 * wait_ms has passed (-1: no limit, 0: one try).  Returns the token
 * (palloc'd) or NULL when the wait ran out.  With xact, the key is deleted
 * when the (sub)transaction that took it ends, and a key this transaction
 * already holds is checked in Redis and returned again with its TTL reset
 * to ttl_ms (or taken afresh when it was lost).  Raises when Redis cannot be
 * used (see redis_conn.h).
 */
extern char *redis_acquire(const char *key, int keylen, int64 ttl_ms, int64 wait_ms,
						   bool xact);

/* Deletes prefix||key if it holds token; true when it did. */
extern bool redis_release(const char *key, int keylen, const char *token, int tokenlen);

/* Resets the TTL of prefix||key to ttl_ms if it holds token; true when it did. */
extern bool cl_redis_extend_key(const char *key, int keylen, const char *token, int tokenlen,
							 int64 ttl_ms);

#endif							/* COUPON_LOCK_REDIS_LOCK_H */
