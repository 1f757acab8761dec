/*-------------------------------------------------------------------------
 *
 * coupon.c
 *	  The coupon state machine and the single-coupon SQL functions
 *	  (coupon_issue, coupon_freeze, coupon_unfreeze, coupon_redeem,
 *	  coupon_revoke).
 *
 * Concurrency rules.  Every transition runs the same three steps inside
 * the caller's transaction (after the guard of guard.c, when
 * coupon_lock.redis_guard is on):
 *
 *	1. lock_row: SELECT ... FOR UPDATE of the coupon (joined to its batch).
 *	   Two transitions of one coupon are serialised here; under REPEATABLE
 *	   READ or SERIALIZABLE a row changed since the snapshot raises 40001.
 *	2. decide(): the only place that says which transition is allowed from
 *	   which state, whether the call is an idempotent retry, and whether
 *	   expected_version matches.  It reads what step 1 read, nothing else
 *	   (the unfreeze retry alone looks at the coupon's last ledger row).
 *	3. apply: one UPDATE whose WHERE repeats the version and state it was
 *	   decided on, chained to the ledger INSERT in the same statement.  The
 *	   version check in the writing statement is the last guard: should
 *	   anything ever write the row without the row lock, the write fails
 *	   with 40001 instead of going through.
 *
 * The common case of freeze, unfreeze and redeem skips steps 1 and 2 (not
 * the guard): one statement writes the row and its ledger row when the row
 * already meets every rule decide() would check for that transition to
 * succeed (state,
 * owner or order, expected_version, lapse, batch validity).  The UPDATE
 * takes the row lock itself and, under READ COMMITTED, re-checks its WHERE
 * on the newest row version when it had to wait, so it is the same CAS.
 * When it writes nothing, the three steps run as above and decide() says
 * what the call gets (an error, an idempotent retry): the fast path only
 * ever takes a transition decide() would have applied, with the same row
 * and ledger values (sql/coupon_fast_path.sql walks every rule).
 *
 * The per-user limit is a counter row per (batch, owner) in owner_quota,
 * taken with one INSERT ... ON CONFLICT DO UPDATE ... WHERE held < limit.
 * Its row lock orders two claims of the same owner; no lock-table entry is
 * used, so bulk work over many owners cannot exhaust the lock table.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/pg_enum.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "utils/builtins.h"
#include "utils/syscache.h"

#include "coupon.h"
#include "coupon_lock.h"
#include "guard.h"
#include "spi_plans.h"

PG_FUNCTION_INFO_V1(coupon_lock_coupon_issue);
PG_FUNCTION_INFO_V1(coupon_lock_coupon_freeze);
PG_FUNCTION_INFO_V1(coupon_lock_coupon_unfreeze);
PG_FUNCTION_INFO_V1(coupon_lock_coupon_redeem);
PG_FUNCTION_INFO_V1(coupon_lock_coupon_revoke);
PG_FUNCTION_INFO_V1(coupon_lock_coupon_row_is_valid);

static const char *const state_names[] = {
	[CS_AVAILABLE] = "available",
	[CS_ISSUED] = "issued",
	[CS_FROZEN] = "frozen",
	[CS_REDEEMED] = "redeemed",
	[CS_EXPIRED] = "expired",
	[CS_REVOKED] = "revoked",
};

/* Ledger op names; also the verbs of "cannot ... coupon" messages. */
static const char *const op_names[] = {
	[OP_ISSUE] = "issue",
	[OP_CLAIM] = "claim",
	[OP_FREEZE] = "freeze",
	[OP_UNFREEZE] = "unfreeze",
	[OP_REDEEM] = "redeem",
	[OP_REVOKE] = "revoke",
	[OP_RELEASE] = "release",
	[OP_EXPIRE] = "expire",
};

/* The coupon as lock_row read it. */
typedef struct CouponRow
{
	int64		coupon_id;
	CouponState state;
	int64		version;
	char	   *owner_id;
	char	   *order_id;
	int64		batch_id;
	bool		lapsed;			/* frozen_until < now() */
	bool		batch_expired;	/* valid_until < now() */
	int32		per_user_limit;
	Datum		freeze_ttl;		/* the batch's default */
} CouponRow;

