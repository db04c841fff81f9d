"""Secret scrubbing of ansible-runner artifacts: Secret objects in events, their values in text."""

from __future__ import annotations

import base64
import json
import stat
from pathlib import Path
from typing import Any

import pytest

from runner import ansible
from runner.artifacts import MASK, Scrubber, mask, scrub_run

PASSWORD = "planted-password-3f9c1e"
TOKEN = "planted-token\n"  # as `echo ... | base64` stores it: a trailing newline
OLD_PASSWORD = "planted-old-password-77ab"
STRING_DATA = "planted-string-data-51d0"
CONFIG = "not-a-secret-config-value"


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


PLANTED = [PASSWORD, b64(PASSWORD), TOKEN.strip(), b64(TOKEN), OLD_PASSWORD, b64(OLD_PASSWORD),
           STRING_DATA, b64(STRING_DATA)]


def secret(data: dict[str, str], *, kind: bool = True, name: str = "db") -> dict[str, Any]:
    obj: dict[str, Any] = {
        "metadata": {"name": name, "namespace": "ns", "resourceVersion": "335",
                     "managedFields": [{"manager": "kubectl", "fieldsV1": {"f:data": {"f:password": {}}}}]},
        "data": data, "type": "Opaque",
    }
    return {"kind": "Secret", "apiVersion": "v1", **obj} if kind else obj


def event(counter: int, kind: str, task: str, action: str, res: dict[str, Any] | None = None,
          stdout: str = "") -> dict[str, Any]:
    """An event as ansible-runner writes it to job_events/<counter>-<uuid>.json."""
    uuid = f"00000000-0000-0000-0000-{counter:012d}"
    data: dict[str, Any] = {"playbook": "reconcile.yml", "play": "Reconcile", "task": task,
                            "task_action": action, "role": "secret_reader", "host": "localhost",
                            "task_path": "/roles/secret_reader/tasks/main.yml:1", "uuid": uuid}
    if res is not None:
        data["res"] = {**res, "_ansible_no_log": False}
        data["duration"] = 0.5
    return {"uuid": uuid, "counter": counter, "stdout": stdout, "start_line": counter, "end_line": counter + 1,
            "runner_ident": "run-1", "event": kind, "pid": 4242, "created": "2026-01-01T00:00:00+00:00",
            "event_data": data}


def color(text: str, code: str = "0;32") -> str:
    return "\r\n".join(f"\x1b[{code}m{line}\x1b[0m" for line in text.splitlines())


def run_events() -> list[dict[str, Any]]:
    read = {"changed": False, "api_found": True,
            "resources": [secret({"password": b64(PASSWORD), "token": b64(TOKEN)})],
            "invocation": {"module_args": {"kind": "Secret", "name": "db", "namespace": "ns"}}}
    shown = {"r": {"resources": [secret({"password": b64(PASSWORD), "token": b64(TOKEN)})], "failed": False},
             "_ansible_verbose_always": True, "changed": False}
    updated = secret({"password": b64(PASSWORD)})
    updated["metadata"]["annotations"] = {"kubectl.kubernetes.io/last-applied-configuration": json.dumps(
        {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "db"}, "stringData": {"password": STRING_DATA}})}
    update = {"changed": True, "method": "apply", "result": updated,
              "diff": {"before": {"data": {"password": b64(OLD_PASSWORD)}, "metadata": {"resourceVersion": "1"}},
                       "after": {"data": {"password": b64(PASSWORD)}, "metadata": {"resourceVersion": "2"}}},
              "invocation": {"module_args": {"apply": True, "definition": {
                  "apiVersion": "v1", "kind": "Secret", "metadata": {"name": "db"},
                  "stringData": {"password": STRING_DATA}}}}}
    config_map = {"changed": False, "result": {"kind": "ConfigMap", "apiVersion": "v1",
                                               "metadata": {"name": "cfg"}, "data": {"setting": CONFIG}}}
    return [
        event(1, "playbook_on_start", "", ""),
        event(2, "runner_on_ok", "Write the ConfigMap", "kubernetes.core.k8s", config_map,
              color("changed: [localhost]", "0;33")),
        event(3, "runner_on_ok", "Read the Secret", "kubernetes.core.k8s_info", read, color("ok: [localhost]")),
        event(4, "runner_on_ok", "Show the Secret", "ansible.builtin.debug", shown,
              color("ok: [localhost] => " + json.dumps(shown["r"], indent=4))),
        event(5, "runner_on_ok", "Say the password", "ansible.builtin.debug",
              {"msg": f"password is {PASSWORD}", "changed": False},
              color(f'ok: [localhost] => {{\n    "msg": "password is {PASSWORD}"\n}}')),
        event(6, "runner_on_ok", "Rotate the Secret", "kubernetes.core.k8s", update,
              color("changed: [localhost]", "0;33")),
        event(7, "runner_on_failed", "Give up", "ansible.builtin.fail",
              {"msg": f"cannot log in with {PASSWORD} or {TOKEN.strip()}", "changed": False},
              color(f'fatal: [localhost]: FAILED! => {{"changed": false, "msg": "cannot log in with {PASSWORD} '
                    f'or {TOKEN.strip()}"}}', "0;31")),
        event(8, "playbook_on_stats", "", "", None,
              color("PLAY RECAP ***\nlocalhost : ok=5 changed=1 unreachable=0 failed=1")),
    ]


