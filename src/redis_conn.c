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
#include "stats.h"

/* Redis is configured when coupon_lock.redis_host is not empty. */
bool
redis_configured(void)
{
	return cl_redis_host != NULL && cl_redis_host[0] != '\0';
}

#ifdef USE_HIREDIS

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

/* The settings the connection was made with; a change reconnects. */
static char *conn_host = NULL;
static int	conn_port;
static int	conn_db;
static char *conn_password = NULL;

/* The last failure, reported by redis_run() or redis_run_quiet(). */
static int	fail_code;
static char fail_msg[256];
static char fail_detail[256];

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
	return fail(sqlstate, buf, "%s Redis at \"%s:%d\"", what, cl_redis_host, cl_redis_port);
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

static bool
append(const RedisCmd *cmd, bool by_sha)
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
	if (redisAppendCommandArgv(ctx, argc, argv, argvlen) != REDIS_OK)
		return fail_io(ERRCODE_CONNECTION_FAILURE, ctx->errstr, "could not send a command to");
	return true;
}

static bool
flush(int timeout_ms, bool connecting, bool interruptible)
{
	TimestampTz deadline = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), timeout_ms);
	int			done = 0;

	for (;;)
	{
		if (redisBufferWrite(ctx, &done) != REDIS_OK)
			return fail_io(ERRCODE_CONNECTION_FAILURE, ctx->errstr, "could not send a command to");
		if (done)
			return true;
		if (!wait_socket(WL_SOCKET_WRITEABLE, deadline, interruptible))
			return fail_timeout(timeout_ms, connecting);
	}
}

/* Reads the next reply into held[nheld++]. */
static bool
read_reply(int timeout_ms, bool connecting, bool interruptible)
{
	TimestampTz deadline = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), timeout_ms);
	void	   *reply = NULL;

	for (;;)
	{
		if (redisGetReplyFromReader(ctx, &reply) != REDIS_OK)
			return fail_io(ERRCODE_PROTOCOL_VIOLATION, ctx->errstr, "could not read the reply of");
		if (reply)
		{
			held[nheld++] = reply;
			return true;
		}
		if (!wait_socket(WL_SOCKET_READABLE, deadline, interruptible))
			return fail_timeout(timeout_ms, connecting);
		if (redisBufferRead(ctx) != REDIS_OK)
			return fail_io(ERRCODE_CONNECTION_FAILURE, ctx->errstr, "lost connection to");
	}
}

