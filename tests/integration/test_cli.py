"""The smcache CLI and libsmcache end to end against a real smcached.

Starts build/smcached (file backend, temporary socket) through smc_harness,
then checks the CLI contract of smcache(1): exact value bytes, --json output
shaped like the AWS CLI's, exit statuses, messages on stderr. A second part
builds small C and C++ programs against the installed-style artifacts
(smcache.h, libsmcache.a, libsmcache.so) and runs them against the agent.
When the AWS CLI and moto_server are installed, the --json shapes are also
compared with what `aws secretsmanager` prints for the same secrets.
"""
import base64
import datetime
import json
import os
import shutil
import socket
import subprocess
import tempfile
import time
import unittest
import zoneinfo

import smc_harness as h

ARN_DB = "arn:aws:secretsmanager:us-east-1:123456789012:secret:app/db-AbCdEf"
V1 = "11111111-1111-1111-1111-111111111111"
V2 = "22222222-2222-2222-2222-222222222222"
V3 = "33333333-3333-3333-3333-333333333333"
BLOB = bytes(range(256)) + b"\x00\x00\n"
CREATED_DB = 1710000000.25          # a fraction: printed with microseconds
CREATED_BLOB = 1700000000           # none: printed without

EXIT_OK, EXIT_OTHER, EXIT_USAGE, EXIT_NOT_FOUND = 0, 1, 2, 3
EXIT_DENIED, EXIT_UPSTREAM, EXIT_UNREACHABLE = 4, 5, 6

GET_KEYS_STRING = ["ARN", "Name", "VersionId", "SecretString", "VersionStages", "CreatedDate"]
GET_KEYS_BINARY = ["ARN", "Name", "VersionId", "SecretBinary", "VersionStages", "CreatedDate"]


def sample_secrets():
    db = h.secret("app/db", [
        h.version(V1, ["AWSPREVIOUS"], string="old-password", created=1700000000),
        h.version(V2, ["AWSCURRENT", "blue"], string="new-password", created=CREATED_DB),
        h.version(V3, ["AWSPENDING"], string="pending\n", created=1720000000),
    ], arn=ARN_DB, Description="database credentials", CreatedDate=1690000000,
        LastChangedDate=CREATED_DB)
    blob = h.secret("app/blob", [h.version(V1, ["AWSCURRENT"], binary=BLOB, created=CREATED_BLOB)])
    text = h.secret("app/unicode", [h.version(V1, ["AWSCURRENT"], string="pässwörd ✓ {\"a\":1}")])
    dash = h.secret("-dash", [h.version(V1, ["AWSCURRENT"], string="dashed")])
    return [db, blob, text, dash]


def iso(seconds, tz):
    """What the AWS CLI prints for a date (botocore parses, Python formats)."""
    return datetime.datetime.fromtimestamp(seconds, tz).isoformat()


def shape(obj):
    """Key order and JSON types of a flat object (lists and dicts by kind)."""
    return [(k, type(v).__name__) for k, v in obj.items()]


