"""What a failed LLM call means: worth a retry or final, and the one line that says so.

Final, whatever status code litellm puts on it: a rejected key (AuthenticationError,
PermissionDeniedError), an unknown model (NotFoundError, BadRequestError such as "LLM
Provider NOT provided"), and missing credentials (litellm reports those as a 500 or a
connection error; adrs's openai client raises before sending). Worth a retry: rate limits
(429), 408, 409, server errors (5xx), timeouts and dropped or refused connections. Every
message has the key removed and is cut at a word boundary.
"""

from __future__ import annotations

import re
import socket
import sys
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

from adrs.config.llm import ModelConfig
from adrs.llm.provider import key_variable

RETRYABLE_STATUS = frozenset({408, 409, 429})
MESSAGE_CHARS = 200
MIN_SUBSTRING_KEY = 8  # a shorter key is scrubbed only where it stands as a whole token
_KEY_CHAR = r"[A-Za-z0-9_\-]"
_MISSING_KEY = re.compile(r"missing credentials|api_key client option must be set|"
                          r"missing [\w ]{0,40}api key|no api key", re.I)
_UNKNOWN_MODEL = re.compile(r"llm provider not provided|unmapped llm provider|"
                            r"model_not_found", re.I)


def status_of(exc: BaseException) -> int | None:
    status = getattr(exc, "status_code", None)
    return status if isinstance(status, int) else None


def causes(exc: BaseException) -> Iterator[BaseException]:
    """`exc` and the exceptions it was raised from, outermost first."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def missing_credentials(exc: BaseException) -> bool:
    return bool(_MISSING_KEY.search(str(exc)))


def _error_of(library: str, exc: BaseException, *names: str) -> bool:
    """Whether `exc` is one of the exceptions `names` of `library` (litellm, the openai
    package whose errors litellm's subclass, or httpx); never when the library is not
    loaded: none of them raised it then, and a failure must not import them."""
    loaded = sys.modules.get(library)
    return loaded is not None and isinstance(exc, tuple(getattr(loaded, n) for n in names))


def _litellm_error(exc: BaseException, *names: str) -> bool:
    return _error_of("litellm", exc, *names)


def unknown_model(exc: BaseException) -> bool:
    return (_litellm_error(exc, "NotFoundError", "BadRequestError")
            or status_of(exc) == 404 or bool(_UNKNOWN_MODEL.search(str(exc))))


def final(exc: BaseException) -> bool:
    """A failure no retry can fix: a rejected key, an unknown model, missing credentials."""
    if _litellm_error(exc, "AuthenticationError", "NotFoundError", "BadRequestError"):
        return True
    return missing_credentials(exc) or bool(_UNKNOWN_MODEL.search(str(exc)))


def retryable(exc: BaseException) -> bool:
    """Rate limits, server errors, timeouts and dropped connections are worth a retry
    (httpx's errors, and the OSErrors of adrs/llm/http1.py)."""
    if final(exc):
        return False
    if isinstance(exc, TimeoutError | ConnectionError | socket.gaierror) or _error_of(
            "httpx", exc, "TransportError") or _error_of(
            "openai", exc, "APITimeoutError", "APIConnectionError"):
        return True
    status = status_of(exc)
    return status is not None and (status in RETRYABLE_STATUS or status >= 500)


def unreachable(exc: BaseException) -> tuple[str | None, str] | None:
    """(the address, why) when no connection could be made; None otherwise."""
    url, why = None, ""
    for cause in causes(exc):
        if _error_of("httpx", cause, "ConnectError"):
            url = url or _request_origin(cause)
            why = why or "cannot connect"
        if isinstance(cause, ConnectionRefusedError):
            why = "connection refused"
        elif isinstance(cause, socket.gaierror):
            why = "host name not resolved"
    return (url, why) if why else None


def _request_origin(exc: Any) -> str | None:
    """The scheme, host and port of the request an httpx error was raised for (litellm's
    own exceptions carry placeholder requests: only httpx's are the real one)."""
    try:
        url = str(exc.request.url)
    except RuntimeError:  # an httpx error without its request
        return None
    return _origin(url)


def _origin(url: str) -> str | None:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}" if parts.scheme and parts.netloc else None


def scrub(text: str, key: str | None) -> str:
    """`text` with every occurrence of `key` replaced by ***: anywhere in the text for a
    key of 8 characters or more, else only where it stands alone (not inside a word)."""
    if not key or not key.strip():
        return text
    key = " ".join(key.split())  # the text's whitespace is normalised too
    if len(key) >= MIN_SUBSTRING_KEY:
        return text.replace(key, "***")
    alone = re.compile(rf"(?<!{_KEY_CHAR}){re.escape(key)}(?!{_KEY_CHAR})")
    return alone.sub("***", text)


def clip(text: str, limit: int = MESSAGE_CHARS) -> str:
    """`text` cut to at most `limit` characters at a word boundary, marked with '...'."""
    if len(text) <= limit:
        return text
    head = text[:limit - 3]
    if not text[limit - 3].isspace():
        head = head.rsplit(" ", 1)[0] if " " in head else ""
    return f"{head.rstrip(' ,;:')}..."


def describe_failure(model: ModelConfig, exc: BaseException, key: str | None, *,
                     retried: int) -> str:
    """One line naming the model, what failed and the fix, with the key removed."""
    status = status_of(exc)
    what = f"{status} {type(exc).__name__}" if status else type(exc).__name__
    detail = clip(scrub(" ".join(str(exc).split()), key))
    where = f" at {model.api_base}" if model.api_base else ""
    after = f" after {retried} retries" if retried else ""
    if missing_credentials(exc):
        return (f"model '{model.name}'{where} has no API key: set "
                f"{key_variable(model)} (any value if the server needs no key), or name "
                "the variable that holds the key in the model's api_key_env")
    down = unreachable(exc)
    if down is not None:
        address = model.api_base or down[0] or "its endpoint"
        return (f"model '{model.name}' is unreachable at {address} ({down[1]}){after}; "
                "check that the server runs there and the model's api_base")
    if retryable(exc):
        verb = "kept failing" if retried else "failed"
        return (f"model '{model.name}'{where} {verb} ({what}){after}: {detail}; "
                "check the endpoint or raise llm.max_retries")
    return (f"model '{model.name}'{where} rejected the request ({what}): {detail}; "
            f"{_fix(model, exc)}")


def _fix(model: ModelConfig, exc: BaseException) -> str:
    if _litellm_error(exc, "AuthenticationError") or status_of(exc) in (401, 403):
        return f"check the key in {key_variable(model)}"
    if unknown_model(exc):
        return "check the model name (litellm form 'provider/model') and api_base"
    return "check the model's settings in llm.models"
