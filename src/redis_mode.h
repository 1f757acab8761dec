/*-------------------------------------------------------------------------
 *
 * redis_mode.h
 *	  How many servers a Redis lock lives on (redis_mode.c): one master
 *	  (coupon_lock.redis_host or Sentinel, redis_conn.c) or a majority of
 *	  Redlock's (redlock.c).  redis_lock.c asks "take, release, extend this
 *	  key" and does not know which mode is on.
 *
 *-------------------------------------------------------------------------
 */
#ifndef COUPON_LOCK_REDIS_MODE_H
#define COUPON_LOCK_REDIS_MODE_H

#include "postgres.h"

#include "redis_conn.h"

/*
 * SET NX PX (set): true when taken.  One server: its answer (NULL means
 * held elsewhere).  Redlock: a majority within the validity, else released
 * everywhere (release) and false, class 08 below a majority answering.
 */
extern bool cl_mode_take(const RedisCmd *set, const RedisCmd *release, int64 ttl_ms);

/* After cl_mode_take raised: whether its SET may have reached a server. */
extern bool cl_mode_sent_anything(void);

/*
 * After a take or extend: with coupon_lock.redis_min_replicas (one server
 * only), WAIT for that many replicas; fewer releases the key (release)
 * and answers false.  True otherwise.
 */
extern bool cl_mode_acknowledged(const RedisCmd *release);

/* The compare-on-token release (release): true when it deleted the key. */
extern bool cl_mode_release(const RedisCmd *release);

/*
 * The compare-on-token extend of rkey to ttl_ms (extend: the one-server
 * script call): true when still held and extended.
 */
extern bool cl_mode_extend(const char *rkey, int rkeylen, const char *token, int tokenlen,
						   int64 ttl_ms, const RedisCmd *extend, const RedisCmd *release);

/* The backlog's releases, each to every server (may raise). */
extern void cl_mode_release_all(RedisCmd *cmds, int n, RedisValue *out);

/* The transaction end (see redis_conn.h's redis_run_quiet). */
extern void cl_mode_reserve(int ncmds);
extern void cl_mode_prepare_xact_end(void);
extern RedisQuietResult cl_mode_run_quiet(RedisCmd *cmds, int ncmds, RedisValue *out);
extern const char *cl_mode_quiet_error(void);

#endif							/* COUPON_LOCK_REDIS_MODE_H */
