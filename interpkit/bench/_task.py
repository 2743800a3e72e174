"""AxBench tasks: concepts and labelled training and evaluation rows; reading and writing task folders.

A task is an AxBench folder (``metadata.jsonl``, ``train_data*.parquet``, ``latent_eval_data*.parquet``;
see AXBENCH.md §2): one line per concept, 72 positives per concept plus a shared pool of 72 negatives
per genre for training, and per concept 36 positives, 36 genre-balanced negatives and a few hard
negatives for evaluation. :func:`load_task` reads and validates one (errors name the file, row and
column), :func:`save_task` writes one atomically, :meth:`AxBenchTask.subset` makes the quick version,
:func:`tiled_task` a larger one by repeating concepts (scale tests).
How rows and instructions become model input (``format_pair``, ``chat_prompt``, the instruction
pools) is `interpkit.bench._prompts`.

Example:
    >>> Concept(0, "dates", "text", ref="https://www.neuronpedia.org/gemma-2-2b/10-gemmascope-res-16k/14874").sae_id
    14874
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from interpkit._io import atomic_dir, dir_mode

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "EMPTY_CONCEPT",
    "GENRES",
    "AxBenchTask",
    "Concept",
    "TaskFormatError",
    "load_task",
    "save_task",
    "tiled_task",
]

GENRES = ("text", "code", "math")
EMPTY_CONCEPT = "EEEEE"
"""AxBench's ``output_concept`` sentinel for the shared training negatives."""
TRAIN_COLUMNS = ("input", "output", "output_concept", "concept_genre", "category", "dataset_category", "concept_id")
EVAL_COLUMNS = (*TRAIN_COLUMNS, "sae_link", "sae_id")
TRAIN_CATEGORIES = ("positive", "negative")
EVAL_CATEGORIES = ("positive", "negative", "hard negative")
ROTATE_EVERY = 500
"""Concepts per parquet file, as AxBench rotates (``train_data.parquet``, ``train_data_1.parquet``, ...)."""


class TaskFormatError(ValueError):
    """A task folder's file does not follow the AxBench format (the message names file, row, column)."""


@dataclass(frozen=True)
class Concept:
    """One concept of a task."""

    id: int
    """0-based concept id (``concept_id`` in every file)."""
    description: str
    """The natural-language description (AxBench ``concept``)."""
    genre: str
    """Instruction genre: ``text``, ``code`` or ``math``."""
    ref: str | None = None
    """Where the description came from (a Neuronpedia feature URL in AxBench), or None."""

    @property
    def sae_id(self) -> int | None:
        """The trailing integer of ``ref`` (the SAE feature id), or None."""
        match = re.search(r"(\d+)/?\s*$", self.ref or "")
        return int(match.group(1)) if match else None

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "description": self.description, "genre": self.genre, "ref": self.ref}


