"""Training runs: a config becomes a run directory with metrics, checkpoints, plots and a summary.

The work happens in jitted chunks: a ``lax.scan`` over iterations of
(collect ``n_envs`` episodes -> store -> ``updates_per_iteration`` gradient steps),
vmapped over seeds. A thin Python loop between chunks evaluates, logs,
checkpoints and shows progress (evaluation is greedy or samples the policy, as
``test_greedy`` / ``test_epsilon`` say); none of that touches the training state, so a
run resumed from a checkpoint ends with exactly the parameters of an
uninterrupted one. Host envs (PettingZoo, gymnasium) run the same learner with
episodes collected in Python around jitted ``act`` and update functions.
"""

from __future__ import annotations

import contextlib
import math
import signal
import sys
import threading
import time
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

import credo.envs as envs
from credo.algos import make_learner
from credo.algos.common import RunConfig, eval_policy
from credo.buffers.episode import EpisodeBuffer, buffer_add, buffer_init, buffer_sample
from credo.engine import loggers, resources
from credo.engine.checkpoint import (
    load_checkpoint,
    read_meta,
    remove_stale_temporaries,
    save_checkpoint,
)
from credo.engine.collect import collect_host, has_win_flag, make_collector
from credo.engine.rundir import RunDir
from credo.engine.snapshots import ParamSnapshots

CHECKPOINT = "checkpoints/last.npz"  # the training state without its replay buffer, and the loop's meta
BUFFER = "checkpoints/buffer-{chunk:08d}.npz"  # the replay buffer of the checkpoint of that chunk


class TrainState(NamedTuple):
    """The training state of one seed; the trainer stacks the seeds' states on a leading axis.

    The stacked states are what a checkpoint saves (``checkpoints/last.npz``, the buffer in a file of
    its own) and ``--resume`` loads. ``env_steps`` and ``episodes`` are wide counters (``count_add``, ``count_value``).
    """

    learner: NamedTuple  # the learner's state (LearnerState, PPOState)
    buffer: EpisodeBuffer | None  # replay buffer of off-policy learners (None for on-policy ones)
    key: jax.Array  # uint32[2] raw PRNG key (serialisable)
    env_steps: jax.Array  # [2] int32: a wide counter (count_add, count_value)
    episodes: jax.Array  # [2] int32: a wide counter


# Env steps and episodes are counted in two int32 words, high and low (JAX computes in 32 bits
# unless x64 is on everywhere): high * 2**30 + low holds 2**61 steps, where one int32 overflowed
# after 2.1e9, a budget a GPU run can reach.
COUNT_BASE = 2**30


def count_zero() -> jax.Array:
    """A wide counter at zero: int32 ``[high, low]`` words (see ``COUNT_BASE``)."""
    return jnp.zeros(2, jnp.int32)


