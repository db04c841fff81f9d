"""hack/devkit.py: what hack/, bench/ and tests/ share, including the malformed versions.env
lines the old copies each read their own way."""

from __future__ import annotations

import os
import socket
import subprocess
import sys

import pytest

from hack import devkit


def test_versions_reads_the_pinned_file() -> None:
    pinned = devkit.versions()
    assert set(pinned) >= {"KUBE_VERSION", "ETCD_VERSION", "KWOK_VERSION", "SDK_ANSIBLE_OPERATOR_VERSION"}
    assert pinned["KUBE_VERSION"].startswith("v")


def test_versions_as_the_shell_reads_them() -> None:
    text = "# a comment\n\n  KUBE_VERSION=v1.2.3  \nQUOTED=\"v4\"\nSINGLE='v5'\nEMPTY=\nURL=a=b\n"
    assert devkit.parse_versions(text) == {"KUBE_VERSION": "v1.2.3", "QUOTED": "v4", "SINGLE": "v5", "EMPTY": "",
                                           "URL": "a=b"}


@pytest.mark.parametrize("line", ["KUBE_VERSION v1", "KUBE VERSION=v1", "KUBE_VERSION= v1", "=v1", "1X=v1"])
def test_a_line_the_shell_would_not_assign_is_an_error_naming_it(line: str) -> None:
    with pytest.raises(ValueError, match=r"versions.env:2: expected KEY=value"):
        devkit.parse_versions(f"# pinned\n{line}\n")


def test_the_same_versions_as_the_shell_scripts_see() -> None:
    # hack/build-control-plane.sh `source`s the file: what bash sees is what devkit reads.
    names = " ".join(f"${{{k}}}" for k in devkit.versions())
    shell = subprocess.run(["bash", "-c", f"source {devkit.VERSIONS_FILE} && echo {names}"],
                           capture_output=True, text=True, check=True).stdout.split()
    assert shell == list(devkit.versions().values())


def test_cache_dir_follows_the_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: object) -> None:
    monkeypatch.setenv("PLAYBOOK_OPERATOR_CACHE", str(tmp_path))
    assert str(devkit.cache_dir()) == str(tmp_path)
    assert devkit.kube_bin_dir().parent.parent == devkit.cache_dir()
    monkeypatch.setenv("PLAYBOOK_OPERATOR_CACHE", "")  # set but empty: the default, not the current directory
    assert devkit.cache_dir().name == "playbook-operator"


def test_free_port_is_free_and_port_in_use_sees_a_listener() -> None:
    port = devkit.free_port()
    assert not devkit.port_in_use(port)
    with socket.socket() as server:
        server.bind(("127.0.0.1", port))
        server.listen()
        assert devkit.port_in_use(port)


def test_pid_alive() -> None:
    assert devkit.pid_alive(os.getpid())
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    # Exited but not reaped: a zombie is not alive.
    os.waitid(os.P_PID, child.pid, os.WEXITED | os.WNOWAIT)
    assert not devkit.pid_alive(child.pid)
    child.wait()
    assert not devkit.pid_alive(child.pid)
    # 0 and negatives name process groups, not a process.
    assert not devkit.pid_alive(0) and not devkit.pid_alive(-1)