@unittest.skipUnless(h.have_binaries(), "build/smcached or build/smcache is not built")
class CliAgainstAgent(h.SharedAgentTest):
    @classmethod
    def make_agent(cls):
        return h.Agent(sample_secrets())

    def run_cli(self, *args, tz="UTC", socket_path=None, timeout=30):
        env = dict(os.environ, TZ=tz, SMCACHE_SOCKET=socket_path or self.agent.socket)
        return subprocess.run([h.SMCACHE, *args], capture_output=True, env=env, timeout=timeout)

    def ok(self, *args, **kw):
        r = self.run_cli(*args, **kw)
        self.assertEqual(r.returncode, EXIT_OK, r.stderr.decode(errors="replace"))
        self.assertEqual(r.stderr, b"")
        return r.stdout

    def fails(self, code, *args, **kw):
        r = self.run_cli(*args, **kw)
        self.assertEqual(r.returncode, code, (args, r.stdout, r.stderr))
        self.assertEqual(r.stdout, b"", args)
        err = r.stderr.decode(errors="replace")
        self.assertTrue(err.startswith("smcache: "), err)
        self.assertEqual(err.count("\n"), 1, f"not one line: {err!r}")
        return err

    # ---- get -------------------------------------------------------------------------------

    def test_get_prints_exact_bytes(self):
        self.assertEqual(self.ok("get", "app/db"), b"new-password")          # no newline added
        self.assertEqual(self.ok("get", ARN_DB), b"new-password")
        self.assertEqual(self.ok("get", ARN_DB[:-7]), b"new-password")       # partial ARN
        self.assertEqual(self.ok("get", "app/db", "--version-stage", "AWSPENDING"), b"pending\n")
        self.assertEqual(self.ok("get", "app/unicode"), "pässwörd ✓ {\"a\":1}".encode())
        self.assertEqual(self.ok("get", "app/blob"), BLOB)

    def test_get_by_stage_and_version_id(self):
        self.assertEqual(self.ok("get", "app/db", "--version-stage", "AWSPREVIOUS"), b"old-password")
        self.assertEqual(self.ok("get", "app/db", "--version-stage", "blue"), b"new-password")
        self.assertEqual(self.ok("get", "app/db", "--version-id", V1), b"old-password")
        self.assertEqual(self.ok("get", "--version-id", V1, "--version-stage", "AWSPREVIOUS",
                                 "app/db"), b"old-password")
        # Both given but naming different versions: not found, as in AWS.
        self.fails(EXIT_NOT_FOUND, "get", "app/db", "--version-id", V1, "--version-stage", "AWSCURRENT")

    def test_get_json_string_like_aws_cli(self):
        for tz in ("UTC", "Asia/Kolkata", "America/New_York"):
            obj = json.loads(self.ok("get", "app/db", "--json", tz=tz))
            self.assertEqual(list(obj), GET_KEYS_STRING)
            self.assertEqual(obj["ARN"], ARN_DB)
            self.assertEqual(obj["Name"], "app/db")
            self.assertEqual(obj["VersionId"], V2)
            self.assertEqual(obj["SecretString"], "new-password")
            self.assertEqual(sorted(obj["VersionStages"]), ["AWSCURRENT", "blue"])
            self.assertEqual(obj["CreatedDate"], iso(CREATED_DB, zoneinfo.ZoneInfo(tz)))
        self.assertEqual(obj["CreatedDate"], "2024-03-09T11:00:00.250000-05:00")

    def test_get_json_binary_like_aws_cli(self):
        obj = json.loads(self.ok("get", "app/blob", "--json"))
        self.assertEqual(list(obj), GET_KEYS_BINARY)
        self.assertEqual(base64.b64decode(obj["SecretBinary"], validate=True), BLOB)
        self.assertEqual(obj["VersionStages"], ["AWSCURRENT"])
        self.assertEqual(obj["CreatedDate"], "2023-11-14T22:13:20+00:00")

    def test_get_json_unicode(self):
        obj = json.loads(self.ok("get", "app/unicode", "--json"))
        self.assertEqual(obj["SecretString"], "pässwörd ✓ {\"a\":1}")

    def test_dash_secret_id_after_double_dash(self):
        self.assertEqual(self.ok("get", "--", "-dash"), b"dashed")

    def test_not_found(self):
        err = self.fails(EXIT_NOT_FOUND, "get", "no/such/secret")
        self.assertIn("no/such/secret", err)
        self.fails(EXIT_NOT_FOUND, "get", "app/db", "--version-stage", "NOPE")
        self.fails(EXIT_NOT_FOUND, "get", "app/db", "--version-id", "44444444-4444-4444-4444-444444444444")
        self.fails(EXIT_NOT_FOUND, "describe", "no/such/secret")
        self.fails(EXIT_NOT_FOUND, "get", "no/such/secret", "--json")

    # ---- describe, ping, stats -------------------------------------------------------------

    def test_describe_text(self):
        out = self.ok("describe", "app/db").decode()
        self.assertIn("app/db", out)
        self.assertIn(ARN_DB, out)
        self.assertIn("database credentials", out)
        lines = {line.split()[0]: line.split()[1] for line in out.splitlines()
                 if line.startswith("  ")}
        self.assertEqual(lines, {V1: "AWSPREVIOUS", V2: "AWSCURRENT,blue", V3: "AWSPENDING"})
        self.assertIn(iso(1690000000, datetime.timezone.utc), out)

    def test_describe_json_like_aws_cli(self):
        obj = json.loads(self.ok("describe", "app/db", "--json"))
        self.assertEqual(list(obj), ["ARN", "Name", "Description", "LastChangedDate",
                                     "VersionIdsToStages", "CreatedDate"])
        self.assertEqual(obj["ARN"], ARN_DB)
        self.assertEqual(obj["Description"], "database credentials")
        self.assertEqual({k: sorted(v) for k, v in obj["VersionIdsToStages"].items()},
                         {V1: ["AWSPREVIOUS"], V2: ["AWSCURRENT", "blue"], V3: ["AWSPENDING"]})
        self.assertEqual(obj["CreatedDate"], iso(1690000000, datetime.timezone.utc))
        self.assertEqual(obj["LastChangedDate"], iso(CREATED_DB, datetime.timezone.utc))

    def test_ping(self):
        out = self.ok("ping").decode()
        self.assertTrue(out.endswith("\n") and out.strip(), out)
        self.assertEqual(out.count("\n"), 1)

    def test_stats(self):
        self.ok("get", "app/db")
        out = self.ok("stats").decode()
        stats = {}
        for line in out.splitlines():
            name, value = line.split(" ")
            stats[name] = int(value)
        self.assertTrue(stats, out)
        self.assertGreaterEqual(stats.get("requests_get", 0), 1, out)

    # ---- failures --------------------------------------------------------------------------

    def test_unreachable(self):
        d = tempfile.mkdtemp(prefix="smc-cli-")
        try:
            missing = os.path.join(d, "none.sock")
            err = self.fails(EXIT_UNREACHABLE, "--socket", missing, "get", "app/db")
            self.assertIn(missing, err)
            self.fails(EXIT_UNREACHABLE, "ping", socket_path=missing)   # via SMCACHE_SOCKET
            # An "agent" that accepts and never answers: the timeout applies.
            silent = os.path.join(d, "silent.sock")
            srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            srv.bind(silent)
            srv.listen(4)
            try:
                t0 = time.monotonic()
                err = self.fails(EXIT_UNREACHABLE, "--timeout", "300", "get", "app/db",
                                 socket_path=silent)
                self.assertLess(time.monotonic() - t0, 5)
                self.assertIn("timed out", err)
            finally:
                srv.close()
        finally:
            shutil.rmtree(d, ignore_errors=True)

    def test_usage_errors(self):
        for args in ([], ["frobnicate"], ["get"], ["get", "a", "b"], ["describe"],
                     ["ping", "extra"], ["stats", "x"], ["--timeout", "abc", "ping"],
                     ["--timeout", "0", "ping"], ["--timeout", "-5", "ping"], ["--timeout"],
                     ["describe", "app/db", "--version-stage", "AWSCURRENT"],
                     ["ping", "--json"], ["get", "app/db", "--bogus"],
                     ["get", "app/db", "--version-id", ""], ["get", ""], ["--socket", "", "ping"],
                     ["get", "x" * 3000]):
            with self.subTest(args=args):
                self.fails(EXIT_USAGE, *args)

    def test_help_and_version(self):
        out = self.ok("--help").decode()
        for word in ("get", "describe", "ping", "stats", "--socket", "--timeout", "--json"):
            self.assertIn(word, out)
        self.assertRegex(self.ok("--version").decode(), r"^smcache \d+\.\d+\.\d+\n$")
        self.assertEqual(self.ok("-V"), self.ok("--version"))


