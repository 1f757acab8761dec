'use strict'
/**
 * Calling coupon_lock from Node with node-postgres (`pg`).
 *
 * - Typed errors: {@link translate} turns a pg error into the
 *   {@link CouponLockError} subclass of its SQLSTATE (the README's error
 *   tables), with the coupon's current version and state read from the DETAIL.
 * - {@link Coupons}: the SQL functions as methods on one client.
 * - {@link Runner}: runs a unit of work in one transaction and knows which
 *   failures to retry and how.
 * - {@link createPool}: a pg.Pool with bigint ids as JavaScript BigInt and an
 *   error listener (an idle client whose connection dies must not crash the
 *   process).
 *
 * Ids: coupon and batch ids are PostgreSQL bigint.  They come back as BigInt
 * (`7n`) and may be passed as BigInt or Number; versions are BigInt too.
 * JSON.stringify cannot encode BigInt: convert with String(id) for JSON.
 *
 * Pooler-safe by default: no session advisory locks, settings only with
 * set_config(..., true) (SET LOCAL), unnamed statements only (no server-side
 * prepared statements), so the same code runs through a transaction-mode
 * PgBouncer or the coupon_lock_router unchanged: only the connection string
 * differs.
 *
 * @module coupon-lock-client
 */
const pg = require('pg')

const INT8_OID = 20

/** A failed call; `sqlstate`, `detail`, `hint` come from the server. */
class CouponLockError extends Error {
  /**
   * @param {string} message
   * @param {{sqlstate?: string, detail?: string, hint?: string, cause?: Error}} [info]
   */
  constructor (message, info = {}) {
    super(message, info.cause ? { cause: info.cause } : undefined)
    this.name = this.constructor.name
    this.sqlstate = info.sqlstate || null
    this.detail = info.detail || null
    this.hint = info.hint || null
    /** @type {bigint|null} the coupon's version named by the DETAIL (40001, 55000, CL003, CL004) */
    this.currentVersion = null
    /** @type {string|null} the coupon's state named by the DETAIL */
    this.currentState = null
    const v = /current version is (\d+)/.exec(this.detail || '')
    if (v) this.currentVersion = BigInt(v[1])
    const s = /state is "(\w+)"/.exec(this.detail || '')
    if (s) this.currentState = s[1]
  }

  /** True when nothing changed and the same unit may run again. */
  get retry () { return false }
}

/** CL001: no coupon with that id. */
class UnknownCoupon extends CouponLockError {}
/** CL002: no batch with that id. */
class UnknownBatch extends CouponLockError {}
/** CL003: the coupon belongs to another owner. */
class OwnerMismatch extends CouponLockError {}
/** CL004: the coupon is frozen for another order. */
class OrderMismatch extends CouponLockError {}
/** CL005: the owner holds per_user_limit coupons of the batch. */
class LimitReached extends CouponLockError {}
/** CL006: the batch's valid_until has passed. */
class BatchExpired extends CouponLockError {}
/**
 * 40001 from a coupon call: expected_version was stale; the coupon is at
 * `currentVersion` in `currentState`.  Re-read and decide again; never resend
 * the old version.
 */
class VersionConflict extends CouponLockError { get retry () { return true } }
/** 40001 without a coupon's version (REPEATABLE READ / SERIALIZABLE): rerun the transaction. */
class SerializationFailure extends CouponLockError { get retry () { return true } }
/** 40P01: rerun the transaction. */
class Deadlock extends CouponLockError { get retry () { return true } }
/** 55000: not allowed from the coupon's current state (or a lapsed freeze, or no Redis configured). */
class WrongState extends CouponLockError {}
/** 55P03: a lock or the Redis guard was not free in time: back off and retry. */
class LockTimeout extends CouponLockError { get retry () { return true } }
/** 22xxx: NULL, empty, too long or out of range: a bug in the caller. */
class InvalidArgument extends CouponLockError {}
/** 25006: connected to a standby; reconnect (target_session_attrs=read-write) and retry. */
class ReadOnly extends CouponLockError { get retry () { return true } }
/** Class 08 reported by the server: Redis is away; nothing changed, back off and retry. */
class RedisUnavailable extends CouponLockError { get retry () { return true } }
/**
 * The connection to PostgreSQL broke during the call (network errors, 57P01-57P03
 * when the backend was terminated or the server shuts down).  Whether the last
 * statement or COMMIT took effect is unknown: only retry-safe units may be rerun.
 */
