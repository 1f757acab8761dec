/*-------------------------------------------------------------------------
 *
 * standby.c
 *	  coupon_lock on a hot standby: what works there, and the one error
 *	  every writing function gives.
 *
 * On a standby reading the tables and views, the advisory locks (they are
 * not WAL-logged), lock_stats and the Redis functions work.  Everything
 * that writes coupon_lock's tables fails with SQLSTATE 25006 and a hint
 * that names the way to the primary.
 *
 * The check is central rather than one line per entry point: every
 * statement coupon_lock runs goes through spi_run() (spi_plans.c), which,
 * only while recovery is in progress, runs it through cl_spi_execute_
 * on_standby() below.  PostgreSQL refuses the write itself (25006, "cannot
 * execute UPDATE in a read-only transaction"); that error is replaced by
 * ours, which says what happened in coupon_lock's terms and where to go.
 * A reading statement runs as usual.  So a function added later cannot be
 * forgotten, and a primary pays nothing: RecoveryInProgress() is a local
 * flag once recovery has ended.  The ha test layer calls every function
 * of pg_proc on a standby and checks the answer.
 *
 * The same error is raised directly by code that would write outside SPI
 * or must refuse before it runs a statement (the fencing epoch: there is
 * no timeline to write on during recovery).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xlog.h"
#include "executor/spi.h"

#include "coupon_lock.h"

void
cl_standby_write_error(const char *pg_message)
{
	ereport(ERROR,
			(errcode(ERRCODE_READ_ONLY_SQL_TRANSACTION),
			 errmsg("cannot change coupon_lock data on a hot standby"),
			 pg_message ? errdetail("The server is in recovery and answered: %s.", pg_message) :
			 errdetail("The server is in recovery."),
			 errhint("Connect to the primary, for example with target_session_attrs=read-write in the connection string.")));
}

int
cl_spi_execute_on_standby(SPIPlanPtr plan, Datum *values, const char *nulls, long tcount)
{
	MemoryContext oldcontext = CurrentMemoryContext;
	volatile int rc = 0;

	PG_TRY();
	{
		rc = SPI_execute_plan(plan, values, nulls, false, tcount);
	}
	PG_CATCH();
	{
		ErrorData  *edata;

		MemoryContextSwitchTo(oldcontext);
		if (geterrcode() != ERRCODE_READ_ONLY_SQL_TRANSACTION || !RecoveryInProgress())
			PG_RE_THROW();
		edata = CopyErrorData();
		FlushErrorState();
		cl_standby_write_error(edata->message);
	}
	PG_END_TRY();
	return rc;
}
