import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from datagen.errors import InputError
from datagen.dataset.seeds import MAX_SEED_CHARS, read_seeds


def test_txt_skips_blank_lines_and_normalises_whitespace(tmp_path):
    path = tmp_path / "s.txt"
    path.write_bytes(b"\xef\xbb\xbfFirst  sentence.\r\n\r\n  Second\tone. \r\n")
    seeds = read_seeds(path)
    assert [(s.index, s.text, s.problem) for s in seeds] == [(0, "First sentence.", None), (1, "Second one.", None)]


def test_limit_keeps_first_seeds(seed_file):
    assert [s.index for s in read_seeds(seed_file, limit=3)] == [0, 1, 2]


@pytest.mark.parametrize(
    "content, message",
    [
        (None, "does not exist"),
        (b"", "is empty"),
        (b"\n\n  \n", "holds no sentences"),
        (b"caf\xe9 au lait\n", "not valid UTF-8"),
        (b"\x00\x01\x02binary", "looks binary"),
    ],
)
def test_unusable_files_raise_one_line_input_error(tmp_path, content, message):
    path = tmp_path / "seeds.txt"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(InputError, match=message) as caught:
        read_seeds(path)
    assert "\n" not in str(caught.value) and str(path) in str(caught.value)


def test_directory_is_refused(tmp_path):
    with pytest.raises(InputError, match="is a directory"):
        read_seeds(tmp_path)


def test_jsonl_bad_lines_become_per_row_problems(tmp_path):
    path = tmp_path / "s.jsonl"
    lines = [json.dumps({"text": "A good sentence here."}), "{broken", json.dumps({"other": 1}), json.dumps({"text": 5})]
    path.write_text("\n".join(lines), encoding="utf-8")
    seeds = read_seeds(path)
    assert [s.problem for s in seeds] == [None, "seed_bad_json", "seed_missing_field", "seed_not_text"]


def test_parquet_column_and_missing_column(tmp_path):
    path = tmp_path / "s.parquet"
    pq.write_table(pa.table({"sentence": ["One fine day.", None]}), path)
    seeds = read_seeds(path, column="sentence")
    assert seeds[0].text == "One fine day." and seeds[1].problem == "seed_not_text"
    with pytest.raises(InputError, match="no column 'text'.*--column"):
        read_seeds(path)


def test_overlong_line_is_a_row_problem_not_a_crash(tmp_path):
    path = tmp_path / "s.txt"
    path.write_text("Short one is fine.\n" + "x" * 1_000_000 + "\n", encoding="utf-8")
    seeds = read_seeds(path)
    assert seeds[1].problem == "seed_too_long" and len(seeds[1].text) == MAX_SEED_CHARS


def test_template_syntax_in_seed_is_plain_text(tmp_path):
    path = tmp_path / "s.txt"
    path.write_text("{{ 7*7 }}\n{% for x in y %}\n", encoding="utf-8")
    assert [s.text for s in read_seeds(path)] == ["{{ 7*7 }}", "{% for x in y %}"]
