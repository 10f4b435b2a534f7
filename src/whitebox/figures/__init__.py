"""Matplotlib renderers (Agg backend) of images, gradients, filters, slots and curves.

Import from the modules (``from whitebox.figures.<module> import ...``): this package
file stays empty so that importing one module loads only what that module needs.
"""
