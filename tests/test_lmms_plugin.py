"""The lmms-eval plugin (vlora_eval/lmms_plugin.py, vlora_eval/lmms_requests.py).

Without lmms-eval (CI's environment): nothing in the project imports lmms-eval or the plugin, the entry
point and the optional extra are declared, the plugin's import names the extra, and the request
conversion (lmms-eval's Instance args -> our Requests) is checked with Instance-like stand-ins.
With lmms-eval importable (`pip install 'vlora-eval[lmms]'`): the class is found by `--model vlora_eval`
through the entry point and answers real `Instance`s as our adapter does."""

from __future__ import annotations

import pkgutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import make_image

from vlora.errors import ConfigError, InputError
from vlora_eval.lmms_requests import (
    ChoiceGroup,
    choice_groups,
    cut_at_stops,
    generation_request,
    greedy_settings,
    likelihood_request,
    parse_overrides,
    visuals_of,
)

ROOT = Path(__file__).resolve().parent.parent
PLUGIN = "vlora_eval.lmms_plugin"


def _project_modules() -> list[str]:
    names = []
    for package in ("vlora", "evalsuite", "flops", "vlora_eval"):
        names.append(package)
        names += [m.name for m in pkgutil.walk_packages([str(ROOT / package)], prefix=f"{package}.")]
    return [n for n in names if n != PLUGIN]


