"""Evaluations of trained models on tensors (no config, no paths).

Import from the modules (``from whitebox.evaluation.<module> import ...``): this package
file stays empty so that importing one module loads only what that module needs.
"""
