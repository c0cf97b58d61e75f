"""Autoscaler: choose the capacity for the next tick from the load seen so far."""

# EVOLVE-BLOCK-START
WINDOW = 1
HEADROOM = 1.0
MARGIN = 0.0


def provision(history: list[float]) -> float:
    """Return the capacity (requests per tick) to provision for the next tick."""
    if not history:
        return 10.0
    recent = history[-WINDOW:]
    level = sum(recent) / len(recent)
    return level * HEADROOM + MARGIN
# EVOLVE-BLOCK-END
