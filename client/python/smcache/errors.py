"""Exceptions shaped like botocore's, so ``except`` blocks written for boto3 keep working.

An agent error reply becomes a :class:`ClientError` whose ``response["Error"]["Code"]``
is the string botocore would carry for the same situation, and whose class is the
matching subclass (``ResourceNotFoundException``, ...), also reachable as
``client.exceptions.ResourceNotFoundException`` like on a boto3 client.

=====================  ===============================  ==========
agent status           Error.Code                       HTTP code
=====================  ===============================  ==========
NOT_FOUND              ResourceNotFoundException        400
ACCESS_DENIED          AccessDeniedException            400
BAD_REQUEST            InvalidParameterException        400
UPSTREAM_UNAVAILABLE   InternalServiceError             500
INTERNAL               InternalServiceError             500
UNSUPPORTED            InvalidRequestException          400
TOO_LARGE              InvalidParameterException        400
LIMIT_EXCEEDED         ThrottlingException              400
UPSTREAM_AUTH          UnrecognizedClientException      400
(unknown)              InternalServiceError             500
=====================  ===============================  ==========

Failing to reach the agent at all is not a ``ClientError`` (botocore raises
``EndpointConnectionError`` there): it is :class:`AgentUnavailableError`.
"""
from typing import Any, Dict, Optional, Type

from . import _proto as p

__all__ = ["SmcacheError", "ClientError", "AgentUnavailableError", "ProtocolError",
           "ParamValidationError", "ResourceNotFoundException", "AccessDeniedException",
           "InvalidParameterException", "InvalidRequestException", "InternalServiceError",
           "ThrottlingException", "UnrecognizedClientException"]


class SmcacheError(Exception):
    """Base class of every exception this package raises."""


class ClientError(SmcacheError):
    """An error answer, with botocore's ``ClientError`` attributes.

    ``response`` is ``{"Error": {"Code", "Message"}, "ResponseMetadata": {...}}``,
    ``operation_name`` the AWS operation (``GetSecretValue``, ...). ``status`` is
    the agent's protocol status code (proto/PROTOCOL.md section 7).
    """

    MSG_TEMPLATE = "An error occurred ({error_code}) when calling the {operation_name} operation: {error_message}"

    def __init__(self, error_response: Dict[str, Any], operation_name: str,
                 status: Optional[int] = None) -> None:
        self.response = error_response
        self.operation_name = operation_name
        self.status = status
        err = error_response.get("Error", {})
        super().__init__(self.MSG_TEMPLATE.format(
            error_code=err.get("Code", "Unknown"), operation_name=operation_name,
            error_message=err.get("Message", "Unknown")))

    def __reduce__(self):
        return self.__class__, (self.response, self.operation_name, self.status)


class ResourceNotFoundException(ClientError):
    """No such secret, version id or staging label."""


class AccessDeniedException(ClientError):
    """The agent's policy does not let this process read the secret."""


class InvalidParameterException(ClientError):
    """The agent rejected the request as malformed."""


class InvalidRequestException(ClientError):
    """The agent does not support this request."""


class InternalServiceError(ClientError):
    """The upstream or the agent failed and no usable cached value exists; retry with backoff."""


class ThrottlingException(ClientError):
    """An agent limit (connections, requests in flight, refresh rate) was hit; retry later."""


class UnrecognizedClientException(ClientError):
    """The agent's own upstream credentials were refused; an operator must fix them."""


class AgentUnavailableError(SmcacheError, ConnectionError):
    """No agent answered (no socket, refused, timed out, or an untrusted peer)."""


class ProtocolError(SmcacheError):
    """The agent's reply broke the protocol; the connection was dropped."""


class ParamValidationError(SmcacheError, ValueError):
    """Bad arguments, detected before anything is sent (like botocore's)."""


# status -> (class, HTTP status code botocore would report)
_BY_STATUS: Dict[int, "tuple[Type[ClientError], int]"] = {
    p.ST_NOT_FOUND: (ResourceNotFoundException, 400),
    p.ST_ACCESS_DENIED: (AccessDeniedException, 400),
    p.ST_BAD_REQUEST: (InvalidParameterException, 400),
    p.ST_UPSTREAM_UNAVAILABLE: (InternalServiceError, 500),
    p.ST_INTERNAL: (InternalServiceError, 500),
    p.ST_UNSUPPORTED: (InvalidRequestException, 400),
    p.ST_TOO_LARGE: (InvalidParameterException, 400),
    p.ST_LIMIT_EXCEEDED: (ThrottlingException, 400),
    p.ST_UPSTREAM_AUTH: (UnrecognizedClientException, 400),
}


def from_status(status: int, message: str, operation_name: str) -> ClientError:
    """The exception for an agent error reply."""
    cls, http = _BY_STATUS.get(status, (InternalServiceError, 500))
    response = {
        "Error": {"Code": cls.__name__, "Message": message},
        "ResponseMetadata": {"HTTPStatusCode": http, "HTTPHeaders": {}, "RetryAttempts": 0},
    }
    return cls(response, operation_name, status)


def code_for_status(status: int) -> str:
    return _BY_STATUS.get(status, (InternalServiceError, 500))[0].__name__


class Exceptions:
    """``client.exceptions``: the modeled exception classes, as on a boto3 client."""

    ClientError = ClientError
    ResourceNotFoundException = ResourceNotFoundException
    AccessDeniedException = AccessDeniedException
    InvalidParameterException = InvalidParameterException
    InvalidRequestException = InvalidRequestException
    InternalServiceError = InternalServiceError
    ThrottlingException = ThrottlingException
    UnrecognizedClientException = UnrecognizedClientException
