"""Mutation testing: would the tests notice if the code were wrong?

A measurement tool, not a test.  It makes one small change at a time (a *mutant*) to a
scratch copy of the checkout — a flipped comparison, a swapped arithmetic or boolean
operator, a changed constant, a removed statement — and runs the target's fast test files
there with ``-x -q -p no:cacheprovider``.  A mutant the tests still pass has *survived*: either
a test is missing or too weak, or the change makes no observable difference (an equivalent
mutant, to be judged by a person).

Run it from the checkout, inside its virtualenv:

    python benchmarks/mutation.py                       # every target, 2 workers
    python benchmarks/mutation.py scoring ids           # only some targets
    python benchmarks/mutation.py --list delivery       # print the mutants, run nothing
    python benchmarks/mutation.py --only storage:17     # one mutant (e.g. to check a new test)
    python benchmarks/mutation.py -j 4 --json benchmarks/out/mutation.json

It prints ``killed / total`` per target and every survivor as ``file:line  id  change``.

Scope rules, so the count means something: docstrings, type annotations, ``assert``
statements and logging calls are never mutated (none of them is behaviour a user sees in a
digest or a reply); a target may be limited to some functions (``Class.method``).  Every
worker copies the checkout (without .venv and .git) to a temporary directory once, runs the
unmutated tests there first (they must pass), then writes each mutant over the module, runs
the tests with ``PYTHONPATH`` set to the copy and ``PYTHONDONTWRITEBYTECODE=1`` (so no stale
bytecode can hide a change), and puts the original back.  The module is rewritten with
``ast.unparse`` (comments dropped), so the reported line is the original one.
"""

from __future__ import annotations

import argparse
import ast
import json
import os
import queue
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PYTEST_ARGS = ["-x", "-q", "-p", "no:cacheprovider"]


@dataclass(frozen=True)
class Target:
    module: str  # path relative to the checkout
    functions: frozenset[str] | None  # qualified names to mutate; None = the whole module
    tests: tuple[str, ...]


TARGETS: dict[str, Target] = {
    "scoring": Target("bot/scoring.py", None, ("tests/test_scoring.py",)),
    "ids": Target("bot/ids.py", None, ("tests/test_ids.py",)),
    "delivery": Target("bot/delivery.py", None, ("tests/test_delivery.py",)),
    "summaries.key": Target(
        "bot/summaries.py", frozenset({"Summarizer.key"}), ("tests/test_summaries.py",)
    ),
    "storage": Target(
        "storage/db.py",
        frozenset(
            {
                "Store.upsert_papers",
                "Store.record_announcements",
                "Store.upsert_subscription",
                "Store.record_rating",
                "Store.plan_deliveries",
            }
        ),
        ("tests/test_storage.py", "tests/test_delivery.py", "tests/test_arxiv_source.py"),
    ),
}

_CMP_SWAP: dict[type[ast.cmpop], type[ast.cmpop]] = {
    ast.Lt: ast.LtE,
    ast.LtE: ast.Lt,
    ast.Gt: ast.GtE,
    ast.GtE: ast.Gt,
    ast.Eq: ast.NotEq,
    ast.NotEq: ast.Eq,
    ast.In: ast.NotIn,
    ast.NotIn: ast.In,
    ast.Is: ast.IsNot,
    ast.IsNot: ast.Is,
}
_BIN_SWAP: dict[type[ast.operator], type[ast.operator]] = {
    ast.Add: ast.Sub,
    ast.Sub: ast.Add,
    ast.Mult: ast.Div,
    ast.Div: ast.Mult,
    ast.FloorDiv: ast.Div,
    ast.Mod: ast.FloorDiv,
    ast.Pow: ast.Mult,
    ast.BitOr: ast.BitAnd,
    ast.BitAnd: ast.BitOr,
    ast.BitXor: ast.BitOr,
    ast.LShift: ast.RShift,
    ast.RShift: ast.LShift,
}
_SYMBOL = {
    ast.Lt: "<",
    ast.LtE: "<=",
    ast.Gt: ">",
    ast.GtE: ">=",
    ast.Eq: "==",
    ast.NotEq: "!=",
    ast.In: "in",
    ast.NotIn: "not in",
    ast.Is: "is",
    ast.IsNot: "is not",
    ast.Add: "+",
    ast.Sub: "-",
    ast.Mult: "*",
    ast.Div: "/",
    ast.FloorDiv: "//",
    ast.Mod: "%",
    ast.Pow: "**",
    ast.BitOr: "|",
    ast.BitAnd: "&",
    ast.BitXor: "^",
    ast.LShift: "<<",
    ast.RShift: ">>",
    ast.And: "and",
    ast.Or: "or",
}
_LOG_METHODS = {"debug", "info", "warning", "error", "exception", "critical"}
_DELETABLE = (
    ast.Expr,
    ast.Assign,
    ast.AugAssign,
    ast.AnnAssign,
    ast.Return,
    ast.Raise,
    ast.Continue,
    ast.Break,
    ast.Delete,
)


