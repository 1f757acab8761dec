/*-------------------------------------------------------------------------
 *
 * redis_lock.c
 *	  Locks held in Redis: redis_lock, redis_unlock, redis_extend and
 *	  redis_xact_lock.
 *
 * The Redis key of lock key k is coupon_lock.redis_key_prefix || k, its
 * value the holder's token (32 hex digits from pg_strong_random), its TTL
 * the ttl asked for.  Any process that follows the same layout takes the
 * same lock (docs/redis.md).
 *
 * Concurrency rules.  Redis decides who holds a key, in one atomic
 * command each: taking is SET key token NX PX ttl; releasing and extending
 * are Lua scripts that compare the key's value with the caller's token
 * before they DEL or PEXPIRE, so a holder whose key expired and was taken
 * by someone else can never delete or extend the new holder's key.  A
 * wait retries SET NX with exponential backoff and jitter (so waiters do
 * not retry in step), sleeping on the process latch: a query cancel or
 * statement_timeout ends the wait at once.  Waiters are not queued: who
 * gets a released key first is chance.
 *
 * Transaction scope.  redis_xact_lock remembers each key it took in a list
 * that belongs to the (sub)transaction that took it.  The key is deleted
 * (compare-on-token) when that transaction commits or aborts, including
 * an abort by an error, and when a subtransaction that took it aborts.
 * Commit and abort callbacks may not raise: they run the deletes through
 * redis_run_quiet, all as one pipeline bounded by the command timeout, and
 * a failure is a WARNING (the keys then expire with their TTL).  Commit
 * releases after the commit record is written, so an outside holder that
 * gets the key next sees the transaction's writes.  PREPARE TRANSACTION is
 * refused while keys are held: a prepared transaction has no backend left
 * to release them.  Taking a key this transaction already holds returns
 * its token again (reentrant, like advisory_xact_lock).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "common/pg_prng.h"
#include "miscadmin.h"
#include "storage/latch.h"
#include "utils/builtins.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"
#include "utils/wait_event.h"

#include "coupon_lock.h"
#include "guc.h"
#include "redis_conn.h"
#include "redis_lock.h"
#include "stats.h"

PG_FUNCTION_INFO_V1(coupon_lock_redis_lock);
PG_FUNCTION_INFO_V1(coupon_lock_redis_unlock);
PG_FUNCTION_INFO_V1(coupon_lock_redis_extend);
PG_FUNCTION_INFO_V1(coupon_lock_redis_xact_lock);

#define TOKEN_BYTES		16
#define TOKEN_LEN		(2 * TOKEN_BYTES)

/* Backoff between tries of a wait: doubles from MIN to MAX, with jitter. */
#define BACKOFF_MIN_MS	2
#define BACKOFF_MAX_MS	100

/* KEYS[1] the key, ARGV[1] the token: delete only while it holds the token. */
static RedisScript release_script = {
	"if redis.call('get', KEYS[1]) == ARGV[1] then "
	"return redis.call('del', KEYS[1]) else return 0 end", {0}
};

/* ARGV[2] the new ttl in ms: extend only while the key holds the token. */
static RedisScript extend_script = {
	"if redis.call('get', KEYS[1]) == ARGV[1] then "
	"return redis.call('pexpire', KEYS[1], ARGV[2]) else return 0 end", {0}
};

/* A key held until the end of the (sub)transaction that took it. */
typedef struct HeldKey
{
	struct HeldKey *next;
	SubTransactionId subid;
	char	   *rkey;			/* prefix || key */
	int			rkeylen;
	char		token[TOKEN_LEN + 1];
} HeldKey;

/* Newest first; entries live in TopTransactionContext. */
static HeldKey *held_keys = NULL;

/* ---- building commands ---- */

static void
set_arg(RedisCmd *cmd, const char *s, size_t len)
{
	cmd->argv[cmd->argc] = s;
	cmd->argvlen[cmd->argc] = len;
	cmd->argc++;
}

