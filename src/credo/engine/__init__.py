"""The training engine: jitted chunks of collect -> store -> update, vmapped seeds, runs on disk."""
