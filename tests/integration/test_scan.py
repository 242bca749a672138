"""Content scanning at end of DATA (issue 4) with the real scanners from Debian.

clamd (clamav-daemon) runs as a process the test starts, in the foreground, with its
own clamd.conf: DatabaseDirectory is a temporary folder holding one signature file the
test writes (sluice-test.ndb: the EICAR test string as a body signature, so no
freshclam download is needed), TCPSocket on a free loopback port, and for one test a
unix socket as well.  rspamd runs with its own configuration folder: one normal worker
on a free loopback port, no redis, no stock rules, a small TLD list so it starts in
about a second, and a Lua rule (rules.lua) that sets rspamd's action from marker
strings in the message (SLUICE-TEST-REJECT, -SOFT, -HEADER, -GREYLIST), so every
verdict is deterministic.  Mail is submitted with smtplib on 587 (STARTTLS + AUTH).

A scanner that is killed, or stopped with SIGSTOP (it accepts connections but never
answers: a slow scanner), is always one started for that test alone; every process is
stopped by its PID (rspamd by its process group, which the test created).
"""
import json
import os
import re
import shutil
import signal
import smtplib
import socket
import subprocess
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

import pytest

from sluicelib import ACME_PW, Raw, client_tls_context, free_port, message, token, wait_for

pytestmark = pytest.mark.timeout(120)

EICAR = rb"X5O!P%@AP[4\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*"
SIGNATURE = "Sluice.Test.EICAR"
SEARCH_PATH = os.environ.get("PATH", "") + os.pathsep + "/usr/sbin:/usr/bin:/sbin:/bin"
START_TIMEOUT = 60

RSPAMD_RULES = r"""
-- sluice tests: rspamd's action from a marker string in the message
local markers = {
  {'SLUICE-TEST-REJECT', 'reject', 'sluice test marker: reject'},
  {'SLUICE-TEST-SOFT', 'soft reject', 'sluice test marker: soft reject'},
  {'SLUICE-TEST-HEADER', 'add header', 'sluice test marker: add header'},
  {'SLUICE-TEST-GREYLIST', 'greylist', 'sluice test marker: greylist'},
}
rspamd_config:register_symbol({
  name = 'SLUICE_TEST_MARKER',
  score = 0.0,
  callback = function(task)
    local content = tostring(task:get_content())
    for _, m in ipairs(markers) do
      if content:find(m[1], 1, true) then
        task:set_pre_result(m[2], m[3])
        return true, m[1]
      end
    end
    return false
  end,
})
"""


def _tool(name):
    path = shutil.which(name, path=SEARCH_PATH)
    if path is None:
        pytest.fail(f"{name} not found: install it with scripts/deps.sh "
                    f"(clamav-daemon, rspamd)", pytrace=False)
    return path


def _stop(proc, group=False):
    if proc is None or proc.poll() is not None:
        return
    try:
        if group:
            os.killpg(proc.pid, signal.SIGCONT)
            os.killpg(proc.pid, signal.SIGTERM)
        else:
            os.kill(proc.pid, signal.SIGCONT)
            os.kill(proc.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        if group:
            os.killpg(proc.pid, signal.SIGKILL)
        else:
            proc.kill()
        proc.wait(timeout=10)


class Clamd:
    """A private clamd: its own clamd.conf, signature folder, log and sockets."""

    def __init__(self, unix=False):
        self.root = Path(tempfile.mkdtemp(prefix="sluice-clamd-"))
        os.chmod(self.root, 0o755)  # sluiced (nobody) reaches the unix socket
        (self.root / "db").mkdir()
        # an .ndb body signature: any file holding the EICAR string
        (self.root / "db" / "sluice-test.ndb").write_text(
            f"{SIGNATURE}:0:*:{EICAR.hex()}\n")
        self.port = free_port()
        self.socket = self.root / "clamd.sock" if unix else None
        conf = [
            "Foreground yes",
            f"DatabaseDirectory {self.root / 'db'}",
            f"TCPSocket {self.port}",
            "TCPAddr 127.0.0.1",
            f"LogFile {self.root / 'clamd.log'}",
            "LogTime yes",
            "StreamMaxLength 10M",
        ]
        if self.socket:
            conf += [f"LocalSocket {self.socket}", "LocalSocketMode 666"]
        (self.root / "clamd.conf").write_text("\n".join(conf) + "\n")
        self.proc = None

    def start(self):
        out = open(self.root / "stdout.log", "ab")
        try:
            self.proc = subprocess.Popen([_tool("clamd"), "-c", str(self.root / "clamd.conf")],
                                         stdin=subprocess.DEVNULL, stdout=out, stderr=out,
                                         start_new_session=True)
        finally:
            out.close()
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            if self.proc.poll() is not None:
                pytest.fail(f"clamd exited at start (rc={self.proc.returncode}):\n"
                            f"{self.log()}", pytrace=False)
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=2) as s:
                    s.sendall(b"zPING\0")
                    if s.recv(16).startswith(b"PONG"):
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                self.stop()
                pytest.fail(f"clamd did not answer PING within {START_TIMEOUT}s:\n"
                            f"{self.log()}", pytrace=False)
            time.sleep(0.1)
        return self

    def log(self):
        text = ""
        for name in ("stdout.log", "clamd.log"):
            p = self.root / name
            if p.exists():
                text += p.read_text(errors="replace")[-4000:]
        return text

    def stop(self):
        _stop(self.proc)

    def cleanup(self):
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)


