"""Statistics of the real AWS spot-availability traces, used to calibrate synthetic ones.

Measured on the traces described in PROBLEMS.md sections 2.4 and 3.4 (the traces
themselves are not shipped): for each environment the mean and the population standard
deviation, in ticks, of the lengths of the runs of available and of unavailable ticks.
Single-region figures come from the full 1,781-tick source trace of each environment
(10-minute ticks); multi-region figures from the 100 aligned 1,107-tick windows of each
region (195-second ticks), whose first spot price is averaged into `spot_price`.
"""

from __future__ import annotations

from dataclasses import dataclass

ON_DEMAND_PRICE = 3.06  # $/h, every environment (p3.2xlarge)
SPOT_PRICE = 0.9731  # $/h, every single-region environment (the reference's V100 price)
SINGLE_GAP_S = 600.0
SINGLE_TICKS = 554  # 92.3 h windows
MULTI_GAP_S = 195.0
MULTI_TICKS = 1107  # 60 h windows


@dataclass(frozen=True)
class RunStats:
    """An environment's alternating renewal process: run lengths in ticks."""

    up_mean: float
    up_std: float
    down_mean: float
    down_std: float
    spot_price: float = SPOT_PRICE

    @property
    def availability(self) -> float:
        """Long-run fraction of ticks with spot available."""
        return self.up_mean / (self.up_mean + self.down_mean)


SINGLE_REGION: dict[str, RunStats] = {
    "us-west-2a_k80_1": RunStats(39.512, 56.042, 1.952, 2.507),
    "us-west-2b_k80_1": RunStats(10.205, 22.457, 30.273, 99.791),
    "us-west-2a_v100_1": RunStats(13.742, 25.222, 6.341, 11.097),
    "us-west-2b_v100_1": RunStats(11.778, 18.397, 8.011, 12.323),
    "us-west-2a_k80_8": RunStats(10.955, 14.941, 8.956, 14.524),
    "us-west-2b_k80_8": RunStats(7.719, 11.105, 5.474, 11.057),
    "us-west-2a_v100_8": RunStats(4.148, 6.711, 8.336, 17.403),
    "us-west-2b_v100_8": RunStats(3.474, 4.752, 6.703, 17.073),
}

MULTI_REGION: dict[str, RunStats] = {
    "us-east-1a_v100_1": RunStats(13.534, 19.158, 57.203, 125.724, 1.6590),
    "us-east-1c_v100_1": RunStats(25.355, 52.009, 28.778, 44.641, 1.2913),
    "us-east-1d_v100_1": RunStats(31.015, 63.439, 33.987, 62.972, 1.2483),
    "us-east-1f_v100_1": RunStats(41.941, 78.028, 26.787, 46.314, 1.2776),
    "us-east-2a_v100_1": RunStats(87.484, 166.429, 30.597, 48.541, 0.9242),
    "us-east-2b_v100_1": RunStats(72.824, 116.694, 36.606, 52.109, 0.9238),
    "us-west-2a_v100_1": RunStats(118.624, 216.288, 12.477, 16.441, 0.9405),
    "us-west-2b_v100_1": RunStats(189.046, 303.797, 16.442, 22.218, 0.9437),
    "us-west-2c_v100_1": RunStats(134.312, 248.245, 12.870, 19.010, 0.9361),
}