/* What decide() wants written. */
typedef struct Change
{
	CouponState to;
	const char *owner_id;		/* the row's new owner_id */
	const char *order_id;		/* the row's new order_id */
	bool		freeze;			/* set frozen_until = now() + ttl */
	Datum		ttl;
	const char *ledger_order;	/* the order the ledger row names */
	int			quota;			/* +1: take (limit checked), -1: give back */
} Change;

typedef enum Decision
{
	DECIDE_APPLY,
	DECIDE_NOOP,				/* idempotent retry: return current version */
	DECIDE_SKIP					/* sweep: row no longer eligible */
} Decision;

static SpiPlan lock_row_plan = {
	"SELECT c.state::text, c.version, c.owner_id, c.order_id, c.batch_id,"
	"       c.frozen_until < pg_catalog.now(), b.valid_until < pg_catalog.now(),"
	"       b.per_user_limit, b.freeze_ttl"
	"  FROM coupon_lock.coupon c JOIN coupon_lock.batch b ON b.batch_id = c.batch_id"
	" WHERE c.coupon_id = $1"
	"   FOR UPDATE OF c",
	1, {INT8OID}, NULL
};

/*
 * 1.1 schema: every freeze also records its deadline in freeze_deadline, in
 * the statement that freezes (the sweep reads it; see sweep.c).  A database
 * still at 1.0 has no such table, and its sweep reads the coupons' old
 * partial index instead: its plans leave the insert out.
 */
#define DEADLINE_CTE \
	", d AS (INSERT INTO coupon_lock.freeze_deadline (frozen_until, coupon_id, version)" \
	"        SELECT u.frozen_until, u.coupon_id, u.version FROM u WHERE u.frozen_until IS NOT NULL)"

#define APPLY_SQL(extra) \
	"WITH u AS (" \
	"  UPDATE coupon_lock.coupon" \
	"     SET state = $3::coupon_lock.coupon_state, owner_id = $4, order_id = $5," \
	"         frozen_until = pg_catalog.now() + $6, version = version + 1," \
	"         updated_at = pg_catalog.now()" \
	"   WHERE coupon_id = $1 AND version = $2 AND state = $7::coupon_lock.coupon_state" \
	"  RETURNING coupon_id, version, owner_id, frozen_until)" extra \
	" INSERT INTO coupon_lock.coupon_event" \
	"        (coupon_id, op, from_state, to_state, version, owner_id, order_id)" \
	" SELECT u.coupon_id, $8, $7::coupon_lock.coupon_state, $3::coupon_lock.coupon_state," \
	"        u.version, u.owner_id, $9" \
	"   FROM u" \
	" RETURNING version"

#define APPLY_ARGTYPES \
	9, {INT8OID, INT8OID, TEXTOID, TEXTOID, TEXTOID, INTERVALOID, TEXTOID, TEXTOID, TEXTOID}, NULL

/* a freeze on the 1.1 schema; every other write (claims too) needs no deadline */
static SpiPlan apply_freeze_plan = {APPLY_SQL(DEADLINE_CTE), APPLY_ARGTYPES};
static SpiPlan apply_plan = {APPLY_SQL(""), APPLY_ARGTYPES};

/* The plan for this database's schema: v11 from 1.1 on, else v10. */
static SpiPlan *
plan_for_schema(SpiPlan *v11, SpiPlan *v10)
{
	return cl_sql_version() >= CL_SQL_1_1 ? v11 : v10;
}

/*
 * The fast path: one plan per transition, each the success case of decide()
 * for its op as a WHERE clause.  $1 coupon_id, then the call's arguments.
 */
#define FAST_PLAN(set, cond, op, from, order, extra) \
	"WITH u AS (" \
	"  UPDATE coupon_lock.coupon c" \
	"     SET " set ", version = c.version + 1, updated_at = pg_catalog.now()" \
	"    FROM coupon_lock.batch b" \
	"   WHERE c.coupon_id = $1 AND b.batch_id = c.batch_id AND " cond \
	"  RETURNING c.coupon_id, c.version, c.owner_id, c.state, c.frozen_until)" extra \
	" INSERT INTO coupon_lock.coupon_event" \
	"        (coupon_id, op, from_state, to_state, version, owner_id, order_id)" \
	" SELECT u.coupon_id, '" op "', '" from "', u.state, u.version, u.owner_id, " order \
	"   FROM u RETURNING version"

#define BATCH_VALID "(b.valid_until IS NULL OR b.valid_until >= pg_catalog.now())"

