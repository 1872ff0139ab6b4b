"""Encryption at rest: EncryptionConfiguration parsing and validation, each provider, key rotation, the wrapper."""

from __future__ import annotations

import base64
import os
from pathlib import Path

import nacl.secret
import pytest
from cryptography.hazmat.primitives import padding
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from pyk8s.store.encryption import (
    IDENTITY,
    DecryptionError,
    EncryptingStore,
    EncryptionConfigError,
    TransformError,
    load_encryption_config,
    parse_encryption_config,
)
from pyk8s.store.sqlite import SQLiteStore

KEY1 = bytes(range(32))
KEY2 = bytes(range(100, 132))
SECRET_KEY = "/registry/core/secrets/default/s1"


def b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


def config(*resources: dict) -> dict:
    return {"apiVersion": "apiserver.config.k8s.io/v1", "kind": "EncryptionConfiguration", "resources": list(resources)}


def one(provider: str, *keys: tuple[str, bytes], resources: tuple[str, ...] = ("secrets",)) -> dict:
    if provider == "identity":
        return {"resources": list(resources), "providers": [{"identity": {}}]}
    return {"resources": list(resources),
            "providers": [{provider: {"keys": [{"name": n, "secret": b64(s)} for n, s in keys]}}]}


# --------------------------------------------------------------------------- providers


@pytest.mark.parametrize("provider,size", [("aesgcm", 16), ("aesgcm", 24), ("aesgcm", 32), ("aescbc", 32),
                                           ("secretbox", 32)])
def test_each_provider_round_trips_with_upstreams_prefix(provider: str, size: int) -> None:
    cfg = parse_encryption_config(config(one(provider, ("key1", os.urandom(size)))))
    transformer = cfg.transformer_for_key(SECRET_KEY)
    stored = transformer.encrypt(b'{"data":{"password":"c2VjcmV0"}}', SECRET_KEY)
    assert stored.startswith(f"k8s:enc:{provider}:v1:key1:".encode())
    assert b"c2VjcmV0" not in stored
    assert transformer.decrypt(stored, SECRET_KEY) == (b'{"data":{"password":"c2VjcmV0"}}', False)


def test_aesgcm_layout_is_a_random_12_byte_nonce_then_ciphertext_bound_to_the_key() -> None:
    transformer = parse_encryption_config(config(one("aesgcm", ("k", KEY1)))).transformer_for_key(SECRET_KEY)
    first = transformer.encrypt(b"payload", SECRET_KEY)
    second = transformer.encrypt(b"payload", SECRET_KEY)
    assert first != second  # a fresh nonce every write
    body = first[len(b"k8s:enc:aesgcm:v1:k:"):]
    # Decrypt independently: nonce, ciphertext+tag, the store key as associated data.
    assert AESGCM(KEY1).decrypt(body[:12], body[12:], SECRET_KEY.encode()) == b"payload"
    # The same bytes moved under another key do not decrypt.
    with pytest.raises(TransformError):
        transformer.decrypt(first, "/registry/core/secrets/default/other")


def test_aescbc_layout_is_iv_then_pkcs7_padded_ciphertext() -> None:
    transformer = parse_encryption_config(config(one("aescbc", ("k", KEY1)))).transformer_for_key(SECRET_KEY)
    body = transformer.encrypt(b"0123456789abcdef", SECRET_KEY)[len(b"k8s:enc:aescbc:v1:k:"):]
    assert len(body) == 16 + 32  # a full block of padding after a block-aligned value
    decryptor = Cipher(algorithms.AES(KEY1), modes.CBC(body[:16])).decryptor()
    unpadder = padding.PKCS7(128).unpadder()
    padded = decryptor.update(body[16:]) + decryptor.finalize()
    assert unpadder.update(padded) + unpadder.finalize() == b"0123456789abcdef"


def test_secretbox_layout_is_nacl_nonce_then_box() -> None:
    transformer = parse_encryption_config(config(one("secretbox", ("k", KEY1)))).transformer_for_key(SECRET_KEY)
    body = transformer.encrypt(b"payload", SECRET_KEY)[len(b"k8s:enc:secretbox:v1:k:"):]
    assert nacl.secret.SecretBox(KEY1).decrypt(body[24:], body[:24]) == b"payload"


