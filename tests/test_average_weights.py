"""Weight averaging ("model soup") of fine-tuned models: the library function and tools/average_weights.py."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch
from monai.networks.nets import UNet

from monai_ext.engines.weight_averaging import average_state_dicts, load_state_dict_file

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tools"))
import average_weights  # noqa: E402


def _net(seed: int) -> UNet:
    torch.manual_seed(seed)
    return UNet(2, 1, 1, channels=(4, 8), strides=(2,), num_res_units=1, norm="batch")


def test_average_state_dicts_weighted_mean():
    a, b = _net(0).state_dict(), _net(1).state_dict()
    b = {k: v + 1 if k.endswith("num_batches_tracked") else v for k, v in b.items()}
    equal = average_state_dicts([a, b])
    weighted = average_state_dicts([a, b], [3.0, 1.0])
    for k, v in a.items():
        if v.is_floating_point():
            torch.testing.assert_close(equal[k], (v + b[k]) / 2)
            torch.testing.assert_close(weighted[k], 0.75 * v + 0.25 * b[k])
            assert equal[k].dtype == v.dtype
        else:  # integer buffers come from the last state dict, not a mean
            assert torch.equal(equal[k], b[k])
    # the average of a model with itself is that model
    same = average_state_dicts([a, a])
    assert all(torch.equal(same[k], a[k]) for k in a)


def test_average_state_dicts_errors():
    a = _net(0).state_dict()
    with pytest.raises(ValueError, match="at least two"):
        average_state_dicts([a])
    with pytest.raises(ValueError, match="other keys"):
        average_state_dicts([a, {k: v for k, v in a.items() if "model.0" not in k}])
    other = UNet(2, 1, 1, channels=(4, 16), strides=(2,), num_res_units=1, norm="batch").state_dict()
    with pytest.raises(ValueError, match="shape"):
        average_state_dicts([a, other])
    with pytest.raises(ValueError, match="weight"):
        average_state_dicts([a, a], [1.0])
    with pytest.raises(ValueError, match="weight"):
        average_state_dicts([a, a], [1.0, -1.0])


def test_average_weights_tool_round_trip_and_keeps_output_on_error(tmp_path, capsys):
    paths = []
    for seed in (0, 1):
        paths.append(tmp_path / f"m{seed}.pt")
        torch.save(_net(seed).state_dict(), paths[-1])
    out = tmp_path / "soup" / "model.pt"
    assert average_weights.main([str(p) for p in paths] + ["--out", str(out)]) == 0
    soup = load_state_dict_file(out)
    net = _net(2)
    net.load_state_dict(soup, strict=True)  # loads into the same network
    a, b = (torch.load(p, weights_only=True) for p in paths)
    key = next(k for k, v in a.items() if v.is_floating_point() and not torch.equal(v, b[k]))
    torch.testing.assert_close(soup[key], (a[key] + b[key]) / 2)
    before = out.read_bytes()
    # a training checkpoint (nested dict), a corrupt file and a missing file are refused; the output stays
    torch.save({"network": a, "epoch": 3}, tmp_path / "checkpoint.pt")
    (tmp_path / "corrupt.pt").write_bytes(b"not a torch file")
    for bad, message in (("checkpoint.pt", "not a flat state dict"), ("corrupt.pt", "not a readable"), ("missing.pt", "no weights file")):
        assert average_weights.main([str(paths[0]), str(tmp_path / bad), "--out", str(out)]) == 2
        assert message in capsys.readouterr().err
        assert out.read_bytes() == before
