/*-------------------------------------------------------------------------
 *
 * quota.c
 *	  The per-user limit: how many coupons of a batch one owner holds.
 *
 * The count is a row per (batch, owner) in coupon_lock.owner_quota, taken
 * with one INSERT ... ON CONFLICT DO UPDATE ... WHERE held < limit.  It
 * counts every state but revoked: claims and issues add one, a revoke of
 * an owned coupon gives one back.
 *
 * Concurrency rules.  The counter's row lock orders every change of one
 * owner's count in one batch until the transaction ends; it is a row lock,
 * not a lock-table entry, so bulk work over many owners cannot exhaust the
 * shared lock table.  Every call that changes a count takes the counter
 * row BEFORE it locks a coupon row (quota.h): coupon_claim takes it with
 * quota_take before it draws, coupon_issue and coupon_revoke lock it with
 * cl_quota_lock_for_coupon before coupon.c locks the coupon.  With one
 * order, a claim holding the counter and waiting for a coupon can never
 * wait on an issue or revoke holding that coupon and waiting for the
 * counter (specs/coupon_quota_order.spec).  One case keeps the old order:
 * a revoke that read the coupon as available and then found it claimed
 * under the row lock gives the new owner's count back after locking the
 * coupon; the deadlock detector (40P01) covers that race.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "utils/builtins.h"

#include "coupon_lock.h"
#include "quota.h"
#include "spi_plans.h"

static SpiPlan take_plan = {
	"INSERT INTO coupon_lock.owner_quota AS q (batch_id, owner_id, held) VALUES ($1, $2, 1)"
	" ON CONFLICT (batch_id, owner_id) DO UPDATE SET held = q.held + 1 WHERE q.held < $3",
	3, {INT8OID, TEXTOID, INT4OID}, NULL
};

static SpiPlan give_back_plan = {
	"UPDATE coupon_lock.owner_quota SET held = held - 1"
	" WHERE batch_id = $1 AND owner_id = $2 AND held > 0",
	2, {INT8OID, TEXTOID}, NULL
};

/*
 * ON CONFLICT DO UPDATE locks the existing row before it evaluates its
 * WHERE, and keeps the lock when the WHERE is false: the row is locked
 * (FOR NO KEY UPDATE, the lock take_plan's update needs) without writing
 * a new row version.  The coupon is read without a lock: its batch never
 * changes, and its owner is re-read under the coupon's row lock.
 */
static SpiPlan lock_plan = {
	"INSERT INTO coupon_lock.owner_quota AS q (batch_id, owner_id, held)"
	" SELECT c.batch_id, COALESCE($2, c.owner_id), 0 FROM coupon_lock.coupon c"
	"  WHERE c.coupon_id = $1 AND COALESCE($2, c.owner_id) IS NOT NULL"
	" ON CONFLICT (batch_id, owner_id) DO UPDATE SET held = q.held WHERE false",
	2, {INT8OID, TEXTOID}, NULL
};

void
cl_quota_lock_for_coupon(int64 coupon_id, const char *owner_id)
{
	Datum		values[2] = {Int64GetDatum(coupon_id),
	owner_id ? CStringGetTextDatum(owner_id) : (Datum) 0};
	char		nulls[2] = {' ', owner_id ? ' ' : 'n'};

	spi_run(&lock_plan, values, nulls, 0);
}

bool
quota_take(int64 batch_id, const char *owner_id, int32 per_user_limit)
{
	Datum		values[3] = {Int64GetDatum(batch_id), CStringGetTextDatum(owner_id),
	Int32GetDatum(per_user_limit)};

	return spi_run(&take_plan, values, NULL, 0) == 1;
}

void
quota_give_back(int64 batch_id, const char *owner_id)
{
	Datum		values[2] = {Int64GetDatum(batch_id), CStringGetTextDatum(owner_id)};

	spi_run(&give_back_plan, values, NULL, 0);
}

void
report_limit_reached(int64 batch_id, const char *owner_id, int32 per_user_limit)
{
	ereport(ERROR,
			(errcode(ERRCODE_CL_LIMIT_REACHED),
			 errmsg("owner \"%s\" has reached the limit of batch %lld", owner_id, (long long) batch_id),
			 errdetail_plural("The batch allows %d coupon per owner, counting every state but \"revoked\".",
							  "The batch allows %d coupons per owner, counting every state but \"revoked\".",
							  per_user_limit, per_user_limit)));
}
