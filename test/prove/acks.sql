-- test/prove/acks.sql: are the acknowledged transitions in temp table ack
-- (op, coupon_id, version) all in the ledger?  Prints "n|missing|list".
-- A transition (or its idempotent retry) must be the event that made that
-- version, by the same operation (an unfreeze retry may answer with the
-- release sweep's version); a claim must be the coupon's claim event.
-- Used by the ha layer; the same rule as the crash layer's check.
SELECT count(*), count(*) FILTER (WHERE m), string_agg(a, ', ') FILTER (WHERE m)
  FROM (SELECT op || ' ' || coupon_id || ' ' || coalesce(version::text, '') AS a,
               NOT EXISTS (SELECT FROM coupon_lock.coupon_event e
                            WHERE e.coupon_id = ack.coupon_id
                              AND (ack.op = 'claim' AND e.op = 'claim' OR
                                   e.version = ack.version AND
                                   (e.op = ack.op OR ack.op = 'unfreeze' AND e.op = 'release'))) AS m
          FROM ack) x;
