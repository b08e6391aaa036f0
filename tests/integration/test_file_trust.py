"""Files another user can write are not trusted (issue 9 section 7), /dev/null as
an AWS shared file, and --check-config failing on what start-up fails on.

  - a world-writable configuration is refused at start-up, naming the fix;
  - the attack: an unprivileged user appends `allow = user:nobody *` to a
    world-writable configuration and a routine SIGHUP follows: the reload is
    refused, the running rules stay, and that user still cannot read others'
    secrets (the same text applies once the file is made safe, so the refusal
    is the trust rule's doing);
  - a world-writable secrets file (at start-up, and made so while running) and a
    group-writable directory on its path are refused;
  - a world-writable AWS shared credentials file is refused, naming the variable;
  - AWS_CONFIG_FILE=/dev/null and AWS_SHARED_CREDENTIALS_FILE=/dev/null (and an
    empty file) mean "no profiles"; a device that does not read empty is an
    error naming the variable;
  - --check-config fails on a missing, unreadable (as the agent's user) or
    unsafe data file and on an unreadable credentials file.
"""
import os
import re
import signal
import subprocess
import tempfile
import time
import unittest

import smc_harness as h
import test_access as ta

V1 = "11111111-1111-1111-1111-111111111111"


def start_fails(config, env=None):
    """Runs smcached -c config; expects exit 1 before it listens; returns stderr."""
    p = subprocess.run([h.SMCACHED, "-c", config], capture_output=True, timeout=20,
                       env=env, stdin=subprocess.DEVNULL)
    if p.returncode != 1:
        raise AssertionError(f"smcached exited {p.returncode}:\n{p.stderr.decode(errors='replace')}")
    return p.stderr.decode(errors="replace")


def read(path):
    with open(path) as f:
        return f.read()


def check_config(config, env=None):
    p = subprocess.run([h.SMCACHED, "--check-config", "-c", config], capture_output=True,
                       timeout=20, env=env, stdin=subprocess.DEVNULL)
    return p.returncode, p.stdout.decode(errors="replace") + p.stderr.decode(errors="replace")


@unittest.skipIf(ta.SKIP, ta.SKIP or "")
class UntrustedConfiguration(unittest.TestCase):
    def test_world_writable_config_refused_at_start(self):
        a = h.Agent(ta.secrets())
        try:
            os.chmod(a.config, 0o666)
            err = start_fails(a.config)
            self.assertIn(f"fix: chmod go-w {a.config}", err)
            self.assertIn("writable by group and others (mode 0666)", err)
            rc, out = check_config(a.config)
            self.assertEqual(rc, 1, out)
            os.chmod(a.config, 0o620)
            self.assertIn(f"fix: chmod g-w {a.config}", start_fails(a.config))
            # Owned by another user (not root, not the agent's): refused too.
            os.chmod(a.config, 0o644)
            os.chown(a.config, 65534, 65534)
            self.assertIn("is owned by uid 65534", start_fails(a.config))
        finally:
            a.close()

    def test_unsafe_directory_refused(self):
        a = h.Agent(ta.secrets())
        try:
            os.chmod(a.dir, 0o770)
            err = start_fails(a.config)
            self.assertIn(f"directory {a.dir} is writable by group", err)
            self.assertIn(f"fix: chmod g-w {a.dir}", err)
            # Sticky, like /tmp: fine.
            os.chmod(a.dir, 0o1777)
            rc, out = check_config(a.config)
            self.assertEqual(rc, 0, out)
        finally:
            a.close()

    def test_sighup_after_an_unprivileged_append_keeps_the_running_rules(self):
        with ta.AccessAgent() as agent:
            self.assertEqual(agent.cli_as(ta.NOBODY, ta.NOGROUP, "get", "app/allowed")[1], 0)
            _, rc, _, err = agent.cli_as(ta.NOBODY, ta.NOGROUP, "get", "app/other")
            self.assertEqual((rc, err), (4, b"smcache: access denied\n"))
            # The mistake, then the attack: nobody appends a rule for itself.
            os.chmod(agent.config, 0o666)
            _, rc, _, err = agent.run(ta.as_user(ta.NOBODY, ta.NOGROUP, "sh", "-c",
                                                 f"printf '\\n[access]\\nallow = user:{ta.NOBODY} *\\n'"
                                                 f" >> {agent.config}"))
            self.assertEqual(rc, 0, err)
            log = agent.sighup()
            self.assertRegex(log, r"error: reload failed, the running configuration stays: "
                             + re.escape(agent.config) + r": unsafe: .*writable by group and others"
                             r".*fix: chmod go-w " + re.escape(agent.config))
            for sid in ("app/other", "app/root-only", "ops/tool"):
                _, rc, out, err = agent.cli_as(ta.NOBODY, ta.NOGROUP, "get", sid)
                self.assertEqual((rc, err), (4, b"smcache: access denied\n"), sid)
                for v in ta.VALUES:
                    self.assertNotIn(v.encode(), out)
            _, rc, out, _ = agent.cli_as(ta.NOBODY, ta.NOGROUP, "get", "app/allowed")
            self.assertEqual((rc, out), (0, b"allowed-value-7f3a"))
            # Control: the same text, once the file is safe again, does apply.
            os.chmod(agent.config, 0o644)
            log = agent.sighup()
            self.assertIn("reload: access control on", log)
            _, rc, out, _ = agent.cli_as(ta.NOBODY, ta.NOGROUP, "get", "app/other")
            self.assertEqual((rc, out), (0, b"other-value-91c2"))


