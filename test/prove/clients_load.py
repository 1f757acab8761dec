#!/usr/bin/env python3
"""The clients layer's Python customers: examples/python's helper module run
by many concurrent customers, each doing checkouts (claim with a request id
-> freeze -> redeem or unfreeze) through its Runner.  Connections may be
terminated at any moment by the layer; the runner retries the retry-safe
units.  Every acknowledged answer goes to ACKLOG, one line each:

    claim OWNER REQUEST COUPON|none      redeem COUPON ORDER VERSION      unfreeze COUPON ORDER VERSION

usage: clients_load.py CONNINFO BATCH CUSTOMERS THREADS CHECKOUTS ACKLOG
(CL_CLIENTS_PAY_MS: mean time a payment takes between freeze and redeem, default 40)
prints one line: "python: checkouts N redeemed R unfrozen U sold_out S limit L
unexpected E lost C conflict_rerun ok|FAILED"
"""
import os
import queue
import random
import sys
import threading
import time
import uuid

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "examples", "python"))
from coupon_lock_client import (CouponLockError, Coupons, LimitReached,  # noqa: E402
                                ReconnectingConnection, Runner, VersionConflict)

conninfo, batch, customers, threads, checkouts, acklog = sys.argv[1:7]
batch, customers, threads, checkouts = int(batch), int(customers), int(threads), int(checkouts)
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


todo = queue.Queue()
for i in range(customers):
    todo.put(f"py-{i}")
rerun_ok = conflict_rerun()
ts = [threading.Thread(target=worker, args=(todo,)) for _ in range(threads)]
for t in ts:
    t.start()
for t in ts:
    t.join()
acks.close()
print("python: " + " ".join(f"{k} {v}" for k, v in counts.items()) + f" conflict_rerun {'ok' if rerun_ok else 'FAILED'}")
