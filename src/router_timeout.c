/*-------------------------------------------------------------------------
 *
 * router_timeout.c
 *	  coupon_lock.router_call_timeout: a bound on every PL/Proxy call of a
 *	  coupon_lock_router database that holds even when the shard's whole
 *	  cluster has stopped (docs/scaling.md, "Failure behaviour").
 *
 * Why a timer of its own.  PL/Proxy 2.10 waits for a shard's answer in a
 * loop that serves interrupts every second but checks its query_timeout
 * only when a connection has news.  A query cancel (statement_timeout, or
 * pg_cancel_backend) makes it send PQcancel() to the shard's postmaster, a
 * blocking connect, send and receive: when that postmaster is stopped
 * (SIGSTOP, or a frozen host whose kernel still answers on loopback) the
 * router backend hangs in it for as long as the shard does.  Every other
 * error leaves PL/Proxy without a cancel: it drops the connection at its
 * next use.
 *
 * So, with the setting above 0, every call of a function in language
 * plproxy runs under PostgreSQL's lock timeout timer (a function manager
 * hook starts it at the call's start and stops it at its end).  When it
 * fires, the next CHECK_FOR_INTERRUPTS in PL/Proxy's wait raises the lock
 * timeout error, which is not a query cancel: PL/Proxy re-throws it without
 * PQcancel, and this file turns it into class 08 with its own message, which
 * the router's functions (router/sql/00-router.sql, router_error) report as
 * "could not reach the shard of partition N".  The timer is free while a
 * call runs: the router backend waits on no heavyweight lock inside
 * PL/Proxy's loop (a lock wait with lock_timeout set would restart it).
 *
 * A timer that fires in the instant between the call's last interrupt
 * check and its end leaves a query cancel pending, which the next check
 * raises as 57014: the caller sees its call cancelled, never a wrong answer.
 *
 * The hook is only installed where coupon_lock's library is loaded before
 * the first call, i.e. with coupon_lock in shared_preload_libraries (or
 * session_preload_libraries) of the router's server; whether a function
 * needs it is decided when its call site is first prepared.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "catalog/pg_proc.h"
#include "commands/proclang.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "utils/elog.h"
#include "utils/timestamp.h"
#include "utils/syscache.h"
#include "utils/timeout.h"

#include "coupon_lock.h"
#include "guc.h"

static needs_fmgr_hook_type prev_needs_fmgr_hook = NULL;
static fmgr_hook_type prev_fmgr_hook = NULL;

/* PL/Proxy calls in progress in this backend (they do not nest; be safe). */
static int	call_depth = 0;

/* When the outermost call in progress runs out of time. */
static TimestampTz call_deadline = 0;

/* Whether the function is written in language plproxy. */
static bool
is_plproxy(Oid fn_oid)
{
	Oid			plproxy = get_language_oid("plproxy", true);
	HeapTuple	tup;
	bool		result;

	if (!OidIsValid(plproxy))
		return false;
	tup = SearchSysCache1(PROCOID, ObjectIdGetDatum(fn_oid));
	if (!HeapTupleIsValid(tup))
		return false;
	result = ((Form_pg_proc) GETSTRUCT(tup))->prolang == plproxy;
	ReleaseSysCache(tup);
	return result;
}

static bool
router_needs_hook(Oid fn_oid)
{
	if (prev_needs_fmgr_hook && prev_needs_fmgr_hook(fn_oid))
		return true;
	return cl_router_call_timeout > 0 && is_plproxy(fn_oid);
}

/*
 * PL/Proxy's call handler, learnt at the first START of a plproxy function:
 * every plproxy function runs through it, so later events are told by the
 * address alone — no catalog lookup per call, and END and ABORT always agree
 * with START even when the function was dropped meanwhile.
 */
static PGFunction plproxy_handler = NULL;

static bool
is_plproxy_call(FmgrHookEventType event, FmgrInfo *flinfo)
{
	if (plproxy_handler != NULL)
		return flinfo->fn_addr == plproxy_handler;
	if (event != FHET_START || !is_plproxy(flinfo->fn_oid))
		return false;
	plproxy_handler = flinfo->fn_addr;
	return true;
}

static void
router_fmgr_hook(FmgrHookEventType event, FmgrInfo *flinfo, Datum *private)
{
	if (prev_fmgr_hook)
		prev_fmgr_hook(event, flinfo, private);
	/* here for another hook's sake (SECURITY DEFINER, SET), or not timed */
	if (event == FHET_START ? cl_router_call_timeout <= 0 && call_depth == 0 : call_depth == 0)
		return;
	if (!is_plproxy_call(event, flinfo))
		return;

	switch (event)
	{
		case FHET_START:
			if (call_depth++ == 0 && cl_router_call_timeout > 0)
			{
				call_deadline = TimestampTzPlusMilliseconds(GetCurrentTimestamp(),
															cl_router_call_timeout);
				enable_timeout_at(LOCK_TIMEOUT, call_deadline);
			}
			break;
		case FHET_END:
		case FHET_ABORT:
			if (--call_depth > 0 || call_deadline == 0)
				break;
			disable_timeout(LOCK_TIMEOUT, false);
			/* the lock timeout error the timer caused: raised as class 08 */
			if (event == FHET_ABORT && geterrcode() == ERRCODE_LOCK_NOT_AVAILABLE &&
				GetCurrentTimestamp() >= call_deadline)
			{
				int			timeout = cl_router_call_timeout;

				call_deadline = 0;
				FlushErrorState();
				ereport(ERROR,
						(errcode(ERRCODE_CONNECTION_FAILURE),
						 errmsg("no answer from the shard within coupon_lock.router_call_timeout (%d ms)",
								timeout)));
			}
			call_deadline = 0;
			break;
	}
}

/* _PG_init */
void
cl_router_timeout_init(void)
{
	prev_needs_fmgr_hook = needs_fmgr_hook;
	needs_fmgr_hook = router_needs_hook;
	prev_fmgr_hook = fmgr_hook;
	fmgr_hook = router_fmgr_hook;
}
