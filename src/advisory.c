/*-------------------------------------------------------------------------
 *
 * advisory.c
 *	  Advisory locks by text key: advisory_lock, advisory_xact_lock,
 *	  advisory_unlock, advisory_lock_id and the key memory behind the
 *	  coupon_lock.advisory_locks view.  The only file that talks to the
 *	  lock manager.
 *
 * Lock space.  A key is hashed to 64 bits with hash_bytes_extended (seed
 * 0, so the id equals hashtextextended(key, 0)) and becomes the advisory
 * lock tag (database, high 32 bits, low 32 bits, ADVISORY_SPACE).  Core's
 * pg_advisory_* functions put 1 (one bigint) or 2 (two integers) in the
 * fourth field, so no core call can ever take one of our locks, whatever
 * its numbers.  pg_locks shows our locks with objsubid = ADVISORY_SPACE.
 *
 * Concurrency rules.  All waiting is the lock manager's own: FIFO among
 * waiters, deadlock detection after deadlock_timeout (40P01), query cancel
 * and statement_timeout interrupt a wait, pg_locks and pg_blocking_pids()
 * show the waiter.  A call first tries without waiting (LockAcquire with
 * dontWait), which is the whole cost of an uncontended or reentrant call;
 * a try never jumps the queue, because a new request conflicts with the
 * modes that waiters already ask for.  Only when the lock is busy:
 *
 *	- timeout NULL: a plain blocking LockAcquire, exactly like core
 *	  pg_advisory_lock (lock_timeout, if set, raises 55P03 as usual);
 *	- timeout '0': the failed try is the answer (false);
 *	- a finite timeout: the blocking LockAcquire runs inside an internal
 *	  subtransaction with lock_timeout set to the timeout for that wait
 *	  only (the argument replaces the session's lock_timeout).  The lock
 *	  timeout's error is caught, the subtransaction rolled back, and false
 *	  returned: no lock, no queue entry and no aborted transaction remain.
 *	  Every other error (deadlock, cancel, statement_timeout) rolls back
 *	  the subtransaction and is re-thrown unchanged.
 *
 * Scope.  Session locks have no resource owner: they survive commit,
 * rollback and ROLLBACK TO SAVEPOINT (also when taken inside the internal
 * subtransaction) until advisory_unlock, pg_advisory_unlock_all(),
 * DISCARD ALL or the end of the session.  Transaction locks belong to
 * CurrentResourceOwner; one granted inside the internal subtransaction
 * passes to the caller's resource owner when that subtransaction commits,
 * so it lives until the caller's (sub)transaction ends.  Re-acquiring a
 * held lock only bumps the lock manager's local count (reentrancy).
 *
 * Key memory.  The lock manager knows ids, not keys: advisory_keys.c
 * keeps the key text of the locks this backend takes (and refuses a new
 * key beyond coupon_lock.max_held_keys).  A key is noted before its lock
 * is requested, so that once the lock is granted nothing of ours can fail,
 * and forgotten here whenever a call ends without holding it.
 *
 * A grant racing an error.  When the holder lets go in the same instant as
 * the waiter's timeout, cancel or statement_timeout fires, the waiter sees
 * the error although the lock manager granted it the lock, and PostgreSQL
 * 15's LockErrorCleanup keeps that grant (for a session lock, owned by no
 * resource owner, beyond the abort).  A timed wait whose timeout raced the
 * grant therefore answers true when the session lock is held; after any
 * other error a raced session grant is given back, so that an error always
 * means "not held".
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <limits.h>

#include "access/xact.h"
#include "common/hashfn.h"
#include "datatype/timestamp.h"
#include "miscadmin.h"
#include "storage/lock.h"
#include "storage/proc.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/resowner.h"

#include "advisory.h"
#include "coupon_lock.h"
#include "stats.h"

PG_FUNCTION_INFO_V1(coupon_lock_advisory_lock);
PG_FUNCTION_INFO_V1(coupon_lock_advisory_xact_lock);
PG_FUNCTION_INFO_V1(coupon_lock_advisory_unlock);
PG_FUNCTION_INFO_V1(coupon_lock_advisory_lock_id);
PG_FUNCTION_INFO_V1(coupon_lock_advisory_lock_key);

/*
 * The fourth field of our lock tags: "CL" in ASCII.  Core uses 1 and 2;
 * kept below 32768 because pg_locks shows the field as a smallint.
 */
