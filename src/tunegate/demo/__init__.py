"""``tunegate demo``: the whole loop end to end, on the simulated service desk (classification,
:func:`run_demo`) or on support answers (a generative fine-tune caught before it ships,
:func:`run_support_demo`).

>>> from tunegate.demo import DemoConfig, run_demo
>>> result = run_demo(DemoConfig(out_dir="tunegate-demo", quick=True))  # doctest: +SKIP

See docs/demo.md for what each step does and the measured table of a full run.
"""

from __future__ import annotations

from tunegate.demo._pipeline import DemoConfig, DemoResult, run_demo
from tunegate.demo._support import (
    SupportDemoConfig,
    SupportDemoResult,
    run_support_demo,
    support_table,
)
from tunegate.demo._table import KeyRow, key_table, render_key_table

__all__ = [
    "DemoConfig",
    "DemoResult",
    "KeyRow",
    "SupportDemoConfig",
    "SupportDemoResult",
    "key_table",
    "render_key_table",
    "run_demo",
    "run_support_demo",
    "support_table",
]
