/*-------------------------------------------------------------------------
 *
 * redis_conn.c
 *	  The backend's one connection to Redis: the only file that includes
 *	  hiredis.
 *
 * Concurrency rules.  Each backend has at most one connection, made on
 * first use and kept; nothing is shared between backends.  A connection
 * is used by one call at a time (a backend runs one statement at a time),
 * and every exchange is complete when a call returns: the commands sent,
 * every reply read.  Anything that interrupts an exchange (a timeout, an
 * I/O error, a query cancel or statement_timeout raised while waiting)
 * drops the connection, because a half-read reply stream cannot be
 * resumed and hiredis errors are sticky.  The next call connects afresh.
 *
 * How waits stay bounded and cancellable.  The socket is non-blocking and
 * every wait goes through a WaitEventSet on the socket, the process latch
 * and postmaster death: connecting waits at most
 * coupon_lock.redis_connect_timeout (AUTH and SELECT included), each reply
 * at most coupon_lock.redis_command_timeout, and a latch wakeup runs
 * CHECK_FOR_INTERRUPTS (except at transaction end, where interrupts are
 * held anyway and nothing may raise).  Only the host name lookup
 * (getaddrinfo) can block; use an IP address where that matters.
 *
 * hiredis objects live outside palloc: the context, the replies being
 * read, and the address list being tried are kept in static variables, and
 * drop_connection() frees them all.  It runs before any error is reported,
 * and from a PG_CATCH when an interrupt raises mid-exchange.
 *
 * One deadline per exchange.  Sending the commands and reading every
 * reply (the NOSCRIPT resend included) share one deadline, so a pipeline
 * of n commands waits at most one command timeout, not n.  What a reply
 * may announce is bounded before hiredis allocates anything for it: an
 * array header of more than REPLY_MAX_ELEMENTS elements, or more than
 * REPLY_MAX_BYTES of unread reply, is a protocol violation (a hostile
 * "*2147483647" header would otherwise make hiredis calloc 16 GB).
 *
 * Staying in step.  A connection carries replies in the order of the
 * commands.  Whenever bytes remain after the last reply of an exchange,
 * or an exchange was cut off (an error, a cancel, or a FATAL such as
 * pg_terminate_backend, which exits without unwinding: in_exchange is
 * still set when the exit's abort callback runs), the connection is
 * dropped: an extra or missing reply would otherwise answer the next
 * command, and a lock held elsewhere could look free.
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
 * a retry.  AUTH and SELECT are sent on every new connection.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#ifdef USE_HIREDIS
#include <hiredis/hiredis.h>
#endif

#include "common/cryptohash.h"
#include "common/sha1.h"
#include "miscadmin.h"
#include "storage/fd.h"
#include "storage/latch.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"
#include "utils/wait_event.h"

#include "guc.h"
#include "redis_conn.h"
#include "redis_sentinel.h"
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

#ifdef USE_HIREDIS

/* Bounds on what one reply may announce (see the header comment). */
#define REPLY_MAX_ELEMENTS	64
#define REPLY_MAX_BYTES		(64 * 1024)

/* ---- connection state: everything drop_connection() frees ---- */

static redisContext *ctx = NULL;
static pgsocket pending_fd = PGINVALID_SOCKET;	/* being connected, not yet in ctx */
static bool fd_reserved = false;	/* the socket counts against max_files_per_process */
static struct addrinfo *pending_ai = NULL;
static WaitEventSet *wes = NULL;
static int	wes_sock_pos;
static uint32 wes_sock_events;
static redisReply **held = NULL;	/* replies being read */
static int	held_cap = 0;
static int	nheld = 0;

/* The server being talked to (for messages): the master, or a Sentinel. */
static char target_host[256];
static int	target_port;

/* The settings the connection was made with; a change reconnects. */
static char *conn_host = NULL;
static int	conn_port;
static int	conn_db;
static char *conn_password = NULL;
static char *conn_sentinels = NULL;	/* redis_sentinels/redis_sentinel_master */

