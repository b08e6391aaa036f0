"""smcached's hardening, end to end: who may reach the socket, who the agent
runs as, socket activation as systemd does it, resource limits, and that no
secret value ever shows in a log line, an error message or the counters.

Several tests need root (other owners, dropping privileges, connecting as
another user) and are skipped without it; CI runs as root.
"""
import base64
import grp
import os
import pwd
import re
import resource
import secrets as pysecrets
import shutil
import signal
import socket
import stat
import struct
import subprocess
import sys
import tempfile
import time
import unittest

import smc_harness as h

V1 = "11111111-1111-1111-1111-111111111111"
V2 = "22222222-2222-2222-2222-222222222222"
IS_ROOT = os.geteuid() == 0


def nobody():
    """(uid, gid) of an unprivileged account, or None."""
    try:
        pw = pwd.getpwnam("nobody")
    except KeyError:
        return None
    return pw.pw_uid, pw.pw_gid


NOBODY = nobody()
NEEDS_ROOT = unittest.skipUnless(IS_ROOT and NOBODY, "needs root and a 'nobody' user")


def simple_secrets():
    return [h.secret("app/db", [h.version(V1, ["AWSCURRENT"], string="hunter2")])]


class Agent(h.Agent):
    """h.Agent with a socket path of choice and a launcher / Popen options."""

    def __init__(self, secrets=None, socket_path=None, agent_extra="", config_extra="",
                 launcher=(), connect_path=None, **popen_kw):
        super().__init__(secrets, agent_extra=agent_extra, config_extra=config_extra)
        self.socket = socket_path or self.socket
        self.agent_extra = agent_extra
        self.config_extra = config_extra
        self.write_config()
        self.launcher = list(launcher)
        self.connect_path = connect_path
        self.popen_kw = popen_kw

    def write_config(self, socket_line=True):
        with open(self.config, "w") as f:
            sock = f"socket = {self.socket}\n" if socket_line else ""
            f.write(f"[agent]\n{sock}log_level = debug\n{self.agent_extra}"
                    f"[backend]\ntype = file\n[file]\npath = {self.secrets_path}\n"
                    f"{self.config_extra}\n")

    def command(self):
        return [*self.launcher, h.SMCACHED, "-c", self.config]

    def popen_kwargs(self):
        return self.popen_kw

    def run_once(self, timeout=15, **kw):
        """Runs smcached expecting it to exit at start-up; returns (status, stderr text)."""
        p = subprocess.run([*self.launcher, h.SMCACHED, "-c", self.config], capture_output=True,
                           timeout=timeout, stdin=subprocess.DEVNULL, **{**self.popen_kw, **kw})
        return p.returncode, p.stderr.decode(errors="replace")


def proc_status(pid):
    out = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            k, _, v = line.partition(":")
            out[k] = v.split()
    return out


def proc_limit(pid, name):
    with open(f"/proc/{pid}/limits") as f:
        for line in f:
            if line.startswith(name):
                return line[len(name):].split()[:2]
    raise KeyError(name)


def connect_errno_as(uid, gid, path):
    """0 when a process running as uid:gid (no other groups) can connect to path, else errno."""
    pid = os.fork()
    if pid == 0:
        code = 255
        try:
            os.setgroups([])
            os.setgid(gid)
            os.setuid(uid)
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                s.connect(path)
                code = 0
            except OSError as e:
                code = e.errno
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    code = os.waitstatus_to_exitcode(status)
    assert code != 255, "child failed to switch user"
    return code


def mode_of(path):
    return stat.S_IMODE(os.lstat(path).st_mode)


