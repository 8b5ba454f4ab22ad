"""The real arXiv data the fakes serve: a compact subset of a 20,000-paper corpus plus a few
recorded raw responses, all inside the repository in ``tests/data/`` (see its README for
where every part came from).

Tests read nothing else.  Benchmarks may switch the fakes to the full corpus with
:func:`use` (``benchmarks/corpus_data.py`` finds it).

Everything returned here is shared and cached: treat the dicts as read-only (copy before
changing one).
"""

from __future__ import annotations

import datetime as _dt
import functools
import gzip
import json
from collections import Counter
from collections.abc import Iterable
from pathlib import Path

from bot.models import Paper

#: The repository's own test data.
TEST_DATA = Path(__file__).resolve().parent.parent / "data"
PAPERS_FILE = "papers.jsonl.gz"
SEED_FILE = "seed_readme_papers.jsonl.gz"
COUNTS_FILE = "rss_2024-11-28_counts.json"
#: The real all-archives rss.arxiv.org feed the 2024-11-28 papers were taken from.
RSS_2024_11_28 = "rss2_multi-archive_2024-11-28.xml"

_dir = TEST_DATA


class CorpusMissing(RuntimeError):
    """The arXiv data directory (or a file in it) is not where we looked."""


def data_dir() -> Path:
    """The data directory in use: ``tests/data`` unless a benchmark called :func:`use`."""
    if not (_dir / PAPERS_FILE).is_file():
        raise CorpusMissing(f"arXiv data not found: {_dir / PAPERS_FILE} is missing")
    return _dir


def use(path: Path) -> None:
    """Serve another corpus of the same layout (benchmarks: the full 20,000 papers)."""
    global _dir
    _dir = Path(path)
    for fn in (load_papers, papers_by_id, _by_day, rss_item_extras):
        fn.cache_clear()


def raw_path(name: str) -> Path:
    """Path of a recorded response in ``raw/``, stored as is or gzipped (``name.gz``)."""
    for cand in (data_dir() / "raw" / name, data_dir() / "raw" / f"{name}.gz"):
        if cand.is_file():
            return cand
    raise CorpusMissing(f"raw arXiv response {name!r} not found in {data_dir() / 'raw'}")


def raw_bytes(name: str) -> bytes:
    """A recorded response exactly as arXiv sent it."""
    path = raw_path(name)
    data = path.read_bytes()
    return gzip.decompress(data) if path.suffix == ".gz" else data


def raw_text(name: str) -> str:
    return raw_bytes(name).decode("utf-8")


def seed_rows() -> list[dict]:
    """Rows of the original script's README digests (see tests/data/README.md)."""
    with gzip.open(data_dir() / SEED_FILE, "rt", encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


@functools.lru_cache(maxsize=1)
def load_papers() -> list[dict]:
    """Every paper of the corpus in use, in file order (cached; do not mutate)."""
    path = data_dir() / PAPERS_FILE
    with gzip.open(path, "rt", encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


@functools.lru_cache(maxsize=1)
def papers_by_id() -> dict[str, dict]:
    """Papers keyed by unversioned id (``2411.17700``, ``hep-th/9901001``)."""
    return {p["base_id"]: p for p in load_papers()}


@functools.lru_cache(maxsize=1)
def _by_day() -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = {}
    for p in load_papers():
        if p.get("announced"):
            out.setdefault(p["announced"], []).append(p)
    return out


def papers_on(day: str) -> list[dict]:
    """Papers whose ``announced`` date is ``day`` ('YYYY-MM-DD'), in file order."""
    return list(_by_day().get(day, ()))


def is_weekday(day: str) -> bool:
    return _dt.date.fromisoformat(day).weekday() < 5


def announced_days(
    min_papers: int = 1,
    *,
    categories: Iterable[str] | None = None,
    weekdays_only: bool = False,
) -> list[tuple[str, int]]:
    """``(day, count)`` for every announcement day with at least ``min_papers`` papers.

    ``categories``: count only papers listed (anywhere) in one of these categories.
    ``weekdays_only``: drop Saturdays/Sundays.  Some listing scrapes date papers by their UTC
    crawl day, so the corpus has ~1,000 papers "announced" on weekends although arXiv itself
    never announces then (the fake serves an empty feed on those days by default).
    """
    wanted = set(categories) if categories is not None else None
    counts: Counter[str] = Counter()
    for day, papers in _by_day().items():
        if weekdays_only and not is_weekday(day):
            continue
        if wanted is None:
            counts[day] = len(papers)
        else:
            counts[day] = sum(1 for p in papers if wanted.intersection(p["categories"]))
    return sorted((d, n) for d, n in counts.items() if n >= min_papers)


@functools.lru_cache(maxsize=1)
def rss_item_extras() -> dict[str, dict]:
    """Per-item fields of the real 2024-11-28 feed that ``papers.jsonl`` does not carry.

    Keyed by base id: ``rights`` (the paper's licence), ``doi``, ``journal_ref`` and
    ``creator`` (the exact ``<dc:creator>`` string).  Lets the fake reproduce that day's feed
    byte for byte.
    """
    from lxml import etree

    ns = {"arxiv": "http://arxiv.org/schemas/atom", "dc": "http://purl.org/dc/elements/1.1/"}
    root = etree.fromstring(raw_bytes(RSS_2024_11_28))
    out: dict[str, dict] = {}
    for item in root.iterfind("channel/item"):
        guid = item.findtext("guid") or ""
        base = guid.split(":", 2)[-1].rsplit("v", 1)[0]
        out[base] = {
            "rights": item.findtext("dc:rights", namespaces=ns),
            "doi": item.findtext("arxiv:DOI", namespaces=ns),
            "journal_ref": item.findtext("arxiv:journal_reference", namespaces=ns),
            "creator": item.findtext("dc:creator", namespaces=ns),
        }
    return out


def as_paper(d: dict) -> Paper:
    """A corpus record as the engine's ``Paper`` (version from the record, v1 when unknown)."""
    version = d.get("version")
    return Paper(
        id=d["base_id"],
        version=int(str(version).lstrip("v")) if version else 1,
        title=" ".join(d["title"].split()),
        authors=tuple(d["authors"]),
        categories=tuple(d["categories"]),
        abstract=d["abstract"],
    )
