"""``emotivoice-operator preview`` as a user runs it (no cluster): options, errors, and the
docs' picture, whose command the Makefile and docs/tuning.md must spell the same way."""

from __future__ import annotations

import os
import re
import shlex
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import yaml

from emotivoice_operator.cli_preview import resolve_start
from emotivoice_operator.cli_render import load_services
from emotivoice_operator.main import build_parser, main
from tests.support.preview_cases import CASES, GPU_EXAMPLE, ROOT

SHANGHAI = ZoneInfo("Asia/Shanghai")


def _write(tmp_path: Path, *bodies: dict) -> Path:
    path = tmp_path / "evs.yaml"
    path.write_text(yaml.safe_dump_all(bodies), encoding="utf-8")
    return path


def test_preview_prints_the_week_and_draws_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pytest.importorskip("matplotlib")
    png = tmp_path / "week.png"
    args = ["preview", "-f", str(GPU_EXAMPLE), "--start", "2025-03-03T00:00+08:00"]
    assert main([*args, "--days", "2", "--plot", str(png)]) == 0
    out, err = capsys.readouterr()
    assert out.startswith("tts-gpu (default): 2 days from Mon 2025-03-03 00:00 Asia/Shanghai")
    assert "  Tue 2025-03-04 08:45  tts-gpu-warm-morning" in out
    assert f"wrote {png}" in err
    assert png.read_bytes()[:4] == b"\x89PNG"


def test_a_start_without_offset_is_a_wall_time_in_the_pools_zone(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["preview", "-f", str(GPU_EXAMPLE), "--start", "2025-03-03", "--days", "1"]) == 0
    assert "from Mon 2025-03-03 00:00 Asia/Shanghai" in capsys.readouterr().out
    now = datetime(2025, 3, 3, 12, tzinfo=UTC)
    assert resolve_start(None, SHANGHAI, now, 7, recorded_past=False) == now
    assert resolve_start(None, SHANGHAI, now, 7, recorded_past=True) == datetime(
        2025, 2, 24, 12, tzinfo=UTC
    )
    assert resolve_start(datetime(2025, 3, 3), SHANGHAI, now, 7, False) == datetime(
        2025, 3, 2, 16, tzinfo=UTC
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--days", "0"], "--days: '0': preview a whole number of days, 1-31"),
        (["--days", "32"], "1-31"),
        (["--start", "monday"], "is not an ISO 8601 time"),
    ],
)
def test_bad_options_are_refused_naming_the_option(
    args: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["preview", "-f", str(GPU_EXAMPLE), *args])
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err


def test_bad_input_fails_with_the_fix(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["preview"]) == 1
    assert "give a manifest with -f FILE" in capsys.readouterr().err

    assert main(["preview", "-f", str(ROOT / "examples"), "--plot", str(tmp_path / "x.png")]) == 1
    found = len(load_services([ROOT / "examples"]))
    assert f"--plot draws one resource and {found} were found" in capsys.readouterr().err
    assert not (tmp_path / "x.png").exists()

    body = yaml.safe_load(GPU_EXAMPLE.read_text(encoding="utf-8"))
    body["spec"]["warmPool"]["timeZone"] = "Asia/Shangai"
    assert main(["preview", "-f", str(_write(tmp_path, body))]) == 1
    err = capsys.readouterr().err
    assert 'spec.warmPool.timeZone: unknown time zone "Asia/Shangai"' in err

    not_evs = _write(tmp_path, {"apiVersion": "v1", "kind": "ConfigMap"})
    assert main(["preview", "-f", str(not_evs)]) == 1
    assert "no EmotiVoiceService in" in capsys.readouterr().err


def test_name_without_a_cluster_says_how_to_point_at_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "missing"))
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    assert main(["preview", "--name", "tts"]) == 1
    assert "set KUBECONFIG, or preview a manifest with -f" in capsys.readouterr().err


def test_several_services_are_previewed_one_after_the_other(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _write(tmp_path, CASES["berlin"].body, CASES["new-york"].body)
    assert main(["preview", "-f", str(path), "--start", "2024-10-21T00:00+02:00"]) == 0
    out = capsys.readouterr().out
    assert out.count("Warm floor (") == 2
    assert "Warm floor (Europe/Berlin)" in out and "Warm floor (America/New_York)" in out


# --- the docs' picture --------------------------------------------------------------------

# The page that shows the preview (the README links it).
TUNING = "docs/tuning.md"


def _makefile_command() -> list[str]:
    text = (ROOT / "Makefile").read_text(encoding="utf-8")
    match = re.search(r"^preview:.*\n\t@\$\(PY\) -m emotivoice_operator\.main (.+)$", text, re.M)
    assert match, "Makefile has no `preview` target running emotivoice_operator.main"
    return shlex.split(match[1])


def test_the_docs_show_the_makefiles_command_and_its_picture() -> None:
    """Regenerating the PNG is `make preview`; docs/tuning.md shows the same command and embeds
    the file it writes (comparing pixels would be flaky on fonts, so the spelling is compared)."""
    command = _makefile_command()
    page = (ROOT / TUNING).read_text(encoding="utf-8")
    assert f"emotivoice-operator {shlex.join(command)}" in page
    args = build_parser().parse_args(command)
    assert args.command == "preview" and args.plot is not None
    picture = args.plot.as_posix()
    # The page links the picture relative to itself.
    link = os.path.relpath(ROOT / picture, (ROOT / TUNING).parent).replace(os.sep, "/")
    assert f"]({link})" in page, f"{TUNING} does not embed {picture}"
    assert "make preview" in page
    data = (ROOT / picture).read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) < 200_000
    assert all((ROOT / p).exists() for p in args.paths)