static void
set_str(RedisCmd *cmd, const char *s)
{
	set_arg(cmd, s, strlen(s));
}

/* prefix || key, palloc'd in the current context. */
static char *
redis_key(const char *key, int keylen, int *rkeylen)
{
	int			plen = strlen(cl_redis_key_prefix);
	char	   *rkey = palloc(plen + keylen + 1);

	memcpy(rkey, cl_redis_key_prefix, plen);
	memcpy(rkey + plen, key, keylen);
	rkey[plen + keylen] = '\0';
	*rkeylen = plen + keylen;
	return rkey;
}

/* The compare-on-token script call for rkey and token (extend: ms_arg). */
static void
script_cmd(RedisCmd *cmd, RedisScript *script, const char *rkey, int rkeylen,
		   const char *token, int tokenlen, const char *ms_arg)
{
	memset(cmd, 0, sizeof(*cmd));
	cmd->script = script;
	set_str(cmd, "1");
	set_arg(cmd, rkey, rkeylen);
	set_arg(cmd, token, tokenlen);
	if (ms_arg)
		set_str(cmd, ms_arg);
}

static bool
integer_reply(const RedisValue *v)
{
	if (v->kind != RV_INTEGER)
		ereport(ERROR,
				(errcode(ERRCODE_PROTOCOL_VIOLATION),
				 errmsg("unexpected reply from Redis to a lock script")));
	return v->integer == 1;
}

static void
make_token(char *token)
{
	uint8		bytes[TOKEN_BYTES];

	if (!pg_strong_random(bytes, sizeof(bytes)))
		ereport(ERROR,
				(errcode(ERRCODE_SYSTEM_ERROR),
				 errmsg("could not generate a random lock token")));
	for (int i = 0; i < TOKEN_BYTES; i++)
		snprintf(token + 2 * i, 3, "%02x", bytes[i]);
}

/* ---- the transaction's keys ---- */

static HeldKey *
find_held(const char *rkey, int rkeylen)
{
	for (HeldKey *h = held_keys; h; h = h->next)
		if (h->rkeylen == rkeylen && memcmp(h->rkey, rkey, rkeylen) == 0)
			return h;
	return NULL;
}

static void
forget_held(HeldKey *gone)
{
	for (HeldKey **p = &held_keys; *p; p = &(*p)->next)
	{
		if (*p == gone)
		{
			*p = gone->next;
			pfree(gone->rkey);
			pfree(gone);
			return;
		}
	}
}

/*
 * Deletes the keys of the list (at transaction end: never raises).  The
 * list is detached by the caller first, so nothing is released twice.
 */
static void
release_list(HeldKey *list)
{
	int			n = 0;
	int			i = 0;
	RedisCmd   *cmds;
	RedisValue *out;
	char	   *err;

	for (HeldKey *h = list; h; h = h->next)
		n++;
	if (n == 0)
		return;
	cmds = palloc(sizeof(RedisCmd) * n);
	out = palloc(sizeof(RedisValue) * n);
	for (HeldKey *h = list; h; h = h->next, i++)
		script_cmd(&cmds[i], &release_script, h->rkey, h->rkeylen, h->token, TOKEN_LEN, NULL);

	if (redis_run_quiet(cmds, n, out, &err))
	{
		for (i = 0; i < n; i++)
			stats_count(STAT_REDIS, STAT_RELEASED);
	}
	else
	{
		ereport(WARNING,
				(errcode(ERRCODE_CONNECTION_FAILURE),
				 errmsg_plural("could not release %d Redis lock at transaction end",
							   "could not release %d Redis locks at transaction end", n, n),
				 errdetail_internal("%s", err),
				 errhint("They expire when their TTL runs out.")));
	}
	pfree(cmds);
	pfree(out);
}

