#!/usr/bin/env python3
"""The library of the current version in a database still at 1.0
(test/prove/upgrade_lib10.sh).

  upgrade_lib10.py script SEED CALLS < functions > calls.sql
      Writes one script that upgrade_lib10.sh runs twice: in a database
      created at 1.0 and in a fresh one.  The functions come from the 1.0
      database's pg_proc ("signature|name|retset|argnames|argtypes|nargs|
      ndefaults" per line), so every function of the 1.0 script is called,
      CALLS times, with the argument list of its 1.0 declaration.  Arguments
      are chosen by argument name from coherent pools: a coupon in some
      state with its own owner, order and version most of the time, another
      owner, order or a stale version otherwise, so that calls reach the
      transitions and not only the argument checks.  Each call is recorded
      by upgrade_lib.try (its SQLSTATE and result text).

  upgrade_lib10.py compare OLD NEW
      Compares the two recordings ("id|signature|sqlstate|result|message"
      per line): every call of the 1.0 database must have answered what the
      fresh database answered (same SQLSTATE, same result; Redis tokens are
      random and compare as "<token>"), or refused with the 55000 of
      cl_require_sql_version ("needs the SQL definitions of coupon_lock").
      Prints "OK text" / "FAILED text" lines.
"""
import random
import re
import sys

LIVE = "(SELECT %s FROM coupon_lock.coupon WHERE state = '%s' ORDER BY coupon_id LIMIT 1)"
STATES = ["available", "issued", "frozen", "redeemed", "revoked"]
BATCH = "(SELECT batch_id FROM coupon_lock.batch WHERE name = '%s')"
LAST_TOKEN = ("coalesce((SELECT result FROM upgrade_lib.result WHERE result ~ '^[0-9a-f]{32}$'"
              " ORDER BY id DESC LIMIT 1), 'no-token')")

# The state a coupon function needs to succeed: most of its calls pick a
# coupon in that state (the others any state, for the refusals).
NEEDS = {"coupon_issue": "available", "coupon_freeze": "issued",
         "coupon_unfreeze": "frozen", "coupon_redeem": "frozen"}

# Values by argument name; "%(...)s" fields are filled from the coherent coupon.
BY_NAME = {
    "coupon_id": ["%(coupon)s", "%(coupon)s", "%(coupon)s",
                  "(SELECT max(coupon_id) + 100 FROM coupon_lock.coupon)", "NULL"],
    "owner_id": ["%(owner)s", "%(owner)s", "'owner-new'", "'owner-1'"],
    "order_id": ["%(order)s", "%(order)s", "'order-new'", "'order-1'"],
    "expected_version": ["NULL", "%(version)s", "%(version)s", "(%(version)s - 1)"],
    "batch_id": [BATCH % "lib main", BATCH % "lib small", BATCH % "lib main",
                 "(SELECT max(batch_id) + 100 FROM coupon_lock.batch)", "NULL"],
    "name": ["'lib-a'", "'lib-b'", "'lib-a'"],
    "quantity": ["3", "2", "0"],
    "per_user_limit": ["1", "2", "0"],
    "valid_until": ["NULL", "now() + interval '1 day'", "now() - interval '1 day'"],
    "freeze_ttl": ["'1 hour'", "'1 hour'", "'0'"],
    "ttl": ["NULL", "'1 hour'", "'1 hour'", "'0'"],
    "timeout": ["NULL", "'0'", "'10 milliseconds'"],
    "wait": ["'0'", "'10 milliseconds'"],
    "holder": ["'worker-1'", "'worker-2'", "'worker-1'"],
    "fence": ["1", "2", "(SELECT fence FROM coupon_lock.lease WHERE name = 'lib-a')"],
    # 'coupon:x' is under the guard keys' prefix (the privilege rules of
    # guard keys apply) but names no coupon: a guard key 'coupon:<n>' has the
    # 1.0 Redis layout in a 1.0 database and 1.1's (with the database) in a
    # fresh one, so Redis locks on it would collide differently by design.
    "key": ["'k1'", "'k2'", "'coupon:x'"],
    "token": [LAST_TOKEN, LAST_TOKEN, "'no-token'"],
    "lock_id": ["coupon_lock.advisory_lock_id('k1')", "coupon_lock.advisory_lock_id('k2')", "42"],
    "max_rows": ["1", "100", "0"],
    "state": ["'%s'" % s for s in STATES + ["expired"]],
    "frozen_until": ["NULL", "now() + interval '1 hour'"],
    "version": ["1", "2", "0"],
}
BY_TYPE = {
    "text": ["'x'", "NULL"], "bigint": ["1", "NULL"], "integer": ["1", "NULL"],
    "interval": ["'1 minute'", "NULL"], "timestamp with time zone": ["now()", "NULL"],
    "boolean": ["true", "NULL"],
}

