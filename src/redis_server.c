/*-------------------------------------------------------------------------
 *
 * redis_server.c
 *	  One Redis server's connection as an object, and the exchange of the
 *	  same commands with several servers at once (Redlock's N masters).
 *
 * Concurrency rules.  Each backend owns its objects; nothing is shared
 * between backends.  A run sends the commands to every server and reads
 * every reply before it returns; a server that has not answered by the
 * run's one deadline, or whose exchange was cut off (an I/O error, a cancel
 * raised while waiting, a FATAL that exits mid-run: in_exchange is still
 * set), is dropped, because a half-read reply stream cannot be resumed: an
 * extra or missing reply would answer the next command.  Its next run
 * connects afresh.
 *
 * One wait for all.  Every socket is non-blocking; connecting (the
 * connect itself, AUTH and SELECT pipelined ahead of the commands),
 * writing and reading all go through one WaitEventSet holding every
 * server's socket, the process latch and postmaster death.  So the
 * servers are asked at the same time, a dead or SIGSTOPped server costs
 * the run's deadline once, and a latch wakeup runs CHECK_FOR_INTERRUPTS
 * (not in a quiet run).  Only the host name lookup (getaddrinfo) can
 * block; the first address of a name is used.
 *
 * The wait set outlives a run so that the quiet runs of the commit and
 * abort callbacks need no allocation: it is made again at the start of a
 * run that is not quiet whenever a socket was closed or opened since it
 * was made (the kernel takes a closed socket out of it by itself; a
 * dropped server's position is never touched again).
 *
 * Scripts.  A script whose SHA1 is known goes as EVALSHA; a server that
 * answers NOSCRIPT (restarted empty, SCRIPT FLUSH) gets EVAL for those
 * commands, on its own, within the same deadline.  What a reply may
 * announce is bounded as on the single connection (redis_conn.c).
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
#include "portability/instr_time.h"
#include "storage/fd.h"
#include "storage/latch.h"
#include "utils/memutils.h"
#include "utils/wait_event.h"

#include "guc.h"
#include "redis_server.h"

#ifdef USE_HIREDIS

#define REPLY_MAX_BYTES		(64 * 1024)
#define MAX_PREFIX			2	/* AUTH and SELECT */

typedef enum ServerPhase
{
	PH_IDLE,					/* not in this run, or finished */
	PH_CONNECTING,				/* connect() under way */
	PH_EXCHANGE,				/* the commands sent or being sent */
	PH_RESEND					/* EVAL for NOSCRIPT commands */
} ServerPhase;

struct ClRedisServer
{
	char		host[256];
	int			port;
	char		name[272];

	redisContext *ctx;			/* owns its socket */
	pgsocket	fd;				/* the socket while connecting */
	bool		fd_reserved;
	bool		in_exchange;
	int			wes_pos;		/* -1: not in the wait set */
	uint32		wes_events;

	/* the current run */
	ServerPhase phase;
	const RedisCmd *cmds;
	int			ncmds;
	int			nprefix;		/* AUTH/SELECT replies ahead of the commands */
	int			nwant;
	int			nread;
	bool		answered;
	bool		reply_error;
	char		error[256];

	/* room, reserved outside quiet runs */
	redisReply **replies;
	int		   *resend;
	RedisValue *values;
	int			cap;
};

static WaitEventSet *wes = NULL;
static bool wes_stale = true;

static pgsocket
server_fd(const ClRedisServer *s)
{
	return s->ctx ? s->ctx->fd : s->fd;
}

static void
free_replies(ClRedisServer *s)
{
	for (int i = 0; i < s->nread; i++)
		if (s->replies[i])
			freeReplyObject(s->replies[i]);
	s->nread = 0;
}

static void
drop(ClRedisServer *s)
{
	if (s->replies)
		free_replies(s);
	if (s->ctx)
		redisFree(s->ctx);
	else if (s->fd != PGINVALID_SOCKET)
		close(s->fd);
	s->ctx = NULL;
	s->fd = PGINVALID_SOCKET;
	if (s->fd_reserved)
		ReleaseExternalFD();
	s->fd_reserved = false;
	s->in_exchange = false;
	if (s->wes_pos >= 0)
		wes_stale = true;
	s->wes_pos = -1;
	s->phase = PH_IDLE;
}

/* Records why s did not answer and drops its connection. */
static void pg_attribute_printf(2, 3)
fail(ClRedisServer *s, const char *fmt,...)
{
	va_list		ap;

	va_start(ap, fmt);
	vsnprintf(s->error, sizeof(s->error), fmt, ap);
	va_end(ap);
	drop(s);
}

