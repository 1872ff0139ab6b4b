"""Encryption at rest: a Store wrapper that encrypts the values of configured resources.

The configuration is upstream's EncryptionConfiguration (apiserver.config.k8s.io/v1), given to
`--encryption-provider-config`. Each resource list has ordered providers: the first one encrypts
every write, all of them are tried on reads, so a new key is rolled out by putting it first and
rewriting the objects (`kubectl get secrets -A -o json | kubectl replace -f -`), and encryption
is turned off by putting `identity` first.

Stored values carry upstream's prefix `k8s:enc:<provider>:v1:<key name>:` followed by
  aesgcm     12-byte random nonce, AES-GCM ciphertext and tag (the store key is the additional
             authenticated data, so a value copied under another key does not decrypt)
  aescbc     16-byte random IV, AES-CBC ciphertext of the PKCS#7-padded value
  secretbox  24-byte random nonce, XSalsa20-Poly1305 tag and ciphertext (NaCl secretbox)
`identity` stores the value as it is. Resources no list names are stored as they are too, and,
as upstream, reading an encrypted value through identity is an error rather than returning
ciphertext as an object.
"""

from __future__ import annotations

import base64
import binascii
import logging
import os
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import nacl.exceptions
import nacl.secret
import nacl.utils
import yaml
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import padding
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from .base import Event, KeyValue, ListResult, RevisionMismatchError, Store, StoreError

log = logging.getLogger("pyk8s.store.encryption")

API_VERSION = "apiserver.config.k8s.io/v1"
KIND = "EncryptionConfiguration"
ENCRYPTED_PREFIX = b"k8s:enc:"
PROVIDERS = ("aesgcm", "aescbc", "secretbox", "identity", "kms")
AES_KEY_SIZES = (16, 24, 32)
SECRETBOX_KEY_SIZES = (32,)
# Resources that exist only inside the apiserver's storage, never behind a REST API.
NON_REST_RESOURCES = ("apiserveripinfo", "serviceipallocations", "servicenodeportallocations")


class EncryptionConfigError(ValueError):
    """The encryption configuration cannot be used; the server must not start with it."""


class TransformError(Exception):
    """A stored value could not be decrypted (wrong key, corrupt data, unknown prefix)."""


class DecryptionError(StoreError):
    """A read found a value none of the configured providers can decrypt."""

    def __init__(self, key: str, cause: Exception):
        super().__init__(f'unable to transform key "{key}": {cause}')
        self.key = key


class ValueTransformer(Protocol):
    def encrypt(self, plaintext: bytes, key: str) -> bytes: ...

    def decrypt(self, ciphertext: bytes, key: str) -> bytes: ...


class AESGCMTransformer:
    nonce_size = 12

    def __init__(self, secret: bytes):
        self._aead = AESGCM(secret)

    def encrypt(self, plaintext: bytes, key: str) -> bytes:
        nonce = os.urandom(self.nonce_size)
        return nonce + self._aead.encrypt(nonce, plaintext, key.encode())

    def decrypt(self, ciphertext: bytes, key: str) -> bytes:
        if len(ciphertext) < self.nonce_size:
            raise TransformError("the stored data was shorter than the required size")
        try:
            return self._aead.decrypt(ciphertext[:self.nonce_size], ciphertext[self.nonce_size:], key.encode())
        except InvalidTag:
            raise TransformError("cipher: message authentication failed") from None