@unittest.skipUnless(h.have_binaries(), "build/smcached and build/smcache are not built")
class SocketPermissions(unittest.TestCase):
    def test_defaults_socket_0660_in_a_created_0750_directory(self):
        a = Agent(simple_secrets())
        a.socket = os.path.join(a.dir, "run", "smcached.sock")
        a.write_config()
        with a:
            st = os.lstat(a.socket)
            self.assertTrue(stat.S_ISSOCK(st.st_mode))
            self.assertEqual(mode_of(a.socket), 0o660)
            self.assertEqual((st.st_uid, st.st_gid), (os.geteuid(), os.getegid()))
            dst = os.stat(os.path.dirname(a.socket))
            self.assertEqual(stat.S_IMODE(dst.st_mode), 0o750)
            self.assertEqual((dst.st_uid, dst.st_gid), (os.geteuid(), os.getegid()))
            self.assertEqual(a.request(h.get_frame("app/db")).get(h.T_SECRET_STRING), b"hunter2")
        self.assertFalse(os.path.exists(a.socket))

    def test_mode_is_exact_whatever_the_umask(self):
        for umask, mode, dir_mode in ((0o000, "0660", 0o750), (0o077, "0660", 0o750),
                                      (0o022, "0600", 0o700), (0o077, "0666", 0o755)):
            a = Agent(simple_secrets(), agent_extra=f"socket_mode = {mode}\n",
                      preexec_fn=lambda u=umask: os.umask(u))
            a.socket = os.path.join(a.dir, "run", "smcached.sock")
            a.write_config()
            with a:
                self.assertEqual(mode_of(a.socket), int(mode, 8), (umask, mode))
                self.assertEqual(mode_of(os.path.dirname(a.socket)), dir_mode, (umask, mode))

    @NEEDS_ROOT
    def test_owner_group_and_mode_decide_who_connects(self):
        uid, gid = NOBODY
        group_name = grp.getgrgid(gid).gr_name
        # Root-owned 0660: nobody is not let in.
        a = Agent(simple_secrets())
        os.chmod(a.dir, 0o755)
        a.socket = os.path.join(a.dir, "run", "smcached.sock")
        a.write_config()
        with a:
            self.assertEqual(connect_errno_as(uid, gid, a.socket), 13)   # EACCES
            self.assertEqual(connect_errno_as(0, 0, a.socket), 0)
        # socket_group by name: the group's members are let in; the directory follows.
        a = Agent(simple_secrets(), agent_extra=f"socket_group = {group_name}\n")
        os.chmod(a.dir, 0o755)
        a.socket = os.path.join(a.dir, "run", "smcached.sock")
        a.write_config()
        with a:
            st = os.lstat(a.socket)
            self.assertEqual((st.st_uid, st.st_gid, mode_of(a.socket)), (0, gid, 0o660))
            self.assertEqual(os.stat(os.path.dirname(a.socket)).st_gid, gid)
            self.assertEqual(connect_errno_as(uid, gid, a.socket), 0)
        # socket_user by number, mode 0600: only that user.
        a = Agent(simple_secrets(), agent_extra=f"socket_user = {uid}\nsocket_mode = 600\n")
        os.chmod(a.dir, 0o755)
        a.socket = os.path.join(a.dir, "run", "smcached.sock")
        a.write_config()
        with a:
            st = os.lstat(a.socket)
            self.assertEqual((st.st_uid, st.st_gid, mode_of(a.socket)), (uid, 0, 0o600))
            self.assertEqual(mode_of(os.path.dirname(a.socket)), 0o705)
            self.assertEqual(connect_errno_as(uid, gid, a.socket), 0)
            self.assertEqual(connect_errno_as(uid + 1 if uid < 65535 else 1, gid, a.socket), 13)

    def test_unknown_socket_user_or_group_is_a_startup_error(self):
        for key, word in (("socket_user", "user"), ("socket_group", "group")):
            a = Agent(simple_secrets(), agent_extra=f"{key} = no-such-{word}-x\n")
            try:
                rc, err = a.run_once()
                self.assertEqual(rc, 1, err)
                self.assertIn(f"[agent] {key}: no {word} 'no-such-{word}-x'", err)
                self.assertFalse(os.path.exists(a.socket))
            finally:
                a.close()

    def _refused(self, prepare, expect, socket_rel="d/smcached.sock"):
        a = Agent(simple_secrets())
        try:
            a.socket = os.path.join(a.dir, socket_rel)
            a.write_config()
            prepare(a, os.path.dirname(a.socket))
            rc, err = a.run_once()
            self.assertEqual(rc, 1, err)
            self.assertIn("refusing to start", err)
            self.assertRegex(err, expect)
            self.assertFalse(os.path.lexists(a.socket), "socket created in an unsafe directory")
        finally:
            a.close()

    def test_world_writable_directory_refused_sticky_too(self):
        def ww(mode):
            def prep(a, d):
                os.mkdir(d)
                os.chmod(d, mode)
            return prep
        self._refused(ww(0o777), r"socket directory .*/d is writable by every user \(mode 0777\)")
        self._refused(ww(0o1777), r"writable by every user \(mode 1777, sticky\)")
        self._refused(ww(0o703), r"writable by every user")

    @NEEDS_ROOT
    def test_foreign_owner_or_group_refused(self):
        uid, gid = NOBODY

        def owned_by_nobody(a, d):
            os.mkdir(d, 0o755)
            os.chown(d, uid, gid)

        def group_writable_foreign(a, d):
            os.mkdir(d)
            os.chown(d, 0, gid)
            os.chmod(d, 0o770)

        def parent_owned_by_nobody(a, d):
            os.makedirs(d, 0o755)
            os.chown(os.path.dirname(d), uid, gid)

        def parent_world_writable(a, d):
            os.makedirs(d, 0o755)
            os.chmod(os.path.dirname(d), 0o777)

        self._refused(owned_by_nobody, rf"owned by uid {uid}, not by root or the agent's user")
        self._refused(group_writable_foreign, rf"writable by group {gid} \(mode 0770\), which is not")
        self._refused(parent_owned_by_nobody, rf"above the socket directory .* owned by uid {uid}",
                      socket_rel="p/d/smcached.sock")
        self._refused(parent_world_writable, r"above the socket directory .* writable by other"
                      r" users \(mode 0777\) and not sticky", socket_rel="p/d/smcached.sock")

    def test_symlinked_directory_refused(self):
        a = Agent(simple_secrets())
        try:
            real = os.path.join(a.dir, "real")
            os.mkdir(real, 0o700)
            os.symlink(real, os.path.join(a.dir, "link"))
            a.socket = os.path.join(a.dir, "link", "smcached.sock")
            a.write_config()
            rc, err = a.run_once()
            self.assertEqual(rc, 1, err)
            self.assertIn("socket directory " + os.path.join(a.dir, "link") +
                          " is a symbolic link; refusing to start", err)
            self.assertEqual(os.listdir(real), [])
        finally:
            a.close()

    def test_group_writable_by_own_group_and_sticky_ancestor_accepted(self):
        # tempfile's directory is normally /tmp (sticky, world-writable): accepted above.
        a = Agent(simple_secrets())
        d = os.path.join(a.dir, "d")
        os.mkdir(d)
        os.chown(d, os.geteuid(), os.getegid())
        os.chmod(d, 0o770)
        a.socket = os.path.join(d, "smcached.sock")
        a.write_config()
        with a:
            self.assertEqual(a.request(h.frame(h.OP_PING)).status, h.ST_OK)


