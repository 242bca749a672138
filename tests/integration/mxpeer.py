"""A programmable remote MX (or upstream ESP) for the delivery tests, on aiosmtpd.

It runs in the test process, on a loopback address and port, and records every
transaction it accepted.  Behaviour is set per test:

    peer = MXPeer(host="127.0.0.1", port=free_port())
    peer.rcpt_reply["bad@x.sluice.test"] = "550 5.1.1 No such user"
    peer.data_reply = "451 4.3.0 Try later"          # every DATA
    peer.greylist = True                             # first try of a sender/rcpt: 451
    peer.close_at = "RCPT"                           # drop the connection at that stage
    peer.stall_at = ("DATA", 30)                     # sleep before answering
    peer.start(tls_cert=..., tls_key=..., require_tls=False, auth={"user": "pw"})
    ...
    peer.wait_messages(3, timeout=20)
    peer.stop()

Every wait is bounded in time.  Received messages are dicts: mail_from, rcpts,
data (bytes, as received: CRLF, dot-unstuffed), tls (TLS version or None),
auth (user name or None), peer (client address).
"""
import asyncio
import ssl
import threading
import time

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, LoginPassword


class _Handler:
    def __init__(self, peer):
        self.peer = peer

    async def _stage(self, server, stage):
        p = self.peer
        if p.stall_at and p.stall_at[0] == stage:
            await asyncio.sleep(p.stall_at[1])
        if p.close_at == stage:
            with p.lock:
                p.closed_mid += 1
            server.transport.close()
            return True
        return False

    async def handle_EHLO(self, server, session, envelope, hostname, responses):
        with self.peer.lock:
            self.peer.connections += 1
        session.host_name = hostname
        # aiosmtpd reads commands one line at a time, so pipelined commands
        # work; it only does not say so
        if not self.peer.no_pipelining:
            responses.insert(-1, "250-PIPELINING")
        if self.peer.size_limit is not None:
            responses = [r for r in responses if "SIZE" not in r]
            responses.insert(-1, f"250-SIZE {self.peer.size_limit}")
        return responses

    async def handle_MAIL(self, server, session, envelope, address, mail_options):
        if await self._stage(server, "MAIL"):
            return "421 4.4.2 closing"
        r = self.peer.mail_reply
        if r:
            return r
        envelope.mail_from = address  # "<>" for the null sender: aiosmtpd needs it non-empty
        envelope.mail_options.extend(mail_options)
        return "250 2.1.0 OK"

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        p = self.peer
        if await self._stage(server, "RCPT"):
            return "421 4.4.2 closing"
        r = p.rcpt_reply.get(address.lower())
        if r:
            return r
        if p.greylist:
            key = (envelope.mail_from, address.lower())
            with p.lock:
                seen = key in p._grey
                p._grey.add(key)
            if not seen:
                return "451 4.7.1 Greylisted, try again later"
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server, session, envelope):
        p = self.peer
        if await self._stage(server, "DATA"):
            return "421 4.4.2 closing"
        if p.data_reply:
            return p.data_reply
        tls = None
        if session.ssl is not None:
            obj = server.transport.get_extra_info("ssl_object")
            tls = obj.version() if obj is not None else "TLS"
        msg = {
            "mail_from": "" if envelope.mail_from in ("<>", "") else envelope.mail_from,
            "mail_options": list(envelope.mail_options),
            "rcpts": list(envelope.rcpt_tos),
            "data": envelope.original_content,
            "tls": tls,
            "auth": session.auth_data if session.authenticated else None,
            "peer": session.peer[0] if session.peer else None,
            "helo": session.host_name,
        }
        with p.lock:
            p.messages.append(msg)
            p.cv.notify_all()
        return "250 2.0.0 Ok: stored"


class _Authenticator:
    def __init__(self, users):
        self.users = users

    def __call__(self, server, session, envelope, mechanism, auth_data):
        if isinstance(auth_data, LoginPassword):
            user = auth_data.login.decode()
            ok = self.users.get(user) == auth_data.password.decode()
            return AuthResult(success=ok, handled=False, auth_data=user if ok else None)
        return AuthResult(success=False, handled=False)


class _Controller(Controller):
    def __init__(self, peer, handler, **kw):
        self.peer = peer
        super().__init__(handler, **kw)

    def factory(self):
        p = self.peer
        kw = dict(hostname=p.name, ident="sluice-test-mx",
                  enable_SMTPUTF8=p.smtputf8, decode_data=False,
                  data_size_limit=None)
        if p.idle_timeout is not None:
            kw["timeout"] = p.idle_timeout
        if p.tls_context is not None:
            kw["tls_context"] = p.tls_context
            kw["require_starttls"] = p.require_tls
        if p.auth is not None:
            kw["authenticator"] = _Authenticator(p.auth)
            kw["auth_required"] = True
            kw["auth_require_tls"] = True
        return SMTP(self.handler, **kw)


class MXPeer:
    def __init__(self, host="127.0.0.1", port=0, name="mx.peer.sluice.test"):
        self.host, self.port, self.name = host, port, name
        self.lock = threading.Lock()
        self.cv = threading.Condition(self.lock)
        self.messages = []
        self.connections = 0
        self.closed_mid = 0
        self._grey = set()
        self.rcpt_reply = {}
        self.mail_reply = None
        self.data_reply = None
        self.greylist = False
        self.close_at = None
        self.stall_at = None
        self.no_pipelining = False
        self.size_limit = None
        self.idle_timeout = None  # seconds: aiosmtpd closes a silent client (421)
        self.smtputf8 = True
        self.tls_context = None
        self.require_tls = False
        self.auth = None
        self.ctl = None

    def start(self, tls_cert=None, tls_key=None, require_tls=False, auth=None,
              implicit_tls=False):
        if tls_cert:
            ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            ctx.load_cert_chain(tls_cert, tls_key)
            self.tls_context = ctx
        self.require_tls = require_tls
        self.auth = auth
        kw = {}
        if implicit_tls:
            kw["ssl_context"] = self.tls_context
            self.tls_context = None
        self.ctl = _Controller(self, _Handler(self), hostname=self.host, port=self.port,
                               ready_timeout=10, **kw)
        self.ctl.start()
        return self

    def stop(self):
        if self.ctl is not None:
            self.ctl.stop()
            self.ctl = None

    def wait_messages(self, n, timeout=20.0):
        """Wait (at most timeout seconds) until n messages arrived; return them all."""
        deadline = time.monotonic() + timeout
        with self.cv:
            while len(self.messages) < n:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self.cv.wait(min(left, 0.5))
            return list(self.messages)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()
