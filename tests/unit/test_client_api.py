"""APIClient wire behaviour against a scripted local HTTP server: retries, errors, paging, watch framing."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import orjson
import pytest
from aiohttp import web

from pyk8s.client.api import APIClient, APIConnectionError, APIStatusError, is_gone
from pyk8s.client.config import ClientConfig
from pyk8s.client.workqueue import FakeClock


class Script:
    """Answers queued per path; records every request."""

    def __init__(self):
        self.answers: dict[str, list] = {}
        self.requests: list[tuple[str, str, dict, bytes]] = []

    def on(self, path: str, *answers) -> None:
        self.answers.setdefault(path, []).extend(answers)

    async def handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        self.requests.append((request.method, request.path, dict(request.query), body))
        answer = self.answers[request.path].pop(0)
        if callable(answer):
            return await answer(request)
        status, payload, headers = answer if len(answer) == 3 else (*answer, {})
        data = payload if isinstance(payload, bytes) else orjson.dumps(payload)
        return web.Response(status=status, body=data, headers={"Content-Type": "application/json", **headers})


@pytest.fixture
async def served() -> AsyncIterator[tuple[Script, APIClient]]:
    script = Script()
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", script.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]
    async with APIClient(ClientConfig(server=f"http://127.0.0.1:{port}", token="t0k")) as client:
        yield script, client
    await runner.cleanup()


CM = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a", "namespace": "ns"}}
PATH = "/api/v1/namespaces/ns/configmaps/a"


def status(code: int, reason: str) -> dict:
    return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure", "code": code,
            "reason": reason, "message": reason.lower()}


async def test_429_is_retried_for_any_verb_honouring_retry_after(served):
    script, client = served
    script.on("/api/v1/namespaces/ns/configmaps", (429, status(429, "TooManyRequests"), {"Retry-After": "0"}),
              (429, status(429, "TooManyRequests"), {"Retry-After": "0"}), (201, CM))
    assert (await client.create(CM))["metadata"]["name"] == "a"
    assert [r[0] for r in script.requests] == ["POST"] * 3
    assert all(r[3] == orjson.dumps(CM) for r in script.requests), "the body is re-sent on every try"


async def test_5xx_with_retry_after_is_retried_only_for_idempotent_verbs(served):
    script, client = served
    script.on(PATH, (503, status(503, "ServiceUnavailable"), {"Retry-After": "0"}), (200, CM))
    assert (await client.get("configmaps", "a", "ns"))["kind"] == "ConfigMap"
    script.on(PATH, (503, status(503, "ServiceUnavailable"), {"Retry-After": "0"}))
    with pytest.raises(APIStatusError) as exc:
        await client.patch("configmaps", "a", {"data": {}}, "ns")
    assert exc.value.code == 503 and exc.value.retry_after == 0
    script.on(PATH, (500, status(500, "InternalError")))
    with pytest.raises(APIStatusError):
        await client.get("configmaps", "a", "ns")  # no Retry-After: no retry
    assert len(script.requests) == 4


async def test_retries_stop_after_ten(served):
    script, client = served
    script.on(PATH, *[(429, status(429, "TooManyRequests"), {"Retry-After": "0"})] * 11)
    with pytest.raises(APIStatusError) as exc:
        await client.get("configmaps", "a", "ns")
    assert exc.value.code == 429 and len(script.requests) == 11


async def test_non_status_errors_become_status_objects(served):
    script, client = served
    script.on(PATH, (404, b"404 page not found"))
    with pytest.raises(APIStatusError) as exc:
        await client.get("configmaps", "a", "ns")
    assert exc.value.reason == "NotFound" and exc.value.status["message"] == "404 page not found"


async def test_requests_carry_auth_user_agent_and_options(served):
    script, client = served
    script.on(PATH, (200, CM), (200, {"kind": "Status", "status": "Success"}))
    await client.patch("configmaps", "a", {"data": {"k": "v"}}, "ns", patch_type="apply",
                       field_manager="me", force=True, dry_run=True)
    await client.delete("configmaps", "a", "ns", grace_period_seconds=0, propagation_policy="Foreground",
                        preconditions={"uid": "u"})
    (_, _, query, body), (_, _, _, delete_body) = script.requests
    assert query == {"fieldManager": "me", "force": "true", "dryRun": "All"}
    assert orjson.loads(delete_body) == {"apiVersion": "v1", "kind": "DeleteOptions", "gracePeriodSeconds": 0,
                                         "propagationPolicy": "Foreground", "preconditions": {"uid": "u"}}
    with pytest.raises(ValueError):
        await client.patch("configmaps", "a", {}, "ns", patch_type="apply")  # apply needs a field manager


async def test_auth_header_and_user_agent(served):
    script, client = served
    seen = {}

    async def capture(request):
        seen.update(request.headers)
        return web.json_response(CM)

    script.on(PATH, capture)
    await client.get("configmaps", "a", "ns")
    assert seen["Authorization"] == "Bearer t0k" and seen["User-Agent"].startswith("pyk8s/")


async def test_list_follows_continue_tokens_and_falls_back_when_expired(served):
    script, client = served
    page = lambda names, cont=None: (200, {"kind": "ConfigMapList", "apiVersion": "v1",  # noqa: E731
                                           "metadata": {"resourceVersion": "9", **({"continue": cont} if cont else {})},
                                           "items": [{"metadata": {"name": n}} for n in names]})
    path = "/api/v1/namespaces/ns/configmaps"
    script.on(path, page(["a", "b"], "c1"), page(["c"]))
    result = await client.list("configmaps", "ns", limit=2, resource_version="0")
    assert [i["metadata"]["name"] for i in result["items"]] == ["a", "b", "c"]
    assert all(i["kind"] == "ConfigMap" for i in result["items"]) and "continue" not in result["metadata"]
    assert script.requests[1][2] == {"limit": "2", "continue": "c1"}, "no resourceVersion along with continue"

    script.requests.clear()
    script.on(path, page(["a", "b"], "c1"), (410, status(410, "Expired")), page(["a", "b", "c", "d"]))
    result = await client.list("configmaps", "ns", limit=2)
    assert len(result["items"]) == 4 and "limit" not in script.requests[2][2]


async def test_watch_parses_events_split_across_chunks(served):
    script, client = served
    frames = b"".join(orjson.dumps({"type": t, "object": {"metadata": {"name": n, "resourceVersion": rv}}}) + b"\n"
                      for t, n, rv in [("ADDED", "a", "1"), ("MODIFIED", "a", "2"), ("BOOKMARK", "", "3")])

    async def stream(request):
        resp = web.StreamResponse(headers={"Content-Type": "application/json"})
        await resp.prepare(request)
        for i in range(0, len(frames), 7):  # chunk boundaries inside events
            await resp.write(frames[i:i + 7])
            await asyncio.sleep(0)
        await resp.write(orjson.dumps({"type": "ERROR", "object": status(410, "Expired")}) + b"\n")
        return resp

    script.on("/api/v1/namespaces/ns/configmaps", stream)
    seen = []
    with pytest.raises(APIStatusError) as exc:
        async with client.watch("configmaps", "ns", resource_version="0", allow_watch_bookmarks=True,
                                timeout_seconds=30) as events:
            async for type_, obj in events:
                seen.append((type_, obj["metadata"]["resourceVersion"], obj.get("kind")))
    assert seen == [("ADDED", "1", "ConfigMap"), ("MODIFIED", "2", "ConfigMap"), ("BOOKMARK", "3", None)]
    assert is_gone(exc.value)
    query = script.requests[0][2]
    assert query == {"watch": "true", "resourceVersion": "0", "allowWatchBookmarks": "true", "timeoutSeconds": "30"}


async def test_connection_refused_is_an_api_connection_error():
    async with APIClient(ClientConfig(server="http://127.0.0.1:9")) as client:
        with pytest.raises(APIConnectionError):
            await client.get("configmaps", "a", "ns")


async def test_client_side_token_bucket_throttles_requests(served):
    script, plain = served
    port = plain.config.server.rsplit(":", 1)[1]
    clock = FakeClock()
    script.on(PATH, *[(200, CM)] * 4)
    async with APIClient(ClientConfig(server=f"http://127.0.0.1:{port}", qps=1, burst=2), clock=clock) as client:
        calls = [asyncio.create_task(client.get("configmaps", "a", "ns")) for _ in range(4)]
        done, _ = await asyncio.wait(calls, timeout=5, return_when=asyncio.FIRST_COMPLETED)
        await asyncio.sleep(0.1)  # room for any request that should not go out
        assert len(script.requests) == 2, "the burst goes out at once, the rest wait for tokens"
        clock.step(1)
        await asyncio.sleep(0.1)
        assert len(script.requests) == 3, "then one request per 1/qps seconds"
        clock.step(1)
        await asyncio.wait_for(asyncio.gather(*calls), 5)
        assert len(script.requests) == 4
