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
	STAT_NUM_EVENTS
} StatEvent;

extern void stats_count(StatKind kind, StatEvent event);

#endif							/* COUPON_LOCK_STATS_H */