@unittest.skipUnless(h.have_binaries(), "build/smcached and build/smcache are not built")
class UntrustedSecretsFile(unittest.TestCase):
    def test_world_writable_secrets_refused_at_start(self):
        a = h.Agent(ta.secrets())
        try:
            os.chmod(a.secrets_path, 0o666)
            err = start_fails(a.config)
            self.assertIn(f"cannot read secrets file {a.secrets_path}: unsafe", err)
            self.assertIn(f"fix: chmod go-w {a.secrets_path}", err)
            rc, out = check_config(a.config)
            self.assertEqual(rc, 1, out)
            self.assertIn(f"fix: chmod go-w {a.secrets_path}", out)
        finally:
            a.close()

    def test_secrets_made_world_writable_while_running(self):
        with h.Agent(ta.secrets()) as a:
            r = a.request(h.get_frame("app/other"))
            self.assertEqual(r.status, h.ST_OK, r.message)
            os.chmod(a.secrets_path, 0o666)
            r = a.request(h.get_frame("app/allowed"))
            self.assertEqual(r.status, h.ST_UPSTREAM_UNAVAILABLE)
            self.assertIn(f"fix: chmod go-w {a.secrets_path}", r.message)
            self.assertIsNone(r.get(h.T_SECRET_STRING))
            os.chmod(a.secrets_path, 0o644)
            r = a.request(h.get_frame("app/allowed"))
            self.assertEqual(r.status, h.ST_OK, r.message)


AWS_CONF = "[agent]\nsocket = {sock}\n[backend]\ntype = aws\n[aws]\nregion = us-east-1\n{extra}"