class AESCBCTransformer:
    block_size = 16

    def __init__(self, secret: bytes):
        self._algorithm = algorithms.AES(secret)

    def encrypt(self, plaintext: bytes, key: str) -> bytes:
        iv = os.urandom(self.block_size)
        padder = padding.PKCS7(self.block_size * 8).padder()
        padded = padder.update(plaintext) + padder.finalize()
        encryptor = Cipher(self._algorithm, modes.CBC(iv)).encryptor()
        return iv + encryptor.update(padded) + encryptor.finalize()

    def decrypt(self, ciphertext: bytes, key: str) -> bytes:
        if len(ciphertext) < self.block_size:
            raise TransformError("the stored data was shorter than the required size")
        body = ciphertext[self.block_size:]
        if not body or len(body) % self.block_size:
            raise TransformError("the stored data is not a multiple of the block size")
        decryptor = Cipher(self._algorithm, modes.CBC(ciphertext[:self.block_size])).decryptor()
        padded = decryptor.update(body) + decryptor.finalize()
        unpadder = padding.PKCS7(self.block_size * 8).unpadder()
        try:
            return unpadder.update(padded) + unpadder.finalize()
        except ValueError:
            raise TransformError("invalid PKCS7 data (empty or not padded)") from None


class SecretboxTransformer:
    def __init__(self, secret: bytes):
        self._box = nacl.secret.SecretBox(secret)

    def encrypt(self, plaintext: bytes, key: str) -> bytes:
        # PyNaCl's combined form is nonce || tag || ciphertext, exactly upstream's layout.
        return bytes(self._box.encrypt(plaintext, nacl.utils.random(nacl.secret.SecretBox.NONCE_SIZE)))

    def decrypt(self, ciphertext: bytes, key: str) -> bytes:
        if len(ciphertext) < nacl.secret.SecretBox.NONCE_SIZE:
            raise TransformError("the stored data was shorter than the required size")
        try:
            return self._box.decrypt(ciphertext)
        except nacl.exceptions.CryptoError:
            raise TransformError("output array was not large enough for encryption") from None


class IdentityTransformer:
    def encrypt(self, plaintext: bytes, key: str) -> bytes:
        return plaintext

    def decrypt(self, ciphertext: bytes, key: str) -> bytes:
        if ciphertext.startswith(ENCRYPTED_PREFIX):
            raise TransformError("identity transformer tried to read encrypted data")
        return ciphertext


@dataclass(frozen=True)
class PrefixedTransformer:
    prefix: bytes  # empty for identity
    transformer: ValueTransformer


class ResourceTransformer:
    """The ordered providers of one resource list: the first encrypts, all are tried to decrypt."""

    def __init__(self, transformers: list[PrefixedTransformer]):
        self.transformers = transformers

    def encrypt(self, plaintext: bytes, key: str) -> bytes:
        first = self.transformers[0]
        return first.prefix + first.transformer.encrypt(plaintext, key)

    def decrypt(self, stored: bytes, key: str) -> tuple[bytes, bool]:
        """The plaintext, and whether it was stored with anything but the first provider (stale)."""
        for index, entry in enumerate(self.transformers):
            if not stored.startswith(entry.prefix):
                continue
            try:
                return entry.transformer.decrypt(stored[len(entry.prefix):], key), index != 0
            except TransformError:
                # identity (empty prefix) matches everything: a failure there lets the later,
                # prefixed providers have their turn, as upstream does when migrating away.
                if entry.prefix:
                    raise
        raise TransformError("no matching prefix found")


class _EncryptCheck(ResourceTransformer):
    """What resources no list names use: values as they are, and an error (not ciphertext) for encrypted ones."""

    def __init__(self) -> None:
        super().__init__([PrefixedTransformer(b"", IdentityTransformer())])

    def decrypt(self, stored: bytes, key: str) -> tuple[bytes, bool]:
        return IdentityTransformer().decrypt(stored, key), False


IDENTITY: ResourceTransformer = _EncryptCheck()


# --------------------------------------------------------------------------- configuration


@dataclass(frozen=True)
class GroupResource:
    group: str  # "" for the core group, "*" for any group
    resource: str  # "*" for every resource of the group

    @classmethod
    def parse(cls, text: str) -> GroupResource:
        """`secrets` → core secrets, `deployments.apps`, `*.apps`, `*.` (core), `*.*` (everything)."""
        resource, _, group = text.partition(".")
        return cls(group, resource)


