"""Test fixture for the eplb problem: the initial program's hierarchical structure with
vectorized steps and no per-item Python loops: stripe-wise LPT packing (one step per stripe
of items, all rows at once), closed-form D'Hondt replication, and flat gathers and scatters
that compose the permutations without inverting them."""

# EVOLVE-BLOCK-START
import numpy as np


def row_offsets(rows, width):
    """The flat offset of each row of a C-contiguous [rows, width] array, as a column."""
    return np.arange(0, rows * width, width)[:, None]


def balanced_packing(weight, num_packs):
    """Stripe-wise LPT: per stripe of num_packs items (heaviest first), the k-th heaviest item
    goes to the k-th lightest pack. All rows at once; a Python loop only over stripes.

    Returns members [rows, num_packs, per_pack]: the items of each pack, in joining order."""
    rows, items = weight.shape
    per_pack = items // num_packs
    order = np.argsort(-weight, axis=-1)
    striped = weight.ravel()[order + row_offsets(rows, items)].reshape(rows, per_pack, num_packs)
    order = order.reshape(rows, per_pack, num_packs)
    loads = striped[:, 0].copy()  # the first stripe goes to the packs in order, all empty
    members = np.empty((rows, num_packs, per_pack), dtype=np.int64)
    members[:, :, 0] = order[:, 0]
    offsets = row_offsets(rows, num_packs)
    for stripe in range(1, per_pack):
        # The k-th lightest pack takes the k-th heaviest item of the stripe.
        lightest = np.argsort(loads, axis=-1) + offsets
        loads.ravel()[lightest] += striped[:, stripe]
        members.reshape(-1, per_pack)[lightest, stripe] = order[:, stripe]
    return members


def replicate_experts(weight, num_phy):
    """One replica per expert, then each spare slot to the highest load per replica: that is
    D'Hondt apportionment, so the spare slots are the top quotients load / c, c = 2, 3, ...
    Only the `spare` heaviest experts can win one (each of them beats the rest at every c).

    Returns (slot -> expert, replica rank) [rows, num_phy] and replica counts [rows, num_log]."""
    rows, num_log = weight.shape
    spare = num_phy - num_log
    heavy = np.argpartition(-weight, spare - 1, axis=-1)[:, :spare]
    quotients = weight.ravel()[heavy + row_offsets(rows, num_log)][:, :, None] \
        / np.arange(2, spare + 2)
    top = np.argpartition(-quotients.reshape(rows, -1), spare - 1, axis=-1)[:, :spare]
    extra = heavy.ravel()[top // spare + row_offsets(rows, spare)]
    phy2log = np.empty((rows, num_phy), dtype=np.int64)
    phy2log[:, :num_log] = np.arange(num_log)
    phy2log[:, num_log:] = extra
    rank = np.zeros((rows, num_phy), dtype=np.int64)
    rank[:, num_log:] = top % spare + 1  # top quotients of one expert hold ranks 1, 2, ...
    logcnt = np.bincount((extra + row_offsets(rows, num_log)).ravel(),
                         minlength=rows * num_log).reshape(rows, num_log) + 1
    return phy2log, rank, logcnt


def rebalance_experts(weight, num_replicas, num_groups, num_nodes, num_gpus):
    weight = np.asarray(weight, dtype=np.float64)
    layers, num_log = weight.shape
    group_size = num_log // num_groups
    log_per_node = num_log // num_nodes
    phy_per_node = num_replicas // num_nodes
    # 1. Groups onto nodes; node-major expert order: mlog2log[layer, j] is the j-th expert.
    groups = balanced_packing(weight.reshape(layers, num_groups, group_size).sum(-1),
                              num_nodes)
    mlog2log = (groups.reshape(layers, num_groups, 1) * group_size
                + np.arange(group_size)).reshape(layers, num_log)
    # 2. Replicas inside each node: rows are (layer, node) pairs.
    mlog_load = weight.ravel()[mlog2log + row_offsets(layers, num_log)]
    mlog_load = mlog_load.reshape(-1, log_per_node)
    rows = layers * num_nodes
    phy2mlog, phyrank, mlogcnt = replicate_experts(mlog_load, phy_per_node)
    # 3. The node's replicas onto its GPUs; `members` lists each GPU's slots in order.
    replica_load = (mlog_load / mlogcnt).ravel()[phy2mlog + row_offsets(rows, log_per_node)]
    members = balanced_packing(replica_load, num_gpus // num_nodes).reshape(rows, -1)
    members = members + row_offsets(rows, phy_per_node)
    slot2mlog = phy2mlog.ravel()[members]
    # 4. Back to global expert ids (mlog ids are per node: add the node's first mlog id).
    slot2mlog = slot2mlog.reshape(layers, num_replicas) + np.repeat(
        np.arange(0, num_log, log_per_node), phy_per_node)
    phy2log = mlog2log.ravel()[slot2mlog + row_offsets(layers, num_log)]
    logcnt = np.empty((layers, num_log), dtype=np.int64)
    logcnt.ravel()[mlog2log + row_offsets(layers, num_log)] = mlogcnt.reshape(layers, num_log)
    # 5. log2phy[layer, expert, replica rank] = slot.
    width = int(logcnt.max())  # no wider than needed: less to send back
    rank = phyrank.ravel()[members].reshape(layers, num_replicas)
    log2phy = np.full((layers, num_log, width), -1, dtype=np.int64)
    log2phy.ravel()[((phy2log + row_offsets(layers, num_log)) * width + rank).ravel()] = \
        np.tile(np.arange(num_replicas), layers)
    return phy2log, log2phy, logcnt
# EVOLVE-BLOCK-END
