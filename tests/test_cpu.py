"""usable_cores: the process's CPU affinity, not the machine's core count;
flush_denormals: subnormal floats read as zero inside the block, and only there."""

from __future__ import annotations

import os

import pytest
import torch

from ccvae.cpu import flush_denormals, flushing_denormals, usable_cores

needs_flush = pytest.mark.skipif(not torch.set_flush_denormal(False),
                                 reason="this CPU cannot flush denormals (not x86 with SSE3)")


def test_usable_cores_follows_the_affinity_mask(monkeypatch):
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {3}, raising=False)
    monkeypatch.setattr(os, "cpu_count", lambda: 64)
    assert usable_cores() == 1


def test_usable_cores_falls_back_to_the_core_count_without_affinity(monkeypatch):
    monkeypatch.delattr(os, "sched_getaffinity", raising=False)
    monkeypatch.setattr(os, "cpu_count", lambda: 6)
    assert usable_cores() == 6
    monkeypatch.setattr(os, "cpu_count", lambda: None)  # "undeterminable"
    assert usable_cores() == 1


@needs_flush
def test_flush_denormals_flushes_inside_and_restores_after_even_on_error():
    tiny = torch.tensor([1e-39])  # a float32 subnormal
    assert not flushing_denormals() and (tiny * 1.0)[0] > 0
    with pytest.raises(RuntimeError, match="inside"):
        with flush_denormals() as supported:
            assert supported and flushing_denormals()
            assert (tiny * 1.0)[0] == 0 and (torch.tensor([1e-300], dtype=torch.float64) * 1e-10)[0] == 0
            raise RuntimeError("inside")
    assert not flushing_denormals() and (tiny * 1.0)[0] > 0


@needs_flush
def test_flush_denormals_keeps_a_setting_made_before_it():
    torch.set_flush_denormal(True)
    try:
        with flush_denormals():
            pass
        assert flushing_denormals()  # restored to on, not to torch's default
    finally:
        torch.set_flush_denormal(False)
    assert not flushing_denormals()
