"""Calling coupon_lock from Python with psycopg 3.

Three parts, each usable alone:

* typed errors: :func:`translate` turns a psycopg error into the
  :class:`CouponLockError` subclass of its SQLSTATE (the README's error
  tables), with the coupon's current version and state read from the DETAIL;
* :class:`Coupons`: the SQL functions as methods on one connection, ids as
  Python ints, every call one statement;
* :class:`Runner`: runs a unit of work (a function of a connection) in one
  transaction and knows which failures to retry and how.

Pooler-safe by default: no session advisory locks, settings only with
``set_config(..., true)`` (``SET LOCAL``), no server-side prepared
statements (``prepare_threshold=None``), so the same code runs through a
transaction-mode PgBouncer or the coupon_lock_router unchanged -- only the
connection string differs.

Example::

    runner = Runner(ReconnectingConnection("host=db dbname=shop"))
    coupon_id = runner.run(lambda conn: Coupons(conn).claim(7, "customer-1", request_id),
                           retry_safe=True)
"""

from __future__ import annotations

import dataclasses
import random
import re
import threading
import time
from contextlib import contextmanager
from typing import Callable, ContextManager, Iterator, Optional, TypeVar

import psycopg

T = TypeVar("T")

__all__ = [
    "CouponLockError", "UnknownCoupon", "UnknownBatch", "OwnerMismatch", "OrderMismatch",
    "LimitReached", "BatchExpired", "VersionConflict", "SerializationFailure", "Deadlock",
    "WrongState", "LockTimeout", "InvalidArgument", "ReadOnly", "RedisUnavailable",
    "ConnectionLost", "OutcomeUnknown", "translate", "Coupon", "Coupons",
    "ReconnectingConnection", "Runner",
]


# ---------------------------------------------------------------- errors

class CouponLockError(Exception):
    """A failed call.  ``sqlstate``, ``message``, ``detail`` and ``hint`` come
    from the server; ``current_version`` and ``current_state`` are filled
    when the DETAIL names them (40001, 55000, CL003, CL004)."""

    #: True when the failure says nothing changed and the same unit may run again.
    retry = False

    def __init__(self, message: str, sqlstate: Optional[str] = None,
                 detail: Optional[str] = None, hint: Optional[str] = None):
        super().__init__(message)
        self.message = message
        self.sqlstate = sqlstate
        self.detail = detail
        self.hint = hint
        self.current_version: Optional[int] = None
        self.current_state: Optional[str] = None
        if detail:
            m = re.search(r"current version is (\d+)", detail)
            if m:
                self.current_version = int(m.group(1))
            m = re.search(r'state is "(\w+)"', detail)
            if m:
                self.current_state = m.group(1)

    def __str__(self) -> str:
        return f"{self.sqlstate or '-----'}: {self.message}"


class UnknownCoupon(CouponLockError):
    """CL001: no coupon with that id."""


class UnknownBatch(CouponLockError):
    """CL002: no batch with that id."""


class OwnerMismatch(CouponLockError):
    """CL003: the coupon belongs to another owner."""


class OrderMismatch(CouponLockError):
    """CL004: the coupon is frozen for another order."""


class LimitReached(CouponLockError):
    """CL005: the owner holds ``per_user_limit`` coupons of the batch."""


class BatchExpired(CouponLockError):
    """CL006: the batch's ``valid_until`` has passed."""


class VersionConflict(CouponLockError):
    """40001 from a coupon call: ``expected_version`` was stale.  The coupon is
    now at ``current_version`` in ``current_state``: re-read and decide again,
    never resend the old version."""
    retry = True


class SerializationFailure(CouponLockError):
    """40001 without a coupon's version (REPEATABLE READ / SERIALIZABLE
    conflicts): rerun the whole transaction."""
    retry = True


class Deadlock(CouponLockError):
    """40P01: rerun the whole transaction."""
    retry = True


class WrongState(CouponLockError):
    """55000: the transition is not allowed from the coupon's current state
    (or its freeze has lapsed, or Redis is not configured)."""


class LockTimeout(CouponLockError):
    """55P03: a lock or the Redis guard was not free in time; back off, retry."""
    retry = True


class InvalidArgument(CouponLockError):
    """22xxx: NULL, empty, too long or out of range -- a bug in the caller."""


class ReadOnly(CouponLockError):
    """25006: connected to a standby.  Reconnect (``target_session_attrs=
    read-write`` finds the primary) and retry: nothing was written."""
    retry = True


class RedisUnavailable(CouponLockError):
    """Class 08 reported by the server: Redis is away.  Nothing changed; back
    off and retry later."""
    retry = True


class ConnectionLost(CouponLockError):
    """The connection to PostgreSQL broke during the call (class 08 on the
    client side, 57P01-57P03 when the backend was terminated or the server is
    shutting down).  Whether the last statement or COMMIT took effect is
    unknown: only retry-safe units may be rerun."""