#define ADVISORY_SPACE	0x434C

int64
advisory_key_id(const char *key, int keylen)
{
	return (int64) hash_bytes_extended((const unsigned char *) key, keylen, 0);
}

static void
set_tag(LOCKTAG *tag, int64 id)
{
	SET_LOCKTAG_ADVISORY(*tag, MyDatabaseId,
						 (uint32) ((uint64) id >> 32), (uint32) id,
						 ADVISORY_SPACE);
}

bool
cl_advisory_id_held(int64 id)
{
	LOCKTAG		tag;

	set_tag(&tag, id);
	return LockHeldByMe(&tag, ExclusiveLock);
}

/* ---- acquire and release ---- */

/*
 * After an error ended a wait: a grant that raced the error (the holder let
 * go in the same instant) is recorded by LockErrorCleanup, which gives a
 * session lock to no resource owner, so the subtransaction's or
 * transaction's abort would keep it.  An error must mean "not held": such a
 * lock is given back here.  (The wait ran only because the lock was not
 * held before, so a held lock is that grant.)  A transaction lock raced in
 * that way goes with the aborting (sub)transaction's resource owner.
 */
static void
after_failed_wait(const LOCKTAG *tag, int64 id, bool session_scope)
{
	if (session_scope && LockHeldByMe(tag, ExclusiveLock))
		(void) LockRelease(tag, ExclusiveLock, true);
	cl_keys_forget(id);
}

/*
 * The blocking wait, bounded by timeout_ms, inside an internal
 * subtransaction.  Returns false when the timeout ran out.
 */
static bool
wait_with_timeout(const LOCKTAG *tag, int64 id, bool session_scope, int64 timeout_ms)
{
	MemoryContext oldcontext = CurrentMemoryContext;
	ResourceOwner oldowner = CurrentResourceOwner;
	volatile bool acquired = false;
	volatile bool session = session_scope;	/* read after a longjmp */

	BeginInternalSubTransaction(NULL);
	MemoryContextSwitchTo(oldcontext);

	PG_TRY();
	{
		int			nestlevel = NewGUCNestLevel();
		char		buf[32];

		snprintf(buf, sizeof(buf), "%d", (int) Min(timeout_ms, INT_MAX));
		(void) set_config_option("lock_timeout", buf, PGC_USERSET, PGC_S_SESSION,
								 GUC_ACTION_SAVE, true, 0, false);
		(void) LockAcquire(tag, ExclusiveLock, session_scope, false);
		AtEOXact_GUC(true, nestlevel);

		/* A transaction lock passes to the caller's resource owner here. */
		ReleaseCurrentSubTransaction();
		MemoryContextSwitchTo(oldcontext);
		CurrentResourceOwner = oldowner;
		acquired = true;
	}
	PG_CATCH();
	{
		ErrorData  *edata;

		MemoryContextSwitchTo(oldcontext);
		edata = CopyErrorData();
		FlushErrorState();
		/* Runs LockErrorCleanup, which records a grant that raced the error. */
		RollbackAndReleaseCurrentSubTransaction();
		MemoryContextSwitchTo(oldcontext);
		CurrentResourceOwner = oldowner;

		if (edata->sqlerrcode != ERRCODE_LOCK_NOT_AVAILABLE)
		{
			after_failed_wait(tag, id, session);
			if (edata->sqlerrcode == ERRCODE_T_R_DEADLOCK_DETECTED)
				stats_count(STAT_ADVISORY, STAT_DEADLOCK);
			ReThrowError(edata);
		}
		FreeErrorData(edata);

		/*
		 * The timeout and the grant can come together: a session lock
		 * granted then is held now (see after_failed_wait), and the answer
		 * is true.  A transaction lock granted then went with the
		 * subtransaction's resource owner: false, nothing held.
		 */
		acquired = session && LockHeldByMe(tag, ExclusiveLock);
	}
	PG_END_TRY();

	return acquired;
}

