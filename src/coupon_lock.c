/*-------------------------------------------------------------------------
 *
 * coupon_lock.c
 *	  Module magic and _PG_init: one Init call per module.
 *
 * The library may be loaded on first use of a function or through
 * shared_preload_libraries; modules that need shared memory say so
 * themselves when it is missing.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "fmgr.h"

#include "coupon_lock.h"

PG_MODULE_MAGIC;

void		_PG_init(void);

void
_PG_init(void)
{
	GucInit();
	StatsInit();
	RedisLockInit();
	cl_lease_init();
	cl_sweeper_init();
	cl_router_timeout_init();
}
