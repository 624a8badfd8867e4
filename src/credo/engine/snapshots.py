"""Parameters-only snapshots taken at evaluations: the latest few, and each seed's best.

checkpoints/params/eval-0007.npz   the learner's parameters of every seed at evaluation 7
checkpoints/params/best.npz        per seed, the parameters of its best evaluation so far

They are small (no optimiser state, no replay buffer) and are what ``credo eval RUN --snapshot``
loads. The full training state, for ``--resume``, is ``checkpoints/last.npz`` and its replay buffer.
Each file's meta holds, per seed, the evaluation's index, env steps and mean test return.
"""

from __future__ import annotations

import re
from pathlib import Path

import jax
import numpy as np

from credo.engine.checkpoint import CheckpointReadError, load_checkpoint, read_meta, save_checkpoint

DIR = "checkpoints/params"
BEST = "best"
_EVAL = re.compile(r"eval-(\d+)\.npz$")


def eval_name(index: int) -> str:
    """The file stem of evaluation ``index``'s snapshot: ``eval-0007`` for 7 (zero-padded so names sort)."""
    return f"eval-{index:04d}"


class ParamSnapshots:
    """Writes the snapshots of one run; ``keep`` is how many per-evaluation snapshots stay on disk."""

    def __init__(self, run_path: str | Path, keep: int):
        self.dir = Path(run_path) / DIR
        self.keep = keep
        self._best = None  # (params [seeds, ...] as NumPy, meta) once known

    def resume(self, n_evals: int) -> None:
        """Drops the snapshots of evaluations at or after ``n_evals`` (a resumed run redoes them) and
        reloads each seed's best so far; a damaged best.npz is set aside rather than trusted."""
        for path in self.dir.glob("eval-*.npz"):
            m = _EVAL.search(path.name)
            if m and int(m.group(1)) >= n_evals:
                path.unlink(missing_ok=True)
        best = self.dir / f"{BEST}.npz"
        if best.exists():
            try:
                meta = read_meta(best)
                if all(i < n_evals for i in meta.get("eval_index", [])):
                    self._best = (None, meta)  # params are read back when a seed improves
                else:  # its best came from an evaluation that will be redone: redo it too
                    best.unlink(missing_ok=True)
            except CheckpointReadError:
                best.replace(best.with_suffix(".damaged"))

    def record(self, index: int, params, env_steps: list[int], test_return: list[float]) -> None:
        """Saves evaluation ``index``'s snapshot, prunes older ones and updates best.npz."""
        params = jax.tree.map(lambda x: np.array(x, copy=True), params)  # not a view of donated buffers
        meta = {
            "eval_index": [index] * len(test_return),
            "env_steps": [int(s) for s in env_steps],
            "test_return": [float(r) for r in test_return],
        }
        if self.keep > 0:
            save_checkpoint(self.dir / f"{eval_name(index)}.npz", params, meta)
            for path in self.dir.glob("eval-*.npz"):
                m = _EVAL.search(path.name)
                if m and int(m.group(1)) <= index - self.keep:
                    path.unlink(missing_ok=True)
        self._update_best(params, meta)

    def _update_best(self, params, meta: dict) -> None:
        if self._best is None:
            self._best = (params, meta)
        else:
            best_params, best_meta = self._best
            better = [r > b for r, b in zip(meta["test_return"], best_meta["test_return"])]
            if not any(better):
                return
            if best_params is None:
                best_params = load_checkpoint(self.dir / f"{BEST}.npz", params, what="parameter snapshot")[0]
                best_params = jax.tree.map(np.asarray, best_params)
            pick = np.array(better)
            merged = jax.tree.map(
                lambda new, old: np.where(pick.reshape((-1,) + (1,) * (new.ndim - 1)), new, old),
                params,
                best_params,
            )
            merged_meta = {k: [n if b else o for n, o, b in zip(meta[k], best_meta[k], better)] for k in meta}
            self._best = (merged, merged_meta)
        save_checkpoint(self.dir / f"{BEST}.npz", *self._best)


def snapshot_path(run_path: str | Path, which: str) -> Path:
    """The file of snapshot ``which``: ``best``, ``eval-N`` (or ``N``), or ``latest`` (the newest eval-N)."""
    d = Path(run_path) / DIR
    if which == "latest":
        found = sorted((int(m.group(1)), p) for p in d.glob("eval-*.npz") if (m := _EVAL.search(p.name)))
        if not found:
            raise CheckpointReadError(
                f"{d} holds no evaluation snapshots (keep_snapshots=0, or no evaluation yet)."
            )
        return found[-1][1]
    if which == BEST:
        return d / f"{BEST}.npz"
    index = which.removeprefix("eval-")
    if not index.isdigit():
        raise CheckpointReadError(
            f"unknown snapshot {which!r}: use last (the training checkpoint), best, latest or eval-N."
        )
    return d / f"{eval_name(int(index))}.npz"