ClRedisServer *
cl_server_new(const char *host, int port)
{
	ClRedisServer *s = MemoryContextAllocZero(TopMemoryContext, sizeof(ClRedisServer));

	strlcpy(s->host, host, sizeof(s->host));
	s->port = port;
	snprintf(s->name, sizeof(s->name), "%s:%d", host, port);
	s->fd = PGINVALID_SOCKET;
	s->wes_pos = -1;
	return s;
}

void
cl_server_free(ClRedisServer *s)
{
	drop(s);
	if (s->replies)
	{
		pfree(s->replies);
		pfree(s->resend);
		pfree(s->values);
	}
	pfree(s);
}

const char *
cl_server_name(const ClRedisServer *s)
{
	return s->name;
}

bool
cl_server_answered(const ClRedisServer *s)
{
	return s->answered;
}

const char *
cl_server_error(const ClRedisServer *s)
{
	return s->error;
}

const RedisValue *
cl_server_value(const ClRedisServer *s, int i)
{
	Assert(s->answered && i < s->ncmds);
	return &s->values[i];
}

void
cl_servers_reserve(ClRedisServer **s, int n, int ncmds)
{
	for (int k = 0; k < n; k++)
	{
		ClRedisServer *sv = s[k];
		int			cap = ncmds + MAX_PREFIX;

		if (sv->cap >= cap)
			continue;
		cap = Max(cap, Max(16, sv->cap * 2));
		if (sv->replies)
		{
			pfree(sv->replies);
			pfree(sv->resend);
			pfree(sv->values);
		}
		sv->replies = MemoryContextAllocZero(TopMemoryContext, sizeof(redisReply *) * cap);
		sv->resend = MemoryContextAlloc(TopMemoryContext, sizeof(int) * cap);
		sv->values = MemoryContextAlloc(TopMemoryContext, sizeof(RedisValue) * cap);
		sv->cap = cap;
	}
}

int
cl_servers_connected(ClRedisServer **s, int n)
{
	int			c = 0;

	for (int k = 0; k < n; k++)
		c += s[k]->ctx != NULL;
	return c;
}

/* ---- building the pipeline ---- */

static bool
append_argv(ClRedisServer *s, int argc, const char **argv, const size_t *argvlen)
{
	if (redisAppendCommandArgv(s->ctx, argc, argv, argvlen) != REDIS_OK)
	{
		fail(s, "could not queue a command: %s", s->ctx->errstr);
		return false;
	}
	return true;
}

static bool
append_cmd(ClRedisServer *s, const RedisCmd *cmd, bool by_sha)
{
	const char *argv[REDIS_MAX_ARGS + 2];
	size_t		argvlen[REDIS_MAX_ARGS + 2];
	int			argc = cl_redis_cmd_argv(cmd, by_sha, argv, argvlen);

	return append_argv(s, argc, argv, argvlen);
}

/* On a connection just made: AUTH and SELECT, then the commands. */
static bool
append_all(ClRedisServer *s, bool fresh)
{
	s->nprefix = 0;
	if (fresh && cl_redis_password[0])
	{
		const char *argv[] = {"AUTH", cl_redis_password};
		size_t		len[] = {4, strlen(cl_redis_password)};

		if (!append_argv(s, 2, argv, len))
			return false;
		s->nprefix++;
	}
	if (fresh && cl_redis_db != 0)
	{
		char		db[16];
		const char *argv[] = {"SELECT", db};
		size_t		len[2];

		snprintf(db, sizeof(db), "%d", cl_redis_db);
		len[0] = 6;
		len[1] = strlen(db);
		if (!append_argv(s, 2, argv, len))
			return false;
		s->nprefix++;
	}
	for (int i = 0; i < s->ncmds; i++)
		if (!append_cmd(s, &s->cmds[i], s->cmds[i].script && s->cmds[i].script->sha1[0]))
			return false;
	s->nwant = s->nprefix + s->ncmds;
	s->nread = 0;
	s->phase = PH_EXCHANGE;
	s->in_exchange = true;
	if (s->nwant == 0)
	{
		/* only connecting (cl_redlock_prepare_xact_end): nothing to read */
		s->phase = PH_IDLE;
		s->in_exchange = false;
		s->answered = true;
	}
	return true;
}

/* ---- connecting ---- */