def test_nothing_in_the_project_imports_lmms_eval_or_the_plugin():
    """Every module of the four packages imported in one fresh process: lmms-eval and the plugin stay out."""
    code = (f"import importlib, sys\nfor name in {_project_modules()!r}:\n    importlib.import_module(name)\n"
            f"print(sorted(n for n in sys.modules if n.split('.')[0] == 'lmms_eval' or n == {PLUGIN!r}))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    assert out.stdout.strip() == "[]"


def test_entry_point_and_the_optional_extra_are_declared():
    tomllib = pytest.importorskip("tomllib", reason="reading pyproject.toml needs Python 3.11's tomllib")
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["entry-points"]["lmms_eval.models"] == {"vlora_eval": "vlora_eval.lmms_requests:manifests"}
    assert project["optional-dependencies"]["lmms"] == ["lmms-eval==0.7.3", "filelock<4"]
    others = project["dependencies"] + project["optional-dependencies"]["dev"]
    assert not any(d.lower().startswith(("lmms-eval", "lmms_eval")) for d in others)


def test_importing_the_plugin_without_lmms_eval_names_the_extra():
    code = (f"import sys\nsys.modules['lmms_eval'] = None  # as if not installed\ntry:\n    import {PLUGIN}\n"
            "except ImportError as e:\n    print(e)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    assert "pip install 'vlora-eval[lmms]'" in out.stdout


# --- the request conversion, with Instance-like args --------------------------------------------------
DOCS = {"t": {"test": [{"q": 0, "pics": [make_image(1)]}, {"q": 1, "pics": [make_image(2), make_image(3)]},
                       {"q": 2, "pics": None}]}}


def doc_of(task, split, doc_id):
    return DOCS[task][split][doc_id]


def pics(doc):
    return doc["pics"]


def test_gen_kwargs_greedy_max_new_tokens_and_stops():
    assert greedy_settings(None, 64, "x") == (64, ())
    assert greedy_settings({"until": "\n\n", "max_new_tokens": "16", "temperature": 0, "do_sample": False,
                            "num_beams": 1, "top_p": 0.9}, 64, "x") == (16, ("\n\n",))
    assert greedy_settings({"until": ["A", "B"], "temperature": None}, 8, "x") == (8, ("A", "B"))
    for sampling in ({"do_sample": True}, {"temperature": 0.2}, {"num_beams": 3}):
        with pytest.raises(InputError, match="greedily") as e:
            greedy_settings(sampling, 8, "task t (test) doc 3")
        assert str(e.value).startswith("task t (test) doc 3: gen_kwargs") and "\n" not in str(e.value)
    with pytest.raises(ConfigError, match="max_new_tokens='many'"):
        greedy_settings({"max_new_tokens": "many"}, 8, "x")
    with pytest.raises(InputError, match="must be strings"):
        greedy_settings({"until": [None]}, 8, "x")


def test_answers_are_cut_at_the_first_stop():
    assert cut_at_stops("Yes.\n\nBecause", ("\n\n",)) == "Yes."
    assert cut_at_stops("red, then blue. Done", (".", ",")) == "red"
    assert cut_at_stops("as is", ("", "zzz")) == "as is"


def test_overrides_are_joined_with_semicolons():
    assert parse_overrides("connector.rank=8;llm.num_layers=2") == ["connector.rank=8", "llm.num_layers=2"]
    assert parse_overrides(None) == [] and parse_overrides("") == []
    with pytest.raises(ConfigError, match="is not KEY=VALUE"):
        parse_overrides("connector.rank=8;oops")


def test_visuals_keep_what_the_model_takes():
    two = DOCS["t"]["test"][1]
    assert visuals_of(pics, two, None) == (tuple(two["pics"]), 0)
    assert visuals_of(pics, two, 1) == ((two["pics"][0],), 1)
    assert visuals_of(pics, DOCS["t"]["test"][2], 1) == ((), 0)
    assert visuals_of(None, two, 1) == ((), 0)


def test_a_generate_until_instance_becomes_a_request():
    args = ("What is it?", {"until": ["\n"], "max_new_tokens": 5}, pics, 1, "t", "test")
    request, until, dropped = generation_request(args, 7, doc_of, 1, 64)
    assert (request.id, request.text, request.max_new_tokens, until, dropped) == ("7", "What is it?", 5, ("\n",), 1)
    assert request.images == (DOCS["t"]["test"][1]["pics"][0],) and request.choices == ()


def test_loglikelihood_instances_group_by_document_and_context():
    args = [("Q0", " A", pics, 0, "t", "test"), ("Q1", " yes", pics, 1, "t", "test"),
            ("Q0", " B", pics, 0, "t", "test"), ("Q1", " no", pics, 1, "t", "test"),
            ("Q0 again", " A", pics, 0, "t", "test"), ("Q0", " B", pics, 0, "t", "test")]  # a repeat
    groups = choice_groups(args)
    assert [(g.members, g.choices) for g in groups] == [((0, 2, 5), (" A", " B", " B")), ((1, 3), (" yes", " no")),
                                                        ((4,), (" A",))]
    request, dropped = likelihood_request(groups[1], doc_of, 1)
    assert (request.text, request.choices, dropped, len(request.images)) == ("Q1", ("yes", "no"), 1, 1)
    assert isinstance(groups[0], ChoiceGroup)


# --- with lmms-eval installed ---------------------------------------------------------------------------
@pytest.fixture
def lmms_eval(one_thread):
    return pytest.importorskip("lmms_eval", reason="lmms-eval is not installed (pip install 'vlora-eval[lmms]')")


def _instance(request_type, args, idx):
    from lmms_eval.api.instance import Instance

    return Instance(request_type=request_type, arguments=args, idx=idx,
                    metadata={"task": args[4], "doc_id": args[3], "repeats": 1})


def _plugin(arg_string="model=llava-tiny", batch_size="2"):
    from lmms_eval.models import get_model

    model = get_model("vlora_eval").create_from_arg_string(arg_string, {"batch_size": batch_size, "device": "cpu"})
    model.task_dict = DOCS
    return model


def test_vlora_eval_is_found_through_the_entry_point(lmms_eval):
    from lmms_eval.api.model import lmms
    from lmms_eval.models import get_model
    from lmms_eval.models.registry_v2 import ModelManifest

    from vlora_eval.lmms_requests import manifests

    assert manifests() == [ModelManifest("vlora_eval", simple_class_path=f"{PLUGIN}.VLoRAEvalLMM")]
    cls = get_model("vlora_eval")
    assert issubclass(cls, lmms) and cls.is_simple and cls.__module__ == PLUGIN


def test_model_args_reach_the_adapter(lmms_eval):
    model = _plugin("model=llava-tiny,set=llm.num_layers=1;llm.intermediate_size=96,mode=factorized,threads=1", "3")
    config = model.adapter.model.config
    assert (config.llm.num_layers, config.llm.intermediate_size) == (1, 96) and model.batch_size == 3 and str(model.device) == "cpu"
    assert (model.rank, model.world_size) == (0, 1)
    with pytest.raises(ConfigError, match="--model_args pretrained: unknown"):
        _plugin("model=llava-tiny,pretrained=x")
    with pytest.raises(ConfigError, match="--batch_size auto"):
        _plugin(batch_size="auto")


@pytest.mark.parametrize("name", ["vlora-tiny", "llava-tiny"])
def test_generate_until_answers_as_the_adapter_does(lmms_eval, name):
    from evalsuite.adapter import Request

    model = _plugin(f"model={name}")
    gen = {"until": ["\n\n"], "max_new_tokens": 4, "do_sample": False, "temperature": 0}
    args = [(f"Question {i}?", gen, pics, i, "t", "test") for i in range(3)]
    answers = model.generate_until([_instance("generate_until", a, 0) for a in args])
    adapter = model.adapter
    for i, answer in enumerate(answers):
        images = tuple(DOCS["t"]["test"][i]["pics"] or ())[:adapter.card.max_images or 9]
        expected = adapter.generate([Request("x", f"Question {i}?", images, max_new_tokens=4)])[0]
        assert answer == cut_at_stops(expected, ("\n\n",))
    with pytest.raises(InputError, match="greedily"):
        model.generate_until([_instance("generate_until", ("Q", {"do_sample": True}, pics, 0, "t", "test"), 0)])
    with pytest.raises(NotImplementedError, match="single-round"):
        model.generate_until_multi_round([])


def test_loglikelihood_survives_the_evaluator_and_picks_the_likeliest(lmms_eval):
    """Each result passes 0.7.3's unwrap_generation_output as a (number, is_greedy) tuple, the number is the
    negative log-probability (multiple_choice takes its argmin) and equals our adapter's score."""
    import numpy as np
    from lmms_eval.api.instance import unwrap_generation_output

    from evalsuite.adapter import Request

    model = _plugin("model=vlora-tiny")
    letters = ("A", "B", "C")
    args = [("Which letter?", f" {c}", pics, 0, "t", "test") for c in letters]
    results = model.loglikelihood([_instance("loglikelihood", a, j) for j, a in enumerate(args)])
    unwrapped = [unwrap_generation_output(r)[0] for r in results]
    assert all(isinstance(u, tuple) and isinstance(u[1], bool) for u in unwrapped)
    ours = model.adapter.loglikelihood([Request("x", "Which letter?", (make_image(1),), letters)], greedy=True)[0]
    assert [u[0] for u in unwrapped] == pytest.approx([-s for s, _ in ours], abs=1e-5)
    assert [u[1] for u in unwrapped] == [g for _, g in ours]
    assert int(np.argmin([u[0] for u in unwrapped])) == max(range(3), key=lambda j: ours[j][0])


def test_a_request_the_model_cannot_run_names_the_document(lmms_eval):
    model = _plugin("model=llava-tiny")
    bad = ("<image> <image> Two placeholders, one image", {"max_new_tokens": 2}, pics, 0, "t", "test")
    with pytest.raises(InputError, match=r"^task t \(test\) doc 0: "):
        model.generate_until([_instance("generate_until", bad, 0)])
