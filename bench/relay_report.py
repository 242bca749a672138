#!/usr/bin/python3
"""Summarise a bench/relay.sh run.

    relay_report.py RESULTS.jsonl [META.json]

RESULTS.jsonl has one object per timed run (written by relay.sh):
  server   postfix | sluice | sink
  mode     "c" (one message per connection) or "d" (smtp-source -d, connections reused)
  run      1..RUNS          msgs   messages smtp-source sent
  ok       1 if every check of that run passed
  accept_s, e2e_s, busy, e2e_busy, pid_cpu_s, pid_cpu_e2e_s, threads_cpu   (timed_run.py)
  connects, syncs          sluice: its connect() and fsync+fdatasync calls (perf), or ""
Prints the figures and returns 1 if any run failed its checks.
"""
import json
import sys

from report import fmt, median  # bench/report.py: the same figures' helpers


def main():
    rows = [json.loads(line) for line in open(sys.argv[1]) if line.strip()]
    meta = json.load(open(sys.argv[2])) if len(sys.argv) > 2 else {}
    failed = [r for r in rows if not r.get("ok")]
    modes = [m for m in ("c", "d") if any(r["mode"] == m for r in rows)]

    def runs(server, mode):
        return sorted((r for r in rows if r["server"] == server and r["mode"] == mode),
                      key=lambda r: r["run"])

    def rate(server, mode, key):
        return [r["msgs"] / r[key] if r.get(key) and r.get("ok") else None
                for r in runs(server, mode)]

    def med_of(server, mode, f):
        return median([f(r) for r in runs(server, mode) if r.get("ok")])

    table = []  # (figure, per-run values, median, unit, decimals)
    notes = []
    for mode in modes:
        label = "one message per connection" if mode == "c" else "-d, connections reused"
        pe, se = rate("postfix", mode, "e2e_s"), rate("sluice", mode, "e2e_s")
        pa, sa = rate("postfix", mode, "accept_s"), rate("sluice", mode, "accept_s")
        ke = rate("sink", mode, "e2e_s")
        mp, ms = median(pe), median(se)
        table.append((f"[{mode}] {label}", None, None, "", 0))
        table.append(("  Postfix end to end", pe, mp, "msg/s", 0))
        table.append(("  sluice end to end", se, ms, "msg/s", 0))
        table.append(("  ratio sluice/Postfix end to end",
                      [s / p if s and p else None for s, p in zip(se, pe)],
                      ms / mp if ms and mp else None, "x", 2))
        table.append(("  Postfix accepting (smtp-source exit)", pa, median(pa), "msg/s", 0))
        table.append(("  sluice accepting (smtp-source exit)", sa, median(sa), "msg/s", 0))
        if ke and any(ke):
            table.append(("  no relay: smtp-source -> smtp-sink", ke, median(ke), "msg/s", 0))
            mk = median(ke)
            table.append(("  sluice end to end / no-relay ceiling",
                          [s / k if s and k else None for s, k in zip(se, ke)],
                          ms / mk if ms and mk else None, "x", 2))
        # sluice's own figures
        conns = med_of("sluice", mode, lambda r: r["connects"]
                       if isinstance(r.get("connects"), int) and r["connects"] > 0 else None)
        syncs = med_of("sluice", mode, lambda r: r["syncs"]
                       if isinstance(r.get("syncs"), int) and r["syncs"] > 0 else None)
        lag = med_of("sluice", mode, lambda r: r["e2e_s"] - r["accept_s"] if r.get("e2e_s") else None)
        plag = med_of("postfix", mode, lambda r: r["e2e_s"] - r["accept_s"] if r.get("e2e_s") else None)
        cpu = med_of("sluice", mode, lambda r: 1000 * r["pid_cpu_e2e_s"] / r["msgs"]
                     if r.get("pid_cpu_e2e_s") is not None else None)
        sbusy = med_of("sluice", mode, lambda r: 100 * r["e2e_busy"] if r.get("e2e_busy") is not None else None)
        pbusy = med_of("postfix", mode, lambda r: 100 * r["e2e_busy"] if r.get("e2e_busy") is not None else None)
        n = next((r["msgs"] for r in runs("sluice", mode)), None)
        line = f"[{mode}] sluiced: "
        if conns:
            line += f"{fmt(conns)} connections to the sink per run ({fmt(n / conns, 1)} msg each), "
        if syncs:
            line += f"{fmt(syncs)} fsync+fdatasync ({fmt(n / syncs, 1)} msg each; accepted and delivered records share them), "
        line += (f"CPU {fmt(cpu, 3)} ms per message (accept + deliver, all threads); "
                 f"last delivery {fmt(lag, 2)} s after smtp-source exited (Postfix {fmt(plag, 2)} s); "
                 f"machine busy sluice {fmt(sbusy)}%, Postfix {fmt(pbusy)}%")
        notes.append(line)
        # per-thread CPU (creation order), median share of sluiced's CPU
        shares = {}
        for r in runs("sluice", mode):
            th = r.get("threads_cpu")
            if not r.get("ok") or not th:
                continue
            tot = sum(th.values()) or 1
            for i, (tid, s) in enumerate(sorted(th.items(), key=lambda kv: int(kv[0]))):
                shares.setdefault(i, []).append((s, 100 * s / tot, s / r["e2e_s"] * 100))
        busy_threads = [(i, median([x[0] for x in v]), median([x[2] for x in v]))
                        for i, v in sorted(shares.items())]
        busy_threads = [t for t in busy_threads if t[1] and t[1] >= 0.05]
        if busy_threads:
            notes.append(f"[{mode}] sluiced threads (creation order; CPU s per run, % of one core "
                         "over the run): " + ", ".join(f"#{i} {fmt(s, 2)} s {fmt(c)}%"
                                                       for i, s, c in busy_threads))

    print()
    print("=" * 100)
    print("sluice relay benchmark (end to end)" + (f" -- {meta['date']}" if meta.get("date") else ""))
    for k in ("machine", "kernel", "postfix", "sluice", "build", "messages", "load_c", "load_d",
              "sink", "sluice_extra"):
        if meta.get(k):
            print(f"  {k:12} {meta[k]}")
    print("=" * 100)
    w = max(len(t[0]) for t in table) + 2
    for name, vals, med, unit, nd in table:
        if vals is None:
            print(name)
            continue
        per = ", ".join(fmt(v, nd) for v in vals)
        print(f"{name:<{w}}{'median ' + fmt(med, nd) + ' ' + unit:>24}   runs: {per}")
    print()
    for n in notes:
        print(n)
    if failed:
        print()
        print(f"FAILED CHECKS in {len(failed)} run(s); their figures are left out ('-'):")
        for r in failed:
            print(f"  {r.get('server', '')} -{r.get('mode', '')} run {r['run']}: {r.get('why', '?')}")
    print("=" * 100)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
