"""The `vlora-eval` commands: inspect, generate, demo; user errors are one line with exit code 2."""

from __future__ import annotations

import json

import pytest
from conftest import OFFICIAL_TINY, make_image
from typer.testing import CliRunner

from vlora.checkpoints import save_model
from vlora_eval.cli import app

runner = CliRunner()


def flat(text: str) -> str:
    """Output with rich's line wrapping undone."""
    return " ".join(text.split())


def test_inspect_official(official_checkpoint):
    folder, _ = official_checkpoint
    result = runner.invoke(app, ["inspect", str(folder), "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["kind"] == "official-vlora"
    assert report["dims"]["generator"]["hidden (h_p)"] == OFFICIAL_TINY.vlora_dim
    assert report["dims"]["generator"]["layers"] == [1, 3]
    d, r = OFFICIAL_TINY.hidden_size, OFFICIAL_TINY.vlora_rank
    assert report["dims"]["generator"]["rank"] == r
    llm = 2 * OFFICIAL_TINY.vocab_size * d + OFFICIAL_TINY.num_layers * (4 * d * d + 3 * d * 96 + 2 * d) + d
    assert report["parameters"]["llm"] == llm
    human = runner.invoke(app, ["inspect", str(folder)])
    assert "official VLoRA release layout" in flat(human.output) and "parameters" in human.output


def test_inspect_own_and_none(tiny_model, tmp_path):
    save_model(tiny_model, tmp_path / "own")
    report = json.loads(runner.invoke(app, ["inspect", str(tmp_path / "own"), "--json"]).output)
    assert report["kind"] == "own" and report["problems"] == []
    assert report["parameters"] == tiny_model.parameter_counts()
    result = runner.invoke(app, ["inspect", str(tmp_path / "nowhere")])
    assert result.exit_code == 1 and "not a checkpoint" in flat(result.output)


def test_generate_with_a_checkpoint(tiny_model, tmp_path):
    save_model(tiny_model, tmp_path / "own")
    make_image(3).save(tmp_path / "picture.png")
    args = ["generate", "--checkpoint", str(tmp_path / "own"), "--image", str(tmp_path / "picture.png"),
            "--question", "What is it?", "--max-new-tokens", "6", "--json"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    answer = json.loads(result.output)["answer"]
    prompt = tiny_model.prompt("What is it?")
    assert answer == tiny_model.generate([prompt], [make_image(3)], 6)[0]


@pytest.mark.parametrize("args,message", [
    (["--image", "missing.png"], "image missing.png does not exist"),
    (["--mode", "fused"], "'fused' is not one of 'factorized', 'merged', 'delta'"),
    (["--dtype", "int8"], "'int8' is not one of"),
])
def test_generate_user_errors_are_one_line(tiny_model, tmp_path, monkeypatch, args, message):
    monkeypatch.chdir(tmp_path)
    save_model(tiny_model, tmp_path / "own")
    result = runner.invoke(app, ["generate", "--checkpoint", "own", "--question", "Q?", *args])
    assert result.exit_code == 2
    assert message in flat(result.output)
    assert "Traceback" not in result.output


def test_unreadable_image_and_bad_checkpoint(tmp_path, tiny_model):
    save_model(tiny_model, tmp_path / "own")
    (tmp_path / "bad.png").write_bytes(b"not an image")
    result = runner.invoke(app, ["generate", "--checkpoint", str(tmp_path / "own"), "--question", "Q?",
                                 "--image", str(tmp_path / "bad.png")])
    assert result.exit_code == 2 and "cannot be decoded" in flat(result.output)
    result = runner.invoke(app, ["generate", "--checkpoint", str(tmp_path), "--question", "Q?"])
    assert result.exit_code == 2 and "not a checkpoint" in flat(result.output)


def test_demo_runs_and_agrees(tmp_path):
    result = runner.invoke(app, ["demo", "--out", str(tmp_path / "demo")])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "demo" / "vlora-tiny-official" / "config.json").is_file()
    assert "merged vs factorized" in flat(result.output) and "no problems found" in flat(result.output)


def test_generate_with_a_tiny_model_name(tmp_path):
    make_image(3).save(tmp_path / "picture.png")
    for name in ("vlora-tiny", "llava-tiny", "llava-qformer-tiny"):
        result = runner.invoke(app, ["generate", "--model", name, "--image", str(tmp_path / "picture.png"),
                                     "--question", "What?", "--max-new-tokens", "3", "--json"])
        assert result.exit_code == 0, result.output
        assert json.loads(result.output)["model"] == name


def test_wrong_kind_of_checkpoint_is_one_line(tmp_path):
    from vlora.model import build_model
    from vlora.presets import preset

    save_model(build_model(preset("llava-qformer-tiny"), seed=0), tmp_path / "qformer")
    result = runner.invoke(app, ["generate", "--model", "vlora", "--checkpoint", str(tmp_path / "qformer"),
                                 "--question", "Q?"])
    assert result.exit_code == 2
    assert "holds a LLaVA-v1.5-QFormer model, not VLoRA" in flat(result.output)
    report = json.loads(runner.invoke(app, ["inspect", str(tmp_path / "qformer"), "--json"]).output)
    assert "LLaVA-v1.5-QFormer" in report["summary"] and report["dims"]["qformer"]["queries"] == 8


def test_models_lists_the_registry():
    rows = json.loads(runner.invoke(app, ["models", "--json"]).output)
    by_name = {row["name"]: row for row in rows}
    assert by_name["llava-v1.5"]["visual_tokens"] == 576 and by_name["vlora"]["visual_tokens"] == 0
    assert by_name["llava-v1.5-qformer"]["visual_tokens"] == 128
    assert by_name["vlora"]["parameters"]["connector"] == 851_891_712
