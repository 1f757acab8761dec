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

#include "utils/builtins.h"
#include "utils/fmgrprotos.h"
#include "utils/timestamp.h"

#include "coupon_lock.h"

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

/* ---- durations ---- */

/*
 * The one rule for every duration argument: a freeze's ttl and a batch's
 * freeze_ttl, lease ttls, Redis ttls and waits, hybrid_xact_lock's wait,
 * advisory timeouts.  A duration is what the write does with it: the time
 * from the clock (clock_timestamp(), the clock of freezes and leases) to
 * the clock plus the interval, computed as timestamptz + interval does
 * (calendar months, calendar days in the session's time zone).
 *
 *	- No part (months, days, time) may be negative.  A month is 28 to 31
 *	  days and a day 23 to 25 hours, so an interval with parts of both
 *	  signs ('1 month -29 days', '-100 years 36200 days') is longer than
 *	  zero on some dates and not on others; a batch's freeze_ttl, checked
 *	  once and applied at any later date, must hold on every date.  With
 *	  no negative part, clock + interval is never before the clock.
 *	- A ttl must be longer than zero, a wait may be zero (no wait).
 *	- clock + interval is at most CL_MAX_TTL_YEARS after the clock; each
 *	  part is bounded first, so the computation itself can never leave
 *	  the timestamp range (22008).
 *	- Milliseconds (Redis PX, waits) are that same span, a part of a
 *	  millisecond rounded up: one conversion, one cap.
 *	- NULL: where a function allows it, a wait without limit (-1 ms); a
 *	  NULL freeze ttl is the batch's freeze_ttl (coupon.c).
 *
 * Errors are 22023 (22004 for a NULL that is not allowed), before anything
 * is read, locked or sent.
 */

typedef enum DurationKind
{
	DURATION_TTL,				/* longer than zero */
	DURATION_WAIT				/* zero or longer */
} DurationKind;

static const Interval max_duration = {.month = MONTHS_PER_YEAR * CL_MAX_TTL_YEARS};

static void
report_not_positive(const char *argname, DurationKind kind, bool mixed_signs)
{
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 kind == DURATION_TTL ?
			 errmsg("%s must be greater than zero", argname) :
			 errmsg("%s must not be negative", argname),
			 mixed_signs ?
			 errdetail("Its months, days and time have different signs; months and days vary in length with the date, so no part of a duration may be negative.") : 0));
}

static void
report_too_long(const char *argname)
{
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg("%s must be at most %d years", argname, CL_MAX_TTL_YEARS)));
}

/* clock + iv, once the rule holds: the end of the duration. */
static TimestampTz
duration_end(const Interval *iv, const char *argname, DurationKind kind,
			 TimestampTz clock)
{
	TimestampTz end;
	TimestampTz limit;

	if (iv->month < 0 || iv->day < 0 || iv->time < 0)
		report_not_positive(argname, kind,
							iv->month > 0 || iv->day > 0 || iv->time > 0);
	if (kind == DURATION_TTL && iv->month == 0 && iv->day == 0 && iv->time == 0)
		report_not_positive(argname, kind, false);
	/* each part on its own within the cap: the sum stays a valid timestamp */
	if (iv->month > MONTHS_PER_YEAR * CL_MAX_TTL_YEARS ||
		iv->day > (int64) (DAYS_PER_YEAR * CL_MAX_TTL_YEARS) + 1 ||
		iv->time > ((int64) (DAYS_PER_YEAR * CL_MAX_TTL_YEARS) + 1) * USECS_PER_DAY)
		report_too_long(argname);

	end = DatumGetTimestampTz(DirectFunctionCall2(timestamptz_pl_interval,
												  TimestampTzGetDatum(clock),
												  IntervalPGetDatum(iv)));
	limit = DatumGetTimestampTz(DirectFunctionCall2(timestamptz_pl_interval,
													TimestampTzGetDatum(clock),
													IntervalPGetDatum(&max_duration)));
	if (end > limit)
		report_too_long(argname);
	return end;
}

/* The span from clock to end in milliseconds, a part of one rounded up. */
static int64
span_ms(TimestampTz clock, TimestampTz end)
{
	return (end - clock + 999) / 1000;
}

/*
 * A ttl argument that follows the rule above (DURATION_TTL), as the
 * interval Datum the caller writes with (clock_timestamp() + ttl).  With
 * allow_null a NULL is passed through as (Datum) 0; the caller checks
 * PG_ARGISNULL itself.
 */
Datum
cl_arg_positive_interval(FunctionCallInfo fcinfo, int argno,
						 const char *argname, bool allow_null)
{
	if (allow_null && PG_ARGISNULL(argno))
		return (Datum) 0;
	require_not_null(fcinfo, argno, argname);
	(void) duration_end(PG_GETARG_INTERVAL_P(argno), argname, DURATION_TTL,
						GetCurrentTimestamp());
	return PG_GETARG_DATUM(argno);
}

/* A ttl argument that follows the rule, in milliseconds (Redis PX). */
int64
cl_arg_ttl_ms(FunctionCallInfo fcinfo, int argno, const char *argname)
{
	TimestampTz clock = GetCurrentTimestamp();

	require_not_null(fcinfo, argno, argname);
	return span_ms(clock, duration_end(PG_GETARG_INTERVAL_P(argno), argname,
									   DURATION_TTL, clock));
}

/*
 * A wait or timeout argument that follows the rule (DURATION_WAIT), in
 * milliseconds: 0 for no wait, -1 for NULL (no limit).
 */
int64
cl_arg_wait_ms(FunctionCallInfo fcinfo, int argno, const char *argname)
{
	TimestampTz clock = GetCurrentTimestamp();

	if (PG_ARGISNULL(argno))
		return -1;
	return span_ms(clock, duration_end(PG_GETARG_INTERVAL_P(argno), argname,
									   DURATION_WAIT, clock));
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
