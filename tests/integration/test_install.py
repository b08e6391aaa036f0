"""`make install` staged into a temporary DESTDIR gives a service that starts.

Installs with a real PREFIX (/opt/smcache) into a DESTDIR, then checks: the list of files
and the soname links; the units carry the real paths and pass `systemd-analyze verify`
(skipped without systemd-analyze); the INSTALLED smcached starts with the INSTALLED
configuration (its paths moved into the staging directory, as DESTDIR requires) and sends
READY=1 on a NOTIFY_SOCKET this test listens on once its prefetch is loaded; the INSTALLED
smcache reads a secret from it; the staged smcache.pc works under PKG_CONFIG_SYSROOT_DIR, and
a program compiled against the staged header and library runs; `make uninstall` leaves
nothing but directories, and keeps a configuration edited since it was installed.
"""
import os
import re
import shutil
import socket
import subprocess
import tempfile
import time
import unittest

import smc_harness as h

PREFIX = "/opt/smcache"
SYSCONFDIR = "/etc"


def make(*args, destdir):
    cmd = ["make", "-s", "--no-print-directory", f"BUILD={h.BUILD}", f"PREFIX={PREFIX}",
           f"SYSCONFDIR={SYSCONFDIR}", f"DESTDIR={destdir}", *args]
    if "asan" in os.path.basename(h.BUILD.rstrip("/")):
        cmd.append("SANITIZE=1")
    return subprocess.run(cmd, cwd=h.ROOT, capture_output=True, text=True, timeout=600)


def files_under(root):
    """Every non-directory below root, relative to it."""
    out = set()
    for d, _, files in os.walk(root):
        for f in files:
            out.add(os.path.relpath(os.path.join(d, f), root))
    return out


