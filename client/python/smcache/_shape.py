"""Turning boto3-style arguments into protocol requests and replies into boto3's dicts.

Shared by the thread client and the asyncio client, so both give the same shapes.
"""
import datetime
from typing import Any, Dict, List, Optional, Sequence, Tuple

from . import _proto as p
from . import errors

_UTC = datetime.timezone.utc

GET_PARAMS = ("SecretId", "VersionId", "VersionStage", "RefreshNow")
DESCRIBE_PARAMS = ("SecretId",)
BATCH_PARAMS = ("SecretIdList", "Filters", "MaxResults", "NextToken")
BATCH_MAX = 20          # BatchGetSecretValue's own limit on SecretIdList


def check_params(kwargs: Dict[str, Any], allowed: Sequence[str], required: Sequence[str]) -> None:
    for name in kwargs:
        if name not in allowed:
            raise errors.ParamValidationError(
                f'Parameter validation failed:\nUnknown parameter in input: "{name}", '
                f"must be one of: {', '.join(allowed)}")
    for name in required:
        if kwargs.get(name) is None:
            raise errors.ParamValidationError(
                f'Parameter validation failed:\nMissing required parameter in input: "{name}"')


def get_request(kwargs: Dict[str, Any]) -> Tuple[List[Tuple[int, bytes]], int]:
    """GET fields and flags from get_secret_value's keyword arguments."""
    check_params(kwargs, GET_PARAMS, ("SecretId",))
    try:
        fields = p.get_fields(kwargs["SecretId"], kwargs.get("VersionId"), kwargs.get("VersionStage"))
    except ValueError as e:
        raise errors.ParamValidationError(f"Parameter validation failed:\n{e}") from None
    return fields, (p.FLAG_REFRESH if kwargs.get("RefreshNow") else 0)


def describe_request(kwargs: Dict[str, Any]) -> List[Tuple[int, bytes]]:
    check_params(kwargs, DESCRIBE_PARAMS, ("SecretId",))
    try:
        return p.get_fields(kwargs["SecretId"], None, None)
    except ValueError as e:
        raise errors.ParamValidationError(f"Parameter validation failed:\n{e}") from None


def batch_ids(kwargs: Dict[str, Any]) -> List[str]:
    check_params(kwargs, BATCH_PARAMS, ())
    if kwargs.get("Filters") is not None or kwargs.get("NextToken") is not None or \
            kwargs.get("MaxResults") is not None:
        # Listing secrets by filter is a management call; the agent serves reads by id only.
        raise errors.ParamValidationError(
            "Parameter validation failed:\nsmcache supports BatchGetSecretValue with "
            "SecretIdList only (Filters, MaxResults and NextToken need the AWS API)")
    ids = kwargs.get("SecretIdList")
    if not isinstance(ids, (list, tuple)) or not 1 <= len(ids) <= BATCH_MAX:
        raise errors.ParamValidationError(
            f"Parameter validation failed:\nSecretIdList must be a list of 1 to {BATCH_MAX} ids")
    return list(ids)


def _date(ms: Optional[int]) -> Optional[datetime.datetime]:
    if ms is None:
        return None
    return datetime.datetime.fromtimestamp(ms / 1000.0, tz=_UTC)


def metadata(reply: Optional[p.Reply] = None) -> Dict[str, Any]:
    md: Dict[str, Any] = {"HTTPStatusCode": 200, "HTTPHeaders": {}, "RetryAttempts": 0}
    if reply is not None and reply.stale:
        md["SmcacheStale"] = True   # served past its ttl because the upstream was unreachable
    return md


def raise_for(reply: p.Reply, operation: str) -> None:
    if reply.status != p.ST_OK:
        raise errors.from_status(reply.status, reply.message, operation)


def secret_value(reply: p.Reply) -> Dict[str, Any]:
    """GetSecretValue's output shape (without ResponseMetadata)."""
    f = reply.fields
    out: Dict[str, Any] = {"ARN": f[p.T_ARN][0], "Name": f[p.T_NAME][0],
                           "VersionId": f[p.T_VERSION_ID][0]}
    if p.T_SECRET_BINARY in f:
        out["SecretBinary"] = f[p.T_SECRET_BINARY][0]
    else:
        raw = f[p.T_SECRET_STRING][0]
        out["SecretString"] = raw.decode("utf-8", "surrogateescape")
    out["VersionStages"] = list(f.get(p.T_VERSION_STAGE, []))
    if p.T_CREATED_DATE in f:
        out["CreatedDate"] = _date(f[p.T_CREATED_DATE][0])
    return out


def get_response(reply: p.Reply) -> Dict[str, Any]:
    raise_for(reply, "GetSecretValue")
    out = secret_value(reply)
    out["ResponseMetadata"] = metadata(reply)
    return out


def describe_response(reply: p.Reply) -> Dict[str, Any]:
    """DescribeSecret's output shape, for the fields the agent knows (ARN, Name,
    Description, dates, VersionIdsToStages); tags, rotation and replication
    settings are management data the protocol does not carry."""
    raise_for(reply, "DescribeSecret")
    f = reply.fields
    out: Dict[str, Any] = {"ARN": f[p.T_ARN][0], "Name": f[p.T_NAME][0]}
    if p.T_DESCRIPTION in f:
        out["Description"] = f[p.T_DESCRIPTION][0]
    for tag, key in ((p.T_CREATED_DATE, "CreatedDate"), (p.T_LAST_CHANGED_DATE, "LastChangedDate"),
                     (p.T_DELETED_DATE, "DeletedDate")):
        if tag in f:
            out[key] = _date(f[tag][0])
    # Like AWS, versions without a staging label (deprecated) are not listed.
    stages = {}
    for v in f.get(p.T_VERSION, []):
        labels = list(v.get(p.T_VERSION_STAGE, []))
        if labels:
            stages[v[p.T_VERSION_ID][0]] = labels
    out["VersionIdsToStages"] = stages
    out["ResponseMetadata"] = metadata(reply)
    return out


def batch_response(ids: Sequence[str], replies: Sequence[p.Reply]) -> Dict[str, Any]:
    """BatchGetSecretValue's shape: values in request order, per-id errors."""
    values, errs = [], []
    for secret_id, reply in zip(ids, replies):
        if reply.status == p.ST_OK:
            values.append(secret_value(reply))
        else:
            errs.append({"SecretId": secret_id, "ErrorCode": errors.code_for_status(reply.status),
                         "Message": reply.message})
    return {"SecretValues": values, "Errors": errs, "ResponseMetadata": metadata()}


def stats(reply: p.Reply) -> Dict[str, int]:
    raise_for(reply, "Stats")
    return {s[p.T_STAT_NAME][0]: s[p.T_STAT_VALUE][0] for s in reply.fields.get(p.T_STAT, [])}


def ping(reply: p.Reply) -> str:
    raise_for(reply, "Ping")
    return reply.one(p.T_AGENT_VERSION)
