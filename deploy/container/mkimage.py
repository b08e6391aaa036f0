#!/usr/bin/env python3
"""Builds the smcache container image from the build tree, without a base image.

No registry is reachable here, and a secrets agent wants nothing it does not run: the
image's one layer holds the two binaries, exactly the shared libraries `ldd` says they
load, CA certificates, a passwd/group with the non-root user smcache (65532), an
nsswitch.conf for DNS, and the agent's configuration. No shell, no package manager.

The output is one tar that is both an OCI image layout (oci-layout, index.json,
blobs/sha256/...) and a `docker load` archive (manifest.json), byte-for-byte
reproducible for the same inputs (fixed mtimes, owners and order).

  mkimage.py --build build --out build/image/smcache-image.tar [--tag smcache:0.1.0]
             [--rootfs DIR]   also unpack the layer into DIR (for tests)
"""
import argparse
import hashlib
import io
import json
import os
import re
import subprocess
import sys
import tarfile

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
UID = GID = 65532
LIBDIR = "usr/lib/x86_64-linux-gnu"
CA_BUNDLE = "/etc/ssl/certs/ca-certificates.crt"


def ldd_paths(binary):
    """The absolute paths of every shared object `binary` loads (the loader included)."""
    out = subprocess.run(["ldd", binary], capture_output=True, text=True, check=True).stdout
    paths = []
    for line in out.splitlines():
        m = re.search(r"=>\s+(/\S+)", line) or re.match(r"\s*(/\S+)", line)
        if m:
            paths.append(m.group(1))
    return paths


def image_path_of_library(path):
    """Where a library goes in the image: merged /usr as on Debian (/lib -> usr/lib)."""
    base = os.path.basename(path)
    if base.startswith("ld-linux"):
        return "usr/lib64/" + base
    return f"{LIBDIR}/{base}"


def read(path):
    with open(path, "rb") as f:
        return f.read()


class Layer:
    """A deterministic tar: entries sorted, owners and times fixed."""

    def __init__(self):
        self.entries = {}

    def dir(self, path, mode=0o755, uid=0, gid=0):
        self.entries[path] = ("dir", None, mode, uid, gid)

    def file(self, path, data, mode=0o644, uid=0, gid=0):
        parent = os.path.dirname(path)
        while parent and parent not in self.entries:
            self.dir(parent)
            parent = os.path.dirname(parent)
        self.entries[path] = ("file", data, mode, uid, gid)

    def symlink(self, path, target):
        self.entries[path] = ("symlink", target, 0o777, 0, 0)

    def tar_bytes(self):
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
            for path in sorted(self.entries):
                kind, data, mode, uid, gid = self.entries[path]
                info = tarfile.TarInfo(path)
                info.mode, info.uid, info.gid, info.mtime = mode, uid, gid, 0
                info.uname = info.gname = ""
                if kind == "dir":
                    info.type = tarfile.DIRTYPE
                    tar.addfile(info)
                elif kind == "symlink":
                    info.type, info.linkname = tarfile.SYMTYPE, data
                    tar.addfile(info)
                else:
                    info.size = len(data)
                    tar.addfile(info, io.BytesIO(data))
        return buf.getvalue()


IMAGE_CONF = """\
# smcached.conf of the container image: Secrets Manager behind a socket in the
# volume /run/smcache, shared with the pod's or task's application containers.
# Mount your own file over this one to change it (deploy/README.md); every key
# is described in smcached.conf(5).
[agent]
socket = /run/smcache/smcached.sock
# Applications in other containers run as other uids: they reach the socket
# through the shared volume. Narrow it with [access] rules on their uids.
socket_mode = 0666
# Container runtimes make pod/task volumes writable by everyone (emptyDir 0777).
socket_dir_shared = true
# Started as root (a volume only root may write, e.g. an ECS bind mount), the
# agent binds the socket and then runs as smcache; started as smcache (the
# image's default user), this changes nothing.
user = smcache
group = smcache
log_level = info

[backend]
type = aws

[aws]
ca_bundle = /etc/ssl/certs/ca-certificates.crt

[cache]
# Containers get a small RLIMIT_MEMLOCK by default; lock what the limit allows
# and say so (run with --ulimit memlock=-1 or IPC_LOCK to lock everything).
mlock = best-effort
"""


