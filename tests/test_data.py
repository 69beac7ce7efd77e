"""VLMEvalKit TSVs: references, multi-image lists, dropped rows, md5 warnings and malformed files."""

from __future__ import annotations

import numpy as np
import pytest
from tsv_fixtures import b64_image, circular_table, write_tsv, yes_no_table

from evalsuite.benchmarks import benchmark
from evalsuite.data import load_benchmark_data, resolve_tsv
from evalsuite.errors import DataError

MMB = benchmark("MMBench_DEV_EN")
MME = benchmark("MME")


def test_references_and_circular_copies(tmp_path):
    path = write_tsv(circular_table(3), tmp_path / "MMBench_DEV_EN.tsv")
    data = load_benchmark_data(MMB, path)
    assert len(data.table) == 2 + 3 + 4
    copy = data.table.index[data.table["index"] == 2 + 1_000_000][0]
    main = data.table.index[data.table["index"] == 2][0]
    assert np.array_equal(np.asarray(data.images(copy)[0]), np.asarray(data.images(main)[0]))
    assert data.table["index"].dtype.kind == "i"  # int-like indexes become ints
    assert "not a known release" in data.warnings[0] and str(path) in data.warnings[0]


def test_rows_without_image_are_dropped(tmp_path):
    table = yes_no_table(2)
    table.loc[len(table)] = {"index": 99, "image": None, "question": "Q", "answer": "Yes", "category": "color",
                             "image_path": "x.jpg"}
    data = load_benchmark_data(MME, write_tsv(table, tmp_path / "MME.tsv"))
    assert data.dropped_without_image == 1 and 99 not in set(data.table["index"])


def test_multi_image_lists_and_vlmevalkit_conversions(tmp_path):
    spec = benchmark("MMMU_DEV_VAL")
    two = str([b64_image((255, 0, 0)), b64_image((0, 0, 255), mode="RGBA")])
    table = circular_table(1).iloc[:1].drop(columns=["hint", "category", "l2-category"])
    table["image"] = [two]
    table["split"] = ["validation"]
    data = load_benchmark_data(spec, write_tsv(table, tmp_path / "MMMU_DEV_VAL.tsv"))
    images = data.images(0)
    assert data.image_count(0) == 2 and [im.mode for im in images] == ["RGB", "RGB"]
    assert images[0].getpixel((0, 0)) == (255, 0, 0)


def test_jpg_image_path_is_reencoded_like_vlmevalkit(tmp_path):
    rng = np.random.default_rng(0)
    import base64
    import io

    from PIL import Image

    noisy = Image.fromarray(rng.integers(0, 255, (32, 32, 3), dtype=np.uint8))
    buffer = io.BytesIO()
    noisy.save(buffer, format="PNG")
    table = yes_no_table(1)
    table.loc[0, "image"] = base64.b64encode(buffer.getvalue()).decode()
    data = load_benchmark_data(MME, write_tsv(table, tmp_path / "MME.tsv"))
    seen = np.asarray(data.images(0)[0])
    assert not np.array_equal(seen, np.asarray(noisy))  # JPEG is lossy: the model sees what VLMEvalKit saved
    saved = io.BytesIO()
    noisy.save(saved, format="JPEG")  # what `image.save("x.jpg")` writes (PIL's default quality)
    assert np.array_equal(seen, np.asarray(Image.open(saved).convert("RGB")))


@pytest.mark.parametrize("break_it,message", [
    (lambda t: t.drop(columns=["answer"]), r"missing column\(s\) \['answer'\]"),
    (lambda t: t.assign(index=[0] + list(t["index"][1:-1]) + [0]), r"line \d+, column index: index 0 repeats line 2"),
    (lambda t: t.assign(image=["Zm9v" * 30] + list(t["image"][1:])), r"line 2 \(index 0\), column image: the base64 image cannot be decoded"),
    (lambda t: t.assign(image=list(t["image"][:1]) + ["777"] + list(t["image"][2:])),
     r"line 3 \(index 1000000\), column image: refers to index 777"),
    (lambda t: t.assign(answer=["D"] + list(t["answer"][1:])), r"line 2 \(index 0\), column answer: 'D' is not among"),
])
def test_malformed_tsv_errors_name_file_row_and_column(tmp_path, break_it, message):
    path = write_tsv(break_it(circular_table(2)), tmp_path / "MMBench_DEV_EN.tsv")
    with pytest.raises(DataError, match=message) as error:
        load_benchmark_data(MMB, path)
    assert str(path) in str(error.value)


def test_yes_no_answers_must_be_yes_or_no(tmp_path):
    table = yes_no_table(1)
    table.loc[0, "answer"] = "yes"
    with pytest.raises(DataError, match=r"column answer: 'yes' is not Yes or No"):
        load_benchmark_data(MME, write_tsv(table, tmp_path / "MME.tsv"))


def test_location_rules(tmp_path, monkeypatch):
    write_tsv(yes_no_table(1), tmp_path / "lmu" / "MME.tsv")
    monkeypatch.setenv("LMUData", str(tmp_path / "lmu"))
    assert resolve_tsv(MME) == tmp_path / "lmu" / "MME.tsv"
    with pytest.raises(DataError, match=r"MMBench_DEV_EN.tsv not found.*opencompass"):
        resolve_tsv(MMB)
    assert resolve_tsv(MME, data_file=tmp_path / "lmu" / "MME.tsv").name == "MME.tsv"