@dataclass
class Mutant:
    target: str
    number: int
    node: int  # index of the node in ast.walk order
    op: str
    line: int
    change: str
    status: str = "not run"  # killed | survived | timeout | not run
    seconds: float = 0.0


# -- finding mutation points -------------------------------------------------------------------
def _is_docstring(stmt: ast.stmt, parent: ast.AST) -> bool:
    body = getattr(parent, "body", None)
    return (
        isinstance(body, list)
        and body
        and body[0] is stmt
        and isinstance(parent, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef)
        and isinstance(stmt, ast.Expr)
        and isinstance(stmt.value, ast.Constant)
        and isinstance(stmt.value.value, str)
    )


def _is_log_call(stmt: ast.stmt) -> bool:
    if not isinstance(stmt, ast.Expr) or not isinstance(stmt.value, ast.Call):
        return False
    f = stmt.value.func
    return (
        isinstance(f, ast.Attribute)
        and f.attr in _LOG_METHODS
        and isinstance(f.value, ast.Name)
        and f.value.id in ("log", "logger", "logging")
    )


def _skipped_nodes(tree: ast.Module, functions: frozenset[str] | None) -> set[int]:
    """ids of nodes never mutated: docstrings, annotations, asserts, log calls, out of scope."""
    skip: set[int] = set()

    def drop(node: ast.AST | None) -> None:
        if node is not None:
            skip.update(id(n) for n in ast.walk(node))

    in_scope: set[int] = set()

    def visit(node: ast.AST, qual: str) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
                name = f"{qual}.{child.name}" if qual else child.name
                if functions is not None and name in functions:
                    in_scope.update(id(n) for n in ast.walk(child))
                for dec in child.decorator_list:
                    drop(dec)
                if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef):
                    drop(child.returns)
                    for a in (*child.args.posonlyargs, *child.args.args, *child.args.kwonlyargs):
                        drop(a.annotation)
                    for a in (child.args.vararg, child.args.kwarg):
                        if a is not None:
                            drop(a.annotation)
                visit(child, name)
            else:
                visit(child, qual)

    visit(tree, "")
    for parent in ast.walk(tree):
        for stmt in _statements(parent):
            if _is_docstring(stmt, parent) or isinstance(stmt, ast.Assert) or _is_log_call(stmt):
                drop(stmt)
        if isinstance(parent, ast.AnnAssign):
            drop(parent.annotation)
    if functions is not None:
        skip.update(id(n) for n in ast.walk(tree) if id(n) not in in_scope)
    return skip


def _statements(node: ast.AST) -> Iterator[ast.stmt]:
    """The statements directly in ``node``'s blocks (body, else, finally, except, case)."""
    for attr in ("body", "orelse", "finalbody"):
        block = getattr(node, attr, None)
        if isinstance(block, list):
            yield from (s for s in block if isinstance(s, ast.stmt))
    for h in getattr(node, "handlers", None) or []:
        yield from h.body
    for c in getattr(node, "cases", None) or []:
        yield from c.body


def _function_bodies(tree: ast.Module) -> set[int]:
    """ids of statements inside functions (the deletable ones)."""
    out: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            for inner in ast.walk(node):
                out.update(id(s) for s in _statements(inner))
    return out


