"""mixexp: mixup experiments on one command line (SEM, LaMix and test-time rescaling tables)."""

__version__ = "0.2.0"
