"""moto_server as a stand-in for AWS in integration tests (see /work/shared/notes/moto.md).

- Moto: a moto_server on a free loopback port, optionally in IAM-auth mode, with boto3
  clients bound to it (fake credentials passed explicitly, never read from the
  environment) and helpers to reset it and switch signature checking on.
- FaultProxy: a small HTTP proxy in front of moto that counts requests by X-Amz-Target,
  keeps the last requests seen, and injects faults (an HTTP status with a body, a delay,
  a dropped connection, a hang) for chosen operations.
- AwsAgent: smc_harness.Agent configured for `[backend] type = aws`, with an environment
  scrubbed of the caller's AWS settings.
- setup_iam_user: an IAM user, access key and inline-equivalent managed policy (auth mode).

Nothing here talks to real AWS: every client and agent is pointed at 127.0.0.1.
"""
import http.client
import http.server
import json
import os
import shutil
import socket
import socketserver
import ssl
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request

import smc_harness

REGION = "us-east-1"
ACCOUNT = "123456789012"
FAKE_KEY = "AKIAIOSFODNN7EXAMPLE"
FAKE_SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"


def have_moto():
    """True when boto3 and moto_server are available."""
    try:
        import boto3  # noqa: F401
    except ImportError:
        return False
    return shutil.which("moto_server") is not None


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _http(method, url, body=None, timeout=5.0, ca=None):
    # text/plain: with urllib's default form type, werkzeug hides the body from moto.
    req = urllib.request.Request(url, data=body, method=method,
                                 headers={"Content-Type": "text/plain"})
    context = ssl.create_default_context(cafile=ca) if ca is not None else None
    with urllib.request.urlopen(req, timeout=timeout, context=context) as r:
        return r.status, r.read()


def make_tls_files(directory, name="test"):
    """A throw-away CA and a server certificate it signed for 127.0.0.1 and localhost,
    made with the openssl CLI in directory. Returns (ca, cert, key) paths."""
    def path(suffix):
        return os.path.join(directory, f"{name}-{suffix}")

    def run(*args):
        subprocess.run(["openssl", *args], check=True, capture_output=True, timeout=60)

    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    run("req", "-x509", *ec, "-keyout", path("ca.key"), "-out", path("ca.pem"), "-days", "2",
        "-subj", f"/CN=smcache {name} CA", "-addext", "basicConstraints=critical,CA:TRUE",
        "-addext", "keyUsage=critical,keyCertSign,cRLSign")
    run("req", *ec, "-keyout", path("server.key"), "-out", path("server.csr"),
        "-subj", "/CN=localhost")
    with open(path("server.ext"), "w") as f:
        f.write("subjectAltName = IP:127.0.0.1, DNS:localhost\nbasicConstraints = CA:FALSE\n"
                "keyUsage = critical, digitalSignature\nextendedKeyUsage = serverAuth\n")
    run("x509", "-req", "-in", path("server.csr"), "-CA", path("ca.pem"), "-CAkey", path("ca.key"),
        "-CAcreateserial", "-out", path("server.pem"), "-days", "2", "-extfile", path("server.ext"))
    return path("ca.pem"), path("server.pem"), path("server.key")


