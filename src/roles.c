/*-------------------------------------------------------------------------
 *
 * roles.c
 *	  The one rule of the privilege split that GRANT cannot express: a
 *	  session-scope advisory lock on a guard key ('coupon:' followed by
 *	  anything) needs coupon_lock_admin.
 *
 * install/roles.sql creates the roles coupon_lock_application,
 * coupon_lock_admin and coupon_lock_monitor and grants each its functions.
 * advisory_lock is the application's too, but with coupon_lock.redis_guard
 * on, every transition of coupon n first takes the advisory lock
 * 'coupon:n' (guard.c): a session lock on that key, which outlives the
 * caller's transactions, would stop every guarded transition of the coupon
 * for as long as the session likes.  So a session lock on a key beginning
 * with CL_GUARD_KEY_PREFIX is refused (42501) unless the caller has the
 * privileges of coupon_lock_admin (superusers have them).  Transaction
 * locks on guard keys stay open to everyone who may call
 * advisory_xact_lock: they end with the caller's transaction, as the
 * guard's own do.
 *
 * In a database whose SQL objects are still those of 1.0 (version.c) the
 * roles have no grants there and 1.0's rule stays: no check.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "miscadmin.h"
#include "utils/acl.h"

#include "advisory.h"
#include "coupon_lock.h"
#include "guard.h"

void
cl_check_session_key(const char *key, int keylen)
{
	const int	prefix_len = sizeof(CL_GUARD_KEY_PREFIX) - 1;
	Oid			admin;

	if (keylen < prefix_len || memcmp(key, CL_GUARD_KEY_PREFIX, prefix_len) != 0)
		return;
	if (cl_sql_version() < CL_SQL_1_1)
		return;
	admin = get_role_oid("coupon_lock_admin", true);
	if (superuser() || (OidIsValid(admin) && has_privs_of_role(GetUserId(), admin)))
		return;
	ereport(ERROR,
			(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
			 errmsg("permission denied to take a session lock on guard key \"%s\"", key),
			 errdetail("Keys beginning with \"%s\" are the guards of coupon transitions; "
					   "a session lock on one would hold the coupon beyond the transaction.",
					   CL_GUARD_KEY_PREFIX),
			 errhint("Use advisory_xact_lock, or grant the role coupon_lock_admin.")));
}
