/*-------------------------------------------------------------------------
 *
 * redis_conn.c
 *	  The backend's connection to the Redis master of single-server and
 *	  Sentinel mode: which server it is, when to connect again, and the
 *	  entry points redis_lock.c calls (redis_run, redis_run_quiet).  The
 *	  connection itself is a ClRedisServer (redis_server.c), as is the one
 *	  to a Sentinel being asked; Redlock's masters are redlock.c's.
 *
 * Concurrency rules.  Each backend has at most one connection to the
 * master, made on first use and kept; nothing is shared between backends.
 * A connection is used by one call at a time, and every exchange is
 * complete when a call returns (redis_server.c drops a connection whose
 * exchange was cut off; the next call connects afresh).
 *
 * Timeouts.  Connecting waits at most coupon_lock.redis_connect_timeout
 * (AUTH and SELECT included), an exchange at most
 * coupon_lock.redis_command_timeout: sending the commands and reading
 * every reply (the NOSCRIPT resend included) share one deadline, so a
 * pipeline of n commands waits at most one command timeout, not n.
 *
 * Transaction end.  redis_run_quiet() runs in the commit and abort
 * callbacks, where an ERROR would become a PANIC: it never connects,
 * never allocates with palloc (the caller preallocates with
 * cl_redis_reserve(), the wait set lives as long as the connection), never
 * processes interrupts, and waits at most CL_REDIS_XACT_END_MAX_MS
 * whatever coupon_lock.redis_command_timeout says, so COMMIT cannot be
 * held deaf to cancel for long.  The fallible part, reconnecting a
 * connection Redis closed, is cl_redis_prepare_xact_end() at PRE_COMMIT.
 *
 * A kept connection may have been closed by Redis meanwhile (restart,
 * idle timeout).  Before reuse a non-blocking peek at the socket notices
 * the close and the call reconnects; a command is never sent twice, so a
 * lock taken by a command whose reply was lost cannot be taken again by
 * a retry.  AUTH and SELECT are sent on every new connection.  A READONLY
 * reply in Sentinel mode (a master a failover demoted) drops the
 * connection after the exchange, so the next call finds the master again.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "common/cryptohash.h"
#include "common/sha1.h"
#include "miscadmin.h"
#include "storage/latch.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"
#include "utils/wait_event.h"

#include "guc.h"
#include "redis_conn.h"
#include "redis_sentinel.h"
#include "redis_server.h"
#include "redlock.h"
#include "stats.h"

/*
 * Redis is configured when coupon_lock.redis_host is not empty, or the
 * master is found through Sentinels, or Redlock's servers are set.
 */
bool
redis_configured(void)
{
	return (cl_redis_host != NULL && cl_redis_host[0] != '\0') || cl_sentinel_configured() ||
		cl_redlock_configured();
}

/* ---- SHA1 of scripts ---- */

void
redis_script_prepare(RedisScript *script)
{
	pg_cryptohash_ctx *h;
	uint8		digest[SHA1_DIGEST_LENGTH];

	if (script->sha1[0])
		return;
	h = pg_cryptohash_create(PG_SHA1);
	if (h == NULL || pg_cryptohash_init(h) < 0 ||
		pg_cryptohash_update(h, (const uint8 *) script->body, strlen(script->body)) < 0 ||
		pg_cryptohash_final(h, digest, sizeof(digest)) < 0)
		elog(ERROR, "could not compute the SHA1 of a Redis script: %s", pg_cryptohash_error(h));
	pg_cryptohash_free(h);
	for (int i = 0; i < SHA1_DIGEST_LENGTH; i++)
		snprintf(script->sha1 + 2 * i, 3, "%02x", digest[i]);
}

void
redis_require(void)
{
#ifndef USE_HIREDIS
	ereport(ERROR,
			(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
			 errmsg("coupon_lock was built without Redis support"),
			 errhint("Rebuild coupon_lock with WITH_HIREDIS=yes (it needs hiredis).")));
#endif
	if (!redis_configured())
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("Redis is not configured"),
				 errhint("Set coupon_lock.redis_host to the Redis server's address.")));
}

