"""Expert-parallelism load balancer: replicate MoE experts and place the replicas on GPUs."""

# EVOLVE-BLOCK-START
import numpy as np

# How many nodes form one placement domain. Expert groups are packed onto domains, then
# replicas are made and packed onto GPUs inside each domain. 1 (a domain per node) is
# DeepSeek's hierarchical policy; num_nodes (one domain) is its global policy, which it also
# falls back to when the groups cannot be split evenly over the domains.
NODES_PER_DOMAIN = 1


def balanced_packing(weight: np.ndarray, num_packs: int) -> tuple[np.ndarray, np.ndarray]:
    """Split each row's items into `num_packs` packs of equal size, balancing pack weights.

    Greedy: items in descending weight go, one by one, to the lightest pack that still has
    a free place. Returns (pack index, rank inside the pack) per item, both [rows, items].
    """
    rows, items = weight.shape
    per_pack = items // num_packs
    pack_index = np.empty((rows, items), dtype=np.int64)
    rank_in_pack = np.empty((rows, items), dtype=np.int64)
    order = np.argsort(-weight, axis=-1, kind="stable")
    for row in range(rows):
        loads = [0.0] * num_packs
        counts = [0] * num_packs
        for item in order[row]:
            open_packs = [p for p in range(num_packs) if counts[p] < per_pack]
            pack = min(open_packs, key=loads.__getitem__)
            pack_index[row, item] = pack
            rank_in_pack[row, item] = counts[pack]
            counts[pack] += 1
            loads[pack] += float(weight[row, item])
    return pack_index, rank_in_pack


def replicate_experts(weight: np.ndarray, num_phy: int
                      ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Give each of a row's experts one slot, then each spare slot to the expert with the
    highest load per replica. Returns (slot -> expert, replica rank, replica counts)."""
    rows, num_log = weight.shape
    arange = np.arange(rows)
    phy2log = np.tile(np.arange(num_phy, dtype=np.int64), (rows, 1))
    rank = np.zeros((rows, num_phy), dtype=np.int64)
    logcnt = np.ones((rows, num_log), dtype=np.int64)
    for slot in range(num_log, num_phy):
        hottest = np.argmax(weight / logcnt, axis=-1)
        phy2log[:, slot] = hottest
        rank[:, slot] = logcnt[arange, hottest]
        logcnt[arange, hottest] += 1
    return phy2log, rank, logcnt


def inverse(perm: np.ndarray) -> np.ndarray:
    """The inverse of each row's permutation."""
    inv = np.empty_like(perm)
    np.put_along_axis(inv, perm, np.arange(perm.shape[1], dtype=perm.dtype)[None, :].repeat(
        perm.shape[0], axis=0), axis=1)
    return inv


def rebalance_hierarchical(weight: np.ndarray, num_phy: int, num_groups: int, num_nodes: int,
                           num_gpus: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Groups to nodes, then replication and GPU packing inside each node."""
    layers, num_log = weight.shape
    group_size = num_log // num_groups
    groups_per_node = num_groups // num_nodes
    log_per_node = num_log // num_nodes
    phy_per_node = num_phy // num_nodes
    phy_per_gpu = num_phy // num_gpus

    # 1. Expert groups onto nodes.
    group_load = weight.reshape(layers, num_groups, group_size).sum(-1)
    group_pack, group_rank = balanced_packing(group_load, num_nodes)
    # 2. Renumber experts node-major ("mlog"): node 0's experts first.
    first = (group_pack * groups_per_node + group_rank) * group_size
    log2mlog = (first[:, :, None] + np.arange(group_size)).reshape(layers, num_log)
    mlog2log = inverse(log2mlog)
    # 3. Replicas inside each node.
    mlog_load = np.take_along_axis(weight, mlog2log, axis=-1).reshape(-1, log_per_node)
    phy2mlog, phyrank, mlogcnt = replicate_experts(mlog_load, phy_per_node)
    # 4. Replicas onto the node's GPUs.
    replica_load = np.take_along_axis(mlog_load / mlogcnt, phy2mlog, axis=-1)
    pack_index, rank_in_pack = balanced_packing(replica_load, num_gpus // num_nodes)
    phy2pphy = pack_index * phy_per_gpu + rank_in_pack
    pphy2phy = inverse(phy2pphy)
    # 5. Compose the permutations back to global ids.
    pphy2mlog = np.take_along_axis(phy2mlog, pphy2phy, axis=-1)
    offsets = np.arange(0, num_log, log_per_node)[None, :, None]
    pphy2mlog = (pphy2mlog.reshape(layers, num_nodes, -1) + offsets).reshape(layers, -1)
    pphy2log = np.take_along_axis(mlog2log, pphy2mlog, axis=-1)
    pphyrank = np.take_along_axis(phyrank, pphy2phy, axis=-1).reshape(layers, -1)
    logcnt = np.take_along_axis(mlogcnt.reshape(layers, -1), log2mlog, axis=-1)
    return pphy2log, pphyrank, logcnt


def rebalance_experts(weight: np.ndarray, num_replicas: int, num_groups: int, num_nodes: int,
                      num_gpus: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Place `num_replicas` expert replicas for every layer.

    weight: [layers, experts] token counts of the last window (int64).
    Returns phy2log [layers, num_replicas], log2phy [layers, experts, max_replicas] (padded
    with -1) and logcnt [layers, experts], all int64.
    """
    weight = np.asarray(weight, dtype=np.float64)
    layers, num_log = weight.shape
    domains = num_nodes // NODES_PER_DOMAIN
    if num_nodes % NODES_PER_DOMAIN == 0 and num_groups % domains == 0:
        phy2log, phyrank, logcnt = rebalance_hierarchical(
            weight, num_replicas, num_groups, domains, num_gpus)
    else:  # no domain structure to exploit: one group, one domain
        phy2log, phyrank, logcnt = rebalance_hierarchical(weight, num_replicas, 1, 1, num_gpus)
    max_replicas = num_replicas - num_log + 1
    log2phy = np.full((layers, num_log, max_replicas), -1, dtype=np.int64)
    flat = (np.arange(layers)[:, None] * num_log + phy2log) * max_replicas + phyrank
    log2phy.reshape(-1)[flat.reshape(-1)] = np.tile(np.arange(num_replicas), layers)
    return phy2log, log2phy, logcnt
# EVOLVE-BLOCK-END
