/*-------------------------------------------------------------------------
 *
 * sweeper.c
 *	  The sweeper: a background worker that runs release_expired_freezes
 *	  and expire_coupons in every database of coupon_lock.sweep_databases,
 *	  so that lapsed freezes go back without a scheduler, also on a standby
 *	  that has just been promoted.
 *
 * Shape.  With coupon_lock in shared_preload_libraries and the list not
 * empty, _PG_init registers one launcher.  Every sweep_interval the
 * launcher, when the server is not in recovery, starts one short-lived
 * worker per listed database, one after the other, and waits for each to
 * end.  A worker connects to its database, runs one round and exits.  So
 *
 *	- nothing stays connected to a database between rounds: DROP DATABASE
 *	  is never refused because of the sweeper, and a dropped or not yet
 *	  created database is logged once and skipped (the launcher, connected
 *	  to no database, scans the shared catalog pg_database first), never a
 *	  crash loop;
 *	- a database without the extension is logged once per change and
 *	  skipped until CREATE EXTENSION;
 *	- on a standby the launcher only waits; it checks RecoveryInProgress()
 *	  at every tick, so the first round after a promotion starts within one
 *	  interval, without a restart.  A worker that finds its transactions
 *	  read-only (default_transaction_read_only, which pg_auto_failover sets
 *	  on a node that may not write yet) ends its round without sweeping.
 *
 * A round calls release_expired_freezes(sweep_max_rows) until a call
 * returns fewer than sweep_max_rows, then expire_coupons the same way,
 * each call through SQL in a transaction of its own: memory and row locks
 * are bounded by one call of sweep_max_rows rows, and the releases are
 * ledger rows like any other (op release / expire).  A round that fails
 * is counted (errors), its error logged, and the next round starts at the
 * next tick.
 *
 * A listed database with coupon_lock_router instead (docs/scaling.md) gets
 * a round of one router_reconcile() call, every reconcile_interval: stock
 * stranded by a failure in the middle of a move comes back within that
 * interval once its shards answer, with no scheduler.  The launcher keeps
 * a due time per database (the interval of the kind of round it last
 * ran), so the two intervals do not hold each other up.
 *
 * Concurrency rules.  The counters of each database live in shared memory
 * (one slot per listed database, set up by the postmaster); the worker of
 * a slot is the only writer (atomics), coupon_lock.sweeper_stats reads
 * them without a lock, so a reading is not a snapshot of one instant.
 * Only one worker per database runs at a time (the launcher waits for
 * it); several servers sweeping one database, or a sweep by hand at the
 * same time, are safe because the sweeps are (FOR UPDATE SKIP LOCKED).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/heapam.h"
#include "access/htup_details.h"
#include "access/table.h"
#include "access/tableam.h"
#include "access/xact.h"
#include "access/xlog.h"
#include "catalog/pg_database.h"
#include "catalog/pg_type.h"
#include "commands/extension.h"
#include "executor/spi.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "port/atomics.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "storage/lwlock.h"
#include "storage/shmem.h"
#include "tcop/tcopprot.h"
#include "utils/builtins.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"
#include "utils/varlena.h"

#include "coupon_lock.h"
#include "guc.h"
#include "spi_plans.h"

PG_FUNCTION_INFO_V1(coupon_lock_sweeper_stats);

PGDLLEXPORT void coupon_lock_sweeper_main(Datum arg);
PGDLLEXPORT void coupon_lock_sweeper_round(Datum arg);

#define SWEEP_MAX_DATABASES 32
#define SWEEPER_TYPE "coupon_lock sweeper"

typedef enum SweepState
{
	SWEEP_WAITING,				/* no round yet (or the server is a standby) */
	SWEEP_OK,					/* the last round ran */
	SWEEP_NO_DATABASE,			/* the database does not exist */
	SWEEP_NO_EXTENSION,			/* coupon_lock is not installed there */
	SWEEP_READ_ONLY,			/* default_transaction_read_only is on */
	SWEEP_FAILED				/* the last round raised an error */
} SweepState;

static const char *const state_names[] = {
	[SWEEP_WAITING] = "waiting",
	[SWEEP_OK] = "ok",
	[SWEEP_NO_DATABASE] = "no database",
	[SWEEP_NO_EXTENSION] = "no extension",
	[SWEEP_READ_ONLY] = "read-only",
	[SWEEP_FAILED] = "failed",
};

typedef struct SweepSlot
{
	char		dbname[NAMEDATALEN];
	pg_atomic_uint32 state;
	pg_atomic_uint64 rounds;
	pg_atomic_uint64 released;
	pg_atomic_uint64 expired;
	pg_atomic_uint64 errors;
	pg_atomic_uint64 last_run;	/* TimestampTz of the last finished round, 0: none */
	pg_atomic_uint32 router;	/* the last round found coupon_lock_router */
} SweepSlot;

