#!/usr/bin/env python3
"""A checkout with coupon_lock: claim -> freeze -> redeem (paid) or unfreeze
(cancelled), each step through the retry runner.

    python3 checkout.py "host=127.0.0.1 dbname=shop user=app" BATCH_ID CUSTOMER [--cancel]

Every step is retry-safe, so a lost connection is simply retried: the claim
carries a request id (one per checkout), and freeze, unfreeze and redeem are
idempotent for the same order.  Prints what each step returned.
"""
import argparse
import sys
import uuid

from coupon_lock_client import (BatchExpired, CouponLockError, Coupons, LimitReached,
                                ReconnectingConnection, Runner)


def checkout(runner: Runner, batch_id: int, customer: str, pay) -> dict:
    """Runs one checkout; ``pay(order_id)`` says whether the payment went
    through.  Returns what happened: coupon_id, order_id, outcome, version."""
    request_id = str(uuid.uuid4())      # one per user action, kept across retries
    order_id = f"order-{uuid.uuid4()}"
    coupon_id = runner.run(lambda c: Coupons(c).claim(batch_id, customer, request_id), retry_safe=True)
    if coupon_id is None:
        return {"outcome": "sold out"}
    version = runner.run(lambda c: Coupons(c).freeze(coupon_id, customer, order_id), retry_safe=True)
    if pay(order_id):
        version = runner.run(lambda c: Coupons(c).redeem(coupon_id, order_id), retry_safe=True)
        outcome = "redeemed"
    else:
        version = runner.run(lambda c: Coupons(c).unfreeze(coupon_id, order_id), retry_safe=True)
        outcome = "unfrozen"
    return {"coupon_id": coupon_id, "order_id": order_id, "outcome": outcome, "version": version}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("conninfo")
    ap.add_argument("batch_id", type=int)
    ap.add_argument("customer")
    ap.add_argument("--cancel", action="store_true", help="the payment fails: unfreeze")
    args = ap.parse_args()
    source = ReconnectingConnection(args.conninfo, application_name="coupon_lock checkout example")
    runner = Runner(source, lock_timeout="5s")
    try:
        print(checkout(runner, args.batch_id, args.customer, lambda order: not args.cancel))
    except (LimitReached, BatchExpired) as e:       # business answers
        print(f"no coupon: {e}")
        return 1
    except CouponLockError as e:
        print(f"failed: {e} {e.detail or ''}", file=sys.stderr)
        return 2
    finally:
        source.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
