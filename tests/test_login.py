"""With login on, several people share one studio and each sees and steers only their own runs."""

import pytest
from gradio_client import Client, handle_file
from gradio_client.exceptions import AuthenticationError

from helpers import example_files, free_port

LOGINS = [("ann", "ann-pw"), ("bob", "bob-pw")]


@pytest.fixture(scope="module")
def server(server_runner):
    from components.app import launch
    demo, url = launch(port=free_port(), block=False, auth=LOGINS, runner=server_runner)
    yield url
    demo.close()


@pytest.mark.slow
def test_each_person_sees_only_their_own_runs(server, server_runner):
    with pytest.raises(AuthenticationError):  # the server answers /config with 401
        Client(server, verbose=False).predict(api_name="/use_example")  # no login, no page
    ann = Client(server, auth=LOGINS[0], verbose=False)
    bob = Client(server, auth=LOGINS[1], verbose=False)
    ann.predict(api_name="/use_example")
    status = ann.predict("mobilenetv2_100", "manual", 8, 2, "Auto", 32, [], api_name="/start_training")
    assert "Not started" not in status, status
    run = server_runner.current
    assert run.snapshot()["config"]["owner"] == "ann"

    bob_sees = bob.predict(api_name="/poll_training")[0]
    if run.is_active():
        assert "Someone else is training" in bob_sees, bob_sees
        assert "Only the person" in bob.predict(api_name="/stop_training")
    run.wait(300)
    assert run.snapshot()["status"] == "finished", run.snapshot()["error"]
    assert "Someone else" not in bob.predict(api_name="/poll_training")[0]

    ann_table = ann.predict(None, None, api_name="/list_runs")[0]
    bob_table = bob.predict(None, None, api_name="/list_runs")[0]
    ann_ids = [row[-1] for row in ann_table["data"]] if ann_table["data"] else []
    assert any(run.id in str(row) for row in ann_table["data"]), ann_ids
    assert not any(run.id in str(row) for row in bob_table["data"] or [])
    with pytest.raises(Exception, match="not in the list of choices"):  # bob's list does not hold it
        bob.predict(run.id, api_name="/show_run")
    from studio.runs import history
    with pytest.raises(history.RunNotFound, match="among your runs"):
        history.load_run(run.id, owner="bob")
    assert history.load_run(run.id, owner="ann")["summary"]["owner"] == "ann"

    bee = handle_file(str(example_files("val", "bees", 3)[-1]))
    assert "No trained model" in bob.predict(bee, api_name="/classify")[1]
    label, advice = ann.predict(bee, api_name="/classify")
    assert label["label"] in ("ants", "bees") and "sure" in advice


def test_login_file_and_bad_logins(tmp_path, capsys):
    from studio.cli import main
    from studio.commands import read_logins
    file = tmp_path / "logins.txt"
    file.write_text("# the team\nann:one\n\nbob:two:with-colon\n")
    assert read_logins(["cy:three"], str(file)) == [("cy", "three"), ("ann", "one"), ("bob", "two:with-colon")]
    with pytest.raises(ValueError, match="user:password"):
        read_logins(["nopassword"], None)
    assert main(["serve", "--auth", "x"]) == 2
    assert "user:password" in capsys.readouterr().err