class EncryptionConfig:
    """Which transformer each resource uses (first match: exact, then `*.<group>`, then `*.*`)."""

    def __init__(self, overrides: dict[GroupResource, ResourceTransformer]):
        self.overrides = overrides
        self._by_prefix: dict[str, ResourceTransformer] = {}

    def transformer_for(self, group: str, resource: str) -> ResourceTransformer:
        for candidate in (GroupResource(group, resource), GroupResource(group, "*"), GroupResource("*", "*")):
            found = self.overrides.get(candidate)
            if found is not None:
                return found
        return IDENTITY

    def transformer_for_key(self, key: str) -> ResourceTransformer:
        """Store keys are /registry/<group or 'core'>/<plural>/..."""
        parts = key.split("/", 4)
        if len(parts) < 4 or parts[1] != "registry":
            return IDENTITY
        prefix = f"/registry/{parts[2]}/{parts[3]}/"
        found = self._by_prefix.get(prefix)
        if found is None:
            group = "" if parts[2] == "core" else parts[2]
            found = self._by_prefix[prefix] = self.transformer_for(group, parts[3])
        return found


def load_encryption_config(path: str | Path) -> EncryptionConfig:
    try:
        text = Path(path).read_text()
    except OSError as exc:
        raise EncryptionConfigError(f"error while reading encryption config file {path}: {exc}") from None
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise EncryptionConfigError(f"error while parsing encryption config file {path}: {exc}") from None
    try:
        return parse_encryption_config(doc)
    except EncryptionConfigError as exc:
        raise EncryptionConfigError(f"error while validating encryption config file {path}: {exc}") from None


def parse_encryption_config(doc: object) -> EncryptionConfig:
    """Validate as upstream's ValidateEncryptionConfiguration does; every problem is reported at once."""
    if not isinstance(doc, dict):
        raise EncryptionConfigError("EncryptionConfiguration can't be nil")
    if doc.get("apiVersion") != API_VERSION or doc.get("kind") != KIND:
        raise EncryptionConfigError(
            f"no kind {doc.get('kind')!r} is registered for version {doc.get('apiVersion')!r}: "
            f"expected apiVersion {API_VERSION} and kind {KIND}")
    resources = doc.get("resources")
    if not resources:
        raise EncryptionConfigError("resources: Required value: at least one resources is required")
    if not isinstance(resources, list):
        raise EncryptionConfigError("resources: Invalid value: must be a list")
    errors: list[str] = []
    overrides: dict[GroupResource, ResourceTransformer] = {}
    for i, entry in enumerate(resources):
        path = f"resources[{i}]"
        if not isinstance(entry, dict):
            errors.append(f"{path}: Invalid value: must be an object with resources and providers")
            continue
        names = entry.get("resources") or []
        providers = entry.get("providers") or []
        if not names:
            errors.append(f"{path}.resources: Required value: at least one {path}.resources is required")
        errors.extend(_validate_resource_names(names, f"{path}.resources"))
        if not providers:
            errors.append(f"{path}.providers: Required value: at least one {path}.providers is required")
        transformers = []
        for j, provider in enumerate(providers):
            try:
                transformers.extend(_build_provider(provider, f"{path}.providers[{j}]"))
            except EncryptionConfigError as exc:
                errors.extend(exc.args)
        if errors:
            continue
        resource_transformer = ResourceTransformer(transformers)
        for name in names:
            # A resource named by an earlier list keeps that list's providers, as upstream.
            overrides.setdefault(GroupResource.parse(name), resource_transformer)
    if errors:
        raise EncryptionConfigError("; ".join(errors))
    return EncryptionConfig(overrides)


