/*-------------------------------------------------------------------------
 *
 * guc.c
 *	  The coupon_lock.* settings.  Each is defined here and nowhere else;
 *	  modules read the C variables declared in guc.h.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <limits.h>

#include "utils/guc.h"

#include "coupon_lock.h"
#include "guc.h"

int			cl_max_batch_quantity = 10000000;

void
GucInit(void)
{
	DefineCustomIntVariable("coupon_lock.max_batch_quantity",
							"Sets the largest quantity create_batch accepts.",
							"Larger quantities are refused with SQLSTATE 22023.",
							&cl_max_batch_quantity,
							10000000, 1, INT_MAX,
							PGC_SUSET, 0,
							NULL, NULL, NULL);

	MarkGUCPrefixReserved("coupon_lock");
}
