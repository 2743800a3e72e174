"""Neuronpedia features: fetch or read a feature's public JSON and turn it into interpkit records.

A Neuronpedia feature is named ``model@source:index`` (``gemma-2-2b@20-gemmascope-res-16k:1234``);
`parse_ref` also reads its page and API URLs. `NeuronpediaClient` fetches
``GET /api/feature/<model>/<source>/<index>`` with retries, keeps answers in an on-disk cache and,
offline, answers only from that cache and from exported files. `feature_dump_from_json`,
`explanation_from_neuronpedia` and `fingerprint_from_neuronpedia` convert one feature object;
`load_neuronpedia_features` does all of it for a list of refs and export files.

Fields relied on (as the webapp returns them; Neuron ``index`` is a string there):
``modelId``, ``layer`` (the source id), ``index``; ``explanations[]``: ``description``,
``explanationModelName``, ``typeName`` (best first, by ``scoreV2`` then ``scoreV1``);
``activations[]`` (by ``maxValue`` desc): ``tokens``, ``values`` (one per token), ``maxValue``,
``maxValueTokenIndex``, ``binMin``/``binMax``/``binContains`` (``binMin = -1``: top activations,
else an activation-interval bin); ``pos_str``/``pos_values``, ``neg_str``/``neg_values`` (top
promoted/suppressed logits); ``frac_nonzero`` (density, a fraction); ``freq_hist_data_bar_values``
(equal-width bin centres) with ``..._bar_heights`` (counts), same for ``logits_hist_data_*``;
``maxActApprox``, ``hookName``, ``vector``. Sources: hijohnnylin/neuronpedia
``apps/webapp/lib/db/neuron.ts`` (getNeuronOptimized), ``apps/webapp/prisma/schema.prisma``
(Neuron, Activation, Explanation), the route ``apps/webapp/app/api/feature/[modelId]/[layer]/[index]/
route.ts``; jbloomAus/SAEDashboard ``sae_dashboard/neuronpedia/neuronpedia_converter.py`` and
``sae_dashboard/utils_fns.py`` (HistogramData); docs.neuronpedia.org "API" and "Exports" pages.
Export rows (S3 ``v1/<model>/<source>/{features,activations,explanations}/batch-N.jsonl.gz``) are
merged per feature; an explanations-only row gives a label and no examples (the result says so).

This module is the network side (the client and `load_neuronpedia_features`); reading the JSON
formats (refs, strict parsing, conversions, export files) is `interpkit.sources._neuronpedia_format`,
whose public names are re-exported here.

Example:
    >>> ref = parse_ref("https://www.neuronpedia.org/gemma-2-2b/20-gemmascope-res-16k/1234")
    >>> ref.id
    'gemma-2-2b@20-gemmascope-res-16k:1234'
    >>> raw = {"modelId": "gpt2-small", "layer": "8-res-jb", "index": "5",
    ...        "explanations": [{"description": "cups"}],
    ...        "activations": [{"tokens": ["a", " cup"], "values": [0.0, 2.5], "maxValue": 2.5}]}
    >>> dump = feature_dump_from_json(raw)
    >>> dump.label, dump.examples[0]["text"], dump.examples[0]["activation"]
    ('cups', 'a cup', 2.5)
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from interpkit._http import HTTPError, JsonCache, MalformedResponse, ServiceError, request_json
from interpkit.records import FeatureDump

from ._neuronpedia_format import (
    DEFAULT_BASE_URL,
    NeuronpediaRef,
    _parse,
    explanation_from_neuronpedia,
    feature_dump_from_json,
    fingerprint_from_neuronpedia,
    parse_ref,
    read_exports,
)

__all__ = [
    "API_KEY_ENV",
    "DEFAULT_BASE_URL",
    "NeuronpediaClient",
    "NeuronpediaError",
    "NeuronpediaRef",
    "explanation_from_neuronpedia",
    "feature_dump_from_json",
    "fingerprint_from_neuronpedia",
    "load_neuronpedia_features",
    "parse_ref",
    "read_exports",
]

API_KEY_ENV = "NEURONPEDIA_API_KEY"


class NeuronpediaError(ServiceError):
    """A feature could not be had from Neuronpedia (unknown, unreachable, offline, wrong answer)."""

    def __init__(self, message: str, *, ref: str | None = None, status: int | None = None) -> None:
        super().__init__(message)
        self.ref = ref
        self.status = status


# ---------------------------------------------------------------- the client


def _default_cache_dir() -> Path:
    from interpkit.models.zoo import cache_dir

    return cache_dir() / "neuronpedia"


class NeuronpediaClient:
    """Fetches feature JSON from Neuronpedia, through a disk cache and any exported files.

    Lookup order: exported files (`add_exports`), the cache, then the network (unless offline).
    Answers are checked (`feature_dump_from_json`'s rules, plus both lists present) before they
    are cached, so the cache never holds a malformed or unknown feature.

    Args:
        base_url: the Neuronpedia server.
        api_key: sent as ``x-api-key``; None reads ``$NEURONPEDIA_API_KEY``; "" sends none.
        timeout: seconds per attempt.
        retries: further attempts after network errors, 429 and 5xx (``Retry-After`` honoured).
        backoff: first wait in seconds, doubled per retry.
        cache_dir: cache folder; None means ``interpkit.models.zoo.cache_dir() / "neuronpedia"``.
        use_cache: False disables the disk cache.
        offline: never touch the network; answer from exports and cache or fail saying where it looked.
        exports: exported feature files to index now (see `read_exports`).
        sleep: the wait function (tests pass a recorder).
    """

    def __init__(self, base_url: str = DEFAULT_BASE_URL, *, api_key: str | None = None, timeout: float = 30.0,
                 retries: int = 3, backoff: float = 0.5, cache_dir: str | os.PathLike[str] | None = None,
                 use_cache: bool = True, offline: bool = False, exports: Sequence[str | os.PathLike[str]] = (),
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.base_url = base_url.rstrip("/")
        self.api_key = (os.environ.get(API_KEY_ENV) if api_key is None else api_key) or None
        self.timeout, self.retries, self.backoff, self.sleep = timeout, retries, backoff, sleep
        self.cache = JsonCache(Path(cache_dir) if cache_dir is not None else _default_cache_dir()) if use_cache else None
        self.offline = offline
        self.export_files: list[str] = []
        self._exports: dict[tuple[str, str, int], tuple[dict[str, Any], str]] = {}
        self.requests_made = 0
        """Network fetches made so far (cache and export hits do not count)."""
        self.add_exports(exports)

    def add_exports(self, files: Iterable[str | os.PathLike[str]]) -> list[NeuronpediaRef]:
        """Index exported feature files; returns their features' refs in file order."""
        files = [os.fspath(f) for f in files]
        found = read_exports(files)
        self._exports.update(found)
        self.export_files.extend(files)
        return [NeuronpediaRef(*key) for key in found]

    def url(self, ref: str | NeuronpediaRef) -> str:
        """The API URL of ``ref`` on this client's server."""
        return parse_ref(ref).api_url(self.base_url)

    def feature(self, ref: str | NeuronpediaRef) -> dict[str, Any]:
        """The feature's JSON object (from exports, cache or network, in that order).

        Raises:
            ValueError: ``ref`` is not a feature reference.
            NeuronpediaError: unknown feature, network failure, offline without a local copy.
            RecordError: the server answered with a malformed feature (names the field and URL).
        """
        return self.locate(ref)[0]

    def locate(self, ref: str | NeuronpediaRef) -> tuple[dict[str, Any], str]:
        """Like `feature`, also returning where the JSON came from (``file:line`` or URL)."""
        ref = parse_ref(ref)
        key = (ref.model_id, ref.source, ref.index)
        if key in self._exports:
            return self._exports[key]
        url = self.url(ref)
        cached = self.cache.get(url) if self.cache is not None else None
        if cached is not None:
            return cached, url
        if self.offline:
            looked = [f"the cache ({self.cache.path(url)})" if self.cache is not None else "no cache (disabled)"]
            looked.append(f"{len(self.export_files)} export file(s)" + (f": {', '.join(self.export_files)}"
                                                                      if self.export_files else ""))
            raise NeuronpediaError(f"{ref.id}: offline mode, so no request to {url}; not found in "
                                   + " or ".join(looked), ref=ref.id)
        raw = self._fetch(ref, url)
        if self.cache is not None:
            self.cache.put(url, raw)
        return raw, url

    def _fetch(self, ref: NeuronpediaRef, url: str) -> dict[str, Any]:
        headers = {"x-api-key": self.api_key} if self.api_key else {}
        self.requests_made += 1
        try:
            raw = request_json("GET", url, headers=headers, timeout=self.timeout, retries=self.retries,
                               backoff=self.backoff, sleep=self.sleep)
        except MalformedResponse as exc:
            raise NeuronpediaError(f"{ref.id}: Neuronpedia's answer is not JSON: {exc}", ref=ref.id,
                                   status=exc.status) from exc
        except HTTPError as exc:
            if exc.status == 404:
                msg = f"{ref.id}: no such feature on Neuronpedia (HTTP 404 from {url}); check it at {ref.page_url}"
            elif exc.status in (401, 403):
                msg = (f"{ref.id}: Neuronpedia refused the request ({exc}); this source may need an account: "
                       f"set ${API_KEY_ENV} or pass api_key=")
            else:
                msg = f"{ref.id}: could not fetch from Neuronpedia: {exc}"
            raise NeuronpediaError(msg, ref=ref.id, status=exc.status) from exc
        if raw is None or (isinstance(raw, Mapping) and "modelId" not in raw and ("error" in raw or "message" in raw)):
            said = "" if raw is None else f" ({raw.get('error') or raw.get('message')})"
            raise NeuronpediaError(f"{ref.id}: no such feature on Neuronpedia: {url} answered "
                                   f"{json.dumps(raw)[:120]}{said}; check it at {ref.page_url}", ref=ref.id, status=200)
        got = _parse(raw, url, api=True).ref
        if (got.model_id.casefold(), got.source.casefold(), got.index) != (
                ref.model_id.casefold(), ref.source.casefold(), ref.index):
            raise NeuronpediaError(f"{ref.id}: {url} answered with a different feature, {got.id}", ref=ref.id)
        return raw


def load_neuronpedia_features(refs: Sequence[str | NeuronpediaRef] = (), *, client: NeuronpediaClient | None = None,
                              files: Sequence[str | os.PathLike[str]] = ()) -> list[tuple[FeatureDump, dict[str, Any]]]:
    """Features as ``(FeatureDump, explanation dict)`` pairs: the refs first, then the files' others.

    Each ref is looked up in ``files``, then the client's cache, then online (unless the client is
    offline). Every feature in ``files`` that no ref named follows, in file order, so
    ``load_neuronpedia_features(files=[...])`` reads an export with no network at all.

    Args:
        refs: feature references (`parse_ref` forms).
        client: the client to use; default ``NeuronpediaClient()`` (online, default cache).
        files: exported feature JSON: one feature object, a list of them, or JSONL (``.gz`` too).

    Raises:
        ValueError: a ref is malformed.
        NeuronpediaError: a ref cannot be had.
        RecordError: a file or answer is malformed (names ``file:line`` or URL and the field).
    """
    client = client if client is not None else NeuronpediaClient()
    in_files = client.add_exports(files)
    out, seen = [], set()
    for ref in [parse_ref(r) for r in refs] + in_files:
        if ref in seen:
            continue
        seen.add(ref)
        raw, where = client.locate(ref)
        out.append((feature_dump_from_json(raw, where=where), explanation_from_neuronpedia(raw, where=where)))
    return out
