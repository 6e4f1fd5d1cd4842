"""TORCH__DEVICE as every torch backend reads it."""

import pytest

pytest.importorskip("torch")

from s2s.devices import torch_device
from s2s.errors import ConfigError


def test_auto_and_cpu_on_a_machine_without_gpu() -> None:
    assert torch_device("auto") == "cpu"
    assert torch_device("cpu") == "cpu"


@pytest.mark.parametrize("name", ["cuda", "cuda:1"])
def test_a_missing_gpu_is_an_error_not_a_silent_cpu_run(name: str) -> None:
    with pytest.raises(ConfigError, match="torch sees 0 CUDA device"):
        torch_device(name)


@pytest.mark.parametrize("name", ["gpu", "cuda:x", "mps0", ""])
def test_unknown_names_are_refused(name: str) -> None:
    with pytest.raises(ConfigError, match="use auto, cpu, cuda or cuda:N"):
        torch_device(name)