/* The last failure, reported by redis_run() or redis_run_quiet(). */
static int	fail_code;
static char fail_msg[256];
static char fail_detail[256];
static char quiet_msg[520];

/* A reply said this server is no longer the master (Sentinel mode). */
static bool drop_after_exchange = false;

/* An exchange is under way: still set if it was cut off (see above). */
static bool in_exchange = false;
/* Some bytes of the current exchange reached the socket. */
static bool exchange_sent = false;
/* The reader refused an array header (hiredis reports it as OOM). */
static bool reply_too_large = false;

/* hiredis's reply functions with createArray bounded. */
static redisReplyObjectFunctions bounded_functions;
static void *(*hiredis_create_array) (const redisReadTask *task, int elements);

static void
free_held(void)
{
	for (int i = 0; i < nheld; i++)
		if (held[i])
			freeReplyObject(held[i]);
	nheld = 0;
}

static void
drop_connection(void)
{
	free_held();
	if (wes)
		FreeWaitEventSet(wes);
	wes = NULL;
	if (pending_ai)
		freeaddrinfo(pending_ai);
	pending_ai = NULL;
	if (pending_fd != PGINVALID_SOCKET)
		close(pending_fd);
	pending_fd = PGINVALID_SOCKET;
	if (ctx)
		redisFree(ctx);			/* closes its socket */
	ctx = NULL;
	if (fd_reserved)
		ReleaseExternalFD();
	fd_reserved = false;
	in_exchange = false;
}

/* createArray of hiredis, refusing more elements than a lock reply has. */
static void *
bounded_create_array(const redisReadTask *task, int elements)
{
	if (elements > REPLY_MAX_ELEMENTS)
	{
		reply_too_large = true;
		return NULL;			/* hiredis then fails the reader */
	}
	return hiredis_create_array(task, elements);
}

void
cl_redis_bound_reader(void *context)
{
	redisContext *c = context;

	if (hiredis_create_array == NULL)
	{
		bounded_functions = *c->reader->fn;
		hiredis_create_array = bounded_functions.createArray;
		bounded_functions.createArray = bounded_create_array;
	}
	c->reader->fn = &bounded_functions;
}

bool
cl_redis_take_too_large(void)
{
	bool		was = reply_too_large;

	reply_too_large = false;
	return was;
}

static void
bound_reader(void)
{
	cl_redis_bound_reader(ctx);
}

/* Records a failure; always returns false. */
static bool pg_attribute_printf(3, 4)
fail(int sqlstate, const char *detail, const char *fmt,...)
{
	va_list		ap;

	fail_code = sqlstate;
	va_start(ap, fmt);
	vsnprintf(fail_msg, sizeof(fail_msg), fmt, ap);
	va_end(ap);
	strlcpy(fail_detail, detail ? detail : "", sizeof(fail_detail));
	return false;
}

/* A failure that leaves the connection unusable: drop it, then record. */
static bool
fail_io(int sqlstate, const char *detail, const char *what)
{
	char		buf[256];

	strlcpy(buf, detail ? detail : "", sizeof(buf));	/* detail may be ctx->errstr */
	drop_connection();
	return fail(sqlstate, buf, "%s Redis at \"%s:%d\"", what, target_host, target_port);
}

static bool
fail_timeout(int timeout_ms, bool connecting)
{
	char		detail[128];

	snprintf(detail, sizeof(detail), "No answer within %d ms.", timeout_ms);
	return fail_io(connecting ? ERRCODE_SQLCLIENT_UNABLE_TO_ESTABLISH_SQLCONNECTION :
				   ERRCODE_CONNECTION_FAILURE, detail,
				   connecting ? "could not connect to" : "lost connection to");
}

/* ---- waiting on the socket ---- */

static void
make_wait_set(pgsocket fd, uint32 events)
{
	wes = CreateWaitEventSet(TopMemoryContext, 3);
	AddWaitEventToSet(wes, WL_LATCH_SET, PGINVALID_SOCKET, MyLatch, NULL);
	if (IsUnderPostmaster)		/* a single-user backend has no postmaster to watch */
		AddWaitEventToSet(wes, WL_EXIT_ON_PM_DEATH, PGINVALID_SOCKET, NULL, NULL);
	wes_sock_pos = AddWaitEventToSet(wes, events, fd, NULL, NULL);
	wes_sock_events = events;
}

