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
 *	   (the unfreeze and issue retries look at the coupon's last ledger
 *	   row).
 *	3. apply: one UPDATE whose WHERE repeats the version and state it was
 *	   decided on, chained to the ledger INSERT in the same statement.  The
 *	   version check in the writing statement is the last guard: should
 *	   anything ever write the row without the row lock, the write fails
 *	   with 40001 instead of going through.
 *
 * The common case of freeze, unfreeze and redeem skips steps 1 and 2 (not
 * the guard): one statement writes the row and its ledger row when the row
 * already meets every rule decide() would check for that transition to
 * succeed (state, owner or order, expected_version, lapse, batch
 * validity).  The UPDATE takes the row lock itself and, under READ
 * COMMITTED, re-checks its WHERE on the newest row version when it had to
 * wait, so it is the same CAS.
 * When it writes nothing, the three steps run as above and decide() says
 * what the call gets (an error, an idempotent retry): the fast path only
 * ever takes a transition decide() would have applied, with the same row
 * and ledger values (sql/coupon_fast_path.sql walks every rule).  Each rule
 * of its WHERE is a RULE_* macro, and decide() marks the twin check with
 * the macro's name.
 *
 * Clocks.  A freeze is measured from the moment it is made: frozen_until
 * is clock_timestamp() + ttl, and a freeze has lapsed once frozen_until <
 * clock_timestamp(), the clock leases use (lease.c).  now() is the start of
 * the transaction: a freeze made 20 minutes into a long transaction with a
 * 15-minute ttl would have lapsed before its commit, and a redeem late in a
 * long transaction would still see a lapsed freeze as held.  The batch's
 * valid_until stays on now() (a business date: one answer for the whole
 * transaction), and release_expired_freezes selects freezes lapsed by now()
 * (an index condition cannot use the volatile clock): those are a subset
 * of the ones decide() sees as lapsed, so the sweep never releases a freeze
 * that still holds.
 *
 * The per-user limit is quota.c's.  Issue and revoke change an owner's
 * count: they lock the owner's counter row before step 1, so every call
 * takes the counter before the coupon (quota.c has the rule and why).
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
#include "quota.h"
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
	bool		lapsed;			/* NOT RULE_FREEZE_HOLDS */
	bool		batch_expired;	/* NOT RULE_BATCH_VALID */
	int32		per_user_limit;
	Datum		freeze_ttl;		/* the batch's default */
} CouponRow;

