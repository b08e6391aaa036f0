"""``smcache.Client``: a drop-in for a boto3 ``secretsmanager`` client's read calls.

Thread-safe: connections live in a small pool and each call borrows one, so
threads never share a connection mid-request. Fork-safe: a child never uses a
connection its parent opened (the pool is emptied after ``fork()``). An agent
restart is survived: a call whose pooled connection turns out closed sends its
request again on a fresh one, and while the agent is briefly gone a client that
has reached it before keeps trying to reconnect (with backoff) until the call's
deadline.
"""
import os
import random
import threading
import time
import weakref
from typing import Any, Dict, List, Optional, Sequence, Tuple

from . import _proto as p
from . import _shape
from ._conn import Closed, Connection
from .errors import AgentUnavailableError, Exceptions

__all__ = ["Client", "DEFAULT_TIMEOUT"]

DEFAULT_TIMEOUT = 10.0     # seconds, as libsmcache's SMC_DEFAULT_TIMEOUT_MS
DEFAULT_POOL_SIZE = 4      # idle connections kept; more threads open more, closed on return
_RECONNECT_FIRST, _RECONNECT_MAX = 0.02, 0.5   # seconds between attempts while the agent is gone
_CLOSED_RETRIES = 3        # sends of one request whose connection closed before any reply (as libsmcache)

_clients: "weakref.WeakSet[Client]" = weakref.WeakSet()


def _after_fork_in_child() -> None:
    for c in list(_clients):
        c._forget_after_fork()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


