"""A stand-in OpenAI completions server for testing the benchmark harness without a model."""
from __future__ import annotations

import argparse
import json
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def make_handler(token_delay_s: float, short_by: int, usage: bool, chunk_tokens: int):
    class Handler(BaseHTTPRequestHandler):
        # HTTP/1.0: the stream ends when the connection closes, so no chunked encoding is needed.
        protocol_version = "HTTP/1.0"

        def log_message(self, *args) -> None:  # keep the test output quiet
            pass

        def _json(self, status: int, obj: dict) -> None:
            data = json.dumps(obj).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            if self.path == "/v1/models":
                self._json(200, {"object": "list", "data": [{"id": "bench", "object": "model"}]})
            else:
                self._json(404, {"error": {"message": "not found"}})

        def do_POST(self) -> None:
            if self.path != "/v1/completions":
                self._json(404, {"error": {"message": "not found"}})
                return
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            n = max(0, int(body["max_tokens"]) - short_by)
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.end_headers()
            for start in range(0, n, chunk_tokens):
                k = min(chunk_tokens, n - start)
                time.sleep(token_delay_s * k)
                last = start + k == n
                text = "".join(f" t{i}" for i in range(start, start + k))
                event = {"choices": [{"index": 0, "text": text,
                                      "finish_reason": ("length" if short_by == 0 else "stop") if last else None}]}
                self.wfile.write(f"data: {json.dumps(event)}\n\n".encode())
                self.wfile.flush()
            if usage:
                event = {"choices": [], "usage": {"prompt_tokens": 5, "completion_tokens": n, "total_tokens": n + 5}}
                self.wfile.write(f"data: {json.dumps(event)}\n\n".encode())
            self.wfile.write(b"data: [DONE]\n\n")

    return Handler


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--token-delay", type=float, default=0.002)
    p.add_argument("--short-by", type=int, default=0, help="answer this many tokens fewer than asked")
    p.add_argument("--no-usage", action="store_true")
    p.add_argument("--chunk-tokens", type=int, default=1, help="tokens per streamed chunk")
    p.add_argument("--fail", action="store_true", help="exit at once with a message on stderr")
    a = p.parse_args()
    if a.fail:
        print("stand-in: refusing to start (asked to fail)", file=sys.stderr)
        sys.exit(3)
    server = ThreadingHTTPServer(("127.0.0.1", a.port), make_handler(a.token_delay, a.short_by, not a.no_usage, a.chunk_tokens))
    server.daemon_threads = True
    server.serve_forever()


if __name__ == "__main__":
    main()
