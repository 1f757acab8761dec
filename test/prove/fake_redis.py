#!/usr/bin/env python3
"""A misbehaving Redis on loopback, for the redis_faults layer.

    fake_redis.py PORT MODE LOGFILE

Reads RESP commands (arrays of bulk strings) on every connection and
answers as MODE says; every command received is logged as a line
"<connection number> <COMMAND>" so the layer can check what was sent on
which connection (connections count from 1; "0 LISTENING" comes first).

  huge-array    every reply is the header *2147483647 and then nothing
  huge-bulk     every reply is the header $2147483647 and 256 kB of its body
  extra         the first SET gets two +OK replies, later SETs get nil
  slow-release  SET gets +OK at once; every EVAL/EVALSHA reply comes 400 ms
                after the one before (:1)
  stall-set     the second SET's reply comes after 3 s (+OK); the rest at once
"""
import socket
import sys
import threading
import time

port, mode, logfile = int(sys.argv[1]), sys.argv[2], sys.argv[3]
log_lock = threading.Lock()
state = {"conns": 0, "sets": 0}


def log(conn_no, cmd):
    with log_lock, open(logfile, "a") as f:
        f.write("%d %s\n" % (conn_no, cmd))


def read_command(f):
    line = f.readline()
    if not line:
        return None
    if not line.startswith(b"*"):
        return [line.strip().decode(errors="replace")]
    args = []
    for _ in range(int(line[1:])):
        n = int(f.readline()[1:])
        args.append(f.read(n + 2)[:-2])
    return [a.decode(errors="replace") for a in args]


def reply(cmd):
    name = cmd[0].upper()
    if mode == "huge-array":
        return b"*2147483647\r\n"
    if mode == "huge-bulk":
        return b"$2147483647\r\n" + b"x" * (256 * 1024)
    if name == "SET":
        state["sets"] += 1
        if mode == "extra":
            return b"+OK\r\n+OK\r\n" if state["sets"] == 1 else b"$-1\r\n"
        if mode == "stall-set" and state["sets"] == 2:
            time.sleep(3)
        return b"+OK\r\n"
    if name in ("EVAL", "EVALSHA"):
        if mode == "slow-release":
            time.sleep(0.4)
        return b":1\r\n"
    return b"+OK\r\n"


def serve(sock, conn_no):
    f = sock.makefile("rb")
    try:
        while True:
            cmd = read_command(f)
            if cmd is None:
                return
            log(conn_no, cmd[0].upper())
            sock.sendall(reply(cmd))
    except OSError:
        pass
    finally:
        sock.close()


def main():
    srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("127.0.0.1", port))
    srv.listen(16)
    log(0, "LISTENING")
    while True:
        sock, _ = srv.accept()
        state["conns"] += 1
        threading.Thread(target=serve, args=(sock, state["conns"]), daemon=True).start()


main()
