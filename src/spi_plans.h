/*-------------------------------------------------------------------------
 *
 * spi_plans.h
 *	  Prepared SPI statements kept for the life of the backend, and one way
 *	  to run them and read their results.
 *
 *-------------------------------------------------------------------------
 */
#ifndef COUPON_LOCK_SPI_PLANS_H
#define COUPON_LOCK_SPI_PLANS_H

#include "postgres.h"

#include "executor/spi.h"

#define CL_PLAN_MAX_ARGS 12

/*
 * A statement: its SQL (every name schema-qualified) and parameter types.
 * Declare one static SpiPlan per statement next to the code that runs it;
 * the plan is prepared on first use and kept.
 */
typedef struct SpiPlan
{
	const char *sql;
	int			nargs;
	Oid			argtypes[CL_PLAN_MAX_ARGS];
	SPIPlanPtr	plan;			/* NULL until first use */
} SpiPlan;

/* The statement's plan, prepared and kept on first use (SPI connected). */
extern SPIPlanPtr spi_plan(SpiPlan *p);

/* Runs the statement (SPI must be connected); returns SPI_processed. */
extern uint64 spi_run(SpiPlan *p, Datum *values, const char *nulls, long tcount);

/*
 * REPEATABLE READ and SERIALIZABLE: true when the read-only statement finds
 * a row on the latest snapshot (a row created after the transaction's).
 */
extern bool spi_found_after_snapshot(SpiPlan *p, Datum *values, const char *nulls);

/* Column readers for row `row` of SPI_tuptable (columns from 1). */
extern Datum spi_datum(uint64 row, int col, bool *isnull);
extern int64 spi_int64(uint64 row, int col);
extern bool spi_bool(uint64 row, int col);
extern char *spi_text_or_null(uint64 row, int col);

#endif							/* COUPON_LOCK_SPI_PLANS_H */
