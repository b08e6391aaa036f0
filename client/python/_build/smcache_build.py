"""A PEP 517 build backend with the standard library only, for the pure-Python smcache
package: wheels (and editable wheels, PEP 660) are zip files with a dist-info directory,
sdists a tar.gz. The metadata below mirrors pyproject.toml's [project] table (Python 3.9
has no tomllib to read it)."""
import base64
import hashlib
import io
import os
import tarfile
import zipfile

NAME, VERSION = "smcache", "0.1.0"
HERE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TAG = "py3-none-any"
DIST_INFO = f"{NAME}-{VERSION}.dist-info"
METADATA = f"""Metadata-Version: 2.1
Name: {NAME}
Version: {VERSION}
Summary: Client for the smcache secrets agent (boto3-shaped reads, aws-secretsmanager-caching API) over a Unix socket
License: Apache-2.0
Requires-Python: >=3.9
Classifier: Programming Language :: Python :: 3
Classifier: Operating System :: POSIX :: Linux
Classifier: Typing :: Typed
"""
WHEEL = f"Wheel-Version: 1.0\nGenerator: smcache_build\nRoot-Is-Purelib: true\nTag: {TAG}\n"


def _package_files():
    root = os.path.join(HERE, NAME)
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if d != "__pycache__")
        for fn in sorted(filenames):
            if fn.endswith((".py", ".typed")):
                full = os.path.join(dirpath, fn)
                yield full, os.path.relpath(full, HERE).replace(os.sep, "/")


def _write_wheel(directory, entries):
    """entries: (archive name, bytes). Adds the dist-info files and the RECORD."""
    name = f"{NAME}-{VERSION}-{TAG}.whl"
    entries = list(entries) + [(f"{DIST_INFO}/METADATA", METADATA.encode()),
                               (f"{DIST_INFO}/WHEEL", WHEEL.encode())]
    record = []
    with zipfile.ZipFile(os.path.join(directory, name), "w", zipfile.ZIP_DEFLATED) as z:
        for arcname, data in entries:
            z.writestr(arcname, data)
            digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
            record.append(f"{arcname},sha256={digest},{len(data)}")
        record.append(f"{DIST_INFO}/RECORD,,")
        z.writestr(f"{DIST_INFO}/RECORD", "\n".join(record) + "\n")
    return name


def get_requires_for_build_wheel(config_settings=None):
    return []


def get_requires_for_build_sdist(config_settings=None):
    return []


def get_requires_for_build_editable(config_settings=None):
    return []


def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
    entries = []
    for full, arc in _package_files():
        with open(full, "rb") as f:
            entries.append((arc, f.read()))
    return _write_wheel(wheel_directory, entries)


def build_editable(wheel_directory, config_settings=None, metadata_directory=None):
    return _write_wheel(wheel_directory, [(f"__editable__.{NAME}.pth", (HERE + "\n").encode())])


def build_sdist(sdist_directory, config_settings=None):
    base = f"{NAME}-{VERSION}"
    name = f"{base}.tar.gz"
    files = [(full, arc) for full, arc in _package_files()]
    for extra in ("pyproject.toml", "README.md", "_build/smcache_build.py"):
        files.append((os.path.join(HERE, extra), extra))
    with tarfile.open(os.path.join(sdist_directory, name), "w:gz", format=tarfile.PAX_FORMAT) as t:
        for full, arc in files:
            t.add(full, f"{base}/{arc}", recursive=False)
        info = tarfile.TarInfo(f"{base}/PKG-INFO")
        data = METADATA.encode()
        info.size = len(data)
        t.addfile(info, io.BytesIO(data))
    return name