class Rspamd:
    """A private rspamd: one normal worker on loopback, the marker rule only."""

    def __init__(self, unix=False):
        self.root = Path(tempfile.mkdtemp(prefix="sluice-rspamd-"))
        os.chmod(self.root, 0o755)  # sluiced (nobody) reaches the unix socket
        (self.root / "db").mkdir()
        self.socket = self.root / "rspamd.sock" if unix else None
        unix_bind = f'bind_socket = "{self.socket} mode=0666";' if unix else ""
        self.port = free_port()
        (self.root / "rules.lua").write_text(RSPAMD_RULES)
        # the public suffix list takes ~15 s to compile; these few names do here
        (self.root / "tld.dat").write_text("com\norg\nnet\nexample\ntest\ninvalid\n")
        (self.root / "rspamd.conf").write_text(f"""
lua = "{self.root / 'rules.lua'}";
options {{
  pidfile = "{self.root / 'rspamd.pid'}";
  dbdir = "{self.root / 'db'}";
  hs_cache_dir = "{self.root / 'db'}";
  url_tld = "{self.root / 'tld.dat'}";
  filters = "";
  dns {{ nameserver = ["127.0.0.1:1"]; timeout = 1s; retransmits = 1; }}
}}
logging {{ type = "file"; filename = "{self.root / 'rspamd.log'}"; level = "info"; }}
actions {{ reject = 15; add_header = 6; greylist = 4; }}
worker "normal" {{ bind_socket = "127.0.0.1:{self.port}"; {unix_bind} count = 1; }}
""")
        self.proc = None

    @property
    def url(self):
        return f"http://127.0.0.1:{self.port}"

    def start(self):
        cmd = [_tool("rspamd"), "-f", "-c", str(self.root / "rspamd.conf")]
        if os.geteuid() == 0:
            cmd += ["-u", "root", "-g", "root"]  # it refuses root workers otherwise
        out = open(self.root / "stdout.log", "ab")
        try:
            self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=out, stderr=out,
                                         start_new_session=True)
        finally:
            out.close()
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            if self.proc.poll() is not None:
                pytest.fail(f"rspamd exited at start (rc={self.proc.returncode}):\n"
                            f"{self.log()}", pytrace=False)
            try:
                with urllib.request.urlopen(self.url + "/ping", timeout=2) as r:
                    if r.read().strip() == b"pong":
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                self.stop()
                pytest.fail(f"rspamd did not answer /ping within {START_TIMEOUT}s:\n"
                            f"{self.log()}", pytrace=False)
            time.sleep(0.1)
        return self

    def log(self):
        text = ""
        for name in ("stdout.log", "rspamd.log"):
            p = self.root / name
            if p.exists():
                text += p.read_text(errors="replace")[-4000:]
        return text

    def stop(self):
        _stop(self.proc, group=True)

    def cleanup(self):
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)


@pytest.fixture(scope="module")
def clamd():
    c = Clamd().start()
    yield c
    c.cleanup()


@pytest.fixture(scope="module")
def rspamd():
    r = Rspamd().start()
    yield r
    r.cleanup()


@pytest.fixture
def private_clamd():
    made = []

    def make(**kw):
        c = Clamd(**kw).start()
        made.append(c)
        return c

    yield make
    for c in made:
        c.cleanup()


@pytest.fixture
def private_rspamd():
    made = []

    def make(**kw):
        r = Rspamd(**kw).start()
        made.append(r)
        return r

    yield make
    for r in made:
        r.cleanup()


