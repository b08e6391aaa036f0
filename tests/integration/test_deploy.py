"""Deployments (deploy/): the container image, Kubernetes and ECS files.

- The image (deploy/container/mkimage.py, `make image`) is a valid OCI image layout and
  `docker load` archive, reproducible byte for byte, holding the binaries, exactly the
  libraries they load, CA certificates and a non-root user, and nothing else (no shell).
- The image runs as the deployments run it, with nothing from the host: its root file
  system unpacked and entered with chroot in a private mount and pid namespace (a
  container without a container engine, which this machine lacks), and a secret is read
  from the host through the socket in the "volume":
    * DaemonSet: socket directory a hostPath made by the kubelet (root, 0755), the agent
      started as root and dropping to smcache (65532) as the DaemonSet's config says;
    * sidecar: socket directory an emptyDir (root, 0777), the agent as 65532 with
      [agent] socket_dir_shared = true; refused, naming that key, without it.
  Where a Docker engine answers, the archive is also loaded and run with docker.
- The Kubernetes manifests and the ECS task definition are checked against the fields of
  the object kinds they use (a schema written here: an unknown or misspelt field, a wrong
  type or a missing required field fails), plus what ties them together: volume mounts
  name declared volumes, probes run `smcache health` / `smcache ping`, containers are
  locked down, the socket path agrees between agent config, env and mounts, and every
  smcached.conf embedded in them passes `smcached --check-config`.
"""
import hashlib
import json
import os
import shutil
import subprocess
import tarfile
import tempfile
import time
import unittest

import smc_harness

ROOT = smc_harness.ROOT
BUILD = smc_harness.BUILD
DEPLOY = os.path.join(ROOT, "deploy")
MKIMAGE = os.path.join(DEPLOY, "container", "mkimage.py")

try:
    import yaml
except ImportError:  # PyYAML comes with the aws CLI; without it the manifest checks skip
    yaml = None