@unittest.skipUnless(h.have_binaries(), "build/smcached and build/smcache are not built")
class PrivilegeDrop(unittest.TestCase):
    @NEEDS_ROOT
    def test_runs_as_user_after_binding_and_cannot_regain_root(self):
        uid, gid = NOBODY
        a = Agent(simple_secrets() + [h.secret("app/big", [h.version(V1, ["AWSCURRENT"],
                                                                      string="b" * 60000)])],
                  agent_extra="user = nobody\n")
        os.chmod(a.dir, 0o755)              # the file backend reads as nobody
        os.chmod(a.secrets_path, 0o644)
        a.socket = os.path.join(a.dir, "run", "smcached.sock")
        a.write_config()
        with a:
            # The socket listens before the drop; a reply means the event loop, after it, runs.
            a.request(h.frame(h.OP_PING, 1))
            st = proc_status(a.pid())
            self.assertEqual(st["Uid"], [str(uid)] * 4)    # real, effective, saved, fs
            self.assertEqual(st["Gid"], [str(gid)] * 4)
            want_groups = sorted({str(g) for g in os.getgrouplist("nobody", gid)})
            self.assertEqual(sorted(st["Groups"]), want_groups)
            self.assertEqual(st["CapEff"], ["0000000000000000"])
            self.assertEqual(st["CapPrm"], ["0000000000000000"])
            self.assertEqual(st["NoNewPrivs"], ["1"])
            # The socket was made as root, then given to the agent's user and group.
            sst = os.lstat(a.socket)
            self.assertEqual((sst.st_uid, sst.st_gid, mode_of(a.socket)), (uid, gid, 0o660))
            self.assertEqual(os.stat(os.path.dirname(a.socket)).st_uid, uid)
            log = a.read_log()
            self.assertIn(f"running as uid {uid} gid {gid}", log)
            # Memory locked as root stays locked and can still grow without CAP_IPC_LOCK;
            # or, when the limit cannot be raised (no CAP_SYS_RESOURCE), best-effort
            # locks again within it or says loudly that it could not.
            # (Under AddressSanitizer memory is never locked: neither applies.)
            if "raised RLIMIT_MEMLOCK" in log:
                self.assertGreater(int(st["VmLck"][0]), 0)
                self.assertEqual(proc_limit(a.pid(), "Max locked memory"), ["unlimited", "unlimited"])
            elif "cannot raise RLIMIT_MEMLOCK to unlimited before dropping root" in log:
                if int(st["VmLck"][0]) == 0:
                    self.assertRegex(log, r"warn: mlock = best-effort: memory is NOT locked.*RLIMIT_MEMLOCK")
            else:
                self.assertEqual(int(st["VmLck"][0]), 0)
                self.assertIn("memory is NOT locked", log)
            self.assertEqual(log.count("memory is NOT locked"), 1 if "NOT locked" in log else 0)
            for i in range(50):
                with a.connect() as s:
                    s.sendall(b"".join(h.get_frame("app/big", request_id=j) for j in range(20)))
                    for _ in range(20):
                        self.assertEqual(h.read_reply(s).status, h.ST_OK)
            self.assertEqual(a.request(h.get_frame("app/db")).get(h.T_SECRET_STRING), b"hunter2")
        # The agent's user owns the directory, so it removed its socket on exit.
        self.assertFalse(os.path.exists(a.socket))

    @NEEDS_ROOT
    def test_group_only(self):
        _, gid = NOBODY
        a = Agent(simple_secrets(), agent_extra=f"group = {gid}\n")
        with a:
            st = proc_status(a.pid())
            self.assertEqual(st["Uid"], ["0"] * 4)
            self.assertEqual(st["Gid"], [str(gid)] * 4)
            self.assertEqual(st["Groups"], [str(gid)])

    @unittest.skipUnless(NOBODY and (IS_ROOT or os.geteuid() == NOBODY[0]),
                         "needs root (to start as nobody) or to be nobody")
    def test_not_root_with_user_set_is_a_clear_error(self):
        uid, gid = NOBODY
        kw = dict(user=uid, group=gid, extra_groups=[]) if IS_ROOT else {}
        a = Agent(simple_secrets(), agent_extra="user = root\n", **kw)
        try:
            os.chmod(a.dir, 0o755)
            os.chmod(a.config, 0o644)
            run = os.path.join(a.dir, "run")
            os.mkdir(run)
            os.chown(run, uid, gid)
            a.socket = os.path.join(run, "smcached.sock")
            a.write_config()
            rc, err = a.run_once()
            self.assertEqual(rc, 1, err)
            self.assertIn("[agent] user/group: running as uid 0 gid 0 needs the agent to be"
                          f" started as root, but it runs as uid {uid}", err)
            self.assertFalse(os.path.exists(a.socket))
            # Naming the user it already runs as is no change, and fine.
            a.agent_extra = "user = nobody\n"
            a.write_config()
            os.chmod(a.config, 0o644)
            with a:
                self.assertEqual(a.request(h.frame(h.OP_PING)).status, h.ST_OK)
                self.assertEqual(proc_status(a.pid())["Uid"], [str(uid)] * 4)
        finally:
            a.close()

    def test_unknown_user_or_group(self):
        for extra, want in (("user = no-such-user-x\n", "[agent] user: no user 'no-such-user-x'"),
                            ("group = no-such-group-x\n", "[agent] group: no group 'no-such-group-x'"),
                            ("user = 4000000\n", "[agent] user: uid 4000000 has no passwd entry")):
            a = Agent(simple_secrets(), agent_extra=extra)
            try:
                rc, err = a.run_once()
                self.assertEqual(rc, 1, err)
                self.assertIn(want, err)
                self.assertFalse(os.path.exists(a.socket))
            finally:
                a.close()


