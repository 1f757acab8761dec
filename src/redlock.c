/*-------------------------------------------------------------------------
 *
 * redlock.c
 *	  Redlock (the Redis documentation's distributed lock) over the N
 *	  independent masters of coupon_lock.redlock_servers, and
 *	  redis_lock_validity(key, token), the validity a held lock has left.
 *
 * The rules, as the Redis documentation gives them.  The same key and the
 * same random token go to every server; the SETs are sent to all of them
 * at once (redis_server.c: one WaitEventSet, one deadline, so a dead or
 * paused server costs the timeout once and a cancel still ends the wait).
 * The time a round took is read on the monotonic clock (instr_time), never
 * the wall clock.  The lock is held when a majority, N/2 + 1, took the key
 * and validity is left:
 *
 *		validity = ttl - elapsed - drift,  drift = ttl / 100 + 2 ms
 *
 * Otherwise it is released (compare-on-token) on every server, those that
 * did not answer in time included (they may still apply the SET: the
 * release is sent to them anyway, on a fresh connection), and the caller
 * gets NULL, or retries after a random delay while it may wait
 * (redis_lock.c's backoff with jitter).  When fewer than a majority
 * answered at all, that is a class 08 error, not "held elsewhere": a lock
 * that may be free cannot be told from one that is not.
 *
 * Unlock and the transaction-end release go to every server.  Extend is
 * the compare-on-token PEXPIRE on every server; it counts only with a
 * majority, and only when the round ended within the validity the lock
 * still had (the smallest of the majority's remaining TTLs, less drift):
 * a lock that expired meanwhile may already be someone else's.  A failed
 * extend releases everywhere.
 *
 * Each server's NOSCRIPT is answered on that server alone (redis_server.c),
 * so a server restarted empty, or one whose scripts were flushed, costs
 * one EVAL there.
 *
 * The fence is not here.  A Redis lock, Redlock's included, can be lost
 * without its holder knowing (a pause longer than the validity, a server
 * restarted without the key); coupon_lock's writes are guarded by the
 * coupon's version in the writing statement (docs/redis.md).
 *
 * The transaction end.  As on one server: cl_redlock_prepare_xact_end()
 * reconnects at PRE_COMMIT, where failing is allowed; the commit and
 * abort callbacks' quiet run sends the release to every connected server,
 * neither connects nor allocates (the reply room is reserved with the
 * keys) and waits at most CL_REDIS_XACT_END_MAX_MS.  A majority
 * confirming is a release (a key left on the rest cannot make a majority
 * for anyone, and its TTL ends it); fewer leaves the keys in the backlog,
 * released on every server before the session's next Redis command.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "fmgr.h"
#include "portability/instr_time.h"
#include "utils/builtins.h"
#include "utils/memutils.h"

#include "coupon_lock.h"
#include "guc.h"
#include "redis_conn.h"
#include "redis_multi.h"
#include "redlock.h"
#include "stats.h"

PG_FUNCTION_INFO_V1(coupon_lock_redis_lock_validity);

/* The servers of coupon_lock.redlock_servers, and the settings they were made with. */
static ClRedisServer *servers[CL_REDLOCK_MAX_SERVERS];
static int	nservers = 0;
static char *servers_setting = NULL;
static int	reserved_cmds = 0;	/* what the transaction end needs, for new servers too */

static char quiet_msg[512];

/*
 * ARGV[2] the new ttl: the remaining TTL before the PEXPIRE while the key
 * holds the token, -2 when it does not.
 */
static RedisScript extend_script = {
	"if redis.call('get', KEYS[1]) == ARGV[1] then "
	"local t = redis.call('pttl', KEYS[1]) "
	"redis.call('pexpire', KEYS[1], ARGV[2]) return t else return -2 end", {0}
};

/* The remaining TTL while the key holds the token, -2 when it does not. */
static RedisScript validity_script = {
	"if redis.call('get', KEYS[1]) == ARGV[1] then "
	"return redis.call('pttl', KEYS[1]) else return -2 end", {0}
};

/* The script call for KEYS[1] rkey, ARGV[1] token and, when given, ARGV[2] arg. */
static void
script_cmd(RedisCmd *cmd, RedisScript *script, const char *rkey, int rkeylen,
		   const char *token, int tokenlen, const char *arg)
{
	memset(cmd, 0, sizeof(*cmd));
	cmd->script = script;
	cmd->argc = arg ? 4 : 3;
	cmd->argv[0] = "1";
	cmd->argvlen[0] = 1;
	cmd->argv[1] = rkey;
	cmd->argvlen[1] = rkeylen;
	cmd->argv[2] = token;
	cmd->argvlen[2] = tokenlen;
	if (arg)
	{
		cmd->argv[3] = arg;
		cmd->argvlen[3] = strlen(arg);
	}
}

