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

#include "miscadmin.h"
#include "utils/guc.h"

#include "coupon_lock.h"
#include "guc.h"
#include "redlock.h"

int			cl_max_batch_quantity = 10000000;
int			cl_claim_sequence_min_quantity = 1000;	/* perf: claim.c, batch.c */

/* Redis (redis_conn.c, redis_lock.c, guard.c) */
char	   *cl_redis_host = NULL;
int			cl_redis_port = 6379;
char	   *cl_redis_password = NULL;
int			cl_redis_db = 0;
int			cl_redis_connect_timeout = 1000;
int			cl_redis_command_timeout = 1000;
char	   *cl_redis_key_prefix = NULL;
bool		cl_redis_guard = false;
int			cl_redis_guard_wait = 5000;
int			cl_redis_guard_ttl = 30000;
char	   *cl_redis_sentinels = NULL;
char	   *cl_redis_sentinel_master = NULL;
int			cl_redis_min_replicas = 0;
char	   *cl_redlock_servers = NULL;
char	   *cl_redis_sentinel_password = NULL;

/* coupon_lock.redlock_servers: an odd number, at least 3, of host:port */
static bool
check_redlock_servers(char **newval, void **extra pg_attribute_unused(), GucSource source pg_attribute_unused())
{
	char		hosts[CL_REDLOCK_MAX_SERVERS][256];
	int			ports[CL_REDLOCK_MAX_SERVERS];
	int			n;
	const char *why;

	if (*newval == NULL || cl_redlock_parse(*newval, &n, hosts, ports, &why))
		return true;
	GUC_check_errdetail("%s", why);
	return false;
}

/*
 * The Redis settings.  Where Redis is and which keys the locks use are
 * superuser-only: the guard's promise to outside holders rests on every
 * session using the same server and prefix.  The password is also hidden
 * from everyone but superusers (and pg_read_all_settings).  The same
 * settings exist in a build without hiredis, so configuration files stay
 * valid either way.
 */
