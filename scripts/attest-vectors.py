#!/usr/bin/env python3
"""The supply digest and replica attestation vectors of docs/FORMAT.md, computed apart
from machi's Rust code: Python's hashlib and struct, and the `cryptography` package for
Ed25519 (RFC 8032). Prints the `vector` lines that ledger/tests/it/format_doc.rs checks.

    python3 scripts/attest-vectors.py
"""

import hashlib
import struct

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

CHAIN = "bandai-2026"
HEIGHT = 12
BLOCK_HASH = bytes.fromhex("d3f63dee118b097a691dae318d5f1d64824ff2a2d47c6103b0ce1725b2c8bbd9")
REPLICA = 2
SEED = bytes([0x42] * 32)

YEN_FIELDS = [
    "cash_received", "issued_common", "issued_local", "issued_total", "premium_cost",
    "residents_common", "residents_local", "shops_common", "shops_local",
    "pending_cash_out", "paid_out", "fees", "expired",
]

# The sample report of FORMAT.md, listed out of id order on purpose: the digest sorts.
SAMPLE = [
    {"issue": 2, "name": "夏の商品券", "total_sets": 500, "sets_sold": 0, "sets_left": 500,
     **{f: 0 for f in YEN_FIELDS}, "invariant_holds": True},
    {"issue": 1, "name": "2026年度 プレミアム商品券", "total_sets": 10000, "sets_sold": 3,
     "sets_left": 9997, "cash_received": 30000, "issued_common": 18000, "issued_local": 21000,
     "issued_total": 39000, "premium_cost": 9000, "residents_common": 15000,
     "residents_local": 20000, "shops_common": 2000, "shops_local": 1000,
     "pending_cash_out": 0, "paid_out": 990, "fees": 10, "expired": 0,
     "invariant_holds": True},
]


def issue_bytes(i):
    name = i["name"].encode("utf-8")
    out = struct.pack(">II", i["issue"], len(name)) + name
    out += struct.pack(">III", i["total_sets"], i["sets_sold"], i["sets_left"])
    out += b"".join(struct.pack(">Q", i[f]) for f in YEN_FIELDS)
    return out + bytes([1 if i["invariant_holds"] else 0])


def supply_bytes(chain, height, block_hash, issues):
    c = chain.encode("ascii")
    out = b"machi.supply.v1\x00" + struct.pack(">H", len(c)) + c
    out += struct.pack(">Q", height) + block_hash + struct.pack(">I", len(issues))
    for i in sorted(issues, key=lambda i: i["issue"]):
        out += issue_bytes(i)
    return out


def attest_message(chain, replica, height, block_hash, digest):
    c = chain.encode("ascii")
    data = b"machi.attest.v1\x00" + struct.pack(">H", len(c)) + c
    data += struct.pack(">QQ", replica, height) + block_hash + digest
    return hashlib.sha256(data).digest()


def main():
    raw = supply_bytes(CHAIN, HEIGHT, BLOCK_HASH, SAMPLE)
    digest = hashlib.sha256(raw).digest()
    message = attest_message(CHAIN, REPLICA, HEIGHT, BLOCK_HASH, digest)
    signature = Ed25519PrivateKey.from_private_bytes(SEED).sign(message)
    empty = hashlib.sha256(supply_bytes(CHAIN, 0, BLOCK_HASH, [])).digest()
    print(f"vector supply_bytes sample => {raw.hex()}")
    print(f"vector supply_digest sample => {digest.hex()}")
    print(f"vector supply_digest empty {CHAIN} 0 {BLOCK_HASH.hex()} => {empty.hex()}")
    print(f"vector attest_message {CHAIN} {REPLICA} {HEIGHT} {BLOCK_HASH.hex()} {digest.hex()} => {message.hex()}")
    print(f"vector attest_signature {SEED.hex()} {CHAIN} {REPLICA} {HEIGHT} {BLOCK_HASH.hex()} {digest.hex()} "
          f"=> {signature.hex()}")


if __name__ == "__main__":
    main()