# Socket activation as systemd does it, without systemd: the listening socket
# becomes fd 3 of a process that then execs smcached, so LISTEN_PID (the
# launcher's own pid) is smcached's pid.
LAUNCHER = r"""
import os, sys
fd = int(os.environ.pop("SMC_TEST_FD"))
if fd != 3:
    os.dup2(fd, 3)
    os.close(fd)
os.set_inheritable(3, True)
os.environ["LISTEN_FDS"] = os.environ.pop("SMC_TEST_NFDS", "1")
os.environ["LISTEN_PID"] = os.environ.pop("SMC_TEST_PID", str(os.getpid()))
os.environ["LISTEN_FDNAMES"] = "smcached.socket"
os.execv(sys.argv[1], sys.argv[1:])
"""


@unittest.skipUnless(h.have_binaries(), "build/smcached and build/smcache are not built")
class SocketActivation(unittest.TestCase):
    def activated(self, sock, env=None, **agent_kw):
        e = dict(os.environ, SMC_TEST_FD=str(sock.fileno()), **(env or {}))
        return Agent(simple_secrets(), launcher=[sys.executable, "-c", LAUNCHER], env=e,
                     pass_fds=[sock.fileno()], **agent_kw)

    def unix_listener(self, path, kind=socket.SOCK_STREAM, listen=True):
        s = socket.socket(socket.AF_UNIX, kind)
        s.bind(path)
        if listen:
            s.listen(64)
        return s

    def test_serves_on_the_passed_socket_and_leaves_its_file(self):
        d = tempfile.mkdtemp(prefix="smc-act-")
        path = os.path.join(d, "activated.sock")
        sock = self.unix_listener(path)
        try:
            a = self.activated(sock, connect_path=path)
            with a:
                sock.close()    # only the agent holds it now
                r = a.request(h.get_frame("app/db"))
                self.assertEqual(r.get(h.T_SECRET_STRING), b"hunter2")
                self.assertEqual(a.cli("--socket", path, "get", "app/db").stdout, b"hunter2")
                # It did not create the socket of its configuration ...
                self.assertFalse(os.path.exists(a.socket))
                log = a.read_log()
                self.assertIn(f"socket activation: using {path} from systemd", log)
                self.assertIn(f"[agent] socket = {a.socket} is ignored", log)
                self.assertIn(f"listening on {path}", log)
                fd3 = os.readlink(f"/proc/{a.pid()}/fd/3")
                self.assertTrue(fd3.startswith("socket:"), fd3)
            # ... nor removed the systemd-owned file on exit.
            self.assertTrue(stat.S_ISSOCK(os.lstat(path).st_mode))
        finally:
            sock.close()
            os.unlink(path)
            os.rmdir(d)

    def test_other_pid_means_not_activated(self):
        d = tempfile.mkdtemp(prefix="smc-act-")
        path = os.path.join(d, "activated.sock")
        sock = self.unix_listener(path)
        try:
            a = self.activated(sock, env={"SMC_TEST_PID": "1"})
            with a:   # Agent.start connects to its own configured socket
                self.assertTrue(os.path.exists(a.socket))
                self.assertNotIn("socket activation", a.read_log())
        finally:
            sock.close()
            os.unlink(path)
            os.rmdir(d)

    def test_bad_activations_are_startup_errors(self):
        d = tempfile.mkdtemp(prefix="smc-act-")
        cases = []
        try:
            s = self.unix_listener(os.path.join(d, "a.sock"))
            cases.append((s, {"SMC_TEST_NFDS": "2"}, "expected LISTEN_FDS=1 (one Unix stream socket), got '2'"))
            s = self.unix_listener(os.path.join(d, "b.sock"))
            cases.append((s, {"SMC_TEST_NFDS": "x"}, "got 'x'"))
            s = self.unix_listener(os.path.join(d, "c.sock"))
            cases.append((s, {"SMC_TEST_PID": "12abc"}, "LISTEN_PID is not a number"))
            s = self.unix_listener(os.path.join(d, "dgram.sock"), socket.SOCK_DGRAM, listen=False)
            cases.append((s, {}, "fd 3 is not a Unix stream socket"))
            s = self.unix_listener(os.path.join(d, "idle.sock"), listen=False)
            cases.append((s, {}, "fd 3 is not listening"))
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind(("127.0.0.1", 0))
            s.listen(1)
            cases.append((s, {}, "fd 3 is not a Unix stream socket"))
            r, w = os.pipe()
            os.close(w)
            cases.append((r, {}, "fd 3 is not a socket"))
            for s, env, want in cases:
                fd = s if isinstance(s, int) else s.fileno()
                e = dict(os.environ, SMC_TEST_FD=str(fd), **env)
                a = Agent(simple_secrets(), launcher=[sys.executable, "-c", LAUNCHER], env=e,
                          pass_fds=[fd])
                try:
                    rc, err = a.run_once()
                    self.assertEqual(rc, 1, (want, err))
                    self.assertIn(want, err)
                    self.assertIn("socket activation", err)
                    self.assertFalse(os.path.exists(a.socket), want)
                finally:
                    a.close()
        finally:
            for s, _, _ in cases:
                if isinstance(s, int):
                    os.close(s)
                else:
                    s.close()
            for f in os.listdir(d):
                os.unlink(os.path.join(d, f))
            os.rmdir(d)


