/*-------------------------------------------------------------------------
 *
 * spi_plans.c
 *	  Prepared SPI statements, kept for the life of the backend.
 *
 * Each statement is parsed and planned once per backend (SPI_prepare_cursor
 * + SPI_keepplan) and always runs its generic plan: every statement looks
 * rows up by key, where a plan for the actual parameter values is no
 * better, and the plan cache would otherwise plan it afresh at each of its
 * first five runs in every backend before settling on the generic plan.
 * The plan cache re-plans by itself when a table a statement uses changes,
 * so a DROP and CREATE EXTENSION in the same session is safe.
 * Every name in the SQL is schema-qualified: the functions run with
 * search_path = pg_catalog, pg_temp, and nothing a caller puts on its
 * search_path can change what a statement means.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "access/xlog.h"
#include "executor/spi.h"
#include "utils/builtins.h"
#include "utils/snapmgr.h"

#include "coupon_lock.h"
#include "spi_plans.h"

/* The statement's plan, prepared and kept on first use. */
SPIPlanPtr
spi_plan(SpiPlan *p)
{
	if (p->plan == NULL)
	{
		SPIPlanPtr	plan = SPI_prepare_cursor(p->sql, p->nargs, p->argtypes,
											  CURSOR_OPT_GENERIC_PLAN);

		if (plan == NULL)
			elog(ERROR, "could not prepare coupon_lock statement: %s",
				 SPI_result_code_string(SPI_result));
		if (SPI_keepplan(plan) != 0)
			elog(ERROR, "could not keep coupon_lock statement");
		p->plan = plan;
	}
	return p->plan;
}

uint64
spi_run(SpiPlan *p, Datum *values, const char *nulls, long tcount)
{
	int			rc;

	spi_plan(p);
	/* on a hot standby a write gets coupon_lock's 25006 (standby.c) */
	if (RecoveryInProgress())
		rc = cl_spi_execute_on_standby(p->plan, values, nulls, tcount);
	else
		rc = SPI_execute_plan(p->plan, values, nulls, false, tcount);
	if (rc < 0)
		elog(ERROR, "coupon_lock statement failed: %s", SPI_result_code_string(rc));
	return SPI_processed;
}

/*
 * Under REPEATABLE READ or SERIALIZABLE: whether the (read-only) statement
 * finds a row on the latest snapshot, i.e. whether a row the transaction's
 * snapshot does not see exists after all (created after the snapshot was
 * taken).  Always false under READ COMMITTED, where every statement already
 * sees the latest rows.
 */
bool
spi_found_after_snapshot(SpiPlan *p, Datum *values, const char *nulls)
{
	int			rc;

	if (!IsolationUsesXactSnapshot())
		return false;
	spi_plan(p);
	rc = SPI_execute_snapshot(p->plan, values, nulls, GetLatestSnapshot(),
							  InvalidSnapshot, true, false, 1);
	if (rc < 0)
		elog(ERROR, "coupon_lock statement failed: %s", SPI_result_code_string(rc));
	return SPI_processed > 0;
}

Datum
spi_datum(uint64 row, int col, bool *isnull)
{
	return SPI_getbinval(SPI_tuptable->vals[row], SPI_tuptable->tupdesc, col, isnull);
}

int64
spi_int64(uint64 row, int col)
{
	bool		isnull;
	Datum		d = spi_datum(row, col, &isnull);

	if (isnull)
		elog(ERROR, "unexpected null in column %d of a coupon_lock statement", col);
	return DatumGetInt64(d);
}

bool
spi_bool(uint64 row, int col)
{
	bool		isnull;
	Datum		d = spi_datum(row, col, &isnull);

	return !isnull && DatumGetBool(d);
}

/* A text column as a C string in the current (SPI) memory context, or NULL. */
char *
spi_text_or_null(uint64 row, int col)
{
	bool		isnull;
	Datum		d = spi_datum(row, col, &isnull);

	return isnull ? NULL : TextDatumGetCString(d);
}
