"""``pixseek index --ray`` on a cluster of two Ray nodes: a head and a second node, each its own raylet and
object store (``ray.cluster_utils.Cluster`` starts both on this machine, as ``ray start --head`` and
``ray start --address`` would on two). The head, where the driver runs, has no CPUs, so every decode task
and the encoder actor run on the second node and every result crosses from its object store to the head's,
as on a cluster whose driver does not embed; the run still gives the local run's ids, vectors and errors.
"""

from __future__ import annotations

import pytest
import test_ray_index as base

from pixseek.index.indexer import Indexer

ray = pytest.importorskip("ray")
corpus, local = base.corpus, base.local  # the same corpus, and the local run's result to compare with


@pytest.fixture(scope="module")
def two_nodes(tmp_path_factory):
    """A head without CPUs and a second node with 2, joined by this process as a driver."""
    from ray.cluster_utils import Cluster

    cache = tmp_path_factory.mktemp("ray-cluster-cache")
    env = {"HF_HUB_OFFLINE": "1", "XDG_CACHE_HOME": str(cache), "TOKENIZERS_PARALLELISM": "false"}
    c = Cluster(initialize_head=True, head_node_args={"num_cpus": 0, "include_dashboard": False})
    try:
        c.add_node(num_cpus=2)
        c.wait_for_nodes()
        ray.init(address=c.address, log_to_driver=False, runtime_env={"env_vars": env})
        yield c
    finally:
        ray.shutdown()
        c.shutdown()


def test_a_run_over_two_nodes_gives_the_local_runs_ids_vectors_and_errors(two_nodes, corpus, local, tiny, tmp_path):
    alive = [n for n in ray.nodes() if n["Alive"]]
    assert sorted(n["Resources"].get("CPU", 0) for n in alive) == [0, 2]  # the work can only run on the second
    s = Indexer(tmp_path / "db", encoder=tiny, batch_size=base.BATCH, ray=two_nodes.address).run([corpus])
    assert (s.added, s.failed, s.notes) == (41, 3, [])
    base.assert_same(base.snapshot(tmp_path / "db"), local)