class ConnectionLost extends CouponLockError {}
/**
 * The runner gave up on a unit that is not retry-safe after its connection was
 * lost: it may or may not have committed (`cause` is the ConnectionLost).
 */
class OutcomeUnknown extends CouponLockError {}

const BY_SQLSTATE = {
  CL001: UnknownCoupon,
  CL002: UnknownBatch,
  CL003: OwnerMismatch,
  CL004: OrderMismatch,
  CL005: LimitReached,
  CL006: BatchExpired,
  '40P01': Deadlock,
  55000: WrongState,
  '55P03': LockTimeout,
  25006: ReadOnly,
  '57P01': ConnectionLost,
  '57P02': ConnectionLost,
  '57P03': ConnectionLost
}

/** @param {any} err @returns {boolean} true for node-postgres' and the socket's connection failures */
function isConnectionError (err) {
  return Boolean(err) && ((typeof err.code === 'string' && /^E[A-Z]+$/.test(err.code)) ||
    /Connection terminated|not queryable|connection error|Connection ended|timeout exceeded when trying to connect/i
      .test(String(err.message)))
}

/**
 * The CouponLockError for an error of node-postgres, or null when `err` is
 * not a database or connection error (then rethrow it as it is).
 * @param {any} err
 * @returns {CouponLockError|null}
 */
function translate (err) {
  if (err instanceof CouponLockError) return err
  const info = { sqlstate: null, detail: err && err.detail, hint: err && err.hint, cause: err }
  const code = err && typeof err.code === 'string' && /^[0-9A-Z]{5}$/.test(err.code) ? err.code : null
  let Cls
  if (!code) {
    if (!isConnectionError(err)) return null
    Cls = ConnectionLost
  } else {
    info.sqlstate = code
    if (code === '40001') Cls = /current version is/.test(err.detail || '') ? VersionConflict : SerializationFailure
    else if (BY_SQLSTATE[code]) Cls = BY_SQLSTATE[code]
    else if (code.startsWith('08')) Cls = RedisUnavailable
    else if (code.startsWith('22')) Cls = InvalidArgument
    else Cls = CouponLockError
  }
  return new Cls(`${code || 'connection'}: ${err.message}`, info)
}

/** pg's type parsers, with int8 (bigint) as BigInt; pass as the `types` option of a Pool or Client. */
function bigintTypes () {
  return {
    getTypeParser (oid, format) {
      if (oid === INT8_OID && format !== 'binary') return (v) => (v === null ? null : BigInt(v))
      return pg.types.getTypeParser(oid, format)
    }
  }
}

/**
 * A pg.Pool for coupon_lock: bigint as BigInt, an application_name, and
 * error listeners on the pool and on every client it opens (without them a
 * connection dropped at the wrong moment crashes the process).
 * @param {import('pg').PoolConfig & {onError?: (err: Error) => void}} config
 * @returns {import('pg').Pool}
 */
function createPool (config = {}) {
  const { onError, ...rest } = config
  const pool = new pg.Pool({ application_name: 'coupon_lock client', types: bigintTypes(), ...rest })
  const report = onError || ((err) => console.error(`coupon_lock pool: connection lost: ${err.message}`))
  // idle clients: the pool removes the client and emits 'error'
  pool.on('error', report)
  // checked-out clients: pg emits 'error' on a client whose connection dies
  // while no query runs on it, and an 'error' event without a listener ends
  // the process; the query in flight (if any) is rejected as well, and the
  // Runner destroys the client instead of pooling it again
  pool.on('connect', (client) => client.on('error', () => {}))
  return pool
}

