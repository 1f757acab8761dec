-- create_batch of a 10-coupon batch (bench/run.sh, workload batches)
SELECT coupon_lock.create_batch('small', 10, 1);
