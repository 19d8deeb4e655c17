"""HTTP boundary helpers: request validation answering 422 with named fields, JSON error responses.

BentoML validates an API's pydantic input itself, but answers 400 and logs a traceback per bad request.
`ValidateJSON` is a plain ASGI middleware that validates the body of the routes it is given first and answers
``422 {"error": "<field>: <reason>", "detail": [...]}``; valid bodies are replayed to BentoML untouched.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from pydantic import BaseModel, ValidationError

from serving.schemas import describe_validation_error, error_body

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

MAX_BODY_BYTES = 64 * 1024


async def send_json(send: Send, status: int, body: dict[str, Any]) -> None:
    payload = json.dumps(body).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(payload)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": payload})


class ValidateJSON:
    """Validate the JSON body of ``POST <route>`` against ``models[route]`` before the app sees it."""

    def __init__(self, app: ASGIApp, models: dict[str, type[BaseModel]]) -> None:
        self.app = app
        self.models = models

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        model = self.models.get(scope.get("path", "")) if scope["type"] == "http" else None
        if model is None or scope.get("method") != "POST":
            await self.app(scope, receive, send)
            return
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > MAX_BODY_BYTES:
                await send_json(send, 413, error_body(f"body: larger than {MAX_BODY_BYTES} bytes"))
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        try:
            model.model_validate_json(body or b"{}")
        except ValidationError as exc:
            await send_json(send, 422, describe_validation_error(exc).model_dump())
            return

        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)
