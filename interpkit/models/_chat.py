"""Chat models for judges and generators: a local interpkit model or an OpenAI-compatible API.

Both implement the small :class:`ChatModel` protocol: ``complete(messages)`` returns the answer
text (greedy by default) and ``choice_probs(messages, choices)`` returns the probabilities of
single-token answers (``"0"``..``"9"``) at the first answer position, or None when the backend
cannot give them (callers then parse ``complete``). Reading the distribution is what makes a
135M-parameter judge usable: its greedy text is often off-format, its digit distribution is not.

:class:`LocalChat` applies the tokenizer's chat template and reads logits with
``ModelWrapper.forward``; :class:`OpenAIChat` POSTs ``{base_url}/chat/completions`` with
retries (:mod:`interpkit._http`) and reads ``top_logprobs`` when the server returns them.

Example:
    >>> chat = chat_model("local")  # doctest: +SKIP
    >>> chat.complete([{"role": "user", "content": "Name a colour."}], max_tokens=8)  # doctest: +SKIP
    'Blue'
    >>> OpenAIChat(model="m", base_url="http://127.0.0.1:8000/v1").url
    'http://127.0.0.1:8000/v1/chat/completions'
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import numpy as np

from interpkit._http import ServiceError

if TYPE_CHECKING:
    from ._wrapper import ModelWrapper

__all__ = ["ChatError", "ChatModel", "LocalChat", "OpenAIChat", "chat_model"]

Messages = Sequence[Mapping[str, str]]

ENV_BASE_URL = ("INTERPKIT_LLM_BASE_URL", "OPENAI_BASE_URL")
ENV_MODEL = ("INTERPKIT_LLM_MODEL",)
ENV_API_KEY = ("INTERPKIT_LLM_API_KEY", "OPENAI_API_KEY")


class ChatError(ServiceError):
    """A chat model could not be configured or did not answer usably (the message says why)."""

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


@runtime_checkable
class ChatModel(Protocol):
    """What judges and generators need from a chat model."""

    name: str

    def complete(self, messages: Messages, *, max_tokens: int = 128, temperature: float = 0.0) -> str:
        """The assistant's answer to ``messages`` (``[{"role": ..., "content": ...}]``)."""
        ...

    def choice_probs(self, messages: Messages, choices: Sequence[str]) -> np.ndarray | None:
        """Probabilities of each single-token choice as the first answer token (sum 1), or None."""
        ...


def _check_messages(messages: Messages) -> list[dict[str, str]]:
    out = []
    for i, message in enumerate(messages):
        if not isinstance(message, Mapping) or "role" not in message or "content" not in message:
            raise ChatError(f"messages[{i}]: expected a mapping with 'role' and 'content', got {message!r}")
        out.append({"role": str(message["role"]), "content": str(message["content"])})
    if not out:
        raise ChatError("messages: empty conversation")
    return out


def _normalise(weights: np.ndarray) -> np.ndarray | None:
    total = float(weights.sum())
    if not math.isfinite(total) or total <= 0:
        return None
    return (weights / total).astype(np.float64)


