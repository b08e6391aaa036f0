"""The smcache wire protocol, version 1 (proto/PROTOCOL.md): request encoding and
reply decoding with the checks section 9 asks of a client.

Pure functions over bytes; the socket handling lives in ``_conn`` (threads) and
``aio`` (asyncio).
"""
import struct
from typing import Dict, Iterable, List, NamedTuple, Optional, Tuple

VERSION = 1

OP_PING, OP_GET, OP_DESCRIBE, OP_STATS = 1, 2, 3, 4
OP_REPLY = 0x80
FLAG_STALE = 0x0001      # replies
FLAG_REFRESH = 0x0001    # GET requests

ST_OK = 0
ST_NOT_FOUND, ST_ACCESS_DENIED, ST_BAD_REQUEST = 1, 2, 3
ST_UPSTREAM_UNAVAILABLE, ST_INTERNAL, ST_UNSUPPORTED = 4, 5, 6
ST_TOO_LARGE, ST_LIMIT_EXCEEDED, ST_UPSTREAM_AUTH = 7, 8, 9

T_SECRET_ID, T_VERSION_STAGE, T_VERSION_ID, T_ARN, T_NAME = 0x1, 0x2, 0x3, 0x4, 0x5
T_SECRET_STRING, T_SECRET_BINARY, T_CREATED_DATE, T_MESSAGE = 0x6, 0x7, 0x8, 0x9
T_DESCRIPTION, T_LAST_CHANGED_DATE, T_DELETED_DATE, T_VERSION = 0xA, 0xB, 0xC, 0xD
T_STAT, T_STAT_NAME, T_STAT_VALUE, T_AGENT_VERSION = 0xE, 0xF, 0x10, 0x11
IGNORABLE = 0x8000

PREFIX_LEN = 4
HEADER_LEN = 10
MAX_BODY = 262144
MAX_SECRET_ID = 2048
MAX_VERSION_STAGE = 256
MAX_VERSION_ID = 64

_HEADER = struct.Struct(">BBHIH")
_FIELD = struct.Struct(">HI")
_U32 = struct.Struct(">I")
_U64 = struct.Struct(">Q")

# tag -> (name, kind, max length, non-empty); kinds: s string, b bytes, u u64, n nested
_TAGS = {
    T_SECRET_ID: ("SECRET_ID", "s", 2048, True),
    T_VERSION_STAGE: ("VERSION_STAGE", "s", 256, True),
    T_VERSION_ID: ("VERSION_ID", "s", 64, True),
    T_ARN: ("ARN", "s", 2048, True),
    T_NAME: ("NAME", "s", 512, True),
    T_SECRET_STRING: ("SECRET_STRING", "b", 65536, False),
    T_SECRET_BINARY: ("SECRET_BINARY", "b", 65536, False),
    T_CREATED_DATE: ("CREATED_DATE", "u", 8, False),
    T_MESSAGE: ("MESSAGE", "s", 1024, False),
    T_DESCRIPTION: ("DESCRIPTION", "s", 2048, False),
    T_LAST_CHANGED_DATE: ("LAST_CHANGED_DATE", "u", 8, False),
    T_DELETED_DATE: ("DELETED_DATE", "u", 8, False),
    T_VERSION: ("VERSION", "n", MAX_BODY, False),
    T_STAT: ("STAT", "n", MAX_BODY, False),
    T_STAT_NAME: ("STAT_NAME", "s", 64, True),
    T_STAT_VALUE: ("STAT_VALUE", "u", 8, False),
    T_AGENT_VERSION: ("AGENT_VERSION", "s", 64, True),
}

# Where each field may appear in a reply: place -> {tag: max count}. Required
# fields are checked per place below.
_ALLOWED = {
    OP_PING: {T_AGENT_VERSION: 1, T_MESSAGE: 1},
    OP_GET: {T_ARN: 1, T_NAME: 1, T_VERSION_ID: 1, T_VERSION_STAGE: 20, T_CREATED_DATE: 1,
             T_SECRET_STRING: 1, T_SECRET_BINARY: 1, T_MESSAGE: 1},
    OP_DESCRIBE: {T_ARN: 1, T_NAME: 1, T_DESCRIPTION: 1, T_CREATED_DATE: 1,
                  T_LAST_CHANGED_DATE: 1, T_DELETED_DATE: 1, T_VERSION: 100, T_MESSAGE: 1},
    OP_STATS: {T_STAT: 1 << 30, T_MESSAGE: 1},
    "error": {T_MESSAGE: 1},
    T_VERSION: {T_VERSION_ID: 1, T_VERSION_STAGE: 20, T_CREATED_DATE: 1},
    T_STAT: {T_STAT_NAME: 1, T_STAT_VALUE: 1},
}
_REQUIRED = {
    OP_PING: (T_AGENT_VERSION,),
    OP_GET: (T_ARN, T_NAME, T_VERSION_ID),
    OP_DESCRIBE: (T_ARN, T_NAME),
    OP_STATS: (),
    "error": (),
    T_VERSION: (T_VERSION_ID,),
    T_STAT: (T_STAT_NAME, T_STAT_VALUE),
}

OP_NAMES = {OP_PING: "PING", OP_GET: "GET", OP_DESCRIBE: "DESCRIBE", OP_STATS: "STATS"}


class ProtocolError(Exception):
    """The agent's bytes broke the protocol; the connection must not be reused."""


Fields = Dict[int, list]


class Reply(NamedTuple):
    op: int            # without the reply bit
    flags: int
    request_id: int
    status: int
    fields: Fields     # tag -> list of decoded values (str, bytes, int or nested Fields)

    def one(self, tag: int, default=None):
        values = self.fields.get(tag)
        return values[0] if values else default

    @property
    def message(self) -> str:
        return self.one(T_MESSAGE, "") or ""

    @property
    def stale(self) -> bool:
        return bool(self.flags & FLAG_STALE)


