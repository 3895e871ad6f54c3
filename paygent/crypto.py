"""Secrets at rest: wallet keys and webhook signing secrets sealed with AES-256-GCM under the master key; API keys
stored as hashes."""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import secrets
import uuid

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

API_KEY_PREFIX = "pgk_"


def new_master_key() -> str:
    return base64.urlsafe_b64encode(os.urandom(32)).decode()


def decode_master_key(text: str) -> bytes:
    key = base64.urlsafe_b64decode(text.encode())
    if len(key) != 32:
        raise ValueError("master key must be 32 bytes, urlsafe-base64 encoded")
    return key


def seal(master_key: bytes, plaintext: bytes, *, context: bytes) -> bytes:
    """Encrypt; `context` (e.g. the wallet id) is bound as associated data so ciphertexts cannot be swapped."""
    nonce = os.urandom(12)
    return nonce + AESGCM(master_key).encrypt(nonce, plaintext, context)


def unseal(master_key: bytes, sealed: bytes, *, context: bytes) -> bytes:
    return AESGCM(master_key).decrypt(sealed[:12], sealed[12:], context)


def seal_webhook_secret(master_key: bytes, webhook_id: uuid.UUID, secret: str) -> bytes:
    """A webhook's signing secret at rest, bound to its webhook (a sealed secret moved to another row won't open)."""
    return seal(master_key, secret.encode(), context=_webhook_context(webhook_id))


def unseal_webhook_secret(master_key: bytes, webhook_id: uuid.UUID, sealed: bytes) -> str:
    return unseal(master_key, sealed, context=_webhook_context(webhook_id)).decode()


def _webhook_context(webhook_id: uuid.UUID) -> bytes:
    return b"webhook:" + webhook_id.bytes  # distinct from wallet contexts (a bare wallet id)


def channel_attestation(
    master_key: bytes, *, approval_id: str, decision: str, actor: str, channel: str, request_id: str
) -> str:
    """The API's proof that it sent a decision (so the audit may say `api`/`cli`): an HMAC over what was decided,
    by whom and under which request id, with a key derived from the master key. It opens nothing, so it may sit in
    workflow history; copied onto another request (another id, actor or decision) it no longer matches."""
    key = hmac.new(master_key, b"paygent:channel-attestation:v1", hashlib.sha256).digest()
    message = "\n".join((approval_id, decision, actor, channel, request_id)).encode()
    return hmac.new(key, message, hashlib.sha256).hexdigest()


def new_api_key() -> str:
    return API_KEY_PREFIX + secrets.token_urlsafe(32)


def hash_api_key(api_key: str) -> str:
    """API keys are 256-bit random tokens, so a plain SHA-256 is a sound, indexable verifier."""
    return hashlib.sha256(api_key.encode()).hexdigest()
