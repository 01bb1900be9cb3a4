"""The listening section: like the paper's demo page, the recording and every system/setting side
by side for a few test utterances, each with its scores. Audio is copied beside index.html.

One builder for both families: the vocoder shows every kept setting; the acoustic model shows the
recording, the vocoded ground-truth mel, each system at the largest training budget per T_infer (and
condition), and the floor (each system's prior draw), each system's clips in its own column."""
from __future__ import annotations

import logging
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from reports.inputs import FLOOR, AudioSetting, RunData
from reports.metrics_info import metric_info
from reports.tables import SYSTEM_LABELS, fmt_params, models

log = logging.getLogger(__name__)


@dataclass
class Player:
    src: str | None                        # relative to the output dir; None = this clip is missing
    scores: list[tuple[str, str]] = field(default_factory=list)   # (metric heading, value)
    note: str = ""


@dataclass
class ListeningRow:
    label: str                              # "small (1.23M), 1000 steps, T=6"
    players: dict[str, Player]              # system -> player


@dataclass
class ListeningUtt:
    utt: str
    reference: str
    rows: list[ListeningRow]
    extra_references: list[tuple[str, str]] = field(default_factory=list)   # (label, src): vocoder(GT mel)


def _copy(src: Path, out_dir: Path, rel: str) -> str:
    dst = out_dir / rel
    dst.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(src, dst)   # byte copy: identical inputs give identical files
    return rel


def build_listening(data: RunData, out_dir: Path, n_utts: int, metrics: list[str],
                    audio_prefix: str = "audio") -> tuple[list[ListeningUtt], list[str]]:
    """Copy the audio (under out_dir/audio_prefix) and return the section's model plus notes about anything missing."""
    from eval.contract import split_metric

    systems = data.systems_run   # no empty column for a registered system that was not run
    acoustic = data.family != "vocoder"
    notes: list[str] = []
    if n_utts == 0:
        return [], ["report.n_listening is 0: no listening examples requested"]
    utts = sorted(data.reference_audio)[:n_utts]
    directions = dict(zip(data.summary["metric"], data.summary["higher_is_better"].astype(bool)))
    shown = [m for m in metrics if m in directions]
    n_params = {str(s): int(n) for s, n in models(data.summary).groupby("size")["n_params"].max().items()}
    sizes_rank = {s: -n for s, n in n_params.items()}

    # The evaluate stage keeps one clip per setting, the lowest seed's; show that seed's scores, so the
    # numbers under a player belong to the clip it plays.
    sc = data.scores[data.scores["utt"].isin(utts) & data.scores["metric"].isin(shown)]
    keys = ["kind", "system", "size", "budget", "t_infer"]
    sc = sc[sc["seed"] == sc.groupby(keys)["seed"].transform("min")]
    clip_scores = sc.set_index(keys + ["utt", "metric"])[["seed", "value"]]

    settings = data.audio_settings
    if acoustic:   # each system at the largest training budget (per size, T_infer and condition), and the floor
        top = max((s.budget for s in settings if s.kind not in (FLOOR, "mean_reference")), default=0)
        settings = [s for s in settings if s.kind in (FLOOR, "mean_reference") or s.budget == top]
    groups: dict[tuple, dict[str, AudioSetting]] = {}
    for s in settings:
        key = (s.kind, s.size, s.budget, s.t_infer) + ((s.condition,) if acoustic else ())
        groups.setdefault(key, {})[s.system] = s
    # the floor (each prior's own draw) first: what every trained system must beat
    order = sorted(groups, key=lambda k: (k[0] != FLOOR, sizes_rank.get(k[1], 0), k[1], k[2], k[3]) + k[4:])

    out: list[ListeningUtt] = []
    for utt in utts:
        ref = _copy(data.reference_audio[utt], out_dir, f"{audio_prefix}/reference/{utt}.wav")
        extra: list[tuple[str, str]] = []
        if acoustic:
            wav = data.vocoded_reference.get(utt)
            if wav is None:
                notes.append(f"{utt}: no vocoded ground-truth mel (vocoder(GT mel)) clip")
            else:
                extra.append(("vocoded ground-truth mel", _copy(wav, out_dir, f"{audio_prefix}/{wav.parent.name}/{utt}.wav")))
        rows: list[ListeningRow] = []
        for key in order:
            kind, size, budget, t = key[:4]
            cond = f", {key[4]}" if acoustic and key[4] else ""
            if kind == FLOOR and acoustic:
                label = f"prior draw: each system's own x_S (mu_ph + s_ph n, learned mean + n, n), no decoder (the floor{cond})"
            elif kind == "mean_reference":
                label = "mu alone: phoneme means over ground-truth durations (the mean reference, not a floor)"
            elif kind == FLOOR:
                label = "prior noise: each prior's own sample, no denoising (the floor)"
            else:
                label = f"{size} ({fmt_params(n_params[size]) if size in n_params else '?'}), {budget} steps, T={t}{cond}"
            players: dict[str, Player] = {}
            for system in systems:
                setting = groups[key].get(system)
                if setting is None:
                    players[system] = Player(None, note=f"no {SYSTEM_LABELS[system]} examples at this setting")
                    continue
                wav = setting.directory / f"{utt}.wav"
                if not wav.is_file():
                    players[system] = Player(None, note=f"missing {wav}")
                    notes.append(f"{wav}: listening example not found")
                    continue
                rel = _copy(wav, out_dir, f"{audio_prefix}/{setting.name}/{utt}.wav")
                scores, seed = [], None
                for m in shown:
                    if acoustic and setting.condition and split_metric(m)[0] not in ("", setting.condition):
                        continue   # another condition's score is not this clip's
                    info = metric_info(m, directions[m])
                    k = (kind, system, size, budget, t, utt, m)
                    if k in clip_scores.index:
                        seed, value = int(clip_scores.loc[k, "seed"]), clip_scores.loc[k, "value"]
                        scores.append((info.heading, "failed" if pd.isna(value) else info.fmt(value)))
                    else:
                        scores.append((info.heading, "not scored"))
                unit = "noise draw" if kind == FLOOR else "seed"  # a floor's "seed" indexes its noise draw
                note = f"{unit} {seed}" if seed is not None else ""
                players[system] = Player(rel, scores, note=note)
            rows.append(ListeningRow(label, players))
        out.append(ListeningUtt(utt, ref, rows, extra))
    if not data.audio_settings:
        notes.append(f"{data.eval_dir / 'audio'}: no synthesized examples, only the recordings are shown")
    return out, notes
