#!/usr/bin/env python3
"""Proves the walls between the parts of the tree (`make check-layers`, part of `make test`).

The Makefile's layer table (SEES_<part>, LIBS_<part>) is the one home of the rules; it passes
each row here as --part "PART|FOLDERS IT SEES|PKG-CONFIG MODULES IT MAY USE". Two proofs:

1. Project headers. For every part and every project folder it must not see, a probe that
   includes a header of that folder is compiled with the part's flags and must fail; the
   same probe with all folders visible must compile, so a failure means the wall and not a
   broken probe.
2. Library headers (always reachable through /usr/include). Every source of the part is run
   through the preprocessor with its real flags (`cc -M`), and every header in that full,
   transitive include graph is checked: a library's header is allowed only if the part may
   use that library; a project header only from a folder the part sees.
3. Private headers. A header that says in its opening comment that it is "private to
   agent/x/y*.c" (the files of one module split in several) is included by no other source.

Ends with "N passed, N failed" and exits non-zero on any violation.
"""
import argparse
import fnmatch
import glob
import os
import re
import shlex
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# Which headers belong to which pkg-config module (paths as the compiler reports them).
LIBRARY_HEADERS = {
    "libevent": ("/event2/", "/evhttp.h", "/evdns.h", "/evutil.h", "/evrpc.h", "/include/event.h"),
    "libcurl": ("/curl/",),
    "libcrypto": ("/openssl/",),
    "libssl": ("/openssl/ssl.h", "/openssl/ssl2.h", "/openssl/ssl3.h", "/openssl/tls1.h",
               "/openssl/dtls1.h", "/openssl/srtp.h", "/openssl/sslerr.h", "/openssl/sslerr_legacy.h"),
    "libsodium": ("/sodium.h", "/sodium/"),
    "libcjson": ("/cjson/",),
    "inih": ("/ini.h", "/INIReader.h"),
    "cmocka": ("/cmocka.h", "/cmocka_pbc.h"),
}
PROJECT_FOLDERS = ("proto", "client", "agent", "agent/base", "agent/backend", "agent/cache",
                   "agent/aws", "agent/access", "agent/front")


def parse_parts(rows):
    parts = {}
    for row in rows:
        name, sees, libs = (row.split("|") + ["", ""])[:3]
        parts[name] = (sees.split(), libs.split())
    return parts


def sources_of(part, parts):
    """The .c files whose part is `part` (a folder's own files, less those with their own row)."""
    if os.path.isfile(os.path.join(ROOT, part + ".c")):
        return [part + ".c"]
    files = sorted(glob.glob(os.path.join(ROOT, part, "*.c")))
    rel = [os.path.relpath(f, ROOT) for f in files]
    return [f for f in rel if f[:-2] not in parts]


def folder_of_header(path):
    rel = os.path.relpath(os.path.realpath(path), ROOT)
    if rel.startswith(".."):
        return None
    return os.path.dirname(rel)


_private = {}


def private_to(header):
    """The glob of the sources a private header is for, or None (a public header)."""
    if header not in _private:
        try:
            with open(header, errors="replace") as f:
                head = re.sub(r"\n\s*\*\s?", " ", f.read(800))  # the comment as one line
        except OSError:
            head = ""
        m = re.search(r"private to\s+`?([\w/.*]+\.c)", head)
        _private[header] = m.group(1) if m else None
    return _private[header]


def compile_ok(cc, cflags, includes, source_text):
    with tempfile.TemporaryDirectory() as tmp:
        src = os.path.join(tmp, "probe.c")
        with open(src, "w") as f:
            f.write(source_text)
        argv = shlex.split(cc) + shlex.split(cflags) + [f"-I{os.path.join(ROOT, i)}" for i in includes] + \
            ["-fsyntax-only", src]
        return subprocess.run(argv, cwd=ROOT, capture_output=True).returncode == 0


def some_header(folder):
    hs = sorted(glob.glob(os.path.join(ROOT, folder, "*.h")))
    return os.path.basename(hs[0]) if hs else None


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--cc", default="cc")
    ap.add_argument("--cflags", default="")
    ap.add_argument("--part", action="append", default=[])
    args = ap.parse_args()
    parts = parse_parts(args.part)
    passed, failed = 0, []

    # 1. Every wall between project folders holds.
    for part, (sees, _) in parts.items():
        for folder in PROJECT_FOLDERS:
            if folder in sees:
                continue
            header = some_header(folder)
            if header is None:
                continue
            # A header of the same name in a visible folder would make the probe meaningless.
            if any(os.path.exists(os.path.join(ROOT, s, header)) for s in sees):
                continue
            probe = f'#include "{header}"\nint layer_probe(void);\nint layer_probe(void) {{ return 0; }}\n'
            if not compile_ok(args.cc, args.cflags, PROJECT_FOLDERS, probe):
                failed.append(f"probe {folder}/{header} does not compile even with every folder visible")
            elif compile_ok(args.cc, args.cflags, sees, probe):
                failed.append(f"{part} can include {folder}/{header} (wall missing)")
            else:
                passed += 1

    # 2. The real include graph of every source obeys its part's row.
    for part, (sees, libs) in parts.items():
        for src in sources_of(part, parts):
            argv = shlex.split(args.cc) + shlex.split(args.cflags) + [f"-I{s}" for s in sees] + ["-M", src]
            proc = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True)
            if proc.returncode != 0:
                failed.append(f"{src}: does not preprocess with its part's flags: {proc.stderr.strip()[:300]}")
                continue
            deps = proc.stdout.replace("\\\n", " ").split(":", 1)[1].split()
            bad = []
            for dep in deps[1:]:
                if not dep.endswith(".h"):
                    continue
                folder = folder_of_header(os.path.join(ROOT, dep))
                if folder is not None:
                    if folder not in sees:
                        bad.append(f"{dep} (folder {folder} not in its row)")
                    owners = private_to(os.path.join(ROOT, dep))
                    if owners is not None and not fnmatch.fnmatch(src, owners):
                        bad.append(f"{dep} (private to {owners})")
                    continue
                for lib, marks in LIBRARY_HEADERS.items():
                    if lib not in libs and any(m in dep for m in marks):
                        bad.append(f"{dep} ({lib} not allowed for {part})")
            if bad:
                failed.append(f"{src}: " + "; ".join(bad))
            else:
                passed += 1

    for f in failed:
        print(f"check-layers: FAIL {f}")
    print(f"check-layers: {passed} passed, {len(failed)} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