typedef struct SweepShared
{
	int			ndatabases;
	SweepSlot	slots[SWEEP_MAX_DATABASES];
} SweepShared;

/* NULL unless coupon_lock is preloaded. */
static SweepShared *sweep_shared = NULL;

static shmem_request_hook_type prev_shmem_request_hook = NULL;
static shmem_startup_hook_type prev_shmem_startup_hook = NULL;

/*
 * The listed database names (sweep_databases, split), at most
 * SWEEP_MAX_DATABASES; returns how many.
 */
static int
listed_databases(char names[][NAMEDATALEN])
{
	char	   *raw = pstrdup(cl_sweep_databases ? cl_sweep_databases : "");
	List	   *list = NIL;
	ListCell   *lc;
	int			n = 0;

	if (!SplitIdentifierString(raw, ',', &list))
		ereport(WARNING,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("coupon_lock.sweep_databases is not a valid list of database names"),
				 errhint("Separate the names with commas; double-quote names with commas or spaces.")));
	foreach(lc, list)
	{
		if (n == SWEEP_MAX_DATABASES)
		{
			ereport(WARNING,
					(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
					 errmsg("the sweeper sweeps at most %d databases", SWEEP_MAX_DATABASES),
					 errdetail("The databases after \"%s\" in coupon_lock.sweep_databases are not swept.",
							   names[n - 1])));
			break;
		}
		strlcpy(names[n++], (char *) lfirst(lc), NAMEDATALEN);
	}
	return n;
}

static void
sweeper_shmem_request(void)
{
	if (prev_shmem_request_hook)
		prev_shmem_request_hook();
	RequestAddinShmemSpace(MAXALIGN(sizeof(SweepShared)));
}

static void
sweeper_shmem_startup(void)
{
	bool		found;

	if (prev_shmem_startup_hook)
		prev_shmem_startup_hook();

	LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
	sweep_shared = ShmemInitStruct("coupon_lock sweeper", sizeof(SweepShared), &found);
	if (!found)
	{
		char		names[SWEEP_MAX_DATABASES][NAMEDATALEN];

		memset(sweep_shared, 0, sizeof(SweepShared));
		sweep_shared->ndatabases = listed_databases(names);
		for (int i = 0; i < SWEEP_MAX_DATABASES; i++)
		{
			SweepSlot  *s = &sweep_shared->slots[i];

			if (i < sweep_shared->ndatabases)
				strlcpy(s->dbname, names[i], NAMEDATALEN);
			pg_atomic_init_u32(&s->state, SWEEP_WAITING);
			pg_atomic_init_u64(&s->rounds, 0);
			pg_atomic_init_u64(&s->released, 0);
			pg_atomic_init_u64(&s->expired, 0);
			pg_atomic_init_u64(&s->errors, 0);
			pg_atomic_init_u64(&s->last_run, 0);
			pg_atomic_init_u32(&s->router, 0);
		}
	}
	LWLockRelease(AddinShmemInitLock);
}

static void
fill_worker(BackgroundWorker *w, const char *function, const char *name)
{
	memset(w, 0, sizeof(*w));
	w->bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
	strlcpy(w->bgw_library_name, "coupon_lock", BGW_MAXLEN);
	strlcpy(w->bgw_function_name, function, BGW_MAXLEN);
	strlcpy(w->bgw_name, name, BGW_MAXLEN);
	strlcpy(w->bgw_type, SWEEPER_TYPE, BGW_MAXLEN);
}

/* _PG_init: the shared counters and, when databases are listed, the launcher. */
void
cl_sweeper_init(void)
{
	char		names[SWEEP_MAX_DATABASES][NAMEDATALEN];
	BackgroundWorker w;

	if (!process_shared_preload_libraries_in_progress)
		return;
	prev_shmem_request_hook = shmem_request_hook;
	shmem_request_hook = sweeper_shmem_request;
	prev_shmem_startup_hook = shmem_startup_hook;
	shmem_startup_hook = sweeper_shmem_startup;

	if (listed_databases(names) == 0)
		return;
	fill_worker(&w, "coupon_lock_sweeper_main", "coupon_lock sweeper launcher");
	/* it waits on standbys too, to sweep as soon as one is promoted */
	w.bgw_start_time = BgWorkerStart_ConsistentState;
	w.bgw_restart_time = 10;
	RegisterBackgroundWorker(&w);
}

/* ---- the launcher ---- */

/*
 * The database's OID, InvalidOid when there is none: a plain scan of the
 * shared catalog pg_database (as autovacuum's launcher does), which needs no
 * connection to a database.
 */
