/*-------------------------------------------------------------------------
 *
 * coupon.h
 *	  The coupon state machine (coupon.c), used by the SQL entry points in
 *	  coupon.c, claim.c and sweep.c.
 *
 *-------------------------------------------------------------------------
 */
#ifndef COUPON_LOCK_COUPON_H
#define COUPON_LOCK_COUPON_H

#include "postgres.h"

typedef enum CouponState
{
	CS_AVAILABLE,
	CS_ISSUED,
	CS_FROZEN,
	CS_REDEEMED,
	CS_EXPIRED,
	CS_REVOKED
} CouponState;

typedef enum CouponOp
{
	OP_ISSUE,
	OP_CLAIM,
	OP_FREEZE,
	OP_UNFREEZE,
	OP_REDEEM,
	OP_REVOKE,
	OP_RELEASE,					/* a lapsed freeze swept back */
	OP_EXPIRE					/* swept because the batch expired */
} CouponOp;

/* One requested transition, as the caller asked for it. */
typedef struct CouponCall
{
	CouponOp	op;
	int64		coupon_id;
	const char *owner_id;		/* issue, freeze */
	const char *order_id;		/* freeze, unfreeze, redeem */
	bool		has_expected;
	int64		expected_version;
	bool		has_ttl;		/* freeze: false means the batch's freeze_ttl */
	Datum		ttl;
} CouponCall;

/*
 * Runs one transition with SPI connected: locks the coupon row, decides,
 * writes the row and a ledger row.  Returns the coupon's version after the
 * call.  *changed is false for an idempotent retry, and for a sweep
 * (release, expire) that found the row no longer eligible or passed over
 * a coupon whose guard is held elsewhere (then the version returned is 0).
 */
extern int64 coupon_transition(const CouponCall *call, bool *changed);

/*
 * The claim path's write: an available coupon at `version` becomes issued
 * to owner_id, with its ledger row.  Returns false (nothing written) when
 * the row is no longer available at that version.
 */
extern bool coupon_apply_claim(int64 coupon_id, int64 version, const char *owner_id);

/* CL006 for a batch past its valid_until. */
extern void report_batch_expired(int64 batch_id) pg_attribute_noreturn();

#endif							/* COUPON_LOCK_COUPON_H */
