"""Where the benchmarks find the full 20,000-paper arXiv corpus, and how ``tests/data`` is cut
from it.

The tests never read outside the repository: they use the compact, real subset in
``tests/data/`` (see its README).  Benchmarks that want the whole corpus call
:func:`use_full_corpus`, which looks in ``$HERALD_DATA_DIR``, then ``../shared/data/arxiv``
next to the checkout, and explains how to get the data when it is absent.

Rebuild the test subset (only needed when the tests start to need other days or papers)::

    python benchmarks/corpus_data.py build            # writes tests/data/
    python benchmarks/corpus_data.py build --check    # says whether tests/data is up to date
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.fakes import corpus  # noqa: E402

DATA_ENV = "HERALD_DATA_DIR"
CANDIDATES = (ROOT.parent / "shared" / "data" / "arxiv",)
HOW_TO_GET = f"""\
This benchmark needs the full arXiv corpus (papers.jsonl.gz with 20,000 real papers, about
12 MB, plus raw/ and seed_readme_papers.jsonl.gz), which is not part of the repository.
Put it in a folder and point {DATA_ENV} at it, e.g.

    export {DATA_ENV}=/path/to/arxiv-corpus

The folder layout and the provenance of every record are described in tests/data/README.md
(the corpus was assembled from public GitHub repositories holding real arXiv metadata; arXiv's
metadata is CC0).  Without it, pass --test-data to run on the repository's small subset.
"""

# -- what the tests need ------------------------------------------------------------------------
#: Announcement days the fake serves in tests (DAY, the catch-up window, weekend checks, the
#: API date-window test) and the recorded all-archives day.
TEST_DAYS = (
    "2024-11-28",
    *(f"2026-01-{d:02d}" for d in (19, 20, 21, 22, 23, 24, 26, 27, 28, 31)),
    "2026-02-03",
    "2026-02-04",
    "2026-02-05",
)
#: Seed README rows written after the original script's final keyword list.
SEED_SINCE = "2025-12-04"
#: Papers the tests name by id that are not announced on one of TEST_DAYS.
EXTRA_IDS = ("2202.12139", "2404.01234", "0704.0001", "1707.08567")


def full_data_dir() -> Path | None:
    env = os.environ.get(DATA_ENV)
    for cand in [Path(env)] if env else list(CANDIDATES):
        if (cand / corpus.PAPERS_FILE).is_file():
            return cand
    return None


def use_full_corpus(*, allow_test_data: bool = False) -> Path:
    """Point the fakes at the full corpus; exit with instructions when it is absent."""
    path = full_data_dir()
    if path is None:
        if allow_test_data:
            print(
                "note: full corpus not found; running on tests/data (figures not comparable)",
                file=sys.stderr,
            )
            return corpus.data_dir()
        sys.exit(HOW_TO_GET)
    corpus.use(path)
    return path


def build(src: Path, dest: Path) -> dict[str, int]:
    """Write the test subset of ``src`` into ``dest``; returns counts for the README."""
    with gzip.open(src / corpus.PAPERS_FILE, "rt", encoding="utf-8") as fh:
        papers = [json.loads(line) for line in fh if line.strip()]
    by_id = {p["base_id"]: p for p in papers}
    with gzip.open(src / corpus.SEED_FILE, "rt", encoding="utf-8") as fh:
        seed = [
            row
            for row in (json.loads(line) for line in fh if line.strip())
            if row["commit_date"] >= SEED_SINCE and row["base_id"] in by_id
        ]
    keep = {p["base_id"] for p in papers if p.get("announced") in TEST_DAYS}
    keep |= {row["base_id"] for row in seed}
    keep |= {i for i in EXTRA_IDS if i in by_id}
    keep |= {i for i in by_id if "/" in i}  # the few old-style ids (hep-ph/0301050)
    keep |= _raw_ids(src / "raw") & set(by_id)
    dest.mkdir(parents=True, exist_ok=True)
    _write_jsonl(dest / corpus.PAPERS_FILE, [p for p in papers if p["base_id"] in keep])
    _write_jsonl(dest / corpus.SEED_FILE, seed)
    shutil.copyfile(src / corpus.COUNTS_FILE, dest / corpus.COUNTS_FILE)
    (dest / "raw").mkdir(exist_ok=True)
    for f in sorted((src / "raw").iterdir()):
        if f.stat().st_size > 100_000:
            # Large recorded responses are stored gzipped; corpus.raw_bytes() unpacks them.
            data = gzip.compress(f.read_bytes(), compresslevel=9, mtime=0)
            (dest / "raw" / (f.name + ".gz")).write_bytes(data)
        else:
            shutil.copyfile(f, dest / "raw" / f.name)
    return {"papers": len(keep), "seed_rows": len(seed)}


def _raw_ids(raw: Path) -> set[str]:
    import re

    ids: set[str] = set()
    for f in raw.glob("api_*.xml"):
        ids |= set(re.findall(r"arxiv\.org/abs/(\d{4}\.\d{4,5})", f.read_text(encoding="utf-8")))
    return ids


def _write_jsonl(path: Path, rows: list[dict]) -> None:
    with gzip.GzipFile(path, "wb", compresslevel=9, mtime=0) as fh:
        for row in rows:
            fh.write((json.dumps(row, ensure_ascii=False) + "\n").encode("utf-8"))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("action", choices=["build", "where"])
    ap.add_argument("--check", action="store_true", help="compare instead of writing")
    args = ap.parse_args()
    src = full_data_dir()
    if args.action == "where":
        print(src or HOW_TO_GET)
        return
    if src is None:
        sys.exit(HOW_TO_GET)
    dest = ROOT / "tests" / "data"
    if args.check:
        import filecmp
        import tempfile

        with tempfile.TemporaryDirectory() as tmp:
            build(src, Path(tmp))
            cmp = filecmp.dircmp(tmp, dest)
            stale = cmp.diff_files + cmp.left_only + [f"raw/{n}" for n in _raw_diff(tmp, dest)]
        print("tests/data is up to date" if not stale else f"stale: {stale}")
        sys.exit(1 if stale else 0)
    counts = build(src, dest)
    print(f"wrote {dest}: {counts['papers']:,} papers, {counts['seed_rows']:,} seed rows")


def _raw_diff(a: str, b: Path) -> list[str]:
    import filecmp

    cmp = filecmp.dircmp(Path(a) / "raw", b / "raw")
    return cmp.diff_files + cmp.left_only


if __name__ == "__main__":
    main()
