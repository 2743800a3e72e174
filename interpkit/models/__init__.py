"""Models: one wrapper over TransformerLens and nnsight, a shared site vocabulary, edits, a zoo.

``load_model`` returns a :class:`ModelWrapper` whatever the backend; ``capture`` reads sites
(``layer{L}.resid_post``, ``layer{L}.mlp_out``, ``layer{L}.attn_out``, ``layer{L}.resid_pre``, or
raw backend names), ``edits(...)`` applies :class:`Ablate`, :class:`Clamp`, :class:`AddVector` and
:class:`Patch` to forwards and generation; ``perplexity`` scores continuations under the unedited
model. Heavy libraries load on first use only.

Example:
    >>> from interpkit.models import AddVector, load_model  # doctest: +SKIP
    >>> model = load_model("smollm2-135m", backend="nnsight")  # doctest: +SKIP
    >>> with model.edits(AddVector("layer15.resid_post", v, strength=8.0)):  # doctest: +SKIP
    ...     model.generate("Tell me about the sea", chat=True)
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from interpkit._lazy import lazy_exports

from ._edits import Ablate, AddVector, Apply, Clamp, Edit, Patch, apply_edit
from ._sites import SITE_KINDS, UnknownSiteError, canonical_sites, parse_site, site_from_hook_name

if TYPE_CHECKING:
    from ._base import ActivationBackend, InterpkitRemoteError, RunResult, StopForward
    from ._chat import ChatError, ChatModel, LocalChat, OpenAIChat, chat_model
    from ._encoder import SentenceEncoder, sentence_encoder
    from ._load import load_model
    from ._perplexity import needs_bos, perplexity
    from ._wrapper import ModelWrapper, TokenBatch
    from .zoo import PACKAGED, PackagedModelMissing, cache_dir, zoo_status

_LAZY = {
    "load_model": "._load",
    "ModelWrapper": "._wrapper",
    "TokenBatch": "._wrapper",
    "ActivationBackend": "._base",
    "InterpkitRemoteError": "._base",
    "RunResult": "._base",
    "StopForward": "._base",
    "PACKAGED": ".zoo",
    "PackagedModelMissing": ".zoo",
    "cache_dir": ".zoo",
    "zoo_status": ".zoo",
    "SentenceEncoder": "._encoder",
    "ChatError": "._chat",
    "ChatModel": "._chat",
    "LocalChat": "._chat",
    "OpenAIChat": "._chat",
    "chat_model": "._chat",
    "sentence_encoder": "._encoder",
    "needs_bos": "._perplexity",
    "perplexity": "._perplexity",
}

__all__ = [
    "PACKAGED",
    "SITE_KINDS",
    "Ablate",
    "ActivationBackend",
    "AddVector",
    "Apply",
    "ChatError",
    "ChatModel",
    "Clamp",
    "Edit",
    "InterpkitRemoteError",
    "LocalChat",
    "ModelWrapper",
    "OpenAIChat",
    "PackagedModelMissing",
    "Patch",
    "RunResult",
    "SentenceEncoder",
    "StopForward",
    "TokenBatch",
    "UnknownSiteError",
    "apply_edit",
    "cache_dir",
    "canonical_sites",
    "chat_model",
    "load_model",
    "needs_bos",
    "parse_site",
    "perplexity",
    "sentence_encoder",
    "site_from_hook_name",
    "zoo_status",
]

__getattr__, __dir__ = lazy_exports(__name__, _LAZY)
