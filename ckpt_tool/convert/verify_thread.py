"""Check what ``RangeCopier`` copied, in a second thread, while the copy goes on.

Each finished range of the output is read back and compared with the source's bytes, read again;
a range that is one whole zip record (a torch storage) is instead checked against the CRC-32 the
zip holds for it, which needs no second read of the source and also catches a source damaged
since it was written. ``pread`` and ``zlib.crc32`` release the GIL, so on a second core the
check costs the copy almost nothing. A large range is read back 1 MB at a time into one reused
buffer (and the source's bytes into another) and checked while in the CPU cache: a new 8 MB
``bytes`` for each read, in a thread's own malloc arena, is given back to the kernel when freed
and faulted in again page by page (on a 2 GB checkpoint: 30% of the check's time with the CRC,
three times the whole copy's system time comparing with the source). Small ranges (many tiny
tensors) are read in windows of consecutive bytes, not one system call each.
"""

from __future__ import annotations

import contextlib
import os
import queue
import threading
import zlib
from collections.abc import Callable

from ckpt_tool.convert.byte_copy import BUFFER, HAND_OFF, first_difference, mismatch
from ckpt_tool.errors import ConversionError

WINDOW = 8 << 20
"""Most bytes read back in one ``pread`` (consecutive ranges of the output together)."""
_SMALL = 64 << 10
"""Source ranges up to this are served from a read-ahead window of ``_READ_AHEAD`` bytes."""
_READ_AHEAD = 1 << 20
_BATCH_TASKS = 4096
_QUEUED = 16
"""Batches (of up to ``HAND_OFF`` bytes) the copy may run ahead of the check: enough that the
copy does not stop each time the check's core is taken by another process for a moment."""


class Record:
    """One whole zip record being copied: where it goes, the CRC-32 its zip holds, and the CRC
    of what was read back so far."""

    __slots__ = ("at", "expected", "length", "name", "offset", "record", "src", "start", "value")

    def __init__(self, expected: int, record: str, at: int, length: int, src: int, offset: int,
                 name: str, start: int) -> None:
        self.expected, self.record, self.value = expected, record, 0
        self.at, self.length, self.src, self.offset = at, length, src, offset
        self.name, self.start = name, start


_Task = tuple[int, int, int, int, str, int, "Record | None"]
"""(output offset, length, source fd, source offset, tensor name, tensor's output offset,
the whole record it belongs to, if any)."""


