/*-------------------------------------------------------------------------
 *
 * sweep.c
 *	  release_expired_freezes and expire_coupons: set-based sweeps in
 *	  constant memory.
 *
 * A sweep works in chunks of at most SWEEP_CHUNK coupons.  One statement
 * per chunk locks its candidates with FOR UPDATE SKIP LOCKED, updates them
 * and writes their ledger rows (op "release" or "expire"); its result is
 * one row of counts, freed before the next chunk, so a sweep of any size
 * runs in the memory of one chunk.  Row locks live in the rows themselves:
 * a large max_rows takes no lock-table entries.
 *
 * Concurrency rules.  SKIP LOCKED lets several sessions sweep at once
 * without waiting on each other or on a coupon a client is working on
 * (that coupon is left for a later run).  Under READ COMMITTED the UPDATE
 * re-checks state and version on the row version it locked, so a chunk
 * writes exactly the coupons that are still eligible, with the same CAS as
 * every other transition.  The rules are decide()'s (coupon.c) for
 * OP_RELEASE and OP_EXPIRE, restated as set-based SQL; sql/coupon_sweep.sql
 * walks them.
 *
 * Where the work comes from (the 1.1 schema; docs/performance.md):
 *	- release_expired_freezes reads coupon_lock.freeze_deadline, which every
 *	  freeze adds to.  An entry whose coupon is still frozen at the entry's
 *	  version is that freeze: the coupon is released (back to issued, or to
 *	  expired with its batch) and the entry deleted.  An entry whose coupon
 *	  has moved on (unfrozen, redeemed, revoked, frozen again) is deleted.
 *	- expire_coupons walks each ended batch's contiguous id range from
 *	  batch.expire_from and moves that cursor to the first coupon it leaves
 *	  behind not in a final state (redeemed, expired, revoked): a coupon it
 *	  could not lock, one whose guard was held, a frozen one.  Once a batch
 *	  has ended, nothing returns a coupon to available or issued, so the
 *	  cursor never has to go back.  The batch row is locked with SKIP LOCKED
 *	  too: one session walks a batch at a time, others take the next.  On a
 *	  shard (install/shard.sql) stock moves add coupons to a batch outside
 *	  its own range; each such range is a shard_coupon_range row with a
 *	  cursor of its own, walked the same way after the batches.
 *
 * The guard (guard.c).  With coupon_lock.redis_guard on, a sweep passes
 * over a coupon whose guard is held elsewhere: the chunk's candidates are
 * locked first (the same statement without its writes), each is offered to
 * guard_coupon(), and the writing statement is limited to the coupons
 * whose guard was taken ($2).  A freeze_deadline entry of a coupon passed
 * over stays for the next run.
 *
 * A database still at 1.0 (version.c) has neither freeze_deadline nor
 * expire_from, but the old partial indexes on state: there the candidates
 * come from those, through a cursor, and each runs through the state
 * machine as in 1.0, one nested SPI connection per coupon so that nothing
 * accumulates.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "utils/array.h"
#include "utils/lsyscache.h"

#include "coupon.h"
#include "coupon_lock.h"
#include "guc.h"
#include "guard.h"
#include "spi_plans.h"

PG_FUNCTION_INFO_V1(coupon_lock_release_expired_freezes);
PG_FUNCTION_INFO_V1(coupon_lock_expire_coupons);

/* Coupons per statement: large enough to amortise it, small enough to hold. */
#define SWEEP_CHUNK 5000

/* ---- release_expired_freezes (1.1) ---- */

/*
 * Due deadline entries and their coupons, oldest first; "live" when the
 * coupon is still frozen by that freeze and has lapsed.  $1: how many.
 */
#define RELEASE_DUE \
	"SELECT q.ctid AS entry, c.coupon_id, q.version, c.order_id," \
	"       c.state = 'frozen' AND c.version = q.version" \
	"         AND c.frozen_until < pg_catalog.now() AS live" \
	"  FROM coupon_lock.freeze_deadline q" \
	"  JOIN coupon_lock.coupon c ON c.coupon_id = q.coupon_id" \
	" WHERE q.frozen_until < pg_catalog.now()" \
	" ORDER BY q.frozen_until LIMIT $1" \
	"   FOR UPDATE SKIP LOCKED"