class OutcomeUnknown(CouponLockError):
    """The runner gave up on a unit that is not retry-safe after its
    connection was lost: it may or may not have committed.  ``__cause__`` is
    the :class:`ConnectionLost`; reconcile by reading the coupon."""


_BY_SQLSTATE = {
    "CL001": UnknownCoupon, "CL002": UnknownBatch, "CL003": OwnerMismatch,
    "CL004": OrderMismatch, "CL005": LimitReached, "CL006": BatchExpired,
    "40P01": Deadlock, "55000": WrongState, "55P03": LockTimeout, "25006": ReadOnly,
    "57P01": ConnectionLost, "57P02": ConnectionLost, "57P03": ConnectionLost,
}


def translate(exc: psycopg.Error, conn: Optional[psycopg.Connection] = None) -> CouponLockError:
    """The :class:`CouponLockError` for a psycopg error.  Pass the connection
    when you have it: a closed connection means the connection was lost,
    whatever the error says."""
    diag = getattr(exc, "diag", None)
    sqlstate = getattr(exc, "sqlstate", None)
    message = (diag.message_primary if diag else None) or str(exc).strip()
    detail = diag.message_detail if diag else None
    hint = diag.message_hint if diag else None
    if conn is not None and conn.closed or sqlstate is None and isinstance(exc, psycopg.OperationalError):
        cls = ConnectionLost
    elif sqlstate == "40001":
        cls = VersionConflict if detail and "current version is" in detail else SerializationFailure
    elif sqlstate in _BY_SQLSTATE:
        cls = _BY_SQLSTATE[sqlstate]
    elif sqlstate and sqlstate.startswith("08"):
        cls = RedisUnavailable
    elif sqlstate and sqlstate.startswith("22"):
        cls = InvalidArgument
    else:
        cls = CouponLockError
    return cls(message, sqlstate, detail, hint)


@contextmanager
def _translated(conn: psycopg.Connection) -> Iterator[None]:
    try:
        yield
    except psycopg.Error as exc:
        raise translate(exc, conn) from exc


# ---------------------------------------------------------------- calls

@dataclasses.dataclass(frozen=True)
class Coupon:
    """A row of ``coupon_lock.coupon`` as a caller decides on it."""
    coupon_id: int
    batch_id: int
    state: str
    owner_id: Optional[str]
    order_id: Optional[str]
    version: int


class Coupons:
    """coupon_lock's functions on one psycopg connection.  Each method is one
    statement; it runs inside whatever transaction the connection is in (the
    :class:`Runner` opens one per unit).  Errors are :class:`CouponLockError`
    subclasses."""

    def __init__(self, conn: psycopg.Connection):
        self.conn = conn

    def _one(self, sql: str, params: tuple) -> Optional[int]:
        with _translated(self.conn):
            row = self.conn.execute(sql, params).fetchone()
        return None if row is None else row[0]

    def claim(self, batch_id: int, owner_id: str, request_id: Optional[str] = None) -> Optional[int]:
        """A coupon of the batch for the owner, or None when sold out.  With a
        ``request_id`` (one per user action, e.g. a UUID) a repeated call
        returns the first call's answer: safe to retry after a lost reply."""
        return self._one("SELECT coupon_lock.coupon_claim(%s, %s, %s)", (batch_id, owner_id, request_id))

    def issue(self, coupon_id: int, owner_id: str, expected_version: Optional[int] = None) -> int:
        """available -> issued; the new version (a repeat by the same owner
        returns the current one)."""
        return self._one("SELECT coupon_lock.coupon_issue(%s, %s, %s)", (coupon_id, owner_id, expected_version))

    def freeze(self, coupon_id: int, owner_id: str, order_id: str,
               expected_version: Optional[int] = None, ttl: Optional[str] = None) -> int:
        """issued -> frozen for the order (idempotent for the same order);
        ``ttl`` is an interval string such as ``'10 minutes'``."""
        return self._one("SELECT coupon_lock.coupon_freeze(%s, %s, %s, %s, %s::interval)",
                         (coupon_id, owner_id, order_id, expected_version, ttl))

    def unfreeze(self, coupon_id: int, order_id: str, expected_version: Optional[int] = None) -> int:
        """frozen -> issued (idempotent for the same order)."""
        return self._one("SELECT coupon_lock.coupon_unfreeze(%s, %s, %s)", (coupon_id, order_id, expected_version))

    def redeem(self, coupon_id: int, order_id: str, expected_version: Optional[int] = None) -> int:
        """frozen -> redeemed (idempotent for the same order)."""
        return self._one("SELECT coupon_lock.coupon_redeem(%s, %s, %s)", (coupon_id, order_id, expected_version))

    def revoke(self, coupon_id: int, expected_version: Optional[int] = None) -> int:
        """available, issued or frozen -> revoked."""
        return self._one("SELECT coupon_lock.coupon_revoke(%s, %s)", (coupon_id, expected_version))

    def get(self, coupon_id: int) -> Optional[Coupon]:
        """The coupon as it is now (None when unknown)."""
        with _translated(self.conn):
            row = self.conn.execute(
                "SELECT coupon_id, batch_id, state::text, owner_id, order_id, version"
                "  FROM coupon_lock.coupon WHERE coupon_id = %s", (coupon_id,)).fetchone()
        return None if row is None else Coupon(*row)


