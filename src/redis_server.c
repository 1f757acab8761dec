/*-------------------------------------------------------------------------
 *
 * redis_server.c
 *	  The connection to one Redis server as an object (ClRedisServer), and
 *	  the one-server exchange under the object's own wait set.
 *
 * Every mode uses it: redis_conn.c keeps one for the master of
 * single-server and Sentinel mode and one for the Sentinel being asked;
 * redlock.c keeps one per Redlock master and runs them together through
 * redis_multi.c.  Nothing is shared between backends.
 *
 * Concurrency rules.  A connection is used by one call at a time, and
 * every exchange is complete when a call returns: the commands sent, every
 * reply read.  Anything that interrupts an exchange (a timeout, an I/O
 * error, a query cancel or statement_timeout raised while waiting) drops
 * the connection, because a half-read reply stream cannot be resumed and
 * hiredis errors are sticky.  A FATAL that exits without unwinding leaves
 * in_exchange set, and cl_server_usable() then drops the connection.
 *
 * How waits stay bounded and cancellable.  The socket is non-blocking and
 * every wait goes through a WaitEventSet on the socket, the process latch
 * and postmaster death, before one deadline per exchange: sending, every
 * reply and the NOSCRIPT resend share it.  A latch wakeup runs
 * CHECK_FOR_INTERRUPTS (except at transaction end, where interrupts are
 * held anyway and nothing may raise).  Only the host name lookup
 * (getaddrinfo) can block; use an IP address where that matters.
 *
 * What a reply may announce is bounded before hiredis allocates anything
 * for it: an array header of more than REPLY_MAX_ELEMENTS elements, or
 * more than REPLY_MAX_BYTES of unread reply, is a protocol violation (a
 * hostile "*2147483647" header would otherwise make hiredis calloc 16 GB).
 * Bytes left over after the last reply of an exchange mean the stream is
 * out of step: the connection is dropped, since an extra reply would
 * answer the next command and a lock held elsewhere could look free.
 *
 * hiredis objects live outside palloc: the context, the replies being
 * read and the address list being tried are in the object, and
 * cl_server_drop() frees them all.
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

#include "miscadmin.h"
#include "storage/fd.h"
#include "storage/latch.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"
#include "utils/wait_event.h"

#include "redis_server.h"

void
cl_server_init(ClRedisServer *s, const char *host, int port)
{
	memset(s, 0, sizeof(*s));
	strlcpy(s->host, host, sizeof(s->host));
	s->port = port;
	s->fd = PGINVALID_SOCKET;
	s->set_pos = -1;
}

ClRedisServer *
cl_server_new(const char *host, int port)
{
	ClRedisServer *s = MemoryContextAlloc(TopMemoryContext, sizeof(ClRedisServer));

	cl_server_init(s, host, port);
	return s;
}

void
cl_server_free(ClRedisServer *s)
{
	cl_server_drop(s);
	if (s->held)
		pfree(s->held);
	if (s->resend)
		pfree(s->resend);
	if (s->values)
		pfree(s->values);
	pfree(s);
}

ClDeadline
cl_deadline_in(int timeout_ms, bool connecting, bool interruptible)
{
	ClDeadline	d;

	d.at = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), timeout_ms);
	d.timeout_ms = timeout_ms;
	d.connecting = connecting;
	d.interruptible = interruptible;
	return d;
}

bool
cl_server_fail(ClRedisServer *s, int sqlstate, const char *detail, const char *fmt,...)
{
	va_list		ap;
	char		buf[sizeof(s->fail_detail)];

	strlcpy(buf, detail ? detail : "", sizeof(buf));	/* detail may be s's own text */
	s->fail_code = sqlstate;
	va_start(ap, fmt);
	vsnprintf(s->fail_msg, sizeof(s->fail_msg), fmt, ap);
	va_end(ap);
	strlcpy(s->fail_detail, buf, sizeof(s->fail_detail));
	return false;
}

void
cl_server_reserve(ClRedisServer *s, int n)
{
	if (n > s->held_cap)
	{
		int			cap = Max(n, Max(16, s->held_cap * 2));

		s->held = s->held ? repalloc(s->held, sizeof(struct redisReply *) * cap)
			: MemoryContextAlloc(TopMemoryContext, sizeof(struct redisReply *) * cap);
		s->held_cap = cap;
	}
}

#ifdef USE_HIREDIS