class Moto:
    """A moto_server on 127.0.0.1. Use as a context manager or call start()/stop().

    auth_free_actions: when not None, IAM-auth mode (INITIAL_NO_AUTH_ACTION_COUNT): that
    many requests are free, then every request is signature-checked and IAM-evaluated.
    tls: None for plain HTTP, or (ca, cert, key) paths (make_tls_files) to serve HTTPS with
    that certificate; url is then https://, and clients verify against ca.
    """

    def __init__(self, auth_free_actions=None, port=None, tls=None):
        self.port = port or free_port()
        self.tls = tls
        self.url = f"{'https' if tls else 'http'}://127.0.0.1:{self.port}"
        self.ca = tls[0] if tls else None
        self.auth_free_actions = auth_free_actions
        self.proc = None
        self.log = None

    def start(self, timeout=30.0):
        env = dict(os.environ)
        for k in list(env):
            if k.startswith("AWS_"):
                del env[k]
        if self.auth_free_actions is not None:
            env["INITIAL_NO_AUTH_ACTION_COUNT"] = str(self.auth_free_actions)
        self.log = open(os.devnull, "wb")
        tls = ["-c", self.tls[1], "-k", self.tls[2]] if self.tls else []
        self.proc = subprocess.Popen(["moto_server", "-H", "127.0.0.1", "-p", str(self.port), *tls],
                                     stdin=subprocess.DEVNULL, stdout=self.log,
                                     stderr=subprocess.STDOUT, env=env)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"moto_server exited with {self.proc.returncode}")
            try:
                _http("GET", self.url + "/moto-api/", timeout=1.0, ca=self.ca)
                return self
            except (OSError, urllib.error.URLError):
                time.sleep(0.05)
        self.stop()
        raise AssertionError("moto_server did not start")

    def stop(self):
        if self.proc is not None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
            self.proc = None
        if self.log is not None:
            self.log.close()
            self.log = None

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
        return False

    def client(self, service="secretsmanager", key=FAKE_KEY, secret=FAKE_SECRET, token=None):
        import boto3
        from botocore.config import Config
        return boto3.client(service, endpoint_url=self.url, region_name=REGION,
                            aws_access_key_id=key, aws_secret_access_key=secret,
                            aws_session_token=token, verify=self.ca,
                            config=Config(retries={"max_attempts": 1, "mode": "standard"}))

    def reset(self):
        """Forgets every resource."""
        _http("POST", self.url + "/moto-api/reset", ca=self.ca)

    def reset_auth(self, free_actions=0):
        """Auth mode: the next free_actions requests are free, then checks resume."""
        _http("POST", self.url + "/moto-api/reset-auth", str(free_actions).encode(), ca=self.ca)


def module_hooks(module_name, run):
    """setUpModule and tearDownModule for a test module whose tests share one default-mode
    moto_server as the module's global MOTO (None when not run):
    `setUpModule, tearDownModule = aws_moto.module_hooks(__name__, RUN)`."""
    mod = sys.modules[module_name]

    def set_up():
        if run:
            mod.MOTO = Moto().start()

    def tear_down():
        if getattr(mod, "MOTO", None) is not None:
            mod.MOTO.stop()
            mod.MOTO = None

    return set_up, tear_down


def setup_iam_user(moto, name, actions):
    """Creates an IAM user allowed `actions` (e.g. ["secretsmanager:*"]) on every resource.
    Returns (access_key_id, secret_access_key). Uses 4 requests (free ones in auth mode)."""
    iam = moto.client("iam")
    iam.create_user(UserName=name)
    key = iam.create_access_key(UserName=name)["AccessKey"]
    policy = iam.create_policy(PolicyName=f"{name}-policy", PolicyDocument=json.dumps({
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": actions, "Resource": "*"}],
    }))
    iam.attach_user_policy(UserName=name, PolicyArn=policy["Policy"]["Arn"])
    return key["AccessKeyId"], key["SecretAccessKey"]


def rotate(sm, secret_id, new_value, token=None):
    """A rotation as Secrets Manager performs it (RotateSecret needs a Lambda moto cannot
    run): the new value as AWSPENDING, then AWSCURRENT moved onto it. Returns the new
    version id."""
    kw = {"SecretString": new_value} if isinstance(new_value, str) else {"SecretBinary": new_value}
    if token:
        kw["ClientRequestToken"] = token
    new = sm.put_secret_value(SecretId=secret_id, VersionStages=["AWSPENDING"], **kw)["VersionId"]
    current = [v["VersionId"] for v in sm.list_secret_version_ids(SecretId=secret_id)["Versions"]
               if "AWSCURRENT" in v.get("VersionStages", [])][0]
    sm.update_secret_version_stage(SecretId=secret_id, VersionStage="AWSCURRENT",
                                   MoveToVersionId=new, RemoveFromVersionId=current)
    return new


# ---- the fault proxy --------------------------------------------------------------------------

_HOP_BY_HOP = {"connection", "keep-alive", "proxy-connection", "transfer-encoding", "te",
               "trailer", "upgrade"}


