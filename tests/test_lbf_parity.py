"""credo's LBF against the lbforaging package, step by step (see tests/lbf_parity.py).

Run on any other id with: pytest tests/test_lbf_parity.py --lbf-key Foraging-2s-12x12-3p-2f-coop-v3
"""

from lbf_parity import run_parity


def test_lbf_matches_lbforaging(lbf_parity_case, request):
    gym_id, kwargs = lbf_parity_case
    steps = request.config.getoption("--lbf-steps")
    counts = run_parity(gym_id, kwargs, steps=steps, seed=1)
    assert counts["steps"] == steps
    # The comparison must have exercised what it is meant to check.
    assert counts["episodes"] >= 1, counts
    assert counts["rewarded_steps"] >= 1, counts
