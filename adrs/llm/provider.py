"""What litellm knows about a model's provider: importing litellm, and the model's key.

A model's key comes from its `api_key_env` variable, else from the variable litellm reads
for its provider (OPENAI_API_KEY for `openai/...`, ANTHROPIC_API_KEY, ...). `key_status`
checks it before the first call, for `adrs run` and `adrs doctor` alike: a call that is
sure to fail for want of a key raises `MissingKey` (one line naming the variable to set).
Only a missing `..._API_KEY` of a model without `api_base` is sure: a server at `api_base`
may need no key, and providers that also take credentials from elsewhere (AWS profiles,
Vertex defaults, Ollama's default address) are only warned about.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from types import ModuleType
from typing import Any

from adrs.config.llm import ModelConfig
from adrs.errors import UserError

_KEY_SUFFIX = "_API_KEY"
_SET_IT = "export it with the API key, or name the variable that holds the key in the " \
          "model's api_key_env"


class MissingKey(UserError):
    """The environment variable that should hold a model's key is not set."""


@dataclass(frozen=True)
class KeyStatus:
    """The key check of one model that did not fail: `warn` when a call may still lack
    credentials (litellm misses some of the provider's variables)."""

    warn: bool
    text: str


def import_litellm() -> ModuleType:
    """Import litellm with its bundled price map (otherwise it fetches one from the net)."""
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    import litellm

    litellm.suppress_debug_info = True
    return litellm


def read_key(model: ModelConfig) -> str | None:
    """The key of `model` from its environment variable (None: litellm's own default)."""
    if model.api_key_env is None:
        return None
    key = os.environ.get(model.api_key_env)
    if not key:
        raise MissingKey(f"model '{model.name}': environment variable {model.api_key_env} "
                         "is not set: export it with the API key (or fix llm.models "
                         "api_key_env)")
    return key


def key_status(model: ModelConfig) -> KeyStatus:
    """Check `model`'s key before any call; raises MissingKey when a call would surely
    fail for want of it."""
    if model.api_key_env is not None:
        read_key(model)
        return KeyStatus(False, f"{model.name}: key variable {model.api_key_env} is set")
    env = provider_environment(model)
    missing = [str(name) for name in env.get("missing_keys") or []]
    if env.get("keys_in_environment") or not missing:
        return KeyStatus(False, f"{model.name}: provider key variables are set")
    keys = [name for name in missing if name.endswith(_KEY_SUFFIX)]
    if model.api_base is not None:  # the server there may need no key: it will tell
        unset = f"{' or '.join(keys)} not set, " if keys else ""
        return KeyStatus(False, f"{model.name}: {unset}no api_key_env: calling "
                         f"{model.api_base} without a key (a local server may need none)")
    if keys == missing:
        raise MissingKey(f"model '{model.name}': {' or '.join(keys)} is not set: {_SET_IT}")
    them = "them" if len(missing) > 1 else "it"
    return KeyStatus(True, f"{model.name}: litellm finds no {' and '.join(missing)} in the "
                     f"environment: set {them}, unless the provider finds its credentials "
                     "elsewhere (a profile, a role, a default address)")


def provider_environment(model: ModelConfig) -> dict[str, Any]:
    """litellm's view of the provider's variables; 'all set' when it cannot tell."""
    try:
        env = import_litellm().validate_environment(model=model.name)
    except Exception:  # a provider litellm does not know: the call will say so
        return {"keys_in_environment": True, "missing_keys": []}
    return dict(env) if isinstance(env, dict) else {"keys_in_environment": True}


def key_variable(model: ModelConfig) -> str:
    """The variable(s) to set for `model`'s key, for messages."""
    if model.api_key_env is not None:
        return model.api_key_env
    missing = [str(n) for n in provider_environment(model).get("missing_keys") or []]
    if missing:
        together = all(n.endswith(_KEY_SUFFIX) for n in missing)
        return (" or " if together else " and ").join(missing)
    try:
        provider = import_litellm().get_llm_provider(model.name)[1]
    except Exception:  # a provider litellm does not know
        return "the provider's key variable"
    return f"{str(provider).upper()}{_KEY_SUFFIX}"
