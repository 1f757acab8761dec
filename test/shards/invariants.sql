-- Invariants of one batch on every shard and in sum, run in the router
-- database by test/prove/shards.sh:  psql -v batch=ID -v issued=N|-
-- Each query prints "name|t" or "name|f|detail".
\set QUIET on
\pset footer off
SET client_min_messages = warning;

-- test-only PL/Proxy reads of one shard's own tables
CREATE OR REPLACE FUNCTION public.t_transfers(part integer, b bigint,
        OUT lead integer, OUT transfer_id text, OUT direction text, OUT quantity integer, OUT delivered boolean)
RETURNS SETOF record LANGUAGE plproxy AS $$
    CLUSTER 'coupon_lock_shards';
    RUN ON part;
    SELECT (SELECT s.lead_partition FROM coupon_lock.shard s) AS lead, t.transfer_id, t.direction, t.quantity, t.delivered
      FROM coupon_lock.shard_transfer t WHERE t.batch_id = b;
$$;
DROP FUNCTION IF EXISTS public.t_stock(integer, bigint);
CREATE FUNCTION public.t_stock(part integer, b bigint,
        OUT lead integer, OUT coupons integer, OUT misrouted integer, OUT local_quantity integer, OUT home boolean,
        OUT total integer)
RETURNS SETOF record LANGUAGE plproxy AS $$
    CLUSTER 'coupon_lock_shards';
    RUN ON part;
    SELECT (SELECT s.lead_partition FROM coupon_lock.shard s) AS lead,
           (SELECT count(*)::integer FROM coupon_lock.coupon c WHERE c.batch_id = b) AS coupons,
           (SELECT count(*)::integer FROM coupon_lock.coupon c WHERE c.batch_id = b
               AND c.coupon_id >> 48 <> (SELECT s.lead_partition FROM coupon_lock.shard s)) AS misrouted,
           (SELECT bt.quantity FROM coupon_lock.batch bt WHERE bt.batch_id = b) AS local_quantity,
           (SELECT sb.home FROM coupon_lock.shard_batch sb WHERE sb.batch_id = b) AS home,
           (SELECT sb.total_quantity FROM coupon_lock.shard_batch sb WHERE sb.batch_id = b) AS total;
$$;

CREATE TEMP TABLE t_tr AS SELECT t.* FROM coupon_lock.router_leads() l, LATERAL public.t_transfers(l, :batch) t;
CREATE TEMP TABLE t_st AS SELECT s.* FROM coupon_lock.router_leads() l, LATERAL public.t_stock(l, :batch) s;
CREATE TEMP TABLE t_c AS SELECT * FROM coupon_lock.coupon WHERE batch_id = :batch;
SELECT quantity AS q, per_user_limit AS lim FROM coupon_lock.batch WHERE batch_id = :batch \gset

SELECT format('batch %s: every coupon id carries its database''s lead partition', :batch),
       sum(misrouted) = 0 FROM t_st;
-- the home shard started with the whole quantity: its share, and the others'
-- shares given out by create_batch
SELECT format('batch %s: on every shard, coupons = (home: the quantity) + received - given', :batch),
       bool_and(s.coupons = CASE WHEN s.home THEN s.total ELSE 0 END
                            + coalesce((SELECT sum(t.quantity) FROM t_tr t WHERE t.lead = s.lead AND t.direction = 'receive'), 0)
                            - coalesce((SELECT sum(t.quantity) FROM t_tr t WHERE t.lead = s.lead AND t.direction = 'give'), 0)),
       string_agg(format('lead %s: %s coupons', s.lead, s.coupons), ', ' ORDER BY s.lead)
  FROM t_st s WHERE s.local_quantity IS NOT NULL OR s.coupons > 0;
SELECT format('batch %s: every receive matches a give of the same transfer id and quantity', :batch),
       NOT EXISTS (SELECT FROM t_tr r WHERE r.direction = 'receive' AND NOT EXISTS
                     (SELECT FROM t_tr g WHERE g.direction = 'give' AND g.transfer_id = r.transfer_id
                                           AND g.quantity = r.quantity AND g.lead <> r.lead))
       AND NOT EXISTS (SELECT transfer_id FROM t_tr GROUP BY transfer_id, direction HAVING count(*) > 1);
SELECT format('batch %s: every delivered give was received', :batch),
       NOT EXISTS (SELECT FROM t_tr g WHERE g.direction = 'give' AND g.delivered AND g.quantity > 0
                      AND NOT EXISTS (SELECT FROM t_tr r WHERE r.direction = 'receive' AND r.transfer_id = g.transfer_id));
SELECT format('batch %s: coupons on all shards + stock in flight = quantity %s', :batch, :q),
       (SELECT count(*) FROM t_c)
       + coalesce((SELECT sum(g.quantity) FROM t_tr g WHERE g.direction = 'give'
                     AND NOT EXISTS (SELECT FROM t_tr r WHERE r.direction = 'receive' AND r.transfer_id = g.transfer_id)), 0)
       = :q,
       format('%s coupons', (SELECT count(*) FROM t_c));
SELECT format('batch %s: no coupon id or code twice over all shards', :batch),
       count(DISTINCT coupon_id) = count(*) AND count(DISTINCT code) = count(*) FROM t_c;
SELECT format('batch %s: issued coupons = %s', :batch, :'issued'),
       :'issued' = '-' OR count(*) FILTER (WHERE state <> 'available') = :'issued'::integer,
       format('%s issued, %s available', count(*) FILTER (WHERE state <> 'available'),
              count(*) FILTER (WHERE state = 'available'))
  FROM t_c;
SELECT format('batch %s: no owner holds more than the per-user limit %s', :batch, :lim),
       coalesce(max(n), 0) <= :lim
  FROM (SELECT owner_id, count(*) n FROM t_c WHERE owner_id IS NOT NULL AND state <> 'revoked' GROUP BY 1) s;
SELECT format('batch %s: one claim or issue ledger row per coupon that left available', :batch),
       (SELECT count(*) FROM coupon_lock.coupon_event e JOIN t_c c USING (coupon_id) WHERE e.op IN ('claim', 'issue'))
       = (SELECT count(*) FROM t_c WHERE state <> 'available');
DROP TABLE t_tr, t_st, t_c;
