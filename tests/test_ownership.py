"""One owner per output, and a sink that notices when its file changes under it or cannot be written."""

from __future__ import annotations

import errno
import json
import os

import pytest

from synthetic_results import row
from seqbench.errors import ResultsError
from seqbench.results.ownership import check_not_input, is_locked, own
from seqbench.results.reader import read_results
from seqbench.results.writer import CsvSink, atomic_write, write_json_last
from seqbench.orchestration import signals


def test_new_is_exclusive_and_the_lock_dies_with_its_owner(tmp_path):
    p = tmp_path / "r.csv"
    first = own(p, "new")
    with pytest.raises(ResultsError, match="already exists"):
        own(p, "new")  # the second of two runs started at once
    (tmp_path / "r.json").write_text(json.dumps({"pid": 4321, "host": "box"}))
    for how in ("replace", "append", "resume"):
        with pytest.raises(ResultsError, match=r"being written by another seqbench process \(pid 4321 on box\)"):
            own(p, how)
    assert is_locked(p)
    first.release()  # as the kernel does when the owner dies, however it dies
    assert not is_locked(p)
    with own(p, "resume") as again:
        assert not again.created


def test_replace_empties_only_once_owned(tmp_path):
    p = tmp_path / "r.csv"
    p.write_text("the user's file\n")
    with own(p, "append"):
        with pytest.raises(ResultsError, match="being written"):
            CsvSink(p)  # --force while another run owns it: refused, nothing emptied
    assert p.read_text() == "the user's file\n"
    with CsvSink(p) as sink:
        sink.write(row("sdpa", 8, 1))
    assert len(read_results(p)) == 1


def test_sink_stops_when_its_file_is_deleted_replaced_or_changed(tmp_path):
    p = tmp_path / "r.csv"
    for damage, words in [(lambda: p.unlink(), "was deleted"),
                          (lambda: (p.with_suffix(".new").write_text("x\n"), os.replace(p.with_suffix(".new"), p)), "was replaced"),
                          (lambda: os.truncate(p, 10), "was truncated"),
                          (lambda: _append(p, "extra\n"), "written to by something else")]:
        p.unlink(missing_ok=True)
        sink = CsvSink(p)
        sink.write(row("sdpa", 8, 1))
        damage()
        with pytest.raises(ResultsError, match=words):
            sink.write(row("sdpa", 16, 1))
        sink.close()


def _append(p, text):
    with p.open("a") as fh:
        fh.write(text)


def test_a_failed_write_leaves_no_half_row(tmp_path, monkeypatch):
    p = tmp_path / "r.csv"
    sink = CsvSink(p)
    sink.write(row("sdpa", 8, 1))
    good = p.read_bytes()
    real = os.pwrite

    def disk_full(fd, data, offset):  # half the row reaches the disk, then the space runs out
        if len(data) > 40:
            return real(fd, bytes(data[:40]), offset)
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "pwrite", disk_full)
    with pytest.raises(ResultsError, match="No space left on device; stopped; the rows before this one are intact"):
        sink.write(row("sdpa", 16, 1))
    monkeypatch.undo()
    assert p.read_bytes() == good and len(read_results(p)) == 1
    sink.close()


def test_last_sidecar_write_falls_back_to_in_place(tmp_path, monkeypatch):
    side = tmp_path / "r.json"
    meta = {"status": "running", "environment": {f"k{i}": "v" * 20 for i in range(40)}}
    side.write_text(json.dumps(meta, indent=2) + "\n")
    monkeypatch.setattr("tempfile.mkstemp", lambda **kw: (_ for _ in ()).throw(OSError(errno.ENOSPC, "No space left on device")))
    write_json_last(side, {**meta, "status": "failed", "error": "disk full"})
    assert json.loads(side.read_text())["status"] == "failed"
    side.write_text("{}")  # no room to rewrite in place either: the error, and the old file left whole
    with pytest.raises(ResultsError, match="No space left on device"):
        write_json_last(side, meta)
    assert side.read_text() == "{}"


def test_atomic_write_without_replace_never_clobbers(tmp_path):
    p = tmp_path / "m.csv"
    atomic_write(p, lambda fh: fh.write("one\n"), replace=False)
    with pytest.raises(ResultsError, match="already exists"):
        atomic_write(p, lambda fh: fh.write("two\n"), replace=False)
    assert p.read_text() == "one\n" and [q.name for q in tmp_path.iterdir()] == ["m.csv"]


def test_output_equal_to_input_through_links(tmp_path):
    a = tmp_path / "a.csv"
    a.write_text("x")
    os.link(a, tmp_path / "hard.md")
    os.symlink(a, tmp_path / "soft.md")
    for out in ("a.csv", "hard.md", "soft.md", "./a.csv"):
        with pytest.raises(ResultsError, match="is also an input"):
            check_not_input([tmp_path / out], [a])
    check_not_input([tmp_path / "b.csv"], [a])


def test_an_interrupt_inside_an_import_waits_for_the_next_checkpoint():
    import signal

    with signals.interrupts_as_exceptions():
        frame = type("F", (), {"f_code": type("C", (), {"co_filename": "<frozen importlib._bootstrap>"}),
                               "f_back": None})()
        signals._stop(signal.SIGTERM, frame)  # as if it landed inside `import torch`: not raised there
        with pytest.raises(signals.Terminated):
            signals.checkpoint()
    assert signals.last_interrupt(forget=True) == "SIGTERM"
