"""piti: pretraining-based image-to-image translation on top of GLIDE."""

__version__ = "0.2.0"