class LocalChat:
    """A local causal LM (an interpkit :class:`~interpkit.models.ModelWrapper`) used as a chat model.

    Prompts go through the tokenizer's chat template (a final ``assistant`` message is taken as
    the start of the answer, i.e. a prefill). Decoding is greedy unless ``temperature > 0``
    (then sampled with the model's generation defaults). Active edits of the wrapper apply.

    Args:
        model: a ModelWrapper, or a name for :func:`~interpkit.models.load_model` (loaded on first use).
        backend: backend used when loading by name.
        max_input_tokens: prompts longer than this are cut from the left (keeping the answer end).
        batch_size: prompts per forward pass in :meth:`choice_probs_batch`.

    Raises:
        ChatError: (on first use) the tokenizer has no chat template.
    """

    def __init__(self, model: ModelWrapper | str = "smollm2-135m", *, backend: str = "transformer_lens",
                 max_input_tokens: int = 2048, batch_size: int = 8) -> None:
        self._model = None if isinstance(model, str) else model
        self._spec = model if isinstance(model, str) else None
        self.backend = backend
        self.name = model if isinstance(model, str) else model.name
        self.max_input_tokens = max_input_tokens
        self.batch_size = batch_size

    def __repr__(self) -> str:
        return f"LocalChat({self.name!r})"

    @property
    def model(self) -> ModelWrapper:
        """The wrapped model (loaded now when given by name)."""
        if self._model is None:
            from ._load import load_model

            self._model = load_model(self._spec, self.backend)
        return self._model

    def prompt_ids(self, messages: Messages) -> list[int]:
        """Token ids of ``messages`` with the chat template, ending where the answer starts."""
        messages = _check_messages(messages)
        tok = self.model.tokenizer
        if not getattr(tok, "chat_template", None):
            raise ChatError(f"{self.name}: the tokenizer has no chat template, so it cannot be used as a "
                            "chat model; give a chat (instruct) model or an OpenAIChat")
        prefill = ""
        if messages[-1]["role"] == "assistant":
            prefill = messages.pop()["content"]
        ids = tok.apply_chat_template(messages, add_generation_prompt=True, tokenize=True)
        if not isinstance(ids, list):
            ids = ids["input_ids"]
        ids = [int(i) for i in ids]
        if prefill:
            ids += [int(i) for i in tok(prefill, add_special_tokens=False)["input_ids"]]
        return ids[-self.max_input_tokens:]

    def complete(self, messages: Messages, *, max_tokens: int = 128, temperature: float = 0.0) -> str:
        """Generate the answer (greedy when ``temperature == 0``), special tokens removed."""
        model = self.model
        sample = temperature > 0
        new_ids = model.generate_ids([self.prompt_ids(messages)], max_new_tokens=max_tokens, do_sample=sample,
                                     temperature=temperature if sample else 1.0)[0]
        return model.tokenizer.decode(new_ids, skip_special_tokens=True).strip()

    def choice_ids(self, choices: Sequence[str]) -> list[int]:
        """The token id of each choice.

        Raises:
            ChatError: a choice is not exactly one token, or two choices share a token.
        """
        tok = self.model.tokenizer
        ids = []
        for choice in choices:
            enc = list(tok(choice, add_special_tokens=False)["input_ids"])
            if len(enc) != 1:
                raise ChatError(f"{self.name}: choice {choice!r} is {len(enc)} tokens; choices must be single tokens")
            ids.append(int(enc[0]))
        if len(set(ids)) != len(ids):
            raise ChatError(f"{self.name}: choices {list(choices)!r} do not map to distinct tokens")
        return ids

    def choice_probs(self, messages: Messages, choices: Sequence[str]) -> np.ndarray:
        """Next-token probabilities of the choices at the answer position, renormalised over them."""
        return self.choice_probs_batch([messages], choices)[0]

    def choice_probs_batch(self, conversations: Sequence[Messages], choices: Sequence[str]) -> list[np.ndarray]:
        """:meth:`choice_probs` for many conversations, ``batch_size`` per forward pass."""
        ids = self.choice_ids(choices)
        rows = [self.prompt_ids(m) for m in conversations]
        out = []
        for logp, length in self._log_probs(rows):
            picked = logp[length - 1, ids].exp().cpu().numpy().astype(np.float64)
            out.append(picked / picked.sum())
        return out

    def continuation_logprobs(self, conversations: Sequence[Messages], continuation: str) -> np.ndarray:
        """Mean per-token log-probability of ``continuation`` right after each conversation's prompt.

        With a final assistant message as a prefill (``"This text is about"``) this scores how
        likely the model finds ``continuation`` as its answer: the LM judge's ``topic`` method.

        Returns:
            float64 ``[len(conversations)]``.
        """
        cont = [int(i) for i in self.model.tokenizer(continuation, add_special_tokens=False)["input_ids"]]
        if not cont:
            raise ChatError(f"{self.name}: the continuation {continuation!r} has no tokens")
        prompts = [self.prompt_ids(m) for m in conversations]
        rows = [p + cont for p in prompts]
        target = np.array(cont)
        out = np.zeros(len(rows))
        for i, (logp, length) in enumerate(self._log_probs(rows)):
            start = length - len(cont) - 1
            picked = logp[start:start + len(cont)].cpu().numpy()[np.arange(len(cont)), target]
            out[i] = float(picked.mean())
        return out

    def _log_probs(self, rows: list[list[int]]) -> Iterator[tuple[Any, int]]:
        """``(log_softmax [pos, vocab], length)`` per row, in order, ``batch_size`` rows per forward."""
        import torch

        from ._wrapper import TokenBatch

        model = self.model
        # Sorting by length keeps padding (wasted compute) small within a batch.
        order = sorted(range(len(rows)), key=lambda i: len(rows[i]))
        results: dict[int, tuple[Any, int]] = {}
        for start in range(0, len(order), self.batch_size):
            chunk = order[start:start + self.batch_size]
            width = max(len(rows[i]) for i in chunk)
            input_ids = torch.full((len(chunk), width), model.pad_token_id, dtype=torch.long)
            mask = torch.zeros((len(chunk), width), dtype=torch.long)
            for r, i in enumerate(chunk):
                input_ids[r, : len(rows[i])] = torch.tensor(rows[i])
                mask[r, : len(rows[i])] = 1
            batch = TokenBatch(input_ids=input_ids.to(model.device), attention_mask=mask.to(model.device))
            with torch.no_grad():
                logp = torch.log_softmax(model.forward(batch).float(), dim=-1)
            for r, i in enumerate(chunk):
                results[i] = (logp[r, : len(rows[i])], len(rows[i]))
        for i in range(len(rows)):
            yield results.pop(i)


