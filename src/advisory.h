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

/* Whether this backend holds the lock of that id (any scope). */
extern bool cl_advisory_id_held(int64 id);

/*
 * The key memory (advisory_keys.c).  cl_keys_note records key before its
 * lock is requested and raises 53200 when it is a new key and the backend
 * already holds coupon_lock.max_held_keys keys; cl_keys_forget drops it
 * once its lock is known not to be held; cl_keys_lookup gives the key of a
 * held lock, NULL for any other id.
 */
extern void cl_keys_note(int64 id, const char *key, int keylen);
extern void cl_keys_forget(int64 id);
extern const char *cl_keys_lookup(int64 id);

/*
 * The privilege rule of session locks (roles.c): raises 42501 for a key of
 * the guard's (CL_GUARD_KEY_PREFIX) unless the caller has coupon_lock_admin.
 */
extern void cl_check_session_key(const char *key, int keylen);

#endif							/* COUPON_LOCK_ADVISORY_H */
