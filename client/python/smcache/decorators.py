"""``InjectSecretString`` and ``InjectKeywordedSecretString``, as in
aws-secretsmanager-caching-python, except that the secret is read on every call
(through the agent, which is cheap) instead of once: a rotated value reaches the
function without restarting the process.
"""
import json
from functools import wraps
from typing import Any, Callable, TypeVar

__all__ = ["InjectSecretString", "InjectKeywordedSecretString"]

F = TypeVar("F", bound=Callable[..., Any])


class InjectSecretString:
    """Passes the secret's string as the first positional argument (after ``self`` for
    a method).

    :param secret_id: the secret to read.
    :param cache: an :class:`smcache.SecretCache`.
    """

    def __init__(self, secret_id: str, cache: Any) -> None:
        self.cache = cache
        self.secret_id = secret_id

    def __call__(self, func: F) -> F:
        @wraps(func)
        def _wrapped_func(*args: Any, **kwargs: Any) -> Any:
            secret = self.cache.get_secret_string(secret_id=self.secret_id)
            # Keep a method's self first, as the library does.
            if args and hasattr(args[0].__class__, func.__name__):
                new_args = (args[0], secret) + args[1:]
            else:
                new_args = (secret,) + args
            return func(*new_args, **kwargs)

        return _wrapped_func  # type: ignore[return-value]


class InjectKeywordedSecretString:
    """Passes fields of a JSON secret as keyword arguments.

    :param secret_id: the secret to read (a JSON object).
    :param cache: an :class:`smcache.SecretCache`.
    :param kwargs: keyword argument name -> JSON key, e.g. ``user="username"``.

    Raises ``RuntimeError`` when the secret is not JSON or lacks a key, with the
    library's messages.
    """

    def __init__(self, secret_id: str, cache: Any, **kwargs: str) -> None:
        self.cache = cache
        self.kwarg_map = kwargs
        self.secret_id = secret_id

    def __call__(self, func: F) -> F:
        @wraps(func)
        def _wrapped_func(*args: Any, **kwargs: Any) -> Any:
            try:
                secret = json.loads(self.cache.get_secret_string(secret_id=self.secret_id))
            except (json.decoder.JSONDecodeError, TypeError):
                raise RuntimeError("Cached secret is not valid JSON") from None
            resolved = {}
            for arg, key in self.kwarg_map.items():
                try:
                    resolved[arg] = secret[key]
                except (KeyError, TypeError):
                    raise RuntimeError(f"Cached secret does not contain key {key}") from None
            return func(*args, **resolved, **kwargs)

        return _wrapped_func  # type: ignore[return-value]