static void
redis_xact_callback(XactEvent event, void *arg pg_attribute_unused())
{
	HeldKey    *list = held_keys;

	switch (event)
	{
		case XACT_EVENT_PRE_PREPARE:
			if (held_keys)
				ereport(ERROR,
						(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
						 errmsg("cannot PREPARE a transaction that holds Redis locks"),
						 errdetail("Redis locks are released by the backend when its transaction ends.")));
			break;
		case XACT_EVENT_COMMIT:
		case XACT_EVENT_PARALLEL_COMMIT:
		case XACT_EVENT_ABORT:
		case XACT_EVENT_PARALLEL_ABORT:
			/* detach first: the list's memory goes with the transaction */
			held_keys = NULL;
			release_list(list);
			break;
		default:
			break;
	}
}

static void
redis_subxact_callback(SubXactEvent event, SubTransactionId mySubid,
					   SubTransactionId parentSubid, void *arg pg_attribute_unused())
{
	HeldKey    *aborted = NULL;

	switch (event)
	{
		case SUBXACT_EVENT_COMMIT_SUB:
			for (HeldKey *h = held_keys; h; h = h->next)
				if (h->subid == mySubid)
					h->subid = parentSubid;
			break;
		case SUBXACT_EVENT_ABORT_SUB:
			/* move the subtransaction's keys to a list of their own */
			for (HeldKey **p = &held_keys; *p;)
			{
				HeldKey    *h = *p;

				if (h->subid == mySubid)
				{
					*p = h->next;
					h->next = aborted;
					aborted = h;
				}
				else
					p = &h->next;
			}
			release_list(aborted);
			break;
		default:
			break;
	}
}

void
RedisLockInit(void)
{
	RegisterXactCallback(redis_xact_callback, NULL);
	RegisterSubXactCallback(redis_subxact_callback, NULL);
}

/* ---- taking and releasing ---- */

/* Sleeps for about ms (with jitter), waking up for interrupts. */
static void
backoff_sleep(long ms)
{
	long		nap = ms / 2 + (long) pg_prng_uint64_range(&pg_global_prng_state, 0, ms - ms / 2);

	(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
					 Max(nap, 1), PG_WAIT_EXTENSION);
	ResetLatch(MyLatch);
	CHECK_FOR_INTERRUPTS();
}

char *
redis_acquire(const char *key, int keylen, int64 ttl_ms, int64 wait_ms, bool xact)
{
	int			rkeylen;
	char	   *rkey = redis_key(key, keylen, &rkeylen);
	HeldKey    *h = NULL;
	char		token[TOKEN_LEN + 1];
	char		px[32];
	RedisCmd	cmd;
	RedisValue	v;
	TimestampTz deadline = 0;
	long		backoff = BACKOFF_MIN_MS;
	bool		waited = false;

	redis_require();
	if (xact && (h = find_held(rkey, rkeylen)) != NULL)
		return pstrdup(h->token);

	make_token(token);
	snprintf(px, sizeof(px), INT64_FORMAT, ttl_ms);
	memset(&cmd, 0, sizeof(cmd));
	set_str(&cmd, "SET");
	set_arg(&cmd, rkey, rkeylen);
	set_arg(&cmd, token, TOKEN_LEN);
	set_str(&cmd, "NX");
	set_str(&cmd, "PX");
	set_str(&cmd, px);

	if (xact)
	{
		/* everything the list needs is allocated before the key is taken */
		redis_script_prepare(&release_script);
		h = MemoryContextAllocZero(TopTransactionContext, sizeof(HeldKey));
		h->rkey = MemoryContextAlloc(TopTransactionContext, rkeylen);
		memcpy(h->rkey, rkey, rkeylen);
		h->rkeylen = rkeylen;
		memcpy(h->token, token, sizeof(token));
		h->subid = GetCurrentSubTransactionId();
	}
	if (wait_ms > 0)
		deadline = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), wait_ms);

	for (;;)
	{
		long		remaining;

		redis_run(&cmd, 1, &v);
		if (v.kind == RV_OK)
			break;
		if (v.kind != RV_NIL)
			ereport(ERROR,
					(errcode(ERRCODE_PROTOCOL_VIOLATION),
					 errmsg("unexpected reply from Redis to SET")));
		if (wait_ms == 0)
			remaining = 0;
		else if (wait_ms < 0)
			remaining = BACKOFF_MAX_MS;
		else
			remaining = TimestampDifferenceMilliseconds(GetCurrentTimestamp(), deadline);
		if (remaining <= 0)
		{
			if (h)
			{
				pfree(h->rkey);
				pfree(h);
			}
			stats_count(STAT_REDIS, STAT_TIMED_OUT);
			return NULL;
		}
		if (!waited)
			stats_count(STAT_REDIS, STAT_WAITED);
		waited = true;
		backoff_sleep(Min(backoff, remaining));
		backoff = Min(backoff * 2, BACKOFF_MAX_MS);
	}

	if (h)
	{
		h->next = held_keys;
		held_keys = h;
	}
	stats_count(STAT_REDIS, STAT_ACQUIRED);
	return pstrdup(token);
}