static Oid
database_oid(const char *dbname)
{
	Relation	rel;
	TableScanDesc scan;
	HeapTuple	tup;
	Oid			dboid = InvalidOid;

	StartTransactionCommand();
	rel = table_open(DatabaseRelationId, AccessShareLock);
	scan = table_beginscan_catalog(rel, 0, NULL);
	while ((tup = heap_getnext(scan, ForwardScanDirection)) != NULL)
	{
		Form_pg_database db = (Form_pg_database) GETSTRUCT(tup);

		if (strcmp(NameStr(db->datname), dbname) == 0)
		{
			dboid = db->oid;
			break;
		}
	}
	table_endscan(scan);
	table_close(rel, AccessShareLock);
	CommitTransactionCommand();
	return dboid;
}

/* Starts the round of slot i and waits until it has ended. */
static void
run_round(int i)
{
	SweepSlot  *s = &sweep_shared->slots[i];
	BackgroundWorker w;
	BackgroundWorkerHandle *handle;
	Oid			dboid;
	char		name[BGW_MAXLEN];

	dboid = database_oid(s->dbname);
	if (!OidIsValid(dboid))
	{
		if (pg_atomic_exchange_u32(&s->state, SWEEP_NO_DATABASE) != SWEEP_NO_DATABASE)
			ereport(LOG,
					(errmsg("coupon_lock sweeper: database \"%s\" does not exist, skipping it until it does",
							s->dbname)));
		return;
	}

	snprintf(name, sizeof(name), "coupon_lock sweeper for database \"%s\"", s->dbname);
	fill_worker(&w, "coupon_lock_sweeper_round", name);
	w.bgw_start_time = BgWorkerStart_RecoveryFinished;
	w.bgw_restart_time = BGW_NEVER_RESTART;
	w.bgw_main_arg = Int32GetDatum(i);
	memcpy(w.bgw_extra, &dboid, sizeof(dboid));
	w.bgw_notify_pid = MyProcPid;

	if (!RegisterDynamicBackgroundWorker(&w, &handle))
	{
		pg_atomic_fetch_add_u64(&s->errors, 1);
		ereport(LOG,
				(errmsg("coupon_lock sweeper: could not start a worker for database \"%s\"", s->dbname),
				 errhint("Raise max_worker_processes.")));
		return;
	}
	if (WaitForBackgroundWorkerShutdown(handle) == BGWH_POSTMASTER_DIED)
		proc_exit(1);
	pfree(handle);
}

void
coupon_lock_sweeper_main(Datum arg pg_attribute_unused())
{
	/* when each listed database's next round is due: at once, at first */
	TimestampTz due[SWEEP_MAX_DATABASES] = {0};

	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	pqsignal(SIGTERM, die);
	BackgroundWorkerUnblockSignals();
	/* shared catalogs only: the launcher reads pg_database */
	BackgroundWorkerInitializeConnection(NULL, NULL, 0);

	for (;;)
	{
		long		wait = cl_sweep_interval;

		CHECK_FOR_INTERRUPTS();
		if (ConfigReloadPending)
		{
			ConfigReloadPending = false;
			ProcessConfigFile(PGC_SIGHUP);
		}
		if (!RecoveryInProgress())
			for (int i = 0; i < sweep_shared->ndatabases; i++)
			{
				SweepSlot  *s = &sweep_shared->slots[i];
				long		left;

				if (GetCurrentTimestamp() >= due[i])
				{
					run_round(i);
					due[i] = TimestampTzPlusMilliseconds(GetCurrentTimestamp(),
														 pg_atomic_read_u32(&s->router) ?
														 cl_reconcile_interval : cl_sweep_interval);
				}
				left = TimestampDifferenceMilliseconds(GetCurrentTimestamp(), due[i]);
				wait = Min(wait, Max(left, 1));
			}
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 wait, PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
	}
}

/* ---- one round in one database ---- */

/* The two sweeps, through SQL like any caller's ($1 = max_rows). */
static SpiPlan release_plan = {
	"SELECT coupon_lock.release_expired_freezes($1)", 1, {INT4OID}, NULL
};
static SpiPlan expire_plan = {
	"SELECT coupon_lock.expire_coupons($1)", 1, {INT4OID}, NULL
};
/* In a router database: every transfer in flight delivered, old holds settled. */
static SpiPlan reconcile_plan = {
	"SELECT transfers_delivered FROM coupon_lock.router_reconcile()", 0, {InvalidOid}, NULL
};

