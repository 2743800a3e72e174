"""Fetching SAELens-style releases from the Hugging Face hub.

`resolve_saelens` turns a SAELens release name and SAE id into a local folder, downloading only
that SAE's subfolder (``snapshot_download`` with ``allow_patterns``). A small table maps the
releases interpkit knows to their repos; any ``"owner/repo"`` is used as a repo id directly, and a
local folder is returned as it is. Only what the folder holds decides whether `load_sae` can read
it: SAELens ``cfg.json`` + ``sae_weights.safetensors`` yes; Gemma Scope's ``params.npz`` not yet.

Example:
    >>> from interpkit.sae._hub import release_folder
    >>> release_folder("gpt2-small-res-jb", "blocks.8.hook_resid_pre")
    ('jbloom/GPT2-Small-SAEs-Reformatted', 'blocks.8.hook_resid_pre')
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True, kw_only=True)
class Release:
    """Where a named SAELens release lives.

    Attributes:
        repo_id: the Hugging Face repo.
        folders: SAE id -> folder in the repo, where they differ (SAELens's ``canonical`` ids);
            any other id is used as the folder itself.
    """

    repo_id: str
    folders: dict[str, str] = field(default_factory=dict)


KNOWN_RELEASES: dict[str, Release] = {
    # from sae_lens/pretrained_saes.yaml
    "gpt2-small-res-jb": Release(repo_id="jbloom/GPT2-Small-SAEs-Reformatted"),
    "gemma-scope-2b-pt-res": Release(repo_id="google/gemma-scope-2b-pt-res"),
    # SAELens's canonical ids ("layer_12/width_16k/canonical") name one average_l0_<n> folder each; that
    # table lives in pretrained_saes.yaml and is not copied here, so pass the concrete folder
    # ("layer_12/width_16k/average_l0_82") or add the id to `folders`.
    "gemma-scope-2b-pt-res-canonical": Release(repo_id="google/gemma-scope-2b-pt-res"),
}
"""Releases known by name."""


class SAEDownloadError(OSError):
    """The hub could not provide the SAE (offline, unknown repo or folder)."""


def release_folder(release: str, sae_id: str) -> tuple[str, str]:
    """The ``(repo_id, folder)`` of ``sae_id`` in ``release``.

    Args:
        release: a name in `KNOWN_RELEASES` or an ``"owner/repo"`` id.
        sae_id: the SAE's id in that release.

    Returns:
        The repo id and the folder inside it.

    Raises:
        ValueError: an unknown release name, or a canonical id with no known folder.
    """
    sae_id = sae_id.strip("/")
    if release in KNOWN_RELEASES:
        rel = KNOWN_RELEASES[release]
        folder = rel.folders.get(sae_id, sae_id)
        if folder.endswith("/canonical"):
            raise ValueError(f"release {release!r}: no folder known for canonical id {sae_id!r}; pass the "
                             f"concrete folder instead (e.g. 'layer_12/width_16k/average_l0_82')")
        return rel.repo_id, folder
    if release.count("/") == 1 and all(release.split("/")):
        return release, sae_id
    raise ValueError(f"unknown SAE release {release!r}; use one of {', '.join(sorted(KNOWN_RELEASES))}, "
                     "an 'owner/repo' id, or a local folder")


def resolve_saelens(release: str, sae_id: str, *, cache_dir: str | os.PathLike[str] | None = None) -> Path:
    """A local folder holding ``sae_id`` of ``release``, downloaded from the hub if needed.

    Args:
        release: a release name (`KNOWN_RELEASES`), an ``"owner/repo"`` id, or a local folder.
        sae_id: the SAE's id (its folder in the repo; for a local folder, an optional subfolder).
        cache_dir: the huggingface_hub cache to use (None: its default).

    Returns:
        The SAE folder (pass it to `load_sae`).

    Raises:
        SAEDownloadError: the download failed (offline, no such repo or folder); names release and id.
        ValueError: an unknown release name.
    """
    local = Path(release).expanduser()
    if local.is_dir():
        sub = local / sae_id if sae_id else local
        return sub if sub.is_dir() else local
    repo_id, folder = release_folder(release, sae_id)
    try:
        import huggingface_hub
    except ImportError as err:
        raise SAEDownloadError(f"downloading SAE release {release!r} / {sae_id!r} needs huggingface_hub "
                               "(pip install huggingface_hub)") from err
    try:
        root = huggingface_hub.snapshot_download(repo_id=repo_id, allow_patterns=[f"{folder}/*"],
                                                 cache_dir=None if cache_dir is None else str(cache_dir))
    except Exception as err:  # network, auth, offline-mode and missing-repo errors all land here
        raise SAEDownloadError(f"could not download SAE release {release!r} sae_id {sae_id!r} "
                               f"(repo {repo_id}, folder {folder}): {type(err).__name__}: {err}. Offline? "
                               "Download it elsewhere and pass the local folder.") from err
    path = Path(root) / folder
    if not path.is_dir() or not any(path.iterdir()):
        raise SAEDownloadError(f"SAE release {release!r} sae_id {sae_id!r}: repo {repo_id} has no folder {folder!r}")
    return path
