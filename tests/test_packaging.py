"""The sdist and wheel build, carry the license, pass ``twine check``, and the
sdist runs its own tests against the wheel; the README, which PyPI shows,
links only to absolute URLs."""

from __future__ import annotations

import email
import os
import re
import shutil
import subprocess
import sys
import tarfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

import pytest
from markdown_it import MarkdownIt
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).parent.parent
URL = "https://github.com/flask-bitmapist/flask-bitmapist"
# What a checkout holds that is no source: tools' caches, the environment,
# builds, and what the demo and the tests leave in instance folders.
NOT_SOURCE = shutil.ignore_patterns(
    ".git",
    # .venv, and the Makefile's .venv-3.13 and so on for other Pythons.
    ".venv",
    ".venv-*",
    ".*_cache",
    ".hypothesis",
    "__pycache__",
    "*.py[cod]",
    "*.egg-info",
    "_build",
    "build",
    "dist",
    "instance",
    "*.rdb",
    "*.rdb.settings",
    "*.db",
)


@dataclass(frozen=True)
class Dists:
    sdist: Path
    wheel: Path


def run(*command: str | Path, cwd: Path, env: dict[str, str] | None = None) -> str:
    """Run ``command``; on failure, the assertion shows its output."""
    done = subprocess.run(
        [str(part) for part in command],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, f"{command} failed:\n{done.stdout}\n{done.stderr}"
    return done.stdout


@pytest.fixture(scope="module")
def dists(tmp_path_factory: pytest.TempPathFactory) -> Dists:
    """The sdist, and the wheel built from it, as ``python -m build`` makes
    them, from a copy of the source tree: the build writes nothing into the
    checkout, and no egg-info left there can add files to the sdist."""
    source = tmp_path_factory.mktemp("source") / "flask-bitmapist"
    shutil.copytree(ROOT, source, ignore=NOT_SOURCE)
    out = tmp_path_factory.mktemp("dist")
    # Without isolation: the environment has the build requirements (the
    # test extra), and the test needs no network.
    run(
        sys.executable,
        "-m",
        "build",
        "--no-isolation",
        "--outdir",
        out,
        source,
        cwd=out,
    )
    (sdist,) = out.glob("*.tar.gz")
    (wheel,) = out.glob("*.whl")
    return Dists(sdist, wheel)


def sdist_names(sdist: Path) -> set[str]:
    """The sdist's file names, without its top folder."""
    with tarfile.open(sdist) as archive:
        return {
            member.name.split("/", 1)[1]
            for member in archive.getmembers()
            if member.isfile()
        }


def test_both_carry_the_license_and_the_metadata(dists: Dists) -> None:
    license_text = (ROOT / "LICENSE").read_text()
    assert license_text.startswith("MIT License")
    assert "flask-bitmapist contributors" in license_text

    top = dists.sdist.name.removesuffix(".tar.gz")
    with tarfile.open(dists.sdist) as archive:
        member = archive.extractfile(f"{top}/LICENSE")
        assert member is not None
        assert member.read().decode() == license_text

    with zipfile.ZipFile(dists.wheel) as archive:
        (dist_info,) = {
            name.split("/")[0]
            for name in archive.namelist()
            if name.split("/")[0].endswith(".dist-info")
        }
        assert archive.read(f"{dist_info}/licenses/LICENSE").decode() == license_text
        metadata = email.message_from_bytes(archive.read(f"{dist_info}/METADATA"))
    assert metadata["License-Expression"] == "MIT"
    assert metadata.get_all("License-File") == ["LICENSE"]
    assert sorted(metadata.get_all("Project-URL") or []) == [
        f"Documentation, {URL}",
        f"Homepage, {URL}",
        f"Repository, {URL}",
    ]


def requirements_of(wheel: Path, extras: set[str]) -> dict[str, str]:
    """What installing the wheel with ``extras`` asks for: each distribution's
    name and specifier, following the extras that name the package itself."""
    with zipfile.ZipFile(wheel) as archive:
        (metadata_name,) = (
            name for name in archive.namelist() if name.endswith(".dist-info/METADATA")
        )
        metadata = email.message_from_bytes(archive.read(metadata_name))
    listed = [Requirement(line) for line in metadata.get_all("Requires-Dist") or []]
    wanted: dict[str, str] = {}
    todo, seen = ["", *extras], set()
    while todo:
        extra = todo.pop()
        if extra in seen:
            continue
        seen.add(extra)
        for requirement in listed:
            marker = requirement.marker
            if (marker is None) != (extra == ""):
                continue
            if marker is not None and not marker.evaluate({"extra": extra}):
                continue
            if canonicalize_name(requirement.name) == "flask-bitmapist":
                todo += requirement.extras
            else:
                wanted[canonicalize_name(requirement.name)] = str(requirement.specifier)
    return wanted


def test_bitmapist_is_an_extra_that_the_test_extra_does_not_need(dists: Dists) -> None:
    """bitmapist 3.119 wants redis-py below 6 and Python below 3.14: the
    package and its test and demo extras install without it, with any
    redis-py from 5 on."""
    assert requirements_of(dists.wheel, set()) == {
        "flask": ">=3",
        "redis": ">=5",
        "blinker": ">=1.6",
        "pyyaml": ">=6",
    }
    assert requirements_of(dists.wheel, {"bitmapist"})["bitmapist"] == ">=3.119"
    for extra in ("test", "demo"):
        wanted = requirements_of(dists.wheel, {extra})
        assert "bitmapist" not in wanted
        assert wanted["redis"] == ">=5"


def test_twine_check_passes(dists: Dists) -> None:
    run(
        sys.executable, "-m", "twine", "check", "--strict", dists.sdist, dists.wheel,
        cwd=dists.sdist.parent,
    )  # fmt: skip


def test_the_sdist_has_the_tests_with_their_helpers_and_fixtures(
    dists: Dists, tmp_path: Path
) -> None:
    checkout = tmp_path / "checkout"
    for folder in ("tests", "examples"):
        shutil.copytree(ROOT / folder, checkout / folder, ignore=NOT_SOURCE)
    in_checkout = {
        path.relative_to(checkout).as_posix()
        for path in checkout.rglob("*")
        if path.is_file()
    }
    assert {"tests/conftest.py", "tests/static/robots.txt"} <= in_checkout
    assert in_checkout <= sdist_names(dists.sdist)


def test_the_sdists_id_tests_pass_on_the_wheel(dists: Dists, tmp_path: Path) -> None:
    with tarfile.open(dists.sdist) as archive:
        # The "data" filter where this Python has it (3.10.12+, 3.11.4+):
        # newer Pythons warn without a filter.
        safe = {"filter": "data"} if hasattr(tarfile, "data_filter") else {}
        archive.extractall(tmp_path, **safe)  # type: ignore[arg-type]
    (unpacked,) = tmp_path.iterdir()
    site = tmp_path / "site"
    run(
        sys.executable, "-m", "pip", "install", "--quiet", "--no-deps",
        "--disable-pip-version-check", "--target", site, dists.wheel,
        cwd=tmp_path,
    )  # fmt: skip
    # The wheel's package comes first on the path, before the checkout's
    # editable install; the dependencies come from this environment.
    env = os.environ | {"PYTHONPATH": str(site)}
    where = run(
        sys.executable, "-c", "import flask_bitmapist; print(flask_bitmapist.__file__)",
        cwd=tmp_path, env=env,
    )  # fmt: skip
    assert Path(where.strip()).is_relative_to(site)
    output = run(
        sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
        unpacked / "tests" / "test_ids.py",
        cwd=tmp_path, env=env,
    )  # fmt: skip
    assert re.search(r"^\d+ passed", output, re.MULTILINE), output


def github_slug(heading: str) -> str:
    """The anchor GitHub gives a heading."""
    kept = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return kept.replace(" ", "-")


def readme_targets() -> tuple[list[str], set[str]]:
    """Every link and image target in README.md, and its headings' anchors."""
    tokens = MarkdownIt("commonmark").parse((ROOT / "README.md").read_text())
    targets: list[str] = []
    anchors: set[str] = set()
    for index, token in enumerate(tokens):
        if token.type == "heading_open":
            anchors.add(github_slug(tokens[index + 1].content))
        if token.type == "html_block":
            targets += re.findall(r'(?:src|href)\s*=\s*"([^"]*)"', token.content)
        for child in token.children or []:
            if child.type == "link_open":
                targets.append(str(child.attrs["href"]))
            elif child.type == "image":
                targets.append(str(child.attrs["src"]))
            elif child.type == "html_inline":
                targets += re.findall(r'(?:src|href)\s*=\s*"([^"]*)"', child.content)
    return targets, anchors


def test_every_readme_link_and_image_is_absolute() -> None:
    """PyPI shows the README as the project's page, where a relative link
    leads nowhere."""
    targets, anchors = readme_targets()
    assert targets, "the README links to nothing?"
    relative = [
        target
        for target in targets
        if not re.match(r"https?://", target) and not target.startswith("#")
    ]
    assert relative == []
    broken_anchors = [
        target
        for target in targets
        if target.startswith("#") and target[1:] not in anchors
    ]
    assert broken_anchors == []
