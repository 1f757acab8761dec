/*-------------------------------------------------------------------------
 *
 * claim.c
 *	  coupon_claim: the flash-sale path.
 *
 * A batch's coupons have contiguous ids, and each batch of at least
 * coupon_lock.claim_sequence_min_quantity coupons has a sequence of its
 * own (coupon_lock.claim_seq_<batch_id>).  A claim draws the next
 * value n and tries coupon first_coupon_id + n - 1 with one compare-and-
 * swap UPDATE (available at version 1 -> issued).  Sequence draws are not
 * transactional, so concurrent claimers never wait on one another and
 * never walk past coupons someone else took: the cost of a claim does not
 * depend on how much of the batch is gone.
 *
 * A draw can miss: the coupon was issued directly or revoked (the CAS
 * fails, draw again), or the claiming transaction rolled back after its
 * draw (the coupon stays available behind the sequence).  Once the
 * sequence has passed the batch's quantity, claims fall back to an index
 * scan over the batch's never-issued coupons (coupon_unclaimed_idx, a
 * partial index on owner_id IS NULL that claims leave, so it holds only what
 * is left) with FOR UPDATE SKIP LOCKED.  That returns the missed coupons.
 * When it finds none, the same scan runs once more without SKIP LOCKED and
 * waits for claims still in flight on the last coupons, so that NULL (sold
 * out) is only answered when none is left: a coupon whose claim rolls back
 * goes to a waiting claimer.  A smaller batch has no sequence and claims
 * through that scan alone: it steps over fewer entries than a sequence
 * (one relation per batch) costs in files, locks and pg_dump entries.
 *
 * With coupon_lock.redis_guard on, a drawn coupon whose guard is held
 * elsewhere (guard.c) is passed over like a missed draw: the claim draws
 * again, and the leftover scan steps past it.
 *
 * The per-user limit is taken first (quota.c: quota_take, which also puts
 * the owner's counter row before any coupon row), so a refused claim
 * consumes no draw; a claim that finds the batch sold out gives the
 * quota back.
 *
 * With a request_id (1.1) the entry point hands the claim to
 * claim_request.c, which runs it at most once per (batch, owner, request).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/namespace.h"
#include "catalog/pg_type.h"
#include "commands/sequence.h"
#include "executor/spi.h"
#include "utils/lsyscache.h"

#include "claim_request.h"
#include "coupon.h"
#include "coupon_lock.h"
#include "guard.h"
#include "quota.h"
#include "spi_plans.h"

PG_FUNCTION_INFO_V1(coupon_lock_coupon_claim);

static SpiPlan batch_plan = {
	"SELECT quantity, per_user_limit, valid_until < pg_catalog.now(), first_coupon_id"
	"  FROM coupon_lock.batch WHERE batch_id = $1",
	1, {INT8OID}, NULL
};

static SpiPlan leftover_plan = {
	"SELECT coupon_id, version FROM coupon_lock.coupon"
	" WHERE batch_id = $1 AND owner_id IS NULL AND state = 'available'"
	" ORDER BY coupon_id LIMIT 1 OFFSET $2"
	"   FOR UPDATE SKIP LOCKED",
	2, {INT8OID, INT8OID}, NULL
};

/*
 * The same scan without SKIP LOCKED, run only when the first found nothing
 * (issue 10 item 16): the coupons left may be held by claims still in
 * flight, whose transactions may roll back.  This scan waits for them; a
 * coupon whose claim committed is passed over (READ COMMITTED re-checks
 * owner_id IS NULL on the committed row, and the scan goes on to the
 * next), one whose claim rolled back is returned.  So NULL means that no
 * coupon is left, not that none was free at that instant.  It waits only
 * at the very end of a batch, and only as long as those transactions.
 */
static SpiPlan leftover_wait_plan = {
	"SELECT coupon_id, version FROM coupon_lock.coupon"
	" WHERE batch_id = $1 AND owner_id IS NULL AND state = 'available'"
	" ORDER BY coupon_id LIMIT 1 OFFSET $2"
	"   FOR UPDATE",
	2, {INT8OID, INT8OID}, NULL
};

/*
 * The batch's claim sequence, by name in schema coupon_lock; InvalidOid for
 * a batch created without one (below claim_sequence_min_quantity, batch.c).
 */