static void
reserve_held(int n)
{
	if (n > held_cap)
	{
		int			cap = Max(n, 16);

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
 * Sends cmds as one pipeline and reads their replies into held[0..n-1].
 * Script commands whose SHA1 is known go as EVALSHA; those that come back
 * NOSCRIPT are sent again as EVAL (which also caches the script).
 */
static bool
exchange(const RedisCmd *cmds, int n, int timeout_ms, bool connecting, bool interruptible)
{
	int			nretry = 0;

	reserve_held(n + 1);		/* a resent reply is read into held[n] first */
	for (int i = 0; i < n; i++)
		if (!append(&cmds[i], cmds[i].script && cmds[i].script->sha1[0]))
			return false;
	if (!flush(timeout_ms, connecting, interruptible))
		return false;
	for (int i = 0; i < n; i++)
		if (!read_reply(timeout_ms, connecting, interruptible))
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
	if (nretry == 0)
		return true;
	if (!flush(timeout_ms, connecting, interruptible))
		return false;
	for (int i = 0; i < n; i++)
	{
		if (held[i] == NULL)
		{
			/* read_reply appends at nheld: read into the end, then move */
			if (!read_reply(timeout_ms, connecting, interruptible))
				return false;
			held[i] = held[--nheld];
		}
	}
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
			return fail(ERRCODE_EXTERNAL_ROUTINE_EXCEPTION, r->str,
						"Redis at \"%s:%d\" returned an error", cl_redis_host, cl_redis_port);
	}
	return fail(ERRCODE_PROTOCOL_VIOLATION, NULL,
				"unexpected reply of type %d from Redis at \"%s:%d\"",
				r->type, cl_redis_host, cl_redis_port);
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
open_socket(TimestampTz deadline, bool interruptible)
{
	struct addrinfo hints;
	char		port[16];
	int			rc;
	int			err = 0;

	if (!AcquireExternalFD())
		return fail(ERRCODE_SQLCLIENT_UNABLE_TO_ESTABLISH_SQLCONNECTION,
					"There are too many open files on the local server.",
					"could not connect to Redis at \"%s:%d\"", cl_redis_host, cl_redis_port);
	fd_reserved = true;

	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_protocol = IPPROTO_TCP;
	snprintf(port, sizeof(port), "%d", cl_redis_port);
	rc = getaddrinfo(cl_redis_host, port, &hints, &pending_ai);
	if (rc != 0)
	{
		pending_ai = NULL;
		return fail_io(ERRCODE_SQLCLIENT_UNABLE_TO_ESTABLISH_SQLCONNECTION,
					   gai_strerror(rc), "could not resolve the address of");
	}

	for (struct addrinfo *ai = pending_ai; ai; ai = ai->ai_next)
	{
		if (connect_one(ai, deadline, interruptible, &err))
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
		return fail_timeout(cl_redis_connect_timeout, true);
	return fail_io(ERRCODE_SQLCLIENT_UNABLE_TO_ESTABLISH_SQLCONNECTION,
				   strerror(err), "could not connect to");
}

/* Sends AUTH and SELECT as one pipeline, when they are needed. */
static bool
authenticate_and_select(bool interruptible)
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

	if (!exchange(cmds, n, cl_redis_connect_timeout, true, interruptible))
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
	conn_host = MemoryContextStrdup(TopMemoryContext, cl_redis_host);
	conn_password = MemoryContextStrdup(TopMemoryContext, cl_redis_password);
	conn_port = cl_redis_port;
	conn_db = cl_redis_db;
}

static bool
settings_changed(void)
{
	return strcmp(conn_host, cl_redis_host) != 0 || conn_port != cl_redis_port ||
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

static bool
connect_redis(bool interruptible)
{
	TimestampTz deadline = TimestampTzPlusMilliseconds(GetCurrentTimestamp(),
													   cl_redis_connect_timeout);

	if (!open_socket(deadline, interruptible))
		return false;

	ctx = redisConnectFd(pending_fd);
	if (ctx == NULL)
		return fail_io(ERRCODE_OUT_OF_MEMORY, NULL, "could not connect to");
	pending_fd = PGINVALID_SOCKET;	/* ctx owns it now */
	ctx->flags &= ~REDIS_BLOCK;		/* the socket is non-blocking: EAGAIN is no error */
	if (ctx->err || redisEnableKeepAlive(ctx) != REDIS_OK)
		return fail_io(ERRCODE_SQLCLIENT_UNABLE_TO_ESTABLISH_SQLCONNECTION, ctx->errstr,
					   "could not connect to");
	if (wes == NULL)
		make_wait_set(ctx->fd, WL_SOCKET_READABLE);

	if (!authenticate_and_select(interruptible))
		return false;
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

/* ---- the two entry points ---- */

static bool
run(RedisCmd *cmds, int n, RedisValue *out, bool interruptible)
{
	bool		ok = true;

	if (ctx != NULL && (settings_changed() || !socket_alive()))
		drop_connection();
	if (ctx == NULL && !connect_redis(interruptible))
		return false;

	if (!exchange(cmds, n, cl_redis_command_timeout, false, interruptible))
		return false;
	for (int i = 0; i < n && ok; i++)
		ok = to_value(held[i], &out[i]);
	free_held();
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
		ok = run(cmds, ncmds, out, true);
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
redis_run_quiet(RedisCmd *cmds, int ncmds, RedisValue *out, char **errmsg)
{
	if (!redis_configured())
	{
		*errmsg = pstrdup("Redis is not configured");
		return false;
	}
	if (run(cmds, ncmds, out, false))
		return true;
	stats_count(STAT_REDIS, STAT_ERROR);
	*errmsg = psprintf("%s%s%s", fail_msg, fail_detail[0] ? ": " : "", fail_detail);
	return false;
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

bool
redis_run_quiet(RedisCmd *cmds pg_attribute_unused(), int ncmds pg_attribute_unused(),
				RedisValue *out pg_attribute_unused(), char **errmsg)
{
	*errmsg = pstrdup("coupon_lock was built without Redis support");
	return false;
}

void
redis_script_prepare(RedisScript *script pg_attribute_unused())
{
}

#endif							/* USE_HIREDIS */