@dataclass
class AxBenchTask:
    """A concept detection/steering task: concepts plus labelled training and evaluation rows.

    ``train`` and ``eval`` have a 0-based RangeIndex; :meth:`train_rows` and :meth:`eval_rows` keep
    that index, so their ``.index`` are positions into ``train`` / ``eval``.
    """

    name: str
    """Task name (the folder name)."""
    path: Path | None
    """Folder it was loaded from or saved to."""
    concepts: tuple[Concept, ...]
    train: pd.DataFrame
    """Columns of AXBENCH.md §2.3; shared negatives have ``concept_id`` -1."""
    eval: pd.DataFrame
    """Columns of §2.4; ``category`` is ``positive``, ``negative`` or ``hard negative``."""
    generator: dict | None = None
    """Provenance of a generated task (model, endpoint, date, settings, counts); None for AxBench files."""
    selection: dict | None = None
    """How :meth:`subset` derived this task from a larger one, or None."""
    _by_id: dict[int, Concept] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        self._by_id = {c.id: c for c in self.concepts}

    def __repr__(self) -> str:
        return (f"AxBenchTask({self.name!r}, concepts={len(self.concepts)}, train={len(self.train)}, "
                f"eval={len(self.eval)})")

    @property
    def concept_ids(self) -> list[int]:
        return [c.id for c in self.concepts]

    def concept(self, cid: int) -> Concept:
        """The concept with id ``cid``.

        Raises:
            KeyError: no such concept (the message lists the ids).
        """
        try:
            return self._by_id[int(cid)]
        except KeyError:
            raise KeyError(f"task {self.name!r} has no concept {cid!r}; concept ids: {self.concept_ids}") from None

    def train_rows(self, cid: int) -> pd.DataFrame:
        """Training rows of concept ``cid`` with a ``label`` column (1 positive, 0 negative).

        As AxBench's ``prepare_df``: the concept's positives plus the shared pool negatives
        (``concept_id`` -1) of the concept's genre (plus any negatives tagged with ``cid`` itself).
        """
        concept = self.concept(cid)
        df = self.train
        pos = (df["concept_id"] == concept.id) & (df["category"] == "positive")
        neg = (df["category"] == "negative") & (
            (df["concept_id"] == concept.id) | ((df["concept_id"] == -1) & (df["concept_genre"] == concept.genre)))
        rows = df[pos | neg].copy()
        rows["label"] = (rows["category"] == "positive").astype(int)
        return rows

    def eval_rows(self, cid: int) -> pd.DataFrame:
        """Evaluation rows of concept ``cid`` (all categories), index = positions in ``eval``."""
        concept = self.concept(cid)
        return self.eval[self.eval["concept_id"] == concept.id]

    def subset(self, *, concepts: int | Sequence[int] | None = None, max_per_class: int | None = None,
               seed: int = 42) -> AxBenchTask:
        """A smaller task (quick mode).

        Args:
            concepts: the first ``n`` concepts, or the listed concept ids, or None for all.
            max_per_class: keep at most this many rows per (concept, category) in ``eval``, and per
                concept positives and per genre pool negatives in ``train`` (seeded sample, file
                order kept). The pool keeps only the genres of the kept concepts.
            seed: sampling seed.

        Raises:
            KeyError: a listed concept id is not in the task.
        """
        if concepts is None:
            kept = list(self.concepts)
        elif isinstance(concepts, int):
            kept = list(self.concepts[:concepts])
        else:
            kept = [self.concept(c) for c in concepts]
        ids = {c.id for c in kept}
        genres = {c.genre for c in kept}
        train = self.train
        train = train[train["concept_id"].isin(ids)
                      | ((train["concept_id"] == -1) & train["concept_genre"].isin(genres))]
        evals = self.eval[self.eval["concept_id"].isin(ids)]
        if max_per_class is not None:
            train = _cap(train, ["concept_id", "category", "concept_genre"], max_per_class, seed)
            evals = _cap(evals, ["concept_id", "category"], max_per_class, seed)
        selection = {"concepts": sorted(ids), "max_per_class": max_per_class, "seed": seed,
                     "of": self.selection["of"] if self.selection else self.name}
        return replace(self, concepts=tuple(kept), train=train.reset_index(drop=True),
                       eval=evals.reset_index(drop=True), selection=selection)

    def describe(self) -> dict[str, Any]:
        """JSON-ready counts: per concept and category, the shared pool per genre, the genre mix."""
        per_concept = []
        for c in self.concepts:
            ev = self.eval_rows(c.id)["category"].value_counts()
            per_concept.append({
                **c.to_dict(),
                "train_positive": int(((self.train["concept_id"] == c.id) & (self.train["category"] == "positive")).sum()),
                "eval": {cat: int(ev.get(cat, 0)) for cat in EVAL_CATEGORIES},
            })
        pool = self.train[self.train["concept_id"] == -1]
        genres = {g: sum(c.genre == g for c in self.concepts) for g in GENRES}
        return {
            "name": self.name,
            "path": str(self.path) if self.path is not None else None,
            "n_concepts": len(self.concepts),
            "genres": genres,
            "train": {"rows": len(self.train),
                      "positive": int((self.train["category"] == "positive").sum()),
                      "negative_pool": {g: int((pool["concept_genre"] == g).sum()) for g in GENRES}},
            "eval": {"rows": len(self.eval),
                     **{cat: int((self.eval["category"] == cat).sum()) for cat in EVAL_CATEGORIES}},
            "concepts": per_concept,
            "generator": self.generator,
            "selection": self.selection,
        }


def _cap(df: pd.DataFrame, keys: list[str], n: int, seed: int) -> pd.DataFrame:
    parts = [group if len(group) <= n else group.sample(n, random_state=seed)
             for _, group in df.groupby(keys, sort=False)]
    if not parts:
        return df.iloc[:0]
    import pandas as pd

    return pd.concat(parts).sort_index()


