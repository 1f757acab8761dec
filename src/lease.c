/*-------------------------------------------------------------------------
 *
 * lease.c
 *	  Leases with fencing tokens: lease_acquire, lease_renew, lease_release,
 *	  lease_check, each a statement or two on coupon_lock.lease.
 *
 * A lease is a row per name: its holder, its expiry and a fencing token
 * (fence).  Rows are never deleted: a release clears holder and expiry
 * and keeps the fence, so the counter is in the durable row and survives
 * restarts, crashes and dump/restore; it never goes back and is never
 * reused.  A new grant takes the larger of the row's fence + 1 and the
 * first token of the current fencing epoch (epoch.c), so a node promoted
 * after missing the old primary's last grants still hands out larger
 * tokens than all of them.
 *
 * Concurrency rules.  The row lock does all the serialising:
 *
 *	- lease_acquire is INSERT ... ON CONFLICT DO UPDATE ... WHERE free or
 *	  ours: two acquirers of one name queue on the row lock, and the
 *	  second re-checks the WHERE on the row the first wrote (READ
 *	  COMMITTED), so at most one gets the lease.  The holder of an
 *	  unexpired lease acquiring again only extends it and keeps its fence.
 *	- lease_renew and lease_release update only the holder's own
 *	  unexpired lease.  They, like acquire, lock the row first (SELECT ...
 *	  FOR NO KEY UPDATE) and then write, so the expiry they compute is
 *	  clock_timestamp() at the write, after any wait: a grant or renewal
 *	  always ends ttl after it was made.
 *	- lease_check reads the row FOR SHARE in a read-write transaction.
 *	  The share lock is held until the caller's transaction ends, so no
 *	  other grant (which must update the row) can happen between the check
 *	  and the commit of the write it guards.  In a read-only transaction
 *	  and on a hot standby, where there is no guarded write and no row lock
 *	  can be taken, it is a plain read.
 *	- No lease call waits without limit: each waits at most
 *	  coupon_lock.lease_wait (or the session's shorter lock_timeout) for
 *	  the row lock, then fails with 55P03, counted as timed_out.  The wait
 *	  that needs this is a transaction still open after a lease_check or a
 *	  lease write of another session.
 *
 * Expiry uses clock_timestamp(), the server's clock at the statement, not
 * now() (the transaction start), so a long transaction does not see a
 * lease alive that has run out.  Under REPEATABLE READ or SERIALIZABLE a
 * concurrent change to the row raises 40001, as row updates do there.
 *
 * Durability.  A transaction that changed a lease commits synchronously
 * even when the session set synchronous_commit = off: at PRE_COMMIT the
 * setting is raised to "on" for the rest of that transaction only (it is
 * read at commit, in RecordTransactionCommit).  A token a client saw
 * acknowledged is therefore never granted again after a crash.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <limits.h>

#include "access/xact.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "storage/proc.h"
#include "utils/builtins.h"
#include "utils/guc.h"

#include "coupon_lock.h"
#include "guc.h"
#include "spi_plans.h"
#include "stats.h"

PG_FUNCTION_INFO_V1(coupon_lock_lease_acquire);
PG_FUNCTION_INFO_V1(coupon_lock_lease_renew);
PG_FUNCTION_INFO_V1(coupon_lock_lease_release);
PG_FUNCTION_INFO_V1(coupon_lock_lease_check);

/* $1 name: takes the row lock before a write, so the write never waits. */
static SpiPlan lock_plan = {
	"SELECT 1 FROM coupon_lock.lease WHERE name = $1 FOR NO KEY UPDATE",
	1, {TEXTOID}, NULL
};

