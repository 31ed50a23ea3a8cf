"""
Development sessions: tests, lint, typecheck, docs, demo and bench.

Run `python3 -m nox` for the default sessions, or `python3 -m nox -s NAME`
for one. Arguments after `--` go to the tool a session runs, for example
`python3 -m nox -s tests -- -k breaker`.
"""

from __future__ import annotations

import nox

nox.needs_version = ">=2025.2.9"
nox.options.sessions = ["tests", "lint", "typecheck"]
# nox turns this on when CI is set. An interpreter that is not installed is
# skipped instead, so a machine with only some of the versions still runs.
nox.options.error_on_missing_interpreters = False

PYPROJECT = nox.project.load_toml("pyproject.toml")
PYTHON_VERSIONS = nox.project.python_versions(PYPROJECT)


def install_group(session: nox.Session, *groups: str) -> None:
    """
    Install PEP 735 dependency groups from pyproject.toml.

    `nox.project.dependency_groups` resolves the groups itself, so this works
    with pip older than 25.1, which lacks `pip install --group`.
    """
    session.install(*nox.project.dependency_groups(PYPROJECT, *groups))


@nox.session(python=PYTHON_VERSIONS)
def tests(session: nox.Session) -> None:
    """
    Run the test suite against the installed (non-editable) package.
    """
    # A regular install puts buttress in site-packages. pytest does not put
    # src/ on sys.path, so the tests import that installed copy.
    session.install(".")
    install_group(session, "tests")
    session.run("pytest", *session.posargs)


@nox.session
def lint(session: nox.Session) -> None:
    """
    Check lint rules and formatting with ruff.
    """
    install_group(session, "lint")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")


@nox.session
def typecheck(session: nox.Session) -> None:
    """
    Type-check src/ and the API usage examples in tests/typing/ (mypy strict).
    """
    session.install(".")
    install_group(session, "typing")
    session.run("mypy", *session.posargs)


@nox.session
def docs(session: nox.Session) -> None:
    """
    Build the HTML docs into docs/_build/html, treating warnings as errors.
    """
    session.install(".")
    install_group(session, "docs")
    session.run(
        "sphinx-build",
        "-W",
        "--keep-going",
        "-b",
        "html",
        "docs",
        "docs/_build/html",
        *session.posargs,
    )


@nox.session
def demo(session: nox.Session) -> None:
    """
    Run the demo against a local OpenBao dev server (see README).
    """
    session.install(".[demo]")
    session.run("python", "-m", "buttress.demo", *session.posargs)


@nox.session
def bench(session: nox.Session) -> None:
    """
    Run the benchmarks side by side with other retry and breaker libraries.
    """
    session.install(".")
    install_group(session, "bench")
    session.run("python", "benchmarks/run.py", *session.posargs)
