/*-------------------------------------------------------------------------
 *
 * redis_multi.c
 *	  The same commands on several Redis servers at once (Redlock's N
 *	  masters), each a ClRedisServer (redis_server.c), under one wait set.
 *
 * Concurrency rules.  As for one server (redis_server.c): a run sends the
 * commands to every server and reads every reply before it returns; a
 * server that has not answered by the run's one deadline, or whose
 * exchange was cut off (an I/O error, a cancel raised while waiting, a
 * FATAL that exits mid-run: in_exchange is still set), is dropped, and its
 * next run connects afresh.
 *
 * One wait for all.  Every socket is non-blocking; connecting (the connect
 * itself, AUTH and SELECT pipelined ahead of the commands), writing and
 * reading all go through one WaitEventSet holding every server's socket,
 * the process latch and postmaster death.  So the servers are asked at the
 * same time, a dead or SIGSTOPped server costs the run's deadline once,
 * and a latch wakeup runs CHECK_FOR_INTERRUPTS (not in a quiet run).  The
 * first address of a host name is used.
 *
 * The wait set outlives a run so that the quiet runs of the commit and
 * abort callbacks need no allocation: it is made again at the start of a
 * run that is not quiet whenever a socket was opened since it was made
 * (the kernel takes a closed socket out of it by itself; a dropped
 * server's position is never touched again).
 *
 * Scripts.  A script whose SHA1 is known goes as EVALSHA; a server that
 * answers NOSCRIPT (restarted empty, SCRIPT FLUSH) gets EVAL for those
 * commands, on its own, within the same deadline.  Replies are bounded as
 * on one server.
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
#include "redis_multi.h"

#define MAX_PREFIX			2	/* AUTH and SELECT */
#define REPLY_MAX_BYTES		(64 * 1024)
#define DECIDED_GRACE_MS	5	/* see run() */

typedef enum ServerPhase
{
	PH_IDLE,					/* not in this run, or finished */
	PH_CONNECTING,				/* connect() under way */
	PH_EXCHANGE,				/* the commands sent or being sent */
	PH_RESEND					/* EVAL for NOSCRIPT commands */
} ServerPhase;

const char *
cl_server_name(const ClRedisServer *s)
{
	static char name[272];

	snprintf(name, sizeof(name), "%s:%d", s->host, s->port);
	return name;
}

bool
cl_server_answered(const ClRedisServer *s)
{
	return s->answered;
}

const char *
cl_server_error(const ClRedisServer *s)
{
	return s->fail_msg;
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

		cl_server_reserve(sv, cap);
		if (sv->values_cap >= cap)
			continue;
		cap = Max(cap, Max(16, sv->values_cap * 2));
		if (sv->values)
		{
			pfree(sv->resend);
			pfree(sv->values);
		}
		sv->resend = MemoryContextAlloc(TopMemoryContext, sizeof(int) * cap);
		sv->values = MemoryContextAlloc(TopMemoryContext, sizeof(RedisValue) * cap);
		sv->values_cap = cap;
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

#ifdef USE_HIREDIS

static WaitEventSet *wes = NULL;
static bool wes_stale = true;

static pgsocket
server_fd(const ClRedisServer *s)
{
	return s->ctx ? s->ctx->fd : s->fd;
}

/* Records why s did not answer and drops its connection. */
static void pg_attribute_printf(2, 3)
fail(ClRedisServer *s, const char *fmt,...)
{
	va_list		ap;

	va_start(ap, fmt);
	vsnprintf(s->fail_msg, sizeof(s->fail_msg), fmt, ap);
	va_end(ap);
	cl_server_drop(s);
	s->phase = PH_IDLE;
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
	if (cl_server_append(s, cmd, by_sha))
		return true;
	s->phase = PH_IDLE;			/* cl_server_append dropped the connection */
	return false;
}

/* AUTH and SELECT on a connection just made, then the commands. */
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
	s->nheld = 0;
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
	struct addrinfo *ai = NULL;
	int			one = 1;
	int			rc;

	if (!AcquireExternalFD())
	{
		fail(s, "there are too many open files on the local server");
		return false;
	}
	s->fd_reserved = true;
	rc = cl_server_lookup(s, &ai);
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
	cl_server_bound_reader(s);
	if (s->ctx->err || redisEnableKeepAlive(s->ctx) != REDIS_OK)
	{
		fail(s, "could not connect: %s", s->ctx->errstr);
		return;
	}
	(void) append_all(s, true);
}

