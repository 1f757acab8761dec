/*-------------------------------------------------------------------------
 *
 * sweep.c
 *	  release_expired_freezes and expire_coupons: batched sweeps.
 *
 * A sweep picks at most max_rows candidates with FOR UPDATE SKIP LOCKED,
 * so several sessions can sweep at once without waiting on each other or
 * on a coupon a client is working on, then runs each through the state
 * machine (coupon.c) like any other transition: same CAS, same ledger row.
 * Row locks live in the rows themselves, so a large max_rows takes no
 * lock-table entries.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "executor/spi.h"

#include "coupon.h"
#include "coupon_lock.h"
#include "spi_plans.h"

PG_FUNCTION_INFO_V1(coupon_lock_release_expired_freezes);
PG_FUNCTION_INFO_V1(coupon_lock_expire_coupons);

static SpiPlan lapsed_plan = {
	"SELECT coupon_id FROM coupon_lock.coupon"
	" WHERE state = 'frozen' AND frozen_until < pg_catalog.now()"
	" ORDER BY frozen_until LIMIT $1"
	"   FOR UPDATE SKIP LOCKED",
	1, {INT4OID}, NULL
};

static SpiPlan expired_issued_plan = {
	"SELECT c.coupon_id FROM coupon_lock.batch b"
	"  JOIN coupon_lock.coupon c ON c.batch_id = b.batch_id AND c.state = 'issued'"
	" WHERE b.valid_until < pg_catalog.now()"
	" LIMIT $1"
	"   FOR UPDATE OF c SKIP LOCKED",
	1, {INT4OID}, NULL
};

static SpiPlan expired_available_plan = {
	"SELECT c.coupon_id FROM coupon_lock.batch b"
	"  JOIN coupon_lock.coupon c ON c.batch_id = b.batch_id AND c.state = 'available'"
	" WHERE b.valid_until < pg_catalog.now()"
	" LIMIT $1"
	"   FOR UPDATE OF c SKIP LOCKED",
	1, {INT4OID}, NULL
};

/* Picks up to max_rows candidates with `plan` and runs `op` on each. */
static int32
sweep(SpiPlan *plan, CouponOp op, int32 max_rows)
{
	Datum		values[1] = {Int32GetDatum(max_rows)};
	uint64		n = spi_run(plan, values, NULL, max_rows);
	int64	   *ids = palloc(sizeof(int64) * (n + 1));
	int32		done = 0;

	/* copy the ids out: every transition below replaces SPI_tuptable */
	for (uint64 i = 0; i < n; i++)
		ids[i] = spi_int64(i, 1);

	for (uint64 i = 0; i < n; i++)
	{
		CouponCall	call = {.op = op, .coupon_id = ids[i]};
		bool		changed;

		coupon_transition(&call, &changed);
		if (changed)
			done++;
	}
	pfree(ids);
	return done;
}

Datum
coupon_lock_release_expired_freezes(PG_FUNCTION_ARGS)
{
	int32		max_rows = cl_arg_max_rows(fcinfo, 0);
	int32		done;

	SPI_connect();
	done = sweep(&lapsed_plan, OP_RELEASE, max_rows);
	SPI_finish();
	PG_RETURN_INT32(done);
}

Datum
coupon_lock_expire_coupons(PG_FUNCTION_ARGS)
{
	int32		max_rows = cl_arg_max_rows(fcinfo, 0);
	int32		done;

	SPI_connect();
	done = sweep(&expired_issued_plan, OP_EXPIRE, max_rows);
	if (done < max_rows)
		done += sweep(&expired_available_plan, OP_EXPIRE, max_rows - done);
	SPI_finish();
	PG_RETURN_INT32(done);
}
