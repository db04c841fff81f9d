"""The Operator SDK's own Ansible test operators, laid out for `playbook-operator run` on the host
as the SDK's image lays them out (`make sdk-compat`, tests/sdk_compat).

Sources, read at run time from the Go module cache, never copied into this repository:
  memcached   testdata/memcached-molecule-operator of ansible-operator-plugins
  advanced    advanced-molecule-operator, which the module's hack/generate/samples/molecule
              generates (its kubebuilder CLI runs in-process; built once, as `sdk-samples`)

A layout, one per operator and ansible-core version (and hash of its inputs), under
$PLAYBOOK_OPERATOR_CACHE/sdk-compat/<sdk version>/<operator>/ansible-<version>-<hash>/:
  project/         the operator's project (config/, molecule/, samples)
  opt/ansible/     the image's HOME and working dir: what its Dockerfile COPYs there and what
                   its RUN steps make (the fixture collection, the vault password and vars)
  etc/ansible/     the image's ansible.cfg (given as ANSIBLE_CONFIG)
  usr/local/bin/   python3: the image's interpreter, here the virtualenv's

The SDK's files name /opt/ansible and /usr/local/bin/python3. `namespaced` runs a command in a
mount namespace of its own in which those two directories, and a private /tmp, are the layout's:
nothing is written outside the cache, and operators of two ansible-core versions run side by side.

    python3 hack/sdkcompat.py layout memcached VENV    # prints the layout's path
    KUSTOMIZE_PATH="VENV/bin/python hack/sdkcompat.py kustomize"   # for their molecule scenarios
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import devkit

MODULE = "github.com/operator-framework/ansible-operator-plugins"
OPERATORS = {"memcached": "memcached-molecule-operator", "advanced": "advanced-molecule-operator"}
# The base image's /etc/ansible/ansible.cfg (images/ansible-operator/Dockerfile).
IMAGE_ANSIBLE_CFG = "[defaults]\nroles_path = /opt/ansible/roles\nlibrary = /usr/share/ansible/openshift\n"
# The operators' Dockerfiles' RUN steps, each done here by `_run_step` (a new one fails loudly).
KNOWN_RUN_STEPS = ("ansible-galaxy collection install -r", "chmod -R ug+rwx /tmp/fixture_collection",
                   "ansible-galaxy collection build /tmp/fixture_collection/", "echo abc123 > /opt/ansible/pwd.yml")


def sdk_version() -> str:
    return str(devkit.versions()["SDK_ANSIBLE_OPERATOR_VERSION"])


def root() -> Path:
    return Path(devkit.cache_dir()) / "sdk-compat" / sdk_version()


def _go_env() -> dict[str, str]:
    build = devkit.cache_dir() / "build"
    return {**os.environ, "CGO_ENABLED": "0", "GOFLAGS": "-mod=mod -trimpath", "GOTOOLCHAIN": "local",
            "GOCACHE": str(build / "gocache-sdk-samples")}


def _build_module() -> Path:
    """A Go module of our own that requires the SDK's (as hack/build-sdk-operator.sh does)."""
    mod = root() / "build"
    mod.mkdir(parents=True, exist_ok=True)
    gomod = f"module playbook-operator.local/sdk-samples\n\ngo 1.26\n\nrequire {MODULE} {sdk_version()}\n"
    if not (mod / "go.mod").exists():
        (mod / "go.mod").write_text(gomod)
    return mod


def module_dir() -> Path:
    """The SDK's module in the Go module cache (downloaded through the module proxy if absent)."""
    out = subprocess.run(["go", "mod", "download", "-json", f"{MODULE}@{sdk_version()}"], cwd=_build_module(),
                         env=_go_env(), capture_output=True, text=True, check=True).stdout
    return Path(json.loads(out)["Dir"])


def _generator() -> Path:
    binary = root() / "bin" / "sdk-samples"
    if binary.exists():
        return binary
    mod = _build_module()
    pkg = f"{MODULE}/hack/generate/samples/molecule"
    print(f"==> building the SDK's sample generator {sdk_version()} (once)", file=sys.stderr)
    for cmd in (["go", "get", f"{pkg}@{sdk_version()}"], ["go", "build", "-o", f"{binary}.tmp", pkg]):
        proc = subprocess.run(cmd, cwd=mod, env=_go_env(), capture_output=True, text=True)
        if proc.returncode != 0:
            raise SystemExit(f"sdkcompat: {' '.join(cmd)} failed:\n{proc.stderr[-3000:]}")
    Path(f"{binary}.tmp").rename(binary)
    shutil.rmtree(_go_env()["GOCACHE"], ignore_errors=True)
    return binary


