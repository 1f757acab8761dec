'use strict'
/*
 * The clients layer's Node customers: examples/node's helper module run by
 * many concurrent customers (async tasks over one pg.Pool), each doing
 * checkouts (claim with a request id -> freeze -> redeem or unfreeze) through
 * its Runner.  Connections may be terminated at any moment by the layer.
 * Every acknowledged answer goes to ACKLOG (same format as clients_load.py).
 *
 * usage: node clients_load.js CONNSTRING BATCH CUSTOMERS POOLSIZE CHECKOUTS ACKLOG ERRBATCH ENDEDBATCH
 * (ERRBATCH, a limit of 1, and ENDEDBATCH, past its valid_until, serve the
 * error catalogue: every SQLSTATE the helper types, provoked once and checked)
 * (CL_CLIENTS_PAY_MS: mean time a payment takes between freeze and redeem, default 40)
 * (run from a copy of examples/node with its node_modules: the module is ./coupon-lock-client)
 * prints: "node: checkouts N redeemed R unfrozen U sold_out S limit L unexpected E lost C conflict_rerun ok|FAILED errors ok|GOT,..."
 */
const fs = require('fs')
const { randomUUID } = require('crypto')
const { Coupons, CouponLockError, LimitReached, Runner, VersionConflict, createPool, translate } = require('./coupon-lock-client')

// what errorCatalogue() must see, in order
const EXPECTED_ERRORS = ['UnknownCoupon', 'UnknownBatch', 'OwnerMismatch@2/issued', 'OrderMismatch@3', 'LimitReached',
  'BatchExpired', 'VersionConflict@3/frozen', 'WrongState@3', 'InvalidArgument', 'InvalidArgument', 'ReadOnly',
  'LockTimeout', 'RedisUnavailable', 'Deadlock']

const [connectionString, batchArg, customersArg, poolArg, checkoutsArg, acklog, errBatchArg, endedBatchArg] = process.argv.slice(2)
const batch = BigInt(batchArg)
const PAY_MS = Number(process.env.CL_CLIENTS_PAY_MS || 40)
const counts = { checkouts: 0, redeemed: 0, unfrozen: 0, sold_out: 0, limit: 0, unexpected: 0, lost: 0 }
const acks = fs.createWriteStream(acklog)
const ack = (line) => acks.write(line + '\n')

async function checkout (runner, owner) {
  const requestId = randomUUID()
  const orderId = `o-${randomUUID()}`
  const couponId = await runner.run((c) => new Coupons(c).claim(batch, owner, requestId), { retrySafe: true })
  ack(`claim ${owner} ${requestId} ${couponId === null ? 'none' : couponId}`)
  if (couponId === null) { counts.sold_out++; return }
  await runner.run(async (c) => { // decides on what it reads: a rerun reads again
    const cp = new Coupons(c)
    return cp.freeze(couponId, owner, orderId, (await cp.get(couponId)).version)
  }, { retrySafe: true })
  await new Promise((resolve) => setTimeout(resolve, Math.random() * 2 * PAY_MS)) // the payment
  if (Math.random() < 0.7) {
    const v = await runner.run((c) => new Coupons(c).redeem(couponId, orderId), { retrySafe: true })
    ack(`redeem ${couponId} ${orderId} ${v}`)
    counts.redeemed++
  } else {
    const v = await runner.run((c) => new Coupons(c).unfreeze(couponId, orderId), { retrySafe: true })
    ack(`unfreeze ${couponId} ${orderId} ${v}`)
    counts.unfrozen++
  }
}

async function customer (runner, owner, n) {
  for (let i = 0; i < n; i++) {
    try {
      await checkout(runner, owner)
      counts.checkouts++
    } catch (err) {
      if (err instanceof LimitReached) { counts.limit++; continue }
      counts.unexpected++
      console.error(`unexpected: ${err.name} ${err.message}`)
    }
  }
}

/* A unit deciding on a stale version at its first attempt: the runner must rerun it. */
async function conflictRerun (runner) {
  const owner = 'node-conflict'
  const order = `o-${randomUUID()}`
  const couponId = await runner.run((c) => new Coupons(c).claim(batch, owner, 'conflict'), { retrySafe: true })
  if (couponId === null) return false
  const seen = []
  let v
  try {
    v = await runner.run(async (c) => {
      const cp = new Coupons(c)
      const version = (await cp.get(couponId)).version
      seen.push(version)
      return cp.freeze(couponId, owner, order, seen.length === 1 ? version - 1n : version)
    })
  } catch (err) {
    if (err instanceof VersionConflict) return false
    throw err
  }
  await runner.run((c) => new Coupons(c).unfreeze(couponId, order), { retrySafe: true })
  return seen.length === 2 && seen[0] === 2n && seen[1] === 2n && v === 3n &&
    runner.stats.VersionConflict === 1
}

