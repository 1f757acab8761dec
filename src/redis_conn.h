/*-------------------------------------------------------------------------
 *
 * redis_conn.h
 *	  The backend's connection to Redis (redis_conn.c, the only file that
 *	  includes hiredis).  Callers build commands as binary-safe argument
 *	  vectors and get back the few reply shapes a lock needs; anything else
 *	  Redis answers is an error.
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
 * The same for transaction end: never raises and never processes
 * interrupts.  Returns false and sets *errmsg (palloc'd) on failure.
 */
extern bool redis_run_quiet(RedisCmd *cmds, int ncmds, RedisValue *out, char **errmsg);

/* Makes sure the script's SHA1 is known, so redis_run_quiet can use EVALSHA. */
extern void redis_script_prepare(RedisScript *script);

#endif							/* COUPON_LOCK_REDIS_CONN_H */
