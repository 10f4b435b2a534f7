"""Matplotlib renderers (Agg backend) of images, gradients, filters, slots and curves."""

from whitebox.figures.curves import save_slot_update_curve
from whitebox.figures.grids import FIGURE_INFO_KEY, image_grid, save_filter_grid, save_gradient_figure
from whitebox.figures.kernels import save_kernel_views_figure, strongest_kernels
from whitebox.figures.slots import save_noise_gradient_figure, save_slot_figure, slots_as_images
from whitebox.figures.units import UnitGridRow, save_unit_grid_figure, unit_class_blocks

__all__ = ["FIGURE_INFO_KEY", "UnitGridRow", "image_grid", "save_filter_grid", "save_gradient_figure",
           "save_kernel_views_figure", "save_noise_gradient_figure", "save_slot_figure",
           "save_slot_update_curve", "save_unit_grid_figure", "slots_as_images", "strongest_kernels",
           "unit_class_blocks"]
