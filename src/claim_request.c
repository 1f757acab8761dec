/*-------------------------------------------------------------------------
 *
 * claim_request.c
 *	  Retry-safe claims: coupon_claim(batch_id, owner_id, request_id).
 *
 * A client that lost the reply to a claim cannot tell whether it was
 * committed; calling coupon_claim again would hand out a second coupon.
 * With a request_id the first call records its answer in
 * coupon_lock.claim_request, keyed (batch_id, owner_id, request_id), in the
 * same transaction as the claim, and every later call with the same key
 * returns that answer -- the coupon, or NULL when the batch was sold out --
 * and changes nothing, whatever happened to the coupon or the batch since.
 *
 * Concurrency rules.  The key's unique index is what serialises two calls
 * with the same key: the first call inserts the key (coupon_id still NULL)
 * BEFORE it claims, so a second call racing it blocks in its own INSERT ...
 * ON CONFLICT DO NOTHING until the first transaction ends.  If the first
 * committed, the second inserts nothing and reads the recorded answer; if
 * it rolled back, the second inserts the key and claims itself.  Under
 * REPEATABLE READ or SERIALIZABLE a key committed after the second call's
 * snapshot makes that INSERT fail with 40001 (retry the transaction: the
 * retry finds the answer).  Lock order for every claim with a request id:
 * the key, then the owner's quota row, then the coupon; claims without one
 * take the last two in the same order, so no cycle can form.
 *
 * A repeated call is one index lookup and writes nothing.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "utils/builtins.h"

#include "claim_request.h"
#include "coupon_lock.h"
#include "spi_plans.h"

static SpiPlan find_plan = {
	"SELECT coupon_id FROM coupon_lock.claim_request"
	" WHERE batch_id = $1 AND owner_id = $2 AND request_id = $3",
	3, {INT8OID, TEXTOID, TEXTOID}, NULL
};

static SpiPlan take_key_plan = {
	"INSERT INTO coupon_lock.claim_request (batch_id, owner_id, request_id)"
	" VALUES ($1, $2, $3)"
	" ON CONFLICT (batch_id, owner_id, request_id) DO NOTHING",
	3, {INT8OID, TEXTOID, TEXTOID}, NULL
};

static SpiPlan record_plan = {
	"UPDATE coupon_lock.claim_request SET coupon_id = $4"
	" WHERE batch_id = $1 AND owner_id = $2 AND request_id = $3",
	4, {INT8OID, TEXTOID, TEXTOID, INT8OID}, NULL
};

char *
cl_claim_request_arg(FunctionCallInfo fcinfo, int argno)
{
	if (PG_NARGS() <= argno || PG_ARGISNULL(argno))
		return NULL;
	return cl_arg_id(fcinfo, argno, "request_id");
}

/* The recorded answer of the key: true when there is one (-1: sold out). */
static bool
find_answer(Datum *key, int64 *coupon_id)
{
	bool		isnull;
	Datum		d;

	if (spi_run(&find_plan, key, NULL, 1) == 0)
		return false;
	d = spi_datum(0, 1, &isnull);
	*coupon_id = isnull ? -1 : DatumGetInt64(d);
	return true;
}

int64
cl_claim_once(int64 batch_id, const char *owner_id, const char *request_id,
			  ClClaimFn claim)
{
	Datum		key[4] = {Int64GetDatum(batch_id), CStringGetTextDatum(owner_id),
	CStringGetTextDatum(request_id), 0};
	int64		coupon_id;

	/* a repeat: the common case of a retry, and no write */
	if (find_answer(key, &coupon_id))
		return coupon_id;

	/* the key first (see the header); another call may just have taken it */
	if (spi_run(&take_key_plan, key, NULL, 0) == 0)
	{
		if (!find_answer(key, &coupon_id))	/* deleted meanwhile by its owner */
			ereport(ERROR,
					(errcode(ERRCODE_T_R_SERIALIZATION_FAILURE),
					 errmsg("claim request \"%s\" changed concurrently", request_id)));
		return coupon_id;
	}

	coupon_id = claim(batch_id, owner_id);
	if (coupon_id >= 0)
	{
		key[3] = Int64GetDatum(coupon_id);
		if (spi_run(&record_plan, key, NULL, 0) != 1)
			elog(ERROR, "claim request key vanished before its answer was recorded");
	}
	return coupon_id;
}