/* $1 name, $2 holder, $3 ttl, $4 the epoch floor (cl_fence_epoch_floor) */
static SpiPlan acquire_plan = {
	"INSERT INTO coupon_lock.lease AS l (name, holder, fence, expires_at, granted_at)"
	" VALUES ($1, $2, $4 + 1, pg_catalog.clock_timestamp() + $3, pg_catalog.clock_timestamp())"
	" ON CONFLICT (name) DO UPDATE"
	"   SET fence = CASE WHEN l.holder = excluded.holder"
	"                     AND l.expires_at > pg_catalog.clock_timestamp()"
	"                    THEN l.fence ELSE pg_catalog.int8larger(l.fence + 1, $4 + 1) END,"
	"       granted_at = CASE WHEN l.holder = excluded.holder"
	"                          AND l.expires_at > pg_catalog.clock_timestamp()"
	"                         THEN l.granted_at ELSE pg_catalog.clock_timestamp() END,"
	"       holder = excluded.holder,"
	"       expires_at = pg_catalog.clock_timestamp() + $3"
	" WHERE l.holder IS NULL OR l.holder = excluded.holder"
	"    OR l.expires_at <= pg_catalog.clock_timestamp()"
	" RETURNING fence",
	4, {TEXTOID, TEXTOID, INTERVALOID, INT8OID}, NULL
};

static SpiPlan renew_plan = {
	"UPDATE coupon_lock.lease SET expires_at = pg_catalog.clock_timestamp() + $3"
	" WHERE name = $1 AND holder = $2 AND expires_at > pg_catalog.clock_timestamp()",
	3, {TEXTOID, TEXTOID, INTERVALOID}, NULL
};

static SpiPlan release_plan = {
	"UPDATE coupon_lock.lease SET holder = NULL, expires_at = NULL"
	" WHERE name = $1 AND holder = $2 AND expires_at > pg_catalog.clock_timestamp()",
	2, {TEXTOID, TEXTOID}, NULL
};

#define CHECK_SQL \
	"SELECT 1 FROM coupon_lock.lease" \
	" WHERE name = $1 AND fence = $2 AND holder IS NOT NULL" \
	"   AND expires_at > pg_catalog.clock_timestamp()"

static SpiPlan check_plan = {CHECK_SQL " FOR SHARE", 2, {TEXTOID, INT8OID}, NULL};

/* read-only transactions and hot standbys: the same read without the lock */
static SpiPlan check_read_plan = {CHECK_SQL, 2, {TEXTOID, INT8OID}, NULL};

/* A lease changed in this transaction: its commit must be synchronous. */
static bool lease_written = false;

static void
lease_xact_callback(XactEvent event, void *arg pg_attribute_unused())
{
	switch (event)
	{
		case XACT_EVENT_PRE_COMMIT:
		case XACT_EVENT_PARALLEL_PRE_COMMIT:
			/* fallible work belongs here, before the commit record */
			if (lease_written && synchronous_commit == SYNCHRONOUS_COMMIT_OFF)
				(void) set_config_option("synchronous_commit", "on",
										 PGC_USERSET, PGC_S_SESSION,
										 GUC_ACTION_LOCAL, true, 0, false);
			break;
		case XACT_EVENT_COMMIT:
		case XACT_EVENT_PARALLEL_COMMIT:
		case XACT_EVENT_ABORT:
		case XACT_EVENT_PARALLEL_ABORT:
		case XACT_EVENT_PREPARE:
			lease_written = false;
			break;
		default:
			break;
	}
}

void
cl_lease_init(void)
{
	RegisterXactCallback(lease_xact_callback, NULL);
}

/*
 * Runs a lease call's statements with SPI connected: `lock` (may be NULL)
 * then `plan`; says whether `plan` hit the row, and *fence gets its first
 * column when asked for.  Row-lock waits are bounded by lease_wait; a
 * wait that runs out and a deadlock are counted before the error goes on.
 */