/*
 * Waits until the socket is ready for events (WL_SOCKET_READABLE or
 * WL_SOCKET_WRITEABLE) or until deadline; false when the deadline passed.
 * With interruptible, a latch wakeup runs CHECK_FOR_INTERRUPTS, which may
 * raise: the caller's PG_CATCH drops the connection.
 */
static bool
wait_socket(uint32 events, TimestampTz deadline, bool interruptible)
{
	WaitEvent	ev;

	if (wes_sock_events != events)
	{
		ModifyWaitEvent(wes, wes_sock_pos, events, NULL);
		wes_sock_events = events;
	}
	for (;;)
	{
		long		ms = TimestampDifferenceMilliseconds(GetCurrentTimestamp(), deadline);

		if (ms <= 0)
			return false;
		if (WaitEventSetWait(wes, ms, &ev, 1, PG_WAIT_EXTENSION) == 0)
			continue;
		if (ev.events & WL_LATCH_SET)
		{
			ResetLatch(MyLatch);
			if (interruptible)
				CHECK_FOR_INTERRUPTS();
			continue;
		}
		if (ev.events & events)
			return true;
	}
}

/* ---- sending and receiving ---- */

int
cl_redis_cmd_argv(const RedisCmd *cmd, bool by_sha, const char **argv, size_t *argvlen)
{
	int			argc = 0;

	Assert(cmd->argc <= REDIS_MAX_ARGS);
	if (cmd->script)
	{
		argv[0] = by_sha ? "EVALSHA" : "EVAL";
		argv[1] = by_sha ? cmd->script->sha1 : cmd->script->body;
		argvlen[0] = strlen(argv[0]);
		argvlen[1] = strlen(argv[1]);
		argc = 2;
	}
	for (int i = 0; i < cmd->argc; i++, argc++)
	{
		argv[argc] = cmd->argv[i];
		argvlen[argc] = cmd->argvlen[i];
	}
	return argc;
}

static bool
append(const RedisCmd *cmd, bool by_sha)
{
	const char *argv[REDIS_MAX_ARGS + 2];
	size_t		argvlen[REDIS_MAX_ARGS + 2];
	int			argc = cl_redis_cmd_argv(cmd, by_sha, argv, argvlen);

	if (redisAppendCommandArgv(ctx, argc, argv, argvlen) != REDIS_OK)
		return fail_io(ERRCODE_CONNECTION_FAILURE, ctx->errstr, "could not send a command to");
	return true;
}

/* One exchange's deadline and what its timeout error says. */
typedef struct Deadline
{
	TimestampTz at;
	int			timeout_ms;
	bool		connecting;
	bool		interruptible;
} Deadline;

static Deadline
deadline_in(int timeout_ms, bool connecting, bool interruptible)
{
	Deadline	d;

	d.at = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), timeout_ms);
	d.timeout_ms = timeout_ms;
	d.connecting = connecting;
	d.interruptible = interruptible;
	return d;
}

static bool
flush(const Deadline *d)
{
	int			done = 0;

	for (;;)
	{
		size_t		before = sdslen(ctx->obuf);

		if (redisBufferWrite(ctx, &done) != REDIS_OK)
			return fail_io(ERRCODE_CONNECTION_FAILURE, ctx->errstr, "could not send a command to");
		if (done || sdslen(ctx->obuf) < before)
			exchange_sent = true;
		if (done)
			return true;
		if (!wait_socket(WL_SOCKET_WRITEABLE, d->at, d->interruptible))
			return fail_timeout(d->timeout_ms, d->connecting);
	}
}