def _sanitized_lib():
    """True when the library was built with sanitizers (make asan)."""
    try:
        out = subprocess.run(["nm", os.path.join(h.BUILD, "libsmcache.a")], capture_output=True,
                             text=True, errors="replace").stdout
    except OSError:
        return False
    return "__asan_" in out


LIB_PROGRAM = r"""
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include "smcache.h"

/* argv: MODE [SECRET_ID]. Prints what it got; exits with the error code. */
int
main(int argc, char **argv)
{
	smc_error err;
	smc_secret *s;
	smc_client *c;
	char v[64];

	if (argc != 2 && argc != 3)
		return 2;
	if (strcmp(argv[1], "fetch") == 0) {
		if (smc_fetch(argv[2], &s, &err) == -1) {
			fprintf(stderr, "%d %s\n", err.code, err.message);
			return err.code;
		}
		fwrite(smc_secret_value(s), 1, smc_secret_value_len(s), stdout);
		smc_secret_free(s);
		return 0;
	}
	/* "idle": a handle survives the agent closing its idle connection. */
	if ((c = smc_connect(NULL, 2000, &err)) == NULL || smc_ping(c, v, sizeof(v), &err) == -1) {
		fprintf(stderr, "%d %s\n", err.code, err.message);
		return err.code;
	}
	sleep(2);
	if (smc_get(c, argv[2], NULL, &s, &err) == -1) {
		fprintf(stderr, "%d %s\n", err.code, err.message);
		return err.code;
	}
	printf("%s|%s|%zu", v, smc_secret_name(s), smc_secret_stage_count(s));
	smc_secret_free(s);
	smc_close(c);
	return 0;
}
"""