/* Runs one call (a sweep, or router_reconcile) in a transaction of its own; returns its integer. */
static int32
sweep_call(SpiPlan *plan, int32 max_rows)
{
	Datum		values[1] = {Int32GetDatum(max_rows)};
	bool		isnull = true;
	int32		n = 0;

	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	SPI_connect();
	PushActiveSnapshot(GetTransactionSnapshot());
	pgstat_report_activity(STATE_RUNNING, plan->sql);
	if (spi_run(plan, values, NULL, 1) == 1)
		n = DatumGetInt32(spi_datum(0, 1, &isnull));
	SPI_finish();
	PopActiveSnapshot();
	CommitTransactionCommand();
	pgstat_report_activity(STATE_IDLE, NULL);
	return isnull ? 0 : n;
}

/* Calls the sweep until a call finds fewer than max_rows; adds to *counter. */
static void
sweep_all(SpiPlan *plan, pg_atomic_uint64 *counter)
{
	int32		max_rows = cl_sweep_max_rows;
	int32		n;

	do
	{
		CHECK_FOR_INTERRUPTS();
		n = sweep_call(plan, max_rows);
		pg_atomic_fetch_add_u64(counter, (uint64) Max(n, 0));
	} while (n >= max_rows);
}

void
coupon_lock_sweeper_round(Datum arg)
{
	SweepSlot  *s = &sweep_shared->slots[DatumGetInt32(arg)];
	Oid			dboid;
	bool		installed;
	bool		router;
	bool		read_only;

	memcpy(&dboid, MyBgworkerEntry->bgw_extra, sizeof(dboid));
	pqsignal(SIGTERM, die);
	BackgroundWorkerUnblockSignals();
	BackgroundWorkerInitializeConnectionByOid(dboid, InvalidOid, 0);

	StartTransactionCommand();
	installed = OidIsValid(get_extension_oid("coupon_lock", true));
	router = OidIsValid(get_extension_oid("coupon_lock_router", true));
	read_only = XactReadOnly;
	CommitTransactionCommand();
	/* e.g. pg_auto_failover keeps a node read-only until it may write */
	if (read_only)
	{
		pg_atomic_write_u32(&s->state, SWEEP_READ_ONLY);
		proc_exit(0);
	}
	pg_atomic_write_u32(&s->router, router);
	if (!installed && !router)
	{
		if (pg_atomic_exchange_u32(&s->state, SWEEP_NO_EXTENSION) != SWEEP_NO_EXTENSION)
			ereport(LOG,
					(errmsg("coupon_lock sweeper: neither coupon_lock nor coupon_lock_router is installed in database \"%s\", skipping it until one is",
							s->dbname)));
		proc_exit(0);
	}

	PG_TRY();
	{
		if (installed)
		{
			sweep_all(&release_plan, &s->released);
			sweep_all(&expire_plan, &s->expired);
		}
		else
			(void) sweep_call(&reconcile_plan, 0);
	}
	PG_CATCH();
	{
		/* the error is logged as the worker exits */
		pg_atomic_fetch_add_u64(&s->errors, 1);
		pg_atomic_write_u32(&s->state, SWEEP_FAILED);
		PG_RE_THROW();
	}
	PG_END_TRY();

	pg_atomic_fetch_add_u64(&s->rounds, 1);
	pg_atomic_write_u64(&s->last_run, (uint64) GetCurrentTimestamp());
	pg_atomic_write_u32(&s->state, SWEEP_OK);
	proc_exit(0);
}

/* ---- sweeper_stats ---- */

/*
 * sweeper_stats(): one row per listed database; no rows when coupon_lock
 * is not preloaded (there is no sweeper then).
 */
Datum
coupon_lock_sweeper_stats(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;

	InitMaterializedSRF(fcinfo, 0);
	if (sweep_shared == NULL)
		return (Datum) 0;
	for (int i = 0; i < sweep_shared->ndatabases; i++)
	{
		SweepSlot  *s = &sweep_shared->slots[i];
		Datum		values[7];
		bool		nulls[7] = {0};
		uint64		last = pg_atomic_read_u64(&s->last_run);
		uint32		state = pg_atomic_read_u32(&s->state);

		values[0] = CStringGetTextDatum(s->dbname);
		values[1] = CStringGetTextDatum(RecoveryInProgress() ? "standby" : state_names[state]);
		values[2] = Int64GetDatum((int64) pg_atomic_read_u64(&s->rounds));
		values[3] = Int64GetDatum((int64) pg_atomic_read_u64(&s->released));
		values[4] = Int64GetDatum((int64) pg_atomic_read_u64(&s->expired));
		values[5] = Int64GetDatum((int64) pg_atomic_read_u64(&s->errors));
		values[6] = TimestampTzGetDatum((TimestampTz) last);
		nulls[6] = (last == 0);
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	return (Datum) 0;
}
