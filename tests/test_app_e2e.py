"""The real studio server driven through gradio_client, as the page drives it."""
import re
import time

import pytest
from gradio_client import Client, handle_file

from helpers import example_files


pytestmark = pytest.mark.slow  # every test trains real runs through the server


def test_wizard_end_to_end(server, tmp_path, server_runner):
    server_runner.wait()  # nothing else may be training
    client = Client(server, verbose=False)
    summary = client.predict(api_name="/use_example")[0]
    assert "2 classes" in summary

    status = client.predict("mobilenetv2_100", "manual", 8, 3, "Auto", 32, [], api_name="/start_training")
    assert "Starting" in status or "Not started" not in status
    second = Client(server, verbose=False)
    second.predict(api_name="/use_example")
    queued = second.predict("mobilenetv2_100", "manual", 8, 3, "Auto", 32, [], api_name="/start_training")
    assert "1st in line" in queued, queued   # a second Start waits its turn instead of being refused
    assert "in line" in second.predict(api_name="/poll_training")[0]   # that page follows its own queued run
    assert "out of the queue" in second.predict(api_name="/stop_training")

    seen_epochs, deadline, final = set(), time.time() + 240, None
    while time.time() < deadline:
        status, progress, loss, accuracy, confusion, per_class, choices, *photos = client.predict(
            api_name="/poll_training")
        if isinstance(accuracy, dict) and accuracy.get("data"):
            seen_epochs.add(len(accuracy["data"]) // 2)
        if status.startswith("**Finished") or "failed" in status:
            final = (status, loss, accuracy, confusion, per_class, choices, photos)
            break
        time.sleep(1)
    assert final and final[0].startswith("**Finished"), final
    status, loss, accuracy, confusion, per_class, choices, photos = final
    assert "What the studio chose" in choices and "learning rate" in choices
    assert len(accuracy["data"]) == 6  # 3 epochs x (train, validation)
    assert len(loss["data"]) == 6
    cells = [int(v) for v in re.findall(r"<td[^>]*>(\d+)</td>", confusion)]
    assert sum(cells) == 153 and "ants" in confusion and "bees" in confusion
    assert per_class["data"][0][0] == "ants"
    assert "data-true='ants' data-predicted='bees'" in confusion  # cells open their photos
    matrix = [cells[:2], cells[2:]]
    note, gallery = client.predict("bees", "bees", api_name="/train_cell_photos")
    assert f"**{matrix[1][1]}** validation photos of **bees**" in note
    assert len(gallery) == min(48, matrix[1][1])
    mistakes = photos[-1]
    assert 0 < len(mistakes) <= 12 and all(" said " in item["caption"] for item in mistakes)

    bee = example_files("val", "bees", 40)[-1]
    label, advice = client.predict(handle_file(str(bee)), api_name="/classify")
    assert label["label"] == "bees", label

    download, message = client.predict("onnx", api_name="/export_model")
    assert download.endswith("-onnx.zip") and "matches the trained model on 153/153 validation photos" in message
    from studio.inference import Predictor
    exported = Predictor(download)  # the zip: its model.onnx, run by onnxruntime
    assert exported.format == "onnx" and exported.predict([bee])[0][0][0] == "bees"


def test_reloaded_page_reattaches_to_the_running_job(server, small_dataset, server_runner):
    """A new browser session (a reload) sees the run another session started."""
    server_runner.wait()
    first = Client(server, verbose=False)
    first.predict(api_name="/use_example")
    first.predict("mobilenetv2_100", "manual", 4, 30, "Auto", 8, [], api_name="/start_training")
    reloaded = Client(server, verbose=False)
    deadline = time.time() + 180
    status, curve_lengths = "", []
    while time.time() < deadline:
        status, _, _, accuracy, *_ = reloaded.predict(api_name="/poll_training")
        if isinstance(accuracy, dict) and accuracy.get("data"):
            curve_lengths.append(len(accuracy["data"]))
        if "Epoch 2 of 30" in status:
            break
        time.sleep(0.5)
    assert "Epoch 2 of 30" in status, status
    assert curve_lengths[-1] == 4 and 2 in curve_lengths  # the curves grew epoch by epoch
    assert "Stopping" in reloaded.predict(api_name="/stop_training")
    server_runner.wait(120)
    assert reloaded.predict(api_name="/poll_training")[0].startswith("**Stopped")


def test_the_readme_gradio_client_recipe_runs_as_written(server, server_runner):
    """The README's recipe (use the example, start with every default, follow, classify), run unchanged but
    for the server's address and the photo."""
    import subprocess
    import sys
    from pathlib import Path

    server_runner.wait()
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    recipe = readme.split("<!-- client-recipe -->")[1].split("```python")[1].split("```")[0]
    bee = example_files("val", "bees", 1)[0]
    code = recipe.replace('"http://127.0.0.1:7860/"', repr(server)).replace('"photo.jpg"', repr(str(bee)))
    assert code.count(repr(server)) == 1 and code.count(repr(str(bee))) == 1
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=900)
    assert out.returncode == 0, out.stderr
    last = out.stdout.strip().splitlines()[-1]
    assert last.startswith("bees ") and "The model says" in last, out.stdout