def _validate_resource_names(names: object, path: str) -> list[str]:
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        return [f"{path}: Invalid value: must be a list of strings"]
    errors = []
    for j, name in enumerate(names):
        parsed = GroupResource.parse(name)
        problem = ""
        if name.lower() != name:
            problem = "resource name should not contain capital letters"
        elif name == "*":
            problem = "use '*.' to encrypt all the resources from core API group or *.* to encrypt all resources"
        elif name in NON_REST_RESOURCES:
            problem = "resources which do not have REST API/s cannot be encrypted"
        elif parsed.group == "events.k8s.io":
            problem = ("'*.events.k8s.io' objects are stored using the 'events' API group in etcd. "
                       "Use 'events' instead in the config file")
        elif parsed.group == "extensions":
            problem = "'extensions' group has been removed and cannot be used for encryption"
        elif parsed.group == "*" and parsed.resource != "*":
            problem = "encrypting the same resource across groups is not supported"
        if problem:
            errors.append(f"{path}[{j}]: Invalid value: {name!r}: {problem}")
    parsed_all = [GroupResource.parse(n) for n in names]
    if len(set(parsed_all)) != len(parsed_all):
        errors.append(f"{path}: Invalid value: {names}: the same resource cannot be specified multiple times")
    overlap = len(parsed_all) > 1 and any(
        a != b and (a == GroupResource("*", "*") or (a.group == b.group and "*" in (a.resource, b.resource)))
        for a in parsed_all for b in parsed_all)
    if overlap:
        errors.append(f"{path}: Invalid value: {names}: using overlapping resources such as 'secrets' and '*.' "
                      "in the same resource list is not allowed as they will be masked")
    return errors


def _build_provider(provider: object, path: str) -> list[PrefixedTransformer]:
    if not isinstance(provider, dict):
        raise EncryptionConfigError(f"{path}: Invalid value: must be an object")
    present = [name for name in PROVIDERS if name in provider]
    if not present:
        raise EncryptionConfigError(f"{path}: Invalid value: provider does not contain any of the expected "
                                    "providers: KMS, AESGCM, AESCBC, Secretbox, Identity")
    if len(present) > 1:
        raise EncryptionConfigError(f"{path}: Invalid value: more than one provider specified in a single element, "
                                    "should split into different list elements")
    name = present[0]
    if name == "identity":
        return [PrefixedTransformer(b"", IdentityTransformer())]
    if name == "kms":
        raise EncryptionConfigError(f"{path}.kms: Unsupported value: pyk8s has no KMS plugin support; "
                                    "use aesgcm, aescbc or secretbox")
    body = provider[name] if isinstance(provider[name], dict) else {}
    keys = body.get("keys") or []
    keys_path = f"{path}.{name}.keys"
    if not keys:
        raise EncryptionConfigError(f"{keys_path}: Required value: at least one keys is required")
    sizes = SECRETBOX_KEY_SIZES if name == "secretbox" else AES_KEY_SIZES
    factory: Callable[[bytes], ValueTransformer] = {
        "aesgcm": AESGCMTransformer, "aescbc": AESCBCTransformer, "secretbox": SecretboxTransformer}[name]
    errors = []
    built = []
    for k, key in enumerate(keys):
        key_path = f"{keys_path}[{k}]"
        key = key if isinstance(key, dict) else {}
        key_name, secret_text = key.get("name") or "", key.get("secret") or ""
        if not key_name:
            errors.append(f"{key_path}.name: Required value: name is a mandatory field for a key")
        if not secret_text:
            errors.append(f"{key_path}.secret: Required value: secret is a mandatory field for a key")
            continue
        try:
            secret = base64.b64decode(str(secret_text), validate=True)
        except (binascii.Error, ValueError):
            errors.append(f'{key_path}.secret: Invalid value: "REDACTED": secrets must be base64 encoded')
            continue
        if len(secret) not in sizes:
            errors.append(f'{key_path}.secret: Invalid value: "REDACTED": secret is not of the expected length, '
                          f"got {len(secret)}, expected one of [{' '.join(map(str, sizes))}]")
            continue
        if key_name:
            built.append((key_name, factory(secret)))
    if errors:
        raise EncryptionConfigError(*errors)
    # Each key is its own prefixed transformer in the resource's list, so a value written with any key but
    # the first provider's first key reads back as stale and is rewritten by the next update.
    return [PrefixedTransformer(f"k8s:enc:{name}:v1:{key_name}:".encode(), transformer)
            for key_name, transformer in built]


