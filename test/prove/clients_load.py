#!/usr/bin/env python3
"""The clients layer's Python customers: examples/python's helper module run
by many concurrent customers, each doing checkouts (claim with a request id
-> freeze -> redeem or unfreeze) through its Runner.  Connections may be
terminated at any moment by the layer; the runner retries the retry-safe
units.  Every acknowledged answer goes to ACKLOG, one line each:

    claim OWNER REQUEST COUPON|none      redeem COUPON ORDER VERSION      unfreeze COUPON ORDER VERSION

usage: clients_load.py CONNINFO BATCH CUSTOMERS THREADS CHECKOUTS ACKLOG ERRBATCH ENDEDBATCH
ERRBATCH (a limit of 1) and ENDEDBATCH (past its valid_until) serve the error
catalogue: every SQLSTATE the helper types, provoked once and checked.
(CL_CLIENTS_PAY_MS: mean time a payment takes between freeze and redeem, default 40)
prints one line: "python: checkouts N redeemed R unfrozen U sold_out S limit L
unexpected E lost C conflict_rerun ok|FAILED errors ok|GOT,..."
"""
import os
import queue
import random
import sys
import threading
import time
import uuid

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "examples", "python"))
import psycopg  # noqa: E402
from coupon_lock_client import (CouponLockError, Coupons, LimitReached,  # noqa: E402
                                ReconnectingConnection, Runner, VersionConflict, translate)

# what error_catalogue() must see, in order
EXPECTED_ERRORS = ["UnknownCoupon", "UnknownBatch", "OwnerMismatch@2/issued", "OrderMismatch@3", "LimitReached",
                   "BatchExpired", "VersionConflict@3/frozen", "WrongState@3", "InvalidArgument",
                   "InvalidArgument", "ReadOnly", "LockTimeout", "RedisUnavailable", "Deadlock"]

conninfo, batch, customers, threads, checkouts, acklog, err_batch, ended_batch = sys.argv[1:9]
batch, customers, threads, checkouts = int(batch), int(customers), int(threads), int(checkouts)
err_batch, ended_batch = int(err_batch), int(ended_batch)
PAY_MS = float(os.environ.get("CL_CLIENTS_PAY_MS", "40"))
counts = {"checkouts": 0, "redeemed": 0, "unfrozen": 0, "sold_out": 0, "limit": 0, "unexpected": 0, "lost": 0}
lock = threading.Lock()
acks = open(acklog, "w", buffering=1)


def ack(line):
    with lock:
        acks.write(line + "\n")


def note(key, n=1):
    with lock:
        counts[key] += n


def checkout(runner, owner):
    request_id = str(uuid.uuid4())
    order_id = f"o-{uuid.uuid4()}"
    coupon_id = runner.run(lambda c: Coupons(c).claim(batch, owner, request_id), retry_safe=True)
    ack(f"claim {owner} {request_id} {coupon_id if coupon_id is not None else 'none'}")
    if coupon_id is None:
        note("sold_out")
        return

    def freeze(conn):       # decides on what it reads: a rerun reads again
        cp = Coupons(conn)
        return cp.freeze(coupon_id, owner, order_id, expected_version=cp.get(coupon_id).version)
    runner.run(freeze, retry_safe=True)
    time.sleep(random.uniform(0, 2 * PAY_MS / 1000))     # the payment
    if random.random() < 0.7:
        v = runner.run(lambda c: Coupons(c).redeem(coupon_id, order_id), retry_safe=True)
        ack(f"redeem {coupon_id} {order_id} {v}")
        note("redeemed")
    else:
        v = runner.run(lambda c: Coupons(c).unfreeze(coupon_id, order_id), retry_safe=True)
        ack(f"unfreeze {coupon_id} {order_id} {v}")
        note("unfrozen")


def worker(todo):
    source = ReconnectingConnection(conninfo, application_name="clients-python")
    runner = Runner(source, lock_timeout="10s", attempts=12)
    while True:
        try:
            owner = todo.get_nowait()
        except queue.Empty:
            break
        for _ in range(checkouts):
            try:
                checkout(runner, owner)
                note("checkouts")
            except LimitReached:
                note("limit")
            except CouponLockError as e:
                note("unexpected")
                print(f"unexpected: {type(e).__name__} {e}", file=sys.stderr)
    note("lost", runner.stats.get("ConnectionLost", 0))
    source.close()


