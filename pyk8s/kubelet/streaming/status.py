"""metav1.Status documents the streaming endpoints answer with (HTTP errors and the exec error channel)."""

from __future__ import annotations

import json

import grpc
from aiohttp import web

from pyk8s.kubelet.runtime.cri import CRIError

SUCCESS = {"metadata": {}, "status": "Success"}


def failure(code: int, reason: str, message: str) -> dict:
    return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure", "message": message,
            "reason": reason, "code": code}


def error_response(code: int, reason: str, message: str) -> web.Response:
    return web.json_response(failure(code, reason, message), status=code)


def bad_request(message: str) -> web.Response:
    return error_response(400, "BadRequest", message)


def runtime_error_response(exc: Exception) -> web.Response:
    """The kubelet's answer when the runtime refused to prepare a session (gRPC code mapped like upstream)."""
    if isinstance(exc, CRIError):
        if exc.code == grpc.StatusCode.NOT_FOUND:
            return error_response(404, "NotFound", exc.details)
        if exc.code == grpc.StatusCode.INVALID_ARGUMENT:
            return bad_request(exc.details)
        return error_response(500, "InternalError", f"Internal error occurred: {exc.details}")
    return error_response(500, "InternalError", f"Internal error occurred: {exc}")


def internal_error_status(message: str) -> dict:
    return {"metadata": {}, "status": "Failure", "message": f"Internal error occurred: {message}",
            "reason": "InternalError", "details": {"causes": [{"message": message}]}, "code": 500}


def status_text(raw: bytes) -> str:
    """The error text a v1 client expects for a Status (empty for Success)."""
    try:
        status = json.loads(raw)
    except ValueError:
        return raw.decode(errors="replace")
    if not isinstance(status, dict) or status.get("status") == "Success":
        return ""
    return str(status.get("message", ""))