# --------------------------------------------------------------------------- the store wrapper


class EncryptingStore(Store):
    """Encrypts values on every write and decrypts them on every read, list, delete and watch path.

    Keys, revisions and the store's semantics are the wrapped store's. `transformer_for_key` picks the
    providers of a key (EncryptionConfig.transformer_for_key for the apiserver)."""

    def __init__(self, inner: Store, transformer_for_key: Callable[[str], ResourceTransformer]):
        self.inner = inner
        self._transformer_for_key = transformer_for_key
        # Keys last read back in a form the first provider did not write (an older key, identity):
        # an update must rewrite them even when the object is unchanged (upstream's stale flag).
        self._stale: set[str] = set()

    async def start(self) -> None:
        await self.inner.start()

    async def close(self) -> None:
        await self.inner.close()

    @property
    def current_revision(self) -> int:
        return self.inner.current_revision

    @property
    def compact_revision(self) -> int:
        return self.inner.compact_revision

    def needs_rewrite(self, key: str) -> bool:
        return key in self._stale

    def _encrypt(self, key: str, value: bytes) -> bytes:
        return self._transformer_for_key(key).encrypt(value, key)

    def _decrypt(self, kv: KeyValue) -> KeyValue:
        return self._open(kv)[0]

    def _open(self, kv: KeyValue) -> tuple[KeyValue, bool]:
        try:
            value, stale = self._transformer_for_key(kv.key).decrypt(kv.value, kv.key)
        except TransformError as exc:
            raise DecryptionError(kv.key, exc) from None
        return KeyValue(kv.key, value, kv.create_revision, kv.mod_revision), stale

    def _written(self, kv: KeyValue, value: bytes) -> KeyValue:
        self._stale.discard(kv.key)
        return KeyValue(kv.key, value, kv.create_revision, kv.mod_revision)

    async def get(self, key: str) -> KeyValue | None:
        stored = await self.inner.get(key)
        if stored is None:
            return None
        # Updates read the current object with get, so this is where staleness is noted for them.
        kv, stale = self._open(stored)
        if stale:
            self._stale.add(key)
        elif self._stale:
            self._stale.discard(key)
        return kv

    async def list(self, prefix: str, revision: int = 0, limit: int = 0, start_after: str = "") -> ListResult:
        result = await self.inner.list(prefix, revision, limit, start_after)
        return ListResult([self._decrypt(kv) for kv in result.items], result.revision, result.more)

    async def create(self, key: str, value: bytes) -> KeyValue:
        return self._written(await self.inner.create(key, self._encrypt(key, value)), value)

    async def update(self, key: str, value: bytes, expected_revision: int) -> KeyValue:
        try:
            kv = await self.inner.update(key, self._encrypt(key, value), expected_revision)
        except RevisionMismatchError as exc:
            current = None if exc.current is None else self._decrypt(exc.current)
            raise RevisionMismatchError(key, current) from None
        return self._written(kv, value)

    async def delete(self, key: str, expected_revision: int = 0) -> KeyValue:
        try:
            kv = await self.inner.delete(key, expected_revision)
        except RevisionMismatchError as exc:
            current = None if exc.current is None else self._decrypt(exc.current)
            raise RevisionMismatchError(key, current) from None
        self._stale.discard(key)
        return self._decrypt(kv)

    async def watch(self, prefix: str, from_revision: int) -> AsyncIterator[Event]:
        events = self.inner.watch(prefix, from_revision)
        try:
            async for event in events:
                prev = None if event.prev is None else self._decrypt(event.prev)
                yield Event(event.type, self._decrypt(event.kv), prev)
        finally:
            close = getattr(events, "aclose", None)
            if close is not None:
                await close()

    async def compact(self, revision: int) -> None:
        await self.inner.compact(revision)