/* Reads the next reply into held[nheld++]. */
static bool
read_reply(const Deadline *d)
{
	void	   *reply = NULL;

	for (;;)
	{
		reply_too_large = false;
		if (redisGetReplyFromReader(ctx, &reply) != REDIS_OK)
			return fail_io(ERRCODE_PROTOCOL_VIOLATION,
						   reply_too_large ? "A reply announced more elements than a lock command returns." : ctx->errstr,
						   "could not read the reply of");
		if (reply)
		{
			held[nheld++] = reply;
			return true;
		}
		if (ctx->reader->len - ctx->reader->pos > REPLY_MAX_BYTES)
			return fail_io(ERRCODE_PROTOCOL_VIOLATION,
						   "A reply is longer than any reply to a lock command.",
						   "could not read the reply of");
		if (!wait_socket(WL_SOCKET_READABLE, d->at, d->interruptible))
			return fail_timeout(d->timeout_ms, d->connecting);
		if (redisBufferRead(ctx) != REDIS_OK)
			return fail_io(ERRCODE_CONNECTION_FAILURE, ctx->errstr, "lost connection to");
	}
}

static void
reserve_held(int n)
{
	if (n > held_cap)
	{
		int			cap = Max(n, Max(16, held_cap * 2));

		held = held ? repalloc(held, sizeof(redisReply *) * cap)
			: MemoryContextAlloc(TopMemoryContext, sizeof(redisReply *) * cap);
		held_cap = cap;
	}
}

static bool
is_noscript(const redisReply *r)
{
	return r->type == REDIS_REPLY_ERROR && strncmp(r->str, "NOSCRIPT", 8) == 0;
}

/*
 * Sends cmds as one pipeline and reads their replies into held[0..n-1],
 * all before one deadline.  Script commands whose SHA1 is known go as
 * EVALSHA; those that come back NOSCRIPT are sent again as EVAL (which
 * also caches the script).  Bytes left over after the last reply mean the
 * stream is out of step: the connection is dropped.
 */
static bool
exchange(const RedisCmd *cmds, int n, const Deadline *d)
{
	int			nretry = 0;

	Assert(held_cap >= n + 1);	/* a resent reply is read into held[n] first */
	in_exchange = true;
	exchange_sent = false;
	for (int i = 0; i < n; i++)
		if (!append(&cmds[i], cmds[i].script && cmds[i].script->sha1[0]))
			return false;
	if (!flush(d))
		return false;
	for (int i = 0; i < n; i++)
		if (!read_reply(d))
			return false;

	for (int i = 0; i < n; i++)
	{
		if (cmds[i].script && is_noscript(held[i]))
		{
			freeReplyObject(held[i]);
			held[i] = NULL;
			if (!append(&cmds[i], false))
				return false;
			nretry++;
		}
	}
	if (nretry > 0)
	{
		if (!flush(d))
			return false;
		for (int i = 0; i < n; i++)
		{
			if (held[i] == NULL)
			{
				/* read_reply appends at nheld: read into the end, then move */
				if (!read_reply(d))
					return false;
				held[i] = held[--nheld];
			}
		}
	}
	if (ctx->reader->len > ctx->reader->pos)
		return fail_io(ERRCODE_PROTOCOL_VIOLATION,
					   "Redis sent more replies than commands were sent.",
					   "lost step with");
	in_exchange = false;
	return true;
}

/* Converts one reply; false (connection kept) for an error or odd shape. */
static bool
to_value(const redisReply *r, RedisValue *out)
{
	switch (r->type)
	{
		case REDIS_REPLY_NIL:
			out->kind = RV_NIL;
			return true;
		case REDIS_REPLY_INTEGER:
			out->kind = RV_INTEGER;
			out->integer = r->integer;
			return true;
		case REDIS_REPLY_STATUS:
			if (r->len == 2 && memcmp(r->str, "OK", 2) == 0)
			{
				out->kind = RV_OK;
				return true;
			}
			break;
		case REDIS_REPLY_ERROR:
			/* a master demoted by a failover: find the master again next time */
			if (cl_sentinel_configured() && strncmp(r->str, "READONLY", 8) == 0)
				drop_after_exchange = true;
			return fail(ERRCODE_EXTERNAL_ROUTINE_EXCEPTION, r->str,
						"Redis at \"%s:%d\" returned an error", target_host, target_port);
	}
	return fail(ERRCODE_PROTOCOL_VIOLATION, NULL,
				"unexpected reply of type %d from Redis at \"%s:%d\"",
				r->type, target_host, target_port);
}

