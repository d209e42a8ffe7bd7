"""The one parser of FASTJAC_* environment switches (fastjac._config)."""

import os
import subprocess
import sys
import warnings

import pytest

from fastjac import _config


@pytest.mark.parametrize("value", ["1", "true", "YES", " on ", "On"])
def test_on_values(monkeypatch, value):
    monkeypatch.setenv("FASTJAC_TEST_SWITCH", value)
    assert _config.env_flag("FASTJAC_TEST_SWITCH") is True
    assert _config.env_flag("FASTJAC_TEST_SWITCH", default=True) is True


@pytest.mark.parametrize("value", ["0", "false", "No", "OFF", "", "  "])
def test_off_values(monkeypatch, value):
    monkeypatch.setenv("FASTJAC_TEST_SWITCH", value)
    assert _config.env_flag("FASTJAC_TEST_SWITCH") is False
    assert _config.env_flag("FASTJAC_TEST_SWITCH", default=True) is False


def test_unset_gives_the_default(monkeypatch):
    monkeypatch.delenv("FASTJAC_TEST_SWITCH", raising=False)
    assert _config.env_flag("FASTJAC_TEST_SWITCH") is False
    assert _config.env_flag("FASTJAC_TEST_SWITCH", default=True) is True


@pytest.mark.parametrize("default", [False, True])
def test_anything_else_warns_and_gives_the_default(monkeypatch, default):
    monkeypatch.setenv("FASTJAC_TEST_SWITCH", "maybe")
    with pytest.warns(RuntimeWarning, match="FASTJAC_TEST_SWITCH='maybe'"):
        assert _config.env_flag("FASTJAC_TEST_SWITCH", default=default) is default


def test_choice(monkeypatch):
    monkeypatch.setenv("FASTJAC_TEST_CHOICE", " Fast ")
    assert _config.env_choice("FASTJAC_TEST_CHOICE", ("fast", "strict")) == "fast"
    monkeypatch.setenv("FASTJAC_TEST_CHOICE", "")
    assert _config.env_choice("FASTJAC_TEST_CHOICE", ("fast", "strict")) is None
    monkeypatch.setenv("FASTJAC_TEST_CHOICE", "quick")
    with pytest.warns(RuntimeWarning, match="quick"):
        assert _config.env_choice("FASTJAC_TEST_CHOICE", ("fast", "strict")) is None
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        monkeypatch.delenv("FASTJAC_TEST_CHOICE")
        assert _config.env_choice("FASTJAC_TEST_CHOICE", ("fast", "strict")) is None


@pytest.mark.parametrize("value,mode", [("off", "accurate"), ("0", "accurate"),
                                        ("on", "fast"), ("1", "fast")])
def test_fast_math_switch_at_import(value, mode):
    env = {k: v for k, v in os.environ.items() if k != "FASTJAC_PRECISION"}
    env["FASTJAC_FAST_MATH"] = value
    out = subprocess.run(
        [sys.executable, "-c", "import fastjac; print(fastjac.get_precision())"],
        capture_output=True, text=True, env=env, timeout=120, check=True,
    ).stdout.split()
    assert out == [mode]
