/*-------------------------------------------------------------------------
 *
 * redis_server.h
 *	  A connection to one Redis server as an object (redis_server.c), used
 *	  by every mode: the master of single-server and Sentinel mode and a
 *	  Sentinel being asked (redis_conn.c), and each of Redlock's masters
 *	  (redis_multi.c runs the same commands on several at once).
 *
 *-------------------------------------------------------------------------
 */
#ifndef COUPON_LOCK_REDIS_SERVER_H
#define COUPON_LOCK_REDIS_SERVER_H

#include "postgres.h"

#include "datatype/timestamp.h"

#include "redis_conn.h"

/* hiredis's and the kernel's types, named only (hiredis stays out of this header) */
struct redisContext;
struct redisReply;
struct addrinfo;
struct WaitEventSet;

typedef struct ClRedisServer
{
	char		host[256];		/* the server talked to (for messages) */
	int			port;

	/* the connection: everything cl_server_drop() frees */
	struct redisContext *ctx;	/* owns its socket */
	pgsocket	fd;				/* the socket while connecting, not yet in ctx */
	bool		fd_reserved;	/* counts against max_files_per_process */
	struct addrinfo *pending_ai;	/* the addresses being tried */
	struct WaitEventSet *wes;	/* this server's own wait set (one-server waits) */
	int			wes_pos;
	uint32		wes_events;
	struct redisReply **held;	/* replies being read */
	int			held_cap;
	int			nheld;

	bool		in_exchange;	/* an exchange is under way: still set if cut off */
	bool		exchange_sent;	/* some bytes of the current exchange reached the socket */
	bool		readonly_seen;	/* a reply was READONLY (a demoted master) */

	/* the last failure */
	int			fail_code;
	char		fail_msg[256];
	char		fail_detail[256];

	/* a run of redis_multi.c */
	int			phase;
	const RedisCmd *cmds;
	int			ncmds;
	int			nprefix;		/* AUTH/SELECT replies ahead of the commands */
	int			nwant;
	bool		answered;
	bool		reply_error;	/* a command was answered with an error */
	int			set_pos;		/* position in the shared wait set, -1: none */
	uint32		set_events;
	int		   *resend;			/* commands resent as EVAL after NOSCRIPT */
	RedisValue *values;			/* the commands' values */
	int			values_cap;
} ClRedisServer;

/* One exchange's deadline and what its timeout error says. */
typedef struct ClDeadline
{
	TimestampTz at;
	int			timeout_ms;
	bool		connecting;
	bool		interruptible;
} ClDeadline;

extern ClDeadline cl_deadline_in(int timeout_ms, bool connecting, bool interruptible);

/* ---- the object ---- */

extern void cl_server_init(ClRedisServer *s, const char *host, int port);
extern ClRedisServer *cl_server_new(const char *host, int port);	/* TopMemoryContext */
extern void cl_server_free(ClRedisServer *s);
/* Closes the connection and frees what it holds (never raises). */
extern void cl_server_drop(ClRedisServer *s);
/* Drops a connection cut off mid-exchange or closed by Redis; true when one is left. */
extern bool cl_server_usable(ClRedisServer *s);

/* Records a failure on s (always false); _io drops the connection first. */
extern bool cl_server_fail(ClRedisServer *s, int sqlstate, const char *detail, const char *fmt,...)
			pg_attribute_printf(4, 5);
extern bool cl_server_fail_io(ClRedisServer *s, int sqlstate, const char *detail, const char *what);

/* Room for the replies of n commands (plus one for a NOSCRIPT resend). */
extern void cl_server_reserve(ClRedisServer *s, int n);
extern void cl_server_free_replies(ClRedisServer *s);

/* ---- one server, waiting on its own wait set (single and Sentinel modes) ---- */

/* Opens a connection to s->host:s->port within the deadline (no AUTH). */
extern bool cl_server_open(ClRedisServer *s, const ClDeadline *d);
/* Sends AUTH (password non-empty) and SELECT (db non-zero) as one pipeline. */
extern bool cl_server_auth_select(ClRedisServer *s, const char *password, int db, const ClDeadline *d);
/* Sends cmds as one pipeline, reads every reply (NOSCRIPT resent as EVAL). */
extern bool cl_server_exchange(ClRedisServer *s, const RedisCmd *cmds, int n, const ClDeadline *d);
/* Reply i of the last exchange as a value, or as words; false (recorded) for an error reply. */
extern bool cl_server_reply_value(ClRedisServer *s, int i, RedisValue *out);
extern bool cl_server_reply_words(ClRedisServer *s, int i, RedisWords *w);

/* ---- helpers for redis_multi.c ---- */

extern bool cl_server_socket_alive(const ClRedisServer *s);
/* getaddrinfo for s->host:s->port (TCP); its return code. */
extern int	cl_server_lookup(const ClRedisServer *s, struct addrinfo **ai);
extern void cl_server_bound_reader(ClRedisServer *s);
extern bool cl_server_take_too_large(void);
extern bool cl_server_append(ClRedisServer *s, const RedisCmd *cmd, bool by_sha);
extern bool cl_server_is_noscript(const ClRedisServer *s, int i);

#endif							/* COUPON_LOCK_REDIS_SERVER_H */