CXX_PROGRAM = r"""
#include "smcache.h"
#include <cstdio>
int main() {
	smc_error err;
	smc_client *c = smc_connect("/nonexistent/smcache.sock", 100, &err);
	std::printf("%d %s\n", c == nullptr ? (int)err.code : -1, smc_strerror(err.code));
	return 0;
}
"""


@unittest.skipUnless(h.have_binaries(), "build/smcached or build/smcache is not built")
class LibraryArtifacts(h.SharedAgentTest):
    """libsmcache as a user links it: header, static and shared library."""

    @classmethod
    def make_agent(cls):
        cls.tmp = tempfile.mkdtemp(prefix="smc-lib-")
        return h.Agent(sample_secrets(), agent_extra="idle_timeout = 1\n")

    @classmethod
    def tearDownClass(cls):
        try:
            super().tearDownClass()
        finally:
            shutil.rmtree(cls.tmp, ignore_errors=True)

    def compile(self, compiler, source, suffix, link):
        if shutil.which(compiler) is None:
            self.skipTest(f"{compiler} is not installed")
        src = os.path.join(self.tmp, "prog" + suffix)
        exe = os.path.join(self.tmp, "prog-" + compiler.replace("+", "x") + str(len(link)))
        with open(src, "w") as f:
            f.write(source)
        san = ["-fsanitize=address,undefined"] if _sanitized_lib() else []
        cmd = [compiler, *san, "-Wall", "-Wextra", "-Werror", "-I", os.path.join(h.ROOT, "client"),
               "-o", exe, src, *link, "-lsodium"]
        r = subprocess.run(cmd, capture_output=True, text=True)
        self.assertEqual(r.returncode, 0, r.stderr)
        return exe

    def run_prog(self, exe, *args):
        env = dict(os.environ, SMCACHE_SOCKET=self.agent.socket,
                   LD_LIBRARY_PATH=h.BUILD, ASAN_OPTIONS="detect_leaks=1")
        return subprocess.run([exe, *args], capture_output=True, env=env, timeout=30)

    def test_static_library_fetch(self):
        exe = self.compile("cc", LIB_PROGRAM, ".c", [os.path.join(h.BUILD, "libsmcache.a")])
        r = self.run_prog(exe, "fetch", "app/blob")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stdout, BLOB)
        r = self.run_prog(exe, "fetch", "no/such")
        self.assertEqual(r.returncode, 1, r.stderr)     # SMC_ERR_NOT_FOUND

    def test_reconnects_after_agent_idle_close(self):
        exe = self.compile("cc", LIB_PROGRAM, ".c", [os.path.join(h.BUILD, "libsmcache.a")])
        r = self.run_prog(exe, "idle", "app/db")
        self.assertEqual(r.returncode, 0, r.stderr)
        version, name, stages = r.stdout.decode().split("|")
        self.assertTrue(version)
        self.assertEqual((name, stages), ("app/db", "2"))

    def test_shared_library_exports_only_public_api(self):
        so = os.path.join(h.BUILD, "libsmcache.so")
        if not os.path.exists(so):
            self.skipTest("libsmcache.so is not built")
        out = subprocess.run(["nm", "-D", "--defined-only", so], capture_output=True,
                             text=True).stdout
        names = {line.split()[-1].split("@")[0] for line in out.splitlines()
                 if line.split() and line.split()[-2] in ("T", "W", "D", "B", "R")}
        with open(os.path.join(h.ROOT, "client", "smcache.h")) as f:
            header = f.read()
        self.assertTrue(names, out)
        for n in names:
            self.assertTrue(n.startswith(("smc_", "smcache_")) and n + "(" in header, f"exported: {n}")
        exe = self.compile("cc", LIB_PROGRAM, ".c", ["-L" + h.BUILD, "-lsmcache"])
        r = self.run_prog(exe, "fetch", "app/db")
        self.assertEqual((r.returncode, r.stdout), (0, b"new-password"), r.stderr)

    def test_header_compiles_as_cplusplus(self):
        exe = self.compile("g++", CXX_PROGRAM, ".cc", [os.path.join(h.BUILD, "libsmcache.a")])
        r = self.run_prog(exe)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stdout, b"9 agent unreachable\n")

    def test_pkg_config_file(self):
        pc = os.path.join(h.BUILD, "smcache.pc")
        if not os.path.exists(pc):
            self.skipTest("smcache.pc is not built")
        env = dict(os.environ, PKG_CONFIG_PATH=h.BUILD)
        r = subprocess.run(["pkg-config", "--libs", "--static", "smcache"], capture_output=True,
                           text=True, env=env)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("-lsmcache", r.stdout)
        self.assertIn("-lsodium", r.stdout)


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@unittest.skipUnless(h.have_binaries(), "build/smcached or build/smcache is not built")
@unittest.skipUnless(shutil.which("aws") and shutil.which("moto_server"),
                     "the AWS CLI and moto_server are needed to compare with real AWS CLI output")
