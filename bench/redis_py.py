#!/usr/bin/python3
"""One client's Redis lock cycle with redis-py's Lock, the baseline of the
redis workload: acquire (SET NX PX) and release (a Lua compare-and-delete),
back to back for SECONDS.  Writes a pgbench-style per-transaction log
(client, n, latency_us, script, epoch_s, epoch_us) and prints cycles/s.

usage: redis_py.py HOST PORT SECONDS LOGFILE
"""
import random
import sys
import time

import redis


def main():
    host, port, seconds, logfile = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), sys.argv[4]
    r = redis.Redis(host=host, port=port)
    r.ping()
    n = 0
    with open(logfile, "w") as log:
        start = time.monotonic()
        end = start + seconds
        while True:
            t0 = time.monotonic()
            if t0 >= end:
                break
            lock = r.lock("bench:py:%d" % random.randint(1, 100000), timeout=30)
            if not lock.acquire(blocking=False):
                raise SystemExit("lock not acquired")
            lock.release()
            t1 = time.monotonic()
            now = time.time()
            log.write("0 %d %d 0 %d %d\n" % (n, int((t1 - t0) * 1e6), int(now), int((now % 1) * 1e6)))
            n += 1
    print("%.3f" % (n / (time.monotonic() - start)))


if __name__ == "__main__":
    main()
