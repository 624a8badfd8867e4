"""A small local HTTP server that speaks OpenAI's chat-completions protocol, for tests.

``FakeOpenAI(reply)`` serves ``POST /v1/chat/completions``; ``reply(body)`` gets
the request's JSON and returns the reply texts (one per choice), or an int to
answer with that HTTP status, or a ``Raw`` to answer with exactly that body (a
hostile server: HTML, malformed JSON, a document without choices, a body
dripped one byte at a time). Requests with ``logprobs`` get the
``top_logprobs`` that ``logprobs_for(body)`` returns (``{token: logprob}``).
Every request body is kept in ``requests``.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class Raw:
    """A scripted reply: ``body`` (a dict or list is sent as JSON, a str or bytes as is).

    ``drip`` > 0 sends the response one byte every ``drip`` seconds: all of it,
    status line and headers included, or only the body if ``drip_head`` is False.
    """

    body: object
    status: int = 200
    content_type: str = "application/json"
    drip: float = 0.0
    drip_head: bool = True


class FakeOpenAI:
    def __init__(self, reply, logprobs_for=None):
        self.reply, self.logprobs_for = reply, logprobs_for
        self.requests: list[dict] = []
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # keep test output clean
                pass

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                fake.requests.append(body)
                if not self.path.endswith("/chat/completions"):
                    return self._send(404, {"error": {"message": "not found"}})
                out = fake.reply(body)
                if isinstance(out, Raw):
                    return self._send_raw(out)
                if isinstance(out, int):
                    return self._send(out, {"error": {"message": f"scripted status {out}"}})
                choices = []
                for i, text in enumerate(out):
                    choice = {
                        "index": i,
                        "message": {"role": "assistant", "content": text},
                        "finish_reason": "stop",
                    }
                    if body.get("logprobs"):
                        top = fake.logprobs_for(body)
                        first = max(top, key=top.get)
                        choice["logprobs"] = {
                            "content": [
                                {
                                    "token": first,
                                    "logprob": top[first],
                                    "bytes": None,
                                    "top_logprobs": [
                                        {"token": t, "logprob": lp, "bytes": None} for t, lp in top.items()
                                    ],
                                }
                            ]
                        }
                    choices.append(choice)
                usage = {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}
                self._send(
                    200,
                    {
                        "id": "x",
                        "object": "chat.completion",
                        "created": 0,
                        "model": body["model"],
                        "choices": choices,
                        "usage": usage,
                    },
                )

            def _send(self, status, doc):
                data = json.dumps(doc).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _send_raw(self, raw: Raw):
                data = raw.body
                if isinstance(data, dict | list) or data is None:
                    data = json.dumps(data)
                data = data.encode() if isinstance(data, str) else data
                head = (
                    f"HTTP/1.1 {raw.status} X\r\nContent-Type: {raw.content_type}\r\n"
                    f"Content-Length: {len(data)}\r\nConnection: close\r\n\r\n"
                ).encode()
                self.close_connection = True
                try:
                    if not raw.drip:
                        self.wfile.write(head + data)
                        return
                    if not raw.drip_head:
                        self.wfile.write(head)
                        head = b""
                    for i in range(len(head + data)):
                        self.wfile.write((head + data)[i : i + 1])
                        self.wfile.flush()
                        time.sleep(raw.drip)
                except OSError:  # the client hung up, as it should on a dripping server
                    pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True  # a dripping handler must not hold up shutdown
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()