@unittest.skipUnless(shutil.which("systemd-analyze"), "systemd-analyze is not installed")
class SystemdUnits(unittest.TestCase):
    """conf/smcached.service and .socket are valid units that agree with the agent."""

    def test_units_verify_and_match_the_agent(self):
        conf = os.path.join(h.ROOT, "conf")
        with tempfile.TemporaryDirectory(prefix="smc-units-") as d:
            # ExecStart must exist and man:smcached(8) resolve for `verify` to pass.
            with open(os.path.join(conf, "smcached.service")) as f:
                service = f.read()
            self.assertIn("ExecStart=/usr/local/sbin/smcached -c /etc/smcache/smcached.conf\n", service)
            with open(os.path.join(d, "smcached.service"), "w") as f:
                f.write(service.replace("/usr/local/sbin/smcached", h.SMCACHED))
            shutil.copy(os.path.join(conf, "smcached.socket"), d)
            os.makedirs(os.path.join(d, "man", "man8"))
            os.symlink(os.path.join(h.ROOT, "man", "smcached.8"),
                       os.path.join(d, "man", "man8", "smcached.8"))
            env = dict(os.environ, MANPATH=os.path.join(d, "man"), SYSTEMD_LOG_LEVEL="warning")
            units = [os.path.join(d, "smcached.socket"), os.path.join(d, "smcached.service")]
            p = subprocess.run(["systemd-analyze", "verify", *units], capture_output=True,
                               text=True, env=env, timeout=60)
            self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
            self.assertEqual(p.stderr.strip(), "", p.stderr)
            p = subprocess.run(["systemd-analyze", "security", "--offline=true", units[1]],
                               capture_output=True, text=True, env=env, timeout=60)
            m = re.search(r"Overall exposure level for smcached.service: ([0-9.]+)", p.stdout)
            self.assertIsNotNone(m, p.stdout + p.stderr)
            self.assertLessEqual(float(m.group(1)), 2.0, p.stdout)
        with open(os.path.join(conf, "smcached.socket")) as f:
            socket_unit = f.read()
        # The socket where clients look by default, for the user the service runs as.
        self.assertIn("ListenStream=/run/smcache/smcached.sock\n", socket_unit)
        self.assertIn("SocketUser=smcache\n", socket_unit)
        self.assertIn("User=smcache\n", service)
        self.assertIn("RuntimeDirectory=smcache\n", service)
        for line in ("NoNewPrivileges=yes", "ProtectSystem=strict", "PrivateTmp=yes",
                     "PrivateDevices=yes", "MemoryDenyWriteExecute=yes", "LimitMEMLOCK=infinity",
                     "LimitCORE=0", "RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6",
                     "SystemCallArchitectures=native", "CapabilityBoundingSet=", "Restart=on-failure"):
            self.assertRegex(service, rf"(?m)^{re.escape(line)}$")


