"""``smcache.aio.Client``: the same calls as :class:`smcache.Client`, for asyncio.

One connection per client and event loop, shared by every task: requests are
pipelined on it and a reader task hands each reply to the caller whose request
id it carries, so a slow upstream fetch does not hold up cached reads. A lost
connection (agent restart) fails the requests in flight with ``Closed`` and the
calls that had not been answered are sent again once on a new connection.
"""
import asyncio
import os
import socket
import time
from typing import Any, Dict, List, Optional, Sequence, Tuple

from . import _proto as p
from . import _shape
from ._conn import SUN_PATH_MAX, candidates, check_trust, Closed, _reason
from .client import DEFAULT_TIMEOUT
from .errors import AgentUnavailableError, Exceptions, ProtocolError

__all__ = ["Client"]


class _Conn:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.pending: Dict[int, "asyncio.Future[p.Reply]"] = {}
        self.next_id = 1
        self.pid = os.getpid()
        self.dead: Optional[BaseException] = None
        self.task = asyncio.get_running_loop().create_task(self._read_loop())

    def new_id(self) -> int:
        rid = self.next_id
        self.next_id = rid + 1 if rid < 0xFFFFFFFF else 1
        return rid

    async def _read_loop(self) -> None:
        replied = False
        try:
            while True:
                try:
                    prefix = await self.reader.readexactly(p.PREFIX_LEN)
                    body = await self.reader.readexactly(p.check_prefix(prefix))
                except asyncio.IncompleteReadError:
                    raise Closed("the agent closed the connection", replied) from None
                except (ConnectionError, OSError) as e:
                    raise Closed(f"the agent closed the connection ({_reason(e)})", replied) from None
                replied = True
                reply = p.decode_reply(body)
                if reply.request_id == 0 and reply.status != p.ST_OK:
                    for fut in self.pending.values():
                        if not fut.done():
                            fut.set_result(reply)
                    self.pending.clear()
                    raise Closed("the agent refused the connection", True)
                fut = self.pending.pop(reply.request_id, None)
                if fut is None:
                    raise p.ProtocolError(f"the agent answered request {reply.request_id}, "
                                          "which is not pending")
                if not fut.done():
                    fut.set_result(reply)
        except p.ProtocolError as e:
            self._fail(ProtocolError(f"malformed reply from the agent: {e}"))
        except BaseException as e:  # noqa: B902 - every way out fails the waiters
            self._fail(e)

    def _fail(self, exc: BaseException) -> None:
        self.dead = exc
        for fut in self.pending.values():
            if not fut.done():
                fut.set_exception(exc)
        self.pending.clear()
        self.writer.close()

    def close(self) -> None:
        self.task.cancel()
        self.writer.close()