def write_run(root: Path, events: list[dict[str, Any]]) -> Path:
    """A fake ansible-runner artifact directory for one run."""
    artifact_dir = root / "artifacts" / "run-1"
    (artifact_dir / "job_events").mkdir(parents=True)
    for e in events:
        path = artifact_dir / "job_events" / f"{e['counter']}-{e['uuid']}.json"
        path.write_text(json.dumps(e))
        path.chmod(0o600)
    (artifact_dir / "stdout").write_text("\r\n".join(e["stdout"] for e in events if e["stdout"]))
    (artifact_dir / "stdout").chmod(0o640)
    (artifact_dir / "stderr").write_text(f"[WARNING]: something about {PASSWORD}\n")
    (artifact_dir / "status").write_text("failed")
    (artifact_dir / "rc").write_text("2")
    return artifact_dir


def files(artifact_dir: Path) -> dict[str, str]:
    return {str(p.relative_to(artifact_dir)): p.read_text() for p in sorted(artifact_dir.rglob("*")) if p.is_file()}


def leaks(artifact_dir: Path) -> list[tuple[str, str]]:
    return [(name, value) for name, text in files(artifact_dir).items() for value in PLANTED if value in text]


def load(artifact_dir: Path, counter: int) -> dict[str, Any]:
    [path] = (artifact_dir / "job_events").glob(f"{counter}-*.json")
    return dict(json.loads(path.read_text()))


def test_every_planted_value_is_gone_from_every_file(tmp_path: Path) -> None:
    artifact_dir = write_run(tmp_path, run_events())
    assert leaks(artifact_dir)  # the fixture really plants them

    assert scrub_run(artifact_dir) > 0

    assert leaks(artifact_dir) == []
    assert not list(artifact_dir.rglob("*.tmp"))


def test_secret_keys_stay_and_their_values_are_masked(tmp_path: Path) -> None:
    artifact_dir = write_run(tmp_path, run_events())
    scrub_run(artifact_dir)

    [found] = load(artifact_dir, 3)["event_data"]["res"]["resources"]
    assert found["data"] == {"password": MASK, "token": MASK}
    assert found["metadata"]["name"] == "db" and found["type"] == "Opaque"
    assert found["metadata"]["managedFields"][0]["fieldsV1"] == {"f:data": {"f:password": {}}}

    shown = load(artifact_dir, 4)["event_data"]["res"]["r"]["resources"][0]
    assert shown["data"] == {"password": MASK, "token": MASK}

    update = load(artifact_dir, 6)["event_data"]["res"]
    assert update["diff"]["before"]["data"] == {"password": MASK}
    assert update["diff"]["after"]["data"] == {"password": MASK}
    assert update["invocation"]["module_args"]["definition"]["stringData"] == {"password": MASK}
    annotations = update["result"]["metadata"]["annotations"]
    applied = json.loads(annotations["kubectl.kubernetes.io/last-applied-configuration"])
    assert applied["stringData"] == {"password": MASK}