def scan_config(clamd=None, rspamd=None, **keys):
    lines = []
    if clamd is not None:
        lines.append(f"scan_clamd = {clamd}")
    if rspamd is not None:
        lines.append(f"scan_rspamd = {rspamd}")
    lines += [f"{k} = {v}" for k, v in keys.items()]
    return "\n".join(lines) + "\n"


def submit(sl, msg, sender="alice@acme.example", rcpts=("bob@example.org",)):
    """(code, text) of the reply to the message, on 587 with STARTTLS and AUTH."""
    with smtplib.SMTP("127.0.0.1", sl.ports["submission"], local_hostname="client.sluice.test",
                      timeout=60) as c:
        c.starttls(context=client_tls_context())
        c.login("acme", ACME_PW)
        code, text = c.mail(sender)
        assert code == 250, text
        for r in rcpts:
            code, text = c.rcpt(r)
            assert code == 250, text
        code, text = c.data(msg)
        return code, text.decode(errors="replace")


def queued_id(text):
    assert "queued as" in text, text
    return text.rsplit(" ", 1)[1]


def stop_clean(sl, grace=10):
    """SIGTERM: sluiced exits 0 (under ASan: no leak, no bad access reported)."""
    rc = sl.stop(grace=grace)
    log = sl.log_text()
    assert rc == 0 and "Sanitizer" not in log and "runtime error" not in log, sl.log_tail(80)


def eicar_message(tok):
    """A multipart message with the EICAR test file attached (base64)."""
    import base64
    att = base64.encodebytes(EICAR).decode().replace("\n", "\r\n")
    return (f"From: alice@acme.example\r\nTo: bob@example.org\r\nSubject: {tok}\r\n"
            f"MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"b1\"\r\n\r\n"
            f"--b1\r\nContent-Type: text/plain\r\n\r\nSee the attachment, {tok}.\r\n"
            f"--b1\r\nContent-Type: application/octet-stream; name=\"eicar.com\"\r\n"
            f"Content-Transfer-Encoding: base64\r\n"
            f"Content-Disposition: attachment; filename=\"eicar.com\"\r\n\r\n"
            f"{att}--b1--\r\n").encode()


def marked(tok, marker):
    return message(tok, body_lines=[f"Hello {tok}.", f"{marker}", "Bye."])


def test_clean_mail_accepted_by_both(sluice_factory, clamd, rspamd):
    sl = sluice_factory(extra_global=scan_config(f"127.0.0.1:{clamd.port}", rspamd.url))
    tok = token()
    code, text = submit(sl, message(tok))
    assert code == 250, text
    qid = queued_id(text)
    assert sl.queue_show(qid)["held"] is False
    log = sl.log_text()
    assert "scan scanner=clamd outcome=clean" in log, log
    assert "scan scanner=rspamd outcome=clean" in log, log
    assert "scan verdict=accept reason=clean" in log, log
    stop_clean(sl)


def test_eicar_refused_naming_the_signature(sluice_factory, clamd, rspamd):
    sl = sluice_factory(extra_global=scan_config(f"127.0.0.1:{clamd.port}", rspamd.url))
    tok = token()
    code, text = submit(sl, eicar_message(tok))
    assert code == 550, text
    assert text.startswith("5.7.1"), text
    assert SIGNATURE in text and "clamd" in text, text
    assert sl.find_token(tok) == [], "a refused message must not be queued"
    log = sl.log_text()
    assert f'outcome=virus name="{SIGNATURE}' in log, log
    assert re.search(r"queue=[0-9a-f]{16} session=[0-9a-f]+ data refused .* code=550 "
                     r"reason=scan-virus", log), log
    # the session goes on: the next message is clean and accepted
    code, text = submit(sl, message(token()))
    assert code == 250, text
    stop_clean(sl)


def test_eicar_inline_over_unix_socket(sluice_factory, private_clamd):
    c = private_clamd(unix=True)
    sl = sluice_factory(extra_global=scan_config(f"unix:{c.socket}"))
    tok = token()
    code, text = submit(sl, message(tok, body_lines=["x", EICAR.decode(), "y"]))
    assert code == 550 and SIGNATURE in text, text
    code, text = submit(sl, message(token()))
    assert code == 250, text


