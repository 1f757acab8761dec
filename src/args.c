/*-------------------------------------------------------------------------
 *
 * args.c
 *	  Checks every SQL entry point makes on its arguments, so that a bad
 *	  call fails the same way everywhere: a NULL where a value is required
 *	  is 22004, a value out of range is 22023.  Nothing is read or locked
 *	  before these checks pass.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <math.h>

#include "utils/builtins.h"
#include "utils/fmgrprotos.h"
#include "utils/timestamp.h"

#include "coupon_lock.h"

/* The longest ttl accepted (a month counts as 30 days, as interval_cmp does). */
static Interval max_ttl = {.month = 12 * CL_MAX_TTL_YEARS};

static void
require_not_null(FunctionCallInfo fcinfo, int argno, const char *argname)
{
	if (PG_ARGISNULL(argno))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("%s must not be null", argname)));
}

/*
 * An identifier chosen by the caller (owner, order, lock key): not NULL,
 * not empty, at most CL_MAX_ID_LEN bytes.  Returns a palloc'd C string.
 */
char *
cl_arg_id(FunctionCallInfo fcinfo, int argno, const char *argname)
{
	text	   *t;
	int			len;

	require_not_null(fcinfo, argno, argname);
	t = PG_GETARG_TEXT_PP(argno);
	len = VARSIZE_ANY_EXHDR(t);
	if (len == 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s must not be empty", argname)));
	if (len > CL_MAX_ID_LEN)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s is too long", argname),
				 errdetail("It has %d bytes; at most %d are allowed.", len, CL_MAX_ID_LEN)));
	return text_to_cstring(t);
}

int64
cl_arg_int64(FunctionCallInfo fcinfo, int argno, const char *argname)
{
	require_not_null(fcinfo, argno, argname);
	return PG_GETARG_INT64(argno);
}

int32
cl_arg_int32(FunctionCallInfo fcinfo, int argno, const char *argname)
{
	require_not_null(fcinfo, argno, argname);
	return PG_GETARG_INT32(argno);
}

/* True when the interval is longer than zero (months count as 30 days). */
bool
cl_interval_is_positive(Datum interval)
{
	Interval	zero = {0};

	return DatumGetInt32(DirectFunctionCall2(interval_cmp, interval,
											 IntervalPGetDatum(&zero))) > 0;
}

/*
 * An interval that must be longer than zero and at most CL_MAX_TTL_YEARS
 * (now() + ttl must stay a valid timestamp: an enormous ttl is an argument
 * out of range, not a "timestamp out of range" from inside the write).
 * With allow_null a NULL is passed through as (Datum) 0; the caller checks
 * PG_ARGISNULL itself.
 */
Datum
cl_arg_positive_interval(FunctionCallInfo fcinfo, int argno,
						 const char *argname, bool allow_null)
{
	Datum		d;

	if (allow_null && PG_ARGISNULL(argno))
		return (Datum) 0;
	require_not_null(fcinfo, argno, argname);
	d = PG_GETARG_DATUM(argno);
	if (!cl_interval_is_positive(d))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s must be greater than zero", argname)));
	if (DatumGetInt32(DirectFunctionCall2(interval_cmp, d,
										  IntervalPGetDatum(&max_ttl))) > 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s must be at most %d years", argname, CL_MAX_TTL_YEARS)));
	return d;
}

/*
 * An interval in milliseconds: months count as 30 days, a part of a
 * millisecond is rounded up, and anything beyond CL_MAX_INTERVAL_MS is
 * capped there.  Negative intervals give negative numbers.
 */
int64
cl_interval_ms(Datum interval)
{
	Interval   *iv = DatumGetIntervalP(interval);
	double		ms;

	ms = ceil(((double) iv->time +
			   ((double) iv->month * DAYS_PER_MONTH + iv->day) * USECS_PER_DAY) / 1000.0);
	if (ms > (double) CL_MAX_INTERVAL_MS)
		return CL_MAX_INTERVAL_MS;
	return (int64) ms;
}

/* max_rows of the sweeps: not NULL, at least 1. */
int32
cl_arg_max_rows(FunctionCallInfo fcinfo, int argno)
{
	int32		n = cl_arg_int32(fcinfo, argno, "max_rows");

	if (n < 1)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("max_rows must be at least 1")));
	return n;
}
