"""An unprivileged local user against the TCP doors ([http] listen, [endpoint] listen).

On loopback TCP the agent learns who is calling from sock_diag: the uid owning the
client's socket. These tests play the user "nobody" (setpriv) against rules that let root
read and write everything and nobody only app/*.

- A client that closes its socket right after sending a request: once the agent has
  ACKed the FIN, the kernel turns the orphaned socket into a TIME_WAIT mini socket, which
  sock_diag reports with uid 0. An agent busy for that long (a SIGSTOP here stands for
  a long loop iteration on a loaded host) must not take such a caller for root: not for
  a read through the HTTP door (root's refresh budget, root's audit lines), and not for
  a write passed upstream through the Secrets Manager endpoint (peer mode checks the
  signature's form only; the uid is the whole authority).

Needs root (setpriv to nobody, SIGSTOP of the agent); skipped otherwise.
"""
import json
import os
import pwd
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import aws_moto  # noqa: E402
import smc_harness as h  # noqa: E402

TOKEN = "attacker-test-token-0123456789"
HDR = "X-Aws-Parameters-Secrets-Token"
SECRETS = [h.secret("app/db", [h.version("v1", ["AWSCURRENT"], string="app-value")]),
           h.secret("root/only", [h.version("r1", ["AWSCURRENT"], string="root-value")])]
RULES = "allow = user:root *\nallow = user:nobody app/*\n"
SETPRIV = shutil.which("setpriv")


def can_be_nobody():
    try:
        pwd.getpwnam("nobody")
    except KeyError:
        return False
    return os.geteuid() == 0 and SETPRIV is not None


def as_nobody(script, *args, timeout=60):
    """Runs python code as nobody (no groups); returns the CompletedProcess."""
    pw = pwd.getpwnam("nobody")
    return subprocess.run([SETPRIV, f"--reuid={pw.pw_uid}", f"--regid={pw.pw_gid}",
                           "--clear-groups", sys.executable, "-I", "-c", script, *args],
                          capture_output=True, text=True, timeout=timeout)


# Connects, sends argv[2] (bytes as latin-1 text) to port argv[1] and closes at once,
# without reading: the socket is orphaned with the request on its way.
SEND_AND_CLOSE = ("import socket,sys\n"
                  "s=socket.create_connection(('127.0.0.1',int(sys.argv[1])))\n"
                  "s.sendall(sys.argv[2].encode('latin-1'))\n"
                  "s.close()\n")


class Stopped:
    """The agent stopped (SIGSTOP) for the block and `hold` seconds after it: long
    enough for the kernel to ACK a client's FIN and turn its socket into TIME_WAIT."""

    def __init__(self, agent, hold=0.5):
        self.pid, self.hold = agent.pid(), hold

    def __enter__(self):
        os.kill(self.pid, signal.SIGSTOP)
        return self

    def __exit__(self, *exc):
        time.sleep(self.hold)
        os.kill(self.pid, signal.SIGCONT)
        return False


