#!/usr/bin/python3
"""Verify the messages dkim_write signs with python3-dkim (Debian), an
implementation independent of src/message/dkim.c: both signatures (RSA
and Ed25519) of each message must pass against the TXT records dkim_write
wrote, and fail once a header is added after signing or the body changes.
Usage: dkim_check.py PATH-TO-dkim_write.  Exit 77 (skip) without dkim or
nacl (Ed25519)."""
import subprocess
import sys
import tempfile

try:
    import dkim
    import nacl  # noqa: F401  python3-dkim needs it for ed25519-sha256
except ImportError as e:
    print(f"SKIP: {e} (apt-get install python3-dkim python3-nacl)")
    sys.exit(77)

CASES = ["plain", "8bit", "smtputf8", "longline", "multipart"]
failed = False


def fail(what):
    global failed
    print(f"FAIL {what}")
    failed = True


def verify_all(raw, records):
    def dnsfunc(name, timeout=5):
        return records.get(name.rstrip(b".").decode())

    d = dkim.DKIM(raw)
    n = sum(1 for line in raw.split(b"\r\n\r\n", 1)[0].split(b"\r\n")
            if line.lower().startswith(b"dkim-signature:"))
    res = []
    for i in range(n):
        try:
            res.append(bool(d.verify(idx=i, dnsfunc=dnsfunc)))
        except dkim.ValidationError:  # a body hash mismatch raises
            res.append(False)
    return res


def tamper(raw, header):
    """Insert a header field right after the two signatures (any place in
    the header section is the same to a verifier of a bottom-up h=)."""
    lines = raw.split(b"\r\n")
    sig = 0
    for i, line in enumerate(lines):
        if line.lower().startswith(b"dkim-signature:"):
            sig += 1
        elif sig == 2 and not line.startswith((b" ", b"\t")):
            return b"\r\n".join(lines[:i] + [header] + lines[i:])
    raise AssertionError("no signatures")


def main():
    writer = sys.argv[1]
    with tempfile.TemporaryDirectory() as d:
        subprocess.run([writer, d], check=True)
        records = {}
        for sel, f in (("rsa", "rsa.txt"), ("ed", "ed25519.txt")):
            with open(f"{d}/{f}", "rb") as fh:
                records[f"{sel}._domainkey.example.com"] = fh.read()
        for case in CASES:
            with open(f"{d}/{case}.eml", "rb") as fh:
                raw = fh.read()
            res = verify_all(raw, records)
            if res != [True, True]:
                fail(f"{case}: verify {res}")
            # A trace header on top is fine: nothing signs Received.
            if verify_all(b"Received: from x by y; now\r\n" + raw, records) != [True, True]:
                fail(f"{case}: a Received on top broke it")
            for added in (b"Subject: replayed", b"From: evil@example.net",
                          b"To: more@example.net", b"Date: Tue, 1 Dec 2026 00:00:00 +0000"):
                res = verify_all(tamper(raw, added), records)
                if res != [False, False]:
                    fail(f"{case}: {added!r} added after signing still verifies: {res}")
            body = raw.replace(b"\r\n\r\n", b"\r\n\r\nX", 1)
            if verify_all(body, records) != [False, False]:
                fail(f"{case}: a changed body still verifies")
            print(f"ok {case}")
    sys.exit(1 if failed else 0)


main()