class Fault:
    """What the proxy does instead of forwarding: kind is "status" (answer status/body),
    "delay" (wait `seconds`, then forward), "drop" (close the connection unanswered) or
    "hang" (read the request, never answer until the proxy stops)."""

    def __init__(self, kind, status=500, body=b"", content_type="application/x-amz-json-1.1",
                 seconds=0.0, headers=None):
        self.kind = kind
        self.status = status
        self.body = body.encode() if isinstance(body, str) else body
        self.content_type = content_type
        self.seconds = seconds
        self.headers = headers or {}

    @classmethod
    def error(cls, status, code, message="injected", **kw):
        return cls("status", status=status, body=json.dumps({"__type": code, "message": message}),
                   **kw)

    @classmethod
    def throttle(cls):
        return cls.error(400, "ThrottlingException", "Rate exceeded")

    @classmethod
    def server_error(cls):
        return cls("status", status=500, body="<html><body>500 Internal Server Error</body></html>",
                   content_type="text/html")


class _ProxyHandler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def setup(self):
        super().setup()
        with self.server.fault_proxy._lock:
            self.server.fault_proxy.connections += 1
        self.server.fault_proxy._gauge("connections", +1)

    def finish(self):
        try:
            super().finish()
        finally:
            self.server.fault_proxy._gauge("connections", -1)

    def do_POST(self):
        proxy = self.server.fault_proxy
        proxy._gauge("requests", +1)
        try:
            self._post(proxy)
        finally:
            proxy._gauge("requests", -1)

    def _post(self, proxy):
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        target = self.headers.get("X-Amz-Target", "")
        op = target.split(".", 1)[-1] if target else ""
        fault = proxy._record(op, dict(self.headers.items()), body)
        if fault is not None:
            if fault.kind == "status":
                self._answer(fault.status, fault.body, fault.content_type, fault.headers)
                return
            if fault.kind == "drop":
                self.close_connection = True
                try:
                    self.connection.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                return
            if fault.kind == "hang":
                proxy._stopping.wait()
                self.close_connection = True
                return
            if fault.kind == "delay":
                time.sleep(fault.seconds)
        self._forward(body)

    do_GET = do_POST
    do_PUT = do_POST

    def _answer(self, status, body, content_type, headers=None):
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        try:
            self.wfile.write(body)
        except OSError:
            pass

    def _forward(self, body):
        proxy = self.server.fault_proxy
        conn = http.client.HTTPConnection("127.0.0.1", proxy.upstream_port, timeout=30)
        try:
            # Headers exactly as received (Host included): the signature covers them.
            conn.putrequest(self.command, self.path, skip_host=True, skip_accept_encoding=True)
            for k, v in self.headers.items():
                if k.lower() not in _HOP_BY_HOP:
                    conn.putheader(k, v)
            conn.endheaders(body)
            resp = conn.getresponse()
            data = resp.read()
        except OSError as e:
            self._answer(502, str(e).encode(), "text/plain")
            return
        finally:
            conn.close()
        self.send_response(resp.status)
        for k, v in resp.getheaders():
            if k.lower() not in _HOP_BY_HOP and k.lower() != "content-length":
                self.send_header(k, v)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        try:
            self.wfile.write(data)
        except OSError:
            pass


