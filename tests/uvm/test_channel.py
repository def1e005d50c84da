"""The configuration channel between runners and testbenches (verif/channel.py)."""

import sys
import types
from dataclasses import dataclass

import pytest

from verif import channel


@dataclass(frozen=True)
class Options:
    name: str
    count: int
    ratio: float
    flag: bool
    shape: tuple[int, ...]
    data: str | None = None


@dataclass(frozen=True)
class Other:
    name: str


def _publish(monkeypatch, tmp_path, options):
    monkeypatch.setattr(channel, "DIRECTORY", tmp_path / "options")
    for key, value in channel.publish(options).items():
        monkeypatch.setenv(key, value)


def test_round_trip_is_typed(monkeypatch, tmp_path):
    sent = Options(name="a", count=3, ratio=1, flag=True, shape=(2, 3))
    _publish(monkeypatch, tmp_path, sent)
    monkeypatch.chdir(tmp_path)
    assert channel.receive(Options) == sent
    assert (tmp_path / channel.RUN_COPY).is_file()  # the run directory keeps its options
    first = set((tmp_path / "options").iterdir())
    channel.publish(sent)  # the same options reuse their file
    assert set((tmp_path / "options").iterdir()) == first


def test_mistakes_are_named(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv(channel.VARIABLE, raising=False)
    with pytest.raises(channel.ChannelError, match="is not set"):
        channel.receive(Options)
    _publish(monkeypatch, tmp_path, Other(name="x"))
    with pytest.raises(channel.ChannelError, match="holds options for .*Other"):
        channel.receive(Options)
    with pytest.raises(channel.ChannelError, match="option count .* must be"):
        channel.publish(Options(name="a", count="3", ratio=1.0, flag=True, shape=()))
    path = tmp_path / "hand.json"
    monkeypatch.setenv(channel.VARIABLE, str(path))
    schema = f"{Options.__module__}.{Options.__qualname__}"
    path.write_text(f'{{"schema": "{schema}", "options": {{"name": "a", "cont": 3}}}}')
    with pytest.raises(channel.ChannelError, match="unknown options cont"):
        channel.receive(Options)
    path.write_text(f'{{"schema": "{schema}", "options": {{"name": "a"}}}}')
    with pytest.raises(channel.ChannelError, match="missing options count, ratio, flag, shape"):
        channel.receive(Options)
    path.write_text(f'{{"schema": "{schema}", "options": {{"name": "a", "count": true, '
                    '"ratio": 1, "flag": true, "shape": []}}')
    with pytest.raises(channel.ChannelError, match="option count"):
        channel.receive(Options)


def test_a_runner_started_with_python_m_names_its_module(monkeypatch, tmp_path):
    """``python -m verif.regress`` defines its schema in ``__main__``; the testbench imports
    it as ``verif.regress``: both must name the same schema."""
    monkeypatch.setattr(sys.modules["__main__"], "__spec__",
                        types.SimpleNamespace(name=Other.__module__), raising=False)
    as_main = dataclass(frozen=True)(type("Other", (), {"__annotations__": {"name": str},
                                                         "__module__": "__main__",
                                                         "__qualname__": "Other"}))
    _publish(monkeypatch, tmp_path, as_main(name="x"))
    monkeypatch.chdir(tmp_path)
    assert channel.receive(Other) == Other(name="x")