/* ---- connecting ---- */

/* Connects the socket to one address within the deadline. */
static bool
connect_one(struct addrinfo *ai, TimestampTz deadline, bool interruptible, int *err)
{
	int			one = 1;
	int			soerr = 0;
	socklen_t	len = sizeof(soerr);

	pending_fd = socket(ai->ai_family, ai->ai_socktype, ai->ai_protocol);
	if (pending_fd == PGINVALID_SOCKET)
	{
		*err = errno;
		return false;
	}
	if (!pg_set_noblock(pending_fd) ||
		setsockopt(pending_fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)) < 0)
	{
		*err = errno;
		return false;
	}
	if (connect(pending_fd, ai->ai_addr, ai->ai_addrlen) == 0)
		return true;
	if (errno != EINPROGRESS)
	{
		*err = errno;
		return false;
	}
	make_wait_set(pending_fd, WL_SOCKET_WRITEABLE);
	if (!wait_socket(WL_SOCKET_WRITEABLE, deadline, interruptible))
	{
		*err = ETIMEDOUT;
		return false;
	}
	if (getsockopt(pending_fd, SOL_SOCKET, SO_ERROR, &soerr, &len) < 0)
		soerr = errno;
	*err = soerr;
	return soerr == 0;
}

/* Opens a TCP connection to the first address that answers in time. */
static bool
open_socket(const Deadline *d)
{
	struct addrinfo hints;
	char		port[16];
	int			rc;
	int			err = 0;

	if (!AcquireExternalFD())
		return fail(ERRCODE_SQLCLIENT_UNABLE_TO_ESTABLISH_SQLCONNECTION,
					"There are too many open files on the local server.",
					"could not connect to Redis at \"%s:%d\"", target_host, target_port);
	fd_reserved = true;

	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_protocol = IPPROTO_TCP;
	snprintf(port, sizeof(port), "%d", target_port);
	rc = getaddrinfo(target_host, port, &hints, &pending_ai);
	if (rc != 0)
	{
		pending_ai = NULL;
		return fail_io(ERRCODE_SQLCLIENT_UNABLE_TO_ESTABLISH_SQLCONNECTION,
					   gai_strerror(rc), "could not resolve the address of");
	}

	for (struct addrinfo *ai = pending_ai; ai; ai = ai->ai_next)
	{
		if (connect_one(ai, d->at, d->interruptible, &err))
		{
			freeaddrinfo(pending_ai);
			pending_ai = NULL;
			return true;
		}
		if (wes)
			FreeWaitEventSet(wes);
		wes = NULL;
		if (pending_fd != PGINVALID_SOCKET)
			close(pending_fd);
		pending_fd = PGINVALID_SOCKET;
		if (err == ETIMEDOUT)
			break;				/* the deadline is spent */
	}
	if (err == ETIMEDOUT)
		return fail_timeout(d->timeout_ms, true);
	return fail_io(ERRCODE_SQLCLIENT_UNABLE_TO_ESTABLISH_SQLCONNECTION,
				   strerror(err), "could not connect to");
}

