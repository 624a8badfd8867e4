"""A small local HTTP server that speaks OpenAI's chat-completions protocol, for tests.

``FakeOpenAI(reply)`` serves ``POST /v1/chat/completions``; ``reply(body)`` gets
the request's JSON and returns the reply texts (one per choice), or an int to
answer with that HTTP status. Requests with ``logprobs`` get the
``top_logprobs`` that ``logprobs_for(body)`` returns (``{token: logprob}``).
Every request body is kept in ``requests``.
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


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

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()