/**
 * The coupon_lock functions on one client.  Each method is one unnamed
 * statement and runs in whatever transaction the client is in (the Runner
 * opens one per unit).  Errors are CouponLockError subclasses.
 */
class Coupons {
  /** @param {import('pg').ClientBase} client */
  constructor (client) { this.client = client }

  async _one (sql, params) {
    let res
    try {
      res = await this.client.query(sql, params)
    } catch (err) {
      throw translate(err) || err
    }
    return res.rows.length ? res.rows[0].v : null
  }

  /**
   * A coupon of the batch for the owner, or null when sold out.  With a
   * requestId (one per user action, e.g. crypto.randomUUID()) a repeated call
   * returns the first call's answer: safe to retry after a lost reply.
   * @param {bigint|number} batchId @param {string} ownerId @param {string|null} [requestId]
   * @returns {Promise<bigint|null>}
   */
  claim (batchId, ownerId, requestId = null) {
    return this._one('SELECT coupon_lock.coupon_claim($1, $2, $3) AS v', [batchId, ownerId, requestId])
  }

  /** available -> issued; the new version. @returns {Promise<bigint>} */
  issue (couponId, ownerId, expectedVersion = null) {
    return this._one('SELECT coupon_lock.coupon_issue($1, $2, $3) AS v', [couponId, ownerId, expectedVersion])
  }

  /**
   * issued -> frozen for the order (idempotent for the same order).
   * @param {string|null} [ttl] an interval such as '10 minutes'; null: the batch's freeze_ttl
   * @returns {Promise<bigint>}
   */
  freeze (couponId, ownerId, orderId, expectedVersion = null, ttl = null) {
    return this._one('SELECT coupon_lock.coupon_freeze($1, $2, $3, $4, $5::interval) AS v',
      [couponId, ownerId, orderId, expectedVersion, ttl])
  }

  /** frozen -> issued (idempotent for the same order). @returns {Promise<bigint>} */
  unfreeze (couponId, orderId, expectedVersion = null) {
    return this._one('SELECT coupon_lock.coupon_unfreeze($1, $2, $3) AS v', [couponId, orderId, expectedVersion])
  }

  /** frozen -> redeemed (idempotent for the same order). @returns {Promise<bigint>} */
  redeem (couponId, orderId, expectedVersion = null) {
    return this._one('SELECT coupon_lock.coupon_redeem($1, $2, $3) AS v', [couponId, orderId, expectedVersion])
  }

  /** available, issued or frozen -> revoked. @returns {Promise<bigint>} */
  revoke (couponId, expectedVersion = null) {
    return this._one('SELECT coupon_lock.coupon_revoke($1, $2) AS v', [couponId, expectedVersion])
  }

  /**
   * The coupon as it is now, or null when unknown.
   * @returns {Promise<{couponId: bigint, batchId: bigint, state: string, ownerId: string|null, orderId: string|null, version: bigint}|null>}
   */
  async get (couponId) {
    let res
    try {
      res = await this.client.query(
        'SELECT coupon_id, batch_id, state::text AS state, owner_id, order_id, version' +
        '  FROM coupon_lock.coupon WHERE coupon_id = $1', [couponId])
    } catch (err) {
      throw translate(err) || err
    }
    const r = res.rows[0]
    return r
      ? { couponId: r.coupon_id, batchId: r.batch_id, state: r.state, ownerId: r.owner_id, orderId: r.order_id, version: r.version }
      : null
  }
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms))

/**
 * Runs units of work with the retries coupon_lock's errors call for.  A unit
 * is an async function of a client; it runs in one transaction per attempt
 * and must read what it decides on inside itself, so that a rerun decides
 * again on fresh data:
 * - 40001 (a stale expected_version, or a serialization failure) and 40P01:
 *   run again at once (the unit re-reads; the stale version is never resent);
 * - 55P03, Redis's class 08, 25006: back off, then run again;
 * - a lost connection: run again only with `retrySafe` (a claim with a
 *   requestId; freeze, unfreeze, redeem for the same order), else OutcomeUnknown;
 * - everything else (CL001-CL006, 55000, 22xxx) is an answer: thrown.
 */