/* Starts a non-blocking connect; false (s failed) when it cannot start. */
static bool
start_connect(ClRedisServer *s)
{
	struct addrinfo hints;
	struct addrinfo *ai = NULL;
	char		port[16];
	int			one = 1;
	int			rc;

	if (!AcquireExternalFD())
	{
		fail(s, "there are too many open files on the local server");
		return false;
	}
	s->fd_reserved = true;
	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_protocol = IPPROTO_TCP;
	snprintf(port, sizeof(port), "%d", s->port);
	rc = getaddrinfo(s->host, port, &hints, &ai);
	if (rc != 0)
	{
		fail(s, "could not resolve its address: %s", gai_strerror(rc));
		return false;
	}
	s->fd = socket(ai->ai_family, ai->ai_socktype, ai->ai_protocol);
	if (s->fd == PGINVALID_SOCKET || !pg_set_noblock(s->fd) ||
		setsockopt(s->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)) < 0 ||
		(connect(s->fd, ai->ai_addr, ai->ai_addrlen) < 0 && errno != EINPROGRESS))
	{
		int			err = errno;

		freeaddrinfo(ai);
		fail(s, "could not connect: %s", strerror(err));
		return false;
	}
	freeaddrinfo(ai);
	wes_stale = true;			/* a new socket: the wait set is made again */
	s->phase = PH_CONNECTING;
	s->in_exchange = true;
	return true;
}

/* The connect finished: make the hiredis context and queue everything. */
static void
finish_connect(ClRedisServer *s)
{
	int			soerr = 0;
	socklen_t	len = sizeof(soerr);

	if (getsockopt(s->fd, SOL_SOCKET, SO_ERROR, &soerr, &len) < 0)
		soerr = errno;
	if (soerr != 0)
	{
		fail(s, "could not connect: %s", strerror(soerr));
		return;
	}
	s->ctx = redisConnectFd(s->fd);
	if (s->ctx == NULL)
	{
		fail(s, "out of memory");
		return;
	}
	s->fd = PGINVALID_SOCKET;	/* the context owns it now */
	s->ctx->flags &= ~REDIS_BLOCK;
	cl_redis_bound_reader(s->ctx);
	if (s->ctx->err || redisEnableKeepAlive(s->ctx) != REDIS_OK)
	{
		fail(s, "could not connect: %s", s->ctx->errstr);
		return;
	}
	(void) append_all(s, true);
}

/* False when the server closed the connection (restart, idle timeout). */
static bool
socket_alive(const ClRedisServer *s)
{
	char		c;
	ssize_t		rc = recv(s->ctx->fd, &c, 1, MSG_PEEK | MSG_DONTWAIT);

	return rc < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR);
}

/* ---- replies ---- */

static bool
is_noscript(const redisReply *r)
{
	return r->type == REDIS_REPLY_ERROR && strncmp(r->str, "NOSCRIPT", 8) == 0;
}

static void
to_value(ClRedisServer *s, const redisReply *r, RedisValue *v)
{
	v->kind = RV_NIL;
	v->integer = 0;
	if (r->type == REDIS_REPLY_INTEGER)
	{
		v->kind = RV_INTEGER;
		v->integer = r->integer;
	}
	else if (r->type == REDIS_REPLY_STATUS && r->len == 2 && memcmp(r->str, "OK", 2) == 0)
		v->kind = RV_OK;
	else if (r->type != REDIS_REPLY_NIL && !s->reply_error)
	{
		s->reply_error = true;
		snprintf(s->error, sizeof(s->error), "it answered %s",
				 r->type == REDIS_REPLY_ERROR ? r->str : "with a reply of an unexpected type");
	}
}

static void
finish(ClRedisServer *s)
{
	free_replies(s);
	s->phase = PH_IDLE;
	if (s->ctx->reader->len > s->ctx->reader->pos)
	{
		fail(s, "it sent more replies than commands were sent");
		return;
	}
	s->in_exchange = false;
	s->answered = !s->reply_error;
}

