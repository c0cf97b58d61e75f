"""The trusted load simulator: how evenly a placement spreads a window's load.

A replica carries its expert's load divided by the expert's replica count; a GPU carries
the sum of its slots (slots are numbered GPU-major, `slots_per_gpu` consecutive slots per
GPU). Balancedness over a window is sum over layers of the mean load divided by sum over
layers of the max load (a ratio of sums, so heavy layers weigh more); 1.0 is perfect.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

Ints = NDArray[np.int64]
Floats = NDArray[np.float64]


@dataclass(frozen=True)
class Balance:
    """Balancedness of one placement on one window, at GPU and at slot level."""

    gpu: float
    slot: float
    hottest_layer: int  # the layer whose busiest GPU is furthest above its mean


def slot_loads(load: Ints, phy2log: Ints, logcnt: Ints) -> Floats:
    """Load of every physical slot [layers, slots] of a validated placement."""
    per_replica = load / logcnt
    return np.take_along_axis(per_replica, phy2log, axis=-1)


def balancedness(loads: Floats) -> float:
    """sum_l mean(loads[l]) / sum_l max(loads[l]); 1.0 when nothing is loaded."""
    peak = float(loads.max(axis=-1).sum())
    return 1.0 if peak == 0.0 else float(loads.mean(axis=-1).sum()) / peak


def measure(load: Ints, phy2log: Ints, logcnt: Ints, num_gpus: int) -> Balance:
    """GPU- and slot-level balancedness of a placement on the window `load`."""
    slots = slot_loads(load, phy2log, logcnt)
    gpus = slots.reshape(slots.shape[0], num_gpus, -1).sum(-1)
    excess = gpus.max(-1) - gpus.mean(-1)
    return Balance(gpu=balancedness(gpus), slot=balancedness(slots),
                   hottest_layer=int(np.argmax(excess)))
