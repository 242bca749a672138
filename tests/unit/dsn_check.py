#!/usr/bin/python3
"""Parse the DSNs dsn_write prints with Python's email package and check
the report structure (RFC 6522 multipart/report, RFC 3464
message/delivery-status, text/rfc822-headers), independently of the C
test's own parser.  Usage: dsn_check.py PATH-TO-dsn_write"""
import email
import email.policy
import email.utils
import re
import subprocess
import sys

STATUS = re.compile(r"^[245]\.\d{1,3}\.\d{1,3}$")


def fail(scenario, what):
    print(f"FAIL {scenario}: {what}")
    sys.exit(1)


def check(writer, scenario):
    raw = subprocess.run([writer, scenario], check=True, capture_output=True).stdout

    def ok(cond, what):
        if not cond:
            fail(scenario, what)

    # Wire format: CRLF only, no line over 998 octets.
    ok(raw.endswith(b"\r\n"), "ends with CRLF")
    ok(b"\r\n".join(raw.split(b"\r\n")).count(b"\n") == raw.count(b"\r\n"), "bare LF")
    ok(raw.replace(b"\r\n", b"").find(b"\r") < 0, "bare CR")
    ok(all(len(line) <= 998 for line in raw.split(b"\r\n")), "line over 998")
    ok(b"SECRET-BODY-LINE" not in raw, "the original body came back")

    for policy in (email.policy.default, email.policy.compat32):
        msg = email.message_from_bytes(raw, policy=policy)
        ok(not msg.defects, f"defects {msg.defects}")
        ok(msg.get_content_type() == "multipart/report", "multipart/report")
        ok(msg.get_param("report-type") == "delivery-status", "report-type")
        ok(str(msg["From"]) == "Mail Delivery System <MAILER-DAEMON@mail.sluice.example>",
           f"From {msg['From']}")
        ok(str(msg["To"]) == "<alice@tenant.example>" or
           str(msg["To"]) == "alice@tenant.example", f"To {msg['To']}")
        ok(email.utils.parsedate_to_datetime(str(msg["Date"])).timestamp() == 1764460800,
           "Date")
        ok(re.match(r"^<[^<>@\s]+@mail\.sluice\.example>$", str(msg["Message-ID"])),
           f"Message-ID {msg['Message-ID']}")
        ok(str(msg["Auto-Submitted"]) == "auto-replied", "Auto-Submitted")
        delayed = scenario == "delayed"
        ok(str(msg["Subject"]) ==
           ("Delivery delayed" if delayed else "Undelivered Mail Returned to Sender"),
           "Subject")

        parts = msg.get_payload()
        ok(isinstance(parts, list) and len(parts) == 3, "three parts")
        ok([p.get_content_type() for p in parts] ==
           ["text/plain", "message/delivery-status", "text/rfc822-headers"],
           f"part types {[p.get_content_type() for p in parts]}")
        for p in parts:
            ok(not p.defects, f"part defects {p.defects}")

        text = parts[0].get_payload(decode=True).decode(parts[0].get_content_charset())
        ok("<bob@remote.example>" in text or "j\u00f6rg@b\u00fccher.example" in text,
           "text names the recipient")

        # message/delivery-status: a per-message block, then one block per
        # recipient (Python gives a list of header blocks).
        blocks = parts[1].get_payload()
        nrcpt = 1 if scenario in ("delayed", "utf8") else 2
        ok(len(blocks) == 1 + nrcpt, f"{len(blocks)} status blocks")
        per_msg = blocks[0]
        ok(per_msg["Reporting-MTA"] == "dns; mail.sluice.example", "Reporting-MTA")
        ok(per_msg["Original-Envelope-Id"] == "QQ314159", "Original-Envelope-Id")
        ok(email.utils.parsedate_to_datetime(per_msg["Arrival-Date"]).timestamp() ==
           1764460800 - 3600, "Arrival-Date")
        for b in blocks[1:]:
            ok(b["Final-Recipient"] is not None, "Final-Recipient")
            ok(b["Action"] == ("delayed" if delayed else "failed"), f"Action {b['Action']}")
            ok(STATUS.match(b["Status"]), f"Status {b['Status']}")
            ok(b["Status"][0] == ("4" if delayed else "5"), "Status class")
            ok(b["Last-Attempt-Date"] is not None, "Last-Attempt-Date")
        r0 = blocks[1]
        if scenario == "utf8":
            ok(r0["Final-Recipient"] == "utf-8; j\\x{F6}rg@b\\x{FC}cher.example",
               f"Final-Recipient {r0['Final-Recipient']}")
        else:
            ok(r0["Final-Recipient"] == "rfc822; bob@remote.example", "Final-Recipient")
            ok(r0["Original-Recipient"] == "rfc822;bob@remote.example", "Original-Recipient")
        ok(r0["Remote-MTA"] == "dns; mx.remote.example", f"Remote-MTA {r0['Remote-MTA']}")
        diag = " ".join(str(r0["Diagnostic-Code"]).split())
        ok(diag.startswith("smtp; "), f"Diagnostic-Code {diag}")
        if scenario == "hostile":
            ok(diag == "smtp; 550-5.7.1 first 550 5.7.1 second Bcc: victim@x.example "
                       "--fake--", f"hostile {diag}")
            ok(msg["Bcc"] is None and all(p["Bcc"] is None for p in parts), "Bcc injected")
        if scenario == "long":
            ok(diag.endswith("[...]"), "long reply cut visibly")
        if delayed:
            ok(r0["Will-Retry-Until"] is not None, "Will-Retry-Until")
        if nrcpt == 2:
            r1 = blocks[2]
            ok(r1["Status"] == "5.1.2", "second Status")
            ok(r1["Remote-MTA"] is None, "no Remote-MTA when unknown")
            ok(str(r1["Diagnostic-Code"]).startswith("X-Sluice; "), "own diagnostic")

        # text/rfc822-headers: the original's header, parsed as one.
        hdr_bytes = parts[2].get_payload(decode=True)
        orig = email.message_from_bytes(hdr_bytes, policy=email.policy.default)
        if scenario == "8bit":
            ok(parts[2]["Content-Transfer-Encoding"] == "8bit", "8bit CTE")
            ok("Gr\u00fc\u00dfe aus M\u00fcnchen".encode() in hdr_bytes, "8-bit kept")
        else:
            ok(str(orig["Subject"]) == "quarterly report", f"Subject {orig['Subject']}")
            ok(str(orig["Message-ID"]) == "<abc@tenant.example>", "original Message-ID")
        ok(orig.get_payload() in ("", None), "no body in the header part")


def main():
    writer = sys.argv[1]
    scenarios = ["failed", "delayed", "8bit", "utf8", "hostile", "long"]
    for s in scenarios:
        check(writer, s)
    print(f"ok {len(scenarios)} DSNs parsed")


if __name__ == "__main__":
    main()
