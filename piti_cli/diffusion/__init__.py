"""Gaussian diffusion for PITI/GLIDE: schedules, the process, respacing, samplers,
classifier-free guidance, training losses and timestep samplers.

Imports no network code: a network enters as a *denoiser* closure
``(x_t [B,C,H,W], t [B] float on the 0..1000 scale) -> [B,2C,H,W] or [B,C,H,W]``.
Import from the modules themselves (`piti_cli.diffusion.respace`, `.samplers`, ...).
"""
