"""MNIST-C fog and spatter (spec C rows 11–12)."""
from __future__ import annotations

import torch

from corrbench.corruptions.convert import divide
from corrbench.corruptions.plasma import plasma_fractal, plasma_uniform_count
from corrbench.corruptions.spatter import _gaussian_float32, liquid_layer
from corrbench.mnistc.registry import SIDE, check_draws, register_digit, round_to_uint8

FOG_STRENGTH, FOG_DECAY, FOG_MAPSIZE = 3.0, 1.4, 256     # severity 5; plasma 256 cropped to 28
FOG_CHUNK = 64   # images per plasma batch: 64 × 256² float64 = 32 MB
SPATTER_MEAN, SPATTER_STD, SPATTER_BLUR, SPATTER_THRESHOLD, SPATTER_MUD_SIGMA = 0.65, 0.3, 1, 0.65, 1.5  # severity 4
MUD_GREY = 63  # the mud colour of the grey reference: 63/255


@register_digit("fog", stochastic=True, parameters="plasma fog (a 3.0, decay 1.4), map 256 cropped to 28",
                draws=f"plasma uniforms U[0,1), B×{plasma_uniform_count(FOG_MAPSIZE)}")
def fog(digits: torch.Tensor, *, generator: torch.Generator | None = None,
        draws: torch.Tensor | None = None) -> torch.Tensor:
    """x = u/255, M = max x; round(255·clip((x + 3·P[:28, :28])·M/(M + 3), 0, 1)), P from G7 per image."""
    b, count = digits.shape[0], plasma_uniform_count(FOG_MAPSIZE)
    if draws is not None:
        check_draws(draws, (b, count), "fog", "the plasma uniforms")
    outputs = []
    for start in range(0, b, FOG_CHUNK):
        piece = digits[start:start + FOG_CHUNK]
        uniforms = (torch.rand((piece.shape[0], count), generator=generator, device=generator.device,
                               dtype=torch.float64).to(digits.device) if draws is None
                    else draws[start:start + FOG_CHUNK].to(device=digits.device, dtype=torch.float64))
        plasma = plasma_fractal(uniforms, FOG_MAPSIZE, FOG_DECAY)[:, :SIDE, :SIDE]
        x = divide(piece.to(torch.float64), 255.0)
        peak = x.amax(dim=(1, 2), keepdim=True)
        x = x + FOG_STRENGTH * plasma
        outputs.append(round_to_uint8((x * peak / (peak + FOG_STRENGTH)).clamp_(0.0, 1.0) * 255.0))
    return torch.cat(outputs)


@register_digit("spatter", stochastic=True, parameters="mud spatter (.65, .3, blur 1, thr .65, σ 1.5), grey 63",
                draws="standard normals z, B×28×28 (the liquid draw is .65 + .3·z)")
def spatter(digits: torch.Tensor, *, generator: torch.Generator | None = None,
            draws: torch.Tensor | None = None) -> torch.Tensor:
    """Spec A.18 mud branch on one grey channel: L = G1(N(.65, .3), 1), L[L < .65] = 0;
    m = G1(float32(L > .65), 1.5) in float32, m[m < .8] = 0; round(255·clip(x·(1 − m) + (63/255)·m, 0, 1))
    with x = float32(u)/255, all in float32."""
    z = (torch.randn(digits.shape, generator=generator, device=generator.device, dtype=torch.float32)
         .to(device=digits.device, dtype=torch.float64)
         if draws is None else check_draws(draws, digits.shape, "spatter", "standard normals")
         .to(device=digits.device, dtype=torch.float64))
    liquid = liquid_layer(z, SPATTER_MEAN, SPATTER_STD, SPATTER_BLUR, SPATTER_THRESHOLD)
    m = _gaussian_float32((liquid > SPATTER_THRESHOLD).to(torch.float32), SPATTER_MUD_SIGMA)
    m = m.masked_fill_(m < torch.tensor(0.8, dtype=torch.float32), 0.0)
    colour = torch.tensor(MUD_GREY / 255.0, dtype=torch.float32, device=digits.device) * m
    x = divide(digits.to(torch.float32), 255.0) * (1 - m)
    return round_to_uint8((x + colour).clamp_(0.0, 1.0) * 255.0)
