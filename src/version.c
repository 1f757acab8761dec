/*-------------------------------------------------------------------------
 *
 * version.c
 *	  Which version of the SQL definitions the current database has.
 *
 * The shared library is replaced by "make install" (or a package upgrade)
 * for every database of the cluster at once, while each database moves its
 * SQL objects to the new version only when someone runs ALTER EXTENSION
 * coupon_lock UPDATE.  Until then the 1.1 library serves a database whose
 * functions, tables and indexes are those of 1.0.  Entry points whose
 * behaviour or schema changed in 1.1 ask cl_sql_version() and either keep
 * 1.0's behaviour or refuse with cl_require_sql_version()'s error, which
 * names the fix; they never read arguments the 1.0 declaration does not
 * pass (see PG_NARGS()) and never touch a table 1.0 does not have.
 *
 * The answer comes from the catalogs: the function library_version()
 * exists from 1.1 on.  It is looked up in the syscache and remembered until
 * a pg_proc or pg_namespace invalidation arrives, so ALTER EXTENSION UPDATE
 * in another session is seen at the next transaction of this one, and the
 * common path costs one comparison.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/namespace.h"
#include "catalog/pg_type.h"
#include "utils/builtins.h"
#include "utils/inval.h"
#include "utils/syscache.h"

#include "coupon_lock.h"

PG_FUNCTION_INFO_V1(coupon_lock_library_version);

/* 0: not known yet (or invalidated); else CL_SQL_1_0 or CL_SQL_1_1. */
static int	sql_version = 0;
static bool callbacks_registered = false;

static void
forget_sql_version(Datum arg pg_attribute_unused(), int cacheid pg_attribute_unused(),
				   uint32 hashvalue pg_attribute_unused())
{
	sql_version = 0;
}

int
cl_sql_version(void)
{
	if (sql_version == 0)
	{
		Oid			nsp;
		oidvector  *noargs;

		if (!callbacks_registered)
		{
			CacheRegisterSyscacheCallback(PROCNAMEARGSNSP, forget_sql_version, (Datum) 0);
			CacheRegisterSyscacheCallback(NAMESPACEOID, forget_sql_version, (Datum) 0);
			callbacks_registered = true;
		}
		nsp = get_namespace_oid("coupon_lock", true);
		noargs = buildoidvector(NULL, 0);
		if (OidIsValid(nsp) &&
			SearchSysCacheExists3(PROCNAMEARGSNSP,
								  CStringGetDatum("library_version"),
								  PointerGetDatum(noargs),
								  ObjectIdGetDatum(nsp)))
			sql_version = CL_SQL_1_1;
		else
			sql_version = CL_SQL_1_0;
		pfree(noargs);
	}
	return sql_version;
}

void
cl_require_sql_version(int version, const char *function_name)
{
	if (cl_sql_version() < version)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("function %s needs the SQL definitions of coupon_lock 1.1", function_name),
				 errdetail("The coupon_lock library is version %s, but this database still has the extension's version 1.0 objects.",
						   CL_LIBRARY_VERSION),
				 errhint("Run ALTER EXTENSION coupon_lock UPDATE in this database.")));
}

/*
 * library_version(): the version of the loaded shared library, which may
 * be newer than pg_extension.extversion until ALTER EXTENSION ... UPDATE.
 */
Datum
coupon_lock_library_version(PG_FUNCTION_ARGS)
{
	PG_RETURN_TEXT_P(cstring_to_text(CL_LIBRARY_VERSION));
}
