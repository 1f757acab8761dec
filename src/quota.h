/*-------------------------------------------------------------------------
 *
 * quota.h
 *	  The per-user limit of a batch: one counter row per (batch, owner) in
 *	  coupon_lock.owner_quota (quota.c), used by coupon.c and claim.c.
 *
 *-------------------------------------------------------------------------
 */
#ifndef COUPON_LOCK_QUOTA_H
#define COUPON_LOCK_QUOTA_H

#include "postgres.h"

/*
 * Lock order: a call that changes an owner's counter takes the counter's
 * row before it locks any coupon row.  coupon_claim takes it with
 * quota_take before drawing a coupon; coupon_issue and coupon_revoke take
 * it with cl_quota_lock_for_coupon before locking the coupon.
 */

/*
 * Locks the counter row of the coupon's batch and owner_id (NULL: the
 * coupon's current owner, if it has one), creating it at 0 when missing.
 * A coupon that does not exist locks nothing.  SPI must be connected.
 */
extern void cl_quota_lock_for_coupon(int64 coupon_id, const char *owner_id);

/* Adds one to the owner's counter; false when it is at per_user_limit. */
extern bool quota_take(int64 batch_id, const char *owner_id, int32 per_user_limit);

/* Takes one from the owner's counter (a revoked coupon). */
extern void quota_give_back(int64 batch_id, const char *owner_id);

/* CL005 for an owner at the batch's limit. */
extern void report_limit_reached(int64 batch_id, const char *owner_id,
								 int32 per_user_limit) pg_attribute_noreturn();

#endif							/* COUPON_LOCK_QUOTA_H */