static Oid
claim_sequence(int64 batch_id)
{
	char		relname[NAMEDATALEN];

	snprintf(relname, sizeof(relname), "claim_seq_%lld", (long long) batch_id);
	return get_relname_relid(relname, get_namespace_oid("coupon_lock", false));
}

/* Returns the claimed coupon's id, or -1 when the batch is sold out. */
static int64
take_coupon(int64 batch_id, int32 quantity, int64 first_coupon_id, const char *owner_id)
{
	Oid			seq = claim_sequence(batch_id);
	Datum		values[2] = {Int64GetDatum(batch_id), 0};

	while (OidIsValid(seq))
	{
		int64		n = nextval_internal(seq, false);

		if (n > quantity)
			break;
		/* an available coupon is always at version 1: nothing returns to it */
		if (guard_coupon(first_coupon_id + n - 1, OP_CLAIM) &&
			coupon_apply_claim(first_coupon_id + n - 1, 1, owner_id))
			return first_coupon_id + n - 1;
	}

	/*
	 * Past the end, or a small batch without a sequence: pick up coupons
	 * whose draw was missed (or guard was held).
	 */
	for (int64 skip = 0;; skip++)
	{
		int64		coupon_id;
		int64		version;

		values[1] = Int64GetDatum(skip);
		if (spi_run(&leftover_plan, values, NULL, 1) == 0 &&
			spi_run(&leftover_wait_plan, values, NULL, 1) == 0)
			return -1;
		coupon_id = spi_int64(0, 1);
		version = spi_int64(0, 2);
		if (!guard_coupon(coupon_id, OP_CLAIM))
			continue;
		if (!coupon_apply_claim(coupon_id, version, owner_id))
			elog(ERROR, "locked coupon %lld changed while claiming it", (long long) coupon_id);
		return coupon_id;
	}
}

/*
 * One claim: the batch's checks, the per-user limit, a coupon.  Returns its
 * coupon_id, or -1 when the batch is sold out.  SPI must be connected.
 */
static int64
claim(int64 batch_id, const char *owner_id)
{
	Datum		values[1] = {Int64GetDatum(batch_id)};
	int32		quantity;
	int32		per_user_limit;
	int64		first_coupon_id;
	int64		coupon_id;
	bool		isnull;

	if (spi_run(&batch_plan, values, NULL, 1) == 0)
	{
		if (spi_found_after_snapshot(&batch_plan, values, NULL))
			ereport(ERROR,
					(errcode(ERRCODE_T_R_SERIALIZATION_FAILURE),
					 errmsg("batch %lld was created after this transaction's snapshot",
							(long long) batch_id),
					 errhint("Retry the transaction.")));
		ereport(ERROR,
				(errcode(ERRCODE_CL_UNKNOWN_BATCH),
				 errmsg("batch %lld does not exist", (long long) batch_id)));
	}
	quantity = DatumGetInt32(spi_datum(0, 1, &isnull));
	per_user_limit = DatumGetInt32(spi_datum(0, 2, &isnull));
	if (spi_bool(0, 3))
		report_batch_expired(batch_id);
	first_coupon_id = spi_int64(0, 4);

	if (!quota_take(batch_id, owner_id, per_user_limit))
		report_limit_reached(batch_id, owner_id, per_user_limit);

	coupon_id = take_coupon(batch_id, quantity, first_coupon_id, owner_id);
	if (coupon_id < 0)
		quota_give_back(batch_id, owner_id);
	return coupon_id;
}

/*
 * coupon_claim(batch_id, owner_id [, request_id]).  With a request_id the
 * claim runs at most once per key (claim_request.c); the 1.0 declaration
 * passes two arguments only.
 */
Datum
coupon_lock_coupon_claim(PG_FUNCTION_ARGS)
{
	int64		batch_id = cl_arg_int64(fcinfo, 0, "batch_id");
	char	   *owner_id = cl_arg_id(fcinfo, 1, "owner_id");
	char	   *request_id = cl_claim_request_arg(fcinfo, 2);
	int64		coupon_id;

	SPI_connect();
	if (request_id)
		coupon_id = cl_claim_once(batch_id, owner_id, request_id, claim);
	else
		coupon_id = claim(batch_id, owner_id);
	SPI_finish();

	if (coupon_id < 0)
		PG_RETURN_NULL();
	PG_RETURN_INT64(coupon_id);
}