def count_add(count: jax.Array, n) -> jax.Array:
    """``count`` + ``n`` (``n`` < 2**30, one iteration's steps), carried into the high word."""
    low = count[..., 1] + n
    return jnp.stack([count[..., 0] + low // COUNT_BASE, low % COUNT_BASE], -1).astype(jnp.int32)


def count_float(count: jax.Array) -> jax.Array:
    """The count as a float32 (exact up to 2**24, then to float32's precision): for schedules."""
    return count[..., 0].astype(jnp.float32) * COUNT_BASE + count[..., 1].astype(jnp.float32)


def count_wrapped(count: jax.Array) -> jax.Array:
    """The count modulo 2**32 as an int32: differences of two counts less than 2**31 apart are
    exact (learners compare episodes seen with when the target was last copied)."""
    return count[..., 0] * COUNT_BASE + count[..., 1]  # int32 arithmetic wraps


def count_value(count) -> np.ndarray:
    """Host counts (``[..., 2]`` words) as int64."""
    c = np.asarray(count).astype(np.int64)
    return c[..., 0] * COUNT_BASE + c[..., 1]


class TrainingDiverged(ValueError):
    """A run whose loss or parameters turned NaN or inf; the message names the seed, the step and the likely cause."""


@jax.jit
def _all_finite(params):
    """[seeds] bool: every parameter of the seed is finite (``params`` has a leading seed axis); None if none."""
    leaves = [x.reshape(x.shape[0], -1) for x in jax.tree.leaves(params) if x.size]
    return jnp.stack([jnp.isfinite(x).all(1) for x in leaves]).all(0) if leaves else None


class Trainer:
    """Trains ``cfg.seeds`` seeds of a learner on one env.

    Off-policy (value-based) learners store the collected episodes in a replay
    buffer and learn from samples of it; on-policy learners (``learner.on_policy``,
    PPO) learn from each fresh batch of episodes, with whatever else their
    ``recorder`` asks the collector to keep (per-agent rewards, oracle graphs).
    """

    def __init__(self, cfg: RunConfig):
        loggers.check(cfg.logger)  # an unknown or uninstalled backend fails before anything is built
        self.cfg = cfg
        self.env = envs.make(cfg.env, **cfg.env_kwargs)
        self.spec = self.env.spec
        self.learner = make_learner(cfg, self.spec, self.env)
        self.seeds = [cfg.seed + i for i in range(cfg.seeds)]
        steps_per_iteration = cfg.n_envs * self.spec.episode_limit  # at most
        self.iters_per_chunk = max(1, math.ceil(cfg.log_interval / steps_per_iteration))
        self.is_jax = self.env.is_jax
        self.with_won = has_win_flag(self.env) if self.is_jax else "won" in self.env.reset(seed=0).info
        self.on_policy = getattr(self.learner, "on_policy", False)
        self._snapshots: ParamSnapshots | None = None  # the running run's parameter snapshots (run())
        # Evaluation acts greedily or as in training (cfg.test_greedy, cfg.test_epsilon).
        self.eval_greedy, self.eval_epsilon = eval_policy(cfg, self.learner)
        self._record = self.learner.recorder(self.env) if self.on_policy else None
        if not self.on_policy and cfg.batch_size > cfg.buffer_size:
            raise ValueError(f"batch_size ({cfg.batch_size}) cannot exceed buffer_size ({cfg.buffer_size}).")
        # Seeds are a vmap axis, sharded over the local devices (GPUs, or CPU cores
        # exposed as host devices by the CLI: XLA runs small matmuls on one thread).
        # (jit with a sharded seed axis, not pmap: under pmap XLA copied the replay
        # buffer on every iteration, 8x slower.)
        self.n_devices = math.gcd(len(self.seeds), jax.local_device_count()) if self.is_jax else 1
        mesh = Mesh(np.array(jax.local_devices()[: self.n_devices]), ("seed",))
        self._sharding = NamedSharding(mesh, PartitionSpec("seed"))
        if self.is_jax:
            self._collect = make_collector(self.env, self.learner, cfg.n_envs, record=self._record)
            shard = self._sharding
            self._chunk = jax.jit(
                jax.vmap(self._chunk_fn), in_shardings=shard, out_shardings=shard, donate_argnums=0
            )
            self._evaluate = jax.jit(jax.vmap(self._eval_fn), in_shardings=shard, out_shardings=shard)
        else:
            self._host_envs = [
                [envs.make(cfg.env, **cfg.env_kwargs) for _ in range(cfg.n_envs)] for _ in self.seeds
            ]
            self._act = jax.jit(self.learner.act, static_argnames="greedy")
            self._store_and_update = jax.jit(jax.vmap(self._store_and_update_fn))

    # --- state ----------------------------------------------------------------------

    def init_state(self) -> TrainState:
        """Initial state of every seed, stacked on a leading seed axis (initialised outside vmap).

        One jitted program initialises a seed and another stacks them: run eagerly, the
        networks' initialisers compiled dozens of one-operation programs (15 s for QMIX on LBF
        on 2 cores, at the start of every run; 1.5 s jitted). Same values as eager.
        """

        def one(seed_key):
            k_init, k_run = jax.random.split(seed_key)
            buffer = None if self.on_policy else buffer_init(self.spec, self.cfg.buffer_size)
            return TrainState(self.learner.init(k_init), buffer, k_run, count_zero(), count_zero())

        init = jax.jit(one)
        states = [init(jax.random.PRNGKey(seed)) for seed in self.seeds]
        return jax.jit(lambda xs: jax.tree.map(lambda *leaves: jnp.stack(leaves), *xs))(states)

    def to_devices(self, tree):
        """Places a [seeds, ...] tree with its seed axis sharded over the devices."""
        return jax.device_put(tree, self._sharding) if self.is_jax else tree

    @staticmethod
    def from_devices(tree):
        """The tree as NumPy arrays on the host."""
        return jax.tree.map(np.asarray, tree)

    def epsilon(self, env_steps):
        """The exploration rate at ``env_steps`` (a wide count, ``[..., 2]``; NaN for learners that
        explore otherwise)."""
        cfg = self.cfg
        if not self.learner.explores_with_epsilon:
            return jnp.full(jnp.shape(env_steps)[:-1], jnp.nan, jnp.float32)
        frac = jnp.minimum(count_float(env_steps) / max(cfg.epsilon_anneal_steps, 1), 1.0)
        return cfg.epsilon_start + (cfg.epsilon_finish - cfg.epsilon_start) * frac

    # --- one seed, pure -------------------------------------------------------------

    def _train_on_buffer(self, learner, buffer: EpisodeBuffer, key, episodes):
        cfg = self.cfg

        def one(ls, k):
            batch = buffer_sample(buffer, k, cfg.batch_size)
            return self.learner.update(ls, batch, episodes, jax.random.fold_in(k, 1))

        def train(ls):
            ls, metrics = jax.lax.scan(one, ls, jax.random.split(key, cfg.updates_per_iteration))
            return ls, jax.tree.map(jnp.mean, metrics)

        shapes = jax.eval_shape(train, learner)[1]
        skip = lambda ls: (ls, jax.tree.map(lambda s: jnp.full(s.shape, jnp.nan, s.dtype), shapes))  # noqa: E731
        return jax.lax.cond(buffer.count >= cfg.batch_size, train, skip, learner)

    def _iteration(self, ts: TrainState, _):
        key, k_collect, k_update = jax.random.split(ts.key, 3)
        eps = self.epsilon(ts.env_steps)
        collected = self._collect(ts.learner.params, k_collect, eps)
        ts, metrics = self._learn(ts, collected, key, k_update)
        return ts, (collected[1], metrics, eps)

    def _learn(self, ts: TrainState, collected, key, k_update):
        """Learns from one collected batch: (batch, stats[, recorded])."""
        batch, stats = collected[0], collected[1]
        episodes = count_add(ts.episodes, self.cfg.n_envs)
        if self.on_policy:
            learner, metrics = self.learner.update(ts.learner, batch, collected[2], k_update)
            buffer = None
        else:
            buffer = buffer_add(ts.buffer, batch)
            learner, metrics = self._train_on_buffer(ts.learner, buffer, k_update, count_wrapped(episodes))
        new = TrainState(learner, buffer, key, count_add(ts.env_steps, stats.lengths.sum()), episodes)
        return new, metrics

    def _chunk_fn(self, ts: TrainState):
        return jax.lax.scan(self._iteration, ts, None, length=self.iters_per_chunk)

    def _eval_fn(self, params, key):
        collect = make_collector(self.env, self.learner, self.cfg.test_episodes, greedy=self.eval_greedy)
        _, stats = collect(params, key, self.eval_epsilon)
        return stats

    def _store_and_update_fn(self, ts: TrainState, collected):
        key, k_update = jax.random.split(ts.key)
        return self._learn(ts, collected, key, k_update)

    # --- host envs ------------------------------------------------------------------

    def _host_collect(self, params, eps, key, envs_, greedy=False, evaluation=False):
        """One episode per host env; the envs' reset seeds are drawn from ``key``."""
        k_seeds, k_act = jax.random.split(key)
        seeds = np.asarray(jax.random.randint(k_seeds, (len(envs_),), 0, 2**31 - 1)).tolist()
        record = None if evaluation else self._record
        return collect_host(
            envs_, self.learner, self._act, params, k_act, eps, seeds, greedy=greedy, record=record
        )

    def _host_chunk(self, ts: TrainState):
        outs = []
        for _ in range(self.iters_per_chunk):
            collected_all, eps_all = [], []
            for i in range(len(self.seeds)):
                params = jax.tree.map(lambda x, i=i: x[i], ts.learner.params)
                eps = float(self.epsilon(ts.env_steps[i]))
                key = jax.random.fold_in(ts.key[i], 1)  # ts.key advances every iteration
                collected_all.append(self._host_collect(params, eps, key, self._host_envs[i]))
                eps_all.append(eps)
            collected = jax.tree.map(lambda *xs: jnp.asarray(np.stack(xs)), *collected_all)
            ts, metrics = self._store_and_update(ts, collected)
            stats = jax.tree.map(np.asarray, collected[1])
            outs.append((stats, metrics, np.array(eps_all)))
        # Same layout as the jitted chunk: [seed, iteration, ...].
        stacked = jax.tree.map(lambda *xs: np.stack(xs, 1), *outs)
        return ts, stacked

    def _host_evaluate(self, params, key):
        out = []
        for i in range(len(self.seeds)):
            p = jax.tree.map(lambda x, i=i: x[i], params)
            n, results = self.cfg.test_episodes, []
            envs_ = self._host_envs[i]
            for start in range(0, n, len(envs_)):
                m = min(len(envs_), n - start)
                _, stats = self._host_collect(
                    p,
                    self.eval_epsilon,
                    jax.random.fold_in(key[i], start),
                    envs_[:m],
                    greedy=self.eval_greedy,
                    evaluation=True,
                )
                results.append(stats)
            out.append(jax.tree.map(lambda *xs: np.concatenate(xs), *results))
        return jax.tree.map(lambda *xs: np.stack(xs), *out)

    # --- the loop -------------------------------------------------------------------

    def evaluate(self, params, index: int):
        """Evaluation episodes on separate env copies, from device-layout ``params``.

        Greedy, or sampled as in training, as ``cfg.test_greedy`` / ``cfg.test_epsilon`` say.

        Never touches the training state; ``index`` picks the evaluation's keys.
        """
        keys = jnp.stack([jax.random.fold_in(jax.random.PRNGKey(s + 7_919), index) for s in self.seeds])
        if self.is_jax:
            return self.from_devices(self._evaluate(params, self.to_devices(keys)))
        return self._host_evaluate(params, keys)

    def run(
        self,
        run_dir: RunDir,
        state: TrainState | None = None,
        meta: dict | None = None,
        *,
        max_chunks: int | None = None,
        progress: bool = True,
    ) -> dict | None:
        """Trains until ``total_env_steps``; returns the summary (None if stopped by ``max_chunks``).

        ``state`` is a flat ``[seeds, ...]`` state (from ``init_state`` or ``load``).
        ``max_chunks`` stops early after that many chunks, with a checkpoint, as an
        interruption would (used by tests and for time-boxed jobs).
        """
        cfg = self.cfg
        resources.warn(self.check_resources(run_dir.path / "checkpoints"))
        if state is None:
            state = self.init_state()
            meta = {
                "chunk": 0,
                "next_test": 0,
                "next_save": cfg.save_interval,
                "evals": [],
                "train_seconds": 0.0,
                "train_steps": 0,
                "compile_seconds": 0.0,
            }
        run_dir.start(cfg, meta["chunk"], len(meta["evals"]), len(self.seeds))
        remove_stale_temporaries(run_dir.path / "checkpoints")  # left by a process killed while saving
        self._snapshots = ParamSnapshots(run_dir.path, cfg.keep_snapshots)
        self._snapshots.resume(len(meta["evals"]))
        try:
            with _stop_after_chunk() as self._stop_requested:
                return self._run(run_dir, state, meta, max_chunks, progress)
        finally:
            run_dir.close()

    def _run(self, run_dir: RunDir, state: TrainState, meta: dict, max_chunks, progress) -> dict | None:
        cfg = self.cfg
        chunk_fn = self._chunk if self.is_jax else self._host_chunk
        # The device copy is the truth (donated to each chunk); only counters come
        # back each chunk, the whole state (replay buffer included) only for checkpoints.
        dev = self.to_devices(state)
        steps = count_value(self.from_devices(dev.env_steps))
        bar = _progress(cfg.total_env_steps, int(steps.min()), progress, f"{cfg.algo} {cfg.env}")
        first, chunks_here = True, 0
        try:
            while int(steps.min()) < cfg.total_env_steps:
                if int(steps.min()) >= meta["next_test"]:
                    self._record_eval(dev, meta, run_dir)
                t0 = time.perf_counter()
                dev, out = chunk_fn(dev)
                new_steps = count_value(self.from_devices(dev.env_steps))  # waits for the chunk
                elapsed = time.perf_counter() - t0
                prev, steps_done, steps = steps, int(np.sum(new_steps - steps)), new_steps
                meta["chunk"] += 1
                chunks_here += 1
                if first:  # the first chunk of a process includes compilation
                    meta["compile_seconds"] += elapsed
                    first = False
                else:
                    meta["train_seconds"] += elapsed
                    meta["train_steps"] += steps_done
                rate = meta["train_steps"] / meta["train_seconds"] if meta["train_seconds"] else float("nan")
                out = self.from_devices(out)
                run_dir.write_chunk(
                    meta["chunk"],
                    steps,
                    count_value(self.from_devices(dev.episodes)),
                    out,
                    rate,
                    self.with_won,
                )
                self._stop_if_diverged(out[1], dev, meta["chunk"], prev, steps)
                if int(steps.min()) >= meta["next_save"]:
                    self.save(run_dir, dev, meta)
                    while meta["next_save"] <= int(steps.min()):
                        meta["next_save"] += cfg.save_interval
                last = meta["evals"][-1] if meta["evals"] else None
                bar.update(int(steps.min()) - bar.n)
                bar.set_postfix_str(
                    f"test {np.mean(last['test_return']):.3g} | {rate:,.0f} steps/s"
                    if last
                    else f"{rate:,.0f} steps/s"
                )
                if max_chunks is not None and chunks_here >= max_chunks:
                    self.save(run_dir, dev, meta)
                    bar.close()
                    return None
                if self._stop_requested():  # Ctrl-C or SIGTERM: the chunk finished, its state is whole
                    bar.close()
                    self.save(run_dir, dev, meta)
                    print(
                        f"\ninterrupted: saved {run_dir.path / CHECKPOINT} at {int(steps.min()):,} env steps; "
                        f"continue with: credo train --resume {run_dir.path}",
                        file=sys.stderr,
                    )
                    raise KeyboardInterrupt
        except KeyboardInterrupt:
            bar.close()
            if not self._stop_requested():  # a second Ctrl-C abandoned the chunk: its state was donated to it
                print(
                    f"\ninterrupted inside a chunk: nothing saved; the last checkpoint is {run_dir.path / CHECKPOINT} "
                    f"(if any); continue with: credo train --resume {run_dir.path}",
                    file=sys.stderr,
                )
            raise
        bar.close()
        if not meta["evals"] or meta["evals"][-1]["chunk"] != meta["chunk"]:
            self._record_eval(dev, meta, run_dir)
        self.save(run_dir, dev, meta)
        return run_dir.finish(self, steps, meta)

    def _stop_if_diverged(self, metrics: dict, dev: TrainState, chunk: int, before, after) -> None:
        """Raises ``TrainingDiverged`` if a seed's loss turned NaN or inf in this chunk, or its parameters.

        ``metrics``: the chunk's host metrics, ``[seed, iteration]`` each. An iteration without an
        update (the replay buffer still below ``batch_size``) reports NaN for every metric; a loss that
        is NaN while another metric of the same iteration is finite, a loss that is inf, or a
        parameter that is not finite means the update went wrong. Nothing is saved: the last
        checkpoint holds the last good state.
        """
        finite = _all_finite(dev.learner.params) if hasattr(dev.learner, "params") else None
        finite = np.ones(len(self.seeds), bool) if finite is None else np.asarray(finite)
        rows = {k: _per_iteration(v) for k, v in metrics.items()}  # [seed, iteration, values]
        losses = {k: v for k, v in rows.items() if "loss" in k}
        if not losses and finite.all():
            return
        ran = None  # [seed, iteration]: an update happened (some other metric is finite)
        for k, v in rows.items():
            if k not in losses:
                ran = np.isfinite(v).any(-1) if ran is None else ran | np.isfinite(v).any(-1)
        for i, seed in enumerate(self.seeds):
            bad = [k for k, v in losses.items() if np.isinf(v[i]).any()]
            bad += [
                k for k, v in losses.items() if ran is not None and (np.isnan(v[i]).any(-1) & ran[i]).any()
            ]
            if not bad and finite[i]:
                continue
            if not finite[i]:  # every loss that is not finite went with them (no update tells them apart)
                bad += [k for k, v in losses.items() if not np.isfinite(v[i]).all()] + ["parameters"]
            what = f"the {' and '.join(dict.fromkeys(bad))} of seed {seed} became NaN or inf"
            mixer = getattr(self.cfg, "mixer", None)
            cause = (
                "the TFCAF credit function (--set tfcaf=...) returning NaN or inf at the training batch "
                "size, or a learning rate (lr) too high"
                if mixer == "tfcaf"
                else "a learning rate (lr) too high, rewards of a very large scale, or a custom mixer or env "
                "producing NaN or inf"
            )
            raise TrainingDiverged(
                f"training stopped: {what} in chunk {chunk}, between env steps {int(before[i]):,} and "
                f"{int(after[i]):,}. The last checkpoint (if any) is from before; no summary was written. "
                f"Likely cause: {cause}."
            )

    def _record_eval(self, dev: TrainState, meta: dict, run_dir: RunDir) -> None:
        stats = self.evaluate(dev.learner.params, len(meta["evals"]))
        steps = count_value(self.from_devices(dev.env_steps))
        returns = np.asarray(stats.returns)  # [seeds, test_episodes]
        entry = {
            "chunk": meta["chunk"],
            "env_steps": steps.tolist(),
            "test_return": returns.mean(1).tolist(),
            "test_length": np.asarray(stats.lengths).mean(1).tolist(),
        }
        # Per-episode results go to the metrics rows only: meta (the checkpoint's JSON) keeps the means.
        episodes = {"test_episode_returns": [[float(f"{x:.6g}") for x in r] for r in returns.tolist()]}
        if self.with_won:
            entry["test_won"] = np.asarray(stats.won).mean(1).tolist()
            episodes["test_episode_won"] = np.asarray(stats.won).astype(int).tolist()
        meta["evals"].append(entry)
        run_dir.write_eval(entry, len(meta["evals"]) - 1, episodes)
        if self._snapshots is not None:
            self._snapshots.record(
                len(meta["evals"]) - 1, dev.learner.params, entry["env_steps"], entry["test_return"]
            )
        while meta["next_test"] <= int(steps.min()):
            meta["next_test"] += self.cfg.test_interval

    def save(self, run_dir: RunDir, dev: TrainState, meta: dict) -> None:
        """Checkpoints the [seeds, ...] state as NumPy arrays (loads whatever the device count).

        The replay buffer goes to its own file, named after the chunk, written before
        ``last.npz`` names it: a crash between the two leaves the previous pair whole. Older
        buffer files are deleted once the new ``last.npz`` is in place.
        """
        host = self.from_devices(dev)
        meta = dict(meta)
        if host.buffer is not None:
            buffer = run_dir.path / BUFFER.format(chunk=meta["chunk"])
            save_checkpoint(buffer, host.buffer, {"chunk": meta["chunk"]})
            meta["buffer_file"] = buffer.name
        save_checkpoint(run_dir.path / CHECKPOINT, host._replace(buffer=None), meta)
        for old in (run_dir.path / "checkpoints").glob("buffer-*.npz"):
            if old.name != meta.get("buffer_file"):
                old.unlink(missing_ok=True)

    def load(self, run_dir: RunDir, *, with_buffer: bool = True) -> tuple[TrainState, dict]:
        """The checkpointed state and meta; ``with_buffer=False`` leaves the replay buffer out (None)."""
        template = jax.eval_shape(self.init_state)
        last, fix = run_dir.path / CHECKPOINT, _restart_hint(run_dir)
        if template.buffer is None or read_meta(last, fix=fix).get("format", 1) == 1:  # format 1: one file
            state, meta = load_checkpoint(last, template, fix=fix, upgrade=_widen_counters)
            return (state if with_buffer else state._replace(buffer=None)), meta
        state, meta = load_checkpoint(last, template._replace(buffer=None), fix=fix, upgrade=_widen_counters)
        if not with_buffer:
            return state, meta
        buffer, _ = load_checkpoint(
            last.parent / meta.get("buffer_file", "buffer-missing.npz"),
            template.buffer,
            what="replay buffer",
            fix=f"move {last.parent} away: `credo train --resume {run_dir.path}` then starts the run again "
            "from the beginning",
        )
        return state._replace(buffer=buffer), meta

    def check_resources(self, checkpoint_dir=None) -> list[str]:
        """Raises ``resources.ResourceError`` if the training state cannot fit in memory or in
        ``checkpoint_dir``'s free disk space; returns warnings for what fits only narrowly."""
        from credo.engine import resources

        return resources.check(
            self.memory_plan(),
            n_devices=self.n_devices,
            devices=jax.local_devices(),
            checkpoint_dir=checkpoint_dir,
        )

    def memory_plan(self) -> dict:
        """Bytes the training state needs: ``state`` (all seeds, replay buffer included), ``buffer``."""
        shapes = jax.eval_shape(self.init_state)
        size = lambda tree: sum(int(np.prod(x.shape)) * x.dtype.itemsize for x in jax.tree.leaves(tree))  # noqa: E731
        return {"state": size(shapes), "buffer": size(shapes.buffer) if shapes.buffer is not None else 0}


def _widen_counters(name: str, saved: np.ndarray, shape: tuple) -> np.ndarray | None:
    """Checkpoints written before 2026-12-02 counted env steps and episodes in one int32 per seed."""
    if name in ("env_steps", "episodes") and saved.shape + (2,) == tuple(shape):
        return np.stack([saved // COUNT_BASE, saved % COUNT_BASE], -1).astype(np.int32)
    return None


def _restart_hint(run_dir: RunDir) -> str:
    return f"move it away: `credo train --resume {run_dir.path}` then starts the run again from the beginning"


@contextlib.contextmanager
def _stop_after_chunk():
    """While training, the first Ctrl-C or SIGTERM asks for a stop after the chunk in progress.

    The chunk's input state is donated to it (its buffers are reused for the output), so an
    exception raised inside it would leave nothing to save. The first signal sets a flag the loop
    checks after each chunk (it then saves and stops); a second Ctrl-C raises at once and abandons
    the chunk, keeping the last checkpoint. Yields the flag's reader; off the main thread (where
    handlers cannot be installed) signals keep their default behaviour.
    """
    requested = threading.Event()
    if threading.current_thread() is not threading.main_thread():
        yield requested.is_set
        return

    def handler(signum, frame):
        if requested.is_set() and signum == signal.SIGINT:
            signal.signal(signal.SIGINT, previous[signal.SIGINT])
            raise KeyboardInterrupt
        requested.set()
        print("\nstopping after this chunk to save it (Ctrl-C again to abandon it)", file=sys.stderr)

    previous = {}
    for sig in (signal.SIGINT, signal.SIGTERM):
        if signal.getsignal(sig) is signal.SIG_IGN:
            continue  # ignored on purpose (nohup, a worker that must not be interrupted): keep it so
        previous[sig] = signal.signal(sig, handler)
    try:
        yield requested.is_set
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def _per_iteration(values) -> np.ndarray:
    """A chunk's metric (``[seed]``, ``[seed, iteration]`` or ``[seed, iteration, ...]``) as ``[seed, iteration, k]``."""
    v = np.asarray(values, dtype=float)
    return v.reshape(v.shape[0], 1, -1) if v.ndim < 2 else v.reshape(v.shape[0], v.shape[1], -1)


def _progress(total: int, initial: int, enabled: bool, desc: str):
    from tqdm.auto import tqdm

    return tqdm(
        total=total,
        initial=initial,
        disable=not enabled,
        unit="step",
        unit_scale=True,
        desc=desc,
        dynamic_ncols=True,
    )


def params_digest(state: TrainState) -> str:
    """A short hash of the learner parameters (to compare runs)."""
    import hashlib

    h = hashlib.sha256()
    for leaf in jax.tree.leaves(state.learner.params):
        h.update(np.asarray(leaf).tobytes())
    return h.hexdigest()[:16]
