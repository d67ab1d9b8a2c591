"""Exported files load where the studio is not, and give the studio's answers."""
import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from conftest import example_files
from studio import export, modelfile
from studio.inference import Predictor
from studio.runs import MODEL_FILE


def test_readme_snippet_loads_the_model_file_without_the_studio(trained_run, tmp_path):
    """The README's few lines of timm/safetensors give the same logits as the studio."""
    model_path = Path(trained_run["run_dir"]) / MODEL_FILE
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    snippet = readme.split("<!-- load-snippet -->")[1].split("```python")[1].split("```")[0]
    image = example_files("val", "bees", 1)[0]
    predictor = Predictor(model_path)
    batch = predictor.tensor([image])
    torch.save(batch, tmp_path / "batch.pt")
    script = textwrap.dedent(snippet).replace('"model.safetensors"', repr(str(model_path)))
    script += textwrap.dedent(f"""
        import torch
        x = torch.load({str(tmp_path / 'batch.pt')!r})
        print(json.dumps(model(x).tolist()))
    """)
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=tmp_path,
                            timeout=300, env={"PATH": "/usr/bin:/bin", "PYTHONWARNINGS": "ignore"})
    assert result.returncode == 0, result.stderr
    logits = torch.tensor(json.loads(result.stdout.strip().splitlines()[-1]))
    with torch.no_grad():
        expected = predictor.model(batch)
    assert torch.allclose(logits, expected, atol=1e-4)


def test_torchscript_matches_in_a_fresh_process(trained_run, tmp_path):
    model_path = Path(trained_run["run_dir"]) / MODEL_FILE
    target = export.export_torchscript(model_path, tmp_path / "m.pt")
    images = example_files("val", "ants", 3) + example_files("val", "bees", 3)
    batch = Predictor(model_path).tensor(images)
    torch.save(batch, tmp_path / "batch.pt")
    script = (f"import torch, json; m = torch.jit.load({str(target)!r}); "
              f"print(json.dumps(m(torch.load({str(tmp_path / 'batch.pt')!r})).tolist()))")
    result = subprocess.run([sys.executable, "-W", "ignore", "-c", script], capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stderr
    with torch.no_grad():
        expected = Predictor(model_path).model(batch)
    assert torch.allclose(torch.tensor(json.loads(result.stdout)), expected, atol=1e-4)
    assert Predictor(target).classes == ["ants", "bees"]


def test_damaged_and_foreign_model_files_give_clear_errors(trained_run, tmp_path):
    model_path = Path(trained_run["run_dir"]) / MODEL_FILE
    truncated = tmp_path / "truncated.safetensors"
    truncated.write_bytes(model_path.read_bytes()[:5000])
    with pytest.raises(modelfile.ModelFileError):
        Predictor(truncated)
    from safetensors.torch import save_file
    save_file({"w": torch.zeros(2)}, str(tmp_path / "foreign.safetensors"))
    with pytest.raises(modelfile.ModelFileError, match="not a Transfer Studio model"):
        Predictor(tmp_path / "foreign.safetensors")
    with pytest.raises(modelfile.ModelFileError, match="does not exist"):
        Predictor(tmp_path / "nothing.safetensors")
