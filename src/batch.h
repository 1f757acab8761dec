/*-------------------------------------------------------------------------
 *
 * batch.h
 *	  Creating batches and their coupons (batch.c), for create_batch and
 *	  for a shard receiving stock (shard.c).
 *
 *-------------------------------------------------------------------------
 */
#ifndef COUPON_LOCK_BATCH_H
#define COUPON_LOCK_BATCH_H

#include "postgres.h"

extern int64 cl_batch_create(text *name, int32 quantity, int32 per_user_limit,
							 bool has_valid_until, Datum valid_until, Datum freeze_ttl,
							 int64 batch_id);
extern int64 cl_batch_add_coupons(int64 batch_id, int32 quantity);

#endif							/* COUPON_LOCK_BATCH_H */