static SpiPlan release_due_plan = {
	RELEASE_DUE, 1, {INT4OID}, NULL
};

/*
 * One chunk: release the live ones ($2 NULL: all; else those whose guard
 * was taken), delete their entries and the stale ones.  Returns (entries
 * due, entries deleted, coupons released).
 */
static SpiPlan release_chunk_plan = {
	"WITH due AS (" RELEASE_DUE "),"
	" take AS (SELECT * FROM due WHERE live AND ($2::bigint[] IS NULL OR coupon_id = ANY ($2))),"
	" gone AS (DELETE FROM coupon_lock.freeze_deadline"
	"           WHERE ctid = ANY (ARRAY(SELECT entry FROM due"
	"                                    WHERE NOT live OR $2::bigint[] IS NULL OR coupon_id = ANY ($2)))"
	"          RETURNING 1),"
	" u AS (UPDATE coupon_lock.coupon c"
	"          SET state = CASE WHEN b.valid_until < pg_catalog.now() THEN 'expired'"
	"                      ELSE 'issued' END::coupon_lock.coupon_state,"
	"              order_id = NULL, frozen_until = NULL, version = c.version + 1,"
	"              updated_at = pg_catalog.now()"
	"         FROM take t, coupon_lock.batch b"
	"        WHERE c.coupon_id = t.coupon_id AND c.version = t.version AND c.state = 'frozen'"
	"          AND b.batch_id = c.batch_id"
	"       RETURNING c.coupon_id, c.version, c.owner_id, c.state, t.order_id),"
	" e AS (INSERT INTO coupon_lock.coupon_event"
	"              (coupon_id, op, from_state, to_state, version, owner_id, order_id)"
	"       SELECT coupon_id, 'release', 'frozen', state, version, owner_id, order_id FROM u"
	"       RETURNING 1)"
	" SELECT (SELECT count(*) FROM due), (SELECT count(*) FROM gone), (SELECT count(*) FROM e)",
	2, {INT4OID, INT8ARRAYOID}, NULL
};

/* ---- expire_coupons (1.1) ---- */

/*
 * The id ranges expire_coupons walks come from two sources: each batch's
 * own range, and (on a shard) the ranges stock moves brought in.  A
 * source's `next` statement returns its next range of an ended batch from
 * key $1 on that is not walked to its end, as (key, batch_id, cursor, end);
 * its `cursor` statement moves the cursor of range $4 of batch $1 (below).
 */
typedef struct ExpireSource
{
	SpiPlan    *next;
	SpiPlan    *cursor;
} ExpireSource;

/* The next ended batch from batch_id $1 on that is not walked to its end. */
static SpiPlan expiring_batch_plan = {
	"SELECT batch_id, batch_id, COALESCE(expire_from, first_coupon_id), first_coupon_id + quantity"
	"  FROM coupon_lock.batch"
	" WHERE batch_id >= $1 AND valid_until < pg_catalog.now()"
	"   AND valid_until IS NOT NULL"
	"   AND COALESCE(expire_from, first_coupon_id) < first_coupon_id + quantity"
	" ORDER BY batch_id LIMIT 1"
	"   FOR NO KEY UPDATE SKIP LOCKED",
	1, {INT8OID}, NULL
};

/* The same for the ranges of coupons received by stock moves, by first id. */
static SpiPlan expiring_range_plan = {
	"SELECT r.first_coupon_id, r.batch_id, COALESCE(r.expire_from, r.first_coupon_id),"
	"       r.first_coupon_id + r.quantity"
	"  FROM coupon_lock.shard_coupon_range r"
	"  JOIN coupon_lock.batch b ON b.batch_id = r.batch_id"
	" WHERE r.first_coupon_id >= $1 AND b.valid_until < pg_catalog.now()"
	"   AND COALESCE(r.expire_from, r.first_coupon_id) < r.first_coupon_id + r.quantity"
	" ORDER BY r.first_coupon_id LIMIT 1"
	"   FOR NO KEY UPDATE OF r SKIP LOCKED",
	1, {INT8OID}, NULL
};