#ifdef USE_HIREDIS

/* The master (single-server or Sentinel mode), and the Sentinel being asked. */
static ClRedisServer master = {.fd = PGINVALID_SOCKET, .set_pos = -1};
static ClRedisServer asker = {.fd = PGINVALID_SOCKET, .set_pos = -1};

/* The settings the connection was made with; a change reconnects. */
static char *conn_host = NULL;
static int	conn_port;
static int	conn_db;
static char *conn_password = NULL;
static char *conn_sentinels = NULL;	/* redis_sentinels/redis_sentinel_master */

static char quiet_msg[520];

static void
drop_all(void)
{
	cl_server_drop(&master);
	cl_server_drop(&asker);
}

/* ---- asking a Sentinel ---- */

bool
cl_redis_ask(const char *host, int port, int argc, const char **argv, RedisWords *w,
			 int timeout_ms, bool interruptible)
{
	ClDeadline	d = cl_deadline_in(timeout_ms, true, interruptible);
	RedisCmd	cmd;
	bool		ok;

	cl_server_drop(&asker);
	strlcpy(asker.host, host, sizeof(asker.host));
	asker.port = port;
	memset(&cmd, 0, sizeof(cmd));
	for (int i = 0; i < argc; i++)
	{
		cmd.argv[i] = argv[i];
		cmd.argvlen[i] = strlen(argv[i]);
	}
	cmd.argc = argc;
	cl_server_reserve(&asker, 2);
	ok = cl_server_open(&asker, &d) &&
		cl_server_auth_select(&asker, cl_redis_sentinel_password, 0, &d) &&
		cl_server_exchange(&asker, &cmd, 1, &d) && cl_server_reply_words(&asker, 0, w);
	cl_server_drop(&asker);
	return ok;
}

/* ---- connecting to the master ---- */

static void
remember_settings(void)
{
	if (conn_host)
		pfree(conn_host);
	if (conn_password)
		pfree(conn_password);
	if (conn_sentinels)
		pfree(conn_sentinels);
	conn_sentinels = MemoryContextStrdup(TopMemoryContext,
										 psprintf("%s/%s", cl_redis_sentinels, cl_redis_sentinel_master));
	conn_host = MemoryContextStrdup(TopMemoryContext, cl_redis_host);
	conn_password = MemoryContextStrdup(TopMemoryContext, cl_redis_password);
	conn_port = cl_redis_port;
	conn_db = cl_redis_db;
}

static bool
settings_changed(void)
{
	char		sentinels[1024];

	snprintf(sentinels, sizeof(sentinels), "%s/%s", cl_redis_sentinels, cl_redis_sentinel_master);
	return strcmp(conn_sentinels, sentinels) != 0 ||
		strcmp(conn_host, cl_redis_host) != 0 || conn_port != cl_redis_port ||
		conn_db != cl_redis_db || strcmp(conn_password, cl_redis_password) != 0;
}

/* Pauses before asking again, within the deadline (false: it passed). */
static bool
pause_within(int ms, const ClDeadline *d)
{
	TimestampTz until = Min(d->at, TimestampTzPlusMilliseconds(GetCurrentTimestamp(), ms));

	for (;;)
	{
		long		left = TimestampDifferenceMilliseconds(GetCurrentTimestamp(), until);

		if (left <= 0)
			break;
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH, left,
						 PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
		if (d->interruptible)
			CHECK_FOR_INTERRUPTS();
	}
	return GetCurrentTimestamp() < d->at;
}

/* ROLE on the master connection; its reply as words. */
static bool
ask_role(RedisWords *role, const ClDeadline *d)
{
	RedisCmd	cmd;

	memset(&cmd, 0, sizeof(cmd));
	cmd.argc = 1;
	cmd.argv[0] = "ROLE";
	cmd.argvlen[0] = 4;
	cl_server_reserve(&master, 2);
	if (!cl_server_exchange(&master, &cmd, 1, d))
		return false;
	if (!cl_server_reply_words(&master, 0, role))
		return false;
	cl_server_free_replies(&master);
	return true;
}