/* ---- replies ---- */

/* Reply i as the value of command c; an error reply marks the server. */
static void
take_value(ClRedisServer *s, int i, int c)
{
	if (!cl_server_reply_value(s, i, &s->values[c]) && !s->reply_error)
	{
		s->reply_error = true;
		snprintf(s->fail_msg, sizeof(s->fail_msg), "it answered %s",
				 s->fail_detail[0] ? s->fail_detail : "with a reply of an unexpected type");
	}
}

static void
finish(ClRedisServer *s)
{
	cl_server_free_replies(s);
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
		for (int j = 0; j < s->nheld; j++)
			take_value(s, j, s->resend[j]);
		finish(s);
		return;
	}
	for (int i = 0; i < s->nprefix; i++)
	{
		redisReply *r = s->held[i];

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
		if (s->cmds[i].script && cl_server_is_noscript(s, s->nprefix + i))
			s->resend[nresend++] = i;
		else
			take_value(s, s->nprefix + i, i);
	}
	if (nresend == 0)
	{
		finish(s);
		return;
	}
	cl_server_free_replies(s);
	for (int j = 0; j < nresend; j++)
		if (!append_cmd(s, &s->cmds[s->resend[j]], false))
			return;
	s->phase = PH_RESEND;
	s->nwant = nresend;
	s->nheld = 0;
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
	(void) cl_server_take_too_large();
	while (s->nheld < s->nwant)
	{
		void	   *reply = NULL;

		if (redisGetReplyFromReader(s->ctx, &reply) != REDIS_OK)
		{
			fail(s, "could not read a reply: %s", cl_server_take_too_large() ?
				 "it announced more elements than a lock command returns" : s->ctx->errstr);
			return;
		}
		if (reply == NULL)
		{
			if (s->ctx->reader->len - s->ctx->reader->pos > REPLY_MAX_BYTES)
				fail(s, "a reply is longer than any reply to a lock command");
			return;
		}
		s->held[s->nheld++] = reply;
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
	for (int k = 0; k < n; k++)
		s[k]->set_pos = -1;		/* nothing of the old set is touched again */
	if (wes)
	{
		FreeWaitEventSet(wes);
		wes = NULL;				/* CreateWaitEventSet may raise */
	}
	wes = CreateWaitEventSet(TopMemoryContext, n + 2);
	AddWaitEventToSet(wes, WL_LATCH_SET, PGINVALID_SOCKET, MyLatch, NULL);
	if (IsUnderPostmaster)
		AddWaitEventToSet(wes, WL_EXIT_ON_PM_DEATH, PGINVALID_SOCKET, NULL, NULL);
	for (int k = 0; k < n; k++)
	{
		s[k]->set_pos = -1;
		if (server_fd(s[k]) == PGINVALID_SOCKET)
			continue;
		s[k]->set_events = WL_SOCKET_WRITEABLE;
		s[k]->set_pos = AddWaitEventToSet(wes, WL_SOCKET_WRITEABLE, server_fd(s[k]), NULL, s[k]);
	}
	wes_stale = false;
}

/*
 * What s waits for: to write while bytes are queued (or connecting), else
 * to read.  A server out of the run waits to read too: only a close (or a
 * stray byte, out of step) wakes it, and drops it.
 */
static void
set_events(ClRedisServer *s)
{
	uint32		events = WL_SOCKET_READABLE;

	if (active(s) && (s->phase == PH_CONNECTING || sdslen(s->ctx->obuf) > 0))
		events = WL_SOCKET_WRITEABLE;
	if (events != s->set_events)
	{
		ModifyWaitEvent(wes, s->set_pos, events, NULL);
		s->set_events = events;
	}
}

/*
 * Whether the round's outcome is settled (ClQuorum, redis_multi.h): need
 * servers said ok, or need answered and the ok ones can no longer reach
 * need, or so many failed that need can no longer answer.
 */
static bool
decided(ClRedisServer **s, int n, const ClQuorum *q)
{
	int			ok = 0;
	int			answered = 0;
	int			failed = 0;

	for (int k = 0; k < n; k++)
	{
		if (s[k]->answered)
		{
			answered++;
			ok += q->ok(&s[k]->values[0]);
		}
		else if (!active(s[k]))
			failed++;
	}
	if (ok >= q->need || failed > n - q->need)
		return true;
	return answered >= q->need && (answered - ok) + failed > n - q->need;
}