/* Available and issued coupons of batch $1 in [$2, $3), lowest first, $4 of them. */
#define EXPIRE_CANDIDATES \
	"SELECT coupon_id, version, state FROM coupon_lock.coupon" \
	" WHERE coupon_id >= $2 AND coupon_id < $3 AND batch_id = $1" \
	"   AND state IN ('available', 'issued')" \
	" ORDER BY coupon_id LIMIT $4" \
	"   FOR UPDATE SKIP LOCKED"

static SpiPlan expire_candidates_plan = {
	EXPIRE_CANDIDATES, 4, {INT8OID, INT8OID, INT8OID, INT4OID}, NULL
};

/* One chunk; returns (candidates, highest candidate id, coupons expired). */
static SpiPlan expire_chunk_plan = {
	"WITH cand AS (" EXPIRE_CANDIDATES "),"
	" take AS (SELECT * FROM cand WHERE $5::bigint[] IS NULL OR coupon_id = ANY ($5)),"
	" u AS (UPDATE coupon_lock.coupon c"
	"          SET state = 'expired', version = c.version + 1, updated_at = pg_catalog.now()"
	"         FROM take t"
	"        WHERE c.coupon_id = t.coupon_id AND c.version = t.version AND c.state = t.state"
	"       RETURNING c.coupon_id, c.version, c.owner_id, t.state AS from_state),"
	" e AS (INSERT INTO coupon_lock.coupon_event"
	"              (coupon_id, op, from_state, to_state, version, owner_id, order_id)"
	"       SELECT coupon_id, 'expire', from_state, 'expired', version, owner_id, NULL FROM u"
	"       RETURNING 1)"
	" SELECT (SELECT count(*) FROM cand), (SELECT max(coupon_id) FROM cand), (SELECT count(*) FROM e)",
	5, {INT8OID, INT8OID, INT8OID, INT4OID, INT8ARRAYOID}, NULL
};

/*
 * The cursor of range $4 of batch $1 after a chunk that looked at [$2, $3]:
 * the first coupon there not in a final state (it sees this chunk's
 * writes), else $3 + 1.
 */
#define EXPIRE_CURSOR \
	" SET expire_from = COALESCE(" \
	"  (SELECT min(coupon_id) FROM coupon_lock.coupon" \
	"    WHERE coupon_id >= $2 AND coupon_id <= $3 AND batch_id = $1" \
	"      AND state NOT IN ('redeemed', 'expired', 'revoked')), $3 + 1)"

static SpiPlan expire_cursor_plan = {
	"UPDATE coupon_lock.batch" EXPIRE_CURSOR " WHERE batch_id = $4",
	4, {INT8OID, INT8OID, INT8OID, INT8OID}, NULL
};

static SpiPlan range_cursor_plan = {
	"UPDATE coupon_lock.shard_coupon_range" EXPIRE_CURSOR " WHERE first_coupon_id = $4",
	4, {INT8OID, INT8OID, INT8OID, INT8OID}, NULL
};

static const ExpireSource expire_sources[] = {
	{&expiring_batch_plan, &expire_cursor_plan},
	{&expiring_range_plan, &range_cursor_plan},
};

/* ---- the 1.0 schema: candidates from the partial indexes on state ---- */

static SpiPlan lapsed_plan_1_0 = {
	"SELECT coupon_id FROM coupon_lock.coupon"
	" WHERE state = 'frozen' AND frozen_until < pg_catalog.now()"
	" ORDER BY frozen_until LIMIT $1"
	"   FOR UPDATE SKIP LOCKED",
	1, {INT4OID}, NULL
};

