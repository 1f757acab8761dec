#!/usr/bin/python3
"""Turns a bench/run.sh run into bench/results/report.md and throughput.png.

usage: report.py RAW_DIR OUT_DIR

RAW_DIR holds runs.tsv (one line per pgbench run), conditions.txt, notes.txt
and one folder per run with pgbench's per-transaction logs (tx.*: the third
field is the latency in microseconds), and for claims per_second.tsv (claims
committed per second, from the coupons' updated_at) and check.tsv (the
oversell check).  Throughput of a cell is the mean over its repeats; latency
percentiles pool every transaction of every repeat.
"""
import collections
import glob
import os
import statistics
import subprocess
import sys

RAW, OUT = sys.argv[1], sys.argv[2]

# What each workload compares, and the goal of the ratio (issues 6 and 14).
BASELINES = {
    "cycle": [("plpgsql", 1.5), ("sql", 1.0)],
    "advisory": [("core", 0.9)],
    "redis": [("redis-py", 1.0)],
}
# Claims: coupon_lock against the sequence-addressed single-UPDATE floor and
# the strong SKIP LOCKED claim; the weak one (ORDER BY) is shown, not a goal.
CLAIM_GOALS = [("floor", 0.8), ("skip", 1.7)]
STEADY_GOAL, BIG_GOAL, HOT_GOAL, SIZE_GOAL = 0.9, 0.8, 0.9, 1.10
# One colour per contender in every panel; dashes for synchronous_commit = off
# (claims: for the smaller batch).
COLOURS = {"ext": "#8e24aa", "plpgsql": "#2e7d32", "sql": "#1565c0", "core": "#ef6c00",
           "skip": "#00838f", "floor": "#1565c0",
           "redis-py": "#c62828", "ext-small": "#8e24aa", "ext-big": "#f9a825"}
NAMES = {
    "ext": "coupon_lock",
    "plpgsql": "PL/pgSQL contract",
    "plpgsql-claim": "PL/pgSQL SKIP LOCKED, ORDER BY coupon_id (weak)",
    "sql": "single UPDATE (floor)",
    "skip": "PL/pgSQL SKIP LOCKED, no ORDER BY (strong)",
    "floor": "sequence-addressed single UPDATE (floor)",
    "core": "core pg_advisory_lock",
    "redis-py": "redis-py Lock",
    "ext-small": "coupon_lock, 100k coupons",
    "ext-big": "coupon_lock, 10M coupons",
}


def contender_name(workload, cont):
    """A contender's name; in claims, plpgsql is the weak SKIP LOCKED claim."""
    if cont == "plpgsql" and workload.startswith("claim"):
        return NAMES["plpgsql-claim"]
    return NAMES.get(cont, cont)


def read_runs():
    runs = []
    with open(os.path.join(RAW, "runs.tsv")) as f:
        header = f.readline().rstrip("\n").split("\t")
        for line in f:
            row = dict(zip(header, line.rstrip("\n").split("\t")))
            row["clients"] = int(row["clients"])
            row["tps"] = float(row["tps"] or 0)
            runs.append(row)
    return runs


def latencies(run_dirs):
    lat = []
    for d in run_dirs:
        for path in glob.glob(os.path.join(RAW, d, "tx*")):
            with open(path) as f:
                for line in f:
                    parts = line.split()
                    if len(parts) >= 3 and parts[2].isdigit():
                        lat.append(int(parts[2]))
    lat.sort()
    return lat


def pct(lat, p):
    if not lat:
        return float("nan")
    return lat[min(len(lat) - 1, int(len(lat) * p / 100.0))] / 1000.0


