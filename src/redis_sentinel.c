/*-------------------------------------------------------------------------
 *
 * redis_sentinel.c
 *	  Finding the Redis master through Sentinel: with
 *	  coupon_lock.redis_sentinels set ('host:port,host:port,...'), the
 *	  master's address is asked of the Sentinels instead of read from
 *	  coupon_lock.redis_host and redis_port.
 *
 * Concurrency rules.  Nothing is shared: each backend asks on its own,
 * whenever it makes a new connection to the master.  The address is
 * never cached beyond a connection, so every reason to reconnect — an I/O
 * error, a timeout, a cut-off exchange, a READONLY reply from a master
 * that a failover demoted (redis_conn.c drops the connection then), a
 * password refused, Sentinel's own CLIENT KILL of the old master's
 * clients — finds the master again.  The Sentinels are asked in the
 * order given, each with its own connect timeout, with
 * SENTINEL get-master-addr-by-name; the first answer wins.  redis_conn.c
 * then checks with ROLE that the server is a master (Sentinel may name a
 * replica that is still being promoted) and asks again after a short
 * pause when it is not.  Sentinels get AUTH with
 * coupon_lock.redis_sentinel_password when it is set (a Sentinel's
 * requirepass is its own, not the master's).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "guc.h"
#include "redis_conn.h"
#include "redis_sentinel.h"

bool
cl_sentinel_configured(void)
{
	return cl_redis_sentinels != NULL && cl_redis_sentinels[0] != '\0';
}

/* The next "host:port" of the list at *p; false at its end or on bad syntax. */
static bool
next_sentinel(const char **p, char *host, size_t hostlen, int *port)
{
	const char *start = *p;
	const char *end;
	const char *colon;
	char	   *endptr;
	long		n;

	while (*start == ' ' || *start == ',')
		start++;
	if (*start == '\0')
		return false;
	end = start + strcspn(start, ",");
	*p = end;
	colon = NULL;
	for (const char *c = start; c < end; c++)
		if (*c == ':')
			colon = c;
	if (colon == NULL || colon == start || (size_t) (colon - start) >= hostlen)
		return false;
	memcpy(host, start, colon - start);
	host[colon - start] = '\0';
	n = strtol(colon + 1, &endptr, 10);
	if (endptr == colon + 1 || n < 1 || n > 65535)
		return false;
	*port = (int) n;
	return true;
}

bool
cl_sentinel_find_master(char *host, size_t hostlen, int *port, int timeout_ms, bool interruptible)
{
	const char *argv[] = {"SENTINEL", "get-master-addr-by-name", cl_redis_sentinel_master};
	const char *p = cl_redis_sentinels;
	char		shost[256];
	int			sport;

	while (next_sentinel(&p, shost, sizeof(shost), &sport))
	{
		RedisWords	w;
		char	   *endptr;
		long		n;

		if (!cl_redis_ask(shost, sport, 3, argv, &w, timeout_ms, interruptible))
			continue;			/* this one is away: ask the next */
		if (w.n < 2)
			continue;			/* it does not know the master (nil) */
		n = strtol(w.word[1], &endptr, 10);
		if (*endptr != '\0' || n < 1 || n > 65535)
			continue;
		strlcpy(host, w.word[0], hostlen);
		*port = (int) n;
		return true;
	}
	return false;
}