def test_tampered_values_fail_to_decrypt() -> None:
    for provider in ("aesgcm", "aescbc", "secretbox"):
        transformer = parse_encryption_config(config(one(provider, ("k", KEY1)))).transformer_for_key(SECRET_KEY)
        stored = bytearray(transformer.encrypt(b"x" * 40, SECRET_KEY))
        stored[-1] ^= 0xFF
        try:
            plaintext, _ = transformer.decrypt(bytes(stored), SECRET_KEY)
        except TransformError:
            continue
        assert plaintext != b"x" * 40  # CBC has no tag: a flipped last byte can only garble the padding


def test_decrypting_with_an_old_key_works_and_is_stale() -> None:
    old = parse_encryption_config(config(one("aesgcm", ("key1", KEY1)))).transformer_for_key(SECRET_KEY)
    rotated = parse_encryption_config(config(
        {"resources": ["secrets"], "providers": [{"aesgcm": {"keys": [{"name": "key2", "secret": b64(KEY2)}]}},
                                                 {"aescbc": {"keys": [{"name": "key1", "secret": b64(KEY1)}]}},
                                                 {"aesgcm": {"keys": [{"name": "key1", "secret": b64(KEY1)}]}},
                                                 {"identity": {}}]})).transformer_for_key(SECRET_KEY)
    stored = old.encrypt(b"v", SECRET_KEY)
    assert rotated.decrypt(stored, SECRET_KEY) == (b"v", True)
    new = rotated.encrypt(b"v", SECRET_KEY)
    assert new.startswith(b"k8s:enc:aesgcm:v1:key2:")
    assert rotated.decrypt(new, SECRET_KEY) == (b"v", False)
    assert rotated.decrypt(b'{"plain":true}', SECRET_KEY) == (b'{"plain":true}', True)  # identity, last
    with pytest.raises(TransformError, match="no matching prefix"):
        old.decrypt(new, SECRET_KEY)


def test_second_key_of_one_provider_decrypts_and_is_stale() -> None:
    first = parse_encryption_config(config(one("aesgcm", ("b", KEY2)))).transformer_for_key(SECRET_KEY)
    both = parse_encryption_config(config(one("aesgcm", ("a", KEY1), ("b", KEY2)))).transformer_for_key(SECRET_KEY)
    assert both.decrypt(first.encrypt(b"v", SECRET_KEY), SECRET_KEY) == (b"v", True)
    assert both.encrypt(b"v", SECRET_KEY).startswith(b"k8s:enc:aesgcm:v1:a:")


def test_identity_first_writes_plaintext_but_still_reads_encrypted_values() -> None:
    encrypted = parse_encryption_config(config(one("secretbox", ("k", KEY1)))).transformer_for_key(SECRET_KEY)
    migrate = parse_encryption_config(config(
        {"resources": ["secrets"], "providers": [{"identity": {}},
                                                 {"secretbox": {"keys": [{"name": "k", "secret": b64(KEY1)}]}}]}
    )).transformer_for_key(SECRET_KEY)
    assert migrate.encrypt(b"v", SECRET_KEY) == b"v"
    assert migrate.decrypt(encrypted.encrypt(b"v", SECRET_KEY), SECRET_KEY) == (b"v", True)


def test_unconfigured_resources_refuse_to_read_encrypted_data() -> None:
    assert IDENTITY.decrypt(b'{"a":1}', "/registry/core/configmaps/default/c") == (b'{"a":1}', False)
    with pytest.raises(TransformError, match="identity transformer tried to read encrypted data"):
        IDENTITY.decrypt(b"k8s:enc:aesgcm:v1:k:xxxx", "/registry/core/configmaps/default/c")


# --------------------------------------------------------------------------- resource matching


@pytest.mark.parametrize("names,key,encrypted", [
    (["secrets"], "/registry/core/secrets/ns/a", True),
    (["secrets"], "/registry/core/configmaps/ns/a", False),
    (["configmaps", "secrets"], "/registry/core/configmaps/ns/a", True),
    (["deployments.apps"], "/registry/apps/deployments/ns/a", True),
    (["*.apps"], "/registry/apps/statefulsets/ns/a", True),
    (["*.apps"], "/registry/core/secrets/ns/a", False),
    (["*."], "/registry/core/namespaces/ns", True),
    (["*."], "/registry/apps/deployments/ns/a", False),
    (["*.*"], "/registry/rbac.authorization.k8s.io/roles/ns/a", True),
    (["*.*"], "/c/not-a-registry-key", False),
])
def test_resources_and_wildcards(names: list[str], key: str, encrypted: bool) -> None:
    cfg = parse_encryption_config(config(one("aesgcm", ("k", KEY1), resources=tuple(names))))
    stored = cfg.transformer_for_key(key).encrypt(b"v", key)
    assert stored.startswith(b"k8s:enc:") is encrypted


