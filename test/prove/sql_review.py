#!/usr/bin/env python3
"""Review of the C code: no SQL (and no Redis command) is built by pasting
caller input, and no format string comes from a variable.

Rules, each finding printed as file:line: call -> verdict:
  1. SQL handed to SPI (SPI_execute, SPI_exec, SPI_prepare, ...) is a string
     literal, the sql field of a SpiPlan (rule 2), or a variable assigned in
     the same function only from psprintf with integer conversions (%d,
     %lld, %u, %x ...): generated numbers, never caller text.
  2. Every SpiPlan initializer's SQL is string literals only; caller values
     reach it as $n parameters.
  3. Format strings (psprintf, appendStringInfo, snprintf, errmsg, errdetail,
     errhint, elog, redisCommand, redisAppendCommand) are literals.  In
     hiredis a %s fills exactly one argument, so literal formats with %s
     are safe; redisCommandArgv needs no format.
Anything else fails, so that a reviewer looks at it and either rewrites it
with parameters or teaches this script the new safe form.

usage: sql_review.py FILE.c...   (exit 1 when something fails)
"""
import re
import sys

SQL_CALLS = ["SPI_execute", "SPI_exec", "SPI_execute_with_args", "SPI_execute_extended",
             "SPI_prepare", "SPI_prepare_params", "SPI_prepare_cursor", "SPI_prepare_extended",
             "SPI_cursor_open_with_args"]
FORMAT_CALLS = {"psprintf": 0, "appendStringInfo": 1, "snprintf": 2, "errmsg": 0,
                "errmsg_internal": 0, "errdetail": 0, "errdetail_log": 0, "errhint": 0,
                "elog": 1, "redisCommand": 1, "redisAppendCommand": 1}
INT_CONVERSION = re.compile(r"%[-+ #0]*\d*(?:\.\d+)?(?:hh|h|ll|l|z|j|t)?[diuxXc]")
ANY_CONVERSION = re.compile(r"%[-+ #0]*\d*(?:\.\d+|\.\*)?(?:hh|h|ll|l|z|j|t|L)?[a-zA-Z%]")


def strip_comments(src):
    """Blanks out comments, keeping line numbers and string literals."""
    out, i, n = [], 0, len(src)
    while i < n:
        if src.startswith("/*", i):
            j = src.find("*/", i + 2) + 2
            out.append(re.sub(r"[^\n]", " ", src[i:j]))
            i = j
        elif src.startswith("//", i):
            j = src.find("\n", i)
            out.append(" " * (j - i))
            i = j
        elif src[i] in "\"'":
            j = skip_literal(src, i)
            out.append(src[i:j])
            i = j
        else:
            out.append(src[i])
            i += 1
    return "".join(out)


def skip_literal(src, i):
    quote, j = src[i], i + 1
    while src[j] != quote:
        j += 2 if src[j] == "\\" else 1
    return j + 1


def call_args(src, open_paren):
    """The top-level arguments of the call whose "(" is at open_paren."""
    args, depth, start, i = [], 0, open_paren + 1, open_paren
    while True:
        c = src[i]
        if c in "\"'":
            i = skip_literal(src, i)
            continue
        if c in "([{":
            depth += 1
        elif c in ")]}":
            depth -= 1
            if depth == 0:
                args.append(src[start:i].strip())
                return args
        elif c == "," and depth == 1:
            args.append(src[start:i].strip())
            start = i + 1
        i += 1


# Macros that expand to string literals of integer formats.
FORMAT_MACROS = {"INT64_FORMAT": "%lld", "UINT64_FORMAT": "%llu"}


def is_literal(expr):
    """Only adjacent string literals and the integer format macros."""
    rest = expr.strip()
    if not rest:
        return False
    while rest:
        macro = re.match(r"(%s)\b" % "|".join(FORMAT_MACROS), rest)
        if macro:
            rest = rest[macro.end():].strip()
        elif rest.startswith('"'):
            rest = rest[skip_literal(rest, 0):].strip()
        else:
            return False
    return True


def literal_text(expr):
    for macro, fmt in FORMAT_MACROS.items():
        expr = expr.replace(macro, '"%s"' % fmt)
    return "".join(re.findall(r'"((?:[^"\\]|\\.)*)"', expr))


def enclosing_function(src, pos):
    """Text of the function around pos: from the last line starting with "{"."""
    start = src.rfind("\n{", 0, pos)
    end = src.find("\n}", pos)
    return src[start:end if end >= 0 else len(src)]


def review(path, failures):
    src = strip_comments(open(path, encoding="utf-8").read())

    def where(pos):
        return "%s:%d" % (path, src.count("\n", 0, pos) + 1)

    def verdict(pos, what, ok, why):
        print("%s: %s -> %s (%s)" % (where(pos), what, "ok" if ok else "FAILED", why))
        if not ok:
            failures.append(where(pos))

    for name in SQL_CALLS:
        for m in re.finditer(r"\b%s\s*\(" % name, src):
            sql = call_args(src, m.end() - 1)[0]
            if is_literal(sql):
                verdict(m.start(), name, True, "literal SQL")
            elif re.fullmatch(r"\w+\s*->\s*sql", sql):
                verdict(m.start(), name, True, "a SpiPlan's literal SQL")
            elif re.fullmatch(r"\w+", sql):
                body = enclosing_function(src, m.start())
                sources = re.findall(r"\b%s\s*=\s*(\w+)\s*\(([^;]*)\)\s*;" % sql, body, re.S)
                ok = bool(sources) and all(
                    fn == "psprintf" and is_literal(call_args("(" + args + ")", 0)[0]) and
                    all(INT_CONVERSION.fullmatch(c) or c == "%%"
                        for c in ANY_CONVERSION.findall(literal_text(call_args("(" + args + ")", 0)[0])))
                    for fn, args in sources)
                verdict(m.start(), name, ok,
                        "%s built by psprintf with integer conversions only" % sql if ok
                        else "%s is built some other way: review it" % sql)
            else:
                verdict(m.start(), name, False, "SQL is an expression: review it")

    for m in re.finditer(r"\bSpiPlan\s+\w+\s*=\s*\{", src):
        first = call_args(src, m.end() - 1)[0]
        verdict(m.start(), "SpiPlan", is_literal(first),
                "literal SQL, values as $n parameters" if is_literal(first) else "SQL is not a literal")

    for name, argno in FORMAT_CALLS.items():
        for m in re.finditer(r"(?<![\w.>])%s\s*\(" % name, src):
            args = call_args(src, m.end() - 1)
            if len(args) <= argno:
                continue
            fmt = args[argno]
            if not is_literal(fmt):
                verdict(m.start(), name, False, "format is not a literal")


def main():
    failures = []
    for path in sys.argv[1:]:
        review(path, failures)
    print("sql_review: %d finding(s) to fix" % len(failures))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