def tiled_task(sources: AxBenchTask | Sequence[AxBenchTask], n_concepts: int, *, name: str | None = None) -> AxBenchTask:
    """An AxBench task of ``n_concepts`` concepts built by repeating the concepts of ``sources``.

    Concept ``k`` takes the training positives and eval rows of the ``k``-th source concept
    (cycling through the concepts of every source task in turn), relabelled with id ``k`` and the
    description ``"<source description> [k]"``; the shared negative pool is the first source's.
    For scale tests (a Concept500-sized task from the two shipped Concept10 tasks): the texts
    repeat, the layout, ids and counts are AxBench's.

    Args:
        sources: an `AxBenchTask` or several.
        n_concepts: concepts in the new task.
        name: task name (default ``"tiled<n>"``).
    """
    import pandas as pd

    tasks = [sources] if isinstance(sources, AxBenchTask) else list(sources)
    pairs = [(t, c) for t in tasks for c in t.concepts]
    concepts, train, evals = [], [tasks[0].train[tasks[0].train["concept_id"] == -1]], []
    for k in range(int(n_concepts)):
        task, src = pairs[k % len(pairs)]
        desc = f"{src.description} [{k}]"
        concepts.append(Concept(k, desc, src.genre, ref=src.ref))
        for frame, out in ((task.train[task.train["concept_id"] == src.id], train), (task.eval_rows(src.id), evals)):
            rows = frame.copy()
            rows["concept_id"] = k
            if "output_concept" in rows.columns:
                same = rows["output_concept"] == src.description
                rows.loc[same, "output_concept"] = desc
            out.append(rows)
    return AxBenchTask(name=name or f"tiled{n_concepts}", path=None, concepts=tuple(concepts),
                       train=pd.concat(train, ignore_index=True), eval=pd.concat(evals, ignore_index=True),
                       generator={"tiled_from": [t.name for t in tasks], "n_concepts": int(n_concepts)})


# ---- reading -------------------------------------------------------------------------------------


def parse_json(text: str, where: str | os.PathLike[str], error: type[ValueError] = TaskFormatError) -> Any:
    """``json.loads(text)``; invalid JSON raises ``error("<where>: not valid JSON (<reason>)")``.

    ``where`` names the file (and line) in the message; the instruction readers pass ``ValueError``.
    """
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise error(f"{where}: not valid JSON ({exc.msg})") from None


def _rotated(folder: Path, stem: str) -> list[Path]:
    """``stem.parquet``, ``stem_1.parquet``, ... in rotation order."""
    pattern = re.compile(rf"^{re.escape(stem)}(?:_(\d+))?\.parquet$")
    found = []
    for path in folder.iterdir():
        match = pattern.match(path.name)
        if match:
            found.append((int(match.group(1) or 0), path))
    return [p for _, p in sorted(found)]


def _read_metadata(path: Path) -> list[tuple[int, dict]]:
    if not path.is_file():
        raise FileNotFoundError(f"{path}: task metadata file not found")
    out = []
    with open(path, encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, 1):
            if not line.strip():
                continue
            where = f"{path}:{lineno}"
            obj = parse_json(line, where)
            if not isinstance(obj, dict):
                raise TaskFormatError(f"{where}: expected a JSON object, got {type(obj).__name__}")
            cid, concept = obj.get("concept_id"), obj.get("concept")
            if isinstance(cid, bool) or not isinstance(cid, int) or cid < 0:
                raise TaskFormatError(f"{where}: 'concept_id' must be a non-negative integer, got {cid!r}")
            if not isinstance(concept, str) or not concept.strip():
                raise TaskFormatError(f"{where}: 'concept' must be a non-empty string, got {concept!r}")
            out.append((lineno, obj))
    if not out:
        raise TaskFormatError(f"{path}: no concepts")
    return out


def _meta_genre(path: Path, lineno: int, obj: dict) -> str | None:
    gmap = obj.get("concept_genres_map")
    if gmap is None:
        return None
    where = f"{path}:{lineno}"
    if not isinstance(gmap, dict):
        raise TaskFormatError(f"{where}: 'concept_genres_map' must be an object, got {gmap!r}")
    value = gmap.get(obj["concept"], next(iter(gmap.values()), None))
    genre = value[0] if isinstance(value, list) and value else value
    if genre not in GENRES:
        raise TaskFormatError(f"{where}: concept_genres_map genre must be one of {list(GENRES)}, got {value!r}")
    return str(genre)