/* Provokes each SQLSTATE the helper types once; returns what it got. */
async function errorCatalogue () {
  const pool = createPool({ connectionString, max: 2, application_name: 'clients-node-errors' })
  const conn = await pool.connect()
  const other = await pool.connect()
  const cp = new Coupons(conn)
  const owner = 'node-errors'
  const errBatch = BigInt(errBatchArg)
  const got = []
  const expect = async (call) => {
    try {
      await call()
      got.push('no error')
    } catch (err) {
      if (!(err instanceof CouponLockError)) throw err
      got.push(err.name + (err.currentVersion !== null ? `@${err.currentVersion}` : '') +
        (err.currentState !== null ? `/${err.currentState}` : ''))
    }
  }
  const sql = (q) => async () => { try { await conn.query(q) } catch (err) { throw translate(err) || err } }
  const inTx = (...steps) => async () => {
    await conn.query('BEGIN')
    try {
      for (const step of steps) await step()
    } finally {
      await conn.query('ROLLBACK')
    }
  }
  try {
    const coupon = await cp.claim(errBatch, owner)
    await expect(() => cp.freeze(2n ** 62n, owner, 'o-1')) // CL001
    await expect(() => cp.claim(2n ** 62n, owner)) // CL002
    await expect(() => cp.freeze(coupon, 'node-someone-else', 'o-1')) // CL003
    await cp.freeze(coupon, owner, 'o-1')
    await expect(() => cp.redeem(coupon, 'o-2')) // CL004
    await expect(() => cp.claim(errBatch, owner)) // CL005
    await expect(() => cp.claim(BigInt(endedBatchArg), owner)) // CL006
    await expect(() => cp.unfreeze(coupon, 'o-1', 1n)) // 40001 + DETAIL
    await expect(() => cp.issue(coupon, 'node-someone-else')) // 55000
    await expect(() => cp.claim(errBatch, '')) // 22023
    await expect(() => cp.claim(errBatch, null)) // 22004
    await expect(inTx(sql('SET TRANSACTION READ ONLY'), () => cp.unfreeze(coupon, 'o-1'))) // 25006
    await other.query('BEGIN') // 55P03
    await other.query('SELECT FROM coupon_lock.coupon WHERE coupon_id = $1 FOR UPDATE', [coupon])
    await expect(inTx(sql("SET LOCAL lock_timeout = '100ms'"), () => cp.unfreeze(coupon, 'o-1')))
    await other.query('ROLLBACK')
    await expect(inTx(sql("SET LOCAL coupon_lock.redis_host = '127.0.0.1'"), // class 08
      sql('SET LOCAL coupon_lock.redis_port = 1'),
      sql("SELECT coupon_lock.redis_lock('clients-node', '1 second')")))
    await expect(async () => { // 40P01: conn locks one coupon, other another, then each the other's
      const lock = 'SELECT FROM coupon_lock.coupon WHERE coupon_id = $1 FOR UPDATE'
      const second = await cp.claim(errBatch, `${owner}-2`)
      await conn.query('BEGIN')
      await conn.query(lock, [coupon])
      await other.query('BEGIN')
      await other.query(lock, [second])
      const r = await Promise.allSettled([conn.query(lock, [second]), other.query(lock, [coupon])])
      await conn.query('ROLLBACK')
      await other.query('ROLLBACK')
      const failed = r.find((x) => x.status === 'rejected')
      if (failed) throw translate(failed.reason) || failed.reason
    })
  } finally {
    conn.release()
    other.release()
    await pool.end()
  }
  return got
}

async function main () {
  let idleLost = 0
  const pool = createPool({
    connectionString,
    max: Number(poolArg),
    application_name: 'clients-node',
    onError: () => { idleLost++ }
  })
  const runner = new Runner(pool, { lockTimeout: '10s', attempts: 12 })
  // on a connection of its own, which the layer does not terminate
  const conflictPool = createPool({ connectionString, max: 1, application_name: 'clients-node-conflict' })
  const rerunOk = await conflictRerun(new Runner(conflictPool))
  await conflictPool.end()
  const errors = await errorCatalogue()
  const tasks = []
  for (let i = 0; i < Number(customersArg); i++) tasks.push(customer(runner, `node-${i}`, Number(checkoutsArg)))
  await Promise.all(tasks)
  counts.lost = (runner.stats.ConnectionLost || 0) + idleLost
  await pool.end()
  await new Promise((resolve) => acks.end(resolve))
  console.log('node: ' + Object.entries(counts).map(([k, v]) => `${k} ${v}`).join(' ') +
    ` conflict_rerun ${rerunOk ? 'ok' : 'FAILED'}` +
    ` errors ${errors.join(',') === EXPECTED_ERRORS.join(',') ? 'ok' : errors.join(',').replace(/ /g, '_')}`)
}

main().catch((err) => { console.error(err); process.exitCode = 1 })
