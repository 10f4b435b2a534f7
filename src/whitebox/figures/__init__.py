"""Matplotlib renderers (Agg backend) of images, gradients, filters, slots and curves."""

from whitebox.figures.curves import save_slot_update_curve
from whitebox.figures.grids import image_grid, save_filter_grid, save_gradient_figure
from whitebox.figures.slots import save_noise_gradient_figure, save_slot_figure, slots_as_images

__all__ = ["image_grid", "save_filter_grid", "save_gradient_figure", "save_noise_gradient_figure",
           "save_slot_figure", "save_slot_update_curve", "slots_as_images"]