def _points(node: ast.AST) -> Iterator[tuple[str, str]]:
    """(op, description) for every mutation of this one node."""
    if isinstance(node, ast.Compare):
        for i, op in enumerate(node.ops):
            new = _CMP_SWAP.get(type(op))
            if new:
                yield f"cmp{i}", f"{_SYMBOL[type(op)]} -> {_SYMBOL[new]}"
    elif isinstance(node, ast.BinOp | ast.AugAssign):
        new = _BIN_SWAP.get(type(node.op))
        if new:
            eq = "=" if isinstance(node, ast.AugAssign) else ""
            yield "bin", f"{_SYMBOL[type(node.op)]}{eq} -> {_SYMBOL[new]}{eq}"
    elif isinstance(node, ast.BoolOp):
        other = "or" if isinstance(node.op, ast.And) else "and"
        yield "bool", f"{_SYMBOL[type(node.op)]} -> {other}"
    elif isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not | ast.USub):
        yield "unary", "drop " + ("not" if isinstance(node.op, ast.Not) else "unary minus")
    elif isinstance(node, ast.Constant):
        v = node.value
        if isinstance(v, bool):
            yield "const", f"{v} -> {not v}"
        elif isinstance(v, int | float):
            yield "const", f"{v!r} -> {v + 1!r}"
        elif isinstance(v, str):
            yield "const", f"{_clip(v)!r} -> {_clip('XX' + v + 'XX')!r}"
        elif isinstance(v, bytes):
            yield "const", f"{v[:20]!r} -> XX{v[:20]!r}XX"
    if isinstance(node, ast.Continue):
        yield "swapjump", "continue -> break"
    elif isinstance(node, ast.Break):
        yield "swapjump", "break -> continue"


def _clip(s: str, n: int = 40) -> str:
    return s if len(s) <= n else s[: n - 1] + "…"


def find_mutants(name: str, target: Target) -> list[Mutant]:
    source = (ROOT / target.module).read_text(encoding="utf-8")
    tree = ast.parse(source)
    skip = _skipped_nodes(tree, target.functions)
    deletable = _function_bodies(tree)
    parents = {id(c): p for p in ast.walk(tree) for c in ast.iter_child_nodes(p)}
    out: list[Mutant] = []
    for index, node in enumerate(ast.walk(tree)):
        if id(node) in skip:
            continue
        line = getattr(node, "lineno", None) or getattr(parents.get(id(node)), "lineno", 0)
        for op, change in _points(node):
            out.append(Mutant(name, len(out) + 1, index, op, line, change))
        if (
            isinstance(node, _DELETABLE)
            and id(node) in deletable
            and not (isinstance(node, ast.AnnAssign) and node.value is None)
            and not (isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant))
        ):
            text = ast.unparse(node).splitlines()[0]
            out.append(
                Mutant(
                    name, len(out) + 1, index, "delete", node.lineno, f"delete `{_clip(text, 60)}`"
                )
            )
    return out


def mutated_source(original: str, m: Mutant) -> str:
    tree = ast.parse(original)
    nodes = list(ast.walk(tree))
    node = nodes[m.node]
    parents = {id(c): p for p in nodes for c in ast.iter_child_nodes(p)}
    if m.op.startswith("cmp"):
        i = int(m.op[3:])
        assert isinstance(node, ast.Compare)
        node.ops[i] = _CMP_SWAP[type(node.ops[i])]()
    elif m.op == "bin":
        assert isinstance(node, ast.BinOp | ast.AugAssign)
        node.op = _BIN_SWAP[type(node.op)]()
    elif m.op == "bool":
        assert isinstance(node, ast.BoolOp)
        node.op = ast.Or() if isinstance(node.op, ast.And) else ast.And()
    elif m.op == "unary":
        assert isinstance(node, ast.UnaryOp)
        _replace(parents[id(node)], node, node.operand)
    elif m.op == "const":
        assert isinstance(node, ast.Constant)
        v = node.value
        if isinstance(v, bool):
            node.value = not v
        elif isinstance(v, int | float):
            node.value = v + 1
        elif isinstance(v, str):
            node.value = "XX" + v + "XX"
        else:
            node.value = b"XX" + v + b"XX"
    elif m.op == "swapjump":
        _replace(
            parents[id(node)],
            node,
            ast.Break() if isinstance(node, ast.Continue) else ast.Continue(),
        )
    elif m.op == "delete":
        _replace(parents[id(node)], node, ast.Pass())
    else:
        raise ValueError(m.op)
    return ast.unparse(ast.fix_missing_locations(tree)) + "\n"