bool
cl_redlock_configured(void)
{
	return cl_redlock_servers != NULL && cl_redlock_servers[0] != '\0';
}

bool
cl_redlock_parse(const char *list, int *n, char (*hosts)[256], int *ports, const char **why)
{
	const char *p = list;

	*n = 0;
	for (;;)
	{
		const char *start;
		const char *end;
		const char *colon = NULL;
		char	   *endptr;
		long		port;

		while (*p == ' ' || *p == ',')
			p++;
		if (*p == '\0')
			break;
		start = p;
		end = start + strcspn(start, ", ");
		p = end;
		for (const char *c = start; c < end; c++)
			if (*c == ':')
				colon = c;
		if (colon == NULL || colon == start || colon - start >= 256)
		{
			*why = "Each server must be written host:port.";
			return false;
		}
		port = strtol(colon + 1, &endptr, 10);
		if (endptr != end || port < 1 || port > 65535)
		{
			*why = "Each server's port must be a number from 1 to 65535.";
			return false;
		}
		if (*n == CL_REDLOCK_MAX_SERVERS)
		{
			*why = "At most 15 servers may be named.";
			return false;
		}
		memcpy(hosts[*n], start, colon - start);
		hosts[*n][colon - start] = '\0';
		ports[*n] = (int) port;
		(*n)++;
	}
	if (*n > 0 && (*n < 3 || *n % 2 == 0))
	{
		*why = "Redlock needs an odd number of servers, at least 3, so that a majority is defined.";
		return false;
	}
	return true;
}

/* The servers for the current settings, made again when they changed. */
static void
ensure_servers(void)
{
	char	   *setting = psprintf("%s/%d/%s", cl_redlock_servers, cl_redis_db, cl_redis_password);
	char		hosts[CL_REDLOCK_MAX_SERVERS][256];
	int			ports[CL_REDLOCK_MAX_SERVERS];
	int			n;
	const char *why;

	if (servers_setting != NULL && strcmp(servers_setting, setting) == 0)
	{
		pfree(setting);
		return;
	}
	for (int i = 0; i < nservers; i++)
		cl_server_free(servers[i]);
	nservers = 0;
	if (servers_setting)
		pfree(servers_setting);
	servers_setting = NULL;
	if (!cl_redlock_parse(cl_redlock_servers, &n, hosts, ports, &why))
		ereport(ERROR,				/* the check hook let it in: cannot happen */
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid value for coupon_lock.redlock_servers"),
				 errdetail("%s", why)));
	for (int i = 0; i < n; i++)
		servers[nservers++] = cl_server_new(hosts[i], ports[i]);
	if (reserved_cmds > 0)
		cl_servers_reserve(servers, nservers, reserved_cmds);
	servers_setting = MemoryContextStrdup(TopMemoryContext, setting);
	pfree(setting);
}

static int
majority(void)
{
	return nservers / 2 + 1;
}

static int64
drift_of(int64 ttl_ms)
{
	return ttl_ms / 100 + 2;
}

static int64
elapsed_ms(instr_time start)
{
	instr_time	now;

	INSTR_TIME_SET_CURRENT(now);
	INSTR_TIME_SUBTRACT(now, start);
	return (int64) INSTR_TIME_GET_MILLISEC(now);
}

/*
 * One round of cmds over every server; how many answered.  The round ends
 * as soon as its outcome is settled for the majority (ok on command 0, see
 * ClQuorum): a paused or unreachable minority costs nothing, as the Redis
 * documentation asks of a client.
 */
static int
round_all(const RedisCmd *cmds, int ncmds, bool (*ok) (const RedisValue *))
{
	int			timeout = cl_redis_command_timeout;
	ClQuorum	quorum;

	ensure_servers();
	for (int i = 0; i < ncmds; i++)
		if (cmds[i].script)
			redis_script_prepare(cmds[i].script);
	if (cl_servers_connected(servers, nservers) < nservers)
		timeout += cl_redis_connect_timeout;
	quorum.need = majority();
	quorum.ok = ok;
	return cl_servers_run_quorum(servers, nservers, cmds, ncmds, timeout, false, &quorum);
}

static bool is_ok(const RedisValue *v);
static bool is_one(const RedisValue *v);
static bool is_ttl(const RedisValue *v);

