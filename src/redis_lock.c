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
 * Which servers hold a key is redis_mode.c's business: one master
 * (coupon_lock.redis_host or Sentinel's), or a majority of Redlock's
 * (coupon_lock.redlock_servers); this file does not know which.
 *
 * Concurrency rules.  Redis decides who holds a key, in one atomic
 * command each (on each server): taking is SET key token NX PX ttl; releasing and extending
 * are Lua scripts that compare the key's value with the caller's token
 * before they DEL or PEXPIRE, so a holder whose key expired and was taken
 * by someone else can never delete or extend the new holder's key.  A
 * wait retries SET NX with exponential backoff and jitter (so waiters do
 * not retry in step), sleeping on the process latch: a query cancel or
 * statement_timeout ends the wait at once.  Waiters are not queued: who
 * gets a released key first is chance.
 *
 * Transaction scope.  Every key redis_xact_lock takes is remembered with
 * the (sub)transaction that took it, in a hash table (the lookup of a key
 * the transaction may already hold costs the same at the 100,000th key as
 * at the first) and a list ordered newest first, in which a
 * subtransaction's keys are always a prefix: a subtransaction's commit or
 * abort walks only its own keys.  The key is deleted (compare-on-token)
 * when that transaction commits or aborts, including an abort by an
 * error, and when a subtransaction that took it aborts.  Commit releases
 * after the commit record is written, so an outside holder that gets the
 * key next sees the transaction's writes.
 *
 * A key is remembered *before* its SET NX is sent, marked pending: when
 * the reply is lost (a timeout, a cancel, statement_timeout while Redis is
 * paused) the SET may still run later, and the transaction-end
 * compare-and-delete removes the key it left.  redis_lock (session scope)
 * remembers its key the same way until the reply says it was taken; from
 * then on the key is the caller's.
 *
 * The commit and abort callbacks cannot fail (an ERROR at commit is a
 * PANIC): everything they use is allocated while failing is still allowed
 * (the command array grows with the keys, the reply room is reserved with
 * redis_reserve, the scripts' SHA1s are computed at acquire), and
 * redis_run_quiet neither connects nor allocates.  Keys that could not be
 * released (no connection, or Redis did not confirm) stay in a backlog
 * and are deleted, compare-on-token, before this backend's next Redis
 * command; meanwhile their TTL bounds them.  The WARNING says which of the
 * two happened.
 *
 * A lock can be lost before the transaction ends: its TTL ran out and
 * someone else may have taken the key.  The transaction-end release finds
 * the key no longer holding the token; that is a WARNING naming the key
 * and counts as lost (lock_stats.lost), not as released.  Taking a key the
 * transaction already holds asks Redis (the compare-on-token extend, with
 * the new ttl): still ours, the same token comes back; lost (counted, with
 * a WARNING), it is taken afresh like a new key.  PREPARE TRANSACTION is
 * refused while keys are held: a prepared transaction has no backend left
 * to release them.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "common/hashfn.h"
#include "common/pg_prng.h"
#include "lib/ilist.h"
#include "miscadmin.h"
#include "storage/latch.h"
#include "utils/builtins.h"
#include "utils/hsearch.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"
#include "utils/wait_event.h"

#include "coupon_lock.h"
#include "guc.h"
#include "redis_conn.h"
#include "redis_lock.h"
#include "redis_mode.h"
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

/*
 * A key remembered for the end of the (sub)transaction that took it, or
 * for the backlog of keys a transaction end could not release.
 */
typedef struct HeldKey
{
	dlist_node	node;
	SubTransactionId subid;
	bool		pending;		/* SET NX sent, no reply seen yet */
	char		token[TOKEN_LEN + 1];
	int			rkeylen;
	char		rkey[FLEXIBLE_ARRAY_MEMBER];	/* prefix || key */
} HeldKey;

/* The hash table's view of a key: its bytes. */
typedef struct KeyRef
{
	const char *ptr;
	int			len;
} KeyRef;

typedef struct HeldEntry
{
	KeyRef		key;			/* points into h->rkey */
	HeldKey    *h;
} HeldEntry;

/* Most keys the backlog keeps; older ones are left to their TTL. */
#define BACKLOG_MAX		1024

static MemoryContext keys_cxt = NULL;
static HTAB *held_hash = NULL;
static dlist_head held_list = DLIST_STATIC_INIT(held_list);	/* newest first */
static int	nheld_keys = 0;
static dlist_head backlog = DLIST_STATIC_INIT(backlog);
static int	nbacklog = 0;

/* Preallocated for the transaction end: room for every held key. */
static RedisCmd *end_cmds = NULL;
static RedisValue *end_out = NULL;
static HeldKey **end_keys = NULL;
static int	end_cap = 0;

static uint32
keyref_hash(const void *key, Size keysize pg_attribute_unused())
{
	const KeyRef *k = key;

	return hash_bytes((const unsigned char *) k->ptr, k->len);
}

static int
keyref_match(const void *key1, const void *key2, Size keysize pg_attribute_unused())
{
	const KeyRef *a = key1;
	const KeyRef *b = key2;

	return a->len == b->len && memcmp(a->ptr, b->ptr, a->len) == 0 ? 0 : 1;
}

static void
ensure_tables(void)
{
	HASHCTL		ctl;

	if (keys_cxt == NULL)
		keys_cxt = AllocSetContextCreate(TopMemoryContext, "coupon_lock Redis keys",
										 ALLOCSET_DEFAULT_SIZES);
	if (held_hash != NULL)
		return;
	ctl.keysize = sizeof(KeyRef);
	ctl.entrysize = sizeof(HeldEntry);
	ctl.hash = keyref_hash;
	ctl.match = keyref_match;
	ctl.hcxt = keys_cxt;
	held_hash = hash_create("coupon_lock held Redis keys", 64, &ctl,
							HASH_ELEM | HASH_FUNCTION | HASH_COMPARE | HASH_CONTEXT);
}

/* Grows what the transaction end needs to release n keys. */
static void
reserve_end(int n)
{
	if (n > end_cap)
	{
		int			cap = Max(n, Max(16, end_cap * 2));

		if (end_cmds)
		{
			pfree(end_cmds);
			pfree(end_out);
			pfree(end_keys);
		}
		end_cmds = MemoryContextAlloc(keys_cxt, sizeof(RedisCmd) * cap);
		end_out = MemoryContextAlloc(keys_cxt, sizeof(RedisValue) * cap);
		end_keys = MemoryContextAlloc(keys_cxt, sizeof(HeldKey *) * cap);
		end_cap = cap;
	}
	cl_mode_reserve(n);
}

static HeldKey *
find_held(const char *rkey, int rkeylen)
{
	KeyRef		k = {rkey, rkeylen};
	HeldEntry  *e;

	if (held_hash == NULL)
		return NULL;
	e = hash_search(held_hash, &k, HASH_FIND, NULL);
	return e ? e->h : NULL;
}

/*
 * Remembers rkey for the current subtransaction, pending, with a fresh
 * token: everything the transaction end needs is allocated here.
 */
static HeldKey *
remember_held(const char *rkey, int rkeylen)
{
	HeldKey    *h;
	HeldEntry  *e;
	bool		found;

	ensure_tables();
	redis_script_prepare(&release_script);
	reserve_end(nheld_keys + 1);
	h = MemoryContextAllocZero(keys_cxt, offsetof(HeldKey, rkey) + rkeylen + 1);
	memcpy(h->rkey, rkey, rkeylen);
	h->rkeylen = rkeylen;
	h->subid = GetCurrentSubTransactionId();
	h->pending = true;
	make_token(h->token);

	e = hash_search(held_hash, &(KeyRef) {h->rkey, rkeylen}, HASH_ENTER, &found);
	Assert(!found);
	e->key.ptr = h->rkey;		/* the entry's key must outlive the caller's */
	e->h = h;
	dlist_push_head(&held_list, &h->node);
	nheld_keys++;
	return h;
}

/* Takes h off the held list and the hash table (no allocation, no error). */
static void
unlink_held(HeldKey *h)
{
	KeyRef		k = {h->rkey, h->rkeylen};

	(void) hash_search(held_hash, &k, HASH_REMOVE, NULL);
	dlist_delete(&h->node);
	nheld_keys--;
}

static void
forget_held(HeldKey *h)
{
	unlink_held(h);
	pfree(h);
}

static void
release_cmd(RedisCmd *cmd, const HeldKey *h)
{
	script_cmd(cmd, &release_script, h->rkey, h->rkeylen, h->token, TOKEN_LEN, NULL);
}

static void
warn_lost(const HeldKey *h)
{
	stats_count(STAT_REDIS, STAT_LOST);
	ereport(WARNING,
			(errcode(ERRCODE_LOCK_NOT_AVAILABLE),
			 errmsg("Redis lock \"%.*s\" was lost before the transaction ended", h->rkeylen, h->rkey),
			 errdetail("The key no longer held this transaction's token: its TTL ran out, and another holder may have taken it."),
			 errhint("Choose a ttl longer than the transaction, or extend the lock with redis_extend.")));
}

/* Keys the transaction end could not release go to the backlog. */
static void
to_backlog(HeldKey **keys, int n)
{
	for (int i = 0; i < n; i++)
	{
		unlink_held(keys[i]);
		dlist_push_head(&backlog, &keys[i]->node);
		nbacklog++;
	}
	while (nbacklog > BACKLOG_MAX)
	{
		dlist_node *oldest = dlist_tail_node(&backlog);

		dlist_delete(oldest);
		pfree(dlist_container(HeldKey, node, oldest));
		nbacklog--;
	}
}

/*
 * Deletes keys[0..n-1] (compare-on-token) at the end of their
 * (sub)transaction.  Never raises: see the header comment.
 */
static void
release_at_end(HeldKey **keys, int n)
{
	RedisQuietResult res;
	int			nlost = 0;

	if (n == 0)
		return;
	for (int i = 0; i < n; i++)
		release_cmd(&end_cmds[i], keys[i]);

	res = cl_mode_run_quiet(end_cmds, n, end_out);
	if (res == REDIS_QUIET_DONE)
	{
		for (int i = 0; i < n; i++)
		{
			bool		deleted = end_out[i].kind == RV_INTEGER && end_out[i].integer == 1;

			if (deleted && !keys[i]->pending)
				stats_count(STAT_REDIS, STAT_RELEASED);
			else if (!deleted && !keys[i]->pending && nlost++ < 5)
				warn_lost(keys[i]);
			else if (!deleted && !keys[i]->pending)
				stats_count(STAT_REDIS, STAT_LOST);
			forget_held(keys[i]);
		}
		if (nlost > 5)
			ereport(WARNING,
					(errcode(ERRCODE_LOCK_NOT_AVAILABLE),
					 errmsg("%d more Redis locks were lost before the transaction ended", nlost - 5)));
		return;
	}

	if (res == REDIS_QUIET_NOT_SENT)
		ereport(WARNING,
				(errcode(ERRCODE_CONNECTION_FAILURE),
				 errmsg_plural("could not release %d Redis lock at transaction end",
							   "could not release %d Redis locks at transaction end", n, n),
				 errdetail_internal("%s", cl_mode_quiet_error()),
				 errhint("They are deleted before this session's next Redis command, or expire when their TTL runs out.")));
	else
		ereport(WARNING,
				(errcode(ERRCODE_CONNECTION_FAILURE),
				 errmsg_plural("could not confirm the release of %d Redis lock at transaction end",
							   "could not confirm the release of %d Redis locks at transaction end", n, n),
				 errdetail_internal("%s", cl_mode_quiet_error()),
				 errhint("Redis may have deleted them; any it did not are deleted before this session's next Redis command, or expire when their TTL runs out.")));
	to_backlog(keys, n);
}

/*
 * Deletes the backlog's keys (compare-on-token) before a new command:
 * outside the transaction end, so this may raise.
 */
static void
flush_backlog(void)
{
	RedisCmd   *cmds;
	RedisValue *out;
	int			i = 0;
	dlist_mutable_iter it;

	if (nbacklog == 0)
		return;
	cmds = palloc(sizeof(RedisCmd) * nbacklog);
	out = palloc(sizeof(RedisValue) * nbacklog);
	dlist_foreach_modify(it, &backlog)
		release_cmd(&cmds[i++], dlist_container(HeldKey, node, it.cur));
	cl_mode_release_all(cmds, nbacklog, out);
	dlist_foreach_modify(it, &backlog)
	{
		dlist_delete(it.cur);
		pfree(dlist_container(HeldKey, node, it.cur));
	}
	nbacklog = 0;
	pfree(cmds);
	pfree(out);
}

/* The keys of subtransaction subid and its committed children: a prefix. */
static int
gather_sub(SubTransactionId subid)
{
	int			n = 0;
	dlist_iter	it;

	dlist_foreach(it, &held_list)
	{
		HeldKey    *h = dlist_container(HeldKey, node, it.cur);

		if (h->subid < subid)
			break;
		end_keys[n++] = h;
	}
	return n;
}

static void
end_of_transaction(void)
{
	int			n = 0;
	dlist_iter	it;

	dlist_foreach(it, &held_list)
		end_keys[n++] = dlist_container(HeldKey, node, it.cur);
	release_at_end(end_keys, n);
	/* a table grown by bulk work is given back (no allocation) */
	if (n > 1024 && held_hash != NULL && nheld_keys == 0)
	{
		hash_destroy(held_hash);
		held_hash = NULL;
	}
}

static void
redis_xact_callback(XactEvent event, void *arg pg_attribute_unused())
{
	switch (event)
	{
		case XACT_EVENT_PRE_PREPARE:
			if (nheld_keys > 0)
				ereport(ERROR,
						(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
						 errmsg("cannot PREPARE a transaction that holds Redis locks"),
						 errdetail("Redis locks are released by the backend when its transaction ends.")));
			break;
		case XACT_EVENT_PRE_COMMIT:
		case XACT_EVENT_PARALLEL_PRE_COMMIT:
			if (nheld_keys > 0)
				cl_mode_prepare_xact_end();
			break;
		case XACT_EVENT_COMMIT:
		case XACT_EVENT_PARALLEL_COMMIT:
		case XACT_EVENT_ABORT:
		case XACT_EVENT_PARALLEL_ABORT:
			if (nheld_keys > 0)
				end_of_transaction();
			break;
		default:
			break;
	}
}

static void
redis_subxact_callback(SubXactEvent event, SubTransactionId mySubid,
					   SubTransactionId parentSubid, void *arg pg_attribute_unused())
{
	int			n;

	if (nheld_keys == 0)
		return;
	switch (event)
	{
		case SUBXACT_EVENT_COMMIT_SUB:
			n = gather_sub(mySubid);
			for (int i = 0; i < n; i++)
				end_keys[i]->subid = parentSubid;
			break;
		case SUBXACT_EVENT_ABORT_SUB:
			release_at_end(end_keys, gather_sub(mySubid));
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

/* The compare-on-token extend, acknowledged by redis_min_replicas replicas. */
static bool
extend_acked(const char *rkey, int rkeylen, const char *token, int tokenlen, int64 ttl_ms);

/*
 * Sends h's SET NX (redis_mode.c: to one server or Redlock's); true when
 * taken.  Forgets h when the command never reached Redis.
 */
static bool
send_set(HeldKey *h, RedisCmd *cmd, int64 ttl_ms)
{
	RedisCmd	rel;
	bool		taken = false;

	release_cmd(&rel, h);
	PG_TRY();
	{
		taken = cl_mode_take(cmd, &rel, ttl_ms);
	}
	PG_CATCH();
	{
		if (!cl_mode_sent_anything())
			forget_held(h);
		PG_RE_THROW();
	}
	PG_END_TRY();
	return taken;
}

/*
 * SET NX PX for h, retrying until wait_ms ran out.  True when taken.  A
 * failure raises with h still pending, unless the command never reached
 * Redis.
 */
static bool
take_key(HeldKey *h, int64 ttl_ms, int64 wait_ms)
{
	char		px[32];
	RedisCmd	cmd;
	RedisCmd	rel;
	TimestampTz deadline = 0;
	long		backoff = BACKOFF_MIN_MS;
	bool		waited = false;

	snprintf(px, sizeof(px), INT64_FORMAT, ttl_ms);
	memset(&cmd, 0, sizeof(cmd));
	set_str(&cmd, "SET");
	set_arg(&cmd, h->rkey, h->rkeylen);
	set_arg(&cmd, h->token, TOKEN_LEN);
	set_str(&cmd, "NX");
	set_str(&cmd, "PX");
	set_str(&cmd, px);
	if (wait_ms > 0)
		deadline = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), wait_ms);

	for (;;)
	{
		long		remaining;

		if (send_set(h, &cmd, ttl_ms))
			break;
		if (wait_ms == 0)
			remaining = 0;
		else if (wait_ms < 0)
			remaining = BACKOFF_MAX_MS;
		else
			remaining = TimestampDifferenceMilliseconds(GetCurrentTimestamp(), deadline);
		if (remaining <= 0)
		{
			stats_count(STAT_REDIS, STAT_TIMED_OUT);
			return false;
		}
		if (!waited)
			stats_count(STAT_REDIS, STAT_WAITED);
		waited = true;
		backoff_sleep(Min(backoff, remaining));
		backoff = Min(backoff * 2, BACKOFF_MAX_MS);
	}
	release_cmd(&rel, h);
	if (!cl_mode_acknowledged(&rel))
	{
		stats_count(STAT_REDIS, STAT_TIMED_OUT);
		return false;
	}
	h->pending = false;
	stats_count(STAT_REDIS, STAT_ACQUIRED);
	return true;
}

char *
redis_acquire(const char *key, int keylen, int64 ttl_ms, int64 wait_ms, bool xact)
{
	int			rkeylen;
	char	   *rkey = redis_key(key, keylen, &rkeylen);
	HeldKey    *h;
	char	   *token;

	redis_require();
	flush_backlog();

	/* a key this transaction holds: still ours (with the new ttl)? */
	h = find_held(rkey, rkeylen);
	if (h != NULL && !xact)
	{
		/* held in transaction scope: no session lock until it ends */
		stats_count(STAT_REDIS, STAT_TIMED_OUT);
		return NULL;
	}
	if (h != NULL)
	{
		if (xact && extend_acked(rkey, rkeylen, h->token, TOKEN_LEN, ttl_ms))
			return pstrdup(h->token);
		if (!h->pending)
			warn_lost(h);
		forget_held(h);
	}

	h = remember_held(rkey, rkeylen);
	if (!take_key(h, ttl_ms, wait_ms))
	{
		forget_held(h);
		return NULL;
	}
	token = pstrdup(h->token);
	if (!xact)
		forget_held(h);			/* the caller's from now on */
	return token;
}

bool
redis_release(const char *key, int keylen, const char *token, int tokenlen)
{
	int			rkeylen;
	char	   *rkey = redis_key(key, keylen, &rkeylen);
	HeldKey    *h;
	bool		deleted;
	RedisCmd	rel;

	redis_require();
	flush_backlog();
	redis_script_prepare(&release_script);
	script_cmd(&rel, &release_script, rkey, rkeylen, token, tokenlen, NULL);
	deleted = cl_mode_release(&rel);

	/* a transaction's key released by hand is no longer the transaction's */
	h = find_held(rkey, rkeylen);
	if (h && tokenlen == TOKEN_LEN && memcmp(h->token, token, TOKEN_LEN) == 0)
	{
		if (!deleted)
			stats_count(STAT_REDIS, STAT_LOST);
		forget_held(h);
	}
	if (deleted)
		stats_count(STAT_REDIS, STAT_RELEASED);
	return deleted;
}

static bool
extend_acked(const char *rkey, int rkeylen, const char *token, int tokenlen, int64 ttl_ms)
{
	char		px[32];
	RedisCmd	ext;
	RedisCmd	rel;

	snprintf(px, sizeof(px), INT64_FORMAT, ttl_ms);
	redis_script_prepare(&release_script);
	script_cmd(&ext, &extend_script, rkey, rkeylen, token, tokenlen, px);
	script_cmd(&rel, &release_script, rkey, rkeylen, token, tokenlen, NULL);
	return cl_mode_extend(rkey, rkeylen, token, tokenlen, ttl_ms, &ext, &rel) &&
		cl_mode_acknowledged(&rel);
}

bool
cl_redis_extend_key(const char *key, int keylen, const char *token, int tokenlen, int64 ttl_ms)
{
	int			rkeylen;
	char	   *rkey = redis_key(key, keylen, &rkeylen);

	redis_require();
	flush_backlog();
	return extend_acked(rkey, rkeylen, token, tokenlen, ttl_ms);
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

	redis_require();
	key = cl_arg_id(fcinfo, 0, "key");
	token = cl_arg_id(fcinfo, 1, "token");
	ttl_ms = cl_arg_ttl_ms(fcinfo, 2, "ttl");
	PG_RETURN_BOOL(cl_redis_extend_key(key, strlen(key), token, strlen(token), ttl_ms));
}