def test_text_around_the_values_is_kept(tmp_path: Path) -> None:
    artifact_dir = write_run(tmp_path, run_events())
    scrub_run(artifact_dir)

    assert load(artifact_dir, 5)["event_data"]["res"]["msg"] == f"password is {MASK}"
    failed = load(artifact_dir, 7)
    assert failed["event_data"]["res"]["msg"] == f"cannot log in with {MASK} or {MASK}"
    assert failed["event_data"]["task"] == "Give up" and failed["counter"] == 7
    stdout = (artifact_dir / "stdout").read_text()
    assert f"password is {MASK}" in stdout and "PLAY RECAP" in stdout and "\x1b[0;31mfatal" in stdout
    assert (artifact_dir / "stderr").read_text() == f"[WARNING]: something about {MASK}\n"
    assert (artifact_dir / "status").read_text() == "failed"


def test_other_kinds_are_left_alone(tmp_path: Path) -> None:
    artifact_dir = write_run(tmp_path, run_events())
    scrub_run(artifact_dir)
    assert load(artifact_dir, 2)["event_data"]["res"]["result"]["data"] == {"setting": CONFIG}


def test_a_second_pass_changes_nothing(tmp_path: Path) -> None:
    artifact_dir = write_run(tmp_path, run_events())
    scrub_run(artifact_dir)
    before = files(artifact_dir)

    assert scrub_run(artifact_dir) == 0
    assert files(artifact_dir) == before


def test_file_modes_are_kept(tmp_path: Path) -> None:
    artifact_dir = write_run(tmp_path, run_events())
    scrub_run(artifact_dir)
    assert stat.S_IMODE((artifact_dir / "stdout").stat().st_mode) == 0o640
    assert all(stat.S_IMODE(p.stat().st_mode) == 0o600 for p in (artifact_dir / "job_events").iterdir())


def test_a_value_printed_before_its_secret_was_read_is_masked(tmp_path: Path) -> None:
    early = event(1, "runner_on_ok", "Say it early", "ansible.builtin.debug", {"msg": PASSWORD}, PASSWORD)
    read = event(2, "runner_on_ok", "Read", "kubernetes.core.k8s_info",
                 {"resources": [secret({"password": b64(PASSWORD)})]})
    artifact_dir = write_run(tmp_path, [early, read])
    scrub_run(artifact_dir)
    assert load(artifact_dir, 1)["event_data"]["res"]["msg"] == MASK
    assert PASSWORD not in (artifact_dir / "stdout").read_text()


def test_items_of_a_raw_secret_list_count_as_secrets(tmp_path: Path) -> None:
    listed = {"status": 200, "json": {"kind": "SecretList", "apiVersion": "v1",
                                      "items": [secret({"password": b64(PASSWORD)}, kind=False)]}}
    artifact_dir = write_run(tmp_path, [event(1, "runner_on_ok", "List", "ansible.builtin.uri", listed)])
    scrub_run(artifact_dir)
    assert load(artifact_dir, 1)["event_data"]["res"]["json"]["items"][0]["data"] == {"password": MASK}
    assert leaks(artifact_dir) == []


def test_short_values_are_masked_in_the_secret_only(tmp_path: Path) -> None:
    read = event(1, "runner_on_ok", "Read", "kubernetes.core.k8s_info",
                 {"resources": [secret({"enabled": b64("on")})]}, "ok: done on time")
    artifact_dir = write_run(tmp_path, [read])
    scrub_run(artifact_dir)
    event_data = load(artifact_dir, 1)
    assert event_data["event_data"]["res"]["resources"][0]["data"] == {"enabled": MASK}
    assert event_data["stdout"] == "ok: done on time"


def test_values_escaped_in_json_text_are_masked(tmp_path: Path) -> None:
    value = 'line one "quoted"\nline two'
    read = event(1, "runner_on_ok", "Read", "kubernetes.core.k8s_info",
                 {"resources": [secret({"cert": b64(value)})]}, "ok: " + json.dumps({"msg": value}))
    artifact_dir = write_run(tmp_path, [read])
    scrub_run(artifact_dir)
    assert load(artifact_dir, 1)["stdout"] == "ok: " + json.dumps({"msg": MASK})
    assert json.dumps(value)[1:-1] not in (artifact_dir / "stdout").read_text()


