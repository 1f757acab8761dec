/*-------------------------------------------------------------------------
 *
 * lease.c
 *	  Leases with fencing tokens: lease_acquire, lease_renew, lease_release,
 *	  lease_check, each one statement on coupon_lock.lease.
 *
 * A lease is a row per name: its holder, its expiry and a fencing token
 * (fence).  Rows are never deleted: a release clears holder and expiry
 * and keeps the fence, so the counter is in the durable row and survives
 * restarts, crashes and dump/restore; it never goes back and is never
 * reused.
 *
 * Concurrency rules.  Every function is a single statement, so the row
 * lock it takes does all the serialising:
 *
 *	- lease_acquire is INSERT ... ON CONFLICT DO UPDATE ... WHERE free or
 *	  ours: two acquirers of one name queue on the row lock, and the
 *	  second re-checks the WHERE on the row the first wrote (READ
 *	  COMMITTED), so at most one gets the lease.  A new grant adds 1 to
 *	  the fence; the holder of an unexpired lease acquiring again only
 *	  extends it and keeps its fence.
 *	- lease_renew and lease_release update only the holder's own
 *	  unexpired lease.
 *	- lease_check reads the row FOR SHARE.  The share lock is held until
 *	  the caller's transaction ends, so no other grant (which must update
 *	  the row) can happen between the check and the commit of the write it
 *	  guards; the next holder's acquire waits for that commit.
 *
 * Expiry uses clock_timestamp(), the server's clock at the statement, not
 * now() (the transaction start), so a long transaction does not see a
 * lease alive that has run out.  Under REPEATABLE READ or SERIALIZABLE a
 * concurrent change to the row raises 40001, as row updates do there.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "utils/builtins.h"

#include "coupon_lock.h"
#include "spi_plans.h"
#include "stats.h"

PG_FUNCTION_INFO_V1(coupon_lock_lease_acquire);
PG_FUNCTION_INFO_V1(coupon_lock_lease_renew);
PG_FUNCTION_INFO_V1(coupon_lock_lease_release);
PG_FUNCTION_INFO_V1(coupon_lock_lease_check);

static SpiPlan acquire_plan = {
	"INSERT INTO coupon_lock.lease AS l (name, holder, fence, expires_at, granted_at)"
	" VALUES ($1, $2, 1, pg_catalog.clock_timestamp() + $3, pg_catalog.clock_timestamp())"
	" ON CONFLICT (name) DO UPDATE"
	"   SET fence = CASE WHEN l.holder = excluded.holder"
	"                     AND l.expires_at > pg_catalog.clock_timestamp()"
	"                    THEN l.fence ELSE l.fence + 1 END,"
	"       granted_at = CASE WHEN l.holder = excluded.holder"
	"                          AND l.expires_at > pg_catalog.clock_timestamp()"
	"                         THEN l.granted_at ELSE excluded.granted_at END,"
	"       holder = excluded.holder,"
	"       expires_at = excluded.expires_at"
	" WHERE l.holder IS NULL OR l.holder = excluded.holder"
	"    OR l.expires_at <= pg_catalog.clock_timestamp()"
	" RETURNING fence",
	3, {TEXTOID, TEXTOID, INTERVALOID}, NULL
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

static SpiPlan check_plan = {
	"SELECT 1 FROM coupon_lock.lease"
	" WHERE name = $1 AND fence = $2 AND holder IS NOT NULL"
	"   AND expires_at > pg_catalog.clock_timestamp()"
	"   FOR SHARE",
	2, {TEXTOID, INT8OID}, NULL
};

/*
 * Runs one lease statement with SPI connected and says whether it hit the
 * row; *fence gets its first column when asked for.  A deadlock on the
 * row is counted before the error goes on.
 */
static bool
lease_run(SpiPlan *plan, Datum *values, int64 *fence)
{
	volatile bool hit = false;

	SPI_connect();
	PG_TRY();
	{
		hit = spi_run(plan, values, NULL, 1) == 1;
		if (hit && fence)
			*fence = spi_int64(0, 1);
	}
	PG_CATCH();
	{
		if (geterrcode() == ERRCODE_T_R_DEADLOCK_DETECTED)
			stats_count(STAT_LEASE, STAT_DEADLOCK);
		PG_RE_THROW();
	}
	PG_END_TRY();
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
	Datum		values[3];
	int64		fence;

	name_holder_args(fcinfo, values);
	values[2] = cl_arg_positive_interval(fcinfo, 2, "ttl", false);

	if (!lease_run(&acquire_plan, values, &fence))
	{
		stats_count(STAT_LEASE, STAT_TIMED_OUT);
		PG_RETURN_NULL();
	}
	stats_count(STAT_LEASE, STAT_ACQUIRED);
	PG_RETURN_INT64(fence);
}

Datum
coupon_lock_lease_renew(PG_FUNCTION_ARGS)
{
	Datum		values[3];

	name_holder_args(fcinfo, values);
	values[2] = cl_arg_positive_interval(fcinfo, 2, "ttl", false);
	PG_RETURN_BOOL(lease_run(&renew_plan, values, NULL));
}

Datum
coupon_lock_lease_release(PG_FUNCTION_ARGS)
{
	Datum		values[2];

	name_holder_args(fcinfo, values);
	if (!lease_run(&release_plan, values, NULL))
		PG_RETURN_BOOL(false);
	stats_count(STAT_LEASE, STAT_RELEASED);
	PG_RETURN_BOOL(true);
}

Datum
coupon_lock_lease_check(PG_FUNCTION_ARGS)
{
	Datum		values[2];

	values[0] = CStringGetTextDatum(cl_arg_id(fcinfo, 0, "name"));
	values[1] = Int64GetDatum(cl_arg_int64(fcinfo, 1, "fence"));
	PG_RETURN_BOOL(lease_run(&check_plan, values, NULL));
}