/* The first server that did not answer, and why (for a detail). */
static const char *
first_failure(void)
{
	for (int i = 0; i < nservers; i++)
		if (!cl_server_answered(servers[i]))
			return psprintf("%s: %s", cl_server_name(servers[i]), cl_server_error(servers[i]));
	return "";
}

static void
raise_unreachable(int answered, int64 elapsed, const char *first_failed)
{
	stats_count(STAT_REDIS, STAT_ERROR);
	ereport(ERROR,
			(errcode(ERRCODE_CONNECTION_FAILURE),
			 errmsg("could not reach a majority of the Redlock servers"),
			 errdetail("%d of %d servers answered within %lld ms, and %d are needed; the first that did not was %s.",
					   answered, nservers, (long long) elapsed, majority(), first_failed),
			 errhint("Check coupon_lock.redlock_servers and that the servers are running.")));
}

/* How many servers answered command 0 with a value for which ok() holds. */
static int
count_values(bool (*ok) (const RedisValue *))
{
	int			c = 0;

	for (int i = 0; i < nservers; i++)
		if (cl_server_answered(servers[i]) && ok(cl_server_value(servers[i], 0)))
			c++;
	return c;
}

static bool
is_ok(const RedisValue *v)
{
	return v->kind == RV_OK;
}

static bool
is_one(const RedisValue *v)
{
	return v->kind == RV_INTEGER && v->integer == 1;
}

static bool
is_ttl(const RedisValue *v)
{
	return v->kind == RV_INTEGER && v->integer >= 0;
}

static int
cmp_desc(const void *a, const void *b)
{
	int64		x = *(const int64 *) a;
	int64		y = *(const int64 *) b;

	return x < y ? 1 : x > y ? -1 : 0;
}

/*
 * What the majority's remaining TTLs (replies of command 0) leave: the
 * smallest of the majority's largest, less drift and elapsed; -1 when
 * fewer than a majority hold the key.
 */
static int64
majority_validity(int64 elapsed)
{
	int64		ttls[CL_REDLOCK_MAX_SERVERS];
	int			n = 0;
	int64		t;

	for (int i = 0; i < nservers; i++)
		if (cl_server_answered(servers[i]) && is_ttl(cl_server_value(servers[i], 0)))
			ttls[n++] = cl_server_value(servers[i], 0)->integer;
	if (n < majority())
		return -1;
	qsort(ttls, n, sizeof(int64), cmp_desc);
	t = ttls[majority() - 1];
	return Max(0, t - elapsed - drift_of(t));
}

/* The release on every server; how many deleted the key (raises nothing new). */
static int
release_everywhere(const RedisCmd *release)
{
	(void) round_all(release, 1, is_one);
	return count_values(is_one);
}

/*
 * Not held: the key released on every server (those that did not answer
 * included; not when every server answered and none took it), then class
 * 08 when fewer than a majority answered the round (the detail names the
 * round's first failure, not the release's).
 */
static bool
give_up(const RedisCmd *release, int answered, int taken, int64 elapsed)
{
	const char *first_failed = answered < majority() ? first_failure() : "";

	if (taken > 0 || answered < nservers)
		(void) release_everywhere(release);
	if (answered < majority())
		raise_unreachable(answered, elapsed, first_failed);
	return false;
}

bool
cl_redlock_acquire(const RedisCmd *set, const RedisCmd *release, int64 ttl_ms)
{
	instr_time	start;
	int			answered;
	int			taken;
	int64		elapsed;

	INSTR_TIME_SET_CURRENT(start);
	answered = round_all(set, 1, is_ok);
	taken = count_values(is_ok);
	elapsed = elapsed_ms(start);
	if (taken >= majority() && ttl_ms - elapsed - drift_of(ttl_ms) > 0)
		return true;
	return give_up(release, answered, taken, elapsed);
}

bool
cl_redlock_release(const RedisCmd *release)
{
	instr_time	start;
	int			answered;
	int			deleted;

	INSTR_TIME_SET_CURRENT(start);
	answered = round_all(release, 1, is_one);
	deleted = count_values(is_one);
	if (answered < majority())
		raise_unreachable(answered, elapsed_ms(start), first_failure());
	return deleted >= majority();
}

