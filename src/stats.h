/*-------------------------------------------------------------------------
 *
 * stats.h
 *	  Counters of lock activity per kind of lock, readable from SQL
 *	  (stats.c).  Shared across backends when coupon_lock is in
 *	  shared_preload_libraries, per backend otherwise.
 *
 *-------------------------------------------------------------------------
 */
#ifndef COUPON_LOCK_STATS_H
#define COUPON_LOCK_STATS_H

typedef enum StatKind
{
	STAT_ADVISORY,
	STAT_LEASE,
	STAT_REDIS,
	STAT_NUM_KINDS
} StatKind;

typedef enum StatEvent
{
	STAT_ACQUIRED,				/* a lock or lease granted */
	STAT_WAITED,				/* an acquisition that had to wait */
	STAT_TIMED_OUT,				/* a wait that ran out (returned false/NULL) */
	STAT_DEADLOCK,				/* a wait ended by deadlock detection */
	STAT_RELEASED,				/* an explicit or end-of-transaction release */
	STAT_ERROR,					/* a failure (e.g. Redis unreachable) */
	STAT_LOST,					/* a held lock found gone before its holder let go */
	STAT_NUM_EVENTS
} StatEvent;

extern void stats_count(StatKind kind, StatEvent event);

/*
 * Between these, acquisitions and releases are a lock module's internal
 * steps (the hybrid lock's hand-over from session to transaction scope, a
 * sweep's test of the advisory lock), not a user's: they are not counted.
 * Waits, timeouts, deadlocks and errors still are.  Pair them in
 * PG_FINALLY.
 */
extern void cl_stats_internal_begin(void);
extern void cl_stats_internal_end(void);

#endif							/* COUPON_LOCK_STATS_H */
