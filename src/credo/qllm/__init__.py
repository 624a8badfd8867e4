"""QLLM: credit functions (TFCAFs) written by a coder LLM, checked in a sandbox, chosen by an evaluator LLM.

``checks`` runs a TFCAF's checks; ``task`` writes the task prompt of an env;
``loop`` is the coder-evaluator loop; ``artifact`` reads and writes TFCAF files.
The trained mixer is ``credo.mixers.tfcaf``.
"""
