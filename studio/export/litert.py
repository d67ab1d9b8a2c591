"""TFLite (LiteRT) export: Google's converter, litert-torch, in an environment of its own.

Why a second environment: litert-torch 0.10 pins typing-extensions < 4.13 (through xdsl), which would
downgrade pydantic under Gradio; installed beside the studio it breaks the page. So the studio keeps it in
`converter_home()` (a venv that sees this Python's packages, so torch is shared, not downloaded again),
made once by `studio setup-tflite`, and runs the conversion there as a subprocess
(`templates/litert_convert.py`, which imports torch and the converter only). The model travels as a
torch.export program file. The LiteRT *runtime* (ai-edge-litert) installs cleanly beside the studio: the
parity check and predict.py run the .tflite file in it here.

The .tflite file carries the studio's description (class names, preprocessing, calibration) as a TFLite
metadata entry named like the ONNX one, so the file alone is enough, as with ONNX and TorchScript.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

from studio import modelfile, paths

CONVERTER = "litert-torch>=0.10,<0.11"
SCRIPT = Path(__file__).parent / "templates" / "litert_convert.py"
METADATA_NAME = modelfile.METADATA_KEY        # the TFLite metadata entry holding the description
CONVERT_TIMEOUT_S = 1800


class ConverterMissing(RuntimeError):
    """No LiteRT converter environment: the message says how to make one."""


def converter_home() -> Path:
    return paths.home() / "litert-converter"


def converter_python() -> Path | None:
    """The Python of the converter environment: STUDIO_LITERT_PYTHON, else the one `setup` makes."""
    given = os.environ.get("STUDIO_LITERT_PYTHON", "").strip()
    if given:
        return Path(given)
    made = converter_home() / ("Scripts/python.exe" if os.name == "nt" else "bin/python")
    return made if made.is_file() else None


SETUP_WORDS = ("TFLite export needs Google's converter (litert-torch) in an environment of its own, because "
               "it pins older packages than the studio's. Make it once with `studio setup-tflite` (about a "
               "minute and 1.2 GB), or point STUDIO_LITERT_PYTHON at a Python that has litert-torch; then "
               "export again.")


def setup(progress=print, home: Path | None = None) -> Path:
    """Make the converter environment (a venv seeing this Python's packages; in `home`, by default
    converter_home()) and install litert-torch there; returns its Python. Installing the same torch version as
    here keeps the model program readable."""
    home = Path(home) if home is not None else converter_home()
    progress(f"Making the LiteRT converter environment in {home}")
    subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", str(home)], check=True)
    python = home / ("Scripts/python.exe" if os.name == "nt" else "bin/python")
    if sys.prefix != sys.base_prefix:   # the studio runs in a venv: --system-site-packages would not show it
        _see_these_packages(python)
    same_torch = f"torch=={torch.__version__.split('+')[0]}"
    progress(f"Installing {CONVERTER} there (the studio's own packages are not changed)")
    subprocess.run([str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", CONVERTER,
                    same_torch], check=True)
    return python


RUNTIME_WORDS = ("TFLite export checks the file in the LiteRT runtime, which is not installed beside the studio: "
                 "pip install ai-edge-litert (or pip install -e \".[tflite]\"), then export again.")


def runtime_missing() -> bool:
    try:
        import ai_edge_litert.interpreter  # noqa: F401
    except ImportError:
        return True
    return False


def _see_these_packages(python: Path) -> None:
    """Let the converter environment import this environment's packages (torch above all), after its own:
    a .pth file in its site-packages naming ours (what --system-site-packages does for a base Python)."""
    import site
    theirs = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                            capture_output=True, text=True, check=True).stdout.strip()
    Path(theirs, "transfer-studio-packages.pth").write_text("\n".join(site.getsitepackages()) + "\n")


def convert(model_path: Path, out_path: Path, int8: bool, description: dict) -> dict:
    """The run's model as a .tflite file (float, or with int8 weights), its description inside; returns the
    converter's versions. Raises ConverterMissing (no converter, or no runtime to check the file with), or
    RuntimeError with the converter's last words."""
    if runtime_missing():
        raise ConverterMissing(RUNTIME_WORDS)
    python = converter_python()
    if python is None or not python.is_file():
        raise ConverterMissing(SETUP_WORDS if python is None else
                               f"STUDIO_LITERT_PYTHON names {python}, which is not there. " + SETUP_WORDS)
    model, meta = modelfile.load(model_path, "cpu")
    size = int(meta["preprocessing"]["input_size"])
    with tempfile.TemporaryDirectory(prefix="studio-litert-") as scratch:
        program, plain = Path(scratch) / "model.pt2", Path(scratch) / "model.tflite"
        with torch.no_grad():
            torch.export.save(torch.export.export(model.eval(), (torch.zeros(1, 3, size, size),)), program)
        command = [str(python), str(SCRIPT), "--program", str(program), "--size", str(size), "--out", str(plain)]
        try:
            done = subprocess.run(command + (["--int8"] if int8 else []), capture_output=True, text=True,
                                  timeout=CONVERT_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            raise RuntimeError(f"The LiteRT converter took over {CONVERT_TIMEOUT_S // 60} minutes and was "
                               "stopped") from None
        except OSError as exc:
            raise RuntimeError(f"The LiteRT converter could not be started ({python}: {exc})") from None
        if done.returncode != 0 or not plain.is_file():
            said = (done.stderr.strip() or done.stdout.strip()).splitlines()[-3:]
            raise RuntimeError("The LiteRT converter failed: " + " | ".join(said))
        try:
            versions = json.loads(done.stdout.strip().splitlines()[-1])
        except (ValueError, IndexError):
            versions = {}
        with_description(plain, out_path, description)
    return versions


def with_description(source: Path, target: Path, description: dict) -> None:
    """Copy a .tflite model with the studio's description added as a metadata entry (atomically). LiteRT's own
    flatbuffer tools read it (weights stored after the flatbuffer taken in) and write it back."""
    from ai_edge_litert import schema_py_generated as schema
    from ai_edge_litert.tools import flatbuffer_utils
    model = flatbuffer_utils.read_model_from_bytearray(bytearray(Path(source).read_bytes()))
    buffer = schema.BufferT()
    buffer.data = np.frombuffer(json.dumps(description).encode(), dtype=np.uint8)
    model.buffers.append(buffer)
    entry = schema.MetadataT()
    entry.name, entry.buffer = METADATA_NAME, len(model.buffers) - 1
    model.metadata = [m for m in (model.metadata or []) if m.name not in (METADATA_NAME, METADATA_NAME.encode())]
    model.metadata.append(entry)
    partial = Path(target).with_name(Path(target).name + ".partial")
    try:
        partial.write_bytes(bytes(flatbuffer_utils.convert_object_to_bytearray(model)))
        os.replace(partial, target)
    finally:
        partial.unlink(missing_ok=True)


def read_description(path: Path) -> str | None:
    """The studio's description stored in a .tflite file (JSON text), or None."""
    from ai_edge_litert import schema_py_generated as schema
    model = schema.Model.GetRootAs(Path(path).read_bytes(), 0)
    for i in range(model.MetadataLength()):
        entry = model.Metadata(i)
        if entry.Name() == METADATA_NAME.encode():
            return bytes(model.Buffers(entry.Buffer()).DataAsNumpy()).decode()
    return None


class TfliteModel:
    """A .tflite file in the LiteRT interpreter, taking and giving torch tensors like the other formats. The
    converter fixes the batch at one photo, so a batch runs photo by photo."""

    def __init__(self, path: Path):
        from importlib.metadata import version

        from ai_edge_litert.interpreter import Interpreter
        self.interpreter = Interpreter(model_path=str(path))
        self.interpreter.allocate_tensors()
        self.input = self.interpreter.get_input_details()[0]["index"]
        self.output = self.interpreter.get_output_details()[0]["index"]
        self.runtime = f"LiteRT (ai-edge-litert {version('ai-edge-litert')})"

    def __call__(self, batch: torch.Tensor) -> torch.Tensor:
        rows = []
        for photo in batch.detach().cpu().float().numpy():
            self.interpreter.set_tensor(self.input, np.ascontiguousarray(photo[None]))
            self.interpreter.invoke()
            rows.append(self.interpreter.get_tensor(self.output).copy())
        return torch.from_numpy(np.concatenate(rows))