class JsonMatchesAwsCli(unittest.TestCase):
    """`smcache get/describe --json` is byte-identical to `aws secretsmanager
    get-secret-value/describe-secret --output json` for the same secret: the installed
    aws CLI talks to moto directly, the agent (aws backend) to the same moto.
    The CLI here is v1, so cli_timestamp_format = iso8601 makes it print dates as v2
    does. String (with characters JSON escapes), binary and multi-stage secrets."""

    @classmethod
    def setUpClass(cls):
        import aws_moto
        if not aws_moto.have_moto():
            raise unittest.SkipTest("boto3 and moto_server are needed")
        cls.tmp = tempfile.mkdtemp(prefix="smc-aws-")
        cls.moto = aws_moto.Moto().start()
        cfg = os.path.join(cls.tmp, "aws-config")
        with open(cfg, "w") as f:
            f.write("[default]\nregion = us-east-1\ncli_timestamp_format = iso8601\n")
        cls.env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
        cls.env.update(AWS_CONFIG_FILE=cfg, AWS_ACCESS_KEY_ID=aws_moto.FAKE_KEY,
                       AWS_SECRET_ACCESS_KEY=aws_moto.FAKE_SECRET,
                       AWS_SHARED_CREDENTIALS_FILE=os.path.join(cls.tmp, "none"),
                       AWS_EC2_METADATA_DISABLED="true")
        try:
            cls.agent = aws_moto.AwsAgent(endpoint=cls.moto.url).start()
        except Exception:
            cls.moto.stop()
            raise

    @classmethod
    def tearDownClass(cls):
        try:
            cls.agent.stop()
        finally:
            cls.agent.close()
            cls.moto.stop()
            shutil.rmtree(cls.tmp, ignore_errors=True)

    def aws(self, *args, tz="UTC"):
        r = subprocess.run(["aws", "--endpoint-url", self.moto.url, "secretsmanager", *args,
                            "--output", "json"],
                           capture_output=True, env=dict(self.env, TZ=tz), timeout=60)
        self.assertEqual(r.returncode, 0, r.stderr)
        return r.stdout

    def smcache(self, *args, tz="UTC"):
        r = subprocess.run([h.SMCACHE, "--socket", self.agent.socket, *args],
                           capture_output=True, env=dict(self.env, TZ=tz), timeout=30)
        self.assertEqual(r.returncode, 0, r.stderr)
        return r.stdout

    def same(self, secret_id, *stage, tz="UTC"):
        theirs = self.aws("get-secret-value", "--secret-id", secret_id, *stage, tz=tz)
        ours = self.smcache("get", secret_id, *stage, "--json", tz=tz)
        self.assertEqual(ours.decode(), theirs.decode())
        self.assertEqual(ours, theirs)
        return theirs

    def same_describe(self, secret_id, tz="UTC"):
        theirs = self.aws("describe-secret", "--secret-id", secret_id, tz=tz)
        ours = self.smcache("describe", secret_id, "--json", tz=tz)
        self.assertEqual(ours.decode(), theirs.decode())
        self.assertEqual(ours, theirs)

    def test_string_secret(self):
        value = 'p\u00e4ss "quoted" back\\slash\ttab\nline \x01\x1f\x7f \u2713 {"a": 1}'
        self.aws("create-secret", "--name", "cmp/string", "--secret-string", value,
                 "--description", "database \"credentials\" \u00e9")
        for tz in ("UTC", "Asia/Kolkata", "America/New_York"):
            out = self.same("cmp/string", tz=tz)
            self.same_describe("cmp/string", tz=tz)
        self.assertEqual(json.loads(out)["SecretString"], value)
        # --output text and --field: what --query ... --output text prints.
        r = subprocess.run(["aws", "--endpoint-url", self.moto.url, "secretsmanager",
                            "get-secret-value", "--secret-id", "cmp/string", "--query",
                            "SecretString", "--output", "text"],
                           capture_output=True, env=self.env, timeout=60)
        self.assertEqual(self.smcache("get", "cmp/string", "--output", "text"), r.stdout)

    def test_binary_secret(self):
        blob = os.path.join(self.tmp, "blob.bin")
        with open(blob, "wb") as f:
            f.write(BLOB)
        self.aws("create-secret", "--name", "cmp/blob", "--secret-binary", "fileb://" + blob)
        out = self.same("cmp/blob")
        self.assertEqual(base64.b64decode(json.loads(out)["SecretBinary"]), BLOB)
        self.same_describe("cmp/blob")
        r = subprocess.run(["aws", "--endpoint-url", self.moto.url, "secretsmanager",
                            "get-secret-value", "--secret-id", "cmp/blob", "--query",
                            "SecretBinary", "--output", "text"],
                           capture_output=True, env=self.env, timeout=60)
        self.assertEqual(self.smcache("get", "cmp/blob", "--output", "text"), r.stdout)

    def test_multi_stage_secret(self):
        self.aws("create-secret", "--name", "cmp/multi", "--secret-string", '{"user":"a","pw":"one"}')
        first = json.loads(self.aws("get-secret-value", "--secret-id", "cmp/multi"))["VersionId"]
        self.aws("put-secret-value", "--secret-id", "cmp/multi", "--secret-string",
                 '{"user":"a","pw":"two"}')
        self.aws("update-secret-version-stage", "--secret-id", "cmp/multi", "--version-stage",
                 "blue", "--move-to-version-id", first)
        cur = json.loads(self.same("cmp/multi", "--version-stage", "AWSCURRENT"))
        self.assertEqual(cur["VersionStages"], ["AWSCURRENT"])
        prev = json.loads(self.same("cmp/multi", "--version-stage", "AWSPREVIOUS"))
        self.assertEqual(sorted(prev["VersionStages"]), ["AWSPREVIOUS", "blue"])
        self.same("cmp/multi", "--version-stage", "blue")
        self.same("cmp/multi", "--version-id", first)
        self.same("cmp/multi")
        self.same_describe("cmp/multi")
        self.assertEqual(self.smcache("get", "cmp/multi", "--field", "pw"), b"two")
        self.assertEqual(self.smcache("get", "cmp/multi", "--field", "pw", "--output", "text",
                                      "--version-stage", "blue"), b"one\n")


if __name__ == "__main__":
    unittest.main()