def _read_frames(paths: list[Path], columns: Sequence[str], optional: Sequence[str]) -> list[tuple[Path, pd.DataFrame]]:
    import pandas as pd

    frames = []
    for path in paths:
        try:
            df = pd.read_parquet(path)
        except Exception as error:  # pyarrow raises several types for a bad file
            raise TaskFormatError(f"{path}: cannot read parquet ({error})") from error
        for col in columns:
            if col not in df.columns:
                if col in optional:
                    continue
                raise TaskFormatError(f"{path}: missing column {col!r}")
        frames.append((path, df))
    return frames


def _check_rows(path: Path, df: pd.DataFrame, *, categories: Sequence[str], known: set[int]) -> pd.DataFrame:
    """Validate one file's rows; return a normalised copy (pandas' default string columns, int64 ids)."""
    import pandas as pd

    def bad(i: int, col: str, msg: str) -> TaskFormatError:
        return TaskFormatError(f"{path} row {i} column {col!r}: {msg}")

    df = df.reset_index(drop=True).copy()
    for col in ("input", "output"):
        null = df[col].isna().to_numpy()
        if null.any():
            raise bad(int(null.argmax()), col, "missing value")
        nonstr = [i for i, v in enumerate(df[col]) if not isinstance(v, str)]
        if nonstr:
            raise bad(nonstr[0], col, f"expected a string, got {df[col].iloc[nonstr[0]]!r}")
    ids = pd.to_numeric(df["concept_id"], errors="coerce")
    wrong = (ids.isna() | (ids != ids.round())).to_numpy()
    if wrong.any():
        i = int(wrong.argmax())
        raise bad(i, "concept_id", f"expected an integer, got {df['concept_id'].iloc[i]!r}")
    df["concept_id"] = ids.astype("int64")
    for col, allowed in (("category", categories), ("concept_genre", GENRES)):
        values = df[col].astype(object).tolist()
        for i, value in enumerate(values):
            if value not in allowed:
                raise bad(i, col, f"expected one of {list(allowed)}, got {value!r}")
        df[col] = pd.Series(values)
    for i, (cid, cat) in enumerate(zip(df["concept_id"].tolist(), df["category"].tolist(), strict=True)):
        if cid == -1 and cat == "negative" and -1 in known:
            continue
        if cid not in known:
            raise bad(i, "concept_id", f"concept {cid} is not in metadata.jsonl")
        if cid == -1 and cat != "negative":
            raise bad(i, "concept_id", f"-1 (shared pool) rows must be negatives, got category {cat!r}")
    for col in ("input", "output", "output_concept", "dataset_category", "sae_link"):
        if col in df.columns:
            df[col] = pd.Series([None if v is None or v is pd.NA or (isinstance(v, float) and v != v) else str(v)
                                 for v in df[col].tolist()])
    return df


