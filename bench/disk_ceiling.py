#!/usr/bin/python3
"""Disk ceiling for a group-committing spool: 4 KiB appends, one fdatasync per 64.

    disk_ceiling.py DIR [--appends N] [--batch 64] [--size 4096]

Writes a scratch file in DIR (use the spool's folder, so the same file
system and device are measured), appends N blocks of --size bytes with
os.write, calls os.fdatasync after every --batch appends (and after the
last), deletes the file, and prints one JSON object:
  appends_per_s   4 KiB appends made durable per second (the figure)
  syncs_per_s     fdatasync calls per second
  ms_per_sync     mean time of one batch (64 writes + 1 fdatasync)
"""
import argparse
import json
import os
import sys
import time


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("dir")
    ap.add_argument("--appends", type=int, default=65536)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--size", type=int, default=4096)
    a = ap.parse_args()

    path = os.path.join(a.dir, f"disk-ceiling.{os.getpid()}.tmp")
    block = os.urandom(a.size)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND, 0o600)
    try:
        syncs = 0
        t0 = time.monotonic()
        for i in range(1, a.appends + 1):
            if os.write(fd, block) != a.size:
                raise OSError("short write")
            if i % a.batch == 0:
                os.fdatasync(fd)
                syncs += 1
        if a.appends % a.batch:
            os.fdatasync(fd)
            syncs += 1
        elapsed = time.monotonic() - t0
    finally:
        os.close(fd)
        os.unlink(path)
    json.dump({
        "appends_per_s": a.appends / elapsed,
        "syncs_per_s": syncs / elapsed,
        "ms_per_sync": 1000 * elapsed / syncs,
        "appends": a.appends,
        "seconds": elapsed,
    }, sys.stdout)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
