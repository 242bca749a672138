#!/usr/bin/python3
"""Run one load generator command and time it with the monotonic clock.

    timed_run.py [--timeout S] [--sink-out FILE --sink-target N] [--drain-timeout S]
                 [--pid PID] [--log FILE] -- COMMAND...

Prints one JSON object on stdout:
  rc          exit status of COMMAND (124: killed by the timeout)
  accept_s    seconds from start until COMMAND exited (every message answered)
  e2e_s       with --sink-out: seconds from start until smtp-sink's "mesg=" counter
              reached --sink-target (null if it did not within --drain-timeout)
  sink_mesg   the last counter value read from --sink-out
  busy        fraction of the machine's CPU time (all cores) not idle during accept_s
  pid_cpu_s   with --pid: CPU seconds (user + system) that process used during accept_s
  e2e_busy, pid_cpu_e2e_s   the same two over e2e_s (with --sink-out and a drain)
  threads_cpu with --pid and --threads: {TID: CPU seconds} of each of its threads over
              e2e_s (accept_s without --sink-out), threads in creation (TID) order

COMMAND's stdout and stderr go to --log (default: discarded).
"""
import argparse
import json
import os
import re
import subprocess
import sys
import time

MESG_RE = re.compile(rb"mesg=(\d+)")


def cpu_times():
    with open("/proc/stat", "rb") as f:
        fields = [int(x) for x in f.readline().split()[1:]]
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)
    return sum(fields[:8]), idle


def pid_cpu(pid):
    if pid is None:
        return None
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read()
    except OSError:
        return None
    rest = data[data.rindex(b")") + 2:].split()
    # fields 14 and 15 (utime, stime) are rest[11], rest[12]
    return (int(rest[11]) + int(rest[12])) / os.sysconf("SC_CLK_TCK")


def threads_cpu(pid):
    """{TID: CPU seconds} of every thread of pid."""
    out = {}
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return out
    for tid in tids:
        try:
            with open(f"/proc/{pid}/task/{tid}/stat", "rb") as f:
                data = f.read()
        except OSError:
            continue
        rest = data[data.rindex(b")") + 2:].split()
        out[int(tid)] = (int(rest[11]) + int(rest[12])) / os.sysconf("SC_CLK_TCK")
    return out


def sink_count(path):
    """The last mesg=N that smtp-sink -c wrote (it rewrites one line with CR)."""
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - 256))
            tail = f.read()
    except OSError:
        return None
    found = MESG_RE.findall(tail)
    return int(found[-1]) if found else 0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--timeout", type=float, default=300)
    ap.add_argument("--sink-out")
    ap.add_argument("--sink-target", type=int)
    ap.add_argument("--drain-timeout", type=float, default=300)
    ap.add_argument("--pid", type=int)
    ap.add_argument("--threads", action="store_true")
    ap.add_argument("--log")
    ap.add_argument("cmd", nargs=argparse.REMAINDER)
    a = ap.parse_args()
    cmd = a.cmd[1:] if a.cmd and a.cmd[0] == "--" else a.cmd
    if not cmd:
        ap.error("no command")

    out = open(a.log, "ab") if a.log else subprocess.DEVNULL
    tot0, idle0 = cpu_times()
    p0 = pid_cpu(a.pid)
    th0 = threads_cpu(a.pid) if a.pid is not None and a.threads else None
    t0 = time.monotonic()
    try:
        rc = subprocess.run(cmd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                            timeout=a.timeout).returncode
    except subprocess.TimeoutExpired:
        rc = 124
    t1 = time.monotonic()
    tot1, idle1 = cpu_times()
    p1 = pid_cpu(a.pid)

    e2e = None
    count = None
    if a.sink_out and a.sink_target is not None:
        deadline = t1 + a.drain_timeout
        while True:
            count = sink_count(a.sink_out)
            now = time.monotonic()
            if count is not None and count >= a.sink_target:
                e2e = now - t0
                break
            if now >= deadline:
                break
            time.sleep(0.01)

    tot2, idle2 = cpu_times()
    p2 = pid_cpu(a.pid)
    th1 = threads_cpu(a.pid) if th0 is not None else None
    res = {
        "rc": rc,
        "accept_s": t1 - t0,
        "e2e_s": e2e,
        "sink_mesg": count,
        "busy": (1 - (idle1 - idle0) / (tot1 - tot0)) if tot1 > tot0 else None,
        "pid_cpu_s": (p1 - p0) if p0 is not None and p1 is not None else None,
    }
    if e2e is not None:
        res["e2e_busy"] = (1 - (idle2 - idle0) / (tot2 - tot0)) if tot2 > tot0 else None
        res["pid_cpu_e2e_s"] = (p2 - p0) if p0 is not None and p2 is not None else None
    if th1 is not None:
        res["threads_cpu"] = {str(t): round(th1[t] - th0.get(t, 0.0), 3) for t in sorted(th1)}
    json.dump(res, sys.stdout)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
