"""Helpers for the sluice integration tests: daemon control, CLI, raw SMTP client.

Every loop here is bounded in count and in time; every socket has a timeout.
"""
import base64
import json
import os
import re
import secrets
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

HOSTNAME = "mx.sluice.test"
DAEMON_USER = "nobody"

ACME_PW = "acme-Secret-123"
OTHER_PW = "other-Secret-456"
BRUTE_PW = "brute-Secret-789"
SUSP_PW = "susp-Secret-012"

TRUSTED_SRC = "127.0.0.2"  # inside acme's trusted network 127.0.0.2/32

QUEUED_RE = re.compile(rb"queued as ([0-9A-Fa-f]{16})")


def find_binaries():
    build = Path(os.environ.get("SLUICE_BUILD", "build"))
    if not build.is_absolute():
        build = REPO / build
    daemon = build / "src" / "cmd" / "sluiced"
    cli = build / "src" / "cmd" / "sluice"
    missing = [str(p) for p in (daemon, cli) if not (p.is_file() and os.access(p, os.X_OK))]
    if missing:
        pytest.fail("sluice binaries not found: " + ", ".join(missing) +
                    f" (set SLUICE_BUILD to the Meson build folder; now {build}; "
                    "build with: meson setup BUILD && ninja -C BUILD)", pytrace=False)
    return {"sluiced": str(daemon), "sluice": str(cli)}


_picked = set()


def _port_free(family, host, port):
    s = socket.socket(family, socket.SOCK_STREAM)
    try:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind((host, port))
        return True
    except OSError:
        return False
    finally:
        s.close()


def free_port(ipv6_too=False):
    """A TCP port free on 127.0.0.1 (and on ::1 when asked); at most 200 tries."""
    for _ in range(200):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        finally:
            s.close()
        if port in _picked:
            continue
        if ipv6_too and not _port_free(socket.AF_INET6, "::1", port):
            continue
        _picked.add(port)
        return port
    raise RuntimeError("no free loopback port found in 200 tries")


def have_ipv6():
    return _port_free(socket.AF_INET6, "::1", 0)


class CliError(AssertionError):
    pass