class Verifier:
    def __init__(self, dest: int) -> None:
        self.dest = dest
        self.failure: ConversionError | None = None
        self._queue: queue.Queue[list[_Task] | None] = queue.Queue(maxsize=_QUEUED)
        self._batch: list[_Task] = []
        self._batch_bytes = 0
        self._added = 0
        self._checked = 0
        self._taken = 0
        self._stopping = False
        self._buffer_bytes = bytearray(BUFFER)
        self._buffer = memoryview(self._buffer_bytes)
        self._source_bytes = bytearray(BUFFER)
        self._source = memoryview(self._source_bytes)
        self._thread = threading.Thread(target=self._run, name="ckpt-verify", daemon=True)
        self._thread.start()

    def record(self, crc: tuple[int, str], at: int, length: int, src: int, offset: int,
               name: str, start: int) -> Record:
        return Record(crc[0], crc[1], at, length, src, offset, name, start)

    def add(self, at: int, length: int, src: int, offset: int, name: str, start: int,
            record: Record | None) -> None:
        """Check ``length`` bytes written at ``at`` (from ``offset`` of ``src``)."""
        self._batch.append((at, length, src, offset, name, start, record))
        self._batch_bytes += length
        self._added += length
        if self._batch_bytes >= HAND_OFF or len(self._batch) >= _BATCH_TASKS:
            self._hand_off()

    def take_checked(self) -> int:
        """Bytes checked since the last call (for progress)."""
        checked = self._checked
        delta, self._taken = checked - self._taken, checked
        return delta

    def raise_failure(self) -> None:
        if self.failure is not None:
            raise self.failure

    def finish(self, report: Callable[[], None]) -> None:
        self._hand_off()
        self._queue.put(None)
        while self._thread.is_alive():
            self._thread.join(0.1)
            report()
        self.raise_failure()
        if self._checked != self._added:  # never "verified" without every byte checked
            raise ConversionError(f"verification failed: {self._added - self._checked} bytes "
                                  "were not checked")

    def stop(self) -> None:
        """End the thread without waiting for the checks (after a failure or Ctrl-C)."""
        self._stopping = True
        with contextlib.suppress(queue.Empty):
            while True:
                self._queue.get_nowait()
        with contextlib.suppress(queue.Full):
            self._queue.put_nowait(None)
        self._thread.join(1.0)

    def _hand_off(self) -> None:
        if self._batch:
            self.raise_failure()
            self._queue.put(self._batch)
            self._batch, self._batch_bytes = [], 0

    def _run(self) -> None:
        sources = _ReadAhead()
        while True:
            batch = self._queue.get()
            if batch is None or self._stopping:
                return
            if self.failure is not None:
                continue
            try:
                self._check(batch, sources)
            except ConversionError as exc:
                self.failure = exc
            except OSError as exc:
                self.failure = ConversionError(f"verification failed: reading back: "
                                               f"{exc.strerror or exc}")
            except Exception as exc:  # a bug here must fail the conversion, never pass it
                self.failure = ConversionError(f"verification failed: {type(exc).__name__}: "
                                               f"{exc}")

    def _check(self, batch: list[_Task], sources: _ReadAhead) -> None:
        first = 0
        while first < len(batch):
            if _streamed(batch[first]):
                self._check_streamed(batch[first])
                self._checked += batch[first][1]
                first += 1
                continue
            begin = end = batch[first][0]
            last = first
            while last < len(batch) and batch[last][0] == end and not _streamed(batch[last]) and (
                    last == first or end + batch[last][1] - begin <= WINDOW):
                end += batch[last][1]
                last += 1
            data = os.pread(self.dest, end - begin, begin)
            whole = last - first == 1
            for task in batch[first:last]:
                at, length = task[0], task[1]
                got = data if whole else data[at - begin:at - begin + length]
                self._check_one(task, got, sources)
                self._checked += length
            first = last

    def _check_one(self, task: _Task, got: bytes, sources: _ReadAhead) -> None:
        at, length, src, offset, name, start, record = task
        if record is None:
            want = sources.read(src, offset, length)
            if got != want:
                raise mismatch(name, at - start + first_difference(got, want))
            return
        record.value = zlib.crc32(got, record.value)
        if at + length == record.at + record.length and record.value != record.expected:
            raise self._crc_failure(record)

    def _check_streamed(self, task: _Task) -> None:
        """A large range, read back 1 MB at a time into a reused buffer: against its record's
        CRC, or against the source's bytes read into a second buffer."""
        at, length, src, offset, name, start, record = task
        done = 0
        while done < length:
            count = min(BUFFER, length - done)
            read = os.preadv(self.dest, [self._buffer[:count]], at + done)
            if record is None:
                self._compare(self._buffer, read, count, src, offset + done,
                              name, at - start + done)
            else:
                record.value = zlib.crc32(self._buffer[:read], record.value)
                if read < count:  # the output is shorter than written: find where it differs
                    raise self._crc_failure(record)
            done += count
        if record is not None and at + length == record.at + record.length and (
                record.value != record.expected):
            raise self._crc_failure(record)

    def _compare(self, got: memoryview, read: int, count: int, src: int, offset: int,
                 name: str, where: int) -> None:
        """The ``read`` bytes in ``got`` are the ``count`` bytes of ``src`` at ``offset``."""
        wanted = os.preadv(src, [self._source[:count]], offset)
        if read == wanted == BUFFER:
            same = self._source_bytes == self._buffer_bytes  # bytearrays: one memcmp
        else:
            same = read == wanted and got[:read].tobytes() == self._source[:wanted].tobytes()
        if not same:
            a, b = got[:read].tobytes(), self._source[:wanted].tobytes()
            raise mismatch(name, where + first_difference(a, b))

    def _crc_failure(self, record: Record) -> ConversionError:
        """The copy differs from the zip's CRC: say whether the copy or the source is wrong."""
        for done in range(0, record.length, WINDOW):
            count = min(WINDOW, record.length - done)
            got = os.pread(self.dest, count, record.at + done)
            want = os.pread(record.src, count, record.offset + done)
            if got != want:
                return mismatch(record.name, record.at - record.start + done
                                + first_difference(got, want))
        return ConversionError(f"verification failed: {record.name}: the source's bytes do not "
                               f"match the CRC-32 its zip holds for {record.record}: the source "
                               "file is damaged")


def _streamed(task: _Task) -> bool:
    return task[1] > _SMALL


class _ReadAhead:
    """Source bytes for the checks: small ranges from a window read ahead (tiny tensors lie a
    zip header apart), large ones read as they are."""

    def __init__(self) -> None:
        self.fd, self.start, self.data = -1, 0, b""

    def read(self, fd: int, offset: int, length: int) -> bytes:
        if length > _SMALL:
            return os.pread(fd, length, offset)
        begin = offset - self.start
        if fd != self.fd or begin < 0 or begin + length > len(self.data):
            self.fd, self.start, self.data = fd, offset, os.pread(fd, _READ_AHEAD, offset)
            begin = 0
        return self.data[begin:begin + length]