def _replace(parent: ast.AST, old: ast.AST, new: ast.AST) -> None:
    for fname, value in ast.iter_fields(parent):
        if value is old:
            setattr(parent, fname, new)
            return
        if isinstance(value, list):
            for i, item in enumerate(value):
                if item is old:
                    value[i] = new
                    return
    raise LookupError("node not found in its parent")


# -- running -------------------------------------------------------------------------------------
def make_copy() -> Path:
    dst = Path(tempfile.mkdtemp(prefix="herald-mutation-"))
    ignore = shutil.ignore_patterns(
        ".venv",
        ".git",
        "__pycache__",
        "*.egg-info",
        ".pytest_cache",
        ".ruff_cache",
        "out",
        "mutants",
    )
    for entry in ROOT.iterdir():
        if entry.name in (".venv", ".git", "mutants") or entry.name.endswith(".egg-info"):
            continue
        if entry.is_symlink():
            os.symlink(os.readlink(entry), dst / entry.name)
        elif entry.is_dir():
            shutil.copytree(entry, dst / entry.name, ignore=ignore, symlinks=True)
        else:
            shutil.copy2(entry, dst / entry.name)
    return dst


def run_tests(workdir: Path, tests: list[str], timeout: float) -> tuple[str, float]:
    env = {**os.environ, "PYTHONPATH": str(workdir), "PYTHONDONTWRITEBYTECODE": "1"}
    t0 = time.monotonic()
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "pytest", *PYTEST_ARGS, *tests],
            cwd=workdir,
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
    except subprocess.TimeoutExpired:
        return "timeout", time.monotonic() - t0
    took = time.monotonic() - t0
    if proc.returncode == 0:
        return "survived", took
    if proc.returncode in (1, 2, 3):  # tests failed, interrupted (collection error), internal
        return "killed", took
    raise RuntimeError(f"pytest exited {proc.returncode}:\n{proc.stdout[-2000:]}")


