/*-------------------------------------------------------------------------
 *
 * claim_request.h
 *	  Retry-safe claims (claim_request.c): coupon_claim with a request_id
 *	  answers a repeated call with what the first call got.
 *
 *-------------------------------------------------------------------------
 */
#ifndef COUPON_LOCK_CLAIM_REQUEST_H
#define COUPON_LOCK_CLAIM_REQUEST_H

#include "postgres.h"
#include "fmgr.h"

/* One claim: the coupon_id it issued to owner_id, or -1 when sold out. */
typedef int64 (*ClClaimFn) (int64 batch_id, const char *owner_id);

/*
 * The request_id argument at argno: NULL when the caller passed none (the
 * 1.0 declaration has no such argument) or passed NULL; 22023 when empty
 * or too long.
 */
extern char *cl_claim_request_arg(FunctionCallInfo fcinfo, int argno);

/*
 * Runs claim(batch_id, owner_id) once per (batch_id, owner_id, request_id)
 * and returns its answer, the recorded one for every later call.  SPI must
 * be connected.
 */
extern int64 cl_claim_once(int64 batch_id, const char *owner_id,
						   const char *request_id, ClClaimFn claim);

#endif							/* COUPON_LOCK_CLAIM_REQUEST_H */
