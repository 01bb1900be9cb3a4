"""The one copy of the diffusion maths: schedules, forward noising, losses, step alignment, sampler.

Training, validation and inference all call this module (spec section 3). The prior enters only as a
``PriorDraw`` (priorgrad/core/prior_contract.py), of which this module calls ``draw`` (L n), ``whiten``
(L^-1 r, the loss) and ``mean`` and nothing else: it never knows which prior it runs. DiffWave's is
sigma = 1, PriorGrad's vocoder prior a sigma per sample from the frame energy.

The acoustic model (../shared/spec/priorgrad-acoustic.md section 6) uses the same class with T = 400,
priors over (B, 80, N) with a mean (training on x0 - mean, the mean added back after sampling), a frame
``mask`` (padding excluded from the loss, zeroed in the output), no clamp, and schedules given directly
as (eta, t~) (``StepSchedule``, the strided schedules of section 7).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch

from priorgrad.core.prior_contract import PriorDraw, draw_scaled

FAST_SCHEDULES: dict[int, list[float]] = {
    6: [1e-4, 1e-3, 1e-2, 0.05, 0.2, 0.5],
    12: [1e-4, 5e-4, 8e-4, 1e-3, 5e-3, 8e-3, 1e-2, 0.05, 0.08, 0.1, 0.2, 0.5],
}


class ScheduleError(ValueError):
    """An inference schedule that cannot be aligned to the training schedule."""


def training_betas(num_steps: int = 50, beta_start: float = 1e-4, beta_end: float = 0.05) -> np.ndarray:
    return np.linspace(beta_start, beta_end, num_steps, dtype=np.float64)


def inference_betas(steps: int | list[float] | np.ndarray, train_betas: np.ndarray | None = None) -> np.ndarray:
    """The inference noise schedule eta_1..eta_S: the paper's fast schedules for 6 and 12, else linspace.

    S equal to the training T gives the training schedule itself.
    """
    if isinstance(steps, (list, tuple, np.ndarray)):
        betas = np.asarray(steps, dtype=np.float64)
    else:
        if int(steps) < 1:
            raise ScheduleError(f"inference steps must be >= 1, got {steps}")
        if steps in FAST_SCHEDULES:
            betas = np.asarray(FAST_SCHEDULES[steps], dtype=np.float64)
        elif train_betas is not None and steps == len(train_betas):
            betas = np.asarray(train_betas, dtype=np.float64)
        else:
            lo = 1e-4 if train_betas is None else float(train_betas[0])
            hi = 0.05 if train_betas is None else float(train_betas[-1])
            betas = np.linspace(lo, hi, int(steps), dtype=np.float64)
    if betas.ndim != 1 or len(betas) == 0 or np.any(betas <= 0) or np.any(betas >= 1):
        raise ScheduleError(f"inference betas must be a non-empty list in (0, 1), got {betas.tolist()}")
    return betas


def align_steps(inference_betas: np.ndarray, training_betas: np.ndarray) -> np.ndarray:
    """Continuous training step t~_s for each inference step s (0-based), spec section 3.

    t~_s = t + (sqrt(abar_t) - sqrt(gbar_s)) / (sqrt(abar_t) - sqrt(abar_{t+1})) where
    abar_{t+1} <= gbar_s <= abar_t. gbar_s above abar_0 maps to 0 (it is less noisy than step 0).
    """
    abar = np.cumprod(1.0 - np.asarray(training_betas, dtype=np.float64))
    gbar = np.cumprod(1.0 - np.asarray(inference_betas, dtype=np.float64))
    steps = []
    for s, g in enumerate(gbar):
        if g < abar[-1] - 1e-12:
            raise ScheduleError(
                f"inference schedule cannot be aligned: gamma_bar_{s + 1} = {g:.6f} falls below the training "
                f"schedule's alpha_bar_T = {abar[-1]:.6f} (the network never saw that much noise); "
                f"use smaller betas or fewer steps")
        if g >= abar[0]:
            steps.append(0.0)
            continue
        found = False
        for t in range(len(abar) - 1):
            if abar[t + 1] <= g <= abar[t]:
                twiddle = (np.sqrt(abar[t]) - np.sqrt(g)) / (np.sqrt(abar[t]) - np.sqrt(abar[t + 1]))
                steps.append(t + twiddle)
                found = True
                break
        if not found:  # g equals abar_T within rounding
            steps.append(float(len(abar) - 1))
    return np.asarray(steps, dtype=np.float64)


@dataclass(frozen=True)
class StepSchedule:
    """An inference schedule given directly: eta_1..eta_S and the (possibly fractional) training step
    t~_s each is run at. Used where re-aligning from the betas would fail in float (the strided
    schedules end exactly at alpha_bar_T, spec section 7)."""

    eta: np.ndarray
    t: np.ndarray
    name: str = ""

    def __post_init__(self) -> None:
        eta, t = np.asarray(self.eta, dtype=np.float64), np.asarray(self.t, dtype=np.float64)
        if eta.ndim != 1 or len(eta) == 0 or eta.shape != t.shape:
            raise ScheduleError(f"schedule {self.name!r}: eta and t must be equally long 1-D lists")
        if np.any(eta <= 0) or np.any(eta >= 1):
            raise ScheduleError(f"schedule {self.name!r}: eta must lie in (0, 1), got {eta.tolist()}")
        object.__setattr__(self, "eta", eta)
        object.__setattr__(self, "t", t)

    def __len__(self) -> int:
        return len(self.eta)


def strided_schedule(train_betas: np.ndarray, steps: int, kind: str = "quadratic") -> StepSchedule:
    """A sub-sequence t_1 < ... < t_S of the training steps (0-based), spec section 7.

    quadratic: t_s = round(((s - 1) / (S - 1) * sqrt(T - 1))^2); uniform: t_s = round((s - 1) / (S - 1) * (T - 1)).
    gamma_bar_s = alpha_bar_{t_s}, so eta_s = 1 - alpha_bar_{t_s} / alpha_bar_{t_{s-1}} (alpha_bar_{t_0} = 1),
    and t~_s = t_s exactly. S = T is the training schedule itself.
    """
    betas = np.asarray(train_betas, dtype=np.float64)
    T = len(betas)
    abar = np.cumprod(1.0 - betas)
    if steps == T:
        return StepSchedule(betas.copy(), np.arange(T, dtype=np.float64), f"train{T}")
    if not 2 <= steps < T:
        raise ScheduleError(f"strided schedule: steps must be in 2..{T}, got {steps}")
    s = np.arange(steps, dtype=np.float64)
    if kind == "quadratic":
        t = np.round((s / (steps - 1) * np.sqrt(T - 1)) ** 2).astype(np.int64)
    elif kind == "uniform":
        t = np.round(s / (steps - 1) * (T - 1)).astype(np.int64)
    else:
        raise ScheduleError(f"strided schedule: kind must be quadratic or uniform, got {kind!r}")
    if np.any(np.diff(t) <= 0):
        raise ScheduleError(f"{kind} strided schedule with {steps} steps repeats a training step "
                            f"({t.tolist()}); use fewer steps or the full {T}-step schedule")
    prev = np.concatenate([[1.0], abar[t[:-1]]])
    return StepSchedule(1.0 - abar[t] / prev, t.astype(np.float64), f"{kind}{steps}")


class Diffusion:
    """DDPM with a linear beta schedule and a (possibly data-dependent) Gaussian prior N(mean, L L^T)."""

    def __init__(self, num_steps: int = 50, beta_start: float = 1e-4, beta_end: float = 0.05, loss: str = "l2"):
        if loss not in ("l1", "l2"):
            raise ValueError(f"diffusion.loss must be l1 or l2, got {loss!r}")
        self.betas = training_betas(num_steps, beta_start, beta_end)
        self.alpha_bar = np.cumprod(1.0 - self.betas)
        self.num_steps = num_steps
        self.loss_kind = loss
        self._sqrt_abar = torch.tensor(np.sqrt(self.alpha_bar), dtype=torch.float32)
        self._sqrt_1m_abar = torch.tensor(np.sqrt(1.0 - self.alpha_bar), dtype=torch.float32)
        self._device_coefficients: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}

    @classmethod
    def from_config(cls, cfg) -> "Diffusion":
        return cls(cfg.num_steps, cfg.beta_start, cfg.beta_end, cfg.loss)

    # --------------------------------------------------------------------- training
    def sample_steps(self, batch: int, generator: torch.Generator | None = None,
                     device: torch.device | str = "cpu") -> torch.Tensor:
        """t ~ U{0..T-1} per example."""
        return torch.randint(0, self.num_steps, (batch,), generator=generator).to(device)

    def q_sample(self, x0: torch.Tensor, t: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        """x_t = sqrt(abar_t) x_0 + sqrt(1 - abar_t) eps, with eps = L n already drawn from the prior."""
        shape = (-1,) + (1,) * (x0.dim() - 1)
        sqrt_abar, sqrt_1m_abar = self._coefficients(x0.device)
        a = sqrt_abar[t].view(shape)
        b = sqrt_1m_abar[t].view(shape)
        return a * x0 + b * noise

    def _coefficients(self, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        # Cached per device: no host-to-device copy per step (which a CUDA graph capture forbids).
        key = str(device)
        if key not in self._device_coefficients:
            self._device_coefficients[key] = (self._sqrt_abar.to(device), self._sqrt_1m_abar.to(device))
        return self._device_coefficients[key]

    def loss(self, eps_hat: torch.Tensor, eps: torch.Tensor, prior: PriorDraw | None = None,
             mask: torch.Tensor | None = None) -> torch.Tensor:
        """PriorGrad: mean((L^-1 (eps_hat - eps))^2), the Sigma^-1 weighted MSE (prior.whiten); no prior
        (or N(0, I)) is DiffWave's MSE.

        ``l1`` (lmnt-com/diffwave's choice) is mean(|L^-1 (eps_hat - eps)|). With a ``mask`` (1 = real
        frame, broadcastable to eps, e.g. (B, 1, N) for mels) the mean runs over the real elements only:
        sum_mask(...) / (80 * frames) for a mel.
        """
        diff = eps_hat - eps if prior is None else prior.whiten(eps_hat - eps)
        value = diff.abs() if self.loss_kind == "l1" else diff.pow(2)
        if mask is None:
            return value.mean()
        m = mask.to(value.dtype).expand_as(value)
        return (value * m).sum() / m.sum().clamp_min(1.0)

    def draw_training_noise(self, x0: torch.Tensor, generator: torch.Generator | None = None
                            ) -> tuple[torch.Tensor, torch.Tensor]:
        """(t, n): the diffusion steps and standard normal draws of one training step, drawn on the CPU.

        Drawn from ``generator`` on the CPU and moved to x0's device, so the same (seed, step) gives
        the same noise on any device and with any of the fast training paths.
        """
        t = self.sample_steps(x0.shape[0], generator, x0.device)
        n = torch.randn(x0.shape, generator=generator, dtype=x0.dtype).to(x0.device)
        return t, n

    def training_loss(self, model: Callable, x0: torch.Tensor, cond: torch.Tensor, prior: PriorDraw,
                      generator: torch.Generator | None = None, mask: torch.Tensor | None = None) -> torch.Tensor:
        """One training objective evaluation: noise, predict, weight by the prior.

        Vocoder: x0 (B, N). Acoustic model: x0 (B, 80, N), mask (B, 1, N); the process diffuses
        x0 - prior.mean() (a scalar 0.0 mean: x0 itself).
        """
        t, n = self.draw_training_noise(x0, generator)
        return self.training_loss_given(model, x0, cond, prior, t, n, mask)

    def training_loss_given(self, model: Callable, x0: torch.Tensor, cond: torch.Tensor, prior: PriorDraw,
                            t: torch.Tensor, n: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """The training objective for given steps t (B,) and standard normal draws n (shaped like x0)."""
        eps = prior.draw(n)
        mu = prior.mean()
        x_t = self.q_sample(x0 - mu if torch.is_tensor(mu) else x0, t, eps)
        eps_hat = model(x_t, cond, t.to(torch.float32))
        return self.loss(eps_hat.float(), eps.float(), prior, mask)

    # --------------------------------------------------------------------- sampling
    def schedule(self, steps: int | list[float] | StepSchedule) -> tuple[np.ndarray, np.ndarray]:
        """(eta, t~) for an inference schedule; raises ScheduleError when it cannot be aligned."""
        if isinstance(steps, StepSchedule):
            if np.any(steps.t < 0) or np.any(steps.t > self.num_steps - 1):
                raise ScheduleError(f"schedule {steps.name!r}: t~ {steps.t.tolist()} outside 0..{self.num_steps - 1}")
            return steps.eta, steps.t
        eta = inference_betas(steps, self.betas)
        return eta, align_steps(eta, self.betas)

    @torch.no_grad()
    def sample(self, model: Callable, cond: torch.Tensor, prior: PriorDraw,
               steps: int | list[float] | StepSchedule = 6,
               noise: Callable[[int], torch.Tensor] | None = None,
               generator: torch.Generator | None = None, clamp: bool = True,
               mask: torch.Tensor | None = None,
               x0_range: tuple[torch.Tensor, torch.Tensor] | None = None,
               clipped: list[float] | None = None, shape: tuple[int, ...] | None = None,
               device: torch.device | str = "cpu") -> torch.Tensor:
        """Ancestral DDPM sampling (DiffWave fast-sampling notation), starting from x_S = L n (prior.draw).

        ``noise(k)`` returns the k-th standard normal draw in the target's shape (per-utterance seeding);
        by default draws of ``shape`` come from ``generator`` (on the CPU, moved to ``device``).
        ``model(x, cond, t)`` may cache the conditioner. Mels: ``clamp=False``; the prior's tensor mean
        is added after the last step and the result multiplied by ``mask``.

        ``x0_range`` = (lo, hi) in the data domain (broadcastable to x, e.g. (1, 80, 1) per mel bin):
        each step predicts x0 = (x - sqrt(1 - gbar) eps_hat) / sqrt(gbar), clips x0 + mu to [lo, hi]
        and takes the DDPM posterior mean of q(x_{s-1} | x_s, x0) (DiffSinger's / improved-diffusion's
        clip_denoised). Without clipping that mean equals the DiffWave update algebraically; it is a
        separate branch so that ``x0_range=None`` stays bit-identical to the plain update. The fraction
        of real (masked) elements clipped at each step, first step first, is appended to ``clipped``.
        """
        eta, t_align = self.schedule(steps)
        gamma = 1.0 - eta
        gbar = np.cumprod(gamma)
        if noise is None:
            if shape is None:
                raise ValueError("Diffusion.sample: give noise(k) or the target's shape")
            draw = lambda k: torch.randn(shape, generator=generator).to(device)  # noqa: E731
        else:
            draw = noise
        mu = prior.mean()
        mu = mu if torch.is_tensor(mu) else None  # a scalar 0.0 mean is neither subtracted nor added
        x = prior.draw(draw(0))
        batch = x.shape[0]
        for s in range(len(eta) - 1, -1, -1):
            t = torch.full((batch,), float(t_align[s]), device=x.device)
            eps_hat = model(x, cond, t).float()
            if x0_range is None:
                x = (x - eta[s] / np.sqrt(1.0 - gbar[s]) * eps_hat) / np.sqrt(gamma[s])
            else:
                x = self._clipped_update(x, eps_hat, gbar, gamma, eta, s, mu, mask, x0_range, clipped)
            if s > 0:
                var = (1.0 - gbar[s - 1]) / (1.0 - gbar[s]) * eta[s]
                x = x + draw_scaled(prior, draw(len(eta) - s), np.sqrt(var))
            if clamp:
                x = torch.clamp(x, -1.0, 1.0)
        if mu is not None:
            x = x + mu
        if mask is not None:
            x = x * mask
        return x

    @staticmethod
    def _clipped_update(x: torch.Tensor, eps_hat: torch.Tensor, gbar: np.ndarray, gamma: np.ndarray,
                        eta: np.ndarray, s: int, mu: torch.Tensor | None, mask: torch.Tensor | None,
                        x0_range: tuple[torch.Tensor, torch.Tensor], clipped: list[float] | None) -> torch.Tensor:
        """Posterior mean of x_{s-1} given x_s and the clipped x0 prediction (see ``sample``)."""
        x0 = (x - np.sqrt(1.0 - gbar[s]) * eps_hat) / np.sqrt(gbar[s])
        shift = 0.0 if mu is None else mu  # the process runs on x0 - mu; the range is the data's
        lo, hi = x0_range[0] - shift, x0_range[1] - shift
        x0c = torch.minimum(torch.maximum(x0, lo), hi)
        if clipped is not None:
            hit = (x0c != x0).float()
            if mask is not None:
                m = mask.to(hit.dtype).expand_as(hit)
                clipped.append(float((hit * m).sum() / m.sum().clamp_min(1.0)))
            else:
                clipped.append(float(hit.mean()))
        gbar_prev = gbar[s - 1] if s > 0 else 1.0
        c0 = np.sqrt(gbar_prev) * eta[s] / (1.0 - gbar[s])
        ct = np.sqrt(gamma[s]) * (1.0 - gbar_prev) / (1.0 - gbar[s])
        return c0 * x0c + ct * x