bool
redis_release(const char *key, int keylen, const char *token, int tokenlen)
{
	int			rkeylen;
	char	   *rkey = redis_key(key, keylen, &rkeylen);
	HeldKey    *h;
	RedisCmd	cmd;
	RedisValue	v;

	script_cmd(&cmd, &release_script, rkey, rkeylen, token, tokenlen, NULL);
	redis_run(&cmd, 1, &v);
	if (!integer_reply(&v))
		return false;

	/* a transaction's key released by hand is no longer the transaction's */
	h = find_held(rkey, rkeylen);
	if (h && tokenlen == TOKEN_LEN && memcmp(h->token, token, TOKEN_LEN) == 0)
		forget_held(h);
	stats_count(STAT_REDIS, STAT_RELEASED);
	return true;
}

/* ---- SQL entry points ---- */

static Datum
redis_lock_common(FunctionCallInfo fcinfo, bool xact)
{
	char	   *key;
	int64		ttl_ms;
	int64		wait_ms;
	char	   *token;

	redis_require();
	key = cl_arg_id(fcinfo, 0, "key");
	ttl_ms = cl_arg_ttl_ms(fcinfo, 1, "ttl");
	wait_ms = cl_arg_wait_ms(fcinfo, 2, "wait");

	token = redis_acquire(key, strlen(key), ttl_ms, wait_ms, xact);
	if (token == NULL)
		PG_RETURN_NULL();
	PG_RETURN_TEXT_P(cstring_to_text(token));
}

Datum
coupon_lock_redis_lock(PG_FUNCTION_ARGS)
{
	return redis_lock_common(fcinfo, false);
}

Datum
coupon_lock_redis_xact_lock(PG_FUNCTION_ARGS)
{
	return redis_lock_common(fcinfo, true);
}

Datum
coupon_lock_redis_unlock(PG_FUNCTION_ARGS)
{
	char	   *key;
	char	   *token;

	redis_require();
	key = cl_arg_id(fcinfo, 0, "key");
	token = cl_arg_id(fcinfo, 1, "token");
	PG_RETURN_BOOL(redis_release(key, strlen(key), token, strlen(token)));
}

Datum
coupon_lock_redis_extend(PG_FUNCTION_ARGS)
{
	char	   *key;
	char	   *token;
	int64		ttl_ms;
	int			rkeylen;
	char	   *rkey;
	char		px[32];
	RedisCmd	cmd;
	RedisValue	v;

	redis_require();
	key = cl_arg_id(fcinfo, 0, "key");
	token = cl_arg_id(fcinfo, 1, "token");
	ttl_ms = cl_arg_ttl_ms(fcinfo, 2, "ttl");

	rkey = redis_key(key, strlen(key), &rkeylen);
	snprintf(px, sizeof(px), INT64_FORMAT, ttl_ms);
	script_cmd(&cmd, &extend_script, rkey, rkeylen, token, strlen(token), px);
	redis_run(&cmd, 1, &v);
	PG_RETURN_BOOL(integer_reply(&v));
}
