#!/usr/bin/python3
"""Memory per idle SMTP session in sluiced.

    idle_sessions.py --pid PID --port PORT [--host 127.0.0.1] [--count 10000]
                     [--sources 4] [--time-limit 120] [--json FILE]

Opens --count TCP connections to a sluiced listener (tls = none), spread
over --sources loopback source addresses (127.0.0.2, 127.0.0.3, ...; all
inside 127.0.0.0/8, so ephemeral ports and per-address limits are not a
bottleneck), reads each 220 greeting, sends "EHLO idle.bench.example" and
reads the whole 250 reply, then leaves every session open and idle.  It
reads the daemon's memory before the first connection and again once all
sessions are open and idle:

  VmRSS          /proc/PID/status: resident set (all threads)
  Pss            /proc/PID/smaps_rollup: proportional set size
  Private_Dirty  /proc/PID/smaps_rollup: memory written by this process only

and prints the growth divided by the number of sessions that completed
EHLO: the bytes each idle session costs the daemon (goal: <= 16 KiB).
Kernel socket buffers are not counted: they are not the daemon's memory.
Then it checks that the sessions are still open (none closed by the
daemon), closes them, and reads the memory once more.

Everything is bounded: non-blocking sockets and one selector, at most
--time-limit seconds for connecting and greeting, socket counts checked
against RLIMIT_NOFILE (raised to the hard limit first).
"""
import argparse
import errno
import json
import os
import resource
import selectors
import socket
import sys
import time

IP_BIND_ADDRESS_NO_PORT = getattr(socket, "IP_BIND_ADDRESS_NO_PORT", 24)

CONNECTING, GREETING, EHLO_SENT, IDLE, FAILED = range(5)


def read_mem(pid):
    """VmRSS, Pss and Private_Dirty of pid, in bytes."""
    m = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                m["VmRSS"] = int(line.split()[1]) * 1024
    with open(f"/proc/{pid}/smaps_rollup") as f:
        for line in f:
            k = line.split(":")[0]
            if k in ("Pss", "Private_Dirty"):
                m[k] = int(line.split()[1]) * 1024
    return m


def settled_mem(pid, tries=10):
    """Read until two readings 0.3 s apart agree on VmRSS (at most tries)."""
    prev = read_mem(pid)
    for _ in range(tries):
        time.sleep(0.3)
        cur = read_mem(pid)
        if cur["VmRSS"] == prev["VmRSS"]:
            return cur
        prev = cur
    return prev


class Conn:
    __slots__ = ("sock", "state", "buf", "out")

    def __init__(self, sock):
        self.sock = sock
        self.state = CONNECTING
        self.buf = b""
        self.out = b""