#define FREEZE_FAST_SQL(extra) \
	FAST_PLAN("state = 'frozen', order_id = $3," \
			  " frozen_until = pg_catalog.now() + COALESCE($5, b.freeze_ttl)", \
			  "c.state = 'issued' AND c.owner_id = $2 AND ($4 IS NULL OR c.version = $4)" \
			  " AND " BATCH_VALID, \
			  "freeze", "issued", "$3", extra)
#define FREEZE_FAST_ARGTYPES 5, {INT8OID, TEXTOID, TEXTOID, INT8OID, INTERVALOID}, NULL

static SpiPlan freeze_fast_plan = {FREEZE_FAST_SQL(DEADLINE_CTE), FREEZE_FAST_ARGTYPES};
static SpiPlan freeze_fast_plan_1_0 = {FREEZE_FAST_SQL(""), FREEZE_FAST_ARGTYPES};

/* back to issued, or to expired with its batch */
static SpiPlan unfreeze_fast_plan = {
	FAST_PLAN("state = CASE WHEN b.valid_until < pg_catalog.now() THEN 'expired'"
			  " ELSE 'issued' END::coupon_lock.coupon_state,"
			  " order_id = NULL, frozen_until = NULL",
			  "c.state = 'frozen' AND c.order_id = $2 AND ($3 IS NULL OR c.version = $3)",
			  "unfreeze", "frozen", "$2", ""),
	3, {INT8OID, TEXTOID, INT8OID}, NULL
};

static SpiPlan redeem_fast_plan = {
	FAST_PLAN("state = 'redeemed', frozen_until = NULL",
			  "c.state = 'frozen' AND c.order_id = $2 AND ($3 IS NULL OR c.version = $3)"
			  " AND c.frozen_until >= pg_catalog.now() AND " BATCH_VALID,
			  "redeem", "frozen", "$2", ""),
	3, {INT8OID, TEXTOID, INT8OID}, NULL
};

static SpiPlan last_event_plan = {
	"SELECT op, order_id, version FROM coupon_lock.coupon_event"
	" WHERE coupon_id = $1 ORDER BY event_id DESC LIMIT 1",
	1, {INT8OID}, NULL
};

static SpiPlan quota_take_plan = {
	"INSERT INTO coupon_lock.owner_quota AS q (batch_id, owner_id, held) VALUES ($1, $2, 1)"
	" ON CONFLICT (batch_id, owner_id) DO UPDATE SET held = q.held + 1 WHERE q.held < $3"
	" RETURNING held",
	3, {INT8OID, TEXTOID, INT4OID}, NULL
};

static SpiPlan quota_give_back_plan = {
	"UPDATE coupon_lock.owner_quota SET held = held - 1"
	" WHERE batch_id = $1 AND owner_id = $2 AND held > 0",
	2, {INT8OID, TEXTOID}, NULL
};

static CouponState
parse_state(const char *s)
{
	for (int i = 0; i < (int) lengthof(state_names); i++)
		if (strcmp(s, state_names[i]) == 0)
			return (CouponState) i;
	/* reachable only by changing the enum or the rows by hand */
	ereport(ERROR,
			(errcode(ERRCODE_DATA_CORRUPTED),
			 errmsg("coupon state \"%s\" is not one coupon_lock knows", s),
			 errhint("The type coupon_lock.coupon_state or a coupon row was changed outside the extension's functions.")));
	return CS_AVAILABLE;		/* keep compiler quiet */
}

/* A coupon_state enum value (its pg_enum OID) as a CouponState. */
static CouponState
state_of_enum(Oid label)
{
	HeapTuple	tup = SearchSysCache1(ENUMOID, ObjectIdGetDatum(label));
	CouponState state;

	if (!HeapTupleIsValid(tup))
		elog(ERROR, "cache lookup failed for enum label %u", label);
	state = parse_state(NameStr(((Form_pg_enum) GETSTRUCT(tup))->enumlabel));
	ReleaseSysCache(tup);
	return state;
}

static bool
same_id(const char *a, const char *b)
{
	return a != NULL && b != NULL && strcmp(a, b) == 0;
}

static Datum
text_datum_or_null(const char *s, char *null)
{
	*null = s ? ' ' : 'n';
	return s ? CStringGetTextDatum(s) : (Datum) 0;
}

/* ---- errors a caller can reach ---- */