def _first_env(names: Sequence[str]) -> str | None:
    for name in names:
        value = os.environ.get(name)
        if value:
            return value
    return None


class OpenAIChat:
    """A chat model behind an OpenAI-compatible ``/chat/completions`` endpoint.

    Works with OpenAI, vLLM, llama.cpp's server, Ollama's OpenAI endpoint and the like. Unset
    arguments come from the environment: base URL from ``INTERPKIT_LLM_BASE_URL`` (else
    ``OPENAI_BASE_URL``), model from ``INTERPKIT_LLM_MODEL``, key from ``INTERPKIT_LLM_API_KEY``
    (else ``OPENAI_API_KEY``; a local server may need none). The key is sent as
    ``Authorization: Bearer`` and never appears in errors or cache keys.

    Args:
        model: model name sent in each request.
        base_url: e.g. ``"https://api.openai.com/v1"`` or ``"http://127.0.0.1:8000/v1"``.
        api_key: bearer token.
        timeout: seconds per attempt.
        retries: further attempts for network errors, 429 and 5xx.
        backoff: first wait between attempts (doubled each time; ``Retry-After`` honoured).
        cache: a folder (or ``JsonCache``) where answers are kept, keyed by URL + request body;
            None disables caching.
        sleep: wait function (tests pass a no-op).

    Raises:
        ChatError: the base URL or model is not configured (the message names the variables).
    """

    def __init__(self, model: str | None = None, *, base_url: str | None = None, api_key: str | None = None,
                 timeout: float = 60.0, retries: int = 3, backoff: float = 1.0, max_backoff: float = 30.0,
                 cache: str | Path | Any = None, sleep: Callable[[float], None] = time.sleep) -> None:
        from interpkit._http import JsonCache

        base_url = base_url or _first_env(ENV_BASE_URL)
        model = model or _first_env(ENV_MODEL)
        missing = []
        if not base_url:
            missing.append("base URL (argument base_url, or env " + " / ".join(ENV_BASE_URL) + ")")
        if not model:
            missing.append("model (argument model, or env " + " / ".join(ENV_MODEL) + ")")
        if missing:
            raise ChatError("OpenAIChat: no " + " and no ".join(missing) + " configured")
        self.base_url = str(base_url).rstrip("/")
        self.model = str(model)
        self.name = self.model
        self._api_key = api_key or _first_env(ENV_API_KEY)
        self.timeout = timeout
        self.retries = retries
        self.backoff = backoff
        self.max_backoff = max_backoff
        self.sleep = sleep
        self.cache = cache if cache is None or hasattr(cache, "get") else JsonCache(cache)
        self.logprobs_supported: bool | None = None
        self.n_requests = 0

    def __repr__(self) -> str:
        return f"OpenAIChat({self.model!r}, base_url={self.base_url!r})"

    @property
    def url(self) -> str:
        """The chat-completions endpoint."""
        return f"{self.base_url}/chat/completions"

    def _post(self, payload: dict[str, Any]) -> dict[str, Any]:
        from interpkit._http import HTTPError, request_json

        key = json.dumps({"url": self.url, "payload": payload}, sort_keys=True)
        if self.cache is not None:
            hit = self.cache.get(key)
            if hit is not None:
                return hit
        headers = {"Authorization": f"Bearer {self._api_key}"} if self._api_key else {}
        self.n_requests += 1
        try:
            answer = request_json("POST", self.url, payload=payload, headers=headers, timeout=self.timeout,
                                  retries=self.retries, backoff=self.backoff, max_backoff=self.max_backoff,
                                  sleep=self.sleep)
        except HTTPError as error:
            raise ChatError(f"chat model {self.model!r}: {error}", status=error.status) from error
        if not isinstance(answer, dict) or not isinstance(answer.get("choices"), list) or not answer["choices"]:
            raise ChatError(f"chat model {self.model!r}: POST {self.url}: answer has no 'choices': "
                            f"{json.dumps(answer)[:200]}")
        if self.cache is not None:
            self.cache.put(key, answer)
        return answer

    def complete(self, messages: Messages, *, max_tokens: int = 128, temperature: float = 0.0) -> str:
        """The first choice's message content.

        Raises:
            ChatError: HTTP failure (after retries), no ``choices``, or no message content.
        """
        payload = {"model": self.model, "messages": _check_messages(messages), "max_tokens": max_tokens,
                   "temperature": temperature}
        answer = self._post(payload)
        choice = answer["choices"][0]
        content = choice.get("message", {}).get("content") if isinstance(choice, dict) else None
        if not isinstance(content, str):
            raise ChatError(f"chat model {self.model!r}: POST {self.url}: choices[0] has no message content: "
                            f"{json.dumps(choice)[:200]}")
        return content.strip()

    def choice_probs(self, messages: Messages, choices: Sequence[str]) -> np.ndarray | None:
        """Probabilities of the choices from the first answer token's ``top_logprobs``.

        Returns None (and stops asking) when the server returns no logprobs or refuses the
        parameter (HTTP 400/422); returns None when no choice is among the top tokens.
        """
        if self.logprobs_supported is False:
            return None
        payload = {"model": self.model, "messages": _check_messages(messages), "max_tokens": 1,
                   "temperature": 0.0, "logprobs": True, "top_logprobs": min(20, max(5, len(choices)))}
        try:
            answer = self._post(payload)
        except ChatError as error:
            if error.status in (400, 422):
                self.logprobs_supported = False
                return None
            raise
        try:
            top = answer["choices"][0]["logprobs"]["content"][0]["top_logprobs"]
        except (KeyError, IndexError, TypeError):
            self.logprobs_supported = False
            return None
        self.logprobs_supported = True
        weights = np.zeros(len(choices), dtype=np.float64)
        index = {c.strip(): i for i, c in enumerate(choices)}
        for entry in top:
            token = str(entry.get("token", "")).strip()
            if token in index and entry.get("logprob") is not None:
                weights[index[token]] += math.exp(float(entry["logprob"]))
        return _normalise(weights)


def chat_model(spec: str | ChatModel | Any | None = "local") -> ChatModel:
    """Build a chat model from a short spec.

    Args:
        spec: ``"local"`` / None (SmolLM2-135M-Instruct, packaged), ``"api"`` (an
            :class:`OpenAIChat` configured from the environment), ``"api:<model>"``, another
            model name for :func:`~interpkit.models.load_model`, a ModelWrapper, or a ChatModel
            (returned as is).

    Raises:
        ChatError: ``"api"`` without configuration (names the variables to set).
    """
    if spec is None or spec == "local":
        return LocalChat("smollm2-135m")
    if isinstance(spec, str):
        if spec == "api":
            return OpenAIChat()
        if spec.startswith("api:"):
            return OpenAIChat(model=spec[4:])
        return LocalChat(spec)
    from ._wrapper import ModelWrapper

    if isinstance(spec, ModelWrapper):
        return LocalChat(spec)
    if isinstance(spec, ChatModel):
        return spec
    raise TypeError(f"chat_model: expected 'local', 'api', 'api:<model>', a model name, a ModelWrapper or a "
                    f"ChatModel, got {type(spec).__name__}")
