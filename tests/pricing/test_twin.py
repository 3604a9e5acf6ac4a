"""Kernels give the same numbers compiled by numba and as plain Python (QUANTLAB_DISABLE_NUMBA=1)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np

SCRIPT = r"""
import json, numpy as np
from quantlab.pricing import black76_greeks, bsm_greeks, implied_forward
rng = np.random.default_rng(5)
n = 40
F = rng.uniform(1000, 6000, n); K = F * np.exp(rng.uniform(-0.5, 0.5, n))
T = np.exp(rng.uniform(np.log(1 / 525600), np.log(2.0), n)); s = rng.uniform(0.05, 1.5, n)
c = rng.random(n) < 0.5
out = {k: v.tolist() for k, v in black76_greeks(F, K, T, s, 0.99, c).items()}
out |= {"bsm_" + k: v.tolist() for k, v in bsm_greeks(F, K, T, 0.04, 0.01, s, c).items()}
print(json.dumps(out))
"""


def _run(disable: bool) -> dict[str, list[float]]:
    env = dict(os.environ)
    env["QUANTLAB_DISABLE_NUMBA"] = "1" if disable else "0"
    res = subprocess.run(
        [sys.executable, "-c", SCRIPT], env=env, capture_output=True, text=True, check=True
    )
    return json.loads(res.stdout)


def test_numba_and_python_twins_agree() -> None:
    jitted, plain = _run(False), _run(True)
    assert jitted.keys() == plain.keys()
    for key in jitted:
        np.testing.assert_allclose(jitted[key], plain[key], rtol=1e-12, atol=1e-300, err_msg=key)
