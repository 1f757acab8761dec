/*-------------------------------------------------------------------------
 *
 * advisory.h
 *	  coupon_lock's advisory locks: text keys hashed to 64-bit ids in a lock
 *	  space of our own (advisory.c is the only file that talks to the lock
 *	  manager).
 *
 *-------------------------------------------------------------------------
 */
#ifndef COUPON_LOCK_ADVISORY_H
#define COUPON_LOCK_ADVISORY_H

#include "postgres.h"

/* The 64-bit lock id of a key. */
extern int64 advisory_key_id(const char *key, int keylen);

/*
 * Takes the exclusive lock on key, in session or transaction scope, waiting
 * at most timeout_ms (-1: no limit, 0: no wait) in the lock manager's own
 * queue.  Returns true when held, false when the wait ran out (no lock and
 * no aborted transaction left behind).  Deadlock, cancel and
 * statement_timeout raise as they do for core locks.
 */
extern bool advisory_acquire(const char *key, int keylen, bool session_scope, int64 timeout_ms);

/* Releases one hold of a session-scope lock; false when not held. */
extern bool advisory_release(const char *key, int keylen);

#endif							/* COUPON_LOCK_ADVISORY_H */