static void
report_version_mismatch(const CouponRow *row, int64 expected)
{
	ereport(ERROR,
			(errcode(ERRCODE_T_R_SERIALIZATION_FAILURE),
			 errmsg("coupon %lld is not at the expected version", (long long) row->coupon_id),
			 errdetail("The current version is %lld and the state is \"%s\"; the call expected version %lld.",
					   (long long) row->version, state_names[row->state], (long long) expected)));
}

static void
report_wrong_state(const CouponRow *row, CouponOp op)
{
	bool		lapsed_freeze = row->state == CS_FROZEN && row->lapsed;

	ereport(ERROR,
			(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
			 errmsg("cannot %s coupon %lld in state \"%s\"",
					op_names[op], (long long) row->coupon_id, state_names[row->state]),
			 errdetail("The current version is %lld.", (long long) row->version),
			 lapsed_freeze ?
			 errhint("Its freeze has lapsed; coupon_unfreeze by its order or release_expired_freezes() returns it to \"issued\".") : 0));
}

void
report_batch_expired(int64 batch_id)
{
	ereport(ERROR,
			(errcode(ERRCODE_CL_BATCH_EXPIRED),
			 errmsg("batch %lld has expired", (long long) batch_id),
			 errdetail("Its valid_until has passed.")));
}

void
report_limit_reached(int64 batch_id, const char *owner_id, int32 per_user_limit)
{
	ereport(ERROR,
			(errcode(ERRCODE_CL_LIMIT_REACHED),
			 errmsg("owner \"%s\" has reached the limit of batch %lld", owner_id, (long long) batch_id),
			 errdetail_plural("The batch allows %d coupon per owner, counting every state but \"revoked\".",
							  "The batch allows %d coupons per owner, counting every state but \"revoked\".",
							  per_user_limit, per_user_limit)));
}

static void
report_owner_mismatch(const CouponRow *row)
{
	ereport(ERROR,
			(errcode(ERRCODE_CL_OWNER_MISMATCH),
			 errmsg("coupon %lld belongs to another owner", (long long) row->coupon_id),
			 errdetail("The current version is %lld and the state is \"%s\".",
					   (long long) row->version, state_names[row->state])));
}

static void
report_order_mismatch(const CouponRow *row)
{
	ereport(ERROR,
			(errcode(ERRCODE_CL_ORDER_MISMATCH),
			 errmsg("coupon %lld is frozen for another order", (long long) row->coupon_id),
			 errdetail("The current version is %lld.", (long long) row->version)));
}

/* ---- the three steps ---- */

static bool
lock_row(int64 coupon_id, CouponRow *row)
{
	Datum		values[1] = {Int64GetDatum(coupon_id)};
	bool		isnull;

	if (spi_run(&lock_row_plan, values, NULL, 1) == 0)
		return false;

	row->coupon_id = coupon_id;
	row->state = parse_state(spi_text_or_null(0, 1));
	row->version = spi_int64(0, 2);
	row->owner_id = spi_text_or_null(0, 3);
	row->order_id = spi_text_or_null(0, 4);
	row->batch_id = spi_int64(0, 5);
	row->lapsed = spi_bool(0, 6);
	row->batch_expired = spi_bool(0, 7);
	row->per_user_limit = DatumGetInt32(spi_datum(0, 8, &isnull));
	row->freeze_ttl = spi_datum(0, 9, &isnull);
	return true;
}

/* True when the coupon's last transition was this order letting go of it. */
static bool
last_released_by(const CouponRow *row, const char *order_id)
{
	Datum		values[1] = {Int64GetDatum(row->coupon_id)};
	char	   *op;

	if (spi_run(&last_event_plan, values, NULL, 1) == 0)
		return false;
	op = spi_text_or_null(0, 1);
	return (strcmp(op, op_names[OP_UNFREEZE]) == 0 || strcmp(op, op_names[OP_RELEASE]) == 0) &&
		same_id(spi_text_or_null(0, 2), order_id) &&
		spi_int64(0, 3) == row->version;
}

static void
check_version(const CouponCall *call, const CouponRow *row)
{
	if (call->has_expected && call->expected_version != row->version)
		report_version_mismatch(row, call->expected_version);
}

/* Where a freeze given up goes: back to issued, or expired with its batch. */
static CouponState
after_freeze(const CouponRow *row)
{
	return row->batch_expired ? CS_EXPIRED : CS_ISSUED;
}

/*
 * The state machine.  Raises the caller's error, or fills *ch and says
 * whether to apply it, do nothing (idempotent retry), or skip (sweeps).
 */
