'use strict'
/*
 * The clients layer's Node customers: examples/node's helper module run by
 * many concurrent customers (async tasks over one pg.Pool), each doing
 * checkouts (claim with a request id -> freeze -> redeem or unfreeze) through
 * its Runner.  Connections may be terminated at any moment by the layer.
 * Every acknowledged answer goes to ACKLOG (same format as clients_load.py).
 *
 * usage: node clients_load.js CONNSTRING BATCH CUSTOMERS POOLSIZE CHECKOUTS ACKLOG
 * (CL_CLIENTS_PAY_MS: mean time a payment takes between freeze and redeem, default 40)
 * (run from a copy of examples/node with its node_modules: the module is ./coupon-lock-client)
 * prints: "node: checkouts N redeemed R unfrozen U sold_out S limit L unexpected E lost C conflict_rerun ok|FAILED"
 */
const fs = require('fs')
const { randomUUID } = require('crypto')
const { Coupons, CouponLockError, LimitReached, Runner, VersionConflict, createPool } = require('./coupon-lock-client')

const [connectionString, batchArg, customersArg, poolArg, checkoutsArg, acklog] = process.argv.slice(2)
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
  const tasks = []
  for (let i = 0; i < Number(customersArg); i++) tasks.push(customer(runner, `node-${i}`, Number(checkoutsArg)))
  await Promise.all(tasks)
  counts.lost = (runner.stats.ConnectionLost || 0) + idleLost
  await pool.end()
  await new Promise((resolve) => acks.end(resolve))
  console.log('node: ' + Object.entries(counts).map(([k, v]) => `${k} ${v}`).join(' ') +
    ` conflict_rerun ${rerunOk ? 'ok' : 'FAILED'}`)
}

main().catch((err) => { console.error(err); process.exitCode = 1 })
