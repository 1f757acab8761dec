/*-------------------------------------------------------------------------
 *
 * guc.h
 *	  Every coupon_lock.* setting, defined once in guc.c.
 *
 *-------------------------------------------------------------------------
 */
#ifndef COUPON_LOCK_GUC_H
#define COUPON_LOCK_GUC_H

extern int	cl_max_batch_quantity;
extern int	cl_claim_sequence_min_quantity;

/* Redis locks and the guard */
extern char *cl_redis_host;
extern int	cl_redis_port;
extern char *cl_redis_password;
extern int	cl_redis_db;
extern int	cl_redis_connect_timeout;	/* ms */
extern int	cl_redis_command_timeout;	/* ms */
extern char *cl_redis_key_prefix;
extern bool cl_redis_guard;
extern int	cl_redis_guard_wait;	/* ms */
extern int	cl_redis_guard_ttl;		/* ms */

/* Advisory locks (advisory_keys.c) */
extern int	cl_max_held_keys;
/* Leases and the sweeper */
extern int	cl_lease_wait;		/* ms */
extern char *cl_sweep_databases;
extern int	cl_sweep_interval;	/* ms */
extern int	cl_sweep_max_rows;
extern int	cl_reconcile_interval;	/* ms */
extern int	cl_router_call_timeout;	/* ms, 0: off */
/* Redis beyond one server (redis_sentinel.c, redis_lock.c) */
extern char *cl_redis_sentinels;
extern char *cl_redis_sentinel_master;
extern int	cl_redis_min_replicas;
extern char *cl_redlock_servers;	/* redlock.c */
extern char *cl_redis_sentinel_password;

#endif							/* COUPON_LOCK_GUC_H */
