"""Finding the agent's socket and talking to it from threads.

Socket discovery (the same order as the C client, proto/sockpath.c):

1. ``$SMCACHE_SOCKET`` when set and not empty: the only candidate, trusted as given;
2. the per-user path: ``$XDG_RUNTIME_DIR/smcache/smcached.sock`` when
   ``XDG_RUNTIME_DIR`` is absolute, else ``/tmp/smcache-UID/smcached.sock``
   (for root this step is the system path itself). Only an agent running as
   root or as our effective uid is believed there (``SO_PEERCRED``), since
   anyone may have created the ``/tmp`` directory first;
3. the system path ``/run/smcache/smcached.sock``, believed only when the
   socket file is owned by root or by the uid the agent runs as.

When none answers, the error lists every path tried with its reason and names
``SMCACHE_SOCKET``.

A :class:`Connection` sends any number of frames and collects replies by request
id, reading while it writes (PROTOCOL.md section 8), all under one deadline.
"""
import errno
import os
import selectors
import socket
import struct
import time
from typing import Dict, List, Optional, Sequence, Tuple

from . import _proto as p
from .errors import AgentUnavailableError, ProtocolError

SOCKET_ENV = "SMCACHE_SOCKET"
SYSTEM_PATH = "/run/smcache/smcached.sock"
SUN_PATH_MAX = 107

# How a candidate's peer is checked.
TRUST_AS_GIVEN, TRUST_PEER_UID, TRUST_SOCKET_OWNER = "given", "peer", "owner"

_UCRED = struct.Struct("3i")


def candidates(explicit: Optional[str] = None) -> List[Tuple[str, str]]:
    """The socket paths to try, in order, each with the trust rule applied to it."""
    if explicit:
        return [(explicit, TRUST_AS_GIVEN)]
    env = os.environ.get(SOCKET_ENV)
    if env:
        return [(env, TRUST_AS_GIVEN)]
    uid = os.geteuid()
    if uid == 0:
        return [(SYSTEM_PATH, TRUST_SOCKET_OWNER)]
    xdg = os.environ.get("XDG_RUNTIME_DIR", "")
    if xdg.startswith("/"):
        user = os.path.join(xdg, "smcache", "smcached.sock")
    else:
        user = f"/tmp/smcache-{uid}/smcached.sock"
    return [(user, TRUST_PEER_UID), (SYSTEM_PATH, TRUST_SOCKET_OWNER)]


def peer_uid(sock: socket.socket) -> int:
    raw = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _UCRED.size)
    return _UCRED.unpack(raw)[1]


def check_trust(sock: socket.socket, path: str, trust: str) -> Optional[str]:
    """None when the peer behind sock may be believed, else the reason it may not."""
    if trust == TRUST_AS_GIVEN:
        return None
    uid = peer_uid(sock)
    if trust == TRUST_PEER_UID:
        if uid in (0, os.geteuid()):
            return None
        return f"the agent there runs as uid {uid}, not as root or uid {os.geteuid()}"
    try:
        owner = os.stat(path).st_uid
    except OSError as e:
        return f"cannot check its owner: {e.strerror}"
    if owner == 0 or owner == uid:
        return None
    return f"the socket is owned by uid {owner}, neither root nor the agent's uid {uid}"


def open_socket(explicit: Optional[str], deadline: Optional[float]) -> socket.socket:
    """A connected, trusted, non-blocking socket to the agent, or AgentUnavailableError."""
    tried = []
    for path, trust in candidates(explicit):
        if len(os.fsencode(path)) > SUN_PATH_MAX:
            tried.append(f"{path} (path too long for a Unix socket)")
            continue
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
        try:
            sock.settimeout(_remaining(deadline, "connecting to the agent"))
            sock.connect(path)
            why = check_trust(sock, path, trust)
        except (OSError, AgentUnavailableError) as e:
            sock.close()
            tried.append(f"{path} ({_reason(e)})")
            continue
        if why is not None:
            sock.close()
            tried.append(f"{path} ({why})")
            continue
        sock.setblocking(False)
        return sock
    raise AgentUnavailableError(
        "no smcache agent reachable; tried: " + "; ".join(tried) +
        f". Start smcached or set {SOCKET_ENV} to its socket path.")