/* Bounds on what one reply may announce (see the header comment). */
#define REPLY_MAX_ELEMENTS	64
#define REPLY_MAX_BYTES		(64 * 1024)

/* The reader refused an array header (hiredis reports it as OOM). */
static bool reply_too_large = false;

/* hiredis's reply functions with createArray bounded. */
static redisReplyObjectFunctions bounded_functions;
static void *(*hiredis_create_array) (const redisReadTask *task, int elements);

void
cl_server_free_replies(ClRedisServer *s)
{
	for (int i = 0; i < s->nheld; i++)
		if (s->held[i])
			freeReplyObject(s->held[i]);
	s->nheld = 0;
}

void
cl_server_drop(ClRedisServer *s)
{
	cl_server_free_replies(s);
	if (s->wes)
		FreeWaitEventSet(s->wes);
	s->wes = NULL;
	if (s->pending_ai)
		freeaddrinfo(s->pending_ai);
	s->pending_ai = NULL;
	if (s->fd != PGINVALID_SOCKET)
		close(s->fd);
	s->fd = PGINVALID_SOCKET;
	if (s->ctx)
		redisFree(s->ctx);		/* closes its socket */
	s->ctx = NULL;
	if (s->fd_reserved)
		ReleaseExternalFD();
	s->fd_reserved = false;
	s->in_exchange = false;
	s->set_pos = -1;
}

bool
cl_server_fail_io(ClRedisServer *s, int sqlstate, const char *detail, const char *what)
{
	char		buf[256];

	strlcpy(buf, detail ? detail : "", sizeof(buf));	/* detail may be ctx->errstr */
	cl_server_drop(s);
	return cl_server_fail(s, sqlstate, buf, "%s Redis at \"%s:%d\"", what, s->host, s->port);
}

static bool
fail_timeout(ClRedisServer *s, int timeout_ms, bool connecting)
{
	char		detail[128];

	snprintf(detail, sizeof(detail), "No answer within %d ms.", timeout_ms);
	return cl_server_fail_io(s, connecting ? ERRCODE_SQLCLIENT_UNABLE_TO_ESTABLISH_SQLCONNECTION :
							 ERRCODE_CONNECTION_FAILURE, detail,
							 connecting ? "could not connect to" : "lost connection to");
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
cl_server_bound_reader(ClRedisServer *s)
{
	if (hiredis_create_array == NULL)
	{
		bounded_functions = *s->ctx->reader->fn;
		hiredis_create_array = bounded_functions.createArray;
		bounded_functions.createArray = bounded_create_array;
	}
	s->ctx->reader->fn = &bounded_functions;
}

bool
cl_server_take_too_large(void)
{
	bool		was = reply_too_large;

	reply_too_large = false;
	return was;
}

/* False when Redis closed the connection (restart, idle timeout) or it broke. */
bool
cl_server_socket_alive(const ClRedisServer *s)
{
	char		c;
	ssize_t		rc = recv(s->ctx->fd, &c, 1, MSG_PEEK | MSG_DONTWAIT);

	return rc < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR);
}

bool
cl_server_usable(ClRedisServer *s)
{
	if (s->ctx != NULL && (s->in_exchange || !cl_server_socket_alive(s)))
		cl_server_drop(s);
	return s->ctx != NULL;
}

/* ---- waiting on the socket ---- */

static void
make_wait_set(ClRedisServer *s, pgsocket fd, uint32 events)
{
	s->wes = CreateWaitEventSet(TopMemoryContext, 3);
	AddWaitEventToSet(s->wes, WL_LATCH_SET, PGINVALID_SOCKET, MyLatch, NULL);
	if (IsUnderPostmaster)		/* a single-user backend has no postmaster to watch */
		AddWaitEventToSet(s->wes, WL_EXIT_ON_PM_DEATH, PGINVALID_SOCKET, NULL, NULL);
	s->wes_pos = AddWaitEventToSet(s->wes, events, fd, NULL, NULL);
	s->wes_events = events;
}

/*
 * Waits until the socket is ready for events (WL_SOCKET_READABLE or
 * WL_SOCKET_WRITEABLE) or until deadline; false when the deadline passed.
 * With interruptible, a latch wakeup runs CHECK_FOR_INTERRUPTS, which may
 * raise: the caller's PG_CATCH drops the connection.
 */