SETUP = r"""
\set ON_ERROR_STOP 1
SET client_min_messages = warning;
CREATE SCHEMA upgrade_lib;
CREATE TABLE upgrade_lib.result (id integer PRIMARY KEY, fn text, sqlstate text, result text, message text);
-- Runs one call and records its answer (or its SQLSTATE and message).
CREATE FUNCTION upgrade_lib.try(id integer, fn text, q text) RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    r text;
BEGIN
    EXECUTE q INTO r;
    INSERT INTO upgrade_lib.result VALUES (id, fn, '00000', coalesce(r, 'NULL'), NULL);
EXCEPTION
    WHEN query_canceled THEN    -- a wait that ran into statement_timeout (OTHERS does not catch it)
        INSERT INTO upgrade_lib.result VALUES (id, fn, SQLSTATE, NULL, SQLERRM);
    WHEN OTHERS THEN
        INSERT INTO upgrade_lib.result VALUES (id, fn, SQLSTATE, NULL, SQLERRM);
END $$;
-- Coupons in every state, through the 1.0 API.
SELECT coupon_lock.create_batch('lib main', 60, 2, NULL, '1 hour') \g /dev/null
SELECT coupon_lock.create_batch('lib small', 2, 1) \g /dev/null
SELECT count(coupon_lock.coupon_claim((SELECT batch_id FROM coupon_lock.batch WHERE name = 'lib main'), 'owner-' || i))
  FROM generate_series(1, 30) i \g /dev/null
SELECT count(coupon_lock.coupon_freeze(coupon_id, owner_id, 'order-' || coupon_id))
  FROM coupon_lock.coupon WHERE state = 'issued' AND coupon_id % 2 = 0 \g /dev/null
SELECT coupon_lock.coupon_redeem(coupon_id, order_id) FROM coupon_lock.coupon
 WHERE state = 'frozen' ORDER BY coupon_id LIMIT 1 \g /dev/null
SELECT coupon_lock.coupon_revoke(coupon_id) FROM coupon_lock.coupon
 WHERE state = 'available' ORDER BY coupon_id DESC LIMIT 1 \g /dev/null
SELECT coupon_lock.lease_acquire('lib-a', 'worker-1', '1 hour') \g /dev/null
"""


def value(argname, argtype, live, rng):
    pool = BY_NAME.get(argname) or BY_TYPE.get(argtype) or ["NULL"]
    return "(%s)::%s" % (rng.choice(pool) % live, argtype)