/* The blocking wait with no limit of ours, as core pg_advisory_lock waits. */
static void
wait_unbounded(const LOCKTAG *tag, int64 id, bool session_scope)
{
	PG_TRY();
	{
		(void) LockAcquire(tag, ExclusiveLock, session_scope, false);
	}
	PG_CATCH();
	{
		/* What the abort would do first: records a grant that raced the error. */
		LockErrorCleanup();
		after_failed_wait(tag, id, session_scope);
		if (geterrcode() == ERRCODE_T_R_DEADLOCK_DETECTED)
			stats_count(STAT_ADVISORY, STAT_DEADLOCK);
		PG_RE_THROW();
	}
	PG_END_TRY();
}

bool
advisory_acquire(const char *key, int keylen, bool session_scope, int64 timeout_ms)
{
	int64		id = advisory_key_id(key, keylen);
	LOCKTAG		tag;

	/*
	 * Before the lock is taken, so that nothing can fail once it is held;
	 * refuses a new key beyond coupon_lock.max_held_keys.
	 */
	cl_keys_note(id, key, keylen);

	set_tag(&tag, id);
	if (LockAcquire(&tag, ExclusiveLock, session_scope, true) == LOCKACQUIRE_NOT_AVAIL)
	{
		bool		acquired = false;

		if (timeout_ms != 0)
		{
			stats_count(STAT_ADVISORY, STAT_WAITED);
			if (timeout_ms < 0)
			{
				wait_unbounded(&tag, id, session_scope);
				acquired = true;
			}
			else
				acquired = wait_with_timeout(&tag, id, session_scope, timeout_ms);
		}
		if (!acquired)
		{
			cl_keys_forget(id);
			stats_count(STAT_ADVISORY, STAT_TIMED_OUT);
			return false;
		}
	}
	stats_count(STAT_ADVISORY, STAT_ACQUIRED);
	return true;
}

bool
advisory_release(const char *key, int keylen)
{
	int64		id = advisory_key_id(key, keylen);
	LOCKTAG		tag;

	set_tag(&tag, id);
	/* The lock manager warns "you don't own a lock" when it is not held. */
	if (!LockRelease(&tag, ExclusiveLock, true))
		return false;
	if (!LockHeldByMe(&tag, ExclusiveLock))
		cl_keys_forget(id);
	stats_count(STAT_ADVISORY, STAT_RELEASED);
	return true;
}

/* ---- SQL entry points ---- */

static Datum
advisory_lock_common(FunctionCallInfo fcinfo, bool session_scope)
{
	char	   *key = cl_arg_id(fcinfo, 0, "key");
	int64		timeout_ms = cl_arg_wait_ms(fcinfo, 1, "timeout");

	if (session_scope)
		cl_check_session_key(key, strlen(key));
	PG_RETURN_BOOL(advisory_acquire(key, strlen(key), session_scope, timeout_ms));
}

Datum
coupon_lock_advisory_lock(PG_FUNCTION_ARGS)
{
	return advisory_lock_common(fcinfo, true);
}

Datum
coupon_lock_advisory_xact_lock(PG_FUNCTION_ARGS)
{
	return advisory_lock_common(fcinfo, false);
}

Datum
coupon_lock_advisory_unlock(PG_FUNCTION_ARGS)
{
	char	   *key = cl_arg_id(fcinfo, 0, "key");

	PG_RETURN_BOOL(advisory_release(key, strlen(key)));
}

Datum
coupon_lock_advisory_lock_id(PG_FUNCTION_ARGS)
{
	char	   *key = cl_arg_id(fcinfo, 0, "key");

	PG_RETURN_INT64(advisory_key_id(key, strlen(key)));
}

/*
 * The key this backend holds a lock on under lock_id, or NULL: also NULL
 * for keys only tried, or locked and released since (the view uses it).
 */
Datum
coupon_lock_advisory_lock_key(PG_FUNCTION_ARGS)
{
	const char *key;

	if (PG_ARGISNULL(0))
		PG_RETURN_NULL();
	key = cl_keys_lookup(PG_GETARG_INT64(0));
	if (key == NULL)
		PG_RETURN_NULL();
	PG_RETURN_TEXT_P(cstring_to_text(key));
}
