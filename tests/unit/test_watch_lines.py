"""The watch stream's framing: whole JSON lines are decoded, a line cut across chunks waits for
its end, blank keep-alive lines are skipped."""

from __future__ import annotations

import json

from provisioner.kube.watch import decode_lines


def test_lines_split_across_chunks_are_decoded_once_whole() -> None:
    one, two = json.dumps({"type": "ADDED", "n": 1}).encode(), json.dumps({"type": "DELETED", "n": 2}).encode()
    stream = one + b"\n\n" + two + b"\n"
    for cut in range(len(stream) + 1):
        events, rest = decode_lines(b"", stream[:cut])
        more, rest = decode_lines(rest, stream[cut:])
        assert [e["n"] for e in events + more] == [1, 2]
        assert rest == b""


def test_an_unfinished_line_is_kept() -> None:
    assert decode_lines(b"", b'{"type": "AD') == ([], b'{"type": "AD')
    assert decode_lines(b'{"type": "AD', b'DED"}\n{"x"') == ([{"type": "ADDED"}], b'{"x"')