@unittest.skipUnless(h.have_binaries(), "build/smcached and build/smcache are not built")
class ResourceLimits(unittest.TestCase):
    def test_nofile_raised_to_hard_limit(self):
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        if hard < 512:
            self.skipTest(f"hard RLIMIT_NOFILE is only {hard}")
        cap = min(hard, 4096)
        a = Agent(simple_secrets(),
                  preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_NOFILE, (256, cap)))
        with a:
            self.assertEqual(proc_limit(a.pid(), "Max open files"), [str(cap), str(cap)])
            self.assertNotIn("does not fit the open-file limit", a.read_log())

    def test_warns_when_max_connections_cannot_fit(self):
        a = Agent(simple_secrets(), agent_extra="max_connections = 5000\n",
                  preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_NOFILE, (100, 1000)))
        with a:
            self.assertEqual(proc_limit(a.pid(), "Max open files"), ["1000", "1000"])
            self.assertRegex(a.read_log(), r"warn: \[agent\] max_connections = 5000 does not fit the"
                             r" open-file limit \(RLIMIT_NOFILE 1000, .*past about 936 will wait")


@unittest.skipUnless(h.have_binaries(), "build/smcached and build/smcache are not built")
class NoSecretInOutput(unittest.TestCase):
    """Every path the agent has, at log level debug; no secret value may show anywhere."""

    def setUp(self):
        tag = pysecrets.token_hex(12)
        self.markers = {
            "current": f"CUR-{tag}-{pysecrets.token_hex(8)}",
            "previous": f"PREV-{tag}-{pysecrets.token_hex(8)}",
            "pending": f"PEND-{tag}-{pysecrets.token_hex(8)}",
            "json": f"JSON-{tag}-{pysecrets.token_hex(8)}",
            "binary": f"BIN-{tag}-{pysecrets.token_hex(8)}",
            "broken": f"BROKEN-{tag}-{pysecrets.token_hex(8)}",
        }
        self.binary = b"\x00\x01" + self.markers["binary"].encode() + b"\xff"
        # What would betray a value: each marker, its random parts, and the
        # base64 forms the file holds.
        self.needles = set()
        for m in self.markers.values():
            self.needles.add(m.encode())
            self.needles.update(p.encode() for p in m.split("-")[1:])
        self.needles.add(base64.b64encode(self.binary))
        self.needles.add(base64.b64encode(self.binary)[4:24])
        self.seen = []      # (what, bytes) of everything the agent said

    def good_secrets(self):
        m = self.markers
        return [
            h.secret("app/db", [h.version(V1, ["AWSPREVIOUS"], string=m["previous"]),
                                h.version(V2, ["AWSCURRENT"], string=m["current"]),
                                h.version("33333333-3333-3333-3333-333333333333", ["AWSPENDING"],
                                          string=m["pending"])],
                     Description="database"),
            h.secret("app/json", [h.version(V1, ["AWSCURRENT"],
                                            string='{"user":"u","password":"%s"}' % m["json"])]),
            h.secret("app/blob", [h.version(V1, ["AWSCURRENT"], binary=self.binary)]),
        ]

    def note(self, what, data):
        self.seen.append((what, data if isinstance(data, bytes) else str(data).encode()))

    def cli(self, a, *args, value_expected=False):
        p = a.cli(*args)
        self.note(f"stderr of smcache {' '.join(args)}", p.stderr)
        if not value_expected:
            self.note(f"stdout of smcache {' '.join(args)}", p.stdout)
        return p

    def raw(self, a, frame_bytes, what, value_expected=False):
        with a.connect() as s:
            s.sendall(frame_bytes)
            try:
                r = h.read_reply(s)
            except (ConnectionError, OSError):
                return None
        self.note(f"message of reply to {what}", r.message)
        if not value_expected:
            self.note(f"reply to {what}", b"".join(v for _, v in r.fields))
        return r

    def test_no_marker_in_log_errors_or_stats(self):
        m = self.markers
        a = Agent(self.good_secrets(), config_extra="[cache]\nttl = 1\nnegative_ttl = 1\n")
        with a:
            # GET: miss then hit, every stage, by version id, string, JSON and binary.
            for _ in range(2):
                self.assertEqual(self.cli(a, "get", "app/db", value_expected=True).stdout,
                                 m["current"].encode())
                self.assertEqual(self.cli(a, "get", "app/db", "--version-stage", "AWSPREVIOUS",
                                          value_expected=True).stdout, m["previous"].encode())
                self.assertEqual(self.cli(a, "get", "app/db", "--version-id", V2, "--json",
                                          value_expected=True).returncode, 0)
                self.assertEqual(self.cli(a, "get", "app/blob", value_expected=True).stdout,
                                 self.binary)
                self.assertEqual(self.cli(a, "get", "app/json", "--json",
                                          value_expected=True).returncode, 0)
                r = self.raw(a, h.get_frame("app/db", stage="AWSPENDING"), "GET pending",
                             value_expected=True)
                self.assertEqual(r.get(h.T_SECRET_STRING), m["pending"].encode())
            # Not found: secret, stage, version id, stage and version id that disagree.
            self.assertEqual(self.cli(a, "get", "app/nope").returncode, 3)
            self.assertEqual(self.cli(a, "get", "app/db", "--version-stage", "NOPE").returncode, 3)
            self.assertEqual(self.cli(a, "get", "app/db", "--version-id",
                                      "44444444-4444-4444-4444-444444444444").returncode, 3)
            self.assertEqual(self.raw(a, h.get_frame("app/db", stage="AWSCURRENT", version_id=V1),
                                      "GET V1 as AWSCURRENT").status, h.ST_NOT_FOUND)
            # DESCRIBE, PING, STATS.
            for sid in ("app/db", "app/blob", "app/json"):
                self.assertEqual(self.cli(a, "describe", sid).returncode, 0)
                self.assertEqual(self.cli(a, "describe", sid, "--json").returncode, 0)
                self.raw(a, h.frame(h.OP_DESCRIBE, 3, h.field(h.T_SECRET_ID, sid)), "DESCRIBE")
            self.assertEqual(self.cli(a, "ping").returncode, 0)
            # Bad requests of every kind.
            bad = {
                "garbage": os.urandom(64),
                "oversized length": struct.pack(">I", 1 << 30) + b"x" * 16,
                "undersized frame": struct.pack(">I", 3) + b"abc",
                "unknown op": h.frame(0x42, 9),
                "bad version": h.frame(h.OP_GET, 9, h.field(h.T_SECRET_ID, "app/db"), version=9),
                "bad utf-8 id": h.frame(h.OP_GET, 9, h.field(h.T_SECRET_ID, b"app/\xff\xfe")),
                "empty id": h.frame(h.OP_GET, 9, h.field(h.T_SECRET_ID, b"")),
                "no id": h.frame(h.OP_GET, 9),
                "truncated field": h.frame(h.OP_GET, 9, h.field(h.T_SECRET_ID, "app/db")[:-2]),
                "reply op": h.frame(h.OP_GET | h.OP_REPLY, 9, h.field(h.T_SECRET_ID, "app/db")),
            }
            for what, data in bad.items():
                self.raw(a, data, what)
            # The secrets file broken in ways that put values next to the error.
            good = self.good_secrets()
            with open(a.secrets_path) as f:
                text = f.read()
            broken_files = {
                "truncated JSON": text[:text.index(m["current"]) + 10],
                "bad token after a value": text.replace(f'"{m["current"]}"', f'"{m["current"]}" x'),
                "unterminated string": text.replace(f'"{m["current"]}"', f'"{m["broken"]}'),
                "control byte in a value": text.replace(m["current"], m["broken"] + "\x01"),
            }
            broken_docs = []
            s1 = self.good_secrets()
            s1[2]["Versions"][0]["SecretBinary"] = "!!" + m["broken"] + "=="
            broken_docs.append(("bad base64", s1))
            s2 = self.good_secrets()
            s2[0]["Versions"][1]["SecretString"] = 12345
            s2[0]["Versions"][0]["Unknown" + m["broken"][:3]] = m["broken"]
            broken_docs.append(("unknown field next to a value", s2))
            s3 = self.good_secrets()
            s3[0]["Versions"][1]["VersionId"] = V1
            broken_docs.append(("duplicate version id", s3))
            for what, content in list(broken_files.items()) + broken_docs:
                if isinstance(content, str):
                    tmp = a.secrets_path + ".tmp"
                    with open(tmp, "w") as f:
                        f.write(content)
                    os.replace(tmp, a.secrets_path)
                else:
                    a.write_secrets(content)
                time.sleep(1.1)     # past ttl: the next GET asks the backend
                for sid in ("app/db", "app/blob", "app/nope"):
                    p = self.cli(a, "get", sid, value_expected=True)
                    if p.returncode != 0:
                        self.note(f"stdout of failed get {sid} ({what})", p.stdout)
                self.cli(a, "describe", "app/db")
            a.write_secrets(good)
            time.sleep(1.1)
            self.assertEqual(self.cli(a, "get", "app/db", value_expected=True).stdout,
                             m["current"].encode())
            stats = self.cli(a, "stats")
            self.assertEqual(stats.returncode, 0)
            self.assertIn(b"cache_hits", stats.stdout)
            self.raw(a, h.frame(h.OP_STATS, 5), "STATS")
            a.proc.send_signal(signal.SIGTERM)
            self.assertEqual(a.proc.wait(20), 0)
            log = a.read_log()
        self.note("agent log", log)
        # The log is the real thing, at debug, with every kind of event in it.
        self.assertIn("debug:", log)
        self.assertIn("file backend", log)
        self.assertIn("shutting down", log)
        self.assertGreater(len(self.seen), 100)
        for what, data in self.seen:
            for needle in self.needles:
                self.assertNotIn(needle, data, f"a secret value shows in the {what}")
        # The search itself works: the markers are where they belong.
        self.assertIn(m["current"], text)
        self.assertIn(base64.b64encode(self.binary).decode(), text)


if __name__ == "__main__":
    unittest.main()