static void
define_redis_settings(void)
{
	DefineCustomStringVariable("coupon_lock.redis_host",
							   "Sets the Redis server's host name or IP address.",
							   "Empty means Redis is not configured: the redis_* functions raise 55000 "
							   "and hybrid_xact_lock and the guard use the advisory lock alone.",
							   &cl_redis_host, "",
							   PGC_SUSET, 0, NULL, NULL, NULL);
	DefineCustomIntVariable("coupon_lock.redis_port",
							"Sets the Redis server's TCP port.",
							NULL,
							&cl_redis_port, 6379, 1, 65535,
							PGC_SUSET, 0, NULL, NULL, NULL);
	DefineCustomStringVariable("coupon_lock.redis_password",
							   "Sets the password sent with AUTH on every connection to Redis.",
							   "Empty sends no AUTH.",
							   &cl_redis_password, "",
							   PGC_SUSET, GUC_SUPERUSER_ONLY | GUC_NOT_IN_SAMPLE,
							   NULL, NULL, NULL);
	DefineCustomIntVariable("coupon_lock.redis_db",
							"Sets the Redis database number selected on every connection.",
							NULL,
							&cl_redis_db, 0, 0, INT_MAX,
							PGC_SUSET, 0, NULL, NULL, NULL);
	DefineCustomIntVariable("coupon_lock.redis_connect_timeout",
							"Sets the longest wait for a connection to Redis, AUTH and SELECT included.",
							NULL,
							&cl_redis_connect_timeout, 1000, 1, INT_MAX,
							PGC_USERSET, GUC_UNIT_MS, NULL, NULL, NULL);
	DefineCustomIntVariable("coupon_lock.redis_command_timeout",
							"Sets the longest wait for Redis to answer one command.",
							"A command that takes longer fails with SQLSTATE 08006 and the connection is dropped.",
							&cl_redis_command_timeout, 1000, 1, INT_MAX,
							PGC_USERSET, GUC_UNIT_MS, NULL, NULL, NULL);
	DefineCustomStringVariable("coupon_lock.redis_key_prefix",
							   "Sets the prefix of every Redis key coupon_lock uses.",
							   "The Redis key of lock key k is this prefix followed by k.",
							   &cl_redis_key_prefix, "coupon_lock:",
							   PGC_SUSET, 0, NULL, NULL, NULL);
	DefineCustomBoolVariable("coupon_lock.redis_guard",
							 "Makes every coupon transition take hybrid_xact_lock('coupon:' || coupon_id) first.",
							 NULL,
							 &cl_redis_guard, false,
							 PGC_SUSET, 0, NULL, NULL, NULL);
	DefineCustomIntVariable("coupon_lock.redis_guard_wait",
							"Sets how long a coupon transition waits for its guard.",
							"A wait that runs out fails with SQLSTATE 55P03.  Sweeps and claims never wait: "
							"they skip a coupon whose guard is held elsewhere.",
							&cl_redis_guard_wait, 5000, 0, INT_MAX,
							PGC_USERSET, GUC_UNIT_MS, NULL, NULL, NULL);
	DefineCustomIntVariable("coupon_lock.redis_guard_ttl",
							"Sets the TTL of the Redis key a coupon transition's guard takes.",
							"The key is deleted when the transaction ends; the TTL bounds how long it "
							"outlives a backend that dies.",
							&cl_redis_guard_ttl, 30000, 1, INT_MAX,
							PGC_SUSET, GUC_UNIT_MS, NULL, NULL, NULL);

	/* Redis beyond one server: superuser-only, like where Redis is */
	DefineCustomStringVariable("coupon_lock.redis_sentinels",
							   "Sets the Sentinels that name the Redis master, as host:port,host:port,...",
							   "When set, coupon_lock.redis_host and redis_port are ignored: the master is "
							   "asked of these Sentinels on every new connection.",
							   &cl_redis_sentinels, "",
							   PGC_SUSET, 0, NULL, NULL, NULL);
	DefineCustomStringVariable("coupon_lock.redis_sentinel_master",
							   "Sets the name under which the Sentinels know the Redis master.",
							   NULL,
							   &cl_redis_sentinel_master, "mymaster",
							   PGC_SUSET, 0, NULL, NULL, NULL);
	DefineCustomStringVariable("coupon_lock.redis_sentinel_password",
							   "Sets the password sent with AUTH to each Sentinel before it is asked.",
							   "For Sentinels with a requirepass of their own.  Empty sends no AUTH to Sentinels.",
							   &cl_redis_sentinel_password, "",
							   PGC_SUSET, GUC_SUPERUSER_ONLY | GUC_NOT_IN_SAMPLE,
							   NULL, NULL, NULL);
	DefineCustomIntVariable("coupon_lock.redis_min_replicas",
							"Sets how many replicas must acknowledge a Redis lock taken or extended.",
							"After each acquire and extend, WAIT asks for this many replicas; fewer within "
							"half of coupon_lock.redis_command_timeout releases the key and the call fails "
							"(NULL or false).  0 sends no WAIT.",
							&cl_redis_min_replicas, 0, 0, 100,
							PGC_SUSET, 0, NULL, NULL, NULL);
	DefineCustomStringVariable("coupon_lock.redlock_servers",
							   "Sets the independent Redis masters of Redlock, as host:port,host:port,...",
							   "An odd number, at least 3 and at most 15.  When set, every Redis lock "
							   "function and the guard use Redlock over these servers: held when a majority "
							   "took the key and validity is left.  redis_host, redis_sentinels and "
							   "redis_min_replicas are then not used; redis_password and redis_db apply to "
							   "every server.",
							   &cl_redlock_servers, "",
							   PGC_SUSET, 0, check_redlock_servers, NULL, NULL);
}

/* Advisory locks (advisory_keys.c) */
int			cl_max_held_keys = 1000;

/*
 * The advisory lock settings.  The ceiling protects the shared lock table,
 * which every session shares: only a superuser may move it.
 */
