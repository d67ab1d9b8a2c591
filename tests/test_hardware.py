"""Device, precision and memory-budget decisions: the parts of the CUDA path a CPU can check."""
import pytest
import torch

from studio import hardware
from studio.data import pixels


def test_bf16_guess_can_be_overridden(monkeypatch):
    monkeypatch.setenv("STUDIO_BF16", "0")
    assert hardware.fast_bf16(torch.device("cpu")) is False
    monkeypatch.setenv("STUDIO_BF16", "1")
    assert hardware.fast_bf16(torch.device("cpu")) is True
    monkeypatch.delenv("STUDIO_BF16")
    native = bool({"amx_bf16", "avx512_bf16"} & hardware.cpu_flags())
    assert hardware.fast_bf16(torch.device("cpu")) == native


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message a machine without a GPU gives")
def test_asking_for_cuda_without_a_gpu_is_a_clear_error():
    with pytest.raises(ValueError, match="No CUDA GPU"):
        hardware.pick_device("cuda")
    assert hardware.pick_device("auto").type == "cpu"
    assert pixels.gpu_budget(torch.device("cpu")) == 0  # nothing is ever placed on a GPU it does not have


def test_memory_budget_sources(monkeypatch):
    assert pixels.parse_size("512MB") == 512 * 1024 ** 2
    assert pixels.parse_size("1.5 GB") == int(1.5 * 1024 ** 3)
    assert pixels.parse_size("2048") == 2048
    with pytest.raises(ValueError, match="512MB"):
        pixels.parse_size("lots")
    monkeypatch.setenv("STUDIO_CACHE_BUDGET", "3GB")
    assert pixels.memory_budget() == 3 * 1024 ** 3
    assert pixels.memory_budget(override_mb=10) == 10 * 1024 ** 2  # the run's own setting wins
    monkeypatch.delenv("STUDIO_CACHE_BUDGET")
    assert 0 < pixels.memory_budget() <= pixels.available_memory()


def test_cached_and_streamed_sources_hand_out_identical_batches(small_dataset):
    files = sorted(str(p) for p in small_dataset.rglob("*.jpg"))[:10]
    cached, failures = pixels.decode_all(files, 64)
    assert not failures
    batches = [torch.tensor([3, 1, 4]), torch.tensor([9, 0])]
    from_memory = list(pixels.CachedPixels(cached).batches(batches, torch.device("cpu")))
    from_disk = list(pixels.StreamedPixels(files, 64, workers=2).batches(batches, torch.device("cpu")))
    assert all(torch.equal(a, b) for a, b in zip(from_memory, from_disk)) and len(from_disk) == 2
