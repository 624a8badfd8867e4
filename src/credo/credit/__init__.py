"""Credit signals shared by learners: TD(lambda) targets (more to come: GAE, multi-agent GAE)."""

from credo.credit.td import td_lambda_targets

__all__ = ["td_lambda_targets"]