def _reason(e: BaseException) -> str:
    if isinstance(e, socket.timeout):
        return "timed out"
    if isinstance(e, OSError) and e.strerror:
        return e.strerror
    return str(e)


def _remaining(deadline: Optional[float], what: str) -> Optional[float]:
    if deadline is None:
        return None
    left = deadline - time.monotonic()
    if left <= 0:
        raise AgentUnavailableError(f"timed out {what}")
    return left


class Closed(AgentUnavailableError):
    """The agent closed the connection; ``replied`` says whether any reply byte had come."""

    def __init__(self, message: str, replied: bool) -> None:
        super().__init__(message)
        self.replied = replied


class Connection:
    """One connection to the agent. Not thread-safe: a pool hands it to one user at a time."""

    def __init__(self, explicit: Optional[str], deadline: Optional[float]) -> None:
        self.sock = open_socket(explicit, deadline)
        self.pid = os.getpid()
        self.used = 0
        self._next_id = 1
        self._broken = False

    def next_id(self) -> int:
        rid = self._next_id
        self._next_id = rid + 1 if rid < 0xFFFFFFFF else 1
        return rid

    @property
    def usable(self) -> bool:
        return not self._broken and self.pid == os.getpid()

    def close(self) -> None:
        self._broken = True
        try:
            self.sock.close()
        except OSError:
            pass

    def exchange(self, frames: Sequence[Tuple[int, bytes]],
                 deadline: Optional[float]) -> Dict[int, p.Reply]:
        """Sends every (request id, frame) and returns the replies by request id.

        Reads while writing, so many pipelined requests cannot deadlock against the
        agent's back-pressure. Any failure closes the connection (its state is unknown).
        """
        self.used += 1
        out = memoryview(b"".join(f for _, f in frames))
        want = {rid for rid, _ in frames}
        got: Dict[int, p.Reply] = {}
        inbuf = bytearray()
        replied = False
        sel = selectors.DefaultSelector()
        try:
            sel.register(self.sock, selectors.EVENT_READ | selectors.EVENT_WRITE)
            while want:
                if not out:
                    sel.modify(self.sock, selectors.EVENT_READ)
                timeout = _remaining(deadline, "waiting for the agent")
                events = sel.select(timeout)
                if not events:
                    raise AgentUnavailableError("timed out waiting for the agent")
                mask = events[0][1]
                if mask & selectors.EVENT_WRITE and out:
                    try:
                        n = self.sock.send(out, socket.MSG_NOSIGNAL)
                        out = out[n:]
                    except (BlockingIOError, InterruptedError):
                        pass
                    except OSError as e:
                        raise self._lost(e, replied) from None
                if mask & selectors.EVENT_READ:
                    try:
                        chunk = self.sock.recv(65536)
                    except (BlockingIOError, InterruptedError):
                        continue
                    except OSError as e:
                        raise self._lost(e, replied) from None
                    if not chunk:
                        raise Closed("the agent closed the connection" +
                                     (" in the middle of a reply" if replied else ""), replied)
                    replied = True
                    inbuf += chunk
                    for body in p.split_frames(inbuf):
                        reply = p.decode_reply(body)
                        if reply.request_id == 0 and reply.status != p.ST_OK:
                            # A connection-level error: it applies to everything pending.
                            for rid in want:
                                got[rid] = reply
                            want.clear()
                            self._broken = True
                            break
                        if reply.request_id not in want:
                            raise p.ProtocolError(
                                f"the agent answered request {reply.request_id}, which is not pending")
                        want.discard(reply.request_id)
                        got[reply.request_id] = reply
            if inbuf:
                raise p.ProtocolError("the agent sent bytes that answer no request")
            return got
        except p.ProtocolError as e:
            self.close()
            raise ProtocolError(f"malformed reply from the agent: {e}") from None
        except BaseException:
            self.close()
            raise
        finally:
            sel.close()
            inbuf[:] = b"\0" * len(inbuf)

    def _lost(self, e: OSError, replied: bool) -> AgentUnavailableError:
        if e.errno in (errno.EPIPE, errno.ECONNRESET, errno.ENOTCONN):
            return Closed(f"the agent closed the connection ({e.strerror})", replied)
        return AgentUnavailableError(f"talking to the agent failed: {e.strerror}")
