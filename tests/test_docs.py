"""Every public function and class has a docstring, and the docs reference
every public name."""

from __future__ import annotations

import dataclasses
import inspect
import re
from pathlib import Path

import flask_bitmapist
from flask_bitmapist import Settings, dashboard, testing
from flask_bitmapist.report import cohort
from flask_bitmapist.store import maintenance
from flask_bitmapist.track import seed

DOCS = Path(__file__).parent.parent / "docs"
OWN_MODULES = (flask_bitmapist, cohort, maintenance, seed, testing, dashboard.chart)


def public_objects() -> list[tuple[str, object]]:
    found = []
    for module in OWN_MODULES:
        names = getattr(module, "__all__", None) or [
            name
            for name, value in vars(module).items()
            if not name.startswith("_")
            and (inspect.isfunction(value) or inspect.isclass(value))
            and value.__module__ == module.__name__
        ]
        found += [
            (f"{module.__name__}.{name}", getattr(module, name)) for name in names
        ]
    return found


def test_every_public_function_and_class_has_a_docstring() -> None:
    missing = [
        name
        for name, value in public_objects()
        if (inspect.isfunction(value) or inspect.isclass(value))
        and value.__module__.startswith("flask_bitmapist")
        # A dataclass without a docstring gets its signature as one.
        and (not value.__doc__ or value.__doc__.startswith(f"{value.__name__}("))
    ]
    assert missing == []


def test_the_api_reference_names_every_export() -> None:
    api = (DOCS / "api.rst").read_text()
    own = [
        name
        for name in flask_bitmapist.__all__
        if getattr(getattr(flask_bitmapist, name), "__module__", "").startswith(
            "flask_bitmapist"
        )
    ]
    assert [name for name in own if name not in api] == []


def test_the_configuration_table_has_every_key() -> None:
    readme = (DOCS.parent / "README.md").read_text()
    table = readme.split("## Configuration", 1)[1].split("\n## ", 1)[0]
    documented = re.findall(r"^\| `BITMAPIST_(\w+)` \|", table, re.MULTILINE)
    keys = [field.name.upper() for field in dataclasses.fields(Settings)]
    assert sorted(documented) == sorted(keys)


# Everything that 0.1.x code could reach, from the original's source: the
# package's names, FlaskBitmapist's attributes, its modules and their public
# functions, its config keys, its blueprint's endpoints and its templates.
ORIGINAL_SURFACE = [
    "FlaskBitmapist(app, config=None, **opts)",
    "init_app(app, config=None)",
    "bitmapist.app",
    "bitmapist.redis_url",
    "bitmapist.redis_auth",
    "bitmapist.config",
    "bitmapist.SYSTEMS",
    "bitmapist.TRACK_HOURLY",
    "BITMAPIST_REDIS_URL",
    "BITMAPIST_REDIS_PASSWORD",
    "BITMAPIST_REDIS_SYSTEM",
    "BITMAPIST_TRACK_HOURLY",
    "BITMAPIST_DISABLE_BLUEPRINT",
    "flask_bitmapist.decorators",
    "use_pipeline",
    "flask_bitmapist.utils.get_event_data",
    "flask_bitmapist.views.bitmapist_bp",
    "bitmapist.index",
    "bitmapist.events",
    "bitmapist.cohort",
    "bitmapist/index.html",
    "_event.html",
    "data.html",
    "flask_bitmapist.mixins.Bitmapistable",
    "bitmapist_after_insert",
    "bitmapist_before_update",
    "bitmapist_before_delete",
    "flask_bitmapist.extensions.flask_login",
    "mark_login",
    "mark_logout",
    "flask_bitmapist.__version__",
]


def test_the_upgrading_guide_covers_every_name_of_0_1() -> None:
    guide = (DOCS / "upgrading.md").read_text()
    # A name counts only as a whole: bitmapist.cohort_page is not bitmapist.cohort.
    missing = [
        name
        for name in ORIGINAL_SURFACE
        if not re.search(rf"(?<![\w.]){re.escape(name)}(?![\w])", guide)
    ]
    assert missing == []
