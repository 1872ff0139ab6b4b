"""Encryption at rest: what aesgcm (and aescbc, secretbox) add to creating and reading Secrets.

For each provider, one EncryptingStore over a fresh SQLite store encrypts `secrets` with it and leaves
`configmaps` unconfigured (identity, the baseline). The benchmark alternates one Secret create and one
ConfigMap create of the same value (about 1.2 KB of JSON), then one get of each, timing every call, so
the shared machine's noise hits both sides alike; it reports medians per call. Also the bare
transformer cost per value (no store).

Prints one JSON object per line:
  {"benchmark": "encryption", "provider": P, "create_us": .., "identity_create_us": .., "create_ratio": ..,
   "get_us": .., "identity_get_us": .., "get_ratio": .., "encrypt_us": .., "decrypt_us": ..}

Usage: python benchmarks/encryption.py [--quick] [--objects N]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

# Import this checkout's pyk8s even when the virtualenv's editable install points at another one.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pyk8s.store.encryption import EncryptingStore, parse_encryption_config
from pyk8s.store.sqlite import SQLiteStore

PROVIDERS = ("aesgcm", "aescbc", "secretbox")


def emit(**fields: object) -> None:
    sys.stdout.write(json.dumps({"benchmark": "encryption", **fields}) + "\n")
    sys.stdout.flush()


def config_for(provider: str):
    keys = [{"name": "key1", "secret": base64.b64encode(bytes(range(32))).decode()}]
    resources = [{"resources": ["secrets"], "providers": [{provider: {"keys": keys}}]}]
    return parse_encryption_config({"apiVersion": "apiserver.config.k8s.io/v1", "kind": "EncryptionConfiguration",
                                    "resources": resources})


def object_value(index: int) -> bytes:
    return json.dumps({"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
                       "metadata": {"name": f"o{index}", "namespace": "bench", "uid": f"{index:036d}"},
                       "data": {"tls.key": base64.b64encode(bytes(range(256)) * 3).decode()}}).encode()


async def timed(call) -> float:
    started = time.perf_counter()
    await call
    return (time.perf_counter() - started) * 1e6


async def store_costs(provider: str, objects: int, directory: Path) -> dict[str, float]:
    """Median microseconds per create and get, encrypted (secrets) and not (configmaps), interleaved."""
    store = EncryptingStore(SQLiteStore(str(directory / f"{provider}.db")), config_for(provider).transformer_for_key)
    await store.start()
    samples: dict[str, list[float]] = {"create": [], "identity_create": [], "get": [], "identity_get": []}
    try:
        # Which side goes first alternates, so neither always follows the other's commit.
        for i in range(objects):
            value = object_value(i)
            pair = [("create", "secrets"), ("identity_create", "configmaps")]
            for sample, resource in pair if i % 2 else pair[::-1]:
                samples[sample].append(await timed(store.create(f"/registry/core/{resource}/bench/o{i}", value)))
        for i in range(objects):
            pair = [("get", "secrets"), ("identity_get", "configmaps")]
            for sample, resource in pair if i % 2 else pair[::-1]:
                samples[sample].append(await timed(store.get(f"/registry/core/{resource}/bench/o{i}")))
    finally:
        await store.close()
    return {name: statistics.median(values) for name, values in samples.items()}


def transformer_cost(provider: str, count: int) -> tuple[float, float]:
    key = "/registry/core/secrets/bench/o0"
    transformer = config_for(provider).transformer_for_key(key)
    value = object_value(0)
    started = time.perf_counter()
    stored = [transformer.encrypt(value, key) for _ in range(count)]
    encrypt = time.perf_counter() - started
    started = time.perf_counter()
    for item in stored:
        transformer.decrypt(item, key)
    decrypt = time.perf_counter() - started
    return encrypt / count * 1e6, decrypt / count * 1e6


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--objects", type=int, default=3000)
    args = parser.parse_args()
    objects = 300 if args.quick else args.objects
    for provider in PROVIDERS:
        with tempfile.TemporaryDirectory() as directory:
            costs = await store_costs(provider, objects, Path(directory))
        encrypt_us, decrypt_us = transformer_cost(provider, objects * 5)
        emit(provider=provider, objects=objects, value_bytes=len(object_value(0)),
             create_us=round(costs["create"], 1), identity_create_us=round(costs["identity_create"], 1),
             create_ratio=round(costs["create"] / costs["identity_create"], 3),
             get_us=round(costs["get"], 1), identity_get_us=round(costs["identity_get"], 1),
             get_ratio=round(costs["get"] / costs["identity_get"], 3),
             encrypt_us=round(encrypt_us, 2), decrypt_us=round(decrypt_us, 2))


if __name__ == "__main__":
    asyncio.run(main())