static Decision
decide(const CouponCall *call, const CouponRow *row, Change *ch)
{
	memset(ch, 0, sizeof(*ch));
	ch->owner_id = row->owner_id;

	switch (call->op)
	{
		case OP_ISSUE:
			check_version(call, row);
			if (row->state != CS_AVAILABLE)
				report_wrong_state(row, call->op);
			if (row->batch_expired)
				report_batch_expired(row->batch_id);
			ch->to = CS_ISSUED;
			ch->owner_id = call->owner_id;
			ch->quota = 1;
			return DECIDE_APPLY;

		case OP_FREEZE:
			if (row->state == CS_FROZEN && !row->lapsed &&
				same_id(row->order_id, call->order_id))
			{
				if (!same_id(row->owner_id, call->owner_id))
					report_owner_mismatch(row);
				return DECIDE_NOOP;
			}
			check_version(call, row);
			if (row->state != CS_ISSUED)
				report_wrong_state(row, call->op);
			if (!same_id(row->owner_id, call->owner_id))
				report_owner_mismatch(row);
			if (row->batch_expired)
				report_batch_expired(row->batch_id);
			ch->to = CS_FROZEN;
			ch->order_id = call->order_id;
			ch->freeze = true;
			ch->ttl = call->has_ttl ? call->ttl : row->freeze_ttl;
			ch->ledger_order = call->order_id;
			return DECIDE_APPLY;

		case OP_UNFREEZE:
			if ((row->state == CS_ISSUED || row->state == CS_EXPIRED) &&
				last_released_by(row, call->order_id))
				return DECIDE_NOOP;
			check_version(call, row);
			if (row->state != CS_FROZEN)
				report_wrong_state(row, call->op);
			if (!same_id(row->order_id, call->order_id))
				report_order_mismatch(row);
			ch->to = after_freeze(row);
			ch->ledger_order = row->order_id;
			return DECIDE_APPLY;

		case OP_REDEEM:
			if (row->state == CS_REDEEMED && same_id(row->order_id, call->order_id))
				return DECIDE_NOOP;
			check_version(call, row);
			if (row->state != CS_FROZEN)
				report_wrong_state(row, call->op);
			if (!same_id(row->order_id, call->order_id))
				report_order_mismatch(row);
			if (row->lapsed)
				ereport(ERROR,
						(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
						 errmsg("cannot redeem coupon %lld: its freeze has lapsed",
								(long long) row->coupon_id),
						 errdetail("The current version is %lld.", (long long) row->version),
						 errhint("Freeze it again for the order before redeeming.")));
			if (row->batch_expired)
				report_batch_expired(row->batch_id);
			ch->to = CS_REDEEMED;
			ch->order_id = row->order_id;
			ch->ledger_order = row->order_id;
			return DECIDE_APPLY;

		case OP_REVOKE:
			check_version(call, row);
			if (row->state != CS_AVAILABLE && row->state != CS_ISSUED && row->state != CS_FROZEN)
				report_wrong_state(row, call->op);
			ch->to = CS_REVOKED;
			ch->ledger_order = row->order_id;
			ch->quota = row->owner_id ? -1 : 0;
			return DECIDE_APPLY;

		case OP_RELEASE:
			if (row->state != CS_FROZEN || !row->lapsed)
				return DECIDE_SKIP;
			ch->to = after_freeze(row);
			ch->ledger_order = row->order_id;
			return DECIDE_APPLY;

		case OP_EXPIRE:
			if ((row->state != CS_AVAILABLE && row->state != CS_ISSUED) || !row->batch_expired)
				return DECIDE_SKIP;
			ch->to = CS_EXPIRED;
			return DECIDE_APPLY;

		case OP_CLAIM:
			break;				/* claims go through coupon_apply_claim */
	}
	elog(ERROR, "unexpected coupon operation %d", (int) call->op);
	return DECIDE_SKIP;			/* keep compiler quiet */
}

/*
 * Step 3: the write and its ledger row, guarded by the version and state
 * the decision was made on.  Returns the new version, or -1 when the row
 * no longer matches.
 */
