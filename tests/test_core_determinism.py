"""``train.deterministic``: the CUDA reproducibility switches are set when (and only when) asked for on
a CUDA device; CPU training needs none (its bit-identical resume is tested in test_core_train.py)."""
from __future__ import annotations

import pytest
import torch

from priorgrad.core.runtime import CUBLAS_DETERMINISTIC, configure_determinism


@pytest.fixture
def torch_flags(monkeypatch):
    """Restore torch's process-global flags after the test."""
    monkeypatch.delenv("CUBLAS_WORKSPACE_CONFIG", raising=False)
    saved = (torch.are_deterministic_algorithms_enabled(), torch.backends.cudnn.deterministic,
             torch.backends.cudnn.benchmark)
    yield
    torch.use_deterministic_algorithms(saved[0])
    torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = saved[1], saved[2]


def _flags():
    import os

    return (torch.are_deterministic_algorithms_enabled(), torch.backends.cudnn.deterministic,
            torch.backends.cudnn.benchmark, os.environ.get("CUBLAS_WORKSPACE_CONFIG"))


def test_cuda_deterministic_sets_every_switch(torch_flags):
    torch.use_deterministic_algorithms(False)
    torch.backends.cudnn.benchmark = True
    assert configure_determinism(True, torch.device("cuda")) is True  # a device object needs no GPU
    assert _flags() == (True, True, False, CUBLAS_DETERMINISTIC)


def test_keeps_a_deterministic_cublas_setting_and_replaces_another(torch_flags, monkeypatch):
    monkeypatch.setenv("CUBLAS_WORKSPACE_CONFIG", ":16:8")
    configure_determinism(True, torch.device("cuda:0"))
    assert _flags()[3] == ":16:8"
    monkeypatch.setenv("CUBLAS_WORKSPACE_CONFIG", ":0:0")
    configure_determinism(True, torch.device("cuda:0"))
    assert _flags()[3] == CUBLAS_DETERMINISTIC


@pytest.mark.parametrize("enabled,device", [(False, "cuda"), (True, "cpu"), (False, "cpu")])
def test_nothing_changes_when_not_asked_or_on_cpu(torch_flags, enabled, device):
    torch.use_deterministic_algorithms(False)
    torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = False, True
    assert configure_determinism(enabled, torch.device(device)) is False
    assert _flags() == (False, False, True, None)
