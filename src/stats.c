/*-------------------------------------------------------------------------
 *
 * stats.c
 *	  Counters of lock activity per kind of lock (advisory, lease, redis)
 *	  and event (acquired, waited, timed out, deadlock, released, error):
 *	  stats_count() for the modules, coupon_lock.lock_stats() and
 *	  coupon_lock.lock_stats_reset() for SQL.
 *
 * Concurrency rules.  When coupon_lock is in shared_preload_libraries the
 * counters live in one block of shared memory, requested in
 * shmem_request_hook and set up in shmem_startup_hook (both chained to
 * the hooks that were there before), and every backend adds to them with
 * lock-free atomic increments; no lock is taken to count or to read, so a
 * reading of several counters is not a snapshot of one instant.  A reset
 * sets each counter to zero one by one; increments racing with it may
 * survive or not.
 *
 * When the library is loaded on first use instead, there is no shared
 * memory to be had: each backend counts its own activity in plain
 * variables, from the moment it loaded the library, and lock_stats() says
 * so in its "scope" column ('backend' instead of 'shared').
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "port/atomics.h"
#include "storage/ipc.h"
#include "storage/lwlock.h"
#include "storage/shmem.h"
#include "utils/builtins.h"

#include "coupon_lock.h"
#include "stats.h"

PG_FUNCTION_INFO_V1(coupon_lock_lock_stats);
PG_FUNCTION_INFO_V1(coupon_lock_lock_stats_reset);

typedef struct SharedStats
{
	pg_atomic_uint64 counts[STAT_NUM_KINDS][STAT_NUM_EVENTS];
} SharedStats;

static const char *const kind_names[STAT_NUM_KINDS] = {
	[STAT_ADVISORY] = "advisory",
	[STAT_LEASE] = "lease",
	[STAT_REDIS] = "redis",
};

/* NULL unless preloaded: then local_counts is used. */
static SharedStats *shared_stats = NULL;
static uint64 local_counts[STAT_NUM_KINDS][STAT_NUM_EVENTS];

static shmem_request_hook_type prev_shmem_request_hook = NULL;
static shmem_startup_hook_type prev_shmem_startup_hook = NULL;

static void
stats_shmem_request(void)
{
	if (prev_shmem_request_hook)
		prev_shmem_request_hook();
	RequestAddinShmemSpace(MAXALIGN(sizeof(SharedStats)));
}

static void
stats_shmem_startup(void)
{
	bool		found;

	if (prev_shmem_startup_hook)
		prev_shmem_startup_hook();

	LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
	shared_stats = ShmemInitStruct("coupon_lock lock stats", sizeof(SharedStats), &found);
	if (!found)
	{
		for (int k = 0; k < STAT_NUM_KINDS; k++)
			for (int e = 0; e < STAT_NUM_EVENTS; e++)
				pg_atomic_init_u64(&shared_stats->counts[k][e], 0);
	}
	LWLockRelease(AddinShmemInitLock);
}

void
StatsInit(void)
{
	if (!process_shared_preload_libraries_in_progress)
		return;
	prev_shmem_request_hook = shmem_request_hook;
	shmem_request_hook = stats_shmem_request;
	prev_shmem_startup_hook = shmem_startup_hook;
	shmem_startup_hook = stats_shmem_startup;
}

/* Depth of cl_stats_internal_begin(): acquisitions and releases not counted. */
static int	internal_depth = 0;

void
cl_stats_internal_begin(void)
{
	internal_depth++;
}

void
cl_stats_internal_end(void)
{
	Assert(internal_depth > 0);
	internal_depth--;
}

void
stats_count(StatKind kind, StatEvent event)
{
	if (internal_depth > 0 && (event == STAT_ACQUIRED || event == STAT_RELEASED))
		return;
	if (shared_stats)
		pg_atomic_fetch_add_u64(&shared_stats->counts[kind][event], 1);
	else
		local_counts[kind][event]++;
}

static uint64
stats_read(int kind, int event)
{
	if (shared_stats)
		return pg_atomic_read_u64(&shared_stats->counts[kind][event]);
	return local_counts[kind][event];
}

/*
 * lock_stats(): one row per kind of lock, a column per event, and scope
 * 'shared' (all backends since server start or the last reset) or
 * 'backend' (this backend only).
 */
Datum
coupon_lock_lock_stats(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	const char *scope = shared_stats ? "shared" : "backend";
	bool		with_lost;

	InitMaterializedSRF(fcinfo, 0);
	/* a database still at 1.0 declares the columns without lost */
	with_lost = rsinfo->setDesc->natts == STAT_NUM_EVENTS + 2;

	for (int k = 0; k < STAT_NUM_KINDS; k++)
	{
		Datum		values[STAT_NUM_EVENTS + 2];
		bool		nulls[STAT_NUM_EVENTS + 2] = {0};
		int			col = 0;

		values[col++] = CStringGetTextDatum(kind_names[k]);
		for (int e = 0; e < STAT_NUM_EVENTS; e++)
			if (e != STAT_LOST || with_lost)
				values[col++] = Int64GetDatum((int64) stats_read(k, e));
		values[col++] = CStringGetTextDatum(scope);
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	return (Datum) 0;
}

Datum
coupon_lock_lock_stats_reset(PG_FUNCTION_ARGS)
{
	for (int k = 0; k < STAT_NUM_KINDS; k++)
		for (int e = 0; e < STAT_NUM_EVENTS; e++)
		{
			if (shared_stats)
				pg_atomic_write_u64(&shared_stats->counts[k][e], 0);
			else
				local_counts[k][e] = 0;
		}
	PG_RETURN_VOID();
}
