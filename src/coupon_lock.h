/*-------------------------------------------------------------------------
 *
 * coupon_lock.h
 *	  Declarations shared by the coupon_lock modules: the project's own
 *	  SQLSTATEs, argument checks every SQL entry point uses, and one Init
 *	  function per module called from _PG_init.
 *
 *-------------------------------------------------------------------------
 */
#ifndef COUPON_LOCK_H
#define COUPON_LOCK_H

#include "postgres.h"
#include "fmgr.h"

/*
 * SQLSTATEs of coupon_lock's own conditions, class "CL" (not used by
 * PostgreSQL).  The README lists them; keep the two in step.
 */
#define ERRCODE_CL_UNKNOWN_COUPON	MAKE_SQLSTATE('C','L','0','0','1')
#define ERRCODE_CL_UNKNOWN_BATCH	MAKE_SQLSTATE('C','L','0','0','2')
#define ERRCODE_CL_OWNER_MISMATCH	MAKE_SQLSTATE('C','L','0','0','3')
#define ERRCODE_CL_ORDER_MISMATCH	MAKE_SQLSTATE('C','L','0','0','4')
#define ERRCODE_CL_LIMIT_REACHED	MAKE_SQLSTATE('C','L','0','0','5')
#define ERRCODE_CL_BATCH_EXPIRED	MAKE_SQLSTATE('C','L','0','0','6')

/* Longest owner_id, order_id or lock key accepted, in bytes. */
#define CL_MAX_ID_LEN	512

/* Longest duration accepted, in years: the clock + a ttl stays a valid timestamp. */
#define CL_MAX_TTL_YEARS	1000

/* Argument checks (args.c): NULL -> 22004, empty or too long -> 22023. */
extern char *cl_arg_id(FunctionCallInfo fcinfo, int argno, const char *argname);
extern int64 cl_arg_int64(FunctionCallInfo fcinfo, int argno, const char *argname);
extern int32 cl_arg_int32(FunctionCallInfo fcinfo, int argno, const char *argname);
extern int32 cl_arg_max_rows(FunctionCallInfo fcinfo, int argno);

/*
 * Duration arguments (args.c has the one rule): no negative part, a ttl
 * longer than zero, at most CL_MAX_TTL_YEARS from the clock.
 */
extern Datum cl_arg_positive_interval(FunctionCallInfo fcinfo, int argno,
									  const char *argname, bool allow_null);
extern int64 cl_arg_ttl_ms(FunctionCallInfo fcinfo, int argno, const char *argname);
extern int64 cl_arg_wait_ms(FunctionCallInfo fcinfo, int argno, const char *argname);

/*
 * Which SQL definitions this database has (version.c): the 1.1 library also
 * serves databases still at 1.0 until ALTER EXTENSION coupon_lock UPDATE.
 */
#define CL_SQL_1_0	100
#define CL_SQL_1_1	101
extern int	cl_sql_version(void);
extern void cl_require_sql_version(int version, const char *function_name);

/*
 * Lease tokens (epoch.c): the epoch (the timeline) in the high bits, a
 * counter in the low bits; cl_fence_epoch_floor() is the epoch of a grant
 * made now, shifted into place (the first token of the epoch minus 1).
 */
#define CL_FENCE_EPOCH_SHIFT	32
extern int64 cl_fence_epoch_floor(void);

/*
 * Hot standbys (standby.c): the 25006 error of every writing function, and
 * the way spi_run() executes statements while recovery is in progress.
 */
extern void cl_standby_write_error(const char *pg_message) pg_attribute_noreturn();
struct _SPI_plan;
extern int	cl_spi_execute_on_standby(struct _SPI_plan *plan, Datum *values,
									  const char *nulls, long tcount);

/* One Init per module, called from _PG_init. */
extern void GucInit(void);
extern void StatsInit(void);
extern void RedisLockInit(void);
extern void cl_lease_init(void);
extern void cl_sweeper_init(void);
extern void cl_router_timeout_init(void);

#endif							/* COUPON_LOCK_H */