static bool
lease_run(SpiPlan *lock, SpiPlan *plan, Datum *values, int64 *fence)
{
	MemoryContext oldcontext;
	volatile bool hit = false;
	int			nestlevel;
	const int	wait_ms = (LockTimeout > 0 && LockTimeout < cl_lease_wait) ?
		LockTimeout : cl_lease_wait;
	char		buf[32];

	SPI_connect();
	oldcontext = CurrentMemoryContext;
	nestlevel = NewGUCNestLevel();
	snprintf(buf, sizeof(buf), "%d", wait_ms);
	(void) set_config_option("lock_timeout", buf, PGC_USERSET, PGC_S_SESSION,
							 GUC_ACTION_SAVE, true, 0, false);
	PG_TRY();
	{
		if (lock)
			(void) spi_run(lock, values, NULL, 1);
		hit = spi_run(plan, values, NULL, 1) == 1;
		if (hit && fence)
			*fence = spi_int64(0, 1);
	}
	PG_CATCH();
	{
		int			code = geterrcode();

		if (code == ERRCODE_T_R_DEADLOCK_DETECTED)
			stats_count(STAT_LEASE, STAT_DEADLOCK);
		if (code != ERRCODE_LOCK_NOT_AVAILABLE)
			PG_RE_THROW();
		stats_count(STAT_LEASE, STAT_TIMED_OUT);
		MemoryContextSwitchTo(oldcontext);
		FlushErrorState();
		ereport(ERROR,
				(errcode(ERRCODE_LOCK_NOT_AVAILABLE),
				 errmsg("lease \"%s\" is locked by another transaction",
						TextDatumGetCString(values[0])),
				 errdetail("A transaction that checked or changed this lease was still open after %d ms.",
						   wait_ms),
				 errhint("Retry the call.  A transaction that calls lease_check keeps the lease row share-locked until it ends; keep such transactions short.")));
	}
	PG_END_TRY();
	AtEOXact_GUC(true, nestlevel);
	SPI_finish();
	return hit;
}

/* The name and holder arguments, checked, into values[0] and values[1]. */
static void
name_holder_args(FunctionCallInfo fcinfo, Datum *values)
{
	values[0] = CStringGetTextDatum(cl_arg_id(fcinfo, 0, "name"));
	values[1] = CStringGetTextDatum(cl_arg_id(fcinfo, 1, "holder"));
}

Datum
coupon_lock_lease_acquire(PG_FUNCTION_ARGS)
{
	Datum		values[4];
	int64		fence;

	name_holder_args(fcinfo, values);
	values[2] = cl_arg_positive_interval(fcinfo, 2, "ttl", false);
	values[3] = Int64GetDatum(cl_fence_epoch_floor());

	/* refused (another holder's unexpired lease): not a wait that ran out */
	if (!lease_run(&lock_plan, &acquire_plan, values, &fence))
		PG_RETURN_NULL();
	lease_written = true;
	stats_count(STAT_LEASE, STAT_ACQUIRED);
	PG_RETURN_INT64(fence);
}

Datum
coupon_lock_lease_renew(PG_FUNCTION_ARGS)
{
	Datum		values[3];

	name_holder_args(fcinfo, values);
	values[2] = cl_arg_positive_interval(fcinfo, 2, "ttl", false);
	if (!lease_run(&lock_plan, &renew_plan, values, NULL))
		PG_RETURN_BOOL(false);
	lease_written = true;
	PG_RETURN_BOOL(true);
}

Datum
coupon_lock_lease_release(PG_FUNCTION_ARGS)
{
	Datum		values[2];

	name_holder_args(fcinfo, values);
	if (!lease_run(&lock_plan, &release_plan, values, NULL))
		PG_RETURN_BOOL(false);
	lease_written = true;
	stats_count(STAT_LEASE, STAT_RELEASED);
	PG_RETURN_BOOL(true);
}

Datum
coupon_lock_lease_check(PG_FUNCTION_ARGS)
{
	Datum		values[2];

	values[0] = CStringGetTextDatum(cl_arg_id(fcinfo, 0, "name"));
	values[1] = Int64GetDatum(cl_arg_int64(fcinfo, 1, "fence"));
	PG_RETURN_BOOL(lease_run(NULL, XactReadOnly ? &check_read_plan : &check_plan,
							 values, NULL));
}