/* Every reply of the round is in: check, convert, resend NOSCRIPTs. */
static void
round_complete(ClRedisServer *s)
{
	int			nresend = 0;

	if (s->phase == PH_RESEND)
	{
		for (int j = 0; j < s->nread; j++)
			to_value(s, s->replies[j], &s->values[s->resend[j]]);
		finish(s);
		return;
	}
	for (int i = 0; i < s->nprefix; i++)
	{
		redisReply *r = s->replies[i];

		if (!(r->type == REDIS_REPLY_STATUS && r->len == 2 && memcmp(r->str, "OK", 2) == 0))
		{
			char		word[32];

			/* only the first word: nothing about the password is shown */
			strlcpy(word, r->type == REDIS_REPLY_ERROR ? r->str : "an unexpected reply", sizeof(word));
			word[strcspn(word, " ")] = '\0';
			fail(s, "it answered %s with %s", i == 0 && cl_redis_password[0] ? "AUTH" : "SELECT", word);
			return;
		}
	}
	for (int i = 0; i < s->ncmds; i++)
	{
		redisReply *r = s->replies[s->nprefix + i];

		if (s->cmds[i].script && is_noscript(r))
			s->resend[nresend++] = i;
		else
			to_value(s, r, &s->values[i]);
	}
	if (nresend == 0)
	{
		finish(s);
		return;
	}
	free_replies(s);
	for (int j = 0; j < nresend; j++)
		if (!append_cmd(s, &s->cmds[s->resend[j]], false))
			return;
	s->phase = PH_RESEND;
	s->nwant = nresend;
	s->nread = 0;
}

/* The socket is ready: write what is queued, read what arrived. */
static void
step(ClRedisServer *s, uint32 events)
{
	int			done = 0;

	if (s->phase == PH_CONNECTING)
	{
		finish_connect(s);
		if (s->phase != PH_EXCHANGE)
			return;
		events = WL_SOCKET_WRITEABLE;
	}
	if (sdslen(s->ctx->obuf) > 0 && redisBufferWrite(s->ctx, &done) != REDIS_OK)
	{
		fail(s, "could not send: %s", s->ctx->errstr);
		return;
	}
	if (!(events & WL_SOCKET_READABLE))
		return;
	if (redisBufferRead(s->ctx) != REDIS_OK)
	{
		fail(s, "lost the connection: %s", s->ctx->errstr);
		return;
	}
	while (s->nread < s->nwant)
	{
		void	   *reply = NULL;

		if (redisGetReplyFromReader(s->ctx, &reply) != REDIS_OK)
		{
			fail(s, "could not read a reply: %s", cl_redis_take_too_large() ?
				 "it announced more elements than a lock command returns" : s->ctx->errstr);
			return;
		}
		if (reply == NULL)
		{
			if (s->ctx->reader->len - s->ctx->reader->pos > REPLY_MAX_BYTES)
				fail(s, "a reply is longer than any reply to a lock command");
			return;
		}
		s->replies[s->nread++] = reply;
	}
	round_complete(s);
}

/* ---- the run ---- */

static bool
active(const ClRedisServer *s)
{
	return s->phase != PH_IDLE;
}

static void
make_wait_set(ClRedisServer **s, int n)
{
	if (wes)
		FreeWaitEventSet(wes);
	wes = CreateWaitEventSet(TopMemoryContext, n + 2);
	AddWaitEventToSet(wes, WL_LATCH_SET, PGINVALID_SOCKET, MyLatch, NULL);
	if (IsUnderPostmaster)
		AddWaitEventToSet(wes, WL_EXIT_ON_PM_DEATH, PGINVALID_SOCKET, NULL, NULL);
	for (int k = 0; k < n; k++)
	{
		s[k]->wes_pos = -1;
		if (server_fd(s[k]) == PGINVALID_SOCKET)
			continue;
		s[k]->wes_events = WL_SOCKET_WRITEABLE;
		s[k]->wes_pos = AddWaitEventToSet(wes, WL_SOCKET_WRITEABLE, server_fd(s[k]), NULL, s[k]);
	}
	wes_stale = false;
}

/* What s waits for: to write while bytes are queued (or connecting), else to read. */
static void
set_events(ClRedisServer *s)
{
	uint32		events = WL_SOCKET_READABLE;

	if (s->phase == PH_CONNECTING || sdslen(s->ctx->obuf) > 0)
		events = WL_SOCKET_WRITEABLE;
	if (events != s->wes_events)
	{
		ModifyWaitEvent(wes, s->wes_pos, events, NULL);
		s->wes_events = events;
	}
}