def test_rspamd_reject_and_soft_reject(sluice_factory, clamd, rspamd):
    sl = sluice_factory(extra_global=scan_config(f"127.0.0.1:{clamd.port}", rspamd.url))
    tok = token()
    code, text = submit(sl, marked(tok, "SLUICE-TEST-REJECT"))
    assert code == 550 and text.startswith("5.7.1"), text
    assert "rspamd: reject" in text and "sluice test marker: reject" in text, text
    code, text = submit(sl, marked(tok, "SLUICE-TEST-SOFT"))
    assert code == 451 and text.startswith("4.7.1"), text
    assert "soft reject" in text, text
    assert sl.find_token(tok) == []
    # greylist means nothing for outbound mail: accepted by default
    code, text = submit(sl, marked(token(), "SLUICE-TEST-GREYLIST"))
    assert code == 250, text
    stop_clean(sl)


def test_hold_verdicts_queue_the_message_held(sluice_factory, clamd, rspamd):
    sl = sluice_factory(extra_global=scan_config(
        f"127.0.0.1:{clamd.port}", rspamd.url, scan_rspamd_add_header="hold",
        scan_clamd_virus="hold"))
    tok = token()
    code, text = submit(sl, marked(tok, "SLUICE-TEST-HEADER"))
    assert code == 250, text
    qid = queued_id(text)
    show = sl.queue_show(qid)
    assert show["held"] is True, show
    listed = [m for m in sl.queue_list() if m["id"] == qid]
    assert listed and listed[0]["held"], listed
    # the scanners were told the queue id the message got
    assert f"queue={qid} scan verdict=hold reason=add-header by=rspamd" in sl.log_text()
    # the operator releases it
    sl.cli("queue", "release", qid)
    assert wait_for(lambda: sl.queue_show(qid)["held"] is False, timeout=10)
    # a virus on hold too, when configured so; the operator deletes it
    code, text = submit(sl, eicar_message(token()))
    assert code == 250, text
    qid2 = queued_id(text)
    assert sl.queue_show(qid2)["held"] is True
    sl.cli("queue", "delete", qid2)
    assert wait_for(lambda: qid2 not in sl.queue_ids(), timeout=10)
    stop_clean(sl)


@pytest.mark.parametrize("mode", ["open", "closed"])
def test_clamd_killed(sluice_factory, private_clamd, rspamd, mode):
    c = private_clamd()
    sl = sluice_factory(extra_global=scan_config(f"127.0.0.1:{c.port}", rspamd.url,
                                                 scan_fail=mode))
    code, text = submit(sl, message(token()))
    assert code == 250, text
    c.stop()
    for _ in range(2):  # logged each time
        tok = token()
        code, text = submit(sl, message(tok))
        if mode == "open":
            assert code == 250, text
        else:
            assert code == 451 and text.startswith("4.3.0"), text
            assert "clamd" in text, text
            assert sl.find_token(tok) == []
    log = sl.log_text()
    assert log.count(f"scan scanner=clamd outcome=failed reason=\"connect: Connection "
                     f"refused\" fail={mode}") == 2, log
    # rspamd's verdict still counts when clamd is down
    code, text = submit(sl, marked(token(), "SLUICE-TEST-REJECT"))
    assert code == 550, text
    stop_clean(sl)


def test_slow_clamd_hits_the_timeout(sluice_factory, private_clamd):
    c = private_clamd()
    sl = sluice_factory(extra_global=scan_config(f"127.0.0.1:{c.port}", scan_clamd_timeout="3s",
                                                 scan_fail="closed"))
    os.kill(c.proc.pid, signal.SIGSTOP)  # the kernel still accepts; clamd never answers
    result = {}

    def client():
        t0 = time.monotonic()
        result["reply"] = submit(sl, message(token()))
        result["elapsed"] = time.monotonic() - t0

    t = threading.Thread(target=client)
    try:
        t.start()
        assert wait_for(lambda: "auth ok" in sl.log_text(), timeout=20)
        time.sleep(0.5)
        # the loop is not blocked by the waiting scan: another client is served at once
        t0 = time.monotonic()
        with Raw(sl.ports["submission"], read_greeting=True) as other:
            assert other.greeting.code == 220
            assert other.ehlo().code == 250
        assert time.monotonic() - t0 < 1.5
        assert "reply" not in result, "the scan did not wait"
        t.join(timeout=60)
    finally:
        os.kill(c.proc.pid, signal.SIGCONT)
    code, text = result["reply"]
    assert code == 451 and text.startswith("4.3.0"), text
    assert 2.8 <= result["elapsed"] < 15, result
    assert 'outcome=failed reason="timeout after 3s" fail=closed' in sl.log_text()
    stop_clean(sl)


