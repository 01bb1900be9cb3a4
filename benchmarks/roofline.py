"""Roofline arithmetic for the DiffWave network: FLOPs and bytes moved per training step and per synthesis step.

FLOPs are counted analytically from the model definition (spec section 4 / priorgrad/vocoder/model.py), in the
convention of torch.utils.flop_counter (2 x multiply-accumulates of every convolution and matrix
product; biases, activations and elementwise ops not counted); tests/test_gpu_roofline.py checks the
count against FlopCounterMode on a tiny network. Bytes are a model, stated here, not a measurement:

- weights: parameters read once per forward, and per training step also read again in backward,
  gradients written, and Adam's read/write of parameter, gradient and both moments;
- activations, two bounds per residual layer and waveform sample (elements, x dtype bytes):
  ``eager``: every kernel the eager model launches reads its operands from and writes its result to
  memory (x+step 2C, dilated conv 3C, +cond 6C, sigmoid 2C, tanh 2C, product 3C, output conv 3C,
  x+residual 3C, /sqrt2 2C, skip sum 3C = 29C, plus the conditioner projection 80 + 2C when computed);
  ``compiled``: what torch.compile can reach: convolutions stay library kernels that read their input
  and write their output, the pointwise work between them is fused (dilated conv 3C, x+step written C,
  gate kernel reading conv out, cond and writing h 5C, output conv 3C, residual/skip kernel 6C = 18C);
  ``fused``: one kernel per layer reads x and its conditioner slice and writes x and the skip sum
  (C + 2C + C + 2C = 6C), the floor a hand-written layer kernel could reach. A training step moves ~3x the forward's activation bytes (forward, then a
  backward that reads the saved activations and writes gradients of the same size).

    python benchmarks/roofline.py            # prints the tables of docs/roofline.md
"""
from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
HOP, N_MELS, SR, EMB = 256, 80, 22050, 128

# Peak numbers of the GPUs this project is lent (vendor datasheets, SXM parts, dense = no sparsity).
PEAKS = {
    "H100 SXM": {"bf16_tflops": 989.0, "tf32_tflops": 494.0, "fp32_tflops": 67.0, "hbm_tb_s": 3.35},
    "H200 SXM": {"bf16_tflops": 989.0, "tf32_tflops": 494.0, "fp32_tflops": 67.0, "hbm_tb_s": 4.8},
}


@dataclass(frozen=True)
class Net:
    layers: int
    channels: int
    factors: tuple[int, ...] = (16, 16)
    n_mels: int = N_MELS

    @property
    def n_params(self) -> int:
        C, L, M = self.channels, self.layers, self.n_mels
        emb = EMB * 512 + 512 + 512 * 512 + 512
        ups = sum(3 * 2 * f + 1 for f in self.factors)
        layer = (C * 2 * C * 3 + 2 * C) + (512 * C + C) + (M * 2 * C + 2 * C) + (C * 2 * C + 2 * C)
        return (C + C) + emb + ups + L * layer + (C * C + C) + (C + 1)


NETS = {"base": Net(30, 64), "small": Net(30, 32)}


def conditioner_flops(net: Net, batch: int, frames: int) -> int:
    """Upsampler (ConvTranspose2d, counted over its input as torch does) + every layer's 1x1 projection."""
    flops, width = 0, frames
    for f in net.factors:
        flops += 2 * batch * net.n_mels * width * (3 * 2 * f)
        width *= f
    return flops + net.layers * 2 * batch * width * (2 * net.channels) * net.n_mels


def denoiser_flops(net: Net, batch: int, samples: int) -> int:
    """One network call without the conditioner: input conv, step MLP, L residual layers, output convs."""
    C, L, N = net.channels, net.layers, samples
    flops = 2 * batch * N * C                                   # input projection 1 -> C
    flops += 2 * batch * (EMB * 512 + 512 * 512)                 # step embedding MLP
    per_layer = 2 * batch * 512 * C + 2 * batch * N * (2 * C) * C * 3 + 2 * batch * N * (2 * C) * C
    flops += L * per_layer                                       # step proj, dilated conv, output conv
    flops += 2 * batch * N * C * C + 2 * batch * N * C           # skip projection, output projection
    return flops


