"""Every test runs with one torch thread (restored after): the suite's tensors are
small, and on a 2-core machine intra-op threading of many tiny ops costs far more
than it gains (measured up to 25× slower for the alignment and graph tests)."""
from __future__ import annotations

import pytest
import torch


@pytest.fixture(autouse=True)
def _one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