/* Sends AUTH and SELECT as one pipeline, when they are needed. */
static bool
authenticate_and_select(const Deadline *d)
{
	RedisCmd	cmds[2];
	int			n = 0;
	char		db[16];
	int			auth = -1;

	memset(cmds, 0, sizeof(cmds));
	if (cl_redis_password[0])
	{
		auth = n;
		cmds[n].argc = 2;
		cmds[n].argv[0] = "AUTH";
		cmds[n].argv[1] = cl_redis_password;
		n++;
	}
	if (cl_redis_db != 0)
	{
		snprintf(db, sizeof(db), "%d", cl_redis_db);
		cmds[n].argc = 2;
		cmds[n].argv[0] = "SELECT";
		cmds[n].argv[1] = db;
		n++;
	}
	for (int i = 0; i < n; i++)
		cmds[i].argvlen[0] = strlen(cmds[i].argv[0]), cmds[i].argvlen[1] = strlen(cmds[i].argv[1]);
	if (n == 0)
		return true;

	reserve_held(n + 1);
	if (!exchange(cmds, n, d))
		return false;
	for (int i = 0; i < n; i++)
	{
		redisReply *r = held[i];

		if (r->type == REDIS_REPLY_STATUS && r->len == 2 && memcmp(r->str, "OK", 2) == 0)
			continue;
		if (i == auth)
		{
			/*
			 * Only the error's first word (WRONGPASS, NOAUTH, ERR): the rest
			 * is Redis's text, and nothing about the password may be shown.
			 */
			char		word[32];
			char		detail[64];

			strlcpy(word, r->type == REDIS_REPLY_ERROR ? r->str : "an unexpected reply", sizeof(word));
			word[strcspn(word, " ")] = '\0';
			snprintf(detail, sizeof(detail), "Redis answered AUTH with %s.", word);
			return fail_io(ERRCODE_SQLCLIENT_UNABLE_TO_ESTABLISH_SQLCONNECTION, detail,
						   "could not authenticate to");
		}
		return fail_io(ERRCODE_SQLCLIENT_UNABLE_TO_ESTABLISH_SQLCONNECTION,
					   r->type == REDIS_REPLY_ERROR ? r->str : "unexpected reply",
					   "could not select the database on");
	}
	free_held();
	return true;
}

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

/* False when Redis closed the connection (restart, idle timeout) or it broke. */
static bool
socket_alive(void)
{
	char		c;
	ssize_t		rc = recv(ctx->fd, &c, 1, MSG_PEEK | MSG_DONTWAIT);

	return rc < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR);
}

/* Makes ctx on the connected socket pending_fd. */
static bool
attach_context(void)
{
	ctx = redisConnectFd(pending_fd);
	if (ctx == NULL)
		return fail_io(ERRCODE_OUT_OF_MEMORY, NULL, "could not connect to");
	pending_fd = PGINVALID_SOCKET;	/* ctx owns it now */
	ctx->flags &= ~REDIS_BLOCK;		/* the socket is non-blocking: EAGAIN is no error */
	bound_reader();
	if (ctx->err || redisEnableKeepAlive(ctx) != REDIS_OK)
		return fail_io(ERRCODE_SQLCLIENT_UNABLE_TO_ESTABLISH_SQLCONNECTION, ctx->errstr,
					   "could not connect to");
	if (wes == NULL)
		make_wait_set(ctx->fd, WL_SOCKET_READABLE);
	return true;
}

/* A reply as words: a string, or an array's first strings or integers. */
static bool
to_words(const redisReply *r, RedisWords *w)
{
	const redisReply *const *elems = &r;
	size_t		n = 1;

	w->n = 0;
	if (r->type == REDIS_REPLY_NIL)
		return true;
	if (r->type == REDIS_REPLY_ERROR)
		return fail(ERRCODE_EXTERNAL_ROUTINE_EXCEPTION, r->str,
					"Redis at \"%s:%d\" returned an error", target_host, target_port);
	if (r->type == REDIS_REPLY_ARRAY)
	{
		elems = (const redisReply *const *) r->element;
		n = r->elements;
	}
	for (size_t i = 0; i < n && w->n < REDIS_MAX_WORDS; i++)
	{
		const redisReply *e = elems[i];

		if (e->type == REDIS_REPLY_STRING || e->type == REDIS_REPLY_STATUS)
			strlcpy(w->word[w->n++], e->str, sizeof(w->word[0]));
		else if (e->type == REDIS_REPLY_INTEGER)
			snprintf(w->word[w->n++], sizeof(w->word[0]), "%lld", e->integer);
		else
			break;
	}
	return true;
}