static bool
wait_socket(ClRedisServer *s, uint32 events, TimestampTz deadline, bool interruptible)
{
	WaitEvent	ev;

	if (s->wes_events != events)
	{
		ModifyWaitEvent(s->wes, s->wes_pos, events, NULL);
		s->wes_events = events;
	}
	for (;;)
	{
		long		ms = TimestampDifferenceMilliseconds(GetCurrentTimestamp(), deadline);

		if (ms <= 0)
			return false;
		if (WaitEventSetWait(s->wes, ms, &ev, 1, PG_WAIT_EXTENSION) == 0)
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

bool
cl_server_append(ClRedisServer *s, const RedisCmd *cmd, bool by_sha)
{
	const char *argv[REDIS_MAX_ARGS + 2];
	size_t		argvlen[REDIS_MAX_ARGS + 2];
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
	if (redisAppendCommandArgv(s->ctx, argc, argv, argvlen) != REDIS_OK)
		return cl_server_fail_io(s, ERRCODE_CONNECTION_FAILURE, s->ctx->errstr,
								 "could not send a command to");
	return true;
}

static bool
flush(ClRedisServer *s, const ClDeadline *d)
{
	int			done = 0;

	for (;;)
	{
		size_t		before = sdslen(s->ctx->obuf);

		if (redisBufferWrite(s->ctx, &done) != REDIS_OK)
			return cl_server_fail_io(s, ERRCODE_CONNECTION_FAILURE, s->ctx->errstr,
									 "could not send a command to");
		if (done || sdslen(s->ctx->obuf) < before)
			s->exchange_sent = true;
		if (done)
			return true;
		if (!wait_socket(s, WL_SOCKET_WRITEABLE, d->at, d->interruptible))
			return fail_timeout(s, d->timeout_ms, d->connecting);
	}
}

/* Reads the next reply into held[nheld++]. */
static bool
read_reply(ClRedisServer *s, const ClDeadline *d)
{
	void	   *reply = NULL;

	for (;;)
	{
		reply_too_large = false;
		if (redisGetReplyFromReader(s->ctx, &reply) != REDIS_OK)
			return cl_server_fail_io(s, ERRCODE_PROTOCOL_VIOLATION,
									 reply_too_large ? "A reply announced more elements than a lock command returns." : s->ctx->errstr,
									 "could not read the reply of");
		if (reply)
		{
			s->held[s->nheld++] = reply;
			return true;
		}
		if (s->ctx->reader->len - s->ctx->reader->pos > REPLY_MAX_BYTES)
			return cl_server_fail_io(s, ERRCODE_PROTOCOL_VIOLATION,
									 "A reply is longer than any reply to a lock command.",
									 "could not read the reply of");
		if (!wait_socket(s, WL_SOCKET_READABLE, d->at, d->interruptible))
			return fail_timeout(s, d->timeout_ms, d->connecting);
		if (redisBufferRead(s->ctx) != REDIS_OK)
			return cl_server_fail_io(s, ERRCODE_CONNECTION_FAILURE, s->ctx->errstr, "lost connection to");
	}
}

bool
cl_server_is_noscript(const ClRedisServer *s, int i)
{
	const redisReply *r = s->held[i];

	return r->type == REDIS_REPLY_ERROR && strncmp(r->str, "NOSCRIPT", 8) == 0;
}

/*
 * Script commands whose SHA1 is known go as EVALSHA; those that come back
 * NOSCRIPT are sent again as EVAL (which also caches the script).
 */
bool
cl_server_exchange(ClRedisServer *s, const RedisCmd *cmds, int n, const ClDeadline *d)
{
	int			nretry = 0;

	Assert(s->held_cap >= n + 1);	/* a resent reply is read into held[n] first */
	s->in_exchange = true;
	s->exchange_sent = false;
	for (int i = 0; i < n; i++)
		if (!cl_server_append(s, &cmds[i], cmds[i].script && cmds[i].script->sha1[0]))
			return false;
	if (!flush(s, d))
		return false;
	for (int i = 0; i < n; i++)
		if (!read_reply(s, d))
			return false;

	for (int i = 0; i < n; i++)
	{
		if (cmds[i].script && cl_server_is_noscript(s, i))
		{
			freeReplyObject(s->held[i]);
			s->held[i] = NULL;
			if (!cl_server_append(s, &cmds[i], false))
				return false;
			nretry++;
		}
	}
	if (nretry > 0)
	{
		if (!flush(s, d))
			return false;
		for (int i = 0; i < n; i++)
		{
			if (s->held[i] == NULL)
			{
				/* read_reply appends at nheld: read into the end, then move */
				if (!read_reply(s, d))
					return false;
				s->held[i] = s->held[--s->nheld];
			}
		}
	}
	if (s->ctx->reader->len > s->ctx->reader->pos)
		return cl_server_fail_io(s, ERRCODE_PROTOCOL_VIOLATION,
								 "Redis sent more replies than commands were sent.",
								 "lost step with");
	s->in_exchange = false;
	return true;
}

bool
cl_server_reply_value(ClRedisServer *s, int i, RedisValue *out)
{
	const redisReply *r = s->held[i];

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
			if (strncmp(r->str, "READONLY", 8) == 0)
				s->readonly_seen = true;
			return cl_server_fail(s, ERRCODE_EXTERNAL_ROUTINE_EXCEPTION, r->str,
								  "Redis at \"%s:%d\" returned an error", s->host, s->port);
	}
	return cl_server_fail(s, ERRCODE_PROTOCOL_VIOLATION, NULL,
						  "unexpected reply of type %d from Redis at \"%s:%d\"",
						  r->type, s->host, s->port);
}

bool
cl_server_reply_words(ClRedisServer *s, int i, RedisWords *w)
{
	const redisReply *r = s->held[i];
	const redisReply *const *elems = &r;
	size_t		n = 1;

	w->n = 0;
	if (r->type == REDIS_REPLY_NIL)
		return true;
	if (r->type == REDIS_REPLY_ERROR)
		return cl_server_fail(s, ERRCODE_EXTERNAL_ROUTINE_EXCEPTION, r->str,
							  "Redis at \"%s:%d\" returned an error", s->host, s->port);
	if (r->type == REDIS_REPLY_ARRAY)
	{
		elems = (const redisReply *const *) r->element;
		n = r->elements;
	}
	for (size_t k = 0; k < n && w->n < REDIS_MAX_WORDS; k++)
	{
		const redisReply *e = elems[k];

		if (e->type == REDIS_REPLY_STRING || e->type == REDIS_REPLY_STATUS)
			strlcpy(w->word[w->n++], e->str, sizeof(w->word[0]));
		else if (e->type == REDIS_REPLY_INTEGER)
			snprintf(w->word[w->n++], sizeof(w->word[0]), "%lld", e->integer);
		else
			break;
	}
	return true;
}

/* ---- connecting ---- */

/* Connects the socket to one address within the deadline. */
static bool
connect_one(ClRedisServer *s, struct addrinfo *ai, TimestampTz deadline, bool interruptible, int *err)
{
	int			one = 1;
	int			soerr = 0;
	socklen_t	len = sizeof(soerr);

	s->fd = socket(ai->ai_family, ai->ai_socktype, ai->ai_protocol);
	if (s->fd == PGINVALID_SOCKET)
	{
		*err = errno;
		return false;
	}
	if (!pg_set_noblock(s->fd) ||
		setsockopt(s->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)) < 0)
	{
		*err = errno;
		return false;
	}
	if (connect(s->fd, ai->ai_addr, ai->ai_addrlen) == 0)
		return true;
	if (errno != EINPROGRESS)
	{
		*err = errno;
		return false;
	}
	make_wait_set(s, s->fd, WL_SOCKET_WRITEABLE);
	if (!wait_socket(s, WL_SOCKET_WRITEABLE, deadline, interruptible))
	{
		*err = ETIMEDOUT;
		return false;
	}
	if (getsockopt(s->fd, SOL_SOCKET, SO_ERROR, &soerr, &len) < 0)
		soerr = errno;
	*err = soerr;
	return soerr == 0;
}

