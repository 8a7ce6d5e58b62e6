"""Option dataclasses: ``--kernels`` is checked in one place (ModelConfig, through check_kernels)."""
from __future__ import annotations

import pytest

from vidrestore.config import KERNEL_CHOICES, ModelConfig, check_kernels
from vidrestore.errors import ConfigError


def test_kernels_is_checked_by_model_config():
    for choice in KERNEL_CHOICES:
        assert ModelConfig(kernels=choice).kernels == check_kernels(choice) == choice
    with pytest.raises(ConfigError, match="--kernels 'triton' is not one of auto, cupy, torch") as err:
        ModelConfig(kernels="triton")  # type: ignore[arg-type]
    assert err.value.exit_code == 7