/*
 * Connects to the master: coupon_lock.redis_host, or the address the
 * Sentinels give, confirmed with ROLE (a master Sentinel has just named
 * may still be a replica: ask again after a short pause).
 */
static bool
connect_redis(int timeout_ms, bool interruptible)
{
	ClDeadline	d = cl_deadline_in(timeout_ms, true, interruptible);
	bool		sentinel = cl_sentinel_configured();

	for (;;)
	{
		RedisWords	role;

		if (!sentinel)
		{
			strlcpy(master.host, cl_redis_host, sizeof(master.host));
			master.port = cl_redis_port;
		}
		else if (!cl_sentinel_find_master(master.host, sizeof(master.host), &master.port,
										  cl_redis_connect_timeout, interruptible))
		{
			char		detail[sizeof(asker.fail_detail) + 64];

			snprintf(detail, sizeof(detail), "The last Sentinel asked (%s:%d) answered: %s",
					 asker.host, asker.port, asker.fail_detail[0] ? asker.fail_detail : asker.fail_msg);
			return cl_server_fail(&master, ERRCODE_SQLCLIENT_UNABLE_TO_ESTABLISH_SQLCONNECTION, detail,
								  "could not find the Redis master \"%s\" through Sentinel",
								  cl_redis_sentinel_master);
		}
		if (!cl_server_open(&master, &d) ||
			!cl_server_auth_select(&master, cl_redis_password, cl_redis_db, &d))
			return false;
		if (!sentinel)
			break;
		if (!ask_role(&role, &d))
			return false;
		if (role.n > 0 && strcmp(role.word[0], "master") == 0)
			break;
		cl_server_drop(&master);
		if (!pause_within(100, &d))
			return cl_server_fail(&master, ERRCODE_SQLCLIENT_UNABLE_TO_ESTABLISH_SQLCONNECTION,
								  "Sentinel named a server that is not a master.",
								  "could not connect to the Redis master at \"%s:%d\"",
								  master.host, master.port);
	}
	remember_settings();
	return true;
}

/* ---- the entry points ---- */

static bool
run(RedisCmd *cmds, int n, RedisValue *out)
{
	bool		ok = true;
	ClDeadline	d;

	master.exchange_sent = false;
	if (cl_server_usable(&master) && settings_changed())
		cl_server_drop(&master);
	if (master.ctx == NULL && !connect_redis(cl_redis_connect_timeout, true))
	{
		master.exchange_sent = false;	/* AUTH and SELECT ran no command of the caller's */
		return false;
	}
	master.exchange_sent = false;

	cl_server_reserve(&master, n + 1);
	d = cl_deadline_in(cl_redis_command_timeout, false, true);
	master.readonly_seen = false;
	if (!cl_server_exchange(&master, cmds, n, &d))
		return false;
	for (int i = 0; i < n && ok; i++)
		ok = cl_server_reply_value(&master, i, &out[i]);
	cl_server_free_replies(&master);
	/* a master demoted by a failover: find the master again next time */
	if (master.readonly_seen && cl_sentinel_configured())
		cl_server_drop(&master);
	return ok;
}

void
redis_run(RedisCmd *cmds, int ncmds, RedisValue *out)
{
	bool		ok;

	redis_require();
	for (int i = 0; i < ncmds; i++)
		if (cmds[i].script)
			redis_script_prepare(cmds[i].script);

	PG_TRY();
	{
		ok = run(cmds, ncmds, out);
	}
	PG_CATCH();
	{
		drop_all();
		PG_RE_THROW();
	}
	PG_END_TRY();

	if (!ok)
	{
		stats_count(STAT_REDIS, STAT_ERROR);
		ereport(ERROR,
				(errcode(master.fail_code),
				 errmsg_internal("%s", master.fail_msg),
				 master.fail_detail[0] ? errdetail_internal("%s", master.fail_detail) : 0));
	}
}

bool
cl_redis_sent_anything(void)
{
	return master.exchange_sent;
}

void
cl_redis_reserve(int ncmds)
{
	cl_server_reserve(&master, ncmds + 1);
}

