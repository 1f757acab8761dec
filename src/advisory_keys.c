/*-------------------------------------------------------------------------
 *
 * advisory_keys.c
 *	  The keys this backend holds advisory locks on: the key text behind
 *	  each lock id (for advisory_lock_key and the advisory_locks view), and
 *	  the per-backend ceiling coupon_lock.max_held_keys.
 *
 * The lock manager knows ids, not keys, and cannot tell us cheaply how
 * many of our locks this backend holds.  So each backend keeps a hash
 * table id -> key of the keys it asked to lock.  An entry is made before
 * the lock is requested (advisory.c), so that once the lock is granted
 * nothing of ours can fail; it may therefore outlive its lock.  Entries
 * whose lock this backend no longer holds ("stale") are dropped:
 *
 *	- at once, where advisory.c knows the lock is not held: a try or a
 *	  timed wait that answered false, a wait ended by an error, and
 *	  advisory_unlock of the last hold;
 *	- by advisory_lock_key, which answers only for held locks;
 *	- by a prune, which walks the table and asks the lock manager about
 *	  each entry (LockHeldByMe, a lookup in this backend's local lock
 *	  table).  That covers what no call of ours sees: transaction locks
 *	  released at commit, rollback or ROLLBACK TO SAVEPOINT, and
 *	  pg_advisory_unlock_all() or DISCARD ALL.
 *
 * Time and memory.  A prune runs only when the table has doubled since
 * the last one left it (and has at least PRUNE_MIN entries), or when the
 * ceiling is reached.  Each prune costs the entries it walks; the doubling
 * rule charges that to the insertions since the last prune, so n locks
 * cost O(n) in all, and the table never holds more than about twice the
 * keys held (or the ceiling).  The common path (a key seen before, or a
 * table below both limits) is one hash lookup.
 *
 * The ceiling.  Every held key takes a slot of the shared lock table,
 * which all backends and core locks share; once it is full every session,
 * superusers included, fails with "out of shared memory".  A lock on a key
 * this backend does not already have an entry for is refused with 53200
 * when the backend already holds coupon_lock.max_held_keys keys (counted
 * exactly: the refusal runs a prune first).  Re-taking a held key, in any
 * scope, takes no new slot and is never refused.  The guard's locks
 * (guard.c) count like any other.  The ceiling is per backend: one role
 * with many connections multiplies it, which CONNECTION LIMIT bounds.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "utils/hsearch.h"
#include "utils/memutils.h"

#include "advisory.h"
#include "guc.h"

/* Fewest entries at which a prune runs (below it, stale entries just wait). */
#define PRUNE_MIN	64

typedef struct KeyEntry
{
	int64		id;				/* hash key */
	char	   *key;			/* in key_context */
} KeyEntry;

static HTAB *key_table = NULL;
static MemoryContext key_context = NULL;

/* The table size at which the next prune runs. */
static long prune_at = PRUNE_MIN;

static void
key_table_create(void)
{
	HASHCTL		ctl;

	key_context = AllocSetContextCreate(TopMemoryContext,
										"coupon_lock advisory keys",
										ALLOCSET_SMALL_SIZES);
	ctl.keysize = sizeof(int64);
	ctl.entrysize = sizeof(KeyEntry);
	ctl.hcxt = key_context;
	key_table = hash_create("coupon_lock advisory keys", 256, &ctl,
							HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);
}

static void
drop_entry(KeyEntry *e)
{
	int64		id = e->id;

	pfree(e->key);
	(void) hash_search(key_table, &id, HASH_REMOVE, NULL);
}

/*
 * Drops every stale entry; returns how many keys this backend holds.
 * (Removing the entry just returned is allowed during a dynahash scan.)
 */
static long
prune(void)
{
	HASH_SEQ_STATUS status;
	KeyEntry   *e;
	long		held;

	hash_seq_init(&status, key_table);
	while ((e = hash_seq_search(&status)) != NULL)
	{
		if (!cl_advisory_id_held(e->id))
			drop_entry(e);
	}
	held = hash_get_num_entries(key_table);
	prune_at = Max(2 * held, PRUNE_MIN);
	return held;
}

void
cl_keys_note(int64 id, const char *key, int keylen)
{
	long		n;
	char	   *copy;
	KeyEntry   *e;

	if (key_table == NULL)
		key_table_create();
	if (hash_search(key_table, &id, HASH_FIND, NULL) != NULL)
		return;					/* held, or stale but counted: no new slot */

	n = hash_get_num_entries(key_table);
	if (n >= prune_at || n >= cl_max_held_keys)
		n = prune();
	if (n >= cl_max_held_keys)
		ereport(ERROR,
				(errcode(ERRCODE_OUT_OF_MEMORY),
				 errmsg("too many coupon_lock advisory keys held by this session"),
				 errdetail("This session holds %ld keys, the most coupon_lock.max_held_keys allows.", n),
				 errhint("Release keys the session no longer needs, or end the transaction that holds them; "
						 "a superuser can raise coupon_lock.max_held_keys if the shared lock table "
						 "(max_locks_per_transaction) has room.")));

	/* The copy first: an entry is never without its key. */
	copy = MemoryContextAlloc(key_context, keylen + 1);
	memcpy(copy, key, keylen);
	copy[keylen] = '\0';
	e = hash_search(key_table, &id, HASH_ENTER, NULL);
	e->key = copy;
}

void
cl_keys_forget(int64 id)
{
	KeyEntry   *e;

	if (key_table == NULL)
		return;
	e = hash_search(key_table, &id, HASH_FIND, NULL);
	if (e != NULL)
		drop_entry(e);
}

const char *
cl_keys_lookup(int64 id)
{
	KeyEntry   *e;

	if (key_table == NULL)
		return NULL;
	e = hash_search(key_table, &id, HASH_FIND, NULL);
	if (e == NULL)
		return NULL;
	if (!cl_advisory_id_held(id))
	{
		drop_entry(e);			/* only tried, or released since */
		return NULL;
	}
	return e->key;
}
