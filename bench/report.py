#!/usr/bin/python3
"""Summarise a bench/submission.sh run.

    report.py RESULTS.jsonl [IDLE.json] [META.json]

RESULTS.jsonl has one object per timed run (written by submission.sh):
  kind     "load" or "disk"
  server   postfix | sluice | sink          (load)
  mode     "c" (one message per connection) or "d" (smtp-source -d, connections reused)
  run      1..RUNS
  msgs     messages smtp-source sent
  ok       1 if every check of that run passed
  accept_s, e2e_s, busy, pid_cpu_s         (from timed_run.py)
  appends_per_s                           (disk)
Prints the figures table and returns 1 if any run failed its checks.
"""
import json
import statistics
import sys


def median(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def fmt(x, nd=0):
    if x is None:
        return "-"
    return f"{x:,.{nd}f}"


def main():
    rows = [json.loads(line) for line in open(sys.argv[1]) if line.strip()]
    idle = None
    if len(sys.argv) > 2 and sys.argv[2] != "-":
        try:
            idle = json.load(open(sys.argv[2]))
        except (OSError, ValueError):
            idle = None
    meta = json.load(open(sys.argv[3])) if len(sys.argv) > 3 else {}

    failed = [r for r in rows if not r.get("ok")]
    load = [r for r in rows if r["kind"] == "load"]

    def series(server, mode, key):
        out = []
        for r in sorted((r for r in load if r["server"] == server and r["mode"] == mode),
                        key=lambda r: r["run"]):
            t = r.get(key)
            out.append(r["msgs"] / t if t and r.get("ok") else None)
        return out

    def cpu_ms(server, mode):
        out = []
        for r in load:
            if r["server"] == server and r["mode"] == mode and r.get("ok") and \
                    r.get("pid_cpu_s") is not None:
                out.append(1000 * r["pid_cpu_s"] / r["msgs"])
        return median(out)

    def busy(server, mode):
        return median([100 * r["busy"] for r in load
                       if r["server"] == server and r["mode"] == mode and r.get("busy") is not None])

    table = []  # (figure, what it measures, per-run values, median, unit)

    def add(name, what, vals, unit="msg/s", nd=0):
        table.append((name, what, vals, median(vals), unit, nd))

    for mode, label in (("c", "one message per connection"), ("d", "-d: connections reused")):
        pa = series("postfix", mode, "accept_s")
        pe = series("postfix", mode, "e2e_s")
        sa = series("sluice", mode, "accept_s")
        ka = series("sink", mode, "accept_s")
        add(f"Postfix accepting ({mode})",
            f"{label}; smtp-source start to exit (Postfix also relays to the sink meanwhile)", pa)
        add(f"Postfix end to end ({mode})",
            "smtp-source start until smtp-sink counted every message", pe)
        add(f"sluice accepting ({mode})",
            f"{label}; smtp-source start to exit, every 250 after fsync (sluice does not "
            "deliver yet)", sa)
        ratios = [s / p if s and p else None for s, p in zip(sa, pa)]
        mp, ms = median(pa), median(sa)
        table.append((f"ratio sluice/Postfix accepting ({mode})",
                      "median / median; per run: the pair measured in the same round",
                      ratios, ms / mp if ms and mp else None, "x", 2))
        add(f"no relay ceiling ({mode})", "smtp-source straight into smtp-sink", ka)
        mk = median(ka)
        table.append((f"sluice / no-relay ceiling ({mode})", "how close sluice gets to the load "
                      "generator's own limit", [s / k if s and k else None for s, k in zip(sa, ka)],
                      ms / mk if ms and mk else None, "x", 2))

    disk = [r["appends_per_s"] for r in sorted((r for r in rows if r["kind"] == "disk"),
                                               key=lambda r: r["run"])]
    add("disk ceiling", "4 KiB appends per second, one fdatasync per 64, on the spool's file "
        "system", disk, "appends/s")

    print()
    print("=" * 100)
    print("sluice submission benchmark" + (f" -- {meta['date']}" if meta.get("date") else ""))
    for k in ("machine", "kernel", "postfix", "sluice", "build", "messages", "load_c", "load_d",
              "sink", "runs"):
        if k in meta:
            print(f"  {k:9} {meta[k]}")
    print("=" * 100)
    w = max(len(t[0]) for t in table) + 2
    for name, what, vals, med, unit, nd in table:
        per = ", ".join(fmt(v, nd) for v in vals)
        print(f"{name:<{w}}{'median ' + fmt(med, nd) + ' ' + unit:>26}   runs: {per}")
        print(f"{'':<{w}}  {what}")
    print()
    print("CPU: machine busy (median % of both cores while smtp-source ran): " + ", ".join(
        f"{s} {m} {fmt(busy(s, m))}%" for s in ("postfix", "sluice", "sink") for m in ("c", "d")))
    print("CPU: sluiced's own CPU per accepted message (median): " + ", ".join(
        f"{m} {fmt(cpu_ms('sluice', m), 3)} ms" for m in ("c", "d")))
    def per_sync(mode):
        return median([r["msgs"] / r["syncs"] for r in load
                       if r["server"] == "sluice" and r["mode"] == mode and r.get("ok")
                       and isinstance(r.get("syncs"), int) and r["syncs"] > 0])
    if any(per_sync(m) for m in ("c", "d")):
        print("spool: sluiced's fsync+fdatasync calls counted with perf; messages per sync "
              "(median, group commit): " + ", ".join(f"{m} {fmt(per_sync(m), 1)}" for m in ("c", "d")))
    if idle:
        per = idle["bytes_per_session"]
        n = idle["idle_sessions"]
        good = n == idle["requested"] and idle["closed_by_server_while_idle"] == 0 and \
            idle["daemon_alive"]
        print()
        print(f"idle sessions: {n:,} of {idle['requested']:,} open after 220 + EHLO "
              f"(failed {idle['failed']}, closed by sluiced while idle "
              f"{idle['closed_by_server_while_idle']}); sluiced memory growth per session:")
        for k in ("VmRSS", "Pss", "Private_Dirty"):
            v = per.get(k)
            print(f"  {k:14} {fmt(v)} bytes  ({idle['before'][k] // 1024:,} KiB -> "
                  f"{idle['with_sessions'][k] // 1024:,} KiB)")
        goal = per.get("Pss") is not None and per["Pss"] <= 16384 and good
        print(f"  goal <= 16 KiB per idle session: {'met' if goal else 'NOT met'}")
    if failed:
        print()
        print(f"FAILED CHECKS in {len(failed)} run(s); their figures are left out ('-'):")
        for r in failed:
            print(f"  {r['kind']} {r.get('server', '')} {r.get('mode', '')} run {r['run']}: "
                  f"{r.get('why', '?')}")
    print("=" * 100)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
