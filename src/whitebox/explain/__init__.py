"""Explanations computed from a model and tensors: input-space gradients, also on noise, and
their quality metrics.

Import from the modules (``from whitebox.explain.<module> import ...``): this package
file stays empty so that importing one module loads only what that module needs.
"""