def test_extra_secrets_are_masked_as_given(tmp_path: Path) -> None:
    artifact_dir = write_run(tmp_path, [event(1, "runner_on_ok", "Say", "ansible.builtin.debug",
                                              {"msg": "api key: extra-key-9000"}, "api key: extra-key-9000")])
    assert scrub_run(artifact_dir, extra_secrets=["extra-key-9000"]) == 3  # res.msg, event stdout, stdout
    assert "extra-key-9000" not in "".join(files(artifact_dir).values())


def test_an_event_file_that_is_not_json_is_masked_as_text(tmp_path: Path) -> None:
    artifact_dir = write_run(tmp_path, run_events())
    cut = artifact_dir / "job_events" / "9-cut.json"
    cut.write_text(f'{{"event": "runner_on_ok", "stdout": "{PASSWORD}')
    scrub_run(artifact_dir)
    assert cut.read_text() == f'{{"event": "runner_on_ok", "stdout": "{MASK}'


def test_bytes_that_are_not_utf8_survive(tmp_path: Path) -> None:
    artifact_dir = write_run(tmp_path, run_events())
    raw = b"\xff\xfe binary " + PASSWORD.encode() + b" \xc3("
    (artifact_dir / "stdout").write_bytes(raw)
    scrub_run(artifact_dir)
    assert (artifact_dir / "stdout").read_bytes() == raw.replace(PASSWORD.encode(), MASK.encode())


def test_scrubbing_an_event_in_place_teaches_the_next_ones() -> None:
    scrubber = Scrubber()
    read = event(1, "runner_on_ok", "Read", "kubernetes.core.k8s_info",
                 {"resources": [secret({"password": b64(PASSWORD)})]})
    failed = event(2, "runner_on_failed", "Fail", "ansible.builtin.fail", {"msg": f"bad: {PASSWORD}"})
    assert scrubber.scrub(read) == 1
    assert scrubber.scrub(failed) == 1
    assert failed["event_data"]["res"]["msg"] == f"bad: {MASK}"
    assert {PASSWORD, b64(PASSWORD)} <= scrubber.secrets
    assert scrubber.mask_text(f"x{b64(PASSWORD)}x") == (f"x{MASK}x", 1)


@pytest.mark.parametrize(("text", "secrets", "expected"), [
    ("user s3cret-value logged in", ["s3cret-value"], f"user {MASK} logged in"),
    ("abc and abcdef", ["abcdef", "abcd"], f"abc and {MASK}"),  # longest first
    ("pin 123 ok", ["123"], "pin 123 ok"),  # too short to mask safely
    (f"already {MASK}", ["****"], f"already {MASK}"),  # nothing inside the mask
    ("nothing here", [], "nothing here"),
])
def test_mask(text: str, secrets: list[str], expected: str) -> None:
    assert mask(text, secrets) == expected


PLAYBOOK = """
- name: Leak a Secret
  hosts: localhost
  gather_facts: false
  tasks:
    - name: Pretend to read a Secret
      ansible.builtin.set_fact:
        found:
          apiVersion: v1
          kind: Secret
          metadata: {{name: db}}
          data: {{password: {encoded}}}
    - name: Print it
      ansible.builtin.debug:
        var: found
    - name: Fail with the value
      ansible.builtin.fail:
        msg: "cannot log in with {{{{ found.data.password | b64decode }}}}"
"""


def test_run_keeps_secrets_out_of_artifacts_and_result(tmp_path: Path) -> None:
    playbook = tmp_path / "leak.yml"
    playbook.write_text(PLAYBOOK.format(encoded=b64(PASSWORD)))
    seen: list[dict[str, Any]] = []
    result = ansible.run(ansible.RunRequest(target=ansible.Target(playbook=playbook), extravars={},
                                            private_data_dir=tmp_path / "run"), on_task=seen.append)

    assert not result.successful
    assert [f.message for f in result.failed_tasks] == [f"cannot log in with {MASK}"]
    reported = json.dumps([result.task_results, seen], default=str)
    assert PASSWORD not in reported and b64(PASSWORD) not in reported
    artifact_dir = Path(result.artifact_dir)
    texts = "".join(files(artifact_dir).values())
    assert "Print it" in texts and MASK in (artifact_dir / "stdout").read_text()
    assert PASSWORD not in texts and b64(PASSWORD) not in texts
