#!/usr/bin/env python3
"""Clients of the crash layer that remember what they were told.

WORKERS threads each keep one psql process (plain stdlib: no driver) and
run prove.step() calls (test/prove/workload.sql) until SECONDS have passed.
Every acknowledged transition goes to ACKLOG as "op coupon_id version"
("claim coupon_id \\N" for claims) once psql has printed the result, that is,
after the commit came back.  When the server goes away psql exits; the
worker starts a new one until the server is back, and counts the calls that
were in flight (not acknowledged, so they may or may not have happened).

usage: crash_client.py DB WORKERS SECONDS ACKLOG   (PGHOST/PGPORT/PGUSER from env)
prints: "acked N, refused as documented F, errors E (40001 left to the
client, connection lost), lost-in-flight L, reconnects R"
"""
import os
import random
import subprocess
import sys
import threading
import time

OPS = ["claim"] * 20 + ["issue"] * 6 + ["freeze"] * 20 + ["unfreeze"] * 8 + \
      ["redeem"] * 12 + ["revoke"] * 2 + ["release"] * 4 + ["expire"] * 2 + ["create"]
MARK = "@@done@@"


class Worker(threading.Thread):
    def __init__(self, n, db, deadline, acklog, lock):
        super().__init__(daemon=True)
        self.rng = random.Random(n * 7919 + int(time.time()))
        self.db, self.deadline, self.acklog, self.lock = db, deadline, acklog, lock
        self.proc = None
        self.acked = self.refused = self.errors = self.lost = self.reconnects = 0

    def start_psql(self):
        self.proc = subprocess.Popen(
            ["stdbuf", "-oL", "-eL", os.environ["CL_PGBIN"] + "/psql", "-X", "-q", "-At",
             "-v", "VERBOSITY=sqlstate", "-d", self.db],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            text=True, bufsize=1)

    def call(self, sql):
        """The lines psql printed for sql, or None when psql died."""
        try:
            self.proc.stdin.write(sql + "\n\\echo " + MARK + "\n")
            self.proc.stdin.flush()
        except (BrokenPipeError, OSError):
            return None
        lines = []
        for line in self.proc.stdout:
            line = line.rstrip("\n")
            if line == MARK:
                return lines
            lines.append(line)
        return None

    def run(self):
        self.start_psql()
        while time.time() < self.deadline:
            op = self.rng.choice(OPS)
            sql = "SELECT prove.step('%s', %d, %d, %d);" % (
                op, self.rng.randint(1, 10**9), self.rng.randint(0, 2), self.rng.randint(0, 10**6))
            lines = self.call(sql)
            if lines is None:
                self.lost += 1
                self.proc.kill()
                self.proc.wait()
                time.sleep(0.3)
                self.reconnects += 1
                self.start_psql()
                continue
            result = lines[0] if len(lines) == 1 else ""
            parts = result.split("|")
            if parts[0] in ("freeze", "unfreeze", "redeem", "revoke", "issue") and len(parts) == 3:
                self.ack("%s %s %s" % tuple(parts))
            elif parts[0] == "claim" and len(parts) == 2 and parts[1]:
                self.ack("claim %s \\N" % parts[1])
            elif parts[0] in ("release", "expire", "create", "claim") and len(parts) == 2:
                pass
            elif parts[0] == "E":
                self.refused += 1
            else:
                self.errors += 1
        self.proc.stdin.close()
        self.proc.wait()

    def ack(self, line):
        with self.lock:
            self.acklog.write(line + "\n")
            self.acklog.flush()
        self.acked += 1


def main():
    db, workers, seconds, acklog = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), sys.argv[4]
    lock = threading.Lock()
    deadline = time.time() + seconds
    with open(acklog, "a") as f:
        ws = [Worker(i, db, deadline, f, lock) for i in range(workers)]
        for w in ws:
            w.start()
        for w in ws:
            w.join()
    print("acked %d, refused as documented %d, errors %d, lost-in-flight %d, reconnects %d" % (
        sum(w.acked for w in ws), sum(w.refused for w in ws), sum(w.errors for w in ws),
        sum(w.lost for w in ws), sum(w.reconnects for w in ws)))


if __name__ == "__main__":
    main()