def load_task(path: str | os.PathLike[str]) -> AxBenchTask:
    """Read an AxBench task folder.

    Reads ``metadata.jsonl``, every ``train_data*.parquet`` (rotated files concatenated in order)
    and every ``latent_eval_data*.parquet``, plus ``generator.json`` (provenance) when present.
    Concept genres come from ``concept_genres_map`` (else from the concept's training positives).
    Missing ``output_concept``/``dataset_category`` columns are filled (concept description or
    ``EEEEE``; ``instruction``); ``sae_link``/``sae_id`` are optional.

    Raises:
        FileNotFoundError: the folder, its metadata, or its train or eval parquet is missing (named).
        TaskFormatError: a bad metadata line (``file:line``), a missing column (``file: missing
            column 'x'``), or a bad value (``file row i column c: ...``, rows 0-based), including
            concept ids absent from metadata.
    """
    import pandas as pd

    folder = Path(path)
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder}: task folder not found")
    meta_path = folder / "metadata.jsonl"
    meta = _read_metadata(meta_path)
    train_paths, eval_paths = _rotated(folder, "train_data"), _rotated(folder, "latent_eval_data")
    for paths, name in ((train_paths, "train_data.parquet"), (eval_paths, "latent_eval_data.parquet")):
        if not paths:
            raise FileNotFoundError(f"{folder / name}: not found (a task needs metadata.jsonl, "
                                    "train_data.parquet and latent_eval_data.parquet)")
    seen: dict[int, int] = {}
    genres: dict[int, str | None] = {}
    for lineno, obj in meta:
        if obj["concept_id"] in seen:
            raise TaskFormatError(f"{meta_path}:{lineno}: duplicate concept_id {obj['concept_id']} "
                                  f"(first on line {seen[obj['concept_id']]})")
        seen[obj["concept_id"]] = lineno
        genres[obj["concept_id"]] = _meta_genre(meta_path, lineno, obj)
    known = set(seen)

    required = ("input", "output", "concept_genre", "category", "concept_id")
    train_parts = [_check_rows(p, df, categories=TRAIN_CATEGORIES, known=known | {-1})
                   for p, df in _read_frames(train_paths, TRAIN_COLUMNS, [c for c in TRAIN_COLUMNS if c not in required])]
    eval_parts = [_check_rows(p, df, categories=EVAL_CATEGORIES, known=known)
                  for p, df in _read_frames(eval_paths, EVAL_COLUMNS, [c for c in EVAL_COLUMNS if c not in required])]
    train = pd.concat(train_parts, ignore_index=True)
    evals = pd.concat(eval_parts, ignore_index=True)

    concepts = []
    for lineno, obj in meta:
        cid = obj["concept_id"]
        genre = genres[cid]
        if genre is None:
            pos = train[(train["concept_id"] == cid) & (train["category"] == "positive")]["concept_genre"]
            if pos.empty:
                raise TaskFormatError(f"{meta_path}:{lineno}: no 'concept_genres_map' and no training positives "
                                      "to take the genre from")
            genre = str(pos.iloc[0])
        ref = obj.get("ref")
        concepts.append(Concept(cid, obj["concept"], genre, ref=str(ref) if ref else None))
    desc = {c.id: c.description for c in concepts}
    for df in (train, evals):
        if "output_concept" not in df.columns:
            df["output_concept"] = [desc.get(c, EMPTY_CONCEPT) for c in df["concept_id"]]
        if "dataset_category" not in df.columns:
            df["dataset_category"] = "instruction"
    train = train[[*TRAIN_COLUMNS, *[c for c in train.columns if c not in TRAIN_COLUMNS]]]
    evals = evals[[*TRAIN_COLUMNS, *[c for c in evals.columns if c not in TRAIN_COLUMNS]]]
    generator = None
    gen_path = folder / "generator.json"
    if gen_path.is_file():
        generator = parse_json(gen_path.read_text(encoding="utf-8"), gen_path)
    return AxBenchTask(name=folder.resolve().name, path=folder, concepts=tuple(concepts), train=train,
                       eval=evals, generator=generator)


# ---- writing -------------------------------------------------------------------------------------


def save_task(task: AxBenchTask, path: str | os.PathLike[str]) -> Path:
    """Write ``task`` as an AxBench folder (metadata.jsonl, train/eval parquet, generator.json).

    Files rotate every 500 concepts as AxBench's do (shared negatives go in the first train file).
    The folder is written under a temporary name beside ``path`` and renamed into place, replacing
    an existing task folder; a non-empty folder that is not a task is left alone. Sets ``task.path``.

    Raises:
        FileExistsError: ``path`` exists and is not a task folder (no metadata.jsonl).
    """
    import pandas as pd

    final = Path(path)
    if final.exists() and (not final.is_dir() or (any(final.iterdir()) and not (final / "metadata.jsonl").exists())):
        raise FileExistsError(f"{final}: exists and is not an AxBench task folder; not overwriting it")
    with atomic_dir(final) as tmp:
        lines = [json.dumps({"concept_id": c.id, "concept": c.description, "ref": c.ref,
                             "concept_genres_map": {c.description: [c.genre]}}, ensure_ascii=False)
                 for c in task.concepts]
        (tmp / "metadata.jsonl").write_text("".join(line + "\n" for line in lines), encoding="utf-8")
        ids = [c.id for c in task.concepts]
        chunks = [ids[i:i + ROTATE_EVERY] for i in range(0, len(ids), ROTATE_EVERY)] or [[]]
        for stem, df, pool in (("train_data", task.train, True), ("latent_eval_data", task.eval, False)):
            for k, chunk in enumerate(chunks):
                mask = df["concept_id"].isin(chunk)
                if pool and k == 0:
                    mask |= df["concept_id"] == -1
                part = df[mask].reset_index(drop=True)
                if "sae_id" in part.columns:
                    part["sae_id"] = pd.to_numeric(part["sae_id"], errors="coerce").astype("Int64")
                part.to_parquet(tmp / (f"{stem}.parquet" if k == 0 else f"{stem}_{k}.parquet"), index=False)
        if task.generator is not None:
            (tmp / "generator.json").write_text(json.dumps(task.generator, indent=2, default=str) + "\n",
                                                encoding="utf-8")
        os.chmod(tmp, dir_mode())  # a task folder is shared data: not mkdtemp's 0700
    task.path = final
    return final