def source(operator: str) -> Path:
    """The operator's project as the SDK has it (read-only for memcached: the module cache)."""
    name = OPERATORS[operator]
    if operator == "memcached":
        return module_dir() / "testdata" / name
    generated = root() / "generated"
    if not (generated / name / "watches.yaml").exists():
        # The generator reads hack/generate/samples/ansible/testdata relative to its working dir.
        subprocess.run([str(_generator()), "-samples-root", str(generated), "-sample", "advanced"],
                       cwd=module_dir(), capture_output=True, text=True, check=True)
    return generated / name


def ansible_core_version(venv: Path) -> str:
    out = subprocess.run([str(venv / "bin" / "python"), "-c",
                          "from ansible.release import __version__; print(__version__)"],
                         capture_output=True, text=True, check=True).stdout
    return ".".join(out.strip().split(".")[:2])


def _copy(src: Path, dst: Path) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    if src.is_dir():
        shutil.copytree(src, dst, dirs_exist_ok=True)
    else:
        shutil.copyfile(src, dst)
    # The module cache is read-only; the copies are the image's, writable by its user.
    for path in [dst, *dst.rglob("*")] if dst.is_dir() else [dst]:
        path.chmod(path.stat().st_mode | 0o200)


def _dockerfile_steps(project: Path) -> list[tuple[str, str]]:
    """The Dockerfile's COPY and RUN steps after FROM, with continuation lines joined."""
    text = re.sub(r"\\\n\s*", " ", (project / "Dockerfile").read_text())
    steps = []
    for line in text.splitlines():
        word, _, rest = line.strip().partition(" ")
        if word in ("COPY", "RUN"):
            steps.append((word, rest.strip()))
    return steps


def _run_step(command: str, layout: Path, venv: Path) -> None:
    home = layout / "opt" / "ansible"
    # The image's HOME and config; never an ansible.cfg of the caller's working dir.
    env = {**os.environ, "HOME": str(home), "ANSIBLE_HOME": str(home / ".ansible"),
           "ANSIBLE_CONFIG": str(layout / "etc" / "ansible" / "ansible.cfg")}
    env.pop("ANSIBLE_COLLECTIONS_PATH", None)
    bin_dir = venv / "bin"
    if command.startswith("ansible-galaxy collection install -r"):
        # requirements.yml's collections come from Galaxy, which is not reachable: kubernetes.core
        # is the `ansible` package's, operator_sdk.util this project's in-tree one (the runner's
        # fallback behind installed collections).
        return
    if command.startswith("chmod "):
        return
    if command.startswith("ansible-galaxy collection build /tmp/fixture_collection/"):
        # A local collection: built and installed into HOME's collections, as in the image.
        fixture = layout / "tmp" / "fixture_collection"
        subprocess.run([str(bin_dir / "ansible-galaxy"), "collection", "build", str(fixture), "--output-path",
                        str(fixture), "--force"], cwd=home, env=env, capture_output=True, check=True)
        tarball = next(fixture.glob("*.tar.gz"))
        subprocess.run([str(bin_dir / "ansible-galaxy"), "collection", "install", "--force", "--offline",
                        str(tarball), "-p", str(home / ".ansible" / "collections")], cwd=home, env=env,
                       capture_output=True, check=True)
        return
    if command.startswith("echo abc123 > /opt/ansible/pwd.yml"):
        (home / "pwd.yml").write_text("abc123\n")
        vars_yml = subprocess.run([str(bin_dir / "ansible-vault"), "encrypt_string", "--vault-password-file",
                                   str(home / "pwd.yml"), "thisisatest", "--name", "the_secret"],
                                  cwd=home, env=env, capture_output=True, text=True, check=True).stdout
        (home / "vars.yml").write_text(vars_yml)
        return
    raise SystemExit(f"sdkcompat: no equivalent for the Dockerfile step RUN {command}")


def layout(operator: str, venv: Path) -> Path:
    """The operator laid out for the virtualenv's ansible-core: made once per set of inputs (its
    dir is named by them, so a layout an operator runs from is never replaced under it), in a
    dir of its own first, then renamed, so that concurrent callers never see half of one."""
    src = source(operator)
    venv = venv.resolve()
    key = hashlib.sha256(f"{src}\n{venv}\n".encode() + Path(__file__).read_bytes()).hexdigest()[:12]
    where = root() / OPERATORS[operator] / f"ansible-{ansible_core_version(venv)}-{key}"
    if where.exists():
        return where
    new = where.with_name(f"{where.name}.{os.getpid()}")
    shutil.rmtree(new, ignore_errors=True)
    _make_layout(src, venv, new)
    try:
        new.rename(where)
    except OSError:  # another caller's came first: the same inputs, so the same layout
        shutil.rmtree(new)
    return where