void
cl_redis_prepare_xact_end(void)
{
	if (!redis_configured() || cl_server_usable(&master))
		return;
	/* a failure is left for redis_run_quiet to report */
	(void) connect_redis(Min(cl_redis_connect_timeout, CL_REDIS_XACT_END_MAX_MS), false);
}

static RedisQuietResult
quiet_failure(RedisQuietResult result)
{
	stats_count(STAT_REDIS, STAT_ERROR);
	snprintf(quiet_msg, sizeof(quiet_msg), "%s%s%s",
			 master.fail_msg, master.fail_detail[0] ? ": " : "", master.fail_detail);
	return result;
}

RedisQuietResult
redis_run_quiet(RedisCmd *cmds, int ncmds, RedisValue *out)
{
	ClDeadline	d;

	if (!redis_configured())
	{
		cl_server_fail(&master, ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE, NULL, "Redis is not configured");
		return quiet_failure(REDIS_QUIET_NOT_SENT);
	}
	if (!cl_server_usable(&master))
	{
		cl_server_fail(&master, ERRCODE_CONNECTION_FAILURE, "The connection was lost before the transaction ended.",
					   "no connection to Redis at \"%s:%d\"", master.host, master.port);
		return quiet_failure(REDIS_QUIET_NOT_SENT);
	}
	if (master.held_cap < ncmds + 1)
	{
		cl_server_fail(&master, ERRCODE_INTERNAL_ERROR, NULL, "no room reserved for %d Redis replies", ncmds);
		return quiet_failure(REDIS_QUIET_NOT_SENT);
	}
	for (int i = 0; i < ncmds; i++)
		if (cmds[i].script && cmds[i].script->sha1[0] == '\0')
		{
			cl_server_fail(&master, ERRCODE_INTERNAL_ERROR, NULL, "a Redis script was not prepared");
			return quiet_failure(REDIS_QUIET_NOT_SENT);
		}

	d = cl_deadline_in(Min(cl_redis_command_timeout, CL_REDIS_XACT_END_MAX_MS), false, false);
	if (!cl_server_exchange(&master, cmds, ncmds, &d))
		return quiet_failure(master.exchange_sent ? REDIS_QUIET_UNCONFIRMED : REDIS_QUIET_NOT_SENT);
	for (int i = 0; i < ncmds; i++)
	{
		if (!cl_server_reply_value(&master, i, &out[i]))
		{
			cl_server_free_replies(&master);
			return quiet_failure(REDIS_QUIET_UNCONFIRMED);
		}
	}
	cl_server_free_replies(&master);
	return REDIS_QUIET_DONE;
}

const char *
cl_redis_quiet_error(void)
{
	return quiet_msg;
}

#else							/* !USE_HIREDIS */

/*
 * Built without hiredis: the settings exist, the SQL functions exist, and
 * every use of Redis says plainly that support is not built in
 * (redis_require raises 0A000 first).
 */
void
redis_run(RedisCmd *cmds pg_attribute_unused(), int ncmds pg_attribute_unused(),
		  RedisValue *out pg_attribute_unused())
{
	redis_require();
}

RedisQuietResult
redis_run_quiet(RedisCmd *cmds pg_attribute_unused(), int ncmds pg_attribute_unused(),
				RedisValue *out pg_attribute_unused())
{
	return REDIS_QUIET_NOT_SENT;
}

const char *
cl_redis_quiet_error(void)
{
	return "coupon_lock was built without Redis support";
}

void
cl_redis_reserve(int ncmds pg_attribute_unused())
{
}

bool
cl_redis_sent_anything(void)
{
	return false;
}

bool
cl_redis_ask(const char *host pg_attribute_unused(), int port pg_attribute_unused(),
			 int argc pg_attribute_unused(), const char **argv pg_attribute_unused(),
			 RedisWords *w pg_attribute_unused(), int timeout_ms pg_attribute_unused(),
			 bool interruptible pg_attribute_unused())
{
	redis_require();
	return false;
}

void
cl_redis_prepare_xact_end(void)
{
}

#endif							/* USE_HIREDIS */
