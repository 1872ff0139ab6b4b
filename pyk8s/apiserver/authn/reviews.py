"""authentication.k8s.io/v1 reviews, answered on create and never stored: TokenReview (who does
this token stand for?) and SelfSubjectReview (who am I? — `kubectl auth whoami`)."""

from __future__ import annotations

from aiohttp import web

from ...api import errors
from ...api.meta import now_rfc3339
from ..negotiation import decode_body, media_type, read_body
from ..requestinfo import RequestInfo
from . import Authenticator, Unauthenticated, UserInfo

GROUP = "authentication.k8s.io"
API_VERSION = f"{GROUP}/v1"


def user_info(user: UserInfo) -> dict:
    """authentication.k8s.io/v1 UserInfo (empty fields left out, as Go's omitempty)."""
    out: dict = {"username": user.name}
    if user.uid:
        out["uid"] = user.uid
    if user.groups:
        out["groups"] = list(user.groups)
    if user.extra:
        out["extra"] = {k: list(v) for k, v in user.extra.items()}
    return out


async def _body(request: web.Request, kind: str) -> dict:
    body = decode_body(await read_body(request), media_type(request.headers.get("Content-Type")), kind,
                       API_VERSION)
    if body.get("kind", kind) != kind:
        raise errors.bad_request(f"the object provided is unrecognized (must be of type {kind}): {body.get('kind')}")
    metadata = body.get("metadata") or {}
    if metadata.get("namespace"):
        raise errors.bad_request(f"namespace is not allowed on this type: {metadata['namespace']}")
    return body


class AuthenticationReviews:
    """The create handlers of the authentication review kinds, keyed by (group, plural)."""

    def __init__(self, authenticator: Authenticator):
        self.authenticator = authenticator

    def handlers(self) -> dict:
        return {(GROUP, "tokenreviews"): self.token_review, (GROUP, "selfsubjectreviews"): self.self_subject_review}

    async def token_review(self, request: web.Request, info: RequestInfo, user: UserInfo) -> web.Response:
        from ..handlers import json_response

        body = await _body(request, "TokenReview")
        spec = body.get("spec") or {}
        token = spec.get("token") if isinstance(spec, dict) else None
        if not isinstance(token, str) or not token:
            raise errors.bad_request("token is required for TokenReview in authentication")
        audiences = spec.get("audiences") or []
        if not isinstance(audiences, list) or not all(isinstance(a, str) for a in audiences):
            raise errors.bad_request("TokenReview in version \"v1\" cannot be handled as a TokenReview: json: cannot "
                                     "unmarshal into Go struct field TokenReviewSpec.spec.audiences of type string")
        status: dict = {"user": {}}
        try:
            result = await self.authenticator.authenticate_token(token, audiences)
        except Unauthenticated as exc:
            if str(exc):
                status["error"] = str(exc)
        else:
            status = {"authenticated": True, "user": user_info(result.user)}
            if result.audiences:
                status["audiences"] = list(result.audiences)
        out = {"kind": "TokenReview", "apiVersion": API_VERSION, "metadata": body.get("metadata") or {},
               "spec": spec, "status": status}
        return json_response(out, status=201)

    async def self_subject_review(self, request: web.Request, info: RequestInfo, user: UserInfo) -> web.Response:
        from ..handlers import json_response

        body = await _body(request, "SelfSubjectReview")
        out = {"kind": "SelfSubjectReview", "apiVersion": API_VERSION,
               "metadata": {**(body.get("metadata") or {}), "creationTimestamp": now_rfc3339()},
               "status": {"userInfo": user_info(user)}}
        return json_response(out, status=201)
