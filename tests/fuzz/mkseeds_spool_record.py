#!/usr/bin/env python3
"""Writes the seeds of fuzz_spool_record (tests/fuzz/seeds/fuzz_spool_record): whole
records with their CRC32C, as spool/record.c frames them - messages with and without
the login field, a recipient state, hold, release and delete.  Run:
  python3 tests/fuzz/mkseeds_spool_record.py tests/fuzz/seeds/fuzz_spool_record"""
import struct, sys, os
def crc32c(data, crc=0):
    crc ^= 0xffffffff
    for b in data:
        crc ^= b
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82F63B78 if crc & 1 else 0)
    return crc ^ 0xffffffff
assert crc32c(b"123456789") == 0xE3069283
def rec(typ, rid, payload):
    body = rid + payload
    h = struct.pack('<I', 0x31524c53) + bytes([typ, 0, 0, 0]) + struct.pack('<I', len(body))
    crc = crc32c(h[4:] + body)
    return h + body + struct.pack('<II', crc, 0x31444e45)
def s(x): return struct.pack('<I', len(x)) + x
def rcpt(addr, state=0, attempts=0, nxt=0, reply=None):
    r = s(addr) + bytes([state]) + struct.pack('<Iq', attempts, nxt)
    return r + (b'\x01' + s(reply) if reply is not None else b'\x00')
def msg(rid, tenant, flags, sender, rcpts, data, cred=0):
    p = struct.pack('<qqI', tenant, 1796083200, flags | (8 if cred else 0))
    if cred: p += struct.pack('<q', cred)
    p += s(sender) + struct.pack('<I', len(rcpts)) + b''.join(rcpts) + s(data)
    return rec(1, rid, p)
ida = b'0123456789abcdef'; idb = b'0123456789abcde0'
data = b'From: a@acme.example\r\nSubject: seed\r\n\r\nbody\r\n'
seeds = {
 'msg-login': msg(ida, 1, 0, b'a@acme.example', [rcpt(b'b@example.org'), rcpt(b'c@example.net')], data, cred=7),
 'msg-trusted': msg(idb, 2, 1, b'', [rcpt(b'd@example.org', 0, 2, 1796083300, b'451 4.7.1 later')], data),
 'state-hold-delete': msg(ida, 1, 0, b'a@acme.example', [rcpt(b'b@example.org'), rcpt(b'c@example.net')], data, cred=7)
    + rec(2, ida, struct.pack('<I', 1) + bytes([1]) + struct.pack('<Iq', 1, 0) + b'\x01' + s(b'250 2.0.0 ok'))
    + rec(4, ida, b'\x01') + rec(4, ida, b'\x00') + rec(3, idb, b''),
}
out = sys.argv[1]
for k, v in seeds.items():
    open(os.path.join(out, k), 'wb').write(v)
