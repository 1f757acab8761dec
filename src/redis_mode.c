/*-------------------------------------------------------------------------
 *
 * redis_mode.c
 *	  The lock operations of redis_lock.c on one Redis master (redis_conn.c:
 *	  coupon_lock.redis_host, or the master Sentinel names) or on Redlock's
 *	  masters (redlock.c, when coupon_lock.redlock_servers is set).
 *
 * Concurrency rules.  Nothing here holds state: the mode is read from the
 * settings at every call, so a session that changes
 * coupon_lock.redlock_servers takes its next lock in the new mode.  Keys
 * a transaction holds are released at its end in the mode the end finds
 * (the settings are superuser-only and normally set for the whole server).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "guc.h"
#include "redis_conn.h"
#include "redis_mode.h"
#include "redlock.h"

/* The value of a one-server script call that compares the token: 1 or 0. */
static bool
script_answered_one(const RedisCmd *cmd)
{
	RedisValue	v;

	redis_run((RedisCmd *) cmd, 1, &v);
	if (v.kind != RV_INTEGER)
		ereport(ERROR,
				(errcode(ERRCODE_PROTOCOL_VIOLATION),
				 errmsg("unexpected reply from Redis to a lock script")));
	return v.integer == 1;
}

bool
cl_mode_take(const RedisCmd *set, const RedisCmd *release, int64 ttl_ms)
{
	RedisValue	v;

	if (cl_redlock_configured())
		return cl_redlock_acquire(set, release, ttl_ms);
	redis_run((RedisCmd *) set, 1, &v);
	if (v.kind == RV_OK)
		return true;
	if (v.kind != RV_NIL)
		ereport(ERROR,
				(errcode(ERRCODE_PROTOCOL_VIOLATION),
				 errmsg("unexpected reply from Redis to SET")));
	return false;
}

bool
cl_mode_sent_anything(void)
{
	/* Redlock: some server may have it, and the end releases it everywhere */
	return cl_redlock_configured() || cl_redis_sent_anything();
}

/*
 * WAIT n (its own command: WAIT does not block inside a script) for the
 * write just made, within half the command timeout.  Redlock's majority is
 * its acknowledgement: no WAIT there.
 */
bool
cl_mode_acknowledged(const RedisCmd *release)
{
	char		n[16];
	char		ms[16];
	RedisCmd	cmd;
	RedisValue	v;

	if (cl_redis_min_replicas <= 0 || cl_redlock_configured())
		return true;
	snprintf(n, sizeof(n), "%d", cl_redis_min_replicas);
	snprintf(ms, sizeof(ms), "%d", Max(1, cl_redis_command_timeout / 2));
	memset(&cmd, 0, sizeof(cmd));
	cmd.argc = 3;
	cmd.argv[0] = "WAIT";
	cmd.argv[1] = n;
	cmd.argv[2] = ms;
	for (int i = 0; i < 3; i++)
		cmd.argvlen[i] = strlen(cmd.argv[i]);
	redis_run(&cmd, 1, &v);
	if (v.kind == RV_INTEGER && v.integer >= cl_redis_min_replicas)
		return true;
	redis_run((RedisCmd *) release, 1, &v);
	return false;
}

bool
cl_mode_release(const RedisCmd *release)
{
	if (cl_redlock_configured())
		return cl_redlock_release(release);
	return script_answered_one(release);
}

bool
cl_mode_extend(const char *rkey, int rkeylen, const char *token, int tokenlen, int64 ttl_ms,
			   const RedisCmd *extend, const RedisCmd *release)
{
	if (cl_redlock_configured())
		return cl_redlock_extend(rkey, rkeylen, token, tokenlen, ttl_ms, release);
	return script_answered_one(extend);
}

void
cl_mode_release_all(RedisCmd *cmds, int n, RedisValue *out)
{
	if (!cl_redlock_configured())
	{
		redis_run(cmds, n, out);	/* one pipeline */
		return;
	}
	/* each on every server; fewer than a majority answering raises */
	for (int i = 0; i < n; i++)
		(void) cl_redlock_release(&cmds[i]);
}

void
cl_mode_reserve(int ncmds)
{
	cl_redis_reserve(ncmds);
	if (cl_redlock_configured())
		cl_redlock_reserve(ncmds);
}

void
cl_mode_prepare_xact_end(void)
{
	if (cl_redlock_configured())
		cl_redlock_prepare_xact_end();
	else
		cl_redis_prepare_xact_end();
}

RedisQuietResult
cl_mode_run_quiet(RedisCmd *cmds, int ncmds, RedisValue *out)
{
	if (cl_redlock_configured())
		return cl_redlock_run_quiet(cmds, ncmds, out);
	return redis_run_quiet(cmds, ncmds, out);
}

const char *
cl_mode_quiet_error(void)
{
	return cl_redlock_configured() ? cl_redlock_quiet_error() : cl_redis_quiet_error();
}
