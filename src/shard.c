/*-------------------------------------------------------------------------
 *
 * shard.c
 *	  What a coupon_lock database needs to serve as a shard behind the
 *	  coupon_lock_router extension (router/): the C half.  The SQL half,
 *	  install/shard.sql, holds the partition setup, the stock transfers, the
 *	  per-user holds for issues across shards and the claim wrapper; docs/
 *	  scaling.md explains the whole design.
 *
 * Two things there need the extension's C internals, and live here:
 *
 *	shard_mint: stock moving in.  The coupons a transfer brings are new
 *	   rows with ids of this database's own range (the partition in the high
 *	   bits), added to the batch, or creating the batch under the id it has
 *	   on the other shards when this database has not held it yet.  Coupons
 *	   added to a batch already here lie outside its own id range: their
 *	   range is recorded in shard_coupon_range, which expire_coupons walks
 *	   too (sweep.c).
 *	shard_quota_take / shard_quota_give_back: the per-user counter of an
 *	   owner whose home partition is here, taken for a coupon issued on
 *	   another shard (the same counter and the same error as a local claim).
 *
 * Concurrency: the callers in install/shard.sql first insert the transfer
 * or hold row under its key, so two deliveries of one transfer, or two
 * holds for one coupon, are serialised by that key and the second one
 * finds the first done.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xlog.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "utils/builtins.h"

#include "batch.h"
#include "coupon.h"
#include "coupon_lock.h"
#include "quota.h"
#include "spi_plans.h"

PG_FUNCTION_INFO_V1(coupon_lock_shard_mint);
PG_FUNCTION_INFO_V1(coupon_lock_shard_quota_take);
PG_FUNCTION_INFO_V1(coupon_lock_shard_quota_give_back);

static SpiPlan batch_exists_plan = {
	"SELECT 1 FROM coupon_lock.batch WHERE batch_id = $1",
	1, {INT8OID}, NULL
};

static SpiPlan is_shard_plan = {
	"SELECT 1 FROM coupon_lock.shard",
	0, {InvalidOid}, NULL
};

static SpiPlan coupon_range_plan = {
	"INSERT INTO coupon_lock.shard_coupon_range (first_coupon_id, batch_id, quantity)"
	" VALUES ($1, $2, $3)",
	3, {INT8OID, INT8OID, INT4OID}, NULL
};

static SpiPlan batch_limit_plan = {
	"SELECT per_user_limit FROM coupon_lock.batch WHERE batch_id = $1",
	1, {INT8OID}, NULL
};

/*
 * These functions change stock and counters outside the single-node rules
 * (minting outside a transfer would make a batch larger than its quantity):
 * only a database the router has set up runs them.  SPI connected.
 */
static void
require_shard(void)
{
	/* on a hot standby: 25006 with the hint, like every writing function */
	if (RecoveryInProgress())
		cl_standby_write_error(NULL);
	if (spi_run(&is_shard_plan, NULL, NULL, 1) == 0)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("this database is not a shard"),
				 errhint("Run SELECT coupon_lock.router_init() in the router database.")));
}

/*
 * shard_mint(batch_id, quantity, name, per_user_limit, valid_until,
 * freeze_ttl): `quantity` new available coupons of the batch; the batch
 * row is created with the given id and attributes when it is not here yet.
 */
Datum
coupon_lock_shard_mint(PG_FUNCTION_ARGS)
{
	int64		batch_id = cl_arg_int64(fcinfo, 0, "batch_id");
	int32		quantity = cl_arg_int32(fcinfo, 1, "quantity");
	Datum		values[1] = {Int64GetDatum(batch_id)};

	if (quantity < 1)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("quantity must be at least 1")));

	SPI_connect();
	require_shard();
	if (spi_run(&batch_exists_plan, values, NULL, 1) == 1)
	{
		Datum		range[3];

		range[0] = Int64GetDatum(cl_batch_add_coupons(batch_id, quantity));
		range[1] = Int64GetDatum(batch_id);
		range[2] = Int32GetDatum(quantity);
		spi_run(&coupon_range_plan, range, NULL, 0);
	}
	else
	{
		char	   *name = cl_arg_id(fcinfo, 2, "name");
		int32		per_user_limit = cl_arg_int32(fcinfo, 3, "per_user_limit");
		Datum		freeze_ttl = cl_arg_positive_interval(fcinfo, 5, "freeze_ttl", false);

		cl_batch_create(cstring_to_text(name), quantity, per_user_limit,
						!PG_ARGISNULL(4), PG_ARGISNULL(4) ? (Datum) 0 : PG_GETARG_DATUM(4),
						freeze_ttl, batch_id);
	}
	SPI_finish();
	PG_RETURN_VOID();
}

/* The batch's per-user limit; unknown batch -> CL002 as everywhere else. */
static int32
batch_limit(int64 batch_id)
{
	Datum		values[1] = {Int64GetDatum(batch_id)};
	bool		isnull;

	if (spi_run(&batch_limit_plan, values, NULL, 1) == 0)
		ereport(ERROR,
				(errcode(ERRCODE_CL_UNKNOWN_BATCH),
				 errmsg("batch %lld does not exist", (long long) batch_id)));
	return DatumGetInt32(spi_datum(0, 1, &isnull));
}

/*
 * shard_quota_take(batch_id, owner_id): counts one more coupon of the batch
 * for the owner, or raises the per-user limit's error.
 */
Datum
coupon_lock_shard_quota_take(PG_FUNCTION_ARGS)
{
	int64		batch_id = cl_arg_int64(fcinfo, 0, "batch_id");
	char	   *owner_id = cl_arg_id(fcinfo, 1, "owner_id");
	int32		limit;

	SPI_connect();
	require_shard();
	limit = batch_limit(batch_id);
	if (!quota_take(batch_id, owner_id, limit))
		report_limit_reached(batch_id, owner_id, limit);
	SPI_finish();
	PG_RETURN_VOID();
}

/* shard_quota_give_back(batch_id, owner_id): one coupon fewer counted. */
Datum
coupon_lock_shard_quota_give_back(PG_FUNCTION_ARGS)
{
	int64		batch_id = cl_arg_int64(fcinfo, 0, "batch_id");
	char	   *owner_id = cl_arg_id(fcinfo, 1, "owner_id");

	SPI_connect();
	require_shard();
	quota_give_back(batch_id, owner_id);
	SPI_finish();
	PG_RETURN_VOID();
}
