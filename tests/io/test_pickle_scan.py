"""The static pickle scanner finds globals without executing anything."""
from __future__ import annotations

import io
import struct

import torch

from weightspace.io.pickle_scan import allowed_globals, referenced_globals, scan_stream, unsafe_globals


def short_unicode(text: str) -> bytes:
    data = text.encode()
    return b"\x8c" + bytes([len(data)]) + data


def test_plain_torch_files_have_no_unsafe_globals(tmp_path):
    sd = {"w": torch.randn(2, 2), "b": torch.zeros(2, dtype=torch.bfloat16)}
    for zip_format in (True, False):
        path = tmp_path / f"m{zip_format}.pt"
        torch.save(sd, path, _use_new_zipfile_serialization=zip_format)
        found = referenced_globals(path)
        assert "torch._utils._rebuild_tensor_v2" in found
        assert unsafe_globals(path) == []


def test_allow_list_has_the_basics():
    allowed = allowed_globals()
    assert {"torch._utils._rebuild_tensor_v2", "collections.OrderedDict", "torch.FloatStorage"} <= allowed
    assert "os.system" not in allowed and "builtins.eval" not in allowed


def test_global_opcode():
    assert scan_stream(io.BytesIO(b"\x80\x02cbuiltins\neval\nq\x00.")) == ["builtins.eval"]


def test_protocol_2_names_are_mapped_to_python_3():
    assert scan_stream(io.BytesIO(b"\x80\x02c__builtin__\neval\nq\x00.")) == ["builtins.eval"]


def test_stack_global_through_memo_and_unrelated_pushes():
    # push "os", memoize, pop; push "system", memoize, pop; push a list and drop it;
    # then fetch both strings back from the memo and STACK_GLOBAL them.
    body = (
        short_unicode("os") + b"\x94" + b"0"
        + short_unicode("system") + b"\x94" + b"0"
        + b"]" + b"0"
        + b"h\x00" + b"h\x01" + b"\x93"
        + b"."
    )
    frame = b"\x95" + struct.pack("<Q", len(body))
    assert scan_stream(io.BytesIO(b"\x80\x04" + frame + body)) == ["os.system"]


def test_stack_global_after_mark_and_pop_mark():
    # MARK then POP_MARK between the two strings leaves them adjacent on the stack.
    body = short_unicode("subprocess") + b"(" + b"1" + short_unicode("Popen") + b"\x93" + b"."
    assert scan_stream(io.BytesIO(b"\x80\x04" + body)) == ["subprocess.Popen"]


def test_stack_global_on_non_strings_is_still_reported():
    assert scan_stream(io.BytesIO(b"\x80\x04K\x01K\x02\x93.")) == ["<unresolved STACK_GLOBAL>"]


def test_garbage_yields_nothing():
    assert scan_stream(io.BytesIO(b"\xff\xfe garbage"), max_pickles=5) == []
