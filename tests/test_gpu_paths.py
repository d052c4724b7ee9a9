"""The FAISS GPU paths, wired up on a CPU-only machine.

faiss-gpu says ``get_num_gpus() == 0`` here, so these tests stand in a fake GPU: ``index_cpu_to_all_gpus``
returns a CPU clone (recorded) and ``GpuParameterSpace`` is the CPU ``ParameterSpace``. They check the
wiring - IVF training hands k-means to the "GPU" flat index, searches go to the GPU copy with the tuned
parameters and give the CPU index's answers, a GPU copy is dropped after adds/removes, a type without
a GPU version and k beyond the GPU's limit stay on the CPU, filtered searches use the CPU index. What
it cannot check is a real GPU: bench/gpu.sh does that on a machine with one.
"""

from __future__ import annotations

import faiss
import numpy as np
import pytest
from test_ann import clustered, synthetic  # noqa: F401  (fixture)

from pixseek.store import ann
from pixseek.store.vectors import GPU_MAX_K, VectorIndex


class FakeGpu:
    def __init__(self, monkeypatch, fail_for: tuple[str, ...] = ()):
        self.copies: list = []
        self.fail_for = fail_for
        monkeypatch.setattr(faiss, "get_num_gpus", lambda: 1)
        monkeypatch.setattr(faiss, "index_cpu_to_all_gpus", self.to_gpu)
        monkeypatch.setattr(faiss, "GpuParameterSpace", faiss.ParameterSpace)

    def to_gpu(self, index, *args, **kwargs):
        top = faiss.downcast_index(index)  # (``index`` keeps the object alive: downcasts do not own it)
        inner = faiss.downcast_index(top.index) if hasattr(top, "id_map") else top  # IDMap2(...)
        name = type(inner).__name__
        if any(f in name for f in self.fail_for):
            raise RuntimeError(f"clone not supported for this type of Index ({name})")
        copy = faiss.clone_index(index)
        self.copies.append((name, copy))
        return copy


def build(st, factory: str) -> VectorIndex:
    st.set_meta(index_type=factory)
    return VectorIndex.build(st)


def test_ivf_trains_and_searches_on_the_gpu_copy(synthetic, monkeypatch):  # noqa: F811
    st, x = synthetic
    gpu = FakeGpu(monkeypatch)
    vi = build(st, "IVF32,Flat")
    # k-means ran with the GPU flat index as its assignment index
    assert gpu.copies[0][0] == "IndexFlatIP"
    assert vi.params.startswith("nprobe=")
    q = x[:20] + 0.01
    scores, ids = vi.search(q, 10)
    assert vi.on_gpu
    name, copy = gpu.copies[-1]
    assert name == "IndexIVFFlat"
    # the GPU copy carries the tuned nprobe and answers exactly like the CPU index
    assert faiss.extract_index_ivf(copy).nprobe == int(vi.params.split("=")[1])
    cpu_scores, cpu_ids = vi.index.search(np.ascontiguousarray(q, dtype=np.float32), 10)
    assert np.array_equal(ids, cpu_ids)
    assert np.allclose(scores, cpu_scores)


def test_gpu_copy_follows_adds_and_removes(synthetic, monkeypatch):  # noqa: F811
    st, x = synthetic
    gpu = FakeGpu(monkeypatch)
    vi = build(st, "Flat")
    vi.search(x[:1], 5)
    copies = len(gpu.copies)
    new = clustered(1, seed=77)
    vi.add(np.array([999_999]), new)
    _, ids = vi.search(new, 1)
    assert ids[0, 0] == 999_999 and len(gpu.copies) == copies + 1
    vi.remove([999_999])
    _, ids = vi.search(new, 1)
    assert ids[0, 0] != 999_999 and len(gpu.copies) == copies + 2


def test_types_without_a_gpu_version_stay_on_cpu(synthetic, monkeypatch):  # noqa: F811
    st, x = synthetic
    FakeGpu(monkeypatch, fail_for=("HNSW", "FastScan"))
    for factory in ("HNSW16", "IVF32,PQ16x4fs"):
        vi = build(st, factory)
        scores, ids = vi.search(x[:5], 10)
        assert not vi.on_gpu
        assert (ids[:, 0] >= 0).all()


def test_deep_and_filtered_searches_use_the_cpu_index(synthetic, monkeypatch):  # noqa: F811
    st, x = synthetic
    gpu = FakeGpu(monkeypatch)
    vi = build(st, "Flat")
    vi.search(x[:1], 5)
    assert vi.on_gpu
    calls = []
    monkeypatch.setattr(vi, "index", _Spy(vi.index, calls))
    _, ids = vi.search(x[:1], GPU_MAX_K + 1)  # beyond the GPU k-selection limit
    assert calls == ["search"] and (ids[0] >= 0).sum() == GPU_MAX_K + 1
    allowed = np.arange(1, 200, 2)
    _, ids = vi.search(x[:1], 10, ids=allowed)  # a selector: CPU only
    assert calls == ["search", "search"] and set(ids[0]) <= set(allowed)
    assert len(gpu.copies) == 1  # neither made a GPU copy


class _Spy:
    """Counts searches on the CPU index and forwards everything else."""

    def __init__(self, index, calls):
        self._index, self._calls = index, calls

    def search(self, *a, **kw):
        self._calls.append("search")
        return self._index.search(*a, **kw)

    def __getattr__(self, name):
        return getattr(self._index, name)


@pytest.mark.parametrize("n,expect", [(10_000, "Flat"), (1_000_000, "IVF4096,Flat")])
def test_factory_choice_does_not_depend_on_gpus(monkeypatch, n, expect):
    FakeGpu(monkeypatch)
    assert ann.choose_factory(n, 256, budget=8 << 30) == expect
