"""What hack/, bench/ and tests/ share: the pinned versions, the binary cache, free ports and
process liveness. Standard library only: hack/cluster.py imports it with the system Python,
before the virtualenv exists.

    from hack import devkit          # bench/, tests/ (the repository root is on sys.path)
    import devkit                    # a script in hack/ (its own directory is on sys.path)
"""

from __future__ import annotations

import os
import socket
from pathlib import Path

HACK = Path(__file__).resolve().parent
VERSIONS_FILE = HACK / "versions.env"


def parse_versions(text: str, *, source: str = "versions.env") -> dict[str, str]:
    """``KEY=value`` lines as the shell scripts that `source` the file see them.

    Blank lines and ``#`` comments are skipped and one pair of surrounding quotes is removed. Any
    other line (no ``=``, a key that is not a shell name, a space around ``=``) is an error naming
    the line: the shell would not read such a line as an assignment, so no reader here guesses.
    """
    out: dict[str, str] = {}
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.partition("=")
        if not sep or not key.isidentifier() or value[:1].isspace():
            raise ValueError(f"{source}:{number}: expected KEY=value, got {raw!r}")
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        out[key] = value
    return out


def versions() -> dict[str, str]:
    """The pinned versions in hack/versions.env (KUBE_VERSION, ETCD_VERSION, ...)."""
    return parse_versions(VERSIONS_FILE.read_text(), source=str(VERSIONS_FILE))


def cache_dir() -> Path:
    """Where built binaries and local clusters live, outside the repository."""
    return Path(os.environ.get("PLAYBOOK_OPERATOR_CACHE") or Path.home() / ".cache" / "playbook-operator")


def kube_bin_dir() -> Path:
    """The control-plane binaries (kubectl among them) of the pinned Kubernetes release."""
    return cache_dir() / "bin" / versions()["KUBE_VERSION"]


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def port_in_use(port: int) -> bool:
    """Whether something accepts connections on 127.0.0.1:`port`."""
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


def pid_alive(pid: int) -> bool:
    """Whether process `pid` runs. A zombie (exited, not yet reaped) does not."""
    if pid <= 0:
        return False  # kill(0) and kill(-1) would signal a whole process group
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # it exists, as another user's
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rpartition(")")[2].split()[0] != "Z"
    except OSError:
        return False
