/*-------------------------------------------------------------------------
 *
 * guc.h
 *	  Every coupon_lock.* setting, defined once in guc.c.
 *
 *-------------------------------------------------------------------------
 */
#ifndef COUPON_LOCK_GUC_H
#define COUPON_LOCK_GUC_H

extern int	cl_max_batch_quantity;

#endif							/* COUPON_LOCK_GUC_H */