def script(seed, calls):
    rng = random.Random(seed)
    statements = []
    for line in sys.stdin:
        line = line.rstrip("\n")
        if not line:
            continue
        signature, name, retset, argnames, argtypes, nargs, ndefaults = line.split("|")
        names = argnames.split(",") if argnames else []
        types = argtypes.split(",") if argtypes else []
        for _ in range(calls):
            n = int(nargs)
            if int(ndefaults) and rng.random() < 0.3:
                n -= rng.randint(1, int(ndefaults))
            # A wait left to its default (NULL: no limit for hybrid_xact_lock)
            # could block on this session's own Redis lock of the same key
            # until statement_timeout: such calls would compare timings, not
            # answers.  Waits are always passed, from the pools below.
            n = max([n] + [i + 1 for i, a in enumerate(names) if a in ("wait", "timeout")])
            state = rng.choice(STATES)
            if name in NEEDS and rng.random() < 0.6:
                state = NEEDS[name]
            live = {"coupon": LIVE % ("coupon_id", state),
                    "owner": "coalesce(%s, 'owner-%d')" % (LIVE % ("owner_id", state), rng.randint(100, 99999)),
                    "order": "coalesce(%s, 'order-9')" % (LIVE % ("order_id", state)),
                    "version": LIVE % ("version", state)}
            args = ", ".join(value(names[i] if i < len(names) else "", types[i], live, rng) for i in range(n))
            if retset == "t":
                call = "SELECT count(*)::text || ' rows' FROM coupon_lock.%s(%s)" % (name, args)
            else:
                call = "SELECT coupon_lock.%s(%s)::text" % (name, args)
            statements.append((signature, call))
    rng.shuffle(statements)
    print(SETUP)
    for i, (signature, call) in enumerate(statements):
        if i == len(statements) // 2:
            print("SET coupon_lock.redis_guard = on;   -- the second half runs every transition guarded")
        assert "$c$" not in call
        print("SELECT upgrade_lib.try(%d, '%s', $c$%s$c$);" % (i, signature.replace("'", "''"), call))


TOKEN = re.compile(r"^[0-9a-f]{32}$")
REFUSAL = "needs the SQL definitions of coupon_lock"


def read(path):
    rows = {}
    with open(path) as f:
        for line in f:
            i, fn, state, result, message = line.rstrip("\n").split("|", 4)
            rows[int(i)] = (fn, state, TOKEN.sub("<token>", result), message)
    return rows


def compare(old_path, new_path):
    old, new = read(old_path), read(new_path)
    ok = True

    def say(good, text):
        nonlocal ok
        ok = ok and good
        print(("OK " if good else "FAILED ") + text)

    functions = sorted({r[0] for r in old.values()})
    say(len(old) == len(new) and len(old) > 0,
        "both databases recorded every call (%d and %d calls of %d functions)" % (len(old), len(new), len(functions)))
    internal = [(i, r) for i, r in sorted(old.items()) if re.match(r"^(XX|58)", r[1])]
    say(not internal, "no call in the 1.0 database raised an internal error (class XX or 58)")
    for i, r in internal[:10]:
        print("  call %d %s: %s %s" % (i, r[0], r[1], r[3]))
    refused, differ = {}, []
    for i, r in sorted(old.items()):
        n = new.get(i)
        if n is not None and (r[1], r[2]) == (n[1], n[2]):
            continue
        if r[1] == "55000" and REFUSAL in r[3]:
            refused[r[0]] = refused.get(r[0], 0) + 1
            continue
        differ.append((i, r, n))
    say(not differ, "every call answered as in a fresh database, or refused with 55000 (%d differ)" % len(differ))
    for i, r, n in differ[:15]:
        print("  call %d %s: 1.0 database %s %s %s; fresh database %s" % (
            i, r[0], r[1], r[2], r[3], "%s %s %s" % n[1:] if n else "no answer"))
    print("  refused with cl_require_sql_version's 55000: %s"
          % (", ".join("%s (%d)" % kv for kv in sorted(refused.items())) or "none"))
    # Every function must have got past its argument checks at least once in
    # the fresh database, or the comparison would only compare errors.
    reached = {r[0] for r in new.values() if r[1] == "00000"}
    missing = [f for f in functions if f not in reached]
    say(not missing, "every function answered without error at least once (%d functions)" % len(functions))
    for f in missing:
        print("  never answered: %s" % f)
    return ok


def main():
    if sys.argv[1] == "script":
        script(int(sys.argv[2]), int(sys.argv[3]))
    else:
        sys.exit(0 if compare(sys.argv[2], sys.argv[3]) else 1)


if __name__ == "__main__":
    main()