int
cl_server_lookup(const ClRedisServer *s, struct addrinfo **ai)
{
	struct addrinfo hints;
	char		port[16];

	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_protocol = IPPROTO_TCP;
	snprintf(port, sizeof(port), "%d", s->port);
	return getaddrinfo(s->host, port, &hints, ai);
}

/* Opens a TCP connection to the first address that answers in time. */
static bool
open_socket(ClRedisServer *s, const ClDeadline *d)
{
	int			rc;
	int			err = 0;

	if (!AcquireExternalFD())
		return cl_server_fail(s, ERRCODE_SQLCLIENT_UNABLE_TO_ESTABLISH_SQLCONNECTION,
							  "There are too many open files on the local server.",
							  "could not connect to Redis at \"%s:%d\"", s->host, s->port);
	s->fd_reserved = true;

	rc = cl_server_lookup(s, &s->pending_ai);
	if (rc != 0)
	{
		s->pending_ai = NULL;
		return cl_server_fail_io(s, ERRCODE_SQLCLIENT_UNABLE_TO_ESTABLISH_SQLCONNECTION,
								 gai_strerror(rc), "could not resolve the address of");
	}

	for (struct addrinfo *ai = s->pending_ai; ai; ai = ai->ai_next)
	{
		if (connect_one(s, ai, d->at, d->interruptible, &err))
		{
			freeaddrinfo(s->pending_ai);
			s->pending_ai = NULL;
			return true;
		}
		if (s->wes)
			FreeWaitEventSet(s->wes);
		s->wes = NULL;
		if (s->fd != PGINVALID_SOCKET)
			close(s->fd);
		s->fd = PGINVALID_SOCKET;
		if (err == ETIMEDOUT)
			break;				/* the deadline is spent */
	}
	if (err == ETIMEDOUT)
		return fail_timeout(s, d->timeout_ms, true);
	return cl_server_fail_io(s, ERRCODE_SQLCLIENT_UNABLE_TO_ESTABLISH_SQLCONNECTION,
							 strerror(err), "could not connect to");
}

