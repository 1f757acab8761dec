#!/usr/bin/env node
'use strict'
/**
 * A checkout with coupon_lock: claim -> freeze -> redeem (paid) or unfreeze
 * (cancelled), each step through the retry runner.
 *
 *   node checkout.js postgresql://app@127.0.0.1/shop BATCH_ID CUSTOMER [--cancel]
 *
 * Every step is retry-safe, so a lost connection is simply retried: the claim
 * carries a request id (one per checkout), and freeze, unfreeze and redeem are
 * idempotent for the same order.
 */
const { randomUUID } = require('crypto')
const { BatchExpired, CouponLockError, Coupons, LimitReached, Runner, createPool } = require('./coupon-lock-client')

/**
 * Runs one checkout; `pay(orderId)` resolves to whether the payment went through.
 * @param {Runner} runner @param {bigint} batchId @param {string} customer
 * @param {(orderId: string) => Promise<boolean>} pay
 */
async function checkout (runner, batchId, customer, pay) {
  const requestId = randomUUID() // one per user action, kept across retries
  const orderId = `order-${randomUUID()}`
  const couponId = await runner.run((c) => new Coupons(c).claim(batchId, customer, requestId), { retrySafe: true })
  if (couponId === null) return { outcome: 'sold out' }
  let version = await runner.run((c) => new Coupons(c).freeze(couponId, customer, orderId), { retrySafe: true })
  let outcome
  if (await pay(orderId)) {
    version = await runner.run((c) => new Coupons(c).redeem(couponId, orderId), { retrySafe: true })
    outcome = 'redeemed'
  } else {
    version = await runner.run((c) => new Coupons(c).unfreeze(couponId, orderId), { retrySafe: true })
    outcome = 'unfrozen'
  }
  return { couponId, orderId, outcome, version }
}

async function main (argv) {
  const [connectionString, batch, customer] = argv
  if (!customer) {
    console.error('usage: node checkout.js CONNECTION_STRING BATCH_ID CUSTOMER [--cancel]')
    return 2
  }
  const pool = createPool({ connectionString, max: 4, application_name: 'coupon_lock checkout example' })
  const runner = new Runner(pool, { lockTimeout: '5s' })
  try {
    const r = await checkout(runner, BigInt(batch), customer, async () => !argv.includes('--cancel'))
    console.log(r)
    return 0
  } catch (err) {
    if (err instanceof LimitReached || err instanceof BatchExpired) { // business answers
      console.log(`no coupon: ${err.message}`)
      return 1
    }
    if (err instanceof CouponLockError) {
      console.error(`failed: ${err.message} ${err.detail || ''}`)
      return 2
    }
    throw err
  } finally {
    await pool.end()
  }
}

module.exports = { checkout }

if (require.main === module) {
  main(process.argv.slice(2)).then((code) => { process.exitCode = code })
}