static SpiPlan expired_issued_plan_1_0 = {
	"SELECT c.coupon_id FROM coupon_lock.batch b"
	"  JOIN coupon_lock.coupon c ON c.batch_id = b.batch_id AND c.state = 'issued'"
	" WHERE b.valid_until < pg_catalog.now()"
	" LIMIT $1"
	"   FOR UPDATE OF c SKIP LOCKED",
	1, {INT4OID}, NULL
};

static SpiPlan expired_available_plan_1_0 = {
	"SELECT c.coupon_id FROM coupon_lock.batch b"
	"  JOIN coupon_lock.coupon c ON c.batch_id = b.batch_id AND c.state = 'available'"
	" WHERE b.valid_until < pg_catalog.now()"
	" LIMIT $1"
	"   FOR UPDATE OF c SKIP LOCKED",
	1, {INT4OID}, NULL
};

/* Column `col` of row `row` of the last result as an int64 (0 for NULL). */
static int64
result_int64(uint64 row, int col)
{
	bool		isnull;
	Datum		d = spi_datum(row, col, &isnull);

	return isnull ? 0 : DatumGetInt64(d);
}

/*
 * With the guard on: the coupons of the last result's column `col` (rows
 * whose column `live_col` is true, when live_col > 0) whose guard this
 * transaction could take, as a bigint[] in the caller's memory context.
 * NULL when the guard is off: the chunk then takes every candidate.
 */
static Datum
guarded_ids(int col, int live_col, CouponOp op, bool *isnull)
{
	uint64		n = SPI_processed;
	Datum	   *ids;
	int			kept = 0;
	ArrayType  *a;

	*isnull = !cl_redis_guard;
	if (*isnull)
		return (Datum) 0;
	ids = palloc(sizeof(Datum) * (n + 1));
	for (uint64 i = 0; i < n; i++)
	{
		int64		id = result_int64(i, col);

		if (live_col > 0 && !spi_bool(i, live_col))
			continue;
		if (guard_coupon(id, op))
			ids[kept++] = Int64GetDatum(id);
	}
	SPI_freetuptable(SPI_tuptable);
	a = construct_array(ids, kept, INT8OID, sizeof(int64), FLOAT8PASSBYVAL, TYPALIGN_DOUBLE);
	pfree(ids);
	return PointerGetDatum(a);
}

static int32
release_1_1(int32 max_rows)
{
	int32		done = 0;

	while (done < max_rows)
	{
		int32		limit = Min(SWEEP_CHUNK, max_rows - done);
		Datum		values[2] = {Int32GetDatum(limit), (Datum) 0};
		char		nulls[2] = " n";
		bool		isnull;
		int64		due,
					deleted;

		if (cl_redis_guard)
		{
			spi_run(&release_due_plan, values, NULL, 0);
			values[1] = guarded_ids(2, 5, OP_RELEASE, &isnull);
			nulls[1] = ' ';
		}
		spi_run(&release_chunk_plan, values, nulls, 1);
		due = result_int64(0, 1);
		deleted = result_int64(0, 2);
		done += (int32) result_int64(0, 3);
		SPI_freetuptable(SPI_tuptable);
		if (nulls[1] == ' ')
			pfree(DatumGetPointer(values[1]));
		/* nothing more is due, or what is left is held by guards */
		if (due < limit || deleted == 0)
			break;
	}
	return done;
}

