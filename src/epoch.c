/*-------------------------------------------------------------------------
 *
 * epoch.c
 *	  The fencing epoch: which range of lease tokens a grant made now may
 *	  use.
 *
 * A lease token is laid out like ZooKeeper's zxid: the epoch in the high
 * 32 bits, a counter in the low 32 bits.  The epoch is PostgreSQL's
 * timeline, which rises by one at every promotion of a standby.  A grant
 * takes the larger of "the row's token + 1" and "the first token of this
 * epoch", so
 *
 *	- within one timeline tokens rise by one per grant, as before;
 *	- the first grant on a promoted node jumps above every token of the
 *	  old timeline, including grants the old primary made that never
 *	  reached this node (asynchronous replication): no token is handed out
 *	  twice, and lease_check is false for the old primary's lost grants;
 *	- tokens of coupon_lock 1.0 (epoch bits 0) are below every new one.
 *
 * The timeline is read with GetWALInsertionTimeLine(), the timeline new
 * WAL is written on, which is the new one from the moment a promotion
 * ends; pg_control_checkpoint() would show the old one until the next
 * checkpoint.  During recovery there is no timeline to write on: a grant
 * is a write, refused like every other on a standby.
 *
 * What it cannot cover: two standbys promoted independently (split brain)
 * can choose the same next timeline and hand out equal tokens.  The rule
 * holds with a single promoter, such as an HA manager (docs/ha.md).  A
 * counter that passes 2^32 grants of one name on one timeline runs into
 * the next epoch's range.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xlog.h"

#include "coupon_lock.h"

int64
cl_fence_epoch_floor(void)
{
	TimeLineID	tli;

	if (RecoveryInProgress())
		cl_standby_write_error(NULL);
	tli = GetWALInsertionTimeLine();
	if (tli > (TimeLineID) PG_INT32_MAX)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("timeline %u is too large for a fencing epoch", tli)));
	return ((int64) tli) << CL_FENCE_EPOCH_SHIFT;
}