bool
cl_redlock_extend(const char *rkey, int rkeylen, const char *token, int tokenlen,
				  int64 ttl_ms, const RedisCmd *release)
{
	char		px[32];
	RedisCmd	cmd;
	instr_time	start;
	int			answered;
	int64		elapsed;
	int64		left;

	snprintf(px, sizeof(px), INT64_FORMAT, ttl_ms);
	script_cmd(&cmd, &extend_script, rkey, rkeylen, token, tokenlen, px);

	INSTR_TIME_SET_CURRENT(start);
	answered = round_all(&cmd, 1, is_ttl);
	elapsed = elapsed_ms(start);
	/* the validity the lock had when the round began, less the round */
	left = majority_validity(elapsed);
	if (left > 0 && ttl_ms - elapsed - drift_of(ttl_ms) > 0)
		return true;
	return give_up(release, answered, count_values(is_ttl), elapsed);
}

/* ---- the transaction end ---- */

void
cl_redlock_reserve(int ncmds)
{
	reserved_cmds = Max(reserved_cmds, ncmds);
	ensure_servers();
	cl_servers_reserve(servers, nservers, ncmds);
}

void
cl_redlock_prepare_xact_end(void)
{
	ensure_servers();
	if (cl_servers_connected(servers, nservers) == nservers)
		return;
	/* connects those that are not; a failure is left for the quiet run */
	(void) cl_servers_run(servers, nservers, NULL, 0,
						  Min(cl_redis_connect_timeout, CL_REDIS_XACT_END_MAX_MS), false);
}

RedisQuietResult
cl_redlock_run_quiet(RedisCmd *cmds, int ncmds, RedisValue *out)
{
	int			answered;
	int			connected;

	for (int i = 0; i < ncmds; i++)
		if (cmds[i].script && cmds[i].script->sha1[0] == '\0')
		{
			strlcpy(quiet_msg, "a Redis script was not prepared", sizeof(quiet_msg));
			return REDIS_QUIET_NOT_SENT;
		}
	connected = nservers > 0 ? cl_servers_connected(servers, nservers) : 0;
	if (connected == 0)
	{
		snprintf(quiet_msg, sizeof(quiet_msg), "no connection to any Redlock server");
		stats_count(STAT_REDIS, STAT_ERROR);
		return REDIS_QUIET_NOT_SENT;
	}
	answered = cl_servers_run(servers, nservers, cmds, ncmds,
							  Min(cl_redis_command_timeout, CL_REDIS_XACT_END_MAX_MS), true);
	for (int c = 0; c < ncmds; c++)
	{
		int			deleted = 0;

		for (int i = 0; i < nservers; i++)
			if (cl_server_answered(servers[i]) && is_one(cl_server_value(servers[i], c)))
				deleted++;
		out[c].kind = RV_INTEGER;
		out[c].integer = deleted >= majority() ? 1 : 0;
	}
	/* a majority confirmed: nobody can be held up by the rest, whose TTL ends them */
	if (answered >= majority())
		return REDIS_QUIET_DONE;
	stats_count(STAT_REDIS, STAT_ERROR);
	for (int i = 0; i < nservers; i++)
		if (!cl_server_answered(servers[i]))
		{
			snprintf(quiet_msg, sizeof(quiet_msg), "%d of %d Redlock servers answered; %s: %s",
					 answered, nservers, cl_server_name(servers[i]), cl_server_error(servers[i]));
			break;
		}
	return REDIS_QUIET_UNCONFIRMED;
}

const char *
cl_redlock_quiet_error(void)
{
	return quiet_msg;
}

/* ---- SQL entry point ---- */

/*
 * redis_lock_validity(key, token): the milliseconds the lock has left,
 * NULL when token does not hold key (on a majority, with Redlock).
 */
Datum
coupon_lock_redis_lock_validity(PG_FUNCTION_ARGS)
{
	char	   *key;
	char	   *token;
	char	   *rkey;
	RedisCmd	cmd;
	instr_time	start;
	int64		left;

	redis_require();
	key = cl_arg_id(fcinfo, 0, "key");
	token = cl_arg_id(fcinfo, 1, "token");
	rkey = psprintf("%s%s", cl_redis_key_prefix, key);
	script_cmd(&cmd, &validity_script, rkey, strlen(rkey), token, strlen(token), NULL);

	INSTR_TIME_SET_CURRENT(start);
	if (!cl_redlock_configured())
	{
		RedisValue	v;

		redis_run(&cmd, 1, &v);
		if (!is_ttl(&v))
			PG_RETURN_NULL();
		PG_RETURN_INT64(Max(0, v.integer - elapsed_ms(start) - drift_of(v.integer)));
	}
	{
		int			answered = round_all(&cmd, 1, is_ttl);

		if (answered < majority())
			raise_unreachable(answered, elapsed_ms(start), first_failure());
	}
	left = majority_validity(elapsed_ms(start));
	if (left < 0)
		PG_RETURN_NULL();
	PG_RETURN_INT64(left);
}
