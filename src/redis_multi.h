/*-------------------------------------------------------------------------
 *
 * redis_multi.h
 *	  The same commands on several Redis servers at once, under one
 *	  WaitEventSet (redis_multi.c): what Redlock (redlock.c) is built on.
 *
 *-------------------------------------------------------------------------
 */
#ifndef COUPON_LOCK_REDIS_MULTI_H
#define COUPON_LOCK_REDIS_MULTI_H

#include "postgres.h"

#include "redis_server.h"

/* "host:port", for messages. */
extern const char *cl_server_name(const ClRedisServer *s);

/* After a run: whether the server answered every command, and why not. */
extern bool cl_server_answered(const ClRedisServer *s);
extern const char *cl_server_error(const ClRedisServer *s);

/* After a run the server answered: the value of command i. */
extern const RedisValue *cl_server_value(const ClRedisServer *s, int i);

/* Makes room on each server for the replies of ncmds commands (quiet runs). */
extern void cl_servers_reserve(ClRedisServer **s, int n, int ncmds);

/*
 * Sends the same ncmds commands to the n servers at once, each on its own
 * non-blocking connection, and reads the replies under one WaitEventSet,
 * all before one deadline timeout_ms away: a dead or paused server costs
 * that timeout once, never once per server.  A server without a live
 * connection is connected (AUTH and SELECT pipelined before the commands)
 * unless quiet.  Each server's NOSCRIPT replies are answered by EVAL on
 * that server alone.  Returns how many servers answered every command.
 *
 * Not quiet: a latch wakeup runs CHECK_FOR_INTERRUPTS, so a cancel or
 * statement_timeout ends the wait (every connection still in an exchange
 * is dropped before the error goes on).  Quiet (commit and abort
 * callbacks): never raises, never connects, never pallocs (reserve first),
 * never processes interrupts.
 */
extern int	cl_servers_run(ClRedisServer **s, int n, const RedisCmd *cmds, int ncmds,
						   int timeout_ms, bool quiet);

/*
 * When a round is decided before every server answered: need servers whose
 * reply to command 0 satisfies ok.  Once that many did, or once it can no
 * longer happen while the count of servers that answered is settled too (need answered already, or too many failed to
 * ever make need), the rest get as long again as the round took (at least
 * 5 ms) and are then dropped like servers that time out: a paused or
 * unreachable minority costs a few ms, not the deadline.
 */
typedef struct ClQuorum
{
	int			need;
	bool		(*ok) (const RedisValue *v);
} ClQuorum;

extern int	cl_servers_run_quorum(ClRedisServer **s, int n, const RedisCmd *cmds, int ncmds,
								  int timeout_ms, bool quiet, const ClQuorum *quorum);

/* How many of the n servers have a live connection now. */
extern int	cl_servers_connected(ClRedisServer **s, int n);

#endif							/* COUPON_LOCK_REDIS_MULTI_H */