static int64
apply(int64 coupon_id, int64 version, CouponState from, CouponOp op, const Change *ch)
{
	Datum		values[9];
	char		nulls[9] = "         ";

	values[0] = Int64GetDatum(coupon_id);
	values[1] = Int64GetDatum(version);
	values[2] = CStringGetTextDatum(state_names[ch->to]);
	values[3] = text_datum_or_null(ch->owner_id, &nulls[3]);
	values[4] = text_datum_or_null(ch->order_id, &nulls[4]);
	values[5] = ch->freeze ? ch->ttl : (Datum) 0;
	nulls[5] = ch->freeze ? ' ' : 'n';
	values[6] = CStringGetTextDatum(state_names[from]);
	values[7] = CStringGetTextDatum(op_names[op]);
	values[8] = text_datum_or_null(ch->ledger_order, &nulls[8]);

	if (spi_run(ch->freeze ? plan_for_schema(&apply_freeze_plan, &apply_plan) : &apply_plan,
				values, nulls, 0) != 1)
		return -1;
	return spi_int64(0, 1);
}

/*
 * The fast path (see the header): the new version when the transition was
 * written, -1 when the row does not meet every rule and decide() must run.
 */
static int64
try_fast(const CouponCall *call)
{
	Datum		values[5];
	char		nulls[5] = "     ";
	SpiPlan    *plan;
	int			n = 1;

	values[0] = Int64GetDatum(call->coupon_id);
	switch (call->op)
	{
		case OP_FREEZE:
			plan = plan_for_schema(&freeze_fast_plan, &freeze_fast_plan_1_0);
			values[n++] = CStringGetTextDatum(call->owner_id);
			break;
		case OP_UNFREEZE:
			plan = &unfreeze_fast_plan;
			break;
		case OP_REDEEM:
			plan = &redeem_fast_plan;
			break;
		default:
			return -1;
	}
	values[n++] = CStringGetTextDatum(call->order_id);
	values[n] = call->has_expected ? Int64GetDatum(call->expected_version) : (Datum) 0;
	nulls[n++] = call->has_expected ? ' ' : 'n';
	if (call->op == OP_FREEZE)
	{
		values[n] = call->has_ttl ? call->ttl : (Datum) 0;
		nulls[n++] = call->has_ttl ? ' ' : 'n';
	}

	if (spi_run(plan, values, nulls, 0) != 1)
		return -1;
	return spi_int64(0, 1);
}

int64
coupon_transition(const CouponCall *call, bool *changed)
{
	CouponRow	row;
	Change		ch;
	int64		version;

	*changed = false;
	if (!guard_coupon(call->coupon_id, call->op))
		return 0;				/* a sweep passes over a coupon held elsewhere */
	version = try_fast(call);
	if (version > 0)
	{
		*changed = true;
		return version;
	}

	if (!lock_row(call->coupon_id, &row))
		ereport(ERROR,
				(errcode(ERRCODE_CL_UNKNOWN_COUPON),
				 errmsg("coupon %lld does not exist", (long long) call->coupon_id)));

	switch (decide(call, &row, &ch))
	{
		case DECIDE_NOOP:
		case DECIDE_SKIP:
			return row.version;
		case DECIDE_APPLY:
			break;
	}

	if (ch.quota > 0 && !quota_take(row.batch_id, ch.owner_id, row.per_user_limit))
		report_limit_reached(row.batch_id, ch.owner_id, row.per_user_limit);
	if (ch.quota < 0)
		quota_give_back(row.batch_id, row.owner_id);

	version = apply(row.coupon_id, row.version, row.state, call->op, &ch);
	if (version < 0)
		ereport(ERROR,
				(errcode(ERRCODE_T_R_SERIALIZATION_FAILURE),
				 errmsg("coupon %lld changed concurrently", (long long) call->coupon_id)));
	*changed = true;
	return version;
}

bool
coupon_apply_claim(int64 coupon_id, int64 version, const char *owner_id)
{
	Change		ch = {0};

	ch.to = CS_ISSUED;
	ch.owner_id = owner_id;
	return apply(coupon_id, version, CS_AVAILABLE, OP_CLAIM, &ch) >= 0;
}

bool
quota_take(int64 batch_id, const char *owner_id, int32 per_user_limit)
{
	Datum		values[3] = {Int64GetDatum(batch_id), CStringGetTextDatum(owner_id),
	Int32GetDatum(per_user_limit)};

	return spi_run(&quota_take_plan, values, NULL, 0) == 1;
}

void
quota_give_back(int64 batch_id, const char *owner_id)
{
	Datum		values[2] = {Int64GetDatum(batch_id), CStringGetTextDatum(owner_id)};

	spi_run(&quota_give_back_plan, values, NULL, 0);
}