def test_slow_rspamd_hits_the_timeout_fail_open(sluice_factory, private_rspamd):
    r = private_rspamd()
    sl = sluice_factory(extra_global=scan_config(rspamd=r.url, scan_rspamd_timeout="2s",
                                                 scan_fail="open"))
    os.killpg(r.proc.pid, signal.SIGSTOP)
    try:
        t0 = time.monotonic()
        code, text = submit(sl, marked(token(), "SLUICE-TEST-REJECT"))
        elapsed = time.monotonic() - t0
    finally:
        os.killpg(r.proc.pid, signal.SIGCONT)
    assert code == 250, text
    assert 1.8 <= elapsed < 15, elapsed
    log = sl.log_text()
    assert 'scan scanner=rspamd outcome=failed reason="timeout after 2s" fail=open' in log
    assert "scan verdict=accept reason=fail-open" in log
    stop_clean(sl)


def test_larger_than_scan_max_size_not_scanned(sluice_factory, clamd):
    sl = sluice_factory(extra_global=scan_config(f"127.0.0.1:{clamd.port}", scan_max_size="2k"))
    tok = token()
    big = message(tok, body_lines=[EICAR.decode()] + ["x" * 70] * 60)
    code, text = submit(sl, big)
    assert code == 250, text
    assert "scan scanner=clamd outcome=skipped reason=size" in sl.log_text()
    code, text = submit(sl, message(tok, body_lines=[EICAR.decode()]))
    assert code == 550, text
    stop_clean(sl)


def test_shutdown_with_a_scan_in_flight(sluice_factory, private_clamd):
    """SIGTERM while clamd holds a message: sluiced waits at most its 10 s for sessions,
    then cancels the scan and exits cleanly; the client gets no 250."""
    c = private_clamd()
    sl = sluice_factory(extra_global=scan_config(f"127.0.0.1:{c.port}", scan_clamd_timeout="60s"))
    os.kill(c.proc.pid, signal.SIGSTOP)
    tok = token()
    result = {}

    def client():
        try:
            result["reply"] = submit(sl, message(tok))
        except (smtplib.SMTPException, OSError) as e:
            result["error"] = e

    t = threading.Thread(target=client)
    t.start()
    try:
        assert wait_for(lambda: "auth ok" in sl.log_text(), timeout=20)
        time.sleep(2)  # DATA sent: the scan waits on clamd
        assert "reply" not in result and "scan verdict" not in sl.log_text()
        t0 = time.monotonic()
        stop_clean(sl, grace=40)  # sluiced gives sessions 10 s
        assert time.monotonic() - t0 < 30
    finally:
        os.kill(c.proc.pid, signal.SIGCONT)
        t.join(timeout=60)
    assert "reply" not in result or result["reply"][0] != 250, result


def test_rspamd_over_unix_socket(sluice_factory, private_rspamd):
    r = private_rspamd(unix=True)
    assert r.socket.exists(), r.log()
    sl = sluice_factory(extra_global=scan_config(rspamd=f"unix:{r.socket}"))
    code, text = submit(sl, marked(token(), "SLUICE-TEST-REJECT"))
    assert code == 550 and "rspamd: reject" in text, text
    code, text = submit(sl, message(token()))
    assert code == 250, text
    stop_clean(sl)


def test_viruses_are_a_containment_signal(sluice_factory, clamd):
    """Each virus a login sends counts for containment (2 points; 3 throttle): the first
    is refused and nothing more; after the second the login is throttled (`sluice contain
    list` says why): one message a minute, so after a clean one its next MAIL gets
    451 4.7.1."""
    sl = sluice_factory(extra_global=scan_config(f"127.0.0.1:{clamd.port}"))
    code, text = submit(sl, eicar_message(token()))
    assert code == 550, text
    assert "contain user=" not in sl.log_text()
    code, text = submit(sl, eicar_message(token()))
    assert code == 550, text
    assert 'contain user="acme" level=throttle reason="scanner verdict: virus"' in \
        sl.log_text(), sl.log_tail(20)
    listed = json.loads(sl.cli("contain", "list", "--json").stdout)
    assert [(x["name"], x["level"]) for x in listed] == [("acme", "throttle")], listed
    code, text = submit(sl, message(token()))
    assert code == 250, text
    with smtplib.SMTP("127.0.0.1", sl.ports["submission"], timeout=60) as c:
        c.starttls(context=client_tls_context())
        c.login("acme", ACME_PW)
        code, text = c.mail("alice@acme.example")
        assert code == 451 and b"4.7.1" in text and b"unusual activity" in text, text
    stop_clean(sl)