def conflict_rerun():
    """A unit that decides on a stale version on its first attempt: the runner
    must rerun it (not resend the version), and the rerun reads afresh."""
    source = ReconnectingConnection(conninfo, application_name="clients-python-conflict")
    runner = Runner(source)
    owner, order = "py-conflict", f"o-{uuid.uuid4()}"
    coupon_id = runner.run(lambda c: Coupons(c).claim(batch, owner, "conflict"), retry_safe=True)
    if coupon_id is None:
        return False
    seen = []

    def unit(conn):
        cp = Coupons(conn)
        version = cp.get(coupon_id).version
        seen.append(version)
        return cp.freeze(coupon_id, owner, order, expected_version=version - 1 if len(seen) == 1 else version)
    try:
        v = runner.run(unit)
    except VersionConflict:
        return False
    runner.run(lambda c: Coupons(c).unfreeze(coupon_id, order), retry_safe=True)
    source.close()
    return seen == [2, 2] and v == 3 and runner.stats.get("VersionConflict") == 1


def error_catalogue():
    """Provokes each SQLSTATE the helper types once; returns what it got."""
    opts = {"autocommit": True, "prepare_threshold": None}
    conn = psycopg.connect(conninfo, application_name="clients-python-errors", **opts)
    other = psycopg.connect(conninfo, application_name="clients-python-errors", **opts)
    cp, owner, got = Coupons(conn), "py-errors", []

    def expect(call):
        try:
            call()
            got.append("no error")
        except CouponLockError as e:
            got.append(type(e).__name__ + (f"@{e.current_version}" if e.current_version else "")
                       + (f"/{e.current_state}" if e.current_state else ""))

    def in_tx(*steps):
        def run():
            with conn.transaction():
                for step in steps:
                    step()
        return run

    def sql(q):
        def run():
            try:
                conn.execute(q)
            except psycopg.Error as exc:
                raise translate(exc, conn) from exc
        return run

    coupon = cp.claim(err_batch, owner)
    expect(lambda: cp.freeze(2 ** 62, owner, "o-1"))                        # CL001
    expect(lambda: cp.claim(2 ** 62, owner))                                # CL002
    expect(lambda: cp.freeze(coupon, "py-someone-else", "o-1"))             # CL003
    cp.freeze(coupon, owner, "o-1")
    expect(lambda: cp.redeem(coupon, "o-2"))                                # CL004
    expect(lambda: cp.claim(err_batch, owner))                              # CL005
    expect(lambda: cp.claim(ended_batch, owner))                            # CL006
    expect(lambda: cp.unfreeze(coupon, "o-1", expected_version=1))          # 40001 + DETAIL
    expect(lambda: cp.issue(coupon, "py-someone-else"))                     # 55000
    expect(lambda: cp.claim(err_batch, ""))                                 # 22023
    expect(lambda: cp.claim(err_batch, None))                               # 22004
    expect(in_tx(sql("SET TRANSACTION READ ONLY"), lambda: cp.unfreeze(coupon, "o-1")))   # 25006
    with other.transaction():                                               # 55P03
        other.execute("SELECT FROM coupon_lock.coupon WHERE coupon_id = %s FOR UPDATE", (coupon,))
        expect(in_tx(sql("SET LOCAL lock_timeout = '100ms'"), lambda: cp.unfreeze(coupon, "o-1")))
    expect(in_tx(sql("SET LOCAL coupon_lock.redis_host = '127.0.0.1'"),    # class 08
                 sql("SET LOCAL coupon_lock.redis_port = 1"),
                 sql("SELECT coupon_lock.redis_lock('clients-python', '1 second')")))
    expect(lambda: deadlock(conn, other, coupon, cp.claim(err_batch, owner + "-2")))   # 40P01
    conn.close()
    other.close()
    return got


def deadlock(conn, other, a, b):
    """conn locks coupon a, other b, then each the other's: one gets 40P01."""
    lock = "SELECT FROM coupon_lock.coupon WHERE coupon_id = %s FOR UPDATE"
    errs = []

    def cross(cn, coupon_id):
        try:
            cn.execute(lock, (coupon_id,))
        except psycopg.Error as exc:
            errs.append(translate(exc, cn))
    for cn, coupon_id in ((conn, a), (other, b)):
        cn.execute("BEGIN")
        cn.execute(lock, (coupon_id,))
    t = threading.Thread(target=cross, args=(other, a))
    t.start()
    cross(conn, b)
    t.join()
    for cn in (conn, other):
        cn.execute("ROLLBACK")
    if errs:
        raise errs[0]


todo = queue.Queue()
for i in range(customers):
    todo.put(f"py-{i}")
rerun_ok = conflict_rerun()
errors = error_catalogue()
ts = [threading.Thread(target=worker, args=(todo,)) for _ in range(threads)]
for t in ts:
    t.start()
for t in ts:
    t.join()
acks.close()
print("python: " + " ".join(f"{k} {v}" for k, v in counts.items()) + f" conflict_rerun {'ok' if rerun_ok else 'FAILED'}"
      f" errors {'ok' if errors == EXPECTED_ERRORS else ','.join(errors).replace(' ', '_')}")