def check_copy(workdir: Path) -> None:
    """The copy's modules, not the installed ones, are what the tests import."""
    env = {**os.environ, "PYTHONPATH": str(workdir), "PYTHONDONTWRITEBYTECODE": "1"}
    out = subprocess.run(
        [sys.executable, "-c", "import bot, storage; print(bot.__file__); print(storage.__file__)"],
        cwd=workdir,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    for f in out:
        if not Path(f).resolve().is_relative_to(workdir.resolve()):
            raise RuntimeError(f"the scratch copy imports {f}, not its own code")


def run(
    selected: list[str], mutants: list[Mutant], jobs: int
) -> tuple[dict[str, float], dict[str, list[str]]]:
    """Run the mutants on ``jobs`` workers; returns each target's baseline time and tests."""
    baselines: dict[str, float] = {}
    tests_for = {name: existing_tests(TARGETS[name]) for name in selected}
    work: queue.Queue[Mutant] = queue.Queue()
    for m in mutants:
        work.put(m)
    copies = [make_copy() for _ in range(max(1, jobs))]
    for c in copies:
        check_copy(c)
    # The unmutated module, rewritten the same way, must pass in the copy.
    for name in selected:
        t = TARGETS[name]
        tests = tests_for[name]
        path = copies[0] / t.module
        original = path.read_text(encoding="utf-8")
        path.write_text(ast.unparse(ast.parse(original)) + "\n", encoding="utf-8")
        status, took = run_tests(copies[0], tests, timeout=600)
        path.write_text(original, encoding="utf-8")
        if status != "survived":
            raise SystemExit(
                f"{name}: the tests fail without any mutation ({status}); fix that first"
            )
        baselines[name] = took
        print(f"{name}: baseline {took:.1f} s with {' '.join(tests)}", flush=True)
    lock = threading.Lock()
    done = [0]
    total = len(mutants)

    def worker(workdir: Path) -> None:
        while True:
            try:
                m = work.get_nowait()
            except queue.Empty:
                return
            t = TARGETS[m.target]
            path = workdir / t.module
            original = path.read_text(encoding="utf-8")
            try:
                path.write_text(mutated_source(original, m), encoding="utf-8")
                m.status, m.seconds = run_tests(
                    workdir, tests_for[m.target], timeout=max(60.0, 5 * baselines[m.target])
                )
            finally:
                path.write_text(original, encoding="utf-8")
            with lock:
                done[0] += 1
                if m.status == "survived":
                    print(f"  [{done[0]}/{total}] SURVIVED {describe(m)}", flush=True)
                elif done[0] % 25 == 0:
                    print(f"  [{done[0]}/{total}]", flush=True)

    threads = [threading.Thread(target=worker, args=(c,)) for c in copies]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    for c in copies:
        shutil.rmtree(c, ignore_errors=True)
    return baselines, tests_for


def existing_tests(t: Target) -> list[str]:
    return [x for x in t.tests if (ROOT / x).is_file()]


def describe(m: Mutant) -> str:
    return f"{TARGETS[m.target].module}:{m.line}  {m.target}:{m.number}  {m.change}"


@dataclass
class Summary:
    target: str
    tests: list[str]
    total: int
    killed: int
    survived: list[str] = field(default_factory=list)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("targets", nargs="*", help=f"some of: {', '.join(TARGETS)} (default: all)")
    ap.add_argument("-j", "--jobs", type=int, default=2, help="parallel workers (default 2)")
    ap.add_argument("--list", action="store_true", help="print the mutants and stop")
    ap.add_argument("--only", action="append", default=[], help="run only TARGET:NUMBER")
    ap.add_argument("--json", type=Path, help="also write the results here")
    args = ap.parse_args()

    only = {(o.split(":")[0], int(o.split(":")[1])) for o in args.only}
    selected = args.targets or sorted({t for t, _ in only}) or list(TARGETS)
    unknown = [t for t in selected if t not in TARGETS]
    if unknown:
        ap.error(f"unknown target(s) {unknown}; choose from {list(TARGETS)}")
    mutants = [m for name in selected for m in find_mutants(name, TARGETS[name])]
    if only:
        mutants = [m for m in mutants if (m.target, m.number) in only]
    if args.list:
        for m in mutants:
            print(describe(m))
        print(f"{len(mutants)} mutants")
        return
    # Make sure every mutant at least produces a module that compiles.
    for m in mutants:
        source = (ROOT / TARGETS[m.target].module).read_text(encoding="utf-8")
        compile(mutated_source(source, m), m.target, "exec")
    t0 = time.monotonic()
    baselines, tests_for = run(selected, mutants, args.jobs)
    summaries = []
    print()
    print(f"{'target':<15} {'killed':>7} {'total':>6} {'score':>7}   tests")
    for name in selected:
        ms = [m for m in mutants if m.target == name]
        killed = sum(m.status in ("killed", "timeout") for m in ms)
        s = Summary(name, tests_for[name], len(ms), killed)
        s.survived = [describe(m) for m in ms if m.status == "survived"]
        summaries.append(s)
        score = killed / len(ms) if ms else 1.0
        print(f"{name:<15} {killed:>7} {len(ms):>6} {score:>7.1%}   {' '.join(s.tests)}")
    survivors = [m for m in mutants if m.status == "survived"]
    if survivors:
        print("\nsurvivors:")
        for m in survivors:
            print("  " + describe(m))
    print(f"\n{len(mutants)} mutants in {time.monotonic() - t0:.0f} s")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(
            json.dumps(
                {
                    "baseline_seconds": baselines,
                    "summary": [asdict(s) for s in summaries],
                    "mutants": [asdict(m) for m in mutants],
                },
                indent=1,
            )
        )


if __name__ == "__main__":
    main()