@unittest.skipUnless(h.have_binaries(), "build/smcached and build/smcache are not built")
class AwsSharedFiles(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="smc-trust-")
        self.config = os.path.join(self.dir, "smcached.conf")
        self.write_config()
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
        self.env.update(AWS_EC2_METADATA_DISABLED="true")

    def tearDown(self):
        subprocess.run(["rm", "-rf", self.dir])

    def write_config(self, extra=""):
        with open(self.config, "w") as f:
            f.write(AWS_CONF.format(sock=os.path.join(self.dir, "s.sock"), extra=extra))

    def write(self, name, text, mode):
        path = os.path.join(self.dir, name)
        with open(path, "w") as f:
            f.write(text)
        os.chmod(path, mode)
        return path

    def test_world_writable_credentials_refused(self):
        creds = self.write("credentials", "[default]\naws_access_key_id = AKIDEXAMPLE\n"
                           "aws_secret_access_key = secret-example\n", 0o666)
        env = dict(self.env, AWS_SHARED_CREDENTIALS_FILE=creds, AWS_CONFIG_FILE="/dev/null")
        err = start_fails(self.config, env)
        self.assertIn(f"AWS_SHARED_CREDENTIALS_FILE={creds}: unsafe", err)
        self.assertIn(f"fix: chmod go-w {creds}", err)
        rc, out = check_config(self.config, env)
        self.assertEqual(rc, 1, out)
        self.assertIn(f"AWS_SHARED_CREDENTIALS_FILE={creds}", out)
        os.chmod(creds, 0o600)
        rc, out = check_config(self.config, env)
        self.assertEqual(rc, 0, out)

    def test_dev_null_and_empty_files_are_no_profiles(self):
        empty = self.write("empty", "", 0o600)
        keys = dict(AWS_ACCESS_KEY_ID="AKIDEXAMPLE", AWS_SECRET_ACCESS_KEY="secret-example")
        for config_file, creds_file in (("/dev/null", "/dev/null"), (empty, empty),
                                        ("/dev/null", empty)):
            env = dict(self.env, AWS_CONFIG_FILE=config_file,
                       AWS_SHARED_CREDENTIALS_FILE=creds_file, **keys)
            rc, out = check_config(self.config, env)
            self.assertEqual(rc, 0, (config_file, creds_file, out))
            self.assertIn("configuration OK", out)
            # And the agent really starts (then stops cleanly).
            log = os.path.join(self.dir, "log")
            with open(log, "wb") as lf:
                p = subprocess.Popen([h.SMCACHED, "-c", self.config], env=env, stdout=lf,
                                     stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
            try:
                deadline = time.monotonic() + 15
                while time.monotonic() < deadline and p.poll() is None:
                    if "listening on" in read(log):
                        break
                    time.sleep(0.05)
                self.assertIsNone(p.poll(), read(log))
            finally:
                p.send_signal(signal.SIGTERM)
                self.assertEqual(p.wait(timeout=20), 0, read(log))
        # No keys anywhere: the error is about credentials, not about /dev/null.
        env = dict(self.env, AWS_CONFIG_FILE="/dev/null", AWS_SHARED_CREDENTIALS_FILE="/dev/null")
        rc, out = check_config(self.config, env)
        self.assertEqual(rc, 1, out)
        self.assertIn("no AWS credentials", out)
        self.assertNotIn("regular file", out)

    def test_errors_name_the_variable(self):
        env = dict(self.env, AWS_CONFIG_FILE="/dev/zero", AWS_SHARED_CREDENTIALS_FILE="/dev/null",
                   AWS_ACCESS_KEY_ID="AKIDEXAMPLE", AWS_SECRET_ACCESS_KEY="secret-example")
        self.write_config()
        # The region comes from the config file when the agent's config does not set one.
        with open(self.config, "w") as f:
            f.write(f"[agent]\nsocket = {self.dir}/s.sock\n[backend]\ntype = aws\n")
        rc, out = check_config(self.config, env)
        self.assertEqual(rc, 1, out)
        self.assertIn("AWS_CONFIG_FILE=/dev/zero: not a regular file", out)
        bad = self.write("config", "[default]\nregion = us-east-1\n", 0o646)
        rc, out = check_config(self.config, dict(env, AWS_CONFIG_FILE=bad))
        self.assertEqual(rc, 1, out)
        self.assertIn(f"AWS_CONFIG_FILE={bad}: unsafe", out)


@unittest.skipIf(ta.SKIP, ta.SKIP or "")
class CheckConfigLikeStartup(unittest.TestCase):
    """--check-config fails on what start-up fails on, as the user the agent runs as."""

    def test_missing_unreadable_and_unsafe_data_file(self):
        a = h.Agent(ta.secrets())
        try:
            os.unlink(a.secrets_path)
            rc, out = check_config(a.config)
            self.assertEqual(rc, 1, out)
            self.assertIn(f"cannot read secrets file {a.secrets_path}: No such file", out)
            self.assertIn(a.secrets_path, start_fails(a.config))
            a.write_secrets(ta.secrets())
            rc, out = check_config(a.config)
            self.assertEqual(rc, 0, out)
        finally:
            a.close()
        # Readable by root, not by the agent's user.
        a = h.Agent(ta.secrets(), agent_extra=f"user = {ta.NOBODY}\n")
        try:
            os.chmod(a.dir, 0o755)
            os.chmod(a.secrets_path, 0o600)
            rc, out = check_config(a.config)
            self.assertEqual(rc, 1, out)
            self.assertIn("Permission denied", out)
            self.assertIn("Permission denied", start_fails(a.config))
            os.chmod(a.secrets_path, 0o644)
            rc, out = check_config(a.config)
            self.assertEqual(rc, 0, out)
            os.chmod(a.secrets_path, 0o664)
            rc, out = check_config(a.config)
            self.assertEqual(rc, 1, out)
            self.assertIn(f"fix: chmod g-w {a.secrets_path}", out)
        finally:
            a.close()

    def test_unreadable_credentials_file(self):
        d = tempfile.mkdtemp(prefix="smc-trust-")
        try:
            os.chmod(d, 0o755)
            creds = os.path.join(d, "credentials")
            with open(creds, "w") as f:
                f.write("[default]\naws_access_key_id = AKIDEXAMPLE\naws_secret_access_key = x\n")
            os.chmod(creds, 0o600)
            config = os.path.join(d, "smcached.conf")
            with open(config, "w") as f:
                f.write(AWS_CONF.format(sock=os.path.join(d, "s.sock"),
                                        extra="").replace("[backend]", f"user = {ta.NOBODY}\n[backend]"))
            env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
            env.update(AWS_EC2_METADATA_DISABLED="true", AWS_SHARED_CREDENTIALS_FILE=creds,
                       AWS_CONFIG_FILE="/dev/null")
            rc, out = check_config(config, env)
            self.assertEqual(rc, 1, out)
            self.assertIn(f"AWS_SHARED_CREDENTIALS_FILE={creds}: Permission denied", out)
            self.assertIn("Permission denied", start_fails(config, env))
            os.chown(creds, 65534, 65534)       # the agent's user may own it
            rc, out = check_config(config, env)
            self.assertEqual(rc, 0, out)
        finally:
            subprocess.run(["rm", "-rf", d])


if __name__ == "__main__":
    unittest.main()
