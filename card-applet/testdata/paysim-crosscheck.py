#!/usr/bin/env python3
"""Independent re-computation of testdata/paysim-vectors.json (Python standard library for
PAYSIM-1; the `cryptography` package for the admin protocol). Not part of the build:
run it by hand to confirm the Rust implementation against a second one.

    python3 card-applet/testdata/paysim-crosscheck.py
"""
import hashlib
import hmac
import json
import os
import struct

HERE = os.path.dirname(os.path.abspath(__file__))
V = json.load(open(os.path.join(HERE, "paysim-vectors.json"), encoding="utf-8"))


def context(label, fields):
    out = label
    for f in fields:
        out += struct.pack(">H", len(f)) + f
    return out


def paysim_otp(ck, i, challenge, ctx):
    k = hmac.new(ck, b"PAYSIM-1 OTP", hashlib.sha256).digest()
    q = challenge.hex().upper().ljust(256, "0")  # RFC 6287: Q left-aligned, zero-filled to 128 bytes
    data = b"OCRA-1:HOTP-SHA256-8:C-QH64-S064" + b"\0" + struct.pack(">Q", i) + bytes.fromhex(q)
    data += hashlib.sha512(ctx).digest()  # S064
    mac = hmac.new(k, data, hashlib.sha256).digest()
    off = mac[-1] & 0x0F
    code = (struct.unpack(">I", mac[off:off + 4])[0] & 0x7FFFFFFF) % 10**8
    return "%08d" % code


p = V["paysim1"]
seed = bytes.fromhex(p["seed_hex"])
ch = bytes.fromhex(p["challenge_hex"])
vid = p["verifier_id"].encode()
t = p["transaction"]
login_ctx = context(b"PAYSIM-1 LOGIN", [vid])
tx_ctx = context(b"PAYSIM-1 TX", [vid, t["transaction_id"].encode(), struct.pack(">Q", t["amount_minor"]),
                                  t["currency"].encode(), t["payee"].encode()])
assert login_ctx.hex() == p["login_context_hex"]
assert tx_ctx.hex() == p["tx_context_hex"]
ck = seed
for step in p["steps"]:
    i = step["counter"]
    assert ck.hex() == step["chain_key_hex"], i
    assert paysim_otp(ck, i, ch, login_ctx) == step["login_otp"], i
    assert paysim_otp(ck, i, ch, tx_ctx) == step["tx_otp"], i
    ck = hmac.new(ck, b"PAYSIM-1 CHAIN", hashlib.sha256).digest()
print("PAYSIM-1 vectors: ok")

# Transaction context version 2: the source account and the payee's name (UTF-8) are signed.
p2 = V["paysim2"]
t2 = p2["transaction"]
tx2_ctx = context(b"PAYSIM-2 TX", [vid, t2["transaction_id"].encode(), struct.pack(">Q", t2["amount_minor"]),
                                   t2["currency"].encode(), t2["source"].encode(), t2["payee"].encode(),
                                   t2["payee_name"].encode("utf-8")])
assert tx2_ctx.hex() == p2["tx_context_hex"]
ck = seed
for step in p2["steps"]:
    assert paysim_otp(ck, step["counter"], ch, tx2_ctx) == step["tx_otp"], step
    ck = hmac.new(ck, b"PAYSIM-1 CHAIN", hashlib.sha256).digest()


def tlv(tag, value):
    return bytes([tag, len(value)]) + value


data = (tlv(1, ch) + tlv(2, vid) + tlv(5, t2["transaction_id"].encode()) + tlv(6, struct.pack(">Q", t2["amount_minor"]))
        + tlv(7, t2["currency"].encode()) + tlv(8, t2["payee"].encode()) + tlv(9, t2["source"].encode())
        + tlv(10, t2["payee_name"].encode("utf-8")))
assert (bytes([0x80, 0x12, 0, 0, len(data)]) + data + b"\0").hex().upper() == p2["card"]["tx_otp_apdu_hex"]
counter1 = p2["steps"][1]
want = tlv(3, struct.pack(">Q", 1)) + tlv(4, counter1["tx_otp"].encode()) + b"\x90\x00"
assert want.hex().upper() == p2["card"]["tx_otp_response_hex"]
print("PAYSIM-2 vectors: ok")