class Sluice:
    """One sluiced instance with its own folder, configuration and tenants."""

    def __init__(self, binaries, root, ports, ipv6):
        self.bin = binaries
        self.root = Path(root)
        self.ports = ports
        self.ipv6 = ipv6
        self.conf = self.root / "sluice.conf"
        self.log_path = self.root / "sluiced.log"
        self.proc = None
        self._raw_cache = {}
        self.starts = 0

    # ---- creation ---------------------------------------------------------

    @classmethod
    def create(cls, binaries, label="t", max_errors=5, extra_global="", extra_sections="",
               listener_extra=""):
        label = re.sub(r"[^A-Za-z0-9_.-]", "_", label)
        root = tempfile.mkdtemp(prefix=f"sluice-it-{label}-")
        os.chmod(root, 0o755)  # sluiced runs as nobody after start
        ipv6 = have_ipv6()
        ports = {
            "submission": free_port(ipv6_too=ipv6),
            "submissions": free_port(),
            "alt": free_port(),
            "relay": free_port(),
        }
        d = cls(binaries, root, ports, ipv6)
        d.write_config(max_errors=max_errors, extra_global=extra_global,
                       extra_sections=extra_sections, listener_extra=listener_extra)
        d.provision()
        return d

    def write_config(self, max_errors=5, extra_global="", extra_sections="", listener_extra=""):
        """The configuration; delivery is off unless extra_global turns it on (the
        submission tests must never send to a real MX).  listener_extra: lines for
        every listener but the implicit-TLS one (e.g. "greet_pause = 400ms")."""
        if not re.search(r"^\s*delivery\s*=", extra_global, re.M):
            extra_global = "delivery = off\n" + extra_global
        p = self.ports
        sub_listen = f"127.0.0.1:{p['submission']}"
        if self.ipv6:
            sub_listen += f" [::1]:{p['submission']}"
        text = f"""# sluice integration test configuration (generated)
hostname = {HOSTNAME}
user = {DAEMON_USER}
store = sqlite:state/sluice.db
spool_dir = state/spool
tls_cert = state/tls/cert.pem
tls_key = state/tls/key.pem
control_socket = state/sluiced.sock
max_message_size = 1m
max_recipients = 5
max_connections_per_ip = 20
max_errors = {max_errors}
timeout_command = 300
auth_fail_limit_ip = 10
auth_fail_limit_user = 3
auth_fail_window = 600
{extra_global}

[listener submission]
listen = {sub_listen}
tls = starttls
mode = submission
{listener_extra}

[listener submissions]
listen = 127.0.0.1:{p['submissions']}
tls = implicit
mode = submission

[listener alt-submission]
listen = 127.0.0.1:{p['alt']}
tls = starttls
mode = submission
{listener_extra}

[listener relay]
listen = 127.0.0.1:{p['relay']}
tls = starttls
mode = relay
{listener_extra}

{extra_sections}
"""
        self.conf.write_text(text)
        (self.root / "state").mkdir(exist_ok=True)
        os.chmod(self.root / "state", 0o755)

    def provision(self):
        self.cli("tenant", "add", "acme", "--password-stdin", input=ACME_PW + "\n")
        self.cli("domain", "add", "acme", "acme.example", "--verified")
        self.cli("domain", "add", "acme", "unverified.example")
        self.cli("network", "add", "acme", f"{TRUSTED_SRC}/32")
        self.cli("tenant", "add", "other", "--password-stdin", input=OTHER_PW + "\n")
        self.cli("domain", "add", "other", "other.example", "--verified")
        self.cli("tenant", "add", "brute", "--password-stdin", input=BRUTE_PW + "\n")
        self.cli("domain", "add", "brute", "brute.example", "--verified")
        self.cli("tenant", "add", "susp", "--password-stdin", input=SUSP_PW + "\n")
        self.cli("domain", "add", "susp", "susp.example", "--verified")

    # ---- CLI ----------------------------------------------------------------

    def cli(self, *args, input=None, check=True, timeout=60):
        cmd = [self.bin["sluice"], "-c", str(self.conf), *args]
        data = input.encode() if isinstance(input, str) else input
        r = subprocess.run(cmd, input=data, capture_output=True, timeout=timeout,
                           cwd=str(self.root))
        if check and r.returncode != 0:
            raise CliError(f"`{' '.join(cmd)}` exited {r.returncode}\nstdout: "
                           f"{r.stdout.decode(errors='replace')}\nstderr: "
                           f"{r.stderr.decode(errors='replace')}")
        return r

    def queue_list(self):
        out = self.cli("queue", "list", "--json").stdout
        data = json.loads(out.decode() or "[]")
        if isinstance(data, dict):  # tolerate {"messages": [...]}
            for v in data.values():
                if isinstance(v, list):
                    return v
            return []
        return data

    def queue_ids(self):
        return [m["id"] for m in self.queue_list()]

    def queue_show(self, qid):
        return json.loads(self.cli("queue", "show", qid, "--json").stdout.decode())

    def queue_raw(self, qid):
        if qid not in self._raw_cache:
            self._raw_cache[qid] = self.cli("queue", "show", qid, "--raw").stdout
        return self._raw_cache[qid]

    def find_token(self, token):
        """Queue ids whose stored message contains token (bytes or str)."""
        if isinstance(token, str):
            token = token.encode()
        return [qid for qid in self.queue_ids() if token in self.queue_raw(qid)]

    # ---- daemon -------------------------------------------------------------

    def addresses(self):
        a = [("127.0.0.1", port) for port in self.ports.values()]
        if self.ipv6:
            a.append(("::1", self.ports["submission"]))
        return a

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def start(self, timeout=30):
        assert not self.running()
        log = open(self.log_path, "ab")
        try:
            self.proc = subprocess.Popen([self.bin["sluiced"], "-c", str(self.conf)],
                                         stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                         cwd=str(self.root), start_new_session=True)
        finally:
            log.close()
        self.starts += 1
        deadline = time.monotonic() + timeout
        pending = list(self.addresses())
        while pending:
            if self.proc.poll() is not None:
                pytest.fail(f"sluiced exited at start (rc={self.proc.returncode}); log:\n"
                            f"{self.log_tail(80)}", pytrace=False)
            if time.monotonic() > deadline:
                self.stop()
                pytest.fail(f"sluiced did not listen on {pending} within {timeout}s; log:\n"
                            f"{self.log_tail(80)}", pytrace=False)
            host, port = pending[0]
            try:
                socket.create_connection((host, port), timeout=0.5).close()
                pending.pop(0)
            except OSError:
                time.sleep(0.05)
        return self

    def stop(self, grace=10):
        """SIGTERM, then SIGKILL after `grace` seconds.  Returns the exit status."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            try:
                os.kill(self.proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                self.proc.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=10)
        return self.proc.returncode

    def wait_exit(self, timeout):
        """The exit status if sluiced ends within timeout, else None."""
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None

    def kill9(self):
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)

    def cleanup(self):
        if not self.running():
            shutil.rmtree(self.root, ignore_errors=True)

    # ---- log ----------------------------------------------------------------

    def log_text(self):
        try:
            return self.log_path.read_bytes().decode(errors="replace")
        except FileNotFoundError:
            return ""

    def log_size(self):
        try:
            return self.log_path.stat().st_size
        except FileNotFoundError:
            return 0

    def log_since(self, offset):
        try:
            with open(self.log_path, "rb") as f:
                f.seek(offset)
                return f.read().decode(errors="replace")
        except FileNotFoundError:
            return ""

    def log_tail(self, n=40):
        return "\n".join(self.log_text().splitlines()[-n:])


# ---- TLS ----------------------------------------------------------------------


def client_tls_context():
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE  # sluiced makes a self-signed certificate
    return ctx


# ---- raw SMTP client ------------------------------------------------------------


class Reply:
    def __init__(self, code, lines, raw):
        self.code = code
        self.lines = lines  # text after "NNN-" / "NNN "
        self.raw = raw

    @property
    def text(self):
        return " | ".join(self.lines)

    @property
    def enhanced(self):
        parts = self.lines[-1].split(" ", 1) if self.lines else [""]
        return parts[0] if re.fullmatch(r"[245]\.\d{1,3}\.\d{1,3}", parts[0]) else ""

    def __repr__(self):
        return repr(self.raw)

    def startswith(self, code, enhanced=None):
        return self.code == code and (enhanced is None or self.enhanced == enhanced)


class Closed(Exception):
    """The server closed the connection (before a complete reply)."""


class Raw:
    """A byte-exact SMTP client over a plain or TLS socket, with a transcript."""

    MAX_BUF = 4 << 20

    def __init__(self, port, host="127.0.0.1", source=None, tls=False, timeout=10.0,
                 read_greeting=False):
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.timeout = timeout
        self.transcript = []
        self.buf = b""
        self.tls = False
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.settimeout(timeout)
        try:
            if source:
                sock.bind((source, 0))
            sock.connect((host, port))
            if tls:
                sock = client_tls_context().wrap_socket(sock)
                self.tls = True
        except BaseException:
            sock.close()
            raise
        self.sock = sock
        self.greeting = self.read_reply() if read_greeting else None

    # -- low level
    def send(self, data):
        if isinstance(data, str):
            data = data.encode()
        self.transcript.append(("C", data))
        self.sock.sendall(data)

    def _recv(self, timeout):
        self.sock.settimeout(timeout)
        try:
            data = self.sock.recv(65536)
        except (ssl.SSLEOFError, ssl.SSLZeroReturnError, ConnectionResetError,
                BrokenPipeError):
            data = b""
        if data:
            self.transcript.append(("S", data))
            self.buf += data
            if len(self.buf) > self.MAX_BUF:
                raise AssertionError("server sent more than 4 MiB without a complete reply")
        return data

    def read_reply(self, timeout=None):
        """One complete (multi-line) reply.  Raises Closed at EOF, socket.timeout on time."""
        deadline = time.monotonic() + (timeout or self.timeout)
        lines = []
        raw = b""
        while True:
            while b"\r\n" in self.buf or b"\n" in self.buf:
                i = self.buf.find(b"\n")
                line, self.buf = self.buf[:i + 1], self.buf[i + 1:]
                raw += line
                s = line.rstrip(b"\r\n").decode(errors="replace")
                m = re.match(r"^(\d{3})([ -]?)(.*)$", s)
                if not m:
                    raise AssertionError(f"malformed reply line {line!r}\n{self.transcript_text()}")
                lines.append(m.group(3))
                if m.group(2) != "-":
                    return Reply(int(m.group(1)), lines, raw)
            left = deadline - time.monotonic()
            if left <= 0:
                raise socket.timeout(f"no complete reply in time; have {raw + self.buf!r}")
            try:
                if not self._recv(left):
                    raise Closed(f"connection closed; partial reply {raw + self.buf!r}")
            except socket.timeout:
                raise socket.timeout(f"no complete reply in time; have {raw + self.buf!r}")

    def read_replies(self, n, timeout=None):
        return [self.read_reply(timeout) for _ in range(n)]

    def cmd(self, line, timeout=None):
        if isinstance(line, str):
            line = line.encode()
        self.send(line + b"\r\n")
        return self.read_reply(timeout)

    def pending(self, wait=0.5):
        """Bytes that arrive within `wait` seconds (beyond what is buffered)."""
        deadline = time.monotonic() + wait
        got = b""
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            try:
                d = self._recv(left)
            except socket.timeout:
                break
            if not d:
                break
            got += d
        return got

    def wait_closed(self, timeout=5.0):
        """True if the server closes the connection within timeout (data is buffered)."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            try:
                if not self._recv(left):
                    return True
            except socket.timeout:
                return False
            except OSError:
                return True

    # -- SMTP level
    def ehlo(self, name="client.sluice.test"):
        r = self.cmd("EHLO " + name)
        return r

    def starttls(self):
        r = self.cmd("STARTTLS")
        if r.code == 220:
            assert self.buf == b"", f"data after the STARTTLS reply, before TLS: {self.buf!r}"
            self.sock = client_tls_context().wrap_socket(self.sock)
            self.tls = True
            self.transcript.append(("C", b"<TLS handshake>\r\n"))
        return r

    def starttls_handshake_only(self):
        """The TLS handshake after a 220 to a STARTTLS already sent."""
        assert self.buf == b"", f"data after the STARTTLS reply, before TLS: {self.buf!r}"
        self.sock = client_tls_context().wrap_socket(self.sock)
        self.tls = True
        self.transcript.append(("C", b"<TLS handshake>\r\n"))

    def auth_plain(self, user, password):
        tok = base64.b64encode(b"\0" + user.encode() + b"\0" + password.encode()).decode()
        return self.cmd("AUTH PLAIN " + tok)

    def auth_login(self, user, password):
        r = self.cmd("AUTH LOGIN")
        if r.code != 334:
            return r
        r = self.cmd(base64.b64encode(user.encode()).decode())
        if r.code != 334:
            return r
        return self.cmd(base64.b64encode(password.encode()).decode())

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def transcript_text(self, limit=6000):
        out = []
        for who, data in self.transcript:
            for line in data.split(b"\n"):
                if line:
                    out.append(f"{who}: {line[:300]!r}")
        text = "\n".join(out)
        return text if len(text) <= limit else "...\n" + text[-limit:]

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def session(sl, kind, user="acme", password=ACME_PW, source=None, auth=True, host="127.0.0.1"):
    """A Raw client ready for MAIL: kind is submission|submissions|alt|relay|relay-tls."""
    if kind == "submissions":
        c = Raw(sl.ports["submissions"], host=host, source=source, tls=True, read_greeting=True)
    elif kind in ("relay", "relay-tls"):
        c = Raw(sl.ports["relay"], host=host, source=source or TRUSTED_SRC, read_greeting=True)
    else:
        c = Raw(sl.ports[kind], host=host, source=source, read_greeting=True)
    assert c.greeting.code == 220, c.transcript_text()
    r = c.ehlo()
    assert r.code == 250, c.transcript_text()
    if kind in ("submission", "alt", "relay-tls"):
        r = c.starttls()
        assert r.code == 220, c.transcript_text()
        r = c.ehlo()
        assert r.code == 250, c.transcript_text()
    if auth and kind not in ("relay", "relay-tls"):
        r = c.auth_plain(user, password)
        assert r.code == 235, c.transcript_text()
    return c