class Client:
    """asyncio client of the smcache agent; see :class:`smcache.Client` for the calls.

    :param socket: the agent's socket path (None: discovered like the C client).
    :param timeout: per-call deadline in seconds; None waits forever.
    """

    exceptions = Exceptions

    def __init__(self, socket: Optional[str] = None,  # noqa: A002 - boto-like name, shadows the module here only
                 timeout: Optional[float] = DEFAULT_TIMEOUT) -> None:
        if timeout is not None and timeout <= 0:
            raise ValueError("timeout must be a positive number of seconds or None")
        self._socket = socket
        self._timeout = timeout
        self._conn: Optional[_Conn] = None
        self._connecting: Optional[asyncio.Lock] = None

    async def get_secret_value(self, **kwargs: Any) -> Dict[str, Any]:
        """``GetSecretValue`` (see :meth:`smcache.Client.get_secret_value`)."""
        fields, flags = _shape.get_request(kwargs)
        (reply,) = await self._call([(p.OP_GET, fields, flags)])
        return _shape.get_response(reply)

    async def describe_secret(self, **kwargs: Any) -> Dict[str, Any]:
        """``DescribeSecret`` (see :meth:`smcache.Client.describe_secret`)."""
        (reply,) = await self._call([(p.OP_DESCRIBE, _shape.describe_request(kwargs), 0)])
        return _shape.describe_response(reply)

    async def batch_get_secret_value(self, **kwargs: Any) -> Dict[str, Any]:
        """``BatchGetSecretValue`` with ``SecretIdList``, pipelined."""
        ids = _shape.batch_ids(kwargs)
        reqs = []
        for secret_id in ids:
            fields, flags = _shape.get_request({"SecretId": secret_id})
            reqs.append((p.OP_GET, fields, flags))
        return _shape.batch_response(ids, await self._call(reqs))

    async def ping(self) -> str:
        (reply,) = await self._call([(p.OP_PING, [], 0)])
        return _shape.ping(reply)

    async def stats(self) -> Dict[str, int]:
        (reply,) = await self._call([(p.OP_STATS, [], 0)])
        return _shape.stats(reply)

    async def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    async def __aenter__(self) -> "Client":
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.close()

    async def _open(self, deadline: Optional[float]) -> _Conn:
        loop = asyncio.get_running_loop()
        tried = []
        for path, trust in candidates(self._socket):
            if len(os.fsencode(path)) > SUN_PATH_MAX:
                tried.append(f"{path} (path too long for a Unix socket)")
                continue
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
            sock.setblocking(False)
            try:
                await asyncio.wait_for(loop.sock_connect(sock, path), _left(deadline))
                why = check_trust(sock, path, trust)
            except (OSError, asyncio.TimeoutError) as e:
                sock.close()
                tried.append(f"{path} ({'timed out' if isinstance(e, asyncio.TimeoutError) else _reason(e)})")
                continue
            if why is not None:
                sock.close()
                tried.append(f"{path} ({why})")
                continue
            reader, writer = await asyncio.open_unix_connection(sock=sock, limit=p.MAX_BODY + 8)
            return _Conn(reader, writer)
        raise AgentUnavailableError(
            "no smcache agent reachable; tried: " + "; ".join(tried) +
            ". Start smcached or set SMCACHE_SOCKET to its socket path.")

    async def _connection(self, deadline: Optional[float]) -> _Conn:
        if self._connecting is None:
            self._connecting = asyncio.Lock()
        async with self._connecting:
            c = self._conn
            if c is not None and (c.dead is not None or c.pid != os.getpid()
                                  or c.task.get_loop() is not asyncio.get_running_loop()):
                if c.pid == os.getpid():
                    c.close()
                self._conn = c = None
            if c is None:
                self._conn = c = await self._open(deadline)
            return c

    async def _call(self, requests: Sequence[Tuple[int, List[Tuple[int, bytes]], int]]) -> List[p.Reply]:
        deadline = None if self._timeout is None else time.monotonic() + self._timeout
        for attempt in range(2):
            conn = await self._connection(deadline)
            loop = asyncio.get_running_loop()
            futs = []
            out = []
            for op, fields, flags in requests:
                rid = conn.new_id()
                fut = loop.create_future()
                conn.pending[rid] = fut
                futs.append((rid, fut))
                out.append(p.encode_request(op, rid, fields, flags))
            try:
                conn.writer.write(b"".join(out))
                await asyncio.wait_for(conn.writer.drain(), _left(deadline))
                return list(await asyncio.wait_for(asyncio.gather(*(f for _, f in futs)),
                                                   _left(deadline)))
            except asyncio.TimeoutError:
                _retrieve(futs)
                for rid, _ in futs:
                    conn.pending.pop(rid, None)
                raise AgentUnavailableError("timed out waiting for the agent") from None
            except Closed as e:
                _retrieve(futs)
                if attempt == 0 and not e.replied:
                    continue
                raise
            except (ConnectionError, OSError) as e:
                _retrieve(futs)
                conn._fail(Closed(f"the agent closed the connection ({_reason(e)})", False))
                if attempt == 0:
                    continue
                raise AgentUnavailableError(f"talking to the agent failed: {_reason(e)}") from None
        raise AssertionError("unreachable")


def _retrieve(futs) -> None:
    """Marks the exceptions of a failed batch's other futures as seen (gather reports one)."""
    for _, fut in futs:
        if fut.done() and not fut.cancelled():
            fut.exception()
        elif not fut.done():
            fut.cancel()


def _left(deadline: Optional[float]) -> Optional[float]:
    if deadline is None:
        return None
    left = deadline - time.monotonic()
    if left <= 0:
        raise AgentUnavailableError("timed out waiting for the agent")
    return left
