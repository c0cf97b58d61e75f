"""Test fixture for the eplb problem: the initial program's hierarchical structure with
vectorized steps and no per-item Python loops: stripe-wise LPT packing (one step per stripe
of items, all rows at once) and closed-form D'Hondt replication."""

# EVOLVE-BLOCK-START
import numpy as np


def gather(values, index):
    """values[r, index[r, j]] for every row r (a flat take: cheaper than take_along_axis)."""
    offset = np.arange(index.shape[0])[:, None] * values.shape[-1]
    return values.ravel()[index + offset]


def scatter(target, index, values):
    """target[r, index[r, j]] = values[r, j] for every row r."""
    offset = np.arange(index.shape[0])[:, None] * target.shape[-1]
    target.ravel()[(index + offset).ravel()] = np.broadcast_to(values, index.shape).ravel()


def balanced_packing(weight, num_packs):
    """Stripe-wise LPT: per stripe of num_packs items (heaviest first), the k-th heaviest item
    goes to the k-th lightest pack. All rows at once; a Python loop only over stripes."""
    rows, items = weight.shape
    per_pack = items // num_packs
    order = np.argsort(-weight, axis=-1)
    striped = gather(weight, order).reshape(rows, per_pack, num_packs)
    base = np.arange(rows)[:, None] * num_packs
    loads = np.zeros(rows * num_packs)
    members = np.empty(rows * num_packs * per_pack, dtype=np.int64)
    for stripe in range(per_pack):
        slot = (base + np.argsort(loads.reshape(rows, num_packs), axis=-1)).ravel()
        loads[slot] += striped[:, stripe].ravel()
        members[slot * per_pack + stripe] = order[:, stripe * num_packs:
                                                  (stripe + 1) * num_packs].ravel()
    members = members.reshape(rows, items)
    pack_index = np.empty((rows, items), dtype=np.int64)
    rank_in_pack = np.empty((rows, items), dtype=np.int64)
    scatter(pack_index, members, np.repeat(np.arange(num_packs), per_pack)[None])
    scatter(rank_in_pack, members, np.tile(np.arange(per_pack), num_packs)[None])
    return pack_index, rank_in_pack


def replicate_experts(weight, num_phy):
    """One replica per expert, then each spare slot to the highest load per replica: that is
    D'Hondt apportionment, so the spare slots are the top quotients load / c, c = 2, 3, ...
    Only the `spare` heaviest experts can win one (each of them beats the rest at every c)."""
    rows, num_log = weight.shape
    spare = num_phy - num_log
    heavy = np.argpartition(-weight, spare - 1, axis=-1)[:, :spare]
    quotients = gather(weight, heavy)[:, :, None] / np.arange(2, spare + 2)
    top = np.argpartition(-quotients.reshape(rows, -1), spare - 1, axis=-1)[:, :spare]
    extra_expert = gather(heavy, top // spare)
    phy2log = np.concatenate([np.broadcast_to(np.arange(num_log), (rows, num_log)),
                              extra_expert], axis=-1)
    rank = np.concatenate([np.zeros((rows, num_log), dtype=np.int64), top % spare + 1], axis=-1)
    logcnt = 1 + (extra_expert[:, :, None] == np.arange(num_log)).sum(1)
    return phy2log, rank, logcnt


def inverse(perm):
    inv = np.empty_like(perm)
    scatter(inv, perm, np.arange(perm.shape[1]))
    return inv


def rebalance_experts(weight, num_replicas, num_groups, num_nodes, num_gpus):
    weight = np.asarray(weight, dtype=np.float64)
    layers, num_log = weight.shape
    group_size = num_log // num_groups
    log_per_node = num_log // num_nodes
    phy_per_gpu = num_replicas // num_gpus
    group_pack, group_rank = balanced_packing(
        weight.reshape(layers, num_groups, group_size).sum(-1), num_nodes)
    first = (group_pack * (num_groups // num_nodes) + group_rank) * group_size
    log2mlog = (first[:, :, None] + np.arange(group_size)).reshape(layers, num_log)
    mlog2log = inverse(log2mlog)
    mlog_load = gather(weight, mlog2log).reshape(-1, log_per_node)
    phy2mlog, phyrank, mlogcnt = replicate_experts(mlog_load, num_replicas // num_nodes)
    replica_load = gather(mlog_load / mlogcnt, phy2mlog)
    pack_index, rank_in_pack = balanced_packing(replica_load, num_gpus // num_nodes)
    pphy2phy = inverse(pack_index * phy_per_gpu + rank_in_pack)
    pphy2mlog = gather(phy2mlog, pphy2phy)
    offsets = np.arange(0, num_log, log_per_node)[None, :, None]
    pphy2mlog = (pphy2mlog.reshape(layers, num_nodes, -1) + offsets).reshape(layers, -1)
    phy2log = gather(mlog2log, pphy2mlog)
    phyrank = gather(phyrank, pphy2phy).reshape(layers, -1)
    logcnt = gather(mlogcnt.reshape(layers, -1), log2mlog)
    width = int(logcnt.max())  # no wider than needed: less to send back
    log2phy = np.full((layers, num_log, width), -1, dtype=np.int64)
    flat = (np.arange(layers)[:, None] * num_log + phy2log) * width + phyrank
    log2phy.reshape(-1)[flat.reshape(-1)] = np.tile(np.arange(num_replicas), layers)
    return phy2log, log2phy, logcnt
# EVOLVE-BLOCK-END