def test_the_exact_resource_wins_over_wildcards_and_the_first_list_wins_over_later_ones() -> None:
    cfg = parse_encryption_config(config(
        one("identity", resources=("*.*",)),
        one("aescbc", ("k", KEY1), resources=("secrets",)),
        one("aesgcm", ("k", KEY1), resources=("secrets.",)),
    ))
    assert cfg.transformer_for_key(SECRET_KEY).encrypt(b"v", SECRET_KEY).startswith(b"k8s:enc:aescbc:")
    assert cfg.transformer_for_key("/registry/core/pods/ns/p").encrypt(b"v", "") == b"v"


# --------------------------------------------------------------------------- validation


@pytest.mark.parametrize("doc,message", [
    ({"apiVersion": "v1", "kind": "EncryptionConfiguration"}, "expected apiVersion apiserver.config.k8s.io/v1"),
    (config(), "at least one resources is required"),
    (config({"resources": [], "providers": [{"identity": {}}]}), "at least one resources[0].resources is required"),
    (config({"resources": ["secrets"], "providers": []}), "at least one resources[0].providers is required"),
    (config({"resources": ["Secrets"], "providers": [{"identity": {}}]}), "should not contain capital letters"),
    (config({"resources": ["*"], "providers": [{"identity": {}}]}), "use '*.' to encrypt all the resources"),
    (config({"resources": ["secrets.*"], "providers": [{"identity": {}}]}), "across groups is not supported"),
    (config({"resources": ["secrets", "*."], "providers": [{"identity": {}}]}), "overlapping resources"),
    (config({"resources": ["secrets", "secrets"], "providers": [{"identity": {}}]}), "specified multiple times"),
    (config({"resources": ["*.events.k8s.io"], "providers": [{"identity": {}}]}), "Use 'events' instead"),
    (config({"resources": ["serviceipallocations"], "providers": [{"identity": {}}]}), "do not have REST API"),
    (config({"resources": ["secrets"], "providers": [{}]}), "does not contain any of the expected providers"),
    (config({"resources": ["secrets"], "providers": [{"identity": {}, "aesgcm": {}}]}), "more than one provider"),
    (config({"resources": ["secrets"], "providers": [{"aesgcm": {"keys": []}}]}),
     "resources[0].providers[0].aesgcm.keys: Required value: at least one keys is required"),
    (config(one("aesgcm", ("k", b"short"))), "secret is not of the expected length, got 5, expected one of [16 24 32]"),
    (config(one("secretbox", ("k", bytes(16)))), "got 16, expected one of [32]"),
    (config({"resources": ["secrets"], "providers": [{"aescbc": {"keys": [{"name": "k", "secret": "%%%"}]}}]}),
     "secrets must be base64 encoded"),
    (config({"resources": ["secrets"], "providers": [{"aescbc": {"keys": [{"secret": b64(KEY1)}]}}]}),
     "keys[0].name: Required value: name is a mandatory field for a key"),
    (config({"resources": ["secrets"], "providers": [{"kms": {"name": "x", "endpoint": "unix:///k.sock"}}]}),
     "no KMS plugin support"),
])
def test_invalid_configurations_are_refused_with_a_clear_message(doc: dict, message: str) -> None:
    with pytest.raises(EncryptionConfigError) as caught:
        parse_encryption_config(doc)
    assert message in str(caught.value)


def test_every_problem_is_reported_at_once_and_secrets_are_redacted() -> None:
    with pytest.raises(EncryptionConfigError) as caught:
        parse_encryption_config(config(one("aesgcm", ("k", b"0123456789")), {"resources": ["*"], "providers": []}))
    text = str(caught.value)
    assert "resources[0].providers[0].aesgcm.keys[0].secret" in text
    assert "resources[1].resources[0]" in text and "resources[1].providers" in text
    assert b64(b"0123456789") not in text and '"REDACTED"' in text


