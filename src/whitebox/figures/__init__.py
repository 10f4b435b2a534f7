"""Matplotlib renderers (Agg backend) of images, gradients and filters."""

from whitebox.figures.grids import image_grid, save_filter_grid, save_gradient_figure

__all__ = ["image_grid", "save_filter_grid", "save_gradient_figure"]
