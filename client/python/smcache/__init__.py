"""smcache: the Python client of the smcache secrets agent (standard library only).

Two drop-ins, each a one-line change:

- for a boto3 reader::

      # sm = boto3.client("secretsmanager")
      sm = smcache.Client()
      value = sm.get_secret_value(SecretId="prod/db")["SecretString"]

- for aws-secretsmanager-caching users::

      # from aws_secretsmanager_caching import SecretCache, InjectSecretString
      from smcache import SecretCache, InjectSecretString

``smcache.aio.Client`` offers the same calls for asyncio. Values are never logged;
they live in ordinary Python objects once returned (Python cannot wipe str/bytes).
"""
from .cache import SecretCache, SecretCacheConfig
from .client import DEFAULT_TIMEOUT, Client
from .decorators import InjectKeywordedSecretString, InjectSecretString
from .errors import (AccessDeniedException, AgentUnavailableError, ClientError,
                     InternalServiceError, InvalidParameterException, InvalidRequestException,
                     ParamValidationError, ProtocolError, ResourceNotFoundException,
                     SmcacheError, ThrottlingException, UnrecognizedClientException)
from ._conn import candidates as socket_candidates

__version__ = "0.1.0"

__all__ = [
    "Client", "DEFAULT_TIMEOUT", "SecretCache", "SecretCacheConfig", "InjectSecretString",
    "InjectKeywordedSecretString", "SmcacheError", "ClientError", "AgentUnavailableError",
    "ProtocolError", "ParamValidationError", "ResourceNotFoundException", "AccessDeniedException",
    "InvalidParameterException", "InvalidRequestException", "InternalServiceError",
    "ThrottlingException", "UnrecognizedClientException", "socket_candidates",
]