def token():
    return "tok" + secrets.token_hex(8)


def message(tok, sender="alice@acme.example", rcpt="bob@example.org", subject=None,
            body_lines=None, extra_headers=()):
    """A CRLF message carrying `tok` in the subject and body."""
    hdr = [f"From: {sender}", f"To: {rcpt}", f"Subject: {subject or 'test ' + tok}"]
    hdr += list(extra_headers)
    body = body_lines if body_lines is not None else [f"Hello, this is {tok}.", "Bye.", f"END {tok}"]
    return ("\r\n".join(hdr) + "\r\n\r\n" + "\r\n".join(body) + "\r\n").encode()


def split_message(raw):
    """(headers, body) of a stored message, line endings normalised to \\n."""
    text = raw.replace(b"\r\n", b"\n")
    head, sep, body = text.partition(b"\n\n")
    return head, body


def header_values(head, name):
    """Unfolded values of header `name` in a header block (bytes, \\n endings)."""
    out = []
    cur = None
    for line in head.split(b"\n"):
        if line[:1] in (b" ", b"\t"):  # a continuation, of this field or another
            if cur is not None:
                cur += b" " + line.strip()
            continue
        if cur is not None:
            out.append(cur)
            cur = None
        k, colon, v = line.partition(b":")
        if colon and k.strip().lower() == name.lower().encode():
            cur = v.strip()
    if cur is not None:
        out.append(cur)
    return out


def queued_id(text):
    if isinstance(text, str):
        text = text.encode()
    m = QUEUED_RE.search(text)
    return m.group(1).decode() if m else None


def wait_for(pred, timeout=10.0, interval=0.1):
    deadline = time.monotonic() + timeout
    while True:
        v = pred()
        if v or time.monotonic() > deadline:
            return v
        time.sleep(interval)
