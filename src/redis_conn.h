/*-------------------------------------------------------------------------
 *
 * redis_conn.h
 *	  The backend's connection to the Redis master (redis_conn.c; the
 *	  connection objects are redis_server.c's, the only files that include
 *	  hiredis are redis_server.c and redis_multi.c).  Callers build
 *	  commands as binary-safe argument vectors and get back the few reply
 *	  shapes a lock needs; anything else Redis answers is an error.
 *
 *-------------------------------------------------------------------------
 */
#ifndef COUPON_LOCK_REDIS_CONN_H
#define COUPON_LOCK_REDIS_CONN_H

#include "postgres.h"

#define REDIS_MAX_ARGS 6

/*
 * A Lua script run with EVALSHA, falling back to EVAL when Redis does not
 * have it cached (NOSCRIPT after a restart or failover).  sha1 is filled in
 * by redis_conn.c on first use.
 */
typedef struct RedisScript
{
	const char *body;
	char		sha1[41];
} RedisScript;

/*
 * One command.  With script NULL, argv is the command itself ("SET", key,
 * ...); otherwise argv is what follows the script in EVAL: numkeys, the
 * keys, the arguments.  Every argument has its length: keys and values are
 * bytes, never parsed.
 */
typedef struct RedisCmd
{
	RedisScript *script;
	int			argc;
	const char *argv[REDIS_MAX_ARGS];
	size_t		argvlen[REDIS_MAX_ARGS];
} RedisCmd;

/* The reply shapes a lock command may get. */
typedef enum RedisValueKind
{
	RV_NIL,						/* nil bulk: e.g. SET NX that did not set */
	RV_OK,						/* status reply "OK" */
	RV_INTEGER					/* integer reply */
} RedisValueKind;

typedef struct RedisValue
{
	RedisValueKind kind;
	long long	integer;
} RedisValue;

/*
 * A reply reduced to its first words: a status or bulk string, or the
 * first strings and integers of an array (what Sentinel's and ROLE's
 * answers need).
 */
#define REDIS_MAX_WORDS 3
typedef struct RedisWords
{
	int			n;
	char		word[REDIS_MAX_WORDS][256];
} RedisWords;

/*
 * Sends one command (argv: C strings) to host:port on a connection of its
 * own, made and closed within timeout_ms, with AUTH only when
 * coupon_lock.redis_sentinel_password is set: for asking a Sentinel.
 * False on failure (the reason is kept for the caller's error).
 */
extern bool cl_redis_ask(const char *host, int port, int argc, const char **argv,
					  RedisWords *w, int timeout_ms, bool interruptible);

/*
 * Raises 0A000 when coupon_lock was built without hiredis and 55000 when
 * coupon_lock.redis_host is empty.
 */
extern void redis_require(void);

/*
 * True when Redis is configured: coupon_lock.redis_host is not empty.
 * (Built without hiredis, a configured Redis makes redis_require raise.)
 */
extern bool redis_configured(void);

/*
 * Sends the commands as one pipeline and stores one value per command in
 * out.  Connects first when there is no live connection.  Any failure is
 * an ERROR: class 08 when Redis cannot be reached or does not answer within
 * the timeouts, 38000 when Redis answers with an error, 08P01 for a reply
 * of a shape the caller did not expect.  A query cancel or
 * statement_timeout interrupts the wait (the connection is dropped then).
 */
extern void redis_run(RedisCmd *cmds, int ncmds, RedisValue *out);

/*
 * After redis_run raised: whether any byte of its commands reached Redis
 * (false: the command certainly did not run).
 */
extern bool cl_redis_sent_anything(void);

/*
 * The transaction end's longest wait for Redis, whatever
 * coupon_lock.redis_command_timeout and redis_connect_timeout say: COMMIT
 * and ABORT do not process interrupts, so this bounds how long a stalled
 * Redis can hold them.
 */
#define CL_REDIS_XACT_END_MAX_MS	5000

typedef enum RedisQuietResult
{
	REDIS_QUIET_DONE,			/* every reply read into out */
	REDIS_QUIET_NOT_SENT,		/* nothing reached Redis */
	REDIS_QUIET_UNCONFIRMED		/* sent, but the replies were not all read */
} RedisQuietResult;

/*
 * The same for the commit and abort callbacks: never raises, never
 * processes interrupts, never connects and never pallocs (call
 * redis_reserve for ncmds first, and have the scripts prepared), and waits
 * at most CL_REDIS_XACT_END_MAX_MS.  cl_redis_quiet_error() says what failed.
 */
extern RedisQuietResult redis_run_quiet(RedisCmd *cmds, int ncmds, RedisValue *out);
extern const char *cl_redis_quiet_error(void);

/* Makes room for the replies of ncmds commands (for redis_run_quiet). */
extern void cl_redis_reserve(int ncmds);

/*
 * At PRE_COMMIT, where failing is still allowed: reconnects a connection
 * Redis closed, so that the commit's release can be sent.  Never raises
 * for Redis being away (redis_run_quiet then reports it).
 */
extern void cl_redis_prepare_xact_end(void);

/* Makes sure the script's SHA1 is known, so redis_run_quiet can use EVALSHA. */
extern void redis_script_prepare(RedisScript *script);

#endif							/* COUPON_LOCK_REDIS_CONN_H */
