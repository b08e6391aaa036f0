"""``SecretCache`` and ``SecretCacheConfig`` with the public API of
aws-secretsmanager-caching-python, served by the shared agent.

Switch with one import line::

    # from aws_secretsmanager_caching import SecretCache, SecretCacheConfig
    from smcache import SecretCache, SecretCacheConfig

The caching library keeps one cache per process and refreshes it with its own
AWS calls; here every read asks the local agent, which caches once for every
process on the host (values sealed in locked memory, refreshed ahead of expiry).
So the per-process cache options are accepted for compatibility but the agent's
configuration decides: see :class:`SecretCacheConfig`.
"""
from copy import deepcopy
from typing import Any, Dict, Optional

from . import errors
from .client import Client

__all__ = ["SecretCache", "SecretCacheConfig"]


class SecretCacheConfig:
    """The caching library's configuration, accepting the same keyword arguments.

    Meaningful here:

    - ``default_version_stage`` (``"AWSCURRENT"``): the stage read when none is given;
    - ``secret_cache_hook`` (None): an object with ``put(obj)`` / ``get(obj)``, applied
      to each result dict as the library does (e.g. to decrypt or transform).

    Accepted and ignored, because the shared agent owns caching and retries
    (``[cache] ttl``, ``max_entries``, refresh-ahead and backoff in smcached.conf):
    ``max_cache_size`` (1024), ``exception_retry_delay_base`` (1),
    ``exception_retry_growth_factor`` (2), ``exception_retry_delay_max`` (3600),
    ``secret_refresh_interval`` (3600).

    An unknown keyword raises ``TypeError``, as in the library.
    """

    OPTION_DEFAULTS: Dict[str, Any] = {
        "max_cache_size": 1024,
        "exception_retry_delay_base": 1,
        "exception_retry_growth_factor": 2,
        "exception_retry_delay_max": 3600,
        "default_version_stage": "AWSCURRENT",
        "secret_refresh_interval": 3600,
        "secret_cache_hook": None,
    }

    def __init__(self, **kwargs: Any) -> None:
        options = deepcopy(self.OPTION_DEFAULTS)
        for key, value in kwargs.items():
            if key not in options:
                raise TypeError(f"Unexpected keyword argument {key}")
            options[key] = value
        for key, value in options.items():
            setattr(self, key, value)


class SecretCache:
    """Reads secrets through the agent with the caching library's method names.

    :param config: a :class:`SecretCacheConfig`.
    :param client: an :class:`smcache.Client` (the library takes a botocore client
        here); None creates one on the default socket.
    """

    def __init__(self, config: SecretCacheConfig = SecretCacheConfig(),
                 client: Optional[Client] = None) -> None:
        self._config = deepcopy(config)
        self._client = client if client is not None else Client()

    def _get(self, secret_id: str, version_stage: Optional[str]) -> Optional[Dict[str, Any]]:
        stage = version_stage or self._config.default_version_stage
        try:
            result = self._client.get_secret_value(SecretId=secret_id, VersionStage=stage)
        except errors.ResourceNotFoundException:
            # The library answers None for a stage the secret does not have and raises
            # only when the secret itself is missing.
            try:
                self._client.describe_secret(SecretId=secret_id)
            except errors.ResourceNotFoundException:
                raise
            return None
        result.pop("ResponseMetadata", None)
        hook = self._config.secret_cache_hook
        if hook is not None:
            result = hook.get(hook.put(result))
        return result

    def get_secret_string(self, secret_id: str, version_stage: Optional[str] = None) -> Optional[str]:
        """The SecretString of the version with ``version_stage`` (default
        ``default_version_stage``); None for a binary secret or an absent stage.
        Raises :class:`smcache.ResourceNotFoundException` (a ``ClientError``) for a
        missing secret."""
        secret = self._get(secret_id, version_stage)
        return None if secret is None else secret.get("SecretString")

    def get_secret_binary(self, secret_id: str, version_stage: Optional[str] = None) -> Optional[bytes]:
        """The SecretBinary (bytes) of the version, like :meth:`get_secret_string`."""
        secret = self._get(secret_id, version_stage)
        return None if secret is None else secret.get("SecretBinary")

    def refresh_secret_now(self, secret_id: str) -> None:
        """Makes the agent ask the upstream for the secret now (it rate-limits this per
        secret and user: over the limit, :class:`smcache.ThrottlingException`)."""
        self._client.get_secret_value(SecretId=secret_id,
                                      VersionStage=self._config.default_version_stage,
                                      RefreshNow=True)
