"""Display names, directions and number formats of the metrics the report knows by name.

The direction of a scored metric always comes from the pipeline's own outputs (summary.json's
`higher_is_better`); the table below only supplies labels, decimals, and the direction of the
convergence-only metrics (e.g. the training loss) that never reach summary.json.

The acoustic side's metric names are qualified (eval.contract.split_metric): "E1/mel_l1" is shown
as "E1 mel L1", "E1/pesq_wb@rec" as "E1 PESQ-WB (vs recording)"; the base metric gives unit, direction
and decimals.
"""
from __future__ import annotations

from dataclasses import dataclass

# key: (label, unit, higher_is_better, decimals)
KNOWN: dict[str, tuple[str, str, bool, int]] = {
    "pesq_wb": ("PESQ-WB", "MOS-LQO", True, 2),
    "pesq_nb": ("PESQ-NB", "MOS-LQO", True, 2),
    "stoi": ("STOI", "", True, 3),
    "estoi": ("ESTOI", "", True, 3),
    "mrstft": ("MR-STFT", "", False, 3),
    "ls_mae": ("LS-MAE", "", False, 3),
    "mcd": ("MCD", "dB", False, 2),
    "f0_rmse": ("F0 RMSE", "cents", False, 1),
    "vuv_error": ("V/UV error", "", False, 3),
    "dnsmos_ovrl": ("DNSMOS OVRL", "MOS", True, 2),
    "dnsmos_sig": ("DNSMOS SIG", "MOS", True, 2),
    "dnsmos_bak": ("DNSMOS BAK", "MOS", True, 2),
    "dnsmos_p808": ("DNSMOS P.808", "MOS", True, 2),
    # acoustic model, mel domain (spec priorgrad-acoustic.md section 11; priorgrad/acoustic/metrics_mel.py)
    "mel_l1": ("mel L1", "ln-mel", False, 4),
    "mel_cd": ("mel CD", "dB", False, 3),
    "gv_ratio": ("GV ratio", "gen/GT, 1 = GT", True, 3),   # < 1: over-smoothed; shown, never primary
    "gv_dist": ("GV distance", "|ln gen/GT|", False, 3),   # |ln gv_ratio|: over- and under-smoothing both count
    # acoustic E3 (predicted durations; experiments/acoustic_eval_config.py): duration error and intelligibility
    "dur_mae_ms": ("duration MAE", "ms per phoneme", False, 1),
    "len_dist": ("length distance", "|ln gen/GT length|", False, 3),
    "wer": ("WER", "", False, 3),
    "cer": ("CER", "", False, 3),
    "loss": ("validation loss", "", False, 4),
    "train_loss": ("training loss", "", False, 4),
    "rtf": ("RTF", "", False, 3),
}


@dataclass(frozen=True)
class MetricInfo:
    key: str
    label: str
    unit: str
    higher_is_better: bool
    decimals: int

    @property
    def arrow(self) -> str:
        return "\u2191" if self.higher_is_better else "\u2193"

    @property
    def heading(self) -> str:
        unit = f" ({self.unit})" if self.unit else ""
        return f"{self.label}{unit} {self.arrow}"

    def fmt(self, x: float) -> str:
        return f"{x:.{self.decimals}f}"


def metric_info(key: str, higher_is_better: bool | None = None) -> MetricInfo:
    """Info for `key`; `higher_is_better` from the pipeline's outputs wins over the built-in table."""
    from eval.contract import split_metric

    if key.startswith("valid/"):
        key = key[len("valid/"):]
    condition, base, reference = split_metric(key)
    label, unit, hib, dec = KNOWN.get(base, (base, "", False, 3))
    if higher_is_better is None and base not in KNOWN:
        raise KeyError(f"metric {key!r}: direction unknown (not in summary.json nor in reports.metrics_info.KNOWN)")
    if condition:
        label = f"{condition} {label}" + (" (vs recording)" if reference == "rec" else "")
    return MetricInfo(key, label, unit, hib if higher_is_better is None else bool(higher_is_better), dec)
