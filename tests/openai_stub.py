"""A tiny local OpenAI-compatible chat-completions server for tests that must not touch the network.

Usage:
    with OpenAIStubServer(lambda body: "Answer A is better. [[A]]") as server:
        client_call(base_url=server.base_url)          # e.g. "http://127.0.0.1:PORT/v1"
        server.requests                                  # JSON bodies received, in order
        server.request_headers                           # their headers (dict), in the same order

`responder(body: dict)` gets the decoded request body of POST {base_url}/chat/completions and returns
  - str: the assistant message content, wrapped in a standard chat.completion reply;
  - dict: the complete JSON reply body, sent as is with status 200;
  - tuple (status: int, body: dict | str): that HTTP status with a JSON (dict) or plain-text body.
An exception raised by the responder becomes HTTP 500 with the exception text.
`GET {base_url}/models` lists one model, "stub-model". Any other path answers 404.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

Reply = str | dict | tuple


def chat_completion_body(content: str, model: str = "stub-model") -> dict:
    """The minimal chat.completion reply shape OpenAI clients read."""
    return {
        "id": "chatcmpl-stub",
        "object": "chat.completion",
        "created": 0,
        "model": model,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0},
    }


class OpenAIStubServer:
    def __init__(self, responder: Callable[[dict], Reply], host: str = "127.0.0.1"):
        self.responder = responder
        self.requests: list[dict] = []
        self.request_headers: list[dict] = []
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer((host, 0), self._handler_class())
        self._server.daemon_threads = True
        self._thread: threading.Thread | None = None
        host, port = self._server.server_address[:2]
        self.base_url = f"http://{host}:{port}/v1"

    def __enter__(self) -> "OpenAIStubServer":
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def _reply_for(self, body: dict) -> tuple[int, dict | str]:
        try:
            reply = self.responder(body)
        except Exception as error:  # the stub reports responder bugs to the client instead of hanging
            return 500, {"error": {"message": f"stub responder raised {type(error).__name__}: {error}"}}
        if isinstance(reply, str):
            return 200, chat_completion_body(reply, body.get("model", "stub-model"))
        if isinstance(reply, dict):
            return 200, reply
        if isinstance(reply, tuple) and len(reply) == 2 and isinstance(reply[0], int):
            return reply
        return 500, {"error": {"message": f"stub responder returned {type(reply).__name__}; "
                                          "expected str, dict or (status, body)"}}

    def _handler_class(self):
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:
                pass

            def _send(self, status: int, body: dict | str) -> None:
                is_json = not isinstance(body, str)
                data = (json.dumps(body) if is_json else body).encode("utf-8")
                self.send_response(status)
                self.send_header("Content-Type", "application/json" if is_json else "text/plain")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:
                if self.path.rstrip("/").endswith("/models"):
                    self._send(200, {"object": "list", "data": [{"id": "stub-model", "object": "model"}]})
                else:
                    self._send(404, {"error": {"message": f"no route {self.path}"}})

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length)
                if not self.path.rstrip("/").endswith("/chat/completions"):
                    self._send(404, {"error": {"message": f"no route {self.path}"}})
                    return
                try:
                    body = json.loads(raw.decode("utf-8"))
                except (UnicodeDecodeError, json.JSONDecodeError) as error:
                    self._send(400, {"error": {"message": f"request body is not JSON: {error}"}})
                    return
                with stub._lock:
                    stub.requests.append(body)
                    stub.request_headers.append(dict(self.headers.items()))
                status, reply = stub._reply_for(body)
                self._send(status, reply)

        return Handler
