"""Replay storage that lives in JAX arrays."""

from credo.buffers.episode import EpisodeBatch, EpisodeBuffer, buffer_add, buffer_init, buffer_sample

__all__ = ["EpisodeBatch", "EpisodeBuffer", "buffer_add", "buffer_init", "buffer_sample"]
