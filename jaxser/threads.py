"""How many threads CPU work uses: one per core, at most a few.

One home for the policy that training programs (`jaxser.train`), the study's training
workers (`jaxser.study.schedule`), openSMILE feature extraction
(`jaxser.encoders.handcrafted`) and corpus synthesis (`jaxser.corpora.synthetic`) share:
their items are independent and each keeps a core busy, so more threads than cores only
adds contention, and more than a few gains little on the small items they run.
"""
from __future__ import annotations

import os


def cpu_threads(limit: int = 4) -> int:
    """Threads for CPU work done one item per core: one per core, at most ``limit``."""
    return max(1, min(limit, os.cpu_count() or 1))