@unittest.skipUnless(h.have_binaries(), "build/smcached and build/smcache are not built")
class StagedInstall(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="smc-install-")
        cls.dest = os.path.join(cls.tmp, "stage")
        p = make("install", destdir=cls.dest)
        if p.returncode != 0:
            raise AssertionError(f"make install failed:\n{p.stdout}\n{p.stderr}")

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def staged(self, path):
        return self.dest + path

    def read(self, path):
        with open(self.staged(path)) as f:
            return f.read()

    def test_1_installed_files(self):
        files = files_under(self.dest)
        for path in ("opt/smcache/sbin/smcached", "opt/smcache/bin/smcache",
                     "opt/smcache/lib/libsmcache.a", "opt/smcache/lib/libsmcache.so",
                     "opt/smcache/lib/libsmcache.so.0", "opt/smcache/include/smcache.h",
                     "opt/smcache/lib/pkgconfig/smcache.pc",
                     "opt/smcache/lib/systemd/system/smcached.service",
                     "opt/smcache/lib/systemd/system/smcached.socket",
                     "opt/smcache/share/smcache/example-secrets.json",
                     "opt/smcache/share/man/man1/smcache.1", "opt/smcache/share/man/man3/libsmcache.3",
                     "opt/smcache/share/man/man5/smcached.conf.5",
                     "opt/smcache/share/man/man8/smcached.8", "etc/smcache/smcached.conf"):
            self.assertIn(path, files)
        lib = self.staged(f"{PREFIX}/lib")
        self.assertEqual(os.readlink(os.path.join(lib, "libsmcache.so.0")), "libsmcache.so.0.1.0")
        self.assertEqual(os.readlink(os.path.join(lib, "libsmcache.so")), "libsmcache.so.0.1.0")
        soname = subprocess.run(["objdump", "-p", os.path.join(lib, "libsmcache.so.0.1.0")],
                                capture_output=True, text=True).stdout
        self.assertRegex(soname, r"SONAME\s+libsmcache\.so\.0\b")
        self.assertEqual(os.stat(self.staged(f"{SYSCONFDIR}/smcache/smcached.conf")).st_mode & 0o777, 0o640)

    def test_2_real_paths_in_units_and_config(self):
        service = self.read(f"{PREFIX}/lib/systemd/system/smcached.service")
        self.assertIn(f"ExecStart={PREFIX}/sbin/smcached -c {SYSCONFDIR}/smcache/smcached.conf\n", service)
        self.assertNotIn("/usr/local", service)
        for line in ("Type=notify", "ExecReload=/bin/kill -HUP $MAINPID", "RuntimeDirectory=smcache",
                     "LogsDirectory=smcache", "StateDirectory=smcache"):
            self.assertRegex(service, rf"(?m)^{re.escape(line)}$")
        conf = self.read(f"{SYSCONFDIR}/smcache/smcached.conf")
        self.assertRegex(conf, rf"(?m)^path = {re.escape(PREFIX)}/share/smcache/example-secrets.json$")
        self.assertRegex(conf, r"(?m)^socket = /run/smcache/smcached.sock$")
        self.assertNotRegex(conf, r"(?m)^path = conf/")
        # The installed config is valid as it stands. --check-config reads the data file it
        # names, which is staged: check a copy whose data path points into the stage.
        staged_conf = os.path.join(self.tmp, "check.conf")
        with open(staged_conf, "w") as f:
            f.write(conf.replace(f"path = {PREFIX}/share/", f"path = {self.staged(PREFIX)}/share/"))
        os.chmod(staged_conf, 0o600)
        p = subprocess.run([self.staged(f"{PREFIX}/sbin/smcached"), "--check-config", "-c", staged_conf],
                           capture_output=True, text=True, timeout=30)
        self.assertEqual(p.returncode, 0, p.stderr)

    @unittest.skipUnless(shutil.which("systemd-analyze"), "systemd-analyze is not installed")
    def test_3_units_verify(self):
        # verify wants ExecStart to exist: point it at the staged binary; man:smcached(8) must
        # resolve in the staged man pages.
        d = os.path.join(self.tmp, "units")
        os.makedirs(d, exist_ok=True)
        units = []
        for name in ("smcached.socket", "smcached.service"):
            text = self.read(f"{PREFIX}/lib/systemd/system/{name}")
            with open(os.path.join(d, name), "w") as f:
                f.write(text.replace(f"{PREFIX}/sbin/smcached", self.staged(f"{PREFIX}/sbin/smcached")))
            units.append(os.path.join(d, name))
        env = dict(os.environ, MANPATH=self.staged(f"{PREFIX}/share/man"), SYSTEMD_LOG_LEVEL="warning")
        p = subprocess.run(["systemd-analyze", "verify", *units], capture_output=True, text=True,
                           env=env, timeout=60)
        self.assertEqual((p.returncode, p.stderr.strip()), (0, ""), p.stdout + p.stderr)

    def test_4_installed_agent_starts_with_installed_config(self):
        sock_dir = os.path.join(self.tmp, "run")
        sock = os.path.join(sock_dir, "smcached.sock")
        # DESTDIR only stages: what the config names under PREFIX is under the stage here.
        conf = self.read(f"{SYSCONFDIR}/smcache/smcached.conf")
        conf = conf.replace(f"path = {PREFIX}/", f"path = {self.dest}{PREFIX}/")
        conf = conf.replace("socket = /run/smcache/smcached.sock", f"socket = {sock}")
        conf = conf.replace("#prefetch = demo/db-password, demo/api-key",
                            "prefetch = demo/db-password, demo/api-key")
        self.assertIn(f"socket = {sock}\n", conf)
        self.assertIn("\nprefetch = demo/db-password", conf)
        conf_path = os.path.join(self.tmp, "smcached.conf")
        with open(conf_path, "w") as f:
            f.write(conf)

        notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        name = f"smc-test-install-{os.getpid()}"
        notify.bind("\0" + name)
        notify.settimeout(30 * h.WRAPPER_SLOWDOWN)
        log_path = os.path.join(self.tmp, "agent.log")
        env = dict(os.environ, NOTIFY_SOCKET="@" + name)
        env.pop("SMCACHE_SOCKET", None)
        with open(log_path, "wb") as log:
            agent = subprocess.Popen([*h.WRAPPER, self.staged(f"{PREFIX}/sbin/smcached"), "-c", conf_path],
                                     stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, env=env)
        try:
            try:
                msg = notify.recv(4096).decode()
            except socket.timeout:
                self.fail("no READY=1 on NOTIFY_SOCKET:\n" + open(log_path).read())
            self.assertTrue(msg.startswith("READY=1\n"), msg)
            self.assertIn("prefetch: 2 loaded, 0 failed", msg)
            with open(log_path) as f:
                log = f.read()
            # Readiness came after the socket listened and the prefetch list was loaded.
            self.assertIn("prefetch: demo/db-password loaded", log)
            self.assertIn("prefetch: demo/api-key loaded", log)
            self.assertIn(f"listening on {sock}", log)

            cli = self.staged(f"{PREFIX}/bin/smcache")
            p = subprocess.run([cli, "--socket", sock, "get", "demo/db-password"],
                               capture_output=True, timeout=30)
            self.assertEqual(p.returncode, 0, p.stderr)
            self.assertTrue(len(p.stdout) > 0)
            st = subprocess.run([cli, "--socket", sock, "stats"], capture_output=True, text=True,
                                timeout=30)
            self.assertRegex(st.stdout, r"(?m)^cache_hits\s*[=:]?\s*[1-9]")

            # SIGHUP: RELOADING=1, then READY=1 again; SIGTERM: STOPPING=1.
            agent.send_signal(1)
            self.assertTrue(notify.recv(4096).decode().startswith("RELOADING=1\nMONOTONIC_USEC="))
            self.assertTrue(notify.recv(4096).decode().startswith("READY=1\nSTATUS=serving; configuration reloaded"))
            agent.terminate()
            self.assertEqual(notify.recv(4096), b"STOPPING=1")
            self.assertEqual(agent.wait(timeout=20 * h.WRAPPER_SLOWDOWN), 0, open(log_path).read())
        finally:
            if agent.poll() is None:
                agent.kill()
                agent.wait()
            notify.close()

    def test_5_pkg_config_and_a_program_against_the_staged_library(self):
        # libsodium (Requires.private) comes from the system's own search path.
        env = dict(os.environ, PKG_CONFIG_SYSROOT_DIR=self.dest,
                   PKG_CONFIG_PATH=self.staged(f"{PREFIX}/lib/pkgconfig"))
        flags = subprocess.run(["pkg-config", "--cflags", "--libs", "smcache"], capture_output=True,
                               text=True, env=env, timeout=30)
        self.assertEqual(flags.returncode, 0, flags.stderr)
        # (libsodium's own -I/usr/include gets the sysroot too: pkg-config's doing, harmless.)
        for flag in (f"-I{self.dest}{PREFIX}/include", f"-L{self.dest}{PREFIX}/lib", "-lsmcache"):
            self.assertIn(flag, flags.stdout.split())
        self.assertNotIn(f"-I{PREFIX}/include", flags.stdout.split())
        static = subprocess.run(["pkg-config", "--libs", "--static", "smcache"], capture_output=True,
                                text=True, env=env, timeout=30)
        self.assertIn("-lsodium", static.stdout.split(), static.stderr)
        version = subprocess.run(["pkg-config", "--modversion", "smcache"], capture_output=True,
                                 text=True, env=env).stdout.strip()
        self.assertEqual(version, "0.1.0")
        src = os.path.join(self.tmp, "prog.c")
        with open(src, "w") as f:
            f.write('#include <stdio.h>\n#include <string.h>\n#include <smcache.h>\n'
                    'int main(void) {\n'
                    '\tsmc_error err;\n'
                    '\tsmc_client *c = smc_connect("/nonexistent/smcached.sock", 100, &err);\n'
                    '\tif (c != NULL || err.code != SMC_ERR_UNREACHABLE) return 1;\n'
                    '\tprintf("%s\\n", smc_version());\n'
                    '\treturn 0;\n}\n')
        exe = os.path.join(self.tmp, "prog")
        cc = subprocess.run(["cc", "-o", exe, src, *flags.stdout.split(), *h.sanitizer_cflags()],
                            capture_output=True,
                            text=True, timeout=120)
        self.assertEqual(cc.returncode, 0, cc.stderr)
        needed = subprocess.run(["objdump", "-p", exe], capture_output=True, text=True).stdout
        self.assertRegex(needed, r"NEEDED\s+libsmcache\.so\.0\b")
        run_env = dict(os.environ, LD_LIBRARY_PATH=self.staged(f"{PREFIX}/lib"), LD_DEBUG="libs")
        p = subprocess.run([exe], capture_output=True, text=True, env=run_env, timeout=30)
        self.assertEqual((p.returncode, p.stdout), (0, "0.1.0\n"), p.stderr[-2000:])
        # The staged library is the one that was loaded.
        self.assertIn(self.staged(f"{PREFIX}/lib/libsmcache.so.0"), p.stderr)