class _ThreadingServer(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    allow_reuse_address = True


class FaultProxy:
    """An HTTP proxy on 127.0.0.1 in front of moto (use its url as the agent's endpoint);
    HTTPS with tls=(ca, cert, key).

    counts: requests seen per operation (the X-Amz-Target after "secretsmanager.").
    connections: connections accepted so far.
    requests: the last 200 requests as (op, headers, body).
    inject(op, *faults): the next requests for op get these faults, in order ("*": any op).
    peak("connections"|"requests"): the most open at once (TCP connections from the agent,
    requests being answered) since start or reset_peaks().
    """

    def __init__(self, upstream_port, tls=None):
        self.upstream_port = upstream_port
        self._lock = threading.Lock()
        self._faults = {}
        self._stopping = threading.Event()
        self.counts = {}
        self.requests = []
        self._now = {"connections": 0, "requests": 0}
        self._peak = dict(self._now)
        self.connections = 0   # accepted so far
        self.server = _ThreadingServer(("127.0.0.1", 0), _ProxyHandler)
        self.server.fault_proxy = self
        self.port = self.server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        if tls is not None:
            # HTTPS to the agent with (ca, cert, key) from make_tls_files; unlike moto it
            # keeps connections open, as Secrets Manager does. Plain HTTP to moto.
            context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            context.load_cert_chain(tls[1], tls[2])
            self.server.socket = context.wrap_socket(self.server.socket, server_side=True)
            self.url = f"https://127.0.0.1:{self.port}"
        self.thread = None

    def start(self):
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        return self

    def stop(self):
        self._stopping.set()
        self.server.shutdown()
        self.server.server_close()
        if self.thread is not None:
            self.thread.join(timeout=5)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
        return False

    def inject(self, op, *faults):
        with self._lock:
            self._faults.setdefault(op, []).extend(faults)

    def clear(self):
        with self._lock:
            self._faults.clear()
            self.counts.clear()
            self.requests.clear()

    def _gauge(self, name, delta):
        with self._lock:
            self._now[name] += delta
            self._peak[name] = max(self._peak[name], self._now[name])

    def peak(self, name):
        with self._lock:
            return self._peak[name]

    def reset_peaks(self):
        with self._lock:
            self._peak = dict(self._now)

    def count(self, op):
        with self._lock:
            return self.counts.get(op, 0)

    def last(self, op):
        """The last request for op as (headers, parsed JSON body); AssertionError if none."""
        with self._lock:
            for o, headers, body in reversed(self.requests):
                if o == op:
                    return headers, json.loads(body or b"{}")
            seen = [o for o, _, _ in self.requests]
        raise AssertionError(f"no {op} request went through the proxy (saw {seen})")

    def _record(self, op, headers, body):
        with self._lock:
            self.counts[op] = self.counts.get(op, 0) + 1
            self.requests.append((op, headers, body))
            del self.requests[:-200]
            for key in (op, "*"):
                queue = self._faults.get(key)
                if queue:
                    return queue.pop(0)
        return None


# ---- the agent --------------------------------------------------------------------------------

class AwsAgent(smc_harness.Agent):
    """smcached with `[backend] type = aws`.

    endpoint/region: written to [aws] unless None (then the environment decides).
    aws_extra: more [aws] lines, e.g. "upstream_timeout = 3\\n".
    key/secret/token: the agent's credentials, given through the environment; None for
    no credentials at all. The caller's AWS_* variables are never passed on, and the
    shared files and instance metadata are turned off so nothing real is ever used.
    """

    def __init__(self, endpoint=None, region=REGION, aws_extra="", cache_extra="negative_ttl = 0\n",
                 key=FAKE_KEY, secret=FAKE_SECRET, token=None, env=None, agent_extra=""):
        clean = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
        super().__init__(env=None, agent_extra=agent_extra)
        self.env = clean
        self.env.update({
            "AWS_CONFIG_FILE": os.path.join(self.dir, "aws-config"),
            "AWS_SHARED_CREDENTIALS_FILE": os.path.join(self.dir, "aws-credentials"),
            "AWS_EC2_METADATA_DISABLED": "true",
        })
        if key is not None:
            self.env["AWS_ACCESS_KEY_ID"] = key
            self.env["AWS_SECRET_ACCESS_KEY"] = secret
        if token is not None:
            self.env["AWS_SESSION_TOKEN"] = token
        self.env.update(env or {})
        aws = ""
        if region is not None:
            aws += f"region = {region}\n"
        if endpoint is not None:
            aws += f"endpoint = {endpoint}\n"
        with open(self.config, "w") as f:
            f.write(f"[agent]\nsocket = {self.socket}\nlog_level = debug\n{agent_extra}"
                    f"[backend]\ntype = aws\n[aws]\n{aws}{aws_extra}[cache]\n{cache_extra}")

    def get(self, secret_id, *args, timeout=30):
        """`smcache get`: returns (exit status, stdout bytes, stderr text)."""
        r = self.cli("get", secret_id, *args, timeout=timeout)
        return r.returncode, r.stdout, r.stderr.decode(errors="replace")