static int
run(ClRedisServer **s, int n, const RedisCmd *cmds, int ncmds, int timeout_ms, bool quiet,
	const ClQuorum *quorum)
{
	bool		early = false;
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
		sv->fail_msg[0] = '\0';
		sv->fail_detail[0] = '\0';
		sv->phase = PH_IDLE;
		if (sv->ctx != NULL && (sv->in_exchange || !cl_server_socket_alive(sv)))
			fail(sv, "the connection was closed");
		if (sv->ctx != NULL && sv->set_pos >= 0)
			(void) append_all(sv, false);
		else if (quiet)
			fail(sv, "no connection before the transaction ended");
		else
		{
			if (sv->ctx != NULL)
				cl_server_drop(sv);
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
		{
			if (s[k]->set_pos >= 0)
				set_events(s[k]);
			any |= active(s[k]);
		}
		if (!any)
			break;
		INSTR_TIME_SET_CURRENT(now);
		INSTR_TIME_SUBTRACT(now, start);
		/*
		 * Once the round is decided, the rest get as long again as it took
		 * (at least DECIDED_GRACE_MS): a healthy server that needed an EVAL
		 * for NOSCRIPT still takes its release, a paused one costs little.
		 */
		if (!early && quorum && ncmds > 0 && decided(s, n, quorum))
		{
			long		spent = (long) INSTR_TIME_GET_MILLISEC(now);

			early = true;
			timeout_ms = Min(timeout_ms, spent + Max(spent, DECIDED_GRACE_MS));
		}
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
			if (sv == NULL || sv->set_pos != evs[e].pos)
				continue;
			if (!active(sv))
				cl_server_drop(sv);		/* a finished server's socket woke: closed */
			else
				step(sv, evs[e].events);
		}
	}
	for (int k = 0; k < n; k++)
	{
		if (active(s[k]) && early)
			fail(s[k], "no answer before a majority of the servers decided");
		else if (active(s[k]))
			fail(s[k], "no answer within %d ms", timeout_ms);
		answered += s[k]->answered;
	}
	return answered;
}

int
cl_servers_run(ClRedisServer **s, int n, const RedisCmd *cmds, int ncmds, int timeout_ms,
			   bool quiet)
{
	return cl_servers_run_quorum(s, n, cmds, ncmds, timeout_ms, quiet, NULL);
}

int
cl_servers_run_quorum(ClRedisServer **s, int n, const RedisCmd *cmds, int ncmds, int timeout_ms,
					  bool quiet, const ClQuorum *quorum)
{
	volatile int answered = 0;

	for (int k = 0; k < n; k++)
		s[k]->answered = false;	/* also when a quiet run cannot start */
	for (int k = 0; k < n; k++)
		if (s[k]->held_cap < ncmds + MAX_PREFIX || s[k]->values_cap < ncmds + MAX_PREFIX)
		{
			if (quiet)
				return 0;
			cl_servers_reserve(s, n, ncmds);
		}
	if (quiet)
		return run(s, n, cmds, ncmds, timeout_ms, true, quorum);

	PG_TRY();
	{
		answered = run(s, n, cmds, ncmds, timeout_ms, false, quorum);
	}
	PG_CATCH();
	{
		for (int k = 0; k < n; k++)
			if (s[k]->in_exchange)
			{
				cl_server_drop(s[k]);
				s[k]->phase = PH_IDLE;
			}
		PG_RE_THROW();
	}
	PG_END_TRY();
	return answered;
}

#else							/* !USE_HIREDIS */

/* Built without hiredis, redis_require() raises before anything gets here. */
int
cl_servers_run(ClRedisServer **s pg_attribute_unused(), int n pg_attribute_unused(),
			   const RedisCmd *cmds pg_attribute_unused(), int ncmds pg_attribute_unused(),
			   int timeout_ms pg_attribute_unused(), bool quiet pg_attribute_unused())
{
	return 0;
}

int
cl_servers_run_quorum(ClRedisServer **s pg_attribute_unused(), int n pg_attribute_unused(),
					  const RedisCmd *cmds pg_attribute_unused(), int ncmds pg_attribute_unused(),
					  int timeout_ms pg_attribute_unused(), bool quiet pg_attribute_unused(),
					  const ClQuorum *quorum pg_attribute_unused())
{
	return 0;
}

#endif							/* USE_HIREDIS */
