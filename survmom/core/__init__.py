"""The core: losses, metrics, EMA, memory bank, Momentum, networks, optimisers (torch + numpy only)."""
