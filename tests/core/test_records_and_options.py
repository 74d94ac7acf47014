"""The one record schema and the one DecodeOptions type, both driven by tables in core."""

import dataclasses

import pytest

from imgcap_desktop.core.options import DECODING_OPTIONS, DecodeOptions
from imgcap_desktop.core.records import CSV_COLUMNS, RECORD_KEYS, csv_row, make_record
from imgcap_desktop.core.results import Alternative, Caption

CAPTION = Caption("a cat on a sofa", -0.5, (Alternative("a cat on a sofa", -3.0, -0.5),
                                             Alternative("a cat on a couch", -3.6, -0.6)),
                  confidence=0.71234, keywords=("cat", "tabby cat"))


def test_a_caption_and_a_failure_have_the_same_keys():
    done = make_record("a.jpg", caption=CAPTION)
    failed = make_record("b.jpg", error="b.jpg: is not an image.")
    assert list(done) == list(failed) == list(RECORD_KEYS)
    assert done["status"] == "done" and done["score"] == -0.5 and done["error"] is None
    assert done["alternatives"][1] == {"caption": "a cat on a couch", "score": -0.6, "log_prob": -3.6}
    assert done["confidence"] == 0.7123 and done["keywords"] == ["cat", "tabby cat"]
    assert failed == {"image": "b.jpg", "status": "failed", "caption": None, "edited": False, "score": None,
                      "confidence": None, "keywords": [], "alternatives": [], "error": "b.jpg: is not an image.",
                      "written": []}


def test_an_edit_replaces_the_caption_on_one_line_and_keeps_the_model_score():
    record = make_record("a.jpg", caption=CAPTION, text="  my cat\non  the sofa ", edited=True)
    assert record["caption"] == "my cat on the sofa" and record["edited"] is True and record["score"] == -0.5
    # The confidence was the model's estimate for its own caption, not for a person's.
    assert record["confidence"] is None and record["keywords"] == ["cat", "tabby cat"]
    assert make_record("a.jpg", caption=CAPTION, keywords=["sofa"])["keywords"] == ["sofa"]


def test_csv_rows_follow_the_columns():
    row = csv_row(make_record("a.jpg", caption=CAPTION, edited=True))
    assert dict(zip(CSV_COLUMNS, row)) == {"image": "a.jpg", "status": "done", "caption": "a cat on a sofa",
                                           "edited": "true", "score": "-0.5", "confidence": "",
                                           "keywords": "cat, tabby cat", "error": "", "written": ""}
    written = [{"target": "txt", "path": "a.jpg.txt", "result": "written", "error": None},
               {"target": "metadata", "path": "a.jpg", "result": "kept", "error": None}]
    row = csv_row(make_record("a.jpg", caption=CAPTION, written=written))
    assert row[-1] == "txt:written:a.jpg.txt; metadata:kept:a.jpg"


def test_decode_options_are_the_tables_decoding_options():
    assert [f.name for f in dataclasses.fields(DecodeOptions)] == [o.name for o in DECODING_OPTIONS]
    assert DecodeOptions.from_values({}) == DecodeOptions()
    assert DecodeOptions().as_kwargs() == {o.name: o.default for o in DECODING_OPTIONS}


def test_decode_options_from_stored_values_fall_back_on_unusable_ones():
    options = DecodeOptions.from_values({"beam": "4", "max_length": 9999, "batch_size": "x", "length_penalty": "0.7",
                                         "model_path": "/ignored"})
    assert options == DecodeOptions(beam=4, max_length=0, batch_size=8, length_penalty=0.7)


def test_resolving_fills_only_what_was_left_to_the_model():
    model = {"beam": 3, "max_length": 22, "length_penalty": 1.0, "keyword_guide": 0.9}
    assert DecodeOptions().resolved(**model) == DecodeOptions(beam=3, max_length=22, batch_size=8, length_penalty=1.0,
                                                              keyword_guide=0.9)
    asked = DecodeOptions(beam=1, max_length=5, batch_size=2, length_penalty=0.0, keyword_guide=0.0)
    assert asked.resolved(**model) == asked  # a penalty or a guide of 0 is a choice, not "unset"


def test_command_line_values_outside_the_limits_are_refused_with_the_range():
    beam = next(o for o in DECODING_OPTIONS if o.name == "beam")
    assert beam.parse("4") == 4
    with pytest.raises(ValueError, match="outside 0..10"):
        beam.parse("50")
    with pytest.raises(ValueError, match="not a whole number"):
        beam.parse("wide")