try:
    from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
    from cryptography.hazmat.primitives.cmac import CMAC
except ImportError:
    print("admin vectors: skipped (pip install cryptography)")
    raise SystemExit(0)


def cmac(key, msg):
    c = CMAC(algorithms.AES(key))
    c.update(msg)
    return c.finalize()


def kdf(key, const, ctx, nbytes):
    out = b""
    for i in range(1, nbytes // 16 + 1):
        out += cmac(key, b"\0" * 11 + bytes([const]) + b"\0" + (nbytes * 8).to_bytes(2, "big") + bytes([i]) + ctx)
    return out


a = V["admin"]
key = bytes.fromhex(a["admin_key_hex"])
ctx = bytes.fromhex(a["host_challenge_hex"]) + bytes.fromhex(a["card_challenge_hex"])
s_enc, s_mac, s_rmac = kdf(key, 0x04, ctx, 32), kdf(key, 0x06, ctx, 32), kdf(key, 0x07, ctx, 32)
assert (s_enc.hex(), s_mac.hex(), s_rmac.hex()) == (a["s_enc_hex"], a["s_mac_hex"], a["s_rmac_hex"])
assert kdf(s_mac, 0x01, ctx, 16).hex() == a["host_cryptogram_hex"]
assert kdf(s_mac, 0x00, ctx, 16).hex() == a["card_cryptogram_hex"]
apdu = bytes.fromhex(a["personalize_apdu_hex"])
body = apdu[5:-1]
ct, c_mac = body[:-16], body[-16:]
assert cmac(s_mac, apdu[:4] + ct) == c_mac
icv = Cipher(algorithms.AES(s_enc), modes.ECB()).encryptor().update(b"\0" * 15 + b"\1")
dec = Cipher(algorithms.AES(s_enc), modes.CBC(icv)).decryptor()
plain = dec.update(ct) + dec.finalize()
plain = plain[:plain.rindex(b"\x80")]
want = (b"\x81\x20" + bytes.fromhex(a["personalize"]["seed_hex"]) + b"\x82\x08" + b"1234\xff\xff\xff\xff"
        + b"\x83\x08" + a["personalize"]["puk"].encode() + b"\x84\x0d" + a["personalize"]["serial"].encode())
assert plain == want, plain.hex()
assert cmac(s_rmac, c_mac + b"\x90\x00").hex() == a["r_mac_hex"]
print("admin vectors: ok")

# PAYSIM-OATH-1 (docs/protocol.md section 9): otp/testdata/paysim-oath-1.json, each vector's
# context rebuilt from its fields (the v2 one from the PAYSIM-2 transfer above), then q, the
# HMAC and the 8-digit code.
O = json.load(open(os.path.join(HERE, "..", "..", "otp", "testdata", "paysim-oath-1.json"), encoding="utf-8"))
for v in O["vectors"]:
    ctx = bytes.fromhex(v["context_hex"])
    t = v.get("tx")
    if t is None:
        assert ctx == login_ctx, v["label"]
    else:
        fields = [t["verifier_id"].encode(), t["transaction_id"].encode(), struct.pack(">Q", t["amount_minor"]),
                  t["currency"].encode()]
        if t["version"] == 1:
            assert ctx == context(b"PAYSIM-1 TX", fields + [t["payee"].encode()]), v
        else:
            assert ctx == context(b"PAYSIM-2 TX", fields + [t["source"].encode(), t["payee"].encode(),
                                                            t["payee_name"].encode("utf-8")]), v
            assert ctx == tx2_ctx, "the v2 OATH vector signs the PAYSIM-2 transfer"
    q = hashlib.sha256(context(v["label"].encode(), [bytes.fromhex(v["bank_challenge_hex"]),
                                                     hashlib.sha512(ctx).digest()])).digest()
    assert q.hex() == v["q_hex"], v["label"]
    mac = hmac.new(bytes.fromhex(v["key_hex"]), q, hashlib.sha256).digest()
    assert mac.hex() == v["mac_hex"], v["label"]
    off = mac[-1] & 0x0F
    assert "%08d" % ((struct.unpack(">I", mac[off:off + 4])[0] & 0x7FFFFFFF) % 10**8) == v["otp"], v["label"]
print("PAYSIM-OATH-1 vectors: ok")