class Client:
    """A client of the local smcache agent with boto3's call and result shapes.

    :param socket: the agent's socket path; None finds it like the C client does
        (``$SMCACHE_SOCKET``, then the per-user path, then ``/run/smcache/smcached.sock``).
    :param timeout: per-call deadline in seconds (connecting, sending and waiting for
        the reply, retries included); None waits forever.
    :param pool_size: how many idle connections to keep for reuse.

    Replace ``boto3.client("secretsmanager")`` with ``smcache.Client()``; the calls
    ``get_secret_value``, ``describe_secret`` and ``batch_get_secret_value`` take the
    same keyword arguments and return the same dicts (``ResponseMetadata`` aside),
    and errors are :class:`smcache.ClientError` subclasses with botocore's codes.
    """

    exceptions = Exceptions

    def __init__(self, socket: Optional[str] = None, timeout: Optional[float] = DEFAULT_TIMEOUT,
                 pool_size: int = DEFAULT_POOL_SIZE) -> None:
        if timeout is not None and timeout <= 0:
            raise ValueError("timeout must be a positive number of seconds or None")
        self._socket = socket
        self._timeout = timeout
        self._pool_size = max(0, pool_size)
        self._lock = threading.Lock()
        self._idle: List[Connection] = []
        self._pid = os.getpid()
        self._reached = False       # reached an agent once: keep trying while it restarts
        self._closed = False
        _clients.add(self)

    # ---- public calls -------------------------------------------------------------------

    def get_secret_value(self, **kwargs: Any) -> Dict[str, Any]:
        """``GetSecretValue``: ``SecretId`` (name, ARN or partial ARN), optional
        ``VersionId`` and/or ``VersionStage``. ``RefreshNow=True`` (an smcache
        extension) makes the agent ask the upstream now; it is rate-limited.

        Returns ARN, Name, VersionId, SecretString or SecretBinary (bytes),
        VersionStages, CreatedDate (timezone-aware) and ResponseMetadata.
        """
        fields, flags = _shape.get_request(kwargs)
        (reply,) = self._call([(p.OP_GET, fields, flags)])
        return _shape.get_response(reply)

    def describe_secret(self, **kwargs: Any) -> Dict[str, Any]:
        """``DescribeSecret``: ARN, Name, Description, CreatedDate, LastChangedDate,
        DeletedDate and VersionIdsToStages (what the agent knows; no tags or rotation
        settings)."""
        fields = _shape.describe_request(kwargs)
        (reply,) = self._call([(p.OP_DESCRIBE, fields, 0)])
        return _shape.describe_response(reply)

    def batch_get_secret_value(self, **kwargs: Any) -> Dict[str, Any]:
        """``BatchGetSecretValue`` with ``SecretIdList`` (1 to 20 ids): one pipelined
        round trip; ``SecretValues`` in request order, per-id failures in ``Errors``."""
        ids = _shape.batch_ids(kwargs)
        reqs = []
        for secret_id in ids:
            fields, flags = _shape.get_request({"SecretId": secret_id})
            reqs.append((p.OP_GET, fields, flags))
        return _shape.batch_response(ids, self._call(reqs))

    def ping(self) -> str:
        """The agent's name and version, e.g. ``smcached 0.1.0``."""
        (reply,) = self._call([(p.OP_PING, [], 0)])
        return _shape.ping(reply)

    def stats(self) -> Dict[str, int]:
        """The agent's counters by name."""
        (reply,) = self._call([(p.OP_STATS, [], 0)])
        return _shape.stats(reply)

    def close(self) -> None:
        """Closes the pooled connections; the client may still be used afterwards."""
        with self._lock:
            idle, self._idle = self._idle, []
        for conn in idle:
            conn.close()

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:
            pass

    # ---- connections --------------------------------------------------------------------

    def _forget_after_fork(self) -> None:
        # The parent's connections are its own; the child drops its copies of the
        # descriptors without touching the parent's sessions, and a lock another
        # thread held at fork time is replaced.
        self._lock = threading.Lock()
        idle, self._idle = self._idle, []
        for conn in idle:
            conn.close()
        self._pid = os.getpid()

    def _deadline(self) -> Optional[float]:
        return None if self._timeout is None else time.monotonic() + self._timeout

    def _borrow(self, deadline: Optional[float]) -> Connection:
        if self._pid != os.getpid():
            self._forget_after_fork()
        with self._lock:
            while self._idle:
                conn = self._idle.pop()
                if conn.usable:
                    return conn
                conn.close()
        delay = _RECONNECT_FIRST
        while True:
            try:
                conn = Connection(self._socket, deadline)
                self._reached = True
                return conn
            except AgentUnavailableError:
                # A client that never reached an agent fails at once; one that did is
                # probably seeing a restart and waits for the new agent.
                if not self._reached:
                    raise
                if deadline is not None and time.monotonic() + delay >= deadline:
                    raise
                time.sleep(delay * random.uniform(0.5, 1.0))
                delay = min(delay * 2, _RECONNECT_MAX)

    def _give_back(self, conn: Connection) -> None:
        if conn.usable:
            with self._lock:
                if len(self._idle) < self._pool_size and conn.pid == os.getpid():
                    self._idle.append(conn)
                    return
        conn.close()

    def _call(self, requests: Sequence[Tuple[int, List[Tuple[int, bytes]], int]]) -> List[p.Reply]:
        """Sends the requests pipelined on one connection; replies in request order."""
        deadline = self._deadline()
        for attempt in range(_CLOSED_RETRIES):
            conn = self._borrow(deadline)
            reused = conn.used > 0
            frames = []
            for op, fields, flags in requests:
                rid = conn.next_id()
                frames.append((rid, p.encode_request(op, rid, fields, flags)))
            try:
                got = conn.exchange(frames, deadline)
            except Closed as e:
                # Every request is read-only: when the agent closed an idle connection
                # (or restarted) before answering, asking again is harmless. A first send
                # on a fresh connection that the agent closed is its answer; a later one
                # may meet the old agent still shutting down, so wait a moment.
                if e.replied or (attempt == 0 and not reused) or attempt + 1 >= _CLOSED_RETRIES:
                    raise
                if attempt > 0:
                    time.sleep(_RECONNECT_FIRST * (1 << attempt))
                continue
            self._give_back(conn)
            return [got[rid] for rid, _ in frames]
        raise AssertionError("unreachable")
