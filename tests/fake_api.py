"""A local stand-in for the OpenAI Chat Completions and Anthropic Messages HTTP APIs, on
127.0.0.1, for tests and benchmarks. It speaks real HTTP/1.1 (keep-alive included) so the real
SDKs can be pointed at it with base_url, and it injects faults on request.

Faults are keyed by a marker in the user's message: FakeAPI(faults={"[q7]": ["429", "ok"]})
answers the first request mentioning "[q7]" with a 429 and every later one normally.
Behaviours: ok, 429, 500, timeout, drop, malformed, empty, refusal, 401.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import threading
import time
from collections import Counter
from collections.abc import Callable

DEFAULT_REPLY = (
    "## Teaching Analysis\nThe student made a reasonable start.\n\n"
    "## Step-by-Step Reasoning\n1. Read the question.\n2. Work it out.\n\n"
    "## Final Assessment\nBased on this analysis, the answer is: **[YES]**"
)
REASONS = {200: "OK", 401: "Unauthorized", 429: "Too Many Requests", 500: "Internal Server Error"}


class FakeAPI:
    def __init__(
        self,
        latency: float = 0.0,
        reply: Callable[[str], str] | None = None,
        faults: dict[str, list[str]] | None = None,
        hang_seconds: float = 30.0,
    ):
        self.latency, self.hang_seconds = latency, hang_seconds
        self.reply = reply or (lambda prompt: DEFAULT_REPLY)
        self.faults = {k: list(v) for k, v in (faults or {}).items()}
        self.seen: Counter = Counter()  # requests per fault marker
        self.requests: list[dict] = []  # path, headers, body of every request
        self.port = 0
        self._ids = itertools.count()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._ready = threading.Event()

    # -- lifecycle ----------------------------------------------------------------------------
    def start(self) -> FakeAPI:
        threading.Thread(target=self._serve, daemon=True).start()
        self._ready.wait(10)
        return self

    def stop(self) -> None:
        if self._loop:
            self._loop.call_soon_threadsafe(self._loop.stop)

    def __enter__(self) -> FakeAPI:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    @property
    def openai_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    @property
    def anthropic_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _serve(self) -> None:
        self._loop = asyncio.new_event_loop()
        server = self._loop.run_until_complete(
            asyncio.start_server(self._handle, "127.0.0.1", 0, backlog=512)
        )
        self.port = server.sockets[0].getsockname()[1]
        self._ready.set()
        self._loop.run_forever()

    # -- HTTP ---------------------------------------------------------------------------------
    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                request_line = await reader.readline()
                if not request_line:
                    break
                _, path, _ = request_line.decode().split(" ", 2)
                headers = {}
                while (line := await reader.readline()) not in (b"\r\n", b"\n", b""):
                    name, _, value = line.decode().partition(":")
                    headers[name.strip().lower()] = value.strip()
                body = await reader.readexactly(int(headers.get("content-length", 0)))
                status, extra, payload = await self._respond(path, headers, body)
                if status is None:  # "drop": close the connection without an answer
                    break
                head = [
                    f"HTTP/1.1 {status} {REASONS.get(status, 'Error')}",
                    "Content-Type: application/json",
                    f"Content-Length: {len(payload)}",
                    *(f"{k}: {v}" for k, v in extra.items()),
                ]
                writer.write(("\r\n".join(head) + "\r\n\r\n").encode() + payload)
                await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError, ValueError):
            pass
        finally:
            writer.close()

    async def _respond(self, path: str, headers: dict, body: bytes):
        request = json.loads(body or b"{}")
        self.requests.append({"path": path, "headers": headers, "body": request})
        anthropic = path.rstrip("/").endswith("/messages") and "/chat/" not in path
        prompt = "\n".join(_text(m.get("content")) for m in request.get("messages", []))
        behaviour = "ok"
        for marker, plan in self.faults.items():
            if marker in prompt:
                self.seen[marker] += 1
                behaviour = plan.pop(0) if len(plan) > 1 else plan[0]
                break
        await asyncio.sleep(self.latency)
        if behaviour == "timeout":
            await asyncio.sleep(self.hang_seconds)
        if behaviour == "drop":
            return None, {}, b""
        if behaviour == "malformed":
            return 200, {}, b'{"id": "x", "choices": [ {"message": '
        if behaviour in ("429", "500", "401"):
            code = int(behaviour)
            extra = {"Retry-After": "1"} if code == 429 else {}
            # A 401 that echoes the key back: the worst case a client must not log.
            auth = headers.get("authorization") or headers.get("x-api-key", "")
            message = f"invalid key {auth}" if code == 401 else f"fault {code}"
            error = {"type": "error", "error": {"type": "api_error", "message": message}}
            return code, extra, json.dumps(error).encode()
        text = "" if behaviour == "empty" else self.reply(prompt)
        refused = behaviour == "refusal"
        tokens_in, tokens_out = max(1, len(prompt) // 4), max(1, len(text) // 4)
        n = next(self._ids)
        if anthropic:
            payload = {
                "id": f"msg_{n}",
                "type": "message",
                "role": "assistant",
                "model": request.get("model"),
                "content": [] if refused else [{"type": "text", "text": text}],
                "stop_reason": "refusal" if refused else "end_turn",
                "stop_sequence": None,
                "usage": {"input_tokens": tokens_in, "output_tokens": tokens_out},
            }
        else:
            message = {
                "role": "assistant",
                "content": None if refused else text,
                "refusal": "I can't help with that." if refused else None,
            }
            payload = {
                "id": f"chatcmpl-{n}",
                "object": "chat.completion",
                "created": int(time.time()),
                "model": request.get("model"),
                "choices": [
                    {
                        "index": 0,
                        "message": message,
                        "logprobs": None,
                        "finish_reason": "content_filter" if refused else "stop",
                    }
                ],
                "usage": {
                    "prompt_tokens": tokens_in,
                    "completion_tokens": tokens_out,
                    "total_tokens": tokens_in + tokens_out,
                },
            }
        return 200, {}, json.dumps(payload).encode()


def _text(content) -> str:
    if isinstance(content, str):
        return content
    return "".join(part.get("text", "") for part in content or [] if isinstance(part, dict))


if __name__ == "__main__":  # a server in its own process, for benchmarks: prints its port
    import argparse

    parser = argparse.ArgumentParser(description="fake OpenAI/Anthropic server on 127.0.0.1")
    parser.add_argument("--latency", type=float, default=0.1)
    args = parser.parse_args()
    api = FakeAPI(latency=args.latency).start()
    print(api.port, flush=True)
    threading.Event().wait()
