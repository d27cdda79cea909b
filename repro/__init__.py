"""repro: memory-augmented autoencoders for video anomaly detection, reproduced and ablated."""

__version__ = "0.1.0"