/* One command on the current connection; its reply as words. */
static bool
ask_here(int argc, const char **argv, RedisWords *w, const Deadline *d)
{
	RedisCmd	cmd;
	bool		ok;

	memset(&cmd, 0, sizeof(cmd));
	for (int i = 0; i < argc; i++)
	{
		cmd.argv[i] = argv[i];
		cmd.argvlen[i] = strlen(argv[i]);
	}
	cmd.argc = argc;
	reserve_held(2);
	if (!exchange(&cmd, 1, d))
		return false;
	ok = to_words(held[0], w);
	free_held();
	return ok;
}

bool
cl_redis_ask(const char *host, int port, int argc, const char **argv, RedisWords *w,
		  int timeout_ms, bool interruptible)
{
	Deadline	d = deadline_in(timeout_ms, true, interruptible);
	bool		ok;

	if (ctx != NULL)
		drop_connection();
	strlcpy(target_host, host, sizeof(target_host));
	target_port = port;
	ok = open_socket(&d) && attach_context() && ask_here(argc, argv, w, &d);
	drop_connection();
	return ok;
}

/* Pauses before asking again, within the deadline (false: it passed). */
static bool
pause_within(int ms, const Deadline *d)
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

/*
 * Connects to the master: coupon_lock.redis_host, or the address the
 * Sentinels give, confirmed with ROLE (a master Sentinel has just named
 * may still be a replica: ask again after a short pause).
 */
static bool
connect_redis(int timeout_ms, bool interruptible)
{
	Deadline	d = deadline_in(timeout_ms, true, interruptible);
	bool		sentinel = cl_sentinel_configured();

	for (;;)
	{
		RedisWords	role;
		const char *role_argv[] = {"ROLE"};

		if (!sentinel)
		{
			strlcpy(target_host, cl_redis_host, sizeof(target_host));
			target_port = cl_redis_port;
		}
		else if (!cl_sentinel_find_master(target_host, sizeof(target_host), &target_port,
										cl_redis_connect_timeout, interruptible))
		{
			char		detail[sizeof(fail_detail) + 64];

			snprintf(detail, sizeof(detail), "The last Sentinel asked (%s:%d) answered: %s",
					 target_host, target_port, fail_detail[0] ? fail_detail : fail_msg);
			return fail(ERRCODE_SQLCLIENT_UNABLE_TO_ESTABLISH_SQLCONNECTION, detail,
						"could not find the Redis master \"%s\" through Sentinel",
						cl_redis_sentinel_master);
		}
		if (!open_socket(&d) || !attach_context() || !authenticate_and_select(&d))
			return false;
		if (!sentinel)
			break;
		if (!ask_here(1, role_argv, &role, &d))
			return false;
		if (role.n > 0 && strcmp(role.word[0], "master") == 0)
			break;
		drop_connection();
		if (!pause_within(100, &d))
			return fail(ERRCODE_SQLCLIENT_UNABLE_TO_ESTABLISH_SQLCONNECTION,
						"Sentinel named a server that is not a master.",
						"could not connect to the Redis master at \"%s:%d\"", target_host, target_port);
	}
	remember_settings();
	return true;
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

/* ---- the entry points ---- */

/*
 * A connection may be reused when it is in step (no exchange was cut off)
 * and Redis has not closed it.
 */
static bool
connection_usable(void)
{
	if (ctx != NULL && (in_exchange || !socket_alive()))
		drop_connection();
	return ctx != NULL;
}

static bool
run(RedisCmd *cmds, int n, RedisValue *out)
{
	bool		ok = true;
	Deadline	d;

	exchange_sent = false;
	if (connection_usable() && settings_changed())
		drop_connection();
	if (ctx == NULL && !connect_redis(cl_redis_connect_timeout, true))
	{
		exchange_sent = false;	/* AUTH and SELECT ran no command of the caller's */
		return false;
	}
	exchange_sent = false;

	reserve_held(n + 1);
	d = deadline_in(cl_redis_command_timeout, false, true);
	if (!exchange(cmds, n, &d))
		return false;
	for (int i = 0; i < n && ok; i++)
		ok = to_value(held[i], &out[i]);
	free_held();
	if (drop_after_exchange)
		drop_connection();
	drop_after_exchange = false;
	return ok;
}

void
redis_require(void)
{
	if (!redis_configured())
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("Redis is not configured"),
				 errhint("Set coupon_lock.redis_host to the Redis server's address.")));
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
		drop_connection();
		PG_RE_THROW();
	}
	PG_END_TRY();

	if (!ok)
	{
		stats_count(STAT_REDIS, STAT_ERROR);
		ereport(ERROR,
				(errcode(fail_code),
				 errmsg_internal("%s", fail_msg),
				 fail_detail[0] ? errdetail_internal("%s", fail_detail) : 0));
	}
}