/* What decide() wants written. */
typedef struct Change
{
	CouponState to;
	const char *owner_id;		/* the row's new owner_id */
	const char *order_id;		/* the row's new order_id */
	bool		freeze;			/* set frozen_until = clock_timestamp() + ttl */
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

/*
 * The rules of a successful freeze, unfreeze and redeem exist twice: as C
 * in decide() and as SQL in the fast path's WHERE.  Each rule is one macro
 * here, named RULE_*, and decide() marks its check of that rule with the
 * same name, so a change to either side finds its twin (grep RULE_).  The
 * two rules about time are written once, here: lock_row computes the
 * booleans decide() reads (lapsed, batch_expired) with the same macros the
 * fast path uses, so both paths read one clock the same way.
 * sql/coupon_fast_path.sql runs every rule through both paths.
 *
 * Table aliases: c the coupon, b its batch.
 */
/* the freeze still holds (decide(): !row->lapsed) */
#define RULE_FREEZE_HOLDS	"(c.frozen_until >= pg_catalog.clock_timestamp())"
/* the batch has not ended (decide(): !row->batch_expired) */
#define RULE_BATCH_VALID	"(b.valid_until IS NULL OR b.valid_until >= pg_catalog.now())"
/* decide(): check_version() */
#define RULE_VERSION_MATCHES(expected) "(" expected " IS NULL OR c.version = " expected ")"
/* decide(), OP_FREEZE: state == CS_ISSUED && same_id(owner_id, call owner) */
#define RULE_ISSUED_TO(owner)	"c.state = 'issued' AND c.owner_id = " owner
/* decide(), OP_UNFREEZE and OP_REDEEM: state == CS_FROZEN && same_id(order_id, call order) */
#define RULE_FROZEN_FOR(order)	"c.state = 'frozen' AND c.order_id = " order
/* after_freeze(): where a freeze given up goes */
#define RULE_AFTER_FREEZE \
	"CASE WHEN " RULE_BATCH_VALID " THEN 'issued' ELSE 'expired' END::coupon_lock.coupon_state"

static SpiPlan lock_row_plan = {
	"SELECT c.state::text, c.version, c.owner_id, c.order_id, c.batch_id,"
	"       NOT " RULE_FREEZE_HOLDS ", NOT " RULE_BATCH_VALID ","
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
	"         frozen_until = pg_catalog.clock_timestamp() + $6, version = version + 1," \
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
 * for its op as a WHERE clause of RULE_* macros.  $1 coupon_id, then the
 * call's arguments.
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

/* $2 owner_id, $3 order_id, $4 expected_version, $5 ttl */
#define FREEZE_FAST_SQL(extra) \
	FAST_PLAN("state = 'frozen', order_id = $3," \
			  " frozen_until = pg_catalog.clock_timestamp() + COALESCE($5, b.freeze_ttl)", \
			  RULE_ISSUED_TO("$2") " AND " RULE_VERSION_MATCHES("$4") " AND " RULE_BATCH_VALID, \
			  "freeze", "issued", "$3", extra)
#define FREEZE_FAST_ARGTYPES 5, {INT8OID, TEXTOID, TEXTOID, INT8OID, INTERVALOID}, NULL

static SpiPlan freeze_fast_plan = {FREEZE_FAST_SQL(DEADLINE_CTE), FREEZE_FAST_ARGTYPES};
static SpiPlan freeze_fast_plan_1_0 = {FREEZE_FAST_SQL(""), FREEZE_FAST_ARGTYPES};

/* $2 order_id, $3 expected_version; back to issued, or to expired with its batch */
static SpiPlan unfreeze_fast_plan = {
	FAST_PLAN("state = " RULE_AFTER_FREEZE ", order_id = NULL, frozen_until = NULL",
			  RULE_FROZEN_FOR("$2") " AND " RULE_VERSION_MATCHES("$3"),
			  "unfreeze", "frozen", "$2", ""),
	3, {INT8OID, TEXTOID, INT8OID}, NULL
};

/* $2 order_id, $3 expected_version */
static SpiPlan redeem_fast_plan = {
	FAST_PLAN("state = 'redeemed', frozen_until = NULL",
			  RULE_FROZEN_FOR("$2") " AND " RULE_VERSION_MATCHES("$3")
			  " AND " RULE_FREEZE_HOLDS " AND " RULE_BATCH_VALID,
			  "redeem", "frozen", "$2", ""),
	3, {INT8OID, TEXTOID, INT8OID}, NULL
};

/* Only when lock_row found nothing: does the coupon exist after all? */
static SpiPlan coupon_exists_plan = {
	"SELECT 1 FROM coupon_lock.coupon WHERE coupon_id = $1",
	1, {INT8OID}, NULL
};

static SpiPlan last_event_plan = {
	"SELECT op, order_id, version, owner_id FROM coupon_lock.coupon_event"
	" WHERE coupon_id = $1 ORDER BY event_id DESC LIMIT 1",
	1, {INT8OID}, NULL
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

/* ---- errors a caller can reach (each raises an ERROR: never returns) ---- */

static void report_version_mismatch(const CouponRow *row, int64 expected) pg_attribute_noreturn();
static void report_wrong_state(const CouponRow *row, CouponOp op) pg_attribute_noreturn();
static void report_owner_mismatch(const CouponRow *row) pg_attribute_noreturn();
static void report_order_mismatch(const CouponRow *row) pg_attribute_noreturn();
static void report_unknown_coupon(int64 coupon_id) pg_attribute_noreturn();

static void
report_version_mismatch(const CouponRow *row, int64 expected)
{
	ereport(ERROR,
			(errcode(ERRCODE_T_R_SERIALIZATION_FAILURE),
			 errmsg("coupon %lld is not at the expected version", (long long) row->coupon_id),
			 errdetail("The current version is %lld and the state is \"%s\"; the call expected version %lld.",
					   (long long) row->version, state_names[row->state], (long long) expected)));
}

/* The hint for a coupon whose freeze has lapsed (0: none). */
static int
lapsed_freeze_hint(const CouponRow *row)
{
	if (row->state != CS_FROZEN || !row->lapsed)
		return 0;
	return errhint("Its freeze has lapsed; coupon_unfreeze by its order or release_expired_freezes() returns it to \"issued\".");
}

static void
report_wrong_state(const CouponRow *row, CouponOp op)
{
	ereport(ERROR,
			(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
			 errmsg("cannot %s coupon %lld in state \"%s\"",
					op_names[op], (long long) row->coupon_id, state_names[row->state]),
			 errdetail("The current version is %lld.", (long long) row->version),
			 lapsed_freeze_hint(row)));
}

void
report_batch_expired(int64 batch_id)
{
	ereport(ERROR,
			(errcode(ERRCODE_CL_BATCH_EXPIRED),
			 errmsg("batch %lld has expired", (long long) batch_id),
			 errdetail("Its valid_until has passed.")));
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
			 errdetail("The current version is %lld.", (long long) row->version),
			 lapsed_freeze_hint(row)));
}

/*
 * CL001; or 40001 when the coupon exists but was created after the
 * snapshot of a REPEATABLE READ or SERIALIZABLE transaction.
 */
static void
report_unknown_coupon(int64 coupon_id)
{
	Datum		values[1] = {Int64GetDatum(coupon_id)};

	if (spi_found_after_snapshot(&coupon_exists_plan, values, NULL))
		ereport(ERROR,
				(errcode(ERRCODE_T_R_SERIALIZATION_FAILURE),
				 errmsg("coupon %lld was created after this transaction's snapshot",
						(long long) coupon_id),
				 errhint("Retry the transaction.")));
	ereport(ERROR,
			(errcode(ERRCODE_CL_UNKNOWN_COUPON),
			 errmsg("coupon %lld does not exist", (long long) coupon_id)));
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

/*
 * The ledger row that made the coupon's current version: the op name in
 * *op, its order and owner.  False when the last row is of another version.
 */
static bool
last_event(const CouponRow *row, const char **op, const char **order_id,
		   const char **owner_id)
{
	Datum		values[1] = {Int64GetDatum(row->coupon_id)};

	if (spi_run(&last_event_plan, values, NULL, 1) == 0 || spi_int64(0, 3) != row->version)
		return false;
	*op = spi_text_or_null(0, 1);
	*order_id = spi_text_or_null(0, 2);
	*owner_id = spi_text_or_null(0, 4);
	return true;
}

/* True when the coupon's last transition was this order letting go of it. */
static bool
last_released_by(const CouponRow *row, const char *order_id)
{
	const char *op,
			   *order,
			   *owner;

	return last_event(row, &op, &order, &owner) &&
		(strcmp(op, op_names[OP_UNFREEZE]) == 0 || strcmp(op, op_names[OP_RELEASE]) == 0) &&
		same_id(order, order_id);
}

/*
 * True when the coupon's last transition was coupon_issue to this owner: a
 * repeated issue is then an idempotent retry (1.1; harda also edits this
 * file).
 */
static bool
last_issued_to(const CouponRow *row, const char *owner_id)
{
	const char *op,
			   *order,
			   *owner;

	return last_event(row, &op, &order, &owner) &&
		strcmp(op, op_names[OP_ISSUE]) == 0 && same_id(owner, owner_id);
}

/* RULE_VERSION_MATCHES */
static void
check_version(const CouponCall *call, const CouponRow *row)
{
	if (call->has_expected && call->expected_version != row->version)
		report_version_mismatch(row, call->expected_version);
}

/* Where a freeze given up goes: back to issued, or expired with its batch (RULE_AFTER_FREEZE). */
static CouponState
after_freeze(const CouponRow *row)
{
	return row->batch_expired ? CS_EXPIRED : CS_ISSUED;
}

/*
 * The state machine.  Raises the caller's error, or fills *ch and says
 * whether to apply it, do nothing (idempotent retry), or skip (sweeps).
 * The checks a successful freeze, unfreeze or redeem passes are marked
 * with the RULE_* macro that is their SQL twin in the fast path: change
 * both or neither.
 */
static Decision
decide(const CouponCall *call, const CouponRow *row, Change *ch)
{
	memset(ch, 0, sizeof(*ch));
	ch->owner_id = row->owner_id;

	switch (call->op)
	{
		case OP_ISSUE:
			if (row->state == CS_ISSUED && same_id(row->owner_id, call->owner_id) &&
				last_issued_to(row, call->owner_id))
				return DECIDE_NOOP;
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
			/* held by another order: CL004 (CL003 when another owner's) */
			if (row->state == CS_FROZEN && !same_id(row->order_id, call->order_id))
			{
				if (!same_id(row->owner_id, call->owner_id))
					report_owner_mismatch(row);
				report_order_mismatch(row);
			}
			if (row->state != CS_ISSUED)	/* RULE_ISSUED_TO */
				report_wrong_state(row, call->op);
			if (!same_id(row->owner_id, call->owner_id))	/* RULE_ISSUED_TO */
				report_owner_mismatch(row);
			if (row->batch_expired) /* RULE_BATCH_VALID */
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
			if (row->state != CS_FROZEN)	/* RULE_FROZEN_FOR */
				report_wrong_state(row, call->op);
			if (!same_id(row->order_id, call->order_id))	/* RULE_FROZEN_FOR */
				report_order_mismatch(row);
			ch->to = after_freeze(row);
			ch->ledger_order = row->order_id;
			return DECIDE_APPLY;

		case OP_REDEEM:
			if (row->state == CS_REDEEMED && same_id(row->order_id, call->order_id))
				return DECIDE_NOOP;
			check_version(call, row);
			if (row->state != CS_FROZEN)	/* RULE_FROZEN_FOR */
				report_wrong_state(row, call->op);
			if (!same_id(row->order_id, call->order_id))	/* RULE_FROZEN_FOR */
				report_order_mismatch(row);
			if (row->lapsed)	/* RULE_FREEZE_HOLDS */
				ereport(ERROR,
						(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
						 errmsg("cannot redeem coupon %lld: its freeze has lapsed",
								(long long) row->coupon_id),
						 errdetail("The current version is %lld.", (long long) row->version),
						 errhint("A lapsed freeze cannot be renewed: coupon_unfreeze it for this order, then coupon_freeze it again before redeeming.")));
			if (row->batch_expired) /* RULE_BATCH_VALID */
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

	/* the owner's quota row before the coupon row (quota.h) */
	if (call->op == OP_ISSUE)
		cl_quota_lock_for_coupon(call->coupon_id, call->owner_id);
	else if (call->op == OP_REVOKE)
		cl_quota_lock_for_coupon(call->coupon_id, NULL);

	if (!lock_row(call->coupon_id, &row))
		report_unknown_coupon(call->coupon_id);

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

/*
 * A claim's write: apply()'s statement with the claim's constants written
 * in (states, op, no order, no freeze), so that the plan casts no text to
 * the state enum and sets no column a claim leaves as it is (an available
 * coupon has no order_id and no frozen_until: coupon_row_is_valid).
 * $1 coupon_id, $2 the version read, $3 owner_id.
 */
static SpiPlan claim_plan = {
	"WITH u AS ("
	"  UPDATE coupon_lock.coupon"
	"     SET state = 'issued', owner_id = $3, version = version + 1, updated_at = pg_catalog.now()"
	"   WHERE coupon_id = $1 AND version = $2 AND state = 'available'"
	"  RETURNING coupon_id, version, owner_id)"
	" INSERT INTO coupon_lock.coupon_event"
	"        (coupon_id, op, from_state, to_state, version, owner_id, order_id)"
	" SELECT u.coupon_id, 'claim', 'available', 'issued', u.version, u.owner_id, NULL"
	"   FROM u"
	" RETURNING version",
	3, {INT8OID, INT8OID, TEXTOID}, NULL
};

bool
coupon_apply_claim(int64 coupon_id, int64 version, const char *owner_id)
{
	Datum		values[3] = {Int64GetDatum(coupon_id), Int64GetDatum(version),
	CStringGetTextDatum(owner_id)};

	return spi_run(&claim_plan, values, NULL, 0) == 1;
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