@unittest.skipUnless(h.have_binaries(), "build/smcached and build/smcache are not built")
class Watchdog(unittest.TestCase):
    def test_watchdog_pings_at_half_the_period(self):
        notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        name = f"smc-test-watchdog-{os.getpid()}"
        notify.bind("\0" + name)
        notify.settimeout(10 * h.WRAPPER_SLOWDOWN)
        # WATCHDOG_PID names another process: not meant for the agent, no pings.
        with h.Agent([], env={"NOTIFY_SOCKET": "@" + name, "WATCHDOG_USEC": "400000",
                              "WATCHDOG_PID": "1"}) as a:
            self.assertTrue(notify.recv(4096).startswith(b"READY=1"))
            notify.settimeout(0.6)
            with self.assertRaises(socket.timeout):
                notify.recv(4096)
        notify.settimeout(10 * h.WRAPPER_SLOWDOWN)
        while True:     # drain STOPPING=1
            try:
                notify.settimeout(0.2)
                notify.recv(4096)
            except socket.timeout:
                break
        notify.settimeout(10 * h.WRAPPER_SLOWDOWN)
        with h.Agent([], env={"NOTIFY_SOCKET": "@" + name, "WATCHDOG_USEC": "400000"}) as a:
            msgs, start = [], time.monotonic()
            while time.monotonic() - start < 1.5:
                msgs.append((time.monotonic(), notify.recv(4096)))
            pings = [t for t, m in msgs if m == b"WATCHDOG=1"]
            self.assertIn(b"READY=1", [m.split(b"\n")[0] for _, m in msgs])
            # Every 200 ms (half of 400 ms): about 7 in 1.5 s; at least 4 under load.
            self.assertGreaterEqual(len(pings), 4, msgs)
            self.assertRegex(a.read_log(), r"watchdog: pinging systemd every 200 ms")
        notify.close()