static void
define_advisory_settings(void)
{
	DefineCustomIntVariable("coupon_lock.max_held_keys",
							"Sets the most advisory lock keys one session may hold at once.",
							"A lock on one more key fails with SQLSTATE 53200, before the shared lock "
							"table (max_locks_per_transaction slots per connection) is at risk.  "
							"Re-taking a key the session holds is never refused.",
							&cl_max_held_keys, 1000, 1, INT_MAX,
							PGC_SUSET, 0, NULL, NULL, NULL);
}

/* Leases, the sweeper (lease.c, sweeper.c) */
int			cl_lease_wait = 1000;
char	   *cl_sweep_databases = NULL;
int			cl_sweep_interval = 1000;
int			cl_sweep_max_rows = 1000;
int			cl_reconcile_interval = 5000;
int			cl_router_call_timeout = 0;

static void
define_ha_settings(void)
{
	DefineCustomIntVariable("coupon_lock.lease_wait",
							"Sets the longest wait of a lease call for the lease's row lock.",
							"A wait that runs out fails with SQLSTATE 55P03; a shorter lock_timeout wins.",
							&cl_lease_wait, 1000, 1, INT_MAX,
							PGC_USERSET, GUC_UNIT_MS, NULL, NULL, NULL);
	DefineCustomStringVariable("coupon_lock.sweep_databases",
							   "Sets the databases in which the sweeper background worker runs.",
							   "A comma-separated list; empty turns the sweeper off.  Needs coupon_lock "
							   "in shared_preload_libraries.",
							   &cl_sweep_databases, "",
	/* PostgreSQL allows postmaster settings only while preloading */
							   process_shared_preload_libraries_in_progress ? PGC_POSTMASTER : PGC_SIGHUP,
							   GUC_LIST_INPUT, NULL, NULL, NULL);
	DefineCustomIntVariable("coupon_lock.sweep_interval",
							"Sets the pause of the sweeper between rounds.",
							NULL,
							&cl_sweep_interval, 1000, 10, INT_MAX,
							PGC_SIGHUP, GUC_UNIT_MS, NULL, NULL, NULL);
	DefineCustomIntVariable("coupon_lock.sweep_max_rows",
							"Sets the rows per sweep call of the sweeper.",
							"A round repeats calls until a call finds fewer rows; each call is its own transaction.",
							&cl_sweep_max_rows, 1000, 1, INT_MAX,
							PGC_SIGHUP, 0, NULL, NULL, NULL);
	/* shards (issue 13): the sweeper's round in a coupon_lock_router database */
	DefineCustomIntVariable("coupon_lock.reconcile_interval",
							"Sets the pause of the sweeper between router_reconcile() calls in a router database.",
							"Stock stranded by a failure in the middle of a move is back within this "
							"interval once its shards answer.",
							&cl_reconcile_interval, 5000, 10, INT_MAX,
							PGC_SIGHUP, GUC_UNIT_MS, NULL, NULL, NULL);
	DefineCustomIntVariable("coupon_lock.router_call_timeout",
							"Sets the longest wait of a router database for one shard's answer.",
							"A call that takes longer fails with SQLSTATE 08006, also when the shard's "
							"server has stopped; 0 turns it off.  Needs coupon_lock preloaded.",
							&cl_router_call_timeout, 0, 0, INT_MAX,
							PGC_USERSET, GUC_UNIT_MS, NULL, NULL, NULL);
}

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

	/* perf (issue 14): below this quantity a batch gets no claim sequence */
	DefineCustomIntVariable("coupon_lock.claim_sequence_min_quantity",
							"Sets the smallest batch quantity create_batch gives a claim sequence of its own.",
							"Smaller batches are claimed through the index of unclaimed coupons.",
							&cl_claim_sequence_min_quantity,
							1000, 1, INT_MAX,
							PGC_SUSET, 0,
							NULL, NULL, NULL);

	define_redis_settings();
	define_advisory_settings();
	define_ha_settings();

	MarkGUCPrefixReserved("coupon_lock");
}