def forward_flops(net: Net, batch: int, samples: int) -> int:
    return conditioner_flops(net, batch, samples // HOP) + denoiser_flops(net, batch, samples)


def training_flops(net: Net, batch: int, samples: int) -> int:
    """Forward + backward: every product again for the weight gradient and, where its input needs a
    gradient, for the input gradient. Inputs that need none: the audio (input conv), the mel (first
    upsampler conv) and the embedding table row (first step MLP layer)."""
    fwd = forward_flops(net, batch, samples)
    no_input_grad = 2 * batch * samples * net.channels + 2 * batch * EMB * 512 \
        + 2 * batch * net.n_mels * (samples // HOP) * 3 * 2 * net.factors[0]
    return 3 * fwd - no_input_grad


def activation_bytes(net: Net, batch: int, samples: int, dtype_bytes: int, mode: str, with_conditioner: bool) -> int:
    C = net.channels
    per = {"eager": 29 * C, "compiled": 18 * C, "fused": 6 * C}[mode]
    cond = (net.n_mels + 2 * C) if with_conditioner else 0
    return net.layers * batch * samples * (per + cond) * dtype_bytes


def weight_bytes(net: Net, dtype_bytes: int, training: bool) -> int:
    if not training:
        return net.n_params * dtype_bytes
    # forward + backward reads, gradient write, Adam: read p, g, m, v and write p, m, v (fp32 master)
    return net.n_params * (2 * dtype_bytes + dtype_bytes + 7 * 4)


def rows(batch_train: int = 16, crop_frames: int = 62, synth_seconds: float = 5.0) -> list[dict]:
    out = []
    n_train = crop_frames * HOP
    n_synth = int(synth_seconds * SR) // HOP * HOP
    for name, net in NETS.items():
        for dtype, nbytes in (("fp32", 4), ("bf16", 2)):
            for mode in ("eager", "compiled", "fused"):
                tf = training_flops(net, batch_train, n_train)
                tb = 3 * activation_bytes(net, batch_train, n_train, nbytes, mode, True) + weight_bytes(net, nbytes, True)
                sf = denoiser_flops(net, 1, n_synth)
                sb = activation_bytes(net, 1, n_synth, nbytes, mode, False) + weight_bytes(net, nbytes, False)
                out.append({"net": name, "n_params": net.n_params, "dtype": dtype, "activations": mode,
                            "train_step_gflop": tf / 1e9, "train_step_gb": tb / 1e9, "train_flop_per_byte": tf / tb,
                            "synth_step_gflop": sf / 1e9, "synth_step_gb": sb / 1e9, "synth_flop_per_byte": sf / sb,
                            "conditioner_gflop_per_utterance": conditioner_flops(net, 1, n_synth // HOP) / 1e9})
    return out


def bound_ms(flops: float, nbytes: float, peak_tflops: float, tb_s: float) -> tuple[float, str]:
    """Roofline time: the larger of the compute time and the memory time, and which one it is."""
    tc, tm = flops / (peak_tflops * 1e12), nbytes / (tb_s * 1e12)
    return max(tc, tm) * 1e3, ("compute" if tc >= tm else "memory")


def markdown(batch_train: int = 16, crop_frames: int = 62, synth_seconds: float = 5.0) -> str:
    lines = [f"Training step: batch {batch_train}, crop {crop_frames} frames ({crop_frames * HOP} samples). "
             f"Synthesis step: one network call, batch 1, {synth_seconds:g} s "
             f"({int(synth_seconds * SR) // HOP * HOP} samples); the conditioner is computed once per utterance.",
             "",
             "| net | dtype | activations | train GFLOP | train GB | train FLOP/B | synth-step GFLOP | synth-step GB | synth FLOP/B |",
             "|---|---|---|---:|---:|---:|---:|---:|---:|"]
    for r in rows(batch_train, crop_frames, synth_seconds):
        lines.append(f"| {r['net']} | {r['dtype']} | {r['activations']} | {r['train_step_gflop']:.1f} | "
                     f"{r['train_step_gb']:.2f} | {r['train_flop_per_byte']:.1f} | {r['synth_step_gflop']:.2f} | "
                     f"{r['synth_step_gb']:.3f} | {r['synth_flop_per_byte']:.1f} |")
    lines += ["", "| GPU | dtype | ridge point (FLOP/B) | net | activations | train step bound | T=6 synthesis bound (6 calls) | measured fraction of peak |",
              "|---|---|---:|---|---|---|---|---|"]
    for gpu, p in PEAKS.items():
        for r in rows(batch_train, crop_frames, synth_seconds):
            peak = p["bf16_tflops"] if r["dtype"] == "bf16" else p["tf32_tflops"]
            ridge = peak * 1e12 / (p["hbm_tb_s"] * 1e12)
            t_ms, t_kind = bound_ms(r["train_step_gflop"] * 1e9, r["train_step_gb"] * 1e9, peak, p["hbm_tb_s"])
            s_ms, s_kind = bound_ms(r["synth_step_gflop"] * 1e9, r["synth_step_gb"] * 1e9, peak, p["hbm_tb_s"])
            lines.append(f"| {gpu} | {r['dtype']} | {ridge:.0f} | {r['net']} | {r['activations']} | "
                         f"{t_ms:.2f} ms ({t_kind}) | {6 * s_ms:.2f} ms ({s_kind}) | needs a GPU run |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", type=Path, default=None, help="also write the rows as JSON")
    args = ap.parse_args(argv)
    assert NETS["base"].n_params == 2_619_971 and NETS["small"].n_params == 1_227_651
    print(markdown())
    if args.json:
        from priorgrad.core.fileio import write_json_atomic

        write_json_atomic(args.json, {"peaks": PEAKS, "rows": rows(), "note": "analytic; not measured"})


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    main()