def final_reply(buf):
    """The code of the last complete reply in buf if it is final ("NNN "), else None."""
    lines = buf.split(b"\r\n")
    for line in lines[:-1]:
        if len(line) >= 4 and line[3:4] == b" ":
            return line[:3]
        if len(line) == 3:
            return line
    return None


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--pid", type=int, required=True)
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--count", type=int, default=10000)
    ap.add_argument("--sources", type=int, default=4)
    ap.add_argument("--batch", type=int, default=500,
                    help="connections in flight (not yet idle) at most")
    ap.add_argument("--time-limit", type=float, default=120)
    ap.add_argument("--json", metavar="FILE", help="also write the figures as JSON to FILE")
    a = ap.parse_args()

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        soft = hard
    if a.count + 64 > soft:
        print(f"idle_sessions: RLIMIT_NOFILE {soft} is too low for {a.count} sessions",
              file=sys.stderr)
        return 2
    sources = [f"127.0.0.{2 + i}" for i in range(a.sources)] if a.sources > 0 else [None]

    before = settled_mem(a.pid)
    sel = selectors.DefaultSelector()
    conns = []
    counts = {"idle": 0, "failed": 0}
    errors = {}
    in_flight = 0
    started = 0
    t0 = time.monotonic()
    deadline = t0 + a.time_limit

    def fail(c, why):
        nonlocal in_flight
        if c.state in (IDLE, FAILED):
            return
        errors[why] = errors.get(why, 0) + 1
        try:
            sel.unregister(c.sock)
        except (KeyError, ValueError):
            pass
        c.sock.close()
        c.state = FAILED
        counts["failed"] += 1
        in_flight -= 1

    while counts["idle"] + counts["failed"] < a.count and time.monotonic() < deadline:
        while started < a.count and in_flight < a.batch:
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.setblocking(False)
            src = sources[started % len(sources)]
            if src:
                s.setsockopt(socket.IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, 1)
                s.bind((src, 0))
            c = Conn(s)
            conns.append(c)
            started += 1
            in_flight += 1
            err = s.connect_ex((a.host, a.port))
            if err not in (0, errno.EINPROGRESS):
                fail(c, f"connect: {os.strerror(err)}")
                continue
            sel.register(s, selectors.EVENT_WRITE, c)
        for key, ev in sel.select(timeout=0.5):
            c = key.data
            s = c.sock
            if c.state == CONNECTING:
                err = s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                if err:
                    fail(c, f"connect: {os.strerror(err)}")
                    continue
                c.state = GREETING
                sel.modify(s, selectors.EVENT_READ, c)
                continue
            if ev & selectors.EVENT_WRITE and c.out:
                try:
                    n = s.send(c.out)
                except BlockingIOError:
                    continue
                except OSError as e:
                    fail(c, f"send: {e.strerror}")
                    continue
                c.out = c.out[n:]
                if not c.out:
                    sel.modify(s, selectors.EVENT_READ, c)
                continue
            try:
                data = s.recv(4096)
            except BlockingIOError:
                continue
            except OSError as e:
                fail(c, f"recv: {e.strerror}")
                continue
            if not data:
                fail(c, f"closed by server in state {c.state}: {c.buf[-80:]!r}")
                continue
            c.buf += data
            code = final_reply(c.buf)
            if code is None:
                continue
            if c.state == GREETING:
                if code != b"220":
                    fail(c, f"greeting {code.decode(errors='replace')}: {c.buf[:80]!r}")
                    continue
                c.buf = b""
                c.state = EHLO_SENT
                c.out = b"EHLO idle.bench.example\r\n"
                try:
                    n = s.send(c.out)
                    c.out = c.out[n:]
                except BlockingIOError:
                    pass
                except OSError as e:
                    fail(c, f"send: {e.strerror}")
                    continue
                if c.out:
                    sel.modify(s, selectors.EVENT_READ | selectors.EVENT_WRITE, c)
            elif c.state == EHLO_SENT:
                if code != b"250":
                    fail(c, f"EHLO {code.decode(errors='replace')}: {c.buf[:80]!r}")
                    continue
                c.buf = b""
                c.state = IDLE
                sel.unregister(s)
                counts["idle"] += 1
                in_flight -= 1
    setup_s = time.monotonic() - t0
    for c in conns:
        if c.state not in (IDLE, FAILED):
            fail(c, "time limit")

    try:
        with_sessions = settled_mem(a.pid)
    except OSError:
        print("idle_sessions: sluiced (pid %d) is gone" % a.pid, file=sys.stderr)
        return 1

    # still open?  A closed session shows as readable with EOF (or an error).
    closed_early = 0
    check = selectors.DefaultSelector()
    for c in conns:
        if c.state == IDLE:
            check.register(c.sock, selectors.EVENT_READ, c)
    for key, _ in check.select(timeout=0.2):
        try:
            data = key.data.sock.recv(4096, socket.MSG_PEEK)
            if not data:
                closed_early += 1
        except OSError:
            closed_early += 1
    check.close()

    for c in conns:
        if c.state == IDLE:
            c.sock.close()
    sel.close()
    time.sleep(1.0)
    try:
        after_close = settled_mem(a.pid)
        alive = True
    except OSError:
        after_close = None
        alive = False

    n = counts["idle"]
    per = {k: (with_sessions[k] - before[k]) / n if n else None for k in before}
    res = {
        "requested": a.count,
        "idle_sessions": n,
        "failed": counts["failed"],
        "errors": errors,
        "closed_by_server_while_idle": closed_early,
        "setup_seconds": setup_s,
        "sources": [s for s in sources if s],
        "before": before,
        "with_sessions": with_sessions,
        "after_close": after_close,
        "daemon_alive": alive,
        "bytes_per_session": per,
    }
    if a.json:
        with open(a.json, "w") as f:
            json.dump(res, f)
            f.write("\n")
    print(f"idle sessions open: {n} of {a.count} in {setup_s:.1f} s "
          f"(failed {counts['failed']}, closed by server while idle {closed_early})")
    for why, k in sorted(errors.items(), key=lambda x: -x[1])[:10]:
        print(f"  failure: {k} x {why}")
    print(f"{'':16}{'before':>14}{'with sessions':>16}{'after close':>14}{'per session':>14}")
    for k in ("VmRSS", "Pss", "Private_Dirty"):
        ac = f"{after_close[k] / 1024:.0f} KiB" if after_close else "-"
        pp = f"{per[k]:.0f} B" if per[k] is not None else "-"
        print(f"{k:16}{before[k] / 1024:>10.0f} KiB{with_sessions[k] / 1024:>12.0f} KiB"
              f"{ac:>14}{pp:>14}")
    if not alive:
        print("sluiced exited during the test")
    ok = n == a.count and closed_early == 0 and alive
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
