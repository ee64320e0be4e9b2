"""``tunegate demo``: the whole loop on the simulated service desk, end to end.

>>> from tunegate.demo import DemoConfig, run_demo
>>> result = run_demo(DemoConfig(out_dir="tunegate-demo", quick=True))  # doctest: +SKIP

See docs/demo.md for what each step does and the measured table of a full run.
"""

from __future__ import annotations

from tunegate.demo._pipeline import DemoConfig, DemoResult, run_demo
from tunegate.demo._table import KeyRow, key_table, render_key_table

__all__ = ["DemoConfig", "DemoResult", "KeyRow", "key_table", "render_key_table", "run_demo"]
