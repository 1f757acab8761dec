#!/usr/bin/env python3
"""Normalises a `pg_dump --schema-only` for test/prove/upgrade.sh, so that two
dumps of the same schema compare equal however the objects came to be.

Dropped are the lines that name no schema object: the header comments
("Dumped from database version", "Dumped by pg_dump version"), the
\\restrict / \\unrestrict lines with their random key (pg_dump 15.14 on) and
blank lines.  The dump is then cut into its entries (each starts at the
"-- Name: ...; Type: ...; Schema: ...; Owner: ..." comment pg_dump writes
before every object) and the entries are sorted, so that objects pg_dump
orders by OID (which differ between an upgraded and a fresh database) do
not show as differences.  The text of each entry is kept as it is: a column
in another position, another default or another ACL is a difference.

usage: upgrade_dump.py < dump.sql > normalised.txt
"""
import re
import sys

SKIP = re.compile(r"^(-- Dumped (from|by) |\\restrict |\\unrestrict |-- PostgreSQL database dump)")
ENTRY = re.compile(r"^-- (Data for )?Name: ")


def main():
    entries, current = [], []
    for line in sys.stdin:
        line = line.rstrip("\n")
        if not line.strip() or SKIP.match(line):
            continue
        if ENTRY.match(line):
            entries.append(current)
            current = []
        current.append(line)
    entries.append(current)
    # the comment lines "--" around each "-- Name:" header carry nothing
    blocks = ["\n".join(l for l in e if l != "--") for e in entries]
    for block in sorted(b for b in blocks if b):
        print(block)
        print()


if __name__ == "__main__":
    main()
