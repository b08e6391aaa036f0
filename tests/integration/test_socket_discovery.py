"""Clients find the system agent (issue 10, part 2).

With SMCACHE_SOCKET unset, a non-root client tries its per-user path and then
/run/smcache/smcached.sock, believing the system socket only when its owner and the
agent behind it are root or the `smcache` user (proto/sockpath.h). Each case runs in a
private mount namespace (`unshare -m`) with a tmpfs over /run, so the real system path
is never touched and parallel tests do not collide; the client runs as `nobody`.
"""
import os
import shutil
import subprocess
import tempfile
import unittest

import smc_harness as h

SCRIPT = r"""
set -e
mount -t tmpfs -o mode=0755 tmpfs /run
mkdir -m 0755 /run/smcache
chown "$DIR_OWNER" /run/smcache
$AGENT_PREFIX "$SMCACHED" -c "$CONF" > "$LOG" 2>&1 &
pid=$!
for i in $(seq 1 300); do [ -S /run/smcache/smcached.sock ] && break; sleep 0.02; done
set +e
setpriv --reuid nobody --regid nogroup --clear-groups \
    env -u SMCACHE_SOCKET -u XDG_RUNTIME_DIR "$SMCACHE" "$@"
rc=$?
kill -TERM $pid; wait $pid
exit $rc
"""


def can_unshare():
    if os.geteuid() != 0 or not shutil.which("unshare") or not shutil.which("setpriv"):
        return False
    r = subprocess.run(["unshare", "-m", "true"], capture_output=True)
    return r.returncode == 0


@unittest.skipUnless(h.have_binaries(), "build/smcached or build/smcache is not built")
@unittest.skipUnless(can_unshare(), "needs root, unshare -m and setpriv")
class SystemSocket(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="smc-sys-")
        os.chmod(self.dir, 0o755)
        self.secrets = os.path.join(self.dir, "secrets.json")
        doc = h.secret("app/db", [h.version("11111111-1111-1111-1111-111111111111",
                                            ["AWSCURRENT"], string="from-the-system-agent")])
        import json
        with open(self.secrets, "w") as f:
            json.dump({"Region": "us-east-1", "Account": "123456789012", "Secrets": [doc]}, f)
        os.chmod(self.secrets, 0o644)
        self.log = os.path.join(self.dir, "agent.log")

    def tearDown(self):
        shutil.rmtree(self.dir, ignore_errors=True)

    def run_ns(self, *cli, agent_user=None, dir_owner="root"):
        conf = os.path.join(self.dir, "smcached.conf")
        with open(conf, "w") as f:
            # No [agent] socket: the agent's own default (root: the system path).
            sock = "socket = /run/smcache/smcached.sock\n" if agent_user else ""
            f.write(f"[agent]\n{sock}socket_mode = 0666\n[backend]\ntype = file\n"
                    f"[file]\npath = {self.secrets}\n")
        os.chmod(conf, 0o644)
        env = dict(os.environ, SMCACHED=h.SMCACHED, SMCACHE=h.SMCACHE, CONF=conf, LOG=self.log,
                   DIR_OWNER=dir_owner,
                   AGENT_PREFIX=(f"setpriv --reuid {agent_user} --regid {agent_user} "
                                 "--clear-groups" if agent_user else ""))
        env.pop("SMCACHE_SOCKET", None)
        return subprocess.run(["unshare", "-m", "sh", "-c", SCRIPT, "sh", *cli],
                              capture_output=True, env=env, timeout=60)

    def agent_log(self):
        with open(self.log, errors="replace") as f:
            return f.read()

    def test_non_root_client_finds_the_system_agent(self):
        r = self.run_ns("get", "app/db")
        self.assertEqual(r.returncode, 0, (r.stderr, self.agent_log()))
        self.assertEqual(r.stdout, b"from-the-system-agent")

    def test_agent_of_another_user_is_refused(self):
        # An agent at the system path running as `daemon` (not root, not smcache).
        r = self.run_ns("ping", agent_user="daemon", dir_owner="daemon")
        err = r.stderr.decode()
        self.assertEqual(r.returncode, 6, (err, self.agent_log()))
        self.assertIn("/run/smcache/smcached.sock (refused: it runs as uid 1", err)
        self.assertIn("/tmp/smcache-65534/smcached.sock (No such file or directory)", err)
        self.assertIn("SMCACHE_SOCKET", err)


@unittest.skipUnless(h.have_binaries(), "build/smcached or build/smcache is not built")
class NoAgentMessage(unittest.TestCase):
    def test_error_lists_every_path_and_names_the_variable(self):
        with tempfile.TemporaryDirectory() as d:
            env = {k: v for k, v in os.environ.items() if k != "SMCACHE_SOCKET"}
            env["XDG_RUNTIME_DIR"] = d
            cmd = [h.SMCACHE, "ping"]
            if os.geteuid() == 0 and shutil.which("setpriv"):
                os.chmod(d, 0o777)
                cmd = ["setpriv", "--reuid", "nobody", "--regid", "nogroup", "--clear-groups",
                       *cmd]
            r = subprocess.run(cmd, capture_output=True, env=env, timeout=30)
            err = r.stderr.decode()
            self.assertEqual(r.returncode, 6, err)
            self.assertEqual(err.count("\n"), 1, err)
            if os.geteuid() != 0 or cmd[0] == "setpriv":
                self.assertIn(f"{d}/smcache/smcached.sock (No such file or directory)", err)
            if not os.path.exists("/run/smcache/smcached.sock"):
                self.assertIn("/run/smcache/smcached.sock (No such file or directory)", err)
            self.assertIn("set SMCACHE_SOCKET", err)


if __name__ == "__main__":
    unittest.main()
