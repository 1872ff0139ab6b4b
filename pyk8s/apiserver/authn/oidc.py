"""Service-account issuer discovery (upstream's ServiceAccountIssuerDiscovery): an OpenID Connect
discovery document and the public keys, so other systems can verify service-account tokens."""

from __future__ import annotations

import orjson
from aiohttp import web

from .serviceaccount import ALGORITHM, TokenSigner

CONFIGURATION_PATH = "/.well-known/openid-configuration"
JWKS_PATH = "/openid/v1/jwks"
# Upstream lets verifiers cache both for an hour.
CACHE_CONTROL = "public, max-age=3600"


class IssuerDiscovery:
    def __init__(self, signer: TokenSigner, jwks_uri: str):
        self._configuration = orjson.dumps({
            "issuer": signer.issuer, "jwks_uri": jwks_uri, "response_types_supported": ["id_token"],
            "subject_types_supported": ["public"], "id_token_signing_alg_values_supported": [ALGORITHM]})
        self._jwks = orjson.dumps(signer.jwks())

    def response(self, path: str) -> web.Response | None:
        """The document served at `path`, or None for any other path."""
        if path == CONFIGURATION_PATH:
            return web.Response(body=self._configuration, headers={"Content-Type": "application/json",
                                                                    "Cache-Control": CACHE_CONTROL})
        if path == JWKS_PATH:
            return web.Response(body=self._jwks, headers={"Content-Type": "application/jwk-set+json",
                                                           "Cache-Control": CACHE_CONTROL})
        return None
