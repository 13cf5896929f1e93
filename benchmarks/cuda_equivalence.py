"""CPU ≡ CUDA byte comparison of every corruption, -P sequence and MNIST-C corruption, with the same draws.

    python benchmarks/cuda_equivalence.py                    # on a CUDA machine: CPU vs CUDA
    python benchmarks/cuda_equivalence.py --device cpu       # anywhere: CPU vs CPU (must be all equal)
    python benchmarks/cuda_equivalence.py --quick            # fewer images, cifar scale only

Every op runs twice on the same uint8 images: once on the CPU, once on `--device`, both drawing from a
CPU `torch.Generator` seeded alike (the corruptions draw on the generator's device and move the draws to
the images' device, so both sides see the same random numbers). Per op it prints the fraction of differing bytes and max |diff|.
For the ops that differed on an H200 (glass_blur, zoom_blur, snow, saturate, fog) it also compares the
intermediate buffers stage by stage (float buffers before the uint8 cut), and a section of primitives
(scalar division, bilinear interpolation, cumsum, FFT, exp/pow) says which torch kernels round
differently on the device. A JSON with every row goes to `--out` (default: $OUT/cuda_equivalence.json
when $OUT is set).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from typing import Any, Callable

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from corrbench.corruptions import SCALE_SIZE, SCALES, get_corruption, list_corruptions  # noqa: E402

SEVERITIES = (1, 2, 3, 4, 5)
BATCH = {"cifar": 48, "tiny": 12, "imagenet": 3}
QUICK_BATCH = {"cifar": 8, "tiny": 2, "imagenet": 1}
STAGED = ("glass_blur", "zoom_blur", "snow", "saturate", "fog")


# ---- draws -------------------------------------------------------------------------------------------

def generator_for(device: torch.device, seed: int) -> torch.Generator:
    """A CPU generator on every device: corruptions draw on the CPU and move the draws to the images'
    device (as make-c does), so both runs consume identical random numbers."""
    return torch.Generator().manual_seed(seed)


# ---- test images ----------------------------------------------------------------------------------------

def test_images(n: int, side: int, seed: int = 0) -> torch.Tensor:
    """uint8 n×3×side×side: smooth colour fields, noise, grey (R=G=B) and flat images; the mix puts
    pixels on the exact-value cases (u/255·255, grey hue, saturated maxima) that expose rounding."""
    g = torch.Generator().manual_seed(seed)
    coarse = torch.rand(n, 3, max(2, side // 8), max(2, side // 8), generator=g, dtype=torch.float64)
    smooth = F.interpolate(coarse, size=(side, side), mode="bicubic", align_corners=False).clamp(0, 1)
    noise = torch.rand(n, 3, side, side, generator=g, dtype=torch.float64)
    kind = torch.arange(n) % 4
    x = torch.where((kind == 1).view(n, 1, 1, 1), noise, smooth)
    x = torch.where((kind == 2).view(n, 1, 1, 1), smooth[:, :1].expand(-1, 3, -1, -1), x)  # grey
    images = (x * 255).round().to(torch.uint8)
    flat_values = torch.tensor([0, 255, 128, 1, 254, 37])
    for i in range(n):
        if kind[i] == 3:
            images[i] = int(flat_values[(i // 4) % len(flat_values)])
    return images


# ---- comparison -----------------------------------------------------------------------------------------

def compare(a: torch.Tensor, b: torch.Tensor) -> dict[str, Any]:
    """Differences of two same-shaped tensors (b is moved to the CPU): count, fraction, max |diff|,
    and for floats the largest distance in units in the last place."""
    b = b.detach().cpu()
    a = a.detach().cpu()
    if a.shape != b.shape:
        return {"shape_a": list(a.shape), "shape_b": list(b.shape), "frac": 1.0, "max": float("nan"), "n": 0}
    if a.is_floating_point():
        differ = a != b
        both_nan = torch.isnan(a) & torch.isnan(b)
        differ &= ~both_nan
        diff = (a.double() - b.double()).abs()
        diff = torch.where(differ, diff, torch.zeros_like(diff))
        int_view = {torch.float64: torch.int64, torch.float32: torch.int32}.get(a.dtype)
        ulps = 0
        if int_view is not None and bool(differ.any()):
            ulps = int((a.view(int_view).long() - b.view(int_view).long()).abs()[differ].max())
        out = {"n": int(differ.sum()), "max": float(diff.max()) if diff.numel() else 0.0, "max_ulp": ulps}
    else:
        diff = (a.long() - b.long()).abs()
        out = {"n": int((diff != 0).sum()), "max": int(diff.max()) if diff.numel() else 0}
        out["hist"] = {str(k): int((diff == k).sum()) for k in (1, 2) if int((diff == k).sum())}
    out["frac"] = out["n"] / max(1, a.numel())
    out["numel"] = a.numel()
    return out


def run_pair(fn: Callable[[torch.Tensor, Any], torch.Tensor], images: torch.Tensor, device: torch.device,
             seed: int) -> tuple[dict[str, Any], float]:
    on_cpu = fn(images, generator_for(torch.device("cpu"), seed))
    start = time.perf_counter()
    on_device = fn(images.to(device), generator_for(device, seed))
    if device.type == "cuda":
        torch.cuda.synchronize()
    seconds = time.perf_counter() - start
    return compare(on_cpu, on_device), seconds


# ---- stages of the five that differed -------------------------------------------------------------------

def stages(name: str, images: torch.Tensor, severity: int, scale: str, gen: Any) -> dict[str, torch.Tensor]:
    """Named intermediate buffers of `name` (mirrors the kernel's steps; all on the images' device)."""
    from corrbench.corruptions.convert import to_uint8, to_unit, working_dtype
    out: dict[str, torch.Tensor] = {}
    x = to_unit(images)
    out["x=u/255 (f64)"] = x
    out["trunc(255*x) == u ?"] = to_uint8(x)
    out["u/255 by 0-dim device tensor"] = images.to(torch.float64) / torch.tensor(255.0, dtype=torch.float64,
                                                                                  device=images.device)
    if name == "glass_blur":
        from corrbench.corruptions.blur import (GLASS_BLUR_SIGMA_DELTA_ITERATIONS, local_shuffle,
                                                shuffle_offsets)
        from corrbench.corruptions.filters import gaussian_filter_nearest
        sigma, delta, iterations = GLASS_BLUR_SIGMA_DELTA_ITERATIONS[scale][severity - 1]
        offsets = shuffle_offsets(images, gen, delta, iterations)
        out["offsets"] = offsets
        g1 = gaussian_filter_nearest(x, sigma)
        out["blur1 float"] = g1
        v = to_uint8(g1)
        out["blur1 uint8"] = v
        s = local_shuffle(v, offsets, delta)
        out["shuffled uint8"] = s
        g2 = gaussian_filter_nearest(to_unit(s), sigma)
        out["blur2 float"] = g2
        out["255*clip(blur2)"] = g2.clamp(0, 1) * 255
        out["final"] = to_uint8(g2)
    elif name == "zoom_blur":
        from corrbench.corruptions.zoom import _to_hwn, _zoom_layer, zoom_factors, zoom_geometry
        factors = zoom_factors(scale, severity)
        x32 = _to_hwn(x.to(torch.float32))
        out["x32"] = x32
        x64 = x32.to(torch.float64)
        total = torch.zeros_like(x32)
        for i, z in enumerate(factors):
            geometry = zoom_geometry(images.shape[-1], z)
            layer64 = _zoom_layer(x64, geometry)
            if i < 4 or i == len(factors) - 1:
                out[f"layer z={z:.2f} f64"] = layer64
                out[f"layer z={z:.2f} f32"] = layer64.to(torch.float32)
            total += layer64.to(torch.float32)
        out["total f32"] = total
        out["x32+total"] = x32 + total
        mean = (x32 + total) / (len(factors) + 1)
        out["(x32+total)/(n+1) scalar div"] = mean
        out["(x32+total)/(n+1) tensor div"] = (x32 + total) / torch.tensor(float(len(factors) + 1),
                                                                         device=images.device)
        out["final"] = to_uint8(mean)
    elif name == "snow":
        from corrbench.corruptions.motion import motion_blur, motion_blur_angles
        from corrbench.corruptions.snow import SNOW, SNOW_ANGLE_RANGE, gray_float32, layer_normals
        from corrbench.corruptions.zoom import clipped_zoom
        mean, std, zoom, threshold, radius, blur_sigma, blend = SNOW[scale][severity - 1]
        normals = layer_normals(images, gen)
        angles = motion_blur_angles(images, gen, *SNOW_ANGLE_RANGE)
        out["normals"] = normals
        out["angles"] = angles
        raw = (mean + std * normals).unsqueeze(1)
        out["mu+sigma*z"] = raw
        zoomed = clipped_zoom(raw, zoom)
        out["clipped_zoom layer f64"] = zoomed
        layer = to_uint8(torch.where(zoomed < threshold, 0.0, zoomed))
        out["layer uint8"] = layer
        streaks = motion_blur(layer, radius, blur_sigma, angles)
        out["streaks uint8"] = streaks
        flakes = streaks.to(working_dtype(images.device)).div_(255.0)
        out["flakes=streaks/255"] = flakes
        x32 = images.to(torch.float32).div_(255.0)
        out["x32=u/255 f32"] = x32
        gray = gray_float32(x32)
        out["gray f32"] = gray
        lifted = torch.maximum(x32, gray * 1.5 + 0.5)
        out["lifted f32"] = lifted
        mixed = x32 * blend + lifted * (1 - blend)
        out["mixed f32"] = mixed
        total = mixed.to(torch.float64) + flakes + torch.flip(flakes, dims=(-2, -1))
        out["total f64"] = total
        out["final"] = to_uint8(total)
    elif name in ("saturate", "brightness"):
        from corrbench.corruptions.digital import SATURATE_SCALE_SHIFT
        from corrbench.corruptions.hsv import hsv_to_rgb, rgb_to_hsv
        hsv = rgb_to_hsv(x)
        out["hsv"] = hsv
        gain, offset = SATURATE_SCALE_SHIFT[scale][severity - 1]
        hsv[:, 1] = (hsv[:, 1] * gain + offset).clamp_(0.0, 1.0)
        out["hsv modified"] = hsv
        rgb = hsv_to_rgb(hsv)
        out["rgb float"] = rgb
        out["255*clip(rgb)"] = rgb.clamp(0, 1) * 255
        out["final"] = to_uint8(rgb)
    elif name == "fog":
        from corrbench.corruptions.plasma import plasma_fractal
        from corrbench.corruptions.weather import FOG_STRENGTH_DECAY, PLASMA_MAPSIZE, draw_fog
        strength, decay = FOG_STRENGTH_DECAY[scale][severity - 1]
        uniforms = draw_fog(images, scale, gen)
        out["uniforms"] = uniforms
        side = images.shape[-1]
        plasma = plasma_fractal(uniforms, PLASMA_MAPSIZE[scale], decay)[:, None, :side, :side]
        out["plasma"] = plasma
        peak = x.amax(dim=(1, 2, 3), keepdim=True)
        y = x + strength * plasma
        out["x+a*P"] = y
        z = y * peak / (peak + strength)
        out["(x+aP)*M/(M+a)"] = z
        out["final"] = to_uint8(z)
    return out


def stage_rows(name: str, images: torch.Tensor, device: torch.device, seed: int, scale: str,
               severity: int) -> list[dict[str, Any]]:
    cpu_stages = stages(name, images, severity, scale, generator_for(torch.device("cpu"), seed))
    dev_stages = stages(name, images.to(device), severity, scale, generator_for(device, seed))
    rows = []
    for key, value in cpu_stages.items():
        row = {"op": name, "scale": scale, "severity": severity, "stage": key, "dtype": str(value.dtype)}
        row.update(compare(value, dev_stages[key]))
        rows.append(row)
    return rows


# ---- primitives ---------------------------------------------------------------------------------------

def primitive_rows(device: torch.device) -> list[dict[str, Any]]:
    """Single torch kernels on the same inputs, CPU vs device: which ones round differently."""
    g = torch.Generator().manual_seed(1)
    u = torch.arange(256, dtype=torch.float64).repeat(64)
    f = torch.rand(1 << 16, generator=g, dtype=torch.float64)
    f32 = f.float()
    img = torch.rand(4, 3, 32, 32, generator=g, dtype=torch.float64)
    cases: list[tuple[str, Callable[[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]]] = [
        ("f64 u / 255 (python scalar)", lambda u, f, f32, im: u / 255.0),
        ("f64 u / 255 (0-dim tensor same device)", lambda u, f, f32, im: u / torch.tensor(255.0, dtype=u.dtype, device=u.device)),
        ("f64 u * (1/255)", lambda u, f, f32, im: u * (1 / 255.0)),
        ("f64 floor((u/255)*255) == u", lambda u, f, f32, im: ((u / 255.0) * 255.0).floor()),
        ("f32 u / 255 (python scalar)", lambda u, f, f32, im: u.float() / 255.0),
        ("f32 x / 8 (python scalar)", lambda u, f, f32, im: f32 / 8.0),
        ("f32 x / 7 (python scalar)", lambda u, f, f32, im: f32 / 7.0),
        ("f64 x / 7 (python scalar)", lambda u, f, f32, im: f / 7.0),
        ("f64 a*b + c (separate ops)", lambda u, f, f32, im: f * 0.299 + f.flip(0)),
        ("f64 torch.add(a, b, alpha=0.3)", lambda u, f, f32, im: torch.add(f, f.flip(0), alpha=0.3)),
        ("f64 addcmul", lambda u, f, f32, im: torch.addcmul(f, f.flip(0), f.roll(1))),
        ("f64 lerp", lambda u, f, f32, im: torch.lerp(f, f.flip(0), 0.3)),
        ("f64 exp", lambda u, f, f32, im: torch.exp(-f * 7)),
        ("f64 pow 2.2", lambda u, f, f32, im: f.pow(2.2)),
        ("f64 sqrt", lambda u, f, f32, im: f.sqrt()),
        ("f64 log", lambda u, f, f32, im: (f + 1e-3).log()),
        ("f64 sin", lambda u, f, f32, im: (f * 6).sin()),
        ("f32 exp", lambda u, f, f32, im: torch.exp(-f32 * 7)),
        ("f32 pow 2.2", lambda u, f, f32, im: f32.pow(2.2)),
        ("f64 cumsum 1024", lambda u, f, f32, im: f.reshape(64, 1024).cumsum(1)[:, -1]),
        ("f64 sum 1024", lambda u, f, f32, im: f.reshape(64, 1024).sum(1)),
        ("f64 mean 1024", lambda u, f, f32, im: f.reshape(64, 1024).mean(1)),
        ("f64 amax", lambda u, f, f32, im: f.reshape(64, 1024).amax(1)),
        ("f64 bilinear align_corners 32->35", lambda u, f, f32, im: F.interpolate(im, size=(35, 35), mode="bilinear", align_corners=True)),
        ("f64 bilinear align_corners 27->34", lambda u, f, f32, im: F.interpolate(im[..., :27, :27], size=(34, 34), mode="bilinear", align_corners=True)),
        ("f64 bilinear channels_last 27->34", lambda u, f, f32, im: F.interpolate(im[..., :27, :27].contiguous(memory_format=torch.channels_last), size=(34, 34), mode="bilinear", align_corners=True)),
        ("f64 rfft2/irfft2", lambda u, f, f32, im: torch.fft.irfft2(torch.fft.rfft2(im) * 0.5, s=im.shape[-2:])),
        ("f64 conv2d 5x5", lambda u, f, f32, im: F.conv2d(im.reshape(12, 1, 32, 32), torch.ones(1, 1, 5, 5, dtype=im.dtype, device=im.device) / 25)),
        ("f64 matmul 32", lambda u, f, f32, im: im @ im.transpose(-1, -2)),
        ("f64->f32 cast", lambda u, f, f32, im: f.float()),
        ("f64 round", lambda u, f, f32, im: (f * 255).round()),
    ]
    rows = []
    for label, fn in cases:
        try:
            a = fn(u, f, f32, img)
            b = fn(u.to(device), f.to(device), f32.to(device), img.to(device))
            row = {"primitive": label, "dtype": str(a.dtype)}
            row.update(compare(a, b))
        except Exception as error:  # noqa: BLE001 - a diagnostic: report and go on
            row = {"primitive": label, "error": f"{type(error).__name__}: {error}"}
        rows.append(row)
    return rows


# ---- the ops --------------------------------------------------------------------------------------------

def corruption_ops(scales: tuple[str, ...], batch: dict[str, int]) -> list[tuple[str, str, int, Callable, torch.Tensor]]:
    ops = []
    for scale in scales:
        images = test_images(batch[scale], SCALE_SIZE[scale], seed=SCALES.index(scale))
        for name in list_corruptions():
            corruption = get_corruption(name)
            for severity in SEVERITIES:
                def fn(x: torch.Tensor, gen: Any, c=corruption, s=severity, sc=scale) -> torch.Tensor:
                    return c(x, s, scale=sc, generator=gen if c.stochastic else None)
                ops.append((f"C {scale}", name, severity, fn, images))
    return ops


def perturbation_ops(batch: int) -> list[tuple[str, str, int, Callable, torch.Tensor]]:
    from corrbench.perturbations import get_perturbation, list_perturbations
    images = test_images(batch, 32, seed=7)
    ops = []
    for name in list_perturbations():
        p = get_perturbation(name)
        for difficulty in ((1, 2, 3) if p.noise else (1,)):
            def fn(x: torch.Tensor, gen: Any, p=p, d=difficulty) -> torch.Tensor:
                return p.generate(x, gen if p.stochastic else None, difficulty=d)
            ops.append(("P cifar", name, difficulty, fn, images))
    return ops


def mnistc_ops(batch: int) -> list[tuple[str, str, int, Callable, torch.Tensor]]:
    from corrbench.mnistc.registry import MNISTC, MNISTC_CORRUPTIONS
    import corrbench.mnistc  # noqa: F401  (registers the kernels)
    g = torch.Generator().manual_seed(3)
    blobs = torch.rand(batch, 1, 7, 7, generator=g)
    digits = (F.interpolate(blobs, size=(28, 28), mode="bilinear") > 0.6).float() * 255
    digits = (digits * torch.rand(batch, 1, 1, 1, generator=g).clamp(0.5, 1)).round().to(torch.uint8)[:, 0]
    ops = []
    for name in MNISTC_CORRUPTIONS:
        chosen = MNISTC.get(name)

        def fn(x: torch.Tensor, gen: Any, n=name, c=chosen) -> torch.Tensor:
            from corrbench.mnistc.registry import corrupt_digits
            return corrupt_digits(x, n, generator=gen if c.stochastic else None)
        ops.append(("MNIST-C", name, 0, fn, digits))
    return ops


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--quick", action="store_true", help="few images, cifar scale only (a CPU smoke run)")
    parser.add_argument("--scales", default=",".join(SCALES))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-stages", action="store_true")
    parser.add_argument("--out", default=None, help="JSON file of every row (default $OUT/cuda_equivalence.json)")
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    scales = tuple(s for s in args.scales.split(",") if s)
    if args.quick:
        scales = ("cifar",) if args.scales == ",".join(SCALES) else scales
    batch = QUICK_BATCH if args.quick else BATCH
    started = time.perf_counter()
    print(f"# CPU vs {device} ({torch.cuda.get_device_name(0) if device.type == 'cuda' else 'cpu'}), "
          f"torch {torch.__version__}, seed {args.seed}", flush=True)

    report: dict[str, Any] = {"device": str(device), "torch": torch.__version__, "ops": [], "stages": [],
                              "primitives": []}
    print("\n## primitives: one torch kernel, CPU vs device (n differing elements, max ulp)")
    for row in primitive_rows(device):
        report["primitives"].append(row)
        if "error" in row:
            print(f"  {row['primitive']:<45} ERROR {row['error']}")
        else:
            print(f"  {row['primitive']:<45} {row['n']:>7}/{row['numel']:<7} max|d| {row['max']:.3g}"
                  f" max_ulp {row.get('max_ulp', '-')}")

    ops = corruption_ops(scales, batch)
    ops += perturbation_ops(16 if not args.quick else 4)
    ops += mnistc_ops(64 if not args.quick else 8)
    print("\n## ops: fraction of differing bytes, max |diff|, device seconds")
    summary: dict[tuple[str, str], dict[str, Any]] = {}

    def print_row(kind: str, name: str) -> None:
        agg = summary[(kind, name)]
        frac = agg["n"] / max(1, agg["numel"])
        flag = "OK " if agg["n"] == 0 and not agg["errors"] else "DIFF" if not agg["errors"] else "ERR"
        print(f"  {flag:<4} {kind:<10} {name:<18} differ {frac * 100:9.5f} % ({agg['n']}/{agg['numel']})"
              f" max|d| {agg['max']}  {agg['seconds']:.2f}s {agg['worst']}", flush=True)

    previous = None
    for kind, name, level, fn, images in ops:
        if previous is not None and previous != (kind, name):
            print_row(*previous)
        previous = (kind, name)
        try:
            result, seconds = run_pair(fn, images, device, args.seed + level)
        except Exception as error:  # noqa: BLE001 - a diagnostic: report and go on
            result, seconds = {"error": f"{type(error).__name__}: {error}"}, 0.0
        row = {"kind": kind, "op": name, "level": level, "seconds": seconds, **result}
        report["ops"].append(row)
        key = (kind, name)
        agg = summary.setdefault(key, {"n": 0, "numel": 0, "max": 0, "errors": 0, "seconds": 0.0, "worst": ""})
        if "error" in result:
            agg["errors"] += 1
            agg["worst"] = result["error"][:80]
        else:
            agg["n"] += result["n"]
            agg["numel"] += result["numel"]
            agg["max"] = max(agg["max"], result["max"])
            agg["seconds"] += seconds
            if result["n"]:
                agg["worst"] += f" L{level}:{result['frac']:.2e}"
    if previous is not None:
        print_row(*previous)

    if not args.no_stages:
        print("\n## stages of the ops that differed on the H200 (first stage that differs is the cause)")
        for scale in scales:
            images = test_images(batch[scale], SCALE_SIZE[scale], seed=SCALES.index(scale))
            for name in STAGED:
                for severity in (1, 3, 5):
                    try:
                        rows = stage_rows(name, images, device, args.seed + severity, scale, severity)
                    except Exception as error:  # noqa: BLE001
                        print(f"  {scale} {name} s{severity}: ERROR {type(error).__name__}: {error}")
                        continue
                    report["stages"].extend(rows)
                    for row in rows:
                        if row["n"] or row["stage"] == "final":
                            print(f"  {scale:<8} {name:<10} s{severity} {row['stage']:<34} {row['dtype']:<14}"
                                  f" differ {row['frac'] * 100:9.5f} % max|d| {row['max']:.3g}"
                                  f" max_ulp {row.get('max_ulp', '-')}", flush=True)

    total_bad = sum(1 for agg in summary.values() if agg["n"] or agg["errors"])
    print(f"\n# {total_bad} of {len(summary)} ops differ or failed; {time.perf_counter() - started:.1f} s")
    out = args.out or (os.path.join(os.environ["OUT"], "cuda_equivalence.json") if os.environ.get("OUT") else None)
    if out:
        with open(out, "w") as handle:
            json.dump(report, handle, indent=1, default=str)
        print(f"# rows written to {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