def wait_for(predicate, timeout=10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = predicate()
        if got:
            return got
        time.sleep(0.05)
    return predicate()


@unittest.skipUnless(h.have_binaries(), "needs build/smcached")
@unittest.skipUnless(can_be_nobody(), "needs root and setpriv to act as nobody")
class ClosedClientIsNotRoot(unittest.TestCase):
    """A caller whose socket is closed by the time the agent asks sock_diag."""

    def test_http_door_read_from_a_closed_socket_is_not_roots(self):
        port = aws_moto.free_port()
        tmp = tempfile.mkdtemp(prefix="smc-attack-")
        self.addCleanup(shutil.rmtree, tmp, True)
        os.chmod(tmp, 0o755)
        audit = os.path.join(tmp, "audit.log")
        extra = (f"[http]\nlisten = 127.0.0.1:{port}\n[access]\n{RULES}"
                 f"[audit]\nlevel = all\nfile = {audit}\n")
        with h.Agent(SECRETS, config_extra=extra, env={"AWS_TOKEN": TOKEN}) as a:
            req = (f"GET /secretsmanager/get?secretId=root/only&refreshNow=true HTTP/1.1\r\n"
                   f"Host: localhost:{port}\r\n{HDR}: {TOKEN}\r\n\r\n")
            # Control: nobody reading on an open connection is denied, as nobody.
            r = as_nobody("import socket,sys\n"
                          "s=socket.create_connection(('127.0.0.1',int(sys.argv[1])))\n"
                          "s.sendall(sys.argv[2].encode());print(s.recv(100).decode())\n",
                          str(port), req)
            self.assertIn("403", r.stdout, r.stderr)
            with Stopped(a):
                r = as_nobody(SEND_AND_CLOSE, str(port), req)
                self.assertEqual(r.returncode, 0, r.stderr)
            # Both requests reached a decision.
            def decided():
                with open(audit) as f:
                    got = [l for l in f.read().splitlines()
                           if 'id="root/only"' in l and "door=http" in l]
                return got if len(got) >= 2 else None
            lines = wait_for(decided) or []
            self.assertEqual(len(lines), 2, lines)
            self.assertNotIn("decision=allowed", lines[1],
                             "nobody's request from a closed socket was judged as root's")
            self.assertNotIn(" uid=0 ", lines[1])


@unittest.skipUnless(aws_moto.have_moto() and h.have_binaries(),
                     "needs boto3, moto_server and build/smcached")
@unittest.skipUnless(can_be_nobody(), "needs root and setpriv to act as nobody")
class ClosedClientCannotWriteAsRoot(unittest.TestCase):
    def test_forwarded_write_from_a_closed_socket_is_refused(self):
        from botocore.auth import SigV4Auth
        from botocore.awsrequest import AWSRequest
        from botocore.credentials import Credentials

        moto = aws_moto.Moto().start()
        self.addCleanup(moto.stop)
        sm = moto.client()
        sm.create_secret(Name="root/db", SecretString="root-original")
        port = aws_moto.free_port()
        with aws_moto.AwsAgent(endpoint=moto.url, cache_extra=(
                f"negative_ttl = 0\n[endpoint]\nlisten = 127.0.0.1:{port}\nforward = yes\n"
                "[access]\nallow = user:root *\nallow_write = user:root *\n")) as a:
            def raw_put(value):
                body = json.dumps({"SecretId": "root/db", "SecretString": value})
                req = AWSRequest(method="POST", url=f"http://127.0.0.1:{port}/", data=body,
                                 headers={"Content-Type": "application/x-amz-json-1.1",
                                          "X-Amz-Target": "secretsmanager.PutSecretValue"})
                SigV4Auth(Credentials("AKIDNOBODY0000000001", "any"), "secretsmanager",
                          aws_moto.REGION).add_auth(req)
                head = "".join(f"{k}: {v}\r\n" for k, v in req.headers.items())
                return (f"POST / HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n{head}"
                        f"Content-Length: {len(body)}\r\n\r\n{body}")
            # Control: nobody's write on an open connection is refused.
            r = as_nobody("import socket,sys\n"
                          "s=socket.create_connection(('127.0.0.1',int(sys.argv[1])))\n"
                          "s.sendall(sys.argv[2].encode());print(s.recv(4096).decode())\n",
                          str(port), raw_put("nobody-was-here-1"))
            self.assertIn("AccessDeniedException", r.stdout, r.stderr)
            with Stopped(a):
                r = as_nobody(SEND_AND_CLOSE, str(port), raw_put("nobody-was-here-2"))
                self.assertEqual(r.returncode, 0, r.stderr)
            # The agent has handled it once it answers again.
            a.stats()
            time.sleep(1.0)
            self.assertEqual(sm.get_secret_value(SecretId="root/db")["SecretString"],
                             "root-original", "nobody wrote root's secret through the agent")
            self.assertNotRegex(a.read_log(), r"decision=allowed.*PutSecretValue|"
                                              r"PutSecretValue.*decision=allowed")


if __name__ == "__main__":
    unittest.main()
