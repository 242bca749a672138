"""Content scanning cost (docs/policy.md): the time from the end of DATA to the reply for N
clean 4 KiB messages in one session, on a fresh sluiced without scanners, with Debian's
clamd, with rspamd, and with both (the private scanners of tests/integration/test_scan.py,
on loopback).  Prints the median and p90 in ms per configuration, and each scanner's own median exchange
time as sluiced logs it (elapsed_ms); the rest is the group commit's fsync.

    SLUICE_BUILD=build N=200 /usr/bin/python3 bench/scan_latency.py
"""
import os, re, smtplib, statistics, sys, time
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "integration"))
os.environ.setdefault("SLUICE_BUILD", "build")
import sluicelib
import test_scan as ts

N = int(os.environ.get("N", "200"))
bins = sluicelib.find_binaries()
clamd = ts.Clamd().start()
rspamd = ts.Rspamd().start()
try:
    for label, extra in [("none", ""),
                         ("clamd", ts.scan_config(f"127.0.0.1:{clamd.port}")),
                         ("rspamd", ts.scan_config(rspamd=rspamd.url)),
                         ("both", ts.scan_config(f"127.0.0.1:{clamd.port}", rspamd.url))]:
        sl = sluicelib.Sluice.create(bins, label="bench-" + label, extra_global=extra).start()
        try:
            lat = []
            with smtplib.SMTP("127.0.0.1", sl.ports["submission"], timeout=60) as c:
                c.starttls(context=sluicelib.client_tls_context())
                c.login("acme", sluicelib.ACME_PW)
                for i in range(N):
                    msg = sluicelib.message(sluicelib.token(), body_lines=["x" * 70] * 60)
                    c.mail("alice@acme.example"); c.rcpt("bob@example.org")
                    t0 = time.perf_counter()
                    code, _ = c.data(msg)
                    lat.append((time.perf_counter() - t0) * 1000)
                    assert code == 250, code
            lat.sort()
            # the scanners' own share, as sluiced logs it per scanner
            scans = {}
            for m in re.finditer(r"scan scanner=(\w+) .*elapsed_ms=(\d+)", sl.log_text()):
                scans.setdefault(m.group(1), []).append(int(m.group(2)))
            own = " ".join(f"{k}_median={statistics.median(v):.0f}ms" for k, v in sorted(scans.items()))
            print(f"{label:7s} n={N} median={statistics.median(lat):.2f}ms "
                  f"p90={lat[int(0.9 * N)]:.2f}ms size={len(msg)}B {own}")
        finally:
            sl.stop(); sl.cleanup()
finally:
    clamd.cleanup(); rspamd.cleanup()