static int
run(ClRedisServer **s, int n, const RedisCmd *cmds, int ncmds, int timeout_ms, bool quiet)
{
	instr_time	start;
	WaitEvent	evs[16];
	int			answered = 0;

	INSTR_TIME_SET_CURRENT(start);
	for (int k = 0; k < n; k++)
	{
		ClRedisServer *sv = s[k];

		sv->cmds = cmds;
		sv->ncmds = ncmds;
		sv->answered = false;
		sv->reply_error = false;
		sv->error[0] = '\0';
		sv->phase = PH_IDLE;
		if (sv->ctx != NULL && (sv->in_exchange || !socket_alive(sv)))
			fail(sv, "the connection was closed");
		if (sv->ctx != NULL && sv->wes_pos >= 0)
			(void) append_all(sv, false);
		else if (quiet)
			fail(sv, "no connection before the transaction ended");
		else
		{
			if (sv->ctx != NULL)
				drop(sv);
			(void) start_connect(sv);
		}
	}
	if (!quiet && wes_stale)
		make_wait_set(s, n);

	for (;;)
	{
		instr_time	now;
		long		left;
		int			nev;
		bool		any = false;

		for (int k = 0; k < n; k++)
			if (active(s[k]))
			{
				any = true;
				set_events(s[k]);
			}
		if (!any)
			break;
		INSTR_TIME_SET_CURRENT(now);
		INSTR_TIME_SUBTRACT(now, start);
		left = timeout_ms - (long) INSTR_TIME_GET_MILLISEC(now);
		if (left <= 0)
			break;
		nev = WaitEventSetWait(wes, left, evs, lengthof(evs), PG_WAIT_EXTENSION);
		for (int e = 0; e < nev; e++)
		{
			ClRedisServer *sv = evs[e].user_data;

			if (evs[e].events & WL_LATCH_SET)
			{
				ResetLatch(MyLatch);
				if (!quiet)
					CHECK_FOR_INTERRUPTS();
				continue;
			}
			if (sv == NULL || sv->wes_pos != evs[e].pos)
				continue;
			if (!active(sv))
				drop(sv);		/* a finished server's socket woke: closed */
			else
				step(sv, evs[e].events);
		}
	}
	for (int k = 0; k < n; k++)
	{
		if (active(s[k]))
			fail(s[k], "no answer within %d ms", timeout_ms);
		answered += s[k]->answered;
	}
	return answered;
}

int
cl_servers_run(ClRedisServer **s, int n, const RedisCmd *cmds, int ncmds, int timeout_ms,
			   bool quiet)
{
	volatile int answered = 0;

	for (int k = 0; k < n; k++)
		if (s[k]->cap < ncmds + MAX_PREFIX)
		{
			if (quiet)
				return 0;
			cl_servers_reserve(s, n, ncmds);
		}
	if (quiet)
		return run(s, n, cmds, ncmds, timeout_ms, true);

	PG_TRY();
	{
		answered = run(s, n, cmds, ncmds, timeout_ms, false);
	}
	PG_CATCH();
	{
		for (int k = 0; k < n; k++)
			if (s[k]->in_exchange)
				drop(s[k]);
		PG_RE_THROW();
	}
	PG_END_TRY();
	return answered;
}

#else							/* !USE_HIREDIS */

/* Built without hiredis, redis_require() raises before anything gets here. */
struct ClRedisServer
{
	char		name[272];
};

ClRedisServer *
cl_server_new(const char *host, int port)
{
	ClRedisServer *s = MemoryContextAllocZero(TopMemoryContext, sizeof(ClRedisServer));

	snprintf(s->name, sizeof(s->name), "%s:%d", host, port);
	return s;
}

void
cl_server_free(ClRedisServer *s)
{
	pfree(s);
}

const char *
cl_server_name(const ClRedisServer *s)
{
	return s->name;
}

bool
cl_server_answered(const ClRedisServer *s pg_attribute_unused())
{
	return false;
}

const char *
cl_server_error(const ClRedisServer *s pg_attribute_unused())
{
	return "coupon_lock was built without Redis support";
}

const RedisValue *
cl_server_value(const ClRedisServer *s pg_attribute_unused(), int i pg_attribute_unused())
{
	return NULL;
}

void
cl_servers_reserve(ClRedisServer **s pg_attribute_unused(), int n pg_attribute_unused(),
				   int ncmds pg_attribute_unused())
{
}

int
cl_servers_run(ClRedisServer **s pg_attribute_unused(), int n pg_attribute_unused(),
			   const RedisCmd *cmds pg_attribute_unused(), int ncmds pg_attribute_unused(),
			   int timeout_ms pg_attribute_unused(), bool quiet pg_attribute_unused())
{
	return 0;
}

int
cl_servers_connected(ClRedisServer **s pg_attribute_unused(), int n pg_attribute_unused())
{
	return 0;
}

#endif							/* USE_HIREDIS */
