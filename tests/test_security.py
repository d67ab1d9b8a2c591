"""Misuse refused through the same doors a browser uses: files outside the workspace, run ids
that are paths, text that is really HTML."""
import httpx
import pytest

from helpers import free_port


@pytest.fixture(scope="module")
def server():
    from components.app import launch
    demo, url = launch(port=free_port(), block=False)
    yield url
    demo.close()


@pytest.mark.parametrize("path", ["/etc/passwd", "../../../../etc/passwd", "%2e%2e/%2e%2e/etc/passwd"])
def test_no_file_outside_the_allowed_folders_is_served(server, path):
    for route in ("gradio_api/file=", "file="):
        response = httpx.get(server + route + path, follow_redirects=True)
        assert response.status_code in (403, 404), (route, path, response.status_code)
        assert "root:" not in response.text


def test_source_code_and_workspace_are_not_served(server):
    from studio import paths
    for target in (__file__, str(paths.home() / "runs")):
        response = httpx.get(server + "gradio_api/file=" + target, follow_redirects=True)
        assert response.status_code in (403, 404), (target, response.status_code)


def test_run_ids_that_are_paths_are_refused():
    from studio.runs import history
    for bad in ("../../etc", "/etc", "..", ".hidden", "a/b"):
        with pytest.raises(history.RunNotFound):
            history.find_run(bad)


def test_class_names_are_shown_as_text_not_html():
    from components import views
    page = views.confusion_html([[1, 0], [0, 1]], ["<img src=x onerror=alert(1)>", "b"], clickable=True)
    assert "<img" not in page and "&lt;img" in page


class _Payload:
    """A pickle that runs a command when loaded: what a crafted "model file" would carry."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        import os
        return (os.system, (f"touch {self.marker}",))


@pytest.mark.parametrize("packing", ["raw pickle", "torch.save archive"])
def test_a_crafted_pickle_is_refused_without_running_it(tmp_path, packing):
    import pickle

    import torch

    from studio.inference import Predictor
    from studio.modelfile import ModelFileError
    marker = tmp_path / "pwned"
    evil = tmp_path / "model.pt"
    if packing == "raw pickle":
        evil.write_bytes(pickle.dumps(_Payload(marker)))
    else:
        torch.save({"state_dict": _Payload(marker)}, evil)
    with pytest.raises(ModelFileError, match="not a readable"):
        Predictor(evil)
    assert not marker.exists(), "loading the file ran its code"