/* ---- SQL entry points ---- */

/*
 * coupon_row_is_valid(state, owner_id, order_id, frozen_until, version):
 * the row invariants every state of the machine keeps, as the one CHECK
 * constraint of coupon_lock.coupon.  It is C rather than five SQL CHECKs
 * because the executor rebuilds a table's CHECK expressions from their
 * stored text at every statement that writes the table: the SQL form cost
 * more per transition than the row lookup and the update together.
 */
Datum
coupon_lock_coupon_row_is_valid(PG_FUNCTION_ARGS)
{
	CouponState state;
	bool		has_owner = !PG_ARGISNULL(1);
	bool		has_order = !PG_ARGISNULL(2);
	bool		has_frozen_until = !PG_ARGISNULL(3);
	bool		owned;

	/* a NULL state or version: NOT NULL on the column reports it */
	if (PG_ARGISNULL(0) || PG_ARGISNULL(4))
		PG_RETURN_NULL();
	if (PG_GETARG_INT64(4) < 1)
		PG_RETURN_BOOL(false);	/* versions start at 1 */
	state = state_of_enum(PG_GETARG_OID(0));
	owned = state == CS_ISSUED || state == CS_FROZEN || state == CS_REDEEMED;

	PG_RETURN_BOOL((state != CS_AVAILABLE || !has_owner) &&
				   (!owned || has_owner) &&
				   (state == CS_FROZEN || state == CS_REDEEMED) == has_order &&
				   (state == CS_FROZEN) == has_frozen_until);
}

static void
read_expected(FunctionCallInfo fcinfo, int argno, CouponCall *call)
{
	call->has_expected = !PG_ARGISNULL(argno);
	if (call->has_expected)
	{
		call->expected_version = PG_GETARG_INT64(argno);
		if (call->expected_version < 1)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("expected_version must be at least 1")));
	}
}

static int64
run_call(const CouponCall *call)
{
	bool		changed;
	int64		version;

	SPI_connect();
	version = coupon_transition(call, &changed);
	SPI_finish();
	return version;
}

Datum
coupon_lock_coupon_issue(PG_FUNCTION_ARGS)
{
	CouponCall	call = {.op = OP_ISSUE};

	call.coupon_id = cl_arg_int64(fcinfo, 0, "coupon_id");
	call.owner_id = cl_arg_id(fcinfo, 1, "owner_id");
	read_expected(fcinfo, 2, &call);
	PG_RETURN_INT64(run_call(&call));
}

Datum
coupon_lock_coupon_freeze(PG_FUNCTION_ARGS)
{
	CouponCall	call = {.op = OP_FREEZE};

	call.coupon_id = cl_arg_int64(fcinfo, 0, "coupon_id");
	call.owner_id = cl_arg_id(fcinfo, 1, "owner_id");
	call.order_id = cl_arg_id(fcinfo, 2, "order_id");
	read_expected(fcinfo, 3, &call);
	call.has_ttl = !PG_ARGISNULL(4);
	call.ttl = cl_arg_positive_interval(fcinfo, 4, "ttl", true);
	PG_RETURN_INT64(run_call(&call));
}

/* unfreeze and redeem take the same arguments: (coupon_id, order_id, expected_version) */
static int64
run_order_call(FunctionCallInfo fcinfo, CouponOp op)
{
	CouponCall	call = {.op = op};

	call.coupon_id = cl_arg_int64(fcinfo, 0, "coupon_id");
	call.order_id = cl_arg_id(fcinfo, 1, "order_id");
	read_expected(fcinfo, 2, &call);
	return run_call(&call);
}

Datum
coupon_lock_coupon_unfreeze(PG_FUNCTION_ARGS)
{
	PG_RETURN_INT64(run_order_call(fcinfo, OP_UNFREEZE));
}

Datum
coupon_lock_coupon_redeem(PG_FUNCTION_ARGS)
{
	PG_RETURN_INT64(run_order_call(fcinfo, OP_REDEEM));
}

Datum
coupon_lock_coupon_revoke(PG_FUNCTION_ARGS)
{
	CouponCall	call = {.op = OP_REVOKE};

	call.coupon_id = cl_arg_int64(fcinfo, 0, "coupon_id");
	read_expected(fcinfo, 1, &call);
	PG_RETURN_INT64(run_call(&call));
}
