"""Where an exception was raised, judged by package directories, never by words in a path
(a checkout or a virtualenv may live in a folder called ``tiertrace`` or ``redis``)."""

from __future__ import annotations

import traceback
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any


def raised_by(call: Callable[[], Any]) -> BaseException:
    """The exception ``call()`` raises (AssertionError when it raises none)."""
    try:
        call()
    except Exception as exc:
        return exc
    raise AssertionError("the call did not raise")


def package_dir(package: ModuleType) -> Path:
    assert package.__file__ is not None, package
    return Path(package.__file__).resolve().parent


def frame_files(error: BaseException) -> list[Path]:
    """The files of ``error``'s traceback, outermost (the test) first."""
    return [Path(f.filename).resolve() for f in traceback.extract_tb(error.__traceback__)]


def raised_inside(error: BaseException, package: ModuleType) -> bool:
    """Whether the innermost frame of ``error``'s traceback is in ``package``'s own code."""
    files = frame_files(error)
    return bool(files) and files[-1].is_relative_to(package_dir(package))


def passed_through(error: BaseException, package: ModuleType) -> bool:
    """Whether any frame of ``error``'s traceback is in ``package``'s own code."""
    return any(f.is_relative_to(package_dir(package)) for f in frame_files(error))
