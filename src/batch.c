/*-------------------------------------------------------------------------
 *
 * batch.c
 *	  create_batch: a batch row, its coupons and its claim sequence.
 *
 * Coupon ids of a batch are contiguous (claim.c maps claim draws onto
 * them).  A shard (shard.c) also creates a batch under the id it has on the
 * other shards, and adds coupons to a batch when stock moves in: those
 * coupons get ids of their own, past the batch's range, and claims find
 * them with claim.c's scan of leftover coupons.  The range comes from the one row of coupon_lock.id_allocator,
 * whose row lock (taken by an upsert) serialises batch creation until commit, so two batches
 * never share ids and a rolled-back creation leaves no gap.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "utils/builtins.h"
#include "utils/timestamp.h"

#include "batch.h"
#include "coupon_lock.h"
#include "guc.h"
#include "spi_plans.h"

PG_FUNCTION_INFO_V1(coupon_lock_create_batch);

static SpiPlan allocate_plan = {
	"INSERT INTO coupon_lock.id_allocator AS a (singleton, next_coupon_id) VALUES (true, 1 + $1)"
	" ON CONFLICT (singleton) DO UPDATE SET next_coupon_id = a.next_coupon_id + $1"
	" RETURNING next_coupon_id - $1",
	1, {INT8OID}, NULL
};

static SpiPlan insert_batch_plan = {
	"INSERT INTO coupon_lock.batch"
	"       (name, quantity, per_user_limit, valid_until, freeze_ttl, first_coupon_id"
	"       , batch_id)"
	" VALUES ($1, $2, $3, $4, $5, $6, COALESCE($7, pg_catalog.nextval('coupon_lock.batch_id_seq')))"
	" RETURNING batch_id",
	7, {TEXTOID, INT4OID, INT4OID, TIMESTAMPTZOID, INTERVALOID, INT8OID, INT8OID}, NULL
};

/*
 * Codes: the coupon id in hex (unique) and 8 random hex digits from
 * gen_random_uuid() (not guessable from a neighbour's code).
 */
static SpiPlan insert_coupons_plan = {
	"INSERT INTO coupon_lock.coupon (coupon_id, batch_id, code)"
	" SELECT $1 + g - 1, $2,"
	"        pg_catalog.upper(pg_catalog.to_hex($1 + g - 1)) || '-' ||"
	"        pg_catalog.upper(pg_catalog.left(pg_catalog.md5(pg_catalog.gen_random_uuid()::text), 8))"
	"   FROM pg_catalog.generate_series(1, $3) g",
	3, {INT8OID, INT8OID, INT4OID}, NULL
};

/* The next `quantity` coupon ids (the allocator's row lock is held until commit). */
static int64
allocate_ids(int32 quantity)
{
	Datum		values[1] = {Int64GetDatum((int64) quantity)};

	if (spi_run(&allocate_plan, values, NULL, 1) != 1)
		elog(ERROR, "could not allocate coupon ids");
	return spi_int64(0, 1);
}

static void
insert_coupons(int64 first_coupon_id, int64 batch_id, int32 quantity)
{
	Datum		values[3] = {Int64GetDatum(first_coupon_id), Int64GetDatum(batch_id),
	Int32GetDatum(quantity)};

	spi_run(&insert_coupons_plan, values, NULL, 0);
}

/*
 * cl_batch_add_coupons: `quantity` new available coupons of batch_id with
 * contiguous ids from the allocator; returns the first id.  SPI connected.
 */
int64
cl_batch_add_coupons(int64 batch_id, int32 quantity)
{
	int64		first_coupon_id = allocate_ids(quantity);

	insert_coupons(first_coupon_id, batch_id, quantity);
	return first_coupon_id;
}

/*
 * cl_batch_create: the batch row, its coupons and (for a batch of at least
 * claim_sequence_min_quantity) its claim sequence; the
 * arguments are checked by the caller.  batch_id 0 takes the next id of
 * batch_id_seq.  SPI connected.  Returns the batch id.
 */
int64
cl_batch_create(text *name, int32 quantity, int32 per_user_limit,
				bool has_valid_until, Datum valid_until, Datum freeze_ttl,
				int64 batch_id)
{
	Datum		values[7];
	char		nulls[7] = "       ";
	int64		first_coupon_id;
	char	   *ddl;

	/* ids first: the allocator's row lock orders concurrent creations */
	first_coupon_id = allocate_ids(quantity);

	values[0] = PointerGetDatum(name);
	values[1] = Int32GetDatum(quantity);
	values[2] = Int32GetDatum(per_user_limit);
	values[3] = has_valid_until ? valid_until : (Datum) 0;
	nulls[3] = has_valid_until ? ' ' : 'n';
	values[4] = freeze_ttl;
	values[5] = Int64GetDatum(first_coupon_id);
	values[6] = Int64GetDatum(batch_id);
	nulls[6] = batch_id != 0 ? ' ' : 'n';
	spi_run(&insert_batch_plan, values, nulls, 1);
	batch_id = spi_int64(0, 1);
	insert_coupons(first_coupon_id, batch_id, quantity);

	/*
	 * A claim sequence is a relation: one per batch would make 100,000 small
	 * batches 100,000 files, a lock-table entry each until commit, and a
	 * pg_dump entry each.  Small batches are claimed through the index of
	 * unclaimed coupons instead (claim.c), where a scan steps over at most
	 * claim_sequence_min_quantity entries.
	 */
	if (quantity < cl_claim_sequence_min_quantity)
		return batch_id;

	/* the name holds only the generated id: no caller input reaches the DDL */
	ddl = psprintf("CREATE SEQUENCE coupon_lock.claim_seq_%lld OWNED BY coupon_lock.batch.batch_id",
				   (long long) batch_id);
	if (SPI_execute(ddl, false, 0) != SPI_OK_UTILITY)
		elog(ERROR, "could not create the claim sequence of batch %lld", (long long) batch_id);
	return batch_id;
}

Datum
coupon_lock_create_batch(PG_FUNCTION_ARGS)
{
	text	   *name;
	int32		quantity = cl_arg_int32(fcinfo, 1, "quantity");
	int32		per_user_limit = cl_arg_int32(fcinfo, 2, "per_user_limit");
	Datum		freeze_ttl = cl_arg_positive_interval(fcinfo, 4, "freeze_ttl", false);
	int64		batch_id;

	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("name must not be null")));
	name = PG_GETARG_TEXT_PP(0);
	if (VARSIZE_ANY_EXHDR(name) == 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("name must not be empty")));
	if (quantity < 1 || quantity > cl_max_batch_quantity)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("quantity must be between 1 and %d", cl_max_batch_quantity),
				 errhint("The upper bound is the setting coupon_lock.max_batch_quantity.")));
	if (per_user_limit < 1)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("per_user_limit must be at least 1")));
	if (!PG_ARGISNULL(3) &&
		PG_GETARG_TIMESTAMPTZ(3) <= GetCurrentTransactionStartTimestamp())
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("valid_until must be later than now()")));

	SPI_connect();
	batch_id = cl_batch_create(name, quantity, per_user_limit, !PG_ARGISNULL(3),
							   PG_ARGISNULL(3) ? (Datum) 0 : PG_GETARG_DATUM(3),
							   freeze_ttl, 0);
	SPI_finish();
	PG_RETURN_INT64(batch_id);
}