@unittest.skipUnless(h.have_binaries(), "build/smcached and build/smcache are not built")
class Uninstall(unittest.TestCase):
    def test_uninstall_removes_exactly_what_install_wrote(self):
        with tempfile.TemporaryDirectory(prefix="smc-uninstall-") as d:
            dest = os.path.join(d, "stage")
            # Something of someone else's in the same directories stays.
            os.makedirs(dest + f"{PREFIX}/lib")
            other = dest + f"{PREFIX}/lib/libother.so"
            open(other, "w").close()
            p = make("install", destdir=dest)
            self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
            self.assertGreater(len(files_under(dest)), 15)
            p = make("uninstall", destdir=dest)
            self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
            self.assertEqual(files_under(dest), {os.path.relpath(other, dest)})

            # An edited configuration is kept, and said so; everything else goes.
            p = make("install", destdir=dest)
            self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
            conf = dest + f"{SYSCONFDIR}/smcache/smcached.conf"
            with open(conf, "a") as f:
                f.write("# edited by the operator\n")
            # A second install keeps it (and still knows it installed it).
            p = make("install", destdir=dest)
            self.assertIn("keeping the existing", p.stdout)
            p = make("uninstall", destdir=dest)
            self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
            self.assertIn("changed since it was installed", p.stdout)
            self.assertEqual(files_under(dest), {os.path.relpath(other, dest),
                                                 os.path.relpath(conf, dest)})

            # Nothing installed: a clear error.
            p = make("uninstall", destdir=dest)
            self.assertNotEqual(p.returncode, 0)
            self.assertIn("nothing installed there", p.stderr)


if __name__ == "__main__":
    unittest.main()