# ---------------------------------------------------------------- running units

ConnectionSource = Callable[[], ContextManager[psycopg.Connection]]


class ReconnectingConnection:
    """A connection source for one thread: keeps one connection and opens a
    new one when it was lost.  ``source()`` is a context manager yielding the
    live connection.  A ``psycopg_pool.ConnectionPool``'s ``connection``
    method is a drop-in replacement."""

    def __init__(self, conninfo: str, **kwargs):
        self.conninfo = conninfo
        # pooler-safe: no server-side prepared statements
        self.kwargs = {"prepare_threshold": None, **kwargs}
        self._conn: Optional[psycopg.Connection] = None
        self._lock = threading.Lock()
        #: how many times a lost connection was replaced
        self.reconnects = 0

    @contextmanager
    def __call__(self) -> Iterator[psycopg.Connection]:
        with self._lock:
            if self._conn is None or self._conn.closed:
                if self._conn is not None:
                    self.reconnects += 1
                self._conn = psycopg.connect(self.conninfo, **self.kwargs)
            yield self._conn

    def close(self) -> None:
        """Closes the connection, if any."""
        if self._conn is not None:
            self._conn.close()
            self._conn = None


class Runner:
    """Runs units of work with the retries coupon_lock's errors call for.

    A unit is a function of a connection; it runs in one transaction (BEGIN
    .. COMMIT) per attempt and must read what it decides on inside itself,
    so that a rerun decides again on fresh data:

    * 40001 (a stale ``expected_version``, or a serialization failure) and
      40P01: the unit runs again at once -- it re-reads; the stale version is
      never resent;
    * 55P03, Redis's class 08 and 25006: back off, then run again (nothing
      was written);
    * a lost connection: run again only when ``retry_safe`` (the unit is
      idempotent: a claim with a request_id, freeze / unfreeze / redeem for
      the same order); otherwise :class:`OutcomeUnknown`;
    * everything else (CL001-CL006, 55000, 22xxx) is an answer: raised.

    ``lock_timeout`` (e.g. ``'2s'``) is set per transaction with
    ``set_config(..., true)``, never for the session.
    """

    def __init__(self, source: ConnectionSource, *, attempts: int = 8, backoff: float = 0.05,
                 max_backoff: float = 2.0, lock_timeout: Optional[str] = None,
                 sleep: Callable[[float], None] = time.sleep):
        self.source = source
        self.attempts = attempts
        self.backoff = backoff
        self.max_backoff = max_backoff
        self.lock_timeout = lock_timeout
        self.sleep = sleep
        #: counts of what happened, by class name (for logs and tests)
        self.stats: dict = {}

    def _note(self, what: str) -> None:
        self.stats[what] = self.stats.get(what, 0) + 1

    def _pause(self, attempt: int) -> None:
        delay = min(self.max_backoff, self.backoff * 2 ** attempt)
        self.sleep(random.uniform(delay / 2, delay))   # jitter: racers drift apart

    def run(self, unit: Callable[[psycopg.Connection], T], *, retry_safe: bool = False) -> T:
        """The unit's result once a transaction running it has committed."""
        for attempt in range(self.attempts):
            last = attempt == self.attempts - 1
            conn = None
            sent = False    # until BEGIN went through, a lost connection did nothing
            try:
                with self.source() as conn:
                    with _translated(conn), conn.transaction():
                        sent = True
                        if self.lock_timeout is not None:
                            conn.execute("SELECT set_config('lock_timeout', %s, true)", (self.lock_timeout,))
                        return unit(conn)
            except psycopg.Error as exc:      # raised by the source (connect) or by COMMIT
                err = translate(exc, conn)
            except CouponLockError as exc:
                err = exc
            self._note(type(err).__name__)
            if isinstance(err, ConnectionLost):
                if sent and not retry_safe:
                    raise OutcomeUnknown(err.message, err.sqlstate, err.detail, err.hint) from err
                if last:
                    raise err
                self._pause(attempt)
            elif isinstance(err, (VersionConflict, SerializationFailure, Deadlock)) and not last:
                continue
            elif isinstance(err, (LockTimeout, RedisUnavailable, ReadOnly)) and not last:
                self._pause(attempt)
            else:
                raise err
        raise AssertionError("unreachable")