def mkimage_module():
    import importlib.util
    spec = importlib.util.spec_from_file_location("mkimage", MKIMAGE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def build_image(out, rootfs=None):
    argv = ["python3", MKIMAGE, "--build", BUILD, "--out", out]
    if rootfs:
        argv += ["--rootfs", rootfs]
    subprocess.run(argv, check=True, capture_output=True, text=True)


def can_chroot():
    return os.geteuid() == 0 and shutil.which("unshare") and shutil.which("chroot")


class Image(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        if not smc_harness.have_binaries():
            raise unittest.SkipTest("binaries not built")
        cls.tmp = tempfile.mkdtemp(prefix="smc-image-")
        cls.archive = os.path.join(cls.tmp, "image.tar")
        build_image(cls.archive)

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def members(self):
        with tarfile.open(self.archive) as tar:
            return {m.name: tar.extractfile(m).read() for m in tar.getmembers() if m.isfile()}

    def test_oci_layout_and_docker_archive_are_consistent(self):
        files = self.members()
        self.assertEqual(json.loads(files["oci-layout"]), {"imageLayoutVersion": "1.0.0"})
        for name, data in files.items():
            if name.startswith("blobs/sha256/"):
                self.assertEqual(hashlib.sha256(data).hexdigest(), name.split("/")[-1], name)
        index = json.loads(files["index.json"])
        desc = index["manifests"][0]
        manifest_bytes = files["blobs/sha256/" + desc["digest"].split(":")[1]]
        self.assertEqual(len(manifest_bytes), desc["size"])
        manifest = json.loads(manifest_bytes)
        config = json.loads(files["blobs/sha256/" + manifest["config"]["digest"].split(":")[1]])
        layer = files["blobs/sha256/" + manifest["layers"][0]["digest"].split(":")[1]]
        self.assertEqual(config["rootfs"]["diff_ids"], ["sha256:" + hashlib.sha256(layer).hexdigest()])
        self.assertEqual(config["config"]["User"], "65532:65532", "runs as a non-root user")
        self.assertEqual(config["config"]["Entrypoint"], ["/usr/sbin/smcached"])
        docker = json.loads(files["manifest.json"])
        self.assertEqual(docker[0]["Config"], "blobs/sha256/" + manifest["config"]["digest"].split(":")[1])
        self.assertEqual(docker[0]["RepoTags"], ["smcache:0.1.0"])

    def test_layer_holds_what_runs_and_nothing_else(self):
        files = self.members()
        manifest = json.loads(files["blobs/sha256/" + json.loads(files["index.json"])["manifests"][0]["digest"].split(":")[1]])
        layer = files["blobs/sha256/" + manifest["layers"][0]["digest"].split(":")[1]]
        with tarfile.open(fileobj=__import__("io").BytesIO(layer)) as tar:
            entries = {m.name: m for m in tar.getmembers()}
        for must in ("usr/sbin/smcached", "usr/bin/smcache", "etc/ssl/certs/ca-certificates.crt",
                     "etc/passwd", "etc/group", "etc/smcache/smcached.conf", "usr/lib64/ld-linux-x86-64.so.2"):
            self.assertIn(must, entries)
        for never in ("bin/sh", "usr/bin/sh", "usr/bin/bash", "usr/bin/apt", "usr/bin/dpkg"):
            self.assertNotIn(never, entries, "no shell or package manager in the image")
        libs = {n for n in entries if n.startswith("usr/lib/x86_64-linux-gnu/")}
        wanted = set()
        for b in ("smcached", "smcache"):
            out = subprocess.run(["ldd", os.path.join(BUILD, b)], capture_output=True, text=True).stdout
            for line in out.splitlines():
                if "=>" in line and "/" in line.split("=>")[1]:
                    wanted.add("usr/lib/x86_64-linux-gnu/" + os.path.basename(line.split("=>")[1].split()[0]))
        self.assertEqual(libs, wanted, "exactly the libraries the binaries load")
        self.assertEqual(entries["run/smcache"].uid, 65532)
        for m in entries.values():
            self.assertEqual(m.mtime, 0)

    def test_reproducible(self):
        again = os.path.join(self.tmp, "again.tar")
        build_image(again)
        with open(self.archive, "rb") as a, open(again, "rb") as b:
            self.assertEqual(hashlib.sha256(a.read()).hexdigest(), hashlib.sha256(b.read()).hexdigest())

    def test_docker_engine_runs_it(self):
        if not shutil.which("docker") or subprocess.run(["docker", "info"], capture_output=True).returncode != 0:
            self.skipTest("no Docker engine answers on this machine (the client alone cannot run images)")
        subprocess.run(["docker", "load", "-i", self.archive], check=True, capture_output=True)
        sockdir = tempfile.mkdtemp(prefix="smc-docker-")
        os.chown(sockdir, 65532, 65532)
        data = os.path.join(sockdir, "secrets.json")
        with open(data, "w") as f:
            json.dump({"Region": "us-east-1", "Account": "123456789012",
                       "Secrets": [smc_harness.secret("docker/test", [smc_harness.version(
                           "v" * 32, ["AWSCURRENT"], string="from-docker")])]}, f)
        conf = os.path.join(sockdir, "c.conf")
        with open(conf, "w") as f:
            f.write("[agent]\nsocket = /run/smcache/smcached.sock\nsocket_mode = 0666\n"
                    "[backend]\ntype = file\n[file]\npath = /run/smcache/secrets.json\n")
        cid = subprocess.run(["docker", "run", "-d", "--rm", "-v", f"{sockdir}:/run/smcache",
                              "smcache:0.1.0", "-c", "/run/smcache/c.conf"],
                             check=True, capture_output=True, text=True).stdout.strip()
        try:
            sock = os.path.join(sockdir, "smcached.sock")
            for _ in range(50):
                if os.path.exists(sock):
                    break
                time.sleep(0.1)
            out = subprocess.run([os.path.join(BUILD, "smcache"), "get", "docker/test"],
                                 env=dict(os.environ, SMCACHE_SOCKET=sock), capture_output=True, text=True)
            self.assertEqual(out.stdout, "from-docker")
        finally:
            subprocess.run(["docker", "rm", "-f", cid], capture_output=True)
            shutil.rmtree(sockdir, ignore_errors=True)


@unittest.skipUnless(can_chroot(), "needs root, unshare and chroot")
class ImageRuns(unittest.TestCase):
    """The image's own files run the agent (chroot in new mount and pid namespaces)."""

    def setUp(self):
        if not smc_harness.have_binaries():
            self.skipTest("binaries not built")
        self.tmp = tempfile.mkdtemp(prefix="smc-rootfs-")
        os.chmod(self.tmp, 0o755)
        self.rootfs = os.path.join(self.tmp, "rootfs")
        build_image(os.path.join(self.tmp, "image.tar"), rootfs=self.rootfs)
        os.makedirs(os.path.join(self.rootfs, "proc"), exist_ok=True)
        self.value = "deploy-" + os.urandom(8).hex()
        with open(os.path.join(self.rootfs, "etc/smcache/secrets.json"), "w") as f:
            json.dump({"Region": "us-east-1", "Account": "123456789012",
                       "Secrets": [smc_harness.secret("app/db", [smc_harness.version(
                           "a" * 32, ["AWSCURRENT"], string=self.value)])]}, f)
        self.proc = None

    def tearDown(self):
        if self.proc is not None:
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait()
            self.proc.stdout.close()
        shutil.rmtree(self.tmp, ignore_errors=True)

    def start(self, conf, userspec=None):
        with open(os.path.join(self.rootfs, "etc/smcache/test.conf"), "w") as f:
            f.write(conf)
        argv = ["unshare", "--mount", "--pid", "--fork", "--mount-proc=" + os.path.join(self.rootfs, "proc"),
                "chroot"] + (["--userspec=" + userspec] if userspec else []) + \
               [self.rootfs, "/usr/sbin/smcached", "-c", "/etc/smcache/test.conf"]
        self.proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        sock = os.path.join(self.rootfs, "run/smcache/smcached.sock")
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and self.proc.poll() is None:
            if os.path.exists(sock):
                return sock
            time.sleep(0.05)
        out = self.proc.communicate(timeout=5)[0] if self.proc.poll() is not None else ""
        return out

    def read(self, sock):
        return subprocess.run([os.path.join(BUILD, "smcache"), "get", "app/db"],
                              env=dict(os.environ, SMCACHE_SOCKET=sock), capture_output=True, text=True)

    def agent_uid(self):
        """The uid of the smcached whose root directory is this test's image."""
        for pid in subprocess.run(["pgrep", "-x", "smcached"], capture_output=True, text=True).stdout.split():
            try:
                if os.path.realpath(f"/proc/{pid}/root") != os.path.realpath(self.rootfs):
                    continue
                with open(f"/proc/{pid}/status") as f:
                    for line in f:
                        if line.startswith("Uid:"):
                            return int(line.split()[1])
            except OSError:
                continue
        return None

    def test_daemonset_hostpath_root_then_drop(self):
        run = os.path.join(self.rootfs, "run/smcache")
        os.chown(run, 0, 0)     # what a kubelet's hostPath DirectoryOrCreate makes
        os.chmod(run, 0o755)
        sock = self.start("[agent]\nsocket = /run/smcache/smcached.sock\nsocket_mode = 0666\n"
                          "user = smcache\ngroup = smcache\n"
                          "[backend]\ntype = file\n[file]\npath = /etc/smcache/secrets.json\n")
        self.assertTrue(sock.endswith(".sock"), sock)
        out = self.read(sock)
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assertEqual(out.stdout, self.value)
        self.assertEqual(self.agent_uid(), 65532, "root is dropped for the image's smcache user")

    def test_sidecar_emptydir_needs_socket_dir_shared(self):
        run = os.path.join(self.rootfs, "run/smcache")
        os.chown(run, 0, 0)     # what a kubelet's emptyDir is
        os.chmod(run, 0o777)
        base = ("[agent]\nsocket = /run/smcache/smcached.sock\nsocket_mode = 0666\n%s"
                "[backend]\ntype = file\n[file]\npath = /etc/smcache/secrets.json\n")
        out = self.start(base % "", userspec="65532:65532")
        self.assertFalse(out.endswith(".sock"), "a 0777 directory is refused by default")
        self.assertIn("socket_dir_shared", out)
        self.proc.stdout.close()
        self.proc = None
        sock = self.start(base % "socket_dir_shared = true\n", userspec="65532:65532")
        self.assertTrue(sock.endswith(".sock"), sock)
        out = self.read(sock)
        self.assertEqual((out.returncode, out.stdout), (0, self.value), out.stderr)


# ---- manifests --------------------------------------------------------------------------------
# The fields of the Kubernetes kinds the manifests use (apps/v1, core/v1), with their types.
# "name": str | int | bool | dict (free-form map of strings) | "Kind" | ["Kind"] | [str].
K8S = {
    "ObjectMeta": {"name": str, "namespace": str, "labels": dict, "annotations": dict},
    "Namespace": {"apiVersion": str, "kind": str, "metadata": "ObjectMeta"},
    "ServiceAccount": {"apiVersion": str, "kind": str, "metadata": "ObjectMeta",
                       "automountServiceAccountToken": bool},
    "ConfigMap": {"apiVersion": str, "kind": str, "metadata": "ObjectMeta", "data": dict},
    "DaemonSet": {"apiVersion": str, "kind": str, "metadata": "ObjectMeta", "spec": "DaemonSetSpec"},
    "Deployment": {"apiVersion": str, "kind": str, "metadata": "ObjectMeta", "spec": "DeploymentSpec"},
    "DaemonSetSpec": {"selector": "LabelSelector", "template": "PodTemplateSpec",
                      "updateStrategy": "DaemonSetUpdateStrategy", "minReadySeconds": int},
    "DaemonSetUpdateStrategy": {"type": str, "rollingUpdate": "RollingUpdateDaemonSet"},
    "RollingUpdateDaemonSet": {"maxUnavailable": (int, str), "maxSurge": (int, str)},
    "DeploymentSpec": {"replicas": int, "selector": "LabelSelector", "template": "PodTemplateSpec"},
    "LabelSelector": {"matchLabels": dict},
    "PodTemplateSpec": {"metadata": "ObjectMeta", "spec": "PodSpec"},
    "PodSpec": {"serviceAccountName": str, "automountServiceAccountToken": bool,
                "priorityClassName": str, "securityContext": "PodSecurityContext",
                "initContainers": ["Container"], "containers": ["Container"], "volumes": ["Volume"],
                "hostNetwork": bool, "dnsPolicy": str, "terminationGracePeriodSeconds": int},
    "PodSecurityContext": {"runAsNonRoot": bool, "runAsUser": int, "runAsGroup": int, "fsGroup": int,
                           "seccompProfile": "SeccompProfile"},
    "SeccompProfile": {"type": str},
    "Container": {"name": str, "image": str, "imagePullPolicy": str, "command": [str], "args": [str],
                  "env": ["EnvVar"], "ports": ["ContainerPort"], "resources": "Resources",
                  "securityContext": "SecurityContext", "readinessProbe": "Probe",
                  "livenessProbe": "Probe", "startupProbe": "Probe", "volumeMounts": ["VolumeMount"],
                  "restartPolicy": str},
    "EnvVar": {"name": str, "value": str},
    "ContainerPort": {"name": str, "containerPort": int, "hostPort": int, "protocol": str},
    "Resources": {"requests": dict, "limits": dict},
    "SecurityContext": {"runAsNonRoot": bool, "runAsUser": int, "runAsGroup": int,
                        "allowPrivilegeEscalation": bool, "readOnlyRootFilesystem": bool,
                        "capabilities": "Capabilities", "seccompProfile": "SeccompProfile"},
    "Capabilities": {"drop": [str], "add": [str]},
    "Probe": {"exec": "ExecAction", "initialDelaySeconds": int, "periodSeconds": int,
              "timeoutSeconds": int, "failureThreshold": int, "successThreshold": int},
    "ExecAction": {"command": [str]},
    "VolumeMount": {"name": str, "mountPath": str, "readOnly": bool, "subPath": str},
    "Volume": {"name": str, "configMap": "ConfigMapVolume", "hostPath": "HostPathVolume",
               "emptyDir": "EmptyDirVolume"},
    "ConfigMapVolume": {"name": str, "defaultMode": int},
    "HostPathVolume": {"path": str, "type": str},
    "EmptyDirVolume": {"medium": str, "sizeLimit": str},
}
K8S_REQUIRED = {
    "Container": ["name", "image"], "EnvVar": ["name"],
    "VolumeMount": ["name", "mountPath"], "Volume": ["name"], "DaemonSetSpec": ["selector", "template"],
    "DeploymentSpec": ["selector", "template"], "PodSpec": ["containers"], "ExecAction": ["command"],
    "HostPathVolume": ["path"],
}
K8S_ENUMS = {
    ("Container", "imagePullPolicy"): {"Always", "IfNotPresent", "Never"},
    ("Container", "restartPolicy"): {"Always"},
    ("SeccompProfile", "type"): {"RuntimeDefault", "Localhost", "Unconfined"},
    ("HostPathVolume", "type"): {"", "DirectoryOrCreate", "Directory", "FileOrCreate", "File", "Socket"},
    ("EmptyDirVolume", "medium"): {"", "Memory"},
    ("DaemonSetUpdateStrategy", "type"): {"RollingUpdate", "OnDelete"},
}
API_VERSIONS = {"Namespace": "v1", "ServiceAccount": "v1", "ConfigMap": "v1",
                "DaemonSet": "apps/v1", "Deployment": "apps/v1"}


def check_schema(kind, obj, where, errors, schema=K8S, required=K8S_REQUIRED, enums=K8S_ENUMS):
    fields = schema[kind]
    if not isinstance(obj, dict):
        errors.append(f"{where}: expected an object ({kind})")
        return
    for key in required.get(kind, []):
        if key not in obj:
            errors.append(f"{where}: {kind} lacks required field {key}")
    for key, value in obj.items():
        if key not in fields:
            errors.append(f"{where}.{key}: not a field of {kind}")
            continue
        want = fields[key]
        if (kind, key) in enums and value not in enums[(kind, key)]:
            errors.append(f"{where}.{key}: {value!r} is not one of {sorted(enums[(kind, key)])}")
        if isinstance(want, list):
            if not isinstance(value, list):
                errors.append(f"{where}.{key}: expected a list")
                continue
            for i, item in enumerate(value):
                if isinstance(want[0], str):
                    check_schema(want[0], item, f"{where}.{key}[{i}]", errors, schema, required, enums)
                elif not isinstance(item, want[0]):
                    errors.append(f"{where}.{key}[{i}]: expected {want[0].__name__}")
        elif isinstance(want, str):
            check_schema(want, value, f"{where}.{key}", errors, schema, required, enums)
        elif want is dict:
            if not isinstance(value, dict) or not all(isinstance(v, (str, int)) for v in value.values()):
                errors.append(f"{where}.{key}: expected a map of strings")
        elif not isinstance(value, want) or (want is int and isinstance(value, bool)):
            errors.append(f"{where}.{key}: expected {getattr(want, '__name__', want)}")


def conf_key(conf, section, key):
    current = None
    for line in conf.splitlines():
        line = line.strip()
        if line.startswith("["):
            current = line.strip("[]")
        elif current == section and line.split("=")[0].strip() == key:
            return line.split("=", 1)[1].strip()
    return None


@unittest.skipIf(yaml is None, "PyYAML is not installed")
class Manifests(unittest.TestCase):
    def load(self, name):
        with open(os.path.join(DEPLOY, "kubernetes", name)) as f:
            return [d for d in yaml.safe_load_all(f) if d]

    def all_docs(self):
        docs = []
        for name in sorted(os.listdir(os.path.join(DEPLOY, "kubernetes"))):
            if name.endswith(".yaml"):
                docs += [(name, d) for d in self.load(name)]
        return docs

    def test_every_object_matches_its_kind(self):
        errors = []
        docs = self.all_docs()
        self.assertGreaterEqual(len(docs), 6)
        for name, doc in docs:
            kind = doc.get("kind")
            self.assertIn(kind, API_VERSIONS, f"{name}: unexpected kind {kind}")
            self.assertEqual(doc.get("apiVersion"), API_VERSIONS[kind], name)
            self.assertIn("name", doc.get("metadata", {}), f"{name}: {kind} without a name")
            check_schema(kind, doc, f"{name}:{kind}", errors)
        self.assertEqual(errors, [])

    def test_schema_check_catches_mistakes(self):
        bad = {"apiVersion": "apps/v1", "kind": "DaemonSet", "metadata": {"name": "x"},
               "spec": {"selector": {}, "template": {"spec": {"containers": [
                   {"name": "a", "image": "i", "readinessprobe": {}, "imagePullPolicy": "Sometimes",
                    "env": [{"value": "v"}]}]}}}}
        errors = []
        check_schema("DaemonSet", bad, "bad", errors)
        text = "\n".join(errors)
        self.assertIn("readinessprobe: not a field of Container", text)
        self.assertIn("'Sometimes' is not one of", text)
        self.assertIn("EnvVar lacks required field name", text)

    def pod_specs(self):
        for name, doc in self.all_docs():
            if doc["kind"] in ("DaemonSet", "Deployment"):
                yield name, doc, doc["spec"]["template"]["spec"]

    def configmaps(self):
        return {(d["metadata"].get("namespace"), d["metadata"]["name"]): d
                for _, d in self.all_docs() if d["kind"] == "ConfigMap"}

    def test_pods_hang_together(self):
        cms = self.configmaps()
        for name, doc, pod in self.pod_specs():
            self.assertEqual(doc["spec"]["selector"]["matchLabels"],
                             {k: v for k, v in doc["spec"]["template"]["metadata"]["labels"].items()
                              if k in doc["spec"]["selector"]["matchLabels"]}, name)
            volumes = {v["name"]: v for v in pod.get("volumes", [])}
            containers = pod.get("initContainers", []) + pod["containers"]
            for c in containers:
                for m in c.get("volumeMounts", []):
                    self.assertIn(m["name"], volumes, f"{name}/{c['name']}: mount of an undeclared volume")
                sc = c.get("securityContext", {})
                self.assertIs(sc.get("allowPrivilegeEscalation"), False, f"{name}/{c['name']}")
                self.assertIs(sc.get("readOnlyRootFilesystem"), True, f"{name}/{c['name']}")
                self.assertIn("ALL", sc.get("capabilities", {}).get("drop", []), f"{name}/{c['name']}")
                env = {e["name"]: e.get("value") for e in c.get("env", [])}
                sock = env.get("SMCACHE_SOCKET")
                self.assertIsNotNone(sock, f"{name}/{c['name']}: SMCACHE_SOCKET")
                self.assertIn(os.path.dirname(sock), [m["mountPath"] for m in c.get("volumeMounts", [])],
                              f"{name}/{c['name']}: the socket's directory is a mounted volume")
            agents = [c for c in containers if c["image"].startswith("smcache:")]
            for agent in agents:
                self.assertEqual(agent["readinessProbe"]["exec"]["command"], ["/usr/bin/smcache", "health"])
                self.assertEqual(agent["livenessProbe"]["exec"]["command"], ["/usr/bin/smcache", "ping"])
                self.assertIn("limits", agent["resources"])
                conf_mount = [m for m in agent["volumeMounts"] if m["mountPath"] == "/etc/smcache"][0]
                cm_name = volumes[conf_mount["name"]]["configMap"]["name"]
                ns = doc["metadata"].get("namespace")
                conf = cms[(ns, cm_name)]["data"]["smcached.conf"]
                env = {e["name"]: e.get("value") for e in agent.get("env", [])}
                self.assertEqual(conf_key(conf, "agent", "socket"), env["SMCACHE_SOCKET"])
                sock_vol = [volumes[m["name"]] for m in agent["volumeMounts"]
                            if m["mountPath"] == os.path.dirname(env["SMCACHE_SOCKET"])][0]
                if "emptyDir" in sock_vol:
                    self.assertEqual(conf_key(conf, "agent", "socket_dir_shared"), "true",
                                     f"{name}: an emptyDir (0777) needs socket_dir_shared")
                if "hostPath" in sock_vol:
                    self.assertEqual(conf_key(conf, "agent", "user"), "smcache",
                                     f"{name}: a hostPath directory is root's: start as root, drop to smcache")
            # Applications mount the socket read-only: they cannot replace it.
            for c in pod["containers"]:
                if not c["image"].startswith("smcache:"):
                    for m in c.get("volumeMounts", []):
                        if "emptyDir" in volumes[m["name"]] or "hostPath" in volumes[m["name"]]:
                            self.assertTrue(m.get("readOnly"), f"{name}/{c['name']}")

    def test_sidecar_is_native_and_starts_first(self):
        (doc,) = [d for _, d in self.all_docs() if d["kind"] == "Deployment" and d["metadata"]["name"] == "example-app-with-sidecar"]
        (agent,) = doc["spec"]["template"]["spec"]["initContainers"]
        self.assertEqual(agent["restartPolicy"], "Always")
        self.assertEqual(agent["startupProbe"]["exec"]["command"], ["/usr/bin/smcache", "health"])

    def test_embedded_configs_pass_check_config(self):
        if not smc_harness.have_binaries():
            self.skipTest("binaries not built")
        confs = [d["data"]["smcached.conf"] for d in self.configmaps().values()]
        confs.append(mkimage_module().IMAGE_CONF)     # the image's own default config
        for conf in confs:
            with tempfile.NamedTemporaryFile("w", suffix=".conf", delete=False) as f:
                # The agent's user is the image's; on this host check as the current user.
                f.write("\n".join(l for l in conf.splitlines() if not l.startswith(("user =", "group ="))))
            os.chmod(f.name, 0o600)
            env = dict(os.environ, AWS_REGION="us-east-1", AWS_ACCESS_KEY_ID="AKIDEXAMPLE",
                       AWS_SECRET_ACCESS_KEY="x", AWS_CONFIG_FILE="/nonexistent", AWS_SHARED_CREDENTIALS_FILE="/nonexistent")
            out = subprocess.run([os.path.join(BUILD, "smcached"), "-c", f.name, "--check-config"],
                                 capture_output=True, text=True, env=env)
            os.unlink(f.name)
            self.assertEqual(out.returncode, 0, out.stderr + out.stdout)


class EcsTaskDefinition(unittest.TestCase):
    FIELDS = {"family", "taskRoleArn", "executionRoleArn", "networkMode", "requiresCompatibilities",
              "cpu", "memory", "containerDefinitions", "volumes", "runtimePlatform"}
    CONTAINER = {"name", "image", "essential", "user", "command", "entryPoint", "environment",
                 "mountPoints", "healthCheck", "dependsOn", "readonlyRootFilesystem", "linuxParameters",
                 "logConfiguration", "portMappings", "ulimits", "memoryReservation", "cpu",
                 "stopTimeout", "startTimeout"}

    def test_task_definition(self):
        with open(os.path.join(DEPLOY, "ecs", "task-definition.json")) as f:
            task = json.load(f)
        self.assertEqual(set(task) - self.FIELDS, set())
        self.assertEqual(task["networkMode"], "awsvpc")
        volumes = {v["name"] for v in task["volumes"]}
        by_name = {c["name"]: c for c in task["containerDefinitions"]}
        self.assertIn("smcached", by_name)
        for c in task["containerDefinitions"]:
            self.assertEqual(set(c) - self.CONTAINER, set(), c["name"])
            for m in c.get("mountPoints", []):
                self.assertIn(m["sourceVolume"], volumes)
                self.assertEqual(set(m) - {"sourceVolume", "containerPath", "readOnly"}, set())
            for d in c.get("dependsOn", []):
                self.assertIn(d["containerName"], by_name)
                self.assertIn(d["condition"], {"START", "COMPLETE", "SUCCESS", "HEALTHY"})
        agent = by_name["smcached"]
        self.assertEqual(agent["healthCheck"]["command"], ["CMD", "/usr/bin/smcache", "health"])
        self.assertTrue(agent["readonlyRootFilesystem"])
        if agent.get("user") == "0":
            # Started as root for a root-owned task volume: the image's config drops to smcache.
            self.assertEqual(conf_key(mkimage_module().IMAGE_CONF, "agent", "user"), "smcache")
        apps = [c for c in task["containerDefinitions"] if c["name"] != "smcached"]
        for app in apps:
            self.assertIn({"containerName": "smcached", "condition": "HEALTHY"}, app["dependsOn"])
            env = {e["name"]: e["value"] for e in app["environment"]}
            self.assertEqual(os.path.dirname(env["SMCACHE_SOCKET"]),
                             [m["containerPath"] for m in app["mountPoints"] if m["sourceVolume"] == "smcache-socket"][0])


if __name__ == "__main__":
    unittest.main()
