"""
Tests of Secret, the container that keeps values out of reprs and logs.
"""

from __future__ import annotations

import logging
import operator

import pytest

from buttress import Secret


def test_repr_redacted() -> None:
    secret = Secret("s.SECRET")

    assert "s.SECRET" not in repr(secret)
    assert "s.SECRET" not in str(secret)
    assert "s.SECRET" not in f"{secret}"
    assert repr(secret) == "Secret('**********')"


def test_redacted_inside_containers() -> None:
    config = {"token": Secret("s.SECRET"), "others": [Secret("hunter2")]}

    assert "s.SECRET" not in repr(config)
    assert "hunter2" not in str(config)


def test_redacted_in_logs(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO):
        logging.getLogger("tests").info("logging in with %s", Secret("s.SECRET"))

    assert "s.SECRET" not in caplog.text
    assert "**********" in caplog.text


def test_get_secret_value() -> None:
    value = {"role_id": "abc"}

    assert Secret(value).get_secret_value() is value


def test_equality() -> None:
    assert Secret("a") == Secret("a")
    assert Secret("a") != Secret("b")
    assert Secret("a") != "a"
    # The reflected comparison reaches str.__eq__ first, then Secret's.
    assert operator.ne("a", Secret("a"))


def test_unhashable() -> None:
    with pytest.raises(TypeError, match="unhashable"):
        hash(Secret("s.SECRET"))
    with pytest.raises(TypeError):
        {Secret("s.SECRET"): 1}


def test_truthiness_follows_value() -> None:
    assert Secret("s.SECRET")
    assert not Secret("")