/* Up to max_rows coupons of the ranges of one source; returns how many. */
static int32
expire_source(const ExpireSource *source, int32 max_rows)
{
	int32		done = 0;
	int64		from_key = PG_INT64_MIN;

	while (done < max_rows)
	{
		Datum		values[5];
		char		nulls[5] = "    n";
		int64		key,
					batch_id,
					start,
					stop,
					cands,
					last,
					expired;
		int32		limit = Min(SWEEP_CHUNK, max_rows - done);
		bool		isnull;

		values[0] = Int64GetDatum(from_key);
		if (spi_run(source->next, values, NULL, 1) == 0)
			break;
		key = result_int64(0, 1);
		batch_id = result_int64(0, 2);
		start = result_int64(0, 3);
		stop = result_int64(0, 4);
		SPI_freetuptable(SPI_tuptable);

		values[0] = Int64GetDatum(batch_id);
		values[1] = Int64GetDatum(start);
		values[2] = Int64GetDatum(stop);
		values[3] = Int32GetDatum(limit);
		if (cl_redis_guard)
		{
			spi_run(&expire_candidates_plan, values, NULL, 0);
			values[4] = guarded_ids(1, 0, OP_EXPIRE, &isnull);
			nulls[4] = ' ';
		}
		spi_run(&expire_chunk_plan, values, nulls, 1);
		cands = result_int64(0, 1);
		last = result_int64(0, 2);
		expired = result_int64(0, 3);
		SPI_freetuptable(SPI_tuptable);
		if (nulls[4] == ' ')
			pfree(DatumGetPointer(values[4]));
		done += (int32) expired;

		/* a short chunk walked to the range's end */
		values[2] = Int64GetDatum(cands < limit ? stop - 1 : last);
		values[3] = Int64GetDatum(key);
		spi_run(source->cursor, values, NULL, 0);

		/* the next range once this one is walked, or all that is left is held */
		if (cands < limit || expired == 0)
			from_key = key + 1;
	}
	return done;
}

static int32
expire_1_1(int32 max_rows)
{
	int32		done = 0;

	for (size_t i = 0; i < lengthof(expire_sources) && done < max_rows; i++)
		done += expire_source(&expire_sources[i], max_rows - done);
	return done;
}

/*
 * 1.0 schema: up to max_rows candidates of `plan` through a cursor, each
 * run through the state machine in an SPI connection of its own.
 */
static int32
sweep_rows_1_0(SpiPlan *plan, CouponOp op, int32 max_rows)
{
	Datum		values[1] = {Int32GetDatum(max_rows)};
	Portal		portal;
	int32		done = 0;
	int64	   *ids = palloc(sizeof(int64) * 1000);

	portal = SPI_cursor_open(NULL, spi_plan(plan), values, NULL, false);
	for (;;)
	{
		uint64		n;

		SPI_cursor_fetch(portal, true, 1000);
		n = SPI_processed;
		for (uint64 i = 0; i < n; i++)
			ids[i] = result_int64(i, 1);
		SPI_freetuptable(SPI_tuptable);
		if (n == 0)
			break;
		for (uint64 i = 0; i < n; i++)
		{
			CouponCall	call = {.op = op, .coupon_id = ids[i]};
			bool		changed;

			SPI_connect();
			coupon_transition(&call, &changed);
			SPI_finish();
			if (changed)
				done++;
		}
	}
	SPI_cursor_close(portal);
	pfree(ids);
	return done;
}

Datum
coupon_lock_release_expired_freezes(PG_FUNCTION_ARGS)
{
	int32		max_rows = cl_arg_max_rows(fcinfo, 0);
	int32		done;

	SPI_connect();
	if (cl_sql_version() >= CL_SQL_1_1)
		done = release_1_1(max_rows);
	else
		done = sweep_rows_1_0(&lapsed_plan_1_0, OP_RELEASE, max_rows);
	SPI_finish();
	PG_RETURN_INT32(done);
}

Datum
coupon_lock_expire_coupons(PG_FUNCTION_ARGS)
{
	int32		max_rows = cl_arg_max_rows(fcinfo, 0);
	int32		done;

	SPI_connect();
	if (cl_sql_version() >= CL_SQL_1_1)
		done = expire_1_1(max_rows);
	else
	{
		done = sweep_rows_1_0(&expired_issued_plan_1_0, OP_EXPIRE, max_rows);
		if (done < max_rows)
			done += sweep_rows_1_0(&expired_available_plan_1_0, OP_EXPIRE, max_rows - done);
	}
	SPI_finish();
	PG_RETURN_INT32(done);
}
