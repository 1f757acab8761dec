/*-------------------------------------------------------------------------
 *
 * redlock.h
 *	  Redlock over coupon_lock.redlock_servers (redlock.c): the majority
 *	  rules on top of redis_server.c's runs over N masters.
 *
 *-------------------------------------------------------------------------
 */
#ifndef COUPON_LOCK_REDLOCK_H
#define COUPON_LOCK_REDLOCK_H

#include "postgres.h"

#include "redis_conn.h"

/* Most servers coupon_lock.redlock_servers may name. */
#define CL_REDLOCK_MAX_SERVERS	15

/* True when coupon_lock.redlock_servers is set. */
extern bool cl_redlock_configured(void);

/*
 * Parses 'host:port,host:port,...' into at most CL_REDLOCK_MAX_SERVERS
 * servers (hosts[i] of 256 bytes); false with *why set when the list is
 * not an odd number, at least 3, of host:port (coupon_lock.redlock_servers'
 * check hook).
 */
extern bool cl_redlock_parse(const char *list, int *n, char (*hosts)[256], int *ports,
							 const char **why);

/*
 * SET NX PX (set) on every server at once.  True when a majority took the
 * key and validity is left (ttl - elapsed - drift > 0).  Otherwise the key
 * is released (release, compare-on-token) on every server, those that did
 * not answer included, and false is returned when a majority answered; a
 * class 08 ERROR is raised when fewer did.
 */
extern bool cl_redlock_acquire(const RedisCmd *set, const RedisCmd *release, int64 ttl_ms);

/*
 * The compare-on-token release on every server; true when a majority
 * deleted the key.  Raises class 08 when fewer than a majority answered.
 */
extern bool cl_redlock_release(const RedisCmd *release);

/*
 * The compare-on-token extend to ttl_ms on every server: true when a
 * majority held and extended the key within the validity the lock had
 * left.  Otherwise the key is released everywhere and false returned
 * (class 08 when fewer than a majority answered).
 */
extern bool cl_redlock_extend(const char *rkey, int rkeylen, const char *token, int tokenlen,
							  int64 ttl_ms, const RedisCmd *release);

/* The transaction end's side (see redis_conn.h's redis_run_quiet). */
extern void cl_redlock_reserve(int ncmds);
extern void cl_redlock_prepare_xact_end(void);
extern RedisQuietResult cl_redlock_run_quiet(RedisCmd *cmds, int ncmds, RedisValue *out);
extern const char *cl_redlock_quiet_error(void);

#endif							/* COUPON_LOCK_REDLOCK_H */