/* Makes ctx on the connected socket s->fd. */
static bool
attach_context(ClRedisServer *s)
{
	s->ctx = redisConnectFd(s->fd);
	if (s->ctx == NULL)
		return cl_server_fail_io(s, ERRCODE_OUT_OF_MEMORY, NULL, "could not connect to");
	s->fd = PGINVALID_SOCKET;	/* ctx owns it now */
	s->ctx->flags &= ~REDIS_BLOCK;	/* the socket is non-blocking: EAGAIN is no error */
	cl_server_bound_reader(s);
	if (s->ctx->err || redisEnableKeepAlive(s->ctx) != REDIS_OK)
		return cl_server_fail_io(s, ERRCODE_SQLCLIENT_UNABLE_TO_ESTABLISH_SQLCONNECTION, s->ctx->errstr,
								 "could not connect to");
	if (s->wes == NULL)
		make_wait_set(s, s->ctx->fd, WL_SOCKET_READABLE);
	return true;
}

bool
cl_server_open(ClRedisServer *s, const ClDeadline *d)
{
	return open_socket(s, d) && attach_context(s);
}

bool
cl_server_auth_select(ClRedisServer *s, const char *password, int db, const ClDeadline *d)
{
	RedisCmd	cmds[2];
	int			n = 0;
	char		dbs[16];
	int			auth = -1;

	memset(cmds, 0, sizeof(cmds));
	if (password[0])
	{
		auth = n;
		cmds[n].argc = 2;
		cmds[n].argv[0] = "AUTH";
		cmds[n].argv[1] = password;
		n++;
	}
	if (db != 0)
	{
		snprintf(dbs, sizeof(dbs), "%d", db);
		cmds[n].argc = 2;
		cmds[n].argv[0] = "SELECT";
		cmds[n].argv[1] = dbs;
		n++;
	}
	for (int i = 0; i < n; i++)
		cmds[i].argvlen[0] = strlen(cmds[i].argv[0]), cmds[i].argvlen[1] = strlen(cmds[i].argv[1]);
	if (n == 0)
		return true;

	cl_server_reserve(s, n + 1);
	if (!cl_server_exchange(s, cmds, n, d))
		return false;
	for (int i = 0; i < n; i++)
	{
		redisReply *r = s->held[i];

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
			return cl_server_fail_io(s, ERRCODE_SQLCLIENT_UNABLE_TO_ESTABLISH_SQLCONNECTION, detail,
									 "could not authenticate to");
		}
		return cl_server_fail_io(s, ERRCODE_SQLCLIENT_UNABLE_TO_ESTABLISH_SQLCONNECTION,
								 r->type == REDIS_REPLY_ERROR ? r->str : "unexpected reply",
								 "could not select the database on");
	}
	cl_server_free_replies(s);
	return true;
}

#else							/* !USE_HIREDIS */

/* Built without hiredis nothing connects: redis_require() raises first. */
void
cl_server_free_replies(ClRedisServer *s)
{
	s->nheld = 0;
}

void
cl_server_drop(ClRedisServer *s)
{
	s->in_exchange = false;
}

#endif							/* USE_HIREDIS */
