-- test/prove/invariants.sql: what must hold after any load, crash included.
-- Each query prints one check as "name|t" or "name|f|detail" (common.sh:
-- pv_sql_checks).  Reads only the extension's tables.

-- The ledger replays to every coupon: walking a coupon's events in order,
-- each starts where the last ended (the first from 'available'), each adds
-- exactly 1 to the version, and the last one names the coupon's current
-- state, version and owner.  A coupon without events is untouched.
WITH ev AS (
    SELECT coupon_id, from_state, version,
           lag(to_state) OVER w AS prev_state, lag(version) OVER w AS prev_version
      FROM coupon_lock.coupon_event
    WINDOW w AS (PARTITION BY coupon_id ORDER BY event_id)
), last AS (
    SELECT DISTINCT ON (coupon_id) coupon_id, to_state, version, owner_id
      FROM coupon_lock.coupon_event ORDER BY coupon_id, event_id DESC
), broken_chain AS (
    SELECT coupon_id FROM ev
     WHERE from_state <> coalesce(prev_state, 'available')
        OR version <> coalesce(prev_version, 1) + 1
), replay_mismatch AS (
    SELECT c.coupon_id FROM coupon_lock.coupon c LEFT JOIN last USING (coupon_id)
     WHERE c.state <> coalesce(last.to_state, 'available')
        OR c.version <> coalesce(last.version, 1)
        OR c.owner_id IS DISTINCT FROM last.owner_id
)
SELECT 'ledger chains: each event starts where the previous ended, version +1',
       count(*) = 0, 'coupons ' || string_agg(coupon_id::text, ',')
  FROM (SELECT DISTINCT coupon_id FROM broken_chain ORDER BY 1 LIMIT 10) x
UNION ALL
SELECT 'ledger replays to every coupon''s state, version and owner',
       count(*) = 0, 'coupons ' || string_agg(coupon_id::text, ',')
  FROM (SELECT coupon_id FROM replay_mismatch ORDER BY 1 LIMIT 10) x;

SELECT 'every ledger event names an existing coupon', count(*) = 0, count(*) || ' events'
  FROM coupon_lock.coupon_event e
 WHERE NOT EXISTS (SELECT FROM coupon_lock.coupon c WHERE c.coupon_id = e.coupon_id);

SELECT 'no coupon redeemed twice', count(*) = 0, 'coupons ' || string_agg(coupon_id::text, ',')
  FROM (SELECT coupon_id FROM coupon_lock.coupon_event WHERE to_state = 'redeemed'
         GROUP BY coupon_id HAVING count(*) > 1 LIMIT 10) x;

SELECT 'no batch over-issued (coupons = quantity, issues and claims <= quantity)',
       count(*) = 0, 'batches ' || string_agg(batch_id::text, ',')
  FROM (SELECT b.batch_id FROM coupon_lock.batch b
          LEFT JOIN (SELECT batch_id, count(*) AS n FROM coupon_lock.coupon GROUP BY 1) c USING (batch_id)
          LEFT JOIN (SELECT c.batch_id, count(DISTINCT e.coupon_id) AS n
                       FROM coupon_lock.coupon_event e JOIN coupon_lock.coupon c USING (coupon_id)
                      WHERE e.op IN ('issue', 'claim') GROUP BY 1) i USING (batch_id)
         WHERE coalesce(c.n, 0) <> b.quantity OR coalesce(i.n, 0) > b.quantity
         LIMIT 10) x;

SELECT 'a coupon leaves "available" at most once', count(*) = 0,
       'coupons ' || string_agg(coupon_id::text, ',')
  FROM (SELECT coupon_id FROM coupon_lock.coupon_event WHERE from_state = 'available'
         GROUP BY coupon_id HAVING count(*) > 1 LIMIT 10) x;

SELECT 'no owner over its per-user limit (every state but revoked)', count(*) = 0,
       string_agg(batch_id || '/' || owner_id || ':' || held, ',')
  FROM (SELECT c.batch_id, c.owner_id, count(*) AS held
          FROM coupon_lock.coupon c JOIN coupon_lock.batch b USING (batch_id)
         WHERE c.owner_id IS NOT NULL AND c.state <> 'revoked'
         GROUP BY c.batch_id, c.owner_id, b.per_user_limit
        HAVING count(*) > b.per_user_limit LIMIT 10) x;

SELECT 'owner_quota agrees with the coupons', count(*) = 0,
       string_agg(batch_id || '/' || owner_id || ': quota ' || coalesce(q_held, 0)
                  || ', coupons ' || coalesce(c_held, 0), ',')
  FROM (SELECT batch_id, owner_id, q.held AS q_held, c.held AS c_held
          FROM coupon_lock.owner_quota q
          FULL JOIN (SELECT batch_id, owner_id, count(*)::int AS held FROM coupon_lock.coupon
                      WHERE owner_id IS NOT NULL AND state <> 'revoked'
                      GROUP BY batch_id, owner_id) c USING (batch_id, owner_id)
         WHERE coalesce(q.held, 0) <> coalesce(c.held, 0) LIMIT 10) x;

SELECT 'counts per state match the ledger', count(*) = 0,
       string_agg(state || ': table ' || coalesce(in_table, 0) || ', ledger ' || coalesce(in_ledger, 0), ',')
  FROM (SELECT state, t.n AS in_table, l.n AS in_ledger
          FROM (SELECT state, count(*) AS n FROM coupon_lock.coupon GROUP BY state) t
          FULL JOIN (SELECT coalesce(last.to_state, 'available') AS state, count(*) AS n
                       FROM coupon_lock.coupon c
                       LEFT JOIN LATERAL (SELECT to_state FROM coupon_lock.coupon_event e
                                           WHERE e.coupon_id = c.coupon_id
                                           ORDER BY event_id DESC LIMIT 1) last ON true
                      GROUP BY 1) l USING (state)
         WHERE t.n IS DISTINCT FROM l.n) x;

-- Freeze, unfreeze, redeem and the release sweep act only for the order that
-- holds the freeze: each event out of "frozen" names the order of the freeze
-- that put the coupon there.
SELECT 'events out of "frozen" name the order that froze the coupon', count(*) = 0,
       'coupons ' || string_agg(coupon_id::text, ',')
  FROM (SELECT coupon_id FROM (
            SELECT coupon_id, from_state, order_id,
                   lag(order_id) OVER (PARTITION BY coupon_id ORDER BY event_id) AS freeze_order
              FROM coupon_lock.coupon_event) e
         WHERE from_state = 'frozen' AND order_id IS DISTINCT FROM freeze_order LIMIT 10) x;

SELECT 'the row of a frozen or redeemed coupon names the order of its last event', count(*) = 0,
       'coupons ' || string_agg(coupon_id::text, ',')
  FROM (SELECT c.coupon_id FROM coupon_lock.coupon c
          JOIN LATERAL (SELECT order_id FROM coupon_lock.coupon_event e
                         WHERE e.coupon_id = c.coupon_id ORDER BY event_id DESC LIMIT 1) last ON true
         WHERE c.state IN ('frozen', 'redeemed') AND c.order_id IS DISTINCT FROM last.order_id
         LIMIT 10) x;

SELECT 'redeemed only from "frozen"', count(*) = 0, count(*) || ' events'
  FROM coupon_lock.coupon_event WHERE to_state = 'redeemed' AND from_state <> 'frozen';

SELECT 'no transition out of a final state (redeemed, expired, revoked)', count(*) = 0,
       count(*) || ' events'
  FROM coupon_lock.coupon_event WHERE from_state IN ('redeemed', 'expired', 'revoked');
