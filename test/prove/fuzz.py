#!/usr/bin/env python3
"""Writes the fuzz script of test/prove/fuzz.sh: thousands of calls of every
function of schema coupon_lock with hostile arguments.

The function list and argument types come from pg_proc (read by fuzz.sh and
passed on stdin as "signature|name|nargs|ndefaults|type,type,..."), so a
function added to the extension is fuzzed without touching this file.

Each call becomes one top-level statement
    SELECT prove_fuzz.try('signature', $fz$SELECT coupon_lock.f(...)$fz$);
so statement_timeout bounds each call and a lock taken by a call is gone at
the end of its own transaction.  prove_fuzz.try records the SQLSTATE.
Arguments are SQL expressions (repeat('x', 1048576) rather than a megabyte
literal), mixed from the pools below; trailing arguments that have defaults
are sometimes left out; three calls in ten are "coherent" (a live coupon
with its own owner and order) so that hostile values get past the id checks.

usage: fuzz.py CALLS_PER_FUNCTION SEED [RESET_LINE] < functions > script.sql
"""
import random
import sys

MB = 1048576

# Values of each type: NULLs, extremes, and for text every kind of awkward
# string.  Unknown types get NULL and a cast of an empty string.
POOLS = {
    "text": [
        "NULL", "''", "' '", "'a'", "'alice'", "'order-1'", "'coupon:1'",
        "repeat('x', 512)", "repeat('x', 513)", "repeat('é', 257)",
        "repeat('x', %d)" % MB, "repeat('ab', 300000)",
        r"E'\t\n\r\b\f'", r"E'\x01\x02\x03\x7f'", "chr(27) || '[2J'",
        r"E'\\'", "'%s%s%s%n%d%x'", "'''; DROP TABLE coupon_lock.coupon; --'",
        "'\"quoted\" ident'", "U&'\\+01F600 \\00E9'", "repeat(chr(160), 40)",
        "'coupon_lock:' || repeat('k', 100)", "'*'", "'?'", "'\\r\\nSET a b'",
        "'AUTH x'", "'0'", "'-1'", "'NULL'",
    ],
    "bigint": [
        "NULL", "0", "1", "2", "3", "-1", "9223372036854775807",
        "(-9223372036854775807 - 1)", "4294967296", "2147483648",
        "(SELECT max(coupon_id) FROM coupon_lock.coupon)",
        "(SELECT max(coupon_id) + 1 FROM coupon_lock.coupon)",
        "(SELECT max(batch_id) FROM coupon_lock.batch)",
        "(SELECT coupon_id FROM coupon_lock.coupon WHERE state = 'frozen' LIMIT 1)",
        "(SELECT coupon_id FROM coupon_lock.coupon WHERE state = 'issued' LIMIT 1)",
        "(SELECT version FROM coupon_lock.coupon WHERE state = 'issued' LIMIT 1)",
    ],
    "integer": [
        "NULL", "0", "1", "2", "5", "1000", "-1", "2147483647", "(-2147483647 - 1)",
    ],
    "smallint": ["NULL", "0", "1", "-1", "32767", "(-32767 - 1)"],
    "interval": [
        "NULL", "'0'", "'-1 second'", "'1 microsecond'", "'1 millisecond'",
        "'10 milliseconds'", "'1 second'", "'15 minutes'", "'1 month'",
        "'-1 month 40 days'", "'1 month -31 days'", "'1 day -86399 seconds'",
        "'178000000 years'", "'-178000000 years'", "'2147483647 days'",
        "'-2147483648 days'", "'2147483647 months'", "'2562047788:00:54.775807'",
        "'-2562047788:00:54.775807'",
    ],
    "timestamp with time zone": [
        "NULL", "now()", "now() - interval '1 second'", "now() + interval '1 second'",
        "now() + interval '1 hour'", "'infinity'", "'-infinity'", "'epoch'",
        "'4713-01-01 00:00:00+00 BC'", "'294276-12-31 23:59:59+00'",
    ],
    "boolean": ["NULL", "true", "false"],
    "double precision": ["NULL", "0", "-1", "'NaN'", "'Infinity'", "'-Infinity'", "1e308"],
    "numeric": ["NULL", "0", "-1", "'NaN'", "1e1000"],
}


# Coherent calls: the first bigint names a live coupon and the texts its own
# owner and order, so that the hostile values of the other arguments reach
# the code behind the argument checks (a freeze with an enormous ttl).
LIVE = "(SELECT %s FROM coupon_lock.coupon WHERE state = '%s' ORDER BY coupon_id LIMIT 1)"


def coherent_args(types, rng):
    state = rng.choice(["issued", "frozen", "available"])
    texts = [LIVE % ("owner_id", state), LIVE % ("order_id", state), "'order-new'"]
    args, seen_bigint = [], False
    for t in types:
        if t == "bigint" and not seen_bigint:
            args.append("(%s)::bigint" % (LIVE % ("coupon_id", state)))
            seen_bigint = True
        elif t == "bigint":
            args.append(rng.choice(["NULL", LIVE % ("version", state)]) + "::bigint")
        elif t == "text" and texts:
            args.append("(%s)::text" % texts.pop(0))
        else:
            args.append(value(t, rng))
    return args


RESET_EVERY = 20


def value(argtype, rng):
    pool = POOLS.get(argtype)
    if pool is None:
        return rng.choice(["NULL", "''"]) + "::" + argtype
    return "(" + rng.choice(pool) + ")::" + argtype


def main():
    calls, seed = int(sys.argv[1]), int(sys.argv[2])
    reset = sys.argv[3] if len(sys.argv) > 3 else None
    rng = random.Random(seed)
    statements = []
    for line in sys.stdin:
        line = line.rstrip("\n")
        if not line:
            continue
        signature, name, nargs, ndefaults, types = line.split("|")
        nargs, ndefaults = int(nargs), int(ndefaults)
        types = types.split(",") if types else []
        for _ in range(calls):
            # one call in four leaves out some of the defaulted arguments
            n = nargs
            if ndefaults and rng.random() < 0.25:
                n = nargs - rng.randint(1, ndefaults)
            if rng.random() < 0.3:
                args = ", ".join(coherent_args(types[:n], rng))
            else:
                args = ", ".join(value(t, rng) for t in types[:n])
            call = "SELECT coupon_lock.%s(%s)" % (name, args)
            assert "$fz$" not in call
            statements.append("SELECT prove_fuzz.try('%s', $fz$%s$fz$);" % (signature.replace("'", "''"), call))
    # Interleaved, and every RESET_EVERY calls the reset line (fuzz.sh: drop
    # the Redis keys the fuzzer's own locks left, so that a call with a long
    # wait does not sit out its statement_timeout behind an earlier call).
    rng.shuffle(statements)
    for i, statement in enumerate(statements):
        if reset and i % RESET_EVERY == 0:
            print(reset)
        print(statement)


if __name__ == "__main__":
    main()