def build_layer(build):
    layer = Layer()
    for d in ("etc", "etc/smcache", "etc/ssl", "etc/ssl/certs", "usr", "usr/bin", "usr/sbin",
              "usr/lib", LIBDIR, "usr/lib64", "var"):
        layer.dir(d)
    layer.symlink("lib", "usr/lib")
    layer.symlink("lib64", "usr/lib64")
    layer.symlink("bin", "usr/bin")
    layer.symlink("sbin", "usr/sbin")
    layer.dir("tmp", 0o1777)
    layer.dir("run", 0o755)
    layer.dir("run/smcache", 0o755, UID, GID)
    layer.dir("var/lib/smcache", 0o700, UID, GID)
    layer.dir("home/smcache", 0o700, UID, GID)

    binaries = {"usr/sbin/smcached": os.path.join(build, "smcached"),
                "usr/bin/smcache": os.path.join(build, "smcache")}
    libs = {}
    for dest, src in binaries.items():
        layer.file(dest, read(src), 0o755)
        for lib in ldd_paths(src):
            libs[image_path_of_library(lib)] = os.path.realpath(lib)
    for dest, src in sorted(libs.items()):
        layer.file(dest, read(src), 0o755)

    layer.file(CA_BUNDLE.lstrip("/"), read(CA_BUNDLE))
    layer.file("etc/passwd", (
        "root:x:0:0:root:/root:/usr/sbin/nologin\n"
        f"smcache:x:{UID}:{GID}:smcache agent:/home/smcache:/usr/sbin/nologin\n"
        "nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n").encode())
    layer.file("etc/group", f"root:x:0:\nsmcache:x:{GID}:\nnogroup:x:65534:\n".encode())
    layer.file("etc/nsswitch.conf", b"passwd: files\ngroup: files\nhosts: files dns\n")
    layer.file("etc/smcache/smcached.conf", IMAGE_CONF.encode(), 0o644)
    return layer


def sha256(data):
    return "sha256:" + hashlib.sha256(data).hexdigest()


def write_image(layer_tar, out, tag, version):
    config = {
        "architecture": "amd64",
        "os": "linux",
        "config": {
            "User": f"{UID}:{GID}",
            "Entrypoint": ["/usr/sbin/smcached"],
            "Cmd": ["-c", "/etc/smcache/smcached.conf"],
            "Env": ["PATH=/usr/sbin:/usr/bin", "SMCACHE_SOCKET=/run/smcache/smcached.sock"],
            "Volumes": {"/run/smcache": {}},
            "ExposedPorts": {"2773/tcp": {}},
            "WorkingDir": "/",
            "Labels": {"org.opencontainers.image.title": "smcache",
                       "org.opencontainers.image.version": version,
                       "org.opencontainers.image.description":
                           "smcached: a local caching agent for AWS Secrets Manager"},
        },
        "rootfs": {"type": "layers", "diff_ids": [sha256(layer_tar)]},
        "history": [{"created_by": "deploy/container/mkimage.py"}],
    }
    config_bytes = json.dumps(config, sort_keys=True, separators=(",", ":")).encode()
    manifest = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                   "digest": sha256(config_bytes), "size": len(config_bytes)},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar",
                    "digest": sha256(layer_tar), "size": len(layer_tar)}],
    }
    manifest_bytes = json.dumps(manifest, sort_keys=True, separators=(",", ":")).encode()
    index = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [{"mediaType": manifest["mediaType"], "digest": sha256(manifest_bytes),
                       "size": len(manifest_bytes),
                       "annotations": {"io.containerd.image.name": tag,
                                       "org.opencontainers.image.ref.name": tag.split(":")[-1]}}],
    }
    blob = lambda d: "blobs/sha256/" + d.split(":")[1]  # noqa: E731
    docker_manifest = [{"Config": blob(sha256(config_bytes)), "RepoTags": [tag],
                        "Layers": [blob(sha256(layer_tar))]}]
    files = {
        "oci-layout": json.dumps({"imageLayoutVersion": "1.0.0"}).encode(),
        "index.json": json.dumps(index, sort_keys=True).encode(),
        "manifest.json": json.dumps(docker_manifest).encode(),
        blob(sha256(config_bytes)): config_bytes,
        blob(sha256(manifest_bytes)): manifest_bytes,
        blob(sha256(layer_tar)): layer_tar,
    }
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    tmp = out + ".tmp"
    with tarfile.open(tmp, "w", format=tarfile.PAX_FORMAT) as tar:
        for d in ("blobs", "blobs/sha256"):
            info = tarfile.TarInfo(d)
            info.type, info.mode, info.mtime = tarfile.DIRTYPE, 0o755, 0
            tar.addfile(info)
        for name in sorted(files):
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = len(files[name]), 0o644, 0
            tar.addfile(info, io.BytesIO(files[name]))
    os.replace(tmp, out)
    return sha256(manifest_bytes)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--build", default="build")
    ap.add_argument("--out", required=True)
    ap.add_argument("--tag", default=None)
    ap.add_argument("--version", default="0.1.0")
    ap.add_argument("--rootfs", default=None, help="also unpack the layer into this directory")
    args = ap.parse_args()
    build = os.path.join(ROOT, args.build) if not os.path.isabs(args.build) else args.build
    for b in ("smcached", "smcache"):
        if not os.access(os.path.join(build, b), os.X_OK):
            sys.exit(f"mkimage: {build}/{b} is missing: run make first")
    tag = args.tag or f"smcache:{args.version}"
    layer_tar = build_layer(build).tar_bytes()
    digest = write_image(layer_tar, args.out, tag, args.version)
    if args.rootfs:
        with tarfile.open(fileobj=io.BytesIO(layer_tar)) as tar:
            tar.extractall(args.rootfs, numeric_owner=True)
    print(f"mkimage: {args.out}: {tag}, manifest {digest}, layer {len(layer_tar) // 1024} KiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