class Runner {
  /**
   * @param {import('pg').Pool} pool
   * @param {{attempts?: number, backoffMs?: number, maxBackoffMs?: number, lockTimeout?: string|null}} [options]
   *   lockTimeout (e.g. '2s') is set per transaction, never for the session
   */
  constructor (pool, options = {}) {
    this.pool = pool
    this.attempts = options.attempts || 8
    this.backoffMs = options.backoffMs || 50
    this.maxBackoffMs = options.maxBackoffMs || 2000
    this.lockTimeout = options.lockTimeout || null
    /** counts of what happened, by error class name */
    this.stats = {}
  }

  _pause (attempt) {
    const delay = Math.min(this.maxBackoffMs, this.backoffMs * 2 ** attempt)
    return sleep(delay / 2 + Math.random() * delay / 2)
  }

  /**
   * One attempt: BEGIN, the unit, COMMIT.
   * @returns {Promise<{ok: true, value: any} | {ok: false, err: Error, sent: boolean}>}
   */
  async _attempt (unit) {
    let client
    try {
      client = await this.pool.connect()
    } catch (err) {
      return { ok: false, err: translate(err) || err, sent: false }
    }
    let lost = null   // set when the connection broke: the client is then destroyed, not pooled
    const onError = (err) => { lost = err }   // a connection dying between queries
    client.on('error', onError)
    let sent = false
    try {
      await client.query('BEGIN')
      sent = true
      if (this.lockTimeout !== null) {
        await client.query("SELECT set_config('lock_timeout', $1, true)", [this.lockTimeout])
      }
      const value = await unit(client)
      await client.query('COMMIT')
      return { ok: true, value }
    } catch (err) {
      let e = translate(err) || err
      if (e instanceof ConnectionLost) {
        lost = lost || err
      } else if (!lost) {
        try { await client.query('ROLLBACK') } catch (rollbackErr) { lost = rollbackErr }
      }
      if (lost && !(e instanceof ConnectionLost)) e = translate(lost) || e
      return { ok: false, err: e, sent }
    } finally {
      client.removeListener('error', onError)
      client.release(lost || undefined)
    }
  }

  /**
   * The unit's result once a transaction running it has committed.
   * @template T
   * @param {(client: import('pg').PoolClient) => Promise<T>} unit
   * @param {{retrySafe?: boolean}} [options]
   * @returns {Promise<T>}
   */
  async run (unit, options = {}) {
    for (let attempt = 0; ; attempt++) {
      const last = attempt === this.attempts - 1
      const r = await this._attempt(unit)
      if (r.ok) return r.value
      const err = r.err
      if (!(err instanceof CouponLockError)) throw err   // the unit's own bug
      this.stats[err.name] = (this.stats[err.name] || 0) + 1
      if (err instanceof ConnectionLost) {
        if (r.sent && !options.retrySafe) {
          throw new OutcomeUnknown(err.message, { sqlstate: err.sqlstate, detail: err.detail, cause: err })
        }
        if (last) throw err
        await this._pause(attempt)
      } else if ((err instanceof VersionConflict || err instanceof SerializationFailure || err instanceof Deadlock) && !last) {
        continue
      } else if ((err instanceof LockTimeout || err instanceof RedisUnavailable || err instanceof ReadOnly) && !last) {
        await this._pause(attempt)
      } else {
        throw err
      }
    }
  }
}

module.exports = {
  CouponLockError,
  UnknownCoupon,
  UnknownBatch,
  OwnerMismatch,
  OrderMismatch,
  LimitReached,
  BatchExpired,
  VersionConflict,
  SerializationFailure,
  Deadlock,
  WrongState,
  LockTimeout,
  InvalidArgument,
  ReadOnly,
  RedisUnavailable,
  ConnectionLost,
  OutcomeUnknown,
  translate,
  bigintTypes,
  createPool,
  Coupons,
  Runner
}
