"""Tensor-parallel splitting: cut a full MindIR model into N rank models (Megatron layout).

    report = shardlite.split("net.mindir", 2, "out")      # out/net0.mindir, out/net1.mindir
    print(report)

The rank models carry their AllReduce/AllGather ops; run them as one process per rank (e.g. with
`shardlite launch -n 2 ...`). See docs/split.md for the strategies and limits.
"""

import json
import os
import sys

from . import _shardlite

__all__ = ["SplitReport", "WeightSplit", "load_strategy", "split"]


class WeightSplit:
    """How one weight was split: name, axis (None when replicated), role ("column", "row",
    "vocab", "with-layer" or "replicated"), bytes (full model) and rank_bytes (per rank)."""

    __slots__ = ("name", "axis", "role", "bytes", "rank_bytes")

    def __init__(self, name, axis, role, nbytes, rank_bytes):
        self.name = name
        self.axis = None if axis < 0 else axis
        self.role = role
        self.bytes = nbytes
        self.rank_bytes = list(rank_bytes)

    @property
    def split(self):
        return self.axis is not None

    def __repr__(self):
        how = f"split axis {self.axis} ({self.role})" if self.split else "replicated"
        return f"WeightSplit({self.name!r}, {how}, {self.bytes} bytes)"


class SplitReport:
    """What `split` did: the files written, each weight's split, the collectives per inference."""

    def __init__(self, raw):
        self.ranks = raw["ranks"]
        self.files = list(raw["files"])
        self.all_reduces = raw["all_reduces"]
        self.all_gathers = raw["all_gathers"]
        self.weights = [WeightSplit(w["name"], w["axis"], w["role"], w["bytes"], w["rank_bytes"])
                        for w in raw["weights"]]

    @property
    def total_bytes(self):
        return sum(w.bytes for w in self.weights)

    @property
    def sharded_bytes(self):
        """Bytes of the full model's weights that are split across the ranks."""
        return sum(w.bytes for w in self.weights if w.split)

    @property
    def sharded_share(self):
        return self.sharded_bytes / self.total_bytes if self.total_bytes else 0.0

    def rank_bytes(self, rank):
        """Weight bytes that rank `rank` holds."""
        return sum(w.rank_bytes[rank] for w in self.weights)

    def __str__(self):
        lines = [f"split into {self.ranks} ranks:"]
        lines += [f"  {f}" for f in self.files]
        width = max((len(w.name) for w in self.weights), default=4)
        lines.append("weights:")
        for w in self.weights:
            how = f"split axis {w.axis} ({w.role})" if w.split else "replicated"
            per = "/".join(_human(b) for b in w.rank_bytes)
            lines.append(f"  {w.name:<{width}}  {how:<26} {_human(w.bytes):>10}  per rank {per}")
        lines.append(f"sharded: {_human(self.sharded_bytes)} of {_human(self.total_bytes)} "
                     f"({100 * self.sharded_share:.1f}%)")
        lines.append("per rank: " + ", ".join(_human(self.rank_bytes(r))
                                              for r in range(self.ranks)))
        lines.append(f"collectives per inference: {self.all_reduces} AllReduce, "
                     f"{self.all_gathers} AllGather")
        return "\n".join(lines)

    __repr__ = __str__


def _human(n):
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n} B" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GiB"


def load_strategy(strategy):
    """Rules [(weight name, axis or -1)] from None/"auto", a strategy file's path, or a dict
    {"weights": {"<name>": {"split": axis} | "replicate"}}."""
    if strategy is None or strategy == "auto":
        return []
    if isinstance(strategy, (str, os.PathLike)):
        with open(strategy, encoding="utf-8") as f:
            strategy = json.load(f)
    if not isinstance(strategy, dict) or not isinstance(strategy.get("weights", {}), dict):
        raise ValueError('a strategy is {"weights": {"<name>": {"split": <axis>} | "replicate"}}')
    unknown = set(strategy) - {"weights"}
    if unknown:
        raise ValueError(f"unknown strategy keys: {', '.join(sorted(unknown))}")
    rules = []
    for name, how in strategy.get("weights", {}).items():
        if how == "replicate":
            rules.append((name, -1))
        elif (isinstance(how, dict) and set(how) == {"split"} and isinstance(how["split"], int)
              and not isinstance(how["split"], bool) and how["split"] >= 0):
            rules.append((name, how["split"]))
        else:
            raise ValueError(f'weight {name!r}: expected {{"split": <axis >= 0>}} or "replicate", '
                             f"got {how!r}")
    return rules


def split(model_path, n, out_dir, strategy=None, progress=None):
    """Cuts the model at model_path into n rank models written to
    out_dir/<stem><r>.mindir (with their <stem><r>_variables/ folders) and returns a
    SplitReport. strategy: None or "auto" (automatic), a JSON file's path or a dict (see
    load_strategy). progress: draw a progress bar on stderr for large models (default: when
    stderr is a terminal)."""
    if progress is None:
        progress = sys.stderr.isatty()
    rules = load_strategy(strategy)
    raw = _shardlite._split(os.fspath(model_path), int(n), os.fspath(out_dir), rules,
                            bool(progress))
    return SplitReport(raw)