def _make_layout(src: Path, venv: Path, where: Path) -> None:
    home = where / "opt" / "ansible"
    (home / ".ansible" / "tmp").mkdir(parents=True)
    _copy(src, where / "project")
    (where / "etc" / "ansible").mkdir(parents=True)
    (where / "etc" / "ansible" / "ansible.cfg").write_text(IMAGE_ANSIBLE_CFG)
    for word, args in _dockerfile_steps(src):
        if word == "RUN":
            _run_step(args, where, venv)
            continue
        what, dest = args.split()
        dest = dest.replace("${HOME}", "/opt/ansible")
        # /opt/ansible, /etc/ansible and /tmp of the image, under the layout.
        _copy(src / what.rstrip("/"), where / dest.lstrip("/").rstrip("/"))
    python3 = where / "usr" / "local" / "bin" / "python3"
    python3.parent.mkdir(parents=True)
    python3.write_text(f'#!/bin/sh\nexec "{venv}/bin/python" "$@"\n')
    python3.chmod(0o755)


def namespaced(where: Path, tmp: Path, argv: Sequence[str]) -> list[str]:
    """`argv` run in a private mount namespace in which /opt, /usr/local/bin and /tmp are the
    layout's (tmp: a fresh dir per process, as a container's /tmp), from /opt/ansible (WORKDIR).
    A checkout or cache under the host's /tmp stays where it was, bound into the private one."""
    keep = ""
    for path in dict.fromkeys((Path(__file__).resolve().parent.parent, devkit.cache_dir().resolve())):
        if path.is_relative_to("/tmp"):  # nosec B108  # a path test, no temp file made
            inside = shlex.quote(str(tmp / path.relative_to("/tmp")))  # nosec B108  # host /tmp -> private one
            keep += f"mkdir -p {inside}; mount --bind {shlex.quote(str(path))} {inside}; "
    script = (f'set -e; mount --bind "$1" /opt; mount --bind "$2" /usr/local/bin; {keep}mount --rbind "$3" /tmp; '
              'cd /opt/ansible; shift 3; exec "$@"')
    unshare = ["unshare", "--mount", "--propagation", "private"]
    if os.geteuid() != 0:
        unshare.append("--map-root-user")
    tmp.mkdir(parents=True, exist_ok=True)
    return [*unshare, "/bin/sh", "-c", script, "sh", str(where / "opt"), str(where / "usr" / "local" / "bin"),
            str(tmp), *argv]


def image_env(where: Path) -> dict[str, str]:
    """The image's environment for the operator (ENV HOME, its ansible.cfg)."""
    return {"HOME": "/opt/ansible", "ANSIBLE_CONFIG": str(where / "etc" / "ansible" / "ansible.cfg")}


def kustomize(argv: Sequence[str]) -> int:
    """The `kustomize` the SDK's molecule scenarios call (KUSTOMIZE_PATH), on kubectl's: `build`
    without the manager Deployment (kwok runs no containers; the operator runs on the host beside
    molecule), and the `edit`s their prepare and destroy make."""
    import yaml

    if argv[:1] == ["build"]:
        out = subprocess.run(["kubectl", "kustomize", "--load-restrictor", "LoadRestrictionsNone", "."],
                             capture_output=True, text=True, check=True).stdout
        docs = [d for d in yaml.safe_load_all(out) if d and d.get("kind") != "Deployment"]
        sys.stdout.write(yaml.safe_dump_all(docs, sort_keys=False))
        return 0
    path = Path("kustomization.yaml")
    k = yaml.safe_load(path.read_text())
    match list(argv):
        case ["edit", "set", "namespace", namespace]:
            k["namespace"] = namespace
        case ["edit", "set", "image", image]:
            name, _, new = image.partition("=")
            k["images"] = [i for i in k.get("images") or [] if i.get("name") != name] + \
                [{"name": name, "newName": new}]
        case ["edit", "add", "patch", "--path", patch]:
            if {"path": patch} not in k.setdefault("patches", []):
                k["patches"].append({"path": patch})
        case ["edit", "remove", "patch", patch]:
            k["patches"] = [p for p in k.get("patches") or [] if p != {"path": patch}]
        case _:
            print(f"sdkcompat kustomize: not supported: {' '.join(argv)}", file=sys.stderr)
            return 2
    path.write_text(yaml.safe_dump(k, sort_keys=False))
    return 0


def main(argv: Sequence[str]) -> int:
    if argv[:1] == ["kustomize"]:
        return kustomize(argv[1:])
    if len(argv) == 2 and argv[0] == "source":
        print(source(argv[1]))
        return 0
    if len(argv) == 3 and argv[0] == "layout":
        print(layout(argv[1], Path(argv[2])))
        return 0
    print("usage: sdkcompat.py source OPERATOR | layout OPERATOR VENV | kustomize ARGS...\n"
          "  OPERATOR: memcached, advanced",
          file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
