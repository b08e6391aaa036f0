#!/usr/bin/env python3
"""Builds the smcache Lambda layer (`make lambda-layer`).

A layer is unpacked under /opt. Lambda starts every executable in /opt/extensions as an
extension, named after its file, so the layer holds:

  extensions/smcache        a launcher (sh): runs smcached --lambda-extension=smcache
  smcache/bin/smcached      the agent
  smcache/bin/smcache       the CLI (for `smcache get` in shell-based functions)
  smcache/lib/              every shared library the two load, the C library and its
                            loader included: Lambda's runtimes (Amazon Linux) ship other
                            library versions, so the launcher starts the agent through
                            the bundled loader with --library-path and nothing from the
                            runtime's /lib is used.

The launcher finds its files relative to itself, so the layer also runs unpacked
anywhere else (the tests run it from a temporary directory).

  mklayer.py --build build --out build/lambda/smcache-layer.zip [--unpack DIR]
"""
import argparse
import os
import stat
import sys
import zipfile

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
# The container image's builder knows which libraries a binary loads: one copy of that rule.
sys.path.insert(0, os.path.join(ROOT, "deploy", "container"))
from mkimage import ldd_paths  # noqa: E402

LAUNCHER = """#!/bin/sh
# smcache Lambda extension: the agent, through its own loader and libraries.
here=$(cd "$(dirname "$0")/.." && pwd)
name=${0##*/}
exec "$here/smcache/lib/ld-linux-x86-64.so.2" --library-path "$here/smcache/lib" \\
  "$here/smcache/bin/smcached" --lambda-extension="$name" "$@"
"""


def entries(build):
    """(path in the zip, bytes, mode), sorted."""
    files = {"extensions/smcache": (LAUNCHER.encode(), 0o755)}
    for name in ("smcached", "smcache"):
        src = os.path.join(build, name)
        with open(src, "rb") as f:
            files[f"smcache/bin/{name}"] = (f.read(), 0o755)
        for lib in ldd_paths(src):
            with open(os.path.realpath(lib), "rb") as f:
                files[f"smcache/lib/{os.path.basename(lib)}"] = (f.read(), 0o755)
    return sorted((k, v[0], v[1]) for k, v in files.items())


def write_zip(out, items):
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    tmp = out + ".tmp"
    with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as z:
        for path, data, mode in items:
            info = zipfile.ZipInfo(path, date_time=(1980, 1, 1, 0, 0, 0))
            info.external_attr = (stat.S_IFREG | mode) << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            z.writestr(info, data)
    os.replace(tmp, out)


def unpack(zip_path, dest):
    """Unzips keeping the modes (zipfile alone drops them)."""
    with zipfile.ZipFile(zip_path) as z:
        for info in z.infolist():
            target = os.path.join(dest, info.filename)
            os.makedirs(os.path.dirname(target), exist_ok=True)
            with open(target, "wb") as f:
                f.write(z.read(info))
            os.chmod(target, (info.external_attr >> 16) & 0o7777)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--build", default="build")
    ap.add_argument("--out", required=True)
    ap.add_argument("--unpack", help="also unpack the layer into this directory")
    args = ap.parse_args()
    build = args.build if os.path.isabs(args.build) else os.path.join(ROOT, args.build)
    for b in ("smcached", "smcache"):
        if not os.access(os.path.join(build, b), os.X_OK):
            sys.exit(f"mklayer: {build}/{b} is missing: run make first")
    items = entries(build)
    write_zip(args.out, items)
    if args.unpack:
        unpack(args.out, args.unpack)
    print(f"mklayer: {args.out}: {len(items)} files, {os.path.getsize(args.out) // 1024} KiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
