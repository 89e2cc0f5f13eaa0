"""survmom: deep survival models trained with a Momentum (MoCo-style) target network and memory bank."""

__version__ = "0.1.0"
