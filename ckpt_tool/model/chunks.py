"""Facts about a tensor saved in pieces (:class:`Chunk`): where each piece lands in the whole
tensor's C-order elements, and whether the pieces tile the whole exactly."""

from __future__ import annotations

import itertools

from ckpt_tool.model.checkpoint import Chunk, TensorRef


def flat_range(chunk: Chunk, shape: tuple[int, ...]) -> tuple[int, int] | None:
    """(first, end) C-order element indices of the whole tensor that the chunk covers, when they
    are consecutive (a flat piece, or a box that spans whole rows); None otherwise."""
    count = chunk.tensor.numel
    if chunk.flat:
        return chunk.offsets[0], chunk.offsets[0] + count
    if count == 0:
        return None
    partial = [d for d, (size, whole) in enumerate(zip(chunk.sizes, shape, strict=True))
               if size != whole]
    if partial and any(chunk.sizes[d] != 1 for d in range(partial[-1])):
        return None
    first = 0
    for offset, whole in zip(chunk.offsets, shape, strict=True):
        first = first * whole + offset
    return first, first + count


def coverage_problem(tensor: TensorRef) -> str | None:
    """Why the chunks do not hold every element of the tensor exactly once; None when they do."""
    shape = tensor.shape
    pieces = [chunk for chunk in tensor.chunks if chunk.tensor.numel]
    for chunk in pieces:
        if not _inside(chunk, shape, tensor.numel):
            return f"a chunk at {list(chunk.offsets)} lies outside its shape {list(shape)}"
    covered = sum(chunk.tensor.numel for chunk in pieces)
    if covered != tensor.numel:
        return f"its chunks hold {covered} of its {tensor.numel} elements"
    overlap = _overlapping(pieces, shape)
    if overlap:
        return f"its chunks overlap ({overlap})"
    return None


def _inside(chunk: Chunk, shape: tuple[int, ...], numel: int) -> bool:
    if chunk.flat:
        return len(chunk.offsets) == 1 and chunk.offsets[0] + chunk.tensor.numel <= numel
    return len(chunk.offsets) == len(chunk.sizes) == len(shape) and all(
        o + n <= s for o, n, s in zip(chunk.offsets, chunk.sizes, shape, strict=True))


def _overlapping(pieces: list[Chunk], shape: tuple[int, ...]) -> str | None:
    """Where two pieces share an element. Runs of consecutive elements are sorted and each is
    compared with the next; other boxes pairwise (a few per tensor: one per rank)."""
    spans = [(flat_range(chunk, shape), chunk) for chunk in pieces]
    if all(span is not None for span, _ in spans):
        ordered = sorted(spans, key=lambda item: item[0])
        for (a, chunk_a), (b, chunk_b) in itertools.pairwise(ordered):
            if b[0] < a[1]:
                return _pair(chunk_a, chunk_b)
        return None
    if any(chunk.flat for chunk in pieces):
        return "flat pieces beside boxes"
    for i, a in enumerate(pieces):
        for b in pieces[i + 1:]:
            if all(oa < ob + nb and ob < oa + na for oa, na, ob, nb in
                   zip(a.offsets, a.sizes, b.offsets, b.sizes, strict=True)):
                return _pair(a, b)
    return None


def _pair(a: Chunk, b: Chunk) -> str:
    return f"{list(a.offsets)} and {list(b.offsets)}"