def _field(tag: int, value: bytes) -> bytes:
    return _FIELD.pack(tag, len(value)) + value


def encode_request(op: int, request_id: int, fields: Iterable[Tuple[int, bytes]] = (),
                   flags: int = 0) -> bytes:
    """One request frame. Fields are sent in ascending tag order, as smcache does."""
    body = _HEADER.pack(VERSION, op, flags, request_id, 0)
    body += b"".join(_field(tag, value) for tag, value in sorted(fields))
    return _U32.pack(len(body)) + body


def check_prefix(prefix: bytes) -> int:
    """The body length announced by a 4-byte prefix, checked before waiting for it."""
    (length,) = _U32.unpack(prefix)
    if length > MAX_BODY:
        raise ProtocolError(f"the agent announced a {length}-byte reply (limit {MAX_BODY})")
    if length < HEADER_LEN:
        raise ProtocolError(f"the agent announced a {length}-byte reply, shorter than a header")
    return length


def _decode_fields(data: memoryview, place) -> Fields:
    allowed = _ALLOWED[place]
    out: Fields = {}
    off, end = 0, len(data)
    while off < end:
        if end - off < _FIELD.size:
            raise ProtocolError(f"truncated field header ({end - off} bytes left, need 6)")
        tag, n = _FIELD.unpack_from(data, off)
        off += _FIELD.size
        if n > end - off:
            raise ProtocolError(f"field 0x{tag:04x} truncated (length {n}, {end - off} bytes left)")
        raw = data[off:off + n]
        off += n
        if tag not in _TAGS:
            if tag & IGNORABLE:
                continue
            raise ProtocolError(f"unknown field tag 0x{tag:04x}")
        name, kind, maxlen, nonempty = _TAGS[tag]
        if tag not in allowed:
            raise ProtocolError(f"field {name} not valid here")
        values = out.setdefault(tag, [])
        if len(values) >= allowed[tag]:
            raise ProtocolError(f"field {name} repeated")
        if kind == "u":
            if n != 8:
                raise ProtocolError(f"field {name} must be 8 bytes, not {n}")
            values.append(_U64.unpack(raw)[0])
            continue
        if n > maxlen:
            raise ProtocolError(f"field {name} too long ({n} bytes, max {maxlen})")
        if kind == "n":
            values.append(_decode_fields(raw, tag))
        elif kind == "b":
            values.append(bytes(raw))
        else:
            if nonempty and n == 0:
                raise ProtocolError(f"field {name} is empty")
            if b"\0" in raw:
                raise ProtocolError(f"field {name} contains a NUL byte")
            try:
                values.append(bytes(raw).decode("utf-8"))
            except UnicodeDecodeError as e:
                raise ProtocolError(f"field {name} is not valid UTF-8 (byte {e.start})") from None
    for tag in _REQUIRED[place]:
        if tag not in out:
            raise ProtocolError(f"missing field {_TAGS[tag][0]}")
    return out


def decode_reply(body: bytes) -> Reply:
    """Decodes and validates one reply body (the frame without its prefix)."""
    if len(body) < HEADER_LEN:
        raise ProtocolError("reply shorter than a header")
    version, op, flags, rid, status = _HEADER.unpack_from(body, 0)
    if version != VERSION:
        raise ProtocolError(f"reply in protocol version {version} (this client speaks 1)")
    if not op & OP_REPLY:
        raise ProtocolError(f"op 0x{op:02x} is not a reply")
    op &= ~OP_REPLY
    if status != ST_OK:
        place = "error"
    elif op in _ALLOWED:
        place = op
    else:
        raise ProtocolError(f"successful reply to unknown op {op}")
    fields = _decode_fields(memoryview(body)[HEADER_LEN:], place)
    if place == OP_GET and (T_SECRET_STRING in fields) == (T_SECRET_BINARY in fields):
        raise ProtocolError("GET reply without exactly one of SECRET_STRING and SECRET_BINARY")
    return Reply(op, flags, rid, status, fields)


def split_frames(buf: bytearray) -> List[bytes]:
    """Removes every complete frame from buf and returns their bodies."""
    out = []
    while len(buf) >= PREFIX_LEN:
        n = check_prefix(bytes(buf[:PREFIX_LEN]))
        if len(buf) < PREFIX_LEN + n:
            break
        out.append(bytes(buf[PREFIX_LEN:PREFIX_LEN + n]))
        buf[:PREFIX_LEN + n] = b"\0" * (PREFIX_LEN + n)   # wipe what we copied out
        del buf[:PREFIX_LEN + n]
    return out


def get_fields(secret_id: str, version_id: Optional[str], version_stage: Optional[str]):
    """The GET request fields, validated against the protocol limits (ValueError)."""
    fields = [(T_SECRET_ID, _ident("SecretId", secret_id, MAX_SECRET_ID))]
    if version_stage is not None:
        fields.append((T_VERSION_STAGE, _ident("VersionStage", version_stage, MAX_VERSION_STAGE)))
    if version_id is not None:
        fields.append((T_VERSION_ID, _ident("VersionId", version_id, MAX_VERSION_ID)))
    return fields


def _ident(what: str, value, limit: int) -> bytes:
    if not isinstance(value, str):
        raise ValueError(f"Invalid type for parameter {what}, value: {value!r}, "
                         f"type: {type(value)}, valid types: <class 'str'>")
    raw = value.encode("utf-8")
    if not 1 <= len(raw) <= limit:
        raise ValueError(f"Invalid length for parameter {what}: must be 1 to {limit} bytes")
    if b"\0" in raw:
        raise ValueError(f"Invalid value for parameter {what}: contains a NUL character")
    return raw