def claim_stats(run_dir, seconds):
    """claims/s, steady ratio (last window / first window), window, sold-out second."""
    per = []
    path = os.path.join(RAW, run_dir, "per_second.tsv")
    if os.path.exists(path):
        with open(path) as f:
            per = [int(line.split("\t")[1]) for line in f if line.strip()]
    check = open(os.path.join(RAW, run_dir, "check.tsv")).read().split("\t")
    quantity, claimed = int(check[0]), int(check[1])
    sold_out = claimed >= quantity
    full = per[1:-1]            # the first and last seconds are partial
    if not full:
        return claimed / seconds, float("nan"), 0, sold_out, check
    window = max(1, min(10, len(full) // 2))
    steady = statistics.mean(full[-window:]) / statistics.mean(full[:window])
    rate = claimed / (len(per) if sold_out else seconds)
    return rate, steady, window, sold_out, check


def fmt(x, digits=0):
    if x != x:                  # nan
        return "–"
    return f"{x:,.{digits}f}"


def verdict(value, goal):
    if value != value:
        return "–"
    return "met" if value >= goal else f"**not met** ({value / goal:.0%} of goal)"


def read_tsv(name):
    path = os.path.join(RAW, name)
    if not os.path.exists(path):
        return []
    with open(path) as f:
        return [line.rstrip("\n").split("\t") for line in f if line.strip()]


def hot_section(goals):
    """HOT updates and the coupon tables' size over the cycle workload."""
    before = {r[0]: [int(x) for x in r[1:]] for r in read_tsv("hot_before.tsv")}
    after = {r[0]: [int(x) for x in r[1:]] for r in read_tsv("hot_after.tsv")}
    if not before or not after:
        return []
    out = ["## HOT updates in the cycle", "",
           "Counters of each contender's coupon table (pg_stat_user_tables) and its size, from before the "
           "first cycle run to after the last (every cell and repeat above).", "",
           "| table | updates | HOT updates | HOT share | heap + indexes before | after | growth |",
           "|---|---:|---:|---:|---:|---:|---:|"]
    for schema in sorted(after):
        if schema not in before:
            continue
        upd = after[schema][0] - before[schema][0]
        hot = after[schema][1] - before[schema][1]
        size0 = before[schema][2] + before[schema][3]
        size1 = after[schema][2] + after[schema][3]
        share = hot / upd if upd else float("nan")
        out.append(f"| {schema}.coupon | {upd:,} | {hot:,} | {share:.3f} | {size0 / 2**20:.1f} MB | "
                   f"{size1 / 2**20:.1f} MB | {size1 / size0:.2f}x |")
        if schema == "coupon_lock":
            goals.append(f"| cycle | all | all | HOT share of coupon_lock.coupon updates | {share:.3f} | "
                         f"{HOT_GOAL} | {verdict(share, HOT_GOAL)} |")
            grow = size1 / size0
            goals.append(f"| cycle | all | all | coupon table + indexes after {upd // 2:,} cycles / before | {grow:.2f}x | "
                         f"≤ {SIZE_GOAL}x | {'met' if grow <= SIZE_GOAL else '**not met**'} |")
    return out + [""]


def batches_section(cells, tput):
    facts = dict(read_tsv("batches.tsv"))
    if not facts:
        return []
    out = ["## Many batches (issue 14: 100,000)", "",
           f"{int(facts['batches']):,} batches in the database at the end ({int(facts['claim_sequences']):,} claim sequences: "
           "only batches of at least coupon_lock.claim_sequence_min_quantity coupons get one). "
           f"Bulk creation took {facts['bulk_create_seconds']} s in transactions of 1,000. "
           f"pg_dump -Fc: {facts['pg_dump_seconds']} s, {int(facts['pg_dump_bytes']) / 2**20:.1f} MB "
           f"(database {int(facts['database_bytes']) / 2**20:.0f} MB).", "",
           "| measured | with 2 batches | with all | ratio |", "|---|---:|---:|---:|"]
    for cont, label in (("create_batch", "create_batch (10 coupons), 1 client, calls/s"),
                        ("claim", "coupon_claim on a 1M batch, 8 clients, claims/s")):
        few = next((tput(w, c, s, cont) for (w, c, s, k) in cells if w == "batches-few" and k == cont), float("nan"))
        many = next((tput(w, c, s, cont) for (w, c, s, k) in cells if w == "batches-many" and k == cont), float("nan"))
        out.append(f"| {label} | {fmt(few)} | {fmt(many)} | {many / few:.2f}x |")
    return out + [""]


WAIT_GROUPS = (("WAL flush", ("LWLock:WALWrite", "IO:WALSync", "IO:WALWrite")),
               ("buffer content locks", ("LWLock:BufferContent",)),
               ("WAL insert", ("LWLock:WALInsert",)),
               ("row and tuple locks", ("Lock:transactionid", "Lock:tuple")),
               ("on CPU", ("CPU:-",)))


def run_file(run_dir, name):
    path = os.path.join(RAW, run_dir, name)
    return open(path).read().split() if os.path.exists(path) else []


def waits_section(claim_rows):
    """What the claims' backends waited for (run.sh's samples) and the WAL each claim wrote."""
    out = ["## What the claims wait for", "",
           "bench/run.sh samples pg_stat_activity five times a second during every run: each share is the part "
           "of all (backend, sample) pairs in that state. WAL bytes per claim are the run's WAL (from the "
           "CHECKPOINT before it to its end, so full-page images included) over the coupons it claimed. "
           "With synchronous_commit on a commit waits for its WAL to be flushed, and one flush at a time "
           "serves every backend waiting: claims/s is then bounded by how many bytes a claim adds to each "
           "flush, not by CPU (docs/performance.md).", "",
           "| batch | clients | sync | contender | WAL bytes per claim | vs the floor's | "
           + " | ".join(g for g, _ in WAIT_GROUPS) + " | other |",
           "|---:|---:|---|---|---:|---:|" + "---:|" * (len(WAIT_GROUPS) + 1)]
    per_claim = {}
    for key, (r, stats) in claim_rows.items():
        wal, claimed = run_file(r["run"], "wal_bytes.txt"), int(stats[4][1])
        per_claim[key] = float(wal[0]) / claimed if wal and claimed else float("nan")
    if all(v != v for v in per_claim.values()):
        return []
    for (w, c, s, cont), (r, _) in claim_rows.items():
        samples = collections.Counter(run_file(r["run"], "waits.txt"))
        total = sum(samples.values()) or float("nan")
        shares = []
        for _, events in WAIT_GROUPS:
            shares.append(sum(samples.pop(e, 0) for e in events) / total)
        shares.append(sum(samples.values()) / total)
        floor = per_claim.get((w, c, s, "floor"), float("nan"))
        name = NAMES["plpgsql-claim"] if cont == "plpgsql" else NAMES[cont]
        out.append(f"| {int(w.split('-')[1]):,} | {c} | {s} | {name} | {fmt(per_claim[(w, c, s, cont)])} | "
                   f"{per_claim[(w, c, s, cont)] / floor:.2f}x | " + " | ".join(f"{x:.0%}" for x in shares) + " |")
    return out + [""]


def router_section():
    """The router's cost per call: bench/shards.sh's figures (raw/router.tsv)."""
    rows = read_tsv("router.tsv")[1:]
    out = ["## Through the router (issue 14 item 5)", ""]
    if not rows:
        out.append("Not measured in this run: it needs the coupon_lock_router extension (bench/run.sh, workload `router`).")
        return out + [""]
    labels = {"claim": "coupon_claim", "cycle": "freeze + unfreeze (two calls)"}
    out += ["bench/shards.sh inside this run: a router and four shards over two clusters on this machine; "
            "\"direct\" calls one shard's database, \"router\" calls coupon_lock_router, which sends each call "
            "to the shard that owns it (PL/Proxy). Same clients and seconds on both sides, synchronous_commit on. "
            "The extra cost per call is the router's latency minus the shard's.", "",
            "| workload | direct tx/s | router tx/s | router / direct | direct ms | router ms | router's extra ms per transaction |",
            "|---|---:|---:|---:|---:|---:|---:|"]
    for workload, d_tps, r_tps, d_ms, r_ms in rows:
        d_tps, r_tps, d_ms, r_ms = (float(x or "nan") for x in (d_tps, r_tps, d_ms, r_ms))
        ratio = r_tps / d_tps if d_tps else float("nan")
        out.append(f"| {labels.get(workload, workload)} | {fmt(d_tps)} | {fmt(r_tps)} | {ratio:.2f}x | "
                   f"{fmt(d_ms, 2)} | {fmt(r_ms, 2)} | {fmt(r_ms - d_ms, 2)} |")
    return out + [""]


def redis_modes_section():
    """bench/redis_modes.sh's table (workload redis_modes): Redis lock modes side by side."""
    path = os.path.join(RAW, "redis_modes.md")
    if not os.path.exists(path):
        return []
    out = ["## Redis lock modes (issue 12 item 5)", "",
           "One client's redis_lock + redis_unlock through SQL against a single server, a master found "
           "through Sentinel, and Redlock over 3 and over 5 independent masters (bench/redis_modes.sh).", ""]
    with open(path) as f:
        out += [line.rstrip("\n") for line in f]
    return out + [""]


def main():
    runs = read_runs()
    cells = collections.OrderedDict()
    for r in runs:
        key = (r["workload"], r["clients"], r["sync"], r["contender"])
        cells.setdefault(key, []).append(r)

    def tput(workload, clients, sync, contender):
        rs = cells.get((workload, clients, sync, contender))
        return statistics.mean(r["tps"] for r in rs) if rs else float("nan")

    md = ["# coupon_lock benchmark results", ""]
    md.append("Produced by `bench/run.sh`; how to read it: docs/performance.md.")
    md.append("")
    md.append("## Conditions")
    md.append("")
    for line in open(os.path.join(RAW, "conditions.txt")):
        md.append("- " + line.rstrip())
    notes = os.path.join(RAW, "notes.txt")
    if os.path.exists(notes):
        md.append("")
        md.append("What ran:")
        md.append("")
        for line in open(notes):
            md.append("- " + line.rstrip())

    # ---- goals ----
    goals = ["## Goals (ratios from the same run)", "",
             "| workload | clients | sync | ratio | measured | goal | verdict |",
             "|---|---:|---|---|---:|---:|---|"]
    for (w, c, s, cont), _ in cells.items():
        if cont != "ext" or w not in BASELINES:
            continue
        for base, goal in BASELINES[w]:
            if (w, c, s, base) not in cells:
                continue
            if not tput(w, c, s, "ext") or not tput(w, c, s, base):
                goals.append(f"| {w} | {c} | {s} | coupon_lock / {NAMES[base]} | – | {goal}x | "
                             "**a run failed** (see raw/notes.txt) |")
                continue
            ratio = tput(w, c, s, "ext") / tput(w, c, s, base)
            goals.append(f"| {w} | {c} | {s} | coupon_lock / {NAMES[base]} | {ratio:.2f}x | {goal}x | {verdict(ratio, goal)} |")
    for (w, c, s, cont), _ in cells.items():
        if w == "big" and cont == "ext-big" and (w, c, s, "ext-small") in cells:
            ratio = tput(w, c, s, "ext-big") / tput(w, c, s, "ext-small")
            goals.append(f"| big | {c} | {s} | 10M coupons / 100k coupons | {ratio:.2f}x | {BIG_GOAL}x | {verdict(ratio, BIG_GOAL)} |")

    # ---- claims ----
    claims = []
    claim_rows = {}
    for (w, c, s, cont), rs in cells.items():
        if w.startswith("claim-"):
            r = rs[0]
            claim_rows[(w, c, s, cont)] = (r, claim_stats(r["run"], float(r["seconds"])))
    if claim_rows:
        claims = ["## Flash-sale claims", "",
                  "Claims/s count coupons actually issued (a claim on a sold-out batch returns NULL and is not counted); "
                  "steady is the mean rate of the last window of full seconds over the first "
                  "(before the batch sold out, if it did).", "",
                  "| batch | clients | sync | contender | claims/s | steady (last/first, window) | sold out | claimed / quantity | oversell check | p50 ms | p99 ms |",
                  "|---:|---:|---|---|---:|---|---|---|---|---:|---:|"]
        for (w, c, s, cont), (r, (rate, steady, window, sold_out, check)) in claim_rows.items():
            lat = latencies([r["run"]])
            events_ok = check[1] == check[2] and check[4].strip() == "0"
            ok = (int(check[1]) <= int(check[0]) and check[3].strip() == "0"
                  and (events_ok or cont == "floor"))
            name = NAMES["plpgsql-claim"] if cont == "plpgsql" else NAMES[cont]
            claims.append(f"| {int(w.split('-')[1]):,} | {c} | {s} | {name} | {fmt(rate)} | {steady:.2f} ({window} s) | "
                          f"{'yes' if sold_out else 'no'} | {int(check[1]):,} / {int(check[0]):,} | "
                          f"{'no oversell' if ok else '**OVERSELL**'} | {pct(lat, 50):.2f} | {pct(lat, 99):.2f} |")
        for (w, c, s, cont), (r, (rate, steady, window, sold_out, check)) in claim_rows.items():
            if cont != "ext":
                continue
            for base, goal in CLAIM_GOALS + [("plpgsql", None)]:
                if (w, c, s, base) not in claim_rows:
                    continue
                base_rate = claim_rows[(w, c, s, base)][1][0]
                ratio = rate / base_rate if base_rate else float("nan")
                name = NAMES["plpgsql-claim"] if base == "plpgsql" else NAMES[base]
                goals.append(f"| {w} | {c} | {s} | coupon_lock / {name} | {ratio:.2f}x | "
                             f"{f'{goal}x' if goal else '(shown, no goal)'} | {verdict(ratio, goal) if goal else '–'} |")
            goals.append(f"| {w} | {c} | {s} | coupon_lock steady (last/first {window} s) | {steady:.2f} | "
                         f"{STEADY_GOAL} | {verdict(steady, STEADY_GOAL)} |")
        claims.append("")

    md += [""] + goals + [""] + claims + waits_section(claim_rows) + hot_section(goals) + batches_section(cells, tput) + redis_modes_section() + router_section()

    # ---- every cell ----
    md += ["## Every cell", "",
           "Throughput is per pgbench transaction: one freeze + unfreeze cycle, one lock + unlock, one claim; "
           "mean of the repeats (min–max in brackets). Latency is of the whole transaction, from pgbench's "
           "per-transaction log, pooled over the repeats.", "",
           "| workload | clients | sync | contender | tx/s | runs | p50 ms | p99 ms |",
           "|---|---:|---|---|---:|---|---:|---:|"]
    for (w, c, s, cont), rs in cells.items():
        lat = latencies([r["run"] for r in rs])
        tps = [r["tps"] for r in rs]
        spread = f"{len(rs)} ({fmt(min(tps))}–{fmt(max(tps))})" if len(rs) > 1 else "1"
        md.append(f"| {w} | {c} | {s} | {contender_name(w, cont)} | {fmt(statistics.mean(tps))} | {spread} | "
                  f"{pct(lat, 50):.2f} | {pct(lat, 99):.2f} |")
    md += ["", "![throughput against clients](throughput.png)", ""]
    with open(os.path.join(OUT, "report.md"), "w") as f:
        f.write("\n".join(md) + "\n")

    chart(cells, tput, claim_rows)


def chart(cells, tput, claim_rows):
    """One PNG, a panel per workload: throughput against clients, a line per contender."""
    panels = []
    for title, workload in (("freeze + unfreeze cycle, 100k coupons", "cycle"),
                                   ("advisory lock + unlock", "advisory"),
                                   ("cycle: 10M vs 100k coupons", "big")):
        series = collections.OrderedDict()
        for (w, c, s, cont) in cells:
            if w == workload:
                series.setdefault((cont, s), []).append(c)
        if series:
            panels.append((title, workload, series))
    if claim_rows:
        panels.append(("flash-sale claims per second over the run", "claim", claim_rows))
    if not panels:
        return
    datadir = os.path.join(OUT, "chart")
    os.makedirs(datadir, exist_ok=True)
    plots = []
    for i, (title, workload, series) in enumerate(panels):
        lines = []
        if workload == "claim":
            for j, ((w, c, s, cont), (r, _)) in enumerate(series.items()):
                path = os.path.join(datadir, f"{i}-{j}.dat")
                with open(path, "w") as f, open(os.path.join(RAW, r["run"], "per_second.tsv")) as src:
                    for t, line in enumerate(src):
                        f.write(f"{t} {line.split()[1]}\n")
                dash = 2 if s == "off" else 1
                lines.append(f"'{path}' using 1:2 with lines lw 2 dt {dash} lc rgb '{COLOURS[cont]}' "
                             f"title '{contender_name(w, cont)}, {c} clients, sync={s}'")
            plots.append((title, lines, "seconds since start", "claims/s", False))
            continue
        for j, ((cont, extra), clients) in enumerate(series.items()):
            path = os.path.join(datadir, f"{i}-{j}.dat")
            with open(path, "w") as f:
                for c in sorted(set(clients)):
                    f.write(f"{c} {tput(workload, c, extra, cont):.1f}\n")
            label = contender_name(workload, cont) + f", sync={extra}"
            dash = 2 if extra == "off" else 1
            lines.append(f"'{path}' using 1:2 with linespoints lw 2 pt 7 dt {dash} "
                         f"lc rgb '{COLOURS.get(cont, 'black')}' title '{label}'")
        plots.append((title, lines, "clients", "transactions/s", True))
    cols = 2
    rows = (len(plots) + 1) // 2
    gp = [f"set terminal pngcairo size 1400,{600 * rows} font 'DejaVu Sans,11'",
          f"set output '{os.path.join(OUT, 'throughput.png')}'",
          f"set multiplot layout {rows},{cols}",
          "set termoption noenhanced", "set yrange [0:*]", "set grid", "set key below font ',10'", "set format y '%.0f'"]
    for title, lines, xlabel, ylabel, by_clients in plots:
        if by_clients:
            gp += ["set logscale x 2", "set xtics (1, 2, 4, 8, 16, 32)", "set xrange [0.8:40]"]
        else:
            gp += ["unset logscale x", "set xtics autofreq", "set xrange [0:*]"]
        gp += [f"set xlabel '{xlabel}'", f"set ylabel '{ylabel}'", f"set title '{title}'"]
        gp.append("plot " + ", ".join(lines))
    gp.append("unset multiplot")
    script = os.path.join(datadir, "throughput.gp")
    with open(script, "w") as f:
        f.write("\n".join(gp) + "\n")
    subprocess.run(["gnuplot", script], check=True)


if __name__ == "__main__":
    main()
