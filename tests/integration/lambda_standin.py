"""A local stand-in for the AWS Lambda Extensions API, for tests.

It implements what an extension talks to (AWS Lambda docs, "Extensions API"):
- POST /2020-01-01/extension/register  (header Lambda-Extension-Name, body
  {"events": [...]}) -> 200 with header Lambda-Extension-Identifier and a JSON body;
  a missing name or an unknown event -> 400 {"errorMessage", "errorType"}.
- GET /2020-01-01/extension/event/next (header Lambda-Extension-Identifier) blocks
  until the test queues an event (INVOKE or SHUTDOWN) -> 200 JSON event, with header
  Lambda-Extension-Event-Identifier; an unknown identifier -> 403.
- POST /2020-01-01/extension/init/error and /exit/error (header
  Lambda-Extension-Function-Error-Type) -> 202; recorded.

The test drives the phases: it waits until every registered extension has called
event/next once (the end of INIT, as Lambda does), queues INVOKEs, then a SHUTDOWN with a
deadline, and reads what was recorded.
"""
import http.server
import json
import queue
import socketserver
import threading
import time
import uuid

BASE = "/2020-01-01/extension"


class ExtensionsApi:
    def __init__(self):
        self.registered = {}            # identifier -> {"name", "events"}
        self.events = {}                # identifier -> queue of events
        self.next_calls = {}            # identifier -> count
        self.errors = []                # (path, headers, body)
        self.requests = []              # (method, path, headers)
        self.lock = threading.Lock()
        self.cond = threading.Condition(self.lock)
        api = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def reply(self, status, body=b"", headers=None):
                self.send_response(status)
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def body(self):
                n = int(self.headers.get("Content-Length") or 0)
                return self.rfile.read(n) if n else b""

            def do_POST(self):
                data = self.body()
                with api.lock:
                    api.requests.append(("POST", self.path, dict(self.headers)))
                if self.path == BASE + "/register":
                    name = self.headers.get("Lambda-Extension-Name")
                    try:
                        events = json.loads(data or b"{}").get("events", [])
                    except ValueError:
                        events = None
                    if not name or events is None or any(e not in ("INVOKE", "SHUTDOWN") for e in events):
                        return self.reply(400, json.dumps({"errorMessage": "bad registration",
                                                           "errorType": "Extension.InvalidRequest"}).encode())
                    ident = str(uuid.uuid4())
                    with api.cond:
                        api.registered[ident] = {"name": name, "events": events}
                        api.events[ident] = queue.Queue()
                        api.next_calls[ident] = 0
                        api.cond.notify_all()
                    return self.reply(200, json.dumps({"functionName": "fn", "functionVersion": "$LATEST",
                                                       "handler": "index.handler"}).encode(),
                                      {"Lambda-Extension-Identifier": ident})
                if self.path in (BASE + "/init/error", BASE + "/exit/error"):
                    with api.lock:
                        api.errors.append((self.path, dict(self.headers), data))
                    return self.reply(202, b'{"status":"OK"}')
                self.reply(404, b'{"errorMessage":"not found"}')

            def do_GET(self):
                with api.lock:
                    api.requests.append(("GET", self.path, dict(self.headers)))
                if self.path != BASE + "/event/next":
                    return self.reply(404, b'{"errorMessage":"not found"}')
                ident = self.headers.get("Lambda-Extension-Identifier")
                with api.cond:
                    q = api.events.get(ident)
                    if q is not None:
                        api.next_calls[ident] += 1
                        api.cond.notify_all()
                if q is None:
                    return self.reply(403, json.dumps({"errorMessage": "unknown extension",
                                                       "errorType": "Extension.Forbidden"}).encode())
                event = q.get()
                if event is None:           # the stand-in is stopping
                    return self.reply(500, b"{}")
                self.reply(200, json.dumps(event).encode(),
                           {"Lambda-Extension-Event-Identifier": str(uuid.uuid4())})

        class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
            daemon_threads = True
            allow_reuse_address = True

        self.server = Server(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.address = f"127.0.0.1:{self.port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        for q in list(self.events.values()):
            q.put(None)
        self.server.shutdown()
        self.server.server_close()

    def wait_init_done(self, timeout=15.0):
        """Until an extension registered and asked for its first event (INIT is over)."""
        deadline = time.monotonic() + timeout
        with self.cond:
            while not (self.registered and all(n > 0 for n in self.next_calls.values())):
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self.cond.wait(left)
        return True

    def wait_next_calls(self, ident, n, timeout=10.0):
        deadline = time.monotonic() + timeout
        with self.cond:
            while self.next_calls.get(ident, 0) < n:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self.cond.wait(left)
        return True

    def the_extension(self):
        (ident,) = self.registered
        return ident

    def invoke(self, ident, request_id=None):
        self.events[ident].put({"eventType": "INVOKE", "deadlineMs": int(time.time() * 1000) + 3000,
                                "requestId": request_id or str(uuid.uuid4()),
                                "invokedFunctionArn": "arn:aws:lambda:us-east-1:123456789012:function:fn",
                                "tracing": {"type": "X-Amzn-Trace-Id", "value": "Root=1-0-0"}})

    def shutdown_event(self, ident, reason="spindown", deadline_s=2.0):
        self.events[ident].put({"eventType": "SHUTDOWN", "shutdownReason": reason,
                                "deadlineMs": int((time.time() + deadline_s) * 1000)})