bool
cl_redis_sent_anything(void)
{
	return exchange_sent;
}

void
cl_redis_reserve(int ncmds)
{
	reserve_held(ncmds + 1);
}

void
cl_redis_prepare_xact_end(void)
{
	if (!redis_configured() || connection_usable())
		return;
	/* a failure is left for redis_run_quiet to report */
	(void) connect_redis(Min(cl_redis_connect_timeout, CL_REDIS_XACT_END_MAX_MS), false);
}

static RedisQuietResult
quiet_failure(RedisQuietResult result)
{
	stats_count(STAT_REDIS, STAT_ERROR);
	snprintf(quiet_msg, sizeof(quiet_msg), "%s%s%s",
			 fail_msg, fail_detail[0] ? ": " : "", fail_detail);
	return result;
}

RedisQuietResult
redis_run_quiet(RedisCmd *cmds, int ncmds, RedisValue *out)
{
	Deadline	d;

	if (!redis_configured())
	{
		fail(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE, NULL, "Redis is not configured");
		return quiet_failure(REDIS_QUIET_NOT_SENT);
	}
	if (!connection_usable())
	{
		fail(ERRCODE_CONNECTION_FAILURE, "The connection was lost before the transaction ended.",
			 "no connection to Redis at \"%s:%d\"", target_host, target_port);
		return quiet_failure(REDIS_QUIET_NOT_SENT);
	}
	if (held_cap < ncmds + 1)
	{
		fail(ERRCODE_INTERNAL_ERROR, NULL, "no room reserved for %d Redis replies", ncmds);
		return quiet_failure(REDIS_QUIET_NOT_SENT);
	}
	for (int i = 0; i < ncmds; i++)
		if (cmds[i].script && cmds[i].script->sha1[0] == '\0')
		{
			fail(ERRCODE_INTERNAL_ERROR, NULL, "a Redis script was not prepared");
			return quiet_failure(REDIS_QUIET_NOT_SENT);
		}

	d = deadline_in(Min(cl_redis_command_timeout, CL_REDIS_XACT_END_MAX_MS), false, false);
	if (!exchange(cmds, ncmds, &d))
		return quiet_failure(exchange_sent ? REDIS_QUIET_UNCONFIRMED : REDIS_QUIET_NOT_SENT);
	for (int i = 0; i < ncmds; i++)
	{
		if (!to_value(held[i], &out[i]))
		{
			free_held();
			return quiet_failure(REDIS_QUIET_UNCONFIRMED);
		}
	}
	free_held();
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
 * every use of Redis says plainly that support is not built in.
 */
static void
report_not_built(void)
{
	ereport(ERROR,
			(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
			 errmsg("coupon_lock was built without Redis support"),
			 errhint("Rebuild coupon_lock with WITH_HIREDIS=yes (it needs hiredis).")));
}

void
redis_require(void)
{
	report_not_built();
}

void
redis_run(RedisCmd *cmds pg_attribute_unused(), int ncmds pg_attribute_unused(),
		  RedisValue *out pg_attribute_unused())
{
	report_not_built();
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
	report_not_built();
	return false;
}

void
cl_redis_prepare_xact_end(void)
{
}

void
redis_script_prepare(RedisScript *script pg_attribute_unused())
{
}

#endif							/* USE_HIREDIS */