def test_load_from_a_yaml_file(tmp_path: Path) -> None:
    path = tmp_path / "enc.yaml"
    path.write_text(f"""
apiVersion: apiserver.config.k8s.io/v1
kind: EncryptionConfiguration
resources:
  - resources: [secrets, configmaps]
    providers:
      - aesgcm:
          keys:
            - name: key1
              secret: {b64(KEY1)}
      - identity: {{}}
""")
    cfg = load_encryption_config(path)
    assert cfg.transformer_for_key("/registry/core/configmaps/a/b").encrypt(b"v", "k").startswith(
        b"k8s:enc:aesgcm:v1:key1:")
    path.write_text("resources: [")
    with pytest.raises(EncryptionConfigError, match="error while parsing encryption config file"):
        load_encryption_config(path)
    with pytest.raises(EncryptionConfigError, match="error while reading"):
        load_encryption_config(tmp_path / "missing.yaml")


# --------------------------------------------------------------------------- the store wrapper


async def test_the_wrapper_stores_ciphertext_and_serves_plaintext_on_every_path(tmp_path: Path) -> None:
    cfg = parse_encryption_config(config(one("aesgcm", ("key1", KEY1))))
    inner = SQLiteStore(str(tmp_path / "s.db"))
    store = EncryptingStore(inner, cfg.transformer_for_key)
    await store.start()
    try:
        events = store.watch("/registry/", store.current_revision)
        created = await store.create(SECRET_KEY, b"first")
        plain = await store.create("/registry/core/configmaps/default/c", b"visible")
        assert created.value == b"first" and plain.value == b"visible"
        raw = await inner.get(SECRET_KEY)
        assert raw is not None and raw.value.startswith(b"k8s:enc:aesgcm:v1:key1:") and b"first" not in raw.value
        assert (await inner.get("/registry/core/configmaps/default/c")).value == b"visible"
        assert (await store.get(SECRET_KEY)).value == b"first"
        updated = await store.update(SECRET_KEY, b"second", created.mod_revision)
        assert [kv.value for kv in (await store.list("/registry/")).items] == [b"visible", b"second"]
        past = await store.list("/registry/core/secrets/", revision=created.mod_revision)
        assert [kv.value for kv in past.items] == [b"first"]
        deleted = await store.delete(SECRET_KEY, updated.mod_revision)
        assert deleted.value == b"second"
        seen = [await anext(events) for _ in range(4)]
        assert [(e.type, e.kv.value, e.prev.value if e.prev else None) for e in seen] == [
            ("ADDED", b"first", None), ("ADDED", b"visible", None), ("MODIFIED", b"second", b"first"),
            ("DELETED", b"second", b"second")]
        await events.aclose()
    finally:
        await store.close()


async def test_a_value_no_provider_can_read_is_a_store_error_naming_the_key(tmp_path: Path) -> None:
    inner = SQLiteStore(str(tmp_path / "s.db"))
    await inner.start()
    try:
        writer = EncryptingStore(inner, parse_encryption_config(config(one("aesgcm", ("a", KEY1)))).transformer_for_key)
        reader = EncryptingStore(inner, parse_encryption_config(config(one("aesgcm", ("b", KEY2)))).transformer_for_key)
        await writer.create(SECRET_KEY, b"v")
        with pytest.raises(DecryptionError, match='unable to transform key "/registry/core/secrets/default/s1": '
                                                  'no matching prefix found'):
            await reader.get(SECRET_KEY)
        same_name = parse_encryption_config(config(one("aesgcm", ("a", KEY2)))).transformer_for_key
        with pytest.raises(DecryptionError, match="message authentication failed"):
            await EncryptingStore(inner, same_name).get(SECRET_KEY)
    finally:
        await inner.close()


async def test_values_read_with_an_old_key_need_a_rewrite_until_written_again(tmp_path: Path) -> None:
    inner = SQLiteStore(str(tmp_path / "s.db"))
    await inner.start()
    try:
        old = EncryptingStore(inner, parse_encryption_config(config(one("aesgcm", ("a", KEY1)))).transformer_for_key)
        kv = await old.create(SECRET_KEY, b"v")
        rotated = EncryptingStore(inner, parse_encryption_config(config(
            one("aesgcm", ("b", KEY2), ("a", KEY1)))).transformer_for_key)
        assert not rotated.needs_rewrite(SECRET_KEY)
        assert (await rotated.get(SECRET_KEY)).value == b"v"
        assert rotated.needs_rewrite(SECRET_KEY)
        await rotated.update(SECRET_KEY, b"v", kv.mod_revision)
        assert not rotated.needs_rewrite(SECRET_KEY)
        assert (await inner.get(SECRET_KEY)).value.startswith(b"k8s:enc:aesgcm:v1:b:")
        await rotated.get(SECRET_KEY)
        assert not rotated.needs_rewrite(SECRET_KEY)
    finally:
        await inner.close()
